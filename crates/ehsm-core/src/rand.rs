//! The one source of randomness in the core: AWS-LC's CSPRNG (seeded from the OS, or from
//! RDRAND through Gramine inside an enclave).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::{Error, Result};

/// Fills `buf` with random bytes.
pub(crate) fn fill(buf: &mut [u8]) -> Result<()> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| Error::Backend("random number generator failed"))
}

/// Returns an array of random bytes.
pub(crate) fn array<const N: usize>() -> Result<[u8; N]> {
    let mut a = [0u8; N];
    fill(&mut a)?;
    Ok(a)
}
