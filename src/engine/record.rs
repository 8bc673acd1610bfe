//! The storage seam, seen from the engine: what a stored write yields, and what the engine needs from a store.
//!
//! The engine does no I/O. Applying a stored write (append, replace, compact, a room's first stored write with its
//! epoch) yields a [`Record`] that it hands to a [`Journal`] without waiting; a storage task persists records in
//! batches, off the relay path. Relays never yield a record. A room is read back through the same journal
//! ([`Journal::load`]) when it is first used after a start.

use std::sync::Arc;

use super::room_id::RoomId;
use crate::protocol::{Entry, Key};

/// One change to a room's stored state, in the room's order.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// The room's first stored write since it was created: the epoch its history belongs to.
    Created { room: RoomId, epoch: Arc<str> },
    /// `entry` goes at the end of `key`'s stream.
    Append { room: RoomId, key: Key, entry: Entry },
    /// `entry` is now `key`'s only entry.
    Replace { room: RoomId, key: Key, entry: Entry },
    /// Entries of `key` with seq ≤ `entry.seq` are replaced by `entry`.
    Compact { room: RoomId, key: Key, entry: Entry },
    /// The room's last handed-out seq (relays take seqs too): written at a clean stop so seqs never go back.
    Seq { room: RoomId, seq: u64 },
    /// The room expired: its stored state goes.
    Removed { room: RoomId },
}

impl Record {
    pub fn room(&self) -> &RoomId {
        match self {
            Record::Created { room, .. }
            | Record::Append { room, .. }
            | Record::Replace { room, .. }
            | Record::Compact { room, .. }
            | Record::Seq { room, .. }
            | Record::Removed { room } => room,
        }
    }

    /// Roughly the bytes this record takes while queued: what the storage queue's bound counts.
    pub fn approx_size(&self) -> usize {
        const OVERHEAD: usize = 48;
        OVERHEAD
            + self.room().as_str().len()
            + match self {
                Record::Append { key, entry, .. }
                | Record::Replace { key, entry, .. }
                | Record::Compact { key, entry, .. } => key.len() + entry.value.len(),
                Record::Created { epoch, .. } => epoch.len(),
                Record::Seq { .. } | Record::Removed { .. } => 0,
            }
    }
}

/// A room as the store holds it: what a room is rebuilt from when it is first used after a start.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct StoredRoom {
    pub epoch: Arc<str>,
    /// The last seq the room handed out.
    pub seq: u64,
    /// Each key's stream, entries in ascending seq order; keys with empty streams are absent.
    pub keys: Vec<(Key, Vec<Entry>)>,
}

/// Why the store cannot take writes or read a room. The text goes to clients in an `error` message, so it names
/// the cause (e.g. "no space left on device").
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("storage unavailable: {0}")]
pub struct StorageUnavailable(pub String);

/// Where the engine sends records and loads rooms from. Implementations must not block in [`Journal::record`] or
/// [`Journal::writable`]: both are called under a room's lock.
pub trait Journal: Send + Sync {
    /// Whether a stored write would be accepted now (the store is healthy and its queue has room).
    fn writable(&self) -> Result<(), StorageUnavailable>;
    /// Queues a record; never waits.
    fn record(&self, record: Record);
    /// Reads a room, after every record queued before this call has been applied. `None` if it is not stored.
    /// May block (never called under a lock).
    fn load(&self, room: &RoomId) -> Result<Option<StoredRoom>, StorageUnavailable>;
    /// Whether rooms are persisted at all (`--storage memory` is not).
    fn is_durable(&self) -> bool;
}

/// `--storage memory`: nothing is persisted, every room starts empty.
pub struct MemoryJournal;

impl Journal for MemoryJournal {
    fn writable(&self) -> Result<(), StorageUnavailable> {
        Ok(())
    }

    fn record(&self, _record: Record) {}

    fn load(&self, _room: &RoomId) -> Result<Option<StoredRoom>, StorageUnavailable> {
        Ok(None)
    }

    fn is_durable(&self) -> bool {
        false
    }
}
