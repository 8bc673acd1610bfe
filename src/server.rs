//! Starting and stopping the whole server: the HTTP/WebSocket listener around one room engine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::ServerConfig;
use crate::engine::Rooms;
use crate::http::{AppState, router};

/// How long shutdown waits for connections to flush their queues and say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A running server. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    http_addr: SocketAddr,
    rooms: Arc<Rooms>,
    shutdown: CancellationToken,
    connections: TaskTracker,
    http_task: JoinHandle<()>,
}

impl RunningServer {
    /// Binds the listeners and starts serving.
    pub async fn start(config: ServerConfig) -> Result<Self, ServerError> {
        let addr = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })?;
        let http_addr = listener.local_addr().map_err(|source| ServerError::Bind { addr, source })?;
        let mut config = config;
        config.port = http_addr.port();

        let state = AppState {
            rooms: Arc::new(Rooms::new()),
            config: Arc::new(config),
            shutdown: CancellationToken::new(),
            connections: TaskTracker::new(),
        };
        let (rooms, shutdown, connections) = (state.rooms.clone(), state.shutdown.clone(), state.connections.clone());
        // Nagle's algorithm would hold small real-time messages back by tens of milliseconds.
        let listener = listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                warn!(%error, "cannot set TCP_NODELAY");
            }
        });
        let app = router(state);
        let stop = shutdown.clone();
        let http_task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
            if let Err(error) = serve.await {
                warn!(%error, "HTTP server stopped with an error");
            }
        });
        info!(%http_addr, "listening");
        Ok(RunningServer { http_addr, rooms, shutdown, connections, http_task })
    }

    /// The bound HTTP/WebSocket address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The room registry (for tests and tools).
    pub fn rooms(&self) -> &Arc<Rooms> {
        &self.rooms
    }

    /// Stops accepting, tells every client with 1001, flushes what is queued, and waits a bounded time.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.connections.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.connections.wait()).await.is_err() {
            warn!("some connections did not close in time");
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.http_task).await;
    }
}
