//! Remote attestation (spec §9): GenerateQuote, VerifyQuote, UploadQuotePolicy, GetQuotePolicy.
//!
//! Upstream's wire shapes are kept: `{challenge, quote}`; `{result: int, nonce, mr_enclave?,
//! mr_signer?, sign}` with `sign` the HMAC of the result under the app's API key (§3.1
//! canonicaliser, so a `result` of 0 is left out of it); `{policyId}`; and GetQuotePolicy's 200
//! with only `{policyId}` for an unknown policy.
//!
//! Fixed:
//! - **The challenge is bound.** Upstream's report data was all zeros, so a quote proved nothing
//!   about freshness. Here the report data is
//!   `SHA-256("ehsm GenerateQuote\0" ‖ appid ‖ 0x00 ‖ challenge) ‖ 32 zero bytes`, the challenge
//!   taken as the base64 text the client sent. VerifyQuote checks it when the client gives the
//!   ehsm extension field `challenge` (upstream clients do not, and see no change).
//! - A policy mismatch is a 400 that names MRENCLAVE or MRSIGNER, not a 500.
//! - Quotes are verified against the collateral the operator gives (`--collateral`, a dcap-qvl
//!   `QuoteCollateralV3` JSON) or that ehsm fetches from a PCCS (`--pccs-url`, cached), at the
//!   current time; expired collateral is a 400 that says so.
//! - Simulated evidence (`--tee sim`) is refused unless the server runs with
//!   `--allow-simulated-quotes`; then it verifies with result 0, the simulated measurement as
//!   `mr_enclave` and 32 zero bytes as `mr_signer` (a simulated enclave has no signer).

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ehsm_proto::quote::report_data;
use ehsm_store::QuotePolicyRecord;
use ehsm_tee::dcap::{self, Identity, SgxIdentity, Status};
use ehsm_tee::{evidence, pccs, sim};
use serde_json::{Map, Value, json};

use crate::envelope::Authenticated;
use crate::params;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::state::{AppState, now_ms};

/// Upstream's bound on a decoded quote (its FFI buffer).
const MAX_QUOTE: usize = 8192;

pub(super) async fn generate_quote(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let challenge = params::string(req.payload, "challenge")?;
    let data = report_data(req.appid, challenge);
    // On SGX this is file I/O with Gramine (and a call to the quoting enclave): off the runtime.
    let evidence = super::heavy(state, || state.attestation.platform.evidence(&data))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Reply::success(json!({
        "challenge": challenge,
        "quote": STANDARD.encode(&evidence.bytes),
    })))
}

pub(super) async fn upload_quote_policy(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    // Stored in lower case: quotes' measurements are compared as lower-case hex, and upstream
    // stored them as given, so that an upper-case policy never matched.
    let record = QuotePolicyRecord {
        appid: req.appid.to_owned(),
        policy_id: uuid::Uuid::new_v4().to_string(),
        mr_enclave: params::string(p, "mr_enclave")?.to_ascii_lowercase(),
        mr_signer: params::string(p, "mr_signer")?.to_ascii_lowercase(),
        create_time: now_ms(),
    };
    state.store.insert_quote_policy(&record).await?;
    Ok(Reply::with_message(
        "Upload quote policy success.",
        json!({"policyId": record.policy_id}),
    ))
}

pub(super) async fn get_quote_policy(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let id = params::string(req.payload, "policyId")?;
    // Upstream's quirk, kept: an unknown policy (or another app's) is a success with only the id.
    let result = match state.store.get_quote_policy(req.appid, id).await? {
        Some(p) => json!({
            "policyId": p.policy_id,
            "mr_enclave": p.mr_enclave,
            "mr_signer": p.mr_signer,
            "createTime": p.create_time,
        }),
        None => json!({"policyId": id}),
    };
    Ok(Reply::with_message("Query quote policy success.", result))
}

/// What a checked quote says: its status and, for SGX and simulated evidence, the
/// measurements a policy compares.
struct Checked {
    status: Status,
    sgx: Option<SgxIdentity>,
    report_data: [u8; 64],
}

pub(super) async fn verify_quote(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    // Upstream's order: the policy, then the quote's length, then the verification.
    let policy = match params::opt_string(p, "policyId")? {
        Some(id) => Some(
            state
                .store
                .get_quote_policy(req.appid, id)
                .await?
                .ok_or_else(|| ApiError::bad_request("Invalid  policyId."))?,
        ),
        None => None,
    };
    let quote = params::bytes(p, "quote")?;
    if quote.is_empty() || quote.len() > MAX_QUOTE {
        return Err(ApiError::bad_request("The quote's length is invalid."));
    }
    let nonce = params::string(p, "nonce")?;
    // ehsm extension: the verifier's challenge, to check that the quote is fresh and this app's.
    let challenge = params::opt_string(p, "challenge")?;

    let checked = if quote.starts_with(sim::EVIDENCE_MAGIC) {
        check_simulated(state, &quote)?
    } else {
        check_hardware(state, &quote).await?
    };
    if let Some(challenge) = challenge
        && checked.report_data != report_data(req.appid, challenge)
    {
        return Err(ApiError::bad_request(
            "the quote is not bound to this challenge (replayed or for another app)",
        ));
    }
    let mut result = Map::new();
    if let Some(policy) = &policy {
        check_policy(policy, checked.sgx.as_ref())?;
        result.insert("mr_enclave".into(), policy.mr_enclave.clone().into());
        result.insert("mr_signer".into(), policy.mr_signer.clone().into());
    }
    result.insert("nonce".into(), nonce.into());
    result.insert("result".into(), checked.status.as_u32().into());
    let sign = response_sign(state, req, &result).await?;
    result.insert("sign".into(), sign.into());
    Ok(Reply::success(Value::Object(result)))
}

/// Simulated evidence: only with `--allow-simulated-quotes`, and then "verified" (status OK)
/// with its simulated measurement. Its tag is checked when this node is simulated itself.
fn check_simulated(state: &AppState, quote: &[u8]) -> Result<Checked, ApiError> {
    let a = &state.attestation;
    if !a.allow_simulated {
        return Err(ApiError::bad_request(
            "the quote is simulated evidence (ehsm --tee sim), which proves nothing; this server \
             refuses it (start it with --allow-simulated-quotes to accept it, for tests only)",
        ));
    }
    // A simulated node checks the tag of its own simulated evidence (the same sealing secret):
    // it catches evidence mixed up between two simulated nodes.
    let parsed = match a.platform.as_sim() {
        Some(platform) => platform.check_evidence(quote),
        None => sim::parse_evidence(quote),
    }
    .map_err(|e| ApiError::bad_request(format!("The quote is invalid: {e}.")))?;
    Ok(Checked {
        status: Status::Ok,
        sgx: Some(SgxIdentity {
            mr_enclave: parsed.measurement,
            // A simulated enclave has no signer.
            mr_signer: [0; 32],
            isv_prod_id: 0,
            isv_svn: 0,
            report_data: parsed.report_data,
        }),
        report_data: parsed.report_data,
    })
}

/// An SGX or TDX quote, verified against the operator's collateral (or the PCCS's) at the
/// current time.
async fn check_hardware(state: &AppState, quote: &[u8]) -> Result<Checked, ApiError> {
    let now = SystemTime::now();
    let fetched;
    let collateral = match (&state.attestation.collateral, &state.attestation.pccs) {
        (Some(collateral), _) => collateral,
        (None, Some(pccs)) => {
            fetched = pccs.fetch(quote, now).await.map_err(|e| match e {
                // No platform in the quote: the client's quote is at fault.
                pccs::Error::Quote(_) => {
                    ApiError::bad_request(format!("The quote cannot be verified: {e}."))
                }
                // The PCCS is the operator's to fix; the log has the URL and status.
                _ => ApiError::internal(&e),
            })?;
            &fetched
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "this server cannot verify SGX or TDX quotes: it runs without collateral \
                 (ehsm serve --collateral FILE or --pccs-url URL)",
            ));
        }
    };
    // Signature and certificate checks take milliseconds of CPU.
    match super::heavy(state, || dcap::verify(quote, collateral, now)).await {
        Ok(verified) => {
            let sgx = match verified.identity() {
                Identity::Sgx(id) => Some(id.clone()),
                Identity::Tdx(_) => None,
            };
            Ok(Checked {
                status: verified.status(),
                sgx,
                report_data: *verified.identity().report_data(),
            })
        }
        // A revoked platform is a verdict, as upstream's QvE gives it: result 0xA005. Nothing
        // else is verified, so its measurements are the quote's own, for the policy only.
        Err(dcap::Error::Revoked { .. }) => Ok(Checked {
            status: Status::Revoked,
            sgx: evidence::sgx_report_body(quote).ok(),
            report_data: evidence::report_data(quote).unwrap_or([0; 64]),
        }),
        // The collateral parsed at start-up; a part of it that does not parse now is the
        // operator's to fix, not the client's.
        Err(e @ dcap::Error::CollateralMalformed { .. }) => Err(ApiError::internal(&e)),
        // Everything else is about the quote (or its age against the collateral): the message
        // says which check failed, and for expired collateral that it must be fetched again.
        Err(e) => Err(ApiError::bad_request(format!(
            "The quote cannot be verified: {e}."
        ))),
    }
}

/// The policy's measurements against the quote's, as lower-case hex.
fn check_policy(policy: &QuotePolicyRecord, sgx: Option<&SgxIdentity>) -> Result<(), ApiError> {
    let Some(id) = sgx else {
        return Err(ApiError::bad_request(
            "The quote does not match the policy: a quote policy names an SGX MRENCLAVE and \
             MRSIGNER, and this is a TDX quote.",
        ));
    };
    for (name, quoted, wanted) in [
        ("MRENCLAVE", &id.mr_enclave, &policy.mr_enclave),
        ("MRSIGNER", &id.mr_signer, &policy.mr_signer),
    ] {
        let quoted = hex::encode(quoted);
        if &quoted != wanted {
            return Err(ApiError::bad_request(format!(
                "The quote does not match the policy: its {name} is {quoted}, the policy's is \
                 {wanted}."
            )));
        }
    }
    Ok(())
}

/// VerifyQuote's `sign`: the §3.1 canonical string of the result, MACed by the core under the
/// app's API key. The key blob is the one the request's MAC was checked with (cached by then).
async fn response_sign(
    state: &AppState,
    req: &Authenticated<'_>,
    result: &Map<String, Value>,
) -> Result<String, ApiError> {
    let blob = match state.apps.get(req.appid) {
        Some(blob) => blob,
        None => {
            let app = state
                .store
                .get_app(req.appid)
                .await?
                .ok_or_else(|| ApiError::internal(&"the app vanished during its request"))?;
            std::sync::Arc::new(ehsm_core::KeyBlob::from_vec(app.apikey_blob))
        }
    };
    let canonical = ehsm_proto::canon::canonicalize(&Value::Object(result.clone()));
    state
        .core
        .response_mac(&req.mac, &blob, canonical.as_bytes())
        .map_err(|e| {
            // Upstream's answer when its HMAC failed.
            tracing::error!(error = %e, "VerifyQuote: the response MAC failed");
            ApiError::bad_request("Internal error")
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn policy_mismatch_names_the_measurement() {
        let id = SgxIdentity {
            mr_enclave: [0xab; 32],
            mr_signer: [0; 32],
            isv_prod_id: 0,
            isv_svn: 0,
            report_data: [0; 64],
        };
        let policy = |e: &str, s: &str| QuotePolicyRecord {
            appid: "a".into(),
            policy_id: "p".into(),
            mr_enclave: e.into(),
            mr_signer: s.into(),
            create_time: 0,
        };
        let zeros = "0".repeat(64);
        assert!(check_policy(&policy(&"ab".repeat(32), &zeros), Some(&id)).is_ok());
        let e = check_policy(&policy(&"cd".repeat(32), &zeros), Some(&id)).unwrap_err();
        assert!(e.code == 400 && e.message.contains("MRENCLAVE"), "{e:?}");
        let e = check_policy(&policy(&"ab".repeat(32), &"1".repeat(64)), Some(&id)).unwrap_err();
        assert!(e.code == 400 && e.message.contains("MRSIGNER"), "{e:?}");
        let e = check_policy(&policy(&"ab".repeat(32), &zeros), None).unwrap_err();
        assert!(e.code == 400 && e.message.contains("TDX"), "{e:?}");
    }
}
