//! What the fleet checks beyond rate and latency: statuses watched through
//! the management API, runtime-list pages, and what a restart did.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::spawned::{Management, Restart};
use crate::{Plan, Runtime, Tally};

/// How often the OFFLINE list is fetched.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// A page request of the runtime list may take this long (the target).
const PAGE_P95_TARGET: Duration = Duration::from_millis(20);

/// After a restart, no request may wait longer than this (the target).
const HERD_WAIT_TARGET: Duration = Duration::from_secs(1);

/// One named check and whether it held.
pub struct Check {
    pub what: String,
    pub passed: bool,
    pub detail: String,
    /// A latency target rather than a property: not judged with `--smoke`.
    pub timing: bool,
}

pub fn check(what: impl Into<String>, passed: bool, detail: impl Into<String>) -> Check {
    Check {
        what: what.into(),
        passed,
        detail: detail.into(),
        timing: false,
    }
}

/// Prints the checks; returns how many failed. With `smoke`, latency
/// targets are printed but not judged (shared CI cores).
pub fn print_checks(checks: &[Check], smoke: bool) -> usize {
    let mut failed = 0;
    for c in checks {
        if smoke && c.timing {
            println!(
                "check         ---- {}: {} (not judged: --smoke)",
                c.what, c.detail
            );
            continue;
        }
        println!(
            "check         {} {}: {}",
            if c.passed { "PASS" } else { "FAIL" },
            c.what,
            c.detail
        );
        failed += usize::from(!c.passed);
    }
    failed
}

/// What the status poller saw.
#[derive(Default)]
struct Seen {
    /// Each runtime ever listed OFFLINE: when the poll that first listed it
    /// was answered.
    first_offline: HashMap<String, Instant>,
    /// For the same runtimes: when the last successful poll that did not
    /// list it yet was sent (the server marked it after that), if any.
    not_listed_at: HashMap<String, Instant>,
    /// The OFFLINE set of the last poll that succeeded.
    last: HashSet<String>,
    polls: u64,
    /// Failed polls with their time (expected only while restarting).
    failures: Vec<(Instant, String)>,
}

/// Latencies of runtime-list pages.
#[derive(Default)]
struct Pages {
    micros: Vec<u32>,
    failures: Vec<(Instant, String)>,
}

/// Which API the page fetcher lists runtimes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListVia {
    Rest,
    /// The offset walks the whole list.
    Graphql,
    /// Always the first page (`pagination: {limit: 100}`), as the target names it.
    GraphqlFirst,
}

/// The poller and the page fetcher, running beside the load.
pub struct Watch {
    poller: JoinHandle<Seen>,
    pages: Option<JoinHandle<Pages>>,
}

impl Watch {
    /// Starts polling now, until `end`; `pages` page requests are spread
    /// from `start` to `end`.
    pub fn start(
        mut mgmt: Management,
        start: Instant,
        end: Instant,
        pages: usize,
        via: ListVia,
    ) -> Result<Watch, String> {
        let pages = if pages > 0 {
            let mut m = mgmt.another()?;
            Some(std::thread::spawn(move || match via {
                ListVia::Rest => fetch_pages(&mut m, start, end, pages),
                ListVia::Graphql => fetch_graphql_pages(&mut m, start, end, pages, true),
                ListVia::GraphqlFirst => fetch_graphql_pages(&mut m, start, end, pages, false),
            }))
        } else {
            None
        };
        let poller = std::thread::spawn(move || poll_offline(&mut mgmt, end));
        Ok(Watch { poller, pages })
    }

    /// Waits for the watchers and turns what they saw into checks.
    pub fn finish(
        self,
        runtimes: &[Runtime],
        plan: Plan,
        timeout: Duration,
        restart: Option<&Restart>,
        server_log: &Path,
    ) -> Result<Vec<Check>, String> {
        let seen = self
            .poller
            .join()
            .map_err(|_| "the status poller panicked")?;
        let mut checks = Vec::new();
        let restarting = |t: Instant| restart.is_some_and(|r| t >= r.down_from && t <= r.ready_at);
        let bad_polls: Vec<&(Instant, String)> = seen
            .failures
            .iter()
            .filter(|(t, _)| !restarting(*t))
            .collect();
        checks.push(check(
            "the management API answered every status poll",
            bad_polls.is_empty(),
            format!(
                "{} polls every {} ms, {} failed while the server restarted, {} otherwise{}",
                seen.polls,
                POLL_EVERY.as_millis(),
                seen.failures.len() - bad_polls.len(),
                bad_polls.len(),
                bad_polls
                    .first()
                    .map(|(_, e)| format!(" (first: {e})"))
                    .unwrap_or_default()
            ),
        ));

        let stopped: HashMap<&str, &Runtime> = runtimes
            .iter()
            .filter(|r| r.stops)
            .map(|r| (r.id.as_str(), r))
            .collect();
        let strays: Vec<&String> = seen
            .first_offline
            .keys()
            .filter(|id| !stopped.contains_key(id.as_str()))
            .collect();
        checks.push(check(
            "no running runtime was ever listed OFFLINE",
            strays.is_empty(),
            format!(
                "{} of {} runtimes that kept sending were ever listed OFFLINE{}",
                strays.len(),
                runtimes.len() - stopped.len(),
                strays
                    .first()
                    .map(|id| format!(" (first: {id})"))
                    .unwrap_or_default()
            ),
        ));

        if let Some(stop_after) = plan.stop_after {
            let missing = stopped
                .keys()
                .filter(|id| !seen.last.contains(**id))
                .count();
            checks.push(check(
                format!("exactly the {} stopped runtimes are OFFLINE", stopped.len()),
                missing == 0 && seen.last.len() == stopped.len(),
                format!(
                    "last poll listed {} OFFLINE; {missing} stopped runtime(s) missing",
                    seen.last.len()
                ),
            ));
            // From the answer to the last acknowledged heartbeat to the
            // answer of the poll that first listed the runtime OFFLINE: an
            // upper bound of the server's delay (it received the heartbeat
            // before answering it, and marked the runtime before the poll).
            // It includes a poll's interval and latency, which a loaded
            // machine stretches, so lateness is judged on a lower bound:
            // from that answer to the send of the last poll that did not
            // list it yet (the server marked it after that poll was sent).
            let mut late = Vec::new();
            let mut lower = Vec::new();
            // From the send of the last heartbeat to the first listing: an
            // upper bound too, so one below the timeout proves it early.
            let mut early = Vec::new();
            let mut delays = Vec::new();
            for (id, r) in &stopped {
                let (Some((sent, answered)), Some(listed)) =
                    (r.last_ok, seen.first_offline.get(*id))
                else {
                    continue;
                };
                delays.push(listed.saturating_duration_since(answered));
                let at_least = seen
                    .not_listed_at
                    .get(*id)
                    .map_or(Duration::ZERO, |t| t.saturating_duration_since(answered));
                lower.push(at_least);
                if at_least > timeout + Duration::from_secs(1) {
                    late.push(*id);
                }
                if listed.saturating_duration_since(sent) < timeout {
                    early.push(*id);
                }
            }
            delays.sort();
            lower.sort();
            let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
            checks.push(check(
                format!(
                    "each turned OFFLINE within the timeout + 1 s ({} ms)",
                    (timeout + Duration::from_secs(1)).as_millis()
                ),
                late.is_empty() && delays.len() == stopped.len(),
                format!(
                    "last acknowledged heartbeat to first listed OFFLINE (poll every {} ms): min {:.0} ms, median {:.0} ms, max {:.0} ms; \
                     to the last poll not listing it yet: max {:.0} ms; over {} runtimes stopped {} s in; {} surely late",
                    POLL_EVERY.as_millis(),
                    ms(delays.first()),
                    ms(delays.get(delays.len() / 2)),
                    ms(delays.last()),
                    ms(lower.last()),
                    delays.len(),
                    stop_after.as_secs(),
                    late.len()
                ),
            ));
            checks.push(check(
                "none turned OFFLINE before the timeout",
                early.is_empty(),
                format!(
                    "{} listed OFFLINE less than the timeout after their last heartbeat was sent",
                    early.len()
                ),
            ));
        }

        let log = std::fs::read_to_string(server_log).unwrap_or_default();
        let missed: usize = log
            .lines()
            .filter_map(|l| {
                let i = l.find(" runtime(s) missed the heartbeat timeout")?;
                l[..i].rsplit(' ').next()?.parse::<usize>().ok()
            })
            .sum();
        println!("server log    reports {missed} runtime(s) that missed the heartbeat timeout");

        if let Some(h) = self.pages {
            let mut p = h.join().map_err(|_| "the page fetcher panicked")?;
            p.micros.sort_unstable();
            let pct = |q: f64| -> f64 {
                if p.micros.is_empty() {
                    return 0.0;
                }
                let i = ((q / 100.0) * (p.micros.len() - 1) as f64).round() as usize;
                f64::from(p.micros[i]) / 1000.0
            };
            let bad: Vec<&(Instant, String)> =
                p.failures.iter().filter(|(t, _)| !restarting(*t)).collect();
            let p95 = pct(95.0);
            println!(
                "list pages    {} pages of 100: p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2} ms; {} failed",
                p.micros.len(),
                pct(50.0),
                p95,
                pct(99.0),
                pct(100.0),
                p.failures.len()
            );
            checks.push(Check {
                timing: true,
                ..check(
                    format!("runtime list page p95 ≤ {} ms", PAGE_P95_TARGET.as_millis()),
                    bad.is_empty()
                        && !p.micros.is_empty()
                        && p95 <= PAGE_P95_TARGET.as_secs_f64() * 1000.0,
                    format!(
                    "p95 {p95:.2} ms over {} pages during the load, {} failed outside a restart",
                    p.micros.len(),
                    bad.len()
                ),
                )
            });
        }
        Ok(checks)
    }
}

/// Lists OFFLINE runtimes every [`POLL_EVERY`] until `end`.
fn poll_offline(mgmt: &mut Management, end: Instant) -> Seen {
    let mut seen = Seen::default();
    // When the last successful poll was sent.
    let mut previous: Option<Instant> = None;
    loop {
        let began = Instant::now();
        match mgmt.offline() {
            Ok(ids) => {
                let at = Instant::now();
                seen.polls += 1;
                for id in &ids {
                    if !seen.first_offline.contains_key(id) {
                        seen.first_offline.insert(id.clone(), at);
                        if let Some(p) = previous {
                            seen.not_listed_at.insert(id.clone(), p);
                        }
                    }
                }
                seen.last = ids;
                previous = Some(began);
            }
            Err(e) => seen.failures.push((Instant::now(), e)),
        }
        if began >= end {
            return seen;
        }
        let next = (began + POLL_EVERY).min(end);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// Requests `n` pages evenly from `start` to `end`, walking the list.
fn fetch_pages(mgmt: &mut Management, start: Instant, end: Instant, n: usize) -> Pages {
    let mut pages = Pages::default();
    let every = end.saturating_duration_since(start) / n as u32;
    let mut cursor: Option<String> = None;
    for k in 0..n {
        let due = start + every * k as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let mut path = "/api/v1/runtimes?limit=100".to_string();
        if let Some(c) = &cursor {
            path.push_str("&cursor=");
            path.push_str(c);
        }
        let sent = Instant::now();
        match mgmt.get(&path) {
            Ok(page) => {
                let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                let items = page["items"].as_array().map_or(0, Vec::len);
                if items == 0 {
                    pages
                        .failures
                        .push((Instant::now(), "an empty page".into()));
                } else {
                    pages.micros.push(us);
                }
                cursor = page["nextCursor"].as_str().map(str::to_string);
            }
            Err(e) => pages.failures.push((Instant::now(), e)),
        }
    }
    pages
}

/// The console's runtimes document (GRAPHQL.md §7, rank 6), paged.
const RUNTIMES_DOCUMENT: &str = "query GetOrgRuntimesPage($environmentId: String, $limit: Int!, $offset: Int!) { runtimes(environmentId: $environmentId, pagination: {limit: $limit, offset: $offset}) { items { runtimeId runtimeName runtimeType status version platformName platformVersion platformHome osName osVersion registrationTime lastHeartbeat component { id displayName } } pageInfo { total limit offset } } }";

/// Requests `n` pages of 100 through `POST /graphql`, evenly from `start`
/// to `end`, the offset walking the list (and starting over at its end).
fn fetch_graphql_pages(
    mgmt: &mut Management,
    start: Instant,
    end: Instant,
    n: usize,
    walk: bool,
) -> Pages {
    let mut pages = Pages::default();
    let env = match mgmt.send(
        "POST",
        "/graphql",
        Some(&serde_json::json!({"query": "{ environments { items { id handler } } }"})),
    ) {
        Ok((200, v)) => v["data"]["environments"]["items"]
            .as_array()
            .and_then(|l| l.iter().find(|e| e["handler"] == "dev"))
            .and_then(|e| e["id"].as_str().map(str::to_string)),
        _ => None,
    };
    let Some(env) = env else {
        pages
            .failures
            .push((Instant::now(), "no environment dev through GraphQL".into()));
        return pages;
    };
    let every = end.saturating_duration_since(start) / n as u32;
    let mut offset = 0i64;
    for k in 0..n {
        let due = start + every * k as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let body = serde_json::json!({
            "query": RUNTIMES_DOCUMENT,
            "variables": {"environmentId": env, "limit": 100, "offset": offset},
        });
        let sent = Instant::now();
        match mgmt.send("POST", "/graphql", Some(&body)) {
            Ok((200, page)) if page.get("errors").is_none() => {
                let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                let runtimes = &page["data"]["runtimes"];
                let items = runtimes["items"].as_array().map_or(0, Vec::len);
                let total = runtimes["pageInfo"]["total"].as_i64().unwrap_or(0);
                if items == 0 {
                    pages
                        .failures
                        .push((Instant::now(), "an empty page".into()));
                } else {
                    pages.micros.push(us);
                }
                offset += if walk { 100 } else { 0 };
                if offset >= total {
                    offset = 0;
                }
            }
            Ok((status, v)) => pages.failures.push((
                Instant::now(),
                format!(
                    "HTTP {status}: {}",
                    v.to_string().chars().take(200).collect::<String>()
                ),
            )),
            Err(e) => pages.failures.push((Instant::now(), e)),
        }
    }
    pages
}

/// Sorts out what happened around a restart: failures while the server
/// was down are expected and relabelled; the rest are checked.
pub fn restart_checks(
    tally: &mut Tally,
    runtimes: &[Runtime],
    r: &Restart,
    reconnects: u64,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut while_down: BTreeMap<String, u64> = BTreeMap::new();
    let mut after: BTreeMap<String, u64> = BTreeMap::new();
    for (t, what) in &tally.error_times {
        if *t >= r.down_from && *t <= r.ready_at {
            *while_down.entry(what.clone()).or_default() += 1;
        } else if *t > r.ready_at {
            *after.entry(what.clone()).or_default() += 1;
        }
    }
    for (what, n) in &while_down {
        if let Some(v) = tally.errors.get_mut(what) {
            *v -= n;
            if *v == 0 {
                tally.errors.remove(what);
            }
        }
        *tally
            .errors
            .entry(format!("while restarting (expected): {what}"))
            .or_default() += n;
    }
    let five_xx: u64 = tally
        .errors
        .iter()
        .filter(|(k, _)| k.contains("HTTP 5"))
        .map(|(_, v)| v)
        .sum();
    checks.push(check(
        "no 5xx",
        five_xx == 0,
        format!("{five_xx} answers with a 5xx status"),
    ));
    let after_total: u64 = after.values().sum();
    checks.push(check(
        "no failed request once the server was ready again",
        after_total == 0,
        format!("{after_total} failed: {after:?}"),
    ));
    let mut waits: Vec<Duration> = tally
        .around_restart
        .iter()
        .filter(|(_, done)| *done > r.ready_at)
        .map(|(due, done)| done.saturating_duration_since((*due).max(r.ready_at)))
        .collect();
    waits.sort();
    let max = waits.last().copied().unwrap_or_default();
    let p99 = waits
        .get((waits.len().saturating_sub(1)) * 99 / 100)
        .copied()
        .unwrap_or_default();
    checks.push(check(
        format!("no request waits more than {} s after the restart", HERD_WAIT_TARGET.as_secs()),
        !waits.is_empty() && max <= HERD_WAIT_TARGET,
        format!(
            "{} requests answered after ready (wait from max(due, ready)): p99 {:.1} ms, max {:.1} ms",
            waits.len(),
            p99.as_secs_f64() * 1000.0,
            max.as_secs_f64() * 1000.0
        ),
    ));
    // When each running runtime was first acknowledged after the restart.
    let mut back: Vec<Duration> = Vec::new();
    let mut never = 0;
    for rt in runtimes.iter().filter(|rt| !rt.stops) {
        match rt.oks_after_restart.iter().find(|t| **t > r.ready_at) {
            Some(t) => back.push(t.saturating_duration_since(r.ready_at)),
            None => never += 1,
        }
    }
    back.sort();
    let last = back.last().copied().unwrap_or_default();
    checks.push(check(
        "every runtime was acknowledged again after the restart",
        never == 0,
        format!(
            "{} runtimes back, the last {:.2} s after ready; {never} never; {reconnects} connections opened during the run",
            back.len(),
            last.as_secs_f64()
        ),
    ));
    checks
}
