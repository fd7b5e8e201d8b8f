//! `/oauth2/*`: form-encoded requests as RFC 6749, 7009 and 7662 say, errors
//! as RFC 6749 §5.2 JSON. Clients authenticate with `client_secret_basic` or
//! `client_secret_post`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use utoipa::ToSchema;

use super::UserinfoBearer;
use super::dto::{Introspection, TokenResponse, Userinfo};
use super::error::ApiError;
use super::error::{OAuthApiError, OAuthErrorBody};
use super::openapi::{BearerErrors, InvalidText};
use super::throttle::Class;
use super::{AppState, client_info, throttle};
use crate::app::grants::{self, Credentials, Grant};
use crate::clients;
use crate::oauth::{self, OAuthError};

/// Form parameters. RFC 6749 §3.1: a parameter must not repeat (but
/// RFC 8707 `resource`, which may); unknown ones are ignored. Read from
/// the body only as an extractor, which refuses control characters in
/// names and values (`invalid_request`).
pub struct Params(pub(crate) Vec<(String, String)>);

impl actix_web::FromRequest for Params {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        // `web::Form` keeps the body limit and its errors (`form_config`).
        let form = web::Form::<Vec<(String, String)>>::from_request(req, payload);
        Box::pin(async move {
            let pairs = form.await?.into_inner();
            super::text::check_pairs("a form parameter", &pairs).map_err(OAuthApiError::from)?;
            Ok(Params(pairs))
        })
    }
}

impl Params {
    pub(crate) fn one(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut values = self
            .0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(OAuthError::InvalidRequest(format!(
                "parameter {name} is repeated"
            )));
        }
        Ok(first.filter(|v| !v.is_empty()))
    }

    pub(crate) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }
}

// The forms below are read through `Params` (repeats refused, empty means
// absent, unknown ignored); these types only describe them in the OpenAPI
// document, and the conformance tests check real exchanges against it.

/// RFC 6749 §4.1.3, §4.4.2 and §6 token request. Confidential clients
/// authenticate with HTTP Basic or `client_id` + `client_secret`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenRequest {
    grant_type: GrantType,
    /// `authorization_code`: the code from the redirect.
    code: Option<String>,
    /// `authorization_code`: the redirect URI of the authorization request.
    redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier (RFC 7636).
    code_verifier: Option<String>,
    /// `refresh_token`: the refresh token; a new one replaces it.
    refresh_token: Option<String>,
    /// `refresh_token`, `client_credentials`: space-separated scopes, at
    /// most those granted or allowed.
    scope: Option<String>,
    /// RFC 8707 resource indicators, within the client's audiences (and, for
    /// `authorization_code`, those of the authorization request); may repeat.
    resource: Option<Vec<String>>,
    /// The same as `resource`, as many clients send it; may repeat.
    audience: Option<Vec<String>>,
    /// Public clients, or `client_secret_post`.
    client_id: Option<String>,
    /// `client_secret_post`.
    client_secret: Option<String>,
}

/// The grants `token` dispatches on (`clients::AUTHORIZATION_CODE`, …).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

/// RFC 7009 revocation request, or RFC 7662 introspection request.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenForm {
    /// An access token or a refresh token.
    token: String,
    /// Ignored: the token's kind is recognised.
    token_type_hint: Option<String>,
    /// `client_secret_post`, or a public client (revocation only).
    client_id: Option<String>,
    /// `client_secret_post`.
    client_secret: Option<String>,
}

/// `client_secret_basic` (RFC 6749 §2.3.1: id and secret form-urlencoded
/// inside the Basic value) or `client_secret_post`; both at once is an
/// error. None when the client presented no secret.
pub(crate) fn credentials(
    req: &HttpRequest,
    params: &Params,
) -> Result<Option<Credentials>, OAuthError> {
    let basic = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let value = value.to_str().map_err(|_| OAuthError::InvalidClient)?;
            match value.split_once(' ') {
                Some((scheme, encoded)) if scheme.eq_ignore_ascii_case("basic") => {
                    let decoded = STANDARD
                        .decode(encoded.trim())
                        .map_err(|_| OAuthError::InvalidClient)?;
                    let decoded =
                        String::from_utf8(decoded).map_err(|_| OAuthError::InvalidClient)?;
                    let (id, secret) = decoded.split_once(':').ok_or(OAuthError::InvalidClient)?;
                    let unescape = |s: &str| {
                        url::form_urlencoded::parse(format!("v={s}").as_bytes())
                            .next()
                            .map(|(_, v)| v.into_owned())
                            .unwrap_or_default()
                    };
                    let credentials = Credentials {
                        id: unescape(id),
                        secret: unescape(secret),
                    };
                    super::text::check("the client id", &credentials.id)?;
                    super::text::check("the client secret", &credentials.secret)?;
                    Some(credentials)
                }
                _ => return Err(OAuthError::InvalidClient),
            }
        }
    };
    let post = match (params.one("client_id")?, params.one("client_secret")?) {
        (Some(id), Some(secret)) => Some(Credentials {
            id: id.to_owned(),
            secret: secret.to_owned(),
        }),
        (None, Some(_)) => {
            return Err(OAuthError::InvalidRequest(
                "client_secret without client_id".into(),
            ));
        }
        _ => None,
    };
    match (basic, post) {
        (Some(_), Some(_)) => Err(OAuthError::InvalidRequest(
            "use one client authentication method, not two".into(),
        )),
        (basic, post) => Ok(basic.or(post)),
    }
}

/// The token endpoint
///
/// Grants `authorization_code` (with PKCE), `refresh_token` (rotating) and
/// `client_credentials`.
#[utoipa::path(post, path = "/oauth2/token", tag = "oauth2",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    security((), ("client" = [])),
    responses(
        (status = 200, description = "Tokens", body = TokenResponse),
        (status = 400, description = "`invalid_request`, `invalid_grant`, `unauthorized_client`, `unsupported_grant_type`, `invalid_scope`, `invalid_target`", body = OAuthErrorBody),
        (status = 401, description = "`invalid_client`", body = OAuthErrorBody),
        (status = 429, description = "`too_many_requests`; retry after `Retry-After`", body = OAuthErrorBody),
        (status = 503, description = "`temporarily_unavailable`; retry after `Retry-After`", body = OAuthErrorBody),
    ))]
pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    params: Params,
) -> Result<HttpResponse, OAuthApiError> {
    throttle(&req, Class::Token)?;
    let grant_type = params.one("grant_type")?.map(str::to_owned);
    let client = grants::authenticate(&state.app, credentials(&req, &params)?).await?;
    let grant = grant(grant_type.as_deref(), &params)?;
    // RFC 8707 `resource`, or the `audience` many clients send.
    let mut resources = params.all("resource");
    resources.extend(params.all("audience"));
    let response = grants::token(&state.app, client, grant, resources, client_info(&req)).await?;
    state
        .metrics
        .token_issued(grant_type.as_deref().unwrap_or_default());
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(TokenResponse::from(response)))
}

/// The grant a token request names, with its parameters.
fn grant(grant_type: Option<&str>, params: &Params) -> Result<Grant, OAuthError> {
    let owned = |name: &str| Ok::<_, OAuthError>(params.one(name)?.map(str::to_owned));
    match grant_type {
        Some(clients::AUTHORIZATION_CODE) => Ok(Grant::AuthorizationCode {
            code: owned("code")?,
            redirect_uri: owned("redirect_uri")?,
            code_verifier: owned("code_verifier")?,
            client_id: owned("client_id")?,
        }),
        Some(clients::REFRESH_TOKEN) => Ok(Grant::RefreshToken {
            refresh_token: owned("refresh_token")?
                .ok_or_else(|| OAuthError::InvalidRequest("refresh_token is required".into()))?,
            client_id: owned("client_id")?,
            scope: owned("scope")?,
        }),
        Some(clients::CLIENT_CREDENTIALS) => Ok(Grant::ClientCredentials {
            scope: owned("scope")?,
        }),
        Some(other) => Err(OAuthError::UnsupportedGrantType(other.to_owned())),
        None => Err(OAuthError::InvalidRequest("grant_type is required".into())),
    }
}

/// The user's claims
///
/// OIDC Core §5.3, with a live access token carrying `openid`.
#[utoipa::path(method(get, post), path = "/oauth2/userinfo", tag = "oauth2",
    security(("bearer" = ["openid"])),
    responses(
        (status = 200, description = "The claims the token's scopes allow", body = Userinfo),
        BearerErrors,
        InvalidText,
    ))]
pub async fn userinfo(
    state: web::Data<AppState>,
    auth: UserinfoBearer,
) -> Result<HttpResponse, ApiError> {
    let claims = oauth::userinfo(&state.app.db, &auth.0).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Userinfo::from(claims)))
}

/// Revoke a token
///
/// RFC 7009: a refresh token, or an access token of a session, ends the
/// session. A client that presents credentials must present good ones;
/// an unknown or foreign token is answered 200 all the same.
#[utoipa::path(post, path = "/oauth2/revoke", tag = "oauth2",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("client" = [])),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke"),
        (status = 400, description = "`invalid_request`", body = OAuthErrorBody),
        (status = 401, description = "`invalid_client`", body = OAuthErrorBody),
        (status = 503, description = "`temporarily_unavailable`", body = OAuthErrorBody),
    ))]
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    params: Params,
) -> Result<HttpResponse, OAuthApiError> {
    let caller = grants::authenticate(&state.app, credentials(&req, &params)?).await?;
    let token = params
        .one("token")?
        .ok_or_else(|| OAuthError::InvalidRequest("token is required".into()))?;
    let builtin = &state.settings.login.client_id;
    oauth::revoke(
        &state.app.db,
        &state.app.verifier,
        token,
        caller,
        builtin,
        client_info(&req),
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// Introspect a token
///
/// RFC 7662, for authenticated clients only. A token is `active` only to
/// the client it was issued to, or to a client whose registered audiences
/// include the token's; to any other client it is `{"active": false}`.
#[utoipa::path(post, path = "/oauth2/introspect", tag = "oauth2",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security(("client" = [])),
    responses(
        (status = 200, description = "What the token is, if active", body = Introspection),
        (status = 400, description = "`invalid_request`", body = OAuthErrorBody),
        (status = 401, description = "`invalid_client`", body = OAuthErrorBody),
        (status = 429, description = "`too_many_requests`", body = OAuthErrorBody),
        (status = 503, description = "`temporarily_unavailable`", body = OAuthErrorBody),
    ))]
pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    params: Params,
) -> Result<HttpResponse, OAuthApiError> {
    throttle(&req, Class::Token)?;
    let caller = grants::authenticate(&state.app, credentials(&req, &params)?)
        .await?
        .ok_or(OAuthError::InvalidClient)?;
    let token = params
        .one("token")?
        .ok_or_else(|| OAuthError::InvalidRequest("token is required".into()))?;
    let answer = oauth::introspect(
        &state.app.db,
        state.app.sessions,
        &state.app.verifier,
        token,
        &caller,
        &state.app.own_audiences,
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Introspection::from(answer)))
}

/// Form bodies: bounded, and any way they can be wrong is `invalid_request`.
pub fn form_config(limit: usize) -> web::FormConfig {
    web::FormConfig::default()
        .limit(limit)
        .error_handler(|err, _req| {
            use actix_web::error::UrlencodedError as E;
            let detail = match &err {
                E::ContentType => {
                    "the request body must be application/x-www-form-urlencoded".to_owned()
                }
                E::Overflow { .. } | E::UnknownLength => "the request body is too large".to_owned(),
                E::Parse(e) => format!("malformed form body: {e}"),
                other => format!("malformed form body: {other}"),
            };
            OAuthApiError::invalid_request(detail).into()
        })
}
