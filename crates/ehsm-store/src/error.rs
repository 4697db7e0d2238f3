//! The store's one error type.
//!
//! `Display` and `Debug` are written so that an error can be logged as it is: they name what
//! failed but never echo a stored or bound value. That is why the driver error is not exposed as
//! `source()`: sqlx's own messages can quote values (a decode error prints the raw value, a
//! PostgreSQL data exception quotes its input). Code that needs the driver error can match on
//! [`Error::Database`] or [`Error::Open`].

use std::fmt;

use sqlx::error::DatabaseError;
use sqlx::migrate::MigrateError;

/// The result type of every store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a store operation.
#[derive(thiserror::Error)]
pub enum Error {
    /// A record with the same id (appid, keyid) already exists; nothing was written.
    #[error("a record with this id already exists")]
    Conflict,
    /// The app a key names does not exist; nothing was written.
    #[error("no such app")]
    UnknownApp,
    /// The key a secret names does not exist (it was deleted after the caller looked it up);
    /// nothing was written.
    #[error("no such key")]
    UnknownKey,
    /// The app already holds `count` records of the kind being inserted, its quota or more;
    /// nothing was written.
    #[error("quota exceeded: the app already holds {count}")]
    QuotaExceeded {
        /// How many the app holds.
        count: u64,
    },
    /// The key (or, for a deletion of all of an app's keys, `keys` of them) encrypts `secrets`
    /// secrets, which would become unreadable; nothing was deleted.
    #[error("{keys} key(s) encrypt {secrets} secret(s)")]
    KeyInUse {
        /// How many of the keys to delete encrypt secrets.
        keys: u64,
        /// How many secrets they encrypt.
        secrets: u64,
    },
    /// The database URL is not one the store can open (the URL itself is not repeated, since it
    /// may hold a password).
    #[error("invalid database URL: {0}")]
    InvalidUrl(&'static str),
    /// A value cannot be stored the same way on every backend (the field is named).
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// The database could not be opened or reached.
    #[error("cannot open {target}: {}", Sanitized(.cause))]
    Open {
        /// What was being opened, e.g. `SQLite database "/var/lib/ehsm/ehsm.db"` (never a URL
        /// with credentials).
        target: String,
        /// The driver's error.
        cause: sqlx::Error,
    },
    /// Bringing the schema up to date failed.
    #[error("database migration failed: {}", SanitizedMigrate(.0))]
    Migration(MigrateError),
    /// A stored row holds a value the store never writes (e.g. a key state other than 0 or 1).
    #[error("stored record is invalid: {0}")]
    Corrupt(&'static str),
    /// Any other database failure.
    #[error("database error: {}", Sanitized(.0))]
    Database(sqlx::Error),
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let variant = match self {
            Self::Conflict => "Conflict",
            Self::UnknownApp => "UnknownApp",
            Self::UnknownKey => "UnknownKey",
            Self::QuotaExceeded { .. } => "QuotaExceeded",
            Self::KeyInUse { .. } => "KeyInUse",
            Self::InvalidUrl(_) => "InvalidUrl",
            Self::InvalidInput(_) => "InvalidInput",
            Self::Open { .. } => "Open",
            Self::Migration(_) => "Migration",
            Self::Corrupt(_) => "Corrupt",
            Self::Database(_) => "Database",
        };
        write!(f, "{variant}({self})")
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
    }
}

/// Displays a sqlx error without any value it may quote.
struct Sanitized<'a>(&'a sqlx::Error);

impl fmt::Display for Sanitized<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use sqlx::Error as E;
        match self.0 {
            E::Database(e) => fmt_database_error(e.as_ref(), f),
            E::Io(e) => write!(f, "I/O error: {e}"),
            E::Tls(e) => write!(f, "TLS error: {e}"),
            // URL parsing errors name the offending part, not the URL (the one sqlx message that
            // quotes the URL, for an unknown scheme, cannot happen: `Store::open` checks the
            // scheme first).
            E::Configuration(e) => write!(f, "invalid connection settings: {e}"),
            e @ (E::PoolTimedOut
            | E::PoolClosed
            | E::WorkerCrashed
            | E::RowNotFound
            | E::BeginFailed
            | E::InvalidSavePointStatement
            | E::ColumnIndexOutOfBounds { .. }
            | E::TypeNotFound { .. }
            | E::ColumnNotFound(_)) => write!(f, "{e}"),
            E::ColumnDecode { index, .. } => write!(f, "cannot decode column {index}"),
            E::Decode(_) => f.write_str("cannot decode a value"),
            E::Encode(_) => f.write_str("cannot encode a value"),
            E::Protocol(_) => f.write_str("unexpected data from the database server"),
            E::AnyDriverError(_) => f.write_str("the database driver cannot map a type"),
            E::InvalidArgument(_) => f.write_str("invalid argument to the database driver"),
            E::Migrate(m) => write!(f, "{}", SanitizedMigrate(m)),
            _ => f.write_str("unexpected database driver error"),
        }
    }
}

/// SQLite messages never quote values. PostgreSQL's primary messages quote values only in
/// class 22 (data exception, e.g. `invalid input syntax for type bigint: "…"`); constraint
/// violations keep the offending values in the DETAIL field, which is never printed.
fn fmt_database_error(e: &dyn DatabaseError, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let code = e.code().unwrap_or_default();
    if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        write!(f, "{} (SQLite code {code})", e.message())?;
    } else if code.starts_with("22") {
        write!(f, "data exception (SQLSTATE {code})")?;
    } else {
        write!(f, "{} (SQLSTATE {code})", e.message())?;
    }
    Ok(())
}

struct SanitizedMigrate<'a>(&'a MigrateError);

impl fmt::Display for SanitizedMigrate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            MigrateError::Execute(e) => write!(f, "{}", Sanitized(e)),
            MigrateError::ExecuteMigration(e, version) => {
                write!(f, "migration {version}: {}", Sanitized(e))
            }
            // The other variants carry version numbers only.
            other => write!(f, "{other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_do_not_quote_values() {
        let e = Error::Database(sqlx::Error::ColumnDecode {
            index: "3".into(),
            source: "expected BIGINT, got Blob([115, 101, 99, 114, 101, 116])".into(),
        });
        let shown = format!("{e} {e:?}");
        assert!(shown.contains("cannot decode column 3"), "{shown}");
        assert!(!shown.contains("115"), "{shown}");
        assert!(std::error::Error::source(&e).is_none());
    }

    #[test]
    fn simple_variants_read_well() {
        assert_eq!(
            Error::Conflict.to_string(),
            "a record with this id already exists"
        );
        assert_eq!(
            format!("{:?}", Error::Conflict),
            "Conflict(a record with this id already exists)"
        );
        assert_eq!(
            Error::Database(sqlx::Error::PoolClosed).to_string(),
            "database error: attempted to acquire a connection on a closed pool"
        );
    }
}
