//! Logs, request records and metric points, as shipped and stored.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::time::Millis;

/// A log record's severity, normalised from whatever the shipper sent.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
        }
    }

    /// Lenient: any case, and the usual synonyms (`warning`, `err`,
    /// `critical`, `fine`, ...). `None` for anything else.
    pub fn parse(text: &str) -> Option<Level> {
        match text.trim().to_ascii_uppercase().as_str() {
            "TRACE" | "FINEST" | "FINER" => Some(Level::Trace),
            "DEBUG" | "FINE" | "DBG" => Some(Level::Debug),
            "INFO" | "INFORMATION" | "NOTICE" => Some(Level::Info),
            "WARN" | "WARNING" => Some(Level::Warn),
            "ERROR" | "ERR" | "SEVERE" => Some(Level::Error),
            "FATAL" | "CRITICAL" | "CRIT" | "ALERT" | "EMERGENCY" | "PANIC" => Some(Level::Fatal),
            _ => None,
        }
    }
}

/// Where a record comes from. The environment is always known (every
/// credential belongs to one); project, integration and runtime when the
/// credential or the record names them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attribution {
    #[serde(skip)]
    pub environment_id: i64,
    pub environment: String,
    #[serde(skip)]
    pub project_id: Option<i64>,
    pub project: Option<String>,
    #[serde(skip)]
    pub integration_id: Option<i64>,
    pub integration: Option<String>,
    pub runtime_id: Option<String>,
}

/// One log record, decoded and attributed, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// The record's own time (from its time field), Unix ms.
    pub ts: Millis,
    pub level: Level,
    /// Ballerina module, logger name or OTLP scope.
    pub module: Option<String>,
    pub message: String,
    /// Every other field of the record (key-value pairs, resource attributes).
    pub attributes: Map<String, Value>,
    pub source: Attribution,
}

/// A stored log record: what queries return and the live tail sends.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLog {
    /// Its position in time order: ids order records by their own time,
    /// then arrival (see `store::telemetry`); the cursor of the log queries.
    pub id: i64,
    /// When icpd received it, Unix ms.
    pub received: Millis,
    pub record: LogRecord,
}

/// One served request, as Ballerina's observability logs it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub ts: Millis,
    pub service: String,
    pub resource: String,
    pub method: String,
    pub status: u16,
    pub duration_ms: f64,
    pub source: Attribution,
}

/// An OTLP metric data point's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    Sum,
    Gauge,
    Histogram,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Sum => "sum",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }

    pub fn parse(text: &str) -> Option<MetricKind> {
        match text {
            "sum" => Some(MetricKind::Sum),
            "gauge" => Some(MetricKind::Gauge),
            "histogram" => Some(MetricKind::Histogram),
            _ => None,
        }
    }
}

/// One OTLP data point.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub ts: Millis,
    pub name: String,
    pub kind: MetricKind,
    pub unit: Option<String>,
    /// The point's attributes (resource attributes are not repeated here).
    pub attributes: Map<String, Value>,
    /// Sums and gauges.
    pub value: Option<f64>,
    /// Histograms: count, sum, explicit bounds and per-bucket counts
    /// (`buckets.len() == bounds.len() + 1`).
    pub count: Option<u64>,
    pub sum: Option<f64>,
    pub bounds: Vec<f64>,
    pub buckets: Vec<u64>,
    pub source: Attribution,
}

/// What a log query or the live tail filters on (handles resolved to ids
/// by the caller; `None` = any).
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub environment_id: Option<i64>,
    pub project_id: Option<i64>,
    pub integration_id: Option<i64>,
    pub runtime_id: Option<String>,
    /// Empty = every level.
    pub levels: Vec<Level>,
    /// FTS5 phrase (matched as a phrase, never as FTS5 syntax).
    pub phrase: Option<String>,
    pub from: Option<Millis>,
    pub to: Option<Millis>,
}
