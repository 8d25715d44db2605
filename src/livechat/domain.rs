//! Live-chat values that validate themselves: a [`SessionId`] and a
//! [`MessageText`] cannot exist unless they passed the checks, so handlers and
//! services never re-check strings. Both share their text: a clone, e.g. for
//! the live-chat writer's queue, copies no bytes.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::chat_message;
use serde::Serialize;
use socketioxide::socket::Sid;

use crate::{
    error::{AppError, AppResult},
    timefmt::iso8601,
};

const MAX_SESSION_ID_CHARS: usize = 128;
const MAX_IP_CHARS: usize = 64;
const MAX_USER_AGENT_CHARS: usize = 512;

/// A widget's session id: between `LIVECHAT_MIN_SESSION_ID_CHARS` (8) and 128
/// printable characters, without spaces or `/`. Anyone who knows it can read
/// the session, so short, guessable ids are refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(Arc<str>);

impl Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl SessionId {
    pub fn parse(raw: &str, min_chars: usize) -> AppResult<Self> {
        let chars = raw.chars().count();
        let valid = (min_chars.max(1)..=MAX_SESSION_ID_CHARS).contains(&chars)
            && raw.chars().all(|c| c.is_ascii_graphic() && c != '/');
        if valid {
            Ok(Self(raw.into()))
        } else {
            Err(AppError::Invalid {
                code: "INVALID_SESSION_ID",
                message: format!(
                    "sessionId must be {} to {MAX_SESSION_ID_CHARS} printable characters without spaces or '/'",
                    min_chars.max(1)
                ),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn shared(&self) -> Arc<str> {
        self.0.clone()
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The answer to an operation naming a session that does not exist.
pub fn session_not_found() -> AppError {
    AppError::not_found("SESSION_NOT_FOUND", "Chat session not found")
}

/// A message's text: trimmed, not empty, at most `LIVECHAT_MAX_MESSAGE_CHARS`,
/// without NUL characters (PostgreSQL refuses them in text, and one refused
/// row would fail every message committed with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(Arc<str>);

impl MessageText {
    pub fn parse(raw: &str, max_chars: usize) -> AppResult<Self> {
        let text = without_nul(raw.trim());
        let text = text.trim();
        if text.is_empty() {
            return Err(AppError::Invalid {
                code: "EMPTY_MESSAGE",
                message: "message must not be empty".to_owned(),
            });
        }
        if text.chars().count() > max_chars {
            return Err(AppError::Invalid {
                code: "MESSAGE_TOO_LONG",
                message: format!("message is longer than {max_chars} characters"),
            });
        }
        Ok(Self(text.into()))
    }

    /// Text the server writes itself (the hand-off notice, an AI answer).
    pub fn server(text: &str) -> Self {
        Self(without_nul(text).into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `text` with every NUL replaced by U+FFFD.
fn without_nul(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Where a widget connects from, recorded on the sessions it creates; both
/// are informational and cut to a sane length.
#[derive(Debug, Clone, Default)]
pub struct Visitor {
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

impl Visitor {
    pub fn new(ip_address: Option<String>, user_agent: Option<String>) -> Self {
        let cut = |value: Option<String>, max: usize| {
            value
                .map(|value| without_nul(&value).chars().take(max).collect::<String>())
                .filter(|value| !value.trim().is_empty())
        };
        Self {
            ip_address: cut(ip_address, MAX_IP_CHARS),
            user_agent: cut(user_agent, MAX_USER_AGENT_CHARS),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    User,
    Admin,
    Ai,
}

impl Sender {
    pub fn as_str(self) -> &'static str {
        match self {
            Sender::User => "user",
            Sender::Admin => "admin",
            Sender::Ai => "ai",
        }
    }
}

/// A message as clients see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LiveChatMessage)]
pub struct MessageView {
    pub id: i32,
    pub session_id: String,
    pub message: String,
    pub sender_type: String,
    #[serde(serialize_with = "iso8601")]
    pub timestamp: DateTime<Utc>,
    pub is_read: bool,
}

impl From<chat_message::Model> for MessageView {
    fn from(row: chat_message::Model) -> Self {
        Self {
            id: row.id,
            session_id: row.session_id,
            message: row.message,
            sender_type: row.sender_type,
            timestamp: row.timestamp,
            is_read: row.is_read,
        }
    }
}

/// The visitor sockets a session's replies go to, as its row records them
/// (`chat_sessions.visitor_sockets`: ids separated by spaces, newest last).
/// A socket is added in the transaction that reads what it missed, and a
/// reply's transaction reads the set back, so each reply reaches a returning
/// socket once: in its catch-up when stored before, live when stored after.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisitorSockets(Vec<Sid>);

impl VisitorSockets {
    /// Sockets kept at most; beyond, the oldest go first. Departures are
    /// recorded, so only sockets of killed nodes linger to be pushed out.
    pub const MAX: usize = 32;

    /// The column's value; ids that do not read as one are skipped.
    pub fn parse(column: Option<&str>) -> Self {
        Self(
            column
                .unwrap_or_default()
                .split(' ')
                .filter_map(|id| id.parse().ok())
                .collect(),
        )
    }

    /// The column's value: `None` for no socket.
    pub fn column(&self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        let ids: Vec<String> = self.0.iter().map(Sid::to_string).collect();
        Some(ids.join(" "))
    }

    /// With `sid` as the newest.
    pub fn with(mut self, sid: Sid) -> Self {
        self.0.retain(|other| *other != sid);
        self.0.push(sid);
        let excess = self.0.len().saturating_sub(Self::MAX);
        self.0.drain(..excess);
        self
    }

    pub fn without(mut self, sid: Sid) -> Self {
        self.0.retain(|other| *other != sid);
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = Sid> + '_ {
        self.0.iter().copied()
    }
}

/// A reply of the support side (an admin's, the AI's, a hand-off notice) as
/// stored, and the visitor sockets it goes to.
#[derive(Debug, Clone)]
pub struct Reply {
    pub row: MessageView,
    pub to: VisitorSockets,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn session_ids_are_long_enough_and_printable() {
        assert!(SessionId::parse("session_0123456789", 8).is_ok());
        for bad in [
            "",
            "a",
            "1234567",
            "has space x",
            "a/b/c/d/e",
            &"x".repeat(129),
            "ééééééééé",
        ] {
            let err = SessionId::parse(bad, 8).unwrap_err();
            assert_eq!(err.code(), "INVALID_SESSION_ID", "{bad:?}");
        }
    }

    #[test]
    fn visitor_sockets_round_trip_newest_last_and_bounded() {
        let sids: Vec<Sid> = (0..VisitorSockets::MAX + 3).map(|_| Sid::new()).collect();
        let mut set = VisitorSockets::parse(None);
        assert_eq!(set.column(), None);
        for sid in &sids {
            set = set.with(*sid);
        }
        set = set.with(sids[5]);
        let kept: Vec<Sid> = set.iter().collect();
        assert_eq!(kept.len(), VisitorSockets::MAX);
        assert_eq!(kept.last(), Some(&sids[5]));
        assert!(!kept.contains(&sids[0]), "the oldest went first");
        assert_eq!(VisitorSockets::parse(set.column().as_deref()), set);
        let fewer = set.without(sids[5]);
        assert!(!fewer.iter().any(|sid| sid == sids[5]));
        assert_eq!(
            VisitorSockets::parse(Some("not-a-sid  ")).column(),
            None,
            "unreadable ids are skipped"
        );
    }

    proptest! {
        #[test]
        fn any_string_is_a_session_id_or_a_clear_error(raw in ".*", min in 0usize..40) {
            match SessionId::parse(&raw, min) {
                Ok(id) => prop_assert_eq!(id.as_str(), raw.as_str()),
                Err(err) => prop_assert_eq!(err.code(), "INVALID_SESSION_ID"),
            }
        }

        #[test]
        fn any_string_is_a_message_or_a_clear_error(raw in "\\PC*", max in 1usize..50) {
            match MessageText::parse(&raw, max) {
                Ok(text) => {
                    prop_assert!(!text.as_str().is_empty());
                    prop_assert!(!text.as_str().contains('\0'));
                    prop_assert!(text.as_str().chars().count() <= max);
                }
                Err(err) => prop_assert!(matches!(err.code(), "EMPTY_MESSAGE" | "MESSAGE_TOO_LONG")),
            }
        }

        #[test]
        fn visitor_details_are_bounded(ip in ".*", agent in ".*") {
            let visitor = Visitor::new(Some(ip), Some(agent));
            prop_assert!(visitor.ip_address.map_or(0, |ip| ip.chars().count()) <= MAX_IP_CHARS);
            prop_assert!(visitor.user_agent.map_or(0, |a| a.chars().count()) <= MAX_USER_AGENT_CHARS);
        }
    }
}
