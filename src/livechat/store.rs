//! The live-chat writer: one writer per database takes the pending writes of
//! every socket and commits them together (group commit).
//!
//! Callers hold a cheap [`Writer`] handle; each call sends an operation with a
//! reply channel and awaits its own result, which arrives only after the
//! transaction holding it committed — so nothing is acknowledged before it is
//! stored. The task drains whatever is queued (up to `LIVECHAT_BATCH_MAX_ROWS`,
//! waiting at most `LIVECHAT_BATCH_WINDOW_US` for more) into one transaction:
//! consecutive visitor messages are inserted together (one multi-row
//! `INSERT … RETURNING` on PostgreSQL, one prepared statement run per row on
//! SQLite, see `TxnExecutor::insert_rows`), and the `last_active` updates of
//! the batch become one `UPDATE … WHERE session_id IN`.
//! `last_active` is kept to the second: a session written in the current
//! second is not written again, which spares the index on it most updates.
//! While a batch commits the next one fills, so under load a commit carries
//! many messages and the per-message cost of the database falls.
//!
//! On SQLite the writer is a thread of its own with its own connection to the
//! file, which runs each transaction without leaving the thread (see
//! [`crate::store::executor`]) and does not preempt the runtime when woken
//! (`store::executor::yield_to_runtime`); elsewhere it is a task
//! using the pool.
//!
//! After each commit the writer updates the hot state ([`HotState`]), so the
//! cache is written through. A batch that fails for a reason other than a
//! lost database is retried one operation at a time, so one bad row cannot
//! fail the others.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use chrono::{DateTime, Utc};
use entity::{chat_message, chat_session};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
    sea_query::{Expr, IntoIden, OnConflict, Query},
};
use tokio::sync::{mpsc, oneshot};

use super::{
    cache::{HotState, SessionFacts},
    domain::{MessageText, MessageView, Reply, Sender, SessionId, Visitor, VisitorSockets},
};
use crate::{
    config::Config,
    error::{AppError, AppResult, database_unreachable},
    store::executor::{Cell, Param, PooledExecutor, RowInsert, SqliteExecutor, TxnExecutor},
    telemetry::metrics,
};

/// Operations waiting for the writer; callers beyond it wait to queue.
const QUEUE_CAPACITY: usize = 8192;

/// When a batch closes.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_rows: usize,
    /// How long a batch that is not full waits for more; zero commits at once
    /// whatever is queued.
    pub window: Duration,
}

/// A handle on the writer task; the task ends when the last handle is dropped.
#[derive(Clone)]
pub struct Writer {
    ops: mpsc::Sender<Pending>,
}

/// A visitor's stored message and what the session looked like.
#[derive(Debug, Clone)]
pub struct UserStored {
    pub row: MessageView,
    /// Whether a human had the session when the message was stored.
    pub handed_off: bool,
    /// Whether the session is waiting for an AI answer (marked in the same
    /// transaction, so a crash before the answer leaves a trace).
    pub ai_pending: bool,
}

/// The outcome of a visitor asking for a human.
#[derive(Debug, Clone)]
pub struct HandedOff {
    /// This request handed the session off (it was the AI's before).
    pub first: bool,
    pub notice: Option<Reply>,
}

#[derive(Debug, Clone)]
enum Op {
    Ensure {
        session: SessionId,
        visitor: Visitor,
    },
    User {
        session: SessionId,
        visitor: Visitor,
        text: MessageText,
        ai_wanted: bool,
    },
    Admin {
        session: SessionId,
        text: MessageText,
    },
    Ai {
        session: SessionId,
        text: MessageText,
    },
    HandOff {
        session: SessionId,
        notice: Option<MessageText>,
    },
    SetHandedOff {
        session: SessionId,
        handed_off: bool,
    },
    ClearAiPending {
        session: SessionId,
    },
}

impl Op {
    /// Visitor operations are merged into multi-row statements.
    fn is_visitor(&self) -> bool {
        matches!(self, Op::Ensure { .. } | Op::User { .. })
    }
}

/// What the writer answers for a visitor's message; the caller, which keeps
/// the session and text, makes the row of it (see [`Writer::user_message`]).
#[derive(Debug)]
struct UserRow {
    id: i32,
    at: DateTime<Utc>,
    handed_off: bool,
    ai_pending: bool,
}

#[derive(Debug)]
enum Output {
    Ensured,
    User(UserRow),
    Reply(Reply),
    MaybeReply(Option<Reply>),
    HandedOff(HandedOff),
    Done,
    /// The operation names a session that does not exist.
    Missing,
}

struct Pending {
    op: Op,
    reply: oneshot::Sender<Result<Output, DbErr>>,
}

impl Writer {
    /// Starts the writer of `db`: a thread with its own connection for a SQLite
    /// file, else a task on the pool.
    pub fn start(db: DatabaseConnection, config: &Config, cache: Arc<HotState>) -> Self {
        let limits = BatchLimits {
            max_rows: config.livechat_batch_max_rows.max(1),
            window: Duration::from_micros(config.livechat_batch_window_us),
        };
        let (ops, queue) = mpsc::channel(QUEUE_CAPACITY);
        let own_connection = crate::store::sqlite_file(&config.database_url)
            .map(|path| SqliteExecutor::open(&path, config));
        match own_connection {
            Some(Ok(executor)) => {
                let runtime = tokio::runtime::Handle::current();
                std::thread::Builder::new()
                    .name("livechat-writer".to_owned())
                    .spawn(move || run_on_thread(executor, cache, queue, limits, runtime))
                    .expect("the live-chat writer thread starts");
            }
            other => {
                if let Some(Err(err)) = other {
                    tracing::warn!(%err, "the live-chat writer uses the pool: its own SQLite connection failed");
                }
                tokio::spawn(run(PooledExecutor::new(db), cache, queue, limits));
            }
        }
        Self { ops }
    }

    async fn submit(&self, op: Op) -> AppResult<Output> {
        let stopped = || AppError::Internal("the live-chat writer stopped".to_owned());
        let (reply, answer) = oneshot::channel();
        self.ops
            .send(Pending { op, reply })
            .await
            .map_err(|_| stopped())?;
        let output = answer.await.map_err(|_| stopped())??;
        match output {
            Output::Missing => Err(super::domain::session_not_found()),
            output => Ok(output),
        }
    }

    /// Creates the session when it is new.
    pub async fn ensure_session(&self, session: &SessionId, visitor: Visitor) -> AppResult<()> {
        self.submit(Op::Ensure {
            session: session.clone(),
            visitor,
        })
        .await
        .map(|_| ())
    }

    /// Stores a visitor's message, creating the session when it is new; when
    /// `ai_wanted` and no human has the session, marks it waiting for the AI.
    pub async fn user_message(
        &self,
        session: &SessionId,
        visitor: Visitor,
        text: MessageText,
        ai_wanted: bool,
    ) -> AppResult<UserStored> {
        // The row is made here rather than on the writer's thread: memory is
        // then allocated and freed on the same thread, which glibc's
        // allocator serves from its fast per-thread cache.
        match self
            .submit(Op::User {
                session: session.clone(),
                visitor,
                text: text.clone(),
                ai_wanted,
            })
            .await?
        {
            Output::User(stored) => Ok(UserStored {
                row: view(stored.id, session, Sender::User, &text, stored.at),
                handed_off: stored.handed_off,
                ai_pending: stored.ai_pending,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// An admin's reply: the session is handed off and the reply stored, at once.
    pub async fn admin_reply(&self, session: &SessionId, text: MessageText) -> AppResult<Reply> {
        match self
            .submit(Op::Admin {
                session: session.clone(),
                text,
            })
            .await?
        {
            Output::Reply(reply) => Ok(reply),
            other => Err(unexpected(other)),
        }
    }

    /// Stores the AI's answer unless a human has the session: the check and the
    /// insert are one transaction, so no AI answer lands after an admin's
    /// reply, whichever node stored that.
    pub async fn ai_reply(
        &self,
        session: &SessionId,
        text: MessageText,
    ) -> AppResult<Option<Reply>> {
        match self
            .submit(Op::Ai {
                session: session.clone(),
                text,
            })
            .await?
        {
            Output::MaybeReply(reply) => Ok(reply),
            other => Err(unexpected(other)),
        }
    }

    /// Hands the session to a human; the first time, stores `notice` as an AI message.
    pub async fn hand_off(
        &self,
        session: &SessionId,
        notice: Option<MessageText>,
    ) -> AppResult<HandedOff> {
        match self
            .submit(Op::HandOff {
                session: session.clone(),
                notice,
            })
            .await?
        {
            Output::HandedOff(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    /// Sets who answers the session (an admin releasing it sets `false`).
    pub async fn set_handed_off(&self, session: &SessionId, handed_off: bool) -> AppResult<()> {
        self.submit(Op::SetHandedOff {
            session: session.clone(),
            handed_off,
        })
        .await
        .map(|_| ())
    }

    /// The AI will not answer after all (it failed).
    pub async fn clear_ai_pending(&self, session: &SessionId) -> AppResult<()> {
        self.submit(Op::ClearAiPending {
            session: session.clone(),
        })
        .await
        .map(|_| ())
    }
}

fn unexpected(output: Output) -> AppError {
    AppError::Internal(format!("the live-chat writer answered {output:?}"))
}

/// The writer as a task: waits for work, drains the queue, commits.
async fn run<E: TxnExecutor>(
    mut executor: E,
    cache: Arc<HotState>,
    mut queue: mpsc::Receiver<Pending>,
    limits: BatchLimits,
) {
    let mut batch = Vec::with_capacity(limits.max_rows);
    while queue.recv_many(&mut batch, limits.max_rows).await > 0 {
        fill(&mut queue, &mut batch, limits).await;
        commit(&mut executor, &cache, std::mem::take(&mut batch)).await;
    }
}

/// The writer as a thread: the same loop, with the transaction run in place.
fn run_on_thread(
    mut executor: SqliteExecutor,
    cache: Arc<HotState>,
    mut queue: mpsc::Receiver<Pending>,
    limits: BatchLimits,
    runtime: tokio::runtime::Handle,
) {
    crate::store::executor::yield_to_runtime();
    while let Some(first) = queue.blocking_recv() {
        let mut batch = Vec::with_capacity(limits.max_rows);
        batch.push(first);
        while batch.len() < limits.max_rows {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        if !limits.window.is_zero() {
            runtime.block_on(fill(&mut queue, &mut batch, limits));
        }
        // The executor never waits on I/O readiness: its futures finish at once.
        futures::executor::block_on(commit(&mut executor, &cache, batch));
        executor.between_batches();
    }
}

/// Waits up to the batch window for more operations, while the batch is not full.
async fn fill(queue: &mut mpsc::Receiver<Pending>, batch: &mut Vec<Pending>, limits: BatchLimits) {
    if limits.window.is_zero() {
        return;
    }
    let deadline = tokio::time::Instant::now() + limits.window;
    while batch.len() < limits.max_rows {
        let room = limits.max_rows - batch.len();
        match tokio::time::timeout_at(deadline, queue.recv_many(batch, room)).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// Commits `batch` and answers each caller.
async fn commit<E: TxnExecutor>(executor: &mut E, cache: &HotState, batch: Vec<Pending>) {
    let (ops, replies): (Vec<Op>, Vec<_>) = batch.into_iter().map(|p| (p.op, p.reply)).unzip();
    let generation = cache.generation();
    let started = std::time::Instant::now();
    match apply(executor, cache, &ops).await {
        Ok((outputs, facts)) => {
            metrics::livechat_commit(ops.len(), started.elapsed());
            cache.remember_sessions(generation, facts);
            for (reply, output) in replies.into_iter().zip(outputs) {
                let _ = reply.send(Ok(output));
            }
        }
        Err(err) if ops.len() > 1 && !database_unreachable(&err) => {
            tracing::warn!(%err, rows = ops.len(), "a live-chat batch failed; retrying it row by row");
            for (op, reply) in ops.into_iter().zip(replies) {
                let generation = cache.generation();
                let result = match apply(executor, cache, std::slice::from_ref(&op)).await {
                    Ok((mut outputs, facts)) => {
                        cache.remember_sessions(generation, facts);
                        outputs
                            .pop()
                            .ok_or_else(|| DbErr::Custom("no output".to_owned()))
                    }
                    Err(err) => Err(err),
                };
                let _ = reply.send(result);
            }
        }
        Err(err) => {
            for reply in replies {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
}

/// What one transaction learned about sessions; goes to the cache after commit.
type Facts = HashMap<Arc<str>, SessionFacts>;

/// Applies `ops` in order in one transaction.
async fn apply<E: TxnExecutor>(
    executor: &mut E,
    cache: &HotState,
    ops: &[Op],
) -> Result<(Vec<Output>, Facts), DbErr> {
    let now = Utc::now();
    executor.begin().await?;
    let mut facts = Facts::new();
    match apply_in_transaction(executor, cache, ops, now, &mut facts).await {
        Ok(outputs) => {
            executor.commit().await?;
            Ok((outputs, facts))
        }
        Err(err) => {
            executor.rollback().await;
            Err(err)
        }
    }
}

async fn apply_in_transaction<E: TxnExecutor>(
    executor: &mut E,
    cache: &HotState,
    ops: &[Op],
    now: DateTime<Utc>,
    facts: &mut Facts,
) -> Result<Vec<Output>, DbErr> {
    let mut outputs = Vec::with_capacity(ops.len());
    let mut rest = ops;
    while !rest.is_empty() {
        let visitors = rest.iter().take_while(|op| op.is_visitor()).count();
        if visitors > 0 {
            let (group, tail) = rest.split_at(visitors);
            outputs.extend(apply_visitor_group(executor, cache, group, now, facts).await?);
            rest = tail;
        } else {
            outputs.push(apply_one(executor, cache, &rest[0], now, facts).await?);
            rest = &rest[1..];
        }
    }
    Ok(outputs)
}

/// Visitor messages and session announcements: sessions created in one
/// statement, messages inserted in one, `last_active` set in one.
async fn apply_visitor_group<E: TxnExecutor>(
    executor: &mut E,
    cache: &HotState,
    group: &[Op],
    now: DateTime<Utc>,
    facts: &mut Facts,
) -> Result<Vec<Output>, DbErr> {
    // Sessions neither this transaction nor the cache knows: created when new,
    // read when not.
    let mut unseen: Vec<(&SessionId, &Visitor)> = Vec::new();
    let mut listed = HashSet::new();
    for op in group {
        let (Op::Ensure { session, visitor }
        | Op::User {
            session, visitor, ..
        }) = op
        else {
            continue;
        };
        if facts.contains_key(session.as_str()) || !listed.insert(session.as_str()) {
            continue;
        }
        match cache.session(session.as_str()) {
            Some(known) => {
                facts.insert(session.shared(), known);
            }
            None => unseen.push((session, visitor)),
        }
    }
    if !unseen.is_empty() {
        learn_sessions(executor, &unseen, now, facts).await?;
    }

    let messages: Vec<(&SessionId, &MessageText)> = group
        .iter()
        .filter_map(|op| match op {
            Op::User { session, text, .. } => Some((session, text)),
            _ => None,
        })
        .collect();
    let ids = insert_messages(
        executor,
        messages
            .iter()
            .map(|(session, text)| (*session, Sender::User, *text)),
        now,
    )
    .await?;
    let second = now.timestamp();
    let stale: HashSet<&str> = messages
        .iter()
        .map(|(session, _)| session.as_str())
        .filter(|session| facts.get(*session).is_none_or(|f| f.active_second < second))
        .collect();
    if !stale.is_empty() {
        let touch = chat_session::Entity::update_many()
            .col_expr(chat_session::Column::LastActive, Expr::value(now))
            .filter(chat_session::Column::SessionId.is_in(stale.iter().copied()))
            .build(executor.backend());
        executor.execute(touch).await?;
        for session in stale {
            if let Some(facts) = facts.get_mut(session) {
                facts.active_second = second;
            }
        }
    }

    let mut ids = ids.into_iter();
    let mut waiting_for_ai = HashSet::new();
    let mut outputs = Vec::with_capacity(group.len());
    for op in group {
        match op {
            Op::User {
                session, ai_wanted, ..
            } => {
                let id = ids
                    .next()
                    .ok_or_else(|| DbErr::Custom("fewer ids than messages".to_owned()))?;
                let handed_off = facts.get(session.as_str()).is_some_and(|f| f.handed_off);
                let ai_pending = *ai_wanted && !handed_off;
                if ai_pending {
                    waiting_for_ai.insert(session.as_str());
                }
                outputs.push(Output::User(UserRow {
                    id,
                    at: now,
                    handed_off,
                    ai_pending,
                }));
            }
            _ => outputs.push(Output::Ensured),
        }
    }
    if !waiting_for_ai.is_empty() {
        let mark = chat_session::Entity::update_many()
            .col_expr(
                chat_session::Column::AiReplyPendingAt,
                Expr::value(Some(now)),
            )
            .col_expr(chat_session::Column::AiReplyNode, Expr::value(cache.node()))
            .filter(chat_session::Column::SessionId.is_in(waiting_for_ai))
            .build(executor.backend());
        executor.execute(mark).await?;
    }
    Ok(outputs)
}

/// Creates the sessions that are new and reads the hand-off flag of the others.
async fn learn_sessions<E: TxnExecutor>(
    executor: &mut E,
    sessions: &[(&SessionId, &Visitor)],
    now: DateTime<Utc>,
    facts: &mut Facts,
) -> Result<(), DbErr> {
    let mut insert = Query::insert();
    insert.into_table(chat_session::Entity).columns([
        chat_session::Column::SessionId,
        chat_session::Column::IpAddress,
        chat_session::Column::UserAgent,
        chat_session::Column::CreatedAt,
        chat_session::Column::LastActive,
        chat_session::Column::HandedOffToAdmin,
    ]);
    for (session, visitor) in sessions {
        insert.values_panic([
            Expr::value(session.as_str()),
            Expr::value(visitor.ip_address.clone()),
            Expr::value(visitor.user_agent.clone()),
            Expr::value(now),
            Expr::value(now),
            Expr::value(false),
        ]);
    }
    insert
        .on_conflict(
            OnConflict::column(chat_session::Column::SessionId)
                .do_nothing()
                .to_owned(),
        )
        .returning_col(chat_session::Column::SessionId);
    let created: HashSet<String> = executor
        .query(executor.backend().build(&insert))
        .await?
        .into_iter()
        .map(|mut row| row.swap_remove(0).text())
        .collect::<Result<_, _>>()?;
    for session in &created {
        facts.insert(
            session.as_str().into(),
            SessionFacts {
                handed_off: false,
                active_second: now.timestamp(),
            },
        );
    }
    let existing: Vec<&str> = sessions
        .iter()
        .map(|(session, _)| session.as_str())
        .filter(|session| !created.contains(*session))
        .collect();
    if !existing.is_empty() {
        let select = chat_session::Entity::find()
            .select_only()
            .column(chat_session::Column::SessionId)
            .column(chat_session::Column::HandedOffToAdmin)
            .filter(chat_session::Column::SessionId.is_in(existing))
            .build(executor.backend());
        for row in executor.query(select).await? {
            let mut row = row.into_iter();
            let (Some(session), Some(flag)) = (row.next(), row.next()) else {
                return Err(DbErr::Custom(
                    "a session row without its columns".to_owned(),
                ));
            };
            let (session, handed_off) = (session.text()?, flag.flag()?);
            facts.insert(
                session.into(),
                SessionFacts {
                    handed_off,
                    active_second: 0,
                },
            );
        }
    }
    Ok(())
}

/// Inserts the messages; their ids, in the order given.
async fn insert_messages<'a, E: TxnExecutor>(
    executor: &mut E,
    messages: impl Iterator<Item = (&'a SessionId, Sender, &'a MessageText)>,
    now: DateTime<Utc>,
) -> Result<Vec<i32>, DbErr> {
    use chat_message::Column;
    let values = messages
        .flat_map(|(session, sender, text)| {
            [
                Param::Text(session.as_str()),
                Param::Text(text.as_str()),
                Param::Text(sender.as_str()),
                Param::Time(now),
                Param::Bool(false),
            ]
        })
        .collect();
    let insert = RowInsert {
        table: chat_message::Entity.into_iden(),
        columns: [
            Column::SessionId,
            Column::Message,
            Column::SenderType,
            Column::Timestamp,
            Column::IsRead,
        ]
        .map(IntoIden::into_iden)
        .into(),
        id: Column::Id.into_iden(),
        values,
    };
    executor
        .insert_rows(insert)
        .await?
        .into_iter()
        .map(|id| {
            i32::try_from(id).map_err(|_| DbErr::Custom(format!("message id {id} overflows")))
        })
        .collect()
}

fn view(
    id: i32,
    session: &SessionId,
    sender: Sender,
    text: &MessageText,
    now: DateTime<Utc>,
) -> MessageView {
    MessageView {
        id,
        session_id: session.as_str().to_owned(),
        message: text.as_str().to_owned(),
        sender_type: sender.as_str().to_owned(),
        timestamp: now,
        is_read: false,
    }
}

/// Inserts one message of the server's side and returns it.
async fn insert_one<E: TxnExecutor>(
    executor: &mut E,
    session: &SessionId,
    sender: Sender,
    text: &MessageText,
    now: DateTime<Utc>,
) -> Result<MessageView, DbErr> {
    let ids = insert_messages(executor, std::iter::once((session, sender, text)), now).await?;
    Ok(view(ids[0], session, sender, text, now))
}

/// The update of a session's row, when `only_if_handed_off` holds.
fn session_update(
    session: &SessionId,
    set: &[(chat_session::Column, Expr)],
    only_if_handed_off: Option<bool>,
) -> sea_orm::UpdateMany<chat_session::Entity> {
    let mut update = chat_session::Entity::update_many()
        .filter(chat_session::Column::SessionId.eq(session.as_str()));
    for (column, value) in set {
        update = update.col_expr(*column, value.clone());
    }
    if let Some(handed_off) = only_if_handed_off {
        update = update.filter(chat_session::Column::HandedOffToAdmin.eq(handed_off));
    }
    update
}

/// Updates the session's row; how many rows matched (0: no such session, or
/// the condition did not hold).
async fn update_session<E: TxnExecutor>(
    executor: &mut E,
    session: &SessionId,
    set: &[(chat_session::Column, Expr)],
    only_if_handed_off: Option<bool>,
) -> Result<u64, DbErr> {
    let update = session_update(session, set, only_if_handed_off).build(executor.backend());
    executor.execute(update).await
}

/// Updates the session's row before a reply is stored, and reads back the
/// visitor sockets the reply goes to (`None`: no row matched). The update
/// locks the row until the commit, so a socket joining meanwhile waits, and
/// is then sent the reply in its catch-up instead (see [`VisitorSockets`]).
async fn update_session_for_reply<E: TxnExecutor>(
    executor: &mut E,
    session: &SessionId,
    set: &[(chat_session::Column, Expr)],
    only_if_handed_off: Option<bool>,
) -> Result<Option<VisitorSockets>, DbErr> {
    let mut update = session_update(session, set, only_if_handed_off);
    QueryTrait::query(&mut update).returning_col(chat_session::Column::VisitorSockets);
    let rows = executor.query(update.build(executor.backend())).await?;
    Ok(rows.into_iter().next().map(|mut row| match row.pop() {
        Some(Cell::Text(ids)) => VisitorSockets::parse(Some(&ids)),
        _ => VisitorSockets::default(),
    }))
}

/// Records a session's hand-off flag in the transaction's facts; `touched`:
/// its `last_active` was written in that second.
fn note(
    facts: &mut Facts,
    cache: &HotState,
    session: &SessionId,
    handed_off: bool,
    touched: Option<i64>,
) {
    let known = facts
        .get(session.as_str())
        .copied()
        .or_else(|| cache.session(session.as_str()));
    let active_second = touched.unwrap_or_else(|| known.map_or(0, |f| f.active_second));
    facts.insert(
        session.shared(),
        SessionFacts {
            handed_off,
            active_second,
        },
    );
}

async fn apply_one<E: TxnExecutor>(
    executor: &mut E,
    cache: &HotState,
    op: &Op,
    now: DateTime<Utc>,
    facts: &mut Facts,
) -> Result<Output, DbErr> {
    use chat_session::Column::{AiReplyPendingAt, HandedOffToAdmin, LastActive};
    let no_time: Option<DateTime<Utc>> = None;
    match op {
        Op::Ensure { .. } | Op::User { .. } => {
            let mut outputs =
                apply_visitor_group(executor, cache, std::slice::from_ref(op), now, facts).await?;
            outputs
                .pop()
                .ok_or_else(|| DbErr::Custom("no output".to_owned()))
        }
        Op::Admin { session, text } => {
            let set = [
                (HandedOffToAdmin, Expr::value(true)),
                (LastActive, Expr::value(now)),
            ];
            let Some(to) = update_session_for_reply(executor, session, &set, None).await? else {
                return Ok(Output::Missing);
            };
            note(facts, cache, session, true, Some(now.timestamp()));
            let row = insert_one(executor, session, Sender::Admin, text, now).await?;
            Ok(Output::Reply(Reply { row, to }))
        }
        Op::Ai { session, text } => {
            let set = [
                (LastActive, Expr::value(now)),
                (AiReplyPendingAt, Expr::value(no_time)),
            ];
            let Some(to) = update_session_for_reply(executor, session, &set, Some(false)).await?
            else {
                // A human took over meanwhile (maybe on another node): the
                // answer is dropped, and this node knows it from now on.
                if update_session(
                    executor,
                    session,
                    &[(AiReplyPendingAt, Expr::value(no_time))],
                    None,
                )
                .await?
                    > 0
                {
                    note(facts, cache, session, true, None);
                }
                return Ok(Output::MaybeReply(None));
            };
            note(facts, cache, session, false, Some(now.timestamp()));
            let row = insert_one(executor, session, Sender::Ai, text, now).await?;
            Ok(Output::MaybeReply(Some(Reply { row, to })))
        }
        Op::HandOff { session, notice } => {
            let hand_off = [(HandedOffToAdmin, Expr::value(true))];
            let (first, to) =
                match update_session_for_reply(executor, session, &hand_off, Some(false)).await? {
                    Some(to) => (true, to),
                    None => {
                        match update_session_for_reply(executor, session, &hand_off, None).await? {
                            Some(to) => (false, to),
                            None => return Ok(Output::Missing),
                        }
                    }
                };
            note(facts, cache, session, true, None);
            let notice = match (first, notice) {
                (true, Some(text)) => Some(Reply {
                    row: insert_one(executor, session, Sender::Ai, text, now).await?,
                    to,
                }),
                _ => None,
            };
            Ok(Output::HandedOff(HandedOff { first, notice }))
        }
        Op::SetHandedOff {
            session,
            handed_off,
        } => {
            if update_session(
                executor,
                session,
                &[(HandedOffToAdmin, Expr::value(*handed_off))],
                None,
            )
            .await?
                == 0
            {
                return Ok(Output::Missing);
            }
            note(facts, cache, session, *handed_off, None);
            Ok(Output::Done)
        }
        Op::ClearAiPending { session } => {
            update_session(
                executor,
                session,
                &[(AiReplyPendingAt, Expr::value(no_time))],
                None,
            )
            .await?;
            Ok(Output::Done)
        }
    }
}
