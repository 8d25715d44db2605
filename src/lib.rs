//! Switchboard: one Rust server for the Socket.IO frontends of AI chat products.
//!
//! Read in this order:
//! - [`config`]: every setting, from flags, the environment and `.env`.
//! - [`server`]: start-up, the router, the listener, graceful shutdown.
//! - [`state`]: the [`state::AppState`] every handler shares.
//! - [`net`]: accepting connections within per-address and total limits.
//! - [`socket`]: the Socket.IO engine, the handshake, and the toolkit flows
//!   share (event table, room names, the hub that reaches rooms).
//! - [`error`]: the one service-layer error, mapped to HTTP and socket errors.
//! - [`http`]: JSON extraction, CORS, security headers, fallbacks.
//! - [`openapi`]: the OpenAPI document of the REST routes and its docs page.
//! - [`asyncapi`]: the AsyncAPI document of the Socket.IO events.
//! - [`store`]: the database (SQLite or PostgreSQL through SeaORM) and settings.
//! - [`auth`]: passwords, tokens, the login routes, extractors, socket identity.
//! - [`ai`]: the `ChatModel` seam and its providers.
//! - [`health`]: `GET /api/health` and the `health` socket event.
//! - [`coach`]: the AI coach app's API (quotas, sessions, feedback, analytics).
//! - [`chatkit`]: OpenAI ChatKit session issuing.
//! - [`frontend`]: serving a frontend build.
//! - [`pages`]: the built-in console, widget, demo and playground pages.
//! - [`assistant`]: the streaming assistant-chat flow.
//! - [`livechat`]: the live-chat flow (widget, admin console, AI, hand-off).
//! - [`resume`]: the resume-builder flow.
//! - [`timefmt`]: how timestamps are written on the wire.
//! - [`telemetry`]: logging, and [`warn_limited!`] for warnings that repeat.
//! - `testkit` (feature `testkit`, for tests and benchmarks only): a mock
//!   OpenAI-compatible server and a small Socket.IO client.

pub mod ai;
pub(crate) mod assistant;
pub(crate) mod asyncapi;
pub mod auth;
pub(crate) mod chatkit;
pub(crate) mod client_limits;
pub(crate) mod cluster;
pub(crate) mod coach;
pub mod config;
pub(crate) mod error;
pub(crate) mod frontend;
pub(crate) mod health;
pub(crate) mod http;
pub mod livechat;
pub mod net;
pub(crate) mod openapi;
pub(crate) mod pages;
#[cfg(test)]
mod proptest_json;
pub(crate) mod rate_limit;
pub mod resume;
pub mod server;
pub mod socket;
pub mod state;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testkit")]
pub mod testkit;
pub(crate) mod timefmt;

pub use config::Config;
pub use server::Server;
