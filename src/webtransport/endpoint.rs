//! The QUIC endpoints: transport settings, binding, the accept loop and certificate renewal.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicServerConfig;
use quinn::{AckFrequencyConfig, IdleTimeout, TransportConfig};
use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::WebTransportError;
use super::session;
use crate::context::Context;
use crate::tls::{Certificates, CertifiedKey};

/// Keep-alive interval: well inside the idle timeout, so that a live but quiet session is never dropped.
const KEEP_ALIVE: Duration = Duration::from_secs(4);
/// quinn assumes 333 ms before it has measured the path; real-time traffic is better served by a smaller guess.
const INITIAL_RTT: Duration = Duration::from_millis(100);
/// A small datagram send buffer: stale cursor positions are dropped (oldest first) instead of queued. When congestion
/// control holds datagrams back (high RTT with loss) whatever fits here waits; netsim's cursors at 200 ms RTT and 20 %
/// loss (`netsim matrix --loss 5,10,20 --rtt 200 --scenarios cursors --transports wt --seed 1`) measured p99 latency
/// 3,157 ms with 64 KiB, 934 ms with 16 KiB and 754 ms with 8 KiB, but 8 KiB also dropped so much that the newest
/// position shown was staler (p99 1,338 ms against 977 ms). 16 KiB is still about 150 cursor updates.
const DATAGRAM_SEND_BUFFER: usize = 16 * 1024;
/// Packets a client may receive before it must acknowledge them: every ACK it sends is a packet the server decrypts and
/// processes, and in datagram fan-out they were one per two deliveries (`docs/benchmarks.md`, Round three).
const ACK_ELICITING_THRESHOLD: u32 = 9;
/// The longest a client may hold an ACK back: QUIC's default `max_ack_delay`, so loss detection keeps its timing.
const ACK_DELAY: Duration = Duration::from_millis(25);

/// The QUIC server configuration for `cert`.
pub(super) fn server_config(
    cert: &CertifiedKey,
    idle_timeout: Duration,
) -> Result<quinn::ServerConfig, WebTransportError> {
    let crypto = QuicServerConfig::try_from(cert.server_config()?).map_err(|_| WebTransportError::NoQuicCipherSuite)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport_config(idle_timeout)));
    Ok(config)
}

/// Client-opened bidirectional streams a connection may have open: the CONNECT request and the control stream, plus
/// one of slack for a client that opens the next before the last is retired.
const MAX_CLIENT_BIDI_STREAMS: u32 = 3;
/// Client-opened unidirectional streams at once: HTTP/3's control, QPACK encoder and decoder streams, plus slack for
/// grease. Our protocol uses none of its own, and any other is stopped as soon as its type is read (see
/// `http3::accept_bi`), so this bounds only streams whose header is still in flight; quinn's default of 100, each with
/// its own window, let one client make the server buffer about 125 MB.
const MAX_CLIENT_UNI_STREAMS: u32 = 6;
/// Bytes a client may send on one stream before the server reads them: a control stream's messages are consumed as
/// they arrive, so this bounds buffering, not message size.
const STREAM_RECEIVE_WINDOW: u32 = 1 << 20;
/// Bytes a client may have in flight across all its streams (quinn's default is unlimited).
const CONNECTION_RECEIVE_WINDOW: u32 = 2 << 20;

fn transport_config(idle_timeout: Duration) -> TransportConfig {
    let mut transport = TransportConfig::default();
    transport.max_concurrent_bidi_streams(MAX_CLIENT_BIDI_STREAMS.into());
    transport.max_concurrent_uni_streams(MAX_CLIENT_UNI_STREAMS.into());
    transport.stream_receive_window(STREAM_RECEIVE_WINDOW.into());
    transport.receive_window(CONNECTION_RECEIVE_WINDOW.into());
    // Out-of-range values fall back to quinn's default timeout rather than to none at all.
    if let Ok(idle) = IdleTimeout::try_from(idle_timeout) {
        transport.max_idle_timeout(Some(idle));
    }
    transport.keep_alive_interval(Some(KEEP_ALIVE.min(idle_timeout / 3)));
    transport.initial_rtt(INITIAL_RTT);
    transport.datagram_send_buffer_size(DATAGRAM_SEND_BUFFER);
    transport.ack_frequency_config(Some(ack_frequency()));
    transport
}

/// What the server asks of clients that implement QUIC's acknowledgement-frequency extension: an ACK per
/// `ACK_ELICITING_THRESHOLD` + 1 packets (or after `ACK_DELAY`), instead of one per two packets.
fn ack_frequency() -> AckFrequencyConfig {
    let mut config = AckFrequencyConfig::default();
    config.ack_eliciting_threshold(ACK_ELICITING_THRESHOLD.into());
    config.max_ack_delay(Some(ACK_DELAY));
    config
}

/// The addresses to bind for `host`. An unspecified host binds IPv6 `[::]`, which Linux makes dual-stack; IPv4
/// loopback also binds `::1` when it can, because browsers resolve `localhost` to `::1` first.
pub(super) fn bind_addresses(host: IpAddr, port: u16) -> (SocketAddr, Option<SocketAddr>) {
    match host {
        IpAddr::V4(v4) if v4.is_unspecified() => (SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port), None),
        IpAddr::V4(v4) if v4 == Ipv4Addr::LOCALHOST => {
            (SocketAddr::new(host, port), Some(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port)))
        }
        _ => (SocketAddr::new(host, port), None),
    }
}

/// Binds one endpoint on a socket with a `receive_buffer` of `SO_RCVBUF`, its packet work on `runtime`; returns it and
/// the bytes the kernel granted.
pub(super) fn bind(
    addr: SocketAddr,
    config: quinn::ServerConfig,
    receive_buffer: usize,
    runtime: Arc<dyn quinn::Runtime>,
) -> Result<(quinn::Endpoint, usize), WebTransportError> {
    let failed = |source| WebTransportError::Bind { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(failed)?;
    if let Err(error) = socket.set_recv_buffer_size(receive_buffer) {
        warn!(%error, receive_buffer, "could not set the WebTransport socket's receive buffer");
    }
    socket.bind(&addr.into()).map_err(failed)?;
    // Linux reports twice what was set (the other half is its bookkeeping): half of it is what datagrams get.
    let granted = socket.recv_buffer_size().unwrap_or(0) / 2;
    if granted < receive_buffer {
        warn!(
            asked = receive_buffer,
            granted, "the kernel capped the WebTransport receive buffer: raise net.core.rmem_max to absorb bursts"
        );
    }
    let endpoint =
        quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(config), socket.into(), runtime).map_err(failed)?;
    Ok((endpoint, granted))
}

/// Accepts connections until shutdown; each runs as a tracked task so that shutdown can wait for its close.
pub(super) async fn accept_loop(endpoint: quinn::Endpoint, context: Context) {
    loop {
        let incoming = tokio::select! {
            _ = context.shutdown.cancelled() => break,
            incoming = endpoint.accept() => incoming,
        };
        let Some(incoming) = incoming else { break };
        // Boxed: an `Incoming` is several hundred bytes, and as the task's argument its slot would last the session's life.
        context.connections.spawn(session::run(Box::new(incoming), context.clone()));
    }
    debug!(addr = ?endpoint.local_addr().ok(), "WebTransport accept loop stopped");
}

/// Renews a self-signed certificate before it expires. New connections get the new one; existing connections keep
/// the configuration they were accepted with, so no session drops.
pub(super) async fn renewal_loop(
    endpoints: Vec<quinn::Endpoint>,
    certificates: Arc<Certificates>,
    idle_timeout: Duration,
    shutdown: CancellationToken,
) {
    let Some(interval) = certificates.check_interval() else { return };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let renewed = certificates.renew_if_due().map_err(WebTransportError::from);
        let config = renewed.and_then(|cert| cert.map(|cert| server_config(&cert, idle_timeout)).transpose());
        match config {
            Ok(Some(config)) => {
                for endpoint in &endpoints {
                    endpoint.set_server_config(Some(config.clone()));
                }
                info!("WebTransport listener uses the renewed certificate");
            }
            Ok(None) => {}
            Err(error) => warn!(%error, "certificate renewal failed; will retry"),
        }
    }
}
