//! Assistant-chat socket events (SPEC §5). Failures go to the sender as
//! `stream_error {message, code}` with `INVALID_REQUEST`,
//! `CONVERSATION_NOT_FOUND`, `RATE_LIMITED`, `AI_PROVIDER_ERROR` or
//! `INTERNAL_ERROR`; the socket stays up.
//!
//! A conversation's room is `assistant-conversation:<id>`. In `owner` scope
//! a socket proves who it is with its handshake's token or `auth.clientKey`,
//! and joins, streams into, types in and stops only its own conversations.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::{
    service::{self, Access, MessageView, Owner, Status},
    stream::{self, ActiveStreams, Chunk, Generation, StreamError, StreamEvent},
};
use crate::{
    ai::Role,
    auth::Identity,
    client_limits::Creation,
    cluster::Signal,
    config::{Config, Flow},
    error::{AppError, AppResult},
    socket::{ClientSocket, EventContext, EventTable, Room, RoomKind, SocketContext},
    state::AppState,
};

const CONVERSATION: RoomKind = RoomKind::new("assistant-conversation");

pub fn conversation_room(id: &str) -> Room {
    CONVERSATION.room(id)
}

/// The contract's codes: payload problems are all `INVALID_REQUEST`.
fn report(socket: &ClientSocket, _event: &'static str, err: AppError) {
    let error = err.to_socket_error();
    let code = match error.code {
        "INVALID_PAYLOAD" | "PAYLOAD_TOO_LARGE" => "INVALID_REQUEST",
        code => code,
    };
    let refused = StreamError {
        message: error.message,
        code,
        message_id: None,
        conversation_id: None,
    };
    socket.emit("stream_error", &refused);
}

pub fn register(table: &mut EventTable, config: &Config) {
    table
        .flow(config, Flow::Assistant, report)
        .on("join_conversation", "Follow a conversation's messages and streams; a reply streaming right then comes as `stream_start` and one chunk with the text so far, one that ended in the last two minutes as its last chunk and `stream_complete`", join_conversation)
        .on("leave_conversation", "Stop following a conversation", leave_conversation)
        .on("stream_chat", "Ask: the question is stored and sent as `new_message`; the answer streams as `stream_start`, `stream_chunk`…, `stream_complete`", stream_chat)
        .on("typing_start", "The user is typing; passed to the conversation's other sockets", |cx, payload| typing(cx, payload, true))
        .on("typing_stop", "The user stopped typing", |cx, payload| typing(cx, payload, false))
        .on("message_read", "A message was read; passed on as `message_status`", message_read)
        .on("stop_generation", "Stop a streaming answer (by reply or by conversation), on whichever node runs it; what was generated is kept", stop_generation)
        .emits::<MessageView>("new_message", "To the conversation's other sockets: the user's stored question")
        .emits::<StreamEvent>("stream_start", "To the conversation: an answer starts (its message id)")
        .emits::<Chunk>("stream_chunk", "To the conversation: the answer so far; the last one has `isComplete`")
        .emits::<StreamEvent>("stream_complete", "To the conversation: the answer ended (completed, stopped or failed) and is stored; with the conversation")
        .emits::<UserTyping>("user_typing", "To the conversation's other sockets: someone is typing")
        .emits::<MessageStatus>("message_status", "To the conversation: a message was read")
        .emits::<StreamError>("stream_error", "To the sender: its event was refused; to the conversation: a generation failed")
        .on_handshake(remember_client_key);
}

/// A socket's anonymous client key (`auth.clientKey`), kept as an [`Owner`].
#[derive(Clone)]
struct ClientKey(Owner);

fn remember_client_key(cx: &SocketContext, auth: Option<&Value>) {
    let key = auth
        .and_then(|auth| auth.get("clientKey"))
        .and_then(Value::as_str)
        .and_then(|key| Owner::client_key(key).ok());
    if let Some(key) = key {
        cx.socket.extensions().insert(ClientKey(key));
    }
}

/// What this socket may see: its user, else its client key.
fn access(cx: &EventContext) -> Access {
    let owner = match cx.session.identity() {
        Identity::User(user) => Some(Owner::user(user.id)),
        Identity::Visitor => cx
            .socket
            .extensions()
            .get::<ClientKey>()
            .map(|ClientKey(owner)| owner),
    };
    Access::new(cx.state.config.assistant_conversation_scope, owner)
}

/// A bare string id, or `{conversationId}`.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
enum ConversationRef {
    Id(String),
    #[serde(rename_all = "camelCase")]
    Object {
        conversation_id: String,
    },
}

fn conversation_id(payload: ConversationRef) -> AppResult<String> {
    let (ConversationRef::Id(id)
    | ConversationRef::Object {
        conversation_id: id,
    }) = payload;
    service::validate_conversation_id(&id)?;
    Ok(id)
}

async fn join_conversation(cx: EventContext, payload: ConversationRef) -> AppResult<()> {
    let id = conversation_id(payload)?;
    service::may_follow(&cx.state.db, &access(&cx), &id).await?;
    stream::catch_up(&cx.state, &cx.socket, &id, || {
        cx.socket.join(conversation_room(&id))
    })
    .await
}

async fn leave_conversation(cx: EventContext, payload: ConversationRef) -> AppResult<()> {
    cx.socket
        .leave(conversation_room(&conversation_id(payload)?));
    Ok(())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct StreamChat {
    message: String,
    conversation_id: Option<String>,
    stream: Option<bool>,
}

/// A request to stream an answer, checked.
struct StreamRequest {
    message: String,
    conversation_id: Option<String>,
    stream: bool,
}

fn stream_request(config: &Config, payload: StreamChat) -> AppResult<StreamRequest> {
    if let Some(id) = &payload.conversation_id {
        service::validate_conversation_id(id)?;
    }
    Ok(StreamRequest {
        message: service::validate_message(config, &payload.message)?,
        conversation_id: payload.conversation_id,
        stream: payload.stream != Some(false),
    })
}

async fn stream_chat(cx: EventContext, payload: StreamChat) -> AppResult<()> {
    let asked = stream_request(&cx.state.config, payload)?;
    let state = &cx.state;
    let access = access(&cx);
    // Refused before anything is stored: a refused question leaves no trace.
    if asked.conversation_id.is_none() {
        state
            .creations
            .spend(Creation::Conversation, cx.session.address())?;
    }
    let permit = state
        .ai_budget
        .admit(&cx.payer(access.owner().map(Owner::budget_key)))?;
    let message = asked.message.as_str();
    let conversation = service::conversation_for(
        &state.db,
        &access,
        asked.conversation_id.as_deref(),
        message,
    )
    .await?;
    let room = conversation_room(&conversation.id);
    // The sender hears its own stream, whether it joined or not (mobile
    // clients never join).
    cx.socket.join(room.clone());
    let question = service::add_message(
        &state.db,
        &conversation.id,
        Role::User,
        message,
        Status::Complete,
    )
    .await?;
    state
        .hub
        .to([room.clone()])
        .except(Room::socket(cx.socket.id()))
        .emit("new_message", &question)
        .await;
    let reply = service::start_reply(&state.db, state.cluster.node(), &conversation.id).await?;
    let request = service::request_for(state, &conversation.id, Some(&reply.id)).await?;
    state
        .hub
        .to([room])
        .emit(
            "stream_start",
            &StreamEvent {
                message_id: &reply.id,
                conversation_id: &conversation.id,
                conversation: None,
            },
        )
        .await;
    let coalesce = asked
        .stream
        .then(|| Duration::from_millis(state.config.stream_coalesce_ms));
    stream::spawn(
        state,
        Generation {
            conversation_id: conversation.id,
            message_id: reply.id,
            request,
            permit,
            coalesce,
        },
    );
    Ok(())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TypingPayload {
    conversation_id: String,
    user_name: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct UserTyping<'a> {
    user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_name: Option<&'a str>,
    is_typing: bool,
}

/// Longest `userName` passed on to the room.
const MAX_USER_NAME_CHARS: usize = 100;

fn typing_of(payload: TypingPayload) -> AppResult<TypingPayload> {
    service::validate_conversation_id(&payload.conversation_id)?;
    if payload
        .user_name
        .as_ref()
        .is_some_and(|name| name.chars().count() > MAX_USER_NAME_CHARS)
    {
        return Err(service::invalid(format!(
            "userName is longer than {MAX_USER_NAME_CHARS} characters"
        )));
    }
    Ok(payload)
}

async fn typing(cx: EventContext, payload: TypingPayload, is_typing: bool) -> AppResult<()> {
    let payload = typing_of(payload)?;
    service::may_follow(&cx.state.db, &access(&cx), &payload.conversation_id).await?;
    let event = UserTyping {
        user_id: cx.socket.id().to_string(),
        user_name: payload.user_name.as_deref(),
        is_typing,
    };
    cx.state
        .hub
        .to([conversation_room(&payload.conversation_id)])
        .except(Room::socket(cx.socket.id()))
        .emit("user_typing", &event)
        .await;
    Ok(())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MessageRead {
    conversation_id: String,
    message_id: String,
}

/// `message_status`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MessageStatus<'a> {
    message_id: &'a str,
    /// Always `read`.
    status: &'a str,
    /// The reader's user id, else its socket id.
    read_by: String,
}

fn message_read_of(payload: MessageRead) -> AppResult<MessageRead> {
    service::validate_conversation_id(&payload.conversation_id)?;
    service::validate_conversation_id(&payload.message_id)?;
    Ok(payload)
}

async fn message_read(cx: EventContext, payload: MessageRead) -> AppResult<()> {
    let payload = message_read_of(payload)?;
    service::may_follow(&cx.state.db, &access(&cx), &payload.conversation_id).await?;
    let read_by = match cx.session.identity().user() {
        Some(user) => user.id.to_string(),
        None => cx.socket.id().to_string(),
    };
    let status = MessageStatus {
        message_id: &payload.message_id,
        status: "read",
        read_by,
    };
    cx.state
        .hub
        .to([conversation_room(&payload.conversation_id)])
        .emit("message_status", &status)
        .await;
    Ok(())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Stop {
    message_id: Option<String>,
    conversation_id: Option<String>,
}

/// What `stop_generation` names.
enum StopTarget {
    Message(String),
    Conversation(String),
}

fn stop_target(payload: Stop) -> AppResult<StopTarget> {
    match (payload.message_id, payload.conversation_id) {
        (Some(message_id), _) => {
            service::validate_conversation_id(&message_id)?;
            Ok(StopTarget::Message(message_id))
        }
        (None, Some(conversation_id)) => {
            service::validate_conversation_id(&conversation_id)?;
            Ok(StopTarget::Conversation(conversation_id))
        }
        (None, None) => Err(service::invalid("send {messageId} or {conversationId}")),
    }
}

/// Stops a generation by its reply id or every one in a conversation,
/// whichever node runs it. Stopping what already ended is not an error: the
/// stop and the end can cross.
async fn stop_generation(cx: EventContext, payload: Stop) -> AppResult<()> {
    let state = &cx.state;
    let streams = state.flow::<ActiveStreams>();
    let access = access(&cx);
    match stop_target(payload)? {
        StopTarget::Message(message_id) => {
            let conversation = match streams.conversation_of(&message_id) {
                Some(conversation) => Some(conversation),
                None if state.cluster.is_shared() => {
                    service::streaming_conversation_of(&state.db, &message_id).await?
                }
                None => None,
            };
            if let Some(conversation) = conversation {
                service::may_follow(&state.db, &access, &conversation).await?;
                if !streams.stop_message(&message_id) {
                    state
                        .cluster
                        .publish(STOP_SIGNAL, json!({ "messageId": message_id }));
                }
            }
        }
        StopTarget::Conversation(conversation_id) => {
            service::may_follow(&state.db, &access, &conversation_id).await?;
            streams.stop_conversation(&conversation_id);
            state
                .cluster
                .publish(STOP_SIGNAL, json!({ "conversationId": conversation_id }));
        }
    }
    Ok(())
}

/// Signal topic: a client asked another node to stop a stream (checked there).
const STOP_SIGNAL: &str = "assistant.stop";

/// What another node told this one: stop a stream running here.
pub fn on_signal(state: &AppState, signal: &Signal) {
    if signal.topic != STOP_SIGNAL {
        return;
    }
    let streams = state.flow::<ActiveStreams>();
    let field = |name| signal.body.get(name).and_then(Value::as_str);
    if let Some(message_id) = field("messageId") {
        streams.stop_message(message_id);
    } else if let Some(conversation_id) = field("conversationId") {
        streams.stop_conversation(conversation_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        proptest_json::any_json,
        socket::{Payload, parse_payload},
    };
    use proptest::prelude::*;

    fn clear<T>(result: AppResult<T>) -> Result<(), TestCaseError> {
        if let Err(err) = result {
            prop_assert!(
                matches!(err.code(), "INVALID_PAYLOAD" | "INVALID_REQUEST"),
                "{}",
                err.code()
            );
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn any_json_is_an_event_payload_or_a_clear_error(value in any_json()) {
            let config = Config::from_args(Vec::<String>::new()).unwrap();
            clear(parse_payload(Payload::of_json(&value)).and_then(conversation_id))?;
            clear(parse_payload(Payload::of_json(&value)).and_then(|p| stream_request(&config, p)))?;
            clear(parse_payload(Payload::of_json(&value)).and_then(typing_of))?;
            clear(parse_payload(Payload::of_json(&value)).and_then(message_read_of))?;
            clear(parse_payload(Payload::of_json(&value)).and_then(stop_target))?;
        }

        #[test]
        fn stored_messages_never_hold_nul(message in "\\PC{1,50}|.{1,50}") {
            let config = Config::from_args(Vec::<String>::new()).unwrap();
            if let Ok(message) = service::validate_message(&config, &message) {
                prop_assert!(!message.contains('\0'));
            }
        }
    }
}
