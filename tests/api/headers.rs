//! Headers on every response: no MIME sniffing, no Referer, no caching of
//! token or personal-data responses, HSTS when the issuer is https.

use crate::both_backends;

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
