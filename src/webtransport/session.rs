//! One WebTransport session, from the QUIC handshake to the room connection's end.
//!
//! Establishing: HTTP/3 over the QUIC connection; the CONNECT request validated and admitted before anything is
//! accepted (a refusal is a real HTTP status); then the client's SETTINGS awaited, bounded, so that a session is only
//! accepted once the client has declared WebTransport support (under loss SETTINGS often arrive after the CONNECT).
//! Serving: one task drives the session (the pinned stream-accept future, datagrams, the end of the reader and
//! writer); a reader task decodes the control stream into the engine; a writer task drains the outbox.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use h3::ConnectionState;
use http::{Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::framing::{self, FrameDecoder};
use super::http3::{self, Accepted, H3Connection, H3RequestStream, Http3Session};
use super::request::{self, Target};
use super::writer::Writer;
use crate::admission::{Admission, MessageRate};
use crate::auth::{self, Access, Auth};
use crate::close::CloseReason;
use crate::config::LimitsConfig;
use crate::engine::{Connection, Outbox, Rooms};
use crate::metrics::{ConnectionMetrics, MessageKind, Metrics, Transport};
use crate::protocol::{Action, ClientMessage, postcard_envelope};

/// Longest wait for the CONNECT request after the QUIC handshake.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the client's SETTINGS once its CONNECT request has arrived.
const SETTINGS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a refused client gets to read its status before the connection goes.
const REFUSAL_GRACE: Duration = Duration::from_secs(2);
/// How long a closing writer may take (it never waits on a stalled peer for more than this).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// QUIC application close code of a session the client ended with a goodbye (as WebSocket's normal closure).
const GOODBYE_CODE: u32 = 1000;

/// What every session needs from the server.
pub(super) struct SessionContext {
    pub rooms: Arc<Rooms>,
    pub admission: Arc<Admission>,
    pub auth: Arc<Auth>,
    pub metrics: Arc<Metrics>,
    pub limits: LimitsConfig,
    pub max_message_bytes: usize,
    pub outbox_bytes: usize,
    pub shutdown: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("QUIC handshake failed: {0}")]
    Handshake(#[from] quinn::ConnectionError),
    #[error("HTTP/3 connection failed: {0}")]
    Connection(#[from] h3::error::ConnectionError),
    #[error("HTTP/3 request failed: {0}")]
    Stream(#[from] h3::error::StreamError),
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("the client closed the connection before a request")]
    NoRequest,
    #[error("refused with {0}: {1}")]
    Refused(StatusCode, String),
}

/// How a session's reading side ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client said goodbye.
    Goodbye,
    /// The connection or the control stream went away.
    Gone,
    /// The client broke a limit (message size, message rate).
    Limit(CloseReason),
    /// The writer stopped: with the reason to close with (server shutdown, slow consumer), or `None` when the
    /// connection failed.
    Writer(Option<CloseReason>),
}

/// Serves one incoming QUIC connection: at most one session.
pub(super) async fn run(incoming: quinn::Incoming, context: Arc<SessionContext>) {
    let started = Instant::now();
    let remote = incoming.remote_address();
    // A session still being set up when the server stops is dropped at once rather than holding shutdown up.
    let established = tokio::select! {
        established = establish(incoming, &context) => established,
        _ = context.shutdown.cancelled() => return,
    };
    match established {
        Ok(established) => {
            let room = established.target.room.clone();
            debug!(%remote, %room, setup_ms = started.elapsed().as_secs_f64() * 1e3, "session up");
            serve(established, &context).await;
        }
        Err(error) => debug!(%remote, %error, "WebTransport session not established"),
    }
}

/// A session accepted and attached to its room.
struct Established {
    session: Http3Session,
    h3: H3Connection,
    quic: quinn::Connection,
    target: Target,
    connection: Connection,
    access: Access,
}

async fn establish(incoming: quinn::Incoming, context: &SessionContext) -> Result<Established, SetupError> {
    let quic = incoming.await?;
    let mut h3 = h3::server::builder()
        .enable_webtransport(true)
        .enable_extended_connect(true)
        .enable_datagram(true)
        .max_webtransport_sessions(1)
        .send_grease(true)
        .build(h3_quinn::Connection::new(quic.clone()))
        .await?;
    // One deadline for the request stream and its headers: a client that opens the stream and never sends the
    // HEADERS frame must not hold this task and its connection forever.
    let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
    let resolver = tokio::time::timeout_at(deadline, h3.accept())
        .await
        .map_err(|_| SetupError::Timeout("the CONNECT request"))??
        .ok_or(SetupError::NoRequest)?;
    let (request, stream) = tokio::time::timeout_at(deadline, resolver.resolve_request())
        .await
        .map_err(|_| SetupError::Timeout("the CONNECT request's headers"))??;
    let admitted = request::validate(&request)
        .map_err(|refusal| Refused { status: refusal.status(), why: refusal.to_string(), limit: None })
        .and_then(|target| admit(&request, &quic, &target, context).map(|connection| (target, connection)));
    let (target, (connection, access)) = match admitted {
        Ok(admitted) => admitted,
        Err(refused) => {
            match refused.limit {
                // As on the WebSocket: a browser never sees the status of a refused CONNECT (Chromium reports a
                // bare QUIC error), but it does see a session's close code. So a limit accepts the session and
                // closes it at once with the limit's code, the same number a WebSocket client gets.
                Some(limit) => {
                    context.metrics.closed(limit);
                    wait_for_webtransport_settings(&mut h3).await?;
                    let session = Http3Session::accept(stream).await?;
                    session.close(&quic, limit.code().into(), limit.text()).await;
                }
                None => {
                    refuse(stream, refused.status).await;
                    // Closing now would discard the response before it is sent: let the client read it and leave.
                    let _ = tokio::time::timeout(REFUSAL_GRACE, quic.closed()).await;
                }
            }
            return Err(SetupError::Refused(refused.status, refused.why));
        }
    };
    wait_for_webtransport_settings(&mut h3).await?;
    let session = Http3Session::accept(stream).await?;
    Ok(Established { session, h3, quic, target, connection, access })
}

/// Why a session request is refused.
struct Refused {
    status: StatusCode,
    why: String,
    /// The limit it hit, counted in the close metrics like a refused WebSocket.
    limit: Option<CloseReason>,
}

/// Applies the same admission rules as the WebSocket (origin, token, connect rate, room and server limits) and
/// attaches the session to its room. The status is what a refused CONNECT answers; a limit's is only logged, since the
/// session is accepted and closed with the limit's code instead (see `establish`).
fn admit(
    request: &http::Request<()>,
    quic: &quinn::Connection,
    target: &Target,
    context: &SessionContext,
) -> Result<(Connection, Access), Refused> {
    let origin = request.headers().get(http::header::ORIGIN).and_then(|v| v.to_str().ok());
    context.admission.check_origin(origin).map_err(|refused| Refused {
        status: StatusCode::FORBIDDEN,
        why: refused.to_string(),
        limit: None,
    })?;
    let limited = |reason: CloseReason| {
        let status = match reason {
            CloseReason::TooManyRooms | CloseReason::StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::TOO_MANY_REQUESTS,
        };
        Refused { status, why: reason.text().to_owned(), limit: Some(reason) }
    };
    let token = auth::request_token(request.headers(), request.uri().query());
    let grant = context.auth.admit(token, &target.room, target.debug).map_err(|refusal| Refused {
        status: refusal.status(),
        why: refusal.to_string(),
        limit: None,
    })?;
    context.admission.check_connect_rate(quic.remote_address().ip()).map_err(limited)?;
    let outbox = Arc::new(Outbox::new(context.outbox_bytes));
    let connection = context.rooms.connect(&target.room, outbox, target.debug).map_err(limited)?;
    Ok((connection, Access::new(context.auth.clone(), target.room.clone(), target.debug, grant)))
}

/// Answers a request with `status` and ends its stream.
async fn refuse(mut stream: H3RequestStream, status: StatusCode) {
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

/// Attaches the session to its room and runs it until it ends.
async fn serve(established: Established, context: &SessionContext) {
    let Established { session, h3, quic, target, connection, access } = established;
    let outbox = connection.outbox().clone();
    let metrics = Arc::new(context.metrics.connection(Transport::Webtransport));
    connection.set_transport(Transport::Webtransport);
    let inbound = Arc::new(Inbound {
        connection: Arc::new(connection),
        access,
        max_message_bytes: context.max_message_bytes,
        rate: MessageRate::new(&context.limits),
        metrics: metrics.clone(),
    });
    let session_stream = session.id();

    let (control_tx, control_rx) = oneshot::channel();
    let writer = Writer {
        quic: quic.clone(),
        outbox: outbox.clone(),
        shutdown: context.shutdown.clone(),
        datagram_prefix: framing::datagram_prefix(session_stream).freeze(),
        metrics: metrics.clone(),
    };
    let mut writer = tokio::spawn(writer.run(control_rx));
    let (end_tx, mut end_rx) = mpsc::channel(1);
    let mut control_tx = Some(control_tx);
    let mut reader = None;

    // Accepting streams is not cancel-safe: one pinned future lives across iterations and is re-armed only when it
    // completes. It owns the HTTP/3 connection meanwhile and hands it back with its result.
    let mut accept = Box::pin(accept_next(h3));
    let mut expired = Box::pin(inbound.access.expired());
    let end = loop {
        tokio::select! {
            (h3, accepted) = &mut accept => {
                match accepted {
                    Ok(Some(Accepted::Stream(send, recv))) => match control_tx.take() {
                        Some(tx) => {
                            let _ = tx.send(send);
                            reader = Some(tokio::spawn(read_control(recv, inbound.clone(), end_tx.clone())));
                        }
                        None => debug!("ignoring an extra bidirectional stream"),
                    },
                    // Browsers open one session per connection; a second one is not served here.
                    Ok(Some(Accepted::Request(stream))) => drop(tokio::spawn(refuse(stream, StatusCode::TOO_MANY_REQUESTS))),
                    Ok(Some(Accepted::Nothing)) => {}
                    Ok(None) | Err(_) => break End::Gone,
                }
                accept = Box::pin(accept_next(h3));
            }
            datagram = quic.read_datagram() => match datagram {
                Ok(datagram) => if let Some(end) = inbound.datagram(datagram, session_stream) {
                    break end;
                },
                Err(_) => break End::Gone,
            },
            Some(end) = end_rx.recv() => break end,
            reason = &mut writer => break End::Writer(reason.ok().flatten()),
            () = &mut expired => break End::Limit(CloseReason::TokenExpired),
        }
    };
    if let Some(reason) = closing_reason(end, &outbox, writer).await {
        metrics.metrics().closed(reason);
        session.close(&quic, u32::from(reason.code()), reason.text()).await;
    } else if end == End::Goodbye {
        session.close(&quic, GOODBYE_CODE, "goodbye").await;
    }
    // The HTTP/3 connection lives in the accept future: keep it until the close is sent.
    drop(accept);
    if let Some(reader) = reader {
        reader.abort();
        let _ = reader.await;
    }
    // The last handle of the room connection goes here: the room forgets this session now.
    drop(expired);
    drop(inbound);
    info!(room = %target.room, ?end, "WebTransport session ended");
}

/// Runs [`http3::accept_bi`] on an owned connection and gives it back, so the future can be re-armed.
async fn accept_next(mut h3: H3Connection) -> (H3Connection, Result<Option<Accepted>, h3::error::StreamError>) {
    let accepted = http3::accept_bi(&mut h3).await;
    (h3, accepted)
}

/// Stops the writer and returns the reason to close the session with, if any.
async fn closing_reason(end: End, outbox: &Outbox, mut writer: JoinHandle<Option<CloseReason>>) -> Option<CloseReason> {
    match end {
        End::Limit(reason) => {
            // Nothing more is queued; the writer stops at once.
            outbox.close(reason);
            if tokio::time::timeout(CLOSE_TIMEOUT, &mut writer).await.is_err() {
                writer.abort();
            }
            Some(reason)
        }
        End::Writer(reason) => reason,
        End::Goodbye | End::Gone => {
            writer.abort();
            None
        }
    }
}

/// What the readers of a session (control stream and datagrams) share.
struct Inbound {
    connection: Arc<Connection>,
    access: Access,
    max_message_bytes: usize,
    rate: MessageRate,
    metrics: Arc<ConnectionMetrics>,
}

impl Inbound {
    /// Counts one message against the rate limit and the metrics, then hands it to the engine. `Some` when the
    /// session should end.
    fn receive(&self, bytes: &[u8], datagram: bool) -> Option<End> {
        if let Err(reason) = self.rate.check() {
            return Some(End::Limit(reason));
        }
        self.handle(bytes, datagram)
    }

    /// Decodes one counted message and hands it to the engine (or answers its error).
    fn handle(&self, bytes: &[u8], datagram: bool) -> Option<End> {
        let decoded = postcard_envelope::decode_client(bytes);
        self.metrics.received(MessageKind::of(&decoded), bytes.len());
        match decoded {
            Ok(ClientMessage::Goodbye) if !datagram => return Some(End::Goodbye),
            Ok(message @ ClientMessage::Push { action: Action::Relay, volatile: true, .. }) => {
                self.access.dispatch(&self.connection, message)
            }
            Ok(_) if datagram => {
                self.connection.send_error("only volatile relay pushes may travel as datagrams".into())
            }
            Ok(message) => self.access.dispatch(&self.connection, message),
            Err(error) => self.connection.send_error(error.to_string()),
        }
        None
    }

    /// One datagram: a volatile relay for this session. Anything else is answered with an error on the control
    /// stream.
    fn datagram(&self, datagram: Bytes, session_stream: u64) -> Option<End> {
        // Counted before anything is answered: each malformed datagram costs the server an `error` on the reliable
        // stream, so a flood of them must hit the rate limit like any other message.
        if let Err(reason) = self.rate.check() {
            return Some(End::Limit(reason));
        }
        let Some((stream, payload)) = framing::split_datagram(datagram) else {
            self.connection.send_error("malformed datagram".into());
            return None;
        };
        // Datagrams of another session on this connection are not ours (browsers run one session per connection).
        if stream != session_stream {
            return None;
        }
        self.handle(&payload, true)
    }
}

/// Reads length-prefixed postcard messages from the control stream into the engine until the stream ends, the
/// client says goodbye or breaks a limit; reports how it ended on `end`.
async fn read_control(mut recv: impl AsyncRead + Unpin, inbound: Arc<Inbound>, end: mpsc::Sender<End>) {
    let decoder = FrameDecoder::new(inbound.max_message_bytes);
    // Starts small (most sessions are idle); `read_buf` grows it when a frame needs more.
    let mut buf = BytesMut::with_capacity(1024);
    let outcome = loop {
        match next_frames(&decoder, &mut buf, &inbound) {
            Some(outcome) => break outcome,
            None => match recv.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break End::Gone,
                Ok(_) => {}
            },
        }
    };
    let _ = end.send(outcome).await;
}

/// Handles every complete frame in `buf`; `Some` when the session should end.
fn next_frames(decoder: &FrameDecoder, buf: &mut BytesMut, inbound: &Inbound) -> Option<End> {
    loop {
        match decoder.next_frame(buf) {
            Ok(Some(frame)) => {
                if let Some(end) = inbound.receive(&frame, false) {
                    return Some(end);
                }
            }
            Ok(None) => return None,
            // A malformed length is one that does not fit 63 bits: too big either way.
            Err(_) => return Some(End::Limit(CloseReason::MessageTooBig)),
        }
    }
}
