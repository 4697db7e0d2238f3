//! The rustls settings of bench's connections: the same trust as the SDK client that
//! `ConnArgs` builds (reqwest over rustls), so that bench talks to exactly the servers the other
//! commands talk to.

use std::sync::Arc;

use anyhow::Context as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::cli::conn::Trust;

/// The client configuration for `trust`, as `ClientBuilder` sets up reqwest:
/// - `--insecure`: any certificate (`danger_accept_invalid_certs`);
/// - `--ca-cert`: only the certificates of that PEM, with the server's name checked
///   (`ca_certificate`);
/// - otherwise the system's roots, through the same platform verifier reqwest uses.
pub(super) fn client_config(trust: &Trust, ca_pem: Option<&[u8]>) -> anyhow::Result<ClientConfig> {
    // reqwest's provider when none is installed process-wide, as none is in `ehsm bench`.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let mut config = match (trust, ca_pem) {
        (Trust::Insecure, _) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
        (Trust::CaCert(_), Some(pem)) => builder.with_root_certificates(roots(pem)?),
        (Trust::CaCert(_) | Trust::System, _) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(rustls_platform_verifier::Verifier::new(
                provider,
            )?)),
    }
    .with_no_client_auth();
    // Workers measure one request at a time per connection, which is HTTP/1.1; over HTTP/2 the
    // server would be free to answer differently.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The certificates of a PEM text as trust anchors.
fn roots(pem: &[u8]) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        roots
            .add(cert.context("the CA certificate is not valid PEM")?)
            .context("the CA certificate is not a valid certificate")?;
    }
    Ok(roots)
}

/// Accepts any server certificate (`--insecure`). The handshake signatures are still checked
/// against the certificate presented, which costs nothing and keeps the handshake itself sound.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
