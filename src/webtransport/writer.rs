//! The session's writer task: drains the connection's outbox onto the control stream and into datagrams, and reports
//! why it stopped (the session closes with that reason).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use quinn::SendDatagramError;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::framing::{fits_datagram, put_frame};
use crate::close::CloseReason;
use crate::engine::Outbox;
use crate::metrics::ConnectionMetrics;
use crate::outgoing::Outgoing;

/// Most messages taken from the outbox per write.
const BATCH: usize = 64;
/// Longest wait for a going-away flush to reach the client before the connection is closed.
const FLUSH_GRACE: Duration = Duration::from_millis(500);

pub(super) struct Writer {
    pub quic: quinn::Connection,
    pub outbox: Arc<Outbox>,
    pub shutdown: CancellationToken,
    /// The HTTP/3 datagram prefix of this session.
    pub datagram_prefix: Bytes,
    pub metrics: Arc<ConnectionMetrics>,
}

impl Writer {
    /// Runs until the outbox closes or the server shuts down (returning the reason to close the session with), or
    /// the connection fails (`None`). Nothing reliable can be written before the client opens the control stream,
    /// so the writer first waits for it.
    pub async fn run<S: AsyncWrite + Unpin>(self, control: oneshot::Receiver<S>) -> Option<CloseReason> {
        let stream = tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => return Some(CloseReason::GoingAway),
            _ = self.outbox.wait_closed() => return self.outbox.closed(),
            stream = control => stream,
        };
        // The sender is dropped when the session ends without a control stream.
        let Ok(mut stream) = stream else { return None };
        let mut batch = Vec::with_capacity(BATCH);
        // Starts small: most sessions are idle, and the buffer grows to fit a burst.
        let mut buf = BytesMut::with_capacity(1024);
        let reason = loop {
            let next = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => Err(CloseReason::GoingAway),
                next = self.outbox.next_batch(&mut batch, BATCH) => next,
            };
            if let Err(reason) = next {
                break reason;
            }
            tokio::select! {
                written = self.write_batch(&mut stream, &mut batch, &mut buf) => if written.is_err() { return None },
                // A slow-consumer close must not wait for a stream the peer stopped reading.
                _ = self.outbox.wait_closed() => {}
            }
        };
        if reason == CloseReason::GoingAway && self.flush(&mut stream, &mut batch, &mut buf).await.is_err() {
            return None;
        }
        debug!(code = reason.code(), "closing WebTransport session");
        Some(reason)
    }

    /// Writes what is still queued, then gives it a moment to arrive: closing a QUIC connection discards unsent
    /// stream data.
    async fn flush<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        batch: &mut Vec<Outgoing>,
        buf: &mut BytesMut,
    ) -> std::io::Result<()> {
        let mut wrote = false;
        while self.outbox.try_batch(batch, BATCH).unwrap_or(false) {
            self.write_batch(stream, batch, buf).await?;
            wrote = true;
        }
        if wrote {
            let grace = (self.quic.rtt() * 2 + Duration::from_millis(20)).min(FLUSH_GRACE);
            let _ = tokio::time::timeout(grace, self.quic.closed()).await;
        }
        Ok(())
    }

    /// Sends volatile messages that fit as datagrams and writes everything else as frames in one stream write.
    async fn write_batch<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        batch: &mut Vec<Outgoing>,
        buf: &mut BytesMut,
    ) -> std::io::Result<()> {
        let (count, mut bytes) = (batch.len(), 0);
        for message in batch.drain(..) {
            bytes += message.postcard().len();
            if message.volatile_key().is_some() && self.send_datagram(message.postcard())? {
                continue;
            }
            put_frame(buf, message.postcard());
        }
        self.metrics.sent_batch(count, bytes, self.outbox.dropped_volatile());
        if !buf.is_empty() {
            stream.write_all(buf).await?;
            buf.clear();
        }
        Ok(())
    }

    /// Sends `payload` as a datagram if it fits the session's current datagram size; `Ok(false)` if it does not and
    /// must go on the stream instead.
    fn send_datagram(&self, payload: &Bytes) -> std::io::Result<bool> {
        let room = self.quic.max_datagram_size().unwrap_or(0).saturating_sub(self.datagram_prefix.len());
        if !fits_datagram(payload.len(), room) {
            return Ok(false);
        }
        let mut datagram = BytesMut::with_capacity(self.datagram_prefix.len() + payload.len());
        datagram.extend_from_slice(&self.datagram_prefix);
        datagram.extend_from_slice(payload);
        match self.quic.send_datagram(datagram.freeze()) {
            Ok(()) => {
                self.metrics.metrics().datagram_sent(payload.len());
                Ok(true)
            }
            // The path MTU can shrink between the check and the send.
            Err(SendDatagramError::TooLarge) => Ok(false),
            Err(error) => Err(std::io::Error::other(error)),
        }
    }
}
