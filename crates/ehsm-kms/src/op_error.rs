//! Why an operation shared by the front ends refused: the eHSM actions and the AWS KMS API
//! call the same key lookups and key operations, and each front end words the refusal its own
//! way, in one place (`reply.rs` for eHSM, `aws::ops` for AWS), by matching on this enum.

/// A refusal of a shared operation (a key lookup, a key's creation or state change, an alias
/// change), or a failure of what it called.
#[derive(Debug)]
pub(crate) enum OpError {
    /// The app has no key of that id: none exists, it is another app's, or it is internal.
    UnknownKey,
    /// The app has no alias of that name (another app's aliases are invisible).
    UnknownAlias(String),
    /// The key is disabled.
    Disabled,
    /// The key is past its expiry time.
    Expired,
    /// The key is scheduled for deletion at this time (ms since the epoch).
    PendingDeletion(i64),
    /// EnableKey of a key pending deletion: CancelKeyDeletion comes first.
    EnablePendingDeletion,
    /// CreateAlias of a name the app already uses.
    AliasExists(String),
    /// An alias's target named by another alias: resolution is one step, so no chain exists.
    AliasOfAlias,
    /// UpdateAlias to a key of another kind than the one `alias` names now (`spec`, `usage`).
    AliasKind {
        alias: String,
        spec: ehsm_core::spec::KeySpec,
        usage: ehsm_core::spec::KeyUsage,
    },
    /// An alias under the prefix AWS KMS keeps for its own aliases.
    ReservedAlias,
    /// A per-app quota is full: the app already has `count`, the server allows `limit`.
    QuotaExceeded {
        quota: Quota,
        count: u64,
        limit: u64,
    },
    /// The core refused or failed.
    Core(ehsm_core::Error),
    /// The store failed.
    Store(ehsm_store::Error),
    /// A stored record that cannot be right (a server fault, never the client's).
    Corrupt(&'static str),
}

/// The per-app quotas a shared operation can meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Quota {
    Keys,
    Aliases,
}

impl From<ehsm_core::Error> for OpError {
    fn from(e: ehsm_core::Error) -> Self {
        Self::Core(e)
    }
}

impl From<ehsm_store::Error> for OpError {
    fn from(e: ehsm_store::Error) -> Self {
        Self::Store(e)
    }
}

impl OpError {
    /// A store write's error, with a full quota (the store's `QuotaExceeded`) as the refusal
    /// it is; `limit` is the quota the write was made under.
    pub(crate) fn from_quota(e: ehsm_store::Error, quota: Quota, limit: Option<u64>) -> Self {
        match (e, limit) {
            (ehsm_store::Error::QuotaExceeded { count }, Some(limit)) => Self::QuotaExceeded {
                quota,
                count,
                limit,
            },
            (e, _) => Self::Store(e),
        }
    }
}
