//! Key ids, key ARNs, alias names and alias ARNs, as the AWS API spells them.
//!
//! AWS accepts four forms wherever a key is named: `1234abcd-...` (a key id),
//! `arn:aws:kms:REGION:ACCOUNT:key/1234abcd-...`, `alias/NAME` and
//! `arn:aws:kms:REGION:ACCOUNT:alias/NAME`. ehsm's keys and aliases are per app and already
//! named by key id and `alias/NAME` (`crate::keys::resolve` takes both), so every form comes
//! down to one of those two. The region and account of an ARN must be this server's
//! (`--aws-region`, `--aws-account-id`): an ARN of anywhere else names a key that is not here.

use super::error::AwsError;
pub(crate) use crate::server::AwsConfig;
use crate::validate::ALIAS_PREFIX;

/// The partition, service and resource types of this server's ARNs.
const ARN_PREFIX: &str = "arn:aws:kms:";
const KEY_RESOURCE: &str = "key/";

impl AwsConfig {
    /// `arn:aws:kms:REGION:ACCOUNT:key/KEYID`.
    pub(crate) fn key_arn(&self, keyid: &str) -> String {
        format!(
            "{ARN_PREFIX}{}:{}:{KEY_RESOURCE}{keyid}",
            self.region, self.account_id
        )
    }

    /// `arn:aws:kms:REGION:ACCOUNT:alias/NAME` for the alias `alias/NAME`.
    pub(crate) fn alias_arn(&self, alias: &str) -> String {
        format!("{ARN_PREFIX}{}:{}:{alias}", self.region, self.account_id)
    }

    /// What a KeyId member names, as `crate::keys` takes it: a key id or `alias/NAME`.
    pub(crate) fn reference<'v>(&self, value: &'v str) -> Result<&'v str, AwsError> {
        let Some(resource) = value.strip_prefix("arn:") else {
            return Ok(value);
        };
        let mut parts = resource.splitn(5, ':');
        let (partition, service, region, account, resource) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        );
        match (partition, service, resource) {
            (Some("aws"), Some("kms"), Some(resource))
                if resource.starts_with(KEY_RESOURCE) || resource.starts_with(ALIAS_PREFIX) =>
            {
                if region != Some(self.region.as_str()) || account != Some(self.account_id.as_str())
                {
                    return Err(AwsError::not_found(format!(
                        "Invalid arn {value}: this server's keys are in region {} of account {}.",
                        self.region, self.account_id
                    )));
                }
                Ok(resource.strip_prefix(KEY_RESOURCE).unwrap_or(resource))
            }
            _ => Err(AwsError::not_found(format!("Invalid arn {value}"))),
        }
    }

    /// What a member that takes only a key (not an alias: CreateAlias's TargetKeyId,
    /// ListAliases's KeyId) names: its key id.
    pub(crate) fn key_only<'v>(&self, value: &'v str) -> Result<&'v str, AwsError> {
        let reference = self.reference(value)?;
        if reference.starts_with(ALIAS_PREFIX) {
            return Err(AwsError::validation(format!(
                "{value} is an alias: this member takes a key id or key ARN."
            )));
        }
        Ok(reference)
    }

    /// The ARN that answers name a key or alias by: a key id's key ARN, an alias's alias ARN.
    pub(crate) fn arn_of(&self, reference: &str) -> String {
        if reference.starts_with(ALIAS_PREFIX) {
            self.alias_arn(reference)
        } else {
            self.key_arn(reference)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn names() -> AwsConfig {
        AwsConfig {
            region: "eu-west-3".into(),
            account_id: "111122223333".into(),
        }
    }

    const KEYID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn every_form_names_a_key_id_or_an_alias() {
        let n = names();
        for (value, reference) in [
            (KEYID, KEYID),
            (
                "arn:aws:kms:eu-west-3:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                KEYID,
            ),
            ("alias/orders", "alias/orders"),
            (
                "arn:aws:kms:eu-west-3:111122223333:alias/orders",
                "alias/orders",
            ),
            (
                "arn:aws:kms:eu-west-3:111122223333:alias/a/b:c",
                "alias/a/b:c",
            ),
        ] {
            assert_eq!(n.reference(value).unwrap(), reference, "{value}");
        }
        assert_eq!(n.reference(&n.key_arn(KEYID)).unwrap(), KEYID);
        assert_eq!(n.reference(&n.alias_arn("alias/x")).unwrap(), "alias/x");
        assert_eq!(
            n.arn_of("alias/x"),
            "arn:aws:kms:eu-west-3:111122223333:alias/x"
        );
        assert_eq!(n.arn_of(KEYID), n.key_arn(KEYID));
    }

    #[test]
    fn arns_of_elsewhere_or_malformed_are_not_found() {
        let n = names();
        for value in [
            "arn:aws:kms:us-east-1:111122223333:key/k",
            "arn:aws:kms:eu-west-3:999999999999:key/k",
            "arn:aws-cn:kms:eu-west-3:111122223333:key/k",
            "arn:aws:s3:eu-west-3:111122223333:key/k",
            "arn:aws:kms:eu-west-3:111122223333:grant/k",
            "arn:aws:kms:eu-west-3:111122223333",
            "arn:",
        ] {
            let e = n.reference(value).unwrap_err();
            assert_eq!(
                (e.status, e.type_name),
                (400, "NotFoundException"),
                "{value}"
            );
        }
    }

    #[test]
    fn key_only_members_refuse_aliases() {
        let n = names();
        assert_eq!(n.key_only(&n.key_arn(KEYID)).unwrap(), KEYID);
        for value in ["alias/x", "arn:aws:kms:eu-west-3:111122223333:alias/x"] {
            assert_eq!(
                n.key_only(value).unwrap_err().type_name,
                "ValidationException"
            );
        }
    }
}
