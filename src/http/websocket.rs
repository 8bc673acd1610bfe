//! `GET /room/{id}/connect`: a WebSocket connection to a room.
//!
//! Each connection runs a reader (decode, hand to the engine) and a writer task (drain the outbox, several frames
//! per flush). Text frames are JSON and binary frames CBOR in both directions; `?cbor=true` picks what the server
//! sends.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::AppState;
use super::error::ApiError;
use super::rooms::parse_room_id;
use crate::close::CloseReason;
use crate::engine::{Connection, Outbox};
use crate::protocol::{DecodeError, Outgoing, WireFormat, tree};

/// Most messages written per flush.
const BATCH: usize = 64;
/// How long a closing writer may wait for its close frame to go out (the peer may not be reading).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Query flags of the connect URL.
#[derive(Debug, Default, PartialEq, Eq)]
struct ConnectFlags {
    cbor: bool,
    debug: bool,
}

impl ConnectFlags {
    /// Parses `cbor` and `debug`. The published 1.0.12 client appends `?cbor=true` again on every reconnect
    /// (`?cbor=true?cbor=true`), so `?` separates parameters here just like `&`.
    fn parse(query: Option<&str>) -> Self {
        let mut flags = ConnectFlags::default();
        for pair in query.unwrap_or_default().split(['&', '?']) {
            match pair.split_once('=') {
                Some(("cbor", value)) => flags.cbor = value == "true",
                Some(("debug", value)) => flags.debug = value == "true",
                _ => {}
            }
        }
        flags
    }
}

pub async fn connect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let id = parse_room_id(&id)?;
    let flags = ConnectFlags::parse(query.as_deref());
    let room = state.rooms.get_or_create(&id);
    let limit = state.config.max_message_bytes;
    Ok(upgrade.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket| {
        let outbox = std::sync::Arc::new(Outbox::new(state.config.outbox_bytes));
        let connection = room.connect(outbox, flags.debug);
        let format = if flags.cbor { WireFormat::Cbor } else { WireFormat::Json };
        let task = serve(socket, connection, format, state.shutdown.clone());
        state.connections.track_future(task)
    }))
}

async fn serve(socket: WebSocket, connection: Connection, format: WireFormat, shutdown: CancellationToken) {
    let (sink, mut stream) = socket.split();
    let outbox = connection.outbox().clone();
    let mut writer = tokio::spawn(write_loop(sink, outbox.clone(), format, shutdown));
    let close_with = tokio::select! {
        reason = read_loop(&mut stream, &connection) => reason,
        _ = &mut writer => None,
    };
    // Detach from the room first: nothing more is queued for a connection that is going away.
    drop(connection);
    match close_with {
        Some(reason) => {
            outbox.close(reason);
            let _ = writer.await;
        }
        None => writer.abort(),
    }
}

/// Reads frames until the peer leaves (`None`) or breaks a limit (the reason to close with).
async fn read_loop(stream: &mut SplitStream<WebSocket>, connection: &Connection) -> Option<CloseReason> {
    while let Some(frame) = stream.next().await {
        let decoded = match frame {
            Ok(Message::Text(text)) => tree::decode_json(text.as_bytes()),
            Ok(Message::Binary(bytes)) => tree::decode_cbor(&bytes),
            // tungstenite answers pings itself.
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) => return None,
            Err(error) => return close_reason_for(error),
        };
        dispatch(connection, decoded);
    }
    None
}

fn dispatch(connection: &Connection, decoded: Result<crate::protocol::ClientMessage, DecodeError>) {
    match decoded {
        Ok(message) => connection.handle(message),
        Err(error) => connection.send_error(error.to_string()),
    }
}

fn close_reason_for(error: axum::Error) -> Option<CloseReason> {
    let error = error.into_inner();
    debug!(%error, "websocket read failed");
    match error.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => Some(CloseReason::MessageTooBig),
        _ => None,
    }
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    outbox: std::sync::Arc<Outbox>,
    format: WireFormat,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let reason = loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => Err(CloseReason::GoingAway),
            next = outbox.next_batch(&mut batch, BATCH) => next,
        };
        if let Err(reason) = next {
            break reason;
        }
        tokio::select! {
            written = write_batch(&mut sink, &mut batch, format) => if written.is_err() { return },
            // A slow-consumer close must not wait for a socket the peer stopped reading.
            _ = outbox.wait_closed() => {}
        }
    };
    if reason == CloseReason::GoingAway {
        // Flush what is already queued before saying goodbye.
        while outbox.try_batch(&mut batch, BATCH).unwrap_or(false) {
            if write_batch(&mut sink, &mut batch, format).await.is_err() {
                return;
            }
        }
    }
    let close = Message::Close(Some(CloseFrame { code: reason.code(), reason: reason.text().into() }));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(close)).await;
}

async fn write_batch(
    sink: &mut SplitSink<WebSocket, Message>,
    batch: &mut Vec<Outgoing>,
    format: WireFormat,
) -> Result<(), axum::Error> {
    for message in batch.drain(..) {
        sink.feed(frame(&message, format)).await?;
    }
    sink.flush().await
}

fn frame(message: &Outgoing, format: WireFormat) -> Message {
    match format {
        WireFormat::Cbor => Message::Binary(message.cbor().clone()),
        WireFormat::Json | WireFormat::Postcard => Message::Text(message.json().clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::ConnectFlags;

    #[test]
    fn flags_survive_the_reference_clients_growing_url() {
        assert_eq!(ConnectFlags::parse(None), ConnectFlags::default());
        assert_eq!(ConnectFlags::parse(Some("cbor=true")), ConnectFlags { cbor: true, debug: false });
        assert_eq!(ConnectFlags::parse(Some("cbor=true?cbor=true")), ConnectFlags { cbor: true, debug: false });
        assert_eq!(ConnectFlags::parse(Some("debug=true&cbor=false")), ConnectFlags { cbor: false, debug: true });
    }
}
