//! `GET /metrics`: Prometheus text with requests per route pattern and
//! status, latency histograms, logins by outcome, tokens by grant, and the
//! hashing queue, database pool and key gauges.

use crate::both_backends;
use crate::helpers::{PASSWORD, unique_email};

both_backends! {
    async fn metrics_count_what_happened(app: TestApp) {
        let email = unique_email();
        app.register(&email).await;
        assert_eq!(app.login(&email, "wrong password").await.status(), 401);
        let tokens = crate::helpers::Tokens::from_response(app.login(&email, PASSWORD).await).await;
        assert_eq!(app.refresh(&tokens.refresh).await.status(), 200);
        // Ids in paths are folded into the route pattern.
        let admin = app.admin_token(&unique_email()).await;
        for id in ["a", "b"] {
            let response = app.get_with_token(&format!("/v1/admin/users/{id}"), &admin).await;
            assert_eq!(response.status(), 404);
        }

        let response = app.get("/metrics").await;
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let text = response.text().await.unwrap();
        for line in [
            r#"tessera_http_requests_total{route="/v1/auth/login",method="POST",status="401"} 1"#,
            r#"tessera_http_requests_total{route="/v1/admin/users/{id}",method="GET",status="404"} 2"#,
            r#"tessera_logins_total{outcome="invalid_credentials"} 1"#,
            r#"tessera_logins_total{outcome="success"} 2"#,
            r#"tessera_tokens_issued_total{grant="login"} 2"#,
            r#"tessera_tokens_issued_total{grant="refresh_token"} 1"#,
            r#"tessera_signing_keys{state="active"} 1"#,
            "tessera_password_hash_queue_depth 0",
        ] {
            assert!(text.contains(line), "missing {line}\n{text}");
        }
        assert!(text.contains("tessera_http_request_duration_seconds_bucket{route=\"/v1/auth/login\",method=\"POST\",status=\"200\",le=\"+Inf\"} 2"), "{text}");
        assert!(text.contains("tessera_db_pool_connections "));
        // Nothing secret or personal.
        assert!(!text.contains(&email) && !text.contains(&tokens.refresh));
    }
}
