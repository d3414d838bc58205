//! The SQL of Micro Integrator artifacts: one `mi_artifacts` row per
//! (runtime, kind, name), written by difference as the bridge's artifacts
//! are (`artifacts::sync_table`), and the reads behind the runtime view, the
//! integration + environment view and the search by name.

use rusqlite::types::Value;
use rusqlite::{params, OptionalExtension};

use super::artifacts::{load_rows, sync_table, Rows, Table};
use super::resources::visibility_ids;
use super::{runtime_from_row, Tx, RUNTIME_COLUMNS, RUNTIME_COLUMN_COUNT, RUNTIME_JOINS_AFTER_R};
use crate::catalog::Visibility;
use crate::error::Result;
use crate::mi::{ManagementAddress, MiArtifact, MiKind};
use crate::runtimes::RuntimeRecord;
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
        sync_table(&self.tx, &MI_ARTIFACTS, runtime_id, rows, &mut w)?;
        self.exec(
            "UPDATE runtimes SET artifacts_digest = ?2 WHERE runtime_id = ?1",
            params![runtime_id, digest],
        )?;
        Ok(w)
    }

    /// A runtime's MI artifacts, in the order they were first reported.
    pub fn mi_artifacts(&self, runtime_id: &str) -> Result<Vec<MiArtifact>> {
        Ok(load_rows(&self.tx, &MI_ARTIFACTS, runtime_id)?
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
        super::artifacts::load_log_levels(&self.tx, runtime_id)
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
            &self.tx,
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
             WHERE runtime_id = ?1 AND (management_host IS NOT ?2 OR management_port IS NOT ?3)",
            params![
                runtime_id,
                address.map(|a| a.host.as_str()),
                address.map(|a| a.port)
            ],
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
    /// environment, by kind, name and runtime.
    pub fn scope_mi_artifacts(
        &self,
        integration_id: i64,
        environment_id: i64,
    ) -> Result<Vec<ScopedMiArtifact>> {
        let mut st = self.tx.prepare_cached(
            "SELECT a.runtime_id, a.kind, a.name, a.state, a.tracing, a.statistics, a.carbon_app, a.error, a.detail \
             FROM mi_artifacts a JOIN runtimes r ON r.runtime_id = a.runtime_id \
             WHERE r.integration_id = ?1 AND r.environment_id = ?2 \
             ORDER BY a.kind, a.name, a.runtime_id",
        )?;
        let rows = st.query_map(params![integration_id, environment_id], |r| {
            let vals: Vec<Value> = (3..9).map(|i| r.get(i)).collect::<rusqlite::Result<_>>()?;
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                vals,
            ))
        })?;
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
             WHERE instr(lower(a.name), lower(?1)) > 0 AND (?2 IS NULL OR a.kind = ?2) \
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
                    .collect::<rusqlite::Result<_>>()?;
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
