//! WebSocket behaviour over real sockets: ordering across encodings, value fidelity, HTTP send fan-out, error
//! handling, protocol Ping frames, limits (1009, slow consumer 4001), subscriptions, debug connections and shutdown.

mod common;

use ciborium::value::Value as Cbor;
use common::{Encoding, TestServer, WsClient, cbor_field, cbor_to_json, json_body, msg, seq_of, with_cbor_value};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Sends `count` relays of `key` whose values are `"{tag}-{i}"`.
async fn publish_relays(client: &mut WsClient, key: &str, tag: &str, count: usize) {
    for i in 0..count {
        client.send(&msg::relay(key, json!(format!("{tag}-{i}")))).await;
    }
}

/// Receives `count` pushes of `key` and returns them as `(seq, value)`.
async fn receive_pushes(client: &mut WsClient, key: &str, count: usize) -> Vec<(u64, Value)> {
    let mut pushes = Vec::with_capacity(count);
    for _ in 0..count {
        pushes.push(client.expect_push(key).await);
    }
    pushes
}

fn assert_strictly_increasing(seqs: impl IntoIterator<Item = u64>) {
    let seqs: Vec<u64> = seqs.into_iter().collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs not strictly increasing: {seqs:?}");
}

#[tokio::test]
async fn json_and_cbor_clients_see_one_order() {
    const PER_PUBLISHER: usize = 200;
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut json_reader = server.connect(&room, Encoding::Json).await;
    let mut cbor_reader = server.connect(&room, Encoding::Cbor).await;
    json_reader.subscribe("k").await;
    cbor_reader.subscribe("k").await;

    // Two publishers of different encodings race, so the room alone decides the order.
    let mut json_writer = server.connect(&room, Encoding::Json).await;
    let mut cbor_writer = server.connect(&room, Encoding::Cbor).await;
    tokio::join!(
        publish_relays(&mut json_writer, "k", "json", PER_PUBLISHER),
        publish_relays(&mut cbor_writer, "k", "cbor", PER_PUBLISHER),
    );

    let seen_by_json = receive_pushes(&mut json_reader, "k", 2 * PER_PUBLISHER).await;
    let seen_by_cbor = receive_pushes(&mut cbor_reader, "k", 2 * PER_PUBLISHER).await;
    assert_eq!(seen_by_json, seen_by_cbor, "both encodings must see the same seqs and values in the same order");
    assert_strictly_increasing(seen_by_json.iter().map(|(seq, _)| *seq));
    // Each publisher's own messages keep its sending order.
    for tag in ["json", "cbor"] {
        let own: Vec<&Value> =
            seen_by_json.iter().map(|(_, v)| v).filter(|v| v.as_str().unwrap().starts_with(tag)).collect();
        let sent: Vec<Value> = (0..PER_PUBLISHER).map(|i| json!(format!("{tag}-{i}"))).collect();
        assert_eq!(own, sent.iter().collect::<Vec<_>>(), "order of the {tag} publisher's messages");
    }
    json_reader.assert_nothing_pending().await;
    cbor_reader.assert_nothing_pending().await;
}

/// A value as some publisher sends it, and what each kind of subscriber must get back.
struct Fidelity {
    what: &'static str,
    sent: Sent,
    json_gets: Value,
    cbor_gets: Cbor,
}

enum Sent {
    /// The value's literal JSON text, sent in a text frame (so that no test-side encoder can round it).
    JsonText(&'static str),
    /// A CBOR value, sent in a binary frame.
    Cbor(Cbor),
}

fn fidelity_cases() -> Vec<Fidelity> {
    let bytes = || Cbor::Bytes(vec![0, 1, 127, 128, 255]);
    let bytes_json = json!([0, 1, 127, 128, 255]);
    let tagged = |inner: Cbor| Cbor::Tag(64, Box::new(inner));
    let float = Cbor::Float;
    vec![
        Fidelity {
            what: "plain byte string",
            sent: Sent::Cbor(bytes()),
            json_gets: bytes_json.clone(),
            cbor_gets: bytes(),
        },
        Fidelity {
            what: "byte string in tag 64 (driftdb 1.0.12 Uint8Array)",
            sent: Sent::Cbor(tagged(bytes())),
            json_gets: bytes_json.clone(),
            cbor_gets: bytes(),
        },
        Fidelity {
            what: "tag-64 byte string nested in a map",
            sent: Sent::Cbor(Cbor::Map(vec![(Cbor::Text("b".into()), tagged(bytes()))])),
            json_gets: json!({"b": bytes_json}),
            cbor_gets: Cbor::Map(vec![(Cbor::Text("b".into()), bytes())]),
        },
        Fidelity {
            what: "2^53 + 1 from CBOR",
            sent: Sent::Cbor(Cbor::Integer(9_007_199_254_740_993u64.into())),
            json_gets: json!(9_007_199_254_740_993u64),
            cbor_gets: Cbor::Integer(9_007_199_254_740_993u64.into()),
        },
        Fidelity {
            what: "u64::MAX from CBOR",
            sent: Sent::Cbor(Cbor::Integer(u64::MAX.into())),
            json_gets: json!(u64::MAX),
            cbor_gets: Cbor::Integer(u64::MAX.into()),
        },
        Fidelity { what: "0.1 from CBOR", sent: Sent::Cbor(float(0.1)), json_gets: json!(0.1), cbor_gets: float(0.1) },
        Fidelity {
            what: "2^53 + 1 from JSON",
            sent: Sent::JsonText("9007199254740993"),
            json_gets: json!(9_007_199_254_740_993u64),
            cbor_gets: Cbor::Integer(9_007_199_254_740_993u64.into()),
        },
        Fidelity {
            what: "u64::MAX from JSON",
            sent: Sent::JsonText("18446744073709551615"),
            json_gets: json!(u64::MAX),
            cbor_gets: Cbor::Integer(u64::MAX.into()),
        },
        Fidelity {
            what: "i64::MIN from JSON",
            sent: Sent::JsonText("-9223372036854775808"),
            json_gets: json!(i64::MIN),
            cbor_gets: Cbor::Integer(i64::MIN.into()),
        },
        Fidelity { what: "0.1 from JSON", sent: Sent::JsonText("0.1"), json_gets: json!(0.1), cbor_gets: float(0.1) },
        Fidelity {
            what: "1e300 from JSON",
            sent: Sent::JsonText("1e300"),
            json_gets: json!(1e300),
            cbor_gets: float(1e300),
        },
    ]
}

#[tokio::test]
async fn values_arrive_unmangled_in_both_encodings() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut json_reader = server.connect(&room, Encoding::Json).await;
    let mut cbor_reader = server.connect(&room, Encoding::Cbor).await;
    json_reader.subscribe("v").await;
    cbor_reader.subscribe("v").await;
    let mut writer = server.connect(&room, Encoding::Cbor).await;

    for case in fidelity_cases() {
        match &case.sent {
            Sent::JsonText(text) => {
                let message = format!(r#"{{"type":"push","key":"v","action":{{"type":"relay"}},"value":{text}}}"#);
                writer.send_frame(Message::text(message)).await;
            }
            Sent::Cbor(value) => writer.send_cbor(&with_cbor_value(&msg::relay("v", Value::Null), value.clone())).await,
        }
        let (_, at_json) = json_reader.expect_push("v").await;
        assert_eq!(at_json, case.json_gets, "{} at a JSON client", case.what);
        let at_cbor = cbor_reader.recv_cbor().await;
        assert_eq!(cbor_field(&at_cbor, "type"), &Cbor::Text("push".into()), "{}: {at_cbor:?}", case.what);
        assert_eq!(cbor_field(&at_cbor, "value"), &case.cbor_gets, "{} at a CBOR client", case.what);
    }
}

#[tokio::test]
async fn http_send_reaches_websocket_subscribers_and_replies_directly() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut json_reader = server.connect_with(&room, "?ext=true", Encoding::Json).await;
    let mut cbor_reader = server.connect_with(&room, "?cbor=true&ext=true", Encoding::Cbor).await;
    for reader in [&mut json_reader, &mut cbor_reader] {
        let init = reader.subscribe("k").await;
        assert_eq!(init["epoch"], server.epoch(&room), "an opted-in WebSocket init carries the room's epoch: {init}");
    }

    // The first entry of a stream: no stream_size (only sizes above 1 are reported).
    assert_eq!(server.send(&room, &msg::append("k", json!({"n": 1}))).await, Value::Null);
    assert_eq!(
        server.send(&room, &msg::append("k", json!({"n": 2}))).await,
        json!({"type": "stream_size", "key": "k", "size": 2})
    );
    // A relay stores nothing but still reports the key's stream size to its sender.
    assert_eq!(
        server.send(&room, &msg::relay("k", json!("r"))).await,
        json!({"type": "stream_size", "key": "k", "size": 2})
    );
    for reader in [&mut json_reader, &mut cbor_reader] {
        assert_eq!(reader.expect_push("k").await, (1, json!({"n": 1})));
        assert_eq!(reader.expect_push("k").await, (2, json!({"n": 2})));
        assert_eq!(reader.expect_push("k").await, (3, json!("r")));
        reader.assert_nothing_pending().await;
    }

    let init = server.send(&room, &msg::get("k", json!(1))).await;
    assert_eq!(
        init,
        json!({"type": "init", "key": "k", "data": [{"value": {"n": 2}, "seq": 2}]}),
        "the reference's shape"
    );
    let response = server.post(&format!("/room/{room}/send?ext=true"), msg::get("k", json!(1)).to_string()).await;
    let init = json_body(response, reqwest::StatusCode::OK).await;
    assert_eq!(init["data"], json!([{"value": {"n": 2}, "seq": 2}]), "replay after seq 1: {init}");
    assert_eq!(init["epoch"], server.epoch(&room), "an opted-in init carries the room's epoch: {init}");
    assert_eq!(server.send(&room, &msg::get("k", Value::Null)).await, Value::Null, "get with seq null has no init");
    assert_eq!(server.send(&room, &msg::ping(7)).await, json!({"type": "pong", "nonce": 7}));
    assert_eq!(server.send(&room, &json!({"type": "ping"})).await, json!({"type": "pong", "nonce": null}));
}

#[tokio::test]
async fn only_clients_that_opt_in_get_fields_the_reference_never_sends() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let epoch = server.epoch(&room);
    let mut plain_json = server.connect(&room, Encoding::Json).await;
    let mut plain_cbor = server.connect(&room, Encoding::Cbor).await;
    let mut ext_json = server.connect_with(&room, "?ext=true", Encoding::Json).await;
    let mut ext_cbor = server.connect_with(&room, "?cbor=true&ext=true", Encoding::Cbor).await;
    for plain in [&mut plain_json, &mut plain_cbor] {
        assert_eq!(plain.subscribe("k").await, json!({"type": "init", "key": "k", "data": []}));
    }
    for ext in [&mut ext_json, &mut ext_cbor] {
        assert_eq!(ext.subscribe("k").await, json!({"type": "init", "key": "k", "data": [], "epoch": epoch}));
    }

    // One volatile relay, seen by all four: `volatile` only where opted in.
    ext_json
        .send(&json!({"type": "push", "key": "k", "value": 1, "action": {"type": "relay"}, "volatile": true}))
        .await;
    for plain in [&mut plain_json, &mut plain_cbor] {
        assert_eq!(plain.recv().await, json!({"type": "push", "key": "k", "value": 1, "seq": 1}));
    }
    for ext in [&mut ext_json, &mut ext_cbor] {
        assert_eq!(ext.recv().await, json!({"type": "push", "key": "k", "value": 1, "seq": 1, "volatile": true}));
    }
}

#[tokio::test]
async fn bad_messages_get_an_error_and_the_connection_stays_usable() {
    let bad: [(&str, Message, &str); 9] = [
        ("malformed JSON", Message::text("{\"type\": \"ping\""), "JSON"),
        ("JSON that is not an object", Message::text("[1, 2]"), "object"),
        ("malformed CBOR", Message::binary(vec![0xa1, 0x61]), "CBOR"),
        ("CBOR with trailing bytes", Message::binary(vec![0xa0, 0x00]), "CBOR"),
        ("unknown message type", Message::text(r#"{"type": "bogus"}"#), "bogus"),
        ("unknown action", Message::text(r#"{"type":"push","key":"k","value":1,"action":{"type":"bogus"}}"#), "bogus"),
        ("push without a value", Message::text(r#"{"type":"push","key":"k","action":{"type":"relay"}}"#), "value"),
        ("get without a key", Message::text(r#"{"type":"get","seq":0}"#), "key"),
        (
            "compact ahead of the room's seq",
            Message::text(r#"{"type":"push","key":"k","value":1,"action":{"type":"compact","seq":99}}"#),
            "ahead",
        ),
    ];
    let server = TestServer::start().await;
    let room = server.create_room().await;
    for encoding in Encoding::BOTH {
        let mut client = server.connect(&room, encoding).await;
        for (what, frame, hint) in &bad {
            client.send_frame(frame.clone()).await;
            // The error comes back in the connection's encoding, whatever the bad frame's.
            let error = client.expect("error").await;
            let text = error["message"].as_str().unwrap_or_else(|| panic!("error without a message: {error}"));
            assert!(text.contains(hint), "{what} on a {encoding:?} connection: {text:?} does not mention {hint:?}");
            client.assert_nothing_pending().await;
        }
    }
}

#[tokio::test]
async fn protocol_ping_frames_get_exactly_one_pong_with_the_same_payload() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut client = server.connect(&room, Encoding::Json).await;
    let payloads: [&[u8]; 3] = [b"", b"hello", &[0xff; 125]];
    for payload in payloads {
        client.send_frame(Message::Ping(payload.to_vec().into())).await;
    }
    for payload in payloads {
        assert_eq!(client.recv_frame().await, Message::Pong(payload.to_vec().into()));
    }
    // A second Pong for any Ping would arrive before the pong of this ping message, and `recv` fails on it.
    client.assert_nothing_pending().await;
}

#[tokio::test]
async fn malformed_room_id_is_refused_before_any_upgrade() {
    let server = TestServer::start().await;
    let too_long = "a".repeat(65);
    for id in ["bad.id", "bad%20id", "%C3%A9", too_long.as_str()] {
        let status = server.connect_refused(&format!("/room/{id}/connect")).await;
        assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "connect to room {id:?}");
    }
    assert!(server.rooms().is_empty(), "a refused connect must not create a room");
}

#[tokio::test]
async fn connecting_to_an_unknown_well_formed_room_creates_it() {
    let server = TestServer::start().await;
    let room = "Shared-room_42";
    assert!(!server.has_room(room));
    let mut client = server.connect(room, Encoding::Json).await;
    assert!(server.has_room(room), "connect creates the room");
    client.subscribe("k").await;
    assert_eq!(server.send(room, &msg::append("k", json!(1))).await, Value::Null);
    assert_eq!(client.expect_push("k").await, (1, json!(1)));
}

#[tokio::test]
async fn oversized_message_closes_with_1009_and_the_server_keeps_serving() {
    const LIMIT: usize = 1024;
    let server = TestServer::start_with(|config| config.max_message_bytes = LIMIT).await;
    let room = server.create_room().await;
    let mut bystander = server.connect(&room, Encoding::Json).await;
    bystander.subscribe("k").await;
    let at_limit = msg::relay_text_of_len("k", LIMIT);

    // The size is checked before decoding, so even garbage one byte over the limit is "too big", not "malformed".
    let oversized_frames =
        [Message::text(msg::relay_text_of_len("k", LIMIT + 1)), Message::binary(vec![0xf6; LIMIT + 1])];
    for frame in oversized_frames {
        let mut offender = server.connect(&room, Encoding::Json).await;
        // A message of exactly the limit is accepted on the same connection.
        offender.send_frame(Message::text(at_limit.clone())).await;
        offender.assert_nothing_pending().await;
        offender.send_frame(frame).await;
        let closed = offender.expect_close().await;
        assert_eq!(closed.code, 1009, "close for an oversized message: {closed:?}");
    }

    // Everyone else is still served: the bystander got both relays at the limit and still gets new ones.
    let at_limit_value = serde_json::from_str::<Value>(&at_limit).unwrap()["value"].clone();
    assert_eq!(bystander.expect_push("k").await.1, at_limit_value);
    assert_eq!(bystander.expect_push("k").await.1, at_limit_value);
    let mut writer = server.connect(&room, Encoding::Cbor).await;
    writer.send(&msg::relay("k", json!("after"))).await;
    assert_eq!(bystander.expect_push("k").await.1, json!("after"));
    bystander.assert_nothing_pending().await;
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_closed_as_slow_consumer_while_others_get_everything() {
    const OUTBOX: usize = 64 * 1024;
    // Values of 8 KiB in rounds of 4: a round (32 KiB) fits any outbox, so a reader that keeps up never overflows,
    // while 8 MiB in all is more than the silent reader's kernel buffers (loopback send buffers grow to 4 MiB),
    // the server's write buffer and its outbox can hold together.
    const VALUE_BYTES: usize = 8 * 1024;
    const PER_ROUND: usize = 4;
    const ROUNDS: usize = 256;
    let server = TestServer::start_with(|config| config.outbox_bytes = OUTBOX).await;
    let room = server.create_room().await;
    let mut silent = server.connect_small_buffer(&room, Encoding::Json).await;
    silent.subscribe("k").await;
    let mut fast_readers = [server.connect(&room, Encoding::Json).await, server.connect(&room, Encoding::Cbor).await];
    for reader in &mut fast_readers {
        reader.subscribe("k").await;
    }

    // The silent client is simply never polled while this runs.
    let mut writer = server.connect(&room, Encoding::Cbor).await;
    let value = "x".repeat(VALUE_BYTES);
    let mut next_seq = 1;
    for _ in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            writer.send(&msg::relay("k", json!(value))).await;
        }
        for reader in &mut fast_readers {
            for seq in next_seq..next_seq + PER_ROUND as u64 {
                let (got, _) = reader.expect_push("k").await;
                assert_eq!(got, seq, "a fast reader missed or reordered a message");
            }
        }
        next_seq += PER_ROUND as u64;
    }
    for reader in &mut fast_readers {
        reader.assert_nothing_pending().await;
    }

    // Now drain the silent client: whatever it got is a gap-free prefix, then the slow-consumer close.
    let (messages, closed) = silent.recv_until_close().await;
    assert_eq!(closed.code, 4001, "close code for a slow consumer: {closed:?}");
    assert!(closed.reason.contains("slow consumer"), "close reason: {closed:?}");
    let pushes: Vec<u64> = messages.iter().filter(|m| m["type"] == "push").map(seq_of).collect();
    let total = (ROUNDS * PER_ROUND) as u64;
    assert!((pushes.len() as u64) < total, "the silent reader was closed only after everything was delivered");
    assert_eq!(
        pushes,
        (1..=pushes.len() as u64).collect::<Vec<_>>(),
        "messages before the close are a gap-free prefix"
    );
}

#[tokio::test]
async fn a_burst_of_5000_relays_reaches_fast_subscribers_completely_and_in_order() {
    const BURST: usize = 5000;
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut json_reader = server.connect(&room, Encoding::Json).await;
    let mut cbor_reader = server.connect(&room, Encoding::Cbor).await;
    json_reader.subscribe("burst").await;
    cbor_reader.subscribe("burst").await;
    let mut writer = server.connect(&room, Encoding::Json).await;

    let publish = async {
        for i in 0..BURST {
            writer.send(&msg::relay("burst", json!(i))).await;
        }
    };
    let (_, from_json, from_cbor) = tokio::join!(
        publish,
        receive_pushes(&mut json_reader, "burst", BURST),
        receive_pushes(&mut cbor_reader, "burst", BURST),
    );
    let expected: Vec<(u64, Value)> = (0..BURST).map(|i| (i as u64 + 1, json!(i))).collect();
    assert_eq!(from_json, expected, "JSON subscriber");
    assert_eq!(from_cbor, expected, "CBOR subscriber");
    json_reader.assert_nothing_pending().await;
    cbor_reader.assert_nothing_pending().await;
}

/// Pushes `value` on `key` from a writer subscribed to `key`; its own echo proves the room has fanned the push out
/// to every subscriber's queue, so a reader's following round trip sees it if it was delivered at all.
async fn push_and_await_echo(writer: &mut WsClient, key: &str, value: Value) {
    writer.send(&msg::relay(key, value.clone())).await;
    assert_eq!(writer.expect_push(key).await.1, value);
}

#[tokio::test]
async fn unsubscribe_stops_deliveries() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut reader = server.connect(&room, Encoding::Json).await;
    let mut writer = server.connect(&room, Encoding::Cbor).await;
    writer.subscribe("k").await;
    reader.subscribe("k").await;
    reader.subscribe("other").await;

    push_and_await_echo(&mut writer, "k", json!(1)).await;
    assert_eq!(reader.expect_push("k").await.1, json!(1));
    reader.send(&msg::unsubscribe("k")).await;
    reader.assert_nothing_pending().await;

    push_and_await_echo(&mut writer, "k", json!(2)).await;
    writer.send(&msg::relay("other", json!("still subscribed"))).await;
    assert_eq!(reader.expect_push("other").await.1, json!("still subscribed"), "other keys are unaffected");
    reader.assert_nothing_pending().await;

    // Subscribing again resumes deliveries.
    reader.subscribe("k").await;
    push_and_await_echo(&mut writer, "k", json!(3)).await;
    assert_eq!(reader.expect_push("k").await.1, json!(3));
}

#[tokio::test]
async fn a_second_get_replays_again_but_never_doubles_deliveries() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    assert_eq!(server.send(&room, &msg::append("k", json!("stored"))).await, Value::Null);
    let mut reader = server.connect(&room, Encoding::Cbor).await;
    let mut writer = server.connect(&room, Encoding::Json).await;
    writer.subscribe("k").await;

    for _ in 0..2 {
        let init = reader.subscribe("k").await;
        assert_eq!(init["data"], json!([{"value": "stored", "seq": 1}]), "each get replays: {init}");
    }
    push_and_await_echo(&mut writer, "k", json!("live")).await;
    assert_eq!(reader.expect_push("k").await, (2, json!("live")));
    reader.assert_nothing_pending().await;
}

#[tokio::test]
async fn debug_connection_gets_full_inits_and_every_relay() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    for message in [msg::append("a", json!(1)), msg::append("a", json!(2)), msg::replace("b", json!("x"))] {
        server.send(&room, &message).await;
    }
    server.send(&room, &msg::relay("c", json!("not stored"))).await;

    let mut debug = server.connect_with(&room, "?debug=true&ext=true", Encoding::Json).await;
    let mut inits = vec![debug.expect("init").await, debug.expect("init").await];
    inits.sort_by_key(|init| init["key"].as_str().map(str::to_owned));
    let epoch = server.epoch(&room);
    assert_eq!(
        inits,
        [
            json!({"type": "init", "key": "a", "data": [{"value": 1, "seq": 1}, {"value": 2, "seq": 2}], "epoch": epoch}),
            json!({"type": "init", "key": "b", "data": [{"value": "x", "seq": 3}], "epoch": epoch}),
        ],
        "one full init per stored key on connect"
    );
    debug.assert_nothing_pending().await;

    // Every change of a stored stream sends that key's full init again; relays arrive as pushes.
    server.send(&room, &msg::append("a", json!(3))).await;
    let init = debug.expect("init").await;
    assert_eq!(init["data"], json!([{"value": 1, "seq": 1}, {"value": 2, "seq": 2}, {"value": 3, "seq": 5}]));
    server.send(&room, &msg::relay("c", json!("relayed"))).await;
    assert_eq!(debug.expect_push("c").await, (6, json!("relayed")));
    server.send(&room, &msg::compact("a", json!({"reset": 3}), 2)).await;
    let init = debug.expect("init").await;
    assert_eq!(init["data"], json!([{"value": {"reset": 3}, "seq": 2}, {"value": 3, "seq": 5}]));
    debug.assert_nothing_pending().await;

    // A debug connection that also subscribes to a key gets each of its relays once, not twice.
    debug.subscribe("c").await;
    server.send(&room, &msg::relay("c", json!("once"))).await;
    assert_eq!(debug.expect_push("c").await, (7, json!("once")));
    debug.assert_nothing_pending().await;
}

#[tokio::test]
async fn shutdown_closes_every_connection_with_1001() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut clients = [server.connect(&room, Encoding::Json).await, server.connect(&room, Encoding::Cbor).await];
    for client in &mut clients {
        client.subscribe("k").await;
    }
    let addr = server.addr();

    let stopping = tokio::spawn(server.shutdown());
    for client in &mut clients {
        let closed = client.expect_close().await;
        assert_eq!(closed.code, 1001, "close on shutdown: {closed:?}");
    }
    common::within("shutdown", stopping).await.expect("shutdown task");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the listener is gone after shutdown");
}

#[tokio::test]
async fn the_reference_clients_reconnect_url_still_means_cbor() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    // driftdb 1.0.12 appends `?cbor=true` to its URL again on every reconnect.
    for query in ["?cbor=true?cbor=true", "?cbor=true?cbor=true?cbor=true", "?debug=false&cbor=true"] {
        let mut client = server.connect_with(&room, query, Encoding::Cbor).await;
        // `recv_cbor` fails on a text frame.
        client.send(&msg::ping(9)).await;
        let pong = client.recv_cbor().await;
        assert_eq!(cbor_to_json(&pong), json!({"type": "pong", "nonce": 9}), "{query}");
    }
    for query in ["?cbor=false", ""] {
        let mut client = server.connect_with(&room, query, Encoding::Json).await;
        client.assert_nothing_pending().await;
    }
}

#[tokio::test]
async fn the_sender_alone_gets_stream_size_after_its_own_echo() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut writer = server.connect(&room, Encoding::Json).await;
    let mut reader = server.connect(&room, Encoding::Cbor).await;
    writer.subscribe("k").await;
    reader.subscribe("k").await;
    let stream_size = |size: u64| json!({"type": "stream_size", "key": "k", "size": size});

    writer.send(&msg::append("k", json!("a"))).await;
    assert_eq!(writer.expect_push("k").await, (1, json!("a")));
    writer.send(&msg::append("k", json!("b"))).await;
    assert_eq!(writer.expect_push("k").await, (2, json!("b")));
    assert_eq!(writer.recv().await, stream_size(2), "stream_size follows the sender's echo");
    // A relay is not stored, but the sender still learns the key's stream size.
    writer.send(&msg::relay("k", json!("r"))).await;
    assert_eq!(writer.expect_push("k").await, (3, json!("r")));
    assert_eq!(writer.recv().await, stream_size(2));
    // A compact delivers nothing and takes no seq.
    writer.send(&msg::append("k", json!("c"))).await;
    assert_eq!(writer.expect_push("k").await, (4, json!("c")));
    assert_eq!(writer.recv().await, stream_size(3));
    writer.send(&msg::compact("k", json!({"reset": "ab"}), 2)).await;
    assert_eq!(writer.recv().await, stream_size(2));
    writer.assert_nothing_pending().await;

    for (seq, value) in [(1, "a"), (2, "b"), (3, "r"), (4, "c")] {
        assert_eq!(reader.expect_push("k").await, (seq, json!(value)));
    }
    reader.assert_nothing_pending().await;
    let init = reader.subscribe("k").await;
    assert_eq!(init["data"], json!([{"value": {"reset": "ab"}, "seq": 2}, {"value": "c", "seq": 4}]), "{init}");
}

#[tokio::test]
async fn get_replays_after_its_seq_and_seq_null_subscribes_without_init() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    for value in ["a", "b", "c"] {
        server.send(&room, &msg::append("k", json!(value))).await;
    }
    let mut client = server.connect(&room, Encoding::Json).await;

    client.send(&msg::get("k", json!(2))).await;
    let init = client.expect("init").await;
    assert_eq!(init["data"], json!([{"value": "c", "seq": 3}]), "replay after seq 2: {init}");
    client.send(&msg::get("never-written", json!(0))).await;
    assert_eq!(client.expect("init").await["data"], json!([]), "a key never written replays nothing");

    client.send(&msg::get("quiet", Value::Null)).await;
    client.assert_nothing_pending().await;
    server.send(&room, &msg::relay("quiet", json!("live"))).await;
    assert_eq!(client.expect_push("quiet").await, (4, json!("live")), "seq null still subscribes");
}

#[tokio::test]
async fn a_replay_larger_than_the_outbox_bound_still_reaches_an_idle_reader() {
    const OUTBOX: usize = 64 * 1024;
    let server = TestServer::start_with(|config| config.outbox_bytes = OUTBOX).await;
    let room = server.create_room().await;
    // Each append is small, but together the stored stream is twice the outbox bound.
    let value = "x".repeat(1024);
    for _ in 0..2 * OUTBOX / value.len() {
        server.send(&room, &msg::append("big", json!(value))).await;
    }

    // A reader that has nothing queued is not slow: it must get its replay rather than a slow-consumer close.
    let mut reader = server.connect(&room, Encoding::Json).await;
    reader.send(&msg::get("big", json!(0))).await;
    let frame = reader.recv_frame().await;
    let Message::Text(text) = frame else { panic!("expected the init, got {frame:?}") };
    let init: Value = serde_json::from_str(&text).expect("JSON init");
    assert_eq!(init["data"].as_array().map(Vec::len), Some(2 * OUTBOX / value.len()));
}

#[tokio::test]
async fn any_utf8_key_works_including_the_empty_one() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut reader = server.connect(&room, Encoding::Cbor).await;
    let keys = ["", "with space", "ünïcödé 🚀", "a/b?c=d&e"];
    for key in keys {
        reader.subscribe(key).await;
    }
    for (i, key) in keys.into_iter().enumerate() {
        server.send(&room, &msg::append(key, json!(i))).await;
        // One seq for the whole room, whatever the key.
        assert_eq!(reader.expect_push(key).await, (i as u64 + 1, json!(i)));
    }
}

#[tokio::test]
async fn a_get_during_a_stream_of_writes_replays_and_continues_without_gap_or_duplicate() {
    const WRITES: u64 = 2000;
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut writer = server.connect(&room, Encoding::Json).await;
    let mut reader = server.connect(&room, Encoding::Cbor).await;

    let write = async {
        for i in 1..=WRITES {
            writer.send(&msg::append("k", json!(i))).await;
        }
    };
    let read = async {
        // Subscribe once the stream is under way, so that part of it is replayed and the rest arrives live.
        while server.send(&room, &msg::get("k", json!(0))).await["data"].as_array().is_none_or(Vec::is_empty) {
            tokio::task::yield_now().await;
        }
        let init = reader.subscribe("k").await;
        let mut seqs: Vec<u64> = init["data"].as_array().unwrap().iter().map(seq_of).collect();
        let replayed = seqs.len();
        while seqs.last() != Some(&WRITES) {
            seqs.push(reader.expect_push("k").await.0);
        }
        (replayed, seqs)
    };
    let ((), (replayed, seqs)) = common::within("writes and reads", async { tokio::join!(write, read) }).await;
    assert!(replayed > 0, "the get came after the first write");
    assert_eq!(seqs, (1..=WRITES).collect::<Vec<_>>(), "replay ({replayed} entries) then live, no gap or duplicate");
    reader.assert_nothing_pending().await;
}

#[tokio::test]
async fn shutdown_delivers_what_was_queued_before_the_1001() {
    const QUEUED: u64 = 200;
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut reader = server.connect(&room, Encoding::Json).await;
    reader.subscribe("k").await;
    let mut writer = server.connect(&room, Encoding::Cbor).await;
    writer.subscribe("k").await;
    for i in 1..=QUEUED {
        writer.send(&msg::relay("k", json!(i))).await;
    }
    // The writer's last echo means every relay is already in the reader's queue or socket.
    while writer.expect_push("k").await.0 < QUEUED {}

    let stopping = tokio::spawn(server.shutdown());
    let (messages, closed) = reader.recv_until_close().await;
    assert_eq!(closed.code, 1001, "close on shutdown: {closed:?}");
    let seqs: Vec<u64> = messages.iter().map(seq_of).collect();
    assert_eq!(seqs, (1..=QUEUED).collect::<Vec<_>>(), "everything queued arrives before the goodbye");
    common::within("shutdown", stopping).await.expect("shutdown task");
}

#[tokio::test]
async fn clients_that_leave_are_detached_from_the_room() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut stayer = server.connect(&room, Encoding::Json).await;
    stayer.subscribe("k").await;
    let mut leaver = server.connect(&room, Encoding::Json).await;
    leaver.subscribe("k").await;
    let vanisher = server.connect(&room, Encoding::Cbor).await;
    assert_eq!(server.connection_count(&room), 3);

    leaver.close(1000).await;
    server.wait_for_connection_count(&room, 2).await;
    // A client that vanishes without a closing handshake is detached too.
    drop(vanisher);
    server.wait_for_connection_count(&room, 1).await;

    assert_eq!(server.send(&room, &msg::append("k", json!("still here"))).await, Value::Null);
    assert_eq!(stayer.expect_push("k").await, (1, json!("still here")));
}

#[tokio::test]
async fn a_client_initiated_close_is_answered_with_a_close_frame() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let mut client = server.connect(&room, Encoding::Json).await;
    client.subscribe("k").await;
    // RFC 6455 5.5.1: the server answers a close frame with one of its own, so that the client sees a clean close
    // (a browser reports `wasClean: true` and the code, rather than 1006).
    client.close(1000).await;
    let closed = client.expect_close().await;
    assert_eq!(closed.code, 1000, "the server echoes the client's close code: {closed:?}");
}

#[tokio::test]
async fn messages_far_larger_than_the_read_buffer_arrive_whole() {
    // The server reads 2 KiB per read call (src/http/websocket.rs READ_BUFFER): a message of 256 KiB spans a hundred
    // reads and must still be taken whole, and the size limit still holds one byte past it.
    const LIMIT: usize = 256 * 1024;
    let server = TestServer::start_with(|config| config.max_message_bytes = LIMIT).await;
    let room = server.create_room().await;
    let mut subscriber = server.connect(&room, Encoding::Cbor).await;
    subscriber.subscribe("k").await;
    let at_limit = msg::relay_text_of_len("k", LIMIT);
    let mut sender = server.connect(&room, Encoding::Json).await;
    sender.send_frame(Message::text(at_limit.clone())).await;
    let expected = serde_json::from_str::<Value>(&at_limit).unwrap()["value"].clone();
    assert_eq!(subscriber.expect_push("k").await.1, expected);
    sender.send_frame(Message::text(msg::relay_text_of_len("k", LIMIT + 1))).await;
    assert_eq!(sender.expect_close().await.code, 1009);
}

#[tokio::test]
async fn a_four_megabyte_value_arrives_intact_as_a_push_and_in_a_replay() {
    let server = TestServer::start_with(|config| {
        config.max_message_bytes = 8 << 20;
        config.outbox_bytes = 16 << 20;
    })
    .await;
    let room = server.create_room().await;
    let mut watcher = server.connect(&room, Encoding::Json).await;
    watcher.subscribe("big").await;
    // 4 MB that a truncated, reordered or misjoined reassembly would change: a counter pattern.
    let value: String = (0..4_000_000u32).map(|n| char::from(b'a' + (n % 26) as u8)).collect();
    let mut writer = server.connect(&room, Encoding::Cbor).await;
    writer.send(&msg::append("big", json!(value))).await;
    let (seq, pushed) = watcher.expect_push("big").await;
    assert_eq!(pushed.as_str().map(str::len), Some(value.len()));
    assert!(pushed == json!(value), "the pushed value differs");
    let mut late = server.connect(&room, Encoding::Json).await;
    let init = late.subscribe("big").await;
    let data = init["data"].as_array().expect("init data");
    assert_eq!((data.len(), seq_of(&data[0])), (1, seq));
    assert!(data[0]["value"] == json!(value), "the replayed value differs");
}

#[tokio::test]
async fn a_large_message_goes_as_16_kib_fragments_and_a_small_one_as_one_frame() {
    use common::within;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let value = "y".repeat(200_000);
    server.send(&room, &msg::append("big", json!(value))).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let request = format!(
        "GET /room/{room}/connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(within("handshake", tcp.read_u8()).await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    // A masked text frame (a zero mask) carrying the `get`.
    let get = msg::get("big", json!(0)).to_string();
    let mut frame = vec![0x81, 0x80 | get.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(get.as_bytes());
    tcp.write_all(&frame).await.unwrap();
    // Frames as they arrive: (final, opcode, payload).
    let mut frames = Vec::new();
    loop {
        let (b0, b1) = (within("frame", tcp.read_u8()).await.unwrap(), tcp.read_u8().await.unwrap());
        let len = match b1 & 0x7f {
            126 => tcp.read_u16().await.unwrap() as usize,
            127 => tcp.read_u64().await.unwrap() as usize,
            n => n as usize,
        };
        let mut payload = vec![0; len];
        tcp.read_exact(&mut payload).await.unwrap();
        let fin = b0 & 0x80 != 0;
        frames.push((fin, b0 & 0x0f, payload));
        if fin && frames.len() > 1 {
            break;
        }
    }
    let (first, rest) = frames.split_first().unwrap();
    assert_eq!((first.0, first.1, first.2.len()), (false, 0x1, 16 * 1024), "a text frame of 16 KiB, not final");
    for (n, (fin, opcode, payload)) in rest.iter().enumerate() {
        assert_eq!(*opcode, 0x0, "frame {} is a continuation", n + 1);
        assert!(payload.len() <= 16 * 1024);
        assert_eq!(*fin, n + 1 == rest.len());
    }
    let message: Vec<u8> = frames.iter().flat_map(|(_, _, payload)| payload.clone()).collect();
    let init: Value = serde_json::from_slice(&message).expect("the fragments join into one JSON message");
    assert_eq!(init["type"], "init");
    assert!(init["data"][0]["value"] == json!(value));
    // A small reply is one final frame.
    let ping = msg::ping(7).to_string();
    let mut frame = vec![0x81, 0x80 | ping.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(ping.as_bytes());
    tcp.write_all(&frame).await.unwrap();
    let b0 = within("pong frame", tcp.read_u8()).await.unwrap();
    assert_eq!(b0, 0x81, "a final text frame");
}

#[tokio::test]
async fn a_connect_that_is_not_an_upgrade_is_refused_as_axum_refused_it() {
    let server = TestServer::start().await;
    let room = server.create_room().await;
    let plain = server.get(&format!("/room/{room}/connect")).await;
    assert_eq!(plain.status(), reqwest::StatusCode::BAD_REQUEST);
    let post = server.post(&format!("/room/{room}/connect"), "").await;
    assert_eq!(post.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED);
}
