//! Request heads over `server.max_request_head_bytes` get 431 (RFC 6585).
//!
//! actix-http reads an HTTP/1 head of up to 128 KiB (its fixed buffer) and
//! has no setting for less, so the limit is applied to the head it parsed,
//! before any handler; what an unfinished head can hold is bounded by that
//! buffer times the connections a worker accepts
//! (`server.max_connections_per_worker`; README "Connection limits").

use actix_web::HttpResponse;
use actix_web::ResponseError;
use actix_web::dev::ServiceRequest;
use actix_web::http::StatusCode;

use crate::http::ApiError;

/// A 431 for a request whose head measures more than `limit` bytes.
pub fn refusal(req: &ServiceRequest, limit: usize) -> Option<HttpResponse> {
    if head_size(req) <= limit {
        return None;
    }
    let error = ApiError::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request_head_too_large",
        format!("the request line and headers must fit in {limit} bytes"),
    );
    Some(error.error_response())
}

/// The head as HTTP/1.1 carries it: request line, each header as
/// `name: value\r\n`, the blank line (HTTP/2 heads are measured the same).
fn head_size(req: &ServiceRequest) -> usize {
    let target = req.uri().to_string().len();
    let line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + headers + 2
}
