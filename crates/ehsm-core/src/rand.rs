//! The one source of randomness in the core: AWS-LC's CSPRNG (seeded from the OS, or from
//! RDRAND through Gramine inside an enclave).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use k256::elliptic_curve::rand_core::{TryCryptoRng, TryRng};

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

/// The core's CSPRNG as a RustCrypto RNG, for `p224`, `k256` and `sm2`: one source of randomness
/// for every library.
pub(crate) struct CoreRng;

impl TryRng for CoreRng {
    type Error = Error;

    fn try_next_u32(&mut self) -> Result<u32> {
        array().map(u32::from_le_bytes)
    }

    fn try_next_u64(&mut self) -> Result<u64> {
        array().map(u64::from_le_bytes)
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<()> {
        fill(dst)
    }
}

impl TryCryptoRng for CoreRng {}
