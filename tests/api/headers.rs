//! Headers on every response: no MIME sniffing, no Referer, no caching of
//! token or personal-data responses, HSTS when the issuer is https.

use crate::both_backends;
use crate::helpers::TestApp;

both_backends! {
    async fn every_response_carries_the_security_headers(app: TestApp) {
        for path in ["/healthz", "/.well-known/jwks.json", "/v1/me", "/oauth2/userinfo", "/no/such/route"] {
            let response = app.get(path).await;
            let headers = response.headers();
            assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
            assert!(headers.get("strict-transport-security").is_none(), "{path}: no HSTS over http");
        }
        // Token and personal-data endpoints are never cached; the JWKS is.
        let token = app.access_token(&crate::helpers::unique_email()).await;
        let me = app.get_with_token("/v1/me", &token).await;
        assert_eq!(me.headers()["cache-control"], "no-store");
        assert_eq!(app.get("/v1/me").await.headers()["cache-control"], "no-store");
        let jwks = app.get("/.well-known/jwks.json").await;
        assert!(jwks.headers()["cache-control"].to_str().unwrap().starts_with("public"));
    }

    async fn https_issuers_send_hsts(app: TestApp, settings = |s| s.issuer = "https://id.example".to_owned()) {
        let response = app.get("/healthz").await;
        assert_eq!(response.headers()["strict-transport-security"], "max-age=31536000");
    }
}

// A client that sends its request head slowly (slowloris) is cut off after
// `server.request_head_timeout_seconds`, not held forever.
both_backends! {
    async fn a_dribbled_request_head_is_cut_off(
        app: TestApp,
        settings = |s| s.server.request_head_timeout_seconds = 1
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = app.address.trim_start_matches("http://").to_owned();
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        // Never finish the head: the server answers 408 and closes.
        let mut answer = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_to_end(&mut answer),
        )
        .await;
        assert!(read.is_ok(), "the server closed the connection");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    }
}

async fn preflight(app: &TestApp, path: &str, origin: &str) -> reqwest::Response {
    app.client
        .request(reqwest::Method::OPTIONS, app.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap()
}

both_backends! {
    async fn no_cross_origin_access_by_default(app: TestApp) {
        let response = preflight(&app, "/oauth2/token", "https://app.example").await;
        assert!(response.headers().get("access-control-allow-origin").is_none());
        let response = app.client.get(app.url("/.well-known/jwks.json")).header("origin", "https://app.example").send().await.unwrap();
        assert!(response.headers().get("access-control-allow-origin").is_none());
    }

    async fn listed_origins_may_call_the_api(
        app: TestApp,
        settings = |s| s.cors.allowed_origins = vec!["https://app.example".into()]
    ) {
        let response = preflight(&app, "/oauth2/token", "https://app.example").await;
        assert_eq!(response.status(), 204);
        assert_eq!(response.headers()["access-control-allow-origin"], "https://app.example");
        assert!(response.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
        assert!(response.headers()["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
        // The actual request carries the header too, errors included.
        let response = app
            .client
            .post(app.url("/v1/auth/login"))
            .header("origin", "https://app.example")
            .json(&serde_json::json!({"email": "nobody@example.com", "password": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["access-control-allow-origin"], "https://app.example");
        // Other origins, and the sign-in pages, get nothing.
        let response = preflight(&app, "/oauth2/token", "https://evil.example").await;
        assert!(response.headers().get("access-control-allow-origin").is_none());
        let response = preflight(&app, "/oauth2/authorize", "https://app.example").await;
        assert!(response.headers().get("access-control-allow-origin").is_none());
    }
}

/// Whether `Vary` names `Origin` (caches keep one answer per origin).
fn varies_on_origin(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("origin"))
}

async fn get_from(app: &TestApp, path: &str, origin: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.unwrap()
}

both_backends! {
    async fn cors_paths_vary_on_origin_whoever_asks(
        app: TestApp,
        settings = |s| s.cors.allowed_origins = vec!["https://app.example".into()]
    ) {
        // Public, cacheable documents and an API error alike; with a listed
        // origin, an unlisted one, or none.
        let paths = ["/.well-known/jwks.json", "/.well-known/openid-configuration", "/v1/me", "/v1/no/such/route"];
        for path in paths {
            let listed = get_from(&app, path, Some("https://app.example")).await;
            assert!(varies_on_origin(&listed), "{path}: {:?}", listed.headers());
            assert_eq!(listed.headers()["access-control-allow-origin"], "https://app.example", "{path}");
            let exposed = listed.headers()["access-control-expose-headers"].to_str().unwrap().to_owned();
            assert!(exposed.contains("www-authenticate") && exposed.contains("retry-after"), "{path}: {exposed}");

            let unlisted = get_from(&app, path, Some("https://evil.example")).await;
            assert!(varies_on_origin(&unlisted), "{path}: {:?}", unlisted.headers());
            assert!(unlisted.headers().get("access-control-allow-origin").is_none(), "{path}");

            let none = get_from(&app, path, None).await;
            assert!(varies_on_origin(&none), "{path}: {:?}", none.headers());
            assert!(none.headers().get("access-control-allow-origin").is_none(), "{path}");
            // The same answer whoever asks, CORS headers aside.
            assert_eq!(listed.status(), none.status(), "{path}");
            assert_eq!(unlisted.status(), none.status(), "{path}");
        }
        let me = get_from(&app, "/v1/me", None).await;
        assert_eq!(me.status(), 401);
        assert!(me.headers().contains_key("www-authenticate"));
        // An unlisted origin's preflight is answered by the routes as any
        // OPTIONS is, still with Vary.
        let refused = preflight(&app, "/oauth2/token", "https://evil.example").await;
        assert_eq!(refused.status(), 405);
        assert!(refused.headers().get("access-control-allow-origin").is_none());
        assert!(varies_on_origin(&refused));
        // A listed origin's preflight: cached 10 minutes, no credentials.
        let answered = preflight(&app, "/v1/me", "https://app.example").await;
        assert_eq!(answered.status(), 204);
        assert_eq!(answered.headers()["access-control-max-age"], "600");
        assert!(answered.headers().get("access-control-allow-credentials").is_none());
        assert!(varies_on_origin(&answered));
        // The sign-in page is no CORS path: nothing, even for a listed origin.
        let page = get_from(&app, "/oauth2/authorize", Some("https://app.example")).await;
        assert!(page.headers().get("access-control-allow-origin").is_none());
        assert!(page.headers().get("access-control-expose-headers").is_none());
        assert!(!varies_on_origin(&page));
    }

    async fn without_listed_origins_cors_paths_still_vary_on_origin(app: TestApp) {
        for path in ["/.well-known/jwks.json", "/.well-known/openid-configuration", "/v1/me"] {
            for origin in [Some("https://app.example"), None] {
                let response = get_from(&app, path, origin).await;
                assert!(varies_on_origin(&response), "{path} {origin:?}: {:?}", response.headers());
                assert!(response.headers().get("access-control-allow-origin").is_none(), "{path}");
            }
        }
    }
}

both_backends! {
    async fn every_response_has_a_request_id(app: TestApp) {
        let response = app.get("/healthz").await;
        let generated = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(generated.len(), 36, "a UUID: {generated}");
        let send = |id: &'static str| app.client.get(app.url("/healthz")).header("x-request-id", id).send();
        // A proxy's plain id is kept; anything else is replaced.
        let kept = send("edge-4711").await.unwrap();
        assert_eq!(kept.headers()["x-request-id"], "edge-4711");
        let replaced = send("<script>").await.unwrap();
        assert_ne!(replaced.headers()["x-request-id"], "<script>");
    }
}

/// `log.format = "json"`: one JSON object per line, the request line with
/// route, status, latency and request id — and never a password.
/// The binary, serving on `port` from `dir` (its default SQLite database
/// and keys there) and logging JSON at INFO to a piped stderr.
fn json_logging_server(dir: &std::path::Path, port: u16) -> std::process::Command {
    use std::process::{Command, Stdio};
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command
        .current_dir(dir)
        .env("TESSERA__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("TESSERA__LOG__FORMAT", "json")
        .env("TESSERA__LOG__FILTER", "info")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

#[test]
fn json_logs_carry_the_request_id_and_no_secrets() {
    use std::io::{Read, Write};
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let port = crate::helpers::free_port();
    let mut server = json_logging_server(dir.path(), port).spawn().unwrap();
    // Its log, read as it is written.
    let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let (mut stderr, logs) = (server.stderr.take().unwrap(), logs.clone());
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut chunk) {
                logs.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        })
    };
    let secret = "correct horse battery staple 42";
    let body = format!(r#"{{"email":"log@example.com","password":"{secret}"}}"#);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let answer = loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let request = format!(
                "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Request-Id: test-req-1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes()).unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            break answer;
        }
        assert!(std::time::Instant::now() < deadline, "the server starts");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    crate::helpers::wait_until_blocking(
        "the request's log line",
        std::time::Duration::from_secs(10),
        || logs.lock().unwrap().contains("test-req-1"),
    );
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    reader.join().unwrap();
    let logs = logs.lock().unwrap().clone();
    assert!(!logs.contains(secret), "{logs}");
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access = lines
        .iter()
        .find(|l| l["request_id"] == "test-req-1")
        .unwrap_or_else(|| panic!("no request line in {logs}"));
    assert_eq!(access["route"], "/v1/auth/login");
    assert_eq!(access["status"], 401);
    assert!(access["micros"].is_u64());
}

// Request heads over `server.max_request_head_bytes` (default 16 KiB) get
// 431, on every request of a connection.

/// A GET head of exactly `size` bytes (a filler header makes up the rest).
fn head_of_size(target: &str, size: usize) -> Vec<u8> {
    let base = format!("GET {target} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n");
    let filler = size - base.len() - "x-filler: \r\n\r\n".len();
    format!("{base}x-filler: {}\r\n\r\n", "a".repeat(filler)).into_bytes()
}

/// Sends `bytes` on a new connection and reads until the server closes it:
/// the status of every response, and the whole answer.
async fn raw_exchange(app: &TestApp, bytes: &[u8]) -> (Vec<u16>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the server closes the connection")
    .expect("an answer, not a reset");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let statuses = text
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok())
        .collect();
    (statuses, text)
}

both_backends! {
    async fn a_head_at_the_limit_is_served_and_one_byte_more_is_refused(app: TestApp) {
        let limit = app.settings.server.max_request_head_bytes;
        assert_eq!(limit, 16 * 1024, "the default");
        let (statuses, text) = raw_exchange(&app, &head_of_size("/healthz", limit)).await;
        assert_eq!(statuses, [200], "{text}");
        let (statuses, text) = raw_exchange(&app, &head_of_size("/healthz", limit + 1)).await;
        assert_eq!(statuses, [431], "{text}");
        assert!(text.contains("application/problem+json"), "{text}");
        assert!(text.contains("\"request_head_too_large\""), "{text}");
    }

    async fn one_large_header_gets_431(app: TestApp) {
        let response = app
            .client
            .get(app.url("/healthz"))
            .header("x-large", "b".repeat(20 * 1024))
            .send()
            .await
            .unwrap();
        crate::helpers::assert_problem(response, 431, "request_head_too_large").await;
        // A long target counts as much as a header.
        let target = format!("/healthz?q={}", "c".repeat(20 * 1024));
        let response = app.client.get(app.url(&target)).send().await.unwrap();
        crate::helpers::assert_problem(response, 431, "request_head_too_large").await;
        // The server is unharmed.
        assert_eq!(app.get("/healthz").await.status(), 200);
    }

    async fn many_small_headers_adding_up_get_431(app: TestApp) {
        // 80 headers of 250 bytes: none large, together 20 KiB (and fewer
        // than the 96 headers actix-http allows).
        let mut request = app.client.get(app.url("/healthz"));
        for i in 0..80 {
            request = request.header(format!("x-part-{i}"), "d".repeat(240));
        }
        let response = request.send().await.unwrap();
        crate::helpers::assert_problem(response, 431, "request_head_too_large").await;
    }

    async fn a_small_first_request_does_not_let_a_large_head_through(app: TestApp) {
        // Keep-alive and pipelining: a POST with a Content-Length body, one
        // with a chunked body, a small GET, then a large head — each head is
        // measured, whatever came before it on the connection.
        let form = "grant_type=password";
        let mut bytes = format!(
            "POST /oauth2/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{form}",
            form.len()
        )
        .into_bytes();
        bytes.extend_from_slice(
            b"POST /oauth2/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ntransfer-encoding: chunked\r\n\r\n5\r\ngrant\r\n0\r\n\r\n",
        );
        // The body of a chunked request may hold what looks like a head end.
        bytes.extend_from_slice(
            b"POST /oauth2/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 8\r\n\r\na=\r\n\r\nb=",
        );
        bytes.extend_from_slice(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
        bytes.extend_from_slice(&head_of_size("/healthz", 20 * 1024));
        let (statuses, text) = raw_exchange(&app, &bytes).await;
        assert_eq!(statuses.len(), 5, "{text}");
        assert!(statuses[..3].iter().all(|&s| s == 400 || s == 401), "{text}");
        assert_eq!(statuses[3..], [200, 431], "{text}");
    }

    async fn a_head_split_across_writes_is_served(app: TestApp) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = app.address.trim_start_matches("http://").to_owned();
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        for piece in [&b"GET /healthz HTTP/1.1\r\nhost: x\r"[..], b"\nconnection: close\r\n\r", b"\n"] {
            stream.write_all(piece).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    }

    async fn a_smaller_limit_from_the_settings_is_honoured(
        app: TestApp,
        settings = |s| s.server.max_request_head_bytes = 2048
    ) {
        let (statuses, text) = raw_exchange(&app, &head_of_size("/healthz", 2048)).await;
        assert_eq!(statuses, [200], "{text}");
        let (statuses, text) = raw_exchange(&app, &head_of_size("/healthz", 3 * 1024)).await;
        assert_eq!(statuses, [431], "{text}");
        assert!(text.contains("2048 bytes"), "{text}");
    }

    async fn heads_over_tls_are_bounded_on_http1_and_http2(app: TestApp, settings = with_tls) {
        let trusted = reqwest::Certificate::from_pem(
            &std::fs::read(app.settings.server.tls.cert.as_ref().unwrap()).unwrap(),
        )
        .unwrap();
        let https = app.address.replace("http://", "https://");
        for http2 in [true, false] {
            let mut builder = reqwest::Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(trusted.clone());
            builder = if http2 { builder.http2_prior_knowledge() } else { builder.http1_only() };
            let client = builder.build().unwrap();
            let url = format!("{https}/healthz");
            let small = client.get(&url).header("x-small", "e".repeat(8 * 1024)).send().await.unwrap();
            assert_eq!(small.status(), 200, "http2: {http2}");
            // Random-looking values, so HPACK cannot shrink them much: at
            // 18 KiB the block (about 14 KiB) arrives and its decoded size gets 431; at
            // 64 KiB HTTP/2 is cut off while the block arrives.
            let random = |n: usize| -> String {
                use rand::Rng;
                rand::thread_rng().sample_iter(&rand::distributions::Alphanumeric).take(n).map(char::from).collect()
            };
            let large = client.get(&url).header("x-large", random(18 * 1024)).send().await.unwrap();
            crate::helpers::assert_problem(large, 431, "request_head_too_large").await;
            match client.get(&url).header("x-large", random(64 * 1024)).send().await {
                Err(e) => assert!(http2, "HTTP/1.1 gets an answer: {e}"),
                Ok(response) => {
                    crate::helpers::assert_problem(response, 431, "request_head_too_large").await;
                }
            }
        }
    }
}

fn with_tls(s: &mut tessera::configuration::Settings) {
    // The key folder's parent is the test's own temporary folder.
    let dir = s.keys.dir.parent().unwrap().to_owned();
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (dir.join("tls-cert.pem"), dir.join("tls-key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    s.server.tls.cert = Some(cert);
    s.server.tls.key = Some(key);
}

/// `tessera serve` as a child process logging JSON lines, on either backend.
struct LoggingServer {
    child: std::process::Child,
    address: String,
    _dir: tempfile::TempDir,
    _database: Option<crate::helpers::TestDatabase>,
}

impl LoggingServer {
    /// None when the PostgreSQL half is skipped.
    async fn start(
        backend: crate::helpers::Backend,
        settings: &[(&str, &str)],
    ) -> Option<LoggingServer> {
        let database = match backend {
            crate::helpers::Backend::Sqlite => None,
            crate::helpers::Backend::Postgres => Some(crate::helpers::TestDatabase::create()?),
        };
        let dir = tempfile::tempdir().unwrap();
        let port = crate::helpers::free_port();
        let mut command = json_logging_server(dir.path(), port);
        if let Some(database) = &database {
            command.env("TESSERA__DATABASE__URL", &database.url);
        }
        for (name, value) in settings {
            command.env(name, value);
        }
        let server = LoggingServer {
            child: command.spawn().unwrap(),
            address: format!("http://127.0.0.1:{port}"),
            _dir: dir,
            _database: database,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while reqwest::get(format!("{}/healthz", server.address))
            .await
            .is_err()
        {
            assert!(std::time::Instant::now() < deadline, "the server starts");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Some(server)
    }

    /// Stops the server; every line it logged, parsed. Lines are written
    /// before the answer they belong to is sent, so none is lost.
    fn logs(mut self) -> Vec<serde_json::Value> {
        use std::io::Read;
        self.child.kill().unwrap();
        let mut logs = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut logs)
            .unwrap();
        self.child.wait().unwrap();
        logs.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

/// The request id of the span a JSON log line was written in, if any.
fn request_id_of(line: &serde_json::Value) -> Option<&str> {
    line["spans"]
        .as_array()?
        .iter()
        .find_map(|span| span["request_id"].as_str())
}

crate::both_backends! {
/// A warning logged deep in the domain code, on the database's blocking
/// thread (refresh-token reuse, answered 400), carries the id the client
/// sent, as does the request line; a line of another request carries its own.
async fn every_log_line_of_a_request_carries_its_id(backend: Backend) {
    use serde_json::json;
    let settings = [
        ("TESSERA__SESSIONS__REFRESH_REUSE_GRACE_SECONDS", "0"),
        ("TESSERA__SESSIONS__REFRESH_RETRY_WINDOW_SECONDS", "0"),
    ];
    let Some(server) = LoggingServer::start(backend, &settings).await else {
        return;
    };
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", server.address);
    let credentials =
        json!({"email": crate::helpers::unique_email(), "password": crate::helpers::PASSWORD});
    let registered = client
        .post(url("/v1/auth/register"))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let login: serde_json::Value = client
        .post(url("/v1/auth/login"))
        .json(&credentials)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refresh = |token: String, request_id: &'static str| {
        client
            .post(url("/oauth2/token"))
            .header("x-request-id", request_id)
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", "tessera"),
                ("refresh_token", &token),
            ])
            .send()
    };
    let spent = login["refresh_token"].as_str().unwrap().to_owned();
    let rotated = refresh(spent.clone(), "rotate-1").await.unwrap();
    assert_eq!(rotated.status(), 200);
    let rotated: serde_json::Value = rotated.json().await.unwrap();
    let successor = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(refresh(successor, "rotate-2").await.unwrap().status(), 200);
    // The first token again, after its successor was used: theft.
    let reused = refresh(spent, "reuse-4711").await.unwrap();
    assert_eq!(reused.status(), 400);
    assert_eq!(reused.headers()["x-request-id"], "reuse-4711");

    let lines = server.logs();
    let warning = lines
        .iter()
        .find(|l| l["message"] == "refresh token reuse: session revoked")
        .unwrap_or_else(|| panic!("no reuse warning in {lines:#?}"));
    assert_eq!(warning["level"], "WARN");
    assert_eq!(request_id_of(warning), Some("reuse-4711"), "{warning}");
    let request_line = |id: &str| {
        lines
            .iter()
            .find(|l| l["target"] == "tessera::access" && l["request_id"] == id)
            .unwrap_or_else(|| panic!("no request line for {id} in {lines:#?}"))
    };
    assert_eq!(
        request_id_of(request_line("reuse-4711")),
        Some("reuse-4711")
    );
    assert_eq!(request_line("reuse-4711")["status"], 400);
    assert_eq!(request_id_of(request_line("rotate-1")), Some("rotate-1"));
    // Lines outside any request (start-up) carry none.
    let started = lines
        .iter()
        .find(|l| l["message"] == "tessera started")
        .unwrap();
    assert_eq!(request_id_of(started), None);
}
}
