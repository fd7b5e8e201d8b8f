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
