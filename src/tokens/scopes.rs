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

/// Scopes that reach Tessera's own API: never for third-party clients.
pub const TESSERA_API: [&str; 2] = [ACCOUNT, ADMIN];

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
    }
}
