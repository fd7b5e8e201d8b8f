use super::throttle;
use super::throttle::Class;
use crate::app::verification::Registered;
use crate::app::{account, login, profile, verification};
use crate::ids::{ClientId, SessionId};
use crate::tokens::ClaimIds;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::{self, TokenResponse, User};
use super::error::Problem;
use super::openapi::{BearerErrors, InvalidText, PROBLEM};
use super::{
    AccountBearer, ApiError, AppState, JsonObject, client_info, json_body_error, read_body,
};
use crate::accounts::{self, AccountError, NewAccount};
use crate::sessions::{self, Ending, end_reason};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(format = "email", example = "ada@example.com")]
    pub(crate) email: String,
    /// At least 8 characters, at most 1,024 bytes, neither the email address
    /// nor one of the most common passwords.
    #[schema(format = "password", min_length = 8)]
    pub(crate) password: String,
    pub(crate) name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "ada@example.com")]
    pub(crate) email: String,
    #[schema(format = "password")]
    pub(crate) password: String,
}

/// A user's live sessions, newest first.
#[derive(Serialize, ToSchema)]
pub struct SessionList {
    sessions: Vec<dto::SessionView>,
}

/// Register an account
#[utoipa::path(post, path = "/v1/auth/register", tag = "accounts",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = User,
            headers(("Location" = String, description = "/v1/me"))),
        (status = 202, description = "Where addresses must be verified (`accounts.require_verified_email`): a link is on its way to the address — or, if it has an account, a notice to its owner; the same answer either way", body = dto::RegistrationAccepted),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Registration is not open (`registration_closed`): `accounts.registration` is `invite` or `closed`", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The email is taken (`email_taken`); not where addresses must be verified", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 415, description = "Not application/json", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid email, password or name", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Too many attempts from this address", body = Problem, content_type = PROBLEM),
        (status = 503, description = "Busy or database unavailable; retry after `Retry-After`", body = Problem, content_type = PROBLEM),
    ))]
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<JsonObject<RegisterRequest>>,
) -> Result<HttpResponse, ApiError> {
    throttle(&req, Class::Credentials)?;
    let RegisterRequest {
        email,
        password,
        name,
    } = body.into_inner().0;
    let account = NewAccount::parse(&email, password, name, Vec::new())?;
    match verification::register(&state.app, account, client_info(&req)).await? {
        Registered::Created(user) => Ok(HttpResponse::Created()
            .insert_header((header::LOCATION, "/v1/me"))
            .json(User::from(user))),
        Registered::Accepted { email } => {
            Ok(HttpResponse::Accepted().json(dto::RegistrationAccepted::new(email)))
        }
    }
}

/// Log in with email and password
///
/// Checks the password, starts a session for the built-in first-party
/// client, and answers with an access token and a refresh token.
#[utoipa::path(post, path = "/v1/auth/login", tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Wrong email or password (`invalid_credentials`)", body = Problem, content_type = PROBLEM),
        (status = 403, description = "The account is disabled (`account_disabled`), its address is not verified where that is required (`email_not_verified`), or an administrator asked for a new password first (`password_change_required`: `POST /v1/auth/password-change`)", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 415, description = "Not application/json", body = Problem, content_type = PROBLEM),
        (status = 422, description = "A field is missing or of the wrong type", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Too many attempts from this address, or the address is locked after failures", body = Problem, content_type = PROBLEM),
        (status = 503, description = "Busy or database unavailable; retry after `Retry-After`", body = Problem, content_type = PROBLEM),
    ))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<JsonObject<LoginRequest>>,
) -> Result<HttpResponse, ApiError> {
    if let Err(t) = throttle(&req, Class::Credentials) {
        state.metrics.login("throttled");
        return Err(t.into());
    }
    let LoginRequest { email, password } = body.into_inner().0;
    let attempt = login::password_login(&state.app, &email, password, client_info(&req)).await;
    state.metrics.login(attempt.outcome);
    let response = attempt.result?;
    state.metrics.token_issued("login");
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(TokenResponse::from(response)))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// End every session of the user, not only this token's.
    #[serde(default)]
    pub(crate) all: bool,
}

/// Log out
///
/// Ends the token's session, or with `{"all": true}` all the user's. The
/// body is optional, but a body that is there must be right: a mistyped
/// "log out everywhere" must not quietly log out here only.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "accounts",
    request_body(content = Option<LogoutRequest>, description = "Optional: no body (or `null`) ends this session"),
    security(("bearer" = ["tessera:account"])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 400, description = "The token belongs to no session (`no_session`)", body = Problem, content_type = PROBLEM),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 422, description = "The body is not a valid logout request", body = Problem, content_type = PROBLEM),
        BearerErrors,
    ))]
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: AccountBearer,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(body, state.settings.server.json_body_limit_bytes).await?;
    // No body, or `null`: this session.
    let all = if body.iter().all(u8::is_ascii_whitespace) {
        false
    } else {
        serde_json::from_slice::<Option<JsonObject<LogoutRequest>>>(&body)
            .map_err(|e| json_body_error(&e))?
            .is_some_and(|request| request.0.all)
    };
    let claims = auth.0;
    let (ending, reason) = match (claims.session_id(), all) {
        (_, true) => (Ending::All, end_reason::LOGOUT_ALL),
        (Some(sid), false) => (Ending::One(sid), end_reason::LOGOUT),
        (None, false) => {
            return Err(ApiError::bad_request(
                "no_session",
                "this token belongs to no session",
            ));
        }
    };
    let user = claims.user_id();
    sessions::end(&state.app.db, user, ending, reason, client_info(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The token's user
#[utoipa::path(get, path = "/v1/me", tag = "accounts",
    security(("bearer" = ["tessera:account"])),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 401, description = "No valid access token, or its user is gone", body = Problem, content_type = PROBLEM),
        (status = 403, description = "The token lacks the `tessera:account` scope (`insufficient_scope`) or is not a user's (`user_token_required`)", body = Problem, content_type = PROBLEM),
        (status = 503, description = "Database unavailable", body = Problem, content_type = PROBLEM),
        InvalidText,
    ))]
pub async fn me(state: web::Data<AppState>, auth: AccountBearer) -> Result<HttpResponse, ApiError> {
    match accounts::find_by_id(&state.app.db, auth.0.user_id()).await {
        Ok(user) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(User::from(user))),
        // The token is valid but its user is gone: the token is no good.
        Err(AccountError::NotFound) => {
            Err(ApiError::invalid_token("the token's user no longer exists"))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(format = "password")]
    pub(crate) current_password: String,
    /// At least 8 characters, at most 1,024 bytes, neither the email address
    /// nor one of the most common passwords.
    #[schema(format = "password", min_length = 8)]
    pub(crate) new_password: String,
}

/// Change the password
///
/// Changes the password and ends every other session of the user.
#[utoipa::path(put, path = "/v1/me/password", tag = "accounts",
    request_body = ChangePasswordRequest,
    security(("bearer" = ["tessera:account"])),
    responses(
        (status = 204, description = "Changed; the user's other sessions ended"),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM),
        (status = 401, description = "No valid access token", body = Problem, content_type = PROBLEM),
        (status = 403, description = "The current password is wrong (`invalid_current_password`), or the token lacks the `tessera:account` scope (`insufficient_scope`) or is not a user's (`user_token_required`)", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 415, description = "Not application/json", body = Problem, content_type = PROBLEM),
        (status = 422, description = "The new password is not acceptable", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Too many attempts from this address, or the account is locked after failed password checks (logins count too); retry after `Retry-After`", body = Problem, content_type = PROBLEM),
        (status = 503, description = "Busy or database unavailable", body = Problem, content_type = PROBLEM),
    ))]
pub async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: AccountBearer,
    body: web::Json<JsonObject<ChangePasswordRequest>>,
) -> Result<HttpResponse, ApiError> {
    // Checking a password is a credential attempt like a login: the
    // per-address allowance too, not only the account lockout.
    throttle(&req, Class::Credentials)?;
    let ChangePasswordRequest {
        current_password,
        new_password,
    } = body.into_inner().0;
    let claims = auth.0;
    let change = accounts::PasswordChange {
        user_id: claims.user_id(),
        current: current_password,
        new: new_password,
        keep_session: claims.session_id(),
    };
    account::change_password(&state.app, change, client_info(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The user's live sessions
#[utoipa::path(get, path = "/v1/me/sessions", tag = "accounts",
    security(("bearer" = ["tessera:account"])),
    responses(
        (status = 200, description = "Live sessions; `current` marks the token's", body = SessionList),
        BearerErrors,
        InvalidText,
    ))]
pub async fn list_sessions(
    state: web::Data<AppState>,
    auth: AccountBearer,
) -> Result<HttpResponse, ApiError> {
    let claims = auth.0;
    let sessions = sessions::list_live(
        &state.app.db,
        state.app.sessions,
        claims.user_id(),
        claims.session_id(),
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(SessionList {
            sessions: sessions.into_iter().map(dto::SessionView::from).collect(),
        }))
}

/// End one of the user's sessions
///
/// Ends one of the caller's own sessions; anyone else's is "not found".
#[utoipa::path(delete, path = "/v1/me/sessions/{id}", tag = "accounts",
    params(("id" = String, Path, description = "A session id from `GET /v1/me/sessions`")),
    security(("bearer" = ["tessera:account"])),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, description = "No such session of this user", body = Problem, content_type = PROBLEM),
        BearerErrors,
        InvalidText,
    ))]
pub async fn end_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: AccountBearer,
    path: web::Path<SessionId>,
) -> Result<HttpResponse, ApiError> {
    let ended = sessions::end(
        &state.app.db,
        auth.0.user_id(),
        Ending::One(path.into_inner()),
        end_reason::ENDED_BY_USER,
        client_info(&req),
    )
    .await?;
    if ended == 0 {
        return Err(ApiError::not_found("no such session"));
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwedPasswordChange {
    #[schema(example = "ada@example.com")]
    pub(crate) email: String,
    #[schema(format = "password")]
    pub(crate) current_password: String,
    /// At least 8 characters, at most 1,024 bytes, neither the email
    /// address, nor one of the most common passwords, nor the current one.
    #[schema(format = "password", min_length = 8)]
    pub(crate) new_password: String,
}

/// Choose a new password before signing in
///
/// With the address and the current password, no token: for an account
/// whose login answers 403 `password_change_required`. Checked behind the
/// login lockout; every session of the user ends. Log in afterwards.
#[utoipa::path(post, path = "/v1/auth/password-change", tag = "accounts",
    request_body = OwedPasswordChange,
    responses(
        (status = 204, description = "Changed; log in with the new password"),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM),
        (status = 401, description = "Wrong email or password (`invalid_credentials`)", body = Problem, content_type = PROBLEM),
        (status = 403, description = "The account is disabled (`account_disabled`)", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 415, description = "Not application/json", body = Problem, content_type = PROBLEM),
        (status = 422, description = "The new password is not acceptable (`invalid_password`)", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Too many attempts from this address, or the address is locked after failures", body = Problem, content_type = PROBLEM),
        (status = 503, description = "Busy or database unavailable; retry after `Retry-After`", body = Problem, content_type = PROBLEM),
    ))]
pub async fn change_owed_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<JsonObject<OwedPasswordChange>>,
) -> Result<HttpResponse, ApiError> {
    throttle(&req, Class::Credentials)?;
    let OwedPasswordChange {
        email,
        current_password,
        new_password,
    } = body.into_inner().0;
    let info = client_info(&req);
    account::change_owed_password(&state.app, &email, current_password, new_password, info).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    /// The display name; `null` or blank clears it. Required: a body
    /// without it is refused rather than taken to clear the name.
    #[schema(required = true)]
    #[serde(deserialize_with = "present")]
    pub(crate) name: Option<String>,
}

/// A field that must be there, though it may be `null`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// Change the user's name
#[utoipa::path(patch, path = "/v1/me", tag = "accounts",
    request_body = UpdateMe,
    security(("bearer" = ["tessera:account"])),
    responses(
        (status = 200, description = "The user, changed", body = User),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 415, description = "Not application/json", body = Problem, content_type = PROBLEM),
        (status = 422, description = "An invalid name (`invalid_name`)", body = Problem, content_type = PROBLEM),
        BearerErrors,
    ))]
pub async fn update_me(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: AccountBearer,
    body: web::Json<JsonObject<UpdateMe>>,
) -> Result<HttpResponse, ApiError> {
    let UpdateMe { name } = body.into_inner().0;
    match profile::rename(&state.app.db, auth.0.user_id(), name, client_info(&req)).await {
        Ok(user) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(User::from(user))),
        Err(AccountError::NotFound) => {
            Err(ApiError::invalid_token("the token's user no longer exists"))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailChange {
    #[schema(format = "email", example = "ada@example.org")]
    pub(crate) new_email: String,
    /// The current password.
    #[schema(format = "password")]
    pub(crate) password: String,
}

/// Change the user's address
///
/// Sends a link to the new address and a notice to the old one. The
/// account moves to the new address only when the link is followed
/// (`POST /v1/auth/verify-email`, or the page it opens), within 48 hours.
/// An address that has an account gets a notice instead of the link; the
/// answer is the same.
#[utoipa::path(post, path = "/v1/me/email", tag = "accounts",
    request_body = EmailChange,
    security(("bearer" = ["tessera:account"])),
    responses(
        (status = 202, description = "The link is on its way to the new address"),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM),
        (status = 401, description = "No valid access token", body = Problem, content_type = PROBLEM),
        (status = 403, description = "The password is wrong (`invalid_current_password`), or the token is not good for this", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 415, description = "Not application/json", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Not an address, or the current one (`invalid_email`)", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Too many attempts, or the account is locked after failed password checks", body = Problem, content_type = PROBLEM),
        (status = 503, description = "No SMTP server is configured (`email_unavailable`), or busy", body = Problem, content_type = PROBLEM),
    ))]
pub async fn change_email(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: AccountBearer,
    body: web::Json<JsonObject<EmailChange>>,
) -> Result<HttpResponse, ApiError> {
    throttle(&req, Class::Credentials)?;
    let EmailChange {
        new_email,
        password,
    } = body.into_inner().0;
    let info = client_info(&req);
    profile::request_email_change(&state.app, auth.0.user_id(), &new_email, password, info).await?;
    Ok(HttpResponse::Accepted().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountDeletion {
    /// The current password.
    #[schema(format = "password")]
    pub(crate) password: String,
}

/// Delete the user's own account
///
/// With the password. Every session ends and the account is deleted, with
/// what belongs to it (sessions, consents, links); the audit trail keeps
/// its id. The address can register again.
#[utoipa::path(delete, path = "/v1/me", tag = "accounts",
    request_body = AccountDeletion,
    security(("bearer" = ["tessera:account"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM),
        (status = 401, description = "No valid access token", body = Problem, content_type = PROBLEM),
        (status = 403, description = "The password is wrong (`invalid_current_password`), or the token is not good for this", body = Problem, content_type = PROBLEM),
        (status = 409, description = "The last enabled administrator can't (`last_admin`)", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 415, description = "Not application/json", body = Problem, content_type = PROBLEM),
        (status = 422, description = "A field is missing or of the wrong type", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Too many attempts, or the account is locked after failed password checks", body = Problem, content_type = PROBLEM),
        (status = 503, description = "Busy or database unavailable", body = Problem, content_type = PROBLEM),
    ))]
pub async fn delete_me(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: AccountBearer,
    body: web::Json<JsonObject<AccountDeletion>>,
) -> Result<HttpResponse, ApiError> {
    throttle(&req, Class::Credentials)?;
    let AccountDeletion { password } = body.into_inner().0;
    profile::delete_account(&state.app, auth.0.user_id(), password, client_info(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The clients a user consented to.
#[derive(Serialize, ToSchema)]
pub struct ConsentList {
    consents: Vec<dto::ConsentView>,
}

/// The clients the user consented to
#[utoipa::path(get, path = "/v1/me/consents", tag = "accounts",
    security(("bearer" = ["tessera:account"])),
    responses(
        (status = 200, description = "Consents, newest first", body = ConsentList),
        BearerErrors,
        InvalidText,
    ))]
pub async fn list_consents(
    state: web::Data<AppState>,
    auth: AccountBearer,
) -> Result<HttpResponse, ApiError> {
    let consents = profile::consents(&state.app.db, auth.0.user_id()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ConsentList {
            consents: consents.into_iter().map(dto::ConsentView::from).collect(),
        }))
}

/// Withdraw a consent
///
/// The client must ask again; its sessions of the user end, so its refresh
/// tokens stop working.
#[utoipa::path(delete, path = "/v1/me/consents/{client_id}", tag = "accounts",
    params(("client_id" = String, Path, description = "The client's id")),
    security(("bearer" = ["tessera:account"])),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 404, description = "No consent of this user to this client", body = Problem, content_type = PROBLEM),
        BearerErrors,
        InvalidText,
    ))]
pub async fn withdraw_consent(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: AccountBearer,
    path: web::Path<ClientId>,
) -> Result<HttpResponse, ApiError> {
    let (user, client) = (auth.0.user_id(), path.into_inner());
    if !profile::withdraw_consent(&state.app.db, user, client, client_info(&req)).await? {
        return Err(ApiError::not_found("no consent to this client"));
    }
    Ok(HttpResponse::NoContent().finish())
}
