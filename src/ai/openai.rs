//! The OpenAI-compatible provider (OpenAI, OpenRouter, Gemini's compatible
//! endpoint, Ollama, vLLM, …) on async-openai.
//!
//! Requests go through async-openai's retry layer (exponential backoff on 429,
//! 5xx and connection errors, honouring `Retry-After`) under one timeout to the
//! response headers; reqwest's read timeout then bounds the gap
//! between two stream events, so a stalled stream fails instead of hanging.

use std::time::Duration;

use async_openai::{
    Client,
    config::OpenAIConfig,
    error::OpenAIError,
    middleware::{ReqwestService, retry::OpenAIRetryLayer},
    types::chat::{
        ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
        ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
        ChatCompletionStreamOptions, CreateChatCompletionRequest, ResponseFormat,
        ResponseFormatJsonSchema,
    },
};
use futures::StreamExt;
use tower::ServiceBuilder;

use super::{
    AiError, ChatMessage, ChatModel, ChatRequest, DeltaStream, OutputFormat, ProviderName, Role,
    StreamItem, TokenUsage,
};
use crate::config::Config;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct OpenAiCompatibleModel {
    provider: ProviderName,
    model: String,
    client: Client<OpenAIConfig>,
}

impl OpenAiCompatibleModel {
    pub fn new(
        provider: ProviderName,
        base_url: &str,
        api_key: &str,
        model: &str,
        config: &Config,
    ) -> Result<Self, AiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(config.ai_timeout())
            .tcp_nodelay(true)
            .build()
            .map_err(|err| AiError::Unreachable(err.to_string()))?;
        // The timeout wraps the retries: the whole wait for a first response is bounded.
        let service = ServiceBuilder::new()
            .timeout(config.ai_timeout())
            .layer(OpenAIRetryLayer::new(config.ai_max_retries))
            .service(ReqwestService::new(http));
        let openai_config = OpenAIConfig::new()
            .with_api_base(base_url.trim_end_matches('/'))
            .with_api_key(api_key);
        Ok(Self {
            provider,
            model: model.to_owned(),
            client: Client::with_config(openai_config).with_http_service(service),
        })
    }

    fn build_request(&self, request: ChatRequest) -> CreateChatCompletionRequest {
        CreateChatCompletionRequest {
            messages: request
                .messages
                .into_iter()
                .map(to_openai_message)
                .collect(),
            model: request.model.unwrap_or_else(|| self.model.clone()),
            temperature: request.temperature,
            max_completion_tokens: request.max_tokens,
            response_format: response_format(request.output),
            stream_options: Some(ChatCompletionStreamOptions {
                include_usage: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

fn response_format(output: OutputFormat) -> Option<ResponseFormat> {
    match output {
        OutputFormat::Text => None,
        OutputFormat::JsonObject => Some(ResponseFormat::JsonObject),
        OutputFormat::JsonSchema { name, schema } => Some(ResponseFormat::JsonSchema {
            json_schema: ResponseFormatJsonSchema {
                name: name.to_owned(),
                schema,
                strict: Some(true),
                description: None,
            },
        }),
    }
}

fn to_openai_message(message: ChatMessage) -> ChatCompletionRequestMessage {
    match message.role {
        Role::System => ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
            content: message.content.into(),
            name: None,
        }),
        Role::User => ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
            content: message.content.into(),
            name: None,
        }),
        Role::Assistant => {
            ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                content: Some(message.content.into()),
                ..Default::default()
            })
        }
    }
}

impl From<OpenAIError> for AiError {
    fn from(err: OpenAIError) -> Self {
        match err {
            OpenAIError::Reqwest(err) if err.is_timeout() => AiError::Timeout,
            OpenAIError::Reqwest(err) if err.is_connect() => AiError::Unreachable(err.to_string()),
            OpenAIError::Reqwest(err) => match err.status() {
                Some(status) => AiError::Upstream {
                    status: status.as_u16(),
                    message: err.to_string(),
                },
                None => AiError::Stream(err.to_string()),
            },
            OpenAIError::ApiError(response) => AiError::Upstream {
                status: response.status_code.as_u16(),
                message: response.api_error.to_string(),
            },
            OpenAIError::JSONDeserialize(err, _) => AiError::InvalidOutput(err.to_string()),
            OpenAIError::StreamError(err) => AiError::Stream(err.to_string()),
            // The timeout layer boxes every error from below it, not only its own.
            OpenAIError::Boxed(err) if err.is::<tower::timeout::error::Elapsed>() => {
                AiError::Timeout
            }
            OpenAIError::Boxed(err) => match err.downcast::<OpenAIError>() {
                Ok(inner) => AiError::from(*inner),
                Err(other) => AiError::Unreachable(other.to_string()),
            },
            other => AiError::Unreachable(other.to_string()),
        }
    }
}

#[async_trait::async_trait]
impl ChatModel for OpenAiCompatibleModel {
    fn provider(&self) -> ProviderName {
        self.provider
    }

    fn default_model(&self) -> &str {
        &self.model
    }

    async fn stream(&self, request: ChatRequest) -> Result<DeltaStream, AiError> {
        let upstream = self
            .client
            .chat()
            .create_stream(self.build_request(request))
            .await?;
        let items = upstream.flat_map(|chunk| {
            let items: Vec<Result<StreamItem, AiError>> = match chunk {
                Err(err) => vec![Err(err.into())],
                Ok(chunk) => {
                    let delta = chunk
                        .choices
                        .into_iter()
                        .filter_map(|choice| choice.delta.content)
                        .filter(|text| !text.is_empty())
                        .map(|text| Ok(StreamItem::Delta(text)));
                    let usage = chunk.usage.map(|usage| {
                        Ok(StreamItem::Usage(TokenUsage {
                            prompt_tokens: usage.prompt_tokens,
                            completion_tokens: usage.completion_tokens,
                            reported: true,
                        }))
                    });
                    delta.chain(usage).collect()
                }
            };
            futures::stream::iter(items)
        });
        Ok(Box::pin(items))
    }
}
