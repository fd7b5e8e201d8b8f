//! `GET /openapi.json`: an OpenAPI 3.1 document that an independent parser
//! (the `oas3` crate) reads, that lists exactly the routes the server
//! serves, and that real answers conform to — each answer's status must be
//! documented for its operation, its media type must be the documented
//! one, and a JSON body must validate against the documented schema with
//! an independent JSON Schema 2020-12 validator (the `jsonschema` crate).

use std::collections::BTreeSet;
use std::sync::Mutex;

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{PASSWORD, TestApp, Tokens, unique_email};

/// The served document, and which operations real answers were checked
/// against.
struct Document {
    doc: Value,
    exercised: Mutex<BTreeSet<(String, String)>>,
}

impl Document {
    async fn fetch(app: &TestApp) -> Document {
        let response = app.get("/openapi.json").await;
        assert_eq!(response.status(), 200);
        let doc: Value = response.json().await.expect("the document is JSON");
        Document {
            doc,
            exercised: Mutex::new(BTreeSet::new()),
        }
    }

    /// Checks one real answer against the documented operation; returns
    /// its status and body (JSON, or null when it has none or isn't JSON).
    async fn check(&self, method: &str, template: &str, response: Response) -> (u16, Value) {
        let status = response.status().as_u16();
        let media_type = response
            .headers()
            .get("content-type")
            .map(|v| essence(v.to_str().unwrap()));
        let bytes = response.bytes().await.unwrap();
        let what = format!("{} {template} → {status}", method.to_uppercase());
        let operation = &self.doc["paths"][template][method];
        assert!(operation.is_object(), "{what}: operation not documented");
        let documented = &operation["responses"][status.to_string()];
        assert!(documented.is_object(), "{what}: status not documented");
        self.exercised
            .lock()
            .unwrap()
            .insert((method.to_owned(), template.to_owned()));
        let Some(content) = documented["content"].as_object() else {
            assert!(
                bytes.is_empty(),
                "{what}: documented without a body, answered {bytes:?}"
            );
            return (status, Value::Null);
        };
        let media_type = media_type.unwrap_or_else(|| panic!("{what}: no Content-Type"));
        let (_, described) = content
            .iter()
            .find(|(documented, _)| essence(documented) == media_type)
            .unwrap_or_else(|| {
                panic!("{what}: {media_type} is not among the documented {content:?}")
            });
        if !media_type.ends_with("json") {
            return (status, Value::Null);
        }
        let body: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e})"));
        self.assert_valid(&what, &described["schema"], &body);
        (status, body)
    }

    /// Validates `body` against `schema`, resolving its references within
    /// the document's components.
    fn assert_valid(&self, what: &str, schema: &Value, body: &Value) {
        let validator = self.validator(what, schema);
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: the body doesn't match the documented schema:\n{}\nbody: {body}",
            errors.join("\n")
        );
    }

    /// A validator for `schema`, its references resolved within the
    /// document's components.
    fn validator(&self, what: &str, schema: &Value) -> jsonschema::Validator {
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"],
            "allOf": [schema],
        });
        jsonschema::draft202012::new(&root)
            .unwrap_or_else(|e| panic!("{what}: the documented schema doesn't compile: {e}"))
    }

    fn assert_every_route_exercised(&self) {
        let exercised = self.exercised.lock().unwrap();
        let missing: Vec<_> = tessera::http::ROUTES
            .iter()
            .filter(|(m, p)| !exercised.contains(&(m.to_string(), p.to_string())))
            .collect();
        assert!(missing.is_empty(), "not exercised: {missing:?}");
    }
}

/// A media type without its parameters, lower-case.
fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

async fn send(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> Response {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request sent")
}

both_backends! {
    async fn the_document_is_openapi_3_1_and_lists_exactly_the_served_routes(app: TestApp) {
        let response = app.get("/openapi.json").await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            essence(response.headers()["content-type"].to_str().unwrap()),
            "application/json"
        );
        let text = response.text().await.unwrap();
        let spec = oas3::from_json(&text).expect("an OpenAPI document oas3 can read");
        let version = spec.validate_version().expect("a supported version");
        assert_eq!((version.major, version.minor), (3, 1));
        assert_eq!(spec.info.version, env!("CARGO_PKG_VERSION"));

        let documented: BTreeSet<(String, String)> = spec
            .operations()
            .map(|(path, method, _)| (method.as_str().to_ascii_lowercase(), path))
            .collect();
        let served: BTreeSet<(String, String)> = tessera::http::ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(documented, served, "documented vs served routes");

        // Every operation describes what it answers, every /v1 error is a
        // problem document, and every schema compiles with its references
        // resolved.
        let doc: Value = serde_json::from_str(&text).unwrap();
        let document = Document { doc, exercised: Mutex::new(BTreeSet::new()) };
        for (path, item) in document.doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                assert!(!responses.is_empty(), "{method} {path}: no responses");
                assert!(
                    operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
                    "{method} {path}: no summary"
                );
                for (status, response) in responses {
                    let Some(content) = response["content"].as_object() else { continue };
                    if path.starts_with("/v1/") && status.starts_with('4') {
                        let schema = &content["application/problem+json"]["schema"];
                        assert_eq!(
                            schema["$ref"], "#/components/schemas/Problem",
                            "{method} {path} {status}"
                        );
                    }
                    for media in content.values() {
                        document.validator(&format!("{method} {path} {status}"), &media["schema"]);
                    }
                }
            }
        }
    }
}

both_backends! {
    // Drives every route with real requests — successes and the errors a
    // client meets — and checks each answer against the document.
    async fn real_answers_conform_to_the_document(app: TestApp) {
        let doc = Document::fetch(&app).await;
        let check = |method: &'static str, template: &'static str, response| {
            doc.check(method, template, response)
        };

        // Discovery and operations.
        for path in ["/.well-known/openid-configuration", "/.well-known/jwks.json",
                     "/openapi.json", "/metrics", "/healthz", "/readyz"] {
            let (status, _) = check("get", path, app.get(path).await).await;
            assert_eq!(status, 200, "{path}");
        }
        let jwks = app.get("/.well-known/jwks.json").await;
        let etag = jwks.headers()["etag"].to_str().unwrap().to_owned();
        let not_modified = app.client.get(app.url("/.well-known/jwks.json"))
            .header("if-none-match", etag).send().await.unwrap();
        assert_eq!(check("get", "/.well-known/jwks.json", not_modified).await.0, 304);

        // Accounts: register, its errors, login, its errors.
        let email = unique_email();
        let body = json!({"email": email, "password": PASSWORD, "name": "Ada"});
        let app = &app;
        let register = |body: Value| async move { app.post_json("/v1/auth/register", &body).await };
        assert_eq!(check("post", "/v1/auth/register", register(body.clone()).await).await.0, 201);
        assert_eq!(check("post", "/v1/auth/register", register(body).await).await.0, 409);
        let weak = json!({"email": unique_email(), "password": "short"});
        assert_eq!(check("post", "/v1/auth/register", register(weak).await).await.0, 422);
        let malformed = app.client.post(app.url("/v1/auth/register"))
            .header("content-type", "application/json").body("{").send().await.unwrap();
        assert_eq!(check("post", "/v1/auth/register", malformed).await.0, 400);
        let not_json = app.client.post(app.url("/v1/auth/register"))
            .header("content-type", "text/plain").body("hi").send().await.unwrap();
        assert_eq!(check("post", "/v1/auth/register", not_json).await.0, 415);

        let login = app.login(&email, PASSWORD).await;
        let (status, tokens) = check("post", "/v1/auth/login", login).await;
        assert_eq!(status, 200);
        let access = tokens["access_token"].as_str().unwrap().to_owned();
        let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
        let wrong = app.login(&email, "not the password").await;
        assert_eq!(check("post", "/v1/auth/login", wrong).await.0, 401);

        // The token's user and sessions.
        let (status, me) = check("get", "/v1/me", send(app, "get", "/v1/me", Some(&access)).await).await;
        assert_eq!((status, me["email"].as_str()), (200, Some(email.as_str())));
        assert_eq!(check("get", "/v1/me", send(app, "get", "/v1/me", None).await).await.0, 401);
        let (status, sessions) = check("get", "/v1/me/sessions",
            send(app, "get", "/v1/me/sessions", Some(&access)).await).await;
        assert_eq!((status, sessions["sessions"].as_array().map(Vec::len)), (200, Some(1)));
        let gone = send(app, "delete", "/v1/me/sessions/no-such-session", Some(&access)).await;
        assert_eq!(check("delete", "/v1/me/sessions/{id}", gone).await.0, 404);
        let change = app.client.put(app.url("/v1/me/password")).bearer_auth(&access)
            .json(&json!({"current_password": "wrong password", "new_password": "a new passphrase"}))
            .send().await.unwrap();
        assert_eq!(check("put", "/v1/me/password", change).await.0, 403);
        let change = app.client.put(app.url("/v1/me/password")).bearer_auth(&access)
            .json(&json!({"current_password": PASSWORD, "new_password": "a new passphrase"}))
            .send().await.unwrap();
        assert_eq!(check("put", "/v1/me/password", change).await.0, 204);

        // OAuth with the first-party client: refresh, introspect needs a
        // client, userinfo needs `openid`, revoke, then logout.
        let (status, refreshed) = check("post", "/oauth2/token", app.refresh(&refresh).await).await;
        assert_eq!(status, 200);
        let access = refreshed["access_token"].as_str().unwrap().to_owned();
        let refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
        let bad_grant = app.post_form("/oauth2/token", &[("grant_type", "password")]).await;
        assert_eq!(check("post", "/oauth2/token", bad_grant).await.0, 400);
        let (status, _) = check("get", "/oauth2/userinfo",
            send(app, "get", "/oauth2/userinfo", Some(&access)).await).await;
        assert_eq!(status, 403, "a first-party login token has no openid scope");
        assert_eq!(check("post", "/oauth2/userinfo",
            send(app, "post", "/oauth2/userinfo", None).await).await.0, 401);
        let anonymous = app.post_form("/oauth2/introspect", &[("token", &access)]).await;
        assert_eq!(check("post", "/oauth2/introspect", anonymous).await.0, 401);

        // Administration, with a confidential client of its own.
        let admin = app.admin_token(&unique_email()).await;
        let create = app.client.post(app.url("/v1/admin/clients")).bearer_auth(&admin)
            .json(&json!({"name": "Billing", "grant_types": ["client_credentials"], "scopes": ["invoices:read"], "audiences": ["billing-api"]}))
            .send().await.unwrap();
        let (status, client) = check("post", "/v1/admin/clients", create).await;
        assert_eq!(status, 201);
        let client_id = client["client_id"].as_str().unwrap().to_owned();
        let secret = client["client_secret"].as_str().unwrap().to_owned();
        let invalid = app.client.post(app.url("/v1/admin/clients")).bearer_auth(&admin)
            .json(&json!({"name": "x", "grant_types": ["implicit"]})).send().await.unwrap();
        assert_eq!(check("post", "/v1/admin/clients", invalid).await.0, 422);
        let forbidden = app.client.post(app.url("/v1/admin/clients")).bearer_auth(&access)
            .json(&json!({"name": "x"})).send().await.unwrap();
        assert_eq!(check("post", "/v1/admin/clients", forbidden).await.0, 403);
        for path in ["/v1/admin/clients", "/v1/admin/keys", "/v1/admin/audit", "/v1/admin/users"] {
            let (status, _) = check("get", path, send(app, "get", path, Some(&admin)).await).await;
            assert_eq!(status, 200, "{path}");
        }
        let bad_cursor = send(app, "get", "/v1/admin/users?cursor=%%%", Some(&admin)).await;
        assert_eq!(check("get", "/v1/admin/users", bad_cursor).await.0, 400);
        // Two logins, a refresh and a registered client so far: a page of
        // one has a next one.
        let audit = send(app, "get", "/v1/admin/audit?limit=1", Some(&admin)).await;
        let (_, page) = check("get", "/v1/admin/audit", audit).await;
        let cursor = page["next_cursor"].as_str().expect("a next page").to_owned();
        let next = send(app, "get", &format!("/v1/admin/audit?limit=1&cursor={cursor}"), Some(&admin)).await;
        let (_, next) = check("get", "/v1/admin/audit", next).await;
        assert_ne!(page["events"], next["events"]);
        let client_path = format!("/v1/admin/clients/{client_id}");
        assert_eq!(check("get", "/v1/admin/clients/{id}",
            send(app, "get", &client_path, Some(&admin)).await).await.0, 200);
        let user_path = format!("/v1/admin/users/{}", me["id"].as_str().unwrap());
        assert_eq!(check("get", "/v1/admin/users/{id}",
            send(app, "get", &user_path, Some(&admin)).await).await.0, 200);
        let patch = app.client.patch(app.url(&user_path)).bearer_auth(&admin)
            .json(&json!({"roles": ["auditor"]})).send().await.unwrap();
        let (status, patched) = check("patch", "/v1/admin/users/{id}", patch).await;
        assert_eq!((status, patched["roles"].clone()), (200, json!(["auditor"])));
        let patch = app.client.patch(app.url(&user_path)).bearer_auth(&admin)
            .json(&json!({"roles": ["not a role!"]})).send().await.unwrap();
        assert_eq!(check("patch", "/v1/admin/users/{id}", patch).await.0, 422);

        // The client's own grant and introspection.
        let form = |pairs: &[(&'static str, String)]| {
            pairs.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>()
        };
        let grant = app.client.post(app.url("/oauth2/token")).basic_auth(&client_id, Some(&secret))
            .form(&form(&[("grant_type", "client_credentials".into())])).send().await.unwrap();
        let (status, issued) = check("post", "/oauth2/token", grant).await;
        assert_eq!(status, 200);
        let wrong_secret = app.client.post(app.url("/oauth2/token")).basic_auth(&client_id, Some("nope"))
            .form(&form(&[("grant_type", "client_credentials".into())])).send().await.unwrap();
        assert_eq!(check("post", "/oauth2/token", wrong_secret).await.0, 401);
        for (token, active) in [(issued["access_token"].as_str().unwrap().to_owned(), true),
                                // Another client's refresh token: inactive to this one.
                                (refresh.clone(), false), ("garbage".to_owned(), false)] {
            let answer = app.client.post(app.url("/oauth2/introspect")).basic_auth(&client_id, Some(&secret))
                .form(&form(&[("token", token)])).send().await.unwrap();
            let (status, body) = check("post", "/oauth2/introspect", answer).await;
            assert_eq!((status, body["active"].as_bool()), (200, Some(active)));
        }
        let revoke = app.post_form("/oauth2/revoke", &[("token", &refresh)]).await;
        assert_eq!(check("post", "/oauth2/revoke", revoke).await.0, 200);
        let revoke = app.post_form("/oauth2/revoke", &[]).await;
        assert_eq!(check("post", "/oauth2/revoke", revoke).await.0, 400);

        // Logging out, ending a session, deleting. (The password changed
        // above.)
        let password = "a new passphrase";
        let first = Tokens::from_response(app.login(&email, password).await).await;
        let second = Tokens::from_response(app.login(&email, password).await).await;
        let sessions: Value = send(app, "get", "/v1/me/sessions", Some(&first.access))
            .await.json().await.unwrap();
        let other = sessions["sessions"].as_array().unwrap().iter()
            .find(|s| s["current"] == false).expect("the second login's session");
        let path = format!("/v1/me/sessions/{}", other["id"].as_str().unwrap());
        assert_eq!(check("delete", "/v1/me/sessions/{id}",
            send(app, "delete", &path, Some(&first.access)).await).await.0, 204);
        assert_eq!(app.refresh(&second.refresh).await.status(), 400);
        let tokens = first;
        let logout = app.client.post(app.url("/v1/auth/logout")).bearer_auth(&tokens.access)
            .header("content-type", "application/json").body("{\"everywhere\": true}").send().await.unwrap();
        assert_eq!(check("post", "/v1/auth/logout", logout).await.0, 422);
        let logout = send(app, "post", "/v1/auth/logout", Some(&tokens.access)).await;
        assert_eq!(check("post", "/v1/auth/logout", logout).await.0, 204);
        assert_eq!(check("delete", "/v1/admin/clients/{id}",
            send(app, "delete", &client_path, Some(&admin)).await).await.0, 204);
        assert_eq!(check("delete", "/v1/admin/clients/{id}",
            send(app, "delete", &client_path, Some(&admin)).await).await.0, 404);
        assert_eq!(check("delete", "/v1/admin/users/{id}",
            send(app, "delete", &user_path, Some(&admin)).await).await.0, 204);
        assert_eq!(check("get", "/v1/admin/users/{id}",
            send(app, "get", &user_path, Some(&admin)).await).await.0, 404);

        // The browser endpoints: an untrusted request gets an error page,
        // a request that isn't a form is refused, a browser without a
        // session is signed out at once.
        let untrusted = app.get("/oauth2/authorize?client_id=nobody&response_type=code").await;
        assert_eq!(check("get", "/oauth2/authorize", untrusted).await.0, 400);
        let not_form = app.client.post(app.url("/oauth2/authorize")).json(&json!({})).send().await.unwrap();
        assert_eq!(check("post", "/oauth2/authorize", not_form).await.0, 415);
        assert_eq!(check("get", "/oauth2/logout", app.get("/oauth2/logout").await).await.0, 200);
        let logout = app.post_form("/oauth2/logout", &[("state", "s")]).await;
        assert_eq!(check("post", "/oauth2/logout", logout).await.0, 200);
        let bad_hint = app.get("/oauth2/logout?id_token_hint=garbage").await;
        assert_eq!(check("get", "/oauth2/logout", bad_hint).await.0, 400);

        // E-mailed links, on an app that sends no mail: the requests that
        // would send say so, the links that don't exist are refused.
        let reset = app.post_json("/v1/auth/password-reset", &json!({"email": unique_email()})).await;
        assert_eq!(check("post", "/v1/auth/password-reset", reset).await.0, 503);
        let confirm = app.post_json("/v1/auth/password-reset/confirm",
            &json!({"token": "x".repeat(43), "new_password": "a new passphrase"})).await;
        assert_eq!(check("post", "/v1/auth/password-reset/confirm", confirm).await.0, 400);
        let verify = app.post_json("/v1/auth/verify-email", &json!({"token": "x".repeat(43)})).await;
        assert_eq!(check("post", "/v1/auth/verify-email", verify).await.0, 400);
        let someone = app.access_token(&unique_email()).await;
        let resend = send(app, "post", "/v1/me/email-verification", Some(&someone)).await;
        assert_eq!(check("post", "/v1/me/email-verification", resend).await.0, 503);
        for path in ["/account/reset", "/account/verify"] {
            let page = app.get(&format!("{path}?token=nothing")).await;
            let template = if path == "/account/reset" { "/account/reset" } else { "/account/verify" };
            assert_eq!(check("get", template, page).await.0, 400);
            let form = app.post_form(path, &[("token", "nothing"), ("new_password", "a new passphrase")]).await;
            assert_eq!(check("post", template, form).await.0, 400);
        }

        // The account lifecycle, on an app that sends no mail.
        let with_body = |method: Method, path: &str, token: &str, body: Value| {
            app.client.request(method, app.url(path)).bearer_auth(token).json(&body).send()
        };
        let accept = app.post_json("/v1/auth/invitation/accept",
            &json!({"token": "x".repeat(43), "password": "a new passphrase"})).await;
        assert_eq!(check("post", "/v1/auth/invitation/accept", accept).await.0, 400);
        let owed = app.post_json("/v1/auth/password-change", &json!({"email": unique_email(),
            "current_password": "a passphrase", "new_password": "a new passphrase"})).await;
        assert_eq!(check("post", "/v1/auth/password-change", owed).await.0, 401);
        let renamed = with_body(Method::PATCH, "/v1/me", &someone, json!({"name": "Ada"})).await.unwrap();
        let (status, user) = check("patch", "/v1/me", renamed).await;
        assert_eq!((status, user["name"].as_str()), (200, Some("Ada")));
        let change = with_body(Method::POST, "/v1/me/email", &someone,
            json!({"new_email": unique_email(), "password": PASSWORD})).await.unwrap();
        assert_eq!(check("post", "/v1/me/email", change).await.0, 503);
        let (status, consents) = check("get", "/v1/me/consents",
            send(app, "get", "/v1/me/consents", Some(&someone)).await).await;
        assert_eq!((status, consents["consents"].as_array().map(Vec::len)), (200, Some(0)));
        assert_eq!(check("delete", "/v1/me/consents/{client_id}",
            send(app, "delete", "/v1/me/consents/nobody", Some(&someone)).await).await.0, 404);
        let invite = with_body(Method::POST, "/v1/admin/users", &admin, json!({"email": unique_email()})).await.unwrap();
        assert_eq!(check("post", "/v1/admin/users", invite).await.0, 503);
        let someone_id = send(app, "get", "/v1/me", Some(&someone)).await.json::<Value>().await.unwrap()["id"]
            .as_str().unwrap().to_owned();
        let reset_path = format!("/v1/admin/users/{someone_id}/password-reset");
        assert_eq!(check("post", "/v1/admin/users/{id}/password-reset",
            send(app, "post", &reset_path, Some(&admin)).await).await.0, 503);
        let page = app.get("/account/invitation?token=nothing").await;
        assert_eq!(check("get", "/account/invitation", page).await.0, 400);
        let form = app.post_form("/account/invitation", &[("token", "nothing"), ("new_password", "a new passphrase")]).await;
        assert_eq!(check("post", "/account/invitation", form).await.0, 400);
        assert_eq!(check("get", "/account/password", app.get("/account/password").await).await.0, 200);
        let form = app.post_form("/account/password", &[("email", "nobody@example.com"),
            ("current_password", "a passphrase"), ("new_password", "a new passphrase")]).await;
        assert_eq!(check("post", "/account/password", form).await.0, 401);
        let wrong = with_body(Method::DELETE, "/v1/me", &someone, json!({"password": "not it"})).await.unwrap();
        assert_eq!(check("delete", "/v1/me", wrong).await.0, 403);
        let delete = with_body(Method::DELETE, "/v1/me", &someone, json!({"password": PASSWORD})).await.unwrap();
        assert_eq!(check("delete", "/v1/me", delete).await.0, 204);

        doc.assert_every_route_exercised();
    }
}
