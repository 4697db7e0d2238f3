//! Pinning the attested server key: a TLS certificate verifier that accepts exactly one
//! `SubjectPublicKeyInfo`, by its SHA-256.
//!
//! After [`Client::attest`](crate::Client::attest) the client knows that the key whose hash it
//! pins lives in the attested TEE. For later connections, that pin is a stronger statement than
//! any CA could make, so it **replaces** the usual checks (chain to a root, server name,
//! validity dates) instead of adding to them: ehsm's generated certificate is self-signed and
//! made for `localhost`, and a CA-signed certificate is no better evidence of where its key is.
//! What it never replaces is the proof that the server holds that key: the handshake signatures
//! are verified with the provider's algorithms, as any verifier does.
//!
//! A refusal carries [`KeyChanged`] inside the rustls error, which [`key_changed`] finds again in
//! the reqwest error, so that the SDK reports it as [`Error::ServerKeyChanged`] rather than as a
//! TLS failure among others: the fix is to attest again, not to fix a certificate.

use core::fmt;
use std::sync::Arc;

use aws_lc_rs::digest;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, SignatureScheme};

use crate::error::{Error, Result};

/// SHA-256 of the `SubjectPublicKeyInfo` of a DER certificate: what
/// [`ClientBuilder::pin_server_key`](crate::ClientBuilder::pin_server_key) pins and what
/// server evidence binds (through `ehsm_tee::server_evidence::certificate_spki`, the same parse
/// on both sides, so the two hashes cannot disagree on how a key is encoded).
pub(crate) fn key_sha256(cert_der: &[u8]) -> Result<[u8; 32], ehsm_tee::ratls::RatlsError> {
    ehsm_tee::server_evidence::certificate_spki(cert_der).map(|spki| spki_sha256(&spki))
}

/// SHA-256 of a DER `SubjectPublicKeyInfo`.
pub(crate) fn spki_sha256(spki: &[u8]) -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest::digest(&digest::SHA256, spki).as_ref());
    hash
}

/// The TLS configuration of a pinned client: TLS 1.2 and 1.3 with aws-lc-rs (as reqwest's own
/// configuration), the pin as the only certificate check, and reqwest's ALPN offer.
pub(crate) fn tls_config(pinned: [u8; 32]) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(PinnedKey {
        pinned,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidConfig(format!("TLS configuration for the pinned key: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // A preconfigured TLS backend keeps its own ALPN list; this is what reqwest offers with
    // HTTP/2 enabled, so a pinned client speaks what an unpinned one does.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts only a server certificate whose key hashes to `pinned`.
struct PinnedKey {
    pinned: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for PinnedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedKey")
            .field("pinned", &hex::encode(self.pinned))
            .finish_non_exhaustive()
    }
}

/// Why a pinned connection was refused: the server presented another key. It travels inside
/// the rustls error (as `CertificateError::Other`) up to [`key_changed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyChanged {
    pub(crate) pinned: [u8; 32],
    pub(crate) presented: [u8; 32],
}

impl fmt::Display for KeyChanged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server presents TLS key {}, not the pinned key {}",
            hex::encode(self.presented),
            hex::encode(self.pinned)
        )
    }
}

impl std::error::Error for KeyChanged {}

impl ServerCertVerifier for PinnedKey {
    /// The pin is the whole check (see the module documentation): no chain, name or dates.
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = key_sha256(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if presented == self.pinned {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(KeyChanged {
                    pinned: self.pinned,
                    presented,
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The [`KeyChanged`] behind a failed request, if that is why it failed. tokio-rustls reports
/// a failed handshake as an `io::Error` wrapping the rustls error, which hyper wraps in another
/// `io::Error`; and an `io::Error`'s `source()` skips the error it wraps: hence the `get_ref`
/// unwrapping besides the chain itself.
pub(crate) fn key_changed(error: &reqwest::Error) -> Option<KeyChanged> {
    std::iter::successors(Some(error as &Dyn), |e| e.source())
        .flat_map(|e| std::iter::successors(Some(e), unwrap_io))
        .filter_map(|e| e.downcast_ref::<rustls::Error>())
        .find_map(|tls| match tls {
            rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
                other.0.downcast_ref::<KeyChanged>().copied()
            }
            _ => None,
        })
}

type Dyn = dyn std::error::Error + 'static;

/// The error an `io::Error` wraps, if it wraps one.
fn unwrap_io<'a>(e: &&'a Dyn) -> Option<&'a Dyn> {
    let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    Some(inner as &Dyn)
}
