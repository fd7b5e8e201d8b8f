//! The browser side of OpenID Connect: `/oauth2/authorize` (sign-in page,
//! SSO session cookie, consent, the redirect back with a code) and
//! `/oauth2/logout` (RP-initiated logout). The rules live in
//! [`crate::oauth::authorization`] and [`crate::sso`]; this module reads
//! cookies and forms and chooses the page or the redirect.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use utoipa::{IntoParams, ToSchema};

use super::error::{
    authorize_failure, browser_failure, page_failure, set_retry_after, throttled_page,
};
use super::pages::{self, ConsentPage, LoginPage};
use super::text::ControlCharacter;
use super::throttle::Class;
use super::{AppState, client_info, throttle};
use crate::accounts::{self, AccountError};
use crate::clients::Client;
use crate::oauth::authorization::{
    self, Authentication, AuthorizationRequest, AuthorizeError, RequestParams, ReturnTo,
    redirect_with,
};
use crate::secrets::{is_token_shaped, random_token};
use crate::sso::{self, BrowserSession, Pending, PendingError, PendingForm, Stage};
use crate::throttle::lockout::{self, LoginError};

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
    let outcome = authorize(&state, &req, params).await;
    respond(&state, outcome)
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
        return page_failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the form must be sent as application/x-www-form-urlencoded",
        );
    }
    if let Err(t) = throttle(&req, Class::Credentials) {
        return throttled_page(t);
    }
    let params = match parse_params(&body) {
        Ok(params) => params,
        Err(e) => return refused(e),
    };
    let outcome = if params.iter().any(|(k, _)| k == "request_id") {
        continue_sign_in(&state, &req, &params).await
    } else {
        authorize(&state, &req, params).await
    };
    respond(&state, outcome)
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

fn respond(state: &AppState, outcome: Result<HttpResponse, AuthorizeError>) -> HttpResponse {
    outcome.unwrap_or_else(|e| authorize_failure(e, &state.settings.issuer))
}

/// A new authorization request: sign the browser in (or use its SSO
/// session), ask for consent where needed, and send it back with a code.
async fn authorize(
    state: &AppState,
    req: &HttpRequest,
    params: Vec<(String, String)>,
) -> Result<HttpResponse, AuthorizeError> {
    let (request, client) =
        authorization::validate(&state.db, RequestParams(&params), &state.own_audiences).await?;
    let session = match cookie_value(req, cookie_names(state).session) {
        Some(cookie) => sso::find_session(&state.db, state.sso, cookie).await?,
        None => None,
    };
    let usable = session.filter(|s| !request.prompt.login && recent_enough(s, request.max_age));
    match usable {
        Some(session) => after_sign_in(state, req, request, client, session, None).await,
        None if request.prompt.none => Err(to_client(
            &request,
            "login_required",
            "the user is not signed in",
        )),
        None => show_login(state, req, request, &client).await,
    }
}

/// OIDC Core §3.1.2.1 `max_age`: the password was entered recently enough.
/// `max_age=0` always asks again, like `prompt=login`.
fn recent_enough(session: &BrowserSession, max_age: Option<i64>) -> bool {
    max_age.is_none_or(|max| {
        max > 0
            && (crate::clock::now() - session.auth_time).num_milliseconds()
                <= max.saturating_mul(1000)
    })
}

fn to_client(
    request: &AuthorizationRequest,
    error: &'static str,
    description: &str,
) -> AuthorizeError {
    AuthorizeError::ToClient {
        to: ReturnTo {
            redirect_uri: request.redirect_uri.clone(),
            state: request.state.clone(),
        },
        error,
        description: description.to_owned(),
    }
}

/// The browser-binding cookie's value, and whether it is new (to be set on
/// the response).
fn browser_binding(state: &AppState, req: &HttpRequest) -> (String, bool) {
    match cookie_value(req, cookie_names(state).browser).filter(|v| is_token_shaped(v)) {
        Some(existing) => (existing, false),
        None => (random_token(), true),
    }
}

/// Shows the login page for `request`, storing it until the form comes back.
async fn show_login(
    state: &AppState,
    req: &HttpRequest,
    request: AuthorizationRequest,
    client: &Client,
) -> Result<HttpResponse, AuthorizeError> {
    let (browser, is_new) = browser_binding(state, req);
    let hint = request.login_hint.clone();
    let target = pages::form_target(&request.redirect_uri);
    let client_id = request.client_id.clone();
    let form = sso::save_pending(
        &state.db,
        state.sso,
        client_id,
        request,
        Stage::Login,
        browser.clone(),
    )
    .await?;
    let mut response = pages::login(LoginPage {
        client_name: &client.name,
        request_id: &form.request_id,
        csrf_token: &form.csrf_token,
        email: hint.as_deref(),
        error: None,
        form_target: target.as_deref(),
    });
    if is_new {
        let names = cookie_names(state);
        set_cookie(&mut response, cookie(names.browser, browser, names.secure));
    }
    Ok(response)
}

fn set_cookie(response: &mut HttpResponse, cookie: Cookie<'static>) {
    // Only fails for a cookie that can't be a header value; ours can.
    let _ = response.add_cookie(&cookie);
}

/// The login or consent form came back: continue the stored request, but
/// only from the browser that opened it, with its page's CSRF token, and
/// for the page that was shown.
async fn continue_sign_in(
    state: &AppState,
    req: &HttpRequest,
    params: &[(String, String)],
) -> Result<HttpResponse, AuthorizeError> {
    let fields = RequestParams(params);
    let field = |name: &str| fields.one(name).ok().flatten().unwrap_or_default();
    let form = PendingForm {
        request_id: field("request_id").to_owned(),
        csrf_token: field("csrf_token").to_owned(),
    };
    let names = cookie_names(state);
    let pending: Pending<AuthorizationRequest> =
        match sso::load_pending(&state.db, form, cookie_value(req, names.browser)).await {
            Ok(pending) => pending,
            Err(PendingError::Stale) => {
                return Ok(page_failure(
                    StatusCode::BAD_REQUEST,
                    &PendingError::Stale.to_string(),
                ));
            }
            Err(PendingError::Db(e)) => return Err(e.into()),
        };
    let client = match crate::clients::find(&state.db, pending.request.client_id.clone()).await {
        Ok(client) => client,
        Err(crate::clients::ClientError::Db(e)) => return Err(e.into()),
        Err(_) => {
            return Err(AuthorizeError::Untrusted(
                "the application is no longer registered".into(),
            ));
        }
    };
    match (field("action"), pending.stage) {
        ("login", Stage::Login) => {
            let email = field("email");
            let password = field("password").to_owned();
            let result =
                lockout::authenticate(&state.db, &state.hasher, state.lockout, email, password)
                    .await;
            state.metrics.login(super::login_outcome(&result));
            let user = match result {
                Ok(user) => user,
                Err(LoginError::Locked(t)) => {
                    let mut page = login_again(
                        &pending,
                        &client,
                        email,
                        "Too many failed attempts. Please wait a little and try again.",
                    );
                    *page.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                    set_retry_after(&mut page, t.retry_after.as_secs().max(1));
                    return Ok(page);
                }
                Err(LoginError::Account(
                    e @ (AccountError::InvalidCredentials | AccountError::Disabled),
                )) => {
                    let message = match e {
                        AccountError::Disabled => "This account is disabled.",
                        _ => "The email or password is not right.",
                    };
                    return Ok(login_again(&pending, &client, email, message));
                }
                Err(LoginError::Account(AccountError::Db(e))) => return Err(e.into()),
                Err(LoginError::Account(AccountError::Hashing(_))) => {
                    return Ok(page_failure(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The service is busy. Please try again in a moment.",
                    ));
                }
                Err(LoginError::Account(e)) => {
                    tracing::error!(error = %e, "sign-in failed");
                    return Ok(page_failure(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Signing in failed.",
                    ));
                }
            };
            let previous = cookie_value(req, names.session);
            let (session, cookie_secret) =
                sso::sign_in(&state.db, state.sso, user.id, previous, client_info(req)).await?;
            let Pending { request, form, .. } = pending;
            let mut response =
                after_sign_in(state, req, request, client, session, Some(form)).await?;
            set_cookie(
                &mut response,
                cookie(names.session, cookie_secret, names.secure),
            );
            Ok(response)
        }
        ("consent", Stage::Consent) => {
            let session = match cookie_value(req, names.session) {
                Some(cookie) => sso::find_session(&state.db, state.sso, cookie).await?,
                None => None,
            };
            // The SSO session may have ended, or grown too old for the
            // request's max_age, while the consent page was open.
            let Some(session) = session.filter(|s| recent_enough(s, pending.request.max_age))
            else {
                return Ok(page_failure(
                    StatusCode::BAD_REQUEST,
                    "Your sign-in has ended. Return to the application and start again.",
                ));
            };
            let Pending { request, form, .. } = pending;
            if field("decision") != "allow" {
                sso::forget_pending(&state.db, form.request_id).await?;
                return Err(to_client(
                    &request,
                    "access_denied",
                    "the user denied the request",
                ));
            }
            sso::remember_consent(
                &state.db,
                session.user_id.clone(),
                client.client_id.clone(),
                request.scope.clone(),
            )
            .await?;
            issue_and_redirect(state, &request, &session, Some(form)).await
        }
        _ => Ok(page_failure(
            StatusCode::BAD_REQUEST,
            "this form does not belong to the page that was shown",
        )),
    }
}

fn login_again(
    pending: &Pending<AuthorizationRequest>,
    client: &Client,
    email: &str,
    message: &str,
) -> HttpResponse {
    let target = pages::form_target(&pending.request.redirect_uri);
    pages::login(LoginPage {
        client_name: &client.name,
        request_id: &pending.form.request_id,
        csrf_token: &pending.form.csrf_token,
        email: Some(email),
        error: Some(message),
        form_target: target.as_deref(),
    })
}

/// The user is signed in: ask for consent if this client needs it, else
/// issue the code.
async fn after_sign_in(
    state: &AppState,
    req: &HttpRequest,
    request: AuthorizationRequest,
    client: Client,
    session: BrowserSession,
    pending: Option<PendingForm>,
) -> Result<HttpResponse, AuthorizeError> {
    let needs_consent = request.prompt.consent
        || (!client.first_party
            && !sso::has_consented(
                &state.db,
                session.user_id.clone(),
                client.client_id.clone(),
                request.scope.clone(),
            )
            .await?);
    if !needs_consent {
        return issue_and_redirect(state, &request, &session, pending).await;
    }
    if request.prompt.none {
        return Err(to_client(
            &request,
            "consent_required",
            "the user has not consented to this client",
        ));
    }
    let user = match accounts::find_by_id(&state.db, session.user_id.clone()).await {
        Ok(user) => user,
        Err(AccountError::Db(e)) => return Err(e.into()),
        Err(_) => return Err(to_client(&request, "login_required", "the account is gone")),
    };
    let mut new_browser_cookie = None;
    let form = match pending {
        // Signed in on the login page just now: the same sign-in moves on.
        Some(form) => {
            sso::advance_pending(&state.db, form.request_id.clone(), request.clone()).await?;
            form
        }
        None => {
            let (browser, is_new) = browser_binding(state, req);
            if is_new {
                new_browser_cookie = Some(browser.clone());
            }
            sso::save_pending(
                &state.db,
                state.sso,
                request.client_id.clone(),
                request.clone(),
                Stage::Consent,
                browser,
            )
            .await?
        }
    };
    let target = pages::form_target(&request.redirect_uri);
    let mut response = pages::consent(ConsentPage {
        client_name: &client.name,
        user_email: &user.email,
        scope: &request.scope,
        request_id: &form.request_id,
        csrf_token: &form.csrf_token,
        form_target: target.as_deref(),
    });
    if let Some(browser) = new_browser_cookie {
        let names = cookie_names(state);
        set_cookie(&mut response, cookie(names.browser, browser, names.secure));
    }
    Ok(response)
}

/// Issues the code and sends the browser back to the client with it, the
/// request's `state` and our `iss` (RFC 9207).
async fn issue_and_redirect(
    state: &AppState,
    request: &AuthorizationRequest,
    session: &BrowserSession,
    pending: Option<PendingForm>,
) -> Result<HttpResponse, AuthorizeError> {
    let code = authorization::issue_code(
        &state.db,
        state.sso.code_ttl,
        request,
        Authentication {
            user_id: &session.user_id,
            browser_session_id: &session.id,
            auth_time: session.auth_time,
        },
    )
    .await?;
    if let Some(pending) = pending {
        sso::forget_pending(&state.db, pending.request_id).await?;
    }
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &request.state {
        params.push(("state", s));
    }
    params.push(("iss", &state.settings.issuer));
    Ok(redirect(&redirect_with(&request.redirect_uri, &params)))
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
    sign_out(state, req, web::Bytes::new()).await
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
    sign_out(state, req, body).await
}

/// `GET|POST /oauth2/logout`: OpenID Connect RP-Initiated Logout 1.0.
///
/// Only the SSO session of this browser's cookie is ever ended. A GET signs
/// out at once when its `id_token_hint` names that very session (the
/// application the user is signed in to asked); otherwise the user confirms
/// on a page whose form carries a token derived from the cookie, so another
/// site can neither sign the user out nor fake the confirmation.
async fn sign_out(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let is_post = req.method() == actix_web::http::Method::POST;
    let params = if is_post {
        if !is_form(&req) {
            return page_failure(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the form must be sent as application/x-www-form-urlencoded",
            );
        }
        parse_params(&body)
    } else {
        parse_params(req.query_string().as_bytes())
    };
    let params = match params {
        Ok(params) => params,
        Err(e) => return refused(e),
    };
    let fields = RequestParams(&params);
    let one = |name: &str| fields.one(name);
    let (hint, client_id, post_logout_uri, logout_state) = match (
        one("id_token_hint"),
        one("client_id"),
        one("post_logout_redirect_uri"),
        one("state"),
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
        _ => return page_failure(StatusCode::BAD_REQUEST, "a parameter is repeated"),
    };
    let hint = match hint.map(|token| state.verifier.id_token_hint(token)) {
        None => None,
        Some(Ok(hint)) => Some(hint),
        Some(Err(_)) => {
            return page_failure(StatusCode::BAD_REQUEST, "the id_token_hint is not valid");
        }
    };
    let client_id = match (hint.as_ref().map(|h| h.aud.as_str()), client_id) {
        (Some(a), Some(b)) if a != b => {
            return page_failure(
                StatusCode::BAD_REQUEST,
                "client_id does not match the id_token_hint",
            );
        }
        (a, b) => a.or(b).map(str::to_owned),
    };
    let return_to = match post_logout_uri {
        None => None,
        Some(uri) => {
            let client = match &client_id {
                Some(id) if id.len() <= 200 => {
                    match crate::clients::find(&state.db, id.clone()).await {
                        Ok(client) => Some(client),
                        Err(crate::clients::ClientError::Db(e)) => return browser_failure(e),
                        Err(_) => None,
                    }
                }
                _ => None,
            };
            if !client.is_some_and(|c| {
                crate::clients::is_registered_redirect(&c.post_logout_redirect_uris, uri)
            }) {
                return page_failure(
                    StatusCode::BAD_REQUEST,
                    "the post_logout_redirect_uri is not registered for this client",
                );
            }
            Some(uri.to_owned())
        }
    };
    let names = cookie_names(&state);
    let cookie = cookie_value(&req, names.session).filter(|c| is_token_shaped(c));
    let session = match &cookie {
        Some(cookie) => match sso::find_session(&state.db, state.sso, cookie.clone()).await {
            Ok(session) => session,
            Err(e) => return browser_failure(e),
        },
        None => None,
    };
    let hinted = matches!((&hint, &session),
        (Some(h), Some(s)) if h.sid.as_deref() == Some(s.id.as_str()) && h.sub == s.user_id);
    let confirmed = is_post
        && matches!((one("confirm"), &cookie), (Ok(Some(token)), Some(cookie)) if *token == sso::sign_out_token(cookie));
    if session.is_some() && !hinted && !confirmed {
        let mut hidden: Vec<(&str, String)> = vec![(
            "confirm",
            sso::sign_out_token(cookie.as_deref().unwrap_or_default()),
        )];
        for (name, value) in [
            ("post_logout_redirect_uri", return_to.as_deref()),
            ("client_id", client_id.as_deref()),
            ("state", logout_state),
        ] {
            if let Some(v) = value {
                hidden.push((name, v.to_owned()));
            }
        }
        let target = return_to.as_deref().and_then(pages::form_target);
        return pages::logout_confirm(&hidden, target.as_deref());
    }
    if let (Some(cookie), Some(_)) = (cookie, &session)
        && let Err(e) = sso::sign_out(&state.db, cookie, client_info(&req)).await
    {
        return browser_failure(e);
    }
    // Signed out now, or never signed in here: either way the application
    // may have its user back.
    let mut response = match return_to {
        Some(uri) => {
            let mut params = Vec::new();
            if let Some(s) = logout_state {
                params.push(("state", s));
            }
            redirect(&redirect_with(&uri, &params))
        }
        None => pages::signed_out(),
    };
    set_cookie(&mut response, removal(names.session, names.secure));
    response
}
