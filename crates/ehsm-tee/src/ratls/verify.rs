//! Deciding whether a peer's RA-TLS certificate, or evidence it sent on its own, is acceptable,
//! and who the peer is.

use core::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::CertificateDer;

use super::cert::report_data_for;
use super::extension::Carried;
use super::parse::{Parsed, parse};
use super::{CollateralSource, RatlsError};
use crate::dcap::unix_secs;
use crate::dcap::{self, Identity, Status};
use crate::evidence;
use crate::policy::Policy;
use crate::sim;
use crate::{Evidence, PlatformKind};

/// Who a verified peer is: the hash of its certificate key and what its evidence measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// SHA-256 of the peer certificate's `SubjectPublicKeyInfo` (the bound key).
    pub key_sha256: [u8; 32],
    /// What the evidence says.
    pub evidence: PeerEvidence,
}

/// What a peer's verified evidence measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerEvidence {
    /// A DCAP quote that verified against its collateral.
    Quote {
        /// The measured identity (SGX enclave or TDX trust domain); boxed, being ten times the
        /// size of the simulated variant.
        identity: Box<Identity>,
        /// Intel's verification status (the policy accepted it).
        status: Status,
        /// Intel's security advisories for the platform.
        advisory_ids: Vec<String>,
    },
    /// Simulated evidence: **no hardware protection**, accepted only by `allow_simulated`.
    Simulated {
        /// The simulated measurement.
        measurement: [u8; 32],
    },
}

impl fmt::Display for PeerIdentity {
    /// One line for logs, e.g. `sgx mr_enclave=... mr_signer=... isv_prod_id=0 isv_svn=2
    /// status=OK key=...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.evidence {
            PeerEvidence::Quote {
                identity, status, ..
            } => match identity.as_ref() {
                Identity::Sgx(sgx) => write!(
                    f,
                    "sgx mr_enclave={} mr_signer={} isv_prod_id={} isv_svn={} status={status}",
                    hex::encode(sgx.mr_enclave),
                    hex::encode(sgx.mr_signer),
                    sgx.isv_prod_id,
                    sgx.isv_svn
                )?,
                Identity::Tdx(tdx) => {
                    write!(f, "tdx mr_td={} status={status}", hex::encode(tdx.mr_td))?
                }
            },
            PeerEvidence::Simulated { measurement } => write!(
                f,
                "sim (no hardware protection) measurement={}",
                hex::encode(measurement)
            )?,
        }
        write!(f, " key={}", hex::encode(self.key_sha256))
    }
}

/// Verifies peers' RA-TLS certificates against a policy.
#[derive(Clone)]
pub struct Verifier {
    policy: Arc<Policy>,
    collateral: Arc<dyn CollateralSource>,
    clock: fn() -> SystemTime,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier using the system clock.
    pub fn new(policy: Arc<Policy>, collateral: Arc<dyn CollateralSource>) -> Self {
        Self {
            policy,
            collateral,
            clock: SystemTime::now,
        }
    }

    /// The same verifier with another clock, for the certificate's validity and the
    /// collateral's (tests pin it; a deployment may trust another time source).
    pub fn with_clock(self, clock: fn() -> SystemTime) -> Self {
        Self { clock, ..self }
    }

    /// The verifier's time.
    pub fn now(&self) -> SystemTime {
        (self.clock)()
    }

    /// Verifies an RA-TLS certificate (DER) and returns who the peer is. It does **not** prove
    /// that the peer holds the certificate's key: the TLS handshake does that.
    pub fn verify_certificate(&self, der: &[u8]) -> Result<PeerIdentity, RatlsError> {
        let now = self.now();
        let Parsed {
            spki_der,
            not_before,
            not_after,
            evidence,
        } = parse(der)?;
        let now_secs = unix_secs(now);
        if now_secs < not_before || now_secs > not_after {
            return Err(RatlsError::OutsideValidity {
                not_before,
                not_after,
                now: now_secs,
            });
        }
        let expected = report_data_for(&spki_der);
        let evidence = self.verify_carried(&evidence, &expected, now)?;
        let mut key_sha256 = [0u8; 32];
        key_sha256.copy_from_slice(&expected[..32]);
        Ok(PeerIdentity {
            key_sha256,
            evidence,
        })
    }

    /// Verifies evidence as a platform produced it (not carried in a certificate), e.g. a
    /// server's answer to a client's challenge (see [`crate::server_evidence`]): its report data
    /// must be `expected_report_data`, it must verify (a DCAP quote against its collateral;
    /// simulated evidence only parses), and the policy must accept what it measures. Its `kind`
    /// must match its bytes: a mismatch is refused, not guessed around.
    pub fn verify_evidence(
        &self,
        evidence: &Evidence,
        expected_report_data: &[u8; 64],
    ) -> Result<PeerEvidence, RatlsError> {
        self.verify_carried(&carried(evidence)?, expected_report_data, self.now())
    }

    /// The one path for evidence, carried in a certificate or not: the binding to
    /// `expected`, then the evidence itself and the policy.
    fn verify_carried(
        &self,
        carried: &Carried,
        expected: &[u8; 64],
        now: SystemTime,
    ) -> Result<PeerEvidence, RatlsError> {
        match carried {
            Carried::Quote(quote) => {
                // The unverified report data first, so that a copied quote is reported as such
                // rather than as whatever its collateral says.
                let quoted = evidence::report_data(quote).map_err(RatlsError::MalformedEvidence)?;
                if quoted != *expected {
                    return Err(RatlsError::NotBound);
                }
                let (evidence, report_data) = self.appraise_quote(quote, now)?;
                if report_data != *expected {
                    return Err(RatlsError::NotBound);
                }
                Ok(evidence)
            }
            Carried::Simulated(bytes) => {
                let sim = sim::parse_evidence(bytes)
                    .map_err(|e| RatlsError::MalformedEvidence(e.to_string()))?;
                if sim.report_data != *expected {
                    return Err(RatlsError::NotBound);
                }
                self.policy
                    .check_simulated(&sim.measurement)
                    .map_err(RatlsError::from_policy)?;
                Ok(PeerEvidence::Simulated {
                    measurement: sim.measurement,
                })
            }
        }
    }

    /// After a handshake: who the peer is, from the certificates the connection reports
    /// (`peer_certificates()`). The certificate is verified again (a DCAP verification for a
    /// quote), so call it once per connection.
    pub fn verify_peer(
        &self,
        peer_certificates: Option<&[CertificateDer<'_>]>,
    ) -> Result<PeerIdentity, RatlsError> {
        match peer_certificates.and_then(<[_]>::first) {
            Some(cert) => self.verify_certificate(cert),
            None => Err(RatlsError::NoCertificate),
        }
    }

    /// Verifies a quote against its collateral and the policy, and returns what it measured and
    /// its (verified) report data. The binding to a key is the caller's check: this is kept
    /// apart only so that the tests can verify Intel's sample quote, which binds no key of ours.
    fn appraise_quote(
        &self,
        quote: &[u8],
        now: SystemTime,
    ) -> Result<(PeerEvidence, [u8; 64]), RatlsError> {
        let collateral = self.collateral.collateral(quote)?;
        let verified = dcap::verify(quote, &collateral, now).map_err(RatlsError::from_dcap)?;
        self.policy
            .check(verified.identity(), verified.status())
            .map_err(RatlsError::from_policy)?;
        let report_data = *verified.identity().report_data();
        Ok((
            PeerEvidence::Quote {
                identity: Box::new(verified.identity().clone()),
                status: verified.status(),
                advisory_ids: verified.advisory_ids().to_vec(),
            },
            report_data,
        ))
    }
}

/// Evidence as a certificate would carry it, once its bytes are shown to be of the kind it says.
/// The kind decides which verification runs, so evidence whose kind and bytes disagree is
/// refused: it comes from a confused or tampered peer, and either reading of it would be a guess.
fn carried(evidence: &Evidence) -> Result<Carried, RatlsError> {
    let bytes = &evidence.bytes;
    let reads_as = |kind| match kind {
        PlatformKind::Sim => sim::parse_evidence(bytes)
            .map(drop)
            .map_err(|e| e.to_string()),
        PlatformKind::Sgx => evidence::sgx_report_body(bytes)
            .map(drop)
            .map_err(str::to_owned),
        PlatformKind::Tdx => evidence::td_report_body(bytes)
            .map(drop)
            .map_err(str::to_owned),
    };
    if let Err(reason) = reads_as(evidence.kind) {
        let found = [PlatformKind::Sim, PlatformKind::Sgx, PlatformKind::Tdx]
            .into_iter()
            .find(|&kind| reads_as(kind).is_ok());
        return Err(match found {
            Some(found) => RatlsError::KindMismatch {
                labelled: evidence.kind,
                found,
            },
            None => RatlsError::MalformedEvidence(format!("labelled {}: {reason}", evidence.kind)),
        });
    }
    Ok(match evidence.kind {
        PlatformKind::Sim => Carried::Simulated(bytes.clone()),
        PlatformKind::Sgx | PlatformKind::Tdx => Carried::Quote(bytes.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratls::FileCollateral;

    const SGX_QUOTE: &[u8] = include_bytes!("../../tests/data/sgx_quote");
    const SGX_COLLATERAL: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sgx_quote_collateral.json"
    );

    fn verifier(policy: &str) -> Verifier {
        Verifier::new(
            Arc::new(Policy::from_toml(policy).unwrap()),
            Arc::new(FileCollateral::file(SGX_COLLATERAL)),
        )
        .with_clock(|| dcap::parse_rfc3339("2025-06-20T00:00:00Z").unwrap())
    }

    const ACCEPTS_SAMPLE: &str = r#"
        accepted_tcb_statuses = ["CONFIG_AND_SW_HARDENING_NEEDED"]
        [sgx]
        mr_enclave = ["33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"]
    "#;

    #[test]
    fn dcap_branch_accepts_the_sample_quote_under_a_matching_policy() {
        let v = verifier(ACCEPTS_SAMPLE);
        let (evidence, report_data) = v.appraise_quote(SGX_QUOTE, v.now()).unwrap();
        assert_eq!(report_data, evidence::report_data(SGX_QUOTE).unwrap());
        let PeerEvidence::Quote {
            identity, status, ..
        } = evidence
        else {
            panic!("not a quote: {evidence:?}");
        };
        let Identity::Sgx(sgx) = *identity else {
            panic!("not an SGX quote: {identity:?}");
        };
        assert_eq!(status, Status::ConfigAndSwHardeningNeeded);
        assert_eq!(sgx.report_data, report_data);
    }

    #[test]
    fn dcap_branch_applies_the_policy() {
        let v = verifier(
            "[sgx]\nmr_enclave = [\"33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb\"]",
        );
        let err = v.appraise_quote(SGX_QUOTE, v.now()).unwrap_err();
        assert!(matches!(err, RatlsError::PolicyRefused(_)), "{err}");
        assert!(
            err.to_string().contains("policy refused: TCB status"),
            "{err}"
        );
    }

    #[test]
    fn dcap_branch_reports_expired_collateral() {
        let v = verifier(ACCEPTS_SAMPLE);
        let later = dcap::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        let err = v.appraise_quote(SGX_QUOTE, later).unwrap_err();
        assert!(matches!(err, RatlsError::CollateralOutOfDate(_)), "{err}");
        assert!(err.to_string().contains("collateral has expired"), "{err}");
    }

    #[test]
    fn dcap_branch_refuses_a_tampered_quote() {
        let v = verifier(ACCEPTS_SAMPLE);
        let mut quote = SGX_QUOTE.to_vec();
        quote[48 + 64] ^= 1; // MRENCLAVE
        let err = v.appraise_quote(&quote, v.now()).unwrap_err();
        assert!(matches!(err, RatlsError::QuoteInvalid(_)), "{err}");
    }

    #[test]
    fn file_collateral_by_fmspc_names_the_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = FileCollateral::directory(dir.path())
            .collateral(SGX_QUOTE)
            .unwrap_err();
        assert!(err.to_string().contains(".json"), "{err}");
    }
}
