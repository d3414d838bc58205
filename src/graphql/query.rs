//! The Query root of GRAPHQL.md §6.14 (R-NEW), field for field.
//!
//! Each resolver authorizes as its table in §6 says, mapped onto icpd's
//! permissions (VIEW = `integration:view`; EDIT = `integration:edit`;
//! MANAGE = `integration:manage`; ENV-ACCESS = `environment:manage`, or
//! for a non-critical environment also `environment:manage-non-production`;
//! ICP's "any role mapping" visibility = icpd's `project:view` /
//! `integration:view`), denies in the style the reference uses for that
//! field (an empty page, `null` or an error: the console relies on it), and
//! reads through the domain functions the REST API uses.
//!
//! Ids on the wire are icpd's row ids as strings (ICP uses UUIDs; clients
//! treat them as opaque). There is one organization, id 1.

use juniper::graphql_object;
use serde_json::Value;

use super::schema::*;
use super::{fail, from_error, Ctx, Res};
use crate::access::{Permission, Principal, Target};
use crate::catalog::{EnvironmentInfo, IntegrationInfo, ProjectInfo, Visibility};
use crate::commands::Scope;
use crate::mi::control::{ReadKey, ReadState};
use crate::mi::view::{ArtifactView, Only, ScopeView};
use crate::mi::MiKind;
use crate::runtimes::{RuntimeListed, RuntimeRecord, RuntimeScope, Status as RtStatus};
use crate::time::rfc3339;

/// ICP's page cap (`MAX_PAGE_LIMIT`, §4.5).
pub const MAX_PAGE_LIMIT: i32 = 500;

// ---- permissions (§3 shorthands in icpd's terms) ---------------------------

pub(crate) fn can_view(p: &Principal, t: &Target) -> bool {
    p.has(Permission::IntegrationView, t)
        || p.has(Permission::IntegrationEdit, t)
        || p.has(Permission::IntegrationManage, t)
}

pub(crate) fn can_edit(p: &Principal, t: &Target) -> bool {
    p.has(Permission::IntegrationEdit, t) || p.has(Permission::IntegrationManage, t)
}

/// ENV-ACCESS(e): the environment permission its criticality needs, at organization scope.
pub(crate) fn env_access(p: &Principal, critical: bool) -> bool {
    let org = Target::organization();
    p.has(Permission::EnvironmentManage, &org)
        || (!critical && p.has(Permission::EnvironmentManageNonProduction, &org))
}

// ---- ids and lookups -------------------------------------------------------

/// A row id given as a string; `None` for anything else.
pub(crate) fn id_of(s: &str) -> Option<i64> {
    s.trim().parse::<i64>().ok().filter(|i| *i > 0)
}

pub(crate) fn no_component(id: &str) -> juniper::FieldError {
    fail(format!(
        "Component with id {} not found",
        id.chars().take(100).collect::<String>()
    ))
}

pub(crate) fn no_environment(id: &str) -> juniper::FieldError {
    fail(format!(
        "Environment {} not found.",
        id.chars().take(100).collect::<String>()
    ))
}

/// The integration `id` names and its project; ICP's error when there is none.
pub(crate) fn component_by_id(ctx: &Ctx, id: &str) -> Res<(IntegrationInfo, ProjectInfo)> {
    let i = match id_of(id) {
        Some(n) => ctx.integration(n)?,
        None => None,
    }
    .ok_or_else(|| no_component(id))?;
    let p = ctx.project(i.project_id)?.ok_or_else(|| no_component(id))?;
    Ok((i, p))
}

/// The environment `id` names; ICP's error when there is none.
pub(crate) fn environment_by_id(ctx: &Ctx, id: &str) -> Res<EnvironmentInfo> {
    match id_of(id) {
        Some(n) => ctx.environment(n)?,
        None => None,
    }
    .ok_or_else(|| no_environment(id))
}

/// The access target of an integration in an environment.
pub(crate) fn target_of(i: &IntegrationInfo, e: Option<&EnvironmentInfo>) -> Target {
    Target {
        project: Some(i.project_id),
        integration: Some(i.id),
        environment: e.map(|e| e.id),
        critical: e.is_some_and(|e| e.critical),
    }
}

/// The commands scope (integration in an environment) of the REST API.
pub(crate) fn scope_of(p: &ProjectInfo, i: &IntegrationInfo, e: &EnvironmentInfo) -> Scope {
    Scope {
        project_id: p.id,
        integration_id: i.id,
        environment_id: e.id,
        critical: e.critical,
        project: p.handle.clone(),
        integration: i.handle.clone(),
        environment: e.handle.clone(),
    }
}

/// A runtime, its record and access target, if `ctx`'s caller may view it.
pub(crate) fn visible_runtime(ctx: &Ctx, runtime_id: &str) -> Res<Option<(RuntimeRecord, Target)>> {
    let store = &ctx.deps.store;
    let Some(target) = store
        .read(|tx| tx.runtime_target(runtime_id))
        .map_err(from_error)?
    else {
        return Ok(None);
    };
    if !can_view(&ctx.principal, &target) {
        return Ok(None);
    }
    let detail = crate::runtimes::show(store, runtime_id).map_err(from_error)?;
    let mut record = detail.runtime;
    if let Some(s) = ctx.deps.liveness.status(runtime_id) {
        record.status = s;
    }
    Ok(Some((record, target)))
}

/// Whether the runtime exists at all (for "Runtime not found" vs a denial).
pub(crate) fn runtime_exists(ctx: &Ctx, runtime_id: &str) -> Res<bool> {
    Ok(ctx
        .deps
        .store
        .read(|tx| tx.runtime_target(runtime_id))
        .map_err(from_error)?
        .is_some())
}

// ---- conversions ---------------------------------------------------------

pub(crate) fn environment_out(e: &EnvironmentInfo) -> Environment {
    Environment {
        id: e.id.to_string(),
        name: e.name.clone(),
        handler: e.handle.clone(),
        description: Some(e.description.clone()),
        critical: e.critical,
        created_at: Some(rfc3339(e.created_at)),
        updated_at: Some(rfc3339(e.created_at)),
        ..Environment::default()
    }
}

pub(crate) fn project_out(p: &ProjectInfo) -> Project {
    Project {
        id: p.id.to_string(),
        org_id: 1,
        name: p.name.clone(),
        version: Some("1.0.0".into()),
        created_date: Some(rfc3339(p.created_at)),
        handler: p.handle.clone(),
        description: Some(p.description.clone()),
        labels: Some(Vec::new()),
        default_deployment_pipeline_id: String::new(),
        deployment_pipeline_ids: Vec::new(),
        updated_at: Some(rfc3339(p.created_at)),
        ..Project::default()
    }
}

fn runtime_type(s: &str) -> RuntimeType {
    if s.eq_ignore_ascii_case("MI") {
        RuntimeType::Mi
    } else {
        RuntimeType::Bi
    }
}

pub(crate) fn component_out(i: &IntegrationInfo, p: &ProjectInfo) -> Component {
    Component {
        id: i.id.to_string(),
        project_id: p.id.to_string(),
        // Quirk (§4.1): the project's handle, not the organization's.
        org_handler: p.handle.clone(),
        org_id: Some(1),
        name: i.handle.clone(),
        handler: i.handle.clone(),
        display_name: i.name.clone(),
        display_type: "service".into(),
        description: Some(i.description.clone()),
        status: "active".into(),
        init_status: Some("completed".into()),
        version: "v1.0.0".into(),
        created_at: rfc3339(i.created_at),
        updated_at: Some(rfc3339(i.created_at)),
        component_type: runtime_type(&i.runtime_type),
        is_system_component: Some(false),
        api_versions: Some(Vec::new()),
        deployment_tracks: Some(Vec::new()),
        endpoints: Some(Vec::new()),
        environment_variables: Some(Vec::new()),
        secrets: Some(Vec::new()),
        component_id: Some(i.id.to_string()),
        project: Some(project_out(p)),
        ..Component::default()
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// A runtime with its component and environment (read once per request).
pub(crate) fn runtime_out(
    ctx: &Ctx,
    r: &RuntimeRecord,
    node_info: &Value,
    management: (Option<String>, Option<i64>),
) -> Res<Runtime> {
    let i = ctx
        .integration(r.integration_id)?
        .ok_or_else(|| fail("Runtime not found"))?;
    let p = ctx
        .project(i.project_id)?
        .ok_or_else(|| fail("Runtime not found"))?;
    let e = ctx
        .environment(r.environment_id)?
        .ok_or_else(|| fail("Runtime not found"))?;
    Ok(Runtime {
        runtime_id: r.runtime_id.clone(),
        runtime_name: r.name.clone(),
        runtime_type: r.runtime_type.clone(),
        status: r.status.as_str().into(),
        version: r.version.clone(),
        management_hostname: management.0,
        management_port: management.1.map(|p| p.to_string()),
        component: component_out(&i, &p),
        environment: environment_out(&e),
        platform_name: text(node_info, "platformName"),
        platform_version: text(node_info, "platformVersion"),
        platform_home: text(node_info, "platformHome")
            .or_else(|| text(node_info, "ballerinaHome"))
            .or_else(|| text(node_info, "carbonHome")),
        os_name: text(node_info, "osName"),
        os_version: text(node_info, "osVersion"),
        registration_time: Some(rfc3339(r.registered_at)),
        last_heartbeat: Some(rfc3339(r.last_heartbeat)),
        artifacts: None,
        log_levels: None,
        open_api_definitions: None,
    })
}

// ---- pagination (§4.5) -----------------------------------------------------

/// A page of `items` as ICP's `buildPageResult` makes it, charged to the request.
pub(crate) fn paged<T>(
    ctx: &Ctx,
    items: Vec<T>,
    pagination: Option<&PaginationInput>,
) -> Res<(Vec<T>, PageInfo)> {
    let n = items.len();
    let n32 = i32::try_from(n).unwrap_or(i32::MAX);
    let Some(limit) = pagination.and_then(|p| p.limit) else {
        ctx.charge(n)?;
        return Ok((
            items,
            PageInfo {
                total: n32,
                limit: n32,
                offset: 0,
            },
        ));
    };
    let limit = limit.clamp(0, MAX_PAGE_LIMIT);
    let offset = pagination.and_then(|p| p.offset).unwrap_or(0).clamp(0, n32);
    let page: Vec<T> = items
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .collect();
    ctx.charge(page.len())?;
    Ok((
        page,
        PageInfo {
            total: n32,
            limit,
            offset,
        },
    ))
}

/// The `{0,0,0}` page of an early return.
pub(crate) fn empty_page() -> PageInfo {
    PageInfo {
        total: 0,
        limit: 0,
        offset: 0,
    }
}

// ---- MI reads (§4.7) ---------------------------------------------------------

/// The `preparing`/`stale`/`retryAfterMs` triple of a cached MI read.
pub(crate) struct Fetch {
    pub data: Option<Value>,
    pub preparing: bool,
    pub stale: bool,
    pub retry_after_ms: i32,
}

pub(crate) fn fetch(state: ReadState) -> Res<Fetch> {
    match state.state {
        "preparing" => Ok(Fetch {
            data: None,
            preparing: true,
            stale: false,
            retry_after_ms: 750,
        }),
        "failed" => Err(fail(state.error.unwrap_or_else(|| {
            "the runtime's Management API did not answer; try again".into()
        }))),
        _ => Ok(Fetch {
            data: state.data,
            preparing: false,
            stale: state.stale,
            retry_after_ms: if state.stale { 3000 } else { 0 },
        }),
    }
}

/// Reads `key` from an MI runtime the caller may view (RUNNING only).
fn mi_read(ctx: &Ctx, runtime_id: &str, key: ReadKey, not_found: &str) -> Res<Fetch> {
    let Some((r, _)) = visible_runtime(ctx, runtime_id)? else {
        return Err(fail(not_found));
    };
    if r.runtime_type != "MI" {
        return Err(fail(format!(
            "Runtime {runtime_id} is a {} runtime; this field reads an MI runtime's Management API",
            r.runtime_type
        )));
    }
    if r.status != RtStatus::Running {
        return Err(fail("The runtime is not online"));
    }
    fetch(ctx.deps.mi.read(runtime_id, key, ctx.now))
}

fn list_of(v: &Option<Value>) -> Vec<Value> {
    v.as_ref()
        .and_then(|d| d.get("list"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn str_of(v: &Value, key: &str) -> String {
    text(v, key).unwrap_or_default()
}

// ---- artifact lists ---------------------------------------------------------

/// The ScopeView rows of one MI kind for a component in an environment, or
/// `None` when the caller may not view them (an empty page).
fn mi_artifacts(
    ctx: &Ctx,
    environment_id: &str,
    component_id: &str,
    kind: MiKind,
) -> Res<Option<(Vec<ArtifactView>, ScopeView)>> {
    let (i, p) = component_by_id(ctx, component_id)?;
    let e = environment_by_id(ctx, environment_id)?;
    if !can_view(&ctx.principal, &target_of(&i, Some(&e))) {
        return Ok(None);
    }
    let scope = scope_of(&p, &i, &e);
    let mut view = crate::mi::view::scope_view(
        &ctx.deps.store,
        &ctx.deps.liveness,
        &ctx.deps.commands,
        &scope,
        Only {
            kind: Some(kind),
            name: None,
        },
    )
    .map_err(from_error)?;
    let rows = std::mem::take(&mut view.artifacts);
    Ok(Some((rows, view)))
}

fn runtimes_info(a: &ArtifactView, view: &ScopeView) -> (Vec<String>, Vec<ArtifactRuntimeInfo>) {
    let ids: Vec<String> = a.runtimes.iter().map(|r| r.runtime_id.clone()).collect();
    let infos = a
        .runtimes
        .iter()
        .map(|r| {
            let rt = view.runtimes.iter().find(|v| v.runtime_id == r.runtime_id);
            ArtifactRuntimeInfo {
                runtime_id: r.runtime_id.clone(),
                runtime_name: rt.and_then(|v| v.name.clone()),
                status: rt.map_or("OFFLINE", |v| v.status.as_str()).into(),
            }
        })
        .collect();
    (ids, infos)
}

fn state_of(s: &Option<String>) -> ArtifactState {
    match s.as_deref() {
        Some(v) if v.eq_ignore_ascii_case("disabled") || v.eq_ignore_ascii_case("inactive") => {
            ArtifactState::Disabled
        }
        _ => ArtifactState::Enabled,
    }
}

/// Observed value overlaid with the desired one (§4.8), and whether every replica converged.
fn overlay(
    desired: &Option<String>,
    observed: Option<String>,
    in_sync: bool,
) -> (Option<String>, Option<bool>) {
    match desired {
        Some(d) => (Some(d.clone()), Some(in_sync)),
        None => (observed, None),
    }
}

fn first_observed(
    a: &ArtifactView,
    f: impl Fn(&crate::mi::view::OnRuntime) -> Option<String>,
) -> Option<String> {
    a.runtimes.iter().find_map(f)
}

struct Common {
    state: ArtifactState,
    state_in_sync: Option<bool>,
    tracing: String,
    tracing_in_sync: Option<bool>,
    statistics: String,
    statistics_in_sync: Option<bool>,
    runtime_ids: Vec<String>,
    runtimes: Vec<ArtifactRuntimeInfo>,
}

/// Whether every RUNNING replica reports the value desired of it for one
/// field (`want` and `have` pick the field); replicas that are not running
/// are not waited for, as in the REST view.
fn field_in_sync(
    a: &ArtifactView,
    view: &ScopeView,
    want: impl Fn(&crate::mi::view::OnRuntime) -> Option<String>,
    have: impl Fn(&crate::mi::view::OnRuntime) -> Option<String>,
) -> bool {
    a.runtimes.iter().all(|r| {
        let running = view
            .runtimes
            .iter()
            .any(|v| v.runtime_id == r.runtime_id && v.status == RtStatus::Running);
        match (want(r), have(r)) {
            (None, _) => true,
            _ if !running => true,
            (Some(w), Some(h)) => crate::commands::same(&w, &h),
            (Some(_), None) => false,
        }
    })
}

fn common(a: &ArtifactView, view: &ScopeView) -> Common {
    let (state, state_in_sync) = overlay(
        &a.desired.state,
        first_observed(a, |r| r.state.clone()),
        field_in_sync(a, view, |r| r.desired.state.clone(), |r| r.state.clone()),
    );
    let (tracing, tracing_in_sync) = overlay(
        &a.desired.tracing,
        first_observed(a, |r| r.tracing.clone()),
        field_in_sync(
            a,
            view,
            |r| r.desired.tracing.clone(),
            |r| r.tracing.clone(),
        ),
    );
    let (statistics, statistics_in_sync) = overlay(
        &a.desired.statistics,
        first_observed(a, |r| r.statistics.clone()),
        field_in_sync(
            a,
            view,
            |r| r.desired.statistics.clone(),
            |r| r.statistics.clone(),
        ),
    );
    let (runtime_ids, runtimes) = runtimes_info(a, view);
    Common {
        state: state_of(&state),
        state_in_sync,
        tracing: tracing.unwrap_or_else(|| "disabled".into()),
        tracing_in_sync,
        statistics: statistics.unwrap_or_else(|| "disabled".into()),
        statistics_in_sync,
        runtime_ids,
        runtimes,
    }
}

macro_rules! mi_list {
    ($ctx:expr, $env:expr, $comp:expr, $pagination:expr, $kind:expr, $page:ident, $build:expr) => {{
        match mi_artifacts($ctx, &$env, &$comp, $kind)? {
            None => Ok($page {
                items: Vec::new(),
                page_info: empty_page(),
            }),
            Some((rows, view)) => {
                let build = $build;
                let items = rows.iter().map(|a| build(a, &view)).collect::<Vec<_>>();
                let (items, page_info) = paged($ctx, items, $pagination.as_ref())?;
                Ok($page { items, page_info })
            }
        }
    }};
}

// ---- BI artifacts --------------------------------------------------------

/// The BI view of a component in an environment (`None`: caller may not view it).
fn bi_view(
    ctx: &Ctx,
    environment_id: &str,
    component_id: &str,
) -> Res<Option<(crate::commands::ArtifactsView, Scope)>> {
    let (i, p) = component_by_id(ctx, component_id)?;
    let e = environment_by_id(ctx, environment_id)?;
    if !can_view(&ctx.principal, &target_of(&i, Some(&e))) {
        return Ok(None);
    }
    let scope = scope_of(&p, &i, &e);
    let view = ctx
        .deps
        .commands
        .view(&ctx.deps.store, &ctx.deps.liveness, &scope)
        .map_err(from_error)?;
    Ok(Some((view, scope)))
}

fn bi_runtimes(view: &crate::commands::ArtifactsView, ids: &[String]) -> Vec<ArtifactRuntimeInfo> {
    ids.iter()
        .map(|id| {
            let r = view.runtimes.iter().find(|r| &r.runtime_id == id);
            ArtifactRuntimeInfo {
                runtime_id: id.clone(),
                runtime_name: r.and_then(|r| r.name.clone()),
                status: r.map_or("OFFLINE", |r| r.status.as_str()).into(),
            }
        })
        .collect()
}

fn listener_out(
    l: &crate::commands::ListenerView,
    merged: Option<&crate::commands::ArtifactsView>,
) -> Listener {
    let observed = l.runtimes.first().map(|r| r.state.clone());
    let (state, in_sync) = overlay(&l.desired_state, observed, l.in_sync);
    Listener {
        name: l.name.clone(),
        package_name: l.package.clone().unwrap_or_default(),
        protocol: l.protocol.clone().unwrap_or_default(),
        host: l.host.clone(),
        port: l.port.and_then(|p| i32::try_from(p).ok()),
        destination: None,
        queue: None,
        path: None,
        state: state_of(&state),
        state_in_sync: in_sync,
        runtime_ids: merged.map(|_| l.runtime_ids.clone()),
        runtimes: merged.map(|v| bi_runtimes(v, &l.runtime_ids)),
    }
}

fn service_out(
    s: &crate::commands::ServiceView,
    view: &crate::commands::ArtifactsView,
    merged: bool,
) -> Service {
    Service {
        name: s.name.clone(),
        package_name: s.package.clone().unwrap_or_default(),
        base_path: s.base_path.clone().unwrap_or_default(),
        state: state_of(&s.state),
        state_in_sync: None,
        kind: "http".into(),
        resources: s
            .resources
            .iter()
            .map(|r| Resource {
                path: r.url.clone(),
                method: r.methods.join(","),
                url: r.url.clone(),
                methods: r.methods.clone(),
            })
            .collect(),
        listeners: view
            .listeners
            .iter()
            .filter(|l| s.listeners.contains(&l.name))
            .map(|l| listener_out(l, None))
            .collect(),
        runtime_ids: merged.then(|| s.runtime_ids.clone()),
        runtimes: merged.then(|| bi_runtimes(view, &s.runtime_ids)),
    }
}

/// The BI view of one runtime alone (its services and listeners).
/// The definitions icpd kept for a runtime (files it refused are left out).
fn definition_records(ctx: &Ctx, runtime_id: &str) -> Res<Vec<OpenApiDefinitionRecord>> {
    let stored = crate::contracts::definitions(&ctx.deps.store, runtime_id).map_err(from_error)?;
    Ok(stored
        .into_iter()
        .filter_map(|d| {
            Some(OpenApiDefinitionRecord {
                definition: d.new.definition?,
                file_name: d.new.file_name,
            })
        })
        .collect())
}

fn runtime_bi_view(ctx: &Ctx, runtime_id: &str) -> Res<Option<crate::commands::ArtifactsView>> {
    let Some((r, _)) = visible_runtime(ctx, runtime_id)? else {
        return Ok(None);
    };
    let i = ctx.integration(r.integration_id)?;
    let e = ctx.environment(r.environment_id)?;
    let (Some(i), Some(e)) = (i, e) else {
        return Ok(None);
    };
    let Some(p) = ctx.project(i.project_id)? else {
        return Ok(None);
    };
    let mut view = ctx
        .deps
        .commands
        .view(&ctx.deps.store, &ctx.deps.liveness, &scope_of(&p, &i, &e))
        .map_err(from_error)?;
    // Keep what this runtime reports.
    view.services
        .retain(|s| s.runtime_ids.contains(&r.runtime_id));
    view.listeners
        .retain(|l| l.runtime_ids.contains(&r.runtime_id));
    for l in &mut view.listeners {
        l.runtimes.retain(|x| x.runtime_id == r.runtime_id);
        l.runtime_ids = vec![r.runtime_id.clone()];
        l.in_sync = l.runtimes.iter().all(|x| x.in_sync);
    }
    view.loggers
        .retain(|l| l.runtime_ids.contains(&r.runtime_id));
    for l in &mut view.loggers {
        l.runtimes.retain(|x| x.runtime_id == r.runtime_id);
        l.runtime_ids = vec![r.runtime_id.clone()];
        l.in_sync = l.runtimes.iter().all(|x| x.in_sync);
    }
    view.runtimes.retain(|x| x.runtime_id == r.runtime_id);
    Ok(Some(view))
}

fn level_of(s: &str) -> LogLevel {
    match s.to_ascii_uppercase().as_str() {
        "FATAL" => LogLevel::Fatal,
        "ERROR" => LogLevel::Error,
        "WARN" | "WARNING" => LogLevel::Warn,
        "DEBUG" => LogLevel::Debug,
        "TRACE" | "ALL" => LogLevel::Trace,
        "OFF" => LogLevel::Off,
        _ => LogLevel::Info,
    }
}

/// MI loggers as `GET /management/logging` lists them: (loggerName, componentName, level).
fn mi_loggers(data: &Option<Value>) -> Vec<(String, String, String)> {
    list_of(data)
        .iter()
        .map(|l| {
            (
                str_of(l, "loggerName"),
                str_of(l, "componentName"),
                str_of(l, "level"),
            )
        })
        .collect()
}

/// The artifact kinds with their counts for a component (in one environment or all).
fn artifact_type_counts(
    ctx: &Ctx,
    i: &IntegrationInfo,
    p: &ProjectInfo,
    envs: &[EnvironmentInfo],
) -> Res<Vec<ArtifactTypeCount>> {
    let mut services = std::collections::BTreeSet::new();
    let mut listeners = std::collections::BTreeSet::new();
    let mut mi: std::collections::BTreeMap<MiKind, std::collections::BTreeSet<String>> =
        Default::default();
    for e in envs {
        let scope = scope_of(p, i, e);
        if i.runtime_type == "MI" {
            let view = crate::mi::view::scope_view(
                &ctx.deps.store,
                &ctx.deps.liveness,
                &ctx.deps.commands,
                &scope,
                Only::default(),
            )
            .map_err(from_error)?;
            for a in view.artifacts {
                mi.entry(a.kind).or_default().insert(a.name);
            }
        } else {
            let view = ctx
                .deps
                .commands
                .view(&ctx.deps.store, &ctx.deps.liveness, &scope)
                .map_err(from_error)?;
            services.extend(view.services.into_iter().map(|s| s.name));
            listeners.extend(view.listeners.into_iter().map(|l| l.name));
        }
    }
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let mut out = Vec::new();
    if !services.is_empty() {
        out.push(ArtifactTypeCount {
            artifact_type: ArtifactType::Service,
            artifact_count: count(services.len()),
        });
    }
    if !listeners.is_empty() {
        out.push(ArtifactTypeCount {
            artifact_type: ArtifactType::Listener,
            artifact_count: count(listeners.len()),
        });
    }
    for (kind, names) in mi {
        out.push(ArtifactTypeCount {
            artifact_type: artifact_type_of(kind),
            artifact_count: count(names.len()),
        });
    }
    Ok(out)
}

pub(crate) fn artifact_type_of(kind: MiKind) -> ArtifactType {
    match kind {
        MiKind::Api => ArtifactType::RestApi,
        MiKind::ProxyService => ArtifactType::ProxyService,
        MiKind::Endpoint => ArtifactType::Endpoint,
        MiKind::InboundEndpoint => ArtifactType::InboundEndpoint,
        MiKind::Sequence => ArtifactType::Sequence,
        MiKind::Task => ArtifactType::Task,
        MiKind::Template => ArtifactType::Template,
        MiKind::MessageStore => ArtifactType::MessageStore,
        MiKind::MessageProcessor => ArtifactType::MessageProcessor,
        MiKind::LocalEntry => ArtifactType::LocalEntry,
        MiKind::DataService => ArtifactType::DataService,
        MiKind::CarbonApp => ArtifactType::CompositeApp,
        MiKind::DataSource => ArtifactType::DataSource,
        MiKind::Connector => ArtifactType::Connector,
        MiKind::RegistryResource => ArtifactType::RegistryResource,
    }
}

/// An `artifactType` argument: a backend string (`proxy-service`, §4.2) or
/// an `ArtifactType` value (`ProxyService`); ICP's `RestApi` is `api`.
pub(crate) fn parse_kind(s: &str) -> Option<MiKind> {
    let t = s.trim();
    if let Some(k) = MiKind::parse(&t.to_ascii_lowercase()) {
        return Some(k);
    }
    let flat: String = t
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    MiKind::ALL.into_iter().find(|k| {
        let name = k.as_str().replace('-', "");
        name == flat
            || (flat == "restapi" && *k == MiKind::Api)
            || (flat == "compositeapp" && *k == MiKind::CarbonApp)
            || (flat == "dataservice" && *k == MiKind::DataService)
    })
}

/// An `artifactType` argument, or ICP-style error naming it.
pub(crate) fn kind_arg(artifact_type: &str) -> Res<MiKind> {
    parse_kind(artifact_type).ok_or_else(|| {
        fail(format!(
            "Unsupported artifact type '{}'",
            artifact_type.chars().take(60).collect::<String>()
        ))
    })
}

/// The environment `environment_id` names, or every environment.
pub(crate) fn environments_named(
    ctx: &Ctx,
    environment_id: Option<&str>,
) -> Res<Vec<EnvironmentInfo>> {
    match environment_id {
        Some(e) => Ok(vec![environment_by_id(ctx, e)?]),
        None => ctx
            .deps
            .store
            .read(|tx| tx.all_environments())
            .map_err(from_error),
    }
}

/// The runtime a component-scoped MI detail read asks (§6.7): `runtime_id`
/// if it is one of the component's runtimes (in the environment if given),
/// else the first; it must be RUNNING.
fn detail_runtime(
    ctx: &Ctx,
    component_id: &str,
    environment_id: Option<&str>,
    runtime_id: Option<&str>,
) -> Res<String> {
    let (i, _) = component_by_id(ctx, component_id)?;
    let e = environment_id
        .map(|e| environment_by_id(ctx, e))
        .transpose()?;
    if !can_view(&ctx.principal, &target_of(&i, e.as_ref())) {
        return Err(fail("Insufficient permissions to view component artifacts"));
    }
    let query = RuntimeScope {
        integration_id: Some(i.id),
        environment_id: e.as_ref().map(|e| e.id),
        ..RuntimeScope::default()
    };
    let (rows, _) = crate::runtimes::offset_page(
        &ctx.deps.store,
        &ctx.deps.liveness,
        &ctx.principal,
        &query,
        0,
        1000,
    )
    .map_err(from_error)?;
    let chosen = runtime_id
        .and_then(|id| rows.iter().find(|r| r.record.runtime_id == id))
        .or_else(|| rows.first())
        .ok_or_else(|| fail("No runtimes found for this component"))?;
    if chosen.record.status != RtStatus::Running {
        return Err(fail("The runtime is not online"));
    }
    Ok(chosen.record.runtime_id.clone())
}

fn detail_read(
    ctx: &Ctx,
    component_id: &str,
    environment_id: Option<&str>,
    runtime_id: Option<&str>,
    key: Option<ReadKey>,
) -> Res<Fetch> {
    let key = key
        .ok_or_else(|| fail("MI's Management API offers no detail read for this artifact type"))?;
    let rt = detail_runtime(ctx, component_id, environment_id, runtime_id)?;
    fetch(ctx.deps.mi.read(&rt, key, ctx.now))
}

/// The entry a Management API artifact read answers (a list of one, or the object).
fn detail_entry(data: &Option<Value>) -> Value {
    match data {
        Some(Value::Object(o)) if o.contains_key("list") => o
            .get("list")
            .and_then(Value::as_array)
            .and_then(|l| l.first().cloned())
            .unwrap_or(Value::Null),
        Some(v) => v.clone(),
        None => Value::Null,
    }
}

fn fetchable_text(f: Fetch, content: impl FnOnce(&Option<Value>) -> String) -> FetchableText {
    FetchableText {
        content: if f.preparing {
            String::new()
        } else {
            content(&f.data)
        },
        preparing: f.preparing,
        stale: f.stale,
        retry_after_ms: f.retry_after_ms,
    }
}

fn fetchable_params(
    f: Fetch,
    params: impl FnOnce(&Value) -> Vec<Parameter>,
) -> FetchableParameters {
    FetchableParameters {
        parameters: if f.preparing {
            Vec::new()
        } else {
            params(&detail_entry(&f.data))
        },
        preparing: f.preparing,
        stale: f.stale,
        retry_after_ms: f.retry_after_ms,
    }
}

/// Name/value rows for the members `keys` (as `(label, member)`), absent values left out.
fn rows(entry: &Value, keys: &[(&str, &str)]) -> Vec<Parameter> {
    keys.iter()
        .filter_map(|(label, member)| {
            text(entry, member).map(|v| Parameter {
                name: (*label).into(),
                value: v,
            })
        })
        .collect()
}

/// A parameter list or map in an artifact entry as name/value rows.
fn parameter_rows(v: Option<&Value>) -> Vec<Parameter> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| Parameter {
                name: str_of(p, "name"),
                value: text(p, "value").unwrap_or_default(),
            })
            .collect(),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, v)| Parameter {
                name: k.clone(),
                value: match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn configuration_text(data: &Option<Value>) -> String {
    let e = detail_entry(data);
    match e.get("configuration") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => match &e {
            Value::Null => String::new(),
            other => other.to_string(),
        },
    }
}

/// Resolves `runtimes(...)`'s arguments (§6.1) into the runtimes to list,
/// or `None` when the answer is an empty page (an unknown id).
fn runtimes_query(
    ctx: &Ctx,
    environment_id: Option<&str>,
    project_id: Option<&str>,
    component_id: Option<&str>,
) -> Res<Option<RuntimeScope>> {
    let mut q = RuntimeScope::default();
    if let Some(pid) = project_id {
        match id_of(pid).map(|n| ctx.project(n)).transpose()?.flatten() {
            Some(p) => q.project_id = Some(p.id),
            None => return Ok(None),
        }
    }
    if let Some(cid) = component_id {
        let Some(i) = id_of(cid)
            .map(|n| ctx.integration(n))
            .transpose()?
            .flatten()
        else {
            return Ok(None);
        };
        if q.project_id.is_some_and(|p| p != i.project_id) {
            return Ok(None);
        }
        // The integration implies its project.
        q.project_id = None;
        q.integration_id = Some(i.id);
    }
    if let Some(eid) = environment_id {
        match id_of(eid)
            .map(|n| ctx.environment(n))
            .transpose()?
            .flatten()
        {
            Some(e) => q.environment_id = Some(e.id),
            None => return Ok(None),
        }
    }
    // Without a project, the organization's runtimes page (§6.1 rule 2):
    // the runtimes of the environment the caller may view, as the REST list.
    if q.project_id.is_none() && q.integration_id.is_none() && q.environment_id.is_none() {
        return Err(fail("Either projectId or componentId must be provided"));
    }
    Ok(Some(q))
}

// ---- the root ------------------------------------------------------------------

/// ICP's `Query`.
pub struct Query;

#[graphql_object]
#[graphql(context = Ctx)]
impl Query {
    /// Registered runtimes, newest registration first; `status` and `runtimeType` filter exactly.
    fn runtimes(
        ctx: &Ctx,
        status: Option<String>,
        runtime_type: Option<String>,
        environment_id: Option<String>,
        project_id: Option<String>,
        component_id: Option<String>,
        pagination: Option<PaginationInput>,
    ) -> Res<RuntimesPage> {
        let empty = || RuntimesPage {
            items: Vec::new(),
            page_info: empty_page(),
        };
        let Some(mut q) = runtimes_query(
            ctx,
            environment_id.as_deref(),
            project_id.as_deref(),
            component_id.as_deref(),
        )?
        else {
            return Ok(empty());
        };
        if let Some(text) = status.as_deref() {
            // Exact match, as the reference filters.
            match RtStatus::parse(text).filter(|s| s.as_str() == text) {
                Some(s) => q.status = Some(s),
                None => return Ok(empty()),
            }
        }
        if let Some(t) = runtime_type.as_deref() {
            if !matches!(t, "BI" | "MI") {
                return Ok(empty());
            }
            q.runtime_type = Some(t.to_string());
        }
        // Paged in SQL (the list may be 50,000 long); the page rules of §4.5.
        let limit = pagination.as_ref().and_then(|p| p.limit);
        let (offset, take) = match limit {
            None => (0, super::MAX_ITEMS as i64 + 1),
            Some(l) => (
                i64::from(
                    pagination
                        .as_ref()
                        .and_then(|p| p.offset)
                        .unwrap_or(0)
                        .max(0),
                ),
                i64::from(l.clamp(0, MAX_PAGE_LIMIT)),
            ),
        };
        let (rows, total) = crate::runtimes::offset_page(
            &ctx.deps.store,
            &ctx.deps.liveness,
            &ctx.principal,
            &q,
            offset,
            take,
        )
        .map_err(from_error)?;
        ctx.charge(rows.len())?;
        let total32 = i32::try_from(total).unwrap_or(i32::MAX);
        let page_info = match limit {
            None => PageInfo {
                total: total32,
                limit: total32,
                offset: 0,
            },
            Some(l) => PageInfo {
                total: total32,
                limit: l.clamp(0, MAX_PAGE_LIMIT),
                offset: i32::try_from(offset.min(total)).unwrap_or(i32::MAX),
            },
        };
        let items = rows
            .iter()
            .map(|r: &RuntimeListed| {
                runtime_out(
                    ctx,
                    &r.record,
                    &r.node_info,
                    (r.management_host.clone(), r.management_port),
                )
            })
            .collect::<Res<Vec<_>>>()?;
        Ok(RuntimesPage { items, page_info })
    }

    /// One runtime by id, with its artifacts and BI log levels; null when unknown or not visible.
    fn runtime(ctx: &Ctx, runtime_id: String) -> Res<Option<Runtime>> {
        let Some((_, target)) = visible_runtime(ctx, &runtime_id)? else {
            return Ok(None);
        };
        if !ctx.principal.has(Permission::IntegrationView, &target) {
            return Ok(None);
        }
        let d = crate::runtimes::show(&ctx.deps.store, &runtime_id).map_err(from_error)?;
        let mut record = d.runtime.clone();
        if let Some(s) = ctx.deps.liveness.status(&runtime_id) {
            record.status = s;
        }
        let mgmt = d
            .management
            .as_ref()
            .map(|m| (Some(m.host.clone()), Some(i64::from(m.port))))
            .unwrap_or((None, None));
        let mut out = runtime_out(ctx, &record, &d.node_info, mgmt)?;
        out.log_levels = Some(
            d.log_levels
                .iter()
                .map(|(c, l)| RuntimeLogLevelRecord {
                    runtime_id: runtime_id.clone(),
                    component_name: c.clone(),
                    log_level: l.clone(),
                })
                .collect(),
        );
        out.artifacts = Some(runtime_artifacts(ctx, &runtime_id)?);
        out.open_api_definitions = Some(definition_records(ctx, &runtime_id)?);
        Ok(Some(out))
    }

    /// A Choreo-era deployment summary; null when the component is unknown or not visible.
    fn component_deployment(
        ctx: &Ctx,
        org_handler: String,
        org_uuid: String,
        component_id: String,
        version_id: String,
        environment_id: String,
    ) -> Res<Option<ComponentDeployment>> {
        let _ = (org_handler, org_uuid);
        let Some(i) = id_of(&component_id)
            .map(|n| ctx.integration(n))
            .transpose()?
            .flatten()
        else {
            return Ok(None);
        };
        let Some(e) = id_of(&environment_id)
            .map(|n| ctx.environment(n))
            .transpose()?
            .flatten()
        else {
            return Ok(None);
        };
        if !ctx
            .principal
            .has(Permission::IntegrationView, &target_of(&i, Some(&e)))
        {
            return Ok(None);
        }
        let Some(p) = ctx.project(i.project_id)? else {
            return Ok(None);
        };
        let (rows, _) = crate::runtimes::offset_page(
            &ctx.deps.store,
            &ctx.deps.liveness,
            &ctx.principal,
            &RuntimeScope {
                project_id: Some(p.id),
                integration_id: Some(i.id),
                environment_id: Some(e.id),
                ..RuntimeScope::default()
            },
            0,
            1,
        )
        .map_err(from_error)?;
        let newest = rows.first();
        let running = newest.is_some_and(|r| r.record.status == RtStatus::Running);
        Ok(Some(ComponentDeployment {
            environment_id: e.id.to_string(),
            config_count: 0,
            api_id: None,
            release_id: String::new(),
            api_revision: None,
            build: BuildInfo {
                build_id: String::new(),
                deployed_at: newest.map(|r| rfc3339(r.record.registered_at)),
                commit: None,
                source_config_migration_status: None,
                run_id: String::new(),
            },
            image_url: String::new(),
            invoke_url: String::new(),
            version_id,
            deployment_status: if running { "ACTIVE" } else { "NOT_DEPLOYED" }.into(),
            deployment_status_v2: if running { "ACTIVE" } else { "NOT_DEPLOYED" }.into(),
            version: newest.and_then(|r| r.record.version.clone()),
            cron: None,
            cron_timezone: None,
        }))
    }

    /// BI services of one runtime.
    fn services(
        ctx: &Ctx,
        runtime_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<ServicesPage> {
        if !runtime_exists(ctx, &runtime_id)? {
            return Err(fail("Runtime not found"));
        }
        let Some(view) = runtime_bi_view(ctx, &runtime_id)? else {
            return Ok(ServicesPage {
                items: Vec::new(),
                page_info: empty_page(),
            });
        };
        let items = view
            .services
            .iter()
            .map(|s| service_out(s, &view, false))
            .collect();
        let (items, page_info) = paged(ctx, items, pagination.as_ref())?;
        Ok(ServicesPage { items, page_info })
    }

    /// OpenAPI documents a BI runtime reported in its full heartbeat (`definition` is JSON text); empty when not visible.
    fn open_api_definitions_by_runtime(
        ctx: &Ctx,
        runtime_id: String,
    ) -> Res<Vec<OpenApiDefinitionRecord>> {
        if !runtime_exists(ctx, &runtime_id)? {
            return Err(fail("Runtime not found"));
        }
        let visible = visible_runtime(ctx, &runtime_id)?
            .is_some_and(|(_, t)| ctx.principal.has(Permission::IntegrationView, &t));
        if !visible {
            return Ok(Vec::new());
        }
        definition_records(ctx, &runtime_id)
    }

    /// BI services of a component in an environment, merged across replicas.
    fn services_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<ServicesPage> {
        let Some((view, _)) = bi_view(ctx, &environment_id, &component_id)? else {
            return Ok(ServicesPage {
                items: Vec::new(),
                page_info: empty_page(),
            });
        };
        let items = view
            .services
            .iter()
            .map(|s| service_out(s, &view, true))
            .collect();
        let (items, page_info) = paged(ctx, items, pagination.as_ref())?;
        Ok(ServicesPage { items, page_info })
    }

    /// BI listeners of one runtime.
    fn listeners(
        ctx: &Ctx,
        runtime_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<ListenersPage> {
        if !runtime_exists(ctx, &runtime_id)? {
            return Err(fail("Runtime not found"));
        }
        let Some(view) = runtime_bi_view(ctx, &runtime_id)? else {
            return Ok(ListenersPage {
                items: Vec::new(),
                page_info: empty_page(),
            });
        };
        let items = view
            .listeners
            .iter()
            .map(|l| listener_out(l, None))
            .collect();
        let (items, page_info) = paged(ctx, items, pagination.as_ref())?;
        Ok(ListenersPage { items, page_info })
    }

    /// BI listeners of a component in an environment, desired state overlaid.
    fn listeners_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<ListenersPage> {
        let Some((view, _)) = bi_view(ctx, &environment_id, &component_id)? else {
            return Ok(ListenersPage {
                items: Vec::new(),
                page_info: empty_page(),
            });
        };
        let items = view
            .listeners
            .iter()
            .map(|l| listener_out(l, Some(&view)))
            .collect();
        let (items, page_info) = paged(ctx, items, pagination.as_ref())?;
        Ok(ListenersPage { items, page_info })
    }

    /// Workflow definitions: the bridge protocol icpd speaks reports none, so always empty.
    fn workflows_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<WorkflowsPage> {
        let _ = pagination;
        component_by_id(ctx, &component_id)?;
        environment_by_id(ctx, &environment_id)?;
        Ok(WorkflowsPage {
            items: Vec::new(),
            page_info: empty_page(),
        })
    }

    /// BI `main` programs of a component in an environment, by package coordinates.
    fn automations_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<AutomationsPage> {
        let Some((view, scope)) = bi_view(ctx, &environment_id, &component_id)? else {
            return Ok(AutomationsPage {
                items: Vec::new(),
                page_info: empty_page(),
            });
        };
        let runtimes = ctx
            .deps
            .store
            .read(|tx| tx.scope_runtimes(scope.integration_id, scope.environment_id))
            .map_err(from_error)?;
        let mut items: Vec<Automation> = Vec::new();
        for r in &runtimes {
            let Some(main) = &r.artifacts.main else {
                continue;
            };
            let (org, name, version) = (
                str_of(main, "packageOrg"),
                str_of(main, "packageName"),
                str_of(main, "packageVersion"),
            );
            let at = rfc3339(r.record.registered_at);
            let live = view
                .runtimes
                .iter()
                .find(|v| v.runtime_id == r.record.runtime_id);
            let info = AutomationRuntimeInfo {
                runtime_id: r.record.runtime_id.clone(),
                runtime_name: r.record.name.clone(),
                status: live.map_or(r.record.status, |v| v.status).as_str().into(),
                execution_timestamps: vec![at.clone()],
            };
            match items.iter_mut().find(|a| {
                a.package_org == org && a.package_name == name && a.package_version == version
            }) {
                Some(a) => {
                    if at > a.execution_timestamp {
                        a.execution_timestamp = at;
                    }
                    a.runtime_ids
                        .get_or_insert_with(Vec::new)
                        .push(info.runtime_id.clone());
                    a.runtimes.get_or_insert_with(Vec::new).push(info);
                }
                None => items.push(Automation {
                    package_org: org,
                    package_name: name,
                    package_version: version,
                    execution_timestamp: at,
                    runtime_ids: Some(vec![info.runtime_id.clone()]),
                    runtimes: Some(vec![info]),
                }),
            }
        }
        let (items, page_info) = paged(ctx, items, pagination.as_ref())?;
        Ok(AutomationsPage { items, page_info })
    }

    /// MI REST APIs of a component in an environment.
    fn rest_apis_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<RestApisPage> {
        mi_list!(
            ctx,
            environment_id,
            component_id,
            pagination,
            MiKind::Api,
            RestApisPage,
            |a: &ArtifactView, v: &ScopeView| {
                let c = common(a, v);
                let d = &a.detail;
                RestApi {
                    name: a.name.clone(),
                    url: str_of(d, "url"),
                    urls: d
                        .get("urls")
                        .and_then(Value::as_array)
                        .map(|u| {
                            u.iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                    context: str_of(d, "context"),
                    version: text(d, "version").filter(|v| !v.is_empty()),
                    state: c.state,
                    state_in_sync: c.state_in_sync,
                    tracing: c.tracing,
                    tracing_in_sync: c.tracing_in_sync,
                    statistics: c.statistics,
                    statistics_in_sync: c.statistics_in_sync,
                    composite_app: a.carbon_app.clone(),
                    resources: d
                        .get("resources")
                        .and_then(Value::as_array)
                        .map(|rs| {
                            rs.iter()
                                .map(|r| ApiResource {
                                    path: str_of(r, "path"),
                                    methods: str_of(r, "methods"),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    runtime_ids: Some(c.runtime_ids),
                    runtimes: Some(c.runtimes),
                }
            }
        )
    }

    /// MI carbon applications of a component in an environment.
    fn composite_apps_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<CompositeAppsPage> {
        mi_list!(
            ctx,
            environment_id,
            component_id,
            pagination,
            MiKind::CarbonApp,
            CompositeAppsPage,
            |a: &ArtifactView, v: &ScopeView| {
                let c = common(a, v);
                let d = &a.detail;
                let faulty = a.runtimes.iter().any(|r| {
                    r.state
                        .as_deref()
                        .is_some_and(|s| s.eq_ignore_ascii_case("faulty"))
                }) || a.error.is_some();
                CompositeApp {
                    name: a.name.clone(),
                    component_id: Some(component_id.clone()),
                    version: text(d, "version"),
                    state: if faulty { "Faulty" } else { "Active" }.into(),
                    status: text(d, "status"),
                    error_message: a.error.clone(),
                    artifacts: Some(
                        d.get("artifacts")
                            .and_then(Value::as_array)
                            .map(|l| {
                                l.iter()
                                    .map(|x| CompositeAppArtifact {
                                        name: str_of(x, "name"),
                                        kind: str_of(x, "type"),
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    ),
                    runtime_ids: Some(c.runtime_ids),
                    runtimes: Some(c.runtimes),
                }
            }
        )
    }

    /// The fault stack trace of a faulty carbon application on one runtime.
    fn composite_app_fault_stack_trace(
        ctx: &Ctx,
        runtime_id: String,
        app_name: String,
    ) -> Res<CompositeAppFaultStackTrace> {
        if app_name.trim().is_empty() {
            return Err(fail("App name must not be empty"));
        }
        if !runtime_exists(ctx, &runtime_id)? {
            return Err(fail("Runtime not found"));
        }
        let f = mi_read(
            ctx,
            &runtime_id,
            ReadKey::CarbonAppFault(app_name.clone()),
            "Unauthorized",
        )?;
        Ok(CompositeAppFaultStackTrace {
            runtime_id,
            app_name,
            fault_stack_trace: f
                .data
                .as_ref()
                .map(|d| str_of(d, "faultStackTrace"))
                .unwrap_or_default(),
            preparing: f.preparing,
            stale: f.stale,
            retry_after_ms: f.retry_after_ms,
        })
    }

    /// The fault stack trace of a faulty data service on one runtime.
    fn data_service_fault_stack_trace(
        ctx: &Ctx,
        runtime_id: String,
        service_name: String,
    ) -> Res<DataServiceFaultStackTrace> {
        if service_name.trim().is_empty() {
            return Err(fail("Data service name must not be empty"));
        }
        if !runtime_exists(ctx, &runtime_id)? {
            return Err(fail("Runtime not found"));
        }
        let f = mi_read(
            ctx,
            &runtime_id,
            ReadKey::DataServiceFault(service_name.clone()),
            "Unauthorized",
        )?;
        Ok(DataServiceFaultStackTrace {
            runtime_id,
            service_name,
            fault_stack_trace: f
                .data
                .as_ref()
                .map(|d| str_of(d, "faultStackTrace"))
                .unwrap_or_default(),
            preparing: f.preparing,
            stale: f.stale,
            retry_after_ms: f.retry_after_ms,
        })
    }

    /// MI inbound endpoints of a component in an environment.
    fn inbound_endpoints_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<InboundEndpointsPage> {
        mi_list!(
            ctx,
            environment_id,
            component_id,
            pagination,
            MiKind::InboundEndpoint,
            InboundEndpointsPage,
            |a: &ArtifactView, v: &ScopeView| {
                let c = common(a, v);
                let d = &a.detail;
                InboundEndpoint {
                    name: a.name.clone(),
                    protocol: text(d, "protocol"),
                    sequence: text(d, "sequence"),
                    statistics: Some(c.statistics),
                    statistics_in_sync: c.statistics_in_sync,
                    on_error: text(d, "onError"),
                    state: c.state,
                    state_in_sync: c.state_in_sync,
                    tracing: c.tracing,
                    tracing_in_sync: c.tracing_in_sync,
                    composite_app: a.carbon_app.clone(),
                    runtime_ids: Some(c.runtime_ids),
                    runtimes: Some(c.runtimes),
                }
            }
        )
    }

    /// MI endpoints of a component in an environment.
    fn endpoints_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<EndpointsPage> {
        mi_list!(
            ctx,
            environment_id,
            component_id,
            pagination,
            MiKind::Endpoint,
            EndpointsPage,
            |a: &ArtifactView, v: &ScopeView| {
                let c = common(a, v);
                let d = &a.detail;
                Endpoint {
                    name: a.name.clone(),
                    kind: str_of(d, "type"),
                    state: c.state,
                    state_in_sync: c.state_in_sync,
                    tracing: c.tracing,
                    tracing_in_sync: c.tracing_in_sync,
                    statistics: c.statistics,
                    statistics_in_sync: c.statistics_in_sync,
                    composite_app: a.carbon_app.clone(),
                    attributes: Some(
                        d.get("attributes")
                            .and_then(Value::as_array)
                            .map(|l| {
                                l.iter()
                                    .map(|x| EndpointAttribute {
                                        name: str_of(x, "name"),
                                        value: text(x, "value"),
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    ),
                    runtime_ids: Some(c.runtime_ids),
                    runtimes: Some(c.runtimes),
                }
            }
        )
    }

    /// MI sequences of a component in an environment.
    fn sequences_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<SequencesPage> {
        mi_list!(
            ctx,
            environment_id,
            component_id,
            pagination,
            MiKind::Sequence,
            SequencesPage,
            |a: &ArtifactView, v: &ScopeView| {
                let c = common(a, v);
                let d = &a.detail;
                Sequence {
                    name: a.name.clone(),
                    kind: text(d, "type"),
                    container: text(d, "container"),
                    state: c.state,
                    state_in_sync: c.state_in_sync,
                    tracing: c.tracing,
                    tracing_in_sync: c.tracing_in_sync,
                    statistics: c.statistics,
                    statistics_in_sync: c.statistics_in_sync,
                    composite_app: a.carbon_app.clone(),
                    runtime_ids: Some(c.runtime_ids),
                    runtimes: Some(c.runtimes),
                }
            }
        )
    }

    /// MI proxy services of a component in an environment.
    fn proxy_services_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<ProxyServicesPage> {
        mi_list!(
            ctx,
            environment_id,
            component_id,
            pagination,
            MiKind::ProxyService,
            ProxyServicesPage,
            |a: &ArtifactView, v: &ScopeView| {
                let c = common(a, v);
                let d = &a.detail;
                ProxyService {
                    name: a.name.clone(),
                    state: c.state,
                    state_in_sync: c.state_in_sync,
                    tracing: c.tracing,
                    tracing_in_sync: c.tracing_in_sync,
                    statistics: c.statistics,
                    statistics_in_sync: c.statistics_in_sync,
                    composite_app: a.carbon_app.clone(),
                    endpoints: Some(
                        d.get("endpoints")
                            .and_then(Value::as_array)
                            .map(|u| {
                                u.iter()
                                    .filter_map(|x| x.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    ),
                    runtime_ids: Some(c.runtime_ids),
                    runtimes: Some(c.runtimes),
                }
            }
        )
    }

    /// MI tasks of a component in an environment.
    fn tasks_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<TasksPage> {
        mi_list!(
            ctx,
            environment_id,
            component_id,
            pagination,
            MiKind::Task,
            TasksPage,
            |a: &ArtifactView, v: &ScopeView| {
                let c = common(a, v);
                let d = &a.detail;
                Task {
                    name: a.name.clone(),
                    class_name: text(d, "class"),
                    group: text(d, "group"),
                    state: c.state,
                    state_in_sync: c.state_in_sync,
                    composite_app: a.carbon_app.clone(),
                    runtime_ids: Some(c.runtime_ids),
                    runtimes: Some(c.runtimes),
                }
            }
        )
    }

    /// MI templates of a component in an environment.
    fn templates_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<TemplatesPage> {
        mi_list!(
            ctx,
            environment_id,
            component_id,
            pagination,
            MiKind::Template,
            TemplatesPage,
            |a: &ArtifactView, v: &ScopeView| {
                let c = common(a, v);
                Template {
                    name: a.name.clone(),
                    kind: str_of(&a.detail, "type"),
                    tracing: c.tracing,
                    statistics: c.statistics,
                    composite_app: a.carbon_app.clone(),
                    runtime_ids: Some(c.runtime_ids),
                    runtimes: Some(c.runtimes),
                }
            }
        )
    }

    /// MI message stores of a component in an environment.
    fn message_stores_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<MessageStoresPage> {
        mi_list!(
            ctx,
            environment_id,
            component_id,
            pagination,
            MiKind::MessageStore,
            MessageStoresPage,
            |a: &ArtifactView, v: &ScopeView| {
                let c = common(a, v);
                let d = &a.detail;
                MessageStore {
                    name: a.name.clone(),
                    kind: str_of(d, "type"),
                    size: d
                        .get("size")
                        .and_then(Value::as_i64)
                        .and_then(|n| i32::try_from(n).ok())
                        .unwrap_or(0),
                    state: c.state,
                    state_in_sync: c.state_in_sync,
                    composite_app: a.carbon_app.clone(),
                    runtime_ids: Some(c.runtime_ids),
                    runtimes: Some(c.runtimes),
                }
            }
        )
    }

    /// MI message processors of a component in an environment.
    fn message_processors_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<MessageProcessorsPage> {
        mi_list!(
            ctx,
            environment_id,
            component_id,
            pagination,
            MiKind::MessageProcessor,
            MessageProcessorsPage,
            |a: &ArtifactView, v: &ScopeView| {
                let c = common(a, v);
                let d = &a.detail;
                MessageProcessor {
                    name: a.name.clone(),
                    kind: str_of(d, "type"),
                    class_name: text(d, "class"),
                    state: c.state,
                    state_in_sync: c.state_in_sync,
                    composite_app: a.carbon_app.clone(),
                    runtime_ids: Some(c.runtime_ids),
                    runtimes: Some(c.runtimes),
                }
            }
        )
    }

    /// MI local entries of a component in an environment.
    fn local_entries_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<LocalEntriesPage> {
        mi_list!(
            ctx,
            environment_id,
            component_id,
            pagination,
            MiKind::LocalEntry,
            LocalEntriesPage,
            |a: &ArtifactView, v: &ScopeView| {
                let c = common(a, v);
                let d = &a.detail;
                LocalEntry {
                    name: a.name.clone(),
                    kind: str_of(d, "type"),
                    value: text(d, "value"),
                    state: c.state,
                    state_in_sync: c.state_in_sync,
                    composite_app: a.carbon_app.clone(),
                    runtime_ids: Some(c.runtime_ids),
                    runtimes: Some(c.runtimes),
                }
            }
        )
    }

    /// MI data services of a component in an environment.
    fn data_services_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<DataServicesPage> {
        mi_list!(
            ctx,
            environment_id,
            component_id,
            pagination,
            MiKind::DataService,
            DataServicesPage,
            |a: &ArtifactView, v: &ScopeView| {
                let c = common(a, v);
                let d = &a.detail;
                let faulty = a.error.is_some()
                    || a.runtimes.iter().any(|r| {
                        r.state.as_deref().is_some_and(|s| {
                            s.eq_ignore_ascii_case("UNKNOWN") || s.eq_ignore_ascii_case("faulty")
                        })
                    });
                DataService {
                    name: a.name.clone(),
                    description: text(d, "description"),
                    wsdl: text(d, "wsdl"),
                    state: if faulty { "Faulty" } else { "Active" }.into(),
                    status: Some(if faulty { "faulty" } else { "active" }.into()),
                    state_in_sync: c.state_in_sync,
                    composite_app: a.carbon_app.clone(),
                    error_message: a.error.clone(),
                    runtime_ids: Some(c.runtime_ids),
                    runtimes: Some(c.runtimes),
                }
            }
        )
    }

    /// MI data sources of a component in an environment.
    fn data_sources_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<DataSourcesPage> {
        mi_list!(
            ctx,
            environment_id,
            component_id,
            pagination,
            MiKind::DataSource,
            DataSourcesPage,
            |a: &ArtifactView, v: &ScopeView| {
                let c = common(a, v);
                let d = &a.detail;
                DataSource {
                    name: a.name.clone(),
                    kind: text(d, "type"),
                    driver: text(d, "driver"),
                    url: text(d, "url"),
                    username: text(d, "username"),
                    state: c.state,
                    runtime_ids: Some(c.runtime_ids),
                    runtimes: Some(c.runtimes),
                }
            }
        )
    }

    /// MI registry resources (top level) of a component in an environment.
    fn registry_resources_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<RegistryResourcesPage> {
        mi_list!(
            ctx,
            environment_id,
            component_id,
            pagination,
            MiKind::RegistryResource,
            RegistryResourcesPage,
            |a: &ArtifactView, v: &ScopeView| {
                let c = common(a, v);
                RegistryResource {
                    name: a.name.clone(),
                    kind: str_of(&a.detail, "type"),
                    runtime_ids: c.runtime_ids,
                    runtimes: Some(c.runtimes),
                }
            }
        )
    }

    /// MI connectors of a component in an environment.
    fn connectors_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<ConnectorsPage> {
        mi_list!(
            ctx,
            environment_id,
            component_id,
            pagination,
            MiKind::Connector,
            ConnectorsPage,
            |a: &ArtifactView, v: &ScopeView| {
                let c = common(a, v);
                let d = &a.detail;
                Connector {
                    name: a.name.clone(),
                    package_name: str_of(d, "package"),
                    version: text(d, "version"),
                    description: text(d, "description"),
                    state: c.state,
                    state_in_sync: c.state_in_sync,
                    runtime_ids: Some(c.runtime_ids),
                    runtimes: Some(c.runtimes),
                }
            }
        )
    }

    /// Loggers of one runtime: MI's live from its Management API, BI's module levels.
    fn loggers_by_runtime(
        ctx: &Ctx,
        runtime_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<LoggersPage> {
        let empty = |f: Option<&Fetch>| LoggersPage {
            items: Vec::new(),
            page_info: empty_page(),
            preparing: f.is_some_and(|f| f.preparing),
            stale: false,
            retry_after_ms: f.map_or(0, |f| f.retry_after_ms),
        };
        let Some((r, _)) = visible_runtime(ctx, &runtime_id)? else {
            return Ok(empty(None));
        };
        if r.runtime_type == "MI" {
            let f = mi_read(ctx, &runtime_id, ReadKey::Loggers, "Runtime not found")?;
            if f.preparing {
                return Ok(empty(Some(&f)));
            }
            let items = mi_loggers(&f.data)
                .into_iter()
                .map(|(name, component, level)| Logger {
                    logger_name: Some(name),
                    component_name: component,
                    log_level: level_of(&level),
                    log_level_in_sync: Some(true),
                    runtime_id: runtime_id.clone(),
                })
                .collect();
            let (items, page_info) = paged(ctx, items, pagination.as_ref())?;
            return Ok(LoggersPage {
                items,
                page_info,
                preparing: false,
                stale: f.stale,
                retry_after_ms: f.retry_after_ms,
            });
        }
        let Some(view) = runtime_bi_view(ctx, &runtime_id)? else {
            return Ok(empty(None));
        };
        let items = view
            .loggers
            .iter()
            .map(|l| {
                let observed = l
                    .runtimes
                    .first()
                    .map(|x| x.level.clone())
                    .unwrap_or_default();
                let want = l.runtimes.first().and_then(|x| x.desired_level.clone());
                Logger {
                    logger_name: None,
                    component_name: l.component.clone(),
                    log_level: level_of(want.as_deref().unwrap_or(&observed)),
                    log_level_in_sync: want.map(|_| l.in_sync),
                    runtime_id: runtime_id.clone(),
                }
            })
            .collect();
        let (items, page_info) = paged(ctx, items, pagination.as_ref())?;
        Ok(LoggersPage {
            items,
            page_info,
            preparing: false,
            stale: false,
            retry_after_ms: 0,
        })
    }

    /// Loggers of a component's runtimes in an environment, grouped across replicas.
    fn loggers_by_environment_and_component(
        ctx: &Ctx,
        environment_id: String,
        component_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<LoggerGroupsPage> {
        let empty = |preparing: bool| LoggerGroupsPage {
            items: Vec::new(),
            page_info: empty_page(),
            preparing,
            stale: false,
            retry_after_ms: if preparing { 750 } else { 0 },
        };
        let (i, _) = component_by_id(ctx, &component_id)?;
        if i.runtime_type == "MI" {
            let Some((_, view)) = mi_artifacts(ctx, &environment_id, &component_id, MiKind::Api)?
            else {
                return Ok(empty(false));
            };
            let mut groups: Vec<LoggerGroup> = Vec::new();
            let (mut preparing, mut stale) = (false, false);
            for rt in view
                .runtimes
                .iter()
                .filter(|r| r.status == RtStatus::Running)
            {
                // A replica whose read fails is skipped (§6.9).
                let Ok(f) = fetch(ctx.deps.mi.read(&rt.runtime_id, ReadKey::Loggers, ctx.now))
                else {
                    continue;
                };
                preparing |= f.preparing;
                stale |= f.stale;
                for (name, component, level) in mi_loggers(&f.data) {
                    let level = level_of(&level);
                    match groups.iter_mut().find(|g| {
                        g.logger_name.as_deref() == Some(name.as_str())
                            && g.component_name == component
                            && g.log_level == level
                    }) {
                        Some(g) => g.runtime_ids.push(rt.runtime_id.clone()),
                        None => groups.push(LoggerGroup {
                            logger_name: Some(name),
                            component_name: component,
                            log_level: level,
                            log_level_in_sync: Some(true),
                            runtime_ids: vec![rt.runtime_id.clone()],
                        }),
                    }
                }
            }
            if preparing {
                return Ok(empty(true));
            }
            let (items, page_info) = paged(ctx, groups, pagination.as_ref())?;
            return Ok(LoggerGroupsPage {
                items,
                page_info,
                preparing: false,
                stale,
                retry_after_ms: if stale { 3000 } else { 0 },
            });
        }
        let Some((view, _)) = bi_view(ctx, &environment_id, &component_id)? else {
            return Ok(empty(false));
        };
        let mut groups: Vec<LoggerGroup> = Vec::new();
        for l in &view.loggers {
            for r in &l.runtimes {
                let level = level_of(r.desired_level.as_deref().unwrap_or(&r.level));
                let in_sync = r.desired_level.as_ref().map(|_| l.in_sync);
                match groups
                    .iter_mut()
                    .find(|g| g.component_name == l.component && g.log_level == level)
                {
                    Some(g) => g.runtime_ids.push(r.runtime_id.clone()),
                    None => groups.push(LoggerGroup {
                        logger_name: None,
                        component_name: l.component.clone(),
                        log_level: level,
                        log_level_in_sync: in_sync,
                        runtime_ids: vec![r.runtime_id.clone()],
                    }),
                }
            }
        }
        let (items, page_info) = paged(ctx, groups, pagination.as_ref())?;
        Ok(LoggerGroupsPage {
            items,
            page_info,
            preparing: false,
            stale: false,
            retry_after_ms: 0,
        })
    }

    /// An MI runtime's log files (`searchKey` filters by name); `count` = all of them.
    fn log_files_by_runtime(
        ctx: &Ctx,
        runtime_id: String,
        search_key: Option<String>,
        pagination: Option<PaginationInput>,
    ) -> Res<LogFilesResponse> {
        let empty = |f: Option<&Fetch>| LogFilesResponse {
            count: 0,
            files: Vec::new(),
            page_info: empty_page(),
            preparing: f.is_some_and(|f| f.preparing),
            stale: false,
            retry_after_ms: f.map_or(0, |f| f.retry_after_ms),
        };
        if visible_runtime(ctx, &runtime_id)?.is_none() {
            return Ok(empty(None));
        }
        let f = mi_read(ctx, &runtime_id, ReadKey::LogFiles, "Runtime not found")?;
        if f.preparing {
            return Ok(empty(Some(&f)));
        }
        let key = search_key.unwrap_or_default().to_lowercase();
        let files: Vec<LogFile> = list_of(&f.data)
            .iter()
            .map(|x| LogFile {
                file_name: text(x, "FileName")
                    .or_else(|| text(x, "fileName"))
                    .unwrap_or_default(),
                size: text(x, "Size")
                    .or_else(|| text(x, "size"))
                    .unwrap_or_default(),
            })
            .filter(|x| x.file_name != "NO_LOG_FILES" && x.file_name.to_lowercase().contains(&key))
            .collect();
        let count = i32::try_from(files.len()).unwrap_or(i32::MAX);
        let (files, page_info) = paged(ctx, files, pagination.as_ref())?;
        Ok(LogFilesResponse {
            count,
            files,
            page_info,
            preparing: false,
            stale: f.stale,
            retry_after_ms: f.retry_after_ms,
        })
    }

    /// The text of one MI log file.
    fn log_file_content(ctx: &Ctx, runtime_id: String, file_name: String) -> Res<FetchableText> {
        let bad = file_name.is_empty()
            || file_name.contains(['/', '\\'])
            || file_name.contains("..")
            || file_name.as_bytes().get(1) == Some(&b':');
        if bad {
            return Err(fail("Invalid file name"));
        }
        let f = mi_read(
            ctx,
            &runtime_id,
            ReadKey::LogFile(file_name),
            "Unable to retrieve log file content",
        )?;
        Ok(fetchable_text(f, |d| match d {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        }))
    }

    /// The children of an MI registry path.
    fn registry_directory(
        ctx: &Ctx,
        runtime_id: String,
        path: String,
        expand: Option<bool>,
    ) -> Res<RegistryDirectoryResponse> {
        let _ = expand;
        if path.trim().is_empty() {
            return Err(fail("Invalid path"));
        }
        let f = mi_read(
            ctx,
            &runtime_id,
            ReadKey::Registry(path),
            "Unable to retrieve registry directory",
        )?;
        let items: Vec<RegistryDirectoryItem> = list_of(&f.data)
            .iter()
            .map(|x| {
                let media = str_of(x, "mediaType");
                RegistryDirectoryItem {
                    name: str_of(x, "name"),
                    is_directory: media == "directory",
                    media_type: media,
                    properties: parameter_rows(x.get("properties"))
                        .into_iter()
                        .map(|p| RegistryProperty {
                            name: p.name,
                            value: p.value,
                        })
                        .collect(),
                }
            })
            .collect();
        ctx.charge(items.len())?;
        Ok(RegistryDirectoryResponse {
            count: i32::try_from(items.len()).unwrap_or(i32::MAX),
            items,
            preparing: f.preparing,
            stale: f.stale,
            retry_after_ms: f.retry_after_ms,
        })
    }

    /// The content of an MI registry resource.
    fn registry_file_content(ctx: &Ctx, runtime_id: String, path: String) -> Res<FetchableText> {
        if path.trim().is_empty() {
            return Err(fail("Invalid path"));
        }
        let f = mi_read(
            ctx,
            &runtime_id,
            ReadKey::RegistryContent(path),
            "Unable to retrieve registry file content",
        )?;
        Ok(fetchable_text(f, |d| match d {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        }))
    }

    /// The name and media type of an MI registry resource.
    fn registry_resource_metadata(
        ctx: &Ctx,
        runtime_id: String,
        path: String,
    ) -> Res<RegistryResourceMetadata> {
        if path.trim().is_empty() {
            return Err(fail("Invalid path"));
        }
        let f = mi_read(
            ctx,
            &runtime_id,
            ReadKey::RegistryMetadata(path),
            "Unable to retrieve registry resource metadata",
        )?;
        let d = f.data.clone().unwrap_or(Value::Null);
        Ok(RegistryResourceMetadata {
            name: str_of(&d, "name"),
            media_type: str_of(&d, "mediaType"),
            preparing: f.preparing,
            stale: f.stale,
            retry_after_ms: f.retry_after_ms,
        })
    }

    /// The properties of an MI registry resource.
    fn registry_resource_properties(
        ctx: &Ctx,
        runtime_id: String,
        path: String,
    ) -> Res<RegistryPropertiesResponse> {
        if path.trim().is_empty() {
            return Err(fail("Invalid path"));
        }
        let f = mi_read(
            ctx,
            &runtime_id,
            ReadKey::RegistryProperties(path),
            "Unable to retrieve registry resource properties",
        )?;
        let properties: Vec<RegistryProperty> = list_of(&f.data)
            .iter()
            .filter(|x| x.is_object())
            .map(|x| RegistryProperty {
                name: str_of(x, "name"),
                value: str_of(x, "value"),
            })
            .collect();
        ctx.charge(properties.len())?;
        Ok(RegistryPropertiesResponse {
            count: i32::try_from(properties.len()).unwrap_or(i32::MAX),
            properties,
            preparing: f.preparing,
            stale: f.stale,
            retry_after_ms: f.retry_after_ms,
        })
    }

    /// Environments (all are visible to a signed-in user in icpd); `type`: `prod`, `non-prod` or all.
    fn environments(
        ctx: &Ctx,
        org_uuid: Option<String>,
        r#type: Option<String>,
        project_id: Option<String>,
        pagination: Option<PaginationInput>,
    ) -> Res<EnvironmentsPage> {
        let _ = (org_uuid, project_id);
        let all = ctx
            .deps
            .store
            .read(|tx| tx.all_environments())
            .map_err(from_error)?;
        let items: Vec<Environment> = all
            .iter()
            .filter(|e| match r#type.as_deref() {
                Some("prod") => e.critical,
                Some("non-prod") => !e.critical,
                _ => true,
            })
            .map(environment_out)
            .collect();
        let (items, page_info) = paged(ctx, items, pagination.as_ref())?;
        Ok(EnvironmentsPage { items, page_info })
    }

    /// One environment by handle; null when there is none.
    fn environment_by_handler(ctx: &Ctx, environment_handler: String) -> Res<Option<Environment>> {
        match crate::catalog::environment(&ctx.deps.store, &environment_handler) {
            Ok(e) => Ok(Some(environment_out(&e))),
            Err(crate::error::Error::NotFound(_)) | Err(crate::error::Error::BadRequest(_)) => {
                Ok(None)
            }
            Err(e) => Err(from_error(e)),
        }
    }

    /// Whether an environment handle is free, and a free alternative when it is not.
    fn environment_handler_availability(
        ctx: &Ctx,
        environment_handler_candidate: String,
    ) -> Res<EnvironmentHandlerAvailability> {
        let taken = |h: &str| -> Res<bool> {
            Ok(ctx
                .deps
                .store
                .read(|tx| tx.environment_info(h))
                .map_err(from_error)?
                .is_some())
        };
        let h = crate::catalog::normalize_handle(&environment_handler_candidate);
        if !taken(&h)? {
            return Ok(EnvironmentHandlerAvailability {
                handler_unique: true,
                alternate_handler_candidate: None,
            });
        }
        let mut alternate = None;
        for n in 1..=10 {
            let c = format!("{h}{n}");
            if !taken(&c)? {
                alternate = Some(c);
                break;
            }
        }
        Ok(EnvironmentHandlerAvailability {
            handler_unique: false,
            alternate_handler_candidate: alternate,
        })
    }

    /// The projects the caller may view (`project:view`).
    fn projects(
        ctx: &Ctx,
        org_id: Option<i32>,
        pagination: Option<PaginationInput>,
    ) -> Res<ProjectsPage> {
        if org_id.is_some_and(|o| o != 1) {
            return Ok(ProjectsPage {
                items: Vec::new(),
                page_info: empty_page(),
            });
        }
        let all = visible_projects(ctx)?;
        let items = all.iter().map(project_out).collect();
        let (items, page_info) = paged(ctx, items, pagination.as_ref())?;
        Ok(ProjectsPage { items, page_info })
    }

    /// One project by id; null when unknown, not visible, or in another organization.
    fn project(ctx: &Ctx, org_id: Option<i32>, project_id: String) -> Res<Option<Project>> {
        if org_id.is_some_and(|o| o != 1) {
            return Ok(None);
        }
        let p = id_of(&project_id)
            .map(|n| ctx.project(n))
            .transpose()?
            .flatten();
        Ok(
            p.filter(|p| ctx.principal.has(Permission::ProjectView, &p.target()))
                .map(|p| project_out(&p)),
        )
    }

    /// One project by handle; null when unknown or not visible.
    fn project_by_handler(ctx: &Ctx, org_id: i32, project_handler: String) -> Res<Option<Project>> {
        if org_id != 1 {
            return Ok(None);
        }
        match crate::catalog::visible_project(&ctx.deps.store, &ctx.principal, &project_handler) {
            Ok(p) => Ok(Some(project_out(&p))),
            Err(crate::error::Error::NotFound(_)) => Ok(None),
            Err(e) => Err(from_error(e)),
        }
    }

    /// Whether the caller may create projects (`project:manage`).
    fn project_creation_eligibility(
        ctx: &Ctx,
        org_id: i32,
        org_handler: String,
    ) -> ProjectCreationEligibility {
        let _ = org_handler;
        ProjectCreationEligibility {
            is_project_creation_allowed: org_id == 1
                && ctx
                    .principal
                    .has(Permission::ProjectManage, &Target::organization()),
        }
    }

    /// Whether a project handle is free, and a free alternative when it is not.
    fn project_handler_availability(
        ctx: &Ctx,
        org_id: i32,
        project_handler_candidate: String,
    ) -> Res<ProjectHandlerAvailability> {
        let _ = org_id;
        let free = |h: &str| -> Res<bool> {
            match crate::catalog::project_handle_availability(&ctx.deps.store, h) {
                Ok((_, free)) => Ok(free),
                Err(crate::error::Error::BadRequest(_)) => Ok(false),
                Err(e) => Err(from_error(e)),
            }
        };
        if free(&project_handler_candidate)? {
            return Ok(ProjectHandlerAvailability {
                handler_unique: true,
                alternate_handler_candidate: None,
            });
        }
        let h = crate::catalog::normalize_handle(&project_handler_candidate);
        let mut alternate = None;
        for n in 1..=10 {
            let c = format!("{h}{n}");
            if free(&c)? {
                alternate = Some(c);
                break;
            }
        }
        Ok(ProjectHandlerAvailability {
            handler_unique: false,
            alternate_handler_candidate: alternate,
        })
    }

    /// Integrations the caller may view, optionally of one project; `options.pagination` pages.
    fn components(
        ctx: &Ctx,
        org_handler: String,
        project_id: Option<String>,
        options: Option<ComponentOptionsInput>,
    ) -> Res<ComponentsPage> {
        let _ = org_handler;
        let projects: Vec<ProjectInfo> = match project_id.as_deref() {
            Some(pid) => match id_of(pid).map(|n| ctx.project(n)).transpose()?.flatten() {
                Some(p) => vec![p],
                None => {
                    return Ok(ComponentsPage {
                        items: Vec::new(),
                        page_info: empty_page(),
                    })
                }
            },
            None => all_projects(ctx)?,
        };
        let mut items = Vec::new();
        for p in &projects {
            for i in visible_integrations(ctx, p)? {
                items.push(component_out(&i, p));
            }
        }
        let pagination = options.and_then(|o| o.pagination);
        let (items, page_info) = paged(ctx, items, pagination.as_ref())?;
        Ok(ComponentsPage { items, page_info })
    }

    /// One integration by id, or by project id and handle.
    fn component(
        ctx: &Ctx,
        component_id: Option<String>,
        project_id: Option<String>,
        component_handler: Option<String>,
    ) -> Res<Option<Component>> {
        let (i, p) = match (&component_id, &project_id, &component_handler) {
            (Some(cid), _, _) => component_by_id(ctx, cid)?,
            (None, Some(pid), Some(h)) => {
                let Some(p) = id_of(pid).map(|n| ctx.project(n)).transpose()?.flatten() else {
                    return Ok(None);
                };
                let found = ctx
                    .deps
                    .store
                    .read(|tx| tx.integration_info(&p.handle, &crate::catalog::normalize_handle(h)))
                    .map_err(from_error)?;
                match found {
                    Some(i) => (i, p),
                    None => return Ok(None),
                }
            }
            _ => {
                return Err(fail(
                    "Either componentId or (projectId and componentHandler) must be provided",
                ))
            }
        };
        if !can_view(&ctx.principal, &target_of(&i, None)) {
            return Ok(None);
        }
        Ok(Some(component_out(&i, &p)))
    }

    /// Moesif is not part of icpd: the reference's answer when its integration is disabled.
    fn moesif_metrics_config(
        environment_id: String,
        component_id: Option<String>,
        project_id: Option<String>,
        component_handler: Option<String>,
    ) -> Res<MoesifMetricsConfigStatus> {
        let _ = (environment_id, component_id, project_id, component_handler);
        Err(fail(MOESIF_METRICS_OFF))
    }

    /// Moesif is not part of icpd: the reference's answer when its integration is disabled.
    fn moesif_dashboard_embed(
        component_id: String,
        environment_id: String,
    ) -> Res<MoesifDashboardEmbed> {
        let _ = (component_id, environment_id);
        Err(fail(MOESIF_METRICS_OFF))
    }

    /// Moesif is not part of icpd: the reference's answer when its integration is disabled.
    fn moesif_logs_config(
        environment_id: String,
        component_id: Option<String>,
        project_id: Option<String>,
        component_handler: Option<String>,
    ) -> Res<MoesifLogsConfigStatus> {
        let _ = (environment_id, component_id, project_id, component_handler);
        Err(fail(MOESIF_LOGS_OFF))
    }

    /// Moesif is not part of icpd: the reference's answer when its integration is disabled.
    fn moesif_logs_embed(
        component_id: String,
        environment_id: String,
    ) -> Res<MoesifDashboardEmbed> {
        let _ = (component_id, environment_id);
        Err(fail(MOESIF_LOGS_OFF))
    }

    /// Moesif is not part of icpd: the reference's answer when its integration is disabled.
    fn moesif_applications(
        component_id: String,
        management_api_key: String,
    ) -> Res<Vec<MoesifApplication>> {
        let _ = (component_id, management_api_key);
        Err(fail(MOESIF_METRICS_OFF))
    }

    /// Stored runtime secrets (never their material), of one environment or all.
    fn org_secrets(
        ctx: &Ctx,
        environment_id: Option<String>,
        pagination: Option<PaginationInput>,
    ) -> Res<OrgSecretsPage> {
        let env = environment_id
            .as_deref()
            .map(|e| environment_by_id(ctx, e))
            .transpose()?;
        match &env {
            Some(e) if !env_access(&ctx.principal, e.critical) => {
                return Err(fail(if e.critical {
                    "Access denied: insufficient permissions to view org secrets for production environment"
                } else {
                    "Access denied: insufficient permissions to view org secrets"
                }))
            }
            None if !env_access(&ctx.principal, false) => {
                return Err(fail(
                    "Access denied: insufficient permissions to view org secrets",
                ))
            }
            _ => {}
        }
        let records = secret_records(ctx, env.as_ref().map(|e| e.handle.clone()), None)?;
        let envs = ctx
            .deps
            .store
            .read(|tx| tx.all_environments())
            .map_err(from_error)?;
        let items = records
            .into_iter()
            .filter(|s| s.status == "active")
            .map(|s| {
                let e = envs.iter().find(|e| e.handle == s.environment);
                OrgSecretListEntry {
                    key_id: s.key_id.clone(),
                    environment_id: e.map(|e| e.id.to_string()).unwrap_or_default(),
                    environment_name: e.map(|e| e.name.clone()).unwrap_or(s.environment.clone()),
                    bound: s.integration.is_some(),
                    created_at: rfc3339(s.created_at),
                    created_by: None,
                }
            })
            .collect();
        let (items, page_info) = paged(ctx, items, pagination.as_ref())?;
        Ok(OrgSecretsPage { items, page_info })
    }

    /// Secrets bound to a component in an environment, with the runtimes using each.
    fn component_secrets(
        ctx: &Ctx,
        component_id: String,
        environment_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<BoundSecretsPage> {
        let (i, p) = component_by_id(ctx, &component_id)?;
        let e = environment_by_id(ctx, &environment_id)?;
        if !ctx
            .principal
            .may_act(Permission::IntegrationManage, &target_of(&i, Some(&e)))
        {
            return Err(fail(
                "Access denied: insufficient permissions to view component secrets",
            ));
        }
        let records = secret_records(
            ctx,
            Some(e.handle.clone()),
            Some((p.handle.clone(), i.handle.clone())),
        )?;
        let mut items = Vec::new();
        for s in records.into_iter().filter(|s| s.status == "active") {
            let ids = ctx
                .deps
                .store
                .read(|tx| tx.runtimes_using_key(&s.key_id))
                .map_err(from_error)?;
            let live = ctx.deps.liveness.statuses(ids.iter().map(String::as_str));
            items.push(BoundSecretEntry {
                key_id: s.key_id.clone(),
                created_at: rfc3339(s.created_at),
                created_by: None,
                runtimes: ids
                    .iter()
                    .zip(live)
                    .map(|(id, st)| BoundSecretRuntime {
                        runtime_id: id.clone(),
                        status: st.unwrap_or(RtStatus::Offline).as_str().into(),
                    })
                    .collect(),
            });
        }
        let (items, page_info) = paged(ctx, items, pagination.as_ref())?;
        Ok(BoundSecretsPage { items, page_info })
    }

    /// Artifact kinds present for a component (in one environment, or all) with counts.
    fn component_artifact_types(
        ctx: &Ctx,
        component_id: String,
        environment_id: Option<String>,
    ) -> Res<Vec<ArtifactTypeCount>> {
        let (i, p) = component_by_id(ctx, &component_id)?;
        let envs = environments_named(ctx, environment_id.as_deref())?;
        let envs: Vec<EnvironmentInfo> = envs
            .into_iter()
            .filter(|e| can_view(&ctx.principal, &target_of(&i, Some(e))))
            .collect();
        let out = artifact_type_counts(ctx, &i, &p, &envs)?;
        ctx.charge(out.len())?;
        Ok(out)
    }

    /// An MI artifact's configuration (source XML), read from one runtime.
    #[allow(clippy::too_many_arguments)]
    fn artifact_source_by_component(
        ctx: &Ctx,
        component_id: String,
        artifact_type: String,
        artifact_name: String,
        environment_id: Option<String>,
        runtime_id: Option<String>,
        package_name: Option<String>,
        template_type: Option<String>,
    ) -> Res<FetchableText> {
        let _ = package_name;
        let kind = kind_arg(&artifact_type)?;
        let f = detail_read(
            ctx,
            &component_id,
            environment_id.as_deref(),
            runtime_id.as_deref(),
            ReadKey::artifact(kind, artifact_name, template_type),
        )?;
        Ok(fetchable_text(f, configuration_text))
    }

    /// A proxy service's WSDL, as its runtime describes it.
    fn artifact_wsdl_by_component(
        ctx: &Ctx,
        component_id: String,
        artifact_type: String,
        artifact_name: String,
        environment_id: Option<String>,
        runtime_id: Option<String>,
        package_name: Option<String>,
    ) -> Res<FetchableText> {
        let _ = package_name;
        let kind = kind_arg(&artifact_type)?;
        let rt = detail_runtime(
            ctx,
            &component_id,
            environment_id.as_deref(),
            runtime_id.as_deref(),
        )?;
        let key = ReadKey::artifact(kind, artifact_name, None).ok_or_else(|| {
            fail("MI's Management API offers no detail read for this artifact type")
        })?;
        // First MI's description of the proxy, then the document it names.
        let f = fetch(ctx.deps.mi.read(&rt, key, ctx.now))?;
        if f.preparing {
            return Ok(fetchable_text(f, |_| String::new()));
        }
        let entry = detail_entry(&f.data);
        let url = text(&entry, "wsdl1_1")
            .or_else(|| text(&entry, "wsdl2_0"))
            .ok_or_else(|| fail("WSDL URL not found for this artifact"))?;
        let host = crate::runtimes::show(&ctx.deps.store, &rt)
            .map_err(from_error)?
            .management
            .map(|m| m.host)
            .ok_or_else(|| fail("Runtime management hostname is not set"))?;
        let key = ReadKey::wsdl(&url, &host).map_err(fail)?;
        let w = fetch(ctx.deps.mi.read(&rt, key, ctx.now))?;
        Ok(fetchable_text(w, |d| match d {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        }))
    }

    /// A local entry's value, read from one runtime.
    fn local_entry_value_by_component(
        ctx: &Ctx,
        component_id: String,
        entry_name: String,
        environment_id: Option<String>,
        runtime_id: Option<String>,
    ) -> Res<FetchableText> {
        let f = detail_read(
            ctx,
            &component_id,
            environment_id.as_deref(),
            runtime_id.as_deref(),
            ReadKey::artifact(MiKind::LocalEntry, entry_name, None),
        )?;
        Ok(fetchable_text(f, |d| {
            let e = detail_entry(d);
            text(&e, "value").unwrap_or_else(|| configuration_text(d))
        }))
    }

    /// An artifact's parameters: inbound endpoints' list, message processors' map, data sources' configuration.
    fn artifact_parameters_by_component(
        ctx: &Ctx,
        component_id: String,
        artifact_type: String,
        artifact_name: String,
        environment_id: Option<String>,
        runtime_id: Option<String>,
        package_name: Option<String>,
    ) -> Res<FetchableParameters> {
        let _ = package_name;
        let kind = kind_arg(&artifact_type)?;
        if !matches!(
            kind,
            MiKind::InboundEndpoint | MiKind::MessageProcessor | MiKind::DataSource
        ) {
            // Any other kind has no parameters (§5.8); no call is made.
            component_by_id(ctx, &component_id)?;
            return Ok(FetchableParameters {
                parameters: Vec::new(),
                preparing: false,
                stale: false,
                retry_after_ms: 0,
            });
        }
        let f = detail_read(
            ctx,
            &component_id,
            environment_id.as_deref(),
            runtime_id.as_deref(),
            ReadKey::artifact(kind, artifact_name, None),
        )?;
        Ok(fetchable_params(f, |e| match kind {
            MiKind::InboundEndpoint => parameter_rows(e.get("parameters")),
            MiKind::MessageProcessor => parameter_rows(e.get("parameters")),
            _ => parameter_rows(
                e.get("configurationParameters")
                    .or_else(|| e.get("parameters")),
            ),
        }))
    }

    /// A data source's overview rows.
    fn data_source_overview_by_component(
        ctx: &Ctx,
        component_id: String,
        data_source_name: String,
        environment_id: Option<String>,
        runtime_id: Option<String>,
    ) -> Res<FetchableParameters> {
        let f = detail_read(
            ctx,
            &component_id,
            environment_id.as_deref(),
            runtime_id.as_deref(),
            ReadKey::artifact(MiKind::DataSource, data_source_name, None),
        )?;
        Ok(fetchable_params(f, |e| {
            rows(
                e,
                &[
                    ("name", "name"),
                    ("type", "type"),
                    ("description", "description"),
                    ("driverClass", "driverClass"),
                    ("userName", "userName"),
                    ("url", "url"),
                ],
            )
        }))
    }

    /// A message store's overview rows.
    fn message_store_overview_by_component(
        ctx: &Ctx,
        component_id: String,
        store_name: String,
        environment_id: Option<String>,
        runtime_id: Option<String>,
    ) -> Res<FetchableParameters> {
        let f = detail_read(
            ctx,
            &component_id,
            environment_id.as_deref(),
            runtime_id.as_deref(),
            ReadKey::artifact(MiKind::MessageStore, store_name, None),
        )?;
        Ok(fetchable_params(f, |e| {
            rows(
                e,
                &[
                    ("name", "name"),
                    ("type", "type"),
                    ("container", "container"),
                    ("size", "size"),
                ],
            )
        }))
    }

    /// A message processor's overview rows.
    fn message_processor_overview_by_component(
        ctx: &Ctx,
        component_id: String,
        processor_name: String,
        environment_id: Option<String>,
        runtime_id: Option<String>,
    ) -> Res<FetchableParameters> {
        let f = detail_read(
            ctx,
            &component_id,
            environment_id.as_deref(),
            runtime_id.as_deref(),
            ReadKey::artifact(MiKind::MessageProcessor, processor_name, None),
        )?;
        Ok(fetchable_params(f, |e| {
            rows(
                e,
                &[
                    ("name", "name"),
                    ("type", "type"),
                    ("messageStore", "messageStore"),
                    ("status", "status"),
                ],
            )
        }))
    }

    /// A data service's description as its runtime gives it.
    fn data_service_overview_by_component(
        ctx: &Ctx,
        component_id: String,
        data_service_name: String,
        environment_id: Option<String>,
        runtime_id: Option<String>,
    ) -> Res<FetchableDataService> {
        let f = detail_read(
            ctx,
            &component_id,
            environment_id.as_deref(),
            runtime_id.as_deref(),
            ReadKey::artifact(MiKind::DataService, data_service_name, None),
        )?;
        let data_service = (!f.preparing).then(|| data_service_info(&detail_entry(&f.data)));
        Ok(FetchableDataService {
            data_service,
            preparing: f.preparing,
            stale: f.stale,
            retry_after_ms: f.retry_after_ms,
        })
    }

    /// The users of an MI runtime's user store (needs EDIT there).
    #[graphql(name = "getMIUsers")]
    fn get_mi_users(
        ctx: &Ctx,
        component_id: String,
        runtime_id: String,
        pagination: Option<PaginationInput>,
    ) -> Res<MIUsersPage> {
        let target = mi_user_target(ctx, &component_id, &runtime_id)?;
        // The REST API's rule for reading MI users (ICP asks EDIT).
        if !ctx.principal.has(Permission::IntegrationManage, &target) {
            return Err(fail("Insufficient permissions to view MI users"));
        }
        let f = mi_read(ctx, &runtime_id, ReadKey::Users, "Runtime not found")?;
        if f.preparing {
            return Ok(MIUsersPage {
                items: Vec::new(),
                page_info: empty_page(),
                preparing: true,
                stale: false,
                retry_after_ms: f.retry_after_ms,
            });
        }
        // `MiControl` reads each user's admin flag too: `{"users": [...]}`.
        let users = f
            .data
            .as_ref()
            .and_then(|d| d.get("users"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_else(|| list_of(&f.data));
        let items: Vec<MIUser> = users
            .iter()
            .map(|u| {
                let id = text(u, "userId").unwrap_or_default();
                let (domain, username) = match id.split_once('/') {
                    Some((d, u)) => (d.to_string(), u.to_string()),
                    None => ("primary".to_string(), id.clone()),
                };
                MIUser {
                    username,
                    domain,
                    is_admin: u.get("isAdmin").and_then(Value::as_bool).unwrap_or(false),
                }
            })
            .collect();
        let (items, page_info) = paged(ctx, items, pagination.as_ref())?;
        Ok(MIUsersPage {
            items,
            page_info,
            preparing: false,
            stale: f.stale,
            retry_after_ms: f.retry_after_ms,
        })
    }

    /// icpd's version.
    fn system_info() -> SystemInfo {
        SystemInfo {
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    /// Whether metrics are available: icpd keeps them itself, so always.
    fn observability_metrics_config() -> ObservabilityMetricsConfigStatus {
        ObservabilityMetricsConfigStatus { configured: true }
    }
}

pub(crate) const MOESIF_METRICS_OFF: &str = "Moesif metrics integration is disabled";
pub(crate) const MOESIF_LOGS_OFF: &str = "Moesif logs integration is disabled";

/// The runtime's access target, checking that it belongs to the component (MI users, §6.11).
pub(crate) fn mi_user_target(ctx: &Ctx, component_id: &str, runtime_id: &str) -> Res<Target> {
    let target = ctx
        .deps
        .store
        .read(|tx| tx.runtime_target(runtime_id))
        .map_err(from_error)?
        .ok_or_else(|| fail("Runtime not found"))?;
    if id_of(component_id) != target.integration {
        return Err(fail("Runtime does not belong to the specified integration"));
    }
    Ok(target)
}

fn data_service_info(e: &Value) -> MgmtDataServiceInfo {
    let list = |key: &str| -> Vec<Value> {
        e.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    MgmtDataServiceInfo {
        service_name: text(e, "serviceName")
            .or_else(|| text(e, "name"))
            .unwrap_or_default(),
        service_description: text(e, "serviceDescription").or_else(|| text(e, "description")),
        wsdl1_1: text(e, "wsdl1_1"),
        wsdl2_0: text(e, "wsdl2_0"),
        swagger_url: text(e, "swagger_url"),
        data_sources: list("dataSources")
            .iter()
            .map(|d| MgmtDataServiceDataSource {
                data_source_id: str_of(d, "dataSourceId"),
                data_source_type: text(d, "dataSourceType"),
            })
            .collect(),
        queries: list("queries")
            .iter()
            .map(|q| MgmtDataServiceQuery {
                id: str_of(q, "id"),
                data_source_id: text(q, "dataSourceId"),
                namespace: text(q, "namespace"),
            })
            .collect(),
        resources: list("resources")
            .iter()
            .map(|r| MgmtDataServiceResource {
                resource_path: str_of(r, "resourcePath"),
                resource_method: text(r, "resourceMethod"),
                resource_query: text(r, "resourceQuery"),
            })
            .collect(),
        operations: list("operations")
            .iter()
            .map(|o| MgmtDataServiceOperation {
                operation_name: str_of(o, "operationName"),
                query_name: text(o, "queryName"),
            })
            .collect(),
        configuration: text(e, "configuration"),
        service_group_name: text(e, "serviceGroupName"),
    }
}

/// The artifacts one runtime reported (`Runtime.artifacts`).
fn runtime_artifacts(ctx: &Ctx, runtime_id: &str) -> Res<Artifacts> {
    let d = crate::runtimes::show(&ctx.deps.store, runtime_id).map_err(from_error)?;
    let mut out = Artifacts::default();
    if let Some(view) = runtime_bi_view(ctx, runtime_id)? {
        out.services = view
            .services
            .iter()
            .map(|s| service_out(s, &view, false))
            .collect();
        out.listeners = view
            .listeners
            .iter()
            .map(|l| listener_out(l, None))
            .collect();
    }
    if let Some(m) = &d.artifacts.main {
        out.main = Some(Main {
            package_org: str_of(m, "packageOrg"),
            package_name: str_of(m, "packageName"),
            package_version: str_of(m, "packageVersion"),
        });
    }
    // MI artifacts are served by the per-kind lists; here their names and kinds.
    if let Some(by_kind) = &d.mi_artifacts {
        for (kind, list) in by_kind {
            if *kind == MiKind::RegistryResource {
                out.registry_resources = list
                    .iter()
                    .map(|a| RegistryResource {
                        name: a.name.clone(),
                        kind: str_of(&a.detail, "type"),
                        runtime_ids: vec![runtime_id.to_string()],
                        runtimes: None,
                    })
                    .collect();
            }
        }
    }
    ctx.charge(out.services.len() + out.listeners.len() + out.registry_resources.len())?;
    Ok(out)
}

/// Every project the caller may view, by handle.
fn visible_projects(ctx: &Ctx) -> Res<Vec<ProjectInfo>> {
    let vis = Visibility::of(&ctx.principal, Permission::ProjectView);
    let (rows, _) = ctx
        .deps
        .store
        .read(|tx| tx.project_page(&vis, None, None, super::MAX_ITEMS as i64 + 1))
        .map_err(from_error)?;
    Ok(rows)
}

/// Every project (integrations are then filtered one by one).
fn all_projects(ctx: &Ctx) -> Res<Vec<ProjectInfo>> {
    let vis = Visibility {
        everything: true,
        ..Visibility::default()
    };
    let (rows, _) = ctx
        .deps
        .store
        .read(|tx| tx.project_page(&vis, None, None, super::MAX_ITEMS as i64 + 1))
        .map_err(from_error)?;
    Ok(rows)
}

/// A project's integrations the caller may view.
fn visible_integrations(ctx: &Ctx, p: &ProjectInfo) -> Res<Vec<IntegrationInfo>> {
    let vis = Visibility::of(&ctx.principal, Permission::IntegrationView);
    let (rows, _) = ctx
        .deps
        .store
        .read(|tx| tx.integration_page(p.id, &vis, None, None, super::MAX_ITEMS as i64 + 1))
        .map_err(from_error)?;
    Ok(rows)
}

/// The secrets of an environment (and integration), as the REST API lists them.
fn secret_records(
    ctx: &Ctx,
    environment: Option<String>,
    binding: Option<(String, String)>,
) -> Res<Vec<crate::secrets::SecretRecord>> {
    let (project, integration) = binding.unzip();
    let listing = crate::secrets::page(
        &ctx.deps.store,
        &ctx.principal,
        &crate::secrets::SecretQuery {
            environment,
            project,
            integration,
            status: Some("active".into()),
        },
        &crate::catalog::Keyset {
            after: None,
            limit: super::MAX_ITEMS as i64,
        },
        ctx.now,
    )
    .map_err(from_error)?;
    Ok(listing.items)
}
