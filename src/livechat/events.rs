//! Live-chat socket events. Each handler parses its payload, calls the
//! service, and tells the right rooms; any failure goes back to the sender as
//! `chat-error {code, message}` and nothing is stored.
//!
//! Rooms: one per chat session (`livechat-session:<sessionId>`), and
//! `livechat-admins` for sockets that authenticated as admins. A client string
//! only ever names a session room (see [`crate::socket::rooms`]).

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use super::{
    ai,
    domain::{MessageText, MessageView, Reply, SessionId, Visitor},
    presence::{self, Known},
    service::{self, FollowUp},
};
use utoipa::ToSchema;

use crate::{
    ai::{BudgetKey, Payer},
    auth::Identity,
    client_limits::Creation,
    config::{Config, Flow},
    error::{AppError, AppResult, SocketError},
    socket::{
        Broadcast, ClientSocket, EventContext, EventTable, NoPayload, Room, RoomKind,
        SocketContext, SocketSession,
    },
    state::AppState,
};

/// Sockets whose handshake carried an admin's token.
pub const ADMINS: Room = Room::singleton("livechat-admins");
/// One admin user's sockets, on every node: whether the user's console is
/// still connected somewhere when one of them goes.
const ADMIN_USER: RoomKind = RoomKind::new("livechat-admin");
const SESSION: RoomKind = RoomKind::new("livechat-session");
const ERROR_EVENT: &str = "chat-error";

fn session_room(session: &SessionId) -> Room {
    SESSION.room(session.as_str())
}

fn report(socket: &ClientSocket, _event: &'static str, err: AppError) {
    socket.emit(ERROR_EVENT, &err.to_socket_error());
}

pub fn register(table: &mut EventTable, config: &Config) {
    table
        .flow(config, Flow::Livechat, report)
        .on("user-connected", "A widget opens its session (created when new) and joins its room", user_connected)
        .on("user-message", "A visitor's message: stored, acknowledged with `message-received`, sent to the admins; the AI answers unless an admin took over", user_message)
        .on("user-typing", "The visitor is typing; passed to the admins", user_typing)
        .on("admin-reply", "An admin's reply (admins only): stored, sent to the session; the AI stays silent from then on", admin_reply)
        .on("admin-typing", "An admin is typing (admins only); passed to the session", admin_typing)
        .on("admin-takeover", "An admin takes the session over before replying (admins only): the AI stays silent", admin_takeover)
        .on("admin-release", "An admin hands the session back to the AI (admins only)", admin_release)
        .emits::<MessageView>("user-message", "To the admins: a visitor's stored message")
        .emits::<Received>("message-received", "To the sender: its message is stored")
        .emits::<MessageView>("ai-reply", "To the session and the admins: the AI's answer (or the hand-off notice)")
        .emits::<MessageView>("admin-reply", "To the session and the admins: an admin's reply")
        .emits::<AiThinking>("ai-thinking", "To the session and the admins: the AI started or stopped working on an answer")
        .emits::<SessionRef>("handoff-requested", "To the admins: a visitor asked for a human")
        .emits::<NoPayload>("chat-list-update", "To the admins: the session list changed; read it again")
        .emits::<Typing>("user-typing", "To the admins: a visitor is typing")
        .emits::<Typing>("admin-typing", "To the session: an admin is typing")
        .emits::<SocketError>(ERROR_EVENT, "To the sender: its event was refused; nothing was stored")
        .on_handshake(admit_admin)
        .on_disconnect(socket_left);
}

/// Admin sockets; every socket in legacy mode, where dashboards carry no token.
pub fn admins(state: &AppState) -> Broadcast {
    if state.config.livechat_legacy_broadcast {
        state.hub.everyone()
    } else {
        state.hub.to([ADMINS])
    }
}

/// The session's room and the admins, each socket once.
fn session_and_admins(state: &AppState, session: &SessionId) -> Broadcast {
    state.hub.to([session_room(session), ADMINS])
}

fn session_id(config: &Config, raw: &str) -> AppResult<SessionId> {
    SessionId::parse(raw, config.livechat_min_session_id_chars)
}

/// `{sessionId, message, timestamp?}` as a session and a text.
fn chat_text(config: &Config, payload: ChatText) -> AppResult<(SessionId, MessageText)> {
    Ok((
        session_id(config, &payload.session_id)?,
        MessageText::parse(&payload.message, config.livechat_max_message_chars)?,
    ))
}

/// `{sessionId, isTyping}`, checked.
fn typing_of(config: &Config, payload: Typing) -> AppResult<(SessionId, Typing)> {
    Ok((session_id(config, &payload.session_id)?, payload))
}

/// Where the widget connects from, for sessions it creates: what it says, else
/// what the connection shows.
fn visitor(cx: &EventContext, user_agent: Option<String>) -> Visitor {
    let parts = cx.socket.req_parts();
    let header_agent = || {
        parts
            .headers
            .get("user-agent")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    Visitor::new(
        Some(cx.session.address().to_string()),
        user_agent.or_else(header_agent),
    )
}

/// Admin sockets join the admins' room, are caught up on what they missed
/// (see [`catch_up_console`]), and are demoted when their token expires.
fn admit_admin(cx: &SocketContext, auth: Option<&serde_json::Value>) {
    let Identity::User(user) = cx.session.identity() else {
        return;
    };
    if !user.is_admin {
        return;
    }
    cx.socket.join(ADMINS);
    cx.socket.join(ADMIN_USER.room(&user.id.to_string()));
    let known = match auth.and_then(|auth| auth.get("lastMessageId")) {
        Some(id) => Known::Through(id.as_i64().unwrap_or(-1)),
        None => Known::Unsaid,
    };
    catch_up_console(cx, user.id, known);
    let (state, sid) = (cx.state.clone(), cx.socket.id());
    let left = Duration::from_secs(
        user.expires_at
            .saturating_sub(chrono::Utc::now().timestamp().max(0) as u64),
    );
    tokio::spawn(async move {
        tokio::time::sleep(left).await;
        let Some(socket) = state.hub.local_socket(sid) else {
            return;
        };
        if let Some(session) = socket.extensions().get::<Arc<SocketSession>>()
            && session
                .identity()
                .user()
                .is_some_and(|u| u.is_admin && u.token_expired())
        {
            demote(&socket, &session, &token_expired());
        }
    });
}

/// A console coming back is sent, before its first events are handled, what
/// went to the admins after the row its handshake names (`auth.lastMessageId`)
/// or, naming none, while none of its user's sockets was connected: the rows
/// (a hand-off notice preceded by its `handoff-requested`), then one
/// `chat-list-update`. Rows stored from its join on reach it live.
fn catch_up_console(cx: &SocketContext, user: i32, known: Known) {
    let joined_at = chrono::Utc::now();
    let (state, socket) = (cx.state.clone(), cx.socket.clone());
    cx.enqueue(async move {
        let room = ADMIN_USER.room(&user.to_string());
        let sid = socket.id();
        let arrived = presence::admin_arrived(&state, user, known, joined_at, || {
            state.hub.occupied(&room, sid)
        });
        let rows = match arrived.await {
            Ok(rows) => rows,
            Err(err) => {
                tracing::warn!(%err, user, "could not catch a console up");
                return;
            }
        };
        for row in &rows {
            if row.sender_type == "ai" && row.message == super::handoff::HANDOFF_REPLY {
                let asked = SessionRef {
                    session_id: row.session_id.clone(),
                };
                socket.emit("handoff-requested", &asked);
            }
            socket.emit(row_event(row), row);
        }
        if !rows.is_empty() {
            socket.emit("chat-list-update", &());
        }
    });
}

fn token_expired() -> AppError {
    AppError::Unauthorized {
        code: "TOKEN_EXPIRED",
        message: "Your admin token expired; sign in again".to_owned(),
    }
}

/// The socket stops being an admin: it leaves the admins' room and is told why.
fn demote(socket: &ClientSocket, session: &SocketSession, why: &AppError) {
    if let Identity::User(user) = session.identity() {
        socket.leave(ADMIN_USER.room(&user.id.to_string()));
    }
    session.set_identity(Identity::Visitor);
    socket.leave(ADMINS);
    socket.emit(ERROR_EVENT, &why.to_socket_error());
    tracing::info!(sid = %socket.id(), code = why.code(), "admin socket demoted");
}

/// Admin events need a socket whose admin token is still valid and whose user
/// is still an admin (read again every `ADMIN_RECHECK_SECS`).
async fn require_admin(cx: &EventContext, event: &str) -> AppResult<()> {
    if cx.state.config.livechat_legacy_broadcast {
        return Ok(());
    }
    let forbidden = || AppError::Forbidden {
        code: "FORBIDDEN",
        message: format!("'{event}' is for authenticated admins"),
    };
    let Identity::User(user) = cx.session.identity() else {
        return Err(forbidden());
    };
    if !user.is_admin {
        return Err(forbidden());
    }
    if user.token_expired() {
        let expired = token_expired();
        demote(&cx.socket, &cx.session, &expired);
        return Err(expired);
    }
    let signed_in = match &user.sign_in {
        Some(sign_in) => cx.state.sign_ins.still_valid(&cx.state.db, sign_in).await?,
        None => true,
    };
    if !signed_in
        || !cx
            .state
            .admin_flags
            .still_admin(&cx.state.db, user.id)
            .await?
    {
        let revoked = forbidden();
        demote(&cx.socket, &cx.session, &revoked);
        return Err(revoked);
    }
    Ok(())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct UserConnected {
    session_id: String,
    // A client's `ipAddress` is not read: the session records the address the
    // server saw, so the console shows no visitor-chosen address.
    user_agent: Option<String>,
    /// The newest row the client has: it is sent every row after it.
    last_message_id: Option<i64>,
}

/// `{sessionId, message, timestamp?}`; the server's clock stamps the message.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ChatText {
    session_id: String,
    message: String,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Typing {
    session_id: String,
    is_typing: bool,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SessionRef {
    session_id: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AiThinking<'a> {
    session_id: &'a str,
    is_thinking: bool,
}

async fn user_connected(cx: EventContext, payload: UserConnected) -> AppResult<()> {
    let session = session_id(&cx.state.config, &payload.session_id)?;
    let room = session_room(&session);
    admit_chat(&cx, &room)?;
    let visitor = visitor(&cx, payload.user_agent);
    service::ensure_session(&cx.state, &session, visitor).await?;
    let known = match payload.last_message_id {
        Some(id) => Known::Through(id),
        None => Known::Unsaid,
    };
    let _guard = service::lock(&cx.state, &session).await;
    enter_session(&cx, &session, known, true).await
}

/// The socket joins the session's room, first sent (in order, once) what it
/// missed: the rows after the one it names, or, when it names none and is
/// new to the room, the replies sent while no visitor socket was connected.
/// `say_thinking`: tell it when the AI is answering. The caller holds the
/// session's lock. A session that does not exist is not joined.
async fn enter_session(
    cx: &EventContext,
    session: &SessionId,
    known: Known,
    say_thinking: bool,
) -> AppResult<()> {
    let room = session_room(session);
    if matches!(known, Known::Unsaid) && cx.session.remembers(&room) {
        return Ok(());
    }
    let (hub, socket, sid) = (&cx.state.hub, &cx.socket, cx.socket.id());
    let send = |catch_up: &presence::CatchUp| {
        if catch_up.unknown_row {
            let unknown = AppError::Invalid {
                code: "UNKNOWN_MESSAGE_ID",
                message:
                    "lastMessageId is not a message of this session; the whole history follows"
                        .to_owned(),
            };
            socket.emit(ERROR_EVENT, &unknown.to_socket_error());
        }
        for row in &catch_up.rows {
            socket.emit(row_event(row), row);
        }
        if say_thinking && catch_up.ai_answering {
            socket.emit(
                "ai-thinking",
                &AiThinking {
                    session_id: session.as_str(),
                    is_thinking: true,
                },
            );
        }
    };
    let known_session = presence::visitor_arrived(
        &cx.state,
        session,
        sid,
        known,
        || hub.occupied(&room, sid),
        send,
    )
    .await?;
    if !known_session {
        return Ok(());
    }
    cx.join_once(room);
    Ok(())
}

/// The event a stored row travels as.
fn row_event(row: &MessageView) -> &'static str {
    match row.sender_type.as_str() {
        "user" => "user-message",
        "admin" => "admin-reply",
        _ => "ai-reply",
    }
}

/// A socket went. Each session it leaves without a visitor socket anywhere,
/// and its admin user when it leaves no console anywhere, remembers what had
/// been sent.
fn socket_left(cx: &SocketContext) {
    let rooms = cx.socket.rooms();
    let sessions: Vec<SessionId> = rooms
        .iter()
        .filter_map(|room| SESSION.key(room))
        .filter_map(|key| SessionId::parse(key, 1).ok())
        .collect();
    let admin = rooms
        .iter()
        .filter_map(|room| ADMIN_USER.key(room))
        .find_map(|key| key.parse::<i32>().ok());
    if sessions.is_empty() && admin.is_none() {
        return;
    }
    let left_at = chrono::Utc::now();
    let (state, sid) = (cx.state.clone(), cx.socket.id());
    cx.state.tasks.spawn(async move {
        for session in sessions {
            let room = session_room(&session);
            let _guard = service::lock(&state, &session).await;
            let alone = !state.hub.occupied(&room, sid).await;
            if let Err(err) = presence::visitor_left(&state, &session, sid, left_at, alone).await {
                tracing::warn!(%err, %session, "could not record that a visitor went");
            }
        }
        if let Some(user) = admin
            && !state
                .hub
                .occupied(&ADMIN_USER.room(&user.to_string()), sid)
                .await
            && let Err(err) = presence::admin_left(&state, user, left_at).await
        {
            tracing::warn!(%err, user, "could not record that a console went");
        }
    });
}

/// A socket naming a chat it has not named lately may be starting one: its
/// address's budget of new chats pays, before anything is stored.
fn admit_chat(cx: &EventContext, room: &Room) -> AppResult<()> {
    if cx.session.remembers(room) {
        return Ok(());
    }
    cx.state
        .creations
        .spend(Creation::LivechatSession, cx.session.address())
}

/// `message-received {id}`: the visitor's message is stored.
#[derive(Serialize, ToSchema)]
struct Received {
    id: i32,
}

async fn user_message(cx: EventContext, payload: ChatText) -> AppResult<()> {
    let (session, text) = chat_text(&cx.state.config, payload)?;
    let room = session_room(&session);
    admit_chat(&cx, &room)?;
    let state = &cx.state;
    let guard = service::lock(state, &session).await;
    let (row, follow_up) =
        service::record_user_message(state, &session, text, || visitor(&cx, None)).await?;
    enter_session(&cx, &session, Known::Unsaid, follow_up != FollowUp::AiReply).await?;
    admins(state).emit("user-message", &row).await;
    cx.socket.emit("message-received", &Received { id: row.id });
    match follow_up {
        FollowUp::Handoff => {
            let outcome = service::hand_off(state, &session).await?;
            let asked = SessionRef {
                session_id: session.to_string(),
            };
            admins(state).emit("handoff-requested", &asked).await;
            if let Some(notice) = outcome.notice {
                deliver_reply(state, "ai-reply", &notice).await;
            }
        }
        FollowUp::AiReply => {
            drop(guard);
            let payer = cx.payer([BudgetKey::LivechatSession(session.to_string())]);
            state
                .tasks
                .spawn(reply_with_ai(state.clone(), session, payer));
        }
        FollowUp::None => {}
    }
    Ok(())
}

/// A reply goes to the session's visitor sockets and the admins, then the
/// admins' lists refresh.
async fn deliver_reply(state: &AppState, event: &'static str, reply: &Reply) {
    let visitors = reply.to.iter().map(Room::socket);
    state
        .hub
        .to(visitors.chain([ADMINS]))
        .emit(event, &reply.row)
        .await;
    admins(state).emit("chat-list-update", &()).await;
}

/// Generates and delivers the AI's answer, paid by `payer`. `ai-thinking` is
/// switched off whatever happens; an answer that finds the session handed off
/// is dropped.
async fn reply_with_ai(state: AppState, session: SessionId, payer: Payer) {
    // Consoles show the AI working too; in legacy mode "admins" are every
    // socket, and widgets there do not check whose session a notice is for.
    let thinking_to = || {
        if state.config.livechat_legacy_broadcast {
            state.hub.to([session_room(&session)])
        } else {
            session_and_admins(&state, &session)
        }
    };
    let room = || state.hub.to([session_room(&session)]);
    let thinking = |on: bool| AiThinking {
        session_id: session.as_str(),
        is_thinking: on,
    };
    thinking_to().emit("ai-thinking", &thinking(true)).await;
    let outcome = async {
        let text = ai::generate_reply(&state, &session, &payer).await?;
        let _guard = service::lock(&state, &session).await;
        match service::record_ai_reply(&state, &session, &text).await? {
            Some(reply) => deliver_reply(&state, "ai-reply", &reply).await,
            None => tracing::debug!(%session, "AI answer dropped: an admin took over"),
        }
        AppResult::Ok(())
    }
    .await;
    if let Err(err) = outcome {
        if let Err(clear) = service::ai_reply_failed(&state, &session).await {
            tracing::warn!(%clear, %session, "could not clear a failed AI answer");
        }
        room().emit(ERROR_EVENT, &err.to_socket_error()).await;
    }
    thinking_to().emit("ai-thinking", &thinking(false)).await;
}

/// Answers again the sessions whose AI answer a stopped or dead node left
/// unfinished (at start-up, then with every heartbeat).
pub async fn retry_orphaned_replies(state: &AppState) {
    match service::claim_orphaned_ai_replies(state).await {
        Ok(sessions) => {
            if !sessions.is_empty() {
                tracing::info!(
                    count = sessions.len(),
                    "answering live-chat messages a stopped node left unanswered"
                );
            }
            for session in sessions {
                state
                    .tasks
                    .spawn(reply_with_ai(state.clone(), session, Payer::Server));
            }
        }
        Err(err) => tracing::warn!(%err, "could not look for unanswered live-chat messages"),
    }
}

async fn user_typing(cx: EventContext, payload: Typing) -> AppResult<()> {
    let (session, typing) = typing_of(&cx.state.config, payload)?;
    admins(&cx.state).emit("user-typing", &typing).await;
    if !cx.session.remembers(&session_room(&session)) {
        let _guard = service::lock(&cx.state, &session).await;
        enter_session(&cx, &session, Known::Unsaid, true).await?;
    }
    Ok(())
}

async fn admin_reply(cx: EventContext, payload: ChatText) -> AppResult<()> {
    require_admin(&cx, "admin-reply").await?;
    let (session, text) = chat_text(&cx.state.config, payload)?;
    let _guard = service::lock(&cx.state, &session).await;
    let reply = service::record_admin_reply(&cx.state, &session, text).await?;
    deliver_reply(&cx.state, "admin-reply", &reply).await;
    Ok(())
}

async fn admin_typing(cx: EventContext, payload: Typing) -> AppResult<()> {
    require_admin(&cx, "admin-typing").await?;
    let (session, typing) = typing_of(&cx.state.config, payload)?;
    cx.state
        .hub
        .to([session_room(&session)])
        .emit("admin-typing", &typing)
        .await;
    Ok(())
}

async fn admin_takeover(cx: EventContext, payload: SessionRef) -> AppResult<()> {
    set_handed_off(cx, "admin-takeover", payload, true).await
}

async fn admin_release(cx: EventContext, payload: SessionRef) -> AppResult<()> {
    set_handed_off(cx, "admin-release", payload, false).await
}

async fn set_handed_off(
    cx: EventContext,
    event: &str,
    payload: SessionRef,
    handed_off: bool,
) -> AppResult<()> {
    require_admin(&cx, event).await?;
    let session = session_id(&cx.state.config, &payload.session_id)?;
    service::set_handed_off(&cx.state, &session, handed_off).await?;
    admins(&cx.state).emit("chat-list-update", &()).await;
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

    fn chat_text_of(config: &Config, payload: Payload) -> AppResult<(SessionId, MessageText)> {
        chat_text(config, parse_payload(payload)?)
    }

    fn typing_from(config: &Config, payload: Payload) -> AppResult<(SessionId, Typing)> {
        typing_of(config, parse_payload(payload)?)
    }

    fn session_of(config: &Config, payload: Payload) -> AppResult<SessionId> {
        let payload: SessionRef = parse_payload(payload)?;
        session_id(config, &payload.session_id)
    }

    const CODES: [&str; 4] = [
        "INVALID_PAYLOAD",
        "INVALID_SESSION_ID",
        "EMPTY_MESSAGE",
        "MESSAGE_TOO_LONG",
    ];

    fn config() -> Config {
        Config::from_args(Vec::<String>::new()).unwrap()
    }

    fn clear<T>(result: AppResult<T>) -> Result<(), TestCaseError> {
        if let Err(err) = result {
            prop_assert!(CODES.contains(&err.code()), "{}", err.code());
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn any_json_is_an_event_payload_or_a_clear_error(value in any_json()) {
            let config = config();
            clear(chat_text_of(&config, Payload::of_json(&value)))?;
            clear(typing_from(&config, Payload::of_json(&value)))?;
            clear(session_of(&config, Payload::of_json(&value)))?;
            clear(parse_payload::<UserConnected>(Payload::of_json(&value))
                .and_then(|p| session_id(&config, &p.session_id)))?;
        }

        #[test]
        fn payload_shaped_json_is_accepted_or_a_clear_error(
            session in any_json(), message in any_json(), is_typing in any_json()
        ) {
            let config = config();
            let value = serde_json::json!({ "sessionId": session, "message": message, "isTyping": is_typing });
            clear(chat_text_of(&config, Payload::of_json(&value)))?;
            clear(typing_from(&config, Payload::of_json(&value)))?;
        }
    }

    #[test]
    fn unreadable_payloads_are_invalid_payloads() {
        let config = config();
        let unreadable = Payload::of_text("[\"user-message\",{");
        assert_eq!(
            chat_text_of(&config, unreadable).unwrap_err().code(),
            "INVALID_PAYLOAD"
        );
    }
}
