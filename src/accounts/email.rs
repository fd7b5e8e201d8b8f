use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// An email address in its normal form, checked for shape on construction,
/// so every `Email` in the service is a usable one and two spellings of the
/// same address — or two that look the same — compare equal.
///
/// The normal form follows RFC 8265's case-mapped profile: NFKC (which also
/// maps fullwidth and other compatibility forms to their plain letters),
/// then Unicode lower-casing. The domain is then converted by IDNA (UTS #46)
/// to its ASCII form, so `ｅｘａｍｐｌｅ.com` and `bücher.example` are stored
/// as `example.com` and `xn--bcher-kva.example`. As in RFC 8265, lower-casing
/// is `toLowerCase`, not full case folding: `ß` stays `ß` in the local part
/// (`strasse` and `straße` may be different mailboxes).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

const LOCAL_SPECIALS: &str = "!#$%&'*+/=?^_`{|}~.-";

/// NFKC, lower-case, and NFKC again: lower-casing can leave a sequence that
/// is not normalised, and parsing a normal form must give it back unchanged.
pub(crate) fn case_mapped(raw: &str) -> String {
    let mapped: String = raw.trim().nfkc().collect();
    mapped.to_lowercase().nfkc().collect()
}

impl Email {
    pub fn parse(raw: &str) -> Result<Email, &'static str> {
        // Bounds the work done on hostile input before normalising (NFKC
        // can lengthen a string); the real limit is checked at the end.
        if raw.len() > 1024 {
            return Err("email is longer than 254 characters");
        }
        let email = case_mapped(raw);
        if email.is_empty() {
            return Err("email is required");
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
        // UTS #46 mapping and validation; the result is checked as a plain
        // host name below (letters, digits, hyphens).
        let domain = idna::domain_to_ascii(domain)
            .map_err(|_| "the domain is not a valid internationalised domain name")?;
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err("the domain must contain a dot");
        }
        for label in &labels {
            if label.is_empty() || label.len() > 63 {
                return Err("the domain has an empty or overlong label");
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
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
        let email = format!("{local}@{domain}");
        if email.len() > 254 {
            return Err("email is longer than 254 characters");
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

    fn normal(raw: &str) -> String {
        Email::parse(raw).unwrap().as_str().to_owned()
    }

    #[test]
    fn fullwidth_and_compatibility_forms_are_the_plain_address() {
        // Fullwidth A in the local part, fullwidth letters in the domain,
        // a fullwidth @ and an ideographic full stop.
        assert_eq!(normal("\u{FF21}DMIN@example.com"), "admin@example.com");
        assert_eq!(
            normal("admin@\u{FF45}\u{FF58}\u{FF41}\u{FF4D}\u{FF50}\u{FF4C}\u{FF45}.com"),
            "admin@example.com"
        );
        assert_eq!(normal("admin\u{FF20}example.com"), "admin@example.com");
        assert_eq!(normal("admin@example\u{3002}com"), "admin@example.com");
        // A ligature and a composed/decomposed accent.
        assert_eq!(normal("\u{FB00}@example.com"), "ff@example.com");
        assert_eq!(normal("jo\u{0308}rg@example.com"), "j\u{F6}rg@example.com");
    }

    #[test]
    fn mixed_case_is_lower_cased_everywhere() {
        assert_eq!(normal("MiXeD.Case@ExAmPlE.Org"), "mixed.case@example.org");
        assert_eq!(normal("J\u{D6}RG@example.com"), "j\u{F6}rg@example.com");
        assert_eq!(
            normal("\u{0394}\u{0395}@example.com"),
            "\u{03B4}\u{03B5}@example.com"
        );
    }

    #[test]
    fn sharp_s_is_lower_cased_not_folded() {
        // RFC 8265 maps case with toLowerCase: capital sharp s becomes ß,
        // and ß is not folded to "ss" (a different mailbox).
        assert_eq!(
            normal("STRA\u{1E9E}E@example.com"),
            "stra\u{DF}e@example.com"
        );
        assert_eq!(normal("stra\u{DF}e@example.com"), "stra\u{DF}e@example.com");
        assert_ne!(
            normal("stra\u{DF}e@example.com"),
            normal("strasse@example.com")
        );
        // In the domain, IDNA (non-transitional) keeps ß as well.
        assert_eq!(normal("a@stra\u{DF}e.example"), "a@xn--strae-oqa.example");
    }

    #[test]
    fn idn_domains_are_stored_in_ascii() {
        assert_eq!(
            normal("j\u{F6}rg@b\u{FC}cher.example"),
            "j\u{F6}rg@xn--bcher-kva.example"
        );
        assert_eq!(normal("a@B\u{DC}CHER.example"), "a@xn--bcher-kva.example");
        // The ASCII form is its own normal form.
        assert_eq!(normal("a@XN--BCHER-KVA.example"), "a@xn--bcher-kva.example");
    }

    #[test]
    fn the_normal_form_is_stable() {
        for raw in [
            "\u{FF21}DMIN@\u{FF45}xample.com",
            "STRA\u{1E9E}E@B\u{DC}CHER.example",
            "\u{01C5}ivko@example.com",
            "\u{2167}@example.com",
        ] {
            let once = normal(raw);
            assert_eq!(normal(&once), once, "{raw:?}");
        }
    }

    #[test]
    fn invalid_idna_is_refused() {
        for bad in [
            // Not valid punycode, or punycode of something not allowed.
            "a@xn--a.example",
            "a@xn--bcher-kva-.example",
            "a@xn--ls8h-.example",
            // A label that starts with a combining mark; a joiner out of
            // context (UTS #46 validity criteria).
            "a@\u{0301}x.example",
            "a@b\u{200D}c.example",
        ] {
            assert_eq!(
                Email::parse(bad).err(),
                Some("the domain is not a valid internationalised domain name"),
                "{bad:?}"
            );
        }
        for bad in [
            // Characters that are no part of a host name, before or after
            // mapping.
            "a@ex_ample.com",
            "a@ex!ample.com",
            "a@ex ample.com",
            "a@\u{FF3F}x.com",
            // Too long once converted to ASCII.
            &format!("a@{}.example", "\u{FC}".repeat(60)),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }
}
