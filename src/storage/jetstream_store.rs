//! The cluster's store (`--storage jetstream`): every room's history is a log on its own subject of one JetStream
//! stream, so whichever node takes a room over reads what its last owner committed.
//!
//! - **A commit** publishes, per room, one message holding that room's records of the batch, with
//!   `Nats-Expected-Last-Subject-Sequence` set to the last message this node wrote or read there: the fence. If
//!   another node has written since (it took the room over), the publish fails, and this node's records for that
//!   room are dropped rather than interleaved with the new owner's.
//! - **A load** folds the room's messages (one direct get each) into its state, then appends `Loaded` with this
//!   run's id. A clean stop appends `Released`; a taker that finds a `Loaded` without its `Released` gives the
//!   room a new epoch (as the embedded store does after a crash), since the last owner may have fanned out writes
//!   it never committed. Long logs are rolled up into one snapshot when loaded.
//! - A room that expires is purged from the stream.
//!
//! The backend runs its own NATS connection on its own one-thread runtime: the storage thread blocks on it, and
//! neither it nor a caller waiting for a load can starve the server's runtime.

use std::collections::{BTreeMap, HashMap};
use std::future::IntoFuture;
use std::time::Duration;

use async_nats::header::{NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_ID, NATS_ROLLUP};
use async_nats::jetstream::{self, context::PublishErrorKind, stream::DirectGetErrorKind};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{Backend, BackendError};
use crate::engine::{Record, RoomId, StoredRoom};
use crate::protocol::{Entry, Value};

/// The stream of room logs.
pub const STREAM: &str = "DRIFTDB_ROOMS";
/// How long one NATS round trip may take before the commit counts as failed (and is retried).
const TIMEOUT: Duration = Duration::from_secs(5);
/// A log longer than this is rolled up into one snapshot when the room is loaded.
const ROLLUP_AFTER: usize = 64;

/// The subject of a room's log.
fn subject(room: &RoomId) -> String {
    format!("driftdb.data.{room}")
}

/// One entry of a room's log.
#[derive(Debug, Serialize, Deserialize)]
enum Logged {
    Created {
        epoch: String,
    },
    Append {
        key: String,
        seq: u64,
        value: Bytes,
    },
    Replace {
        key: String,
        seq: u64,
        value: Bytes,
    },
    Compact {
        key: String,
        seq: u64,
        value: Bytes,
    },
    Seq {
        seq: u64,
    },
    /// A run began serving the room.
    Loaded {
        run: String,
    },
    /// That run stopped serving it cleanly, after its last commit.
    Released {
        run: String,
    },
    /// The room was given a new epoch (its last owner did not release it); its data stays.
    Renewed {
        epoch: String,
    },
    /// Everything before it, folded (see [`RoomLog`]).
    Snapshot {
        epoch: String,
        seq: u64,
        keys: Vec<(String, Vec<(u64, Bytes)>)>,
        loader: Option<String>,
    },
}

impl Logged {
    fn of(record: &Record) -> Option<Logged> {
        let entry = |key: &str, entry: &Entry| (key.to_owned(), entry.seq, entry.value.cbor().clone());
        Some(match record {
            Record::Created { epoch, .. } => Logged::Created { epoch: epoch.to_string() },
            Record::Append { key, entry: e, .. } => {
                let (key, seq, value) = entry(key, e);
                Logged::Append { key, seq, value }
            }
            Record::Replace { key, entry: e, .. } => {
                let (key, seq, value) = entry(key, e);
                Logged::Replace { key, seq, value }
            }
            Record::Compact { key, entry: e, .. } => {
                let (key, seq, value) = entry(key, e);
                Logged::Compact { key, seq, value }
            }
            Record::Seq { seq, .. } => Logged::Seq { seq: *seq },
            Record::Removed { .. } => return None,
        })
    }
}

/// A room's log, folded.
#[derive(Debug, Default)]
struct RoomLog {
    epoch: Option<String>,
    seq: u64,
    keys: BTreeMap<String, Vec<(u64, Bytes)>>,
    /// The run that loaded the room last and has not released it.
    loader: Option<String>,
}

impl RoomLog {
    fn apply(&mut self, logged: Logged) {
        match logged {
            Logged::Created { epoch } => {
                *self = RoomLog { epoch: Some(epoch), loader: self.loader.take(), ..Default::default() }
            }
            Logged::Append { key, seq, value } => {
                self.keys.entry(key).or_default().push((seq, value));
                self.seq = self.seq.max(seq);
            }
            Logged::Replace { key, seq, value } => {
                self.keys.insert(key, vec![(seq, value)]);
                self.seq = self.seq.max(seq);
            }
            Logged::Compact { key, seq, value } => {
                let stream = self.keys.entry(key).or_default();
                stream.retain(|(s, _)| *s > seq);
                stream.insert(0, (seq, value));
                self.seq = self.seq.max(seq);
            }
            Logged::Seq { seq } => self.seq = self.seq.max(seq),
            Logged::Loaded { run } => self.loader = Some(run),
            Logged::Released { run } => {
                if self.loader.as_deref() == Some(run.as_str()) {
                    self.loader = None;
                }
            }
            Logged::Renewed { epoch } => self.epoch = Some(epoch),
            Logged::Snapshot { epoch, seq, keys, loader } => {
                *self = RoomLog { epoch: Some(epoch), seq, keys: keys.into_iter().collect(), loader }
            }
        }
    }

    fn snapshot(&self) -> Logged {
        Logged::Snapshot {
            epoch: self.epoch.clone().unwrap_or_default(),
            seq: self.seq,
            keys: self.keys.iter().map(|(key, stream)| (key.clone(), stream.clone())).collect(),
            loader: self.loader.clone(),
        }
    }

    fn stored_room(&self, room: &RoomId) -> Result<StoredRoom, BackendError> {
        let corrupt = |what: String| BackendError::Corrupt { room: room.to_string(), what };
        let epoch = self.epoch.clone().ok_or_else(|| corrupt("a log without its Created entry".into()))?;
        let mut keys = Vec::new();
        for (key, stream) in &self.keys {
            let entries = stream
                .iter()
                .map(|(seq, cbor)| {
                    Ok(Entry { value: Value::from_cbor_bytes(cbor).map_err(|e| corrupt(e.to_string()))?, seq: *seq })
                })
                .collect::<Result<Vec<_>, BackendError>>()?;
            if !entries.is_empty() {
                keys.push((key.as_str().into(), entries));
            }
        }
        Ok(StoredRoom { epoch: epoch.into(), seq: self.seq, keys })
    }
}

/// The JetStream store of a cluster node.
pub struct JetStreamBackend {
    runtime: tokio::runtime::Runtime,
    jetstream: jetstream::Context,
    stream: jetstream::stream::Stream,
    /// This run's id in `Loaded` and `Released`.
    run: String,
    /// The last message of each room's log this run wrote or read: the fence of its next publish.
    fences: HashMap<RoomId, u64>,
    /// Of a commit that failed part way: how many records of each room were published already, so the retry
    /// (the same records, perhaps with more after them) does not publish them twice.
    published: HashMap<RoomId, usize>,
    max_payload: usize,
}

impl JetStreamBackend {
    /// Connects to NATS at `url` and opens (creating it on first use) the stream of room logs. Blocks; callable
    /// from async code too (the work runs on a thread of its own, where the backend's runtime may block).
    pub fn open(url: &str, run: String) -> Result<Self, BackendError> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| Self::open_here(url, run))
                .join()
                .unwrap_or_else(|_| Err(BackendError::Io("opening the JetStream store panicked".into())))
        })
    }

    fn open_here(url: &str, run: String) -> Result<Self, BackendError> {
        let io = |what: &str, error: &dyn std::fmt::Display| BackendError::Io(format!("{what}: {error}"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("driftdb-jetstream")
            .enable_all()
            .build()
            .map_err(|e| io("cannot start the JetStream runtime", &e))?;
        let (jetstream, stream, max_payload) = runtime.block_on(async {
            let client = async_nats::ConnectOptions::new()
                .name(format!("driftdb store {run}"))
                .connection_timeout(TIMEOUT)
                .max_reconnects(None)
                .connect(url)
                .await
                .map_err(|e| io(&format!("cannot reach NATS at {url}"), &e))?;
            let max_payload = client.server_info().max_payload;
            let mut jetstream = jetstream::new(client);
            jetstream.set_timeout(TIMEOUT);
            let config = jetstream::stream::Config {
                name: STREAM.to_owned(),
                description: Some("driftdb room logs: one subject per room".to_owned()),
                subjects: vec!["driftdb.data.>".to_owned()],
                storage: jetstream::stream::StorageType::File,
                allow_rollup: true,
                allow_direct: true,
                ..Default::default()
            };
            let failed = |e: &dyn std::fmt::Display| {
                io(&format!("cannot open the JetStream stream {STREAM} (is nats-server running with -js?)"), e)
            };
            jetstream.create_or_update_stream(config).await.map_err(|e| failed(&e))?;
            let stream = jetstream.get_stream(STREAM).await.map_err(|e| failed(&e))?;
            Ok::<_, BackendError>((jetstream, stream, max_payload))
        })?;
        info!(stream = STREAM, %run, "storage: JetStream");
        Ok(JetStreamBackend {
            runtime,
            jetstream,
            stream,
            run,
            fences: HashMap::new(),
            published: HashMap::new(),
            max_payload,
        })
    }

    /// Publishes `entries` to `room`'s log behind its fence; `Ok(false)` if another node wrote there first.
    fn append(&mut self, room: &RoomId, entries: &[Logged], rollup: bool) -> Result<bool, BackendError> {
        let fence = self.fences.get(room).copied().unwrap_or(0);
        let payload = postcard::to_allocvec(entries).expect("log entries serialize");
        if payload.len() > self.max_payload {
            return Err(BackendError::Io(format!(
                "a commit of room {room} is {} bytes, over the NATS server's max_payload of {} bytes",
                payload.len(),
                self.max_payload
            )));
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, fence.to_string().as_str());
        // The same message again (a retry after a lost ack) is recognized, not written twice.
        headers.insert(NATS_MESSAGE_ID, format!("{room}.{fence}.{}", self.run).as_str());
        if rollup {
            headers.insert(NATS_ROLLUP, "sub");
        }
        let published = self.runtime.block_on(async {
            self.jetstream.publish_with_headers(subject(room), headers, payload.into()).await?.await
        });
        match published {
            Ok(ack) => {
                self.fences.insert(room.clone(), ack.sequence);
                Ok(true)
            }
            Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => {
                warn!(%room, "another node took the room over: this node's last writes to it are dropped");
                self.fences.remove(room);
                Ok(false)
            }
            Err(error) => Err(BackendError::Io(format!("JetStream did not take the commit: {error}"))),
        }
    }

    /// Reads `room`'s whole log: its entries, folded, how many messages it had and the last one's sequence.
    fn read(&self, room: &RoomId) -> Result<(RoomLog, usize, u64), BackendError> {
        let mut log = RoomLog::default();
        let (mut count, mut last) = (0, 0);
        loop {
            let next = self.runtime.block_on(self.stream.direct_get_next_for_subject(subject(room), Some(last + 1)));
            let message = match next {
                Ok(message) => message,
                Err(error) if error.kind() == DirectGetErrorKind::NotFound => break,
                Err(error) => return Err(BackendError::Io(format!("cannot read room {room} from JetStream: {error}"))),
            };
            let entries: Vec<Logged> = postcard::from_bytes(&message.payload)
                .map_err(|e| BackendError::Corrupt { room: room.to_string(), what: e.to_string() })?;
            entries.into_iter().for_each(|entry| log.apply(entry));
            count += 1;
            last = message.sequence;
        }
        Ok((log, count, last))
    }
}

impl Backend for JetStreamBackend {
    fn commit(&mut self, records: &[Record]) -> Result<(), BackendError> {
        // Each room's records, in order; a removal purges what came before it.
        let mut batches: Vec<(RoomId, Vec<&Record>)> = Vec::new();
        for record in records {
            match batches.iter_mut().find(|(room, _)| room == record.room()) {
                Some((_, batch)) => batch.push(record),
                None => batches.push((record.room().clone(), vec![record])),
            }
        }
        for (room, batch) in batches {
            let done = self.published.get(&room).copied().unwrap_or(0);
            let mut entries = Vec::new();
            for record in &batch[done.min(batch.len())..] {
                match Logged::of(record) {
                    Some(logged) => entries.push(logged),
                    None => {
                        self.runtime
                            .block_on(self.stream.purge().filter(subject(&room)).into_future())
                            .map_err(|e| BackendError::Io(format!("cannot remove room {room} from JetStream: {e}")))?;
                        self.fences.remove(&room);
                        entries.clear();
                    }
                }
            }
            if let Some(Logged::Created { .. }) = entries.first() {
                // The room's first stored write: this run serves it from here on.
                entries.insert(1, Logged::Loaded { run: self.run.clone() });
            }
            if !entries.is_empty() {
                self.append(&room, &entries, false)?;
            }
            self.published.insert(room, batch.len());
        }
        self.published.clear();
        Ok(())
    }

    fn load(&mut self, room: &RoomId) -> Result<Option<StoredRoom>, BackendError> {
        let (mut log, count, last) = self.read(room)?;
        self.fences.insert(room.clone(), last);
        if count == 0 {
            return Ok(None);
        }
        let mut marks = Vec::new();
        if let Some(crashed) = log.loader.take() {
            // Its last owner may have fanned out writes it never committed: clients must not resume across that.
            let epoch = crate::engine::new_epoch().to_string();
            warn!(%room, %crashed, "the room's last owner did not release it: it gets a new epoch");
            log.epoch = Some(epoch.clone());
            marks.push(Logged::Renewed { epoch });
        }
        marks.push(Logged::Loaded { run: self.run.clone() });
        let stored = log.stored_room(room)?;
        log.loader = Some(self.run.clone());
        if count > ROLLUP_AFTER && self.append(room, &[log.snapshot()], true).unwrap_or(false) {
            return Ok(Some(stored));
        }
        if !self.append(room, &marks, false)? {
            return Err(BackendError::Io(format!("room {room} is being taken over by another node")));
        }
        Ok(Some(stored))
    }

    fn recover(&mut self) -> Result<(), BackendError> {
        Ok(())
    }

    fn close_cleanly(&mut self) -> Result<(), BackendError> {
        // Rooms this run only looked at (nothing stored: no log) have nothing to release.
        let rooms: Vec<RoomId> =
            self.fences.iter().filter(|(_, last)| **last > 0).map(|(room, _)| room.clone()).collect();
        for room in rooms {
            // A room another node took over meanwhile refuses this (the fence): it is not this run's to release.
            self.append(&room, &[Logged::Released { run: self.run.clone() }], false)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(key: &str, seq: u64) -> Logged {
        Logged::Append { key: key.into(), seq, value: Bytes::from_static(&[0x01]) }
    }

    fn fold(entries: Vec<Logged>) -> RoomLog {
        let mut log = RoomLog::default();
        entries.into_iter().for_each(|entry| log.apply(entry));
        log
    }

    #[test]
    fn a_room_is_clean_only_when_the_run_that_loaded_it_released_it() {
        let created = || Logged::Created { epoch: "e1".into() };
        let loaded = |run: &str| Logged::Loaded { run: run.into() };
        let released = |run: &str| Logged::Released { run: run.into() };
        let clean = fold(vec![created(), loaded("a"), append("k", 1), Logged::Seq { seq: 3 }, released("a")]);
        assert_eq!((clean.loader.as_deref(), clean.seq), (None, 3));
        // A late release by a run that lost the room does not vouch for the run that took it over.
        let taken = fold(vec![created(), loaded("a"), loaded("b"), append("k", 2), released("a")]);
        assert_eq!(taken.loader.as_deref(), Some("b"));
    }

    #[test]
    fn a_snapshot_folds_to_the_same_room() {
        let log = fold(vec![
            Logged::Created { epoch: "e1".into() },
            append("k", 1),
            append("k", 2),
            Logged::Compact { key: "k".into(), seq: 2, value: Bytes::from_static(&[0x02]) },
            Logged::Replace { key: "r".into(), seq: 3, value: Bytes::from_static(&[0x03]) },
            Logged::Renewed { epoch: "e2".into() },
        ]);
        let room = RoomId::parse("r").unwrap();
        let again = fold(vec![log.snapshot()]);
        assert_eq!(again.stored_room(&room).unwrap(), log.stored_room(&room).unwrap());
        let stored = log.stored_room(&room).unwrap();
        assert_eq!(&*stored.epoch, "e2");
        assert_eq!(
            stored.keys.iter().map(|(k, e)| (k.to_string(), e.len())).collect::<Vec<_>>(),
            [("k".into(), 1), ("r".into(), 1)]
        );
    }
}
