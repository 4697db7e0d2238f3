//! Secrets (compatibility spec §10): named per app, each with numbered versions of ciphertext.
//!
//! Every change is one statement or one transaction, so that concurrent requests on any number
//! of nodes never lose a version or give two versions the same number: a new version takes its
//! number from the `UPDATE ... RETURNING` that increments the secret's counter, in the
//! transaction that inserts it, and the row lock (PostgreSQL) or write lock (SQLite) orders the
//! writers. Deleting a secret deletes its versions through the foreign key's cascade.

use std::fmt;

use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::error::{Error, Result};
use crate::guards;
use crate::store::{Store, no_nul};

/// A secret's metadata.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRecord {
    /// The owning application.
    pub appid: String,
    /// The secret's name, unique per app (also while deletion is pending).
    pub name: String,
    /// The CMK its values are encrypted under.
    pub keyid: String,
    /// The caller's description, if any.
    pub description: Option<String>,
    /// Creation time, ms since the Unix epoch.
    pub create_time: i64,
    /// The scheduled deletion, if one is pending.
    pub deletion: Option<Deletion>,
    /// The rotation interval as the client gave it (e.g. `"30d"`), if any.
    pub rotation_interval: Option<String>,
}

/// A pending deletion: asked for at `delete_time`, due at `planned_delete_time` (ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deletion {
    /// When DeleteSecret was called.
    pub delete_time: i64,
    /// When the deletion job removes the secret.
    pub planned_delete_time: i64,
}

/// Descriptions and names are the caller's data: `Debug` shows their lengths, not their text.
impl fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretRecord")
            .field("appid", &self.appid)
            .field("name_len", &self.name.len())
            .field("keyid", &self.keyid)
            .field(
                "description_len",
                &self.description.as_ref().map(String::len),
            )
            .field("create_time", &self.create_time)
            .field("deletion", &self.deletion)
            .field("rotation_interval", &self.rotation_interval)
            .finish()
    }
}

/// One stored value of a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretVersion {
    /// 1 for the first value, then one more per PutSecretValue.
    pub version_id: i64,
    /// The value as the core's ciphertext under the secret's CMK.
    pub ciphertext: Vec<u8>,
    /// When it was stored, ms since the Unix epoch.
    pub create_time: i64,
}

impl fmt::Debug for SecretVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretVersion")
            .field("version_id", &self.version_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .field("create_time", &self.create_time)
            .finish()
    }
}

const SELECT_SECRET: &str = "SELECT appid, name, keyid, description, create_time, delete_time, \
     planned_delete_time, rotation_interval FROM secrets";

fn check_secret(s: &SecretRecord) -> Result<()> {
    no_nul(&s.appid, "appid contains a NUL character")?;
    no_nul(&s.name, "secret name contains a NUL character")?;
    no_nul(&s.keyid, "keyid contains a NUL character")?;
    if let Some(d) = &s.description {
        no_nul(d, "description contains a NUL character")?;
    }
    if let Some(r) = &s.rotation_interval {
        no_nul(r, "rotation interval contains a NUL character")?;
    }
    Ok(())
}

fn ids(appid: &str, name: &str) -> Result<()> {
    no_nul(appid, "appid contains a NUL character")?;
    no_nul(name, "secret name contains a NUL character")
}

impl Store {
    /// Creates a secret with its first version (version 1) in one transaction. `false`, writing
    /// nothing, if the app already has a secret of this name (deleted or not). Also writing
    /// nothing: [`Error::UnknownApp`] if the app does not exist, [`Error::UnknownKey`] if the
    /// secret's key does not (a DeleteKey won the race since the caller looked it up), and
    /// [`Error::QuotaExceeded`] if the app holds `quota` secrets or more (`None`: no limit).
    /// The checks are exact under any concurrency, on any number of nodes (see `guards`).
    pub async fn insert_secret(
        &self,
        secret: &SecretRecord,
        ciphertext: &[u8],
        quota: Option<u64>,
    ) -> Result<bool> {
        check_secret(secret)?;
        let mut tx = self.pool.begin().await?;
        if !guards::lock_app(&mut tx, &secret.appid).await? {
            return Err(Error::UnknownApp);
        }
        let key: Option<String> =
            sqlx::query_scalar("SELECT keyid FROM cmks WHERE keyid = $1 AND appid = $2")
                .bind(&secret.keyid)
                .bind(&secret.appid)
                .fetch_optional(&mut *tx)
                .await?;
        if key.is_none() {
            return Err(Error::UnknownKey);
        }
        guards::check_quota(
            &mut tx,
            "SELECT COUNT(*) FROM secrets WHERE appid = $1",
            &secret.appid,
            quota,
        )
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO secrets (appid, name, keyid, description, create_time, delete_time, \
             planned_delete_time, rotation_interval, current_version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1) ON CONFLICT DO NOTHING",
        )
        .bind(&secret.appid)
        .bind(&secret.name)
        .bind(&secret.keyid)
        .bind(secret.description.as_deref())
        .bind(secret.create_time)
        .bind(secret.deletion.map(|d| d.delete_time))
        .bind(secret.deletion.map(|d| d.planned_delete_time))
        .bind(secret.rotation_interval.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(crate::store::key_error)?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO secret_versions (appid, name, version_id, ciphertext, create_time) \
             VALUES ($1, $2, 1, $3, $4)",
        )
        .bind(&secret.appid)
        .bind(&secret.name)
        .bind(ciphertext)
        .bind(secret.create_time)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The app's secret of this name, deleted or not.
    pub async fn get_secret(&self, appid: &str, name: &str) -> Result<Option<SecretRecord>> {
        ids(appid, name)?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_SECRET} WHERE appid = $1 AND name = $2"
        )))
        .bind(appid)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(secret_from_row).transpose()
    }

    /// The app's secrets (pending deletion included), by name in byte order, at most `limit`;
    /// only the one named `name` if given.
    pub async fn list_secrets(
        &self,
        appid: &str,
        name: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SecretRecord>> {
        no_nul(appid, "appid contains a NUL character")?;
        if let Some(name) = name {
            no_nul(name, "secret name contains a NUL character")?;
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_SECRET} WHERE appid = $1 AND ($2 IS NULL OR name = $2) ORDER BY name LIMIT $3"
        )))
        .bind(appid)
        .bind(name)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(secret_from_row).collect()
    }

    /// Replaces (or, with `None`, removes) the description of a secret that is not pending
    /// deletion; `false` if there is no such secret.
    pub async fn set_secret_description(
        &self,
        appid: &str,
        name: &str,
        description: Option<&str>,
    ) -> Result<bool> {
        ids(appid, name)?;
        if let Some(d) = description {
            no_nul(d, "description contains a NUL character")?;
        }
        let done = sqlx::query(
            "UPDATE secrets SET description = $1 \
             WHERE appid = $2 AND name = $3 AND delete_time IS NULL",
        )
        .bind(description)
        .bind(appid)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Adds the next version of a secret that is not pending deletion and returns its number;
    /// `None` if there is no such secret. Concurrent calls get distinct, consecutive numbers.
    pub async fn put_secret_version(
        &self,
        appid: &str,
        name: &str,
        ciphertext: &[u8],
        create_time: i64,
    ) -> Result<Option<i64>> {
        ids(appid, name)?;
        let mut tx = self.pool.begin().await?;
        let version: Option<i64> = sqlx::query_scalar(
            "UPDATE secrets SET current_version = current_version + 1 \
             WHERE appid = $1 AND name = $2 AND delete_time IS NULL RETURNING current_version",
        )
        .bind(appid)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(version) = version else {
            tx.rollback().await?;
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO secret_versions (appid, name, version_id, ciphertext, create_time) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(appid)
        .bind(name)
        .bind(version)
        .bind(ciphertext)
        .bind(create_time)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(version))
    }

    /// The (version id, create time) of every version of the secret, oldest first, at most
    /// `limit`.
    pub async fn list_secret_versions(
        &self,
        appid: &str,
        name: &str,
        limit: u32,
    ) -> Result<Vec<(i64, i64)>> {
        ids(appid, name)?;
        let rows = sqlx::query(
            "SELECT version_id, create_time FROM secret_versions \
             WHERE appid = $1 AND name = $2 ORDER BY version_id LIMIT $3",
        )
        .bind(appid)
        .bind(name)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("version_id")?, r.try_get("create_time")?)))
            .collect()
    }

    /// A version of the secret: `version_id`, or the newest when `None`.
    pub async fn get_secret_version(
        &self,
        appid: &str,
        name: &str,
        version_id: Option<i64>,
    ) -> Result<Option<SecretVersion>> {
        ids(appid, name)?;
        let row = sqlx::query(
            "SELECT version_id, ciphertext, create_time FROM secret_versions \
             WHERE appid = $1 AND name = $2 AND ($3 IS NULL OR version_id = $3) \
             ORDER BY version_id DESC LIMIT 1",
        )
        .bind(appid)
        .bind(name)
        .bind(version_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SecretVersion {
                version_id: r.try_get("version_id")?,
                ciphertext: r.try_get("ciphertext")?,
                create_time: r.try_get("create_time")?,
            })
        })
        .transpose()
    }

    /// Schedules (or reschedules) the deletion of a secret; `false` if there is no such secret.
    pub async fn schedule_secret_deletion(
        &self,
        appid: &str,
        name: &str,
        deletion: Deletion,
    ) -> Result<bool> {
        ids(appid, name)?;
        let done = sqlx::query(
            "UPDATE secrets SET delete_time = $1, planned_delete_time = $2 \
             WHERE appid = $3 AND name = $4",
        )
        .bind(deletion.delete_time)
        .bind(deletion.planned_delete_time)
        .bind(appid)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Cancels a scheduled deletion (idempotent); `false` if there is no such secret.
    pub async fn restore_secret(&self, appid: &str, name: &str) -> Result<bool> {
        ids(appid, name)?;
        let done = sqlx::query(
            "UPDATE secrets SET delete_time = NULL, planned_delete_time = NULL \
             WHERE appid = $1 AND name = $2",
        )
        .bind(appid)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a secret and all its versions now; `false` if there is no such secret.
    pub async fn delete_secret(&self, appid: &str, name: &str) -> Result<bool> {
        ids(appid, name)?;
        let done = sqlx::query("DELETE FROM secrets WHERE appid = $1 AND name = $2")
            .bind(appid)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes every secret (with its versions) whose deletion is due at `now` (ms), across all
    /// apps, in one statement; returns how many. Several nodes may run this at once: each
    /// secret is deleted by exactly one of them, and a RestoreSecret that commits first wins.
    pub async fn purge_due_secrets(&self, now: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM secrets WHERE planned_delete_time <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

fn secret_from_row(row: &AnyRow) -> Result<SecretRecord> {
    let delete_time: Option<i64> = row.try_get("delete_time")?;
    let planned: Option<i64> = row.try_get("planned_delete_time")?;
    let deletion = match (delete_time, planned) {
        (Some(delete_time), Some(planned_delete_time)) => Some(Deletion {
            delete_time,
            planned_delete_time,
        }),
        (None, None) => None,
        _ => return Err(Error::Corrupt("a secret has half a deletion schedule")),
    };
    Ok(SecretRecord {
        appid: row.try_get("appid")?,
        name: row.try_get("name")?,
        keyid: row.try_get("keyid")?,
        description: row.try_get("description")?,
        create_time: row.try_get("create_time")?,
        deletion,
        rotation_interval: row.try_get("rotation_interval")?,
    })
}
