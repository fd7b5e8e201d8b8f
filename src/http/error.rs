//! The one place where errors become HTTP responses: RFC 9457 problem+json
//! with a stable machine-readable `code` for /v1, RFC 6750 challenges on 401.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::accounts::{AccountError, HashError};
use crate::app::recovery::RecoveryError;
use crate::clients::ClientError;
use crate::db::DbError;
use crate::oauth::authorization::{AuthorizeError, redirect_with};
use crate::oauth::{OAuthError, UserinfoError};
use crate::throttle::Throttled;
use crate::throttle::lockout::LoginError;
use crate::tokens::TokenError;

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECONDS: &str = "1";

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    /// For 401s: the RFC 6750 `error` attribute of the challenge, if any.
    bearer_error: Option<&'static str>,
    /// For 429s: seconds until a retry may succeed.
    retry_after: Option<u64>,
    /// For 405s: the methods the resource serves.
    allow: Option<String>,
    /// For 403 `insufficient_scope`: the scope the route needs (RFC 6750
    /// §3.1 `scope` attribute).
    scope: Option<&'static str>,
}

/// An RFC 9457 problem document, as every `/v1` error answers
/// (`application/problem+json`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem<'a> {
    /// `urn:tessera:problem:<code>`.
    #[serde(rename = "type")]
    type_: String,
    /// The HTTP status's reason phrase.
    title: &'a str,
    status: u16,
    /// What went wrong, for people.
    detail: &'a str,
    /// What went wrong, for programs: a stable identifier.
    code: &'a str,
}

/// An RFC 6749 §5.2 error, as every `/oauth2` JSON endpoint answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OAuthErrorBody<'a> {
    /// `invalid_request`, `invalid_client`, `invalid_grant`,
    /// `unauthorized_client`, `unsupported_grant_type`, `invalid_scope`,
    /// `invalid_target`, `too_many_requests`, `temporarily_unavailable`.
    error: &'a str,
    error_description: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            detail: detail.into(),
            bearer_error: None,
            retry_after: None,
            allow: None,
            scope: None,
        }
    }

    /// RFC 6750 §3.1: the token is good but may not do this; the challenge
    /// names the scope needed.
    pub fn insufficient_scope(
        code: &'static str,
        scope: &'static str,
        detail: impl Into<String>,
    ) -> ApiError {
        ApiError {
            bearer_error: Some("insufficient_scope"),
            scope: Some(scope),
            ..ApiError::new(StatusCode::FORBIDDEN, code, detail)
        }
    }

    pub fn method_not_allowed(method: &str, allowed: &[String]) -> ApiError {
        ApiError {
            allow: Some(allowed.join(", ")),
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed here; use {}", allowed.join(" or ")),
            )
        }
    }

    pub fn body_too_large() -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is too large",
        )
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    /// No credentials were presented (RFC 6750 §3.1: no error attribute).
    pub fn missing_token(detail: &'static str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "missing_token", detail)
    }

    pub fn invalid_token(detail: impl Into<String>) -> ApiError {
        ApiError {
            bearer_error: Some("invalid_token"),
            ..ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", detail)
        }
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn unavailable(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, detail)
    }

    fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed to handle the request",
        )
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let problem = Problem {
            type_: format!("urn:tessera:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
        };
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if self.status == StatusCode::UNAUTHORIZED || self.bearer_error.is_some() {
            response.insert_header((header::WWW_AUTHENTICATE, self.challenge()));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        } else if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS));
        }
        if let Some(allow) = &self.allow {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        response.body(serde_json::to_vec(&problem).unwrap_or_default())
    }
}

impl ApiError {
    fn challenge(&self) -> HeaderValue {
        let value = match self.bearer_error {
            Some(error) => format!(
                r#"Bearer realm="tessera", error="{error}", error_description="{}"{}"#,
                self.detail.replace(['"', '\\'], "'"),
                self.scope
                    .map(|s| format!(r#", scope="{s}""#))
                    .unwrap_or_default()
            ),
            None => r#"Bearer realm="tessera""#.to_owned(),
        };
        HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer"))
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(reason) => {
                tracing::warn!(%reason, "database unavailable");
                ApiError::unavailable(
                    "database_unavailable",
                    "the database is unavailable; retry shortly",
                )
            }
            DbError::UniqueViolation => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the resource already exists",
            ),
            DbError::Conflict => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "a concurrent change interfered; retry",
            ),
            DbError::Query(e) => {
                tracing::error!(error = %e, "database query failed");
                ApiError::internal()
            }
        }
    }
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => ApiError::unavailable(
                "server_busy",
                "too many sign-ins in progress; retry shortly",
            ),
            HashError::Internal(reason) => {
                tracing::error!(%reason, "password hashing failed");
                ApiError::internal()
            }
        }
    }
}

impl From<RecoveryError> for ApiError {
    fn from(e: RecoveryError) -> Self {
        match e {
            RecoveryError::EmailUnavailable => {
                ApiError::unavailable("email_unavailable", e.to_string())
            }
            RecoveryError::InvalidEmail(why) => ApiError::unprocessable("invalid_email", why),
            RecoveryError::InvalidLink => {
                ApiError::bad_request("invalid_reset_token", e.to_string())
            }
            RecoveryError::InvalidVerificationLink => {
                ApiError::bad_request("invalid_verification_token", e.to_string())
            }
            RecoveryError::InvalidInvitationLink => {
                ApiError::bad_request("invalid_invitation_token", e.to_string())
            }
            RecoveryError::Account(e) => e.into(),
            RecoveryError::Db(e) => e.into(),
        }
    }
}

impl From<crate::app::profile::ProfileError> for ApiError {
    fn from(e: crate::app::profile::ProfileError) -> Self {
        match e {
            // The token's user is gone (deleted meanwhile): the token is
            // no good, as at `GET /v1/me`.
            crate::app::profile::ProfileError::Login(LoginError::Account(
                AccountError::NotFound,
            )) => ApiError::invalid_token("the token's user no longer exists"),
            crate::app::profile::ProfileError::Login(e) => e.into(),
            crate::app::profile::ProfileError::Recovery(e) => e.into(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::InvalidEmail(why) => ApiError::unprocessable("invalid_email", why),
            AccountError::InvalidPassword(why) => ApiError::unprocessable("invalid_password", why),
            AccountError::InvalidName(why) => ApiError::unprocessable("invalid_name", why),
            AccountError::EmailTaken => {
                ApiError::new(StatusCode::CONFLICT, "email_taken", e.to_string())
            }
            AccountError::InvalidCredentials => ApiError {
                bearer_error: None,
                ..ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_credentials",
                    e.to_string(),
                )
            },
            AccountError::Disabled => {
                ApiError::new(StatusCode::FORBIDDEN, "account_disabled", e.to_string())
            }
            AccountError::WrongCurrentPassword => ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_current_password",
                e.to_string(),
            ),
            AccountError::NotFound => ApiError::not_found(e.to_string()),
            AccountError::InvalidRole(why) => ApiError::unprocessable("invalid_role", why),
            AccountError::InvalidCursor => ApiError::bad_request("invalid_cursor", e.to_string()),
            AccountError::LastAdmin => {
                ApiError::new(StatusCode::CONFLICT, "last_admin", e.to_string())
            }
            AccountError::EmailNotVerified => {
                ApiError::new(StatusCode::FORBIDDEN, "email_not_verified", e.to_string())
            }
            AccountError::PasswordChangeRequired => ApiError::new(
                StatusCode::FORBIDDEN,
                "password_change_required",
                e.to_string(),
            ),
            AccountError::RegistrationClosed => {
                ApiError::new(StatusCode::FORBIDDEN, "registration_closed", e.to_string())
            }
            AccountError::Hashing(e) => e.into(),
            AccountError::Db(e) => e.into(),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Invalid(why) => ApiError::invalid_token(why),
            TokenError::NoSigningKey | TokenError::Signing(_) => {
                tracing::error!(error = %e, "token signing failed");
                ApiError::unavailable("signing_unavailable", "tokens cannot be issued right now")
            }
        }
    }
}

/// A grant's error on a `/v1` route (the first-party login issues tokens
/// as the grants do).
impl From<OAuthError> for ApiError {
    fn from(e: OAuthError) -> Self {
        match e {
            OAuthError::Token(e) => e.into(),
            OAuthError::Db(e) => e.into(),
            OAuthError::Internal(why) => {
                tracing::error!(error = %why, "issuing tokens failed");
                ApiError::internal()
            }
            OAuthError::InvalidTarget(why) => ApiError::bad_request("invalid_target", why),
            OAuthError::InvalidScope(why) => ApiError::bad_request("invalid_scope", why),
            e @ (OAuthError::InvalidRequest(_)
            | OAuthError::InvalidClient
            | OAuthError::InvalidGrant(_)
            | OAuthError::UnauthorizedClient(_)
            | OAuthError::UnsupportedGrantType(_)) => {
                ApiError::bad_request("invalid_request", e.to_string())
            }
        }
    }
}

/// An RFC 6749 §5.2 error, as `/oauth2/*` endpoints answer:
/// `{"error": "...", "error_description": "..."}`.
#[derive(Debug)]
pub struct OAuthApiError {
    status: StatusCode,
    error: &'static str,
    description: String,
    retry_after: Option<u64>,
}

impl OAuthApiError {
    pub fn invalid_request(description: impl Into<String>) -> OAuthApiError {
        OAuthApiError {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: description.into(),
            retry_after: None,
        }
    }
}

impl std::fmt::Display for OAuthApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.description)
    }
}

impl ResponseError for OAuthApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6749 §5.2: invalid_client answers with the scheme to use.
            response.insert_header((header::WWW_AUTHENTICATE, r#"Basic realm="tessera""#));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        } else if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS));
        }
        response.json(OAuthErrorBody {
            error: self.error,
            error_description: &self.description,
        })
    }
}

impl From<OAuthError> for OAuthApiError {
    fn from(e: OAuthError) -> Self {
        let (status, error) = match &e {
            OAuthError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            OAuthError::InvalidClient => (StatusCode::UNAUTHORIZED, "invalid_client"),
            OAuthError::UnauthorizedClient(_) => (StatusCode::BAD_REQUEST, "unauthorized_client"),
            OAuthError::InvalidTarget(_) => (StatusCode::BAD_REQUEST, "invalid_target"),
            OAuthError::InvalidGrant(_) => (StatusCode::BAD_REQUEST, "invalid_grant"),
            OAuthError::UnsupportedGrantType(_) => {
                (StatusCode::BAD_REQUEST, "unsupported_grant_type")
            }
            OAuthError::InvalidScope(_) => (StatusCode::BAD_REQUEST, "invalid_scope"),
            OAuthError::Db(DbError::Unavailable(reason)) => {
                tracing::warn!(%reason, "database unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
            }
            OAuthError::Token(_) => {
                tracing::error!(error = %e, "token signing failed");
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
            }
            OAuthError::Db(_) | OAuthError::Internal(_) => {
                tracing::error!(error = %e, "token endpoint failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "server_error")
            }
        };
        let description = match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                "the service is temporarily unavailable; retry shortly".to_owned()
            }
            StatusCode::INTERNAL_SERVER_ERROR => {
                "the server failed to handle the request".to_owned()
            }
            _ => e.to_string(),
        };
        OAuthApiError {
            status,
            error,
            description,
            retry_after: None,
        }
    }
}

impl From<DbError> for OAuthApiError {
    fn from(e: DbError) -> Self {
        OAuthError::Db(e).into()
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Invalid(why) => ApiError::unprocessable("invalid_client_metadata", why),
            ClientError::NotFound => ApiError::not_found(e.to_string()),
            ClientError::IdTaken => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            ClientError::Db(e) => e.into(),
        }
    }
}

impl ApiError {
    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
}

/// An error page for the browser endpoints (`/oauth2/authorize`,
/// `/oauth2/logout`), which people see rather than programs.
pub fn page_failure(status: StatusCode, message: &str) -> HttpResponse {
    let mut response = super::pages::error(status, message);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    response
}

/// How an authorization request fails: a page when the client can't be
/// trusted with a redirect, else back to the client with RFC 6749
/// §4.1.2.1 `error`, `state` and RFC 9207 `iss`.
pub fn authorize_failure(e: AuthorizeError, issuer: &str) -> HttpResponse {
    match e {
        AuthorizeError::Untrusted(why) => page_failure(StatusCode::BAD_REQUEST, &why),
        AuthorizeError::ToClient {
            to,
            error,
            description,
        } => {
            let mut params = vec![
                ("error", error),
                ("error_description", description.as_str()),
            ];
            if let Some(state) = &to.state {
                params.push(("state", state));
            }
            params.push(("iss", issuer));
            super::authorize::redirect(&redirect_with(&to.redirect_uri, &params))
        }
        AuthorizeError::Db(e) => browser_failure(e),
    }
}

/// A database failure behind a browser page.
pub fn browser_failure(e: DbError) -> HttpResponse {
    match e {
        DbError::Unavailable(reason) => {
            tracing::warn!(%reason, "database unavailable");
            page_failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is temporarily unavailable. Please try again in a moment.",
            )
        }
        e => {
            tracing::error!(error = %e, "browser sign-in failed");
            page_failure(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.")
        }
    }
}

fn retry_seconds(t: &Throttled) -> u64 {
    t.retry_after.as_secs().max(1)
}

impl From<Throttled> for ApiError {
    fn from(t: Throttled) -> Self {
        ApiError {
            retry_after: Some(retry_seconds(&t)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                t.to_string(),
            )
        }
    }
}

impl From<crate::app::login::LoginFailure> for ApiError {
    fn from(e: crate::app::login::LoginFailure) -> Self {
        use crate::app::login::LoginFailure;
        match e {
            LoginFailure::Login(e) => e.into(),
            LoginFailure::Db(e) => e.into(),
            LoginFailure::Token(e) => e.into(),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::Locked(t) => t.into(),
            LoginError::Account(e) => e.into(),
        }
    }
}

impl From<Throttled> for OAuthApiError {
    fn from(t: Throttled) -> Self {
        OAuthApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            error: "too_many_requests",
            description: t.to_string(),
            retry_after: Some(retry_seconds(&t)),
        }
    }
}

/// A page saying to slow down, for the browser endpoints.
pub fn throttled_page(t: Throttled) -> HttpResponse {
    let mut response = page_failure(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts. Please wait a little and try again.",
    );
    set_retry_after(&mut response, retry_seconds(&t));
    response
}

/// Sets `Retry-After` on a response built elsewhere.
pub fn set_retry_after(response: &mut HttpResponse, seconds: u64) {
    if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
}

impl From<crate::audit::ListError> for ApiError {
    fn from(e: crate::audit::ListError) -> Self {
        match e {
            crate::audit::ListError::InvalidCursor => {
                ApiError::bad_request("invalid_cursor", e.to_string())
            }
            crate::audit::ListError::Db(e) => e.into(),
        }
    }
}

impl From<UserinfoError> for ApiError {
    fn from(e: UserinfoError) -> Self {
        match e {
            // RFC 6750 §3.1, with its challenge.
            UserinfoError::InsufficientScope => {
                ApiError::insufficient_scope("insufficient_scope", "openid", e.to_string())
            }
            UserinfoError::NotAUser => {
                ApiError::insufficient_scope("user_token_required", "openid", e.to_string())
            }
            UserinfoError::NoUser => ApiError::invalid_token(e.to_string()),
            UserinfoError::Db(e) => e.into(),
        }
    }
}

impl From<super::text::ControlCharacter> for ApiError {
    fn from(e: super::text::ControlCharacter) -> Self {
        ApiError::bad_request("invalid_text", e.to_string())
    }
}

impl From<super::text::ControlCharacter> for OAuthApiError {
    fn from(e: super::text::ControlCharacter) -> Self {
        OAuthApiError::invalid_request(e.to_string())
    }
}

impl From<super::text::ControlCharacter> for OAuthError {
    fn from(e: super::text::ControlCharacter) -> Self {
        OAuthError::InvalidRequest(e.to_string())
    }
}
