//! Logging through `tracing`, to stderr (stdout is the CLI's output): human
//! text, or one JSON object per line (`log.format = "json"`) for log
//! pipelines. Nothing secret is ever logged: request lines carry method,
//! route, status, latency and request id only.

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
