//! Prometheus metrics (`GET /metrics`, OpenMetrics text through
//! `prometheus-client`): requests and their latency per route and status,
//! logins by outcome, tokens issued by grant, and gauges read when scraped
//! (hashing queue, database pool, key states). Every label value comes from
//! a fixed set, whatever clients send: routes are the route table's patterns
//! (`/v1/admin/users/{id}`) or `unmatched`, methods the standard ones or
//! `other`, grants the known ones or `other`.
//!
//! A request is recorded without a global lock or an allocation: each
//! (route, method) pair of the route table has its own slot, built at start,
//! holding the handles of its series by status; only the first request of
//! a new (route, method, status) series creates it.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// What `/metrics` answers with: OpenMetrics 1.0 text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The `method` label values: the methods of RFC 9110 (and PATCH), then
/// `other` — any token is a valid method, and each would be a new series.
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "other",
];

/// The index of a method's label in [`METHODS`].
fn method_index(method: &str) -> usize {
    METHODS[..METHODS.len() - 1]
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len() - 1)
}

/// The `method` label: a method of RFC 9110 (or PATCH), else `other`.
pub fn method_label(method: &str) -> &'static str {
    METHODS[method_index(method)]
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

/// The `route` label of requests no route matched.
const UNMATCHED: &str = "unmatched";

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct GrantLabels {
    grant: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The handles of one (route, method, status) series: clones sharing the
/// values the registry encodes.
struct RequestSeries {
    status: u16,
    requests: Counter,
    duration: Histogram,
}

/// One (route, method) pair: its series, one per status seen.
#[derive(Default)]
struct Slot(RwLock<Vec<RequestSeries>>);

pub struct Metrics {
    registry: Registry,
    /// The `route` label values: the route table's patterns, then
    /// `unmatched`.
    routes: Vec<&'static str>,
    route_index: HashMap<&'static str, usize>,
    /// `routes.len() × METHODS.len()` slots, route-major.
    slots: Vec<Slot>,
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily<RequestLabels>,
    logins: Family<OutcomeLabels, Counter>,
    tokens: Family<GrantLabels, Counter>,
}

/// Values read at scrape time from elsewhere in the service.
pub struct Gauges {
    pub hash_queue_depth: usize,
    pub db_connections: u32,
    pub db_idle_connections: u32,
    /// Key files by state (`active`, `next`, …).
    pub keys_by_state: BTreeMap<String, usize>,
}

fn gauge(value: impl TryInto<i64>) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(value.try_into().unwrap_or(i64::MAX));
    gauge
}

impl Metrics {
    /// Metrics for a service whose routes are `routes` (method, pattern).
    pub fn new(routes: &'static [(&'static str, &'static str)]) -> Metrics {
        let mut labels: Vec<&'static str> = Vec::new();
        for (_, pattern) in routes {
            if !labels.contains(pattern) {
                labels.push(pattern);
            }
        }
        labels.push(UNMATCHED);
        let route_index = labels.iter().enumerate().map(|(i, r)| (*r, i)).collect();
        let slots = (0..labels.len() * METHODS.len())
            .map(|_| Slot::default())
            .collect();

        let requests = Family::<RequestLabels, Counter>::default();
        let durations = HistogramFamily::<RequestLabels>::new_with_constructor(latency_histogram);
        let logins = Family::<OutcomeLabels, Counter>::default();
        let tokens = Family::<GrantLabels, Counter>::default();
        let mut registry = Registry::default();
        // Counters are encoded with a `_total` suffix; the encoder ends
        // each help text with a full stop.
        registry.register(
            "tessera_http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "tessera_http_request_duration_seconds",
            "Time to answer, by route, method and status",
            durations.clone(),
        );
        registry.register(
            "tessera_logins",
            "Login attempts by outcome",
            logins.clone(),
        );
        registry.register(
            "tessera_tokens_issued",
            "Token responses by grant",
            tokens.clone(),
        );
        Metrics {
            registry,
            routes: labels,
            route_index,
            slots,
            requests,
            durations,
            logins,
            tokens,
        }
    }

    fn route_position(&self, pattern: Option<&str>) -> usize {
        pattern
            .and_then(|p| self.route_index.get(p))
            .copied()
            .unwrap_or(self.routes.len() - 1)
    }

    /// The `route` label: a pattern of the route table, else `unmatched`.
    pub fn route_label(&self, pattern: Option<&str>) -> &'static str {
        self.routes
            .get(self.route_position(pattern))
            .copied()
            .unwrap_or(UNMATCHED)
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
        let route = self.route_position(route);
        let method = method_index(method);
        let Some(slot) = self.slots.get(route * METHODS.len() + method) else {
            return;
        };
        let record = |series: &RequestSeries| {
            series.requests.inc();
            series.duration.observe(seconds);
        };
        {
            let known = slot.0.read().unwrap_or_else(|p| p.into_inner());
            if let Some(series) = known.iter().find(|s| s.status == status) {
                record(series);
                return;
            }
        }
        // The first request of this series: create it, under the slot's
        // write lock so racing requests create it once.
        let mut known = slot.0.write().unwrap_or_else(|p| p.into_inner());
        if let Some(series) = known.iter().find(|s| s.status == status) {
            record(series);
            return;
        }
        let labels = RequestLabels {
            route: self.routes.get(route).copied().unwrap_or(UNMATCHED),
            method: METHODS[method],
            status,
        };
        let series = RequestSeries {
            status,
            requests: self.requests.get_or_create(&labels).clone(),
            duration: self.durations.get_or_create(&labels).clone(),
        };
        record(&series);
        known.push(series);
    }

    /// A login attempt (JSON or sign-in page) ended with `outcome`.
    pub fn login(&self, outcome: &'static str) {
        self.logins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Tokens were issued by `grant` (login, authorization_code, …).
    pub fn token_issued(&self, grant: &str) {
        self.tokens
            .get_or_create(&GrantLabels {
                grant: grant_label(grant),
            })
            .inc();
    }

    /// Everything, in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self, gauges: &Gauges) -> String {
        // The gauges are read now, so they live in a registry of this scrape.
        let mut scraped = Registry::default();
        scraped.register(
            "tessera_password_hash_queue_depth",
            "Password hashes waiting for a hashing thread",
            gauge(gauges.hash_queue_depth),
        );
        scraped.register(
            "tessera_db_pool_connections",
            "Database connections held by the pool",
            gauge(gauges.db_connections),
        );
        scraped.register(
            "tessera_db_pool_idle_connections",
            "Idle database connections in the pool",
            gauge(gauges.db_idle_connections),
        );
        let keys = Family::<StateLabels, Gauge>::default();
        for (state, n) in &gauges.keys_by_state {
            keys.get_or_create(&StateLabels {
                state: state.clone(),
            })
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        scraped.register("tessera_signing_keys", "Key files by rotation state", keys);

        let mut out = String::new();
        // Writing to a String cannot fail, and every label value is valid.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &scraped);
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_gauges() -> Gauges {
        Gauges {
            hash_queue_depth: 0,
            db_connections: 0,
            db_idle_connections: 0,
            keys_by_state: BTreeMap::new(),
        }
    }

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
        let bucket = |le: &str, n: u64| {
            format!(
                r#"tessera_http_request_duration_seconds_bucket{{le="{le}",route="/v1/me",method="GET",status="200"}} {n}"#
            )
        };
        for (le, n) in [
            ("0.0025", 0),
            ("0.005", 1),
            ("0.05", 2),
            ("1.0", 2),
            ("+Inf", 2),
        ] {
            assert!(text.contains(&bucket(le, n)), "{le}: {text}");
        }
        assert!(text.contains(
            r#"tessera_http_request_duration_seconds_count{route="/v1/me",method="GET",status="200"} 2"#
        ), "{text}");
        assert!(text.contains(r#"tessera_logins_total{outcome="success"} 1"#));
        assert!(text.contains(r#"tessera_tokens_issued_total{grant="refresh_token"} 1"#));
        assert!(text.contains("tessera_password_hash_queue_depth 2"));
        assert!(text.contains("tessera_db_pool_idle_connections 3"));
        assert!(text.contains(r#"tessera_signing_keys{state="active"} 1"#));
        // One end marker, at the end.
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
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
        let text = m.render(&no_gauges());
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

    #[test]
    fn a_series_is_created_once_and_only_when_seen() {
        let m = Metrics::new(&[("get", "/v1/me"), ("post", "/v1/me")]);
        assert!(
            !m.render(&no_gauges())
                .contains("tessera_http_requests_total{")
        );
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for status in [200, 404, 200, 500] {
                        m.observe_request(Some("/v1/me"), "POST", status, Duration::ZERO);
                    }
                });
            }
        });
        let text = m.render(&no_gauges());
        // Family order is a hash map's: sort.
        let mut counters: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("tessera_http_requests_total{"))
            .collect();
        counters.sort_unstable();
        assert_eq!(
            counters,
            [
                r#"tessera_http_requests_total{route="/v1/me",method="POST",status="200"} 8"#,
                r#"tessera_http_requests_total{route="/v1/me",method="POST",status="404"} 4"#,
                r#"tessera_http_requests_total{route="/v1/me",method="POST",status="500"} 4"#,
            ],
            "{text}"
        );
    }
}
