//! The admin commands, on a data directory with and without a running server.

use crate::harness::{assert_ack, cli, recent_audit, Bridge, TestDir, TestServer};

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
    // Key material is sealed at rest: not in the database (the file, or
    // every row of every table in PostgreSQL).
    let (db, wal) = if crate::pg_cluster::enabled() {
        (
            crate::pg_cluster::dump(&d.path, &[], &[])
                .join("\n")
                .into_bytes(),
            Vec::new(),
        )
    } else {
        (
            std::fs::read(d.path.join("icp.db")).unwrap(),
            std::fs::read(d.path.join("icp.db-wal")).unwrap_or_default(),
        )
    };
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
    // Standard input is the only way to give a password, so the flag that
    // says so is optional, and the usage line does not demand it.
    let no_flag =
        crate::harness::cli_stdin(&d.path, &["user", "create", "sam"], "a-long-password\n");
    assert!(
        no_flag.status.success(),
        "{}",
        String::from_utf8_lossy(&no_flag.stderr)
    );
    let nothing = cli(&d.path, &["user", "create", "x"]);
    assert_eq!(nothing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&nothing.stderr)
            .contains("no password on standard input; pipe it in"),
        "{}",
        String::from_utf8_lossy(&nothing.stderr)
    );
    let help = run_ok(&d.path, &["user", "create", "--help"]);
    assert!(
        help.contains("Usage: icpd user create [OPTIONS] <NAME>\n"),
        "{help}"
    );
    let list: serde_json::Value =
        serde_json::from_str(&run_ok(&d.path, &["user", "list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["username"], "ops");
    assert_eq!(list[0]["mustChangePassword"], false);
    let out = cli(&d.path, &["user", "reset-password", "ops"]);
    assert!(out.status.success());
    let password = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(password.len() >= 16);
    assert!(run_ok(&d.path, &["user", "list"]).contains("must change password"));
    let stored = crate::harness::open_store(&d.path);
    let hash = stored
        .read(|tx| tx.user_by_name("ops"))
        .unwrap()
        .unwrap()
        .password_hash;
    assert!(hash.starts_with("pbkdf2-sha256$600000$"), "{hash}");
    assert!(icpd::auth::verify_password(&hash, &password));
    // Admin commands that change something are audited like API changes.
    let log = recent_audit(&d.path);
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "icpd user reset-password",
            "icpd user create",
            "icpd user create"
        ]
    );
    assert!(log
        .iter()
        .all(|e| e.actor.starts_with("cli:") && e.outcome == "ok"));
}

/// A table's cells, cut at its header's column starts (by character): a row
/// whose columns do not line up with the header has no gap of two spaces
/// before some column, or comes out garbled.
fn cells(table: &str) -> Vec<Vec<String>> {
    let mut lines = table.lines();
    let header: Vec<char> = lines.next().expect("a header row").chars().collect();
    let mut starts = vec![0];
    for i in 2..header.len() {
        if header[i] != ' ' && header[i - 1] == ' ' && header[i - 2] == ' ' {
            starts.push(i);
        }
    }
    std::iter::once(header.iter().collect::<String>().as_str())
        .chain(lines)
        .map(|line| {
            let chars: Vec<char> = line.chars().collect();
            starts
                .iter()
                .enumerate()
                .map(|(k, &start)| {
                    if start > 0 && chars.len() > start {
                        assert!(
                            chars[start - 2] == ' ' && chars[start - 1] == ' ',
                            "column {k} does not start at character {start} in\n{table}"
                        );
                    }
                    let end = starts
                        .get(k + 1)
                        .map_or(chars.len(), |&e| e.min(chars.len()));
                    chars
                        .get(start.min(chars.len())..end)
                        .map(|c| c.iter().collect::<String>().trim().to_string())
                        .unwrap_or_default()
                })
                .collect()
        })
        .collect()
}

/// The words of an example command line (`icpd ...` up to a redirection
/// or pipe), with shell quotes removed.
fn example_words(line: &str) -> Vec<String> {
    let from_icpd = &line[line.find("icpd ").expect("an icpd command")..];
    let (mut words, mut word, mut quote, mut in_word) = (Vec::new(), String::new(), None, false);
    for c in from_icpd.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, ' ') => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, '>' | '<' | '|') if !in_word => break,
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Issue 13: every command's `--help` (the real binary's) describes every
/// option and argument and ends with an example, and every example parses.
#[test]
fn every_command_describes_every_option_and_ends_with_an_example() {
    use clap::{CommandFactory, Parser};
    let mut root = icpd::cli::Cli::command();
    root.build();
    let mut todo = vec![(Vec::<String>::new(), root)];
    let mut checked = Vec::new();
    while let Some((path, cmd)) = todo.pop() {
        let name = format!("icpd {}", path.join(" "));
        for arg in cmd.get_arguments() {
            let help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string());
            assert!(
                help.is_some_and(|h| h.trim().len() > 3),
                "`{name}`: {} has no help text",
                arg.get_id()
            );
        }
        let out = crate::harness::icpd()
            .args(&path)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "`{name} --help` failed");
        let text = String::from_utf8(out.stdout).unwrap();
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            let shown = match arg.get_long() {
                Some(long) => format!("--{long}"),
                None => format!("<{}>", arg.get_id().as_str().to_uppercase()),
            };
            assert!(
                text.contains(&shown),
                "`{name} --help` lacks {shown}:\n{text}"
            );
        }
        let last = text.trim_end().rsplit("\n\n").next().unwrap();
        assert!(
            last.starts_with("Example:\n") || last.starts_with("Examples:\n"),
            "`{name} --help` does not end with an example:\n{text}"
        );
        let mut example = String::new();
        for line in last.lines().skip(1) {
            match line.trim().strip_suffix('\\') {
                Some(continued) => example.push_str(continued),
                None => {
                    example.push_str(line.trim());
                    let words = example_words(&example);
                    if let Err(e) = icpd::cli::Cli::try_parse_from(&words) {
                        panic!("`{name} --help`: the example {words:?} does not parse:\n{e}");
                    }
                    example.clear();
                }
            }
        }
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut p = path.clone();
            p.push(sub.get_name().to_string());
            todo.push((p, sub.clone()));
        }
        checked.push(name);
    }
    // The root, 14 commands and their subcommands.
    assert!(checked.len() >= 30, "{checked:?}");
}

/// Issue 13: a runtime id is taken by any start of it that no other id
/// has; an ambiguous start lists the ids it could be, an unknown one says
/// how to list them. The API takes exact ids only.
#[test]
fn runtime_ids_are_taken_by_any_unique_start() {
    let s = TestServer::start(&[]);
    let secret = s.secret("dev", Some(("order-service", "order-create")));
    let mut c = s.runtime_client();
    let id = |stem: &str, n: usize| format!("{stem}-0000-4000-a000-{n:012}");
    let mut ids: Vec<String> = (1..=6).map(|n| id("abcd1234", n)).collect();
    ids.extend([id("abce5678", 1), id("abcf0000", 1), id("abcf0001", 2)]);
    for runtime_id in &ids {
        let mut b = Bridge::new(&secret, None);
        b.runtime_id = runtime_id.clone();
        assert_ack(&b.full(&mut c));
    }
    let show = |prefix: &str| s.cli(&["runtime", "show", prefix, "--json"]);
    let shown = |prefix: &str| s.runtime(prefix)["runtimeId"].as_str().unwrap().to_string();
    let refused = |prefix: &str| -> String {
        let out = show(prefix);
        assert_eq!(out.status.code(), Some(1), "runtime show {prefix}");
        String::from_utf8(out.stderr).unwrap()
    };
    assert_eq!(shown("abce"), ids[6]);
    assert_eq!(
        shown("abce5678"),
        ids[6],
        "the 8 characters the console shows"
    );
    assert_eq!(shown(&ids[2]), ids[2], "a whole id");
    assert_eq!(shown(&ids[8][..35]), ids[8]);

    let two = refused("abcf");
    assert!(
        two.contains(&format!(
            "'abcf' is the start of 2 runtime ids: {}, {}",
            ids[7], ids[8]
        )) && two.contains("type more characters"),
        "{two}"
    );
    let many = refused("abcd");
    assert!(
        many.contains("'abcd' is the start of more than 5 runtime ids: ")
            && many.contains(&ids[4])
            && !many.contains(&ids[5])
            && many.contains(", ...; type more characters"),
        "{many}"
    );
    let all = refused("ab");
    assert!(all.contains("more than 5"), "{all}");
    // Wildcards of LIKE and GLOB are characters like any other, and case counts.
    for unknown in ["ab%", "ab_d", "ab*", "a?cd", "[a]bcd", "ABCE", "abce5679"] {
        let text = refused(unknown);
        assert!(
            text.contains(&format!("no runtime id starts with '{unknown}'"))
                && text.contains("`icpd runtime list`"),
            "{unknown}: {text}"
        );
    }
    assert!(refused("").contains("icpd runtime list"));

    // The table form of `runtime show`, with a prefix.
    let out = s.cli(&["runtime", "show", "abce"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let listeners = text
        .split("\nListeners\n")
        .nth(1)
        .and_then(|t| t.split("\n\n").next())
        .unwrap_or_else(|| panic!("no listeners table in\n{text}"));
    let rows = cells(listeners);
    assert_eq!(rows[0], ["NAME", "PROTOCOL", "HOST", "PORT", "STATE"]);
    assert_eq!(rows[1][0], "listener_1", "{listeners}");
    for section in [
        "Node",
        "Services",
        "Resources",
        "Log levels",
        "Status history",
    ] {
        assert!(
            text.contains(&format!("\n{section}\n")),
            "no {section} in\n{text}"
        );
    }

    // Ids in URLs are exact: the API does not take a start.
    let mut admin = s.admin();
    crate::harness::assert_error(&admin.get("/api/v1/runtimes/abce5678"), 404, "not_found");
    assert_eq!(
        admin.get(&format!("/api/v1/runtimes/{}", ids[6])).status,
        200
    );
}

/// Issue 13: `promotion list` and `user list` are tables with a header and
/// columns aligned by characters (a name with accents included), and
/// `user list` shows each user's roles with their scope.
#[test]
fn promotions_and_users_are_aligned_tables_and_users_show_their_roles() {
    use serde_json::json;
    let s = TestServer::start(&[]);
    let mut root = s.admin();
    for (path, body) in [
        ("/api/v1/projects", json!({"name": "Order Service"})),
        (
            "/api/v1/projects/order-service/integrations",
            json!({"name": "Order Create", "runtimeType": "BI"}),
        ),
        ("/api/v1/environments", json!({"name": "Staging"})),
        (
            "/api/v1/projects/order-service/integrations/order-create/environments/dev/deployments",
            json!({"version": "5.0.0", "artifact": "registry.example.com/orders:5.0.0"}),
        ),
    ] {
        let r = root.post(path, &body);
        assert_eq!(r.status, 201, "{path}: {}", r.json());
    }
    let r = root.put(
        "/api/v1/projects/order-service/environments",
        &json!({"environments": ["dev", "staging", "prod"]}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let promote = |from: &str, to: &str| {
        run_ok(
            &s.data_dir,
            &[
                "promote",
                "--project",
                "order-service",
                "--integration",
                "order-create",
                "--from",
                from,
                "--to",
                to,
                "--as",
                "root",
            ],
        );
    };
    promote("dev", "staging");
    promote("staging", "prod");
    let out = s.cli(&["promotion", "list"]);
    let rows = cells(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        rows[0],
        [
            "ID",
            "STATUS",
            "INTEGRATION",
            "FROM",
            "TO",
            "VERSION",
            "REQUESTED BY",
            "REQUESTED AT"
        ]
    );
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (row, (status, from, to)) in rows[1..].iter().zip([
        ("pending", "staging", "prod"),
        ("applied", "dev", "staging"),
    ]) {
        assert_eq!(
            row[1..7],
            [
                status,
                "order-service/order-create",
                from,
                to,
                "5.0.0",
                "root"
            ],
            "{rows:?}"
        );
    }

    // Roles: organization-wide from `user create`, a project through the
    // API, an environment through a group.
    s.create_user("ops", Some("Developer"));
    s.create_user("zoe", None);
    let r = root.patch(
        "/api/v1/users/zoe",
        &json!({"displayName": "Zoë Åkesson-Ünal"}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    for (path, body) in [
        (
            "/api/v1/role-assignments",
            json!({"role": "Viewer", "user": "zoe", "scope": {"type": "project", "project": "order-service"}}),
        ),
        (
            "/api/v1/groups",
            json!({"name": "oncall", "members": ["zoe"]}),
        ),
        (
            "/api/v1/role-assignments",
            json!({"role": "Admin", "group": "oncall", "scope": {"type": "environment", "environment": "prod"}}),
        ),
    ] {
        let r = root.post(path, &body);
        assert_eq!(r.status, 201, "{path}: {}", r.json());
    }
    let out = s.cli(&["user", "list"]);
    let table = String::from_utf8(out.stdout).unwrap();
    let rows = cells(&table);
    assert_eq!(
        rows[0],
        ["USER", "NAME", "SOURCE", "STATE", "ROLES", "CREATED"],
        "{table}"
    );
    let row = |user: &str| rows.iter().find(|r| r[0] == user).unwrap().clone();
    assert_eq!(row("ops")[4], "Developer (organization)", "{table}");
    assert_eq!(row("root")[4], "Super Admin (organization)", "{table}");
    assert_eq!(
        row("zoe")[1..5],
        [
            "Zoë Åkesson-Ünal",
            "local",
            "active",
            "Viewer (project order-service), Admin (environment prod, via group oncall)"
        ],
        "{table}"
    );
    let json = s.cli_json(&["user", "list", "--json"]);
    let zoe = json
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "zoe")
        .unwrap();
    assert_eq!(
        zoe["roles"],
        json!([
            {"role": "Viewer", "scope": "project order-service"},
            {"role": "Admin", "scope": "environment prod", "group": "oncall"}
        ])
    );
}

/// Issue 13: the audit log names the user who ran an admin command:
/// `$USER`, and without it the real user (`id -un`), not `cli:unknown`.
#[test]
fn the_audit_names_the_real_user_when_user_is_unset() {
    let d = TestDir::new("actor");
    let id = |flag: &str| {
        let out = std::process::Command::new("id").arg(flag).output().unwrap();
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap().trim().to_string())
    };
    let real = match id("-un") {
        Some(name) => format!("cli:{name}"),
        None => format!("cli:uid={}", id("-u").unwrap()),
    };
    let env_create = |name: &str, user: Option<&str>| {
        let mut cmd = crate::harness::icpd_at(&d.path);
        cmd.args(["env", "create", name]).env_remove("LOGNAME");
        match user {
            Some(u) => cmd.env("USER", u),
            None => cmd.env_remove("USER"),
        };
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    env_create("qa", None);
    env_create("uat", Some("alice"));
    env_create("perf", Some(""));
    let log = recent_audit(&d.path);
    let actors: Vec<&str> = log.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(actors, [real.as_str(), "cli:alice", real.as_str()]);
    assert!(!real.contains("unknown"));
}

/// An admin command whose reader has gone (`icpd env list | head -0`) ends
/// by SIGPIPE like any Unix filter, not with a panic from `println!`. The
/// pipe's read end is closed before the command starts, so its first write
/// fails every time.
#[test]
fn an_admin_command_ends_quietly_when_its_reader_is_gone() {
    use std::os::unix::process::ExitStatusExt;
    let dir = TestDir::new("cli-pipe");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = crate::harness::icpd_at(&dir.path)
        .args(["env", "list"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
}

#[test]
fn a_secret_for_an_mi_integration_prints_mis_deployment_toml_section() {
    let d = TestDir::new("secret-mi");
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
            "order-mi",
            "--type",
            "MI",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("deployment.toml"));
    let snippet = String::from_utf8(out.stdout).unwrap();
    let parsed: toml::Value = toml::from_str(&snippet).expect("the snippet is valid TOML");
    let icp = &parsed["icp_config"];
    assert_eq!(icp["enabled"].as_bool(), Some(true));
    assert_eq!(icp["environment"].as_str(), Some("dev"));
    assert_eq!(icp["project"].as_str(), Some("order-service"));
    assert_eq!(icp["integration"].as_str(), Some("order-mi"));
    assert_eq!(icp["icp_url"].as_str(), Some("https://localhost:9445"));
    // MI splits the secret at its first dot and needs 32 bytes of key material.
    let (kid, material) = icp["secret"].as_str().unwrap().split_once('.').unwrap();
    assert_eq!(kid.len(), 8);
    assert!(material.len() >= 32, "{material}");
}
