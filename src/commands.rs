//! Control commands: listeners started or stopped and logger levels set on
//! the runtimes of an integration in an environment, until they converge.
//!
//! An operator's request records a *desired state* (for all runtimes of the
//! integration in the environment, or as an override for chosen runtimes)
//! and issues one command to every runtime whose last full heartbeat
//! reported something else. The bridge receives commands only inside
//! heartbeat responses and reports their effect only through its next full
//! heartbeat, so:
//!
//! - the PENDING commands of each runtime are kept in memory ([`Commands`]),
//!   and a delta heartbeat only reads and updates that table; a command is
//!   due at once, then again after 10 s, 20 s, 40 s, ... (at most 5 min)
//!   until the runtime has converged;
//! - every full heartbeat, in the transaction that registers it, compares
//!   what the runtime reports with what is desired ([`Commands::reconcile`]):
//!   matching commands become CONVERGED, and a runtime that differs without
//!   a pending command (a new one, or one that drifted) gets one;
//! - a newer request for the same artifact settles older PENDING commands as
//!   SUPERSEDED.
//!
//! Both writers (requests and full heartbeats) hold the ordering lock
//! across their transaction and the memory update after it, so memory
//! follows the database in commit order. A request, which touches many
//! runtimes, holds it whole ([`Commands::order`]); a writer that touches
//! the commands of one runtime (a full heartbeat, MI loggers read back, a
//! change from another node) holds it shared, plus the stripes of the keys
//! it names ([`Commands::order_keys`]): the runtime's id and, for a full
//! heartbeat, the name slot whose OFFLINE runtime it may replace. So full
//! heartbeats of different runtimes commit together (PostgreSQL commits
//! them in one flush) while those of one runtime, or one name, keep their
//! order. Lock order: ordering lock, store, table.
//!
//! Issued and settled commands are published as `command` events by
//! [`Commands::apply`], that is after the commit.

pub use crate::model::commands::*;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;
use serde_json::{json, Value};

use crate::catalog::{normalize_handle, Environment, Integration, Project};
use crate::error::{Error, Result};
use crate::events::{self, Event, Events};
use crate::liveness::Liveness;
use crate::mi::MiArtifact;
use crate::runtimes::{Artifacts, Status};
use crate::store::{Store, Tx};
use crate::time::{rfc3339, serialize_opt_rfc3339, serialize_rfc3339, Millis};

/// The first re-issue of an unconverged command waits this long; each further one doubles it.
pub const FIRST_RETRY: Millis = 10_000;
/// Re-issues are never further apart than this.
pub const MAX_RETRY: Millis = 300_000;

/// Listener states and log levels an operator may ask for.
pub const LISTENER_STATES: &[&str] = &["enabled", "disabled"];
pub const LOG_LEVELS: &[&str] = &["DEBUG", "INFO", "WARN", "ERROR"];
/// The levels MI's loggers take (log4j2).
pub const MI_LOG_LEVELS: &[&str] = &["OFF", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// Listener states and log levels as a runtime reported them.
#[derive(Debug, Clone, Default)]
pub struct Reported {
    listeners: BTreeMap<String, String>,
    levels: BTreeMap<String, String>,
    /// MI: state, tracing and statistics by kind and `kind/name`.
    mi: BTreeMap<(Kind, String), String>,
}

impl Reported {
    pub fn new(
        artifacts: Option<&Artifacts>,
        log_levels: Option<&BTreeMap<String, String>>,
    ) -> Reported {
        Reported {
            // A listener that reports no state is running.
            listeners: artifacts
                .map(|a| {
                    a.listeners
                        .iter()
                        .map(|l| {
                            (
                                l.name.clone(),
                                l.state.clone().unwrap_or_else(|| "enabled".into()),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            levels: log_levels.cloned().unwrap_or_default(),
            mi: BTreeMap::new(),
        }
    }

    /// What an MI runtime reports: its artifacts (from its last full
    /// heartbeat) and its logger levels (as last read from MI).
    pub fn mi(artifacts: &[MiArtifact], levels: BTreeMap<String, String>) -> Reported {
        let mut mi = BTreeMap::new();
        for a in artifacts {
            let key = crate::mi::artifact_key(a.kind, &a.name);
            for (kind, value) in [
                (Kind::MiState, &a.state),
                (Kind::MiTracing, &a.tracing),
                (Kind::MiStatistics, &a.statistics),
            ] {
                if let Some(v) = value {
                    mi.insert((kind, key.clone()), v.clone());
                }
            }
        }
        Reported {
            listeners: BTreeMap::new(),
            levels,
            mi,
        }
    }

    /// The reported value, or `None` when the runtime has no such artifact.
    pub fn get(&self, kind: Kind, artifact: &str) -> Option<&str> {
        match kind {
            Kind::Listener => self.listeners.get(artifact),
            Kind::Logger | Kind::MiLogger => self.levels.get(artifact),
            Kind::MiState | Kind::MiTracing | Kind::MiStatistics => {
                self.mi.get(&(kind, artifact.to_string()))
            }
        }
        .map(String::as_str)
    }
}

pub fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// For one runtime: the desired value of each artifact (its own override, else the integration-wide one).
pub fn effective<'d>(
    desired: &'d [DesiredRow],
    runtime_id: &str,
) -> BTreeMap<(Kind, &'d str), &'d DesiredRow> {
    let mut out = BTreeMap::new();
    for d in desired.iter().filter(|d| d.runtime_id.is_none()) {
        out.insert((d.kind, d.artifact.as_str()), d);
    }
    for d in desired
        .iter()
        .filter(|d| d.runtime_id.as_deref() == Some(runtime_id))
    {
        out.insert((d.kind, d.artifact.as_str()), d);
    }
    out
}

/// An integration in an environment, as a request names it.
#[derive(Debug, Clone)]
pub struct Scope {
    pub project_id: i64,
    pub integration_id: i64,
    pub environment_id: i64,
    /// Whether the environment is critical (acting there needs `environment:manage`).
    pub critical: bool,
    pub project: String,
    pub integration: String,
    pub environment: String,
}

impl Scope {
    /// Integration `i` of project `p` in environment `e`.
    pub fn of(p: Project, i: Integration, e: Environment) -> Scope {
        Scope {
            project_id: p.id,
            integration_id: i.id,
            environment_id: e.id,
            critical: e.critical,
            project: p.handle,
            integration: i.handle,
            environment: e.handle,
        }
    }
}

/// Looks up project, integration and environment by handle; 404 for any unknown one.
pub fn resolve(
    store: &Store,
    project: &str,
    integration: &str,
    environment: &str,
) -> Result<Scope> {
    store.read(|tx| {
        let p = tx
            .project_by_handle(&normalize_handle(project))?
            .ok_or_else(|| Error::NotFound(format!("no project '{}'", clip(project))))?;
        let i = tx
            .integration_by_handle(p.id, &normalize_handle(integration))?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "project '{}' has no integration '{}'",
                    p.handle,
                    clip(integration)
                ))
            })?;
        let e = tx
            .environment_by_handle(&normalize_handle(environment))?
            .ok_or_else(|| Error::NotFound(format!("no environment '{}'", clip(environment))))?;
        Ok(Scope::of(p, i, e))
    })
}

fn clip(s: &str) -> String {
    s.chars().take(100).collect()
}

/// An operator's request: this artifact should have this value.
#[derive(Debug, Clone)]
pub struct Request {
    pub kind: Kind,
    pub artifact: String,
    pub value: String,
    /// `None`: every runtime of the integration in the environment.
    pub runtime_ids: Option<Vec<String>>,
}

impl Request {
    /// A listener should be `enabled` or `disabled` (422 otherwise).
    pub fn listener(name: &str, state: &str, runtime_ids: Option<Vec<String>>) -> Result<Request> {
        let value = state.to_ascii_lowercase();
        if !LISTENER_STATES.contains(&value.as_str()) {
            return Err(Error::Unprocessable(format!(
                "state '{}' must be enabled or disabled",
                clip(state)
            )));
        }
        Request::new(Kind::Listener, name, value, runtime_ids)
    }

    /// A logger should log at DEBUG, INFO, WARN or ERROR (422 otherwise).
    pub fn logger(
        component: &str,
        level: &str,
        runtime_ids: Option<Vec<String>>,
    ) -> Result<Request> {
        let value = level.to_ascii_uppercase();
        if !LOG_LEVELS.contains(&value.as_str()) {
            return Err(Error::Unprocessable(format!(
                "level '{}' must be one of DEBUG, INFO, WARN, ERROR",
                clip(level)
            )));
        }
        Request::new(Kind::Logger, component, value, runtime_ids)
    }

    /// An MI artifact's state, tracing or statistics should be `enabled`
    /// or `disabled` (422 otherwise, or when MI offers no such control for
    /// the artifact's kind).
    pub fn mi_artifact(
        field: Kind,
        kind: crate::mi::MiKind,
        name: &str,
        value: &str,
        runtime_ids: Option<Vec<String>>,
    ) -> Result<Request> {
        let offered = match field {
            Kind::MiState => kind.has_status(),
            Kind::MiTracing => kind.has_tracing(),
            Kind::MiStatistics => kind.has_statistics(),
            _ => false,
        };
        let what = match field {
            Kind::MiState => "enabled or disabled",
            Kind::MiTracing => "switched to tracing",
            _ => "switched to collect statistics",
        };
        if !offered {
            return Err(Error::Unprocessable(format!(
                "{} cannot be {what} in MI",
                kind.title()
            )));
        }
        let value = value.to_ascii_lowercase();
        if !LISTENER_STATES.contains(&value.as_str()) {
            return Err(Error::Unprocessable(format!(
                "'{}' must be enabled or disabled",
                clip(&value)
            )));
        }
        Request::new(
            field,
            &crate::mi::artifact_key(kind, name),
            value,
            runtime_ids,
        )
    }

    /// An MI logger should log at one of MI's levels (422 otherwise).
    pub fn mi_logger(
        logger: &str,
        level: &str,
        runtime_ids: Option<Vec<String>>,
    ) -> Result<Request> {
        let value = level.to_ascii_uppercase();
        if !MI_LOG_LEVELS.contains(&value.as_str()) {
            return Err(Error::Unprocessable(format!(
                "level '{}' must be one of {}",
                clip(level),
                MI_LOG_LEVELS.join(", ")
            )));
        }
        if logger.is_empty() {
            return Err(Error::Unprocessable("name the logger".into()));
        }
        Request::new(Kind::MiLogger, logger, value, runtime_ids)
    }

    fn new(
        kind: Kind,
        artifact: &str,
        value: String,
        runtime_ids: Option<Vec<String>>,
    ) -> Result<Request> {
        if let Some(ids) = &runtime_ids {
            if ids.is_empty() {
                return Err(Error::Unprocessable(
                    "runtimeIds must name at least one runtime; leave it out to address all runtimes".into(),
                ));
            }
        }
        Ok(Request {
            kind,
            artifact: artifact.to_string(),
            value,
            runtime_ids,
        })
    }

    fn action(&self) -> &'static str {
        match (self.kind, self.value.as_str()) {
            (Kind::Listener, "enabled") => "START",
            (Kind::Listener, _) => "STOP",
            (Kind::Logger, _) => "SET_LOGGER_LEVEL",
            (Kind::MiState, _) => "MI_SET_STATE",
            (Kind::MiTracing, _) => "MI_SET_TRACING",
            (Kind::MiStatistics, _) => "MI_SET_STATISTICS",
            (Kind::MiLogger, _) => "MI_SET_LOGGER_LEVEL",
        }
    }
}

/// One command as the API shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandEntry {
    pub command_id: String,
    pub runtime_id: String,
    pub action: String,
    pub kind: Kind,
    pub target: String,
    pub value: String,
    pub payload: Option<String>,
    pub issued_by: String,
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub issued_at: Millis,
    pub attempts: i64,
    #[serde(serialize_with = "serialize_opt_rfc3339")]
    #[schemars(with = "Option<String>")]
    pub last_sent_at: Option<Millis>,
    pub status: CommandStatus,
    #[serde(serialize_with = "serialize_opt_rfc3339")]
    #[schemars(with = "Option<String>")]
    pub settled_at: Option<Millis>,
    /// Why the last attempt failed (MI: unreachable, refused, ...), while pending.
    pub last_error: Option<String>,
}

impl From<&CommandRow> for CommandEntry {
    fn from(c: &CommandRow) -> CommandEntry {
        CommandEntry {
            command_id: c.command_id.clone(),
            runtime_id: c.runtime_id.clone(),
            action: c.action.clone(),
            kind: c.kind,
            target: c.target.clone(),
            value: c.value.clone(),
            payload: c.payload.clone(),
            issued_by: c.issued_by.clone(),
            issued_at: c.issued_at,
            attempts: c.attempts,
            last_sent_at: c.last_sent_at,
            status: c.status,
            settled_at: c.settled_at,
            last_error: c.last_error.clone(),
        }
    }
}

/// What a request recorded and issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub desired: DesiredRow,
    pub runtime_ids: Option<Vec<String>>,
    pub commands: Vec<CommandEntry>,
}

impl Issued {
    /// `{"desired": {...}, "commands": [...]}`, the desired part shaped like the request.
    pub fn to_json(&self) -> IssuedView {
        let field = match self.desired.kind {
            Kind::Listener | Kind::MiState => "state",
            Kind::MiTracing => "tracing",
            Kind::MiStatistics => "statistics",
            Kind::Logger | Kind::MiLogger => "level",
        };
        let name = match self.desired.kind {
            Kind::Listener => "listener",
            Kind::Logger => "component",
            Kind::MiState | Kind::MiTracing | Kind::MiStatistics => "artifact",
            Kind::MiLogger => "logger",
        };
        let desired = Desired {
            kind: self.desired.kind.as_str().to_string(),
            runtime_ids: self.runtime_ids.clone(),
            issued_by: self.desired.issued_by.clone(),
            issued_at: rfc3339(self.desired.issued_at),
            fields: BTreeMap::from([
                (name.to_string(), self.desired.artifact.clone()),
                (field.to_string(), self.desired.value.clone()),
            ]),
        };
        IssuedView {
            desired,
            commands: self.commands.clone(),
        }
    }
}

/// What a control request asked for, and the command it issued to each runtime.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct IssuedView {
    pub desired: Desired,
    pub commands: Vec<CommandEntry>,
}

/// The desired state a control request recorded, shaped like the request.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Desired {
    /// What was changed: `listener`, `logger`, or an MI artifact kind.
    pub kind: String,
    /// The runtimes addressed (null: all of the scope).
    pub runtime_ids: Option<Vec<String>>,
    pub issued_by: String,
    pub issued_at: String,
    /// What it names and the value asked for, by the request's field names
    /// (`listener` and `state`, `component` and `level`, `name` and
    /// `state`/`tracing`/`statistics`, `logger` and `level`).
    #[serde(flatten)]
    pub fields: BTreeMap<String, String>,
}

/// The facts of a full heartbeat that reconciliation needs.
#[derive(Debug, Clone)]
pub struct Beat<'a> {
    pub runtime_id: &'a str,
    pub integration_id: i64,
    pub environment_id: i64,
    pub reported: Reported,
    /// Runtimes the heartbeat's registration replaced (their commands are superseded).
    pub replaced: &'a [String],
}

/// What a transaction did to commands, for the memory table once it committed.
#[derive(Debug, Default)]
#[must_use = "apply the changes with Commands::apply after the transaction commits"]
pub struct Changes {
    settled: Vec<(String, String)>,
    issued: Vec<CommandRow>,
    forgotten: Vec<String>,
    /// Commands whose status this transaction set, to publish.
    published: Vec<(CommandRow, CommandStatus)>,
    /// Their scope (one integration in one environment); `None` when no
    /// one listens.
    scope: Option<events::Scope>,
}

struct Pending {
    row: CommandRow,
    next_due: Millis,
    /// An MI command being carried out now (a Management API call or a
    /// tunnelled one awaiting its result): not handed out again until it ends.
    in_flight: bool,
}

/// Stripes of the ordering lock (see the module doc).
const ORDER_STRIPES: usize = 64;

/// The ordering lock, held whole or for some keys (see the module doc).
struct Order {
    whole: RwLock<()>,
    stripes: Vec<Mutex<()>>,
}

/// The ordering lock as held; released when dropped.
pub enum OrderGuard<'a> {
    Whole(#[allow(dead_code)] RwLockWriteGuard<'a, ()>),
    Keys(
        #[allow(dead_code)] RwLockReadGuard<'a, ()>,
        #[allow(dead_code)] Vec<MutexGuard<'a, ()>>,
    ),
}

fn stripe_of(key: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % ORDER_STRIPES as u64) as usize
}

/// The PENDING commands of every runtime, in memory.
pub struct Commands {
    /// The newest command id this table has issued, loaded or adopted.
    newest: std::sync::atomic::AtomicI64,
    order: Order,
    pending: Mutex<HashMap<String, Vec<Pending>>>,
    events: Arc<Events>,
}

/// How long after its `attempts`-th delivery a command is due again.
pub fn retry_delay(attempts: i64) -> Millis {
    let doublings = attempts.clamp(1, 16) - 1;
    (FIRST_RETRY << doublings).min(MAX_RETRY)
}

fn new_command_id() -> Result<String> {
    let mut b: [u8; 16] = crate::master_key::random_bytes()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// Inserts a new PENDING command that establishes `req`'s value on a runtime.
fn issue(
    tx: &Tx,
    runtime_id: &str,
    integration_id: i64,
    environment_id: i64,
    req: &Request,
    issued_by: &str,
    now: Millis,
) -> Result<CommandRow> {
    let payload = (req.kind == Kind::Logger)
        .then(|| json!({"componentName": req.artifact, "logLevel": req.value}).to_string());
    let mut row = CommandRow {
        id: 0,
        command_id: new_command_id()?,
        runtime_id: runtime_id.to_string(),
        integration_id,
        environment_id,
        kind: req.kind,
        action: req.action().to_string(),
        target: req.artifact.clone(),
        value: req.value.clone(),
        payload,
        issued_by: issued_by.to_string(),
        issued_at: now,
        attempts: 0,
        last_sent_at: None,
        status: CommandStatus::Pending,
        settled_at: None,
        last_error: None,
    };
    row.id = tx.insert_command(&row)?;
    Ok(row)
}

impl Commands {
    /// An empty table.
    pub fn new() -> Commands {
        Commands {
            newest: std::sync::atomic::AtomicI64::new(0),
            order: Order {
                whole: RwLock::new(()),
                stripes: (0..ORDER_STRIPES).map(|_| Mutex::new(())).collect(),
            },
            pending: Mutex::new(HashMap::new()),
            events: Arc::new(Events::new()),
        }
    }

    /// Publishes issued and settled commands to `events`.
    pub fn with_events(mut self, events: Arc<Events>) -> Commands {
        self.events = events;
        self
    }

    /// The table of the stored PENDING commands, all due at the next heartbeat.
    pub fn load(store: &Store, now: Millis) -> Result<Commands> {
        let c = Commands::new();
        {
            let (newest, pending) =
                store.read(|tx| Ok((tx.newest_command_id()?, tx.all_pending_commands()?)))?;
            c.saw(newest);
            let mut table = c.table();
            for row in pending {
                table
                    .entry(row.runtime_id.clone())
                    .or_default()
                    .push(Pending {
                        row,
                        next_due: now,
                        in_flight: false,
                    });
            }
        }
        Ok(c)
    }

    fn table(&self) -> MutexGuard<'_, HashMap<String, Vec<Pending>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ordering lock, whole: hold it across a transaction that
    /// changes the commands of many runtimes and the [`Commands::apply`]
    /// after it.
    pub fn order(&self) -> OrderGuard<'_> {
        OrderGuard::Whole(self.order.whole.write().unwrap_or_else(|p| p.into_inner()))
    }

    /// The ordering lock for `keys` only (see the module doc): hold it
    /// across a transaction that changes the commands of the runtime
    /// named by `keys` (and of an OFFLINE one with its name slot it
    /// replaces), and the [`Commands::apply`] after it.
    pub fn order_keys(&self, keys: &[&str]) -> OrderGuard<'_> {
        let shared = self.order.whole.read().unwrap_or_else(|p| p.into_inner());
        let mut stripes: Vec<usize> = keys.iter().map(|k| stripe_of(k)).collect();
        // One order for every taker: no two wait for each other.
        stripes.sort_unstable();
        stripes.dedup();
        let held = stripes
            .into_iter()
            .map(|i| {
                self.order.stripes[i]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
            })
            .collect();
        OrderGuard::Keys(shared, held)
    }

    /// How many PENDING commands each of several runtimes has, in order,
    /// under one lock of the table heartbeats read.
    pub fn pending_counts<'a>(&self, runtime_ids: impl IntoIterator<Item = &'a str>) -> Vec<usize> {
        let table = self.table();
        runtime_ids
            .into_iter()
            .map(|id| table.get(id).map_or(0, Vec::len))
            .collect()
    }

    /// The commands due for a runtime now, as a heartbeat response carries
    /// them; each is counted as one more delivery and becomes due again after
    /// [`retry_delay`]. Memory only, unless several nodes share the
    /// database (`store.is_shared()`): then each delivery is claimed in
    /// the database first (see [`Commands::claim`]).
    pub fn due(&self, store: &Store, runtime_id: &str, now: Millis) -> Vec<Value> {
        if store.is_shared() {
            return self.claim(store, runtime_id, now);
        }
        let mut table = self.table();
        let Some(list) = table.get_mut(runtime_id) else {
            return Vec::new();
        };
        list.iter_mut()
            .filter(|p| p.next_due <= now && !p.row.kind.is_mi())
            .map(|p| {
                p.row.attempts += 1;
                p.row.last_sent_at = Some(now);
                p.next_due = now.saturating_add(retry_delay(p.row.attempts));
                p.row.wire()
            })
            .collect()
    }

    /// [`Commands::due`] with several nodes: a runtime's heartbeats land
    /// on any node, and each node has the command in memory, so a
    /// delivery is claimed in the database: the row's attempt count moves
    /// from the one this node knows to the next (a row lock orders the
    /// nodes; one claim of an attempt wins). A claim lost to another node
    /// takes that node's count and time instead; a settled command leaves
    /// the table. Without the database nothing is delivered now (the
    /// command stays pending: delayed, not lost).
    fn claim(&self, store: &Store, runtime_id: &str, now: Millis) -> Vec<Value> {
        let candidates: Vec<(String, i64)> = match self.table().get(runtime_id) {
            Some(list) => list
                .iter()
                .filter(|p| p.next_due <= now && !p.row.kind.is_mi())
                .map(|p| (p.row.command_id.clone(), p.row.attempts))
                .collect(),
            None => return Vec::new(),
        };
        if candidates.is_empty() {
            return Vec::new();
        }
        let outcomes = store.write(|tx| {
            candidates
                .iter()
                .map(|(id, attempts)| tx.claim_delivery(id, *attempts, now))
                .collect::<Result<Vec<_>>>()
        });
        let outcomes = match outcomes {
            Ok(o) => o,
            Err(e) => {
                log::debug!("commands for {runtime_id} wait for the database: {e}");
                return Vec::new();
            }
        };
        let mut table = self.table();
        let Some(list) = table.get_mut(runtime_id) else {
            return Vec::new();
        };
        let mut wire = Vec::new();
        for ((id, _), outcome) in candidates.iter().zip(outcomes) {
            let Some(p) = list.iter_mut().find(|p| &p.row.command_id == id) else {
                continue;
            };
            match outcome {
                Delivery::Claimed { attempts } => {
                    p.row.attempts = attempts;
                    p.row.last_sent_at = Some(now);
                    p.next_due = now.saturating_add(retry_delay(attempts));
                    wire.push(p.row.wire());
                }
                Delivery::Pending {
                    attempts,
                    last_sent_at,
                } => {
                    p.row.attempts = attempts;
                    p.row.last_sent_at = last_sent_at;
                    p.next_due =
                        last_sent_at.map_or(now, |at| at.saturating_add(retry_delay(attempts)));
                }
                Delivery::Settled => p.next_due = Millis::MAX,
            }
        }
        list.retain(|p| p.next_due != Millis::MAX);
        if list.is_empty() {
            table.remove(runtime_id);
        }
        wire
    }

    /// The MI commands due now, for the MI dispatcher (`mi::control`),
    /// at most `limit`: each is counted as one more attempt, marked in
    /// flight (not handed out again until [`Commands::mi_attempt_ended`])
    /// and becomes due again after [`retry_delay`] unless it settles first.
    /// Memory only.
    pub fn take_due_mi(&self, now: Millis, limit: usize) -> Vec<CommandRow> {
        let mut out = Vec::new();
        let mut table = self.table();
        for p in table.values_mut().flatten() {
            if out.len() >= limit {
                break;
            }
            if p.row.kind.is_mi() && !p.in_flight && p.next_due <= now {
                p.in_flight = true;
                p.row.attempts += 1;
                p.row.last_sent_at = Some(now);
                p.next_due = now.saturating_add(retry_delay(p.row.attempts));
                out.push(p.row.clone());
            }
        }
        out
    }

    /// An attempt at an MI command ended (`error`: why it failed). With
    /// `retry_soon`, it was not attempted at all (the outbound pool was
    /// full) and is due again at `now` + 1 s without counting.
    pub fn mi_attempt_ended(
        &self,
        runtime_id: &str,
        command_id: &str,
        error: Option<String>,
        retry_soon: bool,
        now: Millis,
    ) {
        let mut table = self.table();
        if let Some(p) = table
            .get_mut(runtime_id)
            .and_then(|l| l.iter_mut().find(|p| p.row.command_id == command_id))
        {
            p.in_flight = false;
            if retry_soon {
                p.row.attempts -= 1;
                p.next_due = now.saturating_add(1_000);
            }
            p.row.last_error = error;
        }
    }

    /// Takes in the PENDING MI commands that another process (the CLI,
    /// working on the same database) issued: they are in SQLite but not in
    /// this table. Only commands newer than the newest this table has seen
    /// are read (a step down the primary key when there are none), under
    /// the ordering lock, so a heartbeat cannot settle one between the
    /// read and the insert. Returns how many were adopted.
    pub fn adopt_stored_mi(&self, store: &Store, now: Millis) -> Result<usize> {
        let _order = self.order();
        let known = self.newest.load(std::sync::atomic::Ordering::Acquire);
        let (newest, stored) = store.read(|tx| {
            let newest = tx.newest_command_id()?;
            if newest <= known {
                return Ok((newest, Vec::new()));
            }
            Ok((newest, tx.pending_commands_after(known)?))
        })?;
        // Every PENDING command up to `newest` is in this read, so later
        // calls start after it, past settled ones too.
        self.saw(newest);
        let mut table = self.table();
        let mut adopted = 0;
        for row in stored.into_iter().filter(|r| r.kind.is_mi()) {
            let list = table.entry(row.runtime_id.clone()).or_default();
            if !list.iter().any(|p| p.row.command_id == row.command_id) {
                list.push(Pending {
                    row,
                    next_due: now,
                    in_flight: false,
                });
                adopted += 1;
            }
        }
        Ok(adopted)
    }

    /// Remembers that commands up to `id` are known here.
    fn saw(&self, id: i64) {
        self.newest
            .fetch_max(id, std::sync::atomic::Ordering::AcqRel);
    }

    /// Applies a command change another node committed (from the change
    /// feed): an issued command joins this table (read back from the
    /// database, due at once unless another node sent it lately), a
    /// settled one leaves it.
    pub fn apply_change(
        &self,
        store: &Store,
        change: &crate::model::cluster::Change,
        now: Millis,
    ) -> Result<()> {
        use crate::model::cluster::Change;
        match change {
            Change::Command {
                runtime_id,
                command_id,
                settled: false,
                ..
            } => {
                let stored = store.read(|tx| tx.pending_commands(runtime_id))?;
                let _order = self.order_keys(&[runtime_id]);
                let mut table = self.table();
                for row in stored.into_iter().filter(|r| &r.command_id == command_id) {
                    self.saw(row.id);
                    let list = table.entry(row.runtime_id.clone()).or_default();
                    if !list.iter().any(|p| p.row.command_id == row.command_id) {
                        let next_due = row
                            .last_sent_at
                            .map_or(now, |at| at.saturating_add(retry_delay(row.attempts)));
                        list.push(Pending {
                            row,
                            next_due,
                            in_flight: false,
                        });
                    }
                }
            }
            Change::Command {
                runtime_id,
                command_id,
                settled: true,
                ..
            } => {
                let mut table = self.table();
                if let Some(list) = table.get_mut(runtime_id) {
                    list.retain(|p| &p.row.command_id != command_id);
                    if list.is_empty() {
                        table.remove(runtime_id);
                    }
                }
            }
            Change::Removed { runtime_id, .. } => self.forget_runtime(runtime_id),
            Change::Runtime { .. } | Change::Status { .. } => {}
        }
        Ok(())
    }

    /// Drops a runtime's commands from memory (it no longer exists; its
    /// rows went with it).
    pub fn forget_runtime(&self, runtime_id: &str) {
        self.table().remove(runtime_id);
    }

    /// Whether any MI command is pending (the dispatcher sleeps longer when none is).
    pub fn has_pending_mi(&self) -> bool {
        self.table().values().flatten().any(|p| p.row.kind.is_mi())
    }

    /// The last error of a pending command, if its last attempt failed.
    pub fn last_error(&self, runtime_id: &str, command_id: &str) -> Option<String> {
        self.table()
            .get(runtime_id)?
            .iter()
            .find(|p| p.row.command_id == command_id)?
            .row
            .last_error
            .clone()
    }

    /// Settles an MI runtime's pending logger commands against the levels
    /// just read from its Management API (MI's heartbeat does not carry
    /// them), inside the transaction that stores those levels.
    pub fn observe_mi_loggers(
        &self,
        tx: &Tx,
        runtime_id: &str,
        integration_id: i64,
        environment_id: i64,
        levels: &BTreeMap<String, String>,
        now: Millis,
    ) -> Result<Changes> {
        let mut ch = Changes::default();
        let desired = tx.desired_states(integration_id, environment_id)?;
        let wanted = effective(&desired, runtime_id);
        let memory = self.deliveries(runtime_id);
        for p in tx.pending_commands(runtime_id)? {
            if p.kind != Kind::MiLogger {
                continue;
            }
            let (attempts, last) = memory
                .get(&p.command_id)
                .copied()
                .unwrap_or((p.attempts, p.last_sent_at));
            let settle = match wanted.get(&(p.kind, p.target.as_str())) {
                Some(d) if same(&d.value, &p.value) => levels
                    .get(&p.target)
                    .filter(|v| same(v, &p.value))
                    .map(|_| CommandStatus::Converged),
                _ => Some(CommandStatus::Superseded),
            };
            if let Some(s) = settle {
                tx.update_command(&p.command_id, attempts, last, Some((s, now)))?;
                ch.settled
                    .push((p.runtime_id.clone(), p.command_id.clone()));
                ch.published.push((p.clone(), s));
            }
        }
        if !ch.published.is_empty() && self.events.has_subscribers() {
            ch.scope = events::runtime_info(tx, runtime_id)?.map(|i| i.scope);
        }
        Ok(ch)
    }

    /// Delivery counters kept in memory, by command id.
    fn deliveries(&self, runtime_id: &str) -> HashMap<String, (i64, Option<Millis>)> {
        self.table()
            .get(runtime_id)
            .map(|l| {
                l.iter()
                    .map(|p| {
                        (
                            p.row.command_id.clone(),
                            (p.row.attempts, p.row.last_sent_at),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Applies what a committed transaction did, and publishes it.
    pub fn apply(&self, changes: Changes, now: Millis) {
        if let Some(scope) = &changes.scope {
            for (row, status) in &changes.published {
                self.events
                    .publish(&Event::command(row, *status, now, scope.clone()));
            }
        }
        let mut table = self.table();
        for id in &changes.forgotten {
            table.remove(id);
        }
        for (runtime_id, command_id) in &changes.settled {
            if let Some(list) = table.get_mut(runtime_id) {
                list.retain(|p| &p.row.command_id != command_id);
                if list.is_empty() {
                    table.remove(runtime_id);
                }
            }
        }
        for row in changes.issued {
            self.saw(row.id);
            table
                .entry(row.runtime_id.clone())
                .or_default()
                .push(Pending {
                    row,
                    next_due: now,
                    in_flight: false,
                });
        }
    }

    /// Inside a full heartbeat's transaction, after registration: settles the
    /// runtime's PENDING commands that it now reports as done (CONVERGED) or
    /// that no longer match what is desired (SUPERSEDED), and issues a
    /// command for every desired value it reports otherwise and has no
    /// pending command for.
    pub fn reconcile(&self, tx: &Tx, beat: &Beat, now: Millis) -> Result<Changes> {
        let mut ch = Changes::default();
        for id in beat.replaced {
            tx.supersede_runtime_commands(id, now)?;
            ch.forgotten.push(id.clone());
        }
        let desired = tx.desired_states(beat.integration_id, beat.environment_id)?;
        let wanted = effective(&desired, beat.runtime_id);
        let memory = self.deliveries(beat.runtime_id);
        let mut covered = HashSet::new();
        for p in tx.pending_commands(beat.runtime_id)? {
            let (attempts, last) = memory
                .get(&p.command_id)
                .copied()
                .unwrap_or((p.attempts, p.last_sent_at));
            let settle = match wanted.get(&(p.kind, p.target.as_str())) {
                Some(d) if same(&d.value, &p.value) => beat
                    .reported
                    .get(p.kind, &p.target)
                    .filter(|v| same(v, &p.value))
                    .map(|_| CommandStatus::Converged),
                _ => Some(CommandStatus::Superseded),
            };
            match settle {
                Some(s) => {
                    tx.update_command(&p.command_id, attempts, last, Some((s, now)))?;
                    ch.settled
                        .push((p.runtime_id.clone(), p.command_id.clone()));
                    ch.published.push((p.clone(), s));
                }
                None => {
                    if (attempts, last) != (p.attempts, p.last_sent_at) {
                        tx.update_command(&p.command_id, attempts, last, None)?;
                    }
                    covered.insert((p.kind, p.target.clone()));
                }
            }
        }
        for ((kind, artifact), d) in &wanted {
            if covered.contains(&(*kind, artifact.to_string())) {
                continue;
            }
            match beat.reported.get(*kind, artifact) {
                Some(v) if !same(v, &d.value) => {
                    let req = Request {
                        kind: *kind,
                        artifact: artifact.to_string(),
                        value: d.value.clone(),
                        runtime_ids: None,
                    };
                    let row = issue(
                        tx,
                        beat.runtime_id,
                        beat.integration_id,
                        beat.environment_id,
                        &req,
                        &d.issued_by,
                        now,
                    )?;
                    ch.published.push((row.clone(), CommandStatus::Pending));
                    ch.issued.push(row);
                }
                _ => {}
            }
        }
        if !ch.published.is_empty() && self.events.has_subscribers() {
            ch.scope = events::runtime_info(tx, beat.runtime_id)?.map(|i| i.scope);
        }
        Ok(ch)
    }

    /// An operator's request: records the desired value and issues a command
    /// to every addressed runtime that reports the artifact with another
    /// value. 404 for runtimes outside the scope, or when no addressed
    /// runtime has the artifact.
    pub fn request(
        &self,
        store: &Store,
        scope: &Scope,
        req: &Request,
        issued_by: &str,
        now: Millis,
    ) -> Result<Issued> {
        let _order = self.order();
        let (issued, changes) = store.write(|tx| {
            let runtimes = if req.kind.is_mi() {
                tx.scope_runtimes_for_mi(
                    scope.integration_id,
                    scope.environment_id,
                    req.kind,
                    &req.artifact,
                )?
            } else {
                tx.scope_runtimes(scope.integration_id, scope.environment_id)?
            };
            if let Some(ids) = &req.runtime_ids {
                if let Some(unknown) = ids
                    .iter()
                    .find(|id| !runtimes.iter().any(|r| &r.record.runtime_id == *id))
                {
                    return Err(Error::NotFound(format!(
                        "runtime '{}' is not a runtime of {}/{} in '{}'",
                        clip(unknown),
                        scope.project,
                        scope.integration,
                        scope.environment
                    )));
                }
            }
            let targets: Vec<(&ScopeRuntime, Reported)> = runtimes
                .iter()
                .filter(|r| {
                    req.runtime_ids
                        .as_ref()
                        .is_none_or(|ids| ids.contains(&r.record.runtime_id))
                })
                .map(|r| (r, r.reported()))
                .collect();
            // An MI logger is known only once read from MI: one not seen
            // yet is set anyway (MI answers whether it exists).
            if req.kind != Kind::MiLogger
                && !targets
                    .iter()
                    .any(|(_, rep)| rep.get(req.kind, &req.artifact).is_some())
            {
                return Err(Error::NotFound(format!(
                    "no {} '{}' on the addressed runtimes of {}/{} in '{}'",
                    req.kind.as_str(),
                    clip(&req.artifact),
                    scope.project,
                    scope.integration,
                    scope.environment
                )));
            }
            let mut desired = DesiredRow {
                kind: req.kind,
                artifact: req.artifact.clone(),
                runtime_id: None,
                value: req.value.clone(),
                issued_by: issued_by.to_string(),
                issued_at: now,
            };
            match &req.runtime_ids {
                None => {
                    tx.clear_desired_overrides(
                        scope.integration_id,
                        scope.environment_id,
                        req.kind,
                        &req.artifact,
                    )?;
                    tx.set_desired(scope.integration_id, scope.environment_id, &desired)?;
                }
                Some(ids) => {
                    for id in ids {
                        desired.runtime_id = Some(id.clone());
                        tx.set_desired(scope.integration_id, scope.environment_id, &desired)?;
                    }
                    desired.runtime_id = None;
                }
            }
            let mut changes = Changes::default();
            let mut entries = Vec::new();
            for (r, reported) in &targets {
                let rid = &r.record.runtime_id;
                let memory = self.deliveries(rid);
                for p in tx.pending_commands(rid)? {
                    if p.kind == req.kind && p.target == req.artifact {
                        let (attempts, last) = memory
                            .get(&p.command_id)
                            .copied()
                            .unwrap_or((p.attempts, p.last_sent_at));
                        tx.update_command(
                            &p.command_id,
                            attempts,
                            last,
                            Some((CommandStatus::Superseded, now)),
                        )?;
                        changes.settled.push((rid.clone(), p.command_id.clone()));
                        changes.published.push((p, CommandStatus::Superseded));
                    }
                }
                let differs = match reported.get(req.kind, &req.artifact) {
                    Some(v) => !same(v, &req.value),
                    None => req.kind == Kind::MiLogger,
                };
                if differs {
                    let row = issue(
                        tx,
                        rid,
                        scope.integration_id,
                        scope.environment_id,
                        req,
                        issued_by,
                        now,
                    )?;
                    entries.push(CommandEntry::from(&row));
                    changes
                        .published
                        .push((row.clone(), CommandStatus::Pending));
                    changes.issued.push(row);
                }
            }
            changes.scope = Some(events::Scope::from(scope));
            let issued = Issued {
                desired,
                runtime_ids: req.runtime_ids.clone(),
                commands: entries,
            };
            Ok((issued, changes))
        })?;
        self.apply(changes, now);
        Ok(issued)
    }

    /// The artifacts of an integration in an environment, aggregated over its
    /// runtimes, with desired values and whether each runtime is in sync.
    pub fn view(&self, store: &Store, liveness: &Liveness, scope: &Scope) -> Result<ArtifactsView> {
        let (runtimes, desired) = store.read(|tx| {
            Ok((
                tx.scope_runtimes(scope.integration_id, scope.environment_id)?,
                tx.desired_states(scope.integration_id, scope.environment_id)?,
            ))
        })?;
        let integration_wide: BTreeMap<(Kind, &str), &str> = desired
            .iter()
            .filter(|d| d.runtime_id.is_none())
            .map(|d| ((d.kind, d.artifact.as_str()), d.value.as_str()))
            .collect();
        let mut view = ArtifactsView {
            project: scope.project.clone(),
            integration: scope.integration.clone(),
            environment: scope.environment.clone(),
            in_sync: true,
            runtimes: Vec::new(),
            services: Vec::new(),
            listeners: Vec::new(),
            main: None,
            loggers: Vec::new(),
        };
        let mut services: BTreeMap<String, ServiceView> = BTreeMap::new();
        let mut listeners: BTreeMap<String, ListenerView> = BTreeMap::new();
        let mut loggers: BTreeMap<String, LoggerView> = BTreeMap::new();
        let ids = || runtimes.iter().map(|r| r.record.runtime_id.as_str());
        let (live, pending) = (liveness.statuses(ids()), self.pending_counts(ids()));
        for ((r, live), pending) in runtimes.iter().zip(live).zip(pending) {
            let rid = r.record.runtime_id.clone();
            let status = live.unwrap_or(r.record.status);
            let running = status == Status::Running;
            let wanted = effective(&desired, &rid);
            let mut runtime_in_sync = true;
            for l in &r.artifacts.listeners {
                let state = l.state.clone().unwrap_or_else(|| "enabled".into());
                let want = wanted
                    .get(&(Kind::Listener, l.name.as_str()))
                    .map(|d| d.value.clone());
                let in_sync = want.as_deref().is_none_or(|w| same(w, &state));
                runtime_in_sync &= in_sync;
                let v = listeners
                    .entry(l.name.clone())
                    .or_insert_with(|| ListenerView {
                        name: l.name.clone(),
                        package: l.package.clone(),
                        protocol: l.protocol.clone(),
                        host: l.host.clone(),
                        port: l.port,
                        desired_state: integration_wide
                            .get(&(Kind::Listener, l.name.as_str()))
                            .map(|s| s.to_string()),
                        in_sync: true,
                        runtime_ids: Vec::new(),
                        runtimes: Vec::new(),
                    });
                v.in_sync &= in_sync || !running;
                v.runtime_ids.push(rid.clone());
                v.runtimes.push(ListenerOnRuntime {
                    runtime_id: rid.clone(),
                    state,
                    desired_state: want,
                    in_sync,
                });
            }
            for (component, level) in &r.log_levels {
                let want = wanted
                    .get(&(Kind::Logger, component.as_str()))
                    .map(|d| d.value.clone());
                let in_sync = want.as_deref().is_none_or(|w| same(w, level));
                runtime_in_sync &= in_sync;
                let v = loggers
                    .entry(component.clone())
                    .or_insert_with(|| LoggerView {
                        component: component.clone(),
                        desired_level: integration_wide
                            .get(&(Kind::Logger, component.as_str()))
                            .map(|s| s.to_string()),
                        in_sync: true,
                        runtime_ids: Vec::new(),
                        runtimes: Vec::new(),
                    });
                v.in_sync &= in_sync || !running;
                v.runtime_ids.push(rid.clone());
                v.runtimes.push(LoggerOnRuntime {
                    runtime_id: rid.clone(),
                    level: level.clone(),
                    desired_level: want,
                    in_sync,
                });
            }
            for s in &r.artifacts.services {
                let v = services
                    .entry(s.name.clone())
                    .or_insert_with(|| ServiceView {
                        name: s.name.clone(),
                        base_path: s.base_path.clone(),
                        package: s.package.clone(),
                        state: s.state.clone(),
                        listeners: s.listeners.iter().map(|l| l.name.clone()).collect(),
                        resources: s
                            .resources
                            .iter()
                            .map(|res| ResourceView {
                                methods: res.methods.clone(),
                                url: res.url.clone(),
                            })
                            .collect(),
                        runtime_ids: Vec::new(),
                    });
                v.runtime_ids.push(rid.clone());
            }
            if view.main.is_none() {
                view.main = r.artifacts.main.clone();
            }
            view.in_sync &= runtime_in_sync || !running;
            view.runtimes.push(RuntimeSync {
                runtime_id: rid.clone(),
                name: r.record.name.clone(),
                status,
                in_sync: runtime_in_sync,
                pending_commands: pending,
            });
        }
        view.services = services.into_values().collect();
        view.listeners = listeners.into_values().collect();
        view.loggers = loggers.into_values().collect();
        Ok(view)
    }

    /// One page of the command log, newest first; `cursor` is the previous page's `next_cursor`.
    /// Delivery counters of PENDING commands come from memory.
    pub fn log(
        &self,
        store: &Store,
        scope: &Scope,
        limit: i64,
        cursor: Option<&str>,
    ) -> Result<CommandLog> {
        let before = match cursor {
            None => None,
            Some(c) => Some(c.parse::<i64>().ok().filter(|c| *c > 0).ok_or_else(|| {
                Error::BadRequest("cursor is not one this server returned".into())
            })?),
        };
        let (rows, total) = store.read(|tx| {
            tx.command_log(
                scope.integration_id,
                scope.environment_id,
                before,
                limit + 1,
            )
        })?;
        let more = rows.len() as i64 > limit;
        let mut items: Vec<CommandEntry> = Vec::with_capacity(rows.len());
        let table = self.table();
        for row in rows.iter().take(limit as usize) {
            let mut e = CommandEntry::from(row);
            if let Some(p) = table
                .get(&row.runtime_id)
                .and_then(|l| l.iter().find(|p| p.row.command_id == row.command_id))
            {
                e.attempts = p.row.attempts;
                e.last_sent_at = p.row.last_sent_at;
            }
            items.push(e);
        }
        let next_cursor = if more {
            rows.get(limit as usize - 1).map(|r| r.id.to_string())
        } else {
            None
        };
        Ok(CommandLog {
            items,
            total,
            next_cursor,
        })
    }
}

impl Default for Commands {
    fn default() -> Commands {
        Commands::new()
    }
}

/// One page of the command log.
#[derive(Debug, Clone)]
pub struct CommandLog {
    pub items: Vec<CommandEntry>,
    pub total: i64,
    pub next_cursor: Option<String>,
}

/// The artifacts of an integration in an environment.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactsView {
    pub project: String,
    pub integration: String,
    pub environment: String,
    /// Every RUNNING runtime reports every desired value.
    pub in_sync: bool,
    pub runtimes: Vec<RuntimeSync>,
    pub services: Vec<ServiceView>,
    pub listeners: Vec<ListenerView>,
    pub main: Option<Value>,
    pub loggers: Vec<LoggerView>,
}

/// One runtime: whether it reports every value desired of it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeSync {
    pub runtime_id: String,
    pub name: Option<String>,
    pub status: Status,
    pub in_sync: bool,
    pub pending_commands: usize,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    pub name: String,
    pub base_path: Option<String>,
    pub package: Option<String>,
    pub state: Option<String>,
    pub listeners: Vec<String>,
    pub resources: Vec<ResourceView>,
    pub runtime_ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceView {
    pub methods: Vec<String>,
    pub url: String,
}

/// A listener over all runtimes; `inSync` when every RUNNING runtime has its desired state.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerView {
    pub name: String,
    pub package: Option<String>,
    pub protocol: Option<String>,
    pub host: Option<String>,
    pub port: Option<i64>,
    /// The integration-wide desired state, if one was requested.
    pub desired_state: Option<String>,
    pub in_sync: bool,
    pub runtime_ids: Vec<String>,
    pub runtimes: Vec<ListenerOnRuntime>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerOnRuntime {
    pub runtime_id: String,
    pub state: String,
    /// What is desired of this runtime (its override, else the integration-wide value).
    pub desired_state: Option<String>,
    pub in_sync: bool,
}

/// A logger over all runtimes; `inSync` when every RUNNING runtime has its desired level.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggerView {
    pub component: String,
    pub desired_level: Option<String>,
    pub in_sync: bool,
    pub runtime_ids: Vec<String>,
    pub runtimes: Vec<LoggerOnRuntime>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggerOnRuntime {
    pub runtime_id: String,
    pub level: String,
    pub desired_level: Option<String>,
    pub in_sync: bool,
}

impl CommandRow {
    /// The command as a heartbeat response carries it (PROTOCOL.md, "Control commands").
    pub fn wire(&self) -> Value {
        let secs = self.issued_at.div_euclid(1000);
        let frac = self.issued_at.rem_euclid(1000) as f64 / 1000.0;
        let mut v = json!({
            "commandId": self.command_id,
            "runtimeId": self.runtime_id,
            "targetArtifact": {"name": self.target},
            "action": self.action,
            "issuedAt": [secs, frac],
            "status": "PENDING",
        });
        if let Some(p) = &self.payload {
            v["payload"] = Value::String(p.clone());
        }
        v
    }
}

impl ScopeRuntime {
    pub fn reported(&self) -> Reported {
        if self.record.runtime_type == "MI" {
            Reported::mi(&self.mi_artifacts, self.log_levels.clone())
        } else {
            Reported::new(Some(&self.artifacts), Some(&self.log_levels))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_are_capped() {
        assert_eq!(retry_delay(1), 10_000);
        assert_eq!(retry_delay(2), 20_000);
        assert_eq!(retry_delay(3), 40_000);
        assert_eq!(retry_delay(6), 300_000);
        assert_eq!(retry_delay(1000), 300_000);
    }

    #[test]
    fn wire_shape_matches_the_protocol() {
        let row = CommandRow {
            id: 1,
            command_id: "c".into(),
            runtime_id: "r".into(),
            integration_id: 1,
            environment_id: 1,
            kind: Kind::Logger,
            action: "SET_LOGGER_LEVEL".into(),
            target: "acme/orders".into(),
            value: "DEBUG".into(),
            payload: Some(json!({"componentName": "acme/orders", "logLevel": "DEBUG"}).to_string()),
            issued_by: "root".into(),
            issued_at: 1_795_348_810_250,
            attempts: 0,
            last_sent_at: None,
            status: CommandStatus::Pending,
            settled_at: None,
            last_error: None,
        };
        assert_eq!(
            row.wire(),
            json!({"commandId": "c", "runtimeId": "r", "targetArtifact": {"name": "acme/orders"},
                   "action": "SET_LOGGER_LEVEL", "issuedAt": [1_795_348_810i64, 0.25], "status": "PENDING",
                   "payload": "{\"componentName\":\"acme/orders\",\"logLevel\":\"DEBUG\"}"})
        );
    }

    #[test]
    fn a_runtime_override_wins_over_the_integration_wide_value() {
        let row = |rid: Option<&str>, v: &str| DesiredRow {
            kind: Kind::Listener,
            artifact: "l1".into(),
            runtime_id: rid.map(str::to_string),
            value: v.into(),
            issued_by: "u".into(),
            issued_at: 0,
        };
        let d = vec![row(None, "disabled"), row(Some("r2"), "enabled")];
        assert_eq!(
            effective(&d, "r1")[&(Kind::Listener, "l1")].value,
            "disabled"
        );
        assert_eq!(
            effective(&d, "r2")[&(Kind::Listener, "l1")].value,
            "enabled"
        );
    }

    #[test]
    fn requests_validate_values() {
        assert!(matches!(
            Request::listener("l", "paused", None),
            Err(Error::Unprocessable(_))
        ));
        assert_eq!(
            Request::listener("l", "DISABLED", None).unwrap().action(),
            "STOP"
        );
        assert_eq!(
            Request::listener("l", "enabled", None).unwrap().action(),
            "START"
        );
        assert!(matches!(
            Request::logger("c", "TRACE", None),
            Err(Error::Unprocessable(_))
        ));
        assert_eq!(Request::logger("c", "debug", None).unwrap().value, "DEBUG");
        assert!(matches!(
            Request::logger("c", "INFO", Some(vec![])),
            Err(Error::Unprocessable(_))
        ));
    }
}
