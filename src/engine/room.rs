//! A room: the single sequencer of its keys.
//!
//! Every action is applied under the room's lock, which also covers handing the resulting message to each
//! subscriber's [`Outbox`] (a non-blocking push). That one critical section is what makes the guarantees hold: all
//! subscribers of a key see one order, a `get`'s replay and its live pushes neither overlap nor leave a gap, and a
//! sender's `stream_size` follows its own echo. Nothing in here awaits, so the lock is never held across an await.
//!
//! Time: a room holds no clock. Whatever marks activity or checks expiry takes `now` from its caller, so expiry is
//! a function of the instants passed in and tests need no sleeps. The entries the transports call per connection or
//! per message ([`Room::connect`], [`Room::handle_http`], [`Member::handle`], dropping a [`Member`]) read
//! `Instant::now()` once, there, and pass it down: keeping their signatures spares every transport a change, and
//! the `_at` form beside each takes the instant from its caller instead.

mod inspect;

pub use inspect::{ConnectionCounts, KeySnapshot, RoomSnapshot};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::limits::{Limits, entry_cost, key_cost};
use super::outbox::Outbox;
use super::record::{Journal, Record, StorageUnavailable, StoredRoom};
use super::room_id::{RoomId, random_u128};
use crate::close::CloseReason;
use crate::metrics::Transport;
use crate::outgoing::{Outgoing, WeakOutgoing};
use crate::protocol::{Action, ClientMessage, Entry, Key, Replay, ServerMessage, Value};

/// Server-wide counts kept by the rooms themselves, so they stay right however a room or connection goes away.
#[derive(Default)]
pub(crate) struct Census {
    /// Live connections across every room.
    pub(crate) connections: AtomicUsize,
    /// Room objects still in memory, in the registry or not: after expiry this must fall back, or rooms leak.
    pub(crate) allocated_rooms: AtomicUsize,
}

impl Drop for Room {
    fn drop(&mut self) {
        self.census.allocated_rooms.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Identifies a connection within its room.
pub type ConnId = u64;

/// Why the engine refused a message. The text goes back to the sender in an `error` message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    #[error("compact seq {requested} is ahead of the room's current seq {current}")]
    CompactAhead { requested: u64, current: u64 },
    #[error("only relay pushes can be volatile")]
    VolatileNotRelay,
    #[error("room key limit reached: a room holds at most {max} keys")]
    KeyLimit { max: usize },
    #[error("room storage limit reached: a room stores at most {max} bytes; compact or replace to make room")]
    StorageLimit { max: usize },
    /// The room is no longer served here (its cluster lease moved on): writes would fork its history.
    #[error("the room moved to another node; reconnect")]
    Evicted,
    /// The store cannot take writes (full disk, read-only directory, queue full): the write is refused, relays
    /// still flow.
    #[error("write refused: {0}")]
    Storage(#[from] StorageUnavailable),
}

pub struct Room {
    id: RoomId,
    epoch: Arc<str>,
    limits: Arc<Limits>,
    /// Server-wide counts, shared with the registry.
    census: Arc<Census>,
    /// Where stored writes go; relays never touch it.
    journal: Arc<dyn Journal>,
    state: Mutex<RoomState>,
}

struct RoomState {
    seq: u64,
    /// Whether the store knows this room (its `Created` record was queued), so the epoch is written once.
    known_to_store: bool,
    /// Bytes of stored keys and entries, as accounted by [`key_cost`] and [`entry_cost`].
    stored_bytes: usize,
    /// Last connect, disconnect or write: rooms idle past their TTL expire. Only ever moved forward (see
    /// [`RoomState::touch`]).
    last_active: Instant,
    keys: HashMap<Key, KeyState>,
    conns: HashMap<ConnId, ConnState>,
    /// Connections opened with `?debug=true`: they see every stored stream and every relay.
    debug: HashMap<ConnId, Arc<Outbox>>,
    next_conn: ConnId,
    /// The room left this node (see [`Room::evict`]): it takes no more writes.
    evicted: bool,
}

#[derive(Default)]
struct KeyState {
    /// Stored entries in ascending seq order. Changed only through [`KeyState::stream_mut`].
    stream: Vec<Entry>,
    subscribers: HashMap<ConnId, Arc<Outbox>>,
    /// The `init` replaying the whole stream, while a queue or a write still holds it: every replay of the whole
    /// stream shares it (and its encodings) until the stream changes, so a thousand `get`s of a 16 MB key hold one
    /// encoded copy, not a thousand. Weak, so that the copy goes with its last reader.
    full_replay: WeakOutgoing,
}

impl KeyState {
    /// The stream, to change it: the shared replay no longer shows it.
    fn stream_mut(&mut self) -> &mut Vec<Entry> {
        self.full_replay = WeakOutgoing::default();
        &mut self.stream
    }

    /// The `init` of `key` replaying the entries after seq `after`: the shared one when that is the whole stream.
    fn replay(&mut self, key: &Key, after: u64, epoch: &Arc<str>) -> Outgoing {
        let start = self.stream.partition_point(|e| e.seq <= after);
        let init = |data| Outgoing::new(ServerMessage::Init { key: key.clone(), data, epoch: epoch.clone() });
        if start > 0 {
            return init(self.stream[start..].to_vec());
        }
        if let Some(shared) = self.full_replay.upgrade() {
            return shared;
        }
        let full = init(self.stream.clone());
        self.full_replay = full.downgrade();
        full
    }
}

struct ConnState {
    subscriptions: HashSet<Key>,
    /// Where its messages go, so that the room can close every connection at once (see [`Room::evict`]).
    outbox: Arc<Outbox>,
    /// Which transport carries the connection, for the inspector (set by the transport after connecting).
    transport: Option<Transport>,
}

impl Room {
    /// A new room, created at `now`.
    pub(crate) fn new(
        id: RoomId,
        limits: Arc<Limits>,
        census: Arc<Census>,
        journal: Arc<dyn Journal>,
        now: Instant,
    ) -> Self {
        let stored = StoredRoom { epoch: new_epoch(), seq: 0, keys: Vec::new() };
        Self::restore(id, stored, false, limits, census, journal, now)
    }

    /// Rebuilds a room from what the store holds (`known_to_store`), or starts a new one; it counts as active at
    /// `now`, so a room loaded from the store gets a full TTL before it can expire.
    pub(crate) fn restore(
        id: RoomId,
        stored: StoredRoom,
        known_to_store: bool,
        limits: Arc<Limits>,
        census: Arc<Census>,
        journal: Arc<dyn Journal>,
        now: Instant,
    ) -> Self {
        census.allocated_rooms.fetch_add(1, Ordering::AcqRel);
        // Charged as `store` charges them: each key with a stored entry once, then each entry.
        let stored_bytes = stored
            .keys
            .iter()
            .filter(|(_, stream)| !stream.is_empty())
            .map(|(key, stream)| key_cost(key.len()) + stream.iter().map(|e| entry_cost(e.value.len())).sum::<usize>())
            .sum();
        let keys =
            stored.keys.into_iter().map(|(key, stream)| (key, KeyState { stream, ..KeyState::default() })).collect();
        let state = RoomState {
            seq: stored.seq,
            known_to_store,
            stored_bytes,
            last_active: now,
            keys,
            conns: HashMap::new(),
            debug: HashMap::new(),
            next_conn: 0,
            evicted: false,
        };
        Room { id, epoch: stored.epoch, limits, census, journal, state: Mutex::new(state) }
    }

    /// Stops serving the room here: it takes no more writes and every connection is closed with `reason`. For a
    /// cluster node that lost the room's lease, so that two nodes never accept writes for one room.
    pub fn evict(&self, reason: CloseReason) {
        let mut state = self.lock();
        state.evicted = true;
        for conn in state.conns.values() {
            conn.outbox.close(reason);
        }
    }

    /// Queues this room's last seq for the store (at a clean stop), when the store knows the room.
    pub(crate) fn checkpoint(&self) {
        let state = self.lock();
        if state.known_to_store {
            self.journal.record(Record::Seq { room: self.id.clone(), seq: state.seq });
        }
    }

    /// Queues the removal of this room's stored state (it expired).
    pub(crate) fn remove_from_store(&self) {
        if self.lock().known_to_store {
            self.journal.record(Record::Removed { room: self.id.clone() });
        }
    }

    pub fn id(&self) -> &RoomId {
        &self.id
    }

    /// Changes whenever the room's history is not continuous with what a client may have seen.
    pub fn epoch(&self) -> &Arc<str> {
        &self.epoch
    }

    /// The last seq handed out (0 before the first sequenced message).
    pub fn current_seq(&self) -> u64 {
        self.lock().seq
    }

    /// Live connections in this room.
    pub fn connection_count(&self) -> usize {
        self.lock().conns.len()
    }

    /// Bytes of stored values held by this room.
    pub fn stored_bytes(&self) -> usize {
        self.lock().stored_bytes
    }

    /// Whether, at `now`, the room has had no connection and no write for `ttl`.
    pub(crate) fn is_expired(&self, ttl: Duration, now: Instant) -> bool {
        let state = self.lock();
        // Saturating: an instant older than the last activity (read before another caller's) means "not idle".
        state.conns.is_empty() && now.saturating_duration_since(state.last_active) >= ttl
    }

    /// Attaches a connection whose outgoing messages go to `outbox`. Dropping the returned handle detaches it.
    /// Refused with the close reason when the room or the server is at its connection limit.
    pub fn connect(self: &Arc<Self>, outbox: Arc<Outbox>, debug: bool) -> Result<Member, CloseReason> {
        self.connect_at(outbox, debug, Instant::now())
    }

    /// [`Room::connect`] at `now`.
    pub fn connect_at(self: &Arc<Self>, outbox: Arc<Outbox>, debug: bool, now: Instant) -> Result<Member, CloseReason> {
        let mut state = self.lock();
        if state.conns.len() >= self.limits.max_connections_per_room {
            return Err(CloseReason::RoomFull);
        }
        let max_total = self.limits.max_connections;
        let reserved = self
            .census
            .connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max_total).then_some(n + 1));
        if reserved.is_err() {
            return Err(CloseReason::ServerFull);
        }
        state.touch(now);
        let id = state.next_conn;
        state.next_conn += 1;
        let conn = ConnState { subscriptions: HashSet::new(), outbox: outbox.clone(), transport: None };
        state.conns.insert(id, conn);
        if debug {
            for (key, key_state) in state.keys.iter_mut() {
                if !key_state.stream.is_empty() {
                    outbox.push(key_state.replay(key, 0, &self.epoch));
                }
            }
            state.debug.insert(id, outbox.clone());
        }
        drop(state);
        Ok(Member { room: self.clone(), id, outbox })
    }

    /// Handles a message sent over HTTP (`POST /room/ID/send`): there is no connection, so nothing subscribes and
    /// the direct reply is returned instead of queued.
    pub fn handle_http(&self, message: ClientMessage) -> Result<Option<Outgoing>, EngineError> {
        self.handle_http_at(message, Instant::now())
    }

    /// [`Room::handle_http`] at `now`.
    /// The reply is shared like a queued message: a replay of a whole stream is the one every `get` of it shares.
    pub fn handle_http_at(&self, message: ClientMessage, now: Instant) -> Result<Option<Outgoing>, EngineError> {
        match message {
            ClientMessage::Push { key, value, action, volatile } => {
                let mut state = self.lock();
                let size = state.push(self, key.clone(), value, action, volatile, now)?;
                drop(state);
                Ok(size.map(|size| Outgoing::new(ServerMessage::StreamSize { key, size })))
            }
            ClientMessage::Get { key, replay: Replay::After(after) } => {
                let replay = self.lock().keys.get_mut(&key).map(|k| k.replay(&key, after, &self.epoch));
                let empty = || Outgoing::new(ServerMessage::Init { key, data: Vec::new(), epoch: self.epoch.clone() });
                Ok(Some(replay.unwrap_or_else(empty)))
            }
            ClientMessage::Ping { nonce } => Ok(Some(Outgoing::new(ServerMessage::Pong { nonce }))),
            ClientMessage::Get { replay: Replay::None, .. } | ClientMessage::Unsubscribe { .. } => Ok(None),
            // Tokens are checked before a message reaches the engine (`auth`).
            ClientMessage::Goodbye | ClientMessage::Auth { .. } => Ok(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RoomState> {
        self.state.lock().expect("room lock poisoned")
    }
}

/// 64 random bits: a room created anew (e.g. after a restart) never shares an epoch with its predecessor.
pub(crate) fn new_epoch() -> Arc<str> {
    format!("{:016x}", random_u128() as u64).into()
}

impl RoomState {
    /// Marks the room active at `now`. Never backwards: callers read the clock before taking the room's lock, so a
    /// later lock holder may bring an earlier instant.
    fn touch(&mut self, now: Instant) {
        self.last_active = self.last_active.max(now);
    }

    /// Applies a push at `now`. Returns the key's stored stream size when the sender should be told it (more than
    /// one entry).
    fn push(
        &mut self,
        room: &Room,
        key: Key,
        value: Value,
        action: Action,
        volatile: bool,
        now: Instant,
    ) -> Result<Option<u64>, EngineError> {
        if self.evicted {
            return Err(EngineError::Evicted);
        }
        if volatile && action != Action::Relay {
            return Err(EngineError::VolatileNotRelay);
        }
        self.admit(&room.limits, room.journal.as_ref(), &key, value.len(), action)?;
        // Relays are not activity: they leave nothing behind that would be worth keeping the room for.
        if action != Action::Relay {
            self.touch(now);
        }
        let stored_changed = match action {
            // An ignored compact reports no size either: the sender is behind, and answering would invite it to
            // compact again at the same stale seq, in a loop.
            Action::Compact { seq } => {
                if !self.compact(&key, value.clone(), seq)? {
                    return Ok(None);
                }
                self.journal_write(
                    room,
                    Record::Compact { room: room.id.clone(), key: key.clone(), entry: Entry { value, seq } },
                );
                true
            }
            Action::Relay | Action::Append | Action::Replace => {
                self.seq += 1;
                let entry = Entry { value, seq: self.seq };
                let message = Outgoing::new(ServerMessage::Push {
                    key: key.clone(),
                    value: entry.value.clone(),
                    seq: entry.seq,
                    volatile,
                });
                let record = match action {
                    Action::Append => {
                        Some(Record::Append { room: room.id.clone(), key: key.clone(), entry: entry.clone() })
                    }
                    Action::Replace => {
                        Some(Record::Replace { room: room.id.clone(), key: key.clone(), entry: entry.clone() })
                    }
                    Action::Relay | Action::Compact { .. } => None,
                };
                let stored = self.store(&key, entry, action);
                if let Some(record) = record {
                    self.journal_write(room, record);
                }
                self.fan_out(&key, &message, !stored);
                stored
            }
        };
        if stored_changed {
            self.send_debug_init(room, &key);
        }
        let size = self.keys.get(&key).map_or(0, |k| k.stream.len());
        Ok((size > 1).then_some(size as u64))
    }

    /// Refuses a push that would take the room past its key or storage limit, before it takes a seq.
    fn admit(
        &self,
        limits: &Limits,
        journal: &dyn Journal,
        key: &Key,
        value_len: usize,
        action: Action,
    ) -> Result<(), EngineError> {
        let existing = self.keys.get(key);
        let freed = match (action, existing) {
            (Action::Relay, _) | (_, None) => 0,
            (Action::Append, Some(_)) => 0,
            (Action::Replace, Some(k)) => k.stream.iter().map(|e| entry_cost(e.value.len())).sum(),
            (Action::Compact { seq }, Some(k)) => {
                k.stream.iter().take_while(|e| e.seq <= seq).map(|e| entry_cost(e.value.len())).sum()
            }
        };
        if action == Action::Relay {
            return Ok(());
        }
        journal.writable()?;
        if existing.is_none() && self.keys.len() >= limits.max_keys_per_room {
            return Err(EngineError::KeyLimit { max: limits.max_keys_per_room });
        }
        // A compact of a key without entries stores nothing, so only appends and replaces can store a new key.
        let first_entry =
            existing.is_none_or(|k| k.stream.is_empty()) && matches!(action, Action::Append | Action::Replace);
        let added = entry_cost(value_len) + if first_entry { key_cost(key.len()) } else { 0 };
        if added > freed && self.stored_bytes + added - freed > limits.max_room_bytes {
            return Err(EngineError::StorageLimit { max: limits.max_room_bytes });
        }
        Ok(())
    }

    /// Hands a stored write's record to the journal, preceded by the room's epoch on its first one.
    fn journal_write(&mut self, room: &Room, record: Record) {
        if !self.known_to_store {
            self.known_to_store = true;
            room.journal.record(Record::Created { room: room.id.clone(), epoch: room.epoch.clone() });
        }
        room.journal.record(record);
    }

    /// Stores an appended or replacing entry; returns whether the stored stream changed.
    fn store(&mut self, key: &Key, entry: Entry, action: Action) -> bool {
        if !matches!(action, Action::Append | Action::Replace) {
            return false;
        }
        let stream = self.keys.entry(key.clone()).or_default().stream_mut();
        if stream.is_empty() {
            self.stored_bytes += key_cost(key.len());
        }
        if action == Action::Replace {
            self.stored_bytes -= stream.iter().map(|e| entry_cost(e.value.len())).sum::<usize>();
            stream.clear();
        }
        self.stored_bytes += entry_cost(entry.value.len());
        stream.push(entry);
        true
    }

    /// Replaces entries with seq ≤ `seq` by one entry at `seq`. A compact that would remove nothing is ignored, so
    /// a client that is behind can never store a stale reset. Returns whether the stored stream changed.
    fn compact(&mut self, key: &Key, value: Value, seq: u64) -> Result<bool, EngineError> {
        if seq > self.seq {
            return Err(EngineError::CompactAhead { requested: seq, current: self.seq });
        }
        let Some(key_state) = self.keys.get_mut(key) else {
            return Ok(false);
        };
        let removed = key_state.stream.partition_point(|e| e.seq <= seq);
        if removed == 0 {
            return Ok(false);
        }
        let freed: usize = key_state.stream[..removed].iter().map(|e| entry_cost(e.value.len())).sum();
        self.stored_bytes = self.stored_bytes - freed + entry_cost(value.len());
        key_state.stream_mut().splice(..removed, [Entry { value, seq }]);
        Ok(true)
    }

    /// Hands a push to every subscriber of `key`, and a relay also to debug connections that do not subscribe.
    fn fan_out(&self, key: &Key, message: &Outgoing, is_relay: bool) {
        let subscribers = self.keys.get(key).map(|k| &k.subscribers);
        for outbox in subscribers.into_iter().flat_map(HashMap::values) {
            outbox.push(message.clone());
        }
        if is_relay {
            for (id, outbox) in &self.debug {
                if !subscribers.is_some_and(|s| s.contains_key(id)) {
                    outbox.push(message.clone());
                }
            }
        }
    }

    fn send_debug_init(&mut self, room: &Room, key: &Key) {
        if self.debug.is_empty() {
            return;
        }
        if let Some(key_state) = self.keys.get_mut(key) {
            let message = key_state.replay(key, 0, &room.epoch);
            for outbox in self.debug.values() {
                outbox.push(message.clone());
            }
        }
    }

    fn subscribe(
        &mut self,
        room: &Room,
        conn: ConnId,
        outbox: &Arc<Outbox>,
        key: Key,
        replay: Replay,
    ) -> Result<(), EngineError> {
        if !self.keys.contains_key(&key) && self.keys.len() >= room.limits.max_keys_per_room {
            return Err(EngineError::KeyLimit { max: room.limits.max_keys_per_room });
        }
        let key_state = self.keys.entry(key.clone()).or_default();
        if let Replay::After(after) = replay {
            outbox.push(key_state.replay(&key, after, &room.epoch));
        }
        // A set per key: a second `get` replays again but never doubles later deliveries.
        key_state.subscribers.insert(conn, outbox.clone());
        if let Some(conn_state) = self.conns.get_mut(&conn) {
            conn_state.subscriptions.insert(key);
        }
        Ok(())
    }

    fn unsubscribe(&mut self, conn: ConnId, key: &Key) {
        if let Some(key_state) = self.keys.get_mut(key) {
            key_state.subscribers.remove(&conn);
            if key_state.subscribers.is_empty() && key_state.stream.is_empty() {
                self.keys.remove(key);
            }
        }
    }

    /// Detaches `conn` at `now`; returns whether it was attached (false the second time).
    fn disconnect(&mut self, conn: ConnId, now: Instant) -> bool {
        let Some(conn_state) = self.conns.remove(&conn) else {
            return false;
        };
        self.debug.remove(&conn);
        self.touch(now);
        for key in &conn_state.subscriptions {
            self.unsubscribe(conn, key);
        }
        true
    }
}

/// A connection's membership of a room: what a transport's connection (a WebSocket, a WebTransport session) holds
/// while it is attached. Messages it handles are answered through its outbox; dropping it unsubscribes everything
/// and detaches it from the room. (Named apart from quinn's and h3's `Connection`, which the transports also hold.)
pub struct Member {
    room: Arc<Room>,
    id: ConnId,
    outbox: Arc<Outbox>,
}

impl Member {
    pub fn room(&self) -> &Arc<Room> {
        &self.room
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Records the transport carrying this connection, for the room inspector's counts.
    pub fn set_transport(&self, transport: Transport) {
        if let Some(conn) = self.room.lock().conns.get_mut(&self.id) {
            conn.transport = Some(transport);
        }
    }

    /// Applies one client message; every reply (push echo, init, stream_size, pong, error) goes to the outbox.
    pub fn handle(&self, message: ClientMessage) {
        self.handle_at(message, Instant::now())
    }

    /// [`Member::handle`] at `now`.
    pub fn handle_at(&self, message: ClientMessage, now: Instant) {
        match message {
            ClientMessage::Push { key, value, action, volatile } => {
                let mut state = self.room.lock();
                match state.push(&self.room, key.clone(), value, action, volatile, now) {
                    Ok(Some(size)) => self.reply(ServerMessage::StreamSize { key, size }),
                    Ok(None) => {}
                    Err(error) => self.send_error(error.to_string()),
                }
            }
            ClientMessage::Get { key, replay } => {
                let subscribed = self.room.lock().subscribe(&self.room, self.id, &self.outbox, key, replay);
                if let Err(error) = subscribed {
                    self.send_error(error.to_string());
                }
            }
            ClientMessage::Unsubscribe { key } => {
                let mut state = self.room.lock();
                state.unsubscribe(self.id, &key);
                if let Some(conn_state) = state.conns.get_mut(&self.id) {
                    conn_state.subscriptions.remove(&key);
                }
            }
            ClientMessage::Ping { nonce } => self.reply(ServerMessage::Pong { nonce }),
            ClientMessage::Goodbye | ClientMessage::Auth { .. } => {}
        }
    }

    /// Queues an `error` message for this connection (for example, an undecodable frame).
    pub fn send_error(&self, message: String) {
        self.reply(ServerMessage::Error { message });
    }

    /// Detaches the connection at `now`: what dropping it does at the current time.
    pub fn close_at(self, now: Instant) {
        self.detach(now);
    }

    fn reply(&self, message: ServerMessage) {
        self.outbox.push(Outgoing::new(message));
    }

    /// Idempotent, so that [`Member::close_at`] followed by the drop counts the connection out once.
    fn detach(&self, now: Instant) {
        if self.room.lock().disconnect(self.id, now) {
            self.room.census.connections.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Member {
    /// Drop has no caller to hand it the time, so it reads the clock itself.
    fn drop(&mut self) {
        self.detach(Instant::now());
    }
}
