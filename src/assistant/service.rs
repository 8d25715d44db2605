//! Assistant conversations and messages: storage, who may read them, the
//! history the model sees, and the non-streaming answer. Nothing here knows
//! about sockets.
//!
//! Who may read a conversation is `ASSISTANT_CONVERSATION_SCOPE`: `open` (the
//! default, as the unchanged frontends send no identity) lets anyone who knows
//! its id read it; `owner` lets only its creator — a user's Bearer token, or an
//! anonymous client key — list, read, change, join or stop it.

use chrono::{DateTime, Utc};
use entity::{assistant_message, conversation};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use serde::Serialize;

use crate::{
    ai::{BudgetKey, ChatMessage, ChatRequest, Payer, Role},
    auth::sha256_hex,
    cluster::{NodeId, nodes},
    config::{Config, ConversationScope},
    error::{AppError, AppResult},
    state::AppState,
    timefmt::iso8601,
};

const MIN_CLIENT_KEY_CHARS: usize = 16;
const MAX_CLIENT_KEY_CHARS: usize = 256;

/// Who created a conversation: a user, or the holder of an anonymous client key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner(String);

impl Owner {
    pub fn user(id: i32) -> Self {
        Self(format!("user:{id}"))
    }

    /// A client's own random key (sent as `X-Client-Key` or `auth.clientKey`);
    /// only its hash is stored.
    pub fn client_key(key: &str) -> AppResult<Self> {
        let chars = key.chars().count();
        if !(MIN_CLIENT_KEY_CHARS..=MAX_CLIENT_KEY_CHARS).contains(&chars)
            || !key.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(invalid(format!(
                "a client key must be {MIN_CLIENT_KEY_CHARS} to {MAX_CLIENT_KEY_CHARS} printable characters"
            )));
        }
        Ok(Self(format!("key:{}", sha256_hex(key))))
    }

    /// The AI budget an anonymous owner spends.
    pub fn budget_key(&self) -> BudgetKey {
        BudgetKey::ClientKey(self.0.clone())
    }
}

/// What a caller may see of the conversations. A conversation created with a
/// token or client key belongs to it in either scope; in `open` scope the
/// keyless ones (what unchanged frontends create) are open to every keyless
/// caller, in `owner` scope there are none.
#[derive(Debug, Clone)]
pub struct Access {
    scope: ConversationScope,
    owner: Option<Owner>,
    /// The server itself sees everything.
    everything: bool,
}

impl Access {
    pub fn new(scope: ConversationScope, owner: Option<Owner>) -> Self {
        Self {
            scope,
            owner,
            everything: false,
        }
    }

    pub fn owner(&self) -> Option<&Owner> {
        self.owner.as_ref()
    }

    /// The server itself (a stream reporting its conversation).
    pub fn server() -> Self {
        Self {
            everything: true,
            ..Self::new(ConversationScope::Open, None)
        }
    }

    /// The owner a conversation of this caller's has: its own, or none.
    fn owner_column(&self) -> Option<&str> {
        self.owner.as_ref().map(|owner| owner.0.as_str())
    }

    /// In `owner` scope a caller must say who it is.
    fn require_identity(&self) -> AppResult<()> {
        if self.scope == ConversationScope::Owner && self.owner.is_none() {
            return Err(AppError::Unauthorized {
                code: "OWNER_REQUIRED",
                message: "Conversations are private here: send a Bearer token or an X-Client-Key"
                    .to_owned(),
            });
        }
        Ok(())
    }

    /// Whether the caller may see `row`; another's conversation is not found.
    fn check(&self, row: conversation::Model) -> AppResult<conversation::Model> {
        if self.everything {
            return Ok(row);
        }
        self.require_identity()?;
        if row.owner.as_deref() != self.owner_column() {
            return Err(not_found());
        }
        Ok(row)
    }
}

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
    /// The server stopped while generating it.
    Interrupted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Streaming => "streaming",
            Status::Complete => "complete",
            Status::Stopped => "stopped",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
        }
    }
}

/// A message as clients see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AssistantMessage)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Conversation)]
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
/// NUL characters become U+FFFD: PostgreSQL refuses them in text.
pub fn validate_message(config: &Config, message: &str) -> AppResult<String> {
    let message = message.trim();
    if message.is_empty() {
        return Err(invalid("message must not be empty"));
    }
    let limit = config.assistant_max_message_chars;
    if message.chars().count() > limit {
        return Err(invalid(format!(
            "message is longer than {limit} characters"
        )));
    }
    Ok(message.replace('\0', "\u{FFFD}"))
}

/// A conversation id: the ids this server hands out are UUIDs, but clients may
/// have their own; anything short and printable.
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

fn validate_title(title: &str) -> AppResult<String> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(invalid(format!(
            "title must be 1 to {MAX_TITLE_CHARS} characters"
        )));
    }
    Ok(title.replace('\0', "\u{FFFD}"))
}

pub async fn create_conversation(
    db: &DatabaseConnection,
    access: &Access,
    title: &str,
) -> AppResult<conversation::Model> {
    access.require_identity()?;
    let title = validate_title(title)?;
    let now = Utc::now();
    Ok(conversation::ActiveModel {
        id: Set(uuid::Uuid::new_v4().to_string()),
        title: Set(title),
        created_at: Set(now),
        updated_at: Set(now),
        owner: Set(access.owner.as_ref().map(|owner| owner.0.clone())),
    }
    .insert(db)
    .await?)
}

/// The conversation, when the caller may see it.
pub async fn find_conversation(
    db: &DatabaseConnection,
    access: &Access,
    id: &str,
) -> AppResult<conversation::Model> {
    validate_conversation_id(id)?;
    let row = conversation::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .ok_or_else(not_found)?;
    access.check(row)
}

/// Whether the caller may follow the conversation's room: one it may see, or
/// in `open` scope one that does not exist (yet: its room stays empty).
pub async fn may_follow(db: &DatabaseConnection, access: &Access, id: &str) -> AppResult<()> {
    validate_conversation_id(id)?;
    let row = conversation::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?;
    match row {
        Some(row) => access.check(row).map(|_| ()),
        None if access.scope == ConversationScope::Open => Ok(()),
        None => Err(not_found()),
    }
}

pub async fn rename_conversation(
    db: &DatabaseConnection,
    access: &Access,
    id: &str,
    title: &str,
) -> AppResult<ConversationView> {
    let title = validate_title(title)?;
    let mut row: conversation::ActiveModel = find_conversation(db, access, id).await?.into();
    row.title = Set(title);
    row.updated_at = Set(Utc::now());
    let row = row.update(db).await?;
    conversation_view(db, row).await
}

pub async fn delete_conversation(
    db: &DatabaseConnection,
    access: &Access,
    id: &str,
) -> AppResult<()> {
    find_conversation(db, access, id).await?;
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

pub async fn get_conversation(
    db: &DatabaseConnection,
    access: &Access,
    id: &str,
) -> AppResult<ConversationView> {
    let row = find_conversation(db, access, id).await?;
    conversation_view(db, row).await
}

/// Conversations the caller may see, most recently updated first, each with
/// only its last message.
/// A page of the conversation list: at most `limit`, the newest first, those
/// after `before` (a conversation id the previous page ended with).
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub limit: Option<u32>,
    pub before: Option<String>,
}

/// Conversations a page lists unless asked for fewer; more are refused.
pub const DEFAULT_LIST_LIMIT: u64 = 100;
pub const MAX_LIST_LIMIT: u64 = 500;

/// The caller's conversations on `page`, and the cursor of the next page when
/// there is one.
pub async fn list_conversations(
    db: &DatabaseConnection,
    access: &Access,
    page: &ListPage,
) -> AppResult<(Vec<ConversationView>, Option<String>)> {
    access.require_identity()?;
    let limit = page.limit.map_or(DEFAULT_LIST_LIMIT, u64::from);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(invalid(format!("limit must be 1 to {MAX_LIST_LIMIT}")));
    }
    let mut query = conversation::Entity::find()
        .filter(match access.owner_column() {
            Some(owner) => conversation::Column::Owner.eq(owner),
            None => conversation::Column::Owner.is_null(),
        })
        .order_by_desc(conversation::Column::UpdatedAt)
        .order_by_desc(conversation::Column::Id);
    if let Some(before) = &page.before {
        let cursor = find_conversation(db, access, before)
            .await
            .map_err(|_| invalid("before must name a conversation of the list"))?;
        query = query.filter(
            Condition::any()
                .add(conversation::Column::UpdatedAt.lt(cursor.updated_at))
                .add(
                    Condition::all()
                        .add(conversation::Column::UpdatedAt.eq(cursor.updated_at))
                        .add(conversation::Column::Id.lt(cursor.id)),
                ),
        );
    }
    let mut rows = query.limit(limit + 1).all(db).await?;
    let next = (rows.len() as u64 > limit).then(|| {
        rows.truncate(limit as usize);
        rows.last().map(|row| row.id.clone())
    });
    let next = next.flatten();
    let ids: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
    let mut last: std::collections::HashMap<String, MessageView> =
        crate::store::newest_per_group::<assistant_message::Entity>(
            db,
            assistant_message::Column::ConversationId,
            assistant_message::Column::Seq,
            Condition::all().add(assistant_message::Column::ConversationId.is_in(ids)),
        )
        .await?
        .into_iter()
        .map(|row| (row.conversation_id.clone(), MessageView::from(row)))
        .collect();
    let views = rows
        .into_iter()
        .map(|row| {
            let messages = last.remove(&row.id).into_iter().collect();
            ConversationView::new(row, messages)
        })
        .collect();
    Ok((views, next))
}

/// Stores a message and marks the conversation updated.
pub async fn add_message(
    db: &DatabaseConnection,
    conversation_id: &str,
    role: Role,
    content: &str,
    status: Status,
) -> AppResult<MessageView> {
    insert_message(db, conversation_id, role, content, status, None).await
}

/// Stores the empty reply `node` is about to stream; another node marks it
/// interrupted if `node` dies before it ends.
pub async fn start_reply(
    db: &DatabaseConnection,
    node: &NodeId,
    conversation_id: &str,
) -> AppResult<MessageView> {
    let status = Status::Streaming;
    insert_message(db, conversation_id, Role::Assistant, "", status, Some(node)).await
}

async fn insert_message(
    db: &DatabaseConnection,
    conversation_id: &str,
    role: Role,
    content: &str,
    status: Status,
    node: Option<&NodeId>,
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
        node_id: Set(node.map(ToString::to_string)),
        ..Default::default()
    }
    .insert(db)
    .await?
    .into())
}

/// Saves a reply's text so far (and its status).
/// The conversation's newest assistant reply, if it has one.
pub async fn newest_reply(
    db: &DatabaseConnection,
    conversation_id: &str,
) -> AppResult<Option<assistant_message::Model>> {
    Ok(assistant_message::Entity::find()
        .filter(assistant_message::Column::ConversationId.eq(conversation_id))
        .filter(assistant_message::Column::Role.eq("assistant"))
        .order_by_desc(assistant_message::Column::Seq)
        .one(db)
        .await?)
}

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
    access: &Access,
    conversation_id: Option<&str>,
    message: &str,
) -> AppResult<conversation::Model> {
    match conversation_id {
        Some(id) => find_conversation(db, access, id).await,
        None => create_conversation(db, access, &title_from(message)).await,
    }
}

/// `POST /api/chat`: the whole answer at once; both messages are stored.
pub async fn answer(
    state: &AppState,
    access: &Access,
    payer: &Payer,
    conversation_id: Option<&str>,
    message: &str,
) -> AppResult<(MessageView, ConversationView)> {
    let message = validate_message(&state.config, message)?;
    let permit = state.ai_budget.admit(payer)?;
    let message = message.as_str();
    let conversation = conversation_for(&state.db, access, conversation_id, message).await?;
    add_message(
        &state.db,
        &conversation.id,
        Role::User,
        message,
        Status::Complete,
    )
    .await?;
    let request = request_for(state, &conversation.id, None).await?;
    let completion = permit
        .complete(state.ai.default_model().as_ref(), request)
        .await?;
    let reply = add_message(
        &state.db,
        &conversation.id,
        Role::Assistant,
        &completion.text,
        Status::Complete,
    )
    .await?;
    let view = get_conversation(&state.db, &Access::server(), &conversation.id).await?;
    Ok((reply, view))
}

/// Replies left `streaming` by a server that stopped are marked
/// `interrupted`, keeping the text saved so far. With `older_than`, only those
/// not saved since (other nodes may be streaming the newer ones).
pub async fn mark_interrupted(db: &DatabaseConnection) -> AppResult<u64> {
    let update = assistant_message::Entity::update_many()
        .col_expr(
            assistant_message::Column::Status,
            Expr::value(Status::Interrupted.as_str()),
        )
        .filter(assistant_message::Column::Status.eq(Status::Streaming.as_str()))
        .filter(nodes::orphaned(assistant_message::Column::NodeId));
    Ok(update.exec(db).await?.rows_affected)
}

/// The conversation of a reply still streaming (on whichever node).
pub async fn streaming_conversation_of(
    db: &DatabaseConnection,
    message_id: &str,
) -> AppResult<Option<String>> {
    Ok(assistant_message::Entity::find()
        .select_only()
        .column(assistant_message::Column::ConversationId)
        .filter(assistant_message::Column::Id.eq(message_id))
        .filter(assistant_message::Column::Status.eq(Status::Streaming.as_str()))
        .into_tuple()
        .one(db)
        .await?)
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
