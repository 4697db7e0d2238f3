//! Which collateral a quote needs, read from the PCK certificate inside it.

use dcap_qvl::configs::RustCryptoConfig;
use dcap_qvl::quote::Quote;

/// The platform a quote's PCK leaf certificate names: what selects its collateral (TCB info is
/// per TEE type and FMSPC, the PCK CRL per issuing CA).
///
/// Read from the quote without verifying it: it only chooses which collateral to use, and the
/// verification then checks that the collateral matches the quote.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PckPlatform {
    /// An SGX quote (else TDX).
    pub(crate) sgx: bool,
    /// The FMSPC in upper-case hex, as Intel and PCCS print it (e.g. `00906ED50000`).
    pub(crate) fmspc: String,
    /// The PCK CA as PCS URLs name it: `processor` or `platform`.
    pub(crate) ca: &'static str,
}

impl PckPlatform {
    /// Reads the platform of `quote`; the error says why it cannot be read.
    pub(crate) fn of(quote: &[u8]) -> Result<Self, String> {
        let fail = |e: anyhow::Error| format!("{e:#}");
        let parsed = Quote::parse(quote).map_err(fail)?;
        let fmspc = dcap_qvl::intel::quote_fmspc_with::<RustCryptoConfig>(&parsed).map_err(fail)?;
        let ca = dcap_qvl::intel::quote_ca_with::<RustCryptoConfig>(&parsed).map_err(fail)?;
        Ok(Self {
            sgx: parsed.header.is_sgx(),
            fmspc: hex::encode_upper(fmspc),
            ca: ca.as_id_str(),
        })
    }
}
