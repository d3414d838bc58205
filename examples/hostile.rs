//! A hostile network against a real icpd (issue 6, part 2).
//!
//! `cargo run --release --example hostile` builds nothing itself: it runs
//! the `icpd` binary next to it (`target/release/icpd`, so build with
//! `cargo build --release --bins --example hostile`), on a fresh data
//! directory, free loopback ports, TLS on, and the default limits except
//! one: everything here comes from 127.0.0.1, so the per-address cap
//! (`http.max_connections_per_ip`, default 4,096) is set to a value the
//! legitimate load plus the attacks can exceed (768 by default), and it
//! stays on. The per-runtime heartbeat rate limits keep their defaults.
//!
//! The run:
//!
//! 1. a legitimate fleet (300 runtimes: a full heartbeat each, then delta
//!    heartbeats open loop at 500/s in all over 8 kept-alive TLS
//!    connections; latency counts from the due time);
//! 2. 2 s of warm-up, then 10 s of that alone: the quiet baseline;
//! 3. 30 s more of the same load with every attack at once:
//!    - 500 idle TCP connections (connect, send nothing);
//!    - 200 stalled TLS handshakes (the first 50 bytes of a ClientHello);
//!    - a TLS client streaming an endless header line, 100 bytes every
//!      100 ms, never ending the head;
//!    - a TLS client sending a request body at 1 byte/s;
//!    - 20 connections sending a full ClientHello then a plaintext
//!      close_notify alert;
//!    - 10,000 connection attempts (connect, close at once) from 4 threads.
//!
//! Checks (PASS/FAIL, exit status 1 on any FAIL): heartbeat p99 under
//! attack at most twice the quiet p99; no heartbeat errors; server RSS
//! growth during the attack at most 64 MB (peak of `VmRSS`, sampled every
//! 100 ms); every bad connection closed by the server (a read returns 0 or
//! an error) within its deadline plus a margin (deadline scan 100 ms and
//! the 2 s linger after an error answer, so 3 s); the server's threads stay
//! at most 64; its open descriptors return to where they were before the
//! attack; and `/healthz` answers 200 afterwards.

#[path = "fleet/sim.rs"]
mod sim;
#[path = "fleet/spawned.rs"]
#[allow(dead_code)]
mod spawned;
use sim::{create_secrets, timestamp};

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use serde_json::Value;

use icpd::config::Config;
use icpd::http::client::{Client, ClientTls};
use spawned::Spawned;

const TOKEN_LIFETIME_S: i64 = 3600;
/// icpd's defaults (src/http/server.rs `Limits::default`).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Deadline scan (100 ms) + linger after an error answer (2 s) + slack.
const MARGIN: Duration = Duration::from_secs(3);
const RSS_GROWTH_LIMIT_KB: u64 = 64 * 1024;
const THREAD_LIMIT: u64 = 64;
/// A plaintext TLS alert record: warning, close_notify.
const CLOSE_NOTIFY: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x01, 0x00];

#[derive(Parser)]
#[command(about = "Attack a spawned icpd while a fleet heartbeats; check it holds")]
struct Args {
    /// The icpd binary (default: `icpd` next to this example's directory).
    #[arg(long)]
    icpd: Option<PathBuf>,
    /// Data directory (default: a fresh one under /tmp).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 300)]
    runtimes: usize,
    /// Delta heartbeats per second, the whole fleet.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    #[arg(long, default_value_t = 8)]
    connections: usize,
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Seconds of load before the baseline, not measured (warm-up).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Seconds of quiet baseline.
    #[arg(long, default_value_t = 10)]
    baseline: u64,
    /// Seconds of load under attack.
    #[arg(long, default_value_t = 30)]
    attack: u64,
    /// `http.max_connections_per_ip` of the server.
    #[arg(long, default_value_t = 768)]
    per_ip_cap: usize,
    #[arg(long, default_value_t = 500)]
    idle: usize,
    #[arg(long, default_value_t = 200)]
    stalled: usize,
    #[arg(long, default_value_t = 20)]
    hello_close: usize,
    #[arg(long, default_value_t = 10_000)]
    burst: usize,
    #[arg(long, default_value_t = 4)]
    burst_threads: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("hostile: {e}");
            ExitCode::from(2)
        }
    }
}

/// One line of the verdict.
struct Checks {
    all_pass: bool,
}

impl Checks {
    fn check(&mut self, pass: bool, what: &str) {
        println!("{} {what}", if pass { "PASS" } else { "FAIL" });
        self.all_pass &= pass;
    }
}

fn run(args: &Args) -> Result<bool, String> {
    let icpd = match &args.icpd {
        Some(p) => p.clone(),
        None => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            exe.parent()
                .and_then(Path::parent)
                .map(|d| d.join("icpd"))
                .ok_or("cannot locate icpd; pass --icpd")?
        }
    };
    let data_dir = args.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("icpd-hostile-{}", std::process::id()))
    });
    let config = format!(
        "# examples/hostile: defaults, except the per-address cap, lowered\n\
         # because every peer of this simulation is 127.0.0.1.\n\
         [http]\nmax_connections_per_ip = {}\n",
        args.per_ip_cap
    );
    let (server, ready) = Spawned::start_with_config(&icpd, &data_dir, true, 60, &config)?;
    let pid = server.pid();
    println!(
        "icpd pid {pid} ready in {:.2} s; runtime {} (TLS), data {}",
        ready.as_secs_f64(),
        server.runtime_url(),
        data_dir.display()
    );
    let standing = args.connections + args.idle + args.stalled + args.hello_close + 2;
    println!(
        "limits: defaults (handshake_timeout 10 s, idle_timeout 15 s, request_timeout 30 s, \
         max_head_bytes 16 KiB, max_connections 10,000), except max_connections_per_ip = {} \
         (default 4,096): all peers are 127.0.0.1, and the legit load plus the attacks \
         ({standing} standing connections, plus the burst of {} in flight) can exceed it",
        args.per_ip_cap, args.burst
    );
    let runtime_addr: SocketAddr = server
        .runtime_url()
        .trim_start_matches("https://")
        .parse()
        .map_err(|e| format!("runtime address: {e}"))?;

    // Legit fleet.
    let secrets = create_secrets(&icpd, &data_dir, "fleet", 4)?;
    let token_cfg = Config::defaults().token;
    let now_s = chrono::Utc::now().timestamp();
    let runtimes: Vec<Runtime> = (0..args.runtimes)
        .map(|i| {
            let s = i % secrets.len();
            let token =
                icpd::protocol::token::issue(&secrets[s], &token_cfg, now_s, TOKEN_LIFETIME_S);
            Runtime {
                id: format!("0badc0de-0000-4000-8000-{i:012}"),
                integration: format!("fleet-{s}"),
                bearer: format!("Bearer {token}"),
            }
        })
        .collect();
    let a_bearer = runtimes[0].bearer.clone();

    let sampler = Sampler::start(pid);
    let baseline = Duration::from_secs(args.baseline);
    let attack = Duration::from_secs(args.attack);
    let load = start_load(args, &server.runtime_url(), runtimes)?;
    let t0 = load.start;
    println!(
        "fleet: {} runtimes registered, {} delta heartbeats/s over {} keep-alive TLS connections",
        args.runtimes, args.rate, args.connections
    );
    let warmup = Duration::from_secs(args.warmup);
    let probe = Probe::start(server.runtime_url());
    sleep_until(t0 + warmup + baseline);

    // Every attack at once.
    let attack_start = Instant::now();
    let fds_before = sampler.last().map_or(0, |s| s.fds);
    let rss_before = sampler.last().map_or(0, |s| s.rss_kb);
    println!(
        "attacks start at t = {:.1} s",
        (attack_start - t0).as_secs_f64()
    );
    let overflows_before = listen_overflows();
    let hello = client_hello()?;
    let mut attacks = Vec::new();
    {
        let n = args.idle;
        attacks.push(std::thread::spawn(move || {
            watch_class(
                "idle TCP (nothing sent)",
                HANDSHAKE_TIMEOUT,
                runtime_addr,
                n,
                |_| Ok(()),
            )
        }));
    }
    {
        let (n, partial) = (args.stalled, hello[..50].to_vec());
        attacks.push(std::thread::spawn(move || {
            watch_class(
                "stalled TLS handshake",
                HANDSHAKE_TIMEOUT,
                runtime_addr,
                n,
                |s| s.write_all(&partial),
            )
        }));
    }
    {
        let (n, mut bytes) = (args.hello_close, hello.clone());
        bytes.extend_from_slice(&CLOSE_NOTIFY);
        attacks.push(std::thread::spawn(move || {
            watch_class(
                "ClientHello + close_notify",
                HANDSHAKE_TIMEOUT,
                runtime_addr,
                n,
                |s| s.write_all(&bytes),
            )
        }));
    }
    attacks.push(std::thread::spawn(move || slow_header(runtime_addr)));
    attacks.push(std::thread::spawn(move || {
        slow_body(runtime_addr, a_bearer)
    }));
    let burst = {
        let (n, threads) = (args.burst, args.burst_threads);
        std::thread::spawn(move || burst_connect(runtime_addr, n, threads))
    };

    let burst = burst.join().map_err(|_| "burst thread panicked")?;
    let overflows = listen_overflows().zip(overflows_before).map(|(a, b)| a - b);
    let classes: Vec<Class> = attacks
        .into_iter()
        .map(|h| h.join().map_err(|_| "attack thread panicked".to_string()))
        .collect::<Result<_, _>>()?;
    let load = load.finish()?;
    let probes = probe.stop();
    let attacks_done = Instant::now();
    // Let the server drop what the burst left behind, then sample once more.
    std::thread::sleep(Duration::from_secs(2));
    let fds_after = read_proc(pid).map_or(0, |s| s.fds);
    let samples = sampler.stop();

    // Figures.
    let mut c = Checks { all_pass: true };
    let window = |from: Duration, to: Duration| -> Vec<u32> {
        let mut v: Vec<u32> = load
            .samples
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
            .map(|&(_, us)| us)
            .collect();
        v.sort_unstable();
        v
    };
    let quiet = window(warmup, warmup + baseline);
    let attack_offset = attack_start - t0;
    let under = window(attack_offset, attack_offset + attack);
    println!();
    println!("heartbeat latency (from the due time), quiet vs under attack:");
    println!("  quiet:  {}", describe(&quiet));
    println!("  attack: {}", describe(&under));
    let per_second: Vec<String> = (0..args.attack)
        .map(|s| {
            let w = window(
                attack_offset + Duration::from_secs(s),
                attack_offset + Duration::from_secs(s + 1),
            );
            format!("{:.1}", pct(&w, 0.99) as f64 / 1000.0)
        })
        .collect();
    println!(
        "  p99 per second of the attack (ms): {}",
        per_second.join(" ")
    );
    let (q99, a99) = (pct(&quiet, 0.99), pct(&under, 0.99));
    c.check(
        !quiet.is_empty() && !under.is_empty() && a99 <= 2 * q99,
        &format!(
            "heartbeat p99 under attack {:.2} ms <= 2 x quiet p99 {:.2} ms",
            a99 as f64 / 1000.0,
            q99 as f64 / 1000.0
        ),
    );
    let probe_window = |from: Instant, to: Instant| -> (Vec<u32>, usize) {
        let mut v: Vec<u32> = Vec::new();
        let mut failed = 0;
        for (at, r) in &probes {
            if *at >= from && *at < to {
                match r {
                    Some(us) => v.push(*us),
                    None => failed += 1,
                }
            }
        }
        v.sort_unstable();
        (v, failed)
    };
    let (pq, pq_failed) = probe_window(t0 + warmup, attack_start);
    let (pa, pa_failed) = probe_window(attack_start, attack_start + attack);
    println!("a new TLS connection + GET every 250 ms (connect, handshake, answer):");
    println!("  quiet:  {}, {pq_failed} failed", describe(&pq));
    println!("  attack: {}, {pa_failed} failed", describe(&pa));
    let slow_probes = pa.iter().filter(|&&us| us >= 1_000_000).count();
    println!(
        "  {slow_probes} of the attack's new connections took 1 s or more (a SYN retransmission: the listen queue overflowed)"
    );
    for (what, n) in &load.errors {
        println!("  heartbeat error: {n} x {what}");
    }
    let errors: usize = load.errors.iter().map(|(_, n)| n).sum();
    c.check(
        errors == 0,
        &format!("no heartbeat errors ({errors} of {} sent)", load.sent),
    );

    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= attack_start && s.at <= attacks_done)
        .collect();
    let rss_peak = during.iter().map(|s| s.rss_kb).max().unwrap_or(0);
    let growth = rss_peak.saturating_sub(rss_before);
    c.check(
        growth <= RSS_GROWTH_LIMIT_KB,
        &format!(
            "server RSS growth during the attack {:.1} MB <= 64 MB (before {:.1} MB, peak {:.1} MB, {} samples)",
            growth as f64 / 1024.0,
            rss_before as f64 / 1024.0,
            rss_peak as f64 / 1024.0,
            during.len()
        ),
    );
    let threads_max = samples.iter().map(|s| s.threads).max().unwrap_or(0);
    c.check(
        threads_max > 0 && threads_max <= THREAD_LIMIT,
        &format!("server threads at most {threads_max} <= {THREAD_LIMIT}"),
    );
    let fds_peak = during.iter().map(|s| s.fds).max().unwrap_or(0);
    c.check(
        fds_after <= fds_before + 5,
        &format!(
            "server descriptors back after the attack: {fds_after} (before {fds_before}, peak {fds_peak})"
        ),
    );

    println!();
    println!(
        "burst: {} attempts in {:.2} s from {} threads: {} connected, {} failed to connect{}",
        args.burst,
        burst.took.as_secs_f64(),
        args.burst_threads,
        burst.connected,
        burst.failed,
        burst
            .first_error
            .as_ref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    println!(
        "  listen queue overflows during the burst (TcpExt ListenOverflows, whole machine): {}",
        overflows.map_or("unknown".to_string(), |n| n.to_string())
    );
    c.check(
        burst.connected + burst.failed == args.burst,
        "burst: every attempt finished",
    );
    println!("bad connections, time from start to the server closing it:");
    for class in &classes {
        let closed: Vec<Duration> = class.closed.iter().flatten().copied().collect();
        let open = class.closed.iter().filter(|c| c.is_none()).count();
        let early = closed
            .iter()
            .filter(|d| **d < Duration::from_secs(1))
            .count();
        let mut sorted = closed.clone();
        sorted.sort();
        let q = |p: f64| -> f64 {
            if sorted.is_empty() {
                return f64::NAN;
            }
            sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64()
        };
        println!(
            "  {}: {} made ({} failed to connect), closed min {:.2} s / median {:.2} s / max {:.2} s, {} within 1 s (refused at the per-address cap, or answered at once), {} never closed{}",
            class.name,
            class.closed.len(),
            class.connect_failed,
            q(0.0),
            q(0.5),
            q(1.0),
            early,
            open,
            if class.note.is_empty() { String::new() } else { format!("; {}", class.note) }
        );
        let max = sorted.last().copied().unwrap_or_default();
        c.check(
            open == 0 && !class.closed.is_empty() && max <= class.deadline + MARGIN,
            &format!(
                "{}: every one closed within {} s + {} s (max {:.2} s)",
                class.name,
                class.deadline.as_secs(),
                MARGIN.as_secs(),
                max.as_secs_f64()
            ),
        );
    }

    println!();
    let mut m =
        Client::new(&server.management_url(), ClientTls::Insecure).map_err(|e| e.to_string())?;
    m.set_timeout(Duration::from_secs(5));
    let health = m.request("GET", "/healthz", &[], b"").map(|r| r.status);
    c.check(
        matches!(health, Ok(200)),
        &format!("/healthz afterwards: {health:?}"),
    );
    println!(
        "{}",
        if c.all_pass {
            "hostile: all checks passed"
        } else {
            "hostile: some checks FAILED"
        }
    );
    drop(server);
    if args.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    Ok(c.all_pass)
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

fn pct(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn describe(sorted: &[u32]) -> String {
    format!(
        "{} ok, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        sorted.len(),
        pct(sorted, 0.5) as f64 / 1000.0,
        pct(sorted, 0.99) as f64 / 1000.0,
        pct(sorted, 0.999) as f64 / 1000.0,
        sorted.last().copied().unwrap_or(0) as f64 / 1000.0
    )
}

// ---------------------------------------------------------------- the fleet

struct Runtime {
    id: String,
    integration: String,
    bearer: String,
}

impl Runtime {
    fn full_heartbeat(&self) -> Value {
        sim::full_heartbeat(&sim::FullBody {
            runtime_id: &self.id,
            project: "fleet",
            integration: &self.integration,
            hash: "hostile-0",
            listener_state: "enabled",
            extended: false,
        })
    }

    fn delta(&self) -> Vec<u8> {
        format!(
            r#"{{"runtimeId":"{}","heartbeatVersion":"v1.0","runtimeHash":"hostile-0","timestamp":{}}}"#,
            self.id,
            timestamp()
        )
        .into_bytes()
    }
}

fn post(c: &mut Client, path: &str, bearer: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    match c.request(
        "POST",
        path,
        &[
            ("Content-Type", "application/json"),
            ("Authorization", bearer),
        ],
        body,
    ) {
        Ok(r) if r.status == 200 => Ok(r.body),
        Ok(r) => Err(format!("HTTP {}", r.status)),
        Err(e) => Err(format!("io {:?}", e.kind())),
    }
}

struct Load {
    start: Instant,
    stop: Arc<AtomicBool>,
    handles: Vec<std::thread::JoinHandle<Tally>>,
}

#[derive(Default)]
struct Tally {
    /// (due time from the start, latency in µs) of acknowledged heartbeats.
    samples: Vec<(Duration, u32)>,
    errors: Vec<(String, usize)>,
    sent: usize,
}

impl Tally {
    fn error(&mut self, what: String) {
        match self.errors.iter_mut().find(|(w, _)| *w == what) {
            Some((_, n)) => *n += 1,
            None => self.errors.push((what, 1)),
        }
    }
}

/// Registers every runtime (full heartbeat), then runs the open loop in
/// `threads` threads until `finish`.
fn start_load(args: &Args, url: &str, runtimes: Vec<Runtime>) -> Result<Load, String> {
    let threads = args.threads.max(1);
    let mut groups: Vec<(Vec<Runtime>, Vec<Client>)> =
        (0..threads).map(|_| (Vec::new(), Vec::new())).collect();
    for (i, r) in runtimes.into_iter().enumerate() {
        groups[i % threads].0.push(r);
    }
    for c in 0..args.connections.max(threads) {
        let mut client = Client::new(url, ClientTls::Insecure).map_err(|e| e.to_string())?;
        client.set_timeout(Duration::from_secs(10));
        groups[c % threads].1.push(client);
    }
    let interval = Duration::from_secs_f64(args.runtimes as f64 / args.rate);
    let ready = Arc::new(Barrier::new(threads + 1));
    let start_at = Arc::new(Mutex::new(None::<Instant>));
    let registration = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for (runtimes, mut conns) in groups {
        let (ready, start_at, registration, stop) = (
            ready.clone(),
            start_at.clone(),
            registration.clone(),
            stop.clone(),
        );
        handles.push(std::thread::spawn(move || {
            for (i, r) in runtimes.iter().enumerate() {
                let k = i % conns.len();
                let c = &mut conns[k];
                if let Err(e) = post(
                    c,
                    "/icp/heartbeat",
                    &r.bearer,
                    r.full_heartbeat().to_string().as_bytes(),
                ) {
                    registration
                        .lock()
                        .unwrap()
                        .push(format!("registering {}: {e}", r.id));
                }
            }
            ready.wait();
            ready.wait();
            let start = start_at.lock().unwrap().expect("start time");
            let mut tally = Tally::default();
            let n = runtimes.len();
            let mut due: BinaryHeap<Reverse<(Instant, usize)>> = (0..n)
                .map(|i| Reverse((start + interval.mul_f64(i as f64 / n as f64), i)))
                .collect();
            let mut next_conn = 0;
            while let Some(Reverse((at, i))) = due.pop() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                sleep_until(at);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let k = next_conn % conns.len();
                let c = &mut conns[k];
                next_conn += 1;
                tally.sent += 1;
                match post(
                    c,
                    "/icp/deltaHeartbeat",
                    &runtimes[i].bearer,
                    &runtimes[i].delta(),
                ) {
                    Ok(body)
                        if contains(&body, b"\"acknowledged\":true")
                            && !contains(&body, b"\"fullHeartbeatRequired\":true") =>
                    {
                        let us = at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                        tally.samples.push((at - start, us));
                    }
                    Ok(body) => tally.error(format!(
                        "200 but {}",
                        String::from_utf8_lossy(&body[..body.len().min(80)])
                    )),
                    Err(e) => tally.error(e),
                }
                due.push(Reverse((at + interval, i)));
            }
            tally
        }));
    }
    ready.wait();
    let errors = registration.lock().unwrap().clone();
    if let Some(e) = errors.first() {
        stop.store(true, Ordering::Relaxed);
        *start_at.lock().unwrap() = Some(Instant::now());
        ready.wait();
        return Err(format!("{} registrations failed; first: {e}", errors.len()));
    }
    let start = Instant::now();
    *start_at.lock().unwrap() = Some(start);
    ready.wait();
    Ok(Load {
        start,
        stop,
        handles,
    })
}

impl Load {
    /// Waits for the end of the planned run (the caller sleeps first), stops
    /// the load and merges the threads' tallies.
    fn finish(self) -> Result<Tally, String> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Tally::default();
        for h in self.handles {
            let t = h.join().map_err(|_| "load thread panicked")?;
            all.samples.extend(t.samples);
            all.sent += t.sent;
            for (w, n) in t.errors {
                for _ in 0..n {
                    all.error(w.clone());
                }
            }
        }
        Ok(all)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The kernel's count of SYNs dropped because a listen queue was full
/// (all sockets of the machine).
fn listen_overflows() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let i = names
        .split_whitespace()
        .position(|n| n == "ListenOverflows")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

// ---------------------------------------------------------------- probing

/// A newcomer: every 250 ms, a new TLS connection and one request on the
/// runtime listener (a 404 is an answer); how long until the answer.
/// When each probe started, and its latency in µs if it was answered.
type Probes = Vec<(Instant, Option<u32>)>;

struct Probe {
    results: Arc<Mutex<Probes>>,
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

impl Probe {
    fn start(url: String) -> Probe {
        let results = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, st) = (results.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            let mut next = Instant::now();
            while !st.load(Ordering::Relaxed) {
                sleep_until(next);
                next += Duration::from_millis(250);
                let at = Instant::now();
                let answered = Client::new(&url, ClientTls::Insecure)
                    .ok()
                    .and_then(|mut c| {
                        c.set_timeout(Duration::from_secs(10));
                        c.request("GET", "/", &[], b"").ok()
                    });
                let us =
                    answered.map(|_| at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                r.lock().unwrap().push((at, us));
            }
        });
        Probe {
            results,
            stop,
            handle,
        }
    }

    fn stop(self) -> Probes {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
        std::mem::take(&mut *self.results.lock().unwrap())
    }
}

// ---------------------------------------------------------------- sampling

#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    rss_kb: u64,
    threads: u64,
    fds: u64,
}

fn read_proc(pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample {
        at: Instant::now(),
        rss_kb: field("VmRSS:")?,
        threads: field("Threads:")?,
        fds,
    })
}

struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (samples.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                if let Some(sample) = read_proc(pid) {
                    s.lock().unwrap().push(sample);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Sampler {
            samples,
            stop,
            handle,
        }
    }

    fn last(&self) -> Option<Sample> {
        self.samples.lock().unwrap().last().copied()
    }

    fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

// ---------------------------------------------------------------- attacks

/// One class of bad connections and when the server closed each.
struct Class {
    name: &'static str,
    deadline: Duration,
    /// Per connection made: time from its start to the server closing it.
    closed: Vec<Option<Duration>>,
    connect_failed: usize,
    note: String,
}

/// Opens `n` connections, does `first` on each, then waits (poll) until
/// the server closes every one or `deadline` + 10 s pass.
fn watch_class(
    name: &'static str,
    deadline: Duration,
    addr: SocketAddr,
    n: usize,
    first: impl Fn(&mut TcpStream) -> std::io::Result<()>,
) -> Class {
    let mut conns: Vec<(TcpStream, Instant)> = Vec::with_capacity(n);
    let mut connect_failed = 0;
    for _ in 0..n {
        let started = Instant::now();
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(mut s) => {
                // A refused connection may already be closed: a failed write
                // is still a connection the server closed; watch it anyway.
                let _ = first(&mut s);
                conns.push((s, started));
            }
            Err(_) => connect_failed += 1,
        }
    }
    let give_up = Instant::now() + deadline + Duration::from_secs(10);
    let mut closed: Vec<Option<Duration>> = vec![None; conns.len()];
    let mut received = 0usize;
    for (s, _) in &conns {
        let _ = s.set_nonblocking(true);
    }
    let mut buf = [0u8; 4096];
    while Instant::now() < give_up {
        let open: Vec<usize> = (0..conns.len()).filter(|&i| closed[i].is_none()).collect();
        if open.is_empty() {
            break;
        }
        let mut fds: Vec<libc::pollfd> = open
            .iter()
            .map(|&i| libc::pollfd {
                fd: conns[i].0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: fds is a valid array of pollfd for the duration of the call.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
        if r <= 0 {
            continue;
        }
        let now = Instant::now();
        for (k, &i) in open.iter().enumerate() {
            if fds[k].revents == 0 {
                continue;
            }
            loop {
                match conns[i].0.read(&mut buf) {
                    Ok(0) => {
                        closed[i] = Some(now - conns[i].1);
                        break;
                    }
                    Ok(m) => received += m,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        closed[i] = Some(now - conns[i].1);
                        break;
                    }
                }
            }
        }
    }
    Class {
        name,
        deadline,
        closed,
        connect_failed,
        note: format!("{received} bytes received from the server"),
    }
}

/// A ClientHello as rustls would send it (captured from an in-memory session).
fn client_hello() -> Result<Vec<u8>, String> {
    let config = tls_config();
    let mut conn = ClientConnection::new(config, ServerName::try_from("localhost").unwrap())
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).map_err(|e| e.to_string())?;
    }
    if out.len() < 60 || out[0] != 0x16 {
        return Err(format!(
            "unexpected ClientHello capture ({} bytes)",
            out.len()
        ));
    }
    Ok(out)
}

fn tls_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    Arc::new(config)
}

/// The attacker does not care who the server is.
#[derive(Debug)]
struct AnyCert;

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

type Tls = rustls::StreamOwned<ClientConnection, TcpStream>;

/// A TLS session to the runtime listener, handshake done.
fn tls_connect(addr: SocketAddr) -> std::io::Result<Tls> {
    let sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    let conn = ClientConnection::new(tls_config(), ServerName::try_from("localhost").unwrap())
        .map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Sends `head` then `chunk` every `every` until the server closes the
/// connection (or `deadline` + 10 s); returns when it closed, and the first
/// line of any answer.
fn trickle(
    addr: SocketAddr,
    head: &[u8],
    chunk: &[u8],
    every: Duration,
    deadline: Duration,
) -> (Option<Duration>, String, usize) {
    let started = Instant::now();
    let mut tls = match tls_connect(addr) {
        Ok(t) => t,
        Err(e) => {
            return (
                Some(started.elapsed()),
                format!("TLS connect failed: {e}"),
                0,
            )
        }
    };
    let _ = tls.sock.set_read_timeout(Some(every));
    let give_up = started + deadline + Duration::from_secs(10);
    let mut answer = Vec::new();
    let mut sent = 0;
    let mut buf = [0u8; 4096];
    if tls.write_all(head).and_then(|()| tls.flush()).is_err() {
        return (
            Some(started.elapsed()),
            "write of the head failed".into(),
            0,
        );
    }
    sent += head.len();
    while Instant::now() < give_up {
        // Waits up to `every` for the server to answer or close.
        match tls.read(&mut buf) {
            Ok(0) => return (Some(started.elapsed()), first_line(&answer), sent),
            Ok(m) => answer.extend_from_slice(&buf[..m]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                let mut line = first_line(&answer);
                if line.is_empty() {
                    line = format!("read error {:?}", e.kind());
                }
                return (Some(started.elapsed()), line, sent);
            }
        }
        if answer.is_empty() {
            if tls.write_all(chunk).and_then(|()| tls.flush()).is_err() {
                // The next read tells whether it was closed.
                continue;
            }
            sent += chunk.len();
        }
    }
    (None, first_line(&answer), sent)
}

fn first_line(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    s.lines().next().unwrap_or("").to_string()
}

fn slow_header(addr: SocketAddr) -> Class {
    // 100 bytes every 100 ms: the head limit (16 KiB) comes before the
    // request timeout (30 s); the deadline is whichever is first.
    let every = Duration::from_millis(100);
    let to_limit = every * (MAX_HEAD_BYTES / 100 + 1) as u32;
    let deadline = to_limit.min(REQUEST_TIMEOUT);
    let (closed, answer, sent) = trickle(
        addr,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Endless: ",
        &[b'a'; 100],
        every,
        deadline,
    );
    Class {
        name: "endless header line (100 B / 100 ms, TLS)",
        deadline,
        closed: vec![closed],
        connect_failed: 0,
        note: format!("answer {answer:?} after {sent} bytes sent"),
    }
}

fn slow_body(addr: SocketAddr, bearer: String) -> Class {
    let head = format!(
        "POST /icp/deltaHeartbeat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Authorization: {bearer}\r\nContent-Length: 1000\r\n\r\n"
    );
    let (closed, answer, sent) = trickle(
        addr,
        head.as_bytes(),
        b" ",
        Duration::from_secs(1),
        REQUEST_TIMEOUT,
    );
    Class {
        name: "body at 1 byte/s (TLS)",
        deadline: REQUEST_TIMEOUT,
        closed: vec![closed],
        connect_failed: 0,
        note: format!("answer {answer:?} after {sent} bytes sent"),
    }
}

struct Burst {
    connected: usize,
    failed: usize,
    first_error: Option<String>,
    took: Duration,
}

fn burst_connect(addr: SocketAddr, n: usize, threads: usize) -> Burst {
    let started = Instant::now();
    let threads = threads.max(1);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let count = n / threads + usize::from(t < n % threads);
            std::thread::spawn(move || {
                let (mut ok, mut failed, mut first) = (0, 0, None);
                for _ in 0..count {
                    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                        Ok(s) => {
                            ok += 1;
                            drop(s);
                        }
                        Err(e) => {
                            failed += 1;
                            first.get_or_insert_with(|| e.to_string());
                        }
                    }
                }
                (ok, failed, first)
            })
        })
        .collect();
    let mut b = Burst {
        connected: 0,
        failed: 0,
        first_error: None,
        took: Duration::ZERO,
    };
    for h in handles {
        if let Ok((ok, failed, first)) = h.join() {
            b.connected += ok;
            b.failed += failed;
            if b.first_error.is_none() {
                b.first_error = first;
            }
        }
    }
    b.took = started.elapsed();
    b
}
