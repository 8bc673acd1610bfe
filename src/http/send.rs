//! `POST /room/{id}/send`: one client message over plain HTTP, answered with the direct reply as JSON.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::rooms::parse_room_id;
use crate::engine::{EngineError, HttpSendError};
use crate::protocol::tree;

pub async fn send(State(state): State<AppState>, Path(id): Path<String>, body: Bytes) -> Result<Response, ApiError> {
    let id = parse_room_id(&id)?;
    let decoded = tree::decode_json(&body);
    state.metrics.http_message(&decoded, body.len());
    let message = decoded.map_err(ApiError::bad_request)?;
    let reply = state.rooms.handle_http(&id, message).map_err(|error| match error {
        HttpSendError::Open(e) => ApiError::unavailable(e),
        HttpSendError::Engine(e @ EngineError::Storage(_)) => ApiError::unavailable(e),
        HttpSendError::Engine(e) => ApiError::bad_request(e),
    })?;
    let body = reply.map_or_else(|| "null".to_owned(), |m| tree::encode_json(&m));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
