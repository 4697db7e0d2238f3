//! Attesting the server before trusting it: GetServerEvidence, checked against a policy.
//!
//! The client sends a fresh challenge; the server answers with its platform's evidence over
//! `ehsm_tee::server_evidence::server_report_data(challenge, SPKI of its TLS certificate)`.
//! The client recomputes that report data from **its own** challenge and the certificate **its
//! own connection** received, and verifies the evidence against its policy. Each check gives the
//! client something the previous one did not:
//!
//! 1. *The evidence verifies* (a DCAP quote against Intel's collateral, or simulated evidence
//!    where the policy allows it) *and the policy accepts it*: some TEE runs the measured code.
//! 2. *The binding holds* (the report data is this challenge and this connection's key): that
//!    code made the evidence just now, for this client, and holds the private key that ended
//!    this TLS session; what the client sends on the session reaches that code only.
//! 3. *Pinning* ([`ClientBuilder::pin_server_key`](crate::ClientBuilder::pin_server_key)) the
//!    key's hash carries the same trust over to later sessions.
//!
//! [`check_server_evidence`] makes checks 1 and 2 without the network, so that they can be
//! tried on captured answers. Its refusals are [`AttestError`]s that name the check that failed.

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ehsm_proto::Action;
use ehsm_tee::ratls::{PeerIdentity, RatlsError, Verifier};
use ehsm_tee::server_evidence::{Challenge, certificate_spki, server_report_data};
use ehsm_tee::{Evidence, PlatformKind, evidence, sim};
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use reqwest::tls::TlsInfo;
use serde_json::json;

use crate::client::{Client, b64, decode_envelope};
use crate::error::{Error, Result};

/// The size of the challenge the SDK sends: 256 fresh random bits.
const CHALLENGE_LEN: usize = 32;

/// The message of an ehsm server started with `--http` (WIRE14): it has no TLS key to bind.
const PLAIN_HTTP_SERVER: &str = "Server evidence needs TLS: this server serves plain HTTP, so \
                                 there is no TLS key for the evidence to bind.";

/// Why a server's attestation was refused, by the check that failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum AttestError {
    /// The URL is `http://`: without TLS there is no server key for evidence to bind, so
    /// evidence would prove nothing about who answers.
    PlainHttp,
    /// The connection reported no server certificate, or one that does not parse.
    PeerCertificate(String),
    /// The server answered without evidence: it does not offer GetServerEvidence (eHSM-KMS,
    /// an older ehsm), serves plain HTTP behind a TLS proxy, or sent an answer without a
    /// usable `platform` and `evidence`.
    NoEvidence(String),
    /// Binding: the evidence binds this connection's key but another challenge. It was made for
    /// an earlier request and replayed.
    Replayed,
    /// Binding: the evidence binds another TLS key than the one this connection received. The
    /// session ends somewhere else than the attested server (a TLS-terminating proxy, a
    /// machine in the middle), or the evidence was copied from another server.
    AnotherKey {
        /// SHA-256 of the key the evidence binds (unverified: read from the evidence).
        bound: [u8; 32],
        /// SHA-256 of the key this connection's server presented.
        connection: [u8; 32],
    },
    /// The evidence itself, or the policy, refused it; the error says which (quote signature,
    /// collateral, `allow_simulated`, a measurement not in the policy, ...).
    Evidence(RatlsError),
    /// The system's random number generator failed, so there is no fresh challenge.
    Random,
}

impl fmt::Display for AttestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttestError::PlainHttp => f.write_str(
                "attestation needs an https:// URL: over plain HTTP there is no TLS key for the \
                 server's evidence to bind, so it would not show who answers",
            ),
            AttestError::PeerCertificate(why) => {
                write!(f, "the server's TLS certificate cannot be read: {why}")
            }
            AttestError::NoEvidence(why) => write!(f, "the server gave no evidence: {why}"),
            AttestError::Replayed => f.write_str(
                "binding check failed: the evidence was made for another challenge than this \
                 request's fresh one (a replayed answer)",
            ),
            AttestError::AnotherKey { bound, connection } => write!(
                f,
                "binding check failed: the evidence binds TLS key {}, but this connection's \
                 server presents key {}: the TLS session does not end in the attested server \
                 (a proxy or a machine in the middle), or the evidence was copied from another \
                 server",
                hex::encode(bound),
                hex::encode(connection)
            ),
            AttestError::Evidence(e) => {
                let check = match e {
                    RatlsError::SimulatedNotAllowed | RatlsError::PolicyRefused(_) => "policy",
                    RatlsError::Collateral(_) | RatlsError::CollateralOutOfDate(_) => "collateral",
                    _ => "evidence",
                };
                write!(f, "{check} check failed: {e}")
            }
            AttestError::Random => f.write_str(
                "the system's random number generator failed, so no fresh challenge could be made",
            ),
        }
    }
}

impl std::error::Error for AttestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AttestError::Evidence(e) => Some(e),
            _ => None,
        }
    }
}

impl From<AttestError> for Error {
    fn from(e: AttestError) -> Self {
        Error::Attestation(e)
    }
}

/// A server's answer to GetServerEvidence, with what is needed to check it: the challenge it
/// answers and the certificate of the connection that carried it. Made by
/// [`Client::server_evidence`].
#[derive(Clone, Debug)]
pub struct ServerEvidence {
    challenge: Challenge,
    answer: Vec<u8>,
    peer_certificate: Vec<u8>,
}

impl ServerEvidence {
    /// The challenge sent.
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }

    /// The answer's body, as received.
    pub fn answer(&self) -> &[u8] {
        &self.answer
    }

    /// The DER leaf certificate the connection received.
    pub fn peer_certificate(&self) -> &[u8] {
        &self.peer_certificate
    }

    /// The evidence in the answer once the report data it states binds this challenge and this
    /// connection's key, but before it is verified: for fetching a quote's collateral before
    /// [`ServerEvidence::check`] (e.g. `ehsm_tee::pccs::PccsCollateral::fetch`), so that a
    /// replayed or relayed answer is refused as such without asking a PCCS first.
    ///
    /// # Errors
    ///
    /// As [`check_server_evidence`] for an answer without evidence or not bound.
    pub fn evidence(&self) -> Result<Evidence> {
        bound_evidence(&self.answer, &self.challenge, &self.peer_certificate)
            .map(|bound| bound.evidence)
    }

    /// [`check_server_evidence`] of this answer.
    ///
    /// # Errors
    ///
    /// As [`check_server_evidence`].
    pub fn check(&self, verifier: &Verifier) -> Result<PeerIdentity> {
        check_server_evidence(
            &self.answer,
            &self.challenge,
            &self.peer_certificate,
            verifier,
        )
    }
}

impl Client {
    /// Attests the server: asks for evidence over a fresh challenge and checks it against
    /// `verifier`'s policy and the key of this very connection ([`check_server_evidence`]).
    /// Returns who the server is: what its evidence measured, and the SHA-256 of its TLS key,
    /// to pin with [`ClientBuilder::pin_server_key`](crate::ClientBuilder::pin_server_key) for
    /// every later connection. No credentials are needed; none are sent.
    ///
    /// A verifier whose collateral comes from a PCCS may not have a quote's collateral yet: use
    /// [`Client::server_evidence`], fetch it for [`ServerEvidence::evidence`], then
    /// [`ServerEvidence::check`].
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # async fn demo(policy: ehsm_tee::policy::Policy) -> Result<(), ehsm_client::Error> {
    /// use ehsm_client::Client;
    /// use ehsm_tee::ratls::{FileCollateral, Verifier};
    ///
    /// let verifier = Verifier::new(Arc::new(policy), Arc::new(FileCollateral::file("collateral.json")));
    /// // The certificate is not trusted yet: the evidence decides.
    /// let probe = Client::builder("https://kms.example:9000").danger_accept_invalid_certs(true).build()?;
    /// let server = probe.attest(&verifier).await?;
    /// let client = Client::builder("https://kms.example:9000").pin_server_key(server.key_sha256).build()?;
    /// let credentials = client.enroll().await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Attestation`] when a check fails (its [`AttestError`] says which), including
    /// for an `http://` URL; otherwise as every call.
    pub async fn attest(&self, verifier: &Verifier) -> Result<PeerIdentity> {
        self.server_evidence().await?.check(verifier)
    }

    /// Asks the server for evidence over a fresh random challenge (`POST ?Action=
    /// GetServerEvidence`, an ehsm extension without authentication) and keeps the answer with
    /// the certificate of the connection that carried it. Nothing is verified yet.
    ///
    /// # Errors
    ///
    /// [`AttestError::PlainHttp`] for an `http://` URL; [`AttestError::PeerCertificate`] if the
    /// connection reports no certificate; otherwise as every call (an answer that is not an
    /// envelope is an [`Error::Decode`]).
    pub async fn server_evidence(&self) -> Result<ServerEvidence> {
        if self.endpoint.scheme() != "https" {
            return Err(AttestError::PlainHttp.into());
        }
        let challenge = fresh_challenge()?;
        let body = json!({ "challenge": b64(challenge.as_bytes()) }).to_string();
        let response = self
            .http
            .post(self.action_url(Action::GetServerEvidence))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        let peer_certificate = response
            .extensions()
            .get::<TlsInfo>()
            .and_then(TlsInfo::peer_certificate)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                AttestError::PeerCertificate("the connection reported none".to_owned())
            })?;
        let status = response.status();
        let answer = response.bytes().await?.to_vec();
        if status != StatusCode::OK {
            // What every call says of a non-200 status.
            decode_envelope(Action::GetServerEvidence, status, &answer)?;
        }
        Ok(ServerEvidence {
            challenge,
            answer,
            peer_certificate,
        })
    }
}

fn fresh_challenge() -> Result<Challenge, AttestError> {
    let mut bytes = [0u8; CHALLENGE_LEN];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| AttestError::Random)?;
    // 32 is within CHALLENGE_MIN..=CHALLENGE_MAX, so this never fails.
    Challenge::new(&bytes).map_err(|_| AttestError::Random)
}

/// Checks a GetServerEvidence answer (its HTTP body) without the network: the answer carries
/// evidence, the evidence binds `challenge` and the key of `peer_certificate` (the DER leaf
/// certificate of the connection that carried the answer), the evidence verifies and
/// `verifier`'s policy accepts it. Returns the server's verified identity and key hash.
///
/// The binding is checked first, on the report data as the evidence states it, so that a
/// replayed or relayed answer is reported as such ([`AttestError::Replayed`],
/// [`AttestError::AnotherKey`]); the evidence's verification then checks it again, on verified
/// data.
///
/// # Errors
///
/// [`Error::Attestation`] naming the failed check; [`Error::Api`] for a refusal that is not
/// about evidence (a rate limit, a platform failure), [`Error::Decode`] for a body that is not
/// an envelope.
pub fn check_server_evidence(
    answer: &[u8],
    challenge: &Challenge,
    peer_certificate: &[u8],
    verifier: &Verifier,
) -> Result<PeerIdentity> {
    let bound = bound_evidence(answer, challenge, peer_certificate)?;
    let evidence = verifier
        .verify_evidence(&bound.evidence, &bound.expected)
        .map_err(AttestError::Evidence)?;
    Ok(PeerIdentity {
        key_sha256: bound.key_sha256,
        evidence,
    })
}

/// Evidence whose stated report data is the binding expected, not yet verified.
struct Bound {
    evidence: Evidence,
    expected: [u8; 64],
    key_sha256: [u8; 32],
}

/// The answer's evidence, once the report data it states is `server_report_data(challenge,
/// key of peer_certificate)`; evidence whose report data cannot be read passes on to the
/// verification, which says how it is malformed.
fn bound_evidence(answer: &[u8], challenge: &Challenge, peer_certificate: &[u8]) -> Result<Bound> {
    let evidence = answered_evidence(answer)?;
    let spki = certificate_spki(peer_certificate)
        .map_err(|e| AttestError::PeerCertificate(e.to_string()))?;
    let key_sha256 = crate::pin::spki_sha256(&spki);
    let expected = server_report_data(challenge, &spki);
    if let Some(stated) = stated_report_data(&evidence)
        && stated != expected
    {
        // The second half is the hash of the key alone (see ehsm_tee::server_evidence).
        let mut bound = [0u8; 32];
        bound.copy_from_slice(&stated[32..]);
        return Err(if bound == key_sha256 {
            AttestError::Replayed
        } else {
            AttestError::AnotherKey {
                bound,
                connection: key_sha256,
            }
        }
        .into());
    }
    Ok(Bound {
        evidence,
        expected,
        key_sha256,
    })
}

/// The evidence of a GetServerEvidence answer, or why there is none.
fn answered_evidence(answer: &[u8]) -> Result<Evidence> {
    let reply = match decode_envelope(Action::GetServerEvidence, StatusCode::OK, answer) {
        Ok(reply) => reply,
        Err(Error::Api { code: 404, message }) => {
            return Err(AttestError::NoEvidence(format!(
                "it does not offer GetServerEvidence (answered 404 {message:?}): an eHSM-KMS \
                 server or an ehsm older than server evidence cannot be attested"
            ))
            .into());
        }
        Err(Error::Api { message, .. }) if message == PLAIN_HTTP_SERVER => {
            return Err(AttestError::NoEvidence(format!(
                "{message} (the TLS session ends in something in front of it)"
            ))
            .into());
        }
        Err(other) => return Err(other),
    };
    let missing = |what: &str| AttestError::NoEvidence(format!("the answer has {what}"));
    let kind = match reply.result().get("platform").and_then(|p| p.as_str()) {
        Some("sim") => PlatformKind::Sim,
        Some("sgx") => PlatformKind::Sgx,
        Some("tdx") => PlatformKind::Tdx,
        Some(other) => return Err(missing(&format!("an unknown platform {other:?}")).into()),
        None => return Err(missing("no platform").into()),
    };
    let bytes = match reply.result().get("evidence").and_then(|e| e.as_str()) {
        Some(text) => STANDARD
            .decode(text)
            .map_err(|_| missing("evidence that is not base64"))?,
        None => return Err(missing("no evidence").into()),
    };
    Ok(Evidence { kind, bytes })
}

/// The report data the evidence states, read without verifying it; `None` if it does not parse
/// as its kind (the verification then says how it is malformed).
fn stated_report_data(evidence: &Evidence) -> Option<[u8; 64]> {
    match evidence.kind {
        PlatformKind::Sim => sim::parse_evidence(&evidence.bytes)
            .ok()
            .map(|s| s.report_data),
        PlatformKind::Sgx | PlatformKind::Tdx => evidence::report_data(&evidence.bytes).ok(),
    }
}
