//! The catalog runtimes belong to: environments, projects and integrations.
//!
//! Environments are created by operators (never by a heartbeat); projects
//! and integrations are created by operators or, for a runtime presenting an
//! unbound secret, from the handles in its first full heartbeat. Handles are
//! normalised with [`normalize_handle`] everywhere, so `Order Service` and
//! `order-service` name the same project.
//!
//! The management API's side lives here too: the `*Info` types it shows,
//! the create/change/delete rules (handles are fixed once made; a delete
//! that would orphan runtimes or active secrets is a conflict), what a
//! principal may see ([`Visibility`]) and keyset pages ([`Keyset`],
//! [`Listing`]) shared by the runtime and secret lists.

pub use crate::model::catalog::*;

use serde::{Deserialize, Serialize};

use crate::access::{Permission, Principal, Scope};
use crate::error::{Error, Result};
use crate::liveness::Liveness;
use crate::runtimes::Status;
use crate::store::Store;
use crate::Millis;

/// The protocol's handle rule: lower-case, every run of characters outside
/// `[a-z0-9]` becomes one `-`, and leading/trailing `-` are trimmed.
pub fn normalize_handle(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut dash = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
    }
    out
}

/// Checks a handle given by an operator and returns its normal form.
pub fn valid_handle(what: &str, text: &str) -> Result<String> {
    let handle = normalize_handle(text);
    if handle.is_empty() {
        return Err(Error::BadRequest(format!(
            "{what} '{text}' has no letters or digits; use e.g. 'staging'"
        )));
    }
    if handle.len() > 64 {
        return Err(Error::BadRequest(format!(
            "{what} '{text}' is longer than 64 characters"
        )));
    }
    Ok(handle)
}

/// Creates an environment on a data plane (`default` when `None`); its
/// handle is normalised, and must be new. It is placed in the default
/// pipeline as [`place_in_default_pipeline`] says.
pub fn create_environment(
    store: &Store,
    name: &str,
    critical: bool,
    data_plane: Option<&str>,
    now: Millis,
) -> Result<CreatedEnvironment<Environment>> {
    let handle = valid_handle("environment", name)?;
    store.write(|tx| {
        if tx.environment_by_handle(&handle)?.is_some() {
            return Err(Error::Conflict(format!(
                "environment '{handle}' already exists"
            )));
        }
        let data_plane_id = crate::data_planes::resolve(tx, data_plane)?;
        let environment =
            tx.insert_environment(&handle, name.trim(), critical, data_plane_id, now)?;
        let placement = place_in_default_pipeline(tx, environment.id, critical)?;
        Ok(CreatedEnvironment {
            environment,
            placement,
        })
    })
}

/// Where a new environment went in the default pipeline: the order of the
/// environments for every project that has not chosen its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// The handle of the environment before it; null when it is first.
    pub after: Option<String>,
    /// The handle of the environment after it; null when it is last.
    pub before: Option<String>,
    /// Projects with their own pipeline: they do not get it until it is
    /// added there (`PUT /api/v1/projects/{project}/environments`).
    pub projects_with_own_pipeline: i64,
    /// The same in words, e.g. "placed after staging, before prod in the
    /// default pipeline".
    pub message: String,
}

impl Placement {
    fn new(after: Option<String>, before: Option<String>, own: i64) -> Placement {
        let mut message = match (&after, &before) {
            (Some(a), Some(b)) => format!("placed after {a}, before {b} in the default pipeline"),
            (Some(a), None) => format!("placed last in the default pipeline, after {a}"),
            (None, Some(b)) => format!("placed first in the default pipeline, before {b}"),
            (None, None) => "the only environment of the default pipeline".to_string(),
        };
        if own > 0 {
            message.push_str(&format!(
                "; {own} project(s) with their own pipeline do not include it until it is added there \
                 (the project's Edit pipeline, or PUT /api/v1/projects/{{project}}/environments)"
            ));
        }
        Placement {
            after,
            before,
            projects_with_own_pipeline: own,
            message,
        }
    }
}

/// Places the environment `id`, just inserted (and so appended to the
/// default pipeline), in the caller's transaction: a critical one stays
/// last; a non-critical one moves before the first critical environment, so
/// creating `qa` after `dev -> prod` gives `dev -> qa -> prod`, never a
/// stage after production.
pub fn place_in_default_pipeline(
    tx: &crate::store::Tx,
    id: i64,
    critical: bool,
) -> Result<Placement> {
    let order = tx.all_environments()?;
    if !critical {
        if let Some(first) = order.iter().find(|e| e.critical && e.id != id) {
            tx.move_environment_before(id, first.id)?;
        }
    }
    let order = tx.all_environments()?;
    let at = order
        .iter()
        .position(|e| e.id == id)
        .ok_or_else(|| Error::Internal("environment vanished".into()))?;
    let handle = |i: Option<usize>| i.and_then(|i| order.get(i)).map(|e| e.handle.clone());
    Ok(Placement::new(
        handle(at.checked_sub(1)),
        handle(Some(at + 1)),
        tx.projects_with_own_pipeline()?,
    ))
}

/// Finds the project and integration named by two handles, creating either
/// when missing (a new integration gets `runtime_type`). The caller's
/// transaction makes this atomic with whatever binds to them.
pub fn find_or_create_integration(
    tx: &crate::store::Tx,
    project: &str,
    integration: &str,
    runtime_type: &str,
    now: Millis,
) -> Result<(Project, Integration)> {
    let p_handle = valid_handle("project", project)?;
    let i_handle = valid_handle("integration", integration)?;
    let project = match tx.project_by_handle(&p_handle)? {
        Some(p) => p,
        None => tx.insert_project(&p_handle, project.trim(), now)?,
    };
    let integration = match tx.integration_by_handle(project.id, &i_handle)? {
        Some(i) => i,
        None => {
            tx.insert_integration(project.id, &i_handle, integration.trim(), runtime_type, now)?
        }
    };
    Ok((project, integration))
}

// ---- management API ------------------------------------------------------

/// Handles that would be shadowed by a fixed route under `/projects/`.
const RESERVED_PROJECT_HANDLES: &[&str] = &["handle-availability"];

/// A keyset page request: the sort key of the last row already seen
/// (decoded from the API's opaque cursor) and how many rows to return.
#[derive(Debug, Clone, Default)]
pub struct Keyset {
    pub after: Option<String>,
    pub limit: i64,
}

impl Keyset {
    /// The cursor as a number (an id or a revision number), for listings
    /// keyed by one.
    pub fn after_number(&self) -> Result<Option<i64>> {
        self.after
            .as_deref()
            .map(|a| a.parse::<i64>().map_err(|_| bad_cursor()))
            .transpose()
    }
}

/// One page of a list: the rows, how many rows match in all, and the sort
/// key to continue after when more follow.
#[derive(Debug, Clone)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub next: Option<String>,
}

impl<T> Listing<T> {
    /// Builds a page from up to `limit + 1` rows (the extra row only says
    /// that another page follows).
    pub fn new(mut rows: Vec<T>, total: i64, limit: i64, key: impl Fn(&T) -> String) -> Self {
        let limit = usize::try_from(limit.max(0)).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more { rows.last().map(key) } else { None };
        Listing {
            items: rows,
            total,
            next,
        }
    }
}

/// The error for a cursor that this list did not hand out.
pub fn bad_cursor() -> Error {
    Error::BadRequest("invalid cursor: pass nextCursor from the previous page unchanged".into())
}

/// A new environment and where it went in the default pipeline: as `POST
/// /environments` answers (`E` = [`EnvironmentInfo`]) and as `icpd env
/// create --json` prints it (`E` = [`Environment`]).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CreatedEnvironment<E = EnvironmentInfo> {
    #[serde(flatten)]
    pub environment: E,
    pub placement: Placement,
}

/// `POST /environments`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewEnvironment {
    pub name: String,
    /// Derived from `name` when absent.
    pub handle: Option<String>,
    #[serde(default)]
    pub critical: bool,
    pub description: Option<String>,
    /// The handle of its data plane; `default` when absent.
    pub data_plane: Option<String>,
    /// Approvals a promotion into it needs; by criticality when absent.
    pub required_approvals: Option<i64>,
}

/// `PATCH /environments/{env}`: absent fields stay as they are. The handle never changes.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvironmentChange {
    pub name: Option<String>,
    pub critical: Option<bool>,
    pub description: Option<String>,
    /// Moves it to this data plane.
    pub data_plane: Option<String>,
    /// Approvals a promotion into it needs (0 to 10).
    pub required_approvals: Option<i64>,
}

/// `POST /projects`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewProject {
    pub name: String,
    pub handle: Option<String>,
    pub description: Option<String>,
}

/// `PATCH /projects/{project}`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProjectChange {
    pub name: Option<String>,
    pub description: Option<String>,
}

/// `POST /projects/{project}/integrations`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewIntegration {
    pub name: String,
    pub handle: Option<String>,
    pub runtime_type: String,
    pub description: Option<String>,
}

/// `PATCH /projects/{project}/integrations/{integration}`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntegrationChange {
    pub name: Option<String>,
    pub runtime_type: Option<String>,
    pub description: Option<String>,
}

/// `PUT /projects/{project}/environments`: the project's environments, in order.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProjectEnvironments {
    pub environments: Vec<String>,
}

/// What deleting an integration took with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrationDeleted {
    pub runtimes: Vec<String>,
    pub secrets_revoked: usize,
}

fn valid_name(what: &str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::BadRequest(format!("{what} name must not be empty")));
    }
    if name.chars().count() > 128 {
        return Err(Error::BadRequest(format!(
            "{what} name is longer than 128 characters"
        )));
    }
    Ok(name.to_string())
}

/// At most this many approvals can be required for a promotion.
pub const MAX_REQUIRED_APPROVALS: i64 = 10;

fn valid_required_approvals(n: Option<i64>) -> Result<Option<i64>> {
    match n {
        Some(n) if !(0..=MAX_REQUIRED_APPROVALS).contains(&n) => Err(Error::BadRequest(format!(
            "requiredApprovals must be from 0 to {MAX_REQUIRED_APPROVALS}"
        ))),
        n => Ok(n),
    }
}

fn valid_description(text: Option<&str>) -> Result<String> {
    let text = text.unwrap_or("").trim();
    if text.chars().count() > 2000 {
        return Err(Error::BadRequest(
            "description is longer than 2000 characters".into(),
        ));
    }
    Ok(text.to_string())
}

fn valid_runtime_type(text: &str) -> Result<String> {
    match text {
        "BI" | "MI" => Ok(text.to_string()),
        _ => Err(Error::BadRequest(format!(
            "runtimeType '{text}' must be BI or MI"
        ))),
    }
}

fn no_environment(handle: &str) -> Error {
    Error::NotFound(format!(
        "no environment '{handle}'; GET /api/v1/environments lists them"
    ))
}

fn no_project(handle: &str) -> Error {
    Error::NotFound(format!(
        "no project '{handle}' that you may see; GET /api/v1/projects lists them"
    ))
}

fn no_integration(project: &str, handle: &str) -> Error {
    Error::NotFound(format!(
        "no integration '{handle}' in project '{project}' that you may see"
    ))
}

/// A page of environments in creation order (every signed-in user sees them all).
pub fn list_environments(store: &Store, page: &Keyset) -> Result<Listing<EnvironmentInfo>> {
    let after = page.after_number()?;
    let (rows, total) = store.read(|tx| tx.environment_page(after, page.limit + 1))?;
    Ok(Listing::new(rows, total, page.limit, |e| e.id.to_string()))
}

/// One environment by handle.
pub fn environment(store: &Store, handle: &str) -> Result<EnvironmentInfo> {
    store
        .read(|tx| tx.environment_info(handle))?
        .ok_or_else(|| no_environment(handle))
}

/// Creates an environment; its handle (from `handle` or the name) must be
/// new. It is placed in the default pipeline as
/// [`place_in_default_pipeline`] says.
pub fn add_environment(
    store: &Store,
    new: &NewEnvironment,
    now: Millis,
) -> Result<CreatedEnvironment> {
    let name = valid_name("environment", &new.name)?;
    let handle = valid_handle("environment", new.handle.as_deref().unwrap_or(&name))?;
    let description = valid_description(new.description.as_deref())?;
    let required_approvals = valid_required_approvals(new.required_approvals)?;
    store.write(|tx| {
        if tx.environment_info(&handle)?.is_some() {
            return Err(Error::Conflict(format!(
                "environment '{handle}' already exists"
            )));
        }
        let data_plane_id = crate::data_planes::resolve(tx, new.data_plane.as_deref())?;
        let id = tx.insert_environment_info(
            &handle,
            &name,
            new.critical,
            &description,
            data_plane_id,
            now,
        )?;
        if required_approvals.is_some() {
            tx.set_required_approvals(id, required_approvals)?;
        }
        let placement = place_in_default_pipeline(tx, id, new.critical)?;
        let environment = tx
            .environment_info(&handle)?
            .ok_or_else(|| Error::Internal("environment vanished".into()))?;
        Ok(CreatedEnvironment {
            environment,
            placement,
        })
    })
}

/// Changes an environment's name, critical flag, description, data plane
/// or required approvals.
pub fn change_environment(
    store: &Store,
    handle: &str,
    change: &EnvironmentChange,
) -> Result<EnvironmentInfo> {
    let name = change
        .name
        .as_deref()
        .map(|n| valid_name("environment", n))
        .transpose()?;
    let description = change
        .description
        .as_deref()
        .map(|d| valid_description(Some(d)))
        .transpose()?;
    let required_approvals = valid_required_approvals(change.required_approvals)?;
    store.write(|tx| {
        let mut e = tx
            .environment_info(handle)?
            .ok_or_else(|| no_environment(handle))?;
        e.name = name.unwrap_or(e.name);
        e.critical = change.critical.unwrap_or(e.critical);
        e.description = description.unwrap_or(e.description);
        tx.update_environment(e.id, &e.name, e.critical, &e.description)?;
        if required_approvals.is_some() {
            tx.set_required_approvals(e.id, required_approvals)?;
        }
        if let Some(dp) = &change.data_plane {
            let id = crate::data_planes::resolve(tx, Some(dp))?;
            tx.set_environment_data_plane(e.id, id)?;
        }
        // Read again: the data plane and the effective approvals may have moved.
        tx.environment_info(handle)?
            .ok_or_else(|| no_environment(handle))
    })
}

/// Deletes an environment nothing runs in: runtimes or usable secrets in it
/// are a conflict; its revoked and expired secrets go with it.
pub fn delete_environment(store: &Store, handle: &str, now: Millis) -> Result<()> {
    store.write(|tx| {
        let e = tx
            .environment_info(handle)?
            .ok_or_else(|| no_environment(handle))?;
        let (runtimes, secrets) = tx.environment_use(e.id, now)?;
        if runtimes > 0 || secrets > 0 {
            return Err(Error::Conflict(format!(
                "environment '{handle}' still has {runtimes} runtime(s) and {secrets} active secret(s) attached; \
                 delete the runtimes (DELETE /api/v1/runtimes/{{id}}) and revoke the secrets (DELETE /api/v1/secrets/{{keyId}}) first"
            )));
        }
        tx.delete_environment(e.id)
    })
}

/// A page of the projects `principal` may view, by handle, optionally
/// matching `text` in handle or name.
pub fn list_projects(
    store: &Store,
    principal: &Principal,
    text: Option<&str>,
    page: &Keyset,
) -> Result<Listing<ProjectInfo>> {
    let vis = Visibility::of(principal, Permission::ProjectView);
    let (rows, total) =
        store.read(|tx| tx.project_page(&vis, text, page.after.as_deref(), page.limit + 1))?;
    Ok(Listing::new(rows, total, page.limit, |p| p.handle.clone()))
}

/// The project named by `handle` if `principal` may view it; 404 otherwise.
pub fn visible_project(store: &Store, principal: &Principal, handle: &str) -> Result<ProjectInfo> {
    store
        .read(|tx| tx.project_info(handle))?
        .filter(|p| principal.has(Permission::ProjectView, &p.target()))
        .ok_or_else(|| no_project(handle))
}

/// The handle a project named `name` would get, and whether it is free.
pub fn project_handle_availability(store: &Store, name: &str) -> Result<(String, bool)> {
    let handle = valid_handle("project", name)?;
    let taken = RESERVED_PROJECT_HANDLES.contains(&handle.as_str())
        || store.read(|tx| tx.project_info(&handle))?.is_some();
    Ok((handle, !taken))
}

/// Creates a project; its handle (from `handle` or the name) must be free.
pub fn add_project(store: &Store, new: &NewProject, now: Millis) -> Result<ProjectInfo> {
    let name = valid_name("project", &new.name)?;
    let handle = valid_handle("project", new.handle.as_deref().unwrap_or(&name))?;
    let description = valid_description(new.description.as_deref())?;
    if RESERVED_PROJECT_HANDLES.contains(&handle.as_str()) {
        return Err(Error::Conflict(format!(
            "'{handle}' is reserved; choose another project handle"
        )));
    }
    store.write(|tx| {
        if tx.project_info(&handle)?.is_some() {
            return Err(Error::Conflict(format!(
                "project handle '{handle}' is taken; GET /api/v1/projects/handle-availability?name=... checks a name"
            )));
        }
        tx.insert_project_info(&handle, &name, &description, now)?;
        tx.project_info(&handle)?
            .ok_or_else(|| Error::Internal("project vanished".into()))
    })
}

/// Changes a project's name or description.
pub fn change_project(
    store: &Store,
    project: &ProjectInfo,
    change: &ProjectChange,
) -> Result<ProjectInfo> {
    let mut p = project.clone();
    if let Some(n) = &change.name {
        p.name = valid_name("project", n)?;
    }
    if let Some(d) = &change.description {
        p.description = valid_description(Some(d))?;
    }
    store.write(|tx| tx.update_project(p.id, &p.name, &p.description))?;
    Ok(p)
}

/// Deletes a project without integrations.
pub fn delete_project(store: &Store, project: &ProjectInfo) -> Result<()> {
    store.write(|tx| {
        let n = tx.integration_count(project.id)?;
        if n > 0 {
            return Err(Error::Conflict(format!(
                "project '{}' still has {n} integration(s); delete them first",
                project.handle
            )));
        }
        tx.delete_project(project.id)
    })
}

/// The project's environments in order; the default pipeline until a subset is set.
pub fn project_environments(store: &Store, project: &ProjectInfo) -> Result<Vec<EnvironmentInfo>> {
    store.read(|tx| pipeline(tx, project.id))
}

/// The project's pipeline inside the caller's transaction: its ordered
/// subset of environments, or until a subset is set the default pipeline
/// (every environment; each new one placed by
/// [`place_in_default_pipeline`]). Promotion goes from one environment to
/// the next in it.
pub fn pipeline(tx: &crate::store::Tx, project_id: i64) -> Result<Vec<EnvironmentInfo>> {
    let chosen = tx.project_environments(project_id)?;
    if chosen.is_empty() {
        tx.all_environments()
    } else {
        Ok(chosen)
    }
}

/// The environment after `env` in `pipeline`: `None` when `env` is the
/// last; 422 when `env` is not in the pipeline at all.
pub fn next_in<'p>(
    pipeline: &'p [EnvironmentInfo],
    env: &str,
) -> Result<Option<&'p EnvironmentInfo>> {
    let at = pipeline
        .iter()
        .position(|e| e.handle == env)
        .ok_or_else(|| {
            Error::Unprocessable(format!(
                "environment '{env}' is not in the project's pipeline ({}); GET /api/v1/projects/{{project}}/environments shows it",
                pipeline
                    .iter()
                    .map(|e| e.handle.as_str())
                    .collect::<Vec<_>>()
                    .join(" -> ")
            ))
        })?;
    Ok(pipeline.get(at + 1))
}

/// The environment after `env` in the project's pipeline (see [`next_in`]).
pub fn next_environment(
    tx: &crate::store::Tx,
    project_id: i64,
    env: &str,
) -> Result<Option<EnvironmentInfo>> {
    let stages = pipeline(tx, project_id)?;
    Ok(next_in(&stages, env)?.cloned())
}

/// One stage of a project's pipeline as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStage {
    #[serde(flatten)]
    pub environment: EnvironmentInfo,
    /// 0 for the first environment.
    pub position: usize,
    /// The handle of the environment a promotion from here goes to; null for the last.
    pub next: Option<String>,
}

/// The pipeline as stages, each naming the next.
pub fn stages(pipeline: Vec<EnvironmentInfo>) -> Vec<PipelineStage> {
    let nexts: Vec<Option<String>> = pipeline
        .iter()
        .skip(1)
        .map(|e| Some(e.handle.clone()))
        .chain([None])
        .collect();
    pipeline
        .into_iter()
        .zip(nexts)
        .enumerate()
        .map(|(position, (environment, next))| PipelineStage {
            environment,
            position,
            next,
        })
        .collect()
}

/// Sets the project's ordered subset of environments.
pub fn set_project_environments(
    store: &Store,
    project: &ProjectInfo,
    handles: &[String],
) -> Result<Vec<EnvironmentInfo>> {
    if handles.is_empty() {
        return Err(Error::BadRequest(
            "a project needs at least one environment".into(),
        ));
    }
    store.write(|tx| {
        let mut ids = Vec::with_capacity(handles.len());
        for h in handles {
            let e = tx
                .environment_info(h)?
                .ok_or_else(|| Error::Unprocessable(format!("environment '{h}' does not exist")))?;
            if ids.contains(&e.id) {
                return Err(Error::BadRequest(format!(
                    "environment '{h}' is listed twice"
                )));
            }
            ids.push(e.id);
        }
        tx.set_project_environments(project.id, &ids)?;
        tx.project_environments(project.id)
    })
}

/// A page of the project's integrations `principal` may view, by handle.
pub fn list_integrations(
    store: &Store,
    principal: &Principal,
    project: &ProjectInfo,
    text: Option<&str>,
    page: &Keyset,
) -> Result<Listing<IntegrationInfo>> {
    let vis = Visibility::of(principal, Permission::IntegrationView);
    let (rows, total) = store.read(|tx| {
        tx.integration_page(
            project.id,
            &vis,
            text,
            page.after.as_deref(),
            page.limit + 1,
        )
    })?;
    Ok(Listing::new(rows, total, page.limit, |i| i.handle.clone()))
}

/// The integration `project/handle` if `principal` may view it; 404 otherwise.
pub fn visible_integration(
    store: &Store,
    principal: &Principal,
    project: &str,
    handle: &str,
) -> Result<IntegrationInfo> {
    store
        .read(|tx| tx.integration_info(project, handle))?
        .filter(|i| principal.has(Permission::IntegrationView, &i.target()))
        .ok_or_else(|| no_integration(project, handle))
}

/// Creates an integration in a project; its handle must be new there.
pub fn add_integration(
    store: &Store,
    project: &ProjectInfo,
    new: &NewIntegration,
    now: Millis,
) -> Result<IntegrationInfo> {
    let name = valid_name("integration", &new.name)?;
    let handle = valid_handle("integration", new.handle.as_deref().unwrap_or(&name))?;
    let runtime_type = valid_runtime_type(&new.runtime_type)?;
    let description = valid_description(new.description.as_deref())?;
    store.write(|tx| {
        if tx.integration_info(&project.handle, &handle)?.is_some() {
            return Err(Error::Conflict(format!(
                "integration '{handle}' already exists in project '{}'",
                project.handle
            )));
        }
        tx.insert_integration_info(project.id, &handle, &name, &runtime_type, &description, now)?;
        tx.integration_info(&project.handle, &handle)?
            .ok_or_else(|| Error::Internal("integration vanished".into()))
    })
}

/// Changes an integration's name, runtime type (only while it has no runtimes) or description.
pub fn change_integration(
    store: &Store,
    integration: &IntegrationInfo,
    change: &IntegrationChange,
) -> Result<IntegrationInfo> {
    let mut i = integration.clone();
    if let Some(n) = &change.name {
        i.name = valid_name("integration", n)?;
    }
    if let Some(d) = &change.description {
        i.description = valid_description(Some(d))?;
    }
    if let Some(t) = &change.runtime_type {
        i.runtime_type = valid_runtime_type(t)?;
    }
    store.write(|tx| {
        if i.runtime_type != integration.runtime_type && !tx.integration_runtimes(i.id)?.is_empty()
        {
            return Err(Error::Conflict(format!(
                "integration '{}' has runtimes; its runtime type cannot change",
                i.handle
            )));
        }
        tx.update_integration(i.id, &i.name, &i.runtime_type, &i.description)
    })?;
    Ok(i)
}

/// Deletes an integration none of whose runtimes is RUNNING (per the
/// in-memory liveness table, which is ahead of SQLite): its OFFLINE
/// runtimes are deleted and its secrets revoked with it.
pub fn delete_integration(
    store: &Store,
    liveness: &Liveness,
    integration: &IntegrationInfo,
    now: Millis,
) -> Result<IntegrationDeleted> {
    let deleted = store.write(|tx| {
        let runtimes = tx.integration_runtimes(integration.id)?;
        let running: Vec<&str> = runtimes
            .iter()
            .filter(|(id, stored)| liveness.status(id).unwrap_or(*stored) == Status::Running)
            .map(|(id, _)| id.as_str())
            .collect();
        if !running.is_empty() {
            return Err(Error::Conflict(format!(
                "integration '{}' has {} RUNNING runtime(s) ({}); stop them first",
                integration.handle,
                running.len(),
                running.join(", ")
            )));
        }
        let secrets_revoked = tx.delete_integration(integration.id, now)?;
        Ok(IntegrationDeleted {
            runtimes: runtimes.into_iter().map(|(id, _)| id).collect(),
            secrets_revoked,
        })
    })?;
    for id in &deleted.runtimes {
        liveness.remove(id);
    }
    Ok(deleted)
}

impl Visibility {
    /// What `principal` holds `perm` on.
    pub fn of(principal: &Principal, perm: Permission) -> Visibility {
        let mut v = Visibility::default();
        for g in principal
            .grants
            .iter()
            .filter(|g| g.permissions.contains(&perm))
        {
            match g.scope {
                Scope::Organization => v.everything = true,
                Scope::Project(id) => v.projects.push(id),
                Scope::Integration(id) => v.integrations.push(id),
                Scope::Environment(id) => v.environments.push(id),
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::{normalize_handle, Listing, Visibility};
    use crate::access::{Grant, Permission, Principal, Scope, Target};

    /// What the store's SQL filter does with a [`Visibility`], row by row.
    fn sql_filter(v: &Visibility, t: &Target) -> bool {
        let has = |ids: &[i64], id: Option<i64>| id.is_some_and(|id| ids.contains(&id));
        v.everything
            || has(&v.projects, t.project)
            || has(&v.integrations, t.integration)
            || has(&v.environments, t.environment)
    }

    #[test]
    fn visibility_agrees_with_principal_has() {
        let grant = |scope, perms: &[Permission]| Grant {
            scope,
            permissions: perms.iter().copied().collect(),
        };
        let view = Permission::IntegrationView;
        let principals = [
            vec![],
            vec![grant(Scope::Organization, &[view])],
            vec![grant(Scope::Organization, &[Permission::ProjectView])],
            vec![grant(Scope::Project(1), &[view])],
            vec![
                grant(Scope::Integration(12), &[view]),
                grant(Scope::Environment(3), &[view]),
            ],
        ];
        for grants in principals {
            let p = Principal {
                user_id: 1,
                username: "u".into(),
                grants,
                must_change_password: false,
            };
            let v = Visibility::of(&p, view);
            for project in [None, Some(1), Some(2)] {
                for integration in [None, Some(11), Some(12)] {
                    for environment in [None, Some(3), Some(4)] {
                        let t = Target {
                            project,
                            integration,
                            environment,
                            critical: false,
                        };
                        assert_eq!(sql_filter(&v, &t), p.has(view, &t), "{t:?} {v:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_listing_continues_only_when_rows_are_left() {
        let l = Listing::new(vec![1, 2, 3], 9, 2, |n| n.to_string());
        assert_eq!((l.items, l.next), (vec![1, 2], Some("2".to_string())));
        let l = Listing::new(vec![1, 2], 2, 2, |n| n.to_string());
        assert_eq!((l.items, l.next), (vec![1, 2], None));
    }

    #[test]
    fn promotion_goes_to_the_next_environment_of_the_pipeline() {
        let env = |id: i64, handle: &str| super::EnvironmentInfo {
            id,
            handle: handle.into(),
            name: handle.into(),
            critical: false,
            description: String::new(),
            created_at: 0,
            data_plane: "default".into(),
            required_approvals: 0,
        };
        let pipeline = vec![env(1, "dev"), env(3, "staging"), env(2, "prod")];
        let next = |e: &str| super::next_in(&pipeline, e).map(|n| n.map(|n| n.handle.clone()));
        assert_eq!(next("dev").unwrap().as_deref(), Some("staging"));
        assert_eq!(next("staging").unwrap().as_deref(), Some("prod"));
        assert_eq!(next("prod").unwrap(), None);
        assert!(next("qa").is_err());
        let stages = super::stages(pipeline.clone());
        assert_eq!(
            stages
                .iter()
                .map(|s| (s.position, s.next.as_deref()))
                .collect::<Vec<_>>(),
            [(0, Some("staging")), (1, Some("prod")), (2, None)]
        );
        assert!(super::stages(Vec::new()).is_empty());
    }

    #[test]
    fn a_placement_says_where_in_the_default_pipeline() {
        let p = |after: Option<&str>, before: Option<&str>, own| {
            super::Placement::new(after.map(str::to_string), before.map(str::to_string), own)
                .message
        };
        assert_eq!(
            p(Some("dev"), Some("prod"), 0),
            "placed after dev, before prod in the default pipeline"
        );
        assert_eq!(
            p(Some("prod"), None, 0),
            "placed last in the default pipeline, after prod"
        );
        assert_eq!(
            p(None, Some("prod"), 0),
            "placed first in the default pipeline, before prod"
        );
        assert_eq!(
            p(None, None, 0),
            "the only environment of the default pipeline"
        );
        assert!(p(None, None, 2).contains(
            "; 2 project(s) with their own pipeline do not include it until it is added there"
        ));
    }

    #[test]
    fn handles_follow_the_protocol_rule() {
        for (input, want) in [
            ("order-service", "order-service"),
            ("Order Service", "order-service"),
            ("  __Order__Service!! ", "order-service"),
            ("ÄBC", "bc"),
            ("a.b.c", "a-b-c"),
            ("---", ""),
        ] {
            assert_eq!(normalize_handle(input), want, "{input:?}");
        }
    }
}
