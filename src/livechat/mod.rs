//! Live chat (SPEC §4): the website widget, the admin console, AI auto-reply
//! and hand-off to a human.
//!
//! - [`events`]: the socket events (`user-connected`, `user-message`,
//!   `user-typing`, `admin-reply`, `admin-typing`, `admin-release`).
//! - [`routes`]: `/api/chats*`, `/api/messages*`, `/api/ai/*`.
//! - [`service`]: sessions, messages, hand-off state, AI settings and answers.
//! - [`handoff`]: when a visitor is asking for a human.

pub mod events;
pub mod handoff;
pub mod routes;
pub mod service;

pub use events::register;
pub use routes::router;
pub use service::SessionLocks;
