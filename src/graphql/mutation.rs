//! The Mutation root of GRAPHQL.md §6.14 (R-NEW).
//!
//! Permissions: where icpd's REST API performs the same action, the
//! mutation applies the REST rule (so one action has one rule whichever API
//! asks): acting on runtimes, listeners, loggers, MI artifacts and users
//! and on secrets needs `integration:manage` plus the environment's
//! permission (`may_act`); environments need `environment:manage`;
//! projects `project:manage` / `project:edit`; integrations
//! `integration:edit` (create, update) and `integration:manage` (delete).
//! Failures use the reference's texts (§4.6) and its payload style
//! (`status: FAILED`, `success: false`) where it has one.

use juniper::graphql_object;

use super::query::{
    can_edit, component_by_id, environment_by_id, environment_out, id_of, project_out, scope_of,
    target_of,
};
use super::schema::*;
use super::{fail, from_error, Ctx, Res};
use crate::access::{Permission, Target};
use crate::catalog::{EnvironmentInfo, IntegrationInfo, ProjectInfo};
use crate::commands::{Kind, Request, Scope};
use crate::error::Error;
use crate::events::{self, Event};
use crate::mi::control::Operation;
use crate::mi::management::{Call, Password};

/// Longest `requestId` (§4.7).
const MAX_REQUEST_ID_CHARS: usize = 59;

/// A runtime named in a mutation: its scope, once per (integration, environment).
struct Addressed {
    scope: Scope,
    target: Target,
    runtime_ids: Vec<String>,
    runtime_type: String,
}

/// Groups `runtime_ids` by integration and environment (unknown ids skipped),
/// refusing the whole request with `denied(id)` if the caller may not act on one.
fn addressed(
    ctx: &Ctx,
    runtime_ids: &[String],
    denied: impl Fn(&str) -> String,
) -> Res<Vec<Addressed>> {
    let mut out: Vec<Addressed> = Vec::new();
    for id in runtime_ids {
        let Some(target) = ctx
            .deps
            .store
            .read(|tx| tx.runtime_target(id))
            .map_err(from_error)?
        else {
            continue;
        };
        if !ctx
            .principal
            .may_act(Permission::IntegrationManage, &target)
        {
            return Err(fail(denied(id)));
        }
        if let Some(a) = out.iter_mut().find(|a| a.target == target) {
            a.runtime_ids.push(id.clone());
            continue;
        }
        let (Some(i), Some(e)) = (
            target
                .integration
                .map(|n| ctx.integration(n))
                .transpose()?
                .flatten(),
            target
                .environment
                .map(|n| ctx.environment(n))
                .transpose()?
                .flatten(),
        ) else {
            continue;
        };
        let Some(p) = ctx.project(i.project_id)? else {
            continue;
        };
        out.push(Addressed {
            scope: scope_of(&p, &i, &e),
            target,
            runtime_ids: vec![id.clone()],
            runtime_type: i.runtime_type.clone(),
        });
    }
    Ok(out)
}

fn who(ctx: &Ctx) -> String {
    ctx.principal.username.clone()
}

/// Records a desired state in `scope` as the REST API does; how many commands it issued.
fn request(ctx: &Ctx, scope: &Scope, req: &Request) -> Res<usize> {
    let issued = ctx
        .deps
        .commands
        .request(&ctx.deps.store, scope, req, &who(ctx), ctx.now)
        .map_err(from_error)?;
    if req.kind.is_mi() {
        ctx.deps.mi.kick();
    }
    Ok(issued.commands.len())
}

fn check_request_id(request_id: &Option<String>) -> Res<()> {
    if request_id
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REQUEST_ID_CHARS)
    {
        return Err(fail("requestId must be at most 59 characters"));
    }
    Ok(())
}

/// Starts an MI operation, or, when `request_id` names one this caller
/// started, returns that one (§4.7: re-sending polls, never repeats).
fn operation(
    ctx: &Ctx,
    request_id: &Option<String>,
    start: impl FnOnce() -> Res<Operation>,
) -> Res<Operation> {
    let user = ctx.principal.user_id;
    if let Some(rid) = request_id {
        if let Some(id) = ctx.request_ids().get(user, rid) {
            // Known: poll it, never repeat it, even when it is gone.
            return ctx.deps.mi.operation(&id).ok_or_else(|| {
                fail("The runtime did not confirm this operation. Check its state before retrying — the change may or may not have been applied.")
            });
        }
    }
    let op = start()?;
    if let Some(rid) = request_id {
        ctx.request_ids()
            .put(user, rid, op.operation_id.clone(), ctx.now);
    }
    Ok(op)
}

/// (succeeded, failed, pending, first failure message) of an operation.
fn outcome(op: &Operation) -> (usize, usize, usize, Option<String>) {
    let count = |s: &str| op.runtimes.iter().filter(|r| r.state == s).count();
    let message = op
        .runtimes
        .iter()
        .find(|r| r.state == "failed")
        .and_then(|r| r.message.clone());
    (
        count("succeeded"),
        count("failed"),
        count("pending"),
        message,
    )
}

fn mi_runtime_ids(ctx: &Ctx, scope: &Scope) -> Res<Vec<String>> {
    Ok(ctx
        .deps
        .store
        .read(|tx| tx.scope_runtimes(scope.integration_id, scope.environment_id))
        .map_err(from_error)?
        .into_iter()
        .filter(|r| r.record.runtime_type == "MI")
        .map(|r| r.record.runtime_id)
        .collect())
}

/// The environments an artifact change addresses: `environment_id`, or every
/// environment with MI runtimes of the component.
fn artifact_scopes(
    ctx: &Ctx,
    i: &IntegrationInfo,
    p: &ProjectInfo,
    environment_id: Option<&str>,
) -> Res<Vec<(Scope, Vec<String>)>> {
    let envs: Vec<EnvironmentInfo> = super::query::environments_named(ctx, environment_id)?;
    let mut out = Vec::new();
    for e in envs {
        let scope = scope_of(p, i, &e);
        let ids = mi_runtime_ids(ctx, &scope)?;
        if !ids.is_empty() {
            out.push((scope, ids));
        }
    }
    Ok(out)
}

fn state_value(s: ArtifactState) -> &'static str {
    match s {
        ArtifactState::Enabled => "enabled",
        ArtifactState::Disabled => "disabled",
    }
}

/// `updateArtifactStatus` / `…TracingStatus` / `…StatisticsStatus`: one
/// desired value for an MI artifact in the addressed environments.
#[allow(clippy::too_many_arguments)]
fn artifact_change(
    ctx: &Ctx,
    component_id: &str,
    environment_id: Option<&str>,
    artifact_type: &str,
    artifact_name: &str,
    field: Kind,
    value: ArtifactState,
    denied: &str,
) -> Res<ArtifactStatusChangeResponse> {
    let (i, p) = component_by_id(ctx, component_id)?;
    let env = environment_id
        .map(|e| environment_by_id(ctx, e))
        .transpose()?;
    if !can_edit(&ctx.principal, &target_of(&i, env.as_ref())) {
        return Err(fail(denied));
    }
    let failed = |message: String| ArtifactStatusChangeResponse {
        status: Status::Failed,
        message,
        success_count: 0,
        failed_count: 0,
        details: Vec::new(),
    };
    let kind = match super::query::kind_arg(artifact_type) {
        Ok(k) => k,
        Err(e) => return Ok(failed(e.message().to_string())),
    };
    let supported = match field {
        Kind::MiState => kind.has_status(),
        Kind::MiTracing => kind.has_tracing(),
        _ => kind.has_statistics(),
    };
    if !supported {
        let (what, list) = match field {
            Kind::MiState => ("Status change", "ProxyService, Endpoint, InboundEndpoint, MessageProcessor, Task"),
            Kind::MiTracing => ("Tracing", "ProxyService, Endpoint, InboundEndpoint, RestApi, Sequence, Template"),
            _ => {
                return Err(fail(format!(
                    "Artifact type '{}' does not support statistics. Supported types: ProxyService, Endpoint, RestApi, Sequence, InboundEndpoint",
                    artifact_type.chars().take(60).collect::<String>()
                )))
            }
        };
        return Ok(failed(format!(
            "{what} is not supported for artifact type '{}'. Supported types: {list}",
            artifact_type.chars().take(60).collect::<String>()
        )));
    }
    let scopes = artifact_scopes(ctx, &i, &p, environment_id)?;
    if scopes.is_empty() {
        return Ok(failed("No MI runtimes found for this component".into()));
    }
    let mut runtimes = 0usize;
    let mut failures = Vec::new();
    for (scope, ids) in &scopes {
        let t = Target {
            project: Some(scope.project_id),
            integration: Some(scope.integration_id),
            environment: Some(scope.environment_id),
            critical: scope.critical,
        };
        // Environments where the caller may not act are left out (R-NEW).
        if !ctx.principal.may_act(Permission::IntegrationManage, &t) {
            continue;
        }
        let req = Request::mi_artifact(field, kind, artifact_name, state_value(value), None)
            .map_err(from_error)?;
        match request(ctx, scope, &req) {
            Ok(_) => runtimes += ids.len(),
            Err(e) => failures.push(format!("{}: {}", scope.environment, e.message())),
        }
    }
    if runtimes == 0 && failures.is_empty() {
        return Err(fail(denied));
    }
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let label = match field {
        Kind::MiState => "status",
        Kind::MiTracing => "tracing",
        _ => "statistics",
    };
    Ok(ArtifactStatusChangeResponse {
        status: if failures.is_empty() {
            Status::Success
        } else {
            Status::Failed
        },
        message: format!("Artifact {label} change dispatched to {runtimes} runtime(s)"),
        success_count: count(runtimes),
        failed_count: count(failures.len()),
        details: Vec::new(),
    })
}

/// The same status, message, counts and details in another of ICP's
/// response types (they differ only in name).
macro_rules! same_response {
    ($r:expr, $to:ident) => {{
        let r = $r;
        $to {
            status: r.status,
            message: r.message,
            success_count: r.success_count,
            failed_count: r.failed_count,
            details: r.details,
        }
    }};
}

/// ICP's `Mutation`.
pub struct Mutation;

#[graphql_object]
#[graphql(context = Ctx)]
impl Mutation {
    /// Deletes a runtime record; with `revokeSecret`, revokes its key if no other runtime uses it.
    fn delete_runtime(
        ctx: &Ctx,
        runtime_id: String,
        revoke_secret: Option<bool>,
    ) -> Res<DeleteRuntimeResult> {
        let store = &ctx.deps.store;
        let target = store
            .read(|tx| tx.runtime_target(&runtime_id))
            .map_err(from_error)?
            .ok_or_else(|| fail("Runtime not found"))?;
        if !ctx
            .principal
            .may_act(Permission::IntegrationManage, &target)
        {
            return Err(fail(
                "Access denied: insufficient permissions to delete runtime",
            ));
        }
        let record = store
            .read(|tx| tx.runtime(&runtime_id))
            .map_err(from_error)?
            .ok_or_else(|| fail("Runtime not found"))?;
        let others = store
            .read(|tx| tx.runtimes_using_key(&record.key_id))
            .map_err(from_error)?
            .into_iter()
            .filter(|id| *id != runtime_id)
            .count();
        let orphaned = (others == 0).then(|| record.key_id.clone());
        let revoke = revoke_secret.unwrap_or(false) && orphaned.is_some();
        let info = store
            .read(|tx| events::runtime_info(tx, &runtime_id))
            .map_err(from_error)?;
        let deleted =
            crate::runtimes::delete(store, &ctx.deps.liveness, &runtime_id, revoke, ctx.now)
                .map_err(from_error)?;
        if let Some(info) = info {
            ctx.deps.events.publish(&Event::RuntimeRemoved {
                runtime_id: runtime_id.clone(),
                at: ctx.now,
                scope: info.scope,
            });
        }
        Ok(DeleteRuntimeResult {
            deleted: true,
            orphaned_key_id: orphaned,
            secret_revoked: deleted.revoked_secret.is_some(),
        })
    }

    /// Starts or stops a BI listener on the listed runtimes' integrations and environments.
    fn update_listener_state(
        ctx: &Ctx,
        input: ListenerControlInput,
    ) -> Res<ListenerControlResponse> {
        if input.runtime_ids.is_empty() {
            return Err(fail("At least one runtime ID must be provided"));
        }
        if input.listener_name.trim().is_empty() {
            return Err(fail("Listener name cannot be empty"));
        }
        let state = match input.action {
            ControlAction::Start => "enabled",
            ControlAction::Stop => "disabled",
            ControlAction::MiMgmt | ControlAction::WorkflowMgmt | ControlAction::SetLoggerLevel => {
                let name = match input.action {
                    ControlAction::MiMgmt => "MI_MGMT",
                    ControlAction::WorkflowMgmt => "WORKFLOW_MGMT",
                    _ => "SET_LOGGER_LEVEL",
                };
                return Err(fail(format!("Unsupported listener action: {name}")));
            }
        };
        let groups = addressed(ctx, &input.runtime_ids, |id| {
            format!("Access denied: insufficient permissions to control listener on runtime {id}")
        })?;
        let mut n = 0;
        for g in &groups {
            let req = Request::listener(&input.listener_name, state, None).map_err(from_error)?;
            request(ctx, &g.scope, &req)?;
            n += g.runtime_ids.len();
        }
        Ok(ListenerControlResponse {
            success: true,
            message: format!(
                "Listener {} state change dispatched to {n} runtime(s)",
                input.listener_name
            ),
            command_ids: Vec::new(),
        })
    }

    /// Removes a logger from MI runtimes (an operation; re-send with the same requestId to poll).
    fn delete_logger(ctx: &Ctx, input: DeleteLoggerInput) -> Res<DeleteLoggerResponse> {
        check_request_id(&input.request_id)?;
        if input.runtime_ids.is_empty() {
            return Err(fail("At least one runtime ID must be provided"));
        }
        if input.logger_name.trim().is_empty() {
            return Err(fail("Logger name is required"));
        }
        let groups = addressed(ctx, &input.runtime_ids, |id| {
            format!("Access denied: insufficient permissions to control log level on runtime {id}")
        })?;
        let not_mi: Vec<&String> = groups
            .iter()
            .filter(|g| g.runtime_type != "MI")
            .flat_map(|g| &g.runtime_ids)
            .collect();
        if !not_mi.is_empty() {
            return Err(fail(format!(
                "Only MI runtimes supported, invalid runtimeIds: {not_mi:?}"
            )));
        }
        let ops = mi_operations(
            ctx,
            &groups,
            &input.request_id,
            "delete-logger",
            &input.logger_name,
            || Call::DeleteLogger {
                name: input.logger_name.clone(),
            },
        )?;
        let (ok, failed, pending, message) = sum(&ops);
        Ok(DeleteLoggerResponse {
            success: pending == 0 && ok > 0,
            message: if pending > 0 {
                format!(
                    "Waiting for {pending} runtime(s) to remove logger {}",
                    input.logger_name
                )
            } else {
                format!(
                    "Logger {} removed from {ok} runtime(s), failed on {failed}{}",
                    input.logger_name,
                    message.map(|m| format!(": {m}")).unwrap_or_default()
                )
            },
            preparing: pending > 0,
            stale: false,
            retry_after_ms: if pending > 0 { 750 } else { 0 },
        })
    }

    /// Sets a log level: BI per module as desired state; MI per logger (with `loggerClass`: adds it).
    fn update_log_level(ctx: &Ctx, input: UpdateLogLevelInput) -> Res<UpdateLogLevelResponse> {
        check_request_id(&input.request_id)?;
        let first = input
            .runtime_ids
            .first()
            .ok_or_else(|| fail("At least one runtime ID must be provided"))?;
        let groups = addressed(ctx, &input.runtime_ids, |id| {
            format!("Access denied: insufficient permissions to control log level on runtime {id}")
        })?;
        let is_mi = match input.component_type {
            Some(t) => t == RuntimeType::Mi,
            None => {
                let t = ctx
                    .deps
                    .store
                    .read(|tx| tx.runtime(first))
                    .map_err(from_error)?
                    .ok_or_else(|| fail(format!("Runtime {first} not found")))?;
                t.runtime_type == "MI"
            }
        };
        let level = input.log_level.graphql_name().to_string();
        let done = |success: bool, message: String, pending: bool| UpdateLogLevelResponse {
            success,
            message,
            command_ids: Vec::new(),
            preparing: pending,
            stale: false,
            retry_after_ms: if pending { 750 } else { 0 },
        };
        if !is_mi {
            let component = input
                .component_name
                .filter(|c| !c.trim().is_empty())
                .ok_or_else(|| fail("Component name is required for BI components"))?;
            for g in &groups {
                let req = Request::logger(&component, &level, None).map_err(from_error)?;
                request(ctx, &g.scope, &req)?;
            }
            return Ok(done(
                true,
                format!("Log level for {component} set to {level}"),
                false,
            ));
        }
        let logger = input
            .logger_name
            .filter(|l| !l.trim().is_empty())
            .ok_or_else(|| fail("Logger name is required for MI components"))?;
        if let Some(class) = input.logger_class.filter(|c| !c.trim().is_empty()) {
            let ops = mi_operations(
                ctx,
                &groups,
                &input.request_id,
                "add-logger",
                &logger,
                || Call::AddLogger {
                    name: logger.clone(),
                    level: level.clone(),
                    class: class.clone(),
                },
            )?;
            let (ok, failed, pending, message) = sum(&ops);
            return Ok(if pending > 0 {
                done(
                    false,
                    format!("Waiting for {pending} runtime(s) to add logger {logger}"),
                    true,
                )
            } else {
                done(
                    ok > 0,
                    format!(
                        "Logger {logger} added with level {level} on {ok} runtime(s), failed on {failed}{}",
                        message.map(|m| format!(": {m}")).unwrap_or_default()
                    ),
                    false,
                )
            });
        }
        let mut n = 0;
        for g in &groups {
            let req = Request::mi_logger(&logger, &level, Some(g.runtime_ids.clone()))
                .map_err(from_error)?;
            request(ctx, &g.scope, &req)?;
            n += g.runtime_ids.len();
        }
        Ok(done(
            n > 0,
            format!("Log level of {logger} set to {level} on {n} runtime(s); it converges as each runtime confirms it"),
            false,
        ))
    }

    /// Creates an environment (`environment:manage`).
    fn create_environment(ctx: &Ctx, environment: EnvironmentInput) -> Res<Option<Environment>> {
        if !ctx
            .principal
            .has(Permission::EnvironmentManage, &Target::organization())
        {
            return Err(fail(if environment.critical {
                "Access denied: insufficient permissions to create production environments"
            } else {
                "Access denied: insufficient permissions to create environments"
            }));
        }
        if environment.name.trim().is_empty() {
            return Err(fail("Environment name is required"));
        }
        let handler = environment.environment_handler.trim().to_string();
        if handler.is_empty() {
            return Err(fail("Environment handler is required"));
        }
        let new = crate::catalog::NewEnvironment {
            name: environment.name.clone(),
            handle: Some(handler.clone()),
            critical: environment.critical,
            description: environment.description.clone(),
            data_plane: None,
            required_approvals: None,
        };
        match crate::catalog::add_environment(&ctx.deps.store, &new, ctx.now) {
            Ok(made) => Ok(Some(environment_out(&made.environment))),
            Err(Error::Conflict(_)) => Err(fail(format!(
                "Environment handler '{handler}' is already taken"
            ))),
            Err(e) => Err(from_error(e)),
        }
    }

    /// Deletes an environment without runtimes or active secrets (`environment:manage`).
    fn delete_environment(ctx: &Ctx, environment_id: String) -> Res<bool> {
        let e = environment_by_id(ctx, &environment_id)?;
        require_env_manage(ctx)?;
        crate::catalog::delete_environment(&ctx.deps.store, &e.handle, ctx.now)
            .map_err(from_error)?;
        Ok(true)
    }

    /// Changes an environment's name, description or production flag (its handler is fixed).
    fn update_environment(
        ctx: &Ctx,
        environment_id: String,
        name: Option<String>,
        handler: Option<String>,
        description: Option<String>,
        critical: Option<bool>,
    ) -> Res<Option<Environment>> {
        let e = environment_by_id(ctx, &environment_id)?;
        require_env_manage(ctx)?;
        if handler.as_deref().is_some_and(|h| h.trim() != e.handle) {
            return Err(fail(format!(
                "an environment's handler cannot change in icpd (it names the environment in runtimes' configuration); keep '{}'",
                e.handle
            )));
        }
        let change = crate::catalog::EnvironmentChange {
            name,
            critical,
            description,
            ..Default::default()
        };
        let e = crate::catalog::change_environment(&ctx.deps.store, &e.handle, &change)
            .map_err(from_error)?;
        Ok(Some(environment_out(&e)))
    }

    /// Sets whether an environment is critical (production).
    fn update_environment_production_status(
        ctx: &Ctx,
        environment_id: String,
        is_production: bool,
    ) -> Res<Option<Environment>> {
        let e = environment_by_id(ctx, &environment_id)?;
        if !ctx
            .principal
            .has(Permission::EnvironmentManage, &Target::organization())
        {
            return Err(fail("Access denied: full environment management permission required to change production status"));
        }
        let change = crate::catalog::EnvironmentChange {
            critical: Some(is_production),
            ..Default::default()
        };
        let e = crate::catalog::change_environment(&ctx.deps.store, &e.handle, &change)
            .map_err(from_error)?;
        Ok(Some(environment_out(&e)))
    }

    /// Creates a project (`project:manage`); `projectHandler` is its handle.
    fn create_project(ctx: &Ctx, project: ProjectInput) -> Res<Option<Project>> {
        if !ctx
            .principal
            .has(Permission::ProjectManage, &Target::organization())
        {
            return Err(fail("Insufficient permissions to create projects"));
        }
        let handler = project.project_handler.trim().to_string();
        if handler.is_empty() {
            return Err(fail("Project handler is required"));
        }
        let new = crate::catalog::NewProject {
            name: project.name.clone(),
            handle: Some(handler.clone()),
            description: project.description.clone(),
        };
        match crate::catalog::add_project(&ctx.deps.store, &new, ctx.now) {
            Ok(p) => Ok(Some(project_out(&p))),
            Err(Error::Conflict(_)) => Err(fail(format!(
                "Project handler '{handler}' is already taken in this organization"
            ))),
            Err(e) => Err(from_error(e)),
        }
    }

    /// Deletes a project without integrations (`project:manage`).
    fn delete_project(ctx: &Ctx, org_id: i32, project_id: String) -> Res<DeleteResponse> {
        let _ = org_id;
        let p = id_of(&project_id)
            .map(|n| ctx.project(n))
            .transpose()?
            .flatten()
            .ok_or_else(|| fail("Project not found"))?;
        if !ctx.principal.has(Permission::ProjectManage, &p.target()) {
            return Err(fail("Insufficient permissions to delete project"));
        }
        match crate::catalog::delete_project(&ctx.deps.store, &p) {
            Ok(()) => Ok(DeleteResponse {
                status: "success".into(),
                details: format!("Deleted project with ID: {project_id}"),
            }),
            Err(Error::Conflict(_)) => Ok(DeleteResponse {
                status: "failed".into(),
                details:
                    "Cannot delete project. Project contains components that must be deleted first."
                        .into(),
            }),
            Err(e) => Err(from_error(e)),
        }
    }

    /// Changes a project's name or description (`project:edit`).
    fn update_project(ctx: &Ctx, project: ProjectUpdateInput) -> Res<Project> {
        let p = id_of(&project.id)
            .map(|n| ctx.project(n))
            .transpose()?
            .flatten()
            .ok_or_else(|| fail("Project not found"))?;
        if !ctx.principal.has(Permission::ProjectEdit, &p.target()) {
            return Err(fail("Insufficient permissions to update project"));
        }
        let change = crate::catalog::ProjectChange {
            name: project.name.clone(),
            description: project.description.clone(),
        };
        let p = crate::catalog::change_project(&ctx.deps.store, &p, &change).map_err(from_error)?;
        Ok(project_out(&p))
    }

    /// Creates an integration in a project (`integration:edit` there); `name` is its handle.
    fn create_component(ctx: &Ctx, component: ComponentInput) -> Res<Option<Component>> {
        let p = id_of(&component.project_id)
            .map(|n| ctx.project(n))
            .transpose()?
            .flatten()
            .ok_or_else(|| fail("Project not found"))?;
        if !ctx.principal.has(Permission::IntegrationEdit, &p.target()) {
            return Err(fail(
                "Insufficient permissions to create component in this project",
            ));
        }
        let n = component.name.trim().chars().count();
        if !(3..=64).contains(&n) {
            return Err(fail("Component name must be between 3 and 64 characters"));
        }
        let new = crate::catalog::NewIntegration {
            name: component
                .display_name
                .clone()
                .filter(|d| !d.trim().is_empty())
                .unwrap_or_else(|| component.name.clone()),
            handle: Some(component.name.clone()),
            runtime_type: match component.component_type {
                Some(RuntimeType::Mi) => "MI".into(),
                _ => "BI".into(),
            },
            description: component.description.clone(),
        };
        match crate::catalog::add_integration(&ctx.deps.store, &p, &new, ctx.now) {
            Ok(i) => Ok(Some(super::query::component_out(&i, &p))),
            Err(Error::Conflict(_)) => Err(fail(format!(
                "The name \"{}\" is already taken in this project. Try a different name.",
                component.name
            ))),
            Err(e) => Err(from_error(e)),
        }
    }

    /// Moesif is not part of icpd: the reference's answer when its integration is disabled.
    fn create_moesif_dashboards(
        component_id: String,
        environment_id: String,
        management_api_key: String,
    ) -> Res<MoesifMetricsConfigStatus> {
        let _ = (component_id, environment_id, management_api_key);
        Err(fail(super::query::MOESIF_METRICS_OFF))
    }

    /// Moesif is not part of icpd: the reference's answer when its integration is disabled.
    fn create_moesif_logs_dashboards(
        component_id: String,
        environment_id: String,
        management_api_key: String,
    ) -> Res<MoesifLogsConfigStatus> {
        let _ = (component_id, environment_id, management_api_key);
        Err(fail(super::query::MOESIF_LOGS_OFF))
    }

    /// Deletes an integration with no registered runtimes (`integration:manage`).
    fn delete_component_v2(
        ctx: &Ctx,
        org_handler: String,
        component_id: String,
        project_id: String,
    ) -> Res<DeleteComponentV2Response> {
        let _ = org_handler;
        let (i, _) = component_by_id(ctx, &component_id)?;
        let failed = |message: String| DeleteComponentV2Response {
            status: "FAILED".into(),
            can_delete: false,
            message,
            encoded_data: String::new(),
        };
        if id_of(&project_id) != Some(i.project_id) {
            return Ok(failed(
                "Component does not belong to the specified project".into(),
            ));
        }
        if !ctx
            .principal
            .has(Permission::IntegrationManage, &target_of(&i, None))
        {
            return Ok(failed(
                "Insufficient permissions to delete this component".into(),
            ));
        }
        let runtimes = ctx
            .deps
            .store
            .read(|tx| tx.integration_runtimes(i.id))
            .map_err(from_error)?;
        if !runtimes.is_empty() {
            return Ok(failed(format!(
                "Cannot delete component: {} registered runtime(s) found. Please delete all runtimes before deleting.",
                runtimes.len()
            )));
        }
        crate::catalog::delete_integration(&ctx.deps.store, &ctx.deps.liveness, &i, ctx.now)
            .map_err(from_error)?;
        Ok(DeleteComponentV2Response {
            status: "SUCCESS".into(),
            can_delete: true,
            message: "Component deleted successfully".into(),
            encoded_data: String::new(),
        })
    }

    /// Changes an integration's display name or description (`integration:edit`).
    fn update_component(ctx: &Ctx, component: ComponentUpdateInput) -> Res<Component> {
        let (i, p) = component_by_id(ctx, &component.id)?;
        if !can_edit(&ctx.principal, &target_of(&i, None)) {
            return Err(fail("Insufficient permissions to update this component"));
        }
        if component
            .name
            .as_deref()
            .is_some_and(|n| crate::catalog::normalize_handle(n) != i.handle)
        {
            return Err(fail(format!(
                "an integration's name (its handle, '{}') cannot change in icpd: runtimes name it in their configuration; change displayName instead",
                i.handle
            )));
        }
        let change = crate::catalog::IntegrationChange {
            name: component.display_name.clone(),
            runtime_type: None,
            description: component.description.clone(),
        };
        let i =
            crate::catalog::change_integration(&ctx.deps.store, &i, &change).map_err(from_error)?;
        Ok(super::query::component_out(&i, &p))
    }

    /// Enables or disables an MI artifact (desired state, converged per runtime).
    fn update_artifact_status(
        ctx: &Ctx,
        input: ArtifactStatusChangeInput,
    ) -> Res<ArtifactStatusChangeResponse> {
        artifact_change(
            ctx,
            &input.component_id,
            input.environment_id.as_deref(),
            &input.artifact_type,
            &input.artifact_name,
            Kind::MiState,
            input.status,
            "Insufficient permissions to change artifact status",
        )
    }

    /// Switches an MI artifact's message tracing in one environment.
    fn update_artifact_tracing_status(
        ctx: &Ctx,
        input: ArtifactTracingChangeInput,
    ) -> Res<ArtifactTracingChangeResponse> {
        let r = artifact_change(
            ctx,
            &input.component_id,
            Some(&input.environment_id),
            &input.artifact_type,
            &input.artifact_name,
            Kind::MiTracing,
            input.trace,
            "Insufficient permissions to change artifact tracing",
        )?;
        Ok(same_response!(r, ArtifactTracingChangeResponse))
    }

    /// Switches an MI artifact's statistics in one environment.
    fn update_artifact_statistics_status(
        ctx: &Ctx,
        input: ArtifactStatisticsChangeInput,
    ) -> Res<ArtifactStatisticsChangeResponse> {
        let r = artifact_change(
            ctx,
            &input.component_id,
            Some(&input.environment_id),
            &input.artifact_type,
            &input.artifact_name,
            Kind::MiStatistics,
            input.statistics,
            "Insufficient permissions to change artifact statistics",
        )?;
        Ok(same_response!(r, ArtifactStatisticsChangeResponse))
    }

    /// Creates a runtime secret; answers `<keyId>.<keyMaterial>`, the only time it is shown.
    fn create_org_secret(
        ctx: &Ctx,
        environment_id: String,
        component_id: Option<String>,
    ) -> Res<String> {
        let e = environment_by_id(ctx, &environment_id)?;
        let binding = component_id
            .as_deref()
            .map(|c| component_by_id(ctx, c))
            .transpose()?;
        let target = match &binding {
            Some((i, _)) => target_of(i, Some(&e)),
            None => Target {
                environment: Some(e.id),
                critical: e.critical,
                ..Target::default()
            },
        };
        if !ctx
            .principal
            .may_act(Permission::IntegrationManage, &target)
        {
            return Err(fail(
                "Access denied: insufficient permissions to create org secrets",
            ));
        }
        let new = crate::secrets::NewSecret {
            environment: e.handle.clone(),
            binding: binding.map(|(i, p)| (p.handle, i.handle)),
            runtime_type: None,
            ttl: None,
        };
        let made = crate::secrets::create(&ctx.deps.store, &ctx.deps.master_key, &new, ctx.now)
            .map_err(from_error)?;
        Ok(made.secret)
    }

    /// Revokes a runtime secret; runtimes that used it must get a new one.
    fn revoke_org_secret(ctx: &Ctx, key_id: String) -> Res<bool> {
        let target = crate::secrets::visible_target(&ctx.deps.store, &ctx.principal, &key_id)
            .map_err(|_| {
                fail(format!(
                    "Secret with key id {} not found",
                    key_id.chars().take(40).collect::<String>()
                ))
            })?;
        if !ctx
            .principal
            .may_act(Permission::IntegrationManage, &target)
        {
            return Err(fail(
                "Access denied: insufficient permissions to revoke org secrets",
            ));
        }
        crate::secrets::revoke(&ctx.deps.store, &key_id, ctx.now).map_err(from_error)?;
        Ok(true)
    }

    /// Runs an MI task once on the component's MI runtimes (an operation).
    fn trigger_artifact(ctx: &Ctx, input: ArtifactTriggerInput) -> Res<ArtifactTriggerResponse> {
        let (i, p) = component_by_id(ctx, &input.component_id)?;
        let env = input
            .environment_id
            .as_deref()
            .map(|e| environment_by_id(ctx, e))
            .transpose()?;
        if !can_edit(&ctx.principal, &target_of(&i, env.as_ref())) {
            return Err(fail("Insufficient permissions to trigger task"));
        }
        let scopes = artifact_scopes(ctx, &i, &p, input.environment_id.as_deref())?;
        let mut details = Vec::new();
        let (mut ok, mut failed) = (0usize, 0usize);
        for (scope, ids) in &scopes {
            let t = Target {
                project: Some(scope.project_id),
                integration: Some(scope.integration_id),
                environment: Some(scope.environment_id),
                critical: scope.critical,
            };
            if !ctx.principal.may_act(Permission::IntegrationManage, &t) {
                continue;
            }
            let op = ctx
                .deps
                .mi
                .operate(
                    scope,
                    ids,
                    "trigger-task",
                    &input.task_name,
                    Call::TriggerTask {
                        name: input.task_name.clone(),
                    },
                    &who(ctx),
                    ctx.now,
                )
                .map_err(from_error)?;
            for r in &op.runtimes {
                let running = ctx.deps.liveness.status(&r.runtime_id)
                    == Some(crate::runtimes::Status::Running);
                if r.state == "failed" {
                    failed += 1;
                    details.push(format!(
                        "Runtime {}: FAILED - {}",
                        r.runtime_id,
                        r.message.clone().unwrap_or_default()
                    ));
                } else {
                    ok += 1;
                    details.push(if running {
                        format!("Runtime {}: Command sent", r.runtime_id)
                    } else {
                        format!("Runtime {}: Command queued (runtime offline)", r.runtime_id)
                    });
                }
            }
        }
        if scopes.is_empty() {
            return Ok(ArtifactTriggerResponse {
                status: Status::Failed,
                message: "No MI runtimes found for this component".into(),
                success_count: 0,
                failed_count: 0,
                details,
            });
        }
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(ArtifactTriggerResponse {
            status: if ok > 0 {
                Status::Success
            } else {
                Status::Failed
            },
            message: format!("Task {} triggered on {ok} runtime(s)", input.task_name),
            success_count: count(ok),
            failed_count: count(failed),
            details,
        })
    }

    /// Adds a user to an MI runtime's user store (an operation; re-send with the same requestId to poll).
    #[allow(clippy::too_many_arguments)]
    #[graphql(name = "addMIUser")]
    fn add_mi_user(
        ctx: &Ctx,
        component_id: String,
        runtime_id: String,
        username: String,
        password: String,
        #[graphql(default = false)] is_admin: bool,
        #[graphql(default = "primary".to_string())] domain: String,
        request_id: Option<String>,
    ) -> Res<MIUserOperationResponse> {
        check_request_id(&request_id)?;
        let _ = domain;
        let target = super::query::mi_user_target(ctx, &component_id, &runtime_id)?;
        if !ctx
            .principal
            .may_act(Permission::IntegrationManage, &target)
        {
            return Err(fail("Insufficient permissions to create MI users"));
        }
        if username.trim().is_empty() {
            return Err(fail("username must be a non-empty string"));
        }
        if password.is_empty() {
            return Err(fail("password must be a non-empty string"));
        }
        let groups = addressed(ctx, std::slice::from_ref(&runtime_id), |_| {
            "Insufficient permissions to create MI users".to_string()
        })?;
        let ops = mi_operations(ctx, &groups, &request_id, "add-user", &username, || {
            Call::AddUser {
                id: username.clone(),
                password: Password::new(password.clone()),
                admin: is_admin,
            }
        })?;
        user_response(username, "Added", &ops)
    }

    /// Deletes a user from an MI runtime's user store (an operation; re-send with the same requestId to poll).
    #[graphql(name = "deleteMIUser")]
    fn delete_mi_user(
        ctx: &Ctx,
        component_id: String,
        runtime_id: String,
        username: String,
        #[graphql(default = "primary".to_string())] domain: String,
        request_id: Option<String>,
    ) -> Res<MIUserOperationResponse> {
        check_request_id(&request_id)?;
        let target = super::query::mi_user_target(ctx, &component_id, &runtime_id)?;
        if !ctx
            .principal
            .may_act(Permission::IntegrationManage, &target)
        {
            return Err(fail("Insufficient permissions to delete MI users"));
        }
        if username.trim().is_empty() {
            return Err(fail("username must be a non-empty string"));
        }
        let groups = addressed(ctx, std::slice::from_ref(&runtime_id), |_| {
            "Insufficient permissions to delete MI users".to_string()
        })?;
        let domain = (domain != "primary" && !domain.is_empty()).then_some(domain);
        let ops = mi_operations(ctx, &groups, &request_id, "delete-user", &username, || {
            Call::DeleteUser {
                id: username.clone(),
                domain: domain.clone(),
            }
        })?;
        user_response(username, "Deleted", &ops)
    }
}

fn require_env_manage(ctx: &Ctx) -> Res<()> {
    if ctx
        .principal
        .has(Permission::EnvironmentManage, &Target::organization())
    {
        Ok(())
    } else {
        Err(fail(
            "Access denied: insufficient permissions to manage environments (environment:manage)",
        ))
    }
}

/// One operation per addressed scope (or the ones `request_id` already started).
fn mi_operations(
    ctx: &Ctx,
    groups: &[Addressed],
    request_id: &Option<String>,
    action: &str,
    target: &str,
    call: impl Fn() -> Call,
) -> Res<Vec<Operation>> {
    let mut ops = Vec::new();
    for (n, g) in groups.iter().enumerate() {
        // One request id may cover several scopes: each gets its own key,
        // which names the action and its target too, so a requestId reused
        // for another change starts that change instead of reporting the old one.
        let rid = request_id
            .as_ref()
            .map(|r| format!("{r}#{n}#{action}#{target}#{}", g.runtime_ids.join(",")));
        let op = operation(ctx, &rid, || {
            ctx.deps
                .mi
                .operate(
                    &g.scope,
                    &g.runtime_ids,
                    action,
                    target,
                    call(),
                    &who(ctx),
                    ctx.now,
                )
                .map_err(from_error)
        })?;
        ops.push(op);
    }
    Ok(ops)
}

fn sum(ops: &[Operation]) -> (usize, usize, usize, Option<String>) {
    ops.iter().fold((0, 0, 0, None), |(a, b, c, m), op| {
        let (x, y, z, n) = outcome(op);
        (a + x, b + y, c + z, m.or(n))
    })
}

fn user_response(username: String, done: &str, ops: &[Operation]) -> Res<MIUserOperationResponse> {
    let (ok, _, pending, message) = sum(ops);
    if pending > 0 {
        return Ok(MIUserOperationResponse {
            username,
            status: String::new(),
            preparing: true,
            stale: false,
            retry_after_ms: 750,
        });
    }
    if ok == 0 {
        return Err(fail(message.unwrap_or_else(|| {
            "the runtime did not accept this change".into()
        })));
    }
    Ok(MIUserOperationResponse {
        username,
        status: done.into(),
        preparing: false,
        stale: false,
        retry_after_ms: 0,
    })
}
