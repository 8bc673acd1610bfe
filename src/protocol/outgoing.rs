//! A server message on its way to one or many recipients.
//!
//! The message is built once and shared (`Arc`) by every subscriber's queue; each wire format's bytes are produced
//! lazily, the first time a recipient using that format needs them, and then reused by all others.

use std::sync::{Arc, OnceLock};

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;

use super::{ServerMessage, postcard, tree};

/// The encodings a recipient may want.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireFormat {
    Json,
    Cbor,
    Postcard,
}

/// A shared, lazily encoded server message. Cloning is a reference-count increment.
#[derive(Clone)]
pub struct Outgoing(Arc<Inner>);

struct Inner {
    message: ServerMessage,
    size: usize,
    // JSON is kept as `Utf8Bytes` so that a WebSocket text frame is a cheap clone, not a copy plus UTF-8 check.
    json: OnceLock<Utf8Bytes>,
    cbor: OnceLock<Bytes>,
    postcard: OnceLock<Bytes>,
}

impl Outgoing {
    pub fn new(message: ServerMessage) -> Self {
        let size = message.approx_size();
        Outgoing(Arc::new(Inner {
            message,
            size,
            json: OnceLock::new(),
            cbor: OnceLock::new(),
            postcard: OnceLock::new(),
        }))
    }

    pub fn message(&self) -> &ServerMessage {
        &self.0.message
    }

    /// Approximate encoded size, for byte-bounded queues.
    pub fn size(&self) -> usize {
        self.0.size
    }

    /// The key of a volatile relay, which may be dropped for a reader that is behind.
    pub fn volatile_key(&self) -> Option<&str> {
        match &self.0.message {
            ServerMessage::Push { key, volatile: true, .. } => Some(key),
            _ => None,
        }
    }

    pub fn json(&self) -> &Utf8Bytes {
        self.0.json.get_or_init(|| Utf8Bytes::from(tree::encode_json(&self.0.message)))
    }

    pub fn cbor(&self) -> &Bytes {
        self.0.cbor.get_or_init(|| Bytes::from(tree::encode_cbor(&self.0.message)))
    }

    /// The postcard encoding, without framing (a datagram carries it as is; the control stream adds a length).
    pub fn postcard(&self) -> &Bytes {
        self.0.postcard.get_or_init(|| Bytes::from(postcard::encode_server(&self.0.message)))
    }

    /// The bytes of this message in `format`.
    pub fn encoded(&self, format: WireFormat) -> Bytes {
        match format {
            WireFormat::Json => Bytes::from(self.json().clone()),
            WireFormat::Cbor => self.cbor().clone(),
            WireFormat::Postcard => self.postcard().clone(),
        }
    }
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.message.fmt(f)
    }
}
