//! Room ids: the only credential of a room, so generated ids carry 128 bits from the OS RNG.

use std::fmt;
use std::sync::Arc;

/// The longest id accepted in a URL.
pub const MAX_ROOM_ID_LEN: usize = 64;

/// A well-formed room id: 1 to 64 characters of `[A-Za-z0-9_-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoomId(Arc<str>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed room id: use 1 to {MAX_ROOM_ID_LEN} characters from A-Z, a-z, 0-9, '-' and '_'")]
pub struct InvalidRoomId;

impl RoomId {
    /// Parses an id from a URL path segment.
    pub fn parse(text: &str) -> Result<Self, InvalidRoomId> {
        let well_formed = !text.is_empty()
            && text.len() <= MAX_ROOM_ID_LEN
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if well_formed { Ok(RoomId(text.into())) } else { Err(InvalidRoomId) }
    }

    /// A fresh unguessable id: 128 random bits as 32 lowercase hex digits.
    pub fn random() -> Self {
        RoomId(format!("{:032x}", random_u128()).into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 128 bits from the operating system's RNG.
pub(crate) fn random_u128() -> u128 {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    u128::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_well_formed_ids_only() {
        assert!(RoomId::parse("abc_DEF-123").is_ok());
        assert!(RoomId::parse(&"a".repeat(MAX_ROOM_ID_LEN)).is_ok());
        for bad in ["", "a/b", "a b", "é", &"a".repeat(MAX_ROOM_ID_LEN + 1)] {
            assert_eq!(RoomId::parse(bad), Err(InvalidRoomId), "{bad:?}");
        }
    }

    #[test]
    fn random_ids_are_distinct_and_well_formed() {
        let a = RoomId::random();
        let b = RoomId::random();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert_eq!(RoomId::parse(a.as_str()), Ok(a));
    }
}
