//! Throttling in the domain: the per-account lockout after consecutive
//! failed password checks ([`lockout`], kept in the database), and the
//! answer every throttle gives. The per-client-IP rate limits are an edge
//! concern, in the HTTP layer (its `throttle` module).

pub mod lockout;

use std::time::Duration;

/// A request over its limit: when to come back.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("too many requests; retry in {} s", retry_after.as_secs().max(1))]
pub struct Throttled {
    pub retry_after: Duration,
}
