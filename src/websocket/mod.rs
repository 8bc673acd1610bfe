//! The WebSocket transport: `GET /room/{id}/connect` upgraded, then run by the [connection driver](crate::driver).
//!
//! Text frames are JSON and binary frames CBOR in both directions; `?cbor=true` picks what the server sends,
//! `?ext=true` opts in to our extended message shapes (see [`Dialect`]).
//!
//! - this module: the upgrade (origin, token, limits) and the connect URL's flags;
//! - [`socket`]: the socket's halves as the driver's transport.

mod socket;
mod upgrade;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use tracing::{Instrument, info_span};
use upgrade::{WebSocket, WebSocketUpgrade};

use crate::auth;
use crate::close::CloseReason;
use crate::cluster::Route;
use crate::context::Context;
use crate::driver::{self, Liveness};
use crate::http::{ApiError, DrainBeforeClose, parse_room_id};
use crate::metrics::Transport;
use crate::outgoing::WireFormat;
use crate::protocol::Dialect;

/// Bytes read from the socket per read call. tungstenite zero-fills its whole read buffer before every read, so its
/// 128 KiB default made each connection that ever received a frame hold 128 KiB resident; larger messages are still
/// taken whole, over several reads.
const READ_BUFFER: usize = 2 * 1024;

/// Query flags of the connect URL.
#[derive(Debug, Default, PartialEq, Eq)]
struct ConnectFlags {
    cbor: bool,
    debug: bool,
    /// Our own clients say `ext=true`: they get `epoch` and the other fields the reference server never sends.
    ext: bool,
}

impl ConnectFlags {
    /// Parses `cbor`, `debug` and `ext`. The published 1.0.12 client appends `?cbor=true` again on every reconnect
    /// (`?cbor=true?cbor=true`), so `?` separates parameters here just like `&`.
    fn parse(query: Option<&str>) -> Self {
        let mut flags = ConnectFlags::default();
        for pair in query.unwrap_or_default().split(['&', '?']) {
            match pair.split_once('=') {
                Some(("cbor", value)) => flags.cbor = value == "true",
                Some(("debug", value)) => flags.debug = value == "true",
                Some(("ext", value)) => flags.ext = value == "true",
                _ => {}
            }
        }
        flags
    }

    fn format(&self) -> (WireFormat, Dialect) {
        (if self.cbor { WireFormat::Cbor } else { WireFormat::Json }, Dialect::from_ext_flag(self.ext))
    }
}

/// `GET /room/{id}/connect`. Origin and token refusals are HTTP statuses; limits are told after the upgrade, as a
/// close code: a browser's WebSocket API never shows the status of a failed upgrade, but it does show the close code.
pub async fn connect(
    State(context): State<Context>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    drain: Option<Extension<DrainBeforeClose>>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let drain = drain.map(|Extension(drain)| drain).unwrap_or_default();
    let id = parse_room_id(&id)?;
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    context.admission.check_origin(origin).map_err(ApiError::forbidden)?;
    let flags = ConnectFlags::parse(query.as_deref());
    let token = auth::request_token(&headers, query.as_deref());
    let grant = context.auth.admit(token, &id, flags.debug)?;
    let token = token.map(str::to_owned);
    // In a cluster, a room nobody can serve right now (its owner died and its lease has not ended, or NATS is
    // gone) is told like a limit, after the upgrade: 1001, so that every client (the 1.0.12 one too, which
    // cannot see a refused upgrade's status and rejects a promise nobody handles) simply reconnects.
    let (route, admitted) = match context.route(&id).await {
        Ok(route) => (route, context.admission.check_connect_rate(peer.ip())),
        Err(error) => {
            tracing::debug!(room = %id, %error, "no node serves the room now");
            (Route::Here, Err(CloseReason::GoingAway))
        }
    };
    let limit = context.config.max_message_bytes;
    let upgrade = upgrade.max_message_size(limit).max_frame_size(limit).read_buffer_size(READ_BUFFER);
    Ok(upgrade.on_upgrade(move |socket| {
        let span = info_span!("connection", room = %id, transport = "websocket", %peer);
        let tracker = context.connections.clone();
        let request = driver::Request { room: id, debug: flags.debug, token, grant, route };
        let upgraded = Upgraded { context, request, flags, drain };
        tracker.track_future(upgraded.run(socket, admitted).instrument(span))
    }))
}

/// An accepted upgrade, before it joins its room.
struct Upgraded {
    context: Context,
    request: driver::Request,
    flags: ConnectFlags,
    drain: DrainBeforeClose,
}

impl Upgraded {
    async fn run(self, socket: WebSocket, admitted: Result<(), CloseReason>) {
        let room = self.request.room.clone();
        let context = self.context.clone();
        context.room_threads.run(&room, self.serve(socket, admitted)).await;
    }

    async fn serve(self, socket: WebSocket, admitted: Result<(), CloseReason>) {
        let Upgraded { context, request, flags, drain } = self;
        let (reader, writer) = socket::split(socket, flags.format(), drain);
        let attached = match admitted {
            Ok(()) => driver::attach(&context, request, Transport::Websocket).await,
            Err(reason) => Err(reason),
        };
        driver::serve(&context, attached, Transport::Websocket, liveness(&context), reader, writer).await;
    }
}

/// A quiet peer is pinged three times per idle timeout, and its pong keeps it from being idle.
fn liveness(context: &Context) -> Liveness {
    let idle = context.config.limits.idle_timeout();
    Liveness { idle_timeout: Some(idle), keepalive_every: Some(idle / 3) }
}

#[cfg(test)]
mod tests {
    use super::ConnectFlags;

    #[test]
    fn flags_survive_the_reference_clients_growing_url() {
        let flags = |cbor, debug, ext| ConnectFlags { cbor, debug, ext };
        assert_eq!(ConnectFlags::parse(None), ConnectFlags::default());
        assert_eq!(ConnectFlags::parse(Some("cbor=true")), flags(true, false, false));
        assert_eq!(ConnectFlags::parse(Some("cbor=true?cbor=true")), flags(true, false, false));
        assert_eq!(ConnectFlags::parse(Some("debug=true&cbor=false")), flags(false, true, false));
        assert_eq!(ConnectFlags::parse(Some("ext=true&cbor=true?cbor=true")), flags(true, false, true));
    }
}
