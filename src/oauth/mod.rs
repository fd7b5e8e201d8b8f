//! OAuth 2.0 grants (RFC 6749) and token introspection (RFC 7662): turning a
//! login, an authorization code, a refresh token or a client's credentials
//! into a token response. Errors are RFC 6749 §5.2 error codes. The browser
//! half of the authorization code flow is in [`authorization`].

pub mod authorization;

use crate::accounts::{self, ADMIN_ROLE, AccountError};
use crate::audit::{self, Event};
use crate::clients::{AUTHORIZATION_CODE, CLIENT_CREDENTIALS, Client, REFRESH_TOKEN};
use crate::db::{Db, DbError};
use crate::ids::UserId;
use crate::sessions::{self, Caller, ClientInfo, RefreshToken, SessionError, SessionPolicy};
use crate::tokens::{
    ClaimIds, Claims, Grant, IdGrant, OwnAudiences, TokenError, TokenIssuer, TokenVerifier, scopes,
};
use authorization::{CodeRedemption, RedeemError};

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("client authentication failed")]
    InvalidClient,
    #[error("{0}")]
    InvalidGrant(&'static str),
    #[error("{0}")]
    UnauthorizedClient(&'static str),
    #[error("grant_type {0:?} is not supported")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidScope(String),
    /// RFC 8707: a `resource` the client may not have tokens for.
    #[error("{0}")]
    InvalidTarget(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("{0}")]
    Internal(String),
}

impl From<SessionError> for OAuthError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Db(e) => OAuthError::Db(e),
            SessionError::Reused => OAuthError::InvalidGrant(
                "the refresh token was already used; the session has been revoked",
            ),
            SessionError::WrongClient => {
                OAuthError::InvalidGrant("the refresh token was issued to another client")
            }
            SessionError::ClientAuthRequired => OAuthError::InvalidClient,
            SessionError::ScopeExceeded => OAuthError::InvalidScope(
                "the requested scope exceeds the scope originally granted".into(),
            ),
            SessionError::InvalidGrant => {
                OAuthError::InvalidGrant("the refresh token is invalid, expired or revoked")
            }
        }
    }
}

/// Tokens just issued: a bearer access token, what it is for, and for a
/// session its refresh token (and with `openid`, an ID token).
#[derive(Debug)]
pub struct IssuedTokens {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: Option<String>,
    pub scope: String,
    pub id_token: Option<String>,
}

/// The client a token is issued to, as far as what its tokens may carry
/// is concerned.
#[derive(Debug, Clone)]
pub struct TokenClient {
    pub client_id: String,
    /// First-party clients may reach Tessera's own API and see `roles`.
    pub first_party: bool,
    /// The resources (`aud`) it may have tokens for.
    pub audiences: Vec<String>,
}

impl TokenClient {
    /// A registered client, with the audiences it may have now.
    pub fn registered(client: &Client, own: &OwnAudiences) -> TokenClient {
        TokenClient {
            client_id: client.client_id.clone(),
            first_party: client.first_party,
            audiences: client.allowed_audiences(own),
        }
    }
}

/// Who the tokens are for, in a session.
pub struct SessionGrant<'a> {
    pub user_id: &'a UserId,
    /// The user's roles now, in the database.
    pub roles: Vec<String>,
    pub client: &'a TokenClient,
    /// The scope of the session (what was granted and consented).
    pub scope: &'a str,
    /// RFC 8707 `resource`s asked for; none means the default.
    pub resources: &'a [String],
    pub session_id: &'a str,
    pub refresh_token: &'a RefreshToken,
}

/// What every grant needs to issue tokens.
pub struct Issuance<'a> {
    pub issuer: &'a TokenIssuer,
    /// Tessera's own API and its userinfo endpoint as audiences.
    pub own: &'a OwnAudiences,
    /// The built-in first-party client (`login.client_id`): public.
    pub login_client_id: &'a str,
}

impl Issuance<'_> {
    /// The built-in first-party login client: its tokens are for Tessera's
    /// own API.
    pub fn login_client(&self) -> TokenClient {
        TokenClient {
            client_id: self.login_client_id.to_owned(),
            first_party: true,
            audiences: self.own.api.clone(),
        }
    }

    /// The `aud` of a token for `client` (RFC 8707): the `resources` asked
    /// for, each allowed; without any, every allowed audience — and for a
    /// client with none, the userinfo endpoint alone.
    pub fn token_audience(
        &self,
        client: &TokenClient,
        resources: &[String],
    ) -> Result<Vec<String>, OAuthError> {
        let allowed = &client.audiences;
        if let Some(bad) = resources.iter().find(|r| !allowed.contains(r)) {
            return Err(OAuthError::InvalidTarget(format!(
                "this client may not have tokens for {bad:?}"
            )));
        }
        Ok(match (resources.is_empty(), allowed.is_empty()) {
            (false, _) => crate::clients::dedup(resources.to_vec()),
            (true, false) => allowed.clone(),
            (true, true) => vec![self.own.userinfo.clone()],
        })
    }

    /// An access token for a user's session, with its refresh token. The
    /// admin scope stays only for a first-party client and a user who is an
    /// administrator now; Tessera's API scopes never reach a third-party
    /// client; `roles` only for first-party clients or with the `roles`
    /// scope.
    pub async fn for_session(&self, grant: SessionGrant<'_>) -> Result<IssuedTokens, OAuthError> {
        let audience = self.token_audience(grant.client, grant.resources)?;
        let is_admin = grant.roles.iter().any(|r| r == ADMIN_ROLE);
        let first_party = grant.client.first_party;
        let scope = scopes::without(grant.scope, |s| {
            (s == scopes::ADMIN && !is_admin) || (!first_party && scopes::is_tessera_api(s))
        });
        let roles = (first_party || scopes::has(&scope, scopes::ROLES)).then_some(grant.roles);
        let issued = self
            .issuer
            .issue(Grant {
                subject: grant.user_id.to_string(),
                client_id: grant.client.client_id.clone(),
                audience,
                scope: scope.clone(),
                roles,
                session_id: Some(grant.session_id.to_owned()),
            })
            .await?;
        Ok(IssuedTokens {
            access_token: issued.token,
            expires_in: issued.expires_in,
            refresh_token: Some(grant.refresh_token.expose().to_owned()),
            scope,
            id_token: None,
        })
    }
}

/// The scope of a first-party login (`/v1/auth/login`): the configured
/// `login.scope`, the account scope, and for an administrator the admin
/// scope.
pub fn login_scope(configured: &str, roles: &[String]) -> String {
    let mut extra = vec![scopes::ACCOUNT];
    if roles.iter().any(|r| r == ADMIN_ROLE) {
        extra.push(scopes::ADMIN);
    }
    scopes::with(configured, &extra)
}

/// `scope` narrowed to what is `allowed`; all of `allowed` when none is
/// asked for (RFC 6749 §3.3).
fn granted_scope(asked: Option<&str>, allowed: &[String]) -> Result<String, OAuthError> {
    match asked.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(allowed.join(" ")),
        Some(asked) => {
            let mut granted: Vec<&str> = Vec::new();
            for scope in asked.split_ascii_whitespace() {
                if !allowed.iter().any(|a| a == scope) {
                    return Err(OAuthError::InvalidScope(format!(
                        "scope {scope:?} is not allowed"
                    )));
                }
                if !granted.contains(&scope) {
                    granted.push(scope);
                }
            }
            Ok(granted.join(" "))
        }
    }
}

/// A `grant_type=refresh_token` request (RFC 6749 §6).
pub struct RefreshRequest {
    pub refresh_token: String,
    /// The client that authenticated, if any.
    pub client: Option<Client>,
    /// A `client_id` sent without authentication (public clients).
    pub claimed_client_id: Option<String>,
    pub scope: Option<String>,
    /// RFC 8707 `resource`s asked for.
    pub resources: Vec<String>,
}

/// Rotates the refresh token and issues a new access token with the user's
/// current roles; a narrower `scope` may be asked for, never a wider one.
/// A confidential client's tokens are refreshed only with its credentials.
pub async fn refresh_grant(
    db: &Db,
    policy: SessionPolicy,
    issuance: Issuance<'_>,
    request: RefreshRequest,
    client: ClientInfo,
) -> Result<IssuedTokens, OAuthError> {
    let token = RefreshToken::parse(&request.refresh_token).ok_or(OAuthError::InvalidGrant(
        "the refresh token is invalid, expired or revoked",
    ))?;
    let caller = match &request.client {
        Some(c) if !c.allows_grant(REFRESH_TOKEN) => {
            return Err(OAuthError::UnauthorizedClient(
                "this client may not use refresh_token",
            ));
        }
        Some(c) => Caller::Client(c.client_id.clone()),
        None => Caller::Anonymous {
            claimed_client_id: request.claimed_client_id.clone(),
        },
    };
    let scope = request
        .scope
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|asked| asked.split_ascii_whitespace().map(str::to_owned).collect());
    let refresh = sessions::RefreshRequest {
        token,
        caller,
        scope,
        builtin_public_client: issuance.login_client_id.to_owned(),
    };
    // A `resource` the client may not have is refused before the rotation
    // spends the refresh token.
    if !request.resources.is_empty()
        && let Some(probe) = RefreshToken::parse(&request.refresh_token)
    {
        // Only for the token's own client: anyone else is refused (and
        // audited) by the refresh itself, and must not learn from the
        // answer whether the token is live.
        let presenting = match (&request.client, &request.claimed_client_id) {
            (Some(client), _) => client.client_id.as_str(),
            (None, Some(claimed)) => claimed.as_str(),
            (None, None) => issuance.login_client_id,
        };
        let session = sessions::find_by_refresh_token(db, policy, probe).await?;
        if let Some(session) = session.filter(|s| s.client_id == presenting) {
            let client = token_client(db, &issuance, &session.client_id, &request.client).await?;
            issuance.token_audience(&client, &request.resources)?;
        }
    }
    // What the answer needs is read in the rotation's own transaction: once
    // it commits, only signing is left that could fail — and a retry of a
    // refresh whose answer was lost gets the same successor (the session's
    // retry window).
    let login = issuance.login_client();
    let own = issuance.own.clone();
    let authenticated = request.client.clone();
    let (refreshed, (user, client)) =
        sessions::refresh(db, policy, refresh, client, move |conn, refreshed| {
            let user = accounts::find_with(conn, &refreshed.user_id)?;
            let client = token_client_with(conn, login, &own, &refreshed.client_id, authenticated)?;
            Ok((user, client))
        })
        .await?;
    let Some(user) = user.filter(|u| !u.disabled) else {
        return Err(OAuthError::InvalidGrant("the account is disabled or gone"));
    };
    let Some(client) = client else {
        return Err(OAuthError::InvalidGrant(
            "the client of this grant no longer exists",
        ));
    };
    issuance
        .for_session(SessionGrant {
            user_id: &user.id,
            roles: user.roles,
            client: &client,
            scope: &refreshed.scope,
            resources: &request.resources,
            session_id: &refreshed.session_id,
            refresh_token: &refreshed.refresh_token,
        })
        .await
}

/// The client `client_id` names: the built-in login client, the one that
/// authenticated, or the registered one (a public client).
async fn token_client(
    db: &Db,
    issuance: &Issuance<'_>,
    client_id: &str,
    authenticated: &Option<Client>,
) -> Result<TokenClient, OAuthError> {
    let (login, own, id, authenticated) = (
        issuance.login_client(),
        issuance.own.clone(),
        client_id.to_owned(),
        authenticated.clone(),
    );
    db.run(move |conn| token_client_with(conn, login, &own, &id, authenticated))
        .await?
        .ok_or(OAuthError::InvalidGrant(
            "the client of this grant no longer exists",
        ))
}

/// [`token_client`] on a connection; None when the client is gone.
fn token_client_with(
    conn: &mut crate::db::AnyConnection,
    login: TokenClient,
    own: &OwnAudiences,
    client_id: &str,
    authenticated: Option<Client>,
) -> Result<Option<TokenClient>, DbError> {
    if client_id == login.client_id {
        return Ok(Some(login));
    }
    if let Some(client) = authenticated.filter(|c| c.client_id == client_id) {
        return Ok(Some(TokenClient::registered(&client, own)));
    }
    Ok(crate::clients::find_with(conn, client_id)?
        .map(|client| TokenClient::registered(&client, own)))
}

fn has_scope(scope: &str, wanted: &str) -> bool {
    scope.split_ascii_whitespace().any(|s| s == wanted)
}

/// `grant_type=authorization_code` (RFC 6749 §4.1.3, OIDC Core §3.1.3):
/// redeems the code and answers with an access token, a refresh token and,
/// for `openid`, an ID token.
pub async fn authorization_code_grant(
    db: &Db,
    policy: SessionPolicy,
    issuance: Issuance<'_>,
    redemption: CodeRedemption,
    info: ClientInfo,
) -> Result<IssuedTokens, OAuthError> {
    if !redemption.client.allows_grant(AUTHORIZATION_CODE) {
        return Err(OAuthError::UnauthorizedClient(
            "this client may not use authorization_code",
        ));
    }
    // A `resource` the client may not have is refused before the code is
    // spent.
    let client = TokenClient::registered(&redemption.client, issuance.own);
    issuance.token_audience(&client, &redemption.resources)?;
    let redeemed = authorization::redeem(db, policy, redemption, info)
        .await
        .map_err(|e| match e {
            RedeemError::Db(e) => OAuthError::Db(e),
            RedeemError::Invalid => {
                OAuthError::InvalidGrant("the authorization code is invalid or expired")
            }
            RedeemError::Reused => OAuthError::InvalidGrant(
                "the authorization code was already used; the tokens issued for it are revoked",
            ),
            RedeemError::WrongClient => {
                OAuthError::InvalidGrant("the authorization code was issued to another client")
            }
            RedeemError::WrongRedirect => {
                OAuthError::InvalidGrant("redirect_uri does not match the authorization request")
            }
            RedeemError::WrongVerifier => {
                OAuthError::InvalidGrant("code_verifier does not match the code_challenge")
            }
            RedeemError::MissingVerifier => OAuthError::InvalidGrant("code_verifier is required"),
            RedeemError::ResourceNotRequested(r) => OAuthError::InvalidTarget(format!(
                "resource {r:?} was not part of the authorization request"
            )),
            RedeemError::UnexpectedVerifier => OAuthError::InvalidGrant(
                "code_verifier was sent but the authorization request had no code_challenge",
            ),
        })?;
    let user = redeemed.user;
    let mut response = issuance
        .for_session(SessionGrant {
            user_id: &user.id,
            roles: user.roles.clone(),
            client: &client,
            scope: &redeemed.scope,
            resources: &redeemed.resources,
            session_id: &redeemed.started.session_id,
            refresh_token: &redeemed.started.refresh_token,
        })
        .await?;
    if has_scope(&redeemed.scope, "openid") {
        let grant = IdGrant {
            subject: user.id.into_string(),
            client_id: redeemed.client_id,
            auth_time: redeemed.auth_time.and_utc().timestamp(),
            nonce: redeemed.nonce,
            browser_session_id: redeemed.browser_session_id,
            email_verified: user.email_verified,
            email: has_scope(&redeemed.scope, "email").then_some(user.email),
            name: user.name.filter(|_| has_scope(&redeemed.scope, "profile")),
        };
        response.id_token = Some(
            issuance
                .issuer
                .issue_id_token(grant, &response.access_token)
                .await?,
        );
    }
    Ok(response)
}

/// Why userinfo refuses a valid, live token.
#[derive(Debug, thiserror::Error)]
pub enum UserinfoError {
    #[error("the access token was not issued with the openid scope")]
    InsufficientScope,
    /// A client's own token (client_credentials): there is no user.
    #[error("this is a client's own token: there is no user to describe")]
    NotAUser,
    #[error("the token's subject is not a user, or no longer exists")]
    NoUser,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// OIDC Core §5.3 userinfo answer: the claims the token's scopes allow.
#[derive(Debug)]
pub struct Userinfo {
    pub sub: String,
    /// With the `email` scope.
    pub email: Option<String>,
    /// With the `email` scope: whether the address was verified.
    pub email_verified: Option<bool>,
    /// With the `profile` scope, when the user has a name.
    pub name: Option<String>,
}

/// OIDC Core §5.3: the claims about the token's user that its scopes allow.
pub async fn userinfo(db: &Db, claims: &Claims) -> Result<Userinfo, UserinfoError> {
    if claims.sid.is_none() {
        return Err(UserinfoError::NotAUser);
    }
    if !has_scope(&claims.scope, "openid") {
        return Err(UserinfoError::InsufficientScope);
    }
    let user = match accounts::find_by_id(db, claims.user_id()).await {
        Ok(user) if !user.disabled => user,
        Ok(_) | Err(AccountError::NotFound) => return Err(UserinfoError::NoUser),
        Err(AccountError::Db(e)) => return Err(e.into()),
        Err(_) => return Err(UserinfoError::NoUser),
    };
    let email = has_scope(&claims.scope, "email");
    Ok(Userinfo {
        sub: user.id.into_string(),
        email_verified: email.then_some(user.email_verified),
        email: email.then_some(user.email),
        name: user.name.filter(|_| has_scope(&claims.scope, "profile")),
    })
}

/// `grant_type=client_credentials` (RFC 6749 §4.4): a token for the client
/// itself, for the scopes and audiences it is allowed.
pub async fn client_credentials_grant(
    db: &Db,
    issuance: Issuance<'_>,
    client: Client,
    scope: Option<&str>,
    resources: Vec<String>,
    info: ClientInfo,
) -> Result<IssuedTokens, OAuthError> {
    match client_credentials_token(&issuance, &client, scope, resources).await {
        Ok(response) => Ok(response),
        Err(e) => {
            let detail = e.to_string();
            let client_id = client.client_id.clone();
            let now = db.now();
            db.run(move |conn| {
                audit::record(
                    conn,
                    now,
                    Event {
                        action: CLIENT_CREDENTIALS,
                        outcome: "failure",
                        client_id: Some(&client_id),
                        ip: info.ip.as_deref(),
                        detail: Some(&detail),
                        ..Event::default()
                    },
                )
            })
            .await?;
            Err(e)
        }
    }
}

async fn client_credentials_token(
    issuance: &Issuance<'_>,
    client: &Client,
    scope: Option<&str>,
    resources: Vec<String>,
) -> Result<IssuedTokens, OAuthError> {
    let (scope, audience) = client_credentials_target(client, scope, resources, issuance.own)?;
    let issued = issuance
        .issuer
        .issue(Grant {
            subject: client.client_id.clone(),
            client_id: client.client_id.clone(),
            audience,
            scope: scope.clone(),
            roles: None,
            session_id: None,
        })
        .await?;
    Ok(IssuedTokens {
        access_token: issued.token,
        expires_in: issued.expires_in,
        refresh_token: None,
        scope,
        id_token: None,
    })
}

/// The scope and audience a client_credentials token for `client` may
/// have, from the `scope` and `resource`s asked for. A client's own token
/// has no user: never Tessera's API scopes nor a user's (`openid`, …); and
/// only the audiences the client may have ([`Client::allowed_audiences`]).
pub fn client_credentials_target(
    client: &Client,
    scope: Option<&str>,
    resources: Vec<String>,
    own: &OwnAudiences,
) -> Result<(String, Vec<String>), OAuthError> {
    if client.public {
        return Err(OAuthError::UnauthorizedClient(
            "a public client cannot use client_credentials",
        ));
    }
    if !client.allows_grant(CLIENT_CREDENTIALS) {
        return Err(OAuthError::UnauthorizedClient(
            "this client may not use client_credentials",
        ));
    }
    let service_scopes: Vec<String> = client
        .allowed_scopes()
        .into_iter()
        .filter(|s| !scopes::is_tessera_api(s) && !scopes::USER_CLAIMS.contains(&s.as_str()))
        .collect();
    let scope = granted_scope(scope, &service_scopes)?;
    let allowed = client.allowed_audiences(own);
    let audience: Vec<String> = if resources.is_empty() {
        allowed
    } else {
        if let Some(bad) = resources.iter().find(|r| !allowed.contains(r)) {
            return Err(OAuthError::InvalidTarget(format!(
                "this client may not have tokens for {bad:?}"
            )));
        }
        resources
    };
    if audience.is_empty() {
        return Err(OAuthError::InvalidTarget(
            "this client has no allowed audience".into(),
        ));
    }
    Ok((scope, audience))
}

/// RFC 7662 §2.2 introspection answer: `active`, and what an active token
/// is. Nothing about an inactive one.
#[derive(Debug, Default)]
pub struct Introspection {
    pub active: bool,
    /// `Bearer` for an access token, `refresh_token` for a refresh token.
    pub token_type: Option<&'static str>,
    pub client_id: Option<String>,
    pub sub: Option<String>,
    pub scope: Option<String>,
    pub sid: Option<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
    pub iss: Option<String>,
    pub aud: Option<Vec<String>>,
    pub jti: Option<String>,
    pub roles: Option<Vec<String>>,
}

/// RFC 7662: what a token is, if it is active. Access tokens: signature,
/// expiry and session; refresh tokens: unspent and their session live.
/// Anything else — garbage included — is `{"active": false}`. RFC 7662 §2.2
/// leaves it to the server whom to tell: a token is active only to the
/// client it was issued to or, for an access token, to a client whose
/// registered audiences include one of the token's.
pub async fn introspect(
    db: &Db,
    policy: SessionPolicy,
    verifier: &TokenVerifier,
    token: &str,
    caller: &Client,
    own: &OwnAudiences,
) -> Result<Introspection, DbError> {
    if let Some(refresh_token) = RefreshToken::parse(token) {
        return Ok(
            match sessions::find_by_refresh_token(db, policy, refresh_token).await? {
                Some(session) if session.client_id == caller.client_id => Introspection {
                    active: true,
                    token_type: Some("refresh_token"),
                    client_id: Some(session.client_id),
                    sub: Some(session.user_id),
                    scope: Some(session.scope),
                    sid: Some(session.session_id),
                    exp: Some(session.expires_at.and_utc().timestamp()),
                    ..Introspection::default()
                },
                _ => Introspection::default(),
            },
        );
    }
    let Ok(claims) = verifier.verify_any_audience(token) else {
        return Ok(Introspection::default());
    };
    let issued_to_caller = claims.client_id.as_deref() == Some(caller.client_id.as_str());
    let audiences = caller.allowed_audiences(own);
    let for_caller = claims.aud.iter().any(|a| audiences.contains(a));
    if !issued_to_caller && !for_caller {
        return Ok(Introspection::default());
    }
    if let Some(sid) = claims.session_id()
        && !sessions::is_live(db, policy, sid).await?
    {
        return Ok(Introspection::default());
    }
    Ok(Introspection {
        active: true,
        token_type: Some("Bearer"),
        client_id: claims.client_id,
        sub: Some(claims.sub),
        scope: Some(claims.scope),
        sid: claims.sid,
        exp: Some(claims.exp),
        iat: claims.iat,
        nbf: claims.nbf,
        iss: Some(claims.iss),
        aud: Some(claims.aud),
        jti: claims.jti,
        roles: Some(claims.roles).filter(|r| !r.is_empty()),
    })
}

/// RFC 7009: a refresh token ends its session; so does an access token of a
/// session. Only the token's own client may revoke a confidential client's
/// tokens; anything else is ignored, and the endpoint answers 200 anyway.
pub async fn revoke(
    db: &Db,
    verifier: &TokenVerifier,
    token: &str,
    caller: Option<Client>,
    builtin_public_client: &str,
    info: ClientInfo,
) -> Result<(), DbError> {
    let caller = caller.map(|c| c.client_id);
    if let Some(refresh_token) = RefreshToken::parse(token) {
        return sessions::revoke_refresh_token(
            db,
            refresh_token,
            caller,
            builtin_public_client.to_owned(),
            info,
        )
        .await;
    }
    let Ok(claims) = verifier.verify_any_audience(token) else {
        return Ok(());
    };
    let user = claims.user_id();
    let (Some(sid), Some(token_client)) = (claims.session_id(), claims.client_id) else {
        return Ok(());
    };
    let builtin = builtin_public_client.to_owned();
    let allowed = db
        .run(move |conn| sessions::caller_may_act(conn, caller.as_deref(), &token_client, &builtin))
        .await?;
    if allowed {
        sessions::end(
            db,
            user,
            sessions::Ending::One(sid),
            sessions::end_reason::REVOKED,
            info,
        )
        .await?;
    }
    Ok(())
}
