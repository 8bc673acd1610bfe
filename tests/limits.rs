//! One test per limit of the hardening table: the violation gets its own close code or error text, and the other
//! clients of the room are unaffected. Plus the origin allow-list, room expiry, metrics, a bounded flood and a
//! bounded soak.

mod common;

use std::time::{Duration, Instant};

use common::{Encoding, TestServer, WsClient, msg, within};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Two clients subscribed to `key` in a fresh room.
async fn pair(server: &TestServer, key: &str) -> (String, WsClient, WsClient) {
    let room = server.create_room().await;
    let mut a = server.connect(&room, Encoding::Json).await;
    let mut b = server.connect(&room, Encoding::Json).await;
    a.subscribe(key).await;
    b.subscribe(key).await;
    (room, a, b)
}

/// Asserts `client` still works: a push it sends comes back to it.
async fn still_serving(client: &mut WsClient, key: &str) {
    client.send(&msg::relay(key, json!("still here"))).await;
    let (_, value) = client.expect_push(key).await;
    assert_eq!(value, json!("still here"));
}

#[tokio::test]
async fn message_rate_limit_closes_with_4002_and_spares_the_room() {
    let server = TestServer::start_with(|c| {
        c.limits.max_messages_per_second = 10;
        c.limits.message_burst = 20;
    })
    .await;
    let (_, mut flooder, mut quiet) = pair(&server, "k").await;
    for n in 0..40 {
        flooder.send(&msg::relay("other", json!(n))).await;
    }
    let closed = flooder.expect_close().await;
    assert_eq!((closed.code, closed.reason.as_str()), (4002, "rate limited: too many messages per second"));
    still_serving(&mut quiet, "k").await;
}

#[tokio::test]
async fn key_limit_answers_an_error_and_keeps_the_connection() {
    let server = TestServer::start_with(|c| c.limits.max_keys_per_room = 2).await;
    let (_, mut a, mut b) = pair(&server, "k").await;
    a.send(&msg::append("second", json!(1))).await;
    a.send(&msg::append("third", json!(1))).await;
    let error = a.expect("error").await;
    assert!(error["message"].as_str().unwrap().contains("room key limit reached"), "{error}");
    still_serving(&mut a, "k").await;
    b.expect_push("k").await;
    still_serving(&mut b, "k").await;
}

#[tokio::test]
async fn storage_limit_answers_an_error_and_stores_nothing() {
    let server = TestServer::start_with(|c| c.limits.max_room_bytes = 1_000).await;
    let (room, mut a, _b) = pair(&server, "k").await;
    a.send(&msg::append("k", json!("x".repeat(600)))).await;
    a.expect_push("k").await;
    a.send(&msg::append("k", json!("y".repeat(600)))).await;
    let error = a.expect("error").await;
    assert!(error["message"].as_str().unwrap().contains("room storage limit reached"), "{error}");
    let init = server.send(&room, &msg::get("k", json!(0))).await;
    assert_eq!(init["data"].as_array().unwrap().len(), 1, "the refused append was not stored: {init}");
    // Replacing frees what it replaces, so the room can keep going.
    a.send(&msg::replace("k", json!("z".repeat(600)))).await;
    a.expect_push("k").await;
}

#[tokio::test]
async fn connections_per_room_limit_closes_with_4003() {
    let server = TestServer::start_with(|c| c.limits.max_connections_per_room = 2).await;
    let (room, mut a, mut b) = pair(&server, "k").await;
    let mut third = server.connect(&room, Encoding::Json).await;
    let closed = third.expect_close().await;
    assert_eq!(closed.code, 4003, "{closed:?}");
    still_serving(&mut a, "k").await;
    b.expect_push("k").await;
    // Another room is not affected.
    let other = server.create_room().await;
    server.connect(&other, Encoding::Json).await.assert_nothing_pending().await;
}

#[tokio::test]
async fn total_connections_limit_closes_with_4004() {
    let server = TestServer::start_with(|c| c.limits.max_connections = 2).await;
    let (_, mut a, _b) = pair(&server, "k").await;
    let other = server.create_room().await;
    let closed = server.connect(&other, Encoding::Json).await.expect_close().await;
    assert_eq!(closed.code, 4004, "{closed:?}");
    still_serving(&mut a, "k").await;
}

#[tokio::test]
async fn rooms_limit_answers_503_and_closes_with_4005() {
    let server = TestServer::start_with(|c| c.limits.max_rooms = 1).await;
    let room = server.create_room().await;
    let refused = server.post("/new", "").await;
    assert_eq!(refused.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let closed = server.connect("another-room", Encoding::Json).await.expect_close().await;
    assert_eq!(closed.code, 4005, "{closed:?}");
    // The existing room keeps working.
    server.connect(&room, Encoding::Json).await.assert_nothing_pending().await;
}

#[tokio::test]
async fn connect_rate_per_address_closes_with_4006() {
    let server = TestServer::start_with(|c| {
        c.limits.max_connects_per_ip_per_second = 1;
        c.limits.connect_burst = 3;
    })
    .await;
    let (room, mut a, _b) = pair(&server, "k").await;
    let _third = server.connect(&room, Encoding::Json).await;
    let closed = server.connect(&room, Encoding::Json).await.expect_close().await;
    assert_eq!(closed.code, 4006, "{closed:?}");
    still_serving(&mut a, "k").await;
}

#[tokio::test]
async fn idle_timeout_closes_a_silent_client_with_4007_but_not_a_live_one() {
    let server = TestServer::start_with(|c| c.limits.idle_timeout_ms = 400).await;
    let (_, mut silent, mut live) = pair(&server, "k").await;
    // `live` keeps reading but sends nothing of its own: its answers to the server's pings keep it open.
    // `silent` reads nothing, so it answers none.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(900) {
        if let Some(frame) = live.recv_frame_within(Duration::from_millis(50)).await {
            assert!(frame.is_ping(), "only pings reach a quiet client: {frame:?}");
        }
    }
    let closed = silent.expect_close().await;
    assert_eq!(closed.code, 4007, "{closed:?}");
    still_serving(&mut live, "k").await;
}

async fn connect_with_origin(server: &TestServer, room: &str, origin: &str) -> Result<(), u16> {
    let mut request = format!("ws://{}/room/{room}/connect", server.addr()).into_client_request().unwrap();
    request.headers_mut().insert("origin", HeaderValue::from_str(origin).unwrap());
    match within("connect with origin", tokio_tungstenite::connect_async(request)).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("unexpected handshake error: {other}"),
    }
}

#[tokio::test]
async fn allowed_origins_are_checked_before_the_upgrade() {
    let server = TestServer::start_with(|c| {
        c.limits.allowed_origins = vec!["https://app.example.com".into(), "https://*.example.org".into()];
    })
    .await;
    let room = server.create_room().await;
    assert_eq!(connect_with_origin(&server, &room, "https://app.example.com").await, Ok(()));
    assert_eq!(connect_with_origin(&server, &room, "https://eu.example.org").await, Ok(()));
    assert_eq!(connect_with_origin(&server, &room, "https://evil.example.com").await, Err(403));
    // No Origin header (a non-browser client) is allowed unless --require-origin.
    server.connect(&room, Encoding::Json).await.assert_nothing_pending().await;
}

#[tokio::test]
async fn require_origin_refuses_clients_without_one() {
    let server = TestServer::start_with(|c| c.limits.require_origin = true).await;
    let room = server.create_room().await;
    assert_eq!(server.connect_refused(&format!("/room/{room}/connect")).await, reqwest::StatusCode::FORBIDDEN);
    assert_eq!(connect_with_origin(&server, &room, "https://any.example").await, Ok(()));
}

#[tokio::test]
async fn idle_rooms_expire_and_free_their_memory() {
    let server = TestServer::start_with(|c| c.limits.room_ttl_secs = 1).await;
    let idle = server.create_room().await;
    server.send(&idle, &msg::append("k", json!("x".repeat(10_000)))).await;
    let busy = server.create_room().await;
    let mut client = server.connect(&busy, Encoding::Json).await;
    let deadline = Instant::now() + Duration::from_secs(4);
    while server.has_room(&idle) {
        assert!(Instant::now() < deadline, "the idle room did not expire");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.has_room(&busy), "a room with a connection never expires");
    client.assert_nothing_pending().await;
    // A shared URL keeps working after expiry: the room comes back empty, with a new epoch.
    let init = server.send(&idle, &msg::get("k", json!(0))).await;
    assert_eq!(init["data"], json!([]));
}

#[tokio::test]
async fn metrics_count_rooms_connections_messages_and_closes() {
    let server = TestServer::start_with(|c| c.max_message_bytes = 256).await;
    let (room, mut a, _b) = pair(&server, "k").await;
    still_serving(&mut a, "k").await;
    server.send(&room, &msg::append("k", json!(1))).await;
    let mut big = server.connect(&room, Encoding::Json).await;
    big.send_json(&msg::relay("k", json!("x".repeat(1_000)))).await;
    assert_eq!(big.expect_close().await.code, 1009);
    let response = server.get("/metrics").await;
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    // The closed connection's task may still be finishing: wait until it is counted out.
    let connections = r#"driftdb_connections{transport="websocket"} 2"#;
    let mut text = response.text().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !text.contains(connections) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        text = server.get("/metrics").await.text().await.unwrap();
    }
    for expected in [
        "driftdb_rooms 1",
        r#"driftdb_connections{transport="websocket"} 2"#,
        r#"driftdb_messages_received_total{transport="websocket",kind="push"} 1"#,
        r#"driftdb_messages_received_total{transport="http",kind="push"} 1"#,
        r#"driftdb_closes_total{reason="message_too_big",code="1009"} 1"#,
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}

/// A client sending as fast as it can is closed, while a quiet client of the same room keeps a low latency.
#[tokio::test]
async fn flood_is_stopped_and_a_quiet_client_keeps_its_latency() {
    let server = TestServer::start_with(|c| {
        c.limits.max_messages_per_second = 1_000;
        c.limits.message_burst = 2_000;
    })
    .await;
    let (room, mut quiet, _) = pair(&server, "k").await;
    let url = format!("ws://{}/room/{room}/connect", server.addr());
    let (mut flooder, _) = within("flooder connects", tokio_tungstenite::connect_async(url)).await.unwrap();
    let flood = tokio::spawn(async move {
        // Bounded: at most 50,000 messages; the server closes the connection long before.
        for n in 0..50_000 {
            let frame = Message::text(msg::relay("flood", json!(n)).to_string());
            if flooder.send(frame).await.is_err() {
                break;
            }
        }
        // Read to the close frame (the socket may already be closed for writing).
        while let Some(Ok(frame)) = flooder.next().await {
            if let Message::Close(Some(close)) = frame {
                return u16::from(close.code);
            }
        }
        panic!("the flooder's connection ended without a close frame");
    });
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        quiet.assert_nothing_pending().await;
        worst = worst.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let code = within("the flooder is closed", flood).await.unwrap();
    assert_eq!(code, 4002);
    // Generous: this checks that the flood does not starve the room, not a speed target.
    assert!(worst < Duration::from_secs(1), "a quiet client's round trip took {worst:?} during the flood");
}
