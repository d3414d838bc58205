//! The MI convergence benchmark (`--mi-converge-check`, issue 14 point 6):
//! with every simulated MI replica of one integration RUNNING, one
//! desired-state change through icpd's REST API, and how long until every
//! replica runs it and reports it.
//!
//! Three clocks are read:
//! - icpd's own view: `GET .../mi/artifacts` polled every `--mi-converge-poll-ms` (200 ms) until the
//!   artifact is `inSync` (first poll that says so, and the send of the
//!   last poll that did not: the convergence lies between them);
//! - the fake Management API's records (`mi::Node::changes`): when each
//!   replica received the management call that changed its state;
//! - the load threads' records (`mi::Node::reports`): when each replica's
//!   full heartbeat reporting the new state was acknowledged (MI reports a
//!   change only through the hash of its next delta, answered with
//!   `fullHeartbeatRequired`, and the full heartbeat that follows).
//!
//! Heartbeat latency is split at the PUT: the steady state before it is
//! the baseline, and the p99 from the PUT until convergence (or the end)
//! must stay within 2× that baseline.
//!
//! The API is being built alongside this check; its shape is coded in
//! [`DesiredStateApi`] only, so it can be adjusted in one place.
//!
//! `--mi-converge-direct` measures the MI side without that API: the fleet
//! itself plays the control plane and calls every replica's Management API
//! once, one call after the other ([`call_every_replica`]), and icpd's view
//! is not polled. It checks the measurement, and gives the floor to which
//! a real control plane adds its own delay.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::mi::{Field, Fleet, Kind};
use crate::observe::{check, Check};
use crate::spawned::Management;

/// How often the replicas are counted before the change.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// How long to wait, from the planned PUT, for every replica to be listed
/// RUNNING before sending the PUT anyway.
const RUNNING_WAIT: Duration = Duration::from_secs(30);

/// The target: heartbeat p99 during convergence ≤ this × the baseline p99.
const P99_FACTOR: f64 = 2.0;

/// The desired-state change: one artifact of one integration in one
/// environment, and the state every replica must reach.
pub struct Target {
    pub project: String,
    pub integration: String,
    pub environment: String,
    /// The artifact as the fleet's nodes know it.
    pub kind: Kind,
    pub name: String,
    /// The state asked for: `false` is disabled.
    pub enabled: bool,
    /// How often icpd's view is polled after the change.
    pub poll_every: Duration,
}

/// icpd's MI desired-state API, as the lead engineer specified it (not yet
/// merged when this check was written):
/// - `PUT /api/v1/projects/{p}/integrations/{i}/environments/{e}/mi/artifacts/{kind}/{name}`
///   with `{"state":"disabled"}`, answered 202;
/// - `GET .../mi/artifacts`: `{"artifacts":[{"kind","name","inSync",
///   "runtimes":[{"runtimeId","state","inSync"}]}]}`.
struct DesiredStateApi;

impl DesiredStateApi {
    fn base(t: &Target) -> String {
        format!(
            "/api/v1/projects/{}/integrations/{}/environments/{}/mi/artifacts",
            t.project, t.integration, t.environment
        )
    }

    /// The API's name for an artifact kind.
    fn kind(kind: Kind) -> &'static str {
        match kind {
            Kind::Api => "api",
            Kind::Proxy => "proxy-service",
            Kind::Endpoint => "endpoint",
            Kind::Inbound => "inbound-endpoint",
            Kind::Sequence => "sequence",
            Kind::Task => "task",
            Kind::Template => "template",
            Kind::Processor => "message-processor",
        }
    }

    fn state(enabled: bool) -> &'static str {
        if enabled {
            "enabled"
        } else {
            "disabled"
        }
    }

    /// The PUT, and the status it must be answered with.
    fn put(t: &Target) -> (String, Value, u16) {
        (
            format!("{}/{}/{}", Self::base(t), Self::kind(t.kind), t.name),
            json!({"state": Self::state(t.enabled)}),
            202,
        )
    }

    /// The listing narrowed to the one artifact (its replicas only).
    fn list(t: &Target) -> String {
        format!(
            "{}?kind={}&name={}",
            Self::base(t),
            Self::kind(t.kind),
            t.name
        )
    }

    /// The artifact in a listing: whether icpd calls it in sync, how many
    /// replicas report the desired state, and how many are listed.
    fn view(t: &Target, listing: &Value) -> Option<View> {
        let a = listing["artifacts"].as_array()?.iter().find(|a| {
            a["kind"].as_str() == Some(Self::kind(t.kind)) && a["name"].as_str() == Some(&t.name)
        })?;
        let runtimes = a["runtimes"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        Some(View {
            in_sync: a["inSync"].as_bool() == Some(true),
            reporting: runtimes
                .iter()
                .filter(|r| r["state"].as_str() == Some(Self::state(t.enabled)))
                .count(),
            listed: runtimes.len(),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct View {
    in_sync: bool,
    reporting: usize,
    listed: usize,
}

/// With `--mi-converge-direct`: the fleet's nodes and the Management API's
/// port, to call every replica itself.
pub struct Direct {
    pub fleet: Arc<Fleet>,
    pub port: u16,
}

/// What the converge thread saw.
pub struct Seen {
    /// The fleet made the management calls itself (`--mi-converge-direct`).
    direct: bool,
    /// RUNNING replicas of this run listed just before the PUT.
    running: Result<usize, String>,
    /// When the PUT was sent.
    pub put_at: Option<Instant>,
    /// Why the change could not be made or followed (the API answered
    /// something else than expected).
    failure: Option<String>,
    /// The first poll that listed the artifact in sync: when it was answered.
    in_sync_at: Option<Instant>,
    /// The send of the last poll that did not.
    not_yet_at: Option<Instant>,
    /// icpd's view over time: (answer, replicas reporting the state, listed).
    timeline: Vec<(Instant, usize, usize)>,
    polls: u64,
    /// How long each answered poll took, µs.
    poll_micros: Vec<u64>,
    poll_failures: Vec<String>,
}

/// Starts the converge thread: at `at`, waits until the `expected` replicas
/// whose ids start with `id_prefix` are RUNNING, sends the PUT, then
/// polls until in sync or `end`.
pub fn start(
    mut mgmt: Management,
    target: Target,
    id_prefix: String,
    expected: usize,
    at: Instant,
    end: Instant,
    direct: Option<Direct>,
) -> JoinHandle<(Target, Seen)> {
    std::thread::spawn(move || {
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        let seen = follow(&mut mgmt, &target, &id_prefix, expected, end, direct);
        (target, seen)
    })
}

fn follow(
    mgmt: &mut Management,
    t: &Target,
    prefix: &str,
    expected: usize,
    end: Instant,
    direct: Option<Direct>,
) -> Seen {
    let mut seen = Seen {
        direct: direct.is_some(),
        running: Err("not counted".into()),
        put_at: None,
        failure: None,
        in_sync_at: None,
        not_yet_at: None,
        timeline: Vec::new(),
        polls: 0,
        poll_micros: Vec::new(),
        poll_failures: Vec::new(),
    };
    let waited = Instant::now();
    loop {
        seen.running = running(mgmt, t, prefix);
        let all = seen.running.as_ref().is_ok_and(|n| *n >= expected);
        if all || waited.elapsed() > RUNNING_WAIT || Instant::now() >= end {
            break;
        }
        std::thread::sleep(POLL_EVERY);
    }
    if let Some(d) = direct {
        seen.put_at = Some(Instant::now());
        seen.failure = call_every_replica(&d, t).err();
        return seen;
    }
    let (path, body, want) = DesiredStateApi::put(t);
    seen.put_at = Some(Instant::now());
    match mgmt.send("PUT", &path, Some(&body)) {
        Ok((status, _)) if status == want => {}
        // icpd's router says "no route for ..." when the route is missing;
        // any other 404 is the API refusing this integration or artifact.
        Ok((404, answer)) if answer.to_string().contains("no route") => {
            seen.failure = Some(format!(
                "PUT {path} answered 404 ({answer}): this icpd has no MI desired-state API yet; run the same command again once it has"
            ));
            return seen;
        }
        Ok((status, answer)) => {
            seen.failure = Some(format!(
                "PUT {path} answered {status}, not {want}: {answer}"
            ));
            return seen;
        }
        Err(e) => {
            seen.failure = Some(e);
            return seen;
        }
    }
    let list = DesiredStateApi::list(t);
    while Instant::now() < end {
        let sent = Instant::now();
        match mgmt.send("GET", &list, None) {
            Ok((200, listing)) => {
                seen.polls += 1;
                let answered = Instant::now();
                seen.poll_micros
                    .push(answered.duration_since(sent).as_micros() as u64);
                match DesiredStateApi::view(t, &listing) {
                    Some(v) => {
                        seen.timeline.push((answered, v.reporting, v.listed));
                        if v.in_sync {
                            seen.in_sync_at = Some(answered);
                            return seen;
                        }
                        seen.not_yet_at = Some(sent);
                    }
                    None => seen.not_yet_at = Some(sent),
                }
            }
            Ok((404, answer)) if seen.polls == 0 && answer.to_string().contains("no route") => {
                seen.failure = Some(format!(
                    "GET {list} answered 404 ({answer}): this icpd cannot list MI artifacts yet"
                ));
                return seen;
            }
            Ok((status, answer)) => seen.poll_failures.push(format!("HTTP {status} {answer}")),
            Err(e) => seen.poll_failures.push(e),
        }
        std::thread::sleep((sent + t.poll_every).saturating_duration_since(Instant::now()));
    }
    seen
}

/// `--mi-converge-direct`: the management call a control plane would make,
/// to every replica, one after the other, with the control plane's token
/// for each replica's secret. Fails on the first call not answered 200.
fn call_every_replica(d: &Direct, t: &Target) -> Result<(), String> {
    use crate::mi_mgmt::icp_bearer;
    use icpd::http::client::{Client, ClientTls};
    if !t.kind.has_status() {
        return Err(format!(
            "--mi-converge-direct changes a status; {:?} has none",
            t.kind
        ));
    }
    let status = if t.enabled { "active" } else { "inactive" };
    let body = json!({"name": t.name, "status": status}).to_string();
    let path = format!("/management/{}", t.kind.segment());
    for node in &d.fleet.nodes {
        let (host, kid, material) = {
            let n = node.lock().unwrap_or_else(|p| p.into_inner());
            if n.integration != t.integration {
                continue;
            }
            (n.host, n.key_id.clone(), n.material.clone())
        };
        let now = chrono::Utc::now().timestamp();
        let bearer = icp_bearer(&kid, &material, now, now + 60);
        let url = format!("https://{host}:{}", d.port);
        let mut c = Client::new(&url, ClientTls::Insecure).map_err(|e| e.to_string())?;
        let headers = [
            ("Content-Type", "application/json"),
            ("Authorization", bearer.as_str()),
        ];
        let r = c
            .request("POST", &path, &headers, body.as_bytes())
            .map_err(|e| format!("POST {url}{path}: {e}"))?;
        if r.status != 200 || r.json().get("Error").is_some() {
            return Err(format!(
                "POST {url}{path}: HTTP {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
    }
    Ok(())
}

/// Replicas of this run (ids starting with `prefix`) listed RUNNING in the
/// target's integration and environment.
fn running(mgmt: &mut Management, t: &Target, prefix: &str) -> Result<usize, String> {
    count_running(
        mgmt,
        &format!(
            "environment={}&project={}&integration={}",
            t.environment, t.project, t.integration
        ),
        prefix,
    )
}

/// Runtimes whose ids start with `prefix` listed RUNNING under `filter`
/// (query parameters of `GET /api/v1/runtimes`), walking every page.
pub fn count_running(mgmt: &mut Management, filter: &str, prefix: &str) -> Result<usize, String> {
    let mut n = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/runtimes?status=RUNNING&{filter}&limit=500");
        if let Some(c) = &cursor {
            path.push_str("&cursor=");
            path.push_str(c);
        }
        let page = mgmt.get(&path)?;
        n += page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| {
                r["runtimeId"]
                    .as_str()
                    .is_some_and(|id| id.starts_with(prefix))
            })
            .count();
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok(n),
        }
    }
}

/// Nearest-rank percentile of sorted microseconds, in ms.
fn pct_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

/// Prints what happened and turns it into checks. `timed` holds every
/// measured heartbeat as (due time, latency µs); `expected` replicas.
pub fn finish(
    target: &Target,
    seen: &Seen,
    fleet: &Fleet,
    timed: &[(Instant, u32)],
    start: Instant,
    end: Instant,
    expected: usize,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let what = format!(
        "{} {} -> {} in {}/{}/{}",
        DesiredStateApi::kind(target.kind),
        target.name,
        DesiredStateApi::state(target.enabled),
        target.project,
        target.integration,
        target.environment
    );
    let running = match &seen.running {
        Ok(n) => *n,
        Err(_) => 0,
    };
    checks.push(check(
        format!("all {expected} replicas RUNNING before the change"),
        running >= expected,
        match &seen.running {
            Ok(n) => format!(
                "{n} of this run's replicas listed RUNNING in {}/{}/{}",
                target.project, target.integration, target.environment
            ),
            Err(e) => format!("could not list them: {e}"),
        },
    ));
    let Some(put_at) = seen.put_at else {
        return checks;
    };
    if let Some(f) = &seen.failure {
        checks.push(check(
            format!("desired state {what} accepted and followed"),
            false,
            f.clone(),
        ));
        return checks;
    }
    let secs = |t: Instant| t.saturating_duration_since(put_at).as_secs_f64();

    // The fake Management API's records and the heartbeats' records.
    let index = fleet.layout.find(target.kind, &target.name);
    let mut called = Vec::new();
    let mut reported = Vec::new();
    for node in &fleet.nodes {
        let n = node.lock().unwrap_or_else(|p| p.into_inner());
        let change = n.changes.iter().find(|c| {
            c.at >= put_at
                && c.kind == target.kind
                && Some(c.index) == index
                && c.field == Field::State
                && c.value == target.enabled
        });
        if let Some(c) = change {
            called.push(c.at);
            if let Some((t, _)) = n
                .reports
                .iter()
                .find(|(t, g)| *t >= c.at && *g >= c.generation)
            {
                reported.push(*t);
            }
        }
    }
    called.sort();
    reported.sort();
    let spread = |v: &[Instant]| -> String {
        if v.is_empty() {
            return "none".into();
        }
        let at = |q: f64| secs(v[((v.len() - 1) as f64 * q).round() as usize]);
        format!(
            "first {:.2} s, median {:.2} s, 90% {:.2} s, last {:.2} s",
            at(0.0),
            at(0.5),
            at(0.9),
            at(1.0)
        )
    };
    let caller = if seen.direct { "the fleet" } else { "icpd" };
    println!(
        "converge      {what}: {} {:.1} s into the measurement",
        if seen.direct {
            "the fleet itself began calling every replica (--mi-converge-direct; no PUT, called 'the PUT' below)"
        } else {
            "PUT sent"
        },
        put_at.saturating_duration_since(start).as_secs_f64()
    );
    println!(
        "converge      replicas called by {caller} (fake Management API): {} of {expected}; after the PUT: {}",
        called.len(),
        spread(&called)
    );
    println!(
        "converge      replicas whose full heartbeat reported it: {} of {expected}; after the PUT: {}",
        reported.len(),
        spread(&reported)
    );
    // Both counts over time, one column per second.
    let last = reported.last().or(called.last()).copied().unwrap_or(put_at);
    let seconds = secs(last).ceil() as usize;
    let mut line = String::new();
    for s in 1..=seconds.min(60) {
        let by = put_at + Duration::from_secs(s as u64);
        line.push_str(&format!(
            " {s}s:{}/{}",
            called.partition_point(|t| *t <= by),
            reported.partition_point(|t| *t <= by)
        ));
    }
    if !line.is_empty() {
        println!("converge      called/reported by second after the PUT:{line}");
    }
    if let Some((t, reporting, listed)) = seen.timeline.last() {
        let mut took = seen.poll_micros.clone();
        took.sort_unstable();
        let ms = |us: u64| us as f64 / 1000.0;
        println!(
            "converge      icpd's view: {} polls (answered in ms: median {:.1}, max {:.1}), the last {:.2} s after the PUT listing {reporting} of {listed} replicas in the desired state; {} polls failed",
            seen.polls,
            took.get(took.len() / 2).copied().map_or(0.0, ms),
            took.last().copied().map_or(0.0, ms),
            secs(*t),
            seen.poll_failures.len()
        );
    }

    checks.push(check(
        format!("{caller} called every replica's Management API"),
        called.len() == expected,
        format!("{} of {expected} replicas changed state", called.len()),
    ));
    checks.push(check(
        "every replica reported the new state in a full heartbeat",
        reported.len() == expected,
        format!(
            "{} of {expected}; the last {:.2} s after the PUT",
            reported.len(),
            reported.last().map_or(0.0, |t| secs(*t))
        ),
    ));
    if !seen.direct {
        checks.push(check(
            "icpd lists the artifact in sync",
            seen.in_sync_at.is_some(),
            match seen.in_sync_at {
                Some(t) => format!(
                    "first listed in sync {:.2} s after the PUT (the last poll not yet in sync was sent at {:.2} s)",
                    secs(t),
                    seen.not_yet_at.map_or(0.0, secs)
                ),
                None => "never, before the end of the measurement".into(),
            },
        ));
    }

    // Heartbeat latency: baseline before the PUT, and from the PUT to
    // convergence (or the end).
    let until = seen
        .in_sync_at
        .or(reported.last().copied())
        .unwrap_or(end)
        .max(put_at + POLL_EVERY);
    let mut before: Vec<u32> = timed
        .iter()
        .filter(|(d, _)| *d >= start && *d < put_at)
        .map(|(_, us)| *us)
        .collect();
    let mut during: Vec<u32> = timed
        .iter()
        .filter(|(d, _)| *d >= put_at && *d <= until)
        .map(|(_, us)| *us)
        .collect();
    before.sort_unstable();
    during.sort_unstable();
    let (b99, d99) = (pct_ms(&before, 99.0), pct_ms(&during, 99.0));
    println!(
        "converge      heartbeat latency ms: baseline before the PUT p50 {:.2} p99 {b99:.2} ({} heartbeats); PUT to convergence p50 {:.2} p99 {d99:.2} ({} heartbeats)",
        pct_ms(&before, 50.0),
        before.len(),
        pct_ms(&during, 50.0),
        during.len()
    );
    checks.push(Check {
        timing: true,
        ..check(
            format!("heartbeat p99 during convergence ≤ {P99_FACTOR}× the baseline"),
            !before.is_empty() && !during.is_empty() && d99 <= P99_FACTOR * b99,
            format!("{d99:.2} ms vs baseline {b99:.2} ms"),
        )
    });
    checks
}
