//! The Socket.IO side: building the engine with Node-like limits, and the
//! connect step that identifies a socket and registers every flow's handlers.
//!
//! Everything happens in a connect *middleware*: socketioxide sends the CONNECT
//! ack before it runs an (async) connect handler, so handlers registered there
//! can miss the events a client emits the moment it connects. Middlewares run
//! before the ack, so no event can arrive at a socket without its handlers.

use std::convert::Infallible;

use serde_json::Value;
use socketioxide::{
    SocketIo,
    extract::{SocketRef, TryData},
    handler::ConnectHandler,
    layer::SocketIoLayer,
};

use crate::{auth, config::Config, health, state::AppState};

/// Packets a socket may have queued before an emit to it fails; socketioxide's
/// default of 128 is too small for a burst of stream chunks to a slow client.
const SOCKET_BUFFER_PACKETS: usize = 1024;

/// Over `max_payload_bytes` a packet closes its connection, on every transport,
/// as Node's `maxHttpBufferSize` does; each flow's own, smaller limits answer
/// with that flow's error event instead.
pub fn build(config: &Config) -> (SocketIoLayer, SocketIo) {
    let max_message = usize::try_from(config.max_payload_bytes).unwrap_or(usize::MAX);
    SocketIo::builder()
        .max_payload(config.max_payload_bytes)
        .ws_max_message_size(max_message)
        .ws_max_frame_size(max_message)
        .max_buffer_size(SOCKET_BUFFER_PACKETS)
        .build_layer()
}

/// Serves the default namespace, where all flows live. The handlers hold the
/// state; the state does not hold `io`, so the two do not keep each other alive.
pub fn attach(io: &SocketIo, state: &AppState) {
    let state = state.clone();
    let on_handshake = move |socket: SocketRef, TryData(auth): TryData<Value>| async move {
        let identity = auth::identify_socket(&state.tokens, auth.as_ref().ok());
        socket.extensions.insert(identity);
        // Node puts every socket in a room named after its id; clients and
        // dashboards address sockets that way.
        socket.join(socket.id);
        health::register(&socket);
        Ok::<(), Infallible>(())
    };
    let on_connect = async |socket: SocketRef| {
        tracing::debug!(sid = %socket.id, "socket connected");
    };
    io.ns("/", on_connect.with(on_handshake));
}
