//! `telemetry.db`: logs, request records and OTLP metric points, in their
//! own SQLite file beside `icp.db`, so that their volume, retention deletes
//! and vacuuming never take the lock heartbeats and management writes wait
//! on (see ARCHITECTURE.md).
//!
//! Two connections: one writer (ingest, retention) and one reader
//! (queries), so a long search never delays an ingest; WAL lets them run at
//! once. `synchronous = NORMAL`: a power cut may lose the last
//! transactions of telemetry, never corrupt the file, and ingest does not
//! wait for an fsync per batch.
//!
//! Logs are rows of `logs` plus an FTS5 index `logs_fts` (contentless, the
//! rowid is `logs.id`), kept in step by the code that inserts and deletes.
//!
//! A log's id is its place in time order: the record's own time in Unix
//! milliseconds times 2^20, plus its arrival rank among the records of that
//! millisecond ([`log_id`]). Ordering by id is ordering by (time, arrival).
//! The id is FTS5's rowid and leads every index of `logs` (`logs_by_id`,
//! and `(scope, id)` for each scope), so every plan of `telemetry_query`
//! (FTS5 yielding rowids in order, walking `logs_by_id`, sorting collected
//! ids) returns records by their own time, whenever they arrived, and a
//! time range is a range of ids. The table itself stays in arrival order
//! (its implicit rowid): a batch is appended, not scattered among the
//! rows of the last seconds, which with many shippers writes several times
//! the pages; only the narrow indexes are. A `(ts, id)` index beside
//! arrival-order ids could sort a scan, but not the rowids FTS5 yields:
//! a phrase search would have to fetch every match to sort it.
//!
//! The schema is versioned like `icp.db`'s: `PRAGMA user_version` counts
//! applied migrations; a newer file is refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::Connection;

use super::db;
use super::db::{params, OptionalExtension, Queries, Transaction};

use crate::error::{Error, Result};
use crate::model::telemetry::{Attribution, LogRecord, MetricPoint, RequestRecord, StoredLog};
use crate::time::Millis;

/// The schema, one migration per entry, append-only.
const MIGRATIONS: &[&str] = &[
    // 1: logs with full-text search, request records, OTLP metric points.
    "CREATE TABLE logs (
        id INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        received INTEGER NOT NULL,
        level INTEGER NOT NULL, -- index into Level::ALL: 0 TRACE .. 5 FATAL
        environment_id INTEGER NOT NULL,
        environment TEXT NOT NULL,
        project_id INTEGER,
        project TEXT,
        integration_id INTEGER,
        integration TEXT,
        runtime_id TEXT,
        module TEXT,
        message TEXT NOT NULL,
        attributes TEXT NOT NULL
    );
    CREATE INDEX logs_by_ts ON logs (ts);
    CREATE INDEX logs_by_integration ON logs (integration_id, ts);
    CREATE INDEX logs_by_environment ON logs (environment_id, ts);
    CREATE INDEX logs_by_runtime ON logs (runtime_id, ts);
    CREATE VIRTUAL TABLE logs_fts USING fts5 (
        message, content = '', contentless_delete = 1
    );
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        environment_id INTEGER NOT NULL,
        environment TEXT NOT NULL,
        project_id INTEGER,
        project TEXT,
        integration_id INTEGER,
        integration TEXT,
        runtime_id TEXT,
        service TEXT NOT NULL,
        resource TEXT NOT NULL,
        method TEXT NOT NULL,
        status INTEGER NOT NULL,
        duration_ms REAL NOT NULL
    );
    CREATE INDEX requests_by_ts ON requests (ts);
    CREATE INDEX requests_by_integration ON requests (integration_id, ts);
    CREATE INDEX requests_by_runtime ON requests (runtime_id, ts);
    CREATE TABLE metric_points (
        id INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        environment_id INTEGER NOT NULL,
        environment TEXT NOT NULL,
        project_id INTEGER,
        project TEXT,
        integration_id INTEGER,
        integration TEXT,
        runtime_id TEXT,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        unit TEXT,
        attributes TEXT NOT NULL,
        value REAL,
        count INTEGER,
        sum REAL,
        bounds TEXT,
        buckets TEXT
    );
    CREATE INDEX metric_points_by_name ON metric_points (name, ts);
    CREATE INDEX metric_points_by_ts ON metric_points (ts);",
    // 2: log ids in time order (see `log_id`): the table rebuilt in
    // (time, old id) order with new ids, its indexes led by the id (which
    // also bounds time ranges, so `logs_by_ts` goes), the text index
    // rebuilt with the new ids as rowids. The n-th row's id is n + max over
    // rows j <= n of (base_j - j), base being the first id of its
    // millisecond: its base, or one past the row before when more than 2^20
    // rows share a millisecond; such a row's time moves to the millisecond
    // its id is in (as `log_id` does).
    "CREATE TABLE logs_in_time_order (
        id INTEGER NOT NULL, -- place in time order, see store::telemetry::log_id; the FTS5 rowid
        ts INTEGER NOT NULL,
        received INTEGER NOT NULL,
        level INTEGER NOT NULL, -- index into Level::ALL: 0 TRACE .. 5 FATAL
        environment_id INTEGER NOT NULL,
        environment TEXT NOT NULL,
        project_id INTEGER,
        project TEXT,
        integration_id INTEGER,
        integration TEXT,
        runtime_id TEXT,
        module TEXT,
        message TEXT NOT NULL,
        attributes TEXT NOT NULL
    );
    INSERT INTO logs_in_time_order (id, ts, received, level, environment_id, environment,
        project_id, project, integration_id, integration, runtime_id, module, message, attributes)
    SELECT id, CASE WHEN id >= base + 1048576 THEN id / 1048576 ELSE ts END, received, level,
        environment_id, environment, project_id, project, integration_id, integration,
        runtime_id, module, message, attributes
    FROM (SELECT n + max(base - n) OVER (ORDER BY n) AS id, base, ts, received, level,
                 environment_id, environment, project_id, project, integration_id, integration,
                 runtime_id, module, message, attributes
          FROM (SELECT row_number() OVER (ORDER BY min(max(ts, 1), 8796093022207), id) AS n,
                       min(max(ts, 1), 8796093022207) * 1048576 AS base, *
                FROM logs))
    ORDER BY id;
    DROP TABLE logs;
    ALTER TABLE logs_in_time_order RENAME TO logs;
    CREATE UNIQUE INDEX logs_by_id ON logs (id);
    CREATE INDEX logs_by_integration ON logs (integration_id, id);
    CREATE INDEX logs_by_environment ON logs (environment_id, id);
    CREATE INDEX logs_by_runtime ON logs (runtime_id, id);
    DROP TABLE logs_fts;
    CREATE VIRTUAL TABLE logs_fts USING fts5 (
        message, content = '', contentless_delete = 1
    );
    INSERT INTO logs_fts (rowid, message) SELECT id, message FROM logs;",
];

/// Bits of a log id below its millisecond: up to 2^20 (1,048,576) records
/// of one millisecond.
const SEQ_BITS: u32 = 20;
/// The first millisecond with ids of its own (1970-01-01T00:00:00.001Z,
/// so no id is 0, which no cursor names); earlier times share its ids.
const MIN_ID_MS: Millis = 1;
/// The last one (in 2248); 43 + 20 bits fill a positive i64. Later times
/// share its ids.
const MAX_ID_MS: Millis = (1 << (63 - SEQ_BITS)) - 1;

/// The first id of the millisecond holding `ts`.
pub(crate) fn first_log_id(ts: Millis) -> i64 {
    ts.clamp(MIN_ID_MS, MAX_ID_MS) << SEQ_BITS
}

/// Ids bounding the records whose own time is in `[from, to)`: every such
/// record has `lo <= id < hi` (`None`: unbounded). A bound is exact (no
/// other record is within it) when [`exact_log_time`] says so: times from
/// 1970 to 2248, apart from the first and last milliseconds with ids,
/// which earlier and later times share.
pub(crate) fn log_id_range(from: Option<Millis>, to: Option<Millis>) -> (Option<i64>, Option<i64>) {
    (
        from.map(first_log_id),
        to.filter(|to| *to <= MAX_ID_MS)
            .map(|to| first_log_id(to.max(MIN_ID_MS + 1))),
    )
}

/// Whether [`log_id_range`]'s bound for this time is exact, so a query
/// need not check the time itself.
pub(crate) fn exact_log_time(t: Millis) -> bool {
    (MIN_ID_MS + 1..=MAX_ID_MS).contains(&t)
}

/// The last log id taken in recent milliseconds (keyed by their first
/// id), so that a record of a millisecond seen before needs no index read:
/// with many shippers each millisecond gets records from many batches.
/// Only this process writes logs, and an entry is never below the largest
/// id of its millisecond in the table (a rolled-back batch leaves it
/// higher, which only skips ids). Emptied when it reaches [`LAST_IDS`].
#[derive(Default)]
struct LastIds(HashMap<i64, i64>);

/// Milliseconds [`LastIds`] remembers (about a minute at a thousand
/// records a second, each in its own millisecond).
const LAST_IDS: usize = 1 << 16;

/// The id of a new log record at `ts`, and its time: one past the last id
/// taken in its millisecond, or the millisecond's first. So ids order
/// records by time, then arrival. When a millisecond's 2^20 ids are all
/// taken (a shipper stamping a flood with one time), the record takes the
/// first free id after them and the time of the millisecond that id is in
/// (a later one): it is stored a little late rather than refused, and its
/// time still agrees with its id.
fn log_id(tx: &Transaction, ts: Millis, last: &mut LastIds) -> Result<(i64, Millis)> {
    let first = first_log_id(ts);
    let last_of_ms = first + ((1 << SEQ_BITS) - 1);
    let next = |taken: i64| {
        taken
            .checked_add(1)
            .ok_or_else(|| Error::Internal("every log id is taken".into()))
    };
    let mut id = match last.0.get(&first) {
        Some(taken) => next(*taken)?,
        None => match tx
            .prepare_cached(
                "SELECT id FROM logs WHERE id BETWEEN ?1 AND ?2 ORDER BY id DESC LIMIT 1",
            )?
            .query_row([first, last_of_ms], |r| r.get::<_, i64>(0))
            .optional()?
        {
            Some(taken) => next(taken)?,
            None => first,
        },
    };
    let mut ts = ts;
    if id > last_of_ms {
        let mut taken = tx.prepare_cached("SELECT 1 FROM logs WHERE id = ?1")?;
        while taken.exists([id])? {
            id = next(id)?;
        }
        ts = id >> SEQ_BITS;
    }
    if last.0.len() >= LAST_IDS {
        last.0.clear();
    }
    last.0.insert(first, id);
    Ok((id, ts))
}

/// A handle on `telemetry.db`.
pub struct TelemetryStore {
    /// Ingest and retention.
    pub(in crate::store) writer: Mutex<Connection>,
    /// Taken under `writer`'s lock, by log inserts.
    last_ids: Mutex<LastIds>,
    /// Queries.
    pub(in crate::store) reader: Mutex<Connection>,
    path: PathBuf,
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)
        .map_err(|e| Error::DataDir(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl TelemetryStore {
    /// Opens (creating if needed) the telemetry database at `path`.
    pub fn open(path: &Path) -> Result<TelemetryStore> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        super::sqlite::private_files(path)?;
        let writer = open_connection(path)?;
        // Incremental auto-vacuum must be chosen before the first table:
        // retention gives freed pages back to the file system with
        // `PRAGMA incremental_vacuum`.
        writer.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")?;
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::DataDir(format!(
                "{} cannot use WAL mode (got {mode})",
                path.display()
            )));
        }
        // A retention pass can grow the WAL by many pages; once checkpointed
        // it is cut back to this size instead of staying that large.
        writer
            .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = 67108864;")?;
        migrate(&writer, path)?;
        let reader = open_connection(path)?;
        reader.execute_batch("PRAGMA query_only = ON;")?;
        Ok(TelemetryStore {
            writer: Mutex::new(writer),
            last_ids: Mutex::default(),
            reader: Mutex::new(reader),
            path: path.to_path_buf(),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }
}

/// Rows deleted by one retention step, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    pub logs: u64,
    pub requests: u64,
    pub points: u64,
}

impl Deleted {
    pub fn total(&self) -> u64 {
        self.logs + self.requests + self.points
    }

    pub fn add(&mut self, other: Deleted) {
        self.logs += other.logs;
        self.requests += other.requests;
        self.points += other.points;
    }
}

/// What retention runs per table (logs, request records, metric points),
/// oldest first: logs in id order (time order, `logs_by_id`), the others
/// by `ts` (their `_by_ts` index).
struct Aged {
    /// Up to ?3 rows with `ts <= ?1` (and, for logs, an id up to ?2; the
    /// others leave ?2 unused), oldest first, as (rowid, FTS5 rowid).
    oldest: &'static str,
    delete: &'static str,
    /// The time of the ?1-th oldest row (from 0).
    nth: &'static str,
}

const AGED: [Aged; 3] = [
    Aged {
        oldest: "SELECT rowid, id FROM logs WHERE id <= ?2 AND ts <= ?1 ORDER BY id LIMIT ?3",
        delete: "DELETE FROM logs WHERE rowid = ?1",
        nth: "SELECT ts FROM logs ORDER BY id LIMIT 1 OFFSET ?1",
    },
    Aged {
        oldest: "SELECT id, id FROM requests WHERE ts <= ?1 ORDER BY ts LIMIT ?3",
        delete: "DELETE FROM requests WHERE id = ?1",
        nth: "SELECT ts FROM requests ORDER BY ts LIMIT 1 OFFSET ?1",
    },
    Aged {
        oldest: "SELECT id, id FROM metric_points WHERE ts <= ?1 ORDER BY ts LIMIT ?3",
        delete: "DELETE FROM metric_points WHERE id = ?1",
        nth: "SELECT ts FROM metric_points ORDER BY ts LIMIT 1 OFFSET ?1",
    },
];

const INSERT_LOG: &str = "INSERT INTO logs (id, ts, received, level, environment_id, environment, \
     project_id, project, integration_id, integration, runtime_id, module, message, attributes) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
const INSERT_LOG_TEXT: &str = "INSERT INTO logs_fts (rowid, message) VALUES (?1, ?2)";
const INSERT_REQUEST: &str = "INSERT INTO requests (ts, environment_id, environment, project_id, \
     project, integration_id, integration, runtime_id, service, resource, method, status, duration_ms) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
const INSERT_POINT: &str =
    "INSERT INTO metric_points (ts, environment_id, environment, project_id, \
     project, integration_id, integration, runtime_id, name, kind, unit, attributes, value, count, \
     sum, bounds, buckets) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

fn json_text<T: serde::Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal(format!("encoding telemetry JSON: {e}")))
}

/// `logs.level`: the index into `Level::ALL` (the enum's declaration order).
fn level_index(level: crate::model::telemetry::Level) -> i64 {
    level as i64
}

impl TelemetryStore {
    fn write<T>(&self, f: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = Transaction::sqlite(
            conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?,
        );
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Stores a batch of logs, request records and metric points in one
    /// transaction; returns the logs as stored (with their ids, in order),
    /// for the live tail.
    pub fn insert_batch(
        &self,
        logs: Vec<LogRecord>,
        requests: &[RequestRecord],
        points: &[MetricPoint],
        received: Millis,
    ) -> Result<Vec<StoredLog>> {
        if logs.is_empty() && requests.is_empty() && points.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|tx| {
            let mut last_ids = self.last_ids.lock().unwrap_or_else(|p| p.into_inner());
            let stored = insert_logs(tx, logs, received, &mut last_ids)?;
            insert_requests(tx, requests)?;
            insert_points(tx, points)?;
            Ok(stored)
        })
    }

    /// Stores logs (and their full-text rows) in one transaction.
    pub fn insert_logs(&self, logs: Vec<LogRecord>, received: Millis) -> Result<Vec<StoredLog>> {
        self.insert_batch(logs, &[], &[], received)
    }

    /// Stores request records in one transaction.
    pub fn insert_requests(&self, requests: &[RequestRecord]) -> Result<()> {
        self.insert_batch(Vec::new(), requests, &[], 0).map(drop)
    }

    /// Stores metric points in one transaction.
    pub fn insert_points(&self, points: &[MetricPoint]) -> Result<()> {
        self.insert_batch(Vec::new(), &[], points, 0).map(drop)
    }

    /// Deletes up to `chunk` rows per table whose own time is before
    /// `cutoff`, oldest first, in one transaction (a short one, so ingest
    /// never waits long). Call again until it deletes nothing.
    pub fn delete_older_than(&self, cutoff: Millis, chunk: usize) -> Result<Deleted> {
        self.write(|tx| delete_up_to(tx, cutoff - 1, chunk))
    }

    /// Deletes the oldest records across logs, requests and metric points:
    /// every row up to the time of the `chunk`-th oldest row of whichever
    /// table reaches it first, at most `chunk` rows per table, in one
    /// transaction. Deletes something whenever any table has rows.
    pub fn delete_oldest(&self, chunk: usize) -> Result<Deleted> {
        self.write(|tx| {
            let offset = i64::try_from(chunk.max(1) - 1).unwrap_or(i64::MAX);
            let mut cutoff = i64::MAX;
            for aged in &AGED {
                let nth: Option<i64> = tx
                    .prepare_cached(aged.nth)?
                    .query_row([offset], |r| r.get(0))
                    .optional()?;
                if let Some(ts) = nth {
                    cutoff = cutoff.min(ts);
                }
            }
            delete_up_to(tx, cutoff, chunk)
        })
    }

    /// Bytes in use by the database's pages (the file minus its free
    /// pages; the WAL is not counted). Retention keeps this under its limit.
    pub fn live_bytes(&self) -> Result<u64> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok(u64::try_from((pages - free).max(0) * size).unwrap_or(0))
    }

    /// Size of the database file as SQLite sees it (pages, free ones included).
    pub fn file_bytes(&self) -> Result<u64> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok(u64::try_from(pages.max(0) * size).unwrap_or(0))
    }

    /// Bytes in free pages: what [`TelemetryStore::vacuum_step`] can give
    /// back to the file system.
    pub fn free_bytes(&self) -> Result<u64> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok(u64::try_from(free.max(0) * size).unwrap_or(0))
    }

    /// Gives up to 1,024 free pages back to the file system (`PRAGMA
    /// incremental_vacuum`, its own short transaction: it moves pages from
    /// the end of the file into free ones, so a large vacuum is done in
    /// steps); returns how many free pages remain.
    pub fn vacuum_step(&self) -> Result<u64> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        {
            // One row per page freed; step to the end.
            let mut st = conn.prepare_cached("PRAGMA incremental_vacuum(1024)")?;
            let mut rows = st.query([])?;
            while rows.next()?.is_some() {}
        }
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        Ok(u64::try_from(free).unwrap_or(0))
    }

    /// Lets the full-text index merge some of its segments (bounded work),
    /// which drops the entries of deleted rows.
    pub fn merge_text_index(&self) -> Result<()> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        conn.execute_batch("INSERT INTO logs_fts (logs_fts, rank) VALUES ('merge', 500);")?;
        Ok(())
    }

    /// Copies the WAL into the database file without waiting for readers;
    /// a complete checkpoint also cuts the file to its pages.
    pub fn checkpoint(&self) -> Result<()> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }
}

/// Stores logs in time order (arrival order within a millisecond), so
/// their ids, and FTS5's rowids, rise within the transaction.
fn insert_logs(
    tx: &Transaction,
    mut logs: Vec<LogRecord>,
    received: Millis,
    last_ids: &mut LastIds,
) -> Result<Vec<StoredLog>> {
    if logs.is_empty() {
        return Ok(Vec::new());
    }
    logs.sort_by_key(|r| r.ts);
    let mut row = tx.prepare_cached(INSERT_LOG)?;
    let mut text = tx.prepare_cached(INSERT_LOG_TEXT)?;
    let mut stored = Vec::with_capacity(logs.len());
    for mut record in logs {
        let id;
        (id, record.ts) = log_id(tx, record.ts, last_ids)?;
        let s = &record.source;
        row.execute(params![
            id,
            record.ts,
            received,
            level_index(record.level),
            s.environment_id,
            s.environment,
            s.project_id,
            s.project,
            s.integration_id,
            s.integration,
            s.runtime_id,
            record.module,
            record.message,
            json_text(&record.attributes)?,
        ])?;
        text.execute(params![id, record.message])?;
        stored.push(StoredLog {
            id,
            received,
            record,
        });
    }
    Ok(stored)
}

fn insert_requests(tx: &Transaction, requests: &[RequestRecord]) -> Result<()> {
    if requests.is_empty() {
        return Ok(());
    }
    let mut row = tx.prepare_cached(INSERT_REQUEST)?;
    for r in requests {
        let s: &Attribution = &r.source;
        row.execute(params![
            r.ts,
            s.environment_id,
            s.environment,
            s.project_id,
            s.project,
            s.integration_id,
            s.integration,
            s.runtime_id,
            r.service,
            r.resource,
            r.method,
            r.status,
            r.duration_ms,
        ])?;
    }
    Ok(())
}

fn insert_points(tx: &Transaction, points: &[MetricPoint]) -> Result<()> {
    if points.is_empty() {
        return Ok(());
    }
    let mut row = tx.prepare_cached(INSERT_POINT)?;
    for p in points {
        let s = &p.source;
        let histogram = p.kind == crate::model::telemetry::MetricKind::Histogram;
        let (bounds, buckets) = if histogram {
            (Some(json_text(&p.bounds)?), Some(json_text(&p.buckets)?))
        } else {
            (None, None)
        };
        row.execute(params![
            p.ts,
            s.environment_id,
            s.environment,
            s.project_id,
            s.project,
            s.integration_id,
            s.integration,
            s.runtime_id,
            p.name,
            p.kind.as_str(),
            p.unit,
            json_text(&p.attributes)?,
            p.value,
            p.count.map(|c| i64::try_from(c).unwrap_or(i64::MAX)),
            p.sum,
            bounds,
            buckets,
        ])?;
    }
    Ok(())
}

/// Deletes up to `chunk` rows per table with `ts <= last`, oldest first;
/// a log's full-text row goes with it.
fn delete_up_to(tx: &Transaction, last: Millis, chunk: usize) -> Result<Deleted> {
    let limit = i64::try_from(chunk).unwrap_or(i64::MAX);
    let last_id = match log_id_range(None, last.checked_add(1)).1 {
        Some(end) => end - 1,
        None => i64::MAX,
    };
    let mut deleted = [0u64; 3];
    for (n, aged) in AGED.iter().enumerate() {
        let rows: Vec<(i64, i64)> = tx
            .prepare_cached(aged.oldest)?
            .query_map(params![last, last_id, limit], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<db::Result<_>>()?;
        let mut row = tx.prepare_cached(aged.delete)?;
        for (rowid, _) in &rows {
            row.execute([rowid])?;
        }
        if n == 0 {
            let mut text = tx.prepare_cached("DELETE FROM logs_fts WHERE rowid = ?1")?;
            for (_, id) in &rows {
                text.execute([id])?;
            }
        }
        deleted[n] = rows.len() as u64;
    }
    Ok(Deleted {
        logs: deleted[0],
        requests: deleted[1],
        points: deleted[2],
    })
}

fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(Error::DataDir(format!(
            "{} has telemetry schema version {version}, newer than this icpd knows ({known}); use a newer icpd",
            path.display()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        // Some rewrite every log record (2 does): say why a start waits.
        if version > 0 {
            log::info!(
                "{}: applying telemetry schema migration {}",
                path.display(),
                i + 1
            );
        }
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_migrates_and_reopens() {
        let dir = std::env::temp_dir().join(format!("icpd-telemetry-{}", std::process::id()));
        let path = dir.join("telemetry.db");
        let s = TelemetryStore::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        drop(s);
        let s = TelemetryStore::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let vacuum: i64 = s
            .reader
            .lock()
            .unwrap()
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .unwrap();
        assert_eq!(vacuum, 2, "incremental auto-vacuum");
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    use crate::model::telemetry::{Level, MetricKind};

    fn source() -> Attribution {
        Attribution {
            environment_id: 1,
            environment: "dev".into(),
            project_id: Some(2),
            project: Some("shop".into()),
            integration_id: Some(3),
            integration: Some("orders".into()),
            runtime_id: Some("rt-1".into()),
        }
    }

    fn log(ts: Millis, message: &str) -> LogRecord {
        LogRecord {
            ts,
            level: Level::Warn,
            module: Some("acme/orders".into()),
            message: message.into(),
            attributes: serde_json::json!({"k": 1}).as_object().unwrap().clone(),
            source: source(),
        }
    }

    fn request(ts: Millis) -> RequestRecord {
        RequestRecord {
            ts,
            service: "orders".into(),
            resource: "/orders".into(),
            method: "GET".into(),
            status: 200,
            duration_ms: 1.5,
            source: source(),
        }
    }

    fn point(ts: Millis) -> MetricPoint {
        MetricPoint {
            ts,
            name: "latency".into(),
            kind: MetricKind::Histogram,
            unit: Some("ms".into()),
            attributes: Default::default(),
            value: None,
            count: Some(3),
            sum: Some(7.0),
            bounds: vec![1.0, 5.0],
            buckets: vec![1, 1, 1],
            source: source(),
        }
    }

    fn count(s: &TelemetryStore, sql: &str) -> i64 {
        s.reader
            .lock()
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }

    fn matches(s: &TelemetryStore, phrase: &str) -> i64 {
        s.reader
            .lock()
            .unwrap()
            .query_row(
                "SELECT count(*) FROM logs_fts WHERE logs_fts MATCH ?1",
                [format!("\"{phrase}\"")],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn ids_and_times(s: &TelemetryStore) -> Vec<(i64, Millis, String)> {
        let conn = s.reader.lock().unwrap();
        let mut st = conn
            .prepare("SELECT id, ts, message FROM logs ORDER BY id")
            .unwrap();
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        rows
    }

    #[test]
    fn log_ids_follow_time_then_arrival_whenever_a_batch_arrives() {
        let dir = std::env::temp_dir().join(format!("icpd-telemetry-ids-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = TelemetryStore::open(&dir.join("telemetry.db")).unwrap();
        let ms = first_log_id;
        // A batch out of order, then a late one with older times and a tie.
        let stored = s
            .insert_logs(vec![log(30, "c"), log(10, "a"), log(30, "d")], 0)
            .unwrap();
        let ids: Vec<i64> = stored.iter().map(|l| l.id).collect();
        assert_eq!(ids, [ms(10), ms(30), ms(30) + 1], "sorted by time");
        s.insert_logs(vec![log(20, "b"), log(30, "e"), log(-5, "before 1970")], 0)
            .unwrap();
        let got: Vec<(i64, Millis, String)> = ids_and_times(&s);
        let want: Vec<(i64, Millis, String)> = [
            (ms(-5), -5, "before 1970"),
            (ms(10), 10, "a"),
            (ms(20), 20, "b"),
            (ms(30), 30, "c"),
            (ms(30) + 1, 30, "d"),
            (ms(30) + 2, 30, "e"),
        ]
        .map(|(id, ts, m)| (id, ts, m.to_string()))
        .into();
        assert_eq!(got, want);
        // A millisecond whose 2^20 ids are taken: the next record of it
        // takes the first free id after them, and the next millisecond's
        // records come after that.
        s.writer
            .lock()
            .unwrap()
            .execute(
                "INSERT INTO logs (id, ts, received, level, environment_id, environment, message, attributes) \
                 VALUES (?1, 40, 0, 2, 1, 'dev', 'the last of 40', '{}'), \
                        (?2, 41, 0, 2, 1, 'dev', 'the first of 41', '{}')",
                [ms(41) - 1, ms(41)],
            )
            .unwrap();
        let stored = s
            .insert_logs(
                vec![log(40, "spilled"), log(40, "spilled too"), log(41, "g")],
                0,
            )
            .unwrap();
        let ids: Vec<(i64, Millis)> = stored.iter().map(|l| (l.id, l.record.ts)).collect();
        assert_eq!(
            ids,
            [(ms(41) + 1, 41), (ms(41) + 2, 41), (ms(41) + 3, 41)],
            "stored a millisecond late, in order"
        );
        assert_eq!(
            s.insert_logs(vec![log(41, "h")], 0).unwrap()[0].id,
            ms(41) + 4
        );
        assert_eq!(first_log_id(i64::MAX), i64::MAX - ((1 << SEQ_BITS) - 1));
        assert_eq!(first_log_id(i64::MIN), 1 << SEQ_BITS, "no id is 0");
        // Time ranges as id ranges: exact within 1970-2248, wide beyond.
        assert_eq!(
            log_id_range(Some(10), Some(30)),
            (Some(ms(10)), Some(ms(30)))
        );
        assert_eq!(log_id_range(Some(-9), Some(-5)), (Some(ms(1)), Some(ms(2))));
        assert_eq!(log_id_range(None, Some(i64::MAX)), (None, None));
        assert!(exact_log_time(2) && exact_log_time(MAX_ID_MS));
        assert!(!exact_log_time(1) && !exact_log_time(-5) && !exact_log_time(MAX_ID_MS + 1));
        assert_eq!(matches(&s, "spilled"), 2);
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn migration_2_renumbers_logs_in_time_order() {
        let dir = std::env::temp_dir().join(format!("icpd-telemetry-m2-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("telemetry.db");
        std::fs::create_dir_all(&dir).unwrap();
        {
            // A version 1 file with logs in arrival order (ids 1..), a late
            // batch among them, ties, and a time before 1970.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch("PRAGMA user_version = 1").unwrap();
            for (ts, message) in [
                (30, "c"),
                (40, "f"),
                (10, "a late"),
                (30, "d tie"),
                (20, "b late"),
                (-7, "before 1970"),
                (30, "e tie"),
            ] {
                conn.execute(
                    "INSERT INTO logs (ts, received, level, environment_id, environment, message, attributes) \
                     VALUES (?1, 0, 2, 1, 'dev', ?2, '{}')",
                    rusqlite::params![ts, message],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO logs_fts (rowid, message) VALUES (?1, ?2)",
                    rusqlite::params![conn.last_insert_rowid(), message],
                )
                .unwrap();
            }
        }
        let s = TelemetryStore::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let ms = first_log_id;
        let want: Vec<(i64, Millis, String)> = [
            (ms(-7), -7, "before 1970"),
            (ms(10), 10, "a late"),
            (ms(20), 20, "b late"),
            (ms(30), 30, "c"),
            (ms(30) + 1, 30, "d tie"),
            (ms(30) + 2, 30, "e tie"),
            (ms(40), 40, "f"),
        ]
        .map(|(id, ts, m)| (id, ts, m.to_string()))
        .into();
        assert_eq!(ids_and_times(&s), want);
        // The text index follows the new ids, and new records take theirs.
        let tie: i64 = s
            .reader
            .lock()
            .unwrap()
            .query_row(
                "SELECT rowid FROM logs_fts WHERE logs_fts MATCH '\"tie\"' ORDER BY rowid LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tie, ms(30) + 1);
        assert_eq!(matches(&s, "late"), 2);
        assert_eq!(
            s.insert_logs(vec![log(30, "g")], 0).unwrap()[0].id,
            ms(30) + 3
        );
        let conn = s.reader.lock().unwrap();
        let mut st = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'logs' ORDER BY name")
            .unwrap();
        let indexes: Vec<String> = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            indexes,
            [
                "logs_by_environment",
                "logs_by_id",
                "logs_by_integration",
                "logs_by_runtime"
            ]
        );
        drop(st);
        drop(conn);
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn batches_are_stored_and_retention_deletes_oldest_first() {
        let dir = std::env::temp_dir().join(format!("icpd-telemetry-w-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = TelemetryStore::open(&dir.join("telemetry.db")).unwrap();
        let stored = s
            .insert_batch(
                vec![log(10, "old disk warning"), log(20, "new disk warning")],
                &[request(10), request(20)],
                &[point(10), point(30)],
                99,
            )
            .unwrap();
        assert_eq!(stored.len(), 2);
        assert!(stored[0].id < stored[1].id);
        assert_eq!((stored[0].received, stored[1].record.ts), (99, 20));
        let row: (i64, String, Option<String>, String) = s
            .reader
            .lock()
            .unwrap()
            .query_row(
                "SELECT level, environment, runtime_id, attributes FROM logs WHERE id = ?1",
                [stored[0].id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(
            row,
            (3, "dev".into(), Some("rt-1".into()), r#"{"k":1}"#.into())
        );
        assert_eq!(matches(&s, "disk warning"), 2);
        let h: (String, String) = s
            .reader
            .lock()
            .unwrap()
            .query_row(
                "SELECT bounds, buckets FROM metric_points LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(h, ("[1.0,5.0]".into(), "[1,1,1]".into()));

        // By age: ts < 20 goes, in every table, FTS rows included.
        let d = s.delete_older_than(20, 2).unwrap();
        assert_eq!(
            d,
            Deleted {
                logs: 1,
                requests: 1,
                points: 1
            }
        );
        assert_eq!(s.delete_older_than(20, 2).unwrap().total(), 0);
        assert_eq!(matches(&s, "old disk"), 0);
        assert_eq!(matches(&s, "new disk"), 1);

        // By size: the oldest across tables; the 1st oldest log is at 20,
        // so everything up to 20 goes and the point at 30 stays.
        let d = s.delete_oldest(1).unwrap();
        assert_eq!(
            d,
            Deleted {
                logs: 1,
                requests: 1,
                points: 0
            }
        );
        assert_eq!(count(&s, "SELECT count(*) FROM metric_points"), 1);
        assert_eq!(s.delete_oldest(1).unwrap().points, 1);
        assert_eq!(s.delete_oldest(1).unwrap().total(), 0);
        assert_eq!(matches(&s, "disk"), 0);

        // Space comes back to the file system.
        let many: Vec<LogRecord> = (0..5000)
            .map(|i| log(i, &format!("message number {i} with some padding text")))
            .collect();
        s.insert_logs(many, 0).unwrap();
        let full = s.live_bytes().unwrap();
        while s.delete_older_than(4500, 1000).unwrap().total() > 0 {}
        let after = s.live_bytes().unwrap();
        assert!(after < full / 2, "{after} of {full}");
        assert!(s.free_bytes().unwrap() > 0);
        s.merge_text_index().unwrap();
        while s.vacuum_step().unwrap() > 0 {}
        s.checkpoint().unwrap();
        assert_eq!(s.free_bytes().unwrap(), 0);
        assert_eq!(
            s.file_bytes().unwrap(),
            s.live_bytes().unwrap(),
            "free pages returned"
        );
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
