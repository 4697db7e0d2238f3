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

use std::time::Duration;

use ehsm_proto::Action;
use ehsm_tee::server_evidence::{Challenge, server_report_data};
use serde_json::{Map, Value, json};

use crate::params;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::state::AppState;

/// How long a request waits for its turn to make evidence (a quote takes milliseconds).
const EVIDENCE_WAIT: Duration = Duration::from_secs(2);

/// The answer when evidence requests arrive faster than the platform makes evidence: the rate
/// limit's message, which says the same thing.
const BUSY: &str = "Too many evidence requests; try again in a moment.";

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
    // One at a time, whoever asks: unauthenticated requests from many addresses (each within
    // its own rate) must not take the heavy permits that signed requests need. A request that
    // cannot have its turn soon is refused rather than queued without bound.
    let _turn = tokio::time::timeout(EVIDENCE_WAIT, state.evidence_turn.acquire())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| ApiError::bad_request(BUSY))?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::server::{Config, open};

    fn body(challenge: &[u8]) -> Map<String, Value> {
        let v = json!({ "challenge": params::b64(challenge) });
        v.as_object().unwrap().clone()
    }

    /// While one request makes evidence, the next waits its turn and is refused after
    /// `EVIDENCE_WAIT` (two seconds of the test's time; nothing is timed).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_evidence_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let state = open(&Config::for_tests(dir.path(), false))
            .await
            .unwrap()
            .state;
        let held = state.evidence_turn.acquire().await.unwrap();
        // (Reply has no Debug, by design: results may hold plaintext.)
        let Err(e) = server_evidence(&state, &body(&[1; 32])).await else {
            panic!("served while another request held the turn");
        };
        assert_eq!((e.code, e.message.as_str()), (400, BUSY));
        drop(held);
        assert!(
            state.evidence_turn.try_acquire().is_ok(),
            "the permit is back"
        );
        // Its turn free again, the same request is served.
        assert!(server_evidence(&state, &body(&[1; 32])).await.is_ok());
    }
}
