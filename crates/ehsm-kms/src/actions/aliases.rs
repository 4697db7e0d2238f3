//! Aliases (ehsm extension): CreateAlias, UpdateAlias, DeleteAlias, ListAliases. An alias is a
//! per-app name for one of the app's keys; every `keyid` field takes one (`keys::resolve`).
//! All four are shared with the AWS KMS API (`create`, `update`, `delete`, `list`).

use std::sync::Arc;

use ehsm_store::AliasRecord;
use serde_json::{Value, json};

use crate::envelope::Authenticated;
use crate::keys::{self, Key, alias_cache_id};
use crate::op_error::{OpError, Quota};
use crate::params;
use crate::reply::{ApiResult, Reply};
use crate::state::{AppState, now_ms};
use crate::validate::{ALIAS_PREFIX, RESERVED_ALIAS_PREFIX};

pub(super) async fn create_alias(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    create(
        state,
        req.appid,
        params::string(p, "alias")?,
        params::string(p, "keyid")?,
    )
    .await?;
    Ok(Reply::successful(json!({})))
}

/// Makes `alias` (a valid name: the front end checked its format) name the app's listed key
/// `target`, a keyid (not an alias), in any state.
pub(crate) async fn create(
    state: &AppState,
    appid: &str,
    alias: &str,
    target: &str,
) -> Result<(), OpError> {
    not_reserved(alias)?;
    let key = target_key(state, appid, target).await?;
    let quota = state.quotas.aliases_per_app;
    match state
        .store
        .create_alias(appid, alias, &key.record.keyid, now_ms(), quota)
        .await
    {
        Ok(()) => {}
        Err(ehsm_store::Error::Conflict) => return Err(OpError::AliasExists(alias.to_owned())),
        Err(ehsm_store::Error::UnknownKey) => return Err(OpError::UnknownKey),
        Err(e) => return Err(OpError::from_quota(e, Quota::Aliases, quota)),
    }
    forget(state, appid, alias);
    Ok(())
}

pub(super) async fn update_alias(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    update(
        state,
        req.appid,
        params::string(p, "alias")?,
        params::string(p, "keyid")?,
    )
    .await?;
    Ok(Reply::successful(json!({})))
}

/// Points an alias at another key of the same kind (both symmetric ciphers, both HMAC, or both
/// asymmetric, with the same usage), as AWS KMS requires: a client using the alias keeps
/// getting a key that can do what it asks.
pub(crate) async fn update(
    state: &AppState,
    appid: &str,
    alias: &str,
    target: &str,
) -> Result<(), OpError> {
    not_reserved(alias)?;
    let key = target_key(state, appid, target).await?;
    let current = keys::find_listed(state, appid, alias).await?;
    let kind = |k: &Key| {
        (
            k.spec.is_symmetric_cipher(),
            k.spec.is_asymmetric(),
            k.usage,
        )
    };
    if kind(&current) != kind(&key) {
        return Err(OpError::AliasKind {
            alias: alias.to_owned(),
            spec: current.spec,
            usage: current.usage,
        });
    }
    match state
        .store
        .update_alias(appid, alias, &key.record.keyid)
        .await
    {
        Ok(true) => {}
        Ok(false) => return Err(OpError::UnknownAlias(alias.to_owned())),
        Err(ehsm_store::Error::UnknownKey) => return Err(OpError::UnknownKey),
        Err(e) => return Err(e.into()),
    }
    forget(state, appid, alias);
    Ok(())
}

pub(super) async fn delete_alias(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    delete(state, req.appid, params::string(req.payload, "alias")?).await?;
    Ok(Reply::successful(json!({})))
}

/// Deletes one of the app's aliases; its key stays.
pub(crate) async fn delete(state: &AppState, appid: &str, alias: &str) -> Result<(), OpError> {
    if !state.store.delete_alias(appid, alias).await? {
        return Err(OpError::UnknownAlias(alias.to_owned()));
    }
    forget(state, appid, alias);
    Ok(())
}

/// All the app's aliases in name order, or those of one key.
pub(super) async fn list_aliases(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let aliases: Vec<Value> = list(state, req.appid, params::opt_string(req.payload, "keyid")?)
        .await?
        .into_iter()
        .map(|a| json!({ "alias": a.alias, "keyid": a.keyid }))
        .collect();
    Ok(Reply::successful(json!({ "aliases": aliases })))
}

/// The app's aliases in name order; with `key` (a keyid or alias of one of the app's listed
/// keys, in any state), that key's.
pub(crate) async fn list(
    state: &AppState,
    appid: &str,
    key: Option<&str>,
) -> Result<Vec<AliasRecord>, OpError> {
    let keyid = match key {
        Some(reference) => Some(
            keys::find_listed(state, appid, reference)
                .await?
                .record
                .keyid
                .clone(),
        ),
        None => None,
    };
    Ok(state.store.list_aliases(appid, keyid.as_deref()).await?)
}

/// Refuses a name under the prefix AWS KMS reserves, for CreateAlias and UpdateAlias.
fn not_reserved(alias: &str) -> Result<(), OpError> {
    if alias.starts_with(RESERVED_ALIAS_PREFIX) {
        return Err(OpError::ReservedAlias);
    }
    Ok(())
}

/// The key an alias is to name: one of the app's listed keys, in any state, by keyid. An
/// alias that names an alias is refused: resolution is one step, so no chain or cycle exists.
async fn target_key(state: &AppState, appid: &str, reference: &str) -> Result<Arc<Key>, OpError> {
    if reference.starts_with(ALIAS_PREFIX) {
        return Err(OpError::AliasOfAlias);
    }
    keys::find_listed(state, appid, reference).await
}

/// Drops the alias from this node's cache (the other nodes learn it from the store).
fn forget(state: &AppState, appid: &str, alias: &str) {
    state.aliases.forget(&alias_cache_id(appid, alias));
}
