//! Assistant REST routes: conversation CRUD and the non-streaming `POST /api/chat`.
//! In `owner` scope the caller is its Bearer token, else its `X-Client-Key`.

use axum::{
    Json, Router,
    extract::{FromRequestParts, Path, State},
    http::{StatusCode, request::Parts},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::service::{self, Access, ConversationView, Owner};
use crate::{
    auth::optional_user,
    error::{AppError, AppResult},
    http::AppJson,
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/conversations", get(list).post(create))
        .route(
            "/api/conversations/{id}",
            get(show).put(rename).delete(remove),
        )
        .route("/api/chat", post(chat))
}

const CLIENT_KEY_HEADER: &str = "x-client-key";

/// What the caller may see of the conversations.
struct Caller(Access);

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let owner = match optional_user(parts, state)? {
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

async fn list(
    State(state): State<AppState>,
    Caller(access): Caller,
) -> AppResult<Json<Vec<ConversationView>>> {
    service::list_conversations(&state.db, &access)
        .await
        .map(Json)
}

async fn show(
    State(state): State<AppState>,
    Caller(access): Caller,
    Path(id): Path<String>,
) -> AppResult<Json<ConversationView>> {
    service::get_conversation(&state.db, &access, &id)
        .await
        .map(Json)
}

#[derive(Deserialize)]
struct Title {
    title: String,
}

async fn create(
    State(state): State<AppState>,
    Caller(access): Caller,
    AppJson(body): AppJson<Title>,
) -> AppResult<(StatusCode, Json<ConversationView>)> {
    let row = service::create_conversation(&state.db, &access, &body.title).await?;
    let view = service::conversation_view(&state.db, row).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

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

async fn remove(
    State(state): State<AppState>,
    Caller(access): Caller,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    service::delete_conversation(&state.db, &access, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chat {
    message: String,
    conversation_id: Option<String>,
}

async fn chat(
    State(state): State<AppState>,
    Caller(access): Caller,
    AppJson(body): AppJson<Chat>,
) -> AppResult<Json<Value>> {
    let (message, conversation) = service::answer(
        &state,
        &access,
        body.conversation_id.as_deref(),
        &body.message,
    )
    .await?;
    Ok(Json(
        json!({ "message": message, "conversation": conversation }),
    ))
}
