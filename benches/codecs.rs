//! Each codec on typical messages: decoding a client `push` with a small cursor value, encoding the server `push`
//! every subscriber gets, and encoding an `init` of 30 entries (what a reducer replays before it compacts).
//!
//! `cargo bench --bench codecs`. Encoders get fresh values every iteration: a value's JSON text is cached once
//! computed, and a message is encoded once however many subscribers get it, so the cold cost is the real one.

use std::hint::black_box;
use std::sync::Arc;

use ciborium::value::Value as Cbor;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use driftdb::protocol::{Action, ClientMessage, Dialect, Entry, ServerMessage, Value, json_cbor, postcard_envelope};

fn cursor_tree(n: u64) -> Cbor {
    Cbor::Map(vec![
        (Cbor::Text("x".into()), Cbor::Float(0.4321)),
        (Cbor::Text("y".into()), Cbor::Float(0.8765)),
        (Cbor::Text("t".into()), Cbor::Integer(n.into())),
    ])
}

fn server_push(n: u64) -> ServerMessage {
    ServerMessage::Push { key: "cursor".into(), value: Value::from_tree(cursor_tree(n)), seq: 1000 + n, volatile: true }
}

fn server_init(n: u64) -> ServerMessage {
    let entry = |i: u64| {
        let action = Cbor::Map(vec![
            (Cbor::Text("type".into()), Cbor::Text("move".into())),
            (Cbor::Text("to".into()), Cbor::Integer((i % 64).into())),
        ]);
        let tree = Cbor::Map(vec![
            (Cbor::Text("apply".into()), action),
            (Cbor::Text("i".into()), Cbor::Text(format!("inst-{n}"))),
        ]);
        Entry { value: Value::from_tree(tree), seq: 100 + i }
    };
    ServerMessage::Init {
        key: "reducer".into(),
        data: (0..30).map(entry).collect(),
        epoch: Arc::from("9c0e4f1a2b3c4d5e"),
    }
}

fn decode(c: &mut Criterion) {
    let json = br#"{"type":"push","key":"cursor","value":{"x":0.4321,"y":0.8765,"t":7},"action":{"type":"relay"},"volatile":true}"#;
    let message = json_cbor::decode_json(json).expect("valid JSON");
    let ClientMessage::Push { key, value, .. } = &message else { unreachable!() };
    let mut cbor = Vec::new();
    let push_tree = Cbor::Map(vec![
        (Cbor::Text("type".into()), Cbor::Text("push".into())),
        (Cbor::Text("key".into()), Cbor::Text(key.to_string())),
        (Cbor::Text("value".into()), value.to_tree()),
        (Cbor::Text("action".into()), Cbor::Map(vec![(Cbor::Text("type".into()), Cbor::Text("relay".into()))])),
        (Cbor::Text("volatile".into()), Cbor::Bool(true)),
    ]);
    ciborium::into_writer(&push_tree, &mut cbor).expect("CBOR");
    let postcard_bytes = postcard_envelope::encode_client(&message);
    assert_eq!(json_cbor::decode_cbor(&cbor).expect("valid CBOR"), message);
    assert_eq!(postcard_envelope::decode_client(&postcard_bytes).expect("valid postcard"), message);

    let mut group = c.benchmark_group("decode/client_push");
    group.bench_function("json", |b| b.iter(|| json_cbor::decode_json(black_box(json))));
    group.bench_function("cbor", |b| b.iter(|| json_cbor::decode_cbor(black_box(&cbor))));
    group.bench_function("postcard", |b| b.iter(|| postcard_envelope::decode_client(black_box(&postcard_bytes))));
    group.finish();

    let mut group = c.benchmark_group("encode/client_push");
    let push =
        ClientMessage::Push { key: "cursor".into(), value: value.clone(), action: Action::Relay, volatile: true };
    group.bench_function("postcard", |b| b.iter(|| postcard_envelope::encode_client(black_box(&push))));
    group.finish();

    let mut group = c.benchmark_group("decode/server_push");
    let server_bytes = postcard_envelope::encode_server(&server_push(1));
    group.bench_function("postcard", |b| b.iter(|| postcard_envelope::decode_server(black_box(&server_bytes))));
    group.finish();
}

fn encode(c: &mut Criterion) {
    for (name, make) in [("server_push", server_push as fn(u64) -> ServerMessage), ("server_init_30", server_init)] {
        let mut group = c.benchmark_group(format!("encode/{name}"));
        let mut n = 0;
        let mut fresh = || {
            n += 1;
            make(n)
        };
        group.bench_function("json", |b| {
            b.iter_batched(&mut fresh, |m| json_cbor::encode_json(&m, Dialect::Extended), BatchSize::SmallInput)
        });
        group.bench_function("cbor", |b| {
            b.iter_batched(&mut fresh, |m| json_cbor::encode_cbor(&m, Dialect::Extended), BatchSize::SmallInput)
        });
        group.bench_function("postcard", |b| {
            b.iter_batched(&mut fresh, |m| postcard_envelope::encode_server(&m), BatchSize::SmallInput)
        });
        group.finish();
    }
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
