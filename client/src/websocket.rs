//! WebSocket connections: the TCP connect with the socket options each user needs, the upgrade, sending frames or
//! messages, a receive loop that skips keepalive frames, and close codes both ways.

use std::time::Duration;

use bytes::Bytes;
use driftdb_protocol::ClientMessage;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use crate::codec;
use crate::error::{Error, Result};
use crate::stamped::Out;
use crate::url::{Encoding, ensure_loopback};

/// How a WebSocket is opened.
#[derive(Clone, Debug)]
pub struct WsOptions {
    /// What the server was asked to send (the URL's `cbor=true` says so to the server; this tells the client).
    pub encoding: Encoding,
    /// Refuse a non-loopback host before connecting.
    pub loopback_only: bool,
    /// `TCP_NODELAY`: small messages leave at once instead of waiting for Nagle.
    pub nodelay: bool,
    /// `SO_LINGER 0`: a dropped connection is reset at once instead of going on sending old writes after its
    /// replacement has resubscribed (netsim's reconnects).
    pub zero_linger: bool,
    /// The socket's kernel receive buffer, so that a client that stops reading makes the server back up after a few
    /// kilobytes rather than after the kernel's autotuned megabytes.
    pub receive_buffer: Option<u32>,
}

impl Default for WsOptions {
    fn default() -> Self {
        WsOptions {
            encoding: Encoding::Json,
            loopback_only: false,
            nodelay: true,
            zero_linger: false,
            receive_buffer: None,
        }
    }
}

impl WsOptions {
    pub fn encoding(encoding: Encoding) -> Self {
        WsOptions { encoding, ..Default::default() }
    }
}

/// How a connection ended: the close frame's code and reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    pub code: u16,
    pub reason: String,
}

/// A frame that carries something for the application.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    Text(String),
    Binary(Bytes),
    /// The peer's close frame (`None` when it had no code), or the end of the stream.
    Closed(Option<Closed>),
}

pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One WebSocket connection.
pub struct WebSocket {
    stream: WsStream,
    encoding: Encoding,
}

impl WebSocket {
    /// Connects to a `ws://` URL (DriftDB's servers here speak plain WebSocket; TLS belongs to a proxy in front).
    pub async fn connect(url: &Url, options: &WsOptions) -> Result<Self> {
        if options.loopback_only {
            ensure_loopback(url)?;
        }
        if url.scheme() != "ws" {
            return Err(Error::BadUrl(format!("{url}: only ws:// URLs are supported")));
        }
        let addrs = url.socket_addrs(|| Some(80)).map_err(|e| Error::BadUrl(format!("{url}: {e}")))?;
        let mut last = None;
        for addr in addrs {
            match Self::tcp(addr, options).await {
                Ok(tcp) => {
                    let (stream, _) = tokio_tungstenite::client_async(url.as_str(), MaybeTlsStream::Plain(tcp)).await?;
                    return Ok(WebSocket { stream, encoding: options.encoding });
                }
                Err(error) => last = Some(error),
            }
        }
        Err(last.map_or_else(|| Error::BadUrl(format!("{url}: no address")), Error::Io))
    }

    async fn tcp(addr: std::net::SocketAddr, options: &WsOptions) -> std::io::Result<TcpStream> {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }?;
        if let Some(bytes) = options.receive_buffer {
            // Must be set before connecting: the window scale is agreed on in the handshake.
            socket.set_recv_buffer_size(bytes)?;
        }
        let tcp = socket.connect(addr).await?;
        tcp.set_nodelay(options.nodelay)?;
        if options.zero_linger {
            tcp.set_zero_linger()?;
        }
        Ok(tcp)
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The underlying stream, for what this type does not cover (raw frame tests).
    pub fn stream(&mut self) -> &mut WsStream {
        &mut self.stream
    }

    /// Splits into halves that separate tasks can drive.
    pub fn split(self) -> (WsSender, WsReceiver) {
        let (sink, stream) = self.stream.split();
        (WsSender { sink, encoding: self.encoding }, WsReceiver { stream })
    }

    pub async fn send_frame(&mut self, frame: Message) -> Result<()> {
        Ok(self.stream.send(frame).await?)
    }

    /// Sends a message in the connection's encoding.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<()> {
        self.send_frame(frame_of(self.encoding, message)).await
    }

    /// The next frame of any kind; `None` once the stream ends.
    pub async fn next_frame(&mut self) -> Option<Result<Message>> {
        Some(self.stream.next().await?.map_err(Error::from))
    }

    /// The next text, binary or close frame; pings and pongs (keepalive) are skipped.
    pub async fn recv(&mut self) -> Result<Incoming> {
        recv_from(&mut self.stream).await
    }

    /// Starts the closing handshake with `code` and `reason`.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<()> {
        let frame = CloseFrame { code: code.into(), reason: reason.to_owned().into() };
        Ok(self.stream.close(Some(frame)).await?)
    }
}

fn frame_of(encoding: Encoding, message: &ClientMessage) -> Message {
    match encoding {
        Encoding::Json => Message::text(codec::encode_client_json(message)),
        Encoding::Cbor => Message::binary(codec::encode_client_cbor(message)),
    }
}

async fn recv_from<S>(stream: &mut S) -> Result<Incoming>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        return Ok(match stream.next().await {
            None => Incoming::Closed(None),
            Some(Err(error)) => return Err(error.into()),
            Some(Ok(Message::Text(text))) => Incoming::Text(text.as_str().to_owned()),
            Some(Ok(Message::Binary(bytes))) => Incoming::Binary(bytes),
            Some(Ok(Message::Close(frame))) => {
                Incoming::Closed(frame.map(|f| Closed { code: f.code.into(), reason: f.reason.to_string() }))
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
        });
    }
}

/// The sending half.
pub struct WsSender {
    sink: SplitSink<WsStream, Message>,
    encoding: Encoding,
}

impl WsSender {
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    pub async fn send_frame(&mut self, frame: Message) -> Result<()> {
        Ok(self.sink.send(frame).await?)
    }

    /// Sends a measuring client's message: a text frame on a JSON connection, a binary one on CBOR.
    pub async fn send_out(&mut self, message: &Out<'_>) -> Result<()> {
        let frame = match self.encoding {
            Encoding::Json => Message::text(message.json()),
            Encoding::Cbor => Message::binary(message.cbor()),
        };
        self.send_frame(frame).await
    }

    pub async fn send(&mut self, message: &ClientMessage) -> Result<()> {
        self.send_frame(frame_of(self.encoding, message)).await
    }

    /// Closes politely, waiting at most `wait` for the close frame to go (best effort).
    pub async fn close(&mut self, wait: Duration) {
        let _ = tokio::time::timeout(wait, self.sink.close()).await;
    }
}

/// The receiving half.
pub struct WsReceiver {
    stream: SplitStream<WsStream>,
}

impl WsReceiver {
    /// The next text, binary or close frame; pings and pongs are skipped. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Incoming> {
        recv_from(&mut self.stream).await
    }
}
