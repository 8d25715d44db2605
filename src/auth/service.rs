//! Accounts logic behind the auth routes: logging in, issuing token pairs, and
//! the start-up duties (signing secret, first admin).

use std::time::{Duration, Instant};

use chrono::Utc;
use dashmap::DashMap;
use entity::{refresh_token, user};
use rand::{Rng, distr::Alphanumeric};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{AuthUser, Passwords};
use crate::{
    cluster::{self, Signal},
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

/// Whether users whose tokens claim admin rights still have them: the flag is
/// read from the database at most every `ADMIN_RECHECK_SECS` per user, so a
/// demoted admin loses access within that time, not at token expiry.
pub struct AdminFlags {
    ttl: Duration,
    /// Only users whose tokens claim admin rights land here: as many entries
    /// as admin accounts.
    known: DashMap<i32, (bool, Instant)>,
}

impl AdminFlags {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            known: DashMap::new(),
        }
    }

    pub async fn still_admin(&self, db: &DatabaseConnection, user_id: i32) -> AppResult<bool> {
        if let Some(entry) = self.known.get(&user_id)
            && entry.1.elapsed() < self.ttl
        {
            return Ok(entry.0);
        }
        let is_admin = user::Entity::find_by_id(user_id)
            .one(db)
            .await?
            .is_some_and(|user| user.is_admin && user.deactivated_at.is_none());
        self.known.insert(user_id, (is_admin, Instant::now()));
        Ok(is_admin)
    }
}

/// Whether sign-ins (refresh-token families, the `fam` claim of their access
/// tokens) still hold: read from the database at most every `ttl` per
/// sign-in, and known at once when this node, or another by signal, ends one.
pub struct SignIns {
    ttl: Duration,
    known: DashMap<String, (bool, Instant)>,
}

/// Sign-ins [`SignIns`] remembers before it starts over (each costs a few
/// dozen bytes; only valid tokens of real sign-ins land here).
const SIGN_INS_REMEMBERED: usize = 100_000;

impl SignIns {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            known: DashMap::new(),
        }
    }

    /// Whether the sign-in still holds: none of its refresh tokens was revoked
    /// other than by a rotation (a sign-out or a detected reuse revokes them all).
    pub async fn still_valid(&self, db: &DatabaseConnection, sign_in: &str) -> AppResult<bool> {
        if let Some(entry) = self.known.get(sign_in)
            && (!entry.0 || entry.1.elapsed() < self.ttl)
        {
            return Ok(entry.0);
        }
        let ended = refresh_token::Entity::find()
            .filter(refresh_token::Column::FamilyId.eq(sign_in))
            .filter(refresh_token::Column::RevokedAt.is_not_null())
            .filter(refresh_token::Column::RotatedAt.is_null())
            .one(db)
            .await?
            .is_some();
        self.remember(sign_in, !ended);
        Ok(!ended)
    }

    /// The sign-in ended (here or on another node).
    pub fn ended(&self, sign_in: &str) {
        self.remember(sign_in, false);
    }

    /// Forgets what was read: another node's signals may have been missed.
    pub fn forget_all(&self) {
        self.known.clear();
    }

    fn remember(&self, sign_in: &str, valid: bool) {
        if self.known.len() >= SIGN_INS_REMEMBERED {
            self.known.clear();
        }
        self.known
            .insert(sign_in.to_owned(), (valid, Instant::now()));
    }
}

/// The answer to a token whose sign-in ended.
pub fn signed_out() -> AppError {
    AppError::Unauthorized {
        code: "TOKEN_REVOKED",
        message: "This sign-in has ended; sign in again".to_owned(),
    }
}

/// Signal topic: another node ended a sign-in.
const SIGN_IN_ENDED: &str = "auth.sign_in_ended";

/// What another node told this one.
pub fn on_signal(state: &AppState, signal: &Signal) {
    match signal.topic.as_str() {
        SIGN_IN_ENDED => {
            if let Some(sign_in) = signal.body.get("signIn").and_then(|id| id.as_str()) {
                state.sign_ins.ended(sign_in);
                crate::socket::disconnect_sign_in(&state.hub, sign_in);
            }
        }
        cluster::RESYNC => state.sign_ins.forget_all(),
        _ => {}
    }
}

/// Makes sure the live-chat admin exists. With `ADMIN_PASSWORD` the account is
/// created or its password set to it; without, an admin is created only when
/// there is none, with a random password, returned to be printed once (when
/// the server knows where it listens).
pub async fn bootstrap_admin(
    db: &DatabaseConnection,
    config: &Config,
    passwords: &Passwords,
) -> AppResult<Option<String>> {
    let email = config.admin_email.trim().to_lowercase();
    let existing = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(db)
        .await?;
    match (&config.admin_password, existing) {
        (Some(password), Some(admin)) => {
            if !admin.is_admin
                || admin.deactivated_at.is_some()
                || !passwords
                    .verify(password.clone(), &admin.password_hash)
                    .await?
            {
                let mut admin: user::ActiveModel = admin.into();
                admin.password_hash = Set(passwords.hash(password.clone()).await?);
                admin.is_admin = Set(true);
                admin.deactivated_at = Set(None);
                admin.updated_at = Set(Utc::now());
                admin.update(db).await?;
                tracing::info!(%email, "admin password set from ADMIN_PASSWORD");
            }
        }
        (Some(password), None) => {
            let hash = passwords.hash(password.clone()).await?;
            create_user(db, &email, "Admin", "Administrator", hash, true).await?;
            tracing::info!(%email, "admin account created from ADMIN_EMAIL/ADMIN_PASSWORD");
        }
        (None, _) => {
            let any_admin = user::Entity::find()
                .filter(user::Column::IsAdmin.eq(true))
                .one(db)
                .await?;
            if any_admin.is_none() {
                let password = random_token(20);
                let hash = passwords.hash(password.clone()).await?;
                create_user(db, &email, "Admin", "Administrator", hash, true).await?;
                return Ok(Some(password));
            }
        }
    }
    Ok(None)
}

/// Stores a user whose password is already hashed.
pub async fn create_user(
    db: &DatabaseConnection,
    email: &str,
    name: &str,
    role: &str,
    password_hash: String,
    is_admin: bool,
) -> AppResult<user::Model> {
    let now = Utc::now();
    let row = user::ActiveModel {
        email: Set(email.trim().to_lowercase()),
        name: Set(name.to_owned()),
        role: Set(role.to_owned()),
        password_hash: Set(password_hash),
        is_admin: Set(is_admin),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    Ok(row.insert(db).await?)
}

/// The public part of a user row.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

/// Issues an access token and a stored refresh token for `user`: the first of
/// a new family at sign-in, the next of `family` at a refresh.
pub async fn issue_session(
    state: &AppState,
    user: user::Model,
    family: Option<String>,
) -> AppResult<LoginResponse> {
    let family = family.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let access = state
        .tokens
        .issue_access(user.id, &user.email, user.is_admin, &family)?;
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
        family_id: Set(Some(family)),
        rotated_at: Set(None),
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

const INVALID_CREDENTIALS: &str = "INVALID_CREDENTIALS";

fn invalid_credentials() -> AppError {
    AppError::Unauthorized {
        code: INVALID_CREDENTIALS,
        message: "Invalid email or password".to_owned(),
    }
}

/// Whether a sign-in failed on its email or password (not on the database).
pub fn is_invalid_credentials(err: &AppError) -> bool {
    matches!(err, AppError::Unauthorized { code, .. } if *code == INVALID_CREDENTIALS)
}

pub async fn login(state: &AppState, email: &str, password: &str) -> AppResult<LoginResponse> {
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(invalid_credentials());
    }
    let found = user::Entity::find()
        .filter(user::Column::Email.eq(email.trim().to_lowercase()))
        .one(&state.db)
        .await?;
    let Some(found) = found else {
        // Spend the same time as a real check, so timing does not reveal which
        // emails have accounts.
        state.passwords.verify_nothing(password.to_owned()).await?;
        return Err(invalid_credentials());
    };
    if !state
        .passwords
        .verify(password.to_owned(), &found.password_hash)
        .await?
    {
        return Err(invalid_credentials());
    }
    if found.deactivated_at.is_some() {
        return Err(deactivated());
    }
    let mut session = issue_session(state, found, None).await?;
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
    if !(8..=MAX_PASSWORD_CHARS).contains(&password.chars().count()) {
        return Err(AppError::invalid(format!(
            "password must be 8 to {MAX_PASSWORD_CHARS} characters"
        )));
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
    let hash = state.passwords.hash(password.to_owned()).await?;
    let created = create_user(&state.db, &email, name.trim(), role.trim(), hash, false)
        .await
        .map_err(|err| match err {
            AppError::Database(sea_orm::DbErr::Query(_) | sea_orm::DbErr::Exec(_)) => conflict(),
            other => other,
        })?;
    issue_session(state, created, None).await
}

/// Trades a refresh token for a new access token and the next refresh token
/// of its family; the presented one stops working (rotation). Presenting a
/// token that was already rotated means it was copied: the whole family is
/// revoked, so the thief's newer token stops working too.
pub async fn refresh(state: &AppState, token: &str) -> AppResult<LoginResponse> {
    let now = Utc::now();
    let stored = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(sha256_hex(token)))
        .one(&state.db)
        .await?
        .ok_or_else(invalid_refresh)?;
    if stored.rotated_at.is_some() {
        revoke_family(state, &stored).await?;
        tracing::warn!(
            user_id = stored.user_id,
            "a rotated refresh token was reused; its family is revoked"
        );
        return Err(refresh_reused());
    }
    if stored.revoked_at.is_some() || stored.expires_at <= now {
        return Err(invalid_refresh());
    }
    // Rotating is conditional, so of two refreshes with one token only one wins;
    // the other presented a rotated token.
    let rotated = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Some(now)))
        .col_expr(refresh_token::Column::RotatedAt, Expr::value(Some(now)))
        .filter(refresh_token::Column::Id.eq(stored.id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&state.db)
        .await?;
    if rotated.rows_affected == 0 {
        revoke_family(state, &stored).await?;
        return Err(refresh_reused());
    }
    let owner = user::Entity::find_by_id(stored.user_id)
        .one(&state.db)
        .await?
        .filter(|owner| owner.deactivated_at.is_none())
        .ok_or_else(invalid_refresh)?;
    let family = stored.family_id.unwrap_or_else(|| stored.id.to_string());
    issue_session(state, owner, Some(family)).await
}

fn refresh_reused() -> AppError {
    AppError::Unauthorized {
        code: "INVALID_REFRESH_TOKEN",
        message: "This refresh token was already used; sign in again".to_owned(),
    }
}

/// Revokes every live token of `token`'s family; its access tokens stop
/// working on every node and its sockets are disconnected.
async fn revoke_family(state: &AppState, token: &refresh_token::Model) -> AppResult<()> {
    let family = match &token.family_id {
        Some(family) => Condition::all().add(refresh_token::Column::FamilyId.eq(family.as_str())),
        None => Condition::all().add(refresh_token::Column::Id.eq(token.id)),
    };
    let ended = token.family_id.clone();
    refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::RevokedAt,
            Expr::value(Some(Utc::now())),
        )
        .filter(family)
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&state.db)
        .await?;
    if let Some(sign_in) = ended {
        announce_ended(state, &sign_in);
    }
    Ok(())
}

/// A sign-in ended: its access tokens stop working and its sockets are
/// disconnected, here and, by signal, on every other node.
fn announce_ended(state: &AppState, sign_in: &str) {
    state.sign_ins.ended(sign_in);
    crate::socket::disconnect_sign_in(&state.hub, sign_in);
    state
        .cluster
        .publish(SIGN_IN_ENDED, serde_json::json!({ "signIn": sign_in }));
}

fn deactivated() -> AppError {
    AppError::Forbidden {
        code: "ACCOUNT_DEACTIVATED",
        message: "This account is deactivated; ask an admin".to_owned(),
    }
}

/// An account as admins manage it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    #[serde(flatten)]
    pub user: UserView,
    pub active: bool,
    pub created_at: chrono::DateTime<Utc>,
}

impl From<user::Model> for AccountView {
    fn from(user: user::Model) -> Self {
        Self {
            active: user.deactivated_at.is_none(),
            created_at: user.created_at,
            user: user.into(),
        }
    }
}

/// Accounts a page of the list holds at most.
pub const ACCOUNTS_PAGE_MAX: u64 = 200;

/// Accounts by id, after `after` (a cursor: the last id of the previous page).
pub async fn accounts(
    db: &DatabaseConnection,
    after: Option<i32>,
    limit: u64,
) -> AppResult<Vec<AccountView>> {
    let mut query = user::Entity::find().order_by_asc(user::Column::Id);
    if let Some(after) = after {
        query = query.filter(user::Column::Id.gt(after));
    }
    Ok(query
        .limit(limit.clamp(1, ACCOUNTS_PAGE_MAX))
        .all(db)
        .await?
        .into_iter()
        .map(AccountView::from)
        .collect())
}

/// An admin switches account `id` off (`active: false`) or on again. Off, it
/// cannot sign in or refresh, and every sign-in it had ends at once on every
/// node: its access tokens are refused and its sockets disconnected. Admins
/// cannot switch themselves off, so the installation keeps one who can undo it.
pub async fn set_active(
    state: &AppState,
    admin: &AuthUser,
    id: i32,
    active: bool,
) -> AppResult<AccountView> {
    if id == admin.id && !active {
        return Err(AppError::Invalid {
            code: "CANNOT_DEACTIVATE_SELF",
            message: "Admins cannot deactivate their own account".to_owned(),
        });
    }
    let now = Utc::now();
    let found = user::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| AppError::not_found("USER_NOT_FOUND", "No such user"))?;
    let mut row: user::ActiveModel = found.into();
    row.deactivated_at = Set((!active).then_some(now));
    row.updated_at = Set(now);
    let updated = row.update(&state.db).await?;
    if !active {
        end_sign_ins(state, id).await?;
    }
    Ok(updated.into())
}

/// Ends every sign-in of user `id`.
async fn end_sign_ins(state: &AppState, id: i32) -> AppResult<()> {
    let live = || {
        Condition::all()
            .add(refresh_token::Column::UserId.eq(id))
            .add(refresh_token::Column::RevokedAt.is_null())
    };
    let families: Vec<Option<String>> = refresh_token::Entity::find()
        .select_only()
        .column(refresh_token::Column::FamilyId)
        .filter(live())
        .distinct()
        .into_tuple()
        .all(&state.db)
        .await?;
    refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::RevokedAt,
            Expr::value(Some(Utc::now())),
        )
        .filter(live())
        .exec(&state.db)
        .await?;
    for sign_in in families.into_iter().flatten() {
        announce_ended(state, &sign_in);
    }
    Ok(())
}

/// Signs out: revokes the token's family (every token of that sign-in).
/// Unknown tokens are ignored (logging out twice is fine).
pub async fn revoke(state: &AppState, token: &str) -> AppResult<()> {
    let stored = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(sha256_hex(token)))
        .one(&state.db)
        .await?;
    if let Some(stored) = stored {
        revoke_family(state, &stored).await?;
    }
    Ok(())
}

/// The current row of a token's user; a deleted user's tokens stop working.
pub async fn current_user(state: &AppState, caller: &AuthUser) -> AppResult<UserView> {
    user::Entity::find_by_id(caller.id)
        .one(&state.db)
        .await?
        .filter(|user| user.deactivated_at.is_none())
        .map(UserView::from)
        .ok_or_else(|| AppError::unauthorized("User no longer exists"))
}

/// Longer passwords are refused before hashing.
const MAX_PASSWORD_CHARS: usize = 256;
