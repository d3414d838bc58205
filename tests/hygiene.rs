//! Secrets hygiene (issue 6, part 7): a full scenario against the real
//! server at `ICP_LOG=trace`, after which no secret value, password, token
//! or key it produced may appear in the server's log, the admin commands'
//! stderr, the audit log or (but for CSRF tokens) the database files,
//! `telemetry.db` included (ingest tokens, and runtime tokens used on the
//! ingest endpoints, are in the scenario; so are secret configuration
//! values, set through the API and promotion overrides, carried by
//! promotions, rendered by `icpd config render` and fetched on
//! `GET /icp/config`, whose TOML is the one place they appear); and
//! the management listener's security headers and cookie attributes over
//! real TLS. Single sign-on's secrets (the OIDC client secret,
//! authorization codes, ID tokens, the LDAP bind password, directory
//! users' passwords and the sessions they open) are checked the same way
//! in `tests/sso.rs`, which has the provider and the directory running.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use icpd::http::client::{Client, ClientResponse};
use serde_json::{json, Value};

use crate::harness::{
    assert_ack, assert_error, icpd_at, output_with_stdin, session_cookie, wait_for, ApiClient,
    Bridge, TestServer, TEST_PASSWORD,
};

/// Every sensitive string the scenario produced, with what it is.
#[derive(Default)]
struct Sensitive(Vec<(String, String)>);

impl Sensitive {
    fn add(&mut self, what: &str, value: &str) {
        // Short strings could match by chance; nothing the scenario makes is short.
        assert!(
            value.len() >= 12,
            "{what} is too short to search for: {value:?}"
        );
        if !self.0.iter().any(|(_, v)| v == value) {
            self.0.push((what.to_string(), value.to_string()));
        }
    }

    /// Base64 key material and the forms a careless log line might take:
    /// without padding, URL-safe, the decoded bytes in hex and as `{:?}`.
    fn key_material(&mut self, what: &str, b64: &str) {
        self.add(what, b64);
        self.add(&format!("{what} (no padding)"), b64.trim_end_matches('='));
        let bytes = STANDARD.decode(b64).unwrap();
        self.add(
            &format!("{what} (base64url)"),
            &URL_SAFE_NO_PAD.encode(&bytes),
        );
        self.add(&format!("{what} (hex)"), &hex(&bytes));
        self.add(&format!("{what} (bytes)"), &format!("{bytes:?}"));
    }

    /// A runtime secret `KEYID.MATERIAL` (the key id alone is public).
    fn runtime_secret(&mut self, what: &str, secret: &str) {
        self.add(what, secret);
        let (_, material) = secret.split_once('.').unwrap();
        self.key_material(&format!("{what} material"), material);
    }

    /// A bearer JWT and its signature (header and claims are not secret).
    fn jwt(&mut self, what: &str, token: &str) {
        self.add(what, token);
        let signature = token.rsplit('.').next().unwrap();
        self.add(&format!("{what} signature"), signature);
    }

    /// A personal API token `icpt_ID_RANDOM` and its random part (the id is public).
    fn api_token(&mut self, what: &str, token: &str) {
        self.prefixed_token(what, token, "icpt_");
    }

    /// An ingest token `icpi_ID_RANDOM` and its random part (the id is public).
    fn ingest_token(&mut self, what: &str, token: &str) {
        self.prefixed_token(what, token, "icpi_");
    }

    /// A token `PREFIX ID _ RANDOM` and its random part. The random part is
    /// base64url, which has '_' too: split after the id.
    fn prefixed_token(&mut self, what: &str, token: &str, prefix: &str) {
        self.add(what, token);
        let (_, random) = token.strip_prefix(prefix).unwrap().split_once('_').unwrap();
        self.add(&format!("{what} random part"), random);
    }

    /// Asserts that none of the strings occurs in `text`.
    #[track_caller]
    fn assert_absent(&self, place: &str, text: &str, skip: impl Fn(&str) -> bool) {
        for (what, value) in &self.0 {
            if skip(what) {
                continue;
            }
            if let Some(at) = text.find(value.as_str()) {
                let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
                panic!("{what} appears in {place}: {}", &text[start..end]);
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn token_for(secret: &str, now: i64, lifetime: i64) -> String {
    icpd::protocol::token::issue(
        secret,
        &icpd::config::Config::defaults().token,
        now,
        lifetime,
    )
}

/// The admin commands of the scenario, run at `ICP_LOG=trace`; their stderr is kept.
struct Cli {
    data_dir: PathBuf,
    stderr: String,
}

impl Cli {
    fn run(&mut self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = icpd_at(&self.data_dir);
        cmd.env("ICP_LOG", "trace").args(args);
        let out = output_with_stdin(cmd, &stdin.map(|t| format!("{t}\n")).unwrap_or_default());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "icpd {args:?}: {stderr}");
        self.stderr
            .push_str(&format!("--- icpd {}\n{stderr}\n", args.join(" ")));
        out
    }
}

/// A management request with a session cookie and, if given, a CSRF token.
fn with_cookie(
    s: &TestServer,
    method: &str,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: &Value,
) -> ClientResponse {
    let body = body.to_string();
    let mut headers = vec![("Cookie", cookie), ("Content-Type", "application/json")];
    if let Some(c) = csrf {
        headers.push(("X-CSRF-Token", c));
    }
    s.management_client()
        .request(method, path, &headers, body.as_bytes())
        .unwrap()
}

fn bearer(s: &TestServer, token: &str) -> ApiClient {
    ApiClient {
        client: s.management_client(),
        token: token.to_string(),
    }
}

/// Logs in and records the session token and CSRF token.
fn login(s: &TestServer, seen: &mut Sensitive, name: &str, password: &str) -> ClientResponse {
    let r = s.login(name, password);
    assert_eq!(r.status, 200, "login {name}: {}", r.json());
    let body = r.json();
    seen.add("session token", body["token"].as_str().unwrap());
    seen.add("CSRF token", body["csrfToken"].as_str().unwrap());
    r
}

fn heartbeat(c: &mut Client, path: &str, token: &str, body: &Value) -> ClientResponse {
    c.post_json(path, Some(token), body).unwrap()
}

#[test]
fn no_secret_reaches_the_log_stderr_audit_or_database() {
    let s = TestServer::start_with_env(&[], &[("ICP_LOG", "trace")]);
    let mut seen = Sensitive::default();
    let mut cli = Cli {
        data_dir: s.data_dir.clone(),
        stderr: String::new(),
    };

    // The master key, in every encoding.
    let master = std::fs::read_to_string(s.data_dir.join("master.key")).unwrap();
    seen.key_material("master key", master.trim());

    // The first admin: the initial password is announced once, by design;
    // it is checked separately below.
    let initial = std::fs::read_to_string(s.data_dir.join("initial-admin-password"))
        .unwrap()
        .trim()
        .to_string();
    let r = login(&s, &mut seen, "admin", &initial);
    let mut admin = bearer(&s, r.json()["token"].as_str().unwrap());
    let admin_password = "hygiene-admin-password-1";
    seen.add("admin password", admin_password);
    let wrong = "hygiene-wrong-current-password";
    seen.add("wrong password", wrong);
    assert_error(
        &admin.post(
            "/api/v1/auth/change-password",
            &json!({"currentPassword": wrong, "newPassword": admin_password}),
        ),
        403,
        "forbidden",
    );
    let r = admin.post(
        "/api/v1/auth/change-password",
        &json!({"currentPassword": initial, "newPassword": admin_password}),
    );
    assert_eq!(r.status, 204, "{}", r.json());

    // Secrets from the CLI (JSON and the Config.toml snippet) and the API.
    let out = cli.run(
        &[
            "secret",
            "create",
            "--env",
            "dev",
            "--project",
            "order-service",
            "--integration",
            "order-create",
            "--json",
        ],
        None,
    );
    let cli_secret = serde_json::from_slice::<Value>(&out.stdout).unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    seen.runtime_secret("CLI secret", &cli_secret);
    let out = cli.run(&["secret", "create", "--env", "dev"], None);
    let snippet = String::from_utf8(out.stdout).unwrap();
    let snippet_secret = snippet
        .lines()
        .find_map(|l| l.strip_prefix("secret = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no secret in {snippet}"))
        .to_string();
    seen.runtime_secret("CLI snippet secret", &snippet_secret);
    let r = admin.post(
        "/api/v1/secrets",
        &json!({"environment": "dev", "project": "order-service", "integration": "order-create"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let api_secret = r.json()["secret"].as_str().unwrap().to_string();
    seen.runtime_secret("API secret", &api_secret);

    // A cookie session: a change with the right CSRF token, one with a wrong one.
    let r = login(&s, &mut seen, "admin", admin_password);
    let cookie = session_cookie(&r);
    let csrf = r.json()["csrfToken"].as_str().unwrap().to_string();
    let r = with_cookie(
        &s,
        "POST",
        "/api/v1/secrets",
        &cookie,
        Some(&csrf),
        &json!({"environment": "dev"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let cookie_secret = r.json()["secret"].as_str().unwrap().to_string();
    seen.runtime_secret("cookie-session secret", &cookie_secret);
    let last = if csrf.ends_with('A') { "B" } else { "A" };
    let near_csrf = format!("{}{last}", &csrf[..csrf.len() - 1]);
    seen.add("wrong CSRF token", &near_csrf);
    let r = with_cookie(
        &s,
        "POST",
        "/api/v1/secrets",
        &cookie,
        Some(&near_csrf),
        &json!({"environment": "dev"}),
    );
    assert_error(&r, 403, "forbidden");

    // Users: from the CLI (password on stdin) and the API; logins right and wrong.
    cli.run(
        &[
            "user",
            "create",
            "cli-user",
            "--role",
            "Developer",
            "--password-stdin",
        ],
        Some(TEST_PASSWORD),
    );
    seen.add("CLI user password", TEST_PASSWORD);
    cli.run(
        &["user", "create", "traced-user", "--password-stdin"],
        Some("hygiene-traced-user-password"),
    );
    seen.add("traced CLI user password", "hygiene-traced-user-password");
    let api_user_password = "hygiene-api-user-password";
    seen.add("API user password", api_user_password);
    let r = admin.post(
        "/api/v1/users",
        &json!({"username": "api-user", "password": api_user_password}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    for (name, password) in [
        ("admin", "hygiene-wrong-admin-password"),
        ("cli-user", "hygiene-wrong-cli-password"),
        ("nobody-at-all", "hygiene-unknown-user-password"),
    ] {
        seen.add("wrong login password", password);
        assert_error(&s.login(name, password), 401, "unauthorized");
    }
    login(&s, &mut seen, "cli-user", TEST_PASSWORD);
    login(&s, &mut seen, "traced-user", "hygiene-traced-user-password");
    let r = login(&s, &mut seen, "api-user", api_user_password);
    let mut api_user = bearer(&s, r.json()["token"].as_str().unwrap());
    let new_api_user_password = "hygiene-api-user-password-2";
    seen.add("changed password", new_api_user_password);
    let r = api_user.post(
        "/api/v1/auth/change-password",
        &json!({"currentPassword": api_user_password, "newPassword": new_api_user_password}),
    );
    assert_eq!(r.status, 204, "{}", r.json());

    // Password resets: the new password goes to stdout / the response only.
    let out = cli.run(&["user", "reset-password", "cli-user"], None);
    let reset = String::from_utf8(out.stdout).unwrap().trim().to_string();
    seen.add("CLI reset password", &reset);
    let r = admin.post("/api/v1/users/traced-user/reset-password", &json!({}));
    assert_eq!(r.status, 200, "{}", r.json());
    let api_reset = r.json()["password"].as_str().unwrap().to_string();
    seen.add("API reset password", &api_reset);
    login(&s, &mut seen, "cli-user", &reset);
    login(&s, &mut seen, "traced-user", &api_reset);

    // Personal API tokens: used, revoked, used again; look-alikes refused.
    let r = admin.post("/api/v1/auth/tokens", &json!({"name": "ci"}));
    assert_eq!(r.status, 201, "{}", r.json());
    let token = r.json()["token"].as_str().unwrap().to_string();
    let token_id = r.json()["id"].as_str().unwrap().to_string();
    seen.api_token("API token", &token);
    let r = admin.post(
        "/api/v1/auth/tokens",
        &json!({"name": "short-lived", "expiresIn": "1h"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let short_token = r.json()["token"].as_str().unwrap().to_string();
    seen.api_token("expiring API token", &short_token);
    assert_eq!(bearer(&s, &short_token).get("/api/v1/auth/me").status, 200);
    let mut script = bearer(&s, &token);
    assert_eq!(script.get("/api/v1/runtimes").status, 200);
    let fake = format!("icpt_{token_id}_{}", "x".repeat(43));
    seen.api_token("forged API token", &fake);
    assert_error(
        &bearer(&s, &fake).get("/api/v1/auth/me"),
        401,
        "unauthorized",
    );
    let session = admin.token.clone();
    let near_session = format!("{}AAAA", &session[..session.len() - 4]);
    seen.add("near-miss session token", &near_session);
    assert_error(
        &bearer(&s, &near_session).get("/api/v1/auth/me"),
        401,
        "unauthorized",
    );
    assert_eq!(
        admin
            .delete(&format!("/api/v1/auth/tokens/{token_id}"))
            .status,
        204
    );
    assert_error(&script.get("/api/v1/auth/me"), 401, "unauthorized");

    // Runtimes: full and delta heartbeats with every secret, bad tokens.
    let mut rt = s.runtime_client();
    let now = now_s();
    let mut bridges = Vec::new();
    for (i, secret) in [&cli_secret, &api_secret, &snippet_secret]
        .into_iter()
        .enumerate()
    {
        let b = Bridge::new(secret, Some(&format!("node-{i}")));
        let t = token_for(secret, now, 3600);
        seen.jwt("runtime JWT", &t);
        assert!(!assert_ack(&heartbeat(
            &mut rt,
            "/icp/heartbeat",
            &t,
            &b.full_body()
        )));
        assert!(!assert_ack(&heartbeat(
            &mut rt,
            "/icp/deltaHeartbeat",
            &t,
            &b.delta_body()
        )));
        bridges.push((b, t));
    }
    let (key_id, _) = cli_secret.split_once('.').unwrap();
    let forged = token_for(
        &format!("{key_id}.{}", STANDARD.encode([7u8; 32])),
        now,
        3600,
    );
    seen.jwt("JWT with a wrong key", &forged);
    let good = &bridges[0].1;
    let mut sig: Vec<char> = good.rsplit('.').next().unwrap().chars().collect();
    sig[3] = if sig[3] == 'A' { 'B' } else { 'A' };
    let tampered = format!(
        "{}.{}",
        &good[..good.rfind('.').unwrap()],
        sig.iter().collect::<String>()
    );
    seen.jwt("JWT with a tampered signature", &tampered);
    let expired = token_for(&cli_secret, now - 7200, 3600);
    seen.jwt("expired JWT", &expired);
    let unknown = token_for(
        &format!("ffffffff.{}", STANDARD.encode([9u8; 32])),
        now,
        3600,
    );
    seen.jwt("JWT with an unknown key id", &unknown);
    let b0 = bridges[0].0.clone();
    for bad in [&forged, &tampered, &expired, &unknown] {
        assert_error(
            &heartbeat(&mut rt, "/icp/deltaHeartbeat", bad, &b0.delta_body()),
            401,
            "unauthorized",
        );
        assert_error(
            &heartbeat(&mut rt, "/icp/heartbeat", bad, &b0.full_body()),
            401,
            "unauthorized",
        );
    }
    // A runtime token is no management credential, and the other way round.
    assert_error(
        &bearer(&s, good).get("/api/v1/auth/me"),
        401,
        "unauthorized",
    );
    assert_error(
        &heartbeat(&mut rt, "/icp/deltaHeartbeat", &session, &b0.delta_body()),
        401,
        "unauthorized",
    );

    // Commands: issued by the admin, delivered, reported, converged.
    let base = "/api/v1/projects/order-service/integrations/order-create/environments/dev";
    let r = admin.put(
        &format!("{base}/listeners/listener_1"),
        &json!({"state": "disabled"}),
    );
    assert_eq!(r.status, 202, "{}", r.json());
    let r = admin.put(
        &format!("{base}/loggers/acme%2Forders"),
        &json!({"level": "DEBUG"}),
    );
    assert_eq!(r.status, 202, "{}", r.json());
    let resp = heartbeat(&mut rt, "/icp/deltaHeartbeat", good, &b0.delta_body()).json();
    let commands = resp["commands"].as_array().unwrap();
    assert!(!commands.is_empty(), "{resp}");
    for c in commands {
        let r = heartbeat(
            &mut rt,
            "/icp/commandResult",
            good,
            &json!({"runtimeId": b0.runtime_id, "commandId": c["commandId"], "status": "COMPLETED"}),
        );
        assert_eq!(r.status, 202, "{}", r.json());
    }
    let mut b0 = b0;
    b0.listener_state = "disabled".into();
    assert_ack(&heartbeat(&mut rt, "/icp/heartbeat", good, &b0.full_body()));

    // Telemetry: ingest tokens from the CLI (JSON and the Fluent Bit
    // snippet) and the API, used on every ingest endpoint with runtime
    // tokens beside them; look-alikes refused. One log message carries a
    // token-like string as data: stored as it is, like any message.
    let out = cli.run(
        &[
            "ingest-token",
            "create",
            "--env",
            "dev",
            "--project",
            "order-service",
            "--json",
        ],
        None,
    );
    let cli_ingest = serde_json::from_slice::<Value>(&out.stdout).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    seen.ingest_token("CLI ingest token", &cli_ingest);
    let out = cli.run(&["ingest-token", "create", "--env", "dev"], None);
    let snippet = String::from_utf8(out.stdout).unwrap();
    let snippet_ingest = snippet
        .lines()
        .find_map(|l| l.trim().strip_prefix("Header"))
        .and_then(|l| l.trim().strip_prefix("Authorization Bearer "))
        .unwrap_or_else(|| panic!("no ingest token in {snippet}"))
        .to_string();
    seen.ingest_token("CLI snippet ingest token", &snippet_ingest);
    let r = admin.post(
        "/api/v1/observability/ingest-tokens",
        &json!({"name": "hygiene", "environment": "dev", "project": "order-service", "integration": "order-create"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let api_ingest = r.json()["token"].as_str().unwrap().to_string();
    let api_ingest_id = r.json()["id"].as_str().unwrap().to_string();
    assert!(r.json()["fluentBitConfig"]
        .as_str()
        .unwrap()
        .contains(&api_ingest));
    seen.ingest_token("API ingest token", &api_ingest);
    let token_in_data = format!(
        "Authorization: Bearer icpi_0badc0de_{}",
        URL_SAFE_NO_PAD.encode([5u8; 32])
    );
    let ingest = |rt: &mut Client, path: &str, token: &str, body: &Value| {
        rt.request(
            "POST",
            path,
            &[
                ("Authorization", &format!("Bearer {token}")),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
        .unwrap()
    };
    let batches = [
        (
            format!("/icp/logs?runtimeId={}", b0.runtime_id),
            json!([{"log": "hygiene log line", "level": "info"}, {"log": token_in_data, "level": "warn"}]),
        ),
        (
            "/icp/metrics".to_string(),
            json!([{"service": "orders", "statusCode": 200, "responseTimeMs": 2}]),
        ),
        (
            "/v1/logs".to_string(),
            json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "otlp hygiene"}}]}]}]}),
        ),
        (
            "/v1/metrics".to_string(),
            json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "hygiene", "gauge": {"dataPoints": [{"asInt": 1}]}}]}]}]}),
        ),
    ];
    for token in [&cli_ingest, &snippet_ingest, &api_ingest, good] {
        for (path, body) in &batches {
            let r = ingest(&mut rt, path, token, body);
            assert_eq!(
                r.status,
                200,
                "{path}: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }
    let (ingest_id, _) = cli_ingest[5..].split_once('_').unwrap();
    let forged_ingest = format!("icpi_{ingest_id}_{}", URL_SAFE_NO_PAD.encode([3u8; 32]));
    seen.ingest_token("forged ingest token", &forged_ingest);
    let near_ingest = format!("{}AAAA", &api_ingest[..api_ingest.len() - 4]);
    seen.ingest_token("near-miss ingest token", &near_ingest);
    for bad in [&forged_ingest, &near_ingest, &forged, &expired] {
        for (path, body) in &batches {
            assert_error(&ingest(&mut rt, path, bad, body), 401, "unauthorized");
        }
    }
    // An ingest token is no management or heartbeat credential.
    assert_error(
        &bearer(&s, &cli_ingest).get("/api/v1/auth/me"),
        401,
        "unauthorized",
    );
    assert_error(
        &heartbeat(
            &mut rt,
            "/icp/deltaHeartbeat",
            &cli_ingest,
            &b0.delta_body(),
        ),
        401,
        "unauthorized",
    );
    // The message is searchable as data.
    let r = admin.get("/api/v1/observability/logs?q=0badc0de&limit=10");
    assert_eq!(r.status, 200);
    assert!(r.json().to_string().contains("0badc0de"), "{}", r.json());
    // Revoked through the API and the CLI: refused from the next request.
    assert_eq!(
        admin
            .delete(&format!(
                "/api/v1/observability/ingest-tokens/{api_ingest_id}"
            ))
            .status,
        204
    );
    cli.run(&["ingest-token", "revoke", ingest_id], None);
    for revoked in [&api_ingest, &cli_ingest] {
        assert_error(
            &ingest(&mut rt, &batches[0].0, revoked, &batches[0].1),
            401,
            "unauthorized",
        );
    }
    cli.run(&["ingest-token", "list", "--json"], None);

    // Configuration (issue 8): secret values set through the API (a string,
    // a table, one set again without the flag: it stays secret), an
    // override marked secret on an API promotion and on a CLI one (value on
    // stdin), all carried from dev through staging to prod; rendered by
    // `icpd config render` and fetched by runtimes in dev and prod. The
    // rendered TOML is the one place they appear in clear.
    let dev_path = "/api/v1/projects/order-service/integrations/order-create/environments/dev";
    let config_secrets = [
        ("config secret (API)", "hygiene-config-secret-dev-Zq81x"),
        (
            "config secret in a table",
            "hygiene-config-secret-table-Kp27y",
        ),
        (
            "config secret set again",
            "hygiene-config-secret-rotated-Hb40w",
        ),
        (
            "config secret (API promotion override)",
            "hygiene-config-secret-override-Wm55v",
        ),
        (
            "config secret (CLI promotion override)",
            "hygiene-config-secret-cli-Jx63u",
        ),
    ];
    for (what, value) in config_secrets {
        seen.add(what, value);
    }
    let r = admin.post("/api/v1/environments", &json!({"name": "Staging"}));
    assert_eq!(r.status, 201, "{}", r.json());
    let r = admin.put(
        "/api/v1/projects/order-service/environments",
        &json!({"environments": ["dev", "staging", "prod"]}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let r = admin.post(
        &format!("{dev_path}/deployments"),
        &json!({"version": "1.0.0", "artifact": "orders-1.0.0.jar"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let r = admin.patch(
        &format!("{dev_path}/config"),
        &json!({"comment": "hygiene", "set": [
            {"section": "myorg.orders", "key": "dbUrl", "value": "jdbc:postgresql://db.dev/orders"},
            {"section": "myorg.orders", "key": "dbPassword", "value": config_secrets[0].1, "secret": true},
            {"section": "myorg.orders", "key": "vault", "value": {"token": config_secrets[1].1, "ttl": 60}, "secret": true},
            {"section": "myorg.orders", "key": "apiKey", "value": "hygiene-placeholder-before-rotation", "secret": true}
        ]}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let r = admin.patch(
        &format!("{dev_path}/config"),
        &json!({"set": [{"section": "myorg.orders", "key": "apiKey", "value": config_secrets[2].1}]}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let shown = r.json();
    assert!(
        shown["values"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["key"] == "apiKey" && v["secret"] == true && v.get("value").is_none()),
        "a secret set again without the flag stays secret: {shown}"
    );
    let r = admin.post(
        "/api/v1/projects/order-service/integrations/order-create/promotions",
        &json!({"from": "dev", "to": "staging", "overrides": [
            {"section": "myorg.orders", "key": "dbUrl", "value": "jdbc:postgresql://db.staging/orders"},
            {"section": "myorg.orders", "key": "stagingToken", "value": config_secrets[3].1, "secret": true}
        ]}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(r.json()["status"], "applied", "{}", r.json());
    let out = cli.run(
        &[
            "promote",
            "--project",
            "order-service",
            "--integration",
            "order-create",
            "--from",
            "staging",
            "--to",
            "prod",
            "--set-secret",
            "myorg.orders.prodToken",
            "--as",
            "admin",
            "--json",
        ],
        Some(config_secrets[4].1),
    );
    let requested: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(requested["status"], "pending", "{requested}");
    let mut approver = s.api_as("approver", Some("Admin"));
    let r = approver.post(
        &format!(
            "/api/v1/promotions/{}/approve",
            requested["id"].as_str().unwrap()
        ),
        &json!({"comment": "ok"}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["status"], "applied", "{}", r.json());
    // What the API shows of them: never a value.
    let mut shown = String::new();
    for env in ["dev", "staging", "prod"] {
        let path = format!(
            "/api/v1/projects/order-service/integrations/order-create/environments/{env}/config"
        );
        for p in [path.clone(), format!("{path}/revisions")] {
            let r = admin.get(&p);
            assert_eq!(r.status, 200, "{p}");
            shown.push_str(&r.json().to_string());
        }
    }
    for p in [
        "/api/v1/promotions".to_string(),
        "/api/v1/projects/order-service/integrations/order-create/promotions".into(),
    ] {
        shown.push_str(&admin.get(&p).json().to_string());
    }
    assert!(shown.contains("stagingToken") && shown.contains("prodToken"));
    seen.assert_absent("the API's configuration and promotions", &shown, |_| false);
    cli.run(&["promotion", "list", "--json"], None);
    // Rendered offline: all of them, in clear, in standard output only.
    let out = cli.run(
        &[
            "config",
            "render",
            "--env",
            "prod",
            "--project",
            "order-service",
            "--integration",
            "order-create",
        ],
        None,
    );
    let rendered_offline = String::from_utf8(out.stdout).unwrap();
    // Fetched by runtimes at trace level: dev, and prod with a new secret.
    let fetch = |rt: &mut Client, token: &str, query: &str| {
        let auth = format!("Bearer {token}");
        let r = rt
            .request(
                "GET",
                &format!("/icp/config{query}"),
                &[("Authorization", auth.as_str())],
                &[],
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        String::from_utf8(r.body).unwrap()
    };
    let dev_toml = fetch(&mut rt, good, &format!("?runtimeId={}", b0.runtime_id));
    let out = cli.run(
        &[
            "secret",
            "create",
            "--env",
            "prod",
            "--project",
            "order-service",
            "--integration",
            "order-create",
            "--json",
        ],
        None,
    );
    let prod_secret = serde_json::from_slice::<Value>(&out.stdout).unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    seen.runtime_secret("prod secret", &prod_secret);
    let prod_bridge = Bridge {
        env: "prod".into(),
        ..Bridge::new(&prod_secret, Some("prod-node"))
    };
    let prod_token = token_for(&prod_secret, now_s(), 3600);
    seen.jwt("prod runtime JWT", &prod_token);
    assert!(!assert_ack(&heartbeat(
        &mut rt,
        "/icp/heartbeat",
        &prod_token,
        &prod_bridge.full_body()
    )));
    let prod_toml = fetch(
        &mut rt,
        &prod_token,
        &format!("?runtimeId={}", prod_bridge.runtime_id),
    );
    let prod_by_name = fetch(&mut rt, &prod_token, "?runtime=prod-node");
    for (what, value) in config_secrets {
        assert!(
            prod_toml.contains(value),
            "the {what} is not in the configuration a prod runtime fetched:\n{prod_toml}"
        );
        assert!(
            rendered_offline.contains(value),
            "the {what} is not in `icpd config render`"
        );
        assert!(prod_by_name.contains(value));
    }
    for (what, value) in &config_secrets[..3] {
        assert!(
            dev_toml.contains(value),
            "the {what} is not in dev's configuration"
        );
    }
    assert!(
        !dev_toml.contains(config_secrets[3].1) && !dev_toml.contains(config_secrets[4].1),
        "an override of staging or prod reached dev"
    );
    let doc: toml::Table = prod_toml.parse().unwrap();
    assert_eq!(
        doc["myorg"]["orders"]["vault"]["token"].as_str(),
        Some(config_secrets[1].1)
    );
    assert_eq!(
        prod_toml, rendered_offline,
        "the CLI renders what runtimes fetch"
    );
    // A refused fetch carries no configuration.
    for bad in [&forged, &expired] {
        let auth = format!("Bearer {bad}");
        let r = rt
            .request(
                "GET",
                "/icp/config",
                &[("Authorization", auth.as_str())],
                &[],
            )
            .unwrap();
        assert_error(&r, 401, "unauthorized");
    }

    // Revocation, through the API and the CLI; the runtimes are refused.
    let api_key = api_secret.split_once('.').unwrap().0;
    assert_eq!(
        admin.delete(&format!("/api/v1/secrets/{api_key}")).status,
        204
    );
    cli.run(&["secret", "revoke", key_id], None);
    for (b, t) in &bridges[..2] {
        assert_error(
            &heartbeat(&mut rt, "/icp/deltaHeartbeat", t, &b.delta_body()),
            401,
            "unauthorized",
        );
    }
    // A runtime token of a revoked secret is refused on ingest too.
    assert_error(
        &ingest(&mut rt, "/icp/logs", good, &json!([{"log": "too late"}])),
        401,
        "unauthorized",
    );
    cli.run(&["secret", "list", "--json"], None);
    cli.run(&["runtime", "list", "--json"], None);
    cli.run(&["check"], None);

    // ICP's console API: its login service, a secret created through
    // GraphQL, a refresh, a mutation carrying a password, a revocation.
    let mut gc = s.management_client();
    let r = gc
        .post_json(
            "/auth/login",
            None,
            &json!({"username": "admin", "password": admin_password}),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.json());
    let console = r.json();
    let jwt = console["token"].as_str().unwrap().to_string();
    seen.jwt("console token", &jwt);
    seen.add(
        "console refresh token",
        console["refreshToken"].as_str().unwrap(),
    );
    let gql = |c: &mut Client, token: &str, query: &str, variables: Value| {
        c.post_json(
            "/graphql",
            Some(token),
            &json!({"query": query, "variables": variables}),
        )
        .unwrap()
        .json()
    };
    let envs = gql(
        &mut gc,
        &jwt,
        "{ environments { items { id handler } } }",
        json!({}),
    );
    let dev_id = envs["data"]["environments"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["handler"] == "dev")
        .unwrap()["id"]
        .clone();
    let made = gql(
        &mut gc,
        &jwt,
        "mutation($e: String!) { createOrgSecret(environmentId: $e) }",
        json!({"e": dev_id}),
    );
    let gql_secret = made["data"]["createOrgSecret"]
        .as_str()
        .unwrap()
        .to_string();
    seen.runtime_secret("secret made through GraphQL", &gql_secret);
    let mi_password = "mi-user-password-not-to-log";
    seen.add("MI user password sent through GraphQL", mi_password);
    let refused = gql(
        &mut gc,
        &jwt,
        "mutation($p: String!) { addMIUser(componentId: \"1\", runtimeId: \"no-such-runtime\", username: \"ops\", password: $p) { status } }",
        json!({"p": mi_password}),
    );
    assert!(refused["errors"][0]["message"].is_string(), "{refused}");
    let r = gc
        .post_json(
            "/auth/refresh-token",
            None,
            &json!({"refreshToken": console["refreshToken"]}),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.json());
    let refreshed = r.json();
    let jwt2 = refreshed["token"].as_str().unwrap().to_string();
    seen.jwt("refreshed console token", &jwt2);
    seen.add(
        "rotated refresh token",
        refreshed["refreshToken"].as_str().unwrap(),
    );
    let r = gc
        .post_json(
            "/auth/revoke-token",
            Some(&jwt2),
            &json!({"refreshToken": refreshed["refreshToken"]}),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.json());

    // Logout: bearer and cookie sessions end; their tokens are refused.
    let r = with_cookie(
        &s,
        "POST",
        "/api/v1/auth/logout",
        &cookie,
        Some(&csrf),
        &json!({}),
    );
    assert_eq!(r.status, 204, "{}", r.json());
    assert_eq!(admin.post("/api/v1/auth/logout", &json!({})).status, 204);
    assert_error(&admin.get("/api/v1/auth/me"), 401, "unauthorized");

    // The audit log, read with a fresh session (recorded too).
    let r = login(&s, &mut seen, "admin", admin_password);
    let mut reader = bearer(&s, r.json()["token"].as_str().unwrap());
    let audit = reader.get("/api/v1/audit?limit=500");
    assert_eq!(audit.status, 200);
    let audit = audit.json().to_string();
    assert!(audit.contains("/api/v1/auth/login"), "{audit}");

    // Stop the server so its log is complete.
    let mut s = s;
    assert_eq!(s.stop(), Some(0));
    wait_for("the last log line", Duration::from_secs(5), || {
        s.log_text().contains("liveness updates; stopped in")
    });
    let log = s.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains(" TRACE ") && l.contains("POST /api/v1/auth/login")),
        "the server did not log at trace level"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(" TRACE ") && l.contains("POST /v1/metrics")),
        "the ingest requests were not logged at trace level"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(" TRACE ") && l.contains("GET /icp/config")),
        "the configuration fetches were not logged at trace level"
    );
    assert!(
        audit.contains("config order-service/order-create@dev revision 2; set myorg.orders.apiKey")
            && audit.contains("promotion "),
        "the configuration changes and promotions are audited (by key): {audit}"
    );
    assert!(
        cli.stderr.contains("shown only this once"),
        "the admin commands' stderr was not captured: {}",
        cli.stderr
    );

    // The initial password: exactly once, in its announcement, nowhere else.
    let announced: Vec<&str> = log.lines().filter(|l| l.contains(&initial)).collect();
    assert_eq!(announced.len(), 1, "{announced:#?}");
    assert!(
        announced[0].contains("created user 'admin' with password"),
        "{}",
        announced[0]
    );
    for (place, text) in [
        ("the admin commands' stderr", &cli.stderr),
        ("the audit log", &audit),
    ] {
        assert!(
            !text.contains(&initial),
            "the initial password is in {place}"
        );
    }

    let n = seen.0.len();
    assert!(n >= 60, "only {n} sensitive strings collected");
    seen.assert_absent("the server log", &log, |_| false);
    // No Authorization header is logged: a line naming a bearer token is
    // at most the ingested message that carried one as data.
    for line in log.lines() {
        let lower = line.to_ascii_lowercase();
        if lower.contains("bearer ") || lower.contains("authorization:") {
            assert!(
                line.contains(&token_in_data),
                "a credential header in the log: {line}"
            );
        }
    }
    seen.assert_absent("the admin commands' stderr", &cli.stderr, |_| false);
    seen.assert_absent("the audit log", &audit, |_| false);
    // At rest: the database holds hashes and sealed values only. CSRF tokens
    // are kept in clear; alone they grant nothing.
    let mut db = Vec::new();
    for entry in std::fs::read_dir(&s.data_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("icp.db") || name.starts_with("telemetry.db") {
            db.extend(std::fs::read(&path).unwrap());
        }
    }
    if crate::pg_cluster::enabled() {
        // The control plane's rows and telemetry's are in PostgreSQL:
        // every row of every table.
        db.extend(
            crate::pg_cluster::dump(&s.data_dir, &[], &[])
                .join("\n")
                .into_bytes(),
        );
    }
    assert!(!db.is_empty());
    let db = String::from_utf8_lossy(&db);
    assert!(
        db.contains(&token_in_data),
        "the message holding a token-like string is stored as data"
    );
    seen.assert_absent("the database files", &db, |what| what.contains("CSRF"));
    assert!(
        !db.contains(&initial),
        "the initial password is in the database"
    );
    eprintln!(
        "hygiene: {n} sensitive strings absent from {} log lines, {} bytes of CLI stderr, the audit log and the database",
        log.lines().count(),
        cli.stderr.len()
    );
}

/// `name: value` headers of a response named `name`, case-insensitively.
fn all<'a>(r: &'a ClientResponse, name: &str) -> Vec<&'a str> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Asserts the security headers, each exactly once.
#[track_caller]
fn assert_security_headers(r: &ClientResponse, what: &str, tls: bool) {
    for (name, value) in [
        (
            "content-security-policy",
            icpd::http::assets::CONTENT_SECURITY_POLICY,
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ] {
        assert_eq!(all(r, name), [value], "{what}: {name}");
    }
    assert!(
        icpd::http::assets::CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"),
        "CSP without frame-ancestors"
    );
    let hsts = all(r, "strict-transport-security");
    if tls {
        assert_eq!(hsts, ["max-age=31536000"], "{what}");
    } else {
        assert!(hsts.is_empty(), "{what}: HSTS over plain HTTP: {hsts:?}");
    }
}

/// The attributes of a `Set-Cookie` value, lower-cased, after `name=value`.
fn cookie_attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

#[track_caller]
fn assert_session_cookie(r: &ClientResponse, tls: bool, max_age: &str) {
    let set = all(r, "set-cookie");
    assert_eq!(set.len(), 1, "{set:?}");
    assert!(set[0].starts_with("icp_session="), "{}", set[0]);
    let attrs = cookie_attributes(set[0]);
    for want in ["httponly", "samesite=strict", "path=/", max_age] {
        assert!(
            attrs.iter().any(|a| a == want),
            "{want} missing: {}",
            set[0]
        );
    }
    assert_eq!(
        attrs.iter().any(|a| a == "secure"),
        tls,
        "Secure under TLS only: {}",
        set[0]
    );
}

fn check_headers(s: &TestServer, tls: bool) {
    assert_eq!(s.management_url.starts_with("https://"), tls);
    let get = |path: &str| {
        s.management_client()
            .request("GET", path, &[], b"")
            .unwrap()
    };
    // The console, its files, its 404 and 405.
    for (path, status) in [
        ("/", 200),
        ("/projects/p", 200),
        ("/assets/js/app.js", 200),
        ("/favicon.ico", 404),
    ] {
        let r = get(path);
        assert_eq!(r.status, status, "{path}");
        assert_security_headers(&r, path, tls);
    }
    let r = s
        .management_client()
        .request("POST", "/assets/js/app.js", &[], b"")
        .unwrap();
    assert_eq!(r.status, 405);
    assert_security_headers(&r, "405", tls);
    // Health and the API, answers and errors: never cached.
    let r = get("/healthz");
    assert_eq!(r.status, 200);
    assert_security_headers(&r, "/healthz", tls);
    for (path, status) in [
        ("/api/v1/auth/me", 401),
        ("/api/v1/nope", 404),
        ("/api/v1/openapi.json", 200),
    ] {
        let r = get(path);
        assert_eq!(r.status, status, "{path}");
        assert_security_headers(&r, path, tls);
        assert_eq!(all(&r, "cache-control"), ["no-store"], "{path}");
    }
    // Login hands out tokens: not cached; the cookie is locked down.
    let mut admin = s.admin();
    let r = s.login("root", TEST_PASSWORD);
    assert_eq!(r.status, 200);
    assert_security_headers(&r, "login", tls);
    assert_eq!(all(&r, "cache-control"), ["no-store"], "login");
    assert_eq!(all(&r, "content-type"), ["application/json"], "login");
    assert_session_cookie(&r, tls, "max-age=43200");
    // So does the creation of an API token.
    let r = admin.post("/api/v1/auth/tokens", &json!({"name": "headers"}));
    assert_eq!(r.status, 201);
    assert_security_headers(&r, "token", tls);
    assert_eq!(all(&r, "cache-control"), ["no-store"], "token");
    // Logout clears the cookie with the same attributes.
    let r = admin.post("/api/v1/auth/logout", &json!({}));
    assert_eq!(r.status, 204);
    assert_security_headers(&r, "logout", tls);
    assert_session_cookie(&r, tls, "max-age=0");
    assert_eq!(
        all(&r, "set-cookie")[0].split(';').next(),
        Some("icp_session=")
    );
}

#[test]
fn management_responses_carry_the_security_headers_over_tls() {
    check_headers(&TestServer::start(&[]), true);
}

#[test]
fn without_tls_there_is_no_hsts_and_no_secure_cookie() {
    check_headers(&TestServer::start(&["--no-tls"]), false);
}
