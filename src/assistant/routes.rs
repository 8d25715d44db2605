//! Assistant REST routes: conversation CRUD and the non-streaming `POST /api/chat`.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::service::{self, ConversationView};
use crate::{error::AppResult, http::AppJson, state::AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/conversations", get(list).post(create))
        .route(
            "/api/conversations/{id}",
            get(show).put(rename).delete(remove),
        )
        .route("/api/chat", post(chat))
}

async fn list(State(state): State<AppState>) -> AppResult<Json<Vec<ConversationView>>> {
    service::list_conversations(&state.db).await.map(Json)
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<ConversationView>> {
    service::get_conversation(&state.db, &id).await.map(Json)
}

#[derive(Deserialize)]
struct Title {
    title: String,
}

async fn create(
    State(state): State<AppState>,
    AppJson(body): AppJson<Title>,
) -> AppResult<(StatusCode, Json<ConversationView>)> {
    let row = service::create_conversation(&state.db, &body.title).await?;
    let view = service::conversation_view(&state.db, row).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn rename(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AppJson(body): AppJson<Title>,
) -> AppResult<Json<ConversationView>> {
    service::rename_conversation(&state.db, &id, &body.title)
        .await
        .map(Json)
}

async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> AppResult<StatusCode> {
    service::delete_conversation(&state.db, &id).await?;
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
    AppJson(body): AppJson<Chat>,
) -> AppResult<Json<Value>> {
    let (message, conversation) =
        service::answer(&state, body.conversation_id.as_deref(), &body.message).await?;
    Ok(Json(
        json!({ "message": message, "conversation": conversation }),
    ))
}
