//! Durable rooms over real sockets: writes through WebSocket, HTTP and WebTransport survive a clean stop (in
//! process and SIGTERM to the binary) with the same epoch; after SIGKILL in the middle of a write stream a room is
//! either complete up to what any client saw or has a new epoch; a full disk refuses stored writes with the cause
//! while relays flow, and the server recovers when space returns.

mod common;
mod wt_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::process::ServerProcess;
use common::{Encoding, TestServer, WsClient, msg, seq_of, within};
use driftdb::protocol::{Action, Replay, ServerMessage};
use driftdb::storage::StorageKind;
use serde_json::{Value, json};

async fn start_on(dir: &Path) -> TestServer {
    let dir = dir.to_owned();
    TestServer::start_with(move |config| {
        config.storage = StorageKind::Embedded;
        config.data_dir = dir;
    })
    .await
}

/// A WebTransport session to `room`, through the URL and certificate hashes its room info publishes.
async fn connect_wt(server: &TestServer, room: &str) -> wt_support::WtClient {
    let info = common::json_body(server.get(&format!("/room/{room}")).await, reqwest::StatusCode::OK).await;
    wt_support::WtClient::connect(wt_support::url(&info), &wt_support::hashes(&info)).await.expect("WebTransport")
}

/// The next `init` on a WebTransport session (skipping `stream_size` replies): `(epoch, data)`.
async fn wt_init(wt: &mut wt_support::WtClient) -> (std::sync::Arc<str>, Vec<driftdb::protocol::Entry>) {
    loop {
        match wt.recv().await {
            ServerMessage::Init { epoch, data, .. } => return (epoch, data),
            ServerMessage::StreamSize { .. } => {}
            other => panic!("expected an init, got {other:?}"),
        }
    }
}

/// Connect queries of clients that opted in to the extended shapes: these tests read each `init`'s epoch.
const EXT: &str = "?ext=true";
const EXT_CBOR: &str = "?cbor=true&ext=true";

/// `(epoch, [(value, seq)])` of a key's full replay.
async fn replay(client: &mut WsClient, key: &str) -> (String, Vec<(Value, u64)>) {
    let init = client.subscribe(key).await;
    let data = init["data"].as_array().unwrap().iter().map(|e| (e["value"].clone(), seq_of(e))).collect();
    (init["epoch"].as_str().unwrap().to_owned(), data)
}

#[tokio::test]
async fn writes_over_every_transport_survive_a_clean_restart_with_the_same_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_on(dir.path()).await;
    let room = "durable";
    let mut watcher = server.connect_with(room, EXT, Encoding::Json).await;
    let (epoch, empty) = replay(&mut watcher, "log").await;
    assert!(empty.is_empty());
    let mut writer = server.connect_with(room, EXT_CBOR, Encoding::Cbor).await;
    for n in 1..=3 {
        writer.send(&msg::append("log", json!({ "ws": n }))).await;
    }
    for n in 1..=2 {
        server.send(room, &msg::append("log", json!({ "http": n }))).await;
    }
    server.send(room, &msg::replace("state", json!("first"))).await;
    server.send(room, &msg::replace("state", json!("second"))).await;
    let mut wt = connect_wt(&server, room).await;
    wt.send(&wt_support::push("log", Action::Append, json!({ "wt": 1 }))).await;
    wt.send(&wt_support::get("log", Replay::After(0))).await;
    let data = wt_init(&mut wt).await.1;
    assert_eq!(data.len(), 6, "three WebSocket, two HTTP and one WebTransport append");
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let (seq, value) = watcher.expect_push("log").await;
        seen.push((value, seq));
    }
    let last_seen = seen.last().unwrap().1;
    drop((watcher, writer, wt));
    server.shutdown().await;

    let server = start_on(dir.path()).await;
    let mut client = server.connect_with(room, EXT, Encoding::Json).await;
    assert_eq!(replay(&mut client, "log").await, (epoch.clone(), seen.clone()), "same epoch, same entries");
    let (state_epoch, state) = replay(&mut client, "state").await;
    assert_eq!((state_epoch, state.len(), &state[0].0), (epoch.clone(), 1, &json!("second")));
    // A client resuming from its last seq gets nothing twice, and new writes go on after it.
    client.send(&msg::get("log", json!(last_seen))).await;
    let resumed = client.expect("init").await;
    assert_eq!((resumed["epoch"].as_str(), resumed["data"].as_array().unwrap().len()), (Some(epoch.as_str()), 0));
    client.send(&msg::append("log", json!("after"))).await;
    let (seq, _) = client.expect_push("log").await;
    assert_eq!(seq, last_seen + 1, "seqs go on from the last one handed out");
    // WebTransport clients see the same history after the restart.
    let mut wt = connect_wt(&server, room).await;
    wt.send(&wt_support::get("log", Replay::After(0))).await;
    let (wt_epoch, data) = wt_init(&mut wt).await;
    assert_eq!((&*wt_epoch, data.len()), (epoch.as_str(), 7));
    drop(wt);
    server.shutdown().await;
}

/// The server's own runtime is multi-threaded, where a room's first load from disk leaves the async worker
/// (`block_in_place` in the storage journal); the other tests run on a current-thread runtime, where it cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_rooms_load_on_a_multi_threaded_runtime_while_other_tasks_run() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_on(dir.path()).await;
    let rooms: Vec<String> = (0..8).map(|n| format!("loaded{n}")).collect();
    for (n, room) in rooms.iter().enumerate() {
        server.send(room, &msg::append("log", json!(n))).await;
    }
    server.shutdown().await;

    let server = start_on(dir.path()).await;
    // A task that must keep ticking on the same runtime while the rooms load.
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    // Every room's first connect loads it, all at once.
    let clients = rooms.iter().map(|room| server.connect_with(room, EXT, Encoding::Json));
    let mut clients = futures_util::future::join_all(clients).await;
    for (n, client) in clients.iter_mut().enumerate() {
        let (_epoch, data) = replay(client, "log").await;
        assert_eq!(data, vec![(json!(n), 1)], "room {n} loaded from disk");
    }
    let before = ticks.load(std::sync::atomic::Ordering::Relaxed);
    within("the ticker ticks", async {
        while ticks.load(std::sync::atomic::Ordering::Relaxed) == before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    ticker.abort();
    drop(clients);
    server.shutdown().await;
}

/// The `driftdb` binary on a data directory, killed when dropped.
struct Binary(ServerProcess);

impl Binary {
    fn start(dir: &Path) -> Self {
        let dir = dir.to_str().expect("a UTF-8 temp dir");
        Binary(ServerProcess::start(&["--no-webtransport", "--max-messages-per-second", "0", "--data-dir", dir]))
    }

    async fn connect(&self, room: &str) -> WsClient {
        let path = format!("/room/{room}/connect{EXT}");
        WsClient::open(self.0.addr(), &path, Encoding::Json, None).await.expect("connects")
    }

    fn signal(&mut self, signal: &str) {
        let exit = self.0.signal(signal);
        if signal == "-TERM" {
            assert!(exit.success(), "a SIGTERM stop exits cleanly: {exit:?}");
        }
    }
}

#[tokio::test]
async fn after_sigkill_mid_stream_a_room_is_complete_up_to_what_was_seen_or_has_a_new_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Binary::start(dir.path());
    let mut calm_epochs = Vec::new();
    for room in ["calm", "quiet"] {
        let mut client = server.connect(room).await;
        calm_epochs.push(replay(&mut client, "k").await.0);
        client.send(&msg::append("k", json!("kept"))).await;
        client.expect_push("k").await;
    }
    let calm_epoch = calm_epochs[0].clone();
    server.signal("-TERM");

    let mut server = Binary::start(dir.path());
    let mut calm = server.connect("calm").await;
    assert_eq!(replay(&mut calm, "k").await, (calm_epoch.clone(), vec![(json!("kept"), 1)]), "SIGTERM keeps all");
    drop(calm);
    let mut watcher = server.connect("busy").await;
    let (busy_epoch, _) = replay(&mut watcher, "log").await;
    let mut writer = server.connect("busy").await;
    // A stream of writes, killed in the middle: the writer never waits, the watcher records what it saw.
    for n in 0..200 {
        writer.send(&msg::append("log", json!(n))).await;
    }
    let mut seen = Vec::new();
    while seen.len() < 50 {
        let (seq, value) = watcher.expect_push("log").await;
        seen.push((value, seq));
    }
    server.signal("-KILL");

    let server = Binary::start(dir.path());
    let mut client = server.connect("busy").await;
    let (epoch, stored) = replay(&mut client, "log").await;
    let values: Vec<&Value> = stored.iter().map(|(v, _)| v).collect();
    let expected: Vec<Value> = (0..stored.len()).map(|n| json!(n)).collect();
    assert_eq!(values, expected.iter().collect::<Vec<_>>(), "what is stored is a prefix of the writes, in order");
    assert!(stored.windows(2).all(|w| w[0].1 < w[1].1), "seqs ascend: {stored:?}");
    if epoch == busy_epoch {
        assert!(stored.len() >= seen.len() && stored[..seen.len()] == seen[..], "same epoch: nothing seen is lost");
    }
    // This server's rule: a room the crashed run used gets a new epoch, so its clients replay.
    assert_ne!(epoch, busy_epoch);
    let mut quiet = server.connect("quiet").await;
    assert_eq!(
        replay(&mut quiet, "k").await,
        (calm_epochs[1].clone(), vec![(json!("kept"), 1)]),
        "a room the crashed run did not use keeps its epoch"
    );
}

/// A tiny tmpfs for the data directory, unmounted when dropped.
struct TinyDisk {
    dir: tempfile::TempDir,
}

impl TinyDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs (the storage fault test needs root)");
        assert!(status.success(), "mount a tmpfs (the storage fault test needs root)");
        TinyDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk with a file until it refuses more.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 << 10];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        // Lazy: a server that failed a test may still hold its file open until its runtime ends.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_stored_writes_with_the_cause_relays_flow_and_it_recovers() {
    let disk = TinyDisk::mount("8m");
    let data = disk.path().join("data");
    let server = start_on(&data).await;
    let room = "full";
    let mut client = server.connect_with(room, EXT, Encoding::Json).await;
    replay(&mut client, "log").await;
    client.send(&msg::append("log", json!("before"))).await;
    client.expect_push("log").await;
    let filler = disk.fill();

    // The first write after the disk filled may be accepted (it is fanned out before its commit fails); the
    // next ones are refused with the cause.
    let big = "x".repeat(32 << 10);
    let mut refusal = None;
    for _ in 0..50 {
        client.send(&msg::append("log", json!(big))).await;
        let mut message = client.recv().await;
        while message["type"] == "stream_size" {
            message = client.recv().await;
        }
        if message["type"] == "error" {
            refusal = Some(message["message"].as_str().unwrap().to_owned());
            break;
        }
        assert_eq!(message["type"], "push", "{message}");
    }
    let refusal = refusal.expect("stored writes are refused once the disk is full");
    assert!(refusal.contains("No space left on device"), "the error names the cause: {refusal}");
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("driftdb_storage_healthy 0"), "{metrics}");
    // HTTP writes get 503 with the same cause; relays still flow.
    let response = server.post(&format!("/room/{room}/send"), msg::append("log", json!(1)).to_string()).await;
    assert_eq!(response.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    client.send(&msg::relay("log", json!("still here"))).await;
    assert_eq!(client.expect_push("log").await.1, json!("still here"));

    std::fs::remove_file(filler).unwrap();
    within("recovery after space returns", async {
        loop {
            let path = format!("/room/{room}/send");
            let response = server.post(&path, msg::append("log", json!("after")).to_string()).await;
            if response.status().is_success() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let metrics = server.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("driftdb_storage_healthy 1"), "{metrics}");
    drop(client);
    server.shutdown().await;

    // Nothing that was accepted was lost: restart and replay.
    let server = start_on(&data).await;
    let mut client = server.connect_with(room, EXT, Encoding::Json).await;
    let (_, stored) = replay(&mut client, "log").await;
    assert_eq!(stored.first().map(|e| &e.0), Some(&json!("before")));
    assert_eq!(stored.last().map(|e| &e.0), Some(&json!("after")));
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn expiry_removes_stored_rooms() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let start = |ttl: u64| {
        let data = data.clone();
        TestServer::start_with(move |config| {
            config.storage = StorageKind::Embedded;
            config.data_dir = data;
            config.limits.room_ttl_secs = ttl;
        })
    };
    let server = start(3600).await;
    server.send("gone", &msg::append("k", json!(1))).await;
    server.shutdown().await;
    // Restarted with a TTL the room has outlived (written over a second ago): it is removed at open.
    std::thread::sleep(Duration::from_millis(2100));
    let server = start(1).await;
    let reply = server.send("gone", &msg::get("k", json!(0))).await;
    assert_eq!(reply["data"], json!([]), "{reply}");
    server.shutdown().await;
    // In a running server, the sweep removes an idle room from the store too.
    let server = start(1).await;
    server.send("swept", &msg::append("k", json!(1))).await;
    within("sweep", async {
        while server.has_room("swept") {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    server.running().storage().unwrap().flush().unwrap();
    let reply = server.send("swept", &msg::get("k", json!(0))).await;
    assert_eq!(reply["data"], json!([]), "{reply}");
    server.shutdown().await;
}

#[tokio::test]
async fn export_and_import_move_a_room_with_its_epoch_and_exact_values() {
    let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = start_on(from.path()).await;
    server.send("moving", &msg::append("log", json!({ "n": 1 }))).await;
    server.send("moving", &msg::append("log", json!("two"))).await;
    server.send("moving", &msg::replace("state", json!([3]))).await;
    let mut cbor = server.connect("moving", Encoding::Cbor).await;
    // A byte string has no exact JSON form: the export's `cbor` field keeps it.
    let bytes = ciborium::Value::Map(vec![
        ("type".into(), "push".into()),
        ("key".into(), "blob".into()),
        ("value".into(), ciborium::Value::Bytes(vec![0, 1, 2])),
        ("action".into(), ciborium::Value::Map(vec![("type".into(), "append".into())])),
    ]);
    cbor.send_cbor(&bytes).await;
    cbor.round_trip().await;
    drop(cbor);
    let before = server.send("moving", &msg::get("log", json!(0))).await;
    server.shutdown().await;

    let driftdb = env!("CARGO_BIN_EXE_driftdb");
    let export = Command::new(driftdb).args(["export", "moving", "--data-dir"]).arg(from.path()).output().unwrap();
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let text = String::from_utf8(export.stdout).unwrap();
    assert_eq!(text.lines().count(), 5, "a header and four entries: {text}");
    assert!(text.lines().next().unwrap().contains(r#""room":"moving""#), "{text}");
    let missing = Command::new(driftdb).args(["export", "nothere", "--data-dir"]).arg(from.path()).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no room nothere"));

    let mut import = Command::new(driftdb)
        .args(["import", "--data-dir"])
        .arg(to.path())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut import.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let imported = import.wait_with_output().unwrap();
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));

    let server = start_on(to.path()).await;
    assert_eq!(server.send("moving", &msg::get("log", json!(0))).await, before, "same entries, same epoch");
    let mut cbor = server.connect("moving", Encoding::Cbor).await;
    cbor.send_cbor(&ciborium::Value::Map(vec![
        ("type".into(), "get".into()),
        ("key".into(), "blob".into()),
        ("seq".into(), 0.into()),
    ]))
    .await;
    let init = cbor.recv_cbor().await;
    let data = init.as_map().unwrap().iter().find(|(k, _)| k.as_text() == Some("data")).unwrap().1.clone();
    let value = data.as_array().unwrap()[0].as_map().unwrap().iter().find(|(k, _)| k.as_text() == Some("value"));
    assert_eq!(value.unwrap().1, ciborium::Value::Bytes(vec![0, 1, 2]), "the byte string is exact");
    drop(cbor);
    server.shutdown().await;
}

#[tokio::test]
async fn a_vanished_data_directory_refuses_stored_writes_and_relays_flow() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_on(&data).await;
    let mut client = server.connect_with("gone", EXT, Encoding::Json).await;
    replay(&mut client, "log").await;
    client.send(&msg::append("log", json!(1))).await;
    client.expect_push("log").await;
    std::fs::remove_dir_all(&data).unwrap();
    // The write that finds the file gone may still be fanned out; the next is refused with the cause.
    client.send(&msg::append("log", json!(2))).await;
    client.round_trip().await;
    let reply = within("refusal", async {
        loop {
            let response = server.post("/room/gone/send", msg::append("log", json!(3)).to_string()).await;
            if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                break response.text().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(reply.contains("rooms.redb is gone"), "{reply}");
    client.send(&msg::relay("log", json!("relayed"))).await;
    // Writes accepted before the fault was seen arrive first.
    within("the relay", async { while client.recv().await["value"] != json!("relayed") {} }).await;
    drop(client);
    server.shutdown().await;
}
