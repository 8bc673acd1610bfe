//! Who may connect, and how fast: the `Origin` allow-list, the per-IP connect rate and the per-connection message
//! rate. Shared by the WebSocket and WebTransport transports so both refuse the same clients the same way.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::close::CloseReason;
use crate::config::LimitsConfig;

/// Why a request was refused before it became a connection.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OriginRefused {
    #[error("origin `{0}` is not allowed to connect")]
    NotAllowed(String),
    #[error("an Origin header is required")]
    Missing,
}

/// `POST /new` from one address came faster than its room-creation rate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("too many new rooms from this address; retry in a moment")]
pub struct RoomCreationLimited;

/// Checks new connections against the origin allow-list and the per-IP connect rate, and room creation against the
/// per-IP room rate.
pub struct Admission {
    origins: Vec<OriginPattern>,
    require_origin: bool,
    connects: Option<DefaultKeyedRateLimiter<IpAddr>>,
    new_rooms: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl Admission {
    pub fn new(config: &LimitsConfig) -> Self {
        Admission {
            origins: config.allowed_origins.iter().map(|p| OriginPattern::parse(p)).collect(),
            require_origin: config.require_origin,
            connects: quota(config.max_connects_per_ip_per_second, config.connect_burst).map(RateLimiter::keyed),
            new_rooms: quota(config.max_new_rooms_per_ip_per_second, config.new_room_burst).map(RateLimiter::keyed),
        }
    }

    /// Allows a request with this `Origin` header (or none) to connect.
    pub fn check_origin(&self, origin: Option<&str>) -> Result<(), OriginRefused> {
        match origin {
            None if self.require_origin => Err(OriginRefused::Missing),
            None => Ok(()),
            Some(_) if self.origins.is_empty() => Ok(()),
            Some(origin) if self.origins.iter().any(|p| p.matches(origin)) => Ok(()),
            Some(origin) => Err(OriginRefused::NotAllowed(origin.to_owned())),
        }
    }

    /// Counts a new connection from `ip` against its rate.
    pub fn check_connect_rate(&self, ip: IpAddr) -> Result<(), CloseReason> {
        match &self.connects {
            Some(limiter) if limiter.check_key(&ip).is_err() => Err(CloseReason::ConnectRateLimited),
            _ => Ok(()),
        }
    }

    /// Counts a room created on behalf of `ip` against its room-creation rate: without it one client fills the
    /// server's room cap in seconds.
    pub fn check_room_creation(&self, ip: IpAddr) -> Result<(), RoomCreationLimited> {
        match &self.new_rooms {
            Some(limiter) if limiter.check_key(&ip).is_err() => Err(RoomCreationLimited),
            _ => Ok(()),
        }
    }

    /// Forgets addresses whose buckets are full again, so the tables do not grow without bound.
    pub fn forget_idle_addresses(&self) {
        for limiter in [&self.connects, &self.new_rooms].into_iter().flatten() {
            limiter.retain_recent();
        }
    }
}

/// A connection's message rate: a token bucket of `burst` messages refilled at `per_second`.
pub struct MessageRate(Option<DefaultDirectRateLimiter>);

impl MessageRate {
    pub fn new(config: &LimitsConfig) -> Self {
        MessageRate(quota(config.max_messages_per_second, config.message_burst).map(RateLimiter::direct))
    }

    /// Counts one received message.
    pub fn check(&self) -> Result<(), CloseReason> {
        match &self.0 {
            Some(limiter) if limiter.check().is_err() => Err(CloseReason::RateLimited),
            _ => Ok(()),
        }
    }
}

fn quota(per_second: u32, burst: u32) -> Option<Quota> {
    let per_second = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst.max(per_second.get())).unwrap_or(per_second);
    Some(Quota::per_second(per_second).allow_burst(burst))
}

/// One `--allowed-origin` value: an exact origin, `*`, or a wildcard subdomain such as `https://*.example.com`.
#[derive(Debug)]
enum OriginPattern {
    Any,
    Exact(String),
    /// `scheme://` and `.domain[:port]` around one or more subdomain labels.
    Subdomains {
        prefix: String,
        suffix: String,
    },
}

impl OriginPattern {
    fn parse(pattern: &str) -> Self {
        let pattern = pattern.trim_end_matches('/').to_ascii_lowercase();
        if pattern == "*" {
            return OriginPattern::Any;
        }
        match pattern.split_once("://*.") {
            Some((scheme, domain)) => {
                OriginPattern::Subdomains { prefix: format!("{scheme}://"), suffix: format!(".{domain}") }
            }
            None => OriginPattern::Exact(pattern),
        }
    }

    fn matches(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        match self {
            OriginPattern::Any => true,
            OriginPattern::Exact(exact) => origin == *exact,
            OriginPattern::Subdomains { prefix, suffix } => origin
                .strip_prefix(prefix.as_str())
                .and_then(|rest| rest.strip_suffix(suffix.as_str()))
                .is_some_and(|labels| !labels.is_empty() && !labels.contains(['/', ':', '@'])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(origins: &[&str], require_origin: bool) -> Admission {
        let mut config = crate::config::ServerConfig::default().limits;
        config.allowed_origins = origins.iter().map(|s| s.to_string()).collect();
        config.require_origin = require_origin;
        Admission::new(&config)
    }

    #[test]
    fn origins_exact_and_wildcard() {
        let a = admission(&["https://app.example.com", "https://*.example.org"], false);
        assert!(a.check_origin(Some("https://app.example.com")).is_ok());
        assert!(a.check_origin(Some("HTTPS://APP.EXAMPLE.COM")).is_ok());
        assert!(a.check_origin(Some("https://a.b.example.org")).is_ok());
        assert!(a.check_origin(None).is_ok(), "non-browser clients are allowed by default");
        for refused in
            ["https://evil.com", "http://app.example.com", "https://example.org", "https://x.example.org.evil"]
        {
            assert_eq!(a.check_origin(Some(refused)), Err(OriginRefused::NotAllowed(refused.into())), "{refused}");
        }
    }

    #[test]
    fn no_list_allows_all_and_require_origin_refuses_none() {
        assert!(admission(&[], false).check_origin(Some("https://any.where")).is_ok());
        assert_eq!(admission(&[], true).check_origin(None), Err(OriginRefused::Missing));
    }

    #[test]
    fn connect_rate_is_per_address() {
        let mut config = crate::config::ServerConfig::default().limits;
        config.max_connects_per_ip_per_second = 1;
        config.connect_burst = 2;
        let a = Admission::new(&config);
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        let two: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(a.check_connect_rate(one).is_ok());
        assert!(a.check_connect_rate(one).is_ok());
        assert_eq!(a.check_connect_rate(one), Err(CloseReason::ConnectRateLimited));
        assert!(a.check_connect_rate(two).is_ok());
    }

    #[test]
    fn room_creation_rate_is_per_address() {
        let mut config = crate::config::ServerConfig::default().limits;
        config.max_new_rooms_per_ip_per_second = 1;
        config.new_room_burst = 2;
        let a = Admission::new(&config);
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(a.check_room_creation(one).is_ok());
        assert!(a.check_room_creation(one).is_ok());
        assert_eq!(a.check_room_creation(one), Err(RoomCreationLimited));
        assert!(a.check_room_creation("10.0.0.2".parse().unwrap()).is_ok());
        assert!(a.check_connect_rate(one).is_ok(), "connections have their own rate");
    }

    #[test]
    fn message_rate_closes_after_the_burst() {
        let mut config = crate::config::ServerConfig::default().limits;
        config.max_messages_per_second = 1;
        config.message_burst = 3;
        let rate = MessageRate::new(&config);
        assert!((0..3).all(|_| rate.check().is_ok()));
        assert_eq!(rate.check(), Err(CloseReason::RateLimited));
        config.max_messages_per_second = 0;
        let unlimited = MessageRate::new(&config);
        assert!((0..100_000).all(|_| unlimited.check().is_ok()));
    }
}
