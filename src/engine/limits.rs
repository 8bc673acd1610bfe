//! Capacity limits the engine enforces. Transport-level limits (message size, rates, idle timeout) live with the
//! transports; these are the ones only the engine can count.

use std::time::Duration;

/// Engine limits; every one is configurable from the command line (see `ServerConfig`).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Keys a room may hold (stored or subscribed). Beyond it, a push or get naming a new key gets an `error`.
    pub max_keys_per_room: usize,
    /// Bytes a room may store: values, keys and per-entry overhead. Beyond it, an append or replace gets an `error`
    /// and stores nothing.
    pub max_room_bytes: usize,
    /// Connections in one room; the next one is closed with 4003.
    pub max_connections_per_room: usize,
    /// Connections in the whole server; the next one is closed with 4004.
    pub max_connections: usize,
    /// Rooms in the whole server; creating one more is refused (503, or close 4005 on connect).
    pub max_rooms: usize,
    /// A room with no connection and no write for this long is removed and its memory freed.
    pub room_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_keys_per_room: 10_000,
            max_room_bytes: 64 << 20,
            max_connections_per_room: 1_000,
            max_connections: 20_000,
            max_rooms: 100_000,
            room_ttl: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// Bytes a stored entry is accounted with: its value plus bookkeeping (its seq and the stream's slot).
pub(crate) fn entry_cost(value_len: usize) -> usize {
    value_len + 16
}

/// Bytes a key with a stored stream is accounted with besides its entries: its name plus the map slot around it.
/// Charged when the key's first entry is stored; a stored key lives as long as its room, so it is never refunded.
/// Without it, long keys with tiny values filled memory past the room's limit.
pub(crate) fn key_cost(key_len: usize) -> usize {
    key_len + 64
}
