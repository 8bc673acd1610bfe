//! WebTransport sessions speaking DriftDB's binding: one bidirectional control stream of length-framed postcard
//! messages ([`driftdb_protocol::framing`]) plus datagrams, with the server's certificate pinned by its published
//! SHA-256 hashes (the `serverCertificateHashes` a browser is given).

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use driftdb_protocol::framing::{FrameDecoder, fits_datagram, put_frame};
use driftdb_protocol::{ClientMessage, ServerMessage, postcard_envelope};
use url::Url;

use crate::error::{Error, Result};
use crate::url::ensure_loopback;

/// How sessions are opened.
#[derive(Clone, Debug, Default)]
pub struct WtOptions {
    /// Accept only a certificate with one of these SHA-256 hashes (a room info's `certificate_hashes`).
    pub certificate_hashes: Vec<Vec<u8>>,
    /// Refuse a non-loopback URL (and `connect_to`) before connecting.
    pub loopback_only: bool,
    /// Send QUIC here instead of the URL's address, keeping the URL for the request (netsim's UDP relay).
    pub connect_to: Option<SocketAddr>,
}

/// Opens sessions with one set of options. Each connector is one QUIC endpoint (one UDP socket): make one per
/// session to behave like a browser each, or share one.
#[derive(Clone)]
pub struct WtConnector {
    client: web_transport_quinn::Client,
    options: WtOptions,
}

impl WtConnector {
    pub fn new(options: WtOptions) -> Result<Self> {
        let builder = web_transport_quinn::ClientBuilder::new();
        let client = builder.with_server_certificate_hashes(options.certificate_hashes.clone())?;
        Ok(WtConnector { client, options })
    }

    /// Opens a session to `url` and its control stream.
    pub async fn connect(&self, mut url: Url) -> Result<WtSession> {
        if self.options.loopback_only {
            ensure_loopback(&url)?;
        }
        if let Some(addr) = self.options.connect_to {
            if self.options.loopback_only && !addr.ip().is_loopback() {
                return Err(Error::NotLoopback(url));
            }
            url.set_ip_host(addr.ip()).map_err(|()| Error::BadUrl(format!("{url}: cannot set the host")))?;
            url.set_port(Some(addr.port())).map_err(|()| Error::BadUrl(format!("{url}: cannot set the port")))?;
        }
        let session = self.client.connect(url).await?;
        let (send, recv) = session.open_bi().await?;
        Ok(WtSession {
            tx: WtSender { session: session.clone(), send, frame: BytesMut::new() },
            rx: WtReceiver { session, recv, buf: BytesMut::new() },
        })
    }
}

/// An open session: its sending and receiving halves, usable together or apart.
pub struct WtSession {
    pub tx: WtSender,
    pub rx: WtReceiver,
}

impl WtSession {
    /// Opens one session with its own endpoint.
    pub async fn connect(url: Url, options: WtOptions) -> Result<Self> {
        WtConnector::new(options)?.connect(url).await
    }

    /// The QUIC session itself (close codes, datagram size, raw access for tests).
    pub fn session(&self) -> &web_transport_quinn::Session {
        &self.tx.session
    }

    pub fn split(self) -> (WtSender, WtReceiver) {
        (self.tx, self.rx)
    }
}

/// A received message's bytes and whether they came as a datagram (which may arrive out of order, or not at all).
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    pub bytes: Bytes,
    pub datagram: bool,
}

/// The sending half: the control stream and datagrams.
pub struct WtSender {
    session: web_transport_quinn::Session,
    send: web_transport_quinn::SendStream,
    /// Reused for every frame, so sending does not allocate.
    frame: BytesMut,
}

impl WtSender {
    pub fn session(&self) -> &web_transport_quinn::Session {
        &self.session
    }

    /// Sends one message on the control stream.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<()> {
        self.send_payload(&postcard_envelope::encode_client(message)).await
    }

    /// Sends one encoded message on the control stream, with its length prefix.
    pub async fn send_payload(&mut self, payload: &[u8]) -> Result<()> {
        self.frame.clear();
        put_frame(&mut self.frame, payload);
        Ok(self.send.write_all(&self.frame).await?)
    }

    /// Writes bytes on the control stream as they are (malformed-input tests).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        Ok(self.send.write_all(bytes).await?)
    }

    pub fn send_datagram(&self, payload: Bytes) -> Result<()> {
        Ok(self.session.send_datagram(payload)?)
    }

    /// A volatile message goes as a datagram when it fits (the server's own rule), anything else on the stream.
    pub async fn send_auto(&mut self, payload: Vec<u8>, volatile: bool) -> Result<()> {
        if volatile && fits_datagram(payload.len(), self.session.max_datagram_size()) {
            self.send_datagram(Bytes::from(payload))
        } else {
            self.send_payload(&payload).await
        }
    }

    /// Ends the control stream and closes the session with `code` (best effort: the session may be gone).
    pub fn close(&mut self, code: u32, reason: &str) {
        let _ = self.send.finish();
        self.session.close(code, reason.as_bytes());
    }
}

/// The receiving half: frames off the control stream and datagrams.
pub struct WtReceiver {
    session: web_transport_quinn::Session,
    recv: web_transport_quinn::RecvStream,
    buf: BytesMut,
}

/// The most one read takes off the control stream.
const READ_CHUNK: usize = 64 * 1024;

impl WtReceiver {
    pub fn session(&self) -> &web_transport_quinn::Session {
        &self.session
    }

    /// The next frame from either the control stream or a datagram; `Ok(None)` once the control stream ends.
    /// Cancel-safe: a partial frame stays buffered.
    pub async fn recv(&mut self) -> Result<Option<Received>> {
        loop {
            if let Some(frame) = self.buffered_frame()? {
                return Ok(Some(Received { bytes: frame, datagram: false }));
            }
            tokio::select! {
                read = self.recv.read_chunk(READ_CHUNK, true) => match read? {
                    Some(chunk) => self.buf.extend_from_slice(&chunk.bytes),
                    None => return Ok(None),
                },
                datagram = self.session.read_datagram() => {
                    return Ok(Some(Received { bytes: datagram?, datagram: true }));
                }
            }
        }
    }

    /// The next frame on the control stream alone; `Ok(None)` once it ends.
    pub async fn recv_stream(&mut self) -> Result<Option<Bytes>> {
        loop {
            if let Some(frame) = self.buffered_frame()? {
                return Ok(Some(frame));
            }
            match self.recv.read_chunk(READ_CHUNK, true).await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk.bytes),
                None => return Ok(None),
            }
        }
    }

    /// The next datagram alone.
    pub async fn recv_datagram(&self) -> Result<Bytes> {
        Ok(self.session.read_datagram().await?)
    }

    /// The next server message and whether it came as a datagram.
    pub async fn recv_message(&mut self) -> Result<Option<(ServerMessage, bool)>> {
        let Some(received) = self.recv().await? else { return Ok(None) };
        let message = decode(&received.bytes)?;
        Ok(Some((message, received.datagram)))
    }

    /// The session close code and reason the server sent (its CLOSE_WEBTRANSPORT_SESSION capsule, which is what a
    /// browser reports as `closeCode`); `Err` with how it ended otherwise.
    pub async fn closed(&self) -> Result<(u32, String), web_transport_quinn::SessionError> {
        match self.session.closed().await {
            web_transport_quinn::SessionError::WebTransportError(web_transport_quinn::WebTransportError::Closed(
                code,
                reason,
            )) => Ok((code, reason)),
            other => Err(other),
        }
    }

    fn buffered_frame(&mut self) -> Result<Option<Bytes>> {
        // The server bounds what it sends; the client takes any length.
        Ok(FrameDecoder::new(usize::MAX).next_frame(&mut self.buf)?)
    }
}

/// A server message from a control stream frame or a datagram.
pub fn decode(bytes: &[u8]) -> Result<ServerMessage> {
    postcard_envelope::decode_server(bytes).map_err(|e| Error::Decode(format!("postcard: {e}")))
}
