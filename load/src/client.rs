//! Load clients: a WebSocket (JSON or CBOR) or a WebTransport session (control stream + datagrams), split into a
//! sending and a receiving half so that a scenario can drive each from its own task.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use bytes::{Bytes, BytesMut};
pub use driftdb::room_info::RoomInfo;
use driftdb::webtransport::framing::{FrameDecoder, fits_datagram, put_frame};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::{Host, Url};

use crate::wire::{In, Out, decode_cbor, decode_json, decode_postcard};

/// How long one connect (HTTP request, WebSocket upgrade or WebTransport handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The wire a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// WebSocket, JSON text frames.
    WsJson,
    /// WebSocket with `?cbor=true`, CBOR binary frames.
    WsCbor,
    /// WebTransport: postcard on the control stream, volatile relays as datagrams.
    Wt,
    /// Plain UDP datagrams of JSON frames: only the floor (`driftdb-load floor-server`) speaks it, as the
    /// cheapest equivalent of WebTransport datagrams.
    Udp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::WsJson => "ws-json",
            Transport::WsCbor => "ws-cbor",
            Transport::Wt => "wt",
            Transport::Udp => "udp",
        }
    }
}

/// Refuses anything but a loopback host: the tool is for measuring a server on this machine.
pub fn ensure_loopback(url: &Url) -> anyhow::Result<()> {
    let loopback = match url.host() {
        Some(Host::Domain(domain)) => domain == "localhost",
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    ensure!(loopback, "{url}: only loopback targets (127.0.0.0/8, ::1, localhost) are allowed");
    Ok(())
}

/// Connects clients of one transport to one server.
#[derive(Clone)]
pub struct Connector {
    base: Url,
    transport: Transport,
    http: reqwest::Client,
    /// The certificate hashes the first room published, for WebTransport sessions.
    wt_hashes: Option<Vec<Vec<u8>>>,
}

impl Connector {
    pub fn new(base: Url, transport: Transport) -> anyhow::Result<Self> {
        ensure_loopback(&base)?;
        let http = reqwest::Client::builder().no_proxy().timeout(CONNECT_TIMEOUT).build()?;
        Ok(Connector { base, transport, http, wt_hashes: None })
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Creates a room (`POST /new`). For WebTransport, the first room's certificate hashes are kept for connecting.
    pub async fn new_room(&mut self) -> anyhow::Result<RoomInfo> {
        let url = self.base.join("new")?;
        let response = self.http.post(url).send().await.context("POST /new")?.error_for_status()?;
        let info: RoomInfo = response.json().await.context("room info")?;
        if self.transport == Transport::Wt && self.wt_hashes.is_none() {
            ensure_loopback(&webtransport_url(&info)?)?;
            let hashes = info.sha256_hashes().context("certificate hashes")?;
            ensure!(!hashes.is_empty(), "the server publishes no certificate hash (an operator certificate?)");
            self.wt_hashes = Some(hashes);
        }
        Ok(info)
    }

    /// Opens one connection to `room`.
    pub async fn connect(&self, room: &RoomInfo) -> anyhow::Result<(Tx, Rx)> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.connect_inner(room))
            .await
            .map_err(|_| anyhow!("connecting took longer than {CONNECT_TIMEOUT:?}"))?
    }

    async fn connect_inner(&self, room: &RoomInfo) -> anyhow::Result<(Tx, Rx)> {
        match self.transport {
            Transport::WsJson | Transport::WsCbor => {
                let cbor = self.transport == Transport::WsCbor;
                let mut url = self.base.join(&format!("room/{}/connect", room.room))?;
                url.set_scheme(if url.scheme() == "https" { "wss" } else { "ws" })
                    .map_err(|()| anyhow!("bad scheme"))?;
                // `ext=true`: measure the server as our own client uses it (extended message shapes).
                url.set_query(Some(if cbor { "cbor=true&ext=true" } else { "ext=true" }));
                let (socket, _) = tokio_tungstenite::connect_async(url.as_str()).await.context("WebSocket connect")?;
                if let MaybeTlsStream::Plain(tcp) = socket.get_ref() {
                    tcp.set_nodelay(true)?;
                }
                let (sink, stream) = socket.split();
                Ok((Tx::Ws { sink, cbor }, Rx::Ws { stream }))
            }
            Transport::Wt => {
                let hashes = self.wt_hashes.clone().context("no certificate hashes (create a room first)")?;
                // One QUIC endpoint (one UDP socket) per session, as each browser has: a single socket shared by
                // hundreds of sessions overflows its receive buffer and loses datagrams the server did send.
                let client = web_transport_quinn::ClientBuilder::new().with_server_certificate_hashes(hashes)?;
                let url = webtransport_url(room)?;
                ensure_loopback(&url)?;
                let session = client.connect(url).await.context("WebTransport connect")?;
                let (send, recv) = session.open_bi().await.context("open the control stream")?;
                let rx = Rx::Wt { session: Box::new(session.clone()), recv, buf: BytesMut::new() };
                Ok((Tx::Wt { session: Box::new(session), send, frame: BytesMut::new() }, rx))
            }
            Transport::Udp => {
                let host = self.base.host_str().context("no host")?.trim_matches(['[', ']']);
                let port = self.base.port_or_known_default().context("no port")?;
                let server: std::net::IpAddr = host.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
                let socket = Arc::new(UdpSocket::bind((server, 0)).await?);
                socket.connect((server, port)).await?;
                let tx = Tx::Udp { socket: socket.clone(), room: room.room.clone(), frame: Vec::new() };
                Ok((tx, Rx::Udp { socket, buf: vec![0; 2048] }))
            }
        }
    }
}

/// The room's WebTransport URL, which a server without WebTransport does not publish.
fn webtransport_url(room: &RoomInfo) -> anyhow::Result<Url> {
    let url = room.webtransport_url.as_deref().context("the server publishes no webtransport_url")?;
    Ok(Url::parse(url)?)
}

type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The sending half of a client.
pub enum Tx {
    Ws { sink: SplitSink<WsStream, Message>, cbor: bool },
    Wt { session: Box<web_transport_quinn::Session>, send: web_transport_quinn::SendStream, frame: BytesMut },
    Udp { socket: Arc<UdpSocket>, room: String, frame: Vec<u8> },
}

impl Tx {
    /// Sends one message (a volatile push over WebTransport goes as a datagram).
    pub async fn send(&mut self, message: &Out<'_>) -> anyhow::Result<()> {
        match self {
            Tx::Ws { sink, cbor: false } => sink.send(Message::text(message.json())).await?,
            Tx::Ws { sink, cbor: true } => sink.send(Message::binary(message.cbor())).await?,
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
            Tx::Udp { socket, room, frame } => {
                frame.clear();
                frame.extend_from_slice(room.as_bytes());
                frame.push(b'\n');
                frame.extend_from_slice(message.json().as_bytes());
                socket.send(frame).await?;
            }
        }
        Ok(())
    }

    /// Closes the connection politely (best effort).
    pub async fn close(self) {
        match self {
            Tx::Ws { mut sink, .. } => {
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
            }
            Tx::Wt { session, mut send, .. } => {
                let _ = send.finish();
                session.close(0, b"done");
            }
            Tx::Udp { .. } => {}
        }
    }
}

/// The receiving half of a client.
pub enum Rx {
    Ws { stream: SplitStream<WsStream> },
    Wt { session: Box<web_transport_quinn::Session>, recv: web_transport_quinn::RecvStream, buf: BytesMut },
    Udp { socket: Arc<UdpSocket>, buf: Vec<u8> },
}

/// A received message and whether it came as a datagram (which may arrive out of order).
pub struct Received {
    pub message: In,
    pub datagram: bool,
}

impl Rx {
    /// The next server message; `Ok(None)` once the connection is closed. Cancel-safe.
    pub async fn next(&mut self) -> anyhow::Result<Option<Received>> {
        match self {
            Rx::Ws { stream } => loop {
                let message = match stream.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(None),
                    Some(Err(error)) => return Err(error.into()),
                    Some(Ok(Message::Text(text))) => decode_json(text.as_str())?,
                    Some(Ok(Message::Binary(bytes))) => decode_cbor(&bytes)?,
                    Some(Ok(_)) => continue,
                };
                return Ok(Some(Received { message, datagram: false }));
            },
            Rx::Wt { session, recv, buf } => loop {
                if let Some(frame) = FrameDecoder::new(usize::MAX).next_frame(buf)? {
                    return Ok(Some(Received { message: decode_postcard(&frame)?, datagram: false }));
                }
                tokio::select! {
                    read = recv.read_chunk(64 * 1024, true) => match read {
                        Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
                        Ok(None) => return Ok(None),
                        Err(error) => return closed_or(error),
                    },
                    datagram = session.read_datagram() => match datagram {
                        Ok(datagram) => {
                            return Ok(Some(Received { message: decode_postcard(&datagram)?, datagram: true }));
                        }
                        Err(error) => return closed_or(error),
                    },
                }
            },
            Rx::Udp { socket, buf } => {
                let len = socket.recv(buf).await?;
                let text = std::str::from_utf8(&buf[..len]).context("a floor datagram is not UTF-8")?;
                Ok(Some(Received { message: decode_json(text)?, datagram: true }))
            }
        }
    }
}

/// A session the server or the tool closed is the end of the stream; anything else is an error.
fn closed_or<E: std::error::Error + Send + Sync + 'static>(error: E) -> anyhow::Result<Option<Received>> {
    let text = error.to_string();
    if text.contains("closed") || text.contains("reset") {
        return Ok(None);
    }
    bail!(error)
}
