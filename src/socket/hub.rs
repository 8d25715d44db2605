//! [`Hub`]: how services, background tasks and routes reach rooms — on this
//! node, and on every node when the engine runs with a shared adapter.

use std::{borrow::Cow, sync::RwLock};

use serde::Serialize;
use socketioxide::{
    BroadcastError, SocketIo,
    adapter::{Adapter, LocalAdapter},
    operators::BroadcastOperators,
    socket::Sid,
};

use super::{ClientSocket, PostgresAdapter, RedisAdapter, Room};
use crate::{telemetry::metrics, warn_limited};

/// The engine this node serves, behind whichever adapter it uses.
#[derive(Clone)]
pub enum Io {
    Local(SocketIo<LocalAdapter>),
    Redis(SocketIo<RedisAdapter>),
    Postgres(SocketIo<PostgresAdapter>),
}

/// Runs `$body` with `$io` bound to the adapter-specific engine.
macro_rules! each_io {
    ($value:expr, $io:ident => $body:expr) => {
        match $value {
            Io::Local($io) => $body,
            Io::Redis($io) => $body,
            Io::Postgres($io) => $body,
        }
    };
}

macro_rules! io_from {
    ($($variant:ident: $adapter:ty),*) => {$(
        impl From<SocketIo<$adapter>> for Io {
            fn from(io: SocketIo<$adapter>) -> Self {
                Self::$variant(io)
            }
        }
    )*};
}

io_from!(Local: LocalAdapter, Redis: RedisAdapter, Postgres: PostgresAdapter);

impl Io {
    /// Disconnects every socket of this node.
    pub async fn close(&self) {
        each_io!(self, io => io.close().await)
    }
}

/// Sends events to rooms. Bound to the engine at start-up and unbound at
/// shutdown: the engine's handlers hold the state that holds the hub, and
/// unbinding breaks that circle.
#[derive(Default)]
pub struct Hub {
    io: RwLock<Option<Io>>,
}

impl Hub {
    pub fn bind(&self, io: impl Into<Io>) {
        *self.io.write().unwrap_or_else(|e| e.into_inner()) = Some(io.into());
    }

    pub fn unbind(&self) {
        self.io.write().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn io(&self) -> Option<Io> {
        self.io.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every socket in any of `rooms`, each once, on every node.
    pub fn to(&self, rooms: impl IntoIterator<Item = Room>) -> Broadcast {
        Broadcast {
            io: self.io(),
            rooms: Some(rooms.into_iter().collect()),
            except: Vec::new(),
        }
    }

    /// Every connected socket, on every node.
    pub fn everyone(&self) -> Broadcast {
        Broadcast {
            io: self.io(),
            rooms: None,
            except: Vec::new(),
        }
    }

    /// Whether a socket other than `except` is in `room`, on any node. When
    /// the other nodes cannot be asked, this node's sockets answer.
    pub async fn occupied(&self, room: &Room, except: Sid) -> bool {
        let Some(io) = self.io() else { return false };
        let name = Cow::from(room.clone());
        each_io!(io, io => match io.to(name.clone()).fetch_sockets().await {
            Ok(sockets) => sockets.iter().any(|socket| socket.data().id != except),
            Err(err) => {
                warn_limited!(%err, "the other nodes are unreachable; counting this node's sockets only");
                io.to(name).sockets().iter().any(|socket| socket.id != except)
            }
        })
    }

    /// A socket connected to this node.
    pub fn local_socket(&self, sid: Sid) -> Option<ClientSocket> {
        each_io!(self.io()?, io => io.get_socket(sid).map(ClientSocket::from))
    }

    /// Every socket connected to this node.
    pub fn local_sockets(&self) -> Vec<ClientSocket> {
        match self.io() {
            Some(io) => {
                each_io!(io, io => io.sockets().into_iter().map(ClientSocket::from).collect())
            }
            None => Vec::new(),
        }
    }
}

/// One event on its way to a set of sockets.
pub struct Broadcast {
    io: Option<Io>,
    /// `None`: every socket.
    rooms: Option<Vec<Room>>,
    except: Vec<Room>,
}

impl Broadcast {
    /// Leaves out the sockets in `room` (e.g. the sender's own room).
    pub fn except(mut self, room: Room) -> Self {
        self.except.push(room);
        self
    }

    /// Sends the event. Sockets whose buffer is full miss it (they are dropped
    /// as stalled soon). When the other nodes cannot be reached, this node's
    /// sockets still get it. Failures are logged, rate-limited.
    pub async fn emit<T: Serialize + ?Sized>(self, event: &'static str, data: &T) {
        let Some(io) = &self.io else { return };
        metrics::event_sent(event);
        let result = each_io!(io, io => {
            match self.operators(io, false).emit(event, data).await {
                Err(BroadcastError::Adapter(err)) => {
                    warn_limited!(%err, event, "the other nodes are unreachable; delivering on this node only");
                    self.operators(io, true).emit(event, data).await
                }
                result => result,
            }
        });
        if let Err(err) = result {
            warn_limited!(%err, event, "a broadcast did not reach every socket");
        }
    }

    fn operators<A: Adapter>(&self, io: &SocketIo<A>, local: bool) -> BroadcastOperators<A> {
        let mut operators = match &self.rooms {
            Some(rooms) => io.to(rooms.iter().cloned().map(Cow::from).collect::<Vec<_>>()),
            None => io.broadcast(),
        };
        if !self.except.is_empty() {
            operators = operators.except(
                self.except
                    .iter()
                    .cloned()
                    .map(Cow::from)
                    .collect::<Vec<_>>(),
            );
        }
        if local { operators.local() } else { operators }
    }
}
