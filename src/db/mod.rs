//! The database: one diesel code path over PostgreSQL (production) and SQLite
//! (the embedded default), an r2d2 pool with a checkout timeout, embedded
//! migrations, and [`Db::run`], which moves every query off the async workers.

pub mod schema;

use std::time::Duration;

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// A connection to either backend; queries written once run on both.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConnection = r2d2::PooledConnection<Manager>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached or gave no connection in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint refused the write.
    #[error("unique constraint violated")]
    UniqueViolation,
    /// A concurrent transaction changed what this one read; retrying may
    /// succeed.
    #[error("concurrent update; retry")]
    Conflict,
    #[error("database error: {0}")]
    Query(DieselError),
}

impl From<DieselError> for DbError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                DbError::UniqueViolation
            }
            DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                DbError::Conflict
            }
            // A connection that died under us: the server went away.
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => DbError::Unavailable(info.message().to_owned()),
            // SQLite's "database is locked" after the busy timeout: too much
            // write contention to wait out.
            DieselError::DatabaseError(_, info)
                if info.message().contains("database is locked") =>
            {
                DbError::Unavailable(info.message().to_owned())
            }
            other => DbError::Query(other),
        }
    }
}

impl From<r2d2::Error> for DbError {
    fn from(e: r2d2::Error) -> Self {
        DbError::Unavailable(e.to_string())
    }
}

/// Which backend a URL names. Chosen from the scheme here, because
/// `AnyConnection::establish` falls back from PostgreSQL to SQLite and hides
/// the real PostgreSQL error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Postgres(String),
    /// The SQLite file path.
    Sqlite(String),
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Backend, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres(url.to_owned()))
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(DbError::Unavailable("sqlite URL names no file".into()));
            }
            Ok(Backend::Sqlite(path.to_owned()))
        } else {
            Err(DbError::Unavailable(
                "database URL must start with postgres:// or sqlite://".into(),
            ))
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Postgres(_) => "postgresql",
            Backend::Sqlite(_) => "sqlite",
        }
    }
}

/// The URL with any password (userinfo or `?password=`) replaced, fit for
/// logs.
pub fn redacted_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" {
                    "***".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// r2d2 manager that establishes the concrete connection for the backend,
/// so connection errors say what really went wrong, and sets SQLite up.
#[derive(Debug)]
pub struct Manager {
    backend: Backend,
}

impl r2d2::ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = DieselError;

    fn connect(&self) -> Result<AnyConnection, DieselError> {
        let establish_error = |e: diesel::ConnectionError| {
            DieselError::DatabaseError(
                DatabaseErrorKind::UnableToSendCommand,
                Box::new(e.to_string()),
            )
        };
        match &self.backend {
            Backend::Postgres(url) => PgConnection::establish(url)
                .map(AnyConnection::Postgresql)
                .map_err(establish_error),
            Backend::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path).map_err(establish_error)?;
                // busy_timeout before WAL: the other order gives busy errors
                // while the pool starts (STACK_NOTES.md).
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )?;
                Ok(AnyConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), DieselError> {
        match conn {
            AnyConnection::Postgresql(c) => c.ping(),
            AnyConnection::Sqlite(c) => c.ping(),
        }
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        match conn {
            AnyConnection::Postgresql(c) => c.is_broken(),
            AnyConnection::Sqlite(c) => c.is_broken(),
        }
    }
}

/// The pool plus the rule that diesel, being blocking, never runs on an
/// actix worker.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    backend_name: &'static str,
}

impl Db {
    /// Connects once directly (so an unreachable database is reported with
    /// its real error), then builds the pool.
    pub fn connect(url: &str, pool_size: u32, checkout_timeout: Duration) -> Result<Db, DbError> {
        Self::connect_with(url, pool_size, Some(1), checkout_timeout)
    }

    /// For short-lived processes (the CLI): one connection, opened on
    /// demand, none opened in the background — a process exiting while a
    /// pool thread is half-way through a TLS handshake can crash in
    /// OpenSSL's exit handlers.
    pub fn connect_oneshot(url: &str, checkout_timeout: Duration) -> Result<Db, DbError> {
        Self::connect_with(url, 1, Some(0), checkout_timeout)
    }

    fn connect_with(
        url: &str,
        pool_size: u32,
        min_idle: Option<u32>,
        checkout_timeout: Duration,
    ) -> Result<Db, DbError> {
        let backend = Backend::from_url(url)?;
        if let Backend::Sqlite(path) = &backend
            && let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                DbError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let backend_name = backend.name();
        let manager = Manager { backend };
        r2d2::ManageConnection::connect(&manager)
            .map_err(|e| DbError::Unavailable(connection_error_text(&e)))?;
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(min_idle)
            .connection_timeout(checkout_timeout)
            .error_handler(Box::new(LogPoolErrors))
            .build(manager)?;
        Ok(Db { pool, backend_name })
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend_name
    }

    /// Connections the pool holds, and how many of them are idle.
    pub fn pool_usage(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }

    /// Runs the embedded migrations of this backend; returns the versions
    /// applied (`20261202000006` for `2026-12-02-000006_…`).
    pub fn migrate(&self) -> Result<Vec<String>, DbError> {
        let mut conn = self.pool.get()?;
        let applied = match &mut *conn {
            AnyConnection::Postgresql(c) => c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.iter().map(ToString::to_string).collect()),
            AnyConnection::Sqlite(c) => c
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(|v| v.iter().map(ToString::to_string).collect()),
        };
        applied.map_err(|e| DbError::Unavailable(format!("migrations failed: {e}")))
    }

    /// Runs `f` with a pooled connection on the blocking thread pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| DbError::Unavailable(format!("database task failed: {e}")))?
    }

    /// Runs `f` synchronously, for the CLI and start-up.
    pub fn run_blocking<T>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut conn = self.pool.get()?;
        f(&mut conn)
    }

    /// For read-then-write rules that must hold under concurrency; call
    /// first in a transaction. PostgreSQL: SERIALIZABLE (a lost race is a
    /// `Conflict` to retry). SQLite: takes the write lock now, waiting on
    /// the busy timeout, instead of failing at the first write after a read.
    pub fn lock_for_write(conn: &mut AnyConnection) -> Result<(), DbError> {
        match conn {
            AnyConnection::Postgresql(pg) => {
                pg.batch_execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")?
            }
            // A write statement takes the RESERVED lock even when it changes
            // no row.
            AnyConnection::Sqlite(lite) => {
                lite.batch_execute("UPDATE users SET disabled = disabled WHERE 0")?
            }
        }
        Ok(())
    }

    /// Takes SQLite's write lock first in a transaction that reads before
    /// it writes, so concurrent ones wait (busy timeout) instead of failing
    /// at their first write. PostgreSQL needs nothing: row locks and
    /// compare-and-set updates settle the race there.
    pub fn lock_sqlite_for_write(conn: &mut AnyConnection) -> Result<(), DbError> {
        if let AnyConnection::Sqlite(lite) = conn {
            lite.batch_execute("UPDATE users SET disabled = disabled WHERE 0")?;
        }
        Ok(())
    }

    /// A connection answers a trivial query.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.run(|conn| {
            conn.batch_execute("SELECT 1")?;
            Ok(())
        })
        .await
    }
}

/// libpq's messages span lines; logs and start-up errors want one.
fn connection_error_text(e: &DieselError) -> String {
    let text = match e {
        DieselError::DatabaseError(_, info) => info.message().to_owned(),
        other => other.to_string(),
    };
    text.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// r2d2 logs nothing by itself; a failing database should show in the log.
#[derive(Debug)]
struct LogPoolErrors;

impl r2d2::HandleError<DieselError> for LogPoolErrors {
    fn handle_error(&self, error: DieselError) {
        tracing::warn!(error = %connection_error_text(&error), "database connection failed");
    }
}

/// Keyset pagination: a cursor is the last row's id (UUIDv7, so ordered by
/// creation), base64url so clients treat it as opaque.
pub fn encode_cursor(id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// The id in a cursor made by [`encode_cursor`]; None for anything else.
/// Ids are UUIDs: anything else (`AA` is a NUL, which PostgreSQL can't
/// even compare with TEXT) never reaches a query.
pub fn decode_cursor(cursor: &str) -> Option<String> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|id| uuid::Uuid::try_parse(id).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_hold_ids_only() {
        let id = uuid::Uuid::now_v7().to_string();
        assert_eq!(decode_cursor(&encode_cursor(&id)), Some(id));
        for bad in [
            "AA",
            "",
            "%%%",
            "!!!",
            &encode_cursor("not-an-id"),
            &encode_cursor("\0"),
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn backend_from_url_scheme() {
        assert_eq!(
            Backend::from_url("sqlite://data/t.db").unwrap(),
            Backend::Sqlite("data/t.db".into())
        );
        assert_eq!(
            Backend::from_url("sqlite:///tmp/t.db").unwrap(),
            Backend::Sqlite("/tmp/t.db".into())
        );
        assert!(matches!(
            Backend::from_url("postgres://u@h/db").unwrap(),
            Backend::Postgres(_)
        ));
        assert!(Backend::from_url("mysql://x").is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redacted_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redacted_url("sqlite://data/t.db"), "sqlite://data/t.db");
        let redacted = redacted_url("postgres://u@h/db?sslmode=require&password=secret");
        assert!(
            !redacted.contains("secret") && redacted.contains("sslmode=require"),
            "{redacted}"
        );
    }
}
