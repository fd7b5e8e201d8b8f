//! Sessions and refresh tokens: rotation, reuse detection, logout,
//! revocation, expiry.

use std::time::Duration;

use diesel::prelude::*;
use serde_json::{Value, json};
use tessera::db::schema::{audit_events, refresh_tokens, sessions};

use crate::both_backends;
use crate::helpers::{PASSWORD, TestApp, Tokens, assert_oauth_error, assert_problem};

/// Audit events with this action and outcome.
async fn audited(app: &TestApp, action: &'static str, outcome: &'static str) -> i64 {
    let db = app.db();
    tokio::task::spawn_blocking(move || {
        db.run_blocking(|conn| {
            Ok(audit_events::table
                .filter(audit_events::action.eq(action))
                .filter(audit_events::outcome.eq(outcome))
                .count()
                .get_result::<i64>(conn)?)
        })
        .unwrap()
    })
    .await
    .unwrap()
}

async fn stored_rows(app: &TestApp) -> (i64, i64) {
    let db = app.db();
    tokio::task::spawn_blocking(move || {
        db.run_blocking(|conn| {
            let sessions = sessions::table.count().get_result::<i64>(conn)?;
            let tokens = refresh_tokens::table.count().get_result::<i64>(conn)?;
            Ok((sessions, tokens))
        })
        .unwrap()
    })
    .await
    .unwrap()
}

async fn me_status(app: &TestApp, access: &str) -> u16 {
    app.get_with_token("/v1/me", access).await.status().as_u16()
}

async fn logged_in(app: &TestApp, email: &str) -> Tokens {
    app.register(email).await;
    app.tokens(email).await
}

both_backends! {
    async fn refresh_rotates_and_reuse_revokes_the_session(app: TestApp, settings = |s| s.sessions.refresh_reuse_grace_seconds = 0) {
        let first = logged_in(&app, "rotor@example.com").await;
        assert_eq!(first.refresh.len(), 43, "256 bits, base64url");

        let second = Tokens::from_response(app.refresh(&first.refresh).await).await;
        assert_ne!(second.refresh, first.refresh, "a new refresh token");
        assert_ne!(second.access, first.access);
        assert_eq!(me_status(&app, &second.access).await, 200);
        let third = Tokens::from_response(app.refresh(&second.refresh).await).await;

        // The spent token again: theft. The whole session goes.
        assert_oauth_error(app.refresh(&first.refresh).await, 400, "invalid_grant").await;
        assert_oauth_error(app.refresh(&third.refresh).await, 400, "invalid_grant").await;
        assert_eq!(me_status(&app, &third.access).await, 401, "the session's access tokens are dead on Tessera");
        assert_eq!(audited(&app, "refresh", "success").await, 2);
        assert!(audited(&app, "refresh", "failure").await >= 2);
    }

    async fn concurrent_refreshes_in_the_grace_window_share_one_chain(app: TestApp, settings = |s| {
        s.sessions.refresh_reuse_grace_seconds = 2;
        s.sessions.refresh_retry_window_seconds = 2;
    }) {
        let tokens = logged_in(&app, "tabs@example.com").await;
        let refreshes = (0..8).map(|_| app.refresh(&tokens.refresh));
        let mut successors = Vec::new();
        for response in futures_util::future::join_all(refreshes).await {
            successors.push(Tokens::from_response(response).await.refresh);
        }
        successors.dedup();
        assert_eq!(successors.len(), 1, "every tab got the same new refresh token: one live chain");
        let (sessions, tokens_stored) = stored_rows(&app).await;
        assert_eq!((sessions, tokens_stored), (1, 2), "one session, the spent token and its one successor");

        // Outside the window, the spent token is theft again.
        app.advance_clock(Duration::from_millis(2500));
        assert_oauth_error(app.refresh(&tokens.refresh).await, 400, "invalid_grant").await;
        assert_oauth_error(app.refresh(&successors[0]).await, 400, "invalid_grant").await;
    }

    async fn a_retried_refresh_gets_the_same_successor_while_it_is_unused(app: TestApp, settings = |s| s.sessions.refresh_reuse_grace_seconds = 0) {
        let first = logged_in(&app, "retry@example.com").await;
        let second = Tokens::from_response(app.refresh(&first.refresh).await).await;
        // The answer was lost; the client retries with the token it holds:
        // the same successor, and the session lives on.
        let retried = Tokens::from_response(app.refresh(&first.refresh).await).await;
        assert_eq!(retried.refresh, second.refresh);
        assert_eq!(me_status(&app, &retried.access).await, 200);
        let (sessions, tokens_stored) = stored_rows(&app).await;
        assert_eq!((sessions, tokens_stored), (1, 2), "no second successor");
        // Once the successor has been used, the spent token is theft.
        let third = Tokens::from_response(app.refresh(&second.refresh).await).await;
        assert_oauth_error(app.refresh(&first.refresh).await, 400, "invalid_grant").await;
        assert_eq!(me_status(&app, &third.access).await, 401, "the session is revoked");
        assert_oauth_error(app.refresh(&third.refresh).await, 400, "invalid_grant").await;
    }

    async fn a_retry_after_the_window_is_theft(app: TestApp, settings = |s| {
        s.sessions.refresh_reuse_grace_seconds = 0;
        s.sessions.refresh_retry_window_seconds = 1;
    }) {
        let first = logged_in(&app, "late@example.com").await;
        let second = Tokens::from_response(app.refresh(&first.refresh).await).await;
        app.advance_clock(Duration::from_millis(1500));
        assert_oauth_error(app.refresh(&first.refresh).await, 400, "invalid_grant").await;
        assert_eq!(me_status(&app, &second.access).await, 401, "the session is revoked");
    }

    async fn a_refresh_that_failed_after_its_commit_is_retried_without_a_logout(app: TestApp, settings = |s| s.sessions.refresh_reuse_grace_seconds = 0) {
        let first = logged_in(&app, "outage@example.com").await;
        // No key can sign: the rotation commits, then the answer fails (503),
        // as when anything after the commit fails.
        let header: Value = {
            use base64::Engine;
            let part = first.access.split('.').next().unwrap();
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
        };
        let kid = header["kid"].as_str().unwrap();
        for path in app.keys.paths_of(kid) {
            tessera::keys::files::revoke(&path, chrono::Utc::now()).unwrap();
        }
        app.keys.reload().unwrap();
        let response = app.refresh(&first.refresh).await;
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        let (_, tokens_stored) = stored_rows(&app).await;
        assert_eq!(tokens_stored, 2, "the rotation committed: the token is spent");
        // Signing works again; the client retries with the same token.
        tessera::keys::files::create_key(&app.settings.keys.dir, 2048, chrono::Utc::now(), true).unwrap();
        app.keys.reload().unwrap();
        let retried = Tokens::from_response(app.refresh(&first.refresh).await).await;
        assert_eq!(me_status(&app, &retried.access).await, 200, "not logged out");
        let next = Tokens::from_response(app.refresh(&retried.refresh).await).await;
        assert_eq!(me_status(&app, &next.access).await, 200);
    }

    async fn logout_ends_one_session_or_all(app: TestApp) {
        let phone = logged_in(&app, "two-devices@example.com").await;
        let laptop = app.tokens("two-devices@example.com").await;
        let tablet = app.tokens("two-devices@example.com").await;

        // A body that is there must be right: no silent "just this one".
        for (bad, status, code) in [
            ("{\"all\": \"yes\"}", 422, "invalid_body"),
            ("{\"everything\": true}", 422, "invalid_body"),
            ("[true]", 422, "invalid_body"),
            ("{not json", 400, "malformed_body"),
        ] {
            let response = app.client.post(app.url("/v1/auth/logout")).bearer_auth(&phone.access).body(bad).send().await.unwrap();
            assert_problem(response, status, code).await;
        }
        assert_eq!(me_status(&app, &phone.access).await, 200, "a refused logout ends nothing");

        let response = app.client.post(app.url("/v1/auth/logout")).bearer_auth(&phone.access).send().await.unwrap();
        assert_eq!(response.status(), 204);
        assert_eq!(me_status(&app, &phone.access).await, 401);
        assert_oauth_error(app.refresh(&phone.refresh).await, 400, "invalid_grant").await;
        assert_eq!(me_status(&app, &laptop.access).await, 200, "other sessions live on");

        let response = app
            .client
            .post(app.url("/v1/auth/logout"))
            .bearer_auth(&laptop.access)
            .json(&json!({"all": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        for device in [&laptop, &tablet] {
            assert_eq!(me_status(&app, &device.access).await, 401);
            assert_oauth_error(app.refresh(&device.refresh).await, 400, "invalid_grant").await;
        }
        assert_eq!(audited(&app, "logout", "success").await, 1);
        assert_eq!(audited(&app, "logout_all", "success").await, 1);
    }

    async fn sessions_are_listed_and_ended_by_their_owner_only(app: TestApp) {
        let first = logged_in(&app, "lister@example.com").await;
        let second = app.tokens("lister@example.com").await;
        let stranger = logged_in(&app, "stranger@example.com").await;

        let response = app
            .client
            .get(app.url("/v1/me/sessions"))
            .bearer_auth(&first.access)
            .header("user-agent", "test-agent/1.0")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(!text.contains(&first.refresh) && !text.contains(&second.refresh), "no token material");
        let body: Value = serde_json::from_str(&text).unwrap();
        let listed = body["sessions"].as_array().unwrap();
        assert_eq!(listed.len(), 2);
        for session in listed {
            for field in ["id", "created_at", "last_used_at", "expires_at", "ip"] {
                assert!(session[field].is_string(), "{field} in {session}");
            }
        }
        let current: Vec<&Value> = listed.iter().filter(|s| s["current"] == true).collect();
        assert_eq!(current.len(), 1);
        let other_id = listed.iter().find(|s| s["current"] == false).unwrap()["id"].as_str().unwrap().to_owned();

        // Someone else can't end it, and learns nothing: 404.
        let response = app.client.delete(app.url(&format!("/v1/me/sessions/{other_id}"))).bearer_auth(&stranger.access).send().await.unwrap();
        assert_problem(response, 404, "not_found").await;
        assert_eq!(me_status(&app, &second.access).await, 200);

        let response = app.client.delete(app.url(&format!("/v1/me/sessions/{other_id}"))).bearer_auth(&first.access).send().await.unwrap();
        assert_eq!(response.status(), 204);
        assert_eq!(me_status(&app, &second.access).await, 401);
        assert_oauth_error(app.refresh(&second.refresh).await, 400, "invalid_grant").await;
        let body: Value = app.get_with_token("/v1/me/sessions", &first.access).await.json().await.unwrap();
        assert_eq!(body["sessions"].as_array().unwrap().len(), 1);
    }

    async fn password_change_ends_the_other_sessions(app: TestApp) {
        let here = logged_in(&app, "changer@example.com").await;
        let elsewhere = app.tokens("changer@example.com").await;
        let change = |current: &str, new: &str| {
            app.client
                .put(app.url("/v1/me/password"))
                .bearer_auth(&here.access)
                .json(&json!({"current_password": current, "new_password": new}))
                .send()
        };
        assert_problem(change("not the password", "a brand new passphrase").await.unwrap(), 403, "invalid_current_password").await;
        assert_problem(change(PASSWORD, "short").await.unwrap(), 422, "invalid_password").await;
        assert_eq!(me_status(&app, &elsewhere.access).await, 200, "failed changes end nothing");

        assert_eq!(change(PASSWORD, "a brand new passphrase").await.unwrap().status(), 204);
        assert_eq!(me_status(&app, &here.access).await, 200, "the current session stays");
        Tokens::from_response(app.refresh(&here.refresh).await).await;
        assert_eq!(me_status(&app, &elsewhere.access).await, 401);
        assert_oauth_error(app.refresh(&elsewhere.refresh).await, 400, "invalid_grant").await;
        assert_eq!(app.login("changer@example.com", PASSWORD).await.status(), 401);
        assert_eq!(app.login("changer@example.com", "a brand new passphrase").await.status(), 200);
    }

    async fn idle_sessions_expire(app: TestApp, settings = |s| {
        s.sessions.idle_timeout_seconds = 2;
        s.sessions.cleanup_interval_seconds = 1;
    }) {
        let tokens = logged_in(&app, "idle@example.com").await;
        app.advance_clock(Duration::from_millis(1200));
        // Used within the idle timeout: still live, and the clock restarts.
        let tokens = Tokens::from_response(app.refresh(&tokens.refresh).await).await;
        app.advance_clock(Duration::from_millis(1200));
        let tokens = Tokens::from_response(app.refresh(&tokens.refresh).await).await;
        app.advance_clock(Duration::from_millis(3200));
        assert_eq!(me_status(&app, &tokens.access).await, 401);
        assert_oauth_error(app.refresh(&tokens.refresh).await, 400, "invalid_grant").await;
        // The clean-up (every second) removes the session and its refresh
        // tokens.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while stored_rows(&app).await != (0, 0) {
            assert!(std::time::Instant::now() < deadline, "the clean-up removes the idle session");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn sessions_end_at_their_absolute_lifetime(app: TestApp, settings = |s| s.sessions.absolute_lifetime_seconds = 3) {
        let tokens = logged_in(&app, "mortal@example.com").await;
        app.advance_clock(Duration::from_millis(1500));
        let tokens = Tokens::from_response(app.refresh(&tokens.refresh).await).await;
        app.advance_clock(Duration::from_millis(2000));
        assert_oauth_error(app.refresh(&tokens.refresh).await, 400, "invalid_grant").await;
        assert_eq!(me_status(&app, &tokens.access).await, 401);
    }

    async fn revocation_follows_rfc7009(app: TestApp) {
        let tokens = logged_in(&app, "revoker@example.com").await;
        let response = app.post_form("/oauth2/revoke", &[("token", &tokens.refresh), ("token_type_hint", "refresh_token")]).await;
        assert_eq!(response.status(), 200);
        assert_oauth_error(app.refresh(&tokens.refresh).await, 400, "invalid_grant").await;
        assert_eq!(me_status(&app, &tokens.access).await, 401);
        // Already revoked, unknown, or garbage: still 200.
        for token in [tokens.refresh.as_str(), "dGhpcyBpcyBub3QgYSB0b2tlbiBvZiBvdXJzIGF0IGFsbA", "garbage"] {
            assert_eq!(app.post_form("/oauth2/revoke", &[("token", token)]).await.status(), 200);
        }
        // An access token ends its session too.
        let other = app.tokens("revoker@example.com").await;
        assert_eq!(app.post_form("/oauth2/revoke", &[("token", &other.access)]).await.status(), 200);
        assert_oauth_error(app.refresh(&other.refresh).await, 400, "invalid_grant").await;
        // No token at all is a malformed request.
        assert_oauth_error(app.post_form("/oauth2/revoke", &[]).await, 400, "invalid_request").await;
        assert_eq!(audited(&app, "revoked", "success").await, 2, "the refresh token and the access token");
    }

    async fn token_endpoint_refuses_bad_input_with_rfc6749_errors(app: TestApp, settings = |s| s.sessions.refresh_reuse_grace_seconds = 0) {
        let tokens = logged_in(&app, "fuzzy@example.com").await;
        assert_oauth_error(app.post_form("/oauth2/token", &[("refresh_token", &tokens.refresh)]).await, 400, "invalid_request").await;
        assert_oauth_error(app.post_form("/oauth2/token", &[("grant_type", "password"), ("username", "x")]).await, 400, "unsupported_grant_type").await;
        assert_oauth_error(app.post_form("/oauth2/token", &[("grant_type", "refresh_token")]).await, 400, "invalid_request").await;
        let truncated = &tokens.refresh[..20];
        let huge = "A".repeat(10 * 1024);
        for bad in ["garbage", truncated, huge.as_str(), "ü"] {
            assert_oauth_error(app.refresh(bad).await, 400, "invalid_grant").await;
        }
        let repeated = app
            .client
            .post(app.url("/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=refresh_token&refresh_token={0}&refresh_token={0}", tokens.refresh))
            .send()
            .await
            .unwrap();
        assert_oauth_error(repeated, 400, "invalid_request").await;
        let json_body = app.client.post(app.url("/oauth2/token")).json(&json!({"grant_type": "refresh_token"})).send().await.unwrap();
        assert_oauth_error(json_body, 400, "invalid_request").await;
        let narrower = app.post_form("/oauth2/token", &[("grant_type", "refresh_token"), ("refresh_token", &tokens.refresh), ("scope", "admin")]).await;
        assert_oauth_error(narrower, 400, "invalid_scope").await;
        // None of that spent the token.
        Tokens::from_response(app.refresh(&tokens.refresh).await).await;
    }
}
