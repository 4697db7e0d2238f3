//! Start-up self-tests: a known-answer test of every algorithm, run before the core serves a
//! single key. A failure (a miscompiled or tampered library, a broken CPU feature) refuses to
//! start rather than risk producing wrong ciphertexts or signatures under customer keys.

use crate::Result;
use crate::alg::{
    aes_gcm::AesGcmKey, ec::EcKey, hmac::HmacKey, rsa::RsaKey, sm2::Sm2Key, sm4::Sm4Key,
};

/// Runs every algorithm's known-answer test.
pub(crate) fn run() -> Result<()> {
    crate::alg::digest::self_test()?;
    HmacKey::self_test()?;
    AesGcmKey::self_test()?;
    Sm4Key::self_test()?;
    RsaKey::self_test()?;
    EcKey::self_test()?;
    Sm2Key::self_test()?;
    crate::sigv4::self_test()?;
    Ok(())
}
