//! Finding a room's owner, and placing a room nobody owns.
//!
//! Any node answers for any room: it reads the room's lease; if a live node holds it, that node is the owner. If
//! nobody holds it (or the lease expired), the live nodes are tried in rendezvous order for the room: this node
//! takes the lease itself when it comes first, and asks any other node to take it over NATS
//! (`driftdb.cluster.claim.NODE`, a request whose reply names the owner). A node that does not answer in time is
//! skipped, so a dead preferred node costs one [`CLAIM_TIMEOUT`], not the room.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Cluster, ClusterError, NodeInfo, placement};
use crate::engine::RoomId;

/// How long a node waits for another to answer a claim.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(1);

/// The subject a node takes claims on.
fn claim_subject(node: &str) -> String {
    format!("driftdb.cluster.claim.{node}")
}

/// What a room's lease says, seen from this node.
enum Lookup {
    /// A live node holds the room.
    Owner(NodeInfo),
    /// Nobody holds it: it may be taken with `create` (`None`) or by replacing the expired lease at this revision.
    Free(Option<u64>),
}

impl Cluster {
    /// The node that owns `room`, placing the room on a live node if nobody owns it yet.
    pub async fn owner_of(&self, room: &RoomId) -> Result<NodeInfo, ClusterError> {
        if self.leases.holds(room) {
            return Ok(self.own_info());
        }
        match self.settled_lookup(room).await? {
            Lookup::Owner(owner) => Ok(owner),
            Lookup::Free(_) => self.place(room).await,
        }
    }

    /// Whether any node holds `room` (a silent holder whose lease has not ended counts): nothing is placed.
    pub async fn room_exists(&self, room: &RoomId) -> Result<bool, ClusterError> {
        if self.leases.holds(room) {
            return Ok(true);
        }
        match self.settled_lookup(room).await {
            Ok(Lookup::Owner(_)) | Err(ClusterError::OwnerGone { .. }) => Ok(true),
            Ok(Lookup::Free(_)) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Asks the live nodes in rendezvous order to take the room; the first that answers owns it (or names who
    /// does, if another node won the race).
    async fn place(&self, room: &RoomId) -> Result<NodeInfo, ClusterError> {
        let live = self.members.live();
        let ids = live.iter().map(|node| node.id.as_str()).chain([self.id.as_str()]);
        for candidate in placement::ranked(room.as_str(), ids) {
            let answer =
                if candidate == self.id { self.claim_here(room).await } else { self.ask(candidate, room).await };
            match answer {
                Ok(owner) => return Ok(owner),
                Err(error) => {
                    debug!(%room, node = candidate, %error, "could not place the room there; trying the next")
                }
            }
        }
        Err(ClusterError::NoOwner { room: room.to_string() })
    }

    /// Takes the room here unless a live node already holds it: what this node does for a claim.
    pub(super) async fn claim_here(&self, room: &RoomId) -> Result<NodeInfo, ClusterError> {
        // Concurrent claims of one room on this node (its own lookup and other nodes' requests) go one at a time:
        // a loser would otherwise read this node's fresh lease before the winner recorded it as held, and take it
        // for an earlier run's.
        let _one_at_a_time = self.claim_lock(room).lock().await;
        if self.leases.holds(room) {
            return Ok(self.own_info());
        }
        let expected = match self.lookup(room).await? {
            Lookup::Owner(owner) => return Ok(owner),
            Lookup::Free(expected) => expected,
        };
        self.ensure_connected()?;
        if !self.leases.take(room, expected).await? {
            // Another node won this revision: it is the owner.
            return match self.lookup(room).await? {
                Lookup::Owner(owner) => Ok(owner),
                Lookup::Free(_) => Err(ClusterError::Contended { room: room.to_string() }),
            };
        }
        // The owner keeps the room in memory: the lease lives as long as the room does (see `renew_leases`).
        if let Err(error) = self.rooms.get_or_create(room) {
            self.leases.release(room).await;
            return Err(ClusterError::Room(error.to_string()));
        }
        Ok(self.own_info())
    }

    fn claim_lock(&self, room: &RoomId) -> &tokio::sync::Mutex<()> {
        let stripe = placement::stripe(room.as_str(), self.claim_locks.len());
        &self.claim_locks[stripe]
    }

    /// [`lookup`](Self::lookup) for callers outside a claim. A claim on this node writes the lease before it records
    /// the room as held, so a lookup in between reads this node's fresh lease as an earlier run's and would answer
    /// that this very node is not answering: once the claims in flight here are done, the lease is held or truly old.
    async fn settled_lookup(&self, room: &RoomId) -> Result<Lookup, ClusterError> {
        match self.lookup(room).await {
            Err(ClusterError::OwnerGone { owner, .. }) if owner == self.id => {
                drop(self.claim_lock(room).lock().await);
                if self.leases.holds(room) { Ok(Lookup::Owner(self.own_info())) } else { self.lookup(room).await }
            }
            other => other,
        }
    }

    async fn lookup(&self, room: &RoomId) -> Result<Lookup, ClusterError> {
        self.ensure_connected()?;
        let Some(lease) = self.leases.read(room).await? else { return Ok(Lookup::Free(None)) };
        let owner = &lease.value.owner;
        if *owner == self.id && self.leases.holds(room) {
            return Ok(Lookup::Owner(self.own_info()));
        }
        // A lease of this node's id that it does not hold is an earlier run's: it is dead like any silent node.
        if *owner != self.id
            && let Some(info) = self.members.live_node(owner)
        {
            return Ok(Lookup::Owner(info));
        }
        if lease.expired() {
            return Ok(Lookup::Free(Some(lease.revision)));
        }
        // Its holder is silent but may still be serving (cut off from NATS): nobody may take it before it ends.
        Err(ClusterError::OwnerGone { room: room.to_string(), owner: owner.clone(), retry_after: lease.remaining() })
    }

    /// Asks `node` to take the room.
    async fn ask(&self, node: &str, room: &RoomId) -> Result<NodeInfo, ClusterError> {
        let request = self.client.request(claim_subject(node), room.to_string().into());
        let reply = tokio::time::timeout(CLAIM_TIMEOUT, request)
            .await
            .map_err(|_| ClusterError::Nats(format!("node {node} did not answer in {CLAIM_TIMEOUT:?}")))?
            .map_err(ClusterError::nats)?;
        let answer: Result<NodeInfo, String> = serde_json::from_slice(&reply.payload)
            .map_err(|error| ClusterError::Nats(format!("malformed claim reply from {node}: {error}")))?;
        answer.map_err(|problem| ClusterError::Remote { node: node.to_owned(), problem })
    }

    /// Answers other nodes' claims until `shutdown`.
    pub(super) async fn serve_claims(self: Arc<Self>, shutdown: CancellationToken) {
        let mut claims = match self.client.subscribe(claim_subject(&self.id)).await {
            Ok(claims) => claims,
            Err(error) => return warn!(%error, "cannot take claims: other nodes will not place rooms here"),
        };
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return,
                message = claims.next() => match message {
                    Some(message) => message,
                    None => return,
                },
            };
            let cluster = self.clone();
            tokio::spawn(async move { cluster.answer_claim(message).await });
        }
    }

    async fn answer_claim(&self, message: async_nats::Message) {
        let Some(reply) = message.reply else { return };
        let answer = match std::str::from_utf8(&message.payload).ok().and_then(|id| RoomId::parse(id).ok()) {
            Some(room) => self.claim_here(&room).await.map_err(|error| error.to_string()),
            None => Err("malformed room id".to_owned()),
        };
        let payload = serde_json::to_vec(&answer).expect("a claim answer serializes");
        if let Err(error) = self.client.publish(reply, payload.into()).await {
            debug!(%error, "could not answer a claim");
        }
    }
}
