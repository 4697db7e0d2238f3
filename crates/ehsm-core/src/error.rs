//! The core's one error type.
//!
//! Messages are `&'static str` on purpose: an error can never carry key bytes, plaintext or any
//! other caller data, so it is always safe to log. Each variant says *whose fault* it is, which
//! is what the service needs to choose the eHSM code.

use core::fmt;

/// Everything the core can refuse or fail at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The caller's input is malformed or out of range (a length, an encoding, a parameter that
    /// this key or operation does not accept).
    InvalidInput(&'static str),
    /// The key exists but may not be used this way: wrong key spec, usage or origin for the
    /// operation, or the key has no material yet (an external key before import).
    NotPermitted(&'static str),
    /// A ciphertext did not decrypt: tag mismatch, wrong key, wrong aad or bad padding.
    DecryptionFailed,
    /// Stored data failed its integrity check: a key blob, sealed domain key or import token that
    /// was tampered with, moved to another key, or sealed under another key.
    IntegrityFailure(&'static str),
    /// A request's MAC does not match its app's API key.
    RequestMacMismatch,
    /// A BYOK import token is past its expiry time.
    ImportTokenExpired,
    /// A BYOK import token was not issued for this key and wrapping key, or was altered.
    InvalidImportToken,
    /// A domain-key version that this core does not hold.
    UnknownDomainKey(u32),
    /// The cryptographic library failed where it should not have.
    Backend(&'static str),
    /// A known-answer test failed at start-up: this build or machine must not serve keys.
    SelfTest(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidInput(what) => write!(f, "invalid input: {what}"),
            Error::NotPermitted(what) => write!(f, "operation not permitted: {what}"),
            Error::DecryptionFailed => f.write_str("decryption failed"),
            Error::IntegrityFailure(what) => write!(f, "integrity check failed: {what}"),
            Error::RequestMacMismatch => f.write_str("request MAC does not match"),
            Error::ImportTokenExpired => f.write_str("import token has expired"),
            Error::InvalidImportToken => f.write_str("import token is not valid for this key"),
            Error::UnknownDomainKey(v) => write!(f, "domain key version {v} is not loaded"),
            Error::Backend(what) => write!(f, "crypto backend error: {what}"),
            Error::SelfTest(what) => write!(f, "self-test failed: {what}"),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand used throughout the core.
pub type Result<T> = core::result::Result<T, Error>;
