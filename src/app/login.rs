//! The first-party password login (`POST /v1/auth/login`): the password
//! checked behind the account lockout, a session for the built-in client,
//! and its tokens.

use super::Services;
use crate::db::DbError;
use crate::ids::ClientId;
use crate::oauth::{self, IssuedTokens, OAuthError, SessionGrant};
use crate::sessions::{self, ClientInfo};
use crate::throttle::lockout::{self, LoginError};

#[derive(Debug, thiserror::Error)]
pub enum LoginFailure {
    #[error(transparent)]
    Login(#[from] LoginError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Token(#[from] OAuthError),
}

/// A login attempt: how the password check went (the metrics' `outcome`),
/// and the tokens or why there are none.
pub struct Attempt {
    pub outcome: &'static str,
    pub result: Result<IssuedTokens, LoginFailure>,
}

pub async fn password_login(
    services: &Services,
    email: &str,
    password: String,
    info: ClientInfo,
) -> Attempt {
    let checked = check_credentials(services, email, password).await;
    let outcome = lockout::outcome_label(&checked);
    let result = match checked {
        Ok(user) => start_session(services, user, info).await,
        Err(e) => Err(e.into()),
    };
    Attempt { outcome, result }
}

/// Checks an email and password behind the lockout, then whether the
/// account may sign in now (a verified address where one is required, no
/// new password owed): the rule every sign-in keeps, API and browser.
/// Those refusals go only to someone who knows the password.
pub async fn check_credentials(
    services: &Services,
    email: &str,
    password: String,
) -> Result<crate::accounts::User, LoginError> {
    let user = lockout::authenticate(
        &services.db,
        &services.hasher,
        services.lockout,
        email,
        password,
    )
    .await?;
    crate::accounts::may_sign_in(&user, services.accounts.require_verified_email)?;
    Ok(user)
}

async fn start_session(
    services: &Services,
    user: crate::accounts::User,
    info: ClientInfo,
) -> Result<IssuedTokens, LoginFailure> {
    let login = &services.login;
    let scope = oauth::login_scope(&login.scope, &user.roles);
    let started = sessions::start_login(
        &services.db,
        services.sessions,
        user.id.clone(),
        ClientId::new(&login.client_id),
        scope.clone(),
        info,
    )
    .await?;
    let issuance = services.issuance();
    Ok(issuance
        .for_session(SessionGrant {
            user_id: &user.id,
            roles: user.roles,
            client: &issuance.login_client(),
            scope: &scope,
            resources: &[],
            session_id: &started.session_id,
            refresh_token: &started.refresh_token,
        })
        .await?)
}
