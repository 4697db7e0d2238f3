//! The AWS KMS API (the JSON 1.1 protocol of `TrentService`), an adapter over the same
//! operations as the eHSM API: it authenticates with AWS Signature Version 4, translates names
//! and errors, and calls `crate::keys` and `ehsm_core::Core` like the eHSM actions do.
//!
//! [`sigv4`] turns a request into what the core checks (the API key never leaves the core);
//! [`error`] is AWS's error shape and the exceptions this API answers with.
mod ciphertext;
mod context;
pub(crate) mod error;
mod ids;
mod input;
mod ops;
mod server;
pub(crate) mod sigv4;

pub(crate) use server::handle;
