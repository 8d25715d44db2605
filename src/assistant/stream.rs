//! The streaming pipeline of `stream_chat`: provider deltas are coalesced for a
//! short window (each `stream_chunk` repeats the whole text, so one chunk per
//! token would send a quadratic number of bytes), the reply is saved as it
//! grows, and every stream ends with a `stream_chunk {isComplete:true}` and a
//! `stream_complete`, plus a `stream_error` when the provider failed.
//!
//! A generation belongs to its conversation's room, not to the socket that
//! asked: a client that disconnects does not stop it, and one that joins
//! mid-stream gets the rest. `stop_generation` cancels it through
//! [`ActiveStreams`], which drops the provider stream and so closes the
//! upstream connection.

use std::time::Duration;

use dashmap::DashMap;
use entity::assistant_message;
use futures::StreamExt;
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::{
    events::conversation_room,
    service::{self, Access, ConversationView, Status},
};
use crate::{
    ai::{AiPermit, ChatRequest, StreamItem},
    error::{AppError, AppResult},
    socket::ClientSocket,
    state::AppState,
    telemetry::metrics,
};

/// Generations in progress, by reply id.
#[derive(Default)]
pub struct ActiveStreams {
    by_message: DashMap<String, (String, CancellationToken)>,
}

impl ActiveStreams {
    fn start(&self, message_id: &str, conversation_id: &str) -> CancellationToken {
        let cancel = CancellationToken::new();
        self.by_message.insert(
            message_id.to_owned(),
            (conversation_id.to_owned(), cancel.clone()),
        );
        metrics::ai_stream_started();
        cancel
    }

    fn finish(&self, message_id: &str) {
        if self.by_message.remove(message_id).is_some() {
            metrics::ai_stream_ended();
        }
    }

    /// The conversation of a running generation.
    pub fn conversation_of(&self, message_id: &str) -> Option<String> {
        self.by_message.get(message_id).map(|entry| entry.0.clone())
    }

    /// Stops the generation of that reply; false when none runs.
    pub fn stop_message(&self, message_id: &str) -> bool {
        self.by_message
            .get(message_id)
            .map(|entry| entry.1.cancel())
            .is_some()
    }

    /// Stops every generation in the conversation; how many there were.
    pub fn stop_conversation(&self, conversation_id: &str) -> usize {
        let mut stopped = 0;
        for entry in &self.by_message {
            if entry.0 == conversation_id {
                entry.1.cancel();
                stopped += 1;
            }
        }
        stopped
    }

    /// Stops everything: shutdown after the grace period.
    pub fn stop_all(&self) {
        for entry in &self.by_message {
            entry.1.cancel();
        }
    }
}

/// `stream_chunk`: the reply so far (`content`) and what is new (`delta`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Chunk<'a> {
    id: u64,
    message_id: &'a str,
    conversation_id: &'a str,
    content: &'a str,
    delta: &'a str,
    is_complete: bool,
}

impl<'a> Chunk<'a> {
    /// A whole reply as one chunk (`delta` repeats `content`): what catches a
    /// joining socket up.
    fn whole(reply: &'a assistant_message::Model, is_complete: bool) -> Self {
        Self {
            id: 0,
            message_id: &reply.id,
            conversation_id: &reply.conversation_id,
            content: &reply.content,
            delta: &reply.content,
            is_complete,
        }
    }
}

/// `stream_start` and, with the conversation, `stream_complete`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct StreamEvent<'a> {
    pub message_id: &'a str,
    pub conversation_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationView>,
}

/// `stream_error`: a refused event (no ids), or a failed generation.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct StreamError<'a> {
    pub message: String,
    pub code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<&'a str>,
}

/// A reply to generate into an existing, empty `streaming` message.
pub struct Generation {
    pub conversation_id: String,
    pub message_id: String,
    pub request: ChatRequest,
    /// The AI budget's admission of this generation.
    pub permit: AiPermit,
    /// `None`: no intermediate chunks, only the final one (`stream: false`).
    pub coalesce: Option<Duration>,
}

enum Ending {
    Complete,
    Stopped,
    Failed(AppError),
}

/// Registers the generation (so it can be stopped) and runs it on the state's
/// task tracker, so shutdown waits for it.
pub fn spawn(state: &AppState, generation: Generation) {
    let cancel = state
        .flow::<ActiveStreams>()
        .start(&generation.message_id, &generation.conversation_id);
    let task_state = state.clone();
    state.tasks.spawn(async move {
        let message_id = generation.message_id.clone();
        run(&task_state, generation, cancel).await;
        task_state.flow::<ActiveStreams>().finish(&message_id);
    });
}

async fn emit(
    state: &AppState,
    conversation_id: &str,
    event: &'static str,
    payload: &impl Serialize,
) {
    state
        .hub
        .to([conversation_room(conversation_id)])
        .emit(event, payload)
        .await;
}

async fn run(state: &AppState, generation: Generation, cancel: CancellationToken) {
    let Generation {
        conversation_id,
        message_id,
        request,
        permit,
        coalesce,
    } = generation;
    let persist_every = Duration::from_millis(state.config.stream_persist_ms);
    let mut text = String::new();
    let mut sent = 0;
    let mut chunk_id = 0u64;
    let mut send_chunk = async |text: &str, sent: &mut usize, is_complete: bool| {
        chunk_id += 1;
        let chunk = Chunk {
            id: chunk_id,
            message_id: &message_id,
            conversation_id: &conversation_id,
            content: text,
            delta: &text[*sent..],
            is_complete,
        };
        emit(state, &conversation_id, "stream_chunk", &chunk).await;
        *sent = text.len();
    };

    let ending = 'generate: {
        let model = state.ai.default_model();
        let mut deltas = tokio::select! {
            () = cancel.cancelled() => break 'generate Ending::Stopped,
            started = permit.stream(model.as_ref(), request) => match started {
                Ok(deltas) => deltas,
                Err(err) => break 'generate Ending::Failed(err.into()),
            },
        };
        let mut flush_at: Option<Instant> = None;
        let mut saved_at = Instant::now();
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break 'generate Ending::Stopped,
                () = tokio::time::sleep_until(flush_at.unwrap_or_else(Instant::now)), if flush_at.is_some() => {
                    flush_at = None;
                    send_chunk(&text, &mut sent, false).await;
                }
                item = deltas.next() => match item {
                    Some(Ok(StreamItem::Delta(delta))) => {
                        text.push_str(&delta);
                        if let Some(window) = coalesce {
                            flush_at.get_or_insert_with(|| Instant::now() + window);
                        }
                        if saved_at.elapsed() >= persist_every {
                            saved_at = Instant::now();
                            if let Err(err) = service::save_reply(&state.db, &message_id, &text, Status::Streaming).await {
                                tracing::warn!(%err, "saving a growing reply failed");
                            }
                        }
                    }
                    Some(Ok(StreamItem::Usage(_))) => {}
                    Some(Err(err)) => break 'generate Ending::Failed(err.into()),
                    None => break 'generate Ending::Complete,
                },
            }
        }
    };

    let status = match &ending {
        Ending::Complete => Status::Complete,
        Ending::Stopped => Status::Stopped,
        Ending::Failed(_) => Status::Failed,
    };
    if let Err(err) = service::save_reply(&state.db, &message_id, &text, status).await {
        tracing::error!(%err, %message_id, "saving a finished reply failed");
    }
    send_chunk(&text, &mut sent, true).await;
    let conversation = service::get_conversation(&state.db, &Access::server(), &conversation_id)
        .await
        .ok();
    let complete = StreamEvent {
        message_id: &message_id,
        conversation_id: &conversation_id,
        conversation,
    };
    emit(state, &conversation_id, "stream_complete", &complete).await;
    if let Ending::Failed(err) = ending {
        let failure = StreamError {
            message: err.to_socket_error().message,
            code: "AI_PROVIDER_ERROR",
            message_id: Some(&message_id),
            conversation_id: Some(&conversation_id),
        };
        emit(state, &conversation_id, "stream_error", &failure).await;
    }
}

/// How long after a reply ended a socket joining its conversation is still
/// sent its `stream_complete`, so a client that was away when it ended learns
/// it did (clients take a repeated `stream_complete` as a no-op).
pub const ENDED_LATELY: Duration = Duration::from_secs(120);

/// Brings `socket`, joining a conversation, up to date with its newest reply
/// (read from the database, so it may stream on another node). One that is
/// streaming is announced with `stream_start` and one chunk holding the text
/// so far, and the rest follows live once `join` has run: the next chunk
/// repeats the whole text anyway. One that ended lately, or ends meanwhile,
/// gets its last chunk and `stream_complete`.
pub async fn catch_up(
    state: &AppState,
    socket: &ClientSocket,
    conversation_id: &str,
    join: impl FnOnce(),
) -> AppResult<()> {
    let streaming = Status::Streaming.as_str();
    let before = service::newest_reply(&state.db, conversation_id).await?;
    let was_streaming = before.as_ref().filter(|reply| reply.status == streaming);
    if let Some(reply) = was_streaming {
        let start = StreamEvent {
            message_id: &reply.id,
            conversation_id,
            conversation: None,
        };
        socket.emit("stream_start", &start);
        socket.emit("stream_chunk", &Chunk::whole(reply, false));
    }
    join();
    let now = match was_streaming {
        Some(_) => service::newest_reply(&state.db, conversation_id).await?,
        None => before,
    };
    let Some(reply) = now.filter(|reply| reply.status != streaming) else {
        return Ok(());
    };
    let ended_lately = chrono::Duration::from_std(ENDED_LATELY).unwrap_or_default();
    if reply.updated_at < chrono::Utc::now() - ended_lately {
        return Ok(());
    }
    socket.emit("stream_chunk", &Chunk::whole(&reply, true));
    let conversation = service::get_conversation(&state.db, &Access::server(), conversation_id)
        .await
        .ok();
    let complete = StreamEvent {
        message_id: &reply.id,
        conversation_id,
        conversation,
    };
    socket.emit("stream_complete", &complete);
    Ok(())
}
