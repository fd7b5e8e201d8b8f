//! The browser side of OpenID Connect, as decisions: a new authorization
//! request (sign in, or use the SSO session; ask for consent where needed;
//! send the browser back with a code), the sign-in page's forms coming back,
//! and RP-initiated logout. Each returns an [`Answer`] — the page to show or
//! the address to send the browser to, and the cookies to change — which
//! the handler renders; the rules live here, once, for the handlers and the
//! fuzzers alike.

use std::time::Duration;

use super::Services;
use crate::accounts::{self, AccountError};
use crate::clients::{self, Client, ClientError};
use crate::db::DbError;
use crate::ids::ClientId;
use crate::oauth::authorization::{
    self, Authentication, AuthorizationRequest, AuthorizeError, RequestParams, ReturnTo,
    redirect_with,
};
use crate::secrets::{is_token_shaped, random_token};
use crate::sessions::ClientInfo;
use crate::sso::{self, BrowserSession, Pending, PendingError, PendingForm, Stage};
use crate::throttle::lockout::{self, LoginError};

/// What the browser presented with the request.
pub struct Browser {
    /// The SSO session cookie's value.
    pub sso_cookie: Option<String>,
    /// The value binding sign-in forms to the browser that opened them.
    pub binding_cookie: Option<String>,
    pub info: ClientInfo,
}

/// What to answer, and the cookies to change with it.
pub struct Answer {
    pub outcome: Outcome,
    /// A new browser-binding value to set.
    pub set_binding: Option<String>,
    /// A new SSO session cookie to set (a sign-in).
    pub set_sso: Option<String>,
    /// Remove the SSO session cookie (a sign-out).
    pub clear_sso: bool,
    /// How a password check in this step went (the metrics' `outcome`).
    pub login_attempt: Option<&'static str>,
}

impl Answer {
    fn of(outcome: Outcome) -> Answer {
        Answer {
            outcome,
            set_binding: None,
            set_sso: None,
            clear_sso: false,
            login_attempt: None,
        }
    }
}

pub enum Outcome {
    Login(LoginPage),
    Consent(ConsentPage),
    /// To this address with a 303: the client's redirect URI with the code,
    /// or a post-logout redirect URI.
    Redirect(String),
    /// The RP-initiated logout confirmation, with the fields its form posts.
    ConfirmSignOut {
        hidden: Vec<(&'static str, String)>,
        return_to: Option<String>,
    },
    SignedOut,
    /// A page saying what is wrong; never a redirect (the request can't be
    /// trusted with one, or the browser's form is stale).
    Refused(Refusal),
}

pub struct LoginPage {
    pub client_name: String,
    pub form: PendingForm,
    /// The address to fill in (the hint, or what was typed).
    pub email: Option<String>,
    pub problem: Option<LoginProblem>,
    /// Where the form's answer leads (for the page's CSP `form-action`).
    pub redirect_uri: String,
}

/// Why the login page is shown again.
pub enum LoginProblem {
    WrongCredentials,
    Disabled,
    /// Addresses must be verified, and this one is not yet.
    EmailNotVerified,
    /// An administrator asked for a new password first.
    PasswordChangeRequired,
    Locked {
        retry_after: Duration,
    },
}

pub struct ConsentPage {
    pub client_name: String,
    pub user_email: String,
    pub scope: String,
    pub form: PendingForm,
    pub redirect_uri: String,
}

pub enum Refusal {
    /// 400, with what is wrong.
    BadRequest(String),
    /// 503: argon2's queue is full; try again.
    Busy,
    /// 500: something failed that the user can't fix.
    Failed(&'static str),
}

fn refused(why: impl Into<String>) -> Answer {
    Answer::of(Outcome::Refused(Refusal::BadRequest(why.into())))
}

/// A new authorization request: sign the browser in (or use its SSO
/// session), ask for consent where needed, and send it back with a code.
pub async fn authorize(
    app: &Services,
    params: &[(String, String)],
    browser: Browser,
) -> Result<Answer, AuthorizeError> {
    let (request, client) =
        authorization::validate(&app.db, RequestParams(params), &app.own_audiences).await?;
    let session = match &browser.sso_cookie {
        Some(cookie) => sso::find_session(&app.db, app.sso, cookie.clone()).await?,
        None => None,
    };
    let usable =
        session.filter(|s| !request.prompt.login && recent_enough(app, s, request.max_age));
    match usable {
        Some(session) => after_sign_in(app, &browser, request, client, session, None).await,
        None if request.prompt.none => Err(to_client(
            &request,
            "login_required",
            "the user is not signed in",
        )),
        None => show_login(app, &browser, request, &client).await,
    }
}

/// OIDC Core §3.1.2.1 `max_age`: the password was entered recently enough.
/// `max_age=0` always asks again, like `prompt=login`.
fn recent_enough(app: &Services, session: &BrowserSession, max_age: Option<i64>) -> bool {
    max_age.is_none_or(|max| {
        max > 0 && (app.db.now() - session.auth_time).num_milliseconds() <= max.saturating_mul(1000)
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

/// The browser-binding value, and whether it is new (to be set).
fn browser_binding(browser: &Browser) -> (String, bool) {
    match browser
        .binding_cookie
        .as_ref()
        .filter(|v| is_token_shaped(v))
    {
        Some(existing) => (existing.clone(), false),
        None => (random_token(), true),
    }
}

/// Shows the login page for `request`, storing it until the form comes back.
async fn show_login(
    app: &Services,
    browser: &Browser,
    request: AuthorizationRequest,
    client: &Client,
) -> Result<Answer, AuthorizeError> {
    let (binding, is_new) = browser_binding(browser);
    let email = request.login_hint.clone();
    let redirect_uri = request.redirect_uri.clone();
    let client_id = request.client_id.clone();
    let form = sso::save_pending(
        &app.db,
        app.sso,
        client_id,
        request,
        Stage::Login,
        binding.clone(),
    )
    .await?;
    let mut answer = Answer::of(Outcome::Login(LoginPage {
        client_name: client.name.clone(),
        form,
        email,
        problem: None,
        redirect_uri,
    }));
    answer.set_binding = is_new.then_some(binding);
    Ok(answer)
}

/// The login or consent form came back: continue the stored request, but
/// only from the browser that opened it, with its page's CSRF token, and
/// for the page that was shown.
pub async fn continue_sign_in(
    app: &Services,
    params: &[(String, String)],
    browser: Browser,
) -> Result<Answer, AuthorizeError> {
    let fields = RequestParams(params);
    let field = |name: &str| fields.one(name).ok().flatten().unwrap_or_default();
    let form = PendingForm {
        request_id: field("request_id").to_owned(),
        csrf_token: field("csrf_token").to_owned(),
    };
    let pending: Pending<AuthorizationRequest> =
        match sso::load_pending(&app.db, form, browser.binding_cookie.clone()).await {
            Ok(pending) => pending,
            Err(PendingError::Stale) => return Ok(refused(PendingError::Stale.to_string())),
            Err(PendingError::Db(e)) => return Err(e.into()),
        };
    let client = match clients::find(&app.db, ClientId::new(&pending.request.client_id)).await {
        Ok(client) => client,
        Err(ClientError::Db(e)) => return Err(e.into()),
        Err(_) => {
            return Err(AuthorizeError::Untrusted(
                "the application is no longer registered".into(),
            ));
        }
    };
    match (field("action"), pending.stage) {
        ("login", Stage::Login) => {
            sign_in_with_password(
                app,
                browser,
                pending,
                client,
                field("email"),
                field("password"),
            )
            .await
        }
        ("consent", Stage::Consent) => {
            consent(app, &browser, pending, client, field("decision") == "allow").await
        }
        _ => Ok(refused(
            "this form does not belong to the page that was shown",
        )),
    }
}

/// The login form: check the password (behind the account lockout), start
/// the SSO session, and go on as after any sign-in.
async fn sign_in_with_password(
    app: &Services,
    browser: Browser,
    pending: Pending<AuthorizationRequest>,
    client: Client,
    email: &str,
    password: &str,
) -> Result<Answer, AuthorizeError> {
    let result = super::login::check_credentials(app, email, password.to_owned()).await;
    let attempt = Some(lockout::outcome_label(&result));
    let again = |problem| {
        let mut answer = Answer::of(Outcome::Login(LoginPage {
            client_name: client.name.clone(),
            form: PendingForm {
                request_id: pending.form.request_id.clone(),
                csrf_token: pending.form.csrf_token.clone(),
            },
            email: Some(email.to_owned()),
            problem: Some(problem),
            redirect_uri: pending.request.redirect_uri.clone(),
        }));
        answer.login_attempt = attempt;
        answer
    };
    let failed = |refusal| {
        let mut answer = Answer::of(Outcome::Refused(refusal));
        answer.login_attempt = attempt;
        answer
    };
    let user = match result {
        Ok(user) => user,
        Err(LoginError::Locked(t)) => {
            return Ok(again(LoginProblem::Locked {
                retry_after: t.retry_after,
            }));
        }
        Err(LoginError::Account(AccountError::InvalidCredentials)) => {
            return Ok(again(LoginProblem::WrongCredentials));
        }
        Err(LoginError::Account(AccountError::Disabled)) => {
            return Ok(again(LoginProblem::Disabled));
        }
        Err(LoginError::Account(AccountError::EmailNotVerified)) => {
            return Ok(again(LoginProblem::EmailNotVerified));
        }
        Err(LoginError::Account(AccountError::PasswordChangeRequired)) => {
            return Ok(again(LoginProblem::PasswordChangeRequired));
        }
        Err(LoginError::Account(AccountError::Db(e))) => return Err(e.into()),
        Err(LoginError::Account(AccountError::Hashing(_))) => return Ok(failed(Refusal::Busy)),
        Err(LoginError::Account(e)) => {
            tracing::error!(error = %e, "sign-in failed");
            return Ok(failed(Refusal::Failed("Signing in failed.")));
        }
    };
    let (session, cookie_secret) = sso::sign_in(
        &app.db,
        app.sso,
        user.id,
        browser.sso_cookie.clone(),
        browser.info.clone(),
    )
    .await?;
    let Pending { request, form, .. } = pending;
    let mut answer = after_sign_in(app, &browser, request, client, session, Some(form)).await?;
    answer.set_sso = Some(cookie_secret);
    answer.login_attempt = attempt;
    Ok(answer)
}

/// The consent form: remember an "allow" and issue the code; a "deny"
/// goes back to the client as `access_denied`.
async fn consent(
    app: &Services,
    browser: &Browser,
    pending: Pending<AuthorizationRequest>,
    client: Client,
    allowed: bool,
) -> Result<Answer, AuthorizeError> {
    let session = match &browser.sso_cookie {
        Some(cookie) => sso::find_session(&app.db, app.sso, cookie.clone()).await?,
        None => None,
    };
    // The SSO session may have ended, or grown too old for the request's
    // max_age, while the consent page was open.
    let Some(session) = session.filter(|s| recent_enough(app, s, pending.request.max_age)) else {
        return Ok(refused(
            "Your sign-in has ended. Return to the application and start again.",
        ));
    };
    let Pending { request, form, .. } = pending;
    if !allowed {
        sso::forget_pending(&app.db, form.request_id).await?;
        return Err(to_client(
            &request,
            "access_denied",
            "the user denied the request",
        ));
    }
    sso::remember_consent(
        &app.db,
        session.user_id.clone(),
        ClientId::new(&client.client_id),
        request.scope.clone(),
    )
    .await?;
    issue_and_redirect(app, &request, &session, Some(form)).await
}

/// The user is signed in: ask for consent if this client needs it, else
/// issue the code.
async fn after_sign_in(
    app: &Services,
    browser: &Browser,
    request: AuthorizationRequest,
    client: Client,
    session: BrowserSession,
    pending: Option<PendingForm>,
) -> Result<Answer, AuthorizeError> {
    let needs_consent = request.prompt.consent
        || (!client.first_party
            && !sso::has_consented(
                &app.db,
                session.user_id.clone(),
                ClientId::new(&client.client_id),
                request.scope.clone(),
            )
            .await?);
    if !needs_consent {
        return issue_and_redirect(app, &request, &session, pending).await;
    }
    if request.prompt.none {
        return Err(to_client(
            &request,
            "consent_required",
            "the user has not consented to this client",
        ));
    }
    let user = match accounts::find_by_id(&app.db, session.user_id.clone()).await {
        Ok(user) => user,
        Err(AccountError::Db(e)) => return Err(e.into()),
        Err(_) => return Err(to_client(&request, "login_required", "the account is gone")),
    };
    let mut new_binding = None;
    let form = match pending {
        // Signed in on the login page just now: the same sign-in moves on.
        Some(form) => {
            sso::advance_pending(&app.db, form.request_id.clone(), request.clone()).await?;
            form
        }
        None => {
            let (binding, is_new) = browser_binding(browser);
            if is_new {
                new_binding = Some(binding.clone());
            }
            sso::save_pending(
                &app.db,
                app.sso,
                request.client_id.clone(),
                request.clone(),
                Stage::Consent,
                binding,
            )
            .await?
        }
    };
    let mut answer = Answer::of(Outcome::Consent(ConsentPage {
        client_name: client.name,
        user_email: user.email,
        scope: request.scope,
        form,
        redirect_uri: request.redirect_uri,
    }));
    answer.set_binding = new_binding;
    Ok(answer)
}

/// Issues the code and sends the browser back to the client with it, the
/// request's `state` and our `iss` (RFC 9207).
async fn issue_and_redirect(
    app: &Services,
    request: &AuthorizationRequest,
    session: &BrowserSession,
    pending: Option<PendingForm>,
) -> Result<Answer, AuthorizeError> {
    let code = authorization::issue_code(
        &app.db,
        app.sso.code_ttl,
        request,
        Authentication {
            user_id: &session.user_id,
            browser_session_id: &session.id,
            auth_time: session.auth_time,
        },
    )
    .await?;
    if let Some(pending) = pending {
        sso::forget_pending(&app.db, pending.request_id).await?;
    }
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &request.state {
        params.push(("state", s));
    }
    params.push(("iss", &app.issuer_url));
    Ok(Answer::of(Outcome::Redirect(redirect_with(
        &request.redirect_uri,
        &params,
    ))))
}

/// `GET|POST /oauth2/logout`: OpenID Connect RP-Initiated Logout 1.0.
///
/// Only the SSO session of this browser's cookie is ever ended. A GET signs
/// out at once when its `id_token_hint` names that very session (the
/// application the user is signed in to asked); otherwise the user confirms
/// on a page whose form carries a token derived from the cookie (`is_post`
/// with `confirm`), so another site can neither sign the user out nor fake
/// the confirmation.
pub async fn sign_out(
    app: &Services,
    params: &[(String, String)],
    is_post: bool,
    browser: Browser,
) -> Result<Answer, DbError> {
    let fields = RequestParams(params);
    let one = |name: &str| fields.one(name);
    let (hint, client_id, post_logout_uri, logout_state) = match (
        one("id_token_hint"),
        one("client_id"),
        one("post_logout_redirect_uri"),
        one("state"),
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
        _ => return Ok(refused("a parameter is repeated")),
    };
    let hint = match hint.map(|token| app.verifier.id_token_hint(token)) {
        None => None,
        Some(Ok(hint)) => Some(hint),
        Some(Err(_)) => return Ok(refused("the id_token_hint is not valid")),
    };
    let client_id = match (hint.as_ref().map(|h| h.aud.as_str()), client_id) {
        (Some(a), Some(b)) if a != b => {
            return Ok(refused("client_id does not match the id_token_hint"));
        }
        (a, b) => a.or(b).map(str::to_owned),
    };
    let return_to = match post_logout_uri {
        None => None,
        Some(uri) => {
            let client = match &client_id {
                Some(id) if id.len() <= 200 => {
                    match clients::find(&app.db, ClientId::new(id)).await {
                        Ok(client) => Some(client),
                        Err(ClientError::Db(e)) => return Err(e),
                        Err(_) => None,
                    }
                }
                _ => None,
            };
            if !client
                .is_some_and(|c| clients::is_registered_redirect(&c.post_logout_redirect_uris, uri))
            {
                return Ok(refused(
                    "the post_logout_redirect_uri is not registered for this client",
                ));
            }
            Some(uri.to_owned())
        }
    };
    let cookie = browser.sso_cookie.filter(|c| is_token_shaped(c));
    let session = match &cookie {
        Some(cookie) => sso::find_session(&app.db, app.sso, cookie.clone()).await?,
        None => None,
    };
    let hinted = matches!((&hint, &session),
        (Some(h), Some(s)) if h.sid.as_deref() == Some(s.id.as_str()) && s.user_id == *h.sub);
    let confirmed = is_post
        && matches!((one("confirm"), &cookie),
            (Ok(Some(token)), Some(cookie)) if *token == sso::sign_out_token(cookie));
    if session.is_some() && !hinted && !confirmed {
        let mut hidden: Vec<(&'static str, String)> = vec![(
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
        return Ok(Answer::of(Outcome::ConfirmSignOut { hidden, return_to }));
    }
    if let (Some(cookie), Some(_)) = (cookie, &session) {
        sso::sign_out(&app.db, cookie, browser.info).await?;
    }
    // Signed out now, or never signed in here: either way the application
    // may have its user back.
    let outcome = match return_to {
        Some(uri) => {
            let mut params = Vec::new();
            if let Some(s) = logout_state {
                params.push(("state", s));
            }
            Outcome::Redirect(redirect_with(&uri, &params))
        }
        None => Outcome::SignedOut,
    };
    let mut answer = Answer::of(outcome);
    answer.clear_sso = true;
    Ok(answer)
}
