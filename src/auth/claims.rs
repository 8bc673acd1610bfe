//! What a token says: the room (or room pattern) it is for, what it may do there, who holds it and until when.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::engine::RoomId;
use crate::protocol::{Action, ClientMessage};

/// The JWT claims DriftDB reads. `aud` is checked by the verifier against `--auth-audience`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Expiry, seconds since the Unix epoch (required).
    pub exp: u64,
    /// Not before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// A room id, or a prefix pattern ending in `*` (`game-42-*`; `*` alone is every room).
    pub room: RoomPattern,
    /// What the holder may do.
    pub can: Vec<Capability>,
    /// The holder's identity, for the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// One thing a token may allow.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// `get`: subscribe and read stored streams.
    Read,
    /// `append`, `replace` and `compact` pushes.
    Write,
    /// Reliable `relay` pushes.
    Relay,
    /// Volatile relays (cursors and the like).
    Volatile,
    /// Connect with `?debug=true`, which shows every key of the room.
    Debug,
}

impl Capability {
    pub fn name(self) -> &'static str {
        match self {
            Capability::Read => "read",
            Capability::Write => "write",
            Capability::Relay => "relay",
            Capability::Volatile => "volatile",
            Capability::Debug => "debug",
        }
    }

    /// The capability a message needs, if any (`unsubscribe`, `ping`, `goodbye` and `auth` need none).
    pub fn needed_by(message: &ClientMessage) -> Option<Capability> {
        match message {
            ClientMessage::Push { action: Action::Relay, volatile: true, .. } => Some(Capability::Volatile),
            ClientMessage::Push { action: Action::Relay, .. } => Some(Capability::Relay),
            ClientMessage::Push { .. } => Some(Capability::Write),
            ClientMessage::Get { .. } => Some(Capability::Read),
            ClientMessage::Unsubscribe { .. }
            | ClientMessage::Ping { .. }
            | ClientMessage::Goodbye
            | ClientMessage::Auth { .. } => None,
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Capabilities(u8);

impl Capabilities {
    /// Everything: what every connection has when auth is off.
    pub const ALL: Capabilities = Capabilities(
        Capability::Read.bit()
            | Capability::Write.bit()
            | Capability::Relay.bit()
            | Capability::Volatile.bit()
            | Capability::Debug.bit(),
    );

    pub fn contains(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        Capabilities(iter.into_iter().fold(0, |bits, c| bits | c.bit()))
    }
}

/// The `room` claim: one room, or every room whose id starts with a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomPattern {
    Exact(String),
    Prefix(String),
}

impl RoomPattern {
    pub fn parse(text: &str) -> Self {
        match text.strip_suffix('*') {
            Some(prefix) => RoomPattern::Prefix(prefix.to_owned()),
            None => RoomPattern::Exact(text.to_owned()),
        }
    }

    pub fn matches(&self, room: &RoomId) -> bool {
        match self {
            RoomPattern::Exact(id) => id == room.as_str(),
            RoomPattern::Prefix(prefix) => room.as_str().starts_with(prefix.as_str()),
        }
    }
}

impl fmt::Display for RoomPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomPattern::Exact(id) => f.write_str(id),
            RoomPattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

impl Serialize for RoomPattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RoomPattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(RoomPattern::parse(&String::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(id: &str) -> RoomId {
        RoomId::parse(id).unwrap()
    }

    #[test]
    fn patterns_match_exact_ids_and_prefixes() {
        assert!(RoomPattern::parse("game-42").matches(&room("game-42")));
        assert!(!RoomPattern::parse("game-42").matches(&room("game-420")));
        assert!(RoomPattern::parse("game-42-*").matches(&room("game-42-lobby")));
        assert!(!RoomPattern::parse("game-42-*").matches(&room("game-43-lobby")));
        assert!(RoomPattern::parse("*").matches(&room("anything")));
        assert_eq!(RoomPattern::parse("game-42-*").to_string(), "game-42-*");
    }

    #[test]
    fn messages_need_their_capability() {
        let push = |action, volatile| ClientMessage::Push {
            key: "k".into(),
            value: crate::protocol::Value::from_tree(ciborium::Value::Null),
            action,
            volatile,
        };
        assert_eq!(Capability::needed_by(&push(Action::Append, false)), Some(Capability::Write));
        assert_eq!(Capability::needed_by(&push(Action::Compact { seq: 1 }, false)), Some(Capability::Write));
        assert_eq!(Capability::needed_by(&push(Action::Relay, false)), Some(Capability::Relay));
        assert_eq!(Capability::needed_by(&push(Action::Relay, true)), Some(Capability::Volatile));
        let get = ClientMessage::Get { key: "k".into(), replay: crate::protocol::Replay::None };
        assert_eq!(Capability::needed_by(&get), Some(Capability::Read));
        assert_eq!(Capability::needed_by(&ClientMessage::Ping { nonce: None }), None);
        let set: Capabilities = [Capability::Read, Capability::Debug].into_iter().collect();
        assert!(set.contains(Capability::Read) && set.contains(Capability::Debug));
        assert!(!set.contains(Capability::Write));
        assert!(Capabilities::ALL.contains(Capability::Volatile));
    }
}
