//! `ehsm key ...` and `ehsm pubkey`.

use std::process::ExitCode;

use ehsm_client::{KeyInfo, Origin};
use serde_json::json;

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
}

pub(crate) async fn run(s: &Session, args: &KeyArgs) -> CmdResult {
    let c = &s.client;
    match &args.action {
        KeyAction::Create {
            spec,
            usage,
            origin,
        } => {
            let usage = usage.map_or_else(|| default_usage(spec.0), |u| u.0);
            if origin.0 == Origin::External && !spec.0.is_symmetric_cipher() {
                fail!(
                    "only AES and SM4 keys can be imported: use --origin internal for {spec} keys"
                );
            }
            output::line(c.create_key(spec.0, origin.0, usage).await?)?;
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
            if !c.list_keys().await?.iter().any(|k| &k.keyid == keyid) {
                fail!("this app has no key {keyid} (see 'ehsm key list')");
            }
            c.delete_key(keyid).await?;
            output::line(format_args!("deleted {keyid}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
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
}

pub(crate) async fn pubkey(s: &Session, args: &PubkeyArgs) -> CmdResult {
    let pem = s.client.get_public_key(&args.keyid).await?;
    output::stdout(pem.as_bytes())?;
    if !pem.ends_with('\n') {
        output::stdout(b"\n")?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use ehsm_client::KeySpec;

    use super::*;

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
