//! RA-TLS: TLS whose peers prove, with attestation evidence in their certificate, which code they
//! run. Two ehsm processes (dkeyserver, dkeycache, KMS nodes) accept each other only if the
//! peer's evidence verifies and satisfies a [`Policy`](crate::policy::Policy).
//!
//! **The certificate** ([`certificate`]): a fresh ECDSA P-256 key pair per certificate, a
//! self-signed X.509 certificate (CN "ehsm RA-TLS", valid from one hour before issue to 24 hours
//! after) with one non-critical extension carrying the platform's evidence (see [`extension`]
//! for the formats and OIDs). The evidence binds the key through its 64 bytes of report data:
//!
//! ```text
//! report_data = SHA-256(DER of the certificate's SubjectPublicKeyInfo) ‖ 32 zero bytes
//! ```
//!
//! **The verification** ([`Verifier::verify_certificate`]): the certificate parses, is signed by
//! its own key and is inside its validity window; it carries exactly one evidence extension; the
//! evidence's report data is the binding above; the evidence verifies (a DCAP quote against the
//! collateral from a [`CollateralSource`]; simulated evidence only parses) and the policy accepts
//! the identity it measures. The TLS handshake then proves that the peer holds the certificate's
//! private key, so the peer is the attested code.
//!
//! The same checks, without the certificate, verify evidence a peer sends on its own
//! ([`Verifier::verify_evidence`]), e.g. a KMS's [server evidence](crate::server_evidence).
//!
//! **TLS** ([`server_config`], [`client_config`]): TLS 1.3 only, mutual authentication with a
//! mandatory client certificate, the aws-lc-rs provider. No CA and no server name is checked:
//! the peer's identity is its measurement, which [`Verifier::verify_peer`] returns after the
//! handshake (it verifies the certificate again, so callers can log who got keys).

mod cert;
mod collateral;
mod error;
pub mod extension;
mod parse;
mod tls;
mod verify;

pub use cert::{VALIDITY, certificate, report_data_for};
pub use collateral::{
    CollateralSource, FileCollateral, NoCollateral, configured as configured_collateral,
};
pub use error::RatlsError;
pub use tls::{TlsVerifier, client_config, refusal, server_config};
pub use verify::{PeerEvidence, PeerIdentity, Verifier};
