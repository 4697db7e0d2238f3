//! AWS Signature Version 4, the request signature of the AWS KMS API, checked with an app's API
//! key.
//!
//! The service parses and canonicalises the request and builds the string to sign, which needs no
//! secret; the core derives the signing key and compares. An enrolled app's API key is its secret
//! access key, so the chain starts from the API key's text as the client holds it:
//!
//! ```text
//! kSecret   = "AWS4" ‖ API key              kDate    = HMAC(kSecret, YYYYMMDD)
//! kRegion   = HMAC(kDate, region)           kService = HMAC(kRegion, service)
//! kSigning  = HMAC(kService, "aws4_request")
//! signature = lowercase hex(HMAC(kSigning, string to sign))
//! ```
//!
//! kSecret is loaded once per cached API key, next to its request-MAC key; what is kept is
//! AWS-LC's padded key blocks, not the text. The keys derived from it exist for one check, in
//! buffers that are cleared on drop.

use zeroize::Zeroizing;

use crate::Result;
use crate::alg::hmac::{HmacKey, TAG_LEN};

/// The credential scope of a SigV4 request: what its signing key is derived for. The service
/// checks each field against the request and its configuration before asking the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigV4Scope<'a> {
    /// The day, `YYYYMMDD` (the date part of the request's `X-Amz-Date`).
    pub date: &'a str,
    /// The AWS region, such as `us-east-1`.
    pub region: &'a str,
    /// The service: `kms` for the AWS KMS API.
    pub service: &'a str,
}

/// The last element of every SigV4 credential scope.
const TERMINATOR: &[u8] = b"aws4_request";

/// The first key of one API key's chain, kSecret, loaded. No `Debug` or `Clone`; AWS-LC clears
/// the key blocks on drop.
pub(crate) struct SigV4Secret(HmacKey);

impl SigV4Secret {
    /// kSecret for `secret`, the API key's text.
    pub(crate) fn new(secret: &[u8]) -> Self {
        let mut k_secret = Zeroizing::new(Vec::with_capacity(4 + secret.len()));
        k_secret.extend_from_slice(b"AWS4");
        k_secret.extend_from_slice(secret);
        Self(HmacKey::new(&k_secret))
    }

    /// Whether `signature_hex` is the signature of `string_to_sign` in `scope`. The comparison
    /// is constant-time; a signature that is not 64 lowercase hex digits matches nothing, since
    /// AWS compares the hex text (so `ABC…` is not `abc…`).
    pub(crate) fn verify(
        &self,
        scope: &SigV4Scope<'_>,
        string_to_sign: &[u8],
        signature_hex: &str,
    ) -> Result<bool> {
        let Some(signature) = decode_signature(signature_hex) else {
            return Ok(false);
        };
        let mut k_signing = Zeroizing::new([0u8; TAG_LEN]);
        self.signing_key(scope, &mut k_signing)?;
        Ok(HmacKey::new(k_signing.as_slice()).verify(string_to_sign, &signature))
    }

    /// kSigning for `scope`, written into the caller's buffer so that no copy of it is moved
    /// around on the stack.
    fn signing_key(&self, scope: &SigV4Scope<'_>, out: &mut [u8; TAG_LEN]) -> Result<()> {
        self.0.sign_into(scope.date.as_bytes(), out)?;
        for part in [
            scope.region.as_bytes(),
            scope.service.as_bytes(),
            TERMINATOR,
        ] {
            // The previous key is copied into AWS-LC's key blocks before `out` is overwritten.
            HmacKey::new(out.as_slice()).sign_into(part, out)?;
        }
        Ok(())
    }
}

/// Decodes a signature as AWS writes it, 64 lowercase hex digits; anything else is `None`.
fn decode_signature(hex: &str) -> Option<[u8; TAG_LEN]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let hex: &[u8; 2 * TAG_LEN] = hex.as_bytes().try_into().ok()?;
    let mut out = [0u8; TAG_LEN];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// The IAM `ListUsers` example of AWS's SigV4 documentation.
const IAM_EXAMPLE_SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const IAM_EXAMPLE_SCOPE: SigV4Scope<'static> = SigV4Scope {
    date: "20150830",
    region: "us-east-1",
    service: "iam",
};
const IAM_EXAMPLE_STRING_TO_SIGN: &[u8] = b"AWS4-HMAC-SHA256\n20150830T123600Z\n\
    20150830/us-east-1/iam/aws4_request\n\
    f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59";
const IAM_EXAMPLE_SIGNATURE: &str =
    "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";

/// The start-up known-answer test: AWS's published example, and the same with one signature
/// digit changed.
pub(crate) fn self_test() -> Result<()> {
    let secret = SigV4Secret::new(IAM_EXAMPLE_SECRET);
    let sts = IAM_EXAMPLE_STRING_TO_SIGN;
    let mut flipped = IAM_EXAMPLE_SIGNATURE.to_owned();
    flipped.replace_range(..1, "4");
    if !secret.verify(&IAM_EXAMPLE_SCOPE, sts, IAM_EXAMPLE_SIGNATURE)?
        || secret.verify(&IAM_EXAMPLE_SCOPE, sts, &flipped)?
    {
        return Err(crate::Error::SelfTest("AWS SigV4"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::apikey;
    use crate::blob::{self, Purpose};
    use crate::{Core, DomainKeySet, Error};

    /// The SigV4 vectors live with the service's canonicaliser, which replays the same requests.
    fn data_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../ehsm-kms/tests/data/sigv4")
    }

    #[test]
    fn aws_documentation_example_signing_key_and_signature() {
        // docs.aws.amazon.com, "Signature Version 4 signing process", IAM ListUsers.
        let secret = SigV4Secret::new(IAM_EXAMPLE_SECRET);
        let mut k_signing = [0u8; TAG_LEN];
        secret
            .signing_key(&IAM_EXAMPLE_SCOPE, &mut k_signing)
            .unwrap();
        assert_eq!(
            hex::encode(k_signing),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        assert!(
            secret
                .verify(
                    &IAM_EXAMPLE_SCOPE,
                    IAM_EXAMPLE_STRING_TO_SIGN,
                    IAM_EXAMPLE_SIGNATURE
                )
                .unwrap()
        );
        self_test().unwrap();
    }

    #[test]
    fn every_scope_field_and_the_secret_change_the_key() {
        let secret = SigV4Secret::new(IAM_EXAMPLE_SECRET);
        let sts = IAM_EXAMPLE_STRING_TO_SIGN;
        let s = IAM_EXAMPLE_SCOPE;
        for scope in [
            SigV4Scope {
                date: "20150831",
                ..s
            },
            SigV4Scope {
                region: "us-east-2",
                ..s
            },
            SigV4Scope {
                service: "kms",
                ..s
            },
        ] {
            assert!(!secret.verify(&scope, sts, IAM_EXAMPLE_SIGNATURE).unwrap());
        }
        let other = SigV4Secret::new(b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ");
        assert!(!other.verify(&s, sts, IAM_EXAMPLE_SIGNATURE).unwrap());
        assert!(!secret.verify(&s, b"", IAM_EXAMPLE_SIGNATURE).unwrap());
    }

    #[test]
    fn malformed_signatures_are_mismatches() {
        let secret = SigV4Secret::new(IAM_EXAMPLE_SECRET);
        let good = IAM_EXAMPLE_SIGNATURE;
        let upper = good.to_ascii_uppercase();
        let spaced = format!(" {}", &good[1..]);
        let non_hex = format!("{}g", &good[..63]);
        let multibyte = format!("{}é", &good[..62]); // 64 bytes, not 64 digits
        for bad in [
            "",
            &good[..63],
            &good[..62],
            &format!("{good}0"),
            &format!("{good}00"),
            &upper,
            &spaced,
            &non_hex,
            &multibyte,
        ] {
            assert!(
                !secret
                    .verify(&IAM_EXAMPLE_SCOPE, IAM_EXAMPLE_STRING_TO_SIGN, bad)
                    .unwrap(),
                "{bad:?}"
            );
        }
        assert_eq!(decode_signature(&good.replace('5', "A")), None);
        assert_eq!(
            decode_signature(good).map(hex::encode).as_deref(),
            Some(good)
        );
    }

    /// Every vector of AWS's SigV4 test suite: its string to sign and its signature, under the
    /// suite's secret. (The service's tests rebuild the same strings to sign from the requests.)
    #[test]
    fn aws_sig_v4_test_suite_signatures() {
        let secret = SigV4Secret::new(IAM_EXAMPLE_SECRET);
        let scope = SigV4Scope {
            date: "20150830",
            region: "us-east-1",
            service: "service",
        };
        let mut ran = 0;
        let mut dirs = vec![data_dir().join("aws4_testsuite")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "sts") {
                    continue;
                }
                let sts = std::fs::read(&path).unwrap();
                let authz = std::fs::read_to_string(path.with_extension("authz")).unwrap();
                let (_, signature) = authz.split_once("Signature=").unwrap();
                let name = path.display();
                assert!(secret.verify(&scope, &sts, signature).unwrap(), "{name}");
                let flipped = flip_last_digit(signature);
                assert!(!secret.verify(&scope, &sts, &flipped).unwrap(), "{name}");
                ran += 1;
            }
        }
        assert!(ran >= 30, "only {ran} vectors ran");
    }

    fn flip_last_digit(signature: &str) -> String {
        let (head, last) = signature.split_at(signature.len() - 1);
        format!("{head}{}", if last == "0" { "1" } else { "0" })
    }

    /// A KMS Encrypt request signed by botocore (generator and how to re-run it: next to the
    /// file). The whole path through the core: the API key as a blob, loaded and cached.
    #[test]
    fn botocore_signature_through_the_core() {
        let vector: serde_json::Value = serde_json::from_str(include_str!(
            "../../ehsm-kms/tests/data/sigv4/botocore-kms-encrypt.json"
        ))
        .unwrap();
        let field = |name: &str| vector[name].as_str().unwrap().to_owned();
        let (apikey, sts, signature) = (
            field("secret_access_key"),
            field("string_to_sign"),
            field("signature"),
        );
        let now = field("now");
        let scope = SigV4Scope {
            date: &now[..8],
            region: "us-east-1",
            service: "kms",
        };
        let appid = "b7c62e4d-c238-4016-b35f-47bc4b57dc03";
        let dks = DomainKeySet::generate().unwrap();
        let blob = blob::wrap(
            &dks,
            Purpose::ApiKey,
            &apikey::context(appid),
            apikey.as_bytes(),
        )
        .unwrap();
        let core = Core::new(DomainKeySet::from_transfer(&dks.to_transfer()).unwrap()).unwrap();
        let verified = core
            .verify_sigv4(appid, &blob, &scope, sts.as_bytes(), &signature)
            .unwrap();
        assert_eq!(verified.appid(), appid);
        // Again, from the cache; then what must fail.
        assert!(
            core.verify_sigv4(appid, &blob, &scope, sts.as_bytes(), &signature)
                .is_ok()
        );
        let flipped = flip_last_digit(&signature);
        assert_eq!(
            core.verify_sigv4(appid, &blob, &scope, sts.as_bytes(), &flipped)
                .err(),
            Some(Error::RequestMacMismatch)
        );
        let tampered = sts.replace("kms", "iam");
        assert_eq!(
            core.verify_sigv4(appid, &blob, &scope, tampered.as_bytes(), &signature)
                .err(),
            Some(Error::RequestMacMismatch)
        );
        // The cached API key serves the eHSM request MAC as before.
        let mac = apikey::encode_mac(&HmacKey::new(apikey.as_bytes()).sign(b"x"));
        assert!(core.verify_request_mac(appid, &blob, b"x", &mac).is_ok());
    }
}
