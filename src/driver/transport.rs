//! The little each transport implements for the [driver](super): read what the peer sends, write batches, say why
//! the connection ends. Everything else about a connection's life (rates, metrics, batching, keepalive, idle and
//! token deadlines, shutdown flush, the order of closing) is the driver's, so it is the same on every transport.

use std::future::Future;
use std::io;
use std::time::Duration;

use crate::close::CloseReason;
use crate::outgoing::Outgoing;
use crate::protocol::{ClientMessage, DecodeError};

/// One thing read from the peer.
#[derive(Debug)]
pub enum Inbound {
    /// A client message, or why it cannot be taken (it did not decode, or it came the wrong way: answered with an
    /// `error`, the connection stays open), and its size on the wire.
    Message { decoded: Result<ClientMessage, String>, len: usize },
    /// Input that is no message of this connection (a datagram of another session): counted against the message
    /// rate, so that a flood of it is refused like any other, but not answered.
    Noise,
    /// The peer proved it is alive without sending a message (a WebSocket pong, a forwarder's heartbeat): the idle
    /// timeout starts again, nothing is counted or answered.
    Alive,
    /// The peer ended the connection.
    Left(Departure),
    /// The peer broke a rule of the transport's framing or size limit: the server closes with this reason.
    Broke(CloseReason),
}

impl Inbound {
    /// A message as the codec decoded it from `len` bytes.
    pub fn decoded(decoded: Result<ClientMessage, DecodeError>, len: usize) -> Self {
        Inbound::Message { decoded: decoded.map_err(|error| error.to_string()), len }
    }
}

/// How the peer ended its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Departure {
    /// It said goodbye: a WebSocket close frame, a WebTransport `goodbye` message.
    Goodbye,
    /// The connection, or the stream the messages travel on, went away.
    Gone,
}

/// Why the writer stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closing {
    /// The server ends the connection: the peer is told this reason (and its code).
    Server(CloseReason),
    /// The peer ended it.
    Peer(Departure),
}

/// What a transport does about liveness, given the server's idle timeout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Liveness {
    /// Close with [`CloseReason::IdleTimeout`] when nothing at all arrives for this long.
    pub idle_timeout: Option<Duration>,
    /// Call [`TransportWriter::keepalive`] this often, so that a live but quiet peer answers and is never idle.
    pub keepalive_every: Option<Duration>,
}

/// The receiving half of a connection.
pub trait TransportReader: Send {
    /// The next thing the peer sends. Must be cancel-safe: the driver races it against deadlines.
    fn next(&mut self) -> impl Future<Output = Inbound> + Send;

    /// Once the writer has said goodbye: reads until the peer acknowledges the close or goes, so that it reads the
    /// close (and its code) before the transport goes away. The driver bounds the wait. `closed` is the reason the
    /// server closed with, `None` when the peer ended the connection.
    fn until_closed(&mut self, closed: Option<CloseReason>) -> impl Future<Output = ()> + Send;
}

/// The sending half of a connection, driven by the driver's writer task.
pub trait TransportWriter: Send + 'static {
    /// Writes every message of `batch` (draining it) and flushes; returns the payload bytes written.
    fn write_batch(&mut self, batch: &mut Vec<Outgoing>) -> impl Future<Output = io::Result<usize>> + Send;

    /// Proves to a quiet peer that the connection lives (a WebSocket ping). Only called when [`Liveness`] asks.
    fn keepalive(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// After a going-away flush that wrote something: waits for it to arrive where closing would discard it.
    fn settle(&mut self) -> impl Future<Output = ()> + Send;

    /// Tells the peer the connection ends, and why.
    fn close(&mut self, closing: Closing) -> impl Future<Output = ()> + Send;
}
