//! Daily token quotas of the AI routes: 50,000 tokens a user a UTC day by
//! default (`DAILY_TOKEN_QUOTA`), reset at 00:00 UTC.
//!
//! A user's AI calls take turns, on every node: the check, the model call and
//! the booking of the tokens it used run while the caller holds the user's
//! lease in the database (`quota_usage.busy_until_ms`, taken by one
//! conditional upsert). So parallel requests near the limit, on any number of
//! nodes, overshoot it by at most one request's worth. Callers on one node
//! also queue on a lock of their own, so only one of them polls the lease.
//! A node that dies holding a lease blocks that user until it expires.

use std::{sync::Arc, time::Duration as StdDuration};

use chrono::{DateTime, Duration, NaiveTime, Utc};
use dashmap::DashMap;
use entity::quota_usage;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait, OnConflict, Query},
};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::{
    error::{AppError, AppResult},
    state::AppState,
    telemetry::metrics,
    timefmt::iso8601,
};

/// How often a caller looks whether another node's call for the user ended.
const LEASE_POLL: StdDuration = StdDuration::from_millis(50);

/// One lock per user with AI requests in this process.
#[derive(Default)]
pub struct QuotaLocks(DashMap<i32, Arc<Mutex<()>>>);

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaView {
    pub tokens_used: i64,
    pub quota: i64,
    pub remaining: i64,
    #[serde(serialize_with = "iso8601")]
    pub reset_at: DateTime<Utc>,
}

fn today() -> String {
    Utc::now().format("%Y-%m-%d").to_string()
}

fn next_reset() -> DateTime<Utc> {
    (Utc::now().date_naive() + Duration::days(1))
        .and_time(NaiveTime::MIN)
        .and_utc()
}

async fn used_today(db: &DatabaseConnection, user_id: i32) -> AppResult<i64> {
    Ok(quota_usage::Entity::find()
        .filter(quota_usage::Column::UserId.eq(user_id))
        .filter(quota_usage::Column::Day.eq(today()))
        .one(db)
        .await?
        .map_or(0, |row| row.tokens_used))
}

/// The user's lease for `day`, held until `lease` from now; the tokens used so
/// far, or `None` while another call holds it.
async fn take_lease(
    db: &DatabaseConnection,
    user_id: i32,
    day: &str,
    lease: StdDuration,
) -> AppResult<Option<i64>> {
    use quota_usage::Column::{BusyUntilMs, Day, TokensUsed, UserId};
    let now_ms = Utc::now().timestamp_millis();
    let until_ms = now_ms.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
    let busy_until = || Expr::col((quota_usage::Entity, BusyUntilMs));
    let mut insert = Query::insert();
    insert
        .into_table(quota_usage::Entity)
        .columns([UserId, Day, TokensUsed, BusyUntilMs])
        .values([user_id.into(), day.into(), 0i64.into(), until_ms.into()])
        .map_err(|err| AppError::Internal(err.to_string()))?
        .on_conflict(
            OnConflict::columns([UserId, Day])
                .update_column(BusyUntilMs)
                .action_and_where(busy_until().is_null().or(busy_until().lt(now_ms)))
                .to_owned(),
        )
        .returning_col(TokensUsed);
    match db.query_one(&insert).await? {
        Some(row) => Ok(Some(row.try_get::<i64>("", "tokens_used")?)),
        None => Ok(None),
    }
}

/// A lease this node holds. Dropped without [`HeldLease::end`] (the request
/// was cancelled mid-call), it is handed back by a task of its own, so the
/// user is not locked out until it expires.
struct HeldLease {
    db: Option<DatabaseConnection>,
    user_id: i32,
    day: String,
}

impl HeldLease {
    async fn end(&mut self, tokens: i64) -> AppResult<()> {
        match self.db.take() {
            Some(db) => end_lease(&db, self.user_id, &self.day, tokens).await,
            None => Ok(()),
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        if let Some(db) = self.db.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (user_id, day) = (self.user_id, std::mem::take(&mut self.day));
            runtime.spawn(async move {
                if let Err(err) = end_lease(&db, user_id, &day, 0).await {
                    tracing::warn!(%err, user_id, "could not hand back a cancelled AI call's quota lease");
                }
            });
        }
    }
}

/// Books the call's tokens and hands the lease back.
async fn end_lease(db: &DatabaseConnection, user_id: i32, day: &str, tokens: i64) -> AppResult<()> {
    use quota_usage::Column::{BusyUntilMs, Day, TokensUsed, UserId};
    quota_usage::Entity::update_many()
        .col_expr(
            TokensUsed,
            Expr::col((quota_usage::Entity, TokensUsed)).add(tokens),
        )
        .col_expr(BusyUntilMs, Expr::value(Option::<i64>::None))
        .filter(UserId.eq(user_id))
        .filter(Day.eq(day))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn view(state: &AppState, user_id: i32) -> AppResult<QuotaView> {
    let used = used_today(&state.db, user_id).await?;
    let quota = state.config.daily_token_quota;
    Ok(QuotaView {
        tokens_used: used,
        quota,
        remaining: Ord::max(quota - used, 0),
        reset_at: next_reset(),
    })
}

/// Runs `call` (which returns its result and the tokens it used) within the
/// user's quota and books the tokens; 429 with `resetAt` once it is spent.
pub async fn within_quota<T, F>(
    state: &AppState,
    user_id: i32,
    call: F,
) -> AppResult<(T, QuotaView)>
where
    F: Future<Output = AppResult<(T, i64)>>,
{
    let lock = state
        .flow::<QuotaLocks>()
        .0
        .entry(user_id)
        .or_default()
        .clone();
    let _turn = lock.lock().await;
    let config = &state.config;
    let attempts = u32::try_from(config.ai_max_retries)
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    let lease = config.ai_timeout().saturating_mul(attempts) + StdDuration::from_secs(10);
    let day = today();
    let waited_since = tokio::time::Instant::now();
    let used = loop {
        if let Some(used) = take_lease(&state.db, user_id, &day, lease).await? {
            break used;
        }
        if waited_since.elapsed() > lease {
            return Err(AppError::RateLimited {
                message: "Another AI request of this account is still running".to_owned(),
                retry_after: LEASE_POLL,
            });
        }
        tokio::time::sleep(LEASE_POLL).await;
    };
    let mut held = HeldLease {
        db: Some(state.db.clone()),
        user_id,
        day,
    };
    let outcome = if used >= config.daily_token_quota {
        metrics::refused("quota");
        Err(AppError::QuotaExceeded {
            reset_at: next_reset(),
            code: "RATE_LIMITED",
        })
    } else {
        call.await
    };
    let tokens = outcome
        .as_ref()
        .map_or(0, |(_, tokens)| Ord::max(*tokens, 0));
    held.end(tokens).await?;
    let (result, _) = outcome?;
    Ok((result, view(state, user_id).await?))
}
