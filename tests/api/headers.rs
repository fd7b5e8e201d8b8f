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
#[test]
fn json_logs_carry_the_request_id_and_no_secrets() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir.path())
        .env("TESSERA__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("TESSERA__LOG__FORMAT", "json")
        .env("TESSERA__LOG__FILTER", "info")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
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
    std::thread::sleep(std::time::Duration::from_millis(200));
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let mut logs = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let _ = server.wait();
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
