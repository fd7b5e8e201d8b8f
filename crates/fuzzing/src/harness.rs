//! The application the targets talk to, and what each target sends it.

use actix_web::body::MessageBody;
use actix_web::cookie::Cookie;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode, Uri};
use actix_web::test::TestRequest;
use actix_web::web;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use serde_json::{Value, json};
use tessera::accounts::{self, NewAccount};
use tessera::clients::{self, ClientRegistration, NewClient};
use tessera::configuration::Settings;
use tessera::http::AppState;
use tessera::keys::system_clock;
use tessera::tokens::ACCESS_TOKEN_TYP;

use crate::Target;

/// What an input may name, filled in before it is sent:
///
/// - `$CONFIDENTIAL_ID`, `$CONFIDENTIAL_SECRET`: the confidential client
///   (grants: authorization_code, refresh_token, client_credentials);
///   `$CONFIDENTIAL_BASIC`: its credentials as an HTTP Basic value;
/// - `$PUBLIC_ID`: the public client (first-party; authorization_code,
///   refresh_token);
/// - `$USER_ID`, `$SESSION_ID`, `$ACCESS_TOKEN`: the signed-in user, the
///   session of its access token, and that token;
/// - `$REFRESH_TOKEN`: a fresh refresh token of that user (a new login);
/// - `$CODE`: a fresh authorization code for the public client, redirect
///   URI `https://app.example/cb`, scope `openid profile`, PKCE verifier
///   `dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk` (RFC 7636's example);
/// - `$REQUEST_ID`, `$CSRF_TOKEN`: a sign-in just begun (the login page
///   for the public client, as `$CODE` asks); `$CONSENT_REQUEST_ID`,
///   `$CONSENT_CSRF_TOKEN`: the confidential client's consent page, shown
///   to the signed-in browser (`prompt=consent`);
/// - `$CONFIRM`: the sign-out confirmation of the browser's SSO session.
pub const PLACEHOLDERS: [&str; 14] = [
    "$CONFIDENTIAL_ID",
    "$CONFIDENTIAL_SECRET",
    "$CONFIDENTIAL_BASIC",
    "$PUBLIC_ID",
    "$USER_ID",
    "$SESSION_ID",
    "$ACCESS_TOKEN",
    "$REFRESH_TOKEN",
    "$CODE",
    "$REQUEST_ID",
    "$CSRF_TOKEN",
    "$CONSENT_REQUEST_ID",
    "$CONSENT_CSRF_TOKEN",
    "$CONFIRM",
];

/// The password of every user the harness makes.
const PASSWORD: &str = "correct horse battery";
const USER_EMAIL: &str = "ada@example.com";
const REDIRECT_URI: &str = "https://app.example/cb";
const PKCE_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// The browser cookies of an `http://` issuer.
const SSO_COOKIE: &str = "tessera-sso";
const BROWSER_COOKIE: &str = "tessera-browser";

/// An answer of the application, read whole.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    cookies: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A redirect carrying an authorization code: its code.
    fn code(&self) -> Option<String> {
        if self.status != StatusCode::SEE_OTHER {
            return None;
        }
        let location = url::Url::parse(self.location.as_deref()?).ok()?;
        location
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
    }
}

/// A request, built as a client would send it.
struct Request {
    method: Method,
    uri: String,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    body: Vec<u8>,
}

impl Request {
    fn new(method: Method, uri: impl Into<String>) -> Request {
        Request {
            method,
            uri: uri.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// With `query` appended; None when the result isn't a URI a client
    /// could send.
    fn with_query(method: Method, path: &str, query: &[u8]) -> Option<Request> {
        let mut uri = path.as_bytes().to_vec();
        if !query.is_empty() {
            uri.push(b'?');
            uri.extend_from_slice(query);
        }
        let uri = Uri::try_from(uri).ok()?;
        Some(Request::new(method, uri.to_string()))
    }

    fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Request {
        self.headers.push((name, value));
        self
    }

    fn bearer(self, token: &str) -> Request {
        self.header(header::AUTHORIZATION, bearer(token))
    }

    fn json(mut self, body: &[u8]) -> Request {
        self.body = body.to_vec();
        self.header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )
    }

    fn form(mut self, body: &[u8]) -> Request {
        self.body = body.to_vec();
        self.header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        )
    }

    fn cookies(self, cookies: &[(&str, Option<&str>)]) -> Request {
        let pairs: Vec<String> = cookies
            .iter()
            .filter_map(|(name, value)| value.map(|v| format!("{name}={v}")))
            .collect();
        if pairs.is_empty() {
            return self;
        }
        match HeaderValue::from_str(&pairs.join("; ")) {
            Ok(value) => self.header(header::COOKIE, value),
            Err(_) => panic!("the service's cookies are header values"),
        }
    }
}

/// `Bearer TOKEN`, for a token of the service or signed by the harness.
fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).expect("a token is a header value")
}

/// A client the harness registered, with its secret (confidential only).
struct RegisteredClient {
    id: String,
    secret: Option<String>,
}

/// The application, what the harness made in it, and the browser state it
/// keeps between inputs.
pub(crate) struct Harness<S> {
    service: S,
    state: web::Data<AppState>,
    /// The database and keys folder; removed with the harness.
    _dir: tempfile::TempDir,
    /// The service's own signing key, to sign claims the fuzzer wrote.
    signer: RsaKeyPair,
    kid: String,
    /// `tessera-verifier` as a sibling service holds it, over the same keys.
    sibling: tessera_verifier::Verifier,
    confidential: RegisteredClient,
    public: RegisteredClient,
    user_id: String,
    access_token: String,
    session_id: String,
    admin_token: String,
    /// The user the administrator's user changes go to.
    patched_user_id: String,
    /// The browser's binding cookie (sign-in forms) and SSO session cookie
    /// (None once an input signed it out: signed in again when needed).
    browser: String,
    sso: Option<String>,
    /// A session of its own for the logout body (None once ended).
    logout_token: Option<String>,
    /// A user of its own for the password change (None once changed).
    password_user: Option<(String, String)>,
    /// For unique addresses of the users made along the way.
    counter: u64,
}

/// The settings of the harness's application: the defaults, over a
/// database and keys folder in `dir`.
fn settings(dir: &std::path::Path) -> Settings {
    let mut settings = Settings::load(None).expect("the built-in default settings load");
    settings.database.url = format!("sqlite://{}", dir.join("tessera.db").display());
    settings.database.pool_size = 2;
    settings.keys.dir = dir.join("keys");
    settings.keys.bits = 2048;
    // Cheap hashes: the fuzzer tests the code around them, not argon2.
    settings.passwords.memory_kib = 64;
    settings.passwords.iterations = 1;
    settings.passwords.max_concurrent_hashes = 1;
    // One client sends everything: no throttling, no lockout.
    settings.throttle.enabled = false;
    // Tokens made at the start live as long as a long fuzzing run.
    settings.tokens.access_ttl_seconds = 86_400;
    settings
}

/// The folder of the database and keys: `tessera-fuzzing-PID-…` in the
/// temporary folder. The harness lives until the process exits, which
/// runs no destructor, so folders of processes gone are removed here.
fn scratch_dir() -> tempfile::TempDir {
    const PREFIX: &str = "tessera-fuzzing-";
    let tmp = std::env::temp_dir();
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-", std::process::id()))
        .tempdir_in(tmp)
        .expect("a temporary folder")
}

/// Creates an account as an operator would (the library behind
/// `tessera users create`); returns its id.
fn create_user(state: &AppState, email: &str, roles: &[&str]) -> String {
    let roles = roles.iter().map(|r| (*r).to_owned()).collect();
    let account = NewAccount::parse(email, PASSWORD.to_owned(), None, roles)
        .unwrap_or_else(|e| panic!("the account {email}: {e}"));
    accounts::register_blocking(&state.app.db, &state.app.hasher, account, false)
        .unwrap_or_else(|e| panic!("creating {email}: {e}"))
        .id
        .into_string()
}

/// Registers a client as an operator would (`tessera clients create`).
fn create_client(state: &AppState, public: bool) -> RegisteredClient {
    let strings = |s: &[&str]| s.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
    let mut grant_types = vec![clients::AUTHORIZATION_CODE, clients::REFRESH_TOKEN];
    if !public {
        grant_types.push(clients::CLIENT_CREDENTIALS);
    }
    let registration = ClientRegistration {
        name: if public {
            "Fuzz public"
        } else {
            "Fuzz confidential"
        }
        .to_owned(),
        grant_types: strings(&grant_types),
        scopes: strings(&["openid", "profile", "email", "orders:read"]),
        audiences: strings(&["orders-api", "billing"]),
        redirect_uris: strings(&[
            REDIRECT_URI,
            "http://127.0.0.1:8400/cb?x=1",
            "com.example.app:/callback",
        ]),
        post_logout_redirect_uris: strings(&["https://app.example/signed-out"]),
        public,
        // The public client signs in without a consent page, so `$CODE`
        // needs no consent; the confidential one asks for it.
        first_party: public,
    };
    let new = NewClient::parse(registration, &state.app.own_audiences)
        .unwrap_or_else(|e| panic!("the fixture client: {e}"));
    let (client, secret) =
        clients::create_blocking(&state.app.db, new).unwrap_or_else(|e| panic!("a client: {e}"));
    RegisteredClient {
        id: client.client_id,
        secret: secret.map(|s| s.expose().to_owned()),
    }
}

/// The service's signing key, for aws-lc to sign with.
fn signing_key(state: &AppState) -> (RsaKeyPair, String) {
    let view = state.keys.view();
    let active = view.active().expect("a new key ring has a signing key");
    let kid = active.kid().to_owned();
    let folder =
        tessera::keys::files::read_folder(&state.settings.keys.dir).expect("the keys folder reads");
    let pem = &folder.keys.first().expect("the key just created").pem;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
        .expect("the service's key parses");
    let der = key.to_pkcs8_der().expect("an RSA key encodes");
    let signer = RsaKeyPair::from_pkcs8(der.as_bytes()).expect("aws-lc takes the key");
    (signer, kid)
}

/// Whether to print each request and its status (`TESSERA_FUZZING_TRACE=1`),
/// to see what an input reaches.
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("TESSERA_FUZZING_TRACE").is_some_and(|v| v == "1"))
}

/// A hidden field of a page (the sign-in and consent forms).
fn hidden(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    let end = start + page[start..].find('"')?;
    Some(page[start..end].to_owned())
}

/// A form body of these fields.
fn form(fields: &[(&str, &str)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
        .into_bytes()
}

/// The `sid` claim of a token of the service.
fn session_of(token: &str) -> String {
    let claims = token.split('.').nth(1).expect("a JWT");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).expect("base64url claims"))
            .expect("JSON claims");
    claims["sid"].as_str().expect("a session token").to_owned()
}

/// Makes the application and everything the targets use.
pub(crate) async fn start() -> Harness<
    impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    >,
> {
    let dir = scratch_dir();
    let state = tessera::startup::build_state(settings(dir.path()), system_clock())
        .unwrap_or_else(|e| panic!("the application state: {e}"));
    let user_id = create_user(&state, USER_EMAIL, &[]);
    create_user(&state, "admin@example.com", &["admin"]);
    let patched_user_id = create_user(&state, "patched@example.com", &[]);
    let confidential = create_client(&state, false);
    let public = create_client(&state, true);
    let (signer, kid) = signing_key(&state);
    let tokens = &state.settings.tokens;
    let mut sibling = tessera_verifier::Verifier::builder(state.settings.issuer.clone())
        .leeway(std::time::Duration::from_secs(tokens.leeway_seconds));
    for audience in &tokens.audience {
        sibling = sibling.audience(audience.clone());
    }
    let sibling = sibling.with_keys(state.keys.view().verification().clone());
    let state = web::Data::new(state);
    let service = actix_web::test::init_service(tessera::startup::app(state.clone())).await;
    let mut harness = Harness {
        service,
        state,
        _dir: dir,
        signer,
        kid,
        sibling,
        confidential,
        public,
        user_id,
        access_token: String::new(),
        session_id: String::new(),
        admin_token: String::new(),
        patched_user_id,
        browser: String::new(),
        sso: None,
        logout_token: None,
        password_user: None,
        counter: 0,
    };
    harness.access_token = harness.login(USER_EMAIL).await["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    harness.session_id = session_of(&harness.access_token);
    harness.admin_token = harness.login("admin@example.com").await["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    harness.sign_in().await;
    harness
}

impl<S, B> Harness<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    pub(crate) fn access_token(&self) -> String {
        self.access_token.clone()
    }

    pub(crate) async fn run(&mut self, target: Target, data: &[u8]) -> bool {
        match target {
            Target::BearerToken => self.bearer_token(data).await,
            Target::JsonBodies => self.json_bodies(data).await,
            Target::OauthForms => self.oauth_forms(data).await,
        }
    }

    /// Sends `request`; no answer may be a server error.
    async fn send(&self, request: Request, what: &str) -> Answer {
        let (method, path) = (request.method.clone(), request.uri.clone());
        let path = path.split('?').next().unwrap_or_default().to_owned();
        let mut test = TestRequest::default()
            .method(request.method)
            .uri(&request.uri)
            .peer_addr("127.0.0.1:40000".parse().expect("an address"))
            .set_payload(request.body);
        for (name, value) in request.headers {
            test = test.append_header((name, value));
        }
        let response = match self.service.call(test.to_request()).await {
            Ok(response) => response.map_into_boxed_body().into_parts().1,
            Err(e) => e.error_response(),
        };
        let status = response.status();
        if trace() {
            eprintln!("tessera-fuzzing: {what}: {method} {path} → {status}");
        }
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let cookies = response
            .headers()
            .get_all(header::SET_COOKIE)
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| Cookie::parse(v.to_owned()).ok())
            .map(|c| (c.name().to_owned(), c.value().to_owned()))
            .collect();
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .map(|b| b.to_vec())
            .unwrap_or_else(|_| panic!("{what}: the body of a {status} answer can't be read"));
        assert!(
            !status.is_server_error(),
            "{what}: answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Answer {
            status,
            location,
            cookies,
            body,
        }
    }

    /// Logs in with the JSON API; the token response.
    async fn login(&self, email: &str) -> Value {
        let body = json!({"email": email, "password": PASSWORD}).to_string();
        let request = Request::new(Method::POST, "/v1/auth/login").json(body.as_bytes());
        let answer = self.send(request, "login").await;
        assert_eq!(answer.status, StatusCode::OK, "login: {}", answer.text());
        answer.json()
    }

    /// Signs the browser in (the public client's sign-in page, the user's
    /// password) and keeps its SSO session cookie; returns the code.
    async fn sign_in(&mut self) -> String {
        let public = self.public.id.clone();
        let (request_id, csrf_token) = self.begin_sign_in(&public, false).await;
        let body = form(&[
            ("request_id", &request_id),
            ("csrf_token", &csrf_token),
            ("action", "login"),
            ("email", USER_EMAIL),
            ("password", PASSWORD),
        ]);
        let request = Request::new(Method::POST, "/oauth2/authorize")
            .form(&body)
            .cookies(&[(BROWSER_COOKIE, Some(&self.browser))]);
        let answer = self.send(request, "sign-in").await;
        let code = answer
            .code()
            .unwrap_or_else(|| panic!("sign-in: no code: {}", answer.text()));
        let sso = answer.cookie(SSO_COOKIE).expect("an SSO session cookie");
        self.sso = Some(sso.to_owned());
        code
    }

    /// An authorization request for `client_id` shown to the browser: the
    /// sign-in page (without the SSO session) or, with it and
    /// `prompt=consent`, the consent page. Its form's hidden fields.
    /// Not signing in itself: sign-in starts here.
    async fn begin_sign_in(&mut self, client_id: &str, consent: bool) -> (String, String) {
        let mut query = vec![
            ("client_id", client_id),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", "openid profile"),
            ("state", "fuzz"),
            ("code_challenge", PKCE_CHALLENGE),
            ("code_challenge_method", "S256"),
        ];
        if consent {
            query.push(("prompt", "consent"));
        }
        let query = form(&query);
        let request =
            Request::with_query(Method::GET, "/oauth2/authorize", &query).expect("a valid URI");
        // The consent page needs the SSO session (the caller signed in).
        let sso = if consent { self.sso.clone() } else { None };
        let browser = (!self.browser.is_empty()).then(|| self.browser.clone());
        let request = request.cookies(&[
            (BROWSER_COOKIE, browser.as_deref()),
            (SSO_COOKIE, sso.as_deref()),
        ]);
        let answer = self.send(request, "authorization request").await;
        if let Some(browser) = answer.cookie(BROWSER_COOKIE) {
            self.browser = browser.to_owned();
        }
        let page = answer.text();
        match (hidden(&page, "request_id"), hidden(&page, "csrf_token")) {
            (Some(id), Some(csrf)) => (id, csrf),
            _ => panic!("authorization request: no form ({}): {page}", answer.status),
        }
    }

    async fn ensure_signed_in(&mut self) {
        if self.sso.is_none() {
            self.sign_in().await;
        }
    }

    /// A fresh code for the public client, through the SSO session.
    async fn code(&mut self) -> String {
        self.ensure_signed_in().await;
        let query = form(&[
            ("client_id", &self.public.id),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", "openid profile"),
            ("code_challenge", PKCE_CHALLENGE),
            ("code_challenge_method", "S256"),
        ]);
        let request = Request::with_query(Method::GET, "/oauth2/authorize", &query)
            .expect("a valid URI")
            .cookies(&[
                (BROWSER_COOKIE, Some(&self.browser)),
                (SSO_COOKIE, self.sso.as_deref()),
            ]);
        match self.send(request, "authorization request").await.code() {
            Some(code) => code,
            // The SSO session is over (it expired): a new sign-in.
            None => self.sign_in().await,
        }
    }

    /// `data` with every placeholder it names filled in.
    async fn fill_in(&mut self, data: &[u8]) -> Vec<u8> {
        let mut data = data.to_vec();
        for name in PLACEHOLDERS {
            if !contains(&data, name.as_bytes()) {
                continue;
            }
            let value = match name {
                "$CONFIDENTIAL_ID" => self.confidential.id.clone(),
                "$CONFIDENTIAL_SECRET" => self.confidential.secret.clone().unwrap_or_default(),
                "$CONFIDENTIAL_BASIC" => {
                    let encode = |s: &str| {
                        url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                    };
                    let secret = self.confidential.secret.as_deref().unwrap_or_default();
                    STANDARD.encode(format!(
                        "{}:{}",
                        encode(&self.confidential.id),
                        encode(secret)
                    ))
                }
                "$PUBLIC_ID" => self.public.id.clone(),
                "$USER_ID" => self.user_id.clone(),
                "$SESSION_ID" => self.session_id.clone(),
                "$ACCESS_TOKEN" => self.access_token.clone(),
                "$REFRESH_TOKEN" => self.login(USER_EMAIL).await["refresh_token"]
                    .as_str()
                    .expect("a refresh token")
                    .to_owned(),
                "$CODE" => self.code().await,
                "$REQUEST_ID" | "$CSRF_TOKEN" | "$CONSENT_REQUEST_ID" | "$CONSENT_CSRF_TOKEN" => {
                    // The pair comes together; both are filled in at once.
                    // A sign-in for the public client (a code at once),
                    // a consent for the confidential one.
                    let consent = name.starts_with("$CONSENT");
                    if consent {
                        self.ensure_signed_in().await;
                    }
                    let client = if consent {
                        self.confidential.id.clone()
                    } else {
                        self.public.id.clone()
                    };
                    let (id, csrf) = self.begin_sign_in(&client, consent).await;
                    let prefix = if consent { "$CONSENT_" } else { "$" };
                    data = replace(
                        &data,
                        format!("{prefix}REQUEST_ID").as_bytes(),
                        id.as_bytes(),
                    );
                    data = replace(
                        &data,
                        format!("{prefix}CSRF_TOKEN").as_bytes(),
                        csrf.as_bytes(),
                    );
                    continue;
                }
                "$CONFIRM" => {
                    self.ensure_signed_in().await;
                    tessera::sso::sign_out_token(self.sso.as_deref().unwrap_or_default())
                }
                _ => unreachable!("every placeholder has a value"),
            };
            data = replace(&data, name.as_bytes(), value.as_bytes());
        }
        data
    }

    /// `header.claims.signature` with the service's key, the claims as given.
    fn sign(&self, typ: &str, claims: &[u8]) -> String {
        let header = json!({"alg": "RS256", "typ": typ, "kid": self.kid});
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut token);
        let mut signature = vec![0u8; self.signer.public_modulus_len()];
        self.signer
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

    async fn bearer_token(&mut self, data: &[u8]) -> bool {
        let data = self.fill_in(data).await;
        if data.first() == Some(&b'{') {
            if contains(&data, b"\"auth_time\"") {
                let token = self.sign("JWT", &data);
                assert!(
                    !self.presented(bearer(&token)).await,
                    "an ID token is accepted as an access token"
                );
                return self.hint_taken(&token).await;
            }
            let token = self.sign(ACCESS_TOKEN_TYP, &data);
            return self.presented(bearer(&token)).await;
        }
        // Bytes that can't be a header value never reach the service.
        match HeaderValue::from_bytes(&data) {
            Ok(value) => self.presented(value).await,
            Err(_) => false,
        }
    }

    /// The `Authorization` value on `/v1/me` and `/oauth2/userinfo`:
    /// whether `/v1/me` takes it.
    async fn presented(&self, value: HeaderValue) -> bool {
        let me = Request::new(Method::GET, "/v1/me").header(header::AUTHORIZATION, value.clone());
        let accepted = self.send(me, "GET /v1/me").await.status == StatusCode::OK;
        for method in [Method::GET, Method::POST] {
            let request = Request::new(method, "/oauth2/userinfo")
                .header(header::AUTHORIZATION, value.clone());
            self.send(request, "/oauth2/userinfo").await;
        }
        // The token (the header's last word) as Tessera and tessera-verifier
        // read it: the same rules in the same crate must agree.
        let text = String::from_utf8_lossy(value.as_bytes());
        let token = text.split_ascii_whitespace().last().unwrap_or_default();
        let own = self.state.app.verifier.verify(token).is_ok();
        let sibling = self.sibling.verify_cached(token).is_ok();
        assert_eq!(own, sibling, "Tessera and tessera-verifier disagree");
        assert!(own || !accepted, "/v1/me takes a token that doesn't verify");
        accepted
    }

    /// `GET /oauth2/logout` with `token` as its `id_token_hint` (no SSO
    /// session): whether the hint is taken (not a 400).
    async fn hint_taken(&self, token: &str) -> bool {
        let query = form(&[("id_token_hint", token)]);
        let request =
            Request::with_query(Method::GET, "/oauth2/logout", &query).expect("a valid URI");
        let answer = self.send(request, "GET /oauth2/logout").await;
        answer.status != StatusCode::BAD_REQUEST
    }

    async fn json_bodies(&mut self, data: &[u8]) -> bool {
        let mut accepted = false;

        let register = Request::new(Method::POST, "/v1/auth/register").json(data);
        let answer = self.send(register, "register").await;
        if answer.status.is_success() {
            accepted = true;
            let id = answer.json()["id"].as_str().map(str::to_owned);
            self.delete_user(&id.expect("a registered user's id")).await;
        }

        let login = Request::new(Method::POST, "/v1/auth/login").json(data);
        let answer = self.send(login, "login").await;
        if answer.status.is_success() {
            accepted = true;
            let token = answer.json()["access_token"].as_str().map(str::to_owned);
            let logout = Request::new(Method::POST, "/v1/auth/logout")
                .bearer(&token.expect("an access token"));
            let ended = self.send(logout, "logout after login").await;
            assert_eq!(ended.status, StatusCode::NO_CONTENT, "logout after login");
        }

        let token = self.logout_token().await;
        let logout = Request::new(Method::POST, "/v1/auth/logout")
            .bearer(&token)
            .json(data);
        if self.send(logout, "logout").await.status.is_success() {
            accepted = true;
            self.logout_token = None;
        }

        let (user_id, token) = self.password_user().await;
        let change = Request::new(Method::PUT, "/v1/me/password")
            .bearer(&token)
            .json(data);
        if self
            .send(change, "password change")
            .await
            .status
            .is_success()
        {
            accepted = true;
            self.delete_user(&user_id).await;
            self.password_user = None;
        }

        let patch = Request::new(
            Method::PATCH,
            format!("/v1/admin/users/{}", self.patched_user_id),
        )
        .bearer(&self.admin_token)
        .json(data);
        if self.send(patch, "user change").await.status.is_success() {
            accepted = true;
        }

        let create = Request::new(Method::POST, "/v1/admin/clients")
            .bearer(&self.admin_token)
            .json(data);
        let answer = self.send(create, "client registration").await;
        if answer.status.is_success() {
            accepted = true;
            self.registered_client_works(&answer.json()).await;
        }
        accepted
    }

    /// A client registration was accepted: an authorization request with
    /// each of its redirect URIs, and a sign-out returning to each of its
    /// post-logout URIs, must be answered (never a 5xx); then it is deleted.
    async fn registered_client_works(&self, client: &Value) {
        let id = client["client_id"].as_str().expect("a client id");
        let uris = |field: &str| -> Vec<String> {
            client[field]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        for uri in uris("redirect_uris") {
            let query = form(&[
                ("client_id", id),
                ("redirect_uri", &uri),
                ("response_type", "code"),
                ("state", "s"),
                ("code_challenge", PKCE_CHALLENGE),
                ("code_challenge_method", "S256"),
            ]);
            if let Some(request) = Request::with_query(Method::GET, "/oauth2/authorize", &query) {
                self.send(request, "authorization request of a registered client")
                    .await;
            }
        }
        for uri in uris("post_logout_redirect_uris") {
            let query = form(&[
                ("client_id", id),
                ("post_logout_redirect_uri", &uri),
                ("state", "s"),
            ]);
            if let Some(request) = Request::with_query(Method::GET, "/oauth2/logout", &query) {
                let answer = self.send(request, "sign-out of a registered client").await;
                assert_eq!(
                    answer.status,
                    StatusCode::SEE_OTHER,
                    "sign-out to {uri:?}: {}",
                    answer.text()
                );
            }
        }
        let delete = Request::new(Method::DELETE, format!("/v1/admin/clients/{id}"))
            .bearer(&self.admin_token);
        let answer = self.send(delete, "client deletion").await;
        assert!(
            answer.status.is_success(),
            "client deletion: {}",
            answer.status
        );
    }

    async fn delete_user(&self, id: &str) {
        let delete =
            Request::new(Method::DELETE, format!("/v1/admin/users/{id}")).bearer(&self.admin_token);
        let answer = self.send(delete, "user deletion").await;
        assert!(
            answer.status.is_success(),
            "user deletion: {}",
            answer.status
        );
    }

    fn next_email(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("{what}-{}@example.com", self.counter)
    }

    /// A user made through the API and logged in; its id and token.
    async fn new_signed_in_user(&mut self, what: &str) -> (String, String) {
        let email = self.next_email(what);
        let body = json!({"email": email, "password": PASSWORD}).to_string();
        let request = Request::new(Method::POST, "/v1/auth/register").json(body.as_bytes());
        let answer = self.send(request, "register").await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "register: {}",
            answer.text()
        );
        let id = answer.json()["id"].as_str().expect("an id").to_owned();
        let token = self.login(&email).await["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned();
        (id, token)
    }

    async fn logout_token(&mut self) -> String {
        if let Some(token) = &self.logout_token {
            return token.clone();
        }
        let (_, token) = self.new_signed_in_user("signed-out").await;
        self.logout_token = Some(token.clone());
        token
    }

    async fn password_user(&mut self) -> (String, String) {
        if let Some(user) = &self.password_user {
            return user.clone();
        }
        let user = self.new_signed_in_user("password").await;
        self.password_user = Some(user.clone());
        user
    }

    async fn oauth_forms(&mut self, data: &[u8]) -> bool {
        let data = self.fill_in(data).await;
        let (authorization, body) = split_authorization(&data);
        let with_client = |request: Request| match &authorization {
            Some(value) => request.header(header::AUTHORIZATION, value.clone()),
            None => request,
        };

        let token = with_client(Request::new(Method::POST, "/oauth2/token").form(body));
        let mut accepted = self.send(token, "POST /oauth2/token").await.status == StatusCode::OK;
        for path in ["/oauth2/revoke", "/oauth2/introspect"] {
            let request = with_client(Request::new(Method::POST, path).form(body));
            self.send(request, path).await;
        }

        // A new authorization request: the sign-in page if it is valid.
        if let Some(request) = Request::with_query(Method::GET, "/oauth2/authorize", body) {
            let answer = self.send(request, "GET /oauth2/authorize").await;
            accepted |= answer.status == StatusCode::OK || answer.code().is_some();
        }
        // As a form, from the signed-in browser: a request, or the sign-in
        // and consent forms coming back.
        let request = Request::new(Method::POST, "/oauth2/authorize")
            .form(body)
            .cookies(&[
                (BROWSER_COOKIE, Some(&self.browser)),
                (SSO_COOKIE, self.sso.as_deref()),
            ]);
        let answer = self.send(request, "POST /oauth2/authorize").await;
        accepted |= answer.code().is_some();

        // Sign-out, from the signed-in browser.
        let logout_get = Request::with_query(Method::GET, "/oauth2/logout", body);
        let logout_post = Some(Request::new(Method::POST, "/oauth2/logout").form(body));
        for request in [logout_get, logout_post].into_iter().flatten() {
            let request = request.cookies(&[(SSO_COOKIE, self.sso.as_deref())]);
            let answer = self.send(request, "/oauth2/logout").await;
            if answer.cookie(SSO_COOKIE).is_some() {
                // The session ended (the cookie is cleared).
                self.sso = None;
            }
        }

        // The admin lists' queries.
        for path in ["/v1/admin/users", "/v1/admin/audit"] {
            if let Some(request) = Request::with_query(Method::GET, path, body) {
                self.send(request.bearer(&self.admin_token), path).await;
            }
        }
        accepted
    }
}

/// An optional first line `authorization: VALUE`, and the rest.
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
    // A value that can't be a header is never sent.
    (HeaderValue::from_bytes(line.trim_ascii()).ok(), body)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn replace(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}
