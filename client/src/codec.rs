//! The client's side of the JSON and CBOR codecs: `driftdb_protocol::json_cbor` decodes client messages and encodes
//! server messages (the server's direction); this is the other direction, built on the same CBOR tree so that a
//! JSON and a CBOR client send the same maps. Postcard goes both ways in `driftdb_protocol::postcard_envelope`.

use std::sync::Arc;

use ciborium::value::Value as Cbor;
use driftdb_protocol::{Action, ClientMessage, Entry, Replay, ServerMessage, Value};

use crate::error::{Error, Result};
use crate::url::Encoding;

fn text(s: &str) -> Cbor {
    Cbor::Text(s.to_owned())
}

/// The message as the map the server's parser reads.
pub fn client_tree(message: &ClientMessage) -> Cbor {
    let kind = |name: &str| (text("type"), text(name));
    Cbor::Map(match message {
        ClientMessage::Push { key, value, action, volatile } => {
            let action = match action {
                Action::Relay => vec![kind("relay")],
                Action::Append => vec![kind("append")],
                Action::Replace => vec![kind("replace")],
                Action::Compact { seq } => vec![kind("compact"), (text("seq"), Cbor::Integer((*seq).into()))],
            };
            vec![
                kind("push"),
                (text("key"), text(key)),
                (text("value"), value.to_tree()),
                (text("action"), Cbor::Map(action)),
                (text("volatile"), Cbor::Bool(*volatile)),
            ]
        }
        ClientMessage::Get { key, replay } => {
            let seq = match replay {
                Replay::After(seq) => Cbor::Integer((*seq).into()),
                Replay::None => Cbor::Null,
            };
            vec![kind("get"), (text("key"), text(key)), (text("seq"), seq)]
        }
        ClientMessage::Unsubscribe { key } => vec![kind("unsubscribe"), (text("key"), text(key))],
        ClientMessage::Ping { nonce } => {
            let mut fields = vec![kind("ping")];
            fields.extend(nonce.map(|nonce| (text("nonce"), Cbor::Integer(nonce.into()))));
            fields
        }
        ClientMessage::Goodbye => vec![kind("goodbye")],
        ClientMessage::Auth { token } => vec![kind("auth"), (text("token"), text(token))],
    })
}

/// A CBOR tree as JSON text (byte strings become arrays of numbers, as the server writes them for JSON clients).
pub fn tree_json(tree: &Cbor) -> String {
    serde_json::to_string(tree).expect("a message tree has a JSON form")
}

pub fn tree_cbor(tree: &Cbor) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    ciborium::into_writer(tree, &mut out).expect("writing CBOR into a Vec cannot fail");
    out
}

pub fn encode_client_json(message: &ClientMessage) -> String {
    tree_json(&client_tree(message))
}

pub fn encode_client_cbor(message: &ClientMessage) -> Vec<u8> {
    tree_cbor(&client_tree(message))
}

/// A server message from a WebSocket frame in `encoding`.
pub fn decode_server(encoding: Encoding, bytes: &[u8]) -> Result<ServerMessage> {
    let tree: Cbor = match encoding {
        Encoding::Json => serde_json::from_slice(bytes).map_err(|e| Error::Decode(format!("JSON: {e}")))?,
        Encoding::Cbor => ciborium::from_reader(bytes).map_err(|e| Error::Decode(format!("CBOR: {e}")))?,
    };
    server_from_tree(tree)
}

/// Field access on a message map, with errors that name the field.
struct Fields(Vec<(Cbor, Cbor)>);

impl Fields {
    fn take(&mut self, name: &str) -> Option<Cbor> {
        let at = self.0.iter().position(|(k, _)| k.as_text() == Some(name))?;
        Some(self.0.swap_remove(at).1)
    }

    fn text(&mut self, name: &str) -> Result<String> {
        match self.take(name) {
            Some(Cbor::Text(text)) => Ok(text),
            other => Err(Error::Decode(format!("field `{name}` is not text: {other:?}"))),
        }
    }

    fn key(&mut self) -> Result<Arc<str>> {
        self.text("key").map(Arc::from)
    }

    fn u64(&mut self, name: &str) -> Result<u64> {
        self.optional_u64(name)?.ok_or_else(|| Error::Decode(format!("missing field `{name}`")))
    }

    fn optional_u64(&mut self, name: &str) -> Result<Option<u64>> {
        match self.take(name) {
            None | Some(Cbor::Null) => Ok(None),
            Some(Cbor::Integer(i)) => {
                u64::try_from(i).map(Some).map_err(|_| Error::Decode(format!("field `{name}` is not a u64")))
            }
            Some(other) => Err(Error::Decode(format!("field `{name}` is not an integer: {other:?}"))),
        }
    }

    fn value(&mut self) -> Value {
        Value::from_tree(self.take("value").unwrap_or(Cbor::Null))
    }
}

fn server_from_tree(tree: Cbor) -> Result<ServerMessage> {
    let Cbor::Map(entries) = tree else { return Err(Error::Decode("a server message is a map".into())) };
    let mut f = Fields(entries);
    let kind = f.text("type")?;
    Ok(match kind.as_str() {
        "push" => {
            let volatile = matches!(f.take("volatile"), Some(Cbor::Bool(true)));
            ServerMessage::Push { key: f.key()?, value: f.value(), seq: f.u64("seq")?, volatile }
        }
        "init" => {
            let Some(Cbor::Array(items)) = f.take("data") else {
                return Err(Error::Decode("init without data".into()));
            };
            let data = items
                .into_iter()
                .map(|item| {
                    let Cbor::Map(entry) = item else { return Err(Error::Decode("an init entry is a map".into())) };
                    let mut e = Fields(entry);
                    Ok(Entry { value: e.value(), seq: e.u64("seq")? })
                })
                .collect::<Result<_>>()?;
            // The reference dialect has no epoch: an empty one says "unknown".
            let epoch = f.text("epoch").unwrap_or_default();
            ServerMessage::Init { key: f.key()?, data, epoch: epoch.into() }
        }
        "stream_size" => ServerMessage::StreamSize { key: f.key()?, size: f.u64("size")? },
        "pong" => ServerMessage::Pong { nonce: f.optional_u64("nonce")? },
        "error" => ServerMessage::Error { message: f.text("message").unwrap_or_default() },
        other => return Err(Error::Decode(format!("unknown server message type `{other}`"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftdb_protocol::{Dialect, json_cbor};

    fn value(json: &str) -> Value {
        Value::from_tree(serde_json::from_str::<Cbor>(json).unwrap())
    }

    /// What we encode is what the server decodes, and what the server encodes decodes back here.
    #[test]
    fn round_trips_through_the_servers_codecs() {
        let sent = [
            ClientMessage::Push {
                key: "k\"".into(),
                value: value(r#"{"a":[1,2.5]}"#),
                action: Action::Append,
                volatile: false,
            },
            ClientMessage::Push {
                key: "c".into(),
                value: value("1"),
                action: Action::Compact { seq: 4 },
                volatile: false,
            },
            ClientMessage::Push { key: "v".into(), value: value("null"), action: Action::Relay, volatile: true },
            ClientMessage::Get { key: "k".into(), replay: Replay::After(3) },
            ClientMessage::Get { key: "k".into(), replay: Replay::None },
            ClientMessage::Unsubscribe { key: "k".into() },
            ClientMessage::Ping { nonce: Some(7) },
            ClientMessage::Ping { nonce: None },
            ClientMessage::Goodbye,
            ClientMessage::Auth { token: "t".into() },
        ];
        for message in sent {
            assert_eq!(json_cbor::decode_json(encode_client_json(&message).as_bytes()).unwrap(), message);
            assert_eq!(json_cbor::decode_cbor(&encode_client_cbor(&message)).unwrap(), message);
        }
        let received = [
            ServerMessage::Push { key: "k".into(), value: value("[1]"), seq: 9, volatile: true },
            ServerMessage::Init { key: "k".into(), data: vec![Entry { value: value("2"), seq: 1 }], epoch: "e".into() },
            ServerMessage::StreamSize { key: "k".into(), size: 3 },
            ServerMessage::Pong { nonce: Some(1) },
            ServerMessage::Error { message: "no".into() },
        ];
        for message in received {
            let json = json_cbor::encode_json(&message, Dialect::Extended);
            assert_eq!(decode_server(Encoding::Json, json.as_bytes()).unwrap(), message);
            let cbor = json_cbor::encode_cbor(&message, Dialect::Extended);
            assert_eq!(decode_server(Encoding::Cbor, &cbor).unwrap(), message);
        }
    }
}
