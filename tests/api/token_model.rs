//! What a token may do (README "What a token may do"), tried as an attacker
//! would: tokens of third-party applications, of services and of users
//! without the scope, at every `/v1` route; the admin scope asked for by
//! whoever isn't entitled to it; introspection by a stranger; resources
//! outside a client's registration.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::CsrfToken;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::both_backends;
use crate::helpers::{PASSWORD, TestApp, assert_oauth_error, assert_problem, unique_email};
use crate::oidc::{Browser, REDIRECT, Registered, Step, code_from, register_client};

/// The claims of a JWT, unverified (the tests around check signatures).
fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// What a code flow ended with at the token endpoint.
struct Exchange {
    status: u16,
    body: Value,
    /// The consent page, if one was shown.
    consent_page: Option<String>,
}

/// Signs `email` in through `client` in a fresh browser (allowing consent
/// when asked) with `authorize` parameters added to the authorization
/// request and `token` ones to the token request.
async fn code_flow(
    app: &TestApp,
    client: &Registered,
    email: &str,
    authorize: &[(&str, &str)],
    token: &[(&str, &str)],
) -> Exchange {
    let verifier = format!("{}-{}", "v".repeat(43), unique_email().len());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("state", "st"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    params.extend_from_slice(authorize);
    let url = url::Url::parse_with_params(&app.url("/oauth2/authorize"), &params).unwrap();
    let browser = Browser::new();
    let Step::Login(form, _) = browser.open(url.as_str()).await else {
        panic!("expected the login page")
    };
    let mut consent_page = None;
    let step = match browser.sign_in(app, &form, email, PASSWORD).await {
        Step::Consent(form, page) => {
            consent_page = Some(page);
            browser.consent(app, &form, "allow").await
        }
        other => other,
    };
    let code = code_from(step, REDIRECT, &CsrfToken::new("st".into()), app);
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    form.extend_from_slice(token);
    let mut request = app.client.post(app.url("/oauth2/token"));
    match &client.secret {
        Some(secret) => request = request.basic_auth(&client.id, Some(secret)),
        None => form.push(("client_id", client.id.as_str())),
    }
    let response = request.form(&form).send().await.unwrap();
    let status = response.status().as_u16();
    Exchange {
        status,
        body: response.json().await.unwrap(),
        consent_page,
    }
}

/// `grant_type=refresh_token` as `client` (with its secret, or its id for
/// a public one), with `extra` parameters.
async fn refresh_as(
    app: &TestApp,
    client: &Registered,
    refresh_token: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    form.extend_from_slice(extra);
    let mut request = app.client.post(app.url("/oauth2/token"));
    match &client.secret {
        Some(secret) => request = request.basic_auth(&client.id, Some(secret)),
        None => form.push(("client_id", client.id.as_str())),
    }
    request.form(&form).send().await.unwrap()
}

/// An authorization request from a fresh browser that Tessera sends back
/// to the client at once (an error): the `error` it carries.
async fn sent_back_with(app: &TestApp, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("state", "st"),
        ("nonce", "n"),
    ];
    params.extend_from_slice(extra);
    let url = url::Url::parse_with_params(&app.url("/oauth2/authorize"), &params).unwrap();
    let Step::Redirect(back) = Browser::new().open(url.as_str()).await else {
        panic!("expected a redirect back to the client")
    };
    crate::oidc::query(&back, "error").unwrap_or_else(|| panic!("no error in {back}"))
}

/// A client_credentials token response for `client` (with its secret).
async fn own_token(app: &TestApp, client: &Registered) -> Value {
    app.client
        .post(app.url("/oauth2/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `POST /oauth2/introspect` by `caller`: the answer.
async fn introspect_as(app: &TestApp, caller: &Registered, token: &str) -> Value {
    app.client
        .post(app.url("/oauth2/introspect"))
        .basic_auth(&caller.id, caller.secret.as_deref())
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A registered user (not an administrator).
async fn user(app: &TestApp) -> String {
    let email = unique_email();
    app.register(&email).await;
    email
}

/// An administrator's address and first-party login token.
async fn admin(app: &TestApp) -> (String, String) {
    let email = unique_email();
    let token = app.admin_token(&email).await;
    (email, token)
}

fn web_app(extra: Value) -> Value {
    let mut registration = json!({
        "name": "Photo prints",
        "grant_types": ["authorization_code", "refresh_token"],
        "scopes": ["openid", "email", "profile"],
        "redirect_uris": [REDIRECT],
    });
    for (k, v) in extra.as_object().unwrap() {
        registration[k] = v.clone();
    }
    registration
}

/// Every `/v1` route a bearer token may be shown to (all but register and
/// login), with a request that would succeed for the right token.
fn bearer_routes() -> Vec<(&'static str, String)> {
    tessera::http::ROUTES
        .iter()
        .filter(|(_, path)| {
            path.starts_with("/v1/")
                && !matches!(
                    *path,
                    "/v1/auth/register"
                        | "/v1/auth/login"
                        | "/v1/auth/password-reset"
                        | "/v1/auth/password-reset/confirm"
                        | "/v1/auth/verify-email"
                        | "/v1/auth/invitation/accept"
                        | "/v1/auth/password-change"
                )
        })
        .map(|(method, path)| {
            (
                *method,
                path.replace("{id}", "00000000-0000-0000-0000-000000000000")
                    .replace("{client_id}", "some-client"),
            )
        })
        .collect()
}

async fn send(app: &TestApp, method: &str, path: &str, token: &str) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
    let mut request = app
        .client
        .request(method.clone(), app.url(path))
        .bearer_auth(token);
    if method == reqwest::Method::POST
        || method == reqwest::Method::PUT
        || method == reqwest::Method::PATCH
    {
        request = request.json(&json!({}));
    }
    request.send().await.unwrap()
}

/// Every `/v1` bearer route answers `token` 403 with an RFC 6750
/// `insufficient_scope` challenge naming the scope the route needs.
async fn refused_everywhere(app: &TestApp, token: &str, what: &str) {
    for (method, path) in bearer_routes() {
        let response = send(app, method, &path, token).await;
        assert_eq!(response.status(), 403, "{what}: {method} {path}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        let scope = if path.starts_with("/v1/admin") {
            "tessera:admin"
        } else {
            "tessera:account"
        };
        assert!(
            challenge.contains(r#"error="insufficient_scope""#),
            "{challenge}"
        );
        assert!(
            challenge.contains(&format!(r#"scope="{scope}""#)),
            "{challenge}"
        );
        let body: Value = response.json().await.unwrap();
        assert!(body["code"].is_string(), "{body}");
    }
}

both_backends! {
    async fn a_third_party_applications_token_is_refused_at_every_v1_route(app: TestApp) {
        let (admin_email, admin_token) = admin(&app).await;
        let web = register_client(&app, &admin_token, web_app(json!({}))).await;
        // The administrator consents to `openid` alone, as in the report.
        let exchange = code_flow(&app, &web, &admin_email, &[("scope", "openid")], &[]).await;
        assert_eq!(exchange.status, 200, "{}", exchange.body);
        let token = exchange.body["access_token"].as_str().unwrap();
        let claims = payload(token);
        // No registered audience: good only at userinfo.
        assert_eq!(
            claims["aud"],
            json!(format!("{}/oauth2/userinfo", app.settings.issuer))
        );
        assert!(claims.get("roles").is_none(), "{claims}");
        refused_everywhere(&app, token, "third-party token").await;
        // Userinfo still answers it, with `sub` alone.
        let info: Value = app
            .get_with_token("/oauth2/userinfo", token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(info, json!({"sub": claims["sub"]}));

        // An ordinary user's token from the same application: the same.
        let email = user(&app).await;
        let exchange = code_flow(&app, &web, &email, &[("scope", "openid email")], &[]).await;
        refused_everywhere(&app, exchange.body["access_token"].as_str().unwrap(), "user via third party").await;
    }

    async fn a_third_party_application_with_an_audience_of_its_own_is_refused_too(app: TestApp) {
        let (_, admin_token) = admin(&app).await;
        let web = register_client(
            &app,
            &admin_token,
            web_app(json!({"audiences": ["prints-api"], "scopes": ["openid", "prints:write"]})),
        )
        .await;
        let email = user(&app).await;
        let exchange = code_flow(&app, &web, &email, &[("scope", "openid prints:write")], &[]).await;
        assert_eq!(exchange.status, 200, "{}", exchange.body);
        let token = exchange.body["access_token"].as_str().unwrap();
        assert_eq!(payload(token)["aud"], json!("prints-api"));
        refused_everywhere(&app, token, "token for another resource").await;
    }

    async fn third_party_clients_cannot_be_registered_for_tesseras_api(app: TestApp) {
        let (_, admin_token) = admin(&app).await;
        for extra in [
            json!({"scopes": ["openid", "tessera:account"]}),
            json!({"scopes": ["openid", "tessera:admin"]}),
            json!({"scopes": ["openid", "TESSERA:Admin"]}),
            json!({"audiences": ["tessera"]}),
            json!({"audiences": ["orders", "tessera"]}),
            json!({"audiences": ["TESSERA"]}),
        ] {
            let response = app
                .client
                .post(app.url("/v1/admin/clients"))
                .bearer_auth(&admin_token)
                .json(&web_app(extra.clone()))
                .send()
                .await
                .unwrap();
            assert_problem(response, 422, "invalid_client_metadata").await;
            // A first-party one may.
            let mut first_party = extra.clone();
            first_party["first_party"] = json!(true);
            register_client(&app, &admin_token, web_app(first_party)).await;
        }
    }

    async fn the_admin_scope_goes_only_to_administrators_of_first_party_clients(app: TestApp) {
        let (admin_email, admin_token) = admin(&app).await;
        let console = register_client(
            &app,
            &admin_token,
            web_app(json!({
                "first_party": true,
                "audiences": ["tessera"],
                "scopes": ["openid", "tessera:account", "tessera:admin"],
            })),
        )
        .await;
        // An ordinary user asks for it: the token comes without it.
        let email = user(&app).await;
        let exchange = code_flow(&app, &console, &email, &[("scope", "openid tessera:account tessera:admin")], &[]).await;
        assert_eq!(exchange.status, 200, "{}", exchange.body);
        assert_eq!(exchange.body["scope"], "openid tessera:account");
        let token = exchange.body["access_token"].as_str().unwrap();
        assert_eq!(payload(token)["scope"], "openid tessera:account");
        assert_eq!(app.get_with_token("/v1/me", token).await.status(), 200);
        let response = app.get_with_token("/v1/admin/users", token).await;
        assert_eq!(response.status(), 403);
        // Refreshing doesn't bring it either.
        let refreshed: Value = refresh_as(&app, &console, exchange.body["refresh_token"].as_str().unwrap(), &[])
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(refreshed["scope"], "openid tessera:account", "{refreshed}");

        // The administrator gets it and reaches the admin API.
        let exchange = code_flow(&app, &console, &admin_email, &[("scope", "openid tessera:admin")], &[]).await;
        assert_eq!(exchange.body["scope"], "openid tessera:admin");
        let token = exchange.body["access_token"].as_str().unwrap();
        assert_eq!(app.get_with_token("/v1/admin/users", token).await.status(), 200);
        // …but not the account routes, which need the other scope.
        assert_eq!(app.get_with_token("/v1/me", token).await.status(), 403);
    }

    async fn a_demoted_administrator_loses_the_admin_scope_at_the_next_refresh(app: TestApp) {
        let (_, admin_token) = admin(&app).await;
        let (other_email, _) = admin(&app).await;
        let tokens = app.tokens(&other_email).await;
        let claims = payload(&tokens.access);
        assert_eq!(claims["scope"], "profile email tessera:account tessera:admin");
        let other_id = claims["sub"].as_str().unwrap().to_owned();
        let response = app
            .client
            .patch(app.url(&format!("/v1/admin/users/{other_id}")))
            .bearer_auth(&admin_token)
            .json(&json!({"roles": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        // At once: the role is checked in the database.
        let response = app.get_with_token("/v1/admin/users", &tokens.access).await;
        assert_problem(response, 403, "forbidden").await;
        let refreshed: Value = app.refresh(&tokens.refresh).await.json().await.unwrap();
        assert_eq!(refreshed["scope"], "profile email tessera:account", "{refreshed}");
        let token = refreshed["access_token"].as_str().unwrap();
        assert_eq!(payload(token)["roles"], json!([]));
        let response = app.get_with_token("/v1/admin/users", token).await;
        assert_problem(response, 403, "insufficient_scope").await;
    }

    async fn a_services_own_token_is_never_a_user(app: TestApp) {
        let (_, admin_token) = admin(&app).await;
        // Even a first-party service registered for Tessera's audience and
        // scopes.
        let service = register_client(
            &app,
            &admin_token,
            json!({
                "name": "billing",
                "grant_types": ["client_credentials"],
                "scopes": ["billing:run", "tessera:account", "tessera:admin"],
                "audiences": ["tessera"],
                "first_party": true,
            }),
        )
        .await;
        let secret = service.secret.clone().unwrap();
        let token_for = |scope: Option<&'static str>| {
            let mut form = vec![("grant_type", "client_credentials")];
            if let Some(scope) = scope {
                form.push(("scope", scope));
            }
            app.client
                .post(app.url("/oauth2/token"))
                .basic_auth(&service.id, Some(&secret))
                .form(&form)
                .send()
        };
        // Tessera's API scopes are never granted to a client for itself.
        let response = token_for(Some("tessera:account")).await.unwrap();
        assert_oauth_error(response, 400, "invalid_scope").await;
        let body: Value = token_for(None).await.unwrap().json().await.unwrap();
        assert_eq!(body["scope"], "billing:run", "{body}");
        let token = body["access_token"].as_str().unwrap();
        let claims = payload(token);
        assert_eq!(claims["aud"], json!("tessera"));
        assert!(claims.get("sid").is_none() && claims.get("roles").is_none(), "{claims}");
        for (method, path) in bearer_routes() {
            let response = send(&app, method, &path, token).await;
            assert_eq!(response.status(), 403, "{method} {path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["code"], "user_token_required", "{method} {path}");
        }
    }

    async fn introspection_answers_only_the_tokens_client_and_its_audiences(app: TestApp) {
        let (_, admin_token) = admin(&app).await;
        let service = |name: &str, audiences: Value| {
            json!({
                "name": name,
                "grant_types": ["client_credentials"],
                "scopes": ["read"],
                "audiences": audiences,
            })
        };
        let orders = register_client(&app, &admin_token, service("orders", json!(["orders-api"]))).await;
        let orders_api = register_client(&app, &admin_token, service("orders-api", json!(["orders-api", "other"]))).await;
        let stranger = register_client(&app, &admin_token, service("stranger", json!(["elsewhere"]))).await;
        let first_party_api = register_client(
            &app,
            &admin_token,
            json!({
                "name": "gateway",
                "grant_types": ["client_credentials"],
                "audiences": ["tessera"],
                "first_party": true,
            }),
        )
        .await;
        let issued = own_token(&app, &orders).await;
        let service_token = issued["access_token"].as_str().unwrap().to_owned();
        let user_tokens = app.tokens(&user(&app).await).await;
        let active = |body: Value| body["active"].as_bool().unwrap();
        // The token's own client and the resource it is for: active.
        assert!(active(introspect_as(&app, &orders, &service_token).await));
        assert!(active(introspect_as(&app, &orders_api, &service_token).await));
        // Anyone else learns nothing.
        let body = introspect_as(&app, &stranger, &service_token).await;
        assert_eq!(body, json!({"active": false}));
        // A user's first-party token: the first-party service for Tessera's
        // audience may know; strangers may not; a refresh token only to its
        // own client.
        assert!(active(introspect_as(&app, &first_party_api, &user_tokens.access).await));
        let body = introspect_as(&app, &stranger, &user_tokens.access).await;
        assert_eq!(body, json!({"active": false}));
        let body = introspect_as(&app, &first_party_api, &user_tokens.refresh).await;
        assert_eq!(body, json!({"active": false}));
    }

    async fn roles_go_to_first_party_clients_and_by_consent(app: TestApp) {
        let (admin_email, admin_token) = admin(&app).await;
        // First-party login: roles.
        let claims = payload(&app.tokens(&admin_email).await.access);
        assert_eq!(claims["roles"], json!(["admin"]));
        // A third-party application without the roles scope: none.
        let web = register_client(&app, &admin_token, web_app(json!({"scopes": ["openid", "roles"]}))).await;
        let exchange = code_flow(&app, &web, &admin_email, &[("scope", "openid")], &[]).await;
        let claims = payload(exchange.body["access_token"].as_str().unwrap());
        assert!(claims.get("roles").is_none(), "{claims}");
        // With it, after the consent page said so in plain words.
        let exchange = code_flow(&app, &web, &admin_email, &[("scope", "openid roles"), ("prompt", "consent")], &[]).await;
        let page = exchange.consent_page.expect("a consent page");
        assert!(page.contains("See your roles here"), "{page}");
        let claims = payload(exchange.body["access_token"].as_str().unwrap());
        assert_eq!(claims["roles"], json!(["admin"]));
        assert_eq!(claims["scope"], "openid roles");
    }

    async fn resources_are_within_the_clients_registration(app: TestApp) {
        let (_, admin_token) = admin(&app).await;
        let web = register_client(
            &app,
            &admin_token,
            web_app(json!({"audiences": ["orders-api", "billing-api"], "first_party": true})),
        )
        .await;
        let email = user(&app).await;
        // No resource: every registered audience.
        let exchange = code_flow(&app, &web, &email, &[("scope", "openid")], &[]).await;
        assert_eq!(payload(exchange.body["access_token"].as_str().unwrap())["aud"], json!(["orders-api", "billing-api"]));
        // One at authorization: that one; the token request may not add one.
        let exchange = code_flow(&app, &web, &email, &[("scope", "openid"), ("resource", "orders-api")], &[]).await;
        assert_eq!(payload(exchange.body["access_token"].as_str().unwrap())["aud"], json!("orders-api"));
        let exchange = code_flow(&app, &web, &email, &[("scope", "openid"), ("resource", "orders-api")], &[("resource", "billing-api")]).await;
        assert_eq!(exchange.status, 400);
        assert_eq!(exchange.body["error"], "invalid_target");
        // Only at the token request: that one.
        let exchange = code_flow(&app, &web, &email, &[("scope", "openid")], &[("resource", "billing-api")]).await;
        let refresh = exchange.body["refresh_token"].as_str().unwrap().to_owned();
        assert_eq!(payload(exchange.body["access_token"].as_str().unwrap())["aud"], json!("billing-api"));
        // Refresh: within the registration; a refused one spends nothing.
        let response = refresh_as(&app, &web, &refresh, &[("resource", "tessera")]).await;
        assert_oauth_error(response, 400, "invalid_target").await;
        // Presented by another client, a bad resource tells nothing: the
        // refresh is refused as another client's, and spends nothing.
        let other = register_client(&app, &admin_token, web_app(json!({"audiences": ["orders-api"]}))).await;
        let response = refresh_as(&app, &other, &refresh, &[("resource", "nowhere")]).await;
        assert_oauth_error(response, 400, "invalid_grant").await;
        let body: Value = refresh_as(&app, &web, &refresh, &[("resource", "orders-api")]).await.json().await.unwrap();
        assert_eq!(payload(body["access_token"].as_str().unwrap())["aud"], json!("orders-api"), "{body}");
        // A resource the client isn't registered for, at authorization: back
        // to the client with invalid_target.
        assert_eq!(sent_back_with(&app, &web.id, &[("scope", "openid"), ("resource", "tessera")]).await, "invalid_target");
    }

    async fn first_party_logins_keep_working_with_the_account_scope(app: TestApp) {
        let email = user(&app).await;
        let response = app.login(&email, PASSWORD).await;
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["scope"], "profile email tessera:account");
        let token = body["access_token"].as_str().unwrap();
        let claims = payload(token);
        assert_eq!(claims["aud"], json!("tessera"));
        assert_eq!(claims["client_id"], "tessera");
        assert_eq!(app.get_with_token("/v1/me", token).await.status(), 200);
        assert_eq!(app.get_with_token("/v1/me/sessions", token).await.status(), 200);
        // Not an administrator: no admin scope, and the admin API says so.
        let response = app.get_with_token("/v1/admin/users", token).await;
        assert_eq!(
            response.headers()["www-authenticate"].to_str().unwrap(),
            r#"Bearer realm="tessera", error="insufficient_scope", error_description="the token lacks the tessera:admin scope", scope="tessera:admin""#
        );
        assert_problem(response, 403, "insufficient_scope").await;
    }

    async fn id_tokens_and_refresh_tokens_are_never_bearers(app: TestApp) {
        let (_, admin_token) = admin(&app).await;
        let console = register_client(
            &app,
            &admin_token,
            web_app(json!({
                "first_party": true,
                "audiences": ["tessera"],
                "scopes": ["openid", "tessera:account"],
            })),
        )
        .await;
        let email = user(&app).await;
        let exchange = code_flow(&app, &console, &email, &[("scope", "openid tessera:account"), ("nonce", "n")], &[]).await;
        let access = exchange.body["access_token"].as_str().unwrap();
        assert_eq!(app.get_with_token("/v1/me", access).await.status(), 200);
        assert_eq!(app.get_with_token("/oauth2/userinfo", access).await.status(), 200);
        for token in [&exchange.body["id_token"], &exchange.body["refresh_token"]] {
            let token = token.as_str().unwrap();
            for path in ["/v1/me", "/oauth2/userinfo", "/v1/admin/users"] {
                let response = app.get_with_token(path, token).await;
                assert_problem(response, 401, "invalid_token").await;
            }
        }
    }

    async fn no_client_is_registered_for_the_userinfo_audience_or_look_alikes(app: TestApp) {
        let (_, admin_token) = admin(&app).await;
        let userinfo = format!("{}/oauth2/userinfo", app.settings.issuer);
        for (audience, first_party) in [
            (userinfo.as_str(), false),
            (userinfo.as_str(), true),
            (" tessera", true),
            ("tessera\u{200b}", false),
            ("ｔｅｓｓｅｒａ", false),
        ] {
            let response = app
                .client
                .post(app.url("/v1/admin/clients"))
                .bearer_auth(&admin_token)
                .json(&web_app(json!({"audiences": [audience], "first_party": first_party})))
                .send()
                .await
                .unwrap();
            assert_problem(response, 422, "invalid_client_metadata").await;
        }
    }

    async fn a_client_registered_before_the_rules_gets_nothing_of_tesseras(app: TestApp) {
        use diesel::prelude::*;
        use tessera::db::schema::clients;

        let (admin_email, admin_token) = admin(&app).await;
        let legacy = register_client(
            &app,
            &admin_token,
            web_app(json!({
                "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
                "scopes": ["openid", "legacy:read"],
                "audiences": ["legacy-api"],
            })),
        )
        .await;
        // As the previous version let it be registered: a third-party client
        // with Tessera's audience and scopes, and the userinfo audience.
        let (id, userinfo) = (legacy.id.clone(), format!("{}/oauth2/userinfo", app.settings.issuer));
        let db = app.db();
        tokio::task::spawn_blocking(move || {
            db.run_blocking(|conn| {
                Ok(diesel::update(clients::table.find(&id))
                    .set((
                        clients::audiences.eq(serde_json::to_string(&["tessera", "legacy-api", userinfo.as_str()]).unwrap()),
                        clients::scopes.eq(r#"["openid","legacy:read","tessera:account","tessera:admin"]"#),
                    ))
                    .execute(conn)?)
            })
        })
        .await
        .unwrap()
        .unwrap();

        // Introspection of a user's first-party token: nothing.
        let user_token = app.tokens(&admin_email).await.access;
        let body = introspect_as(&app, &legacy, user_token.as_str()).await;
        assert_eq!(body, json!({"active": false}));
        // Nor of a token good only at userinfo, another application's.
        let web = register_client(&app, &admin_token, web_app(json!({}))).await;
        let exchange = code_flow(&app, &web, &admin_email, &[("scope", "openid")], &[]).await;
        let body = introspect_as(&app, &legacy, exchange.body["access_token"].as_str().unwrap()).await;
        assert_eq!(body, json!({"active": false}));

        // Authorization: `resource=tessera` goes back as invalid_target
        // before any code exists.
        assert_eq!(sent_back_with(&app, &legacy.id, &[("scope", "openid"), ("resource", "tessera")]).await, "invalid_target");
        // Asking for Tessera's scopes is an invalid scope, never a consent
        // page offering them.
        assert_eq!(sent_back_with(&app, &legacy.id, &[("scope", "openid tessera:account")]).await, "invalid_scope");
        // Its tokens, by code or by its own credentials, are for its own
        // audience alone.
        let exchange = code_flow(&app, &legacy, &admin_email, &[("scope", "openid legacy:read")], &[]).await;
        let token = exchange.body["access_token"].as_str().unwrap();
        assert_eq!(payload(token)["aud"], json!("legacy-api"));
        refused_everywhere(&app, token, "legacy third-party token").await;
        let own = own_token(&app, &legacy).await;
        // Not `openid`: a client's own token has no user.
        assert_eq!(own["scope"], "legacy:read", "{own}");
        let own_token = own["access_token"].as_str().unwrap();
        assert_eq!(payload(own_token)["aud"], json!("legacy-api"));
        let response = app.get_with_token("/oauth2/userinfo", own_token).await;
        assert_problem(response, 403, "user_token_required").await;
    }

    async fn discovery_lists_the_scopes(app: TestApp) {
        let metadata: Value = app
            .get("/.well-known/openid-configuration")
            .await
            .json()
            .await
            .unwrap();
        for scope in ["openid", "roles", "tessera:account", "tessera:admin"] {
            assert!(
                metadata["scopes_supported"].as_array().unwrap().contains(&json!(scope)),
                "{scope}"
            );
        }
        // The OpenAPI document names the scope of every bearer operation.
        let document: Value = app.get("/openapi.json").await.json().await.unwrap();
        let needed = |path: &str, method: &str| document["paths"][path][method]["security"][0]["bearer"].clone();
        assert_eq!(needed("/v1/me", "get"), json!(["tessera:account"]));
        assert_eq!(needed("/v1/auth/logout", "post"), json!(["tessera:account"]));
        assert_eq!(needed("/v1/admin/users", "get"), json!(["tessera:admin"]));
        assert_eq!(needed("/oauth2/userinfo", "get"), json!(["openid"]));
    }
}
