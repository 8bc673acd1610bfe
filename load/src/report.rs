//! Results: counters merged from every receiver, latency percentiles, the server's CPU and memory, and the two output
//! forms (one JSON object, one Markdown table row).

use hdrhistogram::Histogram;
use serde::Serialize;

/// Error descriptions kept verbatim in a report (the rest are only counted).
const ERROR_SAMPLES: usize = 10;

/// What one receiver (or the whole run, once merged) saw.
#[derive(Default)]
pub struct Tally {
    pub delivered: u64,
    /// Of them, reliable relays among volatile ones (`scale --reliable-percent`).
    pub reliable_delivered: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    /// Datagrams that arrived after a later one (not an error: datagrams are unordered).
    pub reordered: u64,
    /// End-to-end latencies in microseconds, as recorded by one receiver: a plain list, because a histogram with
    /// these bounds takes about 150 KB, which 20,000 receivers of the `scale` scenario cannot each afford.
    latencies_us: Vec<u64>,
    /// The merged latencies (the run's total).
    pub latency_us: Option<Histogram<u64>>,
}

impl Tally {
    pub fn error(&mut self, what: impl Into<String>) {
        self.errors += 1;
        if self.error_samples.len() < ERROR_SAMPLES {
            self.error_samples.push(what.into());
        }
    }

    pub fn latency(&mut self, sent_us: u64, now_us: u64) {
        self.latencies_us.push(now_us.saturating_sub(sent_us).max(1));
    }

    pub fn merge(&mut self, other: Tally) {
        self.delivered += other.delivered;
        self.reliable_delivered += other.reliable_delivered;
        self.errors += other.errors;
        self.reordered += other.reordered;
        for sample in other.error_samples {
            if self.error_samples.len() < ERROR_SAMPLES {
                self.error_samples.push(sample);
            }
        }
        let histogram = self
            .latency_us
            .get_or_insert_with(|| Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds"));
        for latency in self.latencies_us.drain(..).chain(other.latencies_us) {
            histogram.saturating_record(latency);
        }
        if let Some(other) = other.latency_us {
            histogram.add(&other).expect("histograms with the same bounds merge");
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub samples: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ServerUsage {
    pub pid: u32,
    /// Server CPU seconds (user + system) spent during the measured window.
    pub cpu_s: f64,
    pub deliveries_per_cpu_s: Option<f64>,
    /// Server CPU per delivery, microseconds.
    pub cpu_us_per_delivery: Option<f64>,
    pub rss_baseline_kb: u64,
    pub rss_end_kb: u64,
    pub rss_delta_kb: i64,
    /// RSS delta over the baseline divided by the connections held (meaningful for `idle`).
    pub kb_per_connection: f64,
}

/// Deliveries expected and made, of a part of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Part {
    pub expected: u64,
    pub delivered: u64,
    pub delivery_ratio: f64,
}

impl Part {
    pub fn new(expected: u64, delivered: u64) -> Self {
        let delivery_ratio = if expected == 0 { 1.0 } else { delivered as f64 / expected as f64 };
        Part { expected, delivered, delivery_ratio }
    }
}

/// One transport's share of a run that mixes them (`scale --wt-connections`).
#[derive(Clone, Debug, Serialize)]
pub struct Share {
    pub transport: String,
    pub connections: usize,
    /// Everything delivered to this transport's clients.
    pub all: Part,
    /// The reliable relays among it, when some were sent.
    pub reliable: Option<Part>,
    pub latency: Option<Latency>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Replay {
    pub entries: u64,
    pub ok: bool,
}

/// The result of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub transport: String,
    pub params: String,
    pub connections: usize,
    /// Seconds of the measured window: from the first send until everything arrived (or the drain time ran out).
    pub window_s: f64,
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    pub delivery_ratio: f64,
    pub deliveries_per_s: f64,
    pub latency: Option<Latency>,
    pub reordered_datagrams: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub replay: Option<Replay>,
    /// The reliable relays among volatile ones, when some were sent (`scale --reliable-percent`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reliable: Option<Part>,
    /// Per transport, when the run mixed them (`scale --wt-connections`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_transport: Vec<Share>,
    pub server: Option<ServerUsage>,
    /// CPU seconds this tool spent in the window (it shares the machine with the server).
    pub load_cpu_s: f64,
    /// Side by side (`--server NAME=COMMAND`): which server this run measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Side by side: this server's CPU per delivery over the floor's, in the same sitting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor_multiple: Option<f64>,
}

impl Report {
    /// Everything expected arrived, nothing went wrong, and any replay check passed.
    pub fn ok(&self) -> bool {
        self.errors == 0 && self.delivered == self.expected && self.replay.as_ref().is_none_or(|r| r.ok)
    }

    pub fn latency_of(tally: &Tally) -> Option<Latency> {
        let h = tally.latency_us.as_ref()?;
        (!h.is_empty()).then(|| Latency {
            p50_ms: h.value_at_quantile(0.50) as f64 / 1000.0,
            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
            max_ms: h.max() as f64 / 1000.0,
            mean_ms: h.mean() / 1000.0,
            samples: h.len(),
        })
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("a report always serialises")
    }

    pub const MARKDOWN_HEADER: &str = "| scenario | transport | parameters | conns | sent | delivered | ratio | deliveries/s \
        | p50 ms | p99 ms | max ms | server CPU s | deliveries/CPU-s | server RSS Δ KB | KB/conn | errors |\n\
        | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";

    pub fn markdown_row(&self) -> String {
        let ms = |f: fn(&Latency) -> f64| self.latency.as_ref().map_or("–".to_owned(), |l| format!("{:.3}", f(l)));
        let server = self.server.as_ref();
        let opt = |value: Option<String>| value.unwrap_or_else(|| "–".to_owned());
        format!(
            "| {} | {} | {} | {} | {} | {} | {:.4} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
            self.scenario,
            self.transport,
            self.params,
            self.connections,
            self.sent,
            self.delivered,
            self.delivery_ratio,
            self.deliveries_per_s,
            ms(|l| l.p50_ms),
            ms(|l| l.p99_ms),
            ms(|l| l.max_ms),
            opt(server.map(|s| format!("{:.2}", s.cpu_s))),
            opt(server.and_then(|s| s.deliveries_per_cpu_s).map(|d| format!("{d:.0}"))),
            opt(server.map(|s| s.rss_delta_kb.to_string())),
            opt(server.map(|s| format!("{:.1}", s.kb_per_connection))),
            self.errors,
        )
    }
}

/// The side-by-side table: one row per server and scenario, CPU per delivery also as a multiple of the floor's.
pub fn side_by_side_table(reports: &[Report]) -> String {
    let mut table = String::from(
        "| server | scenario | transport | parameters | conns | delivered | ratio | p50 ms | p99 ms | server CPU µs/delivery \
         | × floor | server RSS end KB | errors |\n\
         | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let dash = || "–".to_owned();
    for r in reports {
        let ms = |f: fn(&Latency) -> f64| r.latency.as_ref().map_or_else(dash, |l| format!("{:.3}", f(l)));
        let server = r.server.as_ref();
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.4} | {} | {} | {} | {} | {} | {} |\n",
            r.server_name.as_deref().unwrap_or("–"),
            r.scenario,
            r.transport,
            r.params,
            r.connections,
            r.delivered,
            r.delivery_ratio,
            ms(|l| l.p50_ms),
            ms(|l| l.p99_ms),
            server.and_then(|s| s.cpu_us_per_delivery).map_or_else(dash, |us| format!("{us:.2}")),
            r.floor_multiple.map_or_else(dash, |m| format!("{m:.2}")),
            server.map_or_else(dash, |s| s.rss_end_kb.to_string()),
            r.errors,
        ));
    }
    table
}
