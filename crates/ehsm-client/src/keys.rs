//! The key actions of spec §7 (cryptographic and key management) and ehsm's HMAC extension.
//!
//! Each method builds its payload with the spec's JSON field names, lets [`Client::call`] sign and
//! send it, and reads its fields from the result. Binary values are base64 on the wire and raw
//! bytes here.

use core::fmt;

use ehsm_proto::Action;
use ehsm_proto::spec::{DigestMode, KeySpec, KeyUsage, MessageType, Origin, PaddingMode};
use serde_json::{Value, json};

use crate::client::{Client, Reply, b64};
use crate::error::{Error, Result};

/// A data key from [`Client::generate_data_key`].
///
/// `Debug` leaves out the plaintext key.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey {
    /// The data key itself: use it, then drop it.
    pub plaintext: Vec<u8>,
    /// The data key encrypted under the CMK; store it and [`Client::decrypt`] it when needed.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("plaintext", &"<redacted>")
            .field("ciphertext", &self.ciphertext)
            .finish()
    }
}

/// What [`Client::get_parameters_for_import`] returns for bring-your-own-key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportParameters {
    /// The RSA wrapping key, a PEM `RSA PUBLIC KEY` (PKCS#1). Encrypt the key material to it.
    pub pubkey_pem: String,
    /// An opaque token to pass back to [`Client::import_key_material`].
    pub import_token: String,
}

/// One of the caller's keys, from [`Client::list_keys`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key id.
    pub keyid: String,
    /// Creation time, in milliseconds since the Unix epoch.
    pub creation_date: i64,
    /// Expiry time, in milliseconds since the Unix epoch.
    pub expire_time: i64,
    /// The key's aliases, comma-separated (no alias name holds a comma); `""` for a key without
    /// any, and always from upstream, which has no aliases. [`Client::list_aliases`] lists them
    /// one by one.
    pub alias: String,
    /// The key's spec.
    pub keyspec: KeySpec,
    /// 1 if the key is enabled, 0 if disabled; see [`KeyInfo::is_enabled`].
    pub key_state: i64,
}

impl KeyInfo {
    /// Whether the key may be used (`key_state == 1`).
    pub fn is_enabled(&self) -> bool {
        self.key_state == 1
    }
}

/// The optional settings of [`Client::create_key_with_options`] (ehsm extensions: upstream
/// refuses neither, and keeps neither).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyOptions {
    /// Rotate the key automatically every this many days, 7 to 2560; symmetric and HMAC keys
    /// only. [`Client::update_rotation_policy`] changes it later.
    pub rotation_interval_days: Option<u32>,
    /// A description, up to 4096 characters, shown by [`Client::describe_key`].
    pub description: Option<String>,
}

/// A result together with the key version that produced it, from the `_versioned` methods such
/// as [`Client::sign_versioned`] (ehsm extension: key versions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The signature, ciphertext, plaintext or public key.
    pub value: T,
    /// The version of the key that made or opened it.
    pub version: u32,
}

/// A ListKey item as the wire spells it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireKeyInfo {
    keyid: String,
    creation_date: i64,
    expire_time: i64,
    #[serde(default)]
    alias: String,
    keyspec: String,
    key_state: i64,
}

/// A page of ListKey: `next_marker` is the `marker` of the next page, absent on the last one
/// (and always from a server that does not page, such as upstream's: its one answer is all).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyList {
    list: Vec<WireKeyInfo>,
    #[serde(default)]
    next_marker: Option<String>,
}

/// How many keys [`Client::list_keys`] asks for per page: the most ehsm answers.
const LIST_PAGE: u32 = 1000;

/// Adds `aad` to an object payload. An absent or empty aad is left out, not sent as `""`: the
/// two mean the same to the server, and leaving it out is what every eHSM version accepts.
pub(crate) fn with_aad(payload: Value, aad: Option<&[u8]>) -> Value {
    with_bytes(payload, "aad", aad)
}

/// Adds the optional aad-like field `name` to an object payload, base64, leaving out an absent
/// or empty value as [`with_aad`] does.
pub(crate) fn with_bytes(mut payload: Value, name: &str, value: Option<&[u8]>) -> Value {
    if let (Some(value), Value::Object(map)) = (value.filter(|v| !v.is_empty()), &mut payload) {
        map.insert(name.into(), b64(value).into());
    }
    payload
}

/// A ListKey item as the SDK gives it.
fn key_info(k: WireKeyInfo) -> Result<KeyInfo> {
    let keyspec = wire_name(Action::ListKey, &k.keyid, "keyspec", &k.keyspec)?;
    Ok(KeyInfo {
        keyid: k.keyid,
        creation_date: k.creation_date,
        expire_time: k.expire_time,
        alias: k.alias,
        keyspec,
        key_state: k.key_state,
    })
}

/// A wire enum's name in a result, parsed; an unknown one is a [`Error::Decode`] naming the
/// action, the key and the field.
pub(crate) fn wire_name<T: core::str::FromStr>(
    action: Action,
    keyid: &str,
    field: &str,
    name: &str,
) -> Result<T> {
    name.parse().map_err(|_| {
        Error::Decode(format!(
            "{}: unknown {field} {name:?} for key {keyid}",
            action.as_str()
        ))
    })
}

/// Adds the optional `keyversion` to an object payload: without one, the server uses the
/// primary version (and Verify and AsymmetricDecrypt try every version).
fn with_version(mut payload: Value, version: Option<u32>) -> Value {
    if let Some(v) = version {
        payload["keyversion"] = v.into();
    }
    payload
}

/// The result field `field` (base64) and the `keyversion` that made it.
fn versioned_bytes(reply: &Reply, field: &str) -> Result<Versioned<Vec<u8>>> {
    Ok(Versioned {
        value: reply.bytes(field)?,
        version: reply.u32("keyversion")?,
    })
}

impl Client {
    /// Creates a customer master key and returns its keyid (`CreateKey`).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn create_key(
        &self,
        spec: KeySpec,
        origin: Origin,
        usage: KeyUsage,
    ) -> Result<String> {
        self.create_key_with_options(spec, origin, usage, &KeyOptions::default())
            .await
    }

    /// As [`Client::create_key`], with automatic rotation from the start and a description
    /// (`CreateKey` with `rotationInterval` and `description`, ehsm extensions). With default
    /// options the request is exactly [`Client::create_key`]'s.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`]. A rotation interval outside 7 to 2560 days, or one for an
    /// asymmetric or external key, is an [`Error::Api`] with code 400.
    pub async fn create_key_with_options(
        &self,
        spec: KeySpec,
        origin: Origin,
        usage: KeyUsage,
        options: &KeyOptions,
    ) -> Result<String> {
        let mut payload = json!({"keyspec": spec.as_str(), "origin": origin.as_str(), "keyusage": usage.as_str()});
        if let Some(days) = options.rotation_interval_days {
            payload["rotationInterval"] = days.into();
        }
        if let Some(description) = &options.description {
            payload["description"] = description.as_str().into();
        }
        self.call(Action::CreateKey, payload).await?.string("keyid")
    }

    /// Encrypts `plaintext` (up to 6144 bytes) with a symmetric key; `aad` must be given again to
    /// decrypt (`Encrypt`).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn encrypt(
        &self,
        keyid: &str,
        plaintext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let payload = with_aad(json!({"keyid": keyid, "plaintext": b64(plaintext)}), aad);
        self.call(Action::Encrypt, payload)
            .await?
            .bytes("ciphertext")
    }

    /// Decrypts what [`Client::encrypt`] or a data-key action returned (`Decrypt`).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn decrypt(
        &self,
        keyid: &str,
        ciphertext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let payload = with_aad(json!({"keyid": keyid, "ciphertext": b64(ciphertext)}), aad);
        self.call(Action::Decrypt, payload)
            .await?
            .bytes("plaintext")
    }

    /// A fresh random data key of `len` bytes (1 to 1024), in the clear and encrypted under the
    /// symmetric key `keyid` (`GenerateDataKey`).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn generate_data_key(
        &self,
        keyid: &str,
        len: u32,
        aad: Option<&[u8]>,
    ) -> Result<DataKey> {
        let payload = with_aad(json!({"keyid": keyid, "keylen": len}), aad);
        let reply = self.call(Action::GenerateDataKey, payload).await?;
        Ok(DataKey {
            plaintext: reply.bytes("plaintext")?,
            ciphertext: reply.bytes("ciphertext")?,
        })
    }

    /// As [`Client::generate_data_key`], but only the encrypted key is returned
    /// (`GenerateDataKeyWithoutPlaintext`).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn generate_data_key_without_plaintext(
        &self,
        keyid: &str,
        len: u32,
        aad: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let payload = with_aad(json!({"keyid": keyid, "keylen": len}), aad);
        self.call(Action::GenerateDataKeyWithoutPlaintext, payload)
            .await?
            .bytes("ciphertext")
    }

    /// Re-encrypts a data key from the symmetric key `keyid` to the public key of the RSA or SM2
    /// key `ukeyid` (`ExportDataKey`). `old_ciphertext` and `aad` are those of the data key; the
    /// result opens with [`Client::asymmetric_decrypt`] (RSA: OAEP).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn export_data_key(
        &self,
        keyid: &str,
        ukeyid: &str,
        old_ciphertext: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let payload =
            json!({"keyid": keyid, "ukeyid": ukeyid, "olddatakey_base": b64(old_ciphertext)});
        self.call(Action::ExportDataKey, with_aad(payload, aad))
            .await?
            .bytes("newdatakey")
    }

    /// Signs `message` (or, with [`MessageType::Digest`], a digest the caller computed) with an
    /// RSA, EC or SM2 key (`Sign`). All three modes are required by the server, even where they
    /// do not matter (EC ignores the padding).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn sign(
        &self,
        keyid: &str,
        digest: DigestMode,
        padding: PaddingMode,
        message_type: MessageType,
        message: &[u8],
    ) -> Result<Vec<u8>> {
        let payload = sign_payload(keyid, None, digest, padding, message_type, message);
        self.call(Action::Sign, payload).await?.bytes("signature")
    }

    /// As [`Client::sign`], with the given version of the key (`None`: the primary one), and
    /// the signature comes with the version that made it (`Sign` with `keyversion`, an ehsm
    /// extension).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`]. A version the key does not have is an [`Error::Api`] with
    /// code 400; an answer without `keyversion` (upstream's) is an [`Error::Decode`].
    pub async fn sign_versioned(
        &self,
        keyid: &str,
        version: Option<u32>,
        digest: DigestMode,
        padding: PaddingMode,
        message_type: MessageType,
        message: &[u8],
    ) -> Result<Versioned<Vec<u8>>> {
        let payload = sign_payload(keyid, version, digest, padding, message_type, message);
        versioned_bytes(&self.call(Action::Sign, payload).await?, "signature")
    }

    /// Checks a signature made as by [`Client::sign`] (`Verify`). `Ok(false)` means the signature
    /// does not match; errors are kept for refused requests. On ehsm a signature made by any
    /// version of the key verifies.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn verify(
        &self,
        keyid: &str,
        digest: DigestMode,
        padding: PaddingMode,
        message_type: MessageType,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool> {
        let mut payload = sign_payload(keyid, None, digest, padding, message_type, message);
        payload["signature"] = b64(signature).into();
        self.call(Action::Verify, payload).await?.bool("result")
    }

    /// As [`Client::verify`], checking against the given version of the key only, or (`None`)
    /// every version, the primary first; returns the version that verified the signature, or
    /// `None` if it does not match (`Verify` with `keyversion`, an ehsm extension).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`]. A version the key does not have is an [`Error::Api`] with
    /// code 400; a match without `keyversion` in the answer (upstream's) is an
    /// [`Error::Decode`].
    // Verify's arguments and the version: a struct for them would be unlike every other method.
    #[allow(clippy::too_many_arguments)]
    pub async fn verify_versioned(
        &self,
        keyid: &str,
        version: Option<u32>,
        digest: DigestMode,
        padding: PaddingMode,
        message_type: MessageType,
        message: &[u8],
        signature: &[u8],
    ) -> Result<Option<u32>> {
        let mut payload = sign_payload(keyid, version, digest, padding, message_type, message);
        payload["signature"] = b64(signature).into();
        let reply = self.call(Action::Verify, payload).await?;
        match reply.bool("result")? {
            true => reply.u32("keyversion").map(Some),
            false => Ok(None),
        }
    }

    /// Encrypts to an RSA or SM2 key's public key (`AsymmetricEncrypt`). RSA takes
    /// [`PaddingMode::RsaPkcs1`] or [`PaddingMode::RsaPkcs1Oaep`]; SM2 ignores the padding.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn asymmetric_encrypt(
        &self,
        keyid: &str,
        padding: PaddingMode,
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        let payload = asymmetric_payload(keyid, None, padding, "plaintext", plaintext);
        self.call(Action::AsymmetricEncrypt, payload)
            .await?
            .bytes("ciphertext")
    }

    /// As [`Client::asymmetric_encrypt`], to the public key of the given version of the key
    /// (`None`: the primary one), and the ciphertext comes with that version
    /// (`AsymmetricEncrypt` with `keyversion`, an ehsm extension). Keep the version with the
    /// ciphertext and pass it to [`Client::asymmetric_decrypt_versioned`].
    ///
    /// # Errors
    ///
    /// As [`Client::sign_versioned`].
    pub async fn asymmetric_encrypt_versioned(
        &self,
        keyid: &str,
        version: Option<u32>,
        padding: PaddingMode,
        plaintext: &[u8],
    ) -> Result<Versioned<Vec<u8>>> {
        let payload = asymmetric_payload(keyid, version, padding, "plaintext", plaintext);
        versioned_bytes(
            &self.call(Action::AsymmetricEncrypt, payload).await?,
            "ciphertext",
        )
    }

    /// Decrypts what [`Client::asymmetric_encrypt`] or [`Client::export_data_key`] produced
    /// (`AsymmetricDecrypt`). On ehsm every version of the key is tried, the primary first.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn asymmetric_decrypt(
        &self,
        keyid: &str,
        padding: PaddingMode,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>> {
        let payload = asymmetric_payload(keyid, None, padding, "ciphertext", ciphertext);
        self.call(Action::AsymmetricDecrypt, payload)
            .await?
            .bytes("plaintext")
    }

    /// As [`Client::asymmetric_decrypt`], with the given version of the key only (`None`: every
    /// version, the primary first), and the plaintext comes with the version that opened it
    /// (`AsymmetricDecrypt` with `keyversion`, an ehsm extension). With RSA PKCS#1 v1.5
    /// padding, pass the version: the key of another version passes that padding's check
    /// about once in 2^16 tries, and its garbage would be returned as the plaintext.
    ///
    /// # Errors
    ///
    /// As [`Client::sign_versioned`].
    pub async fn asymmetric_decrypt_versioned(
        &self,
        keyid: &str,
        version: Option<u32>,
        padding: PaddingMode,
        ciphertext: &[u8],
    ) -> Result<Versioned<Vec<u8>>> {
        let payload = asymmetric_payload(keyid, version, padding, "ciphertext", ciphertext);
        versioned_bytes(
            &self.call(Action::AsymmetricDecrypt, payload).await?,
            "plaintext",
        )
    }

    /// The public key of an RSA, EC or SM2 key as PEM text: `RSA PUBLIC KEY` (PKCS#1) for RSA,
    /// `PUBLIC KEY` (SPKI) otherwise (`GetPublicKey`). On ehsm, that of the primary version.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn get_public_key(&self, keyid: &str) -> Result<String> {
        self.call(Action::GetPublicKey, json!({"keyid": keyid}))
            .await?
            .string("pubkey")
    }

    /// As [`Client::get_public_key`], of the given version of the key (`None`: the primary
    /// one), with that version (`GetPublicKey` with `keyversion`, an ehsm extension). Every
    /// rotation of an asymmetric key makes a new key pair, so a verifier needs the public key
    /// of the version that signed.
    ///
    /// # Errors
    ///
    /// As [`Client::sign_versioned`].
    pub async fn get_public_key_versioned(
        &self,
        keyid: &str,
        version: Option<u32>,
    ) -> Result<Versioned<String>> {
        let payload = with_version(json!({"keyid": keyid}), version);
        let reply = self.call(Action::GetPublicKey, payload).await?;
        Ok(Versioned {
            value: reply.string("pubkey")?,
            version: reply.u32("keyversion")?,
        })
    }

    /// Bring-your-own-key, step 1: a fresh RSA wrapping key of `wrapping_spec` (an RSA spec) for
    /// the external key `keyid`, and the token that goes with it (`GetParametersForImport`).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn get_parameters_for_import(
        &self,
        keyid: &str,
        wrapping_spec: KeySpec,
    ) -> Result<ImportParameters> {
        let payload = json!({"keyid": keyid, "keyspec": wrapping_spec.as_str()});
        let reply = self.call(Action::GetParametersForImport, payload).await?;
        Ok(ImportParameters {
            pubkey_pem: reply.string("pubkey")?,
            import_token: reply.string("importToken")?,
        })
    }

    /// Bring-your-own-key, step 2: imports the raw key, encrypted to the wrapping key with
    /// `padding` ([`PaddingMode::RsaPkcs1`] or [`PaddingMode::RsaPkcs1Oaep`], SHA-256)
    /// (`ImportKeyMaterial`).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`]. A code-200 answer whose `result` is not `true` is a
    /// [`Error::Decode`].
    pub async fn import_key_material(
        &self,
        keyid: &str,
        padding: PaddingMode,
        wrapped_material: &[u8],
        import_token: &str,
    ) -> Result<()> {
        let payload = json!({
            "keyid": keyid,
            "padding_mode": padding.as_str(),
            "key_material": b64(wrapped_material),
            "importToken": import_token,
        });
        match self
            .call(Action::ImportKeyMaterial, payload)
            .await?
            .bool("result")?
        {
            true => Ok(()),
            false => Err(Error::Decode(
                "ImportKeyMaterial: code 200 but result.result is false".into(),
            )),
        }
    }

    /// All of the caller's keys, by keyid (`ListKey`, a page of up to 1000 at a time with
    /// `limit` and `marker`; a server that does not page, such as upstream's, answers all at
    /// once, at most 10 000).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`]. A key spec this SDK does not know, or a `nextMarker` that
    /// does not move forward, is a [`Error::Decode`].
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut keys = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut payload = json!({ "limit": LIST_PAGE });
            if let Some(m) = &marker {
                payload["marker"] = m.as_str().into();
            }
            let page: KeyList = self.call(Action::ListKey, payload).await?.parse()?;
            for k in page.list {
                keys.push(key_info(k)?);
            }
            match page.next_marker {
                None => return Ok(keys),
                // Pages go forward by keyid: anything else would never end.
                Some(next) if marker.as_ref().is_some_and(|m| next <= *m) => {
                    return Err(Error::Decode(format!(
                        "ListKey: nextMarker {next:?} does not follow the marker sent"
                    )));
                }
                Some(next) => marker = Some(next),
            }
        }
    }

    /// Deletes a key (`DeleteKey`). Succeeds even if there is no such key, as upstream.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn delete_key(&self, keyid: &str) -> Result<()> {
        self.call(Action::DeleteKey, json!({"keyid": keyid}))
            .await
            .map(drop)
    }

    /// Deletes all the caller's keys (`DeleteAllKey`).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn delete_all_keys(&self) -> Result<()> {
        self.call(Action::DeleteAllKey, json!({})).await.map(drop)
    }

    /// Enables a key (`EnableKey`); idempotent.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn enable_key(&self, keyid: &str) -> Result<()> {
        self.call(Action::EnableKey, json!({"keyid": keyid}))
            .await
            .map(drop)
    }

    /// Disables a key (`DisableKey`); idempotent. A disabled key refuses every cryptographic use.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn disable_key(&self, keyid: &str) -> Result<()> {
        self.call(Action::DisableKey, json!({"keyid": keyid}))
            .await
            .map(drop)
    }

    /// HMAC-SHA256 of `message` under an `EH_HMAC` key (`GenerateMac`, an ehsm extension that
    /// eHSM-KMS does not have).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn generate_mac(&self, keyid: &str, message: &[u8]) -> Result<Vec<u8>> {
        let payload = json!({"keyid": keyid, "message": b64(message)});
        self.call(Action::GenerateMac, payload).await?.bytes("mac")
    }

    /// Checks an HMAC-SHA256 tag made by [`Client::generate_mac`] (`VerifyMac`, an ehsm
    /// extension).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn verify_mac(&self, keyid: &str, message: &[u8], mac: &[u8]) -> Result<bool> {
        let payload = json!({"keyid": keyid, "message": b64(message), "mac": b64(mac)});
        self.call(Action::VerifyMac, payload).await?.bool("result")
    }
}

fn sign_payload(
    keyid: &str,
    version: Option<u32>,
    digest: DigestMode,
    padding: PaddingMode,
    message_type: MessageType,
    message: &[u8],
) -> Value {
    let payload = json!({
        "keyid": keyid,
        "message": b64(message),
        "message_type": message_type.as_str(),
        "digest_mode": digest.as_str(),
        "padding_mode": padding.as_str(),
    });
    with_version(payload, version)
}

/// AsymmetricEncrypt's and AsymmetricDecrypt's payload; `field` is `plaintext` or `ciphertext`.
fn asymmetric_payload(
    keyid: &str,
    version: Option<u32>,
    padding: PaddingMode,
    field: &str,
    data: &[u8],
) -> Value {
    let payload = json!({"keyid": keyid, field: b64(data), "padding_mode": padding.as_str()});
    with_version(payload, version)
}
