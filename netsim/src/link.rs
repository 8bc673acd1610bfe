//! A link: two directions, each a [`Pipe`] that applies its own [`Model`] to the packets pushed into it and hands each
//! surviving copy to a sink at its delivery time. Delivery runs on a dedicated thread with a deadline queue, so that
//! timing does not depend on an async runtime's timer granularity or load.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::model::{Impairment, LinkControl, LinkStats, Model, Rng};

/// Where a pipe delivers packets (a TUN device, a UDP socket).
pub type Sink = Box<dyn FnMut(&[u8]) + Send>;

struct Queued {
    at: Duration,
    order: u64,
    packet: Vec<u8>,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

struct State {
    model: Model,
    /// When the current model started (its outages are relative to this), on the link's clock.
    model_epoch: Duration,
    queue: BinaryHeap<Reverse<Queued>>,
    order: u64,
}

struct Shared {
    clock: Instant,
    state: Mutex<State>,
    wake: Condvar,
    stop: AtomicBool,
}

/// One direction of a link.
pub struct Pipe {
    shared: Arc<Shared>,
    deliverer: Option<JoinHandle<()>>,
}

impl Pipe {
    fn new(name: &str, clock: Instant, model: Model, mut sink: Sink) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            clock,
            state: Mutex::new(State { model, model_epoch: Duration::ZERO, queue: BinaryHeap::new(), order: 0 }),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let inner = shared.clone();
        let deliverer = std::thread::Builder::new().name(format!("netsim-{name}")).spawn(move || {
            crate::netns::realtime_thread();
            let mut due = Vec::new();
            let mut state = inner.state.lock().unwrap();
            while !inner.stop.load(Ordering::SeqCst) {
                let now = inner.clock.elapsed();
                while state.queue.peek().is_some_and(|q| q.0.at <= now) {
                    due.push(state.queue.pop().unwrap().0.packet);
                }
                if !due.is_empty() {
                    drop(state);
                    for packet in due.drain(..) {
                        sink(&packet);
                    }
                    state = inner.state.lock().unwrap();
                    continue;
                }
                let wait = state.queue.peek().map_or(Duration::from_millis(50), |q| q.0.at - now);
                state = inner.wake.wait_timeout(state, wait.min(Duration::from_millis(50))).unwrap().0;
            }
        })?;
        Ok(Pipe { shared, deliverer: Some(deliverer) })
    }

    /// A packet enters this direction now.
    pub fn push(&self, packet: &[u8]) {
        let now = self.shared.clock.elapsed();
        let mut state = self.shared.state.lock().unwrap();
        let since_epoch = now.saturating_sub(state.model_epoch);
        let fate = state.model.on_packet(since_epoch, packet.len());
        let epoch = state.model_epoch;
        let earliest = state.queue.peek().map(|q| q.0.at);
        for at in fate.deliveries {
            let order = state.order;
            state.order += 1;
            state.queue.push(Reverse(Queued { at: at + epoch, order, packet: packet.to_vec() }));
        }
        if state.queue.peek().map(|q| q.0.at) != earliest {
            self.shared.wake.notify_one();
        }
    }

    fn replace_model(&self, model: Model, epoch: Duration) -> LinkStats {
        let mut state = self.shared.state.lock().unwrap();
        let old = std::mem::replace(&mut state.model, model);
        state.model_epoch = epoch;
        old.stats
    }

    fn stats(&self) -> LinkStats {
        self.shared.state.lock().unwrap().model.stats
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
        if let Some(thread) = self.deliverer.take() {
            let _ = thread.join();
        }
    }
}

/// Both directions of a link: `up` carries client → server packets, `down` server → client.
pub struct Link {
    clock: Instant,
    pub up: Pipe,
    pub down: Pipe,
    control: Arc<LinkControl>,
}

/// What each direction of a link does, and the seed its randomness starts from.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinkConfig {
    pub up: Impairment,
    pub down: Impairment,
    pub seed: u64,
}

impl LinkConfig {
    /// The same impairment both ways.
    pub fn symmetric(impairment: Impairment, seed: u64) -> Self {
        LinkConfig { up: impairment.clone(), down: impairment, seed }
    }
}

impl Link {
    pub fn new(up_sink: Sink, down_sink: Sink) -> std::io::Result<Self> {
        let clock = Instant::now();
        let control = LinkControl::new();
        let idle = || Model::new(Impairment::none(), 0, control.clone());
        Ok(Link {
            clock,
            up: Pipe::new("up", clock, idle(), up_sink)?,
            down: Pipe::new("down", clock, idle(), down_sink)?,
            control,
        })
    }

    /// Installs new models for both directions (seeded from `config.seed`) and returns the old models' statistics
    /// (up, down). Packets already scheduled keep their delivery times; outages of the new models count from now.
    pub fn configure(&self, config: &LinkConfig) -> (LinkStats, LinkStats) {
        let mut rng = Rng::new(config.seed);
        let up = Model::new(config.up.clone(), rng.fork(1).next_u64(), self.control.clone());
        let down = Model::new(config.down.clone(), rng.fork(2).next_u64(), self.control.clone());
        self.control.set_loss_override(None);
        self.control.outage(Duration::ZERO, Duration::ZERO);
        // one epoch for both directions, so that a live outage (relative to it) starts at the same instant both ways
        let epoch = self.clock.elapsed();
        (self.up.replace_model(up, epoch), self.down.replace_model(down, epoch))
    }

    /// Statistics of the current models (up, down).
    pub fn stats(&self) -> (LinkStats, LinkStats) {
        (self.up.stats(), self.down.stats())
    }

    pub fn control(&self) -> Arc<LinkControl> {
        self.control.clone()
    }

    /// Takes both directions down from now for `duration`.
    pub fn outage(&self, duration: Duration) {
        let now = self.clock.elapsed();
        // the models see time since their epoch, which the control compares against: use the up model's epoch
        let epoch = self.up.shared.state.lock().unwrap().model_epoch;
        self.control.outage(now.saturating_sub(epoch), duration);
    }
}

/// A cheap handle a scenario uses to steer a link while it runs.
#[derive(Clone)]
pub struct LinkHandle {
    link: Arc<Link>,
}

impl LinkHandle {
    pub fn new(link: Arc<Link>) -> Self {
        LinkHandle { link }
    }

    pub fn outage(&self, duration: Duration) {
        self.link.outage(duration);
    }

    pub fn set_loss_override(&self, loss: Option<f64>) {
        self.link.control.set_loss_override(loss);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn delivers_after_the_delay_in_order() {
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        let link = Link::new(
            Box::new(move |p: &[u8]| tx.send((p.to_vec(), Instant::now())).unwrap()),
            Box::new(move |p: &[u8]| tx2.send((p.to_vec(), Instant::now())).unwrap()),
        )
        .unwrap();
        link.configure(&LinkConfig::symmetric(Impairment::lossy(0.0, 60.0), 1));
        let start = Instant::now();
        for i in 0..10u8 {
            link.up.push(&[i]);
        }
        for i in 0..10u8 {
            let (packet, at) = rx.recv_timeout(Duration::from_secs(2)).unwrap();
            assert_eq!(packet, vec![i]);
            let waited = at - start;
            assert!(waited >= Duration::from_millis(30) && waited < Duration::from_millis(200), "{waited:?}");
        }
        link.outage(Duration::from_secs(5));
        link.down.push(&[42]);
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        assert_eq!(link.stats().1.lost_outage, 1);
    }
}
