//! The coach app's routes: `/api/gemini/*`, `/api/sessions*`, `/api/analytics/*`.
//! All need a Bearer token; the AI routes also a per-user request budget.

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, post},
};
use governor::clock::{Clock, DefaultClock};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    quota::{self, QuotaView},
    service::{self, SessionChange, SessionPage, SessionView},
};
use crate::{
    auth::AuthUser,
    error::{AppError, AppResult},
    http::AppJson,
    state::AppState,
    telemetry::metrics,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/gemini/process", post(process))
        .route("/api/gemini/generate-feedback", post(generate_feedback))
        .route("/api/gemini/quota", get(quota_view))
        .route("/api/sessions", post(create_session).get(list_sessions))
        .route("/api/sessions/{id}", get(get_session).patch(update_session))
        .route("/api/analytics/events", post(record_event))
        .route("/api/analytics/stats", get(stats))
        .route("/api/analytics/adoption", get(adoption))
}

/// The per-user budget of AI requests (`AI_RATE_LIMIT_PER_MINUTE`).
fn spend_ai_budget(state: &AppState, user: &AuthUser) -> AppResult<()> {
    state.ai_limiter.check_key(&user.id).map_err(|not_until| {
        metrics::refused("ai");
        AppError::RateLimited {
            message: "Too many AI requests; slow down".to_owned(),
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
        }
    })
}

fn session_id(raw: &str) -> AppResult<i32> {
    raw.parse()
        .map_err(|_| AppError::not_found("SESSION_NOT_FOUND", "Session not found"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProcessBody {
    prompt: String,
    feature_type: Option<String>,
    #[serde(default)]
    conversation_history: Vec<Value>,
}

async fn process(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<ProcessBody>,
) -> AppResult<Json<Value>> {
    spend_ai_budget(&state, &user)?;
    let (response, tokens, quota) = service::process(
        &state,
        user.id,
        &body.prompt,
        body.feature_type.as_deref(),
        &body.conversation_history,
    )
    .await?;
    Ok(Json(
        json!({ "response": response, "tokensUsed": tokens, "remainingQuota": quota.remaining }),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FeedbackBody {
    session_id: Value,
}

async fn generate_feedback(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<FeedbackBody>,
) -> AppResult<Json<Value>> {
    spend_ai_budget(&state, &user)?;
    let id = match &body.session_id {
        Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| AppError::invalid("sessionId must be a session id"))?;
    service::generate_feedback(&state, user.id, id)
        .await
        .map(Json)
}

async fn quota_view(State(state): State<AppState>, user: AuthUser) -> AppResult<Json<QuotaView>> {
    quota::view(&state, user.id).await.map(Json)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewSession {
    feature_type: String,
    title: Option<String>,
    description: Option<String>,
}

async fn create_session(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<NewSession>,
) -> AppResult<(StatusCode, Json<SessionView>)> {
    let session = service::create_session(
        &state.db,
        user.id,
        &body.feature_type,
        body.title,
        body.description,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(session)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    feature_type: Option<String>,
    limit: Option<u64>,
    offset: Option<u64>,
}

async fn list_sessions(
    State(state): State<AppState>,
    user: AuthUser,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> AppResult<Json<SessionPage>> {
    let Query(query) = query?;
    service::list_sessions(
        &state.db,
        user.id,
        query.feature_type.as_deref(),
        query.limit.unwrap_or(20),
        query.offset.unwrap_or(0),
    )
    .await
    .map(Json)
}

async fn get_session(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> AppResult<Json<SessionView>> {
    service::get_session(&state.db, user.id, session_id(&id)?)
        .await
        .map(Json)
}

async fn update_session(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    AppJson(change): AppJson<SessionChange>,
) -> AppResult<Json<SessionView>> {
    service::update_session(&state.db, user.id, session_id(&id)?, change)
        .await
        .map(Json)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewEvent {
    event_type: String,
    #[serde(default)]
    metadata: Value,
}

async fn record_event(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<NewEvent>,
) -> AppResult<(StatusCode, Json<Value>)> {
    let event = service::record_event(&state.db, user.id, &body.event_type, body.metadata).await?;
    Ok((StatusCode::CREATED, Json(event)))
}

async fn stats(State(state): State<AppState>, user: AuthUser) -> AppResult<Json<Value>> {
    service::stats(&state.db, user.id).await.map(Json)
}

async fn adoption(State(state): State<AppState>, user: AuthUser) -> AppResult<Json<Value>> {
    service::adoption(&state.db, user.id).await.map(Json)
}
