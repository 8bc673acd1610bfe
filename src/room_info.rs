//! Room info: what `POST /new` and `GET /room/{id}` answer, shared by the server that writes it and the Rust clients
//! (tests, the load tool, netsim) that read it.

use serde::{Deserialize, Serialize};

/// The URLs a client connects to for one room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    pub room: String,
    pub socket_url: String,
    pub http_url: String,
    /// `https://HOST:WT_PORT/room/ID/connect`; absent with `--no-webtransport`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webtransport_url: Option<String>,
    /// For the browser's `serverCertificateHashes` while the certificate is self-signed: a list of
    /// `{"algorithm":"sha-256","value":"<hex>"}`, newest first (two during a renewal overlap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_hashes: Option<Vec<CertificateHash>>,
}

impl RoomInfo {
    /// The published SHA-256 certificate hashes as bytes, for a WebTransport client's `serverCertificateHashes`.
    pub fn sha256_hashes(&self) -> Result<Vec<Vec<u8>>, hex::FromHexError> {
        let hashes = self.certificate_hashes.iter().flatten();
        hashes.filter(|h| h.algorithm == CertificateHash::SHA256).map(|h| hex::decode(&h.value)).collect()
    }
}

impl RoomInfo {
    /// The room's URLs on the server reached at `base`; `webtransport` is its UDP port with the certificate hashes
    /// it publishes (none with an operator certificate).
    pub fn at(base: &PublicBase, id: &str, webtransport: Option<(u16, Vec<CertificateHash>)>) -> Self {
        let (webtransport_url, certificate_hashes) = match webtransport {
            // QUIC goes straight to the server (proxies do not carry it): same host name, the UDP port, no path
            // prefix.
            Some((port, hashes)) => (
                Some(format!("https://{}:{port}/room/{id}/connect", base.host_name())),
                Some(hashes).filter(|hashes| !hashes.is_empty()),
            ),
            None => (None, None),
        };
        RoomInfo {
            room: id.to_owned(),
            socket_url: format!("{}/room/{id}/connect", base.with_scheme("ws", "wss")),
            http_url: format!("{}/room/{id}/send", base.with_scheme("http", "https")),
            webtransport_url,
            certificate_hashes,
        }
    }
}

/// Where clients reach a server: its scheme, host (with port) and path prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicBase {
    pub secure: bool,
    pub host: String,
    pub path_prefix: String,
}

impl PublicBase {
    /// A base URL such as `https://db.example.com/drift` (`--public-url`).
    pub fn parse(url: &str) -> Self {
        let (secure, rest) = match url.split_once("://") {
            Some((scheme, rest)) => (matches!(scheme, "https" | "wss"), rest),
            None => (false, url),
        };
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let path_prefix =
            if path.trim_matches('/').is_empty() { String::new() } else { format!("/{}", path.trim_matches('/')) };
        PublicBase { secure, host: host.to_owned(), path_prefix }
    }

    /// The host without its port (`[::1]` keeps its brackets).
    pub fn host_name(&self) -> &str {
        if let Some(end) = self.host.find(']') {
            return &self.host[..=end];
        }
        match self.host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => &self.host,
        }
    }

    /// `plain://HOST/PREFIX`, or `secure://…` when the base is https.
    pub fn with_scheme(&self, plain: &str, secure: &str) -> String {
        let scheme = if self.secure { secure } else { plain };
        format!("{scheme}://{}{}", self.host, self.path_prefix)
    }
}

/// A certificate hash in the shape of the browser's `WebTransportHash`; the page converts `value` from hex to a
/// `Uint8Array`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateHash {
    pub algorithm: String,
    pub value: String,
}

impl CertificateHash {
    const SHA256: &str = "sha-256";

    pub fn sha256(digest: &[u8; 32]) -> Self {
        CertificateHash { algorithm: Self::SHA256.to_owned(), value: hex::encode(digest) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_through_json() {
        let info = RoomInfo {
            room: "r".into(),
            socket_url: "ws://h/room/r/connect".into(),
            http_url: "http://h/room/r/send".into(),
            webtransport_url: Some("https://h/room/r/connect".into()),
            certificate_hashes: Some(vec![CertificateHash::sha256(&[7; 32])]),
        };
        let back: RoomInfo = serde_json::from_str(&serde_json::to_string(&info).unwrap()).unwrap();
        assert_eq!(back, info);
        assert_eq!(back.sha256_hashes().unwrap(), vec![vec![7; 32]]);
        let plain: RoomInfo = serde_json::from_str(r#"{"room":"r","socket_url":"s","http_url":"h"}"#).unwrap();
        assert_eq!(plain.sha256_hashes().unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn public_url_keeps_scheme_host_and_prefix() {
        let base = PublicBase::parse("https://db.example.com/drift/");
        assert_eq!(base.with_scheme("ws", "wss"), "wss://db.example.com/drift");
        let base = PublicBase::parse("http://localhost:9000");
        assert_eq!(base.with_scheme("http", "https"), "http://localhost:9000");
        assert_eq!(base.host_name(), "localhost");
        assert_eq!(PublicBase::parse("http://[::1]:9000").host_name(), "[::1]");
        assert_eq!(PublicBase::parse("https://db.example.com/x").host_name(), "db.example.com");
    }

    #[test]
    fn room_urls_at_a_base() {
        let base = PublicBase::parse("http://127.0.0.1:9000");
        let info = RoomInfo::at(&base, "r", Some((9001, vec![])));
        assert_eq!(info.socket_url, "ws://127.0.0.1:9000/room/r/connect");
        assert_eq!(info.http_url, "http://127.0.0.1:9000/room/r/send");
        assert_eq!(info.webtransport_url.as_deref(), Some("https://127.0.0.1:9001/room/r/connect"));
        assert_eq!(info.certificate_hashes, None, "no hashes with an operator certificate");
    }
}
