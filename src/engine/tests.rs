//! Engine tests: every row of PROTOCOL.md part A and every point of part B that the engine owns, by plain calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::close::CloseReason;
use crate::outgoing::Outgoing;
use crate::protocol::{Action, ClientMessage, Entry, Key, Replay, ServerMessage, Value};

const BIG: usize = 1 << 20;

fn value(n: i64) -> Value {
    Value::from_tree(ciborium::Value::Integer(n.into()))
}

fn push(key: &str, n: i64, action: Action) -> ClientMessage {
    ClientMessage::Push { key: key.into(), value: value(n), action, volatile: false }
}

fn get(key: &str, replay: Replay) -> ClientMessage {
    ClientMessage::Get { key: key.into(), replay }
}

fn connect(room: &Arc<Room>) -> Member {
    room.connect(Arc::new(Outbox::new(BIG)), false).unwrap()
}

fn received(conn: &Member) -> Vec<ServerMessage> {
    let mut batch = Vec::new();
    conn.outbox().try_batch(&mut batch, usize::MAX).unwrap();
    batch.iter().map(|m: &Outgoing| m.message().clone()).collect()
}

fn pushed(key: &str, n: i64, seq: u64) -> ServerMessage {
    ServerMessage::Push { key: key.into(), value: value(n), seq, volatile: false }
}

fn init(room: &Room, key: &str, data: &[(i64, u64)]) -> ServerMessage {
    ServerMessage::Init {
        key: key.into(),
        data: data.iter().map(|&(n, seq)| Entry { value: value(n), seq }).collect(),
        epoch: room.epoch().clone(),
    }
}

fn size(key: &str, size: u64) -> ServerMessage {
    ServerMessage::StreamSize { key: key.into(), size }
}

fn stored(room: &Room, key: &str) -> Vec<(i64, u64)> {
    match room.http(get(key, Replay::After(0))).unwrap() {
        Some(ServerMessage::Init { data, .. }) => {
            data.iter().map(|e| (i64::try_from(e.value.to_tree().as_integer().unwrap()).unwrap(), e.seq)).collect()
        }
        other => panic!("expected init, got {other:?}"),
    }
}

#[test]
fn relay_takes_a_seq_is_delivered_and_never_stored() {
    let room = Rooms::default().create().unwrap();
    let sub = connect(&room);
    sub.handle(get("k", Replay::After(0)));
    room.http(push("k", 1, Action::Relay)).unwrap();
    assert_eq!(received(&sub), vec![init(&room, "k", &[]), pushed("k", 1, 1)]);
    assert!(stored(&room, "k").is_empty());
}

#[test]
fn append_stores_at_the_end_and_replace_stores_alone() {
    let room = Rooms::default().create().unwrap();
    for n in 1..=3 {
        room.http(push("a", n, Action::Append)).unwrap();
    }
    assert_eq!(stored(&room, "a"), vec![(1, 1), (2, 2), (3, 3)]);
    room.http(push("a", 9, Action::Replace)).unwrap();
    assert_eq!(stored(&room, "a"), vec![(9, 4)]);
}

#[test]
fn seq_is_shared_by_all_keys_and_starts_at_one() {
    let room = Rooms::default().create().unwrap();
    assert_eq!(room.current_seq(), 0);
    room.http(push("a", 1, Action::Append)).unwrap();
    room.http(push("b", 2, Action::Relay)).unwrap();
    room.http(push("c", 3, Action::Replace)).unwrap();
    assert_eq!(stored(&room, "a"), vec![(1, 1)]);
    assert_eq!(stored(&room, "c"), vec![(3, 3)]);
    assert_eq!(room.current_seq(), 3);
}

#[test]
fn compact_replaces_the_prefix_and_takes_no_seq_nor_delivers() {
    let room = Rooms::default().create().unwrap();
    for n in 1..=4 {
        room.http(push("k", n, Action::Append)).unwrap();
    }
    let sub = connect(&room);
    sub.handle(get("k", Replay::None));
    let reply = room.http(push("k", 100, Action::Compact { seq: 3 })).unwrap();
    assert_eq!(stored(&room, "k"), vec![(100, 3), (4, 4)]);
    assert_eq!(reply, Some(size("k", 2)));
    assert_eq!(room.current_seq(), 4);
    assert!(received(&sub).is_empty(), "compact is not delivered");
}

#[test]
fn compact_that_removes_nothing_is_ignored() {
    let room = Rooms::default().create().unwrap();
    for n in 1..=4 {
        room.http(push("k", n, Action::Append)).unwrap();
    }
    room.http(push("k", 100, Action::Compact { seq: 3 })).unwrap();
    // A client that is behind compacts at an older seq: nothing ≤ 2 remains, so no stale reset is stored.
    assert_eq!(room.http(push("k", 50, Action::Compact { seq: 2 })).unwrap(), None);
    assert_eq!(stored(&room, "k"), vec![(100, 3), (4, 4)]);
    // Compacting a key never written is ignored too.
    room.http(push("empty", 1, Action::Compact { seq: 1 })).unwrap();
    assert!(stored(&room, "empty").is_empty());
}

#[test]
fn compact_ahead_of_the_room_seq_is_refused() {
    let room = Rooms::default().create().unwrap();
    room.http(push("k", 1, Action::Append)).unwrap();
    room.http(push("k", 2, Action::Append)).unwrap();
    let err = room.http(push("k", 0, Action::Compact { seq: 3 })).unwrap_err();
    assert_eq!(err, EngineError::CompactAhead { requested: 3, current: 2 });
    assert_eq!(stored(&room, "k"), vec![(1, 1), (2, 2)]);
    let conn = connect(&room);
    conn.handle(push("k", 0, Action::Compact { seq: 99 }));
    assert!(matches!(&received(&conn)[..], [ServerMessage::Error { message }] if message.contains("ahead")));
}

#[test]
fn pushing_does_not_subscribe() {
    let room = Rooms::default().create().unwrap();
    let conn = connect(&room);
    conn.handle(push("k", 1, Action::Relay));
    assert!(received(&conn).is_empty());
}

#[test]
fn get_replays_entries_after_seq_then_delivers_live() {
    let room = Rooms::default().create().unwrap();
    for n in 1..=3 {
        room.http(push("k", n, Action::Append)).unwrap();
    }
    let conn = connect(&room);
    conn.handle(get("k", Replay::After(1)));
    room.http(push("k", 4, Action::Append)).unwrap();
    assert_eq!(received(&conn), vec![init(&room, "k", &[(2, 2), (3, 3)]), pushed("k", 4, 4)]);
}

#[test]
fn get_with_null_seq_subscribes_without_init() {
    let room = Rooms::default().create().unwrap();
    let conn = connect(&room);
    conn.handle(get("k", Replay::None));
    room.http(push("k", 1, Action::Relay)).unwrap();
    assert_eq!(received(&conn), vec![pushed("k", 1, 1)]);
}

#[test]
fn empty_key_name_is_a_key_like_any_other() {
    let room = Rooms::default().create().unwrap();
    let conn = connect(&room);
    conn.handle(get("", Replay::After(0)));
    conn.handle(push("", 1, Action::Append));
    assert_eq!(received(&conn), vec![init(&room, "", &[]), pushed("", 1, 1)]);
}

#[test]
fn double_get_replays_again_but_never_doubles_deliveries() {
    let room = Rooms::default().create().unwrap();
    room.http(push("k", 1, Action::Append)).unwrap();
    let conn = connect(&room);
    conn.handle(get("k", Replay::After(0)));
    conn.handle(get("k", Replay::After(0)));
    room.http(push("k", 2, Action::Relay)).unwrap();
    let one = init(&room, "k", &[(1, 1)]);
    assert_eq!(received(&conn), vec![one.clone(), one, pushed("k", 2, 2)]);
}

#[test]
fn unsubscribe_stops_deliveries() {
    let room = Rooms::default().create().unwrap();
    let conn = connect(&room);
    conn.handle(get("k", Replay::None));
    conn.handle(ClientMessage::Unsubscribe { key: "k".into() });
    room.http(push("k", 1, Action::Relay)).unwrap();
    assert!(received(&conn).is_empty());
}

#[test]
fn stream_size_goes_to_the_sender_alone_after_its_echo() {
    let room = Rooms::default().create().unwrap();
    let sender = connect(&room);
    let other = connect(&room);
    sender.handle(get("k", Replay::None));
    other.handle(get("k", Replay::None));
    sender.handle(push("k", 1, Action::Append));
    // One entry: no stream_size.
    assert_eq!(received(&sender), vec![pushed("k", 1, 1)]);
    sender.handle(push("k", 2, Action::Append));
    assert_eq!(received(&sender), vec![pushed("k", 2, 2), size("k", 2)]);
    // A relay on a key with a stored stream reports the size too.
    sender.handle(push("k", 3, Action::Relay));
    assert_eq!(received(&sender), vec![pushed("k", 3, 3), size("k", 2)]);
    assert_eq!(received(&other), vec![pushed("k", 1, 1), pushed("k", 2, 2), pushed("k", 3, 3)]);
}

#[test]
fn all_subscribers_see_one_order() {
    let room = Rooms::default().create().unwrap();
    let conns: Vec<_> = (0..3).map(|_| connect(&room)).collect();
    for conn in &conns {
        conn.handle(get("k", Replay::None));
    }
    for (i, conn) in conns.iter().enumerate() {
        conn.handle(push("k", i as i64, Action::Append));
    }
    let first = received(&conns[0]);
    assert_eq!(first.len(), 3);
    for conn in &conns[1..] {
        let mine: Vec<_> = received(conn).into_iter().filter(|m| matches!(m, ServerMessage::Push { .. })).collect();
        assert_eq!(mine, first.iter().filter(|m| matches!(m, ServerMessage::Push { .. })).cloned().collect::<Vec<_>>());
    }
}

#[test]
fn debug_connections_see_every_stream_and_relay() {
    let room = Rooms::default().create().unwrap();
    room.http(push("a", 1, Action::Append)).unwrap();
    let debug = room.connect(Arc::new(Outbox::new(BIG)), true).unwrap();
    assert_eq!(received(&debug), vec![init(&room, "a", &[(1, 1)])]);
    room.http(push("a", 2, Action::Append)).unwrap();
    room.http(push("b", 3, Action::Relay)).unwrap();
    assert_eq!(received(&debug), vec![init(&room, "a", &[(1, 1), (2, 2)]), pushed("b", 3, 3)]);
}

#[test]
fn volatile_is_only_for_relays() {
    let room = Rooms::default().create().unwrap();
    let sub = connect(&room);
    sub.handle(get("cursor", Replay::None));
    let volatile = |action| ClientMessage::Push { key: "cursor".into(), value: value(1), action, volatile: true };
    assert_eq!(room.http(volatile(Action::Append)).unwrap_err(), EngineError::VolatileNotRelay);
    room.http(volatile(Action::Relay)).unwrap();
    assert_eq!(
        received(&sub),
        vec![ServerMessage::Push { key: "cursor".into(), value: value(1), seq: 1, volatile: true }]
    );
}

#[test]
fn disconnect_removes_subscriptions() {
    let room = Rooms::default().create().unwrap();
    let outbox = Arc::new(Outbox::new(BIG));
    let conn = room.connect(outbox.clone(), false).unwrap();
    conn.handle(get("k", Replay::None));
    assert_eq!(room.connection_count(), 1);
    drop(conn);
    assert_eq!(room.connection_count(), 0);
    room.http(push("k", 1, Action::Relay)).unwrap();
    assert_eq!(outbox.queued_bytes(), 0);
}

#[test]
fn a_slow_reader_is_closed_without_affecting_others() {
    let room = Rooms::default().create().unwrap();
    let slow = room.connect(Arc::new(Outbox::new(1_000)), false).unwrap();
    let fast = connect(&room);
    slow.handle(get("k", Replay::None));
    fast.handle(get("k", Replay::None));
    for n in 0..100 {
        room.http(push("k", n, Action::Append)).unwrap();
    }
    assert_eq!(slow.outbox().closed(), Some(CloseReason::SlowConsumer));
    assert_eq!(received(&fast).len(), 100);
}

#[test]
fn rooms_are_found_or_created_with_fresh_epochs() {
    let rooms = Rooms::default();
    let id = RoomId::parse("shared-room").unwrap();
    let first = rooms.get_or_create(&id).unwrap();
    assert!(Arc::ptr_eq(&first, &rooms.get_or_create(&id).unwrap()));
    let other = Rooms::default().get_or_create(&id).unwrap();
    assert_ne!(first.epoch(), other.epoch(), "a room created anew gets a new epoch");
    assert_eq!(rooms.len(), 1);
}

/// Replay and live delivery with writers active: every subscriber sees each seq of its key exactly once, in order.
#[test]
fn replay_then_live_has_no_gap_or_duplicate_under_concurrent_writes() {
    const WRITES: i64 = 2_000;
    let room = Rooms::default().create().unwrap();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let room = room.clone();
            std::thread::spawn(move || {
                for n in 0..WRITES {
                    room.http(push("k", w * WRITES + n, Action::Append)).unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let room = room.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_micros(200 * r));
                let conn = room.connect(Arc::new(Outbox::new(usize::MAX / 2)), false).unwrap();
                conn.handle(get("k", Replay::After(0)));
                conn
            })
        })
        .collect();
    writers.into_iter().for_each(|w| w.join().unwrap());
    for reader in readers {
        let conn = reader.join().unwrap();
        let mut seqs = Vec::new();
        for message in received(&conn) {
            match message {
                ServerMessage::Init { data, .. } => seqs.extend(data.iter().map(|e| e.seq)),
                ServerMessage::Push { seq, .. } => seqs.push(seq),
                other => panic!("unexpected {other:?}"),
            }
        }
        let expected: Vec<u64> = (1..=2 * WRITES as u64).collect();
        assert_eq!(seqs, expected);
    }
}

fn limited(tweak: impl FnOnce(&mut Limits)) -> Rooms {
    let mut limits = Limits::default();
    tweak(&mut limits);
    Rooms::new(limits)
}

#[test]
fn key_limit_refuses_new_keys_only() {
    let room = limited(|l| l.max_keys_per_room = 2).create().unwrap();
    room.http(push("a", 1, Action::Append)).unwrap();
    room.http(push("b", 1, Action::Replace)).unwrap();
    assert_eq!(room.http(push("c", 1, Action::Append)), Err(EngineError::KeyLimit { max: 2 }));
    // Existing keys still take writes, and relays to any key are not stored so are not limited.
    room.http(push("a", 2, Action::Append)).unwrap();
    room.http(push("c", 1, Action::Relay)).unwrap();
    let conn = connect(&room);
    conn.handle(get("d", Replay::After(0)));
    assert!(matches!(&received(&conn)[..], [ServerMessage::Error { message }] if message.contains("key limit")));
    assert_eq!(room.current_seq(), 4, "a refused push takes no seq");
}

#[test]
fn storage_limit_counts_replace_and_compact_as_freeing() {
    let cost = super::limits::entry_cost(value(1).len());
    let key = super::limits::key_cost(1);
    let room = limited(|l| l.max_room_bytes = 3 * cost + key).create().unwrap();
    for n in 1..=3 {
        room.http(push("k", n, Action::Append)).unwrap();
    }
    let full = Err(EngineError::StorageLimit { max: 3 * cost + key });
    assert_eq!(room.http(push("k", 4, Action::Append)), full);
    assert_eq!(room.stored_bytes(), 3 * cost + key);
    room.http(push("k", 9, Action::Compact { seq: 2 })).unwrap();
    assert_eq!(room.stored_bytes(), 2 * cost + key);
    room.http(push("k", 4, Action::Append)).unwrap();
    room.http(push("k", 5, Action::Replace)).unwrap();
    assert_eq!(room.stored_bytes(), cost + key, "the key is charged once, whatever its stream went through");
}

#[test]
fn storage_limit_charges_each_stored_key_once() {
    let long: Key = "k".repeat(900).into();
    let room = limited(|l| l.max_room_bytes = 1_000).create().unwrap();
    let append =
        |key: &Key| ClientMessage::Push { key: key.clone(), value: value(1), action: Action::Append, volatile: false };
    // The value is tiny, the key is not: 900 bytes of key plus overhead fit once.
    room.http(append(&long)).unwrap();
    let charged = super::limits::key_cost(900) + super::limits::entry_cost(value(1).len());
    assert_eq!(room.stored_bytes(), charged);
    let other: Key = "j".repeat(900).into();
    assert_eq!(room.http(append(&other)), Err(EngineError::StorageLimit { max: 1_000 }));
    // A compact of a key with no entries stores nothing and is not charged.
    let compact =
        ClientMessage::Push { key: other, value: value(1), action: Action::Compact { seq: 1 }, volatile: false };
    room.http(compact).unwrap();
    assert_eq!(room.stored_bytes(), charged);
}

#[test]
fn connection_limits_per_room_and_per_server() {
    let rooms = limited(|l| {
        l.max_connections_per_room = 2;
        l.max_connections = 3;
    });
    let a = RoomId::parse("a").unwrap();
    let b = RoomId::parse("b").unwrap();
    let outbox = || Arc::new(Outbox::new(BIG));
    let first = rooms.connect(&a, outbox(), false).unwrap();
    let _second = rooms.connect(&a, outbox(), false).unwrap();
    assert_eq!(rooms.connect(&a, outbox(), false).err(), Some(CloseReason::RoomFull));
    let _third = rooms.connect(&b, outbox(), false).unwrap();
    assert_eq!(rooms.connect(&b, outbox(), false).err(), Some(CloseReason::ServerFull));
    drop(first);
    assert_eq!(rooms.connection_count(), 2);
    rooms.connect(&b, outbox(), false).unwrap();
}

#[test]
fn room_limit_refuses_new_rooms_only() {
    let rooms = limited(|l| l.max_rooms = 1);
    let room = rooms.create().unwrap();
    assert_eq!(rooms.create().err(), Some(OpenRoomError::TooManyRooms(TooManyRooms { max: 1 })));
    assert!(rooms.get_or_create(room.id()).is_ok());
    let other = RoomId::parse("other").unwrap();
    assert_eq!(rooms.connect(&other, Arc::new(Outbox::new(BIG)), false).err(), Some(CloseReason::TooManyRooms));
}

/// The room TTL of the expiry tests; they pass instants, so its length costs nothing.
const TTL: Duration = Duration::from_secs(60);
/// Far below the TTL: the smallest step the expiry tests take around its boundary.
const TICK: Duration = Duration::from_millis(1);

/// `N` new rooms in `rooms`, and the instant the expiry tests count from. It is read after the rooms were created,
/// so the write made there is exactly each room's last activity.
fn active_at_t0<const N: usize>(rooms: Rooms) -> (Rooms, [Arc<Room>; N], Instant) {
    let created: [_; N] = std::array::from_fn(|_| rooms.create().unwrap());
    let t0 = Instant::now();
    for room in &created {
        room.handle_http_at(push("k", 0, Action::Append), t0).unwrap();
    }
    (rooms, created, t0)
}

fn expiring() -> Rooms {
    limited(|l| l.room_ttl = TTL)
}

#[test]
fn an_idle_room_expires_a_ttl_after_its_last_write() {
    let (rooms, [room], t0) = active_at_t0(expiring());
    assert_eq!(rooms.expire_idle(t0), 0);
    assert_eq!(rooms.expire_idle(t0 + TTL - TICK), 0);
    assert_eq!(rooms.expire_idle(t0 + TTL), 1);
    assert!(rooms.get(room.id()).is_none());
    assert!(rooms.is_empty());
}

#[test]
fn the_default_ttl_is_a_day() {
    let (rooms, [_room], t0) = active_at_t0(limited(|_| {}));
    let day = Duration::from_secs(24 * 60 * 60);
    assert_eq!(rooms.expire_idle(t0 + day - TICK), 0);
    assert_eq!(rooms.expire_idle(t0 + day), 1);
}

#[test]
fn a_room_with_a_connection_never_expires() {
    let (rooms, [idle], t0) = active_at_t0(expiring());
    let busy = RoomId::parse("busy").unwrap();
    let _conn = rooms.connect(&busy, Arc::new(Outbox::new(BIG)), false).unwrap();
    drop(idle);
    assert_eq!(rooms.expire_idle(t0 + 1_000 * TTL), 1);
    assert!(rooms.get(&busy).is_some());
    assert_eq!(rooms.allocated_rooms(), 1, "the expired room's memory is freed");
}

#[test]
fn stored_writes_keep_a_room_alive_and_relays_do_not() {
    let (rooms, [written, relayed], t0) = active_at_t0(expiring());
    written.handle_http_at(push("k", 1, Action::Replace), t0 + TTL / 2).unwrap();
    relayed.handle_http_at(push("cursor", 1, Action::Relay), t0 + TTL / 2).unwrap();
    assert_eq!(rooms.expire_idle(t0 + TTL), 1);
    assert!(rooms.get(relayed.id()).is_none(), "a relay is not activity");
    assert_eq!(rooms.expire_idle(t0 + TTL / 2 + TTL - TICK), 0);
    assert_eq!(rooms.expire_idle(t0 + TTL / 2 + TTL), 1);
}

#[test]
fn a_room_expires_a_ttl_after_its_last_connection_left() {
    let (rooms, [room], t0) = active_at_t0(expiring());
    let conn = room.connect_at(Arc::new(Outbox::new(BIG)), false, t0).unwrap();
    conn.handle_at(push("cursor", 1, Action::Relay), t0 + TTL);
    assert_eq!(rooms.expire_idle(t0 + 2 * TTL - TICK), 0, "connected");
    conn.close_at(t0 + 2 * TTL);
    assert_eq!(rooms.connection_count(), 0, "closing then dropping counts the connection out once");
    assert_eq!(rooms.expire_idle(t0 + 3 * TTL - TICK), 0);
    assert_eq!(rooms.expire_idle(t0 + 3 * TTL), 1);
}

#[test]
fn an_earlier_instant_arriving_late_does_not_shorten_the_ttl() {
    let (rooms, [room], t0) = active_at_t0(expiring());
    room.handle_http_at(push("k", 1, Action::Append), t0 + TTL).unwrap();
    // A caller that read the clock before the write above but took the room's lock after it.
    room.handle_http_at(push("k", 2, Action::Append), t0).unwrap();
    assert_eq!(rooms.expire_idle(t0 + 2 * TTL - TICK), 0);
    assert_eq!(rooms.expire_idle(t0 + 2 * TTL), 1);
}

/// A journal that keeps what the engine hands it, and can be told to refuse writes or to serve a stored room.
#[derive(Default)]
struct RecordingJournal {
    records: std::sync::Mutex<Vec<Record>>,
    refuse: std::sync::Mutex<Option<String>>,
    stored: std::sync::Mutex<Option<StoredRoom>>,
}

impl Journal for RecordingJournal {
    fn writable(&self) -> Result<(), StorageUnavailable> {
        self.refuse.lock().unwrap().clone().map_or(Ok(()), |cause| Err(StorageUnavailable(cause)))
    }
    fn record(&self, record: Record) {
        self.records.lock().unwrap().push(record);
    }
    fn load(&self, _room: &RoomId) -> Result<Option<StoredRoom>, StorageUnavailable> {
        Ok(self.stored.lock().unwrap().clone())
    }
    fn is_durable(&self) -> bool {
        true
    }
}

fn journaled() -> (Arc<RecordingJournal>, Rooms) {
    let journal = Arc::new(RecordingJournal::default());
    (journal.clone(), Rooms::with_journal(Limits::default(), journal))
}

fn entry(n: i64, seq: u64) -> Entry {
    Entry { value: value(n), seq }
}

#[test]
fn stored_writes_yield_records_in_order_and_relays_none() {
    let (journal, rooms) = journaled();
    let room = rooms.create().unwrap();
    let id = room.id().clone();
    room.http(push("cursor", 1, Action::Relay)).unwrap();
    assert!(journal.records.lock().unwrap().is_empty(), "a relay touches no storage");
    room.http(push("k", 2, Action::Append)).unwrap();
    room.http(push("k", 3, Action::Append)).unwrap();
    room.http(push("k", 4, Action::Compact { seq: 3 })).unwrap();
    room.http(push("k", 5, Action::Compact { seq: 1 })).unwrap(); // removes nothing: ignored, no record
    room.http(push("r", 6, Action::Replace)).unwrap();
    let key = |k: &str| -> Key { k.into() };
    assert_eq!(
        *journal.records.lock().unwrap(),
        vec![
            Record::Created { room: id.clone(), epoch: room.epoch().clone() },
            Record::Append { room: id.clone(), key: key("k"), entry: entry(2, 2) },
            Record::Append { room: id.clone(), key: key("k"), entry: entry(3, 3) },
            Record::Compact { room: id.clone(), key: key("k"), entry: entry(4, 3) },
            Record::Replace { room: id.clone(), key: key("r"), entry: entry(6, 4) },
        ]
    );
    rooms.checkpoint();
    assert_eq!(journal.records.lock().unwrap().last(), Some(&Record::Seq { room: id, seq: 4 }));
}

#[test]
fn a_refusing_store_refuses_stored_writes_but_not_relays() {
    let (journal, rooms) = journaled();
    let room = rooms.create().unwrap();
    let conn = connect(&room);
    conn.handle(get("k", Replay::None));
    *journal.refuse.lock().unwrap() = Some("no space left on device".into());
    conn.handle(push("k", 1, Action::Append));
    conn.handle(push("k", 2, Action::Relay));
    assert_eq!(
        received(&conn),
        vec![
            ServerMessage::Error { message: "write refused: storage unavailable: no space left on device".into() },
            pushed("k", 2, 1),
        ]
    );
    assert!(journal.records.lock().unwrap().is_empty());
    assert_eq!(
        room.http(push("k", 3, Action::Replace)),
        Err(EngineError::Storage(StorageUnavailable("no space left on device".into())))
    );
}

#[test]
fn a_stored_room_is_restored_with_its_epoch_seq_streams_and_limits() {
    let (journal, rooms) = journaled();
    *journal.stored.lock().unwrap() = Some(StoredRoom {
        epoch: "00000000000000aa".into(),
        seq: 9,
        keys: vec![("k".into(), vec![entry(1, 4), entry(2, 9)])],
    });
    let room = rooms.get_or_create(&RoomId::parse("stored").unwrap()).unwrap();
    assert_eq!(&**room.epoch(), "00000000000000aa");
    assert_eq!(room.current_seq(), 9);
    assert_eq!(stored(&room, "k"), vec![(1, 4), (2, 9)]);
    // The key counts once, as it did when it was first written.
    assert_eq!(room.stored_bytes(), limits::key_cost(1) + 2 * limits::entry_cost(value(1).len()));
    room.http(push("k", 3, Action::Append)).unwrap();
    // Known to the store already: no second Created record, and seqs go on from the stored one.
    assert_eq!(
        *journal.records.lock().unwrap(),
        vec![Record::Append { room: room.id().clone(), key: "k".into(), entry: entry(3, 10) }]
    );
}

#[test]
fn expiry_removes_the_stored_room() {
    let journal = Arc::new(RecordingJournal::default());
    let limits = Limits { room_ttl: TTL, ..Limits::default() };
    let (rooms, [room], t0) = active_at_t0(Rooms::with_journal(limits, journal.clone()));
    let id = room.id().clone();
    drop(room);
    assert_eq!(rooms.expire_idle(t0 + TTL), 1);
    assert_eq!(journal.records.lock().unwrap().last(), Some(&Record::Removed { room: id }));
}

/// [`Room::handle_http`], with the reply as the message it carries.
trait HttpReply {
    fn http(&self, message: ClientMessage) -> Result<Option<ServerMessage>, EngineError>;
}

impl HttpReply for Room {
    fn http(&self, message: ClientMessage) -> Result<Option<ServerMessage>, EngineError> {
        self.handle_http(message).map(|reply| reply.map(|outgoing| outgoing.message().clone()))
    }
}

/// What a connection has queued, as the shared messages themselves.
fn queued(conn: &Member) -> Vec<Outgoing> {
    let mut batch = Vec::new();
    conn.outbox().try_batch(&mut batch, usize::MAX).unwrap();
    batch
}

/// Whether two messages share one encoding (the same bytes in memory, not equal copies).
fn same_encoding(a: &Outgoing, b: &Outgoing) -> bool {
    let dialect = crate::protocol::Dialect::Extended;
    std::ptr::eq(a.json(dialect).as_ptr(), b.json(dialect).as_ptr())
}

#[test]
fn replays_of_a_whole_stream_share_one_encoded_copy_until_it_changes() {
    let rooms = Rooms::new(Limits::default());
    let room = rooms.create().unwrap();
    room.handle_http(push("k", 1, Action::Append)).unwrap();
    room.handle_http(push("k", 2, Action::Append)).unwrap();
    let (a, b, c) = (connect(&room), connect(&room), connect(&room));
    a.handle(get("k", Replay::After(0)));
    b.handle(get("k", Replay::After(0)));
    let http = room.handle_http(get("k", Replay::After(0))).unwrap().unwrap();
    c.handle(get("k", Replay::After(1)));
    let (first, second, partial) = (queued(&a).remove(0), queued(&b).remove(0), queued(&c).remove(0));
    assert!(same_encoding(&first, &second), "two connections' replays share one copy");
    assert!(same_encoding(&first, &http), "so does an HTTP get's reply");
    assert_eq!(partial.message(), &init(&room, "k", &[(2, 2)]), "a partial replay is its own");

    room.handle_http(push("k", 3, Action::Append)).unwrap();
    a.handle(get("k", Replay::After(0)));
    let after_write = queued(&a).pop().unwrap();
    assert_eq!(after_write.message(), &init(&room, "k", &[(1, 1), (2, 2), (3, 3)]), "a write makes a new replay");
    assert!(!same_encoding(&first, &after_write));
    room.handle_http(push("k", 9, Action::Compact { seq: 3 })).unwrap();
    assert_eq!(stored(&room, "k"), [(9, 3)], "and so does a compact");
}

#[test]
fn an_evicted_room_closes_its_connections_and_takes_no_more_writes() {
    let rooms = Rooms::new(Limits::default());
    let id = RoomId::parse("moving").unwrap();
    let room = rooms.get_or_create(&id).unwrap();
    let (a, b) = (connect(&room), connect(&room));
    a.handle(push("k", 1, Action::Append));
    assert!(rooms.evict(&id, CloseReason::GoingAway));
    assert!(rooms.get(&id).is_none(), "the registry forgets it");
    assert_eq!(a.outbox().closed(), Some(CloseReason::GoingAway));
    assert_eq!(b.outbox().closed(), Some(CloseReason::GoingAway));
    // A write that was already on its way is refused rather than forking the room's history.
    assert!(matches!(room.http(push("k", 2, Action::Append)), Err(EngineError::Evicted)));
    assert_eq!(stored(&room, "k"), vec![(1, 1)]);
    assert!(!rooms.evict(&id, CloseReason::GoingAway), "twice is nothing");
}
