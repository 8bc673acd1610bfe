//! Durable rooms: the storage task behind the engine's [`Journal`] seam, and the stores it can drive.
//!
//! The engine queues [`Record`]s without waiting; one storage thread drains the queue and applies everything that
//! piled up since its last commit in one durable transaction (group commit), so the write rate is bounded by the
//! disk's throughput, not by one fsync per write. Relays never reach this module.
//!
//! A store is a [`Backend`]: the embedded one is [`redb_store::RedbBackend`], the cluster's is
//! [`jetstream_store::JetStreamBackend`]. See `docs/storage.md` for the layout, the durability rule and the fault behaviour.

pub mod backup;
pub mod jetstream_store;
pub mod redb_store;
mod task;

use std::path::PathBuf;

pub use task::{DiskJournal, StorageStatus};

use crate::engine::{Record, RoomId, StoredRoom};

/// Which store `driftdb serve` keeps rooms in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// The embedded store in `--data-dir` (redb): rooms survive restarts and crashes.
    Embedded,
    /// Keep rooms in memory only: a restart loses every room.
    Memory,
    /// With `--cluster`: every room's log in a JetStream stream, so any node can take a room over.
    Jetstream,
}

/// Why a store failed. The text reaches clients in `error` messages, so it names the cause.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The disk refused (full, read-only, vanished): writes are refused until it works again.
    #[error("{0}")]
    Io(String),
    /// A stored record fails its checksum or cannot be decoded: the room is not served.
    #[error("corrupt record in room {room}: {what}")]
    Corrupt { room: String, what: String },
    /// The data directory was written by another format version: refused, never misread.
    #[error("{0}")]
    Format(String),
}

/// A store of rooms. Called from the storage thread only, so methods may block.
pub trait Backend: Send + 'static {
    /// Applies `records` (in order) in one durable transaction: all of them or none.
    fn commit(&mut self, records: &[Record]) -> Result<(), BackendError>;
    /// Reads a room, and marks it as used in this run (see the durability rule in `docs/storage.md`).
    fn load(&mut self, room: &RoomId) -> Result<Option<StoredRoom>, BackendError>;
    /// Gets back to a working state after a failed commit (e.g. reopens its files).
    fn recover(&mut self) -> Result<(), BackendError>;
    /// Records that this run stopped cleanly, after the last commit.
    fn close_cleanly(&mut self) -> Result<(), BackendError>;
}

/// Settings for the embedded store.
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    pub data_dir: PathBuf,
    /// Rooms not written for this long are removed when the store opens (the same TTL as in memory).
    pub room_ttl: std::time::Duration,
    /// Bound on records queued for the storage thread, in bytes; beyond it stored writes are refused.
    pub max_queued_bytes: usize,
}
