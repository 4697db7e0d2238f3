//! A small file system for disk-full tests: a tmpfs of a given size, mounted on a fresh
//! temporary directory for one test and unmounted when dropped. Shared by the store's disk-full
//! test and the end-to-end one (`crates/ehsm/tests/disk_full.rs` includes this file by path).
//!
//! Mounting needs root (or CAP_SYS_ADMIN). Where it is not allowed the test prints why and
//! skips; with `CI` set it fails instead, so CI never silently loses the test.

use std::path::Path;
use std::process::Command;

/// A mounted tmpfs; unmounted (and its directory removed) on drop.
pub(crate) struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    /// A tmpfs of `bytes` bytes, mode 0700; `None`, after saying why, where mounting is not
    /// permitted (a panic when `CI` is set).
    pub(crate) fn mount(bytes: u64) -> Option<SmallFs> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0700")])
            .arg("ehsm-test")
            .arg(dir.path())
            .output();
        let why = match out {
            Ok(out) if out.status.success() => return Some(SmallFs { dir }),
            Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            Err(e) => format!("cannot run mount: {e}"),
        };
        let in_ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
        assert!(
            !in_ci,
            "CI is set but a tmpfs cannot be mounted ({why}): the disk-full test must run in CI"
        );
        eprintln!("SKIPPED: cannot mount a small tmpfs ({why}); run as root to test a full disk");
        None
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // A lazy unmount also succeeds while a process that failed the test still holds a file
        // open; the mount disappears as soon as that process exits.
        let done = Command::new("umount")
            .arg("--lazy")
            .arg(self.dir.path())
            .status();
        if !done.is_ok_and(|s| s.success()) {
            eprintln!("could not unmount {}", self.dir.path().display());
        }
    }
}
