//! The canonicaliser against upstream's own JavaScript, run under node.
//!
//! The data files were written by `tests/data/gen_canon_js.js`, which runs upstream's
//! `params_sort_str` (taken from intel/ehsm `ehsm_kms_service/function.js`) under node 20:
//!
//! - `js_number_strings.txt`: f64 bit patterns and JS `String(x)`; special values (powers of
//!   ten, 2^53, the 1e21 and 1e-7 layout thresholds, subnormals, their neighbours) and random
//!   bit patterns.
//! - `canon_js.jsonl`: random request bodies and payloads, and what upstream makes of them;
//!   `"expected": null` where upstream throws (an object with its own `toString` key).
//!   Numbers in these documents are ones serde_json parses to the same double as `JSON.parse`
//!   (see the note on `float_roundtrip` in the crate's report); `-0` and `1.0` are kept as
//!   written.

use ehsm_proto::canon::{
    Unsignable, canonicalize, js_number_string, signing_string, try_signing_string,
};
use proptest::prelude::*;
use serde_json::Value;

#[test]
fn numbers_match_node() {
    let data = include_str!("data/js_number_strings.txt");
    let mut checked = 0;
    for line in data.lines().filter(|l| !l.starts_with('#')) {
        let (bits, want) = line.split_once(' ').unwrap();
        let x = f64::from_bits(u64::from_str_radix(bits, 16).unwrap());
        assert_eq!(js_number_string(x), want, "bits {bits}");
        checked += 1;
    }
    assert!(checked > 1000, "only {checked} numbers");
}

#[test]
fn documents_match_node() {
    let data = include_str!("data/canon_js.jsonl");
    let (mut canon, mut signed, mut refused) = (0, 0, 0);
    for (number, line) in data.lines().enumerate() {
        let case: Value = serde_json::from_str(line).unwrap();
        let input = &case["input"];
        let expected = case["expected"].as_str();
        let at = format!("line {}: {}", number + 1, input);
        match case["kind"].as_str().unwrap() {
            "canon" => {
                assert_eq!(Some(canonicalize(input).as_str()), expected, "{at}");
                canon += 1;
            }
            "sign" => {
                let body = input.as_object().unwrap();
                match expected {
                    Some(want) => {
                        assert_eq!(try_signing_string(body).as_deref(), Ok(want), "{at}");
                        assert_eq!(signing_string(body), want, "{at}");
                        signed += 1;
                    }
                    None => {
                        assert_eq!(try_signing_string(body), Err(Unsignable), "{at}");
                        refused += 1;
                    }
                }
            }
            other => panic!("unknown kind {other}"),
        }
    }
    // The generator's mix; a truncated file must not pass quietly.
    assert!(
        canon >= 150 && signed >= 250 && refused >= 20,
        "{canon} {signed} {refused}"
    );
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>()
            .prop_map(|x| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 128, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![Just("toString".to_owned()), any::<String>()],
                    inner
                ),
                0..6
            )
            .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Arbitrary JSON, as a payload, nonce or root: never a panic.
    #[test]
    fn arbitrary_json_never_panics(value in arb_json(), nonce in arb_json()) {
        let _ = canonicalize(&value);
        let mut body = serde_json::Map::new();
        body.insert("appid".to_owned(), Value::from("a"));
        body.insert("nonce".to_owned(), nonce);
        body.insert("payload".to_owned(), value);
        let lenient = signing_string(&body);
        if let Ok(strict) = try_signing_string(&body) {
            prop_assert_eq!(strict, lenient);
        }
    }

    /// Arbitrary bytes that happen to parse as JSON: never a panic.
    #[test]
    fn parsed_text_never_panics(text in "[\\[\\]{}\",:0-9a-z\\-.eE ]{0,64}") {
        if let Ok(value) = serde_json::from_str::<Value>(&text) {
            let _ = canonicalize(&value);
            if let Value::Object(body) = value {
                let _ = try_signing_string(&body);
            }
        }
    }
}
