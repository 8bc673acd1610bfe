//! What every connection, request and listener of a running server shares: the room engine, who may connect, the
//! metrics, the configuration and the shutdown signal. One type for both transports and the HTTP API, so a limit or
//! a rule they share is read from one place.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::Admission;
use crate::auth::Auth;
use crate::cluster::{Cluster, ClusterError, Route};
use crate::config::ServerConfig;
use crate::driver::WriteBudget;
use crate::engine::{RoomId, Rooms};
use crate::metrics::Metrics;
use crate::room_info::CertificateHash;
use crate::room_threads::RoomThreads;
use crate::tls::Certificates;

/// The server's shared state, behind one `Arc` ([`Context`]).
pub struct ServerContext {
    pub rooms: Arc<Rooms>,
    /// Origin allow-list, connect and room-creation rates.
    pub admission: Admission,
    /// Token checks and the admin token.
    pub auth: Arc<Auth>,
    pub metrics: Arc<Metrics>,
    pub config: ServerConfig,
    /// Cancelled when the server shuts down: every connection closes with 1001.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks so that shutdown can wait for them to say goodbye.
    pub connections: TaskTracker,
    /// The bytes of large writes all connections together may have in flight (`--write-budget-bytes`).
    pub write_budget: Arc<WriteBudget>,
    /// The WebTransport listener, for room results (`None` with `--no-webtransport`).
    pub webtransport: Option<WebTransportInfo>,
    /// With `--cluster`: room info names each room's owner node (see [`crate::cluster`]).
    pub cluster: Option<Arc<Cluster>>,
    /// Where room connections run (`--room-threads`).
    pub room_threads: RoomThreads,
}

impl ServerContext {
    /// Where `room`'s traffic goes: always here without a cluster.
    pub async fn route(&self, room: &RoomId) -> Result<Route, ClusterError> {
        match &self.cluster {
            Some(cluster) => cluster.route(room).await,
            None => Ok(Route::Here),
        }
    }
}

/// How handlers and tasks hold the server's shared state (axum's `State` needs `Clone`).
pub type Context = Arc<ServerContext>;

/// What room results publish about the WebTransport listener: here rather than in `webtransport/`, so that the HTTP
/// API answers room info without depending on the transport.
#[derive(Clone)]
pub struct WebTransportInfo {
    pub port: u16,
    pub certificates: Arc<Certificates>,
}

impl WebTransportInfo {
    /// The hashes a browser needs for `serverCertificateHashes` (empty with an operator certificate).
    pub fn certificate_hashes(&self) -> Vec<CertificateHash> {
        self.certificates.hashes()
    }
}
