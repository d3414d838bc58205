//! A fleet of simulated runtimes against a running icpd, and the ceiling to
//! compare it with.
//!
//! Each of `--runtimes` runtimes registers with one full heartbeat (not
//! measured) and then sends a heartbeat every `runtimes / rate` seconds,
//! give or take `--jitter` ms, so the fleet as a whole offers `--rate`
//! requests per second. The runtimes share `--connections` keep-alive
//! connections, split over `--threads` load threads; a thread owns its
//! connections and its runtimes and sends on its connections in turn.
//!
//! The load is open loop: every request has a due time fixed in advance,
//! and its latency is measured from that due time, not from when it was
//! sent. A server (or a load generator) that falls behind therefore shows
//! up as latency, instead of quietly lowering the offered rate
//! (no coordinated omission). `--rate 0` is closed loop instead: each
//! thread sends as fast as its responses come back, to find the maximum
//! throughput; latency is then measured from the send.
//!
//! `--kind` picks what is sent: `delta` (delta heartbeats, the bulk of real
//! traffic), `full` (full heartbeats whose artifacts are unchanged) or
//! `full-changed` (full heartbeats that toggle a listener's state every
//! time, so the server has artifact rows to write); or `mi`, below.
//!
//! The server is external (`--server`, http or https, TLS following the
//! scheme). The secrets come from the CLI on the server's data directory
//! (`--data-dir`), as an operator would create them. With `--server-pid`
//! the server's RSS, thread count and CPU time are read from `/proc`.
//!
//! `--ceiling` also runs the same load, in the same run, against the same
//! connection layer (`icpd::http::Server`, default limits, TLS when the URL
//! is https) started in this process with a handler that does nothing but
//! answer a fixed acknowledgement, and prints icpd ÷ ceiling. Without
//! `--server`, only the ceiling is measured (`--plain` for plain HTTP).
//! The ceiling server shares this process, so its RSS and threads are not
//! reported separately.
//!
//! A server for the fleet needs `--config examples/fleet/benchmark.toml`:
//! the fleet sends from one address, and faster per runtime than a bridge
//! would, so the per-address and per-runtime limits must be off.
//!
//! ```text
//! target/release/icpd --data-dir /tmp/fleet-data serve --config examples/fleet/benchmark.toml \
//!     --runtime-listen 127.0.0.1:9445 &
//! cargo run --release --example fleet -- --server https://127.0.0.1:9445 \
//!     --data-dir /tmp/fleet-data --server-pid $! --rate 5000 --duration 30 --ceiling
//! ```
//!
//! The load generator runs on the same machine as the server unless you
//! move it: the figures then include the contention for the cores.
//!
//! ## Scale checks (`--spawn`)
//!
//! With `--spawn` the fleet starts icpd itself (`--icpd`, on `--data-dir`,
//! free loopback ports, TLS unless `--plain`, the settings of
//! `benchmark.toml`), reports the start-to-ready time and can then, during
//! the measurement:
//!
//! - `--restart-after S`: restart the server S seconds in (SIGTERM, wait,
//!   start again on the same ports and data). Every runtime keeps its
//!   schedule, so with `--connections` equal to `--runtimes` the whole
//!   fleet reconnects within one interval: the restart herd. Checks: no 5xx,
//!   no request sent after the server was ready again waits more than 1 s,
//!   no runtime is ever listed OFFLINE.
//! - `--stop N --stop-after S`: N runtimes (spread over the fleet) stop
//!   sending S seconds in. Checks: exactly those N are listed OFFLINE, each
//!   within the heartbeat timeout + 1 s of its last acknowledged heartbeat
//!   and not before the timeout. Both are judged on bounds that polling
//!   cannot stretch: "late" only if even the last poll that did not list
//!   it yet was sent more than timeout + 1 s after the heartbeat's answer,
//!   "early" only if the first poll listing it was answered less than the
//!   timeout after the heartbeat was sent.
//! - `--list-pages N`: N requests for 100-runtime pages of the runtime list
//!   (`GET /api/v1/runtimes?limit=100`, following `nextCursor`), spread over
//!   the measurement, with their latency (target: p95 ≤ 20 ms). With
//!   `--list-via graphql` the pages come from ICP's GraphQL API instead:
//!   `runtimes(environmentId: dev, pagination: {limit: 100, offset})`, the
//!   console's runtimes document, the offset walking the whole list.
//!
//! Statuses are watched through the management API (`GET /api/v1/runtimes
//! ?status=OFFLINE`, every 200 ms) as a user the fleet creates with the CLI.
//! Each check prints PASS or FAIL, and the exit status is 1 if any failed.
//! `--smoke` (CI on shared cores) prints the latency target without judging
//! it; the 1 s bound on waits after a restart stays judged, since a
//! connection dropped by a full listen queue is retried after exactly 1 s.
//!
//! ## Micro Integrator runtimes (`--kind mi`)
//!
//! Every simulated runtime behaves as MI's heartbeat agent does
//! (`shared/protocol/MI.md`, `mi.rs`), on secrets made with `--type MI`:
//! each round is a delta heartbeat, followed at once by a full heartbeat
//! when the answer says `fullHeartbeatRequired: true` (so registration is
//! a delta answered that way, then the full heartbeat); 400, 401 and 409
//! stop that runtime for good (counted as failures), anything else is
//! retried at its next due time. The token is MI's (kid, no typ, no nbf),
//! minted once and reused; the payload is MI's, with all 15 artifact lists
//! (`--mi-artifacts` scales the proxies and APIs) and an MD5 `runtimeHash`.
//! The default rate is one heartbeat per runtime every 10 s (MI's default
//! interval). Measured latency is the delta's; full heartbeats asked for
//! during the measurement are counted with their own latency. One
//! difference remains: MI opens a new connection per request, the fleet
//! shares its keep-alive connections (`--connections`) as for the bridge.
//!
//! `--mi-mgmt` serves a fake MI Management API for all of them
//! (`mi_mgmt.rs`): one HTTPS port, each runtime reporting its own loopback
//! address 127.A.B.C as `runtimeHostname`, so icpd can manage them; a
//! management call that changes a state changes that runtime's hash, and
//! the runtime converges as MI does. `--mi-mgmt-probe` calls it once
//! itself, as a control plane would, and checks the answers.
//!
//! `--mi-converge-check` (`converge.rs`, needs `--mi-mgmt` and `--spawn`,
//! or `--server` with `--management-url`, `--admin-user` and
//! `FLEET_ADMIN_PASSWORD`) puts every runtime into one integration,
//! `fleet-mi` (or only `--mi-converge-replicas` of them, the others
//! heartbeating beside them in integrations of their own, and counted in
//! the heartbeat latency), and `--mi-converge-after` seconds into the measurement makes
//! one desired-state change through icpd's REST API (a proxy service
//! disabled), then reports how long until icpd lists it in sync, until
//! every replica was called, and until every replica reported it, with
//! heartbeat latency before and during. Against an icpd without the MI
//! desired-state API it fails that check with a message saying so;
//! `--mi-converge-direct` then has the fleet make the management calls
//! itself, which measures the MI side of convergence on its own.
//!
//! ```text
//! target/release/examples/fleet --spawn --data-dir /tmp/fl-mi --kind mi --runtimes 500 \
//!     --mi-mgmt --mi-converge-check --duration 60
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

mod converge;
mod md5;
mod mi;
mod mi_mgmt;
mod observe;
// Shared with examples/crash.rs and examples/hostile.rs; each uses part of it.
mod sim;
#[allow(dead_code)]
mod spawned;

use sim::{create_secrets, timestamp};

use observe::Watch;
use serde_json::{json, Value};
use spawned::{Management, Spawned};

use icpd::config::{Config, TlsConfig};
use icpd::http::client::{Client, ClientTls};
use icpd::http::{Limits, Request, Response, Server};

/// Token lifetime; tokens are made once per runtime, so a run must be
/// shorter than this.
const TOKEN_LIFETIME_S: i64 = 3600;

/// After the last due time, how long requests still due may take to be
/// sent before they are counted as not sent.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Per-request timeout of the client: a request taking longer counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// Delta heartbeats (`POST /icp/deltaHeartbeat`).
    Delta,
    /// Full heartbeats with unchanged artifacts (`POST /icp/heartbeat`).
    Full,
    /// Full heartbeats that toggle a listener's state every time.
    FullChanged,
    /// Micro Integrator runtimes: MI's agent, token and payload (delta
    /// heartbeats, a full one when the server asks for it).
    Mi,
}

#[derive(Debug, Parser)]
#[command(about = "Simulates a fleet of runtimes against icpd and measures rate and latency")]
struct Args {
    /// icpd's runtime listener, http:// or https:// (TLS follows the scheme).
    /// Without it, only the ceiling is measured.
    #[arg(long)]
    server: Option<String>,
    /// The server's data directory, for `icpd secret create` (and for the
    /// server itself with --spawn).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Start icpd (--icpd) on --data-dir here instead of using --server;
    /// TLS unless --plain.
    #[arg(long, conflicts_with = "server")]
    spawn: bool,
    /// With --spawn: the server's heartbeat timeout in seconds.
    #[arg(long, default_value_t = 30)]
    heartbeat_timeout: u64,
    /// With --spawn: restart the server this many seconds into the measurement.
    #[arg(long, requires = "spawn")]
    restart_after: Option<u64>,
    /// With --spawn: this many runtimes stop sending --stop-after seconds
    /// into the measurement; checks that exactly they turn OFFLINE in time.
    #[arg(long, default_value_t = 0, requires = "spawn")]
    stop: usize,
    /// With --stop: when they stop, in seconds into the measurement.
    #[arg(long, default_value_t = 5)]
    stop_after: u64,
    /// With --spawn: this many requests for 100-runtime pages of the
    /// runtime list, spread over the measurement.
    #[arg(long, default_value_t = 0, requires = "spawn")]
    list_pages: usize,
    /// With --list-pages: fetch them through the REST list (keyset pages
    /// following nextCursor) or through ICP's GraphQL API
    /// (`runtimes(environmentId, pagination: {limit: 100, offset})`, the
    /// offset walking the whole list, or always 0 with graphql-first).
    #[arg(long, value_enum, default_value_t = observe::ListVia::Rest)]
    list_via: observe::ListVia,
    /// The icpd binary used to create secrets.
    #[arg(long, default_value = "target/release/icpd")]
    icpd: PathBuf,
    /// The server's process id, to report its RSS, threads and CPU time.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also measure the empty-handler ceiling with the same load, in this
    /// run (not with --kind mi).
    #[arg(long)]
    ceiling: bool,
    /// Plain HTTP for the ceiling when no --server is given, and for --spawn.
    #[arg(long)]
    plain: bool,
    /// Simulated runtimes.
    #[arg(long, default_value_t = 1000)]
    runtimes: usize,
    /// Secrets the runtimes are spread over, one integration each: `fleet-N`
    /// (with --kind mi `fleet-mi-N`; all `fleet-mi` with --mi-converge-check).
    #[arg(long, default_value_t = 10)]
    secrets: usize,
    /// Keep-alive connections shared by the runtimes.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Heartbeats per second offered by the whole fleet; 0 is closed loop
    /// (as fast as responses come back). Default 5000, or with --kind mi
    /// one per runtime every 10 s (MI's default heartbeat interval).
    #[arg(long = "rate", value_name = "RATE")]
    rate_given: Option<f64>,
    /// The rate in effect (--rate or its default).
    #[arg(skip)]
    rate: f64,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Load threads; each owns connections / threads connections and its
    /// share of the runtimes, and has one request in flight at a time.
    #[arg(long, default_value_t = 64)]
    threads: usize,
    /// What the runtimes send once registered.
    #[arg(long, value_enum, default_value_t = Kind::Delta)]
    kind: Kind,
    /// Each interval between two heartbeats of a runtime varies by up to
    /// this many milliseconds either way (the mean rate is unchanged).
    #[arg(long, default_value_t = 10)]
    jitter: u64,
    /// Judge the checks of properties only; print latency targets (the
    /// list-page p95) without judging them. For CI on shared machines.
    #[arg(long)]
    smoke: bool,
    /// With --kind mi: proxy services and APIs each runtime deploys (the
    /// other artifacts are fixed).
    #[arg(long, default_value_t = 3)]
    mi_artifacts: usize,
    /// With --kind mi: serve a fake MI Management API for every runtime
    /// (HTTPS on one port; each runtime reports its own 127.A.B.C address).
    #[arg(long)]
    mi_mgmt: bool,
    /// With --mi-mgmt: its port (0: a free one). It binds 0.0.0.0 and
    /// answers only calls to the runtimes' loopback addresses.
    #[arg(long, default_value_t = 0)]
    mi_mgmt_port: u16,
    /// With --mi-mgmt: worker threads answering management calls.
    #[arg(long, default_value_t = 4)]
    mi_mgmt_threads: usize,
    /// With --mi-mgmt: call the first runtime's Management API once, as a
    /// control plane would, before the measurement, and check the answers
    /// and that its next heartbeats report the change.
    #[arg(long)]
    mi_mgmt_probe: bool,
    /// With --mi-mgmt and --spawn (or --server with --management-url): one
    /// desired-state change through icpd's REST API (proxy service
    /// StockQuoteProxy disabled, every runtime in the integration
    /// fleet-mi), measuring how long until every replica runs and reports it.
    #[arg(long)]
    mi_converge_check: bool,
    /// With --mi-converge-check: the fleet makes the management calls to
    /// every replica itself instead of asking icpd (no PUT, icpd's view not
    /// polled), to measure the MI side of convergence without icpd's MI API.
    #[arg(long, requires = "mi_converge_check")]
    mi_converge_direct: bool,
    /// With --mi-converge-check: when to make the change, in seconds into
    /// the measurement (the steady state before it is the latency baseline).
    #[arg(long, default_value_t = 10)]
    mi_converge_after: u64,
    /// With --mi-converge-check: how many of the runtimes are replicas of
    /// the integration that converges (on the first secret); the others
    /// heartbeat beside them in integrations of their own (`fleet-mi-N`,
    /// on the other secrets). Default: every runtime.
    #[arg(long, requires = "mi_converge_check")]
    mi_converge_replicas: Option<usize>,
    /// With --mi-converge-check: how often icpd's view of the artifact is
    /// polled after the change, in ms (the console polls every 2,000 while
    /// an artifact converges).
    #[arg(long, default_value_t = 200)]
    mi_converge_poll_ms: u64,
    /// With --server and --mi-converge-check: icpd's management API URL.
    #[arg(long, value_name = "URL")]
    management_url: Option<String>,
    /// With --management-url: a user allowed to change desired state; the
    /// password is read from FLEET_ADMIN_PASSWORD.
    #[arg(long)]
    admin_user: Option<String>,
}

/// The integration every MI runtime belongs to with --mi-converge-check.
const CONVERGE_INTEGRATION: &str = "fleet-mi";

/// The artifact --mi-converge-check disables.
const CONVERGE_PROXY: &str = "StockQuoteProxy";

impl Args {
    /// The integration of the runtimes on secret `s`.
    fn integration(&self, s: usize) -> String {
        match self.kind {
            Kind::Mi if self.mi_converge_check && (s == 0 || !self.converge_apart()) => {
                CONVERGE_INTEGRATION.to_string()
            }
            Kind::Mi => format!("fleet-mi-{s}"),
            _ => format!("fleet-{s}"),
        }
    }

    /// Some runtimes heartbeat outside the converging integration
    /// (`--mi-converge-replicas` below `--runtimes`).
    fn converge_apart(&self) -> bool {
        self.mi_converge_replicas.is_some_and(|n| n < self.runtimes)
    }

    /// The secret runtime `i` heartbeats with, of `secrets`: spread evenly;
    /// with `--mi-converge-replicas n`, n runtimes spread evenly over the
    /// fleet (so over the heartbeat schedule) on secret 0, the converging
    /// integration, and the others over the rest.
    fn secret_of(&self, i: usize, secrets: usize) -> usize {
        match self.mi_converge_replicas {
            Some(n) if self.converge_apart() => {
                // Runtime i is the k-th replica when ⌊i·n/runtimes⌋ steps.
                let before = i * n / self.runtimes;
                if (i + 1) * n / self.runtimes > before {
                    0
                } else {
                    1 + (i - before) % (secrets - 1)
                }
            }
            _ => i % secrets,
        }
    }

    /// The replicas the converge check waits for: those of the converging
    /// integration that keep sending.
    fn converge_expected(&self) -> usize {
        match self.mi_converge_replicas {
            Some(n) if self.converge_apart() => n,
            _ => self.runtimes - self.stop,
        }
    }
}

/// One simulated runtime.
struct Runtime {
    id: String,
    integration: String,
    /// `Bearer <token>`, made once.
    bearer: String,
    /// For `full-changed`: the state reported last, toggled every time.
    listener_enabled: bool,
    /// For `full-changed`: bumped every time, so the hash changes too.
    generation: u64,
    /// Stops sending at the planned stop (`--stop`).
    stops: bool,
    /// When the last acknowledged heartbeat was sent, and when its answer came.
    last_ok: Option<(Instant, Instant)>,
    /// When its acknowledged heartbeats were answered, from the planned
    /// restart on (`--restart-after`).
    oks_after_restart: Vec<Instant>,
    /// With --kind mi: its MI agent.
    mi: Option<MiAgent>,
}

/// What an MI runtime's agent keeps between rounds.
struct MiAgent {
    /// Its node in the shared `mi::Fleet` (what it has deployed).
    node: usize,
    /// Its cached token.
    token: mi::Token,
    /// The status that stopped its heartbeats for good (400, 401, 409).
    stopped: Option<u16>,
}

impl Runtime {
    fn full_heartbeat(&self) -> Value {
        sim::full_heartbeat(&sim::FullBody {
            runtime_id: &self.id,
            project: "fleet",
            integration: &self.integration,
            hash: &self.hash(),
            listener_state: if self.listener_enabled {
                "enabled"
            } else {
                "disabled"
            },
            extended: true,
        })
    }

    /// Opaque to the server; it only has to change when the state does.
    fn hash(&self) -> String {
        format!("fleet-{}-{}", self.generation, self.listener_enabled)
    }

    /// The body of the next measured request.
    fn next_body(&mut self, kind: Kind) -> Vec<u8> {
        match kind {
            Kind::Delta => format!(
                r#"{{"runtimeId":"{}","heartbeatVersion":"v1.0","runtimeHash":"{}","timestamp":{}}}"#,
                self.id,
                self.hash(),
                timestamp()
            )
            .into_bytes(),
            Kind::Full => self.full_heartbeat().to_string().into_bytes(),
            Kind::FullChanged => {
                self.listener_enabled = !self.listener_enabled;
                self.generation += 1;
                self.full_heartbeat().to_string().into_bytes()
            }
            Kind::Mi => unreachable!("an MI runtime's round is mi_round"),
        }
    }
}

/// A small xorshift generator for jitter: no need for a crate, nor for quality.
struct Jitter(u64);

impl Jitter {
    /// Uniform in [-max, +max].
    fn next(&mut self, max: Duration) -> i128 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let span = max.as_nanos() as i128;
        if span == 0 {
            return 0;
        }
        (self.0 as i128 % (2 * span + 1)) - span
    }
}

/// What one load thread (and then the whole run) observed.
#[derive(Default)]
struct Tally {
    /// Latencies of successful requests, in microseconds.
    micros: Vec<u32>,
    /// Failures by kind: `HTTP 401`, an I/O error kind, `not sent`, ...
    errors: BTreeMap<String, u64>,
    /// When the last response arrived.
    last: Option<Instant>,
    /// Around a restart: every failure with its time, and every success
    /// due from the planned restart on as (due, answered).
    error_times: Vec<(Instant, String)>,
    around_restart: Vec<(Instant, Instant)>,
    /// With --mi-converge-check: every measured heartbeat as (due, µs).
    timed: Vec<(Instant, u32)>,
    /// MI: latencies of the full heartbeats the server asked for, µs.
    full_micros: Vec<u32>,
    /// MI: runtimes registered (a full heartbeat acknowledged) in the
    /// registration round.
    registered: u64,
}

impl Tally {
    fn error(&mut self, what: String) {
        self.error_times.push((Instant::now(), what.clone()));
        *self.errors.entry(what).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        self.micros.extend(other.micros);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.last = self.last.max(other.last);
        self.error_times.extend(other.error_times);
        self.around_restart.extend(other.around_restart);
        self.timed.extend(other.timed);
        self.full_micros.extend(other.full_micros);
        self.registered += other.registered;
    }
}

/// Events planned during the measurement, as offsets from its start.
#[derive(Clone, Copy, Default)]
struct Plan {
    stop_after: Option<Duration>,
    restart_after: Option<Duration>,
}

/// What a target is: where to send, how, and how to observe it.
struct Target {
    label: String,
    url: String,
    tls: bool,
    /// Whose `/proc` entry to read; `None` when there is none worth reading.
    pid: Option<u32>,
    secrets: Vec<String>,
}

/// One run's result, for the summary and the icpd ÷ ceiling line.
struct Outcome {
    ok: u64,
    rate: f64,
    p99_ms: f64,
    /// How many checks failed (only `--spawn` runs have checks).
    failed: usize,
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    args.rate = match (args.rate_given, args.kind) {
        (Some(r), _) => r,
        (None, Kind::Mi) => args.runtimes as f64 / mi::INTERVAL_S,
        (None, _) => 5000.0,
    };
    match run(args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failed) => {
            eprintln!("{failed} check(s) FAILED");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs what `args` asks for; returns how many checks failed.
fn run(args: Args) -> Result<usize, String> {
    if args.runtimes == 0 || args.connections == 0 || args.threads == 0 || args.secrets == 0 {
        return Err("--runtimes, --connections, --threads and --secrets must be at least 1".into());
    }
    if args.rate < 0.0 {
        return Err("--rate must be 0 (closed loop) or more".into());
    }
    if args.server.is_none() && !args.spawn && !args.ceiling {
        return Err("give --server URL or --spawn, --ceiling, or both".into());
    }
    let timeout = Duration::from_secs(args.heartbeat_timeout);
    if args.stop > 0 {
        if args.stop >= args.runtimes {
            return Err("--stop must be fewer than --runtimes".into());
        }
        let needed = args.stop_after + args.heartbeat_timeout + 2;
        if args.duration < needed {
            return Err(format!(
                "--stop needs --duration of at least --stop-after + --heartbeat-timeout + 2 = {needed} s"
            ));
        }
    }
    if (args.stop > 0 || args.restart_after.is_some()) && args.rate <= 0.0 {
        return Err("--stop and --restart-after need an open loop (--rate above 0)".into());
    }
    if let Some(r) = args.restart_after {
        // Every runtime must have had its turn after the restart.
        let interval = args.runtimes as f64 / args.rate;
        let needed = r as f64 + interval + 2.0;
        if (args.duration as f64) < needed {
            return Err(format!(
                "--restart-after needs --duration of at least --restart-after + one interval (runtimes / rate) + 2 = {needed:.0} s"
            ));
        }
    }
    check_mi_args(&args)?;
    // One request in flight per thread: more threads than connections would
    // leave threads without a connection.
    let threads = args.threads.min(args.connections).min(args.runtimes);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "fleet: {} runtimes, {} connections, {} threads, kind {:?}, {}, {} s, jitter ±{} ms; {} cores on this machine",
        args.runtimes,
        args.connections,
        threads,
        args.kind,
        if args.rate > 0.0 {
            format!("open loop at {}/s", args.rate)
        } else {
            "closed loop".to_string()
        },
        args.duration,
        args.jitter,
        cores
    );

    let mut icpd_outcome = None;
    let mut failed = 0;
    let tls = match &args.server {
        Some(url) => url.starts_with("https://"),
        None => !args.plain,
    };
    if args.spawn {
        let data_dir = args.data_dir.as_deref().ok_or("--spawn needs --data-dir")?;
        let (mut server, ready) =
            Spawned::start(&args.icpd, data_dir, tls, args.heartbeat_timeout)?;
        println!(
            "started       icpd pid {} on {}: ready in {} ms (log: {})",
            server.pid(),
            data_dir.display(),
            ready.as_millis(),
            server.log.display()
        );
        let secrets = fleet_secrets(&args, data_dir)?;
        let target = Target {
            label: "icpd".into(),
            url: server.runtime_url(),
            tls,
            pid: Some(server.pid()),
            secrets,
        };
        let outcome = measure(&args, threads, &target, Some((&mut server, timeout)))?;
        failed += outcome.failed;
        icpd_outcome = Some(outcome);
        let stop = server.stop()?;
        println!("stopped       in {} ms (SIGTERM, exit 0)", stop.as_millis());
    } else if let Some(url) = &args.server {
        let data_dir = args
            .data_dir
            .as_deref()
            .ok_or("--data-dir is needed to create secrets for --server")?;
        let secrets = fleet_secrets(&args, data_dir)?;
        let target = Target {
            label: "icpd".into(),
            url: url.clone(),
            tls,
            pid: args.server_pid,
            secrets,
        };
        icpd_outcome = Some(measure(&args, threads, &target, None)?);
    }
    if args.ceiling {
        let outcome = measure_ceiling(&args, threads, tls)?;
        if let Some(icpd) = icpd_outcome {
            println!(
                "icpd ÷ ceiling: rate {:.2} ({:.0} / {:.0} per s), p99 {:.2} ms vs {:.2} ms{}",
                icpd.rate / outcome.rate.max(f64::MIN_POSITIVE),
                icpd.rate,
                outcome.rate,
                icpd.p99_ms,
                outcome.p99_ms,
                if args.rate > 0.0 && icpd.ok > 0 && outcome.ok > 0 {
                    " (open loop: the rate ratio is 1.0 when both keep up; use --rate 0 for the throughput ratio)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(failed)
}

/// The options of `--kind mi` only make sense together, and the converge
/// check needs time around its change.
fn check_mi_args(args: &Args) -> Result<(), String> {
    let mi = args.kind == Kind::Mi;
    if !mi && (args.mi_mgmt || args.mi_mgmt_probe || args.mi_converge_check) {
        return Err("--mi-mgmt, --mi-mgmt-probe and --mi-converge-check need --kind mi".into());
    }
    if mi && args.ceiling {
        return Err(
            "--ceiling measures the bridge's requests; it does not run with --kind mi".into(),
        );
    }
    if (args.mi_mgmt_probe || args.mi_converge_check) && !args.mi_mgmt {
        return Err(
            "--mi-mgmt-probe and --mi-converge-check need --mi-mgmt (the runtimes' Management API)"
                .into(),
        );
    }
    if args.mi_converge_check {
        if !args.spawn && (args.management_url.is_none() || args.admin_user.is_none()) {
            return Err("--mi-converge-check needs --spawn, or --server with --management-url and --admin-user (password in FLEET_ADMIN_PASSWORD)".into());
        }
        if args.rate <= 0.0 {
            return Err("--mi-converge-check needs an open loop (--rate above 0)".into());
        }
        // A baseline, then time for icpd to call every replica and for
        // each to send its next delta and full heartbeat.
        let interval = args.runtimes as f64 / args.rate;
        if let Some(n) = args.mi_converge_replicas {
            if n == 0 || n > args.runtimes {
                return Err("--mi-converge-replicas must be from 1 to --runtimes".into());
            }
            if n < args.runtimes && (args.secrets < 2 || args.stop > 0) {
                return Err("--mi-converge-replicas below --runtimes needs --secrets of at least 2 (one for the converging integration) and no --stop".into());
            }
        }
        let needed = args.mi_converge_after as f64 + 2.0 * interval + 5.0;
        if (args.duration as f64) < needed {
            return Err(format!(
                "--mi-converge-check needs --duration of at least --mi-converge-after + two intervals (runtimes / rate) + 5 = {needed:.0} s"
            ));
        }
    }
    Ok(())
}

/// The secrets the fleet heartbeats with, made through the CLI: bound to
/// `fleet/fleet-N` (BI), `fleet/fleet-mi-N` (MI), or all to
/// `fleet/fleet-mi` for the converge check.
fn fleet_secrets(args: &Args, data_dir: &std::path::Path) -> Result<Vec<String>, String> {
    match args.kind {
        Kind::Mi => sim::create_typed_secrets(
            &args.icpd,
            data_dir,
            "fleet",
            "MI",
            &|s| args.integration(s),
            args.secrets,
        ),
        _ => create_secrets(&args.icpd, data_dir, "fleet", args.secrets),
    }
}

/// Starts the connection layer with an empty handler in this process and
/// measures the same load against it.
fn measure_ceiling(args: &Args, threads: usize, tls: bool) -> Result<Outcome, String> {
    let dir = std::env::temp_dir().join(format!("icpd-fleet-ceiling-{}", std::process::id()));
    let tls_config = if tls {
        let cfg = TlsConfig {
            enabled: true,
            cert: None,
            key: None,
        };
        let material = icpd::http::tls::load(&cfg, &dir).map_err(|e| e.to_string())?;
        Some(material.server_config)
    } else {
        None
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    // The same body icpd answers a delta heartbeat with, serialized per
    // request as icpd does.
    let handler = Arc::new(|_req: &Request| {
        Response::json(
            200,
            &json!({"acknowledged": true, "fullHeartbeatRequired": false,
                    "commands": [], "supportedHeartbeatFields": []}),
        )
    });
    let server = Server::start("ceiling", listener, tls_config, Limits::default(), handler)
        .map_err(|e| format!("cannot start the ceiling server: {e}"))?;
    let scheme = if tls { "https" } else { "http" };
    let target = Target {
        label: "ceiling".into(),
        url: format!("{scheme}://{}", server.local_addr()),
        tls,
        pid: None,
        // Same shape and length as real secrets, so requests are the same size.
        secrets: (0..args.secrets)
            .map(|i| format!("{i:08x}.{}", "A".repeat(44)))
            .collect(),
    };
    let outcome = measure(args, threads, &target, None);
    server.shutdown(Duration::from_secs(1));
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// Registers the fleet with `target`, runs the load and prints the summary.
/// With a spawned server (and its heartbeat timeout), also carries out and
/// checks `--stop`, `--restart-after` and `--list-pages`.
fn measure(
    args: &Args,
    threads: usize,
    target: &Target,
    mut spawned: Option<(&mut Spawned, Duration)>,
) -> Result<Outcome, String> {
    let token_cfg = Config::defaults().token;
    let now_s = chrono::Utc::now().timestamp();
    // A tag per run, so the runtimes of one run never collide with those a
    // previous run left in the same data directory.
    let tag = (chrono::Utc::now().timestamp_micros() as u64 ^ u64::from(std::process::id()))
        & 0xffff_ffff;
    let mi = args.kind == Kind::Mi;
    // MI: the Management API's port first, since every node reports it.
    let mgmt_listener = match args.mi_mgmt {
        true => Some(mi_mgmt::bind(args.mi_mgmt_port)?),
        false => None,
    };
    let mgmt_port = match &mgmt_listener {
        Some(l) => l.local_addr().map_err(|e| e.to_string())?.port(),
        None => mi::MGMT_DEFAULT_PORT,
    };
    let layout = mi::Layout::new(args.mi_artifacts);
    let mut nodes = Vec::new();
    let mut runtimes = Vec::new();
    for i in 0..args.runtimes {
        let s = args.secret_of(i, target.secrets.len());
        let id = format!("{tag:08x}-0000-4000-8000-{i:012}");
        let bearer = match mi {
            // An MI runtime mints its own token (MiAgent::token).
            true => String::new(),
            false => format!(
                "Bearer {}",
                icpd::protocol::token::issue(
                    &target.secrets[s],
                    &token_cfg,
                    now_s,
                    TOKEN_LIFETIME_S
                )
            ),
        };
        let agent = match mi {
            true => {
                nodes.push(std::sync::Mutex::new(mi::Node::new(
                    &layout,
                    mi::Identity {
                        runtime_id: id.clone(),
                        name: format!("mi-{tag:08x}-{i}"),
                        environment: "dev".into(),
                        project: "fleet".into(),
                        integration: args.integration(s),
                        host: mi::loopback(i),
                        port: mgmt_port,
                        secret: target.secrets[s].clone(),
                    },
                )));
                Some(MiAgent {
                    node: i,
                    token: mi::Token::new(&target.secrets[s])?,
                    stopped: None,
                })
            }
            false => None,
        };
        runtimes.push(Runtime {
            id,
            integration: args.integration(s),
            bearer,
            listener_enabled: true,
            generation: 0,
            // Spread over the fleet: every (runtimes / stop)-th runtime.
            stops: args.stop > 0
                && i % (args.runtimes / args.stop) == 0
                && i / (args.runtimes / args.stop) < args.stop,
            last_ok: None,
            oks_after_restart: Vec::new(),
            mi: agent,
        });
    }
    let fleet = mi.then(|| Arc::new(mi::Fleet { layout, nodes }));
    if let Some(first) = fleet.as_ref().and_then(|f| f.nodes.first().map(|n| (f, n))) {
        let (f, node) = first;
        let (full, _) = lock(node).full_body(&f.layout);
        println!(
            "mi            each runtime deploys {} proxy services and {} APIs besides the fixed artifacts; a full heartbeat is {} bytes, a delta {}",
            f.layout.names(mi::Kind::Proxy).len(),
            f.layout.names(mi::Kind::Api).len(),
            full.len(),
            lock(node).delta_body(&f.layout).len()
        );
    }
    let mgmt_server = match (mgmt_listener, &fleet) {
        (Some(l), Some(f)) => {
            let server = mi_mgmt::MgmtServer::start(l, f.clone(), args.mi_mgmt_threads)?;
            println!(
                "mi mgmt       fake MI Management API on port {} for {} runtimes ({} to {}), {} workers",
                server.port(),
                args.runtimes,
                mi::loopback(0),
                mi::loopback(args.runtimes - 1),
                args.mi_mgmt_threads
            );
            Some(server)
        }
        _ => None,
    };

    // Deal runtimes and connections to threads.
    let mut groups: Vec<(Vec<Runtime>, Vec<Client>)> =
        (0..threads).map(|_| (Vec::new(), Vec::new())).collect();
    for (i, r) in runtimes.into_iter().enumerate() {
        groups[i % threads].0.push(r);
    }
    let client_tls = if target.tls {
        ClientTls::Insecure
    } else {
        ClientTls::Plain
    };
    for c in 0..args.connections {
        let mut client = Client::new(&target.url, client_tls.clone()).map_err(|e| e.to_string())?;
        client.set_timeout(REQUEST_TIMEOUT);
        groups[c % threads].1.push(client);
    }

    // Every runtime's interval, so the fleet offers `rate` per second.
    let interval = if args.rate > 0.0 {
        Some(Duration::from_secs_f64(args.runtimes as f64 / args.rate))
    } else {
        None
    };
    let jitter = Duration::from_millis(args.jitter).min(interval.unwrap_or_default() / 2);
    let duration = Duration::from_secs(args.duration);

    // Registration runs in every thread at once; the barrier then starts
    // the measurement everywhere at the same instant.
    let registered = Arc::new(Barrier::new(threads + 1));
    let go = Arc::new(Barrier::new(threads + 1));
    let start_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let total = args.runtimes;
    let how = How {
        kind: args.kind,
        keep_times: args.mi_converge_check,
    };
    let plan = Plan {
        stop_after: (args.stop > 0).then(|| Duration::from_secs(args.stop_after)),
        restart_after: args.restart_after.map(Duration::from_secs),
    };
    let mut handles = Vec::new();
    for (t, (mut runtimes, mut conns)) in groups.into_iter().enumerate() {
        let (registered, go, start_at) = (registered.clone(), go.clone(), start_at.clone());
        let fleet = fleet.clone();
        handles.push(std::thread::spawn(
            move || -> Result<(Tally, Vec<Runtime>, u64), String> {
                let fleet = fleet.as_deref();
                let mut reg_tally = Tally::default();
                let reg = match fleet {
                    Some(f) => {
                        register_mi(&mut runtimes, &mut conns, f, &mut reg_tally);
                        Ok(())
                    }
                    None => register(&mut runtimes, &mut conns),
                };
                registered.wait();
                go.wait();
                reg?;
                let start = start_at
                    .lock()
                    .map_err(|_| "poisoned")?
                    .ok_or("no start time")?;
                let seed = 0x9e37_79b9_7f4a_7c15u64 ^ ((t as u64 + 1) << 32);
                let opened_before: u64 = conns.iter().map(Client::connection_count).sum();
                let mut tally = match interval {
                    Some(iv) => open_loop(
                        &mut runtimes,
                        &mut conns,
                        how,
                        fleet,
                        Schedule {
                            start,
                            duration,
                            interval: iv,
                            jitter,
                            plan,
                            fleet_spread: (how.kind == Kind::Mi).then_some((t, threads, total)),
                        },
                        Jitter(seed),
                    ),
                    None => closed_loop(&mut runtimes, &mut conns, how, fleet, start, duration),
                };
                tally.merge(reg_tally);
                let opened: u64 = conns.iter().map(Client::connection_count).sum();
                Ok((tally, runtimes, opened - opened_before))
            },
        ));
    }
    let started_registration = Instant::now();
    registered.wait();
    let registration = started_registration.elapsed();
    let mut checks = Vec::new();
    // The probe's changes to the first node, for the follow-up check.
    let probed = match (&fleet, &mgmt_server) {
        (Some(f), Some(server)) if args.mi_mgmt_probe => {
            let probe = mi_mgmt::probe(f, server.port());
            checks.extend(probe.into_iter().map(|(what, passed, detail)| {
                observe::check(format!("mi mgmt probe: {what}"), passed, detail)
            }));
            f.nodes.first().map(|n| lock(n).generation())
        }
        _ => None,
    };
    let before = target.pid.and_then(proc_usage);
    let start = Instant::now() + Duration::from_millis(50);
    *start_at.lock().map_err(|_| "poisoned")? = Some(start);
    go.wait();

    // With a spawned server: watch statuses and fetch list pages meanwhile.
    let end = start + duration;
    let watch = match &spawned {
        Some((server, _)) => Some(Watch::start(
            server.management()?,
            start,
            end,
            args.list_pages,
            args.list_via,
        )?),
        None => None,
    };
    // MI: one desired-state change through icpd's API, followed meanwhile.
    let converging = match (&fleet, args.mi_converge_check) {
        (Some(_), true) => {
            let mgmt = match &spawned {
                Some((server, _)) => server.management_as("fleet-admin", "Admin")?,
                None => Management::login(
                    args.management_url.as_deref().unwrap_or_default(),
                    ClientTls::Insecure,
                    args.admin_user.as_deref().unwrap_or_default(),
                    &std::env::var("FLEET_ADMIN_PASSWORD")
                        .map_err(|_| "--admin-user needs FLEET_ADMIN_PASSWORD")?,
                )?,
            };
            let target = converge::Target {
                project: "fleet".into(),
                integration: CONVERGE_INTEGRATION.into(),
                environment: "dev".into(),
                kind: mi::Kind::Proxy,
                name: CONVERGE_PROXY.into(),
                enabled: false,
                poll_every: Duration::from_millis(args.mi_converge_poll_ms),
            };
            Some(converge::start(
                mgmt,
                target,
                format!("{tag:08x}-"),
                args.converge_expected(),
                start + Duration::from_secs(args.mi_converge_after),
                end,
                match (args.mi_converge_direct, &fleet, &mgmt_server) {
                    (true, Some(f), Some(server)) => Some(converge::Direct {
                        fleet: f.clone(),
                        port: server.port(),
                    }),
                    _ => None,
                },
            ))
        }
        _ => None,
    };

    // Sample the server's RSS, threads and descriptors during the run, keep
    // the peak; restart the server when planned.
    let mut pid = target.pid;
    let mut peak = Peak::default();
    let mut restart = None;
    while Instant::now() < end {
        std::thread::sleep(
            Duration::from_millis(500).min(end.saturating_duration_since(Instant::now())),
        );
        if let Some(u) = pid.and_then(proc_usage) {
            peak.add(u);
        }
        if let (Some(after), Some((server, _)), None) = (plan.restart_after, &mut spawned, &restart)
        {
            if Instant::now() >= start + after {
                let r = server.restart()?;
                println!(
                    "restarted     stop took {} ms, start to ready {} ms, {} s into the run",
                    r.stop.as_millis(),
                    r.start_to_ready.as_millis(),
                    r.down_from.saturating_duration_since(start).as_secs_f64()
                );
                pid = Some(server.pid());
                restart = Some(r);
            }
        }
    }
    let mut tally = Tally::default();
    let mut runtimes = Vec::new();
    let mut reconnects = 0;
    for h in handles {
        let (t, r, opened) = h.join().map_err(|_| "a load thread panicked")??;
        tally.merge(t);
        runtimes.extend(r);
        reconnects += opened;
    }
    let after = pid.and_then(proc_usage);
    // CPU time only means something when the process was the same throughout.
    let before = before.filter(|_| pid == target.pid);
    if let Some(r) = &restart {
        checks.extend(observe::restart_checks(
            &mut tally, &runtimes, r, reconnects,
        ));
    }
    let timed = std::mem::take(&mut tally.timed);
    let outcome = summary(
        args,
        target,
        registration,
        start,
        tally,
        before,
        after,
        peak,
    );
    if let (Some(f), Some(generation)) = (&fleet, probed) {
        checks.push(probe_followed(f, generation));
    }
    if let (Some(f), Some(h)) = (&fleet, converging) {
        let (target, seen) = h.join().map_err(|_| "the converge thread panicked")?;
        checks.extend(converge::finish(
            &target,
            &seen,
            f,
            &timed,
            start,
            end,
            args.converge_expected(),
        ));
    }
    if let Some(server) = mgmt_server {
        server.finish();
    }
    if let (Some(watch), Some((server, timeout))) = (watch, &spawned) {
        checks.extend(watch.finish(&runtimes, plan, *timeout, restart.as_ref(), &server.log)?);
        if mi {
            // MI runtimes of this run that still heartbeat are all listed RUNNING.
            let expected = runtimes
                .iter()
                .filter(|r| !r.stops && r.mi.as_ref().is_some_and(|a| a.stopped.is_none()))
                .count();
            let listed = converge::count_running(
                &mut server.management()?,
                "project=fleet&type=MI",
                &format!("{tag:08x}-"),
            )?;
            checks.push(observe::check(
                "every MI runtime still heartbeating is listed RUNNING at the end",
                listed == expected && expected == args.runtimes - args.stop,
                format!(
                    "{listed} listed RUNNING; {expected} of {} still heartbeating",
                    args.runtimes
                ),
            ));
        }
    }
    let failed = observe::print_checks(&checks, args.smoke);
    Ok(Outcome { failed, ..outcome })
}

/// When a load thread sends, and what happens meanwhile.
#[derive(Clone, Copy)]
struct Schedule {
    start: Instant,
    duration: Duration,
    interval: Duration,
    jitter: Duration,
    plan: Plan,
    /// MI: this thread's index, the thread count and the fleet's size, to
    /// spread the first heartbeats over the whole fleet (see `open_loop`).
    fleet_spread: Option<(usize, usize, usize)>,
}

/// The registration full heartbeat of every runtime (not measured).
fn register(runtimes: &mut [Runtime], conns: &mut [Client]) -> Result<(), String> {
    for (i, r) in runtimes.iter_mut().enumerate() {
        let conn = &mut conns[i % conns.len()];
        let body = r.full_heartbeat().to_string();
        let sent = Instant::now();
        let resp = post(conn, "/icp/heartbeat", &r.bearer, body.as_bytes())
            .map_err(|e| format!("registering {}: {e}", r.id))?;
        r.last_ok = Some((sent, Instant::now()));
        if resp.status != 200 {
            return Err(format!(
                "registering {}: HTTP {} {}",
                r.id,
                resp.status,
                String::from_utf8_lossy(&resp.body)
            ));
        }
    }
    Ok(())
}

fn post(
    conn: &mut Client,
    path: &str,
    bearer: &str,
    body: &[u8],
) -> std::io::Result<icpd::http::client::ClientResponse> {
    conn.request(
        "POST",
        path,
        &[
            ("Content-Type", "application/json"),
            ("Authorization", bearer),
        ],
        body,
    )
}

/// What the load threads send, and what they keep.
#[derive(Clone, Copy)]
struct How {
    kind: Kind,
    /// Keep every heartbeat's due time with its latency (`Tally::timed`).
    keep_times: bool,
}

/// Sends one heartbeat (an MI runtime: one round, see [`mi_round`]) and
/// records the outcome, with latency from `since` (the due time, or the
/// send in a closed loop). Returns the answer's time when the heartbeat was
/// acknowledged.
fn send(
    runtime: &mut Runtime,
    conn: &mut Client,
    how: How,
    fleet: Option<&mi::Fleet>,
    since: Instant,
    tally: &mut Tally,
) -> Option<Instant> {
    let path = match (how.kind, fleet) {
        (Kind::Delta, _) => "/icp/deltaHeartbeat",
        (Kind::Full | Kind::FullChanged, _) => "/icp/heartbeat",
        (Kind::Mi, Some(fleet)) => {
            return mi_round(runtime, conn, fleet, since, tally, how.keep_times)
        }
        (Kind::Mi, None) => unreachable!("--kind mi has an MI fleet"),
    };
    let body = runtime.next_body(how.kind);
    let sent = Instant::now();
    let result = post(conn, path, &runtime.bearer, &body);
    let now = Instant::now();
    tally.last = Some(now);
    match result {
        Ok(r) if r.status == 200 => {
            // A delta for a runtime the server does not know (or whose hash
            // differs) is acknowledged but is not the work we meant to measure.
            if contains(&r.body, b"\"fullHeartbeatRequired\":true") {
                tally.error("200 fullHeartbeatRequired".into());
            } else if !contains(&r.body, b"\"acknowledged\":true") {
                tally.error("200 not acknowledged".into());
            } else {
                let us = now.saturating_duration_since(since).as_micros();
                tally.micros.push(us.min(u128::from(u32::MAX)) as u32);
                runtime.last_ok = Some((sent, now));
                return Some(now);
            }
        }
        Ok(r) => tally.error(format!("HTTP {}", r.status)),
        Err(e) => tally.error(format!("io {:?}", e.kind())),
    }
    None
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A node's lock, even if a thread panicked holding it (the state is
/// plain data, still good to read).
fn lock(node: &std::sync::Mutex<mi::Node>) -> std::sync::MutexGuard<'_, mi::Node> {
    node.lock().unwrap_or_else(|p| p.into_inner())
}

/// The registration round of MI runtimes (not measured): each sends its
/// first delta heartbeat, which the server must answer with
/// `fullHeartbeatRequired`, and then its full heartbeat. Failures are kept
/// in `tally` as `registration: ...`; a runtime not registered here tries
/// again at its first due time, as MI would.
fn register_mi(
    runtimes: &mut [Runtime],
    conns: &mut [Client],
    fleet: &mi::Fleet,
    tally: &mut Tally,
) {
    let mut round = Tally::default();
    for (i, r) in runtimes.iter_mut().enumerate() {
        let conn = &mut conns[i % conns.len()];
        let full_before = round.full_micros.len();
        if mi_round(r, conn, fleet, Instant::now(), &mut round, false).is_some() {
            if round.full_micros.len() > full_before {
                tally.registered += 1;
            } else {
                round.error("delta from a new runtime not answered fullHeartbeatRequired".into());
            }
        }
    }
    for (t, what) in round.error_times {
        tally.error_times.push((t, format!("registration: {what}")));
    }
    for (what, n) in round.errors {
        *tally
            .errors
            .entry(format!("registration: {what}"))
            .or_default() += n;
    }
    tally.last = tally.last.max(round.last);
}

/// The answer to an MI request as MI's agent takes it: 400, 401 and 409
/// stop the runtime for good; any other non-2xx status, a network error or
/// a body that is not a JSON object is logged (counted) and retried at the
/// next due time.
fn mi_answer(
    agent: &mut MiAgent,
    result: std::io::Result<icpd::http::client::ClientResponse>,
    tally: &mut Tally,
) -> Option<Value> {
    match result {
        Err(e) => tally.error(format!("io {:?}", e.kind())),
        Ok(r) if matches!(r.status, 400 | 401 | 409) => {
            agent.stopped = Some(r.status);
            tally.error(format!("HTTP {} (MI stops for good)", r.status));
        }
        Ok(r) if !(200..300).contains(&r.status) => tally.error(format!("HTTP {}", r.status)),
        Ok(r) => match serde_json::from_slice::<Value>(&r.body) {
            Ok(v @ Value::Object(_)) => return Some(v),
            _ => tally.error(format!("{} answer not a JSON object", r.status)),
        },
    }
    None
}

/// One round of MI's heartbeat agent (`ICPHeartBeatComponent`): a delta
/// heartbeat; when its answer says `fullHeartbeatRequired: true`, the full
/// heartbeat at once, on the same connection. The latency recorded (from
/// `since`) is the delta's; the full heartbeat's own goes to
/// `full_micros`. Returns when the round was acknowledged.
fn mi_round(
    runtime: &mut Runtime,
    conn: &mut Client,
    fleet: &mi::Fleet,
    since: Instant,
    tally: &mut Tally,
    keep_times: bool,
) -> Option<Instant> {
    let agent = runtime.mi.as_mut()?;
    if agent.stopped.is_some() {
        return None;
    }
    let bearer = agent
        .token
        .bearer(chrono::Utc::now().timestamp())
        .to_string();
    let node = &fleet.nodes[agent.node];
    let body = lock(node).delta_body(&fleet.layout);
    let sent = Instant::now();
    let result = post(conn, "/icp/deltaHeartbeat", &bearer, &body);
    let answered = Instant::now();
    tally.last = Some(answered);
    let answer = mi_answer(agent, result, tally)?;
    let us = answered
        .saturating_duration_since(since)
        .as_micros()
        .min(u128::from(u32::MAX)) as u32;
    tally.micros.push(us);
    if keep_times {
        tally.timed.push((since, us));
    }
    // MI reads fullHeartbeatRequired first (a null there is an error in
    // MI), then acknowledged.
    match answer.get("fullHeartbeatRequired") {
        Some(Value::Bool(true)) => {
            let (body, generation) = lock(node).full_body(&fleet.layout);
            let full_sent = Instant::now();
            let result = post(conn, "/icp/heartbeat", &bearer, &body);
            let done = Instant::now();
            tally.last = Some(done);
            let answer = mi_answer(agent, result, tally)?;
            if answer.get("acknowledged") != Some(&Value::Bool(true)) {
                tally.error("full heartbeat not acknowledged".into());
                return None;
            }
            let full_us = done.saturating_duration_since(full_sent).as_micros();
            tally
                .full_micros
                .push(full_us.min(u128::from(u32::MAX)) as u32);
            lock(node).reported(done, generation);
            runtime.last_ok = Some((sent, done));
            Some(done)
        }
        Some(Value::Bool(false)) | None => {
            if answer.get("acknowledged") != Some(&Value::Bool(true)) {
                tally.error("delta not acknowledged".into());
                return None;
            }
            runtime.last_ok = Some((sent, answered));
            Some(answered)
        }
        Some(_) => {
            tally.error("fullHeartbeatRequired not a boolean (an error in MI)".into());
            None
        }
    }
}

/// After `--mi-mgmt-probe` changed the first node: its next delta must have
/// been answered `fullHeartbeatRequired` and its full heartbeat must have
/// reported the change (`generation`).
fn probe_followed(fleet: &mi::Fleet, generation: u64) -> observe::Check {
    let reported = fleet.nodes.first().and_then(|n| {
        lock(n)
            .reports
            .iter()
            .find(|(_, g)| *g >= generation)
            .map(|(t, _)| *t)
    });
    observe::check(
        "mi mgmt probe: the changed runtime's next full heartbeat reported the change",
        generation > 0 && reported.is_some(),
        format!(
            "generation {generation} {}",
            if reported.is_some() {
                "reported after the server asked for a full heartbeat"
            } else {
                "never reported"
            }
        ),
    )
}

/// Open loop: every runtime's heartbeats are due on its own schedule;
/// latency counts from the due time.
/// A runtime marked `stops` sends nothing due from the planned stop on.
fn open_loop(
    runtimes: &mut [Runtime],
    conns: &mut [Client],
    how: How,
    fleet: Option<&mi::Fleet>,
    schedule: Schedule,
    mut rng: Jitter,
) -> Tally {
    let Schedule {
        start,
        duration,
        interval,
        jitter,
        plan,
        fleet_spread,
    } = schedule;
    let stop_at = plan.stop_after.map(|d| start + d);
    let restart_at = plan.restart_after.map(|d| start + d);
    let mut tally = Tally::default();
    let end = start + duration;
    // Spread the first heartbeats over one interval, as a fleet that
    // started at different times would be: each thread's runtimes over the
    // interval (so the threads send together, a burst of up to --threads
    // requests at a time); for MI, runtime g of the fleet (dealt
    // round-robin, g = i × threads + t) at g / fleet size, so the fleet's
    // heartbeats are evenly spaced, as MI nodes started at different times
    // send at a fixed rate.
    let n = runtimes.len();
    let phase = |i: usize| match fleet_spread {
        Some((t, threads, total)) => (i * threads + t) as f64 / total as f64,
        None => i as f64 / n as f64,
    };
    let mut due: BinaryHeap<Reverse<(Instant, usize)>> = (0..n)
        .map(|i| Reverse((start + interval.mul_f64(phase(i)), i)))
        .collect();
    let mut next_conn = 0;
    while let Some(Reverse((at, i))) = due.pop() {
        if at >= end {
            break;
        }
        if runtimes[i].stops && stop_at.is_some_and(|s| at >= s) {
            continue;
        }
        let now = Instant::now();
        if now < at {
            std::thread::sleep(at - now);
        } else if now > end + DRAIN_LIMIT {
            // Too far behind to finish: what is still due was never sent.
            tally.error("not sent (generator behind)".into());
            continue;
        }
        let conn = &mut conns[next_conn % conns.len()];
        next_conn += 1;
        let answered = send(&mut runtimes[i], conn, how, fleet, at, &mut tally);
        if let (Some(done), Some(r)) = (answered, restart_at) {
            if at >= r {
                tally.around_restart.push((at, done));
                runtimes[i].oks_after_restart.push(done);
            }
        }
        let offset = interval.as_nanos() as i128 + rng.next(jitter);
        due.push(Reverse((
            at + Duration::from_nanos(offset.max(0) as u64),
            i,
        )));
    }
    tally
}

/// Closed loop: as fast as responses come back; latency counts from the send.
fn closed_loop(
    runtimes: &mut [Runtime],
    conns: &mut [Client],
    how: How,
    fleet: Option<&mi::Fleet>,
    start: Instant,
    duration: Duration,
) -> Tally {
    let mut tally = Tally::default();
    let now = Instant::now();
    if now < start {
        std::thread::sleep(start - now);
    }
    let end = start + duration;
    let mut k = 0;
    while Instant::now() < end {
        let conn = &mut conns[k % conns.len()];
        let runtime = &mut runtimes[k % runtimes.len()];
        k += 1;
        send(runtime, conn, how, fleet, Instant::now(), &mut tally);
    }
    tally
}

/// A process's memory, threads, open descriptors and CPU time from `/proc/PID`.
#[derive(Clone, Copy)]
struct Usage {
    rss_kib: u64,
    threads: u64,
    fds: u64,
    cpu_s: f64,
    /// Bytes the process caused to be written to storage (`/proc/PID/io`).
    write_bytes: u64,
}

/// The highest sampled values.
#[derive(Clone, Copy, Default)]
struct Peak {
    rss_kib: u64,
    threads: u64,
    fds: u64,
}

impl Peak {
    fn add(&mut self, u: Usage) {
        self.rss_kib = self.rss_kib.max(u.rss_kib);
        self.threads = self.threads.max(u.threads);
        self.fds = self.fds.max(u.fds);
    }
}

fn proc_usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime is the
    // 14th field overall, the 12th after ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    let write_bytes = std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0);
    Some(Usage {
        rss_kib: field("VmRSS:")?,
        threads: field("Threads:")?,
        fds,
        cpu_s: ticks as f64 / hz,
        write_bytes,
    })
}

#[allow(clippy::too_many_arguments)]
fn summary(
    args: &Args,
    target: &Target,
    registration: Duration,
    start: Instant,
    mut tally: Tally,
    before: Option<Usage>,
    after: Option<Usage>,
    mut peak: Peak,
) -> Outcome {
    tally.micros.sort_unstable();
    let ok = tally.micros.len() as u64;
    let elapsed = tally
        .last
        .map(|l| l.saturating_duration_since(start))
        .unwrap_or_default()
        .max(Duration::from_secs(args.duration))
        .as_secs_f64();
    let rate = ok as f64 / elapsed;
    let pct = |p: f64| -> f64 {
        if tally.micros.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * (tally.micros.len() - 1) as f64).round() as usize;
        f64::from(tally.micros[i]) / 1000.0
    };
    let errors: u64 = tally.errors.values().sum();
    println!();
    println!(
        "== {} at {} ({})",
        target.label,
        target.url,
        if target.tls { "TLS" } else { "plain" }
    );
    match args.kind {
        Kind::Mi => println!(
            "registered    {} of {} runtimes in {:.1} s (MI: a delta answered fullHeartbeatRequired, then the full heartbeat; not measured)",
            tally.registered,
            args.runtimes,
            registration.as_secs_f64()
        ),
        _ => println!(
            "registered    {} runtimes in {:.1} s (full heartbeats, not measured)",
            args.runtimes,
            registration.as_secs_f64()
        ),
    }
    match args.rate > 0.0 {
        true => println!(
            "achieved      {rate:.0}/s of {:.0}/s offered ({ok} ok in {elapsed:.1} s)",
            args.rate
        ),
        false => println!("achieved      {rate:.0}/s closed loop ({ok} ok in {elapsed:.1} s)"),
    }
    println!(
        "latency ms    p50 {:.2}  p95 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  ({})",
        pct(50.0),
        pct(95.0),
        pct(99.0),
        pct(99.9),
        pct(100.0),
        if args.rate > 0.0 {
            "from the due time"
        } else {
            "from the send"
        }
    );
    if args.kind == Kind::Mi {
        tally.full_micros.sort_unstable();
        let full = &tally.full_micros;
        let at = |p: f64| {
            full.get(((p / 100.0) * full.len().saturating_sub(1) as f64).round() as usize)
                .map_or(0.0, |us| f64::from(*us) / 1000.0)
        };
        let stopped = tally
            .errors
            .iter()
            .filter(|(k, _)| k.contains("MI stops for good"))
            .map(|(_, n)| n)
            .sum::<u64>();
        let latency = match full.is_empty() {
            true => String::new(),
            false => format!(
                " (latency ms p50 {:.2}  p99 {:.2}  max {:.2})",
                at(50.0),
                at(99.0),
                at(100.0)
            ),
        };
        println!(
            "mi            {} full heartbeats asked for by the server after registration{latency}; {stopped} runtimes stopped for good (400/401/409)",
            full.len(),
        );
    }
    if errors == 0 {
        println!("errors        none");
    } else {
        let list: Vec<String> = tally
            .errors
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        println!("errors        {errors} ({})", list.join(", "));
    }
    if let Some(a) = after {
        peak.add(a);
    }
    match (before, after) {
        (Some(b), Some(a)) => println!(
            "server        pid {}: RSS {} MiB (peak sampled {} MiB), {} threads (peak {}), {} open descriptors (peak {}), CPU {:.1} s = {:.2} cores, disk writes {:.1} MiB/s",
            target.pid.unwrap_or(0),
            a.rss_kib / 1024,
            peak.rss_kib / 1024,
            a.threads,
            peak.threads,
            a.fds,
            peak.fds,
            a.cpu_s - b.cpu_s,
            (a.cpu_s - b.cpu_s) / elapsed,
            a.write_bytes.saturating_sub(b.write_bytes) as f64 / elapsed / (1024.0 * 1024.0)
        ),
        (None, Some(a)) => println!(
            "server        restarted: now RSS {} MiB, {} threads, {} open descriptors; peaks sampled over both processes {} MiB, {} threads, {} descriptors",
            a.rss_kib / 1024,
            a.threads,
            a.fds,
            peak.rss_kib / 1024,
            peak.threads,
            peak.fds
        ),
        _ if target.pid.is_some() => println!("server        /proc of pid {} not readable", target.pid.unwrap_or(0)),
        _ => println!("server        in this process (no separate RSS or threads)"),
    }
    if let Some(me) = proc_usage(std::process::id()) {
        println!(
            "this process  RSS {} MiB, {} threads, CPU {:.1} s since start",
            me.rss_kib / 1024,
            me.threads,
            me.cpu_s
        );
    }
    println!(
        "cores         {} (load generator on the same machine)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    Outcome {
        ok,
        rate,
        p99_ms: pct(99.0),
        failed: 0,
    }
}
