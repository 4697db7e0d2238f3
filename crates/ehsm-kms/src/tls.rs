//! The server's TLS certificate: the operator's, or a self-signed one generated on first start
//! and kept in the data directory (key mode 0600), as upstream did (RSA-3072 there; ECDSA P-256
//! here, which every eHSM client accepts in its insecure mode, and which is faster).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where the generated certificate and key live inside the data directory.
pub(crate) const CERT_FILE: &str = "tls-cert.pem";
pub(crate) const KEY_FILE: &str = "tls-key.pem";

/// The certificate and key files to serve: the operator's if given, else the generated pair.
pub(crate) fn files(
    data_dir: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok((c.to_owned(), k.to_owned())),
        (None, None) => {
            let (cert_path, key_path) = (data_dir.join(CERT_FILE), data_dir.join(KEY_FILE));
            if !(key_path.exists() && cert_path.exists()) {
                generate(&cert_path, &key_path)?;
            }
            Ok((cert_path, key_path))
        }
        _ => bail!("--tls-cert and --tls-key go together"),
    }
}

/// The server's TLS configuration: TLS 1.2 and 1.3 with AWS-LC's default suites (AEAD only:
/// AES-GCM and ChaCha20-Poly1305), no client certificates, ALPN `h2` then `http/1.1`. With it,
/// the DER `SubjectPublicKeyInfo` of the leaf certificate it serves (the chain's first), which
/// GetServerEvidence binds: taken from the very chain rustls serves, so the two cannot differ.
pub(crate) fn server_config(
    cert: &Path,
    key: &Path,
) -> anyhow::Result<(Arc<ServerConfig>, Arc<[u8]>)> {
    let loading = || {
        format!(
            "loading the TLS certificate {} and key {}",
            cert.display(),
            key.display()
        )
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(loading)?;
    let leaf = chain
        .first()
        .context("the file holds no certificate")
        .with_context(loading)?;
    let spki = ehsm_tee::server_evidence::certificate_spki(leaf).with_context(loading)?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(loading)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .with_context(loading)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), spki.into()))
}

fn generate(cert_path: &Path, key_path: &Path) -> anyhow::Result<()> {
    let key = rcgen::KeyPair::generate().context("generating the TLS key")?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .context("TLS certificate parameters")?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ehsm");
    let cert = params
        .self_signed(&key)
        .context("self-signing the TLS certificate")?;
    // The certificate is public; the key is published once, owner-only. If a half-written pair
    // was left by a crash, both are replaced.
    let _ = std::fs::remove_file(key_path);
    ehsm_tee::files::publish_new(key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(cert_path, cert.pem())
        .with_context(|| format!("writing {}", cert_path.display()))?;
    Ok(())
}
