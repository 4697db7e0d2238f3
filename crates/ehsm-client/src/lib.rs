//! The ehsm Rust SDK: signed, typed calls to an ehsm (or eHSM-KMS) server.
//! Empty until the REST-service work fills it.
#![forbid(unsafe_code)]
