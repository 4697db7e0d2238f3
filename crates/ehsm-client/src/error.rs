//! The SDK's one error type, split by whose fault it is.

use core::fmt;

#[cfg(feature = "attest")]
use crate::attest::AttestError;

/// What can go wrong with a call.
///
/// The variants separate the server's refusals ([`Error::Api`]), the network ([`Error::Transport`]),
/// answers that are not eHSM answers ([`Error::Decode`]) and mistakes in the client's own set-up
/// ([`Error::InvalidConfig`]), so that a caller can retry the second, report the third and fix the
/// fourth without reading messages.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with a `code` other than 200, e.g. `400 "keyid error"` or
    /// `404 "API Not Found"`. `message` is `""` when the server sent none (upstream does this for
    /// an unknown appid).
    Api {
        /// The eHSM code: 400 for client errors, 404 for an unknown action, 500 for server errors.
        code: i64,
        /// The eHSM message, verbatim (spec §5.3).
        message: String,
    },
    /// The request could not be sent or the answer could not be read (connection, TLS, timeout),
    /// or the HTTP client could not be built.
    Transport(reqwest::Error),
    /// The server answered, but not with what eHSM answers: an HTTP status other than 200, a body
    /// that is not the `{code, message, result}` envelope, or a `result` without the expected
    /// fields.
    Decode(String),
    /// The client was built or used wrongly: a bad server URL, empty credentials, or a signed call
    /// on a client without credentials.
    InvalidConfig(String),
    /// [`Client::attest`](crate::Client::attest) refused the server; the [`AttestError`] names
    /// the check that failed.
    #[cfg(feature = "attest")]
    Attestation(AttestError),
    /// The client pins the server's key
    /// ([`ClientBuilder::pin_server_key`](crate::ClientBuilder::pin_server_key)) and the server
    /// presented another one. Nothing was sent. If the server was re-deployed or its key
    /// replaced, attest it again and pin the new key; otherwise something is in the middle.
    #[cfg(feature = "attest")]
    ServerKeyChanged {
        /// SHA-256 of the pinned (attested) key.
        pinned: [u8; 32],
        /// SHA-256 of the key the server presented.
        presented: [u8; 32],
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Api { code, message } => write!(f, "ehsm answered {code}: {message}"),
            // The reqwest error is the `source()`; it is not repeated here.
            Error::Transport(_) => f.write_str("HTTP request to ehsm failed"),
            Error::Decode(what) => write!(f, "unexpected answer from ehsm: {what}"),
            Error::InvalidConfig(what) => write!(f, "invalid ehsm client configuration: {what}"),
            #[cfg(feature = "attest")]
            Error::Attestation(e) => write!(f, "the server's attestation failed: {e}"),
            #[cfg(feature = "attest")]
            Error::ServerKeyChanged { pinned, presented } => write!(
                f,
                "the server's TLS key changed since it was attested: it presents key {}, not \
                 the pinned key {}; attest it again before trusting it",
                hex::encode(presented),
                hex::encode(pinned)
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Transport(e) => Some(e),
            #[cfg(feature = "attest")]
            Error::Attestation(e) => Some(e),
            #[cfg(feature = "attest")]
            Error::ServerKeyChanged { .. } => None,
            Error::Api { .. } | Error::Decode(_) | Error::InvalidConfig(_) => None,
        }
    }
}

impl From<reqwest::Error> for Error {
    /// A transport error, unless the pin refused the server's key: that one has its own variant,
    /// since its fix is to attest again.
    fn from(e: reqwest::Error) -> Self {
        #[cfg(feature = "attest")]
        if let Some(changed) = crate::pin::key_changed(&e) {
            return Error::ServerKeyChanged {
                pinned: changed.pinned,
                presented: changed.presented,
            };
        }
        Error::Transport(e)
    }
}

/// The SDK's result type.
pub type Result<T, E = Error> = core::result::Result<T, E>;
