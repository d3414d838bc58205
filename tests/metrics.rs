//! `GET /metrics`: the exposition must parse as Prometheus text format
//! 0.0.4 under a strict parser written here (not the server's own code),
//! and its numbers must follow what the test did: heartbeats by kind and
//! outcome, runtimes by status, request histograms per route pattern,
//! self-preservation, and who may read it with `[metrics] require_auth`.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::harness::{
    assert_ack, assert_error, session_cookie, wait_for, ApiClient, Bridge, TestDir, TestServer,
    TEST_PASSWORD,
};

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

// ------------------------------------------------------------------ parser

/// One sample line.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition.
#[derive(Debug)]
struct Exposition {
    /// Family name → type.
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// A float as the format allows it: decimal (with optional exponent),
/// `+Inf`, `-Inf` or `NaN`, nothing else (no `inf`, `nan`, `0x..`).
fn parse_float(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        "NaN" => return Ok(f64::NAN),
        _ => {}
    }
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |d: &str| d.chars().all(|c| c.is_ascii_digit());
    let ok_mantissa = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let ok_exponent = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    if !(ok_mantissa && ok_exponent) {
        return Err(format!("not a float: {s:?}"));
    }
    s.parse().map_err(|e| format!("not a float: {s:?} ({e})"))
}

/// Undoes `\\`, `\"` (labels only) and `\n`; any other escape is an error.
fn unescape(s: &str, quotes: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            other => return Err(format!("bad escape \\{other:?} in {s:?}")),
        }
    }
    Ok(out)
}

/// `{a="x",b="y"}` (the braces already removed): the labels, in order.
fn parse_labels(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut labels = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| format!("label without =\"value\": {rest:?}"))?;
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        // The value runs to the first quote that is not escaped.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = Some(i);
                    break;
                }
                '\n' => return Err("raw line feed in a label value".into()),
                _ => {}
            }
        }
        let end = end.ok_or_else(|| format!("unterminated label value in {s:?}"))?;
        labels.push((name.to_string(), unescape(&after[..end], true)?));
        rest = &after[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.is_empty() {
            return Err(format!("expected ',' between labels in {s:?}"));
        }
    }
    Ok(labels)
}

/// The family a sample name belongs to, given the declared types.
fn family_of(name: &str, types: &BTreeMap<String, String>) -> Option<String> {
    if types.contains_key(name) {
        return Some(name.to_string());
    }
    for (suffix, kinds) in [
        ("_bucket", &["histogram"][..]),
        ("_sum", &["histogram", "summary"][..]),
        ("_count", &["histogram", "summary"][..]),
    ] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).is_some_and(|t| kinds.contains(&t.as_str())) {
                return Some(base.to_string());
            }
        }
    }
    None
}

/// Parses and checks the whole text; the first problem is the error.
fn parse(text: &str) -> Result<Exposition, String> {
    if !text.ends_with('\n') {
        return Err("the last line must end with a line feed".into());
    }
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps = HashSet::new();
    let mut samples = Vec::new();
    let mut series = HashSet::new();
    // Families must each be one group of lines.
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut enter = |family: &str, current: &mut Option<String>| -> Result<(), String> {
        if current.as_deref() != Some(family) {
            if finished.contains(family) {
                return Err(format!("family {family} appears in two groups"));
            }
            if let Some(prev) = current.take() {
                finished.insert(prev);
            }
            *current = Some(family.to_string());
        }
        Ok(())
    };
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if let Some(comment) = line.strip_prefix("# ") {
            let (keyword, rest) = comment
                .split_once(' ')
                .ok_or_else(|| at("bad comment".into()))?;
            let (name, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            if !is_metric_name(name) {
                return Err(at(format!("bad metric name {name:?}")));
            }
            enter(name, &mut current).map_err(at)?;
            match keyword {
                "HELP" => {
                    unescape(arg, false).map_err(at)?;
                    if !helps.insert(name.to_string()) {
                        return Err(at("second HELP".into()));
                    }
                }
                "TYPE" => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg) {
                        return Err(at(format!("bad type {arg:?}")));
                    }
                    if samples.iter().any(|s: &Sample| {
                        family_of(&s.name, &types).as_deref() == Some(name) || s.name == name
                    }) {
                        return Err(at("TYPE after samples".into()));
                    }
                    if types.insert(name.to_string(), arg.to_string()).is_some() {
                        return Err(at("second TYPE".into()));
                    }
                }
                _ => return Err(at("only HELP and TYPE comments are expected".into())),
            }
            continue;
        }
        let (name, labels, rest) = match line.find(['{', ' ']) {
            Some(i) if line.as_bytes()[i] == b'{' => {
                let close = line
                    .rfind('}')
                    .ok_or_else(|| at("no closing brace".into()))?;
                (
                    &line[..i],
                    parse_labels(&line[i + 1..close]).map_err(at)?,
                    &line[close + 1..],
                )
            }
            Some(i) => (&line[..i], Vec::new(), &line[i..]),
            None => return Err(at("a sample needs a value".into())),
        };
        if !is_metric_name(name) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        let parts: Vec<&str> = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("expected one space before the value".into()))?
            .split(' ')
            .collect();
        let value = match parts[..] {
            [v] => parse_float(v),
            [v, ts] => ts
                .parse::<i64>()
                .map_err(|_| format!("bad timestamp {ts:?}"))
                .and_then(|_| parse_float(v)),
            _ => Err("expected a value and an optional timestamp".into()),
        }
        .map_err(at)?;
        let family =
            family_of(name, &types).ok_or_else(|| at("sample of a family with no TYPE".into()))?;
        enter(&family, &mut current).map_err(at)?;
        let mut map = BTreeMap::new();
        for (k, v) in labels {
            if map.insert(k.clone(), v).is_some() {
                return Err(at(format!("label {k} twice")));
            }
        }
        let kind = types[&family].as_str();
        if kind == "counter" && (value.is_nan() || value < 0.0) {
            return Err(at("a counter must be a number 0 or more".into()));
        }
        if kind == "histogram" && name.ends_with("_bucket") != map.contains_key("le") {
            return Err(at("le belongs on _bucket lines and only there".into()));
        }
        if !series.insert((name.to_string(), map.clone())) {
            return Err(at("duplicate series".into()));
        }
        samples.push(Sample {
            name: name.to_string(),
            labels: map,
            value,
        });
    }
    let e = Exposition { types, samples };
    e.check_histograms()?;
    Ok(e)
}

impl Exposition {
    /// Every histogram series: buckets in increasing `le`, cumulative
    /// counts that never fall, `+Inf` last and equal to `_count`, a `_sum`.
    fn check_histograms(&self) -> Result<(), String> {
        for (family, _) in self.types.iter().filter(|(_, t)| *t == "histogram") {
            let mut by_series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> =
                BTreeMap::new();
            for s in self
                .samples
                .iter()
                .filter(|s| s.name == format!("{family}_bucket"))
            {
                let mut key = s.labels.clone();
                let le = parse_float(&key.remove("le").unwrap())?;
                by_series.entry(key).or_default().push((le, s.value));
            }
            for (labels, buckets) in &by_series {
                let what = format!("{family}{labels:?}");
                for w in buckets.windows(2) {
                    if w[0].0.partial_cmp(&w[1].0) != Some(std::cmp::Ordering::Less) {
                        return Err(format!("{what}: le not increasing: {buckets:?}"));
                    }
                    if w[1].1 < w[0].1 {
                        return Err(format!("{what}: buckets not cumulative: {buckets:?}"));
                    }
                }
                let (le, inf) = *buckets.last().unwrap();
                if le != f64::INFINITY {
                    return Err(format!("{what}: no +Inf bucket"));
                }
                let count = self.get(&format!("{family}_count"), labels);
                if count != Some(inf) {
                    return Err(format!("{what}: +Inf {inf} but _count {count:?}"));
                }
                if self.get(&format!("{family}_sum"), labels).is_none() {
                    return Err(format!("{what}: no _sum"));
                }
            }
            // A _count without buckets would be a series the loop above missed.
            for s in self
                .samples
                .iter()
                .filter(|s| s.name == format!("{family}_count"))
            {
                if !by_series.contains_key(&s.labels) {
                    return Err(format!("{family}{:?}: _count without buckets", s.labels));
                }
            }
        }
        Ok(())
    }

    fn get(&self, name: &str, labels: &BTreeMap<String, String>) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && &s.labels == labels)
            .map(|s| s.value)
    }

    /// The value of the series with exactly these labels.
    #[track_caller]
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.get(name, &labels)
            .unwrap_or_else(|| panic!("no series {name}{labels:?}"))
    }

    /// Like [`Exposition::value`], 0 when the series does not exist yet.
    fn value_or_zero(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.get(name, &labels).unwrap_or(0.0)
    }
}

#[test]
fn the_parser_is_strict() {
    let good = "# HELP a_total Things \\\\ done.\\nSecond line.\n# TYPE a_total counter\n\
                a_total{k=\"q\\\"uote\\\\ \\n\",j=\"\"} 3 1700000000000\n\
                # TYPE h histogram\n\
                h_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.7\nh_count 2\n\
                # TYPE g gauge\ng -1.5e-3\ng{x=\"1\"} NaN\n";
    let e = parse(good).unwrap();
    assert_eq!(e.value("a_total", &[("k", "q\"uote\\ \n"), ("j", "")]), 3.0);
    assert_eq!(e.value("g", &[]), -0.0015);
    let bad = [
        ("no type", "a 1\n"),
        ("no final line feed", "# TYPE a gauge\na 1"),
        ("bad name", "# TYPE 1a gauge\n1a 1\n"),
        ("bad label name", "# TYPE a gauge\na{1x=\"v\"} 1\n"),
        ("reserved label name", "# TYPE a gauge\na{__x=\"v\"} 1\n"),
        ("bad escape", "# TYPE a gauge\na{x=\"\\t\"} 1\n"),
        ("unquoted value", "# TYPE a gauge\na{x=v} 1\n"),
        ("lowercase inf", "# TYPE a gauge\na inf\n"),
        ("hex", "# TYPE a gauge\na 0x10\n"),
        ("two spaces", "# TYPE a gauge\na  1\n"),
        ("bad type", "# TYPE a gauges\na 1\n"),
        ("duplicate", "# TYPE a gauge\na 1\na 2\n"),
        ("split family", "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"1\"} 1\n"),
        ("negative counter", "# TYPE a_total counter\na_total -1\n"),
        ("type after sample", "# TYPE a gauge\na 1\n# TYPE a gauge\n"),
        ("other comment", "# hello world\n"),
        ("empty line", "# TYPE a gauge\n\na 1\n"),
        (
            "not cumulative",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        ),
        ("no +Inf", "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n"),
        (
            "+Inf is not the count",
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
        ),
        ("no sum", "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n"),
        ("le on the count", "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count{le=\"1\"} 1\n"),
    ];
    for (what, text) in bad {
        assert!(parse(text).is_err(), "accepted ({what}): {text:?}");
    }
}

// ------------------------------------------------------------------ server

/// Scrapes `/metrics` (as `auth` if given), checks the status, the
/// content type and the grammar.
fn scrape_as(s: &TestServer, headers: &[(&str, &str)]) -> Exposition {
    let r = s
        .management_client()
        .request("GET", "/metrics", headers, b"")
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some(CONTENT_TYPE));
    let text = String::from_utf8(r.body).expect("UTF-8");
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn scrape(s: &TestServer) -> Exposition {
    scrape_as(s, &[])
}

fn heartbeats(e: &Exposition, kind: &str, outcome: &str) -> f64 {
    e.value(
        "icpd_heartbeats_received_total",
        &[("kind", kind), ("outcome", outcome)],
    )
}

fn requests(e: &Exposition, listener: &str, method: &str, route: &str) -> f64 {
    e.value_or_zero(
        "icpd_http_request_duration_seconds_count",
        &[("listener", listener), ("method", method), ("route", route)],
    )
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn metrics_parse_and_follow_heartbeats_requests_and_runtimes() {
    let started = now_secs();
    let s = TestServer::start(&[]);
    let before = scrape(&s);
    assert_eq!(
        before.value("icpd_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );
    for (name, kind) in [
        ("icpd_heartbeats_received_total", "counter"),
        ("icpd_runtimes", "gauge"),
        ("icpd_self_preservation_active", "gauge"),
        ("icpd_http_request_duration_seconds", "histogram"),
        ("icpd_connections_open", "gauge"),
        ("icpd_connections_accepted_total", "counter"),
        ("icpd_connections_refused_total", "counter"),
        ("icpd_database_size_bytes", "gauge"),
        ("icpd_liveness_sweep_duration_seconds", "histogram"),
        ("icpd_liveness_flush_duration_seconds", "histogram"),
        ("icpd_telemetry_records_total", "counter"),
        ("icpd_telemetry_retention_deleted_total", "counter"),
        ("icpd_telemetry_retention_duration_seconds", "histogram"),
        ("process_resident_memory_bytes", "gauge"),
    ] {
        assert_eq!(
            before.types.get(name).map(String::as_str),
            Some(kind),
            "{name}"
        );
    }

    let secret = s.secret("dev", None);
    let b = Bridge::new(&secret, Some("node-1"));
    let mut c = s.runtime_client();
    assert_ack(&b.full(&mut c));
    const N: usize = 20;
    for _ in 0..N {
        assert_ack(&b.delta(&mut c));
    }
    let r = c
        .post_json("/icp/deltaHeartbeat", Some("not-a-token"), &b.delta_body())
        .unwrap();
    assert_error(&r, 401, "unauthorized");
    let r = c
        .post_json(
            "/icp/deltaHeartbeat",
            Some(&b.token()),
            &json!({"runtimeId": 7}),
        )
        .unwrap();
    assert_error(&r, 400, "bad_request");
    let stranger = Bridge::new(&secret, None);
    assert!(
        assert_ack(&stranger.delta(&mut c)),
        "an unknown runtime must send a full heartbeat"
    );
    let r = c.request("GET", "/icp/no/such/path/123", &[], b"").unwrap();
    assert_eq!(r.status, 404);

    // Telemetry: 3 log lines of which one is not a record (rejected on its
    // own), then 2 request records.
    let lines =
        "{\"level\":\"INFO\",\"message\":\"one\"}\n{\"level\":\"WARN\",\"message\":\"two\"}\n7\n";
    let bearer = format!("Bearer {}", b.token());
    let r = c
        .request(
            "POST",
            "/icp/logs",
            &[("Authorization", &bearer)],
            lines.as_bytes(),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        (r.json()["accepted"].as_u64(), r.json()["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    let records = json!([
        {"service": "/orders", "resource": "/orders/{id}", "method": "GET", "statusCode": 200, "responseTimeMs": 12.5},
        {"service": "/orders", "resource": "/orders", "method": "POST", "statusCode": 503, "responseTimeMs": 80},
    ]);
    let r = c
        .post_json("/icp/metrics", Some(&b.token()), &records)
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let t = scrape(&s);
    let records = |signal: &str, outcome: &str| {
        t.value(
            "icpd_telemetry_records_total",
            &[("signal", signal), ("outcome", outcome)],
        ) - before.value_or_zero(
            "icpd_telemetry_records_total",
            &[("signal", signal), ("outcome", outcome)],
        )
    };
    assert_eq!(records("logs", "accepted"), 2.0);
    assert_eq!(records("logs", "rejected"), 1.0);
    assert_eq!(records("requests", "accepted"), 2.0);
    assert_eq!(records("requests", "rejected"), 0.0);
    assert_eq!(records("points", "accepted"), 0.0);
    assert_eq!(
        t.value(
            "icpd_telemetry_retention_deleted_total",
            &[("reason", "age")]
        ),
        0.0
    );
    assert!(
        t.value("icpd_telemetry_retention_duration_seconds_count", &[]) >= 1.0,
        "the pass at start"
    );

    // The API under a path pattern, never the raw path.
    let mut admin = s.admin();
    assert_error(
        &admin.get("/api/v1/projects/no-such-project-xyz"),
        404,
        "not_found",
    );

    let after = scrape(&s);
    let diff =
        |kind, outcome| heartbeats(&after, kind, outcome) - heartbeats(&before, kind, outcome);
    assert_eq!(diff("delta", "ok"), N as f64);
    assert_eq!(diff("full", "ok"), 1.0);
    assert_eq!(diff("delta", "unauthorized"), 1.0);
    assert_eq!(diff("delta", "bad_request"), 1.0);
    assert_eq!(diff("delta", "unknown_runtime"), 1.0);
    for outcome in ["forbidden", "limited", "error"] {
        assert_eq!(diff("delta", outcome), 0.0, "{outcome}");
    }
    assert_eq!(after.value("icpd_runtimes", &[("status", "RUNNING")]), 1.0);
    assert_eq!(after.value("icpd_runtimes", &[("status", "OFFLINE")]), 0.0);
    for g in [
        "icpd_self_preservation_active",
        "icpd_self_preservation_held_runtimes",
        "icpd_self_preservation_running_runtimes",
    ] {
        assert_eq!(after.value(g, &[]), 0.0, "{g}");
    }

    let rose = |listener, method, route| {
        requests(&after, listener, method, route) - requests(&before, listener, method, route)
    };
    assert_eq!(
        rose("runtime", "POST", "/icp/deltaHeartbeat"),
        (N + 3) as f64
    );
    assert_eq!(rose("runtime", "POST", "/icp/heartbeat"), 1.0);
    assert_eq!(rose("runtime", "GET", "other"), 1.0);
    assert_eq!(rose("management", "GET", "/api/v1/projects/{project}"), 1.0);
    assert!(requests(&after, "management", "GET", "/metrics") >= 1.0);
    assert!(requests(&after, "management", "POST", "/api/v1/auth/login") >= 1.0);
    for sample in &after.samples {
        for v in sample.labels.values() {
            assert!(
                !v.contains("no-such-project") && !v.contains("/123"),
                "a raw path became a label: {sample:?}"
            );
        }
    }

    // Connections: ours are open and were counted.
    for listener in ["runtime", "management"] {
        let l = [("listener", listener)];
        assert!(
            after.value("icpd_connections_open", &l) >= 1.0,
            "{listener}"
        );
        assert!(
            after.value("icpd_connections_accepted_total", &l) >= 1.0,
            "{listener}"
        );
        for limit in ["total", "per_ip"] {
            let l = [("listener", listener), ("limit", limit)];
            assert_eq!(after.value("icpd_connections_refused_total", &l), 0.0);
        }
    }

    // Database files, as the file system sees them.
    // (On PostgreSQL neither the control plane's state nor telemetry is a
    // file of icpd's: no series, and no telemetry.db made.)
    let files: &[(&str, &str)] = if crate::pg_cluster::enabled() {
        for db in ["icp", "telemetry"] {
            assert_eq!(
                after.value_or_zero(
                    "icpd_database_size_bytes",
                    &[("database", db), ("file", "db")]
                ),
                0.0,
                "{db}"
            );
        }
        assert!(!s.data_dir.join("telemetry.db").exists());
        &[]
    } else {
        &[("icp", "icp.db"), ("telemetry", "telemetry.db")]
    };
    for &(db, file) in files {
        let size = std::fs::metadata(s.data_dir.join(file)).unwrap().len() as f64;
        let reported = after.value(
            "icpd_database_size_bytes",
            &[("database", db), ("file", "db")],
        );
        assert!(reported > 0.0, "{db}");
        assert_eq!(reported, size, "{db}");
        after.value(
            "icpd_database_size_bytes",
            &[("database", db), ("file", "wal")],
        );
    }

    // The process.
    assert!(after.value("process_resident_memory_bytes", &[]) > 1e6);
    assert!(after.value("process_threads", &[]) >= 4.0);
    assert!(after.value("process_open_fds", &[]) >= 5.0);
    let start = after.value("process_start_time_seconds", &[]);
    assert!(
        start >= started - 2.0 && start <= now_secs() + 1.0,
        "start {start}, test started {started}"
    );

    // The liveness loop: a sweep every 500 ms; a flush writes the deltas' last-seen times.
    wait_for("a sweep and a flush", Duration::from_secs(5), || {
        let e = scrape(&s);
        e.value("icpd_liveness_sweep_duration_seconds_count", &[]) >= 1.0
            && e.value("icpd_liveness_flush_duration_seconds_count", &[]) >= 1.0
    });

    // HEAD answers like GET, other methods are refused.
    let mut m = s.management_client();
    let r = m.request("HEAD", "/metrics", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let r = m.request("POST", "/metrics", &[], b"").unwrap();
    assert_error(&r, 405, "method_not_allowed");
}

#[test]
fn self_preservation_shows_in_the_metrics() {
    // 5 s: registering the fleet one by one must take less than this, on a
    // loaded machine too.
    let s = TestServer::start(&["--heartbeat-timeout", "5s"]);
    let bridges = s.fleet("dev", 12);
    let mut c = s.runtime_client();
    assert_eq!(scrape(&s).value("icpd_self_preservation_active", &[]), 0.0);
    // The thing tested: paused for longer than the timeout, so every
    // runtime looks silent at once.
    s.pause(Duration::from_millis(6_000));
    wait_for(
        "self-preservation in /metrics",
        Duration::from_secs(10),
        || scrape(&s).value("icpd_self_preservation_active", &[]) == 1.0,
    );
    let e = scrape(&s);
    assert_eq!(e.value("icpd_self_preservation_held_runtimes", &[]), 12.0);
    assert_eq!(
        e.value("icpd_self_preservation_running_runtimes", &[]),
        12.0
    );
    assert_eq!(e.value("icpd_runtimes", &[("status", "RUNNING")]), 12.0);
    for b in &bridges {
        assert_ack(&b.delta(&mut c));
    }
    wait_for(
        "the hold to end in /metrics",
        Duration::from_secs(10),
        || scrape(&s).value("icpd_self_preservation_active", &[]) == 0.0,
    );
    let e = scrape(&s);
    assert_eq!(e.value("icpd_self_preservation_held_runtimes", &[]), 0.0);
    assert_eq!(e.value("icpd_runtimes", &[("status", "RUNNING")]), 12.0);
    assert_eq!(e.value("icpd_runtimes", &[("status", "OFFLINE")]), 0.0);
}

#[test]
fn require_auth_asks_for_observability_view_at_organization_scope() {
    let dir = TestDir::new("metrics-auth");
    let cfg = dir.path.join("icp.toml");
    std::fs::write(&cfg, "[metrics]\nrequire_auth = true\n").unwrap();
    let s = TestServer::start(&["--config", cfg.to_str().unwrap()]);
    let mut m = s.management_client();
    assert_error(
        &m.request("GET", "/metrics", &[], b"").unwrap(),
        401,
        "unauthorized",
    );
    let bearer = |api: &ApiClient| format!("Bearer {}", api.token);

    // No role at all, and Viewer at project scope only: refused.
    let nobody = s.api_as("nobody", None);
    let r = m
        .request(
            "GET",
            "/metrics",
            &[("Authorization", &bearer(&nobody))],
            b"",
        )
        .unwrap();
    assert_error(&r, 403, "forbidden");
    let mut root = s.admin();
    s.secret("dev", Some(("shop", "cart")));
    let scoped = s.api_as("scoped", None);
    let a = root.post(
        "/api/v1/role-assignments",
        &json!({"role": "Viewer", "user": "scoped", "scope": {"type": "project", "project": "shop"}}),
    );
    assert_eq!(a.status, 201, "{}", a.json());
    let r = m
        .request(
            "GET",
            "/metrics",
            &[("Authorization", &bearer(&scoped))],
            b"",
        )
        .unwrap();
    assert_error(&r, 403, "forbidden");

    // Viewer at organization scope: by bearer token and by session cookie.
    let viewer = s.api_as("viewer", Some("Viewer"));
    scrape_as(&s, &[("Authorization", &bearer(&viewer))]);
    let cookie = session_cookie(&s.login("viewer", TEST_PASSWORD));
    let e = scrape_as(&s, &[("Cookie", &cookie)]);
    assert_eq!(e.value("icpd_self_preservation_active", &[]), 0.0);
    assert_error(
        &m.request("GET", "/metrics", &[("Authorization", "Bearer nope")], b"")
            .unwrap(),
        401,
        "unauthorized",
    );
}
