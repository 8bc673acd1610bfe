//! What a session sends, as the [driver](crate::driver) writes it: volatile messages that fit as datagrams, everything
//! else as frames on the control stream, and the session's close with its code.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use quinn::SendDatagramError;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use super::framing::{self, fits_datagram, put_frame};
use super::http3::{Http3Session, StreamSend};
use crate::driver::{Closing, Departure, TransportWriter};
use crate::metrics::Metrics;
use crate::outgoing::Outgoing;

/// Longest wait for a going-away flush to reach the client before the connection is closed.
const FLUSH_GRACE: Duration = Duration::from_millis(500);
/// What a batch of control-stream frames starts with; a larger batch grows it.
const WRITE_BUFFER: usize = 1024;
/// QUIC application close code of a session the client ended with a goodbye (as WebSocket's normal closure).
const GOODBYE_CODE: u32 = 1000;

/// The control stream's sending half: nothing reliable can be written before the client opens it.
enum ControlStream {
    Awaited(oneshot::Receiver<StreamSend>),
    Open(Box<StreamSend>),
}

/// The control stream, once the client has opened it.
async fn control_stream(control: &mut ControlStream) -> std::io::Result<&mut StreamSend> {
    if let ControlStream::Awaited(receiver) = control {
        // The sender is dropped when the session ends without a control stream.
        let stream = receiver.await.map_err(|_| std::io::Error::other("the session ended without a control stream"))?;
        *control = ControlStream::Open(Box::new(stream));
    }
    match control {
        ControlStream::Open(stream) => Ok(stream),
        ControlStream::Awaited(_) => unreachable!("opened above"),
    }
}

pub(super) struct WtWriter {
    quic: quinn::Connection,
    /// Taken by the close, which consumes it. Boxed: the writer is moved down the driver's layers by value.
    session: Option<Box<Http3Session>>,
    control: ControlStream,
    /// The HTTP/3 datagram prefix of this session.
    datagram_prefix: Bytes,
    /// Frames not yet written. A write cut short (the driver races writes against closing) leaves its rest here, so
    /// the shutdown flush goes on from a frame boundary. Freed once written, so that an idle session holds none.
    buf: BytesMut,
    metrics: Arc<Metrics>,
}

impl WtWriter {
    pub fn new(
        quic: quinn::Connection,
        session: Http3Session,
        control: oneshot::Receiver<StreamSend>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let datagram_prefix = framing::datagram_prefix(session.id()).freeze();
        WtWriter {
            quic,
            session: Some(Box::new(session)),
            control: ControlStream::Awaited(control),
            datagram_prefix,
            buf: BytesMut::new(),
            metrics,
        }
    }

    /// Sends `message` as a datagram if it fits the session's current datagram size; `Ok(false)` if it does not and
    /// must go on the stream instead.
    fn send_datagram(&self, message: &Outgoing) -> std::io::Result<bool> {
        let payload = message.postcard();
        let room = self.quic.max_datagram_size().unwrap_or(0).saturating_sub(self.datagram_prefix.len());
        if !fits_datagram(payload.len(), room) {
            return Ok(false);
        }
        match self.quic.send_datagram(message.datagram(&self.datagram_prefix)) {
            Ok(()) => {
                self.metrics.datagram_sent(payload.len());
                Ok(true)
            }
            // The path MTU can shrink between the check and the send.
            Err(SendDatagramError::TooLarge) => Ok(false),
            Err(error) => Err(std::io::Error::other(error)),
        }
    }

    async fn close_session(&mut self, code: u32, reason: &str) {
        if let Some(session) = self.session.take() {
            session.close(&self.quic, code, reason).await;
        }
    }
}

impl TransportWriter for WtWriter {
    async fn write_batch(&mut self, batch: &mut Vec<Outgoing>) -> std::io::Result<usize> {
        let mut bytes = 0;
        for message in batch.drain(..) {
            bytes += message.postcard().len();
            if message.volatile_key().is_some() && self.send_datagram(&message)? {
                continue;
            }
            if self.buf.capacity() == 0 {
                self.buf.reserve(WRITE_BUFFER);
            }
            put_frame(&mut self.buf, message.postcard());
        }
        if !self.buf.is_empty() {
            // Advances `buf` as it goes, so a write cut short leaves exactly the unwritten rest.
            control_stream(&mut self.control).await?.write_all_buf(&mut self.buf).await?;
            self.buf = BytesMut::new();
        }
        Ok(bytes)
    }

    /// QUIC keeps the connection alive itself (its keep-alive and idle timeout, see `endpoint`).
    async fn keepalive(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    /// Closing a QUIC connection discards unsent stream data: give the flush a round trip or two to arrive.
    async fn settle(&mut self) {
        let grace = (self.quic.rtt() * 2 + Duration::from_millis(20)).min(FLUSH_GRACE);
        let _ = tokio::time::timeout(grace, self.quic.closed()).await;
    }

    async fn close(&mut self, closing: Closing) {
        match closing {
            Closing::Server(reason) => self.close_session(reason.code().into(), reason.text()).await,
            Closing::Peer(Departure::Goodbye) => self.close_session(GOODBYE_CODE, "goodbye").await,
            Closing::Peer(Departure::Gone) => {}
        }
    }
}
