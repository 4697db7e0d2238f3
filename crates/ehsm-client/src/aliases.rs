//! Aliases, an ehsm extension that eHSM-KMS does not have: per-app names for keys.
//!
//! An alias is `alias/` and 1 to 250 of `A-Z a-z 0-9 / _ -` (AWS KMS's rule, minus its reserved
//! `alias/aws/`). Every `keyid` argument of the SDK takes an alias name in its place, so a client
//! can name `alias/orders` and have an operator point it at a new key later.

use ehsm_proto::Action;
use serde_json::json;

use crate::client::Client;
use crate::error::Result;

/// One of the app's aliases, from [`Client::list_aliases`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Alias {
    /// The alias name, `alias/...`.
    pub alias: String,
    /// The keyid it names.
    pub keyid: String,
}

#[derive(serde::Deserialize)]
struct AliasList {
    aliases: Vec<Alias>,
}

impl Client {
    /// Names the key `keyid` `alias` (`CreateAlias`, an ehsm extension). `keyid` must be a keyid,
    /// not another alias: names resolve in one step.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error). A name in use, a malformed name, and the
    /// server's alias quota are an [`Error::Api`](crate::Error::Api) with code 400.
    pub async fn create_alias(&self, alias: &str, keyid: &str) -> Result<()> {
        let payload = json!({"alias": alias, "keyid": keyid});
        self.call(Action::CreateAlias, payload).await.map(drop)
    }

    /// Points `alias` at another key, `keyid` (`UpdateAlias`, an ehsm extension). The new key must
    /// be of the same kind as the old one (both symmetric ciphers, both HMAC or both asymmetric,
    /// with the same usage), so that a client using the alias can still do what it did.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error). An unknown alias or a key of another kind is
    /// an [`Error::Api`](crate::Error::Api) with code 400.
    pub async fn update_alias(&self, alias: &str, keyid: &str) -> Result<()> {
        let payload = json!({"alias": alias, "keyid": keyid});
        self.call(Action::UpdateAlias, payload).await.map(drop)
    }

    /// Removes an alias; the key stays (`DeleteAlias`, an ehsm extension).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error). An unknown alias is an
    /// [`Error::Api`](crate::Error::Api) with code 400.
    pub async fn delete_alias(&self, alias: &str) -> Result<()> {
        self.call(Action::DeleteAlias, json!({"alias": alias}))
            .await
            .map(drop)
    }

    /// The app's aliases in name order; with `keyid` (a keyid or an alias), only those of that
    /// key (`ListAliases`, an ehsm extension).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`](crate::Error).
    pub async fn list_aliases(&self, keyid: Option<&str>) -> Result<Vec<Alias>> {
        let payload = keyid.map_or_else(|| json!({}), |k| json!({"keyid": k}));
        let list: AliasList = self.call(Action::ListAliases, payload).await?.parse()?;
        Ok(list.aliases)
    }
}
