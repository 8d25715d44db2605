//! Daily token quotas of the AI routes: 50,000 tokens a user a UTC day by
//! default (`DAILY_TOKEN_QUOTA`), reset at 00:00 UTC.
//!
//! The check, the model call and the addition of the tokens it used run under
//! a per-user lock, so parallel requests near the limit overshoot it by at
//! most one request's worth. The lock is per process: with several nodes, by
//! at most one request a node.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use dashmap::DashMap;
use entity::quota_usage;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::{
    error::{AppError, AppResult},
    state::AppState,
    timefmt::iso8601,
};

/// One lock per user with AI requests in this process.
#[derive(Default)]
pub struct QuotaLocks(DashMap<i32, Arc<Mutex<()>>>);

#[derive(Debug, Clone, Serialize)]
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

async fn add_used(db: &DatabaseConnection, user_id: i32, tokens: i64) -> AppResult<()> {
    let row = quota_usage::ActiveModel {
        user_id: Set(user_id),
        day: Set(today()),
        tokens_used: Set(tokens),
    };
    quota_usage::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([quota_usage::Column::UserId, quota_usage::Column::Day])
                .value(
                    quota_usage::Column::TokensUsed,
                    Expr::col((quota_usage::Entity, quota_usage::Column::TokensUsed)).add(tokens),
                )
                .to_owned(),
        )
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
    if used_today(&state.db, user_id).await? >= state.config.daily_token_quota {
        return Err(AppError::QuotaExceeded {
            reset_at: next_reset(),
        });
    }
    let (result, tokens) = call.await?;
    add_used(&state.db, user_id, Ord::max(tokens, 0)).await?;
    Ok((result, view(state, user_id).await?))
}
