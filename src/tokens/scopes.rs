//! The scopes that gate Tessera's own API, and scope lists as tokens carry
//! them (RFC 6749 §3.3: space-separated, order irrelevant).

/// Account routes: `/v1/me*` and `/v1/auth/logout`.
pub const ACCOUNT: &str = "tessera:account";
/// Administration routes, `/v1/admin/*`, together with the admin role held
/// in the database at request time. Granted only to first-party clients
/// and only to users who hold the role when the token is issued.
pub const ADMIN: &str = "tessera:admin";
/// The `roles` claim, for clients that are not first-party.
pub const ROLES: &str = "roles";

/// Whether `scope` belongs to Tessera's API: the two above, and — so a
/// look-alike can't be registered and mislead a lenient resource server —
/// anything in the `tessera:` namespace, in any ASCII case.
pub fn is_tessera_api(scope: &str) -> bool {
    scope
        .get(..PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
}

const PREFIX: &str = "tessera:";

/// Scopes about a user (OpenID Connect's and the `roles` claim): never in a
/// client's own token, which has no user.
pub const USER_CLAIMS: [&str; 4] = ["openid", "profile", "email", ROLES];

/// Whether the space-separated `scope` contains `wanted`.
pub fn has(scope: &str, wanted: &str) -> bool {
    scope.split_ascii_whitespace().any(|s| s == wanted)
}

/// `scope` without the scopes `drop` rejects, order kept.
pub fn without(scope: &str, drop: impl Fn(&str) -> bool) -> String {
    scope
        .split_ascii_whitespace()
        .filter(|s| !drop(s))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `scope` with `extra` added when missing.
pub fn with(scope: &str, extra: &[&str]) -> String {
    let mut all: Vec<&str> = scope.split_ascii_whitespace().collect();
    for s in extra {
        if !all.contains(s) {
            all.push(s);
        }
    }
    all.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_lists() {
        assert!(has("openid tessera:account", ACCOUNT));
        assert!(!has("openid tessera:accounts", ACCOUNT));
        assert_eq!(without("a tessera:admin b", |s| s == ADMIN), "a b");
        assert_eq!(with("a b", &["b", "c"]), "a b c");
        assert_eq!(with("", &[ACCOUNT]), ACCOUNT);
        assert!(is_tessera_api(ACCOUNT) && is_tessera_api(ADMIN));
        assert!(is_tessera_api("TESSERA:Admin") && is_tessera_api("tessera:other"));
        assert!(!is_tessera_api("tessera") && !is_tessera_api("orders:read"));
    }
}
