//! The live-chat AI: its answer to a session, a test answer for the console,
//! and its settings (read through the [`super::cache::HotState`] cache,
//! written through to the database and announced to the other nodes).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{ai_config, chat_message};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};

use super::{
    domain::{MessageText, Sender, SessionId},
    service::flow,
};
use crate::{
    ai::{AiPermit, ChatMessage, ChatRequest, Payer, ProviderName, Role},
    error::{AppError, AppResult},
    state::AppState,
    timefmt::iso8601,
};

/// How many recent messages the AI sees.
const AI_CONTEXT_MESSAGES: u64 = 10;
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a friendly customer-support assistant on this website. \
Answer briefly and politely. If you cannot help, offer to connect the visitor with a human agent.";
/// Signal topic: another node changed the AI settings.
pub(super) const CONFIG_CHANGED: &str = "livechat.config";

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
