//! The client commands: each is a few lines of glue over the `ehsm-client` SDK.
//!
//! Every command runs on one tokio runtime and follows the same path: resolve the connection
//! (flags, `EHSM_*` variables, then the profile; [`conn`]), make the SDK call(s), write the
//! result to stdout or a file ([`output`]). A failure becomes one line on stderr, `ehsm: ` and
//! what went wrong and what to do next ([`explain`]), and exit code 1.

use std::process::ExitCode;

/// Returns a local [`Failure`] with a formatted message, as `anyhow::bail!` does for
/// `anyhow::Result`.
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::cli::Failure::Local(anyhow::anyhow!($($arg)*)))
    };
}

mod aliases;
pub(crate) mod conn;
mod crypto;
mod enroll;
mod explain;
mod import;
mod keys;
pub(crate) mod names;
pub(crate) mod output;
mod secrets;
mod wrap;

pub(crate) use conn::{ConnArgs, Need, Session};

/// The client subcommands (flattened into `ehsm`'s own).
#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Register a new app with the server and save its appid and apikey in the profile.
    Enroll(enroll::Args),
    /// Create, list, describe, rotate, enable, disable and delete keys.
    Key(keys::KeyArgs),
    /// Name keys: an alias (alias/NAME) works wherever a command takes a key.
    Alias(aliases::AliasArgs),
    /// Encrypt up to 6144 bytes with a symmetric key (AES-GCM, SM4).
    Encrypt(crypto::EncryptArgs),
    /// Decrypt what 'ehsm encrypt' (or 'ehsm datakey') produced.
    Decrypt(crypto::DecryptArgs),
    /// Decrypt and encrypt again under another key, or the same key's newest version, inside
    /// the server.
    Reencrypt(crypto::ReencryptArgs),
    /// Sign a message (or its digest) with an RSA, EC or SM2 key.
    Sign(crypto::SignArgs),
    /// Check a signature; prints valid or invalid, exit code 0 if valid, 1 if invalid.
    #[command(
        after_help = "Exit codes: 0 the signature is valid; 1 it is invalid (stdout says \
                            'invalid') or the check failed (stderr says why); 2 usage error."
    )]
    Verify(crypto::VerifyArgs),
    /// Generate a data key for envelope encryption: JSON with the base64 plaintext and ciphertext.
    Datakey(crypto::DatakeyArgs),
    /// Print the public key of an RSA, EC or SM2 key as PEM.
    Pubkey(keys::PubkeyArgs),
    /// Store, version, read and delete secrets (text values kept encrypted by the server).
    Secret(secrets::SecretArgs),
    /// Bring your own key: wrap raw key bytes for the server and import them into an external key.
    Import(import::Args),
    /// Load-test a running server: concurrent workers, latency percentiles and throughput.
    Bench(crate::bench::Args),
}

/// Why a command failed.
pub(crate) enum Failure {
    /// An SDK call failed; [`Session::explain`] turns it into a message with a hint.
    Call(ehsm_client::Error),
    /// Anything else, already worded for the user by its context.
    Local(anyhow::Error),
}

impl From<ehsm_client::Error> for Failure {
    fn from(e: ehsm_client::Error) -> Self {
        Failure::Call(e)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Local(e)
    }
}

/// What a command returns.
pub(crate) type CmdResult = Result<ExitCode, Failure>;

/// Runs a client command on a fresh runtime and reports its failure, if any.
pub(crate) fn run(command: Command) -> ExitCode {
    block_on(dispatch(command))
}

/// Runs `command` on a fresh runtime; its error is the one line to print (after `ehsm: `).
pub(crate) fn block_on(command: impl Future<Output = Result<ExitCode, String>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ehsm: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("ehsm: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> Result<ExitCode, String> {
    let (conn, need) = match &command {
        Command::Enroll(a) => (&a.conn, Need::Nothing),
        Command::Key(a) => (&a.conn, Need::Credentials),
        Command::Alias(a) => (&a.conn, Need::Credentials),
        Command::Encrypt(a) => (&a.conn, Need::Credentials),
        Command::Decrypt(a) => (&a.conn, Need::Credentials),
        Command::Reencrypt(a) => (&a.conn, Need::Credentials),
        Command::Sign(a) => (&a.m.conn, Need::Credentials),
        Command::Verify(a) => (&a.m.conn, Need::Credentials),
        Command::Datakey(a) => (&a.conn, Need::Credentials),
        Command::Pubkey(a) => (&a.conn, Need::Credentials),
        Command::Import(a) => (&a.conn, Need::Credentials),
        Command::Secret(a) => (&a.conn, Need::Credentials),
        Command::Bench(a) => (&a.conn, Need::FlagsOnly),
    };
    let session = conn.open(need).map_err(|e| format!("{e:#}"))?;
    let result = match &command {
        Command::Enroll(a) => enroll::run(&session, a).await,
        Command::Key(a) => keys::run(&session, a).await,
        Command::Alias(a) => aliases::run(&session, a).await,
        Command::Encrypt(a) => crypto::encrypt(&session, a).await,
        Command::Decrypt(a) => crypto::decrypt(&session, a).await,
        Command::Reencrypt(a) => crypto::reencrypt(&session, a).await,
        Command::Sign(a) => crypto::sign(&session, a).await,
        Command::Verify(a) => crypto::verify(&session, a).await,
        Command::Datakey(a) => crypto::datakey(&session, a).await,
        Command::Pubkey(a) => keys::pubkey(&session, a).await,
        Command::Import(a) => import::run(&session, a).await,
        Command::Secret(a) => secrets::run(&session, a).await,
        Command::Bench(a) => crate::bench::run(&session, a).await,
    };
    result.map_err(|f| session.explain(&f))
}
