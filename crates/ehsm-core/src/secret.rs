//! Owned secret bytes: zeroized on drop, never printed.

use zeroize::Zeroizing;

/// Secret bytes that leave the core only because the caller asked for them (a decrypted
/// plaintext, a data key). Zeroized on drop; no `Debug`, `Clone` or `Serialize`, so they cannot
/// end up in a log line by accident.
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// `len` random bytes from the system CSPRNG.
    pub(crate) fn random(len: usize) -> crate::Result<Self> {
        let mut v = Self::new(vec![0u8; len]);
        crate::rand::fill(&mut v.0)?;
        Ok(v)
    }

    /// Copies `bytes` into a new zeroizing buffer.
    pub(crate) fn copy_from(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }

    /// The bytes, for the caller to send or use.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
