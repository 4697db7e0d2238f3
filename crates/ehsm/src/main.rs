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
    /// Run the KMS: open (or create) the data directory and its sealed domain key, start the
    /// trusted core and run its self-tests.
    Serve(serve::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ehsm: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
