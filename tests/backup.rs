//! Backups that restore: `icpd backup` beside a busy server, `icpd restore`
//! only on a stopped one and only of a sound file, `icpd check`, and
//! databases of every earlier schema version migrating with their data.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{
    assert_ack, cli, icpd_at, recent_audit, wait_for, Bridge, ServeOptions, TestDir, TestServer,
    TEST_PASSWORD,
};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs an admin command that must succeed; returns (stdout, stderr).
fn run_ok(data_dir: &Path, args: &[&str]) -> (String, String) {
    let out = cli(data_dir, args);
    assert!(
        out.status.success(),
        "icpd {args:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    (text(&out.stdout), text(&out.stderr))
}

/// Runs an admin command that must fail with exit code 1; returns stdout and stderr together.
fn run_err(data_dir: &Path, args: &[&str]) -> String {
    let out = cli(data_dir, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "icpd {args:?} should fail: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Files in `dir` whose names start with `prefix`.
fn files_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect()
}

/// What the load threads did.
#[derive(Default)]
struct Load {
    heartbeats: AtomicU64,
    /// Environments whose creation was acknowledged, in order.
    environments: Mutex<Vec<String>>,
    failures: Mutex<Vec<String>>,
    /// The slowest request, in milliseconds.
    slowest_ms: AtomicU64,
}

impl Load {
    fn timed<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let v = f();
        self.slowest_ms
            .fetch_max(start.elapsed().as_millis() as u64, Ordering::SeqCst);
        v
    }
}

/// Audit rows added to the database before it is backed up (about 25 MB).
const PADDING_ROWS: u32 = 100_000;

#[test]
fn a_backup_taken_under_load_restores_into_a_new_data_dir_and_serves() {
    // `icpd backup` and `restore` copy the SQLite file; PostgreSQL is
    // backed up with pg_dump (README).
    if !crate::harness::on_sqlite(
        "a_backup_taken_under_load_restores_into_a_new_data_dir_and_serves",
    ) {
        return;
    }
    // The load is one runtime sending deltas back to back, far faster than
    // the per-runtime limit allows a bridge.
    let server = TestServer::start_with(ServeOptions {
        icp_toml: Some("[heartbeat_limits]\nfull_per_second = 0\ndelta_per_second = 0\n"),
        ..ServeOptions::default()
    });
    let secret = server.secret("dev", Some(("order-service", "order-create")));
    let bridge = Bridge::new(&secret, Some("node-1"));
    assert_ack(&bridge.full(&mut server.runtime_client()));
    // The Super Admin "root" for the management writes (and to sign in after the restore).
    let _admin = server.admin();
    // Some bulk, so that each copy takes long enough for requests to land during it.
    rusqlite::Connection::open(server.data_dir.join("icp.db"))
        .unwrap()
        .execute_batch(&format!(
            "PRAGMA busy_timeout = 5000;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {PADDING_ROWS})
             INSERT INTO audit_log (at, actor, action, target, outcome, detail)
             SELECT 1000 + i, 'cli:test', 'padding', 'row ' || i, 'ok', hex(randomblob(100)) FROM n;"
        ))
        .unwrap();

    // Heartbeats and management writes run throughout the backups.
    let load = Arc::new(Load::default());
    let stop = Arc::new(AtomicBool::new(false));
    let heartbeats = {
        let (load, stop, bridge) = (load.clone(), stop.clone(), bridge.clone());
        let mut client = server.runtime_client();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let r = load.timed(|| bridge.delta(&mut client));
                if r.status == 200 {
                    load.heartbeats.fetch_add(1, Ordering::SeqCst);
                } else {
                    load.failures
                        .lock()
                        .unwrap()
                        .push(format!("delta heartbeat: {}", r.status));
                }
            }
        })
    };
    let writes = {
        let (load, stop) = (load.clone(), stop.clone());
        let mut client = server.admin_again();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let name = format!("load-{n}");
                let r = load.timed(|| client.post("/api/v1/environments", &json!({"name": name})));
                if r.status == 201 {
                    load.environments.lock().unwrap().push(name);
                } else {
                    load.failures.lock().unwrap().push(format!(
                        "create environment: {} {}",
                        r.status,
                        r.json()
                    ));
                }
            }
        })
    };
    wait_for("load to get going", Duration::from_secs(20), || {
        load.heartbeats.load(Ordering::SeqCst) >= 20 && load.environments.lock().unwrap().len() >= 5
    });

    let out_dir = TestDir::new("backups");
    let file = out_dir.path.join("icp-backup.db");
    let mut before_backup = Vec::new();
    let mut backup_ms = Vec::new();
    let mut served_during = 0;
    for round in 0..3 {
        before_backup = load.environments.lock().unwrap().clone();
        let started = Instant::now();
        let heartbeats_before = load.heartbeats.load(Ordering::SeqCst);
        let args = if round == 0 {
            vec!["backup", path_str(&file)]
        } else {
            vec!["backup", path_str(&file), "--force"]
        };
        let (stdout, stderr) = run_ok(&server.data_dir, &args);
        backup_ms.push(started.elapsed().as_millis());
        served_during += load.heartbeats.load(Ordering::SeqCst) - heartbeats_before;
        assert!(
            stdout.contains("bytes") && stdout.contains("schema version"),
            "{stdout}"
        );
        let key_path = server.data_dir.join("master.key");
        assert!(
            stderr.contains("master key") && stderr.contains(path_str(&key_path)),
            "the reminder names the key file: {stderr}"
        );
        // Without --force, an existing backup is never replaced.
        let refused = run_err(&server.data_dir, &["backup", path_str(&file)]);
        assert!(refused.contains("--force"), "{refused}");
    }
    let heartbeats_during = load.heartbeats.load(Ordering::SeqCst);
    wait_for(
        "load to go on after the backups",
        Duration::from_secs(20),
        || load.heartbeats.load(Ordering::SeqCst) > heartbeats_during + 20,
    );
    stop.store(true, Ordering::SeqCst);
    heartbeats.join().unwrap();
    writes.join().unwrap();
    let failures = load.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "requests failed during backups: {failures:?}"
    );
    let slowest = load.slowest_ms.load(Ordering::SeqCst);
    // Generous for a shared two-core machine; a backup that blocked writers
    // would hold them for the whole copy (busy_timeout is 5 s).
    assert!(
        slowest < 2_000,
        "a request took {slowest} ms during the backups"
    );
    assert!(
        served_during > 0,
        "no heartbeat was answered while the backups ran"
    );
    eprintln!(
        "backups took {backup_ms:?} ms with {served_during} heartbeats answered meanwhile; \
         {} heartbeats and {} environment writes in all, slowest request {slowest} ms",
        load.heartbeats.load(Ordering::SeqCst),
        load.environments.lock().unwrap().len()
    );
    // Only the finished copy is left beside FILE.
    assert_eq!(
        std::fs::read_dir(&out_dir.path).unwrap().count(),
        1,
        "temporary files left: {:?}",
        std::fs::read_dir(&out_dir.path)
            .unwrap()
            .collect::<Vec<_>>()
    );

    // Restore into a brand-new data directory: the key is reported missing
    // until master.key is copied there too, then `icpd check` passes.
    let fresh = TestDir::new("restored");
    let fresh_data = fresh.path.join("data");
    let (stdout, stderr) = run_ok(&fresh_data, &["restore", path_str(&file)]);
    assert!(stdout.contains("restored"), "{stdout}");
    assert!(!stdout.contains("previous database"), "{stdout}");
    assert!(stderr.contains("need a master key"), "{stderr}");
    assert_eq!(run_err(&fresh_data, &["check"]).matches("FAIL").count(), 1);
    std::fs::copy(
        server.data_dir.join("master.key"),
        fresh_data.join("master.key"),
    )
    .unwrap();
    let (report, _) = run_ok(&fresh_data, &["check"]);
    assert_eq!(report.lines().count(), 3, "{report}");
    assert!(report.lines().all(|l| l.starts_with("ok")), "{report}");

    // A server on a restored data directory: restore over the database of a
    // stopped server, which is kept, and start it again.
    let mut restored = TestServer::start(&[]);
    restored.stop();
    std::fs::copy(
        server.data_dir.join("master.key"),
        restored.data_dir.join("master.key"),
    )
    .unwrap();
    let (stdout, _) = run_ok(&restored.data_dir, &["restore", path_str(&file)]);
    assert!(stdout.contains("previous database kept as"), "{stdout}");
    assert_eq!(
        files_starting(&restored.data_dir, "icp.db.before-restore-").len(),
        1
    );
    assert!(!restored.data_dir.join("icp.db-shm").exists());
    restored.restart_stopped();

    // Everything committed before the last backup began is there.
    let envs = restored.cli_json(&["env", "list", "--json"]);
    let handles: Vec<&str> = envs
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["handle"].as_str().unwrap())
        .collect();
    for name in &before_backup {
        assert!(
            handles.contains(&name.as_str()),
            "{name} missing: {handles:?}"
        );
    }
    assert_eq!(restored.runtime(&bridge.runtime_id)["name"], "node-1");
    assert_eq!(restored.login("root", TEST_PASSWORD).status, 200);
    let padding: u32 = rusqlite::Connection::open(restored.data_dir.join("icp.db"))
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'padding'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(padding, PADDING_ROWS);
    // The secret, opened with the restored master key, still authenticates.
    assert_ack(&bridge.delta(&mut restored.runtime_client()));
    wait_for("the runtime to be RUNNING", Duration::from_secs(10), || {
        restored.status_of(&bridge.runtime_id).as_deref() == Some("RUNNING")
    });
}

#[test]
fn restore_refuses_a_running_server_and_a_bad_file_and_keeps_the_old_database() {
    // `icpd backup` and `restore` copy the SQLite file; PostgreSQL is
    // backed up with pg_dump (README).
    if !crate::harness::on_sqlite(
        "restore_refuses_a_running_server_and_a_bad_file_and_keeps_the_old_database",
    ) {
        return;
    }
    let mut server = TestServer::start(&[]);
    let dir = TestDir::new("restore-checks");
    let good = dir.path.join("good.db");
    run_ok(&server.data_dir, &["backup", path_str(&good)]);
    run_ok(&server.data_dir, &["env", "create", "after-backup"]);
    // A backup is on record, like any admin command that lets data out.
    let log = recent_audit(&server.data_dir);
    let backup = log
        .iter()
        .find(|e| e.action == "icpd backup")
        .expect("an audit entry for the backup");
    assert!(backup.actor.starts_with("cli:"), "{:?}", backup.actor);
    assert_eq!(backup.target, format!("file {}", good.display()));

    // The server holds the data directory: no restore, no second server.
    let err = run_err(&server.data_dir, &["restore", path_str(&good)]);
    assert!(err.contains("stop it first"), "{err}");
    let second = icpd_at(&server.data_dir)
        .args(["serve", "--runtime-listen", "127.0.0.1:0"])
        .args(["--management-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stderr).contains("in use by another icpd"),
        "{}",
        text(&second.stderr)
    );
    assert_eq!(server.stop(), Some(0));

    // Nor while an admin command uses the database: `user create` holds its
    // shared lock while it waits for the password on standard input.
    let mut waiting = icpd_at(&server.data_dir)
        .args(["user", "create", "late", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lock = server.data_dir.join("icpd.data.lock");
    wait_for("the admin command's lock", Duration::from_secs(10), || {
        // Held by someone when an exclusive try-lock fails.
        use std::os::fd::AsRawFd;
        let Ok(f) = std::fs::File::open(&lock) else {
            return false;
        };
        // SAFETY: flock on a descriptor we own; released when `f` closes.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
    });
    let err = run_err(&server.data_dir, &["restore", path_str(&good)]);
    assert!(err.contains("admin command is using the database"), "{err}");
    {
        use std::io::Write;
        let mut stdin = waiting.stdin.take().unwrap();
        stdin.write_all(b"a long enough password\n").unwrap();
    }
    assert!(waiting.wait_with_output().unwrap().status.success());

    // Files that must not be restored; the current database stays untouched.
    let garbage = dir.path.join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    let err = run_err(&server.data_dir, &["restore", path_str(&garbage)]);
    assert!(err.contains("not a readable SQLite database"), "{err}");

    let newer = dir.path.join("newer.db");
    std::fs::copy(&good, &newer).unwrap();
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 999")
        .unwrap();
    let err = run_err(&server.data_dir, &["restore", path_str(&newer)]);
    assert!(err.contains("knows only up to"), "{err}");

    let corrupt = dir.path.join("corrupt.db");
    std::fs::copy(&good, &corrupt).unwrap();
    {
        // An index whose definition no longer matches its contents.
        let c = rusqlite::Connection::open(&corrupt).unwrap();
        c.execute_batch(
            "CREATE TABLE junk (a, b); CREATE INDEX junk_a ON junk (a);
             INSERT INTO junk VALUES (1, 2), (3, 4);
             PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = 'CREATE INDEX junk_a ON junk (b)' WHERE name = 'junk_a';
             PRAGMA writable_schema = OFF;",
        )
        .unwrap();
    }
    let err = run_err(&server.data_dir, &["restore", path_str(&corrupt)]);
    assert!(err.contains("fails the integrity check"), "{err}");

    let missing = dir.path.join("missing.db");
    let err = run_err(&server.data_dir, &["restore", path_str(&missing)]);
    assert!(err.contains("does not exist"), "{err}");

    assert!(files_starting(&server.data_dir, "icp.db.before-restore-").is_empty());
    assert!(files_starting(&server.data_dir, "icp.db.restoring-").is_empty());
    let (envs, _) = run_ok(&server.data_dir, &["env", "list"]);
    assert!(envs.contains("after-backup"), "{envs}");

    // A good file replaces it; the replaced database is kept and still opens.
    let (stdout, _) = run_ok(&server.data_dir, &["restore", path_str(&good)]);
    assert!(stdout.contains("master key:"), "{stdout}");
    let kept = files_starting(&server.data_dir, "icp.db.before-restore-");
    assert_eq!(kept.len(), 1, "{kept:?}");
    let (envs, _) = run_ok(&server.data_dir, &["env", "list"]);
    assert!(!envs.contains("after-backup"), "{envs}");
    let kept_envs: i64 = rusqlite::Connection::open(&kept[0])
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM environments WHERE handle = 'after-backup'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept_envs, 1);
    server.restart_stopped();
    run_ok(&server.data_dir, &["check"]);
}

#[test]
fn check_reports_each_problem_on_its_own_line() {
    // `icpd backup` and `restore` copy the SQLite file; PostgreSQL is
    // backed up with pg_dump (README).
    if !crate::harness::on_sqlite("check_reports_each_problem_on_its_own_line") {
        return;
    }
    let d = TestDir::new("check");
    // No database yet.
    let out = run_err(&d.path, &["check"]);
    assert!(
        out.contains("FAIL  integrity") && out.contains("does not exist"),
        "{out}"
    );

    run_ok(&d.path, &["secret", "create", "--env", "dev", "--json"]);
    let (report, _) = run_ok(&d.path, &["check"]);
    assert!(report.contains("ok    integrity"), "{report}");
    assert!(report.contains("ok    schema"), "{report}");
    assert!(report.contains("opens all 1 stored secret"), "{report}");

    // Another key cannot open the secret.
    let key = d.path.join("master.key");
    let original = std::fs::read(&key).unwrap();
    use base64::Engine;
    let other = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    std::fs::write(&key, format!("{other}\n")).unwrap();
    let out = run_err(&d.path, &["check"]);
    assert!(
        out.contains("FAIL  master key") && out.contains("cannot decrypt 1 of 1"),
        "{out}"
    );
    assert!(out.contains("1 of 3 checks failed"), "{out}");
    // No key at all.
    std::fs::remove_file(&key).unwrap();
    let out = run_err(&d.path, &["check"]);
    assert!(out.contains("need a master key"), "{out}");
    std::fs::write(&key, &original).unwrap();

    // A database from a newer icpd.
    rusqlite::Connection::open(d.path.join("icp.db"))
        .unwrap()
        .execute_batch("PRAGMA user_version = 999")
        .unwrap();
    let out = run_err(&d.path, &["check"]);
    assert!(
        out.contains("FAIL  schema") && out.contains("newer"),
        "{out}"
    );
}

/// Adds a little data of every kind the first `version` migrations know.
fn seed(c: &rusqlite::Connection, version: usize, sealed: &[u8]) {
    c.execute_batch(
        "INSERT INTO projects (handle, name, created_at) VALUES ('orders', 'Orders', 1000);
         INSERT INTO integrations (project_id, handle, name, runtime_type, created_at)
             VALUES (1, 'order-create', 'Order create', 'BI', 1000);
         INSERT INTO runtimes (runtime_id, name, runtime_type, environment_id, integration_id, key_id, status,
             node_info, registered_at, last_heartbeat, last_full_heartbeat)
             VALUES ('rt-1', 'node-1', 'BI', 1, 1, 'abcd1234', 'OFFLINE', '{}', 1000, 2000, 1000);
         INSERT INTO status_history (runtime_id, status, at, reason) VALUES ('rt-1', 'RUNNING', 1000, 'registered');
         INSERT INTO log_levels (runtime_id, component, level) VALUES ('rt-1', 'acme/orders', 'DEBUG');",
    )
    .unwrap();
    // An environment made after prod. From the "pipeline" migration (the
    // 7th) on, an environment names its data plane.
    c.execute_batch(if version >= 7 {
        "INSERT INTO environments (handle, name, critical, created_at, data_plane_id)
             VALUES ('late', 'Late', 0, 1000, (SELECT id FROM data_planes WHERE handle = 'default'));"
    } else {
        "INSERT INTO environments (handle, name, critical, created_at) VALUES ('late', 'Late', 0, 1000);"
    })
    .unwrap();
    c.execute(
        "INSERT INTO secrets (key_id, environment_id, project_id, integration_id, sealed_material, created_at)
         VALUES ('abcd1234', 1, 1, 1, ?1, 1000)",
        [sealed],
    )
    .unwrap();
    if version >= 2 {
        c.execute_batch(
            "INSERT INTO users (username, display_name, password_hash, created_at, updated_at)
                 VALUES ('alice', 'Alice', 'not-a-real-hash', 1000, 1000);
             INSERT INTO audit_log (at, actor, action, outcome) VALUES (1000, 'cli:test', 'seed', 'ok');",
        )
        .unwrap();
    }
    if version >= 3 {
        c.execute_batch(
            "UPDATE projects SET description = 'order handling';
             INSERT INTO project_environments (project_id, environment_id, position) VALUES (1, 2, 0);",
        )
        .unwrap();
    }
    if version >= 4 {
        c.execute_batch(
            "INSERT INTO desired_states (integration_id, environment_id, kind, artifact, value, issued_by, issued_at)
                 VALUES (1, 1, 'logger', 'acme/orders', 'DEBUG', 'alice', 1000);",
        )
        .unwrap();
    }
}

#[test]
fn databases_of_every_earlier_schema_version_migrate_with_their_data() {
    // `icpd backup` and `restore` copy the SQLite file; PostgreSQL is
    // backed up with pg_dump (README).
    if !crate::harness::on_sqlite(
        "databases_of_every_earlier_schema_version_migrate_with_their_data",
    ) {
        return;
    }
    use base64::Engine;
    use icpd::store::migrations::MIGRATIONS;
    let key_text = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    let key = icpd::master_key::MasterKey::from_base64(&key_text).unwrap();
    let sealed = key.seal("abcd1234", b"key-material").unwrap();
    let latest = MIGRATIONS.len();
    assert!(latest >= 2, "nothing to upgrade from");
    for version in 1..latest {
        let d = TestDir::new(&format!("schema-{version}"));
        let db = d.path.join("icp.db");
        {
            let c = icpd::store::create_at_version(&db, version).unwrap();
            let v: i64 = c
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(v, version as i64);
            seed(&c, version, &sealed);
        }
        icpd::master_key::write_private_file(
            &d.path.join("master.key"),
            format!("{key_text}\n").as_bytes(),
        )
        .unwrap();
        let (report, _) = run_ok(&d.path, &["check"]);
        assert!(report.contains(&format!("version {version};")), "{report}");

        let store = icpd::store::Store::open(&db)
            .unwrap_or_else(|e| panic!("opening a version-{version} database: {e}"));
        assert_eq!(store.schema_version().unwrap(), latest as i64);
        store
            .read(|tx| {
                let project = tx.project_by_handle("orders")?.expect("project");
                assert!(tx
                    .integration_by_handle(project.id, "order-create")?
                    .is_some());
                let s = tx.secret("abcd1234")?.expect("secret");
                assert_eq!(key.open("abcd1234", &s.sealed_material)?, b"key-material");
                let detail = tx.runtime_detail("rt-1")?.expect("runtime");
                assert_eq!(detail.runtime.name.as_deref(), Some("node-1"));
                assert_eq!(
                    detail.log_levels.get("acme/orders").map(String::as_str),
                    Some("DEBUG")
                );
                assert_eq!(detail.status_history.len(), 1);
                // The default pipeline keeps the creation order it had (issue 13).
                let order: Vec<String> = tx
                    .all_environments()?
                    .into_iter()
                    .map(|e| e.handle)
                    .collect();
                assert_eq!(order, ["dev", "prod", "late"], "version {version}");
                let users = tx.users()?;
                assert_eq!(
                    users.iter().any(|u| u.username == "alice"),
                    version >= 2,
                    "version {version}"
                );
                Ok(())
            })
            .unwrap();
        drop(store);
        // The real binary serves the migrated file: `check` passes and the runtime is listed.
        let (report, _) = run_ok(&d.path, &["check"]);
        assert!(report.contains("as this icpd expects"), "{report}");
        let (shown, _) = run_ok(&d.path, &["runtime", "show", "rt-1", "--json"]);
        assert!(shown.contains("node-1"), "version {version}: {shown}");
    }
}

/// `icpd db copy` moves an install from SQLite to PostgreSQL: refused while
/// the server runs, verified row by row, refused into a database that is
/// not empty; the server then runs on PostgreSQL with everything in place
/// (runtimes, their secrets, users, audit) and new rows get new ids. With
/// `--with-telemetry` the logs, request records and metric points come
/// along: found, searched and continued on PostgreSQL.
#[test]
fn db_copy_moves_an_install_to_postgresql() {
    if crate::pg_cluster::enabled() {
        return; // the source is an SQLite install: the SQLite half runs it
    }
    if let Some(why) = crate::pg_cluster::unavailable() {
        eprintln!("db_copy_moves_an_install_to_postgresql: not run: {why}");
        return;
    }
    let mut server = TestServer::start(&[]);
    let secret = server.secret("dev", Some(("order-service", "order-create")));
    let bridge = Bridge::new(&secret, Some("node-1"));
    let mut runtime = server.runtime_client();
    assert_ack(&bridge.full(&mut runtime));
    let admin = server.admin();
    drop(admin);
    // Telemetry: logs out of time order (a NUL in one), a request record.
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    for (path, body) in [
        (
            "/icp/logs",
            json!([
                {"time": t0 + 20, "log": "payment failed for order 7", "level": "error"},
                {"time": t0, "log": "order 7 created", "level": "info"},
                {"time": t0 + 10, "log": "nul\0inside", "level": "warn"}
            ]),
        ),
        (
            "/icp/metrics",
            json!({"time": t0, "service": "orders", "statusCode": 200, "responseTimeMs": 3}),
        ),
    ] {
        let r = runtime
            .post_json(path, Some(&bridge.token()), &body)
            .unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.json());
    }
    let target_dir = TestDir::new("copy-target");
    let url = crate::pg_cluster::cluster().database_for(&target_dir.path);

    let err = run_err(&server.data_dir, &["db", "copy", "--to", &url]);
    assert!(err.contains("is running on"), "{err}");
    server.stop();
    let (out, _) = run_ok(
        &server.data_dir,
        &["db", "copy", "--to", &url, "--with-telemetry"],
    );
    assert!(out.contains("verified row by row"), "{out}");
    assert!(out.contains("secrets") && out.contains("runtimes"), "{out}");
    assert!(out.contains("4 records"), "{out}");
    for (table, n) in [("logs", 3), ("requests", 1), ("metric_points", 0)] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().eq([table, &n.to_string()])),
            "{table} {n}: {out}"
        );
    }
    let err = run_err(&server.data_dir, &["db", "copy", "--to", &url]);
    assert!(err.contains("empty database only"), "{err}");

    server.env.push(("ICP_DATABASE_URL".into(), url.clone()));
    server.restart_stopped();
    // The runtime (with its hash: no full heartbeat asked for), its secret
    // and the Super Admin came along.
    assert!(!assert_ack(&bridge.delta(&mut server.runtime_client())));
    let mut admin = server.admin_again();
    let r = admin.get(&format!("/api/v1/runtimes/{}", bridge.runtime_id));
    assert_eq!(r.status, 200, "{}", r.json());
    // The logs, in time order, searchable; a new one follows them.
    let messages = |admin: &mut crate::harness::ApiClient, query: &str| -> Vec<String> {
        let r = admin.get(&format!("/api/v1/observability/logs?order=asc&{query}"));
        assert_eq!(r.status, 200, "{}", r.json());
        r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["message"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        messages(&mut admin, ""),
        [
            "order 7 created",
            "nul\u{1a}inside",
            "payment failed for order 7"
        ]
    );
    assert_eq!(
        messages(&mut admin, "q=order+7"),
        ["order 7 created", "payment failed for order 7"]
    );
    let r = server
        .runtime_client()
        .post_json(
            "/icp/logs",
            Some(&bridge.token()),
            &json!([{"time": t0 + 5, "log": "late and new", "level": "info"}]),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(messages(&mut admin, "q=new").len(), 1);
    assert_eq!(messages(&mut admin, "").len(), 4);
    // Ids continue after the copied ones.
    let out = icpd_at(&server.data_dir)
        .env("ICP_DATABASE_URL", &url)
        .args(["env", "create", "after-copy"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = icpd_at(&server.data_dir)
        .env("ICP_DATABASE_URL", &url)
        .args(["check"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("opens all 1 stored secret"),
        "{}",
        text(&out.stdout)
    );
}
