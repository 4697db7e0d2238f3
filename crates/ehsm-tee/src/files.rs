//! Small, careful file helpers for secrets kept on the host: owner-only permissions, and
//! "create once" publishing that can never overwrite an existing file, even when two processes
//! start on the same data directory at the same time.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Error;

/// Permission bits a secret file may have: read and write for the owner only.
const OWNER_ONLY: u32 = 0o600;

/// Writes `bytes` to `path` only if no file is there yet, atomically: the content is written and
/// synced to a temporary file, which is then hard-linked into place (linking fails if `path`
/// exists, unlike rename, which would replace it). Returns `false` if `path` already existed, in
/// which case the caller should read the existing file instead.
///
/// Where hard links are not implemented (Gramine's library OS answers `link` with ENOSYS), the
/// temporary file is renamed into place if `path` does not exist yet. That is still atomic for
/// readers, but two processes publishing the same file at the same instant could both succeed,
/// the second replacing the first; inside one enclave there is one ehsm process.
pub fn publish_new(path: &Path, bytes: &[u8]) -> Result<bool, Error> {
    publish_new_with(path, bytes, |from, to| fs::hard_link(from, to))
}

/// [`publish_new`] with the linking step as a parameter, so tests can take hard links away.
fn publish_new_with(
    path: &Path,
    bytes: &[u8],
    link: impl Fn(&Path, &Path) -> std::io::Result<()>,
) -> Result<bool, Error> {
    // A name no other writer uses, in this process or another: each attempt has its own
    // temporary file, so concurrent writers can never truncate each other's content.
    static ATTEMPT: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("ehsm"),
        std::process::id(),
        ATTEMPT.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_synced(&tmp, bytes).and_then(|()| match link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
            if path.exists() {
                Ok(false)
            } else {
                fs::rename(&tmp, path).map_err(Error::io(path))?;
                Ok(true)
            }
        }
        Err(e) => Err(Error::io(path)(e)),
    });
    // The temporary name is removed in every case; the published file keeps its own link.
    let _ = fs::remove_file(&tmp);
    if result? {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::io(dir))?;
        Ok(true)
    } else {
        Ok(false)
    }
}

/// Replaces the content of `path` with `bytes` atomically: written and synced to a temporary
/// file, renamed over `path`, and the directory synced, so that a crash leaves either the old
/// file or the new one, never a mix. For files that change on purpose (the key server's domain
/// keys after a rotation); callers serialise their own writers.
pub fn replace(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.replace-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("ehsm"),
        std::process::id()
    ));
    let result = write_synced(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path).map_err(Error::io(path)))
        .and_then(|()| {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(Error::io(dir))
        });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(OWNER_ONLY)
        .open(path)
        .map_err(Error::io(path))?;
    f.write_all(bytes).map_err(Error::io(path))?;
    f.sync_all().map_err(Error::io(path))
}

/// Reads a secret file, refusing it if anyone but the owner may read or write it: a secret that
/// others could have read is not a secret any more, and the operator must know.
pub fn read_owner_only(path: &Path) -> Result<Vec<u8>, Error> {
    let meta = fs::metadata(path).map_err(Error::io(path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Error::BadFile {
            path: path.to_owned(),
            reason: "readable or writable by group or others; it must be mode 0600 (chmod 600)",
        });
    }
    fs::read(path).map_err(Error::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without hard links (Gramine), the file is still published once, with its mode, and no
    /// temporary file is left behind.
    #[test]
    fn publishes_once_without_hard_links() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        let no_links =
            |_: &Path, _: &Path| Err(std::io::Error::from(std::io::ErrorKind::Unsupported));
        assert!(publish_new_with(&p, b"first", no_links).unwrap());
        assert!(!publish_new_with(&p, b"second", no_links).unwrap());
        assert_eq!(read_owner_only(&p).unwrap(), b"first");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn publishes_once_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        assert!(publish_new(&p, b"first").unwrap());
        assert!(!publish_new(&p, b"second").unwrap());
        assert_eq!(read_owner_only(&p).unwrap(), b"first");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn replace_swaps_the_content_and_keeps_it_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        replace(&p, b"first").unwrap();
        replace(&p, b"second").unwrap();
        assert_eq!(read_owner_only(&p).unwrap(), b"second");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(replace(Path::new("/nonexistent-ehsm-dir/secret"), b"x").is_err());
    }

    #[test]
    fn refuses_group_readable_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        publish_new(&p, b"x").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(read_owner_only(&p), Err(Error::BadFile { .. })));
    }

    #[test]
    fn missing_directory_is_an_io_error() {
        let err = publish_new(Path::new("/nonexistent-ehsm-dir/secret"), b"x").unwrap_err();
        assert!(matches!(err, Error::Io { .. }));
    }
}
