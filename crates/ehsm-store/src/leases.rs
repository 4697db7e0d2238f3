//! Job leases: how the KMS nodes sharing a database agree that a background job runs on one of
//! them at a time.
//!
//! The jobs are safe to run on several nodes at once (each change is a conditional statement),
//! but running them everywhere multiplies the database work by the number of nodes, and the
//! re-wrap after a domain-key rotation rewrites every blob. A lease is a row `(name, holder,
//! expires_at)`: taken, renewed and taken over by a single conditional upsert, so two nodes
//! racing for it cannot both win, on either backend. Times come from the caller (each node's
//! clock), so a lease is only as exact as the nodes' clocks agree; the jobs tolerate overlap.

use crate::error::{Error, Result};
use crate::store::{Store, no_nul};

impl Store {
    /// Takes or renews the lease `name` for `holder` until `now_ms + ttl_ms`; `true` if
    /// `holder` holds it now. It succeeds when nobody holds the lease, when the lease expired
    /// (`expires_at <= now_ms`), or when `holder` already holds it (a renewal); it fails, changing
    /// nothing, while another holder's lease is live.
    ///
    /// One `INSERT ... ON CONFLICT DO UPDATE ... WHERE`: the check and the write are one
    /// statement, so of any number of nodes racing for a free or expired lease exactly one gets
    /// `true`, and no node can take a live lease from another.
    pub async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool> {
        no_nul(name, "lease name contains a NUL character")?;
        no_nul(holder, "lease holder contains a NUL character")?;
        if ttl_ms <= 0 {
            return Err(Error::InvalidInput("a lease needs a positive lifetime"));
        }
        let expires_at = now_ms.checked_add(ttl_ms).ok_or(Error::InvalidInput(
            "the lease would expire after the end of time",
        ))?;
        let done = sqlx::query(
            "INSERT INTO job_leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= $4",
        )
        .bind(name)
        .bind(holder)
        .bind(expires_at)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Gives the lease `name` up if `holder` holds it, so another node may take it at once
    /// instead of waiting for it to expire (a clean shutdown). Does nothing if another holder
    /// took it meanwhile: a node must never end a lease it no longer holds.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        no_nul(name, "lease name contains a NUL character")?;
        no_nul(holder, "lease holder contains a NUL character")?;
        sqlx::query("DELETE FROM job_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
