//! Which nodes are alive: each node puts its [`NodeInfo`] into the `driftdb-nodes` KV bucket every
//! [`HEARTBEAT`], and every node watches the bucket. The bucket's `max_age` drops an entry that is not re-put in
//! time, and each watcher also forgets a node it has not heard from for [`NODE_TTL`] (expiry by age sends watchers
//! no event), so a node that stops heartbeating is gone everywhere within a few seconds. A clean stop deletes the
//! entry at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::jetstream::stream::StorageType;
use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{ClusterError, open_bucket};
use crate::room_info::{CertificateHash, PublicBase, RoomInfo};

/// The bucket of live nodes.
pub const NODES_BUCKET: &str = "driftdb-nodes";
/// How often a node re-puts its entry.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node not heard from for this long is gone: three heartbeats, so one lost or late put is not a death.
pub const NODE_TTL: Duration = Duration::from_secs(3);
/// How long the watcher waits before watching again after NATS failed it.
const REWATCH_DELAY: Duration = Duration::from_millis(500);

/// What a node announces: enough for any other node to hand out its room URLs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    /// The base URL clients reach the node's HTTP and WebSocket at (`--public-url`, else its listening address).
    pub public_url: String,
    /// The UDP port of its WebTransport listener (`None` with `--no-webtransport`).
    pub webtransport_port: Option<u16>,
    /// Its current self-signed certificate hashes (they change at renewal, so each heartbeat carries them).
    #[serde(default)]
    pub certificate_hashes: Vec<CertificateHash>,
}

impl NodeInfo {
    /// The room info clients get for a room this node owns.
    pub fn room_info(&self, room: &str) -> RoomInfo {
        let webtransport = self.webtransport_port.map(|port| (port, self.certificate_hashes.clone()));
        RoomInfo::at(&PublicBase::parse(&self.public_url), room, webtransport)
    }
}

/// A node as last heard of.
struct Seen {
    info: NodeInfo,
    /// When its entry was written, on this node's clock.
    at: Instant,
}

/// The bucket, and this node's view of it.
pub struct Membership {
    store: kv::Store,
    view: Mutex<HashMap<String, Seen>>,
}

impl Membership {
    /// Opens the bucket, creating it on first use (every node asks for the same settings).
    pub async fn open(jetstream: &jetstream::Context) -> Result<Self, ClusterError> {
        let description = "driftdb nodes, re-put every second by each live node";
        // File storage, although heartbeats rebuild membership within a second: a memory stream would not exist at
        // all after a NATS restart, and the heartbeats would have nowhere to go.
        let store = open_bucket(jetstream, NODES_BUCKET, description, NODE_TTL, StorageType::File).await?;
        Ok(Membership { store, view: Mutex::default() })
    }

    /// Puts this node's entry (a heartbeat), and counts it in the view at once so this node sees itself even
    /// before its watcher delivers the put.
    pub async fn announce(&self, info: &NodeInfo) -> Result<(), ClusterError> {
        let value = serde_json::to_vec(info).expect("NodeInfo serializes");
        self.store.put(&info.id, value.into()).await.map_err(ClusterError::nats)?;
        self.seen(info.clone(), Instant::now());
        Ok(())
    }

    /// Deletes this node's entry: the others forget it at once instead of after [`NODE_TTL`].
    pub async fn leave(&self, id: &str) -> Result<(), ClusterError> {
        self.forget(id);
        self.store.delete(id).await.map_err(ClusterError::nats)
    }

    /// The nodes heard from within [`NODE_TTL`].
    pub fn live(&self) -> Vec<NodeInfo> {
        let view = self.view.lock().expect("membership lock");
        view.values().filter(|seen| seen.at.elapsed() < NODE_TTL).map(|seen| seen.info.clone()).collect()
    }

    /// `id`'s info, if it is live.
    pub fn live_node(&self, id: &str) -> Option<NodeInfo> {
        let view = self.view.lock().expect("membership lock");
        view.get(id).filter(|seen| seen.at.elapsed() < NODE_TTL).map(|seen| seen.info.clone())
    }

    /// Follows the bucket until `shutdown`, watching again whenever NATS fails the watch.
    pub async fn watch(&self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                result = self.follow() => match result {
                    Ok(()) => debug!("the membership watch ended; watching again"),
                    Err(error) => debug!(%error, "the membership watch failed; watching again"),
                },
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(REWATCH_DELAY) => {}
            }
        }
    }

    /// One watch: every current entry first, then every change.
    async fn follow(&self) -> Result<(), ClusterError> {
        let mut entries = self.store.watch_with_history(">").await.map_err(ClusterError::nats)?;
        while let Some(entry) = entries.next().await {
            self.apply(entry.map_err(ClusterError::nats)?);
        }
        Ok(())
    }

    fn apply(&self, entry: kv::Entry) {
        if entry.operation != kv::Operation::Put {
            self.forget(&entry.key);
            return;
        }
        match serde_json::from_slice::<NodeInfo>(&entry.value) {
            // The entry's age from the server's timestamp: a replayed old heartbeat must not look fresh.
            Ok(info) => self.seen(info, written_at(&entry)),
            Err(error) => warn!(key = %entry.key, %error, "ignoring a malformed node entry"),
        }
    }

    fn seen(&self, info: NodeInfo, at: Instant) {
        let mut view = self.view.lock().expect("membership lock");
        let newer = view.get(&info.id).is_none_or(|seen| seen.at <= at);
        if newer {
            view.insert(info.id.clone(), Seen { info, at });
        }
    }

    fn forget(&self, id: &str) {
        self.view.lock().expect("membership lock").remove(id);
    }
}

/// When an entry was written, as an instant of this node's clock (its age is clamped to [0, NODE_TTL] against
/// clock skew between this machine and the NATS server).
fn written_at(entry: &kv::Entry) -> Instant {
    let age = time::OffsetDateTime::now_utc() - entry.created;
    let age = Duration::try_from(age).unwrap_or(Duration::ZERO).min(NODE_TTL);
    Instant::now().checked_sub(age).unwrap_or_else(Instant::now)
}
