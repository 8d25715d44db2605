//! Live-chat logic and persistence: sessions, messages, hand-off state, the AI
//! settings and the AI's answer. Nothing here knows about sockets; the event
//! handlers and routes decide who hears about a change.

use std::hash::BuildHasher;

use chrono::{DateTime, Utc};
use entity::{ai_config, chat_message, chat_session};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, MutexGuard};

use crate::{
    ai::{ChatMessage, ChatRequest, ProviderName, Role},
    error::{AppError, AppResult},
    state::AppState,
    timefmt::iso8601,
};

/// How many recent messages the AI sees.
const AI_CONTEXT_MESSAGES: u64 = 10;
const MAX_SESSION_ID_CHARS: usize = 128;
const SESSION_LIST_LIMIT: u64 = 500;
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a friendly customer-support assistant on this website. \
Answer briefly and politely. If you cannot help, offer to connect the visitor with a human agent.";

/// Per-session locks, striped so memory stays bounded without clean-up. A
/// session's "persist, then deliver" steps run under its lock, so every
/// listener sees its messages in the order they are stored, and an AI answer
/// cannot slip in after an admin took over.
pub struct SessionLocks {
    stripes: Box<[Mutex<()>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl SessionLocks {
    pub fn new(stripes: usize) -> Self {
        Self {
            stripes: (0..stripes.max(1)).map(|_| Mutex::new(())).collect(),
            hasher: Default::default(),
        }
    }

    pub async fn lock(&self, session_id: &str) -> MutexGuard<'_, ()> {
        let index = self.hasher.hash_one(session_id) as usize % self.stripes.len();
        self.stripes[index].lock().await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    User,
    Admin,
    Ai,
}

impl Sender {
    fn as_str(self) -> &'static str {
        match self {
            Sender::User => "user",
            Sender::Admin => "admin",
            Sender::Ai => "ai",
        }
    }
}

/// A message as clients see it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub id: i32,
    pub session_id: String,
    pub message: String,
    pub sender_type: String,
    #[serde(serialize_with = "iso8601")]
    pub timestamp: DateTime<Utc>,
    pub is_read: bool,
}

impl From<chat_message::Model> for MessageView {
    fn from(row: chat_message::Model) -> Self {
        Self {
            id: row.id,
            session_id: row.session_id,
            message: row.message,
            sender_type: row.sender_type,
            timestamp: row.timestamp,
            is_read: row.is_read,
        }
    }
}

/// A session as clients see it, with some or all of its messages.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub id: i32,
    pub session_id: String,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    #[serde(serialize_with = "iso8601")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "iso8601")]
    pub last_active: DateTime<Utc>,
    pub handed_off_to_admin: bool,
    pub messages: Vec<MessageView>,
}

impl SessionView {
    fn new(session: chat_session::Model, messages: Vec<MessageView>) -> Self {
        Self {
            id: session.id,
            session_id: session.session_id,
            ip_address: session.ip_address,
            user_agent: session.user_agent,
            created_at: session.created_at,
            last_active: session.last_active,
            handed_off_to_admin: session.handed_off_to_admin,
            messages,
        }
    }
}

/// Checks a client-chosen session id: it names a room and sits in URLs.
pub fn validate_session_id(session_id: &str) -> AppResult<()> {
    let valid = !session_id.is_empty()
        && session_id.chars().count() <= MAX_SESSION_ID_CHARS
        && session_id.chars().all(|c| c.is_ascii_graphic() && c != '/');
    if valid {
        Ok(())
    } else {
        Err(AppError::Invalid {
            code: "INVALID_SESSION_ID",
            message: format!(
                "sessionId must be 1 to {MAX_SESSION_ID_CHARS} printable characters without spaces or '/'"
            ),
        })
    }
}

/// Checks a message text against the configured limit; returns it trimmed.
pub fn validate_message(message: &str, max_chars: usize) -> AppResult<&str> {
    let message = message.trim();
    if message.is_empty() {
        return Err(AppError::Invalid {
            code: "EMPTY_MESSAGE",
            message: "message must not be empty".to_owned(),
        });
    }
    if message.chars().count() > max_chars {
        return Err(AppError::Invalid {
            code: "MESSAGE_TOO_LONG",
            message: format!("message is longer than {max_chars} characters"),
        });
    }
    Ok(message)
}

fn session_not_found() -> AppError {
    AppError::not_found("SESSION_NOT_FOUND", "Chat session not found")
}

pub async fn find_session(
    db: &DatabaseConnection,
    session_id: &str,
) -> AppResult<Option<chat_session::Model>> {
    Ok(chat_session::Entity::find()
        .filter(chat_session::Column::SessionId.eq(session_id))
        .one(db)
        .await?)
}

/// Where a widget connects from, recorded on the sessions it creates.
#[derive(Debug, Clone, Default)]
pub struct Visitor {
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

/// Creates the session when it is new (idempotent: widgets announce themselves
/// twice) and returns it.
pub async fn ensure_session(
    db: &DatabaseConnection,
    session_id: &str,
    visitor: &Visitor,
) -> AppResult<chat_session::Model> {
    validate_session_id(session_id)?;
    if let Some(session) = find_session(db, session_id).await? {
        return Ok(session);
    }
    let now = Utc::now();
    let row = chat_session::ActiveModel {
        session_id: Set(session_id.to_owned()),
        ip_address: Set(visitor.ip_address.clone()),
        user_agent: Set(visitor.user_agent.clone()),
        created_at: Set(now),
        last_active: Set(now),
        handed_off_to_admin: Set(false),
        ..Default::default()
    };
    // Two first messages can race; the loser finds the winner's row.
    chat_session::Entity::insert(row)
        .on_conflict_do_nothing_on([chat_session::Column::SessionId])
        .exec(db)
        .await?;
    find_session(db, session_id)
        .await?
        .ok_or_else(session_not_found)
}

/// Stores a message and marks the session active.
async fn insert_message<C: sea_orm::ConnectionTrait>(
    db: &C,
    session_id: &str,
    sender: Sender,
    text: &str,
) -> AppResult<MessageView> {
    let now = Utc::now();
    chat_session::Entity::update_many()
        .col_expr(chat_session::Column::LastActive, Expr::value(now))
        .filter(chat_session::Column::SessionId.eq(session_id))
        .exec(db)
        .await?;
    let row = chat_message::ActiveModel {
        session_id: Set(session_id.to_owned()),
        message: Set(text.to_owned()),
        sender_type: Set(sender.as_str().to_owned()),
        timestamp: Set(now),
        is_read: Set(false),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(row.into())
}

/// What should follow a visitor's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUp {
    /// The AI answers.
    AiReply,
    /// The visitor asked for a human; `first` when this hands the session off.
    Handoff { first: bool },
    /// A human has the session, or the AI is off.
    None,
}

/// Stores a visitor's message and decides what follows it.
pub async fn record_user_message(
    state: &AppState,
    session_id: &str,
    text: &str,
    visitor: &Visitor,
) -> AppResult<(MessageView, FollowUp)> {
    let session = ensure_session(&state.db, session_id, visitor).await?;
    let row = insert_message(&state.db, session_id, Sender::User, text).await?;
    let follow_up = if super::handoff::wants_human(text) {
        FollowUp::Handoff {
            first: !session.handed_off_to_admin,
        }
    } else if session.handed_off_to_admin || !load_config(state).await?.is_enabled {
        FollowUp::None
    } else {
        FollowUp::AiReply
    };
    Ok((row, follow_up))
}

/// Marks the session handed off and, when `with_notice`, stores the AI's
/// "connecting you" message.
pub async fn hand_off(
    state: &AppState,
    session_id: &str,
    with_notice: bool,
) -> AppResult<Option<MessageView>> {
    set_handed_off(&state.db, session_id, true).await?;
    if with_notice {
        let notice = insert_message(
            &state.db,
            session_id,
            Sender::Ai,
            super::handoff::HANDOFF_REPLY,
        )
        .await?;
        return Ok(Some(notice));
    }
    Ok(None)
}

pub async fn set_handed_off(
    db: &DatabaseConnection,
    session_id: &str,
    handed_off: bool,
) -> AppResult<chat_session::Model> {
    let updated = chat_session::Entity::update_many()
        .col_expr(
            chat_session::Column::HandedOffToAdmin,
            Expr::value(handed_off),
        )
        .filter(chat_session::Column::SessionId.eq(session_id))
        .exec(db)
        .await?;
    if updated.rows_affected == 0 {
        return Err(session_not_found());
    }
    find_session(db, session_id)
        .await?
        .ok_or_else(session_not_found)
}

/// An admin's reply: the session is handed off and the reply stored, at once.
pub async fn record_admin_reply(
    state: &AppState,
    session_id: &str,
    text: &str,
) -> AppResult<MessageView> {
    let txn = state.db.begin().await?;
    let updated = chat_session::Entity::update_many()
        .col_expr(chat_session::Column::HandedOffToAdmin, Expr::value(true))
        .filter(chat_session::Column::SessionId.eq(session_id))
        .exec(&txn)
        .await?;
    if updated.rows_affected == 0 {
        return Err(session_not_found());
    }
    let row = insert_message(&txn, session_id, Sender::Admin, text).await?;
    txn.commit().await?;
    Ok(row)
}

/// Stores the AI's answer unless the session was handed off meanwhile; the
/// check and the insert are one transaction, so across nodes too no AI answer
/// lands after an admin's reply.
pub async fn record_ai_reply(
    state: &AppState,
    session_id: &str,
    text: &str,
) -> AppResult<Option<MessageView>> {
    let txn = state.db.begin().await?;
    let still_ai = chat_session::Entity::update_many()
        .col_expr(chat_session::Column::LastActive, Expr::value(Utc::now()))
        .filter(chat_session::Column::SessionId.eq(session_id))
        .filter(chat_session::Column::HandedOffToAdmin.eq(false))
        .exec(&txn)
        .await?;
    if still_ai.rows_affected == 0 {
        txn.rollback().await?;
        return Ok(None);
    }
    let row = insert_message(&txn, session_id, Sender::Ai, text).await?;
    txn.commit().await?;
    Ok(Some(row))
}

/// The AI's answer to the session's latest messages (not stored).
pub async fn generate_reply(state: &AppState, session_id: &str) -> AppResult<String> {
    let mut recent = chat_message::Entity::find()
        .filter(chat_message::Column::SessionId.eq(session_id))
        .order_by_desc(chat_message::Column::Id)
        .limit(AI_CONTEXT_MESSAGES)
        .all(&state.db)
        .await?;
    recent.reverse();
    answer(state, recent.into_iter().map(as_chat_message).collect()).await
}

/// The visitor speaks as the user; the AI and admins as the assistant.
fn as_chat_message(row: chat_message::Model) -> ChatMessage {
    let role = if row.sender_type == Sender::User.as_str() {
        Role::User
    } else {
        Role::Assistant
    };
    ChatMessage::new(role, row.message)
}

/// The answer the current settings give to `text`, after the session's
/// history when one is named; nothing is stored.
pub async fn test_answer(
    state: &AppState,
    session_id: Option<&str>,
    text: &str,
) -> AppResult<String> {
    let text = validate_message(text, state.config.livechat_max_message_chars)?;
    let mut history: Vec<ChatMessage> = match session_id {
        Some(session_id) => chat_message::Entity::find()
            .filter(chat_message::Column::SessionId.eq(session_id))
            .order_by_desc(chat_message::Column::Id)
            .limit(AI_CONTEXT_MESSAGES)
            .all(&state.db)
            .await?
            .into_iter()
            .rev()
            .map(as_chat_message)
            .collect(),
        None => Vec::new(),
    };
    history.push(ChatMessage::new(Role::User, text));
    answer(state, history).await
}

/// Asks the configured model, with the configured system prompt before `history`.
async fn answer(state: &AppState, history: Vec<ChatMessage>) -> AppResult<String> {
    let config = load_config(state).await?;
    let (model, effective) = resolve_model(state, &config);
    let mut messages = Vec::with_capacity(history.len() + 1);
    messages.push(ChatMessage::new(Role::System, config.system_prompt.clone()));
    messages.extend(history);
    let request = ChatRequest {
        messages,
        model,
        temperature: Some(config.temperature),
        max_tokens: u32::try_from(config.max_tokens).ok().filter(|n| *n > 0),
        json_output: false,
    };
    let completion = state.ai.get_or_default(effective).complete(request).await?;
    let text = completion.text.trim();
    if text.is_empty() {
        return Err(AppError::Ai(crate::ai::AiError::InvalidOutput(
            "an empty answer".to_owned(),
        )));
    }
    Ok(text.to_owned())
}

/// The provider that actually answers, and the model to ask it for: the stored
/// model belongs to the stored provider, so a fallback uses its own default.
fn resolve_model(state: &AppState, config: &ai_config::Model) -> (Option<String>, ProviderName) {
    let wanted = ProviderName::parse(&config.provider);
    match wanted.filter(|name| state.ai.is_configured(*name)) {
        Some(name) => (
            Some(config.model.clone()).filter(|m| !m.trim().is_empty()),
            name,
        ),
        None => (None, state.ai.default_model().provider()),
    }
}

/// The AI settings as the admin console reads them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AiConfigView {
    pub is_enabled: bool,
    pub provider: String,
    /// The provider that answers: `provider` when it is configured, else the default.
    pub effective_provider: ProviderName,
    pub model: String,
    pub system_prompt: String,
    pub temperature: f32,
    pub max_tokens: i32,
    #[serde(serialize_with = "iso8601")]
    pub updated_at: DateTime<Utc>,
}

/// A change to the AI settings; absent fields stay as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AiConfigChange {
    pub is_enabled: Option<bool>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<i32>,
    /// Sent back by consoles that PUT the object they read; ignored.
    #[serde(default, rename = "updatedAt")]
    pub _updated_at: Option<serde_json::Value>,
    #[serde(default, rename = "effectiveProvider")]
    pub _effective_provider: Option<serde_json::Value>,
    #[serde(default, rename = "id")]
    pub _id: Option<serde_json::Value>,
}

const CONFIG_ROW: i32 = 1;

/// The settings row, created with defaults on first use.
pub async fn load_config(state: &AppState) -> AppResult<ai_config::Model> {
    if let Some(config) = ai_config::Entity::find_by_id(CONFIG_ROW)
        .one(&state.db)
        .await?
    {
        return Ok(config);
    }
    let defaults = ai_config::ActiveModel {
        id: Set(CONFIG_ROW),
        is_enabled: Set(true),
        provider: Set(state.ai.default_model().provider().as_str().to_owned()),
        model: Set(String::new()),
        system_prompt: Set(DEFAULT_SYSTEM_PROMPT.to_owned()),
        temperature: Set(0.7),
        max_tokens: Set(500),
        updated_at: Set(Utc::now()),
    };
    ai_config::Entity::insert(defaults)
        .on_conflict_do_nothing()
        .exec(&state.db)
        .await?;
    ai_config::Entity::find_by_id(CONFIG_ROW)
        .one(&state.db)
        .await?
        .ok_or_else(|| AppError::Internal("the AI settings row is missing".to_owned()))
}

pub fn config_view(state: &AppState, config: ai_config::Model) -> AiConfigView {
    let (_, effective_provider) = resolve_model(state, &config);
    AiConfigView {
        is_enabled: config.is_enabled,
        provider: config.provider,
        effective_provider,
        model: config.model,
        system_prompt: config.system_prompt,
        temperature: config.temperature,
        max_tokens: config.max_tokens,
        updated_at: config.updated_at,
    }
}

pub async fn update_config(state: &AppState, change: AiConfigChange) -> AppResult<AiConfigView> {
    if let Some(provider) = &change.provider
        && ProviderName::parse(provider).is_none()
    {
        return Err(AppError::invalid(
            "provider must be one of openai, openrouter, gemini, demo",
        ));
    }
    if change
        .temperature
        .is_some_and(|t| !(0.0..=2.0).contains(&t))
    {
        return Err(AppError::invalid("temperature must be between 0 and 2"));
    }
    if change
        .max_tokens
        .is_some_and(|n| !(1..=32_000).contains(&n))
    {
        return Err(AppError::invalid("maxTokens must be between 1 and 32000"));
    }
    let mut config: ai_config::ActiveModel = load_config(state).await?.into();
    if let Some(value) = change.is_enabled {
        config.is_enabled = Set(value);
    }
    if let Some(value) = change.provider {
        config.provider = Set(value.trim().to_ascii_lowercase());
    }
    if let Some(value) = change.model {
        config.model = Set(value.trim().to_owned());
    }
    if let Some(value) = change.system_prompt {
        config.system_prompt = Set(value);
    }
    if let Some(value) = change.temperature {
        config.temperature = Set(value);
    }
    if let Some(value) = change.max_tokens {
        config.max_tokens = Set(value);
    }
    config.updated_at = Set(Utc::now());
    let saved = config.update(&state.db).await?;
    Ok(config_view(state, saved))
}

/// Sessions, most recently active first, each with only its newest message.
pub async fn list_sessions(db: &DatabaseConnection) -> AppResult<Vec<SessionView>> {
    let sessions = chat_session::Entity::find()
        .order_by_desc(chat_session::Column::LastActive)
        .order_by_desc(chat_session::Column::Id)
        .limit(SESSION_LIST_LIMIT)
        .all(db)
        .await?;
    let ids: Vec<String> = sessions.iter().map(|s| s.session_id.clone()).collect();
    let mut newest: std::collections::HashMap<String, MessageView> =
        crate::store::newest_per_group::<chat_message::Entity>(
            db,
            chat_message::Column::SessionId,
            chat_message::Column::Id,
            Condition::all().add(chat_message::Column::SessionId.is_in(ids)),
        )
        .await?
        .into_iter()
        .map(|row| (row.session_id.clone(), MessageView::from(row)))
        .collect();
    Ok(sessions
        .into_iter()
        .map(|session| {
            let messages = newest.remove(&session.session_id).into_iter().collect();
            SessionView::new(session, messages)
        })
        .collect())
}

/// A session's messages, oldest first; only those after `after` when given.
pub async fn messages(
    db: &DatabaseConnection,
    session_id: &str,
    after: Option<i32>,
) -> AppResult<Vec<MessageView>> {
    let mut query =
        chat_message::Entity::find().filter(chat_message::Column::SessionId.eq(session_id));
    if let Some(after) = after {
        query = query.filter(chat_message::Column::Id.gt(after));
    }
    Ok(query
        .order_by_asc(chat_message::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(MessageView::from)
        .collect())
}

pub async fn session_with_messages(
    db: &DatabaseConnection,
    session_id: &str,
) -> AppResult<SessionView> {
    let session = find_session(db, session_id)
        .await?
        .ok_or_else(session_not_found)?;
    let messages = messages(db, session_id, None).await?;
    Ok(SessionView::new(session, messages))
}

pub async fn session_view(
    db: &DatabaseConnection,
    session: chat_session::Model,
) -> AppResult<SessionView> {
    let messages = messages(db, &session.session_id, None).await?;
    Ok(SessionView::new(session, messages))
}

pub async fn mark_read(db: &DatabaseConnection, id: i32) -> AppResult<MessageView> {
    let row = chat_message::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found("MESSAGE_NOT_FOUND", "Message not found"))?;
    let mut row: chat_message::ActiveModel = row.into();
    row.is_read = Set(true);
    Ok(row.update(db).await?.into())
}
