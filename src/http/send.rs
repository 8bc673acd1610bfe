//! `POST /room/{id}/send`: one client message over plain HTTP, answered with the direct reply as JSON.

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::rooms::parse_room_id;
use crate::auth::{self, Capability};
use crate::cluster::Route;
use crate::cluster::forwarding::{self, SendError};
use crate::context::{Context, ServerContext};
use crate::engine::{EngineError, HttpSendError, RoomId};
use crate::outgoing::Outgoing;
use crate::protocol::{ClientMessage, Dialect, json_cbor};

pub async fn send(
    State(state): State<Context>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = parse_room_id(&id)?;
    let grant = state.auth.admit(auth::request_token(&headers, query.as_deref()), &id, false)?;
    let body = read_body(body, &state).await?;
    let decoded = json_cbor::decode_json(&body);
    state.metrics.http_message(&decoded, body.len());
    let message = decoded.map_err(ApiError::bad_request)?;
    if let ClientMessage::Auth { .. } = message {
        return Err(ApiError::bad_request(
            "an HTTP send carries its token in the Authorization header, not an auth message",
        ));
    }
    if let Some(capability) = Capability::needed_by(&message) {
        grant.require(capability)?;
    }
    let dialect = Dialect::from_ext_flag(asks_for_extensions(query.as_deref()));
    let reply = match state.route(&id).await.map_err(ApiError::unavailable)? {
        Route::Here => state.rooms.handle_http(&id, message).map_err(send_refusal)?,
        Route::Owner(owner) => forward(&state, &owner.id, &id, &message).await?,
    };
    // The reply's own encoding, shared with every other recipient of it (a whole-stream replay).
    let body = reply.map_or_else(|| Bytes::from_static(b"null"), |m| Bytes::from(m.json(dialect).clone()));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The answer to a send the engine refused: the room could not be opened, its store read or its lease kept (503), or the
/// message is not one the room takes (400). The owner of a forwarded send answers with the same.
pub fn send_refusal(error: HttpSendError) -> ApiError {
    match error {
        HttpSendError::Open(e) => ApiError::unavailable(e),
        HttpSendError::Engine(e @ (EngineError::Storage(_) | EngineError::Evicted)) => ApiError::unavailable(e),
        HttpSendError::Engine(e) => ApiError::bad_request(e),
    }
}

/// Sends to the room's owner on another node, and answers with its status and reply.
async fn forward(
    state: &ServerContext,
    owner: &str,
    room: &RoomId,
    message: &ClientMessage,
) -> Result<Option<Outgoing>, ApiError> {
    let cluster = state.cluster.as_ref().expect("a room is owned elsewhere only in a cluster");
    match forwarding::send(cluster, owner, room, message).await {
        Ok(reply) => Ok(reply.map(Outgoing::new)),
        Err(SendError::Refused(status, message)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            Err(ApiError { status, message })
        }
        Err(SendError::Cluster(error)) => Err(ApiError::unavailable(error)),
    }
}

/// The whole body, within `--max-message-bytes` (413) and `--http-body-timeout-ms` (408): a per-chunk timeout would
/// let a client trickling one byte at a time hold the request forever, so the deadline is for the whole body.
async fn read_body(body: Body, state: &ServerContext) -> Result<Bytes, ApiError> {
    let limit = state.config.max_message_bytes;
    match tokio::time::timeout(state.config.limits.http_body_timeout(), axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ApiError::request_timeout("the request body did not arrive in time")),
        Ok(Err(_)) => Err(ApiError::payload_too_large(format!("the body is larger than {limit} bytes"))),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

/// `ext=true` in the query: the caller is one of our clients and understands the extended shapes. A query
/// parameter rather than a header, so that a browser's send stays a simple request, without a CORS preflight.
fn asks_for_extensions(query: Option<&str>) -> bool {
    query.unwrap_or_default().split('&').any(|pair| pair == "ext=true")
}
