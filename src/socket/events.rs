//! The toolkit every flow's socket events share: one table from event name to
//! handler, and per socket a dispatcher that runs each event within the
//! socket's budget and in the order the client sent them.
//!
//! A flow registers its events with [`EventTable::flow`], naming the
//! [`Reporter`] that turns a failure into that flow's error event; handlers are
//! `async fn(EventContext, P) -> AppResult<()>` (service → emit), where `P` is
//! the payload type the table parses for them. The table also keeps the
//! catalogue of events each way with their payload types' JSON Schemas, from
//! which `/api/asyncapi.json` is written: the type that parses an event is the
//! type the document describes.
//!
//! One fallback handler per socket dispatches through the shared table, so a
//! socket costs one boxed closure whatever the number of events, and an idle
//! socket runs no task: the queue drains inside the task socketioxide spawns
//! for the event that found it idle. What the server keeps per socket (its
//! identity, budget and queue) is [`super::SocketSession`].

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc};

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;
use socketioxide_core::parser::Parse;
use socketioxide_parser_common::CommonParser;
use tracing::Instrument;
use utoipa::{
    ToSchema,
    openapi::{RefOr, schema::Schema},
};

use super::{Ack, ClientSocket, Room, SocketSession};
use crate::{
    ai::{BudgetKey, Payer},
    auth::Identity,
    config::{Config, Flow},
    error::{AppError, AppResult},
    state::AppState,
    telemetry::metrics,
};

/// An event's packet data as it arrived (`["event", payload, …]` and any
/// binary attachments); [`parse_payload`] reads the payload straight into the
/// handler's type, without an intermediate JSON tree. It is read with
/// socketioxide's common (JSON) parser, the one [`super::build`] configures;
/// the engine's own parser handle is not public.
pub struct Payload(socketioxide::handler::Value);

impl Payload {
    pub(super) fn new(data: socketioxide::handler::Value) -> Self {
        Self(data)
    }

    /// The event's name, when the data holds one.
    pub(super) fn event(&self) -> Option<&str> {
        CommonParser.read_event(&self.0).ok()
    }

    /// The data of an event whose payload is `payload` (for tests).
    #[cfg(test)]
    pub fn of_json(payload: &Value) -> Self {
        Self::of_text(&format!("[\"event\",{payload}]"))
    }

    /// Data as the text of a packet (for tests).
    #[cfg(test)]
    pub fn of_text(text: &str) -> Self {
        Self(socketioxide::handler::Value::Str(
            text.to_owned().into(),
            None,
        ))
    }
}

/// Sends a failure of `event` to the client, in the event's flow's error event.
pub type Reporter = fn(&ClientSocket, &'static str, AppError);

/// Named JSON Schemas a payload's schema refers to.
pub type Schemas = Vec<(String, RefOr<Schema>)>;

/// A payload type's JSON Schema for the event catalogue.
pub trait PayloadSchema {
    /// A reference to the payload's schema, after adding it and the schemas
    /// it refers to to `schemas`; `None` for an event without a payload.
    fn describe(schemas: &mut Schemas) -> Option<RefOr<Schema>>;
}

impl<T: ToSchema> PayloadSchema for T {
    fn describe(schemas: &mut Schemas) -> Option<RefOr<Schema>> {
        T::schemas(schemas);
        let name = T::name().into_owned();
        schemas.push((name.clone(), T::schema()));
        Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(name)))
    }
}

/// What an event's handler takes: the payload parsed.
pub trait EventPayload: PayloadSchema + Sized + Send + 'static {
    fn parse(payload: Payload) -> AppResult<Self>;
}

impl<T: DeserializeOwned + ToSchema + Send + 'static> EventPayload for T {
    fn parse(payload: Payload) -> AppResult<Self> {
        parse_payload(payload)
    }
}

/// The payload of an event that needs none: whatever comes is ignored.
pub struct NoPayload;

impl PayloadSchema for NoPayload {
    fn describe(_: &mut Schemas) -> Option<RefOr<Schema>> {
        None
    }
}

impl EventPayload for NoPayload {
    fn parse(_: Payload) -> AppResult<Self> {
        Ok(Self)
    }
}

/// Which way an event goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The client emits it; the server handles it.
    FromClient,
    /// The server emits it.
    ToClient,
}

/// One event of the catalogue.
pub struct EventDoc {
    pub event: &'static str,
    /// The flow's name (`core` for the server's own events).
    pub flow: &'static str,
    pub direction: Direction,
    pub payload: fn(&mut Schemas) -> Option<RefOr<Schema>>,
    /// What the server does with it, or when it sends it.
    pub summary: &'static str,
}

type Handler =
    Box<dyn Fn(EventContext, Payload) -> BoxFuture<'static, AppResult<()>> + Send + Sync>;
type Hook = Box<dyn Fn(&SocketContext) + Send + Sync>;
type HandshakeHook = Box<dyn Fn(&SocketContext, Option<&Value>) + Send + Sync>;
pub(super) type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a handler gets.
pub struct EventContext {
    pub socket: ClientSocket,
    pub state: AppState,
    pub session: Arc<SocketSession>,
    /// The event's acknowledgement (a no-op when the client asked none).
    pub ack: Ack,
}

impl EventContext {
    /// Who pays for an AI call this event makes: the socket's signed-in user,
    /// else its address, the socket itself and `keys`.
    pub fn payer(&self, keys: impl IntoIterator<Item = BudgetKey>) -> Payer {
        match self.session.identity() {
            Identity::User(user) => Payer::User(user.id),
            Identity::Visitor => Payer::Anonymous(
                [
                    BudgetKey::Address(self.session.address()),
                    BudgetKey::Socket(self.socket.id().to_string()),
                ]
                .into_iter()
                .chain(keys)
                .collect(),
            ),
        }
    }

    /// Joins `room` unless the socket joined it through here lately: a join
    /// takes the adapter's write lock, and an event that names its room on
    /// every call (a chat message) would take it every time. For rooms the
    /// socket does not leave.
    pub fn join_once(&self, room: Room) {
        if self.session.remember_joined(&room) {
            self.socket.join(room);
        }
    }
}

/// What a connect or disconnect hook gets.
pub struct SocketContext {
    pub socket: ClientSocket,
    pub state: AppState,
    pub session: Arc<SocketSession>,
}

impl SocketContext {
    /// Runs `job` behind the socket's queued events.
    pub fn enqueue(&self, job: impl Future<Output = ()> + Send + 'static) {
        if let Some(run) = self.session.submit(Box::pin(job)) {
            tokio::spawn(run);
        }
    }
}

/// Whether an event waits for the socket's earlier events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Queued,
    /// Runs at once; for answers that a queued event is waiting for.
    Immediate,
}

struct EventSpec {
    handler: Handler,
    report: Reporter,
    order: Order,
    /// The flow's name in logs (`core` for the server's own events).
    flow: &'static str,
}

/// Every event the server handles, and the flows' connect/disconnect hooks.
#[derive(Default)]
pub struct EventTable {
    events: HashMap<&'static str, EventSpec>,
    /// Whether each event runs in a span naming its socket, event and flow
    /// (for JSON logs; a span costs a few microseconds an event).
    event_spans: bool,
    on_handshake: Vec<HandshakeHook>,
    on_connect: Vec<Hook>,
    on_disconnect: Vec<Hook>,
    catalogue: Vec<EventDoc>,
}

impl EventTable {
    /// Registers the events of `flow`, whose failures `report` sends. When the
    /// configuration switches the flow off, its events answer `FLOW_DISABLED`
    /// and its hooks are not installed.
    pub fn flow(&mut self, config: &Config, flow: Flow, report: Reporter) -> FlowEvents<'_> {
        FlowEvents {
            table: self,
            flow: Some(flow),
            enabled: config.flow_enabled(flow),
            report,
        }
    }

    /// Registers events of the server itself (the health probe), always on.
    pub fn core(&mut self, report: Reporter) -> FlowEvents<'_> {
        FlowEvents {
            table: self,
            flow: None,
            enabled: true,
            report,
        }
    }

    /// Runs every event in a `socket_event` span, whose fields then appear
    /// on the log lines it writes.
    pub fn with_event_spans(mut self, on: bool) -> Self {
        self.event_spans = on;
        self
    }

    /// The names of every registered event.
    pub fn event_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.events.keys().copied()
    }

    /// Every event each way, in registration order, with its payload's type.
    pub fn catalogue(&self) -> &[EventDoc] {
        &self.catalogue
    }

    pub(super) fn handshake(&self, cx: &SocketContext, auth: Option<&Value>) {
        for hook in &self.on_handshake {
            hook(cx, auth);
        }
    }

    pub(super) fn connected(&self, cx: &SocketContext) {
        for hook in &self.on_connect {
            hook(cx);
        }
    }

    pub(super) fn disconnected(&self, cx: &SocketContext) {
        for hook in &self.on_disconnect {
            hook(cx);
        }
    }

    /// Handles one incoming event; the returned future is what socketioxide
    /// spawns for it.
    pub(super) fn dispatch(&self, cx: EventContext, payload: Payload) -> Option<Job> {
        let (&event, spec) = self.events.get_key_value(payload.event()?)?;
        metrics::event_received(event);
        if let Err(err) = cx.session.spend_budget() {
            (spec.report)(&cx.socket, event, err);
            return None;
        }
        let report = spec.report;
        let reply_to = cx.socket.clone();
        let session = cx.session.clone();
        let span = if self.event_spans {
            tracing::info_span!("socket_event", socket = %reply_to.id(), event, flow = spec.flow)
        } else {
            tracing::Span::none()
        };
        let work = span.in_scope(|| (spec.handler)(cx, payload));
        let job: Job = Box::pin(
            async move {
                if let Err(err) = work.await {
                    tracing::debug!(code = err.code(), "event refused");
                    report(&reply_to, event, err);
                }
            }
            .instrument(span),
        );
        match spec.order {
            Order::Immediate => Some(job),
            Order::Queued => session.submit(job),
        }
    }
}

/// Registers one flow's events and hooks.
pub struct FlowEvents<'a> {
    table: &'a mut EventTable,
    flow: Option<Flow>,
    enabled: bool,
    report: Reporter,
}

impl FlowEvents<'_> {
    /// Registers `handler` for `event`, run after the socket's earlier events.
    /// The payload is parsed as `P` first; one that does not parse answers
    /// `INVALID_PAYLOAD` in the flow's error event.
    pub fn on<P, H, F>(
        &mut self,
        event: &'static str,
        summary: &'static str,
        handler: H,
    ) -> &mut Self
    where
        P: EventPayload,
        H: Fn(EventContext, P) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = AppResult<()>> + Send + 'static,
    {
        self.register(event, summary, Order::Queued, handler)
    }

    /// Registers `handler` for `event`, run at once even while earlier events
    /// are still running (an answer a running event waits for).
    pub fn on_immediate<P, H, F>(
        &mut self,
        event: &'static str,
        summary: &'static str,
        handler: H,
    ) -> &mut Self
    where
        P: EventPayload,
        H: Fn(EventContext, P) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = AppResult<()>> + Send + 'static,
    {
        self.register(event, summary, Order::Immediate, handler)
    }

    /// Records that the flow sends `event` with a `P` payload, for the catalogue.
    pub fn emits<P: PayloadSchema>(
        &mut self,
        event: &'static str,
        summary: &'static str,
    ) -> &mut Self {
        self.document::<P>(event, summary, Direction::ToClient);
        self
    }

    fn document<P: PayloadSchema>(
        &mut self,
        event: &'static str,
        summary: &'static str,
        direction: Direction,
    ) {
        self.table.catalogue.push(EventDoc {
            event,
            flow: self.flow.map_or("core", Flow::as_str),
            direction,
            payload: P::describe,
            summary,
        });
    }

    fn register<P, H, F>(
        &mut self,
        event: &'static str,
        summary: &'static str,
        order: Order,
        handler: H,
    ) -> &mut Self
    where
        P: EventPayload,
        H: Fn(EventContext, P) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = AppResult<()>> + Send + 'static,
    {
        self.document::<P>(event, summary, Direction::FromClient);
        let handler: Handler = match (self.enabled, self.flow) {
            (false, Some(flow)) => Box::new(move |_, _| {
                Box::pin(std::future::ready(Err(AppError::flow_disabled(flow))))
            }),
            // Handlers are fn items or closures without state: cloning is free.
            _ => Box::new(move |cx, payload| {
                let handler = handler.clone();
                Box::pin(async move { handler(cx, P::parse(payload)?).await })
            }),
        };
        let previous = self.table.events.insert(
            event,
            EventSpec {
                handler,
                report: self.report,
                order,
                flow: self.flow.map_or("core", Flow::as_str),
            },
        );
        assert!(previous.is_none(), "two flows handle the event '{event}'");
        self
    }

    /// Runs in the handshake, before the client learns it is connected; it
    /// gets the handshake's `auth` object.
    pub fn on_handshake(
        &mut self,
        hook: impl Fn(&SocketContext, Option<&Value>) + Send + Sync + 'static,
    ) -> &mut Self {
        if self.enabled {
            self.table.on_handshake.push(Box::new(hook));
        }
        self
    }

    /// Runs once the client is connected (it can receive events).
    pub fn on_connect(
        &mut self,
        hook: impl Fn(&SocketContext) + Send + Sync + 'static,
    ) -> &mut Self {
        if self.enabled {
            self.table.on_connect.push(Box::new(hook));
        }
        self
    }

    pub fn on_disconnect(
        &mut self,
        hook: impl Fn(&SocketContext) + Send + Sync + 'static,
    ) -> &mut Self {
        if self.enabled {
            self.table.on_disconnect.push(Box::new(hook));
        }
        self
    }
}

/// Turns an event's payload into `T`, with a message that says what is wrong.
pub fn parse_payload<T: DeserializeOwned>(mut payload: Payload) -> AppResult<T> {
    CommonParser
        .decode_value(&mut payload.0, true)
        .map_err(|err| AppError::Invalid {
            code: "INVALID_PAYLOAD",
            message: format!("Invalid payload: {err}"),
        })
}
