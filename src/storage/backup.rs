//! `driftdb export ROOM` and `driftdb import`: rooms as JSON lines, to back up, move and inspect them.
//!
//! A room is one header line, `{"room":ID,"epoch":E,"seq":N}`, then one line per stored entry,
//! `{"key":K,"seq":S,"value":V,"cbor":HEX}`: `value` is the entry's JSON form for people and tools; `cbor` is its
//! exact bytes (byte strings and tags included), which `import` uses. One file may hold several rooms.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::redb_store::RedbBackend;
use super::{Backend, BackendError};
use crate::engine::{Record, RoomId, StoredRoom};
use crate::protocol::{Entry, Value};

#[derive(Serialize, Deserialize)]
struct Header {
    room: String,
    epoch: String,
    seq: u64,
}

#[derive(Serialize, Deserialize)]
struct Line {
    key: String,
    seq: u64,
    #[serde(default)]
    value: Option<serde_json::Value>,
    #[serde(default)]
    cbor: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} (is a server running on this data directory? stop it first)")]
    Store(#[from] BackendError),
    #[error("no room {0} in the store")]
    NoSuchRoom(String),
    #[error("line {line}: {message}")]
    Input { line: usize, message: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Opens the store for a tool: nothing expires (an export must never delete), and the run is closed cleanly after.
fn open(dir: &Path) -> Result<RedbBackend, BackupError> {
    Ok(RedbBackend::open(dir, Duration::MAX)?.0)
}

/// Writes `room` as JSON lines.
pub fn export_room(dir: &Path, room: &RoomId, out: &mut impl Write) -> Result<(), BackupError> {
    let mut store = open(dir)?;
    let stored = store.load(room)?.ok_or_else(|| BackupError::NoSuchRoom(room.to_string()))?;
    store.close_cleanly()?;
    let header = Header { room: room.to_string(), epoch: stored.epoch.to_string(), seq: stored.seq };
    writeln!(out, "{}", serde_json::to_string(&header).expect("a header is JSON"))?;
    for (key, stream) in &stored.keys {
        for entry in stream {
            let line = Line {
                key: key.to_string(),
                seq: entry.seq,
                value: serde_json::from_str(entry.value.json().get()).ok(),
                cbor: Some(hex::encode(entry.value.cbor())),
            };
            writeln!(out, "{}", serde_json::to_string(&line).expect("an entry is JSON"))?;
        }
    }
    Ok(())
}

/// Reads rooms as JSON lines and stores each, replacing a stored room of the same id. Returns the rooms imported.
pub fn import(dir: &Path, input: impl BufRead) -> Result<Vec<RoomId>, BackupError> {
    let rooms = parse(input)?;
    let mut store = open(dir)?;
    // One transaction for the whole file: one fsync, and an import that fails midway stores nothing.
    let mut records = Vec::new();
    let mut imported = Vec::new();
    for (id, room) in rooms {
        records.push(Record::Created { room: id.clone(), epoch: room.epoch.clone() });
        for (key, stream) in room.keys {
            for entry in stream {
                records.push(Record::Append { room: id.clone(), key: key.clone(), entry });
            }
        }
        records.push(Record::Seq { room: id.clone(), seq: room.seq });
        imported.push(id);
    }
    store.commit(&records)?;
    store.close_cleanly()?;
    Ok(imported)
}

fn parse(input: impl BufRead) -> Result<Vec<(RoomId, StoredRoom)>, BackupError> {
    let mut rooms: Vec<(RoomId, StoredRoom)> = Vec::new();
    for (n, text) in input.lines().enumerate() {
        let text = text?;
        let bad = |message: String| BackupError::Input { line: n + 1, message };
        if text.trim().is_empty() {
            continue;
        }
        if let Ok(header) = serde_json::from_str::<Header>(&text) {
            let id = RoomId::parse(&header.room).map_err(|e| bad(e.to_string()))?;
            rooms.push((id, StoredRoom { epoch: header.epoch.into(), seq: header.seq, keys: Vec::new() }));
            continue;
        }
        let line: Line = serde_json::from_str(&text).map_err(|e| bad(format!("not a room or entry line: {e}")))?;
        let value = match (&line.cbor, line.value) {
            (Some(hex), _) => {
                let bytes = hex::decode(hex).map_err(|e| bad(format!("cbor: {e}")))?;
                Value::from_cbor_bytes(&bytes).map_err(|e| bad(e.to_string()))?
            }
            (None, Some(json)) => Value::from_tree(serde_json::from_value(json).map_err(|e| bad(e.to_string()))?),
            (None, None) => return Err(bad("an entry needs `value` or `cbor`".into())),
        };
        let (_, room) = rooms.last_mut().ok_or_else(|| bad("an entry before any room line".into()))?;
        if line.seq > room.seq {
            return Err(bad(format!("entry seq {} is ahead of the room's seq {}", line.seq, room.seq)));
        }
        let entry = Entry { value, seq: line.seq };
        match room.keys.iter_mut().find(|(key, _)| **key == *line.key) {
            Some((_, stream)) if stream.last().is_some_and(|last| last.seq >= entry.seq) => {
                return Err(bad(format!("key {:?}: seqs must ascend", line.key)));
            }
            Some((_, stream)) => stream.push(entry),
            None => room.keys.push((line.key.as_str().into(), vec![entry])),
        }
    }
    Ok(rooms)
}
