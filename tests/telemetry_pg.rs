//! Telemetry on PostgreSQL, through `TelemetryStore`'s API on a database of
//! the throwaway cluster, as several nodes sharing it use it: phrase search
//! with the GIN index, log ids taken by two writers in the same
//! millisecond, retention, and the live tail following what another node
//! ingests (two handles in this process, and a real server beside a handle
//! writing as a second node). They run in the PostgreSQL half of the suite
//! (`ICP_TEST_BACKEND=postgres`); the SQLite half says so and returns.

use std::collections::{BTreeMap, HashSet};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use icpd::catalog::Visibility;
use icpd::model::telemetry::{Attribution, Level, LogFilter, LogRecord, StoredLog};
use icpd::model::telemetry_query::{LogSelect, Order};
use icpd::store::postgres::DatabaseUrl;
use icpd::store::telemetry::TelemetryStore;
use icpd::telemetry::tail::Tail;
use icpd::telemetry::{Retention, Telemetry};
use serde_json::{json, Map, Value};

use crate::harness::{wait_for, Bridge, Frame, Opened, TestDir, TestServer};

/// A fresh PostgreSQL database (its directory keeps it apart), or `None`
/// in the SQLite half.
fn database(test: &str) -> Option<(TestDir, DatabaseUrl)> {
    crate::pg_cluster::fresh_database(test, "a test of telemetry on PostgreSQL", "tpg")
}

fn everything() -> Visibility {
    Visibility {
        everything: true,
        ..Visibility::default()
    }
}

fn record(ts: i64, integration: i64, level: Level, message: &str) -> LogRecord {
    LogRecord {
        ts,
        level,
        module: None,
        message: message.into(),
        attributes: Map::new(),
        source: Attribution {
            environment_id: 1,
            environment: "dev".into(),
            project_id: Some(1),
            project: Some("p".into()),
            integration_id: Some(integration),
            integration: Some("i".into()),
            runtime_id: None,
        },
    }
}

fn select(
    s: &TelemetryStore,
    f: &LogFilter,
    order: Order,
    after: Option<i64>,
    limit: i64,
) -> Vec<StoredLog> {
    s.select_logs(&LogSelect {
        filter: f,
        vis: &everything(),
        order,
        after,
        limit,
    })
    .unwrap()
}

/// Which record numbers a filter keeps.
type Keep = Box<dyn Fn(i64) -> bool>;

/// The phrase search of the query API on PostgreSQL: FTS5's phrase
/// semantics (whole tokens, in order, any case, punctuation between them
/// ignored), results in id (time) order across pages, both through the
/// bounded collect of a rare phrase and the walk in id order of a common
/// one; and the user's text is never query syntax.
#[test]
fn a_phrase_search_on_postgresql_matches_as_fts5_and_pages_in_time_order() {
    let Some((_dir, url)) = database("phrase search") else {
        return;
    };
    let s = TelemetryStore::connect(&url).unwrap();
    assert!(s.is_shared() && s.path().is_none());
    // 24,000 records, two per millisecond, stored newest batch first; every
    // fifth says "payment failed" (4,800: collected and sorted), every
    // second "order" (12,000: more than the 10,000 a collect sorts).
    let n = 24_000i64;
    let ts = |i: i64| 1_000_000 + i / 2;
    let records: Vec<LogRecord> = (0..n)
        .map(|i| {
            let message = if i % 5 == 0 {
                format!("payment failed for order {i}")
            } else if i % 2 == 0 {
                format!("order {i} created")
            } else {
                format!("item {i} shipped")
            };
            record(
                ts(i),
                1 + i % 3,
                if i % 7 == 0 {
                    Level::Error
                } else {
                    Level::Info
                },
                &message,
            )
        })
        .collect();
    for batch in records.chunks(2_000).rev() {
        s.insert_logs(batch.to_vec(), 0).unwrap();
    }
    // Record i's number from a stored log: its time and rank.
    let number = |l: &StoredLog| 2 * (l.record.ts - 1_000_000) + (l.id & 0xfffff);
    let cases: Vec<(&str, LogFilter, Keep)> = vec![
        (
            "rare phrase",
            LogFilter {
                phrase: Some("Payment FAILED".into()),
                ..LogFilter::default()
            },
            Box::new(|i| i % 5 == 0),
        ),
        (
            "common phrase",
            LogFilter {
                phrase: Some("order".into()),
                ..LogFilter::default()
            },
            Box::new(|i| i % 5 == 0 || i % 2 == 0),
        ),
        (
            "phrase, integration 2, errors, a time range",
            LogFilter {
                phrase: Some("failed for".into()),
                integration_id: Some(2),
                levels: vec![Level::Error],
                from: Some(ts(1_000)),
                to: Some(ts(20_000)),
                ..LogFilter::default()
            },
            Box::new(|i| {
                i % 5 == 0 && 1 + i % 3 == 2 && i % 7 == 0 && (1_000..20_000).contains(&i)
            }),
        ),
    ];
    for (name, f, keep) in &cases {
        for order in [Order::Newest, Order::Oldest] {
            let mut want: Vec<i64> = (0..n).filter(|i| keep(*i)).collect();
            if order == Order::Newest {
                want.reverse();
            }
            // Three pages of 7 from the start, and three after a cursor in
            // the middle of a millisecond.
            for start in [None, Some(n / 2 + 1)] {
                // The id of record i: its millisecond's first id, plus its rank.
                let mut after = start.map(|i| (ts(i) << 20) + i % 2);
                let expected: Vec<i64> = want
                    .iter()
                    .copied()
                    .filter(|i| match (start, order) {
                        (None, _) => true,
                        (Some(a), Order::Newest) => *i < a,
                        (Some(a), Order::Oldest) => *i > a,
                    })
                    .take(21)
                    .collect();
                let mut got = Vec::new();
                for _ in 0..3 {
                    let page = select(&s, f, order, after, 7);
                    got.extend(page.iter().map(number));
                    after = page.last().map(|l| l.id);
                }
                assert_eq!(got, expected, "{name} {order:?} after {start:?}");
            }
        }
    }
    let plan = |f: &LogFilter| {
        let (drive, _) = s
            .explain_logs(&LogSelect {
                filter: f,
                vis: &everything(),
                order: Order::Newest,
                after: None,
                limit: 7,
            })
            .unwrap();
        format!("{drive:?}")
    };
    assert!(
        plan(&cases[0].1).starts_with("Collected"),
        "{}",
        plan(&cases[0].1)
    );
    assert_eq!(plan(&cases[1].1), "Ids", "a common phrase walks ids");

    // Tokens as FTS5's tokenizer cuts them, punctuation ignored; the text
    // is never tsquery syntax; NUL is stored as U+001A and separates tokens.
    let t = 5_000_000;
    s.insert_logs(
        vec![
            record(t, 1, Level::Info, "ORDER-1: shipped to bob@example.com"),
            record(t + 1, 1, Level::Info, "order 1002 created"),
            record(t + 2, 1, Level::Info, "a & !b | c <-> d:*"),
            record(t + 3, 1, Level::Info, "said \"hi\" twice"),
            record(t + 4, 1, Level::Info, "before\0after"),
        ],
        0,
    )
    .unwrap();
    let found = |phrase: &str| -> Vec<String> {
        let f = LogFilter {
            phrase: Some(phrase.into()),
            from: Some(t),
            ..LogFilter::default()
        };
        select(&s, &f, Order::Oldest, None, 10)
            .into_iter()
            .map(|l| l.record.message)
            .collect()
    };
    assert_eq!(found("order 1"), ["ORDER-1: shipped to bob@example.com"]);
    assert_eq!(found("example"), ["ORDER-1: shipped to bob@example.com"]);
    assert_eq!(found("a & !b"), ["a & !b | c <-> d:*"]);
    assert_eq!(found("c <-> d:*"), ["a & !b | c <-> d:*"]);
    assert_eq!(found("a | b"), ["a & !b | c <-> d:*"], "| is punctuation");
    assert_eq!(found("\"hi\" twice"), ["said \"hi\" twice"]);
    assert_eq!(found("before\0after"), ["before\u{1a}after"]);
    assert!(found("!!!").is_empty(), "no token: nothing, as FTS5");
    assert!(found("b c a").is_empty(), "tokens in order");
}

/// Two writers (two handles, as two nodes) storing logs of the same
/// milliseconds at once: every id is unique, each is its record's
/// millisecond times 2^20 plus its rank, ranks start at 0 and have no gap,
/// and within a millisecond id order is commit order.
#[test]
fn two_writers_in_one_millisecond_take_unique_ids_in_commit_order() {
    let Some((_dir, url)) = database("two writers") else {
        return;
    };
    let nodes = [
        Arc::new(TelemetryStore::connect(&url).unwrap()),
        Arc::new(TelemetryStore::connect(&url).unwrap()),
    ];
    let start = Arc::new(Barrier::new(2));
    let ms = [2_000_000i64, 2_000_001, 2_000_002];
    let writers: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(node, s)| {
            let (s, start) = (s.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut stored = Vec::new();
                for batch in 0..40 {
                    let records = (0..25)
                        .map(|k| {
                            record(
                                ms[k % 3],
                                1,
                                Level::Info,
                                &format!("node {node} batch {batch} #{k}"),
                            )
                        })
                        .collect();
                    stored.extend(s.insert_logs(records, 0).unwrap());
                }
                stored
            })
        })
        .collect();
    let stored: Vec<StoredLog> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert_eq!(stored.len(), 2_000);
    let ids: HashSet<i64> = stored.iter().map(|l| l.id).collect();
    assert_eq!(ids.len(), stored.len(), "every id is unique");
    let mut by_ms: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for l in &stored {
        assert_eq!(
            l.id >> 20,
            l.record.ts,
            "the id is in its record's millisecond"
        );
        by_ms.entry(l.record.ts).or_default().push(l.id & 0xfffff);
    }
    for (t, mut ranks) in by_ms {
        ranks.sort();
        assert_eq!(
            ranks,
            (0..ranks.len() as i64).collect::<Vec<_>>(),
            "ranks of {t}"
        );
    }
    // What is stored agrees, and a batch's records of one millisecond have
    // consecutive ranks (batches took turns, one after the other).
    let all = select(&nodes[0], &LogFilter::default(), Order::Oldest, None, 3_000);
    assert_eq!(all.len(), 2_000);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    for t in ms {
        let batches: Vec<String> = all
            .iter()
            .filter(|l| l.record.ts == t)
            .map(|l| l.record.message.split(" #").next().unwrap().to_string())
            .collect();
        let mut runs = batches.clone();
        runs.dedup();
        assert_eq!(runs.len(), 80, "each batch's records of {t} are one run");
    }
    // The stored ranks follow commit order: the tail's arrival order.
    let s = &nodes[1];
    let position = s.follow_arrivals().unwrap().unwrap();
    assert!(position > 0);
    s.unfollow_arrivals();
    let arrived = s.arrivals_after(0, 5_000).unwrap();
    assert_eq!(arrived.logs.len(), 2_000);
    let mut last_rank: BTreeMap<i64, i64> = BTreeMap::new();
    for l in &arrived.logs {
        let rank = l.id & 0xfffff;
        if let Some(before) = last_rank.insert(l.record.ts, rank) {
            assert!(
                rank > before,
                "arrival order is id order within a millisecond"
            );
        }
    }
}

/// A node that stalls holding the log write lock (here a session holding
/// it in an open transaction) makes another node's log insert fail after
/// about 5 s, not hang; the insert goes through once the lock is free.
#[test]
fn a_stalled_writer_makes_log_inserts_fail_not_hang() {
    let Some((dir, url)) = database("stalled writer") else {
        return;
    };
    let s = TelemetryStore::connect(&url).unwrap();
    let raw = crate::pg_cluster::url_for(&dir.path).unwrap();
    let mut stalled = postgres::Client::connect(&raw, postgres::NoTls).unwrap();
    let mut tx = stalled.transaction().unwrap();
    // store::telemetry's LOG_WRITE_LOCK (0x1c9d_0101).
    tx.execute("SELECT pg_advisory_xact_lock(480051457)", &[])
        .unwrap();
    let started = Instant::now();
    let e = s
        .insert_logs(vec![record(1_000, 1, Level::Info, "waits")], 0)
        .unwrap_err()
        .to_string();
    let waited = started.elapsed();
    assert!(e.contains("lock timeout"), "{e}");
    assert!(waited >= Duration::from_secs(4), "{waited:?}");
    // Request records and metric points take no lock.
    s.insert_requests(&[icpd::model::telemetry::RequestRecord {
        ts: 1_000,
        service: "orders".into(),
        resource: "/orders".into(),
        method: "GET".into(),
        status: 200,
        duration_ms: 1.0,
        source: record(0, 1, Level::Info, "").source,
    }])
    .unwrap();
    tx.rollback().unwrap();
    assert_eq!(
        s.insert_logs(vec![record(1_000, 1, Level::Info, "then goes")], 0)
            .unwrap()
            .len(),
        1
    );
}

/// Retention on PostgreSQL: by age, oldest first in every table, the text
/// index following; by size, the live size the limit is checked against
/// goes down as rows go (the tables themselves do not shrink).
#[test]
fn retention_deletes_on_postgresql() {
    let Some((_dir, url)) = database("retention") else {
        return;
    };
    let s = TelemetryStore::connect(&url).unwrap();
    let logs: Vec<LogRecord> = (0..4_000)
        .map(|i| {
            record(
                10_000 + i,
                1,
                Level::Info,
                &format!("disk warning number {i} with a few words of padding to take some room"),
            )
        })
        .collect();
    s.insert_logs(logs, 0).unwrap();
    let requests: Vec<_> = (0..1_000)
        .map(|i| icpd::model::telemetry::RequestRecord {
            ts: 10_000 + 4 * i,
            service: "orders".into(),
            resource: "/orders".into(),
            method: "GET".into(),
            status: 200,
            duration_ms: 1.5,
            source: record(0, 1, Level::Info, "").source,
        })
        .collect();
    s.insert_requests(&requests).unwrap();
    let count = |phrase: Option<&str>| {
        select(
            &s,
            &LogFilter {
                phrase: phrase.map(str::to_string),
                ..LogFilter::default()
            },
            Order::Oldest,
            None,
            10_000,
        )
        .len()
    };
    assert_eq!(count(Some("disk warning")), 4_000);
    // By age: everything before 11,000 goes, in chunks, text index included.
    let mut deleted = icpd::store::telemetry::Deleted::default();
    loop {
        let d = s.delete_older_than(11_000, 300).unwrap();
        assert!(d.logs <= 300 && d.requests <= 300);
        if d.total() == 0 {
            break;
        }
        deleted.add(d);
    }
    assert_eq!(
        (deleted.logs, deleted.requests, deleted.points),
        (1_000, 250, 0)
    );
    assert_eq!(count(None), 3_000);
    assert_eq!(count(Some("disk warning")), 3_000);
    assert_eq!(count(Some("number 999")), 0);
    assert_eq!(count(Some("number 1000")), 1);
    // The oldest across tables: the 100th oldest log is at 11,099.
    let d = s.delete_oldest(100).unwrap();
    assert_eq!((d.logs, d.requests), (100, 25));
    // By size: a pass gets the live size under half of what it is.
    let before = s.live_bytes().unwrap();
    assert!(before > 0 && s.file_bytes().unwrap() >= before);
    let limits = Retention {
        max_age_ms: i64::MAX / 2,
        max_bytes: before / 2,
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let report = icpd::telemetry::retention::enforce(&s, &limits, 20_000, &stop).unwrap();
    assert!(report.by_size.logs > 0, "{report:?}");
    assert!(report.bytes_after <= limits.max_bytes, "{report:?}");
    let left = count(None) as u64;
    assert!(
        (900..=1_900).contains(&left),
        "about half of the 2,900 logs stay, the newest: {left}"
    );
    let oldest = select(&s, &LogFilter::default(), Order::Oldest, None, 1)[0]
        .record
        .ts;
    assert_eq!(oldest, 10_000 + 4_000 - left as i64, "the oldest went");
    // The calls without meaning on PostgreSQL do nothing.
    assert_eq!(s.free_bytes().unwrap(), 0);
    assert_eq!(s.vacuum_step().unwrap(), 0);
    s.merge_text_index().unwrap();
    s.checkpoint().unwrap();
    assert!(s.schema_version().unwrap() >= 2);
}

fn telemetry(url: &DatabaseUrl) -> Telemetry {
    Telemetry {
        store: Arc::new(TelemetryStore::connect(url).unwrap()),
        tail: Arc::new(Tail::new()),
        retention: Retention::default(),
    }
}

/// What the ingest path does: store, then publish to this node's tail.
fn ingest(node: &Telemetry, records: Vec<LogRecord>) -> Vec<StoredLog> {
    let stored = node.store.insert_logs(records, 0).unwrap();
    node.tail.publish(&stored);
    stored
}

/// The messages of the next `n` log frames, waiting up to 10 s for each.
fn frames(rx: &Receiver<String>, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("{e} after {} of {n} records: {out:?}", out.len()));
        if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
            let v: Value = serde_json::from_str(data).unwrap();
            out.push(v["message"].as_str().unwrap().to_string());
        }
    }
    out
}

/// The live tail across nodes (two handles on one database, each with its
/// hub): a subscriber on one node gets what the other ingests, late
/// records included, in commit order, and its own node's records once;
/// the follower stops when the last subscriber goes.
#[test]
fn the_live_tail_follows_what_another_node_ingests() {
    let Some((_dir, url)) = database("cross-node tail") else {
        return;
    };
    let (a, b) = (telemetry(&url), telemetry(&url));
    ingest(
        &a,
        vec![record(3_000_000, 1, Level::Info, "before anyone listened")],
    );
    let rx = b
        .subscribe(Some(1), LogFilter::default(), everything())
        .unwrap();
    let errors_of_2 = a
        .subscribe(
            None,
            LogFilter {
                integration_id: Some(2),
                levels: vec![Level::Error],
                ..LogFilter::default()
            },
            everything(),
        )
        .unwrap();
    let opened = Instant::now();
    ingest(&a, vec![record(3_000_010, 1, Level::Info, "from a, 1")]);
    assert_eq!(frames(&rx, 1), ["from a, 1"]);
    // Within about a second (the follower reads every 250 ms).
    assert!(opened.elapsed() < Duration::from_secs(5));
    // Interleaved batches of both nodes; a late one (an older time) from a.
    ingest(&b, vec![record(3_000_020, 1, Level::Info, "from b, 1")]);
    ingest(&a, vec![record(3_000_030, 2, Level::Error, "from a, 2")]);
    ingest(&a, vec![record(2_000_000, 1, Level::Info, "from a, late")]);
    ingest(&b, vec![record(3_000_040, 2, Level::Error, "from b, 2")]);
    ingest(
        &a,
        (0..3)
            .map(|k| record(3_000_050, 1, Level::Info, &format!("from a, batch {k}")))
            .collect(),
    );
    let got = frames(&rx, 7);
    // b's own records come at once, a's as the follower reads them: each
    // node's in its order, every record once.
    let of = |node: &str| -> Vec<String> {
        got.iter()
            .filter(|m| m.starts_with(node))
            .cloned()
            .collect()
    };
    assert_eq!(of("from b"), ["from b, 1", "from b, 2"]);
    assert_eq!(
        of("from a"),
        [
            "from a, 2",
            "from a, late",
            "from a, batch 0",
            "from a, batch 1",
            "from a, batch 2"
        ]
    );
    // a's subscriber got b's error of integration 2 (and its own), nothing else.
    assert_eq!(frames(&errors_of_2, 2).len(), 2);
    // Nothing more, twice over: a later record is the next frame.
    ingest(&a, vec![record(3_000_060, 1, Level::Info, "from a, last")]);
    assert_eq!(frames(&rx, 1), ["from a, last"]);
    // The follower ends with its last subscriber.
    drop(rx);
    wait_for("b's follower to end", Duration::from_secs(10), || {
        b.tail.subscriber_count() == 0
    });
}

/// A real server on PostgreSQL and a second node (a store handle on the
/// same database, in this process): records the other node stores reach
/// the server's live tail over Server-Sent Events within about a second;
/// the server's own ingest reaches it once; its query API answers for
/// both.
#[test]
fn a_server_tails_and_finds_what_another_node_stores() {
    if !crate::pg_cluster::enabled() {
        eprintln!("a server beside another node: run in the PostgreSQL half");
        return;
    }
    let s = TestServer::start(&[]);
    let mut admin = s.admin();
    let bridge = Bridge::new(
        &s.secret("dev", Some(("order-service", "order-create"))),
        None,
    );
    let mut c = s.runtime_client();
    assert_eq!(bridge.full(&mut c).status, 200);
    let url = DatabaseUrl::parse(&crate::pg_cluster::url_for(&s.data_dir).unwrap()).unwrap();
    let other = TelemetryStore::connect(&url).unwrap();
    let auth = format!("Bearer {}", admin.token);
    let mut tail = match s.open_sse(
        "/api/v1/observability/logs/tail",
        &[("Authorization", &auth)],
    ) {
        Opened::Stream(sse) => sse,
        Opened::Refused(status, body) => panic!("tail refused: {status} {body}"),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut from_other = record(now, 1, Level::Warn, "stored by another node");
    from_other.source = Attribution {
        environment_id: 1,
        environment: "dev".into(),
        ..Attribution::default()
    };
    other.insert_logs(vec![from_other], now).unwrap();
    let Frame { data, .. } = tail.event(Duration::from_secs(10));
    assert_eq!(data["message"], "stored by another node");
    let auth = format!("Bearer {}", bridge.token());
    let r = c
        .request(
            "POST",
            "/icp/logs",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &auth),
            ],
            json!([{"log": "ingested by the server", "level": "info"}])
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    assert_eq!(r.status, 200);
    let Frame { data, .. } = tail.event(Duration::from_secs(10));
    assert_eq!(data["message"], "ingested by the server");
    other
        .insert_logs(vec![record(now + 1, 1, Level::Info, "and one more")], now)
        .unwrap();
    let Frame { data, .. } = tail.event(Duration::from_secs(10));
    assert_eq!(
        data["message"], "and one more",
        "the server's record came once"
    );
    let page = admin.get("/api/v1/observability/logs?q=node");
    assert_eq!(page.status, 200);
    let messages: Vec<Value> = page.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["message"].clone())
        .collect();
    assert_eq!(messages, [json!("stored by another node")]);
}
