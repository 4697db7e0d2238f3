//! rustls verifiers that accept a peer only through [`Verifier`], and TLS configurations that
//! use them.

use core::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    ServerConfig, SignatureScheme,
};

use super::{RatlsError, Verifier, certificate};
use crate::Platform;

/// A rustls client and server certificate verifier for RA-TLS peers: the certificate must pass
/// [`Verifier::verify_certificate`], and the handshake signatures are checked with the
/// provider's algorithms against the certificate's (bound) key.
pub struct TlsVerifier {
    verifier: Arc<Verifier>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for TlsVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsVerifier")
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl TlsVerifier {
    /// A verifier checking handshake signatures with `provider`'s algorithms.
    pub fn new(verifier: Arc<Verifier>, provider: &CryptoProvider) -> Self {
        Self {
            verifier,
            algorithms: provider.signature_verification_algorithms,
        }
    }

    /// The certificate verification, as rustls wants it: the refusal's message is kept so that
    /// the handshake error says why.
    fn verify(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        self.verifier
            .verify_certificate(end_entity)
            .map(|_| ())
            .map_err(|e| {
                rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                    Refused(e),
                ))))
            })
    }
}

/// A refusal inside a rustls error. rustls prints `CertificateError::Other` with `Debug`, so
/// this `Debug` is the refusal's message: the handshake error then says why in words.
struct Refused(RatlsError);

impl fmt::Debug for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Refused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// The RA-TLS refusal behind a failed handshake on this side, if that is why it failed (for
/// logs and for tests; the peer only receives a `bad_certificate` alert).
pub fn refusal(error: &rustls::Error) -> Option<&RatlsError> {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            other.0.downcast_ref::<Refused>().map(|r| &r.0)
        }
        _ => None,
    }
}

impl ServerCertVerifier for TlsVerifier {
    /// The server name is not checked: an RA-TLS server is identified by its measurement.
    /// Intermediates and OCSP are ignored: the certificate is self-signed.
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verify(end_entity)
            .map(|()| ServerCertVerified::assertion())
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

impl ClientCertVerifier for TlsVerifier {
    /// Mandatory: a client without an RA-TLS certificate fails the handshake.
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// No CA names: the client's certificate is self-signed.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verify(end_entity)
            .map(|()| ClientCertVerified::assertion())
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

/// A TLS 1.3 server configuration with a fresh RA-TLS certificate from `platform` (issued at
/// the verifier's time), requiring every client to present an RA-TLS certificate that
/// `verifier` accepts.
///
/// The certificate is valid for [`super::VALIDITY`]: build a new configuration before then.
pub fn server_config(
    platform: &dyn Platform,
    verifier: Arc<Verifier>,
) -> Result<ServerConfig, RatlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let (cert, key) = certificate(platform, verifier.now())?;
    let tls = Arc::new(TlsVerifier::new(verifier, &provider));
    ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(RatlsError::Tls)?
        .with_client_cert_verifier(tls)
        .with_single_cert(vec![cert], key)
        .map_err(RatlsError::Tls)
}

/// A TLS 1.3 client configuration with a fresh RA-TLS certificate from `platform`, accepting
/// only a server whose RA-TLS certificate `verifier` accepts. The server name given when
/// connecting is not checked.
pub fn client_config(
    platform: &dyn Platform,
    verifier: Arc<Verifier>,
) -> Result<ClientConfig, RatlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let (cert, key) = certificate(platform, verifier.now())?;
    let tls = Arc::new(TlsVerifier::new(verifier, &provider));
    ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(RatlsError::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(tls)
        .with_client_auth_cert(vec![cert], key)
        .map_err(RatlsError::Tls)
}
