//! Live-chat logic: sessions, messages, hand-off state, the AI settings and
//! the AI's answer. Nothing here knows about sockets; the event handlers and
//! routes decide who hears about a change.
//!
//! Writes go through the group-commit [`Writer`]; the hand-off flags and AI
//! settings are read from the [`HotState`] cache (the database holds the
//! truth, see [`super::cache`]).

use std::{hash::BuildHasher, sync::Arc};

use chrono::{DateTime, Utc};
use entity::{ai_config, chat_message, chat_session};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, MutexGuard};

use super::{
    cache::HotState,
    domain::{MessageText, MessageView, Reply, SessionId, Visitor},
    handoff,
    store::{HandedOff, Writer},
};
use crate::{
    ai::{AiPermit, ChatMessage, ChatRequest, Payer, ProviderName, Role},
    cluster::{self, Signal, nodes},
    config::Config,
    error::{AppError, AppResult},
    state::AppState,
    telemetry::metrics,
    timefmt::iso8601,
};

/// How many recent messages the AI sees.
const AI_CONTEXT_MESSAGES: u64 = 10;
const SESSION_LIST_LIMIT: u64 = 500;
/// Live-chat sessions share this many locks; a collision only makes two
/// sessions wait for each other briefly.
const LOCK_STRIPES: usize = 1024;
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a friendly customer-support assistant on this website. \
Answer briefly and politely. If you cannot help, offer to connect the visitor with a human agent.";

/// The live-chat flow's own state, installed in the app state at start-up.
pub struct Livechat {
    pub writer: Writer,
    pub cache: Arc<HotState>,
    locks: SessionLocks,
}

impl Livechat {
    pub fn new(db: DatabaseConnection, config: &Config, node: &str) -> Self {
        let cache = Arc::new(HotState::new(config.livechat_session_cache, node));
        Self {
            writer: Writer::start(db, config, cache.clone()),
            cache,
            locks: SessionLocks::new(LOCK_STRIPES),
        }
    }
}

fn flow(state: &AppState) -> &Livechat {
    state.flow::<Livechat>()
}

/// Per-session locks, striped so memory stays bounded without clean-up. A
/// session's "store, then deliver" steps run under its lock, so every
/// listener sees its messages in the order they are stored.
struct SessionLocks {
    stripes: Box<[Mutex<()>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl SessionLocks {
    fn new(stripes: usize) -> Self {
        Self {
            stripes: (0..stripes.max(1)).map(|_| Mutex::new(())).collect(),
            hasher: Default::default(),
        }
    }

    async fn lock(&self, session: &SessionId) -> MutexGuard<'_, ()> {
        let index = self.hasher.hash_one(session.as_str()) as usize % self.stripes.len();
        self.stripes[index].lock().await
    }
}

/// Holds the session's order lock while its changes are stored and delivered.
pub async fn lock<'a>(state: &'a AppState, session: &SessionId) -> MutexGuard<'a, ()> {
    flow(state).locks.lock(session).await
}

/// A session as clients see it, with some or all of its messages.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LiveChatSession)]
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
    /// The visitor's messages no admin has marked read (in the session list only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread_count: Option<i64>,
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
            unread_count: None,
        }
    }
}

pub fn session_not_found() -> AppError {
    AppError::not_found("SESSION_NOT_FOUND", "Chat session not found")
}

async fn find_session(
    db: &DatabaseConnection,
    session: &SessionId,
) -> AppResult<Option<chat_session::Model>> {
    Ok(chat_session::Entity::find()
        .filter(chat_session::Column::SessionId.eq(session.as_str()))
        .one(db)
        .await?)
}

/// Creates the session when it is new (idempotent: widgets announce themselves
/// twice). A session the cache knows costs no database work.
/// Whether this node has seen the session lately (its cache holds it).
pub fn is_known(state: &AppState, session: &SessionId) -> bool {
    flow(state).cache.session(session.as_str()).is_some()
}

pub async fn ensure_session(
    state: &AppState,
    session: &SessionId,
    visitor: Visitor,
) -> AppResult<()> {
    let livechat = flow(state);
    if livechat.cache.session(session.as_str()).is_some() {
        return Ok(());
    }
    livechat.writer.ensure_session(session, visitor).await
}

/// What should follow a visitor's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUp {
    /// The AI answers (the session is marked waiting for it).
    AiReply,
    /// The visitor asked for a human.
    Handoff,
    /// A human has the session, or the AI is off.
    None,
}

/// Stores a visitor's message (creating the session when new, with the
/// details `visitor` gives) and decides what follows it.
pub async fn record_user_message(
    state: &AppState,
    session: &SessionId,
    text: MessageText,
    visitor: impl FnOnce() -> Visitor,
) -> AppResult<(MessageView, FollowUp)> {
    let wants_human = handoff::wants_human(text.as_str());
    let ai_wanted = !wants_human && ai_settings(state).await?.is_enabled;
    let livechat = flow(state);
    // Only a session that may be new needs the visitor's details.
    let visitor = match livechat.cache.session(session.as_str()) {
        Some(_) => Visitor::default(),
        None => visitor(),
    };
    let stored = livechat
        .writer
        .user_message(session, visitor, text, ai_wanted)
        .await?;
    let follow_up = if wants_human {
        FollowUp::Handoff
    } else if stored.ai_pending {
        FollowUp::AiReply
    } else {
        FollowUp::None
    };
    Ok((stored.row, follow_up))
}

/// The visitor asked for a human: the session is handed off and, the first
/// time, the AI's "connecting you" notice stored.
pub async fn hand_off(state: &AppState, session: &SessionId) -> AppResult<HandedOff> {
    let handed_off = flow(state)
        .writer
        .hand_off(session, Some(MessageText::server(handoff::HANDOFF_REPLY)))
        .await?;
    if handed_off.first {
        metrics::handed_off();
    }
    session_changed(state, session);
    Ok(handed_off)
}

/// An admin's reply: the session is handed off and the reply stored, at once.
pub async fn record_admin_reply(
    state: &AppState,
    session: &SessionId,
    text: MessageText,
) -> AppResult<Reply> {
    let reply = flow(state).writer.admin_reply(session, text).await?;
    session_changed(state, session);
    Ok(reply)
}

/// Stores the AI's answer unless a human took the session meanwhile (then `None`).
pub async fn record_ai_reply(
    state: &AppState,
    session: &SessionId,
    text: &str,
) -> AppResult<Option<Reply>> {
    flow(state)
        .writer
        .ai_reply(session, MessageText::server(text))
        .await
}

/// The AI could not answer; the session no longer waits for it.
pub async fn ai_reply_failed(state: &AppState, session: &SessionId) -> AppResult<()> {
    flow(state).writer.clear_ai_pending(session).await
}

/// An admin takes the session (`true`: the AI stays silent from now, even
/// before a reply) or hands it back to the AI (`false`).
pub async fn set_handed_off(
    state: &AppState,
    session: &SessionId,
    handed_off: bool,
) -> AppResult<()> {
    flow(state)
        .writer
        .set_handed_off(session, handed_off)
        .await?;
    session_changed(state, session);
    Ok(())
}

/// Signal topics: another node changed a session's hand-off flag, or the AI settings.
const SESSION_CHANGED: &str = "livechat.session";
const CONFIG_CHANGED: &str = "livechat.config";

/// Other nodes drop what they cached of the session.
fn session_changed(state: &AppState, session: &SessionId) {
    state.cluster.publish(
        SESSION_CHANGED,
        serde_json::json!({ "sessionId": session.as_str() }),
    );
}

/// What another node told this one.
pub fn on_signal(state: &AppState, signal: &Signal) {
    let cache = &flow(state).cache;
    match signal.topic.as_str() {
        SESSION_CHANGED => {
            if let Some(session) = signal.body.get("sessionId").and_then(|id| id.as_str()) {
                cache.forget_session(session);
            }
        }
        CONFIG_CHANGED => cache.forget_config(),
        cluster::RESYNC => cache.forget_all(),
        _ => {}
    }
}

/// Sessions whose AI answer no live node is generating any more (its node
/// stopped, or died), each claimed for this node so that only one node
/// answers it again.
pub async fn claim_orphaned_ai_replies(state: &AppState) -> AppResult<Vec<SessionId>> {
    let orphans: Vec<(String, Option<String>)> = chat_session::Entity::find()
        .select_only()
        .column(chat_session::Column::SessionId)
        .column(chat_session::Column::AiReplyNode)
        .filter(chat_session::Column::AiReplyPendingAt.is_not_null())
        .filter(nodes::orphaned(chat_session::Column::AiReplyNode))
        .into_tuple()
        .all(&state.db)
        .await?;
    let me = state.cluster.node().as_str();
    let mut claimed = Vec::with_capacity(orphans.len());
    for (session, owner) in orphans {
        let previous_owner = match &owner {
            Some(owner) => chat_session::Column::AiReplyNode.eq(owner.as_str()),
            None => chat_session::Column::AiReplyNode.is_null(),
        };
        let taken = chat_session::Entity::update_many()
            .col_expr(chat_session::Column::AiReplyNode, Expr::value(me))
            .filter(chat_session::Column::SessionId.eq(session.as_str()))
            .filter(chat_session::Column::AiReplyPendingAt.is_not_null())
            .filter(previous_owner)
            .exec(&state.db)
            .await?
            .rows_affected;
        // Stored ids passed validation when they were stored; a shorter
        // minimum configured since must not hide them.
        if taken == 1
            && let Ok(session) = SessionId::parse(&session, 1)
        {
            claimed.push(session);
        }
    }
    Ok(claimed)
}

/// The AI's answer to the session's latest messages (not stored), paid by `payer`.
pub async fn generate_reply(
    state: &AppState,
    session: &SessionId,
    payer: &Payer,
) -> AppResult<String> {
    let permit = state.ai_budget.admit(payer)?;
    let history = recent_history(&state.db, session).await?;
    answer(state, history, permit).await
}

async fn recent_history(
    db: &DatabaseConnection,
    session: &SessionId,
) -> AppResult<Vec<ChatMessage>> {
    let mut recent = chat_message::Entity::find()
        .filter(chat_message::Column::SessionId.eq(session.as_str()))
        .order_by_desc(chat_message::Column::Id)
        .limit(AI_CONTEXT_MESSAGES)
        .all(db)
        .await?;
    recent.reverse();
    Ok(recent.into_iter().map(as_chat_message).collect())
}

/// The visitor speaks as the user; the AI and admins as the assistant.
fn as_chat_message(row: chat_message::Model) -> ChatMessage {
    let role = if row.sender_type == super::domain::Sender::User.as_str() {
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
    session: Option<&SessionId>,
    text: MessageText,
    payer: &Payer,
) -> AppResult<String> {
    let permit = state.ai_budget.admit(payer)?;
    let mut history = match session {
        Some(session) => recent_history(&state.db, session).await?,
        None => Vec::new(),
    };
    history.push(ChatMessage::new(Role::User, text.as_str().to_owned()));
    answer(state, history, permit).await
}

/// Asks the configured model, with the configured system prompt before `history`.
async fn answer(
    state: &AppState,
    history: Vec<ChatMessage>,
    permit: AiPermit,
) -> AppResult<String> {
    let config = ai_settings(state).await?;
    let (model, effective) = resolve_model(state, &config);
    let mut messages = Vec::with_capacity(history.len() + 1);
    messages.push(ChatMessage::new(Role::System, config.system_prompt.clone()));
    messages.extend(history);
    let request = ChatRequest {
        messages,
        model,
        temperature: Some(config.temperature),
        max_tokens: u32::try_from(config.max_tokens).ok().filter(|n| *n > 0),
        ..ChatRequest::default()
    };
    let completion = permit
        .complete(state.ai.get_or_default(effective).as_ref(), request)
        .await?;
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
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

/// The AI settings, from the cache (read from the database after a change
/// elsewhere, or the first time).
pub async fn ai_settings(state: &AppState) -> AppResult<Arc<ai_config::Model>> {
    let cache = &flow(state).cache;
    if let Some(config) = cache.config() {
        return Ok(config);
    }
    Ok(cache.remember_config(load_config(state).await?))
}

/// The settings row, created with defaults on first use.
async fn load_config(state: &AppState) -> AppResult<ai_config::Model> {
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

pub fn config_view(state: &AppState, config: &ai_config::Model) -> AiConfigView {
    let (_, effective_provider) = resolve_model(state, config);
    AiConfigView {
        is_enabled: config.is_enabled,
        provider: config.provider.clone(),
        effective_provider,
        model: config.model.clone(),
        system_prompt: config.system_prompt.clone(),
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
    let saved = flow(state).cache.remember_config(saved);
    state
        .cluster
        .publish(CONFIG_CHANGED, serde_json::Value::Null);
    Ok(config_view(state, &saved))
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
            Condition::all().add(chat_message::Column::SessionId.is_in(ids.clone())),
        )
        .await?
        .into_iter()
        .map(|row| (row.session_id.clone(), MessageView::from(row)))
        .collect();
    let unread: std::collections::HashMap<String, i64> = chat_message::Entity::find()
        .select_only()
        .column(chat_message::Column::SessionId)
        .column_as(chat_message::Column::Id.count(), "unread")
        .filter(chat_message::Column::SessionId.is_in(ids))
        .filter(chat_message::Column::IsRead.eq(false))
        .filter(chat_message::Column::SenderType.eq("user"))
        .group_by(chat_message::Column::SessionId)
        .into_tuple::<(String, i64)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    Ok(sessions
        .into_iter()
        .map(|session| {
            let messages = newest.remove(&session.session_id).into_iter().collect();
            let unread_count = unread.get(&session.session_id).copied().unwrap_or(0);
            SessionView {
                unread_count: Some(unread_count),
                ..SessionView::new(session, messages)
            }
        })
        .collect())
}

/// A session's messages, oldest first; only those after `after` when given.
pub async fn messages(
    db: &DatabaseConnection,
    session: &SessionId,
    after: Option<i32>,
) -> AppResult<Vec<MessageView>> {
    let mut query =
        chat_message::Entity::find().filter(chat_message::Column::SessionId.eq(session.as_str()));
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
    session: &SessionId,
) -> AppResult<SessionView> {
    let row = find_session(db, session)
        .await?
        .ok_or_else(session_not_found)?;
    let messages = messages(db, session, None).await?;
    Ok(SessionView::new(row, messages))
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
