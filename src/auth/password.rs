//! Argon2id password hashing, run on the blocking pool: a hash takes tens of
//! milliseconds of CPU, which must not stall the async workers.

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};

use crate::error::AppError;

pub async fn hash_password(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|err| AppError::Internal(format!("hashing a password: {err}")))
    })
    .await
    .map_err(|err| AppError::Internal(err.to_string()))?
}

/// False for a wrong password and for a malformed stored hash alike.
pub async fn verify_password(password: String, hash: String) -> Result<bool, AppError> {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .map_err(|err| AppError::Internal(err.to_string()))
}
