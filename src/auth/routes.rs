//! `/api/auth/*`: register, login, refresh, logout, verify. The refresh token
//! travels in an httpOnly cookie and in the body. Refresh and logout read the
//! cookie first and the body only without one, as the Node original does: the
//! coach client keeps its first body token forever while its cookie holds the
//! rotated one, so a stale body token beside a cookie is ignored.

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AuthUser, LoginResponse, service};
use crate::{
    error::{AppError, AppResult},
    http::{AppJson, ClientIp, optional_json},
    state::AppState,
};

const REFRESH_COOKIE: &str = "refreshToken";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/refresh", post(refresh))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/verify", get(verify))
}

fn refresh_cookie(state: &AppState, token: String) -> Cookie<'static> {
    Cookie::build((REFRESH_COOKIE, token))
        .path("/api/auth")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.cookie_secure)
        .max_age(time::Duration::days(i64::from(
            state.config.refresh_token_ttl_days,
        )))
        .build()
}

fn with_cookie(state: &AppState, jar: CookieJar, session: &LoginResponse) -> CookieJar {
    jar.add(refresh_cookie(state, session.refresh_token.clone()))
}

#[derive(Deserialize)]
struct RegisterBody {
    email: String,
    name: String,
    #[serde(default)]
    role: String,
    password: String,
}

async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    AppJson(body): AppJson<RegisterBody>,
) -> AppResult<(StatusCode, CookieJar, Json<LoginResponse>)> {
    state.login_limits.spend(ip, None)?;
    let session =
        service::register(&state, &body.email, &body.name, &body.role, &body.password).await?;
    Ok((
        StatusCode::CREATED,
        with_cookie(&state, jar, &session),
        Json(session),
    ))
}

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    AppJson(body): AppJson<LoginBody>,
) -> AppResult<(CookieJar, Json<LoginResponse>)> {
    state.login_limits.spend(ip, Some(&body.email))?;
    let session = service::login(&state, &body.email, &body.password).await?;
    Ok((with_cookie(&state, jar, &session), Json(session)))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RefreshBody {
    refresh_token: Option<String>,
}

/// The cookie's token when there is one, else the body's.
fn presented_token(jar: &CookieJar, body: &[u8]) -> AppResult<Option<String>> {
    let body: RefreshBody = optional_json(body)?;
    Ok(jar
        .get(REFRESH_COOKIE)
        .map(|cookie| cookie.value().to_owned())
        .filter(|token| !token.is_empty())
        .or_else(|| body.refresh_token.filter(|token| !token.is_empty())))
}

async fn refresh(
    State(state): State<AppState>,
    jar: CookieJar,
    body: Bytes,
) -> AppResult<(CookieJar, Json<Value>)> {
    let token = presented_token(&jar, &body)?.ok_or_else(|| AppError::Unauthorized {
        code: "INVALID_REFRESH_TOKEN",
        message: "Refresh token required".to_owned(),
    })?;
    let session = service::refresh(&state, &token).await?;
    let jar = with_cookie(&state, jar, &session);
    Ok((
        jar,
        Json(json!({
            "accessToken": session.access_token,
            "token": session.token,
            "refreshToken": session.refresh_token,
            "expiresIn": session.expires_in,
        })),
    ))
}

async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    body: Bytes,
) -> AppResult<(CookieJar, Json<Value>)> {
    if let Some(token) = presented_token(&jar, &body)? {
        service::revoke(&state, &token).await?;
    }
    let jar = jar.remove(Cookie::build(REFRESH_COOKIE).path("/api/auth"));
    Ok((jar, Json(json!({ "message": "Logged out" }))))
}

async fn verify(State(state): State<AppState>, caller: AuthUser) -> AppResult<Json<Value>> {
    let user = service::current_user(&state, &caller).await?;
    Ok(Json(json!({ "valid": true, "user": user })))
}
