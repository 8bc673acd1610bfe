//! The postcard golden vectors (`tests/golden/postcard.json`, shared with the JS client's tests) hold byte for byte:
//! each message's JSON form encodes to exactly `postcard_hex`, and `postcard_hex` decodes back to that message.
//!
//! The file is the contract. After a deliberate, compatible change (appending a variant), add its entry with empty
//! hex fields and fill them with `DRIFTDB_BLESS_GOLDEN=1 cargo test --test golden_postcard`; review the diff.

use std::collections::BTreeSet;
use std::path::PathBuf;

use driftdb::protocol::{
    Action, ClientMessage, Dialect, Entry, Replay, ServerMessage, Value, json_cbor, postcard_envelope,
};
use serde_json::{Value as Json, json};

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/postcard.json")
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap_or_else(|e| panic!("bad hex {text}: {e}"))
}

/// A value built exactly as the JSON codec builds one from a client message.
fn value(json: &Json) -> Value {
    let push = json!({"type": "push", "key": "", "value": json, "action": {"type": "relay"}});
    match json_cbor::decode_json(push.to_string().as_bytes()).expect("a valid JSON value") {
        ClientMessage::Push { value, .. } => value,
        other => unreachable!("{other:?}"),
    }
}

fn text<'a>(json: &'a Json, field: &str) -> &'a str {
    json[field].as_str().unwrap_or_else(|| panic!("`{field}` must be a string in {json}"))
}

fn number(json: &Json, field: &str) -> u64 {
    json[field].as_u64().unwrap_or_else(|| panic!("`{field}` must be a number in {json}"))
}

/// A server message from its JSON form (the server never parses these, so the test does).
fn server_message(json: &Json) -> ServerMessage {
    match text(json, "type") {
        "push" => ServerMessage::Push {
            key: text(json, "key").into(),
            value: value(&json["value"]),
            seq: number(json, "seq"),
            volatile: json["volatile"].as_bool().unwrap_or(false),
        },
        "init" => ServerMessage::Init {
            key: text(json, "key").into(),
            data: json["data"]
                .as_array()
                .expect("init data is a list")
                .iter()
                .map(|e| Entry { value: value(&e["value"]), seq: number(e, "seq") })
                .collect(),
            epoch: text(json, "epoch").into(),
        },
        "stream_size" => ServerMessage::StreamSize { key: text(json, "key").into(), size: number(json, "size") },
        "pong" => ServerMessage::Pong { nonce: json["nonce"].as_u64() },
        "error" => ServerMessage::Error { message: text(json, "message").into() },
        other => panic!("unknown server message type {other}"),
    }
}

/// The CBOR of the message's value(s): one hex string, a list for `init`, or null.
fn value_cbor_hex(direction: &str, json: &Json) -> Json {
    match (direction, text(json, "type")) {
        (_, "push") => json!(hex(value(&json["value"]).cbor())),
        ("server", "init") => Json::Array(
            json["data"].as_array().unwrap().iter().map(|e| json!(hex(value(&e["value"]).cbor()))).collect(),
        ),
        _ => Json::Null,
    }
}

/// The variants a message exercises, for the coverage check.
fn variant(message: &Message) -> &'static str {
    match message {
        Message::Client(ClientMessage::Push { volatile: true, .. }) => "client push volatile",
        Message::Client(ClientMessage::Push { action, .. }) => match action {
            Action::Relay => "client push relay",
            Action::Append => "client push append",
            Action::Replace => "client push replace",
            Action::Compact { .. } => "client push compact",
        },
        Message::Client(ClientMessage::Get { replay: Replay::None, .. }) => "client get null",
        Message::Client(ClientMessage::Get { replay: Replay::After(_), .. }) => "client get seq",
        Message::Client(ClientMessage::Unsubscribe { .. }) => "client unsubscribe",
        Message::Client(ClientMessage::Ping { nonce: Some(_) }) => "client ping nonce",
        Message::Client(ClientMessage::Ping { nonce: None }) => "client ping",
        Message::Client(ClientMessage::Goodbye) => "client goodbye",
        Message::Client(ClientMessage::Auth { .. }) => "client auth",
        Message::Server(ServerMessage::Push { volatile: true, .. }) => "server push volatile",
        Message::Server(ServerMessage::Push { .. }) => "server push",
        Message::Server(ServerMessage::Init { data, .. }) if data.len() >= 2 => "server init entries",
        Message::Server(ServerMessage::Init { .. }) => "server init short",
        Message::Server(ServerMessage::StreamSize { .. }) => "server stream_size",
        Message::Server(ServerMessage::Pong { nonce: Some(_) }) => "server pong nonce",
        Message::Server(ServerMessage::Pong { nonce: None }) => "server pong",
        Message::Server(ServerMessage::Error { .. }) => "server error",
    }
}

const EVERY_VARIANT: [&str; 20] = [
    "client push volatile",
    "client push relay",
    "client push append",
    "client push replace",
    "client push compact",
    "client get null",
    "client get seq",
    "client unsubscribe",
    "client ping nonce",
    "client ping",
    "client goodbye",
    "client auth",
    "server push volatile",
    "server push",
    "server init entries",
    "server init short",
    "server stream_size",
    "server pong nonce",
    "server pong",
    "server error",
];

#[derive(Debug, PartialEq)]
enum Message {
    Client(ClientMessage),
    Server(ServerMessage),
}

/// The message of a vector, checked against the JSON codec in the direction it travels.
fn message(direction: &str, json: &Json) -> Message {
    match direction {
        "client" => {
            Message::Client(json_cbor::decode_json(json.to_string().as_bytes()).expect("a valid client message"))
        }
        "server" => {
            let message = server_message(json);
            let written: Json = serde_json::from_str(&json_cbor::encode_json(&message, Dialect::Extended)).unwrap();
            let mut expected = json.clone();
            // The JSON codec leaves `volatile` out when false.
            if expected["volatile"] == json!(false) {
                expected.as_object_mut().unwrap().remove("volatile");
            }
            assert_eq!(written, expected, "the JSON codec writes the vector's message form");
            Message::Server(message)
        }
        other => panic!("direction must be client or server, not {other}"),
    }
}

fn encode(message: &Message) -> Vec<u8> {
    match message {
        Message::Client(m) => postcard_envelope::encode_client(m),
        Message::Server(m) => postcard_envelope::encode_server(m),
    }
}

fn decode(direction: &str, bytes: &[u8]) -> Message {
    match direction {
        "client" => Message::Client(postcard_envelope::decode_client(bytes).expect("golden bytes decode")),
        _ => Message::Server(postcard_envelope::decode_server(bytes).expect("golden bytes decode")),
    }
}

#[test]
fn golden_vectors_encode_and_decode_byte_for_byte() {
    let mut vectors: Vec<Json> =
        serde_json::from_str(&std::fs::read_to_string(golden_path()).expect("golden file")).expect("golden JSON");
    let bless = std::env::var_os("DRIFTDB_BLESS_GOLDEN").is_some();
    let mut names = BTreeSet::new();
    let mut covered = BTreeSet::new();
    for vector in &mut vectors {
        let name = text(vector, "name").to_owned();
        assert!(names.insert(name.clone()), "duplicate vector name {name}");
        let direction = text(vector, "direction").to_owned();
        let message = message(&direction, &vector["message"]);
        covered.insert(variant(&message));
        let bytes = encode(&message);
        let values = value_cbor_hex(&direction, &vector["message"]);
        if bless {
            vector["postcard_hex"] = json!(hex(&bytes));
            vector["value_cbor_hex"] = values;
            continue;
        }
        assert_eq!(hex(&bytes), text(vector, "postcard_hex"), "{name}: encoding");
        assert_eq!(decode(&direction, &unhex(text(vector, "postcard_hex"))), message, "{name}: decoding");
        assert_eq!(values, vector["value_cbor_hex"], "{name}: value CBOR");
    }
    if bless {
        let text = serde_json::to_string_pretty(&vectors).unwrap() + "\n";
        std::fs::write(golden_path(), text).expect("golden file written");
    }
    let missing: Vec<_> = EVERY_VARIANT.iter().filter(|v| !covered.contains(*v)).collect();
    assert!(missing.is_empty(), "variants without a golden vector: {missing:?}");
}

#[test]
fn altered_bytes_do_not_pass() {
    // The check above must be able to fail: a changed byte decodes to something else or not at all.
    let message = ClientMessage::Get { key: "k".into(), replay: Replay::After(300) };
    let mut bytes = postcard_envelope::encode_client(&message);
    *bytes.last_mut().unwrap() ^= 1;
    assert_ne!(postcard_envelope::decode_client(&bytes).ok(), Some(message));
}
