//! Telemetry ingest against the real server: Fluent Bit batches, Ballerina
//! JSON log lines, request records and OTLP/HTTP JSON, sent with a runtime
//! token and with an ingest token; attribution, refusals, and retention.
//!
//! Until the query API exists these tests read `DATA/telemetry.db`
//! directly (read-only; the server writes in WAL mode, so committed rows
//! are visible).

use std::path::Path;

use icpd::http::client::{Client, ClientResponse};
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};

use crate::harness::{assert_error, Bridge, TestServer};

/// A server with one registered runtime (bound secret, dev,
/// order-service/order-create) and a client on the runtime listener.
struct Setup {
    s: TestServer,
    bridge: Bridge,
    c: Client,
}

fn setup(args: &[&str]) -> Setup {
    let s = TestServer::start(args);
    let secret = s.secret("dev", Some(("order-service", "order-create")));
    let bridge = Bridge::new(&secret, Some("node-1"));
    let mut c = s.runtime_client();
    assert_eq!(bridge.full(&mut c).status, 200);
    Setup { s, bridge, c }
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

/// The telemetry database, read-only.
fn telemetry_db(data_dir: &Path) -> Connection {
    Connection::open_with_flags(
        data_dir.join("telemetry.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
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
    let db = telemetry_db(data_dir);
    let mut st = db
        .prepare("SELECT ts, level, environment, project, integration, runtime_id, module, message, attributes FROM logs ORDER BY id")
        .unwrap();
    st.query_map([], |r| {
        let level: i64 = r.get(1)?;
        let attributes: String = r.get(8)?;
        Ok(LogRow {
            ts: r.get(0)?,
            level: LEVELS[level as usize].to_string(),
            environment: r.get(2)?,
            project: r.get(3)?,
            integration: r.get(4)?,
            runtime_id: r.get(5)?,
            module: r.get(6)?,
            message: r.get(7)?,
            attributes: serde_json::from_str(&attributes).unwrap(),
        })
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

/// Messages of the logs whose text matches `phrase` (FTS5 phrase query).
fn search(data_dir: &Path, phrase: &str) -> Vec<String> {
    let db = telemetry_db(data_dir);
    let mut st = db
        .prepare("SELECT l.message FROM logs_fts f JOIN logs l ON l.id = f.rowid WHERE logs_fts MATCH ?1 ORDER BY l.id")
        .unwrap();
    st.query_map([format!("\"{}\"", phrase.replace('"', "\"\""))], |r| {
        r.get(0)
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

fn count(data_dir: &Path, table: &str) -> i64 {
    telemetry_db(data_dir)
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
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
fn fluent_bit_batch_with_a_runtime_token() {
    let mut t = setup(&[]);
    let token = t.bridge.token();
    let rt = t.bridge.runtime_id.clone();
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
    assert_eq!(r, json!({"accepted": 3, "rejected": 0, "errors": []}));

    let rows = logs(&t.s.data_dir);
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(row.environment, "dev");
        assert_eq!(row.project, some("order-service"));
        assert_eq!(row.integration, some("order-create"));
        assert_eq!(row.runtime_id, Some(rt.clone()));
    }
    assert_eq!(
        rows.iter().map(|r| r.level.as_str()).collect::<Vec<_>>(),
        ["INFO", "ERROR", "INFO"]
    );
    assert_eq!(rows[0].ts, ((now_s - 2.5) * 1000.0).round() as i64);
    assert_eq!(rows[0].attributes, json!({"pod": "orders-7f9"}));
    assert_eq!(rows[1].attributes, json!({"attempt": 3}));
    assert_eq!(
        search(&t.s.data_dir, "gateway timed out"),
        ["payment gateway timed out"]
    );
    assert!(
        search(&t.s.data_dir, "timed gateway").is_empty(),
        "a phrase, not words"
    );
}

#[test]
fn ballerina_json_lines_with_a_metrics_line() {
    let mut t = setup(&[]);
    let token = t.bridge.token();
    let rt = t.bridge.runtime_id.clone();
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
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"accepted": 3, "rejected": 0, "errors": []})
    );

    let rows = logs(&t.s.data_dir);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].ts, 1_795_348_799_123);
    assert_eq!(rows[0].level, "DEBUG");
    assert_eq!(rows[0].module, some("acme/orders"));
    assert_eq!(rows[0].message, "loading order");
    assert_eq!(rows[0].attributes, json!({"orderId": 42}));
    assert_eq!(rows[1].level, "WARN");
    assert_eq!(rows[1].integration, some("order-create"));
    assert_eq!(search(&t.s.data_dir, "stock low"), ["stock low for item 7"]);

    let db = telemetry_db(&t.s.data_dir);
    let req: (i64, String, String, String, i64, f64, String, Option<String>) = db
        .query_row(
            "SELECT ts, service, resource, method, status, duration_ms, environment, runtime_id FROM requests",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)),
        )
        .unwrap();
    assert_eq!(req.0, 1_795_348_800_250);
    assert_eq!(
        (req.1.as_str(), req.2.as_str(), req.3.as_str(), req.4),
        ("/orders", "/orders/{id}", "GET", 200)
    );
    assert!((req.5 - 4.2).abs() < 1e-9);
    assert_eq!(req.6, "dev");
    assert_eq!(req.7, Some(rt));
}

#[test]
fn request_records_on_icp_metrics() {
    let mut t = setup(&[]);
    let token = t.bridge.token();
    let now = now_ms();
    let batch = json!([
        {"time": now - 1000, "service": "orders", "resource": "/orders", "method": "POST", "statusCode": 201, "responseTimeMs": 12.5},
        {"time": now - 500, "service": "orders", "resource": "/orders", "method": "POST", "statusCode": 500, "responseTimeMs": 40},
        {"time": now, "service": "orders", "statusCode": 200}
    ]);
    let r = post_json(
        &mut t.c,
        &format!("/icp/metrics?runtimeId={}", t.bridge.runtime_id),
        &token,
        &batch,
    );
    assert_eq!(r["accepted"], 2);
    assert_eq!(r["rejected"], 1);
    assert!(
        r["errors"][0]
            .as_str()
            .unwrap()
            .contains("record 3: no response time"),
        "{r}"
    );
    let db = telemetry_db(&t.s.data_dir);
    let rows: Vec<(i64, i64, f64, Option<String>)> = db
        .prepare("SELECT ts, status, duration_ms, integration FROM requests ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            (now - 1000, 201, 12.5, some("order-create")),
            (now - 500, 500, 40.0, some("order-create"))
        ]
    );
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
    let token = t.bridge.token();
    let rt = t.bridge.runtime_id.clone();
    let now_ns = now_ms() as u128 * 1_000_000;
    let r = post_json(&mut t.c, "/v1/logs", &token, &otlp_logs_body(&rt, now_ns));
    assert_eq!(r, json!({"partialSuccess": {}}));
    let rows = logs(&t.s.data_dir);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].ts, (now_ns / 1_000_000) as i64);
    assert_eq!(rows[0].level, "WARN");
    assert_eq!(rows[0].module, some("acme.orders"));
    assert_eq!(rows[0].runtime_id, Some(rt.clone()));
    assert_eq!(rows[0].integration, some("order-create"));
    assert_eq!(
        rows[0].attributes,
        json!({"service.name": "orders", "lagSeconds": 42})
    );
    assert_eq!(rows[1].level, "FATAL");
    assert_eq!(
        search(&t.s.data_dir, "database unreachable"),
        ["database unreachable"]
    );

    let r = post_json(
        &mut t.c,
        "/v1/metrics",
        &token,
        &otlp_metrics_body(&rt, now_ns),
    );
    assert_eq!(r, json!({"partialSuccess": {}}));
    let db = telemetry_db(&t.s.data_dir);
    type Point = (
        String,
        String,
        Option<String>,
        Option<f64>,
        Option<i64>,
        Option<f64>,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
    );
    let points: Vec<Point> = db
        .prepare("SELECT name, kind, unit, value, count, sum, bounds, buckets, attributes, runtime_id FROM metric_points ORDER BY id")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(points.len(), 3);
    assert_eq!(
        (points[0].0.as_str(), points[0].1.as_str(), points[0].3),
        ("http.server.requests", "sum", Some(17.0))
    );
    assert_eq!(
        serde_json::from_str::<Value>(&points[0].8).unwrap(),
        json!({"http.route": "/orders"})
    );
    assert_eq!(points[0].9, Some(rt.clone()));
    assert_eq!(
        (points[1].1.as_str(), points[1].3),
        ("gauge", Some(52_428_800.0))
    );
    let h = &points[2];
    assert_eq!(
        (h.1.as_str(), h.2.as_deref(), h.3, h.4, h.5),
        ("histogram", Some("ms"), None, Some(6), Some(123.5))
    );
    assert_eq!(h.6.as_deref(), Some("[10.0,50.0,100.0]"));
    assert_eq!(h.7.as_deref(), Some("[1,3,1,1]"));

    // Partial success: the bad point is reported, the good one kept.
    let mut bad = otlp_metrics_body(&rt, now_ns);
    bad["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][1]["gauge"]["dataPoints"][0] =
        json!({"timeUnixNano": now_ns.to_string()});
    let r = post_json(&mut t.c, "/v1/metrics", &token, &bad);
    assert_eq!(r["partialSuccess"]["rejectedDataPoints"], 1);
    assert!(
        r["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("process.memory.usage"),
        "{r}"
    );
    assert_eq!(count(&t.s.data_dir, "metric_points"), 5);
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
    assert_eq!(count(&t.s.data_dir, "logs"), 0);
}

#[test]
fn a_runtime_outside_the_secret_scope_is_rejected() {
    let mut t = setup(&[]);
    // A second runtime in another integration, with its own secret.
    let other_secret = t.s.secret("dev", Some(("billing", "invoices")));
    let mut other = Bridge::new(&other_secret, None);
    other.project = "billing".into();
    other.integration = "invoices".into();
    assert_eq!(other.full(&mut t.c).status, 200);
    let token = t.bridge.token();
    let batch = json!([
        {"log": "mine", "runtimeId": t.bridge.runtime_id},
        {"log": "someone else's", "runtimeId": other.runtime_id},
        {"log": "unknown runtime", "runtimeId": "not-registered"}
    ]);
    let r = post_json(&mut t.c, "/icp/logs", &token, &batch);
    assert_eq!(r["accepted"], 2);
    assert_eq!(r["rejected"], 1);
    assert!(
        r["errors"][0].as_str().unwrap().contains(&format!(
            "runtime {} is outside the scope",
            other.runtime_id
        )),
        "{r}"
    );
    let rows = logs(&t.s.data_dir);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].message, "unknown runtime");
    assert_eq!(rows[1].runtime_id, some("not-registered"));
    assert_eq!(
        rows[1].integration,
        some("order-create"),
        "the secret's own scope"
    );
}
