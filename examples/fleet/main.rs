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
//! time, so the server has artifact rows to write).
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
//!   the measurement, with their latency (target: p95 ≤ 20 ms).
//!
//! Statuses are watched through the management API (`GET /api/v1/runtimes
//! ?status=OFFLINE`, every 200 ms) as a user the fleet creates with the CLI.
//! Each check prints PASS or FAIL, and the exit status is 1 if any failed.
//! `--smoke` (CI on shared cores) prints the latency target without judging
//! it; the 1 s bound on waits after a restart stays judged, since a
//! connection dropped by a full listen queue is retried after exactly 1 s.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

mod observe;
// Shared with examples/crash.rs and examples/hostile.rs; each uses part of it.
mod sim;
#[allow(dead_code)]
mod spawned;

use sim::{create_secrets, timestamp};

use observe::Watch;
use serde_json::{json, Value};
use spawned::Spawned;

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
    /// The icpd binary used to create secrets.
    #[arg(long, default_value = "target/release/icpd")]
    icpd: PathBuf,
    /// The server's process id, to report its RSS, threads and CPU time.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Also measure the empty-handler ceiling with the same load, in this run.
    #[arg(long)]
    ceiling: bool,
    /// Plain HTTP for the ceiling when no --server is given, and for --spawn.
    #[arg(long)]
    plain: bool,
    /// Simulated runtimes.
    #[arg(long, default_value_t = 1000)]
    runtimes: usize,
    /// Secrets (one integration `fleet-N` each) the runtimes are spread over.
    #[arg(long, default_value_t = 10)]
    secrets: usize,
    /// Keep-alive connections shared by the runtimes.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Heartbeats per second offered by the whole fleet; 0 is closed loop
    /// (as fast as responses come back).
    #[arg(long, default_value_t = 5000.0)]
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
    match run(Args::parse()) {
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
        let secrets = create_secrets(&args.icpd, data_dir, "fleet", args.secrets)?;
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
        let secrets = create_secrets(&args.icpd, data_dir, "fleet", args.secrets)?;
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
    let runtimes: Vec<Runtime> = (0..args.runtimes)
        .map(|i| {
            let s = i % target.secrets.len();
            let token = icpd::protocol::token::issue(
                &target.secrets[s],
                &token_cfg,
                now_s,
                TOKEN_LIFETIME_S,
            );
            Runtime {
                id: format!("{tag:08x}-0000-4000-8000-{i:012}"),
                integration: format!("fleet-{s}"),
                bearer: format!("Bearer {token}"),
                listener_enabled: true,
                generation: 0,
                // Spread over the fleet: every (runtimes / stop)-th runtime.
                stops: args.stop > 0
                    && i % (args.runtimes / args.stop) == 0
                    && i / (args.runtimes / args.stop) < args.stop,
                last_ok: None,
                oks_after_restart: Vec::new(),
            }
        })
        .collect();

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
    let kind = args.kind;
    let plan = Plan {
        stop_after: (args.stop > 0).then(|| Duration::from_secs(args.stop_after)),
        restart_after: args.restart_after.map(Duration::from_secs),
    };
    let mut handles = Vec::new();
    for (t, (mut runtimes, mut conns)) in groups.into_iter().enumerate() {
        let (registered, go, start_at) = (registered.clone(), go.clone(), start_at.clone());
        handles.push(std::thread::spawn(
            move || -> Result<(Tally, Vec<Runtime>, u64), String> {
                let reg = register(&mut runtimes, &mut conns);
                registered.wait();
                go.wait();
                reg?;
                let start = start_at
                    .lock()
                    .map_err(|_| "poisoned")?
                    .ok_or("no start time")?;
                let seed = 0x9e37_79b9_7f4a_7c15u64 ^ ((t as u64 + 1) << 32);
                let opened_before: u64 = conns.iter().map(Client::connection_count).sum();
                let tally = match interval {
                    Some(iv) => open_loop(
                        &mut runtimes,
                        &mut conns,
                        kind,
                        Schedule {
                            start,
                            duration,
                            interval: iv,
                            jitter,
                            plan,
                        },
                        Jitter(seed),
                    ),
                    None => closed_loop(&mut runtimes, &mut conns, kind, start, duration),
                };
                let opened: u64 = conns.iter().map(Client::connection_count).sum();
                Ok((tally, runtimes, opened - opened_before))
            },
        ));
    }
    let started_registration = Instant::now();
    registered.wait();
    let registration = started_registration.elapsed();
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
        )?),
        None => None,
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
    let mut checks = Vec::new();
    if let Some(r) = &restart {
        checks.extend(observe::restart_checks(
            &mut tally, &runtimes, r, reconnects,
        ));
    }
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
    if let (Some(watch), Some((server, timeout))) = (watch, &spawned) {
        checks.extend(watch.finish(&runtimes, plan, *timeout, restart.as_ref(), &server.log)?);
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

/// Sends one heartbeat and records the outcome, with latency from `since`
/// (the due time, or the send in a closed loop). Returns the answer's time
/// when the heartbeat was acknowledged.
fn send(
    runtime: &mut Runtime,
    conn: &mut Client,
    kind: Kind,
    since: Instant,
    tally: &mut Tally,
) -> Option<Instant> {
    let path = match kind {
        Kind::Delta => "/icp/deltaHeartbeat",
        Kind::Full | Kind::FullChanged => "/icp/heartbeat",
    };
    let body = runtime.next_body(kind);
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

/// Open loop: every runtime's heartbeats are due on its own schedule;
/// latency counts from the due time.
/// A runtime marked `stops` sends nothing due from the planned stop on.
fn open_loop(
    runtimes: &mut [Runtime],
    conns: &mut [Client],
    kind: Kind,
    schedule: Schedule,
    mut rng: Jitter,
) -> Tally {
    let Schedule {
        start,
        duration,
        interval,
        jitter,
        plan,
    } = schedule;
    let stop_at = plan.stop_after.map(|d| start + d);
    let restart_at = plan.restart_after.map(|d| start + d);
    let mut tally = Tally::default();
    let end = start + duration;
    // Spread the first heartbeats over one interval, as a fleet that
    // started at different times would be.
    let n = runtimes.len();
    let mut due: BinaryHeap<Reverse<(Instant, usize)>> = (0..n)
        .map(|i| Reverse((start + interval.mul_f64(i as f64 / n as f64), i)))
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
        let answered = send(&mut runtimes[i], conn, kind, at, &mut tally);
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
    kind: Kind,
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
        send(runtime, conn, kind, Instant::now(), &mut tally);
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
    println!(
        "registered    {} runtimes in {:.1} s (full heartbeats, not measured)",
        args.runtimes,
        registration.as_secs_f64()
    );
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
