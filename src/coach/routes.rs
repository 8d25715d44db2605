//! The coach app's routes: `/api/gemini/*`, `/api/sessions*`, `/api/analytics/*`.
//! All need a Bearer token; the AI routes also a per-user request budget.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

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

const TAG: &str = "coach";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(process))
        .routes(routes!(generate_feedback))
        .routes(routes!(quota_view))
        .routes(routes!(create_session, list_sessions))
        .routes(routes!(get_session, update_session))
        .routes(routes!(record_event))
        .routes(routes!(stats))
        .routes(routes!(adoption))
}

/// The per-user budget of AI requests (`AI_RATE_LIMIT_PER_MINUTE`).
fn spend_ai_budget(state: &AppState, user: &AuthUser) -> AppResult<()> {
    state.ai_limiter.check_key(&user.id).map_err(|not_until| {
        metrics::refused("ai");
        AppError::RateLimited {
            message: "Too many AI requests; slow down".to_owned(),
            retry_after: crate::rate_limit::retry_after(&not_until),
        }
    })
}

fn session_id(raw: &str) -> AppResult<i32> {
    raw.parse()
        .map_err(|_| AppError::not_found("SESSION_NOT_FOUND", "Session not found"))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ProcessBody {
    prompt: String,
    feature_type: Option<String>,
    /// Earlier turns, `{role, content}` (or Gemini's `{role, parts}`; role `model` is the AI).
    #[serde(default)]
    conversation_history: Vec<Value>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ProcessAnswer {
    response: String,
    tokens_used: i64,
    remaining_quota: i64,
}

/// Answers a prompt within the caller's daily token quota.
#[utoipa::path(post, path = "/api/gemini/process", tag = TAG, security(("bearer" = [])),
    request_body = ProcessBody,
    responses((status = 200, body = ProcessAnswer)))]
async fn process(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<ProcessBody>,
) -> AppResult<Json<ProcessAnswer>> {
    spend_ai_budget(&state, &user)?;
    let (response, tokens, quota) = service::process(
        &state,
        user.id,
        &body.prompt,
        body.feature_type.as_deref(),
        &body.conversation_history,
    )
    .await?;
    Ok(Json(ProcessAnswer {
        response,
        tokens_used: tokens,
        remaining_quota: quota.remaining,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct FeedbackBody {
    /// The practice session's id, as a number or a string.
    session_id: Value,
}

/// Generates and saves feedback on one of the caller's practice sessions:
/// `{sessionId, score, communication, content, bodyLanguage, highlights, actionItems}`.
#[utoipa::path(post, path = "/api/gemini/generate-feedback", tag = TAG, security(("bearer" = [])),
    request_body = FeedbackBody,
    responses((status = 200, body = Object)))]
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

/// The caller's daily token quota.
#[utoipa::path(get, path = "/api/gemini/quota", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = QuotaView)))]
async fn quota_view(State(state): State<AppState>, user: AuthUser) -> AppResult<Json<QuotaView>> {
    quota::view(&state, user.id).await.map(Json)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct NewSession {
    feature_type: String,
    title: Option<String>,
    description: Option<String>,
}

/// Starts a practice session.
#[utoipa::path(post, path = "/api/sessions", tag = TAG, security(("bearer" = [])),
    request_body = NewSession,
    responses((status = 201, body = SessionView)))]
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

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListQuery {
    feature_type: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

/// The caller's practice sessions, newest first (`limit` 1–100, default 20).
#[utoipa::path(get, path = "/api/sessions", tag = TAG, security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = SessionPage)))]
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
        query.limit.map_or(20, u64::from),
        query.offset.map_or(0, u64::from),
    )
    .await
    .map(Json)
}

/// One of the caller's practice sessions.
#[utoipa::path(get, path = "/api/sessions/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = SessionView)))]
async fn get_session(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> AppResult<Json<SessionView>> {
    service::get_session(&state.db, user.id, session_id(&id)?)
        .await
        .map(Json)
}

/// Changes a practice session; absent fields stay.
#[utoipa::path(patch, path = "/api/sessions/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = String, Path)), request_body = SessionChange,
    responses((status = 200, body = SessionView)))]
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

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct NewEvent {
    event_type: String,
    #[serde(default)]
    metadata: Value,
}

/// Records an analytics event.
#[utoipa::path(post, path = "/api/analytics/events", tag = TAG, security(("bearer" = [])),
    request_body = NewEvent,
    responses((status = 201, description = "the stored event", body = Object)))]
async fn record_event(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<NewEvent>,
) -> AppResult<(StatusCode, Json<Value>)> {
    let event = service::record_event(&state.db, user.id, &body.event_type, body.metadata).await?;
    Ok((StatusCode::CREATED, Json(event)))
}

/// `{totalSessions, completedSessions, averageScore}` of the caller.
#[utoipa::path(get, path = "/api/analytics/stats", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = Object)))]
async fn stats(State(state): State<AppState>, user: AuthUser) -> AppResult<Json<Value>> {
    service::stats(&state.db, user.id).await.map(Json)
}

/// The caller's session count per feature type.
#[utoipa::path(get, path = "/api/analytics/adoption", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = std::collections::HashMap<String, u64>)))]
async fn adoption(State(state): State<AppState>, user: AuthUser) -> AppResult<Json<Value>> {
    service::adoption(&state.db, user.id).await.map(Json)
}
