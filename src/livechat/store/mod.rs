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
//!
//! Files: this one holds the handle and the operations (each carries the
//! typed answer its caller waits for, see [`Job`]); [`batch`] the loop that
//! drains the queue and commits; [`ops`] the statements of each operation.

mod batch;
mod ops;

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::{mpsc, oneshot};

use super::{
    cache::HotState,
    domain::{MessageText, MessageView, Reply, Sender, SessionId, Visitor},
};
use crate::{
    config::Config,
    error::{AppError, AppResult},
    store::executor::{PooledExecutor, SqliteExecutor},
};
use std::sync::Arc;

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
    ops: mpsc::Sender<Op>,
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

/// What the writer answers for a visitor's message; the caller, which keeps
/// the session and text, makes the row of it (see [`Writer::user_message`]).
#[derive(Debug)]
struct UserRow {
    id: i32,
    at: DateTime<Utc>,
    handed_off: bool,
    ai_pending: bool,
}

/// The caller of one operation, waiting for its outcome of type `T`. The
/// transaction sets the outcome ([`Job::set`]); it is sent once the
/// transaction committed ([`Job::finish`]), so nothing is answered before it
/// is stored.
struct Job<T> {
    caller: oneshot::Sender<AppResult<T>>,
    outcome: Option<AppResult<T>>,
}

impl<T> Job<T> {
    fn new() -> (Self, oneshot::Receiver<AppResult<T>>) {
        let (caller, answer) = oneshot::channel();
        let job = Self {
            caller,
            outcome: None,
        };
        (job, answer)
    }

    fn set(&mut self, outcome: AppResult<T>) {
        self.outcome = Some(outcome);
    }

    /// Answers the caller: the outcome when its transaction committed
    /// (`failure` is `None`), else the failure.
    fn finish(self, failure: Option<&DbErr>) {
        let answer = match (failure, self.outcome) {
            (Some(err), _) => Err(err.clone().into()),
            (None, Some(outcome)) => outcome,
            (None, None) => Err(AppError::Internal(
                "the live-chat writer committed an operation it did not apply".to_owned(),
            )),
        };
        let _ = self.caller.send(answer);
    }
}

/// One write, with its caller.
enum Op {
    Ensure {
        session: SessionId,
        visitor: Visitor,
        job: Job<()>,
    },
    User {
        session: SessionId,
        visitor: Visitor,
        text: MessageText,
        ai_wanted: bool,
        job: Job<UserRow>,
    },
    Admin {
        session: SessionId,
        text: MessageText,
        job: Job<Reply>,
    },
    Ai {
        session: SessionId,
        text: MessageText,
        job: Job<Option<Reply>>,
    },
    HandOff {
        session: SessionId,
        notice: Option<MessageText>,
        job: Job<HandedOff>,
    },
    SetHandedOff {
        session: SessionId,
        handed_off: bool,
        job: Job<()>,
    },
    ClearAiPending {
        session: SessionId,
        job: Job<()>,
    },
}

impl Op {
    /// Visitor operations are merged into multi-row statements.
    fn is_visitor(&self) -> bool {
        matches!(self, Op::Ensure { .. } | Op::User { .. })
    }

    fn finish(self, failure: Option<&DbErr>) {
        match self {
            Op::Ensure { job, .. }
            | Op::SetHandedOff { job, .. }
            | Op::ClearAiPending { job, .. } => job.finish(failure),
            Op::User { job, .. } => job.finish(failure),
            Op::Admin { job, .. } => job.finish(failure),
            Op::Ai { job, .. } => job.finish(failure),
            Op::HandOff { job, .. } => job.finish(failure),
        }
    }
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
                    .spawn(move || batch::run_on_thread(executor, cache, queue, limits, runtime))
                    .expect("the live-chat writer thread starts");
            }
            other => {
                if let Some(Err(err)) = other {
                    tracing::warn!(%err, "the live-chat writer uses the pool: its own SQLite connection failed");
                }
                tokio::spawn(batch::run(PooledExecutor::new(db), cache, queue, limits));
            }
        }
        Self { ops }
    }

    /// Queues `op` and waits for `answer`, its outcome once committed.
    async fn submit<T>(&self, op: Op, answer: oneshot::Receiver<AppResult<T>>) -> AppResult<T> {
        let stopped = || AppError::Internal("the live-chat writer stopped".to_owned());
        self.ops.send(op).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Creates the session when it is new.
    pub async fn ensure_session(&self, session: &SessionId, visitor: Visitor) -> AppResult<()> {
        let (job, answer) = Job::new();
        let session = session.clone();
        self.submit(
            Op::Ensure {
                session,
                visitor,
                job,
            },
            answer,
        )
        .await
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
        let (job, answer) = Job::new();
        let op = Op::User {
            session: session.clone(),
            visitor,
            text: text.clone(),
            ai_wanted,
            job,
        };
        let stored = self.submit(op, answer).await?;
        Ok(UserStored {
            row: ops::view(stored.id, session, Sender::User, &text, stored.at),
            handed_off: stored.handed_off,
            ai_pending: stored.ai_pending,
        })
    }

    /// An admin's reply: the session is handed off and the reply stored, at once.
    pub async fn admin_reply(&self, session: &SessionId, text: MessageText) -> AppResult<Reply> {
        let (job, answer) = Job::new();
        let session = session.clone();
        self.submit(Op::Admin { session, text, job }, answer).await
    }

    /// Stores the AI's answer unless a human has the session: the check and the
    /// insert are one transaction, so no AI answer lands after an admin's
    /// reply, whichever node stored that.
    pub async fn ai_reply(
        &self,
        session: &SessionId,
        text: MessageText,
    ) -> AppResult<Option<Reply>> {
        let (job, answer) = Job::new();
        let session = session.clone();
        self.submit(Op::Ai { session, text, job }, answer).await
    }

    /// Hands the session to a human; the first time, stores `notice` as an AI message.
    pub async fn hand_off(
        &self,
        session: &SessionId,
        notice: Option<MessageText>,
    ) -> AppResult<HandedOff> {
        let (job, answer) = Job::new();
        let session = session.clone();
        self.submit(
            Op::HandOff {
                session,
                notice,
                job,
            },
            answer,
        )
        .await
    }

    /// Sets who answers the session (an admin releasing it sets `false`).
    pub async fn set_handed_off(&self, session: &SessionId, handed_off: bool) -> AppResult<()> {
        let (job, answer) = Job::new();
        let op = Op::SetHandedOff {
            session: session.clone(),
            handed_off,
            job,
        };
        self.submit(op, answer).await
    }

    /// The AI will not answer after all (it failed).
    pub async fn clear_ai_pending(&self, session: &SessionId) -> AppResult<()> {
        let (job, answer) = Job::new();
        let session = session.clone();
        self.submit(Op::ClearAiPending { session, job }, answer)
            .await
    }
}
