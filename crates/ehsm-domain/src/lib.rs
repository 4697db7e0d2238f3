//! Domain-key custody for ehsm.
//!
//! Today: **standalone mode** ([`standalone::open`]), where one node creates its domain key on
//! first start and keeps it sealed in its data directory, under the platform's sealing key or
//! in the custody of a PKCS#11 HSM ([`hsm`]); and **backup** ([`backup`]): the domain keys split
//! into shares encrypted to custodians, and recovered from any threshold of them. The key server
//! (`dkeyserver`), the per-node cache (`dkeycache`) and rotation come next and will live here
//! too.
#![forbid(unsafe_code)]

pub mod backup;
pub mod cache;
pub mod channel;
pub mod follow;
pub mod hsm;
pub mod keyfile;
pub mod keyserver;
pub mod standalone;
