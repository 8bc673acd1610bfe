//! JSON frames and HTTP bodies: decoding never panics, and a decoded value always has a valid JSON form.
#![no_main]

use driftdb_protocol::{ClientMessage, json_cbor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ClientMessage::Push { value, .. }) = json_cbor::decode_json(data) {
        serde_json::from_str::<serde_json::Value>(value.json().get()).expect("a value's JSON form is valid JSON");
    }
});
