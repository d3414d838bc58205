//! The admin commands, on a data directory with and without a running server.

use crate::harness::{assert_ack, cli, Bridge, TestDir, TestServer};

fn run_ok(dir: &std::path::Path, args: &[&str]) -> String {
    let out = cli(dir, args);
    assert!(
        out.status.success(),
        "icpd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn environments_are_seeded_and_created() {
    let d = TestDir::new("env");
    let envs: serde_json::Value =
        serde_json::from_str(&run_ok(&d.path, &["env", "list", "--json"])).unwrap();
    assert_eq!(envs[0]["handle"], "dev");
    assert_eq!(envs[0]["critical"], false);
    assert_eq!(envs[1]["handle"], "prod");
    assert_eq!(envs[1]["critical"], true);
    assert!(run_ok(&d.path, &["env", "create", "Staging EU", "--critical"]).contains("staging-eu"));
    let table = run_ok(&d.path, &["env", "list"]);
    assert!(table.lines().next().unwrap().starts_with("HANDLE"));
    assert!(
        table.contains("staging-eu") && table.contains("yes"),
        "{table}"
    );
    let dup = cli(&d.path, &["env", "create", "staging-eu"]);
    assert_eq!(dup.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
}

/// Issue 13: `env create` says where the environment went in the default
/// pipeline; a non-critical one goes before the first critical one.
#[test]
fn env_create_says_where_it_was_placed_in_the_default_pipeline() {
    let d = TestDir::new("env-placed");
    assert_eq!(
        run_ok(&d.path, &["env", "create", "Staging"]).trim(),
        "environment 'staging' created; placed after dev, before prod in the default pipeline"
    );
    assert_eq!(
        run_ok(&d.path, &["env", "create", "DR", "--critical"]).trim(),
        "environment 'dr' created (critical); placed last in the default pipeline, after prod"
    );
    let qa: serde_json::Value =
        serde_json::from_str(&run_ok(&d.path, &["env", "create", "QA", "--json"])).unwrap();
    assert_eq!(qa["handle"], "qa");
    assert_eq!(qa["critical"], false);
    assert_eq!(qa["placement"]["after"], "staging");
    assert_eq!(qa["placement"]["before"], "prod");
    // `env list` shows the default pipeline's order.
    let list: serde_json::Value =
        serde_json::from_str(&run_ok(&d.path, &["env", "list", "--json"])).unwrap();
    let order: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["handle"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["dev", "staging", "qa", "prod", "dr"]);
}

#[test]
fn secret_create_prints_a_config_snippet_once_and_list_never_shows_material() {
    let d = TestDir::new("secret");
    let out = cli(
        &d.path,
        &[
            "secret",
            "create",
            "--env",
            "dev",
            "--project",
            "order-service",
            "--integration",
            "order-create",
        ],
    );
    assert!(out.status.success());
    let snippet = String::from_utf8(out.stdout).unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown only this once"));
    let parsed: toml::Value = toml::from_str(&snippet).expect("the snippet is valid TOML");
    let bridge = &parsed["wso2"]["icp"]["runtime"]["bridge"];
    assert_eq!(bridge["environment"].as_str(), Some("dev"));
    assert_eq!(bridge["project"].as_str(), Some("order-service"));
    assert_eq!(bridge["integration"].as_str(), Some("order-create"));
    assert_eq!(bridge["serverUrl"].as_str(), Some("https://localhost:9445"));
    let secret = bridge["secret"].as_str().unwrap();
    let (kid, material) = secret.split_once('.').unwrap();
    assert!(
        kid.len() == 8
            && kid
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(material)
            .unwrap()
            .len(),
        32
    );
    let list = run_ok(&d.path, &["secret", "list"]);
    let json = run_ok(&d.path, &["secret", "list", "--json"]);
    for text in [&list, &json] {
        assert!(text.contains(kid) && !text.contains(material), "{text}");
    }
    // Key material is sealed at rest: not in the database file.
    let db = std::fs::read(d.path.join("icp.db")).unwrap();
    let wal = std::fs::read(d.path.join("icp.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(!bytes
            .windows(material.len())
            .any(|w| w == material.as_bytes()));
    }
    let out = cli(&d.path, &["secret", "create", "--env", "nowhere"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("icpd env list"));
    let out = cli(&d.path, &["secret", "revoke", "ffffffff"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("icpd secret list"));
}

#[test]
fn runtime_list_filters_and_show_while_the_server_runs() {
    let s = TestServer::start(&[]);
    let a = s.secret("dev", Some(("shop", "cart")));
    s.cli_json(&["env", "create", "qa", "--json"]);
    let b = s.secret("qa", Some(("shop", "checkout")));
    let mut c = s.runtime_client();
    let mut r1 = Bridge::new(&a, Some("cart-1"));
    (r1.project, r1.integration) = ("shop".into(), "cart".into());
    let mut r2 = Bridge::new(&b, None);
    (r2.env, r2.project, r2.integration) = ("qa".into(), "shop".into(), "checkout".into());
    assert_ack(&r1.full(&mut c));
    assert_ack(&r2.full(&mut c));
    let ids = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["runtime", "list", "--json"];
        full.extend_from_slice(args);
        s.cli_json(&full)
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["runtimeId"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&[]).len(), 2);
    assert_eq!(ids(&["--env", "qa"]), [r2.runtime_id.clone()]);
    assert_eq!(ids(&["--integration", "cart"]), [r1.runtime_id.clone()]);
    assert_eq!(ids(&["--project", "shop", "--status", "RUNNING"]).len(), 2);
    assert!(ids(&["--status", "offline"]).is_empty());
    let row = &s.cli_json(&["runtime", "list", "--json", "--env", "dev"])[0];
    for key in [
        "runtimeId",
        "name",
        "status",
        "environment",
        "project",
        "integration",
        "runtimeType",
        "lastHeartbeat",
        "registeredAt",
    ] {
        assert!(row.get(key).is_some(), "missing {key} in {row}");
    }
    let table = String::from_utf8(s.cli(&["runtime", "list"]).stdout).unwrap();
    assert!(
        table.contains("cart-1") && table.contains("RUNNING") && table.contains("shop/checkout"),
        "{table}"
    );
    let show = String::from_utf8(s.cli(&["runtime", "show", &r1.runtime_id]).stdout).unwrap();
    for part in [
        "listener_1",
        "service_1",
        "/orders",
        "acme/orders",
        "INFO",
        "Status history",
        "registered",
    ] {
        assert!(show.contains(part), "missing {part} in\n{show}");
    }
    let out = s.cli(&["runtime", "show", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("icpd runtime list"));
}

#[test]
fn config_file_env_and_flags_follow_their_precedence() {
    let d = TestDir::new("cfg");
    let file = d.path.join("icp.toml");
    std::fs::write(
        &file,
        format!("data_dir = \"{}\"\n", d.path.join("from-file").display()),
    )
    .unwrap();
    // File only.
    let out = crate::harness::icpd()
        .args(["--config", file.to_str().unwrap(), "env", "create", "a"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(d.path.join("from-file/icp.db").exists());
    // Environment beats file.
    let out = crate::harness::icpd()
        .args(["--config", file.to_str().unwrap(), "env", "create", "b"])
        .env("ICP_DATA_DIR", d.path.join("from-env"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(d.path.join("from-env/icp.db").exists());
    // Flag beats environment.
    let out = crate::harness::icpd()
        .args([
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            d.path.join("from-flag").to_str().unwrap(),
            "env",
            "create",
            "c",
        ])
        .env("ICP_DATA_DIR", d.path.join("from-env"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(d.path.join("from-flag/icp.db").exists());
    // A typo in the file is an error that names the key.
    std::fs::write(&file, "runtime_lisen = \"0.0.0.0:1\"\n").unwrap();
    let out = crate::harness::icpd()
        .args(["--config", file.to_str().unwrap(), "env", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("runtime_lisen"));
}

#[test]
fn users_are_managed_from_the_command_line() {
    let d = TestDir::new("users");
    let create = |name: &str, password: &str, role: Option<&str>| {
        crate::harness::user_create(&d.path, name, password, role)
    };
    let out = create("ops", "a-long-password", Some("Developer"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dup = create("ops", "a-long-password", None);
    assert_eq!(dup.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    let weak = create("weak", "short", None);
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 10 characters"));
    let bad_role = create("r", "a-long-password", Some("Wizard"));
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("no role named 'Wizard'"));
    let no_stdin_flag = cli(&d.path, &["user", "create", "x"]);
    assert_eq!(
        no_stdin_flag.status.code(),
        Some(2),
        "the password is only read from stdin"
    );
    let list: serde_json::Value =
        serde_json::from_str(&run_ok(&d.path, &["user", "list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["username"], "ops");
    assert_eq!(list[0]["mustChangePassword"], false);
    let out = cli(&d.path, &["user", "reset-password", "ops"]);
    assert!(out.status.success());
    let password = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(password.len() >= 16);
    assert!(run_ok(&d.path, &["user", "list"]).contains("must change password"));
    let stored = icpd::store::Store::open(&d.path.join("icp.db")).unwrap();
    let hash = stored
        .read(|tx| tx.user_by_name("ops"))
        .unwrap()
        .unwrap()
        .password_hash;
    assert!(hash.starts_with("pbkdf2-sha256$600000$"), "{hash}");
    assert!(icpd::auth::verify_password(&hash, &password));
    // Admin commands that change something are audited like API changes.
    let (log, _) = stored
        .read(|tx| {
            tx.audit(&icpd::store::AuditFilter {
                limit: 10,
                ..Default::default()
            })
        })
        .unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["icpd user reset-password", "icpd user create"]);
    assert!(log
        .iter()
        .all(|e| e.actor.starts_with("cli:") && e.outcome == "ok"));
}
