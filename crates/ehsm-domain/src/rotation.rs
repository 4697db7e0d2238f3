//! Rotation of a running root: `ehsm dkeyserver rotate` asks the root to rotate, and the root
//! does it with its own custody.
//!
//! Why: the root's sealing key belongs to the root's process (on SGX, to its enclave's
//! measurement; with an HSM, to a session that needs the PIN), and a second process cannot
//! always open it. So while a root runs, the rotate command only drops a request file in the
//! data directory; the root's watcher (every [`crate::keyserver::RELOAD_INTERVAL`]) rotates,
//! writes the outcome (public: version and fingerprint, or the error) to a result file, and
//! removes the request. Without a running root, the command rotates the sealed file itself.
//!
//! A running root holds an exclusive lock on [`RUNNING_FILE`] for its lifetime, which is how the
//! command knows, and which also keeps a second root from running on the same data directory.

use std::fs::{self, File, TryLockError};
use std::io::ErrorKind;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::keyfile::KeyFile;

/// The request file the rotate command creates.
pub const REQUEST_FILE: &str = "rotate.request";
/// The outcome the root writes: `version N fingerprint F`, or `error: ...`.
pub const RESULT_FILE: &str = "rotate.result";
/// Locked by a running root.
pub const RUNNING_FILE: &str = "dkeyserver.running";

/// How long the rotate command waits for the running root.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The running root's lock on its data directory, released when dropped (or when it exits).
#[derive(Debug)]
pub struct Running {
    /// Held for its lock, which the file's closing releases.
    _lock: File,
}

/// Marks `data_dir` as served by this running root; fails if another root runs on it.
pub fn mark_running(data_dir: &Path) -> anyhow::Result<Running> {
    let path = data_dir.join(RUNNING_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Running { _lock: file }),
        Err(TryLockError::WouldBlock) => bail!(
            "another dkeyserver runs on {} (it holds {})",
            data_dir.display(),
            path.display()
        ),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Whether a root runs on `data_dir`.
pub fn root_running(data_dir: &Path) -> bool {
    let Ok(file) = File::options()
        .write(true)
        .open(data_dir.join(RUNNING_FILE))
    else {
        return false;
    };
    matches!(file.try_lock(), Err(TryLockError::WouldBlock))
}

/// Asks the root running on `data_dir` to rotate, and returns its answer (`version N
/// fingerprint F`).
pub fn request(data_dir: &Path) -> anyhow::Result<String> {
    let request = data_dir.join(REQUEST_FILE);
    let result = data_dir.join(RESULT_FILE);
    let _ = fs::remove_file(&result);
    match File::options().write(true).create_new(true).open(&request) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            bail!(
                "a rotation is already pending ({} exists)",
                request.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("creating {}", request.display())),
    }
    let start = Instant::now();
    while request.exists() {
        if start.elapsed() > ANSWER_TIMEOUT {
            let _ = fs::remove_file(&request);
            bail!(
                "the running root did not take the rotation request within {ANSWER_TIMEOUT:?}; \
                 its log says why. The request was withdrawn"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let answer = fs::read_to_string(&result).with_context(|| {
        format!(
            "the root took the request but wrote no {}",
            result.display()
        )
    })?;
    match answer.strip_prefix("error: ") {
        Some(error) => bail!("the running root could not rotate: {error}"),
        None => Ok(answer.trim().to_owned()),
    }
}

/// The root's side: if a request is pending in `file`'s data directory, rotates, writes the
/// outcome and removes the request. Returns the outcome for the root's log, or `None` without a
/// request.
pub fn serve_request(data_dir: &Path, file: &KeyFile) -> Option<anyhow::Result<String>> {
    let request = data_dir.join(REQUEST_FILE);
    if !request.exists() {
        return None;
    }
    let outcome = file.rotate().map(|keys| {
        format!(
            "version {} fingerprint {}",
            keys.current_version(),
            keys.fingerprint()
        )
    });
    let answer = match &outcome {
        Ok(line) => line.clone(),
        Err(e) => format!("error: {e:#}"),
    };
    // The result first, then the request's removal: the requester reads the result once the
    // request is gone.
    if let Err(e) = fs::write(data_dir.join(RESULT_FILE), answer) {
        tracing::error!("root: cannot write {RESULT_FILE}: {e}");
    }
    let _ = fs::remove_file(&request);
    Some(outcome)
}

#[cfg(test)]
mod tests {
    use ehsm_tee::sim::SimPlatform;

    use super::*;
    use crate::keyfile::Custody;

    #[test]
    fn a_running_root_is_seen_and_unique() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!root_running(dir.path()));
        let running = mark_running(dir.path()).unwrap();
        assert!(root_running(dir.path()));
        assert!(mark_running(dir.path()).is_err(), "a second root");
        drop(running);
        assert!(!root_running(dir.path()));
    }

    #[test]
    fn a_request_is_served_by_the_root_and_answered() {
        let dir = tempfile::tempdir().unwrap();
        let p = SimPlatform::open(dir.path()).unwrap();
        let file = KeyFile::open(dir.path(), &Custody::Platform, &p, true).unwrap();
        file.create().unwrap();
        assert!(serve_request(dir.path(), &file).is_none(), "no request yet");
        let root = std::thread::scope(|s| {
            let asker = s.spawn(|| request(dir.path()));
            // The root's watcher, sped up.
            loop {
                if let Some(outcome) = serve_request(dir.path(), &file) {
                    break (outcome.unwrap(), asker.join().unwrap().unwrap());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        assert_eq!(root.0, root.1);
        assert!(root.0.starts_with("version 2 fingerprint "), "{}", root.0);
        assert_eq!(
            file.load_existing().unwrap().versions().collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(!dir.path().join(REQUEST_FILE).exists());
    }

    #[test]
    fn a_failed_rotation_is_reported_to_the_requester() {
        let dir = tempfile::tempdir().unwrap();
        let p = SimPlatform::open(dir.path()).unwrap();
        // No domain to rotate.
        let file = KeyFile::open(dir.path(), &Custody::Platform, &p, false).unwrap();
        let answer = std::thread::scope(|s| {
            let asker = s.spawn(|| request(dir.path()));
            while serve_request(dir.path(), &file).is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            asker.join().unwrap()
        });
        let err = answer.unwrap_err().to_string();
        assert!(
            err.contains("could not rotate") && err.contains("--new-domain"),
            "{err}"
        );
    }
}
