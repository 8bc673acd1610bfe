//! The Rust clients of the scenarios: `driftdb-client` connections, a WebSocket (JSON text frames) or a WebTransport
//! session (postcard on the control stream, volatile relays as datagrams), with the HTTP calls around them.
//!
//! Unlike `driftdb-load`'s, these are not loopback-only (the faithful mode's server is at 10.77.0.1 in another
//! namespace), and they resume subscriptions from a seq ([`driftdb_client::resume`]), which reconnection needs.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use driftdb::room_info::RoomInfo;
use driftdb_client::Encoding;
use driftdb_client::connection::{self, Receiver, Sender};
use driftdb_client::protocol::Dialect;
pub use driftdb_client::stamp::{Stamp, now_us};
use driftdb_client::stamped::decode_json;
pub use driftdb_client::stamped::{In, Out, PushKind};
use driftdb_client::url::websocket_url;
use driftdb_client::websocket::{WebSocket, WsOptions};
use driftdb_client::webtransport::{WtConnector, WtOptions};
use serde::{Deserialize, Serialize};
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

/// Where the clients find the server.
pub struct Endpoint {
    /// HTTP base URL, e.g. `http://10.77.0.1:8080/`.
    pub base: Url,
    /// Send QUIC here instead of the `webtransport_url`'s address (the quick mode's UDP relay).
    pub wt_override: Option<SocketAddr>,
    http: reqwest::Client,
    /// One QUIC endpoint for every session of the run, made with the first room's certificate hashes.
    wt: tokio::sync::OnceCell<WtConnector>,
}

/// An open connection.
pub struct Conn {
    tx: Sender,
    rx: Receiver,
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
        let (tx, rx) = match transport {
            Transport::Ws => {
                let url = websocket_url(&self.base, room, Encoding::Json, Dialect::Reference)?;
                // like a browser client, ask for the room first
                self.room_info(room).await?;
                let options = WsOptions { zero_linger: true, ..WsOptions::encoding(Encoding::Json) };
                connection::websocket(WebSocket::connect(&url, &options).await.context("WebSocket connect")?)
            }
            Transport::Wt => {
                let info = self.room_info(room).await?;
                let url = info.webtransport_url.as_deref().context("the server publishes no webtransport_url")?;
                let url = Url::parse(url)?;
                let connector = self
                    .wt
                    .get_or_try_init(|| async {
                        let hashes = info.sha256_hashes().context("certificate hashes")?;
                        ensure!(!hashes.is_empty(), "the server publishes no certificate hash");
                        let options = WtOptions {
                            certificate_hashes: hashes,
                            loopback_only: false,
                            connect_to: self.wt_override,
                        };
                        Ok::<_, anyhow::Error>(WtConnector::new(options)?)
                    })
                    .await?;
                connection::webtransport(connector.connect(url).await.context("WebTransport connect")?)
            }
        };
        Ok(Conn { tx, rx })
    }
}

impl Conn {
    /// Sends one message (a volatile push over WebTransport goes as a datagram when it fits).
    pub async fn send(&mut self, message: &Out<'_>) -> anyhow::Result<()> {
        Ok(self.tx.send(message).await?)
    }

    /// The next server message; `Ok(None)` once the connection is closed. Cancel-safe.
    pub async fn next(&mut self) -> anyhow::Result<Option<(In, bool)>> {
        Ok(self.rx.next().await?)
    }

    /// Leaves: a goodbye on WebTransport, a close frame on the WebSocket (best effort, bounded).
    pub async fn close(mut self) {
        self.tx.close(Duration::from_millis(500), true, 1000, "done").await;
    }

    /// Drops the connection at once (a client that decided the connection is dead).
    pub fn abort(mut self) {
        if let Sender::Wt(wt) = &mut self.tx {
            wt.close(1000, "dead");
        }
    }
}
