//! Owned secret bytes: zeroized on drop, never printed.

use zeroize::Zeroize as _;

/// Secret bytes that leave the core only because the caller asked for them (a decrypted
/// plaintext, a data key). Zeroized on drop; no `Debug`, `Clone` or `Serialize`, so they cannot
/// end up in a log line by accident.
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// `len` random bytes from the system CSPRNG.
    pub(crate) fn random(len: usize) -> crate::Result<Self> {
        let mut v = Self::new(vec![0u8; len]);
        crate::rand::fill(&mut v.0)?;
        Ok(v)
    }

    /// Copies `bytes` into a new secret buffer.
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

impl Drop for SecretBytes {
    fn drop(&mut self) {
        // Zeroize the bytes as a slice: `[u8]`'s zeroize is one bulk fill behind an optimisation
        // barrier, while `Vec<u8>`'s (and so `Zeroizing<Vec<u8>>`'s) writes byte by byte with
        // volatile stores, which costs more than decrypting a 1 KiB plaintext.
        self.0.as_mut_slice().zeroize();
        self.0.spare_capacity_mut().zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_have_the_length_asked_for_and_differ() {
        let a = SecretBytes::random(32).unwrap();
        let b = SecretBytes::random(32).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a.as_slice(), b.as_slice());
        assert!(SecretBytes::random(0).unwrap().is_empty());
    }
}
