//! The SQL behind `icpd backup`, `icpd restore` and `icpd check`.
//!
//! These work on database files by path, not through an open [`Store`]
//! (super::Store): a backup must not migrate the live database, and
//! a file about to be restored or checked must be inspected exactly as it
//! is. No connection here creates a database: opening a missing file is an
//! error.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::db::Queries;

use crate::error::{Error, Result};
use crate::model::configuration::{seal_context, ValueKey};

/// What a database file holds, as far as the checks before a restore and
/// `icpd check` need to know.
#[derive(Debug)]
pub struct FileInspection {
    /// The rows of `PRAGMA integrity_check`: just `ok` for a sound file.
    pub integrity: Vec<String>,
    /// `PRAGMA user_version`: how many migrations the file has applied.
    pub schema_version: i64,
    /// Every stored secret's key id and sealed key material (empty at
    /// schema version 0, which has no secrets table), then every secret
    /// configuration value's sealing context and sealed value.
    pub sealed_secrets: Vec<(String, Vec<u8>)>,
}

impl FileInspection {
    /// Whether `PRAGMA integrity_check` found nothing wrong.
    pub fn integrity_ok(&self) -> bool {
        self.integrity.len() == 1 && self.integrity[0] == "ok"
    }
}

/// Opens an existing database file without creating it (read-write, so a
/// WAL-mode file can be read beside a running server, which keeps the
/// shared-memory index up to date).
fn open_existing(path: &Path) -> Result<Connection> {
    if !path.is_file() {
        return Err(Error::DataDir(format!(
            "{} does not exist: check --data-dir (ICP_DATA_DIR)",
            path.display()
        )));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::DataDir(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// Maps SQLite's complaint about a file that is no database to one a person can act on.
fn not_a_database(path: &Path, e: rusqlite::Error) -> Error {
    Error::DataDir(format!(
        "{} is not a readable SQLite database ({e}): give the path of a file made by `icpd backup`",
        path.display()
    ))
}

/// Writes a consistent copy of the database at `db` to `dest`, which must
/// not exist. `VACUUM INTO` reads one snapshot (a WAL read transaction), so
/// the server goes on writing meanwhile; the copy is compact and has no
/// `-wal` of its own. Returns the copy's schema version.
pub fn vacuum_into(db: &Path, dest: &Path) -> Result<i64> {
    let conn = open_existing(db)?;
    let dest_text = dest.to_str().ok_or_else(|| {
        Error::BadRequest(format!(
            "{} is not valid UTF-8; choose a backup path SQLite can name",
            dest.display()
        ))
    })?;
    // The destination is a bound parameter: VACUUM INTO takes an expression.
    conn.execute("VACUUM INTO ?1", [dest_text])
        .map_err(|e| Error::DataDir(format!("copying {} to {}: {e}", db.display(), dest_text)))?;
    drop(conn);
    let copy = open_existing(dest)?;
    Ok(copy.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Every stored secret's key id and sealed key material, then (when the
/// schema has them: from the "pipeline" migration on) every secret
/// configuration value's sealing context and sealed value: what the master
/// key must open. Either backend (`icpd check` reads both).
pub(super) fn sealed_values(q: &impl Queries, has_config: bool) -> Result<Vec<(String, Vec<u8>)>> {
    let mut st = q.prepare("SELECT key_id, sealed_material FROM secrets ORDER BY key_id")?;
    let mut sealed = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<super::db::Result<Vec<_>>>()?;
    if has_config {
        let mut st = q.prepare(
            "SELECT c.integration_id, c.environment_id, v.section, v.key, v.sealed \
             FROM config_values v JOIN config_revisions c ON c.id = v.revision_id \
             WHERE v.secret = 1 ORDER BY v.revision_id, v.section, v.key",
        )?;
        let rows = st.query_map([], |r| {
            let k = ValueKey {
                section: r.get(2)?,
                key: r.get(3)?,
            };
            Ok((seal_context(r.get(0)?, r.get(1)?, &k), r.get(4)?))
        })?;
        sealed.extend(rows.collect::<super::db::Result<Vec<_>>>()?);
    }
    Ok(sealed)
}

/// Runs `PRAGMA integrity_check` and reads the schema version and the sealed
/// secrets of the database at `path`. Changes nothing in it.
pub fn inspect_file(path: &Path) -> Result<FileInspection> {
    let conn = open_existing(path)?;
    let schema_version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| not_a_database(path, e))?;
    let integrity = {
        let mut st = conn
            .prepare("PRAGMA integrity_check")
            .map_err(|e| not_a_database(path, e))?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| not_a_database(path, e))?
    };
    let sealed_secrets = if schema_version == 0 {
        Vec::new()
    } else {
        let has_config: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'config_values')",
            [],
            |r| r.get(0),
        )?;
        sealed_values(&super::db::SqliteConn(&conn), has_config)?
    };
    Ok(FileInspection {
        integrity,
        schema_version,
        sealed_secrets,
    })
}

/// Applies only the first `n` migrations to a new database at `path`, as
/// an icpd of that schema version would have left it. For tests of
/// upgrades from every earlier version; the server never calls it.
#[doc(hidden)]
pub fn create_at_version(path: &Path, n: usize) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")?;
    super::sqlite::migrate_to(&conn, path, n)?;
    Ok(conn)
}
