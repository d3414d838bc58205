//! The store: the only module that runs SQL.
//!
//! One SQLite file (`icp.db`) in WAL mode. [`Store::open`] sets the pragmas,
//! applies pending migrations (`PRAGMA user_version` counts them) and refuses
//! a database made by a newer icpd. Callers work in transactions through
//! [`Store::write`] (BEGIN IMMEDIATE, commit on `Ok`, roll back on `Err` or
//! panic) and [`Store::read`]; a [`Tx`] offers small, named operations, so
//! a PostgreSQL backend can later implement the same API. No SQL is built
//! from user input: values are always bound parameters.

mod access;
mod artifacts;
mod backup;
mod cluster;
pub use cluster::CHANGES_CHANNEL;
mod commands;
mod contracts;
pub mod copy;
pub mod db;
mod ingest_tokens;
mod mi;
pub use mi::{FoundMiArtifact, MiEnvironmentSettings, MiTargetRow, ScopedMiArtifact};
pub mod migrations;
mod pipeline;
pub mod postgres;
mod postgres_migrations;
mod promotions;
mod resources;
mod sqlite;
pub mod telemetry;
mod telemetry_query;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use db::{params, OptionalExtension, Queries, Row};

use crate::error::Result;
use crate::model::catalog::{Environment, Integration, Project};
use crate::model::cluster::Change;
use crate::model::runtimes::{
    Artifacts, RuntimeDetail, RuntimeFilter, RuntimeRecord, Status, StatusChange,
};
use crate::model::secrets::StoredSecret;
use crate::time::Millis;

pub use access::{
    ApiTokenRow, AssignmentRow, AuditFilter, AuditRow, DirectoryIdentity, GroupRow, HeldRoleRow,
    NewAuditEntry, RoleRow, SessionRow, SsoLoginRow, SsoMappingRow, UserRow,
};
pub use artifacts::ArtifactWrites;
#[doc(hidden)]
pub use backup::create_at_version;
pub use backup::{inspect_file, vacuum_into, FileInspection};

/// A handle on the control plane's database, whichever backend holds it.
/// Cheap to share behind an `Arc`. See [`sqlite::Sqlite`] and
/// [`postgres::Postgres`] for how each runs reads beside writes.
pub struct Store {
    engine: Engine,
    /// The last secrets generation read, to answer without the database
    /// for a while as long as this process committed nothing since.
    seen: Mutex<Seen>,
    /// Commits through this handle so far.
    commits: AtomicU64,
    /// Totals of GraphQL's runtime pages, valid while the runtimes'
    /// membership generation is unchanged (see [`Store::runtime_offset_page`]).
    runtime_counts: Mutex<RuntimeCounts>,
    /// The node id this handle records changes under (see `set_node`).
    node: std::sync::OnceLock<String>,
}

/// The backend: chosen once, at start-up, by the database URL.
// One per process: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Engine {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

/// Last-seen times per statement in a PostgreSQL liveness flush.
const LIVENESS_CHUNK: usize = 5000;

/// Cached runtime counts: (membership generation, count) by filter.
#[derive(Default)]
struct RuntimeCounts {
    by_filter: std::collections::HashMap<String, (i64, i64)>,
}

/// Most filters whose runtime count is remembered.
const MAX_CACHED_COUNTS: usize = 256;

#[derive(Default)]
struct Seen {
    generation: i64,
    at: Option<Instant>,
    /// `Store::commits` read before the generation was.
    commits: u64,
}

/// One transaction. Every method is one small, named operation.
pub struct Tx<'c> {
    tx: &'c db::Transaction<'c>,
    /// The node recording changes to the cluster's feed; `None` where
    /// there is no feed (SQLite, and read transactions).
    node: Option<&'c str>,
    /// Set when the transaction recorded a change (to wake the other
    /// nodes once it commits).
    recorded: Option<&'c std::cell::Cell<bool>>,
}

impl<'c> Tx<'c> {
    fn new(tx: &'c db::Transaction<'c>, node: Option<&'c str>) -> Tx<'c> {
        Tx {
            tx,
            node,
            recorded: None,
        }
    }
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store> {
        Ok(Store::with(Engine::Sqlite(sqlite::Sqlite::open(path)?)))
    }

    /// Connects to the PostgreSQL database at `url` and migrates it.
    pub fn connect(url: &postgres::DatabaseUrl) -> Result<Store> {
        Ok(Store::with(Engine::Postgres(postgres::Postgres::connect(
            url,
        )?)))
    }

    fn with(engine: Engine) -> Store {
        Store {
            engine,
            seen: Mutex::new(Seen::default()),
            commits: AtomicU64::new(0),
            runtime_counts: Mutex::default(),
            node: std::sync::OnceLock::new(),
        }
    }

    /// Where the data lives: the SQLite file, or the PostgreSQL database
    /// (its URL without the password).
    pub fn location(&self) -> String {
        match &self.engine {
            Engine::Sqlite(s) => s.path().display().to_string(),
            Engine::Postgres(p) => p.display_url(),
        }
    }

    /// Path of the database file (SQLite only).
    pub fn path(&self) -> Option<&Path> {
        match &self.engine {
            Engine::Sqlite(s) => Some(s.path()),
            Engine::Postgres(_) => None,
        }
    }

    /// Runs `f` in a write transaction; commits if it returns `Ok`, rolls
    /// back on `Err` or panic.
    pub fn write<T>(&self, f: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        let value = match &self.engine {
            Engine::Sqlite(s) => s.write(|tx| f(&Tx::new(tx, None))),
            Engine::Postgres(p) => {
                let recorded = std::cell::Cell::new(false);
                let value = p.write(|tx| {
                    f(&Tx {
                        tx,
                        node: Some(self.node()),
                        recorded: Some(&recorded),
                    })
                });
                if value.is_ok() && recorded.get() {
                    p.wake_listeners();
                }
                value
            }
        }?;
        self.commits.fetch_add(1, Ordering::AcqRel);
        Ok(value)
    }

    /// Runs `f` in a read transaction: a consistent snapshot of what was
    /// committed before it began.
    pub fn read<T>(&self, f: impl FnOnce(&Tx) -> Result<T>) -> Result<T> {
        match &self.engine {
            Engine::Sqlite(s) => s.read(|tx| f(&Tx::new(tx, None))),
            Engine::Postgres(p) => p.read(|tx| f(&Tx::new(tx, None))),
        }
    }

    /// Up to `limit` runtimes visible through `vis` in `scope` after
    /// skipping `offset`, newest registration first, and how many match,
    /// read in one snapshot. Counting 50,000 index entries costs
    /// milliseconds, and a console asks for page after page of the same
    /// list, so a total without a status filter is remembered until a
    /// runtime is added, removed or moved (its membership generation,
    /// kept by triggers, moves; heartbeats do not move it).
    pub fn runtime_offset_page(
        &self,
        vis: &crate::model::catalog::Visibility,
        scope: &crate::model::runtimes::RuntimeScope,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<crate::model::runtimes::RuntimeListed>, i64)> {
        self.read(|tx| {
            let total = if scope.status.is_some() {
                tx.runtime_scope_count(vis, scope)?
            } else {
                self.cached_runtime_count(tx, format!("{vis:?}|{scope:?}"), || {
                    tx.runtime_scope_count(vis, scope)
                })?
            };
            let rows = tx.runtime_offset_rows(vis, scope, offset, limit)?;
            Ok((rows, total))
        })
    }

    /// A count of runtimes that only adding, removing or moving one can
    /// change: remembered under `key` until the runtimes' membership
    /// generation (kept by triggers; heartbeats and status changes do not
    /// move it) moves, else `count`ed in `tx` and remembered.
    pub fn cached_runtime_count(
        &self,
        tx: &Tx,
        key: String,
        count: impl FnOnce() -> Result<i64>,
    ) -> Result<i64> {
        let generation = tx.runtime_membership()?;
        let cached = {
            let counts = self
                .runtime_counts
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            counts
                .by_filter
                .get(&key)
                .filter(|(g, _)| *g == generation)
                .map(|(_, n)| *n)
        };
        if let Some(n) = cached {
            return Ok(n);
        }
        let n = count()?;
        let mut counts = self
            .runtime_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if counts.by_filter.len() >= MAX_CACHED_COUNTS {
            counts.by_filter.clear();
        }
        counts.by_filter.insert(key, (generation, n));
        Ok(n)
    }

    /// A number that changes whenever any secret changes: at once for a
    /// change this process committed, within the backend's watch period
    /// for another process's or node's (SQLite: 1 ms, through its
    /// shared-memory change counter; PostgreSQL: see `postgres`).
    pub fn secrets_generation(&self) -> Result<i64> {
        if let Some(g) = self.seen_generation() {
            return Ok(g);
        }
        // Read before the check: a commit that lands meanwhile makes the
        // result stale at once, so the next call checks again.
        let commits = self.commits.load(Ordering::Acquire);
        let at = Instant::now();
        let generation = match &self.engine {
            Engine::Sqlite(s) => s.secrets_generation()?,
            Engine::Postgres(p) => p.secrets_generation()?,
        };
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Seen {
            generation,
            at: Some(at),
            commits,
        };
        Ok(generation)
    }

    /// The generation read last, if still current.
    fn seen_generation(&self) -> Option<i64> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let every = match &self.engine {
            Engine::Sqlite(_) => sqlite::WATCH_EVERY,
            Engine::Postgres(_) => postgres::WATCH_EVERY,
        };
        let current = seen.at.is_some_and(|at| at.elapsed() < every)
            && seen.commits == self.commits.load(Ordering::Acquire);
        current.then_some(seen.generation)
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64> {
        match &self.engine {
            Engine::Sqlite(s) => s.schema_version(),
            Engine::Postgres(p) => p.schema_version(),
        }
    }
}

macro_rules! runtime_joins_after_r {
    () => {
        "JOIN environments e ON e.id = r.environment_id \
         JOIN integrations i ON i.id = r.integration_id JOIN projects p ON p.id = i.project_id"
    };
}

/// The columns behind [`RuntimeRecord`], joined with handles.
const RUNTIME_COLUMNS: &str =
    "r.runtime_id, r.name, r.status, e.handle, p.handle, i.handle, r.runtime_type, \
     r.version, r.last_heartbeat, r.registered_at, r.key_id, r.environment_id, r.integration_id, p.id";
/// How many columns [`RUNTIME_COLUMNS`] selects; a query may add its own after them.
const RUNTIME_COLUMN_COUNT: usize = 14;
const RUNTIME_JOINS: &str = concat!("FROM runtimes r ", runtime_joins_after_r!());
/// The joins of [`RUNTIME_JOINS`] alone, for a query that names `runtimes r` itself.
const RUNTIME_JOINS_AFTER_R: &str = runtime_joins_after_r!();

/// Runtime ids by prefix. GLOB, not LIKE: GLOB compares case-sensitively,
/// as ids are compared everywhere else, so SQLite turns `'3f2a*'` into a
/// range on the primary key's index and reads only the matching ids (and
/// at most `?2` of them). LIKE ignores ASCII case and could use only a
/// NOCASE index, so it would scan every runtime.
const RUNTIME_IDS_WITH_PREFIX: &str =
    "SELECT runtime_id FROM runtimes WHERE runtime_id GLOB ?1 ORDER BY runtime_id LIMIT ?2";

/// The LIKE pattern (escape `\\`) matching strings that start with `prefix`.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The GLOB pattern matching strings that start with `prefix`: its own
/// wildcards (`*`, `?`, `[`) become one-character classes, so they match
/// only themselves.
fn glob_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        match c {
            '*' | '?' | '[' => {
                pattern.push('[');
                pattern.push(c);
                pattern.push(']');
            }
            c => pattern.push(c),
        }
    }
    pattern.push('*');
    pattern
}

fn runtime_from_row(r: &Row) -> db::Result<RuntimeRecord> {
    let status: String = r.get(2)?;
    Ok(RuntimeRecord {
        runtime_id: r.get(0)?,
        name: r.get(1)?,
        status: Status::parse(&status).unwrap_or(Status::Offline),
        environment: r.get(3)?,
        project: r.get(4)?,
        integration: r.get(5)?,
        runtime_type: r.get(6)?,
        version: r.get(7)?,
        last_heartbeat: r.get(8)?,
        registered_at: r.get(9)?,
        key_id: r.get(10)?,
        environment_id: r.get(11)?,
        integration_id: r.get(12)?,
        project_id: r.get(13)?,
        rollout: None,
    })
}

fn environment_from_row(r: &Row) -> db::Result<Environment> {
    Ok(Environment {
        id: r.get(0)?,
        handle: r.get(1)?,
        name: r.get(2)?,
        critical: r.get(3)?,
        created_at: r.get(4)?,
    })
}

const SECRET_SELECT: &str = "SELECT s.key_id, s.environment_id, e.handle, s.project_id, s.integration_id, \
     p.handle, i.handle, s.sealed_material, s.created_at, s.expires_at, s.revoked_at, s.bound_at \
     FROM secrets s JOIN environments e ON e.id = s.environment_id \
     LEFT JOIN projects p ON p.id = s.project_id LEFT JOIN integrations i ON i.id = s.integration_id";

fn secret_from_row(r: &Row) -> db::Result<StoredSecret> {
    Ok(StoredSecret {
        key_id: r.get(0)?,
        environment_id: r.get(1)?,
        environment: r.get(2)?,
        project_id: r.get(3)?,
        integration_id: r.get(4)?,
        project: r.get(5)?,
        integration: r.get(6)?,
        sealed_material: r.get(7)?,
        created_at: r.get(8)?,
        expires_at: r.get(9)?,
        revoked_at: r.get(10)?,
        bound_at: r.get(11)?,
    })
}

/// The fields a full heartbeat sets on a runtime's row.
#[derive(Debug, Clone)]
pub struct RuntimeRegistration<'a> {
    pub runtime_id: &'a str,
    pub name: Option<&'a str>,
    pub runtime_type: &'a str,
    pub environment_id: i64,
    pub integration_id: i64,
    pub key_id: &'a str,
    pub version: Option<&'a str>,
    pub node_info: &'a str,
    pub try_it_host: Option<&'a str>,
    pub runtime_hash: Option<&'a str>,
    pub now: Millis,
}

/// What the liveness table needs to know about a stored runtime at start-up.
#[derive(Debug, Clone)]
pub struct LivenessRow {
    pub runtime_id: String,
    pub key_id: String,
    pub runtime_hash: Option<String>,
    pub last_heartbeat: Millis,
    pub status: Status,
    pub integration_id: i64,
    pub environment_id: i64,
    pub name: Option<String>,
}

/// A status transition to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub runtime_id: String,
    pub status: Status,
    pub at: Millis,
    pub reason: String,
    /// A sweep's OFFLINE: only if no heartbeat after this time is stored.
    pub if_silent_since: Option<Millis>,
}

/// The lease a leader-only write must still hold (see `Tx::holds_lease`).
#[derive(Debug, Clone)]
pub struct Fence {
    pub lease: String,
    pub holder: String,
    pub epoch: i64,
}

impl Tx<'_> {
    /// `execute` through the statement cache: a heartbeat runs the same few
    /// statements thousands of times a second, and parsing SQL each time
    /// would cost more than running it.
    fn exec(&self, sql: &str, params: impl db::Params) -> db::Result<usize> {
        self.tx.prepare_cached(sql)?.execute(params)
    }

    /// `query_row` through the statement cache.
    fn row<T>(
        &self,
        sql: &str,
        params: impl db::Params,
        f: impl FnOnce(&Row<'_>) -> db::Result<T>,
    ) -> db::Result<T> {
        self.tx.prepare_cached(sql)?.query_row(params, f)
    }

    // ---- environments -------------------------------------------------

    pub fn environments(&self) -> Result<Vec<Environment>> {
        let mut st = self.tx.prepare_cached(
            "SELECT id, handle, name, critical, created_at FROM environments ORDER BY id",
        )?;
        let rows = st.query_map([], environment_from_row)?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    pub fn environment_by_handle(&self, handle: &str) -> Result<Option<Environment>> {
        let mut st = self.tx.prepare_cached(
            "SELECT id, handle, name, critical, created_at FROM environments WHERE handle = ?1",
        )?;
        Ok(st.query_row([handle], environment_from_row).optional()?)
    }

    pub fn insert_environment(
        &self,
        handle: &str,
        name: &str,
        critical: bool,
        data_plane_id: i64,
        now: Millis,
    ) -> Result<Environment> {
        self.exec(
            "INSERT INTO environments (handle, name, critical, data_plane_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![handle, name, critical, data_plane_id, now],
        )?;
        Ok(Environment {
            id: self.tx.last_insert_rowid()?,
            handle: handle.into(),
            name: name.into(),
            critical,
            created_at: now,
        })
    }

    // ---- projects and integrations -----------------------------------

    pub fn project_by_handle(&self, handle: &str) -> Result<Option<Project>> {
        let mut st = self
            .tx
            .prepare_cached("SELECT id, handle, name FROM projects WHERE handle = ?1")?;
        Ok(st
            .query_row([handle], |r| {
                Ok(Project {
                    id: r.get(0)?,
                    handle: r.get(1)?,
                    name: r.get(2)?,
                })
            })
            .optional()?)
    }

    pub fn project(&self, id: i64) -> Result<Option<Project>> {
        let mut st = self
            .tx
            .prepare_cached("SELECT id, handle, name FROM projects WHERE id = ?1")?;
        Ok(st
            .query_row([id], |r| {
                Ok(Project {
                    id: r.get(0)?,
                    handle: r.get(1)?,
                    name: r.get(2)?,
                })
            })
            .optional()?)
    }

    pub fn insert_project(&self, handle: &str, name: &str, now: Millis) -> Result<Project> {
        self.exec(
            "INSERT INTO projects (handle, name, created_at) VALUES (?1, ?2, ?3)",
            params![handle, name, now],
        )?;
        Ok(Project {
            id: self.tx.last_insert_rowid()?,
            handle: handle.into(),
            name: name.into(),
        })
    }

    fn integration_query(&self, sql: &str, p: impl db::Params) -> Result<Option<Integration>> {
        let mut st = self.tx.prepare_cached(sql)?;
        Ok(st
            .query_row(p, |r| {
                Ok(Integration {
                    id: r.get(0)?,
                    project_id: r.get(1)?,
                    handle: r.get(2)?,
                    name: r.get(3)?,
                    runtime_type: r.get(4)?,
                })
            })
            .optional()?)
    }

    pub fn integration_by_handle(
        &self,
        project_id: i64,
        handle: &str,
    ) -> Result<Option<Integration>> {
        self.integration_query(
            "SELECT id, project_id, handle, name, runtime_type FROM integrations WHERE project_id = ?1 AND handle = ?2",
            params![project_id, handle],
        )
    }

    pub fn integration(&self, id: i64) -> Result<Option<Integration>> {
        self.integration_query(
            "SELECT id, project_id, handle, name, runtime_type FROM integrations WHERE id = ?1",
            params![id],
        )
    }

    /// An integration and its project, in one query (a full heartbeat
    /// of a bound secret reads both).
    pub fn integration_with_project(&self, id: i64) -> Result<Option<(Integration, Project)>> {
        let mut st = self.tx.prepare_cached(
            "SELECT i.id, i.project_id, i.handle, i.name, i.runtime_type, p.handle, p.name \
             FROM integrations i JOIN projects p ON p.id = i.project_id WHERE i.id = ?1",
        )?;
        Ok(st
            .query_row([id], |r| {
                Ok((
                    Integration {
                        id: r.get(0)?,
                        project_id: r.get(1)?,
                        handle: r.get(2)?,
                        name: r.get(3)?,
                        runtime_type: r.get(4)?,
                    },
                    Project {
                        id: r.get(1)?,
                        handle: r.get(5)?,
                        name: r.get(6)?,
                    },
                ))
            })
            .optional()?)
    }

    pub fn insert_integration(
        &self,
        project_id: i64,
        handle: &str,
        name: &str,
        runtime_type: &str,
        now: Millis,
    ) -> Result<Integration> {
        self.exec(
            "INSERT INTO integrations (project_id, handle, name, runtime_type, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![project_id, handle, name, runtime_type, now],
        )?;
        Ok(Integration {
            id: self.tx.last_insert_rowid()?,
            project_id,
            handle: handle.into(),
            name: name.into(),
            runtime_type: runtime_type.into(),
        })
    }

    // ---- secrets -------------------------------------------------------

    pub fn insert_secret(&self, s: &StoredSecret) -> Result<()> {
        self.exec(
            "INSERT INTO secrets (key_id, environment_id, project_id, integration_id, sealed_material, created_at, expires_at, revoked_at, bound_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                s.key_id,
                s.environment_id,
                s.project_id,
                s.integration_id,
                s.sealed_material,
                s.created_at,
                s.expires_at,
                s.revoked_at,
                s.bound_at
            ],
        )?;
        Ok(())
    }

    pub fn secret(&self, key_id: &str) -> Result<Option<StoredSecret>> {
        let mut st = self
            .tx
            .prepare_cached(&format!("{SECRET_SELECT} WHERE s.key_id = ?1"))?;
        Ok(st.query_row([key_id], secret_from_row).optional()?)
    }

    pub fn secrets(&self) -> Result<Vec<StoredSecret>> {
        let mut st = self.tx.prepare_cached(&format!(
            "{SECRET_SELECT} ORDER BY s.created_at DESC, s.key_id"
        ))?;
        let rows = st.query_map([], secret_from_row)?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    pub fn revoke_secret(&self, key_id: &str, now: Millis) -> Result<bool> {
        let n = self.exec(
            "UPDATE secrets SET revoked_at = ?2 WHERE key_id = ?1 AND revoked_at IS NULL",
            params![key_id, now],
        )?;
        Ok(n == 1)
    }

    /// Binds an unbound secret to an integration. A secret already bound to
    /// that same integration (by another node's first heartbeat, which
    /// raced this one) is left as it is and counts as bound; false if it
    /// was bound to another integration meanwhile.
    pub fn bind_secret(
        &self,
        key_id: &str,
        project_id: i64,
        integration_id: i64,
        now: Millis,
    ) -> Result<bool> {
        let n = self.exec(
            "UPDATE secrets SET project_id = ?2, integration_id = ?3, \
               bound_at = CASE WHEN integration_id IS NULL THEN ?4 ELSE bound_at END \
             WHERE key_id = ?1 AND (integration_id IS NULL OR integration_id = ?3)",
            params![key_id, project_id, integration_id, now],
        )?;
        Ok(n == 1)
    }

    // ---- runtimes ------------------------------------------------------

    pub fn runtime(&self, runtime_id: &str) -> Result<Option<RuntimeRecord>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {RUNTIME_COLUMNS} {RUNTIME_JOINS} WHERE r.runtime_id = ?1"
        ))?;
        Ok(st.query_row([runtime_id], runtime_from_row).optional()?)
    }

    /// Up to `limit` runtime ids that start with `prefix`, in id order (an
    /// id equal to `prefix` comes first).
    pub fn runtime_ids_with_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<String>> {
        // PostgreSQL has no GLOB; LIKE compares case-sensitively there and,
        // under the C collation the database is made with, a prefix pattern
        // is a range on the primary key's index, as GLOB is in SQLite.
        let (sql, pattern) = match self.tx.dialect() {
            db::Dialect::Sqlite => (RUNTIME_IDS_WITH_PREFIX, glob_prefix(prefix)),
            db::Dialect::Postgres => (
                "SELECT runtime_id FROM runtimes WHERE runtime_id LIKE ?1 ESCAPE '\\' \
                 ORDER BY runtime_id LIMIT ?2",
                like_prefix(prefix),
            ),
        };
        let mut st = self.tx.prepare_cached(sql)?;
        let rows = st.query_map(params![pattern, limit as i64], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    /// Runtimes of one integration in one environment carrying a node name.
    pub fn runtimes_named(
        &self,
        integration_id: i64,
        environment_id: i64,
        name: &str,
    ) -> Result<Vec<RuntimeRecord>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {RUNTIME_COLUMNS} {RUNTIME_JOINS} WHERE r.integration_id = ?1 AND r.environment_id = ?2 AND r.name = ?3"
        ))?;
        let rows = st.query_map(
            params![integration_id, environment_id, name],
            runtime_from_row,
        )?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    pub fn list_runtimes(&self, f: &RuntimeFilter) -> Result<Vec<RuntimeRecord>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {RUNTIME_COLUMNS} {RUNTIME_JOINS} \
             WHERE (CAST(?1 AS TEXT) IS NULL OR e.handle = ?1) AND (CAST(?2 AS TEXT) IS NULL OR p.handle = ?2) \
               AND (CAST(?3 AS TEXT) IS NULL OR i.handle = ?3) AND (CAST(?4 AS TEXT) IS NULL OR r.status = ?4) \
             ORDER BY e.id, p.handle, i.handle, r.name, r.runtime_id"
        ))?;
        let rows = st.query_map(
            params![
                f.environment,
                f.project,
                f.integration,
                f.status.map(Status::as_str)
            ],
            runtime_from_row,
        )?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    /// Inserts a new runtime with its first status-history entry.
    pub fn insert_runtime(&self, r: &RuntimeRegistration, status: Status) -> Result<()> {
        self.exec(
            "INSERT INTO runtimes (runtime_id, name, runtime_type, environment_id, integration_id, key_id, status, version, \
                node_info, try_it_host, runtime_hash, registered_at, last_heartbeat, last_full_heartbeat) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?12)",
            params![
                r.runtime_id,
                r.name,
                r.runtime_type,
                r.environment_id,
                r.integration_id,
                r.key_id,
                status.as_str(),
                r.version,
                r.node_info,
                r.try_it_host,
                r.runtime_hash,
                r.now
            ],
        )?;
        self.exec(
            "INSERT INTO status_history (runtime_id, status, at, reason) VALUES (?1, ?2, ?3, 'registered')",
            params![r.runtime_id, status.as_str(), r.now],
        )?;
        self.record_runtime_change(r, Some(status))
    }

    /// Tells the other nodes what a full heartbeat stored.
    fn record_runtime_change(&self, r: &RuntimeRegistration, status: Option<Status>) -> Result<()> {
        self.record_change(
            &Change::Runtime {
                runtime_id: r.runtime_id.to_owned(),
                key_id: r.key_id.to_owned(),
                hash: r.runtime_hash.map(str::to_owned),
                status,
                slot: r
                    .name
                    .map(|n| (r.integration_id, r.environment_id, n.to_owned())),
                created: status.is_some(),
                at: r.now,
            },
            r.now,
        )
    }

    /// Updates an existing runtime from a full heartbeat, only if one of its
    /// fields changed: an unchanged full heartbeat writes nothing, so its
    /// transaction commits without a disk sync. Status and `last_heartbeat`
    /// are left to liveness, which flushes last-seen times in batches;
    /// `last_full_heartbeat` is the last full heartbeat that changed the row.
    /// Returns whether the row changed.
    pub fn update_runtime(&self, r: &RuntimeRegistration) -> Result<bool> {
        let n = self.exec(
            "UPDATE runtimes SET name = ?2, runtime_type = ?3, environment_id = ?4, integration_id = ?5, key_id = ?6, \
                version = ?7, node_info = ?8, try_it_host = ?9, runtime_hash = ?10, \
                last_heartbeat = MAX(last_heartbeat, ?11), last_full_heartbeat = ?11 \
             WHERE runtime_id = ?1 AND (name IS DISTINCT FROM ?2 OR runtime_type IS DISTINCT FROM ?3 OR environment_id IS DISTINCT FROM ?4 \
                OR integration_id IS DISTINCT FROM ?5 OR key_id IS DISTINCT FROM ?6 OR version IS DISTINCT FROM ?7 OR node_info IS DISTINCT FROM ?8 \
                OR try_it_host IS DISTINCT FROM ?9 OR runtime_hash IS DISTINCT FROM ?10)",
            params![
                r.runtime_id,
                r.name,
                r.runtime_type,
                r.environment_id,
                r.integration_id,
                r.key_id,
                r.version,
                r.node_info,
                r.try_it_host,
                r.runtime_hash,
                r.now
            ],
        )?;
        if n == 1 {
            self.record_runtime_change(r, None)?;
        }
        Ok(n == 1)
    }

    pub fn delete_runtime(&self, runtime_id: &str) -> Result<bool> {
        let gone: Option<(i64, i64)> = self
            .tx
            .prepare_cached(
                "DELETE FROM runtimes WHERE runtime_id = ?1 RETURNING integration_id, environment_id",
            )?
            .query_row([runtime_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if gone.is_some() {
            self.record_change(
                &Change::Removed {
                    runtime_id: runtime_id.to_owned(),
                    at: 0,
                    scope: gone,
                },
                0,
            )?;
        }
        Ok(gone.is_some())
    }

    /// Brings the artifact and log-level rows of a runtime in line with
    /// `artifacts`, writing only rows that differ; nothing at all when the
    /// digest is unchanged.
    pub fn sync_artifacts(
        &self,
        runtime_id: &str,
        artifacts: &Artifacts,
        log_levels: &BTreeMap<String, String>,
        digest: &str,
    ) -> Result<ArtifactWrites> {
        let mut st = self
            .tx
            .prepare_cached("SELECT artifacts_digest FROM runtimes WHERE runtime_id = ?1")?;
        let old: Option<String> = st
            .query_row([runtime_id], |r| r.get(0))
            .optional()?
            .flatten();
        // Stored: the heartbeat's digest, then one per table (see
        // `artifacts::sync`); a digest stored before table digests were
        // kept has none, and every table is compared once.
        let old = old.unwrap_or_default();
        let (old_digest, old_tables) = old.split_once(' ').unwrap_or((&old, ""));
        if old_digest == digest {
            return Ok(ArtifactWrites::default());
        }
        let (writes, tables) =
            artifacts::sync(self.tx, runtime_id, artifacts, log_levels, old_tables)?;
        self.exec(
            "UPDATE runtimes SET artifacts_digest = ?2, main_artifact = ?3, other_artifacts = ?4 WHERE runtime_id = ?1",
            params![
                runtime_id,
                format!("{digest} {tables}"),
                artifacts.main.as_ref().map(|m| m.to_string()),
                (!artifacts.other.is_empty()).then(|| serde_json::Value::Object(artifacts.other.clone()).to_string())
            ],
        )?;
        Ok(writes)
    }

    pub fn runtime_detail(&self, runtime_id: &str) -> Result<Option<RuntimeDetail>> {
        let Some(runtime) = self.runtime(runtime_id)? else {
            return Ok(None);
        };
        let mut st = self.tx.prepare_cached(
            "SELECT node_info, try_it_host, main_artifact, other_artifacts FROM runtimes WHERE runtime_id = ?1",
        )?;
        let (node_info, try_it_host, main, other): (
            String,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = st.query_row([runtime_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        let mut arts = artifacts::load(self.tx, runtime_id)?;
        arts.main = main.and_then(|m| serde_json::from_str(&m).ok());
        if let Some(serde_json::Value::Object(o)) =
            other.and_then(|o| serde_json::from_str(&o).ok())
        {
            arts.other = o;
        }
        let log_levels = artifacts::load_log_levels(self.tx, runtime_id)?;
        let mut st = self.tx.prepare_cached(
            "SELECT status, at, reason FROM status_history WHERE runtime_id = ?1 ORDER BY id",
        )?;
        let history = st
            .query_map([runtime_id], |r| {
                let s: String = r.get(0)?;
                Ok(StatusChange {
                    status: Status::parse(&s).unwrap_or(Status::Offline),
                    at: r.get(1)?,
                    reason: r.get(2)?,
                })
            })?
            .collect::<db::Result<Vec<_>>>()?;
        let management = self.management_address(runtime_id)?;
        let mi_artifacts = if runtime.runtime_type == "MI" {
            Some(crate::model::mi::by_kind(self.mi_artifacts(runtime_id)?))
        } else {
            None
        };
        Ok(Some(RuntimeDetail {
            secret_key_id: runtime.key_id.clone(),
            runtime,
            node_info: serde_json::from_str(&node_info).unwrap_or(serde_json::Value::Null),
            try_it_host,
            management,
            mi_artifacts,
            artifacts: arts,
            log_levels,
            status_history: history,
        }))
    }

    // ---- liveness ------------------------------------------------------

    /// Every runtime, as the in-memory liveness table needs it at start-up.
    pub fn liveness_rows(&self) -> Result<Vec<LivenessRow>> {
        let mut st = self.tx.prepare_cached(
            "SELECT runtime_id, key_id, runtime_hash, last_heartbeat, status, integration_id, environment_id, name FROM runtimes",
        )?;
        let rows = st.query_map([], |r| {
            let s: String = r.get(4)?;
            Ok(LivenessRow {
                runtime_id: r.get(0)?,
                key_id: r.get(1)?,
                runtime_hash: r.get(2)?,
                last_heartbeat: r.get(3)?,
                status: Status::parse(&s).unwrap_or(Status::Offline),
                integration_id: r.get(5)?,
                environment_id: r.get(6)?,
                name: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    /// Writes a liveness flush: last-seen times (never moved back),
    /// status transitions, and runtimes to delete. A transition is
    /// written only when it changes the stored status, and a sweep's
    /// OFFLINE (`if_silent_since`) only while no heartbeat after that
    /// time is stored, and only if `fence` holds: with several nodes, the
    /// database, not one node's memory, decides. With a change feed, a
    /// runtime stored OFFLINE that this node heard after its last
    /// transition is RUNNING again (another node marked it OFFLINE while
    /// its heartbeats came here). Returns what changed the stored status.
    pub fn record_liveness(
        &self,
        seen: &[(String, Millis)],
        transitions: &[Transition],
        deleted: &[String],
        fence: Option<&Fence>,
    ) -> Result<Vec<Transition>> {
        let fenced_out = match fence {
            Some(f) if transitions.iter().any(|t| t.if_silent_since.is_some()) => {
                !self.holds_lease(&f.lease, &f.holder, f.epoch)?
            }
            _ => false,
        };
        let mut applied = Vec::new();
        let mut status = self.tx.prepare_cached(
            "UPDATE runtimes SET status = ?2 WHERE runtime_id = ?1 AND status <> ?2 \
               AND (CAST(?3 AS BIGINT) IS NULL OR last_heartbeat <= ?3)",
        )?;
        let mut hist = self.tx.prepare_cached(
            "INSERT INTO status_history (runtime_id, status, at, reason) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for t in transitions {
            if t.if_silent_since.is_some() && fenced_out {
                continue;
            }
            let n = status.execute(params![t.runtime_id, t.status.as_str(), t.if_silent_since])?;
            if n == 1 {
                hist.execute(params![t.runtime_id, t.status.as_str(), t.at, t.reason])?;
                applied.push(t.clone());
            }
        }
        match self.tx.dialect() {
            db::Dialect::Sqlite => {
                let mut up = self.tx.prepare_cached(
                    "UPDATE runtimes SET last_heartbeat = MAX(last_heartbeat, ?2) WHERE runtime_id = ?1",
                )?;
                for (id, at) in seen {
                    up.execute(params![id, at])?;
                }
            }
            // A statement per runtime is a network round trip each on
            // PostgreSQL: thousands of last-seen times go in one statement
            // per chunk instead, as a JSON list of [id, at] pairs.
            db::Dialect::Postgres => {
                let mut revive = self.tx.prepare_cached(
                    "SELECT s.id, s.at FROM (SELECT e->>0 AS id, CAST(e->>1 AS BIGINT) AS at \
                           FROM jsonb_array_elements(CAST(CAST(?1 AS TEXT) AS jsonb)) e) s \
                     JOIN runtimes r ON r.runtime_id = s.id \
                     WHERE r.status = 'OFFLINE' AND s.at > COALESCE((SELECT h.at FROM status_history h \
                           WHERE h.runtime_id = r.runtime_id ORDER BY h.id DESC LIMIT 1), 0)",
                )?;
                let mut up = self.tx.prepare_cached(
                    "UPDATE runtimes r SET last_heartbeat = GREATEST(r.last_heartbeat, s.at) \
                     FROM (SELECT e->>0 AS id, CAST(e->>1 AS BIGINT) AS at \
                           FROM jsonb_array_elements(CAST(CAST(?1 AS TEXT) AS jsonb)) e) s \
                     WHERE r.runtime_id = s.id",
                )?;
                for chunk in seen.chunks(LIVENESS_CHUNK) {
                    let list = serde_json::Value::from(
                        chunk
                            .iter()
                            .map(|(id, at)| serde_json::json!([id, at]))
                            .collect::<Vec<_>>(),
                    )
                    .to_string();
                    if self.node.is_some() {
                        let heard: Vec<(String, Millis)> = revive
                            .query_map([&list], |r| Ok((r.get(0)?, r.get(1)?)))?
                            .collect::<db::Result<_>>()?;
                        for (id, at) in heard {
                            let t = Transition {
                                runtime_id: id,
                                status: Status::Running,
                                at,
                                reason: "heartbeat received".into(),
                                if_silent_since: None,
                            };
                            status.execute(params![
                                t.runtime_id,
                                t.status.as_str(),
                                None::<i64>
                            ])?;
                            hist.execute(params![t.runtime_id, t.status.as_str(), t.at, t.reason])?;
                            applied.push(t);
                        }
                    }
                    up.execute([list])?;
                }
            }
        }
        for t in &applied {
            self.record_change(
                &Change::Status {
                    runtime_id: t.runtime_id.clone(),
                    status: t.status,
                    at: t.at,
                },
                t.at,
            )?;
        }
        for id in deleted {
            self.delete_runtime(id)?;
        }
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::db::Queries;
    use super::{RuntimeRegistration, Store, RUNTIME_IDS_WITH_PREFIX};
    use crate::model::runtimes::Status;

    /// Registers RUNNING runtimes `ids` in integration p/i, environment dev.
    fn register(tx: &super::Tx, ids: &[&str]) -> crate::error::Result<()> {
        let (_, i) = crate::catalog::find_or_create_integration(tx, "p", "i", "BI", 1)?;
        let e = tx.environment_by_handle("dev")?.unwrap();
        for id in ids {
            tx.insert_runtime(
                &RuntimeRegistration {
                    runtime_id: id,
                    name: None,
                    runtime_type: "BI",
                    environment_id: e.id,
                    integration_id: i.id,
                    key_id: "k",
                    version: None,
                    node_info: "{}",
                    try_it_host: None,
                    runtime_hash: None,
                    now: 1,
                },
                Status::Running,
            )?;
        }
        Ok(())
    }

    /// A read runs while a write transaction is open (on a connection of
    /// its own) and sees what was committed before it, not the write in
    /// progress; once that commits, the next read sees it.
    #[test]
    fn reads_do_not_wait_for_an_open_write() {
        use std::sync::mpsc::channel;
        use std::time::Duration;
        let dir = std::env::temp_dir().join(format!("icpd-unit-store-read-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = std::sync::Arc::new(Store::open(&dir.join("icp.db")).unwrap());
        let ids = |store: &Store| store.read(|tx| tx.runtime_ids_with_prefix("", 10)).unwrap();
        let (opened, writer_open) = channel();
        let (read_done, may_commit) = channel::<()>();
        let writer = {
            let store = store.clone();
            std::thread::spawn(move || {
                store.write(|tx| {
                    register(tx, &["r1"])?;
                    opened.send(()).unwrap();
                    // Holds the write open until the read is done (or
                    // long enough for the test to fail, not hang).
                    let _ = may_commit.recv_timeout(Duration::from_secs(10));
                    Ok(())
                })
            })
        };
        writer_open.recv().unwrap();
        assert!(
            ids(&store).is_empty(),
            "a read sees only what was committed"
        );
        read_done.send(()).unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(ids(&store), ["r1"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A runtime id prefix matches only ids that start with exactly those
    /// characters (wildcards in it match themselves), and SQLite answers it
    /// from the primary key's index, not by reading every runtime.
    #[test]
    fn runtime_ids_by_prefix_are_exact_and_use_the_index() {
        let dir =
            std::env::temp_dir().join(format!("icpd-unit-store-prefix-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("icp.db")).unwrap();
        let ids = [
            "3f2a0000-0000-4000-a000-000000000001",
            "3f2b0000-0000-4000-a000-000000000002",
            "3F2A0000-0000-4000-a000-000000000003",
            "3f2a",
            "x*y",
            "xay",
            "x?z",
        ];
        store.write(|tx| register(tx, &ids)).unwrap();
        let find = |prefix: &str, limit: usize| {
            store
                .read(|tx| tx.runtime_ids_with_prefix(prefix, limit))
                .unwrap()
        };
        assert_eq!(find("3f2", 10), [ids[3], ids[0], ids[1]], "case matters");
        assert_eq!(find("3f2a", 10), [ids[3], ids[0]], "the exact id first");
        assert_eq!(find("3f2a0", 10), [ids[0]]);
        assert_eq!(find("3F", 10), [ids[2]]);
        assert_eq!(find("3f", 2).len(), 2, "at most the limit");
        assert_eq!(find("x*", 10), ["x*y"], "'*' matches only itself");
        assert_eq!(find("x?", 10), ["x?z"], "'?' matches only itself");
        assert!(find("*", 10).is_empty() && find("?", 10).is_empty());
        assert!(find("x[", 10).is_empty() && find("%", 10).is_empty());
        assert!(find("4", 10).is_empty());

        let plan: Vec<String> = store
            .read(|tx| {
                let mut st = tx
                    .tx
                    .prepare(&format!("EXPLAIN QUERY PLAN {RUNTIME_IDS_WITH_PREFIX}"))?;
                let rows = st
                    .query_map(super::params![super::glob_prefix("3f2a"), 6], |r| {
                        r.get::<_, String>(3)
                    })?
                    .collect::<super::db::Result<_>>()?;
                Ok(rows)
            })
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH")
                    && step.contains("runtime_id>? AND runtime_id<?")),
            "{plan:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
