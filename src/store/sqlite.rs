//! The SQLite backend: one file (`icp.db`) in WAL mode, the default.
//!
//! [`Sqlite::open`] sets the pragmas, applies pending migrations
//! (`PRAGMA user_version` counts them, `store::migrations` lists them) and
//! refuses a database made by a newer icpd. Writes go through one
//! connection, serialised by a mutex (BEGIN IMMEDIATE); reads through a few
//! read-only connections of their own, so a read (a console page, a view
//! polled while hundreds of replicas converge) never holds up the writes
//! heartbeats make. WAL gives each read a consistent snapshot of what was
//! committed when it began.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::db;
use super::migrations::MIGRATIONS;
use crate::error::{Error, Result};

/// How long a secrets generation read through the watch connection stays
/// current, when this process commits nothing meanwhile: a change another
/// process (the CLI) commits is seen within this long. Reading it costs
/// SQLite's shared lock (file-locking system calls) and a mutex that every
/// heartbeat would otherwise queue on.
pub(super) const WATCH_EVERY: Duration = Duration::from_millis(1);

/// Read-only connections per store: as many reads run at once, beside the
/// one write.
const READERS: usize = 4;

pub struct Sqlite {
    // Fields drop in this order: the read-only connections close before
    // the writer, which closes last, checkpoints and removes the WAL (a
    // read-only connection closing last cannot, and would leave
    // `icp.db-wal` behind).
    readers: Vec<Mutex<Connection>>,
    /// The reader a read that finds every reader busy waits for, in turn.
    next_reader: AtomicUsize,
    /// Another read-only connection that notices commits by anyone
    /// (`PRAGMA data_version`), for [`Sqlite::secrets_generation`].
    watch: Mutex<Watch>,
    conn: Mutex<Connection>,
    path: PathBuf,
}

struct Watch {
    conn: Connection,
    data_version: i64,
    secrets_generation: i64,
}

/// Makes a database file and its `-wal` and `-shm` files readable and
/// writable by the owner only (0600). A new database file is created
/// empty with that mode before SQLite opens it, since SQLite gives the
/// `-wal` and `-shm` it creates the database file's mode; files an older
/// icpd left readable by others are narrowed.
pub(crate) fn private_files(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = Path::new(&name);
        let Ok(meta) = std::fs::metadata(file) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| Error::io(format!("making {} private", file.display()), e))?;
        }
    }
    Ok(())
}

impl Sqlite {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Sqlite> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        private_files(path)?;
        let conn = Connection::open(path)
            .map_err(|e| Error::DataDir(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // Room for every statement the server runs, so none is re-parsed.
        conn.set_prepared_statement_cache_capacity(256);
        // WAL lets the CLI read while the server writes; FULL makes a
        // committed management write survive a power cut.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::DataDir(format!(
                "{} cannot use WAL mode (got {mode})",
                path.display()
            )));
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
        migrate(&conn, path)?;
        let readers = (0..READERS)
            .map(|_| {
                let r = Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                r.busy_timeout(Duration::from_secs(5))?;
                r.set_prepared_statement_cache_capacity(256);
                Ok(Mutex::new(r))
            })
            .collect::<Result<Vec<_>>>()?;
        let watch = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        watch.busy_timeout(Duration::from_secs(5))?;
        let watch = Watch {
            conn: watch,
            data_version: -1,
            secrets_generation: -1,
        };
        Ok(Sqlite {
            conn: Mutex::new(conn),
            readers,
            next_reader: AtomicUsize::new(0),
            watch: Mutex::new(watch),
            path: path.to_path_buf(),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in a write transaction (BEGIN IMMEDIATE); commits if it
    /// returns `Ok`.
    pub fn write<T>(&self, f: impl FnOnce(&db::Transaction) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = db::Transaction::sqlite(
            conn.transaction_with_behavior(TransactionBehavior::Immediate)?,
        );
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `f` in a read transaction on a read-only connection: a free
    /// one, or else the next in turn.
    pub fn read<T>(&self, f: impl FnOnce(&db::Transaction) -> Result<T>) -> Result<T> {
        let mut conn = self
            .readers
            .iter()
            .find_map(|r| r.try_lock().ok())
            .unwrap_or_else(|| {
                let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
                self.readers[i].lock().unwrap_or_else(|p| p.into_inner())
            });
        let tx =
            db::Transaction::sqlite(conn.transaction_with_behavior(TransactionBehavior::Deferred)?);
        f(&tx)
    }

    /// The secrets generation as committed by anyone. A check costs
    /// SQLite's shared-memory change counter; the counter row is read only
    /// after some commit happened.
    pub fn secrets_generation(&self) -> Result<i64> {
        let mut w = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        let dv: i64 = w
            .conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        if dv != w.data_version {
            let gen: i64 = w
                .conn
                .prepare_cached("SELECT value FROM meta WHERE key = 'secrets_generation'")?
                .query_row([], |r| r.get(0))?;
            w.data_version = dv;
            w.secrets_generation = gen;
        }
        Ok(w.secrets_generation)
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }
}

fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    migrate_to(conn, path, MIGRATIONS.len())
}

/// Applies the pending migrations among the first `target` ones.
pub(super) fn migrate_to(conn: &Connection, path: &Path, target: usize) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(Error::DataDir(format!(
            "{} has schema version {version}, but this icpd knows only up to {known}: run a newer icpd, or restore a backup made by this version",
            path.display()
        )));
    }
    for (i, m) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target)
        .skip(version as usize)
    {
        let n = i as i64 + 1;
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;\n{}\nPRAGMA user_version = {n};\nCOMMIT;",
            m.sql
        ))
        .map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            Error::DataDir(format!(
                "migration {n} ({}) failed on {}: {e}",
                m.name,
                path.display()
            ))
        })?;
        log::info!("applied schema migration {n} ({})", m.name);
    }
    Ok(())
}
