//! The axum application: room API, the WebSocket endpoint (served by [`crate::websocket`]), HTTP send, health, and
//! the demos' static files (from `--static-dir`, a build in the checkout, or the copy embedded in the binary).

mod error;
mod listener;
mod rooms;
mod send;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use tower_http::cors::{Any, CorsLayer};
use tower_http::services::ServeDir;

pub use error::ApiError;
pub use listener::{DrainBeforeClose, HttpBounds, serve};
pub use rooms::parse_room_id;
pub use send::send_refusal;

use crate::context::Context;

/// Builds the HTTP router.
pub fn router(state: Context) -> Router {
    let cors = CorsLayer::new().allow_origin(Any).allow_methods(Any).allow_headers(Any);
    let body_limit = DefaultBodyLimit::max(state.config.max_message_bytes);
    let static_dir = state.config.resolved_static_dir();
    let router = Router::new()
        .route("/new", post(rooms::new_room))
        .route("/room/{id}", get(rooms::room_info))
        .route("/room/{id}/connect", get(crate::websocket::connect))
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
async fn healthz(State(state): State<Context>) -> (axum::http::StatusCode, String) {
    match state.cluster.as_ref().map(|cluster| cluster.health()) {
        Some(Err(problem)) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, problem.to_string()),
        _ => (axum::http::StatusCode::OK, "ok".to_owned()),
    }
}

async fn metrics(State(state): State<Context>) -> impl axum::response::IntoResponse {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(axum::http::header::CONTENT_TYPE, content_type)], state.metrics.render(&state.rooms))
}
