//! Telemetry's storage: logs, request records and OTLP metric points, kept
//! apart from the control plane's state so that their volume, retention
//! deletes and vacuuming never take the lock heartbeats and management
//! writes wait on (see ARCHITECTURE.md). Two backends, chosen at start-up
//! as the control plane's is: `telemetry.db`, a SQLite file in the data
//! directory ([`TelemetryStore::open`]), or the PostgreSQL database that
//! holds the state ([`TelemetryStore::connect`]), where every node sharing
//! the database reads and writes the same telemetry.
//!
//! SQLite: two connections, one writer (ingest, retention) and one reader
//! (queries), so a long search never delays an ingest; WAL lets them run
//! at once. `synchronous = NORMAL`: a power cut may lose the last
//! transactions of telemetry, never corrupt the file, and ingest does not
//! wait for an fsync per batch. Logs are rows of `logs` plus an FTS5 index
//! `logs_fts` (contentless, the rowid is `logs.id`), kept in step by the
//! code that inserts and deletes.
//!
//! PostgreSQL: a pool of its own (up to 8 connections, beside the control
//! plane's), transactions that take none of the control plane's locks. The
//! text index is the generated column `logs.message_tsv` with a GIN index
//! (`store::postgres_migrations`). Text cannot hold NUL there: a NUL in a
//! record's text is stored as U+001A (SUBSTITUTE), one byte like it, so
//! every length and ingest limit holds as in SQLite.
//!
//! A log's id is its place in time order: the record's own time in Unix
//! milliseconds times 2^20, plus its arrival rank among the records of that
//! millisecond ([`log_id`]). Ordering by id is ordering by (time, arrival).
//! The id is FTS5's rowid and leads every index of `logs` (`logs_by_id`,
//! and `(scope, id)` for each scope), so every plan of `telemetry_query`
//! (FTS5 yielding rowids in order, walking `logs_by_id`, sorting collected
//! ids) returns records by their own time, whenever they arrived, and a
//! time range is a range of ids. The table itself stays in arrival order
//! (its implicit rowid; on PostgreSQL a `rowid` identity column): a batch
//! is appended, not scattered among the rows of the last seconds, which
//! with many shippers writes several times the pages; only the narrow
//! indexes are. A `(ts, id)` index beside arrival-order ids could sort a
//! scan, but not the rowids FTS5 yields: a phrase search would have to
//! fetch every match to sort it.
//!
//! Ranks within a millisecond must not collide when several nodes insert
//! into one PostgreSQL table, and reserving id bits per node would break
//! "id order is arrival order" within a millisecond and need node numbers.
//! So a transaction that inserts logs on PostgreSQL first takes a
//! transaction-scoped advisory lock ([`LOG_WRITE_LOCK`], telemetry's own,
//! never the control plane's write lock): log inserts run one at a time
//! across every node, as they do within a SQLite file behind its writer.
//! Under the lock, each millisecond's last taken id is read from the table
//! (one query per batch, for all its milliseconds) and the batch's ids
//! continue from it; `logs_by_id` is unique, so a bug would fail the batch
//! rather than store two records under one id. The SQLite writer keeps the
//! last ids of recent milliseconds in memory instead ([`LastIds`]), as
//! only it writes the file.
//!
//! The same lock makes `logs.rowid` on PostgreSQL the commit order of log
//! batches: a batch draws its rowids after the batch before it committed.
//! So a snapshot always holds every row up to some rowid and none after,
//! and a node reading "rowid after the last one I saw" misses nothing
//! another node commits later: that is how the live tail follows what
//! other nodes ingest ([`TelemetryStore::follow_arrivals`],
//! [`TelemetryStore::arrivals_after`], `telemetry::tail`). Each handle
//! remembers the rowid ranges it committed itself while followed, so its
//! own records, which its ingest already published, are not read back.
//!
//! The schema is versioned like the control plane's: SQLite counts applied
//! migrations in `PRAGMA user_version`, PostgreSQL in
//! `icpd_telemetry_schema` (beside `icpd_schema`, migrated under an
//! advisory lock of its own, so that nodes starting together migrate
//! once); `store::postgres_migrations::TELEMETRY_MIGRATIONS` has the same
//! entries with the same numbers. A newer schema is refused.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::Connection;

use super::db;
use super::db::{params, Dialect, OptionalExtension, Queries, ToSql, Transaction, Value};
use super::postgres::{DatabaseUrl, Postgres};
use super::postgres_migrations::TELEMETRY_MIGRATIONS;

use crate::error::{Error, Result};
use crate::model::telemetry::{Attribution, LogRecord, MetricPoint, RequestRecord, StoredLog};
use crate::time::Millis;

/// The SQLite schema, one migration per entry, append-only.
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

/// The advisory lock a PostgreSQL transaction that inserts logs takes
/// first (see the module doc). Not the control plane's write lock.
const LOG_WRITE_LOCK: i64 = 0x1c9d_0101;
/// The advisory lock telemetry's PostgreSQL migrations take.
const MIGRATION_LOCK: i64 = 0x1c9d_0102;

/// How a PostgreSQL write transaction begins. Notices are not wanted:
/// PostgreSQL says so for every word too long for the text index (2 KiB),
/// and the client would log each one. A lock (the log write lock, a row
/// another node's retention is deleting) is waited for 5 s at most, so a
/// node that stalls holding one makes the others' ingest fail, not hang.
/// The statistics flush makes the row counts
/// [`TelemetryStore::live_bytes`] reads current as soon as the transaction
/// ends.
const PG_WRITE: &str = "BEGIN; SET LOCAL client_min_messages = warning; \
     SET LOCAL lock_timeout = '5s'; SELECT pg_stat_force_next_flush()";
/// How a PostgreSQL read transaction begins: one snapshot, no notices
/// (a phrase with no letter or digit in it draws one).
const PG_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
     SET LOCAL client_min_messages = warning";

/// How [`TelemetryStore::follow_arrivals`]'s transaction begins: READ
/// COMMITTED, so that a statement after the lock sees what committed
/// before it.
const PG_FOLLOW: &str =
    "BEGIN READ ONLY; SET LOCAL client_min_messages = warning; SET LOCAL lock_timeout = '5s'";

/// Most parameters one PostgreSQL INSERT binds (the protocol allows 65,535).
const PG_PARAMS: usize = 8_000;

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
/// An entry is never below the largest id of its millisecond in the table
/// (a rolled-back batch leaves it higher, which only skips ids). The
/// SQLite writer keeps one for as long as it runs (only it writes the
/// file); a PostgreSQL batch one of its own, seeded from the table under
/// the log write lock. Emptied when it reaches [`LAST_IDS`].
#[derive(Default)]
struct LastIds(HashMap<i64, i64>);

/// Milliseconds [`LastIds`] remembers (about a minute at a thousand
/// records a second, each in its own millisecond).
const LAST_IDS: usize = 1 << 16;

/// What [`log_id`] asks about ids it has not taken itself.
trait TakenIds {
    /// The largest id taken in `first..=last`, if any.
    fn last_taken(&mut self, first: i64, last: i64) -> Result<Option<i64>>;
    /// Whether `id` is taken.
    fn is_taken(&mut self, id: i64) -> Result<bool>;
}

/// The SQLite file's ids: its table, where each record is inserted as soon
/// as its id is taken.
struct FileIds<'t, 'c>(&'t Transaction<'c>);

impl TakenIds for FileIds<'_, '_> {
    fn last_taken(&mut self, first: i64, last: i64) -> Result<Option<i64>> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT id FROM logs WHERE id BETWEEN ?1 AND ?2 ORDER BY id DESC LIMIT 1",
            )?
            .query_row([first, last], |r| r.get::<_, i64>(0))
            .optional()?)
    }

    fn is_taken(&mut self, id: i64) -> Result<bool> {
        Ok(self
            .0
            .prepare_cached("SELECT 1 FROM logs WHERE id = ?1")?
            .exists([id])?)
    }
}

/// A PostgreSQL batch's ids: the table as it was when the batch took the
/// log write lock (each millisecond's last id read in one query), plus the
/// ids the batch took, which are inserted together at the end.
struct SharedIds<'t, 'c> {
    tx: &'t Transaction<'c>,
    /// The last id in the table per millisecond of the batch (first id).
    seeded: HashMap<i64, Option<i64>>,
    taken: BTreeSet<i64>,
}

impl<'t, 'c> SharedIds<'t, 'c> {
    /// Reads the last id of each millisecond of `times`.
    fn seed(tx: &'t Transaction<'c>, times: &[Millis]) -> Result<SharedIds<'t, 'c>> {
        let mut firsts: Vec<i64> = times.iter().map(|t| first_log_id(*t)).collect();
        firsts.dedup();
        let list = serde_json::Value::from(firsts).to_string();
        let seeded = tx
            .prepare_cached(
                // 1048575: 2^SEQ_BITS - 1, the last rank of a millisecond.
                "SELECT f.first, (SELECT max(id) FROM logs WHERE id BETWEEN f.first AND f.first + 1048575) \
                 FROM (SELECT CAST(e AS bigint) AS first \
                       FROM jsonb_array_elements_text(CAST(?1 AS jsonb)) AS e) AS f",
            )?
            .query_map([list], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<db::Result<_>>()?;
        Ok(SharedIds {
            tx,
            seeded,
            taken: BTreeSet::new(),
        })
    }
}

impl TakenIds for SharedIds<'_, '_> {
    fn last_taken(&mut self, first: i64, last: i64) -> Result<Option<i64>> {
        let in_table = match self.seeded.get(&first) {
            Some(seen) => *seen,
            None => FileIds(self.tx).last_taken(first, last)?,
        };
        let in_batch = self.taken.range(first..=last).next_back().copied();
        Ok(in_table.max(in_batch))
    }

    fn is_taken(&mut self, id: i64) -> Result<bool> {
        Ok(self.taken.contains(&id) || FileIds(self.tx).is_taken(id)?)
    }
}

/// The id of a new log record at `ts`, and its time: one past the last id
/// taken in its millisecond, or the millisecond's first. So ids order
/// records by time, then arrival. When a millisecond's 2^20 ids are all
/// taken (a shipper stamping a flood with one time), the record takes the
/// first free id after them and the time of the millisecond that id is in
/// (a later one): it is stored a little late rather than refused, and its
/// time still agrees with its id.
fn log_id(ts: Millis, last: &mut LastIds, ids: &mut dyn TakenIds) -> Result<(i64, Millis)> {
    let first = first_log_id(ts);
    let last_of_ms = first + ((1 << SEQ_BITS) - 1);
    let next = |taken: i64| {
        taken
            .checked_add(1)
            .ok_or_else(|| Error::Internal("every log id is taken".into()))
    };
    let mut id = match last.0.get(&first) {
        Some(taken) => next(*taken)?,
        None => match ids.last_taken(first, last_of_ms)? {
            Some(taken) => next(taken)?,
            None => first,
        },
    };
    let mut ts = ts;
    if id > last_of_ms {
        while ids.is_taken(id)? {
            id = next(id)?;
        }
        ts = id >> SEQ_BITS;
        // A later record of the millisecond it went to must come after it.
        if let Some(taken) = last.0.get_mut(&first_log_id(ts)) {
            *taken = (*taken).max(id);
        }
    }
    if last.0.len() >= LAST_IDS {
        last.0.clear();
    }
    last.0.insert(first, id);
    Ok((id, ts))
}

/// A handle on telemetry's storage, whichever backend holds it.
pub struct TelemetryStore {
    pub(in crate::store) engine: Engine,
}

/// The backend: chosen once, at start-up.
// One per process: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub(in crate::store) enum Engine {
    Sqlite(File),
    Postgres(Shared),
}

/// `telemetry.db`.
pub(in crate::store) struct File {
    /// Ingest and retention.
    pub(in crate::store) writer: Mutex<Connection>,
    /// Taken under `writer`'s lock, by log inserts.
    last_ids: Mutex<LastIds>,
    /// Queries.
    pub(in crate::store) reader: Mutex<Connection>,
    path: PathBuf,
}

/// Telemetry in the PostgreSQL database.
pub(in crate::store) struct Shared {
    pub(in crate::store) pg: Postgres,
    arrivals: Mutex<Arrivals>,
}

/// First and last `logs.rowid` of a run of rows (both included).
type RowidRange = (i64, i64);

/// What a [`Shared`] handle knows of its own log batches, for the live
/// tail's follower (see [`TelemetryStore::follow_arrivals`]).
#[derive(Default)]
struct Arrivals {
    /// Followers of the logs other nodes commit.
    followers: usize,
    /// While followed, the `rowid` ranges of the batches this handle
    /// committed (or is committing), oldest first; a range goes once the
    /// followers read past it.
    own: VecDeque<RowidRange>,
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
            engine: Engine::Sqlite(File {
                writer: Mutex::new(writer),
                last_ids: Mutex::default(),
                reader: Mutex::new(reader),
                path: path.to_path_buf(),
            }),
        })
    }

    /// Connects to the PostgreSQL database at `url` (the one that holds the
    /// control plane's state) and applies telemetry's pending migrations.
    pub fn connect(url: &DatabaseUrl) -> Result<TelemetryStore> {
        let pg = Postgres::connect_unmigrated(url)?;
        migrate_shared(&pg, url)?;
        Ok(TelemetryStore {
            engine: Engine::Postgres(Shared {
                pg,
                arrivals: Mutex::default(),
            }),
        })
    }

    /// Path of the database file (SQLite); `None` on PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        match &self.engine {
            Engine::Sqlite(f) => Some(&f.path),
            Engine::Postgres(_) => None,
        }
    }

    /// Whether other nodes may write the same telemetry (PostgreSQL), so
    /// that the live tail has to follow their logs.
    pub fn is_shared(&self) -> bool {
        matches!(self.engine, Engine::Postgres(_))
    }

    /// The SQL dialect of the backend.
    pub(in crate::store) fn dialect(&self) -> Dialect {
        match self.engine {
            Engine::Sqlite(_) => Dialect::Sqlite,
            Engine::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64> {
        match &self.engine {
            Engine::Sqlite(f) => {
                let conn = f.reader.lock().unwrap_or_else(|p| p.into_inner());
                Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
            }
            Engine::Postgres(_) => self.read(|tx| {
                Ok(
                    tx.query_row("SELECT version FROM icpd_telemetry_schema", [], |r| {
                        r.get(0)
                    })?,
                )
            }),
        }
    }

    /// Runs `f` in a write transaction (the SQLite writer's, BEGIN
    /// IMMEDIATE; on PostgreSQL a pooled connection's, no lock taken);
    /// commits if it returns `Ok`.
    pub(in crate::store) fn write<T>(
        &self,
        f: impl FnOnce(&Transaction) -> Result<T>,
    ) -> Result<T> {
        match &self.engine {
            Engine::Sqlite(file) => {
                let mut conn = file.writer.lock().unwrap_or_else(|p| p.into_inner());
                let tx = Transaction::sqlite(
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?,
                );
                let value = f(&tx)?;
                tx.commit()?;
                Ok(value)
            }
            Engine::Postgres(s) => s.pg.transaction(PG_WRITE, f),
        }
    }

    /// Runs `f` in a read transaction (one snapshot) on the SQLite reader,
    /// or a pooled PostgreSQL connection.
    pub(in crate::store) fn read<T>(&self, f: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
        match &self.engine {
            Engine::Sqlite(file) => {
                let mut conn = file.reader.lock().unwrap_or_else(|p| p.into_inner());
                let tx = Transaction::sqlite(conn.transaction()?);
                f(&tx)
            }
            Engine::Postgres(s) => s.pg.transaction(PG_READ, f),
        }
    }

    /// The SQLite file (tests).
    #[cfg(test)]
    pub(in crate::store) fn file(&self) -> Option<&File> {
        match &self.engine {
            Engine::Sqlite(f) => Some(f),
            Engine::Postgres(_) => None,
        }
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
    /// SQLite: up to ?3 rows with `ts <= ?1` (and, for logs, an id up to
    /// ?2; the others leave ?2 unused), oldest first, as (rowid, FTS5
    /// rowid).
    oldest: &'static str,
    /// SQLite: one of them, by rowid.
    delete: &'static str,
    /// PostgreSQL: the same rows deleted in one statement; the parameters
    /// are (?1, ?3) and, for logs, ?2 (each one used: PostgreSQL must infer
    /// every parameter's type), given by [`Aged::shared_params`].
    delete_shared: &'static str,
    /// The time of the ?1-th oldest row (from 0).
    nth: &'static str,
}

const AGED: [Aged; 3] = [
    Aged {
        oldest: "SELECT rowid, id FROM logs WHERE id <= ?2 AND ts <= ?1 ORDER BY id LIMIT ?3",
        delete: "DELETE FROM logs WHERE rowid = ?1",
        delete_shared: "DELETE FROM logs WHERE id IN \
             (SELECT id FROM logs WHERE id <= ?2 AND ts <= ?1 ORDER BY id LIMIT ?3)",
        nth: "SELECT ts FROM logs ORDER BY id LIMIT 1 OFFSET ?1",
    },
    Aged {
        oldest: "SELECT id, id FROM requests WHERE ts <= ?1 ORDER BY ts LIMIT ?3",
        delete: "DELETE FROM requests WHERE id = ?1",
        delete_shared: "DELETE FROM requests WHERE id IN \
             (SELECT id FROM requests WHERE ts <= ?1 ORDER BY ts LIMIT ?2)",
        nth: "SELECT ts FROM requests ORDER BY ts LIMIT 1 OFFSET ?1",
    },
    Aged {
        oldest: "SELECT id, id FROM metric_points WHERE ts <= ?1 ORDER BY ts LIMIT ?3",
        delete: "DELETE FROM metric_points WHERE id = ?1",
        delete_shared: "DELETE FROM metric_points WHERE id IN \
             (SELECT id FROM metric_points WHERE ts <= ?1 ORDER BY ts LIMIT ?2)",
        nth: "SELECT ts FROM metric_points ORDER BY ts LIMIT 1 OFFSET ?1",
    },
];

/// The telemetry tables, for size accounting on PostgreSQL.
const TABLES: [&str; 3] = ["logs", "requests", "metric_points"];

const LOG_COLUMNS: &str = "id, ts, received, level, environment_id, environment, \
     project_id, project, integration_id, integration, runtime_id, module, message, attributes";
const INSERT_LOG: &str = "INSERT INTO logs (id, ts, received, level, environment_id, environment, \
     project_id, project, integration_id, integration, runtime_id, module, message, attributes) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
const INSERT_LOG_TEXT: &str = "INSERT INTO logs_fts (rowid, message) VALUES (?1, ?2)";
const REQUEST_COLUMNS: &str = "ts, environment_id, environment, project_id, project, \
     integration_id, integration, runtime_id, service, resource, method, status, duration_ms";
const INSERT_REQUEST: &str = "INSERT INTO requests (ts, environment_id, environment, project_id, \
     project, integration_id, integration, runtime_id, service, resource, method, status, duration_ms) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
const POINT_COLUMNS: &str = "ts, environment_id, environment, project_id, project, \
     integration_id, integration, runtime_id, name, kind, unit, attributes, value, count, sum, \
     bounds, buckets";
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

/// Text as PostgreSQL can store it: a NUL (which its text type cannot
/// hold) becomes U+001A, SUBSTITUTE, a byte for a byte (so the ingest
/// limits on bytes still hold).
pub(in crate::store) fn shared_text(text: &str) -> String {
    text.replace('\0', "\u{1A}")
}

fn shared_opt(text: &Option<String>) -> Option<String> {
    text.as_deref().map(shared_text)
}

/// A record's text fields as PostgreSQL stores them (see [`shared_text`]);
/// what the store returns is what it stored.
fn make_storable(record: &mut LogRecord) {
    if record.message.contains('\0') {
        record.message = shared_text(&record.message);
    }
    if let Some(m) = record.module.as_mut().filter(|m| m.contains('\0')) {
        *m = shared_text(m);
    }
    if let Some(r) = record
        .source
        .runtime_id
        .as_mut()
        .filter(|r| r.contains('\0'))
    {
        *r = shared_text(r);
    }
}

impl TelemetryStore {
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
        match &self.engine {
            Engine::Sqlite(file) => self.write(|tx| {
                let mut last_ids = file.last_ids.lock().unwrap_or_else(|p| p.into_inner());
                let stored = insert_logs(tx, logs, received, &mut last_ids)?;
                insert_requests(tx, requests)?;
                insert_points(tx, points)?;
                Ok(stored)
            }),
            Engine::Postgres(shared) => self.write(|tx| {
                let stored = if logs.is_empty() {
                    Vec::new()
                } else {
                    tx.query_row("SELECT pg_advisory_xact_lock(?1)", [LOG_WRITE_LOCK], |_| {
                        Ok(())
                    })?;
                    let (stored, rowids) = insert_shared_logs(tx, logs, received)?;
                    // Before the commit makes the rows visible to followers.
                    let mut arrivals = shared.arrivals.lock().unwrap_or_else(|p| p.into_inner());
                    if arrivals.followers > 0 {
                        arrivals.own.extend(rowids);
                    }
                    stored
                };
                insert_many(
                    tx,
                    "requests",
                    REQUEST_COLUMNS,
                    requests.iter().map(|r| Ok(request_values(r, true))),
                    None,
                    false,
                )?;
                insert_many(
                    tx,
                    "metric_points",
                    POINT_COLUMNS,
                    points.iter().map(|p| point_values(p, true)),
                    None,
                    false,
                )?;
                Ok(stored)
            }),
        }
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

    /// Bytes in use by telemetry, which retention keeps under its limit.
    /// SQLite: the database's pages minus its free pages (the WAL is not
    /// counted). PostgreSQL: deleted rows' space stays in the tables until
    /// new rows reuse it, so their size alone never shrinks; what counts is
    /// the tables' total size (heap, TOAST, indexes) times the share of
    /// the heap their live rows fill: the live row count (PostgreSQL's
    /// statistics, which every telemetry transaction flushes when it ends)
    /// times the average row size of the newest 1,000 rows, over the
    /// heap's size. An estimate, stable across (auto)vacuum.
    pub fn live_bytes(&self) -> Result<u64> {
        match &self.engine {
            Engine::Sqlite(f) => {
                let conn = f.writer.lock().unwrap_or_else(|p| p.into_inner());
                let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
                let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
                let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
                Ok(u64::try_from((pages - free).max(0) * size).unwrap_or(0))
            }
            Engine::Postgres(_) => self.read(|tx| {
                let mut total = 0f64;
                for table in TABLES {
                    let (live, heap, all): (i64, i64, i64) = tx
                        .prepare_cached(&format!(
                            "SELECT COALESCE((SELECT n_live_tup FROM pg_stat_user_tables \
                                 WHERE relid = '{table}'::regclass), 0), \
                             pg_table_size('{table}'), pg_total_relation_size('{table}')"
                        ))?
                        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    if live <= 0 || heap <= 0 {
                        continue;
                    }
                    // Each row also takes a 4-byte line pointer in its page.
                    let row: f64 = tx
                        .prepare_cached(&format!(
                            "SELECT COALESCE(avg(pg_column_size(t.*)), 0) + 4 \
                             FROM (SELECT * FROM {table} ORDER BY id DESC LIMIT 1000) AS t"
                        ))?
                        .query_row([], |r| r.get(0))?;
                    let filled = (live as f64 * row / heap as f64).min(1.0);
                    total += all as f64 * filled;
                }
                Ok(total as u64)
            }),
        }
    }

    /// Size of the database on disk: the SQLite file as SQLite sees it
    /// (pages, free ones included); PostgreSQL's telemetry tables with
    /// their TOAST and indexes (`pg_total_relation_size`).
    pub fn file_bytes(&self) -> Result<u64> {
        match &self.engine {
            Engine::Sqlite(f) => {
                let conn = f.writer.lock().unwrap_or_else(|p| p.into_inner());
                let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
                let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
                Ok(u64::try_from(pages.max(0) * size).unwrap_or(0))
            }
            Engine::Postgres(_) => self.read(|tx| {
                let mut total = 0i64;
                for table in TABLES {
                    total += tx
                        .prepare_cached(&format!("SELECT pg_total_relation_size('{table}')"))?
                        .query_row([], |r| r.get::<_, i64>(0))?;
                }
                Ok(u64::try_from(total).unwrap_or(0))
            }),
        }
    }

    /// Bytes in free pages: what [`TelemetryStore::vacuum_step`] can give
    /// back to the file system. Always 0 on PostgreSQL, where icpd gives
    /// nothing back: (auto)vacuum makes deleted rows' space reusable.
    pub fn free_bytes(&self) -> Result<u64> {
        match &self.engine {
            Engine::Sqlite(f) => {
                let conn = f.writer.lock().unwrap_or_else(|p| p.into_inner());
                let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
                let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
                Ok(u64::try_from(free.max(0) * size).unwrap_or(0))
            }
            Engine::Postgres(_) => Ok(0),
        }
    }

    /// Gives up to 1,024 free pages back to the file system (`PRAGMA
    /// incremental_vacuum`, its own short transaction: it moves pages from
    /// the end of the file into free ones, so a large vacuum is done in
    /// steps); returns how many free pages remain. A no-op on PostgreSQL
    /// (returns 0): vacuuming is PostgreSQL's autovacuum's work.
    pub fn vacuum_step(&self) -> Result<u64> {
        let Engine::Sqlite(f) = &self.engine else {
            return Ok(0);
        };
        let conn = f.writer.lock().unwrap_or_else(|p| p.into_inner());
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
    /// which drops the entries of deleted rows. A no-op on PostgreSQL, whose
    /// GIN index drops them when the table is vacuumed.
    pub fn merge_text_index(&self) -> Result<()> {
        let Engine::Sqlite(f) = &self.engine else {
            return Ok(());
        };
        let conn = f.writer.lock().unwrap_or_else(|p| p.into_inner());
        conn.execute_batch("INSERT INTO logs_fts (logs_fts, rank) VALUES ('merge', 500);")?;
        Ok(())
    }

    /// Copies the WAL into the database file without waiting for readers;
    /// a complete checkpoint also cuts the file to its pages. A no-op on
    /// PostgreSQL, which checkpoints by itself.
    pub fn checkpoint(&self) -> Result<()> {
        let Engine::Sqlite(f) = &self.engine else {
            return Ok(());
        };
        let conn = f.writer.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }
}

/// Logs committed after a position in arrival order (see
/// [`TelemetryStore::arrivals_after`]).
#[derive(Debug, Default)]
pub struct Arrived {
    /// The logs other nodes committed, in commit order.
    pub logs: Vec<StoredLog>,
    /// Where to continue from.
    pub next: i64,
    /// Whether the read stopped at its limit (more may be waiting).
    pub more: bool,
}

impl TelemetryStore {
    /// Starts following the logs other nodes commit to a shared
    /// (PostgreSQL) store: returns the position, in commit order, of the
    /// last log committed so far, to read after with
    /// [`TelemetryStore::arrivals_after`]; from now on, this handle's own
    /// batches are left out of that. `None` on SQLite, where this process
    /// writes every log. Call [`TelemetryStore::unfollow_arrivals`] when
    /// done.
    ///
    /// It takes the log write lock, so that every batch in flight on any
    /// node has committed before the position is read, and every later
    /// batch of this handle sees the follower and records its rows.
    pub fn follow_arrivals(&self) -> Result<Option<i64>> {
        let Engine::Postgres(shared) = &self.engine else {
            return Ok(None);
        };
        let mut counted = false;
        // READ COMMITTED: the position is read after the lock is held, in
        // a snapshot of its own.
        let position = shared.pg.transaction(PG_FOLLOW, |tx| {
            tx.query_row("SELECT pg_advisory_xact_lock(?1)", [LOG_WRITE_LOCK], |_| {
                Ok(())
            })?;
            let position: i64 =
                tx.query_row("SELECT COALESCE(max(rowid), 0) FROM logs", [], |r| r.get(0))?;
            shared
                .arrivals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .followers += 1;
            counted = true;
            Ok(position)
        });
        if position.is_err() && counted {
            self.unfollow_arrivals();
        }
        position.map(Some)
    }

    /// Ends one [`TelemetryStore::follow_arrivals`].
    pub fn unfollow_arrivals(&self) {
        if let Engine::Postgres(shared) = &self.engine {
            let mut arrivals = shared.arrivals.lock().unwrap_or_else(|p| p.into_inner());
            arrivals.followers = arrivals.followers.saturating_sub(1);
            if arrivals.followers == 0 {
                arrivals.own.clear();
            }
        }
    }

    /// Up to `limit` logs committed after position `after` (in commit
    /// order), without the ones this handle stored while followed; the
    /// position to continue from. Nothing on SQLite.
    pub fn arrivals_after(&self, after: i64, limit: usize) -> Result<Arrived> {
        let Engine::Postgres(shared) = &self.engine else {
            return Ok(Arrived {
                next: after,
                ..Arrived::default()
            });
        };
        let limit = limit.max(1);
        let rows: Vec<(StoredLog, i64)> = self.read(|tx| {
            let mut st = tx.prepare_cached(&format!(
                "SELECT {LOG_COLUMNS}, rowid FROM logs WHERE rowid > ?1 ORDER BY rowid LIMIT ?2"
            ))?;
            let rows = st
                .query_map(params![after, limit], |r| {
                    Ok((super::telemetry_query::log_from_row(r)?, r.get(14)?))
                })?
                .collect::<db::Result<_>>()?;
            Ok(rows)
        })?;
        let more = rows.len() >= limit;
        let next = rows.last().map_or(after, |(_, rowid)| *rowid);
        let mut arrivals = shared.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        let own = |rowid: i64| {
            arrivals
                .own
                .iter()
                .any(|(lo, hi)| (*lo..=*hi).contains(&rowid))
        };
        let logs = rows
            .into_iter()
            .filter(|(_, rowid)| !own(*rowid))
            .map(|(log, _)| log)
            .collect();
        arrivals.own.retain(|(_, hi)| *hi > next);
        Ok(Arrived { logs, next, more })
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
        (id, record.ts) = log_id(record.ts, last_ids, &mut FileIds(tx))?;
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

/// Stores logs in PostgreSQL, under the log write lock (taken by the
/// caller): ids as [`insert_logs`] gives them, from the table's last ids
/// of the batch's milliseconds, then the rows in multi-row INSERTs. Returns
/// the stored logs and the ranges of `rowid` they took.
fn insert_shared_logs(
    tx: &Transaction,
    mut logs: Vec<LogRecord>,
    received: Millis,
) -> Result<(Vec<StoredLog>, Vec<RowidRange>)> {
    logs.sort_by_key(|r| r.ts);
    let times: Vec<Millis> = logs.iter().map(|r| r.ts).collect();
    let mut ids = SharedIds::seed(tx, &times)?;
    let mut last_ids = LastIds::default();
    let mut stored = Vec::with_capacity(logs.len());
    for mut record in logs {
        make_storable(&mut record);
        let id;
        (id, record.ts) = log_id(record.ts, &mut last_ids, &mut ids)?;
        ids.taken.insert(id);
        stored.push(StoredLog {
            id,
            received,
            record,
        });
    }
    let rowids = insert_many(
        tx,
        "logs",
        LOG_COLUMNS,
        stored.iter().map(|l| {
            let r = &l.record;
            let s = &r.source;
            Ok(vec![
                Value::from(l.id),
                Value::from(r.ts),
                Value::from(received),
                Value::from(level_index(r.level)),
                Value::from(s.environment_id),
                Value::from(s.environment.as_str()),
                Value::from(s.project_id),
                Value::from(s.project.clone()),
                Value::from(s.integration_id),
                Value::from(s.integration.clone()),
                Value::from(s.runtime_id.clone()),
                Value::from(r.module.clone()),
                Value::from(r.message.as_str()),
                Value::from(json_text(&r.attributes)?),
            ])
        }),
        Some("rowid"),
        false,
    )?;
    // One range per statement: the batch holds the lock, so nobody else
    // draws rowids meanwhile and each range is only this batch's.
    let mut ranges: Vec<RowidRange> = Vec::new();
    for rowid in rowids {
        match ranges.last_mut() {
            Some((_, hi)) if rowid == *hi + 1 => *hi = rowid,
            _ => ranges.push((rowid, rowid)),
        }
    }
    Ok((stored, ranges))
}

/// Inserts rows (each as many values as `columns` names) into `table` with
/// multi-row INSERTs of up to [`PG_PARAMS`] parameters (PostgreSQL: one
/// round trip per statement, not per row); returns the `returning`
/// column of every row, in order, when asked. `overriding`: the rows
/// give values of identity columns (`store::copy`).
pub(in crate::store) fn insert_many(
    tx: &Transaction,
    table: &str,
    columns: &str,
    rows: impl Iterator<Item = Result<Vec<Value>>>,
    returning: Option<&str>,
    overriding: bool,
) -> Result<Vec<i64>> {
    let overriding = if overriding {
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    let width = columns.split(',').count();
    let per_statement = (PG_PARAMS / width).max(1);
    let mut out = Vec::new();
    let mut chunk: Vec<Value> = Vec::with_capacity(per_statement * width);
    let mut rows = rows.peekable();
    while rows.peek().is_some() {
        chunk.clear();
        for row in rows.by_ref().take(per_statement) {
            let row = row?;
            debug_assert_eq!(row.len(), width);
            chunk.extend(row);
        }
        let n = chunk.len() / width;
        let values = (0..n)
            .map(|i| {
                let ps = (1..=width)
                    .map(|c| format!("?{}", i * width + c))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("({ps})")
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = match returning {
            Some(column) => format!(
                "INSERT INTO {table} ({columns}){overriding} VALUES {values} RETURNING {column}"
            ),
            None => format!("INSERT INTO {table} ({columns}){overriding} VALUES {values}"),
        };
        let refs: Vec<&dyn ToSql> = chunk.iter().map(|v| v as &dyn ToSql).collect();
        // Full statements come back batch after batch; the last, shorter
        // one of each batch has any length, and caching every length would
        // crowd the connection's statement cache.
        let mut st = if n == per_statement {
            tx.prepare_cached(&sql)?
        } else {
            tx.prepare(&sql)?
        };
        if returning.is_some() {
            let got = st
                .query_map(&refs[..], |r| r.get(0))?
                .collect::<db::Result<Vec<i64>>>()?;
            out.extend(got);
        } else {
            st.execute(&refs[..])?;
        }
    }
    Ok(out)
}

/// A request record's columns ([`REQUEST_COLUMNS`]); `shared`: text as
/// PostgreSQL stores it.
fn request_values(r: &RequestRecord, shared: bool) -> Vec<Value> {
    let s: &Attribution = &r.source;
    let text = |t: &str| Value::from(if shared { shared_text(t) } else { t.to_owned() });
    vec![
        Value::from(r.ts),
        Value::from(s.environment_id),
        Value::from(s.environment.as_str()),
        Value::from(s.project_id),
        Value::from(s.project.clone()),
        Value::from(s.integration_id),
        Value::from(s.integration.clone()),
        Value::from(if shared {
            shared_opt(&s.runtime_id)
        } else {
            s.runtime_id.clone()
        }),
        text(&r.service),
        text(&r.resource),
        text(&r.method),
        Value::from(i64::from(r.status)),
        Value::from(r.duration_ms),
    ]
}

/// A metric point's columns ([`POINT_COLUMNS`]); `shared`: text as
/// PostgreSQL stores it.
fn point_values(p: &MetricPoint, shared: bool) -> Result<Vec<Value>> {
    let s = &p.source;
    let histogram = p.kind == crate::model::telemetry::MetricKind::Histogram;
    let (bounds, buckets) = if histogram {
        (Some(json_text(&p.bounds)?), Some(json_text(&p.buckets)?))
    } else {
        (None, None)
    };
    let opt = |t: &Option<String>| Value::from(if shared { shared_opt(t) } else { t.clone() });
    Ok(vec![
        Value::from(p.ts),
        Value::from(s.environment_id),
        Value::from(s.environment.as_str()),
        Value::from(s.project_id),
        Value::from(s.project.clone()),
        Value::from(s.integration_id),
        Value::from(s.integration.clone()),
        opt(&s.runtime_id),
        Value::from(if shared {
            shared_text(&p.name)
        } else {
            p.name.clone()
        }),
        Value::from(p.kind.as_str()),
        opt(&p.unit),
        Value::from(json_text(&p.attributes)?),
        Value::from(p.value),
        Value::from(p.count.map(|c| i64::try_from(c).unwrap_or(i64::MAX))),
        Value::from(p.sum),
        Value::from(bounds),
        Value::from(buckets),
    ])
}

fn insert_requests(tx: &Transaction, requests: &[RequestRecord]) -> Result<()> {
    if requests.is_empty() {
        return Ok(());
    }
    let mut row = tx.prepare_cached(INSERT_REQUEST)?;
    for r in requests {
        let values = request_values(r, false);
        let refs: Vec<&dyn ToSql> = values.iter().map(|v| v as &dyn ToSql).collect();
        row.execute(&refs[..])?;
    }
    Ok(())
}

fn insert_points(tx: &Transaction, points: &[MetricPoint]) -> Result<()> {
    if points.is_empty() {
        return Ok(());
    }
    let mut row = tx.prepare_cached(INSERT_POINT)?;
    for p in points {
        let values = point_values(p, false)?;
        let refs: Vec<&dyn ToSql> = values.iter().map(|v| v as &dyn ToSql).collect();
        row.execute(&refs[..])?;
    }
    Ok(())
}

/// Deletes up to `chunk` rows per table with `ts <= last`, oldest first;
/// a log's full-text row goes with it (SQLite; PostgreSQL's goes with the
/// row).
fn delete_up_to(tx: &Transaction, last: Millis, chunk: usize) -> Result<Deleted> {
    let limit = i64::try_from(chunk).unwrap_or(i64::MAX);
    let last_id = match log_id_range(None, last.checked_add(1)).1 {
        Some(end) => end - 1,
        None => i64::MAX,
    };
    let mut deleted = [0u64; 3];
    for (n, aged) in AGED.iter().enumerate() {
        if tx.dialect() == Dialect::Postgres {
            let rows = if n == 0 {
                tx.prepare_cached(aged.delete_shared)?
                    .execute(params![last, last_id, limit])?
            } else {
                tx.prepare_cached(aged.delete_shared)?
                    .execute(params![last, limit])?
            };
            deleted[n] = rows as u64;
            continue;
        }
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

/// Applies telemetry's pending PostgreSQL migrations in one transaction,
/// under [`MIGRATION_LOCK`]; the version is the one row of
/// `icpd_telemetry_schema`.
fn migrate_shared(pg: &Postgres, url: &DatabaseUrl) -> Result<()> {
    pg.transaction("BEGIN", |tx| {
        tx.query_row("SELECT pg_advisory_xact_lock(?1)", [MIGRATION_LOCK], |_| {
            Ok(())
        })?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS icpd_telemetry_schema (version BIGINT NOT NULL)",
        )?;
        let version: i64 = match tx
            .query_row("SELECT version FROM icpd_telemetry_schema", [], |r| r.get(0))
            .optional()?
        {
            Some(v) => v,
            None => {
                tx.execute("INSERT INTO icpd_telemetry_schema (version) VALUES (0)", [])?;
                0
            }
        };
        let known = TELEMETRY_MIGRATIONS.len() as i64;
        if version > known {
            return Err(Error::DataDir(format!(
                "{} has telemetry schema version {version}, newer than this icpd knows ({known}); use a newer icpd",
                url.display()
            )));
        }
        for (i, sql) in TELEMETRY_MIGRATIONS.iter().enumerate().skip(version as usize) {
            let n = i as i64 + 1;
            tx.execute_batch(sql).map_err(|e| {
                Error::DataDir(format!(
                    "telemetry migration {n} failed on {}: {e}",
                    url.display()
                ))
            })?;
            tx.execute("UPDATE icpd_telemetry_schema SET version = ?1", [n])?;
            log::info!("applied telemetry schema migration {n} to PostgreSQL");
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgresql_has_the_same_telemetry_migrations() {
        assert_eq!(TELEMETRY_MIGRATIONS.len(), MIGRATIONS.len());
        const { assert!(SEQ_BITS == 20, "SharedIds::seed's 1048575 is 2^20 - 1") };
    }

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
            .file()
            .unwrap()
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
        s.file()
            .unwrap()
            .reader
            .lock()
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }

    fn matches(s: &TelemetryStore, phrase: &str) -> i64 {
        s.file()
            .unwrap()
            .reader
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
        let conn = s.file().unwrap().reader.lock().unwrap();
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
        s.file().unwrap().writer
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
            .file()
            .unwrap()
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
        let conn = s.file().unwrap().reader.lock().unwrap();
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
            .file()
            .unwrap()
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
            .file()
            .unwrap()
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
