//! The ehsm Rust SDK: signed, typed calls to an ehsm server, or to an Intel eHSM-KMS 0.3.2
//! server, since the wire protocol is the same.
//!
//! ```no_run
//! use ehsm_client::{Client, KeySpec, KeyUsage, Origin};
//!
//! # async fn demo() -> Result<(), ehsm_client::Error> {
//! let anonymous = Client::builder("https://127.0.0.1:9000")
//!     // Only for ehsm's generated self-signed certificate, on a network you trust.
//!     .danger_accept_invalid_certs(true)
//!     .build()?;
//! let client = anonymous.with_credentials(anonymous.enroll().await?);
//!
//! let keyid = client.create_key(KeySpec::AesGcm256, Origin::Internal, KeyUsage::EncryptDecrypt).await?;
//! let ciphertext = client.encrypt(&keyid, b"hello", Some(b"context")).await?;
//! assert_eq!(client.decrypt(&keyid, &ciphertext, Some(b"context")).await?, b"hello");
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! - **One signed call.** Every action goes through one private function that builds the
//!   envelope `{appid, timestamp, nonce, payload, sign}` with a [`PreparedRequest`], posts it to
//!   `/ehsm?Action=<Name>` and checks the `{code, message, result}` answer. A typed method only
//!   builds its payload and reads its result, so adding an action is one short method. Callers
//!   with their own HTTP stack, or that send one payload many times, use [`PreparedRequest`] and
//!   [`check_reply`] directly.
//! - **The server's canonicaliser signs.** The string under the HMAC comes from
//!   `ehsm_proto::canon`, which the ehsm server uses too. Upstream's SDKs each had their own and
//!   disagreed with the server on empty strings, booleans and quotes (compatibility spec §3.4).
//! - **Bytes in, bytes out.** Binary arguments and results are `&[u8]`/`Vec<u8>`; the base64 of
//!   the wire stays inside the SDK. Modes are the [`ehsm_proto`] enums, re-exported here.
//! - **ehsm's extensions say so.** Methods for actions eHSM-KMS 0.3.2 lacks (HMAC, and key
//!   lifecycle: [`Client::rotate_key`], [`Client::describe_key`], aliases, [`Client::reencrypt`],
//!   scheduled deletion) say so in their docs; upstream answers them `404 API Not Found`. The
//!   `_versioned` variants of the asymmetric methods (e.g. [`Client::sign_versioned`]) name a
//!   key version and return the one used, while the plain methods send exactly upstream's
//!   payloads. Every `keyid` argument takes an alias name (`alias/NAME`) too.
//! - **Attest, then pin.** With the default `attest` feature, `Client::attest` checks the
//!   server's TEE evidence against a policy and binds it to the key of the TLS session it came
//!   on; `ClientBuilder::pin_server_key` then makes every later connection accept that key
//!   only. The feature brings `ehsm-tee` (DCAP verification; about 95 more crates); a client
//!   that never attests can leave it out.
//! - **Errors by fault.** [`Error::Api`] is the server saying no (with eHSM's code and message),
//!   the other variants are the network, a malformed answer or a configuration mistake.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod aliases;
#[cfg(feature = "attest")]
mod attest;
mod client;
mod error;
mod keys;
mod lifecycle;
#[cfg(feature = "attest")]
mod pin;
mod prepared;
mod quote;
mod secrets;

pub use aliases::Alias;
#[cfg(feature = "attest")]
pub use attest::{AttestError, ServerEvidence, check_server_evidence};
pub use client::{Client, ClientBuilder, Credentials, Version, check_reply};
pub use ehsm_proto::Action;
pub use ehsm_proto::spec::{DigestMode, KeySpec, KeyUsage, MessageType, Origin, PaddingMode};
pub use error::{Error, Result};
pub use keys::{DataKey, ImportParameters, KeyInfo, KeyOptions, Versioned};
pub use lifecycle::{
    KeyDescription, KeyVersionInfo, KeyVersions, ReEncrypted, RotatedKey, RotationPolicy,
};
pub use prepared::{PreparedRequest, timestamp_now};
pub use quote::{QuotePolicy, QuoteVerdict, quote_report_data};
pub use secrets::{SecretInfo, SecretOptions, SecretValue, SecretVersionInfo};

#[cfg(test)]
mod tests;
#[cfg(test)]
#[cfg(feature = "attest")]
mod tests_attest;
