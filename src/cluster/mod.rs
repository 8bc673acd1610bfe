//! A cluster of driftdb nodes coordinated through NATS JetStream (`driftdb serve --cluster nats://HOST:4222`; see
//! `docs/cluster.md`).
//!
//! - [`membership`]: each node heartbeats its URLs into the `driftdb-nodes` bucket; the live set is who did so
//!   lately.
//! - [`lease`]: a room's owner is whoever holds its lease in the `driftdb-rooms` bucket, taken by compare-and-set
//!   and renewed while the node lives, with the revision as the fence.
//! - [`placement`]: rendezvous hashing ranks the live nodes for a room, the same on every node.
//! - `routing`: any node answers room info with the owner's URLs, placing a room nobody owns.
//! - [`forwarding`]: a connection or HTTP send that reaches a node other than the owner is forwarded to it.
//!
//! The [`Cluster`] handle ties them together; the HTTP room API consults it when the server runs with `--cluster`.

pub mod forwarding;
pub mod lease;
pub mod membership;
pub mod placement;
mod routing;

use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::close::CloseReason;
use crate::config::ServerConfig;
use crate::context::WebTransportInfo;
use crate::engine::{RoomId, Rooms};
pub use lease::{Leases, Renewal};
pub use membership::{Membership, NodeInfo};

/// How long a NATS request (a KV read or write) may take before it counts as failed: short, so that a lost NATS
/// turns into a clear error quickly instead of a hung room request.
const NATS_TIMEOUT: Duration = Duration::from_secs(2);
/// Locks that claims of rooms are spread over: enough that unrelated rooms rarely wait for each other.
const CLAIM_LOCK_STRIPES: usize = 64;
/// How often the client pings NATS when idle.
const PING_INTERVAL: Duration = Duration::from_secs(2);
/// How often a node checks that it may still count on each lease it holds.
const LEASE_CHECK: Duration = Duration::from_millis(200);
/// Leases renewed at once: renewals are independent round trips, and many rooms must all fit in one tick.
const RENEWALS_IN_FLIGHT: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach NATS at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("cannot open the JetStream bucket {bucket} (is nats-server running with -js?): {message}")]
    Bucket { bucket: &'static str, message: String },
    #[error("NATS is unreachable: this node serves the rooms it owns but takes no new ones")]
    Disconnected,
    #[error("NATS: {0}")]
    Nats(String),
    #[error(
        "room {room} is owned by node {owner}, which is not answering; its lease ends within {}s",
        retry_after.as_secs() + 1
    )]
    OwnerGone { room: String, owner: String, retry_after: Duration },
    #[error("no live node could take room {room}")]
    NoOwner { room: String },
    #[error("nodes are racing for room {room}; try again")]
    Contended { room: String },
    #[error("node {node} refused the room: {problem}")]
    Remote { node: String, problem: String },
    #[error("{0}")]
    Room(String),
}

impl ClusterError {
    fn nats(error: impl std::fmt::Display) -> Self {
        ClusterError::Nats(error.to_string())
    }

    fn bucket(bucket: &'static str, error: &dyn std::error::Error) -> Self {
        // The interesting part (e.g. "jetstream not enabled") is in the source chain.
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
        ClusterError::Bucket { bucket, message }
    }
}

/// What `/metrics` and `/healthz` report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterStatus {
    pub connected: bool,
    /// Nodes heard from lately, this one included.
    pub live_nodes: usize,
    /// Room leases this node holds.
    pub leases: usize,
}

/// Where a room's traffic goes, seen from this node.
#[derive(Clone, Debug)]
pub enum Route {
    /// This node owns the room (or runs without a cluster).
    Here,
    /// Another node does: its traffic is forwarded there.
    Owner(NodeInfo),
}

/// This node's membership in a cluster.
pub struct Cluster {
    id: String,
    public_url: String,
    webtransport: Option<WebTransportInfo>,
    client: async_nats::Client,
    members: Membership,
    leases: Leases,
    rooms: Arc<Rooms>,
    /// Serializes claims of one room on this node (striped: a lock per room would need cleaning up).
    claim_locks: [tokio::sync::Mutex<()>; CLAIM_LOCK_STRIPES],
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Cluster {
    /// Connects to NATS, opens the buckets, announces this node and starts its heartbeat, lease renewal and claim
    /// tasks. Fails at once if NATS cannot be reached: a node that cannot coordinate must not serve as if alone.
    pub async fn join(
        config: &ServerConfig,
        rooms: Arc<Rooms>,
        webtransport: Option<WebTransportInfo>,
    ) -> Result<Arc<Self>, ClusterError> {
        let url = config.cluster.nats_url.clone().expect("join is called with --cluster");
        let id = config.cluster.node_id.clone().unwrap_or_else(random_node_id);
        let public_url = config.public_url.clone().unwrap_or_else(|| listening_url(config));
        let client = connect(&url, &id).await?;
        let jetstream = jetstream_of(client.clone());
        let members = Membership::open(&jetstream).await?;
        let leases = Leases::open(&jetstream, &id).await?;
        let cluster = Arc::new(Cluster {
            id,
            public_url,
            webtransport,
            client,
            members,
            leases,
            rooms,
            claim_locks: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        cluster.members.announce(&cluster.own_info()).await?;
        cluster.start_tasks();
        info!(node = %cluster.id, %url, public_url = %cluster.public_url, "joined the cluster");
        Ok(cluster)
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.id
    }

    /// The NATS connection, for [`forwarding`].
    pub(crate) fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The largest message the NATS server takes.
    pub(crate) fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }

    /// Whether `node` is this one or heartbeats lately.
    pub fn is_live(&self, node: &str) -> bool {
        node == self.id || self.members.live_node(node).is_some()
    }

    /// Whether this node holds `room`'s lease now.
    pub fn holds(&self, room: &RoomId) -> bool {
        self.leases.holds(room)
    }

    /// Where a connection or send for `room` goes: here, or to its owner elsewhere (placing the room if nobody
    /// owns it).
    pub async fn route(&self, room: &RoomId) -> Result<Route, ClusterError> {
        let owner = self.owner_of(room).await?;
        Ok(if owner.id == self.id { Route::Here } else { Route::Owner(owner) })
    }

    /// What this node announces: its URLs and current certificate hashes.
    pub fn own_info(&self) -> NodeInfo {
        NodeInfo {
            id: self.id.clone(),
            public_url: self.public_url.clone(),
            webtransport_port: self.webtransport.as_ref().map(|wt| wt.port),
            certificate_hashes: self
                .webtransport
                .as_ref()
                .map(WebTransportInfo::certificate_hashes)
                .unwrap_or_default(),
        }
    }

    pub fn status(&self) -> ClusterStatus {
        let mut live = self.members.live();
        if !live.iter().any(|node| node.id == self.id) {
            live.push(self.own_info());
        }
        ClusterStatus { connected: self.connected(), live_nodes: live.len(), leases: self.leases.held_rooms().len() }
    }

    /// `Err` with the reason while this node cannot coordinate (for `/healthz`).
    pub fn health(&self) -> Result<(), ClusterError> {
        self.ensure_connected()
    }

    /// Stops the tasks, gives up every lease (so other nodes may take the rooms at once) and deletes this node's
    /// entry (so they stop placing rooms here).
    pub async fn leave(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        let rooms = self.leases.held_rooms();
        futures_util::stream::iter(rooms)
            .for_each_concurrent(RENEWALS_IN_FLIGHT, |room| async move { self.leases.release(&room).await })
            .await;
        if let Err(error) = self.members.leave(&self.id).await {
            warn!(%error, "could not delete this node's entry; it expires on its own");
        }
        let _ = self.client.flush().await;
        info!(node = %self.id, "left the cluster");
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    fn ensure_connected(&self) -> Result<(), ClusterError> {
        if self.connected() { Ok(()) } else { Err(ClusterError::Disconnected) }
    }

    fn start_tasks(self: &Arc<Self>) {
        let shutdown = self.shutdown.clone();
        let cluster = self.clone();
        self.tasks.spawn(async move { cluster.members.watch(shutdown).await });
        self.tasks.spawn(self.clone().serve_claims(self.shutdown.clone()));
        self.tasks.spawn(self.clone().heartbeat());
        self.tasks.spawn(self.clone().renew_leases());
        self.tasks.spawn(self.clone().enforce_leases());
    }

    /// Stops serving every room whose lease this node can no longer count on, as soon as that happens: checked on
    /// its own short tick, because a renewal stuck on an unreachable NATS may take longer than the margin.
    async fn enforce_leases(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(LEASE_CHECK);
        while self.tick(&mut ticker).await {
            for room in self.leases.drop_untrusted(std::time::Instant::now()) {
                warn!(%room, "the room's lease could not be renewed in time: closing its connections");
                self.rooms.evict(&room, CloseReason::GoingAway);
            }
        }
    }

    /// Re-puts this node's entry every heartbeat; failures only log (membership expiry is the other nodes' view
    /// of them).
    async fn heartbeat(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(membership::HEARTBEAT);
        let mut failing = false;
        while self.tick(&mut ticker).await {
            match self.members.announce(&self.own_info()).await {
                Ok(()) if failing => {
                    failing = false;
                    info!("heartbeats reach NATS again");
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    failing = true;
                    warn!(%error, "heartbeat failed: other nodes will consider this one gone");
                }
                Err(_) => {}
            }
        }
    }

    /// Renews every held lease each [`lease::LEASE_RENEW`]; a room that left memory (it expired) gives its lease
    /// up instead.
    async fn renew_leases(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(lease::LEASE_RENEW);
        let cluster = &*self;
        while cluster.tick(&mut ticker).await {
            let rooms = cluster.leases.held_rooms();
            futures_util::stream::iter(rooms)
                .for_each_concurrent(RENEWALS_IN_FLIGHT, |room| async move {
                    if cluster.rooms.get(&room).is_none() {
                        cluster.leases.release(&room).await;
                    } else if let Renewal::Lost | Renewal::Lapsed = cluster.leases.renew(&room).await {
                        // Another node may own it now: this one must not take one more write for it.
                        cluster.rooms.evict(&room, CloseReason::GoingAway);
                    }
                })
                .await;
        }
    }

    /// Waits for the next tick; `false` once the cluster is shutting down.
    async fn tick(&self, ticker: &mut tokio::time::Interval) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = ticker.tick() => true,
        }
    }
}

/// Connects to NATS, once: an unreachable server at start is an error, not a wait. Once connected, the client
/// reconnects on its own for as long as the node runs.
async fn connect(url: &str, node: &str) -> Result<async_nats::Client, ClusterError> {
    let options = async_nats::ConnectOptions::new()
        .name(format!("driftdb {node}"))
        .connection_timeout(NATS_TIMEOUT)
        .request_timeout(Some(NATS_TIMEOUT))
        // A NATS server that vanished without closing the socket (a partition) is noticed within a few pings,
        // not the default minutes, so /healthz and the metrics say so while leases are still trusted.
        .ping_interval(PING_INTERVAL)
        .max_reconnects(None)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Disconnected => warn!("lost NATS: taking no new rooms until it is back"),
                async_nats::Event::Connected => info!("connected to NATS"),
                other => info!(event = %other, "NATS"),
            }
        });
    options
        .connect(url)
        .await
        .map_err(|error| ClusterError::Connect { url: url.to_owned(), message: error.to_string() })
}

/// The JetStream API on `client`, for a test or tool that works with the buckets directly.
pub async fn nats_jetstream(url: &str, name: &str) -> Result<jetstream::Context, ClusterError> {
    Ok(jetstream_of(connect(url, name).await?))
}

/// Opens a KV bucket whose entries live `max_age` after their last write, creating it on first use (every node
/// asks for the same settings). The bucket's stream is declared here rather than through
/// `create_or_update_key_value`, whose account query needs nats-server 2.10 or newer: Debian ships 2.9. The settings
/// are what a KV bucket is (see the NATS KV spec): one message per key, rollups and direct gets on, deletes only
/// as markers.
async fn open_bucket(
    jetstream: &jetstream::Context,
    bucket: &'static str,
    description: &str,
    max_age: Duration,
    storage: jetstream::stream::StorageType,
) -> Result<jetstream::kv::Store, ClusterError> {
    let stream = jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(description.to_owned()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        // JetStream refuses a duplicate window longer than the entries live.
        duplicate_window: max_age,
        storage,
        num_replicas: 1,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    };
    let failed = |error: &dyn std::error::Error| ClusterError::bucket(bucket, error);
    jetstream.create_or_update_stream(stream).await.map_err(|error| failed(&error))?;
    jetstream.get_key_value(bucket).await.map_err(|error| failed(&error))
}

fn jetstream_of(client: async_nats::Client) -> jetstream::Context {
    let mut jetstream = jetstream::new(client);
    jetstream.set_timeout(NATS_TIMEOUT);
    jetstream
}

/// 64 random bits in hex: unique enough among a cluster's nodes, and a valid subject token and KV key.
fn random_node_id() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    hex::encode(bytes)
}

/// `http://HOST:PORT` of the listener, for a node without `--public-url` (its host is a concrete address: the
/// config check refuses `--cluster` on 0.0.0.0 without `--public-url`).
fn listening_url(config: &ServerConfig) -> String {
    format!("http://{}", std::net::SocketAddr::new(config.host, config.port))
}
