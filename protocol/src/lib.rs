//! The client and server messages, defined once, and one codec per wire format.
//!
//! - [`json_cbor`]: JSON text and CBOR binary frames (WebSocket, HTTP send). JSON is parsed straight into a CBOR tree
//!   so that both encodings share one message parser.
//! - [`postcard_envelope`]: the WebTransport envelope (control stream and datagrams), encoded with postcard.
//!
//! This crate has no server in it (no tokio, no HTTP types), so clients, tools and the fuzz targets build it alone.
//! The server's fan-out of one encoded message to many recipients is `driftdb::outgoing`.

mod dialect;
pub mod framing;
pub mod json_cbor;
pub mod postcard_envelope;
mod value;

use std::sync::Arc;

pub use dialect::Dialect;
pub use value::Value;

/// A room key: any UTF-8 string, `""` included.
pub type Key = Arc<str>;

/// What a `push` does to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Deliver to subscribers, store nothing.
    Relay,
    /// Deliver and add to the end of the key's stored stream.
    Append,
    /// Deliver and make this the stream's only entry.
    Replace,
    /// Remove entries with seq ≤ `seq` and store the value first, at `seq`. Delivers nothing.
    Compact { seq: u64 },
}

/// Where a `get` starts its replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Send an `init` with every stored entry whose seq is greater than this.
    After(u64),
    /// `"seq": null`: subscribe without an `init`.
    None,
}

/// A message from a client.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientMessage {
    Push {
        key: Key,
        value: Value,
        action: Action,
        volatile: bool,
    },
    Get {
        key: Key,
        replay: Replay,
    },
    Unsubscribe {
        key: Key,
    },
    Ping {
        nonce: Option<u64>,
    },
    /// WebTransport only: the client is leaving on purpose (browsers do not tell the server when a session closes).
    Goodbye,
    /// A fresh token for this connection, sent before the current one expires (see `auth`).
    Auth {
        token: String,
    },
}

/// One stored entry of a key's stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub value: Value,
    pub seq: u64,
}

/// A message from the server.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerMessage {
    Push { key: Key, value: Value, seq: u64, volatile: bool },
    Init { key: Key, data: Vec<Entry>, epoch: Arc<str> },
    StreamSize { key: Key, size: u64 },
    Pong { nonce: Option<u64> },
    Error { message: String },
}

impl ServerMessage {
    /// Roughly how many bytes this message takes once encoded: what queues and limits account with.
    pub fn approx_size(&self) -> usize {
        const OVERHEAD: usize = 32;
        OVERHEAD
            + match self {
                ServerMessage::Push { key, value, .. } => key.len() + value.len(),
                ServerMessage::Init { key, data, epoch } => {
                    key.len() + epoch.len() + data.iter().map(|e| e.value.len() + 12).sum::<usize>()
                }
                ServerMessage::StreamSize { key, .. } => key.len(),
                ServerMessage::Pong { .. } => 0,
                ServerMessage::Error { message } => message.len(),
            }
    }
}

/// Why a client message could not be decoded. The text is sent back to the client in an `error` message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("malformed CBOR: {0}")]
    Cbor(String),
    #[error("malformed postcard message: {0}")]
    Postcard(String),
    #[error("a message must be an object")]
    NotAnObject,
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` must be {expected}")]
    WrongType { field: &'static str, expected: &'static str },
    #[error("field `{0}` is too large: integers are at most 18446744073709551615")]
    TooLarge(&'static str),
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    #[error("unknown action type `{0}`")]
    UnknownAction(String),
    #[error("invalid value: {0}")]
    InvalidValue(String),
}
