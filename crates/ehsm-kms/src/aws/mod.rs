//! The AWS KMS API (the JSON 1.1 protocol of `TrentService`), an adapter over the same
//! operations as the eHSM API: it authenticates with AWS Signature Version 4, translates names
//! and errors, and calls `crate::keys` and `ehsm_core::Core` like the eHSM actions do.
//!
//! [`sigv4`] turns a request into what the core checks (the API key never leaves the core);
//! [`error`] is AWS's error shape and the exceptions this API answers with.
// Until the front end (piece B of issue 15) routes requests here, only the tests use this module.
#![cfg_attr(
    not(test),
    expect(dead_code, reason = "used by the AWS front end (piece B)")
)]

pub(crate) mod error;
pub(crate) mod sigv4;
