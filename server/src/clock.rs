//! Times as the database keeps them (unix milliseconds) and as the wire shows them (RFC 3339).

use gantry_types::Timestamp;

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn ts(ms: i64) -> Timestamp {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or(chrono::DateTime::UNIX_EPOCH)
}

pub fn opt_ts(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(ts)
}

pub fn ms_after(duration: std::time::Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}
