//! The key file target: the service's own key-file loading code.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use tessera::configuration::Settings;
use tessera::keys::files::{self, KeyFile};
use tessera::keys::{KeyRing, SigningKey, system_clock};
use tessera::tokens::{Grant, TokenIssuer, TokenVerifier};

fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| Settings::load(None).expect("the built-in default settings load"))
}

/// The key file target. The first line is a file name in the keys folder,
/// the rest its contents. Read as the loader reads a folder entry: the
/// name says whether it is a key file (revoked or not) and when it was
/// made, the contents must be UTF-8 PEM of an RSA key of 2048 bits or
/// more. A key the loader takes is then written to a real keys folder,
/// loaded by a key ring and, if it is the signing key, must sign a token
/// that verifies. True when the key is taken.
pub fn key_file(data: &[u8]) -> bool {
    let (name, contents) = match data.iter().position(|&b| b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (data, &[][..]),
    };
    // A name a directory entry can't have.
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return false;
    }
    let path = Path::new("/keys").join(OsStr::from_bytes(name));
    let Some(revoked) = files::key_file_kind(&path) else {
        return false;
    };
    let Ok((created_at, _immediate)) = files::creation_from_name(&path, revoked.is_some()) else {
        return false;
    };
    let Ok(pem) = std::str::from_utf8(contents) else {
        return false;
    };
    if SigningKey::from_pem(pem, created_at).is_err() {
        return false;
    }
    load_from_folder(name, contents);
    true
}

/// Writes a key file into a fresh keys folder and loads the folder as the
/// service does; if the key signs now, a token it signs must verify.
fn load_from_folder(name: &[u8], contents: &[u8]) {
    let settings = settings();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join(OsStr::from_bytes(name));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| file.write_all(contents));
    written.expect("a key file can be written to a temporary folder");
    let read = files::read_folder(dir.path()).expect("the folder reads");
    assert_eq!(
        read.keys.len() + read.problems.len(),
        1,
        "the file is seen as a key file"
    );
    if let Some(KeyFile { pem, .. }) = read.keys.first() {
        assert_eq!(pem.as_bytes(), contents, "the file reads back as written");
    }
    let ring = KeyRing::load(
        dir.path(),
        tessera::startup::key_policy(settings),
        system_clock(),
    );
    drop(dir);
    let ring = Arc::new(ring.expect("a folder of one good key loads"));
    let _ = ring.listing();
    let view = ring.view();
    if view.active().is_none() {
        return; // revoked, or not signing yet
    }
    let issuer = TokenIssuer::new(settings.issuer.clone(), 60, ring.clone());
    let verifier = TokenVerifier::new(&settings.issuer, &settings.tokens.audience, 0, ring.clone());
    let token = issuer
        .issue_now(Grant {
            subject: "fuzz".into(),
            client_id: "fuzz".into(),
            audience: settings.tokens.audience.clone(),
            scope: String::new(),
            roles: None,
            session_id: None,
        })
        .expect("a loaded signing key signs");
    verifier
        .verify(&token.token)
        .expect("a token signed with a loaded key verifies");
    let jwks: serde_json::Value =
        serde_json::from_slice(&view.jwks().body).expect("the JWKS is JSON");
    assert!(jwks["keys"].as_array().is_some_and(|k| !k.is_empty()));
}
