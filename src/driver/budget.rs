//! One budget for the bytes of large writes that all connections together have on their way to their peers.
//!
//! A replay of a big key is encoded once and shared (see the engine's `KeyState`), but writing it copies it again:
//! tungstenite into its write buffer, WebTransport into its control-stream buffer. A peer that stops reading keeps
//! that copy until the write-stall deadline drops it, so without a bound a few hundred such readers pin gigabytes.
//! With the budget, a large write waits while the budget is spent, and the memory all those copies take is bounded
//! by it. Small writes (most of them: pushes, relays, pongs) never wait: per connection they are bounded by the
//! outbox already, and waiting behind a large write would add latency to everything.

use tokio::sync::{Semaphore, SemaphorePermit};

/// A batch of at least this many bytes is a large write.
pub const LARGE_WRITE: usize = 64 * 1024;
/// The budget counts in KiB, so that a large budget fits the semaphore's `u32` acquisitions.
const UNIT: usize = 1024;

pub struct WriteBudget {
    permits: Semaphore,
    units: usize,
}

impl WriteBudget {
    /// A budget of `bytes` (rounded up to whole KiB; at least one large write).
    pub fn new(bytes: usize) -> Self {
        let units = bytes.max(LARGE_WRITE).div_ceil(UNIT).min(Semaphore::MAX_PERMITS);
        WriteBudget { permits: Semaphore::new(units), units }
    }

    /// Reserves `bytes` for one write, waiting while the budget is spent; `None` for a small write, which takes
    /// nothing. A write larger than the whole budget takes all of it. Hold the reservation until the write is done.
    pub async fn reserve(&self, bytes: usize) -> Option<SemaphorePermit<'_>> {
        if bytes < LARGE_WRITE {
            return None;
        }
        let units = bytes.div_ceil(UNIT).min(self.units);
        let units = u32::try_from(units).unwrap_or(u32::MAX);
        // The semaphore is never closed.
        self.permits.acquire_many(units).await.ok()
    }

    /// Bytes of the budget not reserved now.
    pub fn available(&self) -> usize {
        self.permits.available_permits() * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_writes_take_nothing_and_large_ones_wait_for_the_budget() {
        let budget = WriteBudget::new(256 * 1024);
        assert!(budget.reserve(LARGE_WRITE - 1).await.is_none());
        let first = budget.reserve(200 * 1024).await.expect("a large write reserves");
        assert_eq!(budget.available(), 56 * 1024);
        let second = budget.reserve(100 * 1024);
        tokio::pin!(second);
        assert!(futures_util::poll!(second.as_mut()).is_pending(), "waits while the budget is spent");
        assert!(budget.reserve(10).await.is_none(), "a small write never waits");
        drop(first);
        assert!(second.await.is_some());
    }

    #[tokio::test]
    async fn a_write_larger_than_the_budget_takes_all_of_it() {
        let budget = WriteBudget::new(128 * 1024);
        let all = budget.reserve(10 << 20).await.expect("it does not wait for ever");
        assert_eq!(budget.available(), 0);
        drop(all);
        assert_eq!(budget.available(), 128 * 1024);
    }
}
