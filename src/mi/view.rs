//! What operators see of the MI runtimes of an integration in an
//! environment: every artifact (by kind and name) with what each replica
//! reports, what is desired of it, and whether the replicas are in sync;
//! and the search for MI artifacts by name across everything a principal
//! may view.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{artifact_key, ManagementAddress, MiArtifact, MiKind};
use crate::access::{Permission, Principal};
use crate::catalog::Visibility;
use crate::commands::{effective, same, Commands, Kind, Scope};
use crate::error::{Error, Result};
use crate::liveness::Liveness;
use crate::runtimes::{RuntimeRecord, Status};
use crate::store::Store;

/// Desired values of one artifact (integration-wide); `None` = not set.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Desired {
    pub state: Option<String>,
    pub tracing: Option<String>,
    pub statistics: Option<String>,
}

/// Which controls MI offers for an artifact.
#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Controls {
    pub state: bool,
    pub tracing: bool,
    pub statistics: bool,
}

/// One replica's view of an artifact.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnRuntime {
    pub runtime_id: String,
    pub state: Option<String>,
    pub tracing: Option<String>,
    pub statistics: Option<String>,
    pub error: Option<String>,
    /// What is desired of this replica (its override, else integration-wide).
    pub desired: Desired,
    /// The replica reports every value desired of it.
    pub in_sync: bool,
}

/// One artifact across the replicas that report it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactView {
    pub kind: MiKind,
    pub name: String,
    pub carbon_app: Option<String>,
    /// The first error a replica reports for it (faulty carbon app, ...).
    pub error: Option<String>,
    pub controls: Controls,
    pub desired: Desired,
    /// Every RUNNING replica reports every desired value.
    pub in_sync: bool,
    /// The replicas do not all report the same state, tracing and statistics.
    pub replicas_differ: bool,
    /// The entry as the first replica reported it.
    pub detail: Value,
    pub runtimes: Vec<OnRuntime>,
}

/// One replica.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeView {
    pub runtime_id: String,
    pub name: Option<String>,
    pub status: Status,
    pub management: Option<ManagementAddress>,
    /// Why the reported Management API address is doubtful: a loopback
    /// address (MI's default hostname is `localhost`), or one another
    /// replica reports too (calls may reach the wrong replica; MI.md
    /// suggests tunnel mode there).
    pub management_warning: Option<String>,
    pub in_sync: bool,
    pub pending_commands: usize,
}

/// One logger across replicas (levels as last read from each runtime).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggerView {
    pub logger: String,
    pub desired_level: Option<String>,
    pub in_sync: bool,
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

/// The MI artifacts of an integration in an environment.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScopeView {
    pub project: String,
    pub integration: String,
    pub environment: String,
    pub in_sync: bool,
    pub runtimes: Vec<RuntimeView>,
    pub artifacts: Vec<ArtifactView>,
    pub loggers: Vec<LoggerView>,
}

fn desired_of(wanted: &BTreeMap<(Kind, &str), &crate::commands::DesiredRow>, key: &str) -> Desired {
    let get = |k: Kind| wanted.get(&(k, key)).map(|d| d.value.clone());
    Desired {
        state: get(Kind::MiState),
        tracing: get(Kind::MiTracing),
        statistics: get(Kind::MiStatistics),
    }
}

fn matches(want: &Option<String>, have: &Option<String>) -> bool {
    match (want, have) {
        (None, _) => true,
        (Some(w), Some(h)) => same(w, h),
        (Some(_), None) => false,
    }
}

/// Whether `a` is loopback, or shared with other runtimes (`shared`: how
/// many of the scope's runtimes report it).
fn address_warning(a: &ManagementAddress, shared: usize) -> Option<String> {
    if shared > 1 {
        return Some(format!(
            "{} runtimes report {}:{} as their Management API: icpd's calls may reach another replica; give each a distinct [server] hostname or use tunnel mode",
            shared, a.host, a.port
        ));
    }
    let host = a.host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    loopback.then(|| {
        format!(
            "{} is a loopback address: icpd reaches this runtime only if it runs on icpd's host; set [server] hostname in its deployment.toml or use tunnel mode",
            a.host
        )
    })
}

/// What one replica reports: its artifacts, and its loggers with levels.
type Reports<'a> = (Vec<&'a MiArtifact>, Vec<(&'a str, &'a str)>);

/// Narrows a [`scope_view`] to one kind, or one artifact (then without loggers).
#[derive(Debug, Clone, Copy, Default)]
pub struct Only<'a> {
    pub kind: Option<MiKind>,
    pub name: Option<&'a str>,
}

/// The view of `scope`: artifacts ordered by kind and name, replicas by name.
pub fn scope_view(
    store: &Store,
    liveness: &Liveness,
    commands: &Commands,
    scope: &Scope,
    only: Only,
) -> Result<ScopeView> {
    // Four queries, whatever the number of replicas: this view is polled
    // while hundreds of replicas converge, and every read holds the
    // connection full heartbeats write through.
    let (runtimes, desired, rows, levels) = store.read(|tx| {
        Ok((
            tx.scope_runtimes_with_address(scope.integration_id, scope.environment_id)?,
            tx.desired_states(scope.integration_id, scope.environment_id)?,
            tx.scope_mi_artifacts(
                scope.integration_id,
                scope.environment_id,
                only.kind,
                only.name,
            )?,
            if only.kind.is_none() && only.name.is_none() {
                tx.scope_log_levels(scope.integration_id, scope.environment_id, None)?
            } else {
                Vec::new()
            },
        ))
    })?;
    let addresses: BTreeMap<String, ManagementAddress> = runtimes
        .iter()
        .filter_map(|(r, a)| a.clone().map(|a| (r.runtime_id.clone(), a)))
        .collect();
    let mut sharing: BTreeMap<(&str, u16), usize> = BTreeMap::new();
    for a in addresses.values() {
        *sharing.entry((a.host.as_str(), a.port)).or_default() += 1;
    }
    let mut per_runtime: BTreeMap<&str, Reports> = BTreeMap::new();
    for row in &rows {
        per_runtime
            .entry(row.runtime_id.as_str())
            .or_default()
            .0
            .push(&row.artifact);
    }
    for (rid, logger, level) in &levels {
        per_runtime
            .entry(rid.as_str())
            .or_default()
            .1
            .push((logger.as_str(), level.as_str()));
    }
    let no_runtime = effective(&desired, "");
    let mut artifacts: BTreeMap<(MiKind, String), ArtifactView> = BTreeMap::new();
    let mut loggers: BTreeMap<String, LoggerView> = BTreeMap::new();
    let mut view = ScopeView {
        project: scope.project.clone(),
        integration: scope.integration.clone(),
        environment: scope.environment.clone(),
        in_sync: true,
        runtimes: Vec::new(),
        artifacts: Vec::new(),
        loggers: Vec::new(),
    };
    let empty = (Vec::new(), Vec::new());
    let mi: Vec<&RuntimeRecord> = runtimes
        .iter()
        .map(|(r, _)| r)
        .filter(|r| r.runtime_type == "MI")
        .collect();
    let ids = || mi.iter().map(|r| r.runtime_id.as_str());
    let live = liveness.statuses(ids());
    let pending = commands.pending_counts(ids());
    for ((record, live), pending) in mi.into_iter().zip(live).zip(pending) {
        let rid = &record.runtime_id;
        let (mi_artifacts, log_levels) = per_runtime.get(rid.as_str()).unwrap_or(&empty);
        let status = live.unwrap_or(record.status);
        let running = status == Status::Running;
        let wanted = effective(&desired, rid);
        let mut runtime_in_sync = true;
        for a in mi_artifacts {
            let key = artifact_key(a.kind, &a.name);
            let want = desired_of(&wanted, &key);
            let in_sync = matches(&want.state, &a.state)
                && matches(&want.tracing, &a.tracing)
                && matches(&want.statistics, &a.statistics);
            runtime_in_sync &= in_sync;
            let v = artifacts
                .entry((a.kind, a.name.clone()))
                .or_insert_with(|| ArtifactView {
                    kind: a.kind,
                    name: a.name.clone(),
                    carbon_app: a.carbon_app.clone(),
                    error: None,
                    controls: Controls {
                        state: a.kind.has_status(),
                        tracing: a.kind.has_tracing(),
                        statistics: a.kind.has_statistics()
                            && (a.kind != MiKind::Template
                                || a.detail.get("type").and_then(Value::as_str)
                                    == Some("sequence")),
                    },
                    desired: desired_of(&no_runtime, &key),
                    in_sync: true,
                    replicas_differ: false,
                    detail: a.detail.clone(),
                    runtimes: Vec::new(),
                });
            if v.error.is_none() {
                v.error = a.error.clone();
            }
            if let Some(first) = v.runtimes.first() {
                if (&first.state, &first.tracing, &first.statistics)
                    != (&a.state, &a.tracing, &a.statistics)
                {
                    v.replicas_differ = true;
                }
            }
            v.in_sync &= in_sync || !running;
            v.runtimes.push(OnRuntime {
                runtime_id: rid.clone(),
                state: a.state.clone(),
                tracing: a.tracing.clone(),
                statistics: a.statistics.clone(),
                error: a.error.clone(),
                desired: want,
                in_sync,
            });
        }
        for (logger, level) in log_levels {
            let want = wanted
                .get(&(Kind::MiLogger, *logger))
                .map(|d| d.value.clone());
            let in_sync = want.as_deref().is_none_or(|w| same(w, level));
            runtime_in_sync &= in_sync;
            let v = loggers
                .entry(logger.to_string())
                .or_insert_with(|| LoggerView {
                    logger: logger.to_string(),
                    desired_level: no_runtime
                        .get(&(Kind::MiLogger, *logger))
                        .map(|d| d.value.clone()),
                    in_sync: true,
                    runtimes: Vec::new(),
                });
            v.in_sync &= in_sync || !running;
            v.runtimes.push(LoggerOnRuntime {
                runtime_id: rid.clone(),
                level: level.to_string(),
                desired_level: want,
                in_sync,
            });
        }
        view.in_sync &= runtime_in_sync || !running;
        view.runtimes.push(RuntimeView {
            runtime_id: rid.clone(),
            name: record.name.clone(),
            status,
            management: addresses.get(rid).cloned(),
            management_warning: addresses
                .get(rid)
                .and_then(|a| address_warning(a, sharing[&(a.host.as_str(), a.port)])),
            in_sync: runtime_in_sync,
            pending_commands: pending,
        });
    }
    view.artifacts = artifacts.into_values().collect();
    view.loggers = loggers.into_values().collect();
    Ok(view)
}

/// One search hit: an artifact and where it runs.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Found {
    pub kind: MiKind,
    pub name: String,
    pub project: String,
    pub integration: String,
    pub environment: String,
    pub runtime_id: String,
    pub runtime_name: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

/// The most search hits one request returns.
pub const MAX_SEARCH_RESULTS: usize = 500;

/// MI artifacts whose name contains `q` (case ignored), of one kind or
/// all, on the runtimes `principal` may view (`integration:view`).
pub fn search(
    store: &Store,
    principal: &Principal,
    q: &str,
    kind: Option<&str>,
    limit: usize,
) -> Result<Vec<Found>> {
    if q.trim().is_empty() {
        return Err(Error::BadRequest(
            "q must name what to search for (part of an artifact name)".into(),
        ));
    }
    let kind = kind.map(MiKind::parse_or_refuse).transpose()?;
    let vis = Visibility::of(principal, Permission::IntegrationView);
    let rows = store
        .read(|tx| tx.search_mi_artifacts(&vis, q.trim(), kind, limit.min(MAX_SEARCH_RESULTS)))?;
    Ok(rows
        .into_iter()
        .map(|f| Found {
            kind: f.artifact.kind,
            name: f.artifact.name,
            project: f.runtime.project,
            integration: f.runtime.integration,
            environment: f.runtime.environment,
            runtime_id: f.runtime.runtime_id,
            runtime_name: f.runtime.name,
            state: f.artifact.state,
            error: f.artifact.error,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::{address_warning, ManagementAddress};

    #[test]
    fn an_address_is_doubtful_when_shared_or_loopback() {
        let at = |host: &str| ManagementAddress {
            host: host.into(),
            port: 9164,
        };
        let shared = address_warning(&at("10.0.0.5"), 3).unwrap();
        assert!(
            shared.starts_with("3 runtimes report 10.0.0.5:9164"),
            "{shared}"
        );
        for host in ["127.0.0.1", "localhost", "[::1]", "127.1.2.3"] {
            let w = address_warning(&at(host), 1).unwrap();
            assert!(w.contains("loopback"), "{host}: {w}");
        }
        assert_eq!(address_warning(&at("mi-1.internal"), 1), None);
        assert_eq!(address_warning(&at("10.0.0.5"), 1), None);
    }
}
