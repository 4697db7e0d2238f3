//! Reading a command's input and writing its output: files or stdin/stdout, raw or base64.
//!
//! Normal output goes through a locked `std::io::stdout()` handle, not `println!`, so that a
//! closed pipe (`ehsm key list | head -1`) ends the command quietly instead of panicking, as
//! ripgrep does.

use std::fs;
use std::io::{ErrorKind, IsTerminal as _, Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// `-` or nothing means stdin/stdout.
fn is_std(path: Option<&Path>) -> bool {
    path.is_none_or(|p| p.as_os_str() == "-")
}

fn describe(path: Option<&Path>) -> String {
    match path {
        Some(p) if !is_std(Some(p)) => p.display().to_string(),
        _ => "standard input".to_owned(),
    }
}

/// Reads all of `path` (or stdin), refusing more than `limit` bytes without reading them all;
/// `too_big` says what to do instead.
pub(crate) fn read_input(
    path: Option<&Path>,
    limit: usize,
    too_big: &str,
) -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let read = match path.filter(|p| !is_std(Some(p))) {
        None => std::io::stdin().lock().take(cap).read_to_end(&mut data),
        Some(p) => fs::File::open(p).and_then(|f| f.take(cap).read_to_end(&mut data)),
    };
    read.with_context(|| format!("cannot read {}", describe(path)))?;
    if data.len() > limit {
        bail!("{} is larger than {limit} bytes: {too_big}", describe(path));
    }
    Ok(data)
}

/// Decodes base64 text, ignoring surrounding and embedded whitespace (line breaks).
pub(crate) fn decode_base64(text: &[u8], what: &str) -> anyhow::Result<Vec<u8>> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    STANDARD.decode(&compact).with_context(|| {
        format!("the {what} is not valid base64 (leave out --base64 for raw bytes)")
    })
}

/// Base64 text with a final newline.
pub(crate) fn base64_line(bytes: &[u8]) -> Vec<u8> {
    let mut text = STANDARD.encode(bytes).into_bytes();
    text.push(b'\n');
    text
}

/// Where a command's output goes.
pub(crate) struct Output<'a> {
    pub(crate) path: Option<&'a Path>,
    /// Plaintext or key material: a new file gets mode 0600 instead of the umask's default.
    pub(crate) private: bool,
    /// Raw binary (ciphertext, signature): refused on a terminal.
    pub(crate) binary: bool,
}

impl Output<'_> {
    /// Writes `bytes` to the file or stdout.
    pub(crate) fn write(&self, bytes: &[u8]) -> anyhow::Result<()> {
        if is_std(self.path) {
            if self.binary && std::io::stdout().is_terminal() {
                bail!(
                    "refusing to write binary output to the terminal: pass --out FILE or \
                     --base64, or redirect the output"
                );
            }
            return stdout(bytes);
        }
        let path: PathBuf = self.path.map(Path::to_path_buf).unwrap_or_default();
        let write = || -> std::io::Result<()> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(if self.private { 0o600 } else { 0o666 })
                .open(&path)?;
            file.write_all(bytes)?;
            file.flush()
        };
        write().with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Writes to stdout; a closed pipe is not an error.
pub(crate) fn stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        result => result.context("cannot write to standard output"),
    }
}

/// Writes a line of text to stdout.
pub(crate) fn line(text: impl core::fmt::Display) -> anyhow::Result<()> {
    stdout(format!("{text}\n").as_bytes())
}
