//! Harnesses for the cargo-fuzz targets in `fuzz/` and for their regression
//! tests (`tests/fuzz_regressions.rs`). Each takes arbitrary bytes and feeds
//! them to the code that parses that kind of input in the service: the
//! `Authorization: Bearer` header and token verification, the JSON bodies,
//! the form-encoded OAuth requests, and the key files. None panics by
//! itself: a panic is a bug in the code under test, and so is an answer of
//! 5xx to bad input (checked here with `assert!`).
//!
//! Each returns whether the service would have accepted the input (see each
//! function), so regression inputs can say what they expect.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpResponse, ResponseError, test::TestRequest, web};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::FutureExt;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};

use crate::accounts::administration::parse_roles;
use crate::accounts::{Email, NewAccount, NewPassword};
use crate::clients::{self, Client, ClientRegistration, NewClient};
use crate::configuration::Settings;
use crate::http::accounts::{ChangePasswordRequest, LoginRequest, LogoutRequest, RegisterRequest};
use crate::http::admin::{AuditQuery, PatchUser, UserQuery};
use crate::http::error::{ApiError, OAuthApiError, authorize_failure};
use crate::http::oauth::{Params, credentials};
use crate::http::pages::{self, LoginPage};
use crate::http::{JsonObject, authorize, bearer, json_body_error};
use crate::keys::files::{self, KeyFile};
use crate::keys::{KeyRing, SigningKey, system_clock};
use crate::oauth::authorization::{
    RequestParams, redirect_with, requested_client_id, validate_for, verifier_matches,
};
use crate::oauth::{OAuthError, client_credentials_target};
use crate::secrets::is_token_shaped;
use crate::sessions::RefreshToken;
use crate::tokens::{ACCESS_TOKEN_TYP, Grant, OwnAudiences, TokenIssuer, TokenVerifier};

/// What every harness shares, made once per process: the default settings,
/// a key ring over a 2048-bit key generated into a temporary folder (the
/// folder is removed once read), the verifiers over it, and two clients.
struct Fixture {
    settings: Settings,
    issuer: TokenIssuer,
    verifier: TokenVerifier,
    /// `tessera-verifier` as a sibling service holds it, over the same keys.
    sibling: tessera_verifier::Verifier,
    /// The active key, to sign claims the fuzzer wrote.
    signer: RsaKeyPair,
    kid: String,
    confidential: Client,
    public: Client,
    own: OwnAudiences,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let settings = Settings::load(None).expect("the built-in default settings load");
        let dir = scratch_dir();
        let created = files::create_key(&dir, 2048, chrono::Utc::now(), true)
            .expect("a key is created in a temporary folder");
        let keys = KeyRing::load(&dir, crate::startup::key_policy(&settings), system_clock())
            .expect("the key ring loads");
        let _ = std::fs::remove_dir_all(&dir);
        let kid = keys
            .view()
            .active()
            .expect("a key made with --now signs at once")
            .kid()
            .to_owned();
        let der = rsa::RsaPrivateKey::from_pkcs8_pem(&created.pem)
            .and_then(|k| k.to_pkcs8_der())
            .expect("the key just created parses");
        let signer = RsaKeyPair::from_pkcs8(der.as_bytes()).expect("aws-lc takes the key");
        let tokens = &settings.tokens;
        let keys = Arc::new(keys);
        let issuer = TokenIssuer::new(
            settings.issuer.clone(),
            tokens.access_ttl_seconds,
            keys.clone(),
        );
        let verifier = TokenVerifier::new(
            &settings.issuer,
            &tokens.audience,
            tokens.leeway_seconds,
            keys.clone(),
        );
        let mut sibling = tessera_verifier::Verifier::builder(settings.issuer.clone())
            .leeway(std::time::Duration::from_secs(tokens.leeway_seconds));
        for audience in &tokens.audience {
            sibling = sibling.audience(audience.clone());
        }
        let sibling = sibling.with_keys(keys.view().verification().clone());
        let client = |id: &str, public: bool, grant_types: &[&str]| Client {
            client_id: id.to_owned(),
            name: format!("Fuzz {id}"),
            public,
            first_party: false,
            grant_types: grant_types.iter().map(|g| (*g).to_owned()).collect(),
            scopes: ["openid", "profile", "email", "orders:read"]
                .map(str::to_owned)
                .to_vec(),
            audiences: ["orders-api", "billing"].map(str::to_owned).to_vec(),
            redirect_uris: [
                "https://app.example/cb",
                "http://127.0.0.1:8400/cb?x=1",
                "com.example.app:/callback",
            ]
            .map(str::to_owned)
            .to_vec(),
            post_logout_redirect_uris: vec!["https://app.example/signed-out".to_owned()],
            created_at: chrono::Utc::now().naive_utc(),
        };
        Fixture {
            own: OwnAudiences::new(&settings.issuer, &settings.tokens.audience),
            confidential: client(
                "fuzz-confidential",
                false,
                &[
                    clients::AUTHORIZATION_CODE,
                    clients::REFRESH_TOKEN,
                    clients::CLIENT_CREDENTIALS,
                ],
            ),
            public: client(
                "fuzz-public",
                true,
                &[clients::AUTHORIZATION_CODE, clients::REFRESH_TOKEN],
            ),
            settings,
            issuer,
            verifier,
            sibling,
            signer,
            kid,
        }
    })
}

/// Makes the shared fixture now (it generates an RSA key, which takes a
/// while), so the fuzzer doesn't count that time against the first input.
pub fn init() {
    fixture();
}

/// A new empty folder under the system's temporary folder.
fn scratch_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "tessera-fuzz-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("a temporary folder can be made");
    dir
}

/// A response to bad input must not be a server error.
fn assert_not_5xx(response: &HttpResponse, what: &str) {
    assert!(
        !response.status().is_server_error(),
        "{what}: bad input answered with {}",
        response.status()
    );
}

/// A fresh access token of the fixture's key, for Tessera itself: what
/// `bearer_token` must accept (as `Bearer <token>`).
pub fn sample_access_token() -> String {
    let f = fixture();
    f.issuer
        .issue_now(Grant {
            subject: "0197c0de-0000-7000-8000-000000000001".into(),
            client_id: f.settings.login.client_id.clone(),
            audience: f.settings.tokens.audience.clone(),
            scope: "openid profile".into(),
            roles: Some(vec!["editor".into()]),
            session_id: Some("fuzz-session".into()),
        })
        .expect("the fixture key signs")
        .token
}

/// `header.claims.signature` with the fixture's key, the claims as given.
fn sign_raw(typ: &str, claims: &[u8]) -> String {
    let f = fixture();
    let header = serde_json::json!({"alg": "RS256", "typ": typ, "kid": f.kid});
    let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut token);
    let mut signature = vec![0u8; f.signer.public_modulus_len()];
    f.signer
        .sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            token.as_bytes(),
            &mut signature,
        )
        .expect("RS256 signing of any message");
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    token
}

/// Every way the service reads a presented token: as an access token for
/// its own routes and for introspection, as `tessera-verifier` does, as an
/// `id_token_hint`, and as a refresh token. Whether it is accepted for
/// Tessera's own routes.
fn verify_everywhere(token: &str) -> bool {
    let f = fixture();
    let own = f.verifier.verify(token);
    let any_audience = f.verifier.verify_any_audience(token);
    let sibling = f.sibling.verify_cached(token);
    let _ = f.verifier.id_token_hint(token);
    let _ = RefreshToken::parse(token);
    // The same rules in the same crate: the three must agree.
    assert_eq!(
        own.is_ok(),
        sibling.is_ok(),
        "Tessera and tessera-verifier disagree"
    );
    if own.is_ok() {
        assert!(
            any_audience.is_ok(),
            "valid for Tessera but not for any audience"
        );
    }
    match own {
        Ok(_) => true,
        Err(e) => {
            let response = ApiError::from(e).error_response();
            assert_eq!(
                response.status(),
                actix_web::http::StatusCode::UNAUTHORIZED,
                "a bad token must be 401"
            );
            false
        }
    }
}

/// The bearer token target. Input starting with `{` is a claims set the
/// harness signs as is with its own key, so claim validation is reached
/// past the signature: with an `"auth_time"` (an ID token's) it is signed
/// as an ID token and read as an `id_token_hint`, else as an access token
/// and verified. Anything else is an `Authorization` header value, parsed
/// as the HTTP layer does and, if it carries a Bearer token, verified.
/// True when the token is accepted: as an access token for Tessera's own
/// routes, or (ID tokens) as an `id_token_hint`.
pub fn bearer_token(data: &[u8]) -> bool {
    if data.first() == Some(&b'{') {
        if data.windows(11).any(|w| w == b"\"auth_time\"") {
            let token = sign_raw("JWT", data);
            assert!(
                !verify_everywhere(&token),
                "an ID token is accepted as an access token"
            );
            return fixture().verifier.id_token_hint(&token).is_ok();
        }
        return verify_everywhere(&sign_raw(ACCESS_TOKEN_TYP, data));
    }
    // Bytes that can't be a header value never reach a handler.
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return false;
    };
    match bearer::bearer_token(Some(&value)) {
        Ok(token) => verify_everywhere(token),
        Err(e) => {
            assert_not_5xx(&e.error_response(), "Authorization header");
            false
        }
    }
}

/// `body` as a JSON request body of type `T`, extracted as the handlers get
/// it (actix's `Json` of a [`JsonObject`], with the service's
/// configuration); a refusal must not be a server error.
fn json_body<T: serde::de::DeserializeOwned + 'static>(body: &[u8], limit: usize) -> Option<T> {
    let (req, mut payload) = TestRequest::post()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .app_data(crate::http::json_config(limit))
        .set_payload(body.to_vec())
        .to_http_parts();
    match web::Json::<JsonObject<T>>::from_request(&req, &mut payload).now_or_never() {
        Some(Ok(json)) => Some(json.into_inner().0),
        Some(Err(e)) => {
            assert_not_5xx(&e.error_response(), "JSON body");
            None
        }
        None => panic!("reading an in-memory JSON body never waits"),
    }
}

/// A refused value in a request: a 4xx answer, never a 5xx.
fn refused(e: impl Into<ApiError>, what: &str) {
    assert_not_5xx(&e.into().error_response(), what);
}

/// The JSON bodies target: the input as each JSON body of `/v1` and what
/// the handler checks before the database. True when at least one body
/// type parses and passes its checks.
pub fn json_bodies(data: &[u8]) -> bool {
    let f = fixture();
    let limit = f.settings.server.json_body_limit_bytes;
    let mut accepted = false;
    let mut check = |result: Result<(), ApiError>, what: &str| match result {
        Ok(()) => accepted = true,
        Err(e) => refused(e, what),
    };

    if let Some(RegisterRequest {
        email,
        password,
        name,
    }) = json_body(data, limit)
    {
        let result = NewAccount::parse(&email, password, name, Vec::new());
        check(result.map(drop).map_err(Into::into), "register");
    }
    if let Some(LoginRequest { email, password: _ }) = json_body(data, limit) {
        // An address that can't be one is checked against no account.
        let _ = Email::parse(&email);
        check(Ok(()), "login");
    }
    // Logout: no body or `null`, or a body that must be right (as the
    // handler reads it).
    if !data.iter().all(u8::is_ascii_whitespace) && data.len() <= limit {
        match serde_json::from_slice::<Option<JsonObject<LogoutRequest>>>(data) {
            Ok(request) => {
                let _all = request.is_some_and(|r| r.0.all);
                check(Ok(()), "logout");
            }
            Err(e) => refused(json_body_error(&e), "logout"),
        }
    }
    if let Some(ChangePasswordRequest {
        current_password: _,
        new_password,
    }) = json_body(data, limit)
    {
        let email = Email::parse("ada@example.com").expect("a valid address");
        let result = NewPassword::parse(new_password, &email)
            .map(drop)
            .map_err(crate::accounts::AccountError::InvalidPassword);
        check(result.map_err(Into::into), "password change");
    }
    if let Some(PatchUser { roles, disabled: _ }) = json_body(data, limit) {
        let result = roles.map(parse_roles).transpose();
        check(result.map(drop).map_err(Into::into), "user change");
    }
    if let Some(registration) = json_body::<ClientRegistration>(data, limit) {
        match NewClient::parse(registration.clone(), &f.own) {
            Ok(_) => {
                registered_client_works(&registration);
                check(Ok(()), "client registration");
            }
            Err(e) => refused(e, "client registration"),
        }
    }
    accepted
}

/// A client registration was accepted: its redirect URIs must serve in
/// every page and redirect the authorization flow makes with them.
fn registered_client_works(registration: &ClientRegistration) {
    let f = fixture();
    let client = Client {
        client_id: "fuzz-registered".into(),
        name: registration.name.trim().to_owned(),
        public: registration.public,
        first_party: registration.first_party,
        grant_types: registration.grant_types.clone(),
        scopes: registration.scopes.clone(),
        audiences: registration.audiences.clone(),
        redirect_uris: registration.redirect_uris.clone(),
        post_logout_redirect_uris: registration.post_logout_redirect_uris.clone(),
        created_at: chrono::Utc::now().naive_utc(),
    };
    for uri in &client.redirect_uris {
        let target = pages::form_target(uri);
        let page = pages::login(LoginPage {
            client_name: &client.name,
            request_id: "request",
            csrf_token: "csrf",
            email: None,
            error: None,
            form_target: target.as_deref(),
        });
        assert_not_5xx(&page, "login page for a registered redirect URI");
        let params = [
            ("client_id", client.client_id.as_str()),
            ("redirect_uri", uri),
            ("response_type", "code"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
            ("state", "s t&u"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        match validate_for(&RequestParams(&params), &client, &f.own) {
            Ok(request) => {
                let location = redirect_with(
                    &request.redirect_uri,
                    &[("code", "c"), ("state", "s"), ("iss", &f.settings.issuer)],
                );
                let response = authorize::redirect(&location);
                assert_eq!(response.status().as_u16(), 303, "redirect to {uri:?}");
            }
            Err(e) => assert_not_5xx(
                &authorize_failure(e, &f.settings.issuer),
                "authorization request of a registered client",
            ),
        }
    }
    for uri in &client.post_logout_redirect_uris {
        let response = authorize::redirect(&redirect_with(uri, &[("state", "s")]));
        assert_eq!(response.status().as_u16(), 303, "redirect to {uri:?}");
        let target = pages::form_target(uri);
        let page = pages::logout_confirm(&[("state", "s".into())], target.as_deref());
        assert_not_5xx(&page, "sign-out page for a registered URI");
    }
}

/// The form-encoded OAuth target. An optional first line
/// `authorization: VALUE` is the request's Authorization header (client
/// authentication); the rest is the body, read as each endpoint reads it:
/// the token, revocation and introspection forms, an authorization request
/// (as `POST /oauth2/authorize` or its query), the sign-in page's forms,
/// RP-initiated logout, and the admin list queries. True when it is an
/// authorization request valid for one of the fixture's clients, or a
/// token request that passes every check made before the database.
pub fn oauth_forms(data: &[u8]) -> bool {
    let (authorization, body) = split_authorization(data);
    let token_request = token_endpoint(authorization.as_ref(), body);
    let authorization_request = authorization_endpoint(body);
    sign_in_forms(body);
    logout(body);
    let query = String::from_utf8_lossy(body);
    let _ = web::Query::<UserQuery>::from_query(&query);
    let _ = web::Query::<AuditQuery>::from_query(&query);
    token_request || authorization_request
}

fn split_authorization(data: &[u8]) -> (Option<HeaderValue>, &[u8]) {
    const PREFIX: &[u8] = b"authorization:";
    let is_header = data.len() >= PREFIX.len() && data[..PREFIX.len()].eq_ignore_ascii_case(PREFIX);
    if !is_header {
        return (None, data);
    }
    let (line, body) = match data.iter().position(|&b| b == b'\n') {
        Some(end) => (&data[PREFIX.len()..end], &data[end + 1..]),
        None => (&data[PREFIX.len()..], &[][..]),
    };
    let line = line.trim_ascii();
    // A value that can't be a header never reaches a handler.
    (HeaderValue::from_bytes(line).ok(), body)
}

/// `POST /oauth2/token`, `/revoke` and `/introspect` up to the database.
fn token_endpoint(authorization: Option<&HeaderValue>, body: &[u8]) -> bool {
    let f = fixture();
    let mut request = TestRequest::post()
        .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
        .app_data(crate::http::form_config(
            f.settings.server.json_body_limit_bytes,
        ))
        .set_payload(body.to_vec());
    if let Some(value) = authorization {
        request = request.insert_header((header::AUTHORIZATION, value.clone()));
    }
    let (req, mut payload) = request.to_http_parts();
    // As the handlers read it: control characters refused.
    let params = match Params::from_request(&req, &mut payload).now_or_never() {
        Some(Ok(params)) => params,
        Some(Err(e)) => {
            assert_not_5xx(&e.error_response(), "OAuth form");
            return false;
        }
        None => panic!("reading an in-memory form never waits"),
    };
    // Revocation and introspection: the token, as either kind.
    if let Ok(Some(token)) = params.one("token")
        && RefreshToken::parse(token).is_none()
    {
        let _ = f.verifier.verify_any_audience(token);
    }
    match token_checks(&req, &params) {
        Ok(()) => true,
        Err(e) => {
            let response = OAuthApiError::from(e).error_response();
            assert_not_5xx(&response, "token request");
            false
        }
    }
}

/// What the token endpoint checks before the database, grant by grant.
fn token_checks(req: &actix_web::HttpRequest, params: &Params) -> Result<(), OAuthError> {
    let f = fixture();
    let grant_type = params.one("grant_type")?;
    let authenticated = credentials(req, params)?.map(|c| (c.id, c.secret));
    match grant_type {
        Some(clients::AUTHORIZATION_CODE) => {
            if authenticated.is_none() {
                params.one("client_id")?.ok_or(OAuthError::InvalidClient)?;
            }
            let code = params
                .one("code")?
                .ok_or_else(|| OAuthError::InvalidRequest("code is required".into()))?;
            let _ = params.one("redirect_uri")?;
            if let Some(verifier) = params.one("code_verifier")? {
                let _ = verifier_matches("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", verifier);
            }
            if !is_token_shaped(code) {
                return Err(OAuthError::InvalidGrant(
                    "the authorization code is invalid",
                ));
            }
            Ok(())
        }
        Some(clients::REFRESH_TOKEN) => {
            let token = params
                .one("refresh_token")?
                .ok_or_else(|| OAuthError::InvalidRequest("refresh_token is required".into()))?;
            let _ = params.one("client_id")?;
            let _ = params.one("scope")?;
            RefreshToken::parse(token)
                .map(drop)
                .ok_or(OAuthError::InvalidGrant("the refresh token is invalid"))
        }
        Some(clients::CLIENT_CREDENTIALS) => {
            authenticated.ok_or(OAuthError::InvalidClient)?;
            let mut resources = params.all("resource");
            resources.extend(params.all("audience"));
            let scope = params.one("scope")?;
            client_credentials_target(&f.confidential, scope, resources, &f.own).map(drop)
        }
        Some(other) => Err(OAuthError::UnsupportedGrantType(other.to_owned())),
        None => Err(OAuthError::InvalidRequest("grant_type is required".into())),
    }
}

/// An authorization request, checked for each fixture client as if it
/// named it, then answered: the login page, the redirect with a code, or
/// the error (a page or a redirect).
fn authorization_endpoint(body: &[u8]) -> bool {
    let f = fixture();
    let Ok(params) = authorize::parse_params(body) else {
        return false;
    };
    let params = RequestParams(&params);
    if let Err(e) = requested_client_id(&params) {
        assert_not_5xx(&authorize_failure(e, &f.settings.issuer), "authorize");
        return false;
    }
    let mut accepted = false;
    for client in [&f.confidential, &f.public] {
        match validate_for(&params, client, &f.own) {
            Ok(request) => {
                accepted = true;
                let target = pages::form_target(&request.redirect_uri);
                let page = pages::login(LoginPage {
                    client_name: &client.name,
                    request_id: "request",
                    csrf_token: "csrf",
                    email: request.login_hint.as_deref(),
                    error: None,
                    form_target: target.as_deref(),
                });
                assert_not_5xx(&page, "login page");
                let mut answer = vec![("code", "c")];
                if let Some(state) = &request.state {
                    answer.push(("state", state));
                }
                answer.push(("iss", &f.settings.issuer));
                let response = authorize::redirect(&redirect_with(&request.redirect_uri, &answer));
                assert_eq!(response.status().as_u16(), 303, "redirect with a code");
            }
            Err(e) => {
                assert_not_5xx(&authorize_failure(e, &f.settings.issuer), "authorize");
            }
        }
    }
    accepted
}

/// The sign-in page's forms come back: the fields read, and the page shown
/// again with what was typed.
fn sign_in_forms(body: &[u8]) {
    let f = fixture();
    let Ok(params) = authorize::parse_params(body) else {
        return;
    };
    if !params.iter().any(|(k, _)| k == "request_id") {
        return;
    }
    let fields = RequestParams(&params);
    let field = |name: &str| fields.one(name).ok().flatten().unwrap_or_default();
    let email = field("email");
    let _ = Email::parse(email);
    let target = pages::form_target(&f.confidential.redirect_uris[0]);
    let page = pages::login(LoginPage {
        client_name: &f.confidential.name,
        request_id: field("request_id"),
        csrf_token: field("csrf_token"),
        email: Some(email),
        error: Some("The email or password is not right."),
        form_target: target.as_deref(),
    });
    assert_not_5xx(&page, "login page again");
    let _ = (field("action"), field("decision"), field("password"));
}

/// `GET|POST /oauth2/logout` up to the database: the hint, the client, the
/// return address, and the confirmation page or the redirect.
fn logout(body: &[u8]) {
    let f = fixture();
    let Ok(params) = authorize::parse_params(body) else {
        return;
    };
    let fields = RequestParams(&params);
    let one = |name: &str| fields.one(name);
    let (Ok(hint), Ok(client_id), Ok(return_uri), Ok(state)) = (
        one("id_token_hint"),
        one("client_id"),
        one("post_logout_redirect_uri"),
        one("state"),
    ) else {
        return;
    };
    let hint = match hint.map(|token| f.verifier.id_token_hint(token)) {
        Some(Err(_)) => return,
        Some(Ok(hint)) => Some(hint),
        None => None,
    };
    let client_id = match (hint.as_ref().map(|h| h.aud.as_str()), client_id) {
        (Some(a), Some(b)) if a != b => return,
        (a, b) => a.or(b),
    };
    let client = [&f.confidential, &f.public]
        .into_iter()
        .find(|c| client_id.is_some_and(|id| id.len() <= 200 && id == c.client_id));
    let return_to = match return_uri {
        None => None,
        Some(uri)
            if client.is_some_and(|c| {
                crate::clients::is_registered_redirect(&c.post_logout_redirect_uris, uri)
            }) =>
        {
            Some(uri)
        }
        Some(_) => return,
    };
    // The browser's SSO cookie, and whether the form confirms with it.
    let cookie = "fuzz-sso-cookie";
    let _confirmed =
        matches!(one("confirm"), Ok(Some(token)) if token == crate::sso::sign_out_token(cookie));
    let mut hidden = vec![("confirm", crate::sso::sign_out_token(cookie))];
    for (name, value) in [
        ("post_logout_redirect_uri", return_to),
        ("client_id", client_id),
        ("state", state),
    ] {
        if let Some(v) = value {
            hidden.push((name, v.to_owned()));
        }
    }
    let target = return_to.and_then(pages::form_target);
    assert_not_5xx(
        &pages::logout_confirm(&hidden, target.as_deref()),
        "sign-out page",
    );
    if let Some(uri) = return_to {
        let mut answer = Vec::new();
        if let Some(s) = state {
            answer.push(("state", s));
        }
        let response = authorize::redirect(&redirect_with(uri, &answer));
        assert_eq!(response.status().as_u16(), 303, "redirect after sign-out");
    }
}

/// The key file target. The first line is a file name in the keys folder,
/// the rest its contents. Read as the loader reads a folder entry: the
/// name says whether it is a key file (revoked or not) and when it was
/// made, the contents must be UTF-8 PEM of an RSA key of 2048 bits or
/// more. A key the loader takes is then written to a real keys folder,
/// loaded by a key ring and, if it is the signing key, must sign a token
/// that verifies. True when the key is taken.
pub fn key_file(data: &[u8]) -> bool {
    let (name, contents) = match data.iter().position(|&b| b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (data, &[][..]),
    };
    // A name a directory entry can't have.
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return false;
    }
    let path = Path::new("/keys").join(OsStr::from_bytes(name));
    let Some(revoked) = files::key_file_kind(&path) else {
        return false;
    };
    let Ok((created_at, _immediate)) = files::creation_from_name(&path, revoked.is_some()) else {
        return false;
    };
    let Ok(pem) = std::str::from_utf8(contents) else {
        return false;
    };
    if SigningKey::from_pem(pem, created_at).is_err() {
        return false;
    }
    load_from_folder(name, contents);
    true
}

/// Writes a key file into a fresh keys folder and loads the folder as the
/// service does; if the key signs now, a token it signs must verify.
fn load_from_folder(name: &[u8], contents: &[u8]) {
    let f = fixture();
    let dir = scratch_dir();
    let path = dir.join(OsStr::from_bytes(name));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| file.write_all(contents));
    written.expect("a key file can be written to a temporary folder");
    let read = files::read_folder(&dir).expect("the folder reads");
    assert_eq!(
        read.keys.len() + read.problems.len(),
        1,
        "the file is seen as a key file"
    );
    if let Some(KeyFile { pem, .. }) = read.keys.first() {
        assert_eq!(pem.as_bytes(), contents, "the file reads back as written");
    }
    let ring = KeyRing::load(
        &dir,
        crate::startup::key_policy(&f.settings),
        system_clock(),
    );
    let _ = std::fs::remove_dir_all(&dir);
    let ring = Arc::new(ring.expect("a folder of one good key loads"));
    let _ = ring.listing();
    let view = ring.view();
    if view.active().is_none() {
        return; // revoked, or not signing yet
    }
    let issuer = TokenIssuer::new(f.settings.issuer.clone(), 60, ring.clone());
    let verifier = TokenVerifier::new(
        &f.settings.issuer,
        &f.settings.tokens.audience,
        0,
        ring.clone(),
    );
    let token = issuer
        .issue_now(Grant {
            subject: "fuzz".into(),
            client_id: "fuzz".into(),
            audience: f.settings.tokens.audience.clone(),
            scope: String::new(),
            roles: None,
            session_id: None,
        })
        .expect("a loaded signing key signs");
    verifier
        .verify(&token.token)
        .expect("a token signed with a loaded key verifies");
    let jwks: serde_json::Value =
        serde_json::from_slice(&view.jwks().body).expect("the JWKS is JSON");
    assert!(jwks["keys"].as_array().is_some_and(|k| !k.is_empty()));
}

/// The file names of the four targets, for tools and tests.
pub const TARGETS: [&str; 4] = ["bearer_token", "json_bodies", "oauth_forms", "key_file"];

/// Runs the named target on `data`; None for an unknown name.
pub fn run(target: &str, data: &[u8]) -> Option<bool> {
    Some(match target {
        "bearer_token" => bearer_token(data),
        "json_bodies" => json_bodies(data),
        "oauth_forms" => oauth_forms(data),
        "key_file" => key_file(data),
        _ => return None,
    })
}
