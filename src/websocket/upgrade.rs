//! The WebSocket upgrade, done here rather than by axum's `WebSocketUpgrade`, so that the socket it hands over is
//! tungstenite's own stream.
//!
//! axum 0.8's `Message` has no `Frame` variant (its conversion drops tungstenite's) and its `WebSocket` keeps the
//! tungstenite stream private, so through axum a message can only be sent as one frame. tungstenite copies a whole
//! frame into its write buffer, so a reader that stops reading pins a whole large message there; sent as a fragmented
//! message (see `socket`), it pins a few frames. The handshake is the one axum does (RFC 6455 section 4.2 over
//! HTTP/1.1, the only version the listener serves), with the same configuration knobs.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::{Role, WebSocketConfig};

/// An upgraded WebSocket.
pub type WebSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// A request to upgrade to a WebSocket, checked and ready to answer with 101.
pub struct WebSocketUpgrade {
    config: WebSocketConfig,
    key: HeaderValue,
    on_upgrade: hyper::upgrade::OnUpgrade,
}

/// Why a request cannot be upgraded, with the status axum answers for the same case.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeRejection {
    #[error("request method must be `GET`")]
    MethodNotGet,
    #[error("connection header did not include 'upgrade'")]
    NoConnectionUpgrade,
    #[error("`Upgrade` header did not include 'websocket'")]
    NoUpgradeWebsocket,
    #[error("`Sec-WebSocket-Key` header missing")]
    NoKey,
    #[error("`Sec-WebSocket-Version` header did not include '13'")]
    BadVersion,
    #[error("WebSocket request couldn't be upgraded since no upgrade state was present")]
    NotUpgradable,
}

impl IntoResponse for UpgradeRejection {
    fn into_response(self) -> Response {
        let status = match self {
            UpgradeRejection::MethodNotGet => StatusCode::METHOD_NOT_ALLOWED,
            UpgradeRejection::NotUpgradable => StatusCode::UPGRADE_REQUIRED,
            _ => StatusCode::BAD_REQUEST,
        };
        (status, self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = UpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if parts.method != Method::GET {
            return Err(UpgradeRejection::MethodNotGet);
        }
        if !header_contains(&parts.headers, header::CONNECTION, "upgrade") {
            return Err(UpgradeRejection::NoConnectionUpgrade);
        }
        if !header_eq(&parts.headers, header::UPGRADE, "websocket") {
            return Err(UpgradeRejection::NoUpgradeWebsocket);
        }
        let key = parts.headers.get(header::SEC_WEBSOCKET_KEY).ok_or(UpgradeRejection::NoKey)?.clone();
        if !header_eq(&parts.headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(UpgradeRejection::BadVersion);
        }
        let on_upgrade =
            parts.extensions.remove::<hyper::upgrade::OnUpgrade>().ok_or(UpgradeRejection::NotUpgradable)?;
        Ok(WebSocketUpgrade { config: WebSocketConfig::default(), key, on_upgrade })
    }
}

impl WebSocketUpgrade {
    /// The largest message read, in bytes.
    pub fn max_message_size(mut self, max: usize) -> Self {
        self.config.max_message_size = Some(max);
        self
    }

    /// The largest frame read, in bytes.
    pub fn max_frame_size(mut self, max: usize) -> Self {
        self.config.max_frame_size = Some(max);
        self
    }

    /// The read buffer's size, in bytes.
    pub fn read_buffer_size(mut self, size: usize) -> Self {
        self.config.read_buffer_size = size;
        self
    }

    /// Answers 101 and runs `callback` on the socket once hyper hands the connection over.
    pub fn on_upgrade<F, Fut>(self, callback: F) -> Response
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let WebSocketUpgrade { config, key, on_upgrade } = self;
        tokio::spawn(async move {
            // A client that goes before the upgrade completes leaves nothing to serve.
            let Ok(upgraded) = on_upgrade.await else { return };
            let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
            callback(socket).await;
        });
        let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes())).expect("base64 is a valid header");
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
            .header(header::UPGRADE, HeaderValue::from_static("websocket"))
            .header(header::SEC_WEBSOCKET_ACCEPT, accept)
            .body(axum::body::Body::empty())
            .expect("a static response is valid")
    }
}

fn header_eq(headers: &HeaderMap, key: HeaderName, value: &'static str) -> bool {
    headers.get(&key).is_some_and(|header| header.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

fn header_contains(headers: &HeaderMap, key: HeaderName, value: &'static str) -> bool {
    headers
        .get(&key)
        .and_then(|header| header.to_str().ok())
        .is_some_and(|header| header.to_ascii_lowercase().contains(value))
}
