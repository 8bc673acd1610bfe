//! The embedded store: one redb file, `rooms.redb`, in the data directory.
//!
//! Tables (format version [`FORMAT_VERSION`]):
//! - `meta`: `format` (the version), `run` (incremented at each open), `clean` (1 once that run stopped cleanly).
//! - `rooms`: room id → [`RoomMeta`] (epoch, seq, the run that last used it, last write time).
//! - `entries`: (room id, key, seq) → the value's CBOR. Tuple keys sort by room, then key, then seq, so a room's
//!   replay is one range scan and a replace or compact is one range delete.
//!
//! Every stored value and room meta starts with a CRC-32 of what follows (and of its table key), so a flipped bit
//! is reported as a corrupt record instead of being served.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{Backend, BackendError};
use crate::engine::{Record, RoomId, StoredRoom};
use crate::protocol::{Entry, Key, Value};

/// The layout this build writes and the only one it reads. Bump it (and write a migration) on any change.
pub const FORMAT_VERSION: u64 = 1;
/// The file in the data directory.
pub const FILE_NAME: &str = "rooms.redb";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const ROOMS: TableDefinition<&str, &[u8]> = TableDefinition::new("rooms");
const ENTRIES: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("entries");

/// What the store keeps per room besides its entries.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct RoomMeta {
    epoch: String,
    seq: u64,
    /// The run that last loaded or wrote the room: if that run crashed, the room gets a new epoch.
    run: u64,
    /// Seconds since the Unix epoch of the last write: rooms idle past the TTL are removed at open.
    written_at: u64,
}

pub struct RedbBackend {
    path: PathBuf,
    /// `None` between a failure and a successful reopen.
    db: Option<Database>,
    /// This run's number (see the durability rule in `docs/storage.md`).
    run: u64,
}

/// What [`RedbBackend::open`] found and did, for the startup log and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OpenReport {
    pub rooms: usize,
    /// The previous run did not stop cleanly.
    pub unclean: bool,
    /// Rooms given a new epoch because the crashed run used them.
    pub epochs_renewed: usize,
    /// Rooms removed because they were idle past the TTL.
    pub expired: usize,
}

fn io(error: impl Into<redb::Error>) -> BackendError {
    let error: redb::Error = error.into();
    match error {
        redb::Error::Io(io) => BackendError::Io(io.to_string()),
        other => BackendError::Io(other.to_string()),
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl RedbBackend {
    /// Opens (or creates) the store in `dir`: checks the format version, renews the epoch of rooms a crashed run
    /// used, removes rooms idle past `room_ttl`, and starts a new run.
    pub fn open(dir: &Path, room_ttl: Duration) -> Result<(Self, OpenReport), BackendError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| BackendError::Io(format!("cannot create the data directory {}: {e}", dir.display())))?;
        let path = dir.join(FILE_NAME);
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::UpgradeRequired(version) => BackendError::Format(format!(
                "{} uses redb file format {version}, which this driftdb cannot read",
                path.display()
            )),
            other => BackendError::Io(format!("cannot open {}: {}", path.display(), redb::Error::from(other))),
        })?;
        let mut backend = RedbBackend { path, db: Some(db), run: 0 };
        let report = backend.start_run(room_ttl)?;
        Ok((backend, report))
    }

    fn check_file(&self) -> Result<(), BackendError> {
        match std::fs::metadata(&self.path) {
            Ok(_) => Ok(()),
            Err(error) => Err(BackendError::Io(format!(
                "the data file {} is gone ({error}); restore it or restart the server",
                self.path.display()
            ))),
        }
    }

    fn db(&self) -> Result<&Database, BackendError> {
        self.db.as_ref().ok_or_else(|| BackendError::Io(format!("{} is not open", self.path.display())))
    }

    fn start_run(&mut self, room_ttl: Duration) -> Result<OpenReport, BackendError> {
        let txn = self.db()?.begin_write().map_err(io)?;
        let mut report = OpenReport::default();
        {
            let mut meta = txn.open_table(META).map_err(io)?;
            let format = meta.get("format").map_err(io)?.map(|v| v.value());
            let previous_run = meta.get("run").map_err(io)?.map(|v| v.value());
            match (format, previous_run) {
                (Some(FORMAT_VERSION), _) => {}
                (None, None) => {
                    meta.insert("format", FORMAT_VERSION).map_err(io)?;
                }
                (found, _) => {
                    return Err(BackendError::Format(format!(
                        "{} has storage format {}, but this driftdb reads only format {FORMAT_VERSION}: \
                         it was written by another version; refusing to read it",
                        self.path.display(),
                        found.map_or("unknown".to_owned(), |v| v.to_string()),
                    )));
                }
            }
            let previous_run = previous_run.unwrap_or(0);
            let clean = meta.get("clean").map_err(io)?.map(|v| v.value()) != Some(0);
            report.unclean = !clean;
            self.run = previous_run + 1;
            meta.insert("run", self.run).map_err(io)?;
            meta.insert("clean", 0).map_err(io)?;

            let mut rooms = txn.open_table(ROOMS).map_err(io)?;
            let mut entries = txn.open_table(ENTRIES).map_err(io)?;
            let oldest_kept = now_secs().saturating_sub(room_ttl.as_secs());
            let mut renew = Vec::new();
            let mut expire = Vec::new();
            for item in rooms.iter().map_err(io)? {
                let (id, bytes) = item.map_err(io)?;
                let id = id.value().to_owned();
                let meta = decode_meta(&id, bytes.value())?;
                if meta.written_at < oldest_kept {
                    expire.push(id);
                } else if !clean && meta.run == previous_run {
                    renew.push((id, meta));
                } else {
                    report.rooms += 1;
                }
            }
            for id in &expire {
                remove_room(&mut rooms, &mut entries, id)?;
            }
            for (id, mut meta) in renew {
                meta.epoch = crate::engine::new_epoch().to_string();
                meta.run = 0;
                put_meta(&mut rooms, &id, &meta)?;
                report.rooms += 1;
                report.epochs_renewed += 1;
            }
            report.expired = expire.len();
        }
        txn.commit().map_err(io)?;
        Ok(report)
    }
}

impl Backend for RedbBackend {
    fn commit(&mut self, records: &[Record]) -> Result<(), BackendError> {
        // An unlinked file stays writable on Unix: without this check writes would go to a file that is gone.
        self.check_file()?;
        let txn = self.db()?.begin_write().map_err(io)?;
        {
            let mut rooms = txn.open_table(ROOMS).map_err(io)?;
            let mut entries = txn.open_table(ENTRIES).map_err(io)?;
            let now = now_secs();
            for record in records {
                apply(&mut rooms, &mut entries, record, self.run, now)?;
            }
        }
        txn.commit().map_err(io)
    }

    fn load(&mut self, room: &RoomId) -> Result<Option<StoredRoom>, BackendError> {
        let id = room.as_str();
        let stored = {
            let txn = self.db()?.begin_read().map_err(io)?;
            let rooms = txn.open_table(ROOMS).map_err(io)?;
            let Some(bytes) = rooms.get(id).map_err(io)? else {
                return Ok(None);
            };
            let meta = decode_meta(id, bytes.value())?;
            let entries = txn.open_table(ENTRIES).map_err(io)?;
            let mut keys: Vec<(Key, Vec<Entry>)> = Vec::new();
            for item in entries.range((id, "", 0)..).map_err(io)? {
                let (k, v) = item.map_err(io)?;
                let (entry_room, key, seq) = k.value();
                if entry_room != id {
                    break;
                }
                let value = decode_value(id, key, seq, v.value())?;
                match keys.last_mut() {
                    Some((last, stream)) if &**last == key => stream.push(Entry { value, seq }),
                    _ => keys.push((Key::from(key), vec![Entry { value, seq }])),
                }
            }
            (meta, keys)
        };
        let (mut meta, keys) = stored;
        // Mark the room as used by this run before anyone sees it: if this run crashes, it gets a new epoch.
        meta.run = self.run;
        let txn = self.db()?.begin_write().map_err(io)?;
        put_meta(&mut txn.open_table(ROOMS).map_err(io)?, room.as_str(), &meta)?;
        txn.commit().map_err(io)?;
        Ok(Some(StoredRoom { epoch: meta.epoch.into(), seq: meta.seq, keys }))
    }

    fn recover(&mut self) -> Result<(), BackendError> {
        // redb refuses further use after an I/O error; a fresh handle repairs the file if it must.
        warn!(path = %self.path.display(), "reopening the store after a failure");
        // Never recreate a vanished file: an empty store would silently drop every room not in memory.
        self.check_file()?;
        // Two handles on one file are refused: the old one goes first.
        self.db = None;
        match Database::create(&self.path) {
            Ok(db) => {
                self.db = Some(db);
                info!(path = %self.path.display(), "store reopened");
                Ok(())
            }
            Err(error) => {
                Err(BackendError::Io(format!("cannot reopen {}: {}", self.path.display(), redb::Error::from(error))))
            }
        }
    }

    fn close_cleanly(&mut self) -> Result<(), BackendError> {
        let txn = self.db()?.begin_write().map_err(io)?;
        txn.open_table(META).map_err(io)?.insert("clean", 1).map_err(io)?;
        txn.commit().map_err(io)
    }
}

type RoomsTable<'t> = redb::Table<'t, &'static str, &'static [u8]>;
type EntriesTable<'t> = redb::Table<'t, (&'static str, &'static str, u64), &'static [u8]>;

fn apply(
    rooms: &mut RoomsTable<'_>,
    entries: &mut EntriesTable<'_>,
    record: &Record,
    run: u64,
    now: u64,
) -> Result<(), BackendError> {
    let id = record.room().as_str();
    let mut meta = match record {
        Record::Removed { .. } => return remove_room(rooms, entries, id),
        Record::Created { epoch, .. } => {
            // Nothing of an earlier room of this id may remain under the new epoch.
            remove_room(rooms, entries, id)?;
            RoomMeta { epoch: epoch.to_string(), seq: 0, run, written_at: now }
        }
        _ => match rooms.get(id).map_err(io)? {
            Some(bytes) => decode_meta(id, bytes.value())?,
            None => {
                warn!(room = id, "a stored write for a room the store does not know; ignored");
                return Ok(());
            }
        },
    };
    meta.run = run;
    meta.written_at = now;
    match record {
        Record::Append { key, entry, .. } => {
            put_entry(entries, id, key, entry)?;
            meta.seq = meta.seq.max(entry.seq);
        }
        Record::Replace { key, entry, .. } => {
            remove_entries(entries, id, key, u64::MAX)?;
            put_entry(entries, id, key, entry)?;
            meta.seq = meta.seq.max(entry.seq);
        }
        Record::Compact { key, entry, .. } => {
            remove_entries(entries, id, key, entry.seq)?;
            put_entry(entries, id, key, entry)?;
        }
        Record::Seq { seq, .. } => meta.seq = meta.seq.max(*seq),
        Record::Created { .. } | Record::Removed { .. } => {}
    }
    put_meta(rooms, id, &meta)
}

fn put_entry(entries: &mut EntriesTable<'_>, room: &str, key: &str, entry: &Entry) -> Result<(), BackendError> {
    let cbor = entry.value.cbor();
    let mut bytes = Vec::with_capacity(4 + cbor.len());
    bytes.extend_from_slice(&entry_checksum(room, key, entry.seq, cbor).to_le_bytes());
    bytes.extend_from_slice(cbor);
    entries.insert((room, key, entry.seq), bytes.as_slice()).map_err(io)?;
    Ok(())
}

/// Removes `key`'s entries with seq ≤ `up_to`.
fn remove_entries(entries: &mut EntriesTable<'_>, room: &str, key: &str, up_to: u64) -> Result<(), BackendError> {
    entries.retain_in((room, key, 0)..=(room, key, up_to), |_, _| false).map_err(io)
}

fn remove_room(rooms: &mut RoomsTable<'_>, entries: &mut EntriesTable<'_>, room: &str) -> Result<(), BackendError> {
    rooms.remove(room).map_err(io)?;
    // Every entry of `room` sorts after (room, "", 0) and before the first entry of the next room id.
    let mut keys = Vec::new();
    for item in entries.range((room, "", 0)..).map_err(io)? {
        let (k, _) = item.map_err(io)?;
        let (entry_room, key, seq) = k.value();
        if entry_room != room {
            break;
        }
        keys.push((key.to_owned(), seq));
    }
    for (key, seq) in keys {
        entries.remove((room, key.as_str(), seq)).map_err(io)?;
    }
    Ok(())
}

fn put_meta(rooms: &mut RoomsTable<'_>, room: &str, meta: &RoomMeta) -> Result<(), BackendError> {
    let body = postcard::to_stdvec(meta).map_err(|e| BackendError::Io(format!("encoding room meta: {e}")))?;
    let mut bytes = Vec::with_capacity(4 + body.len());
    bytes.extend_from_slice(&checksum(&[room.as_bytes(), &body]).to_le_bytes());
    bytes.extend_from_slice(&body);
    rooms.insert(room, bytes.as_slice()).map_err(io)?;
    Ok(())
}

fn decode_meta(room: &str, bytes: &[u8]) -> Result<RoomMeta, BackendError> {
    let corrupt = |what: &str| BackendError::Corrupt { room: room.to_owned(), what: what.to_owned() };
    let (sum, body) = split_checksum(bytes).ok_or_else(|| corrupt("room meta is truncated"))?;
    if sum != checksum(&[room.as_bytes(), body]) {
        return Err(corrupt("room meta fails its checksum"));
    }
    postcard::from_bytes(body).map_err(|e| corrupt(&format!("room meta cannot be decoded: {e}")))
}

fn decode_value(room: &str, key: &str, seq: u64, bytes: &[u8]) -> Result<Value, BackendError> {
    let corrupt =
        |what: &str| BackendError::Corrupt { room: room.to_owned(), what: format!("key {key:?} seq {seq}: {what}") };
    let (sum, cbor) = split_checksum(bytes).ok_or_else(|| corrupt("entry is truncated"))?;
    if sum != entry_checksum(room, key, seq, cbor) {
        return Err(corrupt("entry fails its checksum"));
    }
    Value::from_cbor_bytes(cbor).map_err(|e| corrupt(&format!("entry cannot be decoded: {e}")))
}

fn split_checksum(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (sum, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*sum), rest))
}

fn entry_checksum(room: &str, key: &str, seq: u64, cbor: &[u8]) -> u32 {
    checksum(&[room.as_bytes(), &[0], key.as_bytes(), &[0], &seq.to_le_bytes(), cbor])
}

fn checksum(parts: &[&[u8]]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTableMetadata;

    const DAY: Duration = Duration::from_secs(86_400);

    fn value(n: i64) -> Value {
        Value::from_tree(ciborium::Value::Integer(n.into()))
    }

    fn entry(n: i64, seq: u64) -> Entry {
        Entry { value: value(n), seq }
    }

    fn room(id: &str) -> RoomId {
        RoomId::parse(id).unwrap()
    }

    fn writes(id: &RoomId) -> Vec<Record> {
        let (room, key) = (id.clone(), Key::from("k"));
        vec![
            Record::Created { room: room.clone(), epoch: "00000000000000e1".into() },
            Record::Append { room: room.clone(), key: key.clone(), entry: entry(1, 1) },
            Record::Append { room: room.clone(), key: key.clone(), entry: entry(2, 2) },
            Record::Append { room: room.clone(), key: key.clone(), entry: entry(3, 4) },
            Record::Compact { room: room.clone(), key: key.clone(), entry: entry(20, 2) },
            Record::Replace { room: room.clone(), key: "r".into(), entry: entry(5, 5) },
            Record::Replace { room: room.clone(), key: "r".into(), entry: entry(6, 6) },
            Record::Seq { room, seq: 8 },
        ]
    }

    fn expected() -> StoredRoom {
        StoredRoom {
            epoch: "00000000000000e1".into(),
            seq: 8,
            keys: vec![("k".into(), vec![entry(20, 2), entry(3, 4)]), ("r".into(), vec![entry(6, 6)])],
        }
    }

    #[test]
    fn records_round_trip_and_a_clean_stop_keeps_the_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let id = room("a");
        let (mut store, report) = RedbBackend::open(dir.path(), DAY).unwrap();
        assert_eq!(report, OpenReport::default());
        store.commit(&writes(&id)).unwrap();
        assert_eq!(store.load(&id).unwrap(), Some(expected()));
        assert_eq!(store.load(&room("other")).unwrap(), None);
        store.close_cleanly().unwrap();
        drop(store);
        let (mut store, report) = RedbBackend::open(dir.path(), DAY).unwrap();
        assert_eq!(report, OpenReport { rooms: 1, ..OpenReport::default() });
        assert_eq!(store.load(&id).unwrap(), Some(expected()));
        store.commit(&[Record::Removed { room: id.clone() }]).unwrap();
        assert_eq!(store.load(&id).unwrap(), None);
    }

    #[test]
    fn after_a_crash_only_rooms_the_crashed_run_used_get_a_new_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let (used, untouched) = (room("used"), room("untouched"));
        let (mut store, _) = RedbBackend::open(dir.path(), DAY).unwrap();
        store.commit(&writes(&used)).unwrap();
        store.commit(&writes(&untouched)).unwrap();
        store.close_cleanly().unwrap();
        drop(store);
        let (mut store, _) = RedbBackend::open(dir.path(), DAY).unwrap();
        assert_eq!(store.load(&used).unwrap(), Some(expected()));
        drop(store); // no close_cleanly: a crash
        let (mut store, report) = RedbBackend::open(dir.path(), DAY).unwrap();
        assert_eq!(report, OpenReport { rooms: 2, unclean: true, epochs_renewed: 1, expired: 0 });
        let renewed = store.load(&used).unwrap().unwrap();
        assert_ne!(renewed.epoch, expected().epoch);
        assert_eq!(StoredRoom { epoch: expected().epoch, ..renewed }, expected(), "the data stays");
        assert_eq!(store.load(&untouched).unwrap(), Some(expected()));
    }

    #[test]
    fn a_newer_format_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        drop(RedbBackend::open(dir.path(), DAY).unwrap());
        let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert("format", FORMAT_VERSION + 1).unwrap();
        txn.commit().unwrap();
        drop(db);
        let Err(error) = RedbBackend::open(dir.path(), DAY) else { panic!("a newer format must be refused") };
        let text = error.to_string();
        assert!(matches!(error, BackendError::Format(_)), "{text}");
        assert!(text.contains("storage format 2") && text.contains("reads only format 1"), "{text}");
    }

    #[test]
    fn a_corrupt_entry_is_reported_never_served() {
        let dir = tempfile::tempdir().unwrap();
        let id = room("c");
        let (mut store, _) = RedbBackend::open(dir.path(), DAY).unwrap();
        store.commit(&writes(&id)).unwrap();
        // Flip one bit of a stored value, as a bad disk would.
        let txn = store.db().unwrap().begin_write().unwrap();
        {
            let mut entries = txn.open_table(ENTRIES).unwrap();
            let mut bytes = entries.get(("c", "k", 4)).unwrap().unwrap().value().to_vec();
            *bytes.last_mut().unwrap() ^= 1;
            entries.insert(("c", "k", 4), bytes.as_slice()).unwrap();
        }
        txn.commit().unwrap();
        let error = store.load(&id).unwrap_err();
        assert!(matches!(error, BackendError::Corrupt { .. }), "{error}");
        assert_eq!(error.to_string(), r#"corrupt record in room c: key "k" seq 4: entry fails its checksum"#);
    }

    #[test]
    fn rooms_idle_past_the_ttl_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = RedbBackend::open(dir.path(), DAY).unwrap();
        store.commit(&writes(&room("old"))).unwrap();
        store.close_cleanly().unwrap();
        drop(store);
        // Written at least a second ago, so a zero TTL removes it.
        std::thread::sleep(Duration::from_millis(1100));
        let (mut store, report) = RedbBackend::open(dir.path(), Duration::ZERO).unwrap();
        assert_eq!(report.expired, 1);
        assert_eq!(store.load(&room("old")).unwrap(), None);
        let txn = store.db().unwrap().begin_read().unwrap();
        assert_eq!(txn.open_table(ENTRIES).unwrap().len().unwrap(), 0, "its entries went too");
    }
}
