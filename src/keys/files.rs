//! The keys folder on disk: reading PEM files and creating new keys with
//! owner-only permissions. A key's creation time is carried in its file name
//! (`tessera-YYYYMMDDTHHMMSSZ.pem`), so it is the same on every instance.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};

use super::KeyError;

const NAME_PREFIX: &str = "tessera-";
const NAME_TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// A PEM file read from the keys folder. The PEM text is the private key:
/// it must never be logged, hence no Debug.
pub struct KeyFile {
    pub path: PathBuf,
    pub created_at: DateTime<Utc>,
    pub pem: String,
}

fn folder_error(dir: &Path, e: impl std::fmt::Display) -> KeyError {
    KeyError::Folder {
        path: dir.display().to_string(),
        reason: e.to_string(),
    }
}

/// Reads every `*.pem` file in `dir` (a missing folder holds no keys).
pub fn read_keys(dir: &Path) -> Result<Vec<KeyFile>, KeyError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(folder_error(dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| folder_error(dir, e))?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("pem") {
            continue;
        }
        let unusable = |reason: String| KeyError::Unusable {
            path: path.display().to_string(),
            reason,
        };
        let metadata = entry.metadata().map_err(|e| unusable(e.to_string()))?;
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "key file is readable by group or others; chmod 600 it");
        }
        let pem = fs::read_to_string(&path).map_err(|e| unusable(e.to_string()))?;
        let created_at = created_at_from_name(&path).unwrap_or_else(|| {
            metadata
                .modified()
                .map(DateTime::<Utc>::from)
                .unwrap_or(DateTime::UNIX_EPOCH)
        });
        files.push(KeyFile {
            path,
            created_at,
            pem,
        });
    }
    Ok(files)
}

fn created_at_from_name(path: &Path) -> Option<DateTime<Utc>> {
    let stem = path.file_stem()?.to_str()?;
    let stamp = stem.strip_prefix(NAME_PREFIX)?;
    NaiveDateTime::parse_from_str(stamp, NAME_TIME_FORMAT)
        .ok()
        .map(|t| t.and_utc())
}

/// Generates a key and writes it as PKCS#8 PEM, mode 0600, in a folder of
/// mode 0700. Written under a temporary name and then linked into place, so no
/// instance ever reads half a key.
pub fn create_key(dir: &Path, bits: usize) -> Result<KeyFile, KeyError> {
    fs::create_dir_all(dir).map_err(|e| folder_error(dir, e))?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits)
        .map_err(|e| folder_error(dir, format!("key generation failed: {e}")))?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| folder_error(dir, format!("key encoding failed: {e}")))?;
    let now = Utc::now();
    let name = format!("{NAME_PREFIX}{}.pem", now.format(NAME_TIME_FORMAT));
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
        folder_error(dir, format!("cannot write {}: {e}", path.display()))
    })?;
    Ok(KeyFile {
        created_at: created_at_from_name(&path).unwrap_or(now),
        path,
        pem: pem.to_string(),
    })
}
