//! A short run of every scenario on every transport against an in-process server, asserting correctness only:
//! everything delivered, no errors, the append replay intact. Timings belong in `docs/benchmarks.md`, not here.

use std::net::{Ipv4Addr, SocketAddr};

use driftdb::config::ServerConfig;
use driftdb::server::RunningServer;
use driftdb::storage::StorageKind;
use driftdb_load::{
    AppendArgs, FanoutArgs, Floor, IdleArgs, Options, Report, RoomsArgs, ScaleArgs, Scenario, Transport, report, run,
    side_by_side,
};

const TRANSPORTS: [Transport; 3] = [Transport::WsJson, Transport::WsCbor, Transport::Wt];

async fn start_server() -> RunningServer {
    start_server_with(driftdb::storage::StorageKind::Memory, None).await
}

async fn start_server_with(storage: StorageKind, data_dir: Option<&std::path::Path>) -> RunningServer {
    let mut config = ServerConfig { host: Ipv4Addr::LOCALHOST.into(), port: 0, storage, ..Default::default() };
    if let Some(dir) = data_dir {
        config.data_dir = dir.to_owned();
    }
    // Limits off, as in a load run: they are tested elsewhere and must not interfere here.
    config.limits.max_connects_per_ip_per_second = 0;
    config.limits.max_messages_per_second = 0;
    config.limits.max_new_rooms_per_ip_per_second = 0;
    RunningServer::start(config).await.expect("server starts")
}

fn options(server: &RunningServer, transport: Transport, scenario: Scenario) -> Options {
    options_for(server.http_addr(), transport, scenario)
}

fn options_for(addr: SocketAddr, transport: Transport, scenario: Scenario) -> Options {
    Options {
        url: format!("http://{addr}/").parse().unwrap(),
        transport,
        duration: 0.4,
        drain: 5.0,
        server_pid: Some(std::process::id()),
        connect_concurrency: 8,
        json_only: true,
        servers: Vec::new(),
        through: None,
        to_owner: false,
        wt_sessions_per_endpoint: 1,
        scenario,
    }
}

/// Runs `scenario` on each transport, one after the other, against one server.
async fn run_on_every_transport(scenario: Scenario) {
    let server = start_server().await;
    for transport in TRANSPORTS {
        let report: Report = run(&options(&server, transport, scenario.clone())).await.expect("the run completes");
        eprintln!("{}", report.markdown_row());
        assert!(report.sent > 0, "{transport:?}: nothing sent: {}", report.json());
        assert_eq!(report.errors, 0, "{transport:?}: {:?}", report.error_samples);
        assert_eq!(report.delivered, report.expected, "{transport:?}: {}", report.json());
        assert!(report.ok(), "{transport:?}: {}", report.json());
        let server_usage = report.server.as_ref().expect("server usage is read from /proc");
        assert!(server_usage.rss_end_kb > 0);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_everything() {
    run_on_every_transport(Scenario::Fanout(FanoutArgs { subscribers: 10, rate: 200.0, volatile: false })).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_of_volatile_relays_delivers_everything() {
    run_on_every_transport(Scenario::Fanout(FanoutArgs { subscribers: 5, rate: 100.0, volatile: true })).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_deliver_everything() {
    run_on_every_transport(Scenario::Rooms(RoomsArgs {
        rooms: 3,
        clients: 3,
        hz: 20.0,
        reliable: false,
        same_tick: false,
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_writes_on_the_embedded_store_keep_their_replay_checks() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_with(StorageKind::Embedded, Some(dir.path())).await;
    for replace in [false, true] {
        let scenario = Scenario::Append(AppendArgs { writers: 2, rate: 200.0, replace });
        let report = run(&options(&server, Transport::WsJson, scenario)).await.expect("the run completes");
        let replay = report.replay.as_ref().expect("append checks the replay");
        assert!(replay.ok && report.ok(), "replace {replace}: {:?} {}", report.error_samples, report.json());
        assert_eq!(replay.entries, if replace { 1 } else { report.sent });
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_are_stored_once_in_order() {
    let scenario = Scenario::Append(AppendArgs { writers: 3, rate: 300.0, replace: false });
    let server = start_server().await;
    for transport in TRANSPORTS {
        let report = run(&options(&server, transport, scenario.clone())).await.expect("the run completes");
        let replay = report.replay.as_ref().expect("append checks the replay");
        assert!(replay.ok, "{transport:?}: {:?}", report.error_samples);
        assert_eq!(replay.entries, report.sent);
        assert!(report.ok(), "{transport:?}: {}", report.json());
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_stay_live() {
    run_on_every_transport(Scenario::Idle(IdleArgs { connections: 40, per_room: 15 })).await;
}

#[tokio::test]
async fn only_loopback_targets_are_allowed() {
    let server = start_server().await;
    let mut remote = options(&server, Transport::WsJson, Scenario::Idle(IdleArgs { connections: 1, per_room: 1 }));
    remote.url = "http://192.0.2.1:8080/".parse().unwrap();
    let error = run(&remote).await.expect_err("a non-loopback target is refused");
    assert!(error.to_string().contains("loopback"), "{error}");
    server.shutdown().await;
}

/// Piped (not a terminal), the binary prints the report alone: no progress bar, no terminal control codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_draws_no_progress_when_not_on_a_terminal() {
    let server = start_server().await;
    let url = format!("http://{}/", server.http_addr());
    let args = ["--url", &url, "--duration", "1", "--json-only", "fanout", "--subscribers", "3", "--rate", "50"];
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_driftdb-load")).args(args).output().await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("stdout is the JSON report alone");
    assert_eq!(report["scenario"], "fanout");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains('\r') && !stderr.contains('\u{1b}'), "progress drawn on a pipe: {stderr:?}");
    assert!(!stderr.contains("fanout on ws-json"), "the bar's label on a pipe: {stderr:?}");
    server.shutdown().await;
}

/// The floor server relays what the scenarios send, over WebSocket and over plain UDP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_delivers_everything() {
    let floor = Floor::start(Ipv4Addr::LOCALHOST.into(), 0).await.expect("the floor starts");
    let scenarios = [
        Scenario::Fanout(FanoutArgs { subscribers: 10, rate: 200.0, volatile: false }),
        Scenario::Rooms(RoomsArgs { rooms: 3, clients: 3, hz: 20.0, reliable: false, same_tick: true }),
        Scenario::Scale(ScaleArgs { connections: 60, rooms: 6, senders_percent: 20.0, hz: 10.0, ..scale_args() }),
    ];
    for transport in [Transport::WsJson, Transport::Udp] {
        for scenario in &scenarios {
            let mut options = options_for(floor.http_addr(), transport, scenario.clone());
            options.drain = 3.0;
            let report = run(&options).await.expect("the run completes");
            eprintln!("{}", report.markdown_row());
            assert!(report.sent > 0, "{transport:?}: nothing sent: {}", report.json());
            assert_eq!(report.errors, 0, "{transport:?}: {:?}", report.error_samples);
            if transport == Transport::Udp {
                // Plain UDP: a receiver starved of CPU on a loaded machine may overflow its socket buffer, which is
                // the network's right, not the floor's fault; most must still arrive, and nothing more than sent.
                assert!(report.delivered * 100 >= report.expected * 95, "{}", report.json());
                assert!(report.delivered <= report.expected, "{}", report.json());
            } else {
                assert_eq!(report.delivered, report.expected, "{transport:?}: {}", report.json());
            }
        }
    }
}

/// `scale`'s arguments with nothing mixed in.
fn scale_args() -> ScaleArgs {
    ScaleArgs { connections: 0, wt_connections: 0, rooms: 1, senders_percent: 10.0, hz: 10.0, reliable_percent: 0.0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_delivers_everything() {
    run_on_every_transport(Scenario::Scale(ScaleArgs { connections: 120, rooms: 12, ..scale_args() })).await;
}

/// WebSockets and WebTransport sessions (sharing endpoints in pairs) in the same rooms, some relays reliable: every
/// delivery arrives, and each transport's share and the reliable part add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_scale_delivers_everything_to_both_transports() {
    let server = start_server().await;
    let args =
        ScaleArgs { connections: 40, wt_connections: 10, rooms: 5, hz: 20.0, reliable_percent: 25.0, ..scale_args() };
    for transport in [Transport::WsJson, Transport::WsCbor] {
        let mut options = options(&server, transport, Scenario::Scale(args.clone()));
        options.wt_sessions_per_endpoint = 2;
        let report = run(&options).await.expect("the run completes");
        eprintln!("{}", report.markdown_row());
        assert!(report.ok(), "{transport:?}: {}", report.json());
        assert_eq!(report.connections, 50);
        assert_eq!(report.transport, format!("{}+wt", transport.name()));
        let shares = &report.by_transport;
        assert_eq!(shares.iter().map(|s| s.connections).collect::<Vec<_>>(), [40, 10], "{}", report.json());
        assert_eq!(shares.iter().map(|s| s.all.expected).sum::<u64>(), report.expected);
        assert!(shares.iter().all(|s| s.all.delivered == s.all.expected && s.all.expected > 0), "{}", report.json());
        let reliable = report.reliable.as_ref().expect("some relays were reliable");
        assert!(reliable.expected > 0 && reliable.delivered == reliable.expected, "{}", report.json());
    }
    let wt_only = Scenario::Scale(ScaleArgs { connections: 10, wt_connections: 10, rooms: 2, ..scale_args() });
    assert!(run(&options(&server, Transport::Wt, wt_only)).await.is_err(), "wt beside wt is refused");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_on_one_tick_deliver_everything() {
    run_on_every_transport(Scenario::Rooms(RoomsArgs {
        rooms: 2,
        clients: 4,
        hz: 20.0,
        reliable: false,
        same_tick: true,
    }))
    .await;
}

/// Side by side: each server is started from its command on a free port, measured, stopped, and compared with the
/// floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_by_side_runs_each_server_and_compares_with_the_floor() {
    let floor_cmd = format!("{} floor-server --port {{port}}", env!("CARGO_BIN_EXE_driftdb-load"));
    let mut options = options_for(
        "127.0.0.1:1".parse().unwrap(),
        Transport::WsJson,
        Scenario::Fanout(FanoutArgs { subscribers: 5, rate: 100.0, volatile: false }),
    );
    options.server_pid = None;
    options.servers = vec![format!("floor={floor_cmd}"), format!("again={floor_cmd}")];
    let reports = side_by_side::run_all(&options).await.expect("the sitting completes");
    assert_eq!(reports.len(), 2);
    for report in &reports {
        assert!(report.ok(), "{}", report.json());
        assert!(report.server.is_some(), "the started server's pid is measured");
    }
    assert_eq!(reports[0].server_name.as_deref(), Some("floor"));
    assert_eq!(reports[0].floor_multiple, Some(1.0));
    assert!(reports[1].floor_multiple.is_some_and(|m| m > 0.0));
    let table = report::side_by_side_table(&reports);
    assert_eq!(table.lines().count(), 4, "{table}");
}

/// A `nats-server -js` on a free loopback port (Debian package `nats-server`), killed when dropped; its store
/// directory lives as long as it does.
struct Nats(std::process::Child, u16, #[allow(dead_code)] tempfile::TempDir);

impl Nats {
    fn start() -> Self {
        let store = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server runs (apt-get install nats-server)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Nats(child, port, store)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_through_a_node_that_forwards_to_the_owner_delivers_everything() {
    let nats = Nats::start();
    let mut nodes = Vec::new();
    for id in ["a", "b"] {
        let mut config = ServerConfig { host: Ipv4Addr::LOCALHOST.into(), port: 0, ..Default::default() };
        config.storage = StorageKind::Memory;
        config.cluster.nats_url = Some(format!("nats://127.0.0.1:{}", nats.1));
        config.cluster.node_id = Some(id.into());
        config.limits.max_connects_per_ip_per_second = 0;
        config.limits.max_messages_per_second = 0;
        config.limits.max_new_rooms_per_ip_per_second = 0;
        nodes.push(RunningServer::start(config).await.expect("node starts"));
    }
    // Placement needs each node to see the other.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for node in &nodes {
        let url = format!("http://{}/metrics", node.http_addr());
        while !reqwest::get(&url).await.unwrap().text().await.unwrap().contains("driftdb_cluster_nodes 2") {
            assert!(std::time::Instant::now() < deadline, "the nodes did not see each other");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    let scenario = Scenario::Fanout(FanoutArgs { subscribers: 10, rate: 200.0, volatile: false });
    let through = format!("http://{}/", nodes[1].http_addr()).parse().unwrap();
    let forwarded = Options { through: Some(through), ..options(&nodes[0], Transport::WsJson, scenario.clone()) };
    let direct = Options { to_owner: true, ..options(&nodes[1], Transport::WsJson, scenario) };
    let forwarded_sent = || async {
        let mut sent = 0;
        for node in &nodes {
            let text =
                reqwest::get(format!("http://{}/metrics", node.http_addr())).await.unwrap().text().await.unwrap();
            let line = text.lines().find(|l| l.starts_with("driftdb_messages_sent_total{transport=\"forwarded\"}"));
            sent += line.and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()).unwrap_or(0);
        }
        sent
    };
    for (options, forwarding) in [(forwarded, true), (direct, false)] {
        let before = forwarded_sent().await;
        let report: Report = run(&options).await.expect("the run completes");
        eprintln!("{}", report.markdown_row());
        assert!(report.ok(), "{}", report.json());
        let forwarded_now = forwarded_sent().await - before;
        assert_eq!(forwarded_now > 0, forwarding, "{forwarded_now} messages went through forwarding");
    }
    for node in nodes {
        node.shutdown().await;
    }
}
