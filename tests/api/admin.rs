//! Administration: roles, disabling, deleting, pagination, the last admin.

use serde_json::{Value, json};

use crate::both_backends;
use crate::forgery::segment;
use crate::helpers::{PASSWORD, TestApp, Tokens, assert_oauth_error, assert_problem, unique_email};

async fn admin_request(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// The events `GET /v1/admin/audit?{query}` lists.
pub async fn audit_events(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let response = app
        .client
        .get(app.url(&format!("/v1/admin/audit?{query}")))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    page["events"].as_array().expect("events").clone()
}

async fn user_id(app: &TestApp, email: &str) -> String {
    let tokens = app.tokens(email).await;
    segment(&tokens.access, 1)["sub"]
        .as_str()
        .unwrap()
        .to_owned()
}

both_backends! {
    async fn only_admins_administer(app: TestApp) {
        let user = app.access_token("plain@example.com").await;
        for path in ["/v1/admin/users", "/v1/admin/clients"] {
            assert_problem(app.get(path).await, 401, "missing_token").await;
            // Not an administrator: no admin scope in the token.
            assert_problem(app.get_with_token(path, &user).await, 403, "insufficient_scope").await;
        }
        let id = segment(&user, 1)["sub"].as_str().unwrap().to_owned();
        let response = admin_request(&app, reqwest::Method::PATCH, &format!("/v1/admin/users/{id}"), &user, Some(json!({"roles": ["admin"]}))).await;
        assert_problem(response, 403, "insufficient_scope").await;
    }

    async fn roles_take_effect_at_the_next_token(app: TestApp) {
        let admin = app.admin_token("root@example.com").await;
        app.register("editor@example.com").await;
        let before = app.tokens("editor@example.com").await;
        assert_eq!(segment(&before.access, 1)["roles"], json!([]));
        let id = segment(&before.access, 1)["sub"].as_str().unwrap().to_owned();

        let response = admin_request(&app, reqwest::Method::PATCH, &format!("/v1/admin/users/{id}"), &admin, Some(json!({"roles": ["editor", "billing:read"]}))).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["roles"], json!(["editor", "billing:read"]));
        assert_eq!(body["disabled"], false);

        // A demoted admin's token, still carrying the admin role, is refused
        // at once: admin rights are checked against the database.
        let second_admin = app.admin_token("deputy@example.com").await;
        let deputy_id = segment(&second_admin, 1)["sub"].as_str().unwrap().to_owned();
        let response = admin_request(&app, reqwest::Method::PATCH, &format!("/v1/admin/users/{deputy_id}"), &admin, Some(json!({"roles": []}))).await;
        assert_eq!(response.status(), 200);
        assert_eq!(segment(&second_admin, 1)["roles"], json!(["admin"]));
        let response = admin_request(&app, reqwest::Method::PATCH, &format!("/v1/admin/users/{deputy_id}"), &second_admin, Some(json!({"roles": ["admin"]}))).await;
        assert_problem(response, 403, "forbidden").await;

        let after = Tokens::from_response(app.refresh(&before.refresh).await).await;
        assert_eq!(segment(&after.access, 1)["roles"], json!(["editor", "billing:read"]));
        let me: Value = app.get_with_token("/v1/me", &after.access).await.json().await.unwrap();
        assert_eq!(me["roles"], json!(["editor", "billing:read"]));

        for bad in [json!({"roles": ["two words"]}), json!({"roles": [""]}), json!({"roles": "admin"}), json!({"rolez": []})] {
            let response = admin_request(&app, reqwest::Method::PATCH, &format!("/v1/admin/users/{id}"), &admin, Some(bad.clone())).await;
            assert!(response.status() == 422 || response.status() == 400, "{bad}: {}", response.status());
        }
    }

    async fn the_last_admin_cannot_be_removed(app: TestApp) {
        let admin = app.admin_token("only-admin@example.com").await;
        let id = segment(&admin, 1)["sub"].as_str().unwrap().to_owned();
        let path = format!("/v1/admin/users/{id}");
        for change in [json!({"roles": []}), json!({"disabled": true}), json!({"roles": ["editor"], "disabled": false})] {
            let response = admin_request(&app, reqwest::Method::PATCH, &path, &admin, Some(change)).await;
            assert_problem(response, 409, "last_admin").await;
        }
        assert_problem(admin_request(&app, reqwest::Method::DELETE, &path, &admin, None).await, 409, "last_admin").await;

        // A look-alike role is not the admin role (SQLite's LIKE ignores case).
        let lookalike = app.admin_token("lookalike@example.com").await;
        let lookalike_id = segment(&lookalike, 1)["sub"].as_str().unwrap().to_owned();
        let response = admin_request(&app, reqwest::Method::PATCH, &format!("/v1/admin/users/{lookalike_id}"), &admin, Some(json!({"roles": ["Admin"]}))).await;
        assert_eq!(response.status(), 200);
        let response = admin_request(&app, reqwest::Method::PATCH, &path, &admin, Some(json!({"roles": []}))).await;
        assert_problem(response, 409, "last_admin").await;

        // With a second admin, the first may step down.
        let second = app.admin_token("second-admin@example.com").await;
        let response = admin_request(&app, reqwest::Method::PATCH, &path, &second, Some(json!({"roles": []}))).await;
        assert_eq!(response.status(), 200);
        let second_id = segment(&second, 1)["sub"].as_str().unwrap().to_owned();
        let response = admin_request(&app, reqwest::Method::DELETE, &format!("/v1/admin/users/{second_id}"), &second, None).await;
        assert_problem(response, 409, "last_admin").await;
    }

    async fn disabling_ends_sessions_and_blocks_login(app: TestApp) {
        let admin = app.admin_token("boss@example.com").await;
        app.register("worker@example.com").await;
        let desk = app.tokens("worker@example.com").await;
        let phone = app.tokens("worker@example.com").await;
        let id = segment(&desk.access, 1)["sub"].as_str().unwrap().to_owned();
        let path = format!("/v1/admin/users/{id}");

        let response = admin_request(&app, reqwest::Method::PATCH, &path, &admin, Some(json!({"disabled": true}))).await;
        assert_eq!(response.status(), 200);
        for device in [&desk, &phone] {
            assert_eq!(app.get_with_token("/v1/me", &device.access).await.status(), 401);
            assert_oauth_error(app.refresh(&device.refresh).await, 400, "invalid_grant").await;
        }
        assert_problem(app.login("worker@example.com", PASSWORD).await, 403, "account_disabled").await;
        // Wrong password on a disabled account: still the generic 401.
        assert_problem(app.login("worker@example.com", "wrong password!").await, 401, "invalid_credentials").await;

        let response = admin_request(&app, reqwest::Method::PATCH, &path, &admin, Some(json!({"disabled": false}))).await;
        assert_eq!(response.status(), 200);
        assert_eq!(app.login("worker@example.com", PASSWORD).await.status(), 200);
    }

    async fn deleting_a_user_ends_everything(app: TestApp) {
        let admin = app.admin_token("deleter@example.com").await;
        app.register("leaver@example.com").await;
        let tokens = app.tokens("leaver@example.com").await;
        let id = user_id(&app, "leaver@example.com").await;
        let path = format!("/v1/admin/users/{id}");
        assert_eq!(admin_request(&app, reqwest::Method::GET, &path, &admin, None).await.status(), 200);
        assert_eq!(admin_request(&app, reqwest::Method::DELETE, &path, &admin, None).await.status(), 204);
        assert_eq!(app.get_with_token("/v1/me", &tokens.access).await.status(), 401);
        assert_oauth_error(app.refresh(&tokens.refresh).await, 400, "invalid_grant").await;
        assert_eq!(app.login("leaver@example.com", PASSWORD).await.status(), 401);
        for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
            assert_problem(admin_request(&app, method, &path, &admin, None).await, 404, "not_found").await;
        }
        let response = admin_request(&app, reqwest::Method::PATCH, &path, &admin, Some(json!({"disabled": true}))).await;
        assert_problem(response, 404, "not_found").await;
    }

    async fn administrators_read_the_audit_trail(app: TestApp) {
        let admin = app.admin_token(&unique_email()).await;
        let email = unique_email();
        let user = app.register(&email).await;
        let user_id = user["id"].as_str().unwrap().to_owned();
        let tokens = app.tokens(&email).await;
        let mut refresh = tokens.refresh.clone();
        for _ in 0..3 {
            let response = app.refresh(&refresh).await;
            assert_eq!(response.status(), 200);
            refresh = Tokens::from_response(response).await.refresh;
        }
        let audit = |query: String| {
            let request = app.client.get(app.url(&format!("/v1/admin/audit?{query}"))).bearer_auth(&admin);
            async move { request.send().await.unwrap() }
        };
        let page: Value = audit(format!("user={user_id}&kind=refresh&limit=2")).await.json().await.unwrap();
        let events = page["events"].as_array().unwrap();
        assert_eq!(events.len(), 2, "{page}");
        assert!(events.iter().all(|e| e["user_id"] == user_id.as_str() && e["action"] == "refresh"));
        assert!(events[0]["id"].as_str() > events[1]["id"].as_str(), "newest first");
        let cursor = page["next_cursor"].as_str().expect("more pages").to_owned();
        let rest: Value = audit(format!("user={user_id}&kind=refresh&cursor={cursor}")).await.json().await.unwrap();
        let rest = rest["events"].as_array().unwrap();
        assert!(!rest.is_empty());
        assert!(rest.iter().all(|e| e["id"].as_str() < events[1]["id"].as_str()));
        // The login that started the session is there too, with where it
        // came from.
        let logins: Value = audit(format!("user={user_id}&kind=login")).await.json().await.unwrap();
        let logins = logins["events"].as_array().unwrap();
        assert_eq!(logins.len(), 1, "{logins:?}");
        assert_eq!(logins[0]["outcome"], "success");
        assert_eq!(logins[0]["client_id"], app.settings.login.client_id.as_str());
        assert_eq!(logins[0]["ip"], "127.0.0.1");
        assert!(logins[0]["session_id"].is_string());
        // No secrets in the trail.
        assert!(!page.to_string().contains(&tokens.refresh));
        assert_problem(audit("cursor=%%%".into()).await, 400, "invalid_cursor").await;
        let user_token = app.access_token(&unique_email()).await;
        let response = app.get_with_token("/v1/admin/audit", &user_token).await;
        assert_eq!(response.status(), 403);
    }

    async fn pagination_sees_every_user_once_while_users_are_added(app: TestApp) {
        let admin = app.admin_token("pager@example.com").await;
        for i in 0..12 {
            app.register(&format!("page-{i:02}@example.com")).await;
        }
        let mut seen: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut added = 0;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/admin/users?limit=5&cursor={c}"),
                None => "/v1/admin/users?limit=5".to_owned(),
            };
            let page: Value = admin_request(&app, reqwest::Method::GET, &path, &admin, None).await.json().await.unwrap();
            let users = page["users"].as_array().unwrap();
            assert!(users.len() <= 5);
            seen.extend(users.iter().map(|u| u["email"].as_str().unwrap().to_owned()));
            // Users keep arriving while the walk goes on.
            if added < 3 {
                app.register(&unique_email()).await;
                added += 1;
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "no user twice: {seen:?}");
        for i in 0..12 {
            assert!(seen.contains(&format!("page-{i:02}@example.com")));
        }
        assert!(seen.contains(&"pager@example.com".to_owned()));

        let filtered: Value = admin_request(&app, reqwest::Method::GET, "/v1/admin/users?email=PAGE-0&limit=200", &admin, None).await.json().await.unwrap();
        assert_eq!(filtered["users"].as_array().unwrap().len(), 10);
        // A fullwidth spelling of the prefix (ＰＡＧＥ-0) is the same prefix.
        let fullwidth: Value = admin_request(&app, reqwest::Method::GET, "/v1/admin/users?email=%EF%BC%B0%EF%BC%A1%EF%BC%A7%EF%BC%A5-0&limit=200", &admin, None).await.json().await.unwrap();
        assert_eq!(fullwidth["users"].as_array().unwrap().len(), 10);
        let wildcard: Value = admin_request(&app, reqwest::Method::GET, "/v1/admin/users?email=%25", &admin, None).await.json().await.unwrap();
        assert_eq!(wildcard["users"].as_array().unwrap().len(), 0, "% is a character, not a wildcard");

        assert_problem(admin_request(&app, reqwest::Method::GET, "/v1/admin/users?cursor=!!!", &admin, None).await, 400, "invalid_cursor").await;
        assert_problem(admin_request(&app, reqwest::Method::GET, "/v1/admin/users?limit=lots", &admin, None).await, 400, "invalid_query").await;
    }

    async fn a_registration_is_audited_with_its_user_and_address(app: TestApp) {
        let admin = app.admin_token(&unique_email()).await;
        let email = unique_email();
        // A client that claims another address, from a peer that is no
        // trusted proxy: the peer's address is recorded.
        let response = app.client.post(app.url("/v1/auth/register"))
            .header("x-forwarded-for", "203.0.113.9")
            .json(&json!({"email": email, "password": PASSWORD}))
            .send().await.unwrap();
        assert_eq!(response.status(), 201);
        let user: Value = response.json().await.unwrap();
        let id = user["id"].as_str().unwrap();
        let events = audit_events(&app, &admin, &format!("user={id}&kind=register")).await;
        assert_eq!(events.len(), 1, "{events:?}");
        let event = &events[0];
        assert_eq!(event["outcome"], "success");
        assert_eq!(event["ip"], "127.0.0.1");
        assert_eq!(event["actor_id"], Value::Null, "the user registered themselves");
        assert!(!event.to_string().contains(PASSWORD));
        // The same email again is refused, and records no registration.
        let again = app.post_json("/v1/auth/register", &json!({"email": email, "password": PASSWORD})).await;
        assert_problem(again, 409, "email_taken").await;
        let registrations = audit_events(&app, &admin, "kind=register").await;
        assert_eq!(registrations.len(), 1, "{registrations:?}");
    }

    async fn a_registration_through_a_trusted_proxy_records_the_forwarded_address(app: TestApp, settings = |s| s.throttle.trusted_proxies = vec!["127.0.0.1".into()]) {
        let admin = app.admin_token(&unique_email()).await;
        let response = app.client.post(app.url("/v1/auth/register"))
            .header("x-forwarded-for", "203.0.113.9")
            .json(&json!({"email": unique_email(), "password": PASSWORD}))
            .send().await.unwrap();
        assert_eq!(response.status(), 201);
        let user: Value = response.json().await.unwrap();
        let id = user["id"].as_str().unwrap();
        let events = audit_events(&app, &admin, &format!("user={id}&kind=register")).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["ip"], "203.0.113.9");
        // An administrator behind the proxy: their address, not the proxy's.
        let response = app.client.patch(app.url(&format!("/v1/admin/users/{id}")))
            .bearer_auth(&admin)
            .header("x-forwarded-for", "198.51.100.7")
            .json(&json!({"roles": ["editor"]}))
            .send().await.unwrap();
        assert_eq!(response.status(), 200);
        let events = audit_events(&app, &admin, &format!("user={id}&kind=user_updated")).await;
        assert_eq!(events[0]["ip"], "198.51.100.7", "{events:?}");
    }

    async fn every_admin_action_records_the_admins_address(app: TestApp) {
        let admin = app.admin_token(&unique_email()).await;
        let admin_id = segment(&admin, 1)["sub"].as_str().unwrap().to_owned();
        let user = app.register(&unique_email()).await;
        let id = user["id"].as_str().unwrap().to_owned();
        let path = format!("/v1/admin/users/{id}");

        let response = admin_request(&app, reqwest::Method::PATCH, &path, &admin, Some(json!({"roles": ["editor"], "disabled": true}))).await;
        assert_eq!(response.status(), 200);
        let response = admin_request(&app, reqwest::Method::DELETE, &path, &admin, None).await;
        assert_eq!(response.status(), 204);
        let registration = json!({"name": "audited", "grant_types": ["client_credentials"], "scopes": ["reports:read"]});
        let response = admin_request(&app, reqwest::Method::POST, "/v1/admin/clients", &admin, Some(registration)).await;
        assert_eq!(response.status(), 201);
        let client: Value = response.json().await.unwrap();
        let client_id = client["client_id"].as_str().unwrap().to_owned();
        let response = admin_request(&app, reqwest::Method::DELETE, &format!("/v1/admin/clients/{client_id}"), &admin, None).await;
        assert_eq!(response.status(), 204);

        for (kind, about, value) in [
            ("user_updated", "user_id", id.as_str()),
            ("user_deleted", "user_id", id.as_str()),
            ("client_created", "client_id", client_id.as_str()),
            ("client_deleted", "client_id", client_id.as_str()),
        ] {
            let events = audit_events(&app, &admin, &format!("kind={kind}")).await;
            assert_eq!(events.len(), 1, "{kind}: {events:?}");
            let event = &events[0];
            assert_eq!(event[about], value, "{kind}: {event}");
            assert_eq!(event["actor_id"], admin_id.as_str(), "{kind}: {event}");
            assert_eq!(event["ip"], "127.0.0.1", "{kind}: {event}");
            assert_eq!(event["outcome"], "success", "{kind}: {event}");
        }
        // A refused change records nothing: the last admin stays.
        let response = admin_request(&app, reqwest::Method::DELETE, &format!("/v1/admin/users/{admin_id}"), &admin, None).await;
        assert_problem(response, 409, "last_admin").await;
        assert!(audit_events(&app, &admin, &format!("user={admin_id}&kind=user_deleted")).await.is_empty());
    }

    async fn a_deleted_users_sessions_end_audited_and_a_refused_change_ends_none(app: TestApp) {
        let admin = app.admin_token(&unique_email()).await;
        let admin_id = segment(&admin, 1)["sub"].as_str().unwrap().to_owned();
        let own = format!("/v1/admin/users/{admin_id}");

        // Refused (the last admin): the admin's own session lives on, and
        // no session ending is recorded, for a delete or a disable alike.
        let response = admin_request(&app, reqwest::Method::DELETE, &own, &admin, None).await;
        assert_problem(response, 409, "last_admin").await;
        let response = admin_request(&app, reqwest::Method::PATCH, &own, &admin, Some(json!({"disabled": true}))).await;
        assert_problem(response, 409, "last_admin").await;
        assert_eq!(app.get_with_token("/v1/me/sessions", &admin).await.status(), 200);
        for kind in ["account_deleted", "account_disabled"] {
            assert!(audit_events(&app, &admin, &format!("user={admin_id}&kind={kind}")).await.is_empty(), "{kind}");
        }

        // A user with two live sessions, deleted: the ending is in the trail.
        let email = unique_email();
        app.register(&email).await;
        let first = app.tokens(&email).await;
        let _second = app.tokens(&email).await;
        let id = segment(&first.access, 1)["sub"].as_str().unwrap().to_owned();
        let response = admin_request(&app, reqwest::Method::DELETE, &format!("/v1/admin/users/{id}"), &admin, None).await;
        assert_eq!(response.status(), 204);
        let ended = audit_events(&app, &admin, &format!("user={id}&kind=account_deleted")).await;
        assert_eq!(ended.len(), 1, "{ended:?}");
        assert_eq!(ended[0]["outcome"], "success", "{ended:?}");
        assert_eq!(ended[0]["ip"], "127.0.0.1", "{ended:?}");
        assert_oauth_error(app.refresh(&first.refresh).await, 400, "invalid_grant").await;
        // Its id is gone for good: a second delete finds nothing.
        let response = admin_request(&app, reqwest::Method::DELETE, &format!("/v1/admin/users/{id}"), &admin, None).await;
        assert_problem(response, 404, "not_found").await;
    }
}
