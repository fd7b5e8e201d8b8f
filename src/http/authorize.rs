//! The browser side of OpenID Connect: `/oauth2/authorize` (sign-in page,
//! SSO session cookie, consent, the redirect back with a code) and
//! `/oauth2/logout` (RP-initiated logout). The decisions are
//! [`crate::app::browser`]'s; this module reads cookies and forms, and
//! renders the answer as a page or a redirect with its cookies.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use utoipa::{IntoParams, ToSchema};

use super::error::{
    authorize_failure, browser_failure, page_failure, set_retry_after, throttled_page,
};
use super::pages::{self, ConsentPage};
use super::text::ControlCharacter;
use super::throttle::Class;
use super::{AppState, client_info, throttle};
use crate::app::browser::{self, Answer, Browser, LoginPage, LoginProblem, Outcome, Refusal};
use crate::oauth::authorization::AuthorizeError;

/// The cookies a browser holds: the SSO session, and a value binding
/// sign-in forms to the browser that opened them. `__Host-` names (no
/// Domain, Path=/, Secure) whenever the issuer is https.
struct CookieNames {
    session: &'static str,
    browser: &'static str,
    secure: bool,
}

fn cookie_names(state: &AppState) -> CookieNames {
    if state.settings.issuer.starts_with("https://") {
        CookieNames {
            session: "__Host-tessera-sso",
            browser: "__Host-tessera-browser",
            secure: true,
        }
    } else {
        CookieNames {
            session: "tessera-sso",
            browser: "tessera-browser",
            secure: false,
        }
    }
}

fn cookie(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .finish()
}

fn removal(name: &'static str, secure: bool) -> Cookie<'static> {
    let mut c = cookie(name, String::new(), secure);
    c.set_max_age(CookieDuration::ZERO);
    c
}

fn cookie_value(req: &HttpRequest, name: &str) -> Option<String> {
    req.cookie(name).map(|c| c.value().to_owned())
}

/// Query or form parameters; bytes that aren't UTF-8 become U+FFFD and
/// fail validation like any other bad value. A control character in a
/// name or value refuses the whole request (an error page).
pub(crate) fn parse_params(raw: &[u8]) -> Result<Vec<(String, String)>, ControlCharacter> {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(raw)
        .into_owned()
        .take(100)
        .collect();
    super::text::check_pairs("a parameter", &params)?;
    Ok(params)
}

fn refused(e: ControlCharacter) -> HttpResponse {
    page_failure(StatusCode::BAD_REQUEST, &e.to_string())
}

// The parameters are read through `RequestParams` (repeats refused, empty
// means absent); these types only describe them in the OpenAPI document.

/// An OpenID Connect / OAuth 2.0 authorization request (OIDC Core
/// §3.1.2.1, RFC 6749 §4.1.1, RFC 7636).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AuthorizationParams {
    /// A registered client.
    #[param(min_length = 1)]
    client_id: String,
    /// One of the client's registered redirect URIs, exactly.
    #[param(min_length = 1)]
    redirect_uri: String,
    /// `code`, the only response type.
    #[param(min_length = 1)]
    response_type: String,
    /// Space-separated, e.g. `openid profile email`.
    scope: Option<String>,
    /// Returned with the answer.
    state: Option<String>,
    /// Put into the ID token.
    nonce: Option<String>,
    /// PKCE S256 challenge; required for public clients.
    code_challenge: Option<String>,
    /// `S256` (`plain` is refused).
    code_challenge_method: Option<String>,
    /// Space-separated: `none`, `login`, `consent`, `select_account`.
    prompt: Option<String>,
    /// Seconds since the last sign-in beyond which the user signs in again.
    #[param(minimum = 0)]
    max_age: Option<i64>,
    /// Pre-fills the email field.
    login_hint: Option<String>,
    /// `query`, the only response mode.
    response_mode: Option<String>,
}

/// The sign-in page's forms: the login (`action=login`, `email`,
/// `password`) or the consent (`action=consent`, `decision`), each with
/// the `request_id` and `csrf_token` of the page.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SignInForm {
    request_id: String,
    csrf_token: String,
    /// `login` or `consent`.
    action: String,
    email: Option<String>,
    password: Option<String>,
    /// `allow` or `deny`.
    decision: Option<String>,
}

/// RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2).
#[derive(IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct LogoutParams {
    /// An ID token Tessera issued to the application.
    id_token_hint: Option<String>,
    client_id: Option<String>,
    /// One of the client's registered post-logout redirect URIs.
    post_logout_redirect_uri: Option<String>,
    /// Returned with the redirect.
    state: Option<String>,
    /// The confirmation page's token (POST only).
    confirm: Option<String>,
}

/// Start a sign-in
///
/// An authorization request in the query: signs the browser in (or uses
/// its SSO session), asks for consent where needed, and sends it back to
/// the redirect URI with a `code` (or an `error`), `state` and `iss`.
#[utoipa::path(get, path = "/oauth2/authorize", tag = "oidc",
    params(AuthorizationParams),
    responses(
        (status = 200, description = "The sign-in or consent page", body = String, content_type = "text/html"),
        (status = 303, description = "Back to the redirect URI with `code` or `error`, `state` and `iss`",
            headers(("Location" = String))),
        (status = 400, description = "An untrusted request (unknown client, unregistered redirect URI, repeated parameter): an error page, never a redirect", body = String, content_type = "text/html"),
        (status = 503, description = "Database unavailable: an error page", body = String, content_type = "text/html"),
    ))]
pub async fn authorize_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let params = match parse_params(req.query_string().as_bytes()) {
        Ok(params) => params,
        Err(e) => return refused(e),
    };
    let answer = browser::authorize(&state.app, &params, browser_of(&state, &req)).await;
    render(&state, answer)
}

/// Answer the sign-in page
///
/// The login or consent form (with `request_id`), or an authorization
/// request sent as a form (OIDC Core §3.1.2.1).
#[utoipa::path(post, path = "/oauth2/authorize", tag = "oidc",
    request_body(description = "The sign-in page's form, or the parameters of an authorization request",
        content((SignInForm = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The page again (with an error), or the consent page", body = String, content_type = "text/html"),
        (status = 303, description = "Back to the redirect URI with `code` or `error`, `state` and `iss`",
            headers(("Location" = String))),
        (status = 400, description = "An untrusted or stale request, or a bad CSRF token: an error page", body = String, content_type = "text/html"),
        (status = 413, description = "Body too large", body = String, content_type = "text/plain"),
        (status = 415, description = "Not a form", body = String, content_type = "text/html"),
        (status = 429, description = "Too many attempts from this address", body = String, content_type = "text/html"),
        (status = 503, description = "Busy or database unavailable", body = String, content_type = "text/html"),
    ))]
pub async fn authorize_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if !is_form(&req) {
        return not_a_form();
    }
    if let Err(t) = throttle(&req, Class::Credentials) {
        return throttled_page(t);
    }
    let params = match parse_params(&body) {
        Ok(params) => params,
        Err(e) => return refused(e),
    };
    let browser = browser_of(&state, &req);
    let answer = if params.iter().any(|(k, _)| k == "request_id") {
        browser::continue_sign_in(&state.app, &params, browser).await
    } else {
        browser::authorize(&state.app, &params, browser).await
    };
    render(&state, answer)
}

fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn not_a_form() -> HttpResponse {
    page_failure(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "the form must be sent as application/x-www-form-urlencoded",
    )
}

/// What the browser sent that the sign-in rules read.
fn browser_of(state: &AppState, req: &HttpRequest) -> Browser {
    let names = cookie_names(state);
    Browser {
        sso_cookie: cookie_value(req, names.session),
        binding_cookie: cookie_value(req, names.browser),
        info: client_info(req),
    }
}

/// The page, redirect or error for an answer, with its cookies.
fn render(state: &AppState, answer: Result<Answer, AuthorizeError>) -> HttpResponse {
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => return authorize_failure(e, &state.settings.issuer),
    };
    if let Some(outcome) = answer.login_attempt {
        state.metrics.login(outcome);
    }
    let mut response = match answer.outcome {
        Outcome::Login(page) => login_page(page),
        Outcome::Consent(page) => {
            let target = pages::form_target(&page.redirect_uri);
            pages::consent(ConsentPage {
                client_name: &page.client_name,
                user_email: &page.user_email,
                scope: &page.scope,
                request_id: &page.form.request_id,
                csrf_token: &page.form.csrf_token,
                form_target: target.as_deref(),
            })
        }
        Outcome::Redirect(location) => redirect(&location),
        Outcome::ConfirmSignOut { hidden, return_to } => {
            let target = return_to.as_deref().and_then(pages::form_target);
            pages::logout_confirm(&hidden, target.as_deref())
        }
        Outcome::SignedOut => pages::signed_out(),
        Outcome::Refused(Refusal::BadRequest(why)) => page_failure(StatusCode::BAD_REQUEST, &why),
        Outcome::Refused(Refusal::Busy) => page_failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is busy. Please try again in a moment.",
        ),
        Outcome::Refused(Refusal::Failed(what)) => {
            page_failure(StatusCode::INTERNAL_SERVER_ERROR, what)
        }
    };
    let names = cookie_names(state);
    if let Some(binding) = answer.set_binding {
        set_cookie(&mut response, cookie(names.browser, binding, names.secure));
    }
    if let Some(secret) = answer.set_sso {
        set_cookie(&mut response, cookie(names.session, secret, names.secure));
    }
    if answer.clear_sso {
        set_cookie(&mut response, removal(names.session, names.secure));
    }
    response
}

/// The login page, first shown or again with what went wrong.
fn login_page(page: LoginPage) -> HttpResponse {
    let target = pages::form_target(&page.redirect_uri);
    let error = page.problem.as_ref().map(|problem| match problem {
        LoginProblem::WrongCredentials => "The email or password is not right.",
        LoginProblem::Disabled => "This account is disabled.",
        LoginProblem::EmailNotVerified => {
            "Confirm your e-mail address first: follow the link we sent to it."
        }
        LoginProblem::PasswordChangeRequired => {
            "You must choose a new password before signing in: use /account/password."
        }
        LoginProblem::Locked { .. } => {
            "Too many failed attempts. Please wait a little and try again."
        }
    });
    let mut response = pages::login(pages::LoginPage {
        client_name: &page.client_name,
        request_id: &page.form.request_id,
        csrf_token: &page.form.csrf_token,
        email: page.email.as_deref(),
        error,
        form_target: target.as_deref(),
    });
    if let Some(LoginProblem::Locked { retry_after }) = page.problem {
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        set_retry_after(&mut response, retry_after.as_secs().max(1));
    }
    response
}

fn set_cookie(response: &mut HttpResponse, cookie: Cookie<'static>) {
    // Only fails for a cookie that can't be a header value; ours can.
    let _ = response.add_cookie(&cookie);
}

/// 303: after a POST the browser follows with a GET (RFC 9700 §4.11).
pub fn redirect(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .finish()
}

/// Sign out (RP-initiated logout)
///
/// OpenID Connect RP-Initiated Logout 1.0: ends this browser's SSO session
/// at once when `id_token_hint` names it, else after the user confirms.
#[utoipa::path(get, path = "/oauth2/logout", tag = "oidc",
    params(LogoutParams),
    responses(
        (status = 200, description = "The confirmation page, or signed out", body = String, content_type = "text/html"),
        (status = 303, description = "Signed out; back to the post-logout redirect URI with `state`",
            headers(("Location" = String))),
        (status = 400, description = "Invalid hint, mismatched client, unregistered URI or a repeated parameter: an error page", body = String, content_type = "text/html"),
        (status = 503, description = "Database unavailable", body = String, content_type = "text/html"),
    ))]
pub async fn logout_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match parse_params(req.query_string().as_bytes()) {
        Ok(params) => sign_out(&state, &req, &params, false).await,
        Err(e) => refused(e),
    }
}

/// Sign out, as a form
///
/// The same parameters as the GET, as a form; the confirmation page posts
/// its `confirm` token here.
#[utoipa::path(post, path = "/oauth2/logout", tag = "oidc",
    request_body(content = LogoutParams, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The confirmation page, or signed out", body = String, content_type = "text/html"),
        (status = 303, description = "Signed out; back to the post-logout redirect URI with `state`",
            headers(("Location" = String))),
        (status = 400, description = "Invalid hint, mismatched client, unregistered URI or a repeated parameter: an error page", body = String, content_type = "text/html"),
        (status = 413, description = "Body too large", body = String, content_type = "text/plain"),
        (status = 415, description = "Not a form", body = String, content_type = "text/html"),
        (status = 503, description = "Database unavailable", body = String, content_type = "text/html"),
    ))]
pub async fn logout_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if !is_form(&req) {
        return not_a_form();
    }
    match parse_params(&body) {
        Ok(params) => sign_out(&state, &req, &params, true).await,
        Err(e) => refused(e),
    }
}

async fn sign_out(
    state: &AppState,
    req: &HttpRequest,
    params: &[(String, String)],
    is_post: bool,
) -> HttpResponse {
    match browser::sign_out(&state.app, params, is_post, browser_of(state, req)).await {
        Ok(answer) => render(state, Ok(answer)),
        Err(e) => browser_failure(e),
    }
}
