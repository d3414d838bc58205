//! The observability read side against the real server: telemetry ingested
//! over the runtime listener (Fluent Bit batches, Ballerina JSON lines,
//! OTLP logs and metrics, request records) is found through
//! `/api/v1/observability/...` with its attribution, levels, phrase search,
//! cursor and time range; request metrics are checked against figures
//! computed here; callers see only what they hold `observability:view` on;
//! the live tail streams records ingested after it opened; downloads hold
//! the records.

use std::time::Duration;

use icpd::http::client::Client;
use serde_json::{json, Value};

use crate::harness::{assert_error, ApiClient, Bridge, Frame, Opened, Sse, TestServer};

/// A server with two registered runtimes in dev: `orders`
/// (order-service/order-create) and `billing` (billing/invoices).
struct World {
    s: TestServer,
    admin: ApiClient,
    c: Client,
    orders: Bridge,
    billing: Bridge,
}

fn world() -> World {
    let s = TestServer::start(&[]);
    let admin = s.admin();
    let orders = Bridge::new(
        &s.secret("dev", Some(("order-service", "order-create"))),
        None,
    );
    let mut billing = Bridge::new(&s.secret("dev", Some(("billing", "invoices"))), None);
    billing.project = "billing".into();
    billing.integration = "invoices".into();
    let mut c = s.runtime_client();
    assert_eq!(orders.full(&mut c).status, 200);
    assert_eq!(billing.full(&mut c).status, 200);
    World {
        s,
        admin,
        c,
        orders,
        billing,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// RFC 3339 with milliseconds, as the API writes times.
fn rfc3339(ms: i64) -> String {
    icpd::time::rfc3339(ms)
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends a body to an ingest endpoint with `bridge`'s runtime token;
/// every record must be accepted.
fn ingest(c: &mut Client, bridge: &Bridge, path: &str, content_type: &str, body: &[u8]) -> Value {
    let auth = format!("Bearer {}", bridge.token());
    let r = c
        .request(
            "POST",
            path,
            &[("Authorization", &auth), ("Content-Type", content_type)],
            body,
        )
        .unwrap();
    assert_eq!(
        r.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert!(
        v["rejected"].as_u64().unwrap_or(0) == 0
            && v["partialSuccess"]["rejectedLogRecords"].is_null(),
        "{path}: {v}"
    );
    v
}

fn ingest_json(c: &mut Client, bridge: &Bridge, path: &str, body: &Value) -> Value {
    ingest(
        c,
        bridge,
        path,
        "application/json",
        body.to_string().as_bytes(),
    )
}

#[track_caller]
fn get(api: &mut ApiClient, path: &str) -> Value {
    let r = api.get(path);
    assert_eq!(
        r.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

fn messages(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["message"].as_str().unwrap().to_string())
        .collect()
}

/// The messages of every record matching `query` (a log query string
/// without limit or cursor), in the order asked, paging with `limit`.
fn all_pages(api: &mut ApiClient, query: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/observability/logs?{query}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", enc(c)));
        }
        let page = get(api, &path);
        let got = messages(&page);
        assert!(got.len() <= limit, "{path}: {page}");
        out.extend(got);
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// Opens the live tail at `path` with a bearer token: the stream, or the
/// status it was refused with.
fn tail(s: &TestServer, token: &str, path: &str) -> Result<Sse, u16> {
    let auth = format!("Bearer {token}");
    match s.open_sse(path, &[("Authorization", &auth)]) {
        Opened::Stream(sse) => Ok(sse),
        Opened::Refused(status, _) => Err(status),
    }
}

const SOON: Duration = Duration::from_secs(5);

// ---- the tests ---------------------------------------------------------------------

#[test]
fn fluent_bit_ballerina_and_otlp_logs_are_found_with_attribution_levels_and_search() {
    let mut w = world();
    let rt = w.orders.runtime_id.clone();
    let t0 = now_ms() - 60_000;
    // Fluent Bit `http` output, format json: epoch seconds in `date`.
    let batch = json!([
        {"date": t0 as f64 / 1000.0, "log": "order 1001 accepted by the warehouse", "level": "info", "pod": "orders-7f9"},
        {"date": (t0 + 1000) as f64 / 1000.0, "log": "payment gateway timed out", "level": "error", "attempt": 3},
        {"date": (t0 + 2000) as f64 / 1000.0, "log": "retrying payment for order 1001", "level": "warning"}
    ]);
    ingest_json(
        &mut w.c,
        &w.orders,
        &format!("/icp/logs?runtimeId={rt}"),
        &batch,
    );
    // Ballerina JSON log lines from the billing runtime.
    let lines: String = [
        json!({"time": rfc3339(t0 + 3000), "level": "DEBUG", "module": "acme/billing", "message": "invoice 77 drafted", "runtimeId": w.billing.runtime_id, "invoiceId": 77}),
        json!({"time": rfc3339(t0 + 4000), "level": "ERROR", "module": "acme/billing", "message": "payment gateway refused invoice 77", "runtimeId": w.billing.runtime_id}),
    ]
    .iter()
    .map(|l| format!("{l}\n"))
    .collect();
    ingest(
        &mut w.c,
        &w.billing,
        "/icp/logs",
        "application/x-ndjson",
        lines.as_bytes(),
    );
    // OTLP/HTTP JSON logs from the orders runtime.
    let ns = |ms: i64| (ms as u128 * 1_000_000).to_string();
    let otlp = json!({"resourceLogs": [{
    "resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "orders"}},
        {"key": "service.instance.id", "value": {"stringValue": rt}}]},
    "scopeLogs": [{"scope": {"name": "acme.orders"}, "logRecords": [
        {"timeUnixNano": ns(t0 + 5000), "severityText": "WARN", "body": {"stringValue": "inventory sync lagging behind"},
         "attributes": [{"key": "lagSeconds", "value": {"intValue": "42"}}]},
        {"timeUnixNano": ns(t0 + 6000), "severityNumber": 21, "body": {"stringValue": "database unreachable"}}
    ]}]}]});
    ingest_json(&mut w.c, &w.orders, "/v1/logs", &otlp);

    let api = &mut w.admin;
    let all = get(api, "/api/v1/observability/logs");
    assert_eq!(
        messages(&all),
        [
            "database unreachable",
            "inventory sync lagging behind",
            "payment gateway refused invoice 77",
            "invoice 77 drafted",
            "retrying payment for order 1001",
            "payment gateway timed out",
            "order 1001 accepted by the warehouse",
        ],
        "newest first"
    );
    assert_eq!(all["nextCursor"], Value::Null);
    let items = all["items"].as_array().unwrap();
    let mut first = items[6].clone();
    assert!(
        first["id"].as_str().unwrap().parse::<i64>().is_ok(),
        "{first}"
    );
    first["id"] = Value::Null;
    assert_eq!(
        first,
        json!({"id": null, "time": rfc3339(t0), "level": "INFO", "environment": "dev",
               "project": "order-service", "integration": "order-create", "runtimeId": rt,
               "module": null, "message": "order 1001 accepted by the warehouse",
               "attributes": {"pod": "orders-7f9"}})
    );
    assert_eq!(items[5]["level"], "ERROR");
    assert_eq!(items[5]["attributes"], json!({"attempt": 3}));
    assert_eq!(items[4]["level"], "WARN");
    assert_eq!(items[3]["level"], "DEBUG");
    assert_eq!(items[3]["module"], "acme/billing");
    assert_eq!(items[3]["project"], "billing");
    assert_eq!(items[3]["integration"], "invoices");
    assert_eq!(items[3]["runtimeId"], json!(w.billing.runtime_id));
    assert_eq!(items[3]["attributes"], json!({"invoiceId": 77}));
    assert_eq!(items[3]["time"], rfc3339(t0 + 3000));
    assert_eq!(items[1]["module"], "acme.orders");
    assert_eq!(items[1]["runtimeId"], json!(rt));
    assert_eq!(
        items[1]["attributes"],
        json!({"service.name": "orders", "lagSeconds": 42})
    );
    assert_eq!(items[0]["level"], "FATAL");

    let q = |api: &mut ApiClient, query: &str| {
        messages(&get(api, &format!("/api/v1/observability/logs?{query}")))
    };
    assert_eq!(
        q(api, "level=ERROR,fatal"),
        [
            "database unreachable",
            "payment gateway refused invoice 77",
            "payment gateway timed out"
        ]
    );
    assert_eq!(q(api, "project=billing").len(), 2);
    assert_eq!(
        q(api, "project=order-service&integration=order-create").len(),
        5
    );
    assert_eq!(q(api, "environment=dev").len(), 7);
    assert_eq!(q(api, "environment=prod").len(), 0);
    assert_eq!(
        q(api, "project=no-such-project").len(),
        0,
        "an unknown handle matches nothing"
    );
    assert_eq!(
        q(api, &format!("runtime={}", w.billing.runtime_id)).len(),
        2
    );
    assert_eq!(
        q(api, &format!("q={}", enc("payment gateway"))),
        [
            "payment gateway refused invoice 77",
            "payment gateway timed out"
        ]
    );
    assert_eq!(
        q(api, &format!("q={}", enc("gateway payment"))).len(),
        0,
        "a phrase, not words"
    );
    assert_eq!(
        q(api, "q=WAREHOUSE"),
        ["order 1001 accepted by the warehouse"]
    );
    assert_eq!(
        q(
            api,
            &format!("q={}&project=billing&level=ERROR", enc("payment gateway"))
        ),
        ["payment gateway refused invoice 77"]
    );
    // The user's text is never FTS5 syntax.
    for text in [
        "payment OR database",
        "\"",
        "pay*",
        "NEAR(payment gateway)",
        "message:payment",
        "(",
        "-",
    ] {
        let got = q(api, &format!("q={}", enc(text)));
        assert!(got.is_empty(), "{text}: {got:?}");
    }
    // Time range: from inclusive, to exclusive, RFC 3339 or Unix ms.
    assert_eq!(
        q(
            api,
            &format!("from={}&to={}", enc(&rfc3339(t0 + 1000)), t0 + 3000)
        ),
        [
            "retrying payment for order 1001",
            "payment gateway timed out"
        ]
    );
    assert_eq!(
        q(api, &format!("from={}&order=asc&limit=1", t0 + 5000)),
        ["inventory sync lagging behind"]
    );

    for (query, what) in [
        ("level=LOUD", "level 'LOUD'"),
        ("integration=order-create", "integration needs project"),
        ("cursor=zz", "invalid cursor"),
        ("limit=0", "limit must be"),
        ("limit=501", "limit must be"),
        ("order=up", "order 'up'"),
        ("from=yesterday", "from 'yesterday'"),
    ] {
        let r = api.get(&format!("/api/v1/observability/logs?{query}"));
        assert_error(&r, 400, "bad_request");
        let m = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(m.contains(what), "{query}: {m}");
    }
}

#[test]
fn cursor_pages_through_both_orders_and_a_time_range() {
    let mut w = world();
    let t0 = now_ms() - 120_000;
    let batch: Vec<Value> = (0..25)
        .map(|i| {
            json!({"date": (t0 + i * 1000) as f64 / 1000.0, "log": format!("step {i} of the nightly export"),
                   "level": if i % 3 == 0 { "error" } else { "info" }})
        })
        .collect();
    ingest_json(
        &mut w.c,
        &w.orders,
        &format!("/icp/logs?runtimeId={}", w.orders.runtime_id),
        &Value::from(batch),
    );
    let step = |i: i64| format!("step {i} of the nightly export");
    let api = &mut w.admin;
    for query in [
        "order=desc",
        "order=desc&q=nightly+export",
        "order=desc&project=order-service",
    ] {
        let want: Vec<String> = (0..25).rev().map(step).collect();
        assert_eq!(all_pages(api, query, 7), want, "{query}");
    }
    for query in [
        "order=asc",
        "order=asc&q=nightly%20export",
        "order=asc&environment=dev",
    ] {
        let want: Vec<String> = (0..25).map(step).collect();
        assert_eq!(all_pages(api, query, 4), want, "{query}");
    }
    // A time range with levels and a phrase, paged.
    let query = format!(
        "order=asc&level=ERROR&q=export&from={}&to={}",
        enc(&rfc3339(t0 + 5000)),
        enc(&rfc3339(t0 + 20_000))
    );
    assert_eq!(all_pages(api, &query, 2), [6, 9, 12, 15, 18].map(step));
    // A page that ends exactly at the last record has no cursor.
    let page = get(api, "/api/v1/observability/logs?limit=25");
    assert_eq!(
        (page["items"].as_array().unwrap().len(), &page["nextCursor"]),
        (25, &Value::Null)
    );
}

/// Ships one Fluent Bit batch from the orders runtime: each record
/// `(ms after t0, name)` with the message "record NAME of a late batch".
fn ship(w: &mut World, t0: i64, records: &[(i64, &str)]) {
    let batch: Vec<Value> = records
        .iter()
        .map(|(at, name)| {
            json!({"date": (t0 + at) as f64 / 1000.0, "log": format!("record {name} of a late batch"),
                   "level": "info"})
        })
        .collect();
    ingest_json(
        &mut w.c,
        &w.orders,
        &format!("/icp/logs?runtimeId={}", w.orders.runtime_id),
        &Value::from(batch),
    );
}

/// The record names of a page (see [`ship`]) and its cursor.
fn page_of(
    api: &mut ApiClient,
    query: &str,
    cursor: Option<&str>,
) -> (Vec<String>, Option<String>) {
    let mut path = format!("/api/v1/observability/logs?{query}");
    if let Some(c) = cursor {
        path.push_str(&format!("&cursor={}", enc(c)));
    }
    let page = get(api, &path);
    let names = messages(&page)
        .iter()
        .map(|m| m.split(' ').nth(1).unwrap().to_string())
        .collect();
    (names, page["nextCursor"].as_str().map(str::to_string))
}

/// Pages through `query` to its end from `cursor`: the record names.
fn rest(api: &mut ApiClient, query: &str, mut cursor: Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let (names, next) = page_of(api, query, cursor.as_deref());
        out.extend(names);
        match next {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|n| n.to_string()).collect()
}

fn reversed(list: &[&str]) -> Vec<String> {
    list.iter().rev().map(|n| n.to_string()).collect()
}

/// Issue 13: logs come out by their own time, not as they arrived. A batch
/// older than what is stored sorts below it; records of one millisecond
/// keep their arrival order, also across a page boundary; and a late
/// batch shipped between two page fetches is in a later page exactly when
/// its time lies beyond the cursor, never twice, skipping nothing (the
/// semantics `telemetry::query` documents). Every plan is exercised: no
/// filter (the primary key), a phrase (FTS5), a scope (an index, sorted).
#[test]
fn logs_are_ordered_by_their_own_time_across_late_batches_and_ties() {
    let mut w = world();
    let t0 = now_ms() - 600_000;
    ship(
        &mut w,
        t0,
        &[
            (10_000, "a1"),
            (10_000, "a2"),
            (10_000, "a3"),
            (20_000, "a4"),
            (30_000, "a5"),
            (30_000, "a6"),
        ],
    );
    // Late: older than everything stored, with a tie of its own.
    ship(&mut w, t0, &[(1_000, "b1"), (5_000, "b2"), (5_000, "b3")]);
    let oldest_first = ["b1", "b2", "b3", "a1", "a2", "a3", "a4", "a5", "a6"];
    let api = &mut w.admin;
    for filter in ["", "&q=late+batch", "&project=order-service", "&level=INFO"] {
        for limit in [2, 3, 100] {
            // Limits 2 and 3 put page boundaries inside the ties a1-a3 and b2-b3.
            let asc = format!("order=asc&limit={limit}{filter}");
            assert_eq!(rest(api, &asc, None), names(&oldest_first), "{asc}");
            let desc = format!("order=desc&limit={limit}{filter}");
            assert_eq!(rest(api, &desc, None), reversed(&oldest_first), "{desc}");
        }
    }
    let (first, _) = page_of(api, "limit=1", None);
    assert_eq!(first, ["a6"], "newest first by default");

    // Newest first, primary-key walk: a late batch between two fetches.
    let (page, cursor) = page_of(api, "order=desc&limit=3", None);
    assert_eq!(page, ["a6", "a5", "a4"]);
    ship(
        &mut w,
        t0,
        &[
            (25_000, "c-passed"), // newer than the cursor (a4): already paged past
            (15_000, "c1"),
            (10_000, "c2"), // a1-a3's millisecond, arrived after them
            (2_000, "c3"),
        ],
    );
    let api = &mut w.admin;
    assert_eq!(
        rest(api, "order=desc&limit=3", cursor),
        names(&["c1", "c2", "a3", "a2", "a1", "b3", "b2", "c3", "b1"])
    );

    // Oldest first, FTS5: another late batch between two fetches.
    let query = "order=asc&limit=3&q=late+batch";
    let (page, cursor) = page_of(api, query, None);
    assert_eq!(page, ["b1", "c3", "b2"]);
    ship(
        &mut w,
        t0,
        &[
            (4_000, "d-passed"), // older than the cursor (b2): already paged past
            (5_000, "d1"),       // b2's millisecond, arrived after it: beyond the cursor
            (12_000, "d2"),
        ],
    );
    let api = &mut w.admin;
    assert_eq!(
        rest(api, query, cursor),
        names(&["b3", "d1", "a1", "a2", "a3", "c2", "d2", "c1", "a4", "c-passed", "a5", "a6"])
    );

    // Everything, every way, and the download in the same order.
    let everything = [
        "b1", "c3", "d-passed", "b2", "b3", "d1", "a1", "a2", "a3", "c2", "d2", "c1", "a4",
        "c-passed", "a5", "a6",
    ];
    for filter in ["", "&q=late+batch", "&project=order-service"] {
        let asc = format!("order=asc&limit=4{filter}");
        assert_eq!(rest(api, &asc, None), names(&everything), "{asc}");
        let desc = format!("order=desc&limit=5{filter}");
        assert_eq!(rest(api, &desc, None), reversed(&everything), "{desc}");
    }
    for (order, want) in [("asc", names(&everything)), ("desc", reversed(&everything))] {
        let r = api.get(&format!(
            "/api/v1/observability/logs/download?order={order}&format=text"
        ));
        assert_eq!(r.status, 200);
        let got: Vec<String> = String::from_utf8(r.body)
            .unwrap()
            .lines()
            .map(|l| {
                l.split(": record ")
                    .nth(1)
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(got, want, "download order={order}");
    }
}

/// The ⌈q·n⌉-th smallest (q in percent), as a test should compute it.
fn nearest_rank(sorted: &[f64], q: usize) -> Value {
    if sorted.is_empty() {
        return Value::Null;
    }
    let rank = (q * sorted.len()).div_ceil(100).max(1);
    json!(sorted[rank - 1])
}

/// The POINT fields of these (status, ms) requests.
fn figures(requests: &[(u16, f64)]) -> Value {
    let mut ms: Vec<f64> = requests.iter().map(|r| r.1).collect();
    ms.sort_by(f64::total_cmp);
    let n = requests.len();
    let e4 = requests
        .iter()
        .filter(|r| (400..500).contains(&r.0))
        .count();
    let e5 = requests
        .iter()
        .filter(|r| (500..600).contains(&r.0))
        .count();
    let rate = |e: usize| if n == 0 { 0.0 } else { e as f64 / n as f64 };
    json!({
        "requests": n, "errors4xx": e4, "errors5xx": e5,
        "errorRate4xx": rate(e4), "errorRate5xx": rate(e5),
        "latencyMeanMs": if n == 0 { Value::Null } else { json!(ms.iter().sum::<f64>() / n as f64) },
        "latencyP50Ms": nearest_rank(&ms, 50),
        "latencyP95Ms": nearest_rank(&ms, 95),
        "latencyP99Ms": nearest_rank(&ms, 99),
    })
}

fn without_time(point: &Value) -> Value {
    let mut p = point.clone();
    p.as_object_mut().unwrap().remove("time");
    p
}

#[test]
fn request_metrics_and_otlp_points_match_what_was_sent() {
    let mut w = world();
    let base = (now_ms() - 30 * 60_000) / 60_000 * 60_000;
    // Minute 0 and 1: GET /orders, 1..=40 ms, in a scrambled order, with
    // 404s, 500s and a 503; minute 2: POST /orders/{id}, 100..=1000 ms, one
    // 400; minute 3: nothing. Billing's requests are elsewhere.
    let mut sent: Vec<(i64, &str, &str, u16, f64)> = Vec::new();
    for k in 0..40i64 {
        let ms = ((k * 17) % 40 + 1) as f64;
        let status = match k % 10 {
            3 => 404,
            7 if k < 20 => 500,
            7 => 503,
            _ => 200,
        };
        sent.push((
            base + (k % 2) * 60_000 + k * 100,
            "/orders",
            "GET",
            status,
            ms,
        ));
    }
    for k in 0..10i64 {
        let status = if k == 4 { 400 } else { 201 };
        sent.push((
            base + 120_000 + k * 500,
            "/orders/{id}",
            "POST",
            status,
            (k + 1) as f64 * 100.0,
        ));
    }
    let records: Vec<Value> = sent
        .iter()
        .map(|(t, resource, method, status, ms)| {
            json!({"time": t, "service": "orders", "resource": resource, "method": method,
                   "statusCode": status, "responseTimeMs": ms})
        })
        .collect();
    let r = ingest_json(
        &mut w.c,
        &w.orders,
        &format!("/icp/metrics?runtimeId={}", w.orders.runtime_id),
        &Value::from(records),
    );
    assert_eq!(r["accepted"], 50);
    let billing = json!([{"time": base + 1000, "service": "billing", "resource": "/invoices", "method": "GET",
                          "statusCode": 500, "responseTimeMs": 5000}]);
    ingest_json(&mut w.c, &w.billing, "/icp/metrics", &billing);

    let window = format!(
        "from={}&to={}&step=1m",
        enc(&rfc3339(base)),
        enc(&rfc3339(base + 240_000))
    );
    let api = &mut w.admin;
    let m = get(
        api,
        &format!(
            "/api/v1/observability/metrics?project=order-service&integration=order-create&{window}"
        ),
    );
    assert_eq!(m["from"], rfc3339(base));
    assert_eq!(m["to"], rfc3339(base + 240_000));
    assert_eq!(m["stepSeconds"], 60);
    let series = m["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{m}");
    let s = &series[0];
    assert_eq!(
        (&s["service"], &s["resource"], &s["method"]),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    let in_minute = |minute: i64| -> Vec<(u16, f64)> {
        sent.iter()
            .filter(|r| (r.0 - base) / 60_000 == minute)
            .map(|r| (r.3, r.4))
            .collect()
    };
    let points = s["points"].as_array().unwrap();
    assert_eq!(points.len(), 4, "every bucket present");
    for (minute, p) in points.iter().enumerate() {
        assert_eq!(p["time"], rfc3339(base + minute as i64 * 60_000));
        assert_eq!(
            without_time(p),
            figures(&in_minute(minute as i64)),
            "minute {minute}"
        );
    }
    let every: Vec<(u16, f64)> = sent.iter().map(|r| (r.3, r.4)).collect();
    assert_eq!(s["total"], figures(&every));
    // Spot checks that do not go through `figures`.
    assert_eq!(points[3]["requests"], 0);
    assert_eq!(points[3]["latencyP95Ms"], Value::Null);
    assert_eq!(s["total"]["requests"], 50);
    assert_eq!(s["total"]["errors4xx"], 5);
    assert_eq!(s["total"]["errors5xx"], 4);

    // One series per service, resource and method.
    let m = get(
        api,
        &format!("/api/v1/observability/metrics?groupBy=resource&{window}"),
    );
    let keys: Vec<(Value, Value, Value, Value)> = m["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["service"].clone(),
                s["resource"].clone(),
                s["method"].clone(),
                s["total"]["requests"].clone(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            (json!("billing"), json!("/invoices"), json!("GET"), json!(1)),
            (json!("orders"), json!("/orders"), json!("GET"), json!(40)),
            (
                json!("orders"),
                json!("/orders/{id}"),
                json!("POST"),
                json!(10)
            ),
        ]
    );
    let posts: Vec<(u16, f64)> = sent
        .iter()
        .filter(|r| r.2 == "POST")
        .map(|r| (r.3, r.4))
        .collect();
    assert_eq!(m["series"][2]["total"], figures(&posts));
    // Filters by service and resource.
    let m = get(
        api,
        &format!(
            "/api/v1/observability/metrics?service=orders&resource={}&{window}",
            enc("/orders/{id}")
        ),
    );
    assert_eq!(m["series"][0]["total"]["requests"], 10);
    assert_eq!(m["series"][0]["resource"], "/orders/{id}");
    // The default window is the last hour, in at most 120 buckets.
    let m = get(api, "/api/v1/observability/metrics");
    let n = m["series"][0]["points"].as_array().unwrap().len();
    assert_eq!((n, &m["stepSeconds"]), (120, &json!(30)), "{n} buckets");
    assert_eq!(m["series"][0]["total"]["requests"], 51);
    // A request for too many buckets is refused with a reason.
    let r = api.get(&format!(
        "/api/v1/observability/metrics?step=1s&from={}&to={}",
        base,
        base + 3_600_000
    ));
    assert_error(&r, 400, "bad_request");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("3600 buckets"));
    for bad in ["step=5x", "groupBy=runtime", "from=later"] {
        assert_error(
            &api.get(&format!("/api/v1/observability/metrics?{bad}")),
            400,
            "bad_request",
        );
    }

    // OTLP metrics.
    let now = now_ms();
    let ns = (now as u128 * 1_000_000).to_string();
    let otlp = json!({"resourceMetrics": [{
    "resource": {"attributes": [{"key": "service.instance.id", "value": {"stringValue": w.orders.runtime_id}}]},
    "scopeMetrics": [{"metrics": [
        {"name": "http.server.requests", "unit": "1", "sum": {"aggregationTemporality": 2, "isMonotonic": true,
            "dataPoints": [{"timeUnixNano": ns, "asInt": "17",
                            "attributes": [{"key": "http.route", "value": {"stringValue": "/orders"}}]}]}},
        {"name": "http.server.duration", "unit": "ms", "histogram": {"aggregationTemporality": 2, "dataPoints": [
            {"timeUnixNano": ns, "count": "6", "sum": 123.5,
             "explicitBounds": [10, 50, 100], "bucketCounts": ["1", "3", "1", "1"]}]}}
    ]}]}]});
    ingest_json(&mut w.c, &w.orders, "/v1/metrics", &otlp);
    let names = get(api, "/api/v1/observability/metric-names");
    assert_eq!(
        names,
        json!({"items": ["http.server.duration", "http.server.requests"]})
    );
    let points = get(
        api,
        "/api/v1/observability/metric-points?name=http.server.duration&project=order-service",
    );
    assert_eq!(
        points,
        json!({"items": [{
            "time": rfc3339(now), "name": "http.server.duration", "kind": "histogram", "unit": "ms",
            "attributes": {}, "value": null, "count": 6, "sum": 123.5,
            "bounds": [10.0, 50.0, 100.0], "buckets": [1, 3, 1, 1],
            "environment": "dev", "project": "order-service", "integration": "order-create",
            "runtimeId": w.orders.runtime_id
        }]})
    );
    let points = get(
        api,
        "/api/v1/observability/metric-points?name=http.server.requests",
    );
    assert_eq!(points["items"][0]["value"], 17.0);
    assert_eq!(points["items"][0]["kind"], "sum");
    assert_eq!(
        points["items"][0]["attributes"],
        json!({"http.route": "/orders"})
    );
    assert_eq!(
        get(
            api,
            "/api/v1/observability/metric-points?name=http.server.requests&project=billing"
        ),
        json!({"items": []})
    );
    assert_error(
        &api.get("/api/v1/observability/metric-points"),
        400,
        "bad_request",
    );
}

#[test]
fn callers_see_only_what_they_may_view() {
    let mut w = world();
    let t0 = now_ms() - 10_000;
    ingest_json(
        &mut w.c,
        &w.orders,
        &format!("/icp/logs?runtimeId={}", w.orders.runtime_id),
        &json!([{"date": t0 as f64 / 1000.0, "log": "orders secret sauce", "level": "info"}]),
    );
    ingest_json(
        &mut w.c,
        &w.billing,
        &format!("/icp/logs?runtimeId={}", w.billing.runtime_id),
        &json!([{"date": (t0 + 1) as f64 / 1000.0, "log": "billing run finished", "level": "info"}]),
    );
    ingest_json(
        &mut w.c,
        &w.orders,
        "/icp/metrics",
        &json!([{"time": t0, "service": "orders", "resource": "/orders", "method": "GET", "statusCode": 200, "responseTimeMs": 3}]),
    );
    // A user with project:view everywhere but no observability:view.
    let r = w.admin.post(
        "/api/v1/roles",
        &json!({"name": "Catalog reader", "permissions": ["project:view", "integration:view"]}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let mut reader = w.s.api_as("rita", Some("Catalog reader"));
    for path in [
        "/api/v1/observability/logs",
        "/api/v1/observability/logs/download",
        "/api/v1/observability/metrics",
        "/api/v1/observability/metric-names",
        "/api/v1/observability/metric-points?name=x",
    ] {
        let r = reader.get(path);
        assert_error(&r, 403, "forbidden");
        assert!(r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("observability:view"));
    }
    let refused = tail(&w.s, &reader.token, "/api/v1/observability/logs/tail");
    assert_eq!(refused.err(), Some(403));

    // A Viewer of the billing project only.
    let mut bill = w.s.api_as("bill", None);
    let r = w.admin.post(
        "/api/v1/role-assignments",
        &json!({"role": "Viewer", "user": "bill", "scope": {"type": "project", "project": "billing"}}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let logs = get(&mut bill, "/api/v1/observability/logs");
    assert_eq!(messages(&logs), ["billing run finished"]);
    assert!(messages(&get(
        &mut bill,
        "/api/v1/observability/logs?project=order-service"
    ))
    .is_empty());
    assert!(messages(&get(&mut bill, "/api/v1/observability/logs?q=secret+sauce")).is_empty());
    let d = bill.get("/api/v1/observability/logs/download");
    assert_eq!(d.status, 200);
    assert!(!String::from_utf8_lossy(&d.body).contains("secret sauce"));
    let m = get(&mut bill, "/api/v1/observability/metrics");
    assert_eq!(m["series"][0]["total"]["requests"], 0);
    let m = get(&mut w.admin, "/api/v1/observability/metrics");
    assert_eq!(m["series"][0]["total"]["requests"], 1);

    // The tail: bill's stream never gets the orders record published
    // before billing's own (frames of one stream keep their order).
    let mut stream = tail(&w.s, &bill.token, "/api/v1/observability/logs/tail").unwrap();
    let t1 = now_ms();
    ingest_json(
        &mut w.c,
        &w.orders,
        "/icp/logs",
        &json!([{"date": t1 as f64 / 1000.0, "log": "orders private detail", "level": "error"}]),
    );
    ingest_json(
        &mut w.c,
        &w.billing,
        "/icp/logs",
        &json!([{"date": t1 as f64 / 1000.0, "log": "billing visible detail", "level": "error"}]),
    );
    let f = stream.event(SOON);
    assert_eq!(
        (f.event.as_str(), &f.data["message"]),
        ("log", &json!("billing visible detail"))
    );
    // A permission change ends the stream (it filters with the grants it
    // opened with); the client reconnects and is authorized afresh.
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        w.admin
            .delete(&format!("/api/v1/role-assignments/{id}"))
            .status,
        204
    );
    assert!(
        stream.closed_within(SOON),
        "the tail outlived the role assignment"
    );
    let refused = tail(&w.s, &bill.token, "/api/v1/observability/logs/tail");
    assert_eq!(refused.err(), Some(403));
}

#[test]
fn records_without_a_project_are_seen_only_through_the_environment() {
    let mut w = world();
    // An environment-wide ingest token, and a record that names no runtime.
    let token =
        w.s.cli_json(&["ingest-token", "create", "--env", "dev", "--json"]);
    let token = token["token"].as_str().unwrap().to_string();
    let auth = format!("Bearer {token}");
    let body = json!([{"log": "node disk almost full", "level": "warn"}]).to_string();
    let r =
        w.c.request(
            "POST",
            "/icp/logs",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
        .unwrap();
    assert_eq!(r.json()["accepted"], 1, "{}", r.json());
    ingest_json(
        &mut w.c,
        &w.billing,
        &format!("/icp/logs?runtimeId={}", w.billing.runtime_id),
        &json!([{"log": "billing run finished", "level": "info"}]),
    );
    let page = get(&mut w.admin, "/api/v1/observability/logs?level=WARN");
    assert_eq!(messages(&page), ["node disk almost full"]);
    assert_eq!(
        (
            &page["items"][0]["project"],
            &page["items"][0]["integration"],
            &page["items"][0]["runtimeId"]
        ),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    let assign = |w: &mut World, user: &str, scope: Value| {
        let r = w.admin.post(
            "/api/v1/role-assignments",
            &json!({"role": "Viewer", "user": user, "scope": scope}),
        );
        assert_eq!(r.status, 201, "{}", r.json());
    };
    let mut project_viewer = w.s.api_as("pat", None);
    assign(
        &mut w,
        "pat",
        json!({"type": "project", "project": "billing"}),
    );
    let mut env_viewer = w.s.api_as("eve", None);
    assign(
        &mut w,
        "eve",
        json!({"type": "environment", "environment": "dev"}),
    );
    let mut prod_viewer = w.s.api_as("pete", None);
    assign(
        &mut w,
        "pete",
        json!({"type": "environment", "environment": "prod"}),
    );
    assert_eq!(
        messages(&get(&mut project_viewer, "/api/v1/observability/logs")),
        ["billing run finished"]
    );
    assert_eq!(
        messages(&get(&mut env_viewer, "/api/v1/observability/logs")),
        ["billing run finished", "node disk almost full"]
    );
    assert!(messages(&get(&mut prod_viewer, "/api/v1/observability/logs")).is_empty());
}

#[test]
fn the_live_tail_streams_records_ingested_after_it_opened() {
    let mut w = world();
    ingest_json(
        &mut w.c,
        &w.orders,
        "/icp/logs",
        &json!([{"log": "before the tail opened", "level": "error"}]),
    );
    let token = w.admin.token.clone();
    let mut errors = tail(&w.s, &token, "/api/v1/observability/logs/tail?level=ERROR").unwrap();
    assert_eq!(
        errors.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    assert_eq!(errors.header("cache-control").as_deref(), Some("no-store"));
    let mut declined = tail(
        &w.s,
        &token,
        &format!(
            "/api/v1/observability/logs/tail?project=order-service&q={}",
            enc("Card Declined")
        ),
    )
    .unwrap();
    let mut billing = tail(
        &w.s,
        &token,
        "/api/v1/observability/logs/tail?project=billing",
    )
    .unwrap();
    let t = now_ms();
    let rt = w.orders.runtime_id.clone();
    ingest_json(
        &mut w.c,
        &w.orders,
        &format!("/icp/logs?runtimeId={rt}"),
        &json!([
            {"date": t as f64 / 1000.0, "log": "an ordinary day", "level": "info"},
            {"date": (t + 1) as f64 / 1000.0, "log": "payment for order 9: card declined", "level": "error", "orderId": 9}
        ]),
    );
    let Frame { event, id, data } = errors.event(SOON);
    assert_eq!(event, "log");
    assert_eq!(data["id"], json!(id));
    let mut item = data.clone();
    item["id"] = Value::Null;
    assert_eq!(
        item,
        json!({"id": null, "time": rfc3339(t + 1), "level": "ERROR", "environment": "dev",
               "project": "order-service", "integration": "order-create", "runtimeId": rt,
               "module": null, "message": "payment for order 9: card declined",
               "attributes": {"orderId": 9}})
    );
    // The same record through the query API.
    let page = get(&mut w.admin, "/api/v1/observability/logs?limit=1");
    assert_eq!(page["items"][0], data);
    let data = declined.event(SOON).data;
    assert_eq!(data["message"], "payment for order 9: card declined");
    // Billing's tail got nothing of orders: its first record is billing's.
    ingest_json(
        &mut w.c,
        &w.billing,
        "/icp/logs",
        &json!([{"log": "invoice run", "level": "info"}]),
    );
    let data = billing.event(SOON).data;
    assert_eq!(data["message"], "invoice run");
    assert_eq!(data["integration"], "invoices");
}

#[test]
fn downloads_hold_the_records_as_ndjson_or_text() {
    let mut w = world();
    let t0 = now_ms() - 60_000;
    let batch: Vec<Value> = (0..30)
        .map(|i| json!({"date": (t0 + i) as f64 / 1000.0, "log": format!("line {i}\nwith a second line"), "level": "info"}))
        .collect();
    ingest_json(
        &mut w.c,
        &w.orders,
        &format!("/icp/logs?runtimeId={}", w.orders.runtime_id),
        &Value::from(batch),
    );
    let r = w.admin.get("/api/v1/observability/logs/download?order=asc");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let disposition = r.header("content-disposition").unwrap().to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"icpd-logs-")
            && disposition.ends_with(".ndjson\""),
        "{disposition}"
    );
    let text = String::from_utf8(r.body.clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 30);
    assert_eq!(lines[0]["message"], "line 0\nwith a second line");
    assert_eq!(lines[29]["message"], "line 29\nwith a second line");
    assert_eq!(lines[0]["integration"], "order-create");
    // The same items as the query API.
    let page = get(
        &mut w.admin,
        "/api/v1/observability/logs?order=asc&limit=30",
    );
    assert_eq!(page["items"], Value::from(lines));

    let r = w
        .admin
        .get("/api/v1/observability/logs/download?format=text&limit=2");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(r.header("content-disposition").unwrap().ends_with(".log\""));
    let text = String::from_utf8(r.body.clone()).unwrap();
    let want = format!(
        "{} INFO  dev/order-service/order-create {} -: line 29\nwith a second line\n",
        rfc3339(t0 + 29),
        w.orders.runtime_id
    );
    assert!(text.starts_with(&want), "{text}");
    assert!(text.contains("line 28"));
    assert!(!text.contains("line 27"));
    assert_error(
        &w.admin
            .get("/api/v1/observability/logs/download?format=xml"),
        400,
        "bad_request",
    );
    assert_error(
        &w.admin
            .get("/api/v1/observability/logs/download?limit=100001"),
        400,
        "bad_request",
    );
}

#[test]
fn every_observability_route_is_in_the_openapi_document() {
    let s = TestServer::start(&[]);
    let doc = s.openapi_document();
    for (path, param) in [
        ("/api/v1/observability/logs", "cursor"),
        ("/api/v1/observability/logs/tail", "level"),
        ("/api/v1/observability/logs/download", "format"),
        ("/api/v1/observability/metrics", "groupBy"),
        ("/api/v1/observability/metric-points", "name"),
        ("/api/v1/observability/metric-names", "environment"),
    ] {
        let op = &doc["paths"][path]["get"];
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{path}"
        );
        assert!(
            op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == param),
            "{path} lacks {param}"
        );
    }
}
