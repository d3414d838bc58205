//! Time as icpd stores it: Unix milliseconds, UTC.
//!
//! Domain functions take `now` as a parameter; only the edges (server loops,
//! CLI) call [`now_millis`]. Output to people and JSON is RFC 3339.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// The wall clock, in milliseconds.
pub fn now_millis() -> Millis {
    Utc::now().timestamp_millis()
}

/// `2026-11-23T12:00:00.123Z`.
pub fn rfc3339(ms: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// Serde helper: a `Millis` field as RFC 3339.
pub fn serialize_rfc3339<S: serde::Serializer>(ms: &Millis, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

/// Serde helper: an optional `Millis` field as RFC 3339 or null.
pub fn serialize_opt_rfc3339<S: serde::Serializer>(
    ms: &Option<Millis>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&rfc3339(*ms)),
        None => s.serialize_none(),
    }
}

/// "4s ago", "3m ago", "2h ago", "5d ago": for tables printed to people.
pub fn ago(then: Millis, now: Millis) -> String {
    let s = (now - then).max(0) / 1000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rfc3339(1_795_348_800_123), "2026-11-22T12:00:00.123Z");
        assert_eq!(ago(0, 4_000), "4s ago");
        assert_eq!(ago(0, 7_200_000), "2h ago");
    }
}
