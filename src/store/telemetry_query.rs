//! The read side of `telemetry.db`: log queries and request-metric reads
//! (see `store::telemetry` for the schema).

#[allow(unused_imports)]
use super::telemetry::TelemetryStore;
