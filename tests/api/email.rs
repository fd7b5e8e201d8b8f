//! Password reset over real e-mail: a real SMTP server process (aiosmtpd,
//! tests/api/smtp.rs) receives what Tessera sends; the tests read the
//! message and follow its link, on both backends.

use std::time::Duration;

use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{
    Backend, PASSWORD, TestApp, Tokens, assert_oauth_error, assert_problem, unique_email,
};
use crate::smtp::{Mail, SmtpServer};

pub(crate) const NEW_PASSWORD: &str = "a brand new passphrase";
/// The subjects of the two messages.
pub(crate) const RESET: &str = "Reset your password";
pub(crate) const VERIFY: &str = "Confirm your e-mail address";

/// An app that sends its mail to `smtp`, looking at its outbox every 50 ms.
pub(crate) async fn app_mailing(
    backend: Backend,
    smtp: &SmtpServer,
    tweak: impl FnOnce(&mut tessera::configuration::Settings),
) -> Option<TestApp> {
    let url = smtp.url();
    TestApp::spawn_with(backend, move |s| {
        s.email.smtp_url = url;
        s.email.poll_interval_milliseconds = 50;
        tweak(s);
    })
    .await
}

pub(crate) async fn ask_reset(app: &TestApp, email: &str) -> reqwest::Response {
    app.post_json("/v1/auth/password-reset", &json!({ "email": email }))
        .await
}

pub(crate) async fn confirm(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/v1/auth/password-reset/confirm",
        &json!({ "token": token, "new_password": password }),
    )
    .await
}

/// The token of the reset link in `mail`, checked to point at the issuer.
pub(crate) fn reset_token(app: &TestApp, mail: &Mail) -> String {
    link_token(app, mail, "/account/reset?token=")
}

pub(crate) async fn verify(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/v1/auth/verify-email", &json!({ "token": token }))
        .await
}

pub(crate) async fn me(app: &TestApp, access: &str) -> Value {
    let response = app.get_with_token("/v1/me", access).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The token of the link under the issuer at `path` in `mail`, with the
/// same link in the HTML part.
pub(crate) fn link_token(app: &TestApp, mail: &Mail, path: &str) -> String {
    let prefix = format!("{}{path}", app.settings.issuer);
    let link = mail.link(&prefix);
    let token = link[prefix.len()..].to_owned();
    assert_eq!(token.len(), 43, "256 bits, base64url: {link}");
    assert!(
        mail.html.contains(&link),
        "the HTML part has the same link: {}",
        mail.html
    );
    token
}

both_backends! {
    async fn a_reset_link_sets_a_new_password_once_and_ends_every_session(backend: Backend) {
        let Some(smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |_| {}).await else { return };
        let email = unique_email();
        app.register(&email).await;
        let before = app.tokens(&email).await;

        let response = ask_reset(&app, &email).await;
        assert_eq!(response.status(), 202);
        let mail = smtp.nth_about(&email, RESET, 1).await;
        assert!(mail.from.contains("no-reply@localhost"), "{mail:?}");
        let token = reset_token(&app, &mail);

        assert_eq!(confirm(&app, &token, NEW_PASSWORD).await.status(), 204);
        // Every session ended; the old password is gone, the new one works.
        assert_oauth_error(app.refresh(&before.refresh).await, 400, "invalid_grant").await;
        assert_problem(app.get_with_token("/v1/me", &before.access).await, 401, "invalid_token").await;
        assert_problem(app.login(&email, PASSWORD).await, 401, "invalid_credentials").await;
        assert_eq!(app.login(&email, NEW_PASSWORD).await.status(), 200);
        // The link works once.
        assert_problem(confirm(&app, &token, "yet another passphrase").await, 400, "invalid_reset_token").await;
        assert_eq!(app.login(&email, NEW_PASSWORD).await.status(), 200);
    }

    async fn a_newer_link_kills_the_older_and_links_expire(backend: Backend) {
        let Some(smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |s| s.accounts.password_reset_interval_seconds = 0).await else { return };
        let email = unique_email();
        app.register(&email).await;

        assert_eq!(ask_reset(&app, &email).await.status(), 202);
        let first = reset_token(&app, &smtp.nth_about(&email, RESET, 1).await);
        assert_eq!(ask_reset(&app, &email).await.status(), 202);
        let second = reset_token(&app, &smtp.nth_about(&email, RESET, 2).await);
        assert_ne!(first, second);
        assert_problem(confirm(&app, &first, NEW_PASSWORD).await, 400, "invalid_reset_token").await;

        // 30 minutes and a little: the newest link is dead too.
        app.advance_clock(Duration::from_secs(30 * 60 + 5));
        assert_problem(confirm(&app, &second, NEW_PASSWORD).await, 400, "invalid_reset_token").await;
        assert_eq!(app.login(&email, PASSWORD).await.status(), 200, "the password stayed");

        // A malformed token, a NUL byte, another purpose's shape: the same answer.
        for bad in ["", "short", "\u{0}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &"x".repeat(5000)] {
            let response = confirm(&app, bad, NEW_PASSWORD).await;
            assert!(response.status() == 400, "{bad:?}: {}", response.status());
        }
    }

    async fn known_and_unknown_addresses_get_the_same_answer(backend: Backend) {
        let Some(smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |_| {}).await else { return };
        let known = unique_email();
        app.register(&known).await;
        let unknown = unique_email();

        let for_unknown = ask_reset(&app, &unknown).await;
        let unknown_status = for_unknown.status();
        let unknown_body: Value = for_unknown.json().await.unwrap();
        let for_known = ask_reset(&app, &known).await;
        assert_eq!(for_known.status(), unknown_status);
        assert_eq!(for_known.json::<Value>().await.unwrap(), unknown_body);
        assert_eq!(unknown_status, 202);

        // A second request at once: the same answer, and no second mail.
        assert_eq!(ask_reset(&app, &known).await.status(), 202);
        smtp.nth_about(&known, RESET, 1).await;
        // The sender works through the outbox in order: by the time the
        // known address's message is in, the unknown one would have been.
        assert!(smtp.received_about(&unknown, RESET).is_empty(), "no mail to an address without an account");
        // Not an address at all: that much may be said.
        let response = ask_reset(&app, "not an address").await;
        assert_problem(response, 422, "invalid_email").await;
        // A later address's message arriving means the sender has passed
        // any second one to the known address.
        let marker = unique_email();
        app.register(&marker).await;
        ask_reset(&app, &marker).await;
        smtp.nth_about(&marker, RESET, 1).await;
        assert_eq!(smtp.received_about(&known, RESET).len(), 1, "one link per address per interval");
    }

    async fn the_link_names_the_issuer_whatever_the_request_said(backend: Backend) {
        let Some(smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |_| {}).await else { return };
        let email = unique_email();
        app.register(&email).await;
        let response = app
            .client
            .post(app.url("/v1/auth/password-reset"))
            .header("Host", "attacker.example")
            .header("X-Forwarded-Host", "attacker.example")
            .header("X-Forwarded-Proto", "https")
            .header("Forwarded", "host=attacker.example;proto=https")
            .json(&json!({ "email": email }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let mail = smtp.nth_about(&email, RESET, 1).await;
        assert!(!mail.text.contains("attacker"), "{}", mail.text);
        assert!(!mail.html.contains("attacker"), "{}", mail.html);
        reset_token(&app, &mail);
    }

    async fn mail_waits_out_an_smtp_outage(backend: Backend) {
        let Some(mut smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |_| {}).await else { return };
        let email = unique_email();
        app.register(&email).await;
        smtp.stop();
        // The SMTP server is down: the request is accepted all the same.
        assert_eq!(ask_reset(&app, &email).await.status(), 202);
        // Let the sender fail at least once, then bring the server back and
        // move past the retry's backoff (5 s after a first failure; still
        // well within the link's 30 minutes).
        tokio::time::sleep(Duration::from_millis(100)).await;
        smtp.resume().await;
        app.advance_clock(Duration::from_secs(60));
        let mail = smtp.nth_about(&email, RESET, 1).await;
        let token = reset_token(&app, &mail);
        assert_eq!(confirm(&app, &token, NEW_PASSWORD).await.status(), 204);
        assert_eq!(smtp.received_about(&email, RESET).len(), 1, "sent once");
    }

    async fn without_smtp_a_reset_says_so(app: TestApp) {
        let email = unique_email();
        app.register(&email).await;
        assert_problem(ask_reset(&app, &email).await, 503, "email_unavailable").await;
        assert_problem(ask_reset(&app, &unique_email()).await, 503, "email_unavailable").await;
    }

    async fn the_reset_page_sets_the_password_from_the_link(backend: Backend) {
        let Some(smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |_| {}).await else { return };
        let email = unique_email();
        app.register(&email).await;
        let login = Tokens::from_response(app.login(&email, PASSWORD).await).await;
        assert_eq!(ask_reset(&app, &email).await.status(), 202);
        let token = reset_token(&app, &smtp.nth_about(&email, RESET, 1).await);

        let page = app.get(&format!("/account/reset?token={token}")).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert_eq!(tessera_test_support::hidden_field(&html, "token").as_deref(), Some(token.as_str()));

        // Too weak: the form again, saying why; the link still works.
        let weak = app.post_form("/account/reset", &[("token", &token), ("new_password", "short")]).await;
        assert_eq!(weak.status(), 422);
        let html = weak.text().await.unwrap();
        assert!(html.contains("id=\"error\""), "{html}");
        assert!(html.contains("name=\"new_password\""), "{html}");

        // A control character: refused in a form field as everywhere (400),
        // a password that could never be used to log in.
        let tab = app.post_form("/account/reset", &[("token", &token), ("new_password", "tab\tseparated words")]).await;
        assert_eq!(tab.status(), 400);
        // A form without its token, or with it twice: an error page.
        for form in [vec![("new_password", NEW_PASSWORD)], vec![("token", token.as_str()), ("token", token.as_str()), ("new_password", NEW_PASSWORD)]] {
            let malformed = app.post_form("/account/reset", &form).await;
            assert_eq!(malformed.status(), 400);
            let content_type = malformed.headers()["content-type"].to_str().unwrap().to_owned();
            assert!(content_type.starts_with("text/html"), "{content_type}");
        }
        let set = app.post_form("/account/reset", &[("token", &token), ("new_password", NEW_PASSWORD)]).await;
        assert_eq!(set.status(), 200);
        assert!(set.text().await.unwrap().contains("Your password is changed"));
        assert_oauth_error(app.refresh(&login.refresh).await, 400, "invalid_grant").await;
        assert_eq!(app.login(&email, NEW_PASSWORD).await.status(), 200);

        // Used: the page says so, and so does the form.
        assert_eq!(app.get(&format!("/account/reset?token={token}")).await.status(), 400);
        let again = app.post_form("/account/reset", &[("token", &token), ("new_password", "another passphrase")]).await;
        assert_eq!(again.status(), 400);
        assert_eq!(app.get("/account/reset").await.status(), 400);
    }

    async fn registration_sends_a_link_that_verifies_the_address_once(backend: Backend) {
        let Some(smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |_| {}).await else { return };
        let email = unique_email();
        let registered = app.register(&email).await;
        assert_eq!(registered["email_verified"], false);
        let mail = smtp.nth_about(&email, VERIFY, 1).await;
        let token = link_token(&app, &mail, "/account/verify?token=");
        let access = app.tokens(&email).await.access;
        assert_eq!(me(&app, &access).await["email_verified"], false);

        assert_eq!(verify(&app, &token).await.status(), 204);
        assert_eq!(me(&app, &access).await["email_verified"], true);
        assert_problem(verify(&app, &token).await, 400, "invalid_verification_token").await;
        // A reset token is no verification token, nor the other way round.
        assert_problem(confirm(&app, &token, NEW_PASSWORD).await, 400, "invalid_reset_token").await;

        // Verified: asking again sends nothing.
        let resend = app.client.post(app.url("/v1/me/email-verification")).bearer_auth(&access).send().await.unwrap();
        assert_eq!(resend.status(), 202);
        let marker = unique_email();
        app.register(&marker).await;
        smtp.nth_about(&marker, VERIFY, 1).await;
        assert_eq!(smtp.received_about(&email, VERIFY).len(), 1);
    }

    async fn a_resent_link_replaces_the_first_and_the_page_asks_before_it_verifies(backend: Backend) {
        let Some(smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |_| {}).await else { return };
        let email = unique_email();
        app.register(&email).await;
        let first = link_token(&app, &smtp.nth_about(&email, VERIFY, 1).await, "/account/verify?token=");
        let access = app.tokens(&email).await.access;
        let resend = || app.client.post(app.url("/v1/me/email-verification")).bearer_auth(&access).send();
        // At most one link per interval (60 s): a token is no way to flood
        // the address. The answer is the same.
        assert_eq!(resend().await.unwrap().status(), 202);
        app.advance_clock(Duration::from_secs(61));
        assert_eq!(resend().await.unwrap().status(), 202);
        let second = link_token(&app, &smtp.nth_about(&email, VERIFY, 2).await, "/account/verify?token=");
        let marker = unique_email();
        app.register(&marker).await;
        smtp.nth_about(&marker, VERIFY, 1).await;
        assert_eq!(smtp.received_about(&email, VERIFY).len(), 2, "the resend within the interval sent nothing");
        assert_problem(verify(&app, &first).await, 400, "invalid_verification_token").await;

        // Opening the link (as a mail scanner would) verifies nothing.
        for _ in 0..2 {
            let page = app.get(&format!("/account/verify?token={second}")).await;
            assert_eq!(page.status(), 200);
            let html = page.text().await.unwrap();
            assert_eq!(tessera_test_support::hidden_field(&html, "token").as_deref(), Some(second.as_str()));
        }
        assert_eq!(me(&app, &access).await["email_verified"], false);
        let done = app.post_form("/account/verify", &[("token", &second)]).await;
        assert_eq!(done.status(), 200);
        assert!(done.text().await.unwrap().contains("Your address is confirmed"));
        assert_eq!(me(&app, &access).await["email_verified"], true);
        assert_eq!(app.get(&format!("/account/verify?token={second}")).await.status(), 400);
        assert_eq!(app.post_form("/account/verify", &[("token", &second)]).await.status(), 400);
    }

    async fn without_smtp_registration_works_and_a_resend_says_so(app: TestApp) {
        let email = unique_email();
        let registered = app.register(&email).await;
        assert_eq!(registered["email_verified"], false);
        let access = app.tokens(&email).await.access;
        let resend = app.client.post(app.url("/v1/me/email-verification")).bearer_auth(&access).send().await.unwrap();
        assert_problem(resend, 503, "email_unavailable").await;
    }

    async fn a_password_change_kills_the_reset_links_sent_before(backend: Backend) {
        let Some(smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |_| {}).await else { return };
        let email = unique_email();
        app.register(&email).await;
        assert_eq!(ask_reset(&app, &email).await.status(), 202);
        let token = reset_token(&app, &smtp.nth_about(&email, RESET, 1).await);
        // The owner, still signed in, changes the password: the link sent
        // before (to a mailbox someone else may read) can't undo it.
        let access = app.tokens(&email).await.access;
        let change = app.client.put(app.url("/v1/me/password")).bearer_auth(&access)
            .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
            .send().await.unwrap();
        assert_eq!(change.status(), 204);
        assert_problem(confirm(&app, &token, "an attacker's passphrase").await, 400, "invalid_reset_token").await;
        assert_eq!(app.login(&email, NEW_PASSWORD).await.status(), 200);
    }
}

const ISSUER: &str = "http://id.example.test";

/// `tessera serve` as its own process on `app`'s database and keys,
/// mailing to `smtp_url`; killed (SIGKILL: no clean shutdown) on drop.
struct ServeProcess {
    child: std::process::Child,
    url: String,
}

impl ServeProcess {
    async fn start(app: &TestApp, smtp_url: &str, log: &std::path::Path) -> ServeProcess {
        use std::process::{Command, Stdio};
        let port = crate::helpers::free_port();
        let url = format!("http://127.0.0.1:{port}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        for (key, _) in std::env::vars() {
            if key.starts_with("TESSERA__") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        let child = command
            .arg("serve")
            .env("TESSERA__DATABASE__URL", &app.settings.database.url)
            .env("TESSERA__KEYS__DIR", &app.settings.keys.dir)
            .env("TESSERA__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("TESSERA__SERVER__WORKERS", "1")
            // One deployment: one issuer, whichever process answers.
            .env("TESSERA__ISSUER", ISSUER)
            .env("TESSERA__THROTTLE__ENABLED", "false")
            .env("TESSERA__EMAIL__SMTP_URL", smtp_url)
            .env("TESSERA__EMAIL__POLL_INTERVAL_MILLISECONDS", "50")
            .env("TESSERA__LOG__FILTER", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let serve = ServeProcess { child, url };
        let readyz = format!("{}/readyz", serve.url);
        crate::helpers::wait_until(
            "tessera serve is ready",
            Duration::from_secs(30),
            async || reqwest::get(&readyz).await.is_ok_and(|r| r.status() == 200),
        )
        .await;
        serve
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

both_backends! {
    async fn no_mail_is_lost_when_the_process_dies_during_an_smtp_outage(backend: Backend) {
        let Some(mut smtp) = SmtpServer::start().await else { return };
        let Some(app) = TestApp::spawn_with(backend, |_| {}).await else { return };
        let email = unique_email();
        app.register(&email).await;
        app.stop().await;
        let logs = tempfile::tempdir().unwrap();
        smtp.stop();

        // The SMTP server is down: the request is accepted and waits in the
        // outbox; the sender fails to deliver it, then the process is
        // killed outright.
        let first = ServeProcess::start(&app, &smtp.url(), &logs.path().join("first")).await;
        let client = reqwest::Client::new();
        let ask = client.post(format!("{}/v1/auth/password-reset", first.url))
            .json(&json!({ "email": email })).send().await.unwrap();
        assert_eq!(ask.status(), 202);
        // Killed once the failure is recorded (not merely logged: a sender
        // killed while it holds a row's lease leaves it for the lease's
        // two minutes, as it must).
        wait_for_a_failed_send(&app).await;
        drop(first);

        // A new process, the SMTP server back: the message goes out once,
        // after the retry's backoff, and its link works.
        smtp.resume().await;
        let second = ServeProcess::start(&app, &smtp.url(), &logs.path().join("second")).await;
        let mail = smtp.nth_about(&email, RESET, 1).await;
        let prefix = format!("{ISSUER}/account/reset?token=");
        let link = mail.link(&prefix);
        let token = &link[prefix.len()..];
        let confirm = client.post(format!("{}/v1/auth/password-reset/confirm", second.url))
            .json(&json!({ "token": token, "new_password": NEW_PASSWORD })).send().await.unwrap();
        assert_eq!(confirm.status(), 204);
        let login = client.post(format!("{}/v1/auth/login", second.url))
            .json(&json!({ "email": email, "password": NEW_PASSWORD })).send().await.unwrap();
        assert_eq!(login.status(), 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(smtp.received_about(&email, RESET).len(), 1, "sent once");
    }
}

/// Waits until the outbox records a failed attempt to send.
async fn wait_for_a_failed_send(app: &TestApp) {
    let db = app.db();
    crate::helpers::wait_until(
        "the sender tried and failed",
        Duration::from_secs(20),
        async || {
            let db = db.clone();
            db.run(|conn| {
                use diesel::prelude::*;
                use tessera::db::schema::email_outbox;
                let failed: i64 = email_outbox::table
                    .filter(email_outbox::last_error.is_not_null())
                    .count()
                    .get_result(conn)?;
                Ok(failed > 0)
            })
            .await
            .unwrap()
        },
    )
    .await;
}

both_backends! {
    async fn mail_goes_over_tls_to_a_server_its_ca_file_trusts(backend: Backend) {
        use crate::smtp::Tls;
        for tls in [Tls::Implicit, Tls::StartTls] {
            let Some(smtp) = SmtpServer::start_tls(tls).await else { return };
            let ca = smtp.certificate().display().to_string();
            let Some(app) = app_mailing(backend, &smtp, move |s| s.email.ca_file = ca).await else { return };
            let email = unique_email();
            app.register(&email).await;
            let mail = smtp.nth_about(&email, VERIFY, 1).await;
            link_token(&app, &mail, "/account/verify?token=");
        }
        // A certificate nobody vouched for: nothing is delivered; the
        // failure is recorded, to be retried.
        for tls in [Tls::Implicit, Tls::StartTls] {
            let Some(smtp) = SmtpServer::start_tls(tls).await else { return };
            let Some(app) = app_mailing(backend, &smtp, |_| {}).await else { return };
            let email = unique_email();
            app.register(&email).await;
            wait_for_a_failed_send(&app).await;
            assert!(smtp.received_by(&email).is_empty(), "{tls:?}: mail went to an untrusted server");
        }
    }
}
