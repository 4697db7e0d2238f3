//! The domain of ehsm: where the domain keys (DK set) live and how they reach every node.
//!
//! - **Custody**: [`standalone`] (one node seals its own DK set in its data directory on first
//!   start), [`hsm`] (the sealing seed decrypted by a non-extractable key in a PKCS#11 token),
//!   and [`keyfile`] (a key server's sealed set: created only when asked, rotated under a lock,
//!   installed from a recovery, never replaced by another domain's); [`rotation`] lets
//!   `ehsm dkeyserver rotate` ask a running root to rotate with its own custody.
//! - **Roles**: [`keyserver`] (`ehsm dkeyserver`: a root that holds the set, workers that copy
//!   it) and [`cache`] (`ehsm dkeycache`: one per node host, memory only), which hand the set
//!   over [`channel`] (mutual RA-TLS, one request per connection) to the peers their policy
//!   accepts; [`follow`] is how workers, caches and KMS nodes fetch it and learn rotations.
//! - **Backup** ([`backup`]): the set split into shares encrypted to custodians, recovered from
//!   any threshold of them.
#![forbid(unsafe_code)]

/// The domain keys, opaque outside the core: what the roles of this crate hold and hand over.
pub use ehsm_core::DomainKeySet;

pub mod backup;
pub mod cache;
pub mod channel;
pub mod follow;
pub mod hsm;
pub mod keyfile;
pub mod keyserver;
pub mod rotation;
pub mod standalone;
