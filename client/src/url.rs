//! Connect URLs: the WebSocket URL of a room with its query (`cbor=true`, `ext=true`), and the loopback check of
//! the clients that may only reach a server on this machine.

use std::net::IpAddr;

use driftdb_protocol::Dialect;
use url::{Host, Url};

use crate::error::{Error, Result};

/// What a WebSocket connection asks the server to send: JSON text frames or CBOR binary frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Cbor,
}

impl Encoding {
    pub const BOTH: [Encoding; 2] = [Encoding::Json, Encoding::Cbor];
}

/// The query of a connect URL: `cbor=true` for CBOR, `ext=true` for the extended dialect; `None` when neither.
pub fn connect_query(encoding: Encoding, dialect: Dialect) -> Option<&'static str> {
    match (encoding, dialect) {
        (Encoding::Json, Dialect::Reference) => None,
        (Encoding::Cbor, Dialect::Reference) => Some("cbor=true"),
        (Encoding::Json, Dialect::Extended) => Some("ext=true"),
        (Encoding::Cbor, Dialect::Extended) => Some("cbor=true&ext=true"),
    }
}

/// `ws://HOST/…/room/{room}/connect?…` on the server whose HTTP base URL is `base` (`https` becomes `wss`).
pub fn websocket_url(base: &Url, room: &str, encoding: Encoding, dialect: Dialect) -> Result<Url> {
    let mut url = base.join(&format!("room/{room}/connect")).map_err(|e| Error::BadUrl(format!("{base}: {e}")))?;
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    url.set_scheme(scheme).map_err(|()| Error::BadUrl(format!("{base}: cannot be a WebSocket URL")))?;
    url.set_query(connect_query(encoding, dialect));
    Ok(url)
}

/// Whether the URL's host is this machine: 127.0.0.0/8, ::1 or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain == "localhost",
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Refuses anything but a loopback host.
pub fn ensure_loopback(url: &Url) -> Result<()> {
    if is_loopback(url) { Ok(()) } else { Err(Error::NotLoopback(url.clone())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_urls_carry_encoding_and_dialect() {
        let base = Url::parse("http://127.0.0.1:8080/").unwrap();
        let url = websocket_url(&base, "r1", Encoding::Cbor, Dialect::Extended).unwrap();
        assert_eq!(url.as_str(), "ws://127.0.0.1:8080/room/r1/connect?cbor=true&ext=true");
        let url = websocket_url(&base, "r1", Encoding::Json, Dialect::Reference).unwrap();
        assert_eq!(url.as_str(), "ws://127.0.0.1:8080/room/r1/connect");
        let secure = Url::parse("https://example.test/prefix/").unwrap();
        let url = websocket_url(&secure, "r", Encoding::Json, Dialect::Extended).unwrap();
        assert_eq!(url.as_str(), "wss://example.test/prefix/room/r/connect?ext=true");
    }

    #[test]
    fn only_this_machine_is_loopback() {
        for ok in ["http://127.0.0.1/", "http://127.1.2.3:9/", "http://[::1]:80/", "http://localhost:1/"] {
            assert!(ensure_loopback(&Url::parse(ok).unwrap()).is_ok(), "{ok}");
        }
        for refused in ["http://10.77.0.1/", "http://example.test/", "http://[::2]/"] {
            let error = ensure_loopback(&Url::parse(refused).unwrap()).unwrap_err();
            assert!(error.to_string().contains("only loopback targets"), "{refused}: {error}");
        }
    }
}
