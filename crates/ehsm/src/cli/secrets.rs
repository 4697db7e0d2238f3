//! `ehsm secret ...`: the secrets manager.
//!
//! Values are text. They are read from `--in FILE` or stdin byte for byte (no newline is
//! stripped: `printf %s` what you mean) and written back the same way, so that what `get` prints
//! is exactly what `create` or `put` stored.

use std::path::PathBuf;
use std::process::ExitCode;

use ehsm_client::{SecretInfo, SecretOptions, SecretVersionInfo};
use serde_json::{Value, json};

use super::output::{Output, read_input, utc};
use super::{CmdResult, ConnArgs, Session, output};

/// The server takes values of up to 4096 characters; a character is at most 4 bytes in UTF-8.
const MAX_VALUE_BYTES: usize = 4 * 4096;

#[derive(clap::Args)]
pub(crate) struct SecretArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,

    #[command(subcommand)]
    action: SecretAction,
}

/// Where a new value comes from.
#[derive(clap::Args)]
struct ValueArgs {
    /// Read the value (UTF-8 text, 1 to 4096 characters) from FILE; '-' is stdin
    /// [default: stdin]
    #[arg(long = "in", value_name = "FILE", conflicts_with = "value")]
    input: Option<PathBuf>,

    /// The value itself. Other users of this machine may see command lines: prefer --in or stdin
    #[arg(long, value_name = "TEXT")]
    value: Option<String>,
}

#[derive(clap::Subcommand)]
enum SecretAction {
    /// Create a secret with its first value (version 1).
    Create {
        /// The secret's name (1 to 64 characters, unique in this app)
        name: String,
        #[command(flatten)]
        value: ValueArgs,
        /// Encrypt the values under this symmetric key of the app [default: the app's own
        /// secret key]
        #[arg(long, value_name = "KEYID")]
        key: Option<String>,
        /// A description (up to 4096 characters)
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// How often the value should be rotated, e.g. 30d or 12h (6h to 8760h); recorded and
        /// shown by 'describe', not acted on
        #[arg(long, value_name = "INTERVAL")]
        rotation_interval: Option<String>,
    },
    /// Store a new value as the secret's next version.
    Put {
        name: String,
        #[command(flatten)]
        value: ValueArgs,
    },
    /// Print a secret's value (the current version unless --version is given).
    Get {
        name: String,
        /// Which version [default: the newest]
        #[arg(long, value_name = "N")]
        version: Option<i64>,
        /// Write the value to FILE (created with mode 0600); '-' is stdout [default: stdout]
        #[arg(long = "out", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Print JSON with the value, its version and creation time
        #[arg(long, conflicts_with = "output")]
        json: bool,
    },
    /// List this app's secrets, including those scheduled for deletion.
    List {
        /// Print JSON (the server's ListSecrets items) instead of a table
        #[arg(long)]
        json: bool,
    },
    /// List a secret's versions, oldest first.
    Versions {
        name: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Print a secret's metadata as JSON (never its value).
    Describe { name: String },
    /// Change a secret's description; without --description, remove it.
    SetDescription {
        name: String,
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// Schedule a secret's deletion (cancel with 'restore'), or delete it now with --force.
    Delete {
        name: String,
        /// Days until the deletion, 1 to 365 [default: 30]
        #[arg(long, value_name = "DAYS", conflicts_with = "force",
              value_parser = clap::value_parser!(u32).range(1..=365))]
        recovery_days: Option<u32>,
        /// Delete the secret and every version now, for good
        #[arg(long)]
        force: bool,
    },
    /// Cancel a secret's scheduled deletion.
    Restore { name: String },
}

impl ValueArgs {
    fn read(&self) -> anyhow::Result<String> {
        if let Some(value) = &self.value {
            return Ok(value.clone());
        }
        let bytes = read_input(
            self.input.as_deref(),
            MAX_VALUE_BYTES,
            "a secret value is at most 4096 characters",
        )?;
        String::from_utf8(bytes).map_err(|_| {
            anyhow::anyhow!("a secret value is text: the input is not valid UTF-8 (to keep binary data, base64 it first)")
        })
    }
}

pub(crate) async fn run(s: &Session, args: &SecretArgs) -> CmdResult {
    let c = &s.client;
    match &args.action {
        SecretAction::Create {
            name,
            value,
            key,
            description,
            rotation_interval,
        } => {
            let options = SecretOptions {
                encryption_keyid: key.clone(),
                description: description.clone(),
                rotation_interval: rotation_interval.clone(),
            };
            c.create_secret(name, &value.read()?, &options).await?;
            output::line(format_args!("created secret {name} (version 1)"))?;
        }
        SecretAction::Put { name, value } => {
            c.put_secret_value(name, &value.read()?).await?;
            let newest = c.list_secret_versions(name).await?.last().copied();
            match newest {
                Some(v) => output::line(format_args!("stored version {} of {name}", v.version_id))?,
                None => output::line(format_args!("stored a new version of {name}"))?,
            }
        }
        SecretAction::Get {
            name,
            version,
            output: path,
            json,
        } => {
            let Some(value) = c.get_secret_value(name, *version).await? else {
                fail!(
                    "secret {name} has no version {} (see 'ehsm secret versions {name}')",
                    version.unwrap_or_default()
                );
            };
            if *json {
                output::line(json!({
                    "secretName": value.name,
                    "secretData": value.value,
                    "versionId": value.version_id,
                    "createTime": value.create_time,
                }))?;
            } else {
                let out = Output {
                    path: path.as_deref(),
                    private: true,
                    binary: false,
                };
                out.write(value.value.as_bytes())?;
            }
        }
        SecretAction::List { json } => {
            let secrets = c.list_secrets(None).await?;
            if *json {
                output::line(Value::Array(secrets.iter().map(info_json).collect()))?;
            } else {
                output::stdout(secrets_table(&secrets).as_bytes())?;
            }
        }
        SecretAction::Versions { name, json } => {
            let versions = c.list_secret_versions(name).await?;
            if versions.is_empty() {
                fail!("no secret {name} (or it is scheduled for deletion; see 'ehsm secret list')");
            }
            if *json {
                output::line(versions_json(&versions))?;
            } else {
                output::stdout(versions_table(&versions).as_bytes())?;
            }
        }
        SecretAction::Describe { name } => {
            let Some(info) = c.describe_secret(name).await? else {
                fail!("no secret {name} (see 'ehsm secret list')");
            };
            output::line(info_json(&info))?;
        }
        SecretAction::SetDescription { name, description } => {
            c.update_secret_description(name, description.as_deref())
                .await?;
            output::line(format_args!("updated the description of {name}"))?;
        }
        SecretAction::Delete {
            name,
            recovery_days,
            force,
        } => {
            if *force {
                c.force_delete_secret(name).await?;
                output::line(format_args!("deleted secret {name}"))?;
            } else {
                c.delete_secret(name, *recovery_days).await?;
                let planned = c
                    .describe_secret(name)
                    .await?
                    .and_then(|i| i.planned_delete_time);
                match planned {
                    Some(t) => output::line(format_args!(
                        "secret {name} will be deleted at {} UTC; 'ehsm secret restore {name}' cancels",
                        utc(t)
                    ))?,
                    None => output::line(format_args!("secret {name} is scheduled for deletion"))?,
                }
            }
        }
        SecretAction::Restore { name } => {
            c.restore_secret(name).await?;
            output::line(format_args!("restored secret {name}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A secret's metadata with the wire's field names, for scripts.
fn info_json(i: &SecretInfo) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("secretName".into(), i.name.clone().into());
    let optional = [
        ("description", i.description.clone().map(Value::from)),
        ("createTime", Some(i.create_time.into())),
        ("plannedDeleteTime", i.planned_delete_time.map(Value::from)),
        (
            "rotationInterval",
            i.rotation_interval.clone().map(Value::from),
        ),
        ("nextRotationDate", i.next_rotation_date.map(Value::from)),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    }
    Value::Object(m)
}

fn versions_json(versions: &[SecretVersionInfo]) -> Value {
    versions
        .iter()
        .map(|v| json!({"versionId": v.version_id, "createTime": v.create_time}))
        .collect()
}

fn secrets_table(secrets: &[SecretInfo]) -> String {
    let rows = secrets.iter().map(|i| {
        vec![
            i.name.clone(),
            utc(i.create_time),
            i.planned_delete_time.map_or_else(|| "-".to_owned(), utc),
            i.description.clone().unwrap_or_default(),
        ]
    });
    let mut out = output::table(
        &["NAME", "CREATED (UTC)", "DELETION (UTC)", "DESCRIPTION"],
        rows,
    );
    if secrets.is_empty() {
        out.push_str("(no secrets: create one with 'ehsm secret create NAME')\n");
    }
    out
}

fn versions_table(versions: &[SecretVersionInfo]) -> String {
    output::table(
        &["VERSION", "CREATED (UTC)"],
        versions
            .iter()
            .map(|v| vec![v.version_id.to_string(), utc(v.create_time)]),
    )
}
