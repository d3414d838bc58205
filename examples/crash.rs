//! Crash safety: `kill -9` icpd under load, round after round, and check
//! that nothing it acknowledged was lost.
//!
//! On a fresh data directory the example starts the real `icpd serve` (free
//! loopback ports, TLS unless `--plain`), creates a Super Admin through the
//! CLI and signs in, and creates `--secrets` secrets with `icpd secret
//! create` while the server runs. Then, for the whole run:
//!
//! - a simulated fleet: `--runtimes` runtimes register with a full heartbeat
//!   and then send a delta heartbeat every `--interval-ms`; more join at
//!   `--joins-per-second` (so some register just before a kill). A delta
//!   answered `fullHeartbeatRequired` makes the runtime send a full
//!   heartbeat, as the bridge does.
//! - `--writers` management clients create environments, projects,
//!   integrations and secrets through the API, one after the other, and
//!   record every write that was answered 2xx.
//! - a watcher lists the OFFLINE runtimes (`GET /api/v1/runtimes
//!   ?status=OFFLINE`) and reads `/healthz` every 250 ms.
//!
//! Each round waits a random time (`--min-load-ms`..`--max-load-ms`, from
//! the printed `--seed`), sends SIGKILL, runs `icpd check` on the data
//! directory (integrity, schema, every secret opens), starts icpd again on
//! the same directory and ports, and checks through the API, with the
//! session token of the first login, that every acknowledged write and every
//! registered runtime (acknowledged full heartbeat) is there, cumulatively.
//!
//! **OFFLINE.** icpd may mark a runtime OFFLINE only after hearing nothing
//! from it for the heartbeat timeout while running, and not within one
//! timeout of its start. The fleet keeps every acknowledgement's time and
//! every start's time, so a runtime listed OFFLINE is a failure unless, on
//! the fleet's own clock, it may really have gone unheard for the timeout
//! within one life of the server: the load generator falling behind is
//! reported, not failed. The silence is bounded by what the fleet knows for
//! sure, from the send of one acknowledged heartbeat (the server received
//! it after that) to the answer to the next, so slow answers on a loaded
//! machine cannot make a justified OFFLINE look unjustified. Self-preservation engaging
//! (`/healthz`) is a failure: it means a wave was held back.
//!
//! Heartbeat times are flushed at least every second, so last-seen times
//! may lose up to a second on a crash; they are not checked.
//!
//! ```text
//! cargo build --release --bins --example crash
//! target/release/examples/crash --rounds 50
//! ```
//!
//! Exit status: 0 if every round passed, 1 if any check failed, 2 if the
//! run could not be set up.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};

use icpd::config::Config;

// icpd as a child process on fixed loopback ports, shared with the fleet
// simulator: a restart comes back on the same addresses.
#[path = "fleet/sim.rs"]
mod sim;
#[path = "fleet/spawned.rs"]
#[allow(dead_code)]
mod spawned;
use icpd::http::client::Client;
use sim::timestamp;
use spawned::Spawned;

/// Per-request timeout of every client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Runtime tokens are made when a runtime joins; a run is shorter.
const TOKEN_LIFETIME_S: i64 = 3600;

/// The management user the run creates through the CLI.
const USER: &str = "crash";
const PASSWORD: &str = "crash-safety-password";

/// Ack instants kept per runtime: at 2 a second, half a minute of them.
const ACKS_KEPT: usize = 64;

/// The server counts time in whole milliseconds: its idea of a silence may
/// exceed the real one by that much.
const CLOCK_SLACK: Duration = Duration::from_millis(2);

/// How often the watcher polls.
const WATCH_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Parser)]
#[command(about = "kill -9 icpd under load, restart it, and check nothing acknowledged was lost")]
struct Args {
    /// Kill-and-restart rounds.
    #[arg(long, default_value_t = 50)]
    rounds: usize,
    /// Seed of the kill delays (printed; default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Shortest load before a kill, in ms.
    #[arg(long, default_value_t = 1000)]
    min_load_ms: u64,
    /// Longest load before a kill, in ms.
    #[arg(long, default_value_t = 4000)]
    max_load_ms: u64,
    /// Runtimes registered before the first round.
    #[arg(long, default_value_t = 300)]
    runtimes: usize,
    /// New runtimes registering per second during the rounds.
    #[arg(long, default_value_t = 4.0)]
    joins_per_second: f64,
    /// Delta heartbeat interval of every runtime, in ms.
    #[arg(long, default_value_t = 500)]
    interval_ms: u64,
    /// The server's heartbeat timeout, in seconds (short, so that rounds
    /// outlast the startup grace).
    #[arg(long, default_value_t = 2)]
    heartbeat_timeout: u64,
    /// Secrets created with the CLI (one integration each); runtimes are
    /// spread over them.
    #[arg(long, default_value_t = 10)]
    secrets: usize,
    /// Fleet threads, one keep-alive connection each.
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// Management clients writing through the API.
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// Management writes per second, all writers together (the checks
    /// after each restart list everything acknowledged so far).
    #[arg(long, default_value_t = 100.0)]
    write_rate: f64,
    /// Plain HTTP instead of TLS.
    #[arg(long)]
    plain: bool,
    /// The icpd binary (default: $CARGO_TARGET_DIR or target, /release/icpd).
    #[arg(long)]
    icpd: Option<PathBuf>,
    /// Data directory; must not exist or be empty (default: a new one
    /// under the temporary directory, removed after a run that passed).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep the data directory after a run that passed.
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failed) => {
            eprintln!("{failed} failure(s)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

type Result<T> = std::result::Result<T, String>;

// ---- what the run shares between its threads --------------------------

/// A management write that was answered 2xx.
#[derive(Debug, Clone)]
enum Acked {
    Environment(String),
    Project(String),
    Integration(String, String),
    Secret(String),
}

impl Acked {
    fn kind(&self) -> &'static str {
        match self {
            Acked::Environment(_) => "environments",
            Acked::Project(_) => "projects",
            Acked::Integration(..) => "integrations",
            Acked::Secret(_) => "secrets",
        }
    }
}

/// A failed check: which round, and what.
#[derive(Debug, Clone)]
struct Failure {
    round: usize,
    what: String,
}

/// What the watcher saw.
#[derive(Default)]
struct Watched {
    polls: u64,
    poll_errors: u64,
    /// Runtimes listed OFFLINE after a real silence on the fleet's clock
    /// (the load generator fell behind): reported, not failed.
    justified_offline: u64,
    /// The most runtimes listed OFFLINE at once.
    max_offline: usize,
    /// Polls that found self-preservation on while most of the fleet
    /// really was unheard: reported, not failed.
    justified_preservation: u64,
}

/// Heartbeats sent by the fleet.
#[derive(Default)]
struct Heartbeats {
    full_ok: u64,
    delta_ok: u64,
    /// Failures by kind: an I/O error kind (expected while icpd is down)
    /// or an HTTP status.
    errors: BTreeMap<String, u64>,
}

struct Shared {
    stop: AtomicBool,
    /// Whether icpd is up (cleared just before a kill, set when ready).
    up: AtomicBool,
    /// Whether runtimes beyond the first `--runtimes` may join.
    joining: AtomicBool,
    round: AtomicUsize,
    timeout: Duration,
    interval: Duration,
    /// Each icpd process: when it was spawned and when it was killed.
    lives: Mutex<Vec<(Instant, Option<Instant>)>>,
    /// Each runtime's acknowledged heartbeats (the last few): when each
    /// was sent and when its answer came.
    acks: Mutex<HashMap<String, VecDeque<(Instant, Instant)>>>,
    /// Runtimes with an acknowledged full heartbeat, in order, with the round.
    registered: Mutex<Vec<(String, usize)>>,
    writes: Mutex<Vec<(Acked, usize)>>,
    write_errors: Mutex<BTreeMap<String, u64>>,
    heartbeats: Mutex<Heartbeats>,
    watched: Mutex<Watched>,
    failures: Mutex<Vec<Failure>>,
}

/// Locks, ignoring poisoning: a panicked thread is reported by its join.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn fail(&self, what: String) {
        let round = self.round.load(Ordering::SeqCst);
        println!("  FAIL (round {round}): {what}");
        lock(&self.failures).push(Failure { round, what });
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The longest silence of `runtime` the server may have seen in a
    /// window before `at`, on the fleet's clock, measured at each
    /// acknowledgement (its answer), each kill and `at`: the time since the
    /// previous acknowledged heartbeat was sent or since the server process
    /// then running was spawned, whichever is later. An upper bound: the
    /// server received each heartbeat after it was sent and before it
    /// answered. `None` if the runtime was never acknowledged.
    ///
    /// The window is a timeout, an interval and 3 s (SQLite trails memory
    /// by up to a flush, so a runtime that came back stays listed OFFLINE
    /// that long, and a flush a kill swallowed leaves it OFFLINE until its
    /// next heartbeat), stretched back over a kill in it.
    fn longest_silence(&self, runtime: &str, at: Instant) -> Option<Duration> {
        let window = self.timeout + self.interval + Duration::from_secs(3);
        let lives = lock(&self.lives).clone();
        let mut from = at.checked_sub(window).unwrap_or(at);
        for &(_, killed) in lives.iter().rev() {
            match killed {
                Some(k) if k >= from && k <= at => from = k.checked_sub(window).unwrap_or(k),
                Some(k) if k < from => break,
                _ => {}
            }
        }
        let acks = lock(&self.acks);
        let acks = acks.get(runtime)?;
        let life_start = |t: Instant| lives.iter().rev().map(|l| l.0).find(|&s| s <= t);
        // (when, the send of the acknowledged heartbeat answered then), in
        // time order.
        let mut points: Vec<(Instant, Option<Instant>)> = acks
            .iter()
            .map(|&(sent, answered)| (answered, Some(sent)))
            .collect();
        points.extend(lives.iter().filter_map(|l| l.1).map(|k| (k, None)));
        points.push((at, None));
        points.retain(|p| p.0 <= at);
        points.sort();
        let mut longest = Duration::ZERO;
        let mut previous: Option<Instant> = None;
        for (t, sent) in points {
            let ack = sent.is_some();
            if t >= from {
                // A kill ends a life: measure within the one it ends.
                let life = if ack {
                    life_start(t)
                } else {
                    life_start(t - Duration::from_nanos(1))
                };
                let since = match (previous, life) {
                    (Some(p), Some(s)) => p.max(s),
                    (Some(p), None) => p,
                    (None, Some(s)) => s,
                    (None, None) => t,
                };
                longest = longest.max(t.saturating_duration_since(since));
            }
            if let Some(sent) = sent {
                previous = Some(sent);
            }
        }
        Some(longest)
    }

    /// Judges a runtime listed OFFLINE in a response received at `at`.
    fn judge_offline(&self, runtime: &str, at: Instant, seen_by: &str) {
        match self.longest_silence(runtime, at) {
            Some(s) if s + CLOCK_SLACK < self.timeout => {
                let since_spawn = lock(&self.lives)
                    .last()
                    .map_or(0, |l| at.saturating_duration_since(l.0).as_millis());
                self.fail(format!(
                    "{seen_by}: runtime {runtime} is OFFLINE although its heartbeats were acknowledged \
                     with no gap over {} ms in the {} ms before ({since_spawn} ms after the last start)",
                    s.as_millis(),
                    (self.timeout + self.interval + Duration::from_secs(3)).as_millis()
                ));
            }
            _ => lock(&self.watched).justified_offline += 1,
        }
    }
}

// ---- the management API ------------------------------------------------

/// A signed-in management client.
struct Api {
    client: Client,
    bearer: String,
}

impl Api {
    fn login(server: &Spawned) -> Result<Api> {
        let mut client = Client::new(&server.management_url(), server.client_tls())
            .map_err(|e| e.to_string())?;
        client.set_timeout(REQUEST_TIMEOUT);
        let r = client
            .post_json(
                "/api/v1/auth/login",
                None,
                &json!({"username": USER, "password": PASSWORD}),
            )
            .map_err(|e| format!("login: {e}"))?;
        if r.status != 200 {
            return Err(format!(
                "login: HTTP {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
        let token = r.json()["token"]
            .as_str()
            .ok_or("login answered no token")?
            .to_string();
        Ok(Api {
            client,
            bearer: format!("Bearer {token}"),
        })
    }

    /// Another client with the same session token.
    fn another(&self, server: &Spawned) -> Result<Api> {
        let mut client = Client::new(&server.management_url(), server.client_tls())
            .map_err(|e| e.to_string())?;
        client.set_timeout(REQUEST_TIMEOUT);
        Ok(Api {
            client,
            bearer: self.bearer.clone(),
        })
    }

    fn send(&mut self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let bytes = body.map(Value::to_string).unwrap_or_default();
        let mut headers = vec![("Authorization", self.bearer.as_str())];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        let r = self
            .client
            .request(method, path, &headers, bytes.as_bytes())
            .map_err(|e| format!("{:?}", e.kind()))?;
        Ok((r.status, r.json()))
    }

    /// GET that must answer 200.
    fn get(&mut self, path: &str) -> Result<Value> {
        match self
            .send("GET", path, None)
            .map_err(|e| format!("GET {path}: {e}"))?
        {
            (200, v) => Ok(v),
            (s, v) => Err(format!("GET {path}: HTTP {s} {v}")),
        }
    }

    /// Every item of a paged listing, by the string field `key`.
    fn list(&mut self, path: &str, key: &str) -> Result<HashMap<String, Value>> {
        let mut items = HashMap::new();
        let mut cursor: Option<String> = None;
        let sep = if path.contains('?') { '&' } else { '?' };
        loop {
            let mut page = format!("{path}{sep}limit=500");
            if let Some(c) = &cursor {
                page.push_str("&cursor=");
                page.push_str(c);
            }
            let v = self.get(&page)?;
            for item in v["items"].as_array().into_iter().flatten() {
                if let Some(k) = item[key].as_str() {
                    items.insert(k.to_string(), item.clone());
                }
            }
            match v["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(items),
            }
        }
    }
}

// ---- the fleet ---------------------------------------------------------

/// One simulated runtime.
struct Runtime {
    id: String,
    integration: String,
    /// `Bearer <token>`, made when it joins.
    bearer: String,
    /// Whether its last full heartbeat was acknowledged (and no delta
    /// since asked for another).
    registered: bool,
    due: Instant,
}

impl Runtime {
    fn full_heartbeat(&self) -> String {
        sim::full_heartbeat(&sim::FullBody {
            runtime_id: &self.id,
            project: "crash",
            integration: &self.integration,
            hash: "crash-1",
            listener_state: "enabled",
            extended: false,
        })
        .to_string()
    }

    fn delta_heartbeat(&self) -> String {
        json!({
            "runtimeId": self.id,
            "heartbeatVersion": "v1.0",
            "runtimeHash": "crash-1",
            "timestamp": timestamp(),
        })
        .to_string()
    }
}

/// One fleet thread: its runtimes (the first `active` are running, the
/// rest join one by one) and one keep-alive connection.
struct FleetThread {
    shared: Arc<Shared>,
    runtimes: Vec<Runtime>,
    active: usize,
    secrets: Arc<Vec<String>>,
    interval: Duration,
    join_every: Option<Duration>,
    client: Client,
}

impl FleetThread {
    fn run(mut self) {
        let token_cfg = Config::defaults().token;
        let mut next_join: Option<Instant> = None;
        for r in &mut self.runtimes[..self.active] {
            r.bearer = bearer(&self.secrets, &r.integration, &token_cfg);
        }
        while !self.shared.stopped() {
            let now = Instant::now();
            if let Some(every) = self.join_every {
                if self.shared.joining.load(Ordering::SeqCst) && self.active < self.runtimes.len() {
                    let at = *next_join.get_or_insert(now + every);
                    if now >= at {
                        let r = &mut self.runtimes[self.active];
                        r.bearer = bearer(&self.secrets, &r.integration, &token_cfg);
                        r.due = now;
                        self.active += 1;
                        next_join = Some(at + every);
                    }
                }
            }
            let Some(i) = (0..self.active).min_by_key(|&i| self.runtimes[i].due) else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let due = self.runtimes[i].due;
            if due > now {
                std::thread::sleep((due - now).min(Duration::from_millis(20)));
                continue;
            }
            self.send(i);
            let r = &mut self.runtimes[i];
            r.due += self.interval;
            if r.due < now {
                // Behind by more than an interval: resume the cadence now.
                r.due = now + self.interval;
            }
            if !r.registered {
                // A full heartbeat is due at once, as the bridge sends it.
                r.due = r.due.min(now + Duration::from_millis(50));
            }
        }
    }

    fn send(&mut self, i: usize) {
        let r = &mut self.runtimes[i];
        let full = !r.registered;
        let (path, body) = if full {
            ("/icp/heartbeat", r.full_heartbeat())
        } else {
            ("/icp/deltaHeartbeat", r.delta_heartbeat())
        };
        let headers = [
            ("Content-Type", "application/json"),
            ("Authorization", r.bearer.as_str()),
        ];
        let sent = Instant::now();
        let answer = self.client.request("POST", path, &headers, body.as_bytes());
        let at = Instant::now();
        let sh = &self.shared;
        let error = match answer {
            Ok(resp) if resp.status != 200 => Some(format!("HTTP {} {path}", resp.status)),
            Ok(resp) if resp.json()["acknowledged"] != true => {
                Some(format!("not acknowledged {path}"))
            }
            Ok(resp) => {
                let v = resp.json();
                {
                    let mut acks = lock(&sh.acks);
                    let q = acks.entry(r.id.clone()).or_default();
                    q.push_back((sent, at));
                    if q.len() > ACKS_KEPT {
                        q.pop_front();
                    }
                }
                let mut hb = lock(&sh.heartbeats);
                if full {
                    hb.full_ok += 1;
                    drop(hb);
                    r.registered = true;
                    let round = sh.round.load(Ordering::SeqCst);
                    let mut reg = lock(&sh.registered);
                    // Registered once; a later full heartbeat re-registers.
                    if !reg.iter().rev().any(|(id, _)| *id == r.id) {
                        reg.push((r.id.clone(), round));
                    }
                } else {
                    hb.delta_ok += 1;
                    drop(hb);
                    if v["fullHeartbeatRequired"] == true {
                        // The server has lost this runtime or its hash,
                        // which an acknowledged full heartbeat stored.
                        r.registered = false;
                        sh.fail(format!(
                            "runtime {} (registered) was answered fullHeartbeatRequired: its record or hash was lost",
                            r.id
                        ));
                    }
                }
                None
            }
            Err(e) => Some(format!("{:?}", e.kind())),
        };
        if let Some(e) = error {
            *lock(&sh.heartbeats).errors.entry(e).or_default() += 1;
        }
    }
}

fn bearer(secrets: &[String], integration: &str, cfg: &icpd::config::TokenConfig) -> String {
    let s: usize = integration
        .trim_start_matches("crash-")
        .parse()
        .unwrap_or(0);
    let token = icpd::protocol::token::issue(
        &secrets[s % secrets.len()],
        cfg,
        chrono::Utc::now().timestamp(),
        TOKEN_LIFETIME_S,
    );
    format!("Bearer {token}")
}

// ---- management writes and the watcher ---------------------------------

/// Creates environments, projects, integrations and secrets in turn and
/// records those answered 2xx. Handles are never reused, so a write whose
/// answer a kill swallowed is simply not checked.
fn writer(shared: Arc<Shared>, mut api: Api, w: usize, period: Duration) {
    let mut project: Option<String> = None;
    let mut integration: Option<(String, String)> = None;
    let mut k = 0u64;
    let mut next = Instant::now();
    while !shared.stopped() {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next = (next + period).max(now);
        k += 1;
        let handle = format!("c{w}-{k}");
        let (path, body, write) = match (k % 4, &project, &integration) {
            (1, Some(p), _) => (
                format!("/api/v1/projects/{p}/integrations"),
                json!({"name": handle, "handle": handle, "runtimeType": "BI"}),
                Acked::Integration(p.clone(), handle.clone()),
            ),
            (2, _, Some((p, i))) => (
                "/api/v1/secrets".to_string(),
                json!({"environment": "dev", "project": p, "integration": i}),
                Acked::Secret(String::new()),
            ),
            (3, ..) => (
                "/api/v1/environments".to_string(),
                json!({"name": handle, "handle": handle}),
                Acked::Environment(handle.clone()),
            ),
            _ => (
                "/api/v1/projects".to_string(),
                json!({"name": handle, "handle": handle}),
                Acked::Project(handle.clone()),
            ),
        };
        match api.send("POST", &path, Some(&body)) {
            Ok((200..=299, v)) => {
                let write = match write {
                    Acked::Secret(_) => match v["keyId"].as_str() {
                        Some(id) => Acked::Secret(id.to_string()),
                        None => {
                            shared.fail(format!("POST {path} answered no keyId: {v}"));
                            continue;
                        }
                    },
                    Acked::Project(p) => {
                        project = Some(p.clone());
                        Acked::Project(p)
                    }
                    Acked::Integration(p, i) => {
                        integration = Some((p.clone(), i.clone()));
                        Acked::Integration(p, i)
                    }
                    other => other,
                };
                let round = shared.round.load(Ordering::SeqCst);
                lock(&shared.writes).push((write, round));
            }
            Ok((status, v)) => {
                let code = v["error"]["code"].as_str().unwrap_or("").to_string();
                *lock(&shared.write_errors)
                    .entry(format!("HTTP {status} {code}"))
                    .or_default() += 1;
                if status == 401 && shared.up.load(Ordering::SeqCst) {
                    shared.fail(format!(
                        "POST {path}: the session token was refused (401): the login was lost"
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                // Refused while icpd is down; reset or EOF when a kill
                // caught the write in flight (it may or may not be stored).
                *lock(&shared.write_errors).entry(e).or_default() += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Lists OFFLINE runtimes and reads `/healthz` while icpd is up.
fn watcher(shared: Arc<Shared>, mut api: Api) {
    while !shared.stopped() {
        std::thread::sleep(WATCH_EVERY);
        if !shared.up.load(Ordering::SeqCst) {
            continue;
        }
        let listed = api.list("/api/v1/runtimes?status=OFFLINE", "runtimeId");
        let at = Instant::now();
        let health = api.get("/healthz");
        // A kill in the middle of a poll is no finding.
        if !shared.up.load(Ordering::SeqCst) {
            continue;
        }
        let (offline, health) = match (listed, health) {
            (Ok(o), Ok(h)) => (o, h),
            _ => {
                lock(&shared.watched).poll_errors += 1;
                continue;
            }
        };
        {
            let mut w = lock(&shared.watched);
            w.polls += 1;
            w.max_offline = w.max_offline.max(offline.len());
        }
        for id in offline.keys() {
            shared.judge_offline(id, at, "GET /api/v1/runtimes?status=OFFLINE");
        }
        if health["selfPreservation"]["active"] == true {
            // Right only if most of the fleet really went unheard.
            let registered = lock(&shared.registered).clone();
            let silent = registered
                .iter()
                .filter(|(id, _)| {
                    shared
                        .longest_silence(id, at)
                        .is_none_or(|s| s + CLOCK_SLACK >= shared.timeout)
                })
                .count();
            if silent * 2 <= registered.len() {
                shared.fail(format!(
                    "self-preservation engaged (a wave of OFFLINE held back) while only {silent} of {} \
                     runtimes went unheard for the timeout: {health}",
                    registered.len()
                ));
            } else {
                lock(&shared.watched).justified_preservation += 1;
            }
        }
    }
}

// ---- a round's checks ------------------------------------------------

/// How much one verification checked.
struct Verified {
    writes: usize,
    runtimes: usize,
}

/// Checks through the API that every acknowledged write and every
/// registered runtime is there, and that no registered runtime is OFFLINE
/// without a real silence.
fn verify(shared: &Shared, api: &mut Api, integrations_done: &mut usize) -> Result<Verified> {
    let writes = lock(&shared.writes).clone();
    let registered = lock(&shared.registered).clone();
    let environments = api.list("/api/v1/environments", "handle")?;
    let projects = api.list("/api/v1/projects", "handle")?;
    let secrets = api.list("/api/v1/secrets", "keyId")?;
    let runtimes = api.list("/api/v1/runtimes", "runtimeId")?;
    let listed_at = Instant::now();
    let mut checked = 0;
    let mut integrations_seen = 0;
    for (write, round) in &writes {
        let missing = match write {
            Acked::Environment(h) => !environments.contains_key(h),
            Acked::Project(h) => !projects.contains_key(h),
            Acked::Secret(k) => !secrets.contains_key(k),
            Acked::Integration(p, i) => {
                // Integrations have no global listing: each is fetched
                // once, the first time it is checked.
                integrations_seen += 1;
                if integrations_seen <= *integrations_done {
                    continue;
                }
                *integrations_done = integrations_seen;
                let path = format!("/api/v1/projects/{p}/integrations/{i}");
                let (status, _) = api
                    .send("GET", &path, None)
                    .map_err(|e| format!("GET {path}: {e}"))?;
                status == 404
            }
        };
        checked += 1;
        if missing {
            shared.fail(format!(
                "acknowledged write lost: {} {write:?} (acknowledged in round {round})",
                write.kind()
            ));
        }
    }
    for (id, round) in &registered {
        match runtimes.get(id) {
            None => shared.fail(format!(
                "registered runtime lost: {id} (full heartbeat acknowledged in round {round})"
            )),
            Some(r) if r["status"] == "OFFLINE" => {
                shared.judge_offline(id, listed_at, "after restart")
            }
            Some(_) => {}
        }
    }
    Ok(Verified {
        writes: checked,
        runtimes: registered.len(),
    })
}

/// A small deterministic generator (SplitMix64) for the kill delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

// ---- the run ---------------------------------------------------------

/// Per-round figures for the summary.
struct RoundFigures {
    delay: Duration,
    check: Duration,
    ready: Duration,
    kill_to_ready: Duration,
    verify: Duration,
}

fn run(args: Args) -> Result<usize> {
    if args.runtimes == 0 || args.threads == 0 || args.secrets == 0 || args.interval_ms == 0 {
        return Err("--runtimes, --threads, --secrets and --interval-ms must be at least 1".into());
    }
    if args.min_load_ms > args.max_load_ms {
        return Err("--min-load-ms must not exceed --max-load-ms".into());
    }
    let icpd = args.icpd.clone().unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
        PathBuf::from(target).join("release").join("icpd")
    });
    if !icpd.is_file() {
        return Err(format!(
            "{} not found: cargo build --release --bins first, or give --icpd",
            icpd.display()
        ));
    }
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "icpd-crash-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_millis()
        )),
    };
    if std::fs::read_dir(&data_dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!("{} is not empty", data_dir.display()));
    }
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("creating {}: {e}", data_dir.display()))?;
    let seed = args
        .seed
        .unwrap_or_else(|| chrono::Utc::now().timestamp_micros() as u64);
    let mut rng = Rng(seed);
    let timeout = Duration::from_secs(args.heartbeat_timeout);
    let interval = Duration::from_millis(args.interval_ms);
    println!(
        "crash: {} rounds, seed {seed}, kill after {}..{} ms of load, {} runtimes + {}/s joining, \
         delta every {} ms, heartbeat timeout {} s, {} writers, {}",
        args.rounds,
        args.min_load_ms,
        args.max_load_ms,
        args.runtimes,
        args.joins_per_second,
        args.interval_ms,
        args.heartbeat_timeout,
        args.writers,
        if args.plain { "plain HTTP" } else { "TLS" }
    );
    println!("data directory {}", data_dir.display());

    let run_started = Instant::now();
    let spawned = Instant::now();
    // Default settings: an empty configuration file.
    let (mut server, ready) =
        Spawned::start_with_config(&icpd, &data_dir, !args.plain, args.heartbeat_timeout, "")?;
    println!("icpd ready in {} ms", ready.as_millis());
    server.cli(
        &[
            "user",
            "create",
            USER,
            "--role",
            "Super Admin",
            "--password-stdin",
        ],
        Some(PASSWORD),
    )?;
    let mut api = Api::login(&server)?;
    let secrets = sim::create_secrets(&icpd, &data_dir, "crash", args.secrets)?;
    let secrets = Arc::new(secrets);

    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        up: AtomicBool::new(true),
        joining: AtomicBool::new(false),
        round: AtomicUsize::new(0),
        timeout,
        interval,
        lives: Mutex::new(vec![(spawned, None)]),
        acks: Mutex::new(HashMap::new()),
        registered: Mutex::new(Vec::new()),
        writes: Mutex::new(Vec::new()),
        write_errors: Mutex::new(BTreeMap::new()),
        heartbeats: Mutex::new(Heartbeats::default()),
        watched: Mutex::new(Watched::default()),
        failures: Mutex::new(Vec::new()),
    });

    // The fleet: the first `runtimes` run from the start, enough more to
    // join at the planned rate for the whole run wait in reserve.
    let expected_run = Duration::from_millis(args.rounds as u64 * (args.max_load_ms + 1500));
    let reserve = (args.joins_per_second * expected_run.as_secs_f64()).ceil() as usize;
    let tag = (chrono::Utc::now().timestamp_micros() as u64 ^ u64::from(std::process::id()))
        & 0xffff_ffff;
    let start = Instant::now();
    let mut groups: Vec<(Vec<Runtime>, usize)> =
        (0..args.threads).map(|_| (Vec::new(), 0)).collect();
    for i in 0..args.runtimes + reserve {
        let t = i % args.threads;
        let initial = i < args.runtimes;
        groups[t].0.push(Runtime {
            id: format!("{tag:08x}-0000-4000-8000-{i:012}"),
            integration: format!("crash-{}", i % args.secrets),
            bearer: String::new(),
            registered: false,
            // Spread the first full heartbeats over one interval.
            due: start
                + interval
                    .mul_f64(i as f64 / args.runtimes as f64)
                    .min(interval),
        });
        if initial {
            groups[t].1 += 1;
        }
    }
    let join_every = (args.joins_per_second > 0.0)
        .then(|| Duration::from_secs_f64(args.threads as f64 / args.joins_per_second));
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    for (runtimes, active) in groups {
        let mut client =
            Client::new(&server.runtime_url(), server.client_tls()).map_err(|e| e.to_string())?;
        client.set_timeout(REQUEST_TIMEOUT);
        let ft = FleetThread {
            shared: shared.clone(),
            runtimes,
            active,
            secrets: secrets.clone(),
            interval,
            join_every,
            client,
        };
        threads.push(std::thread::spawn(move || ft.run()));
    }
    let waited = Instant::now();
    while lock(&shared.registered).len() < args.runtimes {
        if waited.elapsed() > Duration::from_secs(120) {
            shared.stop.store(true, Ordering::SeqCst);
            return Err(format!(
                "only {} of {} runtimes registered in 120 s",
                lock(&shared.registered).len(),
                args.runtimes
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "{} runtimes registered in {} ms",
        args.runtimes,
        waited.elapsed().as_millis()
    );
    shared.joining.store(true, Ordering::SeqCst);
    let period = Duration::from_secs_f64(args.writers as f64 / args.write_rate.max(0.001));
    for w in 0..args.writers {
        let (sh, a) = (shared.clone(), api.another(&server)?);
        threads.push(std::thread::spawn(move || writer(sh, a, w, period)));
    }
    {
        let (sh, a) = (shared.clone(), api.another(&server)?);
        threads.push(std::thread::spawn(move || watcher(sh, a)));
    }

    let mut figures = Vec::new();
    let mut writes_checked = 0usize;
    let mut runtimes_checked = 0usize;
    let mut integrations_done = 0usize;
    let mut past_grace = 0usize;
    for round in 1..=args.rounds {
        shared.round.store(round, Ordering::SeqCst);
        let failed_before = lock(&shared.failures).len();
        let delay = Duration::from_millis(rng.between(args.min_load_ms, args.max_load_ms));
        let writes_before = lock(&shared.writes).len();
        let registered_before = lock(&shared.registered).len();
        std::thread::sleep(delay);
        if delay > timeout + Duration::from_millis(250) {
            past_grace += 1;
        }

        shared.up.store(false, Ordering::SeqCst);
        server.kill()?;
        let killed = Instant::now();
        if let Some(life) = lock(&shared.lives).last_mut() {
            life.1 = Some(killed);
        }
        let writes_acked = lock(&shared.writes).len();
        let registered_acked = lock(&shared.registered).len();

        let checking = Instant::now();
        if let Err(e) = server.cli(&["check"], None) {
            shared.fail(format!("icpd check after the kill: {e}"));
        }
        let check = checking.elapsed();

        let (spawned, ready) = server.launch()?;
        lock(&shared.lives).push((spawned, None));
        shared.up.store(true, Ordering::SeqCst);
        let kill_to_ready = killed.elapsed();

        let verifying = Instant::now();
        match verify(&shared, &mut api, &mut integrations_done) {
            Ok(v) => {
                writes_checked += v.writes;
                runtimes_checked += v.runtimes;
            }
            Err(e) => shared.fail(format!("checking after the restart: {e}")),
        }
        let verify_time = verifying.elapsed();
        let failed = lock(&shared.failures).len() - failed_before;
        println!(
            "round {round:>3}/{}  kill after {:>4} ms  acked +{} writes ({} total), +{} runtimes ({})  \
             check {} ms  ready {} ms (kill to ready {} ms)  verify {} ms  {}",
            args.rounds,
            delay.as_millis(),
            writes_acked - writes_before,
            writes_acked,
            registered_acked - registered_before,
            registered_acked,
            check.as_millis(),
            ready.as_millis(),
            kill_to_ready.as_millis(),
            verify_time.as_millis(),
            if failed == 0 {
                "ok".to_string()
            } else {
                format!("{failed} FAILED")
            }
        );
        figures.push(RoundFigures {
            delay,
            check,
            ready,
            kill_to_ready,
            verify: verify_time,
        });
    }

    // Watch the last start past its grace period, then stop everything.
    shared.round.store(args.rounds + 1, Ordering::SeqCst);
    std::thread::sleep(timeout + Duration::from_millis(1500));
    shared.stop.store(true, Ordering::SeqCst);
    for t in threads {
        if t.join().is_err() {
            shared.fail("a load thread panicked".into());
        }
    }
    match verify(&shared, &mut api, &mut integrations_done) {
        Ok(v) => {
            writes_checked += v.writes;
            runtimes_checked += v.runtimes;
        }
        Err(e) => shared.fail(format!("checking at the end: {e}")),
    }
    shared.up.store(false, Ordering::SeqCst);
    server.stop()?;
    if let Err(e) = server.cli(&["check"], None) {
        shared.fail(format!("icpd check after the final stop: {e}"));
    }

    let failures = lock(&shared.failures).clone();
    summary(
        &args,
        seed,
        &shared,
        &figures,
        writes_checked,
        runtimes_checked,
        past_grace,
        run_started.elapsed(),
        &failures,
    );
    if failures.is_empty() && !args.keep && args.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
    } else {
        println!(
            "data directory kept: {} (server log {})",
            data_dir.display(),
            server.log.display()
        );
    }
    Ok(failures.len())
}

#[allow(clippy::too_many_arguments)]
fn summary(
    args: &Args,
    seed: u64,
    shared: &Shared,
    figures: &[RoundFigures],
    writes_checked: usize,
    runtimes_checked: usize,
    past_grace: usize,
    elapsed: Duration,
    failures: &[Failure],
) {
    let failed_rounds: HashSet<usize> = failures.iter().map(|f| f.round).collect();
    let survived = (1..=figures.len())
        .filter(|r| !failed_rounds.contains(r))
        .count();
    let writes = lock(&shared.writes).clone();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for (w, _) in &writes {
        *by_kind.entry(w.kind()).or_default() += 1;
    }
    let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let ms = |d: Duration| d.as_millis();
    let max = |f: fn(&RoundFigures) -> Duration| figures.iter().map(f).max().unwrap_or_default();
    let median = |f: fn(&RoundFigures) -> Duration| {
        let mut v: Vec<Duration> = figures.iter().map(f).collect();
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    };
    let hb = lock(&shared.heartbeats);
    let watched = lock(&shared.watched);
    println!();
    println!("summary (seed {seed}, {} s)", elapsed.as_secs());
    println!(
        "  rounds survived        {survived} of {} (kill -9 after {}..{} ms of load; {past_grace} ran past the startup grace)",
        figures.len(),
        ms(figures.iter().map(|f| f.delay).min().unwrap_or_default()),
        ms(max(|f| f.delay)),
    );
    println!(
        "  acknowledged writes    {} ({}), {writes_checked} checks after restarts, {} lost",
        writes.len(),
        kinds.join(", "),
        failures
            .iter()
            .filter(|f| f.what.starts_with("acknowledged write lost"))
            .count()
    );
    println!(
        "  runtimes               {} registered ({} at the start + joins), {runtimes_checked} checks after restarts, {} lost",
        lock(&shared.registered).len(),
        args.runtimes,
        failures
            .iter()
            .filter(|f| f.what.starts_with("registered runtime lost"))
            .count()
    );
    println!(
        "  heartbeats             {} full + {} delta acknowledged; not acknowledged: {:?}",
        hb.full_ok, hb.delta_ok, hb.errors
    );
    println!(
        "  management writes      not acknowledged: {:?}",
        lock(&shared.write_errors)
    );
    println!(
        "  icpd check             {} after kills, median {} ms, max {} ms",
        figures.len(),
        ms(median(|f| f.check)),
        ms(max(|f| f.check))
    );
    println!(
        "  time to ready          start to ready median {} ms, max {} ms; kill to ready (check included) max {} ms",
        ms(median(|f| f.ready)),
        ms(max(|f| f.ready)),
        ms(max(|f| f.kill_to_ready))
    );
    println!(
        "  verification           median {} ms, max {} ms",
        ms(median(|f| f.verify)),
        ms(max(|f| f.verify))
    );
    println!(
        "  OFFLINE watch          {} polls ({} failed while icpd was going down), most listed at once {}, \
         {} listed after a real silence of the fleet, self-preservation {} time(s) after one",
        watched.polls,
        watched.poll_errors,
        watched.max_offline,
        watched.justified_offline,
        watched.justified_preservation
    );
    if failures.is_empty() {
        println!("  failures               none");
    } else {
        println!("  failures               {}:", failures.len());
        for f in failures.iter().take(50) {
            println!("    round {}: {}", f.round, f.what);
        }
    }
}
