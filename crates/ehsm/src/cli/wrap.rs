//! Wrapping key material for BYOK (spec §6.9): RSA encryption to the server's wrapping key.
//!
//! The server sends the wrapping key as a PKCS#1 `RSA PUBLIC KEY` PEM, as upstream does and as
//! upstream's SDKs expect. aws-lc-rs parses only X.509 `SubjectPublicKeyInfo`, so the PKCS#1 key
//! is put into an SPKI here: `SEQUENCE { AlgorithmIdentifier rsaEncryption, BIT STRING(pkcs1) }`,
//! a few bytes of DER that are easier to check than a parser dependency.

use anyhow::{Context as _, anyhow, bail};
use aws_lc_rs::rsa::{
    OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, Pkcs1PublicEncryptingKey, PublicEncryptingKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ehsm_client::PaddingMode;

/// `AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }`.
const RSA_ENCRYPTION_ALG_ID: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// Encrypts `material` to the wrapping key `pubkey_pem` with `padding` (OAEP with SHA-256 and
/// MGF1-SHA-256, or PKCS#1 v1.5), as ImportKeyMaterial expects.
pub(crate) fn wrap_key_material(
    pubkey_pem: &str,
    padding: PaddingMode,
    material: &[u8],
) -> anyhow::Result<Vec<u8>> {
    let key = public_key(pubkey_pem)?;
    let mut out = vec![0u8; key.key_size_bytes()];
    let len = match padding {
        PaddingMode::RsaPkcs1Oaep => {
            let key = OaepPublicEncryptingKey::new(key)?;
            key.encrypt(&OAEP_SHA256_MGF1SHA256, material, &mut out, None)?
                .len()
        }
        PaddingMode::RsaPkcs1 => {
            let key = Pkcs1PublicEncryptingKey::new(key)?;
            key.encrypt(material, &mut out)?.len()
        }
        PaddingMode::None | PaddingMode::RsaPkcs1Pss => {
            bail!("key material is wrapped with OAEP or PKCS#1 v1.5 padding, not {padding}")
        }
    };
    out.truncate(len);
    Ok(out)
}

/// The RSA key of an `RSA PUBLIC KEY` (PKCS#1) or `PUBLIC KEY` (SPKI) PEM.
fn public_key(pem: &str) -> anyhow::Result<PublicEncryptingKey> {
    let (label, der) = pem_block(pem)?;
    let spki = match label {
        "RSA PUBLIC KEY" => spki_from_pkcs1(&der),
        "PUBLIC KEY" => der,
        other => bail!("the server's wrapping key is a PEM {other:?}, not an RSA public key"),
    };
    PublicEncryptingKey::from_der(&spki)
        .map_err(|e| anyhow!("the server's wrapping key is not a usable RSA public key: {e}"))
}

/// The label and decoded contents of the first PEM block.
fn pem_block(pem: &str) -> anyhow::Result<(&str, Vec<u8>)> {
    let not_pem = || anyhow!("the server's wrapping key is not PEM text");
    let begin = pem.find("-----BEGIN ").ok_or_else(not_pem)?;
    let rest = &pem[begin + "-----BEGIN ".len()..];
    let (label, rest) = rest.split_once("-----").ok_or_else(not_pem)?;
    let end = format!("-----END {label}-----");
    let body = &rest[..rest.find(&end).ok_or_else(not_pem)?];
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD
        .decode(b64)
        .context("the server's wrapping key PEM is not valid base64")?;
    Ok((label, der))
}

/// `SubjectPublicKeyInfo { rsaEncryption, BIT STRING (0 unused bits ‖ pkcs1) }`.
fn spki_from_pkcs1(pkcs1: &[u8]) -> Vec<u8> {
    let mut bits = Vec::with_capacity(pkcs1.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(pkcs1);
    let mut content = RSA_ENCRYPTION_ALG_ID.to_vec();
    content.extend(der_tlv(0x03, &bits));
    der_tlv(0x30, &content)
}

/// A DER tag-length-value with a definite (short or long form) length.
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8); // < 0x80: fits
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8); // at most 8 length bytes
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use aws_lc_rs::encoding::{AsDer as _, PublicKeyX509Der};
    use aws_lc_rs::rsa::{
        KeySize, OaepPrivateDecryptingKey, Pkcs1PrivateDecryptingKey, PrivateDecryptingKey,
    };

    use super::*;

    /// The BIT STRING contents (after the unused-bits byte) at the end of an SPKI, i.e. the
    /// PKCS#1 key; a test-only inverse of `spki_from_pkcs1` for an RSA SPKI.
    fn pkcs1_of(spki: &[u8]) -> Vec<u8> {
        let at = spki
            .windows(RSA_ENCRYPTION_ALG_ID.len())
            .position(|w| w == RSA_ENCRYPTION_ALG_ID)
            .unwrap()
            + RSA_ENCRYPTION_ALG_ID.len();
        let bit_string = &spki[at..];
        assert_eq!(bit_string[0], 0x03);
        let header = if bit_string[1] < 0x80 {
            2
        } else {
            2 + usize::from(bit_string[1] & 0x7f)
        };
        assert_eq!(bit_string[header], 0, "no unused bits");
        bit_string[header + 1..].to_vec()
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let b64 = STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn der_lengths() {
        assert_eq!(der_tlv(0x04, &[]), [0x04, 0x00]);
        assert_eq!(der_tlv(0x04, &[7; 0x7f])[..2], [0x04, 0x7f]);
        assert_eq!(der_tlv(0x04, &[7; 0x80])[..3], [0x04, 0x81, 0x80]);
        assert_eq!(der_tlv(0x04, &[7; 0x100])[..4], [0x04, 0x82, 0x01, 0x00]);
        assert_eq!(
            der_tlv(0x04, &[7; 0x1_0000])[..5],
            [0x04, 0x83, 0x01, 0x00, 0x00]
        );
    }

    #[test]
    fn spki_from_pkcs1_matches_aws_lc_and_wrapped_keys_decrypt() {
        for size in [KeySize::Rsa2048, KeySize::Rsa3072] {
            let private = PrivateDecryptingKey::generate(size).unwrap();
            let spki: PublicKeyX509Der<'_> = private.public_key().as_der().unwrap();
            let pkcs1 = pkcs1_of(spki.as_ref());
            assert_eq!(
                spki_from_pkcs1(&pkcs1),
                spki.as_ref(),
                "byte-identical SPKI"
            );

            let material = [0x5au8; 32];
            let pem_text = pem("RSA PUBLIC KEY", &pkcs1);
            let mut out = vec![0u8; 512];

            let wrapped =
                wrap_key_material(&pem_text, PaddingMode::RsaPkcs1Oaep, &material).unwrap();
            let oaep = OaepPrivateDecryptingKey::new(private.clone()).unwrap();
            let plain = oaep
                .decrypt(&OAEP_SHA256_MGF1SHA256, &wrapped, &mut out, None)
                .unwrap();
            assert_eq!(plain, material);

            let wrapped = wrap_key_material(&pem_text, PaddingMode::RsaPkcs1, &material).unwrap();
            let pkcs1_key = Pkcs1PrivateDecryptingKey::new(private.clone()).unwrap();
            assert_eq!(pkcs1_key.decrypt(&wrapped, &mut out).unwrap(), material);

            // An SPKI PEM works too.
            let wrapped = wrap_key_material(
                &pem("PUBLIC KEY", spki.as_ref()),
                PaddingMode::RsaPkcs1Oaep,
                &material,
            )
            .unwrap();
            let plain = oaep
                .decrypt(&OAEP_SHA256_MGF1SHA256, &wrapped, &mut out, None)
                .unwrap();
            assert_eq!(plain, material);
        }
    }

    #[test]
    fn bad_wrapping_keys_are_refused() {
        for bad in [
            "",
            "no pem here",
            "-----BEGIN RSA PUBLIC KEY-----\n!!\n-----END RSA PUBLIC KEY-----\n",
            "-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "-----BEGIN RSA PUBLIC KEY-----\nAAAA\n",
        ] {
            assert!(
                wrap_key_material(bad, PaddingMode::RsaPkcs1Oaep, &[1; 16]).is_err(),
                "{bad:?}"
            );
        }
    }
}
