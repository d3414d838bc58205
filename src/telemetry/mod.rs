//! Built-in observability: runtime logs, request records and OTLP metrics,
//! kept in `telemetry.db` beside `icp.db` (see ARCHITECTURE.md for why a
//! second file), or in the PostgreSQL database that holds the state, where
//! every node sharing it sees the same telemetry.
//!
//! - `ingest`: decoding what shippers send on the runtime listener
//!   (Fluent Bit, Ballerina JSON log lines, OTLP/HTTP JSON, request records)
//!   into [`LogRecord`], [`RequestRecord`] and [`MetricPoint`], attributed to
//!   a runtime and so to integration, project and environment.
//! - `query`: the read side behind `/api/v1/observability/...`: logs with
//!   filters, phrase search and cursor; request metrics per time bucket.
//! - `tail`: live log subscribers (Server-Sent Events), fed after each
//!   ingest commit and filtered per subscriber; on PostgreSQL also with
//!   what other nodes ingest.
//! - `store::telemetry` holds the SQL.
//!
//! Every function takes `now`; only the handlers and the retention loop in
//! `daemon` read the clock.

pub use crate::model::telemetry::*;

pub mod ingest;
pub mod query;
pub mod retention;
pub mod tail;

use std::sync::Arc;

use crate::store::telemetry::TelemetryStore;
use crate::time::Millis;

/// Retention limits (`[telemetry]` in icp.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Records older than this (by their own time) are deleted.
    pub max_age_ms: i64,
    /// The database is kept under this many bytes of live pages.
    pub max_bytes: u64,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            max_age_ms: 7 * 24 * 3600 * 1000,
            max_bytes: 1 << 30,
        }
    }
}

/// The telemetry side of a running server: its store and live subscribers.
pub struct Telemetry {
    pub store: Arc<TelemetryStore>,
    pub tail: Arc<tail::Tail>,
    pub retention: Retention,
}

impl Telemetry {
    /// A live-tail subscriber (see [`tail::Tail::subscribe`]) that also
    /// gets the records other nodes store when the store is shared
    /// (PostgreSQL, see [`tail::follow`]).
    pub fn subscribe(
        &self,
        user: Option<i64>,
        filter: LogFilter,
        vis: Visibility,
    ) -> crate::error::Result<std::sync::mpsc::Receiver<String>> {
        let rx = self.tail.subscribe(user, filter, vis);
        tail::follow(&self.tail, &self.store)?;
        Ok(rx)
    }
}

/// Time bounds and step of a metrics query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: Millis,
    pub to: Millis,
    pub step_ms: i64,
}

/// Visible-to-caller restriction, as ids per scope kind (see
/// `catalog::Visibility`).
pub use crate::catalog::Visibility;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_leniently() {
        assert_eq!(Level::parse("warning"), Some(Level::Warn));
        assert_eq!(Level::parse(" Error "), Some(Level::Error));
        assert_eq!(Level::parse("SEVERE"), Some(Level::Error));
        assert_eq!(Level::parse("loud"), None);
        for l in Level::ALL {
            assert_eq!(Level::parse(l.as_str()), Some(l));
        }
    }
}
