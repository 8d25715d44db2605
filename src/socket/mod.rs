//! The Socket.IO side: the engine with Node-like limits, the handshake that
//! identifies a socket and installs its dispatcher, and the toolkit flows
//! share (the event table, room names, the hub that reaches rooms).
//!
//! Everything a socket needs is installed in a connect *middleware*:
//! socketioxide sends the CONNECT ack before it runs an (async) connect
//! handler, so a dispatcher installed there could miss the events a client
//! emits the moment it connects. Middlewares run before the ack.
//!
//! This module knows no flow: the server hands it the [`EventTable`] the flows
//! filled.

mod client;
mod events;
mod hub;
mod limits;
mod rooms;
mod session;

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderName, HeaderValue, Uri},
};
use serde_json::Value;
use socketioxide::{
    SocketIo,
    adapter::{Adapter, Emitter},
    extract::{AckSender, SocketRef, TryData},
    handler::{ConnectHandler, FromMessage},
    layer::SocketIoLayer,
};
use socketioxide_core::adapter::DefinedAdapter;
use socketioxide_postgres::CustomPostgresAdapter;
use socketioxide_redis::CustomRedisAdapter;

pub use client::{Ack, ClientSocket};
pub use events::{
    Direction, EventContext, EventDoc, EventPayload, EventTable, FlowEvents, NoPayload, Payload,
    PayloadSchema, Reporter, Schemas, SocketContext, parse_payload,
};
pub use hub::{Broadcast, Hub, Io};
pub use limits::{AddressLimits, limit_handshakes};
pub use rooms::{Room, RoomKind};
pub use session::SocketSession;

use crate::{
    auth,
    cluster::{PgLink, RedisLink},
    config::Config,
    http,
    state::AppState,
    telemetry::metrics,
};

/// Rooms and broadcasts shared over Redis.
pub type RedisAdapter = CustomRedisAdapter<Emitter, RedisLink>;
/// Rooms and broadcasts shared over PostgreSQL LISTEN/NOTIFY.
pub type PostgresAdapter = CustomPostgresAdapter<Emitter, PgLink>;

/// Packets a socket may have queued before an emit to it fails; socketioxide's
/// default of 128 is too small for a burst of stream chunks to a slow client.
const SOCKET_BUFFER_PACKETS: usize = 1024;

/// The websocket read buffer each connection keeps (engineioxide's default is
/// 4 KiB): clients send small packets, and the buffer grows for large ones.
const WS_READ_BUFFER_BYTES: usize = 512;

/// Over `max_payload_bytes` a packet closes its connection, on every transport,
/// as Node's `maxHttpBufferSize` does; each flow's own, smaller limits answer
/// with that flow's error event instead. A client that opens the transport but
/// never connects to the namespace is dropped after `SOCKET_CONNECT_TIMEOUT_SECS`.
pub fn build<A: Adapter>(config: &Config, adapter: A::State) -> (SocketIoLayer<A>, SocketIo<A>) {
    let max_message = usize::try_from(config.max_payload_bytes).unwrap_or(usize::MAX);
    SocketIo::builder()
        .with_adapter::<A>(adapter)
        .max_payload(config.max_payload_bytes)
        .ws_max_message_size(max_message)
        .ws_max_frame_size(max_message)
        .max_buffer_size(SOCKET_BUFFER_PACKETS)
        .ws_read_buffer_size(WS_READ_BUFFER_BYTES)
        .connect_timeout(Duration::from_secs(config.socket_connect_timeout_secs))
        .build_layer()
}

/// Gives a Socket.IO request's URI and headers their own memory; call it
/// before the router sees the request (the router keeps a copy of the URI).
///
/// hyper parses them without copying: they point into the connection's 8 KiB
/// read buffer. The engine keeps a socket's request parts for its whole life,
/// and with them that buffer — 8 KiB per idle connection, a third of its
/// memory. Copies of the few hundred bytes they hold let the buffer go.
pub fn own_request_parts<B>(request: Request<B>) -> Request<B> {
    if !request.uri().path().starts_with(SOCKET_IO_PATH) {
        return request;
    }
    let (mut parts, body) = request.into_parts();
    if let Ok(uri) = Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    parts.headers = headers;
    Request::from_parts(parts, body)
}

const SOCKET_IO_PATH: &str = "/socket.io/";

/// Serves the default namespace, where all flows live, with the events of
/// `table`.
pub fn attach<A: Adapter + DefinedAdapter>(
    io: &SocketIo<A>,
    state: &AppState,
    table: Arc<EventTable>,
) -> A::InitRes
where
    SocketRef<A>: Into<ClientSocket>,
    AckSender<A>: Into<Ack>,
{
    let handshake_state = state.clone();
    let handshake_table = table.clone();
    let on_handshake = move |socket: SocketRef<A>, TryData(auth): TryData<Value>| {
        let state = handshake_state.clone();
        let table = handshake_table.clone();
        async move {
            let slot = state.socket_limits.join(socket.req_parts())?;
            socket.extensions.insert(slot.map(Arc::new));
            let auth = auth.ok();
            let identity = auth::identify_handshake(&state, auth.as_ref()).await;
            let parts = socket.req_parts();
            let address = http::client_ip(
                http::peer_ip(parts),
                &parts.headers,
                &state.config.trusted_proxies,
            );
            let session = Arc::new(SocketSession::new(&state.config, identity, address));
            let client: ClientSocket = socket.clone().into();
            // Node puts every socket in a room named after its id.
            client.join(Room::socket(socket.id));
            let cx = SocketContext {
                socket: client,
                state: state.clone(),
                session: session.clone(),
            };
            table.handshake(&cx, auth.as_ref());
            socket.extensions.insert(session.clone());
            metrics::socket_connected();
            install_dispatcher(&socket, &state, &table, &session);
            let on_leave = (state, table, session);
            socket.on_disconnect(move |socket: SocketRef<A>| {
                let (state, table, session) = on_leave.clone();
                metrics::socket_disconnected();
                async move {
                    table.disconnected(&SocketContext {
                        socket: socket.into(),
                        state,
                        session,
                    });
                }
            });
            Ok::<(), limits::TooManySockets>(())
        }
    };
    let connect_state = state.clone();
    let on_connect = move |socket: SocketRef<A>| {
        let state = connect_state.clone();
        let table = table.clone();
        async move {
            let Some(session) = socket.extensions.get::<Arc<SocketSession>>() else {
                return;
            };
            table.connected(&SocketContext {
                socket: socket.into(),
                state,
                session,
            });
        }
    };
    io.ns("/", on_connect.with(on_handshake))
}

/// An event's packet data, handed to the table unparsed.
struct PacketData(Payload);

impl<A: Adapter> FromMessage<A> for PacketData {
    type Error = Infallible;

    fn from_message(
        _: Arc<socketioxide::socket::Socket<A>>,
        data: socketioxide::handler::Value,
        _: Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(Self(Payload::new(data)))
    }
}

/// One fallback handler per socket dispatches every event through the table.
fn install_dispatcher<A: Adapter>(
    socket: &SocketRef<A>,
    state: &AppState,
    table: &Arc<EventTable>,
    session: &Arc<SocketSession>,
) where
    SocketRef<A>: Into<ClientSocket>,
    AckSender<A>: Into<Ack>,
{
    let (state, table, session) = (state.clone(), table.clone(), session.clone());
    socket.on_fallback(
        move |socket: SocketRef<A>, ack: AckSender<A>, PacketData(payload): PacketData| {
            let cx = EventContext {
                socket: socket.into(),
                state: state.clone(),
                session: session.clone(),
                ack: ack.into(),
            };
            let job = table.dispatch(cx, payload);
            async move {
                if let Some(job) = job {
                    job.await;
                }
            }
        },
    );
}

/// Disconnects this node's sockets whose handshake token belongs to the
/// ended sign-in `sign_in`: they keep no rights the sign-out took away.
pub fn disconnect_sign_in(hub: &Hub, sign_in: &str) {
    for socket in hub.local_sockets() {
        let signed_in = socket
            .extensions()
            .get::<Arc<SocketSession>>()
            .is_some_and(|session| {
                session
                    .identity()
                    .user()
                    .is_some_and(|user| user.sign_in.as_deref() == Some(sign_in))
            });
        if signed_in {
            tracing::info!(sid = %socket.id(), "disconnecting a socket of an ended sign-in");
            socket.disconnect();
        }
    }
}
