//! The AI seam: one [`ChatModel`] interface that every flow talks to, the
//! providers behind it, and the choice between them.
//!
//! A model answers a [`ChatRequest`] with a stream of [`StreamItem`]s (text deltas,
//! then token usage). Dropping the stream cancels the generation: the OpenAI
//! provider closes its upstream HTTP connection at once.

mod budget;
mod demo;
mod metered;
mod openai;

use std::{collections::HashMap, fmt, pin::Pin, sync::Arc};

use futures::{Stream, StreamExt};
use serde::Serialize;

use crate::config::Config;
pub use budget::{AiBudget, AiPermit, BudgetKey, Payer};
pub use demo::DemoModel;
use metered::Metered;
pub use openai::OpenAiCompatibleModel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// Overrides the provider's model.
    pub model: Option<String>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub output: OutputFormat,
}

/// What shape the answer must have.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum OutputFormat {
    #[default]
    Text,
    /// Any JSON object (`response_format: json_object`).
    JsonObject,
    /// A JSON object following `schema` (`response_format: json_schema`, the
    /// provider's structured output).
    JsonSchema {
        name: &'static str,
        schema: serde_json::Value,
    },
}

impl OutputFormat {
    pub fn is_json(&self) -> bool {
        !matches!(self, OutputFormat::Text)
    }
}

impl ChatRequest {
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// False when the provider reported nothing and the counts are estimates.
    pub reported: bool,
}

impl TokenUsage {
    pub fn total(&self) -> u32 {
        self.prompt_tokens + self.completion_tokens
    }

    /// About four characters a token: what quotas fall back on when a provider
    /// reports no usage.
    pub fn estimate(request: &ChatRequest, answer: &str) -> Self {
        let prompt_chars: usize = request.messages.iter().map(|m| m.content.len()).sum();
        Self {
            prompt_tokens: prompt_chars.div_ceil(4) as u32,
            completion_tokens: answer.len().div_ceil(4) as u32,
            reported: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    Delta(String),
    Usage(TokenUsage),
}

pub type DeltaStream = Pin<Box<dyn Stream<Item = Result<StreamItem, AiError>> + Send>>;

/// A whole answer, collected from a stream.
#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub usage: TokenUsage,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AiError {
    #[error("the AI provider could not be reached: {0}")]
    Unreachable(String),
    #[error("the AI provider timed out")]
    Timeout,
    #[error("the AI provider answered {status}: {message}")]
    Upstream { status: u16, message: String },
    #[error("the AI provider's stream broke off: {0}")]
    Stream(String),
    #[error("the AI provider's answer is unusable: {0}")]
    InvalidOutput(String),
}

impl AiError {
    /// What a client is told; upstream messages may echo keys, so they stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            Self::Unreachable(_) => "The AI provider is unreachable".to_owned(),
            Self::Timeout => "The AI provider timed out".to_owned(),
            Self::Upstream { status: 429, .. } => {
                "The AI provider is rate limiting requests".to_owned()
            }
            Self::Upstream { status, .. } => {
                format!("The AI provider returned an error ({status})")
            }
            Self::Stream(_) => "The AI provider's answer broke off".to_owned(),
            Self::InvalidOutput(detail) => {
                format!("The AI provider's answer is unusable: {detail}")
            }
        }
    }
}

#[async_trait::async_trait]
pub trait ChatModel: Send + Sync + fmt::Debug {
    /// The provider's configuration name (`openai`, `openrouter`, `gemini`, `demo`).
    fn provider(&self) -> ProviderName;
    /// The model used when a request names none.
    fn default_model(&self) -> &str;
    /// Starts a generation. Errors before the first delta (unreachable, 4xx/5xx
    /// after retries) come back here; later ones inside the stream.
    async fn stream(&self, request: ChatRequest) -> Result<DeltaStream, AiError>;

    /// The whole answer at once.
    async fn complete(&self, request: ChatRequest) -> Result<Completion, AiError> {
        let stream = self.stream(request.clone()).await?;
        collect(stream, &request).await
    }
}

/// The whole answer of `request` from its stream.
async fn collect(mut stream: DeltaStream, request: &ChatRequest) -> Result<Completion, AiError> {
    let mut text = String::new();
    let mut usage = None;
    while let Some(item) = stream.next().await {
        match item? {
            StreamItem::Delta(delta) => text.push_str(&delta),
            StreamItem::Usage(reported) => usage = Some(reported),
        }
    }
    let usage = usage.unwrap_or_else(|| TokenUsage::estimate(request, &text));
    Ok(Completion { text, usage })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    Openai,
    Openrouter,
    Gemini,
    Demo,
}

impl ProviderName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Openrouter => "openrouter",
            Self::Gemini => "gemini",
            Self::Demo => "demo",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "openai" => Some(Self::Openai),
            "openrouter" => Some(Self::Openrouter),
            "gemini" => Some(Self::Gemini),
            "demo" => Some(Self::Demo),
            _ => None,
        }
    }
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const OPENROUTER_BASE_URL: &str = "https://openrouter.ai/api/v1";
const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta/openai";

/// The configured providers. The default is the first configured of OpenAI,
/// OpenRouter and Gemini, else the demo provider.
#[derive(Debug, Clone)]
pub struct Providers {
    by_name: HashMap<ProviderName, Arc<dyn ChatModel>>,
    default: Arc<dyn ChatModel>,
}

impl Providers {
    pub fn from_config(config: &Config) -> Result<Self, AiError> {
        let mut by_name: HashMap<ProviderName, Arc<dyn ChatModel>> = HashMap::new();
        let mut order = Vec::new();
        let model_for = |fallback: &str, is_first: bool| -> String {
            match (&config.ai_model, is_first) {
                (Some(model), true) => model.clone(),
                _ => fallback.to_owned(),
            }
        };
        if config.openai_api_key.is_some() || config.openai_base_url.is_some() {
            let model = OpenAiCompatibleModel::new(
                ProviderName::Openai,
                config
                    .openai_base_url
                    .as_deref()
                    .unwrap_or("https://api.openai.com/v1"),
                config.openai_api_key.as_deref().unwrap_or_default(),
                &model_for("gpt-4o-mini", order.is_empty()),
                config,
            )?;
            order.push(ProviderName::Openai);
            by_name.insert(ProviderName::Openai, Arc::new(Metered(model)));
        }
        if let Some(key) = &config.openrouter_api_key {
            let model = OpenAiCompatibleModel::new(
                ProviderName::Openrouter,
                OPENROUTER_BASE_URL,
                key,
                &model_for("openai/gpt-4o-mini", order.is_empty()),
                config,
            )?;
            order.push(ProviderName::Openrouter);
            by_name.insert(ProviderName::Openrouter, Arc::new(Metered(model)));
        }
        if let Some(key) = &config.gemini_api_key {
            let model = OpenAiCompatibleModel::new(
                ProviderName::Gemini,
                GEMINI_BASE_URL,
                key,
                &model_for("gemini-2.0-flash", order.is_empty()),
                config,
            )?;
            order.push(ProviderName::Gemini);
            by_name.insert(ProviderName::Gemini, Arc::new(Metered(model)));
        }
        let demo: Arc<dyn ChatModel> = Arc::new(Metered(DemoModel::new(config.demo_word_delay_ms)));
        by_name.insert(ProviderName::Demo, demo.clone());
        let default = order
            .first()
            .and_then(|name| by_name.get(name).cloned())
            .unwrap_or(demo);
        Ok(Self { by_name, default })
    }

    pub fn default_model(&self) -> &Arc<dyn ChatModel> {
        &self.default
    }

    /// The named provider when it is configured, else the default one; the
    /// caller reports which one actually answers (`effectiveProvider`).
    pub fn get_or_default(&self, name: ProviderName) -> &Arc<dyn ChatModel> {
        self.by_name.get(&name).unwrap_or(&self.default)
    }

    pub fn is_configured(&self, name: ProviderName) -> bool {
        self.by_name.contains_key(&name)
    }
}
