//! The filters and rows of the telemetry queries.

use super::catalog::Visibility;
use super::telemetry::LogFilter;
use crate::error::{Error, Result};
use crate::time::Millis;

/// Scope filters resolved to ids (`None` = any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeIds {
    pub environment_id: Option<i64>,
    pub project_id: Option<i64>,
    pub integration_id: Option<i64>,
    pub runtime_id: Option<String>,
}

/// Log order: by the records' own time (then id), newest (the default) or
/// oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    #[default]
    Newest,
    Oldest,
}

impl Order {
    /// `desc` | `asc`.
    pub fn parse(text: &str) -> Result<Order> {
        match text.trim().to_ascii_lowercase().as_str() {
            "desc" => Ok(Order::Newest),
            "asc" => Ok(Order::Oldest),
            _ => Err(Error::BadRequest(format!(
                "order '{text}' must be desc (newest first) or asc"
            ))),
        }
    }
}

/// One read of log records, as the store runs it.
#[derive(Debug, Clone)]
pub struct LogSelect<'a> {
    pub filter: &'a LogFilter,
    pub vis: &'a Visibility,
    pub order: Order,
    /// Continue after the record with this id (in `order`): ids order
    /// records by (time, arrival), so the id is the record's position.
    pub after: Option<i64>,
    pub limit: i64,
}

/// What the store reads request records by.
#[derive(Debug, Clone)]
pub struct RequestFilter {
    pub scope: ScopeIds,
    pub service: Option<String>,
    pub resource: Option<String>,
    pub from: Millis,
    pub to: Millis,
}

/// One request record as the store hands it over (borrowed from the row).
#[derive(Debug, Clone, Copy)]
pub struct RequestRow<'r> {
    pub ts: Millis,
    pub service: &'r str,
    pub resource: &'r str,
    pub method: &'r str,
    pub status: i64,
    pub duration_ms: f64,
}

/// What the store reads OTLP points by.
#[derive(Debug, Clone)]
pub struct PointFilter {
    pub scope: ScopeIds,
    pub name: String,
    pub from: Millis,
    pub to: Millis,
}
