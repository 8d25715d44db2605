//! Authentication as axum extractors: a handler that takes an [`AuthUser`]
//! needs a valid Bearer token, one that takes an [`AdminUser`] an admin's
//! whose admin flag still holds in the database.

use axum::{extract::FromRequestParts, http::request::Parts};

use super::Claims;
use crate::{error::AppError, state::AppState};

/// The caller, from a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub id: i32,
    pub email: String,
    pub is_admin: bool,
    /// When the token expires, in seconds since the Unix epoch.
    pub expires_at: u64,
    /// The sign-in the token belongs to (none in tokens from before sign-ins
    /// were named).
    pub sign_in: Option<String>,
}

impl AuthUser {
    pub fn token_expired(&self) -> bool {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        now >= self.expires_at
    }
}

impl From<Claims> for AuthUser {
    fn from(claims: Claims) -> Self {
        Self {
            // Tokens are only ever signed with numeric ids.
            id: claims.sub.parse().unwrap_or_default(),
            email: claims.email,
            is_admin: claims.admin,
            expires_at: claims.exp,
            sign_in: claims.fam,
        }
    }
}

/// An authenticated admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminUser(pub AuthUser);

fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token =
            bearer_token(parts).ok_or_else(|| AppError::unauthorized("Access token required"))?;
        authenticate(state, token).await
    }
}

/// The user of a valid access token whose sign-in still holds.
pub async fn authenticate(state: &AppState, token: &str) -> Result<AuthUser, AppError> {
    let user = AuthUser::from(state.tokens.verify_access(token)?);
    if let Some(sign_in) = &user.sign_in
        && !state.sign_ins.still_valid(&state.db, sign_in).await?
    {
        return Err(super::service::signed_out());
    }
    Ok(user)
}

/// An optional Bearer token: absent is `None`, present but invalid is an error.
pub async fn optional_user(parts: &Parts, state: &AppState) -> Result<Option<AuthUser>, AppError> {
    match bearer_token(parts) {
        Some(token) => authenticate(state, token).await.map(Some),
        None => Ok(None),
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        let forbidden = || AppError::Forbidden {
            code: "FORBIDDEN",
            message: "Admin access required".to_owned(),
        };
        if !user.is_admin || !state.admin_flags.still_admin(&state.db, user.id).await? {
            return Err(forbidden());
        }
        Ok(AdminUser(user))
    }
}
