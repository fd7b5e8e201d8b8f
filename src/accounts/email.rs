use std::fmt;

/// An email address, normalised (trimmed, lower-case) and checked for shape
/// on construction, so every `Email` in the service is a usable one and two
/// spellings of the same address compare equal.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

const LOCAL_SPECIALS: &str = "!#$%&'*+/=?^_`{|}~.-";

impl Email {
    pub fn parse(raw: &str) -> Result<Email, &'static str> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("email is required");
        }
        if email.len() > 254 {
            return Err("email is longer than 254 characters");
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err("email must contain @");
        };
        if local.is_empty() || local.len() > 64 {
            return Err("the part before @ must be 1 to 64 characters");
        }
        if !local
            .chars()
            .all(|c| c.is_alphanumeric() || LOCAL_SPECIALS.contains(c))
        {
            return Err("the part before @ contains a character not allowed in an email address");
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err("the part before @ has a misplaced dot");
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err("the domain must contain a dot");
        }
        for label in &labels {
            if label.is_empty() || label.len() > 63 {
                return Err("the domain has an empty or overlong label");
            }
            if !label.chars().all(|c| c.is_alphanumeric() || c == '-')
                || label.starts_with('-')
                || label.ends_with('-')
            {
                return Err("the domain contains a character not allowed in a host name");
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
        {
            return Err("the domain must be a host name");
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Addresses are personal data: keep them out of debug output and logs.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn normalises_case_and_whitespace() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn accepts_common_shapes() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "o'neil@example.ie",
            "jörg@bücher.de",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            ".a@b.com",
            "a..b@c.com",
            "a@-b.com",
            "a@b..com",
            "a@1.2.3.4",
            "a\n@b.com",
            "<a>@b.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
    }
}
