//! A short run of every scenario on every transport against an in-process server, asserting correctness only:
//! everything delivered, no errors, the append replay intact. Timings belong in `docs/benchmarks.md`, not here.

use std::net::Ipv4Addr;

use driftdb::config::ServerConfig;
use driftdb::server::RunningServer;
use driftdb::storage::StorageKind;
use driftdb_load::{AppendArgs, FanoutArgs, IdleArgs, Options, Report, RoomsArgs, Scenario, Transport, run};

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
    RunningServer::start(config).await.expect("server starts")
}

fn options(server: &RunningServer, transport: Transport, scenario: Scenario) -> Options {
    Options {
        url: format!("http://{}/", server.http_addr()).parse().unwrap(),
        transport,
        duration: 0.4,
        drain: 5.0,
        server_pid: Some(std::process::id()),
        connect_concurrency: 8,
        json_only: true,
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
    run_on_every_transport(Scenario::Rooms(RoomsArgs { rooms: 3, clients: 3, hz: 20.0, reliable: false })).await;
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
