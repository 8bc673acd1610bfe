//! The four scenarios. Each sets up its connections (every subscriber has its `init` before anything is sent), runs a
//! measured window, waits for messages in flight, and turns what the receivers saw into a [`Report`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::{CONNECT_TIMEOUT, Connector, Received, RoomInfo, Route, Rx, Transport, Tx};
use crate::procstat::{self, Sample};
use crate::report::{Part, Replay, Report, ServerUsage, Share, Tally};
use crate::{AppendArgs, FanoutArgs, IdleArgs, Options, RoomsArgs, ScaleArgs, Scenario};
use driftdb_client::stamp::{Stamp, now_us};
use driftdb_client::stamped::{In, Out, PushKind};

const FANOUT_KEY: &str = "fanout";
const CURSOR_KEY: &str = "cursor";
const LOG_KEY: &str = "log";
const IDLE_KEY: &str = "idle";

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let route = match (&options.through, options.to_owner) {
        (Some(through), _) => Route::Through(through.clone()),
        (None, true) => Route::Owner,
        (None, false) => Route::Base,
    };
    let connector = Connector::with_route(options.url.clone(), options.transport, route)?
        .sessions_per_endpoint(options.wt_sessions_per_endpoint);
    match &options.scenario {
        Scenario::Fanout(args) => fanout(options, connector, args).await,
        Scenario::Rooms(args) => rooms(options, connector, args).await,
        Scenario::Append(args) => append(options, connector, args).await,
        Scenario::Idle(args) => idle(options, connector, args).await,
        Scenario::Scale(args) => scale(options, connector, args).await,
        Scenario::FloorServer(_) => bail!("floor-server is a server, not a scenario"),
    }
}

/// Counters every receiver updates, so the main task can tell when everything has arrived.
#[derive(Default)]
struct Progress {
    delivered: AtomicU64,
    last_delivery_us: AtomicU64,
}

/// Receivers running until told to stop, each in a group (a transport of a mixed run).
struct Receivers {
    progress: Arc<Progress>,
    stop: watch::Sender<bool>,
    tasks: Vec<(usize, JoinHandle<Tally>)>,
    /// Every `reliable_every`-th message of a sender is a reliable relay among volatile ones (0: none are).
    reliable_every: u64,
}

impl Receivers {
    fn new() -> Self {
        Receivers { progress: Arc::default(), stop: watch::channel(false).0, tasks: Vec::new(), reliable_every: 0 }
    }

    fn spawn(&mut self, rx: Rx) {
        self.spawn_in(0, rx);
    }

    fn spawn_in(&mut self, group: usize, rx: Rx) {
        let (progress, stop) = (self.progress.clone(), self.stop.subscribe());
        self.tasks.push((group, tokio::spawn(receive(rx, progress, stop, self.reliable_every))));
    }

    /// Waits until `expected` deliveries arrived or `limit` passed.
    async fn drain(&self, expected: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.progress.delivered.load(Ordering::Acquire) < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn finish(self) -> anyhow::Result<Tally> {
        let mut total = Tally::default();
        for group in self.finish_by_group(1).await? {
            total.merge(group);
        }
        Ok(total)
    }

    /// Stops every receiver and merges their tallies per group (of `groups`; later groups fold into the last).
    async fn finish_by_group(self, groups: usize) -> anyhow::Result<Vec<Tally>> {
        self.stop.send_replace(true);
        let mut tallies: Vec<Tally> = (0..groups.max(1)).map(|_| Tally::default()).collect();
        let last = tallies.len() - 1;
        for (group, task) in self.tasks {
            tallies[group.min(last)].merge(task.await.context("a receiver panicked")?);
        }
        Ok(tallies)
    }
}

/// The order a receiver has seen one kind of message in: seqs and each sender's message numbers only go up.
#[derive(Default)]
struct Order {
    last_seq: u64,
    last_n: HashMap<u32, u64>,
}

impl Order {
    /// Records a message; `Err` describes it if it came out of order.
    fn check(&mut self, seq: u64, stamp: &Stamp) -> Result<(), String> {
        let n_before = self.last_n.insert(stamp.s, stamp.n);
        let in_order = seq > self.last_seq && n_before.is_none_or(|n| stamp.n > n);
        let last_seq = self.last_seq;
        self.last_seq = last_seq.max(seq);
        in_order.then_some(()).ok_or_else(|| format!("seq {seq} after {last_seq}, {stamp:?} after n {n_before:?}"))
    }
}

/// Reads one connection until stopped: counts deliveries, records latency, checks that seqs and each sender's
/// message numbers only go up (datagrams may be reordered; that is counted, not an error). Reliable relays among
/// volatile ones (every `reliable_every`-th message of a sender) are counted and ordered apart from them.
async fn receive(mut rx: Rx, progress: Arc<Progress>, mut stop: watch::Receiver<bool>, reliable_every: u64) -> Tally {
    let mut tally = Tally::default();
    let mut orders = [Order::default(), Order::default()];
    loop {
        let received = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => break,
            received = rx.next() => received,
        };
        match received {
            Ok(Some(Received { message: In::Push { seq, stamp, .. }, datagram })) => {
                let now = now_us();
                tally.delivered += 1;
                progress.delivered.fetch_add(1, Ordering::AcqRel);
                progress.last_delivery_us.fetch_max(now, Ordering::AcqRel);
                let Some(stamp) = stamp else {
                    tally.error(format!("push seq {seq} without a readable stamp"));
                    continue;
                };
                tally.latency(stamp.t, now);
                let reliable = reliable_every > 0 && stamp.n.is_multiple_of(reliable_every);
                tally.reliable_delivered += u64::from(reliable);
                match orders[usize::from(reliable)].check(seq, &stamp) {
                    Err(_) if datagram => tally.reordered += 1,
                    Err(what) => tally.error(format!("out of order: {what}")),
                    Ok(()) => {}
                }
            }
            Ok(Some(Received { message: In::StreamSize | In::Pong, .. })) => {}
            Ok(Some(Received { message: In::Init { .. }, .. })) => tally.error("unexpected init"),
            Ok(Some(Received { message: In::Error(message), .. })) => tally.error(format!("server error: {message}")),
            Ok(None) => {
                if !*stop.borrow() {
                    tally.error("the server closed a connection");
                }
                break;
            }
            Err(error) => {
                tally.error(format!("receive failed: {error:#}"));
                break;
            }
        }
    }
    tally
}

/// Connects to `room` and subscribes to `key`, returning once the `init` arrived.
async fn subscribe(connector: &Connector, room: &RoomInfo, key: &str) -> anyhow::Result<(Tx, Rx)> {
    let (mut tx, mut rx) = connector.connect(room).await?;
    tx.send(&Out::get(key)).await?;
    match tokio::time::timeout(CONNECT_TIMEOUT, rx.next()).await.context("waiting for init")?? {
        Some(Received { message: In::Init { .. }, .. }) => Ok((tx, rx)),
        other => bail!("expected an init, got {:?}", other.map(|r| r.message)),
    }
}

/// Subscribes one connection per room in `rooms` (a room may appear many times), `concurrency` at a time.
async fn subscribe_all(
    connector: &Connector,
    rooms: &[&RoomInfo],
    key: &str,
    concurrency: usize,
) -> anyhow::Result<Vec<(Tx, Rx)>> {
    subscribe_each(rooms.iter().map(|room| (connector, *room)), key, concurrency).await
}

/// Subscribes one connection per (connector, room), in order, `concurrency` at a time.
async fn subscribe_each<'a>(
    targets: impl IntoIterator<Item = (&'a Connector, &'a RoomInfo)>,
    key: &str,
    concurrency: usize,
) -> anyhow::Result<Vec<(Tx, Rx)>> {
    futures_util::stream::iter(targets.into_iter().map(|(connector, room)| subscribe(connector, room, key)))
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

/// Sends `make(n)` as a push of `kind(n)` for n = 0, 1, … at `rate` per second until `duration` passed; returns how
/// many went.
async fn paced(
    tx: &mut Tx,
    rate: f64,
    duration: Duration,
    make: impl Fn(u64) -> Stamp,
    kind: impl Fn(u64) -> PushKind,
    key: &str,
) -> anyhow::Result<u64> {
    let start = tokio::time::Instant::now();
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut n = 0u64;
    loop {
        let due = start + period.mul_f64(n as f64);
        if due >= start + duration {
            return Ok(n);
        }
        tokio::time::sleep_until(due).await;
        tx.send(&Out::Push { key, stamp: make(n), kind: kind(n) }).await?;
        n += 1;
    }
}

/// The measured window: the server's and this process's counters at its start.
struct Window {
    pid: Option<u32>,
    baseline: Option<Sample>,
    server_start: Option<Sample>,
    load_start: Sample,
    start_us: u64,
}

impl Window {
    /// `baseline`: the server's reading before this run opened anything.
    fn start(pid: Option<u32>, baseline: Option<Sample>) -> anyhow::Result<Self> {
        let server_start = pid.map(|pid| procstat::sample(Some(pid))).transpose()?;
        Ok(Window {
            pid,
            baseline: baseline.or(server_start),
            server_start,
            load_start: procstat::sample(None)?,
            start_us: now_us(),
        })
    }

    fn report(self, options: &Options, run: Run) -> anyhow::Result<Report> {
        let Run { params, connections, sent, expected, tally, progress, replay, reliable, by_transport } = run;
        let server = match (self.pid, self.baseline, self.server_start) {
            (Some(pid), Some(baseline), Some(start)) => {
                let end = procstat::sample(Some(pid))?;
                let cpu_s = end.cpu_s - start.cpu_s;
                let delta = end.rss_kb as i64 - baseline.rss_kb as i64;
                let delivered = tally.delivered as f64;
                Some(ServerUsage {
                    pid,
                    cpu_s,
                    deliveries_per_cpu_s: (cpu_s > 0.0).then(|| delivered / cpu_s),
                    cpu_us_per_delivery: (delivered > 0.0).then(|| cpu_s * 1e6 / delivered),
                    rss_baseline_kb: baseline.rss_kb,
                    rss_end_kb: end.rss_kb,
                    rss_delta_kb: delta,
                    kb_per_connection: delta as f64 / connections.max(1) as f64,
                })
            }
            _ => None,
        };
        let load_cpu_s = procstat::sample(None)?.cpu_s - self.load_start.cpu_s;
        let last = progress.last_delivery_us.load(Ordering::Acquire).max(self.start_us);
        let window_s = ((last - self.start_us) as f64 / 1e6).max(1e-6);
        let transport = match by_transport.as_slice() {
            [_, _, ..] => by_transport.iter().map(|share| share.transport.as_str()).collect::<Vec<_>>().join("+"),
            _ => options.transport.name().to_owned(),
        };
        Ok(Report {
            scenario: scenario_name(&options.scenario).to_owned(),
            transport,
            params,
            connections,
            window_s,
            sent,
            expected,
            delivered: tally.delivered,
            delivery_ratio: if expected == 0 { 1.0 } else { tally.delivered as f64 / expected as f64 },
            deliveries_per_s: tally.delivered as f64 / window_s,
            latency: Report::latency_of(&tally),
            reordered_datagrams: tally.reordered,
            errors: tally.errors,
            error_samples: tally.error_samples,
            replay,
            reliable: reliable.map(|expected| Part::new(expected, tally.reliable_delivered)),
            by_transport,
            server,
            load_cpu_s,
            server_name: None,
            floor_multiple: None,
        })
    }
}

/// What a scenario measured, before the window closes.
#[derive(Default)]
struct Run {
    params: String,
    connections: usize,
    sent: u64,
    expected: u64,
    tally: Tally,
    progress: Arc<Progress>,
    replay: Option<Replay>,
    /// Reliable relays expected among volatile ones, when some were sent.
    reliable: Option<u64>,
    /// Per transport, when the run mixed them.
    by_transport: Vec<Share>,
}

pub(crate) fn scenario_name(scenario: &Scenario) -> &'static str {
    match scenario {
        Scenario::Fanout(_) => "fanout",
        Scenario::Rooms(_) => "rooms",
        Scenario::Append(_) => "append",
        Scenario::Idle(_) => "idle",
        Scenario::Scale(_) => "scale",
        Scenario::FloorServer(_) => "floor-server",
    }
}

fn baseline(options: &Options) -> anyhow::Result<Option<Sample>> {
    options.server_pid.map(|pid| procstat::sample(Some(pid))).transpose()
}

async fn close_all(txs: impl IntoIterator<Item = Tx>) {
    futures_util::future::join_all(txs.into_iter().map(Tx::close)).await;
}

async fn fanout(options: &Options, mut connector: Connector, args: &FanoutArgs) -> anyhow::Result<Report> {
    let baseline = baseline(options)?;
    let room = connector.new_room().await?;
    let rooms = vec![&room; args.subscribers];
    let subscribers = subscribe_all(&connector, &rooms, FANOUT_KEY, options.connect_concurrency).await?;
    let (mut publisher, publisher_rx) = connector.connect(&room).await?;
    let mut receivers = Receivers::new();
    let mut txs = Vec::new();
    for (tx, rx) in subscribers {
        receivers.spawn(rx);
        txs.push(tx);
    }
    // The publisher does not subscribe: anything it receives would show up as an unexpected delivery.
    receivers.spawn(publisher_rx);

    let window = Window::start(options.server_pid, baseline)?;
    let kind = if args.volatile { PushKind::Volatile } else { PushKind::Relay };
    let sent = paced(&mut publisher, args.rate, options.duration(), |n| Stamp::now(0, n), |_| kind, FANOUT_KEY).await?;
    let expected = sent * args.subscribers as u64;
    receivers.drain(expected, options.drain()).await;
    let progress = receivers.progress.clone();
    let tally = receivers.finish().await?;
    let params = format!("{} subs, {} msg/s, {}", args.subscribers, args.rate, kind_name(kind));
    let run = Run { params, connections: args.subscribers + 1, sent, expected, tally, progress, ..Run::default() };
    let report = window.report(options, run);
    txs.push(publisher);
    close_all(txs).await;
    report
}

fn kind_name(kind: PushKind) -> &'static str {
    match kind {
        PushKind::Relay => "relay",
        PushKind::Volatile => "volatile",
        PushKind::Append => "append",
        PushKind::Replace => "replace",
    }
}

async fn rooms(options: &Options, connector: Connector, args: &RoomsArgs) -> anyhow::Result<Report> {
    let kind = if args.reliable { PushKind::Relay } else { PushKind::Volatile };
    let tick = if args.same_tick { ", same tick" } else { "" };
    let params = format!("{} rooms × {} clients, {} Hz, {}{tick}", args.rooms, args.clients, args.hz, kind_name(kind));
    let groups = vec![(connector.transport(), args.rooms * args.clients)];
    let kinds = Kinds { kind, reliable_every: 0 };
    let shape = RoomsShape { rooms: args.rooms, groups, hz: args.hz, kinds, same_tick: args.same_tick, send_every: 1 };
    cursors(options, connector, &shape, params).await
}

async fn scale(options: &Options, connector: Connector, args: &ScaleArgs) -> anyhow::Result<Report> {
    let rooms = args.rooms.max(1);
    let mut groups = vec![(connector.transport(), args.connections)];
    if args.wt_connections > 0 {
        ensure!(
            matches!(connector.transport(), Transport::WsJson | Transport::WsCbor),
            "--wt-connections mixes WebTransport sessions into rooms of WebSockets: --transport must be ws-json or ws-cbor"
        );
        groups.push((Transport::Wt, args.wt_connections));
    }
    // Clients per room, to two decimals ("18", "2.5").
    let per_room = |n: usize| ((n * 100 / rooms) as f64 / 100.0).to_string();
    let clients = match args.wt_connections {
        0 => per_room(args.connections),
        wt => format!("({} {} + {} wt)", per_room(args.connections), options.transport.name(), per_room(wt)),
    };
    // Every `send_every`-th client sends, and every `reliable_every`-th message of each is reliable.
    let every = |percent: f64| (100.0 / percent.clamp(0.01, 100.0)).round().max(1.0) as usize;
    let reliable_every = if args.reliable_percent > 0.0 { every(args.reliable_percent) as u64 } else { 0 };
    let reliable =
        if reliable_every > 0 { format!(", {}% of it reliable", args.reliable_percent) } else { String::new() };
    let params = format!(
        "{rooms} rooms × {clients} clients, {}% send at {} Hz, volatile{reliable}",
        args.senders_percent, args.hz
    );
    let shape = RoomsShape {
        rooms,
        groups,
        hz: args.hz,
        kinds: Kinds { kind: PushKind::Volatile, reliable_every },
        same_tick: false,
        send_every: every(args.senders_percent),
    };
    cursors(options, connector, &shape, params).await
}

/// Rooms of clients that all subscribe to their room's cursor key; every `send_every`-th of them relays to it at
/// `hz`.
struct RoomsShape {
    rooms: usize,
    /// Clients by transport: client i of a group is in room i % rooms, so each group is spread evenly.
    groups: Vec<(Transport, usize)>,
    hz: f64,
    kinds: Kinds,
    same_tick: bool,
    /// Of each group, every `send_every`-th client in room order sends, so that every room has its share of senders
    /// of every transport (0 or 1: all send).
    send_every: usize,
}

/// What a sender's messages are: `kind`, but every `reliable_every`-th one a reliable relay (0: none).
#[derive(Clone, Copy)]
struct Kinds {
    kind: PushKind,
    reliable_every: u64,
}

impl Kinds {
    fn of(self, n: u64) -> PushKind {
        if self.reliable_every > 0 && n.is_multiple_of(self.reliable_every) { PushKind::Relay } else { self.kind }
    }

    /// How many of a sender's first `sent` messages were reliable relays among volatile ones.
    fn reliable_among(self, sent: u64) -> u64 {
        if self.reliable_every > 0 { sent.div_ceil(self.reliable_every) } else { 0 }
    }
}

/// One client of [`RoomsShape`]: where it is and whether it sends.
#[derive(Clone, Copy)]
struct Slot {
    group: usize,
    room: usize,
    sends: bool,
}

impl RoomsShape {
    /// Every client in connect order: each group's clients round-robin over the rooms.
    fn slots(&self) -> Vec<Slot> {
        let rooms = self.rooms.max(1);
        let mut slots = Vec::new();
        for (group, &(_, clients)) in self.groups.iter().enumerate() {
            let (base, extra) = (clients / rooms, clients % rooms);
            for i in 0..clients {
                let (room, rank) = (i % rooms, i / rooms);
                // The client's position when the group is listed room by room: picking every `send_every`-th of
                // that gives each room the same number of senders, give or take one.
                let position = room * base + room.min(extra) + rank;
                slots.push(Slot { group, room, sends: position.is_multiple_of(self.send_every.max(1)) });
            }
        }
        slots
    }
}

async fn cursors(
    options: &Options,
    mut connector: Connector,
    shape: &RoomsShape,
    params: String,
) -> anyhow::Result<Report> {
    let baseline = baseline(options)?;
    let mut infos = Vec::with_capacity(shape.rooms);
    for _ in 0..shape.rooms.max(1) {
        infos.push(connector.new_room().await?);
    }
    // `connector` made the rooms; a group of another transport connects to them with its own.
    let connectors: Vec<Connector> = shape
        .groups
        .iter()
        .map(|&(transport, _)| match transport == connector.transport() {
            true => Ok(connector.clone()),
            false => connector.with_transport(transport, &infos[0]),
        })
        .collect::<anyhow::Result<_>>()?;
    let slots = shape.slots();
    // Clients of every room by group, for the deliveries each relay makes.
    let mut members = vec![vec![0u64; shape.groups.len()]; infos.len()];
    for slot in &slots {
        members[slot.room][slot.group] += 1;
    }
    let targets = slots.iter().map(|slot| (&connectors[slot.group], &infos[slot.room]));
    let clients = subscribe_each(targets, CURSOR_KEY, options.connect_concurrency).await?;
    let (kinds, reliable_every) = (shape.kinds, shape.kinds.reliable_every);
    let mut receivers = Receivers { reliable_every, ..Receivers::new() };
    let window = Window::start(options.server_pid, baseline)?;
    let hz = shape.hz;
    let duration = options.duration();
    let period = 1.0 / hz.max(0.001);
    let mut senders = Vec::new();
    let mut idle_txs = Vec::new();
    for (index, ((mut tx, rx), slot)) in clients.into_iter().zip(&slots).enumerate() {
        receivers.spawn_in(slot.group, rx);
        if !slot.sends {
            idle_txs.push(tx);
            continue;
        }
        // Spread the clients' phases over one period so that they do not all send at the same instant (unless the
        // scenario asks for exactly that).
        let phase = if shape.same_tick { 0.0 } else { (index as f64 * 0.618_034) % 1.0 };
        let offset = Duration::from_secs_f64(period * phase);
        let room = slot.room;
        senders.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            let stamp = |n| Stamp::now(index as u32, n);
            let sent = paced(&mut tx, hz, duration.saturating_sub(offset), stamp, |n| kinds.of(n), CURSOR_KEY).await;
            (tx, room, sent)
        }));
    }
    // Every relay goes to every client of its room, the sender included (it subscribes).
    // Deliveries expected per group: all of them, and the reliable relays among them.
    let (mut expected, mut reliable) = (vec![0u64; shape.groups.len()], vec![0u64; shape.groups.len()]);
    let (mut sent, mut txs) = (0, idle_txs);
    for sender in senders {
        let (tx, room, result) = sender.await.context("a sender panicked")?;
        let n = result?;
        let reliable_n = kinds.reliable_among(n);
        for (group, &clients) in members[room].iter().enumerate() {
            expected[group] += n * clients;
            reliable[group] += reliable_n * clients;
        }
        sent += n;
        txs.push(tx);
    }
    let total_expected = expected.iter().sum();
    receivers.drain(total_expected, options.drain()).await;
    let progress = receivers.progress.clone();
    let mut tally = Tally::default();
    let mut by_transport = Vec::new();
    for (group, group_tally) in receivers.finish_by_group(shape.groups.len()).await?.into_iter().enumerate() {
        by_transport.push(Share {
            transport: connectors[group].transport().name().to_owned(),
            connections: shape.groups[group].1,
            all: Part::new(expected[group], group_tally.delivered),
            reliable: (reliable_every > 0).then(|| Part::new(reliable[group], group_tally.reliable_delivered)),
            latency: Report::latency_of(&group_tally),
        });
        tally.merge(group_tally);
    }
    if by_transport.len() < 2 {
        by_transport.clear();
    }
    let reliable = (reliable_every > 0).then(|| reliable.iter().sum());
    let run = Run {
        params,
        connections: slots.len(),
        sent,
        expected: total_expected,
        tally,
        progress,
        replay: None,
        reliable,
        by_transport,
    };
    let report = window.report(options, run);
    close_all(txs).await;
    report
}

async fn append(options: &Options, mut connector: Connector, args: &AppendArgs) -> anyhow::Result<Report> {
    let baseline = baseline(options)?;
    let room = connector.new_room().await?;
    let slots = vec![&room; args.writers.max(1)];
    let writers = subscribe_all(&connector, &slots, LOG_KEY, options.connect_concurrency).await?;
    let mut receivers = Receivers::new();
    let window = Window::start(options.server_pid, baseline)?;
    let (duration, rate) = (options.duration(), args.rate / slots.len() as f64);
    let mut senders = Vec::new();
    let kind = if args.replace { PushKind::Replace } else { PushKind::Append };
    for (index, (mut tx, rx)) in writers.into_iter().enumerate() {
        receivers.spawn(rx);
        senders.push(tokio::spawn(async move {
            let sent = paced(&mut tx, rate, duration, |n| Stamp::now(index as u32, n), |_| kind, LOG_KEY).await;
            (tx, sent)
        }));
    }
    let (mut sent_by, mut txs) = (Vec::new(), Vec::new());
    for sender in senders {
        let (tx, result) = sender.await.context("a writer panicked")?;
        sent_by.push(result?);
        txs.push(tx);
    }
    let sent: u64 = sent_by.iter().sum();
    let expected = sent * slots.len() as u64;
    receivers.drain(expected, options.drain()).await;
    let progress = receivers.progress.clone();
    let mut tally = receivers.finish().await?;

    // Replay: a fresh connection reads the whole stream back.
    let (replay_tx, mut replay_rx) = connector.connect(&room).await?;
    let mut get_tx = replay_tx;
    get_tx.send(&Out::get(LOG_KEY)).await?;
    let entries =
        match tokio::time::timeout(CONNECT_TIMEOUT, replay_rx.next()).await.context("waiting for replay")?? {
            Some(Received { message: In::Init { entries, .. }, .. }) => entries,
            other => bail!("expected the replay's init, got {:?}", other.map(|r| r.message)),
        };
    let problems = if args.replace { check_replaced(&entries, &sent_by) } else { check_replay(&entries, &sent_by) };
    for problem in &problems {
        tally.error(format!("replay: {problem}"));
    }
    let replay = Replay { entries: entries.len() as u64, ok: problems.is_empty() };
    let params = format!("{} writers, {} {}/s", slots.len(), args.rate, kind_name(kind));
    let replay = Some(replay);
    let run = Run { params, connections: slots.len() + 1, sent, expected, tally, progress, replay, ..Run::default() };
    let report = window.report(options, run);
    txs.push(get_tx);
    close_all(txs).await;
    report
}

/// Checks a replaced key: exactly one entry, the last write of one of the writers.
fn check_replaced(entries: &[(u64, Option<Stamp>)], sent_by: &[u64]) -> Vec<String> {
    match entries {
        [(_, Some(stamp))] if sent_by.get(stamp.s as usize).is_some_and(|&sent| stamp.n + 1 == sent) => Vec::new(),
        [(seq, other)] => vec![format!("seq {seq}: {other:?} is no writer's last write")],
        _ => vec![format!("{} entries stored after replaces, expected 1", entries.len())],
    }
}

/// Checks a replayed stream against what each writer sent: every write exactly once, seqs ascending, and each
/// writer's writes in the order it sent them.
fn check_replay(entries: &[(u64, Option<Stamp>)], sent_by: &[u64]) -> Vec<String> {
    let mut problems = Vec::new();
    let total: u64 = sent_by.iter().sum();
    if entries.len() as u64 != total {
        problems.push(format!("{} entries stored, {total} written", entries.len()));
    }
    let mut next_n = vec![0u64; sent_by.len()];
    let mut last_seq = 0;
    for (seq, stamp) in entries {
        if *seq <= last_seq {
            problems.push(format!("seq {seq} after {last_seq}"));
        }
        last_seq = *seq;
        match stamp {
            Some(stamp) if (stamp.s as usize) < next_n.len() && next_n[stamp.s as usize] == stamp.n => {
                next_n[stamp.s as usize] += 1;
            }
            other => problems.push(format!("seq {seq}: unexpected entry {other:?}")),
        }
        if problems.len() >= 10 {
            break;
        }
    }
    problems
}

async fn idle(options: &Options, mut connector: Connector, args: &IdleArgs) -> anyhow::Result<Report> {
    let baseline = baseline(options)?;
    let per_room = args.per_room.max(1);
    let mut infos = Vec::new();
    for _ in 0..args.connections.div_ceil(per_room) {
        infos.push(connector.new_room().await?);
    }
    let slots: Vec<&RoomInfo> = (0..args.connections).map(|i| &infos[i / per_room]).collect();
    let clients = subscribe_all(&connector, &slots, IDLE_KEY, options.connect_concurrency).await?;
    let mut receivers = Receivers::new();
    let mut txs = Vec::new();
    for (tx, rx) in clients {
        receivers.spawn(rx);
        txs.push(tx);
    }
    let window = Window::start(options.server_pid, baseline)?;
    tokio::time::sleep(options.duration()).await;
    // One reliable relay per room, from its first connection, proves every connection is still live.
    let mut sent = 0;
    for (room, first) in (0..infos.len()).map(|r| (r, r * per_room)) {
        txs[first].send(&Out::Push { key: IDLE_KEY, stamp: Stamp::now(room as u32, 0), kind: PushKind::Relay }).await?;
        sent += 1;
    }
    let expected = args.connections as u64;
    receivers.drain(expected, options.drain()).await;
    let progress = receivers.progress.clone();
    let tally = receivers.finish().await?;
    let params = format!("{} connections, {} per room", args.connections, per_room);
    let run = Run { params, connections: args.connections, sent, expected, tally, progress, ..Run::default() };
    let report = window.report(options, run);
    close_all(txs).await;
    report
}

#[cfg(test)]
mod tests {
    use super::{Kinds, RoomsShape, check_replay};
    use crate::Transport;
    use driftdb_client::stamp::Stamp;
    use driftdb_client::stamped::PushKind;

    /// Both kinds of client spread evenly over the rooms, and each room gets its share of either kind's senders.
    #[test]
    fn mixed_rooms_spread_clients_and_senders_evenly() {
        let shape = RoomsShape {
            rooms: 10,
            groups: vec![(Transport::WsJson, 180), (Transport::Wt, 50)],
            hz: 10.0,
            kinds: Kinds { kind: PushKind::Volatile, reliable_every: 0 },
            same_tick: false,
            send_every: 10,
        };
        let slots = shape.slots();
        for (group, per_room, senders) in [(0, 18, 1..=2), (1, 5, 0..=1)] {
            for room in 0..10 {
                let here = slots.iter().filter(|s| s.group == group && s.room == room);
                assert_eq!(here.clone().count(), per_room, "group {group}, room {room}");
                assert!(senders.contains(&here.filter(|s| s.sends).count()), "group {group}, room {room}");
            }
        }
        assert_eq!(slots.iter().filter(|s| s.sends).count(), 18 + 5);
    }

    fn entry(seq: u64, s: u32, n: u64) -> (u64, Option<Stamp>) {
        (seq, Some(Stamp { t: 0, s, n }))
    }

    #[test]
    fn replay_check_finds_lost_doubled_and_reordered_writes() {
        let good = [entry(1, 0, 0), entry(2, 1, 0), entry(3, 0, 1)];
        assert!(check_replay(&good, &[2, 1]).is_empty());
        assert!(!check_replay(&good[..2], &[2, 1]).is_empty(), "a lost write");
        let doubled = [entry(1, 0, 0), entry(2, 0, 0), entry(3, 1, 0)];
        assert!(!check_replay(&doubled, &[2, 1]).is_empty(), "a doubled write");
        let reordered = [entry(1, 0, 1), entry(2, 0, 0), entry(3, 1, 0)];
        assert!(!check_replay(&reordered, &[2, 1]).is_empty(), "a writer's writes out of order");
        let seqs = [entry(2, 0, 0), entry(1, 1, 0), entry(3, 0, 1)];
        assert!(!check_replay(&seqs, &[2, 1]).is_empty(), "seqs not ascending");
    }
}
