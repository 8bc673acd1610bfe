//! The messages of measuring clients: the few client messages they send, with a [`Stamp`] as the value, in each
//! encoding (JSON, CBOR, postcard), and server messages reduced to what they check.
//!
//! The reduced decoders read only the fields they need (a push's stamp straight out of its JSON or CBOR), so that a
//! load client receiving thousands of messages a second costs less than the server it measures.

use ciborium::value::Value as Cbor;
use driftdb_protocol::{Action, ClientMessage, Replay, ServerMessage, postcard_envelope};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::stamp::Stamp;
use crate::url::Encoding;

/// What a push does (the subset the scenarios use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushKind {
    Relay,
    /// A relay that may be dropped: a datagram over WebTransport when it fits.
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

/// A message from a measuring client.
#[derive(Clone, Debug)]
pub enum Out<'a> {
    /// Subscribe to `key`; `Replay::After(n)` replays the stored entries after `n` in an `init`.
    Get {
        key: &'a str,
        replay: Replay,
    },
    Push {
        key: &'a str,
        stamp: Stamp,
        kind: PushKind,
    },
    Ping {
        nonce: u64,
    },
    /// WebTransport's "leaving on purpose".
    Goodbye,
}

/// A message from the server, reduced to what the scenarios check.
#[derive(Clone, Debug, PartialEq)]
pub enum In {
    Push {
        key: String,
        seq: u64,
        stamp: Option<Stamp>,
    },
    /// `epoch` is absent in the reference dialect.
    Init {
        key: String,
        entries: Vec<(u64, Option<Stamp>)>,
        epoch: Option<String>,
    },
    StreamSize,
    Pong,
    Error(String),
}

fn text(s: &str) -> Cbor {
    Cbor::Text(s.to_owned())
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serialises")
}

impl Out<'_> {
    /// Subscribes to `key` and replays everything stored.
    pub fn get(key: &str) -> Out<'_> {
        Out::Get { key, replay: Replay::After(0) }
    }

    /// JSON text, written by hand for the hot path. Every frame starts with `{"type":"…"`, which the load tool's
    /// floor server relies on.
    pub fn json(&self) -> String {
        match self {
            Out::Get { key, replay } => {
                let seq = match replay {
                    Replay::After(seq) => seq.to_string(),
                    Replay::None => "null".into(),
                };
                format!(r#"{{"type":"get","key":{},"seq":{seq}}}"#, json_str(key))
            }
            Out::Push { key, stamp, kind } => {
                let (action, volatile) = (kind.action_name(), *kind == PushKind::Volatile);
                format!(
                    r#"{{"type":"push","key":{},"value":{},"action":{{"type":"{action}"}},"volatile":{volatile}}}"#,
                    json_str(key),
                    stamp.json()
                )
            }
            Out::Ping { nonce } => format!(r#"{{"type":"ping","nonce":{nonce}}}"#),
            Out::Goodbye => r#"{"type":"goodbye"}"#.into(),
        }
    }

    pub fn cbor(&self) -> Vec<u8> {
        let tree = match self {
            Out::Push { key, stamp, kind } => Cbor::Map(vec![
                (text("type"), text("push")),
                (text("key"), text(key)),
                (text("value"), stamp.cbor_tree()),
                (text("action"), Cbor::Map(vec![(text("type"), text(kind.action_name()))])),
                (text("volatile"), Cbor::Bool(*kind == PushKind::Volatile)),
            ]),
            other => crate::codec::client_tree(&other.message()),
        };
        crate::codec::tree_cbor(&tree)
    }

    /// The frame for a WebSocket of `encoding`.
    pub fn encode(&self, encoding: Encoding) -> Vec<u8> {
        match encoding {
            Encoding::Json => self.json().into_bytes(),
            Encoding::Cbor => self.cbor(),
        }
    }

    /// As a protocol message (what goes on WebTransport, in postcard).
    pub fn message(&self) -> ClientMessage {
        match self {
            Out::Get { key, replay } => ClientMessage::Get { key: (*key).into(), replay: *replay },
            Out::Push { key, stamp, kind } => ClientMessage::Push {
                key: (*key).into(),
                value: stamp.value(),
                action: kind.action(),
                volatile: *kind == PushKind::Volatile,
            },
            Out::Ping { nonce } => ClientMessage::Ping { nonce: Some(*nonce) },
            Out::Goodbye => ClientMessage::Goodbye,
        }
    }

    pub fn postcard(&self) -> Vec<u8> {
        postcard_envelope::encode_client(&self.message())
    }

    pub fn is_volatile(&self) -> bool {
        matches!(self, Out::Push { kind: PushKind::Volatile, .. })
    }
}

/// The fields of a server message the scenarios read, shared by the JSON and CBOR decoders (same field names).
#[derive(Deserialize)]
struct Tree {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    value: Option<Stamp>,
    #[serde(default)]
    data: Option<Vec<TreeEntry>>,
    #[serde(default)]
    epoch: Option<String>,
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
    fn into_in(self) -> Result<In> {
        Ok(match self.kind.as_str() {
            "push" => In::Push {
                key: self.key.unwrap_or_default(),
                seq: self.seq.ok_or_else(|| Error::Decode("push without seq".into()))?,
                stamp: self.value,
            },
            "init" => In::Init {
                key: self.key.unwrap_or_default(),
                entries: self.data.unwrap_or_default().into_iter().map(|e| (e.seq, e.value)).collect(),
                epoch: self.epoch,
            },
            "stream_size" => In::StreamSize,
            "pong" => In::Pong,
            "error" => In::Error(self.message.unwrap_or_default()),
            other => return Err(Error::Decode(format!("unknown server message type `{other}`"))),
        })
    }
}

pub fn decode_json(text: &str) -> Result<In> {
    serde_json::from_str::<Tree>(text).map_err(|e| Error::Decode(format!("server JSON: {e}")))?.into_in()
}

pub fn decode_cbor(bytes: &[u8]) -> Result<In> {
    ciborium::from_reader::<Tree, _>(bytes).map_err(|e| Error::Decode(format!("server CBOR: {e}")))?.into_in()
}

pub fn decode_postcard(bytes: &[u8]) -> Result<In> {
    let message =
        postcard_envelope::decode_server(bytes).map_err(|e| Error::Decode(format!("server postcard: {e}")))?;
    Ok(match message {
        ServerMessage::Push { key, seq, value, .. } => {
            In::Push { key: key.to_string(), seq, stamp: Stamp::from_value(&value) }
        }
        ServerMessage::Init { key, data, epoch } => In::Init {
            key: key.to_string(),
            entries: data.iter().map(|e| (e.seq, Stamp::from_value(&e.value))).collect(),
            epoch: Some(epoch.to_string()),
        },
        ServerMessage::StreamSize { .. } => In::StreamSize,
        ServerMessage::Pong { .. } => In::Pong,
        ServerMessage::Error { message } => In::Error(message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftdb_protocol::{Dialect, json_cbor};

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
            let reply = ServerMessage::Push { key, value, seq: 9, volatile };
            let expected = In::Push { key: "k\"ey".into(), seq: 9, stamp: Some(stamp) };
            assert_eq!(decode_json(&json_cbor::encode_json(&reply, Dialect::Extended)).unwrap(), expected);
            assert_eq!(decode_cbor(&json_cbor::encode_cbor(&reply, Dialect::Extended)).unwrap(), expected);
            assert_eq!(decode_postcard(&postcard_envelope::encode_server(&reply)).unwrap(), expected);
        }
        for out in [Out::get("k"), Out::Get { key: "k", replay: Replay::None }, Out::Ping { nonce: 3 }, Out::Goodbye] {
            let message = out.message();
            assert_eq!(json_cbor::decode_json(out.json().as_bytes()).unwrap(), message, "{}", out.json());
            assert_eq!(json_cbor::decode_cbor(&out.cbor()).unwrap(), message);
            assert_eq!(postcard_envelope::decode_client(&out.postcard()).unwrap(), message);
        }
        assert!(Out::get("k").json().starts_with(r#"{"type":"get""#), "the floor reads this prefix");
    }
}
