//! Wall-clock time as the database stores it, and its JSON form. Its own
//! module so every domain can read the time without reaching into another.

use chrono::{DateTime, NaiveDateTime, Utc};

/// Timestamps are set here rather than by the database (SQLite's clock has
/// whole seconds), truncated to the microseconds PostgreSQL keeps.
pub fn now() -> NaiveDateTime {
    let now = Utc::now();
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
