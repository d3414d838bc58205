//! The read side behind `/api/v1/observability/...`: logs with filters,
//! phrase search and a cursor, their download, request metrics per time
//! bucket, and OTLP points.
//!
//! Who sees what: a caller needs `observability:view` somewhere (403
//! otherwise) and sees the records of the environments, projects and
//! integrations it holds it on ([`Visibility`]), filtered in SQL. A record
//! without a project or integration (an ingest token scoped to an
//! environment, a runtime icpd does not know) is visible only through an
//! organization or environment grant. Handles in filters resolve to ids
//! through the catalog; a handle that names nothing matches nothing (an
//! empty page, as the runtime and secret lists do).
//!
//! Logs are ordered by each record's own time, newest first (`desc`, the
//! default) or oldest first (`asc`), whenever they arrived; records of the
//! same millisecond by id, which rises with arrival (the store makes the
//! id the keyset itself: see `store::telemetry`). A page holds the first
//! `limit` records after the cursor in that order, the cursor naming the
//! position (time, id) of the last record handed out (opaque to clients).
//! So under ties and late arrivals alike:
//! - no record is in two pages of one paging, and none that was stored
//!   when the paging began is left out;
//! - a record stored during a paging (a late batch, with times among those
//!   already paged) is in a later page exactly when its position lies
//!   beyond the cursor: newest first, when it is older than the last record
//!   handed out; oldest first, when it is newer, or of the same millisecond
//!   (it arrived later, so its id is higher). One whose position the paging
//!   has passed is in none of its pages: a new query, or the live tail
//!   (which sends records as they are stored), shows it.
//!
//! Downloads read their pages the same way. `from`/`to` bound each
//! record's own time, `from` inclusive and `to` exclusive. Request metrics read the window's records
//! once and bucket them here: counts, 4xx and 5xx error counts and rates,
//! mean and nearest-rank percentiles (the ⌈q·n⌉-th smallest response time),
//! per bucket and over the window, every bucket present.

pub use crate::model::telemetry_query::*;

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{Attribution, Level, LogFilter, MetricPoint, StoredLog, Window};
use crate::access::{Permission, Principal};
use crate::catalog::{bad_cursor, normalize_handle, Visibility};
use crate::error::{Error, Result};
use crate::store::telemetry::TelemetryStore;
use crate::store::Store;
use crate::time::{rfc3339, Millis};

/// Log records per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: i64 = 100;
/// The largest `limit` of a log page.
pub const MAX_LIMIT: i64 = 500;
/// The most records one download holds.
pub const DOWNLOAD_LIMIT: i64 = 100_000;
/// Records read per query while building a download, so the reader
/// connection is free for other queries in between.
const DOWNLOAD_PAGE: i64 = 5_000;
/// A download stops after the record that takes it past this size (records
/// may carry 32 KiB messages and 256 KiB of attributes each).
pub const DOWNLOAD_MAX_BYTES: usize = 64 << 20;
/// The default metrics window: the last hour.
pub const DEFAULT_WINDOW_MS: i64 = 3_600_000;
/// With no `step`, the smallest round step giving at most this many buckets.
pub const DEFAULT_BUCKETS: i64 = 120;
/// The most buckets a metrics query may ask for.
pub const MAX_BUCKETS: i64 = 1_000;
/// `groupBy=resource` returns the busiest this many series (a shipper that
/// sends raw URLs instead of resource paths could make millions).
pub const MAX_SERIES: usize = 100;
/// The most OTLP points one query returns (the newest in the window).
pub const MAX_POINTS: i64 = 10_000;

/// Round steps for the default resolution, in seconds.
const STEPS: &[i64] = &[
    1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604_800,
];

// ---- who sees what ---------------------------------------------------------

/// What `principal` may see of telemetry; 403 if it holds
/// `observability:view` nowhere.
pub fn visibility(principal: &Principal) -> Result<Visibility> {
    if !principal.has_anywhere(Permission::ObservabilityView) {
        return Err(Error::Forbidden(
            "this needs the observability:view permission".into(),
        ));
    }
    Ok(Visibility::of(principal, Permission::ObservabilityView))
}

/// Whether a record from `source` is visible: what the SQL filter decides,
/// for records that never went through SQL (the live tail).
pub fn visible(vis: &Visibility, source: &Attribution) -> bool {
    let has = |ids: &[i64], id: Option<i64>| id.is_some_and(|id| ids.contains(&id));
    vis.everything
        || vis.environments.contains(&source.environment_id)
        || has(&vis.projects, source.project_id)
        || has(&vis.integrations, source.integration_id)
}

// ---- filters ----------------------------------------------------------------

/// Scope filters as the API names them (handles).
#[derive(Debug, Clone, Default)]
pub struct ScopeHandles {
    pub environment: Option<String>,
    pub project: Option<String>,
    /// Needs `project` (integration handles are unique per project).
    pub integration: Option<String>,
    pub runtime: Option<String>,
}

/// Resolves handles through the catalog; `None` when one of them names
/// nothing, so nothing can match.
pub fn resolve_scope(store: &Store, h: &ScopeHandles) -> Result<Option<ScopeIds>> {
    if h.integration.is_some() && h.project.is_none() {
        return Err(Error::BadRequest(
            "integration needs project: integration handles are unique only within a project"
                .into(),
        ));
    }
    let handle = |h: &Option<String>| h.as_deref().map(normalize_handle);
    let (env, project, integration) = (
        handle(&h.environment),
        handle(&h.project),
        handle(&h.integration),
    );
    store.read(|tx| {
        let mut ids = ScopeIds {
            runtime_id: h.runtime.clone(),
            ..ScopeIds::default()
        };
        if let Some(e) = &env {
            match tx.environment_info(e)? {
                Some(e) => ids.environment_id = Some(e.id),
                None => return Ok(None),
            }
        }
        if let Some(p) = &project {
            match tx.project_info(p)? {
                Some(p) => ids.project_id = Some(p.id),
                None => return Ok(None),
            }
            if let Some(i) = &integration {
                match tx.integration_info(p, i)? {
                    Some(i) => ids.integration_id = Some(i.id),
                    None => return Ok(None),
                }
            }
        }
        Ok(Some(ids))
    })
}

/// `level=ERROR,WARN`: a comma list, any case, the usual synonyms.
pub fn parse_levels(text: &str) -> Result<Vec<Level>> {
    let mut levels = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let l = Level::parse(part).ok_or_else(|| {
            Error::BadRequest(format!(
                "level '{part}' is not one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL"
            ))
        })?;
        if !levels.contains(&l) {
            levels.push(l);
        }
    }
    Ok(levels)
}

/// A time in a query: RFC 3339 or Unix milliseconds. Milliseconds are
/// clamped to the times `chrono` can represent (about ±262,000 years), so
/// that windows computed from them never overflow.
pub fn parse_time(name: &str, text: &str) -> Result<Millis> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms.clamp(
            chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp_millis(),
            chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp_millis(),
        ));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            Error::BadRequest(format!(
                "{name} '{text}' must be RFC 3339 (2026-11-23T21:00:00Z) or Unix milliseconds"
            ))
        })
}

/// The longest metrics step, 100,000 days: with times within `chrono`'s
/// range, window arithmetic on it cannot overflow.
const MAX_STEP_MS: i64 = 100_000 * 86_400_000;

/// A metrics step: seconds (`60`) or with a unit (`30s`, `5m`, `1h`, `1d`); in ms.
pub fn parse_step(text: &str) -> Result<i64> {
    let text = text.trim();
    let bad = || {
        Error::BadRequest(format!(
            "step '{text}' must be a whole number of seconds, or one with a unit: 30s, 5m, 1h, 1d (at most 100000d)"
        ))
    };
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: i64 = number.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    match n.checked_mul(unit_secs * 1000) {
        Some(ms) if ms > 0 && ms <= MAX_STEP_MS => Ok(ms),
        _ => Err(bad()),
    }
}

/// A log query's filters as the API gives them.
#[derive(Debug, Clone, Default)]
pub struct LogRequest {
    pub scope: ScopeHandles,
    pub levels: Vec<Level>,
    /// Matched as a phrase; blank means no phrase.
    pub phrase: Option<String>,
    pub from: Option<Millis>,
    pub to: Option<Millis>,
}

impl LogRequest {
    /// The filter with handles resolved; `None` if a handle names nothing.
    pub fn resolve(&self, store: &Store) -> Result<Option<LogFilter>> {
        let Some(ids) = resolve_scope(store, &self.scope)? else {
            return Ok(None);
        };
        Ok(Some(LogFilter {
            environment_id: ids.environment_id,
            project_id: ids.project_id,
            integration_id: ids.integration_id,
            runtime_id: ids.runtime_id,
            levels: self.levels.clone(),
            phrase: self
                .phrase
                .as_deref()
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string),
            from: self.from,
            to: self.to,
        }))
    }
}

// ---- logs -------------------------------------------------------------------

/// One page of log records.
#[derive(Debug, Clone)]
pub struct LogPage {
    pub items: Vec<StoredLog>,
    /// Set when more records follow: pass it back as `cursor`.
    pub next_cursor: Option<String>,
}

/// The opaque cursor continuing after log `id` (its position in time order).
pub fn encode_cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(id.to_string())
}

/// The id a cursor continues after; 400 for anything this API did not hand out.
pub fn decode_cursor(cursor: &str) -> Result<i64> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(bad_cursor)
}

/// A page of the log records `principal` may see that match `req`.
pub fn logs(
    store: &Store,
    telemetry: &TelemetryStore,
    principal: &Principal,
    req: &LogRequest,
    order: Order,
    cursor: Option<&str>,
    limit: i64,
) -> Result<LogPage> {
    let vis = visibility(principal)?;
    let after = cursor.map(decode_cursor).transpose()?;
    let Some(filter) = req.resolve(store)? else {
        return Ok(LogPage {
            items: Vec::new(),
            next_cursor: None,
        });
    };
    let mut items = telemetry.select_logs(&LogSelect {
        filter: &filter,
        vis: &vis,
        order,
        after,
        limit: limit + 1,
    })?;
    let more = items.len() as i64 > limit;
    items.truncate(limit.max(0) as usize);
    let next_cursor = more
        .then(|| items.last().map(|l| encode_cursor(l.id)))
        .flatten();
    Ok(LogPage { items, next_cursor })
}

/// A log record as the API shows it (queries, the live tail, downloads).
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogItem<'a> {
    pub id: String,
    pub time: String,
    pub level: Level,
    pub environment: &'a str,
    pub project: Option<&'a str>,
    pub integration: Option<&'a str>,
    pub runtime_id: Option<&'a str>,
    pub module: Option<&'a str>,
    pub message: &'a str,
    pub attributes: &'a Map<String, Value>,
}

impl<'a> LogItem<'a> {
    pub fn of(log: &'a StoredLog) -> LogItem<'a> {
        let r = &log.record;
        LogItem {
            id: log.id.to_string(),
            time: rfc3339(r.ts),
            level: r.level,
            environment: &r.source.environment,
            project: r.source.project.as_deref(),
            integration: r.source.integration.as_deref(),
            runtime_id: r.source.runtime_id.as_deref(),
            module: r.module.as_deref(),
            message: &r.message,
            attributes: &r.attributes,
        }
    }
}

/// The item's JSON text (one line: JSON escapes every newline).
pub fn log_json(log: &StoredLog) -> String {
    serde_json::to_string(&LogItem::of(log)).unwrap_or_else(|_| "{}".into())
}

/// `2026-11-23T21:00:00.123Z ERROR dev/orders/order-create runtime-1 acme/orders: message`
/// (`-` for what is unknown).
pub fn log_text(log: &StoredLog) -> String {
    let r = &log.record;
    let s = &r.source;
    format!(
        "{} {:<5} {}/{}/{} {} {}: {}\n",
        rfc3339(r.ts),
        r.level.as_str(),
        s.environment,
        s.project.as_deref().unwrap_or("-"),
        s.integration.as_deref().unwrap_or("-"),
        s.runtime_id.as_deref().unwrap_or("-"),
        r.module.as_deref().unwrap_or("-"),
        r.message
    )
}

/// What a download is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DownloadFormat {
    /// One JSON item per line (the items of the query API).
    #[default]
    Ndjson,
    /// One [`log_text`] line per record.
    Text,
}

impl DownloadFormat {
    /// `ndjson` | `text`.
    pub fn parse(text: &str) -> Result<DownloadFormat> {
        match text.trim().to_ascii_lowercase().as_str() {
            "ndjson" | "json" => Ok(DownloadFormat::Ndjson),
            "text" | "txt" => Ok(DownloadFormat::Text),
            _ => Err(Error::BadRequest(format!(
                "format '{text}' must be ndjson or text"
            ))),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            DownloadFormat::Ndjson => "application/x-ndjson",
            DownloadFormat::Text => "text/plain; charset=utf-8",
        }
    }

    /// `icpd-logs-20261123T210000Z.ndjson`.
    pub fn file_name(self, now: Millis) -> String {
        let time = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(now)
            .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
            .unwrap_or_else(|| now.to_string());
        let ext = match self {
            DownloadFormat::Ndjson => "ndjson",
            DownloadFormat::Text => "log",
        };
        format!("icpd-logs-{time}.{ext}")
    }
}

/// A built download.
#[derive(Debug, Clone)]
pub struct Download {
    pub body: Vec<u8>,
    pub records: usize,
    /// Stopped at [`DOWNLOAD_MAX_BYTES`] before the limit.
    pub truncated: bool,
}

/// Up to `limit` (at most [`DOWNLOAD_LIMIT`]) records `principal` may see
/// that match `req`, in `order`, written as `format`, until the body
/// passes [`DOWNLOAD_MAX_BYTES`]. Read in pages, so other queries run in
/// between.
pub fn download(
    store: &Store,
    telemetry: &TelemetryStore,
    principal: &Principal,
    req: &LogRequest,
    order: Order,
    limit: i64,
    format: DownloadFormat,
) -> Result<Download> {
    download_upto(
        store,
        telemetry,
        principal,
        req,
        order,
        limit,
        format,
        DOWNLOAD_MAX_BYTES,
    )
}

#[allow(clippy::too_many_arguments)]
fn download_upto(
    store: &Store,
    telemetry: &TelemetryStore,
    principal: &Principal,
    req: &LogRequest,
    order: Order,
    limit: i64,
    format: DownloadFormat,
    max_bytes: usize,
) -> Result<Download> {
    let vis = visibility(principal)?;
    let mut out = Download {
        body: Vec::new(),
        records: 0,
        truncated: false,
    };
    let Some(filter) = req.resolve(store)? else {
        return Ok(out);
    };
    let mut left = limit.clamp(0, DOWNLOAD_LIMIT);
    let mut after = None;
    while left > 0 {
        let want = left.min(DOWNLOAD_PAGE);
        let page = telemetry.select_logs(&LogSelect {
            filter: &filter,
            vis: &vis,
            order,
            after,
            limit: want,
        })?;
        for log in &page {
            if out.body.len() >= max_bytes {
                out.truncated = true;
                return Ok(out);
            }
            match format {
                DownloadFormat::Ndjson => {
                    serde_json::to_writer(&mut out.body, &LogItem::of(log))
                        .map_err(|e| Error::Internal(format!("encoding a log record: {e}")))?;
                    out.body.push(b'\n');
                }
                DownloadFormat::Text => out.body.extend_from_slice(log_text(log).as_bytes()),
            }
            out.records += 1;
        }
        left -= page.len() as i64;
        match page.last() {
            Some(last) if page.len() as i64 == want => after = Some(last.id),
            _ => break,
        }
    }
    Ok(out)
}

// ---- request metrics --------------------------------------------------------

/// `groupBy`: one series over everything, or one per (service, resource, method).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupBy {
    #[default]
    None,
    Resource,
}

impl GroupBy {
    /// `none` | `resource`.
    pub fn parse(text: &str) -> Result<GroupBy> {
        match text.trim() {
            "none" => Ok(GroupBy::None),
            "resource" => Ok(GroupBy::Resource),
            _ => Err(Error::BadRequest(format!(
                "groupBy '{text}' must be none or resource"
            ))),
        }
    }
}

/// A metrics query as the API gives it.
#[derive(Debug, Clone, Default)]
pub struct MetricsRequest {
    pub scope: ScopeHandles,
    pub service: Option<String>,
    pub resource: Option<String>,
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    pub step_ms: Option<i64>,
    pub group_by: GroupBy,
}

/// The window's buckets, from `from` on, each `step` long (the last one
/// may be cut short by `to`). Default: the last hour, at the smallest
/// round step giving at most [`DEFAULT_BUCKETS`] buckets. More than
/// [`MAX_BUCKETS`] is a 400.
pub fn window(
    from: Option<Millis>,
    to: Option<Millis>,
    step_ms: Option<i64>,
    now: Millis,
) -> Result<Window> {
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to - DEFAULT_WINDOW_MS);
    if from >= to {
        return Err(Error::BadRequest(format!(
            "from ({}) must be before to ({})",
            rfc3339(from),
            rfc3339(to)
        )));
    }
    let span = to - from;
    let buckets = |step: i64| (span + step - 1) / step;
    let step_ms = match step_ms {
        Some(step) => {
            let n = buckets(step);
            if n > MAX_BUCKETS {
                return Err(Error::BadRequest(format!(
                    "a step of {}s over this range makes {n} buckets; at most {MAX_BUCKETS} are allowed: choose a larger step or a shorter range",
                    step / 1000
                )));
            }
            step
        }
        None => STEPS
            .iter()
            .map(|s| s * 1000)
            .find(|s| buckets(*s) <= DEFAULT_BUCKETS)
            .unwrap_or_else(|| {
                // Longer than 120 weeks: whole days.
                let day = 86_400_000;
                (buckets(DEFAULT_BUCKETS) + day - 1) / day * day
            }),
    };
    Ok(Window { from, to, step_ms })
}

/// One bucket's (or the window's) figures.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub requests: u64,
    pub errors4xx: u64,
    pub errors5xx: u64,
    pub error_rate4xx: f64,
    pub error_rate5xx: f64,
    pub latency_mean_ms: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
}

/// The nearest-rank percentile of sorted values: the ⌈q·n⌉-th smallest,
/// with q given in thousandths (integer arithmetic: no rounding surprises
/// at exact ranks).
pub fn percentile(sorted: &[f64], q_thousandths: u64) -> Option<f64> {
    let n = sorted.len() as u64;
    if n == 0 {
        return None;
    }
    let rank = (q_thousandths * n).div_ceil(1000).clamp(1, n);
    Some(sorted[(rank - 1) as usize])
}

impl Stats {
    /// The figures of these requests; sorts `durations`.
    fn of(errors4xx: u64, errors5xx: u64, durations: &mut [f64]) -> Stats {
        durations.sort_unstable_by(f64::total_cmp);
        let n = durations.len() as u64;
        let rate = |e: u64| if n == 0 { 0.0 } else { e as f64 / n as f64 };
        Stats {
            requests: n,
            errors4xx,
            errors5xx,
            error_rate4xx: rate(errors4xx),
            error_rate5xx: rate(errors5xx),
            latency_mean_ms: (n > 0).then(|| durations.iter().sum::<f64>() / n as f64),
            latency_p50_ms: percentile(durations, 500),
            latency_p95_ms: percentile(durations, 950),
            latency_p99_ms: percentile(durations, 990),
        }
    }
}

/// One bucket of a series.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Point {
    pub time: String,
    #[serde(flatten)]
    pub stats: Stats,
}

/// One series: everything, or one (service, resource, method).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Series {
    pub service: Option<String>,
    pub resource: Option<String>,
    pub method: Option<String>,
    pub total: Stats,
    pub points: Vec<Point>,
}

/// The answer of `GET /observability/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsReport {
    pub from: String,
    pub to: String,
    pub step_seconds: i64,
    pub series: Vec<Series>,
}

#[derive(Default)]
struct Bucket {
    errors4xx: u64,
    errors5xx: u64,
    durations: Vec<f64>,
}

/// Request records of one series, bucketed as they are read.
struct Accumulator {
    buckets: Vec<Bucket>,
}

impl Accumulator {
    fn new(n: usize) -> Accumulator {
        Accumulator {
            buckets: (0..n).map(|_| Bucket::default()).collect(),
        }
    }

    fn add(&mut self, i: usize, status: i64, duration_ms: f64) {
        let b = &mut self.buckets[i];
        match status {
            400..=499 => b.errors4xx += 1,
            500..=599 => b.errors5xx += 1,
            _ => {}
        }
        b.durations.push(duration_ms);
    }

    fn requests(&self) -> usize {
        self.buckets.iter().map(|b| b.durations.len()).sum()
    }

    fn finish(
        mut self,
        w: &Window,
        key: (Option<String>, Option<String>, Option<String>),
    ) -> Series {
        let mut all: Vec<f64> = Vec::with_capacity(self.requests());
        let (mut e4, mut e5) = (0, 0);
        let points = self
            .buckets
            .iter_mut()
            .enumerate()
            .map(|(i, b)| {
                all.extend_from_slice(&b.durations);
                e4 += b.errors4xx;
                e5 += b.errors5xx;
                Point {
                    time: rfc3339(w.from + i as i64 * w.step_ms),
                    stats: Stats::of(b.errors4xx, b.errors5xx, &mut b.durations),
                }
            })
            .collect();
        Series {
            service: key.0,
            resource: key.1,
            method: key.2,
            total: Stats::of(e4, e5, &mut all),
            points,
        }
    }
}

/// Request metrics over `req`'s window, as `principal` may see them.
pub fn request_metrics(
    store: &Store,
    telemetry: &TelemetryStore,
    principal: &Principal,
    req: &MetricsRequest,
    now: Millis,
) -> Result<MetricsReport> {
    let vis = visibility(principal)?;
    let w = window(req.from, req.to, req.step_ms, now)?;
    let scope = resolve_scope(store, &req.scope)?;
    let series = match scope {
        None => Vec::new(),
        Some(scope) => {
            let filter = RequestFilter {
                scope,
                service: req.service.clone(),
                resource: req.resource.clone(),
                from: w.from,
                to: w.to,
            };
            bucket_requests(telemetry, &vis, &filter, &w, req.group_by)?
        }
    };
    let series = match (req.group_by, series.is_empty()) {
        // One series, even over no data: every bucket present.
        (GroupBy::None, true) => vec![Accumulator::new(bucket_count(&w))
            .finish(&w, (req.service.clone(), req.resource.clone(), None))],
        (GroupBy::None, false) => series
            .into_iter()
            .map(|mut s| {
                s.service = req.service.clone();
                s.resource = req.resource.clone();
                s
            })
            .collect(),
        (GroupBy::Resource, _) => series,
    };
    Ok(MetricsReport {
        from: rfc3339(w.from),
        to: rfc3339(w.to),
        step_seconds: w.step_ms / 1000,
        series,
    })
}

fn bucket_count(w: &Window) -> usize {
    ((w.to - w.from + w.step_ms - 1) / w.step_ms).max(1) as usize
}

fn bucket_requests(
    telemetry: &TelemetryStore,
    vis: &Visibility,
    filter: &RequestFilter,
    w: &Window,
    group_by: GroupBy,
) -> Result<Vec<Series>> {
    let n = bucket_count(w);
    let index = |ts: Millis| {
        usize::try_from((ts - w.from) / w.step_ms)
            .ok()
            .filter(|i| *i < n)
    };
    let mut series: Vec<Accumulator> = Vec::new();
    let mut keys: Vec<(String, String, String)> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut key = String::new();
    telemetry.each_request(filter, vis, |r| {
        let Some(i) = index(r.ts) else { return };
        let s = match group_by {
            GroupBy::None => {
                if series.is_empty() {
                    series.push(Accumulator::new(n));
                    keys.push(Default::default());
                }
                0
            }
            GroupBy::Resource => {
                key.clear();
                for part in [r.service, r.resource, r.method] {
                    key.push_str(part);
                    key.push('\0');
                }
                match by_key.get(key.as_str()) {
                    Some(s) => *s,
                    None => {
                        by_key.insert(key.clone(), series.len());
                        series.push(Accumulator::new(n));
                        keys.push((r.service.into(), r.resource.into(), r.method.into()));
                        series.len() - 1
                    }
                }
            }
        };
        series[s].add(i, r.status, r.duration_ms);
    })?;
    let mut all: Vec<(Accumulator, (String, String, String))> =
        series.into_iter().zip(keys).collect();
    if all.len() > MAX_SERIES {
        all.sort_by_key(|(a, _)| std::cmp::Reverse(a.requests()));
        all.truncate(MAX_SERIES);
    }
    all.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(all
        .into_iter()
        .map(|(acc, (service, resource, method))| {
            let key = match group_by {
                GroupBy::None => (None, None, None),
                GroupBy::Resource => (Some(service), Some(resource), Some(method)),
            };
            acc.finish(w, key)
        })
        .collect())
}

// ---- OTLP points ------------------------------------------------------------

/// An OTLP point as the API shows it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PointItem<'a> {
    pub time: String,
    pub name: &'a str,
    pub kind: &'static str,
    pub unit: Option<&'a str>,
    pub attributes: &'a Map<String, Value>,
    pub value: Option<f64>,
    pub count: Option<u64>,
    pub sum: Option<f64>,
    pub bounds: &'a [f64],
    pub buckets: &'a [u64],
    pub environment: &'a str,
    pub project: Option<&'a str>,
    pub integration: Option<&'a str>,
    pub runtime_id: Option<&'a str>,
}

impl<'a> PointItem<'a> {
    pub fn of(p: &'a MetricPoint) -> PointItem<'a> {
        PointItem {
            time: rfc3339(p.ts),
            name: &p.name,
            kind: p.kind.as_str(),
            unit: p.unit.as_deref(),
            attributes: &p.attributes,
            value: p.value,
            count: p.count,
            sum: p.sum,
            bounds: &p.bounds,
            buckets: &p.buckets,
            environment: &p.source.environment,
            project: p.source.project.as_deref(),
            integration: p.source.integration.as_deref(),
            runtime_id: p.source.runtime_id.as_deref(),
        }
    }
}

/// The OTLP points named `name` that `principal` may see, oldest first:
/// the newest [`MAX_POINTS`] in the window (default: the last hour).
#[allow(clippy::too_many_arguments)]
pub fn metric_points(
    store: &Store,
    telemetry: &TelemetryStore,
    principal: &Principal,
    scope: &ScopeHandles,
    name: &str,
    from: Option<Millis>,
    to: Option<Millis>,
    now: Millis,
) -> Result<Vec<MetricPoint>> {
    let vis = visibility(principal)?;
    if name.trim().is_empty() {
        return Err(Error::BadRequest(
            "give the metric name as ?name=... (GET /api/v1/observability/metric-names lists them)"
                .into(),
        ));
    }
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to - DEFAULT_WINDOW_MS);
    let Some(scope) = resolve_scope(store, scope)? else {
        return Ok(Vec::new());
    };
    let filter = PointFilter {
        scope,
        name: name.to_string(),
        from,
        to,
    };
    telemetry.select_points(&filter, &vis, MAX_POINTS)
}

/// The names of the OTLP metrics `principal` may see (in the window, if given).
pub fn metric_names(
    store: &Store,
    telemetry: &TelemetryStore,
    principal: &Principal,
    scope: &ScopeHandles,
    from: Option<Millis>,
    to: Option<Millis>,
) -> Result<Vec<String>> {
    let vis = visibility(principal)?;
    let Some(scope) = resolve_scope(store, scope)? else {
        return Ok(Vec::new());
    };
    telemetry.metric_names(&scope, &vis, from, to)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::access::{Grant, Scope};
    use crate::telemetry::{LogRecord, MetricKind, RequestRecord};

    const T0: Millis = 1_795_348_800_000; // 2026-11-22T12:00:00Z

    /// A scratch icp.db (dev = 1, prod = 2; orders/create = project 1,
    /// integration 1; orders/cancel = integration 2; billing/pay = project 2,
    /// integration 3) and telemetry.db.
    struct Fixture {
        dir: std::path::PathBuf,
        store: Store,
        telemetry: TelemetryStore,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn fixture(tag: &str) -> Fixture {
        let dir =
            std::env::temp_dir().join(format!("icpd-unit-query-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("icp.db")).unwrap();
        store
            .write(|tx| {
                crate::catalog::find_or_create_integration(tx, "orders", "create", "BI", T0)?;
                crate::catalog::find_or_create_integration(tx, "orders", "cancel", "BI", T0)?;
                crate::catalog::find_or_create_integration(tx, "billing", "pay", "BI", T0)
            })
            .unwrap();
        let telemetry = TelemetryStore::open(&dir.join("telemetry.db")).unwrap();
        Fixture {
            dir,
            store,
            telemetry,
        }
    }

    /// Where a record comes from: (env, project, integration) ids, handles derived.
    fn source(env: i64, project: Option<i64>, integration: Option<i64>) -> Attribution {
        let p = |id: i64| ["orders", "billing"][id as usize - 1].to_string();
        let i = |id: i64| ["create", "cancel", "pay"][id as usize - 1].to_string();
        Attribution {
            environment_id: env,
            environment: ["dev", "prod"][env as usize - 1].into(),
            project_id: project,
            project: project.map(p),
            integration_id: integration,
            integration: integration.map(i),
            runtime_id: integration.map(|i| format!("rt-{i}")),
        }
    }

    fn record(ts: Millis, level: Level, message: &str, src: Attribution) -> LogRecord {
        LogRecord {
            ts,
            level,
            module: Some("acme/orders".into()),
            message: message.into(),
            attributes: json!({"k": "v"}).as_object().unwrap().clone(),
            source: src,
        }
    }

    fn principal(grants: &[(Scope, Permission)]) -> Principal {
        Principal {
            user_id: 9,
            username: "u".into(),
            grants: grants
                .iter()
                .map(|(scope, p)| Grant {
                    scope: *scope,
                    permissions: [*p].into_iter().collect(),
                })
                .collect(),
            must_change_password: false,
        }
    }

    fn admin() -> Principal {
        principal(&[(Scope::Organization, Permission::ObservabilityView)])
    }

    fn messages(page: &LogPage) -> Vec<&str> {
        page.items
            .iter()
            .map(|l| l.record.message.as_str())
            .collect()
    }

    fn query(f: &Fixture, who: &Principal, req: &LogRequest) -> Result<LogPage> {
        logs(&f.store, &f.telemetry, who, req, Order::Newest, None, 100)
    }

    /// Six records: two per integration 1..3 in dev, one without project in dev, one in prod.
    fn six(f: &Fixture) {
        f.telemetry
            .insert_logs(
                vec![
                    record(
                        T0,
                        Level::Info,
                        "order 1 created",
                        source(1, Some(1), Some(1)),
                    ),
                    record(
                        T0 + 1,
                        Level::Error,
                        "payment failed for order 1",
                        source(1, Some(1), Some(1)),
                    ),
                    record(
                        T0 + 2,
                        Level::Warn,
                        "order 1 cancelled late",
                        source(1, Some(1), Some(2)),
                    ),
                    record(
                        T0 + 3,
                        Level::Error,
                        "Payment FAILED: card declined",
                        source(1, Some(2), Some(3)),
                    ),
                    record(
                        T0 + 4,
                        Level::Warn,
                        "disk almost full",
                        source(1, None, None),
                    ),
                    record(
                        T0 + 5,
                        Level::Info,
                        "payment failed in prod",
                        source(2, Some(2), Some(3)),
                    ),
                ],
                T0 + 10,
            )
            .unwrap();
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 500), Some(50.0));
        assert_eq!(percentile(&v, 950), Some(95.0));
        assert_eq!(percentile(&v, 990), Some(99.0));
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        // ⌈0.95·20⌉ = 19 exactly (a float product would be 18.999… or 19.000…1).
        assert_eq!(percentile(&v, 950), Some(19.0));
        assert_eq!(percentile(&v, 990), Some(20.0));
        assert_eq!(percentile(&v, 500), Some(10.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 500), Some(2.0));
        assert_eq!(percentile(&[7.0], 990), Some(7.0));
        assert_eq!(percentile(&[], 500), None);
    }

    #[test]
    fn windows_are_aligned_and_bounded() {
        let now = T0 + 12_345;
        let w = window(None, None, None, now).unwrap();
        assert_eq!(
            (w.from, w.to, w.step_ms, bucket_count(&w)),
            (now - 3_600_000, now, 30_000, 120)
        );
        // A day at the default resolution: 15 minutes → 96 buckets.
        let w = window(Some(T0), Some(T0 + 86_400_000), None, now).unwrap();
        assert_eq!((w.step_ms, bucket_count(&w)), (900_000, 96));
        // 1000 buckets is the most.
        let w = window(Some(T0), Some(T0 + 1_000_000), Some(1000), now).unwrap();
        assert_eq!(bucket_count(&w), 1000);
        let e = window(Some(T0), Some(T0 + 1_001_000), Some(1000), now).unwrap_err();
        assert!(matches!(e, Error::BadRequest(_)), "{e}");
        assert!(e.to_string().contains("1001 buckets"), "{e}");
        let e = window(Some(T0), Some(T0), None, now).unwrap_err();
        assert!(e.to_string().contains("must be before"), "{e}");
        // A year still gets a default step.
        let w = window(Some(T0), Some(T0 + 400 * 86_400_000), None, now).unwrap();
        assert!(bucket_count(&w) <= DEFAULT_BUCKETS as usize, "{w:?}");
    }

    #[test]
    fn parameters_parse_or_explain() {
        assert_eq!(parse_step("60").unwrap(), 60_000);
        assert_eq!(parse_step("30s").unwrap(), 30_000);
        assert_eq!(parse_step("5m").unwrap(), 300_000);
        assert_eq!(parse_step("1h").unwrap(), 3_600_000);
        for bad in [
            "0",
            "-5",
            "1.5",
            "5x",
            "",
            "m",
            "99999999999999999d",
            "100001d",
        ] {
            assert!(parse_step(bad).is_err(), "{bad}");
        }
        // Extreme times and steps make a window, never an overflow.
        let (min, max) = (
            parse_time("from", &i64::MIN.to_string()).unwrap(),
            parse_time("to", &i64::MAX.to_string()).unwrap(),
        );
        assert!(window(Some(min), Some(max), None, T0).is_ok());
        assert!(window(
            Some(min),
            None,
            Some(parse_step("100000d").unwrap()),
            min + 1
        )
        .is_ok());
        assert!(window(None, Some(min), None, T0).is_ok());
        assert_eq!(parse_time("from", "1795348800000").unwrap(), T0);
        assert_eq!(parse_time("from", "2026-11-22T12:00:00Z").unwrap(), T0);
        assert_eq!(
            parse_time("from", "2026-11-22T13:00:00.5+01:00").unwrap(),
            T0 + 500
        );
        assert!(parse_time("from", "yesterday").is_err());
        assert_eq!(
            parse_levels("error, WARNING,err").unwrap(),
            [Level::Error, Level::Warn]
        );
        assert!(parse_levels("").unwrap().is_empty());
        assert!(parse_levels("ERROR,loud").is_err());
        assert_eq!(decode_cursor(&encode_cursor(123)).unwrap(), 123);
        for bad in [
            "",
            "!!",
            "MTIz!",
            &URL_SAFE_NO_PAD.encode("-4"),
            &URL_SAFE_NO_PAD.encode("x"),
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
        assert_eq!(Order::parse("ASC").unwrap(), Order::Oldest);
        assert!(Order::parse("up").is_err());
        assert_eq!(GroupBy::parse("resource").unwrap(), GroupBy::Resource);
        assert!(GroupBy::parse("runtime").is_err());
    }

    #[test]
    fn logs_filter_by_scope_level_time_and_phrase() {
        let f = fixture("filters");
        six(&f);
        let all = query(&f, &admin(), &LogRequest::default()).unwrap();
        assert_eq!(all.items.len(), 6);
        assert_eq!(
            all.items[0].record.message, "payment failed in prod",
            "newest first"
        );
        assert_eq!(all.next_cursor, None);
        let scoped =
            |environment: Option<&str>, project: Option<&str>, integration: Option<&str>| {
                let req = LogRequest {
                    scope: ScopeHandles {
                        environment: environment.map(Into::into),
                        project: project.map(Into::into),
                        integration: integration.map(Into::into),
                        runtime: None,
                    },
                    ..LogRequest::default()
                };
                query(&f, &admin(), &req).unwrap().items.len()
            };
        assert_eq!(scoped(Some("dev"), None, None), 5);
        assert_eq!(
            scoped(Some("Prod"), None, None),
            1,
            "handles are normalised"
        );
        assert_eq!(scoped(None, Some("orders"), None), 3);
        assert_eq!(scoped(None, Some("orders"), Some("cancel")), 1);
        assert_eq!(scoped(Some("dev"), Some("billing"), Some("pay")), 1);
        assert_eq!(
            scoped(Some("staging"), None, None),
            0,
            "an unknown handle matches nothing"
        );
        assert_eq!(scoped(None, Some("orders"), Some("pay")), 0);
        let e = query(
            &f,
            &admin(),
            &LogRequest {
                scope: ScopeHandles {
                    integration: Some("create".into()),
                    ..ScopeHandles::default()
                },
                ..LogRequest::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("integration needs project"), "{e}");

        let req = LogRequest {
            scope: ScopeHandles {
                runtime: Some("rt-1".into()),
                ..ScopeHandles::default()
            },
            ..LogRequest::default()
        };
        assert_eq!(query(&f, &admin(), &req).unwrap().items.len(), 2);
        let req = LogRequest {
            levels: vec![Level::Error, Level::Warn],
            ..LogRequest::default()
        };
        let page = query(&f, &admin(), &req).unwrap();
        assert_eq!(
            messages(&page),
            [
                "disk almost full",
                "Payment FAILED: card declined",
                "order 1 cancelled late",
                "payment failed for order 1"
            ]
        );
        let req = LogRequest {
            from: Some(T0 + 1),
            to: Some(T0 + 3),
            ..LogRequest::default()
        };
        let page = query(&f, &admin(), &req).unwrap();
        assert_eq!(
            messages(&page),
            ["order 1 cancelled late", "payment failed for order 1"],
            "from inclusive, to exclusive"
        );

        let phrase = |q: &str| {
            let req = LogRequest {
                phrase: Some(q.into()),
                ..LogRequest::default()
            };
            messages(&query(&f, &admin(), &req).unwrap())
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            phrase("payment failed"),
            [
                "payment failed in prod",
                "Payment FAILED: card declined",
                "payment failed for order 1"
            ]
        );
        assert_eq!(
            phrase("failed payment"),
            Vec::<String>::new(),
            "a phrase, not words"
        );
        assert_eq!(phrase("card"), ["Payment FAILED: card declined"]);
        assert_eq!(phrase("   ").len(), 6, "a blank phrase is no filter");
        // FTS5 syntax in the user's text is text, never syntax.
        for q in [
            "\"",
            "payment OR disk",
            "NEAR(payment disk)",
            "pay*",
            "message:payment",
            "-",
            "(",
            "AND",
            "\"payment\" OR \"disk\"",
            "^order",
        ] {
            let got = phrase(q);
            assert!(got.len() <= 3, "{q}: {got:?}");
        }
        assert_eq!(phrase("\"payment failed\""), phrase("payment failed"));
        assert_eq!(
            phrase("order 1"),
            [
                "order 1 cancelled late",
                "payment failed for order 1",
                "order 1 created"
            ]
        );
        // Phrase with the other filters.
        let req = LogRequest {
            phrase: Some("payment failed".into()),
            levels: vec![Level::Error],
            scope: ScopeHandles {
                environment: Some("dev".into()),
                ..ScopeHandles::default()
            },
            from: Some(T0 + 2),
            ..LogRequest::default()
        };
        assert_eq!(
            messages(&query(&f, &admin(), &req).unwrap()),
            ["Payment FAILED: card declined"]
        );
    }

    #[test]
    fn logs_are_limited_to_what_the_caller_may_see() {
        let f = fixture("visibility");
        six(&f);
        let view = Permission::ObservabilityView;
        let seen = |who: &Principal| {
            let mut m: Vec<String> = query(&f, who, &LogRequest::default())
                .unwrap()
                .items
                .iter()
                .map(|l| l.record.message.clone())
                .collect();
            m.sort();
            m
        };
        assert_eq!(
            seen(&principal(&[(Scope::Project(1), view)])),
            [
                "order 1 cancelled late",
                "order 1 created",
                "payment failed for order 1"
            ]
        );
        assert_eq!(
            seen(&principal(&[(Scope::Integration(3), view)])),
            ["Payment FAILED: card declined", "payment failed in prod"]
        );
        assert_eq!(
            seen(&principal(&[(Scope::Environment(2), view)])),
            ["payment failed in prod"]
        );
        assert_eq!(seen(&principal(&[(Scope::Environment(1), view)])).len(), 5);
        assert!(seen(&principal(&[
            (Scope::Project(1), view),
            (Scope::Integration(3), view)
        ]))
        .contains(&"payment failed in prod".to_string()));
        // Project view elsewhere, observability view on another project: nothing of this one.
        let other = principal(&[
            (Scope::Organization, Permission::ProjectView),
            (Scope::Project(2), view),
        ]);
        let req = LogRequest {
            scope: ScopeHandles {
                project: Some("orders".into()),
                ..ScopeHandles::default()
            },
            ..LogRequest::default()
        };
        assert!(query(&f, &other, &req).unwrap().items.is_empty());
        // No observability:view at all: 403.
        let none = principal(&[(Scope::Organization, Permission::IntegrationView)]);
        let e = query(&f, &none, &LogRequest::default()).unwrap_err();
        assert!(matches!(e, Error::Forbidden(_)), "{e}");
        // The live tail's check agrees with the SQL filter.
        let all = query(&f, &admin(), &LogRequest::default()).unwrap();
        for grants in [
            vec![(Scope::Project(1), view)],
            vec![(Scope::Integration(3), view)],
            vec![(Scope::Environment(2), view)],
            vec![(Scope::Project(2), view), (Scope::Environment(2), view)],
        ] {
            let who = principal(&grants);
            let vis = visibility(&who).unwrap();
            let mut by_tail: Vec<String> = all
                .items
                .iter()
                .filter(|l| visible(&vis, &l.record.source))
                .map(|l| l.record.message.clone())
                .collect();
            by_tail.sort();
            assert_eq!(by_tail, seen(&who), "{grants:?}");
        }
    }

    #[test]
    fn cursor_pages_through_both_orders() {
        let f = fixture("cursor");
        let records: Vec<LogRecord> = (0..23)
            .map(|i| {
                let level = if i % 2 == 0 {
                    Level::Info
                } else {
                    Level::Error
                };
                record(
                    T0 + i,
                    level,
                    &format!("payment {i} failed"),
                    source(1, Some(1), Some(1)),
                )
            })
            .collect();
        f.telemetry.insert_logs(records, T0).unwrap();
        // Every drive: by id, FTS5, collected through an index, FTS5 within bounds.
        let projects = [None, Some("orders".to_string())];
        for (phrase, project) in [None, Some("failed".to_string())]
            .into_iter()
            .flat_map(|p| projects.clone().map(|project| (p.clone(), project)))
        {
            for order in [Order::Newest, Order::Oldest] {
                let req = LogRequest {
                    phrase: phrase.clone(),
                    scope: ScopeHandles {
                        project: project.clone(),
                        ..ScopeHandles::default()
                    },
                    ..LogRequest::default()
                };
                let mut seen = Vec::new();
                let mut cursor: Option<String> = None;
                let mut pages = 0;
                loop {
                    let page = logs(
                        &f.store,
                        &f.telemetry,
                        &admin(),
                        &req,
                        order,
                        cursor.as_deref(),
                        5,
                    )
                    .unwrap();
                    assert!(page.items.len() <= 5);
                    seen.extend(page.items.iter().map(|l| l.record.ts - T0));
                    pages += 1;
                    match page.next_cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                let mut want: Vec<i64> = (0..23).collect();
                if order == Order::Newest {
                    want.reverse();
                }
                assert_eq!(seen, want, "{phrase:?} {project:?} {order:?}");
                assert_eq!(pages, 5);
            }
        }
        // Exactly a page: no cursor pointing at nothing.
        let page = logs(
            &f.store,
            &f.telemetry,
            &admin(),
            &LogRequest::default(),
            Order::Newest,
            None,
            23,
        )
        .unwrap();
        assert_eq!((page.items.len(), page.next_cursor), (23, None));
        let e = logs(
            &f.store,
            &f.telemetry,
            &admin(),
            &LogRequest::default(),
            Order::Newest,
            Some("zz"),
            5,
        )
        .unwrap_err();
        assert!(e.to_string().contains("invalid cursor"), "{e}");
    }

    #[test]
    fn downloads_hold_every_record_up_to_the_limit() {
        let f = fixture("download");
        let records: Vec<LogRecord> = (0..12_000)
            .map(|i| {
                record(
                    T0 + i,
                    Level::Info,
                    &format!("line {i}\nsecond"),
                    source(1, Some(1), Some(1)),
                )
            })
            .collect();
        f.telemetry.insert_logs(records, T0).unwrap();
        let d = download(
            &f.store,
            &f.telemetry,
            &admin(),
            &LogRequest::default(),
            Order::Oldest,
            DOWNLOAD_LIMIT,
            DownloadFormat::Ndjson,
        )
        .unwrap();
        assert_eq!(d.records, 12_000);
        let lines: Vec<&str> = std::str::from_utf8(&d.body).unwrap().lines().collect();
        assert_eq!(lines.len(), 12_000);
        let first: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["message"], "line 0\nsecond");
        let last: Value = serde_json::from_str(lines[11_999]).unwrap();
        assert_eq!(last["message"], "line 11999\nsecond");
        let d = download(
            &f.store,
            &f.telemetry,
            &admin(),
            &LogRequest::default(),
            Order::Newest,
            7,
            DownloadFormat::Text,
        )
        .unwrap();
        let text = String::from_utf8(d.body).unwrap();
        assert_eq!(d.records, 7);
        assert!(
            text.starts_with("2026-11-22T12:00:11.999Z INFO  dev/orders/create rt-1 acme/orders: line 11999\nsecond\n"),
            "{text}"
        );
        assert!(!d.truncated);
        // Past the size bound: cut after the record that crossed it.
        let d = download_upto(
            &f.store,
            &f.telemetry,
            &admin(),
            &LogRequest::default(),
            Order::Oldest,
            DOWNLOAD_LIMIT,
            DownloadFormat::Ndjson,
            1000,
        )
        .unwrap();
        assert!(d.truncated);
        let lines = std::str::from_utf8(&d.body).unwrap().lines().count();
        assert_eq!((lines, d.records), (d.records, lines));
        assert!(
            d.body.len() >= 1000 && d.body.len() - 1000 < 400,
            "{}",
            d.body.len()
        );
        assert_eq!(
            DownloadFormat::Ndjson.file_name(T0),
            "icpd-logs-20261122T120000Z.ndjson"
        );
    }

    fn request(
        ts: Millis,
        resource: &str,
        method: &str,
        status: u16,
        ms: f64,
        integration: i64,
    ) -> RequestRecord {
        let project = if integration == 3 { 2 } else { 1 };
        RequestRecord {
            ts,
            service: "orders".into(),
            resource: resource.into(),
            method: method.into(),
            status,
            duration_ms: ms,
            source: source(1, Some(project), Some(integration)),
        }
    }

    #[test]
    fn request_metrics_per_bucket_and_total() {
        let f = fixture("metrics");
        // Minute 0: 10 GETs of 1..10 ms, two 404s and one 503; minute 2: one
        // POST of 100 ms (500); minute 1 empty; integration 3 out of the filter.
        let mut rs: Vec<RequestRecord> = (1..=10)
            .map(|i| {
                let status = match i {
                    3 | 4 => 404,
                    5 => 503,
                    _ => 200,
                };
                request(T0 + i * 1000, "/orders", "GET", status, i as f64, 1)
            })
            .collect();
        rs.push(request(T0 + 125_000, "/orders/{id}", "POST", 500, 100.0, 1));
        rs.push(request(T0 + 1000, "/pay", "POST", 200, 1000.0, 3));
        rs.push(request(T0 + 180_000, "/orders", "GET", 200, 1.0, 1)); // at `to`: excluded
        f.telemetry.insert_requests_for_test(&rs);
        let req = MetricsRequest {
            scope: ScopeHandles {
                project: Some("orders".into()),
                ..ScopeHandles::default()
            },
            from: Some(T0),
            to: Some(T0 + 180_000),
            step_ms: Some(60_000),
            ..MetricsRequest::default()
        };
        let m = request_metrics(&f.store, &f.telemetry, &admin(), &req, T0).unwrap();
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["stepSeconds"], 60);
        assert_eq!(v["from"], "2026-11-22T12:00:00.000Z");
        assert_eq!(v["to"], "2026-11-22T12:03:00.000Z");
        assert_eq!(v["series"].as_array().unwrap().len(), 1);
        let s = &v["series"][0];
        assert_eq!(
            (
                s["service"].clone(),
                s["resource"].clone(),
                s["method"].clone()
            ),
            (Value::Null, Value::Null, Value::Null)
        );
        assert_eq!(
            s["points"][0],
            json!({
                "time": "2026-11-22T12:00:00.000Z", "requests": 10, "errors4xx": 2, "errors5xx": 1,
                "errorRate4xx": 0.2, "errorRate5xx": 0.1, "latencyMeanMs": 5.5,
                "latencyP50Ms": 5.0, "latencyP95Ms": 10.0, "latencyP99Ms": 10.0
            })
        );
        assert_eq!(
            s["points"][1],
            json!({
                "time": "2026-11-22T12:01:00.000Z", "requests": 0, "errors4xx": 0, "errors5xx": 0,
                "errorRate4xx": 0.0, "errorRate5xx": 0.0, "latencyMeanMs": null,
                "latencyP50Ms": null, "latencyP95Ms": null, "latencyP99Ms": null
            })
        );
        assert_eq!(s["points"][2]["requests"], 1);
        assert_eq!(s["points"][2]["latencyP50Ms"], 100.0);
        assert_eq!(s["points"].as_array().unwrap().len(), 3);
        assert_eq!(s["total"]["requests"], 11);
        assert_eq!(s["total"]["errors5xx"], 2);
        assert_eq!(s["total"]["latencyMeanMs"], 155.0 / 11.0);
        assert_eq!(s["total"]["latencyP50Ms"], 6.0); // ⌈5.5⌉ = 6th of 1..10,100
        assert_eq!(s["total"]["latencyP95Ms"], 100.0); // ⌈10.45⌉ = 11th

        let by_resource = MetricsRequest {
            group_by: GroupBy::Resource,
            scope: ScopeHandles::default(),
            ..req.clone()
        };
        let m = request_metrics(&f.store, &f.telemetry, &admin(), &by_resource, T0).unwrap();
        let keys: Vec<String> = m
            .series
            .iter()
            .map(|s| {
                let part = |p: &Option<String>| p.clone().unwrap_or_default();
                format!(
                    "{} {} {} {}",
                    part(&s.service),
                    part(&s.method),
                    part(&s.resource),
                    s.total.requests
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                "orders GET /orders 10",
                "orders POST /orders/{id} 1",
                "orders POST /pay 1"
            ]
        );
        assert!(m.series.iter().all(|s| s.points.len() == 3));

        // Visibility: observability:view on billing only.
        let billing = principal(&[(Scope::Project(2), Permission::ObservabilityView)]);
        let m = request_metrics(&f.store, &f.telemetry, &billing, &by_resource, T0).unwrap();
        assert_eq!(m.series.len(), 1);
        assert_eq!(m.series[0].resource.as_deref(), Some("/pay"));
        // Nothing visible: one empty series with every bucket (groupBy none).
        let m = request_metrics(&f.store, &f.telemetry, &billing, &req, T0).unwrap();
        assert_eq!(m.series.len(), 1);
        assert_eq!(m.series[0].total.requests, 0);
        assert_eq!(m.series[0].points.len(), 3);
        // Service and resource filters, echoed in the series.
        let one = MetricsRequest {
            resource: Some("/orders/{id}".into()),
            service: Some("orders".into()),
            ..req.clone()
        };
        let m = request_metrics(&f.store, &f.telemetry, &admin(), &one, T0).unwrap();
        assert_eq!(m.series[0].total.requests, 1);
        assert_eq!(m.series[0].resource.as_deref(), Some("/orders/{id}"));
    }

    #[test]
    fn otlp_points_and_names() {
        let f = fixture("points");
        let point = |ts: Millis, name: &str, integration: i64, value: f64| MetricPoint {
            ts,
            name: name.into(),
            kind: MetricKind::Gauge,
            unit: Some("1".into()),
            attributes: Map::new(),
            value: Some(value),
            count: None,
            sum: None,
            bounds: Vec::new(),
            buckets: Vec::new(),
            source: source(
                1,
                Some(if integration == 3 { 2 } else { 1 }),
                Some(integration),
            ),
        };
        let mut hist = point(T0 + 3, "http.duration", 1, 0.0);
        hist.kind = MetricKind::Histogram;
        hist.value = None;
        hist.count = Some(6);
        hist.sum = Some(42.5);
        hist.bounds = vec![5.0, 10.0];
        hist.buckets = vec![1, 2, 3];
        f.telemetry.insert_points_for_test(&[
            point(T0 + 2, "queue.depth", 1, 7.0),
            point(T0 + 1, "queue.depth", 1, 5.0),
            point(T0, "queue.depth", 3, 9.0),
            hist,
        ]);
        let scope = ScopeHandles::default();
        let got = metric_points(
            &f.store,
            &f.telemetry,
            &admin(),
            &scope,
            "queue.depth",
            None,
            None,
            T0 + 10,
        )
        .unwrap();
        let values: Vec<Option<f64>> = got.iter().map(|p| p.value).collect();
        assert_eq!(values, [Some(9.0), Some(5.0), Some(7.0)], "oldest first");
        let orders = principal(&[(Scope::Project(1), Permission::ObservabilityView)]);
        let got = metric_points(
            &f.store,
            &f.telemetry,
            &orders,
            &scope,
            "queue.depth",
            None,
            None,
            T0 + 10,
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        let got = metric_points(
            &f.store,
            &f.telemetry,
            &admin(),
            &scope,
            "http.duration",
            None,
            None,
            T0 + 10,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(PointItem::of(&got[0])).unwrap(),
            json!({
                "time": "2026-11-22T12:00:00.003Z", "name": "http.duration", "kind": "histogram",
                "unit": "1", "attributes": {}, "value": null, "count": 6, "sum": 42.5,
                "bounds": [5.0, 10.0], "buckets": [1, 2, 3], "environment": "dev",
                "project": "orders", "integration": "create", "runtimeId": "rt-1"
            })
        );
        // Outside the default last hour: nothing.
        let late = T0 + 2 * DEFAULT_WINDOW_MS;
        assert!(metric_points(
            &f.store,
            &f.telemetry,
            &admin(),
            &scope,
            "queue.depth",
            None,
            None,
            late
        )
        .unwrap()
        .is_empty());
        assert!(metric_points(
            &f.store,
            &f.telemetry,
            &admin(),
            &scope,
            " ",
            None,
            None,
            late
        )
        .is_err());
        let names = metric_names(&f.store, &f.telemetry, &admin(), &scope, None, None).unwrap();
        assert_eq!(names, ["http.duration", "queue.depth"]);
        let billing = principal(&[(Scope::Integration(3), Permission::ObservabilityView)]);
        let names = metric_names(&f.store, &f.telemetry, &billing, &scope, None, None).unwrap();
        assert_eq!(names, ["queue.depth"]);
    }
}
