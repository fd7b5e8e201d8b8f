//! What e-mailed links do: password reset (`/v1/auth/password-reset`, the
//! page `/account/reset`) and address verification
//! (`/v1/auth/verify-email`, `/v1/me/email-verification`, the page
//! `/account/verify`), invitations (`/v1/auth/invitation/accept`, the page
//! `/account/invitation`) and the new password an administrator asked for
//! (the page `/account/password`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AccountBearer;
use super::error::Problem;
use super::openapi::{InvalidText, PROBLEM};
use super::throttle::Class;
use super::{ApiError, AppState, JsonObject, client_info, pages, throttle};
use crate::accounts::AccountError;
use crate::app::recovery::{self, RecoveryError};
use crate::app::{account, invitation, verification};
use crate::throttle::lockout::LoginError;
use crate::tokens::ClaimIds;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    #[schema(format = "email", example = "ada@example.com")]
    pub(crate) email: String,
}

/// The answer to a reset request: the same for every address.
#[derive(Serialize, ToSchema)]
pub struct PasswordResetAccepted {
    /// `accepted`.
    status: &'static str,
    detail: &'static str,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfirmation {
    /// The `token` of the link in the reset message.
    pub(crate) token: String,
    /// At least 8 characters, at most 1,024 bytes, neither the email address
    /// nor one of the most common passwords.
    #[schema(format = "password", min_length = 8)]
    pub(crate) new_password: String,
}

/// Ask for a password reset
///
/// Sends a link to reset the password to the address, if an enabled
/// account has it (at most one per `accounts.password_reset_interval_seconds`).
/// The answer is the same, in content and in time, whether or not it has.
#[utoipa::path(post, path = "/v1/auth/password-reset", tag = "accounts",
    request_body = PasswordResetRequest,
    responses(
        (status = 202, description = "Accepted: a link is on its way if the address has an account", body = PasswordResetAccepted),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 415, description = "Not application/json", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Not an email address (`invalid_email`)", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Too many requests from this address", body = Problem, content_type = PROBLEM),
        (status = 503, description = "No e-mail is sent by this service (`email_unavailable`), or the database is unavailable", body = Problem, content_type = PROBLEM),
    ))]
pub async fn request_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<JsonObject<PasswordResetRequest>>,
) -> Result<HttpResponse, ApiError> {
    throttle(&req, Class::Credentials)?;
    let PasswordResetRequest { email } = body.into_inner().0;
    recovery::request_password_reset(&state.app, &email, client_info(&req)).await?;
    Ok(HttpResponse::Accepted().json(PasswordResetAccepted {
        status: "accepted",
        detail: "if an account has this address, a link to reset its password is on its way",
    }))
}

/// Set a new password with a reset link
///
/// The link's token works once, within `accounts.password_reset_minutes`,
/// and only while it is the account's newest. Every session of the account
/// ends, and its login lockout is cleared.
#[utoipa::path(post, path = "/v1/auth/password-reset/confirm", tag = "accounts",
    request_body = PasswordResetConfirmation,
    responses(
        (status = 204, description = "The password is set"),
        (status = 400, description = "Malformed JSON, or a token that is unknown, used, superseded or expired (`invalid_reset_token`)", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 415, description = "Not application/json", body = Problem, content_type = PROBLEM),
        (status = 422, description = "The new password does not meet the policy (`invalid_password`)", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Too many requests from this address", body = Problem, content_type = PROBLEM),
        (status = 503, description = "Busy or database unavailable; retry after `Retry-After`", body = Problem, content_type = PROBLEM),
    ))]
pub async fn confirm_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<JsonObject<PasswordResetConfirmation>>,
) -> Result<HttpResponse, ApiError> {
    throttle(&req, Class::Credentials)?;
    let PasswordResetConfirmation {
        token,
        new_password,
    } = body.into_inner().0;
    recovery::confirm_password_reset(&state.app, token, new_password, client_info(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct ResetLink {
    token: Option<String>,
}

/// The page a reset link opens: the form for a new password, or why the
/// link no longer works.
#[utoipa::path(get, path = "/account/reset", tag = "accounts",
    params(("token" = String, Query, description = "The token of the reset link")),
    responses(
        (status = 200, description = "The form for a new password", body = String, content_type = "text/html"),
        (status = 400, description = "The link is invalid, used or expired", body = String, content_type = "text/html"),
        (status = 503, description = "Busy or database unavailable: a page saying so", body = String, content_type = "text/html"),
    ))]
pub async fn reset_page(state: web::Data<AppState>, link: web::Query<ResetLink>) -> HttpResponse {
    let is_live = |token| recovery::reset_link_is_live(&state.app, token);
    link_page(link.into_inner().token, is_live, INVALID_LINK, |token| {
        pages::reset_password(StatusCode::OK, token, None)
    })
    .await
}

/// What a link opens: `show`, for a live link; why it doesn't work,
/// otherwise.
async fn link_page<F: std::future::Future<Output = Result<bool, RecoveryError>>>(
    token: Option<String>,
    is_live: impl FnOnce(String) -> F,
    invalid: &str,
    show: impl FnOnce(&str) -> HttpResponse,
) -> HttpResponse {
    let Some(token) = token else {
        return pages::error(StatusCode::BAD_REQUEST, "This link is incomplete.");
    };
    match is_live(token.clone()).await {
        Ok(true) => show(&token),
        Ok(false) => pages::error(StatusCode::BAD_REQUEST, invalid),
        Err(e) => failure_page(e),
    }
}

/// The fields of a form the pages post, each given once and free of
/// control characters (as everywhere else: 400); None otherwise (the
/// caller answers with an error page, not the OAuth JSON the app-wide form
/// parser answers with).
fn page_form<const N: usize>(body: &[u8], names: [&str; N]) -> Option<[String; N]> {
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    for (name, value) in url::form_urlencoded::parse(body) {
        if super::text::has_control(&name) || super::text::has_control(&value) {
            return None;
        }
        if let Some(i) = names.iter().position(|n| *n == name)
            && values[i].replace(value.into_owned()).is_some()
        {
            return None;
        }
    }
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for (slot, value) in out.iter_mut().zip(values) {
        *slot = value?;
    }
    Some(out)
}

fn malformed_form() -> HttpResponse {
    pages::error(
        StatusCode::BAD_REQUEST,
        "This form is incomplete or malformed.",
    )
}

const INVALID_LINK: &str =
    "This link is invalid, used or expired. Ask for a new one where you sign in.";

/// The reset form, sent.
#[utoipa::path(post, path = "/account/reset", tag = "accounts",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`token` and `new_password`"),
    responses(
        (status = 200, description = "The password is set", body = String, content_type = "text/html"),
        (status = 400, description = "The link is invalid, used or expired, or the form is malformed", body = String, content_type = "text/html"),
        (status = 422, description = "The new password does not meet the policy: the form again, saying why", body = String, content_type = "text/html"),
        (status = 429, description = "Too many requests from this address", body = String, content_type = "text/html"),
        (status = 503, description = "Busy or database unavailable: a page saying so", body = String, content_type = "text/html"),
    ))]
pub async fn reset_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if throttle(&req, Class::Credentials).is_err() {
        return too_many();
    }
    let Some([token, new_password]) = page_form(&body, ["token", "new_password"]) else {
        return malformed_form();
    };
    let info = client_info(&req);
    match recovery::confirm_password_reset(&state.app, token.clone(), new_password, info).await {
        Ok(()) => pages::password_set(),
        Err(RecoveryError::Account(AccountError::InvalidPassword(why))) => {
            pages::reset_password(StatusCode::UNPROCESSABLE_ENTITY, &token, Some(why))
        }
        Err(e) => failure_page(e),
    }
}

fn failure_page(e: RecoveryError) -> HttpResponse {
    let api = ApiError::from(e);
    let message = match api.code() {
        "invalid_reset_token" => INVALID_LINK,
        "invalid_verification_token" => INVALID_VERIFICATION_LINK,
        "invalid_invitation_token" => INVALID_INVITATION,
        "email_taken" => "Another account has this address now.",
        "database_unavailable" | "busy" => "The service is busy; try again in a moment.",
        _ => "Setting the password failed; try again.",
    };
    pages::error(api.status(), message)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailVerification {
    /// The `token` of the link in the verification message.
    pub(crate) token: String,
}

/// Verify an e-mail address
///
/// With the token of the link sent at registration (or on request): the
/// account's address is verified (`email_verified` in `/v1/me`, userinfo
/// and ID tokens). The link works once, within 48 hours. The token of an
/// address change's link (`POST /v1/me/email`) moves the account to the
/// new address, verified.
#[utoipa::path(post, path = "/v1/auth/verify-email", tag = "accounts",
    request_body = EmailVerification,
    responses(
        (status = 204, description = "The address is verified"),
        (status = 400, description = "Malformed JSON, or a token that is unknown, used, superseded or expired (`invalid_verification_token`)", body = Problem, content_type = PROBLEM),
        (status = 409, description = "An address change's new address has an account by now (`email_taken`)", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 415, description = "Not application/json", body = Problem, content_type = PROBLEM),
        (status = 422, description = "A field is missing or of the wrong type", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Too many requests from this address", body = Problem, content_type = PROBLEM),
        (status = 503, description = "Database unavailable", body = Problem, content_type = PROBLEM),
    ))]
pub async fn verify_email(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<JsonObject<EmailVerification>>,
) -> Result<HttpResponse, ApiError> {
    throttle(&req, Class::Credentials)?;
    verification::verify(&state.app, body.into_inner().0.token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Send a new verification link
///
/// To the user's address, unless it is verified already; earlier links
/// stop working.
#[utoipa::path(post, path = "/v1/me/email-verification", tag = "accounts",
    security(("bearer" = ["tessera:account"])),
    responses(
        (status = 202, description = "A link is on its way (none if the address is verified)"),
        (status = 401, description = "No valid access token", body = Problem, content_type = PROBLEM),
        (status = 403, description = "The token lacks the `tessera:account` scope or is not a user's", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Too many requests from this address", body = Problem, content_type = PROBLEM),
        (status = 503, description = "No e-mail is sent by this service (`email_unavailable`), or the database is unavailable", body = Problem, content_type = PROBLEM),
        InvalidText,
    ))]
pub async fn resend_verification(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: AccountBearer,
) -> Result<HttpResponse, ApiError> {
    throttle(&req, Class::Credentials)?;
    verification::resend(&state.app, auth.0.user_id()).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// The page a verification link opens: a button that confirms.
#[utoipa::path(get, path = "/account/verify", tag = "accounts",
    params(("token" = String, Query, description = "The token of the verification link")),
    responses(
        (status = 200, description = "A button that confirms the address", body = String, content_type = "text/html"),
        (status = 400, description = "The link is invalid, used or expired", body = String, content_type = "text/html"),
        (status = 503, description = "Busy or database unavailable: a page saying so", body = String, content_type = "text/html"),
    ))]
pub async fn verify_page(state: web::Data<AppState>, link: web::Query<ResetLink>) -> HttpResponse {
    let is_live = |token| verification::link_is_live(&state.app, token);
    let token = link.into_inner().token;
    link_page(
        token,
        is_live,
        INVALID_VERIFICATION_LINK,
        pages::verify_email,
    )
    .await
}

const INVALID_VERIFICATION_LINK: &str =
    "This link is invalid, used or expired. Ask for a new one in your account.";

/// The verification button, pressed.
#[utoipa::path(post, path = "/account/verify", tag = "accounts",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`token`"),
    responses(
        (status = 200, description = "The address is verified", body = String, content_type = "text/html"),
        (status = 400, description = "The link is invalid, used or expired, or the form is malformed", body = String, content_type = "text/html"),
        (status = 409, description = "An address change's new address has an account by now", body = String, content_type = "text/html"),
        (status = 429, description = "Too many requests from this address", body = String, content_type = "text/html"),
        (status = 503, description = "Busy or database unavailable: a page saying so", body = String, content_type = "text/html"),
    ))]
pub async fn verify_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if throttle(&req, Class::Credentials).is_err() {
        return too_many();
    }
    let Some([token]) = page_form(&body, ["token"]) else {
        return malformed_form();
    };
    match verification::verify(&state.app, token).await {
        Ok(()) => pages::email_verified(),
        Err(e) => failure_page(e),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationAcceptance {
    /// The `token` of the link in the invitation.
    pub(crate) token: String,
    /// At least 8 characters, at most 1,024 bytes, neither the email address
    /// nor one of the most common passwords.
    #[schema(format = "password", min_length = 8)]
    pub(crate) password: String,
}

/// Accept an invitation
///
/// Sets the invited account's first password; the address is verified by
/// the same stroke. The link works once, within `accounts.invitation_hours`.
#[utoipa::path(post, path = "/v1/auth/invitation/accept", tag = "accounts",
    request_body = InvitationAcceptance,
    responses(
        (status = 204, description = "The password is set; log in with it"),
        (status = 400, description = "Malformed JSON, or a token that is unknown, used or expired (`invalid_invitation_token`)", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 415, description = "Not application/json", body = Problem, content_type = PROBLEM),
        (status = 422, description = "The password does not meet the policy (`invalid_password`)", body = Problem, content_type = PROBLEM),
        (status = 429, description = "Too many requests from this address", body = Problem, content_type = PROBLEM),
        (status = 503, description = "Busy or database unavailable; retry after `Retry-After`", body = Problem, content_type = PROBLEM),
    ))]
pub async fn accept_invitation(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<JsonObject<InvitationAcceptance>>,
) -> Result<HttpResponse, ApiError> {
    throttle(&req, Class::Credentials)?;
    let InvitationAcceptance { token, password } = body.into_inner().0;
    let app = &state.app;
    invitation::accept(&app.db, &app.hasher, token, password, client_info(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

const INVALID_INVITATION: &str =
    "This invitation is invalid, used or expired. Ask an administrator for a new one.";

/// The page an invitation opens: the form for the first password.
#[utoipa::path(get, path = "/account/invitation", tag = "accounts",
    params(("token" = String, Query, description = "The token of the invitation's link")),
    responses(
        (status = 200, description = "The form for the first password", body = String, content_type = "text/html"),
        (status = 400, description = "The link is invalid, used or expired", body = String, content_type = "text/html"),
        (status = 503, description = "Busy or database unavailable: a page saying so", body = String, content_type = "text/html"),
    ))]
pub async fn invitation_page(
    state: web::Data<AppState>,
    link: web::Query<ResetLink>,
) -> HttpResponse {
    let is_live = |token| invitation::invitation_is_live(&state.app.db, token);
    link_page(
        link.into_inner().token,
        is_live,
        INVALID_INVITATION,
        |token| pages::accept_invitation(StatusCode::OK, token, None),
    )
    .await
}

/// The invitation's form, sent.
#[utoipa::path(post, path = "/account/invitation", tag = "accounts",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`token` and `new_password`"),
    responses(
        (status = 200, description = "The password is set", body = String, content_type = "text/html"),
        (status = 400, description = "The link is invalid, used or expired, or the form is malformed", body = String, content_type = "text/html"),
        (status = 422, description = "The password does not meet the policy: the form again, saying why", body = String, content_type = "text/html"),
        (status = 429, description = "Too many requests from this address", body = String, content_type = "text/html"),
        (status = 503, description = "Busy or database unavailable: a page saying so", body = String, content_type = "text/html"),
    ))]
pub async fn invitation_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if throttle(&req, Class::Credentials).is_err() {
        return too_many();
    }
    let Some([token, password]) = page_form(&body, ["token", "new_password"]) else {
        return malformed_form();
    };
    let app = &state.app;
    let info = client_info(&req);
    match invitation::accept(&app.db, &app.hasher, token.clone(), password, info).await {
        Ok(()) => pages::password_set(),
        Err(RecoveryError::Account(AccountError::InvalidPassword(why))) => {
            pages::accept_invitation(StatusCode::UNPROCESSABLE_ENTITY, &token, Some(why))
        }
        Err(e) => failure_page(e),
    }
}

fn too_many() -> HttpResponse {
    pages::error(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts; try again in a minute.",
    )
}

/// The form for a new password owed before signing in.
#[utoipa::path(get, path = "/account/password", tag = "accounts",
    responses(
        (status = 200, description = "The form: address, current and new password", body = String, content_type = "text/html"),
        (status = 400, description = "A query string with control characters", body = String, content_type = "text/html"),
    ))]
pub async fn password_page() -> HttpResponse {
    pages::change_password(StatusCode::OK, "", None)
}

/// The owed-password form, sent (as `POST /v1/auth/password-change`).
#[utoipa::path(post, path = "/account/password", tag = "accounts",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`email`, `current_password` and `new_password`"),
    responses(
        (status = 200, description = "The password is changed", body = String, content_type = "text/html"),
        (status = 400, description = "The form is malformed", body = String, content_type = "text/html"),
        (status = 401, description = "Wrong address or password: the form again", body = String, content_type = "text/html"),
        (status = 422, description = "The new password is not acceptable: the form again, saying why", body = String, content_type = "text/html"),
        (status = 429, description = "Too many attempts, or the address is locked", body = String, content_type = "text/html"),
        (status = 503, description = "Busy or database unavailable: a page saying so", body = String, content_type = "text/html"),
    ))]
pub async fn password_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if throttle(&req, Class::Credentials).is_err() {
        return too_many();
    }
    let Some([email, current, new]) =
        page_form(&body, ["email", "current_password", "new_password"])
    else {
        return malformed_form();
    };
    let info = client_info(&req);
    let again = |status, why| pages::change_password(status, &email, Some(why));
    match account::change_owed_password(&state.app, &email, current, new, info).await {
        Ok(()) => pages::password_set(),
        Err(LoginError::Account(AccountError::InvalidPassword(why))) => {
            again(StatusCode::UNPROCESSABLE_ENTITY, why)
        }
        Err(LoginError::Account(AccountError::InvalidCredentials)) => again(
            StatusCode::UNAUTHORIZED,
            "The email or password is not right.",
        ),
        Err(LoginError::Account(AccountError::Disabled)) => {
            pages::error(StatusCode::FORBIDDEN, "This account is disabled.")
        }
        Err(LoginError::Locked(_)) => too_many(),
        Err(LoginError::Account(e)) => failure_page(e.into()),
    }
}
