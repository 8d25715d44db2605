//! The demo provider, used when no AI key is configured. It streams a fixed,
//! clearly labelled answer word by word and never pretends to be a model.

use std::time::Duration;

use futures::StreamExt;

use super::{AiError, ChatModel, ChatRequest, DeltaStream, ProviderName, StreamItem, TokenUsage};

pub const DEMO_ANSWER: &str = "[Demo mode] No AI provider key is configured on this Switchboard \
server, so this is a fixed demo answer, not a model's reply. Set OPENAI_API_KEY, \
OPENROUTER_API_KEY or GEMINI_API_KEY (or OPENAI_BASE_URL for a local model server) to get real answers.";

#[derive(Debug)]
pub struct DemoModel {
    word_delay: Duration,
}

impl DemoModel {
    pub fn new(word_delay_ms: u64) -> Self {
        Self {
            word_delay: Duration::from_millis(word_delay_ms),
        }
    }

    /// JSON-output callers get a JSON object that says the same thing.
    fn answer(json_output: bool) -> String {
        if json_output {
            serde_json::json!({ "demo": true, "message": DEMO_ANSWER }).to_string()
        } else {
            DEMO_ANSWER.to_owned()
        }
    }
}

#[async_trait::async_trait]
impl ChatModel for DemoModel {
    fn provider(&self) -> ProviderName {
        ProviderName::Demo
    }

    fn default_model(&self) -> &str {
        "demo"
    }

    async fn stream(&self, request: ChatRequest) -> Result<DeltaStream, AiError> {
        let answer = Self::answer(request.output.is_json());
        let usage = TokenUsage::estimate(&request, &answer);
        let words: Vec<String> = answer.split_inclusive(' ').map(str::to_owned).collect();
        let delay = self.word_delay;
        let deltas = futures::stream::iter(words).then(move |word| async move {
            tokio::time::sleep(delay).await;
            Ok(StreamItem::Delta(word))
        });
        let usage = futures::stream::once(async move { Ok(StreamItem::Usage(usage)) });
        Ok(Box::pin(deltas.chain(usage)))
    }
}
