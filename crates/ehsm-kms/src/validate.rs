//! Payload validation (spec §5): upstream's `payload_checker.js`, kept as data.
//!
//! Each action has a table of field specs, checked in order by one loop; the first failure is
//! the answer, worded as upstream words it (spec §5.2), because clients and their tests may
//! match those messages.
//!
//! JavaScript semantics that the checks keep:
//! - A field is missing when it is `undefined` or `""`, and upstream's `value == undefined` is
//!   loose, so JSON `null` is missing too. An optional field that is missing is not checked.
//! - String lengths are JS `.length`: UTF-16 code units, so a character above U+FFFF counts 2.
//! - An integer is what `Number.isInteger` accepts, a JSON number with an integral value (so
//!   `16.0` passes and `"16"` fails), whose JS `String()` then matches `/^-?[0-9]*$/`, which
//!   refuses `1e21` and beyond (JS prints those in exponent form).
//! - An enum value must be one of the names: `arr.includes(value)`, so a number or any other
//!   non-string is "type is incorrect", not "must be of string type".
//!
//! A field that neither the table nor [`unchecked_fields`] lists is refused (upstream ignored
//! it). The caller runs this only when the body has a payload (`payload !== undefined` and not null, as
//! upstream's `payload == undefined` check); an array payload reads as an empty map.

use ehsm_proto::Action;
use ehsm_proto::canon::js_number_string;
use ehsm_proto::spec::{DigestMode, KeySpec, KeyUsage, MessageType, Origin, PaddingMode};
use serde_json::{Map, Value};

/// Checks `payload` for `action` with upstream's rules (spec §5.1), fields in the listed order;
/// the first failure is returned as upstream's message (spec §5.2), which the service sends with code 400.
/// Then, unlike upstream, a field the action does not define is refused: a payload signed for
/// one action is then not a valid payload of another (an Encrypt's is not a DeleteKey's).
pub(crate) fn validate(action: Action, payload: &Map<String, Value>) -> Result<(), String> {
    let fields = fields(action);
    for field in fields {
        field
            .check(payload.get(field.name))
            .map_err(|fault| fault.message(field.name))?;
    }
    let unchecked = unchecked_fields(action);
    match payload.keys().find(|key| {
        !fields.iter().any(|f| f.name == key.as_str()) && !unchecked.contains(&key.as_str())
    }) {
        Some(unknown) => Err(format!(
            "Parameter invalid, The {unknown} is not a parameter of {}.",
            action.as_str()
        )),
        None => Ok(()),
    }
}

/// Upstream's `MAX_LENGTH`: 6 KB of data per field.
const MAX: usize = 6 * 1024;
/// A base64 field carrying up to `MAX` bytes: 8192 characters.
const B64_MAX: usize = MAX * 4 / 3;
/// Decrypt's ciphertext. Upstream allowed `(MAX + 30) * 4 / 3` = 8232 characters (6174 bytes),
/// which is too short for its own SM4-CBC ciphertext of a 6144-byte plaintext (6176 bytes): a
/// client could encrypt data it could never decrypt. ehsm's largest ciphertext is SM4-CBC's:
/// a 2- or 3-byte header, 6160 padded bytes and a 16-byte IV, 6179 bytes, 8240 characters. The
/// limit is that, so every ciphertext Encrypt returns decrypts (and nothing upstream accepted is
/// refused).
const CIPHERTEXT_MAX: usize = 6179_usize.div_ceil(3) * 4;

/// One field of an action's payload.
struct Field {
    name: &'static str,
    required: bool,
    kind: Kind,
}

/// A field's type and bounds; the checks of each run in the order of spec §5.1.
enum Kind {
    /// `typeof == "string"`, then `length ≤ max`, `length ≥ min`, then `pattern`.
    Str {
        min: usize,
        max: usize,
        pattern: Option<fn(&str) -> bool>,
    },
    /// As `Str`, then upstream's `is_base64`.
    Base64 { min: usize, max: usize },
    /// ehsm extension: base64 of `min..=max` bytes. Checked as a `Base64` of the encoded
    /// lengths (so the messages and their order are upstream's), then the count of bytes,
    /// which an encoded length gives only to within two.
    Base64Bytes { min: usize, max: usize },
    /// `Number.isInteger`, the digits regex, then `≤ max`, then `≥ min`.
    Int { min: Option<i64>, max: Option<i64> },
    /// One of an enum's wire names.
    Const(fn(&str) -> bool),
    /// ehsm extension: a JSON `true` or `false`.
    Bool,
    /// A key: upstream's keyid (a `Str` of 36 with [`is_keyid`]) or, an ehsm extension, an
    /// alias name (an [`Kind::Alias`]). Anything not starting `alias/` is checked exactly as
    /// upstream checked a keyid, so upstream's clients see upstream's messages.
    KeyRef,
    /// ehsm extension: an alias name, `alias/` and 1 to 250 of `[A-Za-z0-9/_-]`.
    Alias,
}

/// Why a field failed; each is one message of spec §5.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Missing,
    NotString,
    Length,
    Format,
    NotBase64,
    NotInteger,
    AboveMax(i64),
    BelowMin(i64),
    NotInEnum,
    NotBool,
}

impl Fault {
    fn message(self, key: &str) -> String {
        match self {
            Fault::Missing => format!("Missing required parameters, The {key} cannot be empty."),
            Fault::NotString => format!("Parameter invalid, The {key} must be of string type."),
            Fault::Length => format!("Parameter invalid, The {key} length error."),
            Fault::Format => format!("Parameter invalid, The {key} format wrong."),
            // Upstream's spelling, kept: it is what clients have seen.
            Fault::NotBase64 => format!("Parameter invalid, The {key} not a vailed base64 string."),
            Fault::NotInteger => format!("Parameter invalid, The {key} must be of integer type."),
            Fault::AboveMax(max) => {
                format!("Parameter invalid, The {key} value must be less than or equal to {max}.")
            }
            Fault::BelowMin(min) => {
                format!(
                    "Parameter invalid, The {key} value must be greater than or equal to {min}."
                )
            }
            Fault::NotInEnum => format!("Parameter invalid, The {key} type is incorrect."),
            Fault::NotBool => format!("Parameter invalid, The {key} must be of boolean type."),
        }
    }
}

impl Field {
    fn check(&self, value: Option<&Value>) -> Result<(), Fault> {
        // Upstream: `value == undefined || value === ''`; `==` lets null through as undefined.
        let value = match value {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(v) => Some(v),
        };
        match value {
            Some(v) => self.kind.check(v),
            None if self.required => Err(Fault::Missing),
            None => Ok(()),
        }
    }
}

impl Kind {
    fn check(&self, value: &Value) -> Result<(), Fault> {
        match *self {
            Kind::Str { min, max, pattern } => {
                let s = string_in(value, min, max)?;
                match pattern {
                    Some(matches) if !matches(s) => Err(Fault::Format),
                    _ => Ok(()),
                }
            }
            Kind::Base64 { min, max } => {
                let s = string_in(value, min, max)?;
                if is_base64(s) {
                    Ok(())
                } else {
                    Err(Fault::NotBase64)
                }
            }
            Kind::Base64Bytes { min, max } => {
                let encoded = |bytes: usize| bytes.div_ceil(3) * 4;
                Kind::Base64 {
                    min: encoded(min),
                    max: encoded(max),
                }
                .check(value)?;
                let s = value.as_str().unwrap_or_default();
                if (min..=max).contains(&base64_decoded_len(s)) {
                    Ok(())
                } else {
                    Err(Fault::Length)
                }
            }
            Kind::Int { min, max } => {
                let n = js_integer(value).ok_or(Fault::NotInteger)?;
                match (min, max) {
                    (_, Some(max)) if n > max as f64 => Err(Fault::AboveMax(max)),
                    (Some(min), _) if n < min as f64 => Err(Fault::BelowMin(min)),
                    _ => Ok(()),
                }
            }
            Kind::Const(is_name) => match value {
                Value::String(s) if is_name(s) => Ok(()),
                _ => Err(Fault::NotInEnum),
            },
            Kind::Bool => match value {
                Value::Bool(_) => Ok(()),
                _ => Err(Fault::NotBool),
            },
            Kind::KeyRef => match value {
                Value::String(s) if s.starts_with(ALIAS_PREFIX) => Kind::Alias.check(value),
                _ => KEYID_KIND.check(value),
            },
            Kind::Alias => {
                // The prefix first: a name without it is the wrong kind of name whatever its
                // length, and saying "length" for `orders` but "format" for `orders-db`
                // would send users the wrong way.
                if !value.as_str().is_some_and(|s| s.starts_with(ALIAS_PREFIX)) {
                    string_in(value, 0, usize::MAX)?;
                    return Err(Fault::Format);
                }
                let s = string_in(value, ALIAS_MIN, ALIAS_MAX)?;
                if is_alias(s) {
                    Ok(())
                } else {
                    Err(Fault::Format)
                }
            }
        }
    }
}

/// The string in `value` if it is one whose JS length is within `min..=max`, checking the
/// maximum first as upstream does.
fn string_in(value: &Value, min: usize, max: usize) -> Result<&str, Fault> {
    let Value::String(s) = value else {
        return Err(Fault::NotString);
    };
    let len = js_length(s);
    if len > max || len < min {
        return Err(Fault::Length);
    }
    Ok(s)
}

/// JS `String.prototype.length`: UTF-16 code units, so "😀" is 2.
pub(crate) fn js_length(s: &str) -> usize {
    // ASCII (every base64 field, every id) is one UTF-16 unit per byte; `is_ascii` is a fast
    // word-at-a-time scan, where counting characters decodes each one.
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().map(char::len_utf16).sum()
    }
}

/// The number in `value` if upstream takes it as an integer: `Number.isInteger(v)` and
/// `/^-?[0-9]*$/.test(String(v))`.
fn js_integer(value: &Value) -> Option<f64> {
    let Value::Number(n) = value else {
        return None;
    };
    // `JSON.parse` makes every number a double; `as_f64` rounds big integers the same way.
    let x = n.as_f64()?;
    if !x.is_finite() || x.fract() != 0.0 {
        return None;
    }
    // JS writes integral doubles from 1e21 up in exponent form ("1e+21"), which the regex refuses.
    let text = js_number_string(x);
    let digits = text.strip_prefix('-').unwrap_or(&text);
    digits.bytes().all(|b| b.is_ascii_digit()).then_some(x)
}

/// Upstream's `is_base64`: non-empty, a multiple of 4 long, and `^[A-Za-z0-9+/]+={0,2}$`.
fn is_base64(s: &str) -> bool {
    fn alphabet(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
    }
    let body = s.trim_end_matches('=');
    let padding = s.len() - body.len();
    // Byte lengths are JS lengths here: the alphabet check refuses anything not ASCII. Each
    // chunk is folded without an early exit so the compiler can vectorise the range checks
    // (Encrypt's 1 KiB plaintext is 1368 characters, checked on every request).
    !body.is_empty()
        && s.len().is_multiple_of(4)
        && padding <= 2
        && body
            .as_bytes()
            .chunks(64)
            .all(|c| c.iter().fold(true, |ok, &b| ok & alphabet(b)))
}

/// How many bytes `s`, which [`is_base64`] accepts, decodes to.
fn base64_decoded_len(s: &str) -> usize {
    let padding = s.len() - s.trim_end_matches('=').len();
    (s.len() / 4 * 3).saturating_sub(padding)
}

/// Upstream's keyid regex `^[a-z\d]{8}-[a-z\d]{4}-[a-z\d]{4}-[a-z\d]{4}-[a-z\d]{12}$`: the shape
/// of a UUID, but any lower-case alphanumerics, not only hex.
fn is_keyid(s: &str) -> bool {
    let mut groups = s.split('-');
    let shape_ok = [8, 4, 4, 4, 12].into_iter().all(|len| {
        groups.next().is_some_and(|g| {
            g.len() == len
                && g.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
    });
    shape_ok && groups.next().is_none()
}

/// Upstream's `rotationInterval` regex `^(\d{1,4}[d,h,m,s]{1})$`: 1 to 4 digits and a unit. The
/// comma sits inside the character class, so `"30,"` matches too.
fn is_rotation_interval(s: &str) -> bool {
    let Some((unit, digits)) = s.as_bytes().split_last() else {
        return false;
    };
    matches!(unit, b'd' | b',' | b'h' | b'm' | b's')
        && (1..=4).contains(&digits.len())
        && digits.iter().all(u8::is_ascii_digit)
}

/// What every alias name starts with (as AWS KMS's do).
pub(crate) const ALIAS_PREFIX: &str = "alias/";
/// Names AWS KMS keeps for its own keys; refused here too, so that an alias made through one
/// API is valid on the other.
pub(crate) const RESERVED_ALIAS_PREFIX: &str = "alias/aws/";
/// `alias/` and at least one character.
pub(crate) const ALIAS_MIN: usize = ALIAS_PREFIX.len() + 1;
/// `alias/` and at most 250 characters: AWS KMS's limit, so a name is valid on both APIs.
pub(crate) const ALIAS_MAX: usize = ALIAS_PREFIX.len() + 250;

/// An alias name: the prefix, then only `[A-Za-z0-9/_-]` (the prefix and the length are
/// checked before).
pub(crate) fn is_alias(s: &str) -> bool {
    s.strip_prefix(ALIAS_PREFIX).is_some_and(|name| {
        name.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
    })
}

fn is_key_spec(s: &str) -> bool {
    KeySpec::from_name(s).is_some()
}

fn is_origin(s: &str) -> bool {
    Origin::from_name(s).is_some()
}

fn is_key_usage(s: &str) -> bool {
    KeyUsage::from_name(s).is_some()
}

fn is_padding_mode(s: &str) -> bool {
    PaddingMode::from_name(s).is_some()
}

fn is_digest_mode(s: &str) -> bool {
    DigestMode::from_name(s).is_some()
}

fn is_message_type(s: &str) -> bool {
    MessageType::from_name(s).is_some()
}

const fn required(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        required: true,
        kind,
    }
}

const fn optional(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        required: false,
        kind,
    }
}

const fn string(min: usize, max: usize) -> Kind {
    Kind::Str {
        min,
        max,
        pattern: None,
    }
}

const fn base64(min: usize, max: usize) -> Kind {
    Kind::Base64 { min, max }
}

/// The keyid-shaped STRING used for `keyid`, `policyId` and `encryptionKeyId`.
const KEYID_KIND: Kind = Kind::Str {
    min: 36,
    max: 36,
    pattern: Some(is_keyid),
};

/// Every `keyid` takes an alias name too.
const KEYID: Field = required("keyid", Kind::KeyRef);
/// Sign, Verify, GetPublicKey, AsymmetricEncrypt and AsymmetricDecrypt: which version of the
/// key (default: the primary one; see `keys::Key::version`).
const KEYVERSION: Field = optional(
    "keyversion",
    Kind::Int {
        min: Some(1),
        max: Some(u32::MAX as i64),
    },
);
const ALIAS: Field = required("alias", Kind::Alias);
/// Automatic rotation's interval in days: AWS KMS's range.
const ROTATION_INTERVAL_DAYS: Kind = Kind::Int {
    min: Some(7),
    max: Some(2560),
};
const AAD: Field = optional("aad", base64(0, B64_MAX));
const KEYSPEC: Field = required("keyspec", Kind::Const(is_key_spec));
const MESSAGE: Field = required("message", base64(1, B64_MAX));
const MESSAGE_TYPE: Field = required("message_type", Kind::Const(is_message_type));
const DIGEST_MODE: Field = required("digest_mode", Kind::Const(is_digest_mode));
const PADDING_MODE: Field = required("padding_mode", Kind::Const(is_padding_mode));
const KEYLEN: Field = required(
    "keylen",
    Kind::Int {
        min: Some(1),
        max: Some(1024),
    },
);
const SECRET_NAME: Field = required("secretName", string(1, 64));
const SECRET_DATA: Field = required("secretData", string(1, 4096));
const DESCRIPTION: Field = optional("description", string(0, 4096));

const CREATE_KEY: &[Field] = &[
    KEYSPEC,
    required("origin", Kind::Const(is_origin)),
    // Not validated upstream, where a missing or bad usage became a 500 from the enclave; a
    // client mistake is a 400 here (spec §16.20).
    required("keyusage", Kind::Const(is_key_usage)),
    // ehsm extensions (key lifecycle): automatic rotation from the start, and a description.
    optional("rotationInterval", ROTATION_INTERVAL_DAYS),
    DESCRIPTION,
];
const ENCRYPT: &[Field] = &[KEYID, required("plaintext", base64(1, B64_MAX)), AAD];
const DECRYPT: &[Field] = &[
    KEYID,
    required("ciphertext", base64(1, CIPHERTEXT_MAX)),
    AAD,
];
const GENERATE_DATA_KEY: &[Field] = &[KEYID, KEYLEN, AAD];
const SIGN: &[Field] = &[
    KEYID,
    MESSAGE,
    MESSAGE_TYPE,
    DIGEST_MODE,
    PADDING_MODE,
    KEYVERSION,
];
const VERIFY: &[Field] = &[
    KEYID,
    MESSAGE,
    MESSAGE_TYPE,
    DIGEST_MODE,
    PADDING_MODE,
    required("signature", base64(1, B64_MAX)),
    KEYVERSION,
];
const ASYMMETRIC_ENCRYPT: &[Field] = &[
    KEYID,
    required("plaintext", base64(1, B64_MAX)),
    PADDING_MODE,
    KEYVERSION,
];
const ASYMMETRIC_DECRYPT: &[Field] = &[
    KEYID,
    required("ciphertext", base64(1, B64_MAX)),
    PADDING_MODE,
    KEYVERSION,
];
const GET_PUBLIC_KEY: &[Field] = &[KEYID, KEYVERSION];
const KEYID_ONLY: &[Field] = &[KEYID];
const UPDATE_ROTATION_POLICY: &[Field] = &[
    KEYID,
    required("enable", Kind::Bool),
    optional("rotationInterval", ROTATION_INTERVAL_DAYS),
];
const ALIAS_AND_KEYID: &[Field] = &[ALIAS, KEYID];
const ALIAS_ONLY: &[Field] = &[ALIAS];
const LIST_ALIASES: &[Field] = &[optional("keyid", Kind::KeyRef)];
const RE_ENCRYPT: &[Field] = &[
    KEYID,
    required("ciphertext", base64(1, CIPHERTEXT_MAX)),
    AAD,
    required("destinationkeyid", Kind::KeyRef),
    optional("destinationaad", base64(0, B64_MAX)),
];
/// AWS KMS's waiting period; without one, its default (30 days).
const SCHEDULE_KEY_DELETION: &[Field] = &[
    KEYID,
    optional(
        "pendingWindowInDays",
        Kind::Int {
            min: Some(7),
            max: Some(30),
        },
    ),
];
/// `keyspec` here is the spec of the wrapping key to create.
const GET_PARAMETERS_FOR_IMPORT: &[Field] = &[KEYID, KEYSPEC];
/// `importToken` is not validated upstream; the handler needs it all the same.
const IMPORT_KEY_MATERIAL: &[Field] = &[
    KEYID,
    PADDING_MODE,
    required("key_material", base64(1, B64_MAX)),
];
/// `ukeyid` has no keyid regex and `olddatakey_base` no base64 check upstream.
const EXPORT_DATA_KEY: &[Field] = &[
    KEYID,
    required("ukeyid", string(1, B64_MAX)),
    AAD,
    required("olddatakey_base", string(1, B64_MAX)),
];
/// ehsm extension: HMAC with an `EH_HMAC` key.
const GENERATE_MAC: &[Field] = &[KEYID, MESSAGE];
/// ehsm extension: checking an HMAC tag.
const VERIFY_MAC: &[Field] = &[KEYID, MESSAGE, required("mac", base64(1, B64_MAX))];
const GENERATE_QUOTE: &[Field] = &[required("challenge", base64(1, 4096))];
const VERIFY_QUOTE: &[Field] = &[
    // 10924 is upstream's "length after 8K base64".
    required("quote", base64(1, 10924)),
    required("nonce", base64(1, 4096)),
    optional("policyId", KEYID_KIND),
];
/// The measurements are exactly 64 characters but not checked to be hex.
const UPLOAD_QUOTE_POLICY: &[Field] = &[
    required("mr_enclave", string(64, 64)),
    required("mr_signer", string(64, 64)),
];
const GET_QUOTE_POLICY: &[Field] = &[required("policyId", KEYID_KIND)];
/// ehsm extension, unauthenticated: the whole body is this one field, the bytes a
/// `ehsm_tee::server_evidence::Challenge` takes.
const GET_SERVER_EVIDENCE: &[Field] = &[required(
    "challenge",
    Kind::Base64Bytes {
        min: ehsm_tee::server_evidence::CHALLENGE_MIN,
        max: ehsm_tee::server_evidence::CHALLENGE_MAX,
    },
)];
const CREATE_SECRET: &[Field] = &[
    SECRET_NAME,
    SECRET_DATA,
    optional("encryptionKeyId", Kind::KeyRef),
    DESCRIPTION,
    optional(
        "rotationInterval",
        Kind::Str {
            min: 0,
            max: 5,
            pattern: Some(is_rotation_interval),
        },
    ),
];
const UPDATE_SECRET_DESC: &[Field] = &[SECRET_NAME, DESCRIPTION];
const PUT_SECRET_VALUE: &[Field] = &[SECRET_NAME, SECRET_DATA];
const SECRET_NAME_ONLY: &[Field] = &[SECRET_NAME];
const LIST_SECRETS: &[Field] = &[optional("secretName", string(1, 64))];
/// ehsm extension: ListKey's optional paging (`actions::keys::list_key`); upstream's clients
/// send neither field and get upstream's answer.
const LIST_KEY: &[Field] = &[
    optional(
        "limit",
        Kind::Int {
            min: Some(1),
            max: Some(crate::actions::LIST_KEY_PAGE_MAX as i64),
        },
    ),
    optional("marker", KEYID_KIND),
];
const DELETE_SECRET: &[Field] = &[
    SECRET_NAME,
    optional(
        "recoveryPeriod",
        Kind::Int {
            min: Some(1),
            max: Some(365),
        },
    ),
    optional("forceDelete", string(0, 5)),
];
const GET_SECRET_VALUE: &[Field] = &[
    SECRET_NAME,
    optional(
        "versionId",
        Kind::Int {
            min: Some(1),
            max: None,
        },
    ),
];

/// Spec §5.1, one table per action. No wildcard arm: a new action must choose its table.
fn fields(action: Action) -> &'static [Field] {
    match action {
        Action::CreateKey => CREATE_KEY,
        Action::Encrypt => ENCRYPT,
        Action::Decrypt => DECRYPT,
        Action::GenerateDataKey | Action::GenerateDataKeyWithoutPlaintext => GENERATE_DATA_KEY,
        Action::Sign => SIGN,
        Action::Verify => VERIFY,
        Action::AsymmetricEncrypt => ASYMMETRIC_ENCRYPT,
        Action::AsymmetricDecrypt => ASYMMETRIC_DECRYPT,
        Action::GetPublicKey => GET_PUBLIC_KEY,
        Action::DeleteKey
        | Action::EnableKey
        | Action::DisableKey
        | Action::RotateKey
        | Action::ListKeyVersions
        | Action::DescribeKey
        | Action::CancelKeyDeletion => KEYID_ONLY,
        Action::UpdateRotationPolicy => UPDATE_ROTATION_POLICY,
        Action::CreateAlias | Action::UpdateAlias => ALIAS_AND_KEYID,
        Action::DeleteAlias => ALIAS_ONLY,
        Action::ListAliases => LIST_ALIASES,
        Action::ReEncrypt => RE_ENCRYPT,
        Action::ScheduleKeyDeletion => SCHEDULE_KEY_DELETION,
        Action::GetParametersForImport => GET_PARAMETERS_FOR_IMPORT,
        Action::ImportKeyMaterial => IMPORT_KEY_MATERIAL,
        Action::ExportDataKey => EXPORT_DATA_KEY,
        Action::GenerateMac => GENERATE_MAC,
        Action::VerifyMac => VERIFY_MAC,
        Action::GenerateQuote => GENERATE_QUOTE,
        Action::VerifyQuote => VERIFY_QUOTE,
        Action::UploadQuotePolicy => UPLOAD_QUOTE_POLICY,
        Action::GetQuotePolicy => GET_QUOTE_POLICY,
        Action::GetServerEvidence => GET_SERVER_EVIDENCE,
        Action::CreateSecret => CREATE_SECRET,
        Action::UpdateSecretDesc => UPDATE_SECRET_DESC,
        Action::PutSecretValue => PUT_SECRET_VALUE,
        Action::ListSecretVersionIds | Action::DescribeSecret | Action::RestoreSecret => {
            SECRET_NAME_ONLY
        }
        Action::ListSecrets => LIST_SECRETS,
        Action::DeleteSecret => DELETE_SECRET,
        Action::GetSecretValue => GET_SECRET_VALUE,
        Action::ListKey => LIST_KEY,
        // No table upstream, and no fields (upstream ignored any).
        Action::GetVersion | Action::Enroll | Action::DeleteAllKey => &[],
    }
}

/// The fields an action takes that its table does not check: read by the handler without a
/// rule upstream, or sent by one of upstream's SDKs although no server ever read them (refusing
/// those would break that SDK's calls).
fn unchecked_fields(action: Action) -> &'static [&'static str] {
    match action {
        Action::ImportKeyMaterial => &["importToken"],
        // ehsm's extension: the challenge GenerateQuote bound the quote to.
        Action::VerifyQuote => &["challenge"],
        // Upstream's Python SDK sends these names; its server read `olddatakey_base`.
        Action::ExportDataKey => &["old_data_key", "padding_mode"],
        // Upstream's Python SDK spells `forceDelete` so; its server never read it.
        Action::DeleteSecret => &["force_delete"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const KID: &str = "aac3e45a-d3dc-4791-89b6-4ada0e38e6ef";
    const HEX64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn check(action: Action, payload: Value) -> Result<(), String> {
        match payload {
            Value::Object(map) => validate(action, &map),
            other => panic!("not an object: {other}"),
        }
    }

    /// `payload` with `key` set to `value`.
    fn with(mut payload: Value, key: &str, value: Value) -> Value {
        payload[key] = value;
        payload
    }

    /// `payload` without `key`.
    fn without(mut payload: Value, key: &str) -> Value {
        if let Value::Object(map) = &mut payload {
            map.remove(key);
        }
        payload
    }

    fn b64(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn invalid(key: &str, what: &str) -> Result<(), String> {
        Err(format!("Parameter invalid, The {key} {what}"))
    }

    fn missing(key: &str) -> Result<(), String> {
        Err(format!(
            "Missing required parameters, The {key} cannot be empty."
        ))
    }

    /// A payload that passes, with every field the table lists, optional ones included.
    fn valid(action: Action) -> Value {
        let sign = json!({"keyid": KID, "message": "aGVsbG8=", "message_type": "EH_RAW",
            "digest_mode": "EH_SHA_256", "padding_mode": "EH_RSA_PKCS1_PSS", "keyversion": 2});
        match action {
            Action::CreateKey => json!({"keyspec": "EH_AES_GCM_256", "origin": "EH_INTERNAL_KEY",
                "keyusage": "EH_KEYUSAGE_ENCRYPT_DECRYPT", "rotationInterval": 90,
                "description": "desc"}),
            Action::Encrypt => json!({"keyid": KID, "plaintext": "aGVsbG8=", "aad": "YWFk"}),
            Action::Decrypt => json!({"keyid": KID, "ciphertext": "Y2lwaGVy", "aad": "YWFk"}),
            Action::GenerateDataKey | Action::GenerateDataKeyWithoutPlaintext => {
                json!({"keyid": KID, "keylen": 16, "aad": "YWFk"})
            }
            Action::Sign => sign,
            Action::Verify => with(sign, "signature", json!("c2lnbmF0dXJl")),
            Action::AsymmetricEncrypt => json!({"keyid": KID, "plaintext": "aGVsbG8=",
                "padding_mode": "EH_RSA_PKCS1_OAEP", "keyversion": 1}),
            Action::AsymmetricDecrypt => json!({"keyid": KID, "ciphertext": "Y2lwaGVy",
                "padding_mode": "EH_RSA_PKCS1_OAEP", "keyversion": 1}),
            Action::GetPublicKey => json!({"keyid": KID, "keyversion": 3}),
            Action::DeleteKey
            | Action::EnableKey
            | Action::DisableKey
            | Action::RotateKey
            | Action::ListKeyVersions
            | Action::DescribeKey
            | Action::CancelKeyDeletion => json!({"keyid": "alias/my-key"}),
            Action::UpdateRotationPolicy => {
                json!({"keyid": KID, "enable": true, "rotationInterval": 365})
            }
            Action::CreateAlias | Action::UpdateAlias => json!({"alias": "alias/a", "keyid": KID}),
            Action::DeleteAlias => json!({"alias": "alias/app/a_b-c"}),
            Action::ListAliases => json!({"keyid": KID}),
            Action::ReEncrypt => json!({"keyid": KID, "ciphertext": "Y2lwaGVy", "aad": "YWFk",
                "destinationkeyid": "alias/dst", "destinationaad": ""}),
            Action::ScheduleKeyDeletion => json!({"keyid": KID, "pendingWindowInDays": 7}),
            Action::GetParametersForImport => json!({"keyid": KID, "keyspec": "EH_RSA_3072"}),
            Action::ImportKeyMaterial => json!({"keyid": KID, "padding_mode": "EH_RSA_PKCS1_OAEP",
                "key_material": "a2V5", "importToken": "anything"}),
            Action::ExportDataKey => json!({"keyid": KID, "ukeyid": KID, "aad": "YWFk",
                "olddatakey_base": "not base64, not checked"}),
            Action::GenerateMac => json!({"keyid": KID, "message": "aGVsbG8="}),
            Action::VerifyMac => json!({"keyid": KID, "message": "aGVsbG8=", "mac": "bWFj"}),
            Action::GenerateQuote => json!({"challenge": "Y2hhbGxlbmdl"}),
            Action::VerifyQuote => {
                json!({"quote": "cXVvdGU=", "nonce": "bm9uY2U=", "policyId": KID})
            }
            Action::UploadQuotePolicy => json!({"mr_enclave": HEX64, "mr_signer": HEX64}),
            Action::GetQuotePolicy => json!({"policyId": KID}),
            Action::GetServerEvidence => json!({"challenge": b64(&[7; 32])}),
            Action::CreateSecret => json!({"secretName": "name", "secretData": "data",
                "encryptionKeyId": KID, "description": "desc", "rotationInterval": "30d"}),
            Action::UpdateSecretDesc => json!({"secretName": "name", "description": "desc"}),
            Action::PutSecretValue => json!({"secretName": "name", "secretData": "data"}),
            Action::ListSecretVersionIds | Action::DescribeSecret | Action::RestoreSecret => {
                json!({"secretName": "name"})
            }
            Action::ListSecrets => json!({"secretName": "name"}),
            Action::DeleteSecret => {
                json!({"secretName": "name", "recoveryPeriod": 7, "forceDelete": "true"})
            }
            Action::GetSecretValue => json!({"secretName": "name", "versionId": 1}),
            Action::ListKey => json!({"limit": 10, "marker": KID}),
            Action::GetVersion | Action::Enroll | Action::DeleteAllKey => json!({}),
        }
    }

    #[test]
    fn validate_accepts_a_valid_payload_for_every_action() {
        for action in Action::ALL {
            assert_eq!(check(*action, valid(*action)), Ok(()), "{action:?}");
        }
    }

    #[test]
    fn validate_every_listed_field_is_checked() {
        // Breaking any one field of a valid payload (a value of the wrong type) must fail with
        // that field's name, so no table entry is dead or misnamed.
        for action in Action::ALL {
            for field in fields(*action) {
                let bad = with(valid(*action), field.name, json!({"not": "valid"}));
                let err = check(*action, bad).unwrap_err();
                assert!(
                    err.contains(&format!(" The {} ", field.name)),
                    "{action:?}: {err}"
                );
            }
        }
    }

    #[test]
    fn validate_empty_payload_reports_the_first_required_field() {
        let first = [
            (Action::CreateKey, "keyspec"),
            (Action::Encrypt, "keyid"),
            (Action::GenerateQuote, "challenge"),
            (Action::GetServerEvidence, "challenge"),
            (Action::VerifyQuote, "quote"),
            (Action::UploadQuotePolicy, "mr_enclave"),
            (Action::GetQuotePolicy, "policyId"),
            (Action::CreateSecret, "secretName"),
            (Action::DeleteSecret, "secretName"),
        ];
        for (action, key) in first {
            assert_eq!(check(action, json!({})), missing(key), "{action:?}");
        }
        for action in [
            Action::ListKey,
            Action::DeleteAllKey,
            Action::GetVersion,
            Action::Enroll,
            Action::ListSecrets,
        ] {
            assert_eq!(check(action, json!({})), Ok(()), "{action:?}");
        }
    }

    #[test]
    fn validate_messages_are_upstreams() {
        let encrypt = valid(Action::Encrypt);
        assert_eq!(
            check(Action::Encrypt, without(encrypt.clone(), "keyid")),
            Err("Missing required parameters, The keyid cannot be empty.".to_owned())
        );
        assert_eq!(
            check(
                Action::Encrypt,
                with(encrypt.clone(), "keyid", json!("short"))
            ),
            Err("Parameter invalid, The keyid length error.".to_owned())
        );
        assert_eq!(
            check(
                Action::Encrypt,
                with(encrypt.clone(), "keyid", json!(KID.to_uppercase()))
            ),
            Err("Parameter invalid, The keyid format wrong.".to_owned())
        );
        assert_eq!(
            check(
                Action::Encrypt,
                with(encrypt.clone(), "plaintext", json!("abc"))
            ),
            Err("Parameter invalid, The plaintext not a vailed base64 string.".to_owned())
        );
        assert_eq!(
            check(Action::Encrypt, with(encrypt, "keyid", json!(42))),
            Err("Parameter invalid, The keyid must be of string type.".to_owned())
        );
        let gdk = valid(Action::GenerateDataKey);
        assert_eq!(
            check(
                Action::GenerateDataKey,
                with(gdk.clone(), "keylen", json!("16"))
            ),
            Err("Parameter invalid, The keylen must be of integer type.".to_owned())
        );
        assert_eq!(
            check(
                Action::GenerateDataKey,
                with(gdk.clone(), "keylen", json!(1025))
            ),
            Err(
                "Parameter invalid, The keylen value must be less than or equal to 1024."
                    .to_owned()
            )
        );
        assert_eq!(
            check(Action::GenerateDataKey, with(gdk, "keylen", json!(0))),
            Err(
                "Parameter invalid, The keylen value must be greater than or equal to 1."
                    .to_owned()
            )
        );
        assert_eq!(
            check(
                Action::Sign,
                with(valid(Action::Sign), "digest_mode", json!("SHA256"))
            ),
            Err("Parameter invalid, The digest_mode type is incorrect.".to_owned())
        );
    }

    #[test]
    fn validate_reports_the_first_bad_field_in_table_order() {
        // Both keyid and plaintext are bad: keyid comes first in the table.
        let encrypt = with(valid(Action::Encrypt), "plaintext", json!("!!"));
        let both = with(encrypt.clone(), "keyid", json!("x"));
        assert_eq!(
            check(Action::Encrypt, both),
            invalid("keyid", "length error.")
        );
        assert_eq!(
            check(Action::Encrypt, encrypt),
            invalid("plaintext", "not a vailed base64 string.")
        );
        // Verify lists signature last, after the three enums; table order, not payload order.
        let verify = with(valid(Action::Verify), "signature", json!(""));
        let verify = with(verify, "padding_mode", json!("EH_PAD_RSA_PKCS1"));
        assert_eq!(
            check(Action::Verify, verify.clone()),
            invalid("padding_mode", "type is incorrect.")
        );
        let verify = with(verify, "padding_mode", json!("EH_PAD_NONE"));
        assert_eq!(check(Action::Verify, verify), missing("signature"));
        // CreateKey: keyusage after origin.
        let create = json!({"keyspec": "EH_SM4_CBC", "origin": "internal", "keyusage": "bad"});
        assert_eq!(
            check(Action::CreateKey, create),
            invalid("origin", "type is incorrect.")
        );
        // DeleteSecret: a bad recoveryPeriod is found before a bad forceDelete.
        let delete = json!({"secretName": "s", "recoveryPeriod": 400, "forceDelete": "always"});
        assert_eq!(
            check(Action::DeleteSecret, delete),
            invalid("recoveryPeriod", "value must be less than or equal to 365.")
        );
    }

    #[test]
    fn validate_optional_empty_string_or_null_is_absent() {
        let cases = [
            (Action::Encrypt, "aad"),
            (Action::ExportDataKey, "aad"),
            (Action::VerifyQuote, "policyId"),
            (Action::CreateSecret, "encryptionKeyId"),
            (Action::CreateSecret, "description"),
            (Action::CreateSecret, "rotationInterval"),
            (Action::ListSecrets, "secretName"),
            // An INT too: "" is absent before any type check.
            (Action::DeleteSecret, "recoveryPeriod"),
            (Action::DeleteSecret, "forceDelete"),
            (Action::GetSecretValue, "versionId"),
        ];
        for (action, key) in cases {
            for absent in [json!(""), Value::Null] {
                let payload = with(valid(action), key, absent.clone());
                assert_eq!(check(action, payload), Ok(()), "{action:?} {key}={absent}");
            }
            assert_eq!(
                check(action, without(valid(action), key)),
                Ok(()),
                "{action:?} no {key}"
            );
        }
    }

    /// Upstream's required test is `value == undefined || value === ''`. Loose `==` makes null
    /// missing too; `0`, `false`, `[]` and `{}` are present and then fail their type check.
    #[test]
    fn validate_required_is_missing_for_absent_empty_or_null_only() {
        for absent in [json!(""), Value::Null] {
            let payload = with(valid(Action::Encrypt), "keyid", absent);
            assert_eq!(check(Action::Encrypt, payload), missing("keyid"));
            let payload = with(valid(Action::CreateKey), "keyspec", Value::Null);
            assert_eq!(check(Action::CreateKey, payload), missing("keyspec"));
        }
        for present in [json!(0), json!(false), json!([]), json!({})] {
            let payload = with(valid(Action::PutSecretValue), "secretData", present.clone());
            let err = check(Action::PutSecretValue, payload).unwrap_err();
            assert!(
                err.starts_with("Parameter invalid, The secretData"),
                "{present}: {err}"
            );
        }
        // Only "" itself is empty: a blank string is present, and valid here.
        let blank = with(valid(Action::PutSecretValue), "secretData", json!(" "));
        assert_eq!(check(Action::PutSecretValue, blank), Ok(()));
    }

    #[test]
    fn validate_refuses_fields_the_action_does_not_define() {
        let payload = with(
            valid(Action::Encrypt),
            "surprise",
            json!({"deeply": [1, "nested"]}),
        );
        assert_eq!(
            check(Action::Encrypt, payload),
            invalid("surprise", "is not a parameter of Encrypt.")
        );
        // A payload of one action is not one of another, even where the fields overlap.
        assert_eq!(
            check(
                Action::DeleteKey,
                json!({"keyid": KID, "plaintext": "aGk="})
            ),
            invalid("plaintext", "is not a parameter of DeleteKey.")
        );
        assert_eq!(
            check(Action::DeleteAllKey, json!({"keyid": KID})),
            invalid("keyid", "is not a parameter of DeleteAllKey.")
        );
        // The table's rules answer first, in upstream's order and words.
        let payload = json!({"keyid": "not even a keyid", "anything": 1});
        assert_eq!(
            check(Action::Encrypt, payload),
            invalid("keyid", "length error.")
        );
        // Fields a handler reads without a rule, and those upstream's SDKs send unread.
        let import = with(valid(Action::ImportKeyMaterial), "importToken", json!("t"));
        assert_eq!(check(Action::ImportKeyMaterial, import), Ok(()));
        let delete = with(valid(Action::DeleteSecret), "force_delete", json!("false"));
        assert_eq!(check(Action::DeleteSecret, delete), Ok(()));
        // Every table's own fields pass.
        for &action in Action::ALL {
            if !action.is_unauthenticated() {
                assert_eq!(check(action, valid(action)), Ok(()), "{action:?}");
            }
        }
    }

    /// JS `.length` counts UTF-16 code units: U+1F600 counts 2, "é" counts 1 (2 UTF-8 bytes).
    #[test]
    fn validate_lengths_are_utf16_code_units() {
        let name = |s: String| with(valid(Action::DescribeSecret), "secretName", json!(s));
        assert_eq!(check(Action::DescribeSecret, name("😀".repeat(32))), Ok(()));
        assert_eq!(
            check(Action::DescribeSecret, name("😀".repeat(33))),
            invalid("secretName", "length error.")
        );
        assert_eq!(check(Action::DescribeSecret, name("é".repeat(64))), Ok(()));
        assert_eq!(
            check(Action::DescribeSecret, name("é".repeat(65))),
            invalid("secretName", "length error.")
        );
        assert_eq!(
            check(
                Action::DescribeSecret,
                name(format!("{}a", "😀".repeat(31)))
            ),
            Ok(())
        );
        // 3 characters, 6 code units: over forceDelete's 5.
        let delete = with(valid(Action::DeleteSecret), "forceDelete", json!("😀😀😀"));
        assert_eq!(
            check(Action::DeleteSecret, delete),
            invalid("forceDelete", "length error.")
        );
        let data = |s: String| with(valid(Action::PutSecretValue), "secretData", json!(s));
        assert_eq!(
            check(Action::PutSecretValue, data("😀".repeat(2048))),
            Ok(())
        );
        assert_eq!(
            check(Action::PutSecretValue, data("😀".repeat(2049))),
            invalid("secretData", "length error.")
        );
        // Exactly 64 units of measurement, in 32 astral characters.
        let policy = with(
            valid(Action::UploadQuotePolicy),
            "mr_signer",
            json!("😀".repeat(32)),
        );
        assert_eq!(check(Action::UploadQuotePolicy, policy), Ok(()));
    }

    #[test]
    fn validate_string_bounds() {
        let upload = |v: &str| with(valid(Action::UploadQuotePolicy), "mr_enclave", json!(v));
        assert_eq!(
            check(Action::UploadQuotePolicy, upload(&HEX64[1..])),
            invalid("mr_enclave", "length error.")
        );
        assert_eq!(
            check(Action::UploadQuotePolicy, upload(&format!("{HEX64}0"))),
            invalid("mr_enclave", "length error.")
        );
        assert_eq!(
            check(Action::UploadQuotePolicy, upload(&"Z".repeat(64))),
            Ok(()),
            "not hex-checked"
        );
        let export = |v: String| with(valid(Action::ExportDataKey), "ukeyid", json!(v));
        assert_eq!(
            check(Action::ExportDataKey, export("x".repeat(8192))),
            Ok(())
        );
        assert_eq!(
            check(Action::ExportDataKey, export("x".repeat(8193))),
            invalid("ukeyid", "length error.")
        );
        let secret = |v: String| with(valid(Action::CreateSecret), "description", json!(v));
        assert_eq!(
            check(Action::CreateSecret, secret("d".repeat(4096))),
            Ok(())
        );
        assert_eq!(
            check(Action::CreateSecret, secret("d".repeat(4097))),
            invalid("description", "length error.")
        );
    }

    #[test]
    fn validate_keyid_shape() {
        let encrypt = |v: Value| with(valid(Action::Encrypt), "keyid", v);
        let ok = [
            KID,
            "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
            "00000000-0000-0000-0000-000000000000",
        ];
        for keyid in ok {
            assert_eq!(
                check(Action::Encrypt, encrypt(json!(keyid))),
                Ok(()),
                "{keyid}"
            );
        }
        let wrong_format = [
            "AAC3E45A-D3DC-4791-89B6-4ADA0E38E6EF",
            "aac3e45a_d3dc-4791-89b6-4ada0e38e6ef",
            "aac3e45ad-3dc-4791-89b6-4ada0e38e6ef",
            "aac3e45a-d3dc-4791-89b6-4ada0e38e6e-",
            "aac3e45a-d3dc-4791-89b6-4ada0e38e6eé",
            "aac3e45a-d3dc-4791-89b6-4ada0e38e6 f",
            "------------------------------------",
        ];
        for keyid in wrong_format {
            assert_eq!(
                check(Action::Encrypt, encrypt(json!(keyid))),
                invalid("keyid", "format wrong."),
                "{keyid}"
            );
        }
        assert_eq!(
            check(Action::Encrypt, encrypt(json!(&KID[1..]))),
            invalid("keyid", "length error.")
        );
        assert_eq!(
            check(Action::Encrypt, encrypt(json!([KID]))),
            invalid("keyid", "must be of string type.")
        );
        let policy = with(
            valid(Action::GetQuotePolicy),
            "policyId",
            json!(KID.replace('-', "+")),
        );
        assert_eq!(
            check(Action::GetQuotePolicy, policy),
            invalid("policyId", "format wrong.")
        );
        let secret = with(
            valid(Action::CreateSecret),
            "encryptionKeyId",
            json!("k".repeat(36)),
        );
        assert_eq!(
            check(Action::CreateSecret, secret),
            invalid("encryptionKeyId", "format wrong.")
        );
    }

    #[test]
    fn validate_alias_names() {
        let create = |v: Value| with(valid(Action::CreateAlias), "alias", v);
        let long_ok = format!("alias/{}", "a".repeat(250));
        for alias in ["alias/a", "alias/A-z_0/9", "alias//", long_ok.as_str()] {
            assert_eq!(
                check(Action::CreateAlias, create(json!(alias))),
                Ok(()),
                "{alias}"
            );
            // Every keyid takes an alias name.
            let encrypt = with(valid(Action::Encrypt), "keyid", json!(alias));
            assert_eq!(check(Action::Encrypt, encrypt), Ok(()), "{alias}");
        }
        let too_long = format!("alias/{}", "a".repeat(251));
        for alias in ["alias/", too_long.as_str()] {
            assert_eq!(
                check(Action::CreateAlias, create(json!(alias))),
                invalid("alias", "length error."),
                "{alias}"
            );
        }
        for alias in [
            "alias/a b",
            "alias/a.b",
            "alias/é",
            "Alias/abc",
            "aliasxabc",
            "a",
            "orders",
            KID,
        ] {
            assert_eq!(
                check(Action::CreateAlias, create(json!(alias))),
                invalid("alias", "format wrong."),
                "{alias}"
            );
        }
        assert_eq!(
            check(Action::CreateAlias, create(json!(7))),
            invalid("alias", "must be of string type.")
        );
        // A keyid that starts like an alias is checked as one; anything else as upstream's keyid.
        let encrypt = |v: &str| with(valid(Action::Encrypt), "keyid", json!(v));
        assert_eq!(
            check(Action::Encrypt, encrypt("alias/a.b")),
            invalid("keyid", "format wrong.")
        );
        assert_eq!(
            check(Action::Encrypt, encrypt("alias/")),
            invalid("keyid", "length error.")
        );
        assert_eq!(
            check(Action::Encrypt, encrypt("my-key")),
            invalid("keyid", "length error.")
        );
    }

    #[test]
    fn validate_lifecycle_fields() {
        let policy = |k: &str, v: Value| with(valid(Action::UpdateRotationPolicy), k, v);
        for bad in [json!("true"), json!(1), json!([true])] {
            assert_eq!(
                check(Action::UpdateRotationPolicy, policy("enable", bad)),
                invalid("enable", "must be of boolean type.")
            );
        }
        assert_eq!(
            check(Action::UpdateRotationPolicy, policy("enable", json!(false))),
            Ok(())
        );
        assert_eq!(
            check(
                Action::UpdateRotationPolicy,
                policy("rotationInterval", json!(6))
            ),
            invalid(
                "rotationInterval",
                "value must be greater than or equal to 7."
            )
        );
        assert_eq!(
            check(
                Action::UpdateRotationPolicy,
                policy("rotationInterval", json!(2561))
            ),
            invalid(
                "rotationInterval",
                "value must be less than or equal to 2560."
            )
        );
        assert_eq!(
            check(
                Action::CreateKey,
                with(valid(Action::CreateKey), "rotationInterval", json!("30d"))
            ),
            invalid("rotationInterval", "must be of integer type.")
        );
        let schedule =
            |v: Value| with(valid(Action::ScheduleKeyDeletion), "pendingWindowInDays", v);
        assert_eq!(
            check(Action::ScheduleKeyDeletion, schedule(json!(31))),
            invalid(
                "pendingWindowInDays",
                "value must be less than or equal to 30."
            )
        );
        assert_eq!(
            check(Action::ScheduleKeyDeletion, schedule(json!(6))),
            invalid(
                "pendingWindowInDays",
                "value must be greater than or equal to 7."
            )
        );
        assert_eq!(
            check(
                Action::Sign,
                with(valid(Action::Sign), "keyversion", json!(0))
            ),
            invalid("keyversion", "value must be greater than or equal to 1.")
        );
        assert_eq!(
            check(
                Action::Sign,
                with(valid(Action::Sign), "keyversion", json!(1.5))
            ),
            invalid("keyversion", "must be of integer type.")
        );
        // Encrypt always uses the primary version: it takes no keyversion.
        assert_eq!(
            check(
                Action::Encrypt,
                with(valid(Action::Encrypt), "keyversion", json!(1))
            ),
            Err("Parameter invalid, The keyversion is not a parameter of Encrypt.".into())
        );
    }

    #[test]
    fn validate_base64_rules() {
        let encrypt = |v: Value| with(valid(Action::Encrypt), "plaintext", v);
        for ok in ["AAAA", "AA==", "AAA=", "+/+/", "ab+/cd0=", "zzzz"] {
            assert_eq!(check(Action::Encrypt, encrypt(json!(ok))), Ok(()), "{ok}");
        }
        // Not a multiple of 4, three pads, padding only, padding inside, whitespace, URL-safe
        // alphabet, non-ASCII.
        for bad in [
            "A", "AAAAA", "A===", "====", "A=AA", "AA=A", "AA AA", "AA\nA", "AA-_", "AAé=",
        ] {
            assert_eq!(
                check(Action::Encrypt, encrypt(json!(bad))),
                invalid("plaintext", "not a vailed base64 string."),
                "{bad:?}"
            );
        }
        assert_eq!(
            check(Action::Encrypt, encrypt(json!(1234))),
            invalid("plaintext", "must be of string type.")
        );
        assert_eq!(
            check(Action::Encrypt, encrypt(json!("A".repeat(8192)))),
            Ok(())
        );
        assert_eq!(
            check(Action::Encrypt, encrypt(json!("A".repeat(8196)))),
            invalid("plaintext", "length error.")
        );
        // Length comes before the alphabet: an over-long non-base64 string is a length error.
        assert_eq!(
            check(Action::Encrypt, encrypt(json!("!".repeat(8193)))),
            invalid("plaintext", "length error.")
        );
        let aad = |v: &str| with(valid(Action::Encrypt), "aad", json!(v));
        assert_eq!(
            check(Action::Encrypt, aad("A")),
            invalid("aad", "not a vailed base64 string.")
        );
        let decrypt = |n: usize| with(valid(Action::Decrypt), "ciphertext", json!("A".repeat(n)));
        assert_eq!(check(Action::Decrypt, decrypt(8240)), Ok(()));
        assert_eq!(
            check(Action::Decrypt, decrypt(8244)),
            invalid("ciphertext", "length error.")
        );
        let decrypt = |n: usize| {
            with(
                valid(Action::AsymmetricDecrypt),
                "ciphertext",
                json!("A".repeat(n)),
            )
        };
        assert_eq!(
            check(Action::AsymmetricDecrypt, decrypt(8196)),
            invalid("ciphertext", "length error.")
        );
        let quote =
            |key: &str, n: usize| with(valid(Action::VerifyQuote), key, json!("A".repeat(n)));
        assert_eq!(check(Action::VerifyQuote, quote("quote", 10924)), Ok(()));
        assert_eq!(
            check(Action::VerifyQuote, quote("quote", 10928)),
            invalid("quote", "length error.")
        );
        assert_eq!(
            check(Action::VerifyQuote, quote("nonce", 4100)),
            invalid("nonce", "length error.")
        );
        let challenge = with(
            valid(Action::GenerateQuote),
            "challenge",
            json!("A".repeat(4100)),
        );
        assert_eq!(
            check(Action::GenerateQuote, challenge),
            invalid("challenge", "length error.")
        );
    }

    /// `Number.isInteger(v)`, then `/^-?[0-9]*$/` on `String(v)`, then max, then min.
    #[test]
    fn validate_integers_follow_js() {
        let keylen = |v: Value| {
            check(
                Action::GenerateDataKey,
                with(valid(Action::GenerateDataKey), "keylen", v),
            )
        };
        let not_integer = invalid("keylen", "must be of integer type.");
        let too_big = invalid("keylen", "value must be less than or equal to 1024.");
        let too_small = invalid("keylen", "value must be greater than or equal to 1.");
        let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        assert_eq!(keylen(json!(1)), Ok(()));
        assert_eq!(keylen(json!(1024)), Ok(()));
        // An integral double is an integer in JS: 16.0 and 1.6e1 are 16.
        assert_eq!(keylen(parse("16.0")), Ok(()));
        assert_eq!(keylen(parse("1.6e1")), Ok(()));
        for bad in [
            json!("16"),
            json!(16.5),
            json!(true),
            json!([16]),
            json!({"n": 16}),
        ] {
            assert_eq!(keylen(bad.clone()), not_integer, "{bad}");
        }
        // From 1e21 up, `String(v)` is "1e+21": the regex refuses it before the bound check.
        assert_eq!(keylen(parse("1e21")), not_integer);
        assert_eq!(keylen(parse("-1e21")), not_integer);
        assert_eq!(keylen(parse("1e20")), too_big);
        assert_eq!(keylen(parse("18446744073709551615")), too_big);
        assert_eq!(keylen(json!(1025)), too_big);
        assert_eq!(keylen(json!(0)), too_small);
        // -0 is an integer and prints as "0".
        assert_eq!(keylen(parse("-0")), too_small);
        assert_eq!(keylen(parse("-0.0")), too_small);
        assert_eq!(keylen(json!(-5)), too_small);
        assert_eq!(keylen(json!(i64::MIN)), too_small);
        // versionId has a minimum only.
        let version = |v: Value| {
            check(
                Action::GetSecretValue,
                with(valid(Action::GetSecretValue), "versionId", v),
            )
        };
        assert_eq!(version(parse("1e20")), Ok(()));
        assert_eq!(
            version(parse("1e21")),
            invalid("versionId", "must be of integer type.")
        );
        assert_eq!(
            version(json!(0)),
            invalid("versionId", "value must be greater than or equal to 1.")
        );
        let period = |v: Value| {
            check(
                Action::DeleteSecret,
                with(valid(Action::DeleteSecret), "recoveryPeriod", v),
            )
        };
        assert_eq!(period(json!(365)), Ok(()));
        assert_eq!(
            period(json!(366)),
            invalid("recoveryPeriod", "value must be less than or equal to 365.")
        );
        assert_eq!(
            period(json!("7")),
            invalid("recoveryPeriod", "must be of integer type.")
        );
    }

    /// `arr.includes(value)`: only the exact wire names, and never a non-string.
    #[test]
    fn validate_enums_take_exact_names_only() {
        let create =
            |key: &str, v: Value| check(Action::CreateKey, with(valid(Action::CreateKey), key, v));
        for spec in KeySpec::ALL {
            assert_eq!(create("keyspec", json!(spec.as_str())), Ok(()));
        }
        assert_eq!(create("keyspec", json!("EH_HMAC")), Ok(()));
        for bad in [
            json!("eh_aes_gcm_256"),
            json!(3),
            json!(["EH_AES_GCM_256"]),
            json!(true),
            json!("EH_AES_GCM_256 "),
        ] {
            assert_eq!(
                create("keyspec", bad.clone()),
                invalid("keyspec", "type is incorrect."),
                "{bad}"
            );
        }
        assert_eq!(create("origin", json!("EH_EXTERNAL_KEY")), Ok(()));
        assert_eq!(
            create("origin", json!(1)),
            invalid("origin", "type is incorrect.")
        );
        // keyusage: required and checked here, unlike upstream (500 from the enclave).
        assert_eq!(create("keyusage", json!("EH_KEYUSAGE_SIGN_VERIFY")), Ok(()));
        assert_eq!(
            create("keyusage", json!("SIGN")),
            invalid("keyusage", "type is incorrect.")
        );
        assert_eq!(
            create("keyusage", json!(2)),
            invalid("keyusage", "type is incorrect.")
        );
        assert_eq!(
            check(
                Action::CreateKey,
                without(valid(Action::CreateKey), "keyusage")
            ),
            missing("keyusage")
        );
        let sign =
            |key: &str, v: &str| check(Action::Sign, with(valid(Action::Sign), key, json!(v)));
        assert_eq!(sign("message_type", "EH_DIGEST"), Ok(()));
        assert_eq!(
            sign("message_type", "EH_HASH"),
            invalid("message_type", "type is incorrect.")
        );
        assert_eq!(sign("digest_mode", "EH_SM3"), Ok(()));
        assert_eq!(
            sign("padding_mode", "EH_PAD_NONE"),
            Ok(()),
            "refused later, by the core"
        );
        // The API doc's padding names never worked (spec §4).
        for doc_name in ["EH_PAD_RSA_PKCS1", "EH_PAD_RSA_PKCS1_OAEP", "EH_PAD_PKCS1"] {
            assert_eq!(
                sign("padding_mode", doc_name),
                invalid("padding_mode", "type is incorrect.")
            );
        }
        let wrap = with(
            valid(Action::GetParametersForImport),
            "keyspec",
            json!("EH_RSA_1024"),
        );
        assert_eq!(
            check(Action::GetParametersForImport, wrap),
            invalid("keyspec", "type is incorrect.")
        );
    }

    #[test]
    fn validate_rotation_interval_regex_includes_the_comma() {
        let secret = |v: &str| {
            check(
                Action::CreateSecret,
                with(valid(Action::CreateSecret), "rotationInterval", json!(v)),
            )
        };
        for ok in ["1d", "30d", "9999s", "12h", "5m", "30,", "0000d"] {
            assert_eq!(secret(ok), Ok(()), "{ok}");
        }
        for bad in ["d", "30", "30D", "30w", "3 d", "30dd", "-1d", "10000", "٣d"] {
            assert_eq!(
                secret(bad),
                invalid("rotationInterval", "format wrong."),
                "{bad}"
            );
        }
        assert_eq!(
            secret("12345d"),
            invalid("rotationInterval", "length error.")
        );
    }

    #[test]
    fn validate_mac_extension_fields() {
        let mac =
            |key: &str, v: Value| check(Action::VerifyMac, with(valid(Action::VerifyMac), key, v));
        assert_eq!(
            mac("mac", json!("bWFj!")),
            invalid("mac", "not a vailed base64 string.")
        );
        assert_eq!(
            mac("mac", json!("A".repeat(8196))),
            invalid("mac", "length error.")
        );
        assert_eq!(mac("mac", json!("")), missing("mac"));
        assert_eq!(mac("message", json!("")), missing("message"));
        let generate = without(valid(Action::GenerateMac), "message");
        assert_eq!(check(Action::GenerateMac, generate), missing("message"));
    }

    /// GetServerEvidence's challenge is 16 to 64 bytes. Base64 of 64 bytes and of 65 or 66 is
    /// the same length (88 characters), so the count of bytes is checked after the encoding.
    #[test]
    fn validate_server_evidence_challenge() {
        let evidence = |v: Value| check(Action::GetServerEvidence, json!({ "challenge": v }));
        for len in [16, 17, 18, 32, 62, 63, 64] {
            let challenge = b64(&vec![0xa5; len]);
            assert_eq!(evidence(json!(challenge)), Ok(()), "{len} bytes");
        }
        for len in [1, 12, 15, 65, 66, 67, 4096] {
            let challenge = b64(&vec![0xa5; len]);
            assert_eq!(
                evidence(json!(challenge)),
                invalid("challenge", "length error."),
                "{len} bytes"
            );
        }
        assert_eq!(b64(&[0; 64]).len(), b64(&[0; 66]).len());
        // Upstream's order: the length, then the alphabet.
        assert_eq!(
            evidence(json!("!".repeat(44))),
            invalid("challenge", "not a vailed base64 string.")
        );
        assert_eq!(
            evidence(json!("!".repeat(20))),
            invalid("challenge", "length error.")
        );
        assert_eq!(
            evidence(json!(b64(&[1; 32]).replace('=', ""))),
            invalid("challenge", "not a vailed base64 string.")
        );
        for not_a_string in [json!(1234), json!(true), json!([b64(&[1; 32])])] {
            assert_eq!(
                evidence(not_a_string),
                invalid("challenge", "must be of string type.")
            );
        }
        for missing_value in [json!(null), json!("")] {
            assert_eq!(evidence(missing_value), missing("challenge"));
        }
        assert_eq!(
            check(Action::GetServerEvidence, json!({})),
            missing("challenge")
        );
        // The body is the one field: an envelope's fields are refused too, not ignored.
        for extra in ["appid", "timestamp", "sign", "payload", "nonce"] {
            let body = with(valid(Action::GetServerEvidence), extra, json!("x"));
            assert_eq!(
                check(Action::GetServerEvidence, body),
                invalid(extra, "is not a parameter of GetServerEvidence.")
            );
        }
    }
}
