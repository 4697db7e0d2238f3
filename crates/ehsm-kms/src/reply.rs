//! The eHSM response envelope (spec §2.2) and the one place where errors become eHSM codes.
//!
//! Every answer the application gives is HTTP 200 with `{code, message, result}`; clients read
//! `code`. `message` and an object `result` are always present (upstream sometimes omitted
//! `message` and sent `result: null`, which breaks the Go and Python SDKs).

use std::borrow::Cow;

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

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
        Json(json!({"code": 200, "message": self.message, "result": self.result})).into_response()
    }
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
        Json(json!({"code": self.code, "message": self.message, "result": {}})).into_response()
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

/// What every handler returns.
pub(crate) type ApiResult = Result<Reply, ApiError>;
