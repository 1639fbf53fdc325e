//! The engine's SQL database: SQLite in a file by default, PostgreSQL when a `postgres://`
//! URL is configured, both through one connection pool and the same queries.
//!
//! Each backend has its own migrations (`migrations/sqlite`, `migrations/postgres`) that
//! build the same tables. Queries use `$1`-style placeholders, which both accept.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, ConnectOptions, Executor, Transaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::sinks::SinkError;

/// Statements slower than this are logged, at debug level: the sinks batch on purpose, and
/// their own metrics time each write.
const SLOW_STATEMENT: Duration = Duration::from_secs(1);

/// Settings of every SQLite connection. Besides WAL mode, a page cache of 32 MiB: a batch's
/// rows land on pages all over the telemetry index, and the default 2 MiB cache read them
/// back from the file on every batch. A checkpoint runs every 8,000 pages (32 MiB of log)
/// instead of 1,000, so a page rewritten by many batches is copied into the database file
/// fewer times.
const SQLITE_SETTINGS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA busy_timeout = 5000; PRAGMA cache_size = -32768; PRAGMA wal_autocheckpoint = 8000;";

/// Server of the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Errors opening the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot create data directory {path}: {source}; choose a writable directory with --data-dir"
    )]
    CreateDirectory {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "database URL `{url}` is not supported; use postgres://user@host:port/database, or leave storage.database_url unset for SQLite under the data directory"
    )]
    UnsupportedUrl { url: String },
    #[error(
        "cannot open database {target}: {source}; check that the server runs and the URL, user and password are right"
    )]
    Open { target: String, source: sqlx::Error },
    #[error("cannot migrate database {target}: {source}")]
    Migrate {
        target: String,
        source: sqlx::migrate::MigrateError,
    },
}

/// An open, migrated database.
#[derive(Clone, Debug)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    /// On SQLite, the one permit that bulk write transactions take in turn, because SQLite
    /// lets one writer in at a time. Without it, concurrent batches each held a pooled
    /// connection and spun in SQLite's busy handler, about a tenth of the engine's CPU in the
    /// direct feed.
    writer: Option<Arc<Semaphore>>,
}

/// A write transaction, holding the SQLite writer permit until it ends.
pub struct WriteTransaction {
    transaction: Transaction<'static, Any>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl WriteTransaction {
    /// Commits the transaction and lets the next writer in.
    ///
    /// # Errors
    ///
    /// Returns the database error of the commit.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.transaction.commit().await
    }
}

impl Deref for WriteTransaction {
    type Target = Transaction<'static, Any>;

    fn deref(&self) -> &Self::Target {
        &self.transaction
    }
}

impl DerefMut for WriteTransaction {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.transaction
    }
}

impl Database {
    /// Opens the SQLite file at `path`, creating it and its directory if needed.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError`] when the file cannot be created, opened or migrated.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        if let Some(directory) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(directory).map_err(|source| StoreError::CreateDirectory {
                path: directory.display().to_string(),
                source,
            })?;
        }
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::connect(&url, &path.display().to_string(), Backend::Sqlite).await
    }

    /// Opens the database at `url`: `postgres://` or `sqlite://`.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError`] for another scheme, or when the server cannot be reached or
    /// the schema cannot be migrated.
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::UnsupportedUrl { url: redact(url) });
        };
        Self::connect(url, &redact(url), backend).await
    }

    async fn connect(url: &str, target: &str, backend: Backend) -> Result<Self, StoreError> {
        install_default_drivers();
        let options = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .acquire_timeout(Duration::from_secs(10));
        let options = match backend {
            Backend::Sqlite => options.after_connect(|connection, _| {
                Box::pin(async move { connection.execute(SQLITE_SETTINGS).await.map(|_| ()) })
            }),
            Backend::Postgres => options,
        };
        let connect_options = AnyConnectOptions::from_str(url)
            .map_err(|source| StoreError::Open {
                target: target.to_owned(),
                source,
            })?
            .log_slow_statements(log::LevelFilter::Debug, SLOW_STATEMENT);
        let pool = match options.connect_with(connect_options.clone()).await {
            Ok(pool) => pool,
            Err(sqlx::Error::PoolTimedOut) => {
                // The pool hides why no connection opened; one direct attempt returns the cause.
                let source = match connect_options.connect().await {
                    Ok(_) => sqlx::Error::PoolTimedOut,
                    Err(cause) => cause,
                };
                return Err(StoreError::Open {
                    target: target.to_owned(),
                    source,
                });
            }
            Err(source) => {
                return Err(StoreError::Open {
                    target: target.to_owned(),
                    source,
                });
            }
        };
        let migrator = match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                target: target.to_owned(),
                source,
            })?;
        let writer = matches!(backend, Backend::Sqlite).then(|| Arc::new(Semaphore::new(1)));
        Ok(Self {
            pool,
            backend,
            writer,
        })
    }

    /// Begins a transaction of a sink's write, its failure classified for the batcher.
    ///
    /// # Errors
    ///
    /// Returns the classified error when no connection can be had.
    pub async fn begin_write(&self) -> Result<WriteTransaction, SinkError> {
        self.begin_writer().await.map_err(|error| classify(&error))
    }

    /// Begins a transaction that writes in bulk: the sinks' batches and the alarm history.
    /// On SQLite it first waits for the writer permit, in arrival order, then takes the write
    /// lock at once (`BEGIN IMMEDIATE`), so other writers wait at most the busy timeout.
    ///
    /// # Errors
    ///
    /// Returns the database error when no connection can be had.
    pub async fn begin_writer(&self) -> Result<WriteTransaction, sqlx::Error> {
        let permit = match &self.writer {
            Some(writer) => Some(
                Arc::clone(writer)
                    .acquire_owned()
                    .await
                    .map_err(|_| sqlx::Error::PoolClosed)?,
            ),
            None => None,
        };
        let transaction = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTransaction {
            transaction,
            _permit: permit,
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool after pending work.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Classifies a database error: a lost connection, a timeout, a busy database or a full
/// disk may pass, so they are retried.
pub fn classify(error: &sqlx::Error) -> SinkError {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => SinkError::retriable("unavailable", error.to_string()),
        sqlx::Error::Database(database) => {
            let message = database.message().to_owned();
            // SQLite reports a locked or busy database, a full disk and I/O errors by message;
            // each passes once the other writer finishes or space is freed.
            let busy = ["locked", "busy", "disk is full", "disk I/O error"]
                .iter()
                .any(|pattern| message.contains(pattern));
            let transient = database.code().is_some_and(|code| {
                code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57")
                    || code == "40001"
                    || code == "40P01"
            });
            if busy || transient {
                SinkError::retriable("unavailable", message)
            } else {
                SinkError::permanent("database_error", message)
            }
        }
        _ => SinkError::permanent("database_error", error.to_string()),
    }
}

/// Returns `url` without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://app:secret@db:5432/valmetal"),
            "postgres://app:***@db:5432/valmetal"
        );
        assert_eq!(
            redact("postgres://app@db/valmetal"),
            "postgres://app@db/valmetal"
        );
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
