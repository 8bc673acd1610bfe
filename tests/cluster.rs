//! A cluster of real `driftdb` processes on a real `nats-server -js` (Debian package `nats-server`; `.ci/run`
//! installs it), all on loopback: rooms spread over the nodes and every node names the same owner; a killed
//! owner's rooms move to a live node within a bounded time; concurrent lease takers race against real JetStream
//! and exactly one wins each revision; a node that loses NATS reports it and keeps its own rooms; a node that
//! cannot reach NATS at start exits with a clear error.

mod common;
mod wt_support;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::json_body;
use common::process::ServerProcess;
use driftdb::cluster::{self, Leases, Renewal, lease};
use driftdb::engine::RoomId;
use driftdb::protocol::{Action, Replay, ServerMessage};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The longest a cluster may take to settle (nodes seeing each other, NATS coming back).
const SETTLE: Duration = Duration::from_secs(10);
/// How often a wait checks again.
const POLL: Duration = Duration::from_millis(100);

/// A `nats-server -js` on a free loopback port with its store in a temp dir, killed when dropped.
struct Nats {
    child: Child,
    port: u16,
    store: tempfile::TempDir,
}

impl Nats {
    fn start() -> Self {
        let store = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Self::spawn(port, store.path());
        Nats { child, port, store }
    }

    fn spawn(port: u16, store: &Path) -> Child {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (Debian package nats-server: apt-get install nats-server)");
        wait_until(SETTLE, "nats-server accepts connections", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        child
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and store, as after a NATS restart.
    fn restart(&mut self) {
        self.stop();
        self.child = Self::spawn(self.port, self.store.path());
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port free on loopback right now (the OS does not hand it out again at once).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Calls `done` every [`POLL`] until it holds, panicking with `what` after `limit`.
fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {limit:?}: {what}");
        std::thread::sleep(POLL);
    }
}

/// The async twin of [`wait_until`]: polls `check` until it answers `Some`.
async fn poll<T, F: Future<Output = Option<T>>>(limit: Duration, what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?}: {what}");
        tokio::time::sleep(POLL).await;
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap()
}

/// A cluster node: the binary with `--cluster`, on loopback with a free port, with `extra` options (in memory
/// unless they name a `--storage`).
fn node(nats: &Nats, id: &str, extra: &[&str]) -> ServerProcess {
    let url = nats.url();
    let mut args = vec!["--cluster", &url, "--node-id", id];
    if !extra.contains(&"--storage") {
        args.extend(["--storage", "memory"]);
    }
    args.extend_from_slice(extra);
    ServerProcess::start(&args)
}

/// Starts `count` nodes and waits until each sees all of them.
async fn cluster_of(nats: &Nats, count: usize) -> Vec<ServerProcess> {
    cluster_with(nats, count, &[]).await
}

/// Starts `count` nodes with `extra` options and waits until each sees all of them.
async fn cluster_with(nats: &Nats, count: usize, extra: &[&str]) -> Vec<ServerProcess> {
    let nodes: Vec<ServerProcess> = (0..count).map(|n| node(nats, &format!("node-{n}"), extra)).collect();
    for node in &nodes {
        let what = format!("{} to see {count} nodes", node.addr());
        poll(SETTLE, &what, || async {
            (metric(node, "driftdb_cluster_nodes").await == Some(count as i64)).then_some(())
        })
        .await;
    }
    nodes
}

/// A gauge's value in the node's `/metrics`.
async fn metric(node: &ServerProcess, name: &str) -> Option<i64> {
    let text = http().get(node.url("/metrics")).send().await.ok()?.text().await.ok()?;
    let line = text.lines().find(|line| line.split_whitespace().next() == Some(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `GET /room/ID` on `node`: the room info, or the error status and message.
async fn room_info(node: &ServerProcess, room: &str) -> Result<Value, (StatusCode, String)> {
    let response = http()
        .get(node.url(&format!("/room/{room}")))
        .send()
        .await
        .map_err(|e| (StatusCode::IM_A_TEAPOT, e.to_string()))?;
    match response.status() {
        StatusCode::OK => Ok(json_body(response, StatusCode::OK).await),
        status => Err((status, response.text().await.unwrap_or_default())),
    }
}

/// The `host:port` a room info sends clients to.
fn owner_of(info: &Value) -> String {
    let url = info["socket_url"].as_str().unwrap_or_else(|| panic!("room info without socket_url: {info}"));
    url.trim_start_matches("ws://").split('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn rooms_spread_over_the_nodes_and_every_node_names_the_same_owner() {
    let nats = Nats::start();
    let nodes = cluster_of(&nats, 3).await;
    let mut rooms = Vec::new();
    for node in &nodes {
        for _ in 0..5 {
            let response = http().post(node.url("/new")).send().await.unwrap();
            rooms.push(json_body(response, StatusCode::OK).await);
        }
    }
    let addrs: BTreeSet<String> = nodes.iter().map(|node| node.addr().to_string()).collect();
    let owners: BTreeSet<String> = rooms.iter().map(owner_of).collect();
    assert!(owners.len() > 1, "15 new rooms all went to {owners:?}");
    assert!(owners.is_subset(&addrs), "owners {owners:?} are not nodes {addrs:?}");
    for created in &rooms {
        let room = created["room"].as_str().unwrap();
        for node in &nodes {
            let info = room_info(node, room).await.unwrap_or_else(|e| panic!("room {room} on {}: {e:?}", node.addr()));
            assert_eq!(&info, created, "{} names another owner for {room}", node.addr());
        }
        // The owner's WebTransport listener and certificate, not the answering node's.
        let port = owner_of(created).rsplit(':').next().unwrap().to_owned();
        let wt = created["webtransport_url"].as_str().expect("a webtransport_url");
        assert!(wt.starts_with(&format!("https://127.0.0.1:{port}/room/{room}/")), "{wt} is not on the owner");
        assert!(created["certificate_hashes"].as_array().is_some_and(|h| !h.is_empty()), "{created}");
    }
    // A room asked for by name lands on one owner too, whichever node is asked first.
    let named: Vec<String> = futures_util::future::join_all(nodes.iter().map(|node| room_info(node, "by-name")))
        .await
        .into_iter()
        .map(|info| owner_of(&info.expect("room info")))
        .collect();
    assert!(named.windows(2).all(|pair| pair[0] == pair[1]), "concurrent first lookups disagree: {named:?}");
}

#[tokio::test]
async fn a_killed_owners_rooms_move_to_a_live_node_within_a_bounded_time() {
    let nats = Nats::start();
    let mut nodes = cluster_of(&nats, 3).await;
    let room = "orphan";
    let owner = owner_of(&room_info(&nodes[0], room).await.unwrap());
    let index = nodes.iter().position(|node| node.addr().to_string() == owner).expect("the owner is a node");
    let mut killed = nodes.remove(index);
    killed.signal("-KILL");
    let started = Instant::now();

    // Until the lease ends the survivors name the dead owner or say it is not answering: never another owner.
    let bound = lease::LEASE_TTL + cluster::membership::NODE_TTL + Duration::from_secs(2);
    let new_owner = poll(bound, "a survivor to own the room", || async {
        match room_info(&nodes[0], room).await {
            Ok(info) if owner_of(&info) != owner => Some(owner_of(&info)),
            Ok(_) => None,
            Err((status, message)) => {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{message}");
                assert!(message.contains("not answering"), "{message}");
                None
            }
        }
    })
    .await;
    let took = started.elapsed();
    println!("takeover after kill -9 of the owner: {took:?} (bound {bound:?})");
    assert!(nodes.iter().any(|node| node.addr().to_string() == new_owner), "{new_owner} is not a survivor");
    for node in &nodes {
        assert_eq!(owner_of(&room_info(node, room).await.unwrap()), new_owner, "survivors agree on the new owner");
    }
}

#[tokio::test]
async fn concurrent_takers_of_one_lease_win_exactly_once_per_revision() {
    let nats = Nats::start();
    const TAKERS: usize = 8;
    let mut takers: Vec<Arc<Leases>> = Vec::new();
    for n in 0..TAKERS {
        let jetstream = cluster::nats_jetstream(&nats.url(), "race").await.expect("NATS is up");
        takers.push(Arc::new(Leases::open(&jetstream, &format!("taker-{n}")).await.expect("the bucket opens")));
    }
    let room = RoomId::parse("contended").unwrap();
    let mut expected = None;
    let mut winners: Vec<usize> = Vec::new();
    for round in 0..5 {
        // Every taker names the same revision (none: the key is absent); JetStream orders the writes.
        let attempts = takers.iter().map(|leases| {
            let (leases, room) = (leases.clone(), room.clone());
            tokio::spawn(async move { leases.take(&room, expected).await.expect("NATS answers") })
        });
        let won: Vec<bool> = futures_util::future::join_all(attempts).await.into_iter().map(Result::unwrap).collect();
        let winner_ids: Vec<usize> = (0..TAKERS).filter(|&n| won[n]).collect();
        assert_eq!(winner_ids.len(), 1, "round {round}: winners {winner_ids:?}");
        let winner = winner_ids[0];
        let lease = takers[0].read(&room).await.unwrap().expect("the lease is held");
        assert_eq!(lease.value.owner, format!("taker-{winner}"), "round {round}: the bucket names the winner");
        assert!(takers[winner].holds(&room));
        if let Some(previous) = winners.last().copied().filter(|&p| p != winner) {
            // The fence: the previous holder's renewal with its old revision fails, it cannot write over the new one.
            assert_eq!(takers[previous].renew(&room).await, Renewal::Lost, "round {round}: a stale holder renewed");
            assert!(!takers[previous].holds(&room));
        }
        winners.push(winner);
        expected = Some(lease.revision);
    }
}

#[tokio::test]
async fn a_node_that_loses_nats_says_so_keeps_its_rooms_and_takes_no_new_ones() {
    let mut nats = Nats::start();
    let nodes = cluster_of(&nats, 1).await;
    let node = &nodes[0];
    let own = room_info(node, "kept").await.unwrap();
    let mut client = ws_on(node, "kept", true).await;
    client.subscribe("k").await;
    nats.stop();
    let cut_at = Instant::now();

    poll(SETTLE, "the node to notice NATS is gone", || async {
        (metric(node, "driftdb_cluster_connected").await == Some(0)).then_some(())
    })
    .await;
    let health = http().get(node.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(health.text().await.unwrap().contains("NATS is unreachable"));
    assert_eq!(room_info(node, "kept").await.expect("its own room is still served"), own);
    let (status, message) = room_info(node, "new-while-cut-off").await.expect_err("no new lease without NATS");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(message.contains("takes no new ones"), "{message}");
    // Its clients are served while the lease is trusted...
    client.send(&common::msg::append("k", json!("while cut off"))).await;
    client.expect_push("k").await;
    // ...and closed once it is not, so that a node elsewhere can take the room without two owners taking writes.
    let closed = client.expect_close().await;
    println!("clients closed {:?} after NATS went (lease {:?})", cut_at.elapsed(), lease::LEASE_TTL);
    assert_eq!(closed.code, 1001, "{closed:?}");
    assert!(cut_at.elapsed() < lease::LEASE_TTL, "closed only after another node could have taken the room");

    nats.restart();
    poll(SETTLE, "the node to rejoin", || async {
        let health = http().get(node.url("/healthz")).send().await.ok()?;
        (health.status() == StatusCode::OK).then_some(())
    })
    .await;
    let info =
        poll(SETTLE, "a new room after NATS returned", || async { room_info(node, "after-return").await.ok() }).await;
    assert_eq!(owner_of(&info), node.addr().to_string());
}

#[test]
fn a_node_that_cannot_reach_nats_at_start_exits_with_a_clear_error() {
    let port = free_port();
    let output = Command::new(env!("CARGO_BIN_EXE_driftdb"))
        .args(["serve", "--port", "0", "--storage", "memory", "--no-webtransport"])
        .args(["--cluster", &format!("nats://127.0.0.1:{port}")])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!output.status.success(), "it must not serve alone");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("cannot reach NATS at nats://127.0.0.1:{port}")), "{stderr}");
    assert!(output.stdout.is_empty(), "it never said it was listening");
}

/// The room info of a room `node` owns itself (new rooms are placed by hash: a few tries find one), for the URLs
/// and certificate hashes of that node's own listeners.
async fn own_room_info(node: &ServerProcess) -> Value {
    for _ in 0..50 {
        let info = json_body(http().post(node.url("/new")).send().await.unwrap(), StatusCode::OK).await;
        if owner_of(&info) == node.addr().to_string() {
            return info;
        }
    }
    panic!("{} owns none of 50 new rooms", node.addr())
}

/// A WebTransport session to `room` on `node` itself, whoever owns the room.
async fn wt_on(node: &ServerProcess, room: &str) -> wt_support::WtClient {
    let own = own_room_info(node).await;
    let url = wt_support::url(&own).as_str().replace(own["room"].as_str().unwrap(), room);
    wt_support::WtClient::connect(url.parse().unwrap(), &wt_support::hashes(&own)).await.expect("a session")
}

/// A JSON WebSocket to `room` on `node` itself, with our extensions (`ext`) or as the reference client connects.
async fn ws_on(node: &ServerProcess, room: &str, ext: bool) -> common::WsClient {
    try_ws_on(node, room, ext).await.expect("a WebSocket")
}

async fn try_ws_on(
    node: &ServerProcess,
    room: &str,
    ext: bool,
) -> Result<common::WsClient, tokio_tungstenite::tungstenite::Error> {
    let path = format!("/room/{room}/connect{}", if ext { "?ext=true" } else { "" });
    common::WsClient::open(node.addr(), &path, common::Encoding::Json, None).await
}

/// The room's owner and the other nodes.
async fn owner_and_others<'a>(nodes: &'a [ServerProcess], room: &str) -> (&'a ServerProcess, Vec<&'a ServerProcess>) {
    let owner = owner_of(&room_info(&nodes[0], room).await.unwrap());
    let (owners, others): (Vec<_>, Vec<_>) = nodes.iter().partition(|node| node.addr().to_string() == owner);
    (owners[0], others)
}

/// The pushes of `key` a WebTransport client receives until it has `count`, as (seq, value) in arrival order.
async fn wt_pushes(client: &mut wt_support::WtClient, key: &str, count: usize) -> Vec<(u64, Value)> {
    let mut pushes = Vec::new();
    while pushes.len() < count {
        if let ServerMessage::Push { key: k, value, seq, .. } = client.recv().await
            && k.to_string() == key
        {
            pushes.push((seq, json_of(&value)));
        }
    }
    pushes
}

fn json_of(value: &driftdb::protocol::Value) -> Value {
    serde_json::from_str(value.json().get()).unwrap()
}

/// The same for a WebSocket client.
async fn ws_pushes(client: &mut common::WsClient, key: &str, count: usize) -> Vec<(u64, Value)> {
    let mut pushes = Vec::new();
    while pushes.len() < count {
        let message = client.recv().await;
        if message["type"] == "push" && message["key"] == key {
            pushes.push((common::seq_of(&message), message["value"].clone()));
        }
    }
    pushes
}

#[tokio::test]
async fn clients_of_every_node_share_a_room_in_one_order_through_its_owner() {
    let nats = Nats::start();
    let nodes = cluster_of(&nats, 3).await;
    let room = "shared";
    let (owner, others) = owner_and_others(&nodes, room).await;
    let mut on_owner = ws_on(owner, room, true).await;
    let mut ws_elsewhere = ws_on(others[0], room, true).await;
    let mut wt_elsewhere = wt_on(others[1], room).await;
    on_owner.subscribe("k").await;
    ws_elsewhere.subscribe("k").await;
    wt_elsewhere.send(&wt_support::get("k", Replay::After(0))).await;
    assert!(matches!(wt_elsewhere.recv().await, ServerMessage::Init { .. }));

    // Writes from all three nodes at once, then one over HTTP to a node that does not own the room.
    for n in 0..10 {
        on_owner.send(&common::msg::append("k", json!(format!("a{n}")))).await;
        ws_elsewhere.send(&common::msg::append("k", json!(format!("b{n}")))).await;
        let value = json!(format!("c{n}"));
        wt_elsewhere.send(&wt_support::push("k", Action::Append, value)).await;
    }
    let sent = http()
        .post(others[0].url(&format!("/room/{room}/send")))
        .body(common::msg::append("k", json!("http")).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::OK, "{:?}", sent.text().await);

    let seen_on_owner = ws_pushes(&mut on_owner, "k", 31).await;
    assert_eq!(ws_pushes(&mut ws_elsewhere, "k", 31).await, seen_on_owner, "a forwarded WebSocket's order");
    assert_eq!(wt_pushes(&mut wt_elsewhere, "k", 31).await, seen_on_owner, "a forwarded WebTransport's order");
    let seqs: Vec<u64> = seen_on_owner.iter().map(|(seq, _)| *seq).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "one sequence: {seqs:?}");
    for prefix in ["a", "b", "c"] {
        let own: Vec<String> = seen_on_owner
            .iter()
            .filter_map(|(_, v)| v.as_str())
            .filter(|v| v.starts_with(prefix))
            .map(String::from)
            .collect();
        let expected: Vec<String> = (0..10).map(|n| format!("{prefix}{n}")).collect();
        assert_eq!(own, expected, "each sender's writes in its order");
    }

    // Volatile relays are forwarded too, both ways (a datagram in, a WebSocket frame out, and back).
    ws_elsewhere.subscribe("cursor").await;
    wt_elsewhere.send(&wt_support::get("cursor", Replay::After(0))).await;
    wt_elsewhere.send_datagram(&wt_support::volatile("cursor", json!({"x": 1})));
    let relayed = ws_elsewhere.expect("push").await;
    assert_eq!((&relayed["key"], &relayed["value"]), (&json!("cursor"), &json!({"x": 1})), "{relayed}");
    ws_elsewhere.send(&common::msg::relay("cursor", json!({"x": 2}))).await;
    loop {
        if let ServerMessage::Push { key, value, .. } = wt_elsewhere.recv().await
            && key.to_string() == "cursor"
            && json_of(&value) == json!({"x": 2})
        {
            break;
        }
    }

    // An HTTP get through a node that does not own the room replays the whole stream.
    let replay = http()
        .post(others[1].url(&format!("/room/{room}/send")))
        .body(common::msg::get("k", json!(0)).to_string())
        .send()
        .await
        .unwrap();
    let replay = json_body(replay, StatusCode::OK).await;
    assert_eq!(replay["data"].as_array().map(Vec::len), Some(31), "{replay}");

    // The owner counts the forwarded connections as its room's.
    let snapshot = http().get(owner.url(&format!("/room/{room}/inspect"))).send().await.unwrap();
    let snapshot = json_body(snapshot, StatusCode::OK).await;
    assert_eq!(snapshot["connections"]["forwarded"], 2, "{snapshot}");
}

#[tokio::test]
async fn a_forwarded_connection_meets_the_owners_limits_and_close_codes() {
    let nats = Nats::start();
    let nodes = cluster_with(
        &nats,
        2,
        &["--max-messages-per-second", "10", "--message-burst", "20", "--max-connections-per-room", "2"],
    )
    .await;
    let room = "limited";
    let (owner, others) = owner_and_others(&nodes, room).await;
    let elsewhere = others[0];
    let mut calm = ws_on(owner, room, false).await;
    calm.subscribe("k").await;

    // A flood through the non-owner is closed with the rate limit's code, as on the owner.
    let mut flooder = ws_on(elsewhere, room, false).await;
    for n in 0..200 {
        flooder.send(&common::msg::ping(n)).await;
    }
    assert_eq!(flooder.expect_close().await.code, 4002);

    // The room holds two connections: the third, through the non-owner, is refused with the owner's code.
    let _second = ws_on(elsewhere, room, false).await;
    let mut third = ws_on(elsewhere, room, false).await;
    assert_eq!(third.expect_close().await.code, 4003);
    calm.assert_nothing_pending().await;
}

#[tokio::test]
async fn a_forwarded_client_is_told_when_the_owner_dies_and_reconnects_to_the_new_one() {
    let nats = Nats::start();
    let mut nodes = cluster_of(&nats, 3).await;
    let room = "survives";
    let owner = owner_of(&room_info(&nodes[0], room).await.unwrap());
    let index = nodes.iter().position(|node| node.addr().to_string() == owner).unwrap();
    let mut killed = nodes.remove(index);
    let mut forwarded = ws_on(&nodes[0], room, true).await;
    forwarded.subscribe("k").await;
    forwarded.send(&common::msg::append("k", json!("before"))).await;
    forwarded.expect_push("k").await;

    killed.signal("-KILL");
    let started = Instant::now();
    let closed = forwarded.expect_close().await;
    println!("forwarded client closed {:?} after the owner's kill -9", started.elapsed());
    assert_eq!(closed.code, 1001, "{closed:?}");

    // Reconnecting to the same node (what a 1.0.12 client does) reaches the room's new owner once it has one.
    init_when_served(&nodes[0], room, "k", lease::LEASE_TTL + SETTLE).await;
    let mut again = ws_on(&nodes[0], room, true).await;
    again.subscribe("k").await;
    println!("served again {:?} after the kill", started.elapsed());
    again.send(&common::msg::append("k", json!("after"))).await;
    assert_eq!(again.expect_push("k").await.1, json!("after"));
}

/// The `init` of `key` that a fresh extended client of `room` on `node` gets, once the room is served again.
async fn init_when_served(node: &ServerProcess, room: &str, key: &str, limit: Duration) -> Value {
    poll(limit, "the room to be served again", || async {
        let mut client = try_ws_on(node, room, true).await.ok()?;
        client.send(&common::msg::get(key, json!(0))).await;
        // While nobody serves the room, the node closes the connection (1001): try again.
        match client.recv_frame_within(Duration::from_secs(3)).await? {
            Message::Text(text) => Some(serde_json::from_str::<Value>(&text).unwrap()),
            _ => None,
        }
        .filter(|message| message["type"] == "init")
    })
    .await
}

fn values(init: &Value) -> Vec<Value> {
    init["data"].as_array().expect("init data").iter().map(|entry| entry["value"].clone()).collect()
}

/// What [`five_writes_through_a_non_owner`] wrote to key `k`, in order.
const FIVE_WRITES: [i32; 5] = [0, 1, 2, 3, 4];

/// Where the handover tests start: a two-node cluster storing in JetStream, the owner of the room taken apart from
/// the other node, and a client on the other node that has appended [`FIVE_WRITES`] to `k` and seen them fanned out.
struct FiveWrites {
    nodes: Vec<ServerProcess>,
    owner: ServerProcess,
    client: common::WsClient,
    epoch: Value,
}

async fn five_writes_through_a_non_owner(nats: &Nats, room: &str) -> FiveWrites {
    let mut nodes = cluster_with(nats, 2, &["--storage", "jetstream"]).await;
    let (owner, _) = owner_and_others(&nodes, room).await;
    let owner = nodes.iter().position(|node| node.addr() == owner.addr()).unwrap();
    let owner = nodes.remove(owner);
    let mut client = ws_on(&nodes[0], room, true).await;
    let epoch = client.subscribe("k").await["epoch"].clone();
    for n in FIVE_WRITES {
        client.send(&common::msg::append("k", json!(n))).await;
    }
    ws_pushes(&mut client, "k", FIVE_WRITES.len()).await;
    FiveWrites { nodes, owner, client, epoch }
}

#[tokio::test]
async fn a_sigterm_hands_rooms_over_with_their_data_and_epoch() {
    let nats = Nats::start();
    let room = "handed-over";
    let FiveWrites { nodes, owner: mut leaving, mut client, epoch } =
        five_writes_through_a_non_owner(&nats, room).await;

    let started = Instant::now();
    assert!(leaving.signal("-TERM").success(), "a clean stop");
    assert_eq!(client.expect_close().await.code, 1001, "forwarded clients are told to reconnect");
    let init = init_when_served(&nodes[0], room, "k", SETTLE).await;
    println!("room served by the other node {:?} after SIGTERM", started.elapsed());
    assert_eq!(init["epoch"], epoch, "a handover keeps the epoch: clients resume");
    assert_eq!(values(&init), FIVE_WRITES.map(|n| json!(n)));
}

#[tokio::test]
async fn a_killed_owners_committed_writes_survive_under_a_new_epoch() {
    let nats = Nats::start();
    let room = "crashed";
    let FiveWrites { nodes, owner: mut killed, client: _client, epoch } =
        five_writes_through_a_non_owner(&nats, room).await;
    // Group commit makes a write durable within milliseconds of its fan-out; the kill comes well after.
    tokio::time::sleep(Duration::from_millis(500)).await;

    killed.signal("-KILL");
    let started = Instant::now();
    let init = init_when_served(&nodes[0], room, "k", lease::LEASE_TTL + SETTLE).await;
    println!("room served again {:?} after kill -9 of its owner", started.elapsed());
    assert_ne!(init["epoch"], epoch, "its owner may have fanned out writes it never committed: a new epoch");
    assert_eq!(values(&init), FIVE_WRITES.map(|n| json!(n)), "every committed write is there");
}

#[tokio::test]
async fn with_an_admin_token_any_node_shows_a_room_that_exists_on_another() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("admin");
    std::fs::write(&admin, "s3cret-admin-token\n").unwrap();
    let nodes = cluster_with(&nats, 2, &["--admin-token-file", admin.to_str().unwrap()]).await;
    let created = http().post(nodes[0].url("/new")).bearer_auth("s3cret-admin-token").send().await.unwrap();
    let created = json_body(created, StatusCode::OK).await;
    let room = created["room"].as_str().unwrap();
    for node in &nodes {
        // Whichever node owns it, every node knows the room exists: no admin token needed to look it up.
        assert_eq!(room_info(node, room).await.expect("an existing room"), created, "on {}", node.addr());
        let (status, _) = room_info(node, "never-created").await.expect_err("creating by asking needs the admin");
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

/// How many messages room `room`'s log holds in JetStream.
async fn log_length(nats: &Nats, room: &str) -> usize {
    let jetstream = cluster::nats_jetstream(&nats.url(), "log-length").await.expect("NATS is up");
    let stream = jetstream.get_stream(driftdb::storage::jetstream_store::STREAM).await.expect("the room stream");
    let subject = format!("driftdb.data.{room}");
    let mut subjects = stream.info_with_subjects(&subject).await.expect("stream info");
    let mut length = 0;
    while let Some(entry) = futures_util::StreamExt::next(&mut subjects).await {
        let (name, count) = entry.expect("a subject count");
        if name == subject {
            length += count;
        }
    }
    length
}

/// Appends `values` to `key` one commit at a time through a client of the room's current owner.
async fn append_one_by_one(node: &ServerProcess, room: &str, values: std::ops::Range<i64>) {
    let mut client = ws_on(node, room, true).await;
    client.subscribe("k").await;
    for n in values {
        client.send(&common::msg::append("k", json!(n))).await;
        ws_pushes(&mut client, "k", 1).await;
        // Past the group commit's batch, so that each write is a message of its own in the room's log.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    client.close(1000).await;
}

#[tokio::test]
async fn a_long_log_is_rolled_up_when_loaded_and_the_room_moves_on_intact() {
    let nats = Nats::start();
    let mut nodes = cluster_with(&nats, 3, &["--storage", "jetstream"]).await;
    let room = "rolled";
    let (owner, _) = owner_and_others(&nodes, room).await;
    let epoch = init_when_served(owner, room, "k", SETTLE).await["epoch"].clone();
    append_one_by_one(owner, room, 0..80).await;
    let long = log_length(&nats, room).await;
    assert!(long > 64, "80 writes one at a time make a long log ({long} messages)");

    // Twice handed over: the first new owner loads the long log and rolls it up; the second loads the snapshot.
    let mut written = 80;
    for handover in 0..2 {
        let (owner, _) = owner_and_others(&nodes, room).await;
        let owner = nodes.iter().position(|node| node.addr() == owner.addr()).unwrap();
        assert!(nodes.remove(owner).signal("-TERM").success());
        let init = init_when_served(&nodes[0], room, "k", SETTLE).await;
        assert_eq!(init["epoch"], epoch, "handover {handover} keeps the epoch");
        assert_eq!(values(&init), (0..written).map(|n| json!(n)).collect::<Vec<_>>(), "handover {handover}");
        if handover == 0 {
            let short = log_length(&nats, room).await;
            assert!(short < 5, "the new owner rolled the log of {long} messages up into {short}");
            let (owner, _) = owner_and_others(&nodes, room).await;
            append_one_by_one(owner, room, written..written + 10).await;
            written += 10;
        }
    }
}
