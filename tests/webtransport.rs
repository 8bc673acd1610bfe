//! WebTransport end to end: a real server in-process and a real QUIC client (`web-transport-quinn`) over loopback.

mod common;
mod wt_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use driftdb::protocol::{Action, ClientMessage, Replay, ServerMessage, Value};
use driftdb::tls::SelfSignedPolicy;
use driftdb::webtransport::framing::put_frame;
use serde_json::json;
use wt_support::{Relay, Server, WtClient, eventually, get, hashes, push, url, volatile, within};

/// The JSON text of a value, for comparisons.
fn text(value: &Value) -> String {
    value.json().get().to_owned()
}

/// `(key, seq, value, volatile)` of a push, panicking on anything else.
fn pushed(message: ServerMessage) -> (String, u64, String, bool) {
    match message {
        ServerMessage::Push { key, value, seq, volatile } => (key.to_string(), seq, text(&value), volatile),
        other => panic!("expected a push, got {other:?}"),
    }
}

fn init_data(message: ServerMessage) -> Vec<(String, u64)> {
    match message {
        ServerMessage::Init { data, .. } => data.iter().map(|e| (text(&e.value), e.seq)).collect(),
        other => panic!("expected an init, got {other:?}"),
    }
}

#[tokio::test]
async fn room_info_publishes_the_webtransport_url_and_hash() {
    let server = Server::start().await;
    let info = server.new_room().await;
    let port = server.running().webtransport_port().expect("WebTransport is on by default");
    let room = info["room"].as_str().unwrap();
    assert_eq!(url(&info).as_str(), format!("https://127.0.0.1:{port}/room/{room}/connect"));
    assert_eq!(port, server.running().http_addr().port(), "same port number as HTTP by default");
    assert_eq!(hashes(&info).len(), 1);
    assert_eq!(hashes(&info)[0].len(), 32);

    let off = Server::start_with(|config| config.no_webtransport = true).await;
    let info = off.new_room().await;
    assert!(info.get("webtransport_url").is_none() && info.get("certificate_hashes").is_none(), "{info}");
    assert_eq!(off.running().webtransport_port(), None);
}

#[tokio::test]
async fn control_stream_carries_append_replace_get_and_compact() {
    let server = Server::start().await;
    let mut client = server.connect_wt("control").await;
    client.send(&get("k", Replay::After(0))).await;
    assert_eq!(init_data(client.recv().await), vec![]);

    client.send(&push("k", Action::Append, json!({"n": 1}))).await;
    assert_eq!(pushed(client.recv().await), ("k".into(), 1, r#"{"n":1}"#.into(), false));
    client.send(&push("k", Action::Append, json!({"n": 2}))).await;
    assert_eq!(pushed(client.recv().await).1, 2);
    assert_eq!(client.recv().await, ServerMessage::StreamSize { key: "k".into(), size: 2 });
    client.send(&push("k", Action::Replace, json!("fresh"))).await;
    assert_eq!(pushed(client.recv().await), ("k".into(), 3, r#""fresh""#.into(), false));
    client.send(&push("k", Action::Append, json!("more"))).await;
    assert_eq!(pushed(client.recv().await).1, 4);
    assert_eq!(client.recv().await, ServerMessage::StreamSize { key: "k".into(), size: 2 });
    client.send(&push("k", Action::Compact { seq: 4 }, json!("reset"))).await;
    client.send(&get("k", Replay::After(0))).await;
    assert_eq!(init_data(client.recv().await), vec![(r#""reset""#.to_owned(), 4)]);
    client.send(&ClientMessage::Ping { nonce: Some(7) }).await;
    assert_eq!(client.recv().await, ServerMessage::Pong { nonce: Some(7) });

    // A malformed frame gets an error and the session stays usable.
    let mut garbage = BytesMut::new();
    put_frame(&mut garbage, &[200, 1, 2]);
    client.send_raw(&garbage).await;
    assert!(matches!(client.recv().await, ServerMessage::Error { .. }));
    client.send(&ClientMessage::Ping { nonce: None }).await;
    assert_eq!(client.recv().await, ServerMessage::Pong { nonce: None });

    let metrics = server.metrics().await;
    let open = metrics.lines().find(|l| l.contains("connections") && l.contains(r#"transport="webtransport""#));
    assert!(open.is_some_and(|line| line.ends_with(" 1")), "the session is counted: {metrics}");
}

#[tokio::test]
async fn volatile_relays_travel_as_datagrams_both_ways() {
    let server = Server::start().await;
    let mut sender = server.connect_wt("cursors").await;
    let mut receiver = server.connect_wt("cursors").await;
    for client in [&mut sender, &mut receiver] {
        client.send(&get("cursor", Replay::None)).await;
        client.send(&ClientMessage::Ping { nonce: Some(1) }).await;
        assert_eq!(client.recv().await, ServerMessage::Pong { nonce: Some(1) }, "subscribed before the relay");
    }
    sender.send_datagram(&volatile("cursor", json!({"x": 10, "y": 20})));
    let (key, seq, value, is_volatile) = pushed(receiver.recv_datagram().await);
    assert_eq!((key.as_str(), value.as_str(), is_volatile), ("cursor", r#"{"x":10,"y":20}"#, true));
    assert_eq!(pushed(sender.recv_datagram().await).1, seq, "the sender's echo comes by datagram too");

    // Anything but a volatile relay is refused by datagram, with an error on the control stream.
    sender.send_datagram(&push("cursor", Action::Append, json!(1)));
    assert!(matches!(sender.recv().await, ServerMessage::Error { .. }));
}

/// Datagram fanout makes a client acknowledge every other packet unless the server asks for less: a client that
/// implements QUIC's acknowledgement-frequency extension (quinn does, the browsers here do not) is asked for one
/// ACK per ten packets.
#[tokio::test]
async fn clients_with_the_ack_frequency_extension_are_asked_to_acknowledge_less_often() {
    let server = Server::start().await;
    let mut client = server.connect_wt("acks").await;
    client.send(&ClientMessage::Ping { nonce: Some(1) }).await;
    assert_eq!(client.recv().await, ServerMessage::Pong { nonce: Some(1) });
    let frames = quinn::Connection::stats(&client.session).frame_rx.ack_frequency;
    assert!(frames >= 1, "the server sent {frames} ACK_FREQUENCY frames");
}

#[tokio::test]
async fn a_volatile_relay_too_large_for_a_datagram_arrives_on_the_stream() {
    let server = Server::start().await;
    let mut sender = server.connect_wt("big").await;
    let mut receiver = server.connect_wt("big").await;
    receiver.send(&get("blob", Replay::None)).await;
    receiver.send(&ClientMessage::Ping { nonce: None }).await;
    assert_eq!(receiver.recv().await, ServerMessage::Pong { nonce: None });
    let big = "x".repeat(4000);
    // Too big for the client's datagrams as well: it goes on the control stream both ways.
    sender.send(&volatile("blob", json!(big))).await;
    let (_, _, value, is_volatile) = pushed(receiver.recv().await);
    assert!(is_volatile);
    assert_eq!(value.len(), big.len() + 2);
}

#[tokio::test]
async fn websocket_and_webtransport_clients_see_one_order() {
    let server = Server::start().await;
    see_one_order(&server, "mixed").await;
}

/// `--room-threads`: each room's connections run on one of the room threads, and rooms on different threads (four
/// rooms over two threads) work side by side.
#[tokio::test]
async fn websocket_and_webtransport_clients_see_one_order_on_room_threads() {
    let server = Server::start_with(|config| config.room_threads = 2).await;
    let rooms = ["mixed-a", "mixed-b", "mixed-c", "mixed-d"];
    futures_util::future::join_all(rooms.map(|room| see_one_order(&server, room))).await;
}

async fn see_one_order(server: &Server, room: &str) {
    let mut wt = server.connect_wt(room).await;
    let mut ws = server.connect_ws(room).await;
    wt.send(&get("k", Replay::None)).await;
    ws.send(json!({"type": "get", "key": "k", "seq": null})).await;
    wt.send(&ClientMessage::Ping { nonce: Some(1) }).await;
    assert_eq!(wt.recv().await, ServerMessage::Pong { nonce: Some(1) });
    ws.send(json!({"type": "ping", "nonce": 1})).await;
    assert_eq!(ws.recv().await["type"], "pong");

    // Both write at once; both must see the same sequence.
    for i in 0..20 {
        wt.send(&push("k", Action::Append, json!({"from": "wt", "i": i}))).await;
        ws.send(json!({"type": "push", "key": "k", "action": {"type": "append"}, "value": {"from": "ws", "i": i}}))
            .await;
    }
    let mut seen_wt = Vec::new();
    while seen_wt.len() < 40 {
        if let ServerMessage::Push { seq, value, .. } = wt.recv().await {
            seen_wt.push((seq, serde_json::from_str::<serde_json::Value>(&text(&value)).unwrap()));
        }
    }
    let mut seen_ws = Vec::new();
    while seen_ws.len() < 40 {
        let message = ws.recv().await;
        if message["type"] == "push" {
            seen_ws.push((message["seq"].as_u64().unwrap(), message["value"].clone()));
        }
    }
    assert_eq!(seen_wt, seen_ws);
    assert_eq!(seen_wt.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), (1..=40).collect::<Vec<_>>());
}

#[tokio::test]
async fn bad_requests_are_refused_with_their_status() {
    let server = Server::start().await;
    let info = server.room_info("fine").await;
    let hashes = hashes(&info);
    let port = server.running().webtransport_port().unwrap();
    for (path, status) in [("/room/bad.id/connect", 400), ("/nope", 404), ("/room/fine/other", 404)] {
        let url = format!("https://127.0.0.1:{port}{path}").parse().unwrap();
        let error = WtClient::connect(url, &hashes).await.err().unwrap_or_else(|| panic!("{path} was accepted"));
        assert!(error.to_string().contains(&status.to_string()), "{path}: {error}");
    }
    assert_eq!(server.connection_count("fine"), 0);
}

#[tokio::test]
async fn a_message_over_the_size_limit_closes_with_1009() {
    let server = Server::start_with(|config| config.max_message_bytes = 1000).await;
    let mut client = server.connect_wt("limits").await;
    let mut frame = BytesMut::new();
    put_frame(&mut frame, &[0u8; 1001]);
    client.send_raw(&frame).await;
    assert_eq!(client.closed_code().await, Some(1009));
}

#[tokio::test]
async fn a_session_that_vanishes_leaves_its_room_within_the_idle_timeout() {
    let server = Server::start_with(|config| config.wt_idle_timeout_ms = 1000).await;
    let info = server.room_info("vanish").await;
    let relay = Relay::start(([127, 0, 0, 1], server.running().webtransport_port().unwrap()).into()).await;
    let via_relay = format!("https://{}/room/vanish/connect", relay.addr).parse().unwrap();
    let mut client = WtClient::connect(via_relay, &hashes(&info)).await.expect("session through the relay");
    client.send(&ClientMessage::Ping { nonce: None }).await;
    client.recv().await;
    assert_eq!(server.connection_count("vanish"), 1);
    // Quiet but alive: keep-alives hold the session open past the idle timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.connection_count("vanish"), 1);

    relay.cut();
    let cut_at = Instant::now();
    eventually("the vanished session leaves the room", Duration::from_secs(5), || {
        server.connection_count("vanish") == 0
    })
    .await;
    eprintln!("vanished session removed after {:?} (idle timeout 1 s)", cut_at.elapsed());
    drop(client);
}

#[tokio::test]
async fn goodbye_ends_the_session_at_once() {
    let server = Server::start().await;
    let mut client = server.connect_wt("bye").await;
    client.send(&ClientMessage::Ping { nonce: None }).await;
    client.recv().await;
    client.send(&ClientMessage::Goodbye).await;
    eventually("goodbye detaches", Duration::from_secs(2), || server.connection_count("bye") == 0).await;
    assert_eq!(client.closed_code().await, Some(1000));
}

#[tokio::test]
async fn certificate_renewal_keeps_sessions_and_new_ones_use_the_new_hash() {
    let policy = SelfSignedPolicy {
        validity: Duration::from_secs(6),
        renew_before: Duration::from_secs(4),
        check_interval: Duration::from_millis(100),
    };
    let server = Server::start_with(|config| config.self_signed = policy).await;
    let first = hashes(&server.room_info("renew").await);
    let mut old = server.connect_wt("renew").await;
    old.send(&get("k", Replay::None)).await;

    let deadline = Instant::now() + Duration::from_secs(8);
    let renewed = loop {
        let now = hashes(&server.room_info("renew").await);
        if now[0] != first[0] {
            break now;
        }
        assert!(Instant::now() < deadline, "no renewal");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(renewed.len(), 2, "old and new hash published during the overlap");
    assert_eq!(renewed[1], first[0]);

    // A new session presents only the new hash and gets in; one pinned to the old hash does not.
    let mut new = WtClient::connect(url(&server.room_info("renew").await), &renewed[..1]).await.expect("new hash");
    assert!(WtClient::connect(url(&server.room_info("renew").await), &first).await.is_err(), "old cert still served");
    // The old session is alive and in the same room as the new one.
    new.send(&push("k", Action::Append, json!("after renewal"))).await;
    assert_eq!(pushed(old.recv().await).2, r#""after renewal""#);
}

#[tokio::test]
async fn shutdown_closes_sessions_with_1001() {
    let server = Server::start().await;
    let mut client = server.connect_wt("bye").await;
    client.send(&ClientMessage::Ping { nonce: None }).await;
    client.recv().await;
    let stopping = tokio::spawn(server.shutdown());
    assert_eq!(client.closed_code().await, Some(1001));
    within("shutdown", stopping).await.unwrap();
}

/// Measures session setup (QUIC + TLS handshake, CONNECT, control stream, first reply) and datagram round trips on
/// loopback, and prints them: `cargo test --test webtransport measure -- --nocapture`.
#[tokio::test]
async fn measure_session_setup_and_datagram_round_trip() {
    let server = Server::start().await;
    let info = server.room_info("measure").await;
    let (url, hashes) = (url(&info), hashes(&info));

    let mut setups = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let mut client = WtClient::connect(url.clone(), &hashes).await.expect("session");
        client.send(&ClientMessage::Ping { nonce: None }).await;
        client.recv().await;
        setups.push(started.elapsed());
        client.send(&ClientMessage::Goodbye).await;
    }

    let mut client = WtClient::connect(url, &hashes).await.expect("session");
    client.send(&get("cursor", Replay::None)).await;
    client.send(&ClientMessage::Ping { nonce: None }).await;
    client.recv().await;
    let mut trips = Vec::new();
    for i in 0..200 {
        let started = Instant::now();
        client.send_datagram(&volatile("cursor", json!({"x": i})));
        let echo = tokio::time::timeout(Duration::from_millis(500), client.recv_datagram()).await;
        if let Ok(ServerMessage::Push { .. }) = echo {
            trips.push(started.elapsed());
        }
    }
    assert!(trips.len() >= 190, "{} of 200 datagram echoes arrived on loopback", trips.len());
    eprintln!("WebTransport session setup on loopback: {}", summary(&mut setups));
    eprintln!("WebTransport datagram round trip on loopback: {}", summary(&mut trips));
}

fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!("n={} median={:?} p90={:?} max={:?}", samples.len(), at(0.5), at(0.9), at(1.0))
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_closed_as_a_slow_consumer() {
    let server = Server::start_with(|config| config.outbox_bytes = 64 * 1024).await;
    let mut stalled = server.connect_wt("slow").await;
    stalled.send(&get("k", Replay::None)).await;
    stalled.send(&ClientMessage::Ping { nonce: None }).await;
    stalled.recv().await;
    // From here on `stalled` reads nothing: QUIC flow control fills, then its outbox does.
    let mut writer = server.connect_ws("slow").await;
    let blob = "y".repeat(1024);
    for _ in 0..4000 {
        writer.send(json!({"type": "push", "key": "k", "action": {"type": "relay"}, "value": blob})).await;
        if server.connection_count("slow") < 2 {
            break;
        }
    }
    assert_eq!(stalled.closed_code().await, Some(4001));
}

#[tokio::test]
async fn sessions_establish_under_heavy_handshake_loss() {
    // h3-webtransport fails a session whose client SETTINGS arrive after its CONNECT; loss makes that order common.
    let server = Server::start().await;
    let info = server.room_info("lossy").await;
    let port = server.running().webtransport_port().unwrap();
    let sessions = (0..12u64).map(|seed| {
        let hashes = hashes(&info);
        async move {
            let relay = Relay::start_lossy(([127, 0, 0, 1], port).into(), 0.3, seed).await;
            let url = format!("https://{}/room/lossy/connect", relay.addr).parse().unwrap();
            let mut client = WtClient::connect(url, &hashes).await.map_err(|e| format!("seed {seed}: {e}"))?;
            client.send(&ClientMessage::Ping { nonce: Some(seed) }).await;
            match client.recv().await {
                ServerMessage::Pong { nonce } if nonce == Some(seed) => Ok(()),
                other => Err(format!("seed {seed}: {other:?}")),
            }
        }
    });
    let results = futures_util::future::join_all(sessions).await;
    let failures: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "sessions failed under 30 % loss: {failures:?}");
}

/// Opens a bare session to `room`, with an `Origin` header when given (as a browser sends one).
async fn open_session(
    server: &Server,
    room: &str,
    origin: Option<&str>,
) -> Result<web_transport_quinn::Session, web_transport_quinn::ClientError> {
    let info = server.room_info(room).await;
    let client = web_transport_quinn::ClientBuilder::new().with_server_certificate_hashes(hashes(&info)).unwrap();
    let mut request = web_transport_proto::ConnectRequest::new(url(&info));
    if let Some(origin) = origin {
        request = request.with_header(http::header::ORIGIN, http::HeaderValue::from_str(origin).unwrap());
    }
    within("WebTransport connect", client.connect(request)).await
}

#[tokio::test]
async fn allowed_origins_are_checked_before_the_session_is_accepted() {
    let server = Server::start_with(|c| c.limits.allowed_origins = vec!["https://*.example.com".into()]).await;
    assert!(open_session(&server, "o", Some("https://app.example.com")).await.is_ok());
    let Err(error) = open_session(&server, "o", Some("https://evil.example.org")).await else {
        panic!("a disallowed origin was accepted");
    };
    assert!(error.to_string().contains("403"), "{error}");
    // No Origin header (a non-browser client) is allowed unless --require-origin.
    assert!(open_session(&server, "o", None).await.is_ok());
}

#[tokio::test]
async fn limits_close_the_session_with_the_websocket_close_codes() {
    let server = Server::start_with(|c| c.limits.max_connections_per_room = 1).await;
    let mut first = server.connect_wt("full").await;
    let second = open_session(&server, "full", None).await.expect("the session is accepted, then closed");
    match within("the refused session closes", second.closed()).await {
        web_transport_quinn::SessionError::WebTransportError(web_transport_quinn::WebTransportError::Closed(
            code,
            reason,
        )) => {
            assert_eq!(code, 4003);
            assert!(reason.contains("room full"), "{reason}");
        }
        other => panic!("closed without the limit's code: {other:?}"),
    }
    // The session already in the room is unaffected.
    first.send(&ClientMessage::Ping { nonce: Some(9) }).await;
    assert_eq!(first.recv().await, ServerMessage::Pong { nonce: Some(9) });
}

#[tokio::test]
async fn client_opened_bidirectional_streams_are_bounded_to_what_the_protocol_uses() {
    let server = Server::start().await;
    let (room, mut bystander) = room_with_bystander(&server).await;
    let session = open_session(&server, &room, None).await.expect("session opens");
    // The control stream and one of slack besides the CONNECT, not quinn's 100.
    let mut bidi = Vec::new();
    for _ in 0..20 {
        match tokio::time::timeout(Duration::from_millis(300), session.open_bi()).await {
            Ok(Ok(stream)) => bidi.push(stream),
            Ok(Err(error)) => panic!("open_bi failed: {error}"),
            Err(_) => break,
        }
    }
    assert!((1..=2).contains(&bidi.len()), "{} bidirectional streams were granted", bidi.len());
    // Others are unaffected.
    bystander.send(&push("k", Action::Append, json!(1))).await;
    assert!(matches!(bystander.recv().await, ServerMessage::Push { .. }));
}

#[tokio::test]
async fn client_unidirectional_streams_are_stopped_and_their_credit_returned() {
    let server = Server::start().await;
    let (room, mut bystander) = room_with_bystander(&server).await;
    let mut client = server.connect_wt(&room).await;
    client.send(&get("k", Replay::After(0))).await;
    client.recv().await;
    // 1,000 streams of 16 KiB each: 16 MB, eight times the connection's receive window, through a limit of six
    // unidirectional streams at a time (HTTP/3's own three among them). Had the server kept any of them, the opens
    // would block on the stream limit or the writes on flow control.
    let payload = vec![7u8; 16 * 1024];
    within("1,000 unidirectional streams opened, written and stopped", async {
        for _ in 0..1000 {
            let mut stream = client.session.open_uni().await.expect("a unidirectional stream opens");
            match stream.write_all(&payload).await {
                Ok(()) | Err(web_transport_quinn::WriteError::Stopped(_)) => {}
                Err(error) => panic!("unexpected write error: {error}"),
            }
            // Stopped by the server (its bytes discarded), not merely left unread. Dropping it then resets it, as
            // RFC 9000 asks of a stopped sender, which frees its place for the next one.
            assert_eq!(stream.stopped().await.expect("the session is open"), Some(0));
        }
    })
    .await;
    // The session itself keeps working, and the room's other session is unaffected.
    client.send(&ClientMessage::Ping { nonce: Some(3) }).await;
    assert_eq!(client.recv().await, ServerMessage::Pong { nonce: Some(3) });
    bystander.send(&push("k", Action::Append, json!(1))).await;
    assert!(matches!(bystander.recv().await, ServerMessage::Push { .. }));
    assert!(matches!(client.recv().await, ServerMessage::Push { .. }));
    assert_eq!(server.connection_count(&room), 2);
}

#[tokio::test]
async fn malformed_datagrams_count_against_the_message_rate() {
    let server = Server::start_with(|c| {
        c.limits.max_messages_per_second = 10;
        c.limits.message_burst = 20;
    })
    .await;
    let (room, mut bystander) = room_with_bystander(&server).await;
    let flooder = server.connect_wt(&room).await;
    // Not even a session id: each was once answered with an `error` before the rate limit was applied.
    for _ in 0..200 {
        // Raw QUIC datagrams: web_transport_quinn would add a valid session prefix.
        let _ = quinn::Connection::send_datagram(&flooder.session, bytes::Bytes::from_static(&[0xff]));
        tokio::task::yield_now().await;
    }
    assert_eq!(flooder.closed_code().await, Some(4002));
    bystander.send(&push("k", Action::Append, json!(1))).await;
    assert!(matches!(bystander.recv().await, ServerMessage::Push { .. }));
}

#[tokio::test]
async fn a_request_stream_without_headers_is_closed_at_the_header_timeout() {
    let server = Server::start_with(|c| c.limits.http_header_timeout_ms = 500).await;
    let (room, mut bystander) = room_with_bystander(&server).await;
    let quic = raw_quic(&server).await;
    let started = Instant::now();
    let (mut send, _recv) = quic.open_bi().await.expect("a request stream opens");
    // The start of a HEADERS frame (type 1, 100 bytes announced) and then nothing: the stream exists on the wire but
    // its headers never come.
    send.write_all(&[0x01, 0x40, 0x64]).await.expect("written");
    within("the connection closes", quic.closed()).await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400), "closed after {waited:?}, before the deadline");
    assert!(waited < Duration::from_secs(3), "closed only after {waited:?}");
    // The room's session is unaffected.
    bystander.send(&ClientMessage::Ping { nonce: Some(5) }).await;
    assert_eq!(bystander.recv().await, ServerMessage::Pong { nonce: Some(5) });
    assert_eq!(server.connection_count(&room), 1);
}

#[tokio::test]
async fn an_extended_connect_for_another_protocol_is_refused_on_its_own_stream() {
    let server = Server::start().await;
    let (room, mut bystander) = room_with_bystander(&server).await;
    let port = server.running().webtransport_port().unwrap();
    let quic = raw_quic(&server).await;
    // `:protocol websocket` (RFC 9220), written by hand: h3's client cannot send it, and h3's server cannot parse it,
    // so h3 resets the request stream with H3_MESSAGE_ERROR before the server sees the request (see
    // `establish::next_session_request`). What matters is that only that stream goes.
    let (mut send, mut recv) = quic.open_bi().await.expect("a request stream opens");
    let authority = format!("localhost:{port}");
    let path = format!("/room/{room}/connect");
    let fields = [
        (":method", "CONNECT"),
        (":scheme", "https"),
        (":authority", authority.as_str()),
        (":path", path.as_str()),
        (":protocol", "websocket"),
    ];
    send.write_all(&headers_frame(&fields)).await.expect("written");
    match within("the request stream's end", recv.read_to_end(1024)).await {
        Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => assert_eq!(code.into_inner(), 0x10e),
        other => panic!("expected a reset with H3_MESSAGE_ERROR, got {other:?}"),
    }
    // A protocol h3 knows but the server does not serve (`connect-udp`), then a plain GET, on the same connection:
    // each is answered 400 on its own stream.
    let (mut driver, mut requests) =
        within("HTTP/3 client", h3::client::new(h3_quinn::Connection::new(quic.clone()))).await.expect("HTTP/3");
    let driving = tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
    let uri = format!("https://{authority}{path}");
    let mut connect_udp = http::Request::builder().method(http::Method::CONNECT).uri(&uri).body(()).unwrap();
    connect_udp.extensions_mut().insert(h3::ext::Protocol::CONNECT_UDP);
    let get_request = http::Request::builder().method(http::Method::GET).uri(&uri).body(()).unwrap();
    for request in [connect_udp, get_request] {
        let what = format!("{} {:?}", request.method(), request.extensions().get::<h3::ext::Protocol>());
        let mut stream = within("send request", requests.send_request(request)).await.expect("request sent");
        let response = within("response", stream.recv_response()).await.expect("a response");
        assert_eq!(response.status(), http::StatusCode::BAD_REQUEST, "{what}");
    }
    // The connection is still open after all three, and the room's session is unaffected.
    assert!(quic.close_reason().is_none(), "closed: {:?}", quic.close_reason());
    bystander.send(&ClientMessage::Ping { nonce: Some(6) }).await;
    assert_eq!(bystander.recv().await, ServerMessage::Pong { nonce: Some(6) });
    driving.abort();
}

/// An HTTP/3 HEADERS frame carrying `fields` as QPACK literals (no table, no Huffman), which any decoder accepts.
fn headers_frame(fields: &[(&str, &str)]) -> Vec<u8> {
    // Required insert count 0, base 0: no dynamic table.
    let mut block = vec![0x00, 0x00];
    for (name, value) in fields {
        // Literal field line with literal name: 001 N H and a 3-bit prefix of the name's length.
        qpack_integer(&mut block, 0x20, 3, name.len());
        block.extend_from_slice(name.as_bytes());
        qpack_integer(&mut block, 0x00, 7, value.len());
        block.extend_from_slice(value.as_bytes());
    }
    let mut frame = vec![0x01];
    // A two-byte QUIC varint length is enough for these.
    assert!(block.len() < 1 << 14);
    frame.extend_from_slice(&(0x4000 | block.len() as u16).to_be_bytes());
    frame.extend_from_slice(&block);
    frame
}

/// An HPACK/QPACK prefixed integer (RFC 7541 section 5.1) after the `flags` bits of its first byte.
fn qpack_integer(out: &mut Vec<u8>, flags: u8, prefix_bits: u32, value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push((rest % 0x80) as u8 | 0x80);
        rest /= 0x80;
    }
    out.push(rest as u8);
}

/// A bare QUIC connection to the server's WebTransport port with ALPN `h3`, trusting any certificate: for requests
/// no WebTransport or HTTP/3 client would send.
async fn raw_quic(server: &Server) -> quinn::Connection {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    crypto.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).expect("a QUIC client config");
    let mut endpoint = quinn::Endpoint::client((std::net::Ipv4Addr::LOCALHOST, 0).into()).expect("endpoint");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let port = server.running().webtransport_port().expect("WebTransport is on");
    let connecting = endpoint.connect((std::net::Ipv4Addr::LOCALHOST, port).into(), "localhost").expect("connect");
    within("QUIC handshake", connecting).await.expect("QUIC handshake")
}

/// Accepts whatever certificate the server shows (the raw tests are about HTTP/3, not TLS).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A new room with a session subscribed to `k`, to show that what another client does leaves it unaffected.
async fn room_with_bystander(server: &Server) -> (String, WtClient) {
    let room = server.new_room().await["room"].as_str().unwrap().to_owned();
    let mut bystander = server.connect_wt(&room).await;
    bystander.send(&get("k", Replay::After(0))).await;
    bystander.recv().await;
    (room, bystander)
}
