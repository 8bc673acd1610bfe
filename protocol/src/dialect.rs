//! Which message shapes a recipient understands.
//!
//! The published `driftdb` 1.0.12 client, and code written against the reference server, expect exactly the
//! reference's shapes: an `init` without `epoch`, a `push` without `volatile`. Our own clients opt in to the extended
//! shapes (`?ext=true` on the connect or send URL; WebTransport always). Only a few messages differ between the two
//! ([`ServerMessage::differs_by_dialect`]), so a shared `Outgoing` (in the server crate) encodes a second variant only
//! for those, and only once a recipient of that dialect needs it.

use super::ServerMessage;

/// The shapes a recipient gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dialect {
    /// Exactly the reference server's fields, nothing more: what a client that did not opt in gets.
    #[default]
    Reference,
    /// The reference's fields plus ours (`epoch` on `init`, `volatile` on `push`).
    Extended,
}

impl Dialect {
    /// The dialect asked for by a URL's `ext` parameter: `ext=true` opts in.
    pub fn from_ext_flag(ext: bool) -> Self {
        if ext { Dialect::Extended } else { Dialect::Reference }
    }

    pub fn is_extended(self) -> bool {
        self == Dialect::Extended
    }
}

impl ServerMessage {
    /// Whether this message's bytes differ between the dialects (it carries a field the reference never sends).
    pub fn differs_by_dialect(&self) -> bool {
        match self {
            ServerMessage::Init { .. } => true,
            ServerMessage::Push { volatile, .. } => *volatile,
            ServerMessage::StreamSize { .. } | ServerMessage::Pong { .. } | ServerMessage::Error { .. } => false,
        }
    }
}
