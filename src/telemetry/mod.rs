//! Tracing set-up (`RUST_LOG` filters, `info` by default, text or JSON),
//! [`warn_limited!`], which keeps a repeated warning from flooding the log,
//! and [`metrics`], the Prometheus metrics.

pub mod metrics;

use std::{
    io::IsTerminal,
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    // A second call (tests start many servers in one process) is harmless.
    let _ = match format {
        LogFormat::Text => fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
        // The fields of the request or socket event being handled are the
        // line's `span` object.
        LogFormat::Json => fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// How often one call site of [`warn_limited!`] may log.
pub struct LogThrottle {
    limiter: DefaultDirectRateLimiter,
    suppressed: AtomicU64,
}

impl LogThrottle {
    /// `per_minute` lines at most, after a burst of as many.
    pub fn per_minute(per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::direct(Quota::per_minute(per_minute)),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(lines suppressed since the last one)` when this one may be logged.
    pub fn admit(&self) -> Option<u64> {
        if self.limiter.check().is_ok() {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// `tracing::warn!`, at most six lines a minute from one call site; the next
/// line that gets through says how many were left out (`suppressed`).
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static THROTTLE: ::std::sync::LazyLock<$crate::telemetry::LogThrottle> =
            ::std::sync::LazyLock::new(|| $crate::telemetry::LogThrottle::per_minute(6));
        if let Some(suppressed) = THROTTLE.admit() {
            ::tracing::warn!(suppressed, $($arg)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::LogThrottle;

    #[test]
    fn a_throttle_admits_a_burst_then_counts_what_it_drops() {
        let throttle = LogThrottle::per_minute(2);
        assert_eq!(throttle.admit(), Some(0));
        assert_eq!(throttle.admit(), Some(0));
        assert_eq!(throttle.admit(), None);
        assert_eq!(throttle.admit(), None);
        assert_eq!(
            throttle
                .suppressed
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );
    }
}
