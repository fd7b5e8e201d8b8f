//! The keys folder on disk: reading PEM files and creating new keys with
//! owner-only permissions. A key's creation time is carried in its file name
//! (`tessera-YYYYMMDDTHHMMSS.ffffffZ.pem`, to the microsecond, so two
//! rotations in one second don't collide and their order is known; names to
//! the second, `tessera-YYYYMMDDTHHMMSSZ.pem`, are read too), so it is the
//! same on every instance; a key made for an emergency rotation, to sign at
//! once, is named `tessera-…Z-now.pem`. A revoked key is renamed
//! `….pem.revoked-YYYYMMDDTHHMMSS.ffffffZ` (when it was revoked), and never
//! used.

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};

use super::KeyError;

const NAME_PREFIX: &str = "tessera-";
/// Written to the microsecond; read with any fraction, or none.
const NAME_TIME_FORMAT: &str = "%Y%m%dT%H%M%S%.6fZ";
const NAME_TIME_PARSE: &str = "%Y%m%dT%H%M%S%.fZ";
const IMMEDIATE_SUFFIX: &str = "-now";
const REVOKED_MARK: &str = ".revoked-";
/// How many later microseconds a new key's name may take when its own is
/// taken (another rotation in the same microsecond).
const NAME_ATTEMPTS: u32 = 1000;

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
    // Bytes, not text: a `.pem` whose name isn't UTF-8 is still a key file
    // (reported, as it carries no creation time we can read).
    let name = path.file_name()?.as_bytes();
    if name.ends_with(b".pem") {
        return Some(None);
    }
    // The time has a dot in it: the name is split by hand, not by extension.
    let mark = REVOKED_MARK.as_bytes();
    let at = name.windows(mark.len()).rposition(|w| w == mark)?;
    if !name[..at].ends_with(b".pem") {
        return None;
    }
    let stamp = std::str::from_utf8(&name[at + mark.len()..]).ok()?;
    parse_time(stamp).map(Some)
}

/// The creation time a key file's name carries, and whether the key signs
/// at once; a revoked file's name is read without its `.revoked-…` suffix.
pub fn creation_from_name(path: &Path, revoked: bool) -> Result<(DateTime<Utc>, bool), String> {
    let name = path.file_name().and_then(|n| n.to_str());
    let named = match name {
        Some(name) if revoked => name
            .rsplit_once(REVOKED_MARK)
            .map(|(stem, _)| stem.to_owned()),
        other => other.map(str::to_owned),
    };
    named.as_deref().and_then(times_from_name).ok_or_else(|| {
        format!(
            "the name must carry the creation time: rename it {NAME_PREFIX}YYYYMMDDTHHMMSSZ.pem"
        )
    })
}

fn parse_time(stamp: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(stamp, NAME_TIME_PARSE)
        .ok()
        .map(|t| t.and_utc())
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
    revoked.push(format!("{REVOKED_MARK}{}", now.format(NAME_TIME_FORMAT)));
    let revoked = PathBuf::from(revoked);
    fs::rename(path, &revoked).map_err(|e| KeyError::Unusable {
        path: path.display().to_string(),
        reason: format!("cannot rename: {e}"),
    })?;
    Ok(revoked)
}

/// The creation time in a file name, and whether the key signs at once.
fn times_from_name(name: &str) -> Option<(DateTime<Utc>, bool)> {
    let stamp = name.strip_suffix(".pem")?.strip_prefix(NAME_PREFIX)?;
    let (stamp, immediate) = match stamp.strip_suffix(IMMEDIATE_SUFFIX) {
        Some(stamp) => (stamp, true),
        None => (stamp, false),
    };
    parse_time(stamp).map(|t| (t, immediate))
}

/// A key file's name for a creation time (to the microsecond).
fn key_name(created_at: DateTime<Utc>, immediate: bool) -> String {
    let suffix = if immediate { IMMEDIATE_SUFFIX } else { "" };
    format!(
        "{NAME_PREFIX}{}{suffix}.pem",
        created_at.format(NAME_TIME_FORMAT)
    )
}

/// Generates a key and writes it as PKCS#8 PEM, mode 0600, in a folder of
/// mode 0700, named for `now` to the microsecond. Written under a temporary
/// name and then linked into place, so no instance ever reads half a key,
/// and none is replaced: when the name is taken (another rotation in the
/// same microsecond), the next microsecond's is used.
pub fn create_key(
    dir: &Path,
    bits: usize,
    now: DateTime<Utc>,
    immediate: bool,
) -> Result<KeyFile, KeyError> {
    write_key(dir, bits, now, immediate, NAME_ATTEMPTS)
}

/// The first key of an empty folder, named for the whole second: instances
/// starting together on one folder make the same name, so one of them
/// writes it (the others get [`KeyError::Exists`] and use it) instead of
/// each starting with a key of its own that the others don't publish yet.
pub fn create_first_key(dir: &Path, bits: usize, now: DateTime<Utc>) -> Result<KeyFile, KeyError> {
    let second = now.with_nanosecond(0).unwrap_or(now);
    write_key(dir, bits, second, false, 1)
}

fn write_key(
    dir: &Path,
    bits: usize,
    now: DateTime<Utc>,
    immediate: bool,
    attempts: u32,
) -> Result<KeyFile, KeyError> {
    fs::create_dir_all(dir).map_err(|e| folder_error(dir, e))?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits)
        .map_err(|e| folder_error(dir, format!("key generation failed: {e}")))?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| folder_error(dir, format!("key encoding failed: {e}")))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        key_name(now, immediate),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(pem.as_bytes())?;
        file.sync_all()
    };
    let written = write().and_then(|()| {
        let mut taken = None;
        for attempt in 0..attempts {
            let path = dir.join(key_name(
                now + chrono::Duration::microseconds(attempt.into()),
                immediate,
            ));
            // A link, unlike a rename, never replaces an existing key.
            match fs::hard_link(&tmp, &path) {
                Ok(()) => return Ok(Ok(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => taken = Some(path),
                Err(e) => return Err(e),
            }
        }
        Ok(Err(taken.unwrap_or_default()))
    });
    let _ = fs::remove_file(&tmp);
    let path = match written {
        Ok(Ok(path)) => path,
        Ok(Err(taken)) => return Err(KeyError::Exists(taken.display().to_string())),
        Err(e) => return Err(folder_error(dir, format!("cannot write a new key: {e}"))),
    };
    let (created_at, immediate) = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(times_from_name)
        .unwrap_or((now, immediate));
    Ok(KeyFile {
        created_at,
        immediate,
        revoked: None,
        path,
        pem: pem.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_creation_time_to_the_microsecond_and_old_names_still_read() {
        let at = DateTime::parse_from_rfc3339("2026-11-23T10:15:00.123456789Z")
            .unwrap()
            .to_utc();
        let name = key_name(at, false);
        assert_eq!(name, "tessera-20261123T101500.123456Z.pem");
        let micros = DateTime::parse_from_rfc3339("2026-11-23T10:15:00.123456Z")
            .unwrap()
            .to_utc();
        assert_eq!(times_from_name(&name), Some((micros, false)));
        assert_eq!(
            times_from_name(&key_name(at, true)),
            Some((micros, true)),
            "{}",
            key_name(at, true)
        );
        let second = DateTime::parse_from_rfc3339("2026-11-23T10:15:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            times_from_name("tessera-20261123T101500Z.pem"),
            Some((second, false))
        );
        assert_eq!(
            times_from_name("tessera-20261123T101500Z-now.pem"),
            Some((second, true))
        );
        assert_eq!(times_from_name("tessera-20261123.pem"), None);

        // Revoked files, old and new, are recognised and read.
        for (name, revoked_at) in [
            (
                "tessera-20261123T101500.123456Z.pem.revoked-20261124T000000.000001Z",
                "2026-11-24T00:00:00.000001Z",
            ),
            (
                "tessera-20261123T101500Z.pem.revoked-20261124T000000Z",
                "2026-11-24T00:00:00Z",
            ),
        ] {
            let path = Path::new("/keys").join(name);
            let revoked = DateTime::parse_from_rfc3339(revoked_at).unwrap().to_utc();
            assert_eq!(key_file_kind(&path), Some(Some(revoked)), "{name}");
            assert!(creation_from_name(&path, true).is_ok(), "{name}");
        }
        for other in ["notes.txt", "x.pem.bak", "x.revoked-20261124T000000Z"] {
            assert_eq!(key_file_kind(Path::new(other)), None, "{other}");
        }
        let not_text = Path::new(std::ffi::OsStr::from_bytes(b"tessera-\xff.pem"));
        assert_eq!(key_file_kind(not_text), Some(None));
        assert!(creation_from_name(not_text, false).is_err());
    }

    #[test]
    fn two_keys_made_in_the_same_microsecond_get_two_names() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let first = create_key(dir.path(), 2048, now, false).unwrap();
        let second = create_key(dir.path(), 2048, now, false).unwrap();
        assert_ne!(first.path, second.path);
        assert!(first.created_at < second.created_at);
        let read = read_folder(dir.path()).unwrap();
        assert_eq!(read.keys.len(), 2);
        assert!(read.problems.is_empty());
    }

    #[test]
    fn instances_starting_together_share_the_first_key() {
        let dir = tempfile::tempdir().unwrap();
        let start = Utc::now().with_nanosecond(0).unwrap();
        let first = create_first_key(dir.path(), 2048, start).unwrap();
        let later_in_that_second = start + chrono::Duration::milliseconds(700);
        match create_first_key(dir.path(), 2048, later_in_that_second) {
            Err(KeyError::Exists(path)) => assert_eq!(path, first.path.display().to_string()),
            Err(other) => panic!("expected the name to be taken, got {other}"),
            Ok(made) => panic!(
                "expected the name to be taken, made {}",
                made.path.display()
            ),
        }
        let read = read_folder(dir.path()).unwrap();
        assert_eq!(read.keys.len(), 1);
        assert_eq!(read.keys[0].created_at, start);
    }
}
