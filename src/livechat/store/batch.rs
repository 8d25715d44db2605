//! The writer's loop: waits for operations, drains the queue into one
//! transaction, commits, then answers each caller and writes the hot state.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};
use sea_orm::DbErr;
use tokio::sync::mpsc;

use super::{BatchLimits, Op, ops};
use crate::{
    error::database_unreachable,
    livechat::cache::{HotState, SessionFacts},
    store::executor::{SqliteExecutor, TxnExecutor},
    telemetry::metrics,
};

/// The writer as a task: waits for work, drains the queue, commits.
pub(super) async fn run<E: TxnExecutor>(
    mut executor: E,
    cache: Arc<HotState>,
    mut queue: mpsc::Receiver<Op>,
    limits: BatchLimits,
) {
    let mut batch = Vec::with_capacity(limits.max_rows);
    while queue.recv_many(&mut batch, limits.max_rows).await > 0 {
        fill(&mut queue, &mut batch, limits).await;
        commit(&mut executor, &cache, std::mem::take(&mut batch)).await;
    }
}

/// The writer as a thread: the same loop, with the transaction run in place.
pub(super) fn run_on_thread(
    mut executor: SqliteExecutor,
    cache: Arc<HotState>,
    mut queue: mpsc::Receiver<Op>,
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
async fn fill(queue: &mut mpsc::Receiver<Op>, batch: &mut Vec<Op>, limits: BatchLimits) {
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
async fn commit<E: TxnExecutor>(executor: &mut E, cache: &HotState, mut batch: Vec<Op>) {
    let generation = cache.generation();
    let started = std::time::Instant::now();
    match apply(executor, cache, &mut batch).await {
        Ok(facts) => {
            metrics::livechat_commit(batch.len(), started.elapsed());
            cache.remember_sessions(generation, facts);
            for op in batch {
                op.finish(None);
            }
        }
        Err(err) if batch.len() > 1 && !database_unreachable(&err) => {
            tracing::warn!(%err, rows = batch.len(), "a live-chat batch failed; retrying it row by row");
            for mut op in batch {
                let generation = cache.generation();
                match apply(executor, cache, std::slice::from_mut(&mut op)).await {
                    Ok(facts) => {
                        cache.remember_sessions(generation, facts);
                        op.finish(None);
                    }
                    Err(err) => op.finish(Some(&err)),
                }
            }
        }
        Err(err) => {
            for op in batch {
                op.finish(Some(&err));
            }
        }
    }
}

/// What one transaction learned about sessions; goes to the cache after commit.
pub(super) type Facts = HashMap<Arc<str>, SessionFacts>;

/// Applies `ops` in order in one transaction, setting each one's outcome.
async fn apply<E: TxnExecutor>(
    executor: &mut E,
    cache: &HotState,
    ops: &mut [Op],
) -> Result<Facts, DbErr> {
    let now = Utc::now();
    executor.begin().await?;
    let mut facts = Facts::new();
    match apply_in_transaction(executor, cache, ops, now, &mut facts).await {
        Ok(()) => {
            executor.commit().await?;
            Ok(facts)
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
    ops: &mut [Op],
    now: DateTime<Utc>,
    facts: &mut Facts,
) -> Result<(), DbErr> {
    let mut rest = ops;
    while !rest.is_empty() {
        let visitors = rest.iter().take_while(|op| op.is_visitor()).count();
        let taken = visitors.max(1);
        let (head, tail) = rest.split_at_mut(taken);
        if visitors > 0 {
            ops::apply_visitor_group(executor, cache, head, now, facts).await?;
        } else {
            ops::apply_one(executor, cache, &mut head[0], now, facts).await?;
        }
        rest = tail;
    }
    Ok(())
}
