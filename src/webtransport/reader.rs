//! What a session receives, as the [driver](crate::driver) reads it: length-prefixed postcard messages on the
//! control stream the client opens, volatile relays in datagrams, and whatever else the client opens (answered or
//! ignored, never served).

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use http::StatusCode;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;
use tracing::debug;

use super::establish::respond;
use super::framing::{self, FrameDecoder};
use super::http3::{self, Accepted, H3Connection, StreamRecv, StreamSend};
use crate::close::CloseReason;
use crate::driver::{Departure, Inbound, TransportReader};
use crate::protocol::{Action, ClientMessage, postcard_envelope};

/// What a control-stream read starts with; a frame that needs more grows it.
const READ_BUFFER: usize = 1024;

/// The client's next stream, and the HTTP/3 connection handed back with it.
type NextStream = (Box<H3Connection>, Result<Option<Accepted>, h3::error::StreamError>);

pub(super) struct WtReader {
    /// Accepting streams is not cancel-safe: one future lives across calls and is re-armed only when it completes.
    /// It owns the HTTP/3 connection meanwhile, which must live until the session's close is sent.
    accept: BoxFuture<'static, NextStream>,
    /// The HTTP/3 connection once the client can open no more streams (kept alive for the close).
    parked: Option<Box<H3Connection>>,
    quic: quinn::Connection,
    session_id: u64,
    decoder: FrameDecoder,
    /// Control-stream bytes not yet a whole frame. Empty (no allocation) between messages, as most sessions are idle
    /// most of the time; 1 KiB for a read, grown to fit a frame.
    buf: BytesMut,
    control: Option<StreamRecv>,
    /// Hands the control stream's sending half to the writer once the client opens it.
    control_send: Option<oneshot::Sender<StreamSend>>,
}

impl WtReader {
    pub fn new(
        h3: Box<H3Connection>,
        quic: quinn::Connection,
        session_id: u64,
        max_message_bytes: usize,
        control_send: oneshot::Sender<StreamSend>,
    ) -> Self {
        WtReader {
            accept: Box::pin(accept_next(h3)),
            parked: None,
            quic,
            session_id,
            decoder: FrameDecoder::new(max_message_bytes),
            buf: BytesMut::new(),
            control: None,
            control_send: Some(control_send),
        }
    }

    /// The next complete control-stream frame already read, as the driver takes it.
    fn buffered(&mut self) -> Option<Inbound> {
        match self.decoder.next_frame(&mut self.buf) {
            Ok(Some(frame)) => Some(control_message(&frame)),
            Ok(None) => {
                if self.buf.is_empty() {
                    // Frees the buffer (once the frames split from it are gone) until the client sends again.
                    self.buf = BytesMut::new();
                }
                None
            }
            // A malformed length is one that does not fit 63 bits: too big either way.
            Err(_) => Some(Inbound::Broke(CloseReason::MessageTooBig)),
        }
    }

    /// A stream or request the client opened; `Some` when it ends the connection.
    fn accepted(
        &mut self,
        h3: Box<H3Connection>,
        accepted: Result<Option<Accepted>, h3::error::StreamError>,
    ) -> Option<Inbound> {
        let stream = match accepted {
            Ok(Some(stream)) => stream,
            Ok(None) | Err(_) => {
                self.parked = Some(h3);
                self.accept = Box::pin(std::future::pending());
                return Some(Inbound::Left(Departure::Gone));
            }
        };
        self.accept = Box::pin(accept_next(h3));
        match stream {
            Accepted::Stream(send, recv) => match self.control_send.take() {
                Some(writer) => {
                    let _ = writer.send(send);
                    self.control = Some(recv);
                }
                None => debug!("ignoring an extra bidirectional stream"),
            },
            // Browsers open one session per connection; a second one is not served here.
            Accepted::Request(stream) => drop(tokio::spawn(respond(stream, StatusCode::TOO_MANY_REQUESTS))),
            Accepted::Nothing => {}
        }
        None
    }

    /// One datagram: a volatile relay for this session, else answered with an error on the control stream.
    fn datagram(&self, datagram: Bytes) -> Inbound {
        let len = datagram.len();
        let Some((stream, payload)) = framing::split_datagram(datagram) else {
            return Inbound::Message { decoded: Err("malformed datagram".into()), len };
        };
        // Datagrams of another session on this connection are not ours (browsers run one session per connection).
        if stream != self.session_id {
            return Inbound::Noise;
        }
        match postcard_envelope::decode_client(&payload) {
            Ok(message @ ClientMessage::Push { action: Action::Relay, volatile: true, .. }) => {
                Inbound::Message { decoded: Ok(message), len: payload.len() }
            }
            Ok(_) => Inbound::Message {
                decoded: Err("only volatile relay pushes may travel as datagrams".into()),
                len: payload.len(),
            },
            decoded => Inbound::decoded(decoded, payload.len()),
        }
    }
}

impl TransportReader for WtReader {
    async fn next(&mut self) -> Inbound {
        loop {
            if let Some(inbound) = self.buffered() {
                return inbound;
            }
            tokio::select! {
                (h3, accepted) = &mut self.accept => if let Some(end) = self.accepted(h3, accepted) {
                    return end;
                },
                datagram = self.quic.read_datagram() => return match datagram {
                    Ok(datagram) => self.datagram(datagram),
                    Err(_) => Inbound::Left(Departure::Gone),
                },
                read = read_some(&mut self.control, &mut self.buf) => match read {
                    Ok(0) | Err(_) => return Inbound::Left(Departure::Gone),
                    Ok(_) => {}
                },
            }
        }
    }

    /// Nothing to wait for: closing a session waits for the client itself (see [`http3::Http3Session::close`]).
    async fn until_closed(&mut self, _closed: Option<CloseReason>) {}
}

/// A control-stream message; a `goodbye` ends the connection.
fn control_message(frame: &[u8]) -> Inbound {
    match postcard_envelope::decode_client(frame) {
        Ok(ClientMessage::Goodbye) => Inbound::Left(Departure::Goodbye),
        decoded => Inbound::decoded(decoded, frame.len()),
    }
}

/// Reads more of the control stream into `buf`; never resolves before the client has opened it. Cancel-safe: bytes
/// are in `buf` or still in the stream.
async fn read_some(control: &mut Option<StreamRecv>, buf: &mut BytesMut) -> std::io::Result<usize> {
    match control {
        Some(stream) => {
            if buf.capacity() == 0 {
                buf.reserve(READ_BUFFER);
            }
            stream.read_buf(buf).await
        }
        None => std::future::pending().await,
    }
}

/// Runs [`http3::accept_bi`] on an owned connection and gives it back, so the future can be re-armed.
async fn accept_next(mut h3: Box<H3Connection>) -> NextStream {
    let accepted = http3::accept_bi(&mut h3).await;
    (h3, accepted)
}
