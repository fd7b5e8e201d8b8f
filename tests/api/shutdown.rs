//! A drained shutdown, as rolling deploys need: on SIGTERM/SIGINT `/readyz`
//! answers 503 at once while the server goes on accepting and serving for
//! `server.shutdown_drain_seconds`; then it stops accepting, finishes what it
//! accepted and exits 0. Nothing sent before the drain ends is refused or
//! reset. The library half starts the same sequence without a signal; the
//! binary half sends real signals to `tessera serve`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera::configuration::Settings;
use tessera::startup::{Application, Shutdown};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_backends;
use crate::helpers::{
    Backend, FIXTURE_KEY_NAME, PASSWORD, TestDatabase, install_key, unique_email, wait_until,
};

/// The application with a handle on its shutdown and on its end.
struct Running {
    address: String,
    port: u16,
    shutdown: Shutdown,
    server: actix_web::dev::ServerHandle,
    stopped: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
    _database: Option<TestDatabase>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed test must not leave it serving; the database goes after.
        drop(self.server.stop(false));
    }
}

impl Running {
    /// None when the PostgreSQL half is skipped.
    async fn start(backend: Backend, drain_seconds: u64) -> Option<Running> {
        let dir = tempfile::tempdir().unwrap();
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDatabase::create()?),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let address = format!("http://127.0.0.1:{port}");
        let mut settings = Settings::load(None).unwrap();
        settings.issuer = address.clone();
        settings.server.bind = format!("127.0.0.1:{port}");
        settings.server.workers = 2;
        settings.server.shutdown_drain_seconds = drain_seconds;
        // Long, so that only the requests' end can explain a prompt stop.
        settings.server.shutdown_timeout_seconds = 30;
        settings.database.url = match &database {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}", dir.path().join("tessera.db").display()),
        };
        settings.database.pool_size = 4;
        settings.keys.dir = dir.path().join("keys");
        std::fs::create_dir_all(&settings.keys.dir).unwrap();
        install_key(&settings.keys.dir, "signing-key.pem", FIXTURE_KEY_NAME);
        settings.throttle.enabled = false;
        let app = tokio::task::spawn_blocking(move || {
            Application::build_with_listener(settings, listener)
        })
        .await
        .unwrap()
        .expect("the application starts");
        let shutdown = app.shutdown();
        let server = app.handle();
        let stopped = tokio::spawn(app.run_until_stopped());
        Some(Running {
            address,
            port,
            shutdown,
            server,
            stopped,
            _dir: dir,
            _database: database,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Waits until nothing listens on the port any more; returns when.
    async fn refused_by(&self, deadline: Instant) -> Instant {
        loop {
            match tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Instant::now();
                }
                _ => {
                    assert!(Instant::now() < deadline, "the server stops listening");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// The server's run future ended, cleanly, within `within`.
    async fn assert_stopped(&mut self, within: Duration) {
        let result = tokio::time::timeout(within, &mut self.stopped)
            .await
            .expect("the server stops")
            .expect("the server task");
        assert!(result.is_ok(), "{result:?}");
    }
}

/// A client that opens a new connection for every request.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// A login whose body is only half sent: the request is accepted and read,
/// and its handler waits for the rest.
async fn half_sent_login(port: u16, email: &str) -> (tokio::net::TcpStream, Vec<u8>) {
    let body = json!({"email": email, "password": PASSWORD}).to_string();
    let head = format!(
        "POST /v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    (stream, rest.to_vec())
}

/// Sends the rest of the body; returns the whole answer (the server closes
/// the connection after it).
async fn finish(mut stream: tokio::net::TcpStream, rest: &[u8]) -> String {
    stream.write_all(rest).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("an answer, then the connection closes")
        .expect("no reset");
    String::from_utf8_lossy(&answer).into_owned()
}

both_backends! {
    async fn drains_then_stops_and_finishes_what_it_accepted(backend: Backend) {
        let drain = Duration::from_secs(2);
        let Some(mut app) = Running::start(backend, drain.as_secs()).await else {
            return;
        };
        let kept = reqwest::Client::new();
        let email = unique_email();
        let registered = kept
            .post(app.url("/v1/auth/register"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(registered.status(), 201);
        let login = json!({"email": email, "password": PASSWORD});
        let tokens: Value = kept
            .post(app.url("/v1/auth/login"))
            .json(&login)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let access = tokens["access_token"].as_str().unwrap().to_owned();
        assert_eq!(
            kept.get(app.url("/readyz")).send().await.unwrap().status(),
            200
        );

        let began = Instant::now();
        app.shutdown.begin();
        // At once, on the connection kept alive from before: not ready, and the
        // connection is to be closed.
        let readyz = kept.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(readyz.status(), 503);
        assert_eq!(readyz.headers()["connection"], "close");
        let body: Value = readyz.json().await.unwrap();
        assert_eq!(
            body,
            json!({"status": "unavailable", "shutting_down": true})
        );

        // Still serving, the database included, on new connections too.
        let fresh = fresh_client();
        let health = fresh.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        assert_eq!(health.headers()["connection"], "close");
        let logged_in = fresh
            .post(app.url("/v1/auth/login"))
            .json(&login)
            .send()
            .await;
        assert_eq!(logged_in.unwrap().status(), 200);
        let me = fresh
            .get(app.url("/v1/me"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
        let me: Value = me.json().await.unwrap();
        assert_eq!(me["email"], email.as_str());

        // Accepting until late in the drain, not just at its start.
        let mut answered = 0;
        while began.elapsed() < drain - Duration::from_millis(400) {
            for (path, status) in [("/healthz", 200), ("/readyz", 503)] {
                let response = fresh.get(app.url(path)).send().await;
                let response = response.unwrap_or_else(|e| panic!("{path} during the drain: {e}"));
                assert_eq!(response.status(), status, "{path}");
                answered += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(answered >= 10, "{answered} requests during the drain");

        // A request accepted during the drain and still being read when it ends.
        let (slow, rest) = half_sent_login(app.port, &email).await;
        let refused = app.refused_by(began + drain + Duration::from_secs(5)).await;
        assert!(
            refused - began >= drain,
            "stopped accepting after {:?}, before the drain ended",
            refused - began
        );
        let answer = finish(slow, &rest).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );

        // Idle kept-alive connections do not hold it until the shutdown timeout.
        app.assert_stopped(Duration::from_secs(10)).await;
        let late = fresh.get(app.url("/healthz")).send().await;
        assert!(
            late.is_err_and(|e| e.is_connect()),
            "nothing listens any more"
        );
    }
}

both_backends! {
    async fn a_second_request_stops_at_once(backend: Backend) {
        let Some(mut app) = Running::start(backend, 300).await else {
            return;
        };
        let client = fresh_client();
        app.shutdown.begin();
        let readyz = client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(readyz.status(), 503);
        assert_eq!(
            client
                .get(app.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        app.shutdown.begin();
        app.assert_stopped(Duration::from_secs(5)).await;
        app.refused_by(Instant::now() + Duration::from_secs(2))
            .await;
    }
}

both_backends! {
    async fn without_a_drain_it_stops_accepting_at_once(backend: Backend) {
        let Some(mut app) = Running::start(backend, 0).await else {
            return;
        };
        let email = unique_email();
        let registered = fresh_client()
            .post(app.url("/v1/auth/register"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(registered.status(), 201);
        let (slow, rest) = half_sent_login(app.port, &email).await;
        // Once the worker has started on it (read what came so far), it is
        // accepted.
        let client_port = slow.local_addr().unwrap().port();
        wait_until("the server to read the half-sent login", Duration::from_secs(5), async || {
            server_sockets(app.port).contains(&(client_port, 0))
        })
        .await;
        let began = Instant::now();
        app.shutdown.begin();
        app.refused_by(began + Duration::from_secs(2)).await;
        let answer = finish(slow, &rest).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        app.assert_stopped(Duration::from_secs(10)).await;
    }
}

/// `tessera serve` on SQLite in `dir`, its log in `dir/log`.
struct Serve {
    child: std::process::Child,
    port: u16,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    async fn start(dir: &Path, drain_seconds: u64) -> Serve {
        let keys = dir.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        install_key(&keys, "signing-key.pem", FIXTURE_KEY_NAME);
        let port = crate::helpers::free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        for (key, _) in std::env::vars() {
            if key.starts_with("TESSERA__") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        let child = command
            .arg("serve")
            .env("TESSERA__KEYS__DIR", &keys)
            .env(
                "TESSERA__DATABASE__URL",
                format!("sqlite://{}", dir.join("t.db").display()),
            )
            .env("TESSERA__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("TESSERA__SERVER__WORKERS", "2")
            .env(
                "TESSERA__SERVER__SHUTDOWN_DRAIN_SECONDS",
                drain_seconds.to_string(),
            )
            .env("TESSERA__ISSUER", format!("http://127.0.0.1:{port}"))
            .env("TESSERA__LOG__FILTER", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .unwrap();
        let serve = Serve { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = fresh_client().get(serve.url("/readyz")).send().await
                && r.status() == 200
            {
                return serve;
            }
            assert!(Instant::now() < deadline, "tessera serve starts");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// Waits for the process to exit; its status.
    async fn exited_by(&mut self, deadline: Instant) -> std::process::ExitStatus {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "tessera serve exits");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The server side of the TCP connections to `port` on 127.0.0.1, as the
/// kernel lists them (Linux): each client's port and the bytes the server
/// has not read yet. Connections the server has not accepted are listed too.
fn server_sockets(port: u16) -> Vec<(u16, u64)> {
    const ESTABLISHED: &str = "01";
    let table = std::fs::read_to_string("/proc/net/tcp").expect("the kernel's TCP table");
    let hex_port = |address: &str| {
        let (_, port) = address.split_once(':')?;
        u16::from_str_radix(port, 16).ok()
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            // sl local_address rem_address st tx_queue:rx_queue ...
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state, queues) = (fields[1], fields[2], fields[3], fields[4]);
            if state != ESTABLISHED || hex_port(local)? != port {
                return None;
            }
            let (_, unread) = queues.split_once(':')?;
            Some((hex_port(remote)?, u64::from_str_radix(unread, 16).ok()?))
        })
        .collect()
}

/// One request of the burst: when it was sent and what came back.
struct Sent {
    at: Instant,
    path: &'static str,
    outcome: Result<u16, String>,
}

fn send(
    client: &reqwest::Client,
    url: String,
    path: &'static str,
) -> tokio::task::JoinHandle<Sent> {
    let request = client.get(url).timeout(Duration::from_secs(30)).send();
    let at = Instant::now();
    tokio::spawn(async move {
        let outcome = request.await.map(|r| r.status().as_u16());
        Sent {
            at,
            path,
            outcome: outcome.map_err(|e| format!("{e:?}")),
        }
    })
}

/// The case: requests piled up while the process could not run (as
/// CPU throttling does), SIGTERM meanwhile, more requests during the drain.
/// Every one gets an HTTP answer, the process exits 0 after the drain, and
/// then nothing listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_loses_no_request_sent_before_the_drain_ends() {
    let dir = tempfile::tempdir().unwrap();
    let drain = Duration::from_secs(3);
    let mut serve = Serve::start(dir.path(), drain.as_secs()).await;
    let kept = reqwest::Client::new();
    let fresh = fresh_client();
    for _ in 0..4 {
        assert_eq!(
            kept.get(serve.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let paths = ["/healthz", "/readyz"];
    let mut burst = Vec::new();

    serve.signal("STOP");
    for i in 0..100 {
        let client = if i % 2 == 0 { &kept } else { &fresh };
        let path = paths[i / 2 % 2];
        burst.push(send(client, serve.url(path), path));
    }
    // Every request of the burst waits, sent, in the stopped server's queue.
    // (Generous: with the whole suite on two cores, opening a hundred
    // connections can take seconds.)
    wait_until(
        "the burst to reach the stopped server",
        Duration::from_secs(30),
        async || {
            server_sockets(serve.port)
                .iter()
                .filter(|(_, unread)| *unread > 0)
                .count()
                >= 100
        },
    )
    .await;
    serve.signal("TERM");
    let signalled = Instant::now();
    serve.signal("CONT");

    // Half the drain on, sending every 15 ms from both clients.
    let mut i = 0;
    while signalled.elapsed() < drain / 2 {
        let client = if i % 2 == 0 { &kept } else { &fresh };
        let path = paths[i / 2 % 2];
        burst.push(send(client, serve.url(path), path));
        i += 1;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert!(burst.len() >= 150, "{} requests", burst.len());

    let mut not_ready = 0;
    for sent in burst {
        let sent = sent.await.unwrap();
        let status = sent.outcome.unwrap_or_else(|e| {
            panic!(
                "{} sent {:?} after SIGTERM: no answer: {e}",
                sent.path,
                sent.at.checked_duration_since(signalled)
            )
        });
        match sent.path {
            "/healthz" => assert_eq!(status, 200),
            _ if sent.at > signalled + Duration::from_millis(500) => {
                assert_eq!(status, 503, "/readyz well after SIGTERM");
                not_ready += 1;
            }
            _ => assert!(status == 200 || status == 503, "{status}"),
        }
    }
    assert!(not_ready > 10, "{not_ready}");

    let status = serve
        .exited_by(signalled + drain + Duration::from_secs(15))
        .await;
    let exited = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        exited >= drain,
        "exited {exited:?} after SIGTERM, before the drain ended"
    );
    let late = fresh.get(serve.url("/healthz")).send().await;
    assert!(
        late.is_err_and(|e| e.is_connect()),
        "nothing listens any more"
    );
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    for line in ["SIGTERM", "shutting down", "drain over", "server stopped"] {
        assert!(log.contains(line), "{line:?} logged:\n{log}");
    }
}

/// SIGINT drains as SIGTERM does; a second signal ends the drain at once,
/// still exiting 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Serve::start(dir.path(), 300).await;
    let fresh = fresh_client();
    serve.signal("INT");
    let signalled = Instant::now();
    let deadline = signalled + Duration::from_secs(5);
    while fresh
        .get(serve.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != 503
    {
        assert!(Instant::now() < deadline, "SIGINT begins the drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        fresh
            .get(serve.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    serve.signal("TERM");
    let status = serve
        .exited_by(Instant::now() + Duration::from_secs(5))
        .await;
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(log.contains("stopping at once"), "{log}");
}

/// A drain too long to be meant, or not a number, stops the start with one
/// line naming the setting.
#[test]
fn a_bad_drain_setting_stops_the_start() {
    for value in ["301", "-1", "five"] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        for (key, _) in std::env::vars() {
            if key.starts_with("TESSERA__") {
                command.env_remove(key);
            }
        }
        let output = command
            .arg("serve")
            .env("TESSERA__SERVER__SHUTDOWN_DRAIN_SECONDS", value)
            // Nothing may be created or bound if the check fails first.
            .env("TESSERA__DATABASE__URL", "sqlite:///nonexistent/never/t.db")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("shutdown_drain_seconds"),
            "{value}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}
