//! The browser side of OpenID Connect: `/oauth2/authorize` (sign-in page,
//! SSO session cookie, consent, the redirect back with a code) and
//! `/oauth2/logout` (RP-initiated logout). The rules live in
//! [`crate::oauth::authorization`] and [`crate::sso`]; this module reads
//! cookies and forms and chooses the page or the redirect.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::{authorize_failure, page_failure};
use super::pages::{self, ConsentPage, LoginPage};
use super::{AppState, client_info};
use crate::accounts::{self, AccountError};
use crate::clients::Client;
use crate::oauth::authorization::{
    self, Authentication, AuthorizationRequest, AuthorizeError, RequestParams, ReturnTo,
    redirect_with,
};
use crate::secrets::random_token;
use crate::sso::{self, BrowserSession, PendingError, PendingForm};

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
/// fail validation like any other bad value.
fn parse_params(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw)
        .into_owned()
        .take(100)
        .collect()
}

/// `GET /oauth2/authorize`: an authorization request in the query.
pub async fn authorize_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let params = parse_params(req.query_string().as_bytes());
    let outcome = authorize(&state, &req, params).await;
    respond(&state, outcome)
}

/// `POST /oauth2/authorize`: the login or consent form, or an authorization
/// request sent as a form (OIDC Core §3.1.2.1).
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
    let params = parse_params(&body);
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
    let (request, client) = authorization::validate(&state.db, RequestParams(&params)).await?;
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
        None => show_login(state, req, request, &client, None).await,
    }
}

/// OIDC Core §3.1.2.1 `max_age`: the password was entered recently enough.
/// `max_age=0` always asks again, like `prompt=login`.
fn recent_enough(session: &BrowserSession, max_age: Option<i64>) -> bool {
    max_age.is_none_or(|max| {
        max > 0
            && (accounts::now() - session.auth_time).num_milliseconds() <= max.saturating_mul(1000)
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

/// Shows the login page for `request`, storing it until the form comes back.
async fn show_login(
    state: &AppState,
    req: &HttpRequest,
    request: AuthorizationRequest,
    client: &Client,
    error: Option<&str>,
) -> Result<HttpResponse, AuthorizeError> {
    let names = cookie_names(state);
    let existing = cookie_value(req, names.browser).filter(|v| v.len() == 43);
    let browser = existing.clone().unwrap_or_else(random_token);
    let hint = request.login_hint.clone();
    let target = pages::form_target(&request.redirect_uri);
    let form = sso::save_pending(&state.db, state.sso, request, browser.clone()).await?;
    let mut response = pages::login(
        LoginPage {
            client_name: &client.name,
            request_id: &form.request_id,
            csrf_token: &form.csrf_token,
            email: hint.as_deref(),
            error,
            form_target: target.as_deref(),
        },
        StatusCode::OK,
    );
    if existing.is_none() {
        set_cookie(&mut response, cookie(names.browser, browser, names.secure));
    }
    Ok(response)
}

fn set_cookie(response: &mut HttpResponse, cookie: Cookie<'static>) {
    // Only fails for a cookie that can't be a header value; ours can.
    let _ = response.add_cookie(&cookie);
}

/// The login or consent form came back: continue the stored request, but
/// only from the browser that opened it and with its page's CSRF token.
async fn continue_sign_in(
    state: &AppState,
    req: &HttpRequest,
    params: &[(String, String)],
) -> Result<HttpResponse, AuthorizeError> {
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let form = PendingForm {
        request_id: field("request_id").unwrap_or_default().to_owned(),
        csrf_token: field("csrf_token").unwrap_or_default().to_owned(),
    };
    let names = cookie_names(state);
    let request_id = form.request_id.clone();
    let csrf_token = form.csrf_token.clone();
    let request = match sso::load_pending(&state.db, form, cookie_value(req, names.browser)).await {
        Ok(request) => request,
        Err(PendingError::Stale) => {
            return Ok(page_failure(
                StatusCode::BAD_REQUEST,
                &PendingError::Stale.to_string(),
            ));
        }
        Err(PendingError::Db(e)) => return Err(e.into()),
    };
    let client = match crate::clients::find(&state.db, request.client_id.clone()).await {
        Ok(client) => client,
        Err(crate::clients::ClientError::Db(e)) => return Err(e.into()),
        Err(_) => {
            return Err(AuthorizeError::Untrusted(
                "the application is no longer registered".into(),
            ));
        }
    };
    let pending = PendingForm {
        request_id,
        csrf_token,
    };
    match field("action") {
        Some("login") => {
            let email = field("email").unwrap_or_default();
            let password = field("password").unwrap_or_default().to_owned();
            let user = match accounts::authenticate(&state.db, &state.hasher, email, password).await
            {
                Ok(user) => user,
                Err(e @ (AccountError::InvalidCredentials | AccountError::Disabled)) => {
                    let message = match e {
                        AccountError::Disabled => "This account is disabled.",
                        _ => "The email or password is not right.",
                    };
                    return Ok(login_again(&request, &client, &pending, email, message));
                }
                Err(AccountError::Db(e)) => return Err(e.into()),
                Err(AccountError::Hashing(_)) => {
                    return Ok(page_failure(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The service is busy. Please try again in a moment.",
                    ));
                }
                Err(e) => {
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
            let mut response =
                after_sign_in(state, req, request, client, session, Some(pending)).await?;
            set_cookie(
                &mut response,
                cookie(names.session, cookie_secret, names.secure),
            );
            Ok(response)
        }
        Some("consent") => {
            let session = match cookie_value(req, names.session) {
                Some(cookie) => sso::find_session(&state.db, state.sso, cookie).await?,
                None => None,
            };
            let Some(session) = session else {
                // The SSO session ended while the consent page was open.
                return Ok(login_again(
                    &request,
                    &client,
                    &pending,
                    "",
                    "Your session has ended. Please sign in again.",
                ));
            };
            if field("decision") != Some("allow") {
                sso::forget_pending(&state.db, pending.request_id).await?;
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
            issue_and_redirect(state, &request, &session, Some(pending)).await
        }
        _ => Ok(page_failure(
            StatusCode::BAD_REQUEST,
            "the form is missing its action",
        )),
    }
}

fn login_again(
    request: &AuthorizationRequest,
    client: &Client,
    pending: &PendingForm,
    email: &str,
    message: &str,
) -> HttpResponse {
    let target = pages::form_target(&request.redirect_uri);
    pages::login(
        LoginPage {
            client_name: &client.name,
            request_id: &pending.request_id,
            csrf_token: &pending.csrf_token,
            email: Some(email),
            error: Some(message),
            form_target: target.as_deref(),
        },
        StatusCode::OK,
    )
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
    let names = cookie_names(state);
    let mut new_browser_cookie = None;
    let pending = match pending {
        Some(pending) => pending,
        None => {
            let existing = cookie_value(req, names.browser).filter(|v| v.len() == 43);
            let browser = existing.clone().unwrap_or_else(random_token);
            if existing.is_none() {
                new_browser_cookie = Some(browser.clone());
            }
            sso::save_pending(&state.db, state.sso, request.clone(), browser).await?
        }
    };
    let target = pages::form_target(&request.redirect_uri);
    let mut response = pages::consent(ConsentPage {
        client_name: &client.name,
        user_email: &user.email,
        scope: &request.scope,
        request_id: &pending.request_id,
        csrf_token: &pending.csrf_token,
        form_target: target.as_deref(),
    });
    if let Some(browser) = new_browser_cookie {
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

/// `GET|POST /oauth2/logout` (OpenID Connect RP-Initiated Logout 1.0).
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let is_post = req.method() == actix_web::http::Method::POST;
    let mut params = parse_params(req.query_string().as_bytes());
    if is_post && is_form(&req) {
        params.extend(parse_params(&body));
    }
    let one = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let hint = match one("id_token_hint") {
        None => None,
        Some(token) => match state.verifier.id_token_hint(token) {
            Ok(hint) => Some(hint),
            Err(_) => {
                return page_failure(StatusCode::BAD_REQUEST, "the id_token_hint is not valid");
            }
        },
    };
    let client_id = match (hint.as_ref().map(|h| h.aud.as_str()), one("client_id")) {
        (Some(a), Some(b)) if a != b => {
            return page_failure(
                StatusCode::BAD_REQUEST,
                "client_id does not match the id_token_hint",
            );
        }
        (a, b) => a.or(b).map(str::to_owned),
    };
    let return_to = match one("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let client = match client_id {
                Some(id) => match crate::clients::find(&state.db, id).await {
                    Ok(client) => Some(client),
                    Err(crate::clients::ClientError::Db(e)) => {
                        return authorize_failure(e.into(), &state.settings.issuer);
                    }
                    Err(_) => None,
                },
                None => None,
            };
            if !client.is_some_and(|c| c.post_logout_redirect_uris.iter().any(|u| u == uri)) {
                return page_failure(
                    StatusCode::BAD_REQUEST,
                    "the post_logout_redirect_uri is not registered for this client",
                );
            }
            let mut params = Vec::new();
            if let Some(s) = one("state") {
                params.push(("state", s));
            }
            Some(redirect_with(uri, &params))
        }
    };
    // A GET without a valid hint could be a page tricking the browser into
    // signing out: ask first. The confirmation comes back as a same-site
    // POST (SameSite=Lax sends the cookie only then).
    let confirmed = hint.is_some() || (is_post && one("confirm") == Some("yes"));
    if !confirmed {
        let mut hidden = Vec::new();
        for name in ["post_logout_redirect_uri", "state", "client_id"] {
            if let Some(v) = one(name) {
                hidden.push((name, v));
            }
        }
        return pages::logout_confirm(&hidden);
    }
    let names = cookie_names(&state);
    let signed_out = sso::sign_out(
        &state.db,
        cookie_value(&req, names.session),
        hint.and_then(|h| h.sid),
        client_info(&req),
    )
    .await;
    if let Err(e) = signed_out {
        return authorize_failure(e.into(), &state.settings.issuer);
    }
    let mut response = match return_to {
        Some(location) => redirect(&location),
        None => pages::signed_out(),
    };
    set_cookie(&mut response, removal(names.session, names.secure));
    response
}
