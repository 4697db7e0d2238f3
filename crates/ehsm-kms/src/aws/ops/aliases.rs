//! CreateAlias, UpdateAlias, DeleteAlias, ListAliases: the eHSM aliases (`crate::actions::aliases`), which
//! follow AWS's naming rule, so an alias made through either API works on both.

use serde_json::{Value, json};

use super::{Caller, epoch_seconds, refusal};
use crate::actions::aliases as shared;
use crate::aws::error::AwsError;
use crate::aws::input::Input;
use crate::op_error::OpError;
use crate::validate::{ALIAS_MAX, ALIAS_MIN, ALIAS_PREFIX, is_alias};

/// AWS's AliasName: at most 256 characters.
const MAX_ALIAS_NAME: usize = 256;

/// The AliasName member, checked against AWS's rule (which is ehsm's: `alias/` and 1 to 250
/// of `[A-Za-z0-9/_-]`).
fn alias_name(input: &Input) -> Result<&str, AwsError> {
    let alias = input.string("AliasName", MAX_ALIAS_NAME)?;
    if !alias.starts_with(ALIAS_PREFIX) {
        return Err(AwsError::validation(format!(
            "Alias must start with the prefix \"{ALIAS_PREFIX}\". Please see \
             https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
        )));
    }
    if !(ALIAS_MIN..=ALIAS_MAX).contains(&alias.len()) || !is_alias(alias) {
        return Err(AwsError::validation(format!(
            "1 validation error detected: Value '{alias}' at 'aliasName' failed to satisfy \
             constraint: Member must be {ALIAS_PREFIX} and 1 to 250 of [a-zA-Z0-9/_-]"
        )));
    }
    Ok(alias)
}

pub(super) async fn create_alias(caller: &Caller<'_>, input: &Input) -> Result<Value, AwsError> {
    let alias = alias_name(input)?;
    let names = caller.names();
    let target = names.key_only(input.string("TargetKeyId", 2048)?)?;
    shared::create(caller.state, caller.appid(), alias, target)
        .await
        .map_err(|e| match e {
            // The alias, not the key, is what is refused.
            OpError::ReservedAlias | OpError::AliasExists(_) => refusal(names, e, alias),
            e => refusal(names, e, target),
        })?;
    Ok(json!({}))
}

/// Points the alias at another key of the same kind (`shared::update`).
pub(super) async fn update_alias(caller: &Caller<'_>, input: &Input) -> Result<Value, AwsError> {
    let alias = alias_name(input)?;
    let names = caller.names();
    let target = names.key_only(input.string("TargetKeyId", 2048)?)?;
    shared::update(caller.state, caller.appid(), alias, target)
        .await
        .map_err(|e| match e {
            OpError::ReservedAlias | OpError::UnknownAlias(_) | OpError::AliasKind { .. } => {
                refusal(names, e, alias)
            }
            e => refusal(names, e, target),
        })?;
    Ok(json!({}))
}

pub(super) async fn delete_alias(caller: &Caller<'_>, input: &Input) -> Result<Value, AwsError> {
    let alias = alias_name(input)?;
    shared::delete(caller.state, caller.appid(), alias)
        .await
        .map_err(|e| refusal(caller.names(), e, alias))?;
    Ok(json!({}))
}

/// ListAliases's page size when the client sends no Limit (AWS's default).
const LIST_DEFAULT: i64 = 50;

/// The app's aliases by name (or one key's), a page at a time: the marker is the last name of
/// the page before.
pub(super) async fn list_aliases(caller: &Caller<'_>, input: &Input) -> Result<Value, AwsError> {
    let names = caller.names();
    let key = input
        .opt_string_within("KeyId", 1, 2048)?
        .map(|k| names.key_only(k))
        .transpose()?;
    let limit = input.opt_integer("Limit", 1, 1000)?.unwrap_or(LIST_DEFAULT);
    let marker = input.opt_string_within("Marker", 1, 1024)?;
    let all = shared::list(caller.state, caller.appid(), key)
        .await
        .map_err(|e| refusal(names, e, key.unwrap_or("")))?;
    let after = all
        .iter()
        .skip_while(|a| marker.is_some_and(|m| a.alias.as_str() <= m));
    // Within 1..=1000.
    let limit = usize::try_from(limit).unwrap_or(1);
    let page: Vec<_> = after.clone().take(limit).collect();
    let more = after.count() > page.len();
    let aliases: Vec<Value> = page
        .iter()
        .map(|a| {
            json!({
                "AliasName": a.alias,
                "AliasArn": names.alias_arn(&a.alias),
                "TargetKeyId": a.keyid,
                "CreationDate": epoch_seconds(a.created_at),
            })
        })
        .collect();
    let mut out = json!({ "Aliases": aliases, "Truncated": more });
    if more && let Some(last) = page.last() {
        out["NextMarker"] = last.alias.clone().into();
    }
    Ok(out)
}
