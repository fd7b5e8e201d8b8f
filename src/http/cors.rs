//! CORS for the endpoints browsers' JavaScript calls (the API, the token,
//! userinfo and revocation endpoints, discovery, the JWKS and the OpenAPI
//! document): only origins
//! listed in `cors.allowed_origins` get CORS headers; nothing by default.
//! The sign-in, consent and logout pages are navigations and get none.

use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};

/// Paths a page on another origin may call.
fn is_cross_origin_api(path: &str) -> bool {
    path.starts_with("/v1/")
        || path.starts_with("/.well-known/")
        || path == "/openapi.json"
        || matches!(
            path,
            "/oauth2/token" | "/oauth2/userinfo" | "/oauth2/revoke"
        )
}

/// The origin of a request from an allowed origin to a CORS path.
pub fn allowed_origin(allowed: &[String], path: &str, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let listed = allowed.iter().any(|a| a.as_bytes() == origin.as_bytes());
    (listed && is_cross_origin_api(path)).then(|| origin.clone())
}

/// A CORS preflight (OPTIONS with Access-Control-Request-Method).
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to an allowed preflight.
pub fn preflight(origin: HeaderValue) -> HttpResponse {
    HttpResponse::build(StatusCode::NO_CONTENT)
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_METHODS,
            "GET, POST, PUT, PATCH, DELETE",
        ))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "authorization, content-type",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
        .insert_header((header::VARY, "Origin"))
        .finish()
}

/// CORS headers on an actual response to an allowed origin.
pub fn decorate(origin: HeaderValue, headers: &mut HeaderMap) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("www-authenticate, retry-after, location"),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}
