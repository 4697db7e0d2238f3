//! `ehsm key ...` and `ehsm pubkey`.
//!
//! Wherever a key is named, an alias (`alias/NAME`) works too: the server resolves it.

use std::process::ExitCode;

use ehsm_client::{KeyDescription, KeyInfo, KeyOptions, KeyVersions, Origin};
use serde_json::{Value, json};

use super::names::{KeyOrigin, Spec, Usage, default_usage};
use super::output::utc;
use super::{CmdResult, ConnArgs, Session, output};

#[derive(clap::Args)]
pub(crate) struct KeyArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,

    #[command(subcommand)]
    action: KeyAction,
}

#[derive(clap::Subcommand)]
enum KeyAction {
    /// Create a key and print its keyid.
    Create {
        /// Key spec: a name below or its wire name (EH_AES_GCM_256, ...)
        #[arg(long, value_enum, ignore_case = true)]
        spec: Spec,
        /// What the key is for [default: encrypt-decrypt for AES and SM4, sign-verify for RSA,
        /// EC, SM2 and HMAC]
        #[arg(long, value_enum, ignore_case = true)]
        usage: Option<Usage>,
        /// internal: the server generates the key; external: you import it with 'ehsm import'
        /// (AES and SM4 only)
        #[arg(long, value_enum, ignore_case = true, default_value = "internal")]
        origin: KeyOrigin,
        /// Rotate the key automatically every N days, 7 to 2560 (AES, SM4 and HMAC keys)
        #[arg(long, value_name = "N", value_parser = rotation_days())]
        rotation_days: Option<u32>,
        /// A description (up to 4096 characters), shown by 'ehsm key describe'
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// List this app's keys.
    List {
        /// Print JSON (the server's ListKey items) instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Enable a disabled key.
    Enable { keyid: String },
    /// Disable a key: every use is refused until it is enabled again.
    Disable { keyid: String },
    /// Delete a key for good: what it encrypted can no longer be decrypted.
    Delete { keyid: String },
    /// Print a key's metadata as JSON: spec, state, versions, aliases, rotation, deletion date.
    Describe { keyid: String },
    /// List a key's versions, oldest first, and which one is primary.
    Versions {
        keyid: String,
        /// Print JSON (the server's ListKeyVersions result) instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Make a new version of a key, which encrypts and signs from now on; data made by the
    /// older versions still decrypts and verifies.
    Rotate { keyid: String },
    /// Turn a key's automatic rotation on or off (AES, SM4 and HMAC keys).
    #[command(group = clap::ArgGroup::new("switch").required(true).args(["enable", "disable"]))]
    Rotation {
        keyid: String,
        /// Rotate the key every --days days from now
        #[arg(long)]
        enable: bool,
        /// Stop rotating the key (its interval is kept for a later --enable)
        #[arg(long)]
        disable: bool,
        /// The interval, 7 to 2560 days [default: the key's interval, else 365]
        #[arg(long, value_name = "N", conflicts_with = "disable", value_parser = rotation_days())]
        days: Option<u32>,
    },
    /// Disable a key now and delete it after a waiting period; 'cancel-deletion' keeps it.
    ScheduleDeletion {
        keyid: String,
        /// Days until the deletion, 7 to 30 [default: 30]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(7..=30))]
        days: Option<u32>,
    },
    /// Cancel a key's scheduled deletion; the key stays disabled until 'ehsm key enable'.
    CancelDeletion { keyid: String },
}

/// Automatic rotation's interval in days: the server's range (AWS KMS's).
fn rotation_days() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(7..=2560)
}

pub(crate) async fn run(s: &Session, args: &KeyArgs) -> CmdResult {
    let c = &s.client;
    match &args.action {
        KeyAction::Create {
            spec,
            usage,
            origin,
            rotation_days,
            description,
        } => {
            let usage = usage.map_or_else(|| default_usage(spec.0), |u| u.0);
            if origin.0 == Origin::External && !spec.0.is_symmetric_cipher() {
                fail!(
                    "only AES and SM4 keys can be imported: use --origin internal for {spec} keys"
                );
            }
            let options = KeyOptions {
                rotation_interval_days: *rotation_days,
                description: description.clone(),
            };
            let keyid = c
                .create_key_with_options(spec.0, origin.0, usage, &options)
                .await?;
            output::line(keyid)?;
        }
        KeyAction::List { json } => {
            let keys = c.list_keys().await?;
            if *json {
                output::line(list_json(&keys))?;
            } else {
                output::stdout(table(&keys).as_bytes())?;
            }
        }
        KeyAction::Enable { keyid } => {
            c.enable_key(keyid).await?;
            output::line(format_args!("enabled {keyid}"))?;
        }
        KeyAction::Disable { keyid } => {
            c.disable_key(keyid).await?;
            output::line(format_args!("disabled {keyid}"))?;
        }
        KeyAction::Delete { keyid } => {
            // DeleteKey succeeds for any keyid (spec §7.17), so a typo would look like success.
            if !c.list_keys().await?.iter().any(|k| names(k, keyid)) {
                fail!("this app has no key {keyid} (see 'ehsm key list')");
            }
            c.delete_key(keyid).await?;
            output::line(format_args!("deleted {keyid}"))?;
        }
        KeyAction::Describe { keyid } => {
            output::line(description_json(&c.describe_key(keyid).await?))?;
        }
        KeyAction::Versions { keyid, json } => {
            let versions = c.list_key_versions(keyid).await?;
            if *json {
                output::line(versions_json(&versions))?;
            } else {
                output::stdout(versions_table(&versions).as_bytes())?;
            }
        }
        KeyAction::Rotate { keyid } => {
            let rotated = c.rotate_key(keyid).await?;
            output::line(format_args!(
                "rotated {}: version {} is now the primary one",
                rotated.keyid, rotated.version
            ))?;
        }
        KeyAction::Rotation {
            keyid,
            enable,
            days,
            ..
        } => {
            c.update_rotation_policy(keyid, *enable, *days).await?;
            if !*enable {
                output::line(format_args!("{keyid} no longer rotates automatically"))?;
                return Ok(ExitCode::SUCCESS);
            }
            let rotation = c.describe_key(keyid).await?.rotation;
            match (rotation.interval_days, rotation.next_rotation_date) {
                (Some(days), Some(next)) => output::line(format_args!(
                    "{keyid} rotates every {days} days, next at {} UTC",
                    utc(next)
                ))?,
                _ => output::line(format_args!("{keyid} rotates automatically"))?,
            }
        }
        KeyAction::ScheduleDeletion { keyid, days } => {
            let date = c.schedule_key_deletion(keyid, *days).await?;
            output::line(format_args!(
                "{keyid} is disabled and will be deleted at {} UTC; 'ehsm key cancel-deletion \
                 {keyid}' keeps it",
                utc(date)
            ))?;
        }
        KeyAction::CancelDeletion { keyid } => {
            c.cancel_key_deletion(keyid).await?;
            output::line(format_args!(
                "{keyid} will not be deleted; it stays disabled until 'ehsm key enable {keyid}'"
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `reference`, a keyid or an alias, names the listed key (ListKey's `alias` holds
/// the key's aliases, comma-separated, and is `""` for none: not an alias named `""`).
fn names(key: &KeyInfo, reference: &str) -> bool {
    key.keyid == reference
        || key
            .alias
            .split(',')
            .any(|a| !a.is_empty() && a == reference)
}

/// DescribeKey's result with its wire field names, for scripts.
fn description_json(d: &KeyDescription) -> Value {
    json!({
        "keyid": d.keyid,
        "keyspec": d.keyspec.as_str(),
        "origin": d.origin.as_str(),
        "keyusage": d.keyusage.as_str(),
        "keyState": d.key_state,
        "creationDate": d.creation_date,
        "expireTime": d.expire_time,
        "primaryVersion": d.primary_version,
        "aliases": d.aliases,
        "rotation": {
            "enable": d.rotation.enabled,
            "rotationInterval": d.rotation.interval_days,
            "nextRotationDate": d.rotation.next_rotation_date,
        },
        "deletionDate": d.deletion_date,
        "description": d.description,
    })
}

/// ListKeyVersions' result with its wire field names.
fn versions_json(v: &KeyVersions) -> Value {
    let versions: Vec<Value> = v
        .versions
        .iter()
        .map(|v| json!({"keyversion": v.version, "creationDate": v.creation_date}))
        .collect();
    json!({"keyid": v.keyid, "primaryVersion": v.primary_version, "versions": versions})
}

fn versions_table(v: &KeyVersions) -> String {
    output::table(
        &["VERSION", "CREATED (UTC)", "PRIMARY"],
        v.versions.iter().map(|version| {
            let primary = if version.version == v.primary_version {
                "yes"
            } else {
                ""
            };
            vec![
                version.version.to_string(),
                utc(version.creation_date),
                primary.to_owned(),
            ]
        }),
    )
}

/// The ListKey items with their wire field names, for scripts.
fn list_json(keys: &[KeyInfo]) -> serde_json::Value {
    keys.iter()
        .map(|k| {
            json!({
                "keyid": k.keyid,
                "keyspec": k.keyspec.as_str(),
                "keyState": k.key_state,
                "creationDate": k.creation_date,
                "expireTime": k.expire_time,
                "alias": k.alias,
            })
        })
        .collect()
}

/// An aligned table; times in UTC.
fn table(keys: &[KeyInfo]) -> String {
    let rows = keys.iter().map(|k| {
        vec![
            k.keyid.clone(),
            k.keyspec.as_str().to_owned(),
            if k.is_enabled() {
                "enabled"
            } else {
                "disabled"
            }
            .to_owned(),
            utc(k.creation_date),
            utc(k.expire_time),
        ]
    });
    let header = [
        "KEYID",
        "KEYSPEC",
        "STATE",
        "CREATED (UTC)",
        "EXPIRES (UTC)",
    ];
    let mut out = output::table(&header, rows);
    if keys.is_empty() {
        out.push_str("(no keys: create one with 'ehsm key create --spec aes-gcm-256')\n");
    }
    out
}

#[derive(clap::Args)]
pub(crate) struct PubkeyArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,

    /// The RSA, EC or SM2 key
    keyid: String,

    /// The public key of this version of the key [default: the primary one]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    key_version: Option<u32>,
}

pub(crate) async fn pubkey(s: &Session, args: &PubkeyArgs) -> CmdResult {
    let pem = match args.key_version {
        // Plain GetPublicKey, as upstream's servers know it.
        None => s.client.get_public_key(&args.keyid).await?,
        version => {
            s.client
                .get_public_key_versioned(&args.keyid, version)
                .await?
                .value
        }
    };
    output::stdout(pem.as_bytes())?;
    if !pem.ends_with('\n') {
        output::stdout(b"\n")?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use ehsm_client::{KeySpec, KeyUsage, KeyVersionInfo, RotationPolicy};

    use super::*;

    #[test]
    fn a_key_is_named_by_its_keyid_or_any_of_its_aliases() {
        let key = KeyInfo {
            keyid: "k1".into(),
            creation_date: 0,
            expire_time: 0,
            alias: "alias/a,alias/b".into(),
            keyspec: KeySpec::AesGcm256,
            key_state: 1,
        };
        for reference in ["k1", "alias/a", "alias/b"] {
            assert!(names(&key, reference), "{reference}");
        }
        for reference in ["k", "alias/", "alias/a,alias/b", "alias/c", ""] {
            assert!(!names(&key, reference), "{reference}");
        }
        let bare = KeyInfo {
            alias: String::new(),
            ..key
        };
        assert!(!names(&bare, ""), "no alias is not an empty alias");
    }

    #[test]
    fn versions_mark_the_primary_one_and_describe_keeps_wire_names() {
        let versions = KeyVersions {
            keyid: "k1".into(),
            primary_version: 2,
            versions: vec![
                KeyVersionInfo {
                    version: 1,
                    creation_date: 0,
                },
                KeyVersionInfo {
                    version: 2,
                    creation_date: 60_000,
                },
            ],
        };
        assert_eq!(
            versions_table(&versions).lines().collect::<Vec<_>>(),
            [
                "VERSION  CREATED (UTC)     PRIMARY",
                "1        1970-01-01 00:00",
                "2        1970-01-01 00:01  yes",
            ]
        );
        assert_eq!(
            versions_json(&versions),
            json!({"keyid": "k1", "primaryVersion": 2, "versions": [
                {"keyversion": 1, "creationDate": 0}, {"keyversion": 2, "creationDate": 60_000}]})
        );
        let d = KeyDescription {
            keyid: "k1".into(),
            keyspec: KeySpec::Hmac,
            origin: Origin::Internal,
            keyusage: KeyUsage::SignVerify,
            key_state: 1,
            creation_date: 1,
            expire_time: 2,
            primary_version: 2,
            aliases: vec!["alias/a".into()],
            rotation: RotationPolicy {
                enabled: false,
                interval_days: Some(30),
                next_rotation_date: None,
            },
            deletion_date: None,
            description: Some("d".into()),
        };
        assert_eq!(
            description_json(&d),
            json!({"keyid": "k1", "keyspec": "EH_HMAC", "origin": "EH_INTERNAL_KEY",
                   "keyusage": "EH_KEYUSAGE_SIGN_VERIFY", "keyState": 1, "creationDate": 1,
                   "expireTime": 2, "primaryVersion": 2, "aliases": ["alias/a"],
                   "rotation": {"enable": false, "rotationInterval": 30, "nextRotationDate": null},
                   "deletionDate": null, "description": "d"})
        );
    }

    #[test]
    fn table_and_json_show_every_key() {
        let keys = [KeyInfo {
            keyid: "k1".into(),
            creation_date: 0,
            expire_time: 86_400_000,
            alias: String::new(),
            keyspec: KeySpec::EcP256,
            key_state: 0,
        }];
        let t = table(&keys);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            [
                "KEYID  KEYSPEC     STATE     CREATED (UTC)     EXPIRES (UTC)",
                "k1     EH_EC_P256  disabled  1970-01-01 00:00  1970-01-02 00:00",
            ]
        );
        assert!(table(&[]).contains("no keys"));
        let j = list_json(&keys);
        assert_eq!(j[0]["keyspec"], "EH_EC_P256");
        assert_eq!(j[0]["keyState"], 0);
    }
}
