//! Why the server ends a connection: one code per reason, used as the WebSocket close code and as the WebTransport
//! session (QUIC application) close code alike, so clients of both transports learn the same thing.
//!
//! Codes 4000–4999 are the application range of RFC 6455. A client that sees one of the `4xxx` codes except
//! [`CloseReason::RoomFull`], [`CloseReason::ServerFull`] and [`CloseReason::TooManyRooms`] may reconnect at once
//! and resume from its last seq (after [`CloseReason::TokenExpired`], with a fresh token); for those three it should
//! back off.

/// A reason for the server to close a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The server is shutting down (1001).
    GoingAway,
    /// A message larger than the configured limit (1009).
    MessageTooBig,
    /// A text frame that is not valid UTF-8 (1007, RFC 6455 7.4.1).
    InvalidUtf8,
    /// A framing violation: an unmasked client frame, reserved bits, a bad opcode or continuation (1002).
    ProtocolViolation,
    /// The reader did not keep up with its reliable traffic and its outgoing queue hit its byte bound (4001).
    SlowConsumer,
    /// More messages per second than the connection's rate limit allows (4002).
    RateLimited,
    /// The room already has its maximum number of connections (4003).
    RoomFull,
    /// The server already has its maximum number of connections (4004).
    ServerFull,
    /// The server already holds its maximum number of rooms and this one does not exist yet (4005).
    TooManyRooms,
    /// Too many new connections per second from this client's address (4006).
    ConnectRateLimited,
    /// Nothing was received from the client, not even a pong, within the idle timeout (4007).
    IdleTimeout,
    /// The connection's token expired and no fresh one came in an `auth` message before its `exp` (4008).
    TokenExpired,
    /// The room is stored but its store cannot be read now (1013, "try again later").
    StorageUnavailable,
}

impl CloseReason {
    /// Every reason, for documentation and metrics.
    pub const ALL: [CloseReason; 13] = [
        CloseReason::GoingAway,
        CloseReason::MessageTooBig,
        CloseReason::InvalidUtf8,
        CloseReason::ProtocolViolation,
        CloseReason::SlowConsumer,
        CloseReason::RateLimited,
        CloseReason::RoomFull,
        CloseReason::ServerFull,
        CloseReason::TooManyRooms,
        CloseReason::ConnectRateLimited,
        CloseReason::IdleTimeout,
        CloseReason::TokenExpired,
        CloseReason::StorageUnavailable,
    ];

    /// The close code sent on the wire.
    pub fn code(self) -> u16 {
        match self {
            CloseReason::GoingAway => 1001,
            CloseReason::MessageTooBig => 1009,
            CloseReason::InvalidUtf8 => 1007,
            CloseReason::ProtocolViolation => 1002,
            CloseReason::SlowConsumer => 4001,
            CloseReason::RateLimited => 4002,
            CloseReason::RoomFull => 4003,
            CloseReason::ServerFull => 4004,
            CloseReason::TooManyRooms => 4005,
            CloseReason::ConnectRateLimited => 4006,
            CloseReason::IdleTimeout => 4007,
            CloseReason::TokenExpired => 4008,
            CloseReason::StorageUnavailable => 1013,
        }
    }

    /// The human-readable reason sent with the code.
    pub fn text(self) -> &'static str {
        match self {
            CloseReason::GoingAway => "server shutting down",
            CloseReason::MessageTooBig => "message too big",
            CloseReason::InvalidUtf8 => "invalid UTF-8 in a text frame",
            CloseReason::ProtocolViolation => "WebSocket protocol violation",
            CloseReason::SlowConsumer => "slow consumer: outgoing queue limit exceeded; reconnect and resume",
            CloseReason::RateLimited => "rate limited: too many messages per second",
            CloseReason::RoomFull => "room full: too many connections in this room",
            CloseReason::ServerFull => "server full: too many connections",
            CloseReason::TooManyRooms => "too many rooms on this server",
            CloseReason::ConnectRateLimited => "too many new connections from this address",
            CloseReason::IdleTimeout => "idle timeout: nothing received from the client",
            CloseReason::TokenExpired => "token expired: reconnect with a fresh token",
            CloseReason::StorageUnavailable => "storage unavailable: the room cannot be read now; try again later",
        }
    }

    /// The reason sent with `code`, as another node of the cluster reports it (see `cluster::forwarding`).
    pub fn from_code(code: u16) -> Option<CloseReason> {
        CloseReason::ALL.into_iter().find(|reason| reason.code() == code)
    }

    /// A short stable name, for logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::GoingAway => "going_away",
            CloseReason::MessageTooBig => "message_too_big",
            CloseReason::InvalidUtf8 => "invalid_utf8",
            CloseReason::ProtocolViolation => "protocol_violation",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::RateLimited => "rate_limited",
            CloseReason::RoomFull => "room_full",
            CloseReason::ServerFull => "server_full",
            CloseReason::TooManyRooms => "too_many_rooms",
            CloseReason::ConnectRateLimited => "connect_rate_limited",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::TokenExpired => "token_expired",
            CloseReason::StorageUnavailable => "storage_unavailable",
        }
    }
}
