//! `icpd serve`: binds both listeners, opens (or creates) the data
//! directory, starts serving, the liveness loop and the telemetry
//! retention loop, and shuts everything down in order on SIGTERM/SIGINT.
//!
//! Both ports are bound before anything is written: a port in use leaves
//! a new data directory uncreated (and an existing one untouched).
//!
//! Shutdown order: stop accepting, let in-flight requests finish (up to
//! 5 s), stop the liveness and retention loops, flush what liveness
//! queued, exit.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cluster::{self, Cluster};
use crate::config::{Config, DEFAULT_MAX_CONNECTIONS};
use crate::error::{Error, Result};
use crate::events::Events;
use crate::http::{self, Limits, Server};
use crate::liveness::Liveness;
use crate::master_key::MasterKey;
use crate::metrics;
use crate::protocol::Protocol;
use crate::store::Store;
use crate::time::now_millis;

/// How long shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Liveness loop period: sweeps and flushes happen on these ticks.
const TICK: Duration = Duration::from_millis(250);
/// Last-seen times reach SQLite at least this often.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// The sweeper runs at least this often.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// The file in the data directory that a running `icpd serve` (and an
/// `icpd restore` in progress) holds an exclusive `flock` on, and which
/// names the holder's pid. The lock goes with the process: a server that
/// crashes releases it, so a stale file never blocks anything. The file
/// itself stays (removing it would race with the next taker).
pub const LOCK_FILE: &str = "icpd.lock";

/// The file admin commands hold a shared `flock` on while they use the
/// database, and `icpd restore` an exclusive one while it swaps it, so
/// that neither writes into a database the other is setting aside. A
/// server and admin commands share it freely.
pub const DATA_LOCK_FILE: &str = "icpd.data.lock";

/// Takes `flock(op | LOCK_NB)` on `data_dir/name`; `Ok(None)` when another
/// process holds a conflicting lock.
fn flock_file(data_dir: &std::path::Path, name: &str, op: i32) -> Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd;
    let path = data_dir.join(name);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    // SAFETY: flock only takes a descriptor we own for the call.
    if unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Ok(None);
        }
        return Err(Error::io(format!("locking {}", path.display()), e));
    }
    Ok(Some(file))
}

/// A lock on [`DATA_LOCK_FILE`], held until dropped.
#[derive(Debug)]
pub struct DataUseLock {
    _file: std::fs::File,
}

impl DataUseLock {
    /// The shared lock an admin command holds while it uses the database;
    /// an error saying what to do while a restore holds it. `None` when
    /// the data directory does not exist yet (nothing to restore over).
    pub fn shared(data_dir: &std::path::Path) -> Result<Option<DataUseLock>> {
        if !data_dir.is_dir() {
            return Ok(None);
        }
        match flock_file(data_dir, DATA_LOCK_FILE, libc::LOCK_SH)? {
            Some(file) => Ok(Some(DataUseLock { _file: file })),
            None => Err(Error::Conflict(format!(
                "icpd restore is replacing the database in {}: run this command again when it has finished",
                data_dir.display()
            ))),
        }
    }

    /// The exclusive lock of a restore; `Ok(None)` while an admin command
    /// uses the database.
    pub fn exclusive(data_dir: &std::path::Path) -> Result<Option<DataUseLock>> {
        Ok(flock_file(data_dir, DATA_LOCK_FILE, libc::LOCK_EX)?
            .map(|file| DataUseLock { _file: file }))
    }
}

/// The exclusive lock on a data directory, held until dropped.
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    /// Takes the lock on `data_dir` (which must exist) and writes our pid
    /// into the lock file; `Ok(None)` when another process holds it.
    pub fn try_acquire(data_dir: &std::path::Path) -> Result<Option<DataDirLock>> {
        use std::io::Write;
        let path = data_dir.join(LOCK_FILE);
        let Some(mut file) = flock_file(data_dir, LOCK_FILE, libc::LOCK_EX)? else {
            return Ok(None);
        };
        file.set_len(0)
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok(Some(DataDirLock { _file: file }))
    }

    /// The pid written by the process that holds (or last held) the lock on `data_dir`.
    pub fn holder(data_dir: &std::path::Path) -> Option<u32> {
        std::fs::read_to_string(data_dir.join(LOCK_FILE))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// A running icpd.
/// Threads for calls to MI runtimes' Management API; each call is bounded
/// by its timeouts (3 s to connect, 10 s in all), so 16 threads carry out
/// at least 96 calls a minute to unreachable runtimes and thousands to
/// answering ones.
const MI_OUTBOUND_WORKERS: usize = 16;
/// Calls waiting for an outbound thread; beyond this a command waits for
/// its next round and a read answers "try again".
const MI_OUTBOUND_QUEUE: usize = 4_096;

pub struct Daemon {
    runtime: Server,
    management: Server,
    liveness: Arc<Liveness>,
    store: Arc<Store>,
    stop: Arc<AtomicBool>,
    ticker: JoinHandle<()>,
    retention: JoinHandle<()>,
    /// MI management: the dispatcher thread and its outbound pool.
    mi: Arc<crate::mi::control::MiControl>,
    mi_dispatcher: JoinHandle<()>,
    /// Single sign-on and its outbound pool.
    sso: Arc<crate::sso::Sso>,
    try_it: Arc<crate::contracts::TryIt>,
    /// Several nodes: the lease and change-feed threads.
    cluster_threads: Vec<JoinHandle<()>>,
    /// Held while the daemon runs, so `icpd restore` refuses to swap the database under it.
    _lock: DataDirLock,
}

impl Daemon {
    /// Starts everything; returns once both listeners are bound.
    pub fn start(cfg: &Config) -> Result<Daemon> {
        let runtime_listener = http::listen::bind("runtime", &cfg.runtime_listen)?;
        let management_listener = http::listen::bind("management", &cfg.management_listen)?;
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
            Error::io(
                format!("creating data directory {}", cfg.data_dir.display()),
                e,
            )
        })?;
        let lock = DataDirLock::try_acquire(&cfg.data_dir)?.ok_or_else(|| {
            Error::Conflict(format!(
                "{} is in use by another icpd (pid {}): a server or a restore in progress. Stop it, or give this server another --data-dir",
                cfg.data_dir.display(),
                DataDirLock::holder(&cfg.data_dir).map_or("unknown".into(), |p| p.to_string())
            ))
        })?;
        let store = Arc::new(cfg.open_store()?);
        let telemetry = Arc::new(crate::telemetry::Telemetry {
            store: Arc::new(match &cfg.database_url {
                Some(url) => crate::store::telemetry::TelemetryStore::connect(url)?,
                None => crate::store::telemetry::TelemetryStore::open(&cfg.telemetry_db_path())?,
            }),
            tail: Arc::new(crate::telemetry::tail::Tail::new()),
            retention: cfg.telemetry.retention,
        });
        let master_key = Arc::new(MasterKey::load(&cfg.data_dir, true)?);
        // Several nodes: this one's id, the same master key as the others,
        // and the change feed's position before memory is loaded, so that
        // no change committed meanwhile is missed.
        let joined = if store.is_shared() {
            let node = cluster::node_id(&cluster::host_name())?;
            store.set_node(&node);
            check_master_key(&store, &master_key)?;
            Some((node, store.read(|tx| tx.last_change_seq())?))
        } else {
            None
        };
        let events = Arc::new(Events::new());
        let mut liveness = Liveness::load(&store, cfg.heartbeat_timeout, now_millis())?
            .with_events(events.clone())
            .with_limits(cfg.heartbeat_limits);
        if joined.is_some() {
            liveness = liveness.clustered();
        }
        let liveness = Arc::new(liveness);
        let commands = Arc::new(
            crate::commands::Commands::load(&store, now_millis())?.with_events(events.clone()),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let cluster =
            joined.map(|(node, since)| Arc::new(Cluster::new(store.clone(), node, since)));
        let cluster_threads = match &cluster {
            Some(c) => {
                log::info!(
                    "node {} joins the nodes sharing {}",
                    c.node(),
                    store.location()
                );
                c.spawn(
                    liveness.clone(),
                    commands.clone(),
                    events.clone(),
                    stop.clone(),
                )?
            }
            None => Vec::new(),
        };
        if let Some(password) =
            crate::auth::ensure_initial_admin(&store, &cfg.data_dir, now_millis())?
        {
            // Logged once, by design: the operator needs it to sign in the first time.
            log::warn!(
                "created user 'admin' with password {password} (also in {}); it must be changed at first login",
                cfg.data_dir.join(crate::auth::INITIAL_PASSWORD_FILE).display()
            );
        }
        let sso = Arc::new(crate::sso::Sso::new(cfg.sso.clone())?);
        let try_it = Arc::new(crate::contracts::TryIt::new(cfg.try_it.clone())?);
        let mapped = sso.sync_config_mappings(&store, now_millis())?;
        if let Some(o) = &cfg.sso.oidc {
            log::info!(
                "single sign-on through {} (client {}); {mapped} group mapping(s) from the config file",
                o.issuer,
                o.client_id
            );
        }
        if cfg.sso.ldap.is_some() {
            log::info!("LDAP sign-in on; {mapped} group mapping(s) from the config file");
        }
        if !cfg.sso.password_login {
            log::info!(
                "password sign-in is off for local accounts{}",
                match &cfg.sso.break_glass_user {
                    Some(u) => format!(" but the break-glass account '{u}'"),
                    None => String::new(),
                }
            );
        }
        let (tls, cert_path) = if cfg.tls.enabled {
            let material = http::tls::load(&cfg.tls, &cfg.data_dir)?;
            let path =
                std::fs::canonicalize(&material.cert_path).unwrap_or(material.cert_path.clone());
            (
                Some(material.server_config),
                Some(path.display().to_string()),
            )
        } else {
            log::warn!("TLS is off (--no-tls): runtime tokens travel in clear text");
            (None, None)
        };
        let max_connections = connection_cap(cfg.http.max_connections);
        let limits = Limits {
            workers: cfg.http.workers,
            handshake_timeout: cfg.http.handshake_timeout,
            idle_timeout: cfg.http.idle_timeout,
            request_timeout: cfg.http.request_timeout,
            max_body_bytes: cfg.http.max_body_bytes,
            max_connections,
            max_connections_per_ip: cfg.http.max_connections_per_ip,
            ..Limits::default()
        };
        let protocol_key = master_key.clone();
        let mi = Arc::new(crate::mi::control::MiControl::new(
            store.clone(),
            master_key.clone(),
            commands.clone(),
            MI_OUTBOUND_WORKERS,
            MI_OUTBOUND_QUEUE,
            crate::http::outbound::Timeouts::default(),
        )?);
        let mi_dispatcher = mi
            .spawn()
            .map_err(|e| Error::io("starting the MI dispatcher", e))?;
        let protocol = Arc::new(Protocol {
            mi: Some(mi.clone()),
            store: store.clone(),
            master_key,
            liveness: liveness.clone(),
            secrets: crate::secrets::SecretCache::new(),
            token: cfg.token.clone(),
            commands: commands.clone(),
            events: events.clone(),
        });
        let refusals = Arc::new(crate::refusals::Refusals::new());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let runtime = http::listen::serve(
            "runtime",
            runtime_listener,
            tls.clone(),
            limits.clone(),
            Arc::new(timed(
                "runtime",
                http::routes::RUNTIME_ROUTES,
                http::routes::runtime_handler(protocol, telemetry.clone(), refusals.clone()),
            )),
        )?;
        log::info!("listening runtime {scheme}://{}", runtime.local_addr());
        let (commands_for_gql, events_for_gql, gql_key) =
            (commands.clone(), events.clone(), protocol_key.clone());
        let api = Arc::new(http::api::Api {
            store: store.clone(),
            master_key: protocol_key,
            liveness: liveness.clone(),
            commands,
            events,
            telemetry: telemetry.clone(),
            secure: tls.is_some(),
            runtime_url: crate::cli::public_runtime_url(cfg, runtime.local_addr().port()),
            cert_path,
            metrics: cfg.metrics.clone(),
            refusals,
            mi: mi.clone(),
            gql: Arc::new(crate::graphql::Gql::new(crate::graphql::Deps {
                store: store.clone(),
                liveness: liveness.clone(),
                commands: commands_for_gql,
                mi: mi.clone(),
                master_key: gql_key,
                events: events_for_gql,
            })),
            cluster: cluster.clone(),
            sso: sso.clone(),
            try_it: try_it.clone(),
        });
        let management = http::listen::serve(
            "management",
            management_listener,
            tls,
            limits,
            Arc::new(http::api::handler(api)),
        )?;
        log::info!(
            "listening management {scheme}://{}",
            management.local_addr()
        );
        log::info!(
            "{} runtimes known; heartbeat timeout {} s; data in {}",
            liveness.len(),
            cfg.heartbeat_timeout.as_secs(),
            cfg.data_dir.display()
        );

        let ticker = {
            let (liveness, store, stop) = (liveness.clone(), store.clone(), stop.clone());
            let cluster = cluster.clone();
            std::thread::Builder::new()
                .name("liveness".into())
                .spawn(move || liveness_loop(&liveness, &store, cluster.as_deref(), &stop))
                .map_err(|e| Error::io("starting the liveness thread", e))?
        };
        let retention = {
            let (stop, every) = (stop.clone(), cfg.telemetry.retention_interval);
            std::thread::Builder::new()
                .name("retention".into())
                .spawn(move || retention_loop(&telemetry, every, &stop))
                .map_err(|e| Error::io("starting the retention thread", e))?
        };
        Ok(Daemon {
            runtime,
            management,
            liveness,
            store,
            stop,
            ticker,
            retention,
            mi,
            mi_dispatcher,
            sso,
            try_it,
            cluster_threads,
            _lock: lock,
        })
    }

    /// Address the runtime listener is bound to.
    pub fn runtime_addr(&self) -> std::net::SocketAddr {
        self.runtime.local_addr()
    }

    /// Address the management listener is bound to.
    pub fn management_addr(&self) -> std::net::SocketAddr {
        self.management.local_addr()
    }

    /// Graceful stop: no new connections, in-flight requests finish, state is flushed.
    pub fn shutdown(self) {
        let started = Instant::now();
        let runtime = std::thread::spawn({
            let s = self.runtime;
            move || s.shutdown(SHUTDOWN_GRACE)
        });
        self.management.shutdown(SHUTDOWN_GRACE);
        let _ = runtime.join();
        self.mi.stop(Duration::from_secs(1));
        let _ = self.mi_dispatcher.join();
        self.sso.shutdown(Duration::from_secs(1));
        self.try_it.shutdown(Duration::from_secs(1));
        self.stop.store(true, Ordering::SeqCst);
        self.ticker.thread().unpark();
        self.retention.thread().unpark();
        let _ = self.ticker.join();
        let _ = self.retention.join();
        for t in self.cluster_threads {
            t.thread().unpark();
            let _ = t.join();
        }
        match self.liveness.flush(&self.store, now_millis()) {
            Ok(n) => log::info!(
                "flushed {n} liveness updates; stopped in {} ms",
                started.elapsed().as_millis()
            ),
            Err(e) => log::error!("final liveness flush failed: {e}"),
        }
    }
}

/// Descriptors besides connections: about 30 for the two databases (each
/// connection holds its own file and WAL: the writer, four readers and a
/// watcher on icp.db), the listeners, epoll and logs; up to 16 for the MI
/// outbound pool's calls; the rest for the CLI's occasional files.
const RESERVED_FILES: u64 = 96;

/// Below this many connections per listener the fleet a control plane is
/// for (a keep-alive connection per runtime, and its log shipper) does not
/// fit; a derived cap this low is worth a warning.
const FLEET_FLOOR: usize = 1_000;

/// Descriptors both listeners need at `max_connections` each.
fn files_for(max_connections: usize) -> u64 {
    2 * max_connections as u64 + RESERVED_FILES
}

/// The connection cap of each listener: `http.max_connections` when
/// configured, else [`DEFAULT_MAX_CONNECTIONS`] or what the open file
/// limit (raised as far as the hard limit allows) holds, whichever is less.
fn connection_cap(configured: Option<usize>) -> usize {
    let wanted = files_for(configured.unwrap_or(DEFAULT_MAX_CONNECTIONS));
    let Some((soft, hard)) = raise_open_file_limit(wanted) else {
        return configured.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    };
    let (cap, warning) = plan_connections(configured, soft, hard);
    match warning {
        Some(w) => log::warn!("{w}"),
        None if configured.is_none() && cap < DEFAULT_MAX_CONNECTIONS => log::info!(
            "up to {cap} connections per listener: what the open file limit of {soft} holds (http.max_connections sets it)"
        ),
        None => {}
    }
    cap
}

/// The cap and the warning, if any, for a configured cap (or none) under
/// an open file limit of `soft` (already raised; `hard` is the ceiling).
/// A configured cap is kept, with a warning when the limit cannot hold it;
/// a derived one warns only when it is below [`FLEET_FLOOR`].
fn plan_connections(configured: Option<usize>, soft: u64, hard: u64) -> (usize, Option<String>) {
    let raise = "Raise it (ulimit -n, LimitNOFILE= in a systemd unit)";
    match configured {
        Some(n) if soft < files_for(n) => (
            n,
            Some(format!(
                "the open file limit is {soft} (hard limit {hard}), below the {} that http.max_connections = {n} on both listeners needs; \
                 connections beyond it are refused. {raise} or lower http.max_connections",
                files_for(n)
            )),
        ),
        Some(n) => (n, None),
        None => {
            let fits = usize::try_from(soft.saturating_sub(RESERVED_FILES) / 2).unwrap_or(usize::MAX);
            let cap = fits.clamp(1, DEFAULT_MAX_CONNECTIONS);
            let warning = (cap < FLEET_FLOOR).then(|| {
                format!(
                    "the open file limit is {soft} (hard limit {hard}): each listener takes at most {cap} connections, \
                     fewer than a fleet of {FLEET_FLOOR} runtimes needs. {raise} to at least {}",
                    files_for(FLEET_FLOOR)
                )
            });
            (cap, warning)
        }
    }
}

/// Raises the soft limit on open files towards `wanted`, as far as the
/// hard limit allows: a soft limit of 1024, common by default, would
/// refuse connections long before `max_connections`. Returns the (soft,
/// hard) limits then in force; `None` if they cannot be read.
fn raise_open_file_limit(wanted: u64) -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < wanted {
        let raised = libc::rlimit {
            rlim_cur: wanted.min(lim.rlim_max),
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            log::debug!(
                "open file limit raised from {} to {}",
                lim.rlim_cur,
                raised.rlim_cur
            );
            lim.rlim_cur = raised.rlim_cur;
        }
    }
    Some((lim.rlim_cur, lim.rlim_max))
}

/// `handler`, with each request's duration recorded under its route.
fn timed(
    listener: &'static str,
    routes: &[(&'static str, &'static str)],
    handler: impl Fn(&http::Request) -> http::Response + Send + Sync + 'static,
) -> impl Fn(&http::Request) -> http::Response + Send + Sync + 'static {
    let timer = metrics::RouteTimer::new(listener, routes);
    move |req| {
        let started = Instant::now();
        let resp = handler(req);
        timer.observe(&req.method, &req.path, started.elapsed());
        resp
    }
}

/// Refuses to serve with a master key other than the one the other nodes
/// sharing the database use (the first node records its key's check value).
fn check_master_key(store: &Store, key: &MasterKey) -> Result<()> {
    let recorded =
        store.write(|tx| tx.settle_cluster_fact("master_key_check", key.check_value()))?;
    if recorded != key.check_value() {
        return Err(Error::DataDir(format!(
            "this node's master key is not the one the nodes sharing {} use (its check value differs): \
             every node needs the same master key; copy master.key (or ICP_MASTER_KEY) from a node that serves",
            store.location()
        )));
    }
    Ok(())
}

fn liveness_loop(liveness: &Liveness, store: &Store, cluster: Option<&Cluster>, stop: &AtomicBool) {
    let mut last_flush = Instant::now();
    let mut last_sweep = Instant::now();
    let mut unavailable_since: Option<Instant> = None;
    let (mut was_leader, mut database_lost) = (false, false);
    while !stop.load(Ordering::SeqCst) {
        std::thread::park_timeout(TICK);
        // With several nodes only the sweep lease's holder sweeps, after
        // reading what the others stored for the runtimes it did not hear.
        if last_sweep.elapsed() >= SWEEP_EVERY {
            // Only when a sweep is due: the database's last-seen times are
            // read then, not on every tick. A node that starts to lead, or
            // gets its database back, gives every runtime one more timeout
            // first (see `Liveness::grace`).
            let sweeping = match cluster {
                None => true,
                Some(c) if c.is_leader() => {
                    if !was_leader {
                        liveness.grace(now_millis());
                        was_leader = true;
                    }
                    match c.refresh_expiring(liveness, now_millis()) {
                        Ok(()) => {
                            if std::mem::take(&mut database_lost) {
                                liveness.grace(now_millis());
                            }
                            true
                        }
                        Err(e) => {
                            database_lost |= matches!(e, Error::Unavailable(_));
                            if !matches!(e, Error::Unavailable(_)) {
                                log::warn!(
                                    "cannot read last-seen times before the sweep (skipping it): {e}"
                                );
                            }
                            false
                        }
                    }
                }
                Some(_) => {
                    was_leader = false;
                    false
                }
            };
            if sweeping {
                last_sweep = Instant::now();
                let n = liveness.sweep(now_millis());
                metrics::LIVENESS_SWEEP.observe(last_sweep.elapsed());
                if n > 0 {
                    log::info!("{n} runtime(s) missed the heartbeat timeout");
                }
            }
        }
        if liveness.has_urgent() || last_flush.elapsed() >= FLUSH_EVERY {
            last_flush = Instant::now();
            let flushed = liveness.flush(store, now_millis());
            if flushed.as_ref().map_or(true, |&n| n > 0) {
                metrics::LIVENESS_FLUSH.observe(last_flush.elapsed());
            }
            match flushed {
                // The database is down: said once, then again when it is back.
                Err(e @ Error::Unavailable(_)) => {
                    database_lost = true;
                    if unavailable_since.is_none() {
                        unavailable_since = Some(Instant::now());
                        log::warn!("liveness flush waits for the database (delta heartbeats are answered from memory meanwhile): {e}");
                    }
                }
                Err(e) => log::error!("liveness flush failed (will retry): {e}"),
                Ok(n) => {
                    if let Some(since) = unavailable_since.take() {
                        log::info!(
                            "database reachable again after {} s: flushed {n} liveness updates",
                            since.elapsed().as_secs()
                        );
                    }
                }
            }
        }
    }
}

/// Enforces telemetry retention every `every` (first right after start:
/// the limits may have been lowered since the last run), and logs what it
/// deleted.
fn retention_loop(telemetry: &crate::telemetry::Telemetry, every: Duration, stop: &AtomicBool) {
    let limits = telemetry.retention;
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let pass =
            crate::telemetry::retention::enforce(&telemetry.store, &limits, now_millis(), stop);
        crate::metrics::RETENTION_PASS.observe(started.elapsed());
        if let Ok(r) = &pass {
            crate::metrics::retained(r.by_age.total(), r.by_size.total());
        }
        match pass {
            Ok(r) if r.deleted_anything() => log::info!(
                "telemetry retention deleted {} logs, {} request records and {} metric points older than {:.1} days, \
                 and {} logs, {} request records and {} metric points (the oldest) to stay under {} bytes; {} -> {} bytes",
                r.by_age.logs,
                r.by_age.requests,
                r.by_age.points,
                limits.max_age_ms as f64 / 86_400_000.0,
                r.by_size.logs,
                r.by_size.requests,
                r.by_size.points,
                limits.max_bytes,
                r.bytes_before,
                r.bytes_after
            ),
            Ok(_) => {}
            Err(e) => log::error!("telemetry retention failed (will retry): {e}"),
        }
        let next = Instant::now() + every;
        while !stop.load(Ordering::SeqCst) && Instant::now() < next {
            std::thread::park_timeout(next.saturating_duration_since(Instant::now()));
        }
    }
}

/// Runs until SIGTERM or SIGINT, then shuts down gracefully.
pub fn run(cfg: &Config) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| Error::io("installing signal handlers", e))?;
    let daemon = Daemon::start(cfg)?;
    if let Some(sig) = signals.forever().next() {
        log::info!("received signal {sig}; shutting down");
    }
    daemon.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_follows_the_open_file_limit_and_warns_only_below_a_fleet() {
        // This machine's 20000: a little under 10,000 per listener, silently.
        assert_eq!(plan_connections(None, 20_000, 20_000), (9_952, None));
        // Plenty: the default.
        assert_eq!(
            plan_connections(None, 1_048_576, 1_048_576),
            (DEFAULT_MAX_CONNECTIONS, None)
        );
        assert_eq!(plan_connections(None, 4_096, 4_096), (2_000, None));
        // 1024: too few for a fleet; the warning says how many are needed.
        let (cap, warning) = plan_connections(None, 1_024, 1_024);
        assert_eq!(cap, 464);
        let warning = warning.unwrap();
        assert!(
            warning.contains("at most 464") && warning.contains("at least 2096"),
            "{warning}"
        );
        assert_eq!(plan_connections(None, 10, 10).0, 1);
    }

    #[test]
    fn a_configured_cap_is_kept_and_warned_about_only_when_it_cannot_fit() {
        assert_eq!(plan_connections(Some(5_000), 20_000, 20_000), (5_000, None));
        let (cap, warning) = plan_connections(Some(10_000), 20_000, 20_000);
        assert_eq!(cap, 10_000);
        assert!(warning.unwrap().contains("below the 20096"));
    }
}
