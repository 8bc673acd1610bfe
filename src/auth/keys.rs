//! Key files: one JSON Web Key (RFC 7517) per file, so that any JWT library (e.g. `jose` in Node) can read the same
//! file a backend signs with.
//!
//! - EdDSA: `{"kty":"OKP","crv":"Ed25519","kid":"k1","alg":"EdDSA","x":"…"}` — the public key the server verifies
//!   with. The private file adds `"d"` (the 32-byte seed); only `driftdb token` and the app's backend read it.
//! - HS256: `{"kty":"oct","kid":"k2","alg":"HS256","k":"…"}` — a shared secret, the same file on both sides.
//!
//! `x`, `d` and `k` are unpadded base64url, as JWK has them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};

/// Shortest HS256 secret accepted: 256 bits, the hash's output size (RFC 7518 3.2).
const MIN_SECRET_BYTES: usize = 32;

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("key file {path} is not a JSON Web Key: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("key file {path}: {why}")]
    Invalid { path: PathBuf, why: String },
    #[error("two key files use the key id `{0}`")]
    DuplicateKid(String),
    #[error("cannot write key file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// A key file as stored: the JWK members DriftDB uses.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kty: String,
    pub kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Ed25519 public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Ed25519 private seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
    /// HS256 secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<String>,
}

/// The algorithm a key is for; a token must name the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyAlgorithm {
    /// Ed25519 signatures: the server holds only the public key.
    #[value(name = "eddsa")]
    EdDsa,
    /// HMAC-SHA256 with a secret shared by the server and the token issuer.
    #[value(name = "hs256")]
    Hs256,
}

impl KeyAlgorithm {
    fn jwt(self) -> Algorithm {
        match self {
            KeyAlgorithm::EdDsa => Algorithm::EdDSA,
            KeyAlgorithm::Hs256 => Algorithm::HS256,
        }
    }
}

/// A key the server verifies tokens with.
pub struct VerifyingKey {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// The verification keys by `kid`.
#[derive(Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyingKey>,
}

impl KeySet {
    /// Reads every `--auth-key-file`. A private Ed25519 key is refused: the server only needs the public one, and
    /// holding the seed would let anyone who reads the server's disk issue tokens.
    pub fn load(paths: &[PathBuf]) -> Result<Self, KeyError> {
        let mut keys = HashMap::new();
        for path in paths {
            let jwk = read_jwk(path)?;
            let invalid = |why: &str| KeyError::Invalid { path: path.clone(), why: why.to_owned() };
            let verifying = match algorithm_of(&jwk).map_err(|why| invalid(&why))? {
                KeyAlgorithm::EdDsa => {
                    if jwk.d.is_some() {
                        return Err(invalid("holds a private key (`d`); give the server the public key file"));
                    }
                    let x = jwk.x.as_deref().ok_or_else(|| invalid("an Ed25519 key needs `x`"))?;
                    let public = decode_bytes::<32>(x).map_err(|why| invalid(&format!("`x` {why}")))?;
                    ed25519_dalek::VerifyingKey::from_bytes(&public)
                        .map_err(|_| invalid("`x` is not an Ed25519 public key"))?;
                    VerifyingKey {
                        algorithm: Algorithm::EdDSA,
                        key: DecodingKey::from_ed_components(x).map_err(|e| invalid(&e.to_string()))?,
                    }
                }
                KeyAlgorithm::Hs256 => {
                    let secret = hs256_secret(&jwk).map_err(|why| invalid(&why))?;
                    let key = DecodingKey::from_secret(&secret).map_err(|e| invalid(&e.to_string()))?;
                    VerifyingKey { algorithm: Algorithm::HS256, key }
                }
            };
            if keys.insert(jwk.kid.clone(), verifying).is_some() {
                return Err(KeyError::DuplicateKid(jwk.kid));
            }
        }
        Ok(KeySet { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }
}

/// A key that signs tokens (`driftdb token`, tests).
pub struct SigningKeyFile {
    pub kid: String,
    pub algorithm: Algorithm,
    pub key: EncodingKey,
}

impl SigningKeyFile {
    /// Reads a private Ed25519 JWK or an HS256 one.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let jwk = read_jwk(path)?;
        Self::from_jwk(&jwk).map_err(|why| KeyError::Invalid { path: path.to_owned(), why })
    }

    pub fn from_jwk(jwk: &Jwk) -> Result<Self, String> {
        let algorithm = algorithm_of(jwk)?;
        let key = match algorithm {
            KeyAlgorithm::EdDsa => {
                let d = jwk.d.as_deref().ok_or("signing needs the private key file (with `d`)")?;
                let seed = decode_bytes::<32>(d).map_err(|why| format!("`d` {why}"))?;
                let der = SigningKey::from_bytes(&seed).to_pkcs8_der().map_err(|e| e.to_string())?;
                EncodingKey::from_ed_der(der.as_bytes())
            }
            KeyAlgorithm::Hs256 => EncodingKey::from_secret(&hs256_secret(jwk)?).map_err(|e| e.to_string())?,
        };
        Ok(SigningKeyFile { kid: jwk.kid.clone(), algorithm: algorithm.jwt(), key })
    }
}

/// A fresh key: for EdDSA the private JWK and its public half, for HS256 the one secret JWK (twice).
pub fn generate(kid: &str, algorithm: KeyAlgorithm) -> (Jwk, Jwk) {
    let blank = Jwk { kty: String::new(), kid: kid.to_owned(), alg: None, crv: None, x: None, d: None, k: None };
    match algorithm {
        KeyAlgorithm::EdDsa => {
            let signing = SigningKey::from_bytes(&random_bytes::<32>());
            let public = Jwk {
                kty: "OKP".into(),
                alg: Some("EdDSA".into()),
                crv: Some("Ed25519".into()),
                x: Some(URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes())),
                ..blank
            };
            let private = Jwk { d: Some(URL_SAFE_NO_PAD.encode(signing.as_bytes())), ..public.clone() };
            (private, public)
        }
        KeyAlgorithm::Hs256 => {
            let secret = Jwk {
                kty: "oct".into(),
                alg: Some("HS256".into()),
                k: Some(URL_SAFE_NO_PAD.encode(random_bytes::<MIN_SECRET_BYTES>())),
                ..blank
            };
            (secret.clone(), secret)
        }
    }
}

/// Writes a JWK readable by its owner only (it may be a secret).
pub fn write_jwk(path: &Path, jwk: &Jwk) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = serde_json::to_string_pretty(jwk).expect("a JWK serializes") + "\n";
    let write = || {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
        file.write_all(text.as_bytes())
    };
    write().map_err(|source| KeyError::Write { path: path.to_owned(), source })
}

fn read_jwk(path: &Path) -> Result<Jwk, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read { path: path.to_owned(), source })?;
    serde_json::from_str(&text).map_err(|source| KeyError::Json { path: path.to_owned(), source })
}

fn algorithm_of(jwk: &Jwk) -> Result<KeyAlgorithm, String> {
    if jwk.kid.is_empty() {
        return Err("`kid` must not be empty".into());
    }
    match (jwk.kty.as_str(), jwk.crv.as_deref(), jwk.alg.as_deref()) {
        ("OKP", Some("Ed25519"), None | Some("EdDSA")) => Ok(KeyAlgorithm::EdDsa),
        ("oct", _, None | Some("HS256")) => Ok(KeyAlgorithm::Hs256),
        (kty, crv, alg) => Err(format!(
            "unsupported key (kty {kty}, crv {crv:?}, alg {alg:?}): use an Ed25519 OKP key or an HS256 oct key"
        )),
    }
}

fn hs256_secret(jwk: &Jwk) -> Result<Vec<u8>, String> {
    let k = jwk.k.as_deref().ok_or("an HS256 key needs `k`")?;
    let secret = URL_SAFE_NO_PAD.decode(k).map_err(|e| format!("`k` is not base64url: {e}"))?;
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!("`k` must hold at least {MIN_SECRET_BYTES} bytes"));
    }
    Ok(secret)
}

fn decode_bytes<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|e| format!("is not base64url: {e}"))?;
    bytes.try_into().map_err(|_| format!("must be {N} bytes"))
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    bytes
}
