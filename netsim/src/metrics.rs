//! What a run measures, as one JSON object per scenario and transport.

use serde::{Deserialize, Serialize};

use crate::client::Transport;
use crate::link::LinkConfig;
use crate::model::LinkStats;
use crate::scenarios::Scenario;

/// Percentiles in milliseconds (all zero when there were no samples).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of samples in microseconds, reported in milliseconds.
    pub fn of_us(samples: &[u64]) -> Self {
        if samples.is_empty() {
            return Percentiles::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let rank = |p: f64| {
            let index = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
            sorted[index.clamp(1, sorted.len()) - 1] as f64 / 1000.0
        };
        Percentiles {
            count: sorted.len() as u64,
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: *sorted.last().unwrap() as f64 / 1000.0,
        }
    }
}

/// The result of one scenario over one transport on one link.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub scenario: Scenario,
    pub transport: Transport,
    /// `faithful` (TUN router, both transports impaired) or `quick` (UDP relay: only WebTransport impaired).
    pub mode: String,
    pub loss: f64,
    pub rtt_ms: f64,
    pub seed: u64,
    pub clients: usize,
    /// Messages sent: cursor updates, or reliable writes.
    pub sent: u64,
    /// Deliveries expected at the other clients (sent × (clients − 1)).
    pub expected: u64,
    /// Distinct deliveries seen at the other clients.
    pub delivered: u64,
    pub delivery_ratio: f64,
    /// Cursor: send → shown at another client. Reliable: first send → delivered to another client (resends keep the
    /// first send time). Handshake: client start → session up.
    pub latency_ms: Percentiles,
    /// Cursor only: age of the newest position of each other client each client shows, sampled every 20 ms.
    pub staleness_ms: Option<Percentiles>,
    /// Reliable scenarios: every client's log and state equal the server's.
    pub converged: Option<bool>,
    /// From the last write (outage: from the outage's end) to the last change any client saw.
    pub converge_ms: Option<f64>,
    /// Writes sent but not stored by the server, and writes stored more than once.
    pub lost_writes: Option<u64>,
    pub duplicate_writes: Option<u64>,
    /// Messages a client received twice.
    pub duplicates: u64,
    /// Messages older than one already received (cursor positions then not shown; log entries below the last seq).
    pub out_of_order: u64,
    /// Clients that never got a working session.
    pub session_failures: u64,
    /// Successful connections after a client's first one.
    pub reconnects: u64,
    /// Connection attempts that failed (the client retried with backoff).
    pub failed_connects: u64,
    /// Connections a client dropped as dead or that closed under it.
    pub drops: u64,
    pub link: Option<LinkConfig>,
    pub link_up: LinkStats,
    pub link_down: LinkStats,
    pub wall_secs: f64,
    pub notes: Vec<String>,
}

impl RunResult {
    pub fn new(scenario: Scenario, transport: Transport, clients: usize) -> Self {
        RunResult {
            scenario,
            transport,
            mode: String::new(),
            loss: 0.0,
            rtt_ms: 0.0,
            seed: 0,
            clients,
            sent: 0,
            expected: 0,
            delivered: 0,
            delivery_ratio: 0.0,
            latency_ms: Percentiles::default(),
            staleness_ms: None,
            converged: None,
            converge_ms: None,
            lost_writes: None,
            duplicate_writes: None,
            duplicates: 0,
            out_of_order: 0,
            session_failures: 0,
            reconnects: 0,
            failed_connects: 0,
            drops: 0,
            link: None,
            link_up: LinkStats::default(),
            link_down: LinkStats::default(),
            wall_secs: 0.0,
            notes: Vec::new(),
        }
    }

    pub(crate) fn finish(&mut self) {
        self.delivery_ratio = if self.expected == 0 { 1.0 } else { self.delivered as f64 / self.expected as f64 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        let p = Percentiles::of_us(&samples);
        assert_eq!((p.count, p.p50, p.p90, p.p99, p.max), (100, 50.0, 90.0, 99.0, 100.0));
        assert_eq!(Percentiles::of_us(&[]), Percentiles::default());
        assert_eq!(Percentiles::of_us(&[7_000]).p99, 7.0);
    }
}
