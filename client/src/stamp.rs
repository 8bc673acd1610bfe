//! Timestamped payloads for measuring latency: every value a measuring client (the load tool, netsim) writes is a
//! [`Stamp`] saying who sent it, its number, and when on this process's monotonic clock, so that a receiver in the
//! same process reads the stamp back for the latency and checks order and completeness.

use std::sync::OnceLock;
use std::time::Instant;

use ciborium::value::Value as Cbor;
use driftdb_protocol::Value;
use serde::{Deserialize, Serialize};

/// Microseconds since this process's clock started (the first call). All clients of a process share it, so send and
/// receive times compare.
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// The payload of every push: sender `s`, its message number `n`, send time `t` (µs), plus cursor-like coordinates
/// (derived from `n`, never read back) so that the payload looks like what a browser client sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stamp {
    pub t: u64,
    pub s: u32,
    pub n: u64,
}

impl Stamp {
    pub fn now(s: u32, n: u64) -> Self {
        Stamp { t: now_us(), s, n }
    }

    fn xy(&self) -> (f64, f64) {
        let phase = self.n as f64 * 0.05 + f64::from(self.s);
        (0.5 + 0.4 * phase.sin(), 0.5 + 0.4 * phase.cos())
    }

    /// The payload as JSON text (written by hand: it is on the load tool's hot path).
    pub fn json(&self) -> String {
        let (x, y) = self.xy();
        format!(r#"{{"x":{x:.4},"y":{y:.4},"t":{},"s":{},"n":{}}}"#, self.t, self.s, self.n)
    }

    /// The payload as a CBOR tree, the same map as [`Stamp::json`].
    pub fn cbor_tree(&self) -> Cbor {
        let (x, y) = self.xy();
        let text = |s: &str| Cbor::Text(s.to_owned());
        Cbor::Map(vec![
            (text("x"), Cbor::Float((x * 1e4).round() / 1e4)),
            (text("y"), Cbor::Float((y * 1e4).round() / 1e4)),
            (text("t"), Cbor::Integer(self.t.into())),
            (text("s"), Cbor::Integer(self.s.into())),
            (text("n"), Cbor::Integer(self.n.into())),
        ])
    }

    /// The payload as a protocol value.
    pub fn value(&self) -> Value {
        Value::from_tree(self.cbor_tree())
    }

    /// The stamp in a received value, if it carries one.
    pub fn from_value(value: &Value) -> Option<Stamp> {
        ciborium::from_reader(&value.cbor()[..]).ok()
    }
}
