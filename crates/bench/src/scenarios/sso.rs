//! `sso`: what one single sign-on costs once the browser has an SSO
//! session — an application sending a signed-in user to Tessera and back.
//! Each iteration is one sign-in of two requests, measured as one:
//!
//! 1. `GET /oauth2/authorize` with the SSO cookie, for a first-party public
//!    client: `303 See Other` to the redirect URI with a code (the bench
//!    does not follow it; the redirect URI need not exist);
//! 2. `POST /oauth2/token` `grant_type=authorization_code` with the PKCE
//!    verifier: an access token, a refresh token and an ID token (two RS256
//!    signatures) whose `nonce` is the one sent in step 1.
//!
//! Every task is a browser of its own: it signs in once through the login
//! form (an argon2 hash), then keeps that SSO session for the whole run.
//! Every iteration has a fresh PKCE verifier, `state` and `nonce`.

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use rand::distributions::Alphanumeric;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{StatusCode, Url};
use rsa::sha2::{Digest, Sha256};
use tessera_test_support::hidden_field;

use super::Target;
use super::account::{self, Account};
use crate::cli::SsoClient;
use crate::load::{Answer, Exchange, Mismatch, RequestSpec};
use crate::report::row;

/// The scopes asked for: an ID token with the `email` and `name` claims.
const SCOPE: &str = "openid email profile";

/// Cookie names end so; Tessera adds `__Host-` when its issuer is https.
const SSO_COOKIE: &str = "tessera-sso";
const BROWSER_COOKIE: &str = "tessera-browser";

pub async fn run(target: &Target, client: &SsoClient) -> Result<()> {
    let account = account::register_fresh(target).await?;
    let endpoints = Endpoints {
        authorize: target.url("/oauth2/authorize")?,
        token: target.url("/oauth2/token")?,
        client_id: client.client_id.clone(),
        redirect_uri: client.redirect_uri.clone(),
    };
    // One SSO session per task. Each sign-in costs the server an argon2
    // hash, so they go one at a time: a burst would only queue for hashing
    // slots.
    let mut browsers = Vec::with_capacity(target.concurrency() as usize);
    for _ in 0..target.concurrency() {
        let cookie = sign_in_with_password(target, &endpoints, &account).await?;
        browsers.push(SignIn::new(endpoints.clone(), cookie));
    }
    // One sign-in first, so a broken contract fails here with the reason.
    target.expect_iteration(&mut browsers[0]).await?;

    let (result, browsers) = target.measure_exchanges("sso", browsers).await?;
    result.print();
    let ended = browsers.iter().filter(|b| b.is_spent()).count();
    row(
        "SSO sessions",
        format!(
            "{} of {} still signed in after the run (the sign-in page instead of a code \
             ends a task)",
            browsers.len() - ended,
            browsers.len()
        ),
    );
    Ok(())
}

/// Where the sign-ins go, and as which client.
#[derive(Debug, Clone)]
struct Endpoints {
    authorize: Url,
    token: Url,
    client_id: String,
    redirect_uri: String,
}

/// A cookie as the server set it: name and value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cookie {
    name: String,
    value: String,
}

/// One authorization request's secrets: fresh for every sign-in.
#[derive(Debug, Clone)]
struct Attempt {
    code_verifier: String,
    state: String,
    nonce: String,
}

impl Attempt {
    fn new() -> Attempt {
        Attempt {
            // RFC 7636 §4.1: 43 to 128 characters of [A-Za-z0-9-._~].
            code_verifier: random_text(64),
            state: random_text(22),
            nonce: random_text(22),
        }
    }

    /// `GET /oauth2/authorize?…` for this attempt.
    fn authorize_url(&self, endpoints: &Endpoints) -> Url {
        let mut url = endpoints.authorize.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &endpoints.client_id)
            .append_pair("redirect_uri", &endpoints.redirect_uri)
            .append_pair("scope", SCOPE)
            .append_pair("state", &self.state)
            .append_pair("nonce", &self.nonce)
            .append_pair("code_challenge", &s256_challenge(&self.code_verifier))
            .append_pair("code_challenge_method", "S256");
        url
    }

    /// The code's redemption: a public client sends its `client_id` and the
    /// verifier, no secret.
    fn token_request(&self, endpoints: &Endpoints, code: &str) -> RequestSpec {
        RequestSpec::post_form(
            endpoints.token.clone(),
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &endpoints.redirect_uri),
                ("client_id", &endpoints.client_id),
                ("code_verifier", &self.code_verifier),
            ],
        )
    }
}

fn random_text(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// RFC 7636 §4.2 S256: BASE64URL(SHA256(ASCII(code_verifier))), unpadded.
fn s256_challenge(code_verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(code_verifier.as_bytes()))
}

/// Signs a new browser in through the login form, once: the sign-in page
/// (hidden `request_id` and `csrf_token`, and a browser cookie), then the
/// form with the password, answered with a code and the SSO cookie.
async fn sign_in_with_password(
    target: &Target,
    endpoints: &Endpoints,
    account: &Account,
) -> Result<Cookie> {
    let attempt = Attempt::new();
    let page = target
        .client()
        .get(attempt.authorize_url(endpoints))
        .send()
        .await?;
    let status = page.status();
    let browser = set_cookie(page.headers(), BROWSER_COOKIE);
    let location = header_text(page.headers(), LOCATION).map(|l| format!(" to {l}"));
    let html = page.text().await?;
    if status != StatusCode::OK {
        bail!(
            "set-up: GET /oauth2/authorize without a session answered {status}{} instead of \
             the sign-in page: {}",
            location.unwrap_or_default(),
            snippet(html.as_bytes())
        );
    }
    let (Some(request_id), Some(csrf_token)) = (
        hidden_field(&html, "request_id"),
        hidden_field(&html, "csrf_token"),
    ) else {
        bail!(
            "set-up: the sign-in page has no request_id and csrf_token fields: {}",
            snippet(html.as_bytes())
        );
    };
    let browser = browser.context("set-up: the sign-in page set no tessera-browser cookie")?;
    let form = RequestSpec::post_form(
        endpoints.authorize.clone(),
        &[
            ("request_id", &request_id),
            ("csrf_token", &csrf_token),
            ("action", "login"),
            ("email", &account.email),
            ("password", &account.password),
        ],
    )
    .with_cookie(&browser.name, &browser.value);
    let signed_in = form.build(target.client()).send().await?;
    let status = signed_in.status();
    let headers = signed_in.headers().clone();
    let body = signed_in.bytes().await?;
    if status == StatusCode::OK && String::from_utf8_lossy(&body).contains("value=\"consent\"") {
        bail!(
            "set-up: Tessera asks for consent: client {} is not first-party (create it with \
             `tessera clients create ... --public --first-party`)",
            endpoints.client_id
        );
    }
    if !status.is_redirection() {
        bail!(
            "set-up: POST /oauth2/authorize (the sign-in form) answered {status} instead of \
             a redirect with a code: {}",
            snippet(&body)
        );
    }
    let location =
        header_text(&headers, LOCATION).context("set-up: a redirect without Location")?;
    code_from_redirect(location, &endpoints.redirect_uri, &attempt.state)
        .map_err(|m| anyhow::anyhow!("set-up: signing in: {}", m.detail))?;
    set_cookie(&headers, SSO_COOKIE).context("set-up: signing in set no tessera-sso cookie")
}

fn header_text(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The cookie whose name ends with `suffix` among the `Set-Cookie` headers
/// (`name=value; Path=/; HttpOnly; …`).
fn set_cookie(headers: &HeaderMap, suffix: &str) -> Option<Cookie> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.trim().split_once('='))
        .find(|(name, value)| name.ends_with(suffix) && !value.is_empty())
        .map(|(name, value)| Cookie {
            name: name.to_owned(),
            value: value.to_owned(),
        })
}

/// The start of an answer for an error message: a page's text without its
/// markup and stylesheet, other bodies as they are.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let main = text
        .split_once("<main>")
        .and_then(|(_, rest)| rest.split_once("</main>"))
        .map(|(main, _)| main);
    let Some(main) = main else {
        return text.chars().take(300).collect();
    };
    let mut plain = String::new();
    let mut in_tag = false;
    for c in main.chars() {
        match c {
            '<' => {
                in_tag = true;
                plain.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => plain.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = plain.split_whitespace().collect();
    words.join(" ").chars().take(300).collect()
}

/// The code in a redirect back to the client: to its redirect URI, with
/// the request's `state`, an `iss` (RFC 9207), and no `error`.
fn code_from_redirect(location: &str, redirect_uri: &str, state: &str) -> Result<String, Mismatch> {
    let mismatch = |kind: &'static str, detail: String| Mismatch { kind, detail };
    if !location.starts_with(redirect_uri) {
        return Err(mismatch(
            "redirect elsewhere",
            format!("the authorize redirect goes to {location}, not to {redirect_uri}"),
        ));
    }
    let url = Url::parse(location).map_err(|e| {
        mismatch(
            "redirect elsewhere",
            format!("the authorize redirect {location} is not a URL: {e}"),
        )
    })?;
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if let Some(error) = param("error") {
        return Err(mismatch(
            "error redirect",
            format!(
                "the authorize redirect carries error={error}: {}",
                param("error_description").unwrap_or_default()
            ),
        ));
    }
    if param("state").as_deref() != Some(state) {
        return Err(mismatch(
            "wrong state",
            format!("the authorize redirect does not return the request's state: {location}"),
        ));
    }
    if param("iss").is_none() {
        return Err(mismatch(
            "no iss",
            format!("the authorize redirect has no iss (RFC 9207): {location}"),
        ));
    }
    param("code").filter(|c| !c.is_empty()).ok_or_else(|| {
        mismatch(
            "no code",
            format!("the authorize redirect has no code: {location}"),
        )
    })
}

/// A token response to a sign-in: access and refresh tokens, and an ID
/// token carrying the request's nonce. The signature is not checked: the
/// bench measures the server, it does not trust it.
fn check_tokens(body: &[u8], nonce: &str) -> Result<(), Mismatch> {
    let answer: serde_json::Value = serde_json::from_slice(body).map_err(|_| Mismatch {
        kind: "no tokens",
        detail: format!("the token answer is not JSON: {}", snippet(body)),
    })?;
    let text = |field: &str| answer.get(field).and_then(|v| v.as_str());
    let (Some(_), Some(_), Some(id_token)) = (
        text("access_token"),
        text("refresh_token"),
        text("id_token"),
    ) else {
        return Err(Mismatch {
            kind: "no tokens",
            detail: format!(
                "the token answer lacks access_token, refresh_token or id_token: {}",
                snippet(body)
            ),
        });
    };
    let claims = id_token
        .split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok());
    match claims.as_ref().and_then(|c| c.get("nonce")) {
        Some(serde_json::Value::String(n)) if n == nonce => Ok(()),
        _ => Err(Mismatch {
            kind: "id_token without the nonce",
            detail: format!("the id_token does not carry the request's nonce: {id_token}"),
        }),
    }
}

/// Where a browser's sign-in stands.
#[derive(Debug)]
enum Step {
    /// The authorize request is next (or in flight).
    Authorize,
    /// The code came back: its redemption is next (or in flight).
    Token,
}

/// One browser, signing in to the client again and again with its SSO
/// session.
struct SignIn {
    endpoints: Endpoints,
    sso_cookie: Cookie,
    attempt: Attempt,
    step: Step,
    request: RequestSpec,
    /// The sign-in page came back instead of a code: the SSO session is
    /// over, and every later sign-in would need the password.
    spent: bool,
}

impl SignIn {
    fn new(endpoints: Endpoints, sso_cookie: Cookie) -> SignIn {
        let attempt = Attempt::new();
        let request = authorize_request(&endpoints, &sso_cookie, &attempt);
        SignIn {
            endpoints,
            sso_cookie,
            attempt,
            step: Step::Authorize,
            request,
            spent: false,
        }
    }

    /// A new sign-in, with fresh secrets.
    fn start_over(&mut self) {
        self.attempt = Attempt::new();
        self.request = authorize_request(&self.endpoints, &self.sso_cookie, &self.attempt);
        self.step = Step::Authorize;
    }
}

fn authorize_request(endpoints: &Endpoints, sso_cookie: &Cookie, attempt: &Attempt) -> RequestSpec {
    RequestSpec::get(attempt.authorize_url(endpoints))
        .with_cookie(&sso_cookie.name, &sso_cookie.value)
}

impl Exchange for SignIn {
    fn next_request(&self) -> &RequestSpec {
        &self.request
    }

    fn expects(&self, status: StatusCode) -> bool {
        match self.step {
            // The redirect, or the sign-in page (checked, to say why).
            Step::Authorize => status.is_redirection() || status == StatusCode::OK,
            Step::Token => status.is_success(),
        }
    }

    fn check(&mut self, answer: &Answer<'_>) -> Result<(), Mismatch> {
        match self.step {
            Step::Authorize => {
                if !answer.status.is_redirection() {
                    self.spent = true;
                    return Err(Mismatch {
                        kind: "sign-in page instead of a code",
                        detail: format!(
                            "GET /oauth2/authorize with the SSO cookie answered {} with a \
                             page: the SSO session is over",
                            answer.status
                        ),
                    });
                }
                let location = answer.header(LOCATION.as_str()).unwrap_or_default();
                let code = code_from_redirect(
                    location,
                    &self.endpoints.redirect_uri,
                    &self.attempt.state,
                )?;
                self.request = self.attempt.token_request(&self.endpoints, &code);
                self.step = Step::Token;
                Ok(())
            }
            Step::Token => {
                let checked = check_tokens(answer.body, &self.attempt.nonce);
                self.start_over();
                checked
            }
        }
    }

    fn iteration_continues(&self) -> bool {
        matches!(self.step, Step::Token)
    }

    fn restart(&mut self) {
        self.start_over();
    }

    fn is_spent(&self) -> bool {
        self.spent
    }

    fn describe(&self) -> String {
        format!(
            "GET {} (303) → POST {}",
            self.endpoints.authorize.path(),
            self.endpoints.token.path()
        )
    }

    fn iteration_noun(&self) -> Option<&'static str> {
        Some("sign-in")
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    const REDIRECT_URI: &str = "com.example.bench:/cb";

    fn endpoints() -> Endpoints {
        Endpoints {
            authorize: "http://127.0.0.1:1/oauth2/authorize".parse().unwrap(),
            token: "http://127.0.0.1:1/oauth2/token".parse().unwrap(),
            client_id: "bench-sso-id".to_owned(),
            redirect_uri: REDIRECT_URI.to_owned(),
        }
    }

    fn browser() -> SignIn {
        SignIn::new(
            endpoints(),
            Cookie {
                name: "tessera-sso".to_owned(),
                value: "c".repeat(43),
            },
        )
    }

    fn query(url: &Url, name: &str) -> String {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("{url} has no {name}"))
    }

    fn form(spec: &RequestSpec) -> Vec<(String, String)> {
        let request = spec.build(&reqwest::Client::new()).build().unwrap();
        let body = request.body().and_then(|b| b.as_bytes()).unwrap();
        form_urlencoded::parse(body).into_owned().collect()
    }

    fn field(fields: &[(String, String)], name: &str) -> String {
        fields.iter().find(|(k, _)| k == name).unwrap().1.clone()
    }

    fn redirect(location: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(LOCATION, HeaderValue::from_str(location).unwrap());
        headers
    }

    fn see_other(headers: &HeaderMap) -> Answer<'_> {
        Answer {
            status: StatusCode::SEE_OTHER,
            headers,
            body: b"",
        }
    }

    /// A token answer whose id_token carries `nonce` (unsigned: the bench
    /// does not check signatures).
    fn tokens(nonce: &str) -> Vec<u8> {
        let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"u","nonce":"{nonce}"}}"#));
        format!(
            r#"{{"access_token":"a","token_type":"Bearer","expires_in":900,"refresh_token":"r","id_token":"h.{payload}.s"}}"#
        )
        .into_bytes()
    }

    #[test]
    fn s256_is_rfc_7636_appendix_b() {
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let verifier = Attempt::new().code_verifier;
        assert!(verifier.len() >= 43 && verifier.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn a_sign_in_is_the_authorize_redirect_then_the_code_redemption() {
        let mut browser = browser();
        assert!(!browser.iteration_continues());
        let authorize = browser.next_request().clone();
        let built = authorize.build(&reqwest::Client::new()).build().unwrap();
        assert_eq!(built.method(), reqwest::Method::GET);
        assert_eq!(
            built.headers()["cookie"],
            format!("tessera-sso={}", "c".repeat(43)).as_str()
        );
        let url = &authorize.url;
        assert_eq!(url.path(), "/oauth2/authorize");
        assert_eq!(query(url, "response_type"), "code");
        assert_eq!(query(url, "client_id"), "bench-sso-id");
        assert_eq!(query(url, "redirect_uri"), REDIRECT_URI);
        assert_eq!(query(url, "scope"), "openid email profile");
        assert_eq!(query(url, "code_challenge_method"), "S256");
        let challenge = query(url, "code_challenge");
        let (state, nonce) = (query(url, "state"), query(url, "nonce"));

        assert!(browser.expects(StatusCode::SEE_OTHER));
        let headers = redirect(&format!(
            "{REDIRECT_URI}?code=the-code&state={state}&iss=http%3A%2F%2F127.0.0.1%3A1"
        ));
        assert_eq!(browser.check(&see_other(&headers)), Ok(()));
        assert!(browser.iteration_continues());
        let token = browser.next_request();
        assert_eq!(token.url.path(), "/oauth2/token");
        let fields = form(token);
        assert_eq!(field(&fields, "grant_type"), "authorization_code");
        assert_eq!(field(&fields, "code"), "the-code");
        assert_eq!(field(&fields, "redirect_uri"), REDIRECT_URI);
        assert_eq!(field(&fields, "client_id"), "bench-sso-id");
        assert_eq!(s256_challenge(&field(&fields, "code_verifier")), challenge);
        let built = token.build(&reqwest::Client::new()).build().unwrap();
        assert!(built.headers().get("cookie").is_none());
        assert!(built.headers().get("authorization").is_none());

        assert!(!browser.expects(StatusCode::SEE_OTHER));
        assert_eq!(browser.check(&Answer::ok(&tokens(&nonce))), Ok(()));
        assert!(!browser.iteration_continues());
        // The next sign-in has fresh secrets.
        let next = &browser.next_request().url;
        assert_eq!(next.path(), "/oauth2/authorize");
        assert_ne!(query(next, "state"), state);
        assert_ne!(query(next, "code_challenge"), challenge);
        assert!(!browser.is_spent());
    }

    #[test]
    fn a_failed_step_starts_a_new_sign_in() {
        let mut browser = browser();
        let state = query(&browser.next_request().url, "state");
        let headers = redirect(&format!("{REDIRECT_URI}?code=c&state={state}&iss=x"));
        browser.check(&see_other(&headers)).unwrap();
        // The token request failed (a transport error, a 400): start over.
        browser.restart();
        assert!(!browser.iteration_continues());
        assert_eq!(browser.next_request().url.path(), "/oauth2/authorize");

        // A token answer with another sign-in's nonce is a failure, and
        // ends the iteration too.
        let state = query(&browser.next_request().url, "state");
        let headers = redirect(&format!("{REDIRECT_URI}?code=c&state={state}&iss=x"));
        browser.check(&see_other(&headers)).unwrap();
        let mismatch = browser.check(&Answer::ok(&tokens("other"))).unwrap_err();
        assert_eq!(mismatch.kind, "id_token without the nonce");
        assert!(!browser.iteration_continues());
    }

    #[test]
    fn the_sign_in_page_instead_of_a_code_ends_the_task() {
        let mut browser = browser();
        assert!(browser.expects(StatusCode::OK));
        let page = Answer::ok(b"<!doctype html><h1>Sign in to continue</h1>");
        let mismatch = browser.check(&page).unwrap_err();
        assert_eq!(mismatch.kind, "sign-in page instead of a code");
        assert!(browser.is_spent());
    }

    #[test]
    fn redirects_must_carry_a_code_the_state_and_iss() {
        let ok = "com.example.bench:/cb?code=abc&state=s1&iss=http%3A%2F%2F127.0.0.1";
        assert_eq!(
            code_from_redirect(ok, REDIRECT_URI, "s1"),
            Ok("abc".to_owned())
        );
        let kind = |location: &str| {
            code_from_redirect(location, REDIRECT_URI, "s1")
                .unwrap_err()
                .kind
        };
        assert_eq!(
            kind("com.example.bench:/cb?code=abc&state=s2&iss=i"),
            "wrong state"
        );
        assert_eq!(kind("com.example.bench:/cb?code=abc&state=s1"), "no iss");
        assert_eq!(kind("com.example.bench:/cb?state=s1&iss=i"), "no code");
        assert_eq!(
            kind("com.example.bench:/cb?error=invalid_scope&error_description=x&state=s1&iss=i"),
            "error redirect"
        );
        assert_eq!(
            kind("https://elsewhere.example/cb?code=abc&state=s1&iss=i"),
            "redirect elsewhere"
        );
    }

    #[test]
    fn tokens_need_an_id_token_with_the_nonce() {
        assert_eq!(check_tokens(&tokens("n1"), "n1"), Ok(()));
        assert_eq!(
            check_tokens(br#"{"access_token":"a","refresh_token":"r"}"#, "n1")
                .unwrap_err()
                .kind,
            "no tokens"
        );
        assert_eq!(check_tokens(b"<html>", "n1").unwrap_err().kind, "no tokens");
        let garbled = br#"{"access_token":"a","refresh_token":"r","id_token":"not-a-jwt"}"#;
        assert_eq!(
            check_tokens(garbled, "n1").unwrap_err().kind,
            "id_token without the nonce"
        );
    }

    #[test]
    fn error_pages_are_quoted_as_text() {
        let page = b"<!doctype html>\n<html><head><style>body{margin:0}</style></head>\
            <body><main><h1>Sign-in error</h1><p>the redirect_uri is\n not registered</p>\
            </main></body></html>";
        assert_eq!(
            snippet(page),
            "Sign-in error the redirect_uri is not registered"
        );
        assert_eq!(snippet(br#"{"error":"x"}"#), r#"{"error":"x"}"#);
    }

    #[test]
    fn the_sign_in_cookies_are_read() {
        let mut headers = HeaderMap::new();
        for value in [
            "tessera-browser=b1; Path=/; HttpOnly; SameSite=Lax",
            "__Host-tessera-sso=s1; Path=/; HttpOnly; Secure; SameSite=Lax",
        ] {
            headers.append(SET_COOKIE, HeaderValue::from_static(value));
        }
        assert_eq!(
            set_cookie(&headers, BROWSER_COOKIE),
            Some(Cookie {
                name: "tessera-browser".to_owned(),
                value: "b1".to_owned()
            })
        );
        assert_eq!(
            set_cookie(&headers, SSO_COOKIE).map(|c| c.name),
            Some("__Host-tessera-sso".to_owned())
        );
        assert_eq!(set_cookie(&HeaderMap::new(), SSO_COOKIE), None);
    }
}
