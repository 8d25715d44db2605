//! HTTP plumbing shared by every flow's routes: the JSON extractor whose
//! rejections are [`AppError`]s, the client's address, CORS, security headers
//! and the JSON fallbacks.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequest, FromRequestParts},
    http::{HeaderMap, HeaderValue, Method, header, request::Parts},
    response::{IntoResponse, Response},
};
use ipnet::IpNet;
use tower_http::cors::{AllowCredentials, AllowHeaders, AllowOrigin, CorsLayer};

use crate::{config::Config, error::AppError, state::AppState};

/// `axum::Json`, but a body that is not JSON, does not fit the type or is too
/// large answers `{error, message, code}` like every other error.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct AppJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A JSON body that may be absent: an empty body is `T::default()`.
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|err| AppError::Invalid {
        code: "INVALID_JSON",
        message: format!("Invalid JSON body: {err}"),
    })
}

/// Hops of `X-Forwarded-For` looked at, from the nearest.
const MAX_FORWARDED_HOPS: usize = 16;

/// The client's address: the TCP peer's, unless the peer is one of
/// `TRUSTED_PROXIES`; then the nearest address in `X-Forwarded-For` that is
/// not a trusted proxy. A client cannot choose its address by sending the
/// header itself.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .take(MAX_FORWARDED_HOPS)
        .map_while(|hop| hop.parse().ok())
        .collect();
    hops.iter()
        .find(|hop| !is_trusted(hop))
        .or(hops.last())
        .copied()
        .unwrap_or(peer)
}

/// The TCP peer of a request or handshake.
pub fn peer_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| {
            addr.ip()
        })
}

/// The client's address as an extractor (see [`client_ip`]).
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(
            peer_ip(parts),
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

/// Unknown routes under every prefix answer a JSON 404.
pub async fn not_found() -> AppError {
    AppError::not_found("NOT_FOUND", "Route not found")
}

pub async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

const DEFAULT_ORIGINS: [&str; 2] = ["http://localhost:*", "http://127.0.0.1:*"];

/// Whether `origin` matches one of `patterns`: an exact origin, or `scheme://host:*`
/// for any port (and none).
pub fn origin_allowed(origin: &str, patterns: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    patterns.iter().any(|pattern| {
        let pattern = pattern.trim().trim_end_matches('/');
        match pattern.strip_suffix(":*") {
            Some(base) => {
                origin == base
                    || origin
                        .strip_prefix(base)
                        .and_then(|rest| rest.strip_prefix(':'))
                        .is_some_and(|port| {
                            !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
                        })
            }
            None => pattern == "*" || origin == pattern,
        }
    })
}

fn default_origins() -> Vec<String> {
    DEFAULT_ORIGINS.iter().map(|s| (*s).to_owned()).collect()
}

/// The browser origins that may call the server (`CORS_ORIGINS`, local dev
/// origins by default), and among them those of the apps that sign in
/// (`AUTH_ORIGINS`), the only ones given credentials. A widget's host site
/// calls without credentials: an XSS there must not reach an admin's cookie.
#[derive(Clone)]
pub struct Origins {
    browser: Vec<String>,
    sign_in: Vec<String>,
}

impl Origins {
    pub fn new(config: &Config) -> Self {
        let browser = if config.cors_origins.is_empty() {
            default_origins()
        } else {
            config.cors_origins.clone()
        };
        let sign_in = match (
            config.auth_origins.is_empty(),
            config.cors_origins.is_empty(),
        ) {
            (false, _) => config.auth_origins.clone(),
            (true, true) => default_origins(),
            (true, false) => Vec::new(),
        };
        Self { browser, sign_in }
    }

    fn allows(&self, origin: &str) -> bool {
        origin_allowed(origin, &self.browser) || self.allows_credentials(origin)
    }

    fn allows_credentials(&self, origin: &str) -> bool {
        origin_allowed(origin, &self.sign_in)
    }

    /// Whether a request may use the cookies it carries: it comes from no
    /// browser page (no `Origin`), from the server's own origin, or from an
    /// app that signs in.
    pub fn cookies_honoured(&self, headers: &HeaderMap) -> bool {
        self.page_allowed(headers, |origin| self.allows_credentials(origin))
    }

    /// Whether a request comes from no browser page, from the server's own
    /// origin, or from an allowed one (a widget's site included): a websocket
    /// is not bound by CORS, so its handshake is checked here.
    pub fn connection_allowed(&self, headers: &HeaderMap) -> bool {
        self.page_allowed(headers, |origin| self.allows(origin))
    }

    fn page_allowed(&self, headers: &HeaderMap, allowed: impl Fn(&str) -> bool) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let same_origin = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .zip(origin.split_once("://").map(|(_, authority)| authority))
            .is_some_and(|(host, authority)| authority.eq_ignore_ascii_case(host));
        same_origin || allowed(origin)
    }
}

/// CORS for the browser origins, with credentials for the sign-in apps only.
pub fn cors(origins: &Origins) -> CorsLayer {
    let allowed = origins.clone();
    let credentialed = origins.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(
            move |origin: &HeaderValue, _: &Parts| {
                origin.to_str().is_ok_and(|origin| allowed.allows(origin))
            },
        ))
        .allow_credentials(AllowCredentials::predicate(
            move |origin: &HeaderValue, _: &Parts| {
                origin
                    .to_str()
                    .is_ok_and(|origin| credentialed.allows_credentials(origin))
            },
        ))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(std::time::Duration::from_secs(600))
}

/// Adds the security headers every response carries unless a handler set them.
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    headers
        .entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("SAMEORIGIN"));
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("strict-origin-when-cross-origin"));
    response
}

/// The span of one HTTP request: every log line written while handling it
/// carries its id (numbered per process; a client's own header is not
/// trusted), method and path.
pub fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info_span!(
        "request",
        id,
        method = %request.method(),
        path = request.uri().path(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "1.2.3.4, 5.6.7.8, 10.0.0.2".parse().unwrap(),
        );
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let stranger: IpAddr = "9.9.9.9".parse().unwrap();
        assert_eq!(client_ip(stranger, &headers, &trusted), stranger);
        assert_eq!(client_ip(stranger, &headers, &[]), stranger);
        assert_eq!(
            client_ip(proxy, &headers, &trusted),
            "5.6.7.8".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
        headers.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(client_ip(proxy, &headers, &trusted), proxy);
    }

    #[test]
    fn port_wildcards_match_only_ports() {
        let patterns = vec![
            "http://localhost:*".to_owned(),
            "https://app.example.com".to_owned(),
        ];
        assert!(origin_allowed("http://localhost:5173", &patterns));
        assert!(origin_allowed("http://localhost", &patterns));
        assert!(origin_allowed("https://app.example.com", &patterns));
        assert!(!origin_allowed("http://localhost.evil.com", &patterns));
        assert!(!origin_allowed("http://localhost:80.evil.com", &patterns));
        assert!(!origin_allowed(
            "https://app.example.com.evil.com",
            &patterns
        ));
    }
}
