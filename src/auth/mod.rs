//! Authentication shared by every flow: password hashing, JWT access tokens,
//! refresh tokens, the admin bootstrap, the login/verify routes, and the two
//! ways a caller proves who it is — the [`AuthUser`]/[`AdminUser`] axum
//! extractors and the socket handshake ([`identify_socket`]). Both read
//! tokens through [`TokenKeys`].

mod extract;
mod limits;
mod password;
mod routes;
mod service;
mod token;

pub use extract::{AdminUser, AuthUser, authenticate, optional_user};
pub use limits::LoginLimits;
pub use password::Passwords;
pub use routes::router;
pub use service::{
    AdminFlags, LoginResponse, SignIns, UserView, bootstrap_admin, create_user, issue_session,
    load_signing_secret, on_signal, random_token, sha256_hex,
};
pub use token::{Claims, TokenKeys};

/// Who is on the other end of a socket, decided in the handshake; an admin
/// whose token expires is demoted to a visitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No valid token: a widget visitor.
    Visitor,
    User(AuthUser),
}

impl Identity {
    pub fn is_admin(&self) -> bool {
        matches!(self, Identity::User(user) if user.is_admin)
    }

    pub fn user(&self) -> Option<&AuthUser> {
        match self {
            Identity::Visitor => None,
            Identity::User(user) => Some(user),
        }
    }
}

/// Reads `auth.token` of a socket handshake (`io(url, { auth: { token } })`).
/// A missing, expired or forged token makes a visitor, never an error: widgets
/// connect without one.
pub fn identify_socket(keys: &TokenKeys, auth: Option<&serde_json::Value>) -> Identity {
    let token = auth
        .and_then(|auth| auth.get("token"))
        .and_then(|token| token.as_str())
        .map(|token| token.strip_prefix("Bearer ").unwrap_or(token));
    match token.map(|token| keys.verify_access(token)) {
        Some(Ok(claims)) => Identity::User(AuthUser::from(claims)),
        _ => Identity::Visitor,
    }
}

/// [`identify_socket`], where a token whose sign-in ended (or cannot be
/// checked now) makes a visitor too.
pub async fn identify_handshake(
    state: &crate::state::AppState,
    auth: Option<&serde_json::Value>,
) -> Identity {
    let identity = identify_socket(&state.tokens, auth);
    if let Identity::User(user) = &identity
        && let Some(sign_in) = &user.sign_in
        && !matches!(
            state.sign_ins.still_valid(&state.db, sign_in).await,
            Ok(true)
        )
    {
        return Identity::Visitor;
    }
    identity
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proptest_json::any_json;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_handshake_auth_is_a_visitor_unless_it_carries_a_valid_token(auth in any_json()) {
            let keys = TokenKeys::new(b"a secret of the test", std::time::Duration::from_secs(60));
            prop_assert_eq!(identify_socket(&keys, Some(&auth)), Identity::Visitor);
        }
    }
}
