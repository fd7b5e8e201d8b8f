//! ID tokens (OpenID Connect Core §2): who signed in, for the client that
//! asked, signed with the same key as access tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{TokenError, TokenIssuer, TokenVerifier};

/// The claims of an ID token. Personal data only when the scopes ask.
#[derive(Debug, Clone, Serialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub at_hash: String,
    /// The SSO session (OpenID Connect Front-/Back-Channel Logout), which
    /// `id_token_hint` names at RP-initiated logout.
    pub sid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What an ID token says about the sign-in.
#[derive(Debug, Clone)]
pub struct IdGrant {
    pub subject: String,
    pub client_id: String,
    pub auth_time: i64,
    pub nonce: Option<String>,
    pub browser_session_id: String,
    /// Present when the scope includes `email`.
    pub email: Option<String>,
    /// Whether that address is verified (sent only with `email`).
    pub email_verified: bool,
    /// Present when the scope includes `profile` and the user has a name.
    pub name: Option<String>,
}

/// OIDC Core §3.1.3.6: the left half of SHA-256 of the access token,
/// base64url.
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

impl TokenIssuer {
    /// Signs an ID token to go with `access_token`, on the blocking pool.
    pub async fn issue_id_token(
        &self,
        grant: IdGrant,
        access_token: &str,
    ) -> Result<String, TokenError> {
        let issuer = self.clone();
        let at_hash = at_hash(access_token);
        tokio::task::spawn_blocking(move || {
            let view = issuer.keys.view();
            let key = view.active().ok_or(TokenError::NoSigningKey)?;
            let now = chrono::Utc::now().timestamp();
            let claims = IdClaims {
                iss: issuer.issuer.clone(),
                sub: grant.subject,
                aud: grant.client_id,
                exp: now + issuer.ttl_seconds as i64,
                iat: now,
                auth_time: grant.auth_time,
                nonce: grant.nonce,
                at_hash,
                sid: grant.browser_session_id,
                email_verified: grant.email.as_ref().map(|_| grant.email_verified),
                email: grant.email,
                name: grant.name,
            };
            let mut header = Header::new(Algorithm::RS256);
            header.typ = Some("JWT".to_owned());
            header.kid = Some(key.kid().to_owned());
            Ok(key.sign_jws(&header, &claims)?)
        })
        .await
        .map_err(|_| TokenError::Signing(crate::keys::KeyError::Sign))?
    }
}

/// What an `id_token_hint` tells: which client and which SSO session.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct IdTokenHint {
    pub sub: String,
    pub aud: String,
    #[serde(default)]
    pub sid: Option<String>,
}

impl TokenVerifier {
    /// An ID token we issued, presented as `id_token_hint` at logout: our
    /// signature and issuer, but an expired one is fine (OIDC RP-Initiated
    /// Logout §2). Access tokens (`typ` at+jwt) are not ID tokens.
    pub fn id_token_hint(&self, token: &str) -> Result<IdTokenHint, TokenError> {
        let invalid = |_| TokenError::Invalid("not an ID token issued here");
        let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
        if header.alg != Algorithm::RS256 || header.typ.as_deref() != Some("JWT") {
            return Err(TokenError::Invalid("not an ID token issued here"));
        }
        let view = self.keys.view();
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| view.find(kid))
            .ok_or(TokenError::Invalid("not an ID token issued here"))?;
        let jwk = key.public_jwk();
        let decoding =
            jsonwebtoken::DecodingKey::from_rsa_components(&jwk.n, &jwk.e).map_err(invalid)?;
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["iss", "sub", "aud"]);
        jsonwebtoken::decode::<IdTokenHint>(token, &decoding, &validation)
            .map(|data| data.claims)
            .map_err(invalid)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn at_hash_is_the_left_half_of_sha256() {
        // OpenID Connect Core, Appendix A.3 / A.4 example values.
        assert_eq!(
            super::at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
