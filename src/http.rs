//! HTTP plumbing shared by every flow's routes: the JSON extractor whose
//! rejections are [`AppError`]s, CORS, security headers and the JSON fallbacks.

use axum::{
    extract::FromRequest,
    http::{HeaderValue, Method, header, request::Parts},
    response::{IntoResponse, Response},
};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::error::AppError;

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

/// CORS with credentials for the configured origins (local dev origins by default).
pub fn cors(configured: &[String]) -> CorsLayer {
    let patterns: Vec<String> = if configured.is_empty() {
        DEFAULT_ORIGINS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        configured.to_vec()
    };
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(
            move |origin: &HeaderValue, _: &Parts| {
                origin
                    .to_str()
                    .is_ok_and(|origin| origin_allowed(origin, &patterns))
            },
        ))
        .allow_credentials(true)
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

#[cfg(test)]
mod tests {
    use super::origin_allowed;

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
