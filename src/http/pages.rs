//! The few HTML pages a browser sees: sign-in, consent, sign-out and errors.
//! Server-rendered from askama templates (`templates/pages/`), no JavaScript,
//! every value escaped by the template engine; served with a strict
//! Content-Security-Policy (the one stylesheet is allowed by its hash) and
//! no framing, so the login form can't be clickjacked.

use std::fmt;
use std::sync::LazyLock;

use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};
use askama::Template;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// The pages' one stylesheet, inlined by `templates/pages/base.html`.
const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}\
main{max-width:24rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:.5rem;box-shadow:0 1px 4px #0002}\
h1{font-size:1.35rem;margin:0 0 1rem}p{line-height:1.45;overflow-wrap:anywhere}label{display:block;margin:.9rem 0 .3rem;font-weight:600}\
input{box-sizing:border-box;width:100%;padding:.55rem;font-size:1rem;border:1px solid #99a;border-radius:.3rem}\
button{margin-top:1.2rem;padding:.6rem 1.2rem;font-size:1rem;border:0;border-radius:.3rem;background:#2450c8;color:#fff;cursor:pointer}\
button.secondary{background:#e3e6ec;color:#1d2330;margin-left:.5rem}\
.error{background:#fde8e8;color:#8a1010;padding:.6rem;border-radius:.3rem}ul{padding-left:1.2rem}";

/// `style-src 'sha256-…'`: the inline stylesheet above and nothing else.
static CSP_STYLE: LazyLock<String> =
    LazyLock::new(|| format!("'sha256-{}'", STANDARD.encode(Sha256::digest(STYLE))));

/// The escaper for `.html` templates (see `askama.toml`): askama's own
/// writes numeric references (`&#60;`); this keeps the named ones the pages
/// have always had (`&lt;`, `&quot;`, `&#x27;`), which relying parties'
/// scrapers and our own bench and tests read back.
#[derive(Debug, Clone, Copy)]
pub struct HtmlEscaper;

impl HtmlEscaper {
    fn reference(c: char) -> Option<&'static str> {
        match c {
            '&' => Some("&amp;"),
            '<' => Some("&lt;"),
            '>' => Some("&gt;"),
            '"' => Some("&quot;"),
            '\'' => Some("&#x27;"),
            _ => None,
        }
    }
}

impl askama::filters::Escaper for HtmlEscaper {
    fn write_escaped_str<W: fmt::Write>(&self, mut dest: W, text: &str) -> fmt::Result {
        let mut plain_from = 0;
        for (at, c) in text.char_indices() {
            if let Some(reference) = Self::reference(c) {
                dest.write_str(&text[plain_from..at])?;
                dest.write_str(reference)?;
                plain_from = at + c.len_utf8();
            }
        }
        dest.write_str(&text[plain_from..])
    }

    fn write_escaped_char<W: fmt::Write>(&self, mut dest: W, c: char) -> fmt::Result {
        match Self::reference(c) {
            Some(reference) => dest.write_str(reference),
            None => dest.write_char(c),
        }
    }
}

/// Renders a page with the headers every page carries. `form_target` is
/// the origin forms on it may end up redirected to (the client's), for
/// `form-action`.
fn render(status: StatusCode, page: &impl Template, form_target: Option<&str>) -> HttpResponse {
    let html = match page.render() {
        Ok(html) => html,
        // Only a failing Display of a value could get here; the values are
        // text, so this is a bug, not an input.
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            return secured(HttpResponse::build(StatusCode::INTERNAL_SERVER_ERROR))
                .content_type("text/plain; charset=utf-8")
                .body("Something went wrong.");
        }
    };
    // Browsers apply form-action to the redirect that follows a form
    // submission, so the client's redirect target must be listed.
    let form_action = match form_target {
        Some(target) => format!("'self' {target}"),
        None => "'self'".to_owned(),
    };
    let csp = format!(
        "default-src 'none'; style-src {}; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'",
        *CSP_STYLE
    );
    secured(HttpResponse::build(status))
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .body(html)
}

/// The headers every browser answer here carries: no framing, no sniffing,
/// no referrer, no caching.
fn secured(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    builder
}

/// The `form-action` source for a redirect URI: its origin, or its scheme
/// for a native app's private-use scheme. None for anything that isn't a
/// plain CSP source (a `;` or space would start another directive or
/// source); registration refuses such hosts, this guards older clients.
pub fn form_target(redirect_uri: &str) -> Option<String> {
    let url = url::Url::parse(redirect_uri).ok()?;
    let source = match url.origin() {
        url::Origin::Tuple(..) => url.origin().ascii_serialization(),
        url::Origin::Opaque(_) => format!("{}:", url.scheme()),
    };
    let plain = source
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.:/[]+".contains(&b));
    plain.then_some(source)
}

/// What the login page shows.
#[derive(Template)]
#[template(path = "pages/login.html")]
pub struct LoginPage<'a> {
    pub client_name: &'a str,
    pub request_id: &'a str,
    pub csrf_token: &'a str,
    pub email: Option<&'a str>,
    pub error: Option<&'a str>,
    pub form_target: Option<&'a str>,
}

pub fn login(p: LoginPage<'_>) -> HttpResponse {
    render(StatusCode::OK, &p, p.form_target)
}

/// What the consent page shows.
#[derive(Template)]
#[template(path = "pages/consent.html")]
pub struct ConsentPage<'a> {
    pub client_name: &'a str,
    pub user_email: &'a str,
    pub scope: &'a str,
    pub request_id: &'a str,
    pub csrf_token: &'a str,
    pub form_target: Option<&'a str>,
}

/// A sentence per scope, so people know what they grant.
fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are (your account id)".to_owned(),
        "email" => "See your email address".to_owned(),
        "profile" => "See your name".to_owned(),
        "roles" => "See your roles here, such as whether you are an administrator".to_owned(),
        "tessera:account" => {
            "Manage your account: your sessions, your password, signing you out".to_owned()
        }
        "tessera:admin" => "Administer this service with your administrator rights".to_owned(),
        other => format!("Use the permission “{other}”"),
    }
}

pub fn consent(p: ConsentPage<'_>) -> HttpResponse {
    render(StatusCode::OK, &p, p.form_target)
}

#[derive(Template)]
#[template(path = "pages/error.html")]
struct ErrorPage<'a> {
    message: &'a str,
}

/// An error the user must see (never redirected to an untrusted client).
pub fn error(status: StatusCode, message: &str) -> HttpResponse {
    render(status, &ErrorPage { message }, None)
}

#[derive(Template)]
#[template(path = "pages/logout_confirm.html")]
struct LogoutConfirmPage<'a> {
    hidden: &'a [(&'a str, String)],
}

/// Asks before signing out when the request can't prove it came from an
/// application the user signed in to (no valid `id_token_hint`).
pub fn logout_confirm(hidden: &[(&str, String)], form_target: Option<&str>) -> HttpResponse {
    render(StatusCode::OK, &LogoutConfirmPage { hidden }, form_target)
}

#[derive(Template)]
#[template(path = "pages/signed_out.html")]
struct SignedOutPage;

pub fn signed_out() -> HttpResponse {
    render(StatusCode::OK, &SignedOutPage, None)
}

#[derive(Template)]
#[template(path = "pages/reset_password.html")]
struct ResetPasswordPage<'a> {
    /// Where the form posts: `/account/reset` or `/account/invitation`.
    action: &'a str,
    token: &'a str,
    error: Option<&'a str>,
}

/// The form a password reset link opens, with what was wrong last time.
pub fn reset_password(status: StatusCode, token: &str, error: Option<&str>) -> HttpResponse {
    let action = "/account/reset";
    render(
        status,
        &ResetPasswordPage {
            action,
            token,
            error,
        },
        None,
    )
}

/// An invitation's page: the same form, for the first password.
pub fn accept_invitation(status: StatusCode, token: &str, error: Option<&str>) -> HttpResponse {
    let action = "/account/invitation";
    render(
        status,
        &ResetPasswordPage {
            action,
            token,
            error,
        },
        None,
    )
}

#[derive(Template)]
#[template(path = "pages/change_password.html")]
struct ChangePasswordPage<'a> {
    email: &'a str,
    error: Option<&'a str>,
}

/// The form for a new password owed before signing in: the address, the
/// current password and the new one.
pub fn change_password(status: StatusCode, email: &str, error: Option<&str>) -> HttpResponse {
    render(status, &ChangePasswordPage { email, error }, None)
}

#[derive(Template)]
#[template(path = "pages/password_set.html")]
struct PasswordSetPage;

pub fn password_set() -> HttpResponse {
    render(StatusCode::OK, &PasswordSetPage, None)
}

#[derive(Template)]
#[template(path = "pages/verify_email.html")]
struct VerifyEmailPage<'a> {
    token: &'a str,
}

/// What a verification link opens: a button, so that a mail scanner
/// fetching the link verifies nothing.
pub fn verify_email(token: &str) -> HttpResponse {
    render(StatusCode::OK, &VerifyEmailPage { token }, None)
}

#[derive(Template)]
#[template(path = "pages/email_verified.html")]
struct EmailVerifiedPage;

pub fn email_verified() -> HttpResponse {
    render(StatusCode::OK, &EmailVerifiedPage, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    const HOSTILE: &str = r#"<script>alert("x" + 'y')</script></textarea>&"#;
    const HOSTILE_ESCAPED: &str =
        "&lt;script&gt;alert(&quot;x&quot; + &#x27;y&#x27;)&lt;/script&gt;&lt;/textarea&gt;&amp;";

    fn body(response: HttpResponse) -> String {
        let bytes = response.into_body().try_into_bytes().unwrap_or_default();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn values_are_escaped_with_named_references() {
        let html = body(login(LoginPage {
            client_name: HOSTILE,
            request_id: HOSTILE,
            csrf_token: HOSTILE,
            email: Some(HOSTILE),
            error: Some(HOSTILE),
            form_target: None,
        }));
        assert_eq!(html.matches(HOSTILE_ESCAPED).count(), 5, "{html}");
        assert!(!html.contains("alert(\""), "{html}");
        let html = body(logout_confirm(&[("state", HOSTILE.to_owned())], None));
        assert!(
            html.contains(&format!("name=\"state\" value=\"{HOSTILE_ESCAPED}\"")),
            "{html}"
        );
    }

    /// The hash in the CSP is the hash of the stylesheet the page carries.
    #[test]
    fn the_csp_allows_exactly_the_inline_stylesheet() {
        let response = signed_out();
        let csp = response
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let html = body(response);
        let style = html
            .split_once("<style>")
            .and_then(|(_, rest)| rest.split_once("</style>"))
            .map(|(style, _)| style)
            .unwrap();
        let hash = STANDARD.encode(Sha256::digest(style));
        assert!(
            csp.contains(&format!("style-src 'sha256-{hash}';")),
            "{csp}"
        );
    }

    #[test]
    fn form_targets() {
        assert_eq!(
            form_target("https://app.example:8443/cb?x=1").as_deref(),
            Some("https://app.example:8443")
        );
        assert_eq!(
            form_target("com.example.app:/callback").as_deref(),
            Some("com.example.app:")
        );
        assert_eq!(
            form_target("https://[::1]:8443/cb").as_deref(),
            Some("https://[::1]:8443")
        );
        assert_eq!(form_target("https://x;script-src/cb"), None);
    }
}
