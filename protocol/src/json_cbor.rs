//! JSON and CBOR codecs for WebSocket frames and HTTP bodies.
//!
//! Decoding: JSON text is parsed straight into a CBOR tree, so that one parser ([`from_tree`]) serves both encodings
//! and gives the same precise error for the same mistake. Encoding: messages are written around the value's cached
//! JSON text or canonical CBOR bytes, never re-encoding the value itself.

use ciborium::value::Value as Cbor;
use ciborium_ll::{Encoder, Header};
use serde::Serialize;
use serde_json::value::RawValue;

#[cfg(test)]
use super::value::MAX_DEPTH;
use super::{Action, ClientMessage, DecodeError, Dialect, Entry, Key, Replay, ServerMessage, Value};

/// Decodes a JSON text frame or HTTP body.
pub fn decode_json(text: &[u8]) -> Result<ClientMessage, DecodeError> {
    let tree: Cbor = serde_json::from_slice(text).map_err(|e| DecodeError::Json(e.to_string()))?;
    from_tree(tree)
}

/// Decodes a CBOR binary frame.
pub fn decode_cbor(bytes: &[u8]) -> Result<ClientMessage, DecodeError> {
    let mut reader = bytes;
    let tree: Cbor = ciborium::from_reader(&mut reader).map_err(|e| DecodeError::Cbor(e.to_string()))?;
    if !reader.is_empty() {
        return Err(DecodeError::Cbor(format!("{} trailing bytes after the message", reader.len())));
    }
    from_tree(tree)
}

/// The fields of a message map, taken out one by one.
struct Fields(Vec<(Cbor, Cbor)>);

impl Fields {
    fn take(&mut self, name: &str) -> Option<Cbor> {
        let index = self.0.iter().position(|(k, _)| matches!(k, Cbor::Text(t) if t == name))?;
        Some(self.0.swap_remove(index).1)
    }

    fn required(&mut self, name: &'static str) -> Result<Cbor, DecodeError> {
        self.take(name).ok_or(DecodeError::MissingField(name))
    }

    fn text(&mut self, name: &'static str) -> Result<String, DecodeError> {
        match self.required(name)? {
            Cbor::Text(t) => Ok(t),
            _ => Err(DecodeError::WrongType { field: name, expected: "a string" }),
        }
    }

    fn key(&mut self) -> Result<Key, DecodeError> {
        self.text("key").map(Key::from)
    }

    /// An optional unsigned integer: absent → `Ok(None)` by `absent`, `null` → `Ok(None)`.
    fn optional_u64(&mut self, name: &'static str) -> Result<Option<Option<u64>>, DecodeError> {
        match self.take(name) {
            None => Ok(None),
            Some(Cbor::Null) => Ok(Some(None)),
            Some(other) => as_u64(other, name).map(|n| Some(Some(n))),
        }
    }
}

fn as_u64(value: Cbor, field: &'static str) -> Result<u64, DecodeError> {
    let wrong = DecodeError::WrongType { field, expected: "a non-negative integer" };
    match value {
        Cbor::Integer(i) => u64::try_from(i).map_err(|_| wrong),
        // JavaScript has no integers: accept a float that holds one exactly. `u64::MAX as f64` is 2^64, one past
        // the largest u64, so it is excluded: a cast would silently clamp it (and anything larger) to 2^64 - 1.
        Cbor::Float(f) if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 => Ok(f as u64),
        // A CBOR bignum (tag 2) or a JSON number past 2^64: too large, not of the wrong kind.
        Cbor::Float(f) if f.fract() == 0.0 && f >= u64::MAX as f64 => Err(DecodeError::TooLarge(field)),
        Cbor::Tag(2, _) => Err(DecodeError::TooLarge(field)),
        _ => Err(wrong),
    }
}

fn fields(tree: Cbor) -> Result<Fields, DecodeError> {
    match tree {
        Cbor::Map(entries) => Ok(Fields(entries)),
        _ => Err(DecodeError::NotAnObject),
    }
}

/// Parses a decoded message tree (from JSON or CBOR) into a [`ClientMessage`].
pub fn from_tree(tree: Cbor) -> Result<ClientMessage, DecodeError> {
    let mut f = fields(tree)?;
    let kind = f.text("type")?;
    match kind.as_str() {
        "push" => {
            let key = f.key()?;
            let value = Value::from_client_tree(f.required("value")?)?;
            let action = action(f.required("action")?)?;
            let volatile = match f.take("volatile") {
                None | Some(Cbor::Null) => false,
                Some(Cbor::Bool(b)) => b,
                Some(_) => {
                    return Err(DecodeError::WrongType { field: "volatile", expected: "a boolean" });
                }
            };
            Ok(ClientMessage::Push { key, value, action, volatile })
        }
        "get" => {
            let key = f.key()?;
            let replay = match f.optional_u64("seq")? {
                None => Replay::After(0),
                Some(None) => Replay::None,
                Some(Some(seq)) => Replay::After(seq),
            };
            Ok(ClientMessage::Get { key, replay })
        }
        "unsubscribe" => Ok(ClientMessage::Unsubscribe { key: f.key()? }),
        "ping" => Ok(ClientMessage::Ping { nonce: f.optional_u64("nonce")?.flatten() }),
        "goodbye" => Ok(ClientMessage::Goodbye),
        "auth" => Ok(ClientMessage::Auth { token: f.text("token")? }),
        _ => Err(DecodeError::UnknownType(echo(kind))),
    }
}

fn action(tree: Cbor) -> Result<Action, DecodeError> {
    let mut f = match tree {
        Cbor::Map(entries) => Fields(entries),
        _ => {
            return Err(DecodeError::WrongType { field: "action", expected: "an object" });
        }
    };
    let kind = f.text("type")?;
    match kind.as_str() {
        "relay" => Ok(Action::Relay),
        "append" => Ok(Action::Append),
        "replace" => Ok(Action::Replace),
        "compact" => match f.optional_u64("seq")? {
            Some(Some(seq)) => Ok(Action::Compact { seq }),
            _ => Err(DecodeError::MissingField("seq")),
        },
        _ => Err(DecodeError::UnknownAction(echo(kind))),
    }
}

/// The longest client-sent name echoed back in an error; a longer one is cut (at a character boundary) and marked.
const MAX_ECHO_CHARS: usize = 64;

/// A client-sent name as the error message quotes it: whole when short, else its first [`MAX_ECHO_CHARS`]
/// characters and `…`, so a 100 kB `type` does not come back as a 100 kB error.
fn echo(mut name: String) -> String {
    if let Some((cut, _)) = name.char_indices().nth(MAX_ECHO_CHARS) {
        name.truncate(cut);
        name.push('…');
    }
    name
}

/// The JSON shape of server messages, borrowing the value's cached JSON text.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum JsonOut<'a> {
    Push {
        key: &'a str,
        value: &'a RawValue,
        seq: u64,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        volatile: bool,
    },
    Init {
        key: &'a str,
        data: Vec<JsonEntry<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        epoch: Option<&'a str>,
    },
    StreamSize {
        key: &'a str,
        size: u64,
    },
    Pong {
        nonce: Option<u64>,
    },
    Error {
        message: &'a str,
    },
}

#[derive(Serialize)]
struct JsonEntry<'a> {
    value: &'a RawValue,
    seq: u64,
}

/// Encodes a server message as JSON text, with the fields of `dialect`.
pub fn encode_json(message: &ServerMessage, dialect: Dialect) -> String {
    let extended = dialect.is_extended();
    let out = match message {
        ServerMessage::Push { key, value, seq, volatile } => {
            JsonOut::Push { key, value: value.json(), seq: *seq, volatile: *volatile && extended }
        }
        ServerMessage::Init { key, data, epoch } => JsonOut::Init {
            key,
            data: data.iter().map(|e| JsonEntry { value: e.value.json(), seq: e.seq }).collect(),
            epoch: extended.then_some(&**epoch),
        },
        ServerMessage::StreamSize { key, size } => JsonOut::StreamSize { key, size: *size },
        ServerMessage::Pong { nonce } => JsonOut::Pong { nonce: *nonce },
        ServerMessage::Error { message } => JsonOut::Error { message },
    };
    serde_json::to_string(&out).expect("server messages always serialise")
}

/// Writes CBOR maps around pre-encoded values.
struct CborOut<'a>(Encoder<&'a mut Vec<u8>>);

impl CborOut<'_> {
    fn map(&mut self, len: usize) -> &mut Self {
        self.push(Header::Map(Some(len)))
    }

    fn array(&mut self, len: usize) -> &mut Self {
        self.push(Header::Array(Some(len)))
    }

    fn text(&mut self, text: &str) -> &mut Self {
        self.0.text(text, None).expect("writing into a Vec cannot fail");
        self
    }

    fn uint(&mut self, n: u64) -> &mut Self {
        self.push(Header::Positive(n))
    }

    fn null(&mut self) -> &mut Self {
        self.push(Header::Simple(ciborium_ll::simple::NULL))
    }

    fn bool(&mut self, b: bool) -> &mut Self {
        self.push(Header::Simple(if b { ciborium_ll::simple::TRUE } else { ciborium_ll::simple::FALSE }))
    }

    fn raw(&mut self, value: &Value) -> &mut Self {
        use ciborium_io::Write;
        self.0.write_all(value.cbor()).expect("writing into a Vec cannot fail");
        self
    }

    fn push(&mut self, header: Header) -> &mut Self {
        self.0.push(header).expect("writing into a Vec cannot fail");
        self
    }
}

/// Encodes a server message as a CBOR map with the same field names as the JSON form, with the fields of `dialect`.
pub fn encode_cbor(message: &ServerMessage, dialect: Dialect) -> Vec<u8> {
    let extended = dialect.is_extended();
    let mut buf = Vec::with_capacity(message.approx_size());
    let mut out = CborOut(Encoder::from(&mut buf));
    match message {
        ServerMessage::Push { key, value, seq, volatile } => {
            let volatile = *volatile && extended;
            out.map(if volatile { 5 } else { 4 }).text("type").text("push").text("key").text(key);
            out.text("value").raw(value).text("seq").uint(*seq);
            if volatile {
                out.text("volatile").bool(true);
            }
        }
        ServerMessage::Init { key, data, epoch } => {
            out.map(if extended { 4 } else { 3 }).text("type").text("init").text("key").text(key);
            out.text("data").array(data.len());
            for Entry { value, seq } in data {
                out.map(2).text("value").raw(value).text("seq").uint(*seq);
            }
            if extended {
                out.text("epoch").text(epoch);
            }
        }
        ServerMessage::StreamSize { key, size } => {
            out.map(3).text("type").text("stream_size").text("key").text(key).text("size").uint(*size);
        }
        ServerMessage::Pong { nonce } => {
            out.map(2).text("type").text("pong").text("nonce");
            match nonce {
                Some(n) => out.uint(*n),
                None => out.null(),
            };
        }
        ServerMessage::Error { message } => {
            out.map(2).text("type").text("error").text("message").text(message);
        }
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Result<ClientMessage, DecodeError> {
        decode_json(text.as_bytes())
    }

    #[test]
    fn decodes_every_client_message() {
        let push = json(r#"{"type":"push","key":"k","value":{"a":1},"action":{"type":"append"}}"#).unwrap();
        assert!(matches!(push, ClientMessage::Push { action: Action::Append, volatile: false, .. }));
        let compact = json(r#"{"type":"push","key":"k","value":1,"action":{"type":"compact","seq":4}}"#).unwrap();
        assert!(matches!(compact, ClientMessage::Push { action: Action::Compact { seq: 4 }, .. }));
        let volatile =
            json(r#"{"type":"push","key":"k","value":1,"action":{"type":"relay"},"volatile":true}"#).unwrap();
        assert!(matches!(volatile, ClientMessage::Push { action: Action::Relay, volatile: true, .. }));
        assert_eq!(
            json(r#"{"type":"get","key":"k"}"#).unwrap(),
            ClientMessage::Get { key: "k".into(), replay: Replay::After(0) }
        );
        assert_eq!(
            json(r#"{"type":"get","key":"k","seq":null}"#).unwrap(),
            ClientMessage::Get { key: "k".into(), replay: Replay::None }
        );
        assert_eq!(
            json(r#"{"type":"get","key":"","seq":7}"#).unwrap(),
            ClientMessage::Get { key: "".into(), replay: Replay::After(7) }
        );
        assert_eq!(json(r#"{"type":"ping"}"#).unwrap(), ClientMessage::Ping { nonce: None });
        assert_eq!(json(r#"{"type":"ping","nonce":3}"#).unwrap(), ClientMessage::Ping { nonce: Some(3) });
        assert_eq!(
            json(r#"{"type":"unsubscribe","key":"k"}"#).unwrap(),
            ClientMessage::Unsubscribe { key: "k".into() }
        );
    }

    #[test]
    fn integers_past_64_bits_are_refused_not_clamped() {
        for message in [
            r#"{"type":"ping","nonce":18446744073709551616}"#,
            r#"{"type":"get","key":"k","seq":18446744073709551616}"#,
            r#"{"type":"get","key":"k","seq":1e30}"#,
            r#"{"type":"push","key":"k","value":1,"action":{"type":"compact","seq":18446744073709551616}}"#,
        ] {
            assert!(matches!(json(message), Err(DecodeError::TooLarge(_))), "{message}: {:?}", json(message));
        }
        // The largest u64 a float holds exactly still decodes.
        let largest = json(r#"{"type":"ping","nonce":18446744073709549568}"#).unwrap();
        assert_eq!(largest, ClientMessage::Ping { nonce: Some(18446744073709549568) });
        let max = json(r#"{"type":"ping","nonce":18446744073709551615}"#).unwrap();
        assert_eq!(max, ClientMessage::Ping { nonce: Some(u64::MAX) }, "written as an integer, it is one");
        // CBOR: 2^64 can only be a bignum.
        let ping = Cbor::Map(vec![
            (Cbor::Text("type".into()), Cbor::Text("ping".into())),
            (Cbor::Text("nonce".into()), Cbor::Tag(2, Box::new(Cbor::Bytes(vec![1, 0, 0, 0, 0, 0, 0, 0, 0])))),
        ]);
        let mut frame = Vec::new();
        ciborium::into_writer(&ping, &mut frame).unwrap();
        assert_eq!(decode_cbor(&frame), Err(DecodeError::TooLarge("nonce")));
        assert_eq!(
            DecodeError::TooLarge("nonce").to_string(),
            "field `nonce` is too large: integers are at most 18446744073709551615"
        );
    }

    #[test]
    fn unknown_names_are_echoed_cut_short() {
        let long = "n".repeat(100_000);
        let Err(DecodeError::UnknownType(echoed)) = json(&format!(r#"{{"type":"{long}"}}"#)) else { panic!() };
        assert_eq!(echoed, format!("{}…", "n".repeat(64)));
        let action = format!(r#"{{"type":"push","key":"k","value":1,"action":{{"type":"{}"}}}}"#, "é".repeat(70));
        let Err(DecodeError::UnknownAction(echoed)) = json(&action) else { panic!() };
        assert_eq!(echoed, format!("{}…", "é".repeat(64)), "cut at a character boundary");
    }

    #[test]
    fn json_and_cbor_share_one_nesting_limit() {
        let nested = |depth: usize| (0..depth).fold(Cbor::Null, |inner, _| Cbor::Array(vec![inner]));
        let as_json = |depth: usize| {
            let value = format!("{}null{}", "[".repeat(depth), "]".repeat(depth));
            json(&format!(r#"{{"type":"push","key":"k","value":{value},"action":{{"type":"relay"}}}}"#))
        };
        let as_cbor = |depth: usize| {
            let push = Cbor::Map(vec![
                (Cbor::Text("type".into()), Cbor::Text("push".into())),
                (Cbor::Text("key".into()), Cbor::Text("k".into())),
                (Cbor::Text("value".into()), nested(depth)),
                (Cbor::Text("action".into()), Cbor::Map(vec![(Cbor::Text("type".into()), Cbor::Text("relay".into()))])),
            ]);
            let mut frame = Vec::new();
            ciborium::into_writer(&push, &mut frame).unwrap();
            decode_cbor(&frame)
        };
        assert!(as_json(MAX_DEPTH).is_ok(), "{:?}", as_json(MAX_DEPTH));
        assert!(as_cbor(MAX_DEPTH).is_ok());
        assert!(as_json(MAX_DEPTH + 1).is_err());
        assert!(as_cbor(MAX_DEPTH + 1).is_err());
    }

    #[test]
    fn precise_errors() {
        assert!(matches!(json("{"), Err(DecodeError::Json(_))));
        assert_eq!(json("[1]"), Err(DecodeError::NotAnObject));
        assert_eq!(json(r#"{"type":"nope"}"#), Err(DecodeError::UnknownType("nope".into())));
        assert_eq!(json(r#"{"type":"get"}"#), Err(DecodeError::MissingField("key")));
        assert_eq!(
            json(r#"{"type":"get","key":"k","seq":-1}"#),
            Err(DecodeError::WrongType { field: "seq", expected: "a non-negative integer" })
        );
        assert_eq!(
            json(r#"{"type":"push","key":"k","value":1,"action":{"type":"x"}}"#),
            Err(DecodeError::UnknownAction("x".into()))
        );
        assert_eq!(
            json(r#"{"type":"push","key":"k","value":1,"action":{"type":"compact"}}"#),
            Err(DecodeError::MissingField("seq"))
        );
        assert!(matches!(decode_cbor(&[0xa1, 0x61]), Err(DecodeError::Cbor(_))));
        // A value nested deeper than JSON allows, in a CBOR frame (a JSON frame cannot even be parsed that deep).
        let deep = (0..200).fold(Cbor::Null, |inner, _| Cbor::Array(vec![inner]));
        let push = Cbor::Map(vec![
            (Cbor::Text("type".into()), Cbor::Text("push".into())),
            (Cbor::Text("key".into()), Cbor::Text("k".into())),
            (Cbor::Text("value".into()), deep),
            (Cbor::Text("action".into()), Cbor::Map(vec![(Cbor::Text("type".into()), Cbor::Text("relay".into()))])),
        ]);
        let mut frame = Vec::new();
        ciborium::into_writer(&push, &mut frame).unwrap();
        assert!(matches!(decode_cbor(&frame), Err(DecodeError::InvalidValue(m)) if m.contains("nested deeper")));
    }

    #[test]
    fn cbor_and_json_encodings_agree() {
        let value = Value::from_tree(Cbor::Map(vec![(Cbor::Text("b".into()), Cbor::Bytes(vec![9, 8]))]));
        let messages = [
            ServerMessage::Push { key: "k".into(), value: value.clone(), seq: 3, volatile: false },
            ServerMessage::Push { key: "k".into(), value: value.clone(), seq: 3, volatile: true },
            ServerMessage::Init { key: "k".into(), data: vec![Entry { value, seq: 2 }], epoch: "e".into() },
            ServerMessage::StreamSize { key: "k".into(), size: 2 },
            ServerMessage::Pong { nonce: Some(1) },
            ServerMessage::Pong { nonce: None },
            ServerMessage::Error { message: "bad".into() },
        ];
        for message in messages {
            for dialect in [Dialect::Reference, Dialect::Extended] {
                let from_cbor: Cbor = ciborium::from_reader(&encode_cbor(&message, dialect)[..]).unwrap();
                let from_cbor = Value::from_tree(from_cbor);
                let from_json = Value::from_tree(serde_json::from_str(&encode_json(&message, dialect)).unwrap());
                // Byte strings become arrays in JSON, so compare the JSON forms of both.
                assert_eq!(from_cbor.json().get(), from_json.json().get());
            }
        }
        let pong = ServerMessage::Pong { nonce: None };
        assert_eq!(encode_json(&pong, Dialect::Reference), r#"{"type":"pong","nonce":null}"#);
    }

    #[test]
    fn the_reference_dialect_carries_only_the_reference_servers_fields() {
        let value = Value::from_tree(Cbor::Integer(1.into()));
        let init = ServerMessage::Init {
            key: "k".into(),
            data: vec![Entry { value: value.clone(), seq: 2 }],
            epoch: "e".into(),
        };
        assert_eq!(encode_json(&init, Dialect::Reference), r#"{"type":"init","key":"k","data":[{"value":1,"seq":2}]}"#);
        assert_eq!(
            encode_json(&init, Dialect::Extended),
            r#"{"type":"init","key":"k","data":[{"value":1,"seq":2}],"epoch":"e"}"#
        );
        let volatile = ServerMessage::Push { key: "k".into(), value, seq: 3, volatile: true };
        assert_eq!(encode_json(&volatile, Dialect::Reference), r#"{"type":"push","key":"k","value":1,"seq":3}"#);
        assert_eq!(
            encode_json(&volatile, Dialect::Extended),
            r#"{"type":"push","key":"k","value":1,"seq":3,"volatile":true}"#
        );
        let fields = |message: &ServerMessage, dialect| -> Vec<String> {
            let Cbor::Map(entries) = ciborium::from_reader(&encode_cbor(message, dialect)[..]).unwrap() else {
                panic!("a server message is a CBOR map")
            };
            entries.into_iter().map(|(k, _)| k.into_text().unwrap()).collect()
        };
        assert_eq!(fields(&init, Dialect::Reference), ["type", "key", "data"]);
        assert_eq!(fields(&init, Dialect::Extended), ["type", "key", "data", "epoch"]);
        assert_eq!(fields(&volatile, Dialect::Reference), ["type", "key", "value", "seq"]);
        assert_eq!(fields(&volatile, Dialect::Extended), ["type", "key", "value", "seq", "volatile"]);
    }
}
