//! The eHSM response envelope (spec §2.2) and the one place where errors become eHSM codes.
//!
//! Every answer the application gives is HTTP 200 with `{code, message, result}`; clients read
//! `code`. `message` and an object `result` are always present (upstream sometimes omitted
//! `message` and sent `result: null`, which breaks the Go and Python SDKs).

use std::borrow::Cow;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::op_error::{OpError, Quota};
use crate::validate::RESERVED_ALIAS_PREFIX;

/// A successful result with its message (`success!` for crypto actions, `successful` for key
/// management and Enroll, as upstream).
pub(crate) struct Reply {
    message: Cow<'static, str>,
    result: Map<String, Value>,
}

impl Reply {
    pub(crate) fn success(result: Value) -> Self {
        Self::with_message("success!", result)
    }

    pub(crate) fn successful(result: Value) -> Self {
        Self::with_message("successful", result)
    }

    /// A success with another message (the secrets actions name the secret in theirs).
    pub(crate) fn with_message(message: impl Into<Cow<'static, str>>, result: Value) -> Self {
        let result = match result {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        Self {
            message: message.into(),
            result,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        envelope_response(200, &self.message, &self.result)
    }
}

/// The answer `{"code":..,"message":..,"result":{..}}` as an HTTP 200 JSON response.
///
/// Written here rather than through `serde_json::Value`: an answer is mostly base64 (a 1 KiB
/// ciphertext is 1.4 KB of it), and serde_json examines such a string byte by byte for
/// characters to escape, which was 4% of the server's CPU for an Encrypt. The bytes are the
/// same as serde_json's (tested below).
fn envelope_response(code: u16, message: &str, result: &Map<String, Value>) -> Response {
    let mut body = Vec::with_capacity(48 + message.len() + result_len_hint(result));
    body.extend_from_slice(b"{\"code\":");
    body.extend_from_slice(code.to_string().as_bytes());
    body.extend_from_slice(b",\"message\":");
    write_json_str(&mut body, message);
    body.extend_from_slice(b",\"result\":{");
    for (i, (name, value)) in result.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        write_json_str(&mut body, name);
        body.push(b':');
        match value {
            Value::String(s) => write_json_str(&mut body, s),
            // Numbers, booleans and the few nested lists (ListKey, ListSecrets): serde_json.
            other => {
                if let Err(e) = serde_json::to_writer(&mut body, other) {
                    return ApiError::internal(&e).into_response();
                }
            }
        }
    }
    body.extend_from_slice(b"}}");
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Roughly how long `result`'s JSON is, so that the body is allocated once.
fn result_len_hint(result: &Map<String, Value>) -> usize {
    result
        .iter()
        .map(|(name, value)| {
            name.len()
                + 4
                + if let Value::String(s) = value {
                    s.len() + 2
                } else {
                    16
                }
        })
        .sum()
}

/// Appends `s` as a JSON string exactly as serde_json writes it: `"` and `\` escaped,
/// control characters as `\b \f \n \r \t` or `\u00XX`, everything else as it is.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Fast path: most strings (base64, ids, messages) need no escape at all. The fold has no
    // early exit so that the compiler can vectorise it.
    let plain = bytes
        .iter()
        .fold(true, |ok, &b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'));
    if plain {
        out.extend_from_slice(bytes);
    } else {
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0..=0x1f => b"",
                _ => continue,
            };
            out.extend_from_slice(&bytes[start..i]);
            if escape.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            } else {
                out.extend_from_slice(escape);
            }
            start = i + 1;
        }
        out.extend_from_slice(&bytes[start..]);
    }
    out.push(b'"');
}

/// An eHSM error answer: HTTP 200, body code and message, empty result.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: 400,
            message: message.into(),
        }
    }

    pub(crate) fn not_found() -> Self {
        Self {
            code: 404,
            message: "API Not Found".into(),
        }
    }

    /// A server-side failure. The client gets upstream's generic message; the details go to the
    /// log (never a secret: core and store errors carry none).
    pub(crate) fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self {
            code: 500,
            message: "Server exception.".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        envelope_response(self.code, &self.message, &Map::new())
    }
}

impl From<ehsm_core::Error> for ApiError {
    /// Core errors to eHSM answers. Upstream answered most enclave failures with 500; ehsm
    /// answers every client mistake (bad input, a key that cannot do the operation, a wrong
    /// ciphertext) with 400 and a message that says what was wrong, and keeps 500 for failures
    /// of the server itself. Clients only test `code != 200` for these (spec §6.2).
    fn from(e: ehsm_core::Error) -> Self {
        use ehsm_core::Error as E;
        match e {
            E::InvalidInput(what) => Self::bad_request(format!("Parameter invalid, {what}.")),
            E::NotPermitted(what) => Self::bad_request(format!("Operation not permitted, {what}.")),
            E::DecryptionFailed => Self::bad_request(
                "Decryption failed, Please confirm that your parameters are correct.",
            ),
            E::RequestMacMismatch => Self::bad_request("sign error"),
            E::ImportTokenExpired => Self::bad_request(
                "Token validity time is 24 hours. Try to send \"GetParametersForImport\" request again.",
            ),
            E::InvalidImportToken => Self::bad_request("ImportToken failed."),
            E::IntegrityFailure(_) | E::UnknownDomainKey(_) | E::Backend(_) | E::SelfTest(_) => {
                Self::internal(&e)
            }
        }
    }
}

impl From<ehsm_store::Error> for ApiError {
    fn from(e: ehsm_store::Error) -> Self {
        tracing::error!(error = %e, "store error");
        Self {
            code: 500,
            message: "database error".into(),
        }
    }
}

impl From<OpError> for ApiError {
    /// The eHSM wording of a shared operation's refusal (upstream's messages where upstream had
    /// the case, docs/key-lifecycle.md's for the extensions).
    fn from(e: OpError) -> Self {
        match e {
            OpError::UnknownKey => Self::bad_request("keyid error"),
            OpError::UnknownAlias(alias) => Self::bad_request(format!(
                "Parameter invalid, The alias {alias} does not exist."
            )),
            OpError::Disabled => Self::bad_request("keyid is disabled"),
            // Expired keys are refused, never deleted: their ciphertexts may still matter.
            OpError::Expired => Self::bad_request("keyid expire"),
            OpError::PendingDeletion(date) => Self::bad_request(format!(
                "keyid is pending deletion: it will be deleted at {date} (ms since the epoch); \
                 CancelKeyDeletion keeps it."
            )),
            OpError::EnablePendingDeletion => Self::bad_request(
                "keyid is pending deletion: CancelKeyDeletion first, then EnableKey.",
            ),
            OpError::AliasExists(alias) => Self::bad_request(format!(
                "Parameter invalid, The alias {alias} already exists: UpdateAlias points it at \
                 another key."
            )),
            OpError::AliasOfAlias => Self::bad_request(
                "Parameter invalid, The keyid of an alias must be a keyid, not another alias.",
            ),
            OpError::AliasKind { alias, spec, usage } => Self::bad_request(format!(
                "Parameter invalid, The keyid must be a key of the same kind as the one {alias} \
                 names now ({} with usage {}).",
                spec.as_str(),
                usage.as_str()
            )),
            OpError::ReservedAlias => Self::bad_request(format!(
                "Parameter invalid, The alias must not start with {RESERVED_ALIAS_PREFIX}: AWS \
                 KMS reserves those names."
            )),
            OpError::QuotaExceeded {
                quota,
                count,
                limit,
            } => {
                let (what, plural) = match quota {
                    Quota::Keys => ("Key", "keys"),
                    Quota::Aliases => ("Alias", "aliases"),
                };
                quota_exceeded(what, plural, count, limit)
            }
            OpError::Core(e) => e.into(),
            OpError::Store(e) => e.into(),
            OpError::Corrupt(what) => Self::internal(&what),
        }
    }
}

/// A full per-app quota (`what`: "Key", `plural`: "keys"): a 400 that says so.
pub(crate) fn quota_exceeded(what: &str, plural: &str, count: u64, quota: u64) -> ApiError {
    ApiError::bad_request(format!(
        "{what} quota exceeded: this app already has {count} {plural} \
         (the server's limit is {quota} per app)."
    ))
}

/// What every handler returns.
pub(crate) type ApiResult = Result<Reply, ApiError>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    async fn body(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    /// Every character class a JSON string can hold, in every position.
    fn strings() -> Vec<String> {
        let mut out: Vec<String> = (0u8..=0x7f).map(|b| char::from(b).to_string()).collect();
        out.extend(
            [
                "",
                "plain base64+/=",
                "a\"b\\c",
                "tab\there\nnew\r\u{8}\u{c}\u{0}\u{1f}\u{7f}",
                "é 漢 \u{1F600}",
                "\"\"\\\\",
            ]
            .map(String::from),
        );
        out.push((0u8..=0x7f).map(char::from).collect());
        out
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for s in strings() {
            let mut ours = Vec::new();
            write_json_str(&mut ours, &s);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&s).unwrap(),
                "{s:?}"
            );
        }
    }

    #[tokio::test]
    async fn answers_are_the_bytes_serde_json_would_send() {
        let list = json!([{"keyid": "k", "keyState": 1, "alias": ""}]);
        for s in strings() {
            let result = json!({"ciphertext": s, "n": 7, "ok": true, "list": list, "name": s});
            let reply = Reply::with_message(s.clone(), result.clone());
            let expected = json!({"code": 200, "message": s, "result": result});
            let response = reply.into_response();
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            assert_eq!(body(response).await, serde_json::to_vec(&expected).unwrap());
        }
        let refused = ApiError::bad_request("sign error").into_response();
        assert_eq!(
            body(refused).await,
            br#"{"code":400,"message":"sign error","result":{}}"#
        );
    }
}
