//! A read-only snapshot of one room for the inspector (`GET /room/{id}/inspect`): what the client protocol does not
//! tell (the room's seq, its connections by transport, each key's size and subscribers). The stored values
//! themselves reach the inspector over a `debug=true` connection.

use serde::Serialize;

use super::{KeyState, Room};
use crate::engine::limits::entry_cost;
use crate::metrics::Transport;

#[derive(Debug, Serialize)]
pub struct RoomSnapshot {
    pub room: String,
    pub epoch: String,
    /// The last seq handed out.
    pub seq: u64,
    /// Bytes of stored values, as counted against `--max-room-bytes`.
    pub stored_bytes: usize,
    pub connections: ConnectionCounts,
    /// Keys in name order.
    pub keys: Vec<KeySnapshot>,
}

#[derive(Debug, Default, Serialize)]
pub struct ConnectionCounts {
    pub total: usize,
    pub websocket: usize,
    pub webtransport: usize,
    /// Connections other nodes of the cluster forward here (the client is on that node, over either transport).
    pub forwarded: usize,
    /// Connections opened with `debug=true` (inspectors and debug panels), included in the counts above.
    pub debug: usize,
}

#[derive(Debug, Serialize)]
pub struct KeySnapshot {
    pub key: String,
    /// Entries in the stored stream.
    pub entries: usize,
    /// Bytes of the stored stream, as counted against `--max-room-bytes`.
    pub bytes: usize,
    /// The seq of the newest stored entry.
    pub last_seq: Option<u64>,
    /// Connections subscribed to the key.
    pub subscribers: usize,
}

impl Room {
    /// The room as it is now (taken under its lock, which is held only while copying the counts).
    pub fn inspect(&self) -> RoomSnapshot {
        let state = self.lock();
        let mut connections =
            ConnectionCounts { total: state.conns.len(), debug: state.debug.len(), ..Default::default() };
        for conn in state.conns.values() {
            match conn.transport {
                Some(Transport::Websocket) => connections.websocket += 1,
                Some(Transport::Webtransport) => connections.webtransport += 1,
                Some(Transport::Forwarded) => connections.forwarded += 1,
                Some(Transport::Http) | None => {}
            }
        }
        let mut keys: Vec<KeySnapshot> =
            state.keys.iter().map(|(key, key_state)| key_snapshot(key, key_state)).collect();
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        RoomSnapshot {
            room: self.id.to_string(),
            epoch: self.epoch.to_string(),
            seq: state.seq,
            stored_bytes: state.stored_bytes,
            connections,
            keys,
        }
    }
}

fn key_snapshot(key: &str, key_state: &KeyState) -> KeySnapshot {
    KeySnapshot {
        key: key.to_owned(),
        entries: key_state.stream.len(),
        bytes: key_state.stream.iter().map(|entry| entry_cost(entry.value.len())).sum(),
        last_seq: key_state.stream.last().map(|entry| entry.seq),
        subscribers: key_state.subscribers.len(),
    }
}
