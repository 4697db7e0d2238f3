//! The signed request envelope of spec §2.3, `{action, appid, timestamp, nonce, payload, sign}`,
//! with everything that does not change between two sends of one payload worked out once.
//!
//! `action` is ehsm's extension: the action's name, signed with the rest, so that a captured
//! request cannot be sent to another action (upstream signs no action: its `?Action=` query
//! parameter is outside the signature). The server checks it when present and can be told to
//! require it (`ehsm serve --require-signed-action`).

use core::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use ehsm_proto::Action;
use ehsm_proto::canon::signing_string;
use serde_json::{Map, Value};

use crate::client::{Credentials, b64};

/// One action with a fixed payload, signed afresh for each send.
///
/// Every request needs its own timestamp and nonce, and so its own signature (spec §3.3), but
/// the rest of the envelope stays the same. A `PreparedRequest` renders the payload's canonical
/// string (spec §3.1) and its JSON text and sets up the HMAC key once, so that each
/// [`PreparedRequest::signed_body`] only hashes and concatenates. Every signed call of
/// [`Client`](crate::Client) goes through it; use it directly to send one payload many times (a
/// load generator) or to send requests with your own HTTP stack: POST the body to
/// [`Client::action_url`](crate::Client::action_url) with `Content-Type: application/json`, and
/// read the answer with [`check_reply`](crate::check_reply).
///
/// The signing string comes from `ehsm_proto::canon`, the canonicaliser the ehsm server itself
/// uses, so client and server cannot disagree about what is signed: upstream's three SDKs each
/// had their own and differed from the server on empty strings, booleans and quotes (spec §3.4).
/// An empty payload object is left out of the envelope, as upstream's Rust SDK does.
///
/// `Debug` shows the action only: the HMAC key is the API key.
pub struct PreparedRequest {
    action: Action,
    appid: String,
    key: hmac::Key,
    /// The payload's entry in the signing string, `payload=<canon(payload)>`, or `""` when canon
    /// skips it or the payload is left out.
    payload_entry: String,
    /// The body up to the nonce's value: `{"action":<action>,"appid":<appid>,"nonce":`.
    head: Vec<u8>,
    /// `,"payload":<payload JSON>`, or nothing when the payload is left out.
    payload_field: Vec<u8>,
}

impl fmt::Debug for PreparedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedRequest")
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

impl PreparedRequest {
    /// Prepares `action` with `payload` (the action's parameters, spec §7), signed with
    /// `credentials`.
    pub fn new(credentials: &Credentials, action: Action, payload: Value) -> Self {
        let mut head = b"{\"action\":".to_vec();
        push_json_string(&mut head, action.as_str());
        head.extend_from_slice(b",\"appid\":");
        push_json_string(&mut head, &credentials.appid);
        head.extend_from_slice(b",\"nonce\":");
        let (payload_entry, payload_field) = if is_empty_object(&payload) {
            (String::new(), Vec::new())
        } else {
            let mut field = b",\"payload\":".to_vec();
            field.extend_from_slice(payload.to_string().as_bytes());
            // Canon renders the payload's entry on its own exactly as within the whole body:
            // each field of the signed object is rendered and skipped independently.
            let only_payload = Map::from_iter([("payload".to_owned(), payload)]);
            (signing_string(&only_payload), field)
        };
        PreparedRequest {
            action,
            appid: credentials.appid.clone(),
            key: hmac::Key::new(hmac::HMAC_SHA256, credentials.apikey.as_bytes()),
            payload_entry,
            head,
            payload_field,
        }
    }

    /// The action this request is for.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The signed JSON body for `timestamp` (milliseconds since the epoch, 13 digits: see
    /// [`timestamp_now`]) and `nonce` (at most 64 characters, never reused with the same
    /// timestamp: the server refuses a replay, spec §3.3).
    pub fn signed_body(&self, timestamp: &str, nonce: &str) -> Vec<u8> {
        let tag = hmac::sign(&self.key, self.signing_string(timestamp, nonce).as_bytes());
        let mut body = Vec::with_capacity(self.head.len() + self.payload_field.len() + 128);
        body.extend_from_slice(&self.head);
        push_json_string(&mut body, nonce);
        body.extend_from_slice(&self.payload_field);
        body.extend_from_slice(b",\"sign\":");
        push_json_string(&mut body, &b64(tag.as_ref()));
        body.extend_from_slice(b",\"timestamp\":");
        push_json_string(&mut body, timestamp);
        body.push(b'}');
        body
    }

    /// The signed JSON body for a request sent now, with a fresh random nonce, as the SDK sends.
    pub fn signed_body_now(&self) -> Vec<u8> {
        self.signed_body(&timestamp_now(), &random_nonce())
    }

    /// `action=<action>&appid=<appid>[&nonce=<nonce>][&payload=<canon(payload)>]&timestamp=<timestamp>`:
    /// canon of the signed fields (spec §3.1), in their sorted order.
    pub(crate) fn signing_string(&self, timestamp: &str, nonce: &str) -> String {
        let mut out =
            String::with_capacity(self.appid.len() + self.payload_entry.len() + nonce.len() + 64);
        push_string_entry(&mut out, "action", self.action.as_str());
        push_string_entry(&mut out, "appid", &self.appid);
        push_string_entry(&mut out, "nonce", nonce);
        push_entry(&mut out, &[self.payload_entry.as_str()]);
        push_string_entry(&mut out, "timestamp", timestamp);
        out
    }
}

/// Canon renders a string field as `key=value` and skips an empty one (`"" != ''` is false).
fn push_string_entry(out: &mut String, key: &str, value: &str) {
    if !value.is_empty() {
        push_entry(out, &[key, "=", value]);
    }
}

/// Appends the entry made of `parts` to a signing string, after an `&` unless it is the first,
/// as canon joins entries; nothing at all for an empty (skipped) entry.
fn push_entry(out: &mut String, parts: &[&str]) {
    if parts.iter().all(|p| p.is_empty()) {
        return;
    }
    if !out.is_empty() {
        out.push('&');
    }
    for part in parts {
        out.push_str(part);
    }
}

fn is_empty_object(value: &Value) -> bool {
    matches!(value, Value::Object(m) if m.is_empty())
}

/// Appends `text` as a JSON string literal.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    // Serialising a `str` into a `Vec` has no failure case.
    let _ = serde_json::to_writer(out, text);
}

/// The `timestamp` of a request sent now: milliseconds since the epoch as a string, 13
/// characters until the year 2286, as the server requires.
pub fn timestamp_now() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    ms.to_string()
}

/// A random u64 in decimal, as upstream's Rust SDK sends.
fn random_nonce() -> String {
    // A v4 UUID has 122 random bits; the 6 fixed ones sit where the other half is random, so the
    // XOR of the two halves is a uniformly random u64.
    let (hi, lo) = uuid::Uuid::new_v4().as_u64_pair();
    (hi ^ lo).to_string()
}
