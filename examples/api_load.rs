//! Management API latency under heartbeat load.
//!
//! Starts icpd in-process on loopback ports (TLS on, a temporary data
//! directory), registers `--runtimes` runtimes, then for `--duration`
//! seconds sends delta heartbeats open-loop at `--rate` per second over
//! keep-alive TLS connections while a management client lists runtimes and
//! projects and reads runtime details at `--api-rate` requests per second.
//! It prints the achieved heartbeat rate, heartbeat and API latency
//! percentiles, and errors. The load generator shares the machine's cores
//! with the server: the figures include that contention.
//!
//! ```text
//! cargo run --release --example api_load -- --runtimes 200 --rate 2000 --duration 30
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use icpd::config::Config;
use icpd::http::client::{Client, ClientTls};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// Simulated runtimes (each keeps one TLS connection).
    #[arg(long, default_value_t = 200)]
    runtimes: usize,
    /// Delta heartbeats per second, in total.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Management API requests per second.
    #[arg(long, default_value_t = 20.0)]
    api_rate: f64,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Threads sending heartbeats.
    #[arg(long, default_value_t = 4)]
    threads: usize,
}

/// Latencies in microseconds, and errors by status.
#[derive(Default)]
struct Stats {
    micros: Vec<u64>,
    errors: std::collections::BTreeMap<String, u64>,
}

impl Stats {
    fn report(&mut self, what: &str, seconds: f64) {
        self.micros.sort_unstable();
        let n = self.micros.len();
        let pct = |p: f64| -> f64 {
            if n == 0 {
                return 0.0;
            }
            self.micros[((p / 100.0) * (n - 1) as f64).round() as usize] as f64 / 1000.0
        };
        println!(
            "{what:<12} {n:>7} ok ({:>8.1}/s)  p50 {:>6.2} ms  p95 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  errors {:?}",
            n as f64 / seconds,
            pct(50.0),
            pct(95.0),
            pct(99.0),
            pct(100.0),
            self.errors
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("icpd-api-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = Config::defaults();
    cfg.data_dir = dir.clone();
    cfg.runtime_listen = "127.0.0.1:0".into();
    cfg.management_listen = "127.0.0.1:0".into();
    cfg.http.max_connections = Some(20_000);
    let daemon = icpd::daemon::Daemon::start(&cfg)?;
    let runtime_url = format!("https://{}", daemon.runtime_addr());
    let management_url = format!("https://{}", daemon.management_addr());

    // Setup through the library, as the CLI would do on the same data directory.
    let store = icpd::store::Store::open(&cfg.db_path())?;
    let key = icpd::master_key::MasterKey::load(&dir, false)?;
    let now = icpd::time::now_millis();
    icpd::auth::create_user(
        &store,
        "bench",
        "bench-password-1",
        Some("Super Admin"),
        false,
        now,
    )?;
    let mut secrets = Vec::new();
    for i in 0..10 {
        let req = icpd::secrets::NewSecret {
            environment: "dev".into(),
            binding: Some(("bench".into(), format!("integration-{i}"))),
            ..Default::default()
        };
        secrets.push(icpd::secrets::create(&store, &key, &req, now)?.secret);
    }
    let token_cfg = cfg.token.clone();
    let now_s = now / 1000;

    // Register every runtime with a full heartbeat.
    let mut runtimes = Vec::new();
    for i in 0..args.runtimes {
        let secret = &secrets[i % secrets.len()];
        let id = format!("00000000-0000-4000-8000-{i:012}");
        let token = icpd::protocol::token::issue(secret, &token_cfg, now_s, 3600);
        let mut client = Client::new(&runtime_url, ClientTls::Insecure)?;
        let full = json!({
            "runtimeId": id, "runtime": format!("node-{i}"), "runtimeType": "BI", "heartbeatVersion": "v1.0",
            "environment": "dev", "project": "bench", "component": format!("integration-{}", i % secrets.len()),
            "artifacts": {"listeners": [{"name": "listener_1", "port": 9090, "state": "enabled"}],
                          "services": [{"name": "svc", "basePath": "/", "listeners": [{"name": "listener_1"}],
                                        "resources": [{"methods": ["GET"], "url": "/"}]}]},
            "logLevels": {"acme/app": "INFO"}, "runtimeHash": "h1"
        });
        let r = client.post_json("/icp/heartbeat", Some(&token), &full)?;
        if r.status != 200 {
            return Err(format!("full heartbeat refused: {} {}", r.status, r.json()).into());
        }
        runtimes.push((
            client,
            token,
            json!({"runtimeId": id, "heartbeatVersion": "v1.0", "runtimeHash": "h1"}),
        ));
    }
    println!(
        "icpd in-process: {} runtimes registered; {} cores; load generator on the same cores",
        args.runtimes,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    let stop = Arc::new(AtomicBool::new(false));
    let heartbeats = Arc::new(Mutex::new(Stats::default()));
    let per_thread = args.rate / args.threads as f64;
    let mut groups: Vec<Vec<_>> = (0..args.threads).map(|_| Vec::new()).collect();
    for (i, r) in runtimes.into_iter().enumerate() {
        groups[i % args.threads].push(r);
    }
    let started = Instant::now();
    let mut handles = Vec::new();
    for mut group in groups {
        let (stop, heartbeats) = (stop.clone(), heartbeats.clone());
        handles.push(std::thread::spawn(move || {
            let mut local = Stats::default();
            let interval = Duration::from_secs_f64(1.0 / per_thread);
            let mut next = Instant::now();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                // Open loop: requests are due on a fixed schedule whatever the latency.
                let now = Instant::now();
                if now < next {
                    std::thread::sleep(next - now);
                }
                next += interval;
                let n = group.len();
                let (client, token, body) = &mut group[i % n];
                i += 1;
                let t = Instant::now();
                match client.post_json("/icp/deltaHeartbeat", Some(token), body) {
                    Ok(r) if r.status == 200 => local.micros.push(t.elapsed().as_micros() as u64),
                    Ok(r) => *local.errors.entry(r.status.to_string()).or_default() += 1,
                    Err(e) => *local.errors.entry(e.kind().to_string()).or_default() += 1,
                }
            }
            let mut all = heartbeats.lock().unwrap();
            all.micros.extend(local.micros);
            for (k, v) in local.errors {
                *all.errors.entry(k).or_default() += v;
            }
        }));
    }

    let mut api = Client::new(&management_url, ClientTls::Insecure)?;
    let login = api.post_json(
        "/api/v1/auth/login",
        None,
        &json!({"username": "bench", "password": "bench-password-1"}),
    )?;
    let bearer = format!(
        "Bearer {}",
        login.json()["token"].as_str().ok_or("login failed")?
    );
    let mut api_stats = Stats::default();
    let api_interval = Duration::from_secs_f64(1.0 / args.api_rate);
    let paths = [
        "/api/v1/runtimes?limit=100",
        "/api/v1/projects",
        "/api/v1/runtimes/00000000-0000-4000-8000-000000000007",
        "/api/v1/environments",
    ];
    let mut next = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(args.duration) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
        }
        next += api_interval;
        let path = paths[i % paths.len()];
        i += 1;
        let t = Instant::now();
        match api.request("GET", path, &[("Authorization", &bearer)], b"") {
            Ok(r) if r.status == 200 => api_stats.micros.push(t.elapsed().as_micros() as u64),
            Ok(r) => {
                *api_stats
                    .errors
                    .entry(format!("{} {path}", r.status))
                    .or_default() += 1
            }
            Err(e) => *api_stats.errors.entry(e.kind().to_string()).or_default() += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let seconds = started.elapsed().as_secs_f64();
    heartbeats.lock().unwrap().report("heartbeats", seconds);
    api_stats.report("management", seconds);
    daemon.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
