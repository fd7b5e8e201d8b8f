use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use super::Email;

pub const MIN_CHARS: usize = 8;
pub const MAX_BYTES: usize = 1024;

/// The most common passwords (SecLists), shipped in the binary.
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
});

/// A password that meets the policy: 8 characters or more, at most 1024
/// bytes, not the email address, not one of the most common passwords.
/// Only a `NewPassword` can be hashed into an account.
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(raw: String, email: &Email) -> Result<NewPassword, &'static str> {
        if raw.chars().count() < MIN_CHARS {
            return Err("password must be at least 8 characters");
        }
        if raw.len() > MAX_BYTES {
            return Err("password must be at most 1024 bytes");
        }
        // A login refuses them in any field: such a password could never
        // be used (a form, unlike JSON, isn't checked for them first).
        if raw.chars().any(char::is_control) {
            return Err("password must not contain control characters");
        }
        let lower = raw.to_lowercase();
        if lower == email.as_str() || email.as_str().split('@').next() == Some(lower.as_str()) {
            return Err("password must not be the email address");
        }
        if COMMON.contains(lower.as_str()) {
            return Err("password is one of the most commonly used passwords");
        }
        Ok(NewPassword(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email::parse("ada@example.com").unwrap()
    }

    #[test]
    fn policy() {
        assert!(NewPassword::parse("correct horse battery".into(), &email()).is_ok());
        assert!(NewPassword::parse("short".into(), &email()).is_err());
        assert!(NewPassword::parse("x".repeat(1025), &email()).is_err());
        assert!(NewPassword::parse("x".repeat(1024), &email()).is_ok());
        assert!(NewPassword::parse("Ada@Example.com".into(), &email()).is_err());
        assert!(NewPassword::parse("password".into(), &email()).is_err());
        assert!(NewPassword::parse("QwertyUiop".into(), &email()).is_err());
        // 8 characters, more than 8 bytes: characters are what count.
        assert!(NewPassword::parse("ééééééé".into(), &email()).is_err());
        assert!(NewPassword::parse("éééééééé".into(), &email()).is_ok());
    }
}
