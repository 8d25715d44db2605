//! The one error type of the service layer, [`AppError`], and its two mappings:
//! to an HTTP response `{error, message, code}` and to the `{code, message}` pair
//! that socket flows put in their error events.
//!
//! `error` and `message` carry the same human-readable text: frontends written for
//! the Node originals show either one. Internal details (database, provider
//! errors) are logged, never sent.

use std::time::Duration;

use axum::{
    Json,
    extract::rejection::{JsonRejection, PathRejection, QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sea_orm::{DbErr, RuntimeErr, sqlx};
use serde::Serialize;

use crate::{ai::AiError, config::Flow, telemetry::metrics};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed or fails validation (400).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// No valid credentials (401).
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// Authenticated, but not allowed (403).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// Unknown, or not visible to the caller (404).
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// The body is not JSON where JSON is expected (415).
    #[error("Expected a JSON body with `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// The route exists, but not for this method (405).
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// Conflicts with existing state, e.g. a taken email (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The body or payload exceeds the configured limit (413).
    #[error("{message}")]
    PayloadTooLarge { message: String },
    /// Over a rate limit or quota (429), with `Retry-After` unless
    /// `retry_after` is zero (a wait that would time an attacker's next try).
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Duration,
    },
    /// A daily quota is spent until `reset_at` (429, with `resetAt` in the
    /// body); `code` is `RATE_LIMITED` where clients already knew it so (the
    /// coach's quota), else `QUOTA_EXCEEDED`.
    #[error("Daily token quota used up; it resets at {}", reset_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))]
    QuotaExceeded {
        reset_at: chrono::DateTime<chrono::Utc>,
        code: &'static str,
    },
    /// A feature needs configuration that is missing, or the server is busy (503).
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// The configuration switched the flow off (404).
    #[error("The {} flow is switched off on this server", .0.as_str())]
    FlowDisabled(Flow),
    /// The AI provider failed (502, or 504 on a timeout).
    #[error(transparent)]
    Ai(#[from] AiError),
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type AppResult<T> = Result<T, AppError>;

/// Whether `err` says the database cannot be reached (as opposed to a
/// statement that failed): no connection, a broken one, or a statement cut
/// off by a timeout or a shutdown.
pub fn database_unreachable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(err)) | DbErr::Query(RuntimeErr::SqlxError(err)) => {
            matches!(
                **err,
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
            ) || err
                .as_database_error()
                .and_then(|db| db.code())
                // PostgreSQL: statement timeout, admin shutdown, cannot connect now.
                .is_some_and(|code| matches!(&*code, "57014" | "57P01" | "57P03"))
        }
        _ => false,
    }
}

/// A failure as socket flows send it in their error events.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SocketError {
    /// What clients switch on. Any flow: `INVALID_PAYLOAD`, `INVALID_REQUEST`,
    /// `RATE_LIMITED`, `QUOTA_EXCEEDED` (an anonymous caller's AI tokens of
    /// the day are spent), `PAYLOAD_TOO_LARGE`, `FORBIDDEN`, `UNAUTHORIZED`,
    /// `TOKEN_EXPIRED`, `FLOW_DISABLED`, `SERVER_BUSY`, `DATABASE_UNAVAILABLE`,
    /// `AI_PROVIDER_ERROR`, `INTERNAL_ERROR`. Live chat: `INVALID_SESSION_ID`,
    /// `EMPTY_MESSAGE`, `MESSAGE_TOO_LONG`, `SESSION_NOT_FOUND`. Assistant:
    /// `CONVERSATION_NOT_FOUND`, `MESSAGE_NOT_FOUND`, `OWNER_REQUIRED`.
    pub code: &'static str,
    pub message: String,
}

impl AppError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            code: "INVALID_REQUEST",
            message: message.into(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized {
            code: "UNAUTHORIZED",
            message: message.into(),
        }
    }

    pub fn flow_disabled(flow: Flow) -> Self {
        Self::FlowDisabled(flow)
    }

    /// The database cannot be reached (as opposed to a statement that failed).
    fn database_unreachable(&self) -> bool {
        matches!(self, Self::Database(err) if database_unreachable(err))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } | Self::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::FlowDisabled(_) => StatusCode::NOT_FOUND,
            Self::Ai(AiError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            Self::Ai(_) => StatusCode::BAD_GATEWAY,
            Self::Database(_) if self.database_unreachable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Forbidden { code, .. }
            | Self::NotFound { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unavailable { code, .. } => code,
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::QuotaExceeded { code, .. } => code,
            Self::FlowDisabled(_) => "FLOW_DISABLED",
            Self::Ai(_) => "AI_PROVIDER_ERROR",
            Self::Database(_) if self.database_unreachable() => "DATABASE_UNAVAILABLE",
            Self::Database(_) | Self::Internal(_) => "INTERNAL_ERROR",
        }
    }

    /// The text shown to the client; internal causes stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            Self::Ai(err) => err.public_message(),
            Self::Database(_) if self.database_unreachable() => {
                "The database is unavailable; try again shortly".to_owned()
            }
            Self::Database(_) | Self::Internal(_) => "Internal server error".to_owned(),
            other => other.to_string(),
        }
    }

    /// Logs what the client will not see, once, where the error leaves the service.
    fn log(&self) {
        match self {
            Self::Database(_) if self.database_unreachable() => {
                crate::warn_limited!(error = %self, "the database is unreachable")
            }
            Self::Database(_) | Self::Internal(_) => {
                tracing::error!(error = %self, "request failed")
            }
            Self::Ai(err) => crate::warn_limited!(error = %err, "AI provider failed"),
            _ => tracing::debug!(error = %self, "request rejected"),
        }
    }

    pub fn to_socket_error(&self) -> SocketError {
        self.log();
        metrics::error_answered(self.code(), "socket");
        SocketError {
            code: self.code(),
            message: self.public_message(),
        }
    }
}

/// Every error answer of the REST routes.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody<'a> {
    /// The same text as `message`: clients written for the Node originals read either.
    error: &'a str,
    message: &'a str,
    /// The machine-readable code clients switch on.
    code: &'a str,
    /// When a spent daily quota resets.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional_iso8601"
    )]
    reset_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn optional_iso8601<S: serde::Serializer>(
    time: &Option<chrono::DateTime<chrono::Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => crate::timefmt::iso8601(time, serializer),
        None => serializer.serialize_none(),
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        metrics::error_answered(self.code(), "http");
        let message = self.public_message();
        let body = ErrorBody {
            error: &message,
            message: &message,
            code: self.code(),
            reset_at: match &self {
                Self::QuotaExceeded { reset_at, .. } => Some(*reset_at),
                _ => None,
            },
        };
        let retry_after = match &self {
            Self::RateLimited { retry_after, .. } if !retry_after.is_zero() => Some(*retry_after),
            Self::QuotaExceeded { reset_at, .. } => Some(
                (*reset_at - chrono::Utc::now())
                    .to_std()
                    .unwrap_or_default(),
            ),
            _ => None,
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(retry_after) = retry_after {
            let secs = retry_after.as_secs().max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::PayloadTooLarge {
                message: "Request body is too large".to_owned(),
            };
        }
        let code = match rejection {
            JsonRejection::MissingJsonContentType(_) => return Self::UnsupportedMediaType,
            JsonRejection::JsonSyntaxError(_) => "INVALID_JSON",
            _ => "INVALID_REQUEST",
        };
        Self::Invalid {
            code,
            message: rejection.body_text(),
        }
    }
}

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> Self {
        Self::invalid(rejection.body_text())
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        Self::invalid(rejection.body_text())
    }
}
