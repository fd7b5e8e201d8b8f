//! The fuzz targets' inputs, replayed in the default test run: every seed
//! (`tests/fixtures/fuzz-seeds/<target>/`) and every input a fuzzer once
//! found a bug with (`fuzz/regressions/<target>/`) goes through the same
//! harness as under `fuzz/run`, which must not panic. A file named
//! `accept-…` must be accepted by the service and one named `reject-…`
//! refused (what "accepted" means for each target is in
//! `tessera_fuzzing`).

use std::path::{Path, PathBuf};

use tessera_fuzzing as fuzzing;

/// The repository's root, where the inputs are.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where each target's inputs are: the seeds among the test fixtures (some
/// are keys), what fuzzers found beside the targets.
const INPUT_FOLDERS: [&str; 2] = ["tests/fixtures/fuzz-seeds", "fuzz/regressions"];

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = root();
    let mut files = Vec::new();
    for folder in INPUT_FOLDERS {
        let Ok(entries) = std::fs::read_dir(root.join(folder).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable folder").path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Replays every input of `target`, then fails listing each that panicked
/// or was not accepted or refused as its name says.
fn replay(target: &str) {
    let files = inputs(target);
    assert!(
        files.iter().any(|f| is_named(f, "accept-"))
            && files.iter().any(|f| is_named(f, "reject-")),
        "{target}: the seeds must include accept-… and reject-… inputs"
    );
    let mut failures = Vec::new();
    for file in &files {
        let data = std::fs::read(file).expect("a readable input");
        let root = root();
        let name = file.strip_prefix(&root).unwrap_or(file);
        match std::panic::catch_unwind(|| fuzzing::run(target, &data).expect("a known target")) {
            Err(_) => failures.push(format!("{}: panicked (message above)", name.display())),
            Ok(false) if is_named(file, "accept-") => failures.push(format!(
                "{}: refused, but should be accepted",
                name.display()
            )),
            Ok(true) if is_named(file, "reject-") => failures.push(format!(
                "{}: accepted, but should be refused",
                name.display()
            )),
            Ok(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: {} of {} inputs failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

fn is_named(file: &Path, prefix: &str) -> bool {
    file.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(prefix))
}

#[test]
fn bearer_token_inputs() {
    replay("bearer_token");
}

#[test]
fn json_bodies_inputs() {
    replay("json_bodies");
}

#[test]
fn oauth_forms_inputs() {
    replay("oauth_forms");
}

#[test]
fn key_file_inputs() {
    replay("key_file");
}

#[test]
fn every_target_is_replayed() {
    assert_eq!(
        fuzzing::TARGETS,
        ["bearer_token", "json_bodies", "oauth_forms", "key_file"]
    );
    for target in fuzzing::TARGETS {
        assert!(fuzzing::run(target, b"").is_some(), "{target}");
    }
}

/// The header form reaches the real service: the harness user's token is
/// accepted, in either spelling of the scheme, and the same token altered
/// is not.
#[test]
fn a_real_access_token_is_accepted_and_a_tampered_one_refused() {
    let token = fuzzing::access_token();
    assert!(fuzzing::bearer_token(format!("Bearer {token}").as_bytes()));
    assert!(fuzzing::bearer_token(
        format!("bearer  {token} ").as_bytes()
    ));
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("Bearer {signed}.{flipped}{}", &signature[1..]);
    assert!(!fuzzing::bearer_token(tampered.as_bytes()));
    assert!(!fuzzing::bearer_token(format!("Basic {token}").as_bytes()));
}
