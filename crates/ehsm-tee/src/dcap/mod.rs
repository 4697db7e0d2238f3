//! DCAP quote verification: is this SGX (v3) or TDX (v4/v5) quote genuine, and what code does
//! it measure?
//!
//! Pure Rust and offline: [dcap-qvl] checks the quote against Intel's root CA and the
//! collateral (TCB info, QE identity, CRLs and their issuer chains) that the caller supplies, in
//! the JSON form of dcap-qvl's `QuoteCollateralV3` (what a PCCS client writes). The time of
//! verification is a parameter, never the clock, so that tests are reproducible and a caller
//! decides which clock to trust.
//!
//! The result is a [`VerifiedQuote`]: Intel's integer [`Status`] (eHSM's VerifyQuote result)
//! and the measured [`Identity`]. Whether that identity may receive keys is the business of a
//! [`crate::policy::Policy`].
//!
//! [dcap-qvl]: https://github.com/Phala-Network/dcap-qvl

mod error;
mod pck;
mod status;
mod time;
mod window;

use std::time::SystemTime;

use dcap_qvl::QuoteCollateralV3;
use dcap_qvl::configs::RustCryptoConfig;
use dcap_qvl::quote::{Quote, Report};
use dcap_qvl::verify::QuoteVerifier;

pub use error::Error;
pub(crate) use pck::PckPlatform;
pub use status::{Status, UnknownStatus};
pub(crate) use time::unix_secs;
pub use time::{format_unix_secs, parse_rfc3339};

/// The collateral a quote is verified against, parsed but not yet checked.
#[derive(Clone, Debug)]
pub struct Collateral(QuoteCollateralV3);

impl Collateral {
    /// Reads dcap-qvl's `QuoteCollateralV3` JSON (byte fields as hex strings).
    pub fn from_json(json: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(json)
            .map(Self)
            .map_err(|e| Error::CollateralMalformed {
                field: "JSON document",
                reason: e.to_string(),
            })
    }

    /// Wraps collateral assembled from a PCCS's answers.
    pub(crate) fn from_parts(collateral: QuoteCollateralV3) -> Self {
        Self(collateral)
    }

    /// When the collateral must be fetched again: the earliest `nextUpdate` of its TCB info,
    /// QE identity and CRLs (`None` if none has one). Dates are read, not verified: a forged
    /// date only changes when the collateral is fetched again.
    pub fn next_update(&self) -> Result<Option<SystemTime>, Error> {
        Ok(window::next_update(&self.0)?
            .map(|secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)))
    }
}

/// What a verified quote says about the code that produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// An SGX enclave.
    Sgx(SgxIdentity),
    /// A TDX trust domain.
    Tdx(TdxIdentity),
}

impl Identity {
    /// The 64 bytes the quoted code chose to bind (a challenge, or a hash of its public key).
    pub fn report_data(&self) -> &[u8; 64] {
        match self {
            Identity::Sgx(sgx) => &sgx.report_data,
            Identity::Tdx(tdx) => &tdx.report_data,
        }
    }

    /// `sgx` or `tdx`.
    pub fn platform(&self) -> &'static str {
        match self {
            Identity::Sgx(_) => "sgx",
            Identity::Tdx(_) => "tdx",
        }
    }
}

/// The measured identity of an SGX enclave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgxIdentity {
    /// MRENCLAVE: the hash of the enclave's code and initial data.
    pub mr_enclave: [u8; 32],
    /// MRSIGNER: the hash of the key that signed the enclave.
    pub mr_signer: [u8; 32],
    /// ISVPRODID: the product id the signer gave the enclave.
    pub isv_prod_id: u16,
    /// ISVSVN: the enclave's security version number.
    pub isv_svn: u16,
    /// REPORTDATA.
    pub report_data: [u8; 64],
}

/// The measured identity of a TDX trust domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdxIdentity {
    /// MRTD: the hash of the TD's initial memory (its firmware).
    pub mr_td: [u8; 48],
    /// RTMR0..3: the runtime measurement registers (boot loader, kernel, command line, ...).
    pub rtmr: [[u8; 48]; 4],
    /// REPORTDATA.
    pub report_data: [u8; 64],
}

/// A quote whose signatures, certificate chain and TCB were checked against the collateral.
///
/// Only [`verify`] makes one, so holding one proves the checks ran. The status may still be one
/// a policy refuses (e.g. `OUT_OF_DATE`).
#[derive(Clone, Debug)]
pub struct VerifiedQuote {
    status: Status,
    tcb_status: String,
    advisory_ids: Vec<String>,
    identity: Identity,
}

impl VerifiedQuote {
    /// Intel's verification status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The TCB status as Intel's collateral names it, e.g. `ConfigurationAndSWHardeningNeeded`.
    pub fn tcb_status(&self) -> &str {
        &self.tcb_status
    }

    /// The Intel security advisories that apply to the platform, e.g. `INTEL-SA-00615`.
    pub fn advisory_ids(&self) -> &[String] {
        &self.advisory_ids
    }

    /// The measured identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }
}

/// Verifies a raw DCAP quote against its collateral at time `now`.
///
/// Debug enclaves and TDs are refused, as are TDs bound to service TDs. The verification uses
/// Intel's production root CA, built into dcap-qvl.
pub fn verify(
    quote: &[u8],
    collateral: &Collateral,
    now: SystemTime,
) -> Result<VerifiedQuote, Error> {
    let now = time::unix_secs(now);
    check_header(quote)?;
    window::check(&collateral.0, now)?;
    // dcap-qvl applies no policy of its own here (AcceptAll): the statuses are ours to judge.
    let claims = QuoteVerifier::new_prod()
        .with_config::<RustCryptoConfig>()
        .verify_with_policy(quote, collateral.0.clone(), now, &AcceptAll)
        .map_err(|e| classify(format!("{e:#}")))?;
    Ok(VerifiedQuote {
        status: Status::from_tcb(claims.tcb.status),
        tcb_status: claims.tcb.status.to_string(),
        advisory_ids: claims.tcb.advisory_ids,
        identity: identity(&claims.report)?,
    })
}

/// Parses the quote and refuses the kinds dcap-qvl would, with their own error, before any
/// cryptography.
fn check_header(quote: &[u8]) -> Result<(), Error> {
    let parsed = Quote::parse(quote).map_err(|e| Error::QuoteMalformed {
        reason: format!(
            "{} bytes that do not parse as an SGX or TDX quote ({e:#})",
            quote.len()
        ),
    })?;
    let header = &parsed.header;
    let unsupported = |reason: String| Err(Error::QuoteUnsupported { reason });
    match (header.tee_type, header.version) {
        (TEE_TYPE_SGX, 3) | (TEE_TYPE_TDX, 4 | 5) => {}
        (tee, version) => {
            return unsupported(format!(
                "version {version} with TEE type {tee:#x} (expected SGX version 3, or TDX \
                 version 4 or 5)"
            ));
        }
    }
    if header.attestation_key_type != ECDSA_P256 {
        return unsupported(format!(
            "attestation key type {} (only ECDSA P-256, type 2, exists)",
            header.attestation_key_type
        ));
    }
    if header.qe_vendor_id != dcap_qvl::INTEL_QE_VENDOR_ID {
        return unsupported("the quoting enclave is not Intel's".to_owned());
    }
    Ok(())
}

/// `tee_type` values and the attestation key type of the DCAP quote header (Intel's
/// "Quote Library API" document; dcap-qvl keeps its constants private).
const TEE_TYPE_SGX: u32 = 0x00;
const TEE_TYPE_TDX: u32 = 0x81;
const ECDSA_P256: u16 = 2;

/// Sorts dcap-qvl's failures. It reports them as `anyhow` text, with webpki's errors already
/// flattened to strings, so its message is the only thing to go on. Revocation is the one
/// failure singled out: it is the only one upstream's status integers name
/// (`REVOKED`), and it comes as dcap-qvl's "TCB status is invalid: Revoked" or webpki's
/// `CertRevoked`. The tests pin both, so a dcap-qvl upgrade that rewords them fails loudly.
fn classify(message: String) -> Error {
    if message.contains("Revoked") {
        Error::Revoked { reason: message }
    } else {
        Error::Rejected { reason: message }
    }
}

/// The measured identity in a verified report.
fn identity(report: &Report) -> Result<Identity, Error> {
    if let Some(sgx) = report.as_sgx() {
        return Ok(Identity::Sgx(SgxIdentity {
            mr_enclave: sgx.mr_enclave,
            mr_signer: sgx.mr_signer,
            isv_prod_id: sgx.isv_prod_id,
            isv_svn: sgx.isv_svn,
            report_data: sgx.report_data,
        }));
    }
    if let Some(td) = report.as_td10() {
        return Ok(Identity::Tdx(TdxIdentity {
            mr_td: td.mr_td,
            rtmr: [td.rt_mr0, td.rt_mr1, td.rt_mr2, td.rt_mr3],
            report_data: td.report_data,
        }));
    }
    // Every report body dcap-qvl parses is SGX or a TD report; this guards a future variant.
    Err(Error::QuoteUnsupported {
        reason: "unknown report body".to_owned(),
    })
}

/// A dcap-qvl policy that accepts every verified quote, so that its verdict reaches ours.
struct AcceptAll;

impl dcap_qvl::Policy for AcceptAll {
    fn validate(&self, _claims: &dcap_qvl::QuoteClaims) -> anyhow::Result<()> {
        Ok(())
    }
}
