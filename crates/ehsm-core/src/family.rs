//! Key-spec families: which operations a key spec supports. Internal to the core; the wire
//! enums themselves live in `ehsm-proto`.

use crate::spec::KeySpec;

/// The family a key spec belongs to, which decides the operations it supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    AesGcm,
    Sm4,
    Rsa,
    Ec,
    Sm2,
    Hmac,
}

impl HasFamily for KeySpec {
    fn family(self) -> Family {
        match self {
            KeySpec::AesGcm128 | KeySpec::AesGcm192 | KeySpec::AesGcm256 => Family::AesGcm,
            KeySpec::Sm4Ctr | KeySpec::Sm4Cbc => Family::Sm4,
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => Family::Rsa,
            KeySpec::EcP224
            | KeySpec::EcP256
            | KeySpec::EcP256k
            | KeySpec::EcP384
            | KeySpec::EcP521 => Family::Ec,
            KeySpec::Sm2 => Family::Sm2,
            KeySpec::Hmac => Family::Hmac,
        }
    }
}

/// Gives a key spec its family (an extension trait, because `KeySpec` lives in `ehsm-proto`).
pub(crate) trait HasFamily {
    fn family(self) -> Family;
}
