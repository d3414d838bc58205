//! The read side of telemetry: log queries, request records for the
//! metrics, OTLP points and metric names (see `store::telemetry` for the
//! schema), on either backend. On SQLite everything runs on the reader
//! connection, so a long search never delays an ingest; on PostgreSQL on
//! a pooled connection, in one snapshot per call.
//!
//! Each query builds its WHERE clause from the filters given, out of
//! constant fragments with bound parameters (as the runtime list does), so
//! that each filter can use an index and each combination is its own
//! cached statement. Visibility (the ids a caller holds
//! `observability:view` on) is bound as JSON arrays read with `json_each`;
//! a record without a project or integration matches only through its
//! environment (or everything), since `NULL IN (...)` is never true.
//!
//! Logs are ordered by id, which is time order: an id is the record's own
//! millisecond and its arrival rank within it (`store::telemetry`), so
//! ordering by id is ordering by (time, id), the keyset the cursor (the
//! last id) continues, and a time range is a range of ids. Every index of
//! `logs` leads with the id, or with a scope and then the id
//! (`logs_by_id`, `logs_by_integration`, ...); there is none by level or
//! project. A query is driven one of four ways ([`Drive`]), chosen per
//! query:
//! - with a phrase, FTS5 drives: `logs_fts` yields matching rowids (ids)
//!   in the order asked for (FTS5 consumes `ORDER BY rowid` and rowid
//!   bounds itself), each row of `logs` is fetched by id and checked
//!   against the other filters, and the scan stops at the limit; a scope
//!   or time filter first bounds the rowids when it allows few rows;
//! - without one, the ids of the matching rows are collected through the
//!   index of a scope filter or the time range's ids and sorted, when there
//!   are few; otherwise SQLite walks `logs_by_id`, or a scope filter's
//!   index, in the order asked, which finds a page of a common match after
//!   a few hundred rows.
//!
//! Over 1,000,000 rows, a phrase search for 100 records takes a few
//! milliseconds; the slow cases are a rare level or a narrow visibility
//! with no scope or time filter (every row is read, 0.1–0.3 s).
//!
//! PostgreSQL has no FTS5: the text index is GIN over `logs.message_tsv`,
//! and a GIN scan yields rows in no useful order. So a phrase search there
//! collects the ids of up to [`FEW`] matching rows through the GIN index
//! (with every other filter, the time range and the cursor), sorts them
//! here and fetches the page by id ([`Drive::Collected`]): at most 10,000
//! ids are ever sorted. When more rows match, the phrase is common, and
//! the query walks `logs_by_id` (or a scope filter's index) in the order
//! asked as without a phrase ([`Drive::Ids`]), checking the phrase row by
//! row through `ts_match_vq`, which the planner cannot answer from the
//! GIN index, so it cannot choose to fetch and sort every match instead.
//! The phrase is bound as a parameter and only ever read by
//! `phraseto_tsquery`, which takes text, never tsquery syntax (`&`, `|`,
//! `!`, `<->`, `:*` are punctuation to it), after the same cut into runs
//! of letters and digits as the indexed message (see
//! `store::postgres_migrations`): the user's text is never query syntax on
//! either backend. The other filters and plans are the same SQL, with
//! `jsonb_array_elements_text` where SQLite reads a JSON id list with
//! `json_each`.

use super::db;
use super::db::{
    params_from_iter, Dialect, Queries, Row, Transaction, Value as SqlValue, ValueRef,
};
use serde_json::{Map, Value};

use super::telemetry::{exact_log_time, log_id_range, TelemetryStore};
use crate::error::Result;
use crate::model::catalog::Visibility;
use crate::model::telemetry::{
    Attribution, Level, LogFilter, LogRecord, MetricKind, MetricPoint, StoredLog,
};
use crate::model::telemetry_query::{
    LogSelect, Order, PointFilter, RequestFilter, RequestRow, ScopeIds,
};
use crate::time::Millis;

const LOG_COLUMNS: &str = "t.id, t.ts, t.received, t.level, t.environment_id, t.environment, \
     t.project_id, t.project, t.integration_id, t.integration, t.runtime_id, t.module, \
     t.message, t.attributes";

fn attributes(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

pub(super) fn log_from_row(r: &Row) -> db::Result<StoredLog> {
    let level: i64 = r.get(3)?;
    let attrs: String = r.get(13)?;
    Ok(StoredLog {
        id: r.get(0)?,
        received: r.get(2)?,
        record: LogRecord {
            ts: r.get(1)?,
            level: usize::try_from(level)
                .ok()
                .and_then(|i| Level::ALL.get(i).copied())
                .unwrap_or(Level::Info),
            module: r.get(11)?,
            message: r.get(12)?,
            attributes: attributes(&attrs),
            source: Attribution {
                environment_id: r.get(4)?,
                environment: r.get(5)?,
                project_id: r.get(6)?,
                project: r.get(7)?,
                integration_id: r.get(8)?,
                integration: r.get(9)?,
                runtime_id: r.get(10)?,
            },
        },
    })
}

/// A WHERE clause built from constant fragments and its parameters.
struct Clause {
    dialect: Dialect,
    conditions: Vec<String>,
    params: Vec<SqlValue>,
    /// Write conditions on columns as `+t.x`, which SQLite cannot answer
    /// from an index (see [`Drive::Fts`]).
    no_index: bool,
}

impl Clause {
    fn new(dialect: Dialect) -> Clause {
        Clause {
            dialect,
            conditions: Vec::new(),
            params: Vec::new(),
            no_index: false,
        }
    }

    fn add<const N: usize>(&mut self, condition: &str, params: [SqlValue; N]) {
        self.conditions.push(if self.no_index {
            format!("+{condition}")
        } else {
            condition.to_string()
        });
        self.params.extend(params);
    }

    /// A text parameter: on PostgreSQL, whose text cannot hold NUL, with
    /// NUL as stored there (`store::telemetry::shared_text`), so that a
    /// filter with one is no error and finds what was stored with one.
    fn text(&self, text: &str) -> SqlValue {
        match self.dialect {
            Dialect::Sqlite => text.into(),
            Dialect::Postgres => super::telemetry::shared_text(text).into(),
        }
    }

    /// The rows of a JSON array of integers bound as text (`?`), as a
    /// subquery's body.
    fn id_list(&self) -> &'static str {
        id_list(self.dialect)
    }

    fn sql(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }
}

fn json_ids(ids: &[i64]) -> SqlValue {
    SqlValue::from(Value::from(ids.to_vec()).to_string())
}

/// The rows of a JSON array of integers bound as text (`?`): SQLite's
/// `json_each`; on PostgreSQL its own functions, so that telemetry needs
/// nothing of the control plane's schema (`json_each` is defined there).
fn id_list(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "SELECT value FROM json_each(?)",
        Dialect::Postgres => "SELECT CAST(jsonb_array_elements_text(CAST(? AS jsonb)) AS bigint)",
    }
}

/// PostgreSQL: the tsquery of a phrase bound as text (`?`): the text cut
/// into runs of letters and digits as the indexed message is (see
/// `store::postgres_migrations`), then read by `phraseto_tsquery`, which
/// takes plain text (its operators are punctuation to it).
const PG_PHRASE: &str = "phraseto_tsquery('simple', regexp_replace(?, '[^[:alnum:]]+', ' ', 'g'))";

/// The caller's visibility, on a table aliased `t` (every telemetry table
/// has the same attribution columns).
fn visibility_clause(c: &mut Clause, vis: &Visibility) {
    if !vis.everything {
        let ids = c.id_list();
        c.add(
            &format!(
                "(t.environment_id IN ({ids}) OR t.project_id IN ({ids}) \
                 OR t.integration_id IN ({ids}))"
            ),
            [
                json_ids(&vis.environments),
                json_ids(&vis.projects),
                json_ids(&vis.integrations),
            ],
        );
    }
}

/// The scope filters, on a table aliased `t`.
fn scope_clause(c: &mut Clause, scope: &ScopeIds) {
    if let Some(id) = scope.environment_id {
        c.add("t.environment_id = ?", [id.into()]);
    }
    if let Some(id) = scope.project_id {
        c.add("t.project_id = ?", [id.into()]);
    }
    if let Some(id) = scope.integration_id {
        c.add("t.integration_id = ?", [id.into()]);
    }
    if let Some(r) = &scope.runtime_id {
        let r = c.text(r);
        c.add("t.runtime_id = ?", [r]);
    }
}

fn time_clause(c: &mut Clause, from: Option<Millis>, to: Option<Millis>) {
    if let Some(from) = from {
        c.add("t.ts >= ?", [from.into()]);
    }
    if let Some(to) = to {
        c.add("t.ts < ?", [to.into()]);
    }
}

/// A log filter's time range as bounds on `key` (`t.id`, or FTS5's rowid,
/// which an index or FTS5 seeks to: ids are in time order), and as checks
/// of the time itself where the id bounds are not exact (times before
/// 1970 or after 2248, see `store::telemetry::log_id_range`).
fn log_time_clause(c: &mut Clause, key: &str, f: &LogFilter) {
    let (lo, hi) = log_id_range(f.from, f.to);
    for (bound, op) in [(lo, ">="), (hi, "<")] {
        if let Some(id) = bound {
            c.conditions.push(format!("{key} {op} ?"));
            c.params.push(id.into());
        }
    }
    time_clause(
        c,
        f.from.filter(|t| !exact_log_time(*t)),
        f.to.filter(|t| !exact_log_time(*t)),
    );
}

fn scope_of(f: &LogFilter) -> ScopeIds {
    ScopeIds {
        environment_id: f.environment_id,
        project_id: f.project_id,
        integration_id: f.integration_id,
        runtime_id: f.runtime_id.clone(),
    }
}

/// A phrase as an FTS5 string: double quotes, inner quotes doubled, so the
/// user's text is matched as one phrase and never read as FTS5 syntax.
/// A NUL would end the string for FTS5's parser ("unterminated string",
/// an error); it separates tokens like any other punctuation, so it
/// becomes a space.
pub(crate) fn fts_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\"").replace('\0', " "))
}

fn phrase(f: &LogFilter) -> Option<&str> {
    f.phrase.as_deref().filter(|p| !p.trim().is_empty())
}

/// A phrase as PostgreSQL's [`PG_PHRASE`] takes it: text cannot hold NUL
/// there, and NUL separates tokens like any other punctuation.
fn pg_phrase(text: &str) -> String {
    text.replace('\0', " ")
}

/// At most this many matching rows are collected through an index and
/// sorted by id; with more, walking `logs` by id finds a page quickly.
const FEW: i64 = 10_000;

/// How a log query finds its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drive {
    /// No row can match (an indexed filter has no candidates).
    Nothing,
    /// The ids of every matching row (at most [`FEW`]), found through the
    /// `(…, id)` index of a scope filter or the id range of the time range,
    /// sorted here; the page is fetched by id.
    Collected(Vec<i64>),
    /// `logs_by_id`, or the `(…, id)` index of a scope filter, in the order
    /// asked (within the time range's ids), the other filters checked row
    /// by row, stopping at the limit: for many matching rows, or no
    /// indexed filter.
    Ids,
    /// FTS5 yields matching rowids (ids) in the order asked, each row is
    /// fetched by id and checked, stopping at the limit; within these id
    /// bounds (the smallest and largest id of the rows the scope and time
    /// filters allow, when there are at most [`BOUNDED`]).
    Fts(Option<(i64, i64)>),
}

/// The filters of a log query except the phrase, on `logs t`.
fn filter_clause(q: &LogSelect, dialect: Dialect, no_index: bool) -> Clause {
    let f = q.filter;
    let mut c = Clause::new(dialect);
    c.no_index = no_index;
    visibility_clause(&mut c, q.vis);
    scope_clause(&mut c, &scope_of(f));
    if !f.levels.is_empty() {
        let levels: Vec<i64> = f
            .levels
            .iter()
            .filter_map(|l| Level::ALL.iter().position(|a| a == l))
            .map(|i| i as i64)
            .collect();
        let ids = c.id_list();
        c.add(&format!("t.level IN ({ids})"), [json_ids(&levels)]);
    }
    c
}

/// Whether a filter can be answered from an index (scope or time range).
fn indexed(f: &LogFilter) -> bool {
    f.environment_id.is_some()
        || f.project_id.is_some()
        || f.integration_id.is_some()
        || f.runtime_id.is_some()
        || f.from.is_some()
        || f.to.is_some()
}

/// The ids of up to [`FEW`] + 1 rows matching every filter and the cursor,
/// in no order (the planner picks an index of a scope filter or the time
/// range's ids; on PostgreSQL, with a phrase, the GIN index).
fn collect_sql(q: &LogSelect, dialect: Dialect) -> (String, Vec<SqlValue>) {
    let mut c = filter_clause(q, dialect, false);
    if dialect == Dialect::Postgres {
        if let Some(p) = phrase(q.filter) {
            c.add(
                &format!("t.message_tsv @@ {PG_PHRASE}"),
                [pg_phrase(p).into()],
            );
        }
    }
    log_time_clause(&mut c, "t.id", q.filter);
    if let Some(after) = q.after {
        c.add(
            match q.order {
                Order::Newest => "t.id < ?",
                Order::Oldest => "t.id > ?",
            },
            [after.into()],
        );
    }
    c.params.push((FEW + 1).into());
    (
        format!("SELECT t.id FROM logs t {} LIMIT ?", c.sql()),
        c.params,
    )
}

/// Rows whose id bounds a phrase search computes first (an index-only
/// scan of at most this many entries, a few milliseconds).
const BOUNDED: i64 = 100_000;

/// The id bounds of up to [`BOUNDED`] + 1 rows the scope and time filters
/// allow, and how many there are (for [`Drive::Fts`]).
fn bounds_sql(f: &LogFilter) -> (String, Vec<SqlValue>) {
    let mut c = Clause::new(Dialect::Sqlite);
    scope_clause(&mut c, &scope_of(f));
    log_time_clause(&mut c, "t.id", f);
    c.params.push((BOUNDED + 1).into());
    (
        format!(
            "SELECT count(*), min(id), max(id) FROM (SELECT t.id FROM logs t {} LIMIT ?)",
            c.sql()
        ),
        c.params,
    )
}

/// The SQL text and parameters of a log query driven by `drive`.
fn log_sql(q: &LogSelect, drive: &Drive, dialect: Dialect) -> (String, Vec<SqlValue>) {
    let newest = q.order == Order::Newest;
    let dir = if newest { "DESC" } else { "ASC" };
    if let Drive::Collected(ids) = drive {
        return (
            format!(
                "SELECT {LOG_COLUMNS} FROM logs t WHERE t.id IN ({}) ORDER BY t.id {dir}",
                id_list(dialect)
            ),
            vec![json_ids(ids)],
        );
    }
    let fts = matches!(drive, Drive::Fts(_));
    // FTS5 must drive, so no other index may (`+t.x`); without it, every
    // index SQLite may pick reads in id order.
    let mut c = filter_clause(q, dialect, fts);
    if dialect == Dialect::Postgres {
        // Walking ids with a common phrase (see the module doc): a
        // function call, which the GIN index cannot answer.
        if let Some(p) = phrase(q.filter) {
            c.add(
                &format!("ts_match_vq(t.message_tsv, {PG_PHRASE})"),
                [pg_phrase(p).into()],
            );
        }
    }
    let key = if fts {
        c.conditions.push("logs_fts MATCH ?".into());
        c.params
            .push(fts_phrase(phrase(q.filter).unwrap_or_default()).into());
        "logs_fts.rowid"
    } else {
        "t.id"
    };
    // Bounds on the driving key (`logs_by_id` or FTS5 seeks to them): the
    // time range's, the candidates' id range, and the cursor.
    log_time_clause(&mut c, key, q.filter);
    if let Drive::Fts(Some((lo, hi))) = drive {
        c.conditions.push(format!("{key} BETWEEN ? AND ?"));
        c.params.extend([(*lo).into(), (*hi).into()]);
    }
    if let Some(after) = q.after {
        c.conditions
            .push(format!("{key} {} ?", if newest { "<" } else { ">" }));
        c.params.push(after.into());
    }
    c.params.push(q.limit.into());
    let from = if fts {
        "logs_fts JOIN logs t ON t.id = logs_fts.rowid"
    } else {
        "logs t"
    };
    (
        format!(
            "SELECT {LOG_COLUMNS} FROM {from} {} ORDER BY {key} {dir} LIMIT ?",
            c.sql()
        ),
        c.params,
    )
}

/// The request-record filter (table alias `t`).
fn request_clause(f: &RequestFilter, vis: &Visibility, dialect: Dialect) -> Clause {
    let mut c = Clause::new(dialect);
    visibility_clause(&mut c, vis);
    scope_clause(&mut c, &f.scope);
    if let Some(s) = &f.service {
        let s = c.text(s);
        c.add("t.service = ?", [s]);
    }
    if let Some(r) = &f.resource {
        let r = c.text(r);
        c.add("t.resource = ?", [r]);
    }
    time_clause(&mut c, Some(f.from), Some(f.to));
    c
}

/// Request records read per query on PostgreSQL (see
/// [`TelemetryStore::each_request`]).
const REQUEST_PAGE: i64 = 10_000;

fn request_row<'r>(r: &'r Row) -> db::Result<RequestRow<'r>> {
    Ok(RequestRow {
        ts: r.get(0)?,
        service: text_ref(r.get_ref(1)?),
        resource: text_ref(r.get_ref(2)?),
        method: text_ref(r.get_ref(3)?),
        status: r.get(4)?,
        duration_ms: r.get(5)?,
    })
}

fn text_ref<'r>(v: ValueRef<'r>) -> &'r str {
    match v {
        ValueRef::Text(t) => t,
        _ => "",
    }
}

fn number_list<T: serde::de::DeserializeOwned>(text: Option<String>) -> Vec<T> {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn point_from_row(r: &Row) -> db::Result<MetricPoint> {
    let kind: String = r.get(10)?;
    let attrs: String = r.get(12)?;
    let count: Option<i64> = r.get(14)?;
    Ok(MetricPoint {
        ts: r.get(0)?,
        source: Attribution {
            environment_id: r.get(1)?,
            environment: r.get(2)?,
            project_id: r.get(3)?,
            project: r.get(4)?,
            integration_id: r.get(5)?,
            integration: r.get(6)?,
            runtime_id: r.get(7)?,
        },
        name: r.get(8)?,
        unit: r.get(9)?,
        kind: MetricKind::parse(&kind).unwrap_or(MetricKind::Gauge),
        attributes: attributes(&attrs),
        value: r.get(13)?,
        count: count.and_then(|c| u64::try_from(c).ok()),
        sum: r.get(15)?,
        bounds: number_list(r.get(16)?),
        buckets: number_list(r.get(17)?),
    })
}

impl TelemetryStore {
    /// How a log query finds its rows (see [`Drive`]).
    fn drive(tx: &Transaction, q: &LogSelect) -> Result<Drive> {
        let f = q.filter;
        if tx.dialect() == Dialect::Postgres {
            return Self::drive_shared(tx, q);
        }
        if !indexed(f) {
            return Ok(if phrase(f).is_some() {
                Drive::Fts(None)
            } else {
                Drive::Ids
            });
        }
        if phrase(f).is_some() {
            let (sql, params) = bounds_sql(f);
            let (n, lo, hi) =
                tx.prepare_cached(&sql)?
                    .query_row(params_from_iter(&params), |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, Option<i64>>(1)?,
                            r.get::<_, Option<i64>>(2)?,
                        ))
                    })?;
            return Ok(match (lo, hi) {
                _ if n == 0 => Drive::Nothing,
                (Some(lo), Some(hi)) if n <= BOUNDED => Drive::Fts(Some((lo, hi))),
                _ => Drive::Fts(None),
            });
        }
        Self::collect(tx, q)
    }

    /// PostgreSQL's drive (see the module doc): no FTS5, so a phrase, like
    /// a scope or time filter, first collects up to [`FEW`] ids.
    fn drive_shared(tx: &Transaction, q: &LogSelect) -> Result<Drive> {
        if phrase(q.filter).is_none() && !indexed(q.filter) {
            return Ok(Drive::Ids);
        }
        Self::collect(tx, q)
    }

    /// [`Drive::Collected`] with the ids of every matching row when there
    /// are at most [`FEW`] ([`Drive::Nothing`] when none), else
    /// [`Drive::Ids`].
    fn collect(tx: &Transaction, q: &LogSelect) -> Result<Drive> {
        let (sql, params) = collect_sql(q, tx.dialect());
        let mut ids: Vec<i64> = tx
            .prepare_cached(&sql)?
            .query_map(params_from_iter(&params), |r| r.get(0))?
            .collect::<db::Result<_>>()?;
        if ids.len() as i64 > FEW {
            return Ok(Drive::Ids);
        }
        match q.order {
            Order::Newest => ids.sort_unstable_by(|a, b| b.cmp(a)),
            Order::Oldest => ids.sort_unstable(),
        }
        ids.truncate(usize::try_from(q.limit).unwrap_or(0));
        Ok(if ids.is_empty() {
            Drive::Nothing
        } else {
            Drive::Collected(ids)
        })
    }

    /// Up to `q.limit` visible log records matching `q.filter`, in id
    /// order, which is time order (`q.order`), after id `q.after`.
    pub fn select_logs(&self, q: &LogSelect) -> Result<Vec<StoredLog>> {
        self.read(|tx| {
            let drive = Self::drive(tx, q)?;
            if drive == Drive::Nothing {
                return Ok(Vec::new());
            }
            let (sql, params) = log_sql(q, &drive, tx.dialect());
            let mut st = tx.prepare_cached(&sql)?;
            let rows = st
                .query_map(params_from_iter(&params), log_from_row)?
                .collect::<db::Result<_>>()?;
            Ok(rows)
        })
    }

    /// How [`TelemetryStore::select_logs`] runs `q`: the drive and the
    /// database's plan of the query that finds the rows, one line per step
    /// (SQLite's `EXPLAIN QUERY PLAN`, PostgreSQL's `EXPLAIN`; for tests
    /// and benchmarks).
    pub fn explain_logs(&self, q: &LogSelect) -> Result<(Drive, Vec<String>)> {
        self.read(|tx| {
            let drive = Self::drive(tx, q)?;
            let dialect = tx.dialect();
            let (sql, params) = match &drive {
                Drive::Nothing => return Ok((drive, Vec::new())),
                Drive::Collected(_) => collect_sql(q, dialect),
                _ => log_sql(q, &drive, dialect),
            };
            let (explain, column) = match dialect {
                Dialect::Sqlite => ("EXPLAIN QUERY PLAN", 3),
                Dialect::Postgres => ("EXPLAIN", 0),
            };
            let mut st = tx.prepare(&format!("{explain} {sql}"))?;
            let rows = st
                .query_map(params_from_iter(&params), |r| r.get::<_, String>(column))?
                .collect::<db::Result<_>>()?;
            Ok((drive, rows))
        })
    }

    /// Visits every visible request record matching `f` (unordered), without
    /// collecting them: the metrics bucket them as they come.
    pub fn each_request(
        &self,
        f: &RequestFilter,
        vis: &Visibility,
        mut visit: impl FnMut(&RequestRow),
    ) -> Result<()> {
        let dialect = self.dialect();
        let mut c = request_clause(f, vis, dialect);
        let columns = "t.ts, t.service, t.resource, t.method, t.status, t.duration_ms, t.id";
        if dialect == Dialect::Sqlite {
            let sql = format!("SELECT {columns} FROM requests t {}", c.sql());
            return self.read(|tx| {
                let mut st = tx.prepare_cached(&sql)?;
                let mut rows = st.query(params_from_iter(&c.params))?;
                while let Some(r) = rows.next()? {
                    visit(&request_row(&r)?);
                }
                Ok(())
            });
        }
        // PostgreSQL's client reads a whole result into memory: read it
        // in pages, by (ts, id), in one snapshot.
        c.add("(t.ts, t.id) > (?, ?)", [i64::MIN.into(), i64::MIN.into()]);
        let at = c.params.len() - 2;
        c.params.push(REQUEST_PAGE.into());
        let sql = format!(
            "SELECT {columns} FROM requests t {} ORDER BY t.ts, t.id LIMIT ?",
            c.sql()
        );
        self.read(|tx| loop {
            let mut st = tx.prepare_cached(&sql)?;
            let mut rows = st.query(params_from_iter(&c.params))?;
            let mut n = 0;
            let mut last = None;
            while let Some(r) = rows.next()? {
                visit(&request_row(&r)?);
                last = Some((r.get::<_, i64>(0)?, r.get::<_, i64>(6)?));
                n += 1;
            }
            match last {
                Some((ts, id)) if n >= REQUEST_PAGE => {
                    c.params[at] = ts.into();
                    c.params[at + 1] = id.into();
                }
                _ => return Ok(()),
            }
        })
    }

    /// The newest `limit` visible OTLP points named `f.name` in the window,
    /// returned oldest first.
    pub fn select_points(
        &self,
        f: &PointFilter,
        vis: &Visibility,
        limit: i64,
    ) -> Result<Vec<MetricPoint>> {
        let mut c = Clause::new(self.dialect());
        let name = c.text(&f.name);
        c.add("t.name = ?", [name]);
        visibility_clause(&mut c, vis);
        scope_clause(&mut c, &f.scope);
        time_clause(&mut c, Some(f.from), Some(f.to));
        c.params.push(limit.into());
        let sql = format!(
            "SELECT t.ts, t.environment_id, t.environment, t.project_id, t.project, \
             t.integration_id, t.integration, t.runtime_id, t.name, t.unit, t.kind, t.id, \
             t.attributes, t.value, t.count, t.sum, t.bounds, t.buckets \
             FROM metric_points t {} ORDER BY t.ts DESC, t.id DESC LIMIT ?",
            c.sql()
        );
        self.read(|tx| {
            let mut st = tx.prepare_cached(&sql)?;
            let mut rows: Vec<MetricPoint> = st
                .query_map(params_from_iter(&c.params), point_from_row)?
                .collect::<db::Result<_>>()?;
            rows.reverse();
            Ok(rows)
        })
    }

    /// The names of the visible OTLP metrics (in the window, if given), sorted.
    pub fn metric_names(
        &self,
        scope: &ScopeIds,
        vis: &Visibility,
        from: Option<Millis>,
        to: Option<Millis>,
    ) -> Result<Vec<String>> {
        let mut c = Clause::new(self.dialect());
        visibility_clause(&mut c, vis);
        scope_clause(&mut c, scope);
        time_clause(&mut c, from, to);
        let sql = format!("SELECT DISTINCT t.name FROM metric_points t {}", c.sql());
        let mut names: Vec<String> = self.read(|tx| {
            let mut st = tx.prepare_cached(&sql)?;
            let rows = st
                .query_map(params_from_iter(&c.params), |r| r.get(0))?
                .collect::<db::Result<_>>()?;
            Ok(rows)
        })?;
        // By their bytes, as SQLite's BINARY collation, whatever the
        // PostgreSQL database's collation.
        names.sort();
        Ok(names)
    }
}

/// Direct inserts for tests and benchmarks of the read side (the ingest
/// path has its own, in `store::telemetry`).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    impl TelemetryStore {
        /// Inserts request records as they are.
        pub(crate) fn insert_requests_for_test(
            &self,
            records: &[crate::model::telemetry::RequestRecord],
        ) {
            let mut conn = self.file().unwrap().writer.lock().unwrap();
            let tx = conn.transaction().unwrap();
            for r in records {
                tx.execute(
                    "INSERT INTO requests (ts, environment_id, environment, project_id, project, \
                     integration_id, integration, runtime_id, service, resource, method, status, \
                     duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    rusqlite::params![
                        r.ts,
                        r.source.environment_id,
                        r.source.environment,
                        r.source.project_id,
                        r.source.project,
                        r.source.integration_id,
                        r.source.integration,
                        r.source.runtime_id,
                        r.service,
                        r.resource,
                        r.method,
                        r.status,
                        r.duration_ms,
                    ],
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }

        /// Inserts OTLP points as they are.
        pub(crate) fn insert_points_for_test(&self, points: &[MetricPoint]) {
            let mut conn = self.file().unwrap().writer.lock().unwrap();
            let tx = conn.transaction().unwrap();
            for p in points {
                tx.execute(
                    "INSERT INTO metric_points (ts, environment_id, environment, project_id, project, \
                     integration_id, integration, runtime_id, name, kind, unit, attributes, value, \
                     count, sum, bounds, buckets) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                    rusqlite::params![
                        p.ts,
                        p.source.environment_id,
                        p.source.environment,
                        p.source.project_id,
                        p.source.project,
                        p.source.integration_id,
                        p.source.integration,
                        p.source.runtime_id,
                        p.name,
                        p.kind.as_str(),
                        p.unit,
                        Value::Object(p.attributes.clone()).to_string(),
                        p.value,
                        p.count.map(|c| c as i64),
                        p.sum,
                        Value::from(p.bounds.clone()).to_string(),
                        Value::from(p.buckets.clone()).to_string(),
                    ],
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;

    fn store(tag: &str) -> (std::path::PathBuf, TelemetryStore) {
        let dir = std::env::temp_dir().join(format!("icpd-unit-tq-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = TelemetryStore::open(&dir.join("telemetry.db")).unwrap();
        (dir, s)
    }

    /// Record `i`'s own time: two records in each millisecond.
    fn ts(i: i64) -> Millis {
        1_000_000 + i / 2
    }

    /// Record `i`'s id: its millisecond's, and it came before `i + 1`.
    fn id(i: i64) -> i64 {
        crate::store::telemetry::first_log_id(ts(i)) + i % 2
    }

    /// `n` records, integration 1 every third one (else 2), ERROR every
    /// seventh, "payment failed" every fifth; stored in batches of 1,000,
    /// the newest batch first, so every batch but the first is late.
    fn fill(s: &TelemetryStore, n: i64) {
        let records: Vec<LogRecord> = (0..n)
            .map(|i| LogRecord {
                ts: ts(i),
                level: if i % 7 == 0 {
                    Level::Error
                } else {
                    Level::Info
                },
                module: None,
                message: if i % 5 == 0 {
                    format!("payment failed for order {i}")
                } else {
                    format!("order {i} created")
                },
                attributes: Map::new(),
                source: Attribution {
                    environment_id: 1,
                    environment: "dev".into(),
                    project_id: Some(1),
                    project: Some("p".into()),
                    integration_id: Some(if i % 3 == 0 { 1 } else { 2 }),
                    integration: Some("i".into()),
                    runtime_id: None,
                },
            })
            .collect();
        for batch in records.chunks(1000).rev() {
            s.insert_logs(batch.to_vec(), 0).unwrap();
        }
    }

    /// The record numbers of a page of 6 after record `after`.
    fn page(s: &TelemetryStore, f: &LogFilter, order: Order, after: Option<i64>) -> Vec<i64> {
        let vis = Visibility {
            everything: true,
            ..Visibility::default()
        };
        let q = LogSelect {
            filter: f,
            vis: &vis,
            order,
            after: after.map(id),
            limit: 6,
        };
        s.select_logs(&q)
            .unwrap()
            .iter()
            .map(|l| {
                let i = 2 * (l.record.ts - 1_000_000) + l.id % 2;
                assert_eq!(id(i), l.id);
                i
            })
            .collect()
    }

    fn drive(s: &TelemetryStore, f: &LogFilter) -> (Drive, String) {
        let vis = Visibility {
            everything: true,
            ..Visibility::default()
        };
        let q = LogSelect {
            filter: f,
            vis: &vis,
            order: Order::Newest,
            after: None,
            limit: 6,
        };
        let (d, plan) = s.explain_logs(&q).unwrap();
        (d, plan.join("; "))
    }

    /// Which record numbers a filter keeps.
    type Keep = Box<dyn Fn(i64) -> bool>;

    #[test]
    fn each_drive_returns_the_same_rows_in_time_order_and_never_sorts_everything() {
        let (dir, s) = store("drives");
        let n = 3 * FEW + 30; // more than FEW rows of integration 1
        fill(&s, n);
        // What every query must return, computed here: records by number,
        // which is (time, arrival) order, whatever order they were stored in.
        let want = |keep: &dyn Fn(i64) -> bool, order: Order, after: Option<i64>| -> Vec<i64> {
            let mut v: Vec<i64> = (0..n).filter(|i| keep(*i)).collect();
            if order == Order::Newest {
                v.reverse();
            }
            v.into_iter()
                .filter(|i| match (after, order) {
                    (None, _) => true,
                    (Some(a), Order::Newest) => *i < a,
                    (Some(a), Order::Oldest) => *i > a,
                })
                .take(6)
                .collect()
        };
        let phrase = Some("payment failed".to_string());
        let cases: Vec<(&str, LogFilter, Keep)> = vec![
            ("no filter", LogFilter::default(), Box::new(|_| true)),
            (
                "integration 1 (many)",
                LogFilter {
                    integration_id: Some(1),
                    ..LogFilter::default()
                },
                Box::new(|i| i % 3 == 0),
            ),
            (
                "integration 1, errors (few)",
                LogFilter {
                    integration_id: Some(1),
                    levels: vec![Level::Error],
                    ..LogFilter::default()
                },
                Box::new(|i| i % 3 == 0 && i % 7 == 0),
            ),
            (
                "a narrow time range",
                LogFilter {
                    from: Some(1_000_100),
                    to: Some(1_000_200),
                    ..LogFilter::default()
                },
                Box::new(|i| (200..400).contains(&i)),
            ),
            (
                "phrase",
                LogFilter {
                    phrase: phrase.clone(),
                    ..LogFilter::default()
                },
                Box::new(|i| i % 5 == 0),
            ),
            (
                "phrase in a time range",
                LogFilter {
                    phrase: phrase.clone(),
                    from: Some(1_000_100),
                    to: Some(1_000_200),
                    ..LogFilter::default()
                },
                Box::new(|i| i % 5 == 0 && (200..400).contains(&i)),
            ),
            (
                "phrase, integration 2, errors",
                LogFilter {
                    phrase,
                    integration_id: Some(2),
                    levels: vec![Level::Error],
                    ..LogFilter::default()
                },
                Box::new(|i| i % 5 == 0 && i % 3 != 0 && i % 7 == 0),
            ),
        ];
        for (name, f, keep) in &cases {
            for order in [Order::Newest, Order::Oldest] {
                // n / 2 is the second record of its millisecond: a page
                // boundary inside a tie, in both orders.
                for after in [None, Some(n / 2), Some(n / 2 - 1)] {
                    assert_eq!(
                        page(&s, f, order, after),
                        want(keep, order, after),
                        "{name} {order:?} {after:?}"
                    );
                }
            }
            let (d, plan) = drive(&s, f);
            assert!(!plan.contains("TEMP B-TREE"), "{name}: {d:?} {plan}");
        }
        let (d, plan) = drive(&s, &cases[0].1);
        assert_eq!(
            (d, plan.as_str()),
            (Drive::Ids, "SCAN t USING INDEX logs_by_id")
        );
        let (d, plan) = drive(&s, &cases[1].1);
        assert_eq!(d, Drive::Ids);
        assert_eq!(
            plan,
            "SEARCH t USING INDEX logs_by_integration (integration_id=?)"
        );
        let (d, plan) = drive(&s, &cases[2].1);
        assert!(
            matches!(d, Drive::Collected(ref v) if v.len() == 6),
            "{d:?}"
        );
        assert!(plan.contains("logs_by_integration"), "{plan}");
        let (d, plan) = drive(&s, &cases[3].1);
        assert!(matches!(d, Drive::Collected(_)), "{d:?}");
        assert_eq!(
            plan,
            "SEARCH t USING COVERING INDEX logs_by_id (id>? AND id<?)"
        );
        let (d, plan) = drive(&s, &cases[4].1);
        assert_eq!(d, Drive::Fts(None));
        assert!(
            plan.starts_with("SCAN logs_fts VIRTUAL TABLE")
                && plan.ends_with("; SEARCH t USING INDEX logs_by_id (id=?)"),
            "{plan}"
        );
        assert_eq!(
            drive(&s, &cases[5].1).0,
            Drive::Fts(Some((id(200), id(399))))
        );
        let nothing = LogFilter {
            integration_id: Some(3),
            ..LogFilter::default()
        };
        assert_eq!(drive(&s, &nothing).0, Drive::Nothing);
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn time_ranges_hold_exactly_their_records_where_ids_share_a_millisecond() {
        let (dir, s) = store("edges");
        // Times up to 1 share the first millisecond's ids, in arrival order.
        let times = [5, -3, 1, -7, 0, 2];
        let records: Vec<LogRecord> = times
            .iter()
            .map(|ts| LogRecord {
                ts: *ts,
                level: Level::Info,
                module: None,
                message: format!("at {ts}"),
                attributes: Map::new(),
                source: Attribution {
                    environment_id: 1,
                    environment: "dev".into(),
                    ..Attribution::default()
                },
            })
            .collect();
        for r in records {
            s.insert_logs(vec![r], 0).unwrap();
        }
        let vis = Visibility {
            everything: true,
            ..Visibility::default()
        };
        for (from, to, phrase, want) in [
            (Some(-5), Some(1), None, vec![-3, 0]),
            (Some(1), Some(3), None, vec![1, 2]),
            (Some(-10), Some(-4), None, vec![-7]),
            (None, Some(0), Some("at"), vec![-3, -7]),
            (Some(2), None, Some("at"), vec![2, 5]),
        ] {
            let f = LogFilter {
                from,
                to,
                phrase: phrase.map(str::to_string),
                ..LogFilter::default()
            };
            let got: Vec<Millis> = s
                .select_logs(&LogSelect {
                    filter: &f,
                    vis: &vis,
                    order: Order::Oldest,
                    after: None,
                    limit: 10,
                })
                .unwrap()
                .iter()
                .map(|l| l.record.ts)
                .collect();
            assert_eq!(got, want, "{from:?} {to:?} {phrase:?}");
        }
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_phrase_is_never_fts5_syntax() {
        for (text, want) in [
            ("payment failed", "\"payment failed\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("a OR b*", "\"a OR b*\""),
            ("a\0b", "\"a b\""),
        ] {
            assert_eq!(fts_phrase(text), want);
        }
    }
}
