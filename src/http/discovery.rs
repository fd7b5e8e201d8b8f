use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::dto::JwkSet;
use super::openapi::InvalidText;
use crate::configuration::Settings;
use crate::tokens::scopes;

/// OpenID Connect Discovery 1.0 §3 / RFC 8414 §2 provider metadata.
#[derive(Serialize, ToSchema)]
pub struct ProviderMetadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    end_session_endpoint: String,
    revocation_endpoint: String,
    introspection_endpoint: String,
    jwks_uri: String,
    scopes_supported: &'static [&'static str],
    response_types_supported: &'static [&'static str],
    response_modes_supported: &'static [&'static str],
    grant_types_supported: &'static [&'static str],
    code_challenge_methods_supported: &'static [&'static str],
    prompt_values_supported: &'static [&'static str],
    token_endpoint_auth_methods_supported: &'static [&'static str],
    revocation_endpoint_auth_methods_supported: &'static [&'static str],
    introspection_endpoint_auth_methods_supported: &'static [&'static str],
    subject_types_supported: &'static [&'static str],
    id_token_signing_alg_values_supported: &'static [&'static str],
    claims_supported: &'static [&'static str],
    claims_parameter_supported: bool,
    request_parameter_supported: bool,
    request_uri_parameter_supported: bool,
    require_request_uri_registration: bool,
    authorization_response_iss_parameter_supported: bool,
    frontchannel_logout_supported: bool,
    backchannel_logout_supported: bool,
}

/// The provider's metadata
///
/// OpenID Connect Discovery 1.0 / RFC 8414. Cacheable.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "discovery",
    responses((status = 200, description = "The metadata", body = ProviderMetadata), InvalidText))]
pub async fn openid_configuration(state: web::Data<AppState>) -> HttpResponse {
    let s = &state.settings;
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={}", s.keys.jwks_max_age_seconds),
        ))
        .json(ProviderMetadata::of(s))
}

impl ProviderMetadata {
    fn of(s: &Settings) -> ProviderMetadata {
        let endpoint = |path: &str| format!("{}{path}", s.issuer);
        let client_auth = &["client_secret_basic", "client_secret_post", "none"];
        ProviderMetadata {
            issuer: s.issuer.clone(),
            authorization_endpoint: endpoint("/oauth2/authorize"),
            token_endpoint: endpoint("/oauth2/token"),
            userinfo_endpoint: endpoint("/oauth2/userinfo"),
            end_session_endpoint: endpoint("/oauth2/logout"),
            revocation_endpoint: endpoint("/oauth2/revoke"),
            introspection_endpoint: endpoint("/oauth2/introspect"),
            jwks_uri: s.jwks_uri(),
            scopes_supported: &[
                "openid",
                "profile",
                "email",
                scopes::ROLES,
                scopes::ACCOUNT,
                scopes::ADMIN,
            ],
            response_types_supported: &["code"],
            response_modes_supported: &["query"],
            grant_types_supported: &["authorization_code", "refresh_token", "client_credentials"],
            code_challenge_methods_supported: &["S256"],
            prompt_values_supported: &["none", "login", "consent", "select_account"],
            token_endpoint_auth_methods_supported: client_auth,
            revocation_endpoint_auth_methods_supported: client_auth,
            introspection_endpoint_auth_methods_supported: &[
                "client_secret_basic",
                "client_secret_post",
            ],
            subject_types_supported: &["public"],
            id_token_signing_alg_values_supported: &["RS256"],
            claims_supported: &[
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "at_hash",
                "sid",
                "email",
                "email_verified",
                "name",
            ],
            claims_parameter_supported: false,
            request_parameter_supported: false,
            request_uri_parameter_supported: false,
            require_request_uri_registration: false,
            authorization_response_iss_parameter_supported: true,
            frontchannel_logout_supported: false,
            backchannel_logout_supported: false,
        }
    }
}

/// The published keys
///
/// Rendered when they change; cacheable, with an ETag so a revalidation
/// costs a 304 and no body.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "discovery",
    params(("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer")),
    responses(
        (status = 200, description = "The public keys", body = JwkSet,
            headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "Unchanged since the ETag"),
        InvalidText,
    ))]
pub async fn jwks(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let view = state.keys.view();
    let jwks = view.jwks();
    let cache_control = format!(
        "public, max-age={}",
        state.settings.keys.jwks_max_age_seconds
    );
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == jwks.etag || t.trim() == "*")
        });
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((header::ETAG, jwks.etag.clone()));
    if not_modified {
        response.finish()
    } else {
        response
            .content_type("application/json")
            .body(actix_web::web::Bytes::copy_from_slice(&jwks.body))
    }
}
