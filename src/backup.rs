//! Backups that restore: `icpd backup`, `icpd restore` and `icpd check`.
//!
//! A backup is a consistent copy of `icp.db` made while the server runs
//! (`VACUUM INTO` reads one snapshot; the server keeps writing). It never
//! holds the master key, which must be backed up separately: without it the
//! secrets in the copy cannot be opened. A restore runs only while no server
//! holds the data directory's lock ([`DataDirLock`]), checks the file
//! before anything is replaced, and keeps the database it replaces.
//! `icpd check` checks a data directory as a server would need it.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::daemon::{DataDirLock, DataUseLock};
use crate::error::{Error, Result};
use crate::master_key::{MasterKey, MASTER_KEY_ENV, MASTER_KEY_FILE};
use crate::store::{self, migrations::MIGRATIONS, FileInspection};
use crate::time::Millis;

/// The schema version this icpd migrates databases to.
pub fn current_schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

// ---- backup -----------------------------------------------------------

/// A backup just written.
#[derive(Debug)]
pub struct BackupReport {
    /// Absolute path of the copy.
    pub path: PathBuf,
    pub bytes: u64,
    pub schema_version: i64,
}

/// Copies the database at `db` to `dest` while a server may be writing to
/// it. The copy is written next to `dest` under a temporary name, checked,
/// synced and then renamed into place, so `dest` is either absent or whole.
/// An existing `dest` is replaced only with `force`.
pub fn backup(db: &Path, dest: &Path, force: bool) -> Result<BackupReport> {
    if dest.is_dir() {
        return Err(Error::BadRequest(format!(
            "{} is a directory: give the backup a file name, e.g. {}",
            dest.display(),
            dest.join("icp-backup.db").display()
        )));
    }
    if dest.exists() && !force {
        return Err(Error::Conflict(format!(
            "{} already exists: choose another file name, or pass --force to replace it",
            dest.display()
        )));
    }
    let dest = absolute(dest)?;
    if std::fs::canonicalize(db).is_ok_and(|live| live == dest) {
        return Err(Error::BadRequest(format!(
            "{} is the live database: write the backup to another file",
            dest.display()
        )));
    }
    let dir = dest.parent().unwrap_or(Path::new("/"));
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.partial-{}", std::process::id()));
    remove_if_exists(&tmp)?;
    let written = write_copy(db, &tmp).and_then(|schema_version| {
        if force {
            std::fs::rename(&tmp, &dest)
                .map_err(|e| Error::io(format!("renaming to {}", dest.display()), e))?;
        } else {
            // A hard link never replaces a file that appeared meanwhile.
            std::fs::hard_link(&tmp, &dest).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::Conflict(format!(
                        "{} appeared while the backup was written: choose another file name, or pass --force",
                        dest.display()
                    ))
                } else {
                    Error::io(format!("linking {} to {}", tmp.display(), dest.display()), e)
                }
            })?;
            std::fs::remove_file(&tmp)
                .map_err(|e| Error::io(format!("removing {}", tmp.display()), e))?;
        }
        Ok(schema_version)
    });
    let schema_version = match written {
        Ok(v) => v,
        Err(e) => {
            let _ = remove_with_sidecars(&tmp);
            return Err(e);
        }
    };
    sync_dir(dir)?;
    let bytes = std::fs::metadata(&dest)
        .map_err(|e| Error::io(format!("reading {}", dest.display()), e))?
        .len();
    Ok(BackupReport {
        path: dest,
        bytes,
        schema_version,
    })
}

/// Writes the copy to `tmp`, owner-only (it holds password hashes and
/// sealed secrets), checks it and syncs it to disk.
fn write_copy(db: &Path, tmp: &Path) -> Result<i64> {
    use std::os::unix::fs::PermissionsExt;
    let schema_version = store::vacuum_into(db, tmp)?;
    let copy = store::inspect_file(tmp)?;
    if !copy.integrity_ok() {
        return Err(Error::DataDir(format!(
            "the copy failed its integrity check ({}); run `icpd check` on the data directory",
            copy.integrity.join("; ")
        )));
    }
    let file =
        std::fs::File::open(tmp).map_err(|e| Error::io(format!("opening {}", tmp.display()), e))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::io(format!("syncing {}", tmp.display()), e))?;
    Ok(schema_version)
}

// ---- restore ----------------------------------------------------------

/// What a restore did.
#[derive(Debug)]
pub struct RestoreReport {
    /// The database now in place.
    pub db: PathBuf,
    pub schema_version: i64,
    /// Where the database it replaced was kept, if there was one.
    pub kept: Option<PathBuf>,
    /// Whether the data directory's master key opens the restored secrets.
    pub key: KeyCheck,
}

/// Puts the backup `file` in place as `data_dir`'s database. Refuses while
/// a server holds the data directory, and before touching anything when
/// `file` fails its integrity check or was made by a newer icpd. The
/// replaced database is kept as `icp.db.before-restore-<time>` (with its
/// `-wal`, which may hold commits of a server that did not stop cleanly);
/// the stale shared-memory index is removed. `now` names the kept copy.
pub fn restore(data_dir: &Path, file: &Path, now: Millis) -> Result<RestoreReport> {
    if !file.is_file() {
        return Err(Error::NotFound(format!(
            "{} does not exist or is not a file: give the path of a file made by `icpd backup`",
            file.display()
        )));
    }
    let file_wal = sidecar(file, "-wal");
    if std::fs::metadata(&file_wal).is_ok_and(|m| m.len() > 0) {
        return Err(Error::BadRequest(format!(
            "{} exists beside {}: that looks like a live database or one not closed cleanly. \
             Make a copy with `icpd backup` and restore the copy",
            file_wal.display(),
            file.display()
        )));
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| Error::io(format!("creating data directory {}", data_dir.display()), e))?;
    let _lock = DataDirLock::try_acquire(data_dir)?.ok_or_else(|| {
        Error::Conflict(format!(
            "a server (pid {}) is running on {}: stop it first (SIGTERM, or stop its service), then run icpd restore again",
            DataDirLock::holder(data_dir).map_or("unknown".into(), |p| p.to_string()),
            data_dir.display()
        ))
    })?;
    // And no admin command may be writing into the database being set aside.
    let _use = DataUseLock::exclusive(data_dir)?.ok_or_else(|| {
        Error::Conflict(format!(
            "an icpd admin command is using the database in {}: let it finish, then run icpd restore again",
            data_dir.display()
        ))
    })?;
    // Checked on a private copy inside the data directory: what is checked
    // is exactly what is put in place, and the backup itself is only read.
    let staging = data_dir.join(format!("icp.db.restoring-{}", std::process::id()));
    remove_with_sidecars(&staging)?;
    let staged = stage(file, &staging);
    let inspection = match staged {
        Ok(i) => i,
        Err(e) => {
            let _ = remove_with_sidecars(&staging);
            return Err(e);
        }
    };
    let db = data_dir.join("icp.db");
    let kept = if db.exists() || sidecar(&db, "-wal").exists() {
        let kept = unused_name(data_dir, &format!("icp.db.before-restore-{}", stamp(now)));
        move_if_exists(&db, &kept)?;
        move_if_exists(&sidecar(&db, "-wal"), &sidecar(&kept, "-wal"))?;
        Some(kept)
    } else {
        None
    };
    remove_if_exists(&sidecar(&db, "-shm"))?;
    remove_if_exists(&sidecar(&db, "-journal"))?;
    std::fs::rename(&staging, &db).map_err(|e| {
        Error::io(
            format!("moving the restored database to {}", db.display()),
            e,
        )
    })?;
    sync_dir(data_dir)?;
    Ok(RestoreReport {
        db,
        schema_version: inspection.schema_version,
        kept,
        key: check_key(data_dir, &inspection.sealed_secrets),
    })
}

/// Copies `file` to `staging`, syncs it and checks it can be restored.
fn stage(file: &Path, staging: &Path) -> Result<FileInspection> {
    std::fs::copy(file, staging).map_err(|e| {
        Error::io(
            format!("copying {} to {}", file.display(), staging.display()),
            e,
        )
    })?;
    std::fs::File::open(staging)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(format!("syncing {}", staging.display()), e))?;
    let i = store::inspect_file(staging)?;
    if !i.integrity_ok() {
        return Err(Error::DataDir(format!(
            "{} fails the integrity check ({}): it cannot be restored; use another backup",
            file.display(),
            first_problems(&i.integrity)
        )));
    }
    let known = current_schema_version();
    if i.schema_version == 0 {
        return Err(Error::DataDir(format!(
            "{} has schema version 0: it is not an icpd database; give a file made by `icpd backup`",
            file.display()
        )));
    }
    if i.schema_version > known {
        return Err(Error::DataDir(format!(
            "{} has schema version {}, but this icpd knows only up to {known}: restore it with the newer icpd that made it",
            file.display(),
            i.schema_version
        )));
    }
    Ok(i)
}

/// `20250131T235959Z`: the UTC time in a file name.
fn stamp(now: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(now)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// `dir/base`, or `dir/base-2`, `-3`, ... if taken (two restores in one second).
fn unused_name(dir: &Path, base: &str) -> PathBuf {
    let mut path = dir.join(base);
    let mut n = 2;
    while path.exists() || sidecar(&path, "-wal").exists() {
        path = dir.join(format!("{base}-{n}"));
        n += 1;
    }
    path
}

// ---- check ------------------------------------------------------------

/// Whether a master key opens a database's secrets.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyCheck {
    /// Every secret opened.
    Opens { secrets: usize, source: String },
    /// No key, and no secret that would need one (`icpd serve` creates a key).
    NoneNeeded,
    /// No key, but there are secrets: the message says where it was looked for.
    Missing { secrets: usize, message: String },
    /// The key does not open these secrets (key ids).
    Mismatch {
        failed: Vec<String>,
        secrets: usize,
        source: String,
    },
}

impl KeyCheck {
    pub fn ok(&self) -> bool {
        matches!(self, KeyCheck::Opens { .. } | KeyCheck::NoneNeeded)
    }
}

impl std::fmt::Display for KeyCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyCheck::Opens { secrets, source } => {
                write!(f, "{source} opens all {secrets} stored secret(s)")
            }
            KeyCheck::NoneNeeded => f.write_str(
                "no master key yet and no stored secret needs one (icpd serve creates it)",
            ),
            KeyCheck::Missing { secrets, message } => {
                write!(f, "{secrets} stored secret(s) need a master key: {message}")
            }
            KeyCheck::Mismatch {
                failed,
                secrets,
                source,
            } => write!(
                f,
                "{source} cannot decrypt {} of {secrets} stored secret(s) (key ids, or config/... for configuration values: {}): \
                 put the master.key that was backed up with this database in place",
                failed.len(),
                failed.join(", ")
            ),
        }
    }
}

/// Where the master key comes from, for messages (never the key itself).
fn key_source(data_dir: &Path) -> String {
    if std::env::var_os(MASTER_KEY_ENV).is_some() {
        MASTER_KEY_ENV.to_string()
    } else {
        data_dir.join(MASTER_KEY_FILE).display().to_string()
    }
}

/// Tries the data directory's master key (or `ICP_MASTER_KEY`) on every sealed secret.
pub fn check_key(data_dir: &Path, sealed: &[(String, Vec<u8>)]) -> KeyCheck {
    let key = match MasterKey::load(data_dir, false) {
        Ok(k) => k,
        Err(_) if sealed.is_empty() => return KeyCheck::NoneNeeded,
        Err(e) => {
            return KeyCheck::Missing {
                secrets: sealed.len(),
                message: e.to_string(),
            }
        }
    };
    let failed: Vec<String> = sealed
        .iter()
        .filter(|(key_id, material)| key.open(key_id, material).is_err())
        .map(|(key_id, _)| key_id.clone())
        .collect();
    let source = key_source(data_dir);
    if failed.is_empty() {
        KeyCheck::Opens {
            secrets: sealed.len(),
            source,
        }
    } else {
        KeyCheck::Mismatch {
            failed,
            secrets: sealed.len(),
            source,
        }
    }
}

/// One line of `icpd check`.
#[derive(Debug)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Checks the database of `data_dir` (integrity, schema version) and its
/// master key. Reads only; safe beside a running server.
pub fn check(data_dir: &Path) -> Vec<Check> {
    let db = data_dir.join("icp.db");
    let inspection = store::inspect_file(&db);
    let i = match inspection {
        Ok(i) => i,
        Err(e) => {
            return vec![
                Check {
                    name: "integrity",
                    ok: false,
                    detail: format!(
                        "{e}; check --data-dir, or restore a backup with `icpd restore`"
                    ),
                },
                Check {
                    name: "schema",
                    ok: false,
                    detail: "not checked: the database cannot be read".into(),
                },
                Check {
                    name: "master key",
                    ok: false,
                    detail: "not checked: the database cannot be read".into(),
                },
            ]
        }
    };
    let integrity = if i.integrity_ok() {
        Check {
            name: "integrity",
            ok: true,
            detail: format!("{}: ok", db.display()),
        }
    } else {
        Check {
            name: "integrity",
            ok: false,
            detail: format!(
                "{}: {} problem(s), e.g. {}; restore the latest good backup with `icpd restore`",
                db.display(),
                i.integrity.len(),
                first_problems(&i.integrity)
            ),
        }
    };
    let known = current_schema_version();
    let v = i.schema_version;
    let schema = Check {
        name: "schema",
        ok: v > 0 && v <= known,
        detail: if v == 0 {
            "version 0: this is not an icpd database (or icpd never opened it)".into()
        } else if v > known {
            format!(
                "version {v} is newer than this icpd's {known}: run the newer icpd that wrote it"
            )
        } else if v < known {
            format!("version {v}; this icpd ({known}) migrates it when it next opens it")
        } else {
            format!("version {v}, as this icpd expects")
        },
    };
    let key = check_key(data_dir, &i.sealed_secrets);
    vec![
        integrity,
        schema,
        Check {
            name: "master key",
            ok: key.ok(),
            detail: key.to_string(),
        },
    ]
}

/// [`check`] for a PostgreSQL database: that it answers, its schema
/// version, and that the master key of `data_dir` (or `ICP_MASTER_KEY`)
/// opens every secret in it. Reads only; safe beside running nodes.
pub fn check_postgres(url: &crate::store::postgres::DatabaseUrl, data_dir: &Path) -> Vec<Check> {
    let i = match crate::store::postgres::inspect(url) {
        Ok(i) => i,
        Err(e) => {
            let not = || "not checked: the database cannot be read".to_string();
            return vec![
                Check {
                    name: "database",
                    ok: false,
                    detail: format!("{e}; check database_url and that PostgreSQL is running"),
                },
                Check {
                    name: "schema",
                    ok: false,
                    detail: not(),
                },
                Check {
                    name: "master key",
                    ok: false,
                    detail: not(),
                },
            ];
        }
    };
    let known = current_schema_version();
    let v = i.schema_version;
    let key = check_key(data_dir, &i.sealed_secrets);
    vec![
        Check {
            name: "database",
            ok: true,
            detail: format!("{}: answers", url.display()),
        },
        Check {
            name: "schema",
            ok: v > 0 && v <= known,
            detail: if v == 0 {
                "version 0: no icpd schema in this database (icpd creates it when a node starts)"
                    .into()
            } else if v > known {
                format!("version {v} is newer than this icpd's {known}: run the newer icpd that wrote it")
            } else if v < known {
                format!("version {v}; this icpd ({known}) migrates it when a node next starts")
            } else {
                format!("version {v}, as this icpd expects")
            },
        },
        Check {
            name: "master key",
            ok: key.ok(),
            detail: key.to_string(),
        },
    ]
}

// ---- the commands -----------------------------------------------------

/// `icpd backup` and `restore` copy the SQLite file; a PostgreSQL
/// database is PostgreSQL's to back up.
fn refuse_on_postgres(cfg: &Config, command: &str) -> Result<()> {
    match &cfg.database_url {
        None => Ok(()),
        Some(url) => Err(Error::Config(format!(
            "icpd {command} copies the embedded SQLite database, but database_url names PostgreSQL ({}): use pg_dump -Fc and pg_restore (README, \"PostgreSQL\"), and keep the master key with the dump",
            url.display()
        ))),
    }
}

/// `icpd db copy --to URL [--with-telemetry]`: the data directory's
/// `icp.db` (and `telemetry.db`) into an empty PostgreSQL database,
/// verified row by row; only while no server runs on the data directory
/// (a write after the copy would be lost) and no admin command uses it.
pub fn db_copy_command(cfg: &Config, to: &str, with_telemetry: bool) -> Result<()> {
    if let Some(url) = &cfg.database_url {
        return Err(Error::Config(format!(
            "icpd db copy reads the data directory's icp.db, but database_url is set ({}): unset it (ICP_DATABASE_URL, --database-url, icp.toml) and name the target with --to",
            url.display()
        )));
    }
    let target = crate::store::postgres::DatabaseUrl::parse(to)?;
    let data_dir = &cfg.data_dir;
    if !cfg.db_path().exists() {
        return Err(Error::DataDir(format!(
            "{} does not exist: check --data-dir (ICP_DATA_DIR)",
            cfg.db_path().display()
        )));
    }
    if with_telemetry && !cfg.telemetry_db_path().exists() {
        return Err(Error::DataDir(format!(
            "{} does not exist: leave out --with-telemetry, or check --data-dir (ICP_DATA_DIR)",
            cfg.telemetry_db_path().display()
        )));
    }
    let _lock = DataDirLock::try_acquire(data_dir)?.ok_or_else(|| {
        Error::Conflict(format!(
            "a server (pid {}) is running on {}: stop it first, so that nothing is written after the copy, then run icpd db copy again",
            DataDirLock::holder(data_dir).map_or("unknown".into(), |p| p.to_string()),
            data_dir.display()
        ))
    })?;
    let _use = DataUseLock::exclusive(data_dir)?.ok_or_else(|| {
        Error::Conflict(format!(
            "an icpd admin command is using the database in {}: let it finish, then run icpd db copy again",
            data_dir.display()
        ))
    })?;
    let r = crate::store::copy::sqlite_to_postgres(&cfg.db_path(), &target)?;
    let rows: usize = r.tables.iter().map(|(_, n)| n).sum();
    println!(
        "copied {} to {}: {rows} rows in {} tables, schema version {}, verified row by row",
        cfg.db_path().display(),
        target.display(),
        r.tables.len(),
        r.schema_version
    );
    for (table, n) in r.tables.iter().filter(|(_, n)| *n > 0) {
        println!("  {table:<24} {n}");
    }
    if with_telemetry {
        let t = crate::store::copy::telemetry_to_postgres(&cfg.telemetry_db_path(), &target)?;
        let rows: usize = t.tables.iter().map(|(_, n)| n).sum();
        println!(
            "copied {} to {}: {rows} records, telemetry schema version {}, verified row by row",
            cfg.telemetry_db_path().display(),
            target.display(),
            t.schema_version
        );
        for (table, n) in &t.tables {
            println!("  {table:<24} {n}");
        }
    } else {
        println!(
            "logs and metrics in {} were not copied (add --with-telemetry to copy them); a server on PostgreSQL keeps new ones in PostgreSQL.",
            cfg.telemetry_db_path().display()
        );
    }
    println!(
        "next: start icpd with --database-url (or ICP_DATABASE_URL) set to the target, with this data directory's master.key (or ICP_MASTER_KEY); keep {} until you are satisfied.",
        cfg.db_path().display()
    );
    Ok(())
}

/// `icpd backup FILE [--force]`.
pub fn backup_command(cfg: &Config, file: &Path, force: bool) -> Result<()> {
    refuse_on_postgres(cfg, "backup")?;
    let r = backup(&cfg.db_path(), file, force)?;
    println!(
        "backup written to {}: {} bytes, schema version {}, integrity ok",
        r.path.display(),
        r.bytes,
        r.schema_version
    );
    eprintln!(
        "note: the master key is not in the backup; back up {} as well, kept apart from the backup: \
         without it the secrets in the copy cannot be decrypted",
        key_source(&cfg.data_dir)
    );
    Ok(())
}

/// `icpd restore FILE`.
pub fn restore_command(cfg: &Config, file: &Path, now: Millis) -> Result<()> {
    refuse_on_postgres(cfg, "restore")?;
    let r = restore(&cfg.data_dir, file, now)?;
    println!(
        "restored {} to {} (schema version {}{})",
        file.display(),
        r.db.display(),
        r.schema_version,
        if r.schema_version < current_schema_version() {
            format!(
                "; migrated to {} when the server starts",
                current_schema_version()
            )
        } else {
            String::new()
        }
    );
    if let Some(kept) = &r.kept {
        println!("previous database kept as {}", kept.display());
    }
    if r.key.ok() {
        println!("master key: {}", r.key);
    } else {
        eprintln!(
            "warning: master key: {}. Runtimes cannot authenticate until it is fixed; `icpd check` checks again",
            r.key
        );
    }
    Ok(())
}

/// `icpd check`: one line per check; an error when any fails.
pub fn check_command(cfg: &Config) -> Result<()> {
    let checks = match &cfg.database_url {
        None => check(&cfg.data_dir),
        Some(url) => check_postgres(url, &cfg.data_dir),
    };
    for c in &checks {
        println!(
            "{:<5} {}: {}",
            if c.ok { "ok" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    let failed: Vec<&Check> = checks.iter().filter(|c| !c.ok).collect();
    match failed.first() {
        None => Ok(()),
        Some(first) => Err(Error::DataDir(format!(
            "{} of {} checks failed on {} (first: {}); see the lines above for what to do",
            failed.len(),
            checks.len(),
            cfg.data_dir.display(),
            first.name
        ))),
    }
}

// ---- files ------------------------------------------------------------

/// `path` with `suffix` appended to its file name, as SQLite names its `-wal` and `-shm`.
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `path` made absolute through its (existing) directory.
fn absolute(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        Error::BadRequest(format!(
            "{} names no file: give the backup a file name",
            path.display()
        ))
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(dir).map_err(|e| {
        Error::io(
            format!(
                "directory {} of the backup (create it first)",
                dir.display()
            ),
            e,
        )
    })?;
    Ok(dir.join(name))
}

fn first_problems(rows: &[String]) -> String {
    rows.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("removing {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

/// Removes a database file with its `-wal` and `-shm`.
fn remove_with_sidecars(path: &Path) -> Result<()> {
    remove_if_exists(path)?;
    remove_if_exists(&sidecar(path, "-wal"))?;
    remove_if_exists(&sidecar(path, "-shm"))
}

fn move_if_exists(from: &Path, to: &Path) -> Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
            format!("moving {} to {}", from.display(), to.display()),
            e,
        )),
        _ => Ok(()),
    }
}

/// Makes renames in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_copies_are_named_by_utc_time_and_never_reuse_a_name() {
        assert_eq!(stamp(1_767_225_599_000), "20251231T235959Z");
        let dir = std::env::temp_dir().join(format!("icpd-backup-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = "icp.db.before-restore-20251231T235959Z";
        assert_eq!(unused_name(&dir, base), dir.join(base));
        std::fs::write(dir.join(base), b"x").unwrap();
        assert_eq!(unused_name(&dir, base), dir.join(format!("{base}-2")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sidecars_are_named_as_sqlite_names_them() {
        assert_eq!(
            sidecar(Path::new("/d/icp.db"), "-wal"),
            PathBuf::from("/d/icp.db-wal")
        );
    }
}
