//! The trusted core of ehsm: the only code that ever holds plaintext key material.
//!
//! Everything outside this crate handles opaque, authenticated [`KeyBlob`]s and public data. The
//! core holds the domain keys ([`DomainKeySet`]), wraps and unwraps blobs, runs every algorithm
//! of the eHSM API, checks request signatures (eHSM's request MAC and AWS's SigV4), and keeps a
//! bounded cache of loaded keys. It does no I/O, no logging and nothing async, and none of its
//! secret types implement `Debug`, `Clone` or `Serialize`.
//!
//! Start here: [`Core`], then [`KeyContext`] (what a blob is bound to) and [`MacVerified`] (the
//! proof of an authenticated request that every key operation takes).
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod alg;
mod apikey;
pub mod backup;
mod blob;
mod cache;
pub mod ciphertext;
mod core;
mod domain;
mod error;
mod family;
mod import;
mod kdf;
mod key;
mod rand;
mod secret;
mod selftest;
mod shamir;
mod sigv4;

/// The eHSM enumerations (key specs, origins, usages, paddings, digests, message types).
pub use ehsm_proto::spec;

pub use crate::apikey::{API_KEY_LEN, ApiKey, MacVerified};
pub use crate::blob::{KeyBlob, KeyContext};
pub use crate::cache::{CacheStats, DEFAULT_CAPACITY};
pub use crate::core::{Core, DataKey, DomainUpdate, MAX_DATA_KEY_LEN, MAX_PLAINTEXT_LEN};
pub use crate::domain::{DOMAIN_KEY_LEN, DomainKeySet, Succession};
pub use crate::error::{Error, Result};
pub use crate::import::ImportParams;
pub use crate::secret::SecretBytes;
pub use crate::sigv4::SigV4Scope;
