use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{PASSWORD, assert_problem, unique_email};

both_backends! {
    async fn register_login_me(app: TestApp) {
        let response = app
            .post_json("/v1/auth/register", &json!({"email": "  Ada@Example.COM ", "password": PASSWORD, "name": "Ada"}))
            .await;
        assert_eq!(response.status(), 201);
        let user: Value = response.json().await.unwrap();
        assert_eq!(user["email"], "ada@example.com");
        assert_eq!(user["name"], "Ada");
        assert_eq!(user["roles"], json!([]));
        assert!(user["id"].as_str().is_some_and(|id| id.len() == 36));
        assert!(user["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(user.get("password_hash").is_none() && user.get("password").is_none());

        let response = app.login("ADA@example.com", PASSWORD).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let tokens: Value = response.json().await.unwrap();
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["expires_in"], 900);
        let access_token = tokens["access_token"].as_str().unwrap();

        let response = app.get_with_token("/v1/me", access_token).await;
        assert_eq!(response.status(), 200);
        let me: Value = response.json().await.unwrap();
        assert_eq!(me, user);
    }

    async fn duplicate_email_in_any_case_is_409(app: TestApp) {
        app.register("grace@example.com").await;
        for email in ["grace@example.com", "GRACE@Example.Com", " grace@example.com"] {
            let response = app
                .post_json("/v1/auth/register", &json!({"email": email, "password": "another good passphrase"}))
                .await;
            assert_problem(response, 409, "email_taken").await;
        }
        // The first password still works: nothing was overwritten.
        assert_eq!(app.login("grace@example.com", PASSWORD).await.status(), 200);
    }

    async fn bad_registrations_get_4xx_problems(app: TestApp) {
        let cases: Vec<(Value, u16, &str)> = vec![
            (json!({"email": "not-an-email", "password": PASSWORD}), 422, "invalid_email"),
            (json!({"email": "a@b", "password": PASSWORD}), 422, "invalid_email"),
            (json!({"email": unique_email(), "password": "short"}), 422, "invalid_password"),
            (json!({"email": unique_email(), "password": "x".repeat(1025)}), 422, "invalid_password"),
            (json!({"email": unique_email(), "password": "Password1"}), 422, "invalid_password"),
            (json!({"email": "sam@example.com", "password": "Sam@Example.com"}), 422, "invalid_password"),
            (json!({"email": unique_email()}), 422, "invalid_body"),
            (json!({"password": PASSWORD}), 422, "invalid_body"),
            (json!({"email": 42, "password": PASSWORD}), 422, "invalid_body"),
            (json!({"email": unique_email(), "password": ["a"]}), 422, "invalid_body"),
            (json!({"email": unique_email(), "password": PASSWORD, "roles": ["admin"]}), 422, "invalid_body"),
            // Control characters are refused at the edge, before the name rules.
            (json!({"email": unique_email(), "password": PASSWORD, "name": "a\u{0}b"}), 400, "invalid_text"),
            (json!([1, 2, 3]), 422, "invalid_body"),
        ];
        for (body, status, code) in cases {
            let response = app.post_json("/v1/auth/register", &body).await;
            assert_problem(response, status, code).await;
        }

        let raw = |body: String, content_type: &'static str| {
            app.client
                .post(app.url("/v1/auth/register"))
                .header("content-type", content_type)
                .body(body)
                .send()
        };
        assert_problem(raw("{\"email\": ".into(), "application/json").await.unwrap(), 400, "malformed_body").await;
        assert_problem(raw("".into(), "application/json").await.unwrap(), 400, "malformed_body").await;
        assert_problem(raw("\u{0}\u{1}".into(), "application/json").await.unwrap(), 400, "malformed_body").await;
        let huge = format!("{{\"email\": \"a@b.co\", \"password\": \"{}\"}}", "x".repeat(1024 * 1024));
        assert_problem(raw(huge, "application/json").await.unwrap(), 413, "body_too_large").await;
        let form = "email=a%40b.co&password=x".to_owned();
        assert_problem(raw(form, "application/x-www-form-urlencoded").await.unwrap(), 415, "unsupported_media_type").await;

        // None of it created an account.
        let response = app.login("sam@example.com", "Sam@Example.com").await;
        assert_problem(response, 401, "invalid_credentials").await;
    }

    async fn wrong_password_and_unknown_email_look_the_same(app: TestApp) {
        app.register("linus@example.com").await;
        let wrong_password = app.login("linus@example.com", "not the password at all").await;
        let unknown_email = app.login("nobody@example.com", "not the password at all").await;
        let malformed_email = app.login("nobody", "not the password at all").await;
        let mut bodies = Vec::new();
        for response in [wrong_password, unknown_email, malformed_email] {
            assert_eq!(response.status(), 401);
            assert!(response.headers().contains_key("www-authenticate"));
            bodies.push(response.bytes().await.unwrap());
        }
        assert_eq!(bodies[0], bodies[1]);
        assert_eq!(bodies[0], bodies[2]);
        let body: Value = serde_json::from_slice(&bodies[0]).unwrap();
        assert_eq!(body["code"], "invalid_credentials");
    }

    async fn me_needs_a_bearer_token(app: TestApp) {
        let response = app.get("/v1/me").await;
        assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"tessera\"");
        assert_problem(response, 401, "missing_token").await;
        let response = app
            .client
            .get(app.url("/v1/me"))
            .header("authorization", "Basic dXNlcjpwYXNz")
            .send()
            .await
            .unwrap();
        assert_problem(response, 401, "missing_token").await;
    }

    async fn unknown_routes_get_problem_404(app: TestApp) {
        assert_problem(app.get("/v1/nothing-here").await, 404, "not_found").await;
    }

    async fn health_and_readiness(app: TestApp) {
        let response = app.get("/healthz").await;
        assert_eq!(response.status(), 200);
        let response = app.get("/readyz").await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"status": "ready", "database": "ok", "keys": "ok"}));
    }

    async fn look_alike_addresses_are_the_same_account(app: TestApp) {
        app.admin_token("admin@example.com").await;
        for homograph in [
            // Fullwidth A; fullwidth letters in the domain; all fullwidth,
            // with a fullwidth @ and full stop; an ideographic full stop.
            "\u{FF21}DMIN@example.com",
            "admin@\u{FF45}\u{FF58}\u{FF41}\u{FF4D}\u{FF50}\u{FF4C}\u{FF45}.com",
            "\u{FF41}\u{FF44}\u{FF4D}\u{FF49}\u{FF4E}\u{FF20}\u{FF45}\u{FF58}\u{FF41}\u{FF4D}\u{FF50}\u{FF4C}\u{FF45}\u{FF0E}\u{FF43}\u{FF4F}\u{FF4D}",
            "admin@example\u{3002}com",
        ] {
            let response = app
                .post_json("/v1/auth/register", &json!({"email": homograph, "password": "another good passphrase"}))
                .await;
            assert_problem(response, 409, "email_taken").await;
            // Signing in with the look-alike reaches the administrator's
            // account (with its password), not a new one.
            assert_eq!(app.login(homograph, PASSWORD).await.status(), 200, "{homograph}");
            assert_eq!(app.login(homograph, "another good passphrase").await.status(), 401, "{homograph}");
        }
        // Nothing new was created.
        let admin = app.admin_token("root@example.com").await;
        let users: Value = app.get_with_token("/v1/admin/users", &admin).await.json().await.unwrap();
        let emails: Vec<&str> = users["users"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect();
        assert_eq!(emails.len(), 2, "{emails:?}");
        assert!(emails.contains(&"admin@example.com"), "{emails:?}");
    }

    async fn idn_addresses_register_in_their_ascii_form(app: TestApp) {
        let user = app.register("J\u{F6}rg@B\u{FC}cher.example").await;
        assert_eq!(user["email"], "j\u{F6}rg@xn--bcher-kva.example");
        // Every spelling of the domain is the same account.
        for spelling in ["j\u{F6}rg@xn--bcher-kva.example", "JO\u{0308}RG@XN--BCHER-KVA.example", "j\u{F6}rg@b\u{FC}cher.example"] {
            let response = app
                .post_json("/v1/auth/register", &json!({"email": spelling, "password": "another good passphrase"}))
                .await;
            assert_problem(response, 409, "email_taken").await;
            let response = app.login(spelling, PASSWORD).await;
            assert_eq!(response.status(), 200, "{spelling}");
        }
        let token = app.tokens("j\u{F6}rg@B\u{DC}CHER.example").await.access;
        let me: Value = app.get_with_token("/v1/me", &token).await.json().await.unwrap();
        assert_eq!(me["email"], "j\u{F6}rg@xn--bcher-kva.example");
        // A domain that is not valid IDNA is refused, not stored as sent.
        let response = app
            .post_json("/v1/auth/register", &json!({"email": "a@xn--a.example", "password": PASSWORD}))
            .await;
        assert_problem(response, 422, "invalid_email").await;
    }

    async fn restart_keeps_users_and_keys(app: TestApp) {
        let token = app.access_token("hopper@example.com").await;
        app.restart().await;
        let response = app.get_with_token("/v1/me", &token).await;
        assert_eq!(response.status(), 200, "a token issued before the restart still verifies");
        assert_eq!(app.login("hopper@example.com", PASSWORD).await.status(), 200);
    }
}

both_backends! {
    async fn addresses_stored_before_normalisation_are_rewritten_once(app: TestApp) {
        use diesel::prelude::*;
        use tessera::accounts::{Renormalised, normalise_stored_addresses};
        use tessera::db::schema::users;

        // Accounts as the previous version stored them: lower-cased only.
        app.register("jörg@bücher.example").await;
        app.register("ada@example.com").await;
        app.register("plain@example.com").await;
        let db = app.db();
        let set = |from: &'static str, to: &'static str| {
            let db = db.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    db.run_blocking(|conn| {
                        Ok(diesel::update(users::table.filter(users::email.eq(from)))
                            .set(users::email.eq(to))
                            .execute(conn)?)
                    })
                })
                .await
                .unwrap()
                .unwrap()
            }
        };
        assert_eq!(set("jörg@xn--bcher-kva.example", "jörg@bücher.example").await, 1);
        // A look-alike of an existing account, registered before: kept apart.
        app.register("ada2@example.com").await;
        assert_eq!(set("ada2@example.com", "ａda@example.com").await, 1);
        let response = app.login("jörg@bücher.example", PASSWORD).await;
        assert_eq!(response.status(), 401, "the old form can't be found");

        let db = app.db();
        let done = tokio::task::spawn_blocking(move || db.run_blocking(normalise_stored_addresses))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done, Renormalised { rewritten: 1, left: 1 });
        let response = app.login("JÖRG@bücher.example", PASSWORD).await;
        assert_eq!(response.status(), 200);
        let ada: Value = app.login("ada@example.com", PASSWORD).await.json().await.unwrap();
        let me: Value = app.get_with_token("/v1/me", ada["access_token"].as_str().unwrap()).await.json().await.unwrap();
        assert_eq!(me["email"], "ada@example.com");
        // Run again: nothing left to do but the one it can't merge.
        let db = app.db();
        let again = tokio::task::spawn_blocking(move || db.run_blocking(normalise_stored_addresses))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again, Renormalised { rewritten: 0, left: 1 });
    }
}
