//! The room engine: rooms, keys, stored streams and fan-out. It knows nothing of sockets; both transports drive it
//! through [`Rooms`], [`Room`] and [`Connection`], so WebSocket and WebTransport clients of a room share one order.

mod outbox;
mod room;
mod room_id;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use outbox::Outbox;
pub use room::{ConnId, Connection, EngineError, Room};
pub use room_id::{InvalidRoomId, MAX_ROOM_ID_LEN, RoomId};

/// The registry of live rooms.
#[derive(Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<RoomId, Arc<Room>>>,
}

impl Rooms {
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a room with a fresh random id.
    pub fn create(&self) -> Arc<Room> {
        self.get_or_create(&RoomId::random())
    }

    /// The room with this id, created (with a new epoch) if it does not exist: a shared room URL keeps working
    /// after a server restart, and the new epoch tells reconnecting clients their history is gone.
    pub fn get_or_create(&self, id: &RoomId) -> Arc<Room> {
        let mut rooms = self.rooms.lock().expect("rooms lock poisoned");
        rooms.entry(id.clone()).or_insert_with(|| Arc::new(Room::new(id.clone()))).clone()
    }

    /// The room with this id, if it exists.
    pub fn get(&self, id: &RoomId) -> Option<Arc<Room>> {
        self.rooms.lock().expect("rooms lock poisoned").get(id).cloned()
    }

    /// Number of live rooms.
    pub fn len(&self) -> usize {
        self.rooms.lock().expect("rooms lock poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
