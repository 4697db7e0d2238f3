//! The data directory's permissions: one `ehsm serve` creates is owner-only, and so are the
//! SQLite files in it; an existing one that its group or others may enter is used, with a
//! warning in the log.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use util::Server;

const WARNING: &str = "is accessible to its group or others";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_data_directory_and_its_database_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // SQLite in the data directory even when the end-to-end tests run on PostgreSQL.
    let database = format!("sqlite://{}", data.join("ehsm.db").display());
    let server = Server::start_in(&data, &["--database", &database]);
    server.enrolled().await;
    assert_eq!(mode(&data), 0o700);
    for file in ["ehsm.db", "ehsm.db-wal", "ehsm.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    assert!(!server.logged(WARNING), "{}", server.log.lock().unwrap());
}

#[test]
fn an_open_data_directory_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::start_in(&data, &[]);
    assert!(
        server.logged(&format!("{} {WARNING} (mode 755)", data.display())),
        "{}",
        server.log.lock().unwrap()
    );
}
