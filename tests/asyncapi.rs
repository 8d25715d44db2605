//! `/api/asyncapi.json` lists exactly the events the server handles, every
//! event the sources emit by name, and payload schemas that resolve. (The
//! AsyncAPI project's parser checks the document in `tests/js/asyncapi.test.mjs`.)

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use common::*;
use regex::Regex;
use serde_json::Value;
use switchboard::{Config, server::socket_events, socket::Direction};

async fn document() -> Value {
    let app = spawn_app().await;
    get_json(app.url("/api/asyncapi.json"), None).await
}

/// Event names of the operations with `action` (`receive`: the server handles it).
fn events_with(doc: &Value, action: &str) -> BTreeSet<String> {
    doc["operations"]
        .as_object()
        .unwrap()
        .values()
        .filter(|operation| operation["action"] == action)
        .map(|operation| {
            let key = operation["messages"][0]["$ref"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap();
            doc["components"]["messages"][key]["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

fn every_ref<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(fields) => {
            for (key, inner) in fields {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(reference)) => found.push(reference),
                    _ => every_ref(inner, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| every_ref(item, found)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_lists_exactly_the_events_the_server_handles() {
    let doc = document().await;
    let config = Config::from_args(Vec::<String>::new()).unwrap();
    let table = socket_events(&config);
    let handled: BTreeSet<String> = table.event_names().map(str::to_owned).collect();
    assert!(handled.len() >= 20, "{handled:?}");
    assert_eq!(events_with(&doc, "receive"), handled);
    let received_docs = table
        .catalogue()
        .iter()
        .filter(|doc| doc.direction == Direction::FromClient)
        .count();
    assert_eq!(received_docs, handled.len());
}

#[tokio::test]
async fn every_event_the_sources_emit_by_name_is_documented_as_sent() {
    let doc = document().await;
    let sent = events_with(&doc, "send");
    // `emit(…, "name", …)`, `deliver_reply(…, "name", …)` and `answer(…,
    // "name", …)`, up to the end of the statement; the flows' error events
    // are constants or tables, listed in the document by their flows.
    let call = Regex::new(r#"(?:emit|deliver_reply|answer)\(\s*(?:[^;"]*?,\s*)?"([a-z][a-z_-]*)""#)
        .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut named = BTreeMap::new();
    let mut folders: Vec<_> = ["livechat", "assistant", "resume"]
        .iter()
        .map(|flow| root.join(flow))
        .collect();
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for found in call.captures_iter(&text) {
                named.insert(found[1].to_owned(), path.display().to_string());
            }
        }
    }
    assert!(
        named.len() >= 15,
        "the scan found too few events: {named:?}"
    );
    let undocumented: Vec<_> = named
        .iter()
        .filter(|(event, _)| !sent.contains(*event))
        .collect();
    assert!(
        undocumented.is_empty(),
        "emitted, not documented: {undocumented:?}"
    );
    for error_event in ["chat-error", "stream_error", "update_field_error", "error"] {
        assert!(sent.contains(error_event), "{error_event}");
    }
}

#[tokio::test]
async fn references_resolve_and_schema_names_are_not_shared_by_two_types() {
    let doc = document().await;
    assert_eq!(doc["asyncapi"], "3.1.0");
    let mut references = Vec::new();
    every_ref(&doc, &mut references);
    assert!(references.len() > 100, "{}", references.len());
    for reference in references {
        assert!(
            resolve(&doc, reference).is_some(),
            "{reference} does not resolve"
        );
    }
    for operation in doc["operations"].as_object().unwrap().values() {
        assert!(matches!(
            operation["action"].as_str(),
            Some("send" | "receive")
        ));
    }
    // Two payload types with one schema name would overwrite each other.
    let config = Config::from_args(Vec::<String>::new()).unwrap();
    let table = socket_events(&config);
    let mut by_name: BTreeMap<String, Value> = BTreeMap::new();
    for event in table.catalogue() {
        let mut schemas = Vec::new();
        (event.payload)(&mut schemas);
        for (name, schema) in schemas {
            let schema = serde_json::to_value(schema).unwrap();
            if let Some(earlier) = by_name.insert(name.clone(), schema.clone()) {
                assert_eq!(earlier, schema, "two types are called {name}");
            }
        }
    }
    let error = &doc["components"]["schemas"]["SocketError"];
    assert!(
        error["properties"]["code"]["description"]
            .as_str()
            .is_some_and(|codes| codes.contains("INVALID_PAYLOAD")),
        "{error}"
    );
}
