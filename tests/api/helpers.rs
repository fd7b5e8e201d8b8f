use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tessera::keys::{Clock, KeyRing, system_clock};

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

/// A port nothing listens on now, for a server the test starts as a
/// separate process.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PostgreSQL database made for one test and dropped after it.
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
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .expect("create the test database");
        let mut url = url::Url::parse(&admin_url).expect("a PostgreSQL URL");
        url.set_path(&name);
        Some(TestDatabase {
            admin_url,
            name,
            url: url.to_string(),
        })
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
        Self::spawn_clocked(backend, tweak, system_clock()).await
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
            accounts::register_blocking(&db, &hasher, account).unwrap();
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
