//! netsim: how DriftDB's transports behave under loss, delay, reordering and outages.
//!
//! A seeded impairment [`model`] per link direction, a [`link`] that applies it to packets on time, a [`lab`] that
//! puts a real `driftdb` server behind such a link (faithful mode: a user-space router between two TUN devices in two
//! network namespaces, so TCP and UDP are impaired identically; quick mode: a UDP relay, no root), [`scenarios`] run
//! by Rust clients over WebTransport and WebSocket, and their [`metrics`] with a [`report`] (Markdown table, PNG
//! chart). See `docs/netsim.md`.

pub mod client;
pub mod lab;
pub mod link;
pub mod metrics;
pub mod model;
pub mod netns;
pub mod progress;
pub mod report;
pub mod scenarios;

pub use client::Transport;
pub use lab::{Lab, Mode, find_server_binary};
pub use link::LinkConfig;
pub use metrics::{Percentiles, RunResult};
pub use model::{GilbertElliott, Impairment, Outage};
pub use scenarios::{Params, Scenario};

/// Whether this process runs as root (the faithful mode needs it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// One cell of a matrix: the link's loss rate and round-trip time, and what else impairs it.
#[derive(Clone, Debug)]
pub struct Cell {
    pub loss: f64,
    pub rtt_ms: f64,
    /// Everything but loss and delay (jitter, bursts, reordering, duplication, bandwidth), applied both ways.
    pub extra: Impairment,
}

impl Cell {
    /// The link configuration of this cell: `loss` and half the RTT each way, plus the extras.
    pub fn link(&self, seed: u64) -> LinkConfig {
        let impairment = Impairment { loss: self.loss, delay_ms: self.rtt_ms / 2.0, ..self.extra.clone() };
        LinkConfig::symmetric(impairment, seed)
    }
}

/// What [`run_matrix`] reports as it goes.
pub enum MatrixEvent<'a> {
    Starting { cell: &'a Cell, scenario: Scenario, transport: Transport },
    Finished(&'a RunResult),
}

/// Runs every scenario over every transport in every cell, with the same seed for both transports of a cell, and
/// tells `each` when a run starts and hands it each result as it comes.
pub fn run_matrix(
    lab: &Lab,
    cells: &[Cell],
    scenarios: &[Scenario],
    transports: &[Transport],
    params: &Params,
    seed: u64,
    mut each: impl FnMut(MatrixEvent<'_>),
) -> anyhow::Result<Vec<RunResult>> {
    let mut results = Vec::new();
    for cell in cells {
        for scenario in scenarios {
            for transport in transports {
                let link = cell.link(seed);
                each(MatrixEvent::Starting { cell, scenario: *scenario, transport: *transport });
                let result = lab.run(*scenario, *transport, &link, cell.rtt_ms, cell.loss, params)?;
                each(MatrixEvent::Finished(&result));
                results.push(result);
            }
        }
    }
    Ok(results)
}
