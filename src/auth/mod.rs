//! Who may do what: signed room tokens (JWTs) with capabilities, and the admin token that creates rooms.
//!
//! Off by default: without `--auth-key-file` every connection gets a [`Grant`] for everything, as before. The
//! transports call one function each on their accept path, [`Auth::admit`], which turns the request's token and
//! room into a grant or a [`Refusal`] (answered as an HTTP status before any upgrade); the connection then checks
//! each message against its live grant through [`Access`].
//!
//! - [`keys`]: key files (JWK), verification keys by `kid`, key generation.
//! - [`claims`]: the claims, capabilities and room patterns.
//! - [`access`]: a connection's grant over time: per-message checks, in-band refresh, expiry.

pub mod access;
pub mod claims;
pub mod keys;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Header, Validation};
use sha2::{Digest, Sha256};

pub use access::Access;
pub use claims::{Capabilities, Capability, Claims, RoomPattern};
use keys::{KeyError, KeySet, SigningKeyFile};

use crate::config::AuthConfig;
use crate::engine::RoomId;

/// Why the server's auth settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot read the admin token file {path}: {source}")]
    AdminToken { path: PathBuf, source: std::io::Error },
    #[error("the admin token file {0} is empty")]
    EmptyAdminToken(PathBuf),
    #[error("--auth-audience needs --auth-key-file")]
    AudienceWithoutKeys,
}

/// Why a request or message is refused. The text is sent to the client; it never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("a token is required: pass ?token= or an Authorization: Bearer header")]
    MissingToken,
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("token expired")]
    Expired,
    #[error("the token is not for room `{0}`")]
    OtherRoom(String),
    #[error("the token lacks the `{0}` capability")]
    Missing(Capability),
    #[error("the admin token is required")]
    AdminRequired,
}

impl Refusal {
    /// The HTTP status of the refusal: 401 when the credential is absent, bad or expired, 403 when it is good but
    /// does not allow this.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Refusal::MissingToken | Refusal::InvalidToken(_) | Refusal::Expired | Refusal::AdminRequired => {
                http::StatusCode::UNAUTHORIZED
            }
            Refusal::OtherRoom(_) | Refusal::Missing(_) => http::StatusCode::FORBIDDEN,
        }
    }
}

/// What a verified token (or auth being off) allows one connection or request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub can: Capabilities,
    /// The holder's identity (`sub`).
    pub subject: Option<String>,
    /// Seconds since the Unix epoch after which the grant is void; `None` when auth is off.
    pub expires_at: Option<u64>,
}

impl Grant {
    /// Everything, forever: every connection's grant when auth is off.
    pub fn unrestricted() -> Self {
        Grant { can: Capabilities::ALL, subject: None, expires_at: None }
    }

    /// Refuses what the grant does not cover.
    pub fn require(&self, capability: Capability) -> Result<(), Refusal> {
        if self.can.contains(capability) { Ok(()) } else { Err(Refusal::Missing(capability)) }
    }

    /// How long until the grant expires (zero once it has); `None` if it never does.
    pub fn remaining(&self) -> Option<Duration> {
        let expires_at = UNIX_EPOCH + Duration::from_secs(self.expires_at?);
        Some(expires_at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
    }
}

/// The server's auth settings: verification keys, audience, admin token.
#[derive(Default)]
pub struct Auth {
    keys: KeySet,
    audience: Option<String>,
    /// SHA-256 of the admin token: compared digest to digest, so the comparison's timing says nothing about the
    /// token itself.
    admin_digest: Option<[u8; 32]>,
}

impl Auth {
    /// Reads the key files and the admin token file of `--auth-key-file` and `--admin-token-file`.
    pub fn load(config: &AuthConfig) -> Result<Self, AuthError> {
        let keys = KeySet::load(&config.auth_key_files)?;
        if keys.is_empty() && config.auth_audience.is_some() {
            return Err(AuthError::AudienceWithoutKeys);
        }
        let admin_digest = match &config.admin_token_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| AuthError::AdminToken { path: path.clone(), source })?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(AuthError::EmptyAdminToken(path.clone()));
                }
                Some(digest(token))
            }
        };
        Ok(Auth { keys, audience: config.auth_audience.clone(), admin_digest })
    }

    /// Whether tokens are checked at all.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The accept-path hook: the grant for a connection or request to `room` carrying `token`, which must allow
    /// `debug` if the connection asks for it. With auth off, everything is granted.
    pub fn admit(&self, token: Option<&str>, room: &RoomId, debug: bool) -> Result<Grant, Refusal> {
        if !self.enabled() {
            return Ok(Grant::unrestricted());
        }
        let claims = self.verify(token.ok_or(Refusal::MissingToken)?)?;
        if !claims.room.matches(room) {
            return Err(Refusal::OtherRoom(room.to_string()));
        }
        let grant = Grant { can: claims.can.into_iter().collect(), subject: claims.sub, expires_at: Some(claims.exp) };
        if debug {
            grant.require(Capability::Debug)?;
        }
        Ok(grant)
    }

    /// Whether `bearer` is the admin token; always true without `--admin-token-file`.
    pub fn is_admin(&self, bearer: Option<&str>) -> bool {
        match (&self.admin_digest, bearer) {
            (None, _) => true,
            (Some(expected), Some(bearer)) => digest(bearer) == *expected,
            (Some(_), None) => false,
        }
    }

    /// Whether creating rooms needs the admin token.
    pub fn admin_required(&self) -> bool {
        self.admin_digest.is_some()
    }

    /// Checks a token's signature (by its `kid`), `exp`, `nbf` and `aud`, and reads its claims.
    fn verify(&self, token: &str) -> Result<Claims, Refusal> {
        let invalid = |why: &str| Refusal::InvalidToken(why.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("not a JWT"))?;
        let kid = header.kid.as_deref().ok_or_else(|| invalid("no `kid` in the header"))?;
        let key = self.keys.get(kid).ok_or_else(|| invalid("unknown `kid`"))?;
        let mut validation = Validation::new(key.algorithm);
        // Expiry is exact: the server closes connections at `exp`, so a token must not outlive it either.
        validation.leeway = 0;
        validation.validate_nbf = true;
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.set_required_spec_claims(&["exp", "aud"]);
            }
            None => validation.validate_aud = false,
        }
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => Refusal::Expired,
                ErrorKind::ImmatureSignature => invalid("not valid yet (`nbf`)"),
                ErrorKind::InvalidAudience => invalid("wrong audience (`aud`)"),
                ErrorKind::InvalidSignature => invalid("bad signature"),
                ErrorKind::InvalidAlgorithm => invalid("the algorithm does not match the key"),
                ErrorKind::MissingRequiredClaim(claim) => invalid(&format!("missing claim `{claim}`")),
                ErrorKind::Json(_) => invalid("claims must include `exp`, `room` and `can`, with known capabilities"),
                _ => invalid("cannot be decoded"),
            })?;
        Ok(data.claims)
    }
}

/// Signs a token with `key` (`driftdb token` and tests).
pub fn issue(key: &SigningKeyFile, claims: &Claims) -> String {
    let mut header = Header::new(key.algorithm);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.key).expect("claims serialize and the key signs")
}

/// Seconds since the Unix epoch, for `exp` and `nbf`.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The request's token: an `Authorization: Bearer` header, else a `token` query parameter (browsers cannot set
/// headers on a WebSocket). `?` separates parameters too, as in the connect flags.
pub fn request_token<'a>(headers: &'a http::HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    bearer(headers).or_else(|| {
        query?.split(['&', '?']).find_map(|pair| pair.strip_prefix("token=")).filter(|token| !token.is_empty())
    })
}

/// The `Authorization: Bearer` token, if any.
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|token| !token.is_empty())
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comes_from_the_bearer_header_or_the_query() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(request_token(&headers, Some("cbor=true&token=abc")), Some("abc"));
        assert_eq!(request_token(&headers, Some("cbor=true?token=abc")), Some("abc"));
        assert_eq!(request_token(&headers, Some("token=")), None);
        assert_eq!(request_token(&headers, None), None);
        headers.insert(http::header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(request_token(&headers, Some("token=abc")), Some("xyz"));
        headers.insert(http::header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn refusal_statuses() {
        assert_eq!(Refusal::MissingToken.status(), 401);
        assert_eq!(Refusal::Expired.status(), 401);
        assert_eq!(Refusal::OtherRoom("r".into()).status(), 403);
        assert_eq!(Refusal::Missing(Capability::Write).to_string(), "the token lacks the `write` capability");
    }
}
