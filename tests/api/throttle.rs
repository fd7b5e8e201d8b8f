//! Throttling: limits per client (429 + Retry-After), a client being an IPv4
//! address or an IPv6 /64, its address taken from a trusted proxy's header
//! only; and the per-account lockout after failed logins — shared by every
//! instance through the database, and the same for unknown addresses as for
//! real ones.

use serde_json::{Value, json};
use tessera_test_support::hidden_field;

use crate::both_backends;
use crate::helpers::{PASSWORD, TestApp, assert_oauth_error, assert_problem, unique_email};

fn limits(s: &mut tessera::configuration::Settings) {
    s.throttle.enabled = true;
    s.throttle.credentials_burst = 3;
    s.throttle.credentials_per_minute = 1;
    s.throttle.token_burst = 2;
    s.throttle.token_per_minute = 1;
    s.throttle.lockout_threshold = 0;
}

fn lockout(s: &mut tessera::configuration::Settings) {
    s.throttle.enabled = true;
    s.throttle.credentials_burst = 1000;
    s.throttle.credentials_per_minute = 1000;
    s.throttle.lockout_threshold = 3;
    s.throttle.lockout_base_seconds = 60;
    s.throttle.lockout_max_seconds = 600;
}

/// A lock short enough to wait out: the lockout reads the system clock.
fn short_lockout(s: &mut tessera::configuration::Settings) {
    s.throttle.enabled = true;
    s.throttle.credentials_burst = 1000;
    s.throttle.credentials_per_minute = 1000;
    s.throttle.lockout_threshold = 5;
    s.throttle.lockout_base_seconds = 3;
    s.throttle.lockout_max_seconds = 3;
}

async fn change_password(
    app: &TestApp,
    token: &str,
    current: &str,
    new: &str,
) -> reqwest::Response {
    app.client
        .put(app.url("/v1/me/password"))
        .bearer_auth(token)
        .json(&json!({"current_password": current, "new_password": new}))
        .send()
        .await
        .unwrap()
}

const NEW_PASSWORD: &str = "a brand new passphrase";

fn behind_a_proxy(s: &mut tessera::configuration::Settings) {
    limits(s);
    s.throttle.trusted_proxies = vec!["127.0.0.1".into()];
}

async fn login_as(
    app: &TestApp,
    email: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": email, "password": password}));
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    request.send().await.unwrap()
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

both_backends! {
    async fn logins_over_the_per_ip_limit_get_429(app: TestApp, settings = limits) {
        let email = unique_email();
        for _ in 0..3 {
            assert_eq!(login_as(&app, &email, PASSWORD, None).await.status(), 401);
        }
        let response = login_as(&app, &email, PASSWORD, None).await;
        assert!(retry_after(&response) >= 1);
        assert_problem(response, 429, "too_many_requests").await;
        // Registration shares the bucket; a forged X-Forwarded-For from a
        // client that is no trusted proxy changes nothing.
        let response = app.post_json("/v1/auth/register", &json!({"email": unique_email(), "password": PASSWORD})).await;
        assert_eq!(response.status(), 429);
        assert_eq!(login_as(&app, &email, PASSWORD, Some("198.51.100.7")).await.status(), 429);
        // Other endpoints are not in this bucket.
        assert_eq!(app.get("/.well-known/jwks.json").await.status(), 200);
    }

    async fn the_token_endpoint_has_its_own_bucket(app: TestApp, settings = limits) {
        for _ in 0..2 {
            let response = app.post_form("/oauth2/token", &[("grant_type", "client_credentials")]).await;
            assert_eq!(response.status(), 401);
        }
        let response = app.post_form("/oauth2/token", &[("grant_type", "client_credentials")]).await;
        assert!(retry_after(&response) >= 1);
        assert_oauth_error(response, 429, "too_many_requests").await;
        let response = app.post_form("/oauth2/introspect", &[("token", "x")]).await;
        assert_eq!(response.status(), 429);
    }

    async fn behind_a_trusted_proxy_each_client_has_its_own_limit(app: TestApp, settings = behind_a_proxy) {
        let email = unique_email();
        for _ in 0..3 {
            assert_eq!(login_as(&app, &email, PASSWORD, Some("203.0.113.1")).await.status(), 401);
        }
        assert_eq!(login_as(&app, &email, PASSWORD, Some("203.0.113.1")).await.status(), 429);
        // Another client behind the same proxy is not held back by the first,
        // and a client can't pick its address by prepending one.
        assert_eq!(login_as(&app, &email, PASSWORD, Some("203.0.113.2")).await.status(), 401);
        let spoofed = login_as(&app, &email, PASSWORD, Some("192.0.2.99, 203.0.113.1")).await;
        assert_eq!(spoofed.status(), 429);
    }

    // Behind the proxy the client picks its forwarded address; an IPv6
    // host has a whole /64 to pick from, so the /64 is the client.
    async fn many_ipv6_addresses_of_one_64_share_one_limit(app: TestApp, settings = behind_a_proxy) {
        let email = unique_email();
        for address in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:fffe"] {
            assert_eq!(login_as(&app, &email, PASSWORD, Some(address)).await.status(), 401, "{address}");
        }
        for n in 0..20u32 {
            let address = format!("2001:db8:1:2:{n:x}:{:x}::{:x}", n * 7919 % 65536, n + 3);
            let response = login_as(&app, &email, PASSWORD, Some(&address)).await;
            assert!(retry_after(&response) >= 1, "{address}");
            assert_problem(response, 429, "too_many_requests").await;
        }
        // The neighbouring /64s, even of the same /48, are other clients.
        for address in ["2001:db8:1:3::1", "2001:db8:1:1:ffff:ffff:ffff:ffff", "2001:db8:2:2::1"] {
            assert_eq!(login_as(&app, &email, PASSWORD, Some(address)).await.status(), 401, "{address}");
        }
    }

    // An IPv4 address written as an IPv4-mapped IPv6 one (as a dual-stack
    // socket reports it) is the same client, and mapped addresses are not
    // lumped together as one /64.
    async fn an_ipv4_client_is_one_client_however_its_address_is_written(app: TestApp, settings = behind_a_proxy) {
        let email = unique_email();
        for address in ["203.0.113.5", "::ffff:203.0.113.5", "\"[::ffff:203.0.113.5]:4711\""] {
            assert_eq!(login_as(&app, &email, PASSWORD, Some(address)).await.status(), 401, "{address}");
        }
        assert_eq!(login_as(&app, &email, PASSWORD, Some("203.0.113.5")).await.status(), 429);
        assert_eq!(login_as(&app, &email, PASSWORD, Some("::ffff:203.0.113.5")).await.status(), 429);
        for address in ["::ffff:203.0.113.6", "203.0.113.7"] {
            assert_eq!(login_as(&app, &email, PASSWORD, Some(address)).await.status(), 401, "{address}");
        }
    }

    async fn failed_logins_lock_the_account_and_unknown_addresses_alike(app: TestApp, settings = lockout) {
        let email = unique_email();
        app.register(&email).await;
        let unknown = unique_email();
        // The same answers for a real account and an unknown address.
        for target in [&email, &unknown] {
            let mut statuses = Vec::new();
            for _ in 0..4 {
                statuses.push(login_as(&app, target, "wrong password", None).await.status().as_u16());
            }
            assert_eq!(statuses, [401, 401, 401, 429], "{target}");
        }
        // Locked: even the right password is refused, without a hint.
        let response = login_as(&app, &email, PASSWORD, None).await;
        let wait = retry_after(&response);
        assert!((60..=600).contains(&wait), "{wait}");
        let body = assert_problem(response, 429, "too_many_requests").await;
        assert!(!body.to_string().contains("exist"), "{body}");
        // The lock lives in the database: another instance enforces it.
        let other = app.spawn_beside(tessera::keys::system_clock()).await;
        assert_eq!(login_as(&other, &email, PASSWORD, None).await.status(), 429);
    }

    async fn a_successful_login_resets_the_count(app: TestApp, settings = lockout) {
        let email = unique_email();
        app.register(&email).await;
        for _ in 0..2 {
            assert_eq!(login_as(&app, &email, "wrong password", None).await.status(), 401);
        }
        assert_eq!(login_as(&app, &email, PASSWORD, None).await.status(), 200);
        for _ in 0..2 {
            assert_eq!(login_as(&app, &email, "wrong password", None).await.status(), 401);
        }
        assert_eq!(login_as(&app, &email, PASSWORD, None).await.status(), 200);
    }

    async fn wrong_current_passwords_lock_the_account_like_logins(app: TestApp, settings = short_lockout) {
        let email = unique_email();
        let token = app.access_token(&email).await;
        for _ in 0..5 {
            let response = change_password(&app, &token, "wrong password", NEW_PASSWORD).await;
            assert_problem(response, 403, "invalid_current_password").await;
        }
        // Locked: the right password is refused without being checked, as
        // a wrong one is, with the time to wait.
        for current in [PASSWORD, "wrong password"] {
            let response = change_password(&app, &token, current, NEW_PASSWORD).await;
            let wait = retry_after(&response);
            assert!((1..=3).contains(&wait), "{wait}");
            assert_problem(response, 429, "too_many_requests").await;
        }
        // One counter per account: logins are locked as well.
        let response = login_as(&app, &email, PASSWORD, None).await;
        assert!(retry_after(&response) >= 1);
        assert_problem(response, 429, "too_many_requests").await;
        // Once the lock is over, the right password works (so it did not
        // change while locked) and clears the count...
        app.advance_clock(std::time::Duration::from_millis(3200));
        assert_eq!(change_password(&app, &token, PASSWORD, NEW_PASSWORD).await.status(), 204);
        // ...so four more failures don't lock it again.
        for _ in 0..4 {
            let response = change_password(&app, &token, "wrong password", "yet another passphrase").await;
            assert_problem(response, 403, "invalid_current_password").await;
        }
        assert_eq!(login_as(&app, &email, NEW_PASSWORD, None).await.status(), 200);
    }

    async fn failed_logins_count_towards_the_password_change(app: TestApp, settings = short_lockout) {
        let email = unique_email();
        let token = app.access_token(&email).await;
        // Three failed logins, under a look-alike spelling of the address
        // (fullwidth U): the same account, so the same counter.
        let look_alike = email.replacen('u', "\u{FF35}", 1);
        assert_ne!(look_alike, email);
        for _ in 0..3 {
            assert_eq!(login_as(&app, &look_alike, "wrong password", None).await.status(), 401);
        }
        for _ in 0..2 {
            let response = change_password(&app, &token, "wrong password", NEW_PASSWORD).await;
            assert_problem(response, 403, "invalid_current_password").await;
        }
        let response = change_password(&app, &token, PASSWORD, NEW_PASSWORD).await;
        assert!(retry_after(&response) >= 1);
        assert_problem(response, 429, "too_many_requests").await;
        assert_eq!(login_as(&app, &email, PASSWORD, None).await.status(), 429);
        // Another account is not held back.
        let other = app.access_token(&unique_email()).await;
        assert_eq!(change_password(&app, &other, PASSWORD, NEW_PASSWORD).await.status(), 204);
    }

    async fn the_sign_in_page_shares_the_lockout(app: TestApp, settings = lockout) {
        let email = unique_email();
        app.register(&email).await;
        for _ in 0..3 {
            assert_eq!(login_as(&app, &email, "wrong password", None).await.status(), 401);
        }
        let admin = app.admin_token(&unique_email()).await;
        let client: Value = app
            .client
            .post(app.url("/v1/admin/clients"))
            .bearer_auth(&admin)
            .json(&json!({
                "name": "app", "grant_types": ["authorization_code"], "scopes": ["openid"],
                "redirect_uris": ["http://127.0.0.1:9/cb"], "public": true, "first_party": true,
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let browser = reqwest::Client::builder().cookie_store(true).build().unwrap();
        let url = format!(
            "/oauth2/authorize?response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
            client["client_id"].as_str().unwrap()
        );
        let html = browser.get(app.url(&url)).send().await.unwrap().text().await.unwrap();
        let field = |name: &str| hidden_field(&html, name).expect("the field");
        let response = browser
            .post(app.url("/oauth2/authorize"))
            .form(&[
                ("request_id", field("request_id")),
                ("csrf_token", field("csrf_token")),
                ("action", "login".into()),
                ("email", email.clone()),
                ("password", PASSWORD.into()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429);
        assert!(retry_after(&response) >= 1);
        assert!(response.text().await.unwrap().contains("id=\"error\""));
    }
}

/// A trusted-proxy list that doesn't parse stops the start, before anything
/// is created (the database path here could not be).
#[tokio::test]
async fn a_bad_trusted_proxy_list_stops_the_start() {
    let mut settings = tessera::configuration::Settings::load(None).unwrap();
    settings.throttle.trusted_proxies = vec!["10.0.0.0/8".into(), "not-an-address".into()];
    settings.database.url = "sqlite:///nonexistent/never/t.db".into();
    let Err(error) = tessera::startup::build_state(settings, tessera::keys::system_clock()) else {
        panic!("the start went on");
    };
    let error = error.to_string();
    assert!(error.starts_with("throttle.trusted_proxies: "), "{error}");
    assert!(error.contains("not-an-address"), "{error}");
}
