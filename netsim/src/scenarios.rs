//! The scenarios: cursor sharing (volatile), shared state and reducer writes (reliable), a reconnect after an outage,
//! and loss during the handshake. Each runs the same way over either transport; the clients behave like the browser
//! client (dead-connection detection by ping, reconnection with backoff, resubscription from the last seq, and a
//! resend of writes not yet seen once the replay has shown which ones the server already has).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::{MissedTickBehavior, interval, sleep};

use crate::client::{Conn, Endpoint, In, Out, PushKind as Kind, Stamp, Transport, now_us};
use crate::link::LinkHandle;
use crate::metrics::{Percentiles, RunResult};
use driftdb_client::protocol::Replay;
use driftdb_client::resume::Resume;

/// Which scenario to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// N clients share cursor positions at H Hz: volatile relays (datagrams on WebTransport).
    Cursors,
    /// Reliable appends (a reducer's actions) and replaces (shared state) from every client.
    State,
    /// Reliable writes while the link goes down for a few seconds: clients reconnect and resume.
    Outage,
    /// Clients connect while the link loses packets; the loss stops once every session is up.
    Handshake,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Cursors => "cursors",
            Scenario::State => "state",
            Scenario::Outage => "outage",
            Scenario::Handshake => "handshake",
        }
    }

    pub const ALL: [Scenario; 4] = [Scenario::Cursors, Scenario::State, Scenario::Outage, Scenario::Handshake];
}

/// Sizes and rates of the scenarios.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Params {
    /// Clients in the cursor, state and outage scenarios.
    pub clients: usize,
    /// Cursor updates per second per client.
    pub cursor_hz: f64,
    /// How long the cursor scenario sends after a 1 s warm-up (whose updates count for delivery, not latency).
    pub cursor_secs: f64,
    /// Reliable writes per client (state scenario).
    pub writes: u64,
    /// Reliable writes per second per client.
    pub write_hz: f64,
    /// Outage scenario: seconds of writing, when the outage starts, and how long it lasts.
    pub outage_write_secs: f64,
    pub outage_at_secs: f64,
    pub outage_secs: f64,
    /// Handshake scenario: clients connecting at once, and the loss during their handshakes (`None`: the run's loss).
    pub handshake_clients: usize,
    pub handshake_loss: Option<f64>,
    /// A client that hears nothing (pongs included) for this long drops the connection and reconnects.
    pub dead_after_ms: u64,
    /// How long reliable data may take to converge after the last write (or the outage's end).
    pub converge_limit_secs: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            clients: 6,
            cursor_hz: 50.0,
            cursor_secs: 8.0,
            writes: 40,
            write_hz: 10.0,
            outage_write_secs: 8.0,
            outage_at_secs: 2.0,
            outage_secs: 3.0,
            handshake_clients: 10,
            handshake_loss: None,
            dead_after_ms: 2_000,
            converge_limit_secs: 30.0,
        }
    }
}

/// What one client does.
#[derive(Clone)]
struct ClientCfg {
    id: u32,
    transport: Transport,
    room: String,
    cursor_hz: Option<f64>,
    /// Reliable writes: how many, at what rate.
    writes: Option<(u64, f64)>,
    dead_after: Duration,
    /// Give up connecting (a session failure) when never connected after this long.
    connect_budget: Duration,
    /// Cursor updates are sent while this holds (then the run drains what is in flight).
    sending: Arc<AtomicBool>,
}

const CURSOR: &str = "cursor";
const LOG: &str = "log";
const STATE: &str = "state";

/// What one client saw.
#[derive(Default)]
struct Rec {
    /// When the scenario's writes start (after every client has subscribed).
    writes_from: Option<Instant>,
    /// Cursor latency counts updates sent from this time on (the first second of sending warms the connections up).
    measure_from_us: u64,
    cursor_sent: u64,
    cursor_latency_us: Vec<u64>,
    cursor_seen: HashSet<(u32, u64)>,
    /// Per sender: the newest position shown (its number and send time).
    cursor_newest: HashMap<u32, (u64, u64)>,
    duplicates: u64,
    out_of_order: u64,

    log: BTreeMap<u64, Stamp>,
    state: Option<(u64, Stamp)>,
    /// The newest seq seen per key: where a reconnect resumes.
    last_seq: Resume,
    last_change_us: u64,
    write_latency_us: Vec<u64>,
    written: u64,
    pending: BTreeMap<u64, Stamp>,
    last_write_us: u64,

    connected: bool,
    /// A pong came back after the subscriptions (same ordered stream): the server has them.
    subscribed: bool,
    connect_us: Option<u64>,
    failed_attempts: u64,
    reconnects: u64,
    drops: u64,
    session_failed: bool,
}

impl Rec {
    fn handle(&mut self, me: u32, message: In) {
        let now = now_us();
        match message {
            In::Push { key, stamp: Some(stamp), .. } if key == CURSOR => {
                if stamp.s == me {
                    return;
                }
                if !self.cursor_seen.insert((stamp.s, stamp.n)) {
                    self.duplicates += 1;
                    return;
                }
                if stamp.t >= self.measure_from_us {
                    self.cursor_latency_us.push(now.saturating_sub(stamp.t));
                }
                let newest = self.cursor_newest.entry(stamp.s).or_insert((0, 0));
                if stamp.n >= newest.0 {
                    *newest = (stamp.n, stamp.t);
                } else {
                    self.out_of_order += 1;
                }
            }
            In::Push { key, seq, stamp: Some(stamp) } if key == LOG => self.log_entry(me, seq, stamp, now, true),
            In::Push { key, seq, stamp: Some(stamp) } if key == STATE => self.state_entry(seq, stamp, now),
            In::Init { key, entries, .. } if key == LOG => {
                for (seq, stamp) in entries {
                    if let Some(stamp) = stamp {
                        self.log_entry(me, seq, stamp, now, false);
                    }
                }
            }
            In::Init { key, entries, .. } if key == STATE => {
                for (seq, stamp) in entries {
                    if let Some(stamp) = stamp {
                        self.state_entry(seq, stamp, now);
                    }
                }
            }
            _ => {}
        }
    }

    fn log_entry(&mut self, me: u32, seq: u64, stamp: Stamp, now: u64, live: bool) {
        if self.log.contains_key(&seq) {
            self.duplicates += 1;
            return;
        }
        if self.last_seq.observe(LOG, seq) > seq && live {
            self.out_of_order += 1;
        }
        self.log.insert(seq, stamp);
        self.last_change_us = now;
        if stamp.s == me {
            self.pending.remove(&stamp.n);
        } else {
            self.write_latency_us.push(now.saturating_sub(stamp.t));
        }
    }

    fn state_entry(&mut self, seq: u64, stamp: Stamp, now: u64) {
        self.last_seq.observe(STATE, seq);
        if self.state.is_none_or(|(s, _)| seq > s) {
            self.state = Some((seq, stamp));
            self.last_change_us = now;
        }
    }
}

type Shared = Arc<Mutex<Rec>>;

/// Sleeps `duration` unless `stop` fires first; true when stopped.
async fn stoppable_sleep(stop: &mut watch::Receiver<bool>, duration: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = sleep(duration) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// Generates the writes due by now into `pending` (they are sent when the connection is ready).
/// The write clock starts when every client is subscribed (`Rec::writes_from`), so that setup does not count as
/// latency; from then on writes come due whether or not the client is connected.
fn due_writes(cfg: &ClientCfg, rec: &Shared, ready: Option<&mut Vec<Stamp>>) {
    let Some((count, hz)) = cfg.writes else { return };
    let mut rec = rec.lock().unwrap();
    let Some(from) = rec.writes_from else { return };
    let due = ((from.elapsed().as_secs_f64() * hz).floor() as u64 + 1).min(count);
    let mut fresh = Vec::new();
    while rec.written < due {
        let stamp = Stamp { s: cfg.id, n: rec.written, t: now_us() };
        rec.written += 1;
        rec.last_write_us = stamp.t;
        rec.pending.insert(stamp.n, stamp);
        fresh.push(stamp);
    }
    if let Some(out) = ready {
        out.extend(fresh);
    }
}

async fn run_client(cfg: ClientCfg, rec: Shared, endpoint: Arc<Endpoint>, mut stop: watch::Receiver<bool>) {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(100);
    let mut ever = false;
    let reliable = cfg.writes.is_some();
    let write_period = Duration::from_secs_f64(1.0 / cfg.writes.map_or(1.0, |w| w.1.max(0.1)));
    'outer: loop {
        if *stop.borrow() {
            break;
        }
        // connect, while the writes due keep queueing up
        let connect = tokio::time::timeout(Duration::from_secs(10), endpoint.connect(cfg.transport, &cfg.room));
        tokio::pin!(connect);
        let mut ticks = interval(write_period);
        let attempt = loop {
            tokio::select! {
                result = &mut connect => break result,
                _ = ticks.tick(), if reliable => due_writes(&cfg, &rec, None),
                _ = stop.changed() => break 'outer,
            }
        };
        let mut conn: Conn = match attempt {
            Ok(Ok(conn)) => conn,
            _ => {
                let give_up = {
                    let mut r = rec.lock().unwrap();
                    r.failed_attempts += 1;
                    !ever && started.elapsed() >= cfg.connect_budget
                };
                if give_up {
                    rec.lock().unwrap().session_failed = true;
                    break;
                }
                if stoppable_sleep(&mut stop, backoff).await {
                    break;
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        {
            let mut r = rec.lock().unwrap();
            r.connected = true;
            if ever {
                r.reconnects += 1;
            } else {
                r.connect_us = Some(started.elapsed().as_micros() as u64);
            }
        }
        ever = true;
        backoff = Duration::from_millis(100);
        if run_connected(&cfg, &rec, &mut conn, &mut stop, write_period).await {
            conn.close().await;
            break;
        }
        conn.abort();
        {
            let mut r = rec.lock().unwrap();
            r.connected = false;
            r.drops += 1;
        }
        if stoppable_sleep(&mut stop, backoff).await {
            break;
        }
    }
}

/// Runs one connection until it dies (false) or the scenario stops (true).
async fn run_connected(
    cfg: &ClientCfg,
    rec: &Shared,
    conn: &mut Conn,
    stop: &mut watch::Receiver<bool>,
    write_period: Duration,
) -> bool {
    let reliable = cfg.writes.is_some();
    let (log_seq, state_seq) = {
        let r = rec.lock().unwrap();
        (r.last_seq.replay(LOG), r.last_seq.replay(STATE))
    };
    let subscribe = async {
        if cfg.cursor_hz.is_some() {
            conn.send(&Out::Get { key: CURSOR, replay: Replay::None }).await?;
        }
        if reliable {
            conn.send(&Out::Get { key: STATE, replay: state_seq }).await?;
            conn.send(&Out::Get { key: LOG, replay: log_seq }).await?;
        }
        anyhow::Ok(())
    };
    if subscribe.await.is_err() {
        return false;
    }
    // writes are sent once the log's replay shows which of the pending ones the server already has
    let mut ready = !reliable;
    let mut last_rx = Instant::now();
    let mut ping = interval(Duration::from_millis(250));
    let mut cursor = interval(Duration::from_secs_f64(1.0 / cfg.cursor_hz.unwrap_or(1.0)));
    cursor.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut writes = interval(write_period);
    let mut nonce = 0;
    let mut cursor_n = 0;
    loop {
        let mut to_send: Vec<Stamp> = Vec::new();
        let mut cursor_stamp = None;
        tokio::select! {
            _ = stop.changed() => return true,
            message = conn.next() => match message {
                Ok(Some((message, _))) => {
                    last_rx = Instant::now();
                    let log_init = matches!(&message, In::Init { key, .. } if key == LOG);
                    let mut r = rec.lock().unwrap();
                    if message == In::Pong {
                        r.subscribed = true;
                    }
                    r.handle(cfg.id, message);
                    if log_init && !ready {
                        ready = true;
                        to_send.extend(r.pending.values().copied());
                    }
                }
                _ => return false,
            },
            _ = cursor.tick(), if cfg.cursor_hz.is_some() && cfg.sending.load(Ordering::Relaxed) => {
                let mut r = rec.lock().unwrap();
                cursor_stamp = Some(Stamp { s: cfg.id, n: cursor_n, t: now_us() });
                cursor_n += 1;
                r.cursor_sent += 1;
            }
            _ = writes.tick(), if reliable => {
                if ready {
                    due_writes(cfg, rec, Some(&mut to_send));
                } else {
                    due_writes(cfg, rec, None);
                }
            }
            _ = ping.tick() => {
                if last_rx.elapsed() > cfg.dead_after {
                    return false;
                }
                nonce += 1;
                if conn.send(&Out::Ping { nonce }).await.is_err() {
                    return false;
                }
            }
        }
        if let Some(stamp) = cursor_stamp
            && conn.send(&Out::Push { key: CURSOR, stamp, kind: Kind::Volatile }).await.is_err()
        {
            return false;
        }
        for stamp in to_send {
            // the replace goes first: the same ordered stream then delivers it before the append, so a client whose
            // log is complete has seen every replace too
            if stamp.n % 5 == 4 && conn.send(&Out::Push { key: STATE, stamp, kind: Kind::Replace }).await.is_err() {
                return false;
            }
            if conn.send(&Out::Push { key: LOG, stamp, kind: Kind::Append }).await.is_err() {
                return false;
            }
        }
    }
}

/// Everything a scenario needs from the harness.
pub struct Ctx {
    pub endpoint: Arc<Endpoint>,
    pub link: LinkHandle,
    pub transport: Transport,
    /// The run's steady loss (the handshake scenario uses it during handshakes unless its params say otherwise).
    pub loss: f64,
}

fn room_name(scenario: Scenario, transport: Transport) -> String {
    format!("netsim-{}-{}-{:x}", scenario.name(), transport.name(), now_us() ^ u64::from(std::process::id()) << 40)
}

/// Runs one scenario and measures it. `result` comes back with the scenario's own fields filled in; the caller adds
/// the link's statistics and the run's parameters.
pub async fn run(ctx: &Ctx, scenario: Scenario, params: &Params) -> anyhow::Result<RunResult> {
    let room = room_name(scenario, ctx.transport);
    let (stop_tx, stop_rx) = watch::channel(false);
    let dead_after = Duration::from_millis(params.dead_after_ms);
    let sending = Arc::new(AtomicBool::new(false));
    let count = match scenario {
        Scenario::Handshake => params.handshake_clients,
        _ => params.clients,
    };
    let cfg = |id: u32| ClientCfg {
        id,
        transport: ctx.transport,
        room: room.clone(),
        cursor_hz: (scenario == Scenario::Cursors).then_some(params.cursor_hz),
        writes: match scenario {
            Scenario::Cursors => None,
            Scenario::State => Some((params.writes, params.write_hz)),
            Scenario::Outage => Some(((params.outage_write_secs * params.write_hz) as u64, params.write_hz)),
            Scenario::Handshake => Some((1, 10.0)),
        },
        dead_after,
        connect_budget: Duration::from_secs(30),
        sending: sending.clone(),
    };
    if scenario == Scenario::Handshake {
        ctx.link.set_loss_override(Some(params.handshake_loss.unwrap_or(ctx.loss)));
    }
    let recs: Vec<Shared> = (0..count).map(|_| Shared::default()).collect();
    let mut tasks = Vec::new();
    for (id, rec) in recs.iter().enumerate() {
        let task = run_client(cfg(id as u32), rec.clone(), ctx.endpoint.clone(), stop_rx.clone());
        tasks.push(tokio::spawn(task));
    }
    let all = |f: &dyn Fn(&Rec) -> bool| recs.iter().all(|r| f(&r.lock().unwrap()));
    let mut result = RunResult::new(scenario, ctx.transport, count);

    // wait until every client is connected (or has given up)
    let setup = Instant::now();
    while !all(&|r| r.subscribed || r.session_failed) && setup.elapsed() < Duration::from_secs(40) {
        sleep(Duration::from_millis(20)).await;
    }
    sending.store(true, Ordering::Relaxed);
    let measure_from = now_us() + 1_000_000;
    let writes_from = Instant::now();
    for rec in &recs {
        let mut r = rec.lock().unwrap();
        r.measure_from_us = measure_from;
        r.writes_from = Some(writes_from);
    }
    if scenario == Scenario::Handshake {
        ctx.link.set_loss_override(None);
    }
    let mut reference_us = now_us();
    let mut staleness = Vec::new();
    match scenario {
        Scenario::Cursors => {
            let start = Instant::now();
            let warmup = Duration::from_secs(1);
            let mut sample = interval(Duration::from_millis(20));
            while start.elapsed() < Duration::from_secs_f64(params.cursor_secs + 1.0) {
                sample.tick().await;
                if start.elapsed() < warmup {
                    continue;
                }
                let now = now_us();
                for rec in &recs {
                    let r = rec.lock().unwrap();
                    for (_, t) in r.cursor_newest.values() {
                        staleness.push(now.saturating_sub(*t));
                    }
                }
            }
            // stop sending, let the updates in flight land
            sending.store(false, Ordering::Relaxed);
            sleep(Duration::from_millis(1000)).await;
        }
        Scenario::State | Scenario::Outage | Scenario::Handshake => {
            let writes_per_client = cfg(0).writes.map_or(0, |w| w.0);
            let total = writes_per_client * count as u64;
            let start = Instant::now();
            let mut outage_done = scenario != Scenario::Outage;
            let limit = Duration::from_secs_f64(
                writes_per_client as f64 / params.write_hz.max(0.1) + params.outage_secs + params.converge_limit_secs,
            );
            loop {
                sleep(Duration::from_millis(20)).await;
                if !outage_done && start.elapsed() >= Duration::from_secs_f64(params.outage_at_secs) {
                    ctx.link.outage(Duration::from_secs_f64(params.outage_secs));
                    reference_us = now_us() + (params.outage_secs * 1e6) as u64;
                    outage_done = true;
                }
                let done = all(&|r| {
                    r.session_failed
                        || (r.written == writes_per_client && r.pending.is_empty() && r.log.len() as u64 >= total)
                });
                if (done && outage_done) || start.elapsed() > limit {
                    break;
                }
            }
            if scenario != Scenario::Outage {
                reference_us = recs.iter().map(|r| r.lock().unwrap().last_write_us).max().unwrap_or(reference_us);
            }
            sleep(Duration::from_millis(200)).await;
        }
    }
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }

    // measure
    let recs: Vec<_> = recs.iter().map(|r| std::mem::take(&mut *r.lock().unwrap())).collect();
    result.session_failures = recs.iter().filter(|r| r.session_failed).count() as u64;
    result.reconnects = recs.iter().map(|r| r.reconnects).sum();
    result.failed_connects = recs.iter().map(|r| r.failed_attempts).sum();
    result.drops = recs.iter().map(|r| r.drops).sum();
    result.duplicates = recs.iter().map(|r| r.duplicates).sum();
    result.out_of_order = recs.iter().map(|r| r.out_of_order).sum();
    match scenario {
        Scenario::Cursors => {
            let sent: u64 = recs.iter().map(|r| r.cursor_sent).sum();
            result.sent = sent;
            result.expected = sent * (count as u64 - 1);
            result.delivered = recs.iter().map(|r| r.cursor_seen.len() as u64).sum();
            let latency: Vec<u64> = recs.iter().flat_map(|r| r.cursor_latency_us.iter().copied()).collect();
            result.latency_ms = Percentiles::of_us(&latency);
            result.staleness_ms = Some(Percentiles::of_us(&staleness));
        }
        _ => {
            let writes_per_client = cfg(0).writes.map_or(0, |w| w.0);
            result.sent = recs.iter().map(|r| r.written).sum();
            result.expected = writes_per_client * count as u64 * (count as u64 - 1);
            result.delivered =
                recs.iter().enumerate().map(|(i, r)| r.log.values().filter(|s| s.s != i as u32).count() as u64).sum();
            let latency: Vec<u64> = if scenario == Scenario::Handshake {
                recs.iter().filter_map(|r| r.connect_us).collect()
            } else {
                recs.iter().flat_map(|r| r.write_latency_us.iter().copied()).collect()
            };
            result.latency_ms = Percentiles::of_us(&latency);
            // the server's truth, read with the loss switched off
            ctx.link.set_loss_override(Some(0.0));
            let truth_log = stored(ctx, &cfg(0).room, LOG).await;
            let truth_state = stored(ctx, &cfg(0).room, STATE).await;
            ctx.link.set_loss_override(None);
            match (truth_log, truth_state) {
                (Ok(log), Ok(state)) => {
                    let log: BTreeMap<u64, Stamp> = log.into_iter().filter_map(|(seq, s)| Some((seq, s?))).collect();
                    let state = state.into_iter().last().and_then(|(seq, s)| Some((seq, s?)));
                    let distinct: HashSet<(u32, u64)> = log.values().map(|s| (s.s, s.n)).collect();
                    result.lost_writes = Some(result.sent.saturating_sub(distinct.len() as u64));
                    result.duplicate_writes = Some(log.len() as u64 - distinct.len() as u64);
                    let converged = recs.iter().all(|r| !r.session_failed && r.log == log && r.state == state);
                    result.converged = Some(converged);
                    if converged {
                        let last = recs.iter().map(|r| r.last_change_us).max().unwrap_or(0);
                        result.converge_ms = Some(last.saturating_sub(reference_us) as f64 / 1000.0);
                    }
                }
                (Err(error), _) | (_, Err(error)) => {
                    result.notes.push(format!("could not read the server's state: {error:#}"));
                    result.converged = Some(false);
                }
            }
        }
    }
    result.finish();
    Ok(result)
}

async fn stored(ctx: &Ctx, room: &str, key: &str) -> anyhow::Result<Vec<(u64, Option<Stamp>)>> {
    let mut last = None;
    for _ in 0..3 {
        match ctx.endpoint.stored(room, key).await {
            Ok(entries) => return Ok(entries),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap())
}
