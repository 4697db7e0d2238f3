//! A key whose material is loaded and parsed, ready to use. Lives only inside the core (in the
//! key cache); dropping it zeroizes the material (each algorithm's key type clears its own).

use crate::alg::aes_gcm::AesGcmKey;
use crate::alg::ec::EcKey;
use crate::alg::hmac::HmacKey;
use crate::alg::rsa::RsaKey;
use crate::alg::sm2::Sm2Key;
use crate::alg::sm4::{Sm4Key, Sm4Mode};
use crate::apikey::LoadedApiKey;
use crate::family::{Family, HasFamily as _};
use crate::spec::KeySpec;
use crate::{Error, Result, SecretBytes};

// Variants differ in size (AWS-LC's HMAC key holds its hash states), but a `LoadedKey` always
// lives behind an `Arc` in the cache, so boxing the large ones would only add an indirection.
#[allow(clippy::large_enum_variant)]
pub(crate) enum LoadedKey {
    AesGcm(AesGcmKey),
    Sm4(Sm4Key),
    Rsa(RsaKey),
    Ec(EcKey),
    Sm2(Sm2Key),
    Hmac(HmacKey),
    /// An app's API key (loaded from a blob of purpose `ApiKey`, never from a CMK's).
    ApiKey(LoadedApiKey),
    /// An external key whose material has not been imported yet.
    NotImported,
}

impl LoadedKey {
    /// Generates fresh material for `spec`; returns the loaded key and the material to wrap.
    pub(crate) fn generate(spec: KeySpec) -> Result<(Self, SecretBytes)> {
        match spec.symmetric_key_len() {
            Some(len) => {
                let material = SecretBytes::random(len)?;
                Ok((Self::from_material(spec, material.as_slice())?, material))
            }
            None => match spec.family() {
                Family::Rsa => RsaKey::generate(spec).map(|(k, m)| (Self::Rsa(k), m)),
                Family::Sm2 => Sm2Key::generate().map(|(k, m)| (Self::Sm2(k), m)),
                _ => EcKey::generate(spec).map(|(k, m)| (Self::Ec(k), m)),
            },
        }
    }

    /// The API key this is, or an integrity failure: the cache keys entries by purpose, so an
    /// API-key blob always loads as one, and anything else means the blob was not one.
    pub(crate) fn as_api_key(&self) -> Result<&LoadedApiKey> {
        match self {
            Self::ApiKey(key) => Ok(key),
            _ => Err(Error::IntegrityFailure(
                "API key blob does not hold an API key",
            )),
        }
    }

    /// Parses material unwrapped from a blob (or imported). Empty material means "not imported".
    pub(crate) fn from_material(spec: KeySpec, material: &[u8]) -> Result<Self> {
        if material.is_empty() {
            return Ok(Self::NotImported);
        }
        // A symmetric key's length must be its spec's: otherwise 32 bytes under EH_AES_GCM_128
        // would silently become AES-256.
        if let Some(len) = spec.symmetric_key_len()
            && material.len() != len
        {
            return Err(Error::IntegrityFailure(
                "key material length does not match its key spec",
            ));
        }
        Ok(match spec.family() {
            Family::AesGcm => Self::AesGcm(AesGcmKey::new(material)?),
            Family::Sm4 => Self::Sm4(Sm4Key::new(
                if spec == KeySpec::Sm4Ctr {
                    Sm4Mode::Ctr
                } else {
                    Sm4Mode::Cbc
                },
                material,
            )?),
            Family::Rsa => Self::Rsa(RsaKey::from_secret(spec, material)?),
            Family::Ec => Self::Ec(EcKey::from_secret(spec, material)?),
            Family::Sm2 => Self::Sm2(Sm2Key::from_secret(material)?),
            Family::Hmac => Self::Hmac(HmacKey::new_exact(material)?),
        })
    }
}
