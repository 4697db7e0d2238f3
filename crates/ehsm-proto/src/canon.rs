//! The request-signing canonicaliser (spec §3.1): upstream's JavaScript `params_sort_str`,
//! reproduced byte for byte.
//!
//! Upstream signs `{appid, nonce, timestamp, payload}` rendered by this loop (`function.js`):
//!
//! ```js
//! for (var k of Object.keys(obj).sort())
//!     if (obj[k] != '' && obj[k] != undefined && obj[k] != null)
//!         str += (str && '&') + k + '=' + (typeof obj[k] == 'object' ? params_sort_str(obj[k]) : obj[k])
//! ```
//!
//! Every JavaScript rule hidden in those lines is a rule of this module, because a client's
//! signature only verifies if we build the very same string:
//!
//! - `sort()` compares UTF-16 code units, not bytes or code points.
//! - `v != ''` is *loose* equality, so `0`, `false`, `[]` and any array whose `String()` is `""`
//!   (such as `[""]` or `[[null]]`) count as empty, while `{}` and `" "` do not.
//! - Arrays are objects: they recurse with index keys `"0"`, `"1"`, …, sorted as strings.
//! - A number is concatenated with JS `Number::toString`, a string raw, `true` as `true`.
//!
//! Comparing an object with `''` converts it to a primitive. For a JSON object with its own
//! `toString` key that conversion throws (the key holds data, not a function), and upstream then
//! rejects the request. [`try_signing_string`] reports that case; the infallible functions render
//! such an object like any other.

use core::fmt;

use serde_json::{Map, Number, Value};

/// The deepest container nesting that is rendered.
///
/// serde_json refuses to parse a document nested 128 or more levels deep, so a request body
/// never gets here. A `Value` built in code can be deeper; rather than overflowing the stack, a
/// container below this depth renders as nothing (`key=`), or as [`Unsignable`] in strict mode.
const MAX_DEPTH: usize = 128;

/// The fields of a request body that take part in its signature, in the order JS `sort()` puts
/// them (all ASCII, so this is plain byte order). `action` is ehsm's: the name of the action the
/// request is for, which upstream leaves unsigned (in the query string). Upstream's clients never
/// send it, so their signing strings are unchanged.
const SIGNED_FIELDS: [&str; 5] = ["action", "appid", "nonce", "payload", "timestamp"];

/// A body upstream cannot canonicalise, so upstream rejects the request (with code 400).
///
/// This happens when the canonicaliser converts an object with its own `toString` key to a
/// string: JS finds no callable `toString` or `valueOf` and throws a `TypeError`. It also
/// covers `Value`s nested deeper than any parsed JSON can be (see `MAX_DEPTH`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsignable;

impl fmt::Display for Unsignable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request body cannot be canonicalised for signing")
    }
}

impl std::error::Error for Unsignable {}

/// The string a request's `sign` is the HMAC of: canon of {action, appid, nonce, timestamp,
/// payload} built from those fields of the request body only (absent fields are absent);
/// `action` is ehsm's extension (see `SIGNED_FIELDS`).
///
/// A body upstream cannot sign (see [`Unsignable`]) still gets a string here; use
/// [`try_signing_string`] to refuse it as upstream does.
pub fn signing_string(body: &Map<String, Value>) -> String {
    let mut canon = Canon::new(Mode::Lenient);
    // Lenient mode never fails: it renders what upstream would have thrown on.
    let _ = canon.signed_fields(body);
    canon.out
}

/// Like [`signing_string`], but fails where upstream's canonicaliser throws, so that the caller
/// can reject the request as upstream does.
pub fn try_signing_string(body: &Map<String, Value>) -> Result<String, Unsignable> {
    let mut canon = Canon::new(Mode::Strict);
    canon.signed_fields(body)?;
    Ok(canon.out)
}

/// canon(obj) of spec §3.1 for an object or array value (other values: canon of a non-container is "").
pub fn canonicalize(value: &Value) -> String {
    let mut canon = Canon::new(Mode::Lenient);
    // Lenient mode never fails: it renders what upstream would have thrown on.
    let _ = canon.container(value, 0);
    canon.out
}

/// JS `String(n)` for a number (ECMA-262 `Number::toString`, radix 10): the shortest digits
/// that round-trip, laid out in plain or exponent form by the size of the exponent.
///
/// `1.0` gives `1`, `1e21` gives `1e+21`, `1e-7` gives `1e-7`, `0.000001` stays as written, and
/// `-0` gives `0`.
pub fn js_number_string(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x == 0.0 {
        return "0".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    let mut out = String::new();
    if x < 0.0 {
        out.push('-');
    }
    let (digits, n) = shortest_digits(x.abs());
    layout_number(&mut out, &digits, n);
    out
}

/// The shortest decimal digits `s` (no trailing zeros) and the exponent `n` with
/// `x = 0.s × 10^n`, the `s` and `n` of ECMA-262 `Number::toString` step 5.
fn shortest_digits(x: f64) -> (String, i32) {
    // Rust's `{:e}` prints the shortest digits that round-trip, and of those the closest to `x`,
    // which is V8's choice too, except when two are equally close.
    let (digits, n) = split_exponent(&format!("{x:e}"));
    match even_tie_break(x, &digits, n) {
        Some(even) => even,
        None => (digits, n),
    }
}

/// V8 breaks a tie between two equally close shortest digit strings towards the even one (the
/// rule ECMA-262 recommends in Note 2 of `Number::toString`); Rust's formatter does not.
/// `1234567890000000.25` lies exactly between `…0.2` and `…0.3`: node prints
/// `1234567890000000.2`, Rust's `{}` prints `…0.3`.
///
/// Returns the even candidate when `digits` (Rust's, `k` long) is the odd side of such a tie.
fn even_tie_break(x: f64, digits: &str, n: i32) -> Option<(String, i32)> {
    let k = digits.len();
    if digits
        .bytes()
        .last()
        .is_none_or(|d| (d - b'0').is_multiple_of(2))
    {
        return None;
    }
    // A tie means `x` is exactly the midpoint: `k + 1` digits ending in 5. Rounding to `k + 1`
    // digits is cheap and rules most numbers out; the exact expansion of a double has at most
    // 767 significant digits, so `{:.767e}` settles the rest.
    let (midpoint, mid_n) = split_exponent(&format!("{x:.k$e}"));
    if mid_n != n || midpoint.len() != k + 1 || !midpoint.ends_with('5') {
        return None;
    }
    let (exact, exact_n) = split_exponent(&format!("{x:.767e}"));
    if exact_n != n || exact.trim_end_matches('0') != midpoint {
        return None;
    }
    let below = &midpoint[..k];
    let (other, other_n) = if below == digits {
        increment_digits(below, n)
    } else {
        (below.to_owned(), n)
    };
    // Both sides of a tie normally round-trip; never print digits that don't.
    let round_trips = format!("0.{other}e{other_n}").parse::<f64>() == Ok(x);
    round_trips.then(|| (other.trim_end_matches('0').to_owned(), other_n))
}

/// `digits` plus one in the last place; a carry out of the first digit raises the exponent.
fn increment_digits(digits: &str, n: i32) -> (String, i32) {
    let mut bytes = digits.as_bytes().to_vec();
    for d in bytes.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return (String::from_utf8_lossy(&bytes).into_owned(), n);
        }
    }
    (format!("1{}", String::from_utf8_lossy(&bytes)), n + 1)
}

/// Splits Rust's `<digit>[.<digits>]e<exponent>` into its digits and ECMA-262's `n` (the
/// exponent plus one). Shortest-form digits never end in 0; fixed-precision ones may.
fn split_exponent(sci: &str) -> (String, i32) {
    // Rust's `{:e}` always has this shape; the fallbacks are never taken.
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci, "0"));
    let digits = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exponent.parse::<i32>().unwrap_or(0) + 1)
}

/// ECMA-262 `Number::toString` steps 6-10: where the point goes, or whether to use exponent
/// form, given the digits `s` (of length `k`) and the exponent `n`.
fn layout_number(out: &mut String, digits: &str, n: i32) {
    let k = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    if k <= n && n <= 21 {
        // An integer below 10^21: all its digits.
        out.push_str(digits);
        push_zeros(out, n - k);
    } else if 0 < n && n <= 21 {
        // The point falls inside the digits.
        let (int, frac) = digits.split_at(n.unsigned_abs() as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if -6 < n && n <= 0 {
        // Small, but not small enough for exponent form: 0.000001 stays as written.
        out.push_str("0.");
        push_zeros(out, -n);
        out.push_str(digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if n - 1 > 0 { '+' } else { '-' });
        out.push_str(&(n - 1).unsigned_abs().to_string());
    }
}

fn push_zeros(out: &mut String, count: i32) {
    for _ in 0..count {
        out.push('0');
    }
}

/// A JSON number as the JS double that `JSON.parse` makes of it.
///
/// Integers beyond 2^53 round like a double, as in JS (`as` rounds to nearest, ties to even).
fn number_value(n: &Number) -> f64 {
    // Without serde_json's `arbitrary_precision` feature `as_f64` is never `None`.
    n.as_f64().unwrap_or(f64::NAN)
}

/// Whether the canonicaliser follows upstream into its `TypeError`s or renders through them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Fail with [`Unsignable`] where upstream throws.
    Strict,
    /// Render objects with a `toString` key like any object, and stop at `MAX_DEPTH`.
    Lenient,
}

/// The output being built, shared by every level of the recursion.
struct Canon {
    out: String,
    mode: Mode,
}

impl Canon {
    fn new(mode: Mode) -> Self {
        Self {
            out: String::new(),
            mode,
        }
    }

    /// The signed fields of a request body: upstream's `{appid, nonce, timestamp, payload}` and
    /// ehsm's `action`.
    fn signed_fields(&mut self, body: &Map<String, Value>) -> Result<(), Unsignable> {
        let start = self.out.len();
        for key in SIGNED_FIELDS {
            if let Some(value) = body.get(key) {
                self.entry(start, key, value, 1)?;
            }
        }
        Ok(())
    }

    /// `params_sort_str(value)` for an object or array; nothing for anything else.
    fn container(&mut self, value: &Value, depth: usize) -> Result<(), Unsignable> {
        if depth > MAX_DEPTH {
            return self.too_deep();
        }
        match value {
            Value::Object(map) => self.object(map, depth),
            Value::Array(items) => self.array(items, depth),
            _ => Ok(()),
        }
    }

    fn object(&mut self, map: &Map<String, Value>, depth: usize) -> Result<(), Unsignable> {
        let mut entries: Vec<(&String, &Value)> = map.iter().collect();
        // JS `sort()` compares UTF-16 code units. serde_json's map iterates in byte order, which
        // differs for keys that mix U+E000..U+FFFF with characters above U+FFFF.
        entries.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
        let start = self.out.len();
        for (key, value) in entries {
            self.entry(start, key, value, depth + 1)?;
        }
        Ok(())
    }

    fn array(&mut self, items: &[Value], depth: usize) -> Result<(), Unsignable> {
        // `Object.keys(array)` gives the indexes as strings, and `sort()` sorts them as strings:
        // "10" comes before "2".
        let mut entries: Vec<(String, &Value)> = items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect();
        entries.sort_by(|(a, _), (b, _)| a.cmp(b));
        let start = self.out.len();
        for (key, value) in entries {
            self.entry(start, &key, value, depth + 1)?;
        }
        Ok(())
    }

    /// One `key=value` of the container whose rendering began at `start`, unless the value is
    /// empty in upstream's loose sense. `depth` is the value's own nesting depth.
    fn entry(
        &mut self,
        start: usize,
        key: &str,
        value: &Value,
        depth: usize,
    ) -> Result<(), Unsignable> {
        if self.is_skipped(value, depth)? {
            return Ok(());
        }
        // `(str && '&')`: every entry writes at least `=`, so "something written" is "not first".
        if self.out.len() > start {
            self.out.push('&');
        }
        self.out.push_str(key);
        self.out.push('=');
        match value {
            Value::Object(_) | Value::Array(_) => self.container(value, depth)?,
            Value::String(s) => self.out.push_str(s),
            Value::Number(n) => self.out.push_str(&js_number_string(number_value(n))),
            Value::Bool(true) => self.out.push_str("true"),
            // Skipped above.
            Value::Bool(false) | Value::Null => {}
        }
        Ok(())
    }

    /// Upstream's `!(v != '' && v != undefined && v != null)`.
    ///
    /// `v != ''` is loose equality: a boolean or number is compared as a number with
    /// `Number('') = 0`, and an object or array as its string form.
    fn is_skipped(&self, value: &Value, depth: usize) -> Result<bool, Unsignable> {
        Ok(match value {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Number(n) => number_value(n) == 0.0,
            Value::String(s) => s.is_empty(),
            Value::Object(map) => {
                // `String({...})` is "[object Object]", never "".
                self.object_to_primitive(map)?;
                false
            }
            Value::Array(items) => self.joins_to_empty(items, depth)?,
        })
    }

    /// `String(items) === ""`, where JS `String(array)` is `items.join(",")`: `null` becomes "",
    /// a nested array its own join, an object "[object Object]", anything else its own string.
    ///
    /// A join of two or more items holds a comma, so it is empty only for `[]` or for one item
    /// whose string is empty: `[""]`, `[null]`, `[[]]`, `[[""]]`, …. `["", ""]` is `","`.
    fn joins_to_empty(&self, items: &[Value], depth: usize) -> Result<bool, Unsignable> {
        if depth > MAX_DEPTH {
            // Not empty, so that the entry still shows as `key=` with nothing after it, which is
            // what `container` renders at this depth.
            self.too_deep()?;
            return Ok(false);
        }
        let mut empty = items.len() <= 1;
        for item in items {
            empty &= match item {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                Value::Array(inner) => self.joins_to_empty(inner, depth + 1)?,
                Value::Object(map) => {
                    self.object_to_primitive(map)?;
                    false
                }
                // `false` is "false" and 0 is "0" here, unlike in `is_skipped`.
                Value::Bool(_) | Value::Number(_) => false,
            };
            // Strict mode reads on: a later item could still throw, and JS converts them all.
            if !empty && self.mode == Mode::Lenient {
                break;
            }
        }
        Ok(empty)
    }

    /// JS converting an object to a primitive calls its `valueOf` and `toString`. A JSON object
    /// with its own `toString` key shadows the inherited method with data, so the conversion
    /// throws a `TypeError` (an own `valueOf` key is harmless: `toString` still answers).
    fn object_to_primitive(&self, map: &Map<String, Value>) -> Result<(), Unsignable> {
        if self.mode == Mode::Strict && map.contains_key("toString") {
            return Err(Unsignable);
        }
        Ok(())
    }

    fn too_deep(&self) -> Result<(), Unsignable> {
        match self.mode {
            Mode::Strict => Err(Unsignable),
            Mode::Lenient => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    const APPID: &str = "b7c62e4d-c238-4016-b35f-47bc4b57dc03";

    fn body(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    /// The canonical strings of spec §3.6 (their MACs are checked in `tests/spec_vectors.rs`).
    #[test]
    fn spec_3_6_canonical_strings() {
        let cases = [
            (
                json!({"appid": APPID, "timestamp": "1700000000000", "sign": "x", "payload": {
                    "keyspec": "EH_AES_GCM_256", "origin": "EH_INTERNAL_KEY",
                    "keyusage": "EH_KEYUSAGE_ENCRYPT_DECRYPT"}}),
                "payload=keyspec=EH_AES_GCM_256&keyusage=EH_KEYUSAGE_ENCRYPT_DECRYPT&origin=EH_INTERNAL_KEY&",
            ),
            (json!({"appid": APPID, "timestamp": "1700000000000"}), ""),
            (
                json!({"appid": APPID, "timestamp": "1700000000000", "nonce": "1234567890",
                    "payload": {"keyid": "aac3e45a-d3dc-4791-89b6-4ada0e38e6ef", "keylen": 16, "aad": ""}}),
                "nonce=1234567890&payload=keyid=aac3e45a-d3dc-4791-89b6-4ada0e38e6ef&keylen=16&",
            ),
            (
                json!({"appid": APPID, "timestamp": "1700000000000", "payload": {}}),
                "payload=&",
            ),
            (
                json!({"appid": APPID, "timestamp": "1700000000000", "payload": {
                    "secretName": "a b&c=d", "forceDelete": "true", "recoveryPeriod": 7}}),
                "payload=forceDelete=true&recoveryPeriod=7&secretName=a b&c=d&",
            ),
            (
                json!({"appid": APPID, "timestamp": "1700000000000", "payload": {
                    "b": true, "f": false, "z": 0, "e": [], "a": [1, 2], "n": {"y": 1, "x": "q"}, "s": " "}}),
                "payload=a=0=1&1=2&b=true&n=x=q&y=1&s= &",
            ),
        ];
        for (request, middle) in cases {
            let want = format!("appid={APPID}&{middle}timestamp=1700000000000");
            assert_eq!(signing_string(&body(request.clone())), want, "{request}");
            assert_eq!(try_signing_string(&body(request)), Ok(want));
        }
    }

    /// Upstream skips a value when `v != ''` is false (loose equality) or it is null. Each
    /// expectation here was reasoned from JS semantics and then confirmed with node 20 running
    /// upstream's `params_sort_str`.
    #[test]
    fn loose_empty_values_are_skipped() {
        let cases = [
            ("null", ""),
            (r#""""#, ""),
            ("false", ""),
            ("0", ""),
            ("-0", ""),
            ("0.0", ""),
            ("[]", ""),
            // An array is compared as `String(array)`, i.e. its items joined with ",", with
            // null as "". These all join to "".
            (r#"[""]"#, ""),
            ("[null]", ""),
            ("[[]]", ""),
            (r#"[[""]]"#, ""),
            ("[[[null]]]", ""),
            // Two items join to at least ",", so the array is kept even though every item in
            // it is then skipped: `k=` with nothing after it.
            (r#"["",""]"#, "k="),
            ("[null,null]", "k="),
            ("[[],null]", "k="),
            // In a join, 0 is "0" and false is "false": kept. Inside, the item itself is
            // compared with '' and skipped.
            ("[0]", "k="),
            ("[false]", "k="),
            // [0] joins to "0", so it is kept as an item too; its own item 0 is skipped.
            ("[[0]]", "k=0="),
            // An object joins as "[object Object]".
            ("[{}]", "k=0="),
            // An object is never == '' ("[object Object]"), even with nothing to render.
            ("{}", "k="),
            (r#"{"a":null}"#, "k="),
            ("true", "k=true"),
            // Strings are compared strictly with '': only "" itself is empty.
            (r#"" ""#, "k= "),
            (r#""0""#, "k=0"),
            (r#""false""#, "k=false"),
            ("1", "k=1"),
            ("-1", "k=-1"),
            ("[1,2]", "k=0=1&1=2"),
            // An own `valueOf` key is harmless: the conversion falls back to `toString`.
            (r#"{"valueOf":1}"#, "k=valueOf=1"),
            (r#"[{"valueOf":1}]"#, "k=0=valueOf=1"),
        ];
        for (value, want) in cases {
            let text = format!(r#"{{"k":{value}}}"#);
            assert_eq!(canonicalize(&parse(&text)), want, "{text}");
        }
    }

    #[test]
    fn keys_sort_by_utf16_code_units() {
        // ASCII: byte order, so upper case before `_` before lower case; "" first.
        let ascii = parse(r#"{"a":3,"_":2,"B":1,"":4}"#);
        assert_eq!(canonicalize(&ascii), "=4&B=1&_=2&a=3");
        // U+1F600 is the surrogate pair D83D DE00 in UTF-16, which sorts before U+E000 and
        // U+FFFF; in UTF-8 byte order (and serde_json's map order) it sorts after them.
        let astral = json!({"\u{E000}": 2, "\u{FFFF}": 3, "\u{1F600}": 1, "\u{D7FF}": 5});
        assert_eq!(
            canonicalize(&astral),
            "\u{D7FF}=5&\u{1F600}=1&\u{E000}=2&\u{FFFF}=3"
        );
    }

    #[test]
    fn array_indexes_sort_as_strings() {
        let letters = json!(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"]);
        assert_eq!(
            canonicalize(&letters),
            "0=a&1=b&10=k&2=c&3=d&4=e&5=f&6=g&7=h&8=i&9=j"
        );
        // Nested arrays and objects render without brackets or braces.
        let nested = json!({"a": [[1, [2]], {"y": [], "x": "q"}]});
        assert_eq!(canonicalize(&nested), "a=0=0=1&1=0=2&1=x=q");
    }

    #[test]
    fn strings_are_raw() {
        let value = json!({"s": "a&b=c\nd é \"q\" \\ %20+\u{0}"});
        assert_eq!(canonicalize(&value), "s=a&b=c\nd é \"q\" \\ %20+\u{0}");
    }

    #[test]
    fn non_containers_canonicalize_to_nothing() {
        for value in [json!(null), json!(true), json!(5), json!("abc")] {
            assert_eq!(canonicalize(&value), "", "{value}");
        }
        assert_eq!(canonicalize(&json!([1, "x"])), "0=1&1=x");
    }

    /// ECMA-262 `Number::toString`. Expected strings confirmed with node 20; the large tables
    /// are in `tests/data/js_number_strings.txt`.
    #[test]
    fn numbers_render_like_js_string() {
        let cases: [(f64, &str); 29] = [
            (1.0, "1"),
            (-0.0, "0"),
            (0.0, "0"),
            (-1.5, "-1.5"),
            (100.0, "100"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (-1e21, "-1e+21"),
            (1.5e21, "1.5e+21"),
            (123.456, "123.456"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e-6, "0.000001"),
            (1.5e-6, "0.0000015"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            // Both "…568e+23" and "…569e+23" parse back to this double; JS picks the one
            // closer to its exact value 123456789012345685803008.
            (123_456_789_012_345_678_901_234.0, "1.2345678901234569e+23"),
            (9_007_199_254_740_993.0, "9007199254740992"),
            (18_446_744_073_709_551_615.0, "18446744073709552000"),
            (999_999_999_999_999_900_000.0, "999999999999999900000"),
            (1e100, "1e+100"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (4.35, "4.35"),
            // Exactly between two shortest candidates: JS takes the even last digit, where
            // Rust's own formatting gives "1234567890000000.3".
            // 1234567890000000.25 and 1234567889999999.75 exactly.
            (f64::from_bits(0x4311_8b54_f223_6201), "1234567890000000.2"),
            (f64::from_bits(0x4311_8b54_f223_61ff), "1234567889999999.8"),
        ];
        for (x, want) in cases {
            assert_eq!(js_number_string(x), want, "{x:e}");
        }
    }

    #[test]
    fn increment_digits_carries() {
        assert_eq!(increment_digits("1", 1), ("2".to_owned(), 1));
        assert_eq!(increment_digits("199", -3), ("200".to_owned(), -3));
        assert_eq!(increment_digits("999", 5), ("1000".to_owned(), 6));
    }

    /// `JSON.parse` makes every number a double; serde_json keeps big integers exact.
    #[test]
    fn json_numbers_are_js_doubles() {
        let value = parse(
            r#"{"a":1.0,"b":9007199254740993,"c":18446744073709551615,"d":-9223372036854775808,"e":1e21,"f":1E2}"#,
        );
        assert_eq!(
            canonicalize(&value),
            "a=1&b=9007199254740992&c=18446744073709552000&d=-9223372036854776000&e=1e+21&f=100"
        );
    }

    #[test]
    fn signing_string_uses_only_the_signed_fields() {
        let request = json!({"timestamp": "1", "sign": "s", "Action": "x", "appid": "a",
            "nonce": "n", "payload": {"k": "v"}, "zzz": 1});
        assert_eq!(
            signing_string(&body(request)),
            "appid=a&nonce=n&payload=k=v&timestamp=1"
        );
        // The nonce is any value, skipped when loosely empty like any other.
        let zero_nonce = json!({"appid": "a", "nonce": 0, "timestamp": "1"});
        assert_eq!(signing_string(&body(zero_nonce)), "appid=a&timestamp=1");
        let array_payload = json!({"appid": "a", "payload": [], "timestamp": "1"});
        assert_eq!(signing_string(&body(array_payload)), "appid=a&timestamp=1");
        assert_eq!(signing_string(&Map::new()), "");
        // ehsm's signed action comes first; `Action` (the query parameter's spelling) is not it.
        let with_action = json!({"action": "Encrypt", "appid": "a", "timestamp": "1"});
        assert_eq!(
            signing_string(&body(with_action)),
            "action=Encrypt&appid=a&timestamp=1"
        );
    }

    /// Comparing an object that has its own `toString` key with '' throws in JS, and upstream
    /// then refuses the request. Confirmed with node 20.
    #[test]
    fn own_to_string_key_is_unsignable() {
        let throwing = [
            json!({"toString": 1}),
            json!({"a": {"toString": "x"}}),
            json!([1, {"toString": 1}]),
            json!([[{"toString": 1}], 1]),
            json!({"a": [[{"toString": 1}, 1]]}),
        ];
        for payload in throwing {
            let request = body(json!({"appid": "a", "timestamp": "1", "payload": payload}));
            assert_eq!(try_signing_string(&request), Err(Unsignable), "{payload}");
            // The infallible form renders the object like any other.
            assert!(signing_string(&request).starts_with("appid=a&payload="));
        }
        // At any depth, whatever the key holds.
        let deep = body(json!({"appid": "a", "payload": {"a": {"b": {"toString": null}}}}));
        assert_eq!(try_signing_string(&deep), Err(Unsignable));
        // The root object is never compared with '', so its own key is fine; so is an own
        // `valueOf` key, since the conversion then falls back to the inherited `toString`.
        assert_eq!(canonicalize(&json!({"toString": "x"})), "toString=x");
        let fine = body(json!({"appid": "a", "timestamp": "1", "payload": {"valueOf": {"x": 1}}}));
        assert_eq!(
            try_signing_string(&fine).as_deref(),
            Ok("appid=a&payload=valueOf=x=1&timestamp=1")
        );
    }

    fn nested_arrays(depth: usize) -> Value {
        let mut value = json!("x");
        for _ in 0..depth {
            value = Value::Array(vec![value]);
        }
        value
    }

    #[test]
    fn parsed_json_never_reaches_the_depth_limit() {
        // serde_json parses at most 127 nested containers; all of them are rendered.
        let text = format!("{}\"x\"{}", "[".repeat(127), "]".repeat(127));
        let value = parse(&text);
        let want = "0=".repeat(126) + "0=x";
        assert_eq!(canonicalize(&value), want);
        let request = body(json!({"appid": "a", "payload": nested_arrays(127)}));
        assert_eq!(
            try_signing_string(&request),
            Ok(format!("appid=a&payload={want}"))
        );
        assert!(
            serde_json::from_str::<Value>(&format!("{}{}", "[".repeat(128), "]".repeat(128)))
                .is_err()
        );
    }

    #[test]
    fn deeper_values_stop_at_the_depth_limit() {
        // Built in code, deeper than any parsed body: no stack overflow, and strict mode refuses.
        let value = nested_arrays(1000);
        let rendered = canonicalize(&value);
        assert_eq!(rendered, "0=".repeat(MAX_DEPTH + 1));
        let request = body(json!({"appid": "a", "payload": value}));
        assert_eq!(try_signing_string(&request), Err(Unsignable));
    }

    /// JS `String(v)` as `Array.prototype.join` applies it to items: the reference that
    /// `joins_to_empty` takes a shortcut through.
    fn js_string(value: &Value) -> String {
        match value {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => js_number_string(number_value(n)),
            Value::String(s) => s.clone(),
            Value::Array(items) => items.iter().map(js_string).collect::<Vec<_>>().join(","),
            Value::Object(_) => "[object Object]".to_owned(),
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<f64>()
                .prop_map(|x| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)),
            any::<i64>().prop_map(Value::from),
            prop_oneof![
                Just(String::new()),
                Just("toString".to_owned()),
                any::<String>()
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop_oneof![Just("toString".to_owned()), "[a-c]{0,2}", any::<String>()],
                        inner
                    ),
                    0..4
                )
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn joins_to_empty_is_js_string_of_array_is_empty(value in arb_json()) {
            if let Value::Array(items) = &value {
                let lenient = Canon::new(Mode::Lenient);
                prop_assert_eq!(lenient.joins_to_empty(items, 1), Ok(js_string(&value).is_empty()));
            }
        }

        #[test]
        fn strict_and_lenient_agree_unless_strict_refuses(value in arb_json()) {
            let request = body(json!({"appid": "a", "timestamp": "1", "payload": value}));
            if let Ok(strict) = try_signing_string(&request) {
                prop_assert_eq!(strict, signing_string(&request));
            }
        }

        /// Any JS double rendered by us parses back to itself, the property that makes the
        /// digits "round-trip"; node agreement is checked in `tests/js_canon.rs`.
        #[test]
        fn js_number_string_round_trips(bits in any::<u64>()) {
            let x = f64::from_bits(bits);
            prop_assume!(x.is_finite());
            let text = js_number_string(x);
            let back: f64 = text.parse().unwrap();
            prop_assert!(back == x, "{} -> {}", x, text);
        }
    }
}
