//! Token validation against a set of known keys: the rules every verifier
//! of Tessera tokens applies, Tessera itself included.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::{Claims, Error};

/// The JOSE `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Public keys by kid.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, DecodingKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.keys.keys()).finish()
    }
}

#[derive(Deserialize)]
struct JwkSetDocument {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RsaJwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl KeySet {
    /// The RS256 signing keys of a JWKS document; other keys are skipped.
    pub fn from_jwks(body: &[u8]) -> Result<KeySet, Error> {
        let document: JwkSetDocument =
            serde_json::from_slice(body).map_err(|e| Error::Jwks(format!("not a JWK set: {e}")))?;
        let mut set = KeySet::default();
        for value in document.keys {
            let Ok(jwk) = serde_json::from_value::<RsaJwk>(value) else {
                continue;
            };
            let usable = jwk.kty == "RSA"
                && jwk.use_.as_deref().is_none_or(|u| u == "sig")
                && jwk.alg.as_deref().is_none_or(|a| a == "RS256");
            if let (true, Some(kid), Some(n), Some(e)) = (usable, jwk.kid, jwk.n, jwk.e) {
                set.insert_rsa(kid, &n, &e)?;
            }
        }
        Ok(set)
    }

    /// Adds an RSA public key from its base64url JWK `n` and `e`.
    pub fn insert_rsa(&mut self, kid: String, n: &str, e: &str) -> Result<(), Error> {
        let key = DecodingKey::from_rsa_components(n, e)
            .map_err(|e| Error::Jwks(format!("bad RSA key {kid}: {e}")))?;
        self.keys.insert(kid, key);
        Ok(())
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What a valid token must say: who issued it, for whom, and the clock skew
/// tolerated.
#[derive(Clone)]
pub struct Rules {
    validation: Validation,
}

impl Rules {
    pub fn new(issuer: &str, audiences: &[impl ToString], leeway_seconds: u64) -> Rules {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(audiences);
        // Listing exp as required also closes CVE-2026-25537 (string exp).
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = leeway_seconds;
        Rules { validation }
    }

    /// The same checks but for the audience: for an authorization server
    /// introspecting tokens it issued for any audience (RFC 7662).
    pub fn any_audience(issuer: &str, leeway_seconds: u64) -> Rules {
        let mut rules = Rules::new(issuer, &[""], leeway_seconds);
        rules.validation.validate_aud = false;
        rules
            .validation
            .set_required_spec_claims(&["exp", "iss", "sub"]);
        rules
    }
}

/// The JOSE header fields verification looks at, parsed by hand so that
/// headers a JWT library would ignore (`crit`, `jku`, …) are refused.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    jku: Option<serde_json::Value>,
    x5u: Option<serde_json::Value>,
    jwk: Option<serde_json::Value>,
    x5c: Option<serde_json::Value>,
    crit: Option<serde_json::Value>,
}

/// The token's `kid`, after the header checks that need no key: RS256 only,
/// `typ` at+jwt, no key-locating or critical headers.
pub fn checked_kid(token: &str) -> Result<String, Error> {
    let header_b64 = token.split('.').next().unwrap_or_default();
    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| Error::Invalid("malformed token"))?;
    let header: RawHeader = serde_json::from_slice(&header_json)
        .map_err(|_| Error::Invalid("malformed token header"))?;
    if header.alg != "RS256" {
        return Err(Error::Invalid("token must be signed with RS256"));
    }
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return Err(Error::Invalid(
            "token is not an access token (typ must be at+jwt)",
        ));
    }
    if header.crit.is_some() {
        return Err(Error::Invalid("token has critical header extensions"));
    }
    if header.jku.is_some() || header.x5u.is_some() || header.jwk.is_some() || header.x5c.is_some()
    {
        return Err(Error::Invalid(
            "token names its own key; only published keys are trusted",
        ));
    }
    header.kid.ok_or(Error::Invalid("token has no kid"))
}

/// Verifies a token whose kid passed [`checked_kid`] with the key set.
pub fn verify_with(token: &str, kid: &str, keys: &KeySet, rules: &Rules) -> Result<Claims, Error> {
    let key = keys
        .keys
        .get(kid)
        .ok_or(Error::Invalid("token was not signed by a known key"))?;
    let data = jsonwebtoken::decode::<Claims>(token, key, &rules.validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        Error::Invalid(match e.kind() {
            ErrorKind::ExpiredSignature => "token has expired",
            ErrorKind::ImmatureSignature => "token is not valid yet",
            ErrorKind::InvalidIssuer => "token has the wrong issuer",
            ErrorKind::InvalidAudience => "token is not meant for this service",
            ErrorKind::InvalidSignature => "token signature is invalid",
            ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
            _ => "malformed token",
        })
    })?;
    Ok(data.claims)
}

/// Header checks, then signature and claims: the whole offline validation.
pub fn verify(token: &str, keys: &KeySet, rules: &Rules) -> Result<Claims, Error> {
    let kid = checked_kid(token)?;
    verify_with(token, &kid, keys, rules)
}
