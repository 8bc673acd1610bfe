//! The TCP accept loop of the HTTP server, with the bounds `axum::serve` does not offer: a cap on open HTTP
//! connections, a deadline for a request's headers, and a deadline for a peer that stops accepting bytes. Without
//! them a client sending one byte per 100 ms, or never reading a large reply, held its connection (and the reply's
//! memory) forever.
//!
//! HTTP/1.1 only: one request in flight per connection, so the connection cap also bounds concurrent requests (and
//! the replies they hold). Browsers speak HTTP/1.1 to a plain-HTTP server; upgraded WebSockets leave this count when
//! they upgrade (their own cap is `--max-connections`).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, warn};

/// The HTTP listener's bounds (see `LimitsConfig`).
#[derive(Clone, Copy, Debug)]
pub struct HttpBounds {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub write_stall_timeout: Duration,
}

/// What a connection over the cap is told before it is closed.
const OVER_CAPACITY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n\
content-length: 63\r\n\r\n{\"type\":\"error\",\"message\":\"too many open HTTP connections\"}\r\n";

/// Serves `app` on `listener` until `shutdown`, then lets open requests finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    bounds: HttpBounds,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let open = Arc::new(Semaphore::new(bounds.max_connections));
    let open_connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            debug!(%peer, "HTTP connection refused: at the connection cap");
            // Best effort and never waiting: the send buffer of a fresh socket takes this whole.
            let _ = tcp.try_write(OVER_CAPACITY);
            continue;
        };
        // Nagle's algorithm would hold small real-time messages back by tens of milliseconds.
        if let Err(error) = tcp.set_nodelay(true) {
            warn!(%error, "cannot set TCP_NODELAY");
        }
        let drain = DrainBeforeClose::default();
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(bounds.header_timeout)
            .serve_connection(
                TokioIo::new(ConnectionIo::new(tcp, bounds.write_stall_timeout, drain.clone())),
                service(app.clone(), peer, drain),
            )
            .with_upgrades();
        let shutdown = shutdown.clone();
        open_connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = shutdown.cancelled() => {
                    // Finish the request in flight, then close; an idle keep-alive connection closes at once.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = ended {
                debug!(%peer, %error, "HTTP connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    open_connections.close();
    if tokio::time::timeout(grace, open_connections.wait()).await.is_err() {
        warn!("some HTTP requests did not finish in time");
    }
}

/// The router, with the peer's address where axum's `ConnectInfo` extractor finds it, and the connection's
/// [`DrainBeforeClose`].
fn service(
    app: Router,
    peer: SocketAddr,
    drain: DrainBeforeClose,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future: Send,
> + Clone {
    hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(drain.clone());
        app.clone().oneshot(request.map(axum::body::Body::new))
    })
}

/// Asks a connection to read its remaining input away before it closes (see [`ConnectionIo`]). Handlers find it in
/// the request's extensions.
#[derive(Clone, Debug, Default)]
pub struct DrainBeforeClose(Arc<AtomicBool>);

impl DrainBeforeClose {
    /// When the connection is dropped, its unread input is read and thrown away (bounded by [`DRAIN_TIMEOUT`]).
    pub fn request(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn requested(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Longest a closed connection spends reading away input its peer was still sending.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A TCP stream with the two controls the server needs below HTTP and WebSocket framing:
/// - a write the peer has not let through for `timeout` fails, so a reader that never reads cannot hold its
///   connection, and the reply queued for it, beyond that;
/// - when [`DrainBeforeClose::request`] was called, dropping it sends a FIN and reads the peer's remaining input away
///   before closing. A socket closed with unread input is reset, and the reset destroys what the peer had not read
///   yet: our close frame. Draining lets a WebSocket client that sent a message far over the limit read its 1009.
struct ConnectionIo {
    /// Always present; taken only by `Drop`, to drain it.
    inner: Option<TcpStream>,
    timeout: Duration,
    /// Armed while a write is pending; reset once one goes through.
    stalled_since: Option<Pin<Box<Sleep>>>,
    drain: DrainBeforeClose,
}

impl ConnectionIo {
    fn new(inner: TcpStream, timeout: Duration, drain: DrainBeforeClose) -> Self {
        ConnectionIo { inner: Some(inner), timeout, stalled_since: None, drain }
    }

    fn tcp(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.inner.as_mut().expect("the stream is only taken on drop"))
    }

    /// Polls a write-side operation, failing it once the peer has accepted nothing for the timeout.
    fn guard<T>(&mut self, cx: &mut Context<'_>, poll: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if poll.is_ready() {
            self.stalled_since = None;
            return poll;
        }
        let timeout = self.timeout;
        let deadline = self.stalled_since.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(deadline.as_mut().poll(cx));
        Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the peer stopped accepting bytes")))
    }
}

impl AsyncRead for ConnectionIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        self.tcp().poll_read(cx, buf)
    }
}

impl Drop for ConnectionIo {
    fn drop(&mut self) {
        let (Some(mut tcp), true) = (self.inner.take(), self.drain.requested()) else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let drain = async {
                // Our FIN tells the peer we are done; it answers with its own once it has read our close frame.
                tcp.shutdown().await?;
                let mut scratch = [0u8; 16 * 1024];
                while tcp.read(&mut scratch).await? > 0 {}
                std::io::Result::Ok(())
            };
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
        });
    }
}

impl AsyncWrite for ConnectionIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let poll = self.tcp().poll_write(cx, buf);
        self.guard(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = self.tcp().poll_write_vectored(cx, bufs);
        self.guard(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(TcpStream::is_write_vectored)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = self.tcp().poll_flush(cx);
        self.guard(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.tcp().poll_shutdown(cx)
    }
}
