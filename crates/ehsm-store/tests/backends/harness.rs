//! Backends for the shared suite: a fresh SQLite file or a fresh PostgreSQL schema per test.

use std::future::Future;
use std::io::Write as _;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ehsm_store::Store;
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

/// What a check gets: an open store and the URL to open it again.
#[derive(Clone)]
pub(crate) struct TestDb {
    pub(crate) store: Store,
    url: String,
}

impl TestDb {
    /// Opens the same database again (a new pool; the caller closes it).
    pub(crate) async fn reopen(&self) -> Store {
        Store::open(&self.url).await.unwrap()
    }

    pub(crate) fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }
}

pub(crate) async fn run_sqlite<F, Fut>(check: F)
where
    F: FnOnce(TestDb) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ehsm.db").display());
    let outcome = tokio::spawn(open_and_check(url, check)).await;
    drop(dir);
    rethrow(outcome);
}

/// Runs `check` in a schema of its own, created for this test and dropped after it (also when
/// the check panics). Schemas are cheaper than databases (no copy of template1, no exclusive
/// lock on it) and `search_path` in the URL keeps the store's SQL unqualified.
pub(crate) async fn run_postgres<F, Fut>(check: F)
where
    F: FnOnce(TestDb) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(base) = postgres_url() else { return };
    let schema = unique_schema_name();
    let mut admin = PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to EHSM_TEST_POSTGRES: {e}"));
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options[search_path]={schema}");
    let outcome = tokio::spawn(open_and_check(url, check)).await;
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    rethrow(outcome);
}

async fn open_and_check<F, Fut>(url: String, check: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    let store = Store::open(&url).await.unwrap();
    check(TestDb {
        store: store.clone(),
        url,
    })
    .await;
    store.close().await;
}

fn rethrow(outcome: Result<(), tokio::task::JoinError>) {
    match outcome {
        Ok(()) => {}
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("check task failed: {e}"),
    }
}

/// The PostgreSQL URL, or `None` after saying (once, on the terminal even though the test
/// harness captures output) that the PostgreSQL run is skipped. In CI a skip is a failure.
fn postgres_url() -> Option<String> {
    if let Ok(url) = std::env::var("EHSM_TEST_POSTGRES")
        && !url.trim().is_empty()
    {
        return Some(url);
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    assert!(
        !in_ci,
        "CI is set but EHSM_TEST_POSTGRES is not: the PostgreSQL run of the ehsm-store suite \
         must not be skipped in CI. Set EHSM_TEST_POSTGRES=postgres://USER@HOST:PORT/DATABASE."
    );
    static NOTICE: Once = Once::new();
    NOTICE.call_once(|| {
        // Straight to the stderr handle: print macros are captured for passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "ehsm-store: PostgreSQL run SKIPPED (the postgres::* tests return at once): \
             EHSM_TEST_POSTGRES is not set; set it to e.g. \
             postgres://postgres@127.0.0.1:5432/postgres to run the suite against PostgreSQL"
        );
    });
    None
}

fn unique_schema_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "ehsm_test_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
