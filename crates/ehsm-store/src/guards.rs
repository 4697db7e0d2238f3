//! Guarded writes: inserts under a per-app quota, and deletions of keys refused while they
//! encrypt secrets.
//!
//! # What holds, and why
//!
//! Each guarded write is one transaction whose first statement locks the app's row
//! ([`lock_app`]); the count it checks is a later statement of the same transaction, and the
//! write follows. Every write that can change such a count for an app (CreateKey, CreateSecret,
//! DeleteKey, DeleteAllKey) takes that lock first, so for one app they run one at a time, on
//! any number of nodes sharing the database, and each sees what the previous ones committed:
//!
//! - PostgreSQL, READ COMMITTED: the `UPDATE` takes the row's lock (`FOR NO KEY UPDATE`,
//!   which does not block the key-share locks of foreign-key checks) and holds it until commit;
//!   a waiting `UPDATE` proceeds once the holder commits. Each later statement takes a new
//!   snapshot, which includes every transaction that held the lock before.
//! - SQLite: the `UPDATE` takes the database's one write lock (waiting up to the busy timeout),
//!   so the transaction's reads start after every earlier writer committed.
//!
//! The guarantee is therefore exact: an app never holds more than its quota, however many
//! writers race, and a key is never deleted while a secret names it, nor a secret stored under
//! a key deleted meanwhile. A plain conditional insert (`INSERT ... SELECT ... WHERE (SELECT
//! count(*) ...) < $n`) would not give that on PostgreSQL: under READ COMMITTED concurrent
//! inserts do not see each other, so N writers could each add one past the quota.

use sqlx::AnyConnection;

use crate::error::{Error, Result};
use crate::records::CmkRecord;
use crate::store::{Store, check_cmk, insert_cmk_rows, no_nul};

/// Locks the app's row until the transaction ends (see the module's documentation); `false`
/// if there is no such app. The row is left as it was.
pub(crate) async fn lock_app(tx: &mut AnyConnection, appid: &str) -> Result<bool> {
    no_nul(appid, "appid contains a NUL character")?;
    let done = sqlx::query("UPDATE apps SET created_at = created_at WHERE appid = $1")
        .bind(appid)
        .execute(&mut *tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// [`Error::QuotaExceeded`] if `count` (a `SELECT COUNT(*)` with the appid as `$1`) is at
/// `quota` or more; `None` is no limit. Call after [`lock_app`].
pub(crate) async fn check_quota(
    tx: &mut AnyConnection,
    count: &'static str,
    appid: &str,
    quota: Option<u64>,
) -> Result<()> {
    let Some(quota) = quota else {
        return Ok(());
    };
    let held: i64 = sqlx::query_scalar(count)
        .bind(appid)
        .fetch_one(&mut *tx)
        .await?;
    let held = u64::try_from(held).unwrap_or(0);
    if held >= quota {
        return Err(Error::QuotaExceeded { count: held });
    }
    Ok(())
}

/// [`Error::KeyInUse`] if any secret of the app is encrypted under the key `keyid`, or, with
/// `None`, under any of the app's listed keys. Secrets pending deletion count: they can be
/// restored. Call after [`lock_app`].
pub(crate) async fn check_unused(
    tx: &mut AnyConnection,
    appid: &str,
    keyid: Option<&str>,
) -> Result<()> {
    let (keys, secrets): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(DISTINCT keyid), COUNT(*) FROM secrets WHERE appid = $1 AND keyid IN \
         (SELECT keyid FROM cmks WHERE appid = $1 AND listed = 1 AND ($2 IS NULL OR keyid = $2))",
    )
    .bind(appid)
    .bind(keyid)
    .fetch_one(&mut *tx)
    .await?;
    if secrets > 0 {
        return Err(Error::KeyInUse {
            keys: u64::try_from(keys).unwrap_or(0),
            secrets: u64::try_from(secrets).unwrap_or(0),
        });
    }
    Ok(())
}

impl Store {
    /// Inserts a key an app asked for (CreateKey) unless the app already holds `quota` listed
    /// keys or more ([`Error::QuotaExceeded`]; `None`: no limit). Otherwise as
    /// [`Store::insert_cmk`]: [`Error::Conflict`] if the keyid exists, [`Error::UnknownApp`] if
    /// the app does not. Exact under any concurrency (see the module's documentation). Only
    /// listed keys count: an app's internal keys (its default secret key) are the server's.
    pub async fn insert_cmk_within_quota(&self, key: &CmkRecord, quota: Option<u64>) -> Result<()> {
        check_cmk(key)?;
        let mut tx = self.pool.begin().await?;
        if !lock_app(&mut tx, &key.appid).await? {
            return Err(Error::UnknownApp);
        }
        check_quota(
            &mut tx,
            "SELECT COUNT(*) FROM cmks WHERE appid = $1 AND listed = 1",
            &key.appid,
            quota,
        )
        .await?;
        if !insert_cmk_rows(&mut tx, key).await? {
            tx.rollback().await?;
            return Err(Error::Conflict);
        }
        tx.commit().await?;
        Ok(())
    }
}
