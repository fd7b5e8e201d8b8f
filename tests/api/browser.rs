//! End to end in a real browser: headless Chromium, driven over WebDriver by
//! chromedriver, signs in through the OpenID Connect login and consent pages
//! and lands on a relying party's redirect URI; the code it carries is then
//! exchanged for tokens, and a second authorization rides the browser's
//! single sign-on session.
//!
//! Skipped (with a printed line) where Chromium or chromedriver is missing,
//! unless `TESSERA_REQUIRE_BROWSER=1`, as in CI, makes that a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fantoccini::{Client, ClientBuilder, Locator};
use rand::Rng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::{Backend, PASSWORD, TestApp, unique_email};

const REQUIRE_BROWSER_ENV: &str = "TESSERA_REQUIRE_BROWSER";
const CHROMIUM: &str = "/usr/bin/chromium";
const CLIENT_NAME: &str = "Example App";
/// How long any one step (a page load, a redirect) may take.
const STEP: Duration = Duration::from_secs(20);

/// chromedriver's path, or why the browser test can't run.
fn browser_tools() -> Result<PathBuf, String> {
    if !Path::new(CHROMIUM).is_file() {
        return Err(format!("{CHROMIUM} is missing"));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("chromedriver"))
        .find(|candidate| candidate.is_file());
    let fallback = PathBuf::from("/usr/bin/chromedriver");
    on_path
        .or_else(|| fallback.is_file().then_some(fallback))
        .ok_or_else(|| "chromedriver is missing".to_owned())
}

/// A chromedriver process of the test's own, killed when dropped.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    async fn spawn(path: &Path) -> ChromeDriver {
        let port = crate::helpers::free_port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
        let mut driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(status) = driver.child.try_wait().expect("chromedriver's status") {
                panic!("chromedriver exited before accepting connections: {status}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port} within {STEP:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect_browser(driver: &ChromeDriver) -> Client {
    // Two rustls crypto backends are linked into the test binary; choose.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1000,900",
            ],
        },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!("a JSON object")
    };
    ClientBuilder::rustls()
        .expect("a rustls connector")
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with headless Chromium")
}

/// The relying party's redirect target: a bare HTTP server on loopback that
/// answers every request with 200 "signed in" and records each request
/// line's target (path and query).
#[derive(Clone)]
struct Callback {
    port: u16,
    targets: Arc<Mutex<Vec<String>>>,
}

impl Callback {
    async fn start() -> Callback {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the callback");
        let callback = Callback {
            port: listener.local_addr().unwrap().port(),
            targets: Arc::default(),
        };
        let targets = callback.targets.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let targets = targets.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head);
                    let target = head
                        .lines()
                        .next()
                        .and_then(|line| line.split(' ').nth(1))
                        .unwrap_or_default()
                        .to_owned();
                    targets.lock().unwrap().push(target);
                    let body = "signed in";
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        callback
    }

    fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    fn callbacks(&self) -> Vec<url::Url> {
        let base = url::Url::parse(&format!("http://127.0.0.1:{}", self.port)).unwrap();
        self.targets
            .lock()
            .unwrap()
            .iter()
            .filter_map(|target| base.join(target).ok())
            .filter(|url| url.path() == "/callback")
            .collect()
    }

    /// Waits for the `n`th request to /callback (counting from 1).
    async fn nth(&self, n: usize, browser: &Client) -> url::Url {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(url) = self.callbacks().into_iter().nth(n - 1) {
                return url;
            }
            if Instant::now() >= deadline {
                let at = browser.current_url().await.map(|u| u.to_string());
                let page = browser.source().await.unwrap_or_default();
                panic!(
                    "the browser never reached the callback (request {n}) within {STEP:?}; it is at {at:?}, showing:\n{}",
                    excerpt(&page)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn random_string(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The first part of a page, for failure messages.
fn excerpt(page: &str) -> String {
    page.chars().take(3000).collect()
}

fn save_screenshot(png: &[u8], name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e");
    std::fs::create_dir_all(&dir).expect("target/e2e");
    let path = dir.join(name);
    std::fs::write(&path, png).expect("write the screenshot");
    path
}

/// Finds an element on the page the browser is on, waiting for it; on
/// timeout, fails with what the page shows instead.
async fn expect_element(browser: &Client, css: &str, on: &str) -> fantoccini::elements::Element {
    match browser
        .wait()
        .at_most(STEP)
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(e) => {
            let at = browser.current_url().await.map(|u| u.to_string());
            let page = browser.source().await.unwrap_or_default();
            panic!(
                "expected `{css}` on the {on} ({e}); the browser is at {at:?}, showing:\n{}",
                excerpt(&page)
            )
        }
    }
}

async fn body_text(browser: &Client) -> String {
    browser
        .find(Locator::Css("body"))
        .await
        .expect("a page body")
        .text()
        .await
        .expect("the page's text")
}

async fn fill(browser: &Client, css: &str, value: &str) {
    let input = browser.find(Locator::Css(css)).await.expect(css);
    input.clear().await.expect("clear the field");
    input.send_keys(value).await.expect("type into the field");
}

/// Asserts the login page is showing, per its contract: the form, its
/// fields and button, and the client's name.
async fn assert_login_page(browser: &Client) {
    let form = expect_element(browser, r#"form[action="/oauth2/authorize"]"#, "login page").await;
    let method = form.attr("method").await.unwrap().unwrap_or_default();
    assert!(
        method.eq_ignore_ascii_case("post"),
        "the login form's method is {method:?}"
    );
    form.find(Locator::Css(r#"input#email[name="email"]"#))
        .await
        .expect("the email field");
    form.find(Locator::Css(
        r#"input#password[name="password"][type="password"]"#,
    ))
    .await
    .expect("the password field");
    form.find(Locator::Css(
        r#"button#sign-in[name="action"][value="login"]"#,
    ))
    .await
    .expect("the sign-in button");
    let text = body_text(browser).await;
    assert!(
        text.contains(CLIENT_NAME),
        "the login page doesn't name the client {CLIENT_NAME:?}; it reads:\n{text}"
    );
}

/// `payload` of a JWT, decoded.
fn jwt_payload(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
        .expect("a JSON payload")
}

/// What the relying party sends and must see echoed.
struct Authorization {
    client_id: String,
    redirect_uri: String,
    verifier: String,
    nonce: String,
}

impl Authorization {
    fn url(&self, app: &TestApp, state: &str) -> String {
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()));
        let encode = |value: &str| {
            url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()
        };
        app.url(&format!(
            "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid%20email%20profile&state={}&nonce={}&code_challenge={}&code_challenge_method=S256",
            encode(&self.client_id),
            encode(&self.redirect_uri),
            encode(state),
            encode(&self.nonce),
            challenge,
        ))
    }

    /// Asserts the callback carries a code, `state` and the issuer; returns
    /// the code.
    fn code_from(&self, app: &TestApp, callback: &url::Url, state: &str) -> String {
        assert_eq!(
            query(callback, "error"),
            None,
            "the authorization failed: {callback}"
        );
        assert_eq!(
            query(callback, "state").as_deref(),
            Some(state),
            "{callback}"
        );
        assert_eq!(
            query(callback, "iss").as_deref(),
            Some(app.settings.issuer.as_str()),
            "{callback}"
        );
        query(callback, "code")
            .filter(|code| !code.is_empty())
            .unwrap_or_else(|| panic!("no code in {callback}"))
    }

    /// Exchanges `code` at the token endpoint; returns the token response.
    async fn exchange(&self, app: &TestApp, code: &str) -> Value {
        let response = app
            .post_form(
                "/oauth2/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", &self.redirect_uri),
                    ("client_id", &self.client_id),
                    ("code_verifier", &self.verifier),
                ],
            )
            .await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "exchanging the code: {body}");
        let tokens: Value = serde_json::from_str(&body).expect("a JSON token response");
        for field in ["access_token", "refresh_token", "id_token"] {
            assert!(
                tokens[field].as_str().is_some_and(|t| !t.is_empty()),
                "no {field} in {tokens}"
            );
        }
        let claims = jwt_payload(tokens["id_token"].as_str().unwrap());
        assert_eq!(claims["aud"], self.client_id.as_str(), "{claims}");
        assert_eq!(claims["nonce"], self.nonce.as_str(), "{claims}");
        tokens
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_login_in_chromium() {
    let chromedriver = match browser_tools() {
        Ok(path) => path,
        Err(why) if std::env::var(REQUIRE_BROWSER_ENV).as_deref() == Ok("1") => {
            panic!(
                "{REQUIRE_BROWSER_ENV}=1 but {why}; install Debian's chromium and chromium-driver"
            )
        }
        Err(why) => {
            eprintln!("skipping browser test: {why}; set {REQUIRE_BROWSER_ENV}=1 to require it");
            return;
        }
    };
    // One backend is enough here: the flow, not the storage, is under test.
    let app = TestApp::spawn_with(Backend::Sqlite, |_| {})
        .await
        .expect("the SQLite app");
    let callback = Callback::start().await;
    let driver = ChromeDriver::spawn(&chromedriver).await;
    let browser = connect_browser(&driver).await;

    // The flow runs as its own task so the browser session is closed (and
    // Chromium with it) whether or not it panics.
    let outcome = tokio::spawn(login_flow(app, callback, browser.clone())).await;
    let closed = browser.close().await;
    drop(driver);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    closed.expect("close the WebDriver session");
}

async fn login_flow(app: TestApp, callback: Callback, browser: Client) {
    // The harness itself: the browser reaches the app, and the callback.
    browser
        .goto(&app.url("/healthz"))
        .await
        .expect("load /healthz");
    let health = body_text(&browser).await;
    assert!(!health.is_empty(), "/healthz shows nothing in Chromium");

    let admin = app.admin_token(&unique_email()).await;
    let response = app
        .client
        .post(app.url("/v1/admin/clients"))
        .bearer_auth(&admin)
        .json(&json!({
            "name": CLIENT_NAME,
            "grant_types": ["authorization_code", "refresh_token"],
            "scopes": ["openid", "email", "profile"],
            "redirect_uris": [callback.redirect_uri()],
            "public": true,
            "first_party": false,
        }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 201, "registering the client: {body}");
    let client: Value = serde_json::from_str(&body).unwrap();
    let email = unique_email();
    app.register(&email).await;

    let authorization = Authorization {
        client_id: client["client_id"].as_str().expect("client_id").to_owned(),
        redirect_uri: callback.redirect_uri(),
        verifier: random_string(64),
        nonce: random_string(24),
    };
    let state = random_string(24);
    browser
        .goto(&authorization.url(&app, &state))
        .await
        .expect("load the authorization endpoint");

    // The login page; a wrong password keeps the user on it, with an error.
    assert_login_page(&browser).await;
    let shot = browser.screenshot().await.expect("a screenshot");
    save_screenshot(&shot, "login-page.png");
    fill(&browser, "#email", &email).await;
    fill(&browser, "#password", "not the password at all").await;
    browser
        .find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .expect("submit the login form");
    let error = expect_element(&browser, "#error", "login page after a wrong password").await;
    let message = error.text().await.unwrap();
    assert!(
        !message.trim().is_empty(),
        "the #error element is empty after a wrong password"
    );
    assert_login_page(&browser).await;
    assert!(
        callback.callbacks().is_empty(),
        "a wrong password reached the callback"
    );

    fill(&browser, "#email", &email).await;
    fill(&browser, "#password", PASSWORD).await;
    browser
        .find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .expect("submit the login form");

    // Consent: a third-party client asks, the user allows.
    let allow = expect_element(
        &browser,
        r#"button#allow[name="decision"][value="allow"]"#,
        "consent page",
    )
    .await;
    expect_element(
        &browser,
        r#"button#deny[name="decision"][value="deny"]"#,
        "consent page",
    )
    .await;
    let text = body_text(&browser).await;
    assert!(
        text.contains(CLIENT_NAME),
        "the consent page doesn't name the client {CLIENT_NAME:?}; it reads:\n{text}"
    );
    for scope in ["openid", "email", "profile"] {
        assert!(
            text.contains(scope),
            "the consent page doesn't list the {scope:?} scope; it reads:\n{text}"
        );
    }
    let shot = browser.screenshot().await.expect("a screenshot");
    save_screenshot(&shot, "consent-page.png");
    allow.click().await.expect("allow");

    // The relying party's callback, with a code, the state and the issuer.
    let landed = callback.nth(1, &browser).await;
    let code = authorization.code_from(&app, &landed, &state);
    let current = browser.current_url().await.unwrap();
    assert_eq!(current.path(), "/callback", "{current}");
    assert_eq!(query(&current, "state").as_deref(), Some(state.as_str()));
    assert_eq!(query(&current, "code").as_deref(), Some(code.as_str()));
    authorization.exchange(&app, &code).await;

    // Again, with the browser's session and the remembered consent: straight
    // to the callback, no login page and no consent page.
    let second_state = random_string(24);
    browser
        .goto(&authorization.url(&app, &second_state))
        .await
        .expect("load the authorization endpoint again");
    let landed = callback.nth(2, &browser).await;
    let code = authorization.code_from(&app, &landed, &second_state);
    let current = browser.current_url().await.unwrap();
    assert_eq!(current.path(), "/callback", "{current}");
    assert_eq!(
        query(&current, "state").as_deref(),
        Some(second_state.as_str())
    );
    authorization.exchange(&app, &code).await;
}
