//! The collateral's validity window, checked before the signatures.
//!
//! dcap-qvl checks the same dates, but reports them as text among all its other failures. This
//! check runs first so that stale collateral, the most common and most fixable failure, gets its
//! own error ([`Error::CollateralExpired`]). It trusts nothing it reads: the signatures are
//! checked afterwards, and a tampered date can only turn one refusal into another.

use der::Decode;
use serde::Deserialize;
use x509_cert::crl::CertificateList;

use super::Error;
use super::time::parse_unix_secs;

/// One dated part of the collateral.
struct Dated {
    item: &'static str,
    issued: u64,
    next_update: Option<u64>,
}

/// The dates of a TCB info or QE identity JSON (the other fields are dcap-qvl's business).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonDates {
    issue_date: String,
    next_update: String,
}

/// The dates of the four dated parts of the collateral.
fn parts(collateral: &dcap_qvl::QuoteCollateralV3) -> Result<[Dated; 4], Error> {
    Ok([
        json_dates("tcb_info", "TCB info", &collateral.tcb_info)?,
        json_dates("qe_identity", "QE identity", &collateral.qe_identity)?,
        crl_dates("root_ca_crl", "root CA CRL", &collateral.root_ca_crl)?,
        crl_dates("pck_crl", "PCK CRL", &collateral.pck_crl)?,
    ])
}

/// The earliest `nextUpdate` of the collateral's parts (Unix seconds): when it must be fetched
/// again. `None` if no part has one (a CRL may omit it).
pub(super) fn next_update(collateral: &dcap_qvl::QuoteCollateralV3) -> Result<Option<u64>, Error> {
    Ok(parts(collateral)?
        .iter()
        .filter_map(|part| part.next_update)
        .min())
}

/// Refuses collateral that is expired or not yet valid at `now` (Unix seconds).
pub(super) fn check(collateral: &dcap_qvl::QuoteCollateralV3, now: u64) -> Result<(), Error> {
    for part in parts(collateral)? {
        // Same comparisons as dcap-qvl: valid from the issue date through nextUpdate inclusive.
        if now < part.issued {
            return Err(Error::CollateralNotYetValid {
                item: part.item,
                issued: part.issued,
                now,
            });
        }
        if let Some(next_update) = part.next_update.filter(|&next| now > next) {
            return Err(Error::CollateralExpired {
                item: part.item,
                next_update,
                now,
            });
        }
    }
    Ok(())
}

fn json_dates(field: &'static str, item: &'static str, json: &str) -> Result<Dated, Error> {
    let malformed = |reason: String| Error::CollateralMalformed { field, reason };
    let dates: JsonDates = serde_json::from_str(json).map_err(|e| malformed(e.to_string()))?;
    Ok(Dated {
        item,
        issued: parse_unix_secs(&dates.issue_date).map_err(malformed)?,
        next_update: Some(parse_unix_secs(&dates.next_update).map_err(malformed)?),
    })
}

fn crl_dates(field: &'static str, item: &'static str, der: &[u8]) -> Result<Dated, Error> {
    let crl: CertificateList =
        CertificateList::from_der(der).map_err(|e| Error::CollateralMalformed {
            field,
            reason: e.to_string(),
        })?;
    let tbs = &crl.tbs_cert_list;
    Ok(Dated {
        item,
        issued: tbs.this_update.to_unix_duration().as_secs(),
        next_update: tbs.next_update.map(|t| t.to_unix_duration().as_secs()),
    })
}
