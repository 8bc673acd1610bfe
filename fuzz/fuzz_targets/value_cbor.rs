//! Values carried as CBOR bytes (inside postcard): the canonical form is stable and always has a JSON form.
#![no_main]

use driftdb_protocol::Value;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = Value::from_cbor_bytes(data) {
        let again = Value::from_cbor_bytes(value.cbor()).expect("canonical CBOR decodes");
        assert_eq!(again.cbor(), value.cbor());
        serde_json::from_str::<serde_json::Value>(value.json().get()).expect("a value's JSON form is valid JSON");
    }
});
