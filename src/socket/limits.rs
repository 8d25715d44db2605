//! What one client address may hold of the Socket.IO side, whatever its
//! transport. The connection cap in [`crate::net`] counts TCP connections, and
//! long-polling multiplexes any number of Engine.IO sessions over a few of
//! them; so sessions are bounded here too:
//!
//! - sockets joined to the namespace: at most `MAX_CONNECTIONS_PER_IP` per
//!   address at once (more are refused with a `connect_error`);
//! - new Engine.IO sessions (handshakes): `MAX_CONNECTIONS_PER_IP` at once,
//!   then that many a minute. A session that never joins the namespace is
//!   dropped after `SOCKET_CONNECT_TIMEOUT_SECS`, so the rate bounds those too.
//!
//! Trusted proxies are exempt, as from the connection cap; behind one, the
//! address counted is the client's it names.

use std::{net::IpAddr, num::NonZeroU32, sync::Arc, time::Duration};

use axum::{
    extract::{Request, State},
    http::request::Parts,
    middleware::Next,
    response::{IntoResponse, Response},
};
use dashmap::DashMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::{config::Config, error::AppError, http, state::AppState, telemetry::metrics};

pub struct AddressLimits {
    per_address: usize,
    trusted_proxies: Vec<IpNet>,
    joined: Arc<DashMap<IpAddr, usize>>,
    handshakes: DefaultKeyedRateLimiter<IpAddr>,
}

/// One joined socket of an address; the count goes down when it is dropped
/// (with the socket).
pub struct JoinedSlot {
    ip: IpAddr,
    joined: Arc<DashMap<IpAddr, usize>>,
}

impl Drop for JoinedSlot {
    fn drop(&mut self) {
        self.joined.remove_if_mut(&self.ip, |_, count| {
            *count -= 1;
            *count == 0
        });
    }
}

/// Too many sockets from one address (the client's `connect_error` says so).
#[derive(Debug, thiserror::Error)]
#[error("too many connections from this address")]
pub struct TooManySockets;

impl AddressLimits {
    pub fn new(config: &Config) -> Self {
        let per_address = config.max_connections_per_ip.max(1);
        let burst = NonZeroU32::new(u32::try_from(per_address).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN);
        let period = Duration::from_secs(60) / burst.get();
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        Self {
            per_address,
            trusted_proxies: config.trusted_proxies.clone(),
            joined: Arc::default(),
            handshakes: RateLimiter::keyed(quota),
        }
    }

    /// The client's address of a request, or `None` for a trusted proxy's own.
    fn address_of(&self, parts: &Parts) -> Option<IpAddr> {
        let ip = http::client_ip(http::peer_ip(parts), &parts.headers, &self.trusted_proxies);
        let trusted = self.trusted_proxies.iter().any(|net| net.contains(&ip));
        (!trusted).then_some(ip)
    }

    /// Counts a socket joining the namespace, unless its address has its fill.
    pub fn join(&self, parts: &Parts) -> Result<Option<JoinedSlot>, TooManySockets> {
        let Some(ip) = self.address_of(parts) else {
            return Ok(None);
        };
        let mut count = self.joined.entry(ip).or_insert(0);
        if *count >= self.per_address {
            drop(count);
            metrics::refused("socket_per_ip");
            crate::warn_limited!(%ip, "too many sockets from one address");
            return Err(TooManySockets);
        }
        *count += 1;
        Ok(Some(JoinedSlot {
            ip,
            joined: self.joined.clone(),
        }))
    }

    /// Spends one new Engine.IO session of the request's address.
    pub fn handshake(&self, parts: &Parts) -> Result<(), AppError> {
        let Some(ip) = self.address_of(parts) else {
            return Ok(());
        };
        self.handshakes.check_key(&ip).map_err(|not_until| {
            metrics::refused("socket_handshake");
            AppError::RateLimited {
                message: "Too many new connections from this address".to_owned(),
                retry_after: crate::rate_limit::retry_after(&not_until),
            }
        })
    }

    /// Forgets addresses whose handshake budget is full again.
    pub fn retain_recent(&self) {
        self.handshakes.retain_recent();
    }
}

/// On each handshake (a Socket.IO request without a `sid`): refuses a browser
/// page of an origin not allowed (`SOCKET_CHECK_ORIGIN`), and spends a new
/// Engine.IO session of the client's address. Other requests pass.
pub async fn limit_handshakes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let is_handshake = request.uri().path().starts_with(super::SOCKET_IO_PATH)
        && !request
            .uri()
            .query()
            .is_some_and(|query| query.split('&').any(|pair| pair.starts_with("sid=")));
    if is_handshake {
        if state.config.socket_check_origin && !state.origins.connection_allowed(request.headers())
        {
            metrics::refused("socket_origin");
            return AppError::Forbidden {
                code: "ORIGIN_NOT_ALLOWED",
                message: "This page's origin may not connect; list it in CORS_ORIGINS".to_owned(),
            }
            .into_response();
        }
        let (parts, body) = request.into_parts();
        if let Err(refused) = state.socket_limits.handshake(&parts) {
            return refused.into_response();
        }
        return next.run(Request::from_parts(parts, body)).await;
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::extract::ConnectInfo;

    use super::*;

    fn request_from(ip: [u8; 4]) -> Parts {
        let mut request = axum::http::Request::new(());
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
        request.into_parts().0
    }

    #[test]
    fn joined_sockets_are_counted_per_address_until_they_leave() {
        let config = Config::from_args(["--max-connections-per-ip", "2"]).unwrap();
        let limits = AddressLimits::new(&config);
        let first = limits.join(&request_from([10, 0, 0, 1])).unwrap();
        let second = limits.join(&request_from([10, 0, 0, 1])).unwrap();
        assert!(limits.join(&request_from([10, 0, 0, 1])).is_err());
        assert!(limits.join(&request_from([10, 0, 0, 2])).unwrap().is_some());
        drop(first);
        let third = limits.join(&request_from([10, 0, 0, 1])).unwrap();
        drop((second, third));
        assert!(
            limits.joined.is_empty(),
            "an address that left is forgotten"
        );
    }

    #[test]
    fn trusted_proxies_are_exempt() {
        let config = Config::from_args([
            "--max-connections-per-ip",
            "1",
            "--trusted-proxies",
            "10.9.0.0/16",
        ])
        .unwrap();
        let limits = AddressLimits::new(&config);
        for _ in 0..3 {
            assert!(limits.join(&request_from([10, 9, 0, 1])).unwrap().is_none());
            assert!(limits.handshake(&request_from([10, 9, 0, 1])).is_ok());
        }
    }
}
