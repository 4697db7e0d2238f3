//! Key-release policies: which attested code may receive keys.
//!
//! A [`Policy`] is read from TOML and checks the [`Identity`] and [`Status`] of a verified quote
//! (see [`crate::dcap`]). Every refusal names the rule that failed.
//!
//! ```toml
//! # TCB statuses accepted; default ["OK"]. REVOKED, INVALID_SIGNATURE and UNSPECIFIED can
//! # never be accepted.
//! accepted_tcb_statuses = ["OK", "SW_HARDENING_NEEDED"]
//!
//! [sgx]
//! mr_enclave = ["70de1979...2fbd"]   # 64 hex digits each, any case
//! mr_signer = ["c30446b4...2835"]
//! isv_prod_id = [1]                 # empty or absent: any product id
//! min_isv_svn = 2                   # for every product id
//! [sgx.min_isv_svn_by_prod_id]      # stricter minimums for some product ids
//! 1 = 3
//!
//! [tdx]
//! mr_td = ["..."]                   # 96 hex digits each
//! rtmr2 = ["..."]                   # optional pins of RTMR0..3
//! ```
//!
//! **Safe defaults.** An SGX quote is refused unless the policy lists at least one MRENCLAVE or
//! MRSIGNER, and a TDX quote unless it lists at least one MRTD: an empty or missing section
//! accepts nothing of that kind, and there is no wildcard. When both MRENCLAVE and MRSIGNER
//! lists are given, both must match. Pinning only MRSIGNER accepts every enclave that key
//! signed, so pin `isv_prod_id` and `min_isv_svn` with it. The two SVN minimums both apply (the
//! per-product one can only raise the global one). Simulated evidence is refused unless
//! `allow_simulated = true`.

use core::fmt;
use std::collections::BTreeMap;

use serde::Deserialize;

use crate::dcap::{Identity, SgxIdentity, Status, TdxIdentity};

/// Who may receive keys. Built only from TOML ([`Policy::from_toml`]), so every policy in use
/// went through the same validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    accepted_tcb_statuses: Vec<Status>,
    sgx: SgxRules,
    tdx: TdxRules,
    allow_simulated: bool,
    simulated_measurements: Vec<Vec<u8>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct SgxRules {
    mr_enclave: Vec<[u8; 32]>,
    mr_signer: Vec<[u8; 32]>,
    isv_prod_id: Vec<u16>,
    min_isv_svn: u16,
    min_isv_svn_by_prod_id: BTreeMap<u16, u16>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct TdxRules {
    mr_td: Vec<[u8; 48]>,
    rtmr: [Vec<[u8; 48]>; 4],
}

/// The policy file as written; [`Policy::from_toml`] validates it into a [`Policy`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default = "default_statuses")]
    accepted_tcb_statuses: Vec<String>,
    #[serde(default)]
    sgx: SgxFile,
    #[serde(default)]
    tdx: TdxFile,
    #[serde(default)]
    allow_simulated: bool,
    #[serde(default)]
    simulated_measurements: Vec<String>,
}

fn default_statuses() -> Vec<String> {
    vec![Status::Ok.name().to_owned()]
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SgxFile {
    #[serde(default)]
    mr_enclave: Vec<String>,
    #[serde(default)]
    mr_signer: Vec<String>,
    #[serde(default)]
    isv_prod_id: Vec<u16>,
    #[serde(default)]
    min_isv_svn: u16,
    #[serde(default)]
    min_isv_svn_by_prod_id: BTreeMap<String, u16>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TdxFile {
    #[serde(default)]
    mr_td: Vec<String>,
    #[serde(default)]
    rtmr0: Vec<String>,
    #[serde(default)]
    rtmr1: Vec<String>,
    #[serde(default)]
    rtmr2: Vec<String>,
    #[serde(default)]
    rtmr3: Vec<String>,
}

/// Statuses that mean the quote is not genuine: no policy may accept them.
const NEVER_ACCEPTED: [Status; 3] = [
    Status::InvalidSignature,
    Status::Revoked,
    Status::Unspecified,
];

impl Policy {
    /// Reads and validates a policy. Unknown fields are refused, so a misspelt rule cannot be
    /// silently ignored.
    pub fn from_toml(text: &str) -> Result<Self, PolicyLoadError> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| PolicyLoadError::Toml(e.to_string()))?;
        Ok(Policy {
            accepted_tcb_statuses: statuses(&file.accepted_tcb_statuses)?,
            sgx: SgxRules {
                mr_enclave: hex_list("sgx.mr_enclave", &file.sgx.mr_enclave)?,
                mr_signer: hex_list("sgx.mr_signer", &file.sgx.mr_signer)?,
                isv_prod_id: file.sgx.isv_prod_id,
                min_isv_svn: file.sgx.min_isv_svn,
                min_isv_svn_by_prod_id: prod_id_table(&file.sgx.min_isv_svn_by_prod_id)?,
            },
            tdx: TdxRules {
                mr_td: hex_list("tdx.mr_td", &file.tdx.mr_td)?,
                rtmr: [
                    hex_list("tdx.rtmr0", &file.tdx.rtmr0)?,
                    hex_list("tdx.rtmr1", &file.tdx.rtmr1)?,
                    hex_list("tdx.rtmr2", &file.tdx.rtmr2)?,
                    hex_list("tdx.rtmr3", &file.tdx.rtmr3)?,
                ],
            },
            allow_simulated: file.allow_simulated,
            simulated_measurements: file
                .simulated_measurements
                .iter()
                .map(|h| decode_hex("simulated_measurements", h))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether a verified quote with this identity and status may receive keys.
    pub fn check(&self, identity: &Identity, status: Status) -> Result<(), PolicyError> {
        if !self.accepted_tcb_statuses.contains(&status) {
            return Err(PolicyError::TcbStatus(status));
        }
        match identity {
            Identity::Sgx(sgx) => self.sgx.check(sgx),
            Identity::Tdx(tdx) => self.tdx.check(tdx),
        }
    }

    /// Whether simulated evidence (no hardware protection) with this measurement may receive
    /// keys: only when the policy says `allow_simulated = true`, and, if it lists
    /// `simulated_measurements`, only for those.
    pub fn check_simulated(&self, measurement: &[u8]) -> Result<(), PolicyError> {
        if !self.allow_simulated {
            return Err(PolicyError::SimulatedNotAllowed);
        }
        if !self.simulated_measurements.is_empty()
            && !self.simulated_measurements.iter().any(|m| m == measurement)
        {
            return Err(PolicyError::NotAllowed {
                what: "simulated measurement",
                value: hex::encode(measurement),
            });
        }
        Ok(())
    }
}

impl SgxRules {
    fn check(&self, id: &SgxIdentity) -> Result<(), PolicyError> {
        if self.mr_enclave.is_empty() && self.mr_signer.is_empty() {
            return Err(PolicyError::NoneAccepted {
                platform: "SGX",
                rule: "MRENCLAVE or MRSIGNER",
            });
        }
        allowed("MRENCLAVE", &self.mr_enclave, &id.mr_enclave)?;
        allowed("MRSIGNER", &self.mr_signer, &id.mr_signer)?;
        if !self.isv_prod_id.is_empty() && !self.isv_prod_id.contains(&id.isv_prod_id) {
            return Err(PolicyError::NotAllowed {
                what: "ISV product id",
                value: id.isv_prod_id.to_string(),
            });
        }
        let per_product = self
            .min_isv_svn_by_prod_id
            .get(&id.isv_prod_id)
            .copied()
            .unwrap_or(0);
        let min = self.min_isv_svn.max(per_product);
        if id.isv_svn < min {
            return Err(PolicyError::SvnTooLow {
                isv_prod_id: id.isv_prod_id,
                isv_svn: id.isv_svn,
                min,
            });
        }
        Ok(())
    }
}

impl TdxRules {
    fn check(&self, id: &TdxIdentity) -> Result<(), PolicyError> {
        if self.mr_td.is_empty() {
            return Err(PolicyError::NoneAccepted {
                platform: "TDX",
                rule: "MRTD",
            });
        }
        allowed("MRTD", &self.mr_td, &id.mr_td)?;
        const NAMES: [&str; 4] = ["RTMR0", "RTMR1", "RTMR2", "RTMR3"];
        for ((name, pins), value) in NAMES.iter().zip(&self.rtmr).zip(&id.rtmr) {
            allowed(name, pins, value)?;
        }
        Ok(())
    }
}

/// Refuses `value` unless `list` is empty (no pin) or contains it.
fn allowed<const N: usize>(
    what: &'static str,
    list: &[[u8; N]],
    value: &[u8; N],
) -> Result<(), PolicyError> {
    if list.is_empty() || list.contains(value) {
        Ok(())
    } else {
        Err(PolicyError::NotAllowed {
            what,
            value: hex::encode(value),
        })
    }
}

fn statuses(names: &[String]) -> Result<Vec<Status>, PolicyLoadError> {
    names
        .iter()
        .map(|name| {
            let status: Status =
                name.parse()
                    .map_err(|e: crate::dcap::UnknownStatus| PolicyLoadError::Value {
                        field: "accepted_tcb_statuses".to_owned(),
                        reason: e.to_string(),
                    })?;
            if NEVER_ACCEPTED.contains(&status) {
                return Err(PolicyLoadError::Value {
                    field: "accepted_tcb_statuses".to_owned(),
                    reason: format!(
                        "{status} means the quote is not genuine and cannot be accepted"
                    ),
                });
            }
            Ok(status)
        })
        .collect()
}

fn hex_list<const N: usize>(
    field: &str,
    values: &[String],
) -> Result<Vec<[u8; N]>, PolicyLoadError> {
    values
        .iter()
        .map(|text| {
            let bytes = decode_hex(field, text)?;
            <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| PolicyLoadError::Value {
                field: field.to_owned(),
                reason: format!(
                    "{text:?} has {} bytes; expected {N} ({} hex digits)",
                    bytes.len(),
                    2 * N
                ),
            })
        })
        .collect()
}

/// Hex in either case (hex digests are printed both ways by different tools).
fn decode_hex(field: &str, text: &str) -> Result<Vec<u8>, PolicyLoadError> {
    hex::decode(text).map_err(|e| PolicyLoadError::Value {
        field: field.to_owned(),
        reason: format!("{text:?} is not hex: {e}"),
    })
}

fn prod_id_table(table: &BTreeMap<String, u16>) -> Result<BTreeMap<u16, u16>, PolicyLoadError> {
    table
        .iter()
        .map(|(key, &min)| {
            let id = key.parse::<u16>().map_err(|_| PolicyLoadError::Value {
                field: "sgx.min_isv_svn_by_prod_id".to_owned(),
                reason: format!("{key:?} is not a product id (0 to 65535)"),
            })?;
            Ok((id, min))
        })
        .collect()
}

/// Why a policy file was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyLoadError {
    /// Not TOML, a wrong type, or an unknown field (the message says which line).
    Toml(String),
    /// A field has a value that is not acceptable.
    Value {
        /// The field, e.g. `sgx.mr_enclave`.
        field: String,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for PolicyLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyLoadError::Toml(message) => write!(f, "invalid policy: {message}"),
            PolicyLoadError::Value { field, reason } => {
                write!(f, "invalid policy: {field}: {reason}")
            }
        }
    }
}

impl std::error::Error for PolicyLoadError {}

/// Why a policy refused attested code: each variant names the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The quote's TCB status is not among `accepted_tcb_statuses`.
    TcbStatus(Status),
    /// The policy accepts no quote of this platform (its allowlists are empty).
    NoneAccepted {
        /// `SGX` or `TDX`.
        platform: &'static str,
        /// What the policy would have to list.
        rule: &'static str,
    },
    /// A measured value is not on the policy's allowlist.
    NotAllowed {
        /// Which value (e.g. `MRENCLAVE`, `ISV product id`).
        what: &'static str,
        /// The value, in hex for measurements.
        value: String,
    },
    /// The enclave's ISVSVN is below the policy's minimum.
    SvnTooLow {
        /// The enclave's product id.
        isv_prod_id: u16,
        /// The enclave's SVN.
        isv_svn: u16,
        /// The minimum for that product id.
        min: u16,
    },
    /// The evidence is simulated and the policy does not allow simulated evidence.
    SimulatedNotAllowed,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::TcbStatus(status) => {
                write!(
                    f,
                    "TCB status {status} is not among the policy's accepted_tcb_statuses"
                )
            }
            PolicyError::NoneAccepted { platform, rule } => {
                write!(
                    f,
                    "the policy accepts no {platform} quote: it lists no {rule}"
                )
            }
            PolicyError::NotAllowed { what, value } => {
                write!(f, "{what} {value} is not on the policy's allowlist")
            }
            PolicyError::SvnTooLow {
                isv_prod_id,
                isv_svn,
                min,
            } => write!(
                f,
                "ISV SVN {isv_svn} of product {isv_prod_id} is below the policy's minimum {min}"
            ),
            PolicyError::SimulatedNotAllowed => f.write_str(
                "the evidence is simulated (no hardware protection) and the policy does not set \
                 allow_simulated = true",
            ),
        }
    }
}

impl std::error::Error for PolicyError {}
