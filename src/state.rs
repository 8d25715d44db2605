//! [`AppState`]: what every handler and service shares, built once at start-up.

use std::{ops::Deref, sync::Arc, time::Instant};

use sea_orm::DatabaseConnection;
use tokio_util::task::TaskTracker;

use governor::DefaultKeyedRateLimiter;

use crate::{
    ai::Providers, assistant::ActiveStreams, auth::TokenKeys, coach::QuotaLocks, config::Config,
    livechat::SessionLocks,
};

/// Cheap to clone: one shared allocation.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: Config,
    pub db: DatabaseConnection,
    pub tokens: TokenKeys,
    pub ai: Providers,
    /// Background work that must finish (or persist what it has) before the
    /// process exits: AI replies and streams. Shutdown waits on it.
    pub tasks: TaskTracker,
    pub started_at: Instant,
    /// Orders each live-chat session's writes and deliveries.
    pub livechat: SessionLocks,
    /// Assistant generations in progress, so they can be stopped.
    pub assistant: ActiveStreams,
    /// Serialises each user's quota-counted AI calls.
    pub quota_locks: QuotaLocks,
    /// Requests to `/api` per client IP.
    pub api_limiter: DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// AI requests per user.
    pub ai_limiter: DefaultKeyedRateLimiter<i32>,
    /// Outgoing HTTP (ChatKit).
    pub http: reqwest::Client,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
