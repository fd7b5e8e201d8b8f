//! Redirect URIs are registered, compared and redirected to in one form:
//! the canonical one. A URI whose text and parsed form differ is refused
//! at registration and never matches at authorization or sign-out; loopback
//! IP literals match on any port (RFC 8252 §7.3), and the code stays bound
//! to the exact URI requested.

use serde_json::{Value, json};
use tessera_test_support::hidden_field;

use crate::both_backends;
use crate::helpers::{PASSWORD, TestApp, assert_oauth_error, assert_problem, unique_email};

/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn encoded(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn register_client(app: &TestApp, admin: &str, registration: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/admin/clients"))
        .bearer_auth(admin)
        .json(registration)
        .send()
        .await
        .unwrap()
}

/// A first-party public client (no consent page) with these URIs.
async fn client_with(
    app: &TestApp,
    admin: &str,
    redirects: &[&str],
    after_logout: &[&str],
) -> String {
    let registration = json!({
        "name": "native app", "grant_types": ["authorization_code"], "scopes": ["openid"],
        "redirect_uris": redirects, "post_logout_redirect_uris": after_logout,
        "public": true, "first_party": true,
    });
    let response = register_client(app, admin, &registration).await;
    assert_eq!(response.status(), 201, "{registration}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["redirect_uris"],
        json!(redirects),
        "stored as sent, which is canonical"
    );
    body["client_id"].as_str().unwrap().to_owned()
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn authorize_url(client_id: &str, redirect_uri: &str) -> String {
    format!(
        "/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&state=st&code_challenge={CHALLENGE}&code_challenge_method=S256",
        encoded(redirect_uri)
    )
}

/// The authorization request is refused with the error page: no redirect.
async fn assert_refused(app: &TestApp, client_id: &str, redirect_uri: &str) {
    let response = browser()
        .get(app.url(&authorize_url(client_id, redirect_uri)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "{redirect_uri}");
    assert!(
        response.headers().get("location").is_none(),
        "{redirect_uri}"
    );
    let html = response.text().await.unwrap();
    assert!(html.contains("id=\"error\""), "{redirect_uri}: {html}");
    assert!(
        html.contains("redirect_uri is not registered"),
        "{redirect_uri}: {html}"
    );
}

/// Signs in through the browser flow; returns where Tessera redirected to.
async fn sign_in(app: &TestApp, client_id: &str, redirect_uri: &str, email: &str) -> url::Url {
    let browser = browser();
    let response = browser
        .get(app.url(&authorize_url(client_id, redirect_uri)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{redirect_uri}");
    let html = response.text().await.unwrap();
    assert!(html.contains("id=\"sign-in\""), "{html}");
    let response = browser
        .post(app.url("/oauth2/authorize"))
        .form(&[
            (
                "request_id",
                hidden_field(&html, "request_id").expect("the field"),
            ),
            (
                "csrf_token",
                hidden_field(&html, "csrf_token").expect("the field"),
            ),
            ("action", "login".into()),
            ("email", email.into()),
            ("password", PASSWORD.into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
}

async fn redeem(
    app: &TestApp,
    client_id: &str,
    code: &str,
    redirect_uri: &str,
) -> reqwest::Response {
    app.post_form(
        "/oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

both_backends! {
    async fn uris_whose_text_and_parse_differ_are_refused_at_registration(app: TestApp) {
        let admin = app.admin_token(&unique_email()).await;
        for (sent, canonical) in [
            // Codes would go to evil.example: `\` ends the authority.
            ("https://evil.example\\@app.example.com/cb", "https://evil.example/@app.example.com/cb"),
            ("https:///app.example.com/cb", "https://app.example.com/cb"),
            ("HTTPS://App.Example.com/cb", "https://app.example.com/cb"),
            // Same URI once parsed, but not the text that would be compared.
            ("https://app.example.com:443/cb", "https://app.example.com/cb"),
            ("https://app.example.com/a/../cb", "https://app.example.com/cb"),
            ("https://app.example.com", "https://app.example.com/"),
            ("http://127.1:8000/cb", "http://127.0.0.1:8000/cb"),
        ] {
            for field in ["redirect_uris", "post_logout_redirect_uris"] {
                let mut registration = json!({
                    "name": "app", "grant_types": ["authorization_code"], "scopes": ["openid"],
                    "redirect_uris": ["https://app.example.com/cb"], "public": true,
                });
                registration[field] = json!([sent]);
                let response = register_client(&app, &admin, &registration).await;
                let body = assert_problem(response, 422, "invalid_client_metadata").await;
                let detail = body["detail"].as_str().unwrap();
                assert!(detail.contains(&format!("{canonical:?}")), "{sent} in {field}: {detail}");
            }
        }
        // The canonical form itself is accepted, and the CLI's path (the
        // same parser) is covered by the unit tests in src/clients.
        client_with(&app, &admin, &["https://app.example.com/cb"], &["https://app.example.com/"]).await;
    }

    async fn only_the_registered_canonical_text_is_redirected_to(app: TestApp) {
        let admin = app.admin_token(&unique_email()).await;
        let client = client_with(&app, &admin, &["https://app.example.com/cb"], &[]).await;
        // Each names the registered URI once parsed (or tries to), but is
        // not its canonical text: refused, never a redirect.
        for requested in [
            "https://app.example.com:443/cb",
            "HTTPS://app.example.com/cb",
            "https://APP.example.com/cb",
            "https:///app.example.com/cb",
            "https://app.example.com/x/../cb",
            "https://app.example.com\\cb",
            "https://evil.example\\@app.example.com/cb",
            "https://app.example.com/cb#",
            "https://app.example.com/cb ",
            "not a uri",
        ] {
            assert_refused(&app, &client, requested).await;
        }
        // The canonical form works.
        let response = browser()
            .get(app.url(&authorize_url(&client, "https://app.example.com/cb")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    async fn a_loopback_client_completes_the_flow_on_an_ephemeral_port(app: TestApp) {
        let admin = app.admin_token(&unique_email()).await;
        let client = client_with(&app, &admin, &["http://127.0.0.1/cb", "http://[::1]/cb"], &[]).await;
        let email = unique_email();
        app.register(&email).await;

        let requested = "http://127.0.0.1:53117/cb";
        let location = sign_in(&app, &client, requested, &email).await;
        assert_eq!(location.port(), Some(53117), "{location}");
        assert!(location.as_str().starts_with("http://127.0.0.1:53117/cb?"), "{location}");
        let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();

        // The code is bound to the URI as requested: not another port, not
        // the registered one.
        for other in ["http://127.0.0.1:53118/cb", "http://127.0.0.1/cb", "http://[::1]:53117/cb"] {
            let response = redeem(&app, &client, &code, other).await;
            assert_oauth_error(response, 400, "invalid_grant").await;
        }
        let response = redeem(&app, &client, &code, requested).await;
        assert_eq!(response.status(), 200);
        let tokens: Value = response.json().await.unwrap();
        assert!(tokens["access_token"].is_string());

        // IPv6 loopback too.
        let location = sign_in(&app, &client, "http://[::1]:4000/cb", &email).await;
        assert!(location.as_str().starts_with("http://[::1]:4000/cb?code="), "{location}");

        // Only the port may differ, and only for a loopback IP literal.
        for requested in [
            "http://127.0.0.1.evil.example:53117/cb",
            "http://127.0.0.1:53117/cb2",
            "http://127.0.0.1:53117/cb?x=1",
            "https://127.0.0.1:53117/cb",
            "http://127.0.0.2:53117/cb",
            "http://localhost:53117/cb",
            "http://127.1:53117/cb",
            "http://[0:0:0:0:0:0:0:1]:53117/cb",
            "http://127.0.0.1:53117/cb#",
            "http://evil.example:53117/cb",
        ] {
            assert_refused(&app, &client, requested).await;
        }
    }

    async fn localhost_by_name_matches_its_port_only(app: TestApp) {
        let admin = app.admin_token(&unique_email()).await;
        let client = client_with(&app, &admin, &["http://localhost:8080/cb"], &[]).await;
        assert_refused(&app, &client, "http://localhost:8081/cb").await;
        assert_refused(&app, &client, "http://localhost/cb").await;
        assert_refused(&app, &client, "http://127.0.0.1:8080/cb").await;
        let response = browser()
            .get(app.url(&authorize_url(&client, "http://localhost:8080/cb")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    async fn post_logout_uris_match_on_the_canonical_form(app: TestApp) {
        let admin = app.admin_token(&unique_email()).await;
        let client = client_with(
            &app,
            &admin,
            &["https://app.example.com/cb"],
            &["https://app.example.com/bye", "http://127.0.0.1/bye"],
        )
        .await;
        let logout = |uri: &str| {
            format!("/oauth2/logout?client_id={client}&post_logout_redirect_uri={}&state=s", encoded(uri))
        };
        for requested in [
            "https://app.example.com:443/bye",
            "HTTPS://app.example.com/bye",
            "https://evil.example\\@app.example.com/bye",
            "https:///app.example.com/bye",
            "http://127.0.0.1.evil.example:5000/bye",
            "http://localhost:5000/bye",
        ] {
            let response = browser().get(app.url(&logout(requested))).send().await.unwrap();
            assert_eq!(response.status(), 400, "{requested}");
            assert!(response.headers().get("location").is_none(), "{requested}");
            assert!(response.text().await.unwrap().contains("id=\"error\""), "{requested}");
        }
        // No sign-in session: straight back to the (canonical) URI asked for.
        for (requested, port) in [("https://app.example.com/bye", None), ("http://127.0.0.1:5000/bye", Some(5000))] {
            let response = browser().get(app.url(&logout(requested))).send().await.unwrap();
            assert_eq!(response.status(), 303, "{requested}");
            let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
            assert!(location.as_str().starts_with(&format!("{requested}?")), "{location}");
            assert_eq!(location.port(), port);
        }
    }
}
