//! Starting and stopping the whole server: the HTTP/WebSocket listener around one room engine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::admission::Admission;
use crate::auth::{Auth, AuthError};
use crate::cluster::{Cluster, ClusterError, forwarding};
use crate::config::ServerConfig;
use crate::context::{Context, ServerContext};
use crate::driver::WriteBudget;
use crate::engine::Rooms;
use crate::http::{self, router};
use crate::metrics::Metrics;
use crate::room_threads::RoomThreads;
use crate::storage::jetstream_store::JetStreamBackend;
use crate::storage::redb_store::RedbBackend;
use crate::storage::{BackendError, DiskJournal, StorageKind};
use crate::tls::TlsError;
use crate::webtransport::{self, WebTransportError, WebTransportServer};

/// How long shutdown waits for connections to flush their queues and say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] crate::config_check::InvalidSetting),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot start WebTransport: {0}")]
    WebTransport(#[from] WebTransportError),
    #[error("cannot make the WebTransport certificate: {0}")]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("cannot open the store in {dir}: {source}")]
    Storage { dir: std::path::PathBuf, source: BackendError },
    #[error("cannot open the cluster's store: {0}")]
    ClusterStorage(BackendError),
    #[error("cannot start the room threads: {0}")]
    RoomThreads(std::io::Error),
    #[error("cannot join the cluster")]
    Cluster(#[from] ClusterError),
}

/// Attempts at finding a port number free on both TCP and UDP when the port is picked automatically.
const PORT_PAIR_ATTEMPTS: usize = 20;

/// A running server. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    http_addr: SocketAddr,
    rooms: Arc<Rooms>,
    shutdown: CancellationToken,
    connections: TaskTracker,
    http_task: JoinHandle<()>,
    webtransport: Option<WebTransportServer>,
    /// The durable store, unless `--storage memory`.
    storage: Option<Arc<DiskJournal>>,
    /// This node's membership, with `--cluster`.
    cluster: Option<Arc<Cluster>>,
}

impl RunningServer {
    /// Binds the listeners and starts serving.
    pub async fn start(config: ServerConfig) -> Result<Self, ServerError> {
        config.validate()?;
        let auth = Arc::new(Auth::load(&config.auth)?);
        let (listener, webtransport) = bind_listeners(&config).await?;
        let http_addr =
            listener.local_addr().map_err(|source| ServerError::Bind { addr: http_addr_of(&config), source })?;
        let mut config = config;
        config.port = http_addr.port();

        let storage = open_storage(&config)?;
        let limits = config.limits.engine_limits();
        let rooms = Arc::new(match &storage {
            Some(journal) => Rooms::with_journal(limits, journal.clone()),
            None => Rooms::new(limits),
        });
        let cluster = join_cluster(&config, &rooms, webtransport.as_ref()).await?;
        let mut metrics = Metrics::new();
        if let Some(cluster) = &cluster {
            metrics.watch_cluster(cluster.clone());
        }
        if let Some(webtransport) = &webtransport {
            metrics.watch_udp(webtransport.port(), webtransport.receive_buffer());
        }
        let metrics = Arc::new(metrics);
        if let Some(journal) = &storage {
            metrics.watch_storage(journal.clone());
        }
        let write_budget = Arc::new(WriteBudget::new(config.write_budget_bytes));
        let room_threads = RoomThreads::start(config.room_threads).map_err(ServerError::RoomThreads)?;
        let context: Context = Arc::new(ServerContext {
            rooms,
            admission: Admission::new(&config.limits),
            auth,
            metrics,
            config,
            shutdown: CancellationToken::new(),
            connections: TaskTracker::new(),
            write_budget,
            webtransport: webtransport.as_ref().map(WebTransportServer::info),
            cluster: cluster.clone(),
            room_threads,
        });
        let (rooms, shutdown, connections) =
            (context.rooms.clone(), context.shutdown.clone(), context.connections.clone());
        tokio::spawn(sweep(context.clone()));
        if let Some(cluster) = &cluster {
            tokio::spawn(forwarding::owner::serve(context.clone(), cluster.clone()));
        }
        if let Some(webtransport) = &webtransport {
            webtransport.start(&context);
        }
        let bounds = context.config.limits.http_bounds();
        let app = router(context);
        let http_task = tokio::spawn(http::serve(listener, app, bounds, shutdown.clone(), SHUTDOWN_GRACE));
        info!(%http_addr, "listening");
        Ok(RunningServer { http_addr, rooms, shutdown, connections, http_task, webtransport, storage, cluster })
    }

    /// The bound HTTP/WebSocket address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The UDP port of the WebTransport listener, unless it is turned off.
    pub fn webtransport_port(&self) -> Option<u16> {
        self.webtransport.as_ref().map(WebTransportServer::port)
    }

    /// The room registry (for tests and tools).
    pub fn rooms(&self) -> &Arc<Rooms> {
        &self.rooms
    }

    /// The durable store, unless `--storage memory` (for tests and tools).
    pub fn storage(&self) -> Option<&Arc<DiskJournal>> {
        self.storage.as_ref()
    }

    /// Stops accepting, tells every client with 1001, flushes what is queued, and waits a bounded time; then makes
    /// every stored write durable and marks the store cleanly stopped, so every room keeps its epoch.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.connections.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.connections.wait()).await.is_err() {
            warn!("some connections did not close in time");
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.http_task).await;
        if let Some(webtransport) = self.webtransport {
            webtransport.stop().await;
        }
        if let Some(storage) = self.storage {
            self.rooms.checkpoint();
            match tokio::task::spawn_blocking(move || storage.stop()).await {
                Ok(Ok(())) => info!("store closed cleanly"),
                Ok(Err(error)) => warn!(%error, "store did not close cleanly"),
                Err(error) => warn!(%error, "store did not close cleanly"),
            }
        }
        // Only once the store has every write and the rooms' release: the next owner then keeps their epochs.
        if let Some(cluster) = self.cluster {
            cluster.leave().await;
        }
    }
}

/// Periodically frees what idle clients left behind: expired rooms and the connect-rate table's quiet addresses.
async fn sweep(context: Context) {
    let ServerContext { rooms, admission, shutdown, .. } = &*context;
    let period = (rooms.limits().room_ttl / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut ticker = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let expired = rooms.expire_idle(Instant::now());
        if expired > 0 {
            info!(expired, remaining = rooms.len(), "expired idle rooms");
        }
        admission.forget_idle_addresses();
    }
}

/// Opens the embedded store unless `--storage memory`, and says where it is.
fn open_storage(config: &ServerConfig) -> Result<Option<Arc<DiskJournal>>, ServerError> {
    match config.storage {
        StorageKind::Memory => {
            info!("storage: memory (rooms are lost at restart)");
            return Ok(None);
        }
        StorageKind::Jetstream => {
            let url = config.cluster.nats_url.as_deref().expect("the config check requires --cluster");
            let node = config.cluster.node_id.as_deref().unwrap_or("node");
            // Unique per run (64 random bits), so that a restarted node's `Released` never closes an earlier run.
            let run = format!("{node}-{}", crate::engine::new_epoch());
            let backend = JetStreamBackend::open(url, run).map_err(ServerError::ClusterStorage)?;
            return Ok(Some(DiskJournal::start(backend, config.storage_queue_bytes)));
        }
        StorageKind::Embedded => {}
    }
    let dir = &config.data_dir;
    let ttl = Duration::from_secs(config.limits.room_ttl_secs);
    let started = std::time::Instant::now();
    let (backend, report) =
        RedbBackend::open(dir, ttl).map_err(|source| ServerError::Storage { dir: dir.clone(), source })?;
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
    info!(
        data_dir = %absolute.display(),
        rooms = report.rooms,
        expired = report.expired,
        elapsed = ?started.elapsed(),
        "storage: embedded"
    );
    if report.unclean {
        warn!(
            renewed = report.epochs_renewed,
            "the last run did not stop cleanly: rooms it used get a new epoch, so their clients replay"
        );
    }
    Ok(Some(DiskJournal::start(backend, config.storage_queue_bytes)))
}

/// Joins the cluster with `--cluster` (after binding, so that this node announces the ports it really has).
async fn join_cluster(
    config: &ServerConfig,
    rooms: &Arc<Rooms>,
    webtransport: Option<&WebTransportServer>,
) -> Result<Option<Arc<Cluster>>, ServerError> {
    if config.cluster.nats_url.is_none() {
        return Ok(None);
    }
    Ok(Some(Cluster::join(config, rooms.clone(), webtransport.map(WebTransportServer::info)).await?))
}

fn http_addr_of(config: &ServerConfig) -> SocketAddr {
    SocketAddr::new(config.host, config.port)
}

/// Binds the TCP listener and, unless turned off, the WebTransport endpoints: by default on the same port number.
/// With `--port 0` the TCP port is picked first; if its number is taken on UDP, another pair is tried.
async fn bind_listeners(config: &ServerConfig) -> Result<(TcpListener, Option<WebTransportServer>), ServerError> {
    let addr = http_addr_of(config);
    let certificates = config.webtransport_enabled().then(|| webtransport::certificates(config)).transpose()?;
    let retry = config.port == 0 && config.wt_port.is_none();
    let mut attempts = 0;
    loop {
        let listener = TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })?;
        let Some(certificates) = &certificates else { return Ok((listener, None)) };
        let tcp_port = listener.local_addr().map_err(|source| ServerError::Bind { addr, source })?.port();
        match WebTransportServer::bind(config, certificates.clone(), config.wt_port.unwrap_or(tcp_port)) {
            Ok(webtransport) => return Ok((listener, Some(webtransport))),
            Err(error) if retry && error.is_addr_in_use() && attempts < PORT_PAIR_ATTEMPTS => attempts += 1,
            Err(error) => return Err(error.into()),
        }
    }
}
