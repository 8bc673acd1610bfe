//! Certificates for the WebTransport (QUIC) listener.
//!
//! Operators pass a PEM certificate chain and key (`--tls-cert`/`--tls-key`). Without them the server makes its own
//! self-signed ECDSA P-256 certificate that browsers accept through `serverCertificateHashes`: valid for less than 14
//! days in total (Chromium's limit), renewed before it expires, and published as SHA-256 hashes in room results. Every
//! hash of a certificate that is still valid stays published, so clients that fetched room info before a renewal, and
//! sessions made with the old certificate, keep working during the overlap.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::room_info::CertificateHash;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tracing::info;

/// The ALPN protocol of HTTP/3.
const ALPN_H3: &[u8] = b"h3";
/// Browsers refuse `serverCertificateHashes` certificates valid for 14 days or more in total.
const BROWSER_MAX_VALIDITY: Duration = Duration::from_secs(14 * 24 * 3600);
/// Backdating `not_before` absorbs clock skew between server and browser.
const BACKDATE: Duration = Duration::from_secs(3600);

/// How the self-signed certificate is made and renewed. Not a command-line setting: tests shorten it to force a
/// renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfSignedPolicy {
    /// How long a new certificate stays valid from now (`not_before` is backdated by one hour on top of this).
    pub validity: Duration,
    /// Renew once less than this remains.
    pub renew_before: Duration,
    /// How often to check.
    pub check_interval: Duration,
}

impl Default for SelfSignedPolicy {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        SelfSignedPolicy {
            validity: Duration::from_secs(10 * DAY),
            renew_before: Duration::from_secs(3 * DAY),
            check_interval: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{0} holds no certificate")]
    NoCertificate(PathBuf),
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("self-signed validity of {0:?} (plus one hour of backdating) is not under the browsers' 14-day limit")]
    TooLong(Duration),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// A certificate chain with its private key.
pub struct CertifiedKey {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// SHA-256 of the DER leaf certificate: what `serverCertificateHashes` matches.
    pub sha256: [u8; 32],
    /// Set for self-signed certificates (the only ones whose hash is published).
    pub not_after: Option<OffsetDateTime>,
}

impl CertifiedKey {
    fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        not_after: Option<OffsetDateTime>,
    ) -> Self {
        let sha256 = chain.first().map(|leaf| Sha256::digest(leaf.as_ref()).into()).unwrap_or_default();
        CertifiedKey { chain, key, sha256, not_after }
    }

    /// A rustls server config for HTTP/3: TLS 1.3 only, ALPN `h3`. The ring provider is named explicitly because the
    /// process-wide default panics when a dependency compiles a second provider in.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN_H3.to_vec()];
        Ok(config)
    }
}

/// Loads an operator's PEM certificate chain and private key.
pub fn load_pem(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let read_error =
        |path: &Path, e: &dyn std::fmt::Display| TlsError::Read { path: path.into(), message: e.to_string() };
    let chain = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| read_error(cert_path, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(cert_path, &e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| read_error(key_path, &e))?;
    Ok(CertifiedKey::new(chain, key, None))
}

/// The names a self-signed certificate covers: the loopback names plus the configured host names.
fn subject_names(host_names: &[String]) -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    for name in host_names {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    names
}

/// Makes a self-signed ECDSA P-256 certificate for localhost and `host_names`, valid from an hour ago for
/// `validity`. Returns the certificate and the PEM text of certificate and key (for `driftdb cert`).
fn make_self_signed(host_names: &[String], validity: Duration) -> Result<(CertifiedKey, String, String), TlsError> {
    if validity + BACKDATE >= BROWSER_MAX_VALIDITY {
        return Err(TlsError::TooLong(validity));
    }
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::new(subject_names(host_names))?;
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "DriftDB self-signed");
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
    let key_pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key_pair)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
    let certified = CertifiedKey::new(vec![cert.der().clone()], key, Some(params.not_after));
    Ok((certified, cert.pem(), key_pair.serialize_pem()))
}

/// Writes a self-signed development certificate and key as `dev-cert.pem` and `dev-key.pem` into `dir`, and returns
/// their paths. Such a certificate still expires within 14 days (browsers insist); run the command again after that.
pub fn write_dev_certificate(dir: &Path, host_names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let (_, cert_pem, key_pem) = make_self_signed(host_names, SelfSignedPolicy::default().validity)?;
    // The certificate is public; the key is readable by its owner alone (0600), set as the file is created so it
    // is never briefly world-readable, and re-applied when an older, looser key file is overwritten.
    let write = |path: PathBuf, text: &str, mode: u32| {
        std::fs::create_dir_all(dir)
            .and_then(|()| write_with_mode(&path, text, mode))
            .map(|()| path.clone())
            .map_err(|source| TlsError::Write { path, source })
    };
    Ok((write(dir.join("dev-cert.pem"), &cert_pem, 0o644)?, write(dir.join("dev-key.pem"), &key_pem, 0o600)?))
}

fn write_with_mode(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(text.as_bytes())
}

/// Where the listener's certificate comes from.
enum Source {
    Operator,
    SelfSigned { host_names: Vec<String>, policy: SelfSignedPolicy },
}

/// The listener's current certificate and, for self-signed ones, the hashes to publish.
pub struct Certificates {
    source: Source,
    state: RwLock<State>,
}

struct State {
    current: Arc<CertifiedKey>,
    /// Self-signed certificates made so far that may still be valid, newest first.
    published: Vec<([u8; 32], OffsetDateTime)>,
}

impl Certificates {
    /// The operator's certificate.
    pub fn operator(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let current = Arc::new(load_pem(cert_path, key_path)?);
        Ok(Certificates { source: Source::Operator, state: RwLock::new(State { current, published: Vec::new() }) })
    }

    /// A fresh self-signed certificate, renewed according to `policy`.
    pub fn self_signed(host_names: Vec<String>, policy: SelfSignedPolicy) -> Result<Self, TlsError> {
        let (certified, _, _) = make_self_signed(&host_names, policy.validity)?;
        let published = certified.not_after.map(|end| vec![(certified.sha256, end)]).unwrap_or_default();
        let state = RwLock::new(State { current: Arc::new(certified), published });
        Ok(Certificates { source: Source::SelfSigned { host_names, policy }, state })
    }

    /// The certificate new connections get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.state.read().expect("certificate lock poisoned").current.clone()
    }

    /// Hashes to publish for `serverCertificateHashes`, newest first: empty for an operator certificate.
    pub fn hashes(&self) -> Vec<CertificateHash> {
        let now = OffsetDateTime::now_utc();
        let state = self.state.read().expect("certificate lock poisoned");
        state.published.iter().filter(|(_, end)| *end > now).map(|(hash, _)| CertificateHash::sha256(hash)).collect()
    }

    /// How often the renewal task should look; `None` when the certificate is the operator's.
    pub fn check_interval(&self) -> Option<Duration> {
        match &self.source {
            Source::Operator => None,
            Source::SelfSigned { policy, .. } => Some(policy.check_interval),
        }
    }

    /// Makes a new self-signed certificate if the current one expires within the renewal margin. Returns it when
    /// renewed, so that the caller can hand it to the listener.
    pub fn renew_if_due(&self) -> Result<Option<Arc<CertifiedKey>>, TlsError> {
        let Source::SelfSigned { host_names, policy } = &self.source else {
            return Ok(None);
        };
        let now = OffsetDateTime::now_utc();
        let due = self.current().not_after.is_some_and(|end| end - now < policy.renew_before);
        if !due {
            return Ok(None);
        }
        let (certified, _, _) = make_self_signed(host_names, policy.validity)?;
        let certified = Arc::new(certified);
        let mut state = self.state.write().expect("certificate lock poisoned");
        state.published.retain(|(_, end)| *end > now);
        if let Some(end) = certified.not_after {
            state.published.insert(0, (certified.sha256, end));
        }
        state.current = certified.clone();
        drop(state);
        info!(sha256 = %CertificateHash::sha256(&certified.sha256).value, "renewed the self-signed certificate");
        Ok(Some(certified))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificates_stay_under_the_browser_limit() {
        assert!(matches!(make_self_signed(&[], Duration::from_secs(14 * 24 * 3600)), Err(TlsError::TooLong(_))));
        let certs = Certificates::self_signed(vec!["db.example.com".into()], SelfSignedPolicy::default()).unwrap();
        let current = certs.current();
        let not_before = OffsetDateTime::now_utc() - BACKDATE;
        let total = current.not_after.expect("self-signed certificates expire") - not_before;
        assert!(total < BROWSER_MAX_VALIDITY && total > SelfSignedPolicy::default().renew_before);
        assert_eq!(certs.hashes().len(), 1);
        assert_eq!(certs.hashes()[0].value.len(), 64);
        current.server_config().unwrap();
    }

    #[test]
    fn renewal_publishes_both_hashes() {
        let policy = SelfSignedPolicy {
            validity: Duration::from_secs(60),
            renew_before: Duration::from_secs(120),
            check_interval: Duration::from_secs(1),
        };
        let certs = Certificates::self_signed(Vec::new(), policy).unwrap();
        let first = certs.hashes();
        let renewed = certs.renew_if_due().unwrap().expect("due at once with this policy");
        let hashes = certs.hashes();
        assert_eq!(hashes.len(), 2);
        assert_eq!(hashes[1], first[0]);
        assert_eq!(hashes[0], CertificateHash::sha256(&renewed.sha256));
    }
}
