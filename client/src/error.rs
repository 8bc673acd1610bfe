//! What can go wrong in a client, as one error type for every transport.

use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connect URL cannot be used as given.
    #[error("{0}")]
    BadUrl(String),
    /// A loopback-only client was pointed elsewhere (the load tool measures a server on this machine only).
    #[error("{0}: only loopback targets (127.0.0.0/8, ::1, localhost) are allowed")]
    NotLoopback(Url),
    #[error("TCP connect: {0}")]
    Io(#[from] std::io::Error),
    /// The WebSocket handshake or a frame failed; an HTTP refusal of the upgrade is `tungstenite::Error::Http`.
    #[error(transparent)]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    // Transparent: callers (tests) read the handshake refusal from its own text.
    #[error(transparent)]
    Connect(#[from] web_transport_quinn::ClientError),
    #[error(transparent)]
    Session(#[from] web_transport_quinn::SessionError),
    #[error(transparent)]
    Read(#[from] web_transport_quinn::ReadError),
    #[error(transparent)]
    Write(#[from] web_transport_quinn::WriteError),
    #[error(transparent)]
    Frame(#[from] driftdb_protocol::framing::FrameError),
    /// The server sent bytes that are not a server message.
    #[error("server message: {0}")]
    Decode(String),
}

impl Error {
    /// Whether this is the session or stream having been closed or reset (by either side), which a reader treats as
    /// the end of the connection rather than a failure. quinn reports these through several error types, so the
    /// check is on the text, as every user did before this crate.
    pub fn is_closed(&self) -> bool {
        let text = self.to_string();
        text.contains("closed") || text.contains("reset")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
