//! Length framing of the WebTransport control stream, shared by the server and every Rust client so that both ends
//! read and write one definition.
//!
//! Each message is its byte length as an unsigned LEB128 varint (postcard's own varint, so a JS client needs one
//! varint routine for both) followed by the postcard message. Which messages go as datagrams instead is
//! [`fits_datagram`]. The HTTP/3 parts (datagram session prefixes, close capsules) stay in the server.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A LEB128 `u64` takes at most 10 bytes.
const MAX_VARINT_LEN: usize = 10;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("a frame of {len} bytes exceeds the limit of {limit}")]
    TooBig { len: u64, limit: usize },
    #[error("malformed frame length")]
    BadLength,
}

/// Chromium silently drops datagrams above ~1211 bytes; stay well under its limit whatever QUIC reports.
pub const MAX_DATAGRAM_PAYLOAD: usize = 1100;

/// Whether a message of `payload_len` bytes goes as a datagram, given the session's usable datagram size (after its
/// session prefix); otherwise it goes on the control stream. The server and every Rust client apply this one rule.
pub fn fits_datagram(payload_len: usize, session_room: usize) -> bool {
    payload_len <= session_room.min(MAX_DATAGRAM_PAYLOAD)
}

/// Appends `payload` with its length prefix to `out`.
pub fn put_frame(out: &mut BytesMut, payload: &[u8]) {
    put_varint(out, payload.len() as u64);
    out.put_slice(payload);
}

fn put_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// Splits complete frames off the front of a read buffer.
pub struct FrameDecoder {
    limit: usize,
}

impl FrameDecoder {
    pub fn new(limit: usize) -> Self {
        FrameDecoder { limit }
    }

    /// The next complete frame in `buf`, removed from it; `Ok(None)` when more bytes are needed. A length over the
    /// limit fails as soon as the length is known, before the payload is buffered.
    pub fn next_frame(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some((len, prefix)) = read_varint(buf)? else {
            return Ok(None);
        };
        if len > self.limit as u64 {
            return Err(FrameError::TooBig { len, limit: self.limit });
        }
        let len = len as usize;
        if buf.len() < prefix + len {
            buf.reserve(prefix + len - buf.len());
            return Ok(None);
        }
        buf.advance(prefix);
        Ok(Some(buf.split_to(len).freeze()))
    }
}

/// Reads a LEB128 varint: `(value, bytes used)`, or `None` if `buf` ends inside it.
fn read_varint(buf: &[u8]) -> Result<Option<(u64, usize)>, FrameError> {
    let mut value = 0u64;
    for (i, byte) in buf.iter().take(MAX_VARINT_LEN).enumerate() {
        let bits = u64::from(byte & 0x7f);
        if i == MAX_VARINT_LEN - 1 && bits > 1 {
            return Err(FrameError::BadLength);
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= MAX_VARINT_LEN { Err(FrameError::BadLength) } else { Ok(None) }
}
