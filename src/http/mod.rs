//! The HTTP surface: routes, request parsing and response shaping. Handlers
//! stay thin — parse, call the domain module, map the result; every error
//! becomes a response in [`error`].

pub(crate) mod accounts;
pub(crate) mod admin;
pub(crate) mod authorize;
pub(crate) mod bearer;
pub mod client_ip;
pub mod cors;
mod discovery;
pub mod dto;
pub mod error;
pub(crate) mod head_limit;
mod health;
pub(crate) mod oauth;
pub mod openapi;
pub(crate) mod pages;
mod recovery;
pub mod text;
pub mod throttle;

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::app::Services;
use crate::configuration::Settings;
use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::sessions::ClientInfo;

pub use bearer::{AccountBearer, AdminBearer, UserinfoBearer};
use client_ip::TrustedProxies;
pub use error::ApiError;
pub use health::ShuttingDown;
use throttle::{Class, RateLimiter, Throttled};

/// Everything a handler may need, built once at start: the operations'
/// services, and what only the HTTP surface uses.
pub struct AppState {
    pub app: Services,
    pub settings: Settings,
    /// The signing keys (the JWKS, `/readyz`, the admin key list).
    pub keys: Arc<KeyRing>,
    pub rate_limiter: Arc<RateLimiter>,
    pub trusted_proxies: TrustedProxies,
    pub metrics: Arc<Metrics>,
    /// Set by the first SIGTERM/SIGINT (the shutdown sequence in `startup`).
    pub shutting_down: ShuttingDown,
}

/// The client's IP address: the socket peer's, or what a trusted proxy
/// says it is.
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return peer;
    };
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    state.trusted_proxies.client_ip(
        peer,
        header(header::HeaderName::from_static("x-forwarded-for")),
        header(header::FORWARDED),
    )
}

/// Takes one request from the client's allowance for `class`.
pub fn throttle(req: &HttpRequest, class: Class) -> Result<(), Throttled> {
    match req.app_data::<web::Data<AppState>>() {
        Some(state) => state.rate_limiter.check(class, client_ip(req)),
        None => Ok(()),
    }
}

/// Where the request came from (the client's address, see [`client_ip`])
/// and its User-Agent.
pub fn client_info(req: &HttpRequest) -> ClientInfo {
    ClientInfo {
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        ip: client_ip(req).map(|ip| ip.to_string()),
    }
}

/// Headers every response carries: no MIME sniffing, no Referer leaving
/// with tokens or codes in URLs, HSTS when the issuer is https, and —
/// for the API and OAuth endpoints, which carry tokens and personal data —
/// no caching unless the handler said otherwise (discovery and the JWKS
/// are public and cacheable).
pub fn security_headers(path: &str, https: bool, headers: &mut header::HeaderMap) {
    use header::HeaderValue;
    let mut default = |name: header::HeaderName, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    default(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    default(header::REFERRER_POLICY, "no-referrer");
    if https {
        default(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    if path.starts_with("/v1/") || path.starts_with("/oauth2/") {
        default(header::CACHE_CONTROL, "no-store");
    }
}

/// The route table: method, path and handler of every route, in the order
/// the router tries them. It makes both the router ([`routes`]) and
/// [`ROUTES`], which the OpenAPI document is checked against, so the two
/// can't drift apart.
macro_rules! route_table {
    ($($method:ident $path:literal => $handler:path;)*) => {
        /// Every route as (method, path), paths in OpenAPI template syntax.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        /// Registers every route.
        pub fn routes(cfg: &mut web::ServiceConfig) {
            $(cfg.route($path, route_for(stringify!($method)).to($handler));)*
        }
    };
}

/// A route answering `method`; GET routes answer HEAD too (RFC 9110
/// §9.3.2: the server sends the headers only).
#[allow(
    clippy::expect_used,
    reason = "the route table is ours: its methods are known at compile time"
)]
fn route_for(method: &str) -> actix_web::Route {
    use actix_web::guard;
    match method {
        "get" => web::route().guard(guard::Any(guard::Get()).or(guard::Head())),
        other => web::route().method(
            actix_web::http::Method::from_bytes(other.to_ascii_uppercase().as_bytes())
                .expect("the route table names HTTP methods"),
        ),
    }
}

route_table! {
    get "/.well-known/openid-configuration" => discovery::openid_configuration;
    get "/.well-known/jwks.json" => discovery::jwks;
    get "/openapi.json" => openapi::document;
    post "/v1/auth/register" => accounts::register;
    post "/v1/auth/login" => accounts::login;
    post "/v1/auth/logout" => accounts::logout;
    post "/v1/auth/password-reset" => recovery::request_reset;
    post "/v1/auth/password-reset/confirm" => recovery::confirm_reset;
    post "/v1/auth/verify-email" => recovery::verify_email;
    post "/v1/auth/invitation/accept" => recovery::accept_invitation;
    post "/v1/auth/password-change" => accounts::change_owed_password;
    get "/v1/me" => accounts::me;
    patch "/v1/me" => accounts::update_me;
    delete "/v1/me" => accounts::delete_me;
    put "/v1/me/password" => accounts::change_password;
    post "/v1/me/email" => accounts::change_email;
    get "/v1/me/consents" => accounts::list_consents;
    delete "/v1/me/consents/{client_id}" => accounts::withdraw_consent;
    post "/v1/me/email-verification" => recovery::resend_verification;
    get "/v1/me/sessions" => accounts::list_sessions;
    delete "/v1/me/sessions/{id}" => accounts::end_session;
    get "/v1/admin/users" => admin::list_users;
    post "/v1/admin/users" => admin::invite_user;
    post "/v1/admin/users/{id}/password-reset" => admin::send_password_reset;
    get "/v1/admin/users/{id}" => admin::get_user;
    patch "/v1/admin/users/{id}" => admin::patch_user;
    delete "/v1/admin/users/{id}" => admin::delete_user;
    get "/v1/admin/clients" => admin::list_clients;
    post "/v1/admin/clients" => admin::create_client;
    get "/v1/admin/clients/{id}" => admin::get_client;
    delete "/v1/admin/clients/{id}" => admin::delete_client;
    get "/v1/admin/keys" => admin::list_keys;
    get "/v1/admin/audit" => admin::list_audit;
    get "/account/reset" => recovery::reset_page;
    post "/account/reset" => recovery::reset_form;
    get "/account/verify" => recovery::verify_page;
    post "/account/verify" => recovery::verify_form;
    get "/account/invitation" => recovery::invitation_page;
    post "/account/invitation" => recovery::invitation_form;
    get "/account/password" => recovery::password_page;
    post "/account/password" => recovery::password_form;
    get "/oauth2/authorize" => authorize::authorize_get;
    post "/oauth2/authorize" => authorize::authorize_post;
    get "/oauth2/logout" => authorize::logout_get;
    post "/oauth2/logout" => authorize::logout_post;
    get "/oauth2/userinfo" => oauth::userinfo;
    post "/oauth2/userinfo" => oauth::userinfo;
    post "/oauth2/token" => oauth::token;
    post "/oauth2/revoke" => oauth::revoke;
    post "/oauth2/introspect" => oauth::introspect;
    get "/metrics" => health::metrics;
    get "/healthz" => health::healthz;
    get "/readyz" => health::readyz;
}

/// Query strings that don't parse get a 400 problem.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::bad_request("invalid_query", format!("invalid query string: {err}")).into()
    })
}

/// JSON bodies: bounded in size, and every way they can be wrong gets a
/// 4xx problem saying what is wrong.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| {
            use actix_web::error::JsonPayloadError as E;
            let api = match &err {
                E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::body_too_large(),
                E::ContentType => ApiError::new(
                    actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "the request body must be application/json",
                ),
                E::Deserialize(e) => json_body_error(e),
                _ => ApiError::bad_request("malformed_body", "the request body could not be read"),
            };
            api.into()
        })
}

pub use oauth::form_config;

/// Unknown paths get a problem document too; a known path asked with a
/// method it doesn't serve gets 405 and `Allow` (RFC 9110 §15.5.6).
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    // The percent-decoded path, as the router matched it.
    let path = req.match_info().as_str();
    let mut allowed: Vec<String> = Vec::new();
    for (method, _) in ROUTES.iter().filter(|(_, t)| path_matches(t, path)) {
        allowed.push(method.to_ascii_uppercase());
        if *method == "get" {
            allowed.push("HEAD".to_owned());
        }
    }
    if !allowed.is_empty() {
        return Err(ApiError::method_not_allowed(
            req.method().as_str(),
            &allowed,
        ));
    }
    Err(ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// Whether `path` is an instance of the route `template` (`{name}` stands
/// for one non-empty segment).
fn path_matches(template: &str, path: &str) -> bool {
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(t), Some(p)) if t == p || (t.starts_with('{') && !p.is_empty()) => {}
            _ => return false,
        }
    }
}

/// A JSON request body that must be an object: serde's derived
/// deserialisers would also take a struct as an array of its fields, which
/// no client means. The object's entries go straight to `T`, so its
/// checks (repeated or unknown fields) and the error positions stay; every
/// string in it, keys too, is read through [`text::Checked`], which refuses
/// control characters (`\u0000` escapes included).
pub struct JsonObject<T>(pub T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectOnly<T>(std::marker::PhantomData<T>);

        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for ObjectOnly<T> {
            type Value = T;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(text::Wrapped(
                    map,
                )))
            }
        }

        d.deserialize_map(ObjectOnly(std::marker::PhantomData))
            .map(JsonObject)
    }
}

/// Reads a request body of at most `limit` bytes as a problem-speaking
/// handler must: more is 413 `body_too_large`.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::bad_request("malformed_body", "the request body could not be read")
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::body_too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A JSON body error as a problem: 400 when it isn't JSON or a string has
/// a control character, 422 when it is but doesn't fit.
pub fn json_body_error(e: &serde_json::Error) -> ApiError {
    if e.is_data() && e.to_string().starts_with(text::IN_JSON) {
        ApiError::bad_request("invalid_text", e.to_string())
    } else if e.is_data() {
        ApiError::unprocessable("invalid_body", e.to_string())
    } else {
        ApiError::bad_request("malformed_body", format!("malformed JSON: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::path_matches;

    #[test]
    fn templates_match_one_segment_per_parameter() {
        assert!(path_matches("/v1/me", "/v1/me"));
        assert!(path_matches("/v1/admin/users/{id}", "/v1/admin/users/abc"));
        assert!(!path_matches("/v1/admin/users/{id}", "/v1/admin/users/"));
        assert!(!path_matches("/v1/admin/users/{id}", "/v1/admin/users/a/b"));
        assert!(!path_matches("/v1/me", "/v1/me/"));
        assert!(!path_matches("/v1/me", "/v1"));
    }
}
