//! Control characters (Unicode Cc) are refused in every text a request
//! carries — path, query, form fields, JSON strings, a Basic client id —
//! with a 4xx in the surface's shape, never a 5xx: PostgreSQL can't store a
//! NUL, and on it each of these was a 500 before any login. The requests
//! are generated from the route table and the parameters the OpenAPI
//! document gives each operation, with an administrator's token so the
//! check is reached past authentication.

use base64::Engine;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{TestApp, assert_oauth_error, assert_problem, unique_email};

/// NUL, other C0 controls, DEL and a C1 control (NEL).
const CONTROLS: [char; 5] = ['\u{0}', '\u{1}', '\u{1f}', '\u{7f}', '\u{85}'];

/// Text with `c` inside.
fn tainted(c: char) -> String {
    format!("a{c}b")
}

/// `s` percent-encoded byte by byte (UTF-8), for paths and queries.
fn encoded(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// How a surface answers bad input.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// `/v1` and the rest: a problem document, `invalid_text`.
    Problem,
    /// `/oauth2/token`, `/revoke`, `/introspect`: RFC 6749 `invalid_request`.
    OAuth,
    /// `/oauth2/authorize`, `/oauth2/logout` and the `/account` pages that
    /// e-mailed links open: the HTML error page.
    Page,
    /// A JSON field that isn't text: any 4xx (a type error, 422).
    Any4xx,
}

fn shape_of(template: &str) -> Shape {
    match template {
        "/oauth2/authorize"
        | "/oauth2/logout"
        | "/account/reset"
        | "/account/verify"
        | "/account/invitation"
        | "/account/password" => Shape::Page,
        "/oauth2/token" | "/oauth2/revoke" | "/oauth2/introspect" => Shape::OAuth,
        _ => Shape::Problem,
    }
}

/// Asserts the refusal: never a 5xx, a 4xx, in the surface's shape.
async fn assert_refused(what: &str, shape: Shape, response: Response) -> u16 {
    let status = response.status().as_u16();
    assert!((400..500).contains(&status), "{what}: answered {status}");
    match shape {
        Shape::Problem => {
            assert_problem(response, 400, "invalid_text").await;
        }
        Shape::OAuth => {
            assert_oauth_error(response, 400, "invalid_request").await;
        }
        Shape::Page => {
            assert_eq!(status, 400, "{what}");
            assert!(
                response.headers().get("location").is_none(),
                "{what}: redirected"
            );
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(
                content_type.starts_with("text/html"),
                "{what}: {content_type}"
            );
        }
        Shape::Any4xx => {}
    }
    status
}

/// The schema `schema` refers to, with `allOf` parts merged, from the
/// document's components.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> Vec<&'a Value> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return resolve(doc, &doc["components"]["schemas"][name]);
    }
    let mut parts = vec![schema];
    for key in ["allOf", "oneOf", "anyOf"] {
        for part in schema[key].as_array().into_iter().flatten() {
            parts.extend(resolve(doc, part));
        }
    }
    parts
}

/// What a body field holds.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Text,
    TextList,
    Other,
}

/// The fields of a body schema, with what each holds.
fn fields(doc: &Value, schema: &Value) -> Vec<(String, Kind)> {
    let types = |s: &Value| -> Vec<String> {
        resolve(doc, s)
            .into_iter()
            .flat_map(|s| match &s["type"] {
                Value::String(t) => vec![t.clone()],
                Value::Array(ts) => ts
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect(),
                _ => vec![],
            })
            .collect()
    };
    let kind = |s: &Value| {
        let t = types(s);
        if t.iter().any(|t| t == "string") {
            Kind::Text
        } else if t.iter().any(|t| t == "array")
            && resolve(doc, s)
                .iter()
                .any(|s| types(&s["items"]).iter().any(|t| t == "string"))
        {
            Kind::TextList
        } else {
            Kind::Other
        }
    };
    let mut out = Vec::new();
    for part in resolve(doc, schema) {
        for (name, property) in part["properties"].as_object().into_iter().flatten() {
            out.push((name.clone(), kind(property)));
        }
    }
    out
}

/// One generated request: what it tries, how it must be refused.
struct Case {
    what: String,
    shape: Shape,
    request: RequestBuilder,
}

/// Every route, each parameter it takes (and a made-up query parameter),
/// each control character.
fn cases(app: &TestApp, doc: &Value, admin: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for (method, template) in tessera::http::ROUTES {
        let operation = &doc["paths"][template][method];
        assert!(operation.is_object(), "{method} {template} is documented");
        let surface = shape_of(template);
        let bearer = operation["security"].to_string().contains("\"bearer\"");
        let basic = operation["security"].to_string().contains("\"client\"");
        let http_method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let path_params: Vec<&str> = template
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let plain_path = path_params.iter().fold(template.to_string(), |p, name| {
            p.replace(&format!("{{{name}}}"), "x")
        });
        let request = |path: &str| {
            let r = app.client.request(http_method.clone(), app.url(path));
            if bearer { r.bearer_auth(admin) } else { r }
        };
        let mut queries: Vec<String> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        queries.push("made_up".to_owned());
        let content = &operation["requestBody"]["content"];
        for c in CONTROLS {
            let bad = tainted(c);
            let mut add = |what: String, shape: Shape, request: RequestBuilder| {
                cases.push(Case {
                    what: format!("{method} {template}: {what} with {c:?}"),
                    shape,
                    request,
                });
            };
            for name in &path_params {
                let path = template.replace(&format!("{{{name}}}"), &encoded(&bad));
                add(format!("path parameter {name}"), surface, request(&path));
            }
            for name in &queries {
                let path = format!("{plain_path}?{name}={}", encoded(&bad));
                add(format!("query parameter {name}"), surface, request(&path));
                let path = format!("{plain_path}?{}=x", encoded(&format!("{name}{c}")));
                add(
                    format!("query parameter name {name}"),
                    surface,
                    request(&path),
                );
            }
            if let Some(schema) = content
                .get("application/x-www-form-urlencoded")
                .map(|m| &m["schema"])
            {
                for (name, _) in fields(doc, schema) {
                    let form = [(name.as_str(), bad.as_str())];
                    add(
                        format!("form field {name}"),
                        surface,
                        request(&plain_path).form(&form),
                    );
                }
            }
            if let Some(schema) = content.get("application/json").map(|m| &m["schema"]) {
                let shape = |strict: bool| if strict { surface } else { Shape::Any4xx };
                for (name, kind) in fields(doc, schema) {
                    add(
                        format!("JSON field {name}"),
                        shape(kind == Kind::Text),
                        request(&plain_path).json(&json!({ name.as_str(): bad })),
                    );
                    add(
                        format!("JSON field {name} (in a list)"),
                        shape(kind == Kind::TextList),
                        request(&plain_path).json(&json!({ name.as_str(): ["ok", bad] })),
                    );
                }
                add(
                    "JSON key".into(),
                    surface,
                    request(&plain_path).json(&json!({ bad.as_str(): "x" })),
                );
            }
            if basic {
                let form = [("grant_type", "client_credentials"), ("token", "x")];
                add(
                    "Basic client id".into(),
                    Shape::OAuth,
                    request(&plain_path)
                        .basic_auth(&bad, Some("secret"))
                        .form(&form),
                );
                let value = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:secret", encoded(&bad)));
                add(
                    "Basic client id, form-encoded".into(),
                    Shape::OAuth,
                    request(&plain_path)
                        .header("authorization", format!("Basic {value}"))
                        .form(&form),
                );
            }
        }
    }
    cases
}

both_backends! {
    async fn control_characters_in_every_parameter_of_every_route_are_a_4xx(app: TestApp) {
        let admin = app.admin_token(&unique_email()).await;
        let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
        let cases = cases(&app, &doc, &admin);
        assert!(cases.len() > 500, "{} cases", cases.len());
        for Case { what, shape, request } in cases {
            let response = request.send().await.expect("request sent");
            let status = assert_refused(&what, shape, response).await;
            // And the document says the operation may answer it.
            let (method, template) = what.split_once(':').unwrap().0.split_once(' ').unwrap();
            let documented = &doc["paths"][template][method.to_lowercase()]["responses"][status.to_string()];
            assert!(documented.is_object(), "{what}: {status} is not documented");
        }
        // The administrator's token still works: nothing was stored.
        assert_eq!(app.get_with_token("/v1/admin/users", &admin).await.status(), 200);
        assert_eq!(app.get("/readyz").await.status(), 200);
    }
}

both_backends! {
    // Each of the inputs that answered 500 on PostgreSQL, before any login.
    async fn the_inputs_that_were_500s_on_postgresql_are_400s(app: TestApp) {
        let form = |path: &str, pairs: &[(&str, &str)]| {
            app.client.post(app.url(path)).form(&pairs.to_vec())
        };
        let send = |r: RequestBuilder| async move { r.send().await.unwrap() };
        let page = |what: &'static str| move |r: Response| assert_refused(what, Shape::Page, r);

        // The OAuth endpoints: client_id=%00 and a NUL in a Basic client id.
        let token = send(form("/oauth2/token", &[("grant_type", "authorization_code"), ("client_id", "\0"), ("code", "c")])).await;
        assert_oauth_error(token, 400, "invalid_request").await;
        let token = send(form("/oauth2/token", &[("grant_type", "refresh_token"), ("refresh_token", "r"), ("client_id", "\0")])).await;
        assert_oauth_error(token, 400, "invalid_request").await;
        for path in ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"] {
            let pairs = [("grant_type", "client_credentials"), ("token", "t")];
            let basic = send(form(path, &pairs).basic_auth("\0", Some("secret"))).await;
            assert_oauth_error(basic, 400, "invalid_request").await;
            let value = base64::engine::general_purpose::STANDARD.encode("cli%00ent:secret");
            let basic = send(form(path, &pairs).header("authorization", format!("Basic {value}"))).await;
            assert_oauth_error(basic, 400, "invalid_request").await;
            let post = send(form(path, &[("token", "t"), ("client_id", "\0"), ("client_secret", "s")])).await;
            assert_oauth_error(post, 400, "invalid_request").await;
        }
        // The browser pages: an error page, never a redirect.
        let redirect = encoded("https://app.example.com/cb");
        page("authorize client_id")(app.get(&format!("/oauth2/authorize?response_type=code&client_id=%00&redirect_uri={redirect}")).await).await;
        page("authorize form client_id")(send(form("/oauth2/authorize", &[("response_type", "code"), ("client_id", "\0")])).await).await;
        page("sign-in form request_id")(send(form("/oauth2/authorize", &[("request_id", "\0"), ("csrf_token", "x"), ("action", "login"), ("email", "a@example.com"), ("password", "p")])).await).await;
        page("sign-in form email")(send(form("/oauth2/authorize", &[("request_id", "r"), ("csrf_token", "x"), ("action", "login"), ("email", "a\u{85}@example.com")])).await).await;
        page("logout client_id")(app.get(&format!("/oauth2/logout?client_id=%00&post_logout_redirect_uri={redirect}")).await).await;
        page("logout form client_id")(send(form("/oauth2/logout", &[("client_id", "\0"), ("post_logout_redirect_uri", "https://app.example.com/cb")])).await).await;
        page("logout state")(app.get("/oauth2/logout?state=%7F").await).await;

        // JSON bodies, before any login: \u0000 escapes and raw C1.
        let register = app.post_json("/v1/auth/register", &json!({"email": unique_email(), "password": "correct horse\u{0}battery"})).await;
        assert_problem(register, 400, "invalid_text").await;
        let login = app.client.post(app.url("/v1/auth/login")).header("content-type", "application/json")
            .body(r#"{"email": "a\u0000@example.com", "password": "x"}"#).send().await.unwrap();
        let problem = assert_problem(login, 400, "invalid_text").await;
        assert!(problem["detail"].as_str().unwrap().contains("line 1"), "{problem}");
        let login = app.post_json("/v1/auth/login", &json!({"email": "a\u{85}@example.com", "password": "x"})).await;
        assert_problem(login, 400, "invalid_text").await;
        // An escaped backslash followed by "u0000" is text, not a NUL.
        let login = app.client.post(app.url("/v1/auth/login")).header("content-type", "application/json")
            .body(r#"{"email": "a@example.com", "password": "\\u0000"}"#).send().await.unwrap();
        assert_problem(login, 401, "invalid_credentials").await;

        // The admin API, past authentication (two logins: two audit events).
        let admin_email = unique_email();
        let admin = app.admin_token(&admin_email).await;
        app.tokens(&admin_email).await;
        let get = |path: String| {
            let admin = admin.clone();
            let app = &app;
            async move { app.get_with_token(&path, &admin).await }
        };
        for path in ["/v1/admin/users?cursor=AA", "/v1/admin/audit?cursor=AA", "/v1/admin/users?cursor=AAAA",
                     "/v1/admin/audit?cursor=bm90LWFuLWlk"] {
            assert_problem(get(path.into()).await, 400, "invalid_cursor").await;
        }
        for path in ["/v1/admin/users?email=%00", "/v1/admin/audit?user=%00", "/v1/admin/audit?kind=%00",
                     "/v1/admin/users/%00", "/v1/admin/clients/%00", "/v1/admin/users?email=a+%C2%85",
                     "/v1/admin/users?limit=%00", "/v1/me/sessions/%1F"] {
            assert_problem(get(path.into()).await, 400, "invalid_text").await;
        }
        for method in [Method::PATCH, Method::DELETE] {
            let response = app.client.request(method, app.url("/v1/admin/users/%00")).bearer_auth(&admin)
                .json(&json!({"disabled": true})).send().await.unwrap();
            assert_problem(response, 400, "invalid_text").await;
        }
        let create = app.client.post(app.url("/v1/admin/clients")).bearer_auth(&admin)
            .json(&json!({"name": "Billing\u{0}", "grant_types": ["client_credentials"]})).send().await.unwrap();
        assert_problem(create, 400, "invalid_text").await;
        // Even a path that routes nowhere, and the operational endpoints.
        assert_problem(app.get("/no/such%00path").await, 400, "invalid_text").await;
        assert_problem(app.get("/healthz?probe=%00").await, 400, "invalid_text").await;

        // Text without control characters still goes through: a real
        // cursor pages, a filter that matches nothing is an empty page.
        let page: Value = get("/v1/admin/audit?limit=1".into()).await.json().await.unwrap();
        let cursor = page["next_cursor"].as_str().expect("more events").to_owned();
        assert_eq!(get(format!("/v1/admin/audit?limit=1&cursor={cursor}")).await.status(), 200);
        let none: Value = get("/v1/admin/users?email=%C3%A9%20tab".into()).await.json().await.unwrap();
        assert_eq!(none["users"], json!([]));
        assert_eq!(app.get("/readyz").await.status(), 200);
    }
}
