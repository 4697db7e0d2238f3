//! Why a quote was not verified.

use core::fmt;

use super::time::format_unix_secs;

/// Why a quote could not be verified. Every variant is a refusal: no key may be released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The quote bytes do not parse as a DCAP quote (truncated, bad lengths, unknown body).
    QuoteMalformed {
        /// What the parser found.
        reason: String,
    },
    /// The quote parses but is of a kind this verifier does not accept (version, TEE type,
    /// attestation key type, or a quoting enclave not from Intel).
    QuoteUnsupported {
        /// Which property is not supported.
        reason: String,
    },
    /// A part of the collateral does not parse.
    CollateralMalformed {
        /// The collateral field, by its JSON name (e.g. `tcb_info`, `pck_crl`).
        field: &'static str,
        /// What the parser found.
        reason: String,
    },
    /// The verification time is after a part of the collateral's `nextUpdate`: the collateral
    /// must be fetched again. Reported apart from other failures because the fix differs.
    CollateralExpired {
        /// Which part expired (e.g. `TCB info`, `PCK CRL`).
        item: &'static str,
        /// Its `nextUpdate`, Unix seconds.
        next_update: u64,
        /// The verification time, Unix seconds.
        now: u64,
    },
    /// The verification time is before a part of the collateral was issued (a wrong clock, or
    /// collateral from the future).
    CollateralNotYetValid {
        /// Which part (e.g. `TCB info`, `PCK CRL`).
        item: &'static str,
        /// Its issue date (`issueDate` or `thisUpdate`), Unix seconds.
        issued: u64,
        /// The verification time, Unix seconds.
        now: u64,
    },
    /// The platform's TCB or a certificate in its chain is revoked.
    Revoked {
        /// The verifier's message.
        reason: String,
    },
    /// A signature, certificate chain, hash or TCB check failed.
    Rejected {
        /// The verifier's message (which check failed).
        reason: String,
    },
}

impl Error {
    /// Whether the collateral is outside its validity window (expired or not yet valid), so
    /// that fetching fresh collateral (or fixing the clock) may help.
    pub fn is_collateral_out_of_date(&self) -> bool {
        matches!(
            self,
            Error::CollateralExpired { .. } | Error::CollateralNotYetValid { .. }
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::QuoteMalformed { reason } => write!(f, "the quote is malformed: {reason}"),
            Error::QuoteUnsupported { reason } => {
                write!(f, "the quote is not supported: {reason}")
            }
            Error::CollateralMalformed { field, reason } => {
                write!(f, "the collateral's {field} is malformed: {reason}")
            }
            Error::CollateralExpired {
                item,
                next_update,
                now,
            } => write!(
                f,
                "the collateral has expired: its {item} was valid until {}, and the \
                 verification time is {}; fetch fresh collateral from the PCCS",
                format_unix_secs(*next_update),
                format_unix_secs(*now)
            ),
            Error::CollateralNotYetValid { item, issued, now } => write!(
                f,
                "the collateral is not yet valid: its {item} was issued at {}, after the \
                 verification time {}; check the clock",
                format_unix_secs(*issued),
                format_unix_secs(*now)
            ),
            Error::Revoked { reason } => write!(f, "the platform is revoked: {reason}"),
            Error::Rejected { reason } => write!(f, "the quote failed verification: {reason}"),
        }
    }
}

impl std::error::Error for Error {}
