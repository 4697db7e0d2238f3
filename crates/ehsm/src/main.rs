//! `ehsm`: the KMS server and its tools, in one binary.
//!
//! Exit codes: 0 success; 1 the command failed (one line on stderr says why and what to do
//! next), or `ehsm verify` found the signature invalid; 2 usage error (from clap).
//!
//! `serve` is the server. Every other subcommand is a client of a running server, thin glue over
//! the `ehsm-client` SDK (see `cli/`), and `bench` is a load generator built on the same SDK.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod attest;
mod bench;
mod cli;
mod domain_cmd;
mod domain_roles;
mod platform_args;
mod serve;

/// mimalloc instead of glibc's malloc: a request allocates a few dozen small buffers (JSON
/// values, base64 text), and glibc's allocator was about 15% of the server's CPU per Encrypt
/// (`perf record` under load; docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// ehsm: a key management service whose keys exist in plaintext only inside a trusted
/// execution environment. Wire-compatible with Intel eHSM-KMS clients.
#[derive(Parser)]
#[command(
    name = "ehsm",
    version,
    about,
    long_about = None,
    after_help = "Exit codes: 0 success; 1 failure (the message says why), or 'ehsm verify' found \
                  the signature invalid; 2 usage error.\nClient commands read the server URL and \
                  credentials from flags, EHSM_* variables or the profile written by 'ehsm enroll'."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the KMS: the eHSM REST API over HTTPS, on the data directory's sealed domain key and
    /// embedded SQLite database (created on first start).
    Serve(serve::Args),
    /// Attestation tools: verify a DCAP quote against its collateral and a key-release policy,
    /// show this machine's evidence, attest a running server.
    Attest(attest::Args),
    /// Domain-key backup and recovery of a data directory (a standalone node's; with --hsm, in an
    /// HSM's custody): split the domain keys into shares encrypted to custodians, and recover
    /// them from any threshold of those shares.
    Domain(domain_cmd::Args),
    /// The key server of a domain: holds the domain keys (sealed, or in an HSM's custody) and
    /// hands them over mutual RA-TLS to the dkeycaches (and workers) its policy accepts.
    #[command(name = "dkeyserver")]
    KeyServer(domain_roles::KeyServerArgs),
    /// One per node of a domain: fetches the domain keys from the key server over RA-TLS, keeps
    /// them in memory only, and hands them to the node's 'ehsm serve --domain' processes over a
    /// Unix socket with the same attested channel.
    #[command(name = "dkeycache")]
    KeyCache(domain_roles::CacheArgs),
    #[command(flatten)]
    Client(cli::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs at info by default; client commands only when EHSM_LOG asks, so that a
    // library's log line does not repeat the one-line error message.
    let default_filter = match cli.command {
        Command::Serve(_) | Command::KeyServer(_) | Command::KeyCache(_) => "info",
        Command::Client(_) | Command::Attest(_) | Command::Domain(_) => "off",
    };
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EHSM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        );
    // EHSM_LOG_FORMAT=json gives one JSON object per line, for log collectors.
    if std::env::var("EHSM_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        logs.init();
    }
    match cli.command {
        Command::Serve(args) => match serve::run(args) {
            Ok(code) => code,
            Err(err) => {
                eprintln!("ehsm: error: {err:#}");
                ExitCode::FAILURE
            }
        },
        Command::Client(command) => cli::run(command),
        Command::Attest(args) => attest::run(args),
        Command::Domain(args) => domain_cmd::run(args),
        Command::KeyServer(args) => domain_roles::run_keyserver(args),
        Command::KeyCache(args) => domain_roles::run_cache(args),
    }
}
