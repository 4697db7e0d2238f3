//! The ehsm store: apps, customer master key (CMK) records with their wrapped key blobs, secrets
//! and their versions, quote policies, the request-replay cache, job leases and a few named
//! settings, on
//! SQLite (embedded, the zero-configuration default) or PostgreSQL (shared by every KMS node of
//! a domain).
//!
//! # Design
//!
//! - **One code path.** [`Store`] is one concrete type over a `sqlx::AnyPool`. Every query is
//!   written once, in the SQL subset both engines accept (`$1` placeholders, `ON CONFLICT DO
//!   NOTHING`, `BIGINT` for every integer). The only dialect differences live in the migration
//!   files (`migrations/sqlite` uses `BLOB`, `migrations/postgres` uses `BYTEA` and a byte-order
//!   collation on key ids) and in the per-connection SQLite pragmas. A second implementation per
//!   backend is how stores drift apart; one is how they stay equal, and one shared test suite runs
//!   against both.
//! - **No plaintext keys, ever.** Blobs are opaque `Vec<u8>` produced (and authenticated) by
//!   `ehsm-core`. The store never interprets them, and its `Debug` output prints only their
//!   lengths.
//! - **Errors never carry row contents.** [`Error`]'s `Display` and `Debug` describe what failed
//!   (SQLSTATE, constraint, driver message where that message cannot quote a value) but never echo
//!   stored or bound values, so an error can be logged as it is.
//! - **Atomic or nothing.** Every multi-row change runs in one transaction, and the
//!   check-then-write steps that two KMS nodes could race on (import completion, first-start
//!   settings, job leases, blob re-wraps) are single conditional statements, so exactly one
//!   writer wins.
//! - **Durable on acknowledgement.** SQLite runs in WAL mode with `synchronous=FULL`, so a write
//!   that returned `Ok` survives a crash or power loss.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod guards;
mod invalidate;
mod leases;
mod lifecycle;
mod quote_policies;
mod records;
mod secrets;
mod store;

pub use error::{Error, Result};
pub use invalidate::Invalidation;
pub use lifecycle::AliasRecord;
pub use quote_policies::QuotePolicyRecord;
pub use records::{AppRecord, CmkRecord, CmkVersion, ImportParams, KeyState, ReplayEntry};
pub use secrets::{Deletion, SecretRecord, SecretVersion};
pub use store::{PoolSettings, Store};
