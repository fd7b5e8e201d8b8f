use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::both_backends;
use crate::helpers::TestApp;

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
