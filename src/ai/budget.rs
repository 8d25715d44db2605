//! What AI calls may cost. Every call names who pays ([`Payer`]) and is
//! admitted by the [`AiBudget`] before it reaches a provider:
//!
//! - all calls share `AI_MAX_CONCURRENT` slots (the provider bill, and the
//!   connections to it); past it a call is refused at once;
//! - anonymous callers are charged to each of their keys (the client address,
//!   the socket, the live-chat session, the client key): requests per minute
//!   (`AI_ANON_REQUESTS_PER_MINUTE`, `…_PER_IP` for an address) and tokens per
//!   UTC day (`AI_ANON_TOKENS_PER_DAY`, `…_PER_IP`), and all of them together
//!   `AI_ANON_TOKENS_PER_DAY_TOTAL`. A new socket or session does not start a
//!   new budget for its address;
//! - signed-in users answer to their own quota (the coach routes), the server's
//!   own work (answering what a stopped node left) to nothing but the slots.
//!
//! Refusals are `RATE_LIMITED` (a rate, or the slots) and `QUOTA_EXCEEDED` (a
//! day's tokens). Tokens are charged when a call ends: the provider's reported
//! usage, or an estimate of four characters a token. The counts live in this
//! process: with several nodes each keeps its own.

use std::{
    net::IpAddr,
    num::NonZeroU32,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use chrono::{NaiveDate, Utc};
use dashmap::DashMap;
use futures::{Stream, StreamExt};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{AiError, ChatModel, ChatRequest, Completion, DeltaStream, StreamItem, TokenUsage};
use crate::{config::Config, error::AppError, telemetry::metrics};

/// Who pays for an AI call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payer {
    /// A signed-in user: governed by the user's own quota, where a route has one.
    User(i32),
    /// Work the server does on its own.
    Server,
    /// Anyone else, charged to each of these keys.
    Anonymous(Vec<BudgetKey>),
}

/// One budget an anonymous caller spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BudgetKey {
    Address(IpAddr),
    /// A socket's id.
    Socket(String),
    /// A live-chat session's id.
    LivechatSession(String),
    /// An assistant client key (its hash).
    ClientKey(String),
}

pub struct AiBudget(Arc<Inner>);

struct Inner {
    slots: Arc<Semaphore>,
    per_minute: DefaultKeyedRateLimiter<BudgetKey>,
    per_minute_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    tokens_per_day: u64,
    tokens_per_day_per_ip: u64,
    tokens_per_day_total: u64,
    spent: DashMap<BudgetKey, DayTokens>,
    spent_total: Mutex<DayTokens>,
}

/// Tokens spent on one UTC day.
#[derive(Clone, Copy)]
struct DayTokens {
    day: NaiveDate,
    tokens: u64,
}

impl DayTokens {
    fn today(&self, today: NaiveDate) -> u64 {
        if self.day == today { self.tokens } else { 0 }
    }

    fn add(&mut self, today: NaiveDate, tokens: u64) {
        if self.day != today {
            *self = DayTokens {
                day: today,
                tokens: 0,
            };
        }
        self.tokens = self.tokens.saturating_add(tokens);
    }
}

fn per_minute(max: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(max).unwrap_or(NonZeroU32::MIN))
}

fn rate_limited(message: &str) -> AppError {
    AppError::RateLimited {
        message: message.to_owned(),
        retry_after: std::time::Duration::ZERO,
    }
}

fn quota_exceeded() -> AppError {
    metrics::refused("ai_anonymous_quota");
    let tomorrow = Utc::now().date_naive().succ_opt().unwrap_or(NaiveDate::MAX);
    AppError::QuotaExceeded {
        reset_at: tomorrow.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
        code: "QUOTA_EXCEEDED",
    }
}

impl AiBudget {
    pub fn new(config: &Config) -> Self {
        let today = Utc::now().date_naive();
        Self(Arc::new(Inner {
            slots: Arc::new(Semaphore::new(config.ai_max_concurrent.max(1))),
            per_minute: RateLimiter::keyed(per_minute(config.ai_anon_requests_per_minute)),
            per_minute_per_ip: RateLimiter::keyed(per_minute(
                config.ai_anon_requests_per_minute_per_ip,
            )),
            tokens_per_day: config.ai_anon_tokens_per_day,
            tokens_per_day_per_ip: config.ai_anon_tokens_per_day_per_ip,
            tokens_per_day_total: config.ai_anon_tokens_per_day_total,
            spent: DashMap::new(),
            spent_total: Mutex::new(DayTokens {
                day: today,
                tokens: 0,
            }),
        }))
    }

    /// Admits one call of `payer`, or says why not. The permit holds a slot
    /// until the call it makes ends.
    pub fn admit(&self, payer: &Payer) -> Result<AiPermit, AppError> {
        let inner = &self.0;
        let keys = match payer {
            Payer::Anonymous(keys) => {
                inner.check_anonymous(keys)?;
                keys.clone()
            }
            Payer::User(_) | Payer::Server => Vec::new(),
        };
        let slot = inner.slots.clone().try_acquire_owned().map_err(|_| {
            metrics::refused("ai_concurrency");
            rate_limited("The AI is busy; try again shortly")
        })?;
        Ok(AiPermit {
            _slot: slot,
            budget: self.0.clone(),
            keys,
        })
    }

    /// Forgets rates that are full again and days that are over.
    pub fn retain_recent(&self) {
        let today = Utc::now().date_naive();
        self.0.per_minute.retain_recent();
        self.0.per_minute_per_ip.retain_recent();
        self.0.spent.retain(|_, spent| spent.day == today);
    }
}

impl Inner {
    fn limit_of(&self, key: &BudgetKey) -> u64 {
        match key {
            BudgetKey::Address(_) => self.tokens_per_day_per_ip,
            _ => self.tokens_per_day,
        }
    }

    fn check_anonymous(&self, keys: &[BudgetKey]) -> Result<(), AppError> {
        let today = Utc::now().date_naive();
        let total = self
            .spent_total
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .today(today);
        if total >= self.tokens_per_day_total {
            return Err(quota_exceeded());
        }
        for key in keys {
            let spent = self.spent.get(key).map_or(0, |spent| spent.today(today));
            if spent >= self.limit_of(key) {
                return Err(quota_exceeded());
            }
        }
        // The narrowest budgets first: a call the socket's own budget refuses
        // must not spend its address's.
        let (addresses, narrow): (Vec<&BudgetKey>, Vec<&BudgetKey>) = keys
            .iter()
            .partition(|key| matches!(key, BudgetKey::Address(_)));
        for key in narrow.into_iter().chain(addresses) {
            let admitted = match key {
                BudgetKey::Address(ip) => self.per_minute_per_ip.check_key(ip).is_ok(),
                _ => self.per_minute.check_key(key).is_ok(),
            };
            if !admitted {
                metrics::refused("ai_anonymous_rate");
                return Err(rate_limited(
                    "Too many AI requests; wait a minute before asking again",
                ));
            }
        }
        Ok(())
    }

    fn charge(&self, keys: &[BudgetKey], tokens: u64) {
        if keys.is_empty() {
            return;
        }
        let today = Utc::now().date_naive();
        metrics::ai_anonymous_tokens(tokens);
        self.spent_total
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .add(today, tokens);
        for key in keys {
            self.spent
                .entry(key.clone())
                .or_insert(DayTokens {
                    day: today,
                    tokens: 0,
                })
                .add(today, tokens);
        }
    }
}

/// A call admitted by the budget: make it with [`AiPermit::stream`] or
/// [`AiPermit::complete`].
pub struct AiPermit {
    _slot: OwnedSemaphorePermit,
    budget: Arc<Inner>,
    keys: Vec<BudgetKey>,
}

impl AiPermit {
    /// Starts the generation; the permit lives as long as the stream, which
    /// charges what it cost when it ends or is dropped.
    pub async fn stream(
        self,
        model: &dyn ChatModel,
        request: ChatRequest,
    ) -> Result<DeltaStream, AiError> {
        let prompt = TokenUsage::estimate(&request, "").prompt_tokens;
        let inner = model.stream(request).await?;
        Ok(Box::pin(Charged {
            inner,
            permit: self,
            prompt_tokens: prompt,
            answer_chars: 0,
            reported: None,
        }))
    }

    /// The whole answer at once.
    pub async fn complete(
        self,
        model: &dyn ChatModel,
        request: ChatRequest,
    ) -> Result<Completion, AiError> {
        let stream = self.stream(model, request.clone()).await?;
        super::collect(stream, &request).await
    }
}

/// A provider stream that charges its payer when it ends.
struct Charged {
    inner: DeltaStream,
    permit: AiPermit,
    prompt_tokens: u32,
    answer_chars: usize,
    reported: Option<u32>,
}

impl Stream for Charged {
    type Item = Result<StreamItem, AiError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.inner.poll_next_unpin(cx);
        if let Poll::Ready(Some(Ok(found))) = &item {
            match found {
                StreamItem::Delta(delta) => self.answer_chars += delta.len(),
                StreamItem::Usage(usage) => self.reported = Some(usage.total()),
            }
        }
        item
    }
}

impl Drop for Charged {
    fn drop(&mut self) {
        let tokens = self.reported.unwrap_or_else(|| {
            self.prompt_tokens + u32::try_from(self.answer_chars.div_ceil(4)).unwrap_or(u32::MAX)
        });
        self.permit
            .budget
            .charge(&self.permit.keys, u64::from(tokens));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(args: &[&str]) -> AiBudget {
        AiBudget::new(&Config::from_args(args.iter().copied()).unwrap())
    }

    fn visitor(ip: [u8; 4], socket: &str) -> Payer {
        Payer::Anonymous(vec![
            BudgetKey::Address(IpAddr::from(ip)),
            BudgetKey::Socket(socket.to_owned()),
        ])
    }

    #[test]
    fn a_new_socket_does_not_start_a_new_budget_for_its_address() {
        let budget = budget(&[
            "--ai-anon-requests-per-minute",
            "2",
            "--ai-anon-requests-per-minute-per-ip",
            "3",
        ]);
        let mut admitted = 0;
        for socket in 0..10 {
            for _ in 0..2 {
                if budget
                    .admit(&visitor([10, 0, 0, 1], &socket.to_string()))
                    .is_ok()
                {
                    admitted += 1;
                }
            }
        }
        assert_eq!(admitted, 3, "the address's three a minute");
        assert!(budget.admit(&visitor([10, 0, 0, 2], "other")).is_ok());
        assert!(
            budget.admit(&Payer::User(1)).is_ok(),
            "users are not anonymous"
        );
    }

    #[test]
    fn tokens_are_charged_per_key_and_in_all() {
        let budget = budget(&[
            "--ai-anon-tokens-per-day",
            "100",
            "--ai-anon-tokens-per-day-total",
            "250",
        ]);
        budget.0.charge(&[BudgetKey::Socket("a".into())], 100);
        assert!(matches!(
            budget.admit(&visitor([10, 0, 0, 1], "a")),
            Err(AppError::QuotaExceeded { .. })
        ));
        assert!(budget.admit(&visitor([10, 0, 0, 1], "b")).is_ok());
        budget.0.charge(&[BudgetKey::Socket("c".into())], 150);
        assert!(
            budget.admit(&visitor([10, 0, 0, 3], "d")).is_err(),
            "all anonymous callers together"
        );
        assert!(budget.admit(&Payer::Server).is_ok());
    }

    #[test]
    fn the_slots_are_shared_and_given_back() {
        let budget = budget(&["--ai-max-concurrent", "1"]);
        let held = budget.admit(&Payer::User(1)).unwrap();
        assert!(budget.admit(&Payer::Server).is_err());
        drop(held);
        assert!(budget.admit(&Payer::Server).is_ok());
    }
}
