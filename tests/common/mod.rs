//! Shared helpers of the integration tests: an in-process server on a free loopback port, the HTTP room API, and a
//! WebSocket client with bounded waits over `driftdb-client`'s.
//!
//! Every wait is bounded by [`TIMEOUT`] and panics with a message that says what was awaited, so a broken server
//! fails a test quickly instead of hanging the suite. Each test starts its own server, so tests run in parallel.

// Each test crate (`websocket.rs`, `http_api.rs`) uses a different subset of these helpers.
#![allow(dead_code)]

pub mod process;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use ciborium::value::Value as Cbor;
use driftdb::config::ServerConfig;
use driftdb::engine::{RoomId, Rooms};
use driftdb::server::RunningServer;
use driftdb_client::websocket::{WebSocket, WsOptions};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

/// The longest any single wait may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `future`, panicking with `what` if it takes longer than [`TIMEOUT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, future).await.unwrap_or_else(|_| panic!("timed out after {TIMEOUT:?}: {what}"))
}

/// A server running in this test's runtime.
pub struct TestServer {
    server: RunningServer,
    http: reqwest::Client,
}

impl TestServer {
    /// Starts a server with the default limits.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server on 127.0.0.1 with a free port, after `tweak` adjusted the default configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        // `RUST_LOG=debug cargo test` shows the server's log next to a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        // Tests never write a data directory unless they ask for one (and then in a temp dir).
        let mut config = ServerConfig { storage: driftdb::storage::StorageKind::Memory, ..Default::default() };
        tweak(&mut config);
        config.host = Ipv4Addr::LOCALHOST.into();
        config.port = 0;
        let server = within("server start", RunningServer::start(config)).await.expect("server starts");
        // No proxy: an `HTTP_PROXY` in the environment must not reroute requests to loopback.
        let http = reqwest::Client::builder().no_proxy().timeout(TIMEOUT).build().expect("HTTP client builds");
        TestServer { server, http }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.http_addr()
    }

    /// The running server itself (ports, rooms).
    pub fn running(&self) -> &RunningServer {
        &self.server
    }

    pub fn rooms(&self) -> &Rooms {
        self.server.rooms()
    }

    /// Whether the room exists on the server.
    pub fn has_room(&self, room: &str) -> bool {
        self.rooms().get(&RoomId::parse(room).expect("well-formed room id")).is_some()
    }

    /// The epoch of an existing room.
    pub fn epoch(&self, room: &str) -> String {
        let id = RoomId::parse(room).expect("well-formed room id");
        self.rooms().get(&id).expect("room exists").epoch().to_string()
    }

    /// Live connections in an existing room.
    pub fn connection_count(&self, room: &str) -> usize {
        let id = RoomId::parse(room).expect("well-formed room id");
        self.rooms().get(&id).expect("room exists").connection_count()
    }

    /// Waits until the room has `count` live connections (detaching happens in the server's own tasks).
    pub async fn wait_for_connection_count(&self, room: &str, count: usize) {
        let what = format!("room {room} to have {count} connections (has {})", self.connection_count(room));
        within(&what, async {
            while self.connection_count(room) != count {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// A request to this server; the caller adds headers and a body.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// Sends a request and returns its response, panicking if there is none.
    pub async fn fetch(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        request.send().await.expect("HTTP request gets a response")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.fetch(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.fetch(self.request(reqwest::Method::POST, path).body(body)).await
    }

    /// `POST /new`, returning the room info after checking the status.
    pub async fn create_room_info(&self) -> Value {
        json_body(self.post("/new", "").await, reqwest::StatusCode::OK).await
    }

    /// `POST /new`, returning the new room's id.
    pub async fn create_room(&self) -> String {
        let info = self.create_room_info().await;
        info["room"].as_str().unwrap_or_else(|| panic!("room info without a room id: {info}")).to_owned()
    }

    /// `POST /room/ID/send` with one client message, returning the direct reply after checking for 200.
    pub async fn send(&self, room: &str, message: &Value) -> Value {
        let response = self.post(&format!("/room/{room}/send"), message.to_string()).await;
        json_body(response, reqwest::StatusCode::OK).await
    }

    /// Connects a WebSocket client to the room; `Encoding::Cbor` adds `?cbor=true`.
    pub async fn connect(&self, room: &str, encoding: Encoding) -> WsClient {
        let query = match encoding {
            Encoding::Json => "",
            Encoding::Cbor => "?cbor=true",
        };
        self.connect_with(room, query, encoding).await
    }

    /// Connects with a literal query string (`""` or starting with `?`); `encoding` is what the server should send.
    pub async fn connect_with(&self, room: &str, query: &str, encoding: Encoding) -> WsClient {
        let path = format!("/room/{room}/connect{query}");
        WsClient::open(self.addr(), &path, encoding, None).await.unwrap_or_else(|e| panic!("connect {path}: {e}"))
    }

    /// Connects a client whose socket has a tiny kernel receive buffer, so that a client that stops reading makes
    /// the server's side back up after a few kilobytes rather than after the kernel's autotuned megabytes.
    pub async fn connect_small_buffer(&self, room: &str, encoding: Encoding) -> WsClient {
        let query = if encoding == Encoding::Cbor { "?cbor=true" } else { "" };
        let path = format!("/room/{room}/connect{query}");
        WsClient::open(self.addr(), &path, encoding, Some(4096)).await.unwrap_or_else(|e| panic!("connect {path}: {e}"))
    }

    /// Attempts a WebSocket handshake on `path` that the server must refuse; returns the HTTP status it answered.
    pub async fn connect_refused(&self, path: &str) -> reqwest::StatusCode {
        match WsClient::open(self.addr(), path, Encoding::Json, None).await {
            Ok(_) => panic!("the server accepted a WebSocket on {path}"),
            Err(tungstenite::Error::Http(response)) => response.status(),
            Err(other) => panic!("expected an HTTP refusal on {path}, got {other}"),
        }
    }

    /// Stops the server gracefully (closing every connection with 1001).
    pub async fn shutdown(self) {
        self.server.shutdown().await
    }
}

/// Reads a JSON response body after checking its status.
pub async fn json_body(response: reqwest::Response, status: reqwest::StatusCode) -> Value {
    let url = response.url().clone();
    assert_eq!(response.status(), status, "status of {url}");
    let text = within("response body", response.text()).await.expect("response body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url} answered non-JSON ({e}): {text}"))
}

/// Client messages, built as JSON (the CBOR ones are the same maps, see [`json_to_cbor`]).
pub mod msg {
    use serde_json::{Value, json};

    pub fn push(key: &str, action: &str, value: Value) -> Value {
        json!({"type": "push", "key": key, "value": value, "action": {"type": action}})
    }

    pub fn relay(key: &str, value: Value) -> Value {
        push(key, "relay", value)
    }

    /// The JSON text of a relay padded with a string value to exactly `len` bytes, for testing size limits.
    pub fn relay_text_of_len(key: &str, len: usize) -> String {
        let overhead = relay(key, json!("")).to_string().len();
        let text = relay(key, json!("x".repeat(len - overhead))).to_string();
        assert_eq!(text.len(), len);
        text
    }

    pub fn append(key: &str, value: Value) -> Value {
        push(key, "append", value)
    }

    pub fn replace(key: &str, value: Value) -> Value {
        push(key, "replace", value)
    }

    pub fn compact(key: &str, value: Value, seq: u64) -> Value {
        json!({"type": "push", "key": key, "value": value, "action": {"type": "compact", "seq": seq}})
    }

    /// `get` with a replay start; `Value::Null` subscribes without an `init`.
    pub fn get(key: &str, seq: Value) -> Value {
        json!({"type": "get", "key": key, "seq": seq})
    }

    pub fn unsubscribe(key: &str) -> Value {
        json!({"type": "unsubscribe", "key": key})
    }

    pub fn ping(nonce: u64) -> Value {
        json!({"type": "ping", "nonce": nonce})
    }
}

// The connection's encoding and how it ended are the client crate's; these names stay for the tests that use them.
pub use driftdb_client::Encoding;
pub use driftdb_client::websocket::Closed;

/// A WebSocket client of one room: `driftdb-client`'s WebSocket with the tests' bounded, panicking waits.
pub struct WsClient {
    ws: WebSocket,
    encoding: Encoding,
    next_nonce: u64,
}

impl WsClient {
    /// Opens a WebSocket on `path` (with its query). `receive_buffer` sets the socket's kernel receive buffer.
    pub async fn open(
        addr: SocketAddr,
        path: &str,
        encoding: Encoding,
        receive_buffer: Option<u32>,
    ) -> Result<Self, tungstenite::Error> {
        let url = url::Url::parse(&format!("ws://{addr}{path}")).expect("a valid URL");
        let options = WsOptions { loopback_only: true, receive_buffer, ..WsOptions::encoding(encoding) };
        // The tests' own error type, which callers on other branches match on (`Http` for a refused upgrade).
        let ws =
            within("WebSocket connect", WebSocket::connect(&url, &options)).await.map_err(|error| match error {
                driftdb_client::Error::WebSocket(error) => error,
                driftdb_client::Error::Io(error) => tungstenite::Error::Io(error),
                other => panic!("connect {url}: {other}"),
            })?;
        Ok(WsClient { ws, encoding, next_nonce: 1 })
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Sends a raw frame.
    pub async fn send_frame(&mut self, frame: Message) {
        within("sending a frame", self.ws.send_frame(frame)).await.expect("send a WebSocket frame");
    }

    /// Sends a message as a JSON text frame, whatever the connection's encoding.
    pub async fn send_json(&mut self, message: &Value) {
        self.send_frame(Message::text(message.to_string())).await
    }

    /// Sends a message as a CBOR binary frame, whatever the connection's encoding.
    pub async fn send_cbor(&mut self, message: &Cbor) {
        let mut bytes = Vec::new();
        ciborium::into_writer(message, &mut bytes).expect("encode CBOR");
        self.send_frame(Message::binary(bytes)).await
    }

    /// Sends a message in the connection's own encoding.
    pub async fn send(&mut self, message: &Value) {
        match self.encoding {
            Encoding::Json => self.send_json(message).await,
            Encoding::Cbor => self.send_cbor(&json_to_cbor(message)).await,
        }
    }

    /// The next frame of any kind; panics if none arrives in time or the connection ends.
    pub async fn recv_frame(&mut self) -> Message {
        self.recv_frame_within(TIMEOUT).await.unwrap_or_else(|| panic!("no frame within {TIMEOUT:?}"))
    }

    /// The next frame, or `None` if nothing arrives within `wait`.
    pub async fn recv_frame_within(&mut self, wait: Duration) -> Option<Message> {
        let next = tokio::time::timeout(wait, self.ws.next_frame()).await.ok()?;
        match next {
            Some(Ok(frame)) => Some(frame),
            Some(Err(error)) => panic!("WebSocket read failed: {error}"),
            None => panic!("the connection ended without a close frame"),
        }
    }

    /// The next message, in the connection's encoding, as JSON (CBOR byte strings become arrays of numbers, just
    /// as the server writes them for a JSON client, so messages from both encodings compare equal).
    pub async fn recv(&mut self) -> Value {
        self.recv_timeout(TIMEOUT).await.unwrap_or_else(|| panic!("no message within {TIMEOUT:?}"))
    }

    /// The next message, or `None` if none arrives within `wait`.
    pub async fn recv_timeout(&mut self, wait: Duration) -> Option<Value> {
        let frame = self.recv_data_frame_within(wait).await?;
        Some(match frame {
            Message::Binary(bytes) => cbor_to_json(&decode_cbor(&bytes)),
            Message::Text(text) => {
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("server sent invalid JSON ({e}): {text}"))
            }
            _ => unreachable!("recv_data_frame_within returns data frames only"),
        })
    }

    /// The next message of a CBOR connection as a CBOR tree, byte strings and all.
    pub async fn recv_cbor(&mut self) -> Cbor {
        assert_eq!(self.encoding, Encoding::Cbor, "recv_cbor on a JSON connection");
        match self.recv_data_frame_within(TIMEOUT).await {
            Some(Message::Binary(bytes)) => decode_cbor(&bytes),
            _ => panic!("no message within {TIMEOUT:?}"),
        }
    }

    /// The next text or binary frame, checked against the connection's encoding. Server Ping frames (keepalive)
    /// are skipped; anything else is a failure.
    async fn recv_data_frame_within(&mut self, wait: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_frame_within(left).await? {
                Message::Ping(_) => continue,
                frame @ Message::Text(_) if self.encoding == Encoding::Json => return Some(frame),
                frame @ Message::Binary(_) if self.encoding == Encoding::Cbor => return Some(frame),
                other => panic!("unexpected frame on a {:?} connection: {other:?}", self.encoding),
            }
        }
    }

    /// The next message, which must have type `kind`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let message = self.recv().await;
        assert_eq!(message["type"], kind, "expected a `{kind}` message, got {message}");
        message
    }

    /// The next message, which must be a push of `key`; returns `(seq, value)`.
    pub async fn expect_push(&mut self, key: &str) -> (u64, Value) {
        let message = self.expect("push").await;
        assert_eq!(message["key"], key, "push of an unexpected key: {message}");
        assert!(message.get("action").is_none(), "a delivered push has no action: {message}");
        (seq_of(&message), message["value"].clone())
    }

    /// Subscribes to `key` from seq 0 and returns the `init` message.
    pub async fn subscribe(&mut self, key: &str) -> Value {
        self.send(&msg::get(key, json!(0))).await;
        let init = self.expect("init").await;
        assert_eq!(init["key"], key, "init of an unexpected key: {init}");
        init
    }

    /// Sends a `ping` with a fresh nonce and returns every message that arrived before its `pong`. Messages the
    /// server queued for this connection before handling the ping all arrive first, so this is how a test waits
    /// for earlier effects without sleeping.
    pub async fn round_trip(&mut self) -> Vec<Value> {
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        self.send(&msg::ping(nonce)).await;
        let mut before = Vec::new();
        loop {
            let message = self.recv().await;
            if message == json!({"type": "pong", "nonce": nonce}) {
                return before;
            }
            before.push(message);
        }
    }

    /// Asserts that nothing is queued for this connection: the next message is the pong of a fresh ping.
    pub async fn assert_nothing_pending(&mut self) {
        let unexpected = self.round_trip().await;
        assert!(unexpected.is_empty(), "unexpected messages: {unexpected:?}");
    }

    /// Starts the closing handshake with `code`.
    pub async fn close(&mut self, code: u16) {
        within("sending a close frame", self.ws.close(code, "test client leaving")).await.expect("send a close frame");
    }

    /// Reads until the server's close frame, skipping any messages before it.
    pub async fn expect_close(&mut self) -> Closed {
        self.recv_until_close().await.1
    }

    /// Reads every message until the server's close frame. Bounded by [`TIMEOUT`] in all.
    pub async fn recv_until_close(&mut self) -> (Vec<Value>, Closed) {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        let mut messages = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.recv_frame_within(left).await;
            match frame.unwrap_or_else(|| panic!("no close frame within {TIMEOUT:?} ({} messages)", messages.len())) {
                Message::Close(Some(frame)) => {
                    let closed = Closed { code: frame.code.into(), reason: frame.reason.to_string() };
                    return (messages, closed);
                }
                Message::Close(None) => panic!("close frame without a code"),
                Message::Text(text) => messages.push(serde_json::from_str(&text).expect("server sent valid JSON")),
                Message::Binary(bytes) => messages.push(cbor_to_json(&decode_cbor(&bytes))),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }
}

/// The `seq` of a push message.
pub fn seq_of(message: &Value) -> u64 {
    message["seq"].as_u64().unwrap_or_else(|| panic!("message without a numeric seq: {message}"))
}

fn decode_cbor(bytes: &Bytes) -> Cbor {
    ciborium::from_reader(&bytes[..]).unwrap_or_else(|e| panic!("server sent invalid CBOR ({e}): {bytes:02x?}"))
}

/// The CBOR form of a JSON value (integers stay integers, floats stay floats).
pub fn json_to_cbor(value: &Value) -> Cbor {
    Cbor::serialized(value).expect("every JSON value has a CBOR form")
}

/// The JSON a JSON client would get for this CBOR: byte strings become arrays of numbers and tags are dropped.
pub fn cbor_to_json(value: &Cbor) -> Value {
    match value {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => json!(b),
        Cbor::Integer(i) => {
            let i = i128::from(*i);
            match (u64::try_from(i), i64::try_from(i)) {
                (Ok(u), _) => json!(u),
                (_, Ok(s)) => json!(s),
                _ => panic!("integer {i} has no JSON form"),
            }
        }
        Cbor::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Cbor::Text(t) => json!(t),
        Cbor::Bytes(bytes) => json!(bytes),
        Cbor::Array(items) => Value::Array(items.iter().map(cbor_to_json).collect()),
        Cbor::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Cbor::Text(t) => t.clone(),
                        other => cbor_to_json(other).to_string(),
                    };
                    (key, cbor_to_json(v))
                })
                .collect(),
        ),
        Cbor::Tag(_, inner) => cbor_to_json(inner),
        other => panic!("CBOR value {other:?} has no JSON form"),
    }
}

/// A message map with `value` set to a CBOR value that JSON cannot express (e.g. a byte string).
pub fn with_cbor_value(message: &Value, value: Cbor) -> Cbor {
    let Cbor::Map(mut entries) = json_to_cbor(message) else { panic!("a message is a map: {message}") };
    entries.retain(|(k, _)| k.as_text() != Some("value"));
    entries.push((Cbor::Text("value".into()), value));
    Cbor::Map(entries)
}

/// Field `name` of a CBOR message map.
pub fn cbor_field<'a>(message: &'a Cbor, name: &str) -> &'a Cbor {
    let Cbor::Map(entries) = message else { panic!("not a map: {message:?}") };
    let found = entries.iter().find(|(k, _)| k.as_text() == Some(name));
    &found.unwrap_or_else(|| panic!("no field `{name}` in {message:?}")).1
}
