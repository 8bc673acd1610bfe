//! Byte framing of the control stream and of datagrams.
//!
//! Control stream: each message is its byte length as an unsigned LEB128 varint followed by the postcard message
//! (`driftdb_protocol::framing`, re-exported here). Datagrams: HTTP/3 prefixes every
//! datagram with the quarter stream id of its session as a QUIC varint; we read and write that prefix ourselves on the
//! raw QUIC connection (h3-datagram 0.0.2 hides the size limit and send errors we need).

use bytes::{Buf, BufMut, Bytes, BytesMut};

// The control stream's length framing and the datagram size rule are shared with the Rust clients, so they live in
// the protocol crate; the HTTP/3 parts below are the server's own.
pub use driftdb_protocol::framing::{FrameDecoder, FrameError, MAX_DATAGRAM_PAYLOAD, fits_datagram, put_frame};

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
