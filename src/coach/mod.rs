//! The AI coach app's API (SPEC §8): token quotas, practice sessions, feedback
//! and analytics.
//!
//! - [`routes`]: `/api/gemini/*`, `/api/sessions*`, `/api/analytics/*`.
//! - [`service`]: sessions, events, the AI calls, owner scoping.
//! - [`feedback`]: the model's feedback, asked for as structured output and read leniently.
//! - [`quota`]: daily token quotas, checked and booked atomically per user.

pub mod feedback;
pub mod quota;
pub mod routes;
pub mod service;

pub use quota::QuotaLocks;
pub use routes::router;
