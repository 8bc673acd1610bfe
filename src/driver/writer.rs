//! The writer task of every connection: drains the outbox onto the transport, several messages per write, keeps a
//! quiet connection alive, and on the way out flushes (at shutdown) and tells the peer why.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::budget::WriteBudget;
use super::coalesce::Coalescing;
use super::transport::{Closing, Departure, TransportWriter};
use crate::close::CloseReason;
use crate::engine::Outbox;
use crate::metrics::ConnectionMetrics;
use crate::outgoing::Outgoing;

/// Most messages taken from the outbox per write.
const BATCH: usize = 64;
/// Longest the goodbye (the shutdown flush and the close) may take: a peer that stopped reading cannot hold the task.
pub(super) const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the writer task watches besides the outbox.
pub(super) struct Writer {
    pub outbox: Arc<Outbox>,
    pub shutdown: CancellationToken,
    pub keepalive_every: Option<Duration>,
    pub metrics: Arc<ConnectionMetrics>,
    pub budget: Arc<WriteBudget>,
}

impl Writer {
    /// Runs until the connection ends, then says goodbye; returns how it ended (`None`: the transport failed).
    /// `departed` is set by the reader side when the peer ends the connection.
    pub async fn run<W: TransportWriter>(
        self,
        mut transport: W,
        mut departed: watch::Receiver<Option<Departure>>,
    ) -> Option<Closing> {
        let mut batch = Vec::with_capacity(BATCH);
        let mut keepalive = self.keepalive_every.map(keepalive_interval);
        let mut coalescing = Coalescing::default();
        // Made once and polled again on every turn, not made anew per batch: registering and dropping their waiters
        // on every delivery cost more than the rest of the loop.
        let shutdown = self.shutdown.cancelled();
        let departure = peer_departure(&mut departed);
        let closed = self.outbox.wait_closed();
        tokio::pin!(shutdown, departure, closed);
        let closing = loop {
            let next = tokio::select! {
                biased;
                () = &mut shutdown => Err(Closing::Server(CloseReason::GoingAway)),
                departure = &mut departure => Err(Closing::Peer(departure)),
                next = self.outbox.next_batch(&mut batch, BATCH) => next.map_err(Closing::Server),
                _ = tick(&mut keepalive) => match transport.keepalive().await {
                    Ok(()) => continue,
                    Err(_) => return None,
                },
            };
            if let Err(closing) = next {
                break closing;
            }
            if batch.len() < BATCH && coalescing.should_wait() {
                // The rest of a burst may be one scheduler turn away: see `coalesce`.
                tokio::task::yield_now().await;
                let (before, room_left) = (batch.len(), BATCH - batch.len());
                if let Err(reason) = self.outbox.try_batch(&mut batch, room_left) {
                    break Closing::Server(reason);
                }
                coalescing.waited(batch.len() - before);
            }
            tokio::select! {
                written = self.write_batch(&mut transport, &mut batch) => if written.is_err() { return None },
                // Neither a slow-consumer close nor shutdown may wait for a transport the peer stopped reading; the
                // next turn finds out which it was.
                () = &mut closed => {}
                () = &mut shutdown => {}
                departure = &mut departure => break Closing::Peer(departure),
            }
        };
        if let Closing::Server(reason) = closing {
            self.metrics.metrics().closed(reason);
        }
        let goodbye = async {
            if closing == Closing::Server(CloseReason::GoingAway) {
                self.flush(&mut transport, &mut batch).await;
            }
            transport.close(closing).await;
        };
        // Boxed: the flush and the close happen once, and would otherwise size every writer task for its life.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, Box::pin(goodbye)).await;
        Some(closing)
    }

    /// Writes what is still queued before a going-away close, and lets it arrive.
    async fn flush<W: TransportWriter>(&self, transport: &mut W, batch: &mut Vec<Outgoing>) {
        let mut wrote = false;
        while self.outbox.try_batch(batch, BATCH).unwrap_or(false) {
            if self.write_batch(transport, batch).await.is_err() {
                return;
            }
            wrote = true;
        }
        if wrote {
            transport.settle().await;
        }
    }

    async fn write_batch<W: TransportWriter>(
        &self,
        transport: &mut W,
        batch: &mut Vec<Outgoing>,
    ) -> std::io::Result<()> {
        let count = batch.len();
        // Held until the batch is written: while a peer is not reading, its copy of a large write counts.
        let _reserved = self.budget.reserve(batch.iter().map(Outgoing::size).sum()).await;
        let bytes = transport.write_batch(batch).await?;
        self.metrics.sent_batch(count, bytes, self.outbox.dropped_volatile());
        Ok(())
    }
}

/// Ticks `every`, starting one period from now (a connection that just opened is not quiet).
fn keepalive_interval(every: Duration) -> Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + every, every);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// The next keepalive tick; never, for a transport without keepalive.
async fn tick(keepalive: &mut Option<Interval>) {
    match keepalive {
        Some(interval) => drop(interval.tick().await),
        None => std::future::pending().await,
    }
}

/// Resolves once the reader side reports the peer gone (or the reader side itself is gone).
async fn peer_departure(departed: &mut watch::Receiver<Option<Departure>>) -> Departure {
    match departed.wait_for(Option::is_some).await {
        Ok(departure) => departure.unwrap_or(Departure::Gone),
        Err(_) => Departure::Gone,
    }
}
