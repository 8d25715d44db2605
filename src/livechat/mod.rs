//! Live chat (SPEC §4): the website widget, the admin console, AI auto-reply
//! and hand-off to a human.
//!
//! - [`events`]: the socket events (`user-connected`, `user-message`,
//!   `user-typing`, `admin-reply`, `admin-typing`, `admin-release`).
//! - [`routes`]: `/api/chats*`, `/api/messages*`, `/api/ai/*`.
//! - [`service`]: the message path: sessions, messages, hand-off state.
//! - [`ai`]: the AI's answers and its settings.
//! - [`history`]: what the routes read (session list, messages).
//! - [`store`]: the group-commit writer every live-chat write goes through.
//! - [`cache`]: hand-off flags and AI settings kept in memory.
//! - [`domain`]: session ids, message texts and rows as validated values.
//! - [`handoff`]: when a visitor is asking for a human.
//! - [`presence`]: where a session's visitor is, and what it missed while away.

pub mod ai;
pub mod cache;
pub mod domain;
pub mod events;
pub mod handoff;
pub mod history;
pub mod presence;
pub mod routes;
pub mod service;
pub mod store;

pub use events::{register, retry_orphaned_replies};
pub use routes::router;
pub use service::Livechat;
pub use service::on_signal;
