//! Load clients: a WebSocket (JSON or CBOR) or a WebTransport session (control stream + datagrams) from
//! `driftdb-client`, split into a sending and a receiving half so that a scenario can drive each from its own task,
//! plus the floor's plain UDP, which only this tool speaks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
pub use driftdb::room_info::RoomInfo;
use driftdb_client::connection::{self, Receiver, Sender};
use driftdb_client::protocol::Dialect;
use driftdb_client::stamped::{In, Out, decode_json};
use driftdb_client::url::websocket_url;
use driftdb_client::websocket::{WebSocket, WsOptions};
use driftdb_client::webtransport::{WtConnector, WtOptions};
use driftdb_client::{Encoding, Error};
use tokio::net::UdpSocket;
use url::Url;

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
    Ok(driftdb_client::url::ensure_loopback(url)?)
}

/// Connects clients of one transport to one server.
#[derive(Clone)]
pub struct Connector {
    base: Url,
    transport: Transport,
    /// Where WebSockets go (see [`Route`]).
    route: Route,
    http: reqwest::Client,
    /// The certificate hashes the first room published, for WebTransport sessions.
    wt_hashes: Option<Vec<Vec<u8>>>,
    /// The QUIC endpoint (UDP socket) new WebTransport sessions open on, shared by every clone of this connector.
    wt_endpoint: Arc<Mutex<Endpoint>>,
}

/// WebTransport sessions share an endpoint in groups of `per_endpoint`: one UDP socket per session (the default)
/// behaves like a browser each, but a session is then a file descriptor of the tool's.
#[derive(Default)]
struct Endpoint {
    per_endpoint: usize,
    current: Option<WtConnector>,
    sessions: usize,
}

impl Endpoint {
    fn shared(per_endpoint: usize) -> Arc<Mutex<Endpoint>> {
        Arc::new(Mutex::new(Endpoint { per_endpoint, ..Endpoint::default() }))
    }

    /// The endpoint the next session opens on: the current one, or a new one once it holds `per_endpoint`.
    fn next(&mut self, hashes: &[Vec<u8>]) -> anyhow::Result<WtConnector> {
        match &self.current {
            Some(connector) if self.sessions < self.per_endpoint.max(1) => {
                self.sessions += 1;
                Ok(connector.clone())
            }
            _ => {
                let options = WtOptions { certificate_hashes: hashes.to_vec(), loopback_only: true, connect_to: None };
                let connector = WtConnector::new(options)?;
                (self.current, self.sessions) = (Some(connector.clone()), 1);
                Ok(connector)
            }
        }
    }
}

/// Which server a WebSocket connects to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `--url`, the server the rooms are made on.
    Base,
    /// The node that owns the room, as its room info names it (`--to-owner`).
    Owner,
    /// This node, for rooms another node owns (`--through`): every connection is forwarded.
    Through(Url),
}

/// How many new rooms `--through` tries for one owned by another node before it gives up.
const PLACEMENT_TRIES: usize = 64;

impl Connector {
    pub fn new(base: Url, transport: Transport) -> anyhow::Result<Self> {
        Self::with_route(base, transport, Route::Base)
    }

    pub fn with_route(base: Url, transport: Transport, route: Route) -> anyhow::Result<Self> {
        ensure_loopback(&base)?;
        if let Route::Through(through) = &route {
            ensure_loopback(through)?;
        }
        let http = reqwest::Client::builder().no_proxy().timeout(CONNECT_TIMEOUT).build()?;
        Ok(Connector { base, transport, route, http, wt_hashes: None, wt_endpoint: Endpoint::shared(1) })
    }

    /// Lets up to `sessions` WebTransport sessions share one QUIC endpoint (UDP socket); 1 gives each its own.
    pub fn sessions_per_endpoint(self, sessions: usize) -> Self {
        self.wt_endpoint.lock().expect("the endpoint lock is never poisoned").per_endpoint = sessions.max(1);
        self
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The same server and route over another transport, for runs that mix transports in the same rooms; `room`,
    /// one of this connector's rooms, gives WebTransport its certificate hashes.
    pub fn with_transport(&self, transport: Transport, room: &RoomInfo) -> anyhow::Result<Self> {
        let per_endpoint = self.wt_endpoint.lock().expect("the endpoint lock is never poisoned").per_endpoint;
        let mut other = Connector { transport, wt_endpoint: Endpoint::shared(per_endpoint), ..self.clone() };
        if transport == Transport::Wt && other.wt_hashes.is_none() {
            other.wt_hashes = Some(wt_hashes(room)?);
        }
        Ok(other)
    }

    /// Creates a room (`POST /new`). For WebTransport, the first room's certificate hashes are kept for connecting.
    pub async fn new_room(&mut self) -> anyhow::Result<RoomInfo> {
        let Route::Through(through) = self.route.clone() else { return self.make_room().await };
        for _ in 0..PLACEMENT_TRIES {
            let info = self.make_room().await?;
            if origin(&Url::parse(&info.socket_url)?) != origin(&through) {
                return Ok(info);
            }
        }
        bail!("{PLACEMENT_TRIES} new rooms all landed on {through}: is it in a cluster with another node?")
    }

    async fn make_room(&mut self) -> anyhow::Result<RoomInfo> {
        let url = self.base.join("new")?;
        let response = self.http.post(url).send().await.context("POST /new")?.error_for_status()?;
        let info: RoomInfo = response.json().await.context("room info")?;
        if self.transport == Transport::Wt && self.wt_hashes.is_none() {
            self.wt_hashes = Some(wt_hashes(&info)?);
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
        let (tx, rx) = match self.transport {
            Transport::WsJson | Transport::WsCbor => {
                let encoding = if self.transport == Transport::WsCbor { Encoding::Cbor } else { Encoding::Json };
                // `ext=true`: measure the server as our own client uses it (extended message shapes).
                let url = websocket_url(&self.websocket_base(room)?, &room.room, encoding, Dialect::Extended)?;
                let options = WsOptions { loopback_only: true, ..WsOptions::encoding(encoding) };
                connection::websocket(WebSocket::connect(&url, &options).await.context("WebSocket connect")?)
            }
            Transport::Wt => {
                let hashes = self.wt_hashes.as_deref().context("no certificate hashes (create a room first)")?;
                // By default one QUIC endpoint (one UDP socket) per session, as each browser has: a single socket
                // shared by hundreds of sessions overflows its receive buffer and loses datagrams the server did
                // send. `--wt-sessions-per-endpoint` shares one among a few, to fit the tool's descriptors.
                let endpoint = self.wt_endpoint.lock().expect("the endpoint lock is never poisoned").next(hashes)?;
                let session = endpoint.connect(webtransport_url(room)?).await;
                connection::webtransport(session.context("WebTransport connect")?)
            }
            Transport::Udp => {
                let host = self.base.host_str().context("no host")?.trim_matches(['[', ']']);
                let port = self.base.port_or_known_default().context("no port")?;
                let server: std::net::IpAddr = host.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
                let socket = Arc::new(UdpSocket::bind((server, 0)).await?);
                socket.connect((server, port)).await?;
                let tx = Tx::Udp { socket: socket.clone(), room: room.room.clone(), frame: Vec::new() };
                return Ok((tx, Rx::Udp { socket, buf: vec![0; 2048] }));
            }
        };
        Ok((Tx::Conn(tx), Rx::Conn(rx)))
    }
}

/// The room's WebTransport URL, which a server without WebTransport does not publish.
impl Connector {
    /// The HTTP base a WebSocket to `room` connects at, by the route.
    fn websocket_base(&self, room: &RoomInfo) -> anyhow::Result<Url> {
        Ok(match &self.route {
            Route::Base => self.base.clone(),
            Route::Through(through) => through.clone(),
            Route::Owner => {
                let mut owner = Url::parse(&room.socket_url)?;
                owner.set_scheme(if owner.scheme() == "wss" { "https" } else { "http" }).ok();
                owner.set_path("/");
                owner.set_query(None);
                ensure_loopback(&owner)?;
                owner
            }
        })
    }
}

/// `host:port` of a URL, for telling nodes apart.
fn origin(url: &Url) -> (Option<String>, Option<u16>) {
    (url.host_str().map(str::to_owned), url.port_or_known_default())
}

/// The certificate hashes a room's info publishes for WebTransport, after checking its URL is on loopback.
fn wt_hashes(info: &RoomInfo) -> anyhow::Result<Vec<Vec<u8>>> {
    ensure_loopback(&webtransport_url(info)?)?;
    let hashes = info.sha256_hashes().context("certificate hashes")?;
    ensure!(!hashes.is_empty(), "the server publishes no certificate hash (an operator certificate?)");
    Ok(hashes)
}

fn webtransport_url(room: &RoomInfo) -> anyhow::Result<Url> {
    let url = room.webtransport_url.as_deref().context("the server publishes no webtransport_url")?;
    Ok(Url::parse(url)?)
}

/// The sending half of a client.
pub enum Tx {
    Conn(Sender),
    Udp { socket: Arc<UdpSocket>, room: String, frame: Vec<u8> },
}

impl Tx {
    /// Sends one message (a volatile push over WebTransport goes as a datagram).
    pub async fn send(&mut self, message: &Out<'_>) -> anyhow::Result<()> {
        match self {
            Tx::Conn(sender) => sender.send(message).await?,
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
        if let Tx::Conn(mut sender) = self {
            sender.close(Duration::from_secs(1), false, 0, "done").await;
        }
    }
}

/// The receiving half of a client.
pub enum Rx {
    Conn(Receiver),
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
            Rx::Conn(receiver) => match receiver.next().await {
                Ok(next) => Ok(next.map(|(message, datagram)| Received { message, datagram })),
                // A session the server or the tool closed is the end of the stream; anything else is an error.
                Err(error @ (Error::Read(_) | Error::Session(_))) if error.is_closed() => Ok(None),
                Err(error) => Err(error.into()),
            },
            Rx::Udp { socket, buf } => {
                let len = socket.recv(buf).await?;
                let text = std::str::from_utf8(&buf[..len]).context("a floor datagram is not UTF-8")?;
                Ok(Some(Received { message: decode_json(text)?, datagram: true }))
            }
        }
    }
}
