//! Key lifecycle, ehsm extensions that eHSM-KMS does not have: versions and rotation, a key's
//! metadata, ReEncrypt, and deletion after a waiting period.
//!
//! A rotation adds a version to a key and makes it the primary one, which encrypts and signs
//! from then on. No version is ever removed, so what an older version made still decrypts and
//! verifies under the same keyid. Every `keyid` argument here, as everywhere in the SDK, may be
//! an alias name (`alias/NAME`, see [`Client::create_alias`]).

use ehsm_proto::Action;
use ehsm_proto::spec::{KeySpec, KeyUsage, Origin};
use serde_json::json;

use crate::client::{Client, b64};
use crate::error::Result;
use crate::keys::{wire_name, with_aad, with_bytes};

/// What [`Client::rotate_key`] made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotatedKey {
    /// The key's keyid (also when it was named by an alias).
    pub keyid: String,
    /// The new version, now the primary one.
    pub version: u32,
}

/// A key's versions, from [`Client::list_key_versions`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyVersions {
    /// The key's keyid (also when it was named by an alias).
    pub keyid: String,
    /// The version that encrypts and signs now.
    pub primary_version: u32,
    /// Every version, oldest first.
    pub versions: Vec<KeyVersionInfo>,
}

/// One version of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct KeyVersionInfo {
    /// The version number: 1 for the key as created, then one more per rotation.
    #[serde(rename = "keyversion")]
    pub version: u32,
    /// When the version was made, in milliseconds since the Unix epoch.
    #[serde(rename = "creationDate")]
    pub creation_date: i64,
}

/// A key's metadata, from [`Client::describe_key`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDescription {
    /// The key id.
    pub keyid: String,
    /// The key's spec.
    pub keyspec: KeySpec,
    /// Whether ehsm made the key material or the client imported it.
    pub origin: Origin,
    /// What the key is for.
    pub keyusage: KeyUsage,
    /// 1 if the key is enabled, 0 if disabled (as [`KeyInfo`](crate::KeyInfo)); see
    /// [`KeyDescription::is_enabled`].
    pub key_state: i64,
    /// Creation time, in milliseconds since the Unix epoch.
    pub creation_date: i64,
    /// Expiry time, in milliseconds since the Unix epoch.
    pub expire_time: i64,
    /// The version that encrypts and signs now.
    pub primary_version: u32,
    /// The app's aliases of this key, in name order.
    pub aliases: Vec<String>,
    /// Automatic rotation.
    pub rotation: RotationPolicy,
    /// When a scheduled deletion will happen (ms since the epoch); `None` if none is scheduled.
    pub deletion_date: Option<i64>,
    /// The description given at creation, if any.
    pub description: Option<String>,
}

impl KeyDescription {
    /// Whether the key may be used (`key_state == 1`). A key pending deletion is disabled.
    pub fn is_enabled(&self) -> bool {
        self.key_state == 1
    }
}

/// A key's automatic rotation, part of [`KeyDescription`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationPolicy {
    /// Whether the server rotates the key on its own.
    #[serde(rename = "enable")]
    pub enabled: bool,
    /// The interval in days; kept when rotation is turned off, so that turning it on again
    /// reuses it.
    #[serde(rename = "rotationInterval", default)]
    pub interval_days: Option<u32>,
    /// When the next automatic rotation is due (ms since the epoch); `None` while it is off.
    #[serde(default)]
    pub next_rotation_date: Option<i64>,
}

/// What [`Client::reencrypt`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReEncrypted {
    /// The ciphertext under the destination key; decrypt it with that key and the destination
    /// aad.
    pub ciphertext: Vec<u8>,
    /// The destination key's keyid (also when it was named by an alias).
    pub keyid: String,
    /// The destination key's version that made the ciphertext: its primary one.
    pub version: u32,
}

/// DescribeKey's result as the wire spells it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDescription {
    keyid: String,
    keyspec: String,
    origin: String,
    keyusage: String,
    key_state: i64,
    creation_date: i64,
    expire_time: i64,
    primary_version: u32,
    #[serde(default)]
    aliases: Vec<String>,
    rotation: RotationPolicy,
    #[serde(default)]
    deletion_date: Option<i64>,
    #[serde(default)]
    description: Option<String>,
}

impl WireDescription {
    fn parse(self) -> Result<KeyDescription> {
        let (action, keyid) = (Action::DescribeKey, self.keyid.as_str());
        let keyspec = wire_name(action, keyid, "keyspec", &self.keyspec)?;
        let origin = wire_name(action, keyid, "origin", &self.origin)?;
        let keyusage = wire_name(action, keyid, "keyusage", &self.keyusage)?;
        Ok(KeyDescription {
            keyid: self.keyid,
            keyspec,
            origin,
            keyusage,
            key_state: self.key_state,
            creation_date: self.creation_date,
            expire_time: self.expire_time,
            primary_version: self.primary_version,
            aliases: self.aliases,
            rotation: self.rotation,
            deletion_date: self.deletion_date,
            description: self.description,
        })
    }
}

impl Client {
    /// Makes a new version of the key and makes it the primary one (`RotateKey`, an ehsm
    /// extension). Symmetric, HMAC and asymmetric keys rotate (an asymmetric key gets a new key
    /// pair, so a new public key); external keys do not, since their material is the client's.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error). A disabled, external or deletion-pending key,
    /// and one at the server's version quota, is an [`Error::Api`](crate::Error::Api) with
    /// code 400.
    pub async fn rotate_key(&self, keyid: &str) -> Result<RotatedKey> {
        let reply = self
            .call(Action::RotateKey, json!({"keyid": keyid}))
            .await?;
        Ok(RotatedKey {
            keyid: reply.string("keyid")?,
            version: reply.u32("keyversion")?,
        })
    }

    /// Turns automatic rotation of a symmetric or HMAC key on (the first rotation is due
    /// `interval_days` from now) or off (`UpdateRotationPolicy`, an ehsm extension).
    /// `interval_days` is 7 to 2560; turning rotation on without one reuses the key's interval, or
    /// 365 days if it never had one.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error). An interval out of range, or an asymmetric or
    /// external key, is an [`Error::Api`](crate::Error::Api) with code 400.
    pub async fn update_rotation_policy(
        &self,
        keyid: &str,
        enable: bool,
        interval_days: Option<u32>,
    ) -> Result<()> {
        let mut payload = json!({"keyid": keyid, "enable": enable});
        if let Some(days) = interval_days {
            payload["rotationInterval"] = days.into();
        }
        self.call(Action::UpdateRotationPolicy, payload)
            .await
            .map(drop)
    }

    /// The key's versions, oldest first, and which one is primary (`ListKeyVersions`, an ehsm
    /// extension).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error).
    pub async fn list_key_versions(&self, keyid: &str) -> Result<KeyVersions> {
        self.call(Action::ListKeyVersions, json!({"keyid": keyid}))
            .await?
            .parse()
    }

    /// The key's metadata: spec, state, versions, aliases, rotation, a scheduled deletion and its
    /// description (`DescribeKey`, an ehsm extension). Keys in any state are described, also one
    /// pending deletion.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error). A spec, origin or usage this SDK does not know
    /// is an [`Error::Decode`](crate::Error::Decode).
    pub async fn describe_key(&self, keyid: &str) -> Result<KeyDescription> {
        let wire: WireDescription = self
            .call(Action::DescribeKey, json!({"keyid": keyid}))
            .await?
            .parse()?;
        wire.parse()
    }

    /// Decrypts `ciphertext` under the symmetric key `keyid` (with `aad`) and encrypts the
    /// plaintext under the primary version of `destination_keyid` (with `destination_aad`), inside
    /// the server: the plaintext never leaves it (`ReEncrypt`, an ehsm extension). With the same
    /// key as source and destination, this moves a ciphertext to the key's newest version, as after
    /// a rotation.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error). A wrong key or aad is the answer a failed
    /// [`Client::decrypt`] gets.
    pub async fn reencrypt(
        &self,
        keyid: &str,
        ciphertext: &[u8],
        aad: Option<&[u8]>,
        destination_keyid: &str,
        destination_aad: Option<&[u8]>,
    ) -> Result<ReEncrypted> {
        let payload = json!({"keyid": keyid, "ciphertext": b64(ciphertext), "destinationkeyid": destination_keyid});
        let payload = with_bytes(with_aad(payload, aad), "destinationaad", destination_aad);
        let reply = self.call(Action::ReEncrypt, payload).await?;
        Ok(ReEncrypted {
            ciphertext: reply.bytes("ciphertext")?,
            keyid: reply.string("keyid")?,
            version: reply.u32("keyversion")?,
        })
    }

    /// Disables the key now and deletes it, with all its versions and aliases, after `pending_days`
    /// days (7 to 30; `None`: 30); returns when, in milliseconds since the epoch
    /// (`ScheduleKeyDeletion`, an ehsm extension). Until then [`Client::cancel_key_deletion`] keeps
    /// the key.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error). A key already pending deletion, one that
    /// encrypts secrets, and a window out of range are an [`Error::Api`](crate::Error::Api)
    /// with code 400.
    pub async fn schedule_key_deletion(
        &self,
        keyid: &str,
        pending_days: Option<u32>,
    ) -> Result<i64> {
        let mut payload = json!({"keyid": keyid});
        if let Some(days) = pending_days {
            payload["pendingWindowInDays"] = days.into();
        }
        self.call(Action::ScheduleKeyDeletion, payload)
            .await?
            .i64("deletionDate")
    }

    /// Cancels a key's scheduled deletion (`CancelKeyDeletion`, an ehsm extension). The key stays
    /// disabled, as in AWS KMS: [`Client::enable_key`] it to use it again.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error). A key that is not pending deletion is an
    /// [`Error::Api`](crate::Error::Api) with code 400.
    pub async fn cancel_key_deletion(&self, keyid: &str) -> Result<()> {
        self.call(Action::CancelKeyDeletion, json!({"keyid": keyid}))
            .await
            .map(drop)
    }
}
