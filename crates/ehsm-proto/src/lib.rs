//! The eHSM-KMS wire protocol shared by the ehsm server and its clients: the wire enums, the
//! action list and the request-signing canonicaliser.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod action;
pub mod canon;
pub mod spec;

pub use action::Action;
