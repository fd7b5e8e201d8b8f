//! Access tokens: RFC 9068 JWTs signed RS256 with the active key, and their
//! verification for Tessera's own protected routes.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::keys::{KeyError, KeyStore};

/// The JOSE `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no signing key is available")]
    NoSigningKey,
    #[error(transparent)]
    Signing(#[from] KeyError),
    /// The token is not one of ours, or no longer valid. The text is safe
    /// to show the caller.
    #[error("{0}")]
    Invalid(&'static str),
}

/// The claims of an access token (RFC 9068 and DESIGN.md): no personal data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    #[serde(with = "audience")]
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// `aud` is a string when there is one audience, an array otherwise.
mod audience {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(aud: &[String], s: S) -> Result<S::Ok, S::Error> {
        match aud {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        })
    }
}

/// Who a token is for and what it allows.
#[derive(Debug, Clone)]
pub struct Grant {
    pub subject: String,
    pub client_id: String,
    pub audience: Vec<String>,
    pub scope: String,
    pub roles: Vec<String>,
    pub session_id: Option<String>,
}

/// A signed access token and its lifetime.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
}

/// Signs access tokens with the active key.
pub struct TokenIssuer {
    issuer: String,
    ttl_seconds: u64,
    keys: Arc<KeyStore>,
}

impl TokenIssuer {
    pub fn new(issuer: String, ttl_seconds: u64, keys: Arc<KeyStore>) -> TokenIssuer {
        TokenIssuer {
            issuer,
            ttl_seconds,
            keys,
        }
    }

    pub fn issue(&self, grant: Grant) -> Result<IssuedToken, TokenError> {
        let key = self.keys.active().ok_or(TokenError::NoSigningKey)?;
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: grant.subject,
            aud: grant.audience,
            exp: now + self.ttl_seconds as i64,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::now_v7().to_string(),
            client_id: grant.client_id,
            scope: grant.scope,
            roles: grant.roles,
            sid: grant.session_id,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        header.kid = Some(key.kid().to_owned());
        // ≈ 250 µs with the parsed key: short enough to stay on the worker.
        let token = key.sign_jws(&header, &claims)?;
        Ok(IssuedToken {
            token,
            expires_in: self.ttl_seconds,
        })
    }
}

/// The JOSE header fields verification looks at; parsed by hand so that
/// headers jsonwebtoken would not act on (`crit`, `jku`, …) are refused
/// rather than ignored.
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

/// Verifies access tokens against this instance's own keys.
pub struct TokenVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl TokenVerifier {
    pub fn new(
        issuer: &str,
        audience: &[String],
        leeway_seconds: u64,
        keys: &KeyStore,
    ) -> TokenVerifier {
        let keys = keys
            .keys()
            .iter()
            .filter_map(|k| {
                let jwk = k.public_jwk();
                DecodingKey::from_rsa_components(&jwk.n, &jwk.e)
                    .ok()
                    .map(|d| (jwk.kid.clone(), d))
            })
            .collect();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(audience);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = leeway_seconds;
        TokenVerifier { keys, validation }
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        use base64::Engine;
        let invalid = TokenError::Invalid;
        let header_b64 = token.split('.').next().unwrap_or_default();
        let header_json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| invalid("malformed token"))?;
        let header: RawHeader =
            serde_json::from_slice(&header_json).map_err(|_| invalid("malformed token header"))?;
        if header.alg != "RS256" {
            return Err(invalid("token must be signed with RS256"));
        }
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(invalid("token is not an access token (typ must be at+jwt)"));
        }
        if header.crit.is_some() {
            return Err(invalid("token has critical header extensions"));
        }
        if header.jku.is_some()
            || header.x5u.is_some()
            || header.jwk.is_some()
            || header.x5c.is_some()
        {
            return Err(invalid(
                "token names its own key; only published keys are trusted",
            ));
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or(invalid("token was not signed by a known key"))?;
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                invalid(match e.kind() {
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
}
