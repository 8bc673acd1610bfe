//! A connection's outgoing queue, bounded in bytes.
//!
//! The engine pushes into it under the room's lock and never waits; the connection's writer task drains it. When
//! the bound is reached, queued volatile messages are dropped first (they are superseded by newer ones anyway); if a
//! reliable message still does not fit, the queue closes with [`CloseReason::SlowConsumer`] instead of dropping it
//! silently, and the client resumes from its last seq when it reconnects.
//!
//! An empty queue takes any one message, however large: a reader with nothing pending is not slow, and a `get`
//! replay larger than the bound must still reach it (otherwise it would be closed again on every reconnect). So the
//! queue holds at most the bound or a single message, whichever is larger.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use tokio_util::sync::CancellationToken;

use crate::close::CloseReason;
use crate::outgoing::Outgoing;

pub struct Outbox {
    state: Mutex<State>,
    /// The one writer that drains this outbox, parked while it is empty. A lock-free slot rather than a `Notify`
    /// (whose waiter list takes a lock on every wait and wake): an outbox has exactly one consumer, and every
    /// delivery is a wake.
    writer: AtomicWaker,
    /// Cancelled on close, so a writer blocked on a full socket can give up at once.
    closed_signal: CancellationToken,
    limit_bytes: usize,
    dropped_volatile: AtomicU64,
}

struct State {
    queue: VecDeque<Outgoing>,
    bytes: usize,
    closed: Option<CloseReason>,
}

impl Outbox {
    pub fn new(limit_bytes: usize) -> Self {
        Outbox {
            state: Mutex::new(State { queue: VecDeque::new(), bytes: 0, closed: None }),
            writer: AtomicWaker::new(),
            closed_signal: CancellationToken::new(),
            limit_bytes,
            dropped_volatile: AtomicU64::new(0),
        }
    }

    /// Queues a message without waiting. See the module docs for what happens at the bound.
    pub fn push(&self, message: Outgoing) {
        let mut state = self.state.lock().expect("outbox lock poisoned");
        if state.closed.is_some() {
            return;
        }
        let size = message.size();
        if state.overflows(self.limit_bytes, size) {
            let dropped = state.make_room(self.limit_bytes, size, message.volatile_key());
            self.dropped_volatile.fetch_add(dropped, Ordering::Relaxed);
            if state.overflows(self.limit_bytes, size) {
                if message.volatile_key().is_some() {
                    self.dropped_volatile.fetch_add(1, Ordering::Relaxed);
                } else {
                    drop(state);
                    self.close(CloseReason::SlowConsumer);
                }
                return;
            }
        }
        state.bytes += size;
        state.queue.push_back(message);
        drop(state);
        self.writer.wake();
    }

    /// Closes the queue: the writer stops and closes its connection with `reason`. The first reason wins.
    pub fn close(&self, reason: CloseReason) {
        self.state.lock().expect("outbox lock poisoned").close(reason);
        self.closed_signal.cancel();
        self.writer.wake();
    }

    /// Resolves once the queue is closed.
    pub async fn wait_closed(&self) {
        self.closed_signal.cancelled().await
    }

    /// Waits until messages are queued, then moves up to `max` of them into `batch`. Fails once the queue is closed.
    /// One task drains an outbox: a second one waiting at the same time would take the first one's wake-ups.
    pub async fn next_batch(&self, batch: &mut Vec<Outgoing>, max: usize) -> Result<(), CloseReason> {
        std::future::poll_fn(|cx| {
            if self.try_batch(batch, max)? {
                return Poll::Ready(Ok(()));
            }
            self.writer.register(cx.waker());
            // Checked again after registering: a push between the first check and the registration woke nobody.
            match self.try_batch(batch, max)? {
                true => Poll::Ready(Ok(())),
                false => Poll::Pending,
            }
        })
        .await
    }

    /// Moves up to `max` queued messages into `batch` without waiting; `Ok(false)` when none were queued.
    pub fn try_batch(&self, batch: &mut Vec<Outgoing>, max: usize) -> Result<bool, CloseReason> {
        let mut state = self.state.lock().expect("outbox lock poisoned");
        if let Some(reason) = state.closed {
            return Err(reason);
        }
        let count = state.queue.len().min(max);
        let mut freed = 0;
        for message in state.queue.drain(..count) {
            freed += message.size();
            batch.push(message);
        }
        state.bytes -= freed;
        Ok(count > 0)
    }

    /// Bytes currently queued.
    pub fn queued_bytes(&self) -> usize {
        self.state.lock().expect("outbox lock poisoned").bytes
    }

    /// Volatile messages dropped because this reader was behind.
    pub fn dropped_volatile(&self) -> u64 {
        self.dropped_volatile.load(Ordering::Relaxed)
    }

    /// Why the queue was closed, if it was.
    pub fn closed(&self) -> Option<CloseReason> {
        self.state.lock().expect("outbox lock poisoned").closed
    }
}

impl State {
    /// Whether `incoming` more bytes would break the bound. An empty queue takes any one message (see the module
    /// docs).
    fn overflows(&self, limit: usize, incoming: usize) -> bool {
        !self.queue.is_empty() && self.bytes + incoming > limit
    }

    fn close(&mut self, reason: CloseReason) {
        if self.closed.is_none() {
            self.closed = Some(reason);
            self.queue.clear();
            self.bytes = 0;
        }
    }

    /// Drops queued volatile messages until `incoming` bytes fit: first those superseded by an incoming volatile
    /// message for the same key, then the oldest. Returns how many were dropped.
    fn make_room(&mut self, limit: usize, incoming: usize, incoming_volatile_key: Option<&str>) -> u64 {
        let before = self.queue.len();
        if let Some(key) = incoming_volatile_key {
            self.drop_volatile_while(limit, incoming, |k| k == key);
        }
        self.drop_volatile_while(limit, incoming, |_| true);
        (before - self.queue.len()) as u64
    }

    fn drop_volatile_while(&mut self, limit: usize, incoming: usize, matches: impl Fn(&str) -> bool) {
        let mut bytes = self.bytes;
        self.queue.retain(|m| {
            if bytes + incoming <= limit {
                return true;
            }
            match m.volatile_key() {
                Some(key) if matches(key) => {
                    bytes -= m.size();
                    false
                }
                _ => true,
            }
        });
        self.bytes = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ServerMessage, Value};

    fn push(key: &str, seq: u64, volatile: bool) -> Outgoing {
        Outgoing::new(ServerMessage::Push { key: key.into(), value: Value::null(), seq, volatile })
    }

    fn drain(outbox: &Outbox) -> Vec<u64> {
        let mut batch = Vec::new();
        outbox.try_batch(&mut batch, usize::MAX).unwrap();
        batch
            .iter()
            .map(|m| match m.message() {
                ServerMessage::Push { seq, .. } => *seq,
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn volatile_messages_are_dropped_before_reliable_ones() {
        let size = push("k", 0, false).size();
        let outbox = Outbox::new(size * 3);
        outbox.push(push("c", 1, true));
        outbox.push(push("k", 2, false));
        outbox.push(push("c", 3, true));
        // Full: a new volatile message for "cursor" replaces the oldest queued one for that key.
        outbox.push(push("c", 4, true));
        assert_eq!(drain(&outbox), vec![2, 3, 4]);
        assert_eq!(outbox.dropped_volatile(), 1);
        assert_eq!(outbox.queued_bytes(), 0);
    }

    #[test]
    fn reliable_overflow_closes_as_slow_consumer() {
        let size = push("k", 0, false).size();
        let outbox = Outbox::new(size * 2);
        outbox.push(push("k", 1, false));
        outbox.push(push("other", 2, true));
        outbox.push(push("k", 3, false)); // fits after dropping the volatile one
        assert_eq!(outbox.closed(), None);
        outbox.push(push("k", 4, false));
        assert_eq!(outbox.closed(), Some(CloseReason::SlowConsumer));
        assert_eq!(outbox.try_batch(&mut Vec::new(), 10), Err(CloseReason::SlowConsumer));
    }

    #[test]
    fn an_empty_queue_takes_one_message_larger_than_the_bound() {
        let size = push("k", 0, false).size();
        let outbox = Outbox::new(size / 2);
        outbox.push(push("k", 1, false));
        assert_eq!(outbox.closed(), None, "a reader with nothing pending is not slow");
        outbox.push(push("k", 2, false));
        assert_eq!(outbox.closed(), Some(CloseReason::SlowConsumer));
    }

    #[tokio::test]
    async fn next_batch_wakes_on_push() {
        let outbox = std::sync::Arc::new(Outbox::new(1 << 20));
        let reader = {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                let mut batch = Vec::new();
                outbox.next_batch(&mut batch, 16).await.map(|_| batch.len())
            })
        };
        tokio::task::yield_now().await;
        outbox.push(push("k", 1, false));
        assert_eq!(reader.await.unwrap(), Ok(1));
    }
}
