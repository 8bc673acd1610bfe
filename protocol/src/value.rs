//! Values in their one canonical form: CBOR bytes.
//!
//! A value is decoded once when it arrives (from JSON, CBOR or a postcard envelope), normalised, and re-encoded as
//! CBOR. From then on the server passes those bytes through untouched; the JSON text a JSON subscriber needs is
//! computed at most once per value and cached, however many subscribers or replays ask for it.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use ciborium::value::Value as Cbor;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::value::RawValue;

use super::DecodeError;

/// RFC 8746 tag for a `Uint8Array`: the published `driftdb` 1.0.12 client (cbor-web) wraps byte strings in it.
const TAG_UINT8_ARRAY: u64 = 64;
/// RFC 8949 bignums.
const TAG_BIGNUM_POSITIVE: u64 = 2;
const TAG_BIGNUM_NEGATIVE: u64 = 3;

/// The deepest nesting of arrays and maps a client's value may have, whatever the encoding: the deepest value a
/// JSON `push` can carry (serde_json's parser stops at 128 levels, and the message's own object is one of them).
/// So a value a CBOR or postcard client stores can always be sent back by a JSON client. JSON input is held to it by
/// the parser; every input is checked here too.
pub const MAX_DEPTH: usize = 126;

/// An opaque application value, held as canonical CBOR bytes. Cheap to clone.
#[derive(Clone)]
pub struct Value(Arc<ValueInner>);

struct ValueInner {
    cbor: Bytes,
    json: OnceLock<Box<RawValue>>,
}

impl Value {
    /// Builds a value from a decoded CBOR tree, normalising tag-64 byte strings to plain byte strings so that every
    /// client, old or new, gets a `Uint8Array` back.
    pub fn from_tree(mut tree: Cbor) -> Self {
        normalise(&mut tree);
        let mut buf = Vec::with_capacity(64);
        ciborium::into_writer(&tree, &mut buf).expect("writing CBOR into a Vec cannot fail");
        Self::from_canonical(Bytes::from(buf))
    }

    /// Builds a value from a tree a client sent, refusing one nested deeper than [`MAX_DEPTH`].
    pub fn from_client_tree(tree: Cbor) -> Result<Self, DecodeError> {
        if nesting(&tree) > MAX_DEPTH {
            return Err(DecodeError::InvalidValue(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(Self::from_tree(tree))
    }

    /// Decodes and normalises CBOR bytes received from a client (e.g. inside a postcard envelope).
    pub fn from_cbor_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = bytes;
        let tree: Cbor = ciborium::from_reader(&mut reader).map_err(|e| DecodeError::InvalidValue(e.to_string()))?;
        if !reader.is_empty() {
            return Err(DecodeError::InvalidValue(format!("{} trailing bytes after the value", reader.len())));
        }
        Self::from_client_tree(tree)
    }

    /// Wraps bytes that are already canonical (produced by [`Value::from_tree`]).
    fn from_canonical(cbor: Bytes) -> Self {
        Value(Arc::new(ValueInner { cbor, json: OnceLock::new() }))
    }

    /// The JSON `null` value.
    pub fn null() -> Self {
        Self::from_tree(Cbor::Null)
    }

    /// The canonical CBOR encoding.
    pub fn cbor(&self) -> &Bytes {
        &self.0.cbor
    }

    /// Encoded size in bytes, used for queue and storage accounting.
    pub fn len(&self) -> usize {
        self.0.cbor.len()
    }

    /// Whether the encoding is empty (never true for a valid value).
    pub fn is_empty(&self) -> bool {
        self.0.cbor.is_empty()
    }

    /// The value as JSON text, computed once. Byte strings become arrays of numbers, tags are dropped, non-finite
    /// floats become `null` and non-string map keys are written as their JSON text.
    pub fn json(&self) -> &RawValue {
        self.0.json.get_or_init(|| {
            let tree: Cbor = ciborium::from_reader(&self.0.cbor[..]).expect("canonical CBOR always decodes");
            // Written, not parsed back: serde_json output is valid JSON by construction.
            serde_json::value::to_raw_value(&AsJson(&tree)).expect("every CBOR tree has a JSON form")
        })
    }

    /// Decodes the value back into a CBOR tree (tests and tools; the server itself never needs to).
    pub fn to_tree(&self) -> Cbor {
        ciborium::from_reader(&self.0.cbor[..]).expect("canonical CBOR always decodes")
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Value({})", self.json().get())
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.0.cbor == other.0.cbor
    }
}

impl Eq for Value {}

/// How deeply arrays and maps nest in `tree` (tags and scalars add nothing; JSON has neither tags nor CBOR's
/// non-text keys, which it writes as strings).
fn nesting(tree: &Cbor) -> usize {
    match tree {
        Cbor::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
        Cbor::Map(entries) => 1 + entries.iter().map(|(_, v)| nesting(v)).max().unwrap_or(0),
        Cbor::Tag(_, inner) => nesting(inner),
        _ => 0,
    }
}

/// Brings a tree to the form it has after an encode–decode round trip, so that the canonical bytes are a fixpoint:
/// tag-64 byte strings become plain byte strings, and bignums small enough for the decoder to read as integers
/// become integers (ciborium decodes them so, and would otherwise re-encode a value differently the second time).
fn normalise(tree: &mut Cbor) {
    match tree {
        Cbor::Tag(_, inner) => normalise(inner),
        Cbor::Array(items) => items.iter_mut().for_each(normalise),
        Cbor::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            normalise(k);
            normalise(v);
        }),
        _ => return,
    }
    if let Cbor::Tag(tag, inner) = tree
        && let Some(plain) = untag(*tag, inner)
    {
        *tree = plain;
    }
}

/// The untagged equivalent of a tagged item, for the tags the canonical form does not keep.
fn untag(tag: u64, inner: &mut Cbor) -> Option<Cbor> {
    let Cbor::Bytes(bytes) = inner else { return None };
    match tag {
        TAG_UINT8_ARRAY => Some(Cbor::Bytes(std::mem::take(bytes))),
        TAG_BIGNUM_POSITIVE | TAG_BIGNUM_NEGATIVE if bytes.len() <= 16 => {
            let magnitude = bytes.iter().fold(0u128, |n, b| (n << 8) | u128::from(*b));
            let integer = if tag == TAG_BIGNUM_POSITIVE {
                ciborium::value::Integer::try_from(magnitude).ok()
            } else {
                i128::try_from(magnitude).ok().and_then(|m| ciborium::value::Integer::try_from(-1 - m).ok())
            };
            integer.map(Cbor::Integer)
        }
        _ => None,
    }
}

/// Serialises a CBOR tree as the JSON a JSON subscriber expects.
struct AsJson<'a>(&'a Cbor);

impl Serialize for AsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Cbor::Integer(i) => s.serialize_i128(i128::from(*i)),
            Cbor::Float(f) if f.is_finite() => s.serialize_f64(*f),
            Cbor::Float(_) | Cbor::Null => s.serialize_unit(),
            Cbor::Bool(b) => s.serialize_bool(*b),
            Cbor::Text(t) => s.serialize_str(t),
            Cbor::Bytes(bytes) => {
                let mut seq = s.serialize_seq(Some(bytes.len()))?;
                for b in bytes {
                    seq.serialize_element(b)?;
                }
                seq.end()
            }
            Cbor::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&AsJson(item))?;
                }
                seq.end()
            }
            Cbor::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    match k {
                        Cbor::Text(t) => map.serialize_entry(t, &AsJson(v))?,
                        other => map.serialize_entry(&json_key(other), &AsJson(v))?,
                    }
                }
                map.end()
            }
            Cbor::Tag(_, inner) => AsJson(inner).serialize(s),
            // `undefined` and other simple values have no JSON form.
            _ => s.serialize_unit(),
        }
    }
}

/// The JSON object key for a CBOR map key that is not text: a scalar's JSON text (`7`, `true`), anything else
/// `cbor:` and the hex of its CBOR encoding. Never nested JSON text: escaping a key that holds keys that hold keys
/// doubles its size at every level, so a few hundred bytes of CBOR could expand to gigabytes (found by fuzzing).
fn json_key(key: &Cbor) -> String {
    match key {
        Cbor::Integer(_) | Cbor::Float(_) | Cbor::Bool(_) | Cbor::Null => {
            serde_json::to_string(&AsJson(key)).expect("a scalar has a JSON form")
        }
        _ => {
            let mut bytes = Vec::new();
            ciborium::into_writer(key, &mut bytes).expect("writing CBOR into a Vec cannot fail");
            format!("cbor:{}", hex::encode(bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_json(text: &str) -> Value {
        Value::from_tree(serde_json::from_str(text).unwrap())
    }

    #[test]
    fn json_round_trips_through_cbor() {
        for text in [
            r#"{"a":[1,2.5,"x",null,true]}"#,
            "9007199254740993",
            "18446744073709551615",
            "-9223372036854775808",
            "0.1",
            "3.4028234663852886e+38",
            r#""""#,
        ] {
            assert_eq!(from_json(text).json().get(), text);
        }
    }

    #[test]
    fn tagged_and_plain_byte_strings_are_one_value() {
        let tagged = Cbor::Tag(TAG_UINT8_ARRAY, Box::new(Cbor::Bytes(vec![1, 2, 3])));
        let plain = Cbor::Bytes(vec![1, 2, 3]);
        let a = Value::from_tree(Cbor::Map(vec![(Cbor::Text("b".into()), tagged)]));
        let b = Value::from_tree(Cbor::Map(vec![(Cbor::Text("b".into()), plain)]));
        assert_eq!(a, b);
        assert_eq!(a.json().get(), r#"{"b":[1,2,3]}"#);
        assert!(matches!(a.to_tree(), Cbor::Map(m) if matches!(m[0].1, Cbor::Bytes(_))));
    }

    #[test]
    fn other_tags_are_kept_for_cbor_and_dropped_for_json() {
        let date = Value::from_tree(Cbor::Tag(1, Box::new(Cbor::Integer(1_700_000_000.into()))));
        assert!(matches!(date.to_tree(), Cbor::Tag(1, _)));
        assert_eq!(date.json().get(), "1700000000");
    }

    #[test]
    fn non_finite_floats_and_odd_keys_have_a_json_form() {
        let v = Value::from_tree(Cbor::Map(vec![
            (Cbor::Integer(7.into()), Cbor::Float(f64::NAN)),
            (Cbor::Array(vec![Cbor::Bool(true)]), Cbor::Float(f64::INFINITY)),
        ]));
        assert_eq!(v.json().get(), r#"{"7":null,"cbor:81f5":null}"#);
    }

    #[test]
    fn small_bignums_become_integers_so_the_canonical_form_is_a_fixpoint() {
        let tagged_bytes = |tag, bytes: Vec<u8>| Cbor::Tag(tag, Box::new(Cbor::Tag(64, Box::new(Cbor::Bytes(bytes)))));
        for (tree, expected) in [
            (tagged_bytes(2, vec![]), "0"),
            (tagged_bytes(2, vec![1, 0]), "256"),
            (tagged_bytes(3, vec![1, 0]), "-257"),
            (tagged_bytes(2, vec![0xff; 8]), "18446744073709551615"),
            // Beyond what an integer holds: kept as a tagged byte string (JSON shows the bytes).
            (tagged_bytes(2, vec![0xff; 16]), "[255,255,255,255,255,255,255,255,255,255,255,255,255,255,255,255]"),
        ] {
            let value = Value::from_tree(tree);
            assert_eq!(Value::from_cbor_bytes(value.cbor()).unwrap().cbor(), value.cbor());
            assert_eq!(value.json().get(), expected);
        }
    }

    #[test]
    fn values_nested_deeper_than_json_allows_are_refused() {
        let nested = |depth: usize| (0..depth).fold(Cbor::Null, |inner, _| Cbor::Array(vec![inner]));
        let deepest = Value::from_client_tree(nested(MAX_DEPTH)).unwrap();
        serde_json::from_str::<serde_json::Value>(deepest.json().get()).expect("its JSON form parses back");
        assert!(matches!(Value::from_client_tree(nested(MAX_DEPTH + 1)), Err(DecodeError::InvalidValue(_))));
        let mut bytes = Vec::new();
        ciborium::into_writer(&Cbor::Tag(20, Box::new(nested(200))), &mut bytes).unwrap();
        assert!(Value::from_cbor_bytes(&bytes).is_err(), "found by fuzzing: a 200-deep array once panicked");
    }

    #[test]
    fn keys_holding_keys_do_not_blow_up_the_json_form() {
        // 40 levels of maps used as keys: escaped JSON text at each level would double 40 times.
        let nested = (0..40).fold(Cbor::Null, |inner, _| Cbor::Map(vec![(inner, Cbor::Null)]));
        let value = Value::from_tree(nested);
        assert!(value.json().get().len() < 4 * value.cbor().len() + 64, "{}", value.json().get().len());
    }

    #[test]
    fn invalid_cbor_is_an_error() {
        assert!(Value::from_cbor_bytes(&[0xff, 0x00]).is_err());
        assert!(Value::from_cbor_bytes(&[]).is_err());
        assert!(Value::from_cbor_bytes(&[0xf6, 0xf6]).is_err(), "null followed by junk");
    }
}
