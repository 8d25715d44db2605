//! OpenAI ChatKit session issuing (SPEC §8): `POST /api/chatkit/session` and
//! `POST /api/chatkit/refresh`. No Bearer token: the user is the
//! `chatkit_session_id` cookie (`user_<uuid>`), set once and reused.
//!
//! Every session, a refreshed one too, is created with the operator's file
//! uploads and per-minute request limit (`CHATKIT_*`, the original backend's
//! settings and defaults). Those two always win over what a page sends: a
//! visitor must not raise their own limits. The page's other configuration
//! keys (history, thread titling, …) pass through unchanged.

use axum::{Json, body::Bytes, extract::State};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    ai::AiError,
    config::ChatkitSessionConfig,
    error::{AppError, AppResult},
    http::optional_json,
    state::AppState,
};

const USER_COOKIE: &str = "chatkit_session_id";

const TAG: &str = "chatkit";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_session))
        .routes(routes!(refresh_session))
}

/// The cookie's user, or a new one with the cookie to set.
fn user_of(state: &AppState, jar: CookieJar) -> (String, CookieJar) {
    if let Some(user) = jar
        .get(USER_COOKIE)
        .map(|cookie| cookie.value().to_owned())
        .filter(|value| value.starts_with("user_"))
    {
        return (user, jar);
    }
    let user = format!("user_{}", uuid::Uuid::new_v4());
    let cookie = Cookie::build((USER_COOKIE, user.clone()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.cookie_secure)
        .max_age(time::Duration::days(30))
        .build();
    (user, jar.add(cookie))
}

/// `{agent_id?, chatkit_configuration?}` for a new session (`agent_id` is
/// accepted for compatibility; the workflow is `CHATKIT_WORKFLOW_ID`), plus
/// `current_client_secret` for a refresh.
#[derive(Deserialize, Default, ToSchema)]
struct SessionBody {
    #[schema(value_type = Option<Object>)]
    chatkit_configuration: Option<Value>,
    current_client_secret: Option<String>,
}

impl SessionBody {
    /// The page's ChatKit configuration with the operator's `file_upload`
    /// laid over it.
    fn configuration(&self, settings: &ChatkitSessionConfig) -> AppResult<Value> {
        let mut configuration = match &self.chatkit_configuration {
            None | Some(Value::Null) => json!({}),
            Some(value @ Value::Object(_)) => value.clone(),
            Some(_) => return Err(AppError::invalid("chatkit_configuration must be an object")),
        };
        configuration["file_upload"] = if settings.uploads_enabled {
            json!({
                "enabled": true,
                "max_files": settings.max_files,
                "max_file_size": settings.max_file_size_mb,
            })
        } else {
            json!({ "enabled": false })
        };
        Ok(configuration)
    }
}

/// A ChatKit session as OpenAI issued it.
#[derive(Serialize, ToSchema)]
struct ChatkitSession {
    client_secret: String,
    /// As OpenAI sent it (seconds since the epoch).
    #[schema(value_type = Option<i64>)]
    expires_at: Value,
    #[schema(value_type = Option<String>)]
    session_id: Value,
}

/// Creates a ChatKit session for `user` upstream.
async fn issue(state: &AppState, user: &str, configuration: Value) -> AppResult<ChatkitSession> {
    let (Some(workflow), Some(key)) = (
        &state.config.chatkit_workflow_id,
        &state.config.openai_api_key,
    ) else {
        return Err(AppError::Unavailable {
            code: "CHATKIT_NOT_CONFIGURED",
            message: "ChatKit is not configured: set CHATKIT_WORKFLOW_ID and OPENAI_API_KEY"
                .to_owned(),
        });
    };
    let request = json!({
        "user": user,
        "workflow": { "id": workflow },
        "chatkit_configuration": configuration,
        "rate_limits": {
            "max_requests_per_1_minute": state.config.chatkit_session.max_requests_per_minute,
        },
    });
    let base = state
        .config
        .openai_base_url
        .as_deref()
        .unwrap_or("https://api.openai.com/v1");
    let response = state
        .http
        .post(format!("{}/chatkit/sessions", base.trim_end_matches('/')))
        .bearer_auth(key)
        .header("OpenAI-Beta", "chatkit_beta=v1")
        .json(&request)
        .send()
        .await
        .map_err(|err| AppError::Ai(AiError::Unreachable(err.to_string())))?;
    let status = response.status();
    let mut body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(AppError::Ai(AiError::Upstream {
            status: status.as_u16(),
            message: body.to_string(),
        }));
    }
    // Some API versions nest the secret: `{client_secret: {value}}`.
    let secret = match &body["client_secret"] {
        Value::String(secret) => secret.clone(),
        other => other["value"].as_str().unwrap_or_default().to_owned(),
    };
    if secret.is_empty() {
        return Err(AppError::Ai(AiError::InvalidOutput(
            "ChatKit answered without a client_secret".to_owned(),
        )));
    }
    Ok(ChatkitSession {
        client_secret: secret,
        expires_at: body["expires_at"].take(),
        session_id: body["id"].take(),
    })
}

/// Issues a ChatKit session for the cookie's user (set when absent).
#[utoipa::path(post, path = "/api/chatkit/session", tag = TAG,
    request_body(content = Option<SessionBody>, description = "optional"),
    responses((status = 200, body = ChatkitSession)))]
async fn create_session(
    State(state): State<AppState>,
    jar: CookieJar,
    body: Bytes,
) -> AppResult<(CookieJar, Json<ChatkitSession>)> {
    let body: SessionBody = optional_json(&body)?;
    let (user, jar) = user_of(&state, jar);
    let configuration = body.configuration(&state.config.chatkit_session)?;
    let session = issue(&state, &user, configuration).await?;
    Ok((jar, Json(session)))
}

/// Issues a new ChatKit session in place of `current_client_secret`'s.
#[utoipa::path(post, path = "/api/chatkit/refresh", tag = TAG,
    request_body = SessionBody,
    responses((status = 200, body = ChatkitSession)))]
async fn refresh_session(
    State(state): State<AppState>,
    jar: CookieJar,
    body: Bytes,
) -> AppResult<(CookieJar, Json<ChatkitSession>)> {
    let body: SessionBody = optional_json(&body)?;
    let has_secret = body
        .current_client_secret
        .as_ref()
        .is_some_and(|secret| !secret.trim().is_empty());
    if !has_secret {
        return Err(AppError::invalid(
            "current_client_secret is required to refresh.",
        ));
    }
    let (user, jar) = user_of(&state, jar);
    let configuration = body.configuration(&state.config.chatkit_session)?;
    let session = issue(&state, &user, configuration).await?;
    Ok((jar, Json(session)))
}
