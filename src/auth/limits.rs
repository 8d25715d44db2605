//! Sign-in attempts have their own budget, apart from the general `/api`
//! bucket. Raising the general limit for busy dashboards leaves these alone.
//!
//! No one's failures can refuse another's sign-in:
//! - an address may make `LOGIN_RATE_LIMIT_PER_IP` attempts (logins and
//!   registrations) per window, whatever the accounts;
//! - an address may try one account `LOGIN_RATE_LIMIT_PER_ACCOUNT` times per
//!   window; the owner's address has a budget of its own, untouched by an
//!   attacker's;
//! - an account's failures from every address together only slow its sign-ins
//!   down: past `LOGIN_RATE_LIMIT_PER_ACCOUNT` failures in a window each
//!   attempt waits [`FIRST_DELAY`], doubling with each further failure up to
//!   [`MAX_DELAY`]. A distributed guesser gets a few attempts a second at
//!   most per hashing slot; the owner waits two seconds at worst, and is never
//!   refused.
//!
//! Refusals name no `Retry-After` time: the budgets refused are the caller's own.

use std::{
    net::IpAddr,
    num::NonZeroU32,
    time::{Duration, Instant},
};

use dashmap::DashMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::{config::Config, error::AppError, telemetry::metrics};

/// The wait of the first attempt past an account's failure budget.
pub const FIRST_DELAY: Duration = Duration::from_millis(250);
/// The longest wait an attempt on an account under attack is given.
pub const MAX_DELAY: Duration = Duration::from_secs(2);
/// Accounts whose failures are counted at once; past it, failures on accounts
/// not yet counted go uncounted until the sweep (an address's own budgets still hold).
const MAX_COUNTED_ACCOUNTS: usize = 100_000;

pub struct LoginLimits {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_account_from_ip: DefaultKeyedRateLimiter<(String, IpAddr)>,
    failures: DashMap<String, Failures>,
    failures_before_delay: u32,
    window: Duration,
}

/// An account's failed sign-ins in the current window.
struct Failures {
    count: u32,
    since: Instant,
}

fn quota(max: u32, window_ms: u64) -> Quota {
    let max = NonZeroU32::new(max).unwrap_or(NonZeroU32::MIN);
    let period = Duration::from_millis(window_ms) / max.get();
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(max)
}

fn account_key(email: &str) -> String {
    email.trim().to_lowercase()
}

fn refused() -> AppError {
    metrics::refused("login");
    AppError::RateLimited {
        message: "Too many sign-in attempts; try again later".to_owned(),
        retry_after: Duration::ZERO,
    }
}

impl LoginLimits {
    pub fn new(config: &Config) -> Self {
        let window = config.login_rate_limit_window_ms;
        Self {
            per_ip: RateLimiter::keyed(quota(config.login_rate_limit_per_ip, window)),
            per_account_from_ip: RateLimiter::keyed(quota(
                config.login_rate_limit_per_account,
                window,
            )),
            failures: DashMap::new(),
            failures_before_delay: config.login_rate_limit_per_account,
            window: Duration::from_millis(window),
        }
    }

    /// Spends one attempt of `ip` (a registration, or anything else that is
    /// not a sign-in to a named account).
    pub fn spend(&self, ip: IpAddr) -> Result<(), AppError> {
        self.per_ip.check_key(&ip).map_err(|_| refused())
    }

    /// Spends one sign-in attempt of `ip` on `email`'s account, and tells how
    /// long the attempt must wait before its password is checked.
    pub fn admit(&self, ip: IpAddr, email: &str) -> Result<Duration, AppError> {
        self.spend(ip)?;
        let account = account_key(email);
        let failures = self.failures_of(&account);
        self.per_account_from_ip
            .check_key(&(account, ip))
            .map_err(|_| refused())?;
        Ok(self.delay_after(failures))
    }

    /// Counts a wrong password (or an unknown account) for `email`.
    pub fn failed(&self, email: &str) {
        let account = account_key(email);
        let now = Instant::now();
        if let Some(mut entry) = self.failures.get_mut(&account) {
            if now.duration_since(entry.since) >= self.window {
                *entry = Failures {
                    count: 0,
                    since: now,
                };
            }
            entry.count = entry.count.saturating_add(1);
            return;
        }
        if self.failures.len() < MAX_COUNTED_ACCOUNTS {
            self.failures.insert(
                account,
                Failures {
                    count: 1,
                    since: now,
                },
            );
        }
    }

    fn failures_of(&self, account: &str) -> u32 {
        self.failures
            .get(account)
            .filter(|entry| entry.since.elapsed() < self.window)
            .map_or(0, |entry| entry.count)
    }

    fn delay_after(&self, failures: u32) -> Duration {
        let Some(past_budget) = failures.checked_sub(self.failures_before_delay) else {
            return Duration::ZERO;
        };
        let doublings = past_budget.min(8);
        FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
    }

    /// Forgets addresses and accounts whose budget is full again.
    pub fn retain_recent(&self) {
        self.per_ip.retain_recent();
        self.per_account_from_ip.retain_recent();
        self.failures
            .retain(|_, entry| entry.since.elapsed() < self.window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_ip: u32, per_account: u32) -> LoginLimits {
        let config = Config::from_args([
            "--login-rate-limit-per-ip",
            &per_ip.to_string(),
            "--login-rate-limit-per-account",
            &per_account.to_string(),
        ])
        .unwrap();
        LoginLimits::new(&config)
    }

    #[test]
    fn others_failures_never_refuse_the_owner() {
        let limits = limits(1000, 3);
        let owner: IpAddr = "127.0.0.9".parse().unwrap();
        for n in 0..50u8 {
            let attacker = IpAddr::from([127, 0, 0, 2 + n % 3]);
            if limits.admit(attacker, "Admin@x.io").is_ok() {
                limits.failed("admin@x.io");
            }
        }
        let delay = limits
            .admit(owner, "admin@x.io")
            .expect("the owner is let in");
        assert_eq!(
            delay, MAX_DELAY,
            "but slowed while the account is under attack"
        );
    }

    #[test]
    fn one_address_has_a_budget_per_account() {
        let limits = limits(1000, 3);
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            limits.admit(ip, "a@x.io").unwrap();
        }
        assert!(limits.admit(ip, "a@x.io").is_err());
        assert!(
            limits.admit(ip, "b@x.io").is_ok(),
            "another account's budget"
        );
    }

    #[test]
    fn the_delay_grows_past_the_failure_budget() {
        let limits = limits(1000, 2);
        assert_eq!(limits.delay_after(0), Duration::ZERO);
        assert_eq!(limits.delay_after(1), Duration::ZERO);
        assert_eq!(limits.delay_after(2), FIRST_DELAY);
        assert_eq!(limits.delay_after(3), FIRST_DELAY * 2);
        assert_eq!(limits.delay_after(u32::MAX), MAX_DELAY);
    }
}
