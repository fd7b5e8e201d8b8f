//! The database: one diesel code path over PostgreSQL (production) and SQLite
//! (the embedded default), an r2d2 pool with a checkout timeout, embedded
//! migrations, and [`Db::run`], which moves every query off the async workers.
//!
//! Every wait on PostgreSQL is bounded by `database.connect_timeout_seconds`,
//! so a database that stops answering (frozen, or a failover that leaves the
//! old connections silent) gives 503 instead of hanging requests: libpq's
//! `connect_timeout`, keepalives and `tcp_user_timeout`, a server-side
//! `statement_timeout`, and a client-side watchdog that shuts a connection's
//! socket when a checkout ping or a request's queries outlast their limit.
//! libpq blocks in `poll()` with no limit of its own, and a frozen peer's
//! kernel still acknowledges every packet, so only the watchdog frees a
//! thread waiting on a silent connection.

pub mod schema;
mod watchdog;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::R2D2Connection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::clock::{Clock, stored_now, system_clock};

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// A connection to either backend; queries written once run on both.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// A pooled connection: the connection plus what bounds its waits.
pub struct Conn {
    inner: AnyConnection,
    /// PostgreSQL's socket, for the watchdog; None for SQLite (a local file
    /// has no silent peer) or when the socket could not be told apart.
    socket: Option<watchdog::Socket>,
    /// When it was opened, in the manager's count: a failed ping distrusts
    /// every connection opened before it.
    generation: u64,
    /// The watchdog shut it, or it lost its session limits: never reused.
    broken: bool,
}

impl std::ops::Deref for Conn {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}

impl Conn {
    /// Runs `f`; past `limit` the watchdog shuts the socket, so libpq returns
    /// at once with a closed connection, which is then never reused.
    /// Returns whether the watchdog fired.
    fn bounded<T, E>(
        &mut self,
        limit: Duration,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
    ) -> (Result<T, E>, bool) {
        let armed = self.socket.map(|socket| watchdog::arm(socket, limit));
        let result = f(&mut self.inner);
        let fired = armed.is_some_and(watchdog::Armed::disarm);
        if fired {
            self.broken = true;
        }
        (result, fired)
    }

    /// Lifts the session limits for long work (migrations, start-up
    /// rewrites, the CLI); the connection is dropped afterwards rather than
    /// returned to the pool without them.
    fn unbounded(&mut self) -> Result<(), DbError> {
        if let AnyConnection::Postgresql(pg) = &mut self.inner {
            self.broken = true;
            pg.batch_execute(
                "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0",
            )?;
        }
        Ok(())
    }
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

/// A value as the JSON text a column stores (lists of strings, a stored
/// request); a value that can't be written is a query error, not a panic.
pub fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, DbError> {
    serde_json::to_string(value)
        .map_err(|e| DbError::Query(DieselError::SerializationError(Box::new(e))))
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
            // statement_timeout: the database did not finish in time.
            DieselError::DatabaseError(_, info) if info.message().contains("statement timeout") => {
                DbError::Unavailable(info.message().to_owned())
            }
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

/// How long PostgreSQL may keep us waiting, all derived from
/// `database.connect_timeout_seconds`.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// Pool checkout, libpq's `connect_timeout`, one request's queries
    /// (client watchdog and server `statement_timeout`).
    wait: Duration,
    /// The ping that validates a pooled connection on checkout: short, so
    /// a silent connection costs a request little before a new one opens.
    ping: Duration,
}

impl Limits {
    fn from_wait(wait: Duration) -> Limits {
        let wait = wait.max(Duration::from_secs(1));
        Limits {
            wait,
            ping: (wait / 2).min(Duration::from_secs(1)),
        }
    }

    /// libpq parameters that bound connecting and detect a dead peer at the
    /// TCP level (a host gone after a failover): keepalive probes on idle
    /// connections, and `tcp_user_timeout` for data left unacknowledged.
    /// Parameters already in the URL are the operator's and stay.
    fn conninfo(&self, url: &str) -> String {
        let secs = self.wait.as_secs().max(1);
        let wanted = [
            ("connect_timeout", secs.to_string()),
            ("keepalives", "1".to_owned()),
            ("keepalives_idle", secs.to_string()),
            ("keepalives_interval", "1".to_owned()),
            ("keepalives_count", "3".to_owned()),
            ("tcp_user_timeout", self.wait.as_millis().to_string()),
        ];
        let present: Vec<String> = url::Url::parse(url)
            .map(|u| u.query_pairs().map(|(k, _)| k.into_owned()).collect())
            .unwrap_or_default();
        let mut url = url.to_owned();
        for (key, value) in wanted {
            if !present.iter().any(|k| k == key) {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&format!("{key}={value}"));
            }
        }
        url
    }

    /// Set on every PostgreSQL connection: the server gives up on a
    /// statement, or a transaction left idle by a client that vanished,
    /// after the same time the client waits.
    fn session_sql(&self) -> String {
        let ms = self.wait.as_millis();
        format!("SET statement_timeout = {ms}; SET idle_in_transaction_session_timeout = {ms}")
    }
}

/// r2d2 manager that establishes the concrete connection for the backend,
/// so connection errors say what really went wrong, sets SQLite up, and
/// bounds PostgreSQL's waits.
#[derive(Debug)]
pub struct Manager {
    backend: Backend,
    limits: Limits,
    /// Count of connections opened.
    opened: AtomicU64,
    /// Connections opened before this count are not trusted: a ping on one
    /// of them went unanswered, so the database behind them is gone or
    /// frozen (a failover leaves every old connection silent).
    distrust_before: AtomicU64,
}

fn closed_connection(message: String) -> DieselError {
    DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, Box::new(message))
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = DieselError;

    fn connect(&self) -> Result<Conn, DieselError> {
        let establish_error = |e: diesel::ConnectionError| {
            DieselError::DatabaseError(
                DatabaseErrorKind::UnableToSendCommand,
                Box::new(e.to_string()),
            )
        };
        let generation = self.opened.fetch_add(1, Ordering::SeqCst);
        match &self.backend {
            Backend::Postgres(url) => {
                let (established, socket) =
                    watchdog::establish_and_find_socket(url, self.limits.ping, || {
                        PgConnection::establish(url)
                    });
                let mut conn = Conn {
                    inner: AnyConnection::Postgresql(established.map_err(establish_error)?),
                    socket,
                    generation,
                    broken: false,
                };
                let sql = self.limits.session_sql();
                let (set, fired) = conn.bounded(self.limits.wait, |c| c.batch_execute(&sql));
                if fired {
                    return Err(closed_connection("no answer to the session set-up".into()));
                }
                set?;
                Ok(conn)
            }
            Backend::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path).map_err(establish_error)?;
                // busy_timeout before WAL: the other order gives busy errors
                // while the pool starts (STACK_NOTES.md).
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )?;
                Ok(Conn {
                    inner: AnyConnection::Sqlite(conn),
                    socket: None,
                    generation,
                    broken: false,
                })
            }
        }
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), DieselError> {
        if conn.generation < self.distrust_before.load(Ordering::SeqCst) {
            conn.broken = true;
            return Err(closed_connection(
                "dropped: opened before the database stopped answering".into(),
            ));
        }
        if let AnyConnection::Sqlite(c) = &mut conn.inner {
            return c.ping();
        }
        let (pinged, fired) = conn.bounded(self.limits.ping, |c| c.batch_execute("SELECT 1"));
        if fired {
            // Every connection opened so far is likely as silent as this one:
            // drop them on checkout instead of waiting on each in turn.
            self.distrust_before
                .fetch_max(self.opened.load(Ordering::SeqCst), Ordering::SeqCst);
            return Err(closed_connection(format!(
                "no answer to a ping within {:?}",
                self.limits.ping
            )));
        }
        pinged
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken
            || match &mut conn.inner {
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
    /// Longest a request's queries may wait on the database.
    wait: Duration,
    /// The time every row written through this handle is stamped with.
    clock: Clock,
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
        let limits = Limits::from_wait(checkout_timeout);
        let backend = match backend {
            Backend::Postgres(url) => Backend::Postgres(limits.conninfo(&url)),
            sqlite => sqlite,
        };
        let manager = Manager {
            backend,
            limits,
            opened: AtomicU64::new(0),
            distrust_before: AtomicU64::new(0),
        };
        r2d2::ManageConnection::connect(&manager)
            .map_err(|e| DbError::Unavailable(connection_error_text(&e)))?;
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(min_idle)
            .connection_timeout(checkout_timeout)
            .error_handler(Box::new(LogPoolErrors))
            .build(manager)?;
        Ok(Db {
            pool,
            backend_name,
            wait: limits.wait,
            clock: system_clock(),
        })
    }

    /// The same database, read and written at the time `clock` tells (the
    /// service passes the one clock it was started with).
    pub fn with_clock(mut self, clock: Clock) -> Db {
        self.clock = clock;
        self
    }

    /// Now, as the database stores it (to the microsecond, UTC).
    pub fn now(&self) -> chrono::NaiveDateTime {
        stored_now(&self.clock)
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
        conn.unbounded()?;
        let applied = match &mut **conn {
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
        let wait = self.wait;
        // The caller's span (a request's, with its id) on the blocking
        // thread too, so what is logged there carries the request id.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _in_request = span.enter();
            let mut conn = pool.get()?;
            match conn.bounded(wait, f) {
                (Err(_), true) => Err(DbError::Unavailable(format!(
                    "no answer from the database within {wait:?}"
                ))),
                (result, _) => result,
            }
        })
        .await
        .map_err(|e| DbError::Unavailable(format!("database task failed: {e}")))?
    }

    /// Runs `f` synchronously, for the CLI and start-up: work that may
    /// take long (rewriting stored rows), so without the request limits.
    pub fn run_blocking<T>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut conn = self.pool.get()?;
        conn.unbounded()?;
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
    fn postgres_waits_are_bounded_from_the_connect_timeout() {
        let limits = Limits::from_wait(Duration::from_secs(3));
        assert_eq!(limits.ping, Duration::from_secs(1));
        let url = limits.conninfo("postgres://u@h/db");
        for param in [
            "connect_timeout=3",
            "keepalives=1",
            "keepalives_idle=3",
            "keepalives_interval=1",
            "keepalives_count=3",
            "tcp_user_timeout=3000",
        ] {
            assert!(url.contains(param), "{url} lacks {param}");
        }
        assert!(
            url.starts_with("postgres://u@h/db?connect_timeout=3&"),
            "{url}"
        );
        // The operator's own parameters win and are not repeated.
        let url = limits.conninfo("postgres://u@h/db?sslmode=require&connect_timeout=10");
        assert!(url.starts_with("postgres://u@h/db?sslmode=require&connect_timeout=10&"));
        assert_eq!(url.matches("connect_timeout=").count(), 1, "{url}");
        assert_eq!(
            limits.session_sql(),
            "SET statement_timeout = 3000; SET idle_in_transaction_session_timeout = 3000"
        );
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
