//! `/api/auth/*`: register, login, refresh, logout, verify. The refresh token
//! travels in an httpOnly cookie and in the body. Refresh and logout read the
//! cookie first and the body only without one, as the Node original does: the
//! coach client keeps its first body token forever while its cookie holds the
//! rotated one, so a stale body token beside a cookie is ignored. A cookie
//! sent by a page of another origin than the server's and the sign-in apps'
//! (`AUTH_ORIGINS`) is not used: a widget's host site cannot refresh an
//! admin's session through the admin's browser.

use axum::{
    Json,
    body::Bytes,
    extract::{
        Path, Query, State,
        rejection::{PathRejection, QueryRejection},
    },
    http::{HeaderMap, StatusCode},
};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AdminUser, AuthUser, LoginResponse, UserView, service, service::AccountView};
use crate::{
    error::{AppError, AppResult},
    http::{AppJson, ClientIp, optional_json},
    state::AppState,
};

const REFRESH_COOKIE: &str = "refreshToken";

const TAG: &str = "auth";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(verify))
        .routes(routes!(list_accounts))
        .routes(routes!(deactivate))
        .routes(routes!(reactivate))
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

#[derive(Deserialize, ToSchema)]
struct RegisterBody {
    email: String,
    name: String,
    /// The user's job title.
    #[serde(default)]
    role: String,
    password: String,
}

/// Creates an account and signs it in; sets the `refreshToken` cookie.
#[utoipa::path(post, path = "/api/auth/register", tag = TAG, request_body = RegisterBody,
    responses((status = 201, body = LoginResponse)))]
async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    AppJson(body): AppJson<RegisterBody>,
) -> AppResult<(StatusCode, CookieJar, Json<LoginResponse>)> {
    state.login_limits.spend(ip)?;
    let session =
        service::register(&state, &body.email, &body.name, &body.role, &body.password).await?;
    Ok((
        StatusCode::CREATED,
        with_cookie(&state, jar, &session),
        Json(session),
    ))
}

#[derive(Deserialize, ToSchema)]
struct LoginBody {
    email: String,
    password: String,
}

/// Signs in; sets the `refreshToken` cookie.
#[utoipa::path(post, path = "/api/auth/login", tag = TAG, request_body = LoginBody,
    responses((status = 200, body = LoginResponse)))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    jar: CookieJar,
    AppJson(body): AppJson<LoginBody>,
) -> AppResult<(CookieJar, Json<LoginResponse>)> {
    let wait = state.login_limits.admit(ip, &body.email)?;
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let session = service::login(&state, &body.email, &body.password)
        .await
        .inspect_err(|err| {
            if service::is_invalid_credentials(err) {
                state.login_limits.failed(&body.email);
            }
        })?;
    Ok((with_cookie(&state, jar, &session), Json(session)))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RefreshBody {
    refresh_token: Option<String>,
}

/// The cookie's token when there is one and the request's origin may use it
/// (see [`crate::http::Origins::cookies_honoured`]), else the body's.
fn presented_token(
    state: &AppState,
    headers: &HeaderMap,
    jar: &CookieJar,
    body: &[u8],
) -> AppResult<Option<String>> {
    let body: RefreshBody = optional_json(body)?;
    let cookie = Some(jar)
        .filter(|_| state.origins.cookies_honoured(headers))
        .and_then(|jar| jar.get(REFRESH_COOKIE))
        .map(|cookie| cookie.value().to_owned());
    Ok(cookie
        .filter(|token| !token.is_empty())
        .or_else(|| body.refresh_token.filter(|token| !token.is_empty())))
}

/// A refreshed access token.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Refreshed {
    access_token: String,
    token: String,
    refresh_token: String,
    expires_in: u64,
}

/// Trades the refresh token (the cookie, else the body's `refreshToken`) for
/// new tokens; the old refresh token stops working.
#[utoipa::path(post, path = "/api/auth/refresh", tag = TAG,
    request_body(content = Option<RefreshBody>, description = "optional when the cookie is sent"),
    responses((status = 200, body = Refreshed)))]
async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    body: Bytes,
) -> AppResult<(CookieJar, Json<Refreshed>)> {
    let token =
        presented_token(&state, &headers, &jar, &body)?.ok_or_else(|| AppError::Unauthorized {
            code: "INVALID_REFRESH_TOKEN",
            message: "Refresh token required".to_owned(),
        })?;
    let session = service::refresh(&state, &token).await?;
    let jar = with_cookie(&state, jar, &session);
    Ok((
        jar,
        Json(Refreshed {
            access_token: session.access_token,
            token: session.token,
            refresh_token: session.refresh_token,
            expires_in: session.expires_in,
        }),
    ))
}

#[derive(Serialize, ToSchema)]
struct LoggedOut {
    message: &'static str,
}

/// Revokes the refresh token, when one is presented, and clears the cookie.
#[utoipa::path(post, path = "/api/auth/logout", tag = TAG,
    request_body(content = Option<RefreshBody>, description = "optional"),
    responses((status = 200, body = LoggedOut)))]
async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    body: Bytes,
) -> AppResult<(CookieJar, Json<LoggedOut>)> {
    if let Some(token) = presented_token(&state, &headers, &jar, &body)? {
        service::revoke(&state, &token).await?;
    }
    let jar = jar.remove(Cookie::build(REFRESH_COOKIE).path("/api/auth"));
    Ok((
        jar,
        Json(LoggedOut {
            message: "Logged out",
        }),
    ))
}

#[derive(Serialize, ToSchema)]
struct Verified {
    valid: bool,
    user: UserView,
}

/// Whether the Bearer token is valid, and its user.
#[utoipa::path(get, path = "/api/auth/verify", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = Verified)))]
async fn verify(State(state): State<AppState>, caller: AuthUser) -> AppResult<Json<Verified>> {
    let user = service::current_user(&state, &caller).await?;
    Ok(Json(Verified { valid: true, user }))
}

const USERS_TAG: &str = "users";

/// A page of accounts.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AccountsQuery {
    /// Accounts on the page, 1 to 200 (default 200).
    limit: Option<u64>,
    /// The id of the last account of the previous page.
    after: Option<i32>,
}

/// Every account, by id, with whether it is active (admins only).
#[utoipa::path(get, path = "/api/users", tag = USERS_TAG, security(("bearer" = [])),
    params(AccountsQuery),
    responses((status = 200, body = Vec<AccountView>)))]
async fn list_accounts(
    State(state): State<AppState>,
    _: AdminUser,
    query: Result<Query<AccountsQuery>, QueryRejection>,
) -> AppResult<Json<Vec<AccountView>>> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(service::ACCOUNTS_PAGE_MAX);
    service::accounts(&state.db, query.after, limit)
        .await
        .map(Json)
}

/// Switches an account off (admins only, not their own): it cannot sign in,
/// and every sign-in it has ends at once (tokens refused, sockets dropped).
#[utoipa::path(post, path = "/api/users/{id}/deactivate", tag = USERS_TAG,
    security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, body = AccountView)))]
async fn deactivate(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    id: Result<Path<i32>, PathRejection>,
) -> AppResult<Json<AccountView>> {
    let Path(id) = id?;
    service::set_active(&state, &admin, id, false)
        .await
        .map(Json)
}

/// Switches an account on again (admins only); it signs in anew.
#[utoipa::path(post, path = "/api/users/{id}/reactivate", tag = USERS_TAG,
    security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, body = AccountView)))]
async fn reactivate(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    id: Result<Path<i32>, PathRejection>,
) -> AppResult<Json<AccountView>> {
    let Path(id) = id?;
    service::set_active(&state, &admin, id, true)
        .await
        .map(Json)
}
