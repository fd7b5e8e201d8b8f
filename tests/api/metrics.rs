//! `GET /metrics`: OpenMetrics text with requests per route pattern and
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
        assert_eq!(
            response.headers()["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
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
        // OpenMetrics: `le` comes first among a bucket's labels.
        assert!(text.contains("tessera_http_request_duration_seconds_bucket{le=\"+Inf\",route=\"/v1/auth/login\",method=\"POST\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("tessera_db_pool_connections "));
        assert!(text.ends_with("# EOF\n"), "{text}");
        // Nothing secret or personal.
        assert!(!text.contains(&email) && !text.contains(&tokens.refresh));
    }
}

/// The series of a scrape: each sample's name and labels, without values.
fn series(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            l.rsplit_once(' ')
                .map_or(l, |(series, _)| series)
                .to_owned()
        })
        .collect()
}

/// A method name of 8 random capital letters.
fn made_up_method() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..8).map(|_| rng.gen_range(b'A'..=b'Z') as char).collect()
}

both_backends! {
    // Any token is a valid HTTP method, and each was a new `method` label
    // value: a client could grow /metrics without bound.
    async fn made_up_methods_and_paths_add_no_series(app: TestApp) {
        let scrape = || async { app.get("/metrics").await.text().await.unwrap() };
        // Twice: the first scrape's own request is a series of the second.
        scrape().await;
        let before = scrape().await;
        let mut methods = Vec::new();
        for _ in 0..50 {
            let method = made_up_method();
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let response = app.client.request(m.clone(), app.url("/healthz")).send().await.unwrap();
            assert_eq!(response.status(), 405, "{method}");
            let path = format!("/made-up/{}?{}={}", made_up_method(), made_up_method(), made_up_method());
            let response = app.client.request(m, app.url(&path)).send().await.unwrap();
            assert_eq!(response.status(), 404, "{method} {path}");
            methods.push(method);
        }
        let after = scrape().await;
        for method in &methods {
            assert!(!after.contains(method.as_str()), "{method} became a label value");
        }
        assert!(!after.contains("made-up"), "a path became a label value");
        let (before, after) = (series(&before), series(&after));
        assert!(before.is_subset(&after));
        let new: Vec<&String> = after.difference(&before).collect();
        // The one `other` series per route and status, and nothing else:
        // the counter, the histogram's 12 buckets, its sum and its count.
        for (route, status) in [("/healthz", 405), ("unmatched", 404)] {
            let labels = format!(r#"route="{route}",method="other",status="{status}""#);
            let of_it = new.iter().filter(|s| s.contains(&labels)).count();
            assert_eq!(of_it, 15, "{labels}: {new:#?}");
        }
        assert_eq!(new.len(), 30, "{new:#?}");
        let text = scrape().await;
        assert!(text.contains(r#"tessera_http_requests_total{route="/healthz",method="other",status="405"} 50"#), "{text}");
        assert!(text.contains(r#"tessera_http_requests_total{route="unmatched",method="other",status="404"} 50"#), "{text}");
    }
}
