//! Backup and recovery of domain keys to custodians (a standalone node's, or a key server root's).
//!
//! The splitting, share encryption and recovery are the core's ([`ehsm_core::backup`]); the data
//! directory side, in either custody, is [`crate::keyfile::KeyFile`], with the two rules that
//! keep stored key blobs usable: a backup never creates a domain
//! ([`KeyFile::load_existing`](crate::keyfile::KeyFile::load_existing)), and a recovery never
//! replaces one ([`KeyFile::install`](crate::keyfile::KeyFile::install)).

use ehsm_core::DomainKeySet;

pub use ehsm_core::backup::{CustodianKey, DecryptedShare, EncryptedShare, decrypt_share};

/// Rebuilds the domain keys from decrypted shares ([`DomainKeySet::recover`]), for callers
/// that see the core only through this crate.
pub fn recover(shares: &[DecryptedShare]) -> Result<DomainKeySet, ehsm_core::Error> {
    DomainKeySet::recover(shares)
}
