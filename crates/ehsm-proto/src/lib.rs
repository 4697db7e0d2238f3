//! The eHSM-KMS wire protocol shared by the ehsm server and its clients: the wire enums, the
//! action list, the request-signing canonicaliser and the report data of GenerateQuote.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod action;
pub mod canon;
pub mod quote;
pub mod spec;

pub use action::Action;
