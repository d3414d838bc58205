//! Telemetry ingest against the real server: Fluent Bit batches, Ballerina
//! JSON log lines, request records and OTLP/HTTP JSON, sent with a runtime
//! token and with an ingest token; attribution, refusals, and retention.
//!
//! These tests read what the server stored directly, in arrival order:
//! `DATA/telemetry.db` (read-only; the server writes in WAL mode, so
//! committed rows are visible), or in the PostgreSQL half the telemetry
//! tables of the data directory's database ([`TelemetryDb`]).

use std::path::Path;
use std::time::Duration;

use icpd::http::client::{Client, ClientResponse};
use serde_json::{json, Value};

use crate::harness::{
    assert_error, telemetry_db, wait_for, Bridge, TelemetryDb, TestDir, TestServer, P,
};

/// A server with one registered runtime (bound secret, dev,
/// order-service/order-create), an ingest token with the same scope, and a
/// client on the runtime listener.
struct Setup {
    s: TestServer,
    bridge: Bridge,
    ingest_token: String,
    c: Client,
}

fn setup(args: &[&str]) -> Setup {
    let s = TestServer::start(args);
    let secret = s.secret("dev", Some(("order-service", "order-create")));
    let bridge = Bridge::new(&secret, Some("node-1"));
    let mut c = s.runtime_client();
    assert_eq!(bridge.full(&mut c).status, 200);
    let created = s.cli_json(&[
        "ingest-token",
        "create",
        "--env",
        "dev",
        "--project",
        "order-service",
        "--integration",
        "order-create",
        "--json",
    ]);
    let ingest_token = created["token"].as_str().unwrap().to_string();
    Setup {
        s,
        bridge,
        ingest_token,
        c,
    }
}

impl Setup {
    /// Both kinds of credential, each with a label for failure messages.
    fn credentials(&self) -> [(&'static str, String); 2] {
        [
            ("runtime token", self.bridge.token()),
            ("ingest token", self.ingest_token.clone()),
        ]
    }
}

/// POSTs `body` as it is, with a bearer token and a content type.
fn post(
    c: &mut Client,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> ClientResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", content_type)];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    c.request("POST", path, &headers, body).unwrap()
}

fn post_json(c: &mut Client, path: &str, token: &str, body: &Value) -> Value {
    let r = post(
        c,
        path,
        Some(token),
        "application/json",
        body.to_string().as_bytes(),
    );
    assert_eq!(
        r.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

/// A stored log row: (ts, level name, env, project, integration, runtime, module, message, attributes).
#[derive(Debug, Clone, PartialEq)]
struct LogRow {
    ts: i64,
    level: String,
    environment: String,
    project: Option<String>,
    integration: Option<String>,
    runtime_id: Option<String>,
    module: Option<String>,
    message: String,
    attributes: Value,
}

const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

fn logs(data_dir: &Path) -> Vec<LogRow> {
    logs_after(data_dir, 0)
}

/// The logs stored after the row `after` (rows are appended in arrival
/// order; a log's id is its place in time order).
fn logs_after(data_dir: &Path, after: i64) -> Vec<LogRow> {
    let text = |v: &Value| v.as_str().map(str::to_string);
    telemetry_db(data_dir)
        .rows(
            "SELECT ts, level, environment, project, integration, runtime_id, module, message, attributes FROM logs WHERE rowid > ?1 ORDER BY rowid",
            &[P::I(after)],
        )
        .into_iter()
        .map(|r| LogRow {
            ts: r[0].as_i64().unwrap(),
            level: LEVELS[r[1].as_u64().unwrap() as usize].to_string(),
            environment: text(&r[2]).unwrap(),
            project: text(&r[3]),
            integration: text(&r[4]),
            runtime_id: text(&r[5]),
            module: text(&r[6]),
            message: text(&r[7]).unwrap(),
            attributes: serde_json::from_str(r[8].as_str().unwrap()).unwrap(),
        })
        .collect()
}

/// Messages of the logs stored after row `after` whose text matches
/// `phrase`: an FTS5 phrase query, or PostgreSQL's text index as the
/// server queries it.
fn search(data_dir: &Path, after: i64, phrase: &str) -> Vec<String> {
    let mut db = telemetry_db(data_dir);
    let sql = match db {
        TelemetryDb::File(_) => "SELECT l.message FROM logs_fts f JOIN logs l ON l.id = f.rowid WHERE logs_fts MATCH ?1 AND l.rowid > ?2 ORDER BY l.rowid",
        TelemetryDb::Shared(_) => "SELECT message FROM logs WHERE message_tsv @@ phraseto_tsquery('simple', regexp_replace(?1, '[^[:alnum:]]+', ' ', 'g')) AND rowid > ?2 ORDER BY rowid",
    };
    let quoted = format!("\"{}\"", phrase.replace('"', "\"\""));
    let phrase = match db {
        TelemetryDb::File(_) => quoted.as_str(),
        TelemetryDb::Shared(_) => phrase,
    };
    db.rows(sql, &[P::T(phrase), P::I(after)])
        .into_iter()
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect()
}

fn count(data_dir: &Path, table: &str) -> i64 {
    telemetry_db(data_dir)
        .value(&format!("SELECT count(*) FROM {table}"), &[])
        .as_i64()
        .unwrap()
}

/// The last row of `table` stored (0 when empty): the arrival order of
/// logs, the id of the others (their rowid in SQLite).
fn last_id(data_dir: &Path, table: &str) -> i64 {
    let key = if table == "logs" { "rowid" } else { "id" };
    telemetry_db(data_dir)
        .value(&format!("SELECT coalesce(max({key}), 0) FROM {table}"), &[])
        .as_i64()
        .unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn fluent_bit_batch() {
    let mut t = setup(&[]);
    let rt = t.bridge.runtime_id.clone();
    for (who, token) in t.credentials() {
        let before = last_id(&t.s.data_dir, "logs");
        let now_s = now_ms() as f64 / 1000.0;
        let batch = json!([
            {"date": now_s - 2.5, "log": "order 1001 accepted by the warehouse", "level": "info", "pod": "orders-7f9"},
            {"date": now_s - 1.0, "log": "payment gateway timed out", "level": "error", "attempt": 3},
            {"date": now_s, "log": "no level here"}
        ]);
        let r = post_json(
            &mut t.c,
            &format!("/icp/logs?runtimeId={rt}"),
            &token,
            &batch,
        );
        assert_eq!(
            r,
            json!({"accepted": 3, "rejected": 0, "errors": []}),
            "{who}"
        );

        let rows = logs_after(&t.s.data_dir, before);
        assert_eq!(rows.len(), 3, "{who}");
        for row in &rows {
            assert_eq!(row.environment, "dev", "{who}");
            assert_eq!(row.project, some("order-service"), "{who}");
            assert_eq!(row.integration, some("order-create"), "{who}");
            assert_eq!(row.runtime_id, Some(rt.clone()), "{who}");
        }
        assert_eq!(
            rows.iter().map(|r| r.level.as_str()).collect::<Vec<_>>(),
            ["INFO", "ERROR", "INFO"],
            "{who}"
        );
        assert_eq!(rows[0].ts, ((now_s - 2.5) * 1000.0).round() as i64, "{who}");
        assert_eq!(rows[0].attributes, json!({"pod": "orders-7f9"}), "{who}");
        assert_eq!(rows[1].attributes, json!({"attempt": 3}), "{who}");
        assert_eq!(
            search(&t.s.data_dir, before, "gateway timed out"),
            ["payment gateway timed out"],
            "{who}"
        );
        assert!(
            search(&t.s.data_dir, before, "timed gateway").is_empty(),
            "a phrase, not words"
        );
    }
}

#[test]
fn ballerina_json_lines_with_a_metrics_line() {
    let mut t = setup(&[]);
    let rt = t.bridge.runtime_id.clone();
    for (who, token) in t.credentials() {
        let (logs_before, requests_before) = (
            last_id(&t.s.data_dir, "logs"),
            last_id(&t.s.data_dir, "requests"),
        );
        let lines = [
            json!({"time": "2026-11-22T17:29:59.123+05:30", "level": "DEBUG", "module": "acme/orders", "message": "loading order", "runtimeId": rt, "orderId": 42}),
            json!({"time": "2026-11-22T17:30:00.000+05:30", "level": "WARN", "module": "acme/orders", "message": "stock low for item 7", "runtimeId": rt}),
            json!({"time": "2026-11-22T17:30:00.250+05:30", "level": "INFO", "module": "", "message": "", "logger": "metrics",
                   "runtimeId": rt, "protocol": "http", "entrypoint.service.name": "/orders", "src.resource.path": "/orders/{id}",
                   "http.method": "GET", "http.status_code": "200", "response_time_seconds": "0.0042"}),
        ];
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let r = post(
            &mut t.c,
            "/icp/logs",
            Some(&token),
            "application/x-ndjson",
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{who}");
        assert_eq!(
            r.json(),
            json!({"accepted": 3, "rejected": 0, "errors": []}),
            "{who}"
        );

        let rows = logs_after(&t.s.data_dir, logs_before);
        assert_eq!(rows.len(), 2, "{who}");
        assert_eq!(rows[0].ts, 1_795_348_799_123, "{who}");
        assert_eq!(rows[0].level, "DEBUG", "{who}");
        assert_eq!(rows[0].module, some("acme/orders"), "{who}");
        assert_eq!(rows[0].message, "loading order", "{who}");
        assert_eq!(rows[0].attributes, json!({"orderId": 42}), "{who}");
        assert_eq!(rows[0].runtime_id, Some(rt.clone()), "{who}");
        assert_eq!(rows[1].level, "WARN", "{who}");
        assert_eq!(rows[1].integration, some("order-create"), "{who}");
        assert_eq!(
            search(&t.s.data_dir, logs_before, "stock low"),
            ["stock low for item 7"],
            "{who}"
        );

        let req = telemetry_db(&t.s.data_dir).rows(
            "SELECT ts, service, resource, method, status, duration_ms, environment, runtime_id FROM requests WHERE id > ?1",
            &[P::I(requests_before)],
        );
        assert_eq!(req.len(), 1, "{who}");
        let req = &req[0];
        assert_eq!(req[0], 1_795_348_800_250i64, "{who}");
        assert_eq!(
            req[1..5],
            [
                json!("/orders"),
                json!("/orders/{id}"),
                json!("GET"),
                json!(200)
            ],
            "{who}"
        );
        assert!((req[5].as_f64().unwrap() - 4.2).abs() < 1e-9, "{who}");
        assert_eq!(req[6], "dev", "{who}");
        assert_eq!(req[7], json!(rt), "{who}");
    }
}

#[test]
fn request_records_on_icp_metrics() {
    let mut t = setup(&[]);
    for (who, token) in t.credentials() {
        let before = last_id(&t.s.data_dir, "requests");
        let now = now_ms();
        let batch = json!([
            {"time": now - 1000, "service": "orders", "resource": "/orders", "method": "POST", "statusCode": 201, "responseTimeMs": 12.5},
            {"time": now - 500, "service": "orders", "resource": "/orders", "method": "POST", "statusCode": 500, "responseTimeMs": 40},
            {"time": now, "service": "orders", "statusCode": 200}
        ]);
        let path = format!("/icp/metrics?runtimeId={}", t.bridge.runtime_id);
        let r = post_json(&mut t.c, &path, &token, &batch);
        assert_eq!(r["accepted"], 2, "{who}");
        assert_eq!(r["rejected"], 1, "{who}");
        assert!(
            r["errors"][0]
                .as_str()
                .unwrap()
                .contains("record 3: no response time"),
            "{who}: {r}"
        );
        let rows = telemetry_db(&t.s.data_dir).rows(
            "SELECT ts, status, duration_ms, integration FROM requests WHERE id > ?1 ORDER BY id",
            &[P::I(before)],
        );
        assert_eq!(
            rows,
            [
                [
                    json!(now - 1000),
                    json!(201),
                    json!(12.5),
                    json!("order-create")
                ],
                [
                    json!(now - 500),
                    json!(500),
                    json!(40.0),
                    json!("order-create")
                ]
            ],
            "{who}"
        );
    }
}

fn otlp_logs_body(runtime_id: &str, now_ns: u128) -> Value {
    json!({"resourceLogs": [{
    "resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "orders"}},
        {"key": "service.instance.id", "value": {"stringValue": runtime_id}}]},
    "scopeLogs": [{"scope": {"name": "acme.orders"}, "logRecords": [
        {"timeUnixNano": now_ns.to_string(), "severityText": "WARN", "body": {"stringValue": "inventory sync lagging behind"},
         "attributes": [{"key": "lagSeconds", "value": {"intValue": "42"}}]},
        {"timeUnixNano": (now_ns + 1_000_000).to_string(), "severityNumber": 21, "body": {"stringValue": "database unreachable"}}
    ]}]}]})
}

fn otlp_metrics_body(runtime_id: &str, now_ns: u128) -> Value {
    json!({"resourceMetrics": [{
    "resource": {"attributes": [{"key": "service.instance.id", "value": {"stringValue": runtime_id}}]},
    "scopeMetrics": [{"metrics": [
        {"name": "http.server.requests", "unit": "1", "sum": {"aggregationTemporality": 2, "isMonotonic": true,
            "dataPoints": [{"timeUnixNano": now_ns.to_string(), "asInt": "17",
                            "attributes": [{"key": "http.route", "value": {"stringValue": "/orders"}}]}]}},
        {"name": "process.memory.usage", "unit": "By", "gauge": {"dataPoints": [{"timeUnixNano": now_ns.to_string(), "asDouble": 52428800.0}]}},
        {"name": "http.server.duration", "unit": "ms", "histogram": {"aggregationTemporality": 2, "dataPoints": [
            {"timeUnixNano": now_ns.to_string(), "count": "6", "sum": 123.5,
             "explicitBounds": [10, 50, 100], "bucketCounts": ["1", "3", "1", "1"]}]}}
    ]}]}]})
}

#[test]
fn otlp_logs_and_metrics() {
    let mut t = setup(&[]);
    let rt = t.bridge.runtime_id.clone();
    for (who, token) in t.credentials() {
        let (logs_before, points_before) = (
            last_id(&t.s.data_dir, "logs"),
            last_id(&t.s.data_dir, "metric_points"),
        );
        let now_ns = now_ms() as u128 * 1_000_000;
        let r = post_json(&mut t.c, "/v1/logs", &token, &otlp_logs_body(&rt, now_ns));
        assert_eq!(r, json!({"partialSuccess": {}}), "{who}");
        let rows = logs_after(&t.s.data_dir, logs_before);
        assert_eq!(rows.len(), 2, "{who}");
        assert_eq!(rows[0].ts, (now_ns / 1_000_000) as i64, "{who}");
        assert_eq!(rows[0].level, "WARN", "{who}");
        assert_eq!(rows[0].module, some("acme.orders"), "{who}");
        assert_eq!(rows[0].runtime_id, Some(rt.clone()), "{who}");
        assert_eq!(rows[0].integration, some("order-create"), "{who}");
        assert_eq!(
            rows[0].attributes,
            json!({"service.name": "orders", "lagSeconds": 42}),
            "{who}"
        );
        assert_eq!(rows[1].level, "FATAL", "{who}");
        assert_eq!(
            search(&t.s.data_dir, logs_before, "database unreachable"),
            ["database unreachable"],
            "{who}"
        );

        let r = post_json(
            &mut t.c,
            "/v1/metrics",
            &token,
            &otlp_metrics_body(&rt, now_ns),
        );
        assert_eq!(r, json!({"partialSuccess": {}}), "{who}");
        let points = telemetry_db(&t.s.data_dir).rows(
            "SELECT name, kind, unit, value, count, sum, bounds, buckets, attributes, runtime_id, ts FROM metric_points WHERE id > ?1 ORDER BY id",
            &[P::I(points_before)],
        );
        assert_eq!(points.len(), 3, "{who}");
        let p = &points[0];
        assert_eq!(
            (&p[0], &p[1], p[3].as_f64()),
            (&json!("http.server.requests"), &json!("sum"), Some(17.0)),
            "{who}"
        );
        assert_eq!(
            serde_json::from_str::<Value>(p[8].as_str().unwrap()).unwrap(),
            json!({"http.route": "/orders"})
        );
        assert_eq!(p[9], json!(rt), "{who}");
        assert_eq!(p[10], json!((now_ns / 1_000_000) as i64), "{who}");
        assert_eq!(
            (&points[1][1], points[1][3].as_f64()),
            (&json!("gauge"), Some(52_428_800.0)),
            "{who}"
        );
        let h = &points[2];
        assert_eq!(
            (&h[1], &h[2], &h[3], &h[4], h[5].as_f64()),
            (
                &json!("histogram"),
                &json!("ms"),
                &Value::Null,
                &json!(6),
                Some(123.5)
            ),
            "{who}"
        );
        assert_eq!(h[6], "[10.0,50.0,100.0]", "{who}");
        assert_eq!(h[7], "[1,3,1,1]", "{who}");

        // Partial success: the bad point is reported, the good ones kept.
        let mut bad = otlp_metrics_body(&rt, now_ns);
        bad["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][1]["gauge"]["dataPoints"][0] =
            json!({"timeUnixNano": now_ns.to_string()});
        let r = post_json(&mut t.c, "/v1/metrics", &token, &bad);
        assert_eq!(r["partialSuccess"]["rejectedDataPoints"], 1, "{who}");
        assert!(
            r["partialSuccess"]["errorMessage"]
                .as_str()
                .unwrap()
                .contains("process.memory.usage"),
            "{who}: {r}"
        );
        assert_eq!(last_id(&t.s.data_dir, "metric_points"), points_before + 5);
    }
}

#[test]
fn refusals_401_400_405_415() {
    let mut t = setup(&[]);
    let token = t.bridge.token();
    for path in ["/icp/logs", "/icp/metrics", "/v1/logs", "/v1/metrics"] {
        let r = post(&mut t.c, path, None, "application/json", b"[]");
        assert_error(&r, 401, "unauthorized");
        let r = post(
            &mut t.c,
            path,
            Some("not-a-token"),
            "application/json",
            b"[]",
        );
        assert_error(&r, 401, "unauthorized");
        let r = post(
            &mut t.c,
            path,
            Some("icpi_00000000_nope"),
            "application/json",
            b"[]",
        );
        assert_error(&r, 401, "unauthorized");
        let r = t.c.request("GET", path, &[], b"").unwrap();
        assert_error(&r, 405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some("POST"));
        let r = post(&mut t.c, path, Some(&token), "application/json", b"<logs/>");
        assert_error(&r, 400, "bad_request");
        assert!(r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not JSON"));
    }
    let r = post(
        &mut t.c,
        "/v1/logs",
        Some(&token),
        "application/x-protobuf",
        b"\x0a\x00",
    );
    assert_error(&r, 415, "unsupported_media_type");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("http/json"));
    let auth = format!("Bearer {token}");
    let r =
        t.c.request(
            "POST",
            "/icp/logs",
            &[
                ("Authorization", auth.as_str()),
                ("Content-Encoding", "gzip"),
            ],
            b"\x1f\x8b",
        )
        .unwrap();
    assert_error(&r, 415, "unsupported_media_type");
    // An unauthenticated protobuf body is a 401 first.
    let r = post(
        &mut t.c,
        "/v1/logs",
        None,
        "application/x-protobuf",
        b"\x0a\x00",
    );
    assert_error(&r, 401, "unauthorized");
    // A batch over the record limit is refused as a whole.
    let many = format!("[{}]", vec![r#"{"log":"x"}"#; 10_001].join(","));
    let r = post(
        &mut t.c,
        "/icp/logs",
        Some(&token),
        "application/json",
        many.as_bytes(),
    );
    assert_error(&r, 400, "bad_request");
    assert_eq!(count(&t.s.data_dir, "logs"), 0);
}

#[test]
fn a_runtime_outside_the_credential_scope_is_rejected() {
    let mut t = setup(&[]);
    // A second runtime in another integration, with its own secret.
    let other_secret = t.s.secret("dev", Some(("billing", "invoices")));
    let mut other = Bridge::new(&other_secret, None);
    other.project = "billing".into();
    other.integration = "invoices".into();
    assert_eq!(other.full(&mut t.c).status, 200);
    for (who, token) in t.credentials() {
        let before = last_id(&t.s.data_dir, "logs");
        let batch = json!([
            {"log": "mine", "runtimeId": t.bridge.runtime_id},
            {"log": "someone else's", "runtimeId": other.runtime_id},
            {"log": "unknown runtime", "runtimeId": "not-registered"}
        ]);
        let r = post_json(&mut t.c, "/icp/logs", &token, &batch);
        assert_eq!(r["accepted"], 2, "{who}");
        assert_eq!(r["rejected"], 1, "{who}");
        let why = format!("runtime {} is outside the scope", other.runtime_id);
        assert!(
            r["errors"][0].as_str().unwrap().contains(&why),
            "{who}: {r}"
        );
        let rows = logs_after(&t.s.data_dir, before);
        assert_eq!(rows.len(), 2, "{who}");
        assert_eq!(rows[1].message, "unknown runtime");
        assert_eq!(rows[1].runtime_id, some("not-registered"));
        assert_eq!(
            rows[1].integration,
            some("order-create"),
            "the credential's own scope"
        );
    }
    // Named by the query parameter, the runtime speaks for the whole batch: 403.
    for (who, token) in t.credentials() {
        let path = format!("/icp/logs?runtimeId={}", other.runtime_id);
        let r = post(
            &mut t.c,
            &path,
            Some(&token),
            "application/json",
            b"{\"log\":\"x\"}",
        );
        assert_error(&r, 403, "forbidden");
        let m = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(m.contains("outside the scope"), "{who}: {m}");
    }
    // An environment-wide ingest token takes both runtimes, each to its own integration.
    let env_wide =
        t.s.cli_json(&["ingest-token", "create", "--env", "dev", "--json"]);
    assert_eq!(env_wide["project"], Value::Null);
    let before = last_id(&t.s.data_dir, "logs");
    let batch = json!([
        {"log": "a", "runtimeId": t.bridge.runtime_id},
        {"log": "b", "runtimeId": other.runtime_id},
        {"log": "c"}
    ]);
    let r = post_json(
        &mut t.c,
        "/icp/logs",
        env_wide["token"].as_str().unwrap(),
        &batch,
    );
    assert_eq!(r["accepted"], 3, "{r}");
    let rows = logs_after(&t.s.data_dir, before);
    assert_eq!(rows[0].integration, some("order-create"));
    assert_eq!(rows[1].integration, some("invoices"));
    assert_eq!(rows[1].project, some("billing"));
    assert_eq!(
        (rows[2].project.clone(), rows[2].runtime_id.clone()),
        (None, None)
    );
    // A prod token does not reach dev runtimes.
    let prod =
        t.s.cli_json(&["ingest-token", "create", "--env", "prod", "--json"]);
    let r = post_json(
        &mut t.c,
        "/icp/logs",
        prod["token"].as_str().unwrap(),
        &batch,
    );
    assert_eq!(
        (r["accepted"].as_i64(), r["rejected"].as_i64()),
        (Some(1), Some(2)),
        "{r}"
    );
    let last = logs(&t.s.data_dir).pop().unwrap();
    assert_eq!(
        (last.environment.as_str(), last.message.as_str()),
        ("prod", "c")
    );
}

#[test]
fn ingest_tokens_through_the_api_and_the_cli() {
    let mut t = setup(&[]);
    let mut admin = t.s.admin();
    // Created through the API: shown once, with a Fluent Bit output.
    let r = admin.post(
        "/api/v1/observability/ingest-tokens",
        &json!({"name": "fluent-bit on node 3", "environment": "dev", "project": "order-service"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let made = r.json();
    let token = made["token"].as_str().unwrap().to_string();
    assert!(token.starts_with(&format!("icpi_{}_", made["id"].as_str().unwrap())));
    assert_eq!(made["environment"], "dev");
    assert_eq!(made["project"], "order-service");
    assert_eq!(made["integration"], Value::Null);
    assert_eq!(made["status"], "active");
    assert_eq!(made["createdBy"], "root");
    let snippet = made["fluentBitConfig"].as_str().unwrap();
    assert!(snippet.contains("Name          http"), "{snippet}");
    assert!(
        snippet.contains(&format!("Header        Authorization Bearer {token}")),
        "{snippet}"
    );
    assert!(snippet.contains("URI           /icp/logs"), "{snippet}");

    let r = post_json(
        &mut t.c,
        "/icp/logs",
        &token,
        &json!({"log": "via the API token"}),
    );
    assert_eq!(r["accepted"], 1);
    let row = logs(&t.s.data_dir).pop().unwrap();
    assert_eq!(
        (row.project, row.integration),
        (some("order-service"), None)
    );

    // Listed (never with the token), last use recorded.
    let list = admin.get("/api/v1/observability/ingest-tokens").json();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "the CLI's and the API's: {list}");
    let listed = items.iter().find(|i| i["id"] == made["id"]).unwrap();
    assert!(listed.get("token").is_none() && listed.get("tokenHash").is_none());
    assert!(listed["lastUsedAt"].as_str().is_some(), "{listed}");
    assert!(!list.to_string().contains(&token));

    // Revoked: refused from the next request.
    let id = made["id"].as_str().unwrap();
    let r = admin.delete(&format!("/api/v1/observability/ingest-tokens/{id}"));
    assert_eq!(r.status, 204);
    let r = post(
        &mut t.c,
        "/icp/logs",
        Some(&token),
        "application/json",
        b"{\"log\":\"x\"}",
    );
    assert_error(&r, 401, "unauthorized");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("revoked"));
    let r = admin.delete("/api/v1/observability/ingest-tokens/ffffffff");
    assert_error(&r, 404, "not_found");

    // Both changes are audited, with the token's id and never the token.
    let audit = admin.get("/api/v1/audit?actor=root&limit=100").json();
    let actions: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["target"].as_str().unwrap().into(),
            )
        })
        .collect();
    for want in [
        (
            "POST /api/v1/observability/ingest-tokens".to_string(),
            format!("ingest token {id}"),
        ),
        (
            "DELETE /api/v1/observability/ingest-tokens/{id}".to_string(),
            format!("ingest token {id}"),
        ),
    ] {
        assert!(actions.contains(&want), "{want:?} in {actions:?}");
    }
    assert!(!audit.to_string().contains(&token));

    // The CLI: list shows the API's token as revoked; revoke the CLI's; audited.
    let out = t.s.cli(&["ingest-token", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("fluent-bit on node 3") && text.contains("revoked"),
        "{text}"
    );
    let cli_id = t.ingest_token[5..13].to_string();
    let out = t.s.cli(&["ingest-token", "revoke", &cli_id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = post(
        &mut t.c,
        "/icp/logs",
        Some(&t.ingest_token),
        "application/json",
        b"{}",
    );
    assert_error(&r, 401, "unauthorized");
    let audit = admin.get("/api/v1/audit?limit=100").json().to_string();
    assert!(
        audit.contains("icpd ingest-token create") && audit.contains("icpd ingest-token revoke"),
        "{audit}"
    );
    // The CLI's human output carries a Fluent Bit section with the token.
    let out = t.s.cli(&["ingest-token", "create", "--env", "dev"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("[OUTPUT]") && stdout.contains("Bearer icpi_"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown only this once"));
}

#[test]
fn ingest_token_permissions_follow_secrets() {
    let t = setup(&[]);
    let mut admin = t.s.admin();
    let body = |env: &str| json!({"environment": env, "project": "order-service", "integration": "order-create"});
    let mut dev = t.s.api_as("dana", Some("Developer"));
    let mut viewer = t.s.api_as("vic", Some("Viewer"));
    // A developer acts in non-critical environments only.
    assert_eq!(
        dev.post("/api/v1/observability/ingest-tokens", &body("dev"))
            .status,
        201
    );
    assert_error(
        &dev.post("/api/v1/observability/ingest-tokens", &body("prod")),
        403,
        "forbidden",
    );
    assert_error(
        &viewer.post("/api/v1/observability/ingest-tokens", &body("dev")),
        403,
        "forbidden",
    );
    let r = admin.post("/api/v1/observability/ingest-tokens", &body("prod"));
    assert_eq!(r.status, 201);
    let prod_id = r.json()["id"].as_str().unwrap().to_string();
    // Viewers see tokens but cannot revoke them; developers cannot revoke prod's.
    assert_eq!(
        viewer.get("/api/v1/observability/ingest-tokens").json()["total"],
        3
    );
    let path = format!("/api/v1/observability/ingest-tokens/{prod_id}");
    assert_error(&viewer.delete(&path), 403, "forbidden");
    assert_error(&dev.delete(&path), 403, "forbidden");
    // Unknown names and half scopes are refused.
    let r = admin.post(
        "/api/v1/observability/ingest-tokens",
        &json!({"environment": "nowhere"}),
    );
    assert_error(&r, 404, "not_found");
    let r = admin.post(
        "/api/v1/observability/ingest-tokens",
        &json!({"environment": "dev", "integration": "order-create"}),
    );
    assert_error(&r, 400, "bad_request");
    let r = admin.post(
        "/api/v1/observability/ingest-tokens",
        &json!({"environment": "dev", "secret": "x"}),
    );
    assert_error(&r, 400, "bad_request");
    // Anonymous callers are refused before anything else.
    let mut anon = t.s.management_client();
    let r = anon
        .post_json("/api/v1/observability/ingest-tokens", None, &body("dev"))
        .unwrap();
    assert_error(&r, 401, "unauthorized");
}

/// Live bytes of telemetry.db: its pages minus the free ones.
fn live_bytes(data_dir: &Path) -> i64 {
    let mut db = telemetry_db(data_dir);
    let mut pragma =
        |name: &str| -> i64 { db.value(&format!("PRAGMA {name}"), &[]).as_i64().unwrap() };
    (pragma("page_count") - pragma("freelist_count")) * pragma("page_size")
}

/// The live bytes the server's last retention pass that deleted by size
/// left, as it logged them (`..., and N logs, ... (the oldest) to stay
/// under ... bytes; B -> A bytes`).
fn retained_bytes(s: &crate::harness::TestServer) -> Option<i64> {
    let log = s.log_text();
    let line = log.lines().rev().find(|l| {
        l.contains("telemetry retention deleted")
            && l.split_once("days, and ")
                .and_then(|(_, rest)| rest.split(' ').next()?.parse::<u64>().ok())
                .is_some_and(|by_size| by_size > 0)
    })?;
    let after = line.rsplit_once("-> ")?.1;
    after.trim_end_matches(" bytes").trim().parse().ok()
}

#[test]
fn retention_removes_old_records_and_keeps_the_size_bound() {
    let conf = TestDir::new("retention-conf");
    let file = conf.path.join("icp.toml");
    let max_bytes: i64 = 1 << 20;
    std::fs::write(
        &file,
        "[telemetry]\nretention_days = 1\nmax_bytes = \"1MiB\"\nretention_interval = \"100ms\"\n",
    )
    .unwrap();
    let mut t = setup(&["--config", file.to_str().unwrap()]);
    let token = t.ingest_token.clone();
    let now = now_ms();
    let day = 86_400_000;
    // Old records of every kind: past the one-day age limit.
    let old = json!([
        {"time": now - 3 * day, "log": "an ancient warning about the disk", "level": "WARN"},
        {"time": now - 2 * day, "log": "an old error", "level": "ERROR"}
    ]);
    assert_eq!(
        post_json(&mut t.c, "/icp/logs", &token, &old)["accepted"],
        2
    );
    let old_request =
        json!({"time": now - 2 * day, "service": "s", "statusCode": 200, "responseTimeMs": 1});
    assert_eq!(
        post_json(&mut t.c, "/icp/metrics", &token, &old_request)["accepted"],
        1
    );
    let old_ns = ((now - 2 * day) as u128 * 1_000_000).to_string();
    let old_point = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "old.gauge", "gauge": {"dataPoints": [{"timeUnixNano": old_ns, "asDouble": 1}]}}]}]}]});
    assert_eq!(
        post_json(&mut t.c, "/v1/metrics", &token, &old_point),
        json!({"partialSuccess": {}})
    );
    wait_for("old records to go by age", Duration::from_secs(10), || {
        count(&t.s.data_dir, "logs")
            + count(&t.s.data_dir, "requests")
            + count(&t.s.data_dir, "metric_points")
            == 0
    });
    assert!(
        search(&t.s.data_dir, 0, "ancient warning").is_empty(),
        "their FTS rows too"
    );

    // Recent logs, well over 1 MiB in all, in batches of 500.
    let total = 12_000;
    for b in 0..total / 500 {
        let batch: Vec<Value> = (0..500)
            .map(|i| {
                let n = b * 500 + i;
                json!({"time": now - (total - n) as i64, "log": format!("recent record {n:05} with text to fill the pages of the database file"), "level": "INFO"})
            })
            .collect();
        assert_eq!(
            post_json(&mut t.c, "/icp/logs", &token, &Value::Array(batch))["accepted"],
            500
        );
    }
    // The live size: SQLite's pages; on PostgreSQL the server's estimate
    // (`TelemetryStore::live_bytes`), as its retention pass logs it.
    let sqlite = !crate::pg_cluster::enabled();
    wait_for("the size bound", Duration::from_secs(20), || {
        if sqlite {
            live_bytes(&t.s.data_dir) <= max_bytes
        } else {
            retained_bytes(&t.s).is_some_and(|b| b <= max_bytes)
        }
    });
    let kept = logs(&t.s.data_dir);
    assert!(
        !kept.is_empty() && kept.len() < total as usize,
        "{} kept",
        kept.len()
    );
    // The oldest went first: what is kept is the newest, in one run.
    let newest = format!("recent record {:05} with", total - 1);
    assert!(kept.last().unwrap().message.starts_with(&newest));
    let first = kept[0].message[14..19].parse::<usize>().unwrap();
    assert_eq!(
        first + kept.len(),
        total as usize,
        "a contiguous newest run"
    );
    assert!(search(&t.s.data_dir, 0, "recent record 00000").is_empty());
    // The file itself shrank back (free pages returned, WAL checkpointed);
    // PostgreSQL keeps deleted rows' space for new ones.
    if sqlite {
        wait_for("the file to shrink", Duration::from_secs(10), || {
            std::fs::metadata(t.s.data_dir.join("telemetry.db"))
                .unwrap()
                .len() as i64
                <= max_bytes
        });
    }
    let log = t.s.log_text();
    assert!(log.contains("telemetry retention deleted"), "{log}");
    assert!(!log.contains(&token), "never a token in the log");
}
