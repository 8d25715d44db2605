//! Assistant REST routes: conversation CRUD and the non-streaming `POST /api/chat`.
//! In `owner` scope the caller is its Bearer token, else its `X-Client-Key`.

use axum::{
    Json,
    extract::{FromRequestParts, Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, request::Parts},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::service::{self, Access, ConversationView, MessageView, Owner};
use crate::{
    ai::{BudgetKey, Payer},
    auth::optional_user,
    client_limits::Creation,
    error::{AppError, AppResult},
    http::{AppJson, ClientIp, client_ip, peer_ip},
    state::AppState,
};

const TAG: &str = "assistant";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, rename, remove))
        .routes(routes!(chat))
}

const CLIENT_KEY_HEADER: &str = "x-client-key";

/// What the caller may see of the conversations.
struct Caller(Access);

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let owner = match optional_user(parts, state).await? {
            Some(user) => Some(Owner::user(user.id)),
            None => parts
                .headers
                .get(CLIENT_KEY_HEADER)
                .map(|key| {
                    key.to_str()
                        .map_err(|_| service::invalid("X-Client-Key must be printable"))
                        .and_then(Owner::client_key)
                })
                .transpose()?,
        };
        Ok(Self(Access::new(
            state.config.assistant_conversation_scope,
            owner,
        )))
    }
}

/// Who pays for an answer: the signed-in user, else the client's address and
/// its client key.
struct ChatPayer(Payer);

impl FromRequestParts<AppState> for ChatPayer {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        if let Some(user) = optional_user(parts, state).await? {
            return Ok(Self(Payer::User(user.id)));
        }
        let Caller(access) = Caller::from_request_parts(parts, state).await?;
        let address = client_ip(
            peer_ip(parts),
            &parts.headers,
            &state.config.trusted_proxies,
        );
        let keys = std::iter::once(BudgetKey::Address(address))
            .chain(access.owner().map(Owner::budget_key))
            .collect();
        Ok(Self(Payer::Anonymous(keys)))
    }
}

/// A page of the list; the body stays a bare array, as unchanged frontends
/// read it, so the next page's cursor travels in [`NEXT_CURSOR_HEADER`].
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Conversations on the page, 1 to 500 (default 100).
    limit: Option<u32>,
    /// The id of the last conversation of the previous page.
    before: Option<String>,
}

const NEXT_CURSOR_HEADER: &str = "x-next-cursor";

/// The caller's conversations, newest first, each with only its last message;
/// `X-Next-Cursor` names the `before` of the next page when there is one.
#[utoipa::path(get, path = "/api/conversations", tag = TAG,
    security((), ("bearer" = []), ("clientKey" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<ConversationView>,
        headers(("x-next-cursor" = String, description = "the next page's `before`, when there is one")))))]
async fn list(
    State(state): State<AppState>,
    Caller(access): Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> AppResult<(HeaderMap, Json<Vec<ConversationView>>)> {
    let Query(query) = query?;
    let page = service::ListPage {
        limit: query.limit,
        before: query.before,
    };
    let (conversations, next) = service::list_conversations(&state.db, &access, &page).await?;
    let mut headers = HeaderMap::new();
    if let Some(next) = next.and_then(|next| HeaderValue::from_str(&next).ok()) {
        headers.insert(NEXT_CURSOR_HEADER, next);
    }
    Ok((headers, Json(conversations)))
}

/// A conversation with all its messages.
#[utoipa::path(get, path = "/api/conversations/{id}", tag = TAG,
    security((), ("bearer" = []), ("clientKey" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = ConversationView)))]
async fn show(
    State(state): State<AppState>,
    Caller(access): Caller,
    Path(id): Path<String>,
) -> AppResult<Json<ConversationView>> {
    service::get_conversation(&state.db, &access, &id)
        .await
        .map(Json)
}

#[derive(Deserialize, ToSchema)]
struct Title {
    title: String,
}

/// Starts a conversation.
#[utoipa::path(post, path = "/api/conversations", tag = TAG,
    security((), ("bearer" = []), ("clientKey" = [])),
    request_body = Title,
    responses((status = 201, body = ConversationView)))]
async fn create(
    State(state): State<AppState>,
    Caller(access): Caller,
    ClientIp(ip): ClientIp,
    AppJson(body): AppJson<Title>,
) -> AppResult<(StatusCode, Json<ConversationView>)> {
    state.creations.spend(Creation::Conversation, ip)?;
    let row = service::create_conversation(&state.db, &access, &body.title).await?;
    let view = service::conversation_view(&state.db, row).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Renames a conversation.
#[utoipa::path(put, path = "/api/conversations/{id}", tag = TAG,
    security((), ("bearer" = []), ("clientKey" = [])),
    params(("id" = String, Path)), request_body = Title,
    responses((status = 200, body = ConversationView)))]
async fn rename(
    State(state): State<AppState>,
    Caller(access): Caller,
    Path(id): Path<String>,
    AppJson(body): AppJson<Title>,
) -> AppResult<Json<ConversationView>> {
    service::rename_conversation(&state.db, &access, &id, &body.title)
        .await
        .map(Json)
}

/// Deletes a conversation and its messages.
#[utoipa::path(delete, path = "/api/conversations/{id}", tag = TAG,
    security((), ("bearer" = []), ("clientKey" = [])),
    params(("id" = String, Path)),
    responses((status = 204, description = "deleted")))]
async fn remove(
    State(state): State<AppState>,
    Caller(access): Caller,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    service::delete_conversation(&state.db, &access, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Chat {
    message: String,
    conversation_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct ChatAnswer {
    message: MessageView,
    conversation: ConversationView,
}

/// Answers a message without streaming (in a new conversation without `conversationId`).
#[utoipa::path(post, path = "/api/chat", tag = TAG,
    security((), ("bearer" = []), ("clientKey" = [])),
    request_body = Chat,
    responses((status = 200, body = ChatAnswer)))]
async fn chat(
    State(state): State<AppState>,
    Caller(access): Caller,
    ChatPayer(payer): ChatPayer,
    ClientIp(ip): ClientIp,
    AppJson(body): AppJson<Chat>,
) -> AppResult<Json<ChatAnswer>> {
    if body.conversation_id.is_none() {
        state.creations.spend(Creation::Conversation, ip)?;
    }
    let (message, conversation) = service::answer(
        &state,
        &access,
        &payer,
        body.conversation_id.as_deref(),
        &body.message,
    )
    .await?;
    Ok(Json(ChatAnswer {
        message,
        conversation,
    }))
}
