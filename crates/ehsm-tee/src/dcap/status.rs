//! The verification status, numbered as Intel's `sgx_ql_qv_result_t`.
//!
//! eHSM's VerifyQuote returns this integer to clients (compatibility spec §9.3), so the numbers
//! are part of the wire format and must not change.

use core::fmt;
use core::str::FromStr;

use dcap_qvl::TcbStatus;

/// The outcome of a quote verification, as Intel's quote verification library numbers it.
///
/// A verified quote only ever carries `Ok`, the `*Needed`, `OutOfDate*` and `TdRelaunch*`
/// values: a bad signature or a revoked platform is an [`Error`](super::Error), never a
/// verified quote. `InvalidSignature`, `Revoked` and `Unspecified` exist so that the integer
/// results of the eHSM API can be represented and parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// `0`: the platform is up to date.
    Ok,
    /// `0xA001`: the platform needs a configuration change (e.g. hyperthreading off).
    ConfigNeeded,
    /// `0xA002`: the platform's TCB is out of date (microcode or SGX software update needed).
    OutOfDate,
    /// `0xA003`: out of date, and a configuration change is needed.
    OutOfDateConfigNeeded,
    /// `0xA004`: a signature did not verify.
    InvalidSignature,
    /// `0xA005`: the platform's keys are revoked.
    Revoked,
    /// `0xA006`: any other failure.
    Unspecified,
    /// `0xA007`: the platform is up to date but software mitigations are needed.
    SwHardeningNeeded,
    /// `0xA008`: a configuration change and software mitigations are needed.
    ConfigAndSwHardeningNeeded,
    /// `0xA009` (TDX 1.5): the TD was launched on an out-of-date TCB that has since been
    /// updated; relaunching it brings it up to date.
    TdRelaunchAdvised,
    /// `0xA00A` (TDX 1.5): relaunch advised, and a configuration change is needed.
    TdRelaunchAdvisedConfigNeeded,
}

/// Every status with its number and name, in one table so the three conversions agree.
const TABLE: [(Status, u32, &str); 11] = [
    (Status::Ok, 0, "OK"),
    (Status::ConfigNeeded, 0xA001, "CONFIG_NEEDED"),
    (Status::OutOfDate, 0xA002, "OUT_OF_DATE"),
    (
        Status::OutOfDateConfigNeeded,
        0xA003,
        "OUT_OF_DATE_CONFIG_NEEDED",
    ),
    (Status::InvalidSignature, 0xA004, "INVALID_SIGNATURE"),
    (Status::Revoked, 0xA005, "REVOKED"),
    (Status::Unspecified, 0xA006, "UNSPECIFIED"),
    (Status::SwHardeningNeeded, 0xA007, "SW_HARDENING_NEEDED"),
    (
        Status::ConfigAndSwHardeningNeeded,
        0xA008,
        "CONFIG_AND_SW_HARDENING_NEEDED",
    ),
    (Status::TdRelaunchAdvised, 0xA009, "TD_RELAUNCH_ADVISED"),
    (
        Status::TdRelaunchAdvisedConfigNeeded,
        0xA00A,
        "TD_RELAUNCH_ADVISED_CONFIG_NEEDED",
    ),
];

impl Status {
    /// The integer of Intel's `sgx_ql_qv_result_t` (and of eHSM's VerifyQuote `result`).
    pub fn as_u32(self) -> u32 {
        self.entry().1
    }

    /// The status with this integer, if it is one.
    pub fn from_u32(code: u32) -> Option<Self> {
        TABLE.iter().find(|e| e.1 == code).map(|e| e.0)
    }

    /// Intel's name without the `SGX_QL_QV_RESULT_` prefix, e.g. `SW_HARDENING_NEEDED`.
    pub fn name(self) -> &'static str {
        self.entry().2
    }

    fn entry(self) -> &'static (Status, u32, &'static str) {
        // The table lists every variant, so the fallback is never taken.
        TABLE.iter().find(|e| e.0 == self).unwrap_or(&TABLE[6])
    }

    /// The status dcap-qvl's TCB verdict corresponds to (Intel QVL's own mapping).
    pub(super) fn from_tcb(status: TcbStatus) -> Self {
        match status {
            TcbStatus::UpToDate => Status::Ok,
            TcbStatus::ConfigurationNeeded => Status::ConfigNeeded,
            TcbStatus::OutOfDate => Status::OutOfDate,
            TcbStatus::OutOfDateConfigurationNeeded => Status::OutOfDateConfigNeeded,
            TcbStatus::SWHardeningNeeded => Status::SwHardeningNeeded,
            TcbStatus::ConfigurationAndSWHardeningNeeded => Status::ConfigAndSwHardeningNeeded,
            TcbStatus::Revoked => Status::Revoked,
            TcbStatus::TDRelaunchAdvised => Status::TdRelaunchAdvised,
            TcbStatus::TDRelaunchAdvisedConfigurationNeeded => {
                Status::TdRelaunchAdvisedConfigNeeded
            }
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The status name is not one of Intel's (see [`Status::name`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStatus(pub String);

impl fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = TABLE.iter().map(|e| e.2).collect();
        write!(
            f,
            "unknown TCB status {:?} (expected one of {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownStatus {}

impl FromStr for Status {
    type Err = UnknownStatus;

    /// Parses Intel's name, case-insensitively, with or without the `SGX_QL_QV_RESULT_` prefix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let name = upper.strip_prefix("SGX_QL_QV_RESULT_").unwrap_or(&upper);
        TABLE
            .iter()
            .find(|e| e.2 == name)
            .map(|e| e.0)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_intels() {
        assert_eq!(Status::Ok.as_u32(), 0);
        assert_eq!(Status::ConfigNeeded.as_u32(), 0xA001);
        assert_eq!(Status::OutOfDate.as_u32(), 0xA002);
        assert_eq!(Status::OutOfDateConfigNeeded.as_u32(), 0xA003);
        assert_eq!(Status::InvalidSignature.as_u32(), 0xA004);
        assert_eq!(Status::Revoked.as_u32(), 0xA005);
        assert_eq!(Status::Unspecified.as_u32(), 0xA006);
        assert_eq!(Status::SwHardeningNeeded.as_u32(), 0xA007);
        assert_eq!(Status::ConfigAndSwHardeningNeeded.as_u32(), 0xA008);
    }

    #[test]
    fn round_trips() {
        for (status, code, name) in TABLE {
            assert_eq!(Status::from_u32(code), Some(status));
            assert_eq!(name.parse::<Status>(), Ok(status));
            assert_eq!(status.to_string(), name);
        }
        assert_eq!(Status::from_u32(1), None);
        assert_eq!("sgx_ql_qv_result_ok".parse::<Status>(), Ok(Status::Ok));
        assert!("UpToDate".parse::<Status>().is_err());
    }
}
