//! OAuth 2.0 grants (RFC 6749): turning a login or a refresh token into a
//! token response. Errors are RFC 6749 §5.2 error codes.

use serde::Serialize;

use crate::accounts::{self, AccountError};
use crate::db::{Db, DbError};
use crate::sessions::{self, ClientInfo, RefreshToken, SessionError, SessionPolicy};
use crate::tokens::{Grant, TokenError, TokenIssuer};

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidGrant(&'static str),
    #[error("grant_type {0:?} is not supported")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidScope(&'static str),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl From<SessionError> for OAuthError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Db(e) => OAuthError::Db(e),
            SessionError::Reused => OAuthError::InvalidGrant(
                "the refresh token was already used; the session has been revoked",
            ),
            SessionError::InvalidGrant | SessionError::NotFound => {
                OAuthError::InvalidGrant("the refresh token is invalid, expired or revoked")
            }
        }
    }
}

/// RFC 6749 §5.1 token response.
#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
}

/// Who the tokens are for, in a session.
pub struct SessionGrant<'a> {
    pub user_id: &'a str,
    pub roles: Vec<String>,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub session_id: &'a str,
    pub refresh_token: &'a RefreshToken,
}

/// What every grant needs to issue tokens.
pub struct Issuance<'a> {
    pub issuer: &'a TokenIssuer,
    pub audience: &'a [String],
}

impl Issuance<'_> {
    /// An access token for a user's session, with its refresh token.
    pub fn for_session(&self, grant: SessionGrant<'_>) -> Result<TokenResponse, TokenError> {
        let issued = self.issuer.issue(Grant {
            subject: grant.user_id.to_owned(),
            client_id: grant.client_id.to_owned(),
            audience: self.audience.to_vec(),
            scope: grant.scope.to_owned(),
            roles: grant.roles,
            session_id: Some(grant.session_id.to_owned()),
        })?;
        Ok(TokenResponse {
            access_token: issued.token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            refresh_token: Some(grant.refresh_token.expose().to_owned()),
            scope: grant.scope.to_owned(),
        })
    }
}

/// A `grant_type=refresh_token` request (RFC 6749 §6).
pub struct RefreshRequest {
    pub refresh_token: String,
    pub client_id: Option<String>,
    pub scope: Option<String>,
}

/// Rotates the refresh token and issues a new access token with the user's
/// current roles; a narrower `scope` may be asked for, never a wider one.
pub async fn refresh_grant(
    db: &Db,
    policy: SessionPolicy,
    issuance: Issuance<'_>,
    request: RefreshRequest,
    client: ClientInfo,
) -> Result<TokenResponse, OAuthError> {
    let presented = RefreshToken::parse(&request.refresh_token).ok_or(OAuthError::InvalidGrant(
        "the refresh token is invalid, expired or revoked",
    ))?;
    let refreshed = sessions::refresh(db, policy, presented, client).await?;
    // A token is refreshed only by the client it was issued to.
    if request
        .client_id
        .as_deref()
        .is_some_and(|c| c != refreshed.client_id)
    {
        return Err(OAuthError::InvalidGrant(
            "the refresh token was issued to another client",
        ));
    }
    let scope = match request
        .scope
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => refreshed.scope.clone(),
        Some(asked) => {
            let granted: Vec<&str> = refreshed.scope.split_ascii_whitespace().collect();
            if !asked.split_ascii_whitespace().all(|s| granted.contains(&s)) {
                return Err(OAuthError::InvalidScope(
                    "the requested scope exceeds the scope originally granted",
                ));
            }
            asked.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
        }
    };
    let user = match accounts::find_by_id(db, refreshed.user_id.clone()).await {
        Ok(user) if !user.disabled => user,
        Ok(_) | Err(AccountError::NotFound) => {
            return Err(OAuthError::InvalidGrant("the account is disabled or gone"));
        }
        Err(AccountError::Db(e)) => return Err(e.into()),
        Err(e) => {
            tracing::error!(error = %e, "loading the user for a refresh failed");
            return Err(OAuthError::Db(DbError::Unavailable(e.to_string())));
        }
    };
    Ok(issuance.for_session(SessionGrant {
        user_id: &user.id,
        roles: user.roles,
        client_id: &refreshed.client_id,
        scope: &scope,
        session_id: &refreshed.session_id,
        refresh_token: &refreshed.refresh_token,
    })?)
}
