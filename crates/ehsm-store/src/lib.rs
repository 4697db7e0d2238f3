//! The ehsm store: apps, key records and blobs, secrets, quote policies and the replay cache,
//! on SQLite (embedded) and PostgreSQL. Empty until the REST-service work fills it.
#![forbid(unsafe_code)]
