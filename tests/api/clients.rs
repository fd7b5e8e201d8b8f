//! OAuth clients: registration, client authentication, client_credentials,
//! introspection.

use base64::Engine;
use serde_json::{Value, json};
use tessera_verifier::Verifier;

use crate::both_backends;
use crate::forgery::segment;
use crate::helpers::{TestApp, assert_oauth_error, assert_problem};

struct Registered {
    id: String,
    secret: String,
}

async fn register_client(app: &TestApp, admin: &str, registration: Value) -> Registered {
    let response = app
        .client
        .post(app.url("/v1/admin/clients"))
        .bearer_auth(admin)
        .json(&registration)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{registration}");
    let body: Value = response.json().await.unwrap();
    Registered {
        id: body["client_id"].as_str().unwrap().to_owned(),
        secret: body["client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    }
}

fn orders_service() -> Value {
    json!({
        "name": "orders service",
        "grant_types": ["client_credentials"],
        "scopes": ["orders:read", "orders:write"],
        "audiences": ["orders-api", "billing-api"],
    })
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

async fn client_credentials(
    app: &TestApp,
    client: &Registered,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    app.client
        .post(app.url("/oauth2/token"))
        .header("authorization", basic(&client.id, &client.secret))
        .form(&form)
        .send()
        .await
        .unwrap()
}

both_backends! {
    async fn client_credentials_tokens_for_services(app: TestApp) {
        let admin = app.admin_token("ops@example.com").await;
        let orders = register_client(&app, &admin, orders_service()).await;
        assert_eq!(orders.secret.len(), 43, "256 bits, base64url");

        let response = client_credentials(&app, &orders, &[]).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert!(body.get("refresh_token").is_none(), "no refresh token for client_credentials");
        assert_eq!(body["scope"], "orders:read orders:write");
        let token = body["access_token"].as_str().unwrap();

        // The sibling's verifier accepts it for its audience.
        let verifier = Verifier::builder(&app.settings.issuer).audience("orders-api").discover().await.unwrap();
        let claims = verifier.verify(token).await.unwrap();
        assert_eq!(claims.sub, orders.id);
        assert_eq!(claims.client_id.as_deref(), Some(orders.id.as_str()));
        assert!(claims.sid.is_none());
        assert!(claims.roles.is_empty());

        // A narrower scope and one resource (RFC 8707).
        let response = client_credentials(&app, &orders, &[("scope", "orders:read"), ("resource", "billing-api")]).await;
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["scope"], "orders:read");
        let claims = segment(body["access_token"].as_str().unwrap(), 1);
        assert_eq!(claims["aud"], "billing-api");

        // client_secret_post works too.
        let response = app.post_form("/oauth2/token", &[("grant_type", "client_credentials"), ("client_id", &orders.id), ("client_secret", &orders.secret)]).await;
        assert_eq!(response.status(), 200);
    }

    async fn client_credentials_rejections(app: TestApp) {
        let admin = app.admin_token("ops2@example.com").await;
        let orders = register_client(&app, &admin, orders_service()).await;
        let web_app = register_client(&app, &admin, json!({
            "name": "web", "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": ["https://app.example.com/callback"],
        })).await;
        let spa = register_client(&app, &admin, json!({
            "name": "spa", "public": true, "grant_types": ["authorization_code"],
            "redirect_uris": ["https://spa.example.com/cb"],
        })).await;
        assert!(spa.secret.is_empty(), "a public client has no secret");

        let invalid_client = |response: reqwest::Response| async move {
            assert_eq!(response.headers()["www-authenticate"], "Basic realm=\"tessera\"");
            assert_oauth_error(response, 401, "invalid_client").await;
        };
        let unknown = Registered { id: "no-such-client".into(), secret: orders.secret.clone() };
        invalid_client(client_credentials(&app, &unknown, &[]).await).await;
        let wrong = Registered { id: orders.id.clone(), secret: "wrong-secret".into() };
        invalid_client(client_credentials(&app, &wrong, &[]).await).await;
        for header in ["Basic !!!notbase64", "Basic bm9jb2xvbg==", "Bearer abc", "Basic"] {
            let response = app.client.post(app.url("/oauth2/token")).header("authorization", header).form(&[("grant_type", "client_credentials")]).send().await.unwrap();
            invalid_client(response).await;
        }
        // A public client has no credentials to present.
        invalid_client(app.post_form("/oauth2/token", &[("grant_type", "client_credentials"), ("client_id", &spa.id)]).await).await;

        assert_oauth_error(client_credentials(&app, &web_app, &[]).await, 400, "unauthorized_client").await;
        assert_oauth_error(client_credentials(&app, &orders, &[("scope", "orders:read admin")]).await, 400, "invalid_scope").await;
        assert_oauth_error(client_credentials(&app, &orders, &[("resource", "payroll-api")]).await, 400, "invalid_target").await;
        assert_oauth_error(client_credentials(&app, &orders, &[("scope", "orders:read"), ("scope", "orders:write")]).await, 400, "invalid_request").await;
        let both_methods = app
            .client
            .post(app.url("/oauth2/token"))
            .header("authorization", basic(&orders.id, &orders.secret))
            .form(&[("grant_type", "client_credentials"), ("client_id", orders.id.as_str()), ("client_secret", orders.secret.as_str())])
            .send()
            .await
            .unwrap();
        assert_oauth_error(both_methods, 400, "invalid_request").await;
        let huge = "x".repeat(100 * 1024);
        assert_oauth_error(client_credentials(&app, &orders, &[("scope", &huge)]).await, 400, "invalid_request").await;
        assert_oauth_error(app.post_form("/oauth2/token", &[("grant_type", "client_credentials")]).await, 401, "invalid_client").await;

        // Registration itself refuses what can't work.
        for bad in [
            json!({"name": "x", "grant_types": ["password"]}),
            json!({"name": "x", "public": true, "grant_types": ["client_credentials"]}),
            json!({"name": "x", "grant_types": ["authorization_code"]}),
            json!({"name": "x", "grant_types": ["client_credentials"], "scopes": ["a b"]}),
            json!({"name": "", "grant_types": ["client_credentials"]}),
            // A host that would break out of the pages' CSP (`form-action`).
            json!({"name": "x", "grant_types": ["authorization_code"], "redirect_uris": ["https://x;script-src/cb"]}),
            json!({"name": "x", "grant_types": ["authorization_code"], "redirect_uris": ["https://a.example/cb"],
                   "post_logout_redirect_uris": ["https://x,y/out"]}),
        ] {
            let response = app.client.post(app.url("/v1/admin/clients")).bearer_auth(&admin).json(&bad).send().await.unwrap();
            assert_problem(response, 422, "invalid_client_metadata").await;
        }
    }

    async fn client_secrets_are_shown_once(app: TestApp) {
        let admin = app.admin_token("ops3@example.com").await;
        let orders = register_client(&app, &admin, orders_service()).await;
        let token: Value = client_credentials(&app, &orders, &[]).await.json().await.unwrap();
        let mut later = Vec::new();
        later.push(app.get_with_token("/v1/admin/clients", &admin).await.text().await.unwrap());
        later.push(app.get_with_token(&format!("/v1/admin/clients/{}", orders.id), &admin).await.text().await.unwrap());
        later.push(token.to_string());
        let introspection = app.client.post(app.url("/oauth2/introspect")).header("authorization", basic(&orders.id, &orders.secret))
            .form(&[("token", token["access_token"].as_str().unwrap())]).send().await.unwrap().text().await.unwrap();
        later.push(introspection);
        for text in &later {
            assert!(!text.contains(&orders.secret), "the secret leaked: {text}");
        }
        let listed: Value = serde_json::from_str(&later[0]).unwrap();
        assert_eq!(listed["clients"][0]["client_id"], orders.id.as_str());
        assert!(listed["clients"][0].get("client_secret").is_none());

        let response = app.client.delete(app.url(&format!("/v1/admin/clients/{}", orders.id))).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(response.status(), 204);
        assert_oauth_error(client_credentials(&app, &orders, &[]).await, 401, "invalid_client").await;
        let response = app.get_with_token(&format!("/v1/admin/clients/{}", orders.id), &admin).await;
        assert_problem(response, 404, "not_found").await;
    }

    async fn introspection_tells_active_from_inactive(app: TestApp) {
        let admin = app.admin_token("ops4@example.com").await;
        let orders = register_client(&app, &admin, orders_service()).await;
        // Users' first-party tokens are for Tessera's audience: a first-party
        // service registered for it may introspect them.
        let gateway = register_client(&app, &admin, json!({
            "name": "gateway", "grant_types": ["client_credentials"],
            "audiences": ["tessera"], "first_party": true,
        })).await;
        app.register("inspected@example.com").await;
        let user = app.tokens("inspected@example.com").await;
        let introspect_as = |client: &Registered, token: String| {
            app.client.post(app.url("/oauth2/introspect")).header("authorization", basic(&client.id, &client.secret)).form(&[("token", token)]).send()
        };
        let introspect = |token: String| introspect_as(&gateway, token);

        let body: Value = introspect(user.access.clone()).await.unwrap().json().await.unwrap();
        assert_eq!(body["active"], true);
        assert_eq!(body["sub"], segment(&user.access, 1)["sub"]);
        assert_eq!(body["client_id"], "tessera");
        assert_eq!(body["token_type"], "Bearer");
        assert!(body["exp"].is_i64() && body["sid"].is_string() && body["scope"].is_string());
        // Not to a client for other resources.
        let body: Value = introspect_as(&orders, user.access.clone()).await.unwrap().json().await.unwrap();
        assert_eq!(body, json!({"active": false}));
        // A refresh token is active only to its own client.
        let body: Value = introspect(user.refresh.clone()).await.unwrap().json().await.unwrap();
        assert_eq!(body, json!({"active": false}));

        let service: Value = client_credentials(&app, &orders, &[]).await.json().await.unwrap();
        let service_token = service["access_token"].as_str().unwrap().to_owned();
        let body: Value = introspect_as(&orders, service_token.clone()).await.unwrap().json().await.unwrap();
        assert_eq!(body["active"], true);
        assert_eq!(body["sub"], orders.id.as_str());
        let body: Value = introspect(service_token).await.unwrap().json().await.unwrap();
        assert_eq!(body, json!({"active": false}));

        for garbage in ["garbage", "a.b.c", "ü", &"x".repeat(5000)] {
            let body: Value = introspect(garbage.to_owned()).await.unwrap().json().await.unwrap();
            assert_eq!(body["active"], false, "{garbage:.20}");
        }

        // Spent and revoked tokens are inactive.
        let next = crate::helpers::Tokens::from_response(app.refresh(&user.refresh).await).await;
        let body: Value = introspect(user.refresh.clone()).await.unwrap().json().await.unwrap();
        assert_eq!(body, json!({"active": false}));
        let logout = app.client.post(app.url("/v1/auth/logout")).bearer_auth(&next.access).send().await.unwrap();
        assert_eq!(logout.status(), 204);
        for token in [next.access, next.refresh] {
            let body: Value = introspect(token).await.unwrap().json().await.unwrap();
            assert_eq!(body, json!({"active": false}));
        }

        assert_oauth_error(introspect(String::new()).await.unwrap(), 400, "invalid_request").await;
        // Introspection checks everything but the audience: every forgery
        // is still inactive.
        for (name, forged) in crate::forgery::forged_tokens(&user.access, &app.signing_key_pem()) {
            if forged.is_empty() || name == "wrong audience" {
                continue;
            }
            let body: Value = introspect(forged).await.unwrap().json().await.unwrap();
            assert_eq!(body, json!({"active": false}), "{name}");
        }

        // Only authenticated clients may ask.
        let response = app.post_form("/oauth2/introspect", &[("token", &user.access)]).await;
        assert_oauth_error(response, 401, "invalid_client").await;
    }
}
