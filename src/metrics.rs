//! icpd's own metrics, for `GET /metrics` on the management listener in the
//! Prometheus text exposition format 0.0.4.
//!
//! One process-wide registry of statics. Instrumented code bumps atomics;
//! [`render`] reads them at scrape time, together with what is cheaper to
//! read then than to keep up to date: runtimes by status and the
//! self-preservation hold (from [`Liveness`]), database file sizes, and the
//! process's memory, descriptors and threads (`/proc/self`, Linux only;
//! elsewhere those families are left out).
//!
//! What it costs on the hot path: a heartbeat adds one relaxed atomic
//! increment ([`heartbeat`]); a request adds one histogram observation, a
//! bucket scan and two relaxed atomic increments ([`Histogram::observe`]).
//! The runtime listener's known routes resolve their histogram once, when
//! the handler is built ([`RouteTimer`]); the management API looks its
//! route's histogram up in a small mutex-guarded map, which only a
//! management request takes.
//!
//! Labels are bounded: methods are mapped to a fixed set, routes are the
//! route table's path patterns (`/api/v1/projects/{project}`) or a fixed
//! word (`other`, `console`), never a raw path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::error::Error;
use crate::liveness::Liveness;
use crate::refusals::Reason;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the duration buckets, in nanoseconds: 100 µs to 10 s. A
/// delta heartbeat takes well under a millisecond, a full one that writes
/// a few milliseconds, a liveness flush an fsync.
const BOUNDS_NANOS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A duration histogram: one counter per bucket (not cumulative; the
/// exposition adds them up) plus one for above the last bound, and the sum.
/// The count is the total of the buckets, so `+Inf` always equals
/// `_count` even while observations race a scrape.
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS_NANOS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BOUNDS_NANOS.len() + 1],
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NANOS
            .iter()
            .position(|&b| nanos <= b)
            .unwrap_or(BOUNDS_NANOS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// Cumulative bucket counts (the last is `+Inf`, the count) and the sum
    /// in seconds.
    fn snapshot(&self) -> ([u64; BOUNDS_NANOS.len() + 1], f64) {
        let mut cumulative = [0; BOUNDS_NANOS.len() + 1];
        let mut total = 0u64;
        for (c, b) in cumulative.iter_mut().zip(&self.buckets) {
            total = total.wrapping_add(b.load(Relaxed));
            *c = total;
        }
        (cumulative, self.sum_nanos.load(Relaxed) as f64 / 1e9)
    }

    #[cfg(test)]
    fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new()
    }
}

/// How long one liveness sweep took (every 500 ms).
pub static LIVENESS_SWEEP: Histogram = Histogram::new();
/// How long one liveness flush that wrote something (or failed) took.
pub static LIVENESS_FLUSH: Histogram = Histogram::new();

/// How long one telemetry retention pass took (whether or not it deleted).
pub static RETENTION_PASS: Histogram = Histogram::new();

// ----------------------------------------------------------------- telemetry

/// Records ingested, by signal (logs, requests, points) and outcome
/// (accepted, rejected); rows deleted by retention, by reason (age, size).
static INGESTED: [[AtomicU64; 2]; 3] = [const { [const { AtomicU64::new(0) }; 2] }; 3];
static RETAINED: [AtomicU64; 2] = [const { AtomicU64::new(0) }; 2];
const SIGNALS: [&str; 3] = ["logs", "requests", "points"];

/// Counts one ingest request's records: accepted logs, request records and
/// metric points, and the records rejected (whatever their kind).
pub fn ingested(logs: usize, requests: usize, points: usize, rejected: usize, signal: usize) {
    for (i, n) in [logs, requests, points].into_iter().enumerate() {
        INGESTED[i][0].fetch_add(n as u64, Relaxed);
    }
    INGESTED[signal.min(2)][1].fetch_add(rejected as u64, Relaxed);
}

/// Counts rows a retention pass deleted for age and for size.
pub fn retained(by_age: u64, by_size: u64) {
    RETAINED[0].fetch_add(by_age, Relaxed);
    RETAINED[1].fetch_add(by_size, Relaxed);
}

// ---------------------------------------------------------------- heartbeats

/// Which heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatKind {
    Full,
    Delta,
}

impl HeartbeatKind {
    const ALL: [HeartbeatKind; 2] = [HeartbeatKind::Full, HeartbeatKind::Delta];

    fn label(self) -> &'static str {
        match self {
            HeartbeatKind::Full => "full",
            HeartbeatKind::Delta => "delta",
        }
    }
}

/// What became of a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    /// Acknowledged.
    Ok,
    /// A delta from a runtime icpd does not know: answered with
    /// `fullHeartbeatRequired`.
    UnknownRuntime,
    /// 401: no, malformed, expired or unknown token.
    Unauthorized,
    /// 400: the body could not be decoded or is invalid.
    BadRequest,
    /// 403: e.g. a delta under another secret than the registration.
    Forbidden,
    /// 429: over the runtime's heartbeat rate limit.
    Limited,
    /// Anything else (a 500).
    Error,
}

impl HeartbeatOutcome {
    const ALL: [HeartbeatOutcome; 7] = [
        HeartbeatOutcome::Ok,
        HeartbeatOutcome::UnknownRuntime,
        HeartbeatOutcome::Unauthorized,
        HeartbeatOutcome::BadRequest,
        HeartbeatOutcome::Forbidden,
        HeartbeatOutcome::Limited,
        HeartbeatOutcome::Error,
    ];

    /// The outcome a heartbeat refused with `e` had.
    pub fn of_error(e: &Error) -> HeartbeatOutcome {
        match e {
            Error::Unauthorized(_) => HeartbeatOutcome::Unauthorized,
            Error::BadRequest(_) => HeartbeatOutcome::BadRequest,
            Error::Forbidden(_) => HeartbeatOutcome::Forbidden,
            Error::TooManyRequests { .. } => HeartbeatOutcome::Limited,
            _ => HeartbeatOutcome::Error,
        }
    }

    fn label(self) -> &'static str {
        match self {
            HeartbeatOutcome::Ok => "ok",
            HeartbeatOutcome::UnknownRuntime => "unknown_runtime",
            HeartbeatOutcome::Unauthorized => "unauthorized",
            HeartbeatOutcome::BadRequest => "bad_request",
            HeartbeatOutcome::Forbidden => "forbidden",
            HeartbeatOutcome::Limited => "limited",
            HeartbeatOutcome::Error => "error",
        }
    }
}

static HEARTBEATS: [[AtomicU64; HeartbeatOutcome::ALL.len()]; HeartbeatKind::ALL.len()] =
    [const { [const { AtomicU64::new(0) }; HeartbeatOutcome::ALL.len()] };
        HeartbeatKind::ALL.len()];

/// Counts one heartbeat received.
pub fn heartbeat(kind: HeartbeatKind, outcome: HeartbeatOutcome) {
    HEARTBEATS[kind as usize][outcome as usize].fetch_add(1, Relaxed);
}

// ------------------------------------------------------------ MI management

/// Outcomes of calls to MI runtimes' Management API: `ok` or the failure's
/// code (`mi::management::CallError::code`); anything else counts as `other`.
const MI_CALL_OUTCOMES: [&str; 15] = [
    "ok",
    "unreachable",
    "timeout",
    "tls",
    "certificate_changed",
    "too_large",
    "malformed",
    "invalid_request",
    "unauthorized",
    "not_found",
    "refused",
    "user_store_unsupported",
    "invalid_call",
    "too_many_users",
    "other",
];
/// direct (icpd dials the runtime) or tunnel (the call rides a heartbeat response).
const MI_CALL_MODES: [&str; 2] = ["direct", "tunnel"];

static MI_CALLS: [[AtomicU64; MI_CALL_OUTCOMES.len()]; MI_CALL_MODES.len()] =
    [const { [const { AtomicU64::new(0) }; MI_CALL_OUTCOMES.len()] }; MI_CALL_MODES.len()];

/// How people sign in, for `icpd_sign_ins_total`.
const SIGN_IN_METHODS: [&str; 3] = ["password", "oidc", "ldap"];
/// Sign-in outcomes: `ok`, `refused` (wrong credentials, no role, a
/// refused or expired code), `unavailable` (the provider, directory or
/// database could not answer).
const SIGN_IN_OUTCOMES: [&str; 3] = ["ok", "refused", "unavailable"];

static SIGN_INS: [[AtomicU64; SIGN_IN_OUTCOMES.len()]; SIGN_IN_METHODS.len()] =
    [const { [const { AtomicU64::new(0) }; SIGN_IN_OUTCOMES.len()] }; SIGN_IN_METHODS.len()];

/// Counts one sign-in attempt by `method` (`password`, `oidc`, `ldap`)
/// answered with `status`.
pub fn sign_in(method: &str, status: u16) {
    let m = SIGN_IN_METHODS
        .iter()
        .position(|x| *x == method)
        .unwrap_or(0);
    SIGN_INS[m][outcome_of(status)].fetch_add(1, Relaxed);
}

/// Try-It outcomes: `ok` (the runtime answered, whatever its status),
/// `refused` (icpd refused the call), `unavailable` (the runtime did not
/// answer in time, or the pool was full).
const TRY_IT_OUTCOMES: [&str; 3] = ["ok", "refused", "unavailable"];

static TRY_ITS: [AtomicU64; TRY_IT_OUTCOMES.len()] =
    [const { AtomicU64::new(0) }; TRY_IT_OUTCOMES.len()];

/// Counts one Try-It call answered with `status` (icpd's own status).
pub fn try_it_call(status: u16) {
    TRY_ITS[outcome_of(status)].fetch_add(1, Relaxed);
}

/// The index of `ok`, `refused` or `unavailable` for an answer's status.
fn outcome_of(status: u16) -> usize {
    match status {
        0..=399 => 0,
        500.. => 2,
        _ => 1,
    }
}

/// Counts one ended Management API call.
pub fn mi_call(tunnel: bool, outcome: &str) {
    let o = MI_CALL_OUTCOMES
        .iter()
        .position(|x| *x == outcome)
        .unwrap_or(MI_CALL_OUTCOMES.len() - 1);
    MI_CALLS[usize::from(tunnel)][o].fetch_add(1, Relaxed);
}

// ------------------------------------------------------------------ refusals

/// The listeners a refusal can happen on: runtime requests on the runtime
/// listener, and runtime protocol requests sent to the management port.
const REFUSAL_LISTENERS: [&str; 2] = ["runtime", "management"];

static REFUSALS: [[AtomicU64; Reason::ALL.len()]; REFUSAL_LISTENERS.len()] =
    [const { [const { AtomicU64::new(0) }; Reason::ALL.len()] }; REFUSAL_LISTENERS.len()];

/// Counts one runtime or shipper refused on `listener` for `reason`.
pub fn refused(listener: &str, reason: Reason) {
    let l = usize::from(listener == "management");
    REFUSALS[l][reason as usize].fetch_add(1, Relaxed);
}

// ------------------------------------------------------------------ requests

/// (listener, route, method): one request-duration series.
type RouteKey = (&'static str, &'static str, &'static str);

static REQUESTS: Mutex<BTreeMap<RouteKey, Arc<Histogram>>> = Mutex::new(BTreeMap::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The method as a label: the usual ones, else `other`.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

/// The histogram of one (listener, method, route), created on first use.
fn request_histogram(
    listener: &'static str,
    method: &'static str,
    route: &'static str,
) -> Arc<Histogram> {
    lock(&REQUESTS)
        .entry((listener, route, method))
        .or_default()
        .clone()
}

/// Records how long a request on `listener` took. `route` is a path
/// pattern or a fixed word, never the raw path.
pub fn observe_request(listener: &'static str, method: &str, route: &'static str, d: Duration) {
    request_histogram(listener, method_label(method), route).observe(d);
}

/// Times a listener whose routes are a short fixed list: each known
/// (method, path) has its histogram resolved up front, so timing one of
/// them takes no lock. Anything else goes to the path's route with the
/// method it came with, or to `other`.
pub struct RouteTimer {
    listener: &'static str,
    known: Vec<(&'static str, &'static str, Arc<Histogram>)>,
}

impl RouteTimer {
    /// `routes`: (method, path) pairs.
    pub fn new(listener: &'static str, routes: &[(&'static str, &'static str)]) -> RouteTimer {
        RouteTimer {
            listener,
            known: routes
                .iter()
                .map(|&(m, p)| (m, p, request_histogram(listener, m, p)))
                .collect(),
        }
    }

    /// Records a request of `method` on `path` that took `d`.
    pub fn observe(&self, method: &str, path: &str, d: Duration) {
        if let Some((_, _, h)) = self
            .known
            .iter()
            .find(|(m, p, _)| *p == path && *m == method)
        {
            return h.observe(d);
        }
        let route = self
            .known
            .iter()
            .find(|(_, p, _)| *p == path)
            .map_or("other", |(_, p, _)| p);
        observe_request(self.listener, method, route, d);
    }
}

// --------------------------------------------------------------- connections

/// The connection counts of one listener.
#[derive(Default)]
pub struct Connections {
    accepted: AtomicU64,
    refused_total: AtomicU64,
    refused_per_ip: AtomicU64,
    /// The open-connection counters of the servers with this name (tests
    /// may start several in one process); summed at scrape time.
    open: Mutex<Vec<Weak<AtomicUsize>>>,
}

impl Connections {
    /// A connection was admitted.
    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Relaxed);
    }

    /// A connection was refused at `max_connections`.
    pub fn refused_at_total_cap(&self) {
        self.refused_total.fetch_add(1, Relaxed);
    }

    /// A connection was refused at `max_connections_per_ip`.
    pub fn refused_at_per_ip_cap(&self) {
        self.refused_per_ip.fetch_add(1, Relaxed);
    }

    fn open(&self) -> usize {
        let mut open = lock(&self.open);
        open.retain(|w| w.strong_count() > 0);
        open.iter()
            .filter_map(Weak::upgrade)
            .map(|a| a.load(Relaxed))
            .sum()
    }
}

static CONNECTIONS: Mutex<Vec<(String, Arc<Connections>)>> = Mutex::new(Vec::new());

/// The connection counts of `listener`, which reads its open connections
/// from `open` (the server's own counter) from now on.
pub fn connections(listener: &str, open: &Arc<AtomicUsize>) -> Arc<Connections> {
    let mut all = lock(&CONNECTIONS);
    let c = match all.iter().find(|(n, _)| n == listener) {
        Some((_, c)) => c.clone(),
        None => {
            let c = Arc::new(Connections::default());
            all.push((listener.to_string(), c.clone()));
            c
        }
    };
    lock(&c.open).push(Arc::downgrade(open));
    c
}

// ------------------------------------------------------------------- render

/// What [`render`] reads besides the registry.
pub struct Sources<'a> {
    pub liveness: &'a Liveness,
    /// (name, path of the database file); its `-wal` file is measured too.
    pub databases: &'a [(&'static str, &'a Path)],
    /// The outbound pool (calls to MI runtimes).
    pub outbound: Option<crate::outbound::PoolStats>,
    /// The sign-in pool (calls to identity providers and directories).
    pub sign_in: Option<crate::outbound::PoolStats>,
    /// The Try-It pool (operators' requests to runtimes).
    pub try_it: Option<crate::outbound::PoolStats>,
    /// Several nodes on PostgreSQL: this node's view of the cluster.
    pub cluster: Option<crate::cluster::ClusterStatus>,
}

/// The whole exposition.
pub fn render(src: &Sources) -> String {
    let mut t = Text(String::with_capacity(16 * 1024));
    t.family(
        "icpd_build_info",
        "gauge",
        "Always 1; the version is a label.",
    );
    t.sample(
        "icpd_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );

    if let Some(c) = &src.cluster {
        t.family(
            "icpd_cluster_leader",
            "gauge",
            "1 when this node runs the OFFLINE sweep (holds the sweep lease), else 0; the node's id is a label.",
        );
        t.sample(
            "icpd_cluster_leader",
            &[("node", &c.node)],
            if c.leading { 1.0 } else { 0.0 },
        );
        t.family(
            "icpd_database_reachable",
            "gauge",
            "1 when the last lease round reached the database, else 0.",
        );
        t.sample(
            "icpd_database_reachable",
            &[],
            if c.database_reachable { 1.0 } else { 0.0 },
        );
        t.family(
            "icpd_cluster_changes_applied",
            "gauge",
            "Sequence number of the last change from the feed this node applied.",
        );
        t.sample(
            "icpd_cluster_changes_applied",
            &[],
            c.changes_applied as f64,
        );
        t.family(
            "icpd_database_write_commits_total",
            "counter",
            "Write transactions this node committed or tried; each carries one or more writes (group commit: writers that arrive while one is open join it).",
        );
        t.sample(
            "icpd_database_write_commits_total",
            &[],
            c.write_commits as f64,
        );
        t.family(
            "icpd_database_writes_total",
            "counter",
            "Writes this node ran in those transactions.",
        );
        t.sample("icpd_database_writes_total", &[], c.writes as f64);
    }

    t.family(
        "icpd_heartbeats_received_total",
        "counter",
        "Heartbeats received on the runtime listener, by kind (full, delta) and outcome.",
    );
    for kind in HeartbeatKind::ALL {
        for outcome in HeartbeatOutcome::ALL {
            if kind == HeartbeatKind::Full && outcome == HeartbeatOutcome::UnknownRuntime {
                continue; // a full heartbeat registers an unknown runtime
            }
            let n = HEARTBEATS[kind as usize][outcome as usize].load(Relaxed);
            t.sample_u64(
                "icpd_heartbeats_received_total",
                &[("kind", kind.label()), ("outcome", outcome.label())],
                n,
            );
        }
    }

    t.family(
        "icpd_runtime_refusals_total",
        "counter",
        "Runtimes and log shippers refused, by listener (runtime; management: a runtime request sent to the management port) and reason.",
    );
    for (l, listener) in REFUSAL_LISTENERS.iter().enumerate() {
        for reason in Reason::ALL {
            if (l == 1) != (reason == Reason::WrongListener) {
                continue; // only the management port sees wrong_listener, and only that
            }
            t.sample_u64(
                "icpd_runtime_refusals_total",
                &[("listener", listener), ("reason", reason.label())],
                REFUSALS[l][reason as usize].load(Relaxed),
            );
        }
    }

    t.family(
        "icpd_mi_management_calls_total",
        "counter",
        "Calls to MI runtimes' Management API that ended, by mode (direct, tunnel) and outcome (ok or the failure's code).",
    );
    for (m, mode) in MI_CALL_MODES.iter().enumerate() {
        for (o, outcome) in MI_CALL_OUTCOMES.iter().enumerate() {
            t.sample_u64(
                "icpd_mi_management_calls_total",
                &[("mode", mode), ("outcome", outcome)],
                MI_CALLS[m][o].load(Relaxed),
            );
        }
    }
    if let Some(o) = &src.outbound {
        t.gauge(
            "icpd_outbound_queued_calls",
            "Outbound calls (to MI runtimes) waiting for a thread of the bounded outbound pool.",
            o.queued as u64,
        );
        t.gauge(
            "icpd_outbound_running_calls",
            "Outbound calls running now.",
            o.running as u64,
        );
        t.family(
            "icpd_outbound_rejected_calls_total",
            "counter",
            "Outbound calls refused because the pool's queue was full (retried later).",
        );
        t.sample_u64("icpd_outbound_rejected_calls_total", &[], o.rejected);
    }

    t.family(
        "icpd_sign_ins_total",
        "counter",
        "Sign-in attempts by method (password, oidc, ldap) and outcome (ok, refused, unavailable).",
    );
    for (m, method) in SIGN_IN_METHODS.iter().enumerate() {
        for (o, outcome) in SIGN_IN_OUTCOMES.iter().enumerate() {
            t.sample_u64(
                "icpd_sign_ins_total",
                &[("method", method), ("outcome", outcome)],
                SIGN_INS[m][o].load(Relaxed),
            );
        }
    }
    if let Some(p) = &src.sign_in {
        t.gauge(
            "icpd_sign_in_pool_queued_calls",
            "Calls to identity providers and directories waiting for a thread of the sign-in pool.",
            p.queued as u64,
        );
        t.gauge(
            "icpd_sign_in_pool_running_calls",
            "Calls to identity providers and directories running now.",
            p.running as u64,
        );
        t.family(
            "icpd_sign_in_pool_rejected_calls_total",
            "counter",
            "Sign-ins refused because the sign-in pool's queue was full.",
        );
        t.sample_u64("icpd_sign_in_pool_rejected_calls_total", &[], p.rejected);
    }

    t.family(
        "icpd_try_it_calls_total",
        "counter",
        "Try-It calls to runtimes by outcome (ok: the runtime answered; refused; unavailable: no answer in time or the pool was full).",
    );
    for (o, outcome) in TRY_IT_OUTCOMES.iter().enumerate() {
        t.sample_u64(
            "icpd_try_it_calls_total",
            &[("outcome", outcome)],
            TRY_ITS[o].load(Relaxed),
        );
    }
    if let Some(p) = &src.try_it {
        t.gauge(
            "icpd_try_it_pool_queued_calls",
            "Try-It calls waiting for a thread of the Try-It pool.",
            p.queued as u64,
        );
        t.gauge(
            "icpd_try_it_pool_running_calls",
            "Try-It calls running now.",
            p.running as u64,
        );
    }

    let counts = src.liveness.counts();
    t.family(
        "icpd_runtimes",
        "gauge",
        "Known runtimes by status (RUNNING, OFFLINE), as icpd holds them in memory.",
    );
    t.sample_u64(
        "icpd_runtimes",
        &[("status", "RUNNING")],
        counts.running as u64,
    );
    t.sample_u64(
        "icpd_runtimes",
        &[("status", "OFFLINE")],
        counts.offline as u64,
    );

    let p = src.liveness.preservation();
    t.gauge(
        "icpd_self_preservation_active",
        "1 while self-preservation holds runtimes RUNNING that missed the heartbeat timeout at once, else 0.",
        u64::from(p.is_some()),
    );
    t.gauge(
        "icpd_self_preservation_held_runtimes",
        "Runtimes past the heartbeat timeout that self-preservation keeps RUNNING (0 when it is not active).",
        p.map_or(0, |p| p.held as u64),
    );
    t.gauge(
        "icpd_self_preservation_running_runtimes",
        "RUNNING runtimes at the sweep that held them, held ones included (0 when self-preservation is not active).",
        p.map_or(0, |p| p.running as u64),
    );

    {
        let requests: Vec<(RouteKey, Arc<Histogram>)> = lock(&REQUESTS)
            .iter()
            .map(|(k, h)| (*k, h.clone()))
            .collect();
        t.family(
            "icpd_http_request_duration_seconds",
            "histogram",
            "Time from a parsed request to its response, by listener, method and route (the route's path pattern).",
        );
        for ((listener, route, method), h) in &requests {
            t.histogram(
                "icpd_http_request_duration_seconds",
                &[("listener", listener), ("method", method), ("route", route)],
                h,
            );
        }
    }

    {
        let listeners: Vec<(String, Arc<Connections>)> = lock(&CONNECTIONS).clone();
        t.family(
            "icpd_connections_open",
            "gauge",
            "Open connections (handshaking, idle or being served), by listener.",
        );
        for (name, c) in &listeners {
            t.sample_u64(
                "icpd_connections_open",
                &[("listener", name)],
                c.open() as u64,
            );
        }
        t.family(
            "icpd_connections_accepted_total",
            "counter",
            "Connections admitted, by listener.",
        );
        for (name, c) in &listeners {
            t.sample_u64(
                "icpd_connections_accepted_total",
                &[("listener", name)],
                c.accepted.load(Relaxed),
            );
        }
        t.family(
            "icpd_connections_refused_total",
            "counter",
            "Connections refused at accept, by listener and the cap they hit (total: http.max_connections, per_ip: http.max_connections_per_ip).",
        );
        for (name, c) in &listeners {
            for (limit, n) in [("total", &c.refused_total), ("per_ip", &c.refused_per_ip)] {
                t.sample_u64(
                    "icpd_connections_refused_total",
                    &[("listener", name), ("limit", limit)],
                    n.load(Relaxed),
                );
            }
        }
    }

    t.family(
        "icpd_database_size_bytes",
        "gauge",
        "Size of each SQLite database's files: the database file (file=\"db\") and its write-ahead log (file=\"wal\").",
    );
    for (name, path) in src.databases {
        let Ok(db) = std::fs::metadata(path) else {
            continue;
        };
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = std::fs::metadata(&wal).map_or(0, |m| m.len());
        t.sample_u64(
            "icpd_database_size_bytes",
            &[("database", name), ("file", "db")],
            db.len(),
        );
        t.sample_u64(
            "icpd_database_size_bytes",
            &[("database", name), ("file", "wal")],
            wal,
        );
    }

    t.family(
        "icpd_liveness_sweep_duration_seconds",
        "histogram",
        "Time one liveness sweep (marking silent runtimes OFFLINE) took.",
    );
    t.histogram("icpd_liveness_sweep_duration_seconds", &[], &LIVENESS_SWEEP);
    t.family(
        "icpd_liveness_flush_duration_seconds",
        "histogram",
        "Time one liveness flush (last-seen times and status changes written to icp.db in one transaction) took; flushes with nothing to write are not counted.",
    );
    t.histogram("icpd_liveness_flush_duration_seconds", &[], &LIVENESS_FLUSH);

    t.family(
        "icpd_telemetry_records_total",
        "counter",
        "Telemetry records received on the ingest endpoints, by signal (logs, requests, points) and outcome (accepted, rejected: a record refused on its own, the batch kept).",
    );
    for (i, signal) in SIGNALS.iter().enumerate() {
        for (j, outcome) in ["accepted", "rejected"].iter().enumerate() {
            t.sample_u64(
                "icpd_telemetry_records_total",
                &[("signal", signal), ("outcome", outcome)],
                INGESTED[i][j].load(Relaxed),
            );
        }
    }
    t.family(
        "icpd_telemetry_retention_deleted_total",
        "counter",
        "Rows (logs, request records, metric points) telemetry retention deleted, by reason (age: older than retention_days; size: the oldest, to stay under max_bytes).",
    );
    for (i, reason) in ["age", "size"].iter().enumerate() {
        t.sample_u64(
            "icpd_telemetry_retention_deleted_total",
            &[("reason", reason)],
            RETAINED[i].load(Relaxed),
        );
    }
    t.family(
        "icpd_telemetry_retention_duration_seconds",
        "histogram",
        "Time one telemetry retention pass took (deletes, index merge and vacuum, with the pauses that let ingest in).",
    );
    t.histogram(
        "icpd_telemetry_retention_duration_seconds",
        &[],
        &RETENTION_PASS,
    );

    if let Some(p) = process::read() {
        p.render(&mut t);
    }
    t.0
}

/// The exposition being written.
struct Text(String);

impl Text {
    /// `# HELP` and `# TYPE` of a family.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// A family with one unlabelled sample.
    fn gauge(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "gauge", help);
        self.sample_u64(name, &[], value);
    }

    fn name_and_labels(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        extra: Option<(&str, &str)>,
    ) {
        self.0.push_str(name);
        let mut all = labels.iter().copied().chain(extra).peekable();
        if all.peek().is_none() {
            return;
        }
        self.0.push('{');
        for (i, (k, v)) in all.enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            let _ = write!(self.0, "{k}=\"{}\"", escape_label_value(v));
        }
        self.0.push('}');
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.name_and_labels(name, labels, None);
        let _ = writeln!(self.0, " {}", format_float(value));
    }

    fn sample_u64(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.name_and_labels(name, labels, None);
        let _ = writeln!(self.0, " {value}");
    }

    /// The `_bucket` lines (cumulative, `+Inf` last), `_sum` and `_count`.
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let (cumulative, sum) = h.snapshot();
        let bucket = format!("{name}_bucket");
        for (i, n) in cumulative.iter().enumerate() {
            let le = BOUNDS_NANOS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |&b| format_float(b as f64 / 1e9));
            self.name_and_labels(&bucket, labels, Some(("le", &le)));
            let _ = writeln!(self.0, " {n}");
        }
        self.sample(&format!("{name}_sum"), labels, sum);
        let count = cumulative[BOUNDS_NANOS.len()];
        self.sample_u64(&format!("{name}_count"), labels, count);
    }
}

/// A float as the format writes it: `+Inf`, `-Inf`, `NaN`, or decimal.
fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

/// A label value: backslash, double quote and line feed escaped.
fn escape_label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text: backslash and line feed escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The standard `process_*` metrics, from `/proc/self` (Linux).
mod process {
    use super::Text;

    pub(super) struct Process {
        pub(super) start_time_seconds: f64,
        pub(super) cpu_seconds: f64,
        pub(super) resident_bytes: u64,
        pub(super) virtual_bytes: u64,
        pub(super) threads: u64,
        pub(super) open_fds: Option<u64>,
        pub(super) max_fds: Option<u64>,
    }

    /// `None` where there is no `/proc/self/stat` (not Linux).
    pub(super) fn read() -> Option<Process> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) is in parentheses and may hold spaces:
        // the fields after the last ')' start with field 3 (state).
        let rest = &stat[stat.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| -> Option<u64> { f.get(n - 3)?.parse().ok() };
        // SAFETY: sysconf only reads a system constant.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if ticks <= 0 || page <= 0 {
            return None;
        }
        let ticks = ticks as f64;
        let boot_time: u64 = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
        let open_fds = std::fs::read_dir("/proc/self/fd")
            // The listing's own descriptor is in it.
            .map(|d| d.count().saturating_sub(1) as u64)
            .ok();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes `lim`.
        let max_fds = (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0)
            .then_some(lim.rlim_cur);
        Some(Process {
            start_time_seconds: boot_time as f64 + field(22)? as f64 / ticks,
            cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
            threads: field(20)?,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)?.saturating_mul(page as u64),
            open_fds,
            max_fds,
        })
    }

    impl Process {
        pub(super) fn render(&self, t: &mut Text) {
            t.family(
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since the Unix epoch, in seconds.",
            );
            t.sample("process_start_time_seconds", &[], self.start_time_seconds);
            t.family(
                "process_cpu_seconds_total",
                "counter",
                "User and system CPU time spent, in seconds.",
            );
            t.sample("process_cpu_seconds_total", &[], self.cpu_seconds);
            t.gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                self.resident_bytes,
            );
            t.gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                self.virtual_bytes,
            );
            t.gauge("process_threads", "Threads in the process.", self.threads);
            if let Some(n) = self.open_fds {
                t.gauge("process_open_fds", "Open file descriptors.", n);
            }
            if let Some(n) = self.max_fds {
                t.gauge(
                    "process_max_fds",
                    "The soft limit on open file descriptors.",
                    n,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let h = Histogram::new();
        for us in [50, 100, 101, 2_000, 20_000_000] {
            h.observe(Duration::from_micros(us));
        }
        let (c, sum) = h.snapshot();
        assert_eq!(c[0], 2, "le 100 µs is inclusive");
        assert_eq!(c[1], 3);
        assert_eq!(c[4], 4, "le 2.5 ms");
        assert_eq!(c[BOUNDS_NANOS.len() - 1], 4, "20 s is above every bound");
        assert_eq!(c[BOUNDS_NANOS.len()], 5);
        assert_eq!(h.count(), 5);
        assert!((sum - 20.002251).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(escape_help("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");
        let mut t = Text(String::new());
        t.sample("m", &[("k", "say \"hi\"\n")], f64::INFINITY);
        t.sample("m", &[], f64::NAN);
        t.sample("m", &[], 0.0001);
        assert_eq!(t.0, "m{k=\"say \\\"hi\\\"\\n\"} +Inf\nm NaN\nm 0.0001\n");
    }

    #[test]
    fn histogram_text_has_every_bucket_sum_and_count() {
        let h = Histogram::new();
        h.observe(Duration::from_millis(3));
        let mut t = Text(String::new());
        t.histogram("d_seconds", &[("route", "/x")], &h);
        let lines: Vec<&str> = t.0.lines().collect();
        assert_eq!(lines.len(), BOUNDS_NANOS.len() + 3);
        assert_eq!(lines[0], "d_seconds_bucket{route=\"/x\",le=\"0.0001\"} 0");
        assert_eq!(lines[5], "d_seconds_bucket{route=\"/x\",le=\"0.005\"} 1");
        assert_eq!(lines[15], "d_seconds_bucket{route=\"/x\",le=\"10\"} 1");
        assert_eq!(lines[16], "d_seconds_bucket{route=\"/x\",le=\"+Inf\"} 1");
        assert_eq!(lines[17], "d_seconds_sum{route=\"/x\"} 0.003");
        assert_eq!(lines[18], "d_seconds_count{route=\"/x\"} 1");
    }

    #[test]
    fn methods_map_to_a_fixed_set() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("get"), "other");
        assert_eq!(method_label("BREW"), "other");
    }

    #[test]
    fn route_timer_sends_unknown_paths_to_other() {
        let t = RouteTimer::new("unit-test", &[("POST", "/a")]);
        t.observe("POST", "/a", Duration::from_millis(1));
        t.observe("GET", "/a", Duration::from_millis(1));
        t.observe("POST", "/secret/123", Duration::from_millis(1));
        let count = |route, method| request_histogram("unit-test", method, route).count();
        assert_eq!(count("/a", "POST"), 1);
        assert_eq!(count("/a", "GET"), 1);
        assert_eq!(count("other", "POST"), 1);
        assert!(!lock(&REQUESTS)
            .keys()
            .any(|(_, route, _)| route.contains("secret")));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_are_read_from_proc() {
        let p = process::read().expect("/proc/self/stat");
        assert!(p.resident_bytes > 0 && p.threads >= 1);
        assert!(p.open_fds.unwrap() >= 3);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 3600.0);
    }
}
