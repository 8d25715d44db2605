//! Accounts logic behind the auth routes: logging in, issuing token pairs, and
//! the start-up duties (signing secret, first admin).

use chrono::Utc;
use entity::{refresh_token, user};
use rand::{Rng, distr::Alphanumeric};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{AuthUser, hash_password, verify_password};
use crate::{
    config::Config,
    error::{AppError, AppResult},
    state::AppState,
    store,
};

const JWT_SECRET_SETTING: &str = "jwt_secret";

pub fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

pub fn sha256_hex(input: &str) -> String {
    Sha256::digest(input.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// `JWT_SECRET` when set; else the secret stored in the database, generated on
/// the first start, so tokens survive restarts and are valid on every node.
pub async fn load_signing_secret(db: &DatabaseConnection, config: &Config) -> AppResult<String> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(secret.clone());
    }
    Ok(store::setting_or_insert(db, JWT_SECRET_SETTING, random_token(64)).await?)
}

/// Makes sure the live-chat admin exists. With `ADMIN_PASSWORD` the account is
/// created or its password set to it; without, an admin is created only when
/// there is none, with a random password printed once.
pub async fn bootstrap_admin(db: &DatabaseConnection, config: &Config) -> AppResult<()> {
    let email = config.admin_email.trim().to_lowercase();
    let existing = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(db)
        .await?;
    match (&config.admin_password, existing) {
        (Some(password), Some(admin)) => {
            if !admin.is_admin
                || !verify_password(password.clone(), admin.password_hash.clone()).await?
            {
                let mut admin: user::ActiveModel = admin.into();
                admin.password_hash = Set(hash_password(password.clone()).await?);
                admin.is_admin = Set(true);
                admin.updated_at = Set(Utc::now());
                admin.update(db).await?;
                tracing::info!(%email, "admin password set from ADMIN_PASSWORD");
            }
        }
        (Some(password), None) => {
            create_user(db, &email, "Admin", "Administrator", password.clone(), true).await?;
            tracing::info!(%email, "admin account created from ADMIN_EMAIL/ADMIN_PASSWORD");
        }
        (None, _) => {
            let any_admin = user::Entity::find()
                .filter(user::Column::IsAdmin.eq(true))
                .one(db)
                .await?;
            if any_admin.is_none() {
                let password = random_token(20);
                create_user(db, &email, "Admin", "Administrator", password.clone(), true).await?;
                tracing::warn!(
                    %email, %password,
                    "created the admin with a random password (shown once; set ADMIN_PASSWORD to choose one)"
                );
            }
        }
    }
    Ok(())
}

pub async fn create_user(
    db: &DatabaseConnection,
    email: &str,
    name: &str,
    role: &str,
    password: String,
    is_admin: bool,
) -> AppResult<user::Model> {
    let now = Utc::now();
    let row = user::ActiveModel {
        email: Set(email.trim().to_lowercase()),
        name: Set(name.to_owned()),
        role: Set(role.to_owned()),
        password_hash: Set(hash_password(password).await?),
        is_admin: Set(is_admin),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    Ok(row.insert(db).await?)
}

/// The public part of a user row.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: i32,
    pub email: String,
    pub name: String,
    pub role: String,
    pub is_admin: bool,
}

impl From<user::Model> for UserView {
    fn from(user: user::Model) -> Self {
        Self {
            id: user.id,
            email: user.email,
            name: user.name,
            role: user.role,
            is_admin: user.is_admin,
        }
    }
}

/// What login (and registration) answer: the access token under both names
/// clients use, a refresh token, and the user.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    pub token: String,
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user: UserView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'static str>,
}

/// Issues an access token and a stored refresh token for `user`.
pub async fn issue_session(state: &AppState, user: user::Model) -> AppResult<LoginResponse> {
    let access = state
        .tokens
        .issue_access(user.id, &user.email, user.is_admin)?;
    let refresh = random_token(48);
    let now = Utc::now();
    refresh_token::ActiveModel {
        user_id: Set(user.id),
        token_hash: Set(sha256_hex(&refresh)),
        expires_at: Set(
            now + chrono::Duration::days(i64::from(state.config.refresh_token_ttl_days))
        ),
        revoked_at: Set(None),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&state.db)
    .await?;
    Ok(LoginResponse {
        token: access.clone(),
        access_token: access,
        refresh_token: refresh,
        expires_in: state.tokens.access_ttl().as_secs(),
        user: user.into(),
        message: None,
    })
}

fn invalid_credentials() -> AppError {
    AppError::Unauthorized {
        code: "INVALID_CREDENTIALS",
        message: "Invalid email or password".to_owned(),
    }
}

pub async fn login(state: &AppState, email: &str, password: &str) -> AppResult<LoginResponse> {
    let found = user::Entity::find()
        .filter(user::Column::Email.eq(email.trim().to_lowercase()))
        .one(&state.db)
        .await?;
    let Some(found) = found else {
        // Spend the same time as a real check, so timing does not reveal which
        // emails have accounts.
        verify_password(password.to_owned(), DUMMY_HASH.to_owned()).await?;
        return Err(invalid_credentials());
    };
    if !verify_password(password.to_owned(), found.password_hash.clone()).await? {
        return Err(invalid_credentials());
    }
    let mut session = issue_session(state, found).await?;
    session.message = Some("Login successful");
    Ok(session)
}

fn invalid_refresh() -> AppError {
    AppError::Unauthorized {
        code: "INVALID_REFRESH_TOKEN",
        message: "Invalid or expired refresh token".to_owned(),
    }
}

/// Checks what a new account needs: an email, a name, a password of 8+ characters.
fn validate_registration(email: &str, name: &str, role: &str, password: &str) -> AppResult<()> {
    let email_ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !email.contains(char::is_whitespace)
        });
    if !email_ok {
        return Err(AppError::invalid("email must be a valid email address"));
    }
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(AppError::invalid("name must be 1 to 100 characters"));
    }
    if role.chars().count() > 100 {
        return Err(AppError::invalid("role must be at most 100 characters"));
    }
    if !(8..=256).contains(&password.chars().count()) {
        return Err(AppError::invalid("password must be 8 to 256 characters"));
    }
    Ok(())
}

/// Creates an account (never an admin) and signs it in.
pub async fn register(
    state: &AppState,
    email: &str,
    name: &str,
    role: &str,
    password: &str,
) -> AppResult<LoginResponse> {
    validate_registration(email, name, role, password)?;
    let email = email.trim().to_lowercase();
    let taken = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&state.db)
        .await?
        .is_some();
    let conflict = || AppError::Conflict {
        code: "EMAIL_TAKEN",
        message: "An account with that email already exists".to_owned(),
    };
    if taken {
        return Err(conflict());
    }
    // A racing registration loses on the unique index.
    let created = create_user(
        &state.db,
        &email,
        name.trim(),
        role.trim(),
        password.to_owned(),
        false,
    )
    .await
    .map_err(|err| match err {
        AppError::Database(sea_orm::DbErr::Query(_) | sea_orm::DbErr::Exec(_)) => conflict(),
        other => other,
    })?;
    issue_session(state, created).await
}

/// Trades a refresh token for a new access token and a new refresh token; the
/// old one stops working (rotation), so a stolen token works once at most.
pub async fn refresh(state: &AppState, token: &str) -> AppResult<LoginResponse> {
    let now = Utc::now();
    let stored = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(sha256_hex(token)))
        .one(&state.db)
        .await?
        .filter(|row| row.revoked_at.is_none() && row.expires_at > now)
        .ok_or_else(invalid_refresh)?;
    // Revoking is conditional, so two refreshes with one token cannot both win.
    let revoked = refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(Some(now)),
        )
        .filter(refresh_token::Column::Id.eq(stored.id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&state.db)
        .await?;
    if revoked.rows_affected == 0 {
        return Err(invalid_refresh());
    }
    let owner = user::Entity::find_by_id(stored.user_id)
        .one(&state.db)
        .await?
        .ok_or_else(invalid_refresh)?;
    issue_session(state, owner).await
}

/// Revokes a refresh token; unknown tokens are ignored (logging out twice is fine).
pub async fn revoke(state: &AppState, token: &str) -> AppResult<()> {
    refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(Some(Utc::now())),
        )
        .filter(refresh_token::Column::TokenHash.eq(sha256_hex(token)))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&state.db)
        .await?;
    Ok(())
}

/// The current row of a token's user; a deleted user's tokens stop working.
pub async fn current_user(state: &AppState, caller: &AuthUser) -> AppResult<UserView> {
    user::Entity::find_by_id(caller.id)
        .one(&state.db)
        .await?
        .map(UserView::from)
        .ok_or_else(|| AppError::unauthorized("User no longer exists"))
}

/// A well-formed argon2id hash (default parameters) that no known password matches.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0dtxz2VyTRqCJXcBSeJ8bN3vUcN7ZxE0y8nMBsS2RmU";
