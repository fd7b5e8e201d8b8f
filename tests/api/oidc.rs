//! OpenID Connect single sign-on: the authorization code flow with PKCE,
//! driven by an independent relying-party library (the `openidconnect`
//! crate) with the test playing the browser — a cookie-keeping HTTP client
//! that reads the login and consent forms and submits them.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, Scope, TokenResponse,
};
use serde_json::{Value, json};
use tessera_test_support::hidden_field;

use crate::both_backends;
use crate::helpers::{PASSWORD, TestApp, assert_oauth_error, unique_email};

pub(crate) const REDIRECT: &str = "http://127.0.0.1:9/callback";
const OTHER_REDIRECT: &str = "com.example.notes:/oauth/callback";
const AFTER_LOGOUT: &str = "http://127.0.0.1:9/signed-out";

/// A browser: keeps cookies, doesn't follow redirects (the test looks at
/// each one).
pub(crate) struct Browser {
    http: reqwest::Client,
    jar: std::sync::Arc<reqwest::cookie::Jar>,
}

/// Where a browser ended up after a request.
#[derive(Debug)]
pub(crate) enum Step {
    /// The login page, with the hidden fields of its form.
    Login(Form, String),
    /// The consent page.
    Consent(Form, String),
    /// A redirect away from Tessera.
    Redirect(url::Url),
    /// Anything else: status and body.
    Page(u16, String),
}

#[derive(Debug, Clone)]
pub(crate) struct Form {
    request_id: String,
    csrf_token: String,
}

impl Browser {
    pub(crate) fn new() -> Browser {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        Browser {
            http: reqwest::Client::builder()
                .cookie_provider(jar.clone())
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar,
        }
    }

    async fn step(response: reqwest::Response) -> Step {
        let status = response.status().as_u16();
        if status == 303 || status == 302 {
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            return Step::Redirect(url::Url::parse(&location).unwrap());
        }
        let body = response.text().await.unwrap();
        let form = || Form {
            request_id: hidden_field(&body, "request_id").expect("request_id in the form"),
            csrf_token: hidden_field(&body, "csrf_token").expect("csrf_token in the form"),
        };
        if status == 200 && body.contains("id=\"sign-in\"") {
            Step::Login(form(), body)
        } else if status == 200 && body.contains("id=\"allow\"") {
            Step::Consent(form(), body)
        } else {
            Step::Page(status, body)
        }
    }

    pub(crate) async fn open(&self, url: &str) -> Step {
        Self::step(self.http.get(url).send().await.unwrap()).await
    }

    async fn submit(&self, app: &TestApp, fields: &[(&str, &str)]) -> Step {
        let response = self
            .http
            .post(app.url("/oauth2/authorize"))
            .form(fields)
            .send()
            .await
            .unwrap();
        Self::step(response).await
    }

    async fn submit_to(&self, app: &TestApp, path: &str, fields: &[(&str, &str)]) -> Step {
        let response = self
            .http
            .post(app.url(path))
            .form(fields)
            .send()
            .await
            .unwrap();
        Self::step(response).await
    }

    pub(crate) async fn sign_in(
        &self,
        app: &TestApp,
        form: &Form,
        email: &str,
        password: &str,
    ) -> Step {
        self.submit(
            app,
            &[
                ("request_id", &form.request_id),
                ("csrf_token", &form.csrf_token),
                ("action", "login"),
                ("email", email),
                ("password", password),
            ],
        )
        .await
    }

    pub(crate) async fn consent(&self, app: &TestApp, form: &Form, decision: &str) -> Step {
        self.submit(
            app,
            &[
                ("request_id", &form.request_id),
                ("csrf_token", &form.csrf_token),
                ("action", "consent"),
                ("decision", decision),
            ],
        )
        .await
    }
}

/// The value of a cookie the browser holds for the app.
fn browser_cookie(browser: &Browser, app: &TestApp, name: &str) -> String {
    use reqwest::cookie::CookieStore;
    let url = app.url("/").parse().unwrap();
    let header = browser.jar.cookies(&url).expect("cookies");
    header
        .to_str()
        .unwrap()
        .split("; ")
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

pub(crate) fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub(crate) struct Registered {
    pub(crate) id: String,
    pub(crate) secret: Option<String>,
}

pub(crate) async fn register_client(app: &TestApp, admin: &str, registration: Value) -> Registered {
    let response = app
        .client
        .post(app.url("/v1/admin/clients"))
        .bearer_auth(admin)
        .json(&registration)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{registration}");
    let body: Value = response.json().await.unwrap();
    Registered {
        id: body["client_id"].as_str().unwrap().to_owned(),
        secret: body["client_secret"].as_str().map(str::to_owned),
    }
}

/// A user, a confidential third-party web app (consent needed) and a public
/// first-party native app (no consent page).
struct Fixture {
    email: String,
    web: Registered,
    native: Registered,
}

async fn fixture(app: &TestApp) -> Fixture {
    let admin = app.admin_token(&unique_email()).await;
    let web = register_client(
        app,
        &admin,
        json!({
            "name": "Photo <Prints> & Co",
            "grant_types": ["authorization_code", "refresh_token"],
            "scopes": ["openid", "email", "profile"],
            "redirect_uris": [REDIRECT],
            "post_logout_redirect_uris": [AFTER_LOGOUT],
        }),
    )
    .await;
    let native = register_client(
        app,
        &admin,
        json!({
            "name": "Notes",
            "grant_types": ["authorization_code", "refresh_token"],
            "scopes": ["openid", "email", "profile"],
            "redirect_uris": [OTHER_REDIRECT],
            "public": true,
            "first_party": true,
        }),
    )
    .await;
    let email = unique_email();
    let response = app
        .post_json(
            "/v1/auth/register",
            &json!({"email": email, "password": PASSWORD, "name": "Ada Lovelace"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    Fixture { email, web, native }
}

/// The relying party: the library's client, configured by discovery.
async fn relying_party(
    app: &TestApp,
    client: &Registered,
    redirect: &str,
) -> (CoreClientWithEndpoints, ProviderMetadataWithLogout) {
    let metadata = ProviderMetadataWithLogout::discover_async(
        IssuerUrl::new(app.address.clone()).unwrap(),
        &http(),
    )
    .await
    .expect("discovery");
    let rp = CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(client.id.clone()),
        client.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(redirect.to_owned()).unwrap());
    (rp, metadata)
}

type CoreClientWithEndpoints = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The library redeems a code with its PKCE verifier.
async fn redeem(
    rp: &CoreClientWithEndpoints,
    code: String,
    verifier: PkceCodeVerifier,
) -> openidconnect::core::CoreTokenResponse {
    rp.exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http())
        .await
        .expect("code exchange")
}

/// An authorization URL from the library, with PKCE and a nonce.
struct Authorization {
    url: String,
    state: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

fn authorization(rp: &CoreClientWithEndpoints, extra: &[(&str, &str)]) -> Authorization {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge);
    for (k, v) in extra {
        request = request.add_extra_param(*k, *v);
    }
    let (url, state, nonce) = request.url();
    Authorization {
        url: url.to_string(),
        state,
        nonce,
        verifier,
    }
}

/// Asserts the browser was sent back to `redirect` with a code, the state
/// and our issuer; returns the code.
pub(crate) fn code_from(step: Step, redirect: &str, state: &CsrfToken, app: &TestApp) -> String {
    let Step::Redirect(url) = step else {
        panic!("expected a redirect back to the client, got {step:?}");
    };
    assert!(url.as_str().starts_with(redirect), "{url}");
    assert_eq!(
        query(&url, "state").as_deref(),
        Some(state.secret().as_str())
    );
    assert_eq!(
        query(&url, "iss").as_deref(),
        Some(app.settings.issuer.as_str())
    );
    assert_eq!(query(&url, "error"), None, "{url}");
    query(&url, "code").expect("a code")
}

/// Signs the browser in through the web app and returns the code.
async fn sign_in_to_web(
    app: &TestApp,
    f: &Fixture,
    browser: &Browser,
    auth: &Authorization,
) -> String {
    let Step::Login(form, _) = browser.open(&auth.url).await else {
        panic!("expected the login page")
    };
    let Step::Consent(form, _) = browser.sign_in(app, &form, &f.email, PASSWORD).await else {
        panic!("expected the consent page")
    };
    code_from(
        browser.consent(app, &form, "allow").await,
        REDIRECT,
        &auth.state,
        app,
    )
}

both_backends! {
    async fn discovery_describes_the_code_flow(app: TestApp) {
        let metadata: Value = app.get("/.well-known/openid-configuration").await.json().await.unwrap();
        let issuer = &app.settings.issuer;
        assert_eq!(metadata["authorization_endpoint"], format!("{issuer}/oauth2/authorize"));
        assert_eq!(metadata["userinfo_endpoint"], format!("{issuer}/oauth2/userinfo"));
        assert_eq!(metadata["end_session_endpoint"], format!("{issuer}/oauth2/logout"));
        assert_eq!(metadata["response_types_supported"], json!(["code"]));
        assert_eq!(metadata["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(metadata["authorization_response_iss_parameter_supported"], true);
        assert_eq!(metadata["request_uri_parameter_supported"], false);
        for scope in ["openid", "email", "profile"] {
            assert!(metadata["scopes_supported"].as_array().unwrap().contains(&json!(scope)));
        }
        assert!(metadata["grant_types_supported"].as_array().unwrap().contains(&json!("authorization_code")));
    }

    async fn code_flow_with_an_independent_relying_party(app: TestApp) {
        let f = fixture(&app).await;
        let (rp, _) = relying_party(&app, &f.web, REDIRECT).await;
        let auth = authorization(&rp, &[]);
        let browser = Browser::new();

        // The login page: names the client (escaped), can't be framed,
        // carries a strict CSP.
        let response = browser.http.get(&auth.url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-frame-options"], "DENY");
        let csp = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{csp}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let Step::Login(form, html) = Browser::step(response).await else { panic!("login page") };
        assert!(html.contains("Photo &lt;Prints&gt; &amp; Co"), "{html}");
        assert!(html.contains("<label for=\"email\">") && html.contains("<label for=\"password\">"));

        // A wrong password shows the page again with the error in it.
        let Step::Login(form, html) = browser.sign_in(&app, &form, &f.email, "not the password").await else {
            panic!("the login page again")
        };
        assert!(html.contains("id=\"error\""), "{html}");

        let Step::Consent(form, html) = browser.sign_in(&app, &form, &f.email, PASSWORD).await else {
            panic!("the consent page")
        };
        assert!(html.contains(&f.email) && html.contains("<code>email</code>"), "{html}");
        let code = code_from(browser.consent(&app, &form, "allow").await, REDIRECT, &auth.state, &app);

        // The library redeems the code and validates the ID token: signature
        // through the JWKS, issuer, audience, expiry, nonce; then at_hash.
        let tokens = redeem(&rp, code, auth.verifier).await;
        let id_token = tokens.id_token().expect("an id_token");
        let verifier = rp.id_token_verifier();
        let claims: &CoreIdTokenClaims = id_token.claims(&verifier, &auth.nonce).expect("a valid id_token");
        let expected = claims.access_token_hash().expect("at_hash");
        let actual = AccessTokenHash::from_token(
            tokens.access_token(),
            id_token.signing_alg().unwrap(),
            id_token.signing_key(&verifier).unwrap(),
        )
        .unwrap();
        assert_eq!(&actual, expected);
        assert_eq!(claims.email().map(|e| e.as_str()), Some(f.email.as_str()));
        assert_eq!(claims.email_verified(), Some(false));
        assert!(claims.auth_time().is_some());
        assert_eq!(claims.audiences().len(), 1);
        assert_eq!(claims.audiences()[0].as_str(), f.web.id);
        let raw: Value = crate::forgery::segment(&id_token.to_string(), 1);
        assert!(raw["sid"].as_str().is_some_and(|s| !s.is_empty()), "{raw}");
        assert_eq!(raw["name"], "Ada Lovelace");

        // The access token is ours and for the web app.
        let access: Value = crate::forgery::segment(tokens.access_token().secret(), 1);
        assert_eq!(access["client_id"], f.web.id.as_str());
        assert_eq!(access["sub"], claims.subject().as_str());

        // userinfo through the library.
        let info: CoreUserInfoClaims = rp
            .user_info(tokens.access_token().clone(), Some(claims.subject().clone()))
            .unwrap()
            .request_async(&http())
            .await
            .expect("userinfo");
        assert_eq!(info.email().map(|e| e.as_str()), Some(f.email.as_str()));
        assert_eq!(
            info.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
            Some("Ada Lovelace")
        );

        // And a refresh, which rotates the refresh token.
        let refresh = tokens.refresh_token().expect("a refresh token");
        let refreshed = rp
            .exchange_refresh_token(refresh)
            .unwrap()
            .request_async(&http())
            .await
            .expect("refresh");
        assert_ne!(refreshed.refresh_token().unwrap().secret(), refresh.secret());
        let again: Value = crate::forgery::segment(refreshed.access_token().secret(), 1);
        assert_eq!(again["sid"], access["sid"]);
    }

    async fn a_second_application_signs_in_without_the_login_page(app: TestApp) {
        let f = fixture(&app).await;
        let browser = Browser::new();
        let (web, _) = relying_party(&app, &f.web, REDIRECT).await;
        sign_in_to_web(&app, &f, &browser, &authorization(&web, &[])).await;

        // The native app (first-party, public): straight back with a code.
        let (native, _) = relying_party(&app, &f.native, OTHER_REDIRECT).await;
        let auth = authorization(&native, &[]);
        let code = code_from(browser.open(&auth.url).await, OTHER_REDIRECT, &auth.state, &app);
        let tokens = redeem(&native, code, auth.verifier).await;
        let id_token = tokens.id_token().unwrap();
        let claims = id_token.claims(&native.id_token_verifier(), &auth.nonce).unwrap();
        assert_eq!(claims.email().map(|e| e.as_str()), Some(f.email.as_str()));

        // prompt=none works with the session; prompt=login and max_age=0
        // ask for the password again.
        let auth = authorization(&native, &[("prompt", "none")]);
        code_from(browser.open(&auth.url).await, OTHER_REDIRECT, &auth.state, &app);
        for extra in [("prompt", "login"), ("max_age", "0")] {
            let auth = authorization(&native, &[extra]);
            assert!(matches!(browser.open(&auth.url).await, Step::Login(..)), "{extra:?}");
        }
        // A generous max_age is satisfied by the session.
        let auth = authorization(&native, &[("max_age", "3600")]);
        code_from(browser.open(&auth.url).await, OTHER_REDIRECT, &auth.state, &app);

        // Another browser has no session: prompt=none is login_required,
        // sent back to the client with the state.
        let stranger = Browser::new();
        let auth = authorization(&native, &[("prompt", "none")]);
        let Step::Redirect(url) = stranger.open(&auth.url).await else { panic!("a redirect") };
        assert_eq!(query(&url, "error").as_deref(), Some("login_required"));
        assert_eq!(query(&url, "state").as_deref(), Some(auth.state.secret().as_str()));
        assert_eq!(query(&url, "code"), None);
    }

    async fn consent_is_remembered_and_can_be_declined(app: TestApp) {
        let f = fixture(&app).await;
        let (web, _) = relying_party(&app, &f.web, REDIRECT).await;

        // Declining sends access_denied back and remembers nothing.
        let browser = Browser::new();
        let auth = authorization(&web, &[]);
        let Step::Login(form, _) = browser.open(&auth.url).await else { panic!("login") };
        let Step::Consent(form, _) = browser.sign_in(&app, &form, &f.email, PASSWORD).await else {
            panic!("consent")
        };
        let Step::Redirect(url) = browser.consent(&app, &form, "deny").await else { panic!("redirect") };
        assert_eq!(query(&url, "error").as_deref(), Some("access_denied"));
        assert_eq!(query(&url, "state").as_deref(), Some(auth.state.secret().as_str()));
        // The form can't be replayed once the request is over.
        assert!(matches!(browser.consent(&app, &form, "allow").await, Step::Page(400, _)));

        // Signed in, not consented: prompt=none is consent_required.
        let auth = authorization(&web, &[("prompt", "none")]);
        let Step::Redirect(url) = browser.open(&auth.url).await else { panic!("redirect") };
        assert_eq!(query(&url, "error").as_deref(), Some("consent_required"));

        // Consenting once is remembered for the same scopes...
        let auth = authorization(&web, &[]);
        let Step::Consent(form, _) = browser.open(&auth.url).await else { panic!("consent") };
        code_from(browser.consent(&app, &form, "allow").await, REDIRECT, &auth.state, &app);
        let auth = authorization(&web, &[]);
        code_from(browser.open(&auth.url).await, REDIRECT, &auth.state, &app);
        // ...unless prompt=consent asks again.
        let auth = authorization(&web, &[("prompt", "consent")]);
        assert!(matches!(browser.open(&auth.url).await, Step::Consent(..)));
    }

    async fn rp_initiated_logout_ends_the_sso_session_and_its_tokens(app: TestApp) {
        let f = fixture(&app).await;
        let browser = Browser::new();
        let (web, metadata) = relying_party(&app, &f.web, REDIRECT).await;
        let auth = authorization(&web, &[]);
        let code = sign_in_to_web(&app, &f, &browser, &auth).await;
        let tokens = redeem(&web, code, auth.verifier).await;
        let id_token = tokens.id_token().unwrap().clone();

        // An unregistered post-logout URI is refused with a page.
        let end_session = metadata.additional_metadata().end_session_endpoint.clone().unwrap();
        let bad = LogoutRequest::from(end_session.clone())
            .set_id_token_hint(&id_token)
            .set_post_logout_redirect_uri(PostLogoutRedirectUrl::new("https://evil.example/".into()).unwrap())
            .http_get_url();
        assert!(matches!(browser.open(bad.as_str()).await, Step::Page(400, _)));

        let state = CsrfToken::new_random();
        let logout = LogoutRequest::from(end_session)
            .set_id_token_hint(&id_token)
            .set_post_logout_redirect_uri(PostLogoutRedirectUrl::new(AFTER_LOGOUT.into()).unwrap())
            .set_state(state.clone())
            .http_get_url();
        let Step::Redirect(url) = browser.open(logout.as_str()).await else { panic!("redirect") };
        assert!(url.as_str().starts_with(AFTER_LOGOUT), "{url}");
        assert_eq!(query(&url, "state").as_deref(), Some(state.secret().as_str()));

        // The token session is over: userinfo refuses the access token and
        // the refresh token is dead.
        let response = app.get_with_token("/oauth2/userinfo", tokens.access_token().secret()).await;
        assert_eq!(response.status(), 401);
        let response = app
            .post_form(
                "/oauth2/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", tokens.refresh_token().unwrap().secret()),
                    ("client_id", &f.web.id),
                    ("client_secret", f.web.secret.as_deref().unwrap()),
                ],
            )
            .await;
        assert_oauth_error(response, 400, "invalid_grant").await;
        // And the browser is signed out.
        let auth = authorization(&web, &[("prompt", "none")]);
        let Step::Redirect(url) = browser.open(&auth.url).await else { panic!("redirect") };
        assert_eq!(query(&url, "error").as_deref(), Some("login_required"));
    }

    async fn logout_without_a_hint_asks_first(app: TestApp) {
        let f = fixture(&app).await;
        let browser = Browser::new();
        let (web, _) = relying_party(&app, &f.web, REDIRECT).await;
        sign_in_to_web(&app, &f, &browser, &authorization(&web, &[])).await;

        // A bare GET (say, an image on another site) only asks.
        let Step::Page(200, html) = browser.open(&app.url("/oauth2/logout")).await else {
            panic!("a confirmation page")
        };
        assert!(html.contains("id=\"sign-out\""), "{html}");
        let auth = authorization(&web, &[("prompt", "none")]);
        code_from(browser.open(&auth.url).await, REDIRECT, &auth.state, &app);

        // A forged confirmation (another site's form, without the page's
        // token) changes nothing.
        for forged in ["yes", "", &"A".repeat(43)] {
            let Step::Page(200, again) = browser.submit_to(&app, "/oauth2/logout", &[("confirm", forged)]).await else {
                panic!("the confirmation page again")
            };
            assert!(again.contains("id=\"sign-out\""));
        }
        let auth = authorization(&web, &[("prompt", "none")]);
        code_from(browser.open(&auth.url).await, REDIRECT, &auth.state, &app);

        // Confirming from the page signs out.
        let token = hidden_field(&html, "confirm").expect("the confirmation token");
        let Step::Page(200, done) = browser.submit_to(&app, "/oauth2/logout", &[("confirm", &token)]).await else {
            panic!("the signed-out page")
        };
        assert!(done.contains("signed out"), "{done}");
        let auth = authorization(&web, &[("prompt", "none")]);
        let Step::Redirect(url) = browser.open(&auth.url).await else { panic!("redirect") };
        assert_eq!(query(&url, "error").as_deref(), Some("login_required"));
    }

    async fn an_id_token_hint_alone_signs_nobody_out(app: TestApp) {
        let f = fixture(&app).await;
        let victim = Browser::new();
        let (web, _) = relying_party(&app, &f.web, REDIRECT).await;
        let auth = authorization(&web, &[]);
        let code = sign_in_to_web(&app, &f, &victim, &auth).await;
        let tokens = redeem(&web, code, auth.verifier).await;
        let hint = tokens.id_token().unwrap().to_string();
        // Someone else holding the ID token (another browser, no cookie).
        let attacker = Browser::new();
        let logout = format!("/oauth2/logout?id_token_hint={hint}");
        assert!(matches!(attacker.open(&app.url(&logout)).await, Step::Page(200, _)));
        let auth = authorization(&web, &[("prompt", "none")]);
        code_from(victim.open(&auth.url).await, REDIRECT, &auth.state, &app);
        assert_eq!(
            app.get_with_token("/oauth2/userinfo", tokens.access_token().secret()).await.status(),
            200
        );
        // An access token is no ID token hint.
        let response = victim
            .http
            .get(app.url(&format!("/oauth2/logout?id_token_hint={}", tokens.access_token().secret())))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
    }

    async fn signing_in_again_keeps_the_applications_attached(app: TestApp) {
        let f = fixture(&app).await;
        let browser = Browser::new();
        let (web, _) = relying_party(&app, &f.web, REDIRECT).await;
        let auth = authorization(&web, &[]);
        let code = sign_in_to_web(&app, &f, &browser, &auth).await;
        let first = redeem(&web, code, auth.verifier).await;
        let old_cookie = browser_cookie(&browser, &app, "tessera-sso");

        // prompt=login: the password again, then straight back (consent
        // is remembered). The cookie value changes; the session stays.
        let auth = authorization(&web, &[("prompt", "login")]);
        let Step::Login(form, _) = browser.open(&auth.url).await else { panic!("login") };
        // The login page can't be answered with a consent.
        let skipped = browser.consent(&app, &form, "allow").await;
        assert!(matches!(skipped, Step::Page(400, _)), "{skipped:?}");
        let code = code_from(browser.sign_in(&app, &form, &f.email, PASSWORD).await, REDIRECT, &auth.state, &app);
        let second = redeem(&web, code, auth.verifier).await;
        let new_cookie = browser_cookie(&browser, &app, "tessera-sso");
        assert_ne!(old_cookie, new_cookie, "a new cookie value after signing in");
        let sid = |t: &openidconnect::core::CoreTokenResponse| {
            crate::forgery::segment(&t.id_token().unwrap().to_string(), 1)["sid"].clone()
        };
        assert_eq!(sid(&first), sid(&second), "the same SSO session");
        // The old cookie value no longer names a session.
        let stale = Browser::new();
        let response = stale
            .http
            .get(&authorization(&web, &[("prompt", "none")]).url)
            .header("cookie", format!("tessera-sso={old_cookie}"))
            .send()
            .await
            .unwrap();
        let Step::Redirect(url) = Browser::step(response).await else { panic!("redirect") };
        assert_eq!(query(&url, "error").as_deref(), Some("login_required"));

        // Signing out ends the tokens of both sign-ins.
        let logout = format!("/oauth2/logout?id_token_hint={}", second.id_token().unwrap());
        assert!(matches!(browser.open(&app.url(&logout)).await, Step::Page(200, _)));
        for tokens in [&first, &second] {
            let status = app.get_with_token("/oauth2/userinfo", tokens.access_token().secret()).await.status();
            assert_eq!(status, 401);
        }
    }

    async fn code_redemption_refusals(app: TestApp) {
        let f = fixture(&app).await;
        let browser = Browser::new();
        let (web, _) = relying_party(&app, &f.web, REDIRECT).await;
        let (native, _) = relying_party(&app, &f.native, OTHER_REDIRECT).await;
        sign_in_to_web(&app, &f, &browser, &authorization(&web, &[])).await;
        let web_secret = f.web.secret.clone().unwrap();
        let redeem = |code: String, fields: Vec<(&'static str, String)>| {
            let mut form = vec![("grant_type", "authorization_code".to_owned()), ("code", code)];
            form.extend(fields);
            let http = app.client.clone();
            let url = app.url("/oauth2/token");
            async move { http.post(url).form(&form).send().await.unwrap() }
        };
        let web_auth = |verifier: &str| {
            vec![
                ("client_id", f.web.id.clone()),
                ("client_secret", web_secret.clone()),
                ("redirect_uri", REDIRECT.to_owned()),
                ("code_verifier", verifier.to_owned()),
            ]
        };
        let fresh_code = || async {
            let auth = authorization(&web, &[]);
            let code = code_from(browser.open(&auth.url).await, REDIRECT, &auth.state, &app);
            (code, auth.verifier.secret().clone())
        };

        // A wrong verifier; the code survives the refusal.
        let (code, verifier) = fresh_code().await;
        let wrong = "x".repeat(43);
        assert_oauth_error(redeem(code.clone(), web_auth(&wrong)).await, 400, "invalid_grant").await;
        // A mismatched redirect_uri.
        let mut fields = web_auth(&verifier);
        fields[2].1 = "http://127.0.0.1:9/other".into();
        assert_oauth_error(redeem(code.clone(), fields).await, 400, "invalid_grant").await;
        // Another client's credentials.
        let fields = vec![
            ("client_id", f.native.id.clone()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("code_verifier", verifier.clone()),
        ];
        assert_oauth_error(redeem(code.clone(), fields).await, 400, "invalid_grant").await;
        // No client authentication for a confidential client.
        let fields = vec![("client_id", f.web.id.clone()), ("redirect_uri", REDIRECT.to_owned()), ("code_verifier", verifier.clone())];
        assert_oauth_error(redeem(code.clone(), fields).await, 401, "invalid_client").await;
        // Now right: it works once...
        let response = redeem(code.clone(), web_auth(&verifier)).await;
        assert_eq!(response.status(), 200);
        let tokens: Value = response.json().await.unwrap();
        let access = tokens["access_token"].as_str().unwrap();
        assert_eq!(app.get_with_token("/oauth2/userinfo", access).await.status(), 200);
        // ...and a second use revokes what the first one got.
        assert_oauth_error(redeem(code, web_auth(&verifier)).await, 400, "invalid_grant").await;
        assert_eq!(app.get_with_token("/oauth2/userinfo", access).await.status(), 401);

        // A public client must send its verifier.
        let auth = authorization(&native, &[]);
        let code = code_from(browser.open(&auth.url).await, OTHER_REDIRECT, &auth.state, &app);
        let fields = vec![("client_id", f.native.id.clone()), ("redirect_uri", OTHER_REDIRECT.to_owned())];
        assert_oauth_error(redeem(code, fields).await, 400, "invalid_grant").await;

        // An expired code.
        let (code, verifier) = fresh_code().await;
        expire_codes(&app).await;
        assert_oauth_error(redeem(code, web_auth(&verifier)).await, 400, "invalid_grant").await;

        // Garbage.
        assert_oauth_error(redeem("nope".into(), web_auth(&verifier)).await, 400, "invalid_grant").await;
    }

    async fn untrusted_requests_get_an_error_page_never_a_redirect(app: TestApp) {
        let f = fixture(&app).await;
        let browser = Browser::new();
        let base = format!(
            "/oauth2/authorize?response_type=code&scope=openid&state=s&code_challenge_method=S256&code_challenge={}",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let encoded = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        for (case, url) in [
            ("no client", format!("{base}&redirect_uri={}", encoded(REDIRECT))),
            ("unknown client", format!("{base}&client_id=nobody&redirect_uri={}", encoded(REDIRECT))),
            ("no redirect_uri", format!("{base}&client_id={}", f.web.id)),
            ("unregistered redirect_uri", format!("{base}&client_id={}&redirect_uri={}", f.web.id, encoded("https://evil.example/cb"))),
            ("redirect_uri prefix", format!("{base}&client_id={}&redirect_uri={}", f.web.id, encoded(&format!("{REDIRECT}/more")))),
            ("repeated client_id", format!("{base}&client_id={0}&client_id={0}&redirect_uri={1}", f.web.id, encoded(REDIRECT))),
            ("huge client_id", format!("{base}&client_id={}&redirect_uri={}", "a".repeat(5000), encoded(REDIRECT))),
        ] {
            match browser.open(&app.url(&url)).await {
                Step::Page(400, html) => assert!(html.contains("id=\"error\""), "{case}: {html}"),
                other => panic!("{case}: {other:?}"),
            }
        }
        // Bytes that aren't UTF-8 or a form body that isn't one: still a page.
        let response = browser.http.post(app.url("/oauth2/authorize")).body("x").send().await.unwrap();
        assert_eq!(response.status(), 415);
        let response = browser.http.get(app.url("/oauth2/authorize?client_id=%FF%FE")).send().await.unwrap();
        assert_eq!(response.status(), 400);
    }

    async fn errors_after_validation_go_back_to_the_client(app: TestApp) {
        let f = fixture(&app).await;
        let browser = Browser::new();
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        let encoded = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let start = |client: &str, redirect: &str| {
            format!("/oauth2/authorize?client_id={client}&redirect_uri={}&state=st%20ate", encoded(redirect))
        };
        let web = start(&f.web.id, REDIRECT);
        let native = start(&f.native.id, OTHER_REDIRECT);
        let pkce = format!("code_challenge={challenge}&code_challenge_method=S256");
        for (case, url, error) in [
            ("token response type", format!("{web}&response_type=token&scope=openid"), "unsupported_response_type"),
            ("no response type", format!("{web}&scope=openid"), "invalid_request"),
            ("unknown scope", format!("{web}&response_type=code&scope=openid%20admin"), "invalid_scope"),
            ("plain PKCE", format!("{web}&response_type=code&scope=openid&code_challenge={challenge}&code_challenge_method=plain"), "invalid_request"),
            ("PKCE without method", format!("{web}&response_type=code&scope=openid&code_challenge={challenge}"), "invalid_request"),
            ("public client without PKCE", format!("{native}&response_type=code&scope=openid"), "invalid_request"),
            ("confidential client without PKCE or nonce", format!("{web}&response_type=code&scope=openid"), "invalid_request"),
            ("bad challenge", format!("{native}&response_type=code&scope=openid&code_challenge=short&code_challenge_method=S256"), "invalid_request"),
            ("request object", format!("{web}&response_type=code&scope=openid&{pkce}&request=eyJ"), "request_not_supported"),
            ("prompt none+login", format!("{web}&response_type=code&scope=openid&{pkce}&prompt=none%20login"), "invalid_request"),
            ("bad max_age", format!("{web}&response_type=code&scope=openid&{pkce}&max_age=-1"), "invalid_request"),
            ("fragment mode", format!("{web}&response_type=code&scope=openid&{pkce}&response_mode=fragment"), "invalid_request"),
            ("huge nonce", format!("{web}&response_type=code&scope=openid&{pkce}&nonce={}", "n".repeat(3000)), "invalid_request"),
        ] {
            let Step::Redirect(url) = browser.open(&app.url(&url)).await else { panic!("{case}: a redirect") };
            let expected = if url.scheme() == "http" { REDIRECT } else { OTHER_REDIRECT };
            assert!(url.as_str().starts_with(expected), "{case}: {url}");
            assert_eq!(query(&url, "error").as_deref(), Some(error), "{case}: {url}");
            assert_eq!(query(&url, "state").as_deref(), Some("st ate"), "{case}");
            assert_eq!(query(&url, "iss").as_deref(), Some(app.settings.issuer.as_str()), "{case}");
            assert!(query(&url, "error_description").is_some(), "{case}");
        }
        // An oversized state isn't echoed back.
        let url = format!("{}&response_type=code&scope=openid&{pkce}&state={}", start(&f.web.id, REDIRECT).replace("&state=st%20ate", ""), "s".repeat(3000));
        let Step::Redirect(url) = browser.open(&app.url(&url)).await else { panic!("a redirect") };
        assert_eq!(query(&url, "error").as_deref(), Some("invalid_request"));
        assert_eq!(query(&url, "state"), None);
    }

    async fn the_login_form_needs_its_browser_and_csrf_token(app: TestApp) {
        let f = fixture(&app).await;
        let browser = Browser::new();
        let (web, _) = relying_party(&app, &f.web, REDIRECT).await;
        let auth = authorization(&web, &[]);
        let Step::Login(form, _) = browser.open(&auth.url).await else { panic!("login") };

        // Missing or wrong CSRF token.
        for csrf in ["", "wrong", &"A".repeat(43)] {
            let forged = Form { csrf_token: csrf.to_owned(), ..form.clone() };
            match browser.sign_in(&app, &forged, &f.email, PASSWORD).await {
                Step::Page(400, _) => {}
                other => panic!("csrf {csrf:?}: {other:?}"),
            }
        }
        // The right fields from another browser (an attacker's page posting
        // a form it fetched itself) don't work either.
        let attacker = Browser::new();
        match attacker.sign_in(&app, &form, &f.email, PASSWORD).await {
            Step::Page(400, _) => {}
            other => panic!("another browser: {other:?}"),
        }
        // The genuine form still works.
        assert!(matches!(browser.sign_in(&app, &form, &f.email, PASSWORD).await, Step::Consent(..)));
    }

    async fn userinfo_needs_the_openid_scope(app: TestApp) {
        // A first-party login token has scope "profile email", no openid.
        let token = app.access_token(&unique_email()).await;
        let response = app.get_with_token("/oauth2/userinfo", &token).await;
        assert_eq!(response.status(), 403);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.contains("insufficient_scope"), "{challenge}");
        let response = app.get("/oauth2/userinfo").await;
        assert_eq!(response.status(), 401);
    }
}

/// Makes every code already expired, as if 60 seconds had passed.
async fn expire_codes(app: &TestApp) {
    use diesel::prelude::*;
    use tessera::db::schema::authorization_codes;
    let db = app.db();
    db.run(|conn| {
        diesel::update(authorization_codes::table)
            .set(
                authorization_codes::expires_at
                    .eq(chrono::Utc::now().naive_utc() - chrono::Duration::seconds(1)),
            )
            .execute(conn)?;
        Ok(())
    })
    .await
    .unwrap();
}

/// The `Set-Cookie` header for `name`, which must be there.
fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", response.headers()))
}

/// Signs in by hand (no cookie jar) and checks the cookies' attributes and
/// that the database keeps only a hash of the SSO cookie.
async fn check_cookies(app: &TestApp, prefix: &str, secure: bool) {
    let f = fixture(app).await;
    let encoded = url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>();
    let url = format!(
        "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={encoded}&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        f.web.id
    );
    let response = app.client.get(app.url(&url)).send().await.unwrap();
    let browser_cookie = set_cookie(&response, &format!("{prefix}tessera-browser"));
    let html = response.text().await.unwrap();
    let pair = browser_cookie.split(';').next().unwrap().to_owned();
    let response = app
        .client
        .post(app.url("/oauth2/authorize"))
        .header("cookie", &pair)
        .form(&[
            (
                "request_id",
                hidden_field(&html, "request_id").unwrap().as_str(),
            ),
            ("csrf_token", &hidden_field(&html, "csrf_token").unwrap()),
            ("action", "login"),
            ("email", &f.email),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the consent page");
    let sso_cookie = set_cookie(&response, &format!("{prefix}tessera-sso"));
    for cookie in [&browser_cookie, &sso_cookie] {
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Lax"), "{cookie}");
        assert!(cookie.contains("Path=/"), "{cookie}");
        assert_eq!(cookie.contains("Secure"), secure, "{cookie}");
        assert!(!cookie.contains("Domain"), "{cookie}");
    }
    // The database holds the SHA-256 of the cookie value, not the value.
    let value = sso_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let stored: Vec<String> = app
        .db()
        .run(|conn| {
            use diesel::prelude::*;
            use tessera::db::schema::browser_sessions;
            Ok(browser_sessions::table
                .select(browser_sessions::token_hash)
                .load(conn)?)
        })
        .await
        .unwrap();
    assert_eq!(stored, vec![tessera::secrets::stored_hash(&value)]);
}

both_backends! {
    async fn cookies_under_http(app: TestApp) {
        check_cookies(&app, "", false).await;
    }

    async fn cookies_under_https_are_secure_host_cookies(
        app: TestApp,
        settings = |s| s.issuer = "https://id.example".to_owned()
    ) {
        check_cookies(&app, "__Host-", true).await;
    }

    async fn a_password_change_signs_the_browser_out(app: TestApp) {
        let f = fixture(&app).await;
        let browser = Browser::new();
        let (web, _) = relying_party(&app, &f.web, REDIRECT).await;
        sign_in_to_web(&app, &f, &browser, &authorization(&web, &[])).await;
        let token = crate::helpers::Tokens::from_response(app.login(&f.email, PASSWORD).await).await;
        let response = app
            .client
            .put(app.url("/v1/me/password"))
            .bearer_auth(&token.access)
            .json(&json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        let auth = authorization(&web, &[("prompt", "none")]);
        let Step::Redirect(url) = browser.open(&auth.url).await else { panic!("redirect") };
        assert_eq!(query(&url, "error").as_deref(), Some("login_required"));
    }

    async fn disabling_an_account_signs_its_browser_out_for_good(app: TestApp) {
        let f = fixture(&app).await;
        let browser = Browser::new();
        let (web, _) = relying_party(&app, &f.web, REDIRECT).await;
        sign_in_to_web(&app, &f, &browser, &authorization(&web, &[])).await;
        let token = crate::helpers::Tokens::from_response(app.login(&f.email, PASSWORD).await).await;
        let id = crate::forgery::segment(&token.access, 1)["sub"].as_str().unwrap().to_owned();
        let admin = app.admin_token(&unique_email()).await;
        for disabled in [true, false] {
            let response = app
                .client
                .patch(app.url(&format!("/v1/admin/users/{id}")))
                .bearer_auth(&admin)
                .json(&json!({"disabled": disabled}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
        // Enabled again, the account signs in afresh: the browser's SSO
        // session ended with the disable and doesn't come back.
        let auth = authorization(&web, &[("prompt", "none")]);
        let Step::Redirect(url) = browser.open(&auth.url).await else { panic!("redirect") };
        assert_eq!(query(&url, "error").as_deref(), Some("login_required"));
    }

    async fn a_confidential_client_revokes_only_its_own_tokens(app: TestApp) {
        let f = fixture(&app).await;
        let admin = app.admin_token(&unique_email()).await;
        let other = register_client(
            &app,
            &admin,
            json!({"name": "other", "grant_types": ["client_credentials"], "audiences": ["x"]}),
        )
        .await;
        let browser = Browser::new();
        let (web, _) = relying_party(&app, &f.web, REDIRECT).await;
        let auth = authorization(&web, &[]);
        let code = sign_in_to_web(&app, &f, &browser, &auth).await;
        let tokens = redeem(&web, code, auth.verifier).await;
        let refresh = tokens.refresh_token().unwrap().secret().clone();
        let access = tokens.access_token().secret().clone();
        let revoke = |id: String, secret: String| {
            let form = vec![("token", refresh.clone()), ("client_id", id), ("client_secret", secret)];
            let http = app.client.clone();
            let url = app.url("/oauth2/revoke");
            async move { http.post(url).form(&form).send().await.unwrap() }
        };
        // Another client: 200 (RFC 7009), but nothing happens.
        assert_eq!(revoke(other.id, other.secret.unwrap()).await.status(), 200);
        assert_eq!(app.get_with_token("/oauth2/userinfo", &access).await.status(), 200);
        // Its own client: the session ends.
        assert_eq!(revoke(f.web.id.clone(), f.web.secret.clone().unwrap()).await.status(), 200);
        assert_eq!(app.get_with_token("/oauth2/userinfo", &access).await.status(), 401);
    }
}

both_backends! {
    async fn withdrawing_a_consent_ends_the_clients_sessions_and_asks_again(app: TestApp) {
        let f = fixture(&app).await;
        let (rp, _) = relying_party(&app, &f.web, REDIRECT).await;
        let auth = authorization(&rp, &[]);
        let browser = Browser::new();
        let code = sign_in_to_web(&app, &f, &browser, &auth).await;
        let tokens = redeem(&rp, code, auth.verifier).await;
        let refresh = tokens.refresh_token().expect("a refresh token").clone();
        // The user's own first-party session, beside the web app's.
        let own = app.tokens(&f.email).await;

        let list: Value = app.get_with_token("/v1/me/consents", &own.access).await.json().await.unwrap();
        let consents = list["consents"].as_array().unwrap();
        assert_eq!(consents.len(), 1, "{list}");
        assert_eq!(consents[0]["client_id"], f.web.id.as_str());
        assert_eq!(consents[0]["client_name"], "Photo <Prints> & Co");
        assert!(consents[0]["scopes"].as_array().unwrap().contains(&json!("email")), "{list}");

        // Someone else sees none of it and can't withdraw it.
        let other = app.access_token(&unique_email()).await;
        let theirs: Value = app.get_with_token("/v1/me/consents", &other).await.json().await.unwrap();
        assert_eq!(theirs["consents"], json!([]));
        let path = format!("/v1/me/consents/{}", f.web.id);
        let withdraw = |token: String| app.client.delete(app.url(&path)).bearer_auth(token).send();
        assert_eq!(withdraw(other.clone()).await.unwrap().status(), 404);
        let still = rp.exchange_refresh_token(&refresh).unwrap().request_async(&http()).await.expect("refresh");
        let refresh = still.refresh_token().expect("a rotated refresh token").clone();
        // A code issued just before the withdrawal, not yet redeemed.
        let pending = authorization(&rp, &[]);
        let unredeemed = code_from(browser.open(&pending.url).await, REDIRECT, &pending.state, &app);

        assert_eq!(withdraw(own.access.clone()).await.unwrap().status(), 204);
        let late = rp.exchange_code(AuthorizationCode::new(unredeemed)).unwrap()
            .set_pkce_verifier(pending.verifier).request_async(&http()).await;
        assert!(late.is_err(), "a code issued under the withdrawn consent still redeems");
        // The web app's session ended: its refresh token is dead.
        let refused = rp.exchange_refresh_token(&refresh).unwrap().request_async(&http()).await;
        assert!(refused.is_err(), "a withdrawn consent's refresh token still works");
        // The user's own session is not the web app's: it lives on.
        assert_eq!(app.refresh(&own.refresh).await.status(), 200);
        let list: Value = app.get_with_token("/v1/me/consents", &own.access).await.json().await.unwrap();
        assert_eq!(list["consents"], json!([]));
        assert_eq!(withdraw(own.access.clone()).await.unwrap().status(), 404);
        // The browser is still signed in, but the web app must ask again.
        let auth = authorization(&rp, &[]);
        assert!(matches!(browser.open(&auth.url).await, Step::Consent(..)), "consent is asked again");
    }

    async fn sign_in_refuses_an_unverified_address_or_an_owed_password(app: TestApp) {
        let mut app = app;
        let f = fixture(&app).await;
        let admin = app.admin_token(&unique_email()).await;
        // Unverified addresses refused from now on (the fixture's user
        // registered without SMTP: its address is unverified).
        app.settings.accounts.require_verified_email = true;
        app.restart().await;
        let (rp, _) = relying_party(&app, &f.web, REDIRECT).await;
        let browser = Browser::new();
        let auth = authorization(&rp, &[]);
        let Step::Login(form, _) = browser.open(&auth.url).await else { panic!("the login page") };
        let Step::Login(form, html) = browser.sign_in(&app, &form, &f.email, PASSWORD).await else {
            panic!("the login page again, saying why")
        };
        assert!(html.contains("Confirm your e-mail address first"), "{html}");
        let Step::Login(_, html) = browser.sign_in(&app, &form, &f.email, "not the password").await else {
            panic!("the login page again")
        };
        assert!(!html.contains("Confirm your e-mail address"), "a wrong password learns nothing: {html}");

        app.settings.accounts.require_verified_email = false;
        app.restart().await;
        let users: Value = app.get_with_token(&format!("/v1/admin/users?email={}", f.email), &admin).await.json().await.unwrap();
        let id = users["users"][0]["id"].as_str().unwrap().to_owned();
        let patch = app.client.patch(app.url(&format!("/v1/admin/users/{id}"))).bearer_auth(&admin)
            .json(&json!({ "must_change_password": true })).send().await.unwrap();
        assert_eq!(patch.status(), 200);

        let (rp, _) = relying_party(&app, &f.web, REDIRECT).await;
        let browser = Browser::new();
        let auth = authorization(&rp, &[]);
        let Step::Login(form, _) = browser.open(&auth.url).await else { panic!("the login page") };
        let Step::Login(form, html) = browser.sign_in(&app, &form, &f.email, PASSWORD).await else {
            panic!("the login page again, saying why")
        };
        assert!(html.contains("choose a new password") && html.contains("/account/password"), "{html}");
        let Step::Login(_, html) = browser.sign_in(&app, &form, &f.email, "not the password").await else {
            panic!("the login page again")
        };
        assert!(!html.contains("choose a new password"), "{html}");
    }
}

both_backends! {
    async fn a_code_issued_before_a_password_change_is_refused(app: TestApp) {
        let f = fixture(&app).await;
        let (rp, _) = relying_party(&app, &f.web, REDIRECT).await;
        let auth = authorization(&rp, &[]);
        let browser = Browser::new();
        let code = sign_in_to_web(&app, &f, &browser, &auth).await;
        // Before the code is redeemed, the password changes (a thief's
        // sign-in, the owner's reaction): the browser's sign-in ends, and
        // the code it issued with it.
        let own = app.tokens(&f.email).await;
        let change = app.client.put(app.url("/v1/me/password")).bearer_auth(&own.access)
            .json(&json!({ "current_password": PASSWORD, "new_password": "a brand new passphrase" }))
            .send().await.unwrap();
        assert_eq!(change.status(), 204);
        let refused = rp.exchange_code(AuthorizationCode::new(code)).unwrap()
            .set_pkce_verifier(auth.verifier).request_async(&http()).await;
        assert!(refused.is_err(), "the code outlived the password change");
        // A code from a fresh sign-in works.
        let auth = authorization(&rp, &[]);
        let Step::Login(form, _) = browser.open(&auth.url).await else { panic!("signed out: the login page") };
        let step = browser.sign_in(&app, &form, &f.email, "a brand new passphrase").await;
        let code = code_from(step, REDIRECT, &auth.state, &app);
        redeem(&rp, code, auth.verifier).await;
    }
}
