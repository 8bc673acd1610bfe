//! `GET /room/{id}/connect`: a WebSocket connection to a room.
//!
//! Each connection runs a reader (decode, hand to the engine) and a writer task (drain the outbox, several frames
//! per flush). Text frames are JSON and binary frames CBOR in both directions; `?cbor=true` picks what the server
//! sends, `?ext=true` opts in to our extended message shapes (see [`Dialect`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::error::ApiError;
use super::rooms::parse_room_id;
use super::{AppState, DrainBeforeClose};
use crate::admission::MessageRate;
use crate::auth::{self, Access};
use crate::close::CloseReason;
use crate::engine::{Connection, Outbox};
use crate::metrics::{ConnectionMetrics, MessageKind, Transport};
use crate::outgoing::{Outgoing, WireFormat};
use crate::protocol::{Dialect, json_cbor};

/// Most messages written per flush.
const BATCH: usize = 64;
/// How long a closing writer may wait for its close frame to go out (the peer may not be reading).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server waits for the peer to answer its close frame before dropping the connection.
const CLOSE_REPLY_TIMEOUT: Duration = Duration::from_secs(2);
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
}

pub async fn connect(
    State(state): State<AppState>,
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
    state.admission.check_origin(origin).map_err(ApiError::forbidden)?;
    let flags = ConnectFlags::parse(query.as_deref());
    let grant = state.auth.admit(auth::request_token(&headers, query.as_deref()), &id, flags.debug)?;
    // Limits that refuse a connection are told after the upgrade, as a close code: a browser's WebSocket API never
    // shows the HTTP status of a failed upgrade, but it does show the close code.
    let admitted = state.admission.check_connect_rate(peer.ip());
    let limit = state.config.max_message_bytes;
    Ok(upgrade.max_message_size(limit).max_frame_size(limit).read_buffer_size(READ_BUFFER).on_upgrade(move |socket| {
        let outbox = Arc::new(Outbox::new(state.config.outbox_bytes));
        let connection = admitted.and_then(|()| state.rooms.connect(&id, outbox, flags.debug));
        let access = Access::new(state.auth.clone(), id, flags.debug, grant);
        let format = (if flags.cbor { WireFormat::Cbor } else { WireFormat::Json }, Dialect::from_ext_flag(flags.ext));
        let tracker = state.connections.clone();
        let task = async move {
            match connection {
                Ok(connection) => serve(socket, connection, access, format, &state, &drain).await,
                Err(reason) => {
                    state.metrics.closed(reason);
                    refuse(socket, reason, &drain).await
                }
            }
        };
        tracker.track_future(task)
    }))
}

/// Closes a just-upgraded socket with the reason it was refused.
/// Closes a just-upgraded socket with the reason it was refused, gracefully: the client may already be sending (its
/// first `get`s), and closing on unread input would reset the connection and lose the close frame.
async fn refuse(socket: WebSocket, reason: CloseReason, drain: &DrainBeforeClose) {
    debug!(reason = reason.name(), "websocket refused");
    let (mut sink, mut stream) = socket.split();
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(close_frame(reason))).await;
    drain.request();
    let _ = tokio::time::timeout(CLOSE_REPLY_TIMEOUT, until_close(&mut stream)).await;
}

async fn serve(
    socket: WebSocket,
    connection: Connection,
    access: Access,
    format: (WireFormat, Dialect),
    state: &AppState,
    drain: &DrainBeforeClose,
) {
    let (sink, mut stream) = socket.split();
    let outbox = connection.outbox().clone();
    let limits = &state.config.limits;
    let metrics = Arc::new(state.metrics.connection(Transport::Websocket));
    connection.set_transport(Transport::Websocket);
    let writer = Writer { outbox: outbox.clone(), format, metrics: metrics.clone() };
    let ping_every = limits.idle_timeout() / 3;
    let mut writer = tokio::spawn(writer.run(sink, ping_every, state.shutdown.clone()));
    let reader = Reader { connection: &connection, access: &access, rate: MessageRate::new(limits), metrics };
    let reader = reader.run(&mut stream, limits.idle_timeout());
    // `None`: the peer left. `Some(writer_done)`: the server closes (a broken limit, shutdown, slow consumer).
    let mut unread_input = false;
    let server_closes = tokio::select! {
        reason = reader => reason.map(|reason| {
            debug!(reason = reason.name(), "closing websocket");
            // The rest of an oversized frame is still unread: the framing cannot be followed past it.
            unread_input = reason == CloseReason::MessageTooBig;
            outbox.close(reason);
            false
        }),
        _ = &mut writer => Some(true),
    };
    // Detach from the room first: nothing more is queued for a connection that is going away.
    drop(connection);
    match server_closes {
        None => {
            writer.abort();
            // The peer closed (or vanished). tungstenite queued the reply to a close frame but only sends it on the
            // next read, so read once more: the peer gets its close echoed (RFC 6455 5.5.1) instead of a reset.
            let _ = tokio::time::timeout(CLOSE_REPLY_TIMEOUT, until_close(&mut stream)).await;
        }
        Some(writer_done) => {
            if !writer_done {
                // The writer sends the close frame (bounded by CLOSE_TIMEOUT).
                let _ = writer.await;
            }
            if unread_input {
                // The rest of the oversized frame is read away when the socket goes: a close with unread input
                // is a reset, which destroys the close frame before the peer reads it (1006 instead of 1009).
                drain.request();
            }
            // Keep the socket open until the peer answers our close frame, so that it reads the frame (and its
            // code) before the TCP connection goes away, as RFC 6455 asks.
            let _ = tokio::time::timeout(CLOSE_REPLY_TIMEOUT, until_close(&mut stream)).await;
        }
    }
}

/// Reads and discards frames until the peer's close frame or the end of the stream.
async fn until_close(stream: &mut SplitStream<WebSocket>) {
    while let Some(Ok(frame)) = stream.next().await {
        if let Message::Close(_) = frame {
            return;
        }
    }
}

/// The receiving half of a connection.
struct Reader<'a> {
    connection: &'a Connection,
    access: &'a Access,
    rate: MessageRate,
    metrics: Arc<ConnectionMetrics>,
}

impl Reader<'_> {
    /// Reads frames until the peer leaves (`None`) or breaks a limit (the reason to close with).
    async fn run(self, stream: &mut SplitStream<WebSocket>, idle_timeout: Duration) -> Option<CloseReason> {
        let expired = self.access.expired();
        tokio::pin!(expired);
        loop {
            let frame = tokio::select! {
                next = tokio::time::timeout(idle_timeout, stream.next()) => match next {
                    Err(_) => return Some(CloseReason::IdleTimeout),
                    Ok(None) => return None,
                    Ok(Some(frame)) => frame,
                },
                () = &mut expired => return Some(CloseReason::TokenExpired),
            };
            let (decoded, len) = match frame {
                Ok(Message::Text(text)) => (json_cbor::decode_json(text.as_bytes()), text.len()),
                Ok(Message::Binary(bytes)) => (json_cbor::decode_cbor(&bytes), bytes.len()),
                // tungstenite answers pings itself; pongs only prove the peer is alive.
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(Message::Close(_)) => return None,
                Err(error) => return close_reason_for(error),
            };
            if let Err(reason) = self.rate.check() {
                return Some(reason);
            }
            self.metrics.received(MessageKind::of(&decoded), len);
            match decoded {
                Ok(message) => self.access.dispatch(self.connection, message),
                Err(error) => self.connection.send_error(error.to_string()),
            }
        }
    }
}

fn close_reason_for(error: axum::Error) -> Option<CloseReason> {
    let error = error.into_inner();
    debug!(%error, "websocket read failed");
    // RFC 6455 7.4.1: each violation has its code. I/O errors and resets mean the peer is gone: nothing to tell.
    match error.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => Some(CloseReason::MessageTooBig),
        Some(tungstenite::Error::Utf8(_)) => Some(CloseReason::InvalidUtf8),
        Some(tungstenite::Error::Protocol(violation)) if !is_peer_gone(violation) => {
            Some(CloseReason::ProtocolViolation)
        }
        _ => None,
    }
}

/// Whether a tungstenite protocol error only says that the peer went away (a reset or a close after close) rather
/// than that it broke the framing rules.
fn is_peer_gone(error: &tungstenite::error::ProtocolError) -> bool {
    use tungstenite::error::ProtocolError;
    matches!(error, ProtocolError::ResetWithoutClosingHandshake | ProtocolError::ReceivedAfterClosing)
}

/// The sending half of a connection: drains the outbox, several frames per flush.
struct Writer {
    outbox: Arc<Outbox>,
    format: (WireFormat, Dialect),
    metrics: Arc<ConnectionMetrics>,
}

impl Writer {
    async fn run(self, mut sink: SplitSink<WebSocket, Message>, ping_every: Duration, shutdown: CancellationToken) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let reason = loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Err(CloseReason::GoingAway),
                next = self.outbox.next_batch(&mut batch, BATCH) => next,
                // The peer answers with a pong, which keeps its reader's idle timeout from firing.
                _ = keepalive.tick() => match sink.send(Message::Ping(Bytes::new())).await {
                    Ok(()) => continue,
                    Err(_) => return,
                },
            };
            if let Err(reason) = next {
                break reason;
            }
            tokio::select! {
                written = self.write_batch(&mut sink, &mut batch) => if written.is_err() { return },
                // Neither a slow-consumer close nor shutdown may wait for a socket the peer stopped reading.
                _ = self.outbox.wait_closed() => {}
                _ = shutdown.cancelled() => {}
            }
        };
        self.metrics.metrics().closed(reason);
        let goodbye = async {
            if reason == CloseReason::GoingAway {
                // Flush what is already queued before saying goodbye.
                while self.outbox.try_batch(&mut batch, BATCH).unwrap_or(false) {
                    self.write_batch(&mut sink, &mut batch).await?;
                }
            }
            sink.send(close_frame(reason)).await
        };
        // Bounded: a peer that stopped reading would otherwise hold the task forever.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, goodbye).await;
    }

    async fn write_batch(
        &self,
        sink: &mut SplitSink<WebSocket, Message>,
        batch: &mut Vec<Outgoing>,
    ) -> Result<(), axum::Error> {
        let (count, mut bytes) = (batch.len(), 0);
        for message in batch.drain(..) {
            let (frame, len) = frame(&message, self.format);
            bytes += len;
            sink.feed(frame).await?;
        }
        sink.flush().await?;
        self.metrics.sent_batch(count, bytes, self.outbox.dropped_volatile());
        Ok(())
    }
}

fn close_frame(reason: CloseReason) -> Message {
    Message::Close(Some(CloseFrame { code: reason.code(), reason: reason.text().into() }))
}

/// The frame carrying `message` in `format` and dialect, and its payload length.
fn frame(message: &Outgoing, (format, dialect): (WireFormat, Dialect)) -> (Message, usize) {
    match format {
        WireFormat::Cbor => {
            let bytes = message.cbor(dialect);
            (Message::Binary(bytes.clone()), bytes.len())
        }
        WireFormat::Json | WireFormat::Postcard => {
            let text = message.json(dialect);
            (Message::Text(text.clone()), text.len())
        }
    }
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
