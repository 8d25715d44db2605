//! Assistant conversations and messages: storage, the history the model sees,
//! and the non-streaming answer. Nothing here knows about sockets.

use chrono::{DateTime, Utc};
use entity::{assistant_message, conversation};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use serde::Serialize;

use crate::{
    ai::{ChatMessage, ChatRequest, Role},
    error::{AppError, AppResult},
    state::AppState,
    timefmt::iso8601,
};

const TITLE_CHARS: usize = 50;
const MAX_TITLE_CHARS: usize = 200;
/// The newest messages of a conversation that the model sees.
const HISTORY_MESSAGES: u64 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Streaming,
    Complete,
    Stopped,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Streaming => "streaming",
            Status::Complete => "complete",
            Status::Stopped => "stopped",
            Status::Failed => "failed",
        }
    }
}

/// A message as clients see it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub id: String,
    pub content: String,
    pub role: String,
    #[serde(serialize_with = "iso8601")]
    pub timestamp: DateTime<Utc>,
    pub conversation_id: String,
    pub status: String,
}

impl From<assistant_message::Model> for MessageView {
    fn from(row: assistant_message::Model) -> Self {
        Self {
            id: row.id,
            content: row.content,
            role: row.role,
            timestamp: row.created_at,
            conversation_id: row.conversation_id,
            status: row.status,
        }
    }
}

/// A conversation as clients see it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    pub id: String,
    pub title: String,
    pub messages: Vec<MessageView>,
    #[serde(serialize_with = "iso8601")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "iso8601")]
    pub updated_at: DateTime<Utc>,
}

impl ConversationView {
    fn new(row: conversation::Model, messages: Vec<MessageView>) -> Self {
        Self {
            id: row.id,
            title: row.title,
            messages,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

pub fn invalid(message: impl Into<String>) -> AppError {
    AppError::Invalid {
        code: "INVALID_REQUEST",
        message: message.into(),
    }
}

pub fn not_found() -> AppError {
    AppError::not_found("CONVERSATION_NOT_FOUND", "Conversation not found")
}

/// A user message: non-empty and within the configured length; returned trimmed.
pub fn validate_message<'a>(state: &AppState, message: &'a str) -> AppResult<&'a str> {
    let message = message.trim();
    if message.is_empty() {
        return Err(invalid("message must not be empty"));
    }
    let limit = state.config.assistant_max_message_chars;
    if message.chars().count() > limit {
        return Err(invalid(format!(
            "message is longer than {limit} characters"
        )));
    }
    Ok(message)
}

/// A conversation id: the ids this server hands out are UUIDs, but clients may
/// have their own; anything short and printable names a room.
pub fn validate_conversation_id(id: &str) -> AppResult<()> {
    if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid(
            "conversationId must be 1 to 128 printable characters",
        ));
    }
    Ok(())
}

/// The first 50 characters of the message, with `...` when cut.
pub fn title_from(message: &str) -> String {
    let mut chars = message.chars();
    let head: String = chars.by_ref().take(TITLE_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}...")
    } else {
        head
    }
}

fn validate_title(title: &str) -> AppResult<&str> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(invalid(format!(
            "title must be 1 to {MAX_TITLE_CHARS} characters"
        )));
    }
    Ok(title)
}

pub async fn create_conversation(
    db: &DatabaseConnection,
    title: &str,
) -> AppResult<conversation::Model> {
    let title = validate_title(title)?;
    let now = Utc::now();
    Ok(conversation::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        title: Set(title.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?)
}

pub async fn find_conversation(
    db: &DatabaseConnection,
    id: &str,
) -> AppResult<conversation::Model> {
    conversation::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .ok_or_else(not_found)
}

pub async fn rename_conversation(
    db: &DatabaseConnection,
    id: &str,
    title: &str,
) -> AppResult<ConversationView> {
    let title = validate_title(title)?;
    let mut row: conversation::ActiveModel = find_conversation(db, id).await?.into();
    row.title = Set(title.to_owned());
    row.updated_at = Set(Utc::now());
    let row = row.update(db).await?;
    conversation_view(db, row).await
}

pub async fn delete_conversation(db: &DatabaseConnection, id: &str) -> AppResult<()> {
    let deleted = conversation::Entity::delete_by_id(id.to_owned())
        .exec(db)
        .await?;
    if deleted.rows_affected == 0 {
        return Err(not_found());
    }
    Ok(())
}

pub async fn messages(
    db: &DatabaseConnection,
    conversation_id: &str,
) -> AppResult<Vec<MessageView>> {
    Ok(assistant_message::Entity::find()
        .filter(assistant_message::Column::ConversationId.eq(conversation_id))
        .order_by_asc(assistant_message::Column::Seq)
        .all(db)
        .await?
        .into_iter()
        .map(MessageView::from)
        .collect())
}

pub async fn conversation_view(
    db: &DatabaseConnection,
    row: conversation::Model,
) -> AppResult<ConversationView> {
    let messages = messages(db, &row.id).await?;
    Ok(ConversationView::new(row, messages))
}

pub async fn get_conversation(db: &DatabaseConnection, id: &str) -> AppResult<ConversationView> {
    let row = find_conversation(db, id).await?;
    conversation_view(db, row).await
}

/// Conversations, most recently updated first, each with only its last message.
pub async fn list_conversations(db: &DatabaseConnection) -> AppResult<Vec<ConversationView>> {
    let rows = conversation::Entity::find()
        .order_by_desc(conversation::Column::UpdatedAt)
        .all(db)
        .await?;
    let mut last: std::collections::HashMap<String, MessageView> =
        crate::store::newest_per_group::<assistant_message::Entity>(
            db,
            assistant_message::Column::ConversationId,
            assistant_message::Column::Seq,
            Condition::all(),
        )
        .await?
        .into_iter()
        .map(|row| (row.conversation_id.clone(), MessageView::from(row)))
        .collect();
    Ok(rows
        .into_iter()
        .map(|row| {
            let messages = last.remove(&row.id).into_iter().collect();
            ConversationView::new(row, messages)
        })
        .collect())
}

/// Stores a message and marks the conversation updated.
pub async fn add_message(
    db: &DatabaseConnection,
    conversation_id: &str,
    role: Role,
    content: &str,
    status: Status,
) -> AppResult<MessageView> {
    let now = Utc::now();
    conversation::Entity::update_many()
        .col_expr(conversation::Column::UpdatedAt, Expr::value(now))
        .filter(conversation::Column::Id.eq(conversation_id))
        .exec(db)
        .await?;
    let role = match role {
        Role::User => "user",
        Role::Assistant | Role::System => "assistant",
    };
    Ok(assistant_message::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        conversation_id: Set(conversation_id.to_owned()),
        role: Set(role.to_owned()),
        content: Set(content.to_owned()),
        status: Set(status.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?
    .into())
}

/// Saves a reply's text so far (and its status).
pub async fn save_reply(
    db: &DatabaseConnection,
    message_id: &str,
    content: &str,
    status: Status,
) -> AppResult<()> {
    assistant_message::Entity::update_many()
        .col_expr(assistant_message::Column::Content, Expr::value(content))
        .col_expr(
            assistant_message::Column::Status,
            Expr::value(status.as_str()),
        )
        .col_expr(
            assistant_message::Column::UpdatedAt,
            Expr::value(Utc::now()),
        )
        .filter(assistant_message::Column::Id.eq(message_id))
        .exec(db)
        .await?;
    Ok(())
}

/// What the model is asked: the system prompt and the conversation's newest
/// messages (empty, unfinished replies left out).
pub async fn request_for(
    state: &AppState,
    conversation_id: &str,
    skip_message: Option<&str>,
) -> AppResult<ChatRequest> {
    let mut rows = assistant_message::Entity::find()
        .filter(assistant_message::Column::ConversationId.eq(conversation_id))
        .order_by_desc(assistant_message::Column::Seq)
        .limit(HISTORY_MESSAGES)
        .all(&state.db)
        .await?;
    rows.reverse();
    let mut messages = vec![ChatMessage::new(
        Role::System,
        state.config.assistant_system_prompt.clone(),
    )];
    messages.extend(
        rows.into_iter()
            .filter(|row| Some(row.id.as_str()) != skip_message && !row.content.is_empty())
            .map(|row| {
                let role = if row.role == "user" {
                    Role::User
                } else {
                    Role::Assistant
                };
                ChatMessage::new(role, row.content)
            }),
    );
    Ok(ChatRequest::new(messages))
}

/// The conversation to post into: the named one, or a new one titled after the message.
pub async fn conversation_for(
    db: &DatabaseConnection,
    conversation_id: Option<&str>,
    message: &str,
) -> AppResult<(conversation::Model, bool)> {
    match conversation_id {
        Some(id) => {
            validate_conversation_id(id)?;
            Ok((find_conversation(db, id).await?, false))
        }
        None => Ok((create_conversation(db, &title_from(message)).await?, true)),
    }
}

/// `POST /api/chat`: the whole answer at once; both messages are stored.
pub async fn answer(
    state: &AppState,
    conversation_id: Option<&str>,
    message: &str,
) -> AppResult<(MessageView, ConversationView)> {
    let message = validate_message(state, message)?;
    let (conversation, _) = conversation_for(&state.db, conversation_id, message).await?;
    add_message(
        &state.db,
        &conversation.id,
        Role::User,
        message,
        Status::Complete,
    )
    .await?;
    let request = request_for(state, &conversation.id, None).await?;
    let completion = state.ai.default_model().complete(request).await?;
    let reply = add_message(
        &state.db,
        &conversation.id,
        Role::Assistant,
        &completion.text,
        Status::Complete,
    )
    .await?;
    let view = get_conversation(&state.db, &conversation.id).await?;
    Ok((reply, view))
}

#[cfg(test)]
mod tests {
    use super::title_from;

    #[test]
    fn titles_are_cut_at_fifty_characters() {
        assert_eq!(title_from("short"), "short");
        let long = "é".repeat(60);
        assert_eq!(title_from(&long), format!("{}...", "é".repeat(50)));
        assert_eq!(title_from(&"x".repeat(50)), "x".repeat(50));
    }
}
