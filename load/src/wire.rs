//! What the load clients send and receive, and the three encodings they speak (JSON, CBOR, postcard).
//!
//! Every value the tool writes is a [`Stamp`]: who sent it, its number, and when (microseconds on the tool's own
//! monotonic clock), plus cursor-like coordinates. Receivers read the stamp back to measure latency and to check
//! order and completeness.

use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{Context, bail};
use ciborium::value::Value as Cbor;
use driftdb::protocol::{Action, ClientMessage, Replay, ServerMessage, Value, postcard_envelope};
use serde::Deserialize;

/// Microseconds since the tool's clock started (the first call).
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// The payload of every push: sender `s`, its message number `n`, send time `t` (µs), and a cursor position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct Stamp {
    pub t: u64,
    pub s: u32,
    pub n: u64,
}

impl Stamp {
    pub fn now(s: u32, n: u64) -> Self {
        Stamp { t: now_us(), s, n }
    }

    /// Cursor coordinates derived from the message number (the server never looks at them).
    fn xy(&self) -> (f64, f64) {
        let phase = self.n as f64 * 0.05 + f64::from(self.s);
        (0.5 + 0.4 * phase.sin(), 0.5 + 0.4 * phase.cos())
    }

    fn json(&self) -> String {
        let (x, y) = self.xy();
        format!(r#"{{"x":{x:.4},"y":{y:.4},"t":{},"s":{},"n":{}}}"#, self.t, self.s, self.n)
    }

    fn cbor_tree(&self) -> Cbor {
        let (x, y) = self.xy();
        Cbor::Map(vec![
            (text("x"), Cbor::Float((x * 1e4).round() / 1e4)),
            (text("y"), Cbor::Float((y * 1e4).round() / 1e4)),
            (text("t"), Cbor::Integer(self.t.into())),
            (text("s"), Cbor::Integer(self.s.into())),
            (text("n"), Cbor::Integer(self.n.into())),
        ])
    }
}

fn text(s: &str) -> Cbor {
    Cbor::Text(s.to_owned())
}

/// What a push does (the subset the scenarios use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushKind {
    Relay,
    Volatile,
    Append,
    Replace,
}

impl PushKind {
    fn action(self) -> Action {
        match self {
            PushKind::Relay | PushKind::Volatile => Action::Relay,
            PushKind::Append => Action::Append,
            PushKind::Replace => Action::Replace,
        }
    }

    fn action_name(self) -> &'static str {
        match self.action() {
            Action::Append => "append",
            Action::Replace => "replace",
            _ => "relay",
        }
    }
}

/// A message from a load client.
#[derive(Clone, Debug)]
pub enum Out<'a> {
    /// Subscribe to `key` and replay everything stored (an `init` follows).
    Get {
        key: &'a str,
    },
    Push {
        key: &'a str,
        stamp: Stamp,
        kind: PushKind,
    },
}

/// A message from the server, reduced to what the scenarios check.
#[derive(Debug, PartialEq)]
pub enum In {
    Push { seq: u64, stamp: Option<Stamp> },
    Init { entries: Vec<(u64, Option<Stamp>)> },
    StreamSize,
    Pong,
    Error(String),
}

impl Out<'_> {
    pub fn json(&self) -> String {
        match self {
            Out::Get { key } => format!(r#"{{"type":"get","key":{},"seq":0}}"#, json_str(key)),
            Out::Push { key, stamp, kind } => {
                let (action, volatile) = (kind.action_name(), *kind == PushKind::Volatile);
                format!(
                    r#"{{"type":"push","key":{},"value":{},"action":{{"type":"{action}"}},"volatile":{volatile}}}"#,
                    json_str(key),
                    stamp.json()
                )
            }
        }
    }

    pub fn cbor(&self) -> Vec<u8> {
        let tree = match self {
            Out::Get { key } => Cbor::Map(vec![
                (text("type"), text("get")),
                (text("key"), text(key)),
                (text("seq"), Cbor::Integer(0.into())),
            ]),
            Out::Push { key, stamp, kind } => {
                let action = kind.action_name();
                Cbor::Map(vec![
                    (text("type"), text("push")),
                    (text("key"), text(key)),
                    (text("value"), stamp.cbor_tree()),
                    (text("action"), Cbor::Map(vec![(text("type"), text(action))])),
                    (text("volatile"), Cbor::Bool(*kind == PushKind::Volatile)),
                ])
            }
        };
        let mut out = Vec::with_capacity(96);
        ciborium::into_writer(&tree, &mut out).expect("writing CBOR into a Vec cannot fail");
        out
    }

    pub fn postcard(&self) -> Vec<u8> {
        let message = match self {
            Out::Get { key } => ClientMessage::Get { key: (*key).into(), replay: Replay::After(0) },
            Out::Push { key, stamp, kind } => ClientMessage::Push {
                key: (*key).into(),
                value: Value::from_tree(stamp.cbor_tree()),
                action: kind.action(),
                volatile: *kind == PushKind::Volatile,
            },
        };
        postcard_envelope::encode_client(&message)
    }

    pub fn is_volatile(&self) -> bool {
        matches!(self, Out::Push { kind: PushKind::Volatile, .. })
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serialises")
}

/// The fields of a server message the tool reads, shared by the JSON and CBOR decoders (same field names).
#[derive(Deserialize)]
struct Tree {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    value: Option<Stamp>,
    #[serde(default)]
    data: Option<Vec<TreeEntry>>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct TreeEntry {
    seq: u64,
    #[serde(default)]
    value: Option<Stamp>,
}

impl Tree {
    fn into_in(self) -> anyhow::Result<In> {
        Ok(match self.kind.as_str() {
            "push" => In::Push { seq: self.seq.context("push without seq")?, stamp: self.value },
            "init" => {
                In::Init { entries: self.data.unwrap_or_default().into_iter().map(|e| (e.seq, e.value)).collect() }
            }
            "stream_size" => In::StreamSize,
            "pong" => In::Pong,
            "error" => In::Error(self.message.unwrap_or_default()),
            other => bail!("unknown server message type `{other}`"),
        })
    }
}

pub fn decode_json(text: &str) -> anyhow::Result<In> {
    serde_json::from_str::<Tree>(text).context("server JSON")?.into_in()
}

pub fn decode_cbor(bytes: &[u8]) -> anyhow::Result<In> {
    ciborium::from_reader::<Tree, _>(bytes).context("server CBOR")?.into_in()
}

pub fn decode_postcard(bytes: &[u8]) -> anyhow::Result<In> {
    let stamp = |value: &Value| ciborium::from_reader::<Stamp, _>(&value.cbor()[..]).ok();
    Ok(match postcard_envelope::decode_server(bytes).context("server postcard")? {
        ServerMessage::Push { seq, value, .. } => In::Push { seq, stamp: stamp(&value) },
        ServerMessage::Init { data, .. } => {
            In::Init { entries: data.iter().map(|e| (e.seq, stamp(&e.value))).collect() }
        }
        ServerMessage::StreamSize { .. } => In::StreamSize,
        ServerMessage::Pong { .. } => In::Pong,
        ServerMessage::Error { message } => In::Error(message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftdb::outgoing::Outgoing;
    use driftdb::protocol::{Dialect, json_cbor};

    /// Our client encodings are what the server's decoders expect, and the server's encodings decode back here.
    #[test]
    fn round_trips_through_the_servers_codecs() {
        let stamp = Stamp { t: 123_456, s: 7, n: 42 };
        for kind in [PushKind::Relay, PushKind::Volatile, PushKind::Append, PushKind::Replace] {
            let out = Out::Push { key: "k\"ey", stamp, kind };
            let from_json = json_cbor::decode_json(out.json().as_bytes()).unwrap();
            let from_cbor = json_cbor::decode_cbor(&out.cbor()).unwrap();
            let from_postcard = postcard_envelope::decode_client(&out.postcard()).unwrap();
            assert_eq!(from_json, from_cbor);
            assert_eq!(from_json, from_postcard);
            let ClientMessage::Push { key, value, volatile, .. } = from_json else { panic!("a push") };
            assert_eq!(&*key, "k\"ey");
            assert_eq!(volatile, kind == PushKind::Volatile);
            let reply = Outgoing::new(ServerMessage::Push { key, value, seq: 9, volatile });
            let expected = In::Push { seq: 9, stamp: Some(stamp) };
            assert_eq!(decode_json(reply.json(Dialect::Extended)).unwrap(), expected);
            assert_eq!(decode_cbor(reply.cbor(Dialect::Extended)).unwrap(), expected);
            assert_eq!(decode_postcard(reply.postcard()).unwrap(), expected);
        }
        let get = json_cbor::decode_json(Out::Get { key: "k" }.json().as_bytes()).unwrap();
        assert_eq!(get, ClientMessage::Get { key: "k".into(), replay: Replay::After(0) });
        assert_eq!(json_cbor::decode_cbor(&Out::Get { key: "k" }.cbor()).unwrap(), get);
        assert_eq!(postcard_envelope::decode_client(&Out::Get { key: "k" }.postcard()).unwrap(), get);
    }
}
