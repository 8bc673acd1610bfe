//! Establishing one WebTransport session: HTTP/3 over the QUIC connection; the CONNECT request validated and
//! admitted before anything is accepted (a refusal is a real HTTP status); then the client's SETTINGS awaited,
//! bounded, so that a session is only accepted once the client has declared WebTransport support (under loss
//! SETTINGS often arrive after the CONNECT).

use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;

use h3::ConnectionState;
use http::{Response, StatusCode};

use super::http3::{H3Connection, H3RequestStream, Http3Session};
use super::request::{self, Refusal, Target};
use crate::auth;
use crate::close::CloseReason;
use crate::cluster::Route;
use crate::context::ServerContext;
use crate::driver::{self, Attachment};
use crate::metrics::Transport;

/// Longest wait for the client's SETTINGS once its CONNECT request has arrived.
const SETTINGS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a refused client gets to read its status before the connection goes.
const REFUSAL_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub(super) enum SetupError {
    #[error("QUIC handshake failed: {0}")]
    Handshake(#[from] quinn::ConnectionError),
    #[error("HTTP/3 connection failed: {0}")]
    Connection(#[from] h3::error::ConnectionError),
    #[error("HTTP/3 request failed: {0}")]
    Stream(#[from] h3::error::StreamError),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("the client closed the connection, or sent only other requests, before a session request")]
    NoRequest,
    #[error("refused with {0}: {1}")]
    Refused(StatusCode, String),
}

/// An accepted session, attached to its room or refused by a limit.
pub(super) struct Established {
    pub session: Http3Session,
    /// Boxed: it is moved down the session's layers and kept for its life (about 1.7 KB).
    pub h3: Box<H3Connection>,
    pub quic: quinn::Connection,
    pub target: Target,
    /// The room connection, or the limit that refused it. As on the WebSocket, a browser never sees the status of
    /// a refused CONNECT (Chromium reports a bare QUIC error), but it does see a session's close code: so a limit
    /// accepts the session, to close it at once with the limit's code, the same number a WebSocket client gets.
    pub admitted: Result<Attachment, CloseReason>,
}

/// Runs the handshake, the CONNECT request and the SETTINGS exchange of one incoming connection.
pub(super) async fn establish(
    incoming: quinn::Incoming,
    context: &ServerContext,
) -> Result<Box<Established>, SetupError> {
    let quic = incoming.await?;
    let mut h3 = h3::server::builder()
        .enable_webtransport(true)
        .enable_extended_connect(true)
        .enable_datagram(true)
        .max_webtransport_sessions(1)
        .send_grease(true)
        .build(h3_quinn::Connection::new(quic.clone()))
        .await?;
    // One deadline for the request stream and its headers, the HTTP listener's header timeout: a client that opens
    // the stream and never sends the HEADERS frame must not hold this task and its connection forever.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(context.config.limits.http_header_timeout_ms);
    let (request, stream, target) = next_session_request(&mut h3, &quic, deadline).await?;
    let admitted = match context.route(&target.room).await {
        // As on the WebSocket: a room no node can serve right now (its owner's lease is running out, NATS is gone)
        // is told after the session is up, with 1001, so that the client simply reconnects.
        Err(error) => {
            tracing::debug!(room = %target.room, %error, "no node serves the room now");
            Err(CloseReason::GoingAway)
        }
        Ok(route) => match admit(&request, &quic, &target, context, route) {
            Ok(request) => driver::attach(context, request, Transport::Webtransport).await,
            Err(Refused::Status(status, why)) => return Err(refuse(stream, &quic, status, why).await),
            Err(Refused::Limit(reason)) => Err(reason),
        },
    };
    wait_for_webtransport_settings(&mut h3).await?;
    let session = Http3Session::accept(stream).await?;
    Ok(Box::new(Established { session, h3: Box::new(h3), quic, target, admitted }))
}

/// Requests on one connection before its session's CONNECT that are answered (or reset) and passed over; past this
/// the connection is closed. The stream limit (see `endpoint`) and the deadline bound them too.
const MAX_PASSED_REQUESTS: usize = 8;

/// The connection's first valid session request, within `deadline`.
///
/// A request that is not a WebTransport CONNECT is answered 400 on its own stream and the connection waits for the
/// next: an HTTP/3 connection may carry other requests, and one of them must not cost the others. One case cannot be
/// answered: h3 0.0.8 parses `:protocol` into its `Protocol` type, which knows only `webtransport` and `connect-udp`
/// (`h3::ext::Protocol::from_str`), so any other value (RFC 9220's `websocket` among them) makes the whole header
/// block malformed. `ResolvedRequest::resolve` then resets the request stream with H3_MESSAGE_ERROR, as RFC 9114
/// section 4.1.2 asks of a malformed request, and returns only the error: the stream is consumed, and h3's QPACK
/// decoder is private, so the headers cannot be read (nor a 400 sent) before h3 sees them. Such a request is passed
/// over like an answered one, and the connection stays. (hyperium/h3 pull request 236 would add `websocket`.)
async fn next_session_request(
    h3: &mut H3Connection,
    quic: &quinn::Connection,
    deadline: tokio::time::Instant,
) -> Result<(http::Request<()>, H3RequestStream, Target), SetupError> {
    for _ in 0..=MAX_PASSED_REQUESTS {
        let resolver = tokio::time::timeout_at(deadline, h3.accept())
            .await
            .map_err(|_| SetupError::Timeout("the CONNECT request"))??
            .ok_or(SetupError::NoRequest)?;
        let resolved = tokio::time::timeout_at(deadline, resolver.resolve_request())
            .await
            .map_err(|_| SetupError::Timeout("the CONNECT request's headers"))?;
        let (request, stream) = match resolved {
            Ok(resolved) => resolved,
            // Errors of this request's stream alone (h3 has reset it or answered it): the connection is fine.
            Err(
                h3::error::StreamError::StreamError { .. }
                | h3::error::StreamError::RemoteTerminate { .. }
                | h3::error::StreamError::HeaderTooBig { .. },
            ) => continue,
            Err(error) => return Err(error.into()),
        };
        match request::validate(&request) {
            Ok(target) => return Ok((request, stream, target)),
            Err(Refusal::NotWebTransport) => {
                let _ = tokio::time::timeout_at(deadline, respond(stream, Refusal::NotWebTransport.status())).await;
            }
            Err(refusal) => return Err(refuse(stream, quic, refusal.status(), refusal.to_string()).await),
        }
    }
    Err(SetupError::NoRequest)
}

/// Why a session request is refused.
enum Refused {
    /// Answered with this HTTP status (origin, token).
    Status(StatusCode, String),
    /// A limit: the session is accepted and closed with the limit's code (see [`Established::admitted`]).
    Limit(CloseReason),
}

/// Applies the same admission rules as the WebSocket (origin, token, connect rate); the room's own limits are
/// applied when the session is [attached](driver::attach).
fn admit(
    request: &http::Request<()>,
    quic: &quinn::Connection,
    target: &Target,
    context: &ServerContext,
    route: Route,
) -> Result<driver::Request, Refused> {
    let origin = request.headers().get(http::header::ORIGIN).and_then(|v| v.to_str().ok());
    context
        .admission
        .check_origin(origin)
        .map_err(|refused| Refused::Status(StatusCode::FORBIDDEN, refused.to_string()))?;
    let token = auth::request_token(request.headers(), request.uri().query());
    let grant = context
        .auth
        .admit(token, &target.room, target.debug)
        .map_err(|refusal| Refused::Status(refusal.status(), refusal.to_string()))?;
    context.admission.check_connect_rate(quic.remote_address().ip()).map_err(Refused::Limit)?;
    let token = token.map(str::to_owned);
    Ok(driver::Request { room: target.room.clone(), debug: target.debug, token, grant, route })
}

/// Answers the CONNECT with `status`, gives the client a moment to read it, and says why in the error.
async fn refuse(stream: H3RequestStream, quic: &quinn::Connection, status: StatusCode, why: String) -> SetupError {
    respond(stream, status).await;
    // Closing now would discard the response before it is sent: let the client read it and leave.
    let _ = tokio::time::timeout(REFUSAL_GRACE, quic.closed()).await;
    SetupError::Refused(status, why)
}

/// Answers a request with `status` and ends its stream.
pub(super) async fn respond(mut stream: H3RequestStream, status: StatusCode) {
    let response = Response::builder().status(status).body(()).expect("a status-only response is valid");
    if stream.send_response(response).await.is_ok() {
        let _ = stream.finish().await;
    }
}

/// Drives the HTTP/3 control stream until the client's SETTINGS enable WebTransport (defect 1 of the notes).
async fn wait_for_webtransport_settings(h3: &mut H3Connection) -> Result<(), SetupError> {
    let settled = poll_fn(|cx| {
        loop {
            if h3.settings().enable_webtransport() {
                return Poll::Ready(Ok(()));
            }
            match h3.inner.poll_control(cx) {
                // Any frame before SETTINGS is a protocol error h3 reports itself; later ones are not ours to use.
                Poll::Ready(Ok(_frame)) => continue,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
    });
    tokio::time::timeout(SETTINGS_TIMEOUT, settled)
        .await
        .map_err(|_| SetupError::Timeout("the client's SETTINGS"))??;
    Ok(())
}
