//! DriftDB's Rust client, shared by the workspace's integration tests, the load tool (`load/`) and the network
//! impairment harness (`netsim/`), so that connecting, framing, stamping and receiving are written once.
//!
//! - [`url`]: connect URLs (`?cbor=true`, `?ext=true`) and the loopback-only check.
//! - [`websocket`]: a WebSocket (JSON or CBOR) with socket options, a receive loop that skips keepalive frames, and
//!   close codes.
//! - [`webtransport`]: a WebTransport session (control stream + datagrams) pinned to the server's certificate hashes.
//! - [`codec`]: client messages to JSON/CBOR and server messages back (postcard is in `driftdb_protocol`).
//! - [`framing`]: the control stream's length framing, the one the server uses.
//! - [`stamp`], [`stamped`], [`connection`]: timestamped payloads and the reduced messages of measuring clients, over
//!   either transport.
//! - [`resume`]: what a reconnecting client asks for again.
//!
//! ```no_run
//! use driftdb_client::protocol::{ClientMessage, Dialect, Replay};
//! use driftdb_client::url::{Encoding, websocket_url};
//! use driftdb_client::websocket::{Incoming, WebSocket, WsOptions};
//!
//! # async fn example() -> Result<(), driftdb_client::Error> {
//! let base = url::Url::parse("http://127.0.0.1:8080/").unwrap();
//! let url = websocket_url(&base, "ROOM", Encoding::Cbor, Dialect::Extended)?;
//! let options = WsOptions { loopback_only: true, ..WsOptions::encoding(Encoding::Cbor) };
//! let mut socket = WebSocket::connect(&url, &options).await?;
//! socket.send(&ClientMessage::Get { key: "k".into(), replay: Replay::After(0) }).await?;
//! if let Incoming::Binary(frame) = socket.recv().await? {
//!     let init = driftdb_client::codec::decode_server(Encoding::Cbor, &frame)?;
//!     println!("{init:?}");
//! }
//! socket.close(1000, "done").await?;
//! # Ok(())
//! # }
//! ```

pub mod codec;
pub mod connection;
mod error;
pub mod resume;
pub mod stamp;
pub mod stamped;
pub mod url;
pub mod websocket;
pub mod webtransport;

/// The control stream's framing, shared with the server (`driftdb::webtransport::framing` re-exports it).
pub mod framing {
    pub use driftdb_protocol::framing::*;
}

pub use driftdb_protocol as protocol;
pub use error::{Error, Result};
pub use url::Encoding;
