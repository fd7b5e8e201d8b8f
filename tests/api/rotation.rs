//! Signing key rotation across instances that share a database and a keys
//! folder: a new key is published at once and signs after the
//! pre-publication delay, at the same moment everywhere; the old key stays
//! published until its tokens have expired. The key schedule runs on a
//! clock the test moves (no sleeping).

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use chrono::Duration;
use serde_json::Value;
use tessera_verifier::Verifier;

use crate::both_backends;
use crate::forgery::segment;
use crate::helpers::{
    FIXTURE_KEY_NAME, ManualClock, PASSWORD, TestApp, fixture_path, install_key, unique_email,
    wait_until,
};

/// The kids in an instance's JWKS.
async fn published(app: &TestApp) -> Vec<String> {
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Logs in on `app`; returns the access token and the kid that signed it.
async fn signed_by(app: &TestApp, email: &str) -> (String, String) {
    let body: Value = app.login(email, PASSWORD).await.json().await.unwrap();
    let token = body["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    let kid = segment(&token, 0)["kid"].as_str().unwrap().to_owned();
    (token, kid)
}

/// `GET /v1/admin/keys`, as a new administrator.
async fn admin_keys(app: &TestApp) -> Value {
    let admin = app.admin_token(&unique_email()).await;
    admin_keys_as(app, &admin).await
}

/// `GET /v1/admin/keys` with this token.
async fn admin_keys_as(app: &TestApp, admin: &str) -> Value {
    app.client
        .get(app.url("/v1/admin/keys"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `tessera keys rotate` as the library behind it does it, at `clock`'s time.
fn rotate(app: &TestApp, clock: &ManualClock, immediate: bool) -> String {
    let created =
        tessera::keys::files::create_key(&app.settings.keys.dir, 2048, clock.now(), immediate)
            .unwrap();
    let key = tessera::keys::SigningKey::from_pem(&created.pem, created.created_at).unwrap();
    key.kid().to_owned()
}

both_backends! {
    async fn two_instances_rotate_in_step(backend: Backend) {
        let clock = ManualClock::starting_now();
        let Some(a) = TestApp::spawn_clocked(backend, |_| {}, clock.clock()).await else {
            return;
        };
        let b = a.spawn_beside(clock.clock()).await;
        let email = unique_email();
        a.register(&email).await;
        let (old_token, old_kid) = signed_by(&a, &email).await;
        assert_eq!(signed_by(&b, &email).await.1, old_kid);

        // A new key: both instances publish it as soon as they read the folder,
        // and go on signing with the old one.
        let new_kid = rotate(&a, &clock, false);
        a.keys.reload().unwrap();
        b.keys.reload().unwrap();
        for app in [&a, &b] {
            let kids = published(app).await;
            assert!(
                kids.contains(&old_kid) && kids.contains(&new_kid),
                "{kids:?}"
            );
            assert_eq!(signed_by(app, &email).await.1, old_kid);
        }

        // Just before the delay is over: still the old key; just after: both
        // switch, with no message between them.
        let delay = Duration::seconds(a.settings.keys.prepublication_delay_seconds as i64);
        clock.advance(delay - Duration::seconds(1));
        assert_eq!(signed_by(&a, &email).await.1, old_kid);
        assert_eq!(signed_by(&b, &email).await.1, old_kid);
        clock.advance(Duration::seconds(1));
        let (from_a, kid_a) = signed_by(&a, &email).await;
        let (from_b, kid_b) = signed_by(&b, &email).await;
        assert_eq!(
            (kid_a.as_str(), kid_b.as_str()),
            (new_kid.as_str(), new_kid.as_str())
        );

        // Tokens from either verify on the other, old ones included.
        for (token, app) in [
            (&from_a, &b),
            (&from_b, &a),
            (&old_token, &a),
            (&old_token, &b),
        ] {
            assert_eq!(app.get_with_token("/v1/me", token).await.status(), 200);
        }

        // The old key stays published while a token it signed can live...
        let retention = Duration::seconds(
            (a.settings.tokens.access_ttl_seconds + a.settings.tokens.leeway_seconds) as i64,
        );
        clock.advance(retention - Duration::seconds(1));
        for app in [&a, &b] {
            assert!(published(app).await.contains(&old_kid));
            assert_eq!(app.get_with_token("/v1/me", &old_token).await.status(), 200);
        }
        // ...and not after.
        clock.advance(Duration::seconds(1));
        for app in [&a, &b] {
            assert_eq!(published(app).await, vec![new_kid.clone()]);
        }

        // The administrators' view says the same.
        let keys = admin_keys(&a).await;
        let state_of = |kid: &str| {
            keys["keys"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["kid"] == kid)
                .map(|k| k["state"].as_str().unwrap().to_owned())
        };
        assert_eq!(state_of(&new_kid).as_deref(), Some("active"));
        assert_eq!(state_of(&old_kid).as_deref(), Some("expired"));
        assert!(!keys.to_string().contains("PRIVATE"), "no key material");
    }
}

both_backends! {
    /// A sibling that caches the JWKS sees no failed verification across a
    /// full rotation: it learns the new key before anything is signed with it.
    async fn a_cached_verifier_never_meets_an_unknown_kid(backend: Backend) {
        let clock = ManualClock::starting_now();
        let tweak = |s: &mut tessera::configuration::Settings| {
            s.keys.jwks_max_age_seconds = 1;
            s.keys.rescan_interval_seconds = 1;
            s.keys.prepublication_delay_seconds = 3;
        };
        let Some(app) = TestApp::spawn_clocked(backend, tweak, clock.clock()).await else {
            return;
        };
        let verifier = Verifier::builder(&app.settings.issuer)
            .audience("tessera")
            .cache_bounds(
                std::time::Duration::from_millis(200),
                std::time::Duration::from_secs(1),
            )
            .discover()
            .await
            .unwrap();
        let email = unique_email();
        app.register(&email).await;
        let (old_token, _) = signed_by(&app, &email).await;
        verifier
            .verify_cached(&old_token)
            .expect("the current key is cached");

        let new_kid = rotate(&app, &clock, false);
        // The instance reads the folder within its rescan interval.
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while !published(&app).await.contains(&new_kid) {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("the new key is published within the rescan interval");
        // Within its cache lifetime, the sibling refreshes in the background.
        wait_until(
            "the sibling to learn the new key before it signs",
            std::time::Duration::from_secs(5),
            async || verifier.key_count() == 2,
        )
        .await;
        clock.advance(Duration::seconds(3));
        let (new_token, kid) = signed_by(&app, &email).await;
        assert_eq!(kid, new_kid);
        // From its cache alone, without a refetch: both the new and old tokens.
        verifier
            .verify_cached(&new_token)
            .expect("the new key was already cached");
        verifier
            .verify_cached(&old_token)
            .expect("the old key is still published");
    }
}

both_backends! {
    async fn unusable_key_files_are_reported_and_skipped(backend: Backend) {
        let Some(app) = TestApp::spawn_with(backend, |_| {}).await else {
            return;
        };
        let dir = &app.settings.keys.dir;
        let write = |name: &str, text: &str, mode: u32| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write("tessera-20260401T000000Z.pem", "not a key at all", 0o600);
        write(
            "unnamed.pem",
            &std::fs::read_to_string(fixture_path("other-key.pem")).unwrap(),
            0o600,
        );
        write(
            "tessera-20260402T000000Z.pem",
            concat!(
                "-----BEGIN EC ",
                "PRIVATE KEY-----\nMHcCAQEEIA==\n-----END EC ",
                "PRIVATE KEY-----\n"
            ),
            0o600,
        );
        let other = std::fs::read_to_string(fixture_path("other-key.pem")).unwrap();
        write("tessera-20260301T000000Z.pem", &other, 0o644);
        let short = {
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap();
            key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
                .unwrap()
                .to_string()
        };
        write("tessera-20260403T000000Z.pem", &short, 0o600);
        app.keys.reload().unwrap();

        let listing = admin_keys(&app).await;
        let error_of = |file: &str| {
            listing["keys"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["file"] == file)
                .map(|k| {
                    (
                        k["state"].as_str().unwrap().to_owned(),
                        k["error"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .unwrap_or_else(|| panic!("{file} listed: {listing}"))
        };
        for (file, why) in [
            ("tessera-20260401T000000Z.pem", "not an RSA private key"),
            ("tessera-20260402T000000Z.pem", "not an RSA private key"),
            ("tessera-20260301T000000Z.pem", "readable by everyone"),
            ("tessera-20260403T000000Z.pem", "1024 bits"),
            ("unnamed.pem", "creation time"),
        ] {
            let (state, error) = error_of(file);
            assert_eq!(state, "invalid", "{file}");
            assert!(error.contains(why), "{file}: {error}");
        }
        // The good key goes on signing; the JWKS holds only it.
        assert_eq!(app.get("/readyz").await.status(), 200);
        assert_eq!(published(&app).await.len(), 1);
        let email = unique_email();
        let token = app.access_token(&email).await;
        assert_eq!(app.get_with_token("/v1/me", &token).await.status(), 200);

        // Revoking the only good key: nothing can sign, and /readyz says so.
        tessera::keys::files::revoke(&dir.join(FIXTURE_KEY_NAME), chrono::Utc::now()).unwrap();
        app.keys.reload().unwrap();
        assert_eq!(app.get("/readyz").await.status(), 503);
        assert!(published(&app).await.is_empty());
        assert_eq!(
            app.login(&email, PASSWORD).await.status(),
            503,
            "no key can sign"
        );
        assert_eq!(
            app.get_with_token("/v1/me", &token).await.status(),
            401,
            "its key is revoked"
        );
    }
}

/// The state `GET /v1/admin/keys` gives each kid, and the kid it shows as
/// active (exactly one, or none).
async fn key_states(app: &TestApp) -> (Vec<(String, String)>, Option<String>) {
    states_in(&admin_keys(app).await)
}

fn states_in(listing: &Value) -> (Vec<(String, String)>, Option<String>) {
    let states: Vec<(String, String)> = listing["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap_or("").to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let active: Vec<&String> = states
        .iter()
        .filter(|(_, s)| s == "active")
        .map(|(kid, _)| kid)
        .collect();
    assert!(active.len() <= 1, "one signing key at most: {states:?}");
    let active = active.first().map(|k| (*k).clone());
    (states, active)
}

both_backends! {
    /// The reported case and its relatives, with a 20 s pre-publication delay
    /// and a first key created at start: an emergency key made inside the first
    /// key's window stays in force when the first key's activation comes, a
    /// second `--now` takes over from it, an ordinary rotation after them takes
    /// over after its delay, and no key that was superseded signs again — in
    /// the tokens, in `/v1/admin/keys`, on a second instance alike.
    async fn an_emergency_key_stays_in_force_and_superseded_keys_never_return(backend: Backend) {
        let clock = ManualClock::starting_now();
        let tweak = |s: &mut tessera::configuration::Settings| {
            // An empty folder: the first key is created at start, now.
            s.keys.dir = s.keys.dir.with_file_name("first-start");
            s.keys.jwks_max_age_seconds = 1;
            s.keys.rescan_interval_seconds = 1;
            s.keys.prepublication_delay_seconds = 20;
        };
        let Some(a) = TestApp::spawn_clocked(backend, tweak, clock.clock()).await else {
            return;
        };
        let b = a.spawn_beside(clock.clock()).await;
        let email = unique_email();
        a.register(&email).await;
        let reload = || {
            a.keys.reload().unwrap();
            b.keys.reload().unwrap();
        };
        // The kid that signs on both instances (they agree), as tokens and the
        // administrators' view show it.
        let signer = async || -> String {
            let (_, kid) = signed_by(&a, &email).await;
            assert_eq!(signed_by(&b, &email).await.1, kid, "both instances agree");
            let (_, active) = key_states(&a).await;
            assert_eq!(active.as_deref(), Some(kid.as_str()), "listed as active");
            kid
        };
        let state_of = async |kid: &str| -> String {
            let (states, _) = key_states(&b).await;
            states
                .into_iter()
                .find(|(k, _)| k == kid)
                .map(|(_, s)| s)
                .unwrap_or_else(|| panic!("{kid} listed"))
        };

        // The first key signs before its own activation: nothing else could.
        let first = signer().await;
        assert_eq!(state_of(&first).await, "active");

        // 5 s later, inside its window: an emergency rotation signs at once.
        clock.advance(Duration::seconds(5));
        let urgent = rotate(&a, &clock, true);
        reload();
        assert_eq!(signer().await, urgent);
        assert_eq!(state_of(&first).await, "previous");

        // The first key's scheduled activation comes and goes: the emergency
        // key goes on signing, however often the folder is read.
        for _ in 0..4 {
            clock.advance(Duration::seconds(5));
            reload();
            assert_eq!(signer().await, urgent);
            assert_eq!(state_of(&first).await, "previous");
        }

        // A second emergency rotation takes over at once from the first.
        clock.advance(Duration::seconds(1));
        let again = rotate(&a, &clock, true);
        reload();
        assert_eq!(signer().await, again);
        assert_eq!(state_of(&urgent).await, "previous");

        // An ordinary rotation: published at once, signing after its delay.
        clock.advance(Duration::seconds(1));
        let routine = rotate(&a, &clock, false);
        reload();
        assert!(published(&a).await.contains(&routine));
        assert_eq!(state_of(&routine).await, "next");
        clock.advance(Duration::seconds(19));
        assert_eq!(signer().await, again);
        clock.advance(Duration::seconds(1));
        assert_eq!(signer().await, routine);
        assert_eq!(state_of(&again).await, "previous");

        // Long after, the superseded keys expire; none ever signed again.
        let retention = Duration::seconds(
            (a.settings.tokens.access_ttl_seconds + a.settings.tokens.leeway_seconds) as i64,
        );
        clock.advance(retention);
        reload();
        assert_eq!(signer().await, routine);
        for kid in [&first, &urgent, &again] {
            assert_eq!(state_of(kid).await, "expired", "{kid}");
        }
        assert_eq!(published(&a).await, vec![routine.clone()]);
    }
}

both_backends! {
    /// Revoking the signing key hands signing to no key it superseded, even
    /// one still published: nothing signs until a newer key does.
    async fn revoking_the_signing_key_never_revives_a_superseded_one(backend: Backend) {
        let clock = ManualClock::starting_now();
        let Some(app) = TestApp::spawn_clocked(backend, |_| {}, clock.clock()).await else {
            return;
        };
        let email = unique_email();
        app.register(&email).await;
        // Logged in before: with no key signing, nobody can log in.
        let admin = app.admin_token(&unique_email()).await;
        let (_, old) = signed_by(&app, &email).await;
        let urgent = rotate(&app, &clock, true);
        app.keys.reload().unwrap();
        assert_eq!(signed_by(&app, &email).await.1, urgent);

        let path = app
            .keys
            .paths_of(&urgent)
            .pop()
            .expect("the urgent key's file");
        clock.advance(Duration::seconds(1));
        tessera::keys::files::revoke(&path, clock.now()).unwrap();
        app.keys.reload().unwrap();
        // The old key is still published (tokens it signed still verify) but
        // does not sign again.
        assert!(published(&app).await.contains(&old));
        assert_eq!(app.login(&email, PASSWORD).await.status(), 503);
        assert_eq!(app.get("/readyz").await.status(), 503);
        let (states, active) = states_in(&admin_keys_as(&app, &admin).await);
        assert_eq!(active, None, "{states:?}");
        assert!(
            states.contains(&(old.clone(), "previous".into())),
            "{states:?}"
        );

        // A new emergency key signs at once.
        clock.advance(Duration::seconds(1));
        let fresh = rotate(&app, &clock, true);
        app.keys.reload().unwrap();
        assert_eq!(signed_by(&app, &email).await.1, fresh);
        assert_eq!(app.get("/readyz").await.status(), 200);
    }
}

/// Runs the `tessera` binary with these settings (and no others from the
/// environment).
fn tessera(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command.args(args).stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("TESSERA__") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    command.output().unwrap()
}

fn json_stdout(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

#[test]
fn keys_cli_lists_rotates_revokes_and_prunes_only_expired_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let install = |fixture: &str, name: &str| {
        install_key(&keys, fixture, name);
    };
    // Long ago: one key superseded by another, both in the past.
    install("signing-key.pem", "tessera-20200101T000000Z.pem");
    install("other-key.pem", "tessera-20200601T000000Z.pem");
    let env = [("TESSERA__KEYS__DIR", keys.display().to_string())];
    let states = || -> Vec<(String, String)> {
        json_stdout(&tessera(&["keys", "list"], &env))
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["file"].as_str().unwrap().to_owned(),
                    k["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        states(),
        [
            (
                "tessera-20200101T000000Z.pem".to_owned(),
                "expired".to_owned()
            ),
            (
                "tessera-20200601T000000Z.pem".to_owned(),
                "active".to_owned()
            ),
        ]
    );

    let rotated = json_stdout(&tessera(&["keys", "rotate"], &env));
    assert_eq!(rotated["state"], "next");
    assert!(rotated["next_change_at"].is_string(), "{rotated}");
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    let new_file = rotated["file"].as_str().unwrap().to_owned();
    let mode = std::fs::metadata(keys.join(&new_file))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // Prune removes the expired key only.
    let pruned = json_stdout(&tessera(&["keys", "prune"], &env));
    assert_eq!(
        pruned["removed"],
        serde_json::json!(["tessera-20200101T000000Z.pem"])
    );
    let now = states();
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(now.contains(&("tessera-20200601T000000Z.pem".into(), "active".into())));
    assert!(now.contains(&(new_file.clone(), "next".into())));

    // Revoke: the key is out of use at once; the active key goes on.
    let revoked = json_stdout(&tessera(&["keys", "revoke", &new_kid], &env));
    assert_eq!(revoked["revoked"], new_kid.as_str());
    let revoked_path = revoked["files"][0].as_str().unwrap().to_owned();
    let revoked_file = revoked_path.rsplit('/').next().unwrap().to_owned();
    assert!(
        revoked_file.starts_with(&format!("{new_file}.revoked-")),
        "{revoked}"
    );
    assert!(revoked["signing_kid"].is_string(), "{revoked}");
    assert!(states().contains(&(revoked_file.clone(), "revoked".into())));
    // Revoked before it ever signed, it retires nothing and may go at once.
    let pruned = json_stdout(&tessera(&["keys", "prune"], &env));
    assert_eq!(pruned["removed"], serde_json::json!([revoked_file]));
    let output = tessera(&["keys", "revoke", "no-such-kid"], &env);
    assert!(!output.status.success());
    // Kids are base64url: one may begin with '-', and is still a kid.
    let output = tessera(&["keys", "revoke", "-no-such-kid"], &env);
    assert!(String::from_utf8_lossy(&output.stderr).contains("no unrevoked key"));

    // An emergency key signs at once.
    let urgent = json_stdout(&tessera(&["keys", "rotate", "--now"], &env));
    assert_eq!(urgent["state"], "active");
}

/// SIGHUP makes a running server read the keys folder at once.
#[test]
fn sighup_reloads_the_keys_folder() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    install_key(&keys, "signing-key.pem", FIXTURE_KEY_NAME);
    let port = crate::helpers::free_port();
    let address = format!("http://127.0.0.1:{port}");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let server = Kill(
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .env("TESSERA__KEYS__DIR", &keys)
            .env(
                "TESSERA__DATABASE__URL",
                format!("sqlite://{}", dir.path().join("t.db").display()),
            )
            .env("TESSERA__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("TESSERA__ISSUER", &address)
            // Long enough that only the signal can explain a quick reload.
            .env("TESSERA__KEYS__RESCAN_INTERVAL_SECONDS", "3600")
            .env("TESSERA__KEYS__PREPUBLICATION_DELAY_SECONDS", "4000")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let count = || published_over_tcp(port);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count() != Some(1) {
        assert!(std::time::Instant::now() < deadline, "the server starts");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    tessera::keys::files::create_key(&keys, 2048, chrono::Utc::now(), false).unwrap();
    // Nothing but the signal may make it read the folder (the rescan is an
    // hour away); a moment's chance to do so wrongly.
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(count(), Some(1), "not read yet");
    let pid = server.0.id().to_string();
    let status = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while count() != Some(2) {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP reloads the keys"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// How many keys the JWKS on `port` lists, by a plain HTTP/1.1 request
/// (this test runs outside any async runtime); None while nothing answers.
fn published_over_tcp(port: u16) -> Option<usize> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(
            b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let body = response.split_once("\r\n\r\n")?.1;
    let jwks: Value = serde_json::from_str(body).ok()?;
    Some(jwks["keys"].as_array()?.len())
}

/// A key file edited in place keeps its key (an instance must not switch
/// keys on its own); a copy of a key counts once, and revoking the key
/// revokes every copy.
#[test]
fn files_changing_under_the_ring_do_not_switch_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let install = |fixture: &str, name: &str| {
        install_key(&keys, fixture, name);
    };
    install("signing-key.pem", FIXTURE_KEY_NAME);
    let policy = tessera::keys::KeyPolicy {
        prepublication: Duration::seconds(600),
        retention: Duration::seconds(930),
    };
    let ring = tessera::keys::KeyRing::load(&keys, policy, tessera::keys::system_clock()).unwrap();
    let kid = ring.view().active().unwrap().kid().to_owned();

    // The same key under a second name: used once, the copy reported.
    install("signing-key.pem", "tessera-20260102T000000Z.pem");
    ring.reload().unwrap();
    let listing = ring.listing();
    let copy = listing
        .iter()
        .find(|k| k.file == "tessera-20260102T000000Z.pem")
        .unwrap();
    assert_eq!(copy.state, "invalid");
    assert!(copy.error.as_deref().unwrap().contains("copy"), "{copy:?}");
    assert_eq!(ring.view().active().unwrap().kid(), kid);

    // The active file overwritten with another key: the old key stays.
    install("other-key.pem", FIXTURE_KEY_NAME);
    ring.reload().unwrap();
    assert_eq!(ring.view().active().unwrap().kid(), kid);
    let replaced = ring
        .listing()
        .into_iter()
        .find(|k| k.file == FIXTURE_KEY_NAME && k.state == "invalid");
    assert!(replaced.is_some_and(|k| k.error.unwrap().contains("another key")));

    // Revoking the key renames every file that holds it.
    install("signing-key.pem", FIXTURE_KEY_NAME);
    let env = [("TESSERA__KEYS__DIR", keys.display().to_string())];
    let revoked = json_stdout(&tessera(&["keys", "revoke", &kid], &env));
    assert_eq!(revoked["files"].as_array().unwrap().len(), 2, "{revoked}");
    ring.reload().unwrap();
    assert!(ring.view().active().is_none());
    assert!(ring.view().jwks().body.len() < 20, "nothing published");
}
