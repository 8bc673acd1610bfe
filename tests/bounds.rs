//! Inputs that once took more than they should or reached a panic, each tried over a real socket (or the real
//! binary): the answer is a precise error, status or close code, and the other clients are unaffected.

mod common;
mod wt_support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use ciborium::value::Value as Cbor;
use common::{Encoding, TestServer, WsClient, msg, with_cbor_value};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Asserts `client` still works: a relay it sends comes back to it.
async fn still_serving(client: &mut WsClient, key: &str) {
    client.send(&msg::relay(key, json!("still here"))).await;
    let (_, value) = client.expect_push(key).await;
    assert_eq!(value, json!("still here"));
}

/// Two clients subscribed to `key` in a fresh room.
async fn pair(server: &TestServer, key: &str, encoding: Encoding) -> (String, WsClient, WsClient) {
    let room = server.create_room().await;
    let mut a = server.connect(&room, encoding).await;
    let mut b = server.connect(&room, Encoding::Json).await;
    a.subscribe(key).await;
    b.subscribe(key).await;
    (room, a, b)
}

#[test]
fn an_unusable_option_is_refused_at_start_with_its_name() {
    for (option, expected) in [
        ("--idle-timeout-ms", "invalid --idle-timeout-ms: 0 ms is not between 1 and"),
        ("--worker-threads", "invalid --worker-threads: must be at least 1"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_driftdb"))
            .args(["serve", "--port", "0", "--no-webtransport", option, "0"])
            .output()
            .expect("the binary runs");
        assert!(!output.status.success(), "the server must not start with {option} 0");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn the_development_key_is_readable_by_its_owner_only() {
    let dir = std::env::temp_dir().join(format!("driftdb-cert-test-{}", std::process::id()));
    // An older key written world-readable is tightened when it is overwritten.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dev-key.pem"), "old").unwrap();
    std::fs::set_permissions(dir.join("dev-key.pem"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_driftdb"))
        .args(["cert", "--dir"])
        .arg(&dir)
        .output()
        .expect("the binary runs")
        .status;
    assert!(status.success());
    let mode = |name: &str| std::fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("dev-key.pem"), 0o600);
    assert_eq!(mode("dev-cert.pem"), 0o644);
    assert!(std::fs::read_to_string(dir.join("dev-key.pem")).unwrap().contains("PRIVATE KEY"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn integers_past_64_bits_get_an_error_not_a_clamped_value() {
    let server = TestServer::start().await;
    for encoding in Encoding::BOTH {
        let (_, mut a, mut b) = pair(&server, "k", encoding).await;
        // JSON numbers past 2^64 (text frames, whatever the connection's encoding).
        a.send_frame(Message::text(r#"{"type":"ping","nonce":18446744073709551616}"#)).await;
        let error = a.expect("error").await;
        assert_eq!(error["message"], "field `nonce` is too large: integers are at most 18446744073709551615");
        a.send_frame(Message::text(r#"{"type":"get","key":"k","seq":18446744073709551616}"#)).await;
        assert_eq!(
            a.expect("error").await["message"],
            "field `seq` is too large: integers are at most 18446744073709551615"
        );
        // A CBOR bignum.
        let ping = Cbor::Map(vec![
            (Cbor::Text("type".into()), Cbor::Text("ping".into())),
            (Cbor::Text("nonce".into()), Cbor::Tag(2, Box::new(Cbor::Bytes(vec![1, 0, 0, 0, 0, 0, 0, 0, 0])))),
        ]);
        a.send_cbor(&ping).await;
        assert!(a.expect("error").await["message"].as_str().unwrap().contains("too large"));
        still_serving(&mut a, "k").await;
        b.expect_push("k").await;
        still_serving(&mut b, "k").await;
    }
}

#[tokio::test]
async fn an_unknown_type_is_echoed_cut_short() {
    let server = TestServer::start().await;
    let (_, mut a, mut b) = pair(&server, "k", Encoding::Json).await;
    a.send(&json!({"type": "x".repeat(100_000)})).await;
    let error = a.expect("error").await;
    assert_eq!(error["message"], format!("unknown message type `{}…`", "x".repeat(64)));
    still_serving(&mut a, "k").await;
    b.expect_push("k").await;
}

#[tokio::test]
async fn json_and_cbor_clients_share_one_nesting_limit() {
    /// The JSON text of an append of `depth` nested arrays.
    fn deep_append(depth: usize) -> String {
        let value = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        format!(r#"{{"type":"push","key":"deep","value":{value},"action":{{"type":"append"}}}}"#)
    }
    let nested = |depth: usize| (0..depth).fold(Cbor::Integer(1.into()), |inner, _| Cbor::Array(vec![inner]));
    let server = TestServer::start().await;
    let (_, mut cbor, mut json_client) = pair(&server, "k", Encoding::Cbor).await;
    // The deepest value a JSON client can send is accepted from a CBOR client too, one level more from neither.
    json_client.send_frame(Message::text(deep_append(126))).await;
    assert!(json_client.round_trip().await.iter().all(|m| m["type"] != "error"));
    json_client.send_frame(Message::text(deep_append(127))).await;
    assert_eq!(
        json_client.expect("error").await["message"].as_str().unwrap().split(':').next(),
        Some("malformed JSON")
    );
    // What the CBOR client stores reaches the JSON client, which can send it back unchanged.
    json_client.send(&msg::get("deep", json!(null))).await;
    json_client.assert_nothing_pending().await;
    cbor.send_cbor(&with_cbor_value(&msg::append("deep", json!(null)), nested(126))).await;
    assert!(cbor.round_trip().await.iter().all(|m| m["type"] != "error"));
    let (_, stored) = json_client.expect_push("deep").await;
    let append = format!(r#"{{"type":"push","key":"deep","value":{stored},"action":{{"type":"append"}}}}"#);
    json_client.send_frame(Message::text(append)).await;
    let replies = json_client.round_trip().await;
    assert!(replies.iter().all(|m| m["type"] != "error"), "{replies:?}");
    cbor.send_cbor(&with_cbor_value(&msg::append("deep", json!(null)), nested(127))).await;
    assert_eq!(cbor.expect("error").await["message"], "invalid value: nested deeper than 126 levels");
    still_serving(&mut cbor, "k").await;
}

#[tokio::test]
async fn key_bytes_count_against_the_room_storage_limit() {
    let server = TestServer::start_with(|c| c.limits.max_room_bytes = 2_000).await;
    let (room, mut a, mut b) = pair(&server, "k", Encoding::Json).await;
    let long_key = |c: char| c.to_string().repeat(1_500);
    // A tiny value under a long key: the key's 1,500 bytes are what fills the room.
    a.send(&msg::append(&long_key('x'), json!(1))).await;
    assert!(a.round_trip().await.is_empty());
    a.send(&msg::append(&long_key('y'), json!(1))).await;
    let error = a.expect("error").await;
    assert!(error["message"].as_str().unwrap().contains("room storage limit reached"), "{error}");
    let id = driftdb::engine::RoomId::parse(&room).unwrap();
    let stored = server.rooms().get(&id).unwrap().stored_bytes();
    assert!((1_500..=2_000).contains(&stored), "the stored key is charged: {stored}");
    let refused = server.send(&room, &msg::get(&long_key('y'), json!(0))).await;
    assert_eq!(refused["data"], json!([]), "the refused key stored nothing");
    still_serving(&mut a, "k").await;
    b.expect_push("k").await;
    still_serving(&mut b, "k").await;
}

#[tokio::test]
async fn room_creation_per_address_is_rate_limited_with_429() {
    let server = TestServer::start_with(|c| {
        c.limits.max_new_rooms_per_ip_per_second = 1;
        c.limits.new_room_burst = 3;
    })
    .await;
    let (room, mut a, mut b) = pair(&server, "k", Encoding::Json).await;
    server.create_room().await;
    server.create_room().await;
    let refused = server.post("/new", "").await;
    assert_eq!(refused.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body, json!({"type": "error", "message": "too many new rooms from this address; retry in a moment"}));
    // A new id by `GET /room/{id}` counts too; an existing room is still looked up.
    assert_eq!(server.get("/room/fresh-id").await.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    assert!(!server.has_room("fresh-id"));
    assert_eq!(server.get(&format!("/room/{room}")).await.status(), reqwest::StatusCode::OK);
    still_serving(&mut a, "k").await;
    b.expect_push("k").await;
}

/// A frame the client's tungstenite would refuse to build: sent as raw frame parts.
fn raw_frame(opcode: OpCode, payload: &[u8], reserved_bit: bool) -> Message {
    let mut frame = Frame::message(payload.to_vec(), opcode, true);
    frame.header_mut().rsv1 = reserved_bit;
    Message::Frame(frame)
}

#[tokio::test]
async fn framing_violations_close_with_their_rfc_6455_codes() {
    let server = TestServer::start().await;
    let (room, mut a, mut b) = pair(&server, "k", Encoding::Json).await;
    let cases = [
        (raw_frame(OpCode::Data(Data::Text), b"{\"type\":\"ping\",\"x\":\"\xff\xfe\"}", false), 1007, "invalid UTF-8"),
        (raw_frame(OpCode::Data(Data::Binary), b"\xf6", true), 1002, "reserved bit"),
        (raw_frame(OpCode::Data(Data::Continue), b"{}", false), 1002, "continuation without a start"),
    ];
    for (frame, code, what) in cases {
        let mut offender = server.connect(&room, Encoding::Json).await;
        offender.send_frame(frame).await;
        let closed = offender.expect_close().await;
        assert_eq!(closed.code, code, "{what}: {closed:?}");
    }
    still_serving(&mut a, "k").await;
    b.expect_push("k").await;
    still_serving(&mut b, "k").await;
}

/// A raw TCP connection to the server, for clients that misbehave below HTTP.
async fn raw_tcp(server: &TestServer) -> tokio::net::TcpStream {
    common::within("TCP connect", tokio::net::TcpStream::connect(server.addr())).await.expect("TCP connect")
}

/// Writes `bytes` one at a time, `gap` apart, until done or the server answers or closes. Returns how many were
/// written and what the server sent (empty when it closed without a word).
async fn trickle(tcp: &mut tokio::net::TcpStream, bytes: &[u8], gap: Duration) -> (usize, Vec<u8>) {
    for (written, byte) in bytes.iter().enumerate() {
        if tcp.write_all(&[*byte]).await.is_err() {
            return (written, Vec::new());
        }
        tokio::time::sleep(gap).await;
        // A reply or a close shows as readable long before writes start to fail.
        let mut reply = vec![0u8; 1024];
        if let Ok(read) = tokio::time::timeout(Duration::from_millis(1), tcp.read(&mut reply)).await {
            reply.truncate(read.unwrap_or(0));
            return (written + 1, reply);
        }
    }
    (bytes.len(), Vec::new())
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off_at_the_header_deadline() {
    let server = TestServer::start_with(|c| c.limits.http_header_timeout_ms = 300).await;
    let (_, mut a, _b) = pair(&server, "k", Encoding::Json).await;
    let mut tcp = raw_tcp(&server).await;
    // One byte per 50 ms: 60 header bytes would take 3 s, ten times the deadline.
    let headers = format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: {}\r\n\r\n", "y".repeat(20));
    let started = Instant::now();
    let (written, _) = trickle(&mut tcp, headers.as_bytes(), Duration::from_millis(50)).await;
    assert!(written < headers.len(), "the server waited for all {} header bytes", headers.len());
    assert!(started.elapsed() < Duration::from_millis(2_500), "cut off after {:?}", started.elapsed());
    still_serving(&mut a, "k").await;
    assert_eq!(server.get("/healthz").await.status(), reqwest::StatusCode::OK);
}

#[tokio::test]
async fn a_client_trickling_its_body_gets_408_at_the_body_deadline() {
    let server = TestServer::start_with(|c| c.limits.http_body_timeout_ms = 300).await;
    let room = server.create_room().await;
    let mut tcp = raw_tcp(&server).await;
    let body = msg::ping(1).to_string();
    let head = format!("POST /room/{room}/send HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n", body.len());
    tcp.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (written, reply) = trickle(&mut tcp, body.as_bytes(), Duration::from_millis(100)).await;
    assert!(written < body.len(), "the server waited for the whole trickled body");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("the request body did not arrive in time"), "{reply}");
    assert!(started.elapsed() < Duration::from_millis(2_000), "answered after {:?}", started.elapsed());
    // A prompt client is served as before.
    assert_eq!(server.send(&room, &msg::ping(2)).await, json!({"type": "pong", "nonce": 2}));
}

#[tokio::test]
async fn http_connections_over_the_cap_get_503_and_upgraded_websockets_do_not_count() {
    let server = TestServer::start_with(|c| c.limits.max_http_connections = 2).await;
    let room = server.create_room().await;
    // Two WebSockets: they count while they upgrade, not after.
    let mut a = server.connect(&room, Encoding::Json).await;
    let mut b = server.connect(&room, Encoding::Json).await;
    a.subscribe("k").await;
    b.subscribe("k").await;
    // Two idle HTTP connections fill the cap...
    let _idle = [raw_tcp(&server).await, raw_tcp(&server).await];
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...so the next is told why and closed.
    let mut third = raw_tcp(&server).await;
    let mut reply = Vec::new();
    common::within("the 503", third.read_to_end(&mut reply)).await.ok();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(reply.contains("too many open HTTP connections"), "{reply}");
    still_serving(&mut a, "k").await;
    b.expect_push("k").await;
    drop(_idle);
    // Once they are gone, HTTP is served again.
    common::within("a free HTTP slot", async {
        loop {
            let mut tcp = raw_tcp(&server).await;
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
            let mut reply = Vec::new();
            let _ = tcp.read_to_end(&mut reply).await;
            if reply.starts_with(b"HTTP/1.1 200") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_reader_that_never_reads_its_reply_is_dropped_at_the_stall_deadline() {
    const VALUE_BYTES: usize = 3 << 20;
    let server = TestServer::start_with(|c| {
        c.max_message_bytes = 4 << 20;
        c.limits.write_stall_timeout_ms = 300;
    })
    .await;
    let room = server.create_room().await;
    server.send(&room, &msg::append("big", json!("x".repeat(VALUE_BYTES)))).await;
    // A tiny receive buffer: the reply backs up in the server after a few kilobytes.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(server.addr()).await.unwrap();
    let body = msg::get("big", json!(0)).to_string();
    let request = format!("POST /room/{room}/send HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}", body.len());
    tcp.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // Reading now gets what was in flight, then the end: the rest of the reply was dropped with the connection.
    let mut received = 0;
    let mut buf = vec![0u8; 64 * 1024];
    common::within("the dropped connection's end", async {
        while let Ok(n @ 1..) = tcp.read(&mut buf).await {
            received += n;
        }
    })
    .await;
    assert!(received < VALUE_BYTES, "the whole reply ({received} bytes) waited for the reader");
    assert_eq!(server.send(&room, &msg::ping(1)).await, json!({"type": "pong", "nonce": 1}));
}

#[tokio::test]
async fn a_message_far_over_the_limit_still_gets_its_1009() {
    let server = TestServer::start().await;
    let (room, mut a, mut b) = pair(&server, "k", Encoding::Json).await;
    for frame in [Message::binary(vec![0xf6; 4 << 20]), Message::text("x".repeat(4 << 20))] {
        let mut offender = server.connect(&room, Encoding::Json).await;
        // The server refuses it at the frame header, with 4 MiB still on the way: it must read them away before
        // closing, or the reset would destroy its close frame (the client then saw 1006).
        offender.send_frame(frame).await;
        let closed = offender.expect_close().await;
        assert_eq!((closed.code, closed.reason.as_str()), (1009, "message too big"));
    }
    still_serving(&mut a, "k").await;
    b.expect_push("k").await;
}

#[tokio::test]
async fn a_refused_client_that_is_already_sending_still_reads_its_close_code() {
    let server = TestServer::start_with(|c| c.limits.max_connections_per_room = 2).await;
    let (room, mut a, mut b) = pair(&server, "k", Encoding::Json).await;
    for _ in 0..5 {
        let mut refused = server.connect(&room, Encoding::Json).await;
        // What a client does right after connecting, before it could see the close: its subscriptions.
        for n in 0..50 {
            refused.send(&msg::append(&format!("key-{n}"), json!("v".repeat(10_000)))).await;
        }
        assert_eq!(refused.expect_close().await.code, 4003);
    }
    still_serving(&mut a, "k").await;
    b.expect_push("k").await;
}

#[tokio::test]
async fn readers_that_never_read_hold_no_more_than_the_write_budget() {
    // Three entries of 3 MiB: one replay is far more than the kernel's socket buffers take, so a reader that never
    // reads keeps most of it in the server, and it takes most of a 10 MiB budget.
    const ENTRY_BYTES: usize = 3 << 20;
    let server = TestServer::start_with(|c| {
        c.max_message_bytes = 4 << 20;
        c.write_budget_bytes = 10 << 20;
    })
    .await;
    let room = server.create_room().await;
    for _ in 0..3 {
        server.send(&room, &msg::append("big", json!("x".repeat(ENTRY_BYTES)))).await;
    }
    let mut stalled = server.connect_small_buffer(&room, Encoding::Json).await;
    stalled.send(&msg::get("big", json!(0))).await;
    let mut bystander = server.connect(&room, Encoding::Json).await;
    bystander.subscribe("small").await;
    still_serving(&mut bystander, "small").await;

    let mut waiting = server.connect(&room, Encoding::Json).await;
    waiting.send(&msg::get("big", json!(0))).await;
    assert_eq!(waiting.recv_timeout(Duration::from_secs(1)).await, None, "the second big replay waits for the budget");
    still_serving(&mut bystander, "small").await;

    drop(stalled);
    let init = waiting.expect("init").await;
    assert_eq!(init["data"].as_array().map(Vec::len), Some(3), "it comes once the stalled reader is gone");
    waiting.subscribe("small").await;
    still_serving(&mut waiting, "small").await;
}

/// A metric's value in a `/metrics` text.
fn metric_value(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.split_whitespace().next() == Some(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn datagrams_the_kernel_drops_at_a_full_socket_are_counted_and_sessions_go_on() {
    // The smallest buffer the kernel allows, so that a burst overflows it.
    let server = wt_support::Server::start_with(|config| config.udp_receive_buffer_bytes = 1).await;
    let port = server.running().webtransport_port().expect("WebTransport is on");
    let before = server.metrics().await;
    assert!(metric_value(&before, "driftdb_udp_receive_buffer_bytes").is_some_and(|bytes| bytes > 0), "{before}");
    assert_eq!(metric_value(&before, "driftdb_udp_receive_drops_total"), Some(0), "{before}");

    let flood = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..20_000 {
        let _ = flood.send_to(&[0u8; 1200], ("127.0.0.1", port));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = server.metrics().await;
        if metric_value(&text, "driftdb_udp_receive_drops_total").is_some_and(|drops| drops > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "no drops counted after the flood: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The flood cost nothing but the dropped datagrams: a session still works.
    let room = server.new_room().await;
    let mut session = server.connect_wt(room["room"].as_str().unwrap()).await;
    session.send(&wt_support::get("k", driftdb::protocol::Replay::After(0))).await;
    assert!(matches!(session.recv().await, driftdb::protocol::ServerMessage::Init { .. }));
}
