//! The secrets manager actions of spec §10.
//!
//! A secret is a named, versioned text value that the server keeps encrypted under one of the
//! app's keys. Names, values and descriptions are text; the server returns them byte for byte.
//! Where the server answers "nothing" with an empty result (DescribeSecret of a missing secret,
//! GetSecretValue of an unknown version), these methods return `None`.

use core::fmt;

use ehsm_proto::Action;
use serde_json::{Map, Value, json};

use crate::client::Client;
use crate::error::Result;

/// The optional settings of [`Client::create_secret`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretOptions {
    /// The app's own symmetric key (usage `EH_KEYUSAGE_ENCRYPT_DECRYPT`) to encrypt the values
    /// under; `None` uses the app's default secret key, which the server keeps for each app.
    pub encryption_keyid: Option<String>,
    /// A description, up to 4096 characters.
    pub description: Option<String>,
    /// How often the secret should be rotated: 1 to 4 digits and a unit `d`, `h`, `m` or `s`
    /// (`"30d"`), between 6 and 8760 hours. Recorded and reported, never acted on by the server.
    pub rotation_interval: Option<String>,
}

/// One of the app's secrets, from [`Client::list_secrets`] and [`Client::describe_secret`].
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretInfo {
    /// The secret's name.
    #[serde(rename = "secretName")]
    pub name: String,
    /// Its description, if it has one.
    #[serde(default)]
    pub description: Option<String>,
    /// Creation time, in milliseconds since the Unix epoch.
    pub create_time: i64,
    /// When a scheduled deletion will happen (ms since the epoch); `None` if none is scheduled.
    #[serde(default)]
    pub planned_delete_time: Option<i64>,
    /// The rotation interval given at creation (DescribeSecret only).
    #[serde(default)]
    pub rotation_interval: Option<String>,
    /// When the next rotation is due (ms since the epoch; DescribeSecret only, with an interval).
    #[serde(default)]
    pub next_rotation_date: Option<i64>,
}

impl fmt::Debug for SecretInfo {
    // Names and descriptions may say more than their owner wants in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretInfo")
            .field("name", &"<redacted>")
            .field("create_time", &self.create_time)
            .field("planned_delete_time", &self.planned_delete_time)
            .field("rotation_interval", &self.rotation_interval)
            .field("next_rotation_date", &self.next_rotation_date)
            .finish_non_exhaustive()
    }
}

/// One version of a secret, from [`Client::list_secret_versions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretVersionInfo {
    /// The version number: 1 for the value given at creation, then one more per
    /// [`Client::put_secret_value`].
    pub version_id: i64,
    /// When the version was stored, in milliseconds since the Unix epoch.
    pub create_time: i64,
}

/// A secret's value, from [`Client::get_secret_value`]. `Debug` leaves out the value.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretValue {
    /// The secret's name.
    #[serde(rename = "secretName")]
    pub name: String,
    /// The value.
    #[serde(rename = "secretData")]
    pub value: String,
    /// Which version this is.
    pub version_id: i64,
    /// When this version was stored, in milliseconds since the Unix epoch.
    pub create_time: i64,
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretValue")
            .field("name", &"<redacted>")
            .field("value", &"<redacted>")
            .field("version_id", &self.version_id)
            .field("create_time", &self.create_time)
            .finish()
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretList {
    secret_list: Vec<SecretInfo>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionList {
    version_ids: Vec<SecretVersionInfo>,
}

/// Adds the string fields that are set to `payload`.
fn with_optional(mut payload: Map<String, Value>, fields: &[(&str, Option<&str>)]) -> Value {
    for (name, value) in fields {
        if let Some(value) = value {
            payload.insert((*name).into(), (*value).into());
        }
    }
    Value::Object(payload)
}

/// A result that is `{}` when there is nothing to return.
fn non_empty(result: &Value) -> bool {
    result.as_object().is_some_and(|m| !m.is_empty())
}

impl Client {
    /// Creates a secret with its first value, version 1 (`CreateSecret`). Names are unique per
    /// app, also while a secret waits for its scheduled deletion.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error).
    pub async fn create_secret(
        &self,
        name: &str,
        value: &str,
        options: &SecretOptions,
    ) -> Result<()> {
        let mut payload = Map::new();
        payload.insert("secretName".into(), name.into());
        payload.insert("secretData".into(), value.into());
        let payload = with_optional(
            payload,
            &[
                ("encryptionKeyId", options.encryption_keyid.as_deref()),
                ("description", options.description.as_deref()),
                ("rotationInterval", options.rotation_interval.as_deref()),
            ],
        );
        self.call(Action::CreateSecret, payload).await.map(drop)
    }

    /// Replaces a secret's description; `None` removes it (`UpdateSecretDesc`).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error).
    pub async fn update_secret_description(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<()> {
        let mut payload = Map::new();
        payload.insert("secretName".into(), name.into());
        let payload = with_optional(payload, &[("description", description)]);
        self.call(Action::UpdateSecretDesc, payload).await.map(drop)
    }

    /// Stores a new value as the secret's next version, which becomes the current one
    /// (`PutSecretValue`).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error).
    pub async fn put_secret_value(&self, name: &str, value: &str) -> Result<()> {
        let payload = json!({"secretName": name, "secretData": value});
        self.call(Action::PutSecretValue, payload).await.map(drop)
    }

    /// The versions of a secret, oldest first (`ListSecretVersionIds`). A missing secret, or one
    /// scheduled for deletion, has none.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error).
    pub async fn list_secret_versions(&self, name: &str) -> Result<Vec<SecretVersionInfo>> {
        let list: VersionList = self
            .call(Action::ListSecretVersionIds, json!({"secretName": name}))
            .await?
            .parse()?;
        Ok(list.version_ids)
    }

    /// The app's secrets, including those scheduled for deletion; with `name`, only that one
    /// (`ListSecrets`).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error).
    pub async fn list_secrets(&self, name: Option<&str>) -> Result<Vec<SecretInfo>> {
        let payload = with_optional(Map::new(), &[("secretName", name)]);
        let list: SecretList = self.call(Action::ListSecrets, payload).await?.parse()?;
        Ok(list.secret_list)
    }

    /// A secret's metadata, or `None` if the app has no secret of that name (`DescribeSecret`).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error).
    pub async fn describe_secret(&self, name: &str) -> Result<Option<SecretInfo>> {
        let reply = self
            .call(Action::DescribeSecret, json!({"secretName": name}))
            .await?;
        if !non_empty(reply.result()) {
            return Ok(None);
        }
        reply.parse().map(Some)
    }

    /// Schedules a secret's deletion in `recovery_days` days (1 to 365; `None` for the server's
    /// default, 30); until then [`Client::restore_secret`] cancels it (`DeleteSecret`).
    /// Scheduling again moves the date.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error).
    pub async fn delete_secret(&self, name: &str, recovery_days: Option<u32>) -> Result<()> {
        let mut payload = json!({"secretName": name});
        if let Some(days) = recovery_days {
            payload["recoveryPeriod"] = days.into();
        }
        self.call(Action::DeleteSecret, payload).await.map(drop)
    }

    /// Deletes a secret and all its versions now, for good (`DeleteSecret` with
    /// `forceDelete: "true"`).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error).
    pub async fn force_delete_secret(&self, name: &str) -> Result<()> {
        let payload = json!({"secretName": name, "forceDelete": "true"});
        self.call(Action::DeleteSecret, payload).await.map(drop)
    }

    /// A secret's value: the given version, or the current (newest) one (`GetSecretValue`).
    /// `None` if the secret has no such version.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error). A missing secret, or one scheduled for deletion, is an
    /// [`Error::Api`](crate::Error::Api).
    pub async fn get_secret_value(
        &self,
        name: &str,
        version_id: Option<i64>,
    ) -> Result<Option<SecretValue>> {
        let mut payload = json!({"secretName": name});
        if let Some(version) = version_id {
            payload["versionId"] = version.into();
        }
        let reply = self.call(Action::GetSecretValue, payload).await?;
        if !non_empty(reply.result()) {
            return Ok(None);
        }
        reply.parse().map(Some)
    }

    /// Cancels a secret's scheduled deletion (`RestoreSecret`); a secret that was not scheduled
    /// for deletion is left as it is.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error).
    pub async fn restore_secret(&self, name: &str) -> Result<()> {
        self.call(Action::RestoreSecret, json!({"secretName": name}))
            .await
            .map(drop)
    }
}
