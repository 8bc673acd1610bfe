//! Who may connect, and how fast: the `Origin` allow-list, the per-IP connect rate and the per-connection message
//! rate. Shared by the WebSocket and WebTransport transports so both refuse the same clients the same way.
//!
//! The rate limiters run on a governor [`Clock`]: the default one in the server, a fake one that tests advance by
//! hand, so rate tests need no sleeps.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

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

/// A token bucket per address, on clock `C`.
type KeyedLimiter<C> = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One token bucket, on clock `C`.
type DirectLimiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Checks new connections against the origin allow-list and the per-IP connect rate, and room creation against the
/// per-IP room rate.
pub struct Admission<C: Clock = DefaultClock> {
    origins: Vec<OriginPattern>,
    require_origin: bool,
    connects: Option<KeyedLimiter<C>>,
    new_rooms: Option<KeyedLimiter<C>>,
}

impl Admission {
    /// Rates measured on the real clock.
    pub fn new(config: &LimitsConfig) -> Self {
        Self::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Admission<C> {
    /// Rates measured on `clock` (both limiters share it).
    pub fn with_clock(config: &LimitsConfig, clock: C) -> Self {
        let keyed = |per_second, burst| {
            quota(per_second, burst)
                .map(|quota| RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock.clone()))
        };
        Admission {
            origins: config.allowed_origins.iter().map(|p| OriginPattern::parse(p)).collect(),
            require_origin: config.require_origin,
            connects: keyed(config.max_connects_per_ip_per_second, config.connect_burst),
            new_rooms: keyed(config.max_new_rooms_per_ip_per_second, config.new_room_burst),
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
pub struct MessageRate<C: Clock = DefaultClock>(Option<DirectLimiter<C>>);

impl MessageRate {
    /// A rate measured on the real clock.
    pub fn new(config: &LimitsConfig) -> Self {
        Self::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock> MessageRate<C> {
    /// A rate measured on `clock`.
    pub fn with_clock(config: &LimitsConfig, clock: C) -> Self {
        let quota = quota(config.max_messages_per_second, config.message_burst);
        MessageRate(quota.map(|quota| RateLimiter::direct_with_clock(quota, clock)))
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
    use std::fmt::Debug;
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

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

    /// One token a second: the refill interval of the rate tests.
    const REFILL: Duration = Duration::from_secs(1);

    fn rates(tweak: impl FnOnce(&mut LimitsConfig)) -> LimitsConfig {
        let mut config = crate::config::ServerConfig::default().limits;
        tweak(&mut config);
        config
    }

    /// Spends a full burst through `check`, sees the next one refused with `refused`, then one more allowed once
    /// `clock` has moved on by one refill interval, and refused again.
    fn assert_burst_then_refill<E: PartialEq + Debug>(
        clock: &FakeRelativeClock,
        burst: usize,
        check: impl Fn() -> Result<(), E>,
        refused: E,
    ) {
        for n in 0..burst {
            assert_eq!(check(), Ok(()), "message {n} of the burst");
        }
        assert_eq!(check(), Err(refused), "past the burst");
        clock.advance(REFILL - Duration::from_nanos(1));
        assert!(check().is_err(), "not yet refilled");
        clock.advance(Duration::from_nanos(1));
        assert_eq!(check(), Ok(()), "one token refilled");
        assert!(check().is_err(), "only one");
    }

    #[test]
    fn connect_rate_is_per_address_and_refills() {
        let config = rates(|c| {
            c.max_connects_per_ip_per_second = 1;
            c.connect_burst = 2;
        });
        let clock = FakeRelativeClock::default();
        let a = Admission::with_clock(&config, clock.clone());
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        assert_burst_then_refill(&clock, 2, || a.check_connect_rate(one), CloseReason::ConnectRateLimited);
        assert!(a.check_connect_rate("10.0.0.2".parse().unwrap()).is_ok(), "another address has its own bucket");
    }

    #[test]
    fn room_creation_rate_is_per_address_and_refills() {
        let config = rates(|c| {
            c.max_new_rooms_per_ip_per_second = 1;
            c.new_room_burst = 2;
        });
        let clock = FakeRelativeClock::default();
        let a = Admission::with_clock(&config, clock.clone());
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        assert_burst_then_refill(&clock, 2, || a.check_room_creation(one), RoomCreationLimited);
        assert!(a.check_room_creation("10.0.0.2".parse().unwrap()).is_ok());
        assert!(a.check_connect_rate(one).is_ok(), "connections have their own rate");
    }

    #[test]
    fn message_rate_closes_after_the_burst_and_refills() {
        let config = rates(|c| {
            c.max_messages_per_second = 1;
            c.message_burst = 3;
        });
        let clock = FakeRelativeClock::default();
        let rate = MessageRate::with_clock(&config, clock.clone());
        assert_burst_then_refill(&clock, 3, || rate.check(), CloseReason::RateLimited);
        let unlimited = MessageRate::new(&rates(|c| c.max_messages_per_second = 0));
        assert!((0..100_000).all(|_| unlimited.check().is_ok()));
    }

    #[test]
    fn idle_addresses_are_forgotten_once_their_buckets_refilled() {
        let config = rates(|c| {
            c.max_connects_per_ip_per_second = 1;
            c.connect_burst = 2;
            c.max_new_rooms_per_ip_per_second = 1;
            c.new_room_burst = 2;
        });
        let clock = FakeRelativeClock::default();
        let a = Admission::with_clock(&config, clock.clone());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        a.check_connect_rate(ip).unwrap();
        a.check_connect_rate(ip).unwrap();
        a.check_room_creation(ip).unwrap();
        let tracked = |limiter: &Option<KeyedLimiter<FakeRelativeClock>>| limiter.as_ref().unwrap().len();
        a.forget_idle_addresses();
        assert_eq!((tracked(&a.connects), tracked(&a.new_rooms)), (1, 1), "still refilling");
        // The connect bucket (two tokens spent) is full after two intervals; governor keeps a key one interval
        // past full before it counts as fresh.
        clock.advance(3 * REFILL);
        a.forget_idle_addresses();
        assert_eq!((tracked(&a.connects), tracked(&a.new_rooms)), (0, 0));
        assert_eq!(a.check_connect_rate(ip), Ok(()), "a forgotten address starts with a full bucket");
    }
}
