//! What one client address may create, and how much of the server's work it
//! may have in progress, whatever the flow:
//!
//! - [`CreationBudget`]: new assistant conversations, live-chat sessions and
//!   resume sessions, each `CREATE_PER_MINUTE_PER_IP` a minute per address;
//!   past it the flow answers `RATE_LIMITED` and creates nothing;
//! - [`ApiConcurrency`]: `API_CONCURRENCY_PER_IP` requests of one address run
//!   at once; the rest wait their turn (at most `DB_ACQUIRE_TIMEOUT_MS`, then
//!   `SERVER_BUSY`), so one address cannot take every database connection of
//!   the pool from everybody else.

use std::{net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

use dashmap::DashMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{config::Config, error::AppError, telemetry::metrics};

/// What a client may create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Creation {
    Conversation,
    LivechatSession,
    ResumeSession,
}

impl Creation {
    fn refusal(self) -> &'static str {
        match self {
            Creation::Conversation => "Too many new conversations from this address; wait a minute",
            Creation::LivechatSession => "Too many new chats from this address; wait a minute",
            Creation::ResumeSession => {
                "Too many new resume sessions from this address; wait a minute"
            }
        }
    }
}

pub struct CreationBudget(DefaultKeyedRateLimiter<(Creation, IpAddr)>);

impl CreationBudget {
    pub fn new(config: &Config) -> Self {
        let per_minute =
            NonZeroU32::new(config.create_per_minute_per_ip).unwrap_or(NonZeroU32::MIN);
        Self(RateLimiter::keyed(Quota::per_minute(per_minute)))
    }

    /// Spends one creation of `what` by `ip`.
    pub fn spend(&self, what: Creation, ip: IpAddr) -> Result<(), AppError> {
        self.0.check_key(&(what, ip)).map_err(|_| {
            metrics::refused("create");
            AppError::RateLimited {
                message: what.refusal().to_owned(),
                retry_after: Duration::ZERO,
            }
        })
    }

    pub fn retain_recent(&self) {
        self.0.retain_recent();
    }
}

pub struct ApiConcurrency {
    per_address: usize,
    wait: Duration,
    running: DashMap<IpAddr, Arc<Semaphore>>,
}

impl ApiConcurrency {
    pub fn new(config: &Config) -> Self {
        Self {
            per_address: config.api_concurrency_per_ip.max(1),
            wait: Duration::from_millis(config.db_acquire_timeout_ms.max(1)),
            running: DashMap::new(),
        }
    }

    /// Waits for one of `ip`'s turns; hold the permit while the request runs.
    pub async fn turn(&self, ip: IpAddr) -> Result<OwnedSemaphorePermit, AppError> {
        let turns = self
            .running
            .entry(ip)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_address)))
            .clone();
        match tokio::time::timeout(self.wait, turns.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                metrics::refused("api_concurrency");
                Err(AppError::Unavailable {
                    code: "SERVER_BUSY",
                    message: "Too many requests from this address at once; try again".to_owned(),
                })
            }
        }
    }

    /// Forgets addresses with nothing running.
    pub fn retain_recent(&self) {
        let idle = self.per_address;
        self.running
            .retain(|_, turns| turns.available_permits() < idle || Arc::strong_count(turns) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_address_waits_its_turn_others_do_not() {
        let config = Config::from_args(["--api-concurrency-per-ip", "2"]).unwrap();
        let limits = ApiConcurrency::new(&config);
        let busy: IpAddr = "10.0.0.1".parse().unwrap();
        let first = limits.turn(busy).await.unwrap();
        let _second = limits.turn(busy).await.unwrap();
        let waiting = limits.turn(busy);
        tokio::pin!(waiting);
        assert!(
            futures::poll!(&mut waiting).is_pending(),
            "the third waits for a turn"
        );
        let other = limits.turn("10.0.0.2".parse().unwrap()).await;
        assert!(other.is_ok(), "another address is not held up");
        drop(first);
        assert!(waiting.await.is_ok(), "and gets the turn given back");
    }

    #[test]
    fn creations_are_counted_per_kind_and_address() {
        let config = Config::from_args(["--create-per-minute-per-ip", "2"]).unwrap();
        let budget = CreationBudget::new(&config);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(budget.spend(Creation::Conversation, ip).is_ok());
        assert!(budget.spend(Creation::Conversation, ip).is_ok());
        assert!(budget.spend(Creation::Conversation, ip).is_err());
        assert!(budget.spend(Creation::LivechatSession, ip).is_ok());
        assert!(
            budget
                .spend(Creation::Conversation, "10.0.0.2".parse().unwrap())
                .is_ok()
        );
    }
}
