//! GetServerEvidence (ehsm extension, unauthenticated): the platform's evidence over a client's
//! challenge and the key of the TLS certificate this server serves, so that a client can check,
//! before it enrolls or sends anything, that its TLS session ends in the attested TEE
//! (`ehsm_tee::server_evidence` has the binding, and docs/attestation.md the client's checks).
//!
//! It needs no credentials: a client asks before it has any. What it costs (a quote from the
//! quoting enclave on SGX) is bounded per client address by the Enroll rate limit's machinery
//! (`EnrollPolicy::admit`), and what it gives away is nothing a client could misuse: the
//! report data is labelled and ends in a key's hash, so it can pass neither for an RA-TLS
//! certificate's binding nor for a GenerateQuote of some app.

use ehsm_proto::Action;
use ehsm_tee::server_evidence::{Challenge, server_report_data};
use serde_json::{Map, Value, json};

use crate::params;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::state::AppState;

/// POST ?Action=GetServerEvidence with `body` (the request's JSON object): `{platform,
/// evidence}`.
pub(crate) async fn server_evidence(state: &AppState, body: &Map<String, Value>) -> ApiResult {
    // Before the fields are looked at: whatever they are, a plain-HTTP server cannot answer.
    let spki = state.served_spki.as_deref().ok_or_else(|| {
        ApiError::bad_request(
            "Server evidence needs TLS: this server serves plain HTTP, so there is no TLS key \
             for the evidence to bind.",
        )
    })?;
    crate::validate::validate(Action::GetServerEvidence, body).map_err(ApiError::bad_request)?;
    // Validation has checked the length; this only converts (and would refuse, not panic, if
    // the two rules ever disagreed).
    let challenge = Challenge::new(&params::bytes(body, "challenge")?)
        .map_err(|e| ApiError::bad_request(format!("Parameter invalid, {e}.")))?;
    let report_data = server_report_data(&challenge, spki);
    // On SGX this is file I/O with Gramine and a call to the quoting enclave: off the runtime,
    // as GenerateQuote's.
    let evidence =
        crate::actions::heavy(state, || state.attestation.platform.evidence(&report_data))
            .await
            .map_err(|e| ApiError::internal(&e))?;
    Ok(Reply::success(json!({
        "platform": evidence.kind.to_string(),
        "evidence": params::b64(&evidence.bytes),
    })))
}
