//! Reading a command's input and writing its output: files or stdin/stdout, raw or base64.
//!
//! Normal output goes through a locked `std::io::stdout()` handle, not `println!`, so that a
//! closed pipe (`ehsm key list | head -1`) ends the command quietly instead of panicking, as
//! ripgrep does.

use std::fmt::Write as _;
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

/// An aligned text table: a header row, then `rows`, columns two spaces apart. Cells are
/// shown with control characters escaped, so that a name holding a newline or a tab cannot
/// break the table.
pub(crate) fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| (*h).to_owned()).collect())
        .chain(rows.map(|row| {
            row.into_iter()
                .map(|cell| {
                    cell.chars()
                        .map(|c| {
                            if c.is_control() {
                                c.escape_default().to_string()
                            } else {
                                c.to_string()
                            }
                        })
                        .collect()
                })
                .collect()
        }))
        .collect();
    let mut widths = vec![0; header.len()];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM` in UTC.
pub(crate) fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14 22:13");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00");
        assert_eq!(utc(-1), "1969-12-31 23:59");
        assert_eq!(utc(4_102_444_799_999), "2099-12-31 23:59");
    }

    #[test]
    fn tables_align_and_escape_control_characters() {
        let t = table(
            &["A", "B"],
            [
                vec!["x\ty".to_owned(), "é".to_owned()],
                vec!["z".to_owned(), "line\nbreak".to_owned()],
            ]
            .into_iter(),
        );
        assert_eq!(t, "A     B\nx\\ty  é\nz     line\\nbreak\n");
    }
}
