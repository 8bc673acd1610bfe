//! The axum application: room API, WebSocket connections, HTTP send, health, and the demos' static files (from
//! `--static-dir`, a build in the checkout, or the copy embedded in the binary).

mod error;
mod listener;
mod rooms;
mod send;
mod websocket;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::cors::{Any, CorsLayer};
use tower_http::services::ServeDir;

pub use listener::{DrainBeforeClose, HttpBounds, serve};

use crate::admission::Admission;
use crate::auth::Auth;
use crate::cluster::Cluster;
use crate::config::ServerConfig;
use crate::engine::Rooms;
use crate::metrics::Metrics;
use crate::webtransport::WebTransportInfo;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub rooms: Arc<Rooms>,
    /// Origin allow-list and connect rates, shared with the WebTransport listener.
    pub admission: Arc<Admission>,
    /// Token checks and the admin token, shared with the WebTransport listener.
    pub auth: Arc<Auth>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<ServerConfig>,
    /// Cancelled when the server shuts down: every connection closes with 1001.
    pub shutdown: CancellationToken,
    /// Tracks connection tasks so that shutdown can wait for them to say goodbye.
    pub connections: TaskTracker,
    /// The WebTransport listener, for room results (`None` with `--no-webtransport`).
    pub webtransport: Option<WebTransportInfo>,
    /// With `--cluster`: room info names each room's owner node (src/cluster).
    pub cluster: Option<Arc<Cluster>>,
}

/// Builds the HTTP router.
pub fn router(state: AppState) -> Router {
    let cors = CorsLayer::new().allow_origin(Any).allow_methods(Any).allow_headers(Any);
    let body_limit = DefaultBodyLimit::max(state.config.max_message_bytes);
    let static_dir = state.config.resolved_static_dir();
    let router = Router::new()
        .route("/new", post(rooms::new_room))
        .route("/room/{id}", get(rooms::room_info))
        .route("/room/{id}/connect", get(websocket::connect))
        .route("/room/{id}/send", post(send::send))
        .route("/room/{id}/inspect", get(rooms::inspect))
        .route("/inspect", get(crate::embedded::inspect))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(body_limit)
        .layer(cors)
        .with_state(state);
    match static_dir {
        Some(dir) => {
            tracing::info!(dir = %dir.display(), "serving static files at /");
            router.fallback_service(ServeDir::new(dir))
        }
        None => {
            tracing::info!(demos = crate::embedded::has_demos(), "serving the files built into the binary at /");
            router.fallback(crate::embedded::serve)
        }
    }
}

/// `ok`, or 503 with the reason while a cluster node cannot reach NATS (it still serves the rooms it owns).
async fn healthz(State(state): State<AppState>) -> (axum::http::StatusCode, String) {
    match state.cluster.as_ref().map(|cluster| cluster.health()) {
        Some(Err(problem)) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, problem.to_string()),
        _ => (axum::http::StatusCode::OK, "ok".to_owned()),
    }
}

async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(axum::http::header::CONTENT_TYPE, content_type)], state.metrics.render(&state.rooms))
}
