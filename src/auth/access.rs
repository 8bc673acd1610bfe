//! One connection's grant over its life: each message is checked against it, an in-band `auth` message replaces
//! it with a fresh token's, and [`Access::expired`] resolves when it runs out, so the transport can close the
//! connection with [`crate::close::CloseReason::TokenExpired`].

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::{Auth, Capability, Grant, Refusal};
use crate::engine::{Member, RoomId};
use crate::protocol::ClientMessage;

/// A connection's live grant, consulted by the connection driver's reading loop. The lock is never held across an
/// await.
pub struct Access {
    auth: Arc<Auth>,
    room: RoomId,
    /// Opened with `?debug=true`: a refreshed token must allow `debug` too, as the first one did.
    debug: bool,
    grant: Mutex<Grant>,
    /// Wakes [`Access::expired`] when a refresh moves the deadline.
    refreshed: Notify,
}

impl Access {
    pub fn new(auth: Arc<Auth>, room: RoomId, debug: bool, grant: Grant) -> Self {
        Access { auth, room, debug, grant: Mutex::new(grant), refreshed: Notify::new() }
    }

    /// Applies one client message: an `auth` refreshes the grant, anything else goes to the engine if the grant
    /// allows it. A refusal is answered with an `error` naming what is missing; the connection stays open.
    pub fn dispatch(&self, connection: &Member, message: ClientMessage) {
        let refused = match message {
            ClientMessage::Auth { token } => self.refresh(&token).err(),
            message => match self.check(&message) {
                Ok(()) => return connection.handle(message),
                Err(refusal) => Some(refusal),
            },
        };
        if let Some(refusal) = refused {
            connection.send_error(refusal.to_string());
        }
    }

    /// Whether the grant allows `message`.
    pub fn check(&self, message: &ClientMessage) -> Result<(), Refusal> {
        match Capability::needed_by(message) {
            Some(capability) => self.lock().require(capability),
            None => Ok(()),
        }
    }

    /// Replaces the grant with a fresh token's, which must be for this connection's room (and allow `debug` on a
    /// debug connection).
    pub fn refresh(&self, token: &str) -> Result<(), Refusal> {
        let grant = self.auth.admit(Some(token), &self.room, self.debug)?;
        *self.lock() = grant;
        self.refreshed.notify_waiters();
        Ok(())
    }

    /// Resolves once the grant has expired; never when auth is off.
    pub async fn expired(&self) {
        loop {
            // Created before reading the deadline, so a refresh in between is not missed.
            let refreshed = self.refreshed.notified();
            let remaining = self.lock().remaining();
            match remaining {
                None => refreshed.await,
                Some(remaining) if remaining.is_zero() => return,
                Some(remaining) => tokio::select! {
                    () = tokio::time::sleep(remaining) => {}
                    () = refreshed => {}
                },
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Grant> {
        self.grant.lock().expect("grant lock poisoned")
    }
}
