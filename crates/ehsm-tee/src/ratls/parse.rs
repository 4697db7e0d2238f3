//! Reading an RA-TLS certificate: parse, check its self-signature and validity, and take out
//! the public key and the evidence. Nothing here verifies the evidence itself.

use aws_lc_rs::signature::{self, ECDSA_P256_SHA256_ASN1, VerificationAlgorithm};
use x509_cert::Certificate;
use x509_cert::der::{Decode as _, Encode as _};
use x509_cert::spki::ObjectIdentifier;

use super::RatlsError;
use super::extension::{self, Carried, DICE_TAGGED_EVIDENCE_OID, SIM_EVIDENCE_OID};

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// The parts of a self-signed RA-TLS certificate a verifier needs.
pub(super) struct Parsed {
    /// The DER `SubjectPublicKeyInfo`, which the evidence must bind.
    pub(super) spki_der: Vec<u8>,
    /// `notBefore` and `notAfter`, Unix seconds.
    pub(super) not_before: u64,
    pub(super) not_after: u64,
    /// The evidence, unverified.
    pub(super) evidence: Carried,
}

/// Parses `der` and checks that it is signed by its own key. Only ECDSA with P-256/SHA-256,
/// what [`super::certificate`] makes, is accepted: every peer is an ehsm process.
pub(super) fn parse(der: &[u8]) -> Result<Parsed, RatlsError> {
    let malformed = |reason: String| RatlsError::MalformedCertificate(reason);
    let cert = Certificate::from_der(der).map_err(|e| malformed(e.to_string()))?;
    let tbs = cert.tbs_certificate();
    let spki = tbs.subject_public_key_info();
    let spki_der = spki.to_der().map_err(|e| malformed(e.to_string()))?;

    if tbs.issuer() != tbs.subject() {
        return Err(malformed(
            "not self-signed (its issuer is not its subject)".to_owned(),
        ));
    }
    if tbs.signature() != cert.signature_algorithm() {
        return Err(malformed(
            "the signed and the outer signature algorithms differ".to_owned(),
        ));
    }
    let curve = match &spki.algorithm.parameters {
        Some(p) if spki.algorithm.oid == EC_PUBLIC_KEY => p.decode_as::<ObjectIdentifier>().ok(),
        _ => None,
    };
    let algorithm: &dyn VerificationAlgorithm = match (cert.signature_algorithm().oid, curve) {
        (ECDSA_WITH_SHA256, Some(SECP256R1)) => &ECDSA_P256_SHA256_ASN1,
        _ => {
            return Err(malformed(
                "its key and signature are not ECDSA P-256 with SHA-256".to_owned(),
            ));
        }
    };
    // Re-encoding the parsed TBS gives the signed bytes: the DER decoder accepted only
    // canonical DER. Should it ever differ, the signature fails: a refusal, never an acceptance.
    let signed = tbs.to_der().map_err(|e| malformed(e.to_string()))?;
    let (Some(point), Some(sig)) = (
        spki.subject_public_key.as_bytes(),
        cert.signature().as_bytes(),
    ) else {
        return Err(malformed("a bit string has unused bits".to_owned()));
    };
    signature::UnparsedPublicKey::new(algorithm, point)
        .verify(&signed, sig)
        .map_err(|_| RatlsError::BadSignature)?;

    let validity = tbs.validity();
    Ok(Parsed {
        spki_der,
        not_before: validity.not_before.to_unix_duration().as_secs(),
        not_after: validity.not_after.to_unix_duration().as_secs(),
        evidence: evidence(&cert)?,
    })
}

/// The one evidence extension of the certificate. Two (of either kind) are refused, so that a
/// verifier never has to choose which to believe.
fn evidence(cert: &Certificate) -> Result<Carried, RatlsError> {
    let mut found = None;
    for ext in cert.tbs_certificate().extensions().into_iter().flatten() {
        let content = ext.extn_value.as_bytes();
        let carried = if oid_is(&ext.extn_id, DICE_TAGGED_EVIDENCE_OID) {
            Carried::Quote(
                extension::decode_tagged_quote(content).map_err(RatlsError::MalformedEvidence)?,
            )
        } else if oid_is(&ext.extn_id, SIM_EVIDENCE_OID) {
            Carried::Simulated(content.to_vec())
        } else {
            continue;
        };
        if found.replace(carried).is_some() {
            return Err(RatlsError::MalformedEvidence(
                "the certificate carries more than one evidence extension".to_owned(),
            ));
        }
    }
    found.ok_or(RatlsError::NoEvidence)
}

fn oid_is(oid: &ObjectIdentifier, arcs: &[u64]) -> bool {
    oid.arcs().map(u64::from).eq(arcs.iter().copied())
}
