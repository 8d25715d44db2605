//! Resume-builder socket events (SPEC §6). A failure goes to the event's own
//! error event (`upload_resume_error {error}`, `user_message_response_error
//! {error}`, `error {message}` for `check_resume_fields`, `<event>_error
//! {error}` for the rest); the socket stays up.

use std::{future::Future, time::Duration};

use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::{
    ParserError,
    extract::{SocketRef, TryData},
};

use super::{
    schema,
    service::{self, ResumeSession},
};
use crate::{
    ai::StreamItem,
    error::{AppError, AppResult},
    socket::{on_event, parse_payload},
    state::AppState,
};

/// Where an event's failure goes: the event name and the key of the text.
#[derive(Debug, Clone, Copy)]
struct Failure {
    event: &'static str,
    key: &'static str,
}

const fn error_field(event: &'static str) -> Failure {
    Failure {
        event,
        key: "error",
    }
}

struct Context {
    socket: SocketRef,
    state: AppState,
    session: ResumeSession,
}

fn on<H, F>(
    socket: &SocketRef,
    state: &AppState,
    session: &ResumeSession,
    event: &'static str,
    failure: Failure,
    handler: H,
) where
    H: Fn(Context, Result<Value, ParserError>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = AppResult<()>> + Send + 'static,
{
    let state = state.clone();
    let session = session.clone();
    let report = move |socket: &SocketRef, err: AppError| {
        let _ = socket.emit(
            failure.event,
            &json!({ failure.key: err.to_socket_error().message }),
        );
    };
    on_event(socket, event, report, move |socket, _io, data| {
        let context = Context {
            socket,
            state: state.clone(),
            session: session.clone(),
        };
        handler(context, data)
    });
}

pub fn register(socket: &SocketRef, state: &AppState, session: &ResumeSession) {
    on(
        socket,
        state,
        session,
        "upload_resume",
        error_field("upload_resume_error"),
        upload_resume,
    );
    on(
        socket,
        state,
        session,
        "user_message",
        error_field("user_message_error"),
        user_message,
    );
    let generic = Failure {
        event: "error",
        key: "message",
    };
    on(
        socket,
        state,
        session,
        "check_resume_fields",
        generic,
        check_resume_fields,
    );
    on(
        socket,
        state,
        session,
        "preview_resume",
        error_field("preview_resume_error"),
        preview_resume,
    );
    on(
        socket,
        state,
        session,
        "update_field",
        error_field("update_field_error"),
        update_field,
    );
    on(
        socket,
        state,
        session,
        "get_updated_resume",
        error_field("get_updated_resume_error"),
        get_updated_resume,
    );
    on(
        socket,
        state,
        session,
        "download_resume",
        error_field("download_resume_error"),
        download_resume,
    );
    // Not queued: a running `preview_resume` waits for it.
    let session = session.clone();
    socket.on(
        "user_response",
        move |socket: SocketRef, TryData(data): TryData<Value>| {
            match answer_text(data) {
                Ok(answer) => session.answer(answer),
                Err(err) => {
                    let _ = socket.emit(
                        "user_response_error",
                        &json!({ "error": err.to_socket_error().message }),
                    );
                }
            }
            async {}
        },
    );
}

/// A `user_response` is the value itself, or `{value}` / `{response}` / `{message}`.
fn answer_text(data: Result<Value, ParserError>) -> AppResult<String> {
    let value: Value = parse_payload(data)?;
    let answer = match &value {
        Value::Object(fields) => ["value", "response", "message"]
            .iter()
            .find_map(|key| fields.get(*key))
            .cloned()
            .unwrap_or(Value::Null),
        other => other.clone(),
    };
    match answer {
        Value::String(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(AppError::invalid(
            "user_response needs a non-empty text value",
        )),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Upload {
    raw_resume_text: String,
}

async fn upload_resume(cx: Context, data: Result<Value, ParserError>) -> AppResult<()> {
    let payload: Upload = parse_payload(data)?;
    let resume = service::parse_resume(&cx.state, &payload.raw_resume_text).await?;
    let mut state = cx.session.lock().await;
    state.resume = Some(resume.clone());
    service::save(&cx.state.db, &cx.session.id, &state).await?;
    let _ = cx
        .socket
        .emit("upload_resume_done", &json!({ "resumeData": resume }));
    Ok(())
}

#[derive(Deserialize)]
struct UserMessage {
    message: String,
}

/// Streams the model's answer as `user_message_response_typing {content: delta}`
/// and ends with `user_message_response_done {content}`. Payload errors go to
/// `user_message_error`, the model's to `user_message_response_error`.
async fn user_message(cx: Context, data: Result<Value, ParserError>) -> AppResult<()> {
    let payload: UserMessage = parse_payload(data)?;
    let message = payload.message.trim();
    if message.is_empty() {
        return Err(AppError::invalid("message is required"));
    }
    if message.chars().count() > cx.state.config.resume_max_text_chars {
        return Err(AppError::invalid("message is too long"));
    }
    let mut state = cx.session.lock().await;
    let request = service::chat_request(&state, message);
    let answer = async {
        let mut stream = cx.state.ai.default_model().stream(request).await?;
        let mut answer = String::new();
        while let Some(item) = stream.next().await {
            if let StreamItem::Delta(delta) = item? {
                let _ = cx
                    .socket
                    .emit("user_message_response_typing", &json!({ "content": delta }));
                answer.push_str(&delta);
            }
        }
        AppResult::Ok(answer)
    }
    .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(err) => {
            let _ = cx.socket.emit(
                "user_message_response_error",
                &json!({ "error": err.to_socket_error().message }),
            );
            return Ok(());
        }
    };
    service::record_turn(&mut state, message, &answer);
    service::save(&cx.state.db, &cx.session.id, &state).await?;
    let _ = cx
        .socket
        .emit("user_message_response_done", &json!({ "content": answer }));
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResumePayload {
    resume_data: Value,
}

async fn check_resume_fields(cx: Context, data: Result<Value, ParserError>) -> AppResult<()> {
    let payload: ResumePayload = parse_payload(data)?;
    let resume = schema::normalize(&payload.resume_data)
        .ok_or_else(|| AppError::invalid("resumeData must be an object"))?;
    let missing = schema::missing_fields(&resume);
    let mut state = cx.session.lock().await;
    state.resume = Some(resume.clone());
    service::save(&cx.state.db, &cx.session.id, &state).await?;
    if missing.is_empty() {
        let _ = cx
            .socket
            .emit("resume_complete", &json!({ "resumeData": resume }));
    } else {
        let questions: serde_json::Map<String, Value> = missing
            .iter()
            .map(|field| {
                (
                    (*field).to_owned(),
                    Value::String(schema::question_for(field)),
                )
            })
            .collect();
        let _ = cx
            .socket
            .emit("missing_fields", &json!({ "missingFields": questions }));
    }
    Ok(())
}

/// Asks for each missing field in turn, waiting for the `user_response` to
/// each, then sends the completed resume.
async fn preview_resume(cx: Context, _: Result<Value, ParserError>) -> AppResult<()> {
    let wait = Duration::from_secs(cx.state.config.resume_answer_timeout_secs);
    let mut state = cx.session.lock().await;
    let mut resume = state.resume.clone().unwrap_or_else(schema::skeleton);
    for (asked, field) in schema::missing_fields(&resume).into_iter().enumerate() {
        let _ = cx.socket.emit(
            "user_message_response_done",
            &json!({ "content": schema::question_for(field) }),
        );
        let Some(answer) = cx.session.next_answer(wait, asked == 0).await else {
            return Err(AppError::invalid(format!(
                "No answer for {field} within {} seconds",
                wait.as_secs()
            )));
        };
        resume = schema::set_field(Some(&resume), field, schema::answer_value(field, &answer))
            .ok_or_else(|| AppError::Internal("a resume stopped being an object".to_owned()))?;
        // Each answer is kept even if a later one never comes.
        state.resume = Some(resume.clone());
        service::save(&cx.state.db, &cx.session.id, &state).await?;
    }
    let _ = cx
        .socket
        .emit("preview_resume_done", &json!({ "resumeData": resume }));
    Ok(())
}

#[derive(Deserialize)]
struct FieldUpdate {
    field: String,
    value: Value,
}

async fn update_field(cx: Context, data: Result<Value, ParserError>) -> AppResult<()> {
    let payload: FieldUpdate = parse_payload(data)?;
    if !schema::is_known_field(&payload.field) {
        return Err(AppError::invalid(format!(
            "'{}' is not a resume field",
            payload.field
        )));
    }
    let mut state = cx.session.lock().await;
    let resume = schema::set_field(state.resume.as_ref(), &payload.field, payload.value.clone())
        .ok_or_else(|| AppError::invalid("the value does not fit the resume"))?;
    state.resume = Some(resume);
    service::save(&cx.state.db, &cx.session.id, &state).await?;
    let _ = cx.socket.emit(
        "field_updated",
        &json!({ "field": payload.field, "value": payload.value }),
    );
    Ok(())
}

async fn get_updated_resume(cx: Context, _: Result<Value, ParserError>) -> AppResult<()> {
    let state = cx.session.lock().await;
    let _ = cx
        .socket
        .emit("updated_resume", &json!({ "resumeData": state.resume }));
    Ok(())
}

async fn download_resume(cx: Context, _: Result<Value, ParserError>) -> AppResult<()> {
    let state = cx.session.lock().await;
    let resume = state.resume.clone().unwrap_or_else(schema::skeleton);
    let _ = cx
        .socket
        .emit("download_resume_data", &json!({ "resumeData": resume }));
    Ok(())
}
