//! `POST /new` and `GET /room/{id}`: room info with the URLs a client connects to.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::HeaderMap;

use super::error::ApiError;
use crate::auth::{self, Refusal};
use crate::cluster::Cluster;
use crate::context::{Context, ServerContext};
use crate::engine::{RoomId, RoomSnapshot};
use crate::room_info::{PublicBase, RoomInfo};

pub async fn new_room(
    State(state): State<Context>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<RoomInfo>, ApiError> {
    if !state.auth.is_admin(auth::bearer(&headers)) {
        return Err(Refusal::AdminRequired.into());
    }
    state.admission.check_room_creation(peer.ip()).map_err(ApiError::too_many_requests)?;
    if let Some(cluster) = &state.cluster {
        return owner_room_info(cluster, &RoomId::random()).await;
    }
    let room = state.rooms.create().map_err(ApiError::unavailable)?;
    Ok(Json(room_info_for(&state, &headers, room.id())))
}

pub async fn room_info(
    State(state): State<Context>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<RoomInfo>, ApiError> {
    let id = parse_room_id(&id)?;
    let exists = room_exists(&state, &id).await?;
    may_see_room(&state, auth::request_token(&headers, query.as_deref()), &id, exists)?;
    // Looking up a room that exists is free; making one counts like `POST /new`, or random ids would bypass it.
    if !exists {
        state.admission.check_room_creation(peer.ip()).map_err(ApiError::too_many_requests)?;
    }
    if let Some(cluster) = &state.cluster {
        return owner_room_info(cluster, &id).await;
    }
    state.rooms.get_or_create(&id).map_err(ApiError::unavailable)?;
    Ok(Json(room_info_for(&state, &headers, &id)))
}

/// With `--cluster`: the URLs of the room's owner node, wherever it is (placing the room if nobody owns it).
async fn owner_room_info(cluster: &Cluster, id: &RoomId) -> Result<Json<RoomInfo>, ApiError> {
    let owner = cluster.owner_of(id).await.map_err(ApiError::unavailable)?;
    Ok(Json(owner.room_info(id.as_str())))
}

/// `GET /room/{id}/inspect`: the room inspector's snapshot. An unknown room is 404: inspecting creates nothing.
/// It shows every stored stream, as a `?debug=true` connection does, so with tokens on it needs the `debug`
/// capability (or the admin token).
pub async fn inspect(
    State(state): State<Context>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<RoomSnapshot>, ApiError> {
    let id = parse_room_id(&id)?;
    let token = auth::request_token(&headers, query.as_deref());
    if !(state.auth.admin_required() && state.auth.is_admin(token)) {
        state.auth.admit(token, &id, true)?;
    }
    let room = state.rooms.get(&id).ok_or_else(|| ApiError::not_found(format!("no room {id} on this server")))?;
    Ok(Json(room.inspect()))
}

/// Room info (which creates the room if needed) is for the admin token, or, when tokens are on, for a token of
/// this room; only the admin creates a room when `--admin-token-file` is set.
/// Whether the room exists: here, or in a cluster on whichever node owns it.
async fn room_exists(state: &ServerContext, id: &RoomId) -> Result<bool, ApiError> {
    match &state.cluster {
        Some(cluster) => cluster.room_exists(id).await.map_err(ApiError::unavailable),
        None => Ok(state.rooms.get(id).is_some()),
    }
}

fn may_see_room(state: &ServerContext, token: Option<&str>, id: &RoomId, exists: bool) -> Result<(), ApiError> {
    let auth = &state.auth;
    if auth.admin_required() && auth.is_admin(token) {
        return Ok(());
    }
    auth.admit(token, id, false)?;
    if auth.admin_required() && !exists {
        return Err(Refusal::AdminRequired.into());
    }
    Ok(())
}

/// Parses a room id from the path, or answers 400.
pub fn parse_room_id(id: &str) -> Result<RoomId, ApiError> {
    RoomId::parse(id).map_err(ApiError::bad_request)
}

fn room_info_for(state: &ServerContext, headers: &HeaderMap, id: &RoomId) -> RoomInfo {
    let webtransport = state.webtransport.as_ref().map(|wt| (wt.port, wt.certificate_hashes()));
    RoomInfo::at(&public_base(state, headers), id.as_str(), webtransport)
}

/// Where clients reach this server: `--public-url` when set, else the scheme and host the request came in on.
fn public_base(state: &ServerContext, headers: &HeaderMap) -> PublicBase {
    if let Some(url) = &state.config.public_url {
        return PublicBase::parse(url);
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let forwarded = |name: &str| state.config.trust_proxy.then(|| header(name)).flatten();
    let secure = forwarded("x-forwarded-proto").is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    let host = forwarded("x-forwarded-host")
        .or_else(|| header("host"))
        .unwrap_or_else(|| format!("{}:{}", state.config.host, state.config.port));
    PublicBase { secure, host, path_prefix: String::new() }
}
