//! The PostgreSQL half of the suite: every integration test runs a second
//! time with `ICP_TEST_BACKEND=postgres` (see `postgres_half`), where each
//! data directory gets a database of its own on a throwaway cluster.
//!
//! The cluster is `ICP_TEST_DATABASE_URL` when set (a URL to a database
//! whose user may create databases), else one started here: `initdb` and
//! `pg_ctl` from `PATH` or `/usr/lib/postgresql/*/bin`, in a temporary
//! directory, on a free port, owned by `nobody` when the tests run as root
//! (PostgreSQL refuses root). A watcher process stops it and deletes the
//! directory when the test process exits, however it exits.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// Whether this process runs the suite against PostgreSQL.
pub fn enabled() -> bool {
    std::env::var("ICP_TEST_BACKEND").as_deref() == Ok("postgres")
}

pub struct Cluster {
    /// `postgres://user@host:port` without a database.
    base: String,
    /// Databases made so far, by name.
    made: Mutex<HashSet<String>>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// Why no cluster can be had here, or `None` when one can.
pub fn unavailable() -> Option<String> {
    if std::env::var("ICP_TEST_DATABASE_URL").is_ok() {
        return None;
    }
    match bin_dir() {
        Some(_) => None,
        None => Some(
            "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin, and ICP_TEST_DATABASE_URL is not set"
                .into(),
        ),
    }
}

fn bin_dir() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
                return Some(dir);
            }
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(start) {
        Ok(c) => c,
        Err(e) => panic!("the PostgreSQL half cannot run: {e}"),
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn start() -> Result<Cluster, String> {
    if let Ok(url) = std::env::var("ICP_TEST_DATABASE_URL") {
        let base = match url.rsplit_once('/') {
            Some((base, _db)) if base.contains("://") && base.len() > "postgres://".len() => {
                base.to_owned()
            }
            _ => url.trim_end_matches('/').to_owned(),
        };
        return Ok(Cluster {
            base,
            made: Mutex::default(),
        });
    }
    let shared = Private::start("shared").ok_or("no initdb")?;
    Ok(Cluster {
        base: shared.base(),
        made: Mutex::default(),
    })
}

impl Cluster {
    /// The URL of the database that belongs to `data_dir`, made empty on
    /// first use (icpd migrates it when it opens it).
    pub fn database_for(&self, data_dir: &Path) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        data_dir.hash(&mut h);
        let name = format!("icp_{:016x}", h.finish());
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        if !made.contains(&name) {
            let mut admin =
                postgres::Client::connect(&format!("{}/postgres", self.base), postgres::NoTls)
                    .unwrap_or_else(|e| {
                        panic!("connecting to the test cluster {}: {e}", self.base)
                    });
            for sql in [
                format!("DROP DATABASE IF EXISTS {name}"),
                format!("CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"),
            ] {
                admin
                    .batch_execute(&sql)
                    .unwrap_or_else(|e| panic!("{sql}: {:?}", e.as_db_error().map(|d| d.message())));
            }
            made.insert(name.clone());
        }
        format!("{}/{name}", self.base)
    }
}

/// The database URL for `data_dir` when the suite runs on PostgreSQL.
pub fn url_for(data_dir: &Path) -> Option<String> {
    enabled().then(|| cluster().database_for(data_dir))
}

/// For a test that only means something on PostgreSQL: a fresh database
/// of the cluster in a new directory named with `prefix` (which keeps it
/// apart), or `None` in the SQLite half, after saying so for `test`
/// (`what` says what kind of test it is).
pub fn fresh_database(
    test: &str,
    what: &str,
    prefix: &str,
) -> Option<(crate::harness::TestDir, icpd::store::postgres::DatabaseUrl)> {
    if !enabled() {
        eprintln!("{test}: {what}; run in the PostgreSQL half");
        return None;
    }
    let dir = crate::harness::TestDir::new(prefix);
    let url = url_for(&dir.path).unwrap();
    Some((
        dir,
        icpd::store::postgres::DatabaseUrl::parse(&url).unwrap(),
    ))
}

/// A logical dump of the PostgreSQL database of `data_dir`, as
/// [`crate::bad_input`]'s SQLite dump: schema version, columns, then every
/// row of every table but `excluded_tables` (as JSON, without
/// `excluded_columns`), sorted.
pub fn dump(
    data_dir: &Path,
    excluded_tables: &[&str],
    excluded_columns: &[(&str, &str)],
) -> Vec<String> {
    dump_where(
        data_dir,
        &|t| !excluded_tables.contains(&t),
        excluded_columns,
    )
}

/// [`dump`] of the tables `tables` only (every column).
pub fn dump_only(data_dir: &Path, tables: &[&str]) -> Vec<String> {
    dump_where(data_dir, &|t| tables.contains(&t), &[])
}

fn dump_where(
    data_dir: &Path,
    keep: &dyn Fn(&str) -> bool,
    excluded_columns: &[(&str, &str)],
) -> Vec<String> {
    let url = url_for(data_dir).expect("the suite runs on PostgreSQL");
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut out = Vec::new();
    let version: i64 = db
        .query_one("SELECT version FROM icpd_schema", &[])
        .unwrap()
        .get(0);
    out.push(format!("schema version {version}"));
    let columns = db
        .query(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
            &[],
        )
        .unwrap();
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    for row in &columns {
        let (table, column, ty): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        out.push(format!("column {table}.{column} {ty}"));
        if !keep(&table) || excluded_columns.contains(&(table.as_str(), column.as_str())) {
            continue;
        }
        match tables.last_mut() {
            Some((t, cols)) if *t == table => cols.push(column),
            _ => tables.push((table, vec![column])),
        }
    }
    for (table, cols) in &tables {
        let list = cols
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = db
            .query(&format!("SELECT row_to_json(t)::text FROM (SELECT {list} FROM \"{table}\") t ORDER BY 1"), &[])
            .unwrap();
        for row in rows {
            out.push(format!("{table}: {}", row.get::<_, String>(0)));
        }
    }
    out
}

/// A cluster of one test's own, which it may stop and start (the shared
/// one serves every other test meanwhile). Needs the server binaries:
/// `None` when there are none (with `ICP_TEST_DATABASE_URL` alone).
pub struct Private {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
}

impl Private {
    pub fn start(tag: &str) -> Option<Private> {
        let bin = bin_dir()?;
        let dir = std::env::temp_dir().join(format!("icpd-test-pg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let p = Private { dir, bin, port };
        if p.root() {
            run(
                Command::new("chown").arg("nobody:nogroup").arg(&p.dir),
                "chown of the cluster directory",
            )
            .unwrap();
        }
        run(
            p.as_owner("initdb")
                .arg("-D")
                .arg(p.dir.join("data"))
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ]),
            "initdb",
        )
        .unwrap();
        p.pg_ctl_start();
        // Stop it when this process is gone, whatever ends it.
        crate::harness::after_this_process(&format!(
            "{owner}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            owner = if p.root() {
                "setpriv --reuid=nobody --regid=nogroup --clear-groups -- "
            } else {
                ""
            },
            pg_ctl = p.bin.join("pg_ctl").display(),
            data = p.dir.join("data").display(),
            dir = p.dir.display(),
        ));
        Some(p)
    }

    /// [`Private::start`] with an empty database `icp` (see [`Private::url`]).
    pub fn with_database(tag: &str) -> Option<Private> {
        let p = Private::start(tag)?;
        let mut admin =
            postgres::Client::connect(&format!("{}/postgres", p.base()), postgres::NoTls).unwrap();
        admin
            .batch_execute("CREATE DATABASE icp TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'")
            .unwrap();
        Some(p)
    }

    fn root(&self) -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    fn as_owner(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.root() {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
                .arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn base(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// The URL of its database `icp`.
    pub fn url(&self) -> String {
        format!("{}/icp", self.base())
    }

    pub fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400",
            self.port,
            self.dir.display()
        );
        run(
            self.as_owner("pg_ctl")
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-o", &options, "-l"])
                .arg(self.dir.join("log"))
                .args(["-w", "start"]),
            "pg_ctl start",
        )
        .unwrap();
    }

    /// Stops the server (fast: connections are ended at once).
    pub fn pg_ctl_stop(&self) {
        run(
            self.as_owner("pg_ctl")
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "fast", "-w", "stop"]),
            "pg_ctl stop",
        )
        .unwrap();
    }
}
