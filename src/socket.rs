//! The Socket.IO side: building the engine with Node-like limits, the connect
//! step that identifies a socket and registers every flow's handlers, and the
//! per-socket helpers flows share (ordered processing, event budget, payload
//! parsing).
//!
//! Everything happens in a connect *middleware*: socketioxide sends the CONNECT
//! ack before it runs an (async) connect handler, so handlers registered there
//! can miss the events a client emits the moment it connects. Middlewares run
//! before the ack, so no event can arrive at a socket without its handlers.

use std::{convert::Infallible, future::Future, num::NonZeroU32, pin::Pin, sync::Arc};

use governor::{
    DefaultDirectRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use socketioxide::{
    ParserError, SocketIo,
    extract::{SocketRef, TryData},
    handler::ConnectHandler,
    layer::SocketIoLayer,
};
use tokio::sync::mpsc;

use crate::{
    assistant, auth, config::Config, error::AppError, health, livechat, resume, state::AppState,
};

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
        socket.extensions.insert(EventBudget::new(&state.config));
        socket.extensions.insert(EventQueue::start());
        // Node puts every socket in a room named after its id; clients and
        // dashboards address sockets that way.
        socket.join(socket.id);
        health::register(&socket);
        livechat::register(&socket, &state, &identity);
        assistant::register(&socket, &state);
        resume::attach(&socket, &state, auth.as_ref().ok()).await;
        socket.extensions.insert(identity);
        let on_leave = state.clone();
        socket.on_disconnect(move |socket: SocketRef| async move {
            // Ends the socket's queue worker once its pending events are done.
            socket.extensions.remove::<EventQueue>();
            resume::detach(&socket, &on_leave).await;
        });
        Ok::<(), Infallible>(())
    };
    let on_connect = async |socket: SocketRef| {
        tracing::debug!(sid = %socket.id, "socket connected");
        resume::announce(&socket);
    };
    io.ns("/", on_connect.with(on_handshake));
}

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs a socket's queued events one after another, in the order they arrived.
///
/// socketioxide spawns a task per event, so two events of one socket can
/// overtake each other. A handler that enqueues in its synchronous part (before
/// its future) keeps the client's order, as Node does.
#[derive(Clone)]
pub struct EventQueue(mpsc::UnboundedSender<Job>);

impl EventQueue {
    fn start() -> Self {
        let (sender, mut jobs) = mpsc::unbounded_channel::<Job>();
        tokio::spawn(async move {
            while let Some(job) = jobs.recv().await {
                job.await;
            }
        });
        Self(sender)
    }
}

/// Queues `job` behind the socket's earlier events. Call it from a handler's
/// synchronous part.
pub fn enqueue(socket: &SocketRef, job: impl Future<Output = ()> + Send + 'static) {
    match socket.extensions.get::<EventQueue>() {
        Some(EventQueue(queue)) => {
            if let Err(mpsc::error::SendError(job)) = queue.send(Box::pin(job)) {
                tokio::spawn(job);
            }
        }
        None => {
            tokio::spawn(job);
        }
    }
}

/// A socket's budget of events (a token bucket): a flood answers `RATE_LIMITED`
/// in the flow's error event instead of reaching the database.
#[derive(Clone)]
pub struct EventBudget(Arc<DefaultDirectRateLimiter>);

impl EventBudget {
    fn new(config: &Config) -> Self {
        let per_second = NonZeroU32::new(config.socket_events_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.socket_event_burst).unwrap_or(per_second);
        Self(Arc::new(RateLimiter::direct(
            Quota::per_second(per_second).allow_burst(burst),
        )))
    }
}

/// Registers `handler` for `event`: run in the order the socket sent its
/// events, within its event budget; a failure is handed to `report`, which
/// sends it in the flow's error event.
pub fn on_event<H, F, R>(socket: &SocketRef, event: &'static str, report: R, handler: H)
where
    H: Fn(SocketRef, SocketIo, Result<Value, ParserError>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<(), AppError>> + Send + 'static,
    R: Fn(&SocketRef, AppError) + Copy + Send + Sync + 'static,
{
    socket.on(
        event,
        move |socket: SocketRef, io: SocketIo, TryData(data): TryData<Value>| {
            // This part runs as the event arrives, so the budget and the queue see
            // events in the order the client sent them.
            match spend_budget(&socket) {
                Err(err) => report(&socket, err),
                Ok(()) => {
                    let work = handler(socket.clone(), io, data);
                    let reply_to = socket.clone();
                    enqueue(&socket, async move {
                        if let Err(err) = work.await {
                            report(&reply_to, err);
                        }
                    });
                }
            }
            async {}
        },
    );
}

/// Spends one event of the socket's budget.
pub fn spend_budget(socket: &SocketRef) -> Result<(), AppError> {
    let Some(EventBudget(limiter)) = socket.extensions.get::<EventBudget>() else {
        return Ok(());
    };
    limiter.check().map_err(|not_until| AppError::RateLimited {
        message: "Too many events; slow down".to_owned(),
        retry_after: not_until.wait_time_from(DefaultClock::default().now()),
    })
}

/// Turns an event's raw payload into `T`, with a message that says what is wrong.
pub fn parse_payload<T: DeserializeOwned>(data: Result<Value, ParserError>) -> Result<T, AppError> {
    let value = data.map_err(|err| AppError::Invalid {
        code: "INVALID_PAYLOAD",
        message: format!("Unreadable payload: {err}"),
    })?;
    serde_json::from_value(value).map_err(|err| AppError::Invalid {
        code: "INVALID_PAYLOAD",
        message: format!("Invalid payload: {err}"),
    })
}
