//! The HTTP/3 side of one WebTransport session: answering the CONNECT, accepting the client's streams, and closing
//! with a code.
//!
//! h3-webtransport 0.1.2's `WebTransportSession` keeps the CONNECT stream to itself, so it can neither send the
//! CLOSE_WEBTRANSPORT_SESSION capsule (the only close code a browser reports) nor finish the stream. This type does
//! what that one does (on the same h3 primitives) and keeps the CONNECT stream.

use std::future::poll_fn;
use std::time::Duration;

use bytes::Bytes;
use h3::frame::FrameStream;
use h3::proto::frame::Frame;
use h3::quic::{BidiStream as _, RecvStream as _};
use h3::stream::BufRecvStream;
use http::{Request, Response, StatusCode};
use quinn::VarInt;

use super::framing::close_session_capsule;

pub(super) type H3Connection = h3::server::Connection<h3_quinn::Connection, Bytes>;
pub(super) type H3RequestStream = h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;
/// The halves of a client-opened WebTransport stream (tokio `AsyncWrite` and `AsyncRead`).
pub(super) type StreamSend = BufRecvStream<h3_quinn::SendStream<Bytes>, Bytes>;
pub(super) type StreamRecv = BufRecvStream<h3_quinn::RecvStream, Bytes>;

/// Longest wait for the client to close after the close capsule, before the connection is closed under it.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// The STOP_SENDING code for a client's WebTransport unidirectional stream: WebTransport application error 0 (the
/// first value of the range draft-ietf-webtrans-http3 maps application codes onto), which a WebTransport client
/// reports as "stopped with code 0".
const WT_STREAM_UNUSED: u64 = 0x52e4_a40f_a8db;

/// What the client opened.
pub(super) enum Accepted {
    /// A bidirectional WebTransport stream (of this session: browsers run one session per connection).
    Stream(StreamSend, StreamRecv),
    /// Another HTTP/3 request on the same connection.
    Request(H3RequestStream),
    /// A stream that ended before saying what it was.
    Nothing,
}

/// An accepted session's CONNECT stream, open for the session's life. (The HTTP/3 connection is kept apart, by
/// whoever accepts the client's streams.)
pub(super) struct Http3Session {
    connect: H3RequestStream,
    id: u64,
}

impl Http3Session {
    /// Accepts a validated CONNECT request with 200.
    pub async fn accept(mut connect: H3RequestStream) -> Result<Self, h3::error::StreamError> {
        let response = Response::builder()
            .status(StatusCode::OK)
            // Chromium still checks for this header of the draft it implements.
            .header("sec-webtransport-http3-draft", "draft02")
            .body(())
            .expect("a static response is valid");
        connect.send_response(response).await?;
        let id = connect.send_id().into_inner();
        Ok(Http3Session { connect, id })
    }

    /// The session id: the CONNECT stream's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Tells the client why the session ends (a CLOSE_WEBTRANSPORT_SESSION capsule, which browsers report as
    /// `closeCode`/`reason`), waits a moment for it to close, then closes the QUIC connection with the same code for
    /// clients that only look there.
    pub async fn close(mut self, quic: &quinn::Connection, code: u32, reason: &str) {
        let capsule = async {
            self.connect.send_data(close_session_capsule(code, reason)).await?;
            self.connect.finish().await
        };
        if capsule.await.is_ok() {
            let grace = (quic.rtt() * 3).max(Duration::from_millis(50)).min(CLOSE_GRACE);
            let _ = tokio::time::timeout(grace, quic.closed()).await;
        }
        quic.close(VarInt::from_u32(code), reason.as_bytes());
    }
}

/// The next stream the client opens. Not cancel-safe (a stream whose first frame is still in flight would be lost):
/// keep one future alive until it completes. Every idle session keeps this future, sized for its largest state, so
/// the states after a stream arrives (h3's resolver, a request's headers) are boxed.
///
/// While it waits it also stops every WebTransport unidirectional stream the client opens: h3 accepts them (it reads
/// their type and session id) and keeps them for a session to claim, but our protocol uses none, so unstopped they
/// would hold their buffered bytes, their flow-control credit and their share of the stream limit for the
/// connection's life (see `endpoint::MAX_CLIENT_UNI_STREAMS`). h3 itself stops grease and other unknown stream types.
pub(super) async fn accept_bi(connection: &mut H3Connection) -> Result<Option<Accepted>, h3::error::StreamError> {
    let stream = poll_fn(|cx| {
        // Polling for a request also accepts the client's unidirectional streams (through the control stream).
        let polled = connection.poll_accept_request_stream(cx);
        stop_uni_streams(connection);
        polled
    })
    .await
    .map_err(h3::error::StreamError::ConnectionError)?;
    let Some(stream) = stream else { return Ok(None) };
    let mut resolver = Box::new(connection.create_resolver(FrameStream::new(BufRecvStream::new(stream))));
    // The first frame tells a WebTransport stream (its signal value and session id) from a request.
    let frame = poll_fn(|cx| resolver.frame_stream.poll_next(cx)).await;
    match frame {
        Ok(None) => Ok(Some(Accepted::Nothing)),
        Ok(Some(Frame::WebTransportStream(_session))) => {
            let (send, recv) = resolver.frame_stream.into_inner().split();
            Ok(Some(Accepted::Stream(send, recv)))
        }
        frame => {
            let (_request, stream): (Request<()>, _) =
                Box::pin((*resolver).accept_with_frame(frame)?.resolve()).await?;
            Ok(Some(Accepted::Request(stream)))
        }
    }
}

/// Stops and drops the WebTransport unidirectional streams h3 has accepted: quinn discards what they buffered, returns
/// its connection-level credit, and frees the stream for the client's next one once the client resets it.
fn stop_uni_streams(connection: &mut H3Connection) {
    for (_session, mut stream) in connection.inner.accepted_streams_mut().wt_uni_streams.drain(..) {
        stream.stop_sending(WT_STREAM_UNUSED);
    }
}
