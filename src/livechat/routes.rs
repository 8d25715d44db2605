//! Live-chat REST routes: the admin console's session list and AI settings,
//! and the widget's message history. Changes made here are announced to the
//! admin sockets like their socket twins.

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    domain::{MessageText, MessageView, SessionId, Visitor},
    events::admins,
    service::{self, AiConfigChange, AiConfigView, SessionView},
};
use crate::{
    auth::AdminUser,
    error::{AppError, AppResult},
    http::{AppJson, ClientIp},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/chats", get(list_chats).post(create_chat))
        .route("/api/chats/{session_id}", get(get_chat))
        .route("/api/chats/{session_id}/release", post(release_chat))
        // GET takes a session id, PATCH a message id: one path, one parameter name.
        .route("/api/messages/{key}", get(list_messages).patch(mark_read))
        .route("/api/ai/config", get(get_config).put(put_config))
        .route("/api/ai/toggle", post(toggle_ai))
        .route("/api/ai/test", post(test_ai))
}

async fn list_chats(
    State(state): State<AppState>,
    _: AdminUser,
) -> AppResult<Json<Vec<SessionView>>> {
    service::list_sessions(&state.db).await.map(Json)
}

fn session_id(state: &AppState, raw: &str) -> AppResult<SessionId> {
    SessionId::parse(raw, state.config.livechat_min_session_id_chars)
}

async fn get_chat(
    State(state): State<AppState>,
    _: AdminUser,
    Path(session_id): Path<String>,
) -> AppResult<Json<SessionView>> {
    // An admin may read sessions whatever their id length.
    let session = SessionId::parse(&session_id, 1)?;
    service::session_with_messages(&state.db, &session)
        .await
        .map(Json)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewChat {
    session_id: String,
    ip_address: Option<String>,
    user_agent: Option<String>,
}

async fn create_chat(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AppJson(body): AppJson<NewChat>,
) -> AppResult<Json<SessionView>> {
    let session = session_id(&state, &body.session_id)?;
    let visitor = Visitor::new(body.ip_address.or(Some(ip.to_string())), body.user_agent);
    service::ensure_session(&state, &session, visitor).await?;
    service::session_with_messages(&state.db, &session)
        .await
        .map(Json)
}

async fn release_chat(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(session_id): Path<String>,
) -> AppResult<Json<SessionView>> {
    let session = SessionId::parse(&session_id, 1)?;
    service::release(&state, &session).await?;
    announce_list_change(&state).await;
    tracing::info!(%session, admin = admin.0.email, "session handed back to the AI");
    service::session_with_messages(&state.db, &session)
        .await
        .map(Json)
}

async fn announce_list_change(state: &AppState) {
    admins(state).emit("chat-list-update", &()).await;
}

#[derive(Deserialize)]
struct AfterQuery {
    after: Option<i32>,
}

/// Unauthenticated: widgets load their history with it. A session id is the
/// capability, so widgets should use long random ids.
async fn list_messages(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    query: Result<Query<AfterQuery>, axum::extract::rejection::QueryRejection>,
) -> AppResult<Json<Vec<MessageView>>> {
    let Query(query) =
        query.map_err(|_| AppError::invalid("after must be a message id (a whole number)"))?;
    let session = session_id(&state, &raw_id)?;
    service::messages(&state.db, &session, query.after)
        .await
        .map(Json)
}

async fn mark_read(
    State(state): State<AppState>,
    _: AdminUser,
    Path(id): Path<String>,
) -> AppResult<Json<MessageView>> {
    let id: i32 = id
        .parse()
        .map_err(|_| AppError::invalid("message id must be a whole number"))?;
    let row = service::mark_read(&state.db, id).await?;
    announce_list_change(&state).await;
    Ok(Json(row))
}

async fn get_config(State(state): State<AppState>, _: AdminUser) -> AppResult<Json<AiConfigView>> {
    let config = service::ai_settings(&state).await?;
    Ok(Json(service::config_view(&state, &config)))
}

async fn put_config(
    State(state): State<AppState>,
    _: AdminUser,
    AppJson(change): AppJson<AiConfigChange>,
) -> AppResult<Json<AiConfigView>> {
    service::update_config(&state, change).await.map(Json)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Toggle {
    is_enabled: bool,
}

async fn toggle_ai(
    State(state): State<AppState>,
    _: AdminUser,
    AppJson(body): AppJson<Toggle>,
) -> AppResult<Json<AiConfigView>> {
    let change = AiConfigChange {
        is_enabled: Some(body.is_enabled),
        ..Default::default()
    };
    service::update_config(&state, change).await.map(Json)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AiTest {
    session_id: Option<String>,
    message: String,
}

/// Tries the current settings on a message (after the session's history when
/// a `sessionId` is given); nothing is stored.
async fn test_ai(
    State(state): State<AppState>,
    _: AdminUser,
    AppJson(body): AppJson<AiTest>,
) -> AppResult<Json<Value>> {
    let session = body
        .session_id
        .as_deref()
        .map(|id| SessionId::parse(id, 1))
        .transpose()?;
    let text = MessageText::parse(&body.message, state.config.livechat_max_message_chars)?;
    let response = service::test_answer(&state, session.as_ref(), text).await?;
    Ok(Json(json!({ "response": response })))
}
