//! `ehsm`: the KMS server and its tools, in one binary.
//!
//! Exit codes: 0 success, 1 the command failed (the message says why), 2 usage error (from clap).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod serve;

/// ehsm: a key management service whose keys exist in plaintext only inside a trusted
/// execution environment. Wire-compatible with Intel eHSM-KMS clients.
#[derive(Parser)]
#[command(name = "ehsm", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the KMS: the eHSM REST API over HTTPS, on the data directory's sealed domain key and
    /// embedded SQLite database (created on first start).
    Serve(serve::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EHSM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ehsm: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
