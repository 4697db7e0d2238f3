//! Domain-key custody for ehsm.
//!
//! Today: **standalone mode** ([`standalone::open`]), where one node creates its domain key on
//! first start and keeps it sealed to the platform in its data directory. The key server
//! (`dkeyserver`), the per-node cache (`dkeycache`), HSM custody and rotation come next and will
//! live here too.
#![forbid(unsafe_code)]

pub mod standalone;
