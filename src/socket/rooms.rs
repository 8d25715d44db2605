//! Room names belong to the server. Each kind of room has a fixed prefix
//! without `:` that only server code chooses, and a client string can only
//! ever fill the key after the first `:`; rooms of which there is one (the
//! admins') have no `:` at all. A visitor who sends `sessionId: "admins"`
//! therefore names `livechat-session:admins`, never `livechat-admins`, and no
//! client string can name another socket's own room.

use std::borrow::Cow;

use socketioxide::socket::Sid;

/// A kind of room: a prefix chosen by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomKind(&'static str);

impl RoomKind {
    /// `prefix` is a constant of the server's, without `:`.
    pub const fn new(prefix: &'static str) -> Self {
        Self(prefix)
    }

    /// The room of this kind for `key` (which may come from a client).
    pub fn room(self, key: &str) -> Room {
        Room(Cow::Owned(format!("{}:{key}", self.0)))
    }

    /// The key of `room` when it is a room of this kind.
    pub fn key(self, room: &str) -> Option<&str> {
        room.strip_prefix(self.0)?.strip_prefix(':')
    }
}

/// A room name as the adapter sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Room(Cow<'static, str>);

impl Room {
    /// A room of which there is only one, such as the admins'; `name` is a
    /// constant of the server's, without `:`.
    pub const fn singleton(name: &'static str) -> Self {
        Self(Cow::Borrowed(name))
    }

    /// The room every socket joins, named after its id (as Node does).
    pub fn socket(sid: Sid) -> Self {
        Self(Cow::Owned(format!("{}:{sid}", SOCKET.0)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Room> for Cow<'static, str> {
    fn from(room: Room) -> Self {
        room.0
    }
}

const SOCKET: RoomKind = RoomKind::new("socket");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_cannot_reach_other_kinds() {
        let session = RoomKind::new("livechat-session");
        let admins = Room::singleton("livechat-admins");
        let sid = Sid::new();
        for key in [
            "admins",
            ":admins",
            "../admins",
            "livechat-admins",
            "",
            &sid.to_string(),
        ] {
            let room = session.room(key);
            assert_ne!(room, admins);
            assert_ne!(room, Room::socket(sid));
            assert!(room.as_str().starts_with("livechat-session:"));
        }
        assert!(Room::socket(Sid::new()).as_str().starts_with("socket:"));
        assert_eq!(session.key(session.room("a:b").as_str()), Some("a:b"));
        assert_eq!(session.key("livechat-sessionx:a"), None);
        assert_eq!(session.key(admins.as_str()), None);
    }
}
