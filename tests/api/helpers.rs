use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tessera::keys::{Clock, KeyRing};

use diesel::{Connection, RunQueryDsl, pg::PgConnection};
use reqwest::Response;
use serde_json::{Value, json};
use tessera::configuration::Settings;
use tessera::startup::Application;

/// Where the PostgreSQL half of each test creates its databases. CI sets it
/// and requires it; without it, a local server is tried and, if absent, the
/// PostgreSQL half is skipped with a line saying so.
pub const TEST_DATABASE_ENV: &str = "TESSERA_TEST_DATABASE_URL";
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The one way to run a test on both backends: each test written inside it
/// runs once against SQLite and once against PostgreSQL, as two tests
/// (`<name>::sqlite`, `<name>::postgres`) that run in parallel. A test takes
/// either
/// - `app: TestApp`, an app spawned for it (`, settings = |s| ...` adjusts
///   the settings first; the PostgreSQL half is skipped, with a line saying
///   so, when no server is configured or answers), or
/// - `backend: Backend`, for a test that starts its apps itself (it skips
///   the PostgreSQL half itself, as `TestApp::spawn_with` returning None).
#[macro_export]
macro_rules! both_backends {
    () => {};
    // The two tests, each calling `$run` with its backend.
    (@tests $run:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn sqlite() {
            $run($crate::helpers::Backend::Sqlite).await
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn postgres() {
            $run($crate::helpers::Backend::Postgres).await
        }
    };
    (
        $(#[$meta:meta])*
        async fn $name:ident($app:ident: TestApp $(, settings = $tweak:expr)?) $body:block
        $($rest:tt)*
    ) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::helpers::{Backend, TestApp};

            async fn run(#[allow(unused_mut)] mut $app: TestApp) $body

            /// The test's own settings, on top of the test defaults.
            fn tweak() -> fn(&mut tessera::configuration::Settings) {
                #[allow(unused_variables)]
                let tweak: fn(&mut tessera::configuration::Settings) = |_| {};
                $(let tweak: fn(&mut tessera::configuration::Settings) = $tweak;)?
                tweak
            }

            async fn on(backend: Backend) {
                let Some(app) = TestApp::spawn_with(backend, tweak()).await else {
                    assert_eq!(backend, Backend::Postgres, "only the PostgreSQL half may be skipped");
                    return;
                };
                run(app).await
            }

            $crate::both_backends!(@tests on);
        }
        $crate::both_backends! { $($rest)* }
    };
    (
        $(#[$meta:meta])*
        async fn $name:ident($backend:ident: Backend) $body:block
        $($rest:tt)*
    ) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($backend: $crate::helpers::Backend) $body

            $crate::both_backends!(@tests run);
        }
        $crate::both_backends! { $($rest)* }
    };
}

/// How often [`wait_until`] looks again.
const POLL_STEP: std::time::Duration = std::time::Duration::from_millis(50);

/// Waits until `condition` holds, looking every 50 ms; fails the test,
/// naming `what`, if it does not within `limit`. For waiting on what the
/// service does instead of sleeping for a guessed time.
pub async fn wait_until(
    what: &str,
    limit: std::time::Duration,
    mut condition: impl AsyncFnMut() -> bool,
) {
    let deadline = std::time::Instant::now() + limit;
    while !condition().await {
        assert!(
            std::time::Instant::now() < deadline,
            "waited {limit:?} for {what}"
        );
        tokio::time::sleep(POLL_STEP).await;
    }
}

/// [`wait_until`] for tests outside an async runtime.
pub fn wait_until_blocking(
    what: &str,
    limit: std::time::Duration,
    mut condition: impl FnMut() -> bool,
) {
    let deadline = std::time::Instant::now() + limit;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited {limit:?} for {what}"
        );
        std::thread::sleep(POLL_STEP);
    }
}

/// A port nothing listens on now, for a server the test starts as a
/// separate process.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PostgreSQL database made for one test and dropped after it: a copy of
/// the migrated template database, so the app finds no migration to run.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl TestDatabase {
    /// None (with a printed line) when PostgreSQL isn't configured and the
    /// default local server doesn't answer.
    pub fn create() -> Option<TestDatabase> {
        let (admin_url, required) = match std::env::var(TEST_DATABASE_ENV) {
            Ok(url) if !url.is_empty() => (url, true),
            _ => (DEFAULT_ADMIN_URL.to_owned(), false),
        };
        let mut admin = match PgConnection::establish(&admin_url) {
            Ok(conn) => conn,
            Err(e) if !required => {
                println!(
                    "skipping the PostgreSQL half: no server at {DEFAULT_ADMIN_URL} ({e}); set {TEST_DATABASE_ENV}"
                );
                return None;
            }
            Err(e) => panic!("{TEST_DATABASE_ENV} is set but PostgreSQL is unreachable: {e}"),
        };
        let name = format!("tessera_test_{}", uuid::Uuid::now_v7().simple());
        let template = template_database(&admin_url);
        retry_while_busy(&format!("create {name} from {template}"), || {
            diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {template}"))
                .execute(&mut admin)
        });
        Some(TestDatabase {
            url: database_url(&admin_url, &name),
            admin_url,
            name,
        })
    }
}

/// An advisory lock key of the test suite's own, held while a template is
/// made, so test binaries running at once make it once.
const TEMPLATE_LOCK: i64 = 0x7465_7373_6572_6174;

/// A template older than this, made from other migrations, is dropped.
const OLD_TEMPLATE_SECONDS: u64 = 24 * 60 * 60;

/// The name of the migrated template database for the current migrations,
/// made once per test process (and once for all processes at once).
fn template_database(admin_url: &str) -> String {
    static TEMPLATE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEMPLATE
        .get_or_init(|| make_template_database(admin_url))
        .clone()
}

fn make_template_database(admin_url: &str) -> String {
    use diesel::sql_types::{Nullable, Text};
    #[derive(diesel::QueryableByName)]
    struct Database {
        #[diesel(sql_type = Text)]
        datname: String,
        #[diesel(sql_type = Nullable<Text>)]
        note: Option<String>,
    }

    let hash = migrations_hash();
    let template = format!("tessera_template_{hash}");
    let building = format!("tessera_building_{hash}");
    let mut admin = PgConnection::establish(admin_url).expect("connect to PostgreSQL");
    diesel::sql_query(format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))
        .execute(&mut admin)
        .expect("take the template lock");
    let databases: Vec<Database> = diesel::sql_query(
        "SELECT datname, shobj_description(oid, 'pg_database') AS note FROM pg_database \
         WHERE datname LIKE 'tessera\\_template\\_%' OR datname LIKE 'tessera\\_building\\_%'",
    )
    .load(&mut admin)
    .expect("list the template databases");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut exists = false;
    for database in databases {
        let made = database.note.and_then(|n| n.parse::<u64>().ok());
        if database.datname == template {
            exists = true;
        } else if database.datname.starts_with("tessera_building_")
            || made.is_none_or(|made| now.saturating_sub(made) > OLD_TEMPLATE_SECONDS)
        {
            // Left by a run that stopped while making it (only one makes a
            // template at a time, under the lock), or old. Best effort: a
            // process still cloning it keeps it.
            let name = database.datname;
            let _ = diesel::sql_query(format!("ALTER DATABASE {name} WITH IS_TEMPLATE false"))
                .execute(&mut admin);
            let _ =
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {name}")).execute(&mut admin);
        }
    }
    if !exists {
        // Made under another name and renamed when complete, so a template
        // by this name is always fully migrated.
        diesel::sql_query(format!("CREATE DATABASE {building}"))
            .execute(&mut admin)
            .expect("create the template database");
        let mut settings = Settings::load(None).expect("default settings");
        settings.database.url = database_url(admin_url, &building);
        // The app's own migration code, as at start.
        let db = tessera::startup::connect_database_oneshot(&settings)
            .expect("migrate the template database");
        drop(db);
        retry_while_busy(&format!("rename {building}"), || {
            diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {template}"))
                .execute(&mut admin)
        });
        for statement in [
            format!("COMMENT ON DATABASE {template} IS '{now}'"),
            format!("ALTER DATABASE {template} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"),
        ] {
            diesel::sql_query(statement)
                .execute(&mut admin)
                .expect("mark the template database");
        }
    }
    diesel::sql_query(format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"))
        .execute(&mut admin)
        .expect("release the template lock");
    template
}

/// A short hash of the PostgreSQL migrations (file names and contents).
fn migrations_hash() -> String {
    use sha2::Digest;
    fn files_under(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("the migrations folder") {
            let path = entry.expect("a migrations folder entry").path();
            if path.is_dir() {
                files_under(&path, files);
            } else {
                files.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut files = Vec::new();
    files_under(&root, &mut files);
    files.sort();
    let mut hasher = sha2::Sha256::new();
    for file in files {
        let relative = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        hasher.update(relative.as_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(&file).expect("a migration file"));
        hasher.update([0]);
    }
    hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The admin URL pointed at database `name`.
fn database_url(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url).expect("a PostgreSQL URL");
    url.set_path(name);
    url.to_string()
}

/// Runs `statement` until it no longer fails because another session is
/// still connected to the database (a connection just closed lingers on the
/// server for a moment).
fn retry_while_busy(what: &str, mut statement: impl FnMut() -> diesel::QueryResult<usize>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match statement() {
            Ok(_) => return,
            Err(e)
                if e.to_string().contains("being accessed by other users")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin);
        }
    }
}

/// The running application and what a test needs to talk to it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    /// The signing keys, to reload them as the periodic rescan would.
    pub keys: Arc<KeyRing>,
    clock: Clock,
    /// How far [`TestApp::advance_clock`] has moved the app's clock past the
    /// real time (None for an app given its own clock).
    time_offset: Option<Arc<AtomicI64>>,
    server: actix_web::dev::ServerHandle,
    // Held for their lifetimes: dropped (deleted) after the test. A second
    // instance beside the first holds neither.
    _dir: Option<Arc<tempfile::TempDir>>,
    _database: Option<Arc<TestDatabase>>,
}

/// A clock a test moves by hand, for the key rotation schedule.
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn starting_now() -> ManualClock {
        ManualClock(Arc::new(Mutex::new(Utc::now())))
    }

    pub fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }

    pub fn advance(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }

    pub fn clock(&self) -> Clock {
        let time = self.0.clone();
        Arc::new(move || *time.lock().unwrap())
    }
}

impl TestApp {
    /// Spawns with settings adjusted by `tweak`; the key folder starts with
    /// the fixture key unless `tweak` points it elsewhere.
    pub async fn spawn_with(
        backend: Backend,
        tweak: impl FnOnce(&mut Settings),
    ) -> Option<TestApp> {
        // The real time plus an offset the test moves forward.
        let offset = Arc::new(AtomicI64::new(0));
        let clock: Clock = {
            let offset = offset.clone();
            Arc::new(move || {
                Utc::now() + chrono::Duration::milliseconds(offset.load(Ordering::SeqCst))
            })
        };
        let mut app = Self::spawn_clocked(backend, tweak, clock).await?;
        app.time_offset = Some(offset);
        Some(app)
    }

    /// Moves the app's clock forward by `by`, as if that much time passed:
    /// sessions idle and expire, codes and sign-in pages go stale.
    pub fn advance_clock(&self, by: std::time::Duration) {
        let offset = self
            .time_offset
            .as_ref()
            .expect("an app spawned with its own clock is moved through that clock");
        let millis = i64::try_from(by.as_millis()).expect("a test-sized duration");
        offset.fetch_add(millis, Ordering::SeqCst);
    }

    /// As [`Self::spawn_with`], with the clock that schedules key rotation.
    pub async fn spawn_clocked(
        backend: Backend,
        tweak: impl FnOnce(&mut Settings),
        clock: Clock,
    ) -> Option<TestApp> {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDatabase::create()?),
        };
        let mut settings = Settings::load(None).expect("default settings");
        settings.server.bind = "127.0.0.1:0".to_owned();
        settings.server.workers = 1;
        settings.database.url = match &database {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}", dir.path().join("tessera.db").display()),
        };
        settings.database.pool_size = 4;
        settings.keys.dir = dir.path().join("keys");
        install_fixture_key(&settings.keys.dir);
        // Every test talks from 127.0.0.1: limits would make them fail
        // each other. The throttling tests turn it on.
        settings.throttle.enabled = false;
        tweak(&mut settings);
        let (address, server, keys) = start(&mut settings, clock.clone()).await;
        Some(TestApp {
            address,
            client: reqwest::Client::new(),
            settings,
            keys,
            clock,
            time_offset: None,
            server,
            _dir: Some(Arc::new(dir)),
            _database: database.map(Arc::new),
        })
    }

    /// A second instance of the same deployment: same database, keys
    /// folder and issuer, its own port and clock.
    pub async fn spawn_beside(&self, clock: Clock) -> TestApp {
        let mut settings = self.settings.clone();
        settings.server.bind = "127.0.0.1:0".to_owned();
        let (address, server, keys) = start(&mut settings, clock.clone()).await;
        TestApp {
            address,
            client: reqwest::Client::new(),
            settings,
            keys,
            clock,
            time_offset: None,
            server,
            _dir: self._dir.clone(),
            _database: self._database.clone(),
        }
    }

    /// Stops the server and starts a new one on the same address, database
    /// and keys.
    pub async fn restart(&mut self) {
        self.server.stop(true).await;
        let (address, server, keys) = start(&mut self.settings, self.clock.clone()).await;
        self.address = address;
        self.server = server;
        self.keys = keys;
    }

    /// Stops the server (the database and keys stay).
    pub async fn stop(&self) {
        self.server.stop(true).await;
    }

    /// Creates an administrator the way an operator would (the library
    /// behind `tessera users create --admin`) and logs in; returns the
    /// access token.
    pub async fn admin_token(&self, email: &str) -> String {
        let settings = self.settings.clone();
        let address = email.to_owned();
        tokio::task::spawn_blocking(move || {
            use tessera::accounts::{self, NewAccount, PasswordHasher};
            let timeout = std::time::Duration::from_secs(5);
            let db = tessera::db::Db::connect_oneshot(&settings.database.url, timeout).unwrap();
            let hasher = PasswordHasher::new(&settings.passwords).unwrap();
            let account =
                NewAccount::parse(&address, PASSWORD.into(), None, vec!["admin".into()]).unwrap();
            accounts::register_blocking(&db, &hasher, account, false).unwrap();
        })
        .await
        .unwrap();
        let body: Value = self.login(email, PASSWORD).await.json().await.unwrap();
        body["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    /// Registers a user with [`PASSWORD`]; returns the response body.
    pub async fn register(&self, email: &str) -> Value {
        let response = self
            .post_json(
                "/v1/auth/register",
                &json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(response.status(), 201, "registering {email}");
        response.json().await.expect("a JSON user")
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/v1/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers and logs in; returns the access token.
    pub async fn access_token(&self, email: &str) -> String {
        self.register(email).await;
        self.tokens(email).await.access
    }

    /// Logs in (the user exists); returns both tokens.
    pub async fn tokens(&self, email: &str) -> Tokens {
        let response = self.login(email, PASSWORD).await;
        assert_eq!(response.status(), 200);
        Tokens::from_response(response).await
    }

    /// `POST /oauth2/token` with `grant_type=refresh_token`.
    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_form(
            "/oauth2/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("request sent")
    }

    /// A database connection of the test's own, to look at what the
    /// service stored.
    pub fn db(&self) -> tessera::db::Db {
        let timeout = std::time::Duration::from_secs(5);
        tessera::db::Db::connect_oneshot(&self.settings.database.url, timeout).unwrap()
    }

    /// The PEM of the key that signs this app's tokens.
    pub fn signing_key_pem(&self) -> String {
        std::fs::read_to_string(self.settings.keys.dir.join(FIXTURE_KEY_NAME)).expect("fixture key")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop accepting; the database is dropped after (field order).
        drop(self.server.stop(false));
    }
}

/// The tokens of a token response.
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl Tokens {
    pub async fn from_response(response: Response) -> Tokens {
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.expect("a token response");
        Tokens {
            access: body["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            refresh: body["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
        }
    }
}

/// Asserts an RFC 6749 §5.2 error; returns the body.
pub async fn assert_oauth_error(response: Response, status: u16, error: &str) -> Value {
    assert_eq!(
        response.status(),
        status,
        "status for expected error {error}"
    );
    let body: Value = response.json().await.expect("an OAuth error document");
    assert_eq!(body["error"], error, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body
}

pub const FIXTURE_KEY_NAME: &str = "tessera-20260101T000000Z.pem";

pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn install_fixture_key(dir: &Path) {
    std::fs::create_dir_all(dir).expect("key folder");
    install_key(dir, "signing-key.pem", FIXTURE_KEY_NAME);
}

/// Copies the fixture key `fixture` into the keys folder `dir` as `name`,
/// readable by its owner only (key files readable by everyone are refused).
pub fn install_key(dir: &Path, fixture: &str, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::copy(fixture_path(fixture), &path).expect("copy the fixture key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Starts the app on `settings.server.bind`; when the issuer isn't set by the
/// test, it is the app's own address, as in a real deployment, so clients can
/// discover it.
async fn start(
    settings: &mut Settings,
    clock: Clock,
) -> (String, actix_web::dev::ServerHandle, Arc<KeyRing>) {
    let listener = std::net::TcpListener::bind(&settings.server.bind).expect("a free port");
    let address = format!("http://{}", listener.local_addr().unwrap());
    if settings.issuer == Settings::load(None).unwrap().issuer {
        settings.issuer = address.clone();
    }
    // Later restarts come back on the same port, so the issuer stays true.
    settings.server.bind = listener.local_addr().unwrap().to_string();
    let settings = settings.clone();
    let app = tokio::task::spawn_blocking(move || {
        Application::build_with_clock(settings, listener, clock)
    })
    .await
    .expect("build task")
    .expect("the application starts");
    let handle = app.handle();
    let keys = app.key_ring();
    tokio::spawn(app.run_until_stopped());
    (address, handle, keys)
}

/// Asserts an RFC 9457 problem with this status and code; returns the body.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status, "status for expected code {code}");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("a problem document");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    assert!(
        body["type"].is_string() && body["title"].is_string(),
        "{body}"
    );
    body
}

pub fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::now_v7().simple())
}
