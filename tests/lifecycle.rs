//! Liveness, restarts and shutdown of the real server.

use std::time::{Duration, Instant};

use icpd::time::now_millis;
use serde_json::Value;

use crate::harness::{
    assert_ack, millis, wait_for, wait_for_timed, Bridge, ServeOptions, TestServer,
};

/// The times (Unix ms) at which `history` (a runtime's `statusHistory`)
/// records OFFLINE.
fn offline_at(history: &Value) -> Vec<i64> {
    history
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["status"] == "OFFLINE")
        .map(|h| millis(&h["at"]))
        .collect()
}

#[test]
fn a_silent_runtime_goes_offline_within_timeout_plus_one_second_and_comes_back() {
    let s = TestServer::start(&["--heartbeat-timeout", "2s"]);
    let secret = s.secret("dev", None);
    let b = Bridge::new(&secret, Some("node-1"));
    let mut c = s.runtime_client();
    assert_ack(&b.full(&mut c));
    wait_for("OFFLINE", Duration::from_secs(20), || {
        s.status_of(&b.runtime_id).as_deref() == Some("OFFLINE")
    });
    // Timed on the server's own records (its clock, its sweep), so the
    // polling above, a CLI process each time, adds nothing to it.
    let shown = s.runtime(&b.runtime_id);
    let gap = offline_at(&shown["statusHistory"])[0] - millis(&shown["lastHeartbeat"]);
    assert!(
        (2_000..=3_000).contains(&gap),
        "OFFLINE {gap} ms after the last heartbeat (timeout 2 s): {shown}"
    );
    // A delta brings it back.
    assert!(!assert_ack(&b.delta(&mut c)));
    wait_for("RUNNING again", Duration::from_secs(20), || {
        s.status_of(&b.runtime_id).as_deref() == Some("RUNNING")
    });
    let history = s.runtime(&b.runtime_id)["statusHistory"]
        .as_array()
        .unwrap()
        .clone();
    let statuses: Vec<&str> = history
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["RUNNING", "OFFLINE", "RUNNING"], "{history:?}");
    assert!(history
        .iter()
        .all(|h| h["at"].as_str().is_some_and(|t| t.ends_with('Z'))));
}

#[test]
fn last_heartbeat_reaches_the_database_within_two_seconds() {
    let s = TestServer::start(&[]);
    let secret = s.secret("dev", None);
    let b = Bridge::new(&secret, None);
    let mut c = s.runtime_client();
    assert_ack(&b.full(&mut c));
    let first = s.runtime(&b.runtime_id)["lastHeartbeat"].clone();
    // The delta must fall in a later millisecond than the first heartbeat.
    wait_for(
        "the clock to pass the first heartbeat",
        Duration::from_secs(5),
        || now_millis() > millis(&first),
    );
    let sent = Instant::now();
    assert_ack(&b.delta(&mut c));
    let unflushed = wait_for_timed(
        "flushed lastHeartbeat",
        sent,
        Duration::from_secs(20),
        || s.runtime(&b.runtime_id)["lastHeartbeat"] != first,
    );
    // Flushes run at least every second on a 250 ms tick; the rest is
    // slack for a loaded machine. Counted to the last check that still
    // found the old time, which leaves out the CLI's own run time.
    assert!(
        unflushed <= Duration::from_millis(2000),
        "not flushed {unflushed:?} after the heartbeat"
    );
}

#[test]
fn a_restart_keeps_hashes_and_gives_runtimes_a_full_timeout() {
    let mut s = TestServer::start(&["--heartbeat-timeout", "2s"]);
    let secret = s.secret("dev", None);
    let b = Bridge::new(&secret, None);
    {
        let mut c = s.runtime_client();
        assert_ack(&b.full(&mut c));
    }
    // The thing tested: the runtime's last heartbeat gets older than the
    // timeout (2 s) while icpd is down.
    assert_eq!(s.stop(), Some(0));
    std::thread::sleep(Duration::from_millis(2500));
    // Before the restart, on the clock the server records with: its start,
    // and so any OFFLINE it may decide, comes after this.
    let restarting = now_millis();
    s.restart_stopped();
    // The first delta after the restart needs no full heartbeat: the hash was durable.
    let mut c = s.runtime_client();
    assert!(!assert_ack(&b.delta(&mut c)));
    // Not marked OFFLINE at start-up: if at all (a machine slow enough to
    // take 2 s to get here), only a full timeout after the restart.
    let history = s.runtime(&b.runtime_id)["statusHistory"].clone();
    assert!(
        offline_at(&history)
            .iter()
            .all(|&at| at >= restarting + 2_000),
        "marked OFFLINE at start-up: {history}"
    );
    // A runtime that stays silent goes OFFLINE only after one full timeout from the restart.
    let other = Bridge::new(&secret, None);
    assert_ack(&other.full(&mut c));
    assert_eq!(s.stop(), Some(0));
    let restarting = now_millis();
    s.restart_stopped();
    wait_for("OFFLINE after restart", Duration::from_secs(20), || {
        s.status_of(&other.runtime_id).as_deref() == Some("OFFLINE")
    });
    let history = s.runtime(&other.runtime_id)["statusHistory"].clone();
    let at = offline_at(&history)[0];
    assert!(
        at >= restarting + 2_000,
        "marked OFFLINE {} ms after the restart: {history}",
        at - restarting
    );
}

#[test]
fn sigterm_exits_zero_and_healthz_answers() {
    let mut s = TestServer::start(&[]);
    let mut m = s.management_client();
    let r = m.request("GET", "/healthz", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    let health = r.json();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(
        health["selfPreservation"],
        serde_json::json!({"active": false})
    );
    assert_eq!(health["database"]["reachable"], true, "{health}");
    if crate::pg_cluster::enabled() {
        assert_eq!(health["database"]["backend"], "postgres");
        // One node: it names itself and leads once its lease round ran.
        assert!(health["cluster"]["node"].is_string(), "{health}");
    } else {
        assert_eq!(health["database"]["backend"], "sqlite");
        assert!(health.get("cluster").is_none(), "{health}");
    }
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = m.request("GET", "/api/v1/nope", &[], b"").unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "not_found");
    // Other paths belong to the console (client-side routes).
    let r = m.request("GET", "/nope", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(s.stop(), Some(0));
    assert!(s.log_text().contains("stopped in"), "{}", s.log_text());
}

#[test]
fn plain_http_with_no_tls() {
    let s = TestServer::start(&["--no-tls"]);
    assert!(
        s.runtime_url.starts_with("http://127.0.0.1:"),
        "{}",
        s.runtime_url
    );
    assert!(s.management_url.starts_with("http://127.0.0.1:"));
    let secret = s.secret("dev", None);
    let b = Bridge::new(&secret, None);
    let mut c = s.runtime_client();
    assert_ack(&b.full(&mut c));
}

#[test]
fn a_database_from_a_newer_icpd_is_refused() {
    let s = TestServer::start(&[]);
    drop(s.management_client());
    if let Some(url) = crate::pg_cluster::url_for(&s.data_dir) {
        let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        db.batch_execute("UPDATE icpd_schema SET version = 999")
            .unwrap();
    } else {
        let db = s.data_dir.join("icp.db");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA user_version = 999").unwrap();
    }
    let out = s.cli(&["env", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("schema version 999") && err.contains("newer icpd"),
        "{err}"
    );
}

#[test]
fn tls_certificate_is_generated_once_with_a_private_key() {
    use std::os::unix::fs::PermissionsExt;
    let mut s = TestServer::start(&[]);
    let cert = std::fs::read(s.cert()).unwrap();
    let key = s.data_dir.join("tls").join("key.pem");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mk = s.data_dir.join("master.key");
    assert_eq!(
        std::fs::metadata(&mk).unwrap().permissions().mode() & 0o777,
        0o600
    );
    s.restart();
    assert_eq!(
        std::fs::read(s.cert()).unwrap(),
        cert,
        "the certificate is reused"
    );
    // `cert show` prints the path and the SHA-256 fingerprint of that certificate.
    let out = s.cli(&["cert", "show"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cert.pem"), "{text}");
    let fp = text
        .lines()
        .find_map(|l| l.strip_prefix("sha256 fingerprint: "))
        .unwrap();
    assert_eq!(fp.len(), 32 * 3 - 1);
    assert_eq!(fp, icpd::http::tls::fingerprint(&s.cert()).unwrap());
}

#[test]
fn a_pause_longer_than_the_timeout_is_held_by_self_preservation_not_marked_offline() {
    // 5 s: registering the fleet one by one must take less than this, on a
    // loaded machine too (1.7 s seen with 24 tests on one core).
    let s = TestServer::start(&["--heartbeat-timeout", "5s"]);
    let bridges = s.fleet("dev", 12);
    let mut c = s.runtime_client();
    // The thing tested: icpd is stopped for longer than the timeout (as a
    // paused VM or a SIGSTOP would): when it continues, every runtime looks
    // silent at once.
    s.pause(Duration::from_millis(6_000));
    let mut m = s.management_client();
    let mut health = || m.request("GET", "/healthz", &[], b"").unwrap().json();
    wait_for("self-preservation", Duration::from_secs(10), || {
        health()["selfPreservation"]["active"] == true
    });
    let h = health();
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["selfPreservation"]["held"], 12, "{h}");
    assert_eq!(h["selfPreservation"]["running"], 12, "{h}");
    assert!(h["reason"].as_str().unwrap().contains("12 of 12"), "{h}");
    for b in &bridges {
        assert_eq!(s.status_of(&b.runtime_id).as_deref(), Some("RUNNING"));
    }
    // Heartbeats return: the hold ends and every runtime is RUNNING. None
    // was marked OFFLINE while they were all silent. (Once more than half
    // are heard from again, the hold is over and those still silent are
    // marked OFFLINE until their own heartbeat: with the deltas sent one
    // after another, a sweep between them may do that to the last few.)
    let returning = now_millis();
    for b in &bridges {
        assert_ack(&b.delta(&mut c));
    }
    wait_for("the hold to end", Duration::from_secs(10), || {
        health()["selfPreservation"]["active"] == false
    });
    assert_eq!(health()["status"], "ok");
    for b in &bridges {
        let shown = s.runtime(&b.runtime_id);
        assert_eq!(shown["status"], "RUNNING", "{shown}");
        assert!(
            offline_at(&shown["statusHistory"])
                .iter()
                .all(|&at| at >= returning),
            "marked OFFLINE during the hold: {shown}"
        );
    }
    let log = s.log_text();
    assert!(
        log.contains("self-preservation: 12 of 12 RUNNING runtimes"),
        "{log}"
    );
    assert!(log.contains("self-preservation over"), "{log}");
}

// ---- start-up (issue 13, point 8) --------------------------------------------

/// Starts `icpd serve` with the open file limit set to `nofile` (soft and
/// hard; `None`: inherited) in its own data directory, with `icp_toml` as
/// its configuration if given, and stops it once both listeners are up;
/// returns the start-up log.
fn start_up_log(nofile: Option<u64>, icp_toml: Option<&str>) -> String {
    let mut s = TestServer::start_with(ServeOptions {
        icp_toml,
        nofile,
        ..ServeOptions::default()
    });
    s.stop();
    s.log_text()
}

/// The warn line about the open file limit, if there is one.
fn open_file_warning(log: &str) -> Option<&str> {
    log.lines()
        .find(|l| l.contains(" WARN ") && l.contains("open file limit"))
}

#[test]
fn a_default_start_does_not_warn_about_the_open_file_limit() {
    // With this machine's limit (20000, which used to fall short of
    // 2 × 10,000 connections and warned on every start).
    let log = start_up_log(None, None);
    assert_eq!(open_file_warning(&log), None, "{log}");
    // What a limit of 4096 holds is used without a fuss ...
    let log = start_up_log(Some(4096), None);
    assert_eq!(open_file_warning(&log), None, "{log}");
    assert!(log.contains("up to 2000 connections per listener"), "{log}");
    // ... a limit too low for a fleet is worth a warning ...
    let log = start_up_log(Some(1024), None);
    let warning = open_file_warning(&log).unwrap_or_else(|| panic!("no warning at 1024: {log}"));
    assert!(
        warning.contains("at most 464 connections") && warning.contains("ulimit -n"),
        "{warning}"
    );
    // ... and so is a configured cap the limit cannot hold.
    let log = start_up_log(Some(4096), Some("[http]\nmax_connections = 10000\n"));
    let warning = open_file_warning(&log).unwrap_or_else(|| panic!("{log}"));
    assert!(
        warning.contains("open file limit is 4096")
            && warning.contains("http.max_connections = 10000"),
        "{warning}"
    );
}

#[test]
fn a_busy_port_leaves_a_new_data_directory_uncreated() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let dir = crate::harness::TestDir::new("busy-port");
    let pristine = dir.path.join("pristine");
    std::fs::create_dir(&pristine).unwrap();
    for (flag, data_dir) in [
        ("--runtime-listen", dir.path.join("new")),
        ("--management-listen", dir.path.join("new")),
        ("--management-listen", pristine.clone()),
    ] {
        let other = if flag == "--runtime-listen" {
            "--management-listen"
        } else {
            "--runtime-listen"
        };
        let out = crate::harness::icpd_at(&data_dir)
            .args([
                "serve",
                flag,
                &format!("127.0.0.1:{port}"),
                other,
                "127.0.0.1:0",
            ])
            .current_dir(&dir.path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
            "{err}"
        );
        if data_dir == pristine {
            assert_eq!(
                std::fs::read_dir(&pristine).unwrap().count(),
                0,
                "the existing directory was left as it was"
            );
        } else {
            assert!(
                !data_dir.exists(),
                "{flag} busy: {} was created",
                data_dir.display()
            );
        }
    }
    drop(busy);
}

#[test]
fn databases_and_their_wal_files_are_private() {
    if !crate::harness::on_sqlite("databases_and_their_wal_files_are_private") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = |s: &TestServer, name: &str| {
        std::fs::metadata(s.data_dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    let files = [
        "icp.db",
        "icp.db-wal",
        "icp.db-shm",
        "telemetry.db",
        "telemetry.db-wal",
        "telemetry.db-shm",
    ];
    let mut s = TestServer::start(&[]);
    let write_both = |s: &TestServer| {
        let b = Bridge::new(&s.secret("dev", None), None);
        let mut c = s.runtime_client();
        assert_ack(&b.full(&mut c));
        let r = c
            .post_json(
                "/icp/logs",
                Some(&b.token()),
                &serde_json::json!({"log": "hello"}),
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.json());
    };
    write_both(&s);
    for f in files {
        assert_eq!(mode(&s, f), 0o600, "{f}");
    }
    // Files an older icpd left readable by others are narrowed at start.
    assert_eq!(s.stop(), Some(0));
    for f in ["icp.db", "telemetry.db"] {
        std::fs::set_permissions(s.data_dir.join(f), std::fs::Permissions::from_mode(0o644))
            .unwrap();
    }
    s.restart_stopped();
    write_both(&s);
    for f in files {
        assert_eq!(mode(&s, f), 0o600, "{f} after a restart");
    }
}

/// On PostgreSQL, nodes sharing a database must share the master key: a
/// second node with a key of its own (a new data directory makes one) is
/// refused with what to do, and one with the same key joins and names the
/// leader the first node elected.
#[test]
fn a_second_node_joins_with_the_same_master_key_and_is_refused_with_another() {
    if !crate::pg_cluster::enabled() {
        eprintln!("a_second_node_joins_with_the_same_master_key_and_is_refused_with_another: PostgreSQL only");
        return;
    }
    let first = TestServer::start(&[]);
    let url = crate::pg_cluster::url_for(&first.data_dir).unwrap();
    let other = crate::harness::TestDir::new("second-node");
    let out = crate::harness::icpd()
        .arg("--data-dir")
        .arg(other.path.join("data"))
        .env("ICP_DATABASE_URL", &url)
        .args([
            "serve",
            "--runtime-listen",
            "127.0.0.1:0",
            "--management-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("master key is not the one"), "{err}");
    assert!(!err.contains("password"), "{err}");
    // The same key: it joins.
    let key = std::fs::read_to_string(first.data_dir.join("master.key")).unwrap();
    let second = TestServer::start_with(crate::harness::ServeOptions {
        env: &[
            ("ICP_DATABASE_URL", url.as_str()),
            ("ICP_MASTER_KEY", key.trim()),
        ],
        ..Default::default()
    });
    let health = |s: &TestServer| {
        s.management_client()
            .request("GET", "/healthz", &[], b"")
            .unwrap()
            .json()
    };
    wait_for("a leader", Duration::from_secs(15), || {
        let (a, b) = (health(&first), health(&second));
        a["cluster"]["leader"].is_string() && a["cluster"]["leader"] == b["cluster"]["leader"]
    });
    let (a, b) = (health(&first), health(&second));
    assert_ne!(a["cluster"]["node"], b["cluster"]["node"]);
    assert_eq!(
        [
            a["cluster"]["leading"].clone(),
            b["cluster"]["leading"].clone()
        ]
        .iter()
        .filter(|l| **l == true)
        .count(),
        1,
        "{a} {b}"
    );
    assert_eq!(a["database"]["backend"], "postgres");
    assert!(first.cli(&["env", "list"]).status.success());

    // What happens on one node reaches the other's memory and its live
    // events within a second or two: a runtime registered through the
    // first is RUNNING on the second, which streams its registration and,
    // after a delete through the first, its removal.
    let mut admin = first.admin();
    let auth = format!("Bearer {}", admin.token);
    let mut events = match second.open_sse("/api/v1/events", &[("Authorization", &auth)]) {
        crate::harness::Opened::Stream(sse) => sse,
        crate::harness::Opened::Refused(status, body) => panic!("events refused: {status} {body}"),
    };
    assert_eq!(
        events.next_event(Duration::from_secs(2)).unwrap().event,
        "hello"
    );
    let b = Bridge::new(&first.secret("dev", None), Some("across"));
    assert_ack(&b.full(&mut first.runtime_client()));
    events.expect("runtime.registered", Duration::from_secs(3), |d| {
        d["runtimeId"] == b.runtime_id.as_str()
    });
    // The second node knows it: a delta there needs no full heartbeat.
    assert!(!assert_ack(&b.delta(&mut second.runtime_client())));
    let r = admin.delete(&format!("/api/v1/runtimes/{}", b.runtime_id));
    assert_eq!(r.status, 204, "{}", r.json());
    let removed = events.expect("runtime.removed", Duration::from_secs(3), |d| {
        d["runtimeId"] == b.runtime_id.as_str()
    });
    assert_eq!(removed["environment"], "dev");
    // ... and forgot it: its next delta there asks for a full heartbeat.
    assert!(assert_ack(&b.delta(&mut second.runtime_client())));

    // A command issued through the first node is delivered once per
    // attempt whichever node the runtime's heartbeats land on: the second
    // node hands it out (claimed in the database), the first, asked right
    // after, does not hand it out again (its retry is 10 s away).
    let mut b = Bridge::new(&first.secret("dev", None), Some("commanded"));
    b.project = "shop".into();
    b.integration = "cart".into();
    assert_ack(&b.full(&mut first.runtime_client()));
    let r = admin.put(
        "/api/v1/projects/shop/integrations/cart/environments/dev/listeners/listener_1",
        &serde_json::json!({"state": "disabled"}),
    );
    assert_eq!(r.status, 202, "{}", r.json());
    let commands_in = |r: &icpd::http::client::ClientResponse| {
        r.json()["commands"].as_array().map_or(0, Vec::len)
    };
    let mut delivered = 0;
    wait_for(
        "the command on the second node",
        Duration::from_secs(3),
        || {
            delivered = commands_in(&b.delta(&mut second.runtime_client()));
            delivered > 0
        },
    );
    assert_eq!(delivered, 1);
    assert_eq!(
        commands_in(&b.delta(&mut first.runtime_client())),
        0,
        "delivered twice"
    );
    assert_eq!(
        commands_in(&b.delta(&mut second.runtime_client())),
        0,
        "delivered twice"
    );
    // The command log, through either node, counts one delivery.
    let log = admin
        .get("/api/v1/projects/shop/integrations/cart/environments/dev/commands")
        .json();
    assert_eq!(log["items"][0]["attempts"], 1, "{log}");
}
