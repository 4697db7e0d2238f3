//! Aliases (ehsm extension): CreateAlias, UpdateAlias, DeleteAlias, ListAliases. An alias is a
//! per-app name for one of the app's keys; every `keyid` field takes one (`keys::resolve`).

use serde_json::{Value, json};

use super::over_quota;
use crate::envelope::Authenticated;
use crate::keys::{self, Key, alias_cache_id};
use crate::params;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::state::{AppState, now_ms};
use crate::validate::ALIAS_PREFIX;

/// Names AWS KMS keeps for its own keys; refused here too, so that an alias made through one
/// API is valid on the other.
const RESERVED_PREFIX: &str = "alias/aws/";

pub(super) async fn create_alias(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let alias = new_name(req)?;
    let key = target(state, req).await?;
    let quota = state.quotas.aliases_per_app;
    match state
        .store
        .create_alias(req.appid, alias, &key.record.keyid, now_ms(), quota)
        .await
    {
        Ok(()) => {}
        Err(ehsm_store::Error::Conflict) => {
            return Err(ApiError::bad_request(format!(
                "Parameter invalid, The alias {alias} already exists: UpdateAlias points it at \
                 another key."
            )));
        }
        Err(ehsm_store::Error::UnknownKey) => return Err(ApiError::bad_request("keyid error")),
        Err(e) => return Err(over_quota(e, "Alias", "aliases", quota)),
    }
    forget(state, req.appid, alias);
    Ok(Reply::successful(json!({})))
}

/// Points an alias at another key of the same kind (both symmetric ciphers, both HMAC, or both
/// asymmetric, with the same usage), as AWS KMS requires: a client using the alias keeps
/// getting a key that can do what it asks.
pub(super) async fn update_alias(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let alias = new_name(req)?;
    let key = target(state, req).await?;
    let current = keys::find_listed(state, req.appid, alias).await?;
    let kind = |k: &Key| {
        (
            k.spec.is_symmetric_cipher(),
            k.spec.is_asymmetric(),
            k.usage,
        )
    };
    if kind(&current) != kind(&key) {
        return Err(ApiError::bad_request(format!(
            "Parameter invalid, The keyid must be a key of the same kind as the one {alias} \
             names now ({} with usage {}).",
            current.spec.as_str(),
            current.usage.as_str()
        )));
    }
    match state
        .store
        .update_alias(req.appid, alias, &key.record.keyid)
        .await
    {
        Ok(true) => {}
        Ok(false) => return Err(keys::unknown_alias(alias)),
        Err(ehsm_store::Error::UnknownKey) => return Err(ApiError::bad_request("keyid error")),
        Err(e) => return Err(e.into()),
    }
    forget(state, req.appid, alias);
    Ok(Reply::successful(json!({})))
}

pub(super) async fn delete_alias(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let alias = params::string(req.payload, "alias")?;
    if !state.store.delete_alias(req.appid, alias).await? {
        return Err(keys::unknown_alias(alias));
    }
    forget(state, req.appid, alias);
    Ok(Reply::successful(json!({})))
}

/// All the app's aliases in name order, or those of one key.
pub(super) async fn list_aliases(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let keyid = match params::opt_string(req.payload, "keyid")? {
        Some(reference) => Some(
            keys::find_listed(state, req.appid, reference)
                .await?
                .record
                .keyid
                .clone(),
        ),
        None => None,
    };
    let aliases: Vec<Value> = state
        .store
        .list_aliases(req.appid, keyid.as_deref())
        .await?
        .into_iter()
        .map(|a| json!({ "alias": a.alias, "keyid": a.keyid }))
        .collect();
    Ok(Reply::successful(json!({ "aliases": aliases })))
}

/// The `alias` of a CreateAlias or UpdateAlias, unless it is a reserved name.
fn new_name<'a>(req: &Authenticated<'a>) -> Result<&'a str, ApiError> {
    let alias = params::string(req.payload, "alias")?;
    if alias.starts_with(RESERVED_PREFIX) {
        return Err(ApiError::bad_request(format!(
            "Parameter invalid, The alias must not start with {RESERVED_PREFIX}: AWS KMS \
             reserves those names."
        )));
    }
    Ok(alias)
}

/// The key an alias is to name: one of the app's listed keys, in any state, by keyid. An
/// alias that names an alias is refused: resolution is one step, so no chain or cycle exists.
async fn target(
    state: &AppState,
    req: &Authenticated<'_>,
) -> Result<std::sync::Arc<Key>, ApiError> {
    let reference = params::string(req.payload, "keyid")?;
    if reference.starts_with(ALIAS_PREFIX) {
        return Err(ApiError::bad_request(
            "Parameter invalid, The keyid of an alias must be a keyid, not another alias.",
        ));
    }
    keys::find_listed(state, req.appid, reference).await
}

/// Drops the alias from this node's cache (the other nodes learn it from the store).
fn forget(state: &AppState, appid: &str, alias: &str) {
    state.aliases.forget(&alias_cache_id(appid, alias));
}
