//! Key blobs: how key material is stored outside the core.
//!
//! ```text
//! blob = format (1 byte, = 1) ‖ DK version (u32 BE) ‖ AES-256-GCM(material) as ct ‖ IV(12) ‖ tag(16)
//! AAD  = "ehsm blob v1" ‖ format ‖ DK version ‖ purpose ‖ keyspec (u32 BE) ‖ origin ‖ usage
//!        ‖ key version (u32 BE) ‖ len(keyid) (u16 BE) ‖ keyid ‖ len(appid) (u16 BE) ‖ appid
//! ```
//!
//! The AES key is derived from the named DK version. Everything the store keeps next to the blob
//! (keyspec, origin, usage, keyid, appid, key version) is in the AAD, so a blob moved to another
//! key, app or usage, or a record whose metadata was edited, fails to unwrap. Upstream's blob
//! header was not authenticated at all (spec §16.7).

use crate::alg::aes_gcm::{IV_LEN, TAG_LEN};
use crate::domain::DomainKeySet;
use crate::spec::{KeySpec, KeyUsage, Origin};
use crate::{Error, Result, SecretBytes};

const FORMAT_V1: u8 = 1;
const HEADER_LEN: usize = 5;
const AAD_LABEL: &[u8] = b"ehsm blob v1";

/// What a blob holds. Part of the AAD, so that a BYOK wrapping key can never be used as a CMK,
/// nor an API key as either.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Purpose {
    /// The material of a customer master key.
    Cmk = 1,
    /// The RSA key that wraps BYOK key material in transit (GetParametersForImport).
    ImportWrapping = 2,
    /// An app's API key (request-MAC secret).
    ApiKey = 3,
}

/// The identity and attributes a key blob is bound to. The service keeps these next to the blob
/// and presents them with it on every use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyContext<'a> {
    /// The key id (a UUID on the wire).
    pub keyid: &'a str,
    /// The owning application.
    pub appid: &'a str,
    /// The key spec given at creation.
    pub spec: KeySpec,
    /// Internal (generated here) or external (imported).
    pub origin: Origin,
    /// What the key may do.
    pub usage: KeyUsage,
    /// The CMK version (1 for a key that was never rotated).
    pub version: u32,
}

impl KeyContext<'_> {
    fn write_aad(
        &self,
        purpose: Purpose,
        header: &[u8; HEADER_LEN],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        out.extend_from_slice(AAD_LABEL);
        out.extend_from_slice(header);
        out.push(purpose as u8);
        self.write_binding(out)
    }

    /// Appends an unambiguous encoding of every field (lengths prefix the strings).
    pub(crate) fn write_binding(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.spec.number().to_be_bytes());
        out.push(self.origin.number() as u8);
        out.push(self.usage.number() as u8);
        out.extend_from_slice(&self.version.to_be_bytes());
        for s in [self.keyid, self.appid] {
            let len = u16::try_from(s.len()).map_err(|_| Error::InvalidInput("id too long"))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Ok(())
    }
}

/// An opaque, authenticated key blob as kept by the store. Only the core can open it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyBlob(Vec<u8>);

impl KeyBlob {
    /// Takes bytes read back from storage.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The domain-key version that wrapped this blob, or `None` if the blob is malformed. The
    /// service uses it to find blobs that a DK rotation must re-wrap.
    pub fn domain_key_version(&self) -> Option<u32> {
        self.header().map(|(_, v)| v)
    }

    /// The GCM tag: random-looking and unique per wrap, hence the key-cache index.
    pub(crate) fn tag(&self) -> Option<&[u8; TAG_LEN]> {
        self.0.last_chunk::<TAG_LEN>()
    }

    fn header(&self) -> Option<(&[u8; HEADER_LEN], u32)> {
        let header = self.0.first_chunk::<HEADER_LEN>()?;
        if header[0] != FORMAT_V1 || self.0.len() < HEADER_LEN + IV_LEN + TAG_LEN {
            return None;
        }
        let dk = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        Some((header, dk))
    }
}

impl core::fmt::Debug for KeyBlob {
    // The blob is ciphertext, but its length still says what kind of key it is; keep logs terse.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "KeyBlob({} bytes)", self.0.len())
    }
}

/// Wraps `material` under the current DK.
pub(crate) fn wrap(
    dks: &DomainKeySet,
    purpose: Purpose,
    ctx: &KeyContext<'_>,
    material: &[u8],
) -> Result<KeyBlob> {
    let (dk_version, key) = dks.current_blob_key();
    let mut header = [0u8; HEADER_LEN];
    header[0] = FORMAT_V1;
    header[1..].copy_from_slice(&dk_version.to_be_bytes());
    let mut aad = Vec::with_capacity(64 + ctx.keyid.len() + ctx.appid.len());
    ctx.write_aad(purpose, &header, &mut aad)?;
    let mut out = Vec::with_capacity(HEADER_LEN + material.len() + IV_LEN + TAG_LEN);
    out.extend_from_slice(&header);
    key.seal(material, &aad, &mut out)?;
    Ok(KeyBlob(out))
}

/// Opens a blob, checking that it was wrapped for exactly this purpose and context.
pub(crate) fn unwrap(
    dks: &DomainKeySet,
    purpose: Purpose,
    ctx: &KeyContext<'_>,
    blob: &KeyBlob,
) -> Result<SecretBytes> {
    let (header, dk_version) = blob
        .header()
        .ok_or(Error::IntegrityFailure("key blob is malformed"))?;
    let key = dks.blob_key(dk_version)?;
    let mut aad = Vec::with_capacity(64 + ctx.keyid.len() + ctx.appid.len());
    ctx.write_aad(purpose, header, &mut aad)?;
    key.open(&blob.0[HEADER_LEN..], &aad).map_err(|_| {
        Error::IntegrityFailure("key blob does not match its key, app, usage or domain key")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> KeyContext<'static> {
        KeyContext {
            keyid: "aac3e45a-d3dc-4791-89b6-4ada0e38e6ef",
            appid: "b7c62e4d-c238-4016-b35f-47bc4b57dc03",
            spec: KeySpec::AesGcm256,
            origin: Origin::Internal,
            usage: KeyUsage::EncryptDecrypt,
            version: 1,
        }
    }

    #[test]
    fn round_trip() {
        let dks = DomainKeySet::generate().unwrap();
        let blob = wrap(
            &dks,
            Purpose::Cmk,
            &ctx(),
            b"0123456789abcdef0123456789abcdef",
        )
        .unwrap();
        assert_eq!(blob.domain_key_version(), Some(1));
        let back = unwrap(&dks, Purpose::Cmk, &ctx(), &blob).unwrap();
        assert_eq!(back.as_slice(), b"0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn any_change_of_context_or_purpose_is_refused() {
        let dks = DomainKeySet::generate().unwrap();
        let blob = wrap(&dks, Purpose::Cmk, &ctx(), &[1u8; 32]).unwrap();
        let other_key = KeyContext {
            keyid: "00000000-d3dc-4791-89b6-4ada0e38e6ef",
            ..ctx()
        };
        let other_app = KeyContext {
            appid: "other",
            ..ctx()
        };
        let other_usage = KeyContext {
            usage: KeyUsage::SignVerify,
            ..ctx()
        };
        let other_spec = KeyContext {
            spec: KeySpec::AesGcm128,
            ..ctx()
        };
        let other_origin = KeyContext {
            origin: Origin::External,
            ..ctx()
        };
        let other_version = KeyContext {
            version: 2,
            ..ctx()
        };
        // Moving bytes from the keyid into the appid must not give the same AAD.
        let shifted = KeyContext {
            keyid: "aac3e45a-d3dc-4791-89b6-4ada0e38e6e",
            appid: "fb7c62e4d-c238-4016-b35f-47bc4b57dc03",
            ..ctx()
        };
        for bad in [
            other_key,
            other_app,
            other_usage,
            other_spec,
            other_origin,
            other_version,
            shifted,
        ] {
            assert!(matches!(
                unwrap(&dks, Purpose::Cmk, &bad, &blob),
                Err(Error::IntegrityFailure(_))
            ));
        }
        for p in [Purpose::ImportWrapping, Purpose::ApiKey] {
            assert!(unwrap(&dks, p, &ctx(), &blob).is_err());
        }
    }

    #[test]
    fn another_domain_key_is_refused() {
        let blob = wrap(
            &DomainKeySet::generate().unwrap(),
            Purpose::Cmk,
            &ctx(),
            &[1; 16],
        )
        .unwrap();
        let other = DomainKeySet::generate().unwrap();
        assert!(unwrap(&other, Purpose::Cmk, &ctx(), &blob).is_err());
    }

    #[test]
    fn tampered_and_truncated_blobs_are_refused() {
        let dks = DomainKeySet::generate().unwrap();
        let blob = wrap(&dks, Purpose::Cmk, &ctx(), &[1u8; 16]).unwrap();
        for i in 0..blob.0.len() * 8 {
            let mut bad = blob.0.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(
                unwrap(&dks, Purpose::Cmk, &ctx(), &KeyBlob(bad)).is_err(),
                "bit {i}"
            );
        }
        for len in 0..blob.0.len() {
            let bad = KeyBlob(blob.0[..len].to_vec());
            assert!(
                unwrap(&dks, Purpose::Cmk, &ctx(), &bad).is_err(),
                "len {len}"
            );
        }
        // A blob naming a DK version the core does not hold.
        let mut v9 = blob.0.clone();
        v9[1..5].copy_from_slice(&9u32.to_be_bytes());
        assert!(matches!(
            unwrap(&dks, Purpose::Cmk, &ctx(), &KeyBlob(v9)),
            Err(Error::UnknownDomainKey(9))
        ));
    }
}
