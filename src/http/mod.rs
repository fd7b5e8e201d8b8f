//! The HTTP surface: routes, request parsing and response shaping. Handlers
//! stay thin — parse, call the domain module, map the result; every error
//! becomes a response in [`error`].

mod accounts;
mod admin;
mod authorize;
mod bearer;
pub mod cors;
mod discovery;
pub mod error;
mod health;
mod oauth;
mod pages;

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::accounts::PasswordHasher;
use crate::configuration::Settings;
use crate::db::Db;
use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::oauth::Issuance;
use crate::sessions::{ClientInfo, SessionPolicy};
use crate::sso::SsoPolicy;
use crate::throttle::lockout::{LockoutPolicy, LoginError};
use crate::throttle::{Class, RateLimiter, Throttled, TrustedProxies};
use crate::tokens::{TokenIssuer, TokenVerifier};

pub use bearer::Authenticated;
pub use error::ApiError;

/// Everything a handler may need, built once at start.
pub struct AppState {
    pub settings: Settings,
    pub db: Db,
    pub hasher: PasswordHasher,
    pub keys: Arc<KeyRing>,
    pub issuer: TokenIssuer,
    pub verifier: TokenVerifier,
    pub sessions: SessionPolicy,
    pub sso: SsoPolicy,
    pub rate_limiter: RateLimiter,
    pub lockout: LockoutPolicy,
    pub trusted_proxies: TrustedProxies,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// How tokens for first-party and OAuth grants are issued.
    pub fn issuance(&self) -> Issuance<'_> {
        Issuance {
            issuer: &self.issuer,
            audience: &self.settings.tokens.audience,
            login_client_id: &self.settings.login.client_id,
        }
    }
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

/// How a login attempt ended, for the metrics.
pub fn login_outcome<T>(result: &Result<T, LoginError>) -> &'static str {
    use crate::accounts::{AccountError, HashError};
    match result {
        Ok(_) => "success",
        Err(LoginError::Locked(_)) => "locked",
        Err(LoginError::Account(AccountError::InvalidCredentials)) => "invalid_credentials",
        Err(LoginError::Account(AccountError::Disabled)) => "disabled",
        Err(LoginError::Account(AccountError::Hashing(HashError::Busy))) => "busy",
        Err(_) => "error",
    }
}

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/.well-known")
            .route(
                "/openid-configuration",
                web::get().to(discovery::openid_configuration),
            )
            .route("/jwks.json", web::get().to(discovery::jwks)),
    )
    .service(
        web::scope("/v1")
            .route("/auth/register", web::post().to(accounts::register))
            .route("/auth/login", web::post().to(accounts::login))
            .route("/auth/logout", web::post().to(accounts::logout))
            .route("/me", web::get().to(accounts::me))
            .route("/me/password", web::put().to(accounts::change_password))
            .route("/me/sessions", web::get().to(accounts::list_sessions))
            .route("/me/sessions/{id}", web::delete().to(accounts::end_session))
            .route("/admin/users", web::get().to(admin::list_users))
            .route("/admin/users/{id}", web::get().to(admin::get_user))
            .route("/admin/users/{id}", web::patch().to(admin::patch_user))
            .route("/admin/users/{id}", web::delete().to(admin::delete_user))
            .route("/admin/clients", web::get().to(admin::list_clients))
            .route("/admin/clients", web::post().to(admin::create_client))
            .route("/admin/clients/{id}", web::get().to(admin::get_client))
            .route("/admin/keys", web::get().to(admin::list_keys))
            .route("/admin/audit", web::get().to(admin::list_audit))
            .route(
                "/admin/clients/{id}",
                web::delete().to(admin::delete_client),
            ),
    )
    .service(
        web::scope("/oauth2")
            .route("/authorize", web::get().to(authorize::authorize_get))
            .route("/authorize", web::post().to(authorize::authorize_post))
            .route("/logout", web::get().to(authorize::logout))
            .route("/logout", web::post().to(authorize::logout))
            .route("/userinfo", web::get().to(oauth::userinfo))
            .route("/userinfo", web::post().to(oauth::userinfo))
            .route("/token", web::post().to(oauth::token))
            .route("/revoke", web::post().to(oauth::revoke))
            .route("/introspect", web::post().to(oauth::introspect)),
    )
    .route("/metrics", web::get().to(health::metrics))
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz));
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
                E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::new(
                    actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is too large",
                ),
                E::ContentType => ApiError::new(
                    actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "the request body must be application/json",
                ),
                E::Deserialize(e) if e.is_data() => {
                    ApiError::unprocessable("invalid_body", e.to_string())
                }
                E::Deserialize(e) => {
                    ApiError::bad_request("malformed_body", format!("malformed JSON: {e}"))
                }
                _ => ApiError::bad_request("malformed_body", "the request body could not be read"),
            };
            api.into()
        })
}

pub use oauth::form_config;

/// Unknown paths get a problem document too.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}
