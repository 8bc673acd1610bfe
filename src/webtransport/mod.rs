//! The WebTransport transport: HTTP/3 over QUIC (quinn, h3, our own session layer in [`http3`]) next to the HTTP
//! listener.
//!
//! A session is an extended CONNECT to `/room/{id}/connect`. The client then opens one bidirectional control stream
//! carrying every reliable message both ways (varint length + postcard); datagrams carry volatile relays, one
//! postcard message each. Sessions drive the same engine as WebSocket connections.
//!
//! - [`endpoint`]: QUIC settings, binding, the accept loop, certificate renewal.
//! - [`session`]: one connection's life: established, then run by the [connection driver](crate::driver).
//! - [`establish`]: the handshake, the CONNECT request's validation and admission, the SETTINGS wait.
//! - [`reader`]: control-stream frames and datagrams in, and the streams a client opens.
//! - [`writer`]: datagrams and control-stream frames out; closing with a reason code.
//! - [`http3`]: the HTTP/3 side of a session: the CONNECT stream, accepting streams, the close capsule.
//! - [`framing`]: control-stream frames, datagram prefixes, the close capsule's bytes.
//! - [`request`]: validating the CONNECT request.
//! - [`udp_stats`]: what the kernel dropped at the UDP sockets, for `/metrics`.

mod endpoint;
mod establish;
pub mod framing;
mod http3;
mod quic_thread;
mod reader;
mod request;
mod session;
pub mod udp_stats;
mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::config::ServerConfig;
use crate::context::{Context, WebTransportInfo};
use crate::tls::{Certificates, TlsError};

/// How long shutdown waits for close frames to leave before the endpoints go.
const CLOSE_FLUSH: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum WebTransportError {
    #[error("cannot listen on UDP {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("the TLS configuration offers no cipher suite QUIC can use")]
    NoQuicCipherSuite,
    #[error("cannot start the QUIC thread: {0}")]
    QuicThread(#[source] std::io::Error),
}

impl WebTransportError {
    /// Whether binding failed because the port is taken (worth retrying with another port when it was picked
    /// automatically).
    pub fn is_addr_in_use(&self) -> bool {
        matches!(self, WebTransportError::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse)
    }
}

/// The bound QUIC endpoints.
pub struct WebTransportServer {
    endpoints: Vec<quinn::Endpoint>,
    certificates: Arc<Certificates>,
    idle_timeout: Duration,
    port: u16,
    /// The sockets' receive buffer as the kernel granted it.
    receive_buffer: usize,
}

/// Makes the listener's certificates: the operator's, or a self-signed one.
pub fn certificates(config: &ServerConfig) -> Result<Arc<Certificates>, TlsError> {
    let certificates = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Certificates::operator(cert, key)?,
        _ => Certificates::self_signed(config.host_names.clone(), config.self_signed.clone())?,
    };
    Ok(Arc::new(certificates))
}

impl WebTransportServer {
    /// Binds UDP `port` on the configured host (see [`endpoint::bind_addresses`] for the IPv6 companion).
    pub fn bind(config: &ServerConfig, certificates: Arc<Certificates>, port: u16) -> Result<Self, WebTransportError> {
        let idle_timeout = config.wt_idle_timeout();
        let quic_config = endpoint::server_config(&certificates.current(), idle_timeout)?;
        let (primary, companion) = endpoint::bind_addresses(config.host, port);
        let receive_buffer = config.udp_receive_buffer_bytes;
        let quic_thread = quic_thread::QuicThread::start().map_err(WebTransportError::QuicThread)?;
        let (first, mut granted) = endpoint::bind(primary, quic_config.clone(), receive_buffer, quic_thread.clone())?;
        let port = first.local_addr().map_err(|source| WebTransportError::Bind { addr: primary, source })?.port();
        let mut endpoints = vec![first];
        if let Some(companion) = companion {
            let companion = SocketAddr::new(companion.ip(), port);
            match endpoint::bind(companion, quic_config, receive_buffer, quic_thread) {
                Ok((endpoint, also)) => {
                    endpoints.push(endpoint);
                    granted = granted.min(also);
                }
                Err(error) => warn!(%error, "WebTransport stays on IPv4 only"),
            }
        }
        info!(receive_buffer = granted, "WebTransport socket receive buffer");
        Ok(WebTransportServer { endpoints, certificates, idle_timeout, port, receive_buffer: granted })
    }

    /// The UDP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The sockets' receive buffer as the kernel granted it (`SO_RCVBUF`, for `/metrics`).
    pub fn receive_buffer(&self) -> usize {
        self.receive_buffer
    }

    /// What room results publish.
    pub fn info(&self) -> WebTransportInfo {
        WebTransportInfo { port: self.port, certificates: self.certificates.clone() }
    }

    /// Starts accepting sessions and renewing the certificate. Sessions run on the context's connection tracker;
    /// its shutdown closes them with 1001.
    pub fn start(&self, context: &Context) {
        for endpoint in &self.endpoints {
            info!(addr = ?endpoint.local_addr().ok(), "WebTransport listening");
            tokio::spawn(endpoint::accept_loop(endpoint.clone(), context.clone()));
        }
        let shutdown = context.shutdown.clone();
        let renewal =
            endpoint::renewal_loop(self.endpoints.clone(), self.certificates.clone(), self.idle_timeout, shutdown);
        tokio::spawn(renewal);
    }

    /// After shutdown: gives the close frames of the sessions a moment to leave, then closes the endpoints.
    pub async fn stop(self) {
        for endpoint in &self.endpoints {
            let _ = tokio::time::timeout(CLOSE_FLUSH, endpoint.wait_idle()).await;
            endpoint.close(0u32.into(), b"server stopped");
        }
    }
}
