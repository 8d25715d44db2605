//! Live-chat REST routes: the admin console's session list and AI settings,
//! and the widget's message history. Changes made here are announced to the
//! admin sockets like their socket twins.

use axum::{
    Json,
    extract::{Path, Query, State},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    ai::{self, AiConfigChange, AiConfigView},
    domain::{MessageText, MessageView, SessionId, Visitor},
    events::admins,
    history::{self, SessionView},
    service,
};
use crate::{
    ai::Payer,
    auth::AdminUser,
    client_limits::Creation,
    error::{AppError, AppResult},
    http::{AppJson, ClientIp},
    state::AppState,
};

const TAG: &str = "livechat";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_chats, create_chat))
        .routes(routes!(get_chat))
        .routes(routes!(release_chat))
        .routes(routes!(take_over_chat))
        // GET takes a session id, PATCH a message id: one path, one parameter name.
        .routes(routes!(list_messages, mark_read))
        .routes(routes!(get_config, put_config))
        .routes(routes!(toggle_ai))
        .routes(routes!(test_ai))
}

/// Sessions, newest activity first, each with only its newest message.
#[utoipa::path(get, path = "/api/chats", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = Vec<SessionView>)))]
async fn list_chats(
    State(state): State<AppState>,
    _: AdminUser,
) -> AppResult<Json<Vec<SessionView>>> {
    history::list_sessions(&state.db).await.map(Json)
}

fn session_id(state: &AppState, raw: &str) -> AppResult<SessionId> {
    SessionId::parse(raw, state.config.livechat_min_session_id_chars)
}

/// A session with all its messages.
#[utoipa::path(get, path = "/api/chats/{session_id}", tag = TAG, security(("bearer" = [])),
    params(("session_id" = String, Path)),
    responses((status = 200, body = SessionView)))]
async fn get_chat(
    State(state): State<AppState>,
    _: AdminUser,
    Path(session_id): Path<String>,
) -> AppResult<Json<SessionView>> {
    // An admin may read sessions whatever their id length.
    let session = SessionId::parse(&session_id, 1)?;
    history::session_with_messages(&state.db, &session)
        .await
        .map(Json)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct NewChat {
    session_id: String,
    // `ipAddress` is not read: the session records the address the server saw.
    user_agent: Option<String>,
}

/// Opens (or finds) a visitor's session.
#[utoipa::path(post, path = "/api/chats", tag = TAG, request_body = NewChat,
    responses((status = 200, body = SessionView)))]
async fn create_chat(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AppJson(body): AppJson<NewChat>,
) -> AppResult<Json<SessionView>> {
    let session = session_id(&state, &body.session_id)?;
    if !service::is_known(&state, &session) {
        state.creations.spend(Creation::LivechatSession, ip)?;
    }
    let visitor = Visitor::new(Some(ip.to_string()), body.user_agent);
    service::ensure_session(&state, &session, visitor).await?;
    history::session_with_messages(&state.db, &session)
        .await
        .map(Json)
}

/// Hands the session back to the AI.
#[utoipa::path(post, path = "/api/chats/{session_id}/release", tag = TAG, security(("bearer" = [])),
    params(("session_id" = String, Path)),
    responses((status = 200, body = SessionView)))]
async fn release_chat(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(session_id): Path<String>,
) -> AppResult<Json<SessionView>> {
    set_handed_off(&state, &admin, &session_id, false).await
}

/// An admin takes the session before replying: the AI stays silent.
#[utoipa::path(post, path = "/api/chats/{session_id}/takeover", tag = TAG, security(("bearer" = [])),
    params(("session_id" = String, Path)),
    responses((status = 200, body = SessionView)))]
async fn take_over_chat(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(session_id): Path<String>,
) -> AppResult<Json<SessionView>> {
    set_handed_off(&state, &admin, &session_id, true).await
}

async fn set_handed_off(
    state: &AppState,
    admin: &AdminUser,
    raw_id: &str,
    handed_off: bool,
) -> AppResult<Json<SessionView>> {
    let session = SessionId::parse(raw_id, 1)?;
    service::set_handed_off(state, &session, handed_off).await?;
    announce_list_change(state).await;
    tracing::info!(%session, admin = admin.0.email, handed_off, "hand-off changed by an admin");
    history::session_with_messages(&state.db, &session)
        .await
        .map(Json)
}

async fn announce_list_change(state: &AppState) {
    admins(state).emit("chat-list-update", &()).await;
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AfterQuery {
    /// Only messages with a greater id.
    after: Option<i32>,
}

/// A session's messages, oldest first.
///
/// Unauthenticated: widgets load their history with it. A session id is the
/// capability, so widgets should use long random ids.
#[utoipa::path(get, path = "/api/messages/{key}", tag = TAG,
    params(("key" = String, Path, description = "the session id"), AfterQuery),
    responses((status = 200, body = Vec<MessageView>)))]
async fn list_messages(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    query: Result<Query<AfterQuery>, axum::extract::rejection::QueryRejection>,
) -> AppResult<Json<Vec<MessageView>>> {
    let Query(query) =
        query.map_err(|_| AppError::invalid("after must be a message id (a whole number)"))?;
    let session = session_id(&state, &raw_id)?;
    history::messages(&state.db, &session, query.after)
        .await
        .map(Json)
}

/// Marks a message read.
#[utoipa::path(patch, path = "/api/messages/{key}", tag = TAG, security(("bearer" = [])),
    params(("key" = String, Path, description = "the message id")),
    responses((status = 200, body = MessageView)))]
async fn mark_read(
    State(state): State<AppState>,
    _: AdminUser,
    Path(id): Path<String>,
) -> AppResult<Json<MessageView>> {
    let id: i32 = id
        .parse()
        .map_err(|_| AppError::invalid("message id must be a whole number"))?;
    let row = history::mark_read(&state.db, id).await?;
    announce_list_change(&state).await;
    Ok(Json(row))
}

/// The live-chat AI settings.
#[utoipa::path(get, path = "/api/ai/config", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = AiConfigView)))]
async fn get_config(State(state): State<AppState>, _: AdminUser) -> AppResult<Json<AiConfigView>> {
    let config = ai::ai_settings(&state).await?;
    Ok(Json(ai::config_view(&state, &config)))
}

/// Changes any of the AI settings.
#[utoipa::path(put, path = "/api/ai/config", tag = TAG, security(("bearer" = [])),
    request_body = AiConfigChange,
    responses((status = 200, body = AiConfigView)))]
async fn put_config(
    State(state): State<AppState>,
    _: AdminUser,
    AppJson(change): AppJson<AiConfigChange>,
) -> AppResult<Json<AiConfigView>> {
    ai::update_config(&state, change).await.map(Json)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Toggle {
    is_enabled: bool,
}

/// Switches the AI auto-reply on or off.
#[utoipa::path(post, path = "/api/ai/toggle", tag = TAG, security(("bearer" = [])),
    request_body = Toggle,
    responses((status = 200, body = AiConfigView)))]
async fn toggle_ai(
    State(state): State<AppState>,
    _: AdminUser,
    AppJson(body): AppJson<Toggle>,
) -> AppResult<Json<AiConfigView>> {
    let change = AiConfigChange {
        is_enabled: Some(body.is_enabled),
        ..Default::default()
    };
    ai::update_config(&state, change).await.map(Json)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AiTest {
    session_id: Option<String>,
    message: String,
}

#[derive(Serialize, ToSchema)]
struct AiTestAnswer {
    response: String,
}

/// Tries the current settings on a message (after the session's history when
/// a `sessionId` is given); nothing is stored.
#[utoipa::path(post, path = "/api/ai/test", tag = TAG, security(("bearer" = [])),
    request_body = AiTest,
    responses((status = 200, body = AiTestAnswer)))]
async fn test_ai(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    AppJson(body): AppJson<AiTest>,
) -> AppResult<Json<AiTestAnswer>> {
    let session = body
        .session_id
        .as_deref()
        .map(|id| SessionId::parse(id, 1))
        .transpose()?;
    let text = MessageText::parse(&body.message, state.config.livechat_max_message_chars)?;
    let payer = Payer::User(admin.id);
    let response = ai::test_answer(&state, session.as_ref(), text, &payer).await?;
    Ok(Json(AiTestAnswer { response }))
}
