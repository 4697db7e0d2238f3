//! `ehsm encrypt`, `decrypt`, `reencrypt`, `sign`, `verify` and `datakey`.

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ehsm_client::{DigestMode, MessageType, PaddingMode};
use serde_json::json;

use super::names::{Digest, SignPadding};
use super::output::{Output, base64_line, decode_base64, read_input};
use super::{CmdResult, ConnArgs, Session, output};

/// The most Encrypt takes and Sign hashes (spec §6.10).
const MAX_MESSAGE: usize = 6144;
/// The longest ciphertext Decrypt takes: base64 of at most 8232 characters (spec §6.10).
const MAX_CIPHERTEXT: usize = 6174;
/// The longest signature the server checks (spec §6.10).
const MAX_SIGNATURE: usize = 512;
/// Base64 text is read up to this size (with line breaks) before decoding.
const MAX_BASE64_TEXT: usize = 64 * 1024;

#[derive(clap::Args)]
pub(crate) struct EncryptArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,

    /// The symmetric key (AES-GCM or SM4)
    #[arg(long, value_name = "KEYID")]
    key: String,

    /// Additional authenticated data: the same text must be given to decrypt (AES-GCM only;
    /// SM4 ignores it)
    #[arg(long, value_name = "TEXT")]
    aad: Option<String>,

    /// Read the plaintext (1 to 6144 bytes) from FILE; '-' is stdin [default: stdin]
    #[arg(long = "in", value_name = "FILE")]
    input: Option<PathBuf>,

    /// Write the ciphertext to FILE; '-' is stdout [default: stdout]
    #[arg(long = "out", value_name = "FILE")]
    output: Option<PathBuf>,

    /// Write the ciphertext as base64 text instead of raw bytes
    #[arg(long)]
    base64: bool,
}

#[derive(clap::Args)]
pub(crate) struct DecryptArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,

    /// The key that encrypted it
    #[arg(long, value_name = "KEYID")]
    key: String,

    /// The additional authenticated data given to encrypt
    #[arg(long, value_name = "TEXT")]
    aad: Option<String>,

    /// Read the ciphertext from FILE; '-' is stdin [default: stdin]
    #[arg(long = "in", value_name = "FILE")]
    input: Option<PathBuf>,

    /// Write the plaintext to FILE (created with mode 0600); '-' is stdout [default: stdout]
    #[arg(long = "out", value_name = "FILE")]
    output: Option<PathBuf>,

    /// Read the ciphertext as base64 text (as 'ehsm encrypt --base64' writes it)
    #[arg(long)]
    base64: bool,
}

pub(crate) async fn encrypt(s: &Session, a: &EncryptArgs) -> CmdResult {
    let plaintext = read_input(
        a.input.as_deref(),
        MAX_MESSAGE,
        "encrypt takes at most 6144 bytes; for more, encrypt the data locally with a key from \
         'ehsm datakey' (envelope encryption)",
    )?;
    if plaintext.is_empty() {
        fail!("the plaintext is empty: encrypt takes 1 to 6144 bytes");
    }
    let aad = a.aad.as_deref().map(str::as_bytes);
    let ciphertext = s.client.encrypt(&a.key, &plaintext, aad).await?;
    write_binary(a.output.as_deref(), &ciphertext, a.base64)
}

pub(crate) async fn decrypt(s: &Session, a: &DecryptArgs) -> CmdResult {
    let ciphertext = read_maybe_base64(a.input.as_deref(), MAX_CIPHERTEXT, a.base64, "ciphertext")?;
    let aad = a.aad.as_deref().map(str::as_bytes);
    let plaintext = s.client.decrypt(&a.key, &ciphertext, aad).await?;
    let out = Output {
        path: a.output.as_deref(),
        private: true,
        binary: false,
    };
    out.write(&plaintext)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub(crate) struct ReencryptArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,

    /// The symmetric key that encrypted it
    #[arg(long, value_name = "KEYID")]
    key: String,

    /// The additional authenticated data given to encrypt
    #[arg(long, value_name = "TEXT")]
    aad: Option<String>,

    /// The symmetric key to encrypt under, at its primary version [default: --key, which moves
    /// the ciphertext to that key's newest version]
    #[arg(long, value_name = "KEYID")]
    to_key: Option<String>,

    /// The additional authenticated data of the new ciphertext; '' for none [default: --aad]
    #[arg(long, value_name = "TEXT")]
    to_aad: Option<String>,

    /// Read the ciphertext from FILE; '-' is stdin [default: stdin]
    #[arg(long = "in", value_name = "FILE")]
    input: Option<PathBuf>,

    /// Write the new ciphertext to FILE; '-' is stdout [default: stdout]
    #[arg(long = "out", value_name = "FILE")]
    output: Option<PathBuf>,

    /// Read and write the ciphertexts as base64 text
    #[arg(long)]
    base64: bool,
}

/// The plaintext never leaves the server: it decrypts and encrypts in one step (ReEncrypt).
pub(crate) async fn reencrypt(s: &Session, a: &ReencryptArgs) -> CmdResult {
    let ciphertext = read_maybe_base64(a.input.as_deref(), MAX_CIPHERTEXT, a.base64, "ciphertext")?;
    let aad = a.aad.as_deref().map(str::as_bytes);
    let to_key = a.to_key.as_deref().unwrap_or(&a.key);
    // The same context by default: a ciphertext moved to a new key version keeps its binding.
    let to_aad = a.to_aad.as_deref().map_or(aad, |t| Some(t.as_bytes()));
    let moved = s
        .client
        .reencrypt(&a.key, &ciphertext, aad, to_key, to_aad)
        .await?;
    write_binary(a.output.as_deref(), &moved.ciphertext, a.base64)
}

/// What sign and verify share.
#[derive(clap::Args)]
pub(crate) struct SigningArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,

    /// The RSA, EC or SM2 key (created with usage sign-verify)
    #[arg(long, value_name = "KEYID")]
    key: String,

    /// Digest; SM2 keys always sign with SM3 and need --digest sm3 to verify
    #[arg(long, value_enum, ignore_case = true, default_value = "sha256")]
    digest: Digest,

    /// RSA padding (EC and SM2 ignore it; none is refused for RSA)
    #[arg(long, value_enum, ignore_case = true, default_value = "pkcs1")]
    padding: SignPadding,

    /// The input is already the digest of the message (exactly the digest's length), not the
    /// message
    #[arg(long)]
    prehashed: bool,

    /// Read the message (at most 6144 bytes) from FILE; '-' is stdin [default: stdin]
    #[arg(long = "in", value_name = "FILE")]
    input: Option<PathBuf>,

    /// The signature is base64 text instead of raw bytes
    #[arg(long)]
    base64: bool,

    /// Sign with, or verify against, this version of the key only [default: sign with the
    /// primary version; verify against any version]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    key_version: Option<u32>,
}

#[derive(clap::Args)]
pub(crate) struct SignArgs {
    #[command(flatten)]
    pub(crate) m: SigningArgs,

    /// Write the signature to FILE; '-' is stdout [default: stdout]
    #[arg(long = "out", value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) m: SigningArgs,

    /// The signature to check (raw bytes, or base64 text with --base64)
    #[arg(long, value_name = "FILE")]
    signature: PathBuf,
}

impl SigningArgs {
    fn message(&self) -> anyhow::Result<Vec<u8>> {
        read_input(
            self.input.as_deref(),
            MAX_MESSAGE,
            "sign and verify take at most 6144 bytes; for more, hash the message yourself and \
             pass the digest with --prehashed",
        )
    }

    fn modes(&self) -> (DigestMode, PaddingMode, MessageType) {
        let message_type = if self.prehashed {
            MessageType::Digest
        } else {
            MessageType::Raw
        };
        (self.digest.0, self.padding.0, message_type)
    }
}

pub(crate) async fn sign(s: &Session, a: &SignArgs) -> CmdResult {
    let m = &a.m;
    let message = m.message()?;
    let (digest, padding, message_type) = m.modes();
    let signature = match m.key_version {
        // Plain Sign, as upstream's servers know it.
        None => {
            s.client
                .sign(&m.key, digest, padding, message_type, &message)
                .await?
        }
        version => {
            s.client
                .sign_versioned(&m.key, version, digest, padding, message_type, &message)
                .await?
                .value
        }
    };
    write_binary(a.output.as_deref(), &signature, m.base64)
}

pub(crate) async fn verify(s: &Session, a: &VerifyArgs) -> CmdResult {
    let m = &a.m;
    let signature = read_maybe_base64(
        Some(a.signature.as_path()),
        MAX_SIGNATURE,
        m.base64,
        "signature",
    )?;
    let message = m.message()?;
    let (digest, padding, message_type) = m.modes();
    let c = &s.client;
    let valid = match m.key_version {
        None => {
            c.verify(&m.key, digest, padding, message_type, &message, &signature)
                .await?
        }
        version => c
            .verify_versioned(
                &m.key,
                version,
                digest,
                padding,
                message_type,
                &message,
                &signature,
            )
            .await?
            .is_some(),
    };
    output::line(if valid { "valid" } else { "invalid" })?;
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[derive(clap::Args)]
pub(crate) struct DatakeyArgs {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,

    /// The symmetric key that encrypts the data key (internal AES-GCM or SM4)
    #[arg(long, value_name = "KEYID")]
    key: String,

    /// The data key's length in bytes, 1 to 1024 (32 for an AES-256 key)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    len: u32,

    /// Additional authenticated data, needed again to decrypt the data key
    #[arg(long, value_name = "TEXT")]
    aad: Option<String>,

    /// Only the encrypted data key (store it; 'ehsm decrypt' recovers the plaintext)
    #[arg(long)]
    no_plaintext: bool,
}

pub(crate) async fn datakey(s: &Session, a: &DatakeyArgs) -> CmdResult {
    let aad = a.aad.as_deref().map(str::as_bytes);
    let value = if a.no_plaintext {
        let ciphertext = s
            .client
            .generate_data_key_without_plaintext(&a.key, a.len, aad)
            .await?;
        json!({"keyid": a.key, "ciphertext": STANDARD.encode(ciphertext)})
    } else {
        let dk = s.client.generate_data_key(&a.key, a.len, aad).await?;
        json!({
            "keyid": a.key,
            "plaintext": STANDARD.encode(&dk.plaintext),
            "ciphertext": STANDARD.encode(&dk.ciphertext),
        })
    };
    output::line(value)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes a ciphertext or signature: raw, or base64 text with a newline.
fn write_binary(path: Option<&std::path::Path>, bytes: &[u8], base64: bool) -> CmdResult {
    let out = Output {
        path,
        private: false,
        binary: !base64,
    };
    if base64 {
        out.write(&base64_line(bytes))?;
    } else {
        out.write(bytes)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads raw bytes (at most `limit`), or base64 text that decodes to at most `limit` bytes.
fn read_maybe_base64(
    path: Option<&std::path::Path>,
    limit: usize,
    base64: bool,
    what: &str,
) -> anyhow::Result<Vec<u8>> {
    let too_big = format!("a {what} is at most {limit} bytes");
    if !base64 {
        return read_input(path, limit, &too_big);
    }
    let bytes = decode_base64(&read_input(path, MAX_BASE64_TEXT, &too_big)?, what)?;
    if bytes.len() > limit {
        anyhow::bail!("the {what} is longer than {limit} bytes, the most the server takes");
    }
    Ok(bytes)
}
