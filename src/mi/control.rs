//! Carrying out what operators want of MI runtimes, through MI's
//! Management API, without a request worker ever waiting on a runtime.
//!
//! - **Desired state** (artifact state, tracing, statistics, logger
//!   levels) is recorded and turned into commands by `commands` exactly as
//!   for the bridge. MI takes no commands in heartbeat responses, so the
//!   dispatcher thread here takes the due MI commands
//!   ([`Commands::take_due_mi`]) and carries each out: a Management API
//!   call on the [`OutboundPool`] (direct mode) or an `MI_MGMT` command
//!   handed to the runtime in its next heartbeat response (tunnel mode).
//!   MI reports the effect only through its next full heartbeat (its hash
//!   changes, so icpd asks for one), where `commands` settles the command;
//!   a logger level, which MI's heartbeat does not carry, is read back with
//!   `GET /management/logging` right after it is set. Unsettled commands are
//!   re-issued with the commands back-off; each failed attempt's reason is
//!   kept on the command.
//! - **Reads** (loggers, users, log files, registry, fault traces) answer
//!   from a bounded cache at once: `preparing` while the first fetch runs,
//!   `ready` (with `stale` once older than [`FRESH_FOR`], which starts a
//!   refresh) or `failed`; the caller polls.
//! - **Operations** (trigger a task, add or remove a logger or a user) are
//!   one-shot: each gets an id whose per-runtime outcome the caller polls.
//!
//! Trust: with a CA bundle configured for the environment, MI's
//! certificate must chain to it and name the host. Without one (the
//! default: MI ships a self-signed `wso2carbon` certificate that no CA
//! would verify), icpd pins each runtime's certificate on first contact
//! and refuses a different one later, so a later impostor cannot receive
//! the admin token icpd sends. Tokens live 60 s.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};

use super::management::{self, Answer, Call, CallError, Resource, Target};
use super::{split_artifact_key, MiKind};
use crate::commands::{CommandRow, Commands, Kind};
use crate::error::{Error, Result};
use crate::http::outbound::{hex, OutboundError, PeerTrust, Phase, Timeouts};
use crate::master_key::MasterKey;
use crate::outbound::OutboundPool;
use crate::secrets::SecretCache;
use crate::store::{MiTargetRow, Store};
use crate::time::{now_millis, rfc3339, Millis};

/// A read younger than this is served as fresh.
pub const FRESH_FOR: Millis = 30_000;
/// A failed read is retried on the next request after this long.
const RETRY_FAILED_AFTER: Millis = 5_000;
/// At most this many reads are cached (oldest dropped first).
const MAX_CACHED_READS: usize = 512;
/// Cached read data is bounded in all to this many bytes.
const MAX_CACHED_BYTES: usize = 64 * 1024 * 1024;
/// Operations kept for polling (oldest dropped first).
const MAX_OPERATIONS: usize = 1_000;
/// Logger levels are re-read at most this often per runtime after its
/// full heartbeats.
const LOGGER_REFRESH_EVERY: Millis = 30_000;
/// A tunnelled read must come back within this, a write within
/// [`TUNNEL_WRITE_DEADLINE`] (MI.md "Tunnel mode").
const TUNNEL_READ_DEADLINE: Millis = 60_000;
const TUNNEL_WRITE_DEADLINE: Millis = 120_000;
/// A tunnelled command is handed out again after this long without a result.
const TUNNEL_REDELIVER_AFTER: Millis = 10_000;
/// At most this many tunnelled commands wait for delivery or a result.
const MAX_TUNNELLED: usize = 10_000;
/// How often the dispatcher looks for MI commands the CLI issued.
const ADOPT_EVERY: Millis = 2_000;
/// At most this many MI commands are started per second. A change to an
/// artifact of 500 replicas is then spread over 2.5 s instead of starting
/// 500 TLS handshakes at once, which on a small machine would take the
/// CPU that heartbeats are answered with; MI reports the change only at
/// each replica's next heartbeat anyway (10 s by default).
const DISPATCH_PER_SECOND: usize = 200;
/// Dispatcher rounds while commands are due are this far apart.
const DISPATCH_TICK: Millis = 50;

/// The MI artifact kinds the Management API has a resource for.
pub fn resource_of(kind: MiKind) -> Option<Resource> {
    Some(match kind {
        MiKind::Api => Resource::Apis,
        MiKind::ProxyService => Resource::ProxyServices,
        MiKind::Endpoint => Resource::Endpoints,
        MiKind::InboundEndpoint => Resource::InboundEndpoints,
        MiKind::Sequence => Resource::Sequences,
        MiKind::Task => Resource::Tasks,
        MiKind::Template => Resource::Templates,
        MiKind::MessageStore => Resource::MessageStores,
        MiKind::MessageProcessor => Resource::MessageProcessors,
        MiKind::LocalEntry => Resource::LocalEntries,
        MiKind::DataService => Resource::DataServices,
        MiKind::CarbonApp => Resource::Applications,
        MiKind::DataSource => Resource::DataSources,
        MiKind::Connector | MiKind::RegistryResource => return None,
    })
}

/// The Management API call that carries out an MI command.
pub fn call_for(row: &CommandRow) -> Result<Call, String> {
    let on = row.value.eq_ignore_ascii_case("enabled");
    let artifact = || {
        let (kind, name) = split_artifact_key(&row.target)
            .ok_or_else(|| format!("'{}' does not name an MI artifact", row.target))?;
        let resource = resource_of(kind)
            .ok_or_else(|| format!("MI cannot change {} artifacts", kind.as_str()))?;
        Ok::<_, String>((resource, name.to_string()))
    };
    Ok(match row.kind {
        Kind::MiState => {
            let (resource, name) = artifact()?;
            Call::SetStatus {
                resource,
                name,
                active: on,
            }
        }
        Kind::MiTracing => {
            let (resource, name) = artifact()?;
            Call::SetTracing { resource, name, on }
        }
        Kind::MiStatistics => {
            let (resource, name) = artifact()?;
            Call::SetStatistics { resource, name, on }
        }
        Kind::MiLogger => Call::SetLoggerLevel {
            name: row.target.clone(),
            level: row.value.clone(),
        },
        Kind::Listener | Kind::Logger => {
            return Err("not an MI command".into());
        }
    })
}

/// Logger levels from `GET /management/logging`, by logger name.
pub fn parse_loggers(v: &Value) -> Option<BTreeMap<String, String>> {
    let list = v.get("list")?.as_array()?;
    Some(
        list.iter()
            .filter_map(|l| {
                Some((
                    l.get("loggerName")?.as_str()?.to_string(),
                    l.get("level")?.as_str()?.to_string(),
                ))
            })
            .collect(),
    )
}

fn error_text(e: &CallError) -> String {
    format!("{}: {e}", e.code())
}

/// What an ended call produced.
type Outcome = std::result::Result<Answer, CallError>;

/// What to do when a dispatched call ends (on a pool worker, or on the
/// request thread that delivers a tunnelled result, or the dispatcher for
/// an expired one).
type Done = Box<dyn FnOnce(&Arc<MiControl>, Outcome) + Send>;

/// Why a call could not be dispatched at all.
enum NotDispatched {
    /// The pool or the tunnel is full: try again shortly, not counted as an attempt.
    Busy,
    /// The runtime was deleted.
    Gone,
    /// The call cannot be made (no address, no secret); the reason.
    Impossible(String),
}

// ---- reads ---------------------------------------------------------------

/// A read from a runtime's Management API.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReadKey {
    Loggers,
    Users,
    LogFiles,
    LogFile(String),
    Registry(String),
    RegistryContent(String),
    RegistryMetadata(String),
    RegistryProperties(String),
    CarbonAppFault(String),
    DataServiceFault(String),
    /// One artifact's detail (source XML in `configuration`). A kind without
    /// a Management API resource (connectors, registry resources) reads
    /// nothing: [`ReadKey::Artifact`] is refused before it is asked for.
    Artifact {
        kind: MiKind,
        name: String,
        /// Templates: `sequence` (the default) or `endpoint`.
        template_type: Option<String>,
    },
    /// A proxy service's WSDL from the runtime's service port (see [`ReadKey::wsdl`]).
    Wsdl {
        https: bool,
        port: u16,
        path_and_query: String,
    },
}

impl ReadKey {
    /// The read of the WSDL at `url` (a proxy's `wsdl1_1`, as MI reports
    /// it), which icpd fetches only from the runtime's own management host
    /// (`management_host`), as the reference does: an error says why not.
    pub fn wsdl(url: &str, management_host: &str) -> std::result::Result<ReadKey, String> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("the WSDL URL is not http(s)".into());
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| "the WSDL URL has no valid port".to_string())?,
            ),
            _ => (authority, if https { 443 } else { 80 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let mgmt = management_host
            .trim_start_matches('[')
            .trim_end_matches(']');
        if !host.eq_ignore_ascii_case(mgmt) {
            return Err(format!(
                "the WSDL URL names host {host}, not the runtime's management host {mgmt}; icpd fetches WSDLs only from the runtime itself"
            ));
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if path.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return Err("the WSDL URL has characters a request path cannot carry".into());
        }
        Ok(ReadKey::Wsdl {
            https,
            port,
            path_and_query: path,
        })
    }

    /// The detail read of an artifact; `None` for a kind MI offers none for.
    pub fn artifact(kind: MiKind, name: String, template_type: Option<String>) -> Option<ReadKey> {
        resource_of(kind)?;
        Some(ReadKey::Artifact {
            kind,
            name,
            template_type,
        })
    }

    fn call(&self) -> Call {
        match self {
            ReadKey::Loggers => Call::Loggers,
            ReadKey::Users => Call::Users,
            ReadKey::LogFiles => Call::LogFiles { search: None },
            ReadKey::LogFile(f) => Call::LogFile { file: f.clone() },
            ReadKey::Registry(p) => Call::Registry { path: p.clone() },
            ReadKey::RegistryContent(p) => Call::RegistryContent { path: p.clone() },
            ReadKey::RegistryMetadata(p) => Call::RegistryMetadata { path: p.clone() },
            ReadKey::RegistryProperties(p) => Call::RegistryProperties { path: p.clone() },
            ReadKey::CarbonAppFault(n) => Call::CarbonAppFault { name: n.clone() },
            ReadKey::DataServiceFault(n) => Call::DataServiceFault { name: n.clone() },
            ReadKey::Artifact {
                kind: MiKind::Template,
                name,
                template_type,
            } => Call::TemplateDetail {
                name: name.clone(),
                kind: match template_type.as_deref() {
                    Some(t) if t.eq_ignore_ascii_case("endpoint") => {
                        crate::mi::management::TemplateKind::Endpoint
                    }
                    _ => crate::mi::management::TemplateKind::Sequence,
                },
            },
            ReadKey::Wsdl {
                https,
                port,
                path_and_query,
            } => Call::Wsdl {
                https: *https,
                port: *port,
                path_and_query: path_and_query.clone(),
            },
            ReadKey::Artifact { kind, name, .. } => Call::Detail {
                // Kinds without a resource are refused by `ReadKey::artifact`.
                resource: resource_of(*kind).unwrap_or(Resource::Apis),
                name: name.clone(),
            },
        }
    }
}

/// Where a read stands, as the API answers it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadState {
    /// `preparing` (the first fetch is running), `ready` or `failed`.
    pub state: &'static str,
    /// Ready data older than [`FRESH_FOR`]; a refresh has been started.
    pub stale: bool,
    #[serde(serialize_with = "crate::time::serialize_opt_rfc3339")]
    #[schemars(with = "Option<String>")]
    pub fetched_at: Option<Millis>,
    pub data: Option<Value>,
    pub error: Option<String>,
}

struct ReadEntry {
    fetched_at: Option<Millis>,
    data: Option<Value>,
    bytes: usize,
    error: Option<(Millis, String)>,
    in_flight: bool,
    touched: Millis,
}

impl ReadEntry {
    /// An entry for a read never made.
    fn new(now: Millis) -> ReadEntry {
        ReadEntry {
            fetched_at: None,
            data: None,
            bytes: 0,
            error: None,
            in_flight: false,
            touched: now,
        }
    }
}

#[derive(Default)]
struct ReadCache {
    entries: HashMap<(String, ReadKey), ReadEntry>,
    bytes: usize,
}

impl ReadCache {
    fn evict(&mut self) {
        while self.entries.len() > MAX_CACHED_READS || self.bytes > MAX_CACHED_BYTES {
            let oldest = self
                .entries
                .iter()
                .filter(|(_, e)| !e.in_flight)
                .min_by_key(|(_, e)| e.touched)
                .map(|(k, _)| k.clone());
            let Some(k) = oldest else { break };
            if let Some(e) = self.entries.remove(&k) {
                self.bytes -= e.bytes;
            }
        }
    }
}

fn answer_value(a: Answer) -> Value {
    match a {
        Answer::Json(v) => v,
        Answer::Text(t) => Value::String(t),
        Answer::Bytes(b) => match String::from_utf8(b) {
            Ok(t) => Value::String(t),
            Err(e) => json!({
                "encoding": "base64",
                "content": base64::engine::general_purpose::STANDARD.encode(e.as_bytes()),
            }),
        },
    }
}

// ---- operations ------------------------------------------------------------

/// One runtime's part of an operation.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationOnRuntime {
    pub runtime_id: String,
    /// `pending`, `succeeded` or `failed`.
    pub state: &'static str,
    pub message: Option<String>,
    #[serde(serialize_with = "crate::time::serialize_opt_rfc3339")]
    #[schemars(with = "Option<String>")]
    pub finished_at: Option<Millis>,
}

/// A one-shot action on runtimes, and how it went on each.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub operation_id: String,
    /// `trigger-task`, `add-logger`, `delete-logger`, `add-user`, `delete-user`.
    pub action: String,
    pub target: String,
    pub issued_by: String,
    #[serde(serialize_with = "crate::time::serialize_rfc3339")]
    #[schemars(with = "String")]
    pub issued_at: Millis,
    pub runtimes: Vec<OperationOnRuntime>,
    /// Who may see it: the scope it acted in.
    #[serde(skip)]
    pub integration_id: i64,
    #[serde(skip)]
    pub environment_id: i64,
    #[serde(skip)]
    pub project_id: i64,
}

// ---- tunnel ----------------------------------------------------------------

struct Tunnelled {
    runtime_id: String,
    key_id: String,
    call: Call,
    wire: Value,
    deadline: Millis,
    delivered_at: Option<Millis>,
    done: Done,
}

// ---- the control -----------------------------------------------------------

struct Wake {
    /// MI runtimes whose full heartbeat arrived: re-read their loggers.
    registered: HashSet<String>,
    kicked: bool,
}

/// The MI dispatcher, reads, operations and tunnel.
pub struct MiControl {
    store: Arc<Store>,
    master_key: Arc<MasterKey>,
    secrets: SecretCache,
    commands: Arc<Commands>,
    pool: OutboundPool,
    timeouts: Timeouts,
    wake: Mutex<Wake>,
    wakeup: Condvar,
    stopped: AtomicBool,
    reads: Mutex<ReadCache>,
    operations: Mutex<VecDeque<Operation>>,
    /// Tunnelled commands by runtime, then command id: a heartbeat looks
    /// at its own runtime's only.
    tunnel: Mutex<HashMap<String, HashMap<String, Tunnelled>>>,
    logger_reads: Mutex<HashMap<String, Millis>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn new_id(prefix: &str) -> Result<String> {
    let b: [u8; 12] = crate::master_key::random_bytes()?;
    Ok(format!("{prefix}{}", hex(&b)))
}

impl MiControl {
    /// A control with `workers` outbound threads and room for `queue`
    /// waiting calls.
    pub fn new(
        store: Arc<Store>,
        master_key: Arc<MasterKey>,
        commands: Arc<Commands>,
        workers: usize,
        queue: usize,
        timeouts: Timeouts,
    ) -> Result<MiControl> {
        Ok(MiControl {
            store,
            master_key,
            secrets: SecretCache::new(),
            commands,
            pool: OutboundPool::new(workers, queue)
                .map_err(|e| Error::io("starting the outbound pool", e))?,
            timeouts,
            wake: Mutex::new(Wake {
                registered: HashSet::new(),
                kicked: false,
            }),
            wakeup: Condvar::new(),
            stopped: AtomicBool::new(false),
            reads: Mutex::new(ReadCache::default()),
            operations: Mutex::new(VecDeque::new()),
            tunnel: Mutex::new(HashMap::new()),
            logger_reads: Mutex::new(HashMap::new()),
        })
    }

    /// Wakes the dispatcher now (a request just issued MI commands).
    pub fn kick(&self) {
        lock(&self.wake).kicked = true;
        self.wakeup.notify_one();
    }

    /// An MI runtime's full heartbeat was registered: its loggers are read
    /// again (at most every [`LOGGER_REFRESH_EVERY`]).
    pub fn registered(&self, runtime_id: &str) {
        lock(&self.wake).registered.insert(runtime_id.to_string());
        self.wakeup.notify_one();
    }

    /// Runs the dispatcher until [`MiControl::stop`].
    pub fn spawn(self: &Arc<Self>) -> std::io::Result<std::thread::JoinHandle<()>> {
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("mi-dispatch".into())
            .spawn(move || me.run())
    }

    /// Stops the dispatcher and the outbound pool (queued calls dropped
    /// after `grace`).
    pub fn stop(&self, grace: Duration) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wakeup.notify_all();
        self.pool.shutdown(grace);
    }

    fn run(self: Arc<Self>) {
        let mut adopted_at: Millis = 0;
        // A token bucket for DISPATCH_PER_SECOND, holding at most one
        // tick's worth plus a small burst.
        let burst = (DISPATCH_PER_SECOND * DISPATCH_TICK as usize / 1000).max(1) * 2;
        let mut tokens = burst as f64;
        let mut filled_at = now_millis();
        while !self.stopped.load(Ordering::SeqCst) {
            let registered = {
                let mut w = lock(&self.wake);
                if !w.kicked && w.registered.is_empty() {
                    let idle = if self.commands.has_pending_mi() || !lock(&self.tunnel).is_empty() {
                        Duration::from_millis(200)
                    } else {
                        Duration::from_secs(1)
                    };
                    w = self
                        .wakeup
                        .wait_timeout(w, idle)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                w.kicked = false;
                std::mem::take(&mut w.registered)
            };
            if self.stopped.load(Ordering::SeqCst) {
                break;
            }
            let now = now_millis();
            if now - adopted_at >= ADOPT_EVERY {
                adopted_at = now;
                match self.commands.adopt_stored_mi(&self.store, now) {
                    Ok(0) => {}
                    Ok(n) => {
                        log::info!("took in {n} MI commands issued outside this server (icpd mi)")
                    }
                    Err(e) => log::warn!("cannot read stored MI commands: {e}"),
                }
            }
            tokens = (tokens
                + (now - filled_at).max(0) as f64 * DISPATCH_PER_SECOND as f64 / 1000.0)
                .min(burst as f64);
            filled_at = now;
            let due = self.commands.take_due_mi(now, tokens as usize);
            tokens -= due.len() as f64;
            for row in due {
                self.dispatch_command(row, now);
            }
            for rid in registered {
                let due = {
                    let mut last = lock(&self.logger_reads);
                    let due = last
                        .get(&rid)
                        .is_none_or(|t| now - t >= LOGGER_REFRESH_EVERY);
                    if due {
                        last.insert(rid.clone(), now);
                        if last.len() > 100_000 {
                            last.retain(|_, t| now - *t < LOGGER_REFRESH_EVERY);
                        }
                    }
                    due
                };
                if due {
                    self.start_read(&rid, ReadKey::Loggers, now);
                }
            }
            self.expire_tunnelled(now);
        }
    }

    // ---- dispatch ------------------------------------------------------

    fn target(&self, row: &MiTargetRow, now: Millis) -> std::result::Result<Target, String> {
        let Some(address) = &row.management else {
            return Err("the runtime has not reported its Management API address (runtimeHostname, runtimePort)".into());
        };
        let secret = self
            .secrets
            .lookup(&self.store, &self.master_key, &row.key_id, now)
            .map_err(|e| format!("cannot open the runtime's secret: {e}"))?
            .ok_or_else(|| format!("the runtime's secret {} no longer exists", row.key_id))?
            .0;
        let trust = match &row.ca_pem {
            Some(pem) => PeerTrust::from_ca_pem(pem)?,
            None => PeerTrust::Pin(row.pin.as_deref().and_then(parse_pin)),
        };
        Ok(Target {
            host: address.host.clone(),
            port: address.port,
            key_id: row.key_id.clone(),
            key_material: secret.material,
            trust,
            timeouts: self.timeouts,
        })
    }

    /// Carries out `call` on a runtime, directly or through the tunnel;
    /// `done` runs when it ends.
    fn dispatch(
        self: &Arc<Self>,
        runtime_id: &str,
        call: Call,
        issued_by: &str,
        now: Millis,
        done: Done,
    ) -> std::result::Result<(), NotDispatched> {
        let row = self
            .store
            .read(|tx| tx.mi_target(runtime_id))
            .map_err(|e| NotDispatched::Impossible(format!("cannot read the runtime: {e}")))?
            .ok_or(NotDispatched::Gone)?;
        let tunnel = row.tunnel;
        let done: Done = Box::new(move |me, outcome| {
            crate::metrics::mi_call(
                tunnel,
                match &outcome {
                    Ok(_) => "ok",
                    Err(e) => e.code(),
                },
            );
            done(me, outcome)
        });
        if row.tunnel && matches!(call, Call::Wsdl { .. }) {
            return Err(NotDispatched::Impossible(
                "a WSDL is fetched from the runtime's service port, which tunnel mode does not reach".into(),
            ));
        }
        if row.tunnel {
            if lock(&self.tunnel).values().map(HashMap::len).sum::<usize>() >= MAX_TUNNELLED {
                return Err(NotDispatched::Busy);
            }
            self.tunnel_enqueue(&row, call, issued_by, now, done)
                .map_err(NotDispatched::Impossible)?;
            return Ok(());
        }
        let target = self.target(&row, now).map_err(NotDispatched::Impossible)?;
        let me = Arc::clone(self);
        let rid = runtime_id.to_string();
        let pinned = row.pin.is_some() || row.ca_pem.is_some();
        self.pool
            .submit(Box::new(move || {
                let outcome = if call == Call::Users {
                    management::list_users(&target, now_millis() / 1000)
                        .map(|users| (Answer::Json(json!({"users": users})), None))
                } else {
                    management::call(&target, &call, now_millis() / 1000)
                };
                let outcome = match outcome {
                    Ok((answer, pin)) => {
                        if let (false, Some(pin)) = (pinned, pin) {
                            if let Err(e) =
                                me.store.write(|tx| tx.set_management_pin(&rid, &hex(&pin)))
                            {
                                log::warn!("runtime {rid}: cannot record its certificate pin: {e}");
                            }
                        }
                        Ok(answer)
                    }
                    Err(e) => Err(e),
                };
                done(&me, outcome);
            }))
            .map_err(|_| NotDispatched::Busy)
    }

    fn dispatch_command(self: &Arc<Self>, row: CommandRow, now: Millis) {
        let call = match call_for(&row) {
            Ok(c) => c,
            Err(why) => return self.command_ended(&row, Some(why), false, now),
        };
        let logger = row.kind == Kind::MiLogger;
        let settled = row.clone();
        let done: Done = Box::new(move |me, outcome| match outcome {
            Ok(_) if logger => me.read_back_loggers(&settled),
            Ok(_) => me.command_ended(&settled, None, false, now_millis()),
            Err(e) => me.command_ended(&settled, Some(error_text(&e)), false, now_millis()),
        });
        match self.dispatch(&row.runtime_id, call, &row.issued_by, now, done) {
            Ok(()) => {}
            Err(NotDispatched::Busy) => self.command_ended(&row, None, true, now),
            Err(NotDispatched::Gone) => self.commands.forget_runtime(&row.runtime_id),
            Err(NotDispatched::Impossible(why)) => self.command_ended(&row, Some(why), false, now),
        }
    }

    fn command_ended(&self, row: &CommandRow, error: Option<String>, busy: bool, now: Millis) {
        if let Some(e) = &error {
            log::warn!(
                "runtime {}: {} {} -> {}: {e}",
                row.runtime_id,
                row.action,
                row.target.chars().take(100).collect::<String>(),
                row.value
            );
        }
        // A write only when the recorded error changes (most attempts
        // succeed and had none): every commit costs heartbeats a little.
        if !busy && error != row.last_error {
            if let Err(e) = self
                .store
                .write(|tx| tx.set_command_error(&row.command_id, error.as_deref()))
            {
                log::warn!(
                    "cannot record the outcome of command {}: {e}",
                    row.command_id
                );
            }
        }
        self.commands
            .mi_attempt_ended(&row.runtime_id, &row.command_id, error, busy, now);
    }

    /// After a logger level was set: read the loggers back, store them and
    /// settle what they show.
    fn read_back_loggers(self: &Arc<Self>, row: &CommandRow) {
        let settled = row.clone();
        let done: Done = Box::new(move |me, outcome| match outcome {
            Ok(answer) => {
                let levels = answer.json().and_then(parse_loggers);
                match levels {
                    Some(levels) => {
                        me.store_loggers(&settled.runtime_id, &levels);
                        me.command_ended(&settled, None, false, now_millis());
                    }
                    None => me.command_ended(
                        &settled,
                        Some("MI's logger list is not in the shape MI.md gives".into()),
                        false,
                        now_millis(),
                    ),
                }
            }
            Err(e) => me.command_ended(&settled, Some(error_text(&e)), false, now_millis()),
        });
        let now = now_millis();
        match self.dispatch(&row.runtime_id, Call::Loggers, &row.issued_by, now, done) {
            Ok(()) => {}
            Err(NotDispatched::Busy) => self.command_ended(row, None, true, now),
            Err(NotDispatched::Gone) => self.commands.forget_runtime(&row.runtime_id),
            Err(NotDispatched::Impossible(why)) => self.command_ended(row, Some(why), false, now),
        }
    }

    /// Stores an MI runtime's logger levels and settles its logger commands.
    fn store_loggers(&self, runtime_id: &str, levels: &BTreeMap<String, String>) {
        let now = now_millis();
        let order = self.commands.order_keys(&[runtime_id]);
        let result = self.store.write(|tx| {
            let Some(rt) = tx.runtime(runtime_id)? else {
                return Ok(None);
            };
            tx.set_mi_loggers(runtime_id, levels)?;
            Ok(Some(self.commands.observe_mi_loggers(
                tx,
                runtime_id,
                rt.integration_id,
                rt.environment_id,
                levels,
                now,
            )?))
        });
        match result {
            Ok(Some(changes)) => self.commands.apply(changes, now),
            Ok(None) => {}
            Err(e) => log::warn!("runtime {runtime_id}: cannot store its loggers: {e}"),
        }
        drop(order);
    }

    // ---- reads ---------------------------------------------------------

    /// Where a read stands; starts a fetch when there is none or it is stale.
    pub fn read(self: &Arc<Self>, runtime_id: &str, key: ReadKey, now: Millis) -> ReadState {
        let start = {
            let mut cache = lock(&self.reads);
            let entry = cache
                .entries
                .entry((runtime_id.to_string(), key.clone()))
                .or_insert_with(|| ReadEntry::new(now));
            entry.touched = now;
            let stale = entry.fetched_at.is_none_or(|t| now - t >= FRESH_FOR);
            let retry = entry
                .error
                .as_ref()
                .is_none_or(|(at, _)| now - at >= RETRY_FAILED_AFTER);
            let start = stale && retry && !entry.in_flight;
            if start {
                entry.in_flight = true;
            }
            start
        };
        if start {
            self.start_read_now(runtime_id, key.clone(), now);
        }
        let cache = lock(&self.reads);
        let Some(e) = cache.entries.get(&(runtime_id.to_string(), key)) else {
            return ReadState {
                state: "preparing",
                stale: false,
                fetched_at: None,
                data: None,
                error: None,
            };
        };
        let failed = e.error.as_ref().map(|(_, m)| m.clone());
        ReadState {
            state: match (&e.data, &failed) {
                (Some(_), _) => "ready",
                (None, Some(_)) if !e.in_flight => "failed",
                _ => "preparing",
            },
            stale: e.fetched_at.is_some_and(|t| now - t >= FRESH_FOR),
            fetched_at: e.fetched_at,
            data: e.data.clone(),
            error: failed,
        }
    }

    /// Starts a fetch unless one is running.
    fn start_read(self: &Arc<Self>, runtime_id: &str, key: ReadKey, now: Millis) {
        let start = {
            let mut cache = lock(&self.reads);
            let entry = cache
                .entries
                .entry((runtime_id.to_string(), key.clone()))
                .or_insert_with(|| ReadEntry::new(now));
            let start = !entry.in_flight;
            entry.in_flight = true;
            start
        };
        if start {
            self.start_read_now(runtime_id, key, now);
        }
    }

    fn start_read_now(self: &Arc<Self>, runtime_id: &str, key: ReadKey, now: Millis) {
        let rid = runtime_id.to_string();
        let k = key.clone();
        let done: Done = Box::new(move |me, outcome| me.read_ended(&rid, k, outcome));
        let failed = match self.dispatch(runtime_id, key.call(), "icpd", now, done) {
            Ok(()) => return,
            Err(NotDispatched::Busy) => {
                "icpd's outbound queue is full; try again in a moment".to_string()
            }
            Err(NotDispatched::Gone) => "the runtime no longer exists".to_string(),
            Err(NotDispatched::Impossible(why)) => why,
        };
        self.read_ended(runtime_id, key, Err(CallError::Invalid(failed)));
    }

    fn read_ended(&self, runtime_id: &str, key: ReadKey, outcome: Outcome) {
        let now = now_millis();
        if key == ReadKey::Loggers {
            if let Some(levels) = outcome
                .as_ref()
                .ok()
                .and_then(|a| a.json())
                .and_then(parse_loggers)
            {
                self.store_loggers(runtime_id, &levels);
            }
        }
        let mut cache = lock(&self.reads);
        let cache = &mut *cache;
        let Some(e) = cache.entries.get_mut(&(runtime_id.to_string(), key)) else {
            return;
        };
        e.in_flight = false;
        match outcome {
            Ok(answer) => {
                let data = answer_value(answer);
                let bytes = data.to_string().len();
                cache.bytes = cache.bytes - e.bytes + bytes;
                e.bytes = bytes;
                e.data = Some(data);
                e.fetched_at = Some(now);
                e.error = None;
            }
            Err(err) => {
                e.error = Some((
                    now,
                    match err {
                        CallError::Invalid(why) => why,
                        other => error_text(&other),
                    },
                ));
            }
        }
        cache.evict();
    }

    // ---- operations ----------------------------------------------------

    /// Starts a one-shot action on runtimes and returns it (all pending).
    #[allow(clippy::too_many_arguments)]
    pub fn operate(
        self: &Arc<Self>,
        scope: &crate::commands::Scope,
        runtime_ids: &[String],
        action: &str,
        target: &str,
        call: Call,
        issued_by: &str,
        now: Millis,
    ) -> Result<Operation> {
        call.validate()
            .map_err(|e| Error::Unprocessable(e.to_string()))?;
        let op = Operation {
            operation_id: new_id("op-")?,
            action: action.to_string(),
            target: target.to_string(),
            issued_by: issued_by.to_string(),
            issued_at: now,
            runtimes: runtime_ids
                .iter()
                .map(|id| OperationOnRuntime {
                    runtime_id: id.clone(),
                    state: "pending",
                    message: None,
                    finished_at: None,
                })
                .collect(),
            integration_id: scope.integration_id,
            environment_id: scope.environment_id,
            project_id: scope.project_id,
        };
        {
            let mut ops = lock(&self.operations);
            ops.push_back(op.clone());
            while ops.len() > MAX_OPERATIONS {
                ops.pop_front();
            }
        }
        let refresh_loggers = matches!(call, Call::AddLogger { .. } | Call::DeleteLogger { .. });
        for rid in runtime_ids {
            let (op_id, r) = (op.operation_id.clone(), rid.clone());
            let done: Done = Box::new(move |me, outcome| {
                let message = match &outcome {
                    Ok(a) => a.json().and_then(|v| {
                        ["message", "Message", "status"]
                            .iter()
                            .find_map(|k| v.get(*k).and_then(Value::as_str))
                            .map(str::to_string)
                    }),
                    Err(e) => Some(error_text(e)),
                };
                me.operation_ended(&op_id, &r, outcome.is_ok(), message);
                if refresh_loggers {
                    me.start_read(&r, ReadKey::Loggers, now_millis());
                }
            });
            match self.dispatch(rid, call.clone(), issued_by, now, done) {
                Ok(()) => {}
                Err(NotDispatched::Busy) => self.operation_ended(
                    &op.operation_id,
                    rid,
                    false,
                    Some("icpd's outbound queue is full; try again in a moment".into()),
                ),
                Err(NotDispatched::Gone) => self.operation_ended(
                    &op.operation_id,
                    rid,
                    false,
                    Some("the runtime no longer exists".into()),
                ),
                Err(NotDispatched::Impossible(why)) => {
                    self.operation_ended(&op.operation_id, rid, false, Some(why))
                }
            }
        }
        Ok(self.operation(&op.operation_id).unwrap_or(op))
    }

    fn operation_ended(&self, op_id: &str, runtime_id: &str, ok: bool, message: Option<String>) {
        let mut ops = lock(&self.operations);
        if let Some(r) = ops
            .iter_mut()
            .find(|o| o.operation_id == op_id)
            .and_then(|o| o.runtimes.iter_mut().find(|r| r.runtime_id == runtime_id))
        {
            r.state = if ok { "succeeded" } else { "failed" };
            r.message = message;
            r.finished_at = Some(now_millis());
        }
    }

    /// An operation by id, while it is kept.
    pub fn operation(&self, op_id: &str) -> Option<Operation> {
        lock(&self.operations)
            .iter()
            .find(|o| o.operation_id == op_id)
            .cloned()
    }

    // ---- tunnel --------------------------------------------------------

    fn tunnel_enqueue(
        &self,
        row: &MiTargetRow,
        call: Call,
        issued_by: &str,
        now: Millis,
        done: Done,
    ) -> std::result::Result<(), String> {
        call.validate().map_err(|e| e.to_string())?;
        let secret = self
            .secrets
            .lookup(&self.store, &self.master_key, &row.key_id, now)
            .map_err(|e| format!("cannot open the runtime's secret: {e}"))?
            .ok_or_else(|| format!("the runtime's secret {} no longer exists", row.key_id))?
            .0;
        let write = call.is_write();
        let request_id = new_id("").map_err(|e| e.to_string())?;
        let command_id = format!(
            "{}-{request_id}.{}",
            if write { "mio" } else { "mir" },
            row.runtime_id
        );
        let deadline = now
            + if write {
                TUNNEL_WRITE_DEADLINE
            } else {
                TUNNEL_READ_DEADLINE
            };
        let payload = json!({
            "commandId": command_id,
            "operation": "management",
            "params": management::prepare(&call),
            "identity": {"userId": issued_by, "roles": []},
            "deadline": rfc3339(deadline),
        })
        .to_string();
        let mut wire = json!({
            "commandId": command_id,
            "runtimeId": row.runtime_id,
            "targetArtifact": {"name": "management"},
            "action": "MI_MGMT",
            "issuedAt": [now.div_euclid(1000), now.rem_euclid(1000) as f64 / 1000.0],
            "status": "PENDING",
            "payload": payload,
        });
        wire["signature"] = Value::String(sign(&wire, &row.runtime_id, &secret.material));
        lock(&self.tunnel)
            .entry(row.runtime_id.clone())
            .or_default()
            .insert(
                command_id,
                Tunnelled {
                    runtime_id: row.runtime_id.clone(),
                    key_id: row.key_id.clone(),
                    call,
                    wire,
                    deadline,
                    delivered_at: None,
                    done,
                },
            );
        Ok(())
    }

    /// The tunnelled commands to hand a runtime in this heartbeat
    /// response (never in one that asks for a full heartbeat: MI acts on
    /// the full heartbeat's response and would drop them). Each is handed
    /// out again after [`TUNNEL_REDELIVER_AFTER`] until its result comes.
    pub fn tunnel_due(&self, runtime_id: &str, now: Millis) -> Vec<Value> {
        let mut t = lock(&self.tunnel);
        let Some(mine) = t.get_mut(runtime_id) else {
            return Vec::new();
        };
        mine.values_mut()
            .filter(|c| c.deadline > now)
            .filter(|c| {
                c.delivered_at
                    .is_none_or(|d| now - d >= TUNNEL_REDELIVER_AFTER)
            })
            .map(|c| {
                c.delivered_at = Some(now);
                c.wire.clone()
            })
            .collect()
    }

    /// A tunnelled command's result from `POST /icp/commandResult`, sent
    /// with a token of `key_id`. Unknown, late or foreign results are
    /// no-ops (`false`).
    pub fn tunnel_result(
        self: &Arc<Self>,
        key_id: &str,
        runtime_id: &str,
        command_id: &str,
        http_status: u16,
        body: Option<&Value>,
    ) -> bool {
        let entry = {
            let mut t = lock(&self.tunnel);
            let taken = t
                .get_mut(runtime_id)
                .and_then(|mine| match mine.get(command_id) {
                    Some(c) if c.key_id == key_id => mine.remove(command_id),
                    _ => None,
                });
            if t.get(runtime_id).is_some_and(HashMap::is_empty) {
                t.remove(runtime_id);
            }
            taken
        };
        let Some(c) = entry else {
            return false;
        };
        let (ctype, bytes) = match body {
            None | Some(Value::Null) => (Some("application/json"), Vec::new()),
            Some(Value::String(s)) if c.call.expects() != management::Expect::Json => {
                (Some("text/plain"), s.clone().into_bytes())
            }
            Some(v) => (Some("application/json"), v.to_string().into_bytes()),
        };
        let outcome = management::interpret(&c.call, http_status, ctype, &bytes);
        (c.done)(self, outcome);
        true
    }

    fn expire_tunnelled(self: &Arc<Self>, now: Millis) {
        let expired: Vec<Tunnelled> = {
            let mut t = lock(&self.tunnel);
            let mut expired = Vec::new();
            for mine in t.values_mut() {
                let ids: Vec<String> = mine
                    .iter()
                    .filter(|(_, c)| c.deadline <= now)
                    .map(|(k, _)| k.clone())
                    .collect();
                expired.extend(ids.iter().filter_map(|k| mine.remove(k)));
            }
            t.retain(|_, mine| !mine.is_empty());
            expired
        };
        for c in expired {
            // Reported as a timeout of the tunnel "connection": the
            // operator's question is the same (is the runtime there, and
            // does it run the ICP command executor of the MI fork?).
            let after = Duration::from_millis(
                u64::try_from(if c.call.is_write() {
                    TUNNEL_WRITE_DEADLINE
                } else {
                    TUNNEL_READ_DEADLINE
                })
                .unwrap_or(0),
            );
            (c.done)(
                self,
                Err(CallError::Outbound(OutboundError::Timeout {
                    address: format!(
                        "runtime {} through the heartbeat tunnel (does this MI run the ICP command executor?)",
                        c.runtime_id
                    ),
                    phase: Phase::Receive,
                    after,
                })),
            );
        }
    }

    /// Outbound pool figures, for `/metrics`.
    pub fn pool_stats(&self) -> crate::outbound::PoolStats {
        self.pool.stats()
    }
}

fn parse_pin(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The MI fork's command signature: base64 HMAC-SHA256, keyed by the key
/// material, over `len:value` of `v1`, runtime id, command id, action,
/// target name, target package and payload (MI.md "Tunnel mode").
pub fn sign(wire: &Value, runtime_id: &str, material: &str) -> String {
    let field = |v: &Value| v.as_str().unwrap_or("").to_string();
    let fields = [
        "v1".to_string(),
        runtime_id.to_string(),
        field(&wire["commandId"]),
        field(&wire["action"]),
        field(&wire["targetArtifact"]["name"]),
        field(&wire["targetArtifact"]["package"]),
        field(&wire["payload"]),
    ];
    let input: String = fields.iter().map(|f| format!("{}:{f}", f.len())).collect();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, material.as_bytes());
    base64::engine::general_purpose::STANDARD
        .encode(ring::hmac::sign(&key, input.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_wsdl_is_read_only_from_the_runtimes_own_host() {
        let k = ReadKey::wsdl("http://mi-1:8290/services/P?wsdl", "MI-1").unwrap();
        assert_eq!(
            k,
            ReadKey::Wsdl {
                https: false,
                port: 8290,
                path_and_query: "/services/P?wsdl".into()
            }
        );
        let k = ReadKey::wsdl("https://[::1]:8253?wsdl", "::1").unwrap();
        assert_eq!(
            k,
            ReadKey::Wsdl {
                https: true,
                port: 8253,
                path_and_query: "/?wsdl".into()
            }
        );
        assert!(ReadKey::wsdl("http://evil.example:8290/x", "mi-1")
            .unwrap_err()
            .contains("not the runtime's management host"));
        assert!(ReadKey::wsdl("ftp://mi-1/x", "mi-1").is_err());
        assert!(ReadKey::wsdl("http://mi-1:notaport/x", "mi-1").is_err());
        assert!(ReadKey::wsdl("http://mi-1:8290/a b", "mi-1").is_err());
    }

    use super::*;

    fn row(kind: Kind, target: &str, value: &str) -> CommandRow {
        CommandRow {
            id: 1,
            command_id: "c".into(),
            runtime_id: "r".into(),
            integration_id: 1,
            environment_id: 1,
            kind,
            action: String::new(),
            target: target.into(),
            value: value.into(),
            payload: None,
            issued_by: "u".into(),
            issued_at: 0,
            attempts: 0,
            last_sent_at: None,
            status: crate::commands::CommandStatus::Pending,
            settled_at: None,
            last_error: None,
        }
    }

    #[test]
    fn commands_become_the_calls_mi_md_gives() {
        assert_eq!(
            call_for(&row(Kind::MiState, "proxy-service/P/x", "disabled")).unwrap(),
            Call::SetStatus {
                resource: Resource::ProxyServices,
                name: "P/x".into(),
                active: false
            }
        );
        assert_eq!(
            call_for(&row(Kind::MiTracing, "api/A", "enabled")).unwrap(),
            Call::SetTracing {
                resource: Resource::Apis,
                name: "A".into(),
                on: true
            }
        );
        assert_eq!(
            call_for(&row(Kind::MiLogger, "org.apache", "DEBUG")).unwrap(),
            Call::SetLoggerLevel {
                name: "org.apache".into(),
                level: "DEBUG".into()
            }
        );
        assert!(call_for(&row(Kind::MiState, "connector/http", "enabled")).is_err());
        assert!(call_for(&row(Kind::MiState, "nonsense", "enabled")).is_err());
    }

    #[test]
    fn loggers_are_read_from_mis_list() {
        let v = json!({"count": 2, "list": [
            {"loggerName": "rootLogger", "componentName": "", "level": "INFO"},
            {"loggerName": "synapse", "componentName": "org.apache.synapse", "level": "DEBUG"},
            {"junk": 1}]});
        let l = parse_loggers(&v).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l["synapse"], "DEBUG");
        assert!(parse_loggers(&json!({"list": "error"})).is_none());
    }

    #[test]
    fn pins_round_trip_through_hex() {
        let pin = [7u8; 32];
        assert_eq!(parse_pin(&hex(&pin)), Some(pin));
        assert_eq!(parse_pin("zz"), None);
    }

    #[test]
    fn signatures_cover_every_field() {
        let wire = json!({"commandId": "mio-1.r", "action": "MI_MGMT",
                          "targetArtifact": {"name": "management"}, "payload": "{}"});
        let a = sign(&wire, "r", "k");
        let mut other = wire.clone();
        other["payload"] = json!("{ }");
        assert_ne!(a, sign(&other, "r", "k"));
        assert_ne!(a, sign(&wire, "r2", "k"));
        assert_ne!(a, sign(&wire, "r", "k2"));
    }
}
