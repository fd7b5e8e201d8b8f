//! The keys folder on disk: reading PEM files and creating new keys with
//! owner-only permissions. A key's creation time is carried in its file name
//! (`tessera-YYYYMMDDTHHMMSSZ.pem`), so it is the same on every instance; a
//! key made for an emergency rotation, to sign at once, is named
//! `tessera-YYYYMMDDTHHMMSSZ-now.pem`. A revoked key is renamed
//! `….pem.revoked-YYYYMMDDTHHMMSSZ` (when it was revoked), and never used.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};

use super::KeyError;

const NAME_PREFIX: &str = "tessera-";
const NAME_TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";
const IMMEDIATE_SUFFIX: &str = "-now";
const REVOKED_PREFIX: &str = "revoked-";

/// A PEM file read from the keys folder. The PEM text is the private key:
/// it must never be logged, hence no Debug.
pub struct KeyFile {
    pub path: PathBuf,
    pub created_at: DateTime<Utc>,
    /// Signs from creation, without the pre-publication delay.
    pub immediate: bool,
    /// When it was revoked (renamed `….revoked-TIME`): never used again.
    pub revoked: Option<DateTime<Utc>>,
    pub pem: String,
}

/// A `.pem` file in the keys folder that can't be used, and why.
#[derive(Debug, Clone)]
pub struct KeyProblem {
    pub path: PathBuf,
    pub reason: String,
}

fn folder_error(dir: &Path, e: impl std::fmt::Display) -> KeyError {
    KeyError::Folder {
        path: dir.display().to_string(),
        reason: e.to_string(),
    }
}

/// What the keys folder holds: key files (revoked ones included), and
/// files that can't be used (unreadable, readable by anyone, or without
/// a creation time in their name).
pub struct Folder {
    pub keys: Vec<KeyFile>,
    pub problems: Vec<KeyProblem>,
}

/// Reads every `*.pem` file in `dir` (a missing folder holds no keys).
pub fn read_folder(dir: &Path) -> Result<Folder, KeyError> {
    let mut folder = Folder {
        keys: Vec::new(),
        problems: Vec::new(),
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(folder),
        Err(e) => return Err(folder_error(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| folder_error(dir, e))?;
        let path = entry.path();
        let Some(revoked) = key_file_kind(&path) else {
            continue;
        };
        match read_key(&path, revoked) {
            Ok(file) => folder.keys.push(file),
            Err(reason) => folder.problems.push(KeyProblem { path, reason }),
        }
    }
    folder.keys.sort_by(|a, b| a.path.cmp(&b.path));
    folder.problems.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(folder)
}

/// Whether a file is a key file, by its name: `Some(None)` for `….pem`,
/// `Some(Some(when))` for `….pem.revoked-TIME`, None for any other file
/// (not read at all).
pub fn key_file_kind(path: &Path) -> Option<Option<DateTime<Utc>>> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("pem") => Some(None),
        Some(extension) if path.with_extension("").extension() == Some("pem".as_ref()) => extension
            .strip_prefix(REVOKED_PREFIX)
            .and_then(|stamp| NaiveDateTime::parse_from_str(stamp, NAME_TIME_FORMAT).ok())
            .map(|at| Some(at.and_utc())),
        _ => None,
    }
}

/// The creation time a key file's name carries, and whether the key signs
/// at once; a revoked file's name is read without its `.revoked-…` suffix.
pub fn creation_from_name(path: &Path, revoked: bool) -> Result<(DateTime<Utc>, bool), String> {
    let named = if revoked {
        path.with_extension("")
    } else {
        path.to_owned()
    };
    times_from_name(&named).ok_or_else(|| {
        format!(
            "the name must carry the creation time: rename it {NAME_PREFIX}YYYYMMDDTHHMMSSZ.pem"
        )
    })
}

fn read_key(path: &Path, revoked: Option<DateTime<Utc>>) -> Result<KeyFile, String> {
    let metadata = fs::metadata(path).map_err(|e| e.to_string())?;
    let mode = metadata.permissions().mode();
    if mode & 0o004 != 0 && revoked.is_none() {
        return Err(format!(
            "readable by everyone (mode {:o}); chmod 600 it",
            mode & 0o777
        ));
    }
    if mode & 0o070 != 0 {
        tracing::warn!(path = %path.display(), "key file is readable by its group; chmod 600 it");
    }
    // The creation time must come from the name: a file's mtime differs
    // between instances (and secret mounts rewrite it), so instances would
    // disagree on which key signs.
    let (created_at, immediate) = creation_from_name(path, revoked.is_some())?;
    let pem = fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    Ok(KeyFile {
        path: path.to_owned(),
        created_at,
        immediate,
        revoked,
        pem,
    })
}

/// Marks a key revoked at `now` by renaming its file; it is never used
/// again.
pub fn revoke(path: &Path, now: DateTime<Utc>) -> Result<PathBuf, KeyError> {
    let mut revoked = path.as_os_str().to_owned();
    revoked.push(format!(".{REVOKED_PREFIX}{}", now.format(NAME_TIME_FORMAT)));
    let revoked = PathBuf::from(revoked);
    fs::rename(path, &revoked).map_err(|e| KeyError::Unusable {
        path: path.display().to_string(),
        reason: format!("cannot rename: {e}"),
    })?;
    Ok(revoked)
}

/// The creation time in a file name, and whether the key signs at once.
fn times_from_name(path: &Path) -> Option<(DateTime<Utc>, bool)> {
    let stem = path.file_stem()?.to_str()?;
    let stamp = stem.strip_prefix(NAME_PREFIX)?;
    let (stamp, immediate) = match stamp.strip_suffix(IMMEDIATE_SUFFIX) {
        Some(stamp) => (stamp, true),
        None => (stamp, false),
    };
    NaiveDateTime::parse_from_str(stamp, NAME_TIME_FORMAT)
        .ok()
        .map(|t| (t.and_utc(), immediate))
}

/// Generates a key and writes it as PKCS#8 PEM, mode 0600, in a folder of
/// mode 0700, named for `now`. Written under a temporary name and then linked
/// into place, so no instance ever reads half a key, and none is replaced:
/// a name already taken (another instance, the same second) is
/// `KeyError::Exists`.
pub fn create_key(
    dir: &Path,
    bits: usize,
    now: DateTime<Utc>,
    immediate: bool,
) -> Result<KeyFile, KeyError> {
    fs::create_dir_all(dir).map_err(|e| folder_error(dir, e))?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits)
        .map_err(|e| folder_error(dir, format!("key generation failed: {e}")))?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| folder_error(dir, format!("key encoding failed: {e}")))?;
    let suffix = if immediate { IMMEDIATE_SUFFIX } else { "" };
    let name = format!("{NAME_PREFIX}{}{suffix}.pem", now.format(NAME_TIME_FORMAT));
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(pem.as_bytes())?;
        file.sync_all()?;
        // A link, unlike a rename, never replaces an existing key.
        fs::hard_link(&tmp, &path)?;
        fs::remove_file(&tmp)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            return KeyError::Exists(path.display().to_string());
        }
        folder_error(dir, format!("cannot write {}: {e}", path.display()))
    })?;
    let (created_at, immediate) = times_from_name(&path).unwrap_or((now, immediate));
    Ok(KeyFile {
        created_at,
        immediate,
        revoked: None,
        path,
        pem: pem.to_string(),
    })
}
