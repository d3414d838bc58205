//! The runtime registry as operators see it: records, artifacts, log levels
//! and status history, and the queries behind `icpd runtime list|show`.
//!
//! Registration itself is the bridge protocol's business (`protocol/`), and
//! liveness lives in memory (`liveness.rs`); this module holds the shared
//! types, the read side, and the operator's delete (which also forgets the
//! runtime in liveness, so it must re-register with a full heartbeat).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::access::{Permission, Principal, Target};
use crate::catalog::{normalize_handle, Keyset, Listing, Visibility};
use crate::error::{Error, Result};
use crate::liveness::Liveness;
use crate::store::Store;
use crate::time::{serialize_rfc3339, Millis};

/// Whether heartbeats are arriving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Running,
    Offline,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "RUNNING",
            Status::Offline => "OFFLINE",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        match text.to_ascii_uppercase().as_str() {
            "RUNNING" => Some(Status::Running),
            "OFFLINE" => Some(Status::Offline),
            _ => None,
        }
    }
}

/// One runtime (a node of an integration in an environment).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeRecord {
    pub runtime_id: String,
    pub name: Option<String>,
    pub status: Status,
    pub environment: String,
    pub project: String,
    pub integration: String,
    pub runtime_type: String,
    pub version: Option<String>,
    #[serde(serialize_with = "serialize_rfc3339")]
    pub last_heartbeat: Millis,
    #[serde(serialize_with = "serialize_rfc3339")]
    pub registered_at: Millis,
    #[serde(skip)]
    pub key_id: String,
    #[serde(skip)]
    pub environment_id: i64,
    #[serde(skip)]
    pub project_id: i64,
    #[serde(skip)]
    pub integration_id: i64,
    /// How it compares with what should run (filled by the runtime views).
    #[serde(flatten)]
    pub rollout: Option<Rollout>,
}

/// A runtime against its environment's deployment record and configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// The version of the current deployment record of its integration in
    /// its environment; null when there is none.
    pub deployed_version: Option<String>,
    /// Whether the version it reports differs from `deployedVersion`; null
    /// when there is no record.
    pub version_mismatch: Option<bool>,
    /// The configuration revision it last fetched (`GET /icp/config`):
    /// by its runtime id, else its node name, else its secret; null if never.
    pub config_revision: Option<i64>,
    #[serde(serialize_with = "crate::time::serialize_opt_rfc3339")]
    pub config_fetched_at: Option<Millis>,
    /// The current configuration revision of its integration in its
    /// environment; null when none was ever written.
    pub current_config_revision: Option<i64>,
    /// Whether it fetched an older revision than the current one (a restart
    /// would apply the new one); null when there is no revision or it never fetched.
    pub config_outdated: Option<bool>,
}

impl Rollout {
    /// Compares what a runtime reports and fetched with what is current.
    pub fn new(
        version: Option<&str>,
        deployed_version: Option<String>,
        fetched: Option<(i64, Millis)>,
        current_config_revision: Option<i64>,
    ) -> Rollout {
        Rollout {
            version_mismatch: deployed_version.as_deref().map(|d| version != Some(d)),
            deployed_version,
            config_revision: fetched.map(|f| f.0),
            config_fetched_at: fetched.map(|f| f.1),
            config_outdated: current_config_revision
                .zip(fetched)
                .map(|(current, (got, _))| got < current),
            current_config_revision,
        }
    }
}

/// Everything `runtime show` prints.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeDetail {
    #[serde(flatten)]
    pub runtime: RuntimeRecord,
    pub secret_key_id: String,
    pub node_info: Value,
    pub try_it_host: Option<String>,
    pub artifacts: Artifacts,
    pub log_levels: BTreeMap<String, String>,
    pub status_history: Vec<StatusChange>,
    /// An MI runtime's Management API address, as its heartbeat claims.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub management: Option<crate::mi::ManagementAddress>,
    /// An MI runtime's artifacts by kind (absent for other runtimes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mi_artifacts: Option<BTreeMap<crate::mi::MiKind, Vec<crate::mi::MiArtifact>>>,
}

/// One RUNNING/OFFLINE transition.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub status: Status,
    #[serde(serialize_with = "serialize_rfc3339")]
    pub at: Millis,
    pub reason: String,
}

/// What a runtime reports it runs. Unknown artifact kinds (Micro Integrator
/// reports APIs, proxies, ...) are kept as they came in `other`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifacts {
    #[serde(default)]
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<Value>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A listener (an HTTP port, a queue consumer, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    pub name: String,
    #[serde(default)]
    pub package: Option<String>,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<i64>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(flatten)]
    pub attributes: Map<String, Value>,
}

/// A service with its resources and the listeners it is attached to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub name: String,
    #[serde(default)]
    pub base_path: Option<String>,
    #[serde(default)]
    pub package: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub listeners: Vec<ListenerRef>,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(flatten)]
    pub attributes: Map<String, Value>,
}

/// A service's reference to a listener: `{"name": "listener_1"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerRef {
    pub name: String,
}

/// One resource (path and methods) of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    #[serde(default)]
    pub methods: Vec<String>,
    pub url: String,
    #[serde(flatten)]
    pub attributes: Map<String, Value>,
}

/// Filters of `runtime list`; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct RuntimeFilter {
    pub environment: Option<String>,
    pub project: Option<String>,
    pub integration: Option<String>,
    pub status: Option<Status>,
}

/// Runtimes matching the filter, ordered by environment, project, integration and name.
pub fn list(store: &Store, filter: &RuntimeFilter) -> Result<Vec<RuntimeRecord>> {
    let f = RuntimeFilter {
        environment: filter
            .environment
            .as_deref()
            .map(crate::catalog::normalize_handle),
        project: filter
            .project
            .as_deref()
            .map(crate::catalog::normalize_handle),
        integration: filter
            .integration
            .as_deref()
            .map(crate::catalog::normalize_handle),
        status: filter.status,
    };
    store.read(|tx| {
        let mut rows = tx.list_runtimes(&f)?;
        with_rollouts(tx, &mut rows)?;
        Ok(rows)
    })
}

/// Fills in how each runtime compares with its environment's deployment
/// record and configuration (one query for all of them).
fn with_rollouts(tx: &crate::store::Tx, rows: &mut [RuntimeRecord]) -> Result<()> {
    let ids: Vec<String> = rows.iter().map(|r| r.runtime_id.clone()).collect();
    let mut rollouts = tx.runtime_rollouts(&ids)?;
    for r in rows {
        r.rollout = rollouts.remove(&r.runtime_id);
    }
    Ok(())
}

/// How many ids an ambiguous runtime id prefix's error lists.
const PREFIX_MATCHES_SHOWN: usize = 5;

/// The runtime id that `prefix` names: the id itself or the start of
/// exactly one id. Runtime ids are UUIDs and the console shows their first
/// 8 characters, so the command line takes any unique start. (The API
/// takes exact ids only: an id in a URL names one resource.)
pub fn resolve_id(store: &Store, prefix: &str) -> Result<String> {
    if prefix.is_empty() {
        return Err(Error::BadRequest(
            "give a runtime id or its first characters; `icpd runtime list` lists them".into(),
        ));
    }
    let ids = store.read(|tx| tx.runtime_ids_with_prefix(prefix, PREFIX_MATCHES_SHOWN + 1))?;
    match ids.as_slice() {
        [] => Err(Error::NotFound(format!(
            "no runtime id starts with '{prefix}'; `icpd runtime list` lists them"
        ))),
        [only] => Ok(only.clone()),
        [exact, ..] if exact == prefix => Ok(exact.clone()),
        many => {
            let shown = &many[..many.len().min(PREFIX_MATCHES_SHOWN)];
            let count = if many.len() > PREFIX_MATCHES_SHOWN {
                format!("more than {PREFIX_MATCHES_SHOWN}")
            } else {
                many.len().to_string()
            };
            Err(Error::BadRequest(format!(
                "'{prefix}' is the start of {count} runtime ids: {}{}; type more characters of the id",
                shown.join(", "),
                if many.len() > PREFIX_MATCHES_SHOWN { ", ..." } else { "" }
            )))
        }
    }
}

/// One runtime with its artifacts, log levels and status history.
pub fn show(store: &Store, runtime_id: &str) -> Result<RuntimeDetail> {
    store.read(|tx| {
        let mut d = tx.runtime_detail(runtime_id)?.ok_or_else(|| {
            Error::NotFound(format!(
                "no runtime with id '{runtime_id}'; see `icpd runtime list`"
            ))
        })?;
        with_rollouts(tx, std::slice::from_mut(&mut d.runtime))?;
        Ok(d)
    })
}

// ---- management API ------------------------------------------------------

/// Filters of `GET /api/v1/runtimes`; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct RuntimeQuery {
    pub environment: Option<String>,
    pub project: Option<String>,
    pub integration: Option<String>,
    pub status: Option<Status>,
    /// `BI` or `MI`.
    pub runtime_type: Option<String>,
    /// Text to find in the runtime id or node name (case-insensitive).
    pub text: Option<String>,
}

/// What deleting a runtime did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeDeleted {
    pub runtime_id: String,
    /// The secret revoked with it, when asked for.
    pub revoked_secret: Option<String>,
}

fn no_runtime(runtime_id: &str) -> Error {
    Error::NotFound(format!(
        "no runtime '{runtime_id}' that you may see; GET /api/v1/runtimes lists them"
    ))
}

/// A page of the runtimes `principal` may view (`integration:view`), by runtime id.
pub fn page(
    store: &Store,
    principal: &Principal,
    query: &RuntimeQuery,
    page: &Keyset,
) -> Result<Listing<RuntimeRecord>> {
    let handle = |h: &Option<String>| h.as_deref().map(normalize_handle);
    let q = RuntimeQuery {
        environment: handle(&query.environment),
        project: handle(&query.project),
        integration: handle(&query.integration),
        ..query.clone()
    };
    let vis = Visibility::of(principal, Permission::IntegrationView);
    let (rows, total) = store.read(|tx| {
        let (mut rows, total) = tx.runtime_page(&vis, &q, page.after.as_deref(), page.limit + 1)?;
        with_rollouts(tx, &mut rows)?;
        Ok((rows, total))
    })?;
    Ok(Listing::new(rows, total, page.limit, |r| {
        r.runtime_id.clone()
    }))
}

/// A runtime as ICP's lists show it: its record, node info and (MI) the
/// Management API address it reports.
#[derive(Debug, Clone)]
pub struct RuntimeListed {
    pub record: RuntimeRecord,
    pub node_info: Value,
    pub management_host: Option<String>,
    pub management_port: Option<i64>,
}

/// Which runtimes an offset page lists, by row ids; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct RuntimeScope {
    pub environment_id: Option<i64>,
    pub project_id: Option<i64>,
    pub integration_id: Option<i64>,
    pub status: Option<Status>,
    /// `BI` or `MI`.
    pub runtime_type: Option<String>,
}

/// The runtimes `principal` may view (`integration:view`) in `scope`,
/// newest registration first: `limit` of them after `offset`, and how many
/// match. The status is the live one (the liveness table is ahead of SQLite).
pub fn offset_page(
    store: &Store,
    liveness: &Liveness,
    principal: &Principal,
    scope: &RuntimeScope,
    offset: i64,
    limit: i64,
) -> Result<(Vec<RuntimeListed>, i64)> {
    let vis = Visibility::of(principal, Permission::IntegrationView);
    let (mut rows, total) = store.runtime_offset_page(&vis, scope, offset, limit)?;
    let live = liveness.statuses(rows.iter().map(|r| r.record.runtime_id.as_str()));
    for (r, live) in rows.iter_mut().zip(live) {
        if let Some(s) = live {
            r.record.status = s;
        }
    }
    Ok((rows, total))
}

/// The access target of a runtime `principal` may view; 404 otherwise.
pub fn visible_target(store: &Store, principal: &Principal, runtime_id: &str) -> Result<Target> {
    store
        .read(|tx| tx.runtime_target(runtime_id))?
        .filter(|t| principal.has(Permission::IntegrationView, t))
        .ok_or_else(|| no_runtime(runtime_id))
}

/// Deletes a runtime from SQLite and from the liveness table, so its next
/// delta heartbeat is told to send a full one. With `revoke_secret`, also
/// revokes its secret, unless another runtime still uses it (a conflict;
/// nothing is deleted then).
pub fn delete(
    store: &Store,
    liveness: &Liveness,
    runtime_id: &str,
    revoke_secret: bool,
    now: Millis,
) -> Result<RuntimeDeleted> {
    let deleted = store.write(|tx| {
        let r = tx.runtime(runtime_id)?.ok_or_else(|| no_runtime(runtime_id))?;
        let mut revoked_secret = None;
        if revoke_secret {
            let others: Vec<String> = tx
                .runtimes_using_key(&r.key_id)?
                .into_iter()
                .filter(|id| id != runtime_id)
                .collect();
            if !others.is_empty() {
                return Err(Error::Conflict(format!(
                    "secret {} is also used by runtime(s) {}; delete without revokeSecret, or delete those first",
                    r.key_id,
                    others.join(", ")
                )));
            }
            tx.revoke_secret(&r.key_id, now)?;
            revoked_secret = Some(r.key_id.clone());
        }
        tx.delete_runtime(runtime_id)?;
        Ok(RuntimeDeleted {
            runtime_id: runtime_id.to_string(),
            revoked_secret,
        })
    })?;
    liveness.remove(runtime_id);
    Ok(deleted)
}
