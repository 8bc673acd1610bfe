//! The two halves of an upgraded WebSocket, as the [driver](crate::driver) sees them: frames in, batches of frames
//! out, close frames with their codes.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tracing::debug;

use crate::close::CloseReason;
use crate::driver::{Closing, Departure, Inbound, TransportReader, TransportWriter};
use crate::http::DrainBeforeClose;
use crate::outgoing::{Outgoing, WireFormat};
use crate::protocol::{Dialect, json_cbor};

/// Splits `socket` into the driver's halves. Frames go out in `format`; text frames in are JSON, binary ones CBOR.
pub(super) fn split(socket: WebSocket, format: (WireFormat, Dialect), drain: DrainBeforeClose) -> (WsReader, WsWriter) {
    let (sink, stream) = socket.split();
    (WsReader { stream, drain }, WsWriter { sink, format })
}

pub(super) struct WsReader {
    stream: SplitStream<WebSocket>,
    drain: DrainBeforeClose,
}

impl TransportReader for WsReader {
    async fn next(&mut self) -> Inbound {
        loop {
            let frame = match self.stream.next().await {
                None => return Inbound::Left(Departure::Gone),
                Some(Ok(frame)) => frame,
                Some(Err(error)) => return inbound_for(error),
            };
            return match frame {
                Message::Text(text) => Inbound::decoded(json_cbor::decode_json(text.as_bytes()), text.len()),
                Message::Binary(bytes) => Inbound::decoded(json_cbor::decode_cbor(&bytes), bytes.len()),
                // tungstenite answers pings itself.
                Message::Ping(_) => continue,
                // The answer to our keepalive: a quiet peer that answers is not idle.
                Message::Pong(_) => Inbound::Alive,
                Message::Close(_) => Inbound::Left(Departure::Goodbye),
            };
        }
    }

    async fn until_closed(&mut self, closed: Option<CloseReason>) {
        if closed.is_some() {
            // Input the peer is still sending (the rest of an oversized frame, a flood) is read away when the socket
            // goes: a close with unread input is a reset, which destroys the close frame before the peer reads it.
            self.drain.request();
        }
        // After the peer's close, tungstenite sends its queued reply on the next read, so the peer gets its close
        // echoed (RFC 6455 5.5.1) instead of a reset; after ours, the peer's answer ends the wait.
        while let Some(Ok(frame)) = self.stream.next().await {
            if let Message::Close(_) = frame {
                return;
            }
        }
    }
}

/// What a failed read means: a broken rule has its close code (RFC 6455 7.4.1); I/O errors and resets mean the peer
/// is gone, with nothing to tell.
fn inbound_for(error: axum::Error) -> Inbound {
    let error = error.into_inner();
    debug!(%error, "websocket read failed");
    match error.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => Inbound::Broke(CloseReason::MessageTooBig),
        Some(tungstenite::Error::Utf8(_)) => Inbound::Broke(CloseReason::InvalidUtf8),
        Some(tungstenite::Error::Protocol(violation)) if !is_peer_gone(violation) => {
            Inbound::Broke(CloseReason::ProtocolViolation)
        }
        _ => Inbound::Left(Departure::Gone),
    }
}

/// Whether a tungstenite protocol error only says that the peer went away (a reset or a close after close) rather
/// than that it broke the framing rules.
fn is_peer_gone(error: &tungstenite::error::ProtocolError) -> bool {
    use tungstenite::error::ProtocolError;
    matches!(error, ProtocolError::ResetWithoutClosingHandshake | ProtocolError::ReceivedAfterClosing)
}

pub(super) struct WsWriter {
    sink: SplitSink<WebSocket, Message>,
    format: (WireFormat, Dialect),
}

impl TransportWriter for WsWriter {
    async fn write_batch(&mut self, batch: &mut Vec<Outgoing>) -> std::io::Result<usize> {
        let mut bytes = 0;
        for message in batch.drain(..) {
            let (frame, len) = frame(&message, self.format);
            bytes += len;
            self.sink.feed(frame).await.map_err(std::io::Error::other)?;
        }
        self.sink.flush().await.map_err(std::io::Error::other)?;
        Ok(bytes)
    }

    /// The peer answers with a pong, which keeps its idle timeout from firing.
    async fn keepalive(&mut self) -> std::io::Result<()> {
        self.sink.send(Message::Ping(Default::default())).await.map_err(std::io::Error::other)
    }

    /// TCP delivers what was flushed before the close frame: nothing to wait for.
    async fn settle(&mut self) {}

    async fn close(&mut self, closing: Closing) {
        // A peer that closed gets its close echoed by tungstenite itself (see `WsReader::until_closed`).
        if let Closing::Server(reason) = closing {
            let _ = self.sink.send(close_frame(reason)).await;
        }
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
