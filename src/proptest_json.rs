//! Arbitrary JSON for the property tests of payload parsers and validators.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Any JSON value: scalars (odd strings included), nested arrays and objects,
/// with keys that sometimes match the fields the parsers look for.
pub fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|n| serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)),
        "\\PC{0,40}".prop_map(Value::from),
        ".{0,300}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Field names the payloads use, and others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "sessionId",
            "message",
            "isTyping",
            "ipAddress",
            "userAgent",
            "conversationId",
            "messageId",
            "stream",
            "userName",
            "rawResumeText",
            "resumeData",
            "field",
            "value",
            "response",
            "token",
            "resumeId",
            "clientKey",
            "role",
            "content",
            "text",
            "parts",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z_]{1,12}",
    ]
}
