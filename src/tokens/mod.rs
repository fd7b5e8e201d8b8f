//! Access tokens: RFC 9068 JWTs signed RS256 with the active key, and their
//! verification for Tessera's own protected routes.

mod id_token;
pub mod scopes;

use std::sync::Arc;

use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;
pub use tessera_verifier::Claims;

use crate::ids::{SessionId, UserId};

/// A verified token's ids, typed: `sub` as a user's id (for a user's
/// token) and `sid` as its session's.
pub trait ClaimIds {
    fn user_id(&self) -> UserId;
    fn session_id(&self) -> Option<SessionId>;
}

impl ClaimIds for Claims {
    fn user_id(&self) -> UserId {
        UserId::new(&self.sub)
    }

    fn session_id(&self) -> Option<SessionId> {
        self.sid.as_ref().map(SessionId::new)
    }
}
use tessera_verifier::KeySet;
use tessera_verifier::validate::Rules;

use crate::keys::{KeyError, KeyRing};

pub use id_token::{IdClaims, IdGrant, IdTokenHint, at_hash};
pub use tessera_verifier::validate::ACCESS_TOKEN_TYP;

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
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    #[serde(serialize_with = "audience")]
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    /// Only for first-party clients and clients granted the `roles` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// `aud` is a string when there is one audience, an array otherwise
/// (RFC 7519 §4.1.3); verifiers read both.
fn audience<S: serde::Serializer>(aud: &[String], s: S) -> Result<S::Ok, S::Error> {
    match aud {
        [one] => one.serialize(s),
        many => many.serialize(s),
    }
}

/// Who a token is for and what it allows.
#[derive(Debug, Clone)]
pub struct Grant {
    pub subject: String,
    pub client_id: String,
    pub audience: Vec<String>,
    pub scope: String,
    /// The `roles` claim, when the client may see it.
    pub roles: Option<Vec<String>>,
    pub session_id: Option<String>,
}

/// The audiences that stand for Tessera itself: its own API
/// (`tokens.audience`), for first-party clients only, and the userinfo
/// endpoint, the audience of tokens good only there, which no client may
/// be registered for (it would see every such token at introspection).
#[derive(Debug, Clone)]
pub struct OwnAudiences {
    pub api: Vec<String>,
    pub userinfo: String,
}

impl OwnAudiences {
    pub fn new(issuer: &str, api: &[String]) -> OwnAudiences {
        OwnAudiences {
            api: api.to_vec(),
            userinfo: format!("{}/oauth2/userinfo", issuer.trim_end_matches('/')),
        }
    }

    /// Whether `audience` is (a spelling of) Tessera's own API: compared
    /// without regard to ASCII case, so no look-alike registration passes.
    pub fn is_api(&self, audience: &str) -> bool {
        self.api.iter().any(|a| a.eq_ignore_ascii_case(audience))
    }

    pub fn is_userinfo(&self, audience: &str) -> bool {
        self.userinfo.eq_ignore_ascii_case(audience)
    }
}

/// A signed access token and its lifetime.
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
}

// A bearer token is a credential: never in debug output.
impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Signs access tokens with the active key. Cheap to clone.
#[derive(Clone)]
pub struct TokenIssuer {
    issuer: String,
    ttl_seconds: u64,
    keys: Arc<KeyRing>,
}

impl TokenIssuer {
    pub fn new(issuer: String, ttl_seconds: u64, keys: Arc<KeyRing>) -> TokenIssuer {
        TokenIssuer {
            issuer,
            ttl_seconds,
            keys,
        }
    }

    /// Signs on the blocking pool: an RS256 signature takes 0.25–0.9 ms
    /// depending on the CPU, too long to hold an async worker.
    pub async fn issue(&self, grant: Grant) -> Result<IssuedToken, TokenError> {
        let issuer = self.clone();
        tokio::task::spawn_blocking(move || issuer.issue_now(grant))
            .await
            .map_err(|_| TokenError::Signing(KeyError::Sign))?
    }

    /// Signs on the calling thread.
    pub fn issue_now(&self, grant: Grant) -> Result<IssuedToken, TokenError> {
        let view = self.keys.view();
        let key = view.active().ok_or(TokenError::NoSigningKey)?;
        // The system clock, not the service's: every verifier (siblings
        // included) checks `exp`/`nbf` against its own system clock.
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
        let token = key.sign_jws(&header, &claims)?;
        Ok(IssuedToken {
            token,
            expires_in: self.ttl_seconds,
        })
    }
}

/// Verifies access tokens against this instance's own keys, with the same
/// rules `tessera-verifier` applies in sibling services.
pub struct TokenVerifier {
    /// The published keys, as they are at the moment of each verification.
    keys: Arc<KeyRing>,
    issuer: String,
    /// For Tessera's own routes: the token must be meant for Tessera.
    rules: Rules,
    /// For introspection: tokens Tessera issued for any audience.
    any_audience: Rules,
}

impl TokenVerifier {
    pub fn new(
        issuer: &str,
        audience: &[String],
        leeway_seconds: u64,
        keys: Arc<KeyRing>,
    ) -> TokenVerifier {
        TokenVerifier {
            keys,
            issuer: issuer.to_owned(),
            rules: Rules::new(issuer, audience, leeway_seconds),
            any_audience: Rules::any_audience(issuer, leeway_seconds),
        }
    }

    /// An access token for Tessera's own routes.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        Self::checked(token, self.keys.view().verification(), &self.rules)
    }

    /// An access token Tessera issued, for whatever audience.
    pub fn verify_any_audience(&self, token: &str) -> Result<Claims, TokenError> {
        Self::checked(token, self.keys.view().verification(), &self.any_audience)
    }

    fn checked(token: &str, keys: &KeySet, rules: &Rules) -> Result<Claims, TokenError> {
        tessera_verifier::validate::verify(token, keys, rules).map_err(|e| match e {
            tessera_verifier::Error::Invalid(why) => TokenError::Invalid(why),
            _ => TokenError::Invalid("token could not be verified"),
        })
    }
}
