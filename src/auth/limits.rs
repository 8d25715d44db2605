//! Sign-in attempts have their own budget, apart from the general `/api`
//! bucket: per client address (`LOGIN_RATE_LIMIT_PER_IP`) and per account
//! (`LOGIN_RATE_LIMIT_PER_ACCOUNT`), both per `LOGIN_RATE_LIMIT_WINDOW_MS`.
//! Raising the general limit for busy dashboards leaves these alone.

use std::{net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::{config::Config, error::AppError, telemetry::metrics};

pub struct LoginLimits {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_account: DefaultKeyedRateLimiter<String>,
}

fn quota(max: u32, window_ms: u64) -> Quota {
    let max = NonZeroU32::new(max).unwrap_or(NonZeroU32::MIN);
    let period = Duration::from_millis(window_ms) / max.get();
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(max)
}

impl LoginLimits {
    pub fn new(config: &Config) -> Self {
        let window = config.login_rate_limit_window_ms;
        Self {
            per_ip: RateLimiter::keyed(quota(config.login_rate_limit_per_ip, window)),
            per_account: RateLimiter::keyed(quota(config.login_rate_limit_per_account, window)),
        }
    }

    /// Spends one attempt of `ip` and, when given, of the account `email`.
    pub fn spend(&self, ip: IpAddr, email: Option<&str>) -> Result<(), AppError> {
        let refused = |not_until: governor::NotUntil<_>| {
            metrics::refused("login");
            AppError::RateLimited {
                message: "Too many sign-in attempts; try again later".to_owned(),
                retry_after: crate::rate_limit::retry_after(&not_until),
            }
        };
        self.per_ip.check_key(&ip).map_err(refused)?;
        if let Some(email) = email {
            let account = email.trim().to_lowercase();
            self.per_account.check_key(&account).map_err(refused)?;
        }
        Ok(())
    }

    /// Forgets addresses and accounts whose budget is full again.
    pub fn retain_recent(&self) {
        self.per_ip.retain_recent();
        self.per_account.retain_recent();
    }
}
