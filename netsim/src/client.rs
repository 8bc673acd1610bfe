//! The Rust clients of the scenarios: a WebSocket (JSON text frames) or a WebTransport session (postcard on the
//! control stream, volatile relays as datagrams), with the message subset the scenarios use.
//!
//! `driftdb-load` has a client too, but it refuses any non-loopback server (the faithful mode's server is at
//! 10.77.0.1 in another namespace) and cannot resume a subscription from a seq, which reconnection needs.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use bytes::{Bytes, BytesMut};
use ciborium::value::Value as Cbor;
use driftdb::protocol::{Action, ClientMessage, Replay, ServerMessage, Value, postcard_envelope};
use driftdb::room_info::RoomInfo;
use driftdb::webtransport::framing::{FrameDecoder, fits_datagram, put_frame};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

/// The transport a client uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// WebTransport (QUIC): control stream + datagrams.
    Wt,
    /// WebSocket (TCP), JSON.
    Ws,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Wt => "wt",
            Transport::Ws => "ws",
        }
    }
}

/// Microseconds on this process's monotonic clock (all clients of a run share it, so send and receive times compare).
pub fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// The payload of every push: sender, its write number, send time (µs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stamp {
    pub s: u32,
    pub n: u64,
    pub t: u64,
}

impl Stamp {
    fn cbor(&self) -> Cbor {
        let phase = self.n as f64 * 0.05;
        Cbor::Map(vec![
            (Cbor::Text("s".into()), Cbor::Integer(self.s.into())),
            (Cbor::Text("n".into()), Cbor::Integer(self.n.into())),
            (Cbor::Text("t".into()), Cbor::Integer(self.t.into())),
            (Cbor::Text("x".into()), Cbor::Float((0.5 + 0.4 * phase.sin() * 1e3).round() / 1e3)),
            (Cbor::Text("y".into()), Cbor::Float((0.5 + 0.4 * phase.cos() * 1e3).round() / 1e3)),
        ])
    }

    fn json(&self) -> serde_json::Value {
        let phase = self.n as f64 * 0.05;
        serde_json::json!({
            "s": self.s, "n": self.n, "t": self.t,
            "x": (0.5 + 0.4 * phase.sin() * 1e3).round() / 1e3, "y": (0.5 + 0.4 * phase.cos() * 1e3).round() / 1e3,
        })
    }
}

/// What a push does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Append,
    Replace,
    Volatile,
}

/// A client message.
#[derive(Clone, Debug)]
pub enum Out<'a> {
    /// Subscribe; `seq: Some(n)` replays stored entries after n, `None` subscribes without an `init`.
    Get {
        key: &'a str,
        seq: Option<u64>,
    },
    Push {
        key: &'a str,
        stamp: Stamp,
        kind: Kind,
    },
    Ping {
        nonce: u64,
    },
    Goodbye,
}

impl Out<'_> {
    fn json(&self) -> String {
        let value = match self {
            Out::Get { key, seq } => serde_json::json!({"type": "get", "key": key, "seq": seq}),
            Out::Push { key, stamp, kind } => {
                let action = match kind {
                    Kind::Append => "append",
                    Kind::Replace => "replace",
                    Kind::Volatile => "relay",
                };
                serde_json::json!({"type": "push", "key": key, "value": stamp.json(), "action": {"type": action},
                    "volatile": *kind == Kind::Volatile})
            }
            Out::Ping { nonce } => serde_json::json!({"type": "ping", "nonce": nonce}),
            Out::Goodbye => serde_json::json!({"type": "ping"}),
        };
        value.to_string()
    }

    fn postcard(&self) -> Vec<u8> {
        let message = match self {
            Out::Get { key, seq } => {
                ClientMessage::Get { key: (*key).into(), replay: seq.map_or(Replay::None, Replay::After) }
            }
            Out::Push { key, stamp, kind } => ClientMessage::Push {
                key: (*key).into(),
                value: Value::from_tree(stamp.cbor()),
                action: match kind {
                    Kind::Append => Action::Append,
                    Kind::Replace => Action::Replace,
                    Kind::Volatile => Action::Relay,
                },
                volatile: *kind == Kind::Volatile,
            },
            Out::Ping { nonce } => ClientMessage::Ping { nonce: Some(*nonce) },
            Out::Goodbye => ClientMessage::Goodbye,
        };
        postcard_envelope::encode_client(&message)
    }

    fn is_volatile(&self) -> bool {
        matches!(self, Out::Push { kind: Kind::Volatile, .. })
    }
}

/// A server message, reduced to what the scenarios read.
#[derive(Clone, Debug, PartialEq)]
pub enum In {
    Push { key: String, seq: u64, stamp: Option<Stamp> },
    Init { key: String, entries: Vec<(u64, Option<Stamp>)> },
    Pong,
    Other,
}

fn decode_json(text: &str) -> anyhow::Result<In> {
    #[derive(Deserialize)]
    struct Entry {
        seq: u64,
        value: Option<Stamp>,
    }
    #[derive(Deserialize)]
    struct Tree {
        #[serde(rename = "type")]
        kind: String,
        key: Option<String>,
        seq: Option<u64>,
        value: Option<Stamp>,
        data: Option<Vec<Entry>>,
    }
    let tree: Tree = serde_json::from_str(text).context("server JSON")?;
    Ok(match tree.kind.as_str() {
        "push" => In::Push {
            key: tree.key.unwrap_or_default(),
            seq: tree.seq.context("push without seq")?,
            stamp: tree.value,
        },
        "init" => In::Init {
            key: tree.key.unwrap_or_default(),
            entries: tree.data.unwrap_or_default().into_iter().map(|e| (e.seq, e.value)).collect(),
        },
        "pong" => In::Pong,
        _ => In::Other,
    })
}

fn decode_postcard(bytes: &[u8]) -> anyhow::Result<In> {
    let stamp = |value: &Value| ciborium::from_reader::<Stamp, _>(&value.cbor()[..]).ok();
    Ok(match postcard_envelope::decode_server(bytes).context("server postcard")? {
        ServerMessage::Push { key, seq, value, .. } => In::Push { key: key.to_string(), seq, stamp: stamp(&value) },
        ServerMessage::Init { key, data, .. } => {
            In::Init { key: key.to_string(), entries: data.iter().map(|e| (e.seq, stamp(&e.value))).collect() }
        }
        ServerMessage::Pong { .. } => In::Pong,
        _ => In::Other,
    })
}

/// Where the clients find the server.
pub struct Endpoint {
    /// HTTP base URL, e.g. `http://10.77.0.1:8080/`.
    pub base: Url,
    /// Send QUIC here instead of the `webtransport_url`'s address (the quick mode's UDP relay).
    pub wt_override: Option<SocketAddr>,
    http: reqwest::Client,
    wt: tokio::sync::OnceCell<web_transport_quinn::Client>,
}

/// An open connection.
pub struct Conn {
    tx: Tx,
    rx: Rx,
}

type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

enum Tx {
    Ws(SplitSink<WsStream, Message>),
    Wt { session: Box<web_transport_quinn::Session>, send: web_transport_quinn::SendStream, frame: BytesMut },
}

enum Rx {
    Ws(SplitStream<WsStream>),
    Wt { session: Box<web_transport_quinn::Session>, recv: web_transport_quinn::RecvStream, buf: BytesMut },
}

impl Endpoint {
    pub fn new(base: Url, wt_override: Option<SocketAddr>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(8))
            .connect_timeout(Duration::from_secs(8))
            .build()?;
        Ok(Endpoint { base, wt_override, http, wt: tokio::sync::OnceCell::new() })
    }

    async fn room_info(&self, room: &str) -> anyhow::Result<RoomInfo> {
        let url = self.base.join(&format!("room/{room}"))?;
        let response = self.http.get(url).send().await.context("GET /room")?.error_for_status()?;
        response.json().await.context("room info")
    }

    /// Whether the server answers `GET /healthz`.
    pub async fn healthy(&self) -> bool {
        let Ok(url) = self.base.join("healthz") else { return false };
        match self.http.get(url).timeout(Duration::from_secs(1)).send().await {
            Ok(response) => response.status().is_success(),
            Err(_) => false,
        }
    }

    /// The entries stored for `key` as the server has them (HTTP `get`).
    pub async fn stored(&self, room: &str, key: &str) -> anyhow::Result<Vec<(u64, Option<Stamp>)>> {
        let url = self.base.join(&format!("room/{room}/send"))?;
        let body = serde_json::json!({"type": "get", "key": key, "seq": 0});
        let response = self.http.post(url).json(&body).send().await.context("POST send")?.error_for_status()?;
        match decode_json(&response.text().await?)? {
            In::Init { entries, .. } => Ok(entries),
            other => bail!("expected an init, got {other:?}"),
        }
    }

    /// Opens a connection to `room` (room info, then the WebSocket upgrade or the WebTransport session).
    pub async fn connect(&self, transport: Transport, room: &str) -> anyhow::Result<Conn> {
        match transport {
            Transport::Ws => {
                let mut url = self.base.join(&format!("room/{room}/connect"))?;
                url.set_scheme("ws").map_err(|()| anyhow!("bad scheme"))?;
                // like a browser client, ask for the room first
                self.room_info(room).await?;
                let (socket, _) = tokio_tungstenite::connect_async(url.as_str()).await.context("WebSocket connect")?;
                if let MaybeTlsStream::Plain(tcp) = socket.get_ref() {
                    tcp.set_nodelay(true)?;
                    // a dropped connection must not go on sending old writes after its replacement has resubscribed
                    tcp.set_zero_linger()?;
                }
                let (sink, stream) = socket.split();
                Ok(Conn { tx: Tx::Ws(sink), rx: Rx::Ws(stream) })
            }
            Transport::Wt => {
                let info = self.room_info(room).await?;
                let url = info.webtransport_url.as_deref().context("the server publishes no webtransport_url")?;
                let mut url = Url::parse(url)?;
                let client = self
                    .wt
                    .get_or_try_init(|| async {
                        let hashes = info.sha256_hashes().context("certificate hashes")?;
                        ensure!(!hashes.is_empty(), "the server publishes no certificate hash");
                        Ok::<_, anyhow::Error>(
                            web_transport_quinn::ClientBuilder::new().with_server_certificate_hashes(hashes)?,
                        )
                    })
                    .await?;
                if let Some(relay) = self.wt_override {
                    url.set_ip_host(relay.ip()).map_err(|()| anyhow!("cannot set the relay host"))?;
                    url.set_port(Some(relay.port())).map_err(|()| anyhow!("cannot set the relay port"))?;
                }
                let session = client.connect(url).await.context("WebTransport connect")?;
                let (send, recv) = session.open_bi().await.context("open the control stream")?;
                Ok(Conn {
                    tx: Tx::Wt { session: Box::new(session.clone()), send, frame: BytesMut::new() },
                    rx: Rx::Wt { session: Box::new(session), recv, buf: BytesMut::new() },
                })
            }
        }
    }
}

impl Conn {
    /// Sends one message (a volatile push over WebTransport goes as a datagram when it fits).
    pub async fn send(&mut self, message: &Out<'_>) -> anyhow::Result<()> {
        match &mut self.tx {
            Tx::Ws(sink) => sink.send(Message::text(message.json())).await?,
            Tx::Wt { session, send, frame } => {
                let bytes = message.postcard();
                if message.is_volatile() && fits_datagram(bytes.len(), session.max_datagram_size()) {
                    session.send_datagram(Bytes::from(bytes))?;
                } else {
                    frame.clear();
                    put_frame(frame, &bytes);
                    send.write_all(frame).await?;
                }
            }
        }
        Ok(())
    }

    /// The next server message; `Ok(None)` once the connection is closed. Cancel-safe.
    pub async fn next(&mut self) -> anyhow::Result<Option<(In, bool)>> {
        match &mut self.rx {
            Rx::Ws(stream) => loop {
                let message = match stream.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(None),
                    Some(Err(error)) => return Err(error.into()),
                    Some(Ok(Message::Text(text))) => decode_json(text.as_str())?,
                    Some(Ok(_)) => continue,
                };
                return Ok(Some((message, false)));
            },
            Rx::Wt { session, recv, buf } => loop {
                if let Some(frame) = FrameDecoder::new(usize::MAX).next_frame(buf)? {
                    return Ok(Some((decode_postcard(&frame)?, false)));
                }
                tokio::select! {
                    read = recv.read_chunk(64 * 1024, true) => match read {
                        Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
                        Ok(None) => return Ok(None),
                        Err(error) => bail!(error),
                    },
                    datagram = session.read_datagram() => {
                        let datagram = datagram?;
                        return Ok(Some((decode_postcard(&datagram)?, true)));
                    }
                }
            },
        }
    }

    /// Leaves: a goodbye on WebTransport, a close frame on the WebSocket (best effort, bounded).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            if matches!(self.tx, Tx::Wt { .. }) {
                let _ = self.send(&Out::Goodbye).await;
            }
            match &mut self.tx {
                Tx::Ws(sink) => {
                    let _ = sink.close().await;
                }
                Tx::Wt { session, .. } => session.close(1000, b"done"),
            }
        })
        .await;
    }

    /// Drops the connection at once (a client that decided the connection is dead).
    pub fn abort(self) {
        if let Tx::Wt { session, .. } = &self.tx {
            session.close(1000, b"dead");
        }
    }
}
