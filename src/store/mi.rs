//! The SQL of Micro Integrator artifacts: one `mi_artifacts` row per
//! (runtime, kind, name), written by difference as the bridge's artifacts
//! are (`artifacts::sync_table`), and the reads behind the runtime view, the
//! integration + environment view and the search by name.

use super::db;
use super::db::{params, OptionalExtension, Queries};
use db::Value;

use super::artifacts::{load_rows, sync_table, Rows, Table};
use super::resources::visibility_ids;
use super::{runtime_from_row, Tx, RUNTIME_COLUMNS, RUNTIME_COLUMN_COUNT, RUNTIME_JOINS_AFTER_R};
use crate::error::Result;
use crate::model::catalog::Visibility;
use crate::model::mi::{ManagementAddress, MiArtifact, MiKind};
use crate::model::runtimes::RuntimeRecord;
use crate::store::ArtifactWrites;

const MI_ARTIFACTS: Table = Table {
    name: "mi_artifacts",
    keys: &["kind", "name"],
    values: &[
        "state",
        "tracing",
        "statistics",
        "carbon_app",
        "error",
        "detail",
    ],
};

fn text(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| Value::Text(s.clone()))
}

fn opt(v: &Value) -> Option<String> {
    match v {
        Value::Text(s) => Some(s.clone()),
        _ => None,
    }
}

fn from_parts(kind: &str, name: String, v: &[Value]) -> Option<MiArtifact> {
    Some(MiArtifact {
        kind: MiKind::parse(kind)?,
        name,
        state: opt(&v[0]),
        tracing: opt(&v[1]),
        statistics: opt(&v[2]),
        carbon_app: opt(&v[3]),
        error: opt(&v[4]),
        detail: opt(&v[5])
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null),
    })
}

/// What the MI dispatcher needs to reach one runtime.
#[derive(Debug, Clone)]
pub struct MiTargetRow {
    pub runtime_id: String,
    pub management: Option<ManagementAddress>,
    pub key_id: String,
    /// The pinned certificate digest (hex), after a first contact.
    pub pin: Option<String>,
    /// Management calls travel in heartbeat responses.
    pub tunnel: bool,
    /// The environment's CA bundle for MI certificates, if configured.
    pub ca_pem: Option<String>,
}

/// An environment's MI management settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MiEnvironmentSettings {
    pub tunnel: bool,
    pub ca_pem: Option<String>,
}

/// One artifact row of one runtime of a scope.
#[derive(Debug, Clone)]
pub struct ScopedMiArtifact {
    pub runtime_id: String,
    pub artifact: MiArtifact,
}

/// One artifact found by name, with where it runs.
#[derive(Debug, Clone)]
pub struct FoundMiArtifact {
    pub runtime: RuntimeRecord,
    pub artifact: MiArtifact,
}

impl Tx<'_> {
    /// Brings a runtime's MI artifact rows in line with `artifacts`,
    /// unless `digest` (of everything reported) is the one stored: then
    /// nothing changed and nothing is written.
    pub fn sync_mi_artifacts(
        &self,
        runtime_id: &str,
        artifacts: &[MiArtifact],
        digest: &str,
    ) -> Result<ArtifactWrites> {
        let old: Option<String> = self
            .tx
            .prepare_cached("SELECT artifacts_digest FROM runtimes WHERE runtime_id = ?1")?
            .query_row([runtime_id], |r| r.get(0))
            .optional()?
            .flatten();
        if old.as_deref() == Some(digest) {
            return Ok(ArtifactWrites::default());
        }
        let mut rows = Rows::new();
        for a in artifacts {
            rows.insert(
                vec![a.kind.as_str().to_string(), a.name.clone()],
                vec![
                    text(&a.state),
                    text(&a.tracing),
                    text(&a.statistics),
                    text(&a.carbon_app),
                    text(&a.error),
                    Value::Text(a.detail.to_string()),
                ],
            );
        }
        let mut w = ArtifactWrites::default();
        sync_table(self.tx, &MI_ARTIFACTS, runtime_id, rows, &mut w)?;
        self.exec(
            "UPDATE runtimes SET artifacts_digest = ?2 WHERE runtime_id = ?1",
            params![runtime_id, digest],
        )?;
        Ok(w)
    }

    /// A runtime's MI artifacts, in the order they were first reported.
    pub fn mi_artifacts(&self, runtime_id: &str) -> Result<Vec<MiArtifact>> {
        Ok(load_rows(self.tx, &MI_ARTIFACTS, runtime_id)?
            .into_iter()
            .filter_map(|(k, v)| from_parts(&k[0], k[1].clone(), &v))
            .collect())
    }

    /// A runtime's stored logger levels (for MI: as last read from its
    /// Management API).
    pub fn log_levels(
        &self,
        runtime_id: &str,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        super::artifacts::load_log_levels(self.tx, runtime_id)
    }

    /// Replaces an MI runtime's logger levels with what its Management
    /// API just answered (MI's heartbeat does not carry them).
    pub fn set_mi_loggers(
        &self,
        runtime_id: &str,
        levels: &std::collections::BTreeMap<String, String>,
    ) -> Result<ArtifactWrites> {
        let rows: Rows = levels
            .iter()
            .map(|(k, v)| (vec![k.clone()], vec![Value::Text(v.clone())]))
            .collect();
        let mut w = ArtifactWrites::default();
        sync_table(
            self.tx,
            &super::artifacts::LOG_LEVELS,
            runtime_id,
            rows,
            &mut w,
        )?;
        Ok(w)
    }

    /// Records where a runtime's Management API is (or that it said nothing).
    pub fn set_management_address(
        &self,
        runtime_id: &str,
        address: Option<&ManagementAddress>,
    ) -> Result<()> {
        self.exec(
            "UPDATE runtimes SET management_host = ?2, management_port = ?3 \
             WHERE runtime_id = ?1 AND (management_host IS DISTINCT FROM ?2 OR management_port IS DISTINCT FROM ?3)",
            params![
                runtime_id,
                address.map(|a| a.host.as_str()),
                address.map(|a| a.port)
            ],
        )?;
        Ok(())
    }

    /// How to reach a runtime's Management API; `None` for an unknown runtime.
    pub fn mi_target(&self, runtime_id: &str) -> Result<Option<MiTargetRow>> {
        let mut st = self.tx.prepare_cached(
            "SELECT r.management_host, r.management_port, r.key_id, r.management_pin, \
                    COALESCE(r.mi_tunnel, e.mi_tunnel), e.mi_ca_pem \
             FROM runtimes r JOIN environments e ON e.id = r.environment_id WHERE r.runtime_id = ?1",
        )?;
        Ok(st
            .query_row([runtime_id], |r| {
                let host: Option<String> = r.get(0)?;
                let port: Option<i64> = r.get(1)?;
                Ok(MiTargetRow {
                    runtime_id: runtime_id.to_string(),
                    management: host
                        .zip(port.and_then(|p| u16::try_from(p).ok()))
                        .map(|(host, port)| ManagementAddress { host, port }),
                    key_id: r.get(2)?,
                    pin: r.get(3)?,
                    tunnel: r.get::<_, i64>(4)? != 0,
                    ca_pem: r.get(5)?,
                })
            })
            .optional()?)
    }

    /// Pins a runtime's Management API certificate (first contact).
    pub fn set_management_pin(&self, runtime_id: &str, pin_hex: &str) -> Result<()> {
        self.exec(
            "UPDATE runtimes SET management_pin = ?2 WHERE runtime_id = ?1 AND management_pin IS NULL",
            params![runtime_id, pin_hex],
        )?;
        Ok(())
    }

    /// Forgets a runtime's pinned certificate (an operator trusts its new one).
    pub fn clear_management_pin(&self, runtime_id: &str) -> Result<bool> {
        Ok(self.exec(
            "UPDATE runtimes SET management_pin = NULL WHERE runtime_id = ?1 AND management_pin IS NOT NULL",
            [runtime_id],
        )? == 1)
    }

    /// Chooses tunnel mode for one runtime (`None`: its environment's choice).
    pub fn set_runtime_mi_tunnel(&self, runtime_id: &str, tunnel: Option<bool>) -> Result<bool> {
        Ok(self.exec(
            "UPDATE runtimes SET mi_tunnel = ?2 WHERE runtime_id = ?1",
            params![runtime_id, tunnel],
        )? == 1)
    }

    /// An environment's MI management settings.
    pub fn mi_environment_settings(&self, environment_id: i64) -> Result<MiEnvironmentSettings> {
        let mut st = self
            .tx
            .prepare_cached("SELECT mi_tunnel, mi_ca_pem FROM environments WHERE id = ?1")?;
        Ok(st
            .query_row([environment_id], |r| {
                Ok(MiEnvironmentSettings {
                    tunnel: r.get::<_, i64>(0)? != 0,
                    ca_pem: r.get(1)?,
                })
            })
            .optional()?
            .unwrap_or_default())
    }

    /// Sets an environment's MI management settings.
    pub fn set_mi_environment_settings(
        &self,
        environment_id: i64,
        s: &MiEnvironmentSettings,
    ) -> Result<()> {
        self.exec(
            "UPDATE environments SET mi_tunnel = ?2, mi_ca_pem = ?3 WHERE id = ?1",
            params![environment_id, s.tunnel, s.ca_pem],
        )?;
        Ok(())
    }

    /// Records why the last attempt at a command failed (`None`: it did not).
    pub fn set_command_error(&self, command_id: &str, error: Option<&str>) -> Result<()> {
        self.exec(
            "UPDATE commands SET last_error = ?2 WHERE command_id = ?1 AND status = 'PENDING' \
             AND last_error IS DISTINCT FROM ?2",
            params![command_id, error],
        )?;
        Ok(())
    }

    /// Where a runtime's Management API is, as its last full heartbeat said.
    pub fn management_address(&self, runtime_id: &str) -> Result<Option<ManagementAddress>> {
        let mut st = self.tx.prepare_cached(
            "SELECT management_host, management_port FROM runtimes WHERE runtime_id = ?1",
        )?;
        let mut rows = st.query([runtime_id])?;
        let Some(r) = rows.next()? else {
            return Ok(None);
        };
        let host: Option<String> = r.get(0)?;
        let port: Option<i64> = r.get(1)?;
        Ok(host
            .zip(port.and_then(|p| u16::try_from(p).ok()))
            .map(|(host, port)| ManagementAddress { host, port }))
    }

    /// Every MI artifact of every runtime of an integration in an
    /// environment (of one kind, with one name, when given), by kind, name
    /// and runtime.
    pub fn scope_mi_artifacts(
        &self,
        integration_id: i64,
        environment_id: i64,
        kind: Option<MiKind>,
        name: Option<&str>,
    ) -> Result<Vec<ScopedMiArtifact>> {
        // With both kind and name, the equalities let SQLite look the one
        // row up in each replica's primary key instead of reading all of
        // the replica's rows (the view is polled while replicas converge).
        macro_rules! select {
            ($where:literal) => {
                concat!(
                    "SELECT a.runtime_id, a.kind, a.name, a.state, a.tracing, a.statistics, a.carbon_app, a.error, a.detail \
                     FROM mi_artifacts a JOIN runtimes r ON r.runtime_id = a.runtime_id \
                     WHERE r.integration_id = ?1 AND r.environment_id = ?2 ",
                    $where
                )
            };
        }
        let mut st = self.tx.prepare_cached(match (kind, name) {
            (Some(_), Some(_)) => select!("AND a.kind = ?3 AND a.name = ?4 ORDER BY a.runtime_id"),
            _ => select!(
                "AND (CAST(?3 AS TEXT) IS NULL OR a.kind = ?3) AND (CAST(?4 AS TEXT) IS NULL OR a.name = ?4) \
                 ORDER BY a.kind, a.name, a.runtime_id"
            ),
        })?;
        let rows = st.query_map(
            params![
                integration_id,
                environment_id,
                kind.map(MiKind::as_str),
                name
            ],
            |r| {
                let vals: Vec<Value> = (3..9).map(|i| r.get(i)).collect::<db::Result<_>>()?;
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    vals,
                ))
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (runtime_id, kind, name, vals) = row?;
            if let Some(artifact) = from_parts(&kind, name, &vals) {
                out.push(ScopedMiArtifact {
                    runtime_id,
                    artifact,
                });
            }
        }
        Ok(out)
    }

    /// The runtimes of an integration in an environment with their
    /// Management API address, by name and id: one query.
    pub fn scope_runtimes_with_address(
        &self,
        integration_id: i64,
        environment_id: i64,
    ) -> Result<Vec<(RuntimeRecord, Option<ManagementAddress>)>> {
        let sql = format!(
            "SELECT {RUNTIME_COLUMNS}, r.management_host, r.management_port \
             FROM runtimes r {RUNTIME_JOINS_AFTER_R} \
             WHERE r.integration_id = ?1 AND r.environment_id = ?2 ORDER BY r.name, r.runtime_id"
        );
        let mut st = self.tx.prepare_cached(&sql)?;
        let n = RUNTIME_COLUMN_COUNT;
        let rows = st.query_map(params![integration_id, environment_id], |r| {
            let host: Option<String> = r.get(n)?;
            let port: Option<i64> = r.get(n + 1)?;
            Ok((
                runtime_from_row(r)?,
                host.zip(port.and_then(|p| u16::try_from(p).ok()))
                    .map(|(host, port)| ManagementAddress { host, port }),
            ))
        })?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    /// The runtimes of an integration in an environment with only what an
    /// MI request about `target` (of `kind`) compares: the one artifact,
    /// or the one logger's level. A handful of queries, whatever the
    /// number of replicas (`scope_runtimes` reads everything of each).
    pub fn scope_runtimes_for_mi(
        &self,
        integration_id: i64,
        environment_id: i64,
        kind: crate::model::commands::Kind,
        target: &str,
    ) -> Result<Vec<crate::model::commands::ScopeRuntime>> {
        use crate::model::commands::{Kind, ScopeRuntime};
        let runtimes = self.scope_runtimes_with_address(integration_id, environment_id)?;
        let mut artifacts: std::collections::HashMap<String, Vec<MiArtifact>> =
            std::collections::HashMap::new();
        if let Some((k, name)) = crate::model::mi::split_artifact_key(target)
            .filter(|_| matches!(kind, Kind::MiState | Kind::MiTracing | Kind::MiStatistics))
        {
            for a in self.scope_mi_artifacts(integration_id, environment_id, Some(k), Some(name))? {
                artifacts.entry(a.runtime_id).or_default().push(a.artifact);
            }
        }
        let mut levels: std::collections::HashMap<
            String,
            std::collections::BTreeMap<String, String>,
        > = std::collections::HashMap::new();
        if kind == Kind::MiLogger {
            for (rid, logger, level) in
                self.scope_log_levels(integration_id, environment_id, Some(target))?
            {
                levels.entry(rid).or_default().insert(logger, level);
            }
        }
        Ok(runtimes
            .into_iter()
            .map(|(record, _)| ScopeRuntime {
                mi_artifacts: artifacts.remove(&record.runtime_id).unwrap_or_default(),
                log_levels: levels.remove(&record.runtime_id).unwrap_or_default(),
                artifacts: Default::default(),
                record,
            })
            .collect())
    }

    /// The logger levels of every runtime of an integration in an
    /// environment (of one logger, when given), as (runtime id, logger,
    /// level): one query.
    pub fn scope_log_levels(
        &self,
        integration_id: i64,
        environment_id: i64,
        logger: Option<&str>,
    ) -> Result<Vec<(String, String, String)>> {
        let mut st = self.tx.prepare_cached(
            "SELECT l.runtime_id, l.component, l.level FROM log_levels l \
             JOIN runtimes r ON r.runtime_id = l.runtime_id \
             WHERE r.integration_id = ?1 AND r.environment_id = ?2 AND (CAST(?3 AS TEXT) IS NULL OR l.component = ?3) \
             ORDER BY l.component, l.runtime_id",
        )?;
        let rows = st.query_map(params![integration_id, environment_id, logger], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    /// MI artifacts whose name contains `needle` (ASCII case ignored), of
    /// one kind or all, on runtimes `vis` may see, at most `limit`, with the
    /// runtime each runs on.
    pub fn search_mi_artifacts(
        &self,
        vis: &Visibility,
        needle: &str,
        kind: Option<MiKind>,
        limit: usize,
    ) -> Result<Vec<FoundMiArtifact>> {
        let sql = format!(
            "SELECT {RUNTIME_COLUMNS}, a.kind, a.name, a.state, a.tracing, a.statistics, a.carbon_app, a.error, a.detail \
             FROM mi_artifacts a JOIN runtimes r ON r.runtime_id = a.runtime_id {RUNTIME_JOINS_AFTER_R} \
             WHERE instr(lower(a.name), lower(?1)) > 0 AND (CAST(?2 AS TEXT) IS NULL OR a.kind = ?2) \
             AND (?4 OR p.id IN (SELECT value FROM json_each(?5)) OR i.id IN (SELECT value FROM json_each(?6)) \
                  OR e.id IN (SELECT value FROM json_each(?7))) \
             ORDER BY a.name, a.kind, e.handle, p.handle, i.handle, r.runtime_id LIMIT ?3"
        );
        let mut st = self.tx.prepare_cached(&sql)?;
        let (everything, projects, integrations, environments) = visibility_ids(vis);
        let n = RUNTIME_COLUMN_COUNT;
        let rows = st.query_map(
            params![
                needle,
                kind.map(MiKind::as_str),
                limit as i64,
                everything,
                projects,
                integrations,
                environments
            ],
            |r| {
                let runtime = runtime_from_row(r)?;
                let vals: Vec<Value> = (n + 2..n + 8)
                    .map(|i| r.get(i))
                    .collect::<db::Result<_>>()?;
                Ok((
                    runtime,
                    r.get::<_, String>(n)?,
                    r.get::<_, String>(n + 1)?,
                    vals,
                ))
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (runtime, kind, name, vals) = row?;
            if let Some(artifact) = from_parts(&kind, name, &vals) {
                out.push(FoundMiArtifact { runtime, artifact });
            }
        }
        Ok(out)
    }
}
