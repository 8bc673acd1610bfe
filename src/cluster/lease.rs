//! Room ownership: a lease per room in the `driftdb-rooms` KV bucket, keyed by the room id.
//!
//! Taking a lease is a compare-and-set on the key's revision: `create` succeeds only if the key is absent (or
//! deleted), `update` only if the key is still at the revision the taker read. JetStream orders the writes, so of
//! any number of concurrent takers exactly one wins each revision, and the revision it got is the fence: a holder
//! renews with `update(revision)`, so a holder that lost the key (it expired, someone else took it) learns so on
//! its next renewal and can never write over the new owner.
//!
//! A lease ends when its holder stops renewing it: the bucket's `max_age` ([`LEASE_TTL`]) removes the key after the
//! last renewal, and the value's `expires_at_ms` lets a taker replace a lease the server has not swept yet. The
//! holder itself stops trusting a lease [`LEASE_MARGIN`] before that, counted from when it *sent* the renewal, so
//! its belief always ends before anyone else can take the key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use async_nats::jetstream::{self, stream::StorageType};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::{ClusterError, open_bucket};
use crate::engine::RoomId;

/// The bucket of room leases.
pub const ROOMS_BUCKET: &str = "driftdb-rooms";
/// How long a lease lasts after its last renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(5);
/// How often a holder renews: several renewals fit in one TTL, so a slow one does not lose the room.
pub const LEASE_RENEW: Duration = Duration::from_secs(1);
/// How long before the lease's end its holder stops counting on it (covers clock-rate drift and a late timer).
pub const LEASE_MARGIN: Duration = Duration::from_secs(1);
/// How far another machine's wall clock may be off: an `expires_at_ms` is trusted only this long after it passed.
pub const CLOCK_SKEW: Duration = Duration::from_secs(1);

/// A lease's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseValue {
    /// The owner's node id.
    pub owner: String,
    /// When the lease ends unless renewed, in milliseconds since the Unix epoch (the owner's clock).
    pub expires_at_ms: u64,
}

/// A lease as read from the bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub value: LeaseValue,
    /// The key's revision: what a takeover must name.
    pub revision: u64,
}

impl Lease {
    /// Whether the lease ended longer than [`CLOCK_SKEW`] ago by this machine's clock, so replacing it (with its
    /// revision) is safe even if the server has not removed it yet.
    pub fn expired(&self) -> bool {
        now_ms() > self.value.expires_at_ms.saturating_add(CLOCK_SKEW.as_millis() as u64)
    }

    /// How long until [`Lease::expired`] holds.
    pub fn remaining(&self) -> Duration {
        Duration::from_millis((self.value.expires_at_ms + CLOCK_SKEW.as_millis() as u64).saturating_sub(now_ms()))
    }
}

/// A lease this node holds.
#[derive(Clone, Copy, Debug)]
pub struct Held {
    pub revision: u64,
    /// Until when this node counts on it.
    pub trusted_until: Instant,
}

/// What a renewal found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    Renewed,
    /// The key moved on (it expired or was taken): the room is no longer this node's.
    Lost,
    /// NATS did not answer, and the lease ran out locally.
    Lapsed,
    /// NATS did not answer; the lease is still good for a while, so the next tick tries again.
    Retry,
}

/// The bucket, and the leases this node holds.
pub struct Leases {
    store: kv::Store,
    node: String,
    held: Mutex<HashMap<RoomId, Held>>,
}

impl Leases {
    /// Opens the bucket for node `node`, creating it on first use.
    pub async fn open(jetstream: &jetstream::Context, node: &str) -> Result<Self, ClusterError> {
        let description = "driftdb room leases: the owner node of each room";
        // File storage: a NATS restart must not forget who owns which room while owners still serve them.
        let store = open_bucket(jetstream, ROOMS_BUCKET, description, LEASE_TTL, StorageType::File).await?;
        Ok(Leases { store, node: node.to_owned(), held: Mutex::default() })
    }

    /// The room's lease, if anyone holds one.
    pub async fn read(&self, room: &RoomId) -> Result<Option<Lease>, ClusterError> {
        let Some(entry) = self.store.entry(room.as_str()).await.map_err(ClusterError::nats)? else { return Ok(None) };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        match serde_json::from_slice(&entry.value) {
            Ok(value) => Ok(Some(Lease { value, revision: entry.revision })),
            // Not ours to interpret: treat it as held, so that it is only replaced once the bucket drops it.
            Err(error) => Err(ClusterError::Nats(format!("malformed lease of room {room}: {error}"))),
        }
    }

    /// Takes the room's lease: if it is absent (`expected` is `None`) or still at revision `expected` (an expired
    /// lease). `Ok(true)` if this node won; `Ok(false)` if another taker got there first.
    pub async fn take(&self, room: &RoomId, expected: Option<u64>) -> Result<bool, ClusterError> {
        let sent = Instant::now();
        let value = self.value();
        let taken = match expected {
            None => match self.store.create(room.as_str(), value).await {
                Ok(revision) => Some(revision),
                Err(error) if error.kind() == CreateErrorKind::AlreadyExists => None,
                Err(error) => return Err(ClusterError::nats(error)),
            },
            Some(revision) => match self.store.update(room.as_str(), value, revision).await {
                Ok(revision) => Some(revision),
                Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => None,
                Err(error) => return Err(ClusterError::nats(error)),
            },
        };
        let Some(revision) = taken else { return Ok(false) };
        debug!(%room, revision, "took the room's lease");
        self.hold(room, revision, sent);
        Ok(true)
    }

    /// Renews one held lease with its revision as the fence.
    pub async fn renew(&self, room: &RoomId) -> Renewal {
        let Some(held) = self.held(room) else { return Renewal::Lost };
        let sent = Instant::now();
        match self.store.update(room.as_str(), self.value(), held.revision).await {
            Ok(revision) => {
                self.hold(room, revision, sent);
                Renewal::Renewed
            }
            Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => {
                self.drop_held(room);
                warn!(%room, "lost the room's lease: it expired or another node took it");
                Renewal::Lost
            }
            Err(_) if Instant::now() >= held.trusted_until => {
                self.drop_held(room);
                warn!(%room, "the room's lease ran out while NATS did not answer");
                Renewal::Lapsed
            }
            Err(error) => {
                debug!(%room, %error, "renewal failed; retrying");
                Renewal::Retry
            }
        }
    }

    /// Gives a held lease up, so another node may take the room at once.
    pub async fn release(&self, room: &RoomId) {
        let Some(held) = self.drop_held(room) else { return };
        if let Err(error) = self.store.delete_expect_revision(room.as_str(), Some(held.revision)).await {
            debug!(%room, %error, "could not release the lease; it expires on its own");
        }
    }

    /// Whether this node holds the room's lease and may still count on it.
    pub fn holds(&self, room: &RoomId) -> bool {
        self.held(room).is_some_and(|held| Instant::now() < held.trusted_until)
    }

    /// Forgets the leases this node can no longer count on at `now` (their renewals did not get through in time)
    /// and returns their rooms: another node may take them soon, so this one must stop serving them first.
    pub fn drop_untrusted(&self, now: Instant) -> Vec<RoomId> {
        let mut held = self.lock();
        let untrusted: Vec<RoomId> =
            held.iter().filter(|(_, lease)| now >= lease.trusted_until).map(|(room, _)| room.clone()).collect();
        for room in &untrusted {
            held.remove(room);
        }
        untrusted
    }

    /// The rooms whose leases this node holds.
    pub fn held_rooms(&self) -> Vec<RoomId> {
        self.lock().keys().cloned().collect()
    }

    /// The held lease of a room.
    pub fn held(&self, room: &RoomId) -> Option<Held> {
        self.lock().get(room).copied()
    }

    fn hold(&self, room: &RoomId, revision: u64, sent: Instant) {
        let trusted_until = sent + LEASE_TTL - LEASE_MARGIN;
        self.lock().insert(room.clone(), Held { revision, trusted_until });
    }

    fn drop_held(&self, room: &RoomId) -> Option<Held> {
        self.lock().remove(room)
    }

    fn value(&self) -> bytes::Bytes {
        let expires_at_ms = now_ms() + LEASE_TTL.as_millis() as u64;
        let value = LeaseValue { owner: self.node.clone(), expires_at_ms };
        serde_json::to_vec(&value).expect("LeaseValue serializes").into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, Held>> {
        self.held.lock().expect("lease table lock")
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
