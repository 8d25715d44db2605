//! [`Metered`]: a model whose calls are counted and timed in the metrics
//! (`switchboard_ai_*`), by provider and model.

use std::time::Instant;

use futures::StreamExt;

use super::{AiError, ChatModel, ChatRequest, DeltaStream, ProviderName, StreamItem};
use crate::telemetry::metrics;

#[derive(Debug)]
pub struct Metered<M>(pub M);

#[async_trait::async_trait]
impl<M: ChatModel> ChatModel for Metered<M> {
    fn provider(&self) -> ProviderName {
        self.0.provider()
    }

    fn default_model(&self) -> &str {
        self.0.default_model()
    }

    /// Times the call until the provider answers (or fails), and counts the
    /// tokens the provider reports.
    async fn stream(&self, request: ChatRequest) -> Result<DeltaStream, AiError> {
        let provider = self.provider().as_str();
        let model = request
            .model
            .clone()
            .unwrap_or_else(|| self.default_model().to_owned());
        let started = Instant::now();
        let answer = self.0.stream(request).await;
        let outcome = if answer.is_ok() { "ok" } else { "error" };
        metrics::ai_request(provider, &model, outcome, started.elapsed());
        let stream = answer?;
        Ok(Box::pin(stream.inspect(move |item| {
            if let Ok(StreamItem::Usage(usage)) = item {
                let tokens = u64::from(usage.prompt_tokens) + u64::from(usage.completion_tokens);
                metrics::ai_tokens(provider, &model, tokens);
            }
        })))
    }
}
