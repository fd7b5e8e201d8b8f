//! Where "now" comes from: the system clock in the service, a clock a test
//! moves in tests. Every domain reads the time through the [`Clock`] it was
//! given (the database handle carries one), never from the system directly,
//! so tests move time instead of sleeping.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};

/// A source of the current time.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The system's clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// `clock`'s time as the database stores it: set here rather than by the
/// database (SQLite's clock has whole seconds), truncated to the
/// microseconds PostgreSQL keeps.
pub fn stored_now(clock: &Clock) -> NaiveDateTime {
    let now = clock();
    DateTime::from_timestamp_micros(now.timestamp_micros())
        .unwrap_or(now)
        .naive_utc()
}

/// Serialises a stored (UTC) timestamp as RFC 3339, to the second.
pub fn rfc3339<S: serde::Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(
        &t.and_utc()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}
