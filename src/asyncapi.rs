//! The AsyncAPI 3 document of the Socket.IO events at `/api/asyncapi.json`.
//!
//! Written at start-up from the [`EventTable`]'s catalogue: each event the
//! flows handle, with the JSON Schema of the type the table parses its payload
//! into, and each event they send, with the type they serialize. The payload
//! schemas come from the same `utoipa::ToSchema` derives as the OpenAPI
//! document's.

use std::{collections::BTreeMap, sync::Arc};

use axum::{Json, Router, routing::get};
use serde_json::{Map, Value, json};

use crate::{
    config::Config,
    socket::{Direction, EventTable, Schemas},
};

pub const DOCUMENT_PATH: &str = "/api/asyncapi.json";

const DESCRIPTION: &str = "Socket.IO v5 (Engine.IO v4) at `/socket.io/`, namespace `/`, \
    over WebSocket or HTTP long-polling. A message is an event name and one JSON argument, \
    its payload. Each flow answers a refused event with its error event (live chat \
    `chat-error`, assistant `stream_error`, resume `<event>_error` or `error`), and the \
    socket stays up. Admin sockets send `auth: {token}` in the handshake (the access \
    token of `POST /api/auth/login`), and `lastMessageId` with it to be sent the live-chat \
    rows after that one first; assistant sockets may send `auth: {clientKey}`, \
    resume sockets `auth: {resumeId}`.";

/// The document for the events in `table`.
pub fn document(table: &EventTable, config: &Config) -> Value {
    let mut schemas: Schemas = Vec::new();
    let mut channels: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    let mut messages = Map::new();
    let mut operations = Map::new();
    for doc in table.catalogue() {
        let (way, action) = match doc.direction {
            Direction::FromClient => ("client", "receive"),
            Direction::ToClient => ("server", "send"),
        };
        let key = format!("{}.{way}.{}", doc.flow, doc.event);
        let mut message = json!({
            "name": doc.event,
            "title": doc.event,
            "summary": doc.summary,
        });
        match (doc.payload)(&mut schemas) {
            Some(payload) => message["payload"] = json!(payload),
            None => message["description"] = json!("No payload (anything sent is ignored)."),
        }
        messages.insert(key.clone(), message);
        channels.entry(doc.flow).or_default().insert(
            key.clone(),
            json!({ "$ref": format!("#/components/messages/{key}") }),
        );
        operations.insert(
            key.clone(),
            json!({
                "action": action,
                "channel": { "$ref": format!("#/channels/{}", doc.flow) },
                "summary": doc.summary,
                "messages": [{ "$ref": format!("#/channels/{}/messages/{key}", doc.flow) }],
            }),
        );
    }
    let channels: Map<String, Value> = channels
        .into_iter()
        .map(|(flow, messages)| {
            let channel = json!({
                "address": "/",
                "title": flow,
                "description": format!("The {flow} flow's events on the default namespace."),
                "messages": messages,
            });
            (flow.to_owned(), channel)
        })
        .collect();
    let schemas: Map<String, Value> = schemas
        .into_iter()
        .map(|(name, schema)| (name, json!(schema)))
        .collect();
    json!({
        "asyncapi": "3.1.0",
        "info": {
            "title": "Switchboard Socket.IO events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "servers": {
            "switchboard": {
                // The bind address, or `localhost` when it is every interface.
                "host": format!("{}:{}", if config.host.is_unspecified() { "localhost".to_owned() } else { config.host.to_string() }, config.port),
                "protocol": "ws",
                "pathname": "/socket.io/",
                "description": "Socket.IO over WebSocket (or HTTP long-polling, `http`)",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": { "messages": messages, "schemas": schemas },
    })
}

/// Serves `document`.
pub fn router<S: Clone + Send + Sync + 'static>(document: Value) -> Router<S> {
    let document = Arc::new(document);
    Router::new().route(
        DOCUMENT_PATH,
        get(move || {
            let document = document.clone();
            async move { Json(document) }
        }),
    )
}
