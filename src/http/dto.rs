//! The API's bodies: every type the OpenAPI document describes that mirrors
//! a domain type lives here, converted from the domain explicitly, so a
//! renamed column or a new internal field can't change the API by itself.
//! Their names are the schema names in `/openapi.json`. (Request and list
//! types used by one handler stay beside it.)

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::{accounts, audit, clients, keys, oauth, sessions};

/// A user as the API shows it: no password hash, no internal flags.
#[derive(Serialize, ToSchema)]
pub struct User {
    id: String,
    email: String,
    #[schema(required = true)]
    name: Option<String>,
    roles: Vec<String>,
    /// The address was verified with the link sent to it.
    email_verified: bool,
    #[serde(serialize_with = "rfc3339")]
    created_at: NaiveDateTime,
}

impl From<accounts::User> for User {
    fn from(user: accounts::User) -> User {
        User {
            id: user.id.into_string(),
            email: user.email,
            name: user.name,
            roles: user.roles,
            email_verified: user.email_verified,
            created_at: user.created_at,
        }
    }
}

/// A user as administrators see it: with its `disabled` flag, and where it
/// stands with its password.
#[derive(Serialize, ToSchema)]
pub struct AdminUser {
    #[serde(flatten)]
    user: User,
    disabled: bool,
    /// The user must choose a new password before signing in again.
    must_change_password: bool,
    /// False while an invitation is not accepted: no password is set.
    password_set: bool,
}

impl From<accounts::User> for AdminUser {
    fn from(user: accounts::User) -> AdminUser {
        AdminUser {
            disabled: user.disabled,
            must_change_password: user.must_change_password,
            password_set: user.has_password,
            user: user.into(),
        }
    }
}

/// A registration accepted where addresses must be verified: the same for
/// a new address and one that has an account (its owner was mailed).
#[derive(Serialize, ToSchema)]
pub struct RegistrationAccepted {
    #[schema(example = "ada@example.com")]
    email: String,
    /// Always `verification_sent`: follow the link sent to the address.
    #[schema(example = "verification_sent")]
    status: &'static str,
}

impl RegistrationAccepted {
    pub fn new(email: String) -> RegistrationAccepted {
        RegistrationAccepted {
            email,
            status: "verification_sent",
        }
    }
}

/// A client the user consented to, and the scopes it was granted.
#[derive(Serialize, ToSchema)]
pub struct ConsentView {
    client_id: String,
    /// None if the client was deleted.
    #[schema(required = true)]
    client_name: Option<String>,
    scopes: Vec<String>,
    #[serde(serialize_with = "rfc3339")]
    granted_at: NaiveDateTime,
}

impl From<crate::app::profile::ConsentedClient> for ConsentView {
    fn from(c: crate::app::profile::ConsentedClient) -> ConsentView {
        let scopes = c.consent.scope.split_ascii_whitespace().map(str::to_owned);
        ConsentView {
            client_id: c.consent.client_id.into_string(),
            client_name: c.client_name,
            scopes: scopes.collect(),
            granted_at: c.consent.granted_at,
        }
    }
}

/// A client as the API shows it: never its secret or the secret's hash.
#[derive(Serialize, ToSchema)]
pub struct Client {
    client_id: String,
    name: String,
    public: bool,
    first_party: bool,
    grant_types: Vec<String>,
    scopes: Vec<String>,
    audiences: Vec<String>,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    #[serde(serialize_with = "rfc3339")]
    created_at: NaiveDateTime,
}

impl From<clients::Client> for Client {
    fn from(client: clients::Client) -> Client {
        Client {
            client_id: client.client_id,
            name: client.name,
            public: client.public,
            first_party: client.first_party,
            grant_types: client.grant_types,
            scopes: client.scopes,
            audiences: client.audiences,
            redirect_uris: client.redirect_uris,
            post_logout_redirect_uris: client.post_logout_redirect_uris,
            created_at: client.created_at,
        }
    }
}

/// The fields of a client registration, before validation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientRegistration {
    /// Shown to users on the consent page: 1 to 100 printable characters.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    first_party: bool,
}

impl From<ClientRegistration> for clients::ClientRegistration {
    fn from(body: ClientRegistration) -> clients::ClientRegistration {
        clients::ClientRegistration {
            name: body.name,
            grant_types: body.grant_types,
            scopes: body.scopes,
            audiences: body.audiences,
            redirect_uris: body.redirect_uris,
            post_logout_redirect_uris: body.post_logout_redirect_uris,
            public: body.public,
            first_party: body.first_party,
        }
    }
}

/// An audit event as administrators read it.
#[derive(Serialize, ToSchema)]
pub struct RecordedEvent {
    id: String,
    #[serde(serialize_with = "rfc3339")]
    occurred_at: NaiveDateTime,
    action: String,
    outcome: String,
    #[schema(required = true)]
    actor_id: Option<String>,
    #[schema(required = true)]
    user_id: Option<String>,
    #[schema(required = true)]
    session_id: Option<String>,
    #[schema(required = true)]
    client_id: Option<String>,
    #[schema(required = true)]
    ip: Option<String>,
    #[schema(required = true)]
    detail: Option<String>,
}

impl From<audit::RecordedEvent> for RecordedEvent {
    fn from(event: audit::RecordedEvent) -> RecordedEvent {
        RecordedEvent {
            id: event.id,
            occurred_at: event.occurred_at,
            action: event.action,
            outcome: event.outcome,
            actor_id: event.actor_id,
            user_id: event.user_id,
            session_id: event.session_id,
            client_id: event.client_id,
            ip: event.ip,
            detail: event.detail,
        }
    }
}

/// One key file as `tessera keys list` and `GET /v1/admin/keys` show it.
#[derive(Serialize, ToSchema)]
pub struct KeyListing {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    created_at: Option<DateTime<Utc>>,
    /// next, active, previous, expired, revoked; or invalid.
    state: String,
    /// When the state next changes (null: it won't by itself).
    #[schema(required = true)]
    next_change_at: Option<DateTime<Utc>>,
    /// No token it signed can still be live: `keys prune` deletes it.
    retired: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    error: Option<String>,
}

impl From<keys::KeyListing> for KeyListing {
    fn from(key: keys::KeyListing) -> KeyListing {
        KeyListing {
            file: key.file,
            kid: key.kid,
            created_at: key.created_at,
            state: key.state,
            next_change_at: key.next_change_at,
            retired: key.retired,
            error: key.error,
        }
    }
}

/// RFC 7517 §4 public JWK, as the JWKS publishes it. This one and
/// [`JwkSet`] only describe the JWKS in the document: the keys module
/// serves it pre-rendered (`KeyView::jwks`, from `keys::PublicJwk`), so
/// they mirror that type by hand instead of converting from it.
#[derive(Serialize, ToSchema)]
#[allow(dead_code, reason = "describes the pre-rendered JWKS")]
pub struct PublicJwk {
    kty: String,
    #[serde(rename = "use")]
    use_: String,
    alg: String,
    kid: String,
    n: String,
    e: String,
}

/// RFC 7517 §5 JWK set, as `/.well-known/jwks.json` serves it.
#[derive(ToSchema)]
#[allow(dead_code, reason = "describes the pre-rendered JWKS")]
pub struct JwkSet {
    keys: Vec<PublicJwk>,
}

/// A live session as its owner sees it: never token material.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    id: String,
    client_id: String,
    #[serde(serialize_with = "rfc3339")]
    created_at: NaiveDateTime,
    #[serde(serialize_with = "rfc3339")]
    last_used_at: NaiveDateTime,
    #[serde(serialize_with = "rfc3339")]
    expires_at: NaiveDateTime,
    #[schema(required = true)]
    user_agent: Option<String>,
    #[schema(required = true)]
    ip: Option<String>,
    /// The session of the token that asked.
    current: bool,
}

impl From<sessions::SessionView> for SessionView {
    fn from(session: sessions::SessionView) -> SessionView {
        SessionView {
            id: session.id,
            client_id: session.client_id,
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            expires_at: session.expires_at,
            user_agent: session.user_agent,
            ip: session.ip,
            current: session.current,
        }
    }
}

/// RFC 6749 §5.1 token response.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    refresh_token: Option<String>,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    id_token: Option<String>,
}

impl From<oauth::IssuedTokens> for TokenResponse {
    fn from(tokens: oauth::IssuedTokens) -> TokenResponse {
        TokenResponse {
            access_token: tokens.access_token,
            token_type: "Bearer",
            expires_in: tokens.expires_in,
            refresh_token: tokens.refresh_token,
            scope: tokens.scope,
            id_token: tokens.id_token,
        }
    }
}

/// OIDC Core §5.3 userinfo answer: the claims the token's scopes allow.
#[derive(Serialize, ToSchema)]
pub struct Userinfo {
    sub: String,
    /// With the `email` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    email: Option<String>,
    /// With the `email` scope: whether the address was verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    email_verified: Option<bool>,
    /// With the `profile` scope, when the user has a name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    name: Option<String>,
}

impl From<oauth::Userinfo> for Userinfo {
    fn from(claims: oauth::Userinfo) -> Userinfo {
        Userinfo {
            sub: claims.sub,
            email: claims.email,
            email_verified: claims.email_verified,
            name: claims.name,
        }
    }
}

/// RFC 7662 §2.2 introspection answer: `active`, and what an active token
/// is. Nothing about an inactive one.
#[derive(Serialize, ToSchema)]
pub struct Introspection {
    active: bool,
    /// `Bearer` for an access token, `refresh_token` for a refresh token.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    aud: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    roles: Option<Vec<String>>,
}

impl From<oauth::Introspection> for Introspection {
    fn from(i: oauth::Introspection) -> Introspection {
        Introspection {
            active: i.active,
            token_type: i.token_type,
            client_id: i.client_id,
            sub: i.sub,
            scope: i.scope,
            sid: i.sid,
            exp: i.exp,
            iat: i.iat,
            nbf: i.nbf,
            iss: i.iss,
            aud: i.aud,
            jti: i.jti,
            roles: i.roles,
        }
    }
}
