use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{PASSWORD, TestApp, Tokens, unique_email};
use crate::smtp::SmtpServer;

/// Runs the `tessera` binary with `env` on top of a clean TESSERA_ environment.
fn tessera(args: &[&str], env: &[(&str, String)], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("TESSERA__") {
            command.env_remove(key);
        }
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("the tessera binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn app_env(app: &TestApp) -> Vec<(&'static str, String)> {
    vec![
        ("TESSERA__DATABASE__URL", app.settings.database.url.clone()),
        (
            "TESSERA__KEYS__DIR",
            app.settings.keys.dir.display().to_string(),
        ),
        ("TESSERA__LOG__FILTER", "warn".into()),
    ]
}

both_backends! {
    async fn users_create_makes_an_admin_from_stdin(app: TestApp) {
        let password = "a long admin passphrase";
        let output = tessera(
            &["users", "create", "--email", "Root@Example.com", "--password-stdin", "--admin"],
            &app_env(&app),
            &format!("{password}\n"),
        );
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let user: Value = serde_json::from_slice(&output.stdout).expect("the user as JSON on stdout");
        assert_eq!(user["email"], "root@example.com");
        assert_eq!(user["roles"], serde_json::json!(["admin"]));
        assert!(!String::from_utf8_lossy(&output.stdout).contains(password));
        assert!(!String::from_utf8_lossy(&output.stderr).contains(password));

        // The server sees the user, and the password is what was on stdin
        // without its line ending.
        let response = app.login("root@example.com", password).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        let token = body["access_token"].as_str().unwrap();
        let me: Value = app.get_with_token("/v1/me", token).await.json().await.unwrap();
        assert_eq!(me["roles"], serde_json::json!(["admin"]));

        // The same email again is refused with a clear line.
        let output = tessera(
            &["users", "create", "--email", "root@example.com", "--password-stdin"],
            &app_env(&app),
            "another long passphrase",
        );
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("already exists"));

        // A weak password is refused before anything is written.
        let output = tessera(
            &["users", "create", "--email", "weak@example.com", "--password-stdin"],
            &app_env(&app),
            "password",
        );
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("common"));
        assert_eq!(app.login("weak@example.com", "password").await.status(), 401);
    }

    async fn clients_create_list_delete(app: TestApp) {
        let output = tessera(
            &["clients", "create", "--name", "billing", "--grant", "client_credentials", "--scope", "invoices:read", "--audience", "billing-api"],
            &app_env(&app),
            "",
        );
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let created: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
        let id = created["client_id"].as_str().unwrap().to_owned();
        let secret = created["client_secret"].as_str().unwrap().to_owned();
        assert_eq!(secret.len(), 43);

        let token = app.post_form("/oauth2/token", &[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &secret)]).await;
        assert_eq!(token.status(), 200);
        let body: Value = token.json().await.unwrap();
        assert_eq!(body["scope"], "invoices:read");

        let output = tessera(&["clients", "list"], &app_env(&app), "");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let listed = String::from_utf8_lossy(&output.stdout);
        assert!(listed.contains(&id) && !listed.contains(&secret), "{listed}");

        let output = tessera(&["clients", "delete", &id], &app_env(&app), "");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let token = app.post_form("/oauth2/token", &[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &secret)]).await;
        assert_eq!(token.status(), 401);
        let output = tessera(&["clients", "delete", &id], &app_env(&app), "");
        assert!(!output.status.success(), "deleting twice says so");

        let output = tessera(&["clients", "create", "--name", "bad", "--grant", "password"], &app_env(&app), "");
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("unknown grant type"));

        // A browser application: public, first-party, with its redirect URIs.
        let output = tessera(
            &["clients", "create", "--name", "notes", "--grant", "authorization_code", "--scope", "openid",
              "--redirect-uri", "com.example.notes:/cb", "--post-logout-redirect-uri", "com.example.notes:/bye",
              "--public", "--first-party"],
            &app_env(&app),
            "",
        );
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let created: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(created["client_secret"], Value::Null);
        let output = tessera(&["clients", "list"], &app_env(&app), "");
        let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
        let notes = listed.as_array().unwrap().iter().find(|c| c["client_id"] == created["client_id"]).unwrap();
        assert_eq!(notes["post_logout_redirect_uris"], serde_json::json!(["com.example.notes:/bye"]));
        assert_eq!(notes["first_party"], true);
        assert_eq!(notes["public"], true);
    }

    async fn users_create_is_audited_with_actor_cli(app: TestApp) {
        let admin = app.admin_token(&crate::helpers::unique_email()).await;
        let output = tessera(
            &["users", "create", "--email", "made@example.com", "--password-stdin", "--admin"],
            &app_env(&app),
            "a long operator passphrase\n",
        );
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let user: Value = serde_json::from_slice(&output.stdout).unwrap();
        let id = user["id"].as_str().unwrap();
        let events = crate::admin::audit_events(&app, &admin, &format!("user={id}")).await;
        assert_eq!(events.len(), 1, "{events:?}");
        let event = &events[0];
        assert_eq!(event["action"], "user_created");
        assert_eq!(event["actor_id"], "cli");
        assert_eq!(event["outcome"], "success");
        assert_eq!(event["ip"], Value::Null, "no client address on the command line");
        assert!(event["detail"].as_str().unwrap().contains("admin"), "{event}");
        assert!(!event.to_string().contains("passphrase"));
        // A refused creation (the email is taken) records nothing.
        let output = tessera(
            &["users", "create", "--email", "made@example.com", "--password-stdin"],
            &app_env(&app),
            "another long passphrase",
        );
        assert!(!output.status.success());
        let created = crate::admin::audit_events(&app, &admin, "kind=user_created").await;
        assert!(created.iter().all(|e| e["actor_id"] == "cli"), "{created:?}");
        assert_eq!(created.iter().filter(|e| e["user_id"] == id).count(), 1);
    }

    async fn migrate_is_idempotent(app: TestApp) {
        let output = tessera(&["migrate"], &app_env(&app), "");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
}

/// Start-up problems give one clear line on stderr and a non-zero exit.
fn assert_one_line_failure(output: &Output, mentions: &str) {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("tessera: error:") && last.contains(mentions),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn bad_settings_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("t.db").display());
    let keys = dir.path().join("keys").display().to_string();
    let output = tessera(&["migrate"], &[("TESSERA__ISSUER", "not a url".into())], "");
    assert_one_line_failure(&output, "issuer");
    let output = tessera(
        &["migrate"],
        &[("TESSERA__TOKENS__ACCESS_TTL_SECONDS", "soon".into())],
        "",
    );
    assert_one_line_failure(&output, "access_ttl_seconds");
    let output = tessera(
        &["migrate"],
        &[(
            "TESSERA__DATABASE__URL",
            "postgres://postgres@127.0.0.1:1/none".into(),
        )],
        "",
    );
    assert_one_line_failure(&output, "database");

    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(
        dir.path().join("keys/broken.pem"),
        concat!("-----BEGIN ", "PRIVATE KEY-----\nnope\n"),
    )
    .unwrap();
    let output = tessera(
        &["serve"],
        &[
            ("TESSERA__DATABASE__URL", sqlite),
            ("TESSERA__KEYS__DIR", keys),
            ("TESSERA__SERVER__BIND", "127.0.0.1:0".into()),
        ],
        "",
    );
    assert_one_line_failure(&output, "broken.pem");
}

/// Two `keys rotate` in the same second (two operators, or a script) make
/// two keys with two names, both listed; and of two `--now` the later one
/// signs, the other is superseded at once.
#[test]
fn keys_rotate_twice_in_one_second_makes_two_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let env = [("TESSERA__KEYS__DIR", keys.display().to_string())];
    let created_at = |key: &Value| {
        chrono::DateTime::parse_from_rfc3339(key["created_at"].as_str().unwrap()).unwrap()
    };
    let second_of = |key: &Value| created_at(key).timestamp();
    // Two runs side by side; again (rarely) when a second began between
    // them, until both name their key within one second. No waiting for
    // a second to begin: every try is a real pair of runs.
    let rotate_two = |args: &'static [&'static str]| -> Vec<Value> {
        for _ in 0..10 {
            let runs: Vec<_> = (0..2)
                .map(|_| {
                    let env = env.clone();
                    std::thread::spawn(move || tessera(args, &env, ""))
                })
                .collect();
            let keys: Vec<Value> = runs
                .into_iter()
                .map(|run| {
                    let output = run.join().unwrap();
                    assert!(
                        output.status.success(),
                        "{}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                    serde_json::from_slice(&output.stdout).expect("the new key as JSON")
                })
                .collect();
            if second_of(&keys[0]) == second_of(&keys[1]) {
                return keys;
            }
        }
        panic!("no two runs of {args:?} in one second in ten tries");
    };

    let created = rotate_two(&["keys", "rotate"]);
    assert_ne!(created[0]["file"], created[1]["file"]);
    assert_ne!(created[0]["kid"], created[1]["kid"]);
    let listed = |kid: &Value| -> Value {
        let output = tessera(&["keys", "list"], &env, "");
        let list: Value = serde_json::from_slice(&output.stdout).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == *kid)
            .cloned()
            .unwrap_or_else(|| panic!("{kid} listed: {list}"))
    };
    for key in &created {
        assert_ne!(listed(&key["kid"])["state"], "invalid");
    }

    let urgent = rotate_two(&["keys", "rotate", "--now"]);
    let states: Vec<Value> = urgent
        .iter()
        .map(|k| listed(&k["kid"])["state"].clone())
        .collect();
    // The one created later (its name says so) signs.
    let later = if created_at(&urgent[0]) > created_at(&urgent[1]) {
        0
    } else {
        1
    };
    assert_eq!(states[later], "active", "{urgent:?} {states:?}");
    assert_eq!(states[1 - later], "previous", "{urgent:?} {states:?}");
    let output = tessera(&["keys", "list"], &env, "");
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    let active = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["state"] == "active")
        .count();
    assert_eq!(active, 1, "{list}");
}

/// The JSON a successful run printed on stdout.
fn printed(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// The emails `tessera users list` prints, with `args` after `list`.
fn listed_emails(app: &TestApp, args: &[&str]) -> Vec<String> {
    let mut command = vec!["users", "list"];
    command.extend_from_slice(args);
    let list = printed(&tessera(&command, &app_env(app), ""));
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect()
}

/// The app's environment and an SMTP server (mail is only queued: the
/// running app sends it), with the app's issuer for the links.
fn mailing_env(app: &TestApp, smtp_url: String) -> Vec<(&'static str, String)> {
    let mut env = app_env(app);
    env.push(("TESSERA__EMAIL__SMTP_URL", smtp_url));
    env.push(("TESSERA__ISSUER", app.settings.issuer.clone()));
    env
}

both_backends! {
    async fn users_list_shows_users_and_filters_by_prefix(app: TestApp) {
        let ada = app.register("ada-list@example.com").await;
        app.register("bob-list@example.com").await;
        app.register("alan-list@example.com").await;

        let output = tessera(&["users", "list"], &app_env(&app), "");
        let list = printed(&output);
        let shown = list.as_array().unwrap().iter().find(|u| u["id"] == ada["id"]).cloned();
        let shown = shown.unwrap_or_else(|| panic!("ada listed: {list}"));
        assert_eq!(shown["email"], "ada-list@example.com");
        assert_eq!(shown["roles"], serde_json::json!([]));
        assert_eq!(shown["disabled"], false, "{shown}");
        assert_eq!(
            listed_emails(&app, &[]),
            ["ada-list@example.com", "bob-list@example.com", "alan-list@example.com"],
            "every user, oldest first"
        );

        // The prefix is matched in the addresses' normal form.
        assert_eq!(listed_emails(&app, &["--email-prefix", "A"]), ["ada-list@example.com", "alan-list@example.com"]);
        assert_eq!(listed_emails(&app, &["--email-prefix", "bob"]), ["bob-list@example.com"]);
        assert!(listed_emails(&app, &["--email-prefix", "carol"]).is_empty());
        assert_eq!(listed_emails(&app, &["--limit", "2"]), ["ada-list@example.com", "bob-list@example.com"]);
        assert_eq!(listed_emails(&app, &["--email-prefix", "a", "--limit", "1"]), ["ada-list@example.com"]);

        let output = tessera(&["users", "list", "--limit", "0"], &app_env(&app), "");
        assert!(!output.status.success(), "--limit 0 is refused");
    }

    async fn users_list_walks_every_page(app: TestApp) {
        // More users than a page holds, written straight to the database
        // (invited: no password to hash).
        use tessera::accounts::{Invitee, administration::MAX_PAGE};
        let count = MAX_PAGE as usize * 2 + 5;
        let db = app.db();
        let now = db.now();
        db.run(move |conn| {
            for i in 0..count {
                let invitee = Invitee::parse(&format!("page-{i:04}@example.com"), None, vec![]).unwrap();
                tessera::accounts::invite_with(conn, now, &invitee)?;
            }
            Ok(())
        })
        .await
        .unwrap();
        app.register("zed@example.com").await;

        let all = listed_emails(&app, &[]);
        assert_eq!(all.len(), count + 1);
        let expected: Vec<String> = (0..count).map(|i| format!("page-{i:04}@example.com")).collect();
        assert_eq!(all[..count], expected[..], "each once, oldest first");
        assert_eq!(all[count], "zed@example.com");
        assert_eq!(listed_emails(&app, &["--email-prefix", "page-"]), expected);
        let limit = MAX_PAGE as usize + 3;
        assert_eq!(listed_emails(&app, &["--limit", &limit.to_string()]), expected[..limit]);
    }

    async fn users_set_roles_changes_roles_and_refuses_bad_names(app: TestApp) {
        let email = "roles@example.com";
        let user = app.register(email).await;
        let id = user["id"].as_str().unwrap();
        let before = app.tokens(email).await.access;
        let admin_path = format!("/v1/admin/users/{id}");
        assert_eq!(app.get_with_token(&admin_path, &before).await.status(), 403);

        let output = tessera(&["users", "set-roles", id, "--role", "admin", "--role", "editor"], &app_env(&app), "");
        let changed = printed(&output);
        assert_eq!(changed["id"], id);
        assert_eq!(changed["roles"], serde_json::json!(["admin", "editor"]));

        // The server sees it: the user is an administrator now.
        let access = app.tokens(email).await.access;
        let me: Value = app.get_with_token("/v1/me", &access).await.json().await.unwrap();
        assert_eq!(me["roles"], serde_json::json!(["admin", "editor"]));
        let response = app.get_with_token(&admin_path, &access).await;
        assert_eq!(response.status(), 200);
        let shown: Value = response.json().await.unwrap();
        assert_eq!(shown["roles"], serde_json::json!(["admin", "editor"]));
        // Recorded as the command line's doing.
        let events = crate::admin::audit_events(&app, &access, &format!("user={id}")).await;
        let updated = events.iter().find(|e| e["action"] == "user_updated");
        let updated = updated.unwrap_or_else(|| panic!("{events:?}"));
        assert_eq!(updated["actor_id"], "cli");
        assert!(updated["detail"].as_str().unwrap().contains("admin"), "{updated}");

        // A malformed role name is refused and changes nothing.
        let output = tessera(&["users", "set-roles", id, "--role", "bad role"], &app_env(&app), "");
        assert_one_line_failure(&output, "not a role name");
        assert_eq!(printed(&tessera(&["users", "list"], &app_env(&app), ""))[0]["roles"], serde_json::json!(["admin", "editor"]));

        // No --role: no roles, except that the last admin keeps "admin".
        let output = tessera(&["users", "set-roles", id], &app_env(&app), "");
        assert_one_line_failure(&output, "no enabled administrator");
        app.register("other@example.com").await;
        let other = printed(&tessera(&["users", "list", "--email-prefix", "other"], &app_env(&app), ""));
        let other_id = other[0]["id"].as_str().unwrap();
        printed(&tessera(&["users", "set-roles", other_id, "--role", "admin"], &app_env(&app), ""));
        let changed = printed(&tessera(&["users", "set-roles", id], &app_env(&app), ""));
        assert_eq!(changed["roles"], serde_json::json!([]));
        let access = app.tokens(email).await.access;
        assert_eq!(app.get_with_token(&admin_path, &access).await.status(), 403);

        // An unknown user is named in the error.
        let unknown = uuid::Uuid::now_v7().to_string();
        let output = tessera(&["users", "set-roles", &unknown, "--role", "x"], &app_env(&app), "");
        assert_one_line_failure(&output, &format!("no such user: {unknown}"));
    }

    async fn users_delete_removes_a_user_but_not_the_last_admin(app: TestApp) {
        let email = "leaving@example.com";
        let user = app.register(email).await;
        let id = user["id"].as_str().unwrap();
        let tokens = app.tokens(email).await;

        let output = tessera(&["users", "delete", id], &app_env(&app), "");
        assert_eq!(printed(&output)["deleted"], id);
        assert_eq!(app.login(email, PASSWORD).await.status(), 401);
        assert_eq!(app.get_with_token("/v1/me", &tokens.access).await.status(), 401, "sessions ended");
        assert!(listed_emails(&app, &["--email-prefix", "leaving"]).is_empty());
        let output = tessera(&["users", "delete", id], &app_env(&app), "");
        assert_one_line_failure(&output, "no such user");

        // The only administrator stays.
        let output = tessera(
            &["users", "create", "--email", "root@example.com", "--password-stdin", "--admin"],
            &app_env(&app),
            "a long admin passphrase\n",
        );
        let root = printed(&output);
        let root_id = root["id"].as_str().unwrap();
        let output = tessera(&["users", "delete", root_id], &app_env(&app), "");
        assert_one_line_failure(&output, "no enabled administrator");
        assert_eq!(app.login("root@example.com", "a long admin passphrase").await.status(), 200);
        assert_eq!(listed_emails(&app, &[]), ["root@example.com"]);

        // With a second one, the first can go.
        let admin = app.admin_token("second-admin@example.com").await;
        printed(&tessera(&["users", "delete", root_id], &app_env(&app), ""));
        assert_eq!(app.login("root@example.com", "a long admin passphrase").await.status(), 401);
        let events = crate::admin::audit_events(&app, &admin, &format!("user={root_id}")).await;
        let deleted = events.iter().find(|e| e["action"] == "user_deleted");
        assert_eq!(deleted.unwrap_or_else(|| panic!("{events:?}"))["actor_id"], "cli");
    }

    async fn users_invite_and_reset_password_need_smtp(app: TestApp) {
        assert_eq!(app.settings.email.smtp_url, "", "the test app has no SMTP server");
        let output = tessera(&["users", "invite", "--email", "guest@example.com", "--role", "ops"], &app_env(&app), "");
        assert_one_line_failure(&output, "no email.smtp_url is configured: an invitation could not be sent");
        assert!(output.stdout.is_empty());
        assert!(listed_emails(&app, &[]).is_empty(), "no user was made");

        let user = app.register("forgetful@example.com").await;
        let id = user["id"].as_str().unwrap();
        let output = tessera(&["users", "reset-password", id], &app_env(&app), "");
        assert_one_line_failure(&output, "no email.smtp_url is configured");

        // With a server configured (nothing is sent: there is no such user),
        // an unknown id is named.
        let env = mailing_env(&app, "smtp://127.0.0.1:1".into());
        let unknown = uuid::Uuid::now_v7().to_string();
        let output = tessera(&["users", "reset-password", &unknown], &env, "");
        assert_one_line_failure(&output, &format!("no such user: {unknown}"));
        // And a malformed invitation is refused before anything is written.
        let output = tessera(&["users", "invite", "--email", "not an address"], &env, "");
        assert!(!output.status.success());
        let output = tessera(&["users", "invite", "--email", "guest@example.com", "--role", "bad role"], &env, "");
        assert_one_line_failure(&output, "not a role name");
        assert_eq!(listed_emails(&app, &[]), ["forgetful@example.com"]);
    }

    async fn users_invite_mails_a_link_that_sets_the_first_password(backend: Backend) {
        use crate::email::{app_mailing, link_token};
        let Some(smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |_| {}).await else { return };
        let env = mailing_env(&app, smtp.url());
        let email = "invited@example.com";

        let output = tessera(&["users", "invite", "--email", "Invited@Example.com", "--name", "Ivy", "--role", "ops"], &env, "");
        let user = printed(&output);
        assert_eq!(user["email"], email);
        assert_eq!(user["name"], "Ivy");
        assert_eq!(user["roles"], serde_json::json!(["ops"]));
        assert_eq!(user["password_set"], false, "{user}");
        assert_eq!(listed_emails(&app, &[]), [email]);

        let mail = smtp.nth_about(email, "You are invited", 1).await;
        let token = link_token(&app, &mail, "/account/invitation?token=");
        let password = "the invitee's own passphrase";
        let response = app
            .post_json("/v1/auth/invitation/accept", &serde_json::json!({ "token": token, "password": password }))
            .await;
        assert_eq!(response.status(), 204);
        let response = app.login(email, password).await;
        assert_eq!(response.status(), 200);
        let access = Tokens::from_response(response).await.access;
        let me: Value = app.get_with_token("/v1/me", &access).await.json().await.unwrap();
        assert_eq!(me["roles"], serde_json::json!(["ops"]));

        // The address is taken now.
        let output = tessera(&["users", "invite", "--email", email], &env, "");
        assert_one_line_failure(&output, "already exists");
    }

    async fn users_reset_password_mails_a_working_link(backend: Backend) {
        use crate::email::{NEW_PASSWORD, RESET, app_mailing, confirm, reset_token};
        let Some(smtp) = SmtpServer::start().await else { return };
        let Some(app) = app_mailing(backend, &smtp, |_| {}).await else { return };
        let env = mailing_env(&app, smtp.url());
        let email = unique_email();
        let user = app.register(&email).await;
        let id = user["id"].as_str().unwrap();

        let output = tessera(&["users", "reset-password", id], &env, "");
        assert_eq!(printed(&output)["reset_link_queued_for"], id);
        let token = reset_token(&app, &smtp.nth_about(&email, RESET, 1).await);
        assert_eq!(confirm(&app, &token, NEW_PASSWORD).await.status(), 204);
        assert_eq!(app.login(&email, PASSWORD).await.status(), 401);
        assert_eq!(app.login(&email, NEW_PASSWORD).await.status(), 200);
    }
}

both_backends! {
    async fn users_create_verified_vouches_for_the_address(app: TestApp) {
        let mut app = app;
        let (plain, vouched) = (crate::helpers::unique_email(), crate::helpers::unique_email());
        for (email, flag) in [(&plain, None), (&vouched, Some("--verified"))] {
            let mut args = vec!["users", "create", "--email", email.as_str(), "--password-stdin"];
            args.extend(flag);
            let output = tessera(&args, &app_env(&app), crate::helpers::PASSWORD);
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            let user: Value = serde_json::from_slice(&output.stdout).unwrap();
            assert_eq!(user["email_verified"], flag.is_some(), "{user}");
        }
        // Where verified addresses are required, only the vouched-for
        // account signs in.
        app.settings.accounts.require_verified_email = true;
        app.restart().await;
        assert_eq!(app.login(&vouched, crate::helpers::PASSWORD).await.status(), 200);
        crate::helpers::assert_problem(app.login(&plain, crate::helpers::PASSWORD).await, 403, "email_not_verified").await;
    }
}
