//! The feedback a model writes about a practice session: asked for as
//! structured output (a JSON schema) where the provider supports it, and read
//! leniently. Models do not always keep to the requested shape: a text field
//! may come back as an object (`{"strengths": …, "improvements": …}`), a list
//! as one string, keys in snake_case. Such answers are turned into the
//! contract's shape instead of failing the request; only an answer without a
//! usable score is refused.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::{
    ai::{AiError, OutputFormat},
    error::{AppError, AppResult},
};

/// The feedback the coach app receives.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Feedback {
    pub score: f64,
    pub communication: String,
    pub content: String,
    pub body_language: String,
    pub highlights: Vec<String>,
    pub action_items: Vec<String>,
}

/// Longest text kept from one field, in characters.
const MAX_TEXT_CHARS: usize = 4000;
/// Most items kept in a list.
const MAX_ITEMS: usize = 20;
/// How deep nested objects are flattened into text.
const MAX_DEPTH: usize = 4;

/// The structured output asked of the model.
pub fn output_format() -> OutputFormat {
    let text = json!({ "type": "string" });
    let list = json!({ "type": "array", "items": { "type": "string" } });
    OutputFormat::JsonSchema {
        name: "session_feedback",
        schema: json!({
            "type": "object",
            "properties": {
                "score": { "type": "number", "description": "0 to 100" },
                "communication": text,
                "content": text,
                "bodyLanguage": text,
                "highlights": list,
                "actionItems": list,
            },
            "required": ["score", "communication", "content", "bodyLanguage", "highlights", "actionItems"],
            "additionalProperties": false,
        }),
    }
}

fn unusable(why: &str) -> AppError {
    AppError::Ai(AiError::InvalidOutput(why.to_owned()))
}

/// Reads a model's answer (code fences allowed) as feedback.
pub fn parse(text: &str) -> AppResult<Feedback> {
    let body = crate::resume::schema::strip_code_fence(text);
    let value: Value =
        serde_json::from_str(body).map_err(|_| unusable("the feedback is not JSON"))?;
    from_value(&value)
}

/// Feedback from any JSON the model produced.
pub fn from_value(value: &Value) -> AppResult<Feedback> {
    let fields = value
        .as_object()
        .ok_or_else(|| unusable("the feedback is not a JSON object"))?;
    let score = field(fields, &["score", "overallScore", "overall_score"])
        .and_then(number)
        .ok_or_else(|| unusable("the feedback has no score"))?;
    if !(0.0..=100.0).contains(&score) {
        return Err(unusable("the score is not between 0 and 100"));
    }
    let text_of = |names: &[&str]| field(fields, names).map(|v| text(v, 0)).unwrap_or_default();
    let list_of = |names: &[&str]| field(fields, names).map(list).unwrap_or_default();
    Ok(Feedback {
        score,
        communication: text_of(&["communication"]),
        content: text_of(&["content"]),
        body_language: text_of(&["bodyLanguage", "body_language"]),
        highlights: list_of(&["highlights"]),
        action_items: list_of(&["actionItems", "action_items"]),
    })
}

fn field<'a>(fields: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|name| fields.get(*name))
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().trim_end_matches('%').parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite())
}

/// Any JSON as readable text: objects become `key: value` parts, lists their items.
fn text(value: &Value, depth: usize) -> String {
    let joined = match value {
        Value::Null => String::new(),
        Value::String(s) => s.trim().to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ if depth >= MAX_DEPTH => String::new(),
        Value::Array(items) => items
            .iter()
            .take(MAX_ITEMS)
            .map(|item| text(item, depth + 1))
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
        Value::Object(fields) => fields
            .iter()
            .take(MAX_ITEMS)
            .map(|(key, value)| (key, text(value, depth + 1)))
            .filter(|(_, part)| !part.is_empty())
            .map(|(key, part)| format!("{key}: {part}"))
            .collect::<Vec<_>>()
            .join("; "),
    };
    joined.chars().take(MAX_TEXT_CHARS).collect()
}

/// Any JSON as a list of texts: a list's items, an object's values, one string.
fn list(value: &Value) -> Vec<String> {
    let items: Vec<String> = match value {
        Value::Array(items) => items.iter().map(|item| text(item, 1)).collect(),
        Value::Object(fields) => fields
            .iter()
            .map(|(key, value)| match value {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                    format!("{key}: {}", text(value, 1))
                }
                other => text(other, 1),
            })
            .collect(),
        other => vec![text(other, 0)],
    };
    items
        .into_iter()
        .filter(|item| !item.is_empty())
        .take(MAX_ITEMS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_described_shape_reads_as_is() {
        let answer = json!({ "score": 82, "communication": "Clear.", "content": "Solid.", "bodyLanguage": "Calm.", "highlights": ["Good pace"], "actionItems": ["Pause more"] });
        let feedback = from_value(&answer).unwrap();
        assert_eq!(feedback.score, 82.0);
        assert_eq!(feedback.communication, "Clear.");
        assert_eq!(feedback.action_items, vec!["Pause more"]);
    }

    #[test]
    fn richer_shapes_are_turned_into_the_contract() {
        let answer = json!({
            "score": "74",
            "communication": { "strengths": "Clear voice", "improvements": ["Fewer fillers", "Slower start"] },
            "content": ["Good structure", { "tip": "Add an example" }],
            "body_language": null,
            "highlights": "Strong opening",
            "action_items": { "first": "Practise the close", "second": { "detail": "Record yourself" } },
        });
        let feedback = from_value(&answer).unwrap();
        assert_eq!(feedback.score, 74.0);
        assert_eq!(
            feedback.communication,
            "strengths: Clear voice; improvements: Fewer fillers; Slower start"
        );
        assert_eq!(feedback.content, "Good structure; tip: Add an example");
        assert_eq!(feedback.body_language, "");
        assert_eq!(feedback.highlights, vec!["Strong opening"]);
        assert_eq!(
            feedback.action_items,
            vec!["first: Practise the close", "detail: Record yourself"]
        );
    }

    #[test]
    fn answers_without_a_usable_score_are_refused() {
        for answer in [
            json!([]),
            json!({}),
            json!({ "score": 140 }),
            json!({ "score": "high" }),
        ] {
            assert_eq!(from_value(&answer).unwrap_err().code(), "AI_PROVIDER_ERROR");
        }
        assert!(parse("not json").is_err());
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|n| serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)),
            any::<i64>().prop_map(Value::from),
            ".*".prop_map(Value::from),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::hash_map("[a-zA-Z_]{1,12}", inner, 0..8)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_is_feedback_or_a_clear_error(value in any_json(), score in prop::option::of(-50.0f64..150.0)) {
            let mut value = value;
            if let (Some(score), Value::Object(fields)) = (score, &mut value) {
                fields.insert("score".into(), json!(score));
            }
            match from_value(&value) {
                Ok(feedback) => {
                    prop_assert!((0.0..=100.0).contains(&feedback.score));
                    prop_assert!(feedback.highlights.len() <= MAX_ITEMS);
                    prop_assert!(feedback.communication.chars().count() <= MAX_TEXT_CHARS);
                }
                Err(err) => prop_assert_eq!(err.code(), "AI_PROVIDER_ERROR"),
            }
        }
    }
}
