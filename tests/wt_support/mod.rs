//! Helpers of the WebTransport tests: an in-process server, a WebTransport client speaking the control stream and
//! datagrams (over `driftdb-client`), a small JSON WebSocket client, and a UDP relay that can black-hole a client.
//!
//! Every wait is bounded by [`TIMEOUT`] and panics with what was awaited, so a broken server fails fast.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::{TestServer, json_body};
use bytes::Bytes;
use driftdb::config::ServerConfig;
use driftdb::protocol::{Action, ClientMessage, Replay, ServerMessage, Value, postcard_envelope};
use driftdb::room_info::RoomInfo;
use driftdb::server::RunningServer;
use driftdb_client::websocket::{Incoming, WebSocket, WsOptions};
use driftdb_client::webtransport::{self, WtOptions, WtSession};
use serde_json::Value as Json;
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

/// The longest any single wait may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `future`, panicking with `what` if it takes longer than [`TIMEOUT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, future).await.unwrap_or_else(|_| panic!("timed out after {TIMEOUT:?}: {what}"))
}

/// Polls `condition` every 20 ms until it holds, for at most `limit`.
pub async fn eventually(what: &str, limit: Duration, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A server in this test's runtime, on a free loopback port: the WebSocket tests' server, plus WebTransport helpers.
pub struct Server(TestServer);

impl Server {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        Server(TestServer::start_with(tweak).await)
    }

    /// The running server (its ports, rooms and shutdown).
    pub fn running(&self) -> &RunningServer {
        self.0.running()
    }

    /// Stops the server gracefully.
    pub async fn shutdown(self) {
        self.0.shutdown().await
    }

    /// `GET /room/{id}`.
    pub async fn room_info(&self, room: &str) -> Json {
        json_body(self.0.get(&format!("/room/{room}")).await, reqwest::StatusCode::OK).await
    }

    /// The text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        within("metrics body", self.0.get("/metrics").await.text()).await.expect("metrics text")
    }

    /// `POST /new`: the new room's info.
    pub async fn new_room(&self) -> Json {
        self.0.create_room_info().await
    }

    /// Live connections in `room` (0 when it does not exist).
    pub fn connection_count(&self, room: &str) -> usize {
        let id = driftdb::engine::RoomId::parse(room).expect("well-formed room id");
        self.0.rooms().get(&id).map_or(0, |room| room.connection_count())
    }

    /// A WebTransport session to `room` through the URL and certificate hashes the room info publishes.
    pub async fn connect_wt(&self, room: &str) -> WtClient {
        let info = self.room_info(room).await;
        WtClient::connect(url(&info), &hashes(&info)).await.expect("WebTransport session")
    }

    /// A JSON WebSocket to `room`.
    pub async fn connect_ws(&self, room: &str) -> WsClient {
        let url = url::Url::parse(&format!("ws://{}/room/{room}/connect", self.0.addr())).expect("a valid URL");
        let options = WsOptions { loopback_only: true, ..WsOptions::default() };
        let socket = within("websocket connect", WebSocket::connect(&url, &options)).await.expect("upgrade");
        WsClient { socket }
    }
}

/// The `webtransport_url` of a room info.
pub fn url(info: &Json) -> url::Url {
    info["webtransport_url"].as_str().expect("room info has webtransport_url").parse().expect("a valid URL")
}

/// The `certificate_hashes` of a room info, as bytes.
pub fn hashes(info: &Json) -> Vec<Vec<u8>> {
    let info: RoomInfo = serde_json::from_value(info.clone()).expect("room info has the documented shape");
    let hashes = info.sha256_hashes().expect("certificate hashes are hex");
    assert!(!hashes.is_empty(), "room info has certificate_hashes: {info:?}");
    hashes
}

/// A value from JSON.
pub fn value(json: Json) -> Value {
    let tree: ciborium::value::Value = ciborium::value::Value::serialized(&json).expect("JSON maps onto CBOR");
    Value::from_tree(tree)
}

pub fn push(key: &str, action: Action, json: Json) -> ClientMessage {
    ClientMessage::Push { key: key.into(), value: value(json), action, volatile: false }
}

pub fn volatile(key: &str, json: Json) -> ClientMessage {
    ClientMessage::Push { key: key.into(), value: value(json), action: Action::Relay, volatile: true }
}

pub fn get(key: &str, replay: Replay) -> ClientMessage {
    ClientMessage::Get { key: key.into(), replay }
}

/// A WebTransport client speaking DriftDB's binding (`driftdb-client`'s session) with the tests' bounded waits.
pub struct WtClient {
    /// The QUIC session, for what the tests do with it directly (raw datagrams, close).
    pub session: web_transport_quinn::Session,
    inner: WtSession,
}

impl WtClient {
    /// Opens a session accepting only certificates with these SHA-256 hashes, and its control stream.
    pub async fn connect(url: url::Url, hashes: &[Vec<u8>]) -> Result<Self, web_transport_quinn::ClientError> {
        let options = WtOptions { certificate_hashes: hashes.to_vec(), loopback_only: true, connect_to: None };
        // The handshake's own error type, as callers expect; a session without a control stream is a test failure.
        let inner =
            within("WebTransport connect", WtSession::connect(url, options)).await.map_err(|error| match error {
                driftdb_client::Error::Connect(error) => error,
                other => panic!("WebTransport session: {other}"),
            })?;
        Ok(WtClient { session: inner.session().clone(), inner })
    }

    /// Sends one message on the control stream.
    pub async fn send(&mut self, message: &ClientMessage) {
        within("control stream write", self.inner.tx.send(message)).await.expect("control stream write");
    }

    /// Writes raw bytes on the control stream.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        within("control stream write", self.inner.tx.send_raw(bytes)).await.expect("control stream write");
    }

    /// Sends one message as a datagram.
    pub fn send_datagram(&self, message: &ClientMessage) {
        let payload = Bytes::from(postcard_envelope::encode_client(message));
        self.inner.tx.send_datagram(payload).expect("datagram sent");
    }

    /// The next message on the control stream.
    pub async fn recv(&mut self) -> ServerMessage {
        within("control stream message", self.try_recv()).await.expect("the control stream is open")
    }

    /// The next message on the control stream, or `None` once it ends (or fails).
    pub async fn try_recv(&mut self) -> Option<ServerMessage> {
        let frame = self.inner.rx.recv_stream().await.ok()??;
        Some(webtransport::decode(&frame).expect("a valid server message"))
    }

    /// The next datagram.
    pub async fn recv_datagram(&self) -> ServerMessage {
        let datagram = within("datagram", self.inner.rx.recv_datagram()).await.expect("datagram");
        webtransport::decode(&datagram).expect("a valid server message")
    }

    /// The WebTransport session close code and reason the server sent (its CLOSE_WEBTRANSPORT_SESSION capsule, which
    /// is what a browser reports as `closeCode`).
    pub async fn closed(&self) -> Option<(u32, String)> {
        match within("session close", self.inner.rx.closed()).await {
            Ok(closed) => Some(closed),
            Err(other) => {
                eprintln!("session closed without a code: {other:?}");
                None
            }
        }
    }

    /// The session close code alone.
    pub async fn closed_code(&self) -> Option<u32> {
        self.closed().await.map(|(code, _)| code)
    }
}

/// A JSON WebSocket client.
pub struct WsClient {
    socket: WebSocket,
}

impl WsClient {
    pub async fn send(&mut self, message: Json) {
        within("websocket send", self.socket.send_frame(Message::text(message.to_string()))).await.expect("sent");
    }

    /// The next JSON message.
    pub async fn recv(&mut self) -> Json {
        loop {
            let frame = within("websocket message", self.socket.recv()).await.expect("no error");
            match frame {
                Incoming::Text(text) => return serde_json::from_str(&text).expect("JSON"),
                Incoming::Closed(closed) => panic!("the connection closed: {closed:?}"),
                Incoming::Binary(_) => {}
            }
        }
    }
}

/// A UDP relay between one client and the server that can drop a seeded share of packets, or be told to drop
/// everything so that a client can vanish without closing its connection.
pub struct Relay {
    pub addr: SocketAddr,
    blackhole: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(server: SocketAddr) -> Self {
        Self::start_lossy(server, 0.0, 0).await
    }

    /// A relay that drops each packet, either way, with probability `loss` (seeded, so runs repeat).
    pub async fn start_lossy(server: SocketAddr, loss: f64, seed: u64) -> Self {
        let front = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("relay binds"));
        let back = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("relay binds"));
        back.connect(server).await.expect("relay connects to the server");
        let addr = front.local_addr().expect("relay address");
        let blackhole = Arc::new(AtomicBool::new(false));
        let drop_all = blackhole.clone();
        let task = tokio::spawn(async move {
            let mut client = None;
            let mut random = seed | 1;
            // xorshift64: a reproducible coin per packet.
            let mut lose = move || {
                random ^= random << 13;
                random ^= random >> 7;
                random ^= random << 17;
                (random % 10_000) as f64 / 10_000.0 < loss
            };
            let (mut up, mut down) = ([0u8; 65_536], [0u8; 65_536]);
            loop {
                tokio::select! {
                    Ok((n, from)) = front.recv_from(&mut up) => {
                        client = Some(from);
                        if !drop_all.load(Ordering::Relaxed) && !lose() {
                            let _ = back.send(&up[..n]).await;
                        }
                    }
                    Ok(n) = back.recv(&mut down) => {
                        if let (Some(client), false) = (client, drop_all.load(Ordering::Relaxed) || lose()) {
                            let _ = front.send_to(&down[..n], client).await;
                        }
                    }
                }
            }
        });
        Relay { addr, blackhole, task }
    }

    /// From now on, nothing passes either way.
    pub fn cut(&self) {
        self.blackhole.store(true, Ordering::Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
