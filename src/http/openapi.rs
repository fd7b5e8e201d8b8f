//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the
//! handlers' `#[utoipa::path]` attributes and the request and response
//! types they name. Every route in [`super::ROUTES`] is in it (a test
//! checks both ways), and the tests check real answers against it.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use actix_web::http::header;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

use super::error::Problem;
use super::{accounts, admin, authorize, discovery, health, oauth, recovery};

/// The media type of `/v1` errors (RFC 9457).
pub const PROBLEM: &str = "application/problem+json";

/// What every operation behind a bearer token may answer besides its own.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BearerErrors {
    /// No valid access token
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem<'static>),
    /// The token may not do this: it lacks the operation's scope
    /// (`insufficient_scope`), is for another resource (`wrong_audience`) or
    /// is not a user's (`user_token_required`)
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem<'static>),
    /// Database unavailable; retry after `Retry-After`
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem<'static>),
}

/// What every operation may answer: `/v1` or not, a path or query with a
/// control character is refused before routing (`invalid_text`).
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum InvalidText {
    /// A control character (U+0000–U+001F, U+007F–U+009F) in the path or the query (`invalid_text`)
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem<'static>),
}

/// What every `/v1/admin` operation may answer besides its own.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum AdminErrors {
    /// No valid access token
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem<'static>),
    /// Not an administrator: the token lacks the `tessera:admin` scope or is
    /// not a user's, or the user does not hold the admin role now
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem<'static>),
    /// Database unavailable; retry after `Retry-After`
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem<'static>),
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera",
        description = "Authentication service: accounts, RS256 access tokens and their JWKS, \
            OAuth 2.0 and OpenID Connect. `/v1` errors are RFC 9457 problem documents with a \
            stable `code`; `/oauth2` JSON errors are RFC 6749 §5.2 objects.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        discovery::openid_configuration,
        discovery::jwks,
        document,
        accounts::register,
        accounts::login,
        accounts::logout,
        accounts::me,
        accounts::change_password,
        accounts::list_sessions,
        accounts::end_session,
        accounts::change_owed_password,
        accounts::update_me,
        accounts::delete_me,
        accounts::change_email,
        accounts::list_consents,
        accounts::withdraw_consent,
        recovery::request_reset,
        recovery::confirm_reset,
        recovery::reset_page,
        recovery::reset_form,
        recovery::verify_email,
        recovery::resend_verification,
        recovery::verify_page,
        recovery::verify_form,
        recovery::accept_invitation,
        recovery::invitation_page,
        recovery::invitation_form,
        recovery::password_page,
        recovery::password_form,
        admin::list_users,
        admin::get_user,
        admin::patch_user,
        admin::delete_user,
        admin::invite_user,
        admin::send_password_reset,
        admin::list_clients,
        admin::create_client,
        admin::get_client,
        admin::delete_client,
        admin::list_keys,
        admin::list_audit,
        authorize::authorize_get,
        authorize::authorize_post,
        authorize::logout_get,
        authorize::logout_post,
        oauth::userinfo,
        oauth::token,
        oauth::revoke,
        oauth::introspect,
        health::metrics,
        health::healthz,
        health::readyz,
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "accounts", description = "Register, log in, sessions (first-party clients)"),
        (name = "oauth2", description = "Token, revocation, introspection, userinfo"),
        (name = "oidc", description = "Browser sign-in and sign-out (single sign-on)"),
        (name = "discovery", description = "Provider metadata and signing keys"),
        (name = "admin", description = "For users with the `admin` role"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// `bearer`: an access token; `client`: a client's id and secret by HTTP
/// Basic (RFC 6749 §2.3.1; `client_secret_post` is in the forms).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".to_owned());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        components.add_security_scheme(
            "client",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// The document as served: rendered once per process (it depends on
/// nothing but the code).
#[allow(clippy::expect_used, reason = "the document is ours and serialises")]
pub fn rendered() -> &'static [u8] {
    static RENDERED: OnceLock<Vec<u8>> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        serde_json::to_vec(&doc).expect("the OpenAPI document serialises")
    })
}

/// This document
///
/// OpenAPI 3.1, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object), InvalidText))]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(rendered())
}
