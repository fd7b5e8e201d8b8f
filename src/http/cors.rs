//! CORS for the endpoints browsers' JavaScript calls (the API, the token,
//! userinfo and revocation endpoints, discovery, the JWKS and the OpenAPI
//! document): only origins listed in `cors.allowed_origins` get CORS
//! headers; nothing by default. The sign-in, consent and logout pages are
//! navigations and get none.
//!
//! actix-cors applies the policy; [`ApiCors`] puts it on those paths only,
//! leaves preflights from other origins to the routes (405, as for any
//! OPTIONS), and adds `Vary: Origin` to every response of those paths, with
//! or without an `Origin`, so a shared cache never hands one origin's
//! answer to another.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_cors::{Cors, CorsMiddleware};
use actix_web::Error;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};

/// Paths a page on another origin may call.
pub fn is_cross_origin_api(path: &str) -> bool {
    path.starts_with("/v1/")
        || path.starts_with("/.well-known/")
        || path == "/openapi.json"
        || matches!(
            path,
            "/oauth2/token" | "/oauth2/userinfo" | "/oauth2/revoke"
        )
}

/// Origins are compared as sent, byte for byte: no normalisation that
/// could let a look-alike through.
fn is_listed(allowed: &[String], origin: &HeaderValue) -> bool {
    allowed.iter().any(|a| a.as_bytes() == origin.as_bytes())
}

/// A CORS preflight (OPTIONS with Access-Control-Request-Method).
fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The policy for listed origins: the API's methods and request headers,
/// the response headers scripts may read, preflights cached 10 minutes,
/// no credentials (the API takes bearer tokens, not cookies).
fn policy(allowed: Arc<[String]>) -> Cors {
    Cors::default()
        .allowed_origin_fn(move |origin, _| is_listed(&allowed, origin))
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
            header::LOCATION,
        ])
        .max_age(600)
        // Other origins are served as if they had sent no Origin: the
        // browser withholds the answer from their scripts.
        .block_on_origin_mismatch(false)
}

/// Adds `Origin` to `Vary` unless it is there (or `*`), keeping what
/// other layers put there.
fn vary_on_origin(headers: &mut HeaderMap) {
    let varies = headers
        .get_all(header::VARY)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|v| v == "*" || v.eq_ignore_ascii_case("origin"));
    if !varies {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// The CORS middleware: the actix-cors [`policy`] on the cross-origin
/// paths, nothing elsewhere.
pub struct ApiCors {
    allowed: Arc<[String]>,
}

impl ApiCors {
    pub fn new(allowed_origins: &[String]) -> ApiCors {
        ApiCors {
            allowed: allowed_origins.into(),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for ApiCors
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<EitherBody<B>, B>>;
    type Error = Error;
    type Transform = ApiCorsMiddleware<S>;
    type InitError = ();
    type Future = Pin<Box<dyn Future<Output = Result<Self::Transform, ()>>>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let service = Rc::new(service);
        let cors = policy(self.allowed.clone()).new_transform(service.clone());
        let allowed = self.allowed.clone();
        Box::pin(async move {
            Ok(ApiCorsMiddleware {
                service,
                cors: cors.await?,
                allowed,
            })
        })
    }
}

pub struct ApiCorsMiddleware<S> {
    /// The routes, called directly off the cross-origin paths.
    service: Rc<S>,
    /// The same routes behind actix-cors.
    cors: CorsMiddleware<Rc<S>>,
    allowed: Arc<[String]>,
}

impl<S, B> Service<ServiceRequest> for ApiCorsMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<EitherBody<B>, B>>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        if !is_cross_origin_api(req.path()) {
            let response = self.service.call(req);
            return Box::pin(async move { Ok(response.await?.map_into_right_body()) });
        }
        let preflight = is_preflight(req.method(), req.headers());
        let listed = req
            .headers()
            .get(header::ORIGIN)
            .is_some_and(|origin| is_listed(&self.allowed, origin));
        if preflight && !listed {
            // Not a preflight we answer: the routes do, as for any OPTIONS.
            let response = self.service.call(req);
            return Box::pin(async move {
                let mut response = response.await?;
                vary_on_origin(response.headers_mut());
                Ok(response.map_into_right_body())
            });
        }
        let response = self.cors.call(req);
        Box::pin(async move {
            let mut response = response.await?;
            // An answered preflight has no content; actix-cors says 200.
            if preflight && response.status() == StatusCode::OK {
                *response.response_mut().status_mut() = StatusCode::NO_CONTENT;
            }
            vary_on_origin(response.headers_mut());
            Ok(response.map_into_left_body())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_is_added_to_vary_once_and_nothing_is_lost() {
        let mut headers = HeaderMap::new();
        vary_on_origin(&mut headers);
        assert_eq!(headers.get_all(header::VARY).count(), 1);
        assert_eq!(headers.get(header::VARY).unwrap(), "Origin");
        vary_on_origin(&mut headers);
        assert_eq!(headers.get_all(header::VARY).count(), 1);

        let mut headers = HeaderMap::new();
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        vary_on_origin(&mut headers);
        let values: Vec<_> = headers.get_all(header::VARY).collect();
        assert_eq!(values, ["Accept-Encoding", "Origin"]);

        let mut headers = HeaderMap::new();
        headers.insert(
            header::VARY,
            HeaderValue::from_static("origin, Access-Control-Request-Method"),
        );
        vary_on_origin(&mut headers);
        assert_eq!(headers.get_all(header::VARY).count(), 1);
    }
}
