//! Issuing an RA-TLS certificate: a fresh key pair and a self-signed certificate carrying
//! evidence bound to it.

use std::time::{Duration, SystemTime};

use aws_lc_rs::digest;
use rcgen::{CertificateParams, CustomExtension, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rcgen::{DistinguishedName, PublicKeyData as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{RatlsError, extension};
use crate::Platform;
use crate::dcap::unix_secs;

/// How long a certificate is valid after it is issued. Short, because the evidence in it is a
/// snapshot: a peer restarted with a new build must not keep presenting the old one's evidence.
pub const VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// How long before its issue a certificate is already valid, so that a peer whose clock is a
/// little behind still accepts it.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// The report data that binds evidence to a public key: SHA-256 of the DER
/// `SubjectPublicKeyInfo`, then 32 zero bytes. The zeros leave room for a later format (e.g. a
/// nonce) without changing this one.
pub fn report_data_for(spki_der: &[u8]) -> [u8; 64] {
    let mut report_data = [0u8; 64];
    report_data[..32].copy_from_slice(digest::digest(&digest::SHA256, spki_der).as_ref());
    report_data
}

/// Issues an RA-TLS certificate at time `now`: a fresh ECDSA P-256 key pair, evidence from
/// `platform` bound to its public key, and the self-signed certificate carrying the evidence.
///
/// The private key is returned as PKCS#8 for rustls and is never logged.
pub fn certificate(
    platform: &dyn Platform,
    now: SystemTime,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), RatlsError> {
    let issue = |e: rcgen::Error| RatlsError::Issue(e.to_string());
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(issue)?;
    let evidence = platform
        .evidence(&report_data_for(&key.subject_public_key_info()))
        .map_err(RatlsError::Platform)?;
    let (oid, content) = extension::encode(&evidence).map_err(RatlsError::Issue)?;

    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "ehsm RA-TLS");
    params.distinguished_name = name;
    params.not_before = offset_date_time(now.checked_sub(CLOCK_SKEW).unwrap_or(now))?;
    params.not_after = offset_date_time(now + VALIDITY)?;
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(oid, content));
    let cert = params.self_signed(&key).map_err(issue)?;

    let key_der = PrivatePkcs8KeyDer::from(key.serialize_der());
    Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(key_der)))
}

fn offset_date_time(t: SystemTime) -> Result<time::OffsetDateTime, RatlsError> {
    let secs = i64::try_from(unix_secs(t))
        .map_err(|_| RatlsError::Issue("the clock is out of range".to_owned()))?;
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| RatlsError::Issue(e.to_string()))
}
