//! JWT access tokens (HS256). The same code reads tokens for HTTP routes and
//! socket handshakes.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub email: String,
    pub admin: bool,
    pub iat: u64,
    pub exp: u64,
    /// The sign-in (refresh-token family) the token belongs to: signing out
    /// ends it, and its access tokens stop working with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
}

#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("access_ttl", &self.access_ttl)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    pub fn new(secret: &[u8], access_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // A little slack for clock skew between nodes; not the library's 60 s.
        validation.leeway = 2;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
        }
    }

    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// An access token of `user_id` for the sign-in `family`.
    pub fn issue_access(
        &self,
        user_id: i32,
        email: &str,
        admin: bool,
        family: &str,
    ) -> Result<String, AppError> {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let claims = Claims {
            sub: user_id.to_string(),
            email: email.to_owned(),
            admin,
            iat: now,
            exp: now + self.access_ttl.as_secs(),
            fam: Some(family.to_owned()),
        };
        self.sign(&claims)
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, AppError> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|err| AppError::Internal(format!("signing a token: {err}")))
    }

    pub fn verify_access(&self, token: &str) -> Result<Claims, AppError> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AppError::Unauthorized {
                    code: "TOKEN_EXPIRED",
                    message: "Token expired".to_owned(),
                },
                _ => AppError::Unauthorized {
                    code: "INVALID_TOKEN",
                    message: "Invalid token".to_owned(),
                },
            })
    }
}
