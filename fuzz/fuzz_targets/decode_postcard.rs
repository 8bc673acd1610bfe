//! WebTransport control-stream frames and datagrams: decoding never panics, and what decodes re-encodes to a
//! message that decodes to the same thing.
#![no_main]

use driftdb_protocol::postcard_envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = postcard_envelope::decode_client(data) {
        let again = postcard_envelope::decode_client(&postcard_envelope::encode_client(&message))
            .expect("re-encoded message decodes");
        assert_eq!(again, message);
    }
});
