//! Resume builder (SPEC §6): event flows that parse, check, edit and preview a
//! structured resume with an LLM.
//!
//! - [`events`]: the socket events (`upload_resume`, `user_message`,
//!   `check_resume_fields`, `preview_resume` + `user_response`,
//!   `update_field`, `get_updated_resume`, `download_resume`).
//! - [`routes`]: `POST /format-resume`.
//! - [`service`]: per-socket state kept by `resumeId`, and the model calls.
//! - [`schema`]: the resume JSON shape, normalising, missing fields.
//!
//! A socket pays for the flow only once it uses it: its resume session is
//! opened by its first resume event, or at connect when the handshake names
//! one (`auth.resumeId`); only then does it get `resume_session`.

pub mod events;
pub mod routes;
pub mod schema;
pub mod service;

pub use events::register;
pub use routes::router;
pub use service::ResumeSession;
