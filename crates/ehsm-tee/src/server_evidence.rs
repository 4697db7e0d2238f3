//! Server evidence: what lets a client check, before it enrolls, that the KMS's TLS session
//! ends inside the attested TEE.
//!
//! The client sends a fresh [`Challenge`]; the server answers with its platform's evidence over
//! [`server_report_data`] of that challenge and of the `SubjectPublicKeyInfo` of the TLS
//! certificate it serves. The client verifies the evidence against its policy
//! ([`Verifier::verify_evidence`](crate::ratls::Verifier::verify_evidence)) with the report data
//! it computes itself from its challenge and the certificate of **its own** connection: a proxy
//! or a man in the middle serves another key, a replayed answer binds another challenge, and
//! either way the report data differs.
//!
//! ```text
//! report_data[..32] = SHA-256(SERVER_EVIDENCE_LABEL ‖ u32-BE len(challenge) ‖ challenge ‖ spki)
//! report_data[32..] = SHA-256(spki)
//! ```
//!
//! The length prefix makes the split between challenge and key unambiguous. The second half
//! repeats the key's hash on its own so that logs of the evidence show which key it binds.
//!
//! **Domain separation.** Evidence made here can pass for no other binding the crate makes:
//! RA-TLS certificates ([`report_data_for`](crate::ratls::report_data_for)) and GenerateQuote
//! both end their report data with 32 zero bytes, which the SHA-256 of a key never is; the
//! label keeps the first half apart from any other hash over a challenge. So an unauthenticated
//! client that asks for server evidence over a challenge of its choosing gets nothing it could
//! present as an RA-TLS peer or as another app's quote.
//!
//! The binding is only as good as the server's discipline: it must serve a TLS key that never
//! leaves the TEE, or the evidence proves nothing about who terminates the session.

use core::fmt;

use aws_lc_rs::digest;

use crate::ratls::RatlsError;

/// The domain-separation label at the start of the hashed input (see the module documentation).
/// The trailing NUL ends it, so no label can be a prefix of another.
pub const SERVER_EVIDENCE_LABEL: &[u8] = b"ehsm server evidence v1\0";

/// The shortest challenge accepted: 128 bits, so that a random one never repeats.
pub const CHALLENGE_MIN: usize = 16;

/// The longest challenge accepted: enough for any nonce, and it bounds what an unauthenticated
/// request makes the server hash.
pub const CHALLENGE_MAX: usize = 64;

/// A client's challenge, of [`CHALLENGE_MIN`] to [`CHALLENGE_MAX`] bytes. It is a type so that
/// report data can only be computed over a challenge that obeys the rule, on both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge(Vec<u8>);

impl Challenge {
    /// Takes `bytes` as a challenge, or says why they cannot be one. The client should use
    /// fresh random bytes (32 is plenty); the server takes whatever the client sent.
    pub fn new(bytes: &[u8]) -> Result<Self, ChallengeError> {
        if (CHALLENGE_MIN..=CHALLENGE_MAX).contains(&bytes.len()) {
            Ok(Self(bytes.to_vec()))
        } else {
            Err(ChallengeError { len: bytes.len() })
        }
    }

    /// The challenge's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A challenge of the wrong length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChallengeError {
    /// The length that was given.
    pub len: usize,
}

impl fmt::Display for ChallengeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the challenge is {} bytes; it must be {CHALLENGE_MIN} to {CHALLENGE_MAX} fresh random \
             bytes (32 is a good choice)",
            self.len
        )
    }
}

impl std::error::Error for ChallengeError {}

/// The report data of server evidence for `challenge` and the DER `SubjectPublicKeyInfo` of the
/// TLS certificate the server serves (see the module documentation for the layout).
pub fn server_report_data(challenge: &Challenge, spki_der: &[u8]) -> [u8; 64] {
    let challenge = challenge.as_bytes();
    // At most CHALLENGE_MAX, so the conversion never saturates.
    let len = u32::try_from(challenge.len()).unwrap_or(u32::MAX);
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(SERVER_EVIDENCE_LABEL);
    ctx.update(&len.to_be_bytes());
    ctx.update(challenge);
    ctx.update(spki_der);
    let mut report_data = [0u8; 64];
    report_data[..32].copy_from_slice(ctx.finish().as_ref());
    report_data[32..].copy_from_slice(digest::digest(&digest::SHA256, spki_der).as_ref());
    report_data
}

/// The DER `SubjectPublicKeyInfo` of an X.509 certificate (DER): what [`server_report_data`]
/// binds. The server takes it from the certificate it serves, the client from the certificate
/// its connection received; neither trusts the certificate for anything else here.
pub fn certificate_spki(cert_der: &[u8]) -> Result<Vec<u8>, RatlsError> {
    use x509_cert::der::{Decode as _, Encode as _};
    let malformed = |e: x509_cert::der::Error| RatlsError::MalformedCertificate(e.to_string());
    let cert = x509_cert::Certificate::from_der(cert_der).map_err(malformed)?;
    cert.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPKI: &[u8] = b"an SPKI, as far as the hash is concerned";

    fn challenge(bytes: &[u8]) -> Challenge {
        Challenge::new(bytes).unwrap()
    }

    /// Expected values from Python's hashlib, not from the code under test:
    /// `sha256(b"ehsm server evidence v1\0" + struct.pack(">I", 16) + bytes(range(16)) + SPKI)`
    /// and `sha256(SPKI)`.
    #[test]
    fn known_answer() {
        let challenge: Vec<u8> = (0..16).collect();
        let report_data = server_report_data(&self::challenge(&challenge), SPKI);
        assert_eq!(
            hex::encode(&report_data[..32]),
            "a686a0a28c718303f3d2022b177b0fb56e62c9e1215518752af24be51551c608"
        );
        assert_eq!(
            hex::encode(&report_data[32..]),
            "14c1ce912b4c4446f805eec039f27de6796026d5d5fdd6806fb791949e53a9f2"
        );
    }

    #[test]
    fn another_challenge_or_key_gives_other_report_data() {
        let a = server_report_data(&challenge(&[1; 32]), SPKI);
        let other_challenge = server_report_data(&challenge(&[2; 32]), SPKI);
        assert_ne!(a[..32], other_challenge[..32]);
        // The second half names the key only: the same key, the same hash.
        assert_eq!(a[32..], other_challenge[32..]);
        let other_key = server_report_data(&challenge(&[1; 32]), b"another key");
        assert_ne!(a[..32], other_key[..32]);
        assert_ne!(a[32..], other_key[32..]);
    }

    /// Without the length prefix, moving bytes between the challenge and the key would keep the
    /// hashed input, and so the first half, the same.
    #[test]
    fn the_length_prefix_separates_challenge_and_key() {
        let mut longer = vec![1; 16];
        longer.push(SPKI[0]);
        let a = server_report_data(&challenge(&[1; 16]), SPKI);
        let b = server_report_data(&challenge(&longer), &SPKI[1..]);
        assert_ne!(a[..32], b[..32]);
    }

    #[test]
    fn the_label_is_hashed() {
        let challenge = challenge(&[1; 32]);
        let unlabelled = {
            let mut ctx = digest::Context::new(&digest::SHA256);
            ctx.update(&32u32.to_be_bytes());
            ctx.update(challenge.as_bytes());
            ctx.update(SPKI);
            ctx.finish()
        };
        let relabelled = {
            let mut ctx = digest::Context::new(&digest::SHA256);
            ctx.update(b"ehsm server evidence v2\0");
            ctx.update(&32u32.to_be_bytes());
            ctx.update(challenge.as_bytes());
            ctx.update(SPKI);
            ctx.finish()
        };
        let labelled = server_report_data(&challenge, SPKI);
        assert_ne!(labelled[..32], *unlabelled.as_ref());
        assert_ne!(labelled[..32], *relabelled.as_ref());
    }

    /// No RA-TLS certificate's binding (whose second half is zeros) can equal server evidence's.
    #[test]
    fn differs_from_the_ratls_binding_of_the_same_key() {
        let server = server_report_data(&challenge(&[1; 32]), SPKI);
        let ratls = crate::ratls::report_data_for(SPKI);
        assert_eq!(ratls[32..], [0; 32]);
        assert_ne!(server[32..], [0; 32]);
        // The two put the key's hash in different halves.
        assert_eq!(server[32..], ratls[..32]);
    }

    #[test]
    fn certificate_spki_is_the_certified_key() {
        use rcgen::PublicKeyData as _;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(
            certificate_spki(cert.der()).unwrap(),
            key.subject_public_key_info()
        );
        for bad in [
            &b""[..],
            b"not a certificate",
            &cert.der()[..cert.der().len() - 1],
        ] {
            let err = certificate_spki(bad).unwrap_err();
            assert!(matches!(err, RatlsError::MalformedCertificate(_)), "{err}");
        }
    }

    #[test]
    fn challenge_length_bounds() {
        for len in [CHALLENGE_MIN, 32, CHALLENGE_MAX] {
            assert_eq!(challenge(&vec![7; len]).as_bytes(), vec![7; len].as_slice());
        }
        for len in [0, 1, CHALLENGE_MIN - 1, CHALLENGE_MAX + 1, 4096] {
            let err = Challenge::new(&vec![7; len]).unwrap_err();
            assert_eq!(err, ChallengeError { len });
            assert!(
                err.to_string()
                    .contains(&format!("is {len} bytes; it must be 16 to 64")),
                "{err}"
            );
        }
    }
}
