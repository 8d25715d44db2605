//! Resume-builder socket events (SPEC §6). A failure goes to the event's own
//! error event (`upload_resume_error {error}`, `user_message_response_error
//! {error}`, `error {message}` for `check_resume_fields`, `<event>_error
//! {error}` for the rest); the socket stays up.

use std::{net::IpAddr, time::Duration};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{
    schema,
    service::{self, ResumeSession},
};
use crate::{
    ai::StreamItem,
    client_limits::Creation,
    config::{Config, Flow},
    error::{AppError, AppResult},
    socket::{ClientSocket, EventContext, EventTable, NoPayload, RoomKind, SocketContext},
    state::AppState,
};

/// Failures answer `<event>_error {error}`; `check_resume_fields` answers
/// `error {message}`.
fn report(socket: &ClientSocket, event: &'static str, err: AppError) {
    let message = err.to_socket_error().message;
    match error_event(event) {
        Some(error_event) => socket.emit(error_event, &Failed { error: message }),
        None => socket.emit("error", &Refused { message }),
    }
}

/// `<event>_error`.
#[derive(Serialize, ToSchema)]
struct Failed {
    error: String,
}

/// `error`, for `check_resume_fields`.
#[derive(Serialize, ToSchema)]
struct Refused {
    message: String,
}

/// `{resumeData}`: the resume as the server keeps it (`null` before one exists).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ResumeData {
    #[schema(value_type = Option<Object>)]
    resume_data: Option<Value>,
}

impl ResumeData {
    fn of(resume: &Value) -> Self {
        Self {
            resume_data: Some(resume.clone()),
        }
    }
}

/// `{content}`: model text, or a question.
#[derive(Serialize, ToSchema)]
struct Content<'a> {
    content: &'a str,
}

/// `missing_fields`: a question per empty field.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MissingFields {
    #[schema(value_type = std::collections::HashMap<String, String>)]
    missing_fields: Map<String, Value>,
}

/// `resume_session`: the id to hand back as `auth.resumeId` after a reconnect.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SessionOpened<'a> {
    resume_id: &'a str,
}

/// `<event>_error`, spelled out so that every emitted event name is static
/// (metrics count them by name); `None` for `check_resume_fields`.
fn error_event(event: &str) -> Option<&'static str> {
    Some(match event {
        "upload_resume" => "upload_resume_error",
        "user_message" => "user_message_error",
        "preview_resume" => "preview_resume_error",
        "update_field" => "update_field_error",
        "get_updated_resume" => "get_updated_resume_error",
        "download_resume" => "download_resume_error",
        "user_response" => "user_response_error",
        _ => return None,
    })
}

pub fn register(table: &mut EventTable, config: &Config) {
    table
        .flow(config, Flow::Resume, report)
        .on("upload_resume", "Parse a pasted resume with the AI; answers `upload_resume_done`", upload_resume)
        .on("user_message", "Chat about the resume; the answer streams as `user_message_response_typing`, then `user_message_response_done`", user_message)
        .on("check_resume_fields", "Store a resume; answers `resume_complete` or `missing_fields`", check_resume_fields)
        .on("preview_resume", "Ask for each missing field in turn (`user_message_response_done` with the question, answered by `user_response`), then `preview_resume_done`", preview_resume)
        .on("update_field", "Set one field; answers `field_updated`", update_field)
        .on("get_updated_resume", "Answers `updated_resume`", get_updated_resume)
        .on("download_resume", "Answers `download_resume_data`", download_resume)
        // Not queued: a running `preview_resume` waits for it.
        .on_immediate("user_response", "The answer to the question `preview_resume` asked: the value, or `{value}`, `{response}` or `{message}`", user_response)
        .emits::<SessionOpened>("resume_session", "To a client that used the flow or named `auth.resumeId`: its session id")
        .emits::<ResumeData>("upload_resume_done", "The parsed resume")
        .emits::<Content>("user_message_response_typing", "A piece of the streaming answer")
        .emits::<Content>("user_message_response_done", "The whole answer, or `preview_resume`'s next question")
        .emits::<Failed>("user_message_response_error", "The model failed")
        .emits::<ResumeData>("resume_complete", "No field is missing")
        .emits::<MissingFields>("missing_fields", "Questions for the empty fields")
        .emits::<ResumeData>("preview_resume_done", "The completed resume")
        .emits::<FieldUpdate>("field_updated", "The field that was set")
        .emits::<ResumeData>("updated_resume", "The resume as kept")
        .emits::<ResumeData>("download_resume_data", "The resume to download")
        .emits::<Failed>("upload_resume_error", "`upload_resume` was refused")
        .emits::<Failed>("user_message_error", "`user_message` was refused")
        .emits::<Failed>("preview_resume_error", "`preview_resume` was refused")
        .emits::<Failed>("update_field_error", "`update_field` was refused")
        .emits::<Failed>("get_updated_resume_error", "`get_updated_resume` was refused")
        .emits::<Failed>("download_resume_error", "`download_resume` was refused")
        .emits::<Failed>("user_response_error", "`user_response` was refused")
        .emits::<Refused>("error", "`check_resume_fields` was refused")
        .on_handshake(remember_requested_id)
        .on_connect(restore_requested)
        .on_disconnect(start_expiry);
}

/// The `auth.resumeId` of the handshake, until the session is opened.
#[derive(Clone)]
struct RequestedId(String);

fn remember_requested_id(cx: &SocketContext, auth: Option<&Value>) {
    if let Some(id) = auth
        .and_then(|auth| auth.get("resumeId"))
        .and_then(Value::as_str)
    {
        cx.socket
            .extensions()
            .insert(RequestedId(id.chars().take(128).collect()));
    }
}

/// A client that named its session gets it back (or a new one) at once.
fn restore_requested(cx: &SocketContext) {
    if cx.socket.extensions().get::<RequestedId>().is_none() {
        return;
    }
    let (socket, state, address) = (cx.socket.clone(), cx.state.clone(), cx.session.address());
    cx.enqueue(async move {
        if let Err(err) = open_session(&socket, &state, address).await {
            tracing::warn!(%err, "could not open a resume session");
        }
    });
}

/// Starts the expiry clock of the socket's session, if it opened one.
fn start_expiry(cx: &SocketContext) {
    let Some(session) = cx.socket.extensions().get::<ResumeSession>() else {
        return;
    };
    let state = cx.state.clone();
    tokio::spawn(async move {
        if let Err(err) = service::release(&state.db, state.cluster.node(), &session.id).await {
            tracing::warn!(%err, "could not mark a resume session as left");
        }
    });
}

/// The socket's resume session, opened on first use: the one its handshake
/// named when that is still kept, else a new one. Opening tells the client its
/// id (`resume_session`). Events run one at a time per socket, so it opens
/// once. A new session spends one of `address`'s new resume sessions.
async fn open_session(
    socket: &ClientSocket,
    state: &AppState,
    address: IpAddr,
) -> AppResult<ResumeSession> {
    if let Some(session) = socket.extensions().get::<ResumeSession>() {
        return Ok(session);
    }
    let requested = socket.extensions().get::<RequestedId>();
    let requested = requested.as_ref().map(|r| r.0.as_str());
    let session = match service::open(state, requested).await {
        Ok(session) => session,
        Err(err) => {
            tracing::warn!(%err, "could not restore a resume session; starting a fresh one");
            ResumeSession::fresh()
        }
    };
    if requested != Some(session.id.as_str()) {
        state.creations.spend(Creation::ResumeSession, address)?;
        // Stored at once: a client that comes back while its first answer is
        // being worked on names a session that exists.
        let mut empty = session.lock(state).await?;
        service::save(state, &session.id, &mut empty).await?;
    }
    socket.extensions().insert(session.clone());
    socket.join(SESSION.room(&session.id));
    socket.emit(
        "resume_session",
        &SessionOpened {
            resume_id: &session.id,
        },
    );
    hand_over_kept(socket, state, &session.id).await;
    Ok(session)
}

/// The resume session's sockets on every node: where an answer goes when the
/// socket that asked for it went meanwhile.
const SESSION: RoomKind = RoomKind::new("resume-session");

/// The answers that finish the long operations (the model's work): a socket
/// that went while one ran does not lose it.
const KEPT_ANSWERS: [&str; 4] = [
    "upload_resume_done",
    "user_message_response_done",
    "user_message_response_error",
    "preview_resume_done",
];

/// An answer for `session`: to the socket that asked while it is connected.
/// When it went while the work ran, the answer is kept, then handed to the
/// session's socket on any node, or to its next one (see [`hand_over_kept`]);
/// either way exactly once, whoever takes it first.
async fn answer<T: Serialize>(
    cx: &EventContext,
    session: &ResumeSession,
    event: &'static str,
    payload: &T,
) {
    if cx.socket.connected() {
        cx.socket.emit(event, payload);
        return;
    }
    let state = &cx.state;
    let passed_on = async {
        let payload = serde_json::to_value(payload)
            .map_err(|err| AppError::Internal(format!("an answer is not JSON: {err}")))?;
        let kept = service::keep_result(&state.db, &session.id, event, payload.clone()).await?;
        let room = SESSION.room(&session.id);
        if state.hub.occupied(&room, cx.socket.id()).await
            && service::take_result(&state.db, kept).await?
        {
            state.hub.to([room]).emit(event, &payload).await;
        }
        AppResult::Ok(())
    };
    if let Err(err) = passed_on.await {
        tracing::warn!(%err, event, "could not keep a resume answer whose socket went");
    }
}

/// Sends a socket that just opened its session the answers kept for it.
async fn hand_over_kept(socket: &ClientSocket, state: &AppState, id: &str) {
    let handed = async {
        for kept in service::kept_results(&state.db, id).await? {
            let Some(event) = KEPT_ANSWERS.into_iter().find(|known| *known == kept.event) else {
                continue;
            };
            if service::take_result(&state.db, kept.id).await? {
                socket.emit(event, &kept.payload);
            }
        }
        AppResult::Ok(())
    };
    if let Err(err) = handed.await {
        tracing::warn!(%err, "could not hand over kept resume answers");
    }
}

/// The answer itself (a text or a number), or `{value}`, `{response}` or `{message}`.
#[derive(Deserialize, ToSchema)]
#[serde(transparent)]
struct UserResponse(Value);

async fn user_response(cx: EventContext, UserResponse(payload): UserResponse) -> AppResult<()> {
    let answer = answer_text(payload)?;
    if answer.chars().count() > cx.state.config.resume_max_text_chars {
        return Err(too_large(
            "the answer",
            cx.state.config.resume_max_text_chars,
            "characters",
        ));
    }
    match cx.socket.extensions().get::<ResumeSession>() {
        Some(session) => {
            session.answer(answer);
            Ok(())
        }
        None => Err(AppError::invalid(
            "no resume preview is waiting for an answer",
        )),
    }
}

/// Bytes of `value` as JSON.
fn json_size(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len())
}

fn too_large(what: &str, limit: usize, unit: &str) -> AppError {
    AppError::PayloadTooLarge {
        message: format!("{what} is longer than {limit} {unit}"),
    }
}

/// A whole resume stays within `RESUME_MAX_DATA_BYTES`: every session keeps
/// one, in memory and in the database.
fn within_resume_size(config: &Config, resume: &Value) -> AppResult<()> {
    let limit = config.resume_max_data_bytes;
    if json_size(resume) > limit {
        return Err(too_large("the resume", limit, "bytes of JSON"));
    }
    Ok(())
}

/// A `user_response` is the value itself, or `{value}` / `{response}` / `{message}`.
fn answer_text(value: Value) -> AppResult<String> {
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

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Upload {
    raw_resume_text: String,
}

async fn upload_resume(cx: EventContext, payload: Upload) -> AppResult<()> {
    let session = open_session(&cx.socket, &cx.state, cx.session.address()).await?;
    let resume = service::parse_resume(&cx.state, &cx.payer([]), &payload.raw_resume_text).await?;
    let mut state = session.lock(&cx.state).await?;
    state.resume = Some(resume.clone());
    service::save(&cx.state, &session.id, &mut state).await?;
    answer(
        &cx,
        &session,
        "upload_resume_done",
        &ResumeData::of(&resume),
    )
    .await;
    Ok(())
}

#[derive(Deserialize, ToSchema)]
struct UserMessage {
    message: String,
}

/// Streams the model's answer as `user_message_response_typing {content: delta}`
/// and ends with `user_message_response_done {content}`. Payload errors go to
/// `user_message_error`, the model's to `user_message_response_error`.
async fn user_message(cx: EventContext, payload: UserMessage) -> AppResult<()> {
    let session = open_session(&cx.socket, &cx.state, cx.session.address()).await?;
    let message = payload.message.trim();
    if message.is_empty() {
        return Err(AppError::invalid("message is required"));
    }
    if message.chars().count() > cx.state.config.resume_max_text_chars {
        return Err(AppError::invalid("message is too long"));
    }
    let permit = cx.state.ai_budget.admit(&cx.payer([]))?;
    let mut state = session.lock(&cx.state).await?;
    let request = service::chat_request(&state, message);
    let answer = async {
        let mut stream = permit
            .stream(cx.state.ai.default_model().as_ref(), request)
            .await?;
        let mut answer = String::new();
        while let Some(item) = stream.next().await {
            if let StreamItem::Delta(delta) = item? {
                cx.socket
                    .emit("user_message_response_typing", &Content { content: &delta });
                answer.push_str(&delta);
            }
        }
        AppResult::Ok(answer)
    }
    .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(err) => {
            let failed = Failed {
                error: err.to_socket_error().message,
            };
            self::answer(&cx, &session, "user_message_response_error", &failed).await;
            return Ok(());
        }
    };
    service::record_turn(&mut state, message, &answer);
    service::save(&cx.state, &session.id, &mut state).await?;
    let done = Content { content: &answer };
    self::answer(&cx, &session, "user_message_response_done", &done).await;
    Ok(())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ResumePayload {
    #[schema(value_type = Object)]
    resume_data: Value,
}

async fn check_resume_fields(cx: EventContext, payload: ResumePayload) -> AppResult<()> {
    within_resume_size(&cx.state.config, &payload.resume_data)?;
    let session = open_session(&cx.socket, &cx.state, cx.session.address()).await?;
    let resume = schema::normalize(&payload.resume_data)
        .ok_or_else(|| AppError::invalid("resumeData must be an object"))?;
    let missing = schema::missing_fields(&resume);
    let mut state = session.lock(&cx.state).await?;
    state.resume = Some(resume.clone());
    service::save(&cx.state, &session.id, &mut state).await?;
    if missing.is_empty() {
        cx.socket.emit("resume_complete", &ResumeData::of(&resume));
    } else {
        let questions: Map<String, Value> = missing
            .iter()
            .map(|field| {
                (
                    (*field).to_owned(),
                    Value::String(schema::question_for(field)),
                )
            })
            .collect();
        cx.socket.emit(
            "missing_fields",
            &MissingFields {
                missing_fields: questions,
            },
        );
    }
    Ok(())
}

/// Asks for each missing field in turn, waiting for the `user_response` to
/// each, then sends the completed resume.
async fn preview_resume(cx: EventContext, _: NoPayload) -> AppResult<()> {
    let session = open_session(&cx.socket, &cx.state, cx.session.address()).await?;
    let wait = Duration::from_secs(cx.state.config.resume_answer_timeout_secs);
    let mut state = session.lock(&cx.state).await?;
    let mut resume = state.resume.clone().unwrap_or_else(schema::skeleton);
    for (asked, field) in schema::missing_fields(&resume).into_iter().enumerate() {
        cx.socket.emit(
            "user_message_response_done",
            &Content {
                content: &schema::question_for(field),
            },
        );
        let Some(answer) = session.next_answer(wait, asked == 0).await else {
            return Err(AppError::invalid(format!(
                "No answer for {field} within {} seconds",
                wait.as_secs()
            )));
        };
        resume = schema::set_field(Some(&resume), field, schema::answer_value(field, &answer))
            .ok_or_else(|| AppError::Internal("a resume stopped being an object".to_owned()))?;
        // Each answer is kept even if a later one never comes.
        state.resume = Some(resume.clone());
        service::save(&cx.state, &session.id, &mut state).await?;
    }
    answer(
        &cx,
        &session,
        "preview_resume_done",
        &ResumeData::of(&resume),
    )
    .await;
    Ok(())
}

#[derive(Deserialize, Serialize, ToSchema)]
struct FieldUpdate {
    field: String,
    value: Value,
}

async fn update_field(cx: EventContext, payload: FieldUpdate) -> AppResult<()> {
    let limit = cx.state.config.resume_max_text_chars;
    if json_size(&payload.value) > limit {
        return Err(too_large("the value", limit, "bytes"));
    }
    let session = open_session(&cx.socket, &cx.state, cx.session.address()).await?;
    if !schema::is_known_field(&payload.field) {
        return Err(AppError::invalid(format!(
            "'{}' is not a resume field",
            payload.field
        )));
    }
    let mut state = session.lock(&cx.state).await?;
    let resume = schema::set_field(state.resume.as_ref(), &payload.field, payload.value.clone())
        .ok_or_else(|| AppError::invalid("the value does not fit the resume"))?;
    within_resume_size(&cx.state.config, &resume)?;
    state.resume = Some(resume);
    service::save(&cx.state, &session.id, &mut state).await?;
    cx.socket.emit("field_updated", &payload);
    Ok(())
}

async fn get_updated_resume(cx: EventContext, _: NoPayload) -> AppResult<()> {
    let session = open_session(&cx.socket, &cx.state, cx.session.address()).await?;
    let state = session.lock(&cx.state).await?;
    let kept = ResumeData {
        resume_data: state.resume.clone(),
    };
    cx.socket.emit("updated_resume", &kept);
    Ok(())
}

async fn download_resume(cx: EventContext, _: NoPayload) -> AppResult<()> {
    let session = open_session(&cx.socket, &cx.state, cx.session.address()).await?;
    let state = session.lock(&cx.state).await?;
    let resume = state.resume.clone().unwrap_or_else(schema::skeleton);
    cx.socket
        .emit("download_resume_data", &ResumeData::of(&resume));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        proptest_json::any_json,
        socket::{Payload, parse_payload},
    };
    use proptest::prelude::*;

    #[test]
    fn every_event_has_its_error_event() {
        let config = Config::from_args(Vec::<String>::new()).unwrap();
        let mut table = EventTable::default();
        register(&mut table, &config);
        for event in table.event_names() {
            let expected = (event != "check_resume_fields").then(|| format!("{event}_error"));
            assert_eq!(error_event(event).map(str::to_owned), expected, "{event}");
        }
    }

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
            clear(answer_text(value.clone()))?;
            clear(parse_payload::<Upload>(Payload::of_json(&value)))?;
            clear(parse_payload::<UserMessage>(Payload::of_json(&value)))?;
            clear(parse_payload::<ResumePayload>(Payload::of_json(&value)))?;
            if let Ok(update) = parse_payload::<FieldUpdate>(Payload::of_json(&value))
                && schema::is_known_field(&update.field)
            {
                let _ = schema::set_field(None, &update.field, update.value.clone());
                let _ = schema::set_field(Some(&schema::skeleton()), &update.field, update.value);
            }
        }

        #[test]
        fn any_json_normalises_to_the_resume_shape_or_nothing(value in any_json(), other in any_json()) {
            if let Some(resume) = schema::normalize(&value) {
                prop_assert!(resume.is_object());
                prop_assert!(resume.get("Skills").is_some_and(|skills| skills.is_object()));
                let _ = schema::missing_fields(&resume);
                let _ = schema::merge(Some(&resume), &other);
            }
            let _ = schema::fenced_json(&value.to_string());
        }
    }
}
