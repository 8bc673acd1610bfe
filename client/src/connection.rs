//! A measuring client's connection over either transport, in halves: send a stamped [`Out`], receive a reduced
//! [`In`] with whether it came as a datagram. The load tool and netsim drive these from their scenarios.

use std::time::Duration;

use crate::error::Result;
use crate::stamped::{In, Out, decode_cbor, decode_json, decode_postcard};
use crate::websocket::{Incoming, WebSocket, WsReceiver, WsSender};
use crate::webtransport::{WtReceiver, WtSender, WtSession};

/// The sending half.
pub enum Sender {
    Ws(WsSender),
    // Boxed: a session's state is ten times a WebSocket half's.
    Wt(Box<WtSender>),
}

/// The receiving half.
pub enum Receiver {
    Ws(WsReceiver),
    Wt(Box<WtReceiver>),
}

/// Splits a WebSocket into halves.
pub fn websocket(socket: WebSocket) -> (Sender, Receiver) {
    let (tx, rx) = socket.split();
    (Sender::Ws(tx), Receiver::Ws(rx))
}

/// Splits a WebTransport session into halves.
pub fn webtransport(session: WtSession) -> (Sender, Receiver) {
    let (tx, rx) = session.split();
    (Sender::Wt(Box::new(tx)), Receiver::Wt(Box::new(rx)))
}

impl Sender {
    /// Sends one message; over WebTransport a volatile push goes as a datagram when it fits.
    pub async fn send(&mut self, message: &Out<'_>) -> Result<()> {
        match self {
            Sender::Ws(ws) => ws.send_out(message).await,
            Sender::Wt(wt) => wt.send_auto(message.postcard(), message.is_volatile()).await,
        }
    }

    /// Leaves politely within `wait`: a close frame on the WebSocket; on WebTransport a `goodbye` first when
    /// `goodbye` (browsers do not tell the server a session closed), then the session close with `code`.
    pub async fn close(&mut self, wait: Duration, goodbye: bool, code: u32, reason: &str) {
        match self {
            Sender::Ws(ws) => ws.close(wait).await,
            Sender::Wt(wt) => {
                if goodbye {
                    let _ = tokio::time::timeout(wait, wt.send_auto(Out::Goodbye.postcard(), false)).await;
                }
                wt.close(code, reason);
            }
        }
    }
}

impl Receiver {
    /// The next server message and whether it came as a datagram; `Ok(None)` once the connection ended (a close
    /// frame, or the control stream's end). Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<(In, bool)>> {
        match self {
            Receiver::Ws(ws) => match ws.recv().await? {
                Incoming::Closed(_) => Ok(None),
                Incoming::Text(text) => Ok(Some((decode_json(&text)?, false))),
                Incoming::Binary(bytes) => Ok(Some((decode_cbor(&bytes)?, false))),
            },
            Receiver::Wt(wt) => match wt.recv().await? {
                None => Ok(None),
                Some(received) => Ok(Some((decode_postcard(&received.bytes)?, received.datagram))),
            },
        }
    }
}
