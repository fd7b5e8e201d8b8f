//! Prometheus metrics (`GET /metrics`, text format 0.0.4): requests and
//! their latency per route and status, logins by outcome, tokens issued by
//! grant, and gauges read when scraped (hashing queue, database pool, key
//! states). Every label value comes from a fixed set, whatever clients
//! send: routes are the route table's patterns (`/v1/admin/users/{id}`) or
//! `unmatched`, methods the standard ones or `other`, grants the known
//! ones or `other`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

pub struct Metrics {
    /// The route table (method, pattern): the `route` label's values.
    routes: &'static [(&'static str, &'static str)],
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), Histogram>>,
    logins: Mutex<BTreeMap<&'static str, u64>>,
    tokens: Mutex<BTreeMap<&'static str, u64>>,
}

/// The `method` label: a method of RFC 9110 (or PATCH), else `other` —
/// any token is a valid method, and each would be a new series.
pub fn method_label(method: &str) -> &'static str {
    const METHODS: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
    ];
    METHODS
        .into_iter()
        .find(|m| *m == method)
        .unwrap_or("other")
}

/// The `grant` label: the grants tokens are issued by, else `other`.
fn grant_label(grant: &str) -> &'static str {
    const GRANTS: [&str; 4] = [
        "login",
        crate::clients::AUTHORIZATION_CODE,
        crate::clients::REFRESH_TOKEN,
        crate::clients::CLIENT_CREDENTIALS,
    ];
    GRANTS.into_iter().find(|g| *g == grant).unwrap_or("other")
}

/// Values read at scrape time from elsewhere in the service.
pub struct Gauges {
    pub hash_queue_depth: usize,
    pub db_connections: u32,
    pub db_idle_connections: u32,
    /// Key files by state (`active`, `next`, …).
    pub keys_by_state: BTreeMap<String, usize>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Label values escaped as the text format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Metrics for a service whose routes are `routes` (method, pattern).
    pub fn new(routes: &'static [(&'static str, &'static str)]) -> Metrics {
        Metrics {
            routes,
            requests: Mutex::default(),
            logins: Mutex::default(),
            tokens: Mutex::default(),
        }
    }

    /// The `route` label: a pattern of the route table, else `unmatched`.
    pub fn route_label(&self, pattern: Option<&str>) -> &'static str {
        self.routes
            .iter()
            .map(|(_, path)| *path)
            .find(|path| Some(*path) == pattern)
            .unwrap_or("unmatched")
    }

    /// A request to `route` (the matched pattern, if any) answered
    /// `status`.
    pub fn observe_request(
        &self,
        route: Option<&str>,
        method: &str,
        status: u16,
        elapsed: Duration,
    ) {
        let seconds = elapsed.as_secs_f64();
        let mut requests = lock(&self.requests);
        let h = requests
            .entry((self.route_label(route), method_label(method), status))
            .or_default();
        h.count += 1;
        h.sum += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
    }

    /// A login attempt (JSON or sign-in page) ended with `outcome`.
    pub fn login(&self, outcome: &'static str) {
        *lock(&self.logins).entry(outcome).or_default() += 1;
    }

    /// Tokens were issued by `grant` (login, authorization_code, …).
    pub fn token_issued(&self, grant: &str) {
        *lock(&self.tokens).entry(grant_label(grant)).or_default() += 1;
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        out.push_str("# HELP tessera_http_requests_total HTTP requests by route, method and status.\n# TYPE tessera_http_requests_total counter\n");
        let requests = lock(&self.requests);
        for ((route, method, status), h) in requests.iter() {
            let _ = writeln!(
                out,
                "tessera_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {}",
                label(route),
                h.count
            );
        }
        out.push_str("# HELP tessera_http_request_duration_seconds Time to answer, by route, method and status.\n# TYPE tessera_http_request_duration_seconds histogram\n");
        for ((route, method, status), h) in requests.iter() {
            let labels = format!(
                "route=\"{}\",method=\"{method}\",status=\"{status}\"",
                label(route)
            );
            for (bound, count) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "tessera_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "tessera_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\ntessera_http_request_duration_seconds_sum{{{labels}}} {}\ntessera_http_request_duration_seconds_count{{{labels}}} {}",
                h.count, h.sum, h.count
            );
        }
        drop(requests);
        out.push_str("# HELP tessera_logins_total Login attempts by outcome.\n# TYPE tessera_logins_total counter\n");
        for (outcome, n) in lock(&self.logins).iter() {
            let _ = writeln!(out, "tessera_logins_total{{outcome=\"{outcome}\"}} {n}");
        }
        out.push_str("# HELP tessera_tokens_issued_total Token responses by grant.\n# TYPE tessera_tokens_issued_total counter\n");
        for (grant, n) in lock(&self.tokens).iter() {
            let _ = writeln!(
                out,
                "tessera_tokens_issued_total{{grant=\"{}\"}} {n}",
                label(grant)
            );
        }
        let _ = write!(
            out,
            "# HELP tessera_password_hash_queue_depth Password hashes waiting for a hashing thread.\n# TYPE tessera_password_hash_queue_depth gauge\ntessera_password_hash_queue_depth {}\n\
             # HELP tessera_db_pool_connections Database connections held by the pool.\n# TYPE tessera_db_pool_connections gauge\ntessera_db_pool_connections {}\n\
             # HELP tessera_db_pool_idle_connections Idle database connections in the pool.\n# TYPE tessera_db_pool_idle_connections gauge\ntessera_db_pool_idle_connections {}\n\
             # HELP tessera_signing_keys Key files by rotation state.\n# TYPE tessera_signing_keys gauge\n",
            gauges.hash_queue_depth, gauges.db_connections, gauges.db_idle_connections
        );
        for (state, n) in &gauges.keys_by_state {
            let _ = writeln!(
                out,
                "tessera_signing_keys{{state=\"{}\"}} {n}",
                label(state)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::new(&[("get", "/v1/me")]);
        m.observe_request(Some("/v1/me"), "GET", 200, Duration::from_millis(3));
        m.observe_request(Some("/v1/me"), "GET", 200, Duration::from_millis(30));
        m.login("success");
        m.token_issued("refresh_token");
        let text = m.render(&Gauges {
            hash_queue_depth: 2,
            db_connections: 4,
            db_idle_connections: 3,
            keys_by_state: BTreeMap::from([("active".to_owned(), 1)]),
        });
        assert!(text.contains(
            r#"tessera_http_requests_total{route="/v1/me",method="GET",status="200"} 2"#
        ));
        assert!(text.contains(r#"le="0.005"} 1"#), "{text}");
        assert!(text.contains(r#"le="0.05"} 2"#), "{text}");
        assert!(text.contains(r#"le="+Inf"} 2"#), "{text}");
        assert!(text.contains(r#"tessera_logins_total{outcome="success"} 1"#));
        assert!(text.contains(r#"tessera_tokens_issued_total{grant="refresh_token"} 1"#));
        assert!(text.contains("tessera_password_hash_queue_depth 2"));
        assert!(text.contains(r#"tessera_signing_keys{state="active"} 1"#));
    }

    #[test]
    fn labels_come_from_fixed_sets() {
        let m = Metrics::new(&[("get", "/v1/me")]);
        for method in ["XAQGESKC", "get", "PROPFIND", "GET\n"] {
            m.observe_request(Some("/v1/me"), method, 405, Duration::ZERO);
        }
        m.observe_request(Some("/made/up/{x}"), "GET", 404, Duration::ZERO);
        m.observe_request(None, "GET", 404, Duration::ZERO);
        m.token_issued("urn:made:up");
        let text = m.render(&Gauges {
            hash_queue_depth: 0,
            db_connections: 0,
            db_idle_connections: 0,
            keys_by_state: BTreeMap::new(),
        });
        assert!(
            text.contains(
                r#"tessera_http_requests_total{route="/v1/me",method="other",status="405"} 4"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"tessera_http_requests_total{route="unmatched",method="GET",status="404"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"tessera_tokens_issued_total{grant="other"} 1"#),
            "{text}"
        );
        assert!(
            !text.contains("XAQGESKC") && !text.contains("made"),
            "{text}"
        );
    }
}
