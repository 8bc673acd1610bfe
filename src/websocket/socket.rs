//! The two halves of an upgraded WebSocket, as the [driver](crate::driver) sees them: frames in, batches of frames
//! out, close frames with their codes.

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tracing::debug;
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};

use super::upgrade::WebSocket;
use crate::driver::LARGE_WRITE;

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
                // tungstenite reassembles fragments itself: a raw frame is never read.
                Message::Frame(_) => continue,
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
fn inbound_for(error: tungstenite::Error) -> Inbound {
    debug!(%error, "websocket read failed");
    match &error {
        tungstenite::Error::Capacity(_) => Inbound::Broke(CloseReason::MessageTooBig),
        tungstenite::Error::Utf8(_) => Inbound::Broke(CloseReason::InvalidUtf8),
        tungstenite::Error::Protocol(violation) if !is_peer_gone(violation) => {
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
            let (opcode, payload) = payload(&message, self.format);
            bytes += payload.len();
            // Frame by frame: tungstenite copies each frame into its write buffer and, once that buffer is full,
            // waits for the socket before taking the next, so a reader that stops reading pins a few frames of a
            // large message, not all of it.
            for frame in frames(opcode, payload) {
                self.sink.feed(Message::Frame(frame)).await.map_err(std::io::Error::other)?;
            }
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
    Message::Close(Some(CloseFrame { code: CloseCode::from(reason.code()), reason: reason.text().into() }))
}

/// The payload of a large message's frames: a message of [`LARGE_WRITE`] bytes or more goes as a fragmented message
/// (RFC 6455 section 5.4), which every client reassembles (browsers, the `driftdb` JS client through them,
/// tungstenite).
const FRAGMENT: usize = 16 * 1024;

/// The opcode and payload carrying `message` in `format` and dialect (shared with the message, not copied).
fn payload(message: &Outgoing, (format, dialect): (WireFormat, Dialect)) -> (Data, Bytes) {
    match format {
        WireFormat::Cbor => (Data::Binary, message.cbor(dialect).clone()),
        // Sent as the raw frames, the text is not checked for UTF-8 again: it is JSON this server encoded.
        WireFormat::Json | WireFormat::Postcard => (Data::Text, Bytes::from(message.json(dialect).clone())),
    }
}

/// The frames of one message: one frame below [`LARGE_WRITE`], else [`FRAGMENT`]-sized fragments, the first with the
/// message's opcode and the rest continuations, the last one final.
fn frames(opcode: Data, payload: Bytes) -> impl Iterator<Item = Frame> {
    let size = if payload.len() < LARGE_WRITE { payload.len().max(1) } else { FRAGMENT };
    let count = payload.len().div_ceil(size).max(1);
    (0..count).map(move |n| {
        let piece = payload.slice((n * size).min(payload.len())..((n + 1) * size).min(payload.len()));
        let opcode = if n == 0 { opcode } else { Data::Continue };
        Frame::message(piece, OpCode::Data(opcode), n + 1 == count)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(frames: impl Iterator<Item = Frame>) -> Vec<(OpCode, bool, usize)> {
        frames.map(|f| (f.header().opcode, f.header().is_final, f.payload().len())).collect()
    }

    #[test]
    fn small_messages_are_one_frame_large_ones_fragments() {
        let text = OpCode::Data(Data::Text);
        let more = OpCode::Data(Data::Continue);
        assert_eq!(shape(frames(Data::Text, Bytes::new())), vec![(text, true, 0)]);
        assert_eq!(shape(frames(Data::Text, Bytes::from(vec![b'x'; 100]))), vec![(text, true, 100)]);
        let large = Bytes::from(vec![b'x'; LARGE_WRITE + 10]);
        let mut expected = vec![(text, false, FRAGMENT)];
        expected.extend((1..LARGE_WRITE / FRAGMENT).map(|_| (more, false, FRAGMENT)));
        expected.push((more, true, 10));
        assert_eq!(shape(frames(Data::Text, large)), expected);
        let exact = Bytes::from(vec![b'x'; 2 * LARGE_WRITE]);
        let frames: Vec<_> = frames(Data::Binary, exact).collect();
        assert_eq!(frames.len(), 2 * LARGE_WRITE / FRAGMENT);
        assert!(frames.last().unwrap().header().is_final);
    }
}
