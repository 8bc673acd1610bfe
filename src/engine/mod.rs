//! The room engine: rooms, keys, stored streams and fan-out. It knows nothing of sockets; both transports drive it
//! through [`Rooms`], [`Room`] and [`Member`], so WebSocket and WebTransport clients of a room share one order.

mod limits;
mod outbox;
mod record;
mod room;
mod room_id;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

pub use limits::Limits;
pub use outbox::Outbox;
pub use record::{Journal, MemoryJournal, Record, StorageUnavailable, StoredRoom};
use room::Census;
pub(crate) use room::new_epoch;
pub use room::{ConnId, ConnectionCounts, EngineError, KeySnapshot, Member, Room, RoomSnapshot};
pub use room_id::{InvalidRoomId, MAX_ROOM_ID_LEN, RoomId};

use crate::close::CloseReason;
use crate::outgoing::Outgoing;
use crate::protocol::ClientMessage;

/// The registry of live rooms.
///
/// Lock order: the registry's lock, then a room's. Connecting and HTTP sends happen under the registry lock so that
/// [`Rooms::expire_idle`] can never remove a room between finding it and using it. A room not in memory is read
/// from the journal outside the registry lock, so a slow disk never holds up other rooms.
///
/// The registry holds no clock either (see the `room` module): [`Rooms::expire_idle`] is told the time, and the
/// entries below that transports call read it once and pass it to the room.
pub struct Rooms {
    rooms: Mutex<HashMap<RoomId, Arc<Room>>>,
    limits: Arc<Limits>,
    census: Arc<Census>,
    journal: Arc<dyn Journal>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("too many rooms on this server (at most {max})")]
pub struct TooManyRooms {
    pub max: usize,
}

/// Why a room could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenRoomError {
    #[error(transparent)]
    TooManyRooms(#[from] TooManyRooms),
    /// The room is stored but cannot be read (store down, corrupt record): it is not served rather than served
    /// wrong.
    #[error(transparent)]
    Storage(#[from] StorageUnavailable),
}

impl OpenRoomError {
    fn close_reason(&self) -> CloseReason {
        match self {
            OpenRoomError::TooManyRooms(_) => CloseReason::TooManyRooms,
            OpenRoomError::Storage(_) => CloseReason::StorageUnavailable,
        }
    }
}

impl Default for Rooms {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Rooms {
    /// Rooms kept in memory only.
    pub fn new(limits: Limits) -> Self {
        Self::with_journal(limits, Arc::new(MemoryJournal))
    }

    /// Rooms whose stored writes go to `journal`, loaded from it on first use.
    pub fn with_journal(limits: Limits, journal: Arc<dyn Journal>) -> Self {
        Rooms { rooms: Mutex::default(), limits: Arc::new(limits), census: Arc::default(), journal }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Creates a room with a fresh random id.
    pub fn create(&self) -> Result<Arc<Room>, OpenRoomError> {
        self.get_or_create(&RoomId::random())
    }

    /// The room with this id: in memory, else loaded from the store, else created with a new epoch. A shared room
    /// URL keeps working after a restart; a new epoch tells reconnecting clients their history is gone.
    pub fn get_or_create(&self, id: &RoomId) -> Result<Arc<Room>, OpenRoomError> {
        self.open(id, Instant::now(), |room| Ok(room.clone()))
    }

    /// Attaches a connection to the room `id` (loaded or created if needed).
    pub fn connect(&self, id: &RoomId, outbox: Arc<Outbox>, debug: bool) -> Result<Member, CloseReason> {
        let now = Instant::now();
        let connected = self.open(id, now, |room| room.connect_at(outbox, debug, now).map_err(OpenOr::Use));
        connected.map_err(|error| match error {
            OpenOr::Open(error) => error.close_reason(),
            OpenOr::Use(reason) => reason,
        })
    }

    /// Handles one message sent over HTTP to the room `id` (loaded or created if needed).
    pub fn handle_http(&self, id: &RoomId, message: ClientMessage) -> Result<Option<Outgoing>, HttpSendError> {
        let now = Instant::now();
        let handled = self.open(id, now, |room| room.handle_http_at(message, now).map_err(OpenOr::Use));
        handled.map_err(|error| match error {
            OpenOr::Open(error) => HttpSendError::Open(error),
            OpenOr::Use(error) => HttpSendError::Engine(error),
        })
    }

    /// Queues every stored room's last seq for the store: called at a clean stop, after the last client is gone.
    pub fn checkpoint(&self) {
        for room in self.lock().values() {
            room.checkpoint();
        }
    }

    /// The room with this id, if it exists.
    pub fn get(&self, id: &RoomId) -> Option<Arc<Room>> {
        self.lock().get(id).cloned()
    }

    /// Number of live rooms.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live connections across all rooms.
    pub fn connection_count(&self) -> usize {
        self.census.connections.load(Ordering::Acquire)
    }

    /// Room objects still in memory, including any no longer in the registry (there should be none once their
    /// last connection has gone): the soak test watches this for leaks.
    pub fn allocated_rooms(&self) -> usize {
        self.census.allocated_rooms.load(Ordering::Acquire)
    }

    /// Takes `id` out of this registry and closes its connections with `reason` (see [`Room::evict`]); the next
    /// use of the room opens it afresh. `false` if it was not here.
    pub fn evict(&self, id: &RoomId, reason: CloseReason) -> bool {
        let Some(room) = self.lock().remove(id) else { return false };
        room.evict(reason);
        true
    }

    /// Removes rooms that, at `now`, have had no connection and no write for the configured TTL, from memory and
    /// from the store; returns how many went.
    pub fn expire_idle(&self, now: Instant) -> usize {
        let mut rooms = self.lock();
        let before = rooms.len();
        rooms.retain(|_, room| {
            let expired = room.is_expired(self.limits.room_ttl, now);
            if expired {
                room.remove_from_store();
            }
            !expired
        });
        before - rooms.len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RoomId, Arc<Room>>> {
        self.rooms.lock().expect("rooms lock poisoned")
    }

    /// Finds, loads or creates (as active at `now`) the room `id` and runs `using` on it under the registry lock (so
    /// expiry cannot remove it in between). Loading happens outside the lock; if two callers load the same room at
    /// once, the first to come back wins and the other's copy is dropped unused.
    fn open<T, E: From<OpenRoomError>>(
        &self,
        id: &RoomId,
        now: Instant,
        using: impl FnOnce(&Arc<Room>) -> Result<T, E>,
    ) -> Result<T, E> {
        {
            let rooms = self.lock();
            if let Some(room) = rooms.get(id) {
                return using(room);
            }
            self.check_room_limit(&rooms).map_err(OpenRoomError::from)?;
        }
        let stored = self.journal.load(id).map_err(OpenRoomError::from)?;
        let mut rooms = self.lock();
        if let Some(room) = rooms.get(id) {
            return using(room);
        }
        self.check_room_limit(&rooms).map_err(OpenRoomError::from)?;
        let (limits, census, journal) = (self.limits.clone(), self.census.clone(), self.journal.clone());
        let room = Arc::new(match stored {
            Some(stored) => Room::restore(id.clone(), stored, true, limits, census, journal, now),
            None => Room::new(id.clone(), limits, census, journal, now),
        });
        rooms.insert(id.clone(), room.clone());
        using(&room)
    }

    fn check_room_limit(&self, rooms: &HashMap<RoomId, Arc<Room>>) -> Result<(), TooManyRooms> {
        if rooms.len() >= self.limits.max_rooms {
            return Err(TooManyRooms { max: self.limits.max_rooms });
        }
        Ok(())
    }
}

/// A failure either to open a room or in what was done with it.
enum OpenOr<E> {
    Open(OpenRoomError),
    Use(E),
}

impl<E> From<OpenRoomError> for OpenOr<E> {
    fn from(error: OpenRoomError) -> Self {
        OpenOr::Open(error)
    }
}

/// Why an HTTP send was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpSendError {
    #[error(transparent)]
    Open(#[from] OpenRoomError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}
