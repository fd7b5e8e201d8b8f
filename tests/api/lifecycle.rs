//! The account lifecycle around the password: who may register, verified
//! addresses required, invitations, an administrator's reset link and
//! "choose a new password first", and what users do to their own account
//! (name, address, deletion). Over real HTTP and a real SMTP server
//! process, on both backends.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::email::{NEW_PASSWORD, RESET, VERIFY, app_mailing, confirm, link_token, me, verify};
use crate::helpers::{PASSWORD, TestApp, assert_problem, unique_email};
use crate::smtp::SmtpServer;
use tessera::configuration::Registration;

const INVITED: &str = "You are invited";
const ALREADY: &str = "You already have an account";
const NEW_ADDRESS: &str = "Confirm your new e-mail address";
const CHANGING: &str = "Your e-mail address is being changed";
const IN_USE: &str = "Your e-mail address was asked for";

/// A request with a bearer token and an optional JSON body.
async fn send(
    app: &TestApp,
    method: Method,
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

async fn register(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/v1/auth/register",
        &json!({ "email": email, "password": password }),
    )
    .await
}

async fn invite(app: &TestApp, admin: &str, body: Value) -> reqwest::Response {
    send(app, Method::POST, "/v1/admin/users", admin, Some(body)).await
}

async fn accept(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/v1/auth/invitation/accept",
        &json!({ "token": token, "password": password }),
    )
    .await
}

async fn user_count(app: &TestApp, admin: &str, email: &str) -> usize {
    let path = format!("/v1/admin/users?email={}", urlencode(email));
    let body: Value = app.get_with_token(&path, admin).await.json().await.unwrap();
    body["users"].as_array().unwrap().len()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

both_backends! {
    async fn closed_and_invite_only_registration_refuse_strangers(backend: Backend) {
        for policy in [Registration::Closed, Registration::Invite] {
            let Some(app) = TestApp::spawn_with(backend, |s| s.accounts.registration = policy).await else { return };
            let email = unique_email();
            let response = register(&app, &email, PASSWORD).await;
            assert_problem(response, 403, "registration_closed").await;
            // Nothing was made: the address can't log in, and an
            // administrator sees no such user.
            assert_problem(app.login(&email, PASSWORD).await, 401, "invalid_credentials").await;
            let admin = app.admin_token(&unique_email()).await;
            assert_eq!(user_count(&app, &admin, &email).await, 0);
        }
    }

    async fn an_invitation_lets_the_invitee_choose_a_password_once(backend: Backend) {
        let Some(smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |s| s.accounts.registration = Registration::Invite).await else { return };
        let admin = app.admin_token(&unique_email()).await;
        let email = unique_email();

        let response = invite(&app, &admin, json!({ "email": email.to_uppercase(), "name": "Grace", "roles": ["editor"] })).await;
        assert_eq!(response.status(), 201);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let user: Value = response.json().await.unwrap();
        assert_eq!(user["email"], email.as_str());
        assert_eq!(user["roles"], json!(["editor"]));
        assert_eq!(user["password_set"], false);
        assert_eq!(location, format!("/v1/admin/users/{}", user["id"].as_str().unwrap()));
        // Inviting the address again: it has an account.
        assert_problem(invite(&app, &admin, json!({ "email": email })).await, 409, "email_taken").await;
        // Before it is accepted no password opens the account, not even an
        // empty one.
        for guess in ["", PASSWORD] {
            assert_problem(app.login(&email, guess).await, 401, "invalid_credentials").await;
        }

        let mail = smtp.nth_about(&email, INVITED, 1).await;
        let token = link_token(&app, &mail, "/account/invitation?token=");
        let page = app.get(&format!("/account/invitation?token={token}")).await;
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("action=\"/account/invitation\""));
        // A control character in a form field: 400, as everywhere.
        let form = [("token", token.as_str()), ("new_password", "a long pass\u{1}phrase")];
        assert_eq!(app.post_form("/account/invitation", &form).await.status(), 400);
        // Asked for a new password before it had one: choosing the first
        // one is that.
        let patch = send(&app, Method::PATCH, &location, &admin, Some(json!({ "must_change_password": true }))).await;
        assert_eq!(patch.status(), 200);
        // The password policy holds here as at registration.
        assert_problem(accept(&app, &token, "short").await, 422, "invalid_password").await;
        assert_eq!(accept(&app, &token, NEW_PASSWORD).await.status(), 204);
        assert_problem(accept(&app, &token, "another long passphrase").await, 400, "invalid_invitation_token").await;
        assert_eq!(app.get(&format!("/account/invitation?token={token}")).await.status(), 400);

        let response = app.login(&email, NEW_PASSWORD).await;
        assert_eq!(response.status(), 200);
        let access = response.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
        let me = me(&app, &access).await;
        assert_eq!(me["email_verified"], true, "the invitation reached the address");
        assert_eq!(me["roles"], json!(["editor"]));
        assert_eq!(me["name"], "Grace");
        let admin_view: Value = app.get_with_token(&location, &admin).await.json().await.unwrap();
        assert_eq!(admin_view["password_set"], true);

        // A reset or verification token is no invitation, and the reverse.
        assert_problem(accept(&app, &"A".repeat(43), NEW_PASSWORD).await, 400, "invalid_invitation_token").await;
        assert_problem(accept(&app, "\u{0}", NEW_PASSWORD).await, 400, "invalid_text").await;
    }

    async fn an_invitation_dies_once_the_account_has_a_password(backend: Backend) {
        let Some(smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |_| {}).await else { return };
        let admin_email = unique_email();
        let admin = app.admin_token(&admin_email).await;
        let email = unique_email();
        let response = invite(&app, &admin, json!({ "email": email, "roles": ["admin"] })).await;
        let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        let invitation = link_token(&app, &smtp.nth_about(&email, INVITED, 1).await, "/account/invitation?token=");

        // An invited administrator who has no password yet is nobody in
        // charge: the one real administrator is still the last.
        let right = json!({ "password": PASSWORD });
        assert_problem(send(&app, Method::DELETE, "/v1/me", &admin, Some(right)).await, 409, "last_admin").await;

        // The invitee gets a password another way (a reset link).
        let path = format!("/v1/admin/users/{id}/password-reset");
        assert_eq!(send(&app, Method::POST, &path, &admin, None).await.status(), 202);
        let reset = link_token(&app, &smtp.nth_about(&email, RESET, 1).await, "/account/reset?token=");
        assert_eq!(confirm(&app, &reset, NEW_PASSWORD).await.status(), 204);
        // The old invitation can't set the password over theirs.
        assert_problem(accept(&app, &invitation, "a hijacker's passphrase").await, 400, "invalid_invitation_token").await;
        assert_eq!(app.login(&email, NEW_PASSWORD).await.status(), 200);
        assert_problem(app.login(&email, "a hijacker's passphrase").await, 401, "invalid_credentials").await;
    }

    async fn an_invitation_expires_and_needs_an_smtp_server(backend: Backend) {
        let Some(smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |s| s.accounts.invitation_hours = 1).await else { return };
        let admin = app.admin_token(&unique_email()).await;
        let email = unique_email();
        assert_eq!(invite(&app, &admin, json!({ "email": email })).await.status(), 201);
        let token = link_token(&app, &smtp.nth_about(&email, INVITED, 1).await, "/account/invitation?token=");
        app.advance_clock(std::time::Duration::from_secs(3600 + 5));
        assert_problem(accept(&app, &token, NEW_PASSWORD).await, 400, "invalid_invitation_token").await;

        // Without SMTP, nothing pretends: 503, and no account is made.
        let Some(quiet) = TestApp::spawn_with(backend, |_| {}).await else { return };
        let admin = quiet.admin_token(&unique_email()).await;
        let email = unique_email();
        assert_problem(invite(&quiet, &admin, json!({ "email": email })).await, 503, "email_unavailable").await;
        assert_eq!(user_count(&quiet, &admin, &email).await, 0);
        // A non-admin can't invite.
        let user = quiet.access_token(&unique_email()).await;
        assert_eq!(invite(&quiet, &user, json!({ "email": unique_email() })).await.status(), 403);
        // Bad input is a 4xx.
        assert_eq!(invite(&quiet, &admin, json!({ "email": "nope" })).await.status(), 422);
        assert_eq!(invite(&quiet, &admin, json!({ "email": unique_email(), "roles": ["bad role"] })).await.status(), 422);
        assert_eq!(invite(&quiet, &admin, json!({ "email": unique_email(), "extra": 1 })).await.status(), 422);
    }

    async fn verified_addresses_required_answers_registration_alike(backend: Backend) {
        let Some(smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |s| s.accounts.require_verified_email = true).await else { return };
        let taken = unique_email();
        let fresh = unique_email();
        assert_eq!(register(&app, &taken, PASSWORD).await.status(), 202);
        let verify_taken = link_token(&app, &smtp.nth_about(&taken, VERIFY, 1).await, "/account/verify?token=");

        // A new address and a taken one: the same status and body shape.
        let for_fresh = register(&app, &fresh, PASSWORD).await;
        let for_taken = register(&app, &taken, "an attacker's passphrase").await;
        assert_eq!(for_fresh.status(), 202);
        assert_eq!(for_taken.status(), 202);
        let fresh_body: Value = for_fresh.json().await.unwrap();
        let taken_body: Value = for_taken.json().await.unwrap();
        assert_eq!(fresh_body, json!({ "email": fresh, "status": "verification_sent" }));
        assert_eq!(taken_body, json!({ "email": taken, "status": "verification_sent" }));
        // The owner is told, with a way back in; the new one gets a link.
        let notice = smtp.nth_about(&taken, ALREADY, 1).await;
        link_token(&app, &notice, "/account/reset?token=");
        let verify_fresh = link_token(&app, &smtp.nth_about(&fresh, VERIFY, 1).await, "/account/verify?token=");

        // Unverified: the right password is refused with a reason; a wrong
        // one learns nothing more than anywhere else.
        assert_problem(app.login(&fresh, PASSWORD).await, 403, "email_not_verified").await;
        assert_problem(app.login(&fresh, "not the password").await, 401, "invalid_credentials").await;
        // The second registration changed nothing: the owner's password is
        // still theirs, the attacker's opens nothing.
        assert_eq!(verify(&app, &verify_taken).await.status(), 204);
        assert_eq!(app.login(&taken, PASSWORD).await.status(), 200);
        assert_problem(app.login(&taken, "an attacker's passphrase").await, 401, "invalid_credentials").await;
        assert_eq!(verify(&app, &verify_fresh).await.status(), 204);
        assert_eq!(app.login(&fresh, PASSWORD).await.status(), 200);

        // Required, but no SMTP: registration says so rather than make an
        // account that could never sign in.
        let Some(quiet) = TestApp::spawn_with(backend, |s| s.accounts.require_verified_email = true).await else { return };
        assert_problem(register(&quiet, &unique_email(), PASSWORD).await, 503, "email_unavailable").await;
    }

    async fn an_administrator_sends_a_reset_link_and_can_require_a_new_password(backend: Backend) {
        let Some(smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |_| {}).await else { return };
        let admin = app.admin_token(&unique_email()).await;
        let email = unique_email();
        let id = app.register(&email).await["id"].as_str().unwrap().to_owned();
        let before = app.tokens(&email).await;

        // A reset link, at the administrator's word: no interval applies.
        let path = format!("/v1/admin/users/{id}/password-reset");
        for n in 1..=2 {
            assert_eq!(send(&app, Method::POST, &path, &admin, None).await.status(), 202);
            smtp.nth_about(&email, RESET, n).await;
        }
        let token = link_token(&app, &smtp.nth_about(&email, RESET, 2).await, "/account/reset?token=");
        assert_problem(send(&app, Method::POST, &path, &before.access, None).await, 403, "insufficient_scope").await.to_string();
        let unknown = "/v1/admin/users/00000000-0000-7000-8000-000000000000/password-reset";
        assert_eq!(send(&app, Method::POST, unknown, &admin, None).await.status(), 404);
        assert_eq!(confirm(&app, &token, NEW_PASSWORD).await.status(), 204);
        let live = app.login(&email, NEW_PASSWORD).await;
        assert_eq!(live.status(), 200);
        let live = crate::helpers::Tokens::from_response(live).await;

        // "Choose a new password at the next sign-in": whoever holds a
        // session now may hold the old password, so every session ends.
        let user_path = format!("/v1/admin/users/{id}");
        let response = send(&app, Method::PATCH, &user_path, &admin, Some(json!({ "must_change_password": true }))).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.unwrap()["must_change_password"], true);
        assert_problem(app.login(&email, NEW_PASSWORD).await, 403, "password_change_required").await;
        assert_eq!(app.refresh(&live.refresh).await.status(), 400, "the session ended");
        assert_eq!(app.get_with_token("/v1/me", &live.access).await.status(), 401);
        // A wrong password still learns nothing.
        assert_problem(app.login(&email, "not the password").await, 401, "invalid_credentials").await;

        let change = |current: &str, new: &str| json!({ "email": email, "current_password": current, "new_password": new });
        let owed = "/v1/auth/password-change";
        assert_problem(app.post_json(owed, &change("not the password", "a third passphrase")).await, 401, "invalid_credentials").await;
        assert_problem(app.post_json(owed, &change(NEW_PASSWORD, NEW_PASSWORD)).await, 422, "invalid_password").await;
        assert_problem(app.post_json(owed, &change(NEW_PASSWORD, "short")).await, 422, "invalid_password").await;
        assert_eq!(app.post_json(owed, &change(NEW_PASSWORD, "a third passphrase")).await.status(), 204);
        assert_eq!(app.login(&email, "a third passphrase").await.status(), 200);
        let user: Value = app.get_with_token(&user_path, &admin).await.json().await.unwrap();
        assert_eq!(user["must_change_password"], false);

        // Without SMTP the administrator's reset says so.
        let Some(quiet) = TestApp::spawn_with(backend, |_| {}).await else { return };
        let admin = quiet.admin_token(&unique_email()).await;
        let id = quiet.register(&unique_email()).await["id"].as_str().unwrap().to_owned();
        let path = format!("/v1/admin/users/{id}/password-reset");
        assert_problem(send(&quiet, Method::POST, &path, &admin, None).await, 503, "email_unavailable").await;
    }

    async fn the_owed_password_page_changes_it(backend: Backend) {
        let Some(app) = TestApp::spawn_with(backend, |_| {}).await else { return };
        let admin = app.admin_token(&unique_email()).await;
        let email = unique_email();
        let id = app.register(&email).await["id"].as_str().unwrap().to_owned();
        let user_path = format!("/v1/admin/users/{id}");
        send(&app, Method::PATCH, &user_path, &admin, Some(json!({ "must_change_password": true }))).await;

        assert_eq!(app.get("/account/password").await.status(), 200);
        let form = |current: &str, new: &str| {
            vec![("email", email.clone()), ("current_password", current.to_owned()), ("new_password", new.to_owned())]
        };
        let post = |fields: Vec<(&'static str, String)>| {
            app.client.post(app.url("/account/password")).form(&fields).send()
        };
        let wrong = post(form("not the password", "a third passphrase")).await.unwrap();
        assert_eq!(wrong.status(), 401);
        let html = wrong.text().await.unwrap();
        assert!(html.contains("id=\"error\"") && !html.contains("not the password"), "{html}");
        assert_eq!(post(form(PASSWORD, "a third passphrase")).await.unwrap().status(), 200);
        assert_eq!(app.login(&email, "a third passphrase").await.status(), 200);
        // A malformed form gets an HTML page, never a 5xx.
        let response = app.client.post(app.url("/account/password")).body("email=%ZZ&email=x").header("content-type", "application/x-www-form-urlencoded").send().await.unwrap();
        assert_eq!(response.status(), 400);
    }

    async fn users_rename_themselves_and_delete_their_account(app: TestApp) {
        let email = unique_email();
        app.register(&email).await;
        let tokens = app.tokens(&email).await;
        let access = tokens.access.as_str();

        let response = send(&app, Method::PATCH, "/v1/me", access, Some(json!({ "name": "  Ada King  " }))).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.unwrap()["name"], "Ada King");
        assert_eq!(me(&app, access).await["name"], "Ada King");
        assert_problem(send(&app, Method::PATCH, "/v1/me", access, Some(json!({ "name": "a\u{0}b" }))).await, 400, "invalid_text").await;
        assert_problem(send(&app, Method::PATCH, "/v1/me", access, Some(json!({ "name": "x".repeat(201) }))).await, 422, "invalid_name").await;
        assert_eq!(send(&app, Method::PATCH, "/v1/me", access, Some(json!({ "email": "x@example.com" }))).await.status(), 422);
        // No name at all is not taken to clear it.
        assert_eq!(send(&app, Method::PATCH, "/v1/me", access, Some(json!({}))).await.status(), 422);
        assert_eq!(me(&app, access).await["name"], "Ada King");
        let response = send(&app, Method::PATCH, "/v1/me", access, Some(json!({ "name": null }))).await;
        assert_eq!(response.json::<Value>().await.unwrap()["name"], Value::Null);

        // Deleting asks for the password, behind the lockout.
        let wrong = json!({ "password": "not the password" });
        assert_problem(send(&app, Method::DELETE, "/v1/me", access, Some(wrong)).await, 403, "invalid_current_password").await;
        assert_eq!(send(&app, Method::DELETE, "/v1/me", access, None).await.status(), 415, "no body: no password");
        assert_eq!(me(&app, access).await["email"], email.as_str());
        // Several at once: one deletes it; the others find the token's user
        // gone (401), never a 5xx or an undocumented answer.
        let deletions = (0..6).map(|_| send(&app, Method::DELETE, "/v1/me", access, Some(json!({ "password": PASSWORD }))));
        let statuses: Vec<u16> = futures_util::future::join_all(deletions).await.iter().map(|r| r.status().as_u16()).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 204).count(), 1, "{statuses:?}");
        assert!(statuses.iter().all(|s| *s == 204 || *s == 401), "{statuses:?}");
        // Gone: its token, its refresh token, its password; the address is free.
        assert_eq!(app.get_with_token("/v1/me", access).await.status(), 401);
        assert_eq!(app.refresh(&tokens.refresh).await.status(), 400);
        assert_problem(app.login(&email, PASSWORD).await, 401, "invalid_credentials").await;
        assert_eq!(register(&app, &email, PASSWORD).await.status(), 201);

        // The last administrator can't leave nobody in charge.
        let admin_email = unique_email();
        let admin = app.admin_token(&admin_email).await;
        let right = json!({ "password": PASSWORD });
        assert_problem(send(&app, Method::DELETE, "/v1/me", &admin, Some(right)).await, 409, "last_admin").await;
        assert_eq!(app.login(&admin_email, PASSWORD).await.status(), 200);
    }

    async fn an_address_changes_only_once_the_new_one_is_verified(backend: Backend) {
        let Some(smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |_| {}).await else { return };
        let old = unique_email();
        let new = unique_email();
        let other = unique_email();
        app.register(&old).await;
        app.register(&other).await;
        let access = app.tokens(&old).await.access;
        let ask = |to: &str, password: &str| json!({ "new_email": to, "password": password });

        assert_problem(send(&app, Method::POST, "/v1/me/email", &access, Some(ask(&new, "not the password"))).await, 403, "invalid_current_password").await;
        // An address with an account: the same answer; its owner is told,
        // and no link goes anywhere.
        assert_eq!(send(&app, Method::POST, "/v1/me/email", &access, Some(ask(&other, PASSWORD))).await.status(), 202);
        let in_use = smtp.nth_about(&other, IN_USE, 1).await;
        assert!(!in_use.text.contains(&old), "the asker's address is not disclosed: {}", in_use.text);
        // Asking again at once: the same answer, and nothing is sent: one
        // request per account per interval is acted on.
        assert_eq!(send(&app, Method::POST, "/v1/me/email", &access, Some(ask(&other, PASSWORD))).await.status(), 202);
        assert_problem(send(&app, Method::POST, "/v1/me/email", &access, Some(ask("nope", PASSWORD))).await, 422, "invalid_email").await;
        assert_problem(send(&app, Method::POST, "/v1/me/email", &access, Some(ask(&old, PASSWORD))).await, 422, "invalid_email").await;
        app.advance_clock(std::time::Duration::from_secs(61));
        assert_eq!(send(&app, Method::POST, "/v1/me/email", &access, Some(ask(&new.to_uppercase(), PASSWORD))).await.status(), 202);

        // The old address hears of both requests acted on, alike.
        let notice = smtp.nth_about(&old, CHANGING, 1).await;
        assert!(notice.text.contains(&other), "{}", notice.text);
        let notice = smtp.nth_about(&old, CHANGING, 2).await;
        assert!(notice.text.contains(&new), "{}", notice.text);
        let confirm_mail = smtp.nth_about(&new, NEW_ADDRESS, 1).await;
        assert!(confirm_mail.text.contains(&old), "it names the account that would move: {}", confirm_mail.text);
        let token = link_token(&app, &confirm_mail, "/account/verify?token=");
        assert!(smtp.received_about(&other, NEW_ADDRESS).is_empty(), "no link to a taken address");
        assert_eq!(smtp.received_about(&other, IN_USE).len(), 1, "one notice per interval");
        // Nothing moved yet.
        assert_eq!(app.login(&old, PASSWORD).await.status(), 200);
        assert_problem(app.login(&new, PASSWORD).await, 401, "invalid_credentials").await;
        assert_eq!(me(&app, &access).await["email"], old.as_str());

        // The link's page offers the button; following the link moves it.
        assert_eq!(app.get(&format!("/account/verify?token={token}")).await.status(), 200);
        assert_eq!(verify(&app, &token).await.status(), 204);
        let me_now = me(&app, &access).await;
        assert_eq!(me_now["email"], new.as_str());
        assert_eq!(me_now["email_verified"], true);
        assert_eq!(app.login(&new, PASSWORD).await.status(), 200);
        assert_problem(app.login(&old, PASSWORD).await, 401, "invalid_credentials").await;
        assert_problem(verify(&app, &token).await, 400, "invalid_verification_token").await;
        // The old address is free again.
        assert_eq!(register(&app, &old, PASSWORD).await.status(), 201);
    }

    async fn an_address_taken_meanwhile_is_not_moved_to(backend: Backend) {
        let Some(smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |_| {}).await else { return };
        let old = unique_email();
        let new = unique_email();
        app.register(&old).await;
        let access = app.tokens(&old).await.access;
        let body = json!({ "new_email": new, "password": PASSWORD });
        assert_eq!(send(&app, Method::POST, "/v1/me/email", &access, Some(body)).await.status(), 202);
        let token = link_token(&app, &smtp.nth_about(&new, NEW_ADDRESS, 1).await, "/account/verify?token=");
        // Someone registers the new address before the link is followed.
        app.register(&new).await;
        assert_problem(verify(&app, &token).await, 409, "email_taken").await;
        assert_eq!(me(&app, &access).await["email"], old.as_str());
        assert_eq!(app.login(&old, PASSWORD).await.status(), 200);
        // Without SMTP the change can't be asked for.
        let Some(quiet) = TestApp::spawn_with(backend, |_| {}).await else { return };
        let access = quiet.access_token(&unique_email()).await;
        let body = json!({ "new_email": unique_email(), "password": PASSWORD });
        assert_problem(send(&quiet, Method::POST, "/v1/me/email", &access, Some(body)).await, 503, "email_unavailable").await;
    }

    async fn a_pending_address_change_dies_with_a_new_password_or_request(backend: Backend) {
        let Some(smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |_| {}).await else { return };
        let admin = app.admin_token(&unique_email()).await;
        let (victim, taken) = (unique_email(), unique_email());
        let id = app.register(&victim).await["id"].as_str().unwrap().to_owned();
        app.register(&taken).await;
        let (app, smtp) = (&app, &smtp);
        let change_to = |to: String, access: String| {
            let body = json!({ "new_email": to, "password": PASSWORD });
            async move { send(app, Method::POST, "/v1/me/email", &access, Some(body)).await.status() }
        };
        let link_to = |to: String| async move {
            link_token(app, &smtp.nth_about(&to, NEW_ADDRESS, 1).await, "/account/verify?token=")
        };
        let later = || app.advance_clock(std::time::Duration::from_secs(61));

        // A thief who knows the password asks to move the account; the
        // owner answers by resetting it: the move dies with the old password.
        let thief = app.tokens(&victim).await.access;
        let first = unique_email();
        assert_eq!(change_to(first.clone(), thief).await, 202);
        let pending = link_to(first).await;
        assert_eq!(crate::email::ask_reset(app, &victim).await.status(), 202);
        let reset = link_token(app, &smtp.nth_about(&victim, RESET, 1).await, "/account/reset?token=");
        assert_eq!(confirm(app, &reset, NEW_PASSWORD).await.status(), 204);
        assert_problem(verify(app, &pending).await, 400, "invalid_verification_token").await;
        assert_eq!(app.login(&victim, NEW_PASSWORD).await.status(), 200);

        // A later request supersedes a pending one, whether its address is
        // free or taken (so which it was says nothing).
        let access = crate::helpers::Tokens::from_response(app.login(&victim, NEW_PASSWORD).await).await.access;
        let body = |to: &str| json!({ "new_email": to, "password": NEW_PASSWORD });
        let second = unique_email();
        later();
        assert_eq!(send(app, Method::POST, "/v1/me/email", &access, Some(body(&second))).await.status(), 202);
        let pending = link_to(second).await;
        later();
        assert_eq!(send(app, Method::POST, "/v1/me/email", &access, Some(body(&taken))).await.status(), 202);
        smtp.nth_about(&taken, IN_USE, 1).await;
        assert_problem(verify(app, &pending).await, 400, "invalid_verification_token").await;

        // An administrator asking for a new password kills a pending move.
        let third = unique_email();
        later();
        assert_eq!(send(app, Method::POST, "/v1/me/email", &access, Some(body(&third))).await.status(), 202);
        let pending = link_to(third).await;
        let patch = json!({ "must_change_password": true });
        let path = format!("/v1/admin/users/{id}");
        assert_eq!(send(app, Method::PATCH, &path, &admin, Some(patch)).await.status(), 200);
        assert_problem(verify(app, &pending).await, 400, "invalid_verification_token").await;

        // What was sent is not kept: the outbox's sent rows have no bodies
        // (their links were live secrets).
        let db = app.db();
        crate::helpers::wait_until("sent rows without bodies", std::time::Duration::from_secs(20), async || {
            let db = db.clone();
            db.run(|conn| {
                use diesel::prelude::*;
                use tessera::db::schema::email_outbox;
                let sent = email_outbox::table.filter(email_outbox::sent_at.is_not_null());
                let with_body: i64 = sent.filter(email_outbox::text_body.ne("")).count().get_result(conn)?;
                let all: i64 = email_outbox::table.filter(email_outbox::sent_at.is_not_null()).count().get_result(conn)?;
                Ok(all > 5 && with_body == 0)
            })
            .await
            .unwrap()
        })
        .await;
    }

    async fn mail_waiting_for_a_deleted_account_is_not_sent(backend: Backend) {
        let Some(mut smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |_| {}).await else { return };
        let admin = app.admin_token(&unique_email()).await;
        smtp.stop();
        let email = unique_email();
        let response = invite(&app, &admin, json!({ "email": email })).await;
        let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        let path = format!("/v1/admin/users/{id}");
        assert_eq!(send(&app, Method::DELETE, &path, &admin, None).await.status(), 204);
        smtp.resume().await;
        app.advance_clock(std::time::Duration::from_secs(3600));
        // A later message arriving means the sender has passed the
        // invitation's turn.
        let marker = unique_email();
        app.register(&marker).await;
        smtp.nth_about(&marker, VERIFY, 1).await;
        assert!(smtp.received_by(&email).is_empty(), "an invitation to a deleted account went out");
    }
}
