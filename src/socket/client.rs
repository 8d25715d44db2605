//! One handle for a connected client and one for its acknowledgement,
//! whatever adapter the server runs with, so every flow has one code path.
//! Adding an adapter adds a variant here and an arm in [`each_adapter!`].

use serde::Serialize;
use socketioxide::{
    adapter::LocalAdapter,
    extract::{AckSender, SocketRef},
    socket::Sid,
};

use super::{PostgresAdapter, RedisAdapter, Room};
use crate::telemetry::metrics;

/// A client socket connected to this node.
#[derive(Clone, Debug)]
pub enum ClientSocket {
    Local(SocketRef<LocalAdapter>),
    Redis(SocketRef<RedisAdapter>),
    Postgres(SocketRef<PostgresAdapter>),
}

/// The acknowledgement callback of one event (a no-op when the client asked none).
pub enum Ack {
    Local(AckSender<LocalAdapter>),
    Redis(AckSender<RedisAdapter>),
    Postgres(AckSender<PostgresAdapter>),
}

/// Runs `$body` with `$inner` bound to the adapter-specific value.
macro_rules! each_adapter {
    ($value:expr, $inner:ident => $body:expr) => {
        match $value {
            ClientSocket::Local($inner) => $body,
            ClientSocket::Redis($inner) => $body,
            ClientSocket::Postgres($inner) => $body,
        }
    };
}

impl ClientSocket {
    pub fn id(&self) -> Sid {
        each_adapter!(self, socket => socket.id)
    }

    pub fn join(&self, room: Room) {
        each_adapter!(self, socket => socket.join(std::borrow::Cow::from(room)))
    }

    pub fn leave(&self, room: Room) {
        each_adapter!(self, socket => socket.leave(std::borrow::Cow::from(room)))
    }

    /// Sends `event` to this client alone. A closed or full socket is logged,
    /// not reported: the client is gone or will be dropped as stalled.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &'static str, data: &T) {
        metrics::event_sent(event);
        if let Err(err) = each_adapter!(self, socket => socket.emit(event, data)) {
            tracing::debug!(%err, event, "emit to a socket failed");
        }
    }

    /// The rooms this socket is in.
    pub fn rooms(&self) -> Vec<String> {
        each_adapter!(self, socket => socket.rooms().into_iter().map(String::from).collect())
    }

    pub fn req_parts(&self) -> &axum::http::request::Parts {
        each_adapter!(self, socket => socket.req_parts())
    }

    pub fn extensions(&self) -> &socketioxide::extensions::Extensions {
        each_adapter!(self, socket => &socket.extensions)
    }

    pub fn connected(&self) -> bool {
        each_adapter!(self, socket => socket.connected())
    }

    pub fn disconnect(self) {
        let _ = each_adapter!(self, socket => socket.disconnect());
    }
}

impl Ack {
    pub fn send<T: Serialize + ?Sized>(self, data: &T) {
        let _ = match self {
            Ack::Local(ack) => ack.send(data),
            Ack::Redis(ack) => ack.send(data),
            Ack::Postgres(ack) => ack.send(data),
        };
    }
}

/// The conversions [`super::attach`] needs, one pair per adapter.
macro_rules! from_adapter {
    ($($variant:ident: $adapter:ty),*) => {$(
        impl From<SocketRef<$adapter>> for ClientSocket {
            fn from(socket: SocketRef<$adapter>) -> Self {
                Self::$variant(socket)
            }
        }

        impl From<AckSender<$adapter>> for Ack {
            fn from(ack: AckSender<$adapter>) -> Self {
                Self::$variant(ack)
            }
        }
    )*};
}

from_adapter!(Local: LocalAdapter, Redis: RedisAdapter, Postgres: PostgresAdapter);
