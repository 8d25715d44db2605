//! Test support, compiled only with the `testkit` feature (the tests and
//! benchmarks enable it; the server binary never contains it).
//!
//! - [`mock_ai`]: a local OpenAI-compatible server steered by directives.
//! - [`sio`]: a small Socket.IO v5 client over WebSocket.

pub mod mock_ai;
pub mod sio;
