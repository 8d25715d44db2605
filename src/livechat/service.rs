//! The live-chat message path: sessions, messages and hand-off state, and
//! the per-session order lock. Nothing here knows about sockets; the event
//! handlers and routes decide who hears about a change. The AI's answers and
//! settings are in [`super::ai`], what the routes read in [`super::history`].
//!
//! Writes go through the group-commit [`Writer`]; the hand-off flags and AI
//! settings are read from the [`HotState`] cache (the database holds the
//! truth, see [`super::cache`]).

use std::{hash::BuildHasher, sync::Arc};

use entity::chat_session;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, sea_query::Expr,
};
use tokio::sync::{Mutex, MutexGuard};

use super::{
    ai,
    cache::HotState,
    domain::{MessageText, MessageView, Reply, SessionId, Visitor},
    handoff,
    store::{HandedOff, Writer},
};
use crate::{
    cluster::{self, Signal, nodes},
    config::Config,
    error::AppResult,
    state::AppState,
    telemetry::metrics,
};

/// Live-chat sessions share this many locks; a collision only makes two
/// sessions wait for each other briefly.
const LOCK_STRIPES: usize = 1024;

/// The live-chat flow's own state, installed in the app state at start-up.
pub struct Livechat {
    pub writer: Writer,
    pub cache: Arc<HotState>,
    locks: SessionLocks,
}

impl Livechat {
    pub fn new(db: DatabaseConnection, config: &Config, node: &str) -> Self {
        let cache = Arc::new(HotState::new(config.livechat_session_cache, node));
        Self {
            writer: Writer::start(db, config, cache.clone()),
            cache,
            locks: SessionLocks::new(LOCK_STRIPES),
        }
    }
}

pub(super) fn flow(state: &AppState) -> &Livechat {
    state.flow::<Livechat>()
}

/// Per-session locks, striped so memory stays bounded without clean-up. A
/// session's "store, then deliver" steps run under its lock, so every
/// listener sees its messages in the order they are stored.
struct SessionLocks {
    stripes: Box<[Mutex<()>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl SessionLocks {
    fn new(stripes: usize) -> Self {
        Self {
            stripes: (0..stripes.max(1)).map(|_| Mutex::new(())).collect(),
            hasher: Default::default(),
        }
    }

    async fn lock(&self, session: &SessionId) -> MutexGuard<'_, ()> {
        let index = self.hasher.hash_one(session.as_str()) as usize % self.stripes.len();
        self.stripes[index].lock().await
    }
}

/// Holds the session's order lock while its changes are stored and delivered.
pub async fn lock<'a>(state: &'a AppState, session: &SessionId) -> MutexGuard<'a, ()> {
    flow(state).locks.lock(session).await
}

/// Creates the session when it is new (idempotent: widgets announce themselves
/// twice). A session the cache knows costs no database work.
/// Whether this node has seen the session lately (its cache holds it).
pub fn is_known(state: &AppState, session: &SessionId) -> bool {
    flow(state).cache.session(session.as_str()).is_some()
}

pub async fn ensure_session(
    state: &AppState,
    session: &SessionId,
    visitor: Visitor,
) -> AppResult<()> {
    let livechat = flow(state);
    if livechat.cache.session(session.as_str()).is_some() {
        return Ok(());
    }
    livechat.writer.ensure_session(session, visitor).await
}

/// What should follow a visitor's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUp {
    /// The AI answers (the session is marked waiting for it).
    AiReply,
    /// The visitor asked for a human.
    Handoff,
    /// A human has the session, or the AI is off.
    None,
}

/// Stores a visitor's message (creating the session when new, with the
/// details `visitor` gives) and decides what follows it.
pub async fn record_user_message(
    state: &AppState,
    session: &SessionId,
    text: MessageText,
    visitor: impl FnOnce() -> Visitor,
) -> AppResult<(MessageView, FollowUp)> {
    let wants_human = handoff::wants_human(text.as_str());
    let ai_wanted = !wants_human && ai::ai_settings(state).await?.is_enabled;
    let livechat = flow(state);
    // Only a session that may be new needs the visitor's details.
    let visitor = match livechat.cache.session(session.as_str()) {
        Some(_) => Visitor::default(),
        None => visitor(),
    };
    let stored = livechat
        .writer
        .user_message(session, visitor, text, ai_wanted)
        .await?;
    let follow_up = if wants_human {
        FollowUp::Handoff
    } else if stored.ai_pending {
        FollowUp::AiReply
    } else {
        FollowUp::None
    };
    Ok((stored.row, follow_up))
}

/// The visitor asked for a human: the session is handed off and, the first
/// time, the AI's "connecting you" notice stored.
pub async fn hand_off(state: &AppState, session: &SessionId) -> AppResult<HandedOff> {
    let handed_off = flow(state)
        .writer
        .hand_off(session, Some(MessageText::server(handoff::HANDOFF_REPLY)))
        .await?;
    if handed_off.first {
        metrics::handed_off();
    }
    session_changed(state, session);
    Ok(handed_off)
}

/// An admin's reply: the session is handed off and the reply stored, at once.
pub async fn record_admin_reply(
    state: &AppState,
    session: &SessionId,
    text: MessageText,
) -> AppResult<Reply> {
    let reply = flow(state).writer.admin_reply(session, text).await?;
    session_changed(state, session);
    Ok(reply)
}

/// Stores the AI's answer unless a human took the session meanwhile (then `None`).
pub async fn record_ai_reply(
    state: &AppState,
    session: &SessionId,
    text: &str,
) -> AppResult<Option<Reply>> {
    flow(state)
        .writer
        .ai_reply(session, MessageText::server(text))
        .await
}

/// The AI could not answer; the session no longer waits for it.
pub async fn ai_reply_failed(state: &AppState, session: &SessionId) -> AppResult<()> {
    flow(state).writer.clear_ai_pending(session).await
}

/// An admin takes the session (`true`: the AI stays silent from now, even
/// before a reply) or hands it back to the AI (`false`).
pub async fn set_handed_off(
    state: &AppState,
    session: &SessionId,
    handed_off: bool,
) -> AppResult<()> {
    flow(state)
        .writer
        .set_handed_off(session, handed_off)
        .await?;
    session_changed(state, session);
    Ok(())
}

/// Signal topic: another node changed a session's hand-off flag.
const SESSION_CHANGED: &str = "livechat.session";

/// Other nodes drop what they cached of the session.
fn session_changed(state: &AppState, session: &SessionId) {
    state.cluster.publish(
        SESSION_CHANGED,
        serde_json::json!({ "sessionId": session.as_str() }),
    );
}

/// What another node told this one.
pub fn on_signal(state: &AppState, signal: &Signal) {
    let cache = &flow(state).cache;
    match signal.topic.as_str() {
        SESSION_CHANGED => {
            if let Some(session) = signal.body.get("sessionId").and_then(|id| id.as_str()) {
                cache.forget_session(session);
            }
        }
        ai::CONFIG_CHANGED => cache.forget_config(),
        cluster::RESYNC => cache.forget_all(),
        _ => {}
    }
}

/// Sessions whose AI answer no live node is generating any more (its node
/// stopped, or died), each claimed for this node so that only one node
/// answers it again.
pub async fn claim_orphaned_ai_replies(state: &AppState) -> AppResult<Vec<SessionId>> {
    let orphans: Vec<(String, Option<String>)> = chat_session::Entity::find()
        .select_only()
        .column(chat_session::Column::SessionId)
        .column(chat_session::Column::AiReplyNode)
        .filter(chat_session::Column::AiReplyPendingAt.is_not_null())
        .filter(nodes::orphaned(chat_session::Column::AiReplyNode))
        .into_tuple()
        .all(&state.db)
        .await?;
    let me = state.cluster.node().as_str();
    let mut claimed = Vec::with_capacity(orphans.len());
    for (session, owner) in orphans {
        let previous_owner = match &owner {
            Some(owner) => chat_session::Column::AiReplyNode.eq(owner.as_str()),
            None => chat_session::Column::AiReplyNode.is_null(),
        };
        let taken = chat_session::Entity::update_many()
            .col_expr(chat_session::Column::AiReplyNode, Expr::value(me))
            .filter(chat_session::Column::SessionId.eq(session.as_str()))
            .filter(chat_session::Column::AiReplyPendingAt.is_not_null())
            .filter(previous_owner)
            .exec(&state.db)
            .await?
            .rows_affected;
        // Stored ids passed validation when they were stored; a shorter
        // minimum configured since must not hide them.
        if taken == 1
            && let Ok(session) = SessionId::parse(&session, 1)
        {
            claimed.push(session);
        }
    }
    Ok(claimed)
}
