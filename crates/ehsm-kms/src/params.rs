//! Reading validated payload fields. Validation (`validate.rs`) has already checked presence,
//! types and bounds with upstream's messages; these helpers only convert, and still refuse
//! (never panic on) anything validation let through unexpectedly.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::reply::ApiError;

fn missing(name: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Missing required parameters, The {name} cannot be empty."
    ))
}

/// A required string field.
pub(crate) fn string<'a>(p: &'a Map<String, Value>, name: &str) -> Result<&'a str, ApiError> {
    match p.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(missing(name)),
        Some(_) => Err(ApiError::bad_request(format!(
            "Parameter invalid, The {name} must be of string type."
        ))),
    }
}

fn decode(name: &str, s: &str) -> Result<Vec<u8>, ApiError> {
    STANDARD.decode(s).map_err(|_| {
        ApiError::bad_request(format!(
            "Parameter invalid, The {name} not a vailed base64 string."
        ))
    })
}

/// A required base64 field, decoded.
pub(crate) fn bytes(p: &Map<String, Value>, name: &str) -> Result<Vec<u8>, ApiError> {
    decode(name, string(p, name)?)
}

/// An optional base64 field, decoded; absent or `""` is empty (upstream's rule).
pub(crate) fn opt_bytes(p: &Map<String, Value>, name: &str) -> Result<Vec<u8>, ApiError> {
    match p.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(_) => bytes(p, name),
    }
}

/// A required enum field (key spec, padding, ...), by its wire name.
pub(crate) fn name<T>(
    p: &Map<String, Value>,
    field: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, ApiError> {
    parse(string(p, field)?).ok_or_else(|| {
        ApiError::bad_request(format!("Parameter invalid, The {field} type is incorrect."))
    })
}

/// An optional string field: absent, null or `""` is `None` (upstream's
/// `value == undefined || value === ''`).
pub(crate) fn opt_string<'a>(
    p: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    match p.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(_) => string(p, name).map(Some),
    }
}

/// An optional integer field: absent, null or `""` is `None`, as validation has it missing
/// (upstream's `value == undefined || value === ''`).
pub(crate) fn opt_integer(p: &Map<String, Value>, name: &str) -> Result<Option<i64>, ApiError> {
    match p.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(_) => integer(p, name).map(Some),
    }
}

/// A required integer field.
pub(crate) fn integer(p: &Map<String, Value>, name: &str) -> Result<i64, ApiError> {
    p.get(name)
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
        })
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Parameter invalid, The {name} must be of integer type."
            ))
        })
}

/// Standard padded base64, as clients compare it byte for byte (spec §7.3).
pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}
