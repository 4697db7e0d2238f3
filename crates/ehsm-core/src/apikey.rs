//! API keys: the per-app secret that signs every request (spec §3).
//!
//! An API key is 32 characters from upstream's 58-character alphabet (no `I`, `O`, `l`, `o`).
//! It is generated here, handed to the enrolling client once, and stored only as a blob bound to
//! its appid. The request-MAC check unwraps it inside the core, so the key never leaves it again.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::Result;
use crate::alg::hmac::HmacKey;
use crate::blob::KeyContext;
use crate::sigv4::SigV4Secret;
use crate::spec::{KeySpec, KeyUsage, Origin};

/// Length of an API key in characters.
pub const API_KEY_LEN: usize = 32;

const ALPHABET: &[u8; 58] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz";

/// The largest multiple of 58 that fits in a byte: bytes at or above it are redrawn, so that
/// every character is equally likely (upstream's plain `% 58` favoured the first 24 characters).
const UNBIASED_LIMIT: u8 = 58 * 4;

/// A freshly generated API key, to be shown to its owner once. No `Debug`, zeroized on drop.
pub struct ApiKey(Zeroizing<String>);

impl ApiKey {
    pub(crate) fn generate() -> Result<Self> {
        let mut key = Zeroizing::new(String::with_capacity(API_KEY_LEN));
        let mut pool = Zeroizing::new([0u8; 64]);
        while key.len() < API_KEY_LEN {
            crate::rand::fill(pool.as_mut_slice())?;
            for &b in pool.iter().filter(|&&b| b < UNBIASED_LIMIT) {
                if key.len() == API_KEY_LEN {
                    break;
                }
                key.push(char::from(ALPHABET[usize::from(b % 58)]));
            }
        }
        Ok(Self(key))
    }

    /// The key text, to return to the enrolling client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// An app's API key as the key cache holds it: keyed once for the eHSM request MAC and once,
/// with AWS's `AWS4` prefix, as the start of the SigV4 key chain. The text itself is not kept.
pub(crate) struct LoadedApiKey {
    pub(crate) request_mac: HmacKey,
    pub(crate) sigv4: SigV4Secret,
}

impl LoadedApiKey {
    /// Parses the material of an API-key blob: the key's text, [`API_KEY_LEN`] characters.
    pub(crate) fn from_material(material: &[u8]) -> Result<Self> {
        Ok(Self {
            request_mac: HmacKey::new_exact(material)?,
            sigv4: SigV4Secret::new(material),
        })
    }
}

/// The blob context of an app's API key.
pub(crate) fn context(appid: &str) -> KeyContext<'_> {
    KeyContext {
        keyid: "",
        appid,
        spec: KeySpec::Hmac,
        origin: Origin::Internal,
        usage: KeyUsage::SignVerify,
        version: 1,
    }
}

/// Proof that a request's MAC (eHSM's, or AWS's SigV4 signature) was checked against its app's
/// API key.
///
/// Only [`crate::Core::verify_request_mac`] and [`crate::Core::verify_sigv4`] make one. Every key
/// operation takes it and refuses a key of another app, so even a bug in the service cannot use
/// one app's request to touch another app's key.
pub struct MacVerified<'a> {
    appid: &'a str,
}

impl<'a> MacVerified<'a> {
    pub(crate) fn new(appid: &'a str) -> Self {
        Self { appid }
    }

    /// The app whose request this is.
    pub fn appid(&self) -> &'a str {
        self.appid
    }
}

/// A MAC as the wire carries it: standard base64 with padding (44 characters).
pub(crate) fn encode_mac(mac: &[u8; 32]) -> String {
    STANDARD.encode(mac)
}

/// Compares the base64 MAC a client sent with ours, in constant time. Upstream compared the
/// strings exactly, so base64 variants (no padding, URL alphabet) are not equal either.
pub(crate) fn sign_matches(mac: &[u8; 32], sign: &str) -> bool {
    let mut ours = [0u8; 44];
    let Ok(n) = STANDARD.encode_slice(mac, &mut ours) else {
        return false;
    };
    ours[..n].ct_eq(sign.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_right_shape_and_differ() {
        let a = ApiKey::generate().unwrap();
        let b = ApiKey::generate().unwrap();
        assert_eq!(a.expose().len(), API_KEY_LEN);
        assert!(a.expose().bytes().all(|c| ALPHABET.contains(&c)));
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn characters_are_roughly_uniform() {
        // 2000 keys = 64000 characters, ~1103 per symbol. Upstream's `% 58` bias makes the first
        // 24 symbols 5/4 as likely as the others (~1280 vs ~1024); a 15% band catches that.
        let mut counts = [0u32; 58];
        for _ in 0..2000 {
            for c in ApiKey::generate().unwrap().expose().bytes() {
                counts[ALPHABET.iter().position(|&a| a == c).unwrap()] += 1;
            }
        }
        let mean = 64000.0 / 58.0;
        for (i, &n) in counts.iter().enumerate() {
            let dev = (f64::from(n) - mean).abs() / mean;
            assert!(dev < 0.15, "symbol {i}: {n} vs mean {mean}");
        }
        let first: u32 = counts[..24].iter().sum();
        let rest: u32 = counts[24..].iter().sum();
        let ratio = (f64::from(first) / 24.0) / (f64::from(rest) / 34.0);
        assert!(ratio < 1.1, "biased towards the first symbols: {ratio}");
    }

    // Spec §3.6, first vector.
    #[test]
    fn request_mac_vector() {
        let key = HmacKey::new(b"D3nK2Vq90QrFkHGRZ3dBAyFEfPTtLfQy");
        let canon = "appid=b7c62e4d-c238-4016-b35f-47bc4b57dc03&payload=keyspec=EH_AES_GCM_256&keyusage=EH_KEYUSAGE_ENCRYPT_DECRYPT&origin=EH_INTERNAL_KEY&timestamp=1700000000000";
        let mac = key.sign(canon.as_bytes());
        assert!(sign_matches(
            &mac,
            "15sVY0CoLLgWBSBdyPKcBX3oL2kw7ldRWgfETtjbZV8="
        ));
        assert!(!sign_matches(
            &mac,
            "15sVY0CoLLgWBSBdyPKcBX3oL2kw7ldRWgfETtjbZV8"
        ));
        assert!(!sign_matches(
            &mac,
            "15SVY0CoLLgWBSBdyPKcBX3oL2kw7ldRWgfETtjbZV8="
        ));
        assert!(!sign_matches(&mac, ""));
    }
}
