//! The seeded impairment model of one direction of a link: what happens to each packet (dropped, delayed, reordered,
//! duplicated), decided from the packet's arrival time and size alone, so that a seed always gives the same fates.
//!
//! Order of the decisions for a packet arriving at `now`:
//! 1. **Outage**: a scheduled outage window ([`Impairment::outages`]) or a live one ([`LinkControl::outage`]) drops it.
//! 2. **Loss**: Gilbert–Elliott burst loss (a two-state Markov chain stepped once per packet) and/or Bernoulli loss.
//!    A live loss override ([`LinkControl::set_loss_override`]) replaces the configured Bernoulli rate.
//! 3. **Bandwidth cap**: the packet waits behind the bytes already queued for the link; if that queue would exceed
//!    [`Impairment::queue_bytes`] the packet is tail-dropped. Its transmission takes `len × 8 / rate`.
//! 4. **Delay**: a base one-way delay plus normally distributed jitter (truncated at 0). Jitter never reorders by
//!    itself: a packet is not delivered before the one in front of it (like a real queue).
//! 5. **Reordering**: with probability `reorder` a packet is held back `reorder_gap_ms` longer, so that the packets
//!    after it overtake it.
//! 6. **Duplication**: with probability `duplicate` a second copy is delivered right after the first.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A small, fast, seeded generator (xoshiro256** seeded through SplitMix64): the same seed gives the same stream on
/// every platform and with every dependency version.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng { s: [next(), next(), next(), next()] }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Derives an independent generator (e.g. one per direction) from this one's seed stream.
    pub fn fork(&mut self, salt: u64) -> Rng {
        Rng::new(self.next_u64() ^ salt.wrapping_mul(0x2545_F491_4F6C_DD1D))
    }
}

/// Gilbert–Elliott burst loss: a good and a bad state, each with its own loss probability.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GilbertElliott {
    /// Probability per packet of moving from good to bad.
    pub p_good_to_bad: f64,
    /// Probability per packet of moving from bad to good (the mean burst lasts `1 / p_bad_to_good` packets).
    pub p_bad_to_good: f64,
    /// Loss probability in the good state (often 0).
    pub loss_good: f64,
    /// Loss probability in the bad state (often 1).
    pub loss_bad: f64,
}

impl GilbertElliott {
    /// A chain whose long-run loss rate is `rate` with bursts of `mean_burst` packets (loss 0 when good, 1 when bad).
    pub fn with_rate(rate: f64, mean_burst: f64) -> Self {
        let r = 1.0 / mean_burst.max(1.0);
        // stationary P(bad) = p / (p + r) = rate  =>  p = rate * r / (1 - rate)
        let p = if rate >= 1.0 { 1.0 } else { rate * r / (1.0 - rate) };
        GilbertElliott { p_good_to_bad: p.min(1.0), p_bad_to_good: r, loss_good: 0.0, loss_bad: 1.0 }
    }

    /// The long-run loss rate.
    pub fn mean_loss(&self) -> f64 {
        let total = self.p_good_to_bad + self.p_bad_to_good;
        if total == 0.0 {
            return self.loss_good;
        }
        let bad = self.p_good_to_bad / total;
        bad * self.loss_bad + (1.0 - bad) * self.loss_good
    }
}

/// A scheduled outage: the link drops everything from `start_ms` for `duration_ms` (relative to the model's start).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outage {
    pub start_ms: u64,
    pub duration_ms: u64,
}

/// What one direction of the link does to packets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Impairment {
    /// Bernoulli loss probability per packet.
    pub loss: f64,
    /// Burst loss, applied in addition to `loss`.
    pub burst: Option<GilbertElliott>,
    /// Base one-way delay.
    pub delay_ms: f64,
    /// Standard deviation of the per-packet delay (normal, truncated at zero extra delay).
    pub jitter_ms: f64,
    /// Probability that a packet is held back so that later packets overtake it.
    pub reorder: f64,
    /// How much longer a reordered packet is held back.
    pub reorder_gap_ms: f64,
    /// Probability that a packet is delivered twice.
    pub duplicate: f64,
    /// Bandwidth cap in bits per second (`None`: unlimited).
    pub rate_bps: Option<u64>,
    /// The most bytes waiting for a capped link; a packet that would exceed it is dropped.
    pub queue_bytes: usize,
    /// Scheduled outages.
    pub outages: Vec<Outage>,
}

impl Impairment {
    /// No impairment at all.
    pub fn none() -> Self {
        Impairment::default()
    }

    /// Bernoulli `loss` and half of `rtt_ms` as this direction's delay.
    pub fn lossy(loss: f64, rtt_ms: f64) -> Self {
        Impairment { loss, delay_ms: rtt_ms / 2.0, ..Impairment::default() }
    }
}

/// Live controls shared by both directions of a link and the scenario driving it: an outage that starts now, and a
/// loss rate that replaces the configured one (e.g. only during handshakes).
#[derive(Debug, Default)]
pub struct LinkControl {
    /// Packets arriving in [down_from, down_until) (µs on the link's clock) are dropped.
    down_from_us: AtomicU64,
    down_until_us: AtomicU64,
    /// Loss override in parts per million, plus one (0 = no override).
    loss_override: AtomicU32,
}

impl LinkControl {
    pub fn new() -> Arc<Self> {
        Arc::new(LinkControl::default())
    }

    /// Takes the link down from `now` (on the link's clock) for `duration`.
    pub fn outage(&self, now: Duration, duration: Duration) {
        self.down_until_us.store(0, Ordering::SeqCst);
        self.down_from_us.store(now.as_micros() as u64, Ordering::SeqCst);
        self.down_until_us.store((now + duration).as_micros() as u64, Ordering::SeqCst);
    }

    pub fn set_loss_override(&self, loss: Option<f64>) {
        let value = loss.map_or(0, |l| (l.clamp(0.0, 1.0) * 1e6) as u32 + 1);
        self.loss_override.store(value, Ordering::SeqCst);
    }

    fn is_down(&self, now: Duration) -> bool {
        let now = now.as_micros() as u64;
        now >= self.down_from_us.load(Ordering::SeqCst) && now < self.down_until_us.load(Ordering::SeqCst)
    }

    fn loss_override(&self) -> Option<f64> {
        match self.loss_override.load(Ordering::SeqCst) {
            0 => None,
            v => Some(f64::from(v - 1) / 1e6),
        }
    }
}

/// Why a packet was dropped, or what else happened to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStats {
    pub packets: u64,
    pub bytes: u64,
    pub delivered: u64,
    pub lost_random: u64,
    pub lost_burst: u64,
    pub lost_queue: u64,
    pub lost_outage: u64,
    pub reordered: u64,
    pub duplicated: u64,
}

impl LinkStats {
    pub fn lost(&self) -> u64 {
        self.lost_random + self.lost_burst + self.lost_queue + self.lost_outage
    }

    pub fn add(&mut self, other: &LinkStats) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.delivered += other.delivered;
        self.lost_random += other.lost_random;
        self.lost_burst += other.lost_burst;
        self.lost_queue += other.lost_queue;
        self.lost_outage += other.lost_outage;
        self.reordered += other.reordered;
        self.duplicated += other.duplicated;
    }
}

/// The fate of one packet: when each copy is delivered (empty: dropped).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fate {
    pub deliveries: Vec<Duration>,
}

/// One direction's model, stepped once per packet.
#[derive(Debug)]
pub struct Model {
    config: Impairment,
    control: Arc<LinkControl>,
    rng: Rng,
    burst_bad: bool,
    /// When the capped link has sent everything queued so far.
    link_free_at: Duration,
    /// The delivery time of the last packet delivered in order (jitter never reorders).
    last_delivery: Duration,
    pub stats: LinkStats,
}

impl Model {
    pub fn new(config: Impairment, seed: u64, control: Arc<LinkControl>) -> Self {
        Model {
            config,
            control,
            rng: Rng::new(seed),
            burst_bad: false,
            link_free_at: Duration::ZERO,
            last_delivery: Duration::ZERO,
            stats: LinkStats::default(),
        }
    }

    pub fn config(&self) -> &Impairment {
        &self.config
    }

    /// Decides the fate of a packet of `len` bytes arriving at `now` (time since the link started).
    pub fn on_packet(&mut self, now: Duration, len: usize) -> Fate {
        self.stats.packets += 1;
        self.stats.bytes += len as u64;
        let mut fate = Fate::default();
        // Every random draw happens for every packet, whatever the outcome, so that one knob does not shift the
        // random stream of the others.
        let burst_step = self.rng.unit();
        let burst_loss = self.rng.unit();
        let loss_draw = self.rng.unit();
        let jitter_draw = self.rng.normal();
        let reorder_draw = self.rng.unit();
        let duplicate_draw = self.rng.unit();

        let scheduled_outage = self.config.outages.iter().any(|o| {
            let start = Duration::from_millis(o.start_ms);
            now >= start && now < start + Duration::from_millis(o.duration_ms)
        });
        if scheduled_outage || self.control.is_down(now) {
            self.stats.lost_outage += 1;
            return fate;
        }
        if let Some(ge) = self.config.burst {
            self.burst_bad =
                if self.burst_bad { burst_step >= ge.p_bad_to_good } else { burst_step < ge.p_good_to_bad };
            let p = if self.burst_bad { ge.loss_bad } else { ge.loss_good };
            if burst_loss < p {
                self.stats.lost_burst += 1;
                return fate;
            }
        }
        let loss = self.control.loss_override().unwrap_or(self.config.loss);
        if loss > 0.0 && loss_draw < loss {
            self.stats.lost_random += 1;
            return fate;
        }
        let mut sent = now;
        if let Some(rate) = self.config.rate_bps.filter(|r| *r > 0) {
            let start = self.link_free_at.max(now);
            let backlog = (start - now).as_secs_f64() * rate as f64 / 8.0;
            if backlog + len as f64 > self.config.queue_bytes.max(len) as f64 {
                self.stats.lost_queue += 1;
                return fate;
            }
            sent = start + Duration::from_secs_f64(len as f64 * 8.0 / rate as f64);
            self.link_free_at = sent;
        }
        let delay_ms = (self.config.delay_ms + self.config.jitter_ms * jitter_draw).max(0.0);
        let mut at = sent + Duration::from_secs_f64(delay_ms / 1000.0);
        if self.config.reorder > 0.0 && reorder_draw < self.config.reorder {
            self.stats.reordered += 1;
            at += Duration::from_secs_f64(self.config.reorder_gap_ms.max(0.0) / 1000.0);
        } else {
            at = at.max(self.last_delivery);
            self.last_delivery = at;
        }
        fate.deliveries.push(at);
        self.stats.delivered += 1;
        if self.config.duplicate > 0.0 && duplicate_draw < self.config.duplicate {
            self.stats.duplicated += 1;
            fate.deliveries.push(at);
        }
        fate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = 200_000;

    fn model(config: Impairment, seed: u64) -> Model {
        Model::new(config, seed, LinkControl::new())
    }

    /// Sends `n` packets of `len` bytes, one every `gap`, and returns the fates.
    fn run(model: &mut Model, n: usize, len: usize, gap: Duration) -> Vec<Fate> {
        (0..n).map(|i| model.on_packet(gap * i as u32, len)).collect()
    }

    fn close(actual: f64, expected: f64, tolerance: f64, what: &str) {
        assert!((actual - expected).abs() <= tolerance, "{what}: {actual} is not within {tolerance} of {expected}");
    }

    #[test]
    fn same_seed_same_fates_other_seed_other_fates() {
        let config = Impairment {
            loss: 0.1,
            burst: Some(GilbertElliott::with_rate(0.05, 4.0)),
            delay_ms: 25.0,
            jitter_ms: 5.0,
            reorder: 0.02,
            reorder_gap_ms: 10.0,
            duplicate: 0.01,
            rate_bps: Some(10_000_000),
            queue_bytes: 64_000,
            outages: vec![],
        };
        let gap = Duration::from_micros(500);
        let a = run(&mut model(config.clone(), 7), 5_000, 1200, gap);
        let b = run(&mut model(config.clone(), 7), 5_000, 1200, gap);
        let c = run(&mut model(config, 8), 5_000, 1200, gap);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn bernoulli_loss_rate() {
        for loss in [0.01, 0.05, 0.1, 0.2] {
            let mut m = model(Impairment { loss, ..Impairment::none() }, 1);
            let fates = run(&mut m, N, 100, Duration::from_millis(1));
            let lost = fates.iter().filter(|f| f.deliveries.is_empty()).count() as f64 / N as f64;
            close(lost, loss, 0.004, "Bernoulli loss");
            assert_eq!(m.stats.lost_random as usize, fates.iter().filter(|f| f.deliveries.is_empty()).count());
        }
    }

    #[test]
    fn gilbert_elliott_rate_and_burst_length() {
        let ge = GilbertElliott::with_rate(0.05, 5.0);
        close(ge.mean_loss(), 0.05, 1e-9, "stationary loss");
        let mut m = model(Impairment { burst: Some(ge), ..Impairment::none() }, 2);
        let fates = run(&mut m, N, 100, Duration::from_millis(1));
        let lost: Vec<bool> = fates.iter().map(|f| f.deliveries.is_empty()).collect();
        let rate = lost.iter().filter(|l| **l).count() as f64 / N as f64;
        close(rate, 0.05, 0.006, "burst loss rate");
        // mean length of runs of consecutive losses = 1 / p_bad_to_good
        let mut runs = Vec::new();
        let mut current = 0;
        for l in &lost {
            if *l {
                current += 1;
            } else if current > 0 {
                runs.push(current);
                current = 0;
            }
        }
        let mean_run = runs.iter().sum::<usize>() as f64 / runs.len() as f64;
        close(mean_run, 5.0, 0.35, "mean burst length");
        // bursty: far more back-to-back losses than Bernoulli's 5 %
        let pairs = lost.windows(2).filter(|w| w[0] && w[1]).count() as f64;
        let conditional = pairs / lost.iter().filter(|l| **l).count() as f64;
        assert!(conditional > 0.7, "P(loss | previous lost) = {conditional}");
    }

    #[test]
    fn delay_and_jitter() {
        let mut m = model(Impairment { delay_ms: 50.0, jitter_ms: 5.0, ..Impairment::none() }, 3);
        // packets far apart, so that order preservation never holds one back
        let gap = Duration::from_millis(100);
        let fates = run(&mut m, 20_000, 100, gap);
        let delays: Vec<f64> =
            fates.iter().enumerate().map(|(i, f)| (f.deliveries[0] - gap * i as u32).as_secs_f64() * 1000.0).collect();
        let mean = delays.iter().sum::<f64>() / delays.len() as f64;
        let sd = (delays.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / delays.len() as f64).sqrt();
        close(mean, 50.0, 0.2, "mean delay");
        close(sd, 5.0, 0.2, "jitter");
    }

    #[test]
    fn jitter_alone_never_reorders_but_reordering_does() {
        let gap = Duration::from_micros(200);
        let mut m = model(Impairment { delay_ms: 20.0, jitter_ms: 10.0, ..Impairment::none() }, 4);
        let fates = run(&mut m, 20_000, 100, gap);
        assert!(fates.windows(2).all(|w| w[0].deliveries[0] <= w[1].deliveries[0]));

        let config = Impairment { delay_ms: 20.0, reorder: 0.05, reorder_gap_ms: 5.0, ..Impairment::none() };
        let mut m = model(config, 4);
        let fates = run(&mut m, N, 100, gap);
        close(m.stats.reordered as f64 / N as f64, 0.05, 0.003, "reorder probability");
        // a reordered packet is overtaken by the packets sent in the following 5 ms
        let overtaken = fates.windows(2).filter(|w| w[0].deliveries[0] > w[1].deliveries[0]).count() as f64;
        close(overtaken / N as f64, 0.05 * 0.95, 0.004, "packets delivered after their successor");
    }

    #[test]
    fn duplication() {
        let mut m = model(Impairment { duplicate: 0.03, ..Impairment::none() }, 5);
        let fates = run(&mut m, N, 100, Duration::from_millis(1));
        let doubled = fates.iter().filter(|f| f.deliveries.len() == 2).count() as f64 / N as f64;
        close(doubled, 0.03, 0.002, "duplication");
        assert!(fates.iter().all(|f| f.deliveries.len() <= 2 && !f.deliveries.is_empty()));
    }

    #[test]
    fn bandwidth_cap_paces_and_its_queue_tail_drops() {
        // 1 Mbit/s, 1000-byte packets: 8 ms each. Offered: one every 4 ms (2 Mbit/s) for 10 s.
        let config = Impairment { rate_bps: Some(1_000_000), queue_bytes: 20_000, ..Impairment::none() };
        let mut m = model(config, 6);
        let fates = run(&mut m, 2_500, 1000, Duration::from_millis(4));
        let delivered: Vec<Duration> = fates.iter().filter_map(|f| f.deliveries.first().copied()).collect();
        // about half gets through, never faster than the cap
        close(delivered.len() as f64 / 2_500.0, 0.5, 0.02, "share through a link at half the offered rate");
        assert!(delivered.windows(2).all(|w| w[1] - w[0] >= Duration::from_millis(8) - Duration::from_micros(1)));
        assert_eq!(m.stats.lost_queue as usize, 2_500 - delivered.len());
        // the queue never holds more than 20 packets: the queueing delay stays under 21 × 8 ms
        for (i, f) in fates.iter().enumerate() {
            if let Some(at) = f.deliveries.first() {
                assert!(*at - Duration::from_millis(4) * i as u32 <= Duration::from_millis(21 * 8));
            }
        }
        // below the cap, nothing is dropped
        let config = Impairment { rate_bps: Some(1_000_000), queue_bytes: 20_000, ..Impairment::none() };
        let mut m = model(config, 6);
        let fates = run(&mut m, 1_000, 1000, Duration::from_millis(10));
        assert!(fates.iter().all(|f| f.deliveries.len() == 1));
    }

    #[test]
    fn outages_scheduled_and_live() {
        let config = Impairment { outages: vec![Outage { start_ms: 1_000, duration_ms: 3_000 }], ..Impairment::none() };
        let control = LinkControl::new();
        let mut m = Model::new(config, 7, control.clone());
        let fates = run(&mut m, 10_000, 100, Duration::from_millis(1));
        for (i, f) in fates.iter().enumerate() {
            assert_eq!(f.deliveries.is_empty(), (1_000..4_000).contains(&i), "packet at {i} ms");
        }
        control.outage(Duration::from_secs(20), Duration::from_secs(2));
        assert!(m.on_packet(Duration::from_millis(19_999), 10).deliveries.len() == 1);
        assert!(m.on_packet(Duration::from_millis(20_000), 10).deliveries.is_empty());
        assert!(m.on_packet(Duration::from_millis(21_999), 10).deliveries.is_empty());
        assert!(m.on_packet(Duration::from_millis(22_000), 10).deliveries.len() == 1);
        assert_eq!(m.stats.lost_outage, 3_000 + 2);
    }

    #[test]
    fn loss_override_replaces_the_configured_rate() {
        let control = LinkControl::new();
        let mut m = Model::new(Impairment::lossy(0.0, 20.0), 8, control.clone());
        control.set_loss_override(Some(0.3));
        let fates = run(&mut m, N, 100, Duration::from_millis(1));
        let lost = fates.iter().filter(|f| f.deliveries.is_empty()).count() as f64 / N as f64;
        close(lost, 0.3, 0.005, "override");
        control.set_loss_override(None);
        assert!(run(&mut m, 1_000, 100, Duration::from_millis(1)).iter().all(|f| f.deliveries.len() == 1));
    }
}
