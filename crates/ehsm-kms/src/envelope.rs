//! The request envelope and the checks of spec §2.4, in upstream's order; the first failure
//! answers. Each step returns the next stage's type, so a handler can only ever see a request
//! that went through every check (`Authenticated`).
//!
//! Envelope → (steps 1–6) Fresh → (step 7, replay) → (step 8, payload schema) Validated →
//! (step 9, app + MAC) Authenticated → the action.

use ehsm_core::MacVerified;
use ehsm_proto::Action;
use serde_json::{Map, Value};

use crate::reply::ApiError;
use crate::validate::js_length;

/// A parsed request body, before any check.
pub(crate) struct Envelope {
    body: Map<String, Value>,
}

/// Steps 1–6 passed: the fields have the right types and the timestamp is within the window.
pub(crate) struct Fresh {
    pub(crate) body: Map<String, Value>,
}

/// A request whose MAC checked out against its app's API key.
pub(crate) struct Authenticated<'a> {
    pub(crate) appid: &'a str,
    pub(crate) payload: &'a Map<String, Value>,
    pub(crate) mac: MacVerified<'a>,
}

/// The ±10-minute timestamp window (spec §3.3), strict.
const WINDOW_MS: f64 = 600_000.0;

fn missing() -> ApiError {
    ApiError::bad_request("Missing required parameters")
}

/// JavaScript truthiness, which upstream's presence checks use.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(_) | Value::Object(_)) => true,
    }
}

/// `Number(s)` for the timestamp: JavaScript trims white space, reads hex/octal/binary integer
/// prefixes and decimal floats (with exponent); anything else is NaN.
fn js_number(s: &str) -> f64 {
    let t = s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if t.is_empty() {
        return 0.0;
    }
    let radix = |prefix: &[&str], radix| {
        prefix
            .iter()
            .find_map(|p| t.strip_prefix(p))
            .map(|d| u64::from_str_radix(d, radix).map_or(f64::NAN, |v| v as f64))
    };
    if let Some(v) = radix(&["0x", "0X"], 16)
        .or_else(|| radix(&["0o", "0O"], 8))
        .or_else(|| radix(&["0b", "0B"], 2))
    {
        return v;
    }
    // Rust also accepts "inf", "nan" and "infinity"; JavaScript does not (and "Infinity" would
    // fail the window anyway), so only digits, signs, dots and exponents go to the parser.
    if t.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
    {
        t.parse().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    }
}

impl Envelope {
    pub(crate) fn new(body: Map<String, Value>) -> Self {
        Self { body }
    }

    /// Steps 1–6 of spec §2.4.
    pub(crate) fn check(self, action: Option<Action>, now_ms: u64) -> Result<Fresh, ApiError> {
        let b = &self.body;
        // 1. appid, timestamp and sign present (truthy).
        if !(truthy(b.get("appid")) && truthy(b.get("timestamp")) && truthy(b.get("sign"))) {
            return Err(missing());
        }
        // 2. Cryptographic actions need a payload.
        if action.is_some_and(Action::needs_payload) && !truthy(b.get("payload")) {
            return Err(missing());
        }
        // 3. Types: a truthy payload must be an object (arrays pass, as in JavaScript).
        let payload_ok = !truthy(b.get("payload"))
            || matches!(b.get("payload"), Some(Value::Object(_) | Value::Array(_)));
        let (Some(Value::String(_)), Some(Value::String(timestamp)), Some(Value::String(_))) =
            (b.get("appid"), b.get("timestamp"), b.get("sign"))
        else {
            return Err(ApiError::bad_request("param type error"));
        };
        if !payload_ok {
            return Err(ApiError::bad_request("param type error"));
        }
        // 4. A nonce with a length (a string or an array) is at most 64 long.
        let nonce_len = match b.get("nonce") {
            Some(Value::String(s)) => js_length(s),
            Some(Value::Array(a)) => a.len(),
            _ => 0,
        };
        if nonce_len > 64 {
            return Err(ApiError::bad_request("Nonce length error"));
        }
        // 5, 6. A 13-character timestamp within ±10 minutes.
        if js_length(timestamp) != 13 {
            return Err(ApiError::bad_request("Timestamp length error"));
        }
        let delta = (now_ms as f64 - js_number(timestamp)).abs();
        if delta.is_nan() || delta >= WINDOW_MS {
            return Err(ApiError::bad_request("Timestamp error"));
        }
        Ok(Fresh { body: self.body })
    }
}

impl Fresh {
    pub(crate) fn appid(&self) -> &str {
        self.body
            .get("appid")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub(crate) fn sign(&self) -> &str {
        self.body
            .get("sign")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Checks ehsm's signed `action` field (see `ehsm_proto::canon`) against the request's
    /// `?Action=`: when present it must name that action; when `required`, it must be present.
    /// Call it once the MAC has checked out: only then is the field what the client signed.
    pub(crate) fn check_signed_action(
        &self,
        action: Option<Action>,
        required: bool,
    ) -> Result<(), ApiError> {
        match self.body.get("action") {
            // Canon skips `null`, `""`, `false`, `0` and the like, so such a value may have been
            // added to a signed body by anyone: it counts as absent where that is allowed and
            // as a mismatch otherwise.
            None | Some(Value::Null) if !required => Ok(()),
            None | Some(Value::Null) => Err(ApiError::bad_request(
                "This server requires the signed action: the request body must name its action \
                 in the field \"action\", included in the signature",
            )),
            Some(Value::String(signed)) if action.is_some_and(|a| a.as_str() == signed) => Ok(()),
            Some(_) => Err(ApiError::bad_request(
                "The signed action does not match the Action of the request",
            )),
        }
    }

    /// The payload for validation and the handlers; an absent, null or array payload reads as an
    /// empty object (upstream's lookups of named fields in those find nothing).
    pub(crate) fn payload(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        match self.body.get("payload") {
            Some(Value::Object(m)) => m,
            _ => EMPTY.get_or_init(Map::new),
        }
    }

    /// Whether the body has a payload at all (upstream validates only then).
    pub(crate) fn has_payload(&self) -> bool {
        !matches!(self.body.get("payload"), None | Some(Value::Null))
    }

    /// The canonical string the client signed (spec §3.1); `None` for a body upstream refused
    /// to canonicalise.
    pub(crate) fn signing_string(&self) -> Option<String> {
        ehsm_proto::canon::try_signing_string(&self.body).ok()
    }
}

impl<'a> Authenticated<'a> {
    pub(crate) fn new(fresh: &'a Fresh, mac: MacVerified<'a>) -> Self {
        Self {
            appid: mac.appid(),
            payload: fresh.payload(),
            mac,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000_000;

    fn check(body: Value, action: Action) -> Result<(), String> {
        let Value::Object(m) = body else { panic!() };
        Envelope::new(m)
            .check(Some(action), NOW)
            .map(|_| ())
            .map_err(|e| e.message)
    }

    fn base() -> Value {
        json!({"appid": "a", "timestamp": "1700000000000", "sign": "s", "payload": {"keyid": "k"}})
    }

    fn with(key: &str, v: Value) -> Value {
        let mut b = base();
        b[key] = v;
        b
    }

    fn without(key: &str) -> Value {
        let mut b = base();
        b.as_object_mut().unwrap().remove(key);
        b
    }

    #[test]
    fn pipeline_order_and_messages() {
        let ok = Ok(());
        assert_eq!(check(base(), Action::Encrypt), ok);
        for k in ["appid", "timestamp", "sign"] {
            assert_eq!(
                check(without(k), Action::ListKey).unwrap_err(),
                "Missing required parameters"
            );
            assert_eq!(
                check(with(k, json!("")), Action::ListKey).unwrap_err(),
                "Missing required parameters"
            );
        }
        // Payload required only for cryptographic actions.
        assert_eq!(
            check(without("payload"), Action::Encrypt).unwrap_err(),
            "Missing required parameters"
        );
        assert_eq!(check(without("payload"), Action::ListKey), ok);
        // Types.
        assert_eq!(
            check(with("appid", json!(5)), Action::ListKey).unwrap_err(),
            "param type error"
        );
        assert_eq!(
            check(with("timestamp", json!(1700000000000u64)), Action::ListKey).unwrap_err(),
            "param type error"
        );
        assert_eq!(
            check(with("sign", json!(true)), Action::ListKey).unwrap_err(),
            "param type error"
        );
        assert_eq!(
            check(with("payload", json!("x")), Action::ListKey).unwrap_err(),
            "param type error"
        );
        assert_eq!(
            check(with("payload", json!([1])), Action::ListKey),
            ok,
            "arrays pass"
        );
        // Nonce.
        assert_eq!(
            check(with("nonce", json!("n".repeat(64))), Action::ListKey),
            ok
        );
        assert_eq!(
            check(with("nonce", json!("n".repeat(65))), Action::ListKey).unwrap_err(),
            "Nonce length error"
        );
        assert_eq!(
            check(with("nonce", json!(12345)), Action::ListKey),
            ok,
            "numbers have no length"
        );
        // Timestamp.
        assert_eq!(
            check(with("timestamp", json!("170000000000")), Action::ListKey).unwrap_err(),
            "Timestamp length error"
        );
        assert_eq!(
            check(with("timestamp", json!("1700000600000")), Action::ListKey).unwrap_err(),
            "Timestamp error"
        );
        assert_eq!(
            check(with("timestamp", json!("1699999400001")), Action::ListKey),
            ok
        );
        assert_eq!(
            check(with("timestamp", json!("170000000000x")), Action::ListKey).unwrap_err(),
            "Timestamp error"
        );
        // Step 1 answers before step 3, step 3 before step 5.
        let both = json!({"appid": 5, "timestamp": "1", "sign": "s"});
        assert_eq!(
            check(both, Action::ListKey).unwrap_err(),
            "param type error"
        );
    }

    #[test]
    fn js_number_follows_javascript() {
        assert_eq!(js_number("1700000000000"), 1.7e12);
        assert_eq!(js_number("17000000000e2"), 1.7e12);
        assert_eq!(js_number("0x18BCFE56800"), 1.7e12);
        assert_eq!(js_number(" 170000000000"), 1.7e11);
        assert!(js_number("abc").is_nan());
        assert!(js_number("infinity1234").is_nan());
        assert_eq!(js_number(""), 0.0);
    }
}
