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
}
