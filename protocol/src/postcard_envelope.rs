//! The WebTransport envelope: postcard-encoded messages that mirror the JSON ones.
//!
//! Variant order and field order are the wire contract (postcard writes a variant as its index and fields in
//! declaration order): never reorder, only append. Values travel as the bytes of their CBOR encoding. The golden
//! vectors in `tests/golden/postcard.json` pin the format for the Rust and JS implementations alike.

use serde::{Deserialize, Serialize};

use super::{Action, ClientMessage, DecodeError, Entry, Replay, ServerMessage, Value};

#[derive(Serialize, Deserialize, Debug)]
enum WireClient<'a> {
    Push {
        key: &'a str,
        value: &'a [u8],
        action: WireAction,
        volatile: bool,
    },
    /// `seq: None` subscribes without an `init` (JSON `"seq": null`).
    Get {
        key: &'a str,
        seq: Option<u64>,
    },
    Unsubscribe {
        key: &'a str,
    },
    Ping {
        nonce: Option<u64>,
    },
    Goodbye,
    /// Appended after `Goodbye`: a fresh token for the session.
    Auth {
        token: &'a str,
    },
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
enum WireAction {
    Relay,
    Append,
    Replace,
    Compact { seq: u64 },
}

#[derive(Serialize, Deserialize, Debug)]
enum WireServer<'a> {
    Push {
        key: &'a str,
        value: &'a [u8],
        seq: u64,
        volatile: bool,
    },
    Init {
        key: &'a str,
        #[serde(borrow)]
        data: Vec<WireEntry<'a>>,
        epoch: &'a str,
    },
    StreamSize {
        key: &'a str,
        size: u64,
    },
    Pong {
        nonce: Option<u64>,
    },
    Error {
        message: &'a str,
    },
}

#[derive(Serialize, Deserialize, Debug)]
struct WireEntry<'a> {
    value: &'a [u8],
    seq: u64,
}

impl From<Action> for WireAction {
    fn from(action: Action) -> Self {
        match action {
            Action::Relay => WireAction::Relay,
            Action::Append => WireAction::Append,
            Action::Replace => WireAction::Replace,
            Action::Compact { seq } => WireAction::Compact { seq },
        }
    }
}

impl From<WireAction> for Action {
    fn from(action: WireAction) -> Self {
        match action {
            WireAction::Relay => Action::Relay,
            WireAction::Append => Action::Append,
            WireAction::Replace => Action::Replace,
            WireAction::Compact { seq } => Action::Compact { seq },
        }
    }
}

fn postcard_error(e: postcard::Error) -> DecodeError {
    DecodeError::Postcard(e.to_string())
}

/// Decodes one client message (a datagram, or a control-stream frame without its length prefix).
pub fn decode_client(bytes: &[u8]) -> Result<ClientMessage, DecodeError> {
    let (wire, rest): (WireClient, _) = postcard::take_from_bytes(bytes).map_err(postcard_error)?;
    if !rest.is_empty() {
        return Err(DecodeError::Postcard(format!("{} trailing bytes after the message", rest.len())));
    }
    Ok(match wire {
        WireClient::Push { key, value, action, volatile } => ClientMessage::Push {
            key: key.into(),
            value: Value::from_cbor_bytes(value)?,
            action: action.into(),
            volatile,
        },
        WireClient::Get { key, seq } => {
            ClientMessage::Get { key: key.into(), replay: seq.map_or(Replay::None, Replay::After) }
        }
        WireClient::Unsubscribe { key } => ClientMessage::Unsubscribe { key: key.into() },
        WireClient::Ping { nonce } => ClientMessage::Ping { nonce },
        WireClient::Goodbye => ClientMessage::Goodbye,
        WireClient::Auth { token } => ClientMessage::Auth { token: token.to_owned() },
    })
}

/// Encodes a client message (used by the Rust test client and the load tool).
pub fn encode_client(message: &ClientMessage) -> Vec<u8> {
    let wire = match message {
        ClientMessage::Push { key, value, action, volatile } => {
            WireClient::Push { key, value: value.cbor(), action: (*action).into(), volatile: *volatile }
        }
        ClientMessage::Get { key, replay } => WireClient::Get {
            key,
            seq: match replay {
                Replay::After(seq) => Some(*seq),
                Replay::None => None,
            },
        },
        ClientMessage::Unsubscribe { key } => WireClient::Unsubscribe { key },
        ClientMessage::Ping { nonce } => WireClient::Ping { nonce: *nonce },
        ClientMessage::Goodbye => WireClient::Goodbye,
        ClientMessage::Auth { token } => WireClient::Auth { token },
    };
    postcard::to_stdvec(&wire).expect("postcard encoding into a Vec cannot fail")
}

/// Encodes a server message.
pub fn encode_server(message: &ServerMessage) -> Vec<u8> {
    let wire = match message {
        ServerMessage::Push { key, value, seq, volatile } => {
            WireServer::Push { key, value: value.cbor(), seq: *seq, volatile: *volatile }
        }
        ServerMessage::Init { key, data, epoch } => WireServer::Init {
            key,
            data: data.iter().map(|e| WireEntry { value: e.value.cbor(), seq: e.seq }).collect(),
            epoch,
        },
        ServerMessage::StreamSize { key, size } => WireServer::StreamSize { key, size: *size },
        ServerMessage::Pong { nonce } => WireServer::Pong { nonce: *nonce },
        ServerMessage::Error { message } => WireServer::Error { message },
    };
    postcard::to_stdvec(&wire).expect("postcard encoding into a Vec cannot fail")
}

/// Decodes a server message (used by the Rust test client and the load tool).
pub fn decode_server(bytes: &[u8]) -> Result<ServerMessage, DecodeError> {
    let wire: WireServer = postcard::from_bytes(bytes).map_err(postcard_error)?;
    Ok(match wire {
        WireServer::Push { key, value, seq, volatile } => {
            ServerMessage::Push { key: key.into(), value: Value::from_cbor_bytes(value)?, seq, volatile }
        }
        WireServer::Init { key, data, epoch } => ServerMessage::Init {
            key: key.into(),
            data: data
                .into_iter()
                .map(|e| Ok(Entry { value: Value::from_cbor_bytes(e.value)?, seq: e.seq }))
                .collect::<Result<_, DecodeError>>()?,
            epoch: epoch.into(),
        },
        WireServer::StreamSize { key, size } => ServerMessage::StreamSize { key: key.into(), size },
        WireServer::Pong { nonce } => ServerMessage::Pong { nonce },
        WireServer::Error { message } => ServerMessage::Error { message: message.into() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_round_trip() {
        let value = Value::from_tree(ciborium::Value::Text("hi".into()));
        let messages = [
            ClientMessage::Push { key: "k".into(), value, action: Action::Compact { seq: 9 }, volatile: false },
            ClientMessage::Get { key: "".into(), replay: Replay::None },
            ClientMessage::Get { key: "k".into(), replay: Replay::After(300) },
            ClientMessage::Unsubscribe { key: "k".into() },
            ClientMessage::Ping { nonce: Some(1) },
            ClientMessage::Goodbye,
            ClientMessage::Auth { token: "a.b.c".into() },
        ];
        for message in messages {
            assert_eq!(decode_client(&encode_client(&message)).unwrap(), message);
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_client(&[]).is_err());
        assert!(decode_client(&[42]).is_err());
        // A valid Goodbye followed by junk.
        assert!(decode_client(&[4, 0]).is_err());
    }
}
