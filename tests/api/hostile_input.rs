//! Property test: whatever bytes arrive as a body, a form, a query or a
//! bearer token, the answer is never a 5xx.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::both_backends;
use crate::helpers::TestApp;

/// Where the bytes go.
const TARGETS: usize = 9;

async fn send(app: &TestApp, target: usize, bytes: Vec<u8>) -> Option<u16> {
    let json = |path: &str| {
        app.client
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(bytes.clone())
    };
    let form = |path: &str| {
        app.client
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(bytes.clone())
    };
    // As a query: percent-encode what a URL can't carry as is.
    let query: String = url::form_urlencoded::byte_serialize(&bytes).collect();
    let raw_query = String::from_utf8_lossy(&bytes)
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '#')
        .collect::<String>();
    let request = match target {
        0 => json("/v1/auth/login"),
        1 => json("/v1/auth/register"),
        2 => form("/oauth2/token"),
        3 => form("/oauth2/authorize"),
        4 => form("/oauth2/introspect"),
        5 => form("/oauth2/revoke"),
        6 => app
            .client
            .get(app.url(&format!("/oauth2/authorize?{raw_query}&x={query}"))),
        7 => app
            .client
            .get(app.url(&format!("/oauth2/logout?{raw_query}"))),
        _ => {
            // A header value can't hold control characters: those bytes
            // can't even be sent.
            let value =
                reqwest::header::HeaderValue::from_bytes(&[b"Bearer ".as_slice(), &bytes].concat())
                    .ok()?;
            app.client
                .get(app.url("/v1/me"))
                .header("authorization", value)
        }
    };
    Some(request.send().await.unwrap().status().as_u16())
}

/// Bytes of five kinds: anything, form-like text, JSON-like text, and
/// forms and JSON whose fields carry a control character (PostgreSQL
/// refuses NUL in TEXT: such values must never reach it).
fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..400),
        "[a-z_]{0,12}=[a-zA-Z0-9%+&=._~-]{0,200}".prop_map(String::into_bytes),
        r#"\{("[a-z_]{1,10}": ?("[^"]{0,40}"|[0-9-]{1,12}|true|null|\[\]|\{\}),? ?){0,6}\}"#
            .prop_map(String::into_bytes),
        "(grant_type=(authorization_code|refresh_token|client_credentials)&)?(client_id|request_id|csrf_token|token|refresh_token|code|email|state)=[a-z]{0,5}%(00|01|1F|7F|C2%85)[a-z]{0,5}(&(action=login|client_secret=s|response_type=code))?"
            .prop_map(String::into_bytes),
        r#"\{"(email|password|name|current_password)": "[a-z@.]{0,8}\\u00(00|01|1f|7f|85)[a-z]{0,5}"(, "password": "x")?\}"#
            .prop_map(String::into_bytes),
    ]
}

both_backends! {
    async fn arbitrary_input_never_gets_a_5xx(app: TestApp) {
        let handle = tokio::runtime::Handle::current();
        let mut runner = TestRunner::new(Config {
            cases: 160,
            failure_persistence: None,
            ..Config::default()
        });
        let app = &app;
        tokio::task::block_in_place(|| {
            runner.run(&(input(), 0..TARGETS), |(bytes, target)| {
                let status = handle.block_on(send(app, target, bytes.clone()));
                if let Some(status) = status {
                    prop_assert!(
                        status < 500,
                        "target {} answered {} to {:?}",
                        target,
                        status,
                        String::from_utf8_lossy(&bytes)
                    );
                }
                Ok(())
            })
        })
        .unwrap();
    }
}

both_backends! {
    // Found by schemathesis driving /openapi.json: a known path asked with
    // another method was a 404, and serde took a struct from a JSON array.
    async fn a_wrong_method_gets_405_and_a_body_must_be_an_object(app: TestApp) {
        let response = app.client.request(reqwest::Method::TRACE, app.url("/v1/admin/users/abc"))
            .send().await.unwrap();
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["allow"], "GET, HEAD, PATCH, DELETE");
        let problem = crate::helpers::assert_problem(response, 405, "method_not_allowed").await;
        assert!(problem["detail"].as_str().unwrap().contains("TRACE"));
        let response = app.client.put(app.url("/oauth2/logout")).send().await.unwrap();
        assert_eq!(response.headers()["allow"], "GET, HEAD, POST");
        // Percent-encoded paths are matched as the router decodes them.
        let response = app.client.put(app.url("/v1/%6De")).send().await.unwrap();
        assert_eq!(response.headers()["allow"], "GET, HEAD, PATCH, DELETE");
        // HEAD is GET without the body.
        let response = app.client.head(app.url("/.well-known/jwks.json")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("etag"));
        assert!(response.bytes().await.unwrap().is_empty());
        // Repeated fields are refused, as before bodies had to be objects.
        let response = app.client.post(app.url("/v1/auth/login"))
            .header("content-type", "application/json")
            .body(r#"{"email": "a@example.com", "email": "b@example.com", "password": "x"}"#)
            .send().await.unwrap();
        let problem = crate::helpers::assert_problem(response, 422, "invalid_body").await;
        assert!(problem["detail"].as_str().unwrap().contains("duplicate field"), "{problem}");
        // A logout body is small: a large one is a problem document too.
        let token = app.access_token(&crate::helpers::unique_email()).await;
        let response = app.client.post(app.url("/v1/auth/logout")).bearer_auth(&token)
            .header("content-type", "application/json")
            .body(vec![b' '; app.settings.server.json_body_limit_bytes + 1]).send().await.unwrap();
        crate::helpers::assert_problem(response, 413, "body_too_large").await;
        let response = app.client.post(app.url("/v1/auth/logout")).bearer_auth(&token)
            .header("content-type", "application/json").body("{").send().await.unwrap();
        crate::helpers::assert_problem(response, 400, "malformed_body").await;
        let response = app.get("/v1/no/such/path").await;
        crate::helpers::assert_problem(response, 404, "not_found").await;

        let token = app.access_token(&crate::helpers::unique_email()).await;
        for body in ["[null, null]", "[\"a@example.com\", \"password\"]", "\"text\"", "42"] {
            let response = app.client.post(app.url("/v1/auth/login"))
                .header("content-type", "application/json").body(body).send().await.unwrap();
            crate::helpers::assert_problem(response, 422, "invalid_body").await;
            let response = app.client.put(app.url("/v1/me/password")).bearer_auth(&token)
                .header("content-type", "application/json").body(body).send().await.unwrap();
            crate::helpers::assert_problem(response, 422, "invalid_body").await;
        }
        // A logout body may be absent or null (this session), not an array.
        let response = app.client.post(app.url("/v1/auth/logout")).bearer_auth(&token)
            .header("content-type", "application/json").body("[true]").send().await.unwrap();
        crate::helpers::assert_problem(response, 422, "invalid_body").await;
        let response = app.client.post(app.url("/v1/auth/logout")).bearer_auth(&token)
            .header("content-type", "application/json").body("null").send().await.unwrap();
        assert_eq!(response.status(), 204);
    }
}

/// Markup, both quotes, an ampersand and a `</textarea>`: whatever part of
/// a page this lands in, it must stay text.
const MARKUP: &str = r#"<script>alert("x" + 'y')</script></textarea>&"#;
/// [`MARKUP`] as the pages write it.
const MARKUP_ESCAPED: &str =
    "&lt;script&gt;alert(&quot;x&quot; + &#x27;y&#x27;)&lt;/script&gt;&lt;/textarea&gt;&amp;";

/// `html` holds `MARKUP` `times` times, each escaped, and no raw piece of it.
fn assert_only_escaped(html: &str, times: usize) {
    assert_eq!(html.matches(MARKUP_ESCAPED).count(), times, "{html}");
    let rest = html.replace(MARKUP_ESCAPED, "");
    for raw in ["<script", "</textarea", "alert("] {
        assert!(!rest.contains(raw), "{raw} unescaped in {html}");
    }
}

both_backends! {
    // A client name, a login_hint and a state with markup in them, through
    // the login, consent and sign-out pages.
    async fn markup_in_names_hints_and_states_stays_text(app: TestApp) {
        use base64::Engine;
        use sha2::Digest;

        use crate::oidc::{Browser, REDIRECT, Step, register_client};
        use tessera_test_support::hidden_field as hidden;

        const AFTER_LOGOUT: &str = "http://127.0.0.1:9/bye";
        let admin = app.admin_token(&crate::helpers::unique_email()).await;
        let client = register_client(&app, &admin, serde_json::json!({
            "name": MARKUP,
            "grant_types": ["authorization_code"],
            "scopes": ["openid", "email"],
            "redirect_uris": [REDIRECT],
            "post_logout_redirect_uris": [AFTER_LOGOUT],
        })).await;
        let email = crate::helpers::unique_email();
        app.register(&email).await;

        let verifier = "v".repeat(50);
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        let authorize = url::Url::parse_with_params(&app.url("/oauth2/authorize"), [
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", "openid email"),
            ("state", MARKUP),
            ("login_hint", MARKUP),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]).unwrap();
        let browser = Browser::new();
        // The login page: the client's name in the heading, the hint in
        // the email field.
        let Step::Login(form, html) = browser.open(authorize.as_str()).await else {
            panic!("the login page")
        };
        assert_only_escaped(&html, 2);
        assert!(html.contains(&format!("value=\"{MARKUP_ESCAPED}\">")), "{html}");
        // Signed in, the consent page names the client twice.
        let Step::Consent(form, html) = browser.sign_in(&app, &form, &email, crate::helpers::PASSWORD).await else {
            panic!("the consent page")
        };
        assert_only_escaped(&html, 2);
        // The state goes back to the client as it came.
        let Step::Redirect(back) = browser.consent(&app, &form, "allow").await else {
            panic!("back to the client")
        };
        assert_eq!(crate::oidc::query(&back, "state").as_deref(), Some(MARKUP));

        // Signing out without a hint asks first, carrying the state in a
        // hidden field that reads back as sent.
        let logout = url::Url::parse_with_params(&app.url("/oauth2/logout"), [
            ("client_id", client.id.as_str()),
            ("post_logout_redirect_uri", AFTER_LOGOUT),
            ("state", MARKUP),
        ]).unwrap();
        let Step::Page(200, html) = browser.open(logout.as_str()).await else {
            panic!("the sign-out confirmation")
        };
        assert!(html.contains("id=\"sign-out\""), "{html}");
        assert_only_escaped(&html, 1);
        assert_eq!(hidden(&html, "state").as_deref(), Some(MARKUP));
    }
}
