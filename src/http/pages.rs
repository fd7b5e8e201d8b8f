//! The few HTML pages a browser sees: sign-in, consent, sign-out and errors.
//! Server-rendered, no JavaScript, every value escaped; served with a strict
//! Content-Security-Policy (the one stylesheet is allowed by its hash) and
//! no framing, so the login form can't be clickjacked.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

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

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// A page: status, title, body (already escaped), and the origin forms on it
/// may end up redirected to (the client's), for `form-action`.
pub fn page(
    status: StatusCode,
    title: &str,
    body: &str,
    form_target: Option<&str>,
) -> HttpResponse {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><main>{body}</main></body></html>\n",
        title = escape(title),
    );
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
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .body(html)
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

/// The hidden fields that carry a sign-in in progress.
fn pending_fields(request_id: &str, csrf_token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"request_id\" value=\"{}\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{}\">",
        escape(request_id),
        escape(csrf_token)
    )
}

fn error_paragraph(error: Option<&str>) -> String {
    error
        .map(|e| {
            format!(
                "<p class=\"error\" id=\"error\" role=\"alert\">{}</p>",
                escape(e)
            )
        })
        .unwrap_or_default()
}

/// What the login page shows.
pub struct LoginPage<'a> {
    pub client_name: &'a str,
    pub request_id: &'a str,
    pub csrf_token: &'a str,
    pub email: Option<&'a str>,
    pub error: Option<&'a str>,
    pub form_target: Option<&'a str>,
}

pub fn login(p: LoginPage<'_>) -> HttpResponse {
    let body = format!(
        "<h1>Sign in to continue to {client}</h1>{error}\
         <form method=\"post\" action=\"/oauth2/authorize\">{pending}\
         <label for=\"email\">Email</label>\
         <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required autofocus value=\"{email}\">\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\" id=\"sign-in\" name=\"action\" value=\"login\">Sign in</button>\
         </form>",
        client = escape(p.client_name),
        error = error_paragraph(p.error),
        pending = pending_fields(p.request_id, p.csrf_token),
        email = escape(p.email.unwrap_or_default()),
    );
    page(StatusCode::OK, "Sign in", &body, p.form_target)
}

/// What the consent page shows.
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
    let scopes: String = p
        .scope
        .split_ascii_whitespace()
        .map(|s| {
            format!(
                "<li>{} <code>{}</code></li>",
                escape(&describe_scope(s)),
                escape(s)
            )
        })
        .collect();
    let body = format!(
        "<h1>{client} wants to access your account</h1>\
         <p>Signed in as <strong>{user}</strong>. {client} asks to:</p><ul id=\"scopes\">{scopes}</ul>\
         <form method=\"post\" action=\"/oauth2/authorize\">{pending}\
         <input type=\"hidden\" name=\"action\" value=\"consent\">\
         <button type=\"submit\" id=\"allow\" name=\"decision\" value=\"allow\">Allow</button>\
         <button type=\"submit\" id=\"deny\" class=\"secondary\" name=\"decision\" value=\"deny\">Deny</button>\
         </form>",
        client = escape(p.client_name),
        user = escape(p.user_email),
        pending = pending_fields(p.request_id, p.csrf_token),
    );
    page(StatusCode::OK, "Allow access", &body, p.form_target)
}

/// An error the user must see (never redirected to an untrusted client).
pub fn error(status: StatusCode, message: &str) -> HttpResponse {
    let body = format!(
        "<h1>Sign-in cannot continue</h1>{}<p>Return to the application you came from and try again.</p>",
        error_paragraph(Some(message))
    );
    page(status, "Sign-in error", &body, None)
}

/// Asks before signing out when the request can't prove it came from an
/// application the user signed in to (no valid `id_token_hint`).
pub fn logout_confirm(hidden: &[(&str, String)], form_target: Option<&str>) -> HttpResponse {
    let fields: String = hidden
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(name),
                escape(value)
            )
        })
        .collect();
    let body = format!(
        "<h1>Sign out?</h1><p>Do you want to sign out of every application you signed in to here?</p>\
         <form method=\"post\" action=\"/oauth2/logout\">{fields}\
         <button type=\"submit\" id=\"sign-out\">Sign out</button></form>"
    );
    page(StatusCode::OK, "Sign out", &body, form_target)
}

pub fn signed_out() -> HttpResponse {
    page(
        StatusCode::OK,
        "Signed out",
        "<h1>You are signed out</h1><p>You can close this window.</p>",
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>"a"&'b'</script>"#),
            "&lt;script&gt;&quot;a&quot;&amp;&#x27;b&#x27;&lt;/script&gt;"
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
