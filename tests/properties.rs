//! Property tests: the codecs never panic and round-trip, and the engine's ordering invariants hold for arbitrary
//! sequences of actions (seq strictly increasing, replay equals live order, compaction never reorders), and the
//! embedded store gives back the same streams, seq and epoch after any sequence of actions and a reload.

use std::sync::Arc;

use ciborium::value::Value as Cbor;
use driftdb::engine::{Outbox, Rooms};
use driftdb::protocol::{Action, ClientMessage, Replay, ServerMessage, Value, json_cbor, postcard_envelope};
use proptest::prelude::*;

/// Arbitrary JSON values a client might send.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(serde_json::Value::from),
        ".*".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(".*", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Arbitrary CBOR trees, byte strings and tags included.
fn cbor_value() -> impl Strategy<Value = Cbor> {
    let leaf = prop_oneof![
        Just(Cbor::Null),
        any::<bool>().prop_map(Cbor::Bool),
        any::<i64>().prop_map(|i| Cbor::Integer(i.into())),
        any::<f64>().prop_map(Cbor::Float),
        ".*".prop_map(Cbor::Text),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(Cbor::Bytes),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(|b| Cbor::Tag(64, Box::new(Cbor::Bytes(b)))),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Cbor::Array),
            prop::collection::vec((".*".prop_map(Cbor::Text), inner.clone()), 0..6).prop_map(Cbor::Map),
            (0u64..1000, inner).prop_map(|(tag, v)| Cbor::Tag(tag, Box::new(v))),
        ]
    })
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = json_cbor::decode_json(&bytes);
        let _ = json_cbor::decode_cbor(&bytes);
        let _ = postcard_envelope::decode_client(&bytes);
        let _ = Value::from_cbor_bytes(&bytes);
    }

    #[test]
    fn json_values_survive_the_canonical_form(json in json_value()) {
        let value = Value::from_tree(serde_json::from_value(json.clone()).unwrap());
        let back: serde_json::Value = serde_json::from_str(value.json().get()).unwrap();
        prop_assert_eq!(back, json);
    }

    #[test]
    fn the_canonical_form_is_stable(tree in cbor_value()) {
        let value = Value::from_tree(tree);
        let again = Value::from_cbor_bytes(value.cbor()).unwrap();
        prop_assert_eq!(again.cbor(), value.cbor());
        // Every canonical value has a JSON form.
        prop_assert!(serde_json::from_str::<serde_json::Value>(value.json().get()).is_ok());
    }

    #[test]
    fn postcard_client_messages_round_trip(
        key in ".*",
        tree in cbor_value(),
        seq in any::<u64>(),
        nonce in any::<Option<u64>>(),
        volatile in any::<bool>(),
    ) {
        let value = Value::from_tree(tree);
        for message in [
            ClientMessage::Push { key: key.as_str().into(), value: value.clone(), action: Action::Compact { seq }, volatile },
            ClientMessage::Push { key: key.as_str().into(), value: value.clone(), action: Action::Append, volatile },
            ClientMessage::Get { key: key.as_str().into(), replay: Replay::After(seq) },
            ClientMessage::Ping { nonce },
        ] {
            prop_assert_eq!(postcard_envelope::decode_client(&postcard_envelope::encode_client(&message)).unwrap(), message);
        }
    }
}

/// One step of an engine scenario.
#[derive(Clone, Debug)]
enum Step {
    Push { key: u8, action: u8, back: u64 },
    Subscribe { conn: usize, key: u8 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..3, 0u8..4, 0u64..6).prop_map(|(key, action, back)| Step::Push { key, action, back }),
        1 => (0usize..3, 0u8..3).prop_map(|(conn, key)| Step::Subscribe { conn, key }),
    ]
}

fn key(k: u8) -> Arc<str> {
    format!("k{k}").into()
}

proptest! {
    #[test]
    fn engine_ordering_invariants(steps in prop::collection::vec(step(), 1..80)) {
        let room = Rooms::default().create().unwrap();
        let conns: Vec<_> =
            (0..3).map(|_| room.connect(Arc::new(Outbox::new(usize::MAX / 2)), false).unwrap()).collect();
        for (n, step) in steps.iter().enumerate() {
            match *step {
                Step::Push { key: k, action, back } => {
                    let action = match action {
                        0 => Action::Relay,
                        1 => Action::Append,
                        2 => Action::Replace,
                        _ => Action::Compact { seq: room.current_seq().saturating_sub(back) },
                    };
                    let value = Value::from_tree(Cbor::Integer((n as i64).into()));
                    let message = ClientMessage::Push { key: key(k), value, action, volatile: false };
                    let _ = room.handle_http(message);
                }
                Step::Subscribe { conn, key: k } => {
                    conns[conn].handle(ClientMessage::Get { key: key(k), replay: Replay::After(0) })
                }
            }
        }
        for conn in &conns {
            let mut batch = Vec::new();
            conn.outbox().try_batch(&mut batch, usize::MAX).unwrap();
            // Per key: the init's seqs, then live pushes, strictly increasing (replay then live, no overlap).
            for k in 0..3u8 {
                let mut last: Option<u64> = None;
                for message in &batch {
                    let seqs: Vec<u64> = match message.message() {
                        ServerMessage::Init { key: mk, data, .. } if *mk == key(k) => {
                            last = None; // a new `get` replays from the start again
                            data.iter().map(|e| e.seq).collect()
                        }
                        ServerMessage::Push { key: mk, seq, .. } if *mk == key(k) => vec![*seq],
                        _ => continue,
                    };
                    for seq in seqs {
                        prop_assert!(last.is_none_or(|l| seq > l), "seq {seq} after {last:?}");
                        last = Some(seq);
                    }
                }
            }
        }
        // The stored stream is in strictly increasing seq order and never holds a seq ahead of the room's.
        for k in 0..3u8 {
            let data = replay(&room, k);
            prop_assert!(data.windows(2).all(|w| w[0].seq < w[1].seq), "stored out of order: {data:?}");
            prop_assert!(data.iter().all(|e| e.seq <= room.current_seq()));
        }
    }
}

/// Every key's stored stream of `room`, through a full replay.
fn streams(room: &driftdb::engine::Room) -> Vec<Vec<(u64, Vec<u8>)>> {
    (0..3u8).map(|k| replay(room, k).iter().map(|e| (e.seq, e.value.cbor().to_vec())).collect()).collect()
}

/// Key `k`'s whole stored stream, through a replay over HTTP.
fn replay(room: &driftdb::engine::Room, k: u8) -> Vec<driftdb::protocol::Entry> {
    let reply = room.handle_http(ClientMessage::Get { key: key(k), replay: Replay::After(0) });
    match reply.as_ref().map(|reply| reply.as_ref().map(|outgoing| outgoing.message())) {
        Ok(Some(ServerMessage::Init { data, .. })) => data.clone(),
        other => panic!("expected an init, got {other:?}"),
    }
}

/// A room on the embedded store in `dir`, with the store's journal.
fn stored_rooms(dir: &std::path::Path) -> (Arc<driftdb::storage::DiskJournal>, Rooms) {
    let day = std::time::Duration::from_secs(86_400);
    let (backend, _) = driftdb::storage::redb_store::RedbBackend::open(dir, day).unwrap();
    let journal = driftdb::storage::DiskJournal::start(backend, usize::MAX / 2);
    (journal.clone(), Rooms::with_journal(driftdb::engine::Limits::default(), journal))
}

proptest! {
    // Each case opens and closes a store on disk: fewer cases than the in-memory properties.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn the_store_round_trips_any_action_sequence(steps in prop::collection::vec(step(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let id = driftdb::engine::RoomId::parse("prop").unwrap();
        let (journal, rooms) = stored_rooms(dir.path());
        let room = rooms.get_or_create(&id).unwrap();
        for (n, step) in steps.iter().enumerate() {
            if let Step::Push { key: k, action, back } = *step {
                let action = match action {
                    0 => Action::Relay,
                    1 => Action::Append,
                    2 => Action::Replace,
                    _ => Action::Compact { seq: room.current_seq().saturating_sub(back) },
                };
                let value = Value::from_tree(Cbor::Integer((n as i64).into()));
                let _ = room.handle_http(ClientMessage::Push { key: key(k), value, action, volatile: false });
            }
        }
        let before = (room.epoch().clone(), room.current_seq(), streams(&room));
        rooms.checkpoint();
        journal.stop().unwrap();
        drop((room, rooms, journal));

        let (journal, rooms) = stored_rooms(dir.path());
        let room = rooms.get_or_create(&id).unwrap();
        let after = (room.epoch().clone(), room.current_seq(), streams(&room));
        // A room that never stored anything is not in the store: it comes back new, with nothing in it.
        if before.2.iter().all(Vec::is_empty) {
            prop_assert!(after.2.iter().all(Vec::is_empty));
        } else {
            prop_assert_eq!(after, before);
        }
        journal.stop().unwrap();
    }
}
