//! Why a certificate was not issued or a peer (its certificate or its evidence) was refused.

use core::fmt;

use crate::PlatformKind;
use crate::dcap;
use crate::policy::PolicyError;

/// An RA-TLS failure. Every verification variant is a refusal: the peer gets no keys.
#[derive(Debug)]
pub enum RatlsError {
    /// The platform could not produce evidence.
    Platform(crate::Error),
    /// The certificate could not be built (key generation or encoding).
    Issue(String),
    /// rustls refused the configuration.
    Tls(rustls::Error),
    /// The peer presented no certificate.
    NoCertificate,
    /// The certificate does not parse as X.509, or is not an RA-TLS certificate.
    MalformedCertificate(String),
    /// The certificate's signature does not verify with its own public key.
    BadSignature,
    /// The certificate is outside its validity window at the verifier's time.
    OutsideValidity {
        /// `notBefore`, Unix seconds.
        not_before: u64,
        /// `notAfter`, Unix seconds.
        not_after: u64,
        /// The verifier's time, Unix seconds.
        now: u64,
    },
    /// The certificate has no evidence extension.
    NoEvidence,
    /// The evidence extension or the evidence in it does not parse.
    MalformedEvidence(String),
    /// The evidence's report data is not the binding the verifier expects (for an RA-TLS
    /// certificate, the hash of its public key; for server evidence, the client's challenge and
    /// the key of its TLS connection): it was made for another key or another challenge.
    NotBound,
    /// The evidence says it is of one platform kind but its bytes are of another (simulated
    /// evidence labelled SGX, a TDX quote labelled SGX, ...).
    KindMismatch {
        /// The kind the evidence is labelled with.
        labelled: PlatformKind,
        /// The kind its bytes are.
        found: PlatformKind,
    },
    /// No collateral could be found for the quote.
    Collateral(String),
    /// The collateral is expired or not yet valid: fetch fresh collateral (or fix the clock).
    CollateralOutOfDate(dcap::Error),
    /// The quote did not verify (signature, certificate chain, TCB, revocation).
    QuoteInvalid(dcap::Error),
    /// The evidence is simulated and the policy does not allow simulated evidence.
    SimulatedNotAllowed,
    /// The evidence verified, but the policy refuses the identity it measures.
    PolicyRefused(PolicyError),
}

impl RatlsError {
    /// Sorts a DCAP failure: out-of-date collateral is fixed differently from a bad quote.
    pub(crate) fn from_dcap(e: dcap::Error) -> Self {
        if e.is_collateral_out_of_date() {
            RatlsError::CollateralOutOfDate(e)
        } else {
            RatlsError::QuoteInvalid(e)
        }
    }

    /// Keeps the simulation refusal apart: it is the most common misconfiguration.
    pub(crate) fn from_policy(e: PolicyError) -> Self {
        match e {
            PolicyError::SimulatedNotAllowed => RatlsError::SimulatedNotAllowed,
            other => RatlsError::PolicyRefused(other),
        }
    }
}

impl fmt::Display for RatlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RatlsError::Platform(e) => write!(f, "RA-TLS: the platform gave no evidence: {e}"),
            RatlsError::Issue(reason) => {
                write!(f, "RA-TLS: the certificate could not be built: {reason}")
            }
            RatlsError::Tls(e) => write!(f, "RA-TLS: TLS configuration refused: {e}"),
            RatlsError::NoCertificate => f.write_str("RA-TLS: the peer presented no certificate"),
            RatlsError::MalformedCertificate(reason) => {
                write!(f, "RA-TLS: the peer's certificate is malformed: {reason}")
            }
            RatlsError::BadSignature => f.write_str(
                "RA-TLS: the peer's certificate is not validly self-signed with its own key",
            ),
            RatlsError::OutsideValidity {
                not_before,
                not_after,
                now,
            } => write!(
                f,
                "RA-TLS: the peer's certificate is valid from {} to {}, not at {}",
                dcap::format_unix_secs(*not_before),
                dcap::format_unix_secs(*not_after),
                dcap::format_unix_secs(*now)
            ),
            RatlsError::NoEvidence => f.write_str(
                "RA-TLS: the peer's certificate carries no evidence extension (not an RA-TLS \
                 certificate)",
            ),
            RatlsError::MalformedEvidence(reason) => {
                write!(f, "RA-TLS: the peer's evidence is malformed: {reason}")
            }
            RatlsError::NotBound => f.write_str(
                "RA-TLS: the peer's evidence is not bound to the key (and challenge) being \
                 verified: its report data was made for another public key or another \
                 challenge, so it was copied or replayed, or the TLS session does not end where \
                 the evidence was made",
            ),
            RatlsError::KindMismatch { labelled, found } => write!(
                f,
                "RA-TLS: the peer's evidence is labelled {labelled} but is {}: the peer is \
                 misconfigured or the evidence was altered on the way",
                describe(*found)
            ),
            RatlsError::Collateral(reason) => {
                write!(f, "RA-TLS: no collateral for the peer's quote: {reason}")
            }
            RatlsError::CollateralOutOfDate(e) => write!(f, "RA-TLS: {e}"),
            RatlsError::QuoteInvalid(e) => write!(f, "RA-TLS: the peer's quote is invalid: {e}"),
            RatlsError::SimulatedNotAllowed => f.write_str(
                "RA-TLS: simulated evidence not allowed: the peer runs without hardware \
                 protection and the policy does not set allow_simulated = true",
            ),
            RatlsError::PolicyRefused(e) => write!(f, "RA-TLS: policy refused: {e}"),
        }
    }
}

/// What evidence of `kind` is, in words.
fn describe(kind: PlatformKind) -> &'static str {
    match kind {
        PlatformKind::Sim => "simulated evidence",
        PlatformKind::Sgx => "an SGX quote",
        PlatformKind::Tdx => "a TDX quote",
    }
}

impl std::error::Error for RatlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RatlsError::Platform(e) => Some(e),
            RatlsError::Tls(e) => Some(e),
            RatlsError::CollateralOutOfDate(e) | RatlsError::QuoteInvalid(e) => Some(e),
            RatlsError::PolicyRefused(e) => Some(e),
            _ => None,
        }
    }
}
