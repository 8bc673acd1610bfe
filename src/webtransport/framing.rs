//! Byte framing of the control stream and of datagrams.
//!
//! Control stream: each message is its byte length as an unsigned LEB128 varint (postcard's own varint, so a JS
//! client needs one varint routine for both) followed by the postcard message. Datagrams: HTTP/3 prefixes every
//! datagram with the quarter stream id of its session as a QUIC varint; we read and write that prefix ourselves on the
//! raw QUIC connection (h3-datagram 0.0.2 hides the size limit and send errors we need).

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

/// The HTTP/3 datagram prefix of a session: its quarter stream id (the CONNECT stream id / 4) as a QUIC varint.
/// Browsers run one session per connection on stream 0, so this is almost always the single byte 0.
pub fn datagram_prefix(session_stream_id: u64) -> BytesMut {
    let mut out = BytesMut::with_capacity(8);
    put_quic_varint(&mut out, session_stream_id / 4);
    out
}

/// Appends a QUIC variable-length integer (RFC 9000 §16): a 2-bit length tag in the top bits of the first byte.
pub fn put_quic_varint(out: &mut BytesMut, value: u64) {
    match value {
        0..=0x3f => out.put_u8(value as u8),
        0x40..=0x3fff => out.put_u16(0x4000 | value as u16),
        0x4000..=0x3fff_ffff => out.put_u32(0x8000_0000 | value as u32),
        _ => out.put_u64(0xc000_0000_0000_0000 | (value & 0x3fff_ffff_ffff_ffff)),
    }
}

/// Type of the CLOSE_WEBTRANSPORT_SESSION capsule (draft-ietf-webtrans-http3).
const CLOSE_SESSION_CAPSULE: u64 = 0x2843;
/// The capsule's reason is limited to 1024 bytes.
const MAX_CLOSE_REASON: usize = 1024;

/// A CLOSE_WEBTRANSPORT_SESSION capsule: what a browser reports as the session's `closeCode` and `reason`.
pub fn close_session_capsule(code: u32, reason: &str) -> Bytes {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    let mut out = BytesMut::with_capacity(reason.len() + 12);
    put_quic_varint(&mut out, CLOSE_SESSION_CAPSULE);
    put_quic_varint(&mut out, 4 + reason.len() as u64);
    out.put_u32(code);
    out.put_slice(reason);
    out.freeze()
}

/// Strips the quarter-stream-id prefix of an incoming datagram: `(session stream id, payload)`.
pub fn split_datagram(mut datagram: Bytes) -> Option<(u64, Bytes)> {
    let first = *datagram.first()?;
    let len = 1usize << (first >> 6);
    if datagram.len() < len {
        return None;
    }
    let mut quarter = u64::from(first & 0x3f);
    for byte in &datagram[1..len] {
        quarter = (quarter << 8) | u64::from(*byte);
    }
    datagram.advance(len);
    Some((quarter * 4, datagram))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_pieces() {
        let mut wire = BytesMut::new();
        put_frame(&mut wire, b"hello");
        put_frame(&mut wire, &[7u8; 300]);
        put_frame(&mut wire, b"");
        let decoder = FrameDecoder::new(1000);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        // Feed one byte at a time: frames must come out whole whatever the read boundaries.
        for byte in wire.iter() {
            buf.put_u8(*byte);
            while let Some(frame) = decoder.next_frame(&mut buf).unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames, vec![Bytes::from_static(b"hello"), Bytes::from(vec![7u8; 300]), Bytes::new()]);
        assert_eq!(&wire[6..8], &[0xac, 0x02], "300 is LEB128 ac 02, as postcard writes it");
    }

    #[test]
    fn oversized_and_malformed_lengths_are_refused_early() {
        let decoder = FrameDecoder::new(10);
        let mut buf = BytesMut::from(&[11u8][..]);
        assert_eq!(decoder.next_frame(&mut buf), Err(FrameError::TooBig { len: 11, limit: 10 }));
        let mut buf = BytesMut::from(&[0xffu8; 11][..]);
        assert_eq!(decoder.next_frame(&mut buf), Err(FrameError::BadLength));
    }

    #[test]
    fn datagram_prefixes_round_trip() {
        for id in [0u64, 4, 252, 256, 65_532, 1 << 40] {
            let mut datagram = datagram_prefix(id);
            datagram.put_slice(b"x");
            assert_eq!(split_datagram(datagram.freeze()), Some((id, Bytes::from_static(b"x"))), "{id}");
        }
        assert_eq!(split_datagram(Bytes::new()), None);
        assert_eq!(
            &close_session_capsule(4001, "slow")[..],
            &[0x68, 0x43, 8, 0, 0, 0x0f, 0xa1, b's', b'l', b'o', b'w']
        );
        assert_eq!(split_datagram(Bytes::from_static(&[0x40])), None);
    }
}
