//! Key lifecycle: versions and rotation, scheduled deletion, aliases.
//!
//! Every write here is one transaction that names the key's app in its conditions, so an app
//! can only ever change its own keys and aliases, and that notifies the other nodes (on
//! PostgreSQL) when it commits, as every key change does.
//!
//! Concurrency, on any number of nodes:
//! - A new version is a compare-and-set on the key's primary version: of two writers that read
//!   version n, exactly one makes n + 1 and the other is told it lost (and tries again from
//!   the new primary), so numbers are never lost or given twice.
//! - Alias writes take the app's lock (`guards::lock_app`), so the per-app alias quota and the
//!   uniqueness check hold exactly.
//! - A due deletion deletes only a key whose deletion is still scheduled and due, in the
//!   statement that deletes it: a CancelKeyDeletion that commits first wins.

use sqlx::Row as _;

use crate::error::{Error, Result};
use crate::guards;
use crate::invalidate::Invalidation;
use crate::records::{CmkRecord, CmkVersion};
use crate::store::{Store, cmks_from_rows, insert_version, no_nul, select_cmks};

/// One alias of an app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AliasRecord {
    /// The name, `alias/...`.
    pub alias: String,
    /// The key it names.
    pub keyid: String,
    /// When it was made, ms since the Unix epoch.
    pub created_at: i64,
}

impl Store {
    // ---------------------------------------------------------------------------------------
    // Versions and rotation

    /// Adds `version` to the key as its new primary version, only if the key is the app's,
    /// enabled, not scheduled for deletion, and its primary version is still
    /// `version.version - 1`; `false` otherwise (nothing written: the caller reads the key
    /// again and decides). `next_rotation`: the rotation job's new due time (kept only while
    /// automatic rotation is on); `None` leaves the schedule as it is (RotateKey: an
    /// on-demand rotation does not move the automatic one, as in AWS KMS).
    pub async fn add_cmk_version(
        &self,
        appid: &str,
        keyid: &str,
        version: &CmkVersion,
        next_rotation: Option<i64>,
    ) -> Result<bool> {
        no_nul(appid, "appid contains a NUL character")?;
        no_nul(keyid, "keyid contains a NUL character")?;
        let Some(previous) = version.version.checked_sub(1).filter(|p| *p >= 1) else {
            return Err(Error::InvalidInput(
                "a new version follows version 1 or later",
            ));
        };
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE cmks SET primary_version = $1, next_rotation = \
             CASE WHEN next_rotation IS NULL THEN NULL ELSE COALESCE($2, next_rotation) END \
             WHERE appid = $3 AND keyid = $4 AND primary_version = $5 AND state = 1 \
             AND deletion_date IS NULL",
        )
        .bind(i64::from(version.version))
        .bind(next_rotation)
        .bind(appid)
        .bind(keyid)
        .bind(i64::from(previous))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_version(&mut tx, keyid, version).await?;
        self.commit_key_change(tx, 1, keyid).await
    }

    /// Sets a key's automatic rotation: the interval (`None` keeps the stored one) and when it
    /// is next due (`None`: rotation off). `false` if the app has no such key.
    pub async fn set_rotation(
        &self,
        appid: &str,
        keyid: &str,
        interval_days: Option<u32>,
        next_rotation: Option<i64>,
    ) -> Result<bool> {
        no_nul(appid, "appid contains a NUL character")?;
        no_nul(keyid, "keyid contains a NUL character")?;
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE cmks SET rotation_interval_days = COALESCE($1, rotation_interval_days), \
             next_rotation = $2 WHERE appid = $3 AND keyid = $4",
        )
        .bind(interval_days.map(i64::from))
        .bind(next_rotation)
        .bind(appid)
        .bind(keyid)
        .execute(&mut *tx)
        .await?;
        self.commit_key_change(tx, done.rows_affected(), keyid)
            .await
    }

    /// Keys whose automatic rotation is due at `now` (ms), enabled, unexpired and not scheduled
    /// for deletion: the `limit` most overdue, in keyid order.
    pub async fn due_rotations(&self, now: i64, limit: u32) -> Result<Vec<CmkRecord>> {
        let rows = sqlx::query(select_cmks!(
            "next_rotation <= $1 AND state = 1 AND deletion_date IS NULL \
             AND expire_time >= $1 ORDER BY next_rotation, keyid LIMIT $2"
        ))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        cmks_from_rows(&rows)
    }

    // ---------------------------------------------------------------------------------------
    // Scheduled deletion

    /// Schedules the deletion of a listed key of this app at `deletion_date` (ms) and disables
    /// it; `false` if the app has no such key or its deletion is already scheduled.
    /// [`Error::KeyInUse`], changing nothing, if a secret of the app is encrypted under it
    /// (the deletion would make it unreadable; checked under the app's lock, as DeleteKey).
    pub async fn schedule_cmk_deletion(
        &self,
        appid: &str,
        keyid: &str,
        deletion_date: i64,
    ) -> Result<bool> {
        no_nul(keyid, "keyid contains a NUL character")?;
        let mut tx = self.pool.begin().await?;
        if !guards::lock_app(&mut tx, appid).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Err(e) = guards::check_unused(&mut tx, appid, Some(keyid)).await {
            tx.rollback().await?;
            return Err(e);
        }
        let done = sqlx::query(
            "UPDATE cmks SET deletion_date = $1, state = 0 \
             WHERE appid = $2 AND keyid = $3 AND listed = 1 AND deletion_date IS NULL",
        )
        .bind(deletion_date)
        .bind(appid)
        .bind(keyid)
        .execute(&mut *tx)
        .await?;
        self.commit_key_change(tx, done.rows_affected(), keyid)
            .await
    }

    /// Cancels a key's scheduled deletion; the key stays disabled, as in AWS KMS (enable it to
    /// use it again). `false` if the app has no such key or no deletion is scheduled.
    pub async fn cancel_cmk_deletion(&self, appid: &str, keyid: &str) -> Result<bool> {
        no_nul(appid, "appid contains a NUL character")?;
        no_nul(keyid, "keyid contains a NUL character")?;
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE cmks SET deletion_date = NULL, state = 0 \
             WHERE appid = $1 AND keyid = $2 AND deletion_date IS NOT NULL",
        )
        .bind(appid)
        .bind(keyid)
        .execute(&mut *tx)
        .await?;
        self.commit_key_change(tx, done.rows_affected(), keyid)
            .await
    }

    /// The (appid, keyid) of keys whose scheduled deletion is due at `now` (ms), at most
    /// `limit`.
    pub async fn due_deletions(&self, now: i64, limit: u32) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT appid, keyid FROM cmks WHERE deletion_date <= $1 \
             ORDER BY deletion_date, keyid LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("appid")?, r.try_get("keyid")?)))
            .collect()
    }

    /// Deletes a key whose scheduled deletion is due at `now` (ms), with its versions and
    /// aliases; `false` if it is not (any more). [`Error::KeyInUse`] as
    /// [`Store::delete_cmk`].
    pub async fn delete_due_cmk(&self, appid: &str, keyid: &str, now: i64) -> Result<bool> {
        self.delete_cmk_if(appid, keyid, Some(now)).await
    }

    // ---------------------------------------------------------------------------------------
    // Aliases

    /// Creates `alias` for a listed key of the app, unless the app already has `quota` aliases
    /// or more ([`Error::QuotaExceeded`]; `None`: no limit). [`Error::Conflict`] if the app
    /// has an alias of that name, [`Error::UnknownKey`] if the key is not one of its listed
    /// keys; nothing is written then.
    pub async fn create_alias(
        &self,
        appid: &str,
        alias: &str,
        keyid: &str,
        now: i64,
        quota: Option<u64>,
    ) -> Result<()> {
        no_nul(alias, "alias contains a NUL character")?;
        no_nul(keyid, "keyid contains a NUL character")?;
        let mut tx = self.pool.begin().await?;
        let outcome = async {
            if !guards::lock_app(&mut tx, appid).await? {
                return Err(Error::UnknownApp);
            }
            guards::check_quota(
                &mut tx,
                "SELECT COUNT(*) FROM aliases WHERE appid = $1",
                appid,
                quota,
            )
            .await?;
            if alias_target(&mut tx, appid, alias).await?.is_some() {
                return Err(Error::Conflict);
            }
            let done = sqlx::query(
                "INSERT INTO aliases (appid, alias, keyid, created_at) \
                 SELECT appid, $1, keyid, $2 FROM cmks \
                 WHERE appid = $3 AND keyid = $4 AND listed = 1",
            )
            .bind(alias)
            .bind(now)
            .bind(appid)
            .bind(keyid)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(Error::UnknownKey);
            }
            Ok(())
        }
        .await;
        self.commit_alias_change(tx, outcome, appid, alias).await
    }

    /// Points the app's `alias` at another of its listed keys; `false` if the app has no such
    /// alias, [`Error::UnknownKey`] if the key is not one of its listed keys (nothing changes
    /// then).
    pub async fn update_alias(&self, appid: &str, alias: &str, keyid: &str) -> Result<bool> {
        no_nul(alias, "alias contains a NUL character")?;
        no_nul(keyid, "keyid contains a NUL character")?;
        let mut tx = self.pool.begin().await?;
        let outcome = async {
            if !guards::lock_app(&mut tx, appid).await? {
                return Ok(false);
            }
            if alias_target(&mut tx, appid, alias).await?.is_none() {
                return Ok(false);
            }
            let done = sqlx::query(
                "UPDATE aliases SET keyid = $1 WHERE appid = $2 AND alias = $3 AND EXISTS \
                 (SELECT 1 FROM cmks WHERE appid = $2 AND keyid = $1 AND listed = 1)",
            )
            .bind(keyid)
            .bind(appid)
            .bind(alias)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(Error::UnknownKey);
            }
            Ok(true)
        }
        .await;
        self.commit_alias_change(tx, outcome, appid, alias).await
    }

    /// Deletes the app's `alias`; `false` if it has none of that name. The key stays.
    pub async fn delete_alias(&self, appid: &str, alias: &str) -> Result<bool> {
        no_nul(appid, "appid contains a NUL character")?;
        no_nul(alias, "alias contains a NUL character")?;
        let mut tx = self.pool.begin().await?;
        let outcome = sqlx::query("DELETE FROM aliases WHERE appid = $1 AND alias = $2")
            .bind(appid)
            .bind(alias)
            .execute(&mut *tx)
            .await
            .map(|done| done.rows_affected() > 0)
            .map_err(Error::from);
        self.commit_alias_change(tx, outcome, appid, alias).await
    }

    /// The keyid the app's `alias` names, if it has that alias.
    pub async fn get_alias(&self, appid: &str, alias: &str) -> Result<Option<String>> {
        no_nul(appid, "appid contains a NUL character")?;
        no_nul(alias, "alias contains a NUL character")?;
        let mut conn = self.pool.acquire().await?;
        alias_target(&mut conn, appid, alias).await
    }

    /// The app's aliases in name order (byte order on both backends), all of them or those of
    /// one key.
    pub async fn list_aliases(&self, appid: &str, keyid: Option<&str>) -> Result<Vec<AliasRecord>> {
        no_nul(appid, "appid contains a NUL character")?;
        if let Some(keyid) = keyid {
            no_nul(keyid, "keyid contains a NUL character")?;
        }
        let rows = sqlx::query(
            "SELECT alias, keyid, created_at FROM aliases \
             WHERE appid = $1 AND ($2 IS NULL OR keyid = $2) ORDER BY alias",
        )
        .bind(appid)
        .bind(keyid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AliasRecord {
                    alias: r.try_get("alias")?,
                    keyid: r.try_get("keyid")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Commits an alias write that succeeded with a change (`Ok(true)` or `Ok(())`),
    /// notifying the other nodes; rolls back anything else and returns it.
    async fn commit_alias_change<T: AliasOutcome>(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        outcome: Result<T>,
        appid: &str,
        alias: &str,
    ) -> Result<T> {
        match outcome {
            Ok(done) if done.changed() => {
                let what = Invalidation::Alias {
                    appid: appid.to_owned(),
                    alias: alias.to_owned(),
                };
                self.notify(&mut tx, &what).await?;
                tx.commit().await?;
                Ok(done)
            }
            other => {
                tx.rollback().await?;
                other
            }
        }
    }
}

/// Whether an alias write's result means something changed.
trait AliasOutcome {
    fn changed(&self) -> bool;
}

impl AliasOutcome for () {
    fn changed(&self) -> bool {
        true
    }
}

impl AliasOutcome for bool {
    fn changed(&self) -> bool {
        *self
    }
}

/// The keyid an alias of the app names, read on `conn` (inside the caller's transaction, if
/// it has one).
async fn alias_target(
    conn: &mut sqlx::AnyConnection,
    appid: &str,
    alias: &str,
) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT keyid FROM aliases WHERE appid = $1 AND alias = $2")
            .bind(appid)
            .bind(alias)
            .fetch_optional(&mut *conn)
            .await?,
    )
}
