//! Reading an AWS JSON 1.1 request body: members by their AWS names, with AWS's two kinds of
//! refusal. A member of the wrong JSON type (or a body that is not a JSON object) is a
//! `SerializationException`, as AWS's deserialiser answers; a value of the right type outside
//! its constraints (missing, too long, out of range, not in the enum) is a
//! `ValidationException` worded as AWS words them ("1 validation error detected: Value '0' at
//! 'numberOfBytes' failed to satisfy constraint: ...").
//!
//! Members this server does not know are ignored, as AWS ignores them (newer SDKs send
//! members older services do not have).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::error::AwsError;

/// A request body: the JSON object the operation's members are read from.
pub(crate) struct Input {
    members: Map<String, Value>,
}

/// A body that is not a JSON object.
fn not_an_object() -> AwsError {
    AwsError::serialization("The request body must be a JSON object.".to_owned())
}

impl Input {
    /// Parses a body. An empty body reads as `{}` (an operation without input members).
    pub(crate) fn parse(body: &[u8]) -> Result<Self, AwsError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self {
                members: Map::new(),
            });
        }
        match serde_json::from_slice::<Value>(body) {
            // No database stores a NUL in text, and no AWS member needs one (spec note in
            // `crate::parse_body`): refused once, before anything reads the body.
            Ok(ref object @ Value::Object(_)) if crate::has_nul(object) => {
                Err(AwsError::validation(
                    "1 validation error detected: strings must not contain NUL characters"
                        .to_owned(),
                ))
            }
            Ok(Value::Object(members)) => Ok(Self { members }),
            Ok(_) => Err(not_an_object()),
            Err(e) => Err(AwsError::serialization(format!(
                "The request body is not valid JSON: {e}."
            ))),
        }
    }

    /// A member, if present and not `null` (AWS's serialisers treat `null` as absent).
    fn get(&self, name: &str) -> Option<&Value> {
        self.members.get(name).filter(|v| !v.is_null())
    }

    /// Whether a member is present (and not `null`).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// An optional string member.
    pub(crate) fn opt_string(&self, name: &str) -> Result<Option<&str>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(name, "a string", other)),
        }
    }

    /// A required string member of 1 to `max` characters.
    pub(crate) fn string(&self, name: &str, max: usize) -> Result<&str, AwsError> {
        let s = self.opt_string(name)?.ok_or_else(|| missing(name))?;
        length(name, Some(s), s.chars().count(), 1, max)?;
        Ok(s)
    }

    /// An optional string member of 1 to `max` characters.
    pub(crate) fn opt_string_within(
        &self,
        name: &str,
        min: usize,
        max: usize,
    ) -> Result<Option<&str>, AwsError> {
        let s = self.opt_string(name)?;
        if let Some(s) = s {
            length(name, Some(s), s.chars().count(), min, max)?;
        }
        Ok(s)
    }

    /// An optional enum member: one of `allowed`.
    pub(crate) fn opt_enum(
        &self,
        name: &str,
        allowed: &[&'static str],
    ) -> Result<Option<&'static str>, AwsError> {
        let Some(s) = self.opt_string(name)? else {
            return Ok(None);
        };
        allowed
            .iter()
            .find(|a| **a == s)
            .copied()
            .map(Some)
            .ok_or_else(|| {
                AwsError::validation(format!(
                    "1 validation error detected: Value '{s}' at '{}' failed to satisfy \
                     constraint: Member must satisfy enum value set: [{}]",
                    member(name),
                    allowed.join(", ")
                ))
            })
    }

    /// An optional integer member within `min..=max`.
    pub(crate) fn opt_integer(
        &self,
        name: &str,
        min: i64,
        max: i64,
    ) -> Result<Option<i64>, AwsError> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let n = v
            .as_i64()
            .ok_or_else(|| wrong_type(name, "an integer", v))?;
        let constraint = if n < min {
            format!("greater than or equal to {min}")
        } else if n > max {
            format!("less than or equal to {max}")
        } else {
            return Ok(Some(n));
        };
        Err(AwsError::validation(format!(
            "1 validation error detected: Value '{n}' at '{}' failed to satisfy constraint: \
             Member must have value {constraint}",
            member(name)
        )))
    }

    /// A required integer member within `min..=max`.
    pub(crate) fn integer(&self, name: &str, min: i64, max: i64) -> Result<i64, AwsError> {
        self.opt_integer(name, min, max)?
            .ok_or_else(|| missing(name))
    }

    /// An optional boolean member.
    pub(crate) fn opt_bool(&self, name: &str) -> Result<Option<bool>, AwsError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong_type(name, "a boolean", other)),
        }
    }

    /// A required blob member (base64 in JSON) of 1 to `max` bytes. Blobs may be secret, so
    /// their values are never repeated in a message, as AWS's messages do not.
    pub(crate) fn blob(&self, name: &str, max: usize) -> Result<Vec<u8>, AwsError> {
        let v = self.get(name).ok_or_else(|| missing(name))?;
        let Value::String(s) = v else {
            return Err(wrong_type(name, "a base64 string", v));
        };
        let bytes = STANDARD
            .decode(s)
            .map_err(|_| AwsError::serialization(format!("{name} is not valid base64.")))?;
        length(name, None, bytes.len(), 1, max)?;
        Ok(bytes)
    }

    /// An optional map of strings to strings (EncryptionContext), in key order.
    pub(crate) fn string_map(&self, name: &str) -> Result<BTreeMap<&str, &str>, AwsError> {
        let Some(v) = self.get(name) else {
            return Ok(BTreeMap::new());
        };
        let Value::Object(m) = v else {
            return Err(wrong_type(name, "an object of strings", v));
        };
        m.iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.as_str(), s.as_str())),
                other => Err(wrong_type(&format!("{name}.{k}"), "a string", other)),
            })
            .collect()
    }

    /// An optional list member, as its items.
    pub(crate) fn opt_list(&self, name: &str) -> Result<&[Value], AwsError> {
        match self.get(name) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(wrong_type(name, "a list", other)),
        }
    }
}

/// AWS names members in its validation messages in lower camel case (`keyId`, `numberOfBytes`).
fn member(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_ascii_lowercase().to_string() + chars.as_str()
    })
}

fn missing(name: &str) -> AwsError {
    AwsError::validation(format!(
        "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member \
         must not be null",
        member(name)
    ))
}

/// A length outside `min..=max`; `shown` is the value when it may be repeated (not a blob).
fn length(
    name: &str,
    shown: Option<&str>,
    len: usize,
    min: usize,
    max: usize,
) -> Result<(), AwsError> {
    let constraint = if len < min {
        format!("greater than or equal to {min}")
    } else if len > max {
        format!("less than or equal to {max}")
    } else {
        return Ok(());
    };
    let value = shown.map_or_else(String::new, |s| format!(" '{s}'"));
    Err(AwsError::validation(format!(
        "1 validation error detected: Value{value} at '{}' failed to satisfy constraint: \
         Member must have length {constraint}",
        member(name)
    )))
}

fn wrong_type(name: &str, expected: &str, got: &Value) -> AwsError {
    let kind = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    AwsError::serialization(format!("{name} must be {expected}, not {kind}."))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn input(body: &str) -> Input {
        Input::parse(body.as_bytes()).unwrap()
    }

    fn refusal(r: Result<impl std::fmt::Debug, AwsError>) -> (&'static str, String) {
        let e = r.unwrap_err();
        (e.type_name, e.message)
    }

    #[test]
    fn bodies_that_are_not_objects_are_serialization_errors() {
        for body in ["{", "[]", "1", "\"x\"", "{\"a\":}", "null"] {
            let e = Input::parse(body.as_bytes()).err().unwrap();
            assert_eq!(e.type_name, "SerializationException", "{body}");
            assert_eq!(e.status, 400);
        }
        assert!(input("").opt_string("KeyId").unwrap().is_none());
        assert!(input(" \n").opt_string("KeyId").unwrap().is_none());
        let e = Input::parse(b"{\"KeyId\":\"a\\u0000b\"}").err().unwrap();
        assert_eq!(e.type_name, "ValidationException");
    }

    #[test]
    fn wrong_types_are_serialization_errors_and_null_is_absent() {
        let i = input(
            r#"{"KeyId": 5, "NumberOfBytes": "8", "Plaintext": 1, "EncryptionContext": {"a": 1}, "DryRun": "no", "N": null}"#,
        );
        assert_eq!(
            refusal(i.string("KeyId", 2048)),
            (
                "SerializationException",
                "KeyId must be a string, not a number.".into()
            )
        );
        assert_eq!(
            refusal(i.opt_integer("NumberOfBytes", 1, 1024)).0,
            "SerializationException"
        );
        assert_eq!(
            refusal(i.blob("Plaintext", 4096)).0,
            "SerializationException"
        );
        assert_eq!(
            refusal(i.string_map("EncryptionContext")),
            (
                "SerializationException",
                "EncryptionContext.a must be a string, not a number.".into()
            )
        );
        assert_eq!(refusal(i.opt_bool("DryRun")).0, "SerializationException");
        assert_eq!(i.opt_integer("N", 1, 2).unwrap(), None);
        // 1.5 is a number but not an integer.
        assert_eq!(
            refusal(input(r#"{"Limit": 1.5}"#).opt_integer("Limit", 1, 1000)).0,
            "SerializationException"
        );
    }

    #[test]
    fn constraints_are_validation_errors_worded_as_aws_words_them() {
        let i = input(
            r#"{"NumberOfBytes": 0, "Limit": 1001, "Plaintext": "", "KeySpec": "AES_512", "KeyId": ""}"#,
        );
        assert_eq!(
            refusal(i.opt_integer("NumberOfBytes", 1, 1024)),
            (
                "ValidationException",
                "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy \
                 constraint: Member must have value greater than or equal to 1"
                    .into()
            )
        );
        assert!(
            refusal(i.opt_integer("Limit", 1, 1000))
                .1
                .ends_with("less than or equal to 1000")
        );
        assert_eq!(
            refusal(i.blob("Plaintext", 4096)).1,
            "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: \
             Member must have length greater than or equal to 1"
        );
        assert_eq!(
            refusal(i.opt_enum("KeySpec", &["AES_256", "AES_128"])).1,
            "1 validation error detected: Value 'AES_512' at 'keySpec' failed to satisfy \
             constraint: Member must satisfy enum value set: [AES_256, AES_128]"
        );
        assert_eq!(refusal(i.string("KeyId", 2048)).0, "ValidationException");
        assert_eq!(
            refusal(i.string("Missing", 10)).1,
            "1 validation error detected: Value null at 'missing' failed to satisfy constraint: \
             Member must not be null"
        );
        let long = format!(r#"{{"Plaintext": "{}"}}"#, STANDARD.encode([7u8; 4097]));
        assert!(
            refusal(input(&long).blob("Plaintext", 4096))
                .1
                .ends_with("less than or equal to 4096")
        );
        assert_eq!(
            input(r#"{"Plaintext": "AQI="}"#)
                .blob("Plaintext", 4096)
                .unwrap(),
            [1, 2]
        );
        assert_eq!(
            refusal(input(r#"{"Plaintext": "not base64!"}"#).blob("Plaintext", 9)).0,
            "SerializationException"
        );
    }

    #[test]
    fn maps_are_read_in_key_order() {
        let i = input(r#"{"EncryptionContext": {"b": "2", "a": "1"}}"#);
        let m = i.string_map("EncryptionContext").unwrap();
        assert_eq!(m.into_iter().collect::<Vec<_>>(), [("a", "1"), ("b", "2")]);
    }
}
