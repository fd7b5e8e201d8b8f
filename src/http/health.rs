use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::openapi::InvalidText;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    status: &'static str,
}

/// What `/readyz` found: `ok` or `unavailable` for each dependency.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    status: &'static str,
    /// Not checked (absent) while shutting down.
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<&'static str>,
    /// Whether a key can sign. Not checked (absent) while shutting down.
    #[serde(skip_serializing_if = "Option::is_none")]
    keys: Option<&'static str>,
    /// Present, and true, once SIGTERM or SIGINT has begun a shutdown: the
    /// instance still serves during its drain but wants no new work.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    shutting_down: bool,
}

/// Set once a shutdown has begun: from then on `/readyz` answers 503 and
/// responses close their connections, so load balancers and kept-alive
/// clients move to other instances while this one drains.
#[derive(Clone, Debug, Default)]
pub struct ShuttingDown(Arc<AtomicBool>);

impl ShuttingDown {
    /// Marks the shutdown as begun; true if it had not been already.
    pub fn begin(&self) -> bool {
        !self.0.swap(true, Ordering::SeqCst)
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Liveness
///
/// The process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Up", body = Health), InvalidText))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Metrics
///
/// OpenMetrics 1.0 text (Prometheus scrapes it natively). No secrets, no
/// per-user labels.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "The metrics", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"), InvalidText))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let (db_connections, db_idle_connections) = state.app.db.pool_usage();
    let mut keys_by_state = std::collections::BTreeMap::new();
    for key in state.keys.listing() {
        *keys_by_state.entry(key.state).or_insert(0) += 1;
    }
    let text = state.metrics.render(&crate::metrics::Gauges {
        hash_queue_depth: state.app.hasher.queue_depth(),
        db_connections,
        db_idle_connections,
        keys_by_state,
    });
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .insert_header(("Cache-Control", "no-store"))
        .body(text)
}

/// Readiness
///
/// The service can do its work: a database connection answers and a
/// signing key is loaded. 503 otherwise, so a load balancer routes around it;
/// 503 at once, without checking either, once a shutdown has begun
/// (SIGTERM/SIGINT: the instance drains, still serving, then stops).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready; which dependency is out", body = Readiness),
        InvalidText,
    ))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.shutting_down.is_set() {
        return HttpResponse::ServiceUnavailable().json(Readiness {
            status: "unavailable",
            database: None,
            keys: None,
            shutting_down: true,
        });
    }
    let timeout = state.settings.pool_checkout_timeout() + Duration::from_secs(1);
    let database = match tokio::time::timeout(timeout, state.app.db.ping()).await {
        Ok(Ok(())) => "ok",
        _ => "unavailable",
    };
    let keys = if state.keys.view().active().is_some() {
        "ok"
    } else {
        "unavailable"
    };
    let ready = database == "ok" && keys == "ok";
    let body = Readiness {
        status: if ready { "ready" } else { "unavailable" },
        database: Some(database),
        keys: Some(keys),
        shutting_down: false,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(body)
    }
}
