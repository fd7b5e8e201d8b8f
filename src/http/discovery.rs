use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::AppState;

/// OpenID Connect Discovery 1.0 / RFC 8414 metadata.
pub async fn openid_configuration(state: web::Data<AppState>) -> HttpResponse {
    let s = &state.settings;
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={}", s.keys.jwks_max_age_seconds)))
        .json(json!({
            "issuer": s.issuer,
            "authorization_endpoint": format!("{}/oauth2/authorize", s.issuer),
            "token_endpoint": format!("{}/oauth2/token", s.issuer),
            "userinfo_endpoint": format!("{}/oauth2/userinfo", s.issuer),
            "end_session_endpoint": format!("{}/oauth2/logout", s.issuer),
            "revocation_endpoint": format!("{}/oauth2/revoke", s.issuer),
            "introspection_endpoint": format!("{}/oauth2/introspect", s.issuer),
            "jwks_uri": s.jwks_uri(),
            "scopes_supported": ["openid", "profile", "email"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "prompt_values_supported": ["none", "login", "consent", "select_account"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid",
                "email", "email_verified", "name",
            ],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "require_request_uri_registration": false,
            "authorization_response_iss_parameter_supported": true,
            "frontchannel_logout_supported": false,
            "backchannel_logout_supported": false,
        }))
}

/// The published keys, rendered when they change; cacheable, with an ETag
/// so a revalidation costs a 304 and no body.
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
