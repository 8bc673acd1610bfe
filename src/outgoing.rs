//! A server message on its way to one or many recipients.
//!
//! The message is built once and shared (`Arc`) by every subscriber's queue; each wire format's bytes are produced
//! lazily, the first time a recipient using that format needs them, and then reused by all others. A message that
//! differs by [`Dialect`] (an `init`, a volatile `push`) has a second variant per format, also encoded at most once.

use std::sync::{Arc, OnceLock, Weak};

use axum::extract::ws::Utf8Bytes;
use bytes::{Bytes, BytesMut};

use crate::protocol::{Dialect, ServerMessage, json_cbor, postcard_envelope};

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

/// A handle on an [`Outgoing`] that does not keep it alive: a cache of a message that should go with its last
/// recipient (see [`Outgoing::downgrade`]).
#[derive(Clone, Default)]
pub struct WeakOutgoing(Weak<Inner>);

impl WeakOutgoing {
    /// The message, if a queue or a write still holds it.
    pub fn upgrade(&self) -> Option<Outgoing> {
        self.0.upgrade().map(Outgoing)
    }
}

struct Inner {
    message: ServerMessage,
    size: usize,
    // JSON is kept as `Utf8Bytes` so that a WebSocket text frame is a cheap clone, not a copy plus UTF-8 check.
    json: Variants<Utf8Bytes>,
    cbor: Variants<Bytes>,
    /// WebTransport is ours alone: its clients always get the extended shapes.
    postcard: OnceLock<Bytes>,
    /// The datagram of a session on stream 0 (prefix, then postcard): see [`Outgoing::datagram`].
    first_session_datagram: OnceLock<Bytes>,
}

/// One wire format's encodings of a message, per dialect.
struct Variants<T> {
    extended: OnceLock<T>,
    /// Used only by messages that differ by dialect; the others share `extended` (the bytes are the same).
    reference: OnceLock<T>,
}

impl<T> Variants<T> {
    fn new() -> Self {
        Variants { extended: OnceLock::new(), reference: OnceLock::new() }
    }

    fn get(&self, message: &ServerMessage, dialect: Dialect, encode: impl FnOnce(&ServerMessage, Dialect) -> T) -> &T {
        let dialect = if message.differs_by_dialect() { dialect } else { Dialect::Extended };
        let cell = match dialect {
            Dialect::Extended => &self.extended,
            Dialect::Reference => &self.reference,
        };
        cell.get_or_init(|| encode(message, dialect))
    }
}

impl Outgoing {
    pub fn new(message: ServerMessage) -> Self {
        let size = message.approx_size();
        Outgoing(Arc::new(Inner {
            message,
            size,
            json: Variants::new(),
            cbor: Variants::new(),
            postcard: OnceLock::new(),
            first_session_datagram: OnceLock::new(),
        }))
    }

    /// A handle that finds this message again while someone holds it, without holding it itself.
    pub fn downgrade(&self) -> WeakOutgoing {
        WeakOutgoing(Arc::downgrade(&self.0))
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

    pub fn json(&self, dialect: Dialect) -> &Utf8Bytes {
        self.0.json.get(&self.0.message, dialect, |m, d| Utf8Bytes::from(json_cbor::encode_json(m, d)))
    }

    pub fn cbor(&self, dialect: Dialect) -> &Bytes {
        self.0.cbor.get(&self.0.message, dialect, |m, d| Bytes::from(json_cbor::encode_cbor(m, d)))
    }

    /// The postcard encoding, without framing (a datagram carries it as is; the control stream adds a length).
    pub fn postcard(&self) -> &Bytes {
        self.0.postcard.get_or_init(|| Bytes::from(postcard_envelope::encode_server(&self.0.message)))
    }

    /// The HTTP/3 datagram carrying this message to a session whose datagrams start with `prefix` (its quarter
    /// stream id). A browser's one session per connection is on stream 0, prefix `[0]`: that datagram is built
    /// once and shared by every such session, instead of a copy per subscriber.
    pub fn datagram(&self, prefix: &[u8]) -> Bytes {
        let build = || {
            let postcard = self.postcard();
            let mut datagram = BytesMut::with_capacity(prefix.len() + postcard.len());
            datagram.extend_from_slice(prefix);
            datagram.extend_from_slice(postcard);
            datagram.freeze()
        };
        match prefix {
            [0] => self.0.first_session_datagram.get_or_init(build).clone(),
            _ => build(),
        }
    }

    /// The bytes of this message in `format`, with the fields of `dialect` (postcard is always extended).
    pub fn encoded(&self, format: WireFormat, dialect: Dialect) -> Bytes {
        match format {
            WireFormat::Json => Bytes::from(self.json(dialect).clone()),
            WireFormat::Cbor => self.cbor(dialect).clone(),
            WireFormat::Postcard => self.postcard().clone(),
        }
    }
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.message.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Entry, Value};

    #[test]
    fn each_variant_is_encoded_once_and_shared_when_the_dialects_agree() {
        let pong = Outgoing::new(ServerMessage::Pong { nonce: Some(1) });
        // Same bytes for both dialects: one encoding, the same buffer.
        assert!(std::ptr::eq(pong.json(Dialect::Reference), pong.json(Dialect::Extended)));
        assert!(std::ptr::eq(pong.cbor(Dialect::Reference), pong.cbor(Dialect::Extended)));

        let value = Value::from_tree(ciborium::Value::Integer(1.into()));
        let init = ServerMessage::Init { key: "k".into(), data: vec![Entry { value, seq: 1 }], epoch: "e".into() };
        let init = Outgoing::new(init);
        assert_ne!(init.json(Dialect::Reference), init.json(Dialect::Extended));
        assert_ne!(init.cbor(Dialect::Reference), init.cbor(Dialect::Extended));
        // Asked again (by the next subscriber), each variant is the cached one.
        assert!(std::ptr::eq(init.json(Dialect::Reference), init.json(Dialect::Reference)));
        assert!(std::ptr::eq(init.cbor(Dialect::Extended), init.cbor(Dialect::Extended)));
    }

    #[test]
    fn a_first_session_datagram_is_built_once_and_others_carry_their_own_prefix() {
        let pong = Outgoing::new(ServerMessage::Pong { nonce: Some(1) });
        let (first, again) = (pong.datagram(&[0]), pong.datagram(&[0]));
        assert_eq!(first.as_ptr(), again.as_ptr(), "every session on stream 0 shares one datagram");
        assert_eq!(first[0], 0);
        assert_eq!(&first[1..], &pong.postcard()[..]);
        let other = pong.datagram(&[0x40, 0x41]);
        assert_eq!(&other[..2], &[0x40, 0x41]);
        assert_eq!(&other[2..], &pong.postcard()[..]);
    }
}
