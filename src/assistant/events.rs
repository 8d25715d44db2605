//! Assistant-chat socket events (SPEC §5). Failures go to the sender as
//! `stream_error {message, code}` with `INVALID_REQUEST`,
//! `CONVERSATION_NOT_FOUND`, `RATE_LIMITED`, `AI_PROVIDER_ERROR` or
//! `INTERNAL_ERROR`; the socket stays up.

use std::{future::Future, time::Duration};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use socketioxide::{ParserError, SocketIo, extract::SocketRef};

use super::{
    service::{self, Status},
    stream::{self, Generation},
};
use crate::{
    ai::Role,
    auth::Identity,
    error::{AppError, AppResult},
    socket::{on_event, parse_payload},
    state::AppState,
};

struct Context {
    socket: SocketRef,
    io: SocketIo,
    state: AppState,
}

/// The contract's codes: payload problems are all `INVALID_REQUEST`.
fn report(socket: &SocketRef, err: AppError) {
    let error = err.to_socket_error();
    let code = match error.code {
        "INVALID_PAYLOAD" | "PAYLOAD_TOO_LARGE" => "INVALID_REQUEST",
        code => code,
    };
    let _ = socket.emit(
        "stream_error",
        &json!({ "message": error.message, "code": code }),
    );
}

fn on<H, F>(socket: &SocketRef, state: &AppState, event: &'static str, handler: H)
where
    H: Fn(Context, Result<Value, ParserError>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = AppResult<()>> + Send + 'static,
{
    let state = state.clone();
    on_event(socket, event, report, move |socket, io, data| {
        let context = Context {
            socket,
            io,
            state: state.clone(),
        };
        handler(context, data)
    });
}

pub fn register(socket: &SocketRef, state: &AppState) {
    on(socket, state, "join_conversation", join_conversation);
    on(socket, state, "leave_conversation", leave_conversation);
    on(socket, state, "stream_chat", stream_chat);
    on(socket, state, "typing_start", |cx, data| {
        typing(cx, data, true)
    });
    on(socket, state, "typing_stop", |cx, data| {
        typing(cx, data, false)
    });
    on(socket, state, "message_read", message_read);
    on(socket, state, "stop_generation", stop_generation);
}

/// A bare string id, or `{conversationId}`.
fn conversation_id(data: Result<Value, ParserError>) -> AppResult<String> {
    let id = match parse_payload::<Value>(data)? {
        Value::String(id) => id,
        Value::Object(mut fields) => match fields.remove("conversationId") {
            Some(Value::String(id)) => id,
            _ => return Err(service::invalid("conversationId must be a string")),
        },
        _ => {
            return Err(service::invalid(
                "send a conversation id or {conversationId}",
            ));
        }
    };
    service::validate_conversation_id(&id)?;
    Ok(id)
}

async fn join_conversation(cx: Context, data: Result<Value, ParserError>) -> AppResult<()> {
    cx.socket.join(conversation_id(data)?);
    Ok(())
}

async fn leave_conversation(cx: Context, data: Result<Value, ParserError>) -> AppResult<()> {
    cx.socket.leave(conversation_id(data)?);
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamChat {
    message: String,
    conversation_id: Option<String>,
    stream: Option<bool>,
}

async fn stream_chat(cx: Context, data: Result<Value, ParserError>) -> AppResult<()> {
    let payload: StreamChat = parse_payload(data)?;
    let message = service::validate_message(&cx.state, &payload.message)?;
    let (conversation, _created) =
        service::conversation_for(&cx.state.db, payload.conversation_id.as_deref(), message)
            .await?;
    // The sender hears its own stream, whether it joined or not (mobile
    // clients never join).
    cx.socket.join(conversation.id.clone());
    let question = service::add_message(
        &cx.state.db,
        &conversation.id,
        Role::User,
        message,
        Status::Complete,
    )
    .await?;
    let _ = cx
        .socket
        .to(conversation.id.clone())
        .emit("new_message", &question)
        .await;
    let reply = service::add_message(
        &cx.state.db,
        &conversation.id,
        Role::Assistant,
        "",
        Status::Streaming,
    )
    .await?;
    let request = service::request_for(&cx.state, &conversation.id, Some(&reply.id)).await?;
    let _ = cx
        .io
        .to(conversation.id.clone())
        .emit(
            "stream_start",
            &json!({ "messageId": reply.id, "conversationId": conversation.id }),
        )
        .await;
    let coalesce = (payload.stream != Some(false))
        .then(|| Duration::from_millis(cx.state.config.stream_coalesce_ms));
    stream::spawn(
        &cx.state,
        cx.io.clone(),
        Generation {
            conversation_id: conversation.id,
            message_id: reply.id,
            request,
            coalesce,
        },
    );
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypingPayload {
    conversation_id: String,
    user_name: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserTyping<'a> {
    user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_name: Option<&'a str>,
    is_typing: bool,
}

async fn typing(cx: Context, data: Result<Value, ParserError>, is_typing: bool) -> AppResult<()> {
    let payload: TypingPayload = parse_payload(data)?;
    service::validate_conversation_id(&payload.conversation_id)?;
    let event = UserTyping {
        user_id: cx.socket.id.to_string(),
        user_name: payload.user_name.as_deref(),
        is_typing,
    };
    let _ = cx
        .socket
        .to(payload.conversation_id)
        .emit("user_typing", &event)
        .await;
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageRead {
    conversation_id: String,
    message_id: String,
}

async fn message_read(cx: Context, data: Result<Value, ParserError>) -> AppResult<()> {
    let payload: MessageRead = parse_payload(data)?;
    service::validate_conversation_id(&payload.conversation_id)?;
    let read_by = match cx
        .socket
        .extensions
        .get::<Identity>()
        .as_ref()
        .and_then(Identity::user)
    {
        Some(user) => user.id.to_string(),
        None => cx.socket.id.to_string(),
    };
    let status = json!({ "messageId": payload.message_id, "status": "read", "readBy": read_by });
    let _ = cx
        .io
        .to(payload.conversation_id)
        .emit("message_status", &status)
        .await;
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stop {
    message_id: Option<String>,
    conversation_id: Option<String>,
}

/// Stops a generation by its reply id or every one in a conversation. Stopping
/// what already ended is not an error: the stop and the end can cross.
async fn stop_generation(cx: Context, data: Result<Value, ParserError>) -> AppResult<()> {
    let payload: Stop = parse_payload(data)?;
    match (payload.message_id, payload.conversation_id) {
        (Some(message_id), _) => {
            cx.state.assistant.stop_message(&message_id);
        }
        (None, Some(conversation_id)) => {
            cx.state.assistant.stop_conversation(&conversation_id);
        }
        (None, None) => return Err(service::invalid("send {messageId} or {conversationId}")),
    }
    Ok(())
}
