//! One line for a failed command: what went wrong, and what to do next.
//!
//! The server's refusals are eHSM `{code, message}` answers; the messages are fixed protocol
//! strings (spec §5.3), so the hints are looked up by the exact message. Network failures are
//! told apart by the `std::io::ErrorKind` inside the reqwest error: `ConnectionRefused`, and
//! `InvalidData`, which is how the TLS layer reports a failed handshake.

use std::error::Error as StdError;
use std::io;

use ehsm_client::{AttestError, Error};
use ehsm_tee::ratls::RatlsError;

use super::Failure;
use super::conn::{Session, Trust};

impl Session {
    /// The message for a failed command (without the `ehsm: ` prefix).
    pub(crate) fn explain(&self, failure: &Failure) -> String {
        match failure {
            Failure::Local(e) => format!("{e:#}"),
            Failure::Call(e) => self.explain_call(e),
        }
    }

    fn explain_call(&self, e: &Error) -> String {
        match e {
            Error::Api { code, message } => self.explain_refusal(*code, message),
            Error::Transport(t) => {
                let url = &self.url;
                let cause = innermost(t);
                let kinds = io_kinds(t);
                if t.is_timeout() {
                    format!(
                        "{url} did not answer in time (is the server overloaded, or is the URL \
                         right?)"
                    )
                } else if kinds.contains(&io::ErrorKind::ConnectionRefused) {
                    format!(
                        "could not connect to {url}: connection refused (is 'ehsm serve' running \
                         there? set the server with --url or EHSM_URL)"
                    )
                } else if kinds.contains(&io::ErrorKind::InvalidData) && url.starts_with("https:") {
                    format!(
                        "TLS handshake with {url} failed: {cause} ({})",
                        self.tls_hint()
                    )
                } else if t.is_connect() {
                    format!("could not connect to {url}: {cause} (check --url or EHSM_URL)")
                } else if url.starts_with("http:") {
                    format!(
                        "the connection to {url} failed: {cause} (if the server serves HTTPS, use \
                         an https:// URL)"
                    )
                } else {
                    format!("the connection to {url} failed: {cause}")
                }
            }
            Error::Decode(what) => format!(
                "unexpected answer from {}: {what} (is the URL that of an ehsm or eHSM-KMS \
                 server?)",
                self.url
            ),
            Error::InvalidConfig(what) => format!("{what} (check --url, EHSM_URL or the profile)"),
            Error::ServerKeyChanged { pinned, presented } => format!(
                "the server at {} presents another TLS key than the one attested at enrollment \
                 ({} instead of {}): if it was re-deployed or its key replaced, attest it again \
                 with 'ehsm enroll --policy FILE --force'; otherwise something is in the middle, \
                 so do not use it",
                self.url,
                hex::encode(presented),
                hex::encode(pinned)
            ),
            Error::Attestation(e) => match attestation_hint(e) {
                Some(hint) => format!("the server's attestation failed: {e} ({hint})"),
                None => format!("the server's attestation failed: {e}"),
            },
            other => other.to_string(),
        }
    }

    fn tls_hint(&self) -> String {
        if self.pin.is_some() {
            return "the profile pins the server's attested key; if the server serves plain \
                    HTTP now, it cannot be the attested one"
                .to_owned();
        }
        match &self.trust {
            Trust::CaCert(path) => format!(
                "is {} the server's certificate, and does the URL's host match it? ehsm's \
                 generated certificate is for localhost and 127.0.0.1",
                path.display()
            ),
            Trust::System => "if the server uses ehsm's generated certificate, pass --ca-cert \
                              <data-dir>/tls-cert.pem; --insecure skips the check, for testing \
                              only; if the server serves plain HTTP, use an http:// URL"
                .to_owned(),
            Trust::Insecure => "does the server serve plain HTTP? then use an http:// URL".into(),
        }
    }

    fn explain_refusal(&self, code: i64, message: &str) -> String {
        let credentials_hint = if self.credentials_from_profile {
            match &self.profile_path {
                Some(p) => format!("the profile {} does not match this server", p.display()),
                None => "the profile does not match this server".to_owned(),
            }
        } else {
            "check --appid/EHSM_APPID and --apikey/EHSM_APIKEY".to_owned()
        };
        let hint: Option<String> = match message {
            "" => {
                return format!(
                    "the server does not know this appid (code {code}): {credentials_hint}; run \
                     'ehsm enroll' against {}",
                    self.url
                );
            }
            "keyid error" | "not find this keyid" => {
                Some("is the key id right, and is it one of this app's keys?".into())
            }
            "appid error" => {
                Some("the key belongs to another app; 'ehsm key list' shows this app's keys".into())
            }
            "Parameter invalid, The keyid length error."
            | "Parameter invalid, The keyid format wrong." => Some(
                "name a key by its keyid, as 'ehsm key list' shows it, or by an alias, \
                 alias/NAME ('ehsm alias list')"
                    .into(),
            ),
            "Parameter invalid, The alias length error."
            | "Parameter invalid, The alias format wrong." => Some(
                "an alias is alias/ and 1 to 250 of A-Z a-z 0-9 / _ -, e.g. alias/orders".into(),
            ),
            "keyid is disabled" => Some("enable it with 'ehsm key enable KEYID'".into()),
            "keyid expire" => Some("the key has expired: create a new one".into()),
            // ehsm also answers this for an unknown appid, so that appids cannot be probed.
            "sign error" => Some(format!(
                "the server does not know this appid, or the apikey does not match it: \
                 {credentials_hint}, or run 'ehsm enroll' against {}",
                self.url
            )),
            "Timestamp error" => Some(
                "this machine's clock and the server's differ by more than 10 minutes: fix the \
                 clock"
                    .into(),
            ),
            "Timestamp can't be repeated in 20 minutes" => Some("try again".into()),
            "Decryption failed, Please confirm that your parameters are correct." => Some(
                "wrong key or --aad, or the ciphertext is damaged (raw bytes unless you pass \
                 --base64)"
                    .into(),
            ),
            "Server exception." | "Server exception" | "Invalid Parameter." | "Argument bad." => {
                Some(
                    "the key may not support this operation or these options: check its keyspec \
                     and usage with 'ehsm key list', and --digest/--padding; the server log has \
                     details"
                        .into(),
                )
            }
            "Import key failed." => Some(
                "the key material must be exactly as long as the key: 16 bytes for AES-128 and \
                 SM4, 24 for AES-192, 32 for AES-256"
                    .into(),
            ),
            "GetParametersForImport failed." | "ImportKeyMaterial failed." => Some(
                "is it an external key ('ehsm key create --origin external') of AES or SM4?".into(),
            ),
            "Enrollment needs the operator's enrollment token (Authorization: Bearer <token>)." => {
                Some(
                    "pass --token (or set EHSM_ENROLL_TOKEN) with the token 'ehsm serve' printed \
                     at its first start"
                        .into(),
                )
            }
            "Enrollment is disabled on this server." => {
                Some("ask the operator for an appid and apikey".into())
            }
            "API Not Found" => Some(
                "the server does not have this action: is it an ehsm or eHSM-KMS 0.3.2 server?"
                    .into(),
            ),
            _ => None,
        };
        match hint {
            Some(hint) => format!("the server refused: {message} ({hint})"),
            None => format!("the server refused: {message} (code {code})"),
        }
    }
}

/// What to do about a failed attestation, where the refusal alone does not say.
fn attestation_hint(e: &AttestError) -> Option<&'static str> {
    match e {
        AttestError::NoEvidence(_) => Some(
            "only an ehsm server can be attested; enroll without --policy to trust its \
             certificate alone",
        ),
        AttestError::AnotherKey { .. } => Some(
            "if a proxy terminates TLS in front of the server, connect to the server itself: \
             evidence cannot vouch for a proxy",
        ),
        AttestError::Evidence(RatlsError::PolicyRefused(_)) => Some(
            "is the policy that of the build the server runs? docs/attestation.md says how to \
             get a build's measurement",
        ),
        _ => None,
    }
}

/// An error and its sources, outermost first.
fn chain<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(e), |e: &&'a (dyn StdError + 'static)| (*e).source())
}

/// The kinds of the `io::Error`s in the chain, including those nested inside an `io::Error`
/// (whose `source()` skips the error it wraps): the TLS layer reports a failed handshake as
/// `InvalidData` inside hyper's `Other`.
fn io_kinds(e: &(dyn StdError + 'static)) -> Vec<io::ErrorKind> {
    let mut kinds = Vec::new();
    for e in chain(e) {
        let mut io = e.downcast_ref::<io::Error>();
        while let Some(i) = io {
            kinds.push(i.kind());
            io = i
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<io::Error>());
        }
    }
    kinds
}

/// The most specific cause, e.g. rustls's "invalid peer certificate: UnknownIssuer".
fn innermost(e: &(dyn StdError + 'static)) -> String {
    chain(e)
        .last()
        .map_or_else(String::new, ToString::to_string)
}
