//! Room-affine scheduling (`--room-threads N`): every WebSocket and WebTransport connection of a room runs on the same
//! thread. (Connections forwarded from other nodes of a cluster, and HTTP sends, run on the main runtime.)
//!
//! A relay to a room wakes the writer task of every subscriber. On tokio's multi-threaded runtime the woken tasks
//! land on the waking worker's queue and the idle workers are woken to steal them, so one fan-out costs a dozen or
//! more context switches across threads (see docs/benchmarks.md). With room threads, each room is pinned by its id
//! to one of N single-threaded runtimes: the reader that applies a relay and the writers it wakes share a thread, so
//! the wake-ups stay local and the fan-out's writes run back to back. Rooms on different threads still run in
//! parallel. Sockets stay registered with the main runtime's I/O driver, which wakes a connection's reader across
//! threads once per read; the fan-out's many wake-ups are the ones that stay on one thread.
//!
//! `0` (the default) runs connections on the main runtime like every other task.

use std::future::Future;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::engine::RoomId;

/// The room threads, each running a single-threaded runtime until this is dropped.
#[derive(Default)]
pub struct RoomThreads {
    handles: Vec<Handle>,
    /// Dropped with this, which ends each thread's runtime. Not joined: the last holder of the server's context
    /// may be a connection on one of these threads, and a thread cannot wait for itself.
    _stops: Vec<oneshot::Sender<()>>,
}

impl RoomThreads {
    /// Starts `count` threads (none for 0).
    pub fn start(count: usize) -> std::io::Result<Self> {
        let mut room_threads = RoomThreads::default();
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            room_threads.handles.push(runtime.handle().clone());
            std::thread::Builder::new()
                .name(format!("driftdb-room-{index}"))
                .spawn(move || drop(runtime.block_on(stopped)))?;
            room_threads._stops.push(stop);
        }
        Ok(room_threads)
    }

    /// Runs `connection` on `room`'s thread (here, without room threads) and waits for it to end. It keeps the
    /// caller's tracing span.
    pub async fn run<F>(&self, room: &RoomId, connection: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match self.handle_for(room) {
            Some(handle) => {
                // A panic in the connection ends only that connection, as it would in a task of its own.
                let _ = handle.spawn(connection.in_current_span()).await;
            }
            None => connection.await,
        }
    }

    fn handle_for(&self, room: &RoomId) -> Option<&Handle> {
        if self.handles.is_empty() {
            return None;
        }
        // A fixed hasher: a room maps to the same thread for the process's whole life.
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(room);
        self.handles.get((hash % self.handles.len() as u64) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_room_always_runs_on_the_same_thread_and_rooms_spread() {
        let threads = RoomThreads::start(2).expect("threads start");
        let thread_of = |room: &'static str| {
            let room = RoomId::parse(room).expect("a valid id");
            let threads = &threads;
            async move {
                let (tx, rx) = oneshot::channel();
                threads
                    .run(&room, async move { drop(tx.send(std::thread::current().name().map(str::to_owned))) })
                    .await;
                rx.await.expect("the connection ran")
            }
        };
        let first = thread_of("room-a").await;
        assert!(first.as_deref().is_some_and(|name| name.starts_with("driftdb-room-")), "{first:?}");
        assert_eq!(thread_of("room-a").await, first, "the same room, the same thread");
        let mut seen = std::collections::HashSet::new();
        for room in ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"] {
            seen.insert(thread_of(room).await);
        }
        assert_eq!(seen.len(), 2, "eight rooms use both threads");
    }

    #[tokio::test]
    async fn without_room_threads_a_connection_runs_where_it_is_called() {
        let threads = RoomThreads::start(0).expect("nothing to start");
        let here = std::thread::current().id();
        let room = RoomId::parse("room").expect("a valid id");
        let (tx, rx) = oneshot::channel();
        threads
            .run(&room, async move {
                let _ = tx.send(std::thread::current().id());
            })
            .await;
        assert_eq!(rx.await.expect("it ran"), here);
    }
}
