//! The remote attestation actions of spec §9: GenerateQuote, VerifyQuote, UploadQuotePolicy and
//! GetQuotePolicy.
//!
//! An ehsm server binds GenerateQuote's challenge into the quote's report data (see
//! [`quote_report_data`]); upstream eHSM-KMS did not (its report data is all zeros). VerifyQuote
//! checks that binding when it is given the challenge, an ehsm extension that upstream servers
//! ignore. Its answer carries a MAC under the app's API key, which
//! [`QuoteVerdict::sign_matches`] checks.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ehsm_proto::Action;
use serde_json::{Map, Value, json};

use crate::client::{Client, b64};
use crate::error::{Error, Result};

/// A quote policy, from [`Client::get_quote_policy`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct QuotePolicy {
    /// Its id.
    #[serde(rename = "policyId")]
    pub policy_id: String,
    /// The MRENCLAVE a quote must carry (hex; ehsm stores it in lower case).
    pub mr_enclave: String,
    /// The MRSIGNER a quote must carry (hex; ehsm stores it in lower case).
    pub mr_signer: String,
    /// Upload time, in milliseconds since the Unix epoch (0 if the server did not say).
    #[serde(rename = "createTime", default)]
    pub create_time: i64,
}

/// The answer of [`Client::verify_quote`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteVerdict {
    /// Intel's `sgx_ql_qv_result_t`: 0 is OK, `0xA001`..`0xA008` name what is out of date or
    /// needs configuring.
    pub result: u32,
    /// The nonce, as sent.
    pub nonce: Vec<u8>,
    /// The policy's MRENCLAVE, when a policy was given (the quote matched it).
    pub mr_enclave: Option<String>,
    /// The policy's MRSIGNER, when a policy was given (the quote matched it).
    pub mr_signer: Option<String>,
    /// The server's MAC over this answer under the app's API key (base64).
    pub sign: String,
}

impl QuoteVerdict {
    /// Whether `sign` is the HMAC-SHA256, under `apikey`, of the spec §3.1 canonical string of
    /// `{mr_enclave?, mr_signer?, nonce, result}` (so a `result` of 0 is left out, as upstream).
    /// Compared in constant time.
    pub fn sign_matches(&self, apikey: &str) -> bool {
        let mut fields = Map::new();
        if let Some(m) = &self.mr_enclave {
            fields.insert("mr_enclave".into(), m.as_str().into());
        }
        if let Some(m) = &self.mr_signer {
            fields.insert("mr_signer".into(), m.as_str().into());
        }
        fields.insert("nonce".into(), b64(&self.nonce).into());
        fields.insert("result".into(), self.result.into());
        let canonical = ehsm_proto::canon::canonicalize(&Value::Object(fields));
        let Ok(tag) = STANDARD.decode(&self.sign) else {
            return false;
        };
        let key = hmac::Key::new(hmac::HMAC_SHA256, apikey.as_bytes());
        hmac::verify(&key, canonical.as_bytes(), &tag).is_ok()
    }
}

/// The report data an ehsm server's GenerateQuote binds into the quote it makes for `appid` and
/// `challenge`: `SHA-256("ehsm GenerateQuote\0" ‖ appid ‖ 0x00 ‖ base64(challenge)) ‖ 32 zero
/// bytes`. A verifier that reads the quote itself compares its report data with this.
pub fn quote_report_data(appid: &str, challenge: &[u8]) -> [u8; 64] {
    ehsm_proto::quote::report_data(appid, &b64(challenge))
}

impl Client {
    /// A quote of the server's enclave (on a simulated server, simulated evidence) whose report
    /// data binds `challenge` and this app (`GenerateQuote`; see [`quote_report_data`]).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error).
    pub async fn generate_quote(&self, challenge: &[u8]) -> Result<Vec<u8>> {
        self.call(Action::GenerateQuote, json!({"challenge": b64(challenge)}))
            .await?
            .bytes("quote")
    }

    /// Verifies a quote (`VerifyQuote`). With `policy_id`, the quote's MRENCLAVE and MRSIGNER
    /// must be the policy's; with `challenge` (an ehsm extension), the quote must be one
    /// GenerateQuote made for this app and this challenge. The answer's MAC is not checked here:
    /// see [`QuoteVerdict::sign_matches`] and [`Client::quote_verdict_is_authentic`].
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error). A quote that fails verification, a policy
    /// mismatch or a wrong challenge is [`Error::Api`] with code 400.
    pub async fn verify_quote(
        &self,
        quote: &[u8],
        nonce: &[u8],
        policy_id: Option<&str>,
        challenge: Option<&[u8]>,
    ) -> Result<QuoteVerdict> {
        let mut payload = Map::new();
        payload.insert("quote".into(), b64(quote).into());
        payload.insert("nonce".into(), b64(nonce).into());
        if let Some(id) = policy_id {
            payload.insert("policyId".into(), id.into());
        }
        if let Some(c) = challenge {
            payload.insert("challenge".into(), b64(c).into());
        }
        let reply = self
            .call(Action::VerifyQuote, Value::Object(payload))
            .await?;
        let result = reply
            .result()
            .get("result")
            .and_then(Value::as_u64)
            .and_then(|r| u32::try_from(r).ok())
            .ok_or_else(|| Error::Decode("VerifyQuote: result.result is not an integer".into()))?;
        let optional = |name: &str| {
            reply
                .result()
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Ok(QuoteVerdict {
            result,
            nonce: reply.bytes("nonce")?,
            mr_enclave: optional("mr_enclave"),
            mr_signer: optional("mr_signer"),
            sign: reply.string("sign")?,
        })
    }

    /// Whether `verdict` carries a valid MAC under this client's API key (false without
    /// credentials).
    pub fn quote_verdict_is_authentic(&self, verdict: &QuoteVerdict) -> bool {
        self.credentials
            .as_ref()
            .is_some_and(|c| verdict.sign_matches(&c.apikey))
    }

    /// Stores a quote policy, an (MRENCLAVE, MRSIGNER) pair of 64 hex digits each, and returns its
    /// id (`UploadQuotePolicy`).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error).
    pub async fn upload_quote_policy(&self, mr_enclave: &str, mr_signer: &str) -> Result<String> {
        self.call(
            Action::UploadQuotePolicy,
            json!({"mr_enclave": mr_enclave, "mr_signer": mr_signer}),
        )
        .await?
        .string("policyId")
    }

    /// The app's quote policy with this id; `None` if there is none (`GetQuotePolicy`, which
    /// answers an unknown id with only the id).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error).
    pub async fn get_quote_policy(&self, policy_id: &str) -> Result<Option<QuotePolicy>> {
        let reply = self
            .call(Action::GetQuotePolicy, json!({"policyId": policy_id}))
            .await?;
        if reply.result().get("mr_enclave").is_none() {
            return Ok(None);
        }
        reply.parse().map(Some)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn mac(apikey: &str, canonical: &str) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, apikey.as_bytes());
        STANDARD.encode(hmac::sign(&key, canonical.as_bytes()))
    }

    #[test]
    fn the_response_mac_follows_canon_and_skips_a_zero_result() {
        let apikey = "D3nK2Vq90QrFkHGRZ3dBAyFEfPTtLfQy";
        let mut v = QuoteVerdict {
            result: 0,
            nonce: b"n".to_vec(),
            mr_enclave: None,
            mr_signer: None,
            sign: mac(apikey, "nonce=bg=="),
        };
        assert!(v.sign_matches(apikey));
        assert!(!v.sign_matches("another key"));
        v.result = 0xA002;
        assert!(!v.sign_matches(apikey));
        v.sign = mac(apikey, "nonce=bg==&result=40962");
        assert!(v.sign_matches(apikey));
        v.mr_enclave = Some("aa".into());
        v.mr_signer = Some("bb".into());
        v.sign = mac(apikey, "mr_enclave=aa&mr_signer=bb&nonce=bg==&result=40962");
        assert!(v.sign_matches(apikey));
        v.sign = "not base64!".into();
        assert!(!v.sign_matches(apikey));
    }

    #[test]
    fn report_data_is_the_documented_hash() {
        let rd = quote_report_data("app", b"c");
        use aws_lc_rs::digest;
        // The wrapper's part: the challenge goes in as base64, as the request carries it.
        let expected = digest::digest(&digest::SHA256, b"ehsm GenerateQuote\0app\0Yw==");
        assert_eq!(rd[..32], *expected.as_ref());
        assert_eq!(rd[32..], [0; 32]);
    }
}
