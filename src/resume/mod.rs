//! Resume builder (SPEC §6): event flows that parse, check, edit and preview a
//! structured resume with an LLM.
//!
//! - [`events`]: the socket events (`upload_resume`, `user_message`,
//!   `check_resume_fields`, `preview_resume` + `user_response`,
//!   `update_field`, `get_updated_resume`, `download_resume`).
//! - [`routes`]: `POST /format-resume`.
//! - [`service`]: per-socket state kept by `resumeId`, and the model calls.
//! - [`schema`]: the resume JSON shape, normalising, missing fields.

pub mod events;
pub mod routes;
pub mod schema;
pub mod service;

use serde_json::{Value, json};
use socketioxide::extract::SocketRef;

pub use routes::router;
pub use service::ResumeSession;

use crate::state::AppState;

/// Opens the socket's resume session (the one named by `auth.resumeId` when it
/// is still kept) and registers the events. Runs in the handshake; when the
/// database cannot be read the socket starts fresh rather than being refused.
pub async fn attach(socket: &SocketRef, state: &AppState, auth: Option<&Value>) {
    let requested = auth
        .and_then(|auth| auth.get("resumeId"))
        .and_then(Value::as_str);
    let session = service::open(state, requested).await.unwrap_or_else(|err| {
        tracing::warn!(%err, "could not restore a resume session; starting a fresh one");
        ResumeSession::fresh()
    });
    events::register(socket, state, &session);
    socket.extensions.insert(session);
}

/// Tells the client its `resumeId`; runs once the socket is connected.
pub fn announce(socket: &SocketRef) {
    if let Some(session) = socket.extensions.get::<ResumeSession>() {
        let _ = socket.emit("resume_session", &json!({ "resumeId": session.id }));
    }
}

/// Starts the expiry clock of the socket's session when it disconnects.
pub async fn detach(socket: &SocketRef, state: &AppState) {
    if let Some(session) = socket.extensions.get::<ResumeSession>()
        && let Err(err) = service::release(&state.db, &session.id).await
    {
        tracing::warn!(%err, "could not mark a resume session as left");
    }
}
