//! The key ring: the keys folder as this instance last read it, and the view
//! of it at the current moment — which key signs, which are published (the
//! JWKS), which verify. The folder is read again periodically and on SIGHUP;
//! the view is recomputed whenever the clock passes a key's next change, so
//! every instance switches keys at the same moment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use tessera_verifier::KeySet;

use super::files::{self, KeyProblem};
use super::schedule::{KeyPolicy, KeyState, KeyTimes};
use super::{Jwks, KeyError, SigningKey, render_jwks};
use crate::clock::Clock;
use crate::secrets::stored_hash;

/// A key file, parsed.
struct LoadedKey {
    key: Arc<SigningKey>,
    path: PathBuf,
    immediate: bool,
    revoked: Option<DateTime<Utc>>,
    /// SHA-256 of the file's text: an unchanged file isn't parsed again, and
    /// the key text itself isn't kept around.
    digest: String,
}

/// The folder as last read.
#[derive(Default)]
struct Folder {
    keys: Vec<LoadedKey>,
    /// Files that can't be used, with why; and copies of a key another
    /// file already holds.
    problems: Vec<KeyProblem>,
}

/// The folder and the view of it at one moment, replaced together.
struct Snapshot {
    folder: Arc<Folder>,
    view: Arc<KeyView>,
    /// False until the folder was first read.
    loaded: bool,
}

/// The keys at one moment.
pub struct KeyView {
    active: Option<Arc<SigningKey>>,
    published: Vec<Arc<SigningKey>>,
    jwks: Jwks,
    verification: KeySet,
    /// When some key's state next changes; the view is stale from then on.
    valid_until: Option<DateTime<Utc>>,
}

impl KeyView {
    /// The key that signs new tokens.
    pub fn active(&self) -> Option<&Arc<SigningKey>> {
        self.active.as_ref()
    }

    /// A published key by kid.
    pub fn find(&self, kid: &str) -> Option<&Arc<SigningKey>> {
        self.published.iter().find(|k| k.kid() == kid)
    }

    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// The published keys, for verifying tokens.
    pub fn verification(&self) -> &KeySet {
        &self.verification
    }
}

/// One key file and its state: what `tessera keys list` and
/// `GET /v1/admin/keys` show (as `http::dto::KeyListing`).
#[derive(Debug, Clone)]
pub struct KeyListing {
    pub file: String,
    pub kid: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    /// next, active, previous, expired, revoked; or invalid.
    pub state: String,
    /// When the state next changes (null: it won't by itself).
    pub next_change_at: Option<DateTime<Utc>>,
    /// No token it signed can still be live: `keys prune` deletes it.
    pub retired: bool,
    pub error: Option<String>,
    pub path: PathBuf,
}

pub struct KeyRing {
    dir: PathBuf,
    policy: KeyPolicy,
    clock: Clock,
    snapshot: RwLock<Arc<Snapshot>>,
    /// One folder read at a time (periodic rescan and SIGHUP may meet).
    reloading: Mutex<()>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Reads the keys folder at start; when it holds no key file at all,
    /// creates a `bits`-bit key first (instances starting together in the
    /// same second share it; see [`files::create_first_key`]). Unusable
    /// files beside good
    /// keys are reported and skipped; with no usable key at all the start
    /// fails, naming the files.
    pub fn load_or_create(
        dir: &Path,
        bits: usize,
        policy: KeyPolicy,
        clock: Clock,
    ) -> Result<KeyRing, KeyError> {
        let read = files::read_folder(dir)?;
        if read.keys.is_empty() && read.problems.is_empty() {
            match files::create_first_key(dir, bits, clock()) {
                Ok(created) => tracing::info!(
                    path = %created.path.display(),
                    "created a new {bits}-bit signing key"
                ),
                Err(KeyError::Exists(path)) => {
                    tracing::info!(%path, "another instance created the first key")
                }
                Err(e) => return Err(e),
            }
        }
        let ring = Self::load(dir, policy, clock)?;
        let folder = ring.folder();
        if folder.keys.is_empty()
            && let Some(problem) = folder.problems.first()
        {
            return Err(KeyError::Unusable {
                path: problem.path.display().to_string(),
                reason: problem.reason.clone(),
            });
        }
        Ok(ring)
    }

    /// Reads the keys folder as it is.
    pub fn load(dir: &Path, policy: KeyPolicy, clock: Clock) -> Result<KeyRing, KeyError> {
        let empty = Arc::new(Folder::default());
        let view = Arc::new(build_view(&empty, &policy, Utc::now()));
        let ring = KeyRing {
            dir: dir.to_owned(),
            policy,
            clock,
            snapshot: RwLock::new(Arc::new(Snapshot {
                folder: empty,
                view,
                loaded: false,
            })),
            reloading: Mutex::new(()),
        };
        ring.reload()?;
        Ok(ring)
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn folder(&self) -> Arc<Folder> {
        self.snapshot().folder.clone()
    }

    /// Reads the folder again: new key files are published at once, removed
    /// or revoked ones no longer. A new file that can't be used is reported
    /// and skipped. A file that was in use and now can't be read, or now
    /// holds another key, keeps its last good key (and is reported): a
    /// passing I/O error or an in-place edit on one instance must not make
    /// it disagree with the others. When the folder itself can't be read,
    /// the keys already held stay in use.
    pub fn reload(&self) -> Result<(), KeyError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let read = files::read_folder(&self.dir)?;
        let previous = self.folder();
        let known: HashMap<&Path, &LoadedKey> = previous
            .keys
            .iter()
            .map(|k| (k.path.as_path(), k))
            .collect();
        let mut folder = Folder::default();
        let mut problems = read.problems;
        // A file in use that can't be read now: keep its key.
        problems.retain(|problem| match known.get(problem.path.as_path()) {
            Some(kept) => {
                folder.keys.push(kept.clone_entry());
                folder.problems.push(KeyProblem {
                    path: problem.path.clone(),
                    reason: format!("{} (the key read before is kept)", problem.reason),
                });
                false
            }
            None => true,
        });
        folder.problems.extend(problems);
        for file in read.keys {
            let digest = stored_hash(&file.pem);
            let before = known.get(file.path.as_path());
            if let Some(loaded) = before
                && loaded.digest == digest
                && loaded.revoked == file.revoked
            {
                folder.keys.push(loaded.clone_entry());
                continue;
            }
            match SigningKey::from_pem(&file.pem, file.created_at) {
                Ok(key) => {
                    if let Some(loaded) = before
                        && loaded.key.kid() != key.kid()
                    {
                        folder.keys.push(loaded.clone_entry());
                        folder.problems.push(KeyProblem {
                            path: file.path,
                            reason: "the file now holds another key; a new key needs a new file (tessera keys rotate); the key read before is kept".into(),
                        });
                        continue;
                    }
                    folder.keys.push(LoadedKey {
                        key: Arc::new(key),
                        path: file.path,
                        immediate: file.immediate,
                        revoked: file.revoked,
                        digest,
                    });
                }
                Err(reason) => match before {
                    Some(loaded) => {
                        folder.keys.push(loaded.clone_entry());
                        folder.problems.push(KeyProblem {
                            path: file.path,
                            reason: format!("{reason} (the key read before is kept)"),
                        });
                    }
                    None => folder.problems.push(KeyProblem {
                        path: file.path,
                        reason,
                    }),
                },
            }
        }
        // One key in two files counts once: a revoked copy revokes it, else
        // the earliest file stands and the others are reported.
        let revoked_kids: HashMap<String, DateTime<Utc>> = folder
            .keys
            .iter()
            .filter_map(|k| k.revoked.map(|at| (k.key.kid().to_owned(), at)))
            .collect();
        for k in folder.keys.iter_mut() {
            if let Some(at) = revoked_kids.get(k.key.kid()) {
                k.revoked = Some(*at);
            }
        }
        folder.keys.sort_by(|a, b| {
            a.key
                .created_at()
                .cmp(&b.key.created_at())
                .then(a.path.cmp(&b.path))
        });
        let mut seen = std::collections::HashSet::new();
        let mut duplicates = Vec::new();
        folder.keys.retain(|k| {
            let first = seen.insert(k.key.kid().to_owned());
            if !first {
                duplicates.push(KeyProblem {
                    path: k.path.clone(),
                    reason: format!(
                        "a copy of key {} held by another file; not used",
                        k.key.kid()
                    ),
                });
            }
            first
        });
        folder.problems.extend(duplicates);
        folder.problems.sort_by(|a, b| a.path.cmp(&b.path));
        for problem in &folder.problems {
            let new = !previous
                .problems
                .iter()
                .any(|p| p.path == problem.path && p.reason == problem.reason);
            if new {
                tracing::error!(path = %problem.path.display(), reason = %problem.reason, "key file not used as is");
            }
        }
        let changed = folder.keys.len() != previous.keys.len()
            || folder.keys.iter().zip(&previous.keys).any(|(a, b)| {
                a.key.kid() != b.key.kid() || a.immediate != b.immediate || a.revoked != b.revoked
            });
        let view = Arc::new(build_view(&folder, &self.policy, self.now()));
        if changed {
            tracing::info!(
                keys = folder.keys.len(),
                signing_kid = signing_kid(&view),
                "signing keys loaded"
            );
        }
        let mut slot = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        if slot.loaded {
            log_switch(&slot.view, &view);
        }
        *slot = Arc::new(Snapshot {
            folder: Arc::new(folder),
            view,
            loaded: true,
        });
        Ok(())
    }

    /// The keys now: recomputed when the clock has passed a key's change.
    pub fn view(&self) -> Arc<KeyView> {
        let now = self.now();
        let current = self.snapshot();
        if current.view.valid_until.is_none_or(|t| now < t) {
            return current.view.clone();
        }
        let view = Arc::new(build_view(&current.folder, &self.policy, now));
        let mut slot = self.snapshot.write().unwrap_or_else(|p| p.into_inner());
        // Only over the folder it was built from: a reload in between wins.
        if Arc::ptr_eq(&slot.folder, &current.folder) {
            log_switch(&slot.view, &view);
            *slot = Arc::new(Snapshot {
                folder: current.folder.clone(),
                view: view.clone(),
                loaded: slot.loaded,
            });
        }
        view
    }

    /// Every file in the folder, with its state now.
    pub fn listing(&self) -> Vec<KeyListing> {
        let folder = self.folder();
        let schedule = self.policy.schedule(&times(&folder), self.now());
        let mut out: Vec<KeyListing> = folder
            .keys
            .iter()
            .zip(schedule)
            .map(|(k, s)| KeyListing {
                file: file_name(&k.path),
                kid: Some(k.key.kid().to_owned()),
                created_at: Some(k.key.created_at()),
                state: state_name(s.state).to_owned(),
                next_change_at: s.next_change,
                retired: s.retired,
                error: None,
                path: k.path.clone(),
            })
            .collect();
        out.extend(folder.problems.iter().map(|p| KeyListing {
            file: file_name(&p.path),
            kid: None,
            created_at: None,
            state: "invalid".into(),
            next_change_at: None,
            retired: false,
            error: Some(p.reason.clone()),
            path: p.path.clone(),
        }));
        out
    }

    /// Every file holding the key `kid` (copies included), not yet revoked.
    pub fn paths_of(&self, kid: &str) -> Vec<PathBuf> {
        let Ok(read) = files::read_folder(&self.dir) else {
            return Vec::new();
        };
        read.keys
            .into_iter()
            .filter(|f| f.revoked.is_none())
            .filter(|f| SigningKey::from_pem(&f.pem, f.created_at).is_ok_and(|k| k.kid() == kid))
            .map(|f| f.path)
            .collect()
    }
}

impl LoadedKey {
    fn clone_entry(&self) -> LoadedKey {
        LoadedKey {
            key: self.key.clone(),
            path: self.path.clone(),
            immediate: self.immediate,
            revoked: self.revoked,
            digest: self.digest.clone(),
        }
    }
}

fn signing_kid(view: &KeyView) -> &str {
    view.active.as_ref().map(|k| k.kid()).unwrap_or("none")
}

/// Logs a change of the signing key between two views (kids only): once,
/// as the one view replaces the other under the snapshot's lock.
fn log_switch(before: &KeyView, after: &KeyView) {
    let (from, to) = (signing_kid(before), signing_kid(after));
    if from != to {
        tracing::info!(from_kid = from, to_kid = to, "signing key switched");
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn state_name(state: KeyState) -> &'static str {
    match state {
        KeyState::Next => "next",
        KeyState::Active => "active",
        KeyState::Previous => "previous",
        KeyState::Expired => "expired",
        KeyState::Revoked => "revoked",
    }
}

fn times(folder: &Folder) -> Vec<KeyTimes> {
    folder
        .keys
        .iter()
        .map(|k| KeyTimes {
            kid: k.key.kid().to_owned(),
            created_at: k.key.created_at(),
            immediate: k.immediate,
            revoked: k.revoked,
        })
        .collect()
}

fn build_view(folder: &Folder, policy: &KeyPolicy, now: DateTime<Utc>) -> KeyView {
    let schedule = policy.schedule(&times(folder), now);
    let mut active = None;
    let mut published = Vec::new();
    let mut verification = KeySet::default();
    for (k, s) in folder.keys.iter().zip(&schedule) {
        if s.state == KeyState::Active {
            active = Some(k.key.clone());
        }
        if s.state.is_published() {
            let jwk = k.key.public_jwk();
            // Our own keys were validated on load; a failure here is a bug.
            #[allow(clippy::expect_used, reason = "keys are validated when loaded")]
            verification
                .insert_rsa(jwk.kid.clone(), &jwk.n, &jwk.e)
                .expect("a loaded key has a valid public JWK");
            published.push(k.key.clone());
        }
    }
    // Newest first in the JWKS, as providers usually list them.
    published.sort_by(|a, b| {
        b.created_at()
            .cmp(&a.created_at())
            .then(a.kid().cmp(b.kid()))
    });
    let valid_until = schedule.iter().filter_map(|s| s.next_change).min();
    KeyView {
        jwks: render_jwks(&published),
        active,
        published,
        verification,
        valid_until,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use chrono::Duration;

    use super::*;

    /// What the ring logged, as text.
    #[derive(Clone, Default)]
    struct Logged(Arc<Mutex<Vec<u8>>>);

    impl Write for Logged {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Logged {
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
        }
    }

    #[test]
    fn each_switch_of_the_signing_key_is_logged_with_both_kids_once() {
        let logged = Logged::default();
        let writer = logged.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("tessera-20260101T000000Z.pem");
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/signing-key.pem"
            ),
            &first,
        )
        .unwrap();
        std::fs::set_permissions(&first, std::fs::Permissions::from_mode(0o600)).unwrap();
        let time = Arc::new(Mutex::new(Utc::now()));
        let clock: Clock = {
            let time = time.clone();
            Arc::new(move || *time.lock().unwrap())
        };
        let policy = KeyPolicy {
            prepublication: Duration::seconds(20),
            retention: Duration::seconds(60),
        };
        tracing::subscriber::with_default(subscriber, || {
            let ring = KeyRing::load(dir.path(), policy, clock.clone()).unwrap();
            let old = ring.view().active().unwrap().kid().to_owned();
            assert!(!logged.take().contains("switched"), "not at start");

            // An emergency key, read from the folder: logged once.
            files::create_key(dir.path(), 2048, clock(), true).unwrap();
            ring.reload().unwrap();
            let urgent = ring.view().active().unwrap().kid().to_owned();
            assert_ne!(urgent, old);
            ring.reload().unwrap();
            let log = logged.take();
            assert_eq!(log.matches("signing key switched").count(), 1, "{log}");
            assert!(
                log.contains(" INFO ")
                    && log.contains(&format!("from_kid=\"{old}\""))
                    && log.contains(&format!("to_kid=\"{urgent}\"")),
                "{log}"
            );

            // An ordinary key, when the clock reaches its activation: logged
            // once, however many requests look.
            *time.lock().unwrap() += Duration::seconds(1);
            files::create_key(dir.path(), 2048, clock(), false).unwrap();
            ring.reload().unwrap();
            assert_eq!(ring.view().active().unwrap().kid(), urgent);
            assert!(!logged.take().contains("switched"));
            *time.lock().unwrap() += Duration::seconds(20);
            let routine = ring.view().active().unwrap().kid().to_owned();
            assert_ne!(routine, urgent);
            ring.view();
            let log = logged.take();
            assert_eq!(log.matches("signing key switched").count(), 1, "{log}");
            assert!(
                log.contains(&format!("from_kid=\"{urgent}\""))
                    && log.contains(&format!("to_kid=\"{routine}\"")),
                "{log}"
            );
            assert!(!log.contains("PRIVATE"), "no key material");
        });
    }
}
