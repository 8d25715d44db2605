//! Live-chat socket events. Each handler parses its payload, calls the
//! service, and tells the right rooms; any failure goes back to the sender as
//! `chat-error {code, message}` and nothing is stored.
//!
//! Rooms: one per chat session (named by its `sessionId`), and `admins` for
//! sockets that authenticated as admins in the handshake.

use std::{future::Future, net::SocketAddr};

use axum::extract::ConnectInfo;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use socketioxide::{ParserError, SocketIo, extract::SocketRef, operators::BroadcastOperators};

use super::service::{self, FollowUp, MessageView, Visitor};
use crate::{
    auth::Identity,
    error::{AppError, AppResult},
    socket::{on_event, parse_payload},
    state::AppState,
};

pub const ADMINS_ROOM: &str = "admins";
const ERROR_EVENT: &str = "chat-error";

/// What every live-chat handler gets.
struct Context {
    socket: SocketRef,
    io: SocketIo,
    state: AppState,
}

/// Admin sockets; every socket in legacy mode, where dashboards carry no token.
pub fn admins(io: &SocketIo, state: &AppState) -> BroadcastOperators {
    if state.config.livechat_legacy_broadcast {
        io.broadcast()
    } else {
        io.to(ADMINS_ROOM)
    }
}

impl Context {
    fn admins(&self) -> BroadcastOperators {
        admins(&self.io, &self.state)
    }

    /// The session's room and the admins, each socket once.
    fn session_and_admins(&self, session_id: &str) -> BroadcastOperators {
        self.io.to([session_id.to_owned(), ADMINS_ROOM.to_owned()])
    }

    fn require_admin(&self, event: &str) -> AppResult<()> {
        let is_admin = self
            .socket
            .extensions
            .get::<Identity>()
            .is_some_and(|identity| identity.is_admin());
        if is_admin || self.state.config.livechat_legacy_broadcast {
            Ok(())
        } else {
            Err(AppError::Forbidden {
                code: "FORBIDDEN",
                message: format!("'{event}' is for authenticated admins"),
            })
        }
    }

    /// Where the widget connects from, for sessions it creates.
    fn visitor(&self, ip_address: Option<String>, user_agent: Option<String>) -> Visitor {
        let parts = self.socket.req_parts();
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .map(|ip| ip.trim().to_owned());
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        let header_agent = parts
            .headers
            .get("user-agent")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Visitor {
            ip_address: ip_address.or(forwarded).or(peer),
            user_agent: user_agent.or(header_agent),
        }
    }
}

async fn emit(target: BroadcastOperators, event: &str, payload: &impl Serialize) {
    if let Err(err) = target.emit(event, payload).await {
        tracing::warn!(%err, event, "live-chat broadcast failed");
    }
}

fn report(socket: &SocketRef, err: AppError) {
    let _ = socket.emit(ERROR_EVENT, &err.to_socket_error());
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

pub fn register(socket: &SocketRef, state: &AppState, identity: &Identity) {
    if identity.is_admin() {
        socket.join(ADMINS_ROOM);
    }
    on(socket, state, "user-connected", user_connected);
    on(socket, state, "user-message", user_message);
    on(socket, state, "user-typing", user_typing);
    on(socket, state, "admin-reply", admin_reply);
    on(socket, state, "admin-typing", admin_typing);
    on(socket, state, "admin-release", admin_release);
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserConnected {
    session_id: String,
    ip_address: Option<String>,
    user_agent: Option<String>,
}

/// `{sessionId, message, timestamp?}`; the server's clock stamps the message.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatText {
    session_id: String,
    message: String,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct Typing {
    session_id: String,
    is_typing: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionRef {
    session_id: String,
}

async fn user_connected(cx: Context, data: Result<Value, ParserError>) -> AppResult<()> {
    let payload: UserConnected = parse_payload(data)?;
    let visitor = cx.visitor(payload.ip_address, payload.user_agent);
    service::ensure_session(&cx.state.db, &payload.session_id, &visitor).await?;
    cx.socket.join(payload.session_id);
    Ok(())
}

async fn user_message(cx: Context, data: Result<Value, ParserError>) -> AppResult<()> {
    let payload: ChatText = parse_payload(data)?;
    service::validate_session_id(&payload.session_id)?;
    let text =
        service::validate_message(&payload.message, cx.state.config.livechat_max_message_chars)?;
    let session_id = payload.session_id.as_str();
    let visitor = cx.visitor(None, None);
    let guard = cx.state.livechat.lock(session_id).await;
    let (row, follow_up) =
        service::record_user_message(&cx.state, session_id, text, &visitor).await?;
    cx.socket.join(session_id.to_owned());
    emit(cx.admins(), "user-message", &row).await;
    let _ = cx.socket.emit("message-received", &json!({ "id": row.id }));
    match follow_up {
        FollowUp::Handoff { first } => {
            let notice = service::hand_off(&cx.state, session_id, first).await?;
            emit(
                cx.admins(),
                "handoff-requested",
                &json!({ "sessionId": session_id }),
            )
            .await;
            if let Some(notice) = notice {
                deliver_reply(&cx, "ai-reply", &notice).await;
            }
        }
        FollowUp::AiReply => {
            drop(guard);
            let session_id = session_id.to_owned();
            let tasks = cx.state.tasks.clone();
            tasks.spawn(reply_with_ai(cx, session_id));
        }
        FollowUp::None => {}
    }
    Ok(())
}

/// A reply goes to the session and the admins, then the admins' lists refresh.
async fn deliver_reply(cx: &Context, event: &str, row: &MessageView) {
    emit(cx.session_and_admins(&row.session_id), event, row).await;
    emit(cx.admins(), "chat-list-update", &()).await;
}

/// Generates and delivers the AI's answer. `ai-thinking` is switched off
/// whatever happens; an answer that finds the session handed off is dropped.
async fn reply_with_ai(cx: Context, session_id: String) {
    let thinking = |on: bool| json!({ "sessionId": session_id, "isThinking": on });
    emit(cx.io.to(session_id.clone()), "ai-thinking", &thinking(true)).await;
    let outcome = async {
        let text = service::generate_reply(&cx.state, &session_id).await?;
        let _guard = cx.state.livechat.lock(&session_id).await;
        match service::record_ai_reply(&cx.state, &session_id, &text).await? {
            Some(row) => deliver_reply(&cx, "ai-reply", &row).await,
            None => tracing::debug!(%session_id, "AI answer dropped: an admin took over"),
        }
        AppResult::Ok(())
    }
    .await;
    if let Err(err) = outcome {
        emit(
            cx.io.to(session_id.clone()),
            ERROR_EVENT,
            &err.to_socket_error(),
        )
        .await;
    }
    emit(
        cx.io.to(session_id.clone()),
        "ai-thinking",
        &thinking(false),
    )
    .await;
}

async fn user_typing(cx: Context, data: Result<Value, ParserError>) -> AppResult<()> {
    let payload: Typing = parse_payload(data)?;
    service::validate_session_id(&payload.session_id)?;
    emit(cx.admins(), "user-typing", &payload).await;
    Ok(())
}

async fn admin_reply(cx: Context, data: Result<Value, ParserError>) -> AppResult<()> {
    cx.require_admin("admin-reply")?;
    let payload: ChatText = parse_payload(data)?;
    service::validate_session_id(&payload.session_id)?;
    let text =
        service::validate_message(&payload.message, cx.state.config.livechat_max_message_chars)?;
    let _guard = cx.state.livechat.lock(&payload.session_id).await;
    let row = service::record_admin_reply(&cx.state, &payload.session_id, text).await?;
    deliver_reply(&cx, "admin-reply", &row).await;
    Ok(())
}

async fn admin_typing(cx: Context, data: Result<Value, ParserError>) -> AppResult<()> {
    cx.require_admin("admin-typing")?;
    let payload: Typing = parse_payload(data)?;
    service::validate_session_id(&payload.session_id)?;
    emit(
        cx.io.to(payload.session_id.clone()),
        "admin-typing",
        &payload,
    )
    .await;
    Ok(())
}

async fn admin_release(cx: Context, data: Result<Value, ParserError>) -> AppResult<()> {
    cx.require_admin("admin-release")?;
    let payload: SessionRef = parse_payload(data)?;
    service::validate_session_id(&payload.session_id)?;
    service::set_handed_off(&cx.state.db, &payload.session_id, false).await?;
    emit(cx.admins(), "chat-list-update", &()).await;
    Ok(())
}
