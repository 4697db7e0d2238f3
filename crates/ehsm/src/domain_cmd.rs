//! `ehsm domain` (and `ehsm dkeyserver backup|recover`): backup and recovery of a data directory's domain keys, in the platform's or an HSM's custody.
//!
//! `backup` splits the node's domain keys into N shares, any M of which recover them, each
//! encrypted (inside the core) to one custodian's RSA public key, and writes one file per share.
//! `recover` decrypts M shares with the custodians' private keys, rebuilds the domain keys and
//! seals them into a new data directory for this platform. Neither ever creates a new domain or
//! replaces an existing one: that would orphan every stored key.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use ehsm_domain::DomainKeySet;
use ehsm_domain::backup::{CustodianKey, EncryptedShare, decrypt_share};
use ehsm_domain::keyfile::KeyFile;
use ehsm_kms::server::Needs;

use crate::cli::output;
use crate::platform_args::{PlatformArgs, custody};

/// `ehsm domain`.
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Split this node's domain keys into shares for custodians: any --threshold of them
    /// recover the domain. Each share is encrypted to one custodian's RSA public key (3072 bits
    /// or more) and written to --out as share-<i>-of-<n>.ehsm-share (mode 0600). Refuses a data
    /// directory that has no domain yet.
    Backup(BackupArgs),
    /// Rebuild the domain keys from shares (or take them from a running key server of the
    /// domain, --from) and seal them into a new data directory, so that 'ehsm serve' or
    /// 'ehsm dkeyserver' on it serves the old keys (for a standalone node, copy the database,
    /// ehsm.db, there too). Refuses a data directory that already has a domain.
    Recover(RecoverArgs),
}

/// The data directory and its custody.
#[derive(clap::Args)]
struct DirArgs {
    /// The node's data directory.
    #[arg(long, env = "EHSM_DATA_DIR", value_name = "DIR")]
    data_dir: PathBuf,
    #[command(flatten)]
    platform: PlatformArgs,
    /// The domain keys are in the custody of a PKCS#11 HSM: its URI, as 'ehsm dkeyserver --hsm'
    /// takes it ('pkcs11:token=LABEL;object=KEY-LABEL?module-path=...&pin-source=file:...').
    #[arg(long, env = "EHSM_HSM", value_name = "pkcs11:URI")]
    hsm: Option<String>,
}

impl DirArgs {
    /// The data directory's domain keys, in the platform's or the HSM's custody; `create` lets
    /// a recovery make an HSM seed for a new data directory.
    fn key_file(&self, create: bool) -> anyhow::Result<KeyFile> {
        let custody = custody(self.hsm.as_deref())?;
        let platform = self.platform.open_for(&self.data_dir, &custody)?;
        KeyFile::open(&self.data_dir, &custody, &*platform, create)
    }
}

#[derive(clap::Args)]
pub(crate) struct BackupArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// How many shares recover the domain (M).
    #[arg(long, value_name = "M")]
    threshold: u8,
    /// A custodian's RSA public key (PEM, 'PUBLIC KEY' or 'RSA PUBLIC KEY'); once per
    /// custodian. Share i is encrypted to the i-th key.
    #[arg(long = "custodian", value_name = "FILE.pem", required = true)]
    custodians: Vec<PathBuf>,
    /// Directory to write the share files to (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(clap::Args)]
pub(crate) struct RecoverArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// A share file and the private key (PEM, unencrypted PKCS#8 or PKCS#1) of the custodian it
    /// is encrypted to, as SHARE:KEY; at least the backup's threshold of them. Or --from.
    #[arg(
        long = "share",
        value_name = "SHARE:KEY",
        required_unless_present = "from"
    )]
    shares: Vec<String>,
    /// Instead of shares: take the domain keys from a running key server of the domain (a
    /// worker, when the root is lost), as HOST:PORT, over RA-TLS. Its evidence must satisfy
    /// --policy, and its policy must accept this process's.
    #[arg(
        long,
        value_name = "HOST:PORT",
        conflicts_with = "shares",
        requires = "policy"
    )]
    from: Option<String>,
    /// The policy (TOML) the key server's RA-TLS evidence must satisfy, with --from.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    #[command(flatten)]
    verify: crate::domain_roles::CollateralArgs,
}

pub(crate) fn run(args: Args) -> ExitCode {
    match run_command(args.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ehsm: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `backup` or `recover` (also `ehsm dkeyserver backup|recover`, on a root's data
/// directory, which holds the same sealed file).
pub(crate) fn run_command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Backup(args) => run_backup(&args),
        Command::Recover(args) => run_recover(&args),
    }
}

fn run_backup(args: &BackupArgs) -> anyhow::Result<()> {
    let data_dir = &args.dir.data_dir;
    // Checked before opening the platform, which on sim would create a sealing secret in it.
    let sealed = data_dir.join(ehsm_domain::standalone::SEALED_FILE);
    anyhow::ensure!(
        sealed.exists(),
        "{} does not exist: {} has no domain to back up (give the data directory of a node that \
         has run 'ehsm serve')",
        sealed.display(),
        data_dir.display()
    );
    let custodians = args
        .custodians
        .iter()
        .map(|path| {
            let pem = fs::read(path)
                .with_context(|| format!("cannot read the custodian key {}", path.display()))?;
            CustodianKey::from_pem(&pem)
                .with_context(|| format!("custodian key {}", path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let dks = args.dir.key_file(false)?.load_existing()?;
    let shares = dks
        .split_to_custodians(args.threshold, &custodians)
        .context("cannot split the domain keys")?;
    let total = shares.len();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    // Check every target first, so that a clash leaves no partial set of new shares behind.
    let paths: Vec<PathBuf> = shares
        .iter()
        .map(|s| {
            args.out
                .join(format!("share-{}-of-{total}.ehsm-share", s.index()))
        })
        .collect();
    if let Some(existing) = paths.iter().find(|p| p.exists()) {
        anyhow::bail!(
            "{} already exists: refusing to overwrite a share of an earlier backup; choose another \
             --out directory",
            existing.display()
        );
    }
    for (share, path) in shares.iter().zip(&paths) {
        write_new(path, share.as_bytes())?;
    }
    let first = shares.first().context("no shares were made")?;
    output::line(format_args!("backup id: {}", first.backup_id()))?;
    output::line(format_args!("fingerprint: {}", dks.fingerprint()))?;
    output::line(format_args!("threshold: {} of {total}", args.threshold))?;
    for ((share, path), key) in shares.iter().zip(&paths).zip(&args.custodians) {
        output::line(format_args!(
            "share {}: {} (custodian {}, key id {})",
            share.index(),
            path.display(),
            key.display(),
            share.custodian_key_id()
        ))?;
    }
    Ok(())
}

fn run_recover(args: &RecoverArgs) -> anyhow::Result<()> {
    let data_dir = &args.dir.data_dir;
    // Refused before anything is decrypted or created, with the reason the operator needs.
    let sealed = data_dir.join(ehsm_domain::standalone::SEALED_FILE);
    anyhow::ensure!(
        !sealed.exists(),
        "{} already exists: refusing to replace a domain. Recover into a new, empty data \
         directory",
        sealed.display()
    );
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let (dks, source) = match (&args.from, &args.policy) {
        (Some(from), Some(policy)) => (fetch_from(args, from, policy)?, from.clone()),
        _ => from_shares(&args.shares)?,
    };
    args.dir.key_file(true)?.install(&dks)?;
    output::line(format_args!("fingerprint: {}", dks.fingerprint()))?;
    output::line(format_args!(
        "recovered the domain keys into {} ({source}; versions {:?})",
        data_dir.display(),
        dks.versions().collect::<Vec<_>>()
    ))?;
    Ok(())
}

/// The domain keys rebuilt from shares, and a summary ("3 of 5 shares").
fn from_shares(shares: &[String]) -> anyhow::Result<(DomainKeySet, String)> {
    let mut decrypted = Vec::with_capacity(shares.len());
    for pair in shares {
        let (share_path, key_path) = pair.rsplit_once(':').with_context(|| {
            format!(
                "--share {pair}: expected SHARE:KEY (a share file and its custodian's private key)"
            )
        })?;
        let bytes = fs::read(share_path).with_context(|| format!("cannot read {share_path}"))?;
        let share = EncryptedShare::from_bytes(&bytes).with_context(|| share_path.to_owned())?;
        // The custodian's private key: wiped from memory once the share is open.
        let key = zeroize::Zeroizing::new(
            fs::read(key_path).with_context(|| format!("cannot read {key_path}"))?,
        );
        let opened = decrypt_share(&share, &key).with_context(|| {
            format!(
                "{share_path} does not open with {key_path}: the share is corrupted, or the key is \
                 not its custodian's"
            )
        })?;
        decrypted.push(opened);
    }
    let first = decrypted.first().context("no shares given")?;
    let (threshold, total) = (first.threshold(), first.total());
    anyhow::ensure!(
        decrypted.len() >= usize::from(threshold),
        "{} share(s) given, but this backup needs {threshold} of its {total} shares",
        decrypted.len()
    );
    let dks = ehsm_domain::backup::recover(&decrypted).context("cannot recover the domain keys")?;
    Ok((dks, format!("{} of {total} shares", decrypted.len())))
}

/// The domain keys as the key server at `from` hands them over RA-TLS.
fn fetch_from(args: &RecoverArgs, from: &str, policy: &Path) -> anyhow::Result<DomainKeySet> {
    let endpoint = ehsm_domain::channel::Endpoint::parse(from).context("from")?;
    let platform = args
        .dir
        .platform
        .open(Some(&args.dir.data_dir), Needs::Evidence)?;
    let tls = args.verify.tls(platform, policy)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(ehsm_domain::channel::fetch(&endpoint, &tls))
}

/// Writes a new file with mode 0600, refusing to replace one.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}
