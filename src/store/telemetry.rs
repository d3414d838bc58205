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
//! The schema is versioned like `icp.db`'s: `PRAGMA user_version` counts
//! applied migrations; a newer file is refused.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Error, Result};

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
];

/// A handle on `telemetry.db`.
pub struct TelemetryStore {
    /// Ingest and retention.
    #[allow(dead_code)] // until ingest lands
    pub(in crate::store) writer: Mutex<Connection>,
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
        writer.execute_batch("PRAGMA synchronous = NORMAL;")?;
        migrate(&writer, path)?;
        let reader = open_connection(path)?;
        reader.execute_batch("PRAGMA query_only = ON;")?;
        Ok(TelemetryStore {
            writer: Mutex::new(writer),
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
}
