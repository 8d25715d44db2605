//! Live-chat REST routes: the admin console's session list and AI settings,
//! and the widget's message history. Changes made here are announced to the
//! admin sockets like their socket twins.

use axum::{
    Extension, Json, Router,
    extract::{Path, Query, State},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::SocketIo;

use super::{
    events::admins,
    service::{self, AiConfigChange, AiConfigView, MessageView, SessionView, Visitor},
};
use crate::{
    auth::AdminUser,
    error::{AppError, AppResult},
    http::AppJson,
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

async fn get_chat(
    State(state): State<AppState>,
    _: AdminUser,
    Path(session_id): Path<String>,
) -> AppResult<Json<SessionView>> {
    service::session_with_messages(&state.db, &session_id)
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
    AppJson(body): AppJson<NewChat>,
) -> AppResult<Json<SessionView>> {
    let visitor = Visitor {
        ip_address: body.ip_address,
        user_agent: body.user_agent,
    };
    let session = service::ensure_session(&state.db, &body.session_id, &visitor).await?;
    service::session_view(&state.db, session).await.map(Json)
}

async fn release_chat(
    State(state): State<AppState>,
    Extension(io): Extension<SocketIo>,
    admin: AdminUser,
    Path(session_id): Path<String>,
) -> AppResult<Json<SessionView>> {
    let session = service::set_handed_off(&state.db, &session_id, false).await?;
    announce_list_change(&state, &io).await;
    tracing::info!(%session_id, admin = admin.0.email, "session handed back to the AI");
    service::session_view(&state.db, session).await.map(Json)
}

async fn announce_list_change(state: &AppState, io: &SocketIo) {
    if let Err(err) = admins(io, state).emit("chat-list-update", &()).await {
        tracing::warn!(%err, "chat-list-update broadcast failed");
    }
}

#[derive(Deserialize)]
struct AfterQuery {
    after: Option<i32>,
}

/// Unauthenticated: widgets load their history with it. A session id is the
/// capability, so widgets should use long random ids.
async fn list_messages(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    query: Result<Query<AfterQuery>, axum::extract::rejection::QueryRejection>,
) -> AppResult<Json<Vec<MessageView>>> {
    let Query(query) =
        query.map_err(|_| AppError::invalid("after must be a message id (a whole number)"))?;
    service::validate_session_id(&session_id)?;
    service::messages(&state.db, &session_id, query.after)
        .await
        .map(Json)
}

async fn mark_read(
    State(state): State<AppState>,
    Extension(io): Extension<SocketIo>,
    _: AdminUser,
    Path(id): Path<String>,
) -> AppResult<Json<MessageView>> {
    let id: i32 = id
        .parse()
        .map_err(|_| AppError::invalid("message id must be a whole number"))?;
    let row = service::mark_read(&state.db, id).await?;
    announce_list_change(&state, &io).await;
    Ok(Json(row))
}

async fn get_config(State(state): State<AppState>, _: AdminUser) -> AppResult<Json<AiConfigView>> {
    let config = service::load_config(&state).await?;
    Ok(Json(service::config_view(&state, config)))
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
    let response = service::test_answer(&state, body.session_id.as_deref(), &body.message).await?;
    Ok(Json(json!({ "response": response })))
}
