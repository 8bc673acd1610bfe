//! Why the server ends a connection: one code per reason, used as the WebSocket close code and as the WebTransport
//! session (QUIC application) close code alike, so clients of both transports learn the same thing.

/// A reason for the server to close a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The server is shutting down (1001).
    GoingAway,
    /// A message larger than the configured limit (1009).
    MessageTooBig,
    /// The reader did not keep up with its reliable traffic and its outgoing queue hit its byte bound (4001).
    SlowConsumer,
}

impl CloseReason {
    /// The close code sent on the wire.
    pub fn code(self) -> u16 {
        match self {
            CloseReason::GoingAway => 1001,
            CloseReason::MessageTooBig => 1009,
            CloseReason::SlowConsumer => 4001,
        }
    }

    /// The human-readable reason sent with the code.
    pub fn text(self) -> &'static str {
        match self {
            CloseReason::GoingAway => "server shutting down",
            CloseReason::MessageTooBig => "message too big",
            CloseReason::SlowConsumer => "slow consumer: outgoing queue limit exceeded; reconnect and resume",
        }
    }
}
