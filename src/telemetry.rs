//! Logging through `tracing`, to stderr (stdout is the CLI's output): human
//! text, or one JSON object per line (`log.format = "json"`) for log
//! pipelines. Nothing secret is ever logged: request lines carry method,
//! route, status, latency and request id only.
//!
//! Each request runs in a `request` span (tracing-actix-web's
//! `TracingLogger` with [`RequestSpan`]) holding its request id, so every
//! line logged while handling it carries the id: text lines as
//! `request{request_id=…}:`, JSON lines in their `spans` list.

use actix_web::HttpMessage;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing_subscriber::EnvFilter;

/// Installs the subscriber: RUST_LOG if set, else the configured filter.
pub fn init(default_filter: &str, json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            // The request span, with its request id, on every line.
            .with_span_list(true)
            .try_init()
    } else {
        builder
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init()
    };
}

/// A request id a client or proxy sent that is safe to log and echo: short
/// and plain (no log injection); else None and we make one.
pub fn accepted_request_id(sent: Option<&str>) -> Option<String> {
    sent.filter(|id| {
        (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    })
    .map(str::to_owned)
}

/// The id of a request: the one a client or proxy sent if plain, else a
/// new one. Echoed in `X-Request-Id` and carried by every log line of the
/// request.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

impl RequestId {
    /// The id [`RequestSpan`] gave the request.
    pub fn of(request: &impl HttpMessage) -> Option<RequestId> {
        request.extensions().get::<RequestId>().cloned()
    }
}

/// Opens each request's span and gives the request its [`RequestId`].
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let sent = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok());
        let id = accepted_request_id(sent).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        // At ERROR level so that no filter that lets a request's warnings
        // and errors through drops the span, and the id with it. Only the
        // id: the target's query can carry codes and tokens.
        let span = tracing::error_span!("request", request_id = %id);
        request.extensions_mut().insert(RequestId(id));
        span
    }

    // The access line (route, status, latency) is logged by the
    // middleware that also records the metrics; nothing to add here.
    fn on_request_end<B: actix_web::body::MessageBody>(
        _span: Span,
        _outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_request_ids_are_taken() {
        use super::accepted_request_id as id;
        assert_eq!(id(Some("abc-123_x.y")).as_deref(), Some("abc-123_x.y"));
        assert_eq!(id(Some("a\nb")), None);
        assert_eq!(id(Some("")), None);
        assert_eq!(id(Some(&"a".repeat(65))), None);
        assert_eq!(id(None), None);
    }
}
