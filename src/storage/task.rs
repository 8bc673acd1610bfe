//! The storage thread: group commit of queued records, loads in queue order, fault detection and recovery.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::{Backend, BackendError};
use crate::engine::{Journal, Record, RoomId, StorageUnavailable, StoredRoom};

/// How long a failed commit waits before it is tried again (the disk may have space again by then).
const RETRY_AFTER: Duration = Duration::from_millis(500);

enum Request {
    Record(Record),
    Load(RoomId, Sender<Result<Option<StoredRoom>, StorageUnavailable>>),
    /// Commits everything queued before it, then answers.
    Flush(Sender<Result<(), StorageUnavailable>>),
    /// Commits everything queued, marks a clean stop and ends the thread.
    Stop(Sender<Result<(), StorageUnavailable>>),
}

/// What `/metrics` shows of the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageStatus {
    /// `None` while commits succeed; else the cause of the last failure.
    pub fault: Option<String>,
    pub queued_bytes: usize,
    pub committed_records: u64,
    pub commits: u64,
    pub failed_commits: u64,
}

/// State shared between the engine's side (under room locks) and the storage thread.
struct Shared {
    /// Set while commits fail: stored writes are refused with this cause. A `Mutex` is fine: it is read once per
    /// stored write and held for a clone at most.
    fault: Mutex<Option<String>>,
    faulted: AtomicBool,
    queued_bytes: AtomicUsize,
    max_queued_bytes: usize,
    committed_records: AtomicU64,
    commits: AtomicU64,
    failed_commits: AtomicU64,
}

/// The [`Journal`] of a durable store: queues records for the storage thread.
pub struct DiskJournal {
    sender: Sender<Request>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl DiskJournal {
    /// Starts the storage thread over an opened backend.
    pub fn start(backend: impl Backend, max_queued_bytes: usize) -> Arc<Self> {
        let shared = Arc::new(Shared {
            fault: Mutex::new(None),
            faulted: AtomicBool::new(false),
            queued_bytes: AtomicUsize::new(0),
            max_queued_bytes,
            committed_records: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            failed_commits: AtomicU64::new(0),
        });
        let (sender, receiver) = mpsc::channel();
        let worker = Worker { backend, shared: shared.clone(), pending: Vec::new(), pending_bytes: 0 };
        let thread = std::thread::Builder::new()
            .name("driftdb-storage".into())
            .spawn(move || worker.run(receiver))
            .expect("spawning the storage thread");
        Arc::new(DiskJournal { sender, shared, thread: Mutex::new(Some(thread)) })
    }

    /// Waits until everything queued so far is durable.
    pub fn flush(&self) -> Result<(), StorageUnavailable> {
        self.ask(Request::Flush)
    }

    /// Commits what is queued, records a clean stop and ends the storage thread. Blocks; call it off the runtime.
    pub fn stop(&self) -> Result<(), StorageUnavailable> {
        let result = self.ask(Request::Stop);
        if let Some(thread) = self.thread.lock().expect("storage thread lock poisoned").take() {
            let _ = thread.join();
        }
        result
    }

    pub fn status(&self) -> StorageStatus {
        let s = &self.shared;
        StorageStatus {
            fault: s.fault.lock().expect("storage fault lock poisoned").clone(),
            queued_bytes: s.queued_bytes.load(Ordering::Relaxed),
            committed_records: s.committed_records.load(Ordering::Relaxed),
            commits: s.commits.load(Ordering::Relaxed),
            failed_commits: s.failed_commits.load(Ordering::Relaxed),
        }
    }

    fn ask<T>(
        &self,
        request: impl FnOnce(Sender<Result<T, StorageUnavailable>>) -> Request,
    ) -> Result<T, StorageUnavailable> {
        let (reply, answer) = mpsc::channel();
        self.sender.send(request(reply)).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }
}

fn stopped() -> StorageUnavailable {
    StorageUnavailable("the storage thread has stopped".into())
}

impl Journal for DiskJournal {
    fn writable(&self) -> Result<(), StorageUnavailable> {
        if self.shared.faulted.load(Ordering::Acquire)
            && let Some(cause) = self.shared.fault.lock().expect("storage fault lock poisoned").clone()
        {
            return Err(StorageUnavailable(cause));
        }
        let queued = self.shared.queued_bytes.load(Ordering::Relaxed);
        if queued > self.shared.max_queued_bytes {
            return Err(StorageUnavailable(format!(
                "the disk is behind ({queued} bytes of writes waiting, at most {})",
                self.shared.max_queued_bytes
            )));
        }
        Ok(())
    }

    fn record(&self, record: Record) {
        self.shared.queued_bytes.fetch_add(record.approx_size(), Ordering::Relaxed);
        if self.sender.send(Request::Record(record)).is_err() {
            warn!("a stored write arrived after the storage thread stopped");
        }
    }

    /// The engine is synchronous and I/O-free, so it calls this from whatever thread opens the room: for a client's
    /// first connect that is a tokio worker, where waiting for the storage thread's read (and any commit before it)
    /// would stall every task on that worker. `block_in_place` hands the worker's other tasks to a new thread for the
    /// wait. It needs the multi-threaded runtime the server runs on; anywhere else (a current-thread runtime, a plain
    /// thread) the wait happens in place.
    fn load(&self, room: &RoomId) -> Result<Option<StoredRoom>, StorageUnavailable> {
        let load = || self.ask(|reply| Request::Load(room.clone(), reply));
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(load)
            }
            _ => load(),
        }
    }

    fn is_durable(&self) -> bool {
        true
    }
}

struct Worker<B> {
    backend: B,
    shared: Arc<Shared>,
    /// Records received but not yet durable, in order. Kept across failed commits so nothing is lost.
    pending: Vec<Record>,
    pending_bytes: usize,
}

impl<B: Backend> Worker<B> {
    fn run(mut self, requests: Receiver<Request>) {
        loop {
            // With nothing pending, sleep until a request; while a commit keeps failing, wake up to retry it.
            let first = if self.pending.is_empty() {
                requests.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                requests.recv_timeout(RETRY_AFTER)
            };
            let mut next = match first {
                Ok(request) => Some(request),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.commit_pending();
                    return;
                }
            };
            // Group commit: take everything that queued up while the last commit was on disk.
            while let Some(request) = next {
                if self.handle(request).is_break() {
                    return;
                }
                next = requests.try_recv().ok();
            }
            let _ = self.commit_pending();
        }
    }

    fn handle(&mut self, request: Request) -> std::ops::ControlFlow<()> {
        match request {
            Request::Record(record) => {
                self.pending_bytes += record.approx_size();
                self.pending.push(record);
            }
            Request::Load(room, reply) => {
                let _ = reply.send(self.load(&room));
            }
            Request::Flush(reply) => {
                let _ = reply.send(self.commit_pending());
            }
            Request::Stop(reply) => {
                let result = self
                    .commit_pending()
                    .and_then(|()| self.backend.close_cleanly().map_err(|error| StorageUnavailable(error.to_string())));
                if let Err(error) = &result {
                    error!(%error, "storage did not stop cleanly: rooms written in this run get a new epoch");
                }
                let _ = reply.send(result);
                return std::ops::ControlFlow::Break(());
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    /// Reads a room once the writes queued for it before the load are durable, so a load never misses them.
    fn load(&mut self, room: &RoomId) -> Result<Option<StoredRoom>, StorageUnavailable> {
        if self.pending.iter().any(|record| record.room() == room) {
            self.commit_pending()?;
        }
        self.backend.load(room).map_err(|error| {
            error!(%room, %error, "cannot load a stored room");
            StorageUnavailable(error.to_string())
        })
    }

    fn commit_pending(&mut self) -> Result<(), StorageUnavailable> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let result = self.recover_if_faulted().and_then(|()| self.backend.commit(&self.pending));
        match result {
            Ok(()) => {
                let s = &self.shared;
                s.commits.fetch_add(1, Ordering::Relaxed);
                s.committed_records.fetch_add(self.pending.len() as u64, Ordering::Relaxed);
                s.queued_bytes.fetch_sub(self.pending_bytes, Ordering::Relaxed);
                tracing::trace!(records = self.pending.len(), elapsed = ?started.elapsed(), "group commit");
                self.pending.clear();
                self.pending_bytes = 0;
                self.set_fault(None);
                Ok(())
            }
            Err(error) => {
                self.shared.failed_commits.fetch_add(1, Ordering::Relaxed);
                let cause = error.to_string();
                self.set_fault(Some(cause.clone()));
                Err(StorageUnavailable(cause))
            }
        }
    }

    fn recover_if_faulted(&mut self) -> Result<(), BackendError> {
        if self.shared.faulted.load(Ordering::Acquire) {
            self.backend.recover()?;
        }
        Ok(())
    }

    /// Logs fault transitions once (not once per retry) and publishes the cause to the engine's side.
    fn set_fault(&self, fault: Option<String>) {
        let mut current = self.shared.fault.lock().expect("storage fault lock poisoned");
        match (&*current, &fault) {
            (None, Some(cause)) => error!(%cause, "storage failing: stored writes are refused until it recovers"),
            (Some(_), None) => info!("storage recovered: stored writes are accepted again"),
            _ => {}
        }
        self.shared.faulted.store(fault.is_some(), Ordering::Release);
        *current = fault;
    }
}
