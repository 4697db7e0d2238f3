//! Quote policies (compatibility spec §9.2): an app's (MRENCLAVE, MRSIGNER) pairs, named by a
//! policy id, that VerifyQuote compares a quote's measurements with.
//!
//! A policy belongs to one app: every lookup is by (appid, policy id), so another app's id finds
//! nothing, exactly as an unknown id.

use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::error::{Error, Result};
use crate::store::{Store, key_error, no_nul};

/// One quote policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotePolicyRecord {
    /// The owning application.
    pub appid: String,
    /// The policy id (a UUID upstream), unique per app.
    pub policy_id: String,
    /// The MRENCLAVE a quote must carry, as the service stores it (lower-case hex).
    pub mr_enclave: String,
    /// The MRSIGNER a quote must carry, as the service stores it (lower-case hex).
    pub mr_signer: String,
    /// Upload time, ms since the Unix epoch.
    pub create_time: i64,
}

fn check(p: &QuotePolicyRecord) -> Result<()> {
    no_nul(&p.appid, "appid contains a NUL character")?;
    no_nul(&p.policy_id, "policy id contains a NUL character")?;
    no_nul(&p.mr_enclave, "mr_enclave contains a NUL character")?;
    no_nul(&p.mr_signer, "mr_signer contains a NUL character")
}

fn from_row(row: &AnyRow) -> Result<QuotePolicyRecord> {
    Ok(QuotePolicyRecord {
        appid: row.try_get("appid")?,
        policy_id: row.try_get("policy_id")?,
        mr_enclave: row.try_get("mr_enclave")?,
        mr_signer: row.try_get("mr_signer")?,
        create_time: row.try_get("create_time")?,
    })
}

impl Store {
    /// Stores a new policy. [`Error::Conflict`], writing nothing, if the app already has a policy
    /// with this id; [`Error::UnknownApp`] if the app does not exist.
    pub async fn insert_quote_policy(&self, policy: &QuotePolicyRecord) -> Result<()> {
        check(policy)?;
        let inserted = sqlx::query(
            "INSERT INTO quote_policies (appid, policy_id, mr_enclave, mr_signer, create_time) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&policy.appid)
        .bind(&policy.policy_id)
        .bind(&policy.mr_enclave)
        .bind(&policy.mr_signer)
        .bind(policy.create_time)
        .execute(&self.pool)
        .await
        .map_err(key_error)?;
        if inserted.rows_affected() == 0 {
            return Err(Error::Conflict);
        }
        Ok(())
    }

    /// The app's policy with this id; `None` for an unknown id and for another app's policy.
    pub async fn get_quote_policy(
        &self,
        appid: &str,
        policy_id: &str,
    ) -> Result<Option<QuotePolicyRecord>> {
        no_nul(appid, "appid contains a NUL character")?;
        no_nul(policy_id, "policy id contains a NUL character")?;
        let row = sqlx::query(
            "SELECT appid, policy_id, mr_enclave, mr_signer, create_time FROM quote_policies \
             WHERE appid = $1 AND policy_id = $2",
        )
        .bind(appid)
        .bind(policy_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }
}
