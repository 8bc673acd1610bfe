//! The one connection driver both transports use: a WebSocket and a WebTransport session differ only in how bytes
//! move (the small [`transport`] traits); what a connection may do and how it ends is decided here, once.
//!
//! A connection runs two halves:
//! - the **reading loop** (this module): each message counted against the message rate and the metrics, checked
//!   against the connection's grant and handed to the engine; the idle timeout and the token's expiry; the peer's
//!   goodbye or a broken rule ends it;
//! - the **writer task** ([`writer`]): the outbox drained in batches (a burst's messages together, [`coalesce`]),
//!   keepalives, and on the way out the shutdown flush and the close with its code.
//!
//! Ending is always in the same order: the room forgets the connection first (nothing more is queued for it), the
//! writer tells the peer why (bounded), then the reader waits, bounded, for the peer to acknowledge the close, so
//! that the peer reads the close code before the transport goes away.

pub mod attach;
mod budget;
mod coalesce;
pub mod transport;
mod writer;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{Instrument, debug};

pub use attach::{Attachment, Request, attach, serve};
pub use budget::{LARGE_WRITE, WriteBudget};
pub use transport::{Closing, Departure, Inbound, Liveness, TransportReader, TransportWriter};
use writer::{CLOSE_TIMEOUT, Writer};

use crate::admission::MessageRate;
use crate::auth::Access;
use crate::close::CloseReason;
use crate::context::ServerContext;
use crate::engine::{Member, Outbox};
pub use crate::metrics::ConnectionMetrics;
use crate::metrics::{MessageKind, Metrics, Transport};

/// How long the server waits for the peer to answer its close before dropping the transport.
const CLOSE_REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs an admitted connection until it ends; returns how (`None`: the transport failed under the writer).
pub async fn drive<R: TransportReader, W: TransportWriter>(
    context: &ServerContext,
    connection: Member,
    access: Access,
    transport: Transport,
    liveness: Liveness,
    reader: R,
    writer: W,
) -> Option<Closing> {
    connection.set_transport(transport);
    let metrics = Arc::new(context.metrics.connection(transport));
    let outbox = connection.outbox().clone();
    let member = LocalMember { connection, access, rate: MessageRate::new(&context.config.limits), metrics };
    run(context, outbox, member, liveness, reader, writer).await
}

/// Runs a connection whose room is owned by another node of the cluster: the peer's messages go to `upstream`,
/// which forwards them to the owner, and what the owner sends back arrives in `outbox` (see
/// [`crate::cluster::forwarding`]). The owner applies the rates and grants; this side keeps the transport's rules,
/// its liveness and the outbox's bound, so the peer meets the same limits and close codes as on the owner itself.
pub async fn relay<R: TransportReader, W: TransportWriter, U: Destination>(
    context: &ServerContext,
    outbox: Arc<Outbox>,
    upstream: U,
    liveness: Liveness,
    reader: R,
    writer: W,
) -> Option<Closing> {
    run(context, outbox, upstream, liveness, reader, writer).await
}

/// Where the reading loop hands what the peer sends: the room on this node ([`drive`]), or the owner of the room
/// on another node ([`relay`]).
pub trait Destination: Send {
    /// Takes one thing the peer sent; `Err` when the connection ends.
    fn receive(&self, inbound: Inbound) -> impl Future<Output = Result<(), ReadEnd>> + Send;

    /// Resolves when the destination itself ends the connection (the grant expired); never by default.
    fn deadline(&self) -> impl Future<Output = CloseReason> + Send {
        std::future::pending()
    }

    /// The transport's metrics, for the writer.
    fn metrics(&self) -> Arc<ConnectionMetrics>;
}

async fn run<R: TransportReader, W: TransportWriter, D: Destination>(
    context: &ServerContext,
    outbox: Arc<Outbox>,
    destination: D,
    liveness: Liveness,
    mut reader: R,
    writer: W,
) -> Option<Closing> {
    let (departed, departures) = watch::channel(None);
    let writer_half = Writer {
        outbox: outbox.clone(),
        shutdown: context.shutdown.clone(),
        keepalive_every: liveness.keepalive_every,
        metrics: destination.metrics(),
        budget: context.write_budget.clone(),
    };
    let mut writer_task = tokio::spawn(writer_half.run(writer, departures).in_current_span());
    let (read_end, written) = tokio::select! {
        end = read(&destination, &mut reader, liveness.idle_timeout) => (Some(end), None),
        closing = &mut writer_task => (None, Some(closing.ok().flatten())),
    };
    match read_end {
        Some(ReadEnd::Peer(departure)) => {
            departed.send_replace(Some(departure));
        }
        Some(ReadEnd::Server(reason)) => {
            debug!(reason = reason.name(), "closing");
            outbox.close(reason);
        }
        None => {}
    }
    // Nothing more is queued for a connection that is going away.
    drop(destination);
    let closing = match written {
        Some(closing) => closing,
        None => join_bounded(writer_task).await,
    };
    if let Some(closing) = closing {
        let closed_by_server = match closing {
            Closing::Server(reason) => Some(reason),
            Closing::Peer(_) => None,
        };
        bounded(CLOSE_REPLY_TIMEOUT, reader.until_closed(closed_by_server)).await;
    }
    debug!(?closing, "connection ended");
    closing
}

/// The reading loop: hands everything the peer sends to `destination` until the peer goes, a rule is broken, the
/// peer is idle for `idle_timeout` or the destination's deadline passes.
async fn read<D: Destination, R: TransportReader>(
    destination: &D,
    reader: &mut R,
    idle_timeout: Option<Duration>,
) -> ReadEnd {
    let deadline = destination.deadline();
    tokio::pin!(deadline);
    loop {
        let inbound = tokio::select! {
            inbound = within(idle_timeout, reader.next()) => match inbound {
                Some(inbound) => inbound,
                None => return ReadEnd::Server(CloseReason::IdleTimeout),
            },
            reason = &mut deadline => return ReadEnd::Server(reason),
        };
        if let Err(end) = destination.receive(inbound).await {
            return end;
        }
    }
}

/// Closes a connection that was refused after its transport was set up (a limit: connect rate, room or server
/// full), so that the client sees the limit's close code; the refusal is counted like any other server close.
pub async fn refuse<R: TransportReader, W: TransportWriter>(
    metrics: &Metrics,
    reason: CloseReason,
    mut reader: R,
    mut writer: W,
) {
    debug!(reason = reason.name(), "refused");
    metrics.closed(reason);
    bounded(CLOSE_TIMEOUT, writer.close(Closing::Server(reason))).await;
    bounded(CLOSE_REPLY_TIMEOUT, reader.until_closed(Some(reason))).await;
}

/// Why the reading loop stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadEnd {
    Peer(Departure),
    Server(CloseReason),
}

/// The room on this node: each message counted against the rate and the metrics, checked against the grant and
/// handed to the engine.
struct LocalMember {
    connection: Member,
    access: Access,
    rate: MessageRate,
    metrics: Arc<ConnectionMetrics>,
}

impl Destination for LocalMember {
    async fn receive(&self, inbound: Inbound) -> Result<(), ReadEnd> {
        match inbound {
            Inbound::Message { decoded, len } => {
                // Counted before anything is answered: a flood of malformed input costs the server an `error` each.
                self.rate.check().map_err(ReadEnd::Server)?;
                self.metrics.received(MessageKind::of(&decoded), len);
                match decoded {
                    Ok(message) => self.access.dispatch(&self.connection, message),
                    Err(error) => self.connection.send_error(error),
                }
                Ok(())
            }
            Inbound::Noise => self.rate.check().map_err(ReadEnd::Server),
            Inbound::Alive => Ok(()),
            Inbound::Left(departure) => Err(ReadEnd::Peer(departure)),
            Inbound::Broke(reason) => Err(ReadEnd::Server(reason)),
        }
    }

    async fn deadline(&self) -> CloseReason {
        self.access.expired().await;
        CloseReason::TokenExpired
    }

    fn metrics(&self) -> Arc<ConnectionMetrics> {
        self.metrics.clone()
    }
}

/// `future`'s output, or `None` if `limit` passes first; no limit waits for ever.
async fn within<T>(limit: Option<Duration>, future: impl Future<Output = T>) -> Option<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, future).await.ok(),
        None => Some(future.await),
    }
}

/// Runs `future` for at most `limit`.
async fn bounded(limit: Duration, future: impl Future<Output = ()>) {
    let _ = tokio::time::timeout(limit, future).await;
}

/// Waits for the writer to say goodbye; it bounds its own goodbye, so the margin here only guards against a bug.
async fn join_bounded(mut task: tokio::task::JoinHandle<Option<Closing>>) -> Option<Closing> {
    match tokio::time::timeout(CLOSE_TIMEOUT + Duration::from_secs(1), &mut task).await {
        Ok(closing) => closing.ok().flatten(),
        Err(_) => {
            task.abort();
            None
        }
    }
}
