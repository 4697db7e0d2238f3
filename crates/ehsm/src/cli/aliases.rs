//! `ehsm alias ...`: names for keys, usable wherever a command takes a key.

use std::process::ExitCode;

use ehsm_client::Alias;
use serde_json::{Value, json};

use super::{CmdResult, ConnArgs, Session, output};

#[derive(clap::Args)]
pub(crate) struct AliasArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,

    #[command(subcommand)]
    action: AliasAction,
}

#[derive(clap::Subcommand)]
enum AliasAction {
    /// Name a key: ALIAS is alias/ and 1 to 250 of A-Z a-z 0-9 / _ - (e.g. alias/orders).
    Create {
        alias: String,
        /// The key to name, by keyid (an alias cannot name another alias)
        #[arg(long, value_name = "KEYID")]
        key: String,
    },
    /// Point an alias at another key of the same kind and usage.
    Update {
        alias: String,
        /// The key the alias names from now on, by keyid
        #[arg(long, value_name = "KEYID")]
        key: String,
    },
    /// Remove an alias; the key stays.
    Delete { alias: String },
    /// List this app's aliases, or those of one key.
    List {
        /// Only the aliases of this key (a keyid or an alias)
        #[arg(long, value_name = "KEYID")]
        key: Option<String>,
        /// Print JSON (the server's ListAliases items) instead of a table
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(s: &Session, args: &AliasArgs) -> CmdResult {
    let c = &s.client;
    match &args.action {
        AliasAction::Create { alias, key } => {
            c.create_alias(alias, key).await?;
            output::line(format_args!("{alias} names {key}"))?;
        }
        AliasAction::Update { alias, key } => {
            c.update_alias(alias, key).await?;
            output::line(format_args!("{alias} names {key}"))?;
        }
        AliasAction::Delete { alias } => {
            c.delete_alias(alias).await?;
            output::line(format_args!("deleted {alias}"))?;
        }
        AliasAction::List { key, json } => {
            let aliases = c.list_aliases(key.as_deref()).await?;
            if *json {
                output::line(list_json(&aliases))?;
            } else {
                output::stdout(table(&aliases).as_bytes())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list_json(aliases: &[Alias]) -> Value {
    aliases
        .iter()
        .map(|a| json!({"alias": a.alias, "keyid": a.keyid}))
        .collect()
}

fn table(aliases: &[Alias]) -> String {
    let rows = aliases
        .iter()
        .map(|a| vec![a.alias.clone(), a.keyid.clone()]);
    let mut out = output::table(&["ALIAS", "KEYID"], rows);
    if aliases.is_empty() {
        out.push_str("(no aliases: create one with 'ehsm alias create alias/NAME --key KEYID')\n");
    }
    out
}
