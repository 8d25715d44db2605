//! `POST /format-resume`: checks a resume JSON and fills defaults.

use axum::{Json, http::StatusCode, response::IntoResponse, response::Response};
use serde_json::{Map, Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::schema;
use crate::{error::AppError, http::AppJson, state::AppState};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(format_resume))
}

/// Filled in for the six text fields when they are absent.
const DEFAULTS: [(&str, &str); 6] = [
    ("Name", "Your Name"),
    ("Title", "Your Title"),
    ("Location", "Your Location"),
    ("Email", "your.email@example.com"),
    ("Phone", "Your Phone"),
    ("Summary", "A short professional summary."),
];

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        _ => false,
    }
}

/// Any key sent with an empty value → 400 `{missingFields: {key: question}}`
/// (plus the usual `error`, `message`, `code`); else `{resumeData}` in the
/// resume shape, with defaults for absent text fields.
/// Checks a resume (bare or as `{resumeData}`) for empty fields and answers
/// it normalised as `{resumeData}`; empty fields answer 400 with
/// `missingFields: {key: question}`.
#[utoipa::path(post, path = "/format-resume", tag = "resume",
    request_body = Object,
    responses((status = 200, body = Object)))]
async fn format_resume(AppJson(body): AppJson<Value>) -> Result<Response, AppError> {
    let resume = body
        .get("resumeData")
        .filter(|inner| inner.is_object())
        .unwrap_or(&body);
    let fields = resume
        .as_object()
        .ok_or_else(|| AppError::invalid("send the resume as a JSON object"))?;
    let missing: Map<String, Value> = fields
        .iter()
        .filter(|(_, value)| is_empty(value))
        .map(|(key, _)| {
            (
                key.clone(),
                Value::String(format!("Looks like I'm missing your {key}. What is it?")),
            )
        })
        .collect();
    if !missing.is_empty() {
        let message = "Some resume fields are empty";
        let body = json!({ "error": message, "message": message, "code": "MISSING_FIELDS", "missingFields": missing });
        return Ok((StatusCode::BAD_REQUEST, Json(body)).into_response());
    }
    let mut filled = fields.clone();
    for (key, default) in DEFAULTS {
        filled
            .entry(key)
            .or_insert_with(|| Value::String(default.to_owned()));
    }
    let resume = schema::normalize(&Value::Object(filled)).unwrap_or_else(schema::skeleton);
    Ok(Json(json!({ "resumeData": resume })).into_response())
}
