//! The SQL behind the management API's resources: the catalog with
//! descriptions, projects' environment subsets, filtered keyset pages of
//! projects, integrations, runtimes and secrets, and deletions.
//!
//! A list takes a [`Visibility`] (the ids a principal holds a permission
//! on, bound as JSON arrays and read with `json_each`) and filters in SQL,
//! so a page and its `total` count the same rows. Each list has one WHERE
//! clause, used twice: with the cursor for the page (the caller asks for
//! one row more than it shows, to learn whether another page follows) and
//! without it for the total. The runtime list, the one that grows to tens
//! of thousands of rows, builds its clause from the filters given, so that
//! each can use an index. Deleting a project, integration or
//! environment also deletes the role assignments scoped to it, so a later
//! object that reuses the row id does not inherit them.

use super::db;
use super::db::{params, params_from_iter, OptionalExtension, Queries, Row};
use db::Value as SqlValue;

use super::{
    runtime_from_row, secret_from_row, Tx, RUNTIME_COLUMNS, RUNTIME_COLUMN_COUNT, RUNTIME_JOINS,
    RUNTIME_JOINS_AFTER_R, SECRET_SELECT,
};
use crate::error::Result;
use crate::model::access::Target;
use crate::model::catalog::{EnvironmentInfo, IntegrationInfo, ProjectInfo, Visibility};
use crate::model::runtimes::{RuntimeListed, RuntimeQuery, RuntimeRecord, RuntimeScope, Status};
use crate::model::secrets::{SecretQuery, StoredSecret};
use crate::time::Millis;

/// A [`Visibility`] as bound parameters: everything, then JSON arrays of
/// project, integration and environment ids.
pub(super) fn visibility_ids(v: &Visibility) -> (bool, String, String, String) {
    let json = |ids: &[i64]| serde_json::Value::from(ids.to_vec()).to_string();
    (
        v.everything,
        json(&v.projects),
        json(&v.integrations),
        json(&v.environments),
    )
}

const ENV_COLUMNS: &str = "e.id, e.handle, e.name, e.critical, e.description, e.created_at, \
     (SELECT d.handle FROM data_planes d WHERE d.id = e.data_plane_id), \
     COALESCE(e.required_approvals, CASE WHEN e.critical <> 0 THEN 1 ELSE 0 END)";

fn env_info(r: &Row) -> db::Result<EnvironmentInfo> {
    Ok(EnvironmentInfo {
        id: r.get(0)?,
        handle: r.get(1)?,
        name: r.get(2)?,
        critical: r.get(3)?,
        description: r.get(4)?,
        created_at: r.get(5)?,
        data_plane: r.get(6)?,
        required_approvals: r.get(7)?,
    })
}

const PROJECT_COLUMNS: &str = "id, handle, name, description, created_at";

fn project_info(r: &Row) -> db::Result<ProjectInfo> {
    Ok(ProjectInfo {
        id: r.get(0)?,
        handle: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        created_at: r.get(4)?,
    })
}

const INTEGRATION_SELECT: &str = "SELECT i.id, i.project_id, p.handle, i.handle, i.name, \
     i.runtime_type, i.description, i.created_at FROM integrations i JOIN projects p ON p.id = i.project_id";

fn integration_info(r: &Row) -> db::Result<IntegrationInfo> {
    Ok(IntegrationInfo {
        id: r.get(0)?,
        project_id: r.get(1)?,
        project: r.get(2)?,
        handle: r.get(3)?,
        name: r.get(4)?,
        runtime_type: r.get(5)?,
        description: r.get(6)?,
        created_at: r.get(7)?,
    })
}

/// Projects: visible (?1 everything, ?2 project ids), text ?3, after handle ?4.
const PROJECT_WHERE: &str = "(?1 OR id IN (SELECT value FROM json_each(?2))) \
     AND (CAST(?3 AS TEXT) IS NULL OR instr(lower(handle), lower(?3)) > 0 OR instr(lower(name), lower(?3)) > 0) \
     AND (CAST(?4 AS TEXT) IS NULL OR handle > ?4)";

/// Integrations of project ?1: visible (?2 everything, ?3 project ids, ?4
/// integration ids), text ?5, after handle ?6.
const INTEGRATION_WHERE: &str = "i.project_id = ?1 \
     AND (?2 OR i.project_id IN (SELECT value FROM json_each(?3)) OR i.id IN (SELECT value FROM json_each(?4))) \
     AND (CAST(?5 AS TEXT) IS NULL OR instr(lower(i.handle), lower(?5)) > 0 OR instr(lower(i.name), lower(?5)) > 0) \
     AND (CAST(?6 AS TEXT) IS NULL OR i.handle > ?6)";

/// Runtimes: visible (?1..?4), environment ?5, project ?6, integration ?7,
/// status ?8, type ?9, text ?10, after runtime id ?11.
/// The conditions of a runtime list, with their parameters in order. Only
/// the filters given are in the SQL, so that SQLite can use an index for
/// each (`?n IS NULL OR ...` would hide them from the planner), and a count
/// without visibility or handle filters needs no joins (foreign keys
/// guarantee every runtime its environment, integration and project).
/// Each distinct combination is its own cached statement.
struct RuntimeFilter {
    conditions: Vec<&'static str>,
    params: Vec<SqlValue>,
    needs_joins: bool,
}

impl RuntimeFilter {
    fn add<const N: usize>(&mut self, condition: &'static str, params: [SqlValue; N]) {
        self.conditions.push(condition);
        self.params.extend(params);
    }

    fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }
}

fn runtime_filter(vis: &Visibility, q: &RuntimeQuery) -> RuntimeFilter {
    let mut f = RuntimeFilter {
        conditions: Vec::new(),
        params: Vec::new(),
        needs_joins: false,
    };
    let text = |s: &Option<String>| s.clone().map(SqlValue::from);
    if !vis.everything {
        let (_, p, i, e) = visibility_ids(vis);
        f.add(
            "(p.id IN (SELECT value FROM json_each(?)) OR i.id IN (SELECT value FROM json_each(?)) \
             OR e.id IN (SELECT value FROM json_each(?)))",
            [p.into(), i.into(), e.into()],
        );
        f.needs_joins = true;
    }
    for (condition, value) in [
        ("e.handle = ?", text(&q.environment)),
        ("p.handle = ?", text(&q.project)),
        ("i.handle = ?", text(&q.integration)),
    ] {
        if let Some(v) = value {
            f.add(condition, [v]);
            f.needs_joins = true;
        }
    }
    if let Some(s) = q.status {
        f.add("r.status = ?", [SqlValue::from(s.as_str().to_string())]);
    }
    if let Some(t) = text(&q.runtime_type) {
        f.add("r.runtime_type = ?", [t]);
    }
    if let Some(t) = text(&q.text) {
        f.add(
            "(instr(lower(r.runtime_id), lower(?)) > 0 OR instr(lower(COALESCE(r.name, '')), lower(?)) > 0)",
            [t.clone(), t],
        );
    }
    f
}

/// Secrets: visible (?1..?4), environment ?5, project ?6, integration ?7,
/// status ?8 at time ?9, after (created ?10, key id ?11) newest first.
const SECRET_WHERE: &str = "(?1 OR s.project_id IN (SELECT value FROM json_each(?2)) \
       OR s.integration_id IN (SELECT value FROM json_each(?3)) \
       OR s.environment_id IN (SELECT value FROM json_each(?4))) \
     AND (CAST(?5 AS TEXT) IS NULL OR e.handle = ?5) AND (CAST(?6 AS TEXT) IS NULL OR p.handle = ?6) AND (CAST(?7 AS TEXT) IS NULL OR i.handle = ?7) \
     AND (CAST(?8 AS TEXT) IS NULL \
       OR (?8 = 'revoked' AND s.revoked_at IS NOT NULL) \
       OR (?8 = 'expired' AND s.revoked_at IS NULL AND s.expires_at <= ?9) \
       OR (?8 = 'active' AND s.revoked_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > ?9))) \
     AND (CAST(?10 AS BIGINT) IS NULL OR s.created_at < ?10 OR (s.created_at = ?10 AND s.key_id > ?11))";

impl Tx<'_> {
    // ---- environments -------------------------------------------------

    /// Up to `limit` environments after id `after`, in creation order, and how many there are.
    pub fn environment_page(
        &self,
        after: Option<i64>,
        limit: i64,
    ) -> Result<(Vec<EnvironmentInfo>, i64)> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {ENV_COLUMNS} FROM environments e WHERE (CAST(?1 AS BIGINT) IS NULL OR e.id > ?1) ORDER BY e.id LIMIT ?2"
        ))?;
        let rows = st
            .query_map(params![after, limit], env_info)?
            .collect::<db::Result<_>>()?;
        let total = self
            .tx
            .query_row("SELECT COUNT(*) FROM environments", [], |r| r.get(0))?;
        Ok((rows, total))
    }

    /// Every environment in the order of the default pipeline.
    pub fn all_environments(&self) -> Result<Vec<EnvironmentInfo>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {ENV_COLUMNS} FROM environments e ORDER BY e.pipeline_position, e.id"
        ))?;
        let rows = st.query_map([], env_info)?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    /// Moves environment `id` in the default pipeline to just before
    /// environment `before`, shifting `before` and what follows it.
    pub fn move_environment_before(&self, id: i64, before: i64) -> Result<()> {
        let at: i64 = self.row(
            "SELECT pipeline_position FROM environments WHERE id = ?1",
            [before],
            |r| r.get(0),
        )?;
        self.exec(
            "UPDATE environments SET pipeline_position = pipeline_position + 1 \
             WHERE pipeline_position >= ?1 AND id != ?2",
            params![at, id],
        )?;
        self.exec(
            "UPDATE environments SET pipeline_position = ?1 WHERE id = ?2",
            params![at, id],
        )?;
        Ok(())
    }

    /// How many projects have chosen their own subset of environments.
    pub fn projects_with_own_pipeline(&self) -> Result<i64> {
        Ok(self.row(
            "SELECT COUNT(DISTINCT project_id) FROM project_environments",
            [],
            |r| r.get(0),
        )?)
    }

    /// One environment by row id.
    pub fn environment_by_id(&self, id: i64) -> Result<Option<EnvironmentInfo>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {ENV_COLUMNS} FROM environments e WHERE e.id = ?1"
        ))?;
        Ok(st.query_row([id], env_info).optional()?)
    }

    /// One project by row id.
    pub fn project_by_id(&self, id: i64) -> Result<Option<ProjectInfo>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ?1"
        ))?;
        Ok(st.query_row([id], project_info).optional()?)
    }

    /// One integration by row id.
    pub fn integration_by_id(&self, id: i64) -> Result<Option<IntegrationInfo>> {
        let mut st = self
            .tx
            .prepare_cached(&format!("{INTEGRATION_SELECT} WHERE i.id = ?1"))?;
        Ok(st.query_row([id], integration_info).optional()?)
    }

    pub fn environment_info(&self, handle: &str) -> Result<Option<EnvironmentInfo>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {ENV_COLUMNS} FROM environments e WHERE e.handle = ?1"
        ))?;
        Ok(st.query_row([handle], env_info).optional()?)
    }

    pub fn insert_environment_info(
        &self,
        handle: &str,
        name: &str,
        critical: bool,
        description: &str,
        data_plane_id: i64,
        now: Millis,
    ) -> Result<i64> {
        self.exec(
            "INSERT INTO environments (handle, name, critical, description, data_plane_id, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![handle, name, critical, description, data_plane_id, now],
        )?;
        Ok(self.tx.last_insert_rowid()?)
    }

    pub fn update_environment(
        &self,
        id: i64,
        name: &str,
        critical: bool,
        description: &str,
    ) -> Result<()> {
        self.exec(
            "UPDATE environments SET name = ?2, critical = ?3, description = ?4 WHERE id = ?1",
            params![id, name, critical, description],
        )?;
        Ok(())
    }

    /// Sets how many approvals a promotion into an environment needs
    /// (`None`: the default for its criticality).
    pub fn set_required_approvals(&self, id: i64, n: Option<i64>) -> Result<()> {
        self.exec(
            "UPDATE environments SET required_approvals = ?2 WHERE id = ?1",
            params![id, n],
        )?;
        Ok(())
    }

    /// (runtimes, secrets usable at `now`) in an environment.
    pub fn environment_use(&self, id: i64, now: Millis) -> Result<(i64, i64)> {
        let runtimes = self.row(
            "SELECT COUNT(*) FROM runtimes WHERE environment_id = ?1",
            [id],
            |r| r.get(0),
        )?;
        let secrets = self.row(
            "SELECT COUNT(*) FROM secrets WHERE environment_id = ?1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > ?2)",
            params![id, now],
            |r| r.get(0),
        )?;
        Ok((runtimes, secrets))
    }

    /// Deletes an environment with its (revoked or expired) secrets; the caller checked it is unused.
    pub fn delete_environment(&self, id: i64) -> Result<()> {
        self.tx
            .execute("DELETE FROM secrets WHERE environment_id = ?1", [id])?;
        self.exec(
            "DELETE FROM role_assignments WHERE scope_type = 'environment' AND scope_id = ?1",
            [id],
        )?;
        self.tx
            .execute("DELETE FROM environments WHERE id = ?1", [id])?;
        Ok(())
    }

    // ---- projects ------------------------------------------------------

    /// Up to `limit` visible projects after handle `after`, and how many match.
    pub fn project_page(
        &self,
        vis: &Visibility,
        text: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<ProjectInfo>, i64)> {
        let (all, p, _, _) = visibility_ids(vis);
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE {PROJECT_WHERE} ORDER BY handle LIMIT ?5"
        ))?;
        let rows = st
            .query_map(params![all, p, text, after, limit], project_info)?
            .collect::<db::Result<_>>()?;
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT COUNT(*) FROM projects WHERE {PROJECT_WHERE}"
        ))?;
        let total = st.query_row(params![all, p, text, None::<&str>], |r| r.get(0))?;
        Ok((rows, total))
    }

    pub fn project_info(&self, handle: &str) -> Result<Option<ProjectInfo>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE handle = ?1"
        ))?;
        Ok(st.query_row([handle], project_info).optional()?)
    }

    pub fn insert_project_info(
        &self,
        handle: &str,
        name: &str,
        description: &str,
        now: Millis,
    ) -> Result<i64> {
        self.exec(
            "INSERT INTO projects (handle, name, description, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![handle, name, description, now],
        )?;
        Ok(self.tx.last_insert_rowid()?)
    }

    pub fn update_project(&self, id: i64, name: &str, description: &str) -> Result<()> {
        self.exec(
            "UPDATE projects SET name = ?2, description = ?3 WHERE id = ?1",
            params![id, name, description],
        )?;
        Ok(())
    }

    pub fn integration_count(&self, project_id: i64) -> Result<i64> {
        Ok(self.row(
            "SELECT COUNT(*) FROM integrations WHERE project_id = ?1",
            [project_id],
            |r| r.get(0),
        )?)
    }

    /// Deletes a project without integrations (its environment subset goes by cascade).
    pub fn delete_project(&self, id: i64) -> Result<()> {
        self.exec(
            "DELETE FROM role_assignments WHERE scope_type = 'project' AND scope_id = ?1",
            [id],
        )?;
        self.tx
            .execute("DELETE FROM projects WHERE id = ?1", [id])?;
        Ok(())
    }

    /// The project's chosen environments in order; empty when none were chosen.
    pub fn project_environments(&self, project_id: i64) -> Result<Vec<EnvironmentInfo>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {ENV_COLUMNS} FROM project_environments pe JOIN environments e ON e.id = pe.environment_id \
             WHERE pe.project_id = ?1 ORDER BY pe.position"
        ))?;
        let rows = st.query_map([project_id], env_info)?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    pub fn set_project_environments(&self, project_id: i64, environments: &[i64]) -> Result<()> {
        self.exec(
            "DELETE FROM project_environments WHERE project_id = ?1",
            [project_id],
        )?;
        let mut st = self.tx.prepare_cached(
            "INSERT INTO project_environments (project_id, environment_id, position) VALUES (?1, ?2, ?3)",
        )?;
        for (pos, env) in environments.iter().enumerate() {
            st.execute(params![project_id, env, pos as i64])?;
        }
        Ok(())
    }

    // ---- integrations --------------------------------------------------

    /// Up to `limit` visible integrations of a project after handle `after`, and how many match.
    pub fn integration_page(
        &self,
        project_id: i64,
        vis: &Visibility,
        text: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<IntegrationInfo>, i64)> {
        let (all, p, i, _) = visibility_ids(vis);
        let mut st = self.tx.prepare_cached(&format!(
            "{INTEGRATION_SELECT} WHERE {INTEGRATION_WHERE} ORDER BY i.handle LIMIT ?7"
        ))?;
        let rows = st
            .query_map(
                params![project_id, all, p, i, text, after, limit],
                integration_info,
            )?
            .collect::<db::Result<_>>()?;
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT COUNT(*) FROM integrations i WHERE {INTEGRATION_WHERE}"
        ))?;
        let total = st.query_row(params![project_id, all, p, i, text, None::<&str>], |r| {
            r.get(0)
        })?;
        Ok((rows, total))
    }

    pub fn integration_info(&self, project: &str, handle: &str) -> Result<Option<IntegrationInfo>> {
        let mut st = self.tx.prepare_cached(&format!(
            "{INTEGRATION_SELECT} WHERE p.handle = ?1 AND i.handle = ?2"
        ))?;
        Ok(st
            .query_row(params![project, handle], integration_info)
            .optional()?)
    }

    pub fn insert_integration_info(
        &self,
        project_id: i64,
        handle: &str,
        name: &str,
        runtime_type: &str,
        description: &str,
        now: Millis,
    ) -> Result<i64> {
        self.exec(
            "INSERT INTO integrations (project_id, handle, name, runtime_type, description, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![project_id, handle, name, runtime_type, description, now],
        )?;
        Ok(self.tx.last_insert_rowid()?)
    }

    pub fn update_integration(
        &self,
        id: i64,
        name: &str,
        runtime_type: &str,
        description: &str,
    ) -> Result<()> {
        self.exec(
            "UPDATE integrations SET name = ?2, runtime_type = ?3, description = ?4 WHERE id = ?1",
            params![id, name, runtime_type, description],
        )?;
        Ok(())
    }

    /// (runtime id, stored status) of an integration's runtimes.
    pub fn integration_runtimes(&self, id: i64) -> Result<Vec<(String, Status)>> {
        let mut st = self
            .tx
            .prepare_cached("SELECT runtime_id, status FROM runtimes WHERE integration_id = ?1")?;
        let rows = st.query_map([id], |r| {
            let s: String = r.get(1)?;
            Ok((r.get(0)?, Status::parse(&s).unwrap_or(Status::Offline)))
        })?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    /// Deletes an integration with its runtimes; its secrets are revoked and
    /// detached (kept as revoked, unbound records). Returns how many secrets
    /// were revoked by this.
    pub fn delete_integration(&self, id: i64, now: Millis) -> Result<usize> {
        self.tx
            .execute("DELETE FROM runtimes WHERE integration_id = ?1", [id])?;
        let revoked = self.exec(
            "UPDATE secrets SET revoked_at = ?2 WHERE integration_id = ?1 AND revoked_at IS NULL",
            params![id, now],
        )?;
        self.exec(
            "UPDATE secrets SET project_id = NULL, integration_id = NULL WHERE integration_id = ?1",
            [id],
        )?;
        self.exec(
            "DELETE FROM role_assignments WHERE scope_type = 'integration' AND scope_id = ?1",
            [id],
        )?;
        self.tx
            .execute("DELETE FROM integrations WHERE id = ?1", [id])?;
        Ok(revoked)
    }

    // ---- runtimes ------------------------------------------------------

    /// Up to `limit` visible runtimes matching `q` after runtime id `after`, and how many match.
    /// How many runtimes visible through `vis` match `q`.
    pub fn runtime_count(&self, vis: &Visibility, q: &RuntimeQuery) -> Result<i64> {
        let page = runtime_filter(vis, q);
        let count_sql = format!(
            "SELECT COUNT(*) FROM runtimes r {} {}",
            if page.needs_joins {
                RUNTIME_JOINS_AFTER_R
            } else {
                ""
            },
            page.where_clause()
        );
        Ok(self.row(&count_sql, params_from_iter(&page.params), |r| r.get(0))?)
    }

    /// Up to `limit` runtimes visible through `vis` matching `q`, in id
    /// order, after the id `after`.
    pub fn runtime_page(
        &self,
        vis: &Visibility,
        q: &RuntimeQuery,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RuntimeRecord>> {
        let mut page = runtime_filter(vis, q);
        if let Some(a) = after {
            page.add("r.runtime_id > ?", [SqlValue::from(a.to_string())]);
        }
        page.params.push(SqlValue::from(limit));
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {RUNTIME_COLUMNS} {RUNTIME_JOINS} {} ORDER BY r.runtime_id LIMIT ?",
            page.where_clause()
        ))?;
        let rows = st
            .query_map(params_from_iter(&page.params), runtime_from_row)?
            .collect::<db::Result<_>>()?;
        Ok(rows)
    }

    /// The conditions of an offset page, all on `runtimes` itself (a
    /// project's runtimes are its integrations' ids).
    fn runtime_scope_filter(vis: &Visibility, scope: &RuntimeScope) -> RuntimeFilter {
        let mut f = RuntimeFilter {
            conditions: Vec::new(),
            params: Vec::new(),
            needs_joins: false,
        };
        if !vis.everything {
            let (_, p, i, e) = visibility_ids(vis);
            f.add(
                "(r.integration_id IN (SELECT value FROM json_each(?)) \
                 OR r.environment_id IN (SELECT value FROM json_each(?)) \
                 OR r.integration_id IN (SELECT id FROM integrations WHERE project_id IN (SELECT value FROM json_each(?))))",
                [i.into(), e.into(), p.into()],
            );
        }
        if let Some(e) = scope.environment_id {
            f.add("r.environment_id = ?", [e.into()]);
        }
        if let Some(i) = scope.integration_id {
            f.add("r.integration_id = ?", [i.into()]);
        }
        if let Some(p) = scope.project_id {
            f.add(
                "r.integration_id IN (SELECT id FROM integrations WHERE project_id = ?)",
                [p.into()],
            );
        }
        if let Some(s) = scope.status {
            f.add("r.status = ?", [SqlValue::from(s.as_str().to_string())]);
        }
        if let Some(t) = &scope.runtime_type {
            f.add("r.runtime_type = ?", [SqlValue::from(t.clone())]);
        }
        f
    }

    /// How many runtimes an offset page's conditions match.
    pub(super) fn runtime_scope_count(
        &self,
        vis: &Visibility,
        scope: &RuntimeScope,
    ) -> Result<i64> {
        let f = Self::runtime_scope_filter(vis, scope);
        Ok(self.row(
            &format!("SELECT COUNT(*) FROM runtimes r {}", f.where_clause()),
            params_from_iter(&f.params),
            |r| r.get(0),
        )?)
    }

    /// Changes whenever a runtime is added, removed or moved to another
    /// integration, environment or type (a trigger counts them), but not
    /// when it heartbeats: what a count without a status filter depends on.
    pub(super) fn runtime_membership(&self) -> Result<i64> {
        Ok(self.row(
            "SELECT generation FROM runtime_membership WHERE id = 1",
            [],
            |r| r.get(0),
        )?)
    }

    /// Up to `limit` runtimes after skipping `offset`, newest registration
    /// first (ICP's order), for GraphQL's offset pages.
    ///
    /// The page's runtime ids are read from an index in order
    /// (`runtimes_by_environment_registration`, or `runtimes_by_registration`
    /// without an environment), skipping `offset` index entries rather than
    /// joined rows; only the page's own rows are joined with their
    /// environment, integration and project.
    pub(super) fn runtime_offset_rows(
        &self,
        vis: &Visibility,
        scope: &RuntimeScope,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<RuntimeListed>> {
        let mut f = Self::runtime_scope_filter(vis, scope);
        let where_clause = f.where_clause();
        f.params.push(SqlValue::from(limit));
        f.params.push(SqlValue::from(offset.max(0)));
        let mut st = self.tx.prepare_cached(&format!(
            "WITH page AS (SELECT r.runtime_id FROM runtimes r {where_clause} \
               ORDER BY r.registered_at DESC, r.runtime_id LIMIT ? OFFSET ?) \
             SELECT {RUNTIME_COLUMNS}, r.node_info, r.management_host, r.management_port \
             FROM page JOIN runtimes r ON r.runtime_id = page.runtime_id {RUNTIME_JOINS_AFTER_R} \
             ORDER BY r.registered_at DESC, r.runtime_id"
        ))?;
        let rows = st
            .query_map(params_from_iter(&f.params), |r| {
                let n = RUNTIME_COLUMN_COUNT;
                let node_info: String = r.get(n)?;
                Ok(RuntimeListed {
                    record: runtime_from_row(r)?,
                    node_info: serde_json::from_str(&node_info).unwrap_or_default(),
                    management_host: r.get(n + 1)?,
                    management_port: r.get(n + 2)?,
                })
            })?
            .collect::<db::Result<_>>()?;
        Ok(rows)
    }

    /// Where a runtime is, as an access target.
    pub fn runtime_target(&self, runtime_id: &str) -> Result<Option<Target>> {
        let mut st = self.tx.prepare_cached(
            "SELECT i.project_id, r.integration_id, r.environment_id, e.critical FROM runtimes r \
             JOIN integrations i ON i.id = r.integration_id JOIN environments e ON e.id = r.environment_id \
             WHERE r.runtime_id = ?1",
        )?;
        Ok(st
            .query_row([runtime_id], |r| {
                Ok(Target {
                    project: Some(r.get(0)?),
                    integration: Some(r.get(1)?),
                    environment: Some(r.get(2)?),
                    critical: r.get(3)?,
                })
            })
            .optional()?)
    }

    /// Ids of the runtimes registered with a secret.
    pub fn runtimes_using_key(&self, key_id: &str) -> Result<Vec<String>> {
        let mut st = self.tx.prepare_cached(
            "SELECT runtime_id FROM runtimes WHERE key_id = ?1 ORDER BY runtime_id",
        )?;
        let rows = st.query_map([key_id], |r| r.get(0))?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    // ---- secrets -------------------------------------------------------

    /// Up to `limit` visible secrets matching `q`, newest first after
    /// (created, key id) `after`, and how many match.
    pub fn secret_page(
        &self,
        vis: &Visibility,
        q: &SecretQuery,
        after: Option<&(Millis, String)>,
        limit: i64,
        now: Millis,
    ) -> Result<(Vec<StoredSecret>, i64)> {
        let (all, p, i, e) = visibility_ids(vis);
        let (at, key) = (after.map(|a| a.0), after.map(|a| a.1.as_str()));
        let mut st = self.tx.prepare_cached(&format!(
            "{SECRET_SELECT} WHERE {SECRET_WHERE} ORDER BY s.created_at DESC, s.key_id LIMIT ?12"
        ))?;
        let rows = st
            .query_map(
                params![
                    all,
                    p,
                    i,
                    e,
                    q.environment,
                    q.project,
                    q.integration,
                    q.status,
                    now,
                    at,
                    key,
                    limit
                ],
                secret_from_row,
            )?
            .collect::<db::Result<_>>()?;
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT COUNT(*) FROM secrets s JOIN environments e ON e.id = s.environment_id \
             LEFT JOIN projects p ON p.id = s.project_id LEFT JOIN integrations i ON i.id = s.integration_id \
             WHERE {SECRET_WHERE}"
        ))?;
        let total = st.query_row(
            params![
                all,
                p,
                i,
                e,
                q.environment,
                q.project,
                q.integration,
                q.status,
                now,
                None::<i64>,
                None::<&str>
            ],
            |r| r.get(0),
        )?;
        Ok((rows, total))
    }

    /// Where a secret belongs, as an access target.
    pub fn secret_target(&self, key_id: &str) -> Result<Option<Target>> {
        let mut st = self.tx.prepare_cached(
            "SELECT s.project_id, s.integration_id, s.environment_id, e.critical FROM secrets s \
             JOIN environments e ON e.id = s.environment_id WHERE s.key_id = ?1",
        )?;
        Ok(st
            .query_row([key_id], |r| {
                Ok(Target {
                    project: r.get(0)?,
                    integration: r.get(1)?,
                    environment: Some(r.get(2)?),
                    critical: r.get(3)?,
                })
            })
            .optional()?)
    }
}
