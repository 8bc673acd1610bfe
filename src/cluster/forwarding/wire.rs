//! What nodes say to each other about a forwarded connection, and how it travels over NATS.
//!
//! Events are postcard-encoded and cut into frames of at most the server's `max_payload` (a replay of a large
//! stream is bigger than NATS takes in one message). Every frame of a session carries the next number of its
//! direction, so a frame lost on the way (NATS core delivers at most once: a reconnect or a slow subscriber drops
//! messages) is noticed as a gap and ends the connection, which the client resumes, instead of losing a reliable
//! message silently.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::driver::Departure;

/// A forwarder asks the owner to attach a connection: `driftdb.cluster.open.OWNER`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Open {
    pub room: String,
    /// The session's subject token: the owner listens on [`up_subject`] and sends on [`down_subject`].
    pub session: String,
    /// The forwarding node, whose liveness the owner watches.
    pub forwarder: String,
    /// The client's token as it came, checked again by the owner (which checks the in-band refreshes too).
    pub token: Option<String>,
    pub debug: bool,
}

/// The owner's answer to [`Open`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Opened {
    Attached,
    /// A limit refused the connection: its close code.
    Refused(u16),
    /// The owner no longer holds the room (its lease moved on).
    NotOwner,
    /// The owner refused the client's token: the nodes are not configured with the same keys.
    Unauthorized(String),
}

/// From the client, through the forwarder, to the owner.
#[derive(Debug, Serialize, Deserialize)]
pub enum Up {
    /// A client message (its postcard envelope) and its size on the client's wire.
    Message { envelope: Bytes, len: u32 },
    /// What the client sent that did not decode, and why.
    Invalid { error: String, len: u32 },
    /// Input that is no message of this connection, counted against the rate.
    Noise,
    /// The client went.
    Left(Departure),
}

/// From the owner, through the forwarder, to the client.
#[derive(Debug, Serialize, Deserialize)]
pub enum Down {
    /// Server messages (postcard), in order.
    Messages(Vec<Bytes>),
    /// The owner ends the connection with this close code.
    Close(u16),
}

/// A forwarded HTTP send: `driftdb.cluster.send.OWNER`, answered on the request's reply subject with
/// [`SendReply`] frames.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendRequest {
    pub room: String,
    pub envelope: Bytes,
}

/// The owner's answer to a [`SendRequest`]: the direct reply (postcard), or the HTTP status and message.
pub type SendReply = Result<Option<Bytes>, (u16, String)>;

pub fn open_subject(owner: &str) -> String {
    format!("driftdb.cluster.open.{owner}")
}

pub fn send_subject(owner: &str) -> String {
    format!("driftdb.cluster.send.{owner}")
}

pub fn up_subject(session: &str) -> String {
    format!("driftdb.cluster.fwd.{session}.up")
}

pub fn down_subject(session: &str) -> String {
    format!("driftdb.cluster.fwd.{session}.down")
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("forwarding messages serialize")
}

pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// A frame's header: its number in its direction (8 bytes, little-endian) and whether it ends an event.
const HEADER: usize = 9;

/// Numbers and cuts one direction's events into frames.
#[derive(Debug, Default)]
pub struct Framer {
    next: u64,
}

impl Framer {
    /// The frames carrying `event`, each at most `max_payload` bytes.
    pub fn frames(&mut self, event: &[u8], max_payload: usize) -> Vec<Bytes> {
        let chunk = max_payload.saturating_sub(HEADER).max(1);
        let count = event.len().div_ceil(chunk).max(1);
        (0..count)
            .map(|index| {
                let part = &event[(index * chunk).min(event.len())..((index + 1) * chunk).min(event.len())];
                let mut frame = BytesMut::with_capacity(HEADER + part.len());
                frame.put_u64_le(self.next);
                frame.put_u8(u8::from(index + 1 == count));
                frame.put_slice(part);
                self.next += 1;
                frame.freeze()
            })
            .collect()
    }
}

/// A frame was lost, or a frame is no frame.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame {got} arrived where {expected} was due: frames were lost")]
    Gap { expected: u64, got: u64 },
    #[error("a frame shorter than its header")]
    Truncated,
}

/// Checks one direction's numbering and joins frames into events.
#[derive(Debug, Default)]
pub struct Reassembler {
    expected: u64,
    partial: Vec<u8>,
}

impl Reassembler {
    /// Takes the next frame; `Some` with the event it completes.
    pub fn push(&mut self, frame: &[u8]) -> Result<Option<Bytes>, FrameError> {
        if frame.len() < HEADER {
            return Err(FrameError::Truncated);
        }
        let number = u64::from_le_bytes(frame[..8].try_into().expect("8 bytes"));
        if number != self.expected {
            return Err(FrameError::Gap { expected: self.expected, got: number });
        }
        self.expected += 1;
        let (last, part) = (frame[8] == 1, &frame[HEADER..]);
        if !last {
            self.partial.extend_from_slice(part);
            return Ok(None);
        }
        if self.partial.is_empty() {
            return Ok(Some(Bytes::copy_from_slice(part)));
        }
        self.partial.extend_from_slice(part);
        Ok(Some(Bytes::from(std::mem::take(&mut self.partial))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_larger_than_a_payload_are_cut_and_joined_again() {
        let mut framer = Framer::default();
        let mut reassembler = Reassembler::default();
        let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let frames = framer.frames(&big, 1_000);
        assert_eq!(frames.len(), 11);
        assert!(frames.iter().all(|frame| frame.len() <= 1_000));
        let joined: Vec<_> = frames.iter().filter_map(|frame| reassembler.push(frame).unwrap()).collect();
        assert_eq!(joined, vec![Bytes::from(big)]);
        // An empty event is one frame too, and the numbering goes on.
        let empty = framer.frames(&[], 1_000);
        assert_eq!(reassembler.push(&empty[0]), Ok(Some(Bytes::new())));
    }

    #[test]
    fn a_lost_frame_is_a_gap() {
        let mut framer = Framer::default();
        let mut reassembler = Reassembler::default();
        let first = framer.frames(b"one", 100);
        let _lost = framer.frames(b"two", 100);
        let third = framer.frames(b"three", 100);
        assert_eq!(reassembler.push(&first[0]), Ok(Some(Bytes::from_static(b"one"))));
        assert_eq!(reassembler.push(&third[0]), Err(FrameError::Gap { expected: 1, got: 2 }));
        assert_eq!(reassembler.push(b"short"), Err(FrameError::Truncated));
    }
}
