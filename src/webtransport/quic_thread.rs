//! A thread of its own for QUIC's packet work: the endpoint task that reads the UDP socket for every session, and each
//! session's connection driver (encryption, acknowledgements, timers).
//!
//! On the server's main runtime the one endpoint task is one task among tens of thousands of WebSocket tasks. When
//! the machine is saturated every task gets its turn, so one task's share serves thousands of sessions while each
//! WebSocket task serves one socket: the UDP socket's buffer overflowed and WebTransport pushes were lost while every
//! WebSocket push arrived (`docs/benchmarks.md`, Scale, both transports). On its own thread, the operating system's
//! scheduler gives QUIC a thread's share of the CPU however many WebSockets there are, and a saturated server slows
//! its WebSocket readers (TCP pushes back) rather than dropping datagrams.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use quinn::{AsyncTimer, AsyncUdpSocket, Runtime, TokioRuntime};
use tokio::runtime::Handle;

/// A [`quinn::Runtime`] whose tasks, timers and sockets live on a dedicated single-threaded tokio runtime.
#[derive(Debug)]
pub(super) struct QuicThread {
    handle: Handle,
}

impl QuicThread {
    /// Starts the thread. It runs until the process exits: its tasks end with their connections.
    pub(super) fn start() -> io::Result<Arc<Self>> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("driftdb-quic".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
        Ok(Arc::new(QuicThread { handle }))
    }
}

impl Runtime for QuicThread {
    fn new_timer(&self, at: Instant) -> Pin<Box<dyn AsyncTimer>> {
        let _on_this_thread = self.handle.enter();
        TokioRuntime.new_timer(at)
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        self.handle.spawn(future);
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let _on_this_thread = self.handle.enter();
        TokioRuntime.wrap_udp_socket(socket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_timers_and_sockets_live_on_the_quic_thread() {
        let quic = QuicThread::start().unwrap();
        let (sent, received) = std::sync::mpsc::channel();
        let mut timer = quic.new_timer(Instant::now() + std::time::Duration::from_millis(5));
        let socket = quic.wrap_udp_socket(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
        quic.spawn(Box::pin(async move {
            std::future::poll_fn(|cx| timer.as_mut().poll(cx)).await;
            let address = socket.local_addr().unwrap();
            sent.send((std::thread::current().name().map(str::to_owned), address)).unwrap();
        }));
        let (thread, address) = received.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        assert_eq!(thread.as_deref(), Some("driftdb-quic"));
        assert!(address.ip().is_loopback());
    }
}
