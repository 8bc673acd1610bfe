//! The room engine: rooms, keys, stored streams and fan-out. It knows nothing of sockets; both transports drive it
//! through [`Rooms`], [`Room`] and [`Connection`], so WebSocket and WebTransport clients of a room share one order.

mod limits;
mod outbox;
mod room;
mod room_id;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

pub use limits::Limits;
pub use outbox::Outbox;
use room::Census;
pub use room::{ConnId, Connection, ConnectionCounts, EngineError, KeySnapshot, Room, RoomSnapshot};
pub use room_id::{InvalidRoomId, MAX_ROOM_ID_LEN, RoomId};

use crate::close::CloseReason;
use crate::protocol::{ClientMessage, ServerMessage};

/// The registry of live rooms.
///
/// Lock order: the registry's lock, then a room's. Connecting and HTTP sends happen under the registry lock so that
/// [`Rooms::expire_idle`] can never remove a room between finding it and using it.
pub struct Rooms {
    rooms: Mutex<HashMap<RoomId, Arc<Room>>>,
    limits: Arc<Limits>,
    census: Arc<Census>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("too many rooms on this server (at most {max})")]
pub struct TooManyRooms {
    pub max: usize,
}

impl Default for Rooms {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Rooms {
    pub fn new(limits: Limits) -> Self {
        Rooms { rooms: Mutex::default(), limits: Arc::new(limits), census: Arc::default() }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Creates a room with a fresh random id.
    pub fn create(&self) -> Result<Arc<Room>, TooManyRooms> {
        self.get_or_create(&RoomId::random())
    }

    /// The room with this id, created (with a new epoch) if it does not exist: a shared room URL keeps working
    /// after a server restart, and the new epoch tells reconnecting clients their history is gone.
    pub fn get_or_create(&self, id: &RoomId) -> Result<Arc<Room>, TooManyRooms> {
        Self::find_or_create(&mut self.lock(), id, &self.limits, &self.census)
    }

    /// Attaches a connection to the room `id` (created if needed).
    pub fn connect(&self, id: &RoomId, outbox: Arc<Outbox>, debug: bool) -> Result<Connection, CloseReason> {
        let mut rooms = self.lock();
        let room =
            Self::find_or_create(&mut rooms, id, &self.limits, &self.census).map_err(|_| CloseReason::TooManyRooms)?;
        room.connect(outbox, debug)
    }

    /// Handles one message sent over HTTP to the room `id` (created if needed).
    pub fn handle_http(&self, id: &RoomId, message: ClientMessage) -> Result<Option<ServerMessage>, HttpSendError> {
        let mut rooms = self.lock();
        let room = Self::find_or_create(&mut rooms, id, &self.limits, &self.census)?;
        Ok(room.handle_http(message)?)
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

    /// Removes rooms with no connection and no write for the configured TTL; returns how many went.
    pub fn expire_idle(&self) -> usize {
        let mut rooms = self.lock();
        let before = rooms.len();
        rooms.retain(|_, room| !room.is_expired(self.limits.room_ttl));
        before - rooms.len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RoomId, Arc<Room>>> {
        self.rooms.lock().expect("rooms lock poisoned")
    }

    fn find_or_create(
        rooms: &mut HashMap<RoomId, Arc<Room>>,
        id: &RoomId,
        limits: &Arc<Limits>,
        census: &Arc<Census>,
    ) -> Result<Arc<Room>, TooManyRooms> {
        if let Some(room) = rooms.get(id) {
            return Ok(room.clone());
        }
        if rooms.len() >= limits.max_rooms {
            return Err(TooManyRooms { max: limits.max_rooms });
        }
        let room = Arc::new(Room::new(id.clone(), limits.clone(), census.clone()));
        rooms.insert(id.clone(), room.clone());
        Ok(room)
    }
}

/// Why an HTTP send was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpSendError {
    #[error(transparent)]
    TooManyRooms(#[from] TooManyRooms),
    #[error(transparent)]
    Engine(#[from] EngineError),
}
