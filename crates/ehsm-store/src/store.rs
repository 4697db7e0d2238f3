//! [`Store`]: every operation, written once over `sqlx::AnyPool`.

use sqlx::AnyConnection;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Connection as _, Row};

use crate::error::{Error, Result};
use crate::guards;
use crate::invalidate::{self, Invalidation};
use crate::records::{AppRecord, CmkRecord, CmkVersion, ImportParams, KeyState, ReplayEntry};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// The two SQL engines. Queries do not depend on it: it picks the migrations and the
/// per-connection set-up, and nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    fn migrator(self) -> &'static Migrator {
        match self {
            Self::Sqlite => &SQLITE_MIGRATIONS,
            Self::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    fn max_connections(self) -> u32 {
        match self {
            // SQLite has one writer at a time anyway; a few connections serve concurrent readers.
            Self::Sqlite => 8,
            Self::Postgres => 10,
        }
    }

    /// Per-connection settings. SQLite pragmas other than `journal_mode` belong to the
    /// connection, not the file, so every pooled connection sets them.
    async fn prepare(self, conn: &mut AnyConnection) -> sqlx::Result<()> {
        if self == Self::Sqlite {
            // FULL (not NORMAL) in WAL mode: fsync the WAL at every commit, so an acknowledged
            // write survives power loss, not only a process crash.
            sqlx::query("PRAGMA synchronous = FULL")
                .execute(&mut *conn)
                .await?;
            sqlx::query("PRAGMA foreign_keys = ON")
                .execute(&mut *conn)
                .await?;
            sqlx::query("PRAGMA busy_timeout = 5000")
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

/// A checked database URL.
#[derive(Debug)]
struct Target {
    dialect: Dialect,
    /// What sqlx connects to (for SQLite, with `mode=rwc` added unless a mode was given).
    connect_url: String,
    /// For messages: never includes credentials.
    description: String,
    /// SQLite only: the database file, when the store may create it (see [`create_owner_only`]).
    create_file: Option<std::path::PathBuf>,
}

impl Target {
    fn parse(url: &str) -> Result<Self> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let (path, params) = match rest.split_once('?') {
                Some((path, params)) => (path, Some(params)),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(Error::InvalidUrl(
                    "a SQLite URL needs a file path, e.g. sqlite://data/ehsm.db",
                ));
            }
            let mode = params.and_then(|p| p.split('&').find_map(|kv| kv.strip_prefix("mode=")));
            let has_mode = mode.is_some();
            let connect_url = match (params, has_mode) {
                (_, true) => url.to_owned(),
                (Some(_), false) => format!("{url}&mode=rwc"),
                (None, false) => format!("{url}?mode=rwc"),
            };
            let creates = matches!(mode, None | Some("rwc")) && path != ":memory:";
            Ok(Self {
                dialect: Dialect::Sqlite,
                connect_url,
                description: format!("SQLite database {path:?}"),
                create_file: creates.then(|| path.into()),
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self {
                dialect: Dialect::Postgres,
                connect_url: url.to_owned(),
                description: "PostgreSQL database".to_owned(),
                create_file: None,
            })
        } else {
            Err(Error::InvalidUrl(
                "expected sqlite://PATH or postgres://USER@HOST/DATABASE",
            ))
        }
    }
}

/// How the store uses its database connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    /// At most this many connections; `None`: 8 for SQLite, 10 for PostgreSQL.
    pub max_connections: Option<u32>,
    /// How long a statement waits for a free connection (or for the database to answer a
    /// connection attempt) before failing. Short by default, so that when the database is gone
    /// requests fail fast with a clear error instead of hanging; sqlx's own default is 30 s.
    pub acquire_timeout: std::time::Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: None,
            acquire_timeout: std::time::Duration::from_secs(3),
        }
    }
}

/// The store: a cheap-to-clone handle on a connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: AnyPool,
    dialect: Dialect,
    /// PostgreSQL only: where [`Store::listen_invalidations`] connects its listener.
    listen_url: Option<ListenUrl>,
}

/// A connection URL, kept for reconnecting; its `Debug` hides it (it may hold a password).
#[derive(Clone)]
struct ListenUrl(std::sync::Arc<str>);

impl std::fmt::Debug for ListenUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenUrl(***)")
    }
}

/// The columns of an [`AppRecord`], as `app_from_row` reads them by name.
macro_rules! select_app {
    ($tail:literal) => {
        concat!("SELECT appid, apikey_blob, created_at FROM apps ", $tail)
    };
}

/// Every [`CmkRecord`] whose keyid the subquery `SELECT keyid FROM cmks WHERE <filter>` gives,
/// one row per version (oldest first), as `cmks_from_rows` reads them. One statement, so the
/// key and its versions come from one snapshot: a rotation committed meanwhile is seen whole
/// or not at all.
macro_rules! select_cmks {
    ($filter:literal) => {
        concat!(
            "SELECT c.keyid, c.appid, c.keyspec, c.origin, c.keyusage, c.primary_version, ",
            "c.state, c.creation_date, c.expire_time, c.listed, c.import_wrapping_spec, ",
            "c.import_wrapping_blob, c.import_expires_at, c.description, ",
            "c.rotation_interval_days, c.next_rotation, c.deletion_date, v.version, ",
            "v.key_blob, v.creation_date AS version_creation_date ",
            "FROM cmks c JOIN cmk_versions v ON v.keyid = c.keyid ",
            "WHERE c.keyid IN (SELECT keyid FROM cmks WHERE ",
            $filter,
            ") ORDER BY c.keyid, v.version"
        )
    };
}
pub(crate) use select_cmks;

const INSERT_CMK: &str = "INSERT INTO cmks (keyid, appid, keyspec, origin, keyusage, \
     primary_version, state, creation_date, expire_time, listed, import_wrapping_spec, \
     import_wrapping_blob, import_expires_at, description, rotation_interval_days, \
     next_rotation, deletion_date) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
     ON CONFLICT DO NOTHING";

const INSERT_CMK_VERSION: &str = "INSERT INTO cmk_versions (keyid, version, key_blob, \
     creation_date) VALUES ($1, $2, $3, $4)";

impl Store {
    /// Opens (and migrates) the database at `url`: `sqlite://path/to/file.db` (created if
    /// missing; the directory must exist) or `postgres://…`.
    ///
    /// SQLite runs in WAL mode with `synchronous=FULL` (an acknowledged write survives a crash
    /// or power loss), a 5 s busy timeout and foreign keys on.
    pub async fn open(url: &str) -> Result<Store> {
        Self::open_with(url, PoolSettings::default()).await
    }

    /// [`Store::open`] with connection-pool settings.
    pub async fn open_with(url: &str, settings: PoolSettings) -> Result<Store> {
        let target = Target::parse(url)?;
        sqlx::any::install_default_drivers();
        let dialect = target.dialect;
        let open_error = |cause| Error::Open {
            target: target.description.clone(),
            cause,
        };
        if let Some(path) = &target.create_file {
            create_owner_only(path);
        }
        let pool = AnyPoolOptions::new()
            .max_connections(
                settings
                    .max_connections
                    .unwrap_or_else(|| dialect.max_connections()),
            )
            .acquire_timeout(settings.acquire_timeout)
            .after_connect(move |conn, _meta| Box::pin(dialect.prepare(conn)))
            // A connection comes back to the pool still inside a transaction (by sqlx's count)
            // only when that transaction did not end cleanly: its COMMIT or ROLLBACK failed, or
            // it was dropped on an error path and its queued ROLLBACK has not run yet. Such a
            // connection is closed, never reused; closing rolls back whatever the database
            // still holds open and releases its locks.
            //
            // Why at this depth: after a COMMIT that failed with SQLITE_FULL (or an I/O error)
            // SQLite may already have rolled the transaction back, so the ROLLBACK that sqlx
            // queues when the `Transaction` is dropped fails as well and sqlx's count stays
            // at 1. Reused, such a connection's next `begin()` was a `SAVEPOINT` and its
            // `commit()` a `RELEASE`, not a COMMIT: once SQLite had a transaction open
            // underneath (which the counts no longer showed), writes acknowledged on that
            // connection were never committed, and that transaction's
            // write lock made the other connections fail with "database is locked" until a
            // restart (tests/disk_full.rs). With this check every store operation starts on a
            // connection outside any transaction, so every `begin()` is a real `BEGIN` and
            // every `commit()` a real `COMMIT` whose failure is reported: a write is durable
            // or answers an error. It costs nothing (it reads a counter), and covers
            // PostgreSQL the same way (a connection lost mid-transaction fails its COMMIT and
            // is closed here or by sqlx's ping on release).
            .after_release(|conn, _meta| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
            .connect(&target.connect_url)
            .await
            .map_err(open_error)?;
        if let Err(e) = Self::initialize(&pool, dialect).await {
            pool.close().await;
            return Err(match e {
                Error::Database(cause) => open_error(cause),
                other => other,
            });
        }
        let listen_url =
            (dialect == Dialect::Postgres).then(|| ListenUrl(target.connect_url.as_str().into()));
        Ok(Store {
            pool,
            dialect,
            listen_url,
        })
    }

    /// Listens for the record changes of every node sharing this database (this one's
    /// included), so that each node can drop what its caches hold of them; `None` on SQLite,
    /// which serves one node. Subscribed when this returns: every change committed afterwards
    /// is reported. The listener reconnects by itself after losing its connection and then
    /// reports [`Invalidation::All`]. It stops when the receiver is dropped.
    pub async fn listen_invalidations(
        &self,
    ) -> Result<Option<tokio::sync::mpsc::UnboundedReceiver<Invalidation>>> {
        match &self.listen_url {
            None => Ok(None),
            Some(url) => Ok(Some(invalidate::listen(url.0.to_string()).await?)),
        }
    }

    /// Queues `what` for the other nodes in `tx`, delivered when it commits (PostgreSQL only).
    pub(crate) async fn notify(&self, tx: &mut AnyConnection, what: &Invalidation) -> Result<()> {
        if self.dialect == Dialect::Postgres {
            invalidate::notify(tx, what).await?;
        }
        Ok(())
    }

    /// Sets SQLite's journal mode, then brings the schema up to date under a lock the
    /// database provides, so that any number of nodes starting together on a new database
    /// all come up: the first to take the lock migrates, the others wait (saying so in the
    /// log) and then find nothing left to do. sqlx's migrator locks on PostgreSQL only (an
    /// advisory lock); its SQLite lock does nothing, and nodes migrating one new file at once
    /// ran `CREATE TABLE`s another had just made ("table secrets already exists").
    async fn initialize(pool: &AnyPool, dialect: Dialect) -> Result<()> {
        let mut conn = pool.acquire().await?;
        match dialect {
            Dialect::Sqlite => {
                // journal_mode is a property of the file: set it once (it persists). It cannot
                // change inside a transaction, so before the lock.
                let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
                    .fetch_one(&mut *conn)
                    .await?;
                if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
                    return Err(Error::Database(sqlx::Error::Configuration(
                        "SQLite refused to switch to WAL journal mode".into(),
                    )));
                }
                // SQLite's write lock, held until the whole migration commits (sqlx runs each
                // migration in a savepoint inside it). A node waits for it as for any writer,
                // up to the busy timeout (5 s; a migration takes milliseconds).
                let mut tx = migration_lock(conn.begin_with("BEGIN IMMEDIATE")).await?;
                migrate(dialect, &mut tx).await?;
                tx.commit().await?;
            }
            Dialect::Postgres => {
                // A session-level advisory lock of ehsm's own, around sqlx's (which is then
                // never contended): unlike sqlx's, taking it says when this node waits. An
                // error before the unlock needs no cleanup: `open_with` closes the pool, and
                // with it this session and its lock.
                migration_lock(
                    sqlx::query("SELECT pg_advisory_lock($1)")
                        .bind(PG_MIGRATION_LOCK)
                        .execute(&mut *conn),
                )
                .await?;
                migrate(dialect, &mut conn).await?;
                sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(PG_MIGRATION_LOCK)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// Closes the pool, waiting for connections in use to be returned (graceful shutdown).
    /// Every later call fails with [`Error::Database`].
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---------------------------------------------------------------------------------------
    // Apps

    /// Inserts an app and its internal keys in one transaction (enrollment). Fails with
    /// [`Error::Conflict`], writing nothing, if the appid or any keyid exists.
    pub async fn insert_app(&self, app: &AppRecord, keys: &[CmkRecord]) -> Result<()> {
        no_nul(&app.appid, "appid contains a NUL character")?;
        for key in keys {
            if key.appid != app.appid {
                return Err(Error::InvalidInput(
                    "a key given to insert_app belongs to another app",
                ));
            }
            check_cmk(key)?;
        }
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO apps (appid, apikey_blob, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&app.appid)
        .bind(&app.apikey_blob)
        .bind(app.created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            return Err(Error::Conflict);
        }
        for key in keys {
            if !insert_cmk_rows(&mut tx, key).await? {
                tx.rollback().await?;
                return Err(Error::Conflict);
            }
        }
        self.notify(&mut tx, &Invalidation::App(app.appid.clone()))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The app with this id, if any.
    pub async fn get_app(&self, appid: &str) -> Result<Option<AppRecord>> {
        no_nul(appid, "appid contains a NUL character")?;
        let row = sqlx::query(select_app!("WHERE appid = $1"))
            .bind(appid)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(app_from_row).transpose()
    }

    /// Every app whose appid sorts after `after_appid`, in appid order, at most `limit`: one
    /// page of a scan of all apps, for jobs that must visit each one (the re-wrap of API-key
    /// blobs after a domain-key rotation). Keyset pagination (pass the last appid of a page to
    /// get the next; `""` to start) rather than an offset: a page costs one index range scan
    /// however far the scan is, and apps inserted or deleted meanwhile do not shift the pages,
    /// so no app present throughout is skipped or visited twice. The order is the database's
    /// text order for appids (byte order on SQLite, the column's collation on PostgreSQL): the
    /// same order the comparison uses, which is all the scan needs.
    pub async fn apps_after(&self, after_appid: &str, limit: u32) -> Result<Vec<AppRecord>> {
        no_nul(after_appid, "appid contains a NUL character")?;
        let rows = sqlx::query(select_app!("WHERE appid > $1 ORDER BY appid LIMIT $2"))
            .bind(after_appid)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(app_from_row).collect()
    }

    /// Replaces the app's API-key blob with `new_blob` only if it still is `old_blob`; `true`
    /// if it did. For the re-wrap after a domain-key rotation: the new blob holds the same API
    /// key under the new domain key, and the comparison makes the write lose, harmlessly, to
    /// anything that changed the blob since it was read (another node's re-wrap), instead of
    /// overwriting it. One conditional `UPDATE`; the other nodes are told to drop the app from
    /// their caches when it commits.
    pub async fn replace_apikey_blob(
        &self,
        appid: &str,
        old_blob: &[u8],
        new_blob: &[u8],
    ) -> Result<bool> {
        no_nul(appid, "appid contains a NUL character")?;
        let mut tx = self.pool.begin().await?;
        let done =
            sqlx::query("UPDATE apps SET apikey_blob = $1 WHERE appid = $2 AND apikey_blob = $3")
                .bind(new_blob)
                .bind(appid)
                .bind(old_blob)
                .execute(&mut *tx)
                .await?;
        let changed = done.rows_affected() > 0;
        if changed {
            self.notify(&mut tx, &Invalidation::App(appid.to_owned()))
                .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    // ---------------------------------------------------------------------------------------
    // CMKs

    /// Inserts a key. [`Error::Conflict`] if the keyid exists (in any app),
    /// [`Error::UnknownApp`] if its app does not.
    pub async fn insert_cmk(&self, key: &CmkRecord) -> Result<()> {
        check_cmk(key)?;
        let mut tx = self.pool.begin().await?;
        if !insert_cmk_rows(&mut tx, key).await? {
            tx.rollback().await?;
            return Err(Error::Conflict);
        }
        tx.commit().await?;
        Ok(())
    }

    /// The key with this id, listed or not, whatever its app (callers check ownership), with
    /// every version.
    pub async fn get_cmk(&self, keyid: &str) -> Result<Option<CmkRecord>> {
        no_nul(keyid, "keyid contains a NUL character")?;
        let rows = sqlx::query(select_cmks!("keyid = $1"))
            .bind(keyid)
            .fetch_all(&self.pool)
            .await?;
        Ok(cmks_from_rows(&rows)?.pop())
    }

    /// The app's listed keys whose keyid sorts after `after_keyid` (`""`: from the first),
    /// ordered by keyid (byte order on both backends), at most `limit`: a page of ListKey.
    /// Keyset pagination, as [`Store::cmks_after`]: pass the last keyid of a page to get the
    /// next one; keys created or deleted meanwhile do not shift the pages.
    pub async fn list_cmks(
        &self,
        appid: &str,
        after_keyid: &str,
        limit: u32,
    ) -> Result<Vec<CmkRecord>> {
        no_nul(appid, "appid contains a NUL character")?;
        no_nul(after_keyid, "keyid contains a NUL character")?;
        let rows = sqlx::query(select_cmks!(
            "appid = $1 AND listed = 1 AND keyid > $2 ORDER BY keyid LIMIT $3"
        ))
        .bind(appid)
        .bind(after_keyid)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        cmks_from_rows(&rows)
    }

    /// Every key of every app, listed or internal, whose keyid sorts after `after_keyid`, in
    /// keyid order (byte order on both backends), at most `limit`: one page of a scan of all
    /// keys, for jobs that must visit each one (the re-wrap of CMK blobs after a domain-key
    /// rotation). Keyset pagination (pass the last keyid of a page to get the next; `""` to
    /// start) rather than an offset: each page is one primary-key range scan however far the
    /// scan is, and keys created or deleted meanwhile do not shift the pages, so no key present
    /// throughout is skipped or visited twice.
    pub async fn cmks_after(&self, after_keyid: &str, limit: u32) -> Result<Vec<CmkRecord>> {
        no_nul(after_keyid, "keyid contains a NUL character")?;
        let rows = sqlx::query(select_cmks!("keyid > $1 ORDER BY keyid LIMIT $2"))
            .bind(after_keyid)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        cmks_from_rows(&rows)
    }

    /// Replaces the blob of one version of the key with `new_blob` only if it still is
    /// `old_blob`; `true` if it did. For the re-wrap after a domain-key rotation: the new blob
    /// holds the same material under the new domain key, and the comparison makes the write
    /// lose, harmlessly, to anything that changed the blob since it was read (a BYOK import
    /// completing, another node's re-wrap) instead of overwriting it. One conditional `UPDATE`,
    /// whatever the key's app; the other nodes are told to drop the key from their caches when
    /// it commits.
    pub async fn replace_cmk_blob(
        &self,
        keyid: &str,
        version: u32,
        old_blob: &[u8],
        new_blob: &[u8],
    ) -> Result<bool> {
        no_nul(keyid, "keyid contains a NUL character")?;
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE cmk_versions SET key_blob = $1 \
             WHERE keyid = $2 AND version = $3 AND key_blob = $4",
        )
        .bind(new_blob)
        .bind(keyid)
        .bind(i64::from(version))
        .bind(old_blob)
        .execute(&mut *tx)
        .await?;
        self.commit_key_change(tx, done.rows_affected(), keyid)
            .await
    }

    /// Deletes a listed key of this app; `true` if one was deleted. Never touches another app's
    /// keys or internal (unlisted) keys. [`Error::KeyInUse`], deleting nothing, if a secret of
    /// the app is encrypted under the key (checked under the app's lock, so a concurrent
    /// CreateSecret with this key either commits first and is counted, or finds the key gone:
    /// see `guards`).
    pub async fn delete_cmk(&self, appid: &str, keyid: &str) -> Result<bool> {
        self.delete_cmk_if(appid, keyid, None).await
    }

    /// [`Store::delete_cmk`], and with `due_at`, only if the key's scheduled deletion is due
    /// then: checked in the deleting statement, so a cancellation that commits first wins.
    pub(crate) async fn delete_cmk_if(
        &self,
        appid: &str,
        keyid: &str,
        due_at: Option<i64>,
    ) -> Result<bool> {
        no_nul(appid, "appid contains a NUL character")?;
        no_nul(keyid, "keyid contains a NUL character")?;
        let mut tx = self.pool.begin().await?;
        if !guards::lock_app(&mut tx, appid).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Err(e) = guards::check_unused(&mut tx, appid, Some(keyid)).await {
            tx.rollback().await?;
            return Err(e);
        }
        let done = sqlx::query(
            "DELETE FROM cmks WHERE appid = $1 AND keyid = $2 AND listed = 1 \
             AND ($3 IS NULL OR deletion_date <= $3)",
        )
        .bind(appid)
        .bind(keyid)
        .bind(due_at)
        .execute(&mut *tx)
        .await?;
        self.commit_key_change(tx, done.rows_affected(), keyid)
            .await
    }

    /// Deletes every listed key of this app (one statement, so all or none); returns how many.
    /// [`Error::KeyInUse`], deleting nothing, if any of them encrypts a secret of the app
    /// (checked under the app's lock, as in [`Store::delete_cmk`]).
    pub async fn delete_all_cmks(&self, appid: &str) -> Result<u64> {
        no_nul(appid, "appid contains a NUL character")?;
        let mut tx = self.pool.begin().await?;
        if !guards::lock_app(&mut tx, appid).await? {
            return Ok(0);
        }
        guards::check_unused(&mut tx, appid, None).await?;
        let done = sqlx::query("DELETE FROM cmks WHERE appid = $1 AND listed = 1")
            .bind(appid)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() > 0 {
            self.notify(&mut tx, &Invalidation::KeysOfApp(appid.to_owned()))
                .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Enables or disables a key of this app (idempotent); `false` if the app has no such key,
    /// or to enable one whose deletion is scheduled.
    pub async fn set_key_state(&self, appid: &str, keyid: &str, state: KeyState) -> Result<bool> {
        no_nul(appid, "appid contains a NUL character")?;
        no_nul(keyid, "keyid contains a NUL character")?;
        let mut tx = self.pool.begin().await?;
        // A key pending deletion is never enabled (CancelKeyDeletion first).
        let done = sqlx::query(
            "UPDATE cmks SET state = $1 WHERE appid = $2 AND keyid = $3 \
             AND ($1 = 0 OR deletion_date IS NULL)",
        )
        .bind(state.code())
        .bind(appid)
        .bind(keyid)
        .execute(&mut *tx)
        .await?;
        self.commit_key_change(tx, done.rows_affected(), keyid)
            .await
    }

    /// Stores BYOK import parameters on a key of this app, replacing any previous ones; `false`
    /// if the app has no such key.
    pub async fn set_import_params(
        &self,
        appid: &str,
        keyid: &str,
        params: &ImportParams,
    ) -> Result<bool> {
        no_nul(appid, "appid contains a NUL character")?;
        no_nul(keyid, "keyid contains a NUL character")?;
        no_nul(
            &params.wrapping_spec,
            "wrapping_spec contains a NUL character",
        )?;
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE cmks SET import_wrapping_spec = $1, import_wrapping_blob = $2, \
             import_expires_at = $3 WHERE appid = $4 AND keyid = $5",
        )
        .bind(&params.wrapping_spec)
        .bind(&params.wrapping_blob)
        .bind(params.expires_at)
        .bind(appid)
        .bind(keyid)
        .execute(&mut *tx)
        .await?;
        self.commit_key_change(tx, done.rows_affected(), keyid)
            .await
    }

    /// Stores imported key material as the key's version 1 and clears the import parameters,
    /// atomically, only if the key's import parameters are still exactly `expected`; `false`
    /// otherwise (no such key, no pending import, or parameters replaced or already used). The
    /// conditional `UPDATE` of the parameters comes first, so of two concurrent imports exactly
    /// one wins, on either backend and across nodes.
    pub async fn complete_import(
        &self,
        appid: &str,
        keyid: &str,
        expected: &ImportParams,
        new_blob: &[u8],
    ) -> Result<bool> {
        no_nul(appid, "appid contains a NUL character")?;
        no_nul(keyid, "keyid contains a NUL character")?;
        no_nul(
            &expected.wrapping_spec,
            "wrapping_spec contains a NUL character",
        )?;
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE cmks SET import_wrapping_spec = NULL, \
             import_wrapping_blob = NULL, import_expires_at = NULL \
             WHERE appid = $1 AND keyid = $2 AND import_wrapping_spec = $3 \
             AND import_wrapping_blob = $4 AND import_expires_at = $5",
        )
        .bind(appid)
        .bind(keyid)
        .bind(&expected.wrapping_spec)
        .bind(&expected.wrapping_blob)
        .bind(expected.expires_at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("UPDATE cmk_versions SET key_blob = $1 WHERE keyid = $2 AND version = 1")
            .bind(new_blob)
            .bind(keyid)
            .execute(&mut *tx)
            .await?;
        self.commit_key_change(tx, done.rows_affected(), keyid)
            .await
    }

    /// Destroys the import parameters (the pending wrapping key) of every key whose import
    /// token expired at or before `now` (ms); returns how many. The key stays, waiting for
    /// material from a new GetParametersForImport.
    pub async fn expire_import_params(&self, now: i64) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let expired: Vec<String> = sqlx::query_scalar(
            "UPDATE cmks SET import_wrapping_spec = NULL, import_wrapping_blob = NULL, \
             import_expires_at = NULL WHERE import_expires_at <= $1 RETURNING keyid",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for keyid in &expired {
            self.notify(&mut tx, &Invalidation::Key(keyid.clone()))
                .await?;
        }
        tx.commit().await?;
        Ok(expired.len() as u64)
    }

    /// Commits a change of at most one key, notifying the other nodes if it changed one;
    /// `true` if it did.
    pub(crate) async fn commit_key_change(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        rows_affected: u64,
        keyid: &str,
    ) -> Result<bool> {
        if rows_affected > 0 {
            self.notify(&mut tx, &Invalidation::Key(keyid.to_owned()))
                .await?;
        }
        tx.commit().await?;
        Ok(rows_affected > 0)
    }

    // ---------------------------------------------------------------------------------------
    // Replay cache

    /// Records requests seen (one flush of a node's replay cache) as one row.
    pub async fn insert_replay_entries(&self, entries: &[ReplayEntry]) -> Result<()> {
        let Some(last_seen_at) = entries.iter().map(|e| e.seen_at).max() else {
            return Ok(());
        };
        sqlx::query("INSERT INTO replay_batches (last_seen_at, entries) VALUES ($1, $2)")
            .bind(last_seen_at)
            .bind(ReplayEntry::pack(entries))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Entries that arrived at or after `seen_at_min` (ms), in no particular order; a request
    /// recorded twice (by two nodes) may appear twice.
    pub async fn replay_entries_since(&self, seen_at_min: i64) -> Result<Vec<ReplayEntry>> {
        let rows = sqlx::query("SELECT entries FROM replay_batches WHERE last_seen_at >= $1")
            .bind(seen_at_min)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for row in &rows {
            let packed: Vec<u8> = row.try_get("entries")?;
            let entries = ReplayEntry::unpack(&packed).ok_or(Error::Corrupt(
                "a replay batch is not a whole number of entries",
            ))?;
            out.extend(entries.filter(|e| e.seen_at >= seen_at_min));
        }
        Ok(out)
    }

    /// The highest batch id so far (0 when there is none): where a node starts following the
    /// batches of the others.
    pub async fn replay_batch_max_id(&self) -> Result<i64> {
        let id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM replay_batches")
            .fetch_one(&self.pool)
            .await?;
        Ok(id)
    }

    /// The batches with an id above `after`, in id order, at most `limit` of them (a primary-key
    /// range scan): how a node reads the flushes of the other nodes (and its own) since it last
    /// looked.
    pub async fn replay_batches_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, Vec<ReplayEntry>)>> {
        let rows = sqlx::query(
            "SELECT id, entries FROM replay_batches WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let packed: Vec<u8> = row.try_get("entries")?;
            let entries = ReplayEntry::unpack(&packed).ok_or(Error::Corrupt(
                "a replay batch is not a whole number of entries",
            ))?;
            out.push((id, entries.collect()));
        }
        Ok(out)
    }

    /// Deletes batches whose every entry arrived before `seen_before` (ms); returns how many.
    pub async fn prune_replay_entries(&self, seen_before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM replay_batches WHERE last_seen_at < $1")
            .bind(seen_before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    // ---------------------------------------------------------------------------------------
    // Settings

    /// The setting with this name, if any.
    pub async fn get_setting(&self, name: &str) -> Result<Option<Vec<u8>>> {
        no_nul(name, "setting name contains a NUL character")?;
        let value = sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(value)
    }

    /// Stores a setting, replacing any value it had (one upsert). For progress markers that
    /// only ever move forward and that a later writer may safely repeat, such as the domain-key
    /// version every blob has been re-wrapped to; a value that must be chosen once by the first
    /// of several racing nodes uses [`Store::put_setting_if_absent`] instead.
    pub async fn put_setting(&self, name: &str, value: &[u8]) -> Result<()> {
        no_nul(name, "setting name contains a NUL character")?;
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores a setting unless one with this name exists; `true` if stored. Never overwrites,
    /// so of concurrent first starts exactly one value wins.
    pub async fn put_setting_if_absent(&self, name: &str, value: &[u8]) -> Result<bool> {
        no_nul(name, "setting name contains a NUL character")?;
        let done = sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// The key of ehsm's migration lock on PostgreSQL (advisory locks are per database): "ehsm" and
/// "migr" in ASCII.
const PG_MIGRATION_LOCK: i64 = 0x6568_736d_6d69_6772;

/// How long taking the migration lock may take before the node logs that it waits: longer
/// than taking a free lock ever takes, short enough that the line comes while it matters.
const MIGRATION_LOCK_NOTICE: std::time::Duration = std::time::Duration::from_millis(100);

/// Awaits `lock` (the statement that takes the migration lock), logging that this node waits
/// for another one if the lock is not granted at once.
async fn migration_lock<T>(lock: impl Future<Output = sqlx::Result<T>>) -> Result<T> {
    let mut lock = std::pin::pin!(lock);
    if let Ok(taken) = tokio::time::timeout(MIGRATION_LOCK_NOTICE, &mut lock).await {
        return Ok(taken?);
    }
    tracing::info!("another node is migrating the database; waiting for it to finish");
    let taken = lock.await?;
    tracing::info!("migration lock taken");
    Ok(taken)
}

/// Runs the dialect's migrations on `conn`, which holds the migration lock. Through
/// `run_direct`, the form sqlx keeps for a borrowed connection: its `run` takes an `Acquire`,
/// whose bound on `&mut AnyConnection` makes the calling future "not general enough" to be
/// `Send`.
async fn migrate(dialect: Dialect, conn: &mut AnyConnection) -> Result<()> {
    dialect
        .migrator()
        .run_direct(None, conn, false)
        .await
        .map_err(Error::Migration)
}

/// Creates the SQLite database file, if it does not exist, readable and writable by its owner
/// only: SQLite would create it with the process's umask (typically 0644), and it creates the
/// `-wal` and `-shm` files with the mode of the database file. An existing file is left as it
/// is; any failure is left to SQLite, which opens the file next and reports it.
fn create_owner_only(path: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
}

/// PostgreSQL `TEXT` cannot hold NUL while SQLite can; refusing it on both keeps the backends
/// equal (and no legitimate ehsm value contains one).
pub(crate) fn no_nul(value: &str, message: &'static str) -> Result<()> {
    if value.contains('\0') {
        Err(Error::InvalidInput(message))
    } else {
        Ok(())
    }
}

pub(crate) fn check_cmk(key: &CmkRecord) -> Result<()> {
    no_nul(&key.keyid, "keyid contains a NUL character")?;
    no_nul(&key.appid, "appid contains a NUL character")?;
    no_nul(&key.keyspec, "keyspec contains a NUL character")?;
    no_nul(&key.origin, "origin contains a NUL character")?;
    no_nul(&key.keyusage, "keyusage contains a NUL character")?;
    if let Some(description) = &key.description {
        no_nul(description, "description contains a NUL character")?;
    }
    if let Some(import) = &key.import {
        no_nul(
            &import.wrapping_spec,
            "wrapping_spec contains a NUL character",
        )?;
    }
    // The shape every reader relies on: versions 1..=primary, in order, none missing.
    let numbered = key.versions.iter().zip(1..).all(|(v, n)| v.version == n);
    if !numbered || key.versions.len() != key.primary_version as usize {
        return Err(Error::InvalidInput(
            "a key's versions must be 1 up to its primary version",
        ));
    }
    Ok(())
}

/// Inserts a key's row and its versions in `tx`; `false` (nothing inserted) if the keyid
/// exists. The caller checked the record with [`check_cmk`].
pub(crate) async fn insert_cmk_rows(tx: &mut AnyConnection, key: &CmkRecord) -> Result<bool> {
    let import = key.import.as_ref();
    let inserted = sqlx::query(INSERT_CMK)
        .bind(&key.keyid)
        .bind(&key.appid)
        .bind(&key.keyspec)
        .bind(&key.origin)
        .bind(&key.keyusage)
        .bind(i64::from(key.primary_version))
        .bind(key.state.code())
        .bind(key.creation_date)
        .bind(key.expire_time)
        .bind(i64::from(key.listed))
        .bind(import.map(|i| i.wrapping_spec.as_str()))
        .bind(import.map(|i| i.wrapping_blob.as_slice()))
        .bind(import.map(|i| i.expires_at))
        .bind(key.description.as_deref())
        .bind(key.rotation_interval_days.map(i64::from))
        .bind(key.next_rotation)
        .bind(key.deletion_date)
        .execute(&mut *tx)
        .await
        .map_err(key_error)?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    for v in &key.versions {
        insert_version(&mut *tx, &key.keyid, v).await?;
    }
    Ok(true)
}

/// Inserts one version row in `tx`.
pub(crate) async fn insert_version(
    tx: &mut AnyConnection,
    keyid: &str,
    version: &CmkVersion,
) -> Result<()> {
    sqlx::query(INSERT_CMK_VERSION)
        .bind(keyid)
        .bind(i64::from(version.version))
        .bind(&version.blob)
        .bind(version.creation_date)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A key insert fails on a foreign-key violation when its app does not exist.
pub(crate) fn key_error(e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &e
        && db.is_foreign_key_violation()
    {
        return Error::UnknownApp;
    }
    Error::Database(e)
}

fn app_from_row(row: &AnyRow) -> Result<AppRecord> {
    Ok(AppRecord {
        appid: row.try_get("appid")?,
        apikey_blob: row.try_get("apikey_blob")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The keys of [`select_cmks`] rows: consecutive rows of one keyid are its versions.
pub(crate) fn cmks_from_rows(rows: &[AnyRow]) -> Result<Vec<CmkRecord>> {
    let mut keys: Vec<CmkRecord> = Vec::new();
    for row in rows {
        let keyid: String = row.try_get("keyid")?;
        let version = CmkVersion {
            version: stored_u32(row.try_get("version")?, "cmk_versions.version")?,
            blob: row.try_get("key_blob")?,
            creation_date: row.try_get("version_creation_date")?,
        };
        match keys.last_mut() {
            Some(key) if key.keyid == keyid => key.versions.push(version),
            _ => keys.push(cmk_from_row(row, keyid, version)?),
        }
    }
    for key in &keys {
        check_cmk(key).map_err(|_| Error::Corrupt("a key's versions are not 1 to its primary"))?;
    }
    Ok(keys)
}

fn cmk_from_row(row: &AnyRow, keyid: String, first: CmkVersion) -> Result<CmkRecord> {
    let state: i64 = row.try_get("state")?;
    let listed: i64 = row.try_get("listed")?;
    let import = match (
        row.try_get::<Option<String>, _>("import_wrapping_spec")?,
        row.try_get::<Option<Vec<u8>>, _>("import_wrapping_blob")?,
        row.try_get::<Option<i64>, _>("import_expires_at")?,
    ) {
        (Some(wrapping_spec), Some(wrapping_blob), Some(expires_at)) => Some(ImportParams {
            wrapping_spec,
            wrapping_blob,
            expires_at,
        }),
        (None, None, None) => None,
        _ => return Err(Error::Corrupt("cmks import columns are partly NULL")),
    };
    Ok(CmkRecord {
        keyid,
        appid: row.try_get("appid")?,
        keyspec: row.try_get("keyspec")?,
        origin: row.try_get("origin")?,
        keyusage: row.try_get("keyusage")?,
        primary_version: stored_u32(row.try_get("primary_version")?, "cmks.primary_version")?,
        state: KeyState::from_code(state).ok_or(Error::Corrupt("cmks.state is not 0 or 1"))?,
        creation_date: row.try_get("creation_date")?,
        expire_time: row.try_get("expire_time")?,
        listed: match listed {
            1 => true,
            0 => false,
            _ => return Err(Error::Corrupt("cmks.listed is not 0 or 1")),
        },
        import,
        description: row.try_get("description")?,
        rotation_interval_days: row
            .try_get::<Option<i64>, _>("rotation_interval_days")?
            .map(|d| stored_u32(d, "cmks.rotation_interval_days"))
            .transpose()?,
        next_rotation: row.try_get("next_rotation")?,
        deletion_date: row.try_get("deletion_date")?,
        versions: vec![first],
    })
}

/// A stored BIGINT that must fit a `u32`.
fn stored_u32(value: i64, column: &'static str) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::Corrupt(column))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_before_connecting() {
        let t = Target::parse("sqlite://data/ehsm.db").unwrap();
        assert_eq!(t.dialect, Dialect::Sqlite);
        assert_eq!(t.connect_url, "sqlite://data/ehsm.db?mode=rwc");
        assert_eq!(t.description, "SQLite database \"data/ehsm.db\"");
        let t = Target::parse("sqlite:x.db?cache=private").unwrap();
        assert_eq!(t.connect_url, "sqlite:x.db?cache=private&mode=rwc");
        let t = Target::parse("sqlite://x.db?mode=ro").unwrap();
        assert_eq!(t.connect_url, "sqlite://x.db?mode=ro");
        let t = Target::parse("postgresql://u:secret@h/db").unwrap();
        assert_eq!(t.dialect, Dialect::Postgres);
        assert!(!t.description.contains("secret"));
        for bad in [
            "sqlite://",
            "sqlite:?mode=rwc",
            "mysql://h/db",
            "",
            "ehsm.db",
        ] {
            let e = Target::parse(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidUrl(_)), "{bad}: {e}");
        }
    }

    async fn pg_admin(base: &str, sql: String) {
        let mut admin = sqlx::PgConnection::connect(base).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
    }

    /// A connection that goes back to the pool while sqlx still counts a transaction open on it
    /// (as after a COMMIT and a ROLLBACK that both failed) is closed, not handed to the next
    /// operation: otherwise that operation's write went into the transaction that was never
    /// committed, answered `Ok`, and was gone after a reopen. SQLite here; PostgreSQL too when
    /// `EHSM_TEST_POSTGRES` is set (in a schema of its own, dropped afterwards).
    #[tokio::test]
    async fn a_connection_released_inside_a_transaction_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        released_inside_a_transaction(format!("sqlite://{}", dir.path().join("t.db").display()))
            .await;
        let Some(base) = std::env::var("EHSM_TEST_POSTGRES")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            let in_ci =
                std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
            assert!(!in_ci, "CI is set but EHSM_TEST_POSTGRES is not");
            eprintln!("SKIPPED on PostgreSQL: EHSM_TEST_POSTGRES is not set");
            return;
        };
        let schema = format!("release_test_{}", std::process::id());
        pg_admin(&base, format!("CREATE SCHEMA {schema}")).await;
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options[search_path]={schema}");
        // In a task, so that the schema is dropped also when the check fails.
        let outcome = tokio::spawn(released_inside_a_transaction(url)).await;
        pg_admin(&base, format!("DROP SCHEMA {schema} CASCADE")).await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }

    async fn released_inside_a_transaction(url: String) {
        let one = PoolSettings {
            max_connections: Some(1),
            ..PoolSettings::default()
        };
        let store = Store::open_with(&url, one).await.unwrap();
        let mut conn = store.pool.acquire().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("INSERT INTO settings (name, value) VALUES ('never', $1)")
            .bind(&b"x"[..])
            .execute(&mut *tx)
            .await
            .unwrap();
        // Neither committed nor rolled back: sqlx still counts the transaction open.
        std::mem::forget(tx);
        drop(conn);
        store.put_setting("kept", b"1").await.unwrap();
        store.close().await;
        let store = Store::open(&url).await.unwrap();
        assert_eq!(
            store.get_setting("kept").await.unwrap(),
            Some(b"1".to_vec()),
            "{url}: an acknowledged write is lost"
        );
        assert_eq!(store.get_setting("never").await.unwrap(), None);
        store.close().await;
    }

    #[tokio::test]
    async fn sqlite_connections_are_durable() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let store = Store::open(&url).await.unwrap();
        // Check several pooled connections, not only the first.
        let mut conns = Vec::new();
        for _ in 0..3 {
            conns.push(store.pool.acquire().await.unwrap());
        }
        for conn in &mut conns {
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(sync, 2, "synchronous must be FULL");
            let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(fk, 1);
            let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(busy, 5000);
        }
        drop(conns);
        store.close().await;
    }

    /// A database written before key versions existed (migrations 1 to 6, a key with its blob
    /// in its row) opens with that key as version 1 of itself, its blob unchanged.
    #[tokio::test]
    async fn keys_made_before_versions_become_version_1() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        let old = Migrator {
            migrations: std::borrow::Cow::Owned(
                SQLITE_MIGRATIONS
                    .migrations
                    .iter()
                    .filter(|m| m.version <= 6)
                    .cloned()
                    .collect(),
            ),
            ..Migrator::DEFAULT
        };
        let mut conn = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
            .await
            .unwrap();
        old.run_direct(None, &mut conn, false).await.unwrap();
        sqlx::raw_sql(
            "INSERT INTO apps VALUES ('a1', x'01', 5); \
             INSERT INTO cmks (keyid, appid, keyspec, origin, keyusage, version, state, \
             creation_date, expire_time, alias, key_blob, listed) VALUES ('k1', 'a1', \
             'EH_AES_GCM_256', 'EH_INTERNAL_KEY', 'EH_KEYUSAGE_ENCRYPT_DECRYPT', 1, 1, 7, 9, '', \
             x'00ff10', 1)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
        let store = Store::open(&url).await.unwrap();
        let k = store.get_cmk("k1").await.unwrap().unwrap();
        assert_eq!(k.primary_version, 1);
        assert_eq!(
            k.versions,
            [CmkVersion {
                version: 1,
                blob: vec![0, 0xff, 0x10],
                creation_date: 7,
            }]
        );
        assert_eq!(
            (k.next_rotation, k.deletion_date, k.description),
            (None, None, None)
        );
        store.close().await;
    }
}
