//! Assistant chat (SPEC §5): streaming AI conversations over Socket.IO and REST.
//!
//! - [`events`]: `join_conversation`, `leave_conversation`, `stream_chat`,
//!   `typing_start`/`typing_stop`, `message_read`, `stop_generation`.
//! - [`stream`]: the generation pipeline (coalescing, saving as it grows,
//!   stopping).
//! - [`routes`]: `/api/conversations*`, `POST /api/chat`.
//! - [`service`]: conversations, who may see them, messages, what the model sees.

pub mod events;
pub mod routes;
pub mod service;
pub mod stream;

pub use events::{on_signal, register};
pub use routes::router;
pub use stream::ActiveStreams;
