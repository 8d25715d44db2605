//! Nothing missed across reconnects. A session's row records the node holding
//! its newest visitor socket (`visitor_node`) and, once no visitor socket of
//! it is connected anywhere, when the last one went (`visitor_away_after`:
//! the newest message stamped before that moment). The next visitor socket
//! that names the session is first sent the replies stored after it.
//! Where that catch-up ends and live delivery starts is exact on any node:
//! see [`VisitorSockets`].
//!
//! Everything is read from the database, so the visitor may come back on
//! another node, or after the node it was on was killed: a node that died
//! without recording its visitors' departure is taken to have delivered
//! what it stored up to its last heartbeat (alone, up to this process's
//! start). What stays ambiguous: a reply written to a connection in the
//! instant it was cut counts as delivered; after a killed node, replies of
//! its last heartbeat interval may arrive twice.
//!
//! Every function here runs under the session's lock (see
//! [`super::service::lock`]), so on one node a departure, a return and a
//! reply never interleave.

use std::{future::Future, time::Duration};

use chrono::{DateTime, Utc};
use entity::{chat_message, chat_session, console_presence};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
    sea_query::{Alias, Expr, ExprTrait, Func, OnConflict, Query, SubQueryStatement},
};

use socketioxide::socket::Sid;

use super::domain::{MessageView, Sender, SessionId, VisitorSockets};
use crate::{
    cluster::nodes,
    error::{AppError, AppResult},
    state::AppState,
};

/// The most rows one return sends (the newest ones); older ones stay readable
/// over REST. Half a socket's send buffer, so the rows that follow fit too.
pub const CATCH_UP_LIMIT: u64 = 500;

/// What the returning socket already has.
#[derive(Debug, Clone, Copy)]
pub enum Known {
    /// The client does not say: the server's record of the session decides.
    Unsaid,
    /// The client names the newest row it has.
    Through(i64),
}

/// What a returning visitor socket is sent before it joins the session's room.
#[derive(Debug, Default)]
pub struct CatchUp {
    /// Oldest first.
    pub rows: Vec<MessageView>,
    /// The AI is answering the session right now.
    pub ai_answering: bool,
    /// The row the client named is not one of the session's: `rows` is the
    /// whole history.
    pub unknown_row: bool,
}

/// Visitor socket `socket` names `session` (for the first time, or with the
/// row it has). `someone_there` says whether another socket is in the
/// session's room on any node; it is asked only when this node cannot tell
/// otherwise. `send` is handed what the socket missed, in the transaction
/// that adds the socket to the session's [`VisitorSockets`]: a reply stored
/// meanwhile, on any node, waits for that transaction and then goes to the
/// socket live, after what `send` sent. `false`: there is no such session.
pub async fn visitor_arrived<F>(
    state: &AppState,
    session: &SessionId,
    socket: Sid,
    known: Known,
    someone_there: impl FnOnce() -> F,
    send: impl FnOnce(&CatchUp),
) -> AppResult<bool>
where
    F: Future<Output = bool>,
{
    let db = &state.db;
    let Some(record) = chat_session::Entity::find()
        .filter(chat_session::Column::SessionId.eq(session.as_str()))
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    let me = state.cluster.node().as_str();
    let mut catch_up = CatchUp {
        ai_answering: record.ai_reply_pending_at.is_some(),
        ..CatchUp::default()
    };
    // The rows to send: after which id (all: `None`), and whether only replies.
    let replay = match (known, record.visitor_away_after, &record.visitor_node) {
        (Known::Through(id), ..) => match i32::try_from(id) {
            Ok(id) if has_row(db, session, id).await? => Some((Some(id), false)),
            _ => {
                catch_up.unknown_row = true;
                Some((None, false))
            }
        },
        // The room never carries the visitor's own messages.
        (Known::Unsaid, Some(after), _) => Some((Some(after), true)),
        (Known::Unsaid, None, Some(node)) if node != me && !someone_there().await => {
            match vanished_until(state, node).await? {
                Some(until) => Some((Some(newest_id_until(db, Some(session), until).await?), true)),
                None => None,
            }
        }
        _ => None,
    };
    let here = [
        (chat_session::Column::VisitorNode, Expr::value(me)),
        (
            chat_session::Column::VisitorAwayAfter,
            Expr::value(Option::<i32>::None),
        ),
    ];
    let mut before = record.visitor_sockets;
    let mut attempts = 0;
    let txn = loop {
        let txn = db.begin().await?;
        let after = VisitorSockets::parse(before.as_deref()).with(socket);
        if swap_sockets(&txn, session, before.as_deref(), &after, &here).await? {
            break txn;
        }
        txn.rollback().await?;
        attempts += 1;
        if attempts == SWAP_ATTEMPTS {
            return Err(AppError::Internal(
                "the session's visitor sockets kept changing".to_owned(),
            ));
        }
        let Some(current) = current_sockets(db, session).await? else {
            return Ok(false);
        };
        before = current;
    };
    if let Some((after, replies_only)) = replay {
        catch_up.rows = rows_after(&txn, session, after, replies_only).await?;
    }
    send(&catch_up);
    txn.commit().await?;
    Ok(true)
}

/// Tries of a compare-and-swap on a session's visitor sockets before giving
/// up; each failed try means another socket of the session came or went.
const SWAP_ATTEMPTS: u32 = 8;

/// Sets the session's visitor sockets to `after` (and `also`) if they are
/// still `before`; whether they were.
async fn swap_sockets(
    db: &impl ConnectionTrait,
    session: &SessionId,
    before: Option<&str>,
    after: &VisitorSockets,
    also: &[(chat_session::Column, Expr)],
) -> AppResult<bool> {
    use chat_session::Column::{SessionId, VisitorSockets};
    let mut update = chat_session::Entity::update_many()
        .col_expr(VisitorSockets, Expr::value(after.column()))
        .filter(SessionId.eq(session.as_str()))
        .filter(match before {
            Some(ids) => VisitorSockets.eq(ids),
            None => VisitorSockets.is_null(),
        });
    for (column, value) in also {
        update = update.col_expr(*column, value.clone());
    }
    Ok(update.exec(db).await?.rows_affected == 1)
}

/// The session's visitor sockets as stored (`None`: no such session).
async fn current_sockets(
    db: &DatabaseConnection,
    session: &SessionId,
) -> AppResult<Option<Option<String>>> {
    Ok(chat_session::Entity::find()
        .select_only()
        .column(chat_session::Column::VisitorSockets)
        .filter(chat_session::Column::SessionId.eq(session.as_str()))
        .into_tuple::<Option<String>>()
        .one(db)
        .await?)
}

/// Visitor socket `socket` of `session` went at `at`: replies stop going to
/// it. `alone`: no other visitor socket of the session is connected on any
/// node, so the session remembers what had been sent. Nothing changes in
/// that record when a socket on another node has named the session since.
pub async fn visitor_left(
    state: &AppState,
    session: &SessionId,
    socket: Sid,
    at: DateTime<Utc>,
    alone: bool,
) -> AppResult<()> {
    let db = &state.db;
    for _ in 0..SWAP_ATTEMPTS {
        let Some(before) = current_sockets(db, session).await? else {
            return Ok(());
        };
        let sockets = VisitorSockets::parse(before.as_deref());
        if !sockets.iter().any(|sid| sid == socket) {
            break;
        }
        if swap_sockets(
            db,
            session,
            before.as_deref(),
            &sockets.without(socket),
            &[],
        )
        .await?
        {
            break;
        }
    }
    if !alone {
        return Ok(());
    }
    mark_away(
        state,
        Condition::all().add(chat_session::Column::SessionId.eq(session.as_str())),
        at,
    )
    .await
}

/// This node stops: every session whose visitor it held, and every console,
/// is marked away now.
pub async fn node_stopping(state: &AppState) -> AppResult<()> {
    let now = Utc::now();
    mark_away(state, Condition::all(), now).await?;
    mark_console_away(state, Condition::all(), now).await
}

async fn mark_away(state: &AppState, which: Condition, at: DateTime<Utc>) -> AppResult<()> {
    use chat_session::Column::{VisitorAwayAfter, VisitorNode};
    mark_away_in::<chat_session::Entity>(state, VisitorNode, VisitorAwayAfter, which, at, true)
        .await
}

/// Where `node` is this node and `away_after` unset, among the rows `which`
/// picks: no node, and the newest message stamped by `at` (the session's own
/// when `of_the_session`).
async fn mark_away_in<E: EntityTrait>(
    state: &AppState,
    node: E::Column,
    away_after: E::Column,
    which: Condition,
    at: DateTime<Utc>,
    of_the_session: bool,
) -> AppResult<()> {
    E::update_many()
        .col_expr(away_after, newest_row_before(at, of_the_session))
        .col_expr(node, Expr::value(Option::<String>::None))
        .filter(which)
        .filter(node.eq(state.cluster.node().as_str()))
        .filter(away_after.is_null())
        .exec(&state.db)
        .await?;
    Ok(())
}

/// The id of the newest message stamped at or before `at` (0: none), as a
/// column expression; `of_the_session`: of the session whose row it sets.
fn newest_row_before(at: DateTime<Utc>, of_the_session: bool) -> Expr {
    let m = Alias::new("m");
    let mut newest = Query::select()
        .expr(Func::coalesce([
            Func::max(Expr::col((m.clone(), chat_message::Column::Id))).into(),
            Expr::val(0),
        ]))
        .from_as(chat_message::Entity, m.clone())
        .and_where(Expr::col((m.clone(), chat_message::Column::Timestamp)).lte(at))
        .to_owned();
    if of_the_session {
        newest.and_where(
            Expr::col((m, chat_message::Column::SessionId))
                .equals((chat_session::Entity, chat_session::Column::SessionId)),
        );
    }
    Expr::SubQuery(None, Box::new(SubQueryStatement::SelectStatement(newest)))
}

/// The socket was on `node`, which recorded no departure and holds no socket
/// of the session (or console) any more: it was killed (or its record of the
/// departure is still on its way). It delivered up to its last heartbeat; a
/// node the registry no longer lists was, when this node runs alone, a
/// previous process, which delivered nothing after this one started.
async fn vanished_until(state: &AppState, node: &str) -> AppResult<Option<DateTime<Utc>>> {
    Ok(match nodes::last_heartbeat(&state.db, node).await? {
        Some(beat) => Some(beat),
        None if !state.cluster.is_shared() => Some(
            Utc::now() - chrono::Duration::from_std(state.started_at.elapsed()).unwrap_or_default(),
        ),
        None => None,
    })
}

/// The id of the newest message (of `session`, when given) stamped at or
/// before `until`; 0 when there is none.
async fn newest_id_until(
    db: &DatabaseConnection,
    session: Option<&SessionId>,
    until: DateTime<Utc>,
) -> AppResult<i32> {
    let mut query = chat_message::Entity::find()
        .select_only()
        .column_as(chat_message::Column::Id.max(), "newest")
        .filter(chat_message::Column::Timestamp.lte(until));
    if let Some(session) = session {
        query = query.filter(chat_message::Column::SessionId.eq(session.as_str()));
    }
    Ok(query
        .into_tuple::<Option<i32>>()
        .one(db)
        .await?
        .flatten()
        .unwrap_or(0))
}

async fn has_row(db: &DatabaseConnection, session: &SessionId, id: i32) -> AppResult<bool> {
    Ok(chat_message::Entity::find_by_id(id)
        .filter(chat_message::Column::SessionId.eq(session.as_str()))
        .select_only()
        .column(chat_message::Column::Id)
        .into_tuple::<i32>()
        .one(db)
        .await?
        .is_some())
}

/// The session's rows after `after` (all when `None`), oldest first, at most
/// the newest [`CATCH_UP_LIMIT`]; `replies_only`: the support side's rows.
async fn rows_after(
    db: &impl ConnectionTrait,
    session: &SessionId,
    after: Option<i32>,
    replies_only: bool,
) -> AppResult<Vec<MessageView>> {
    let mut query =
        chat_message::Entity::find().filter(chat_message::Column::SessionId.eq(session.as_str()));
    if let Some(after) = after {
        query = query.filter(chat_message::Column::Id.gt(after));
    }
    if replies_only {
        query = query.filter(chat_message::Column::SenderType.ne(Sender::User.as_str()));
    }
    let mut rows: Vec<MessageView> = query
        .order_by_desc(chat_message::Column::Id)
        .limit(CATCH_UP_LIMIT)
        .all(db)
        .await?
        .into_iter()
        .map(MessageView::from)
        .collect();
    rows.reverse();
    Ok(rows)
}

/// A returning console gets the rows of the last this long at most.
pub const CONSOLE_CATCH_UP_WINDOW: Duration = Duration::from_secs(600);
/// … and at most this many (the newest).
pub const CONSOLE_CATCH_UP_LIMIT: u64 = CATCH_UP_LIMIT;

/// An admin socket of `user` connected (and joined the admins' room at
/// `joined_at`). The live-chat rows stored after the one it names, or, naming
/// none, since the server recorded that none of the user's admin sockets was
/// connected; and before `joined_at` (later ones reach it live): the newest
/// [`CONSOLE_CATCH_UP_LIMIT`] of the last [`CONSOLE_CATCH_UP_WINDOW`], oldest
/// first. `someone_there`: whether another socket of the user is connected
/// on any node.
pub async fn admin_arrived<F>(
    state: &AppState,
    user: i32,
    known: Known,
    joined_at: DateTime<Utc>,
    someone_there: impl FnOnce() -> F,
) -> AppResult<Vec<MessageView>>
where
    F: Future<Output = bool>,
{
    let db = &state.db;
    let me = state.cluster.node().as_str();
    let record = console_presence::Entity::find_by_id(user).one(db).await?;
    let away_after = match (
        known,
        record.as_ref().map(|r| (r.away_after, r.node.as_deref())),
    ) {
        (Known::Through(id), _) => Some(i32::try_from(std::cmp::max(id, 0)).unwrap_or(i32::MAX)),
        (Known::Unsaid, Some((Some(after), _))) => Some(after),
        (Known::Unsaid, Some((None, Some(node)))) if node != me && !someone_there().await => {
            match vanished_until(state, node).await? {
                Some(until) => Some(newest_id_until(db, None, until).await?),
                None => None,
            }
        }
        _ => None,
    };
    let here = record
        .as_ref()
        .is_some_and(|r| r.node.as_deref() == Some(me) && r.away_after.is_none());
    if !here {
        let row = console_presence::ActiveModel {
            user_id: Set(user),
            node: Set(Some(me.to_owned())),
            away_after: Set(None),
        };
        console_presence::Entity::insert(row)
            .on_conflict(
                OnConflict::column(console_presence::Column::UserId)
                    .update_columns([
                        console_presence::Column::Node,
                        console_presence::Column::AwayAfter,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    let Some(after) = away_after else {
        return Ok(Vec::new());
    };
    let window = chrono::Duration::from_std(CONSOLE_CATCH_UP_WINDOW).unwrap_or_default();
    let mut rows: Vec<MessageView> = chat_message::Entity::find()
        .filter(chat_message::Column::Id.gt(after))
        .filter(chat_message::Column::Timestamp.lt(joined_at))
        .filter(chat_message::Column::Timestamp.gte(joined_at - window))
        .order_by_desc(chat_message::Column::Id)
        .limit(CONSOLE_CATCH_UP_LIMIT)
        .all(db)
        .await?
        .into_iter()
        .map(MessageView::from)
        .collect();
    rows.reverse();
    Ok(rows)
}

/// The last admin socket of `user` on this node went at `at`, and no other
/// is connected anywhere: the console remembers what it had been sent.
pub async fn admin_left(state: &AppState, user: i32, at: DateTime<Utc>) -> AppResult<()> {
    mark_console_away(
        state,
        Condition::all().add(console_presence::Column::UserId.eq(user)),
        at,
    )
    .await
}

async fn mark_console_away(state: &AppState, which: Condition, at: DateTime<Utc>) -> AppResult<()> {
    use console_presence::Column::{AwayAfter, Node};
    mark_away_in::<console_presence::Entity>(state, Node, AwayAfter, which, at, false).await
}
