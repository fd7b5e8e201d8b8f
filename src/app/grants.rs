//! The token endpoint's grants (RFC 6749 §4.1.3, §6, §4.4): the client
//! authenticated (or, for a public client, named), then the grant of the
//! oauth domain that touches sessions, accounts and tokens.

use super::Services;
use crate::clients::{self, Client, ClientError};
use crate::ids::ClientId;
use crate::oauth::authorization::CodeRedemption;
use crate::oauth::{self, IssuedTokens, OAuthError, RefreshRequest};
use crate::sessions::ClientInfo;

/// Credentials a client presented, by either method. No Debug: the secret.
pub struct Credentials {
    pub id: String,
    pub secret: String,
}

/// The client these credentials belong to, None when none were presented;
/// wrong ones are `invalid_client`.
pub async fn authenticate(
    services: &Services,
    credentials: Option<Credentials>,
) -> Result<Option<Client>, OAuthError> {
    let Some(credentials) = credentials else {
        return Ok(None);
    };
    clients::authenticate(&services.db, credentials.id, credentials.secret)
        .await?
        .map(Some)
        .ok_or(OAuthError::InvalidClient)
}

/// A grant as the token request names it, its parameters read.
pub enum Grant {
    AuthorizationCode {
        /// Checked once the client is known, as RFC 6749 orders the errors.
        code: Option<String>,
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
        /// A public client names itself with `client_id` alone.
        client_id: Option<String>,
    },
    RefreshToken {
        refresh_token: String,
        /// The `client_id` a public client sends with it.
        client_id: Option<String>,
        scope: Option<String>,
    },
    ClientCredentials {
        scope: Option<String>,
    },
}

/// Answers a token request from `client` (authenticated, or None).
/// `resources` are RFC 8707 `resource` (or `audience`) values.
pub async fn token(
    services: &Services,
    client: Option<Client>,
    grant: Grant,
    resources: Vec<String>,
    info: ClientInfo,
) -> Result<IssuedTokens, OAuthError> {
    match grant {
        Grant::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
            client_id,
        } => {
            let client = match client {
                Some(client) => client,
                None => public_client(services, client_id).await?,
            };
            let code = code.ok_or_else(|| OAuthError::InvalidRequest("code is required".into()))?;
            let redemption = CodeRedemption {
                code,
                client,
                redirect_uri,
                code_verifier,
                resources,
            };
            oauth::authorization_code_grant(
                &services.db,
                services.sessions,
                services.issuance(),
                redemption,
                info,
            )
            .await
        }
        Grant::RefreshToken {
            refresh_token,
            client_id,
            scope,
        } => {
            let request = RefreshRequest {
                refresh_token,
                claimed_client_id: client_id,
                client,
                scope,
                resources,
            };
            oauth::refresh_grant(
                &services.db,
                services.sessions,
                services.issuance(),
                request,
                info,
            )
            .await
        }
        Grant::ClientCredentials { scope } => {
            let client = client.ok_or(OAuthError::InvalidClient)?;
            oauth::client_credentials_grant(
                &services.db,
                services.issuance(),
                client,
                scope.as_deref(),
                resources,
                info,
            )
            .await
        }
    }
}

/// A public client, identified by `client_id` alone (RFC 6749 §3.2.1); a
/// confidential client must authenticate.
async fn public_client(
    services: &Services,
    client_id: Option<String>,
) -> Result<Client, OAuthError> {
    let id = client_id.ok_or(OAuthError::InvalidClient)?;
    match clients::find(&services.db, ClientId::new(id)).await {
        Ok(client) if client.public => Ok(client),
        Ok(_) | Err(ClientError::NotFound) => Err(OAuthError::InvalidClient),
        Err(ClientError::Db(e)) => Err(e.into()),
        Err(e) => Err(OAuthError::Internal(e.to_string())),
    }
}
