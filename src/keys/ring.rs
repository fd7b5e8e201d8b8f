//! The key ring: the keys folder as this instance last read it, and the view
//! of it at the current moment — which key signs, which are published (the
//! JWKS), which verify. The folder is read again periodically and on SIGHUP;
//! the view is recomputed whenever the clock passes a key's next change, so
//! every instance switches keys at the same moment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tessera_verifier::KeySet;

use super::files::{self, KeyProblem};
use super::schedule::{KeyPolicy, KeyState, KeyTimes};
use super::{Jwks, KeyError, SigningKey, render_jwks};

/// Where "now" comes from: the system clock, or a test's.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// A usable key file, parsed.
struct LoadedKey {
    key: Arc<SigningKey>,
    path: PathBuf,
    immediate: bool,
    /// The file's text, to skip re-parsing an unchanged file on rescan.
    /// Never printed.
    pem: String,
}

/// The folder as last read.
#[derive(Default)]
struct Folder {
    keys: Vec<LoadedKey>,
    problems: Vec<KeyProblem>,
    revoked: Vec<PathBuf>,
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

/// One key file as `tessera keys list` and `GET /v1/admin/keys` show it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyListing {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// next, active, previous, expired; or invalid, revoked.
    pub state: String,
    /// When the state next changes (none: it won't by itself).
    pub next_change_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub path: PathBuf,
}

pub struct KeyRing {
    dir: PathBuf,
    policy: KeyPolicy,
    clock: Clock,
    folder: RwLock<Arc<Folder>>,
    view: RwLock<Arc<KeyView>>,
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
    /// creates a `bits`-bit key first (another instance creating one in the
    /// same second is fine: its key is used). Unusable files beside good
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
            match files::create_key(dir, bits, clock(), false) {
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
        let folder = ring.folder.read().expect("key folder lock").clone();
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
        let ring = KeyRing {
            dir: dir.to_owned(),
            policy,
            clock,
            folder: RwLock::new(Arc::new(Folder::default())),
            view: RwLock::new(Arc::new(build_view(
                &Folder::default(),
                &policy,
                Utc::now(),
            ))),
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

    /// Reads the folder again: new key files are published at once, removed
    /// or revoked ones no longer. Files that can't be used are reported and
    /// skipped; when the folder itself can't be read, the keys already held
    /// stay in use.
    pub fn reload(&self) -> Result<(), KeyError> {
        let read = files::read_folder(&self.dir)?;
        let previous = self.folder.read().expect("key folder lock").clone();
        let known: HashMap<&Path, &LoadedKey> = previous
            .keys
            .iter()
            .map(|k| (k.path.as_path(), k))
            .collect();
        let mut folder = Folder {
            keys: Vec::new(),
            problems: read.problems,
            revoked: read.revoked,
        };
        for file in read.keys {
            if let Some(loaded) = known.get(file.path.as_path())
                && loaded.pem == file.pem
                && loaded.immediate == file.immediate
            {
                folder.keys.push(LoadedKey {
                    key: loaded.key.clone(),
                    path: file.path,
                    immediate: file.immediate,
                    pem: file.pem,
                });
                continue;
            }
            match SigningKey::from_pem(&file.pem, file.created_at) {
                Ok(key) => folder.keys.push(LoadedKey {
                    key: Arc::new(key),
                    path: file.path,
                    immediate: file.immediate,
                    pem: file.pem,
                }),
                Err(reason) => folder.problems.push(KeyProblem {
                    path: file.path,
                    reason,
                }),
            }
        }
        // The same key in two files counts once (the earlier file).
        folder.keys.sort_by(|a, b| {
            a.key
                .created_at()
                .cmp(&b.key.created_at())
                .then(a.path.cmp(&b.path))
        });
        let mut seen = std::collections::HashSet::new();
        folder.keys.retain(|k| seen.insert(k.key.kid().to_owned()));
        for problem in &folder.problems {
            let new = !previous
                .problems
                .iter()
                .any(|p| p.path == problem.path && p.reason == problem.reason);
            if new {
                tracing::error!(path = %problem.path.display(), reason = %problem.reason, "key file not used");
            }
        }
        let changed = folder.keys.len() != previous.keys.len()
            || folder
                .keys
                .iter()
                .zip(&previous.keys)
                .any(|(a, b)| a.key.kid() != b.key.kid() || a.immediate != b.immediate);
        let view = build_view(&folder, &self.policy, self.now());
        if changed {
            tracing::info!(
                keys = folder.keys.len(),
                signing_kid = view.active.as_ref().map(|k| k.kid()).unwrap_or("none"),
                "signing keys loaded"
            );
        }
        *self.folder.write().expect("key folder lock") = Arc::new(folder);
        *self.view.write().expect("key view lock") = Arc::new(view);
        Ok(())
    }

    /// The keys now: recomputed when the clock has passed a key's change.
    pub fn view(&self) -> Arc<KeyView> {
        let now = self.now();
        let current = self.view.read().expect("key view lock").clone();
        if current.valid_until.is_none_or(|t| now < t) {
            return current;
        }
        let folder = self.folder.read().expect("key folder lock").clone();
        let view = Arc::new(build_view(&folder, &self.policy, now));
        *self.view.write().expect("key view lock") = view.clone();
        view
    }

    /// Every file in the folder, with its state now.
    pub fn listing(&self) -> Vec<KeyListing> {
        let folder = self.folder.read().expect("key folder lock").clone();
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
            error: Some(p.reason.clone()),
            path: p.path.clone(),
        }));
        out.extend(folder.revoked.iter().map(|path| KeyListing {
            file: file_name(path),
            kid: None,
            created_at: None,
            state: "revoked".into(),
            next_change_at: None,
            error: None,
            path: path.clone(),
        }));
        out
    }

    /// The file of a loaded key.
    pub fn path_of(&self, kid: &str) -> Option<PathBuf> {
        let folder = self.folder.read().expect("key folder lock").clone();
        folder
            .keys
            .iter()
            .find(|k| k.key.kid() == kid)
            .map(|k| k.path.clone())
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
