//! Micro Integrator routes: the MI artifacts of an integration in an
//! environment with their sync state and controls (desired state for
//! artifacts and loggers; one-shot operations: trigger a task, add or
//! remove a logger or an MI user), reads from one runtime's Management API
//! (`preparing`/`ready`/`failed`, never waiting on the runtime), the
//! search for MI artifacts by name, and the MI management settings of
//! environments and runtimes.
//!
//! Reading needs `integration:view` (MI users: `integration:manage`);
//! acting needs `integration:manage` plus the environment permission a
//! critical environment demands.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::commands::scope;
use super::{ok, schema, Access, Api, Body, Ctx, Input, Items, Route};
use crate::access::{Permission, Target};
use crate::commands::{Desired, IssuedView, Kind, Request, Scope};
use crate::error::{Error, Result};
use crate::http::Response;
use crate::mi::control::{Operation, ReadKey, ReadState};
use crate::mi::management::{Call, Password};
use crate::mi::{view, MiKind};
use crate::runtimes;

macro_rules! scoped {
    ($rest:literal) => {
        concat!(
            "/api/v1/projects/{project}/integrations/{integration}/environments/{env}/mi",
            $rest
        )
    };
}

pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/api/v1/projects/{project}/integrations/{integration}/environments/{env}/mi/artifacts",
        access: Access::User,
        summary: "MI artifacts of an integration in an environment by kind and name: what each replica reports, what is desired, inSync and replicasDiffer per artifact; MI loggers per replica. kind and name (exact) narrow it to one kind or one artifact (without loggers)",
        query: &["kind", "name"],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<view::ScopeView>))],
        errors: &[],
        handler: scope_artifacts,
    },
    Route {
        method: "GET",
        path: "/api/v1/mi/artifacts",
        access: Access::User,
        summary: "Search MI artifacts by name (q, case ignored) across what the caller may view; kind narrows to one artifact kind; at most limit (default 100, at most 500)",
        query: &["q", "kind", "limit"],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Items<view::Found>>))],
        errors: &[],
        handler: search,
    },
    Route {
        method: "PUT",
        path: scoped!("/artifacts/{kind}/{name}"),
        access: Access::User,
        summary: "Desired state of an MI artifact on all (or the given) replicas: any of {\"state\", \"tracing\", \"statistics\"} as \"enabled\"|\"disabled\", and \"runtimeIds\"; 202 with the commands issued, carried out through each runtime's Management API until its heartbeats report it",
        query: &[],
        body: Input::Json(schema::<ArtifactBody>),
        ok: &[(202, Body::Json(schema::<IssuedView>))],
        errors: &[422],
        handler: set_artifact,
    },
    Route {
        method: "PUT",
        path: scoped!("/loggers/{logger}"),
        access: Access::User,
        summary: "Desired level of an MI logger on all (or the given) replicas: {\"level\": \"OFF\"|\"TRACE\"|\"DEBUG\"|\"INFO\"|\"WARN\"|\"ERROR\"|\"FATAL\", \"runtimeIds\": [...]}; 202; converges when MI's logger list shows it",
        query: &[],
        body: Input::Json(schema::<LoggerBody>),
        ok: &[(202, Body::Json(schema::<IssuedView>))],
        errors: &[422],
        handler: set_logger,
    },
    Route {
        method: "POST",
        path: scoped!("/loggers"),
        access: Access::User,
        summary: "Add an MI logger for a class or package: {\"logger\", \"loggerClass\", \"level\", \"runtimeIds\"}; 202 with an operation to poll",
        query: &[],
        body: Input::Json(schema::<AddLoggerBody>),
        ok: &[(202, Body::Json(schema::<Operation>))],
        errors: &[422],
        handler: add_logger,
    },
    Route {
        method: "DELETE",
        path: scoped!("/loggers/{logger}"),
        access: Access::User,
        summary: "Remove an MI logger (MI refuses the root logger); 202 with an operation to poll",
        query: &[],
        body: Input::Optional(schema::<RuntimesBody>),
        ok: &[(202, Body::Json(schema::<Operation>))],
        errors: &[422],
        handler: delete_logger,
    },
    Route {
        method: "POST",
        path: scoped!("/tasks/{name}/trigger"),
        access: Access::User,
        summary: "Run an MI task once now on all (or the given: {\"runtimeIds\": [...]}) replicas; 202 with an operation to poll",
        query: &[],
        body: Input::Optional(schema::<RuntimesBody>),
        ok: &[(202, Body::Json(schema::<Operation>))],
        errors: &[422],
        handler: trigger_task,
    },
    Route {
        method: "POST",
        path: scoped!("/users"),
        access: Access::User,
        summary: "Add a user to each replica's MI user store: {\"userId\", \"password\", \"isAdmin\", \"runtimeIds\"}; 202 with an operation to poll",
        query: &[],
        body: Input::Json(schema::<AddUserBody>),
        ok: &[(202, Body::Json(schema::<Operation>))],
        errors: &[422],
        handler: add_user,
    },
    Route {
        method: "DELETE",
        path: scoped!("/users/{user}"),
        access: Access::User,
        summary: "Remove a user from each replica's MI user store (domain: outside the primary one); 202 with an operation to poll",
        query: &["domain", "runtimeIds"],
        body: Input::None,
        ok: &[(202, Body::Json(schema::<Operation>))],
        errors: &[422],
        handler: delete_user,
    },
    Route {
        method: "GET",
        path: "/api/v1/mi/operations/{operationId}",
        access: Access::User,
        summary: "An MI operation and its outcome on each runtime (pending, succeeded, failed with MI's message)",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Operation>))],
        errors: &[],
        handler: get_operation,
    },
    Route {
        method: "GET",
        path: "/api/v1/runtimes/{runtimeId}/mi/{read}",
        access: Access::User,
        summary: "Read from an MI runtime's Management API without waiting on it: read is loggers, users, logs (file: one log file's text), registry (path; part: content|metadata|properties), carbon-app-fault or data-service-fault (name); answers {state: preparing|ready|failed, stale, fetchedAt, data, error}, 202 while preparing",
        query: &["file", "path", "part", "name"],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<ReadState>)), (202, Body::Json(schema::<ReadState>))],
        errors: &[422],
        handler: runtime_read,
    },
    Route {
        method: "PUT",
        path: "/api/v1/runtimes/{runtimeId}/mi-settings",
        access: Access::User,
        summary: "An MI runtime's management settings: {\"tunnel\": true|false|null (null: its environment's choice), \"forgetCertificate\": true (trust the certificate it presents next)}",
        query: &[],
        body: Input::Json(schema::<RuntimeSettingsBody>),
        ok: &[(200, Body::Json(schema::<RuntimeSettings>))],
        errors: &[],
        handler: set_runtime_settings,
    },
    Route {
        method: "GET",
        path: "/api/v1/environments/{env}/mi-settings",
        access: Access::User,
        summary: "How icpd reaches the MI runtimes of an environment: {tunnel, caCertificate}",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<EnvironmentSettings>))],
        errors: &[],
        handler: get_environment_settings,
    },
    Route {
        method: "PUT",
        path: "/api/v1/environments/{env}/mi-settings",
        access: Access::User,
        summary: "Set how icpd reaches an environment's MI runtimes: {\"tunnel\": bool (management calls travel in heartbeat responses), \"caCertificate\": PEM|null (verify MI certificates against it; null: pin each runtime's certificate on first contact)}",
        query: &[],
        body: Input::Json(schema::<EnvironmentSettingsBody>),
        ok: &[(200, Body::Json(schema::<EnvironmentSettings>))],
        errors: &[422],
        handler: set_environment_settings,
    },
];

fn scope_artifacts(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, target) = scope(api, ctx)?;
    ctx.require(Permission::IntegrationView, &target)?;
    let kind = ctx
        .query_filled("kind")
        .map(|k| MiKind::parse_or_refuse(&k))
        .transpose()?;
    let name = ctx.query_filled("name");
    let only = view::Only {
        kind,
        name: name.as_deref(),
    };
    ok(&view::scope_view(
        &api.store,
        &api.liveness,
        &api.commands,
        &scope,
        only,
    )?)
}

fn search(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let q = ctx.query("q").unwrap_or_default();
    let kind = ctx.query_filled("kind");
    let limit = match ctx.query_filled("limit") {
        None => 100,
        Some(l) => l
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=view::MAX_SEARCH_RESULTS).contains(n))
            .ok_or_else(|| {
                Error::BadRequest(format!(
                    "limit must be a number from 1 to {}",
                    view::MAX_SEARCH_RESULTS
                ))
            })?,
    };
    let found = view::search(&api.store, ctx.principal()?, &q, kind.as_deref(), limit)?;
    ok(&Items { items: found })
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ArtifactBody {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    tracing: Option<String>,
    #[serde(default)]
    statistics: Option<String>,
    #[serde(default)]
    runtime_ids: Option<Vec<String>>,
}

/// The path's artifact kind; 404 for one MI does not have (a path that
/// names nothing).
fn kind_param(ctx: &Ctx) -> Result<MiKind> {
    MiKind::parse_or_refuse(ctx.param("kind")).map_err(|e| Error::NotFound(e.to_string()))
}

/// The scope and target of a control request, with `integration:manage`
/// (and the environment permission) checked.
fn acting(api: &Api, ctx: &mut Ctx) -> Result<(Scope, Target)> {
    let (scope, target) = scope(api, ctx)?;
    ctx.require_act(Permission::IntegrationManage, &target)?;
    Ok((scope, target))
}

fn audit(ctx: &mut Ctx, scope: &Scope, what: String) {
    ctx.audit_target = Some(format!(
        "{}/{}@{} {}",
        scope.project,
        scope.integration,
        scope.environment,
        what.chars().take(200).collect::<String>()
    ));
}

fn set_artifact(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, _) = acting(api, ctx)?;
    let kind = kind_param(ctx)?;
    let name = ctx.param("name").to_string();
    let body: ArtifactBody = ctx.body()?;
    let fields = [
        (Kind::MiState, body.state),
        (Kind::MiTracing, body.tracing),
        (Kind::MiStatistics, body.statistics),
    ];
    let mut requests = Vec::new();
    for (field, value) in fields {
        if let Some(v) = value {
            requests.push(Request::mi_artifact(
                field,
                kind,
                &name,
                &v,
                body.runtime_ids.clone(),
            )?);
        }
    }
    if requests.is_empty() {
        return Err(Error::Unprocessable(
            "give at least one of state, tracing, statistics".into(),
        ));
    }
    audit(
        ctx,
        &scope,
        format!(
            "{} {:?} -> {}",
            kind.as_str(),
            name,
            requests
                .iter()
                .map(|r| format!("{}={}", r.kind.as_str(), r.value))
                .collect::<Vec<_>>()
                .join(",")
        ),
    );
    let who = ctx.principal()?.username.clone();
    let mut desired: Option<Desired> = None;
    let mut commands = Vec::new();
    for req in &requests {
        let issued = api
            .commands
            .request(&api.store, &scope, req, &who, ctx.now)?
            .to_json();
        let d = desired.get_or_insert_with(|| issued.desired.clone());
        d.fields.extend(issued.desired.fields);
        commands.extend(issued.commands);
    }
    let mut desired =
        desired.ok_or_else(|| Error::Internal("no request for the artifact".into()))?;
    desired.kind = kind.as_str().to_string();
    desired.fields.remove("artifact");
    desired.fields.insert("name".into(), name);
    api.mi.kick();
    Ok(Response::json(202, &IssuedView { desired, commands }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LoggerBody {
    level: String,
    #[serde(default)]
    runtime_ids: Option<Vec<String>>,
}

fn set_logger(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, _) = acting(api, ctx)?;
    let body: LoggerBody = ctx.body()?;
    let req = Request::mi_logger(ctx.param("logger"), &body.level, body.runtime_ids)?;
    audit(
        ctx,
        &scope,
        format!("mi-logger {:?} -> {}", req.artifact, req.value),
    );
    let who = ctx.principal()?.username.clone();
    let issued = api
        .commands
        .request(&api.store, &scope, &req, &who, ctx.now)?;
    api.mi.kick();
    Ok(Response::json(202, &issued.to_json()))
}

/// The runtimes an operation addresses: the given ones (each must be a
/// runtime of the scope) or every runtime of the scope.
fn addressed(api: &Api, scope: &Scope, given: Option<Vec<String>>) -> Result<Vec<String>> {
    let all: Vec<String> = api
        .store
        .read(|tx| tx.scope_runtimes(scope.integration_id, scope.environment_id))?
        .into_iter()
        .filter(|r| r.record.runtime_type == "MI")
        .map(|r| r.record.runtime_id)
        .collect();
    let ids = match given {
        None => all,
        Some(ids) => {
            if ids.is_empty() {
                return Err(Error::Unprocessable(
                    "runtimeIds must name at least one runtime; leave it out to address all runtimes".into(),
                ));
            }
            if let Some(bad) = ids.iter().find(|id| !all.contains(id)) {
                return Err(Error::NotFound(format!(
                    "runtime '{}' is not an MI runtime of {}/{} in '{}'",
                    bad.chars().take(100).collect::<String>(),
                    scope.project,
                    scope.integration,
                    scope.environment
                )));
            }
            ids
        }
    };
    if ids.is_empty() {
        return Err(Error::NotFound(format!(
            "{}/{} has no MI runtime in '{}'",
            scope.project, scope.integration, scope.environment
        )));
    }
    Ok(ids)
}

fn operate(
    api: &Api,
    ctx: &mut Ctx,
    scope: &Scope,
    runtime_ids: Option<Vec<String>>,
    action: &str,
    target: &str,
    call: Call,
) -> Result<Response> {
    let ids = addressed(api, scope, runtime_ids)?;
    audit(ctx, scope, format!("{action} {target:?}"));
    let who = ctx.principal()?.username.clone();
    let op = api
        .mi
        .operate(scope, &ids, action, target, call, &who, ctx.now)?;
    Ok(Response::json(202, &op))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AddLoggerBody {
    logger: String,
    logger_class: String,
    level: String,
    #[serde(default)]
    runtime_ids: Option<Vec<String>>,
}

fn add_logger(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, _) = acting(api, ctx)?;
    let b: AddLoggerBody = ctx.body()?;
    let level = Request::mi_logger(&b.logger, &b.level, None)?.value;
    let call = Call::AddLogger {
        name: b.logger.clone(),
        level,
        class: b.logger_class,
    };
    operate(
        api,
        ctx,
        &scope,
        b.runtime_ids,
        "add-logger",
        &b.logger,
        call,
    )
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuntimesBody {
    #[serde(default)]
    runtime_ids: Option<Vec<String>>,
}

fn optional_body<T: serde::de::DeserializeOwned + Default>(ctx: &Ctx) -> Result<T> {
    if ctx.req.body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        ctx.body()
    }
}

fn delete_logger(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, _) = acting(api, ctx)?;
    let b: RuntimesBody = optional_body(ctx)?;
    let name = ctx.param("logger").to_string();
    let call = Call::DeleteLogger { name: name.clone() };
    operate(
        api,
        ctx,
        &scope,
        b.runtime_ids,
        "delete-logger",
        &name,
        call,
    )
}

fn trigger_task(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, _) = acting(api, ctx)?;
    let b: RuntimesBody = optional_body(ctx)?;
    let name = ctx.param("name").to_string();
    let call = Call::TriggerTask { name: name.clone() };
    operate(api, ctx, &scope, b.runtime_ids, "trigger-task", &name, call)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AddUserBody {
    user_id: String,
    password: String,
    #[serde(default)]
    is_admin: bool,
    #[serde(default)]
    runtime_ids: Option<Vec<String>>,
}

fn add_user(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, _) = acting(api, ctx)?;
    let b: AddUserBody = ctx.body()?;
    if b.password.is_empty() {
        return Err(Error::Unprocessable(
            "give the new MI user a password".into(),
        ));
    }
    let call = Call::AddUser {
        id: b.user_id.clone(),
        password: Password::new(b.password),
        admin: b.is_admin,
    };
    operate(
        api,
        ctx,
        &scope,
        b.runtime_ids,
        "add-user",
        &b.user_id,
        call,
    )
}

fn delete_user(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, _) = acting(api, ctx)?;
    let user = ctx.param("user").to_string();
    let ids = ctx
        .query_filled("runtimeIds")
        .map(|s| s.split(',').map(str::to_string).collect());
    let call = Call::DeleteUser {
        id: user.clone(),
        domain: ctx.query_filled("domain"),
    };
    operate(api, ctx, &scope, ids, "delete-user", &user, call)
}

fn get_operation(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let id = ctx.param("operationId");
    let not_found = || {
        Error::NotFound(format!(
            "no MI operation '{}' (operations are kept for the last 1,000)",
            id.chars().take(60).collect::<String>()
        ))
    };
    let op = api.mi.operation(id).ok_or_else(not_found)?;
    let target = Target {
        project: Some(op.project_id),
        integration: Some(op.integration_id),
        environment: Some(op.environment_id),
        critical: false,
    };
    if !ctx.principal()?.has(Permission::IntegrationView, &target) {
        return Err(not_found());
    }
    ok(&op)
}

fn runtime_read(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let id = ctx.param("runtimeId").to_string();
    let target = runtimes::visible_target(&api.store, ctx.principal()?, &id)?;
    let need = |ctx: &Ctx, what: &str| -> Result<String> {
        ctx.query_filled(what)
            .ok_or_else(|| Error::BadRequest(format!("give {what}=...")))
    };
    let key = match ctx.param("read") {
        "loggers" => ReadKey::Loggers,
        "users" => {
            ctx.require(Permission::IntegrationManage, &target)?;
            ReadKey::Users
        }
        "logs" => match ctx.query_filled("file") {
            None => ReadKey::LogFiles,
            Some(f) => ReadKey::LogFile(f),
        },
        "registry" => {
            let path = ctx
                .query_filled("path")
                .unwrap_or_else(|| "registry".to_string());
            match ctx.query_filled("part").as_deref() {
                None => ReadKey::Registry(path),
                Some("content") => ReadKey::RegistryContent(path),
                Some("metadata") => ReadKey::RegistryMetadata(path),
                Some("properties") => ReadKey::RegistryProperties(path),
                Some(p) => {
                    return Err(Error::BadRequest(format!(
                        "part '{}' must be content, metadata or properties",
                        p.chars().take(40).collect::<String>()
                    )))
                }
            }
        }
        "carbon-app-fault" => ReadKey::CarbonAppFault(need(ctx, "name")?),
        "data-service-fault" => ReadKey::DataServiceFault(need(ctx, "name")?),
        other => {
            return Err(Error::NotFound(format!(
                "no MI read '{}'; reads are loggers, users, logs, registry, carbon-app-fault, data-service-fault",
                other.chars().take(40).collect::<String>()
            )))
        }
    };
    ctx.require(Permission::IntegrationView, &target)?;
    let rt = runtimes::show(&api.store, &id)?;
    if rt.runtime.runtime_type != "MI" {
        return Err(Error::Unprocessable(format!(
            "runtime {id} is a {} runtime; Management API reads are for MI runtimes",
            rt.runtime.runtime_type
        )));
    }
    let state = api.mi.read(&id, key, ctx.now);
    let status = if state.state == "preparing" { 202 } else { 200 };
    Ok(Response::json(status, &state))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuntimeSettingsBody {
    #[serde(default, deserialize_with = "present")]
    tunnel: Option<Option<bool>>,
    #[serde(default)]
    forget_certificate: bool,
}

/// Tells a member given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<bool>>, D::Error> {
    Ok(Some(Option::<bool>::deserialize(d)?))
}

fn set_runtime_settings(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let id = ctx.param("runtimeId").to_string();
    let target = runtimes::visible_target(&api.store, ctx.principal()?, &id)?;
    ctx.require_act(Permission::IntegrationManage, &target)?;
    let b: RuntimeSettingsBody = ctx.body()?;
    ctx.audit_target = Some(format!("runtime {id} mi-settings"));
    api.store.write(|tx| {
        if let Some(t) = b.tunnel {
            tx.set_runtime_mi_tunnel(&id, t)?;
        }
        if b.forget_certificate {
            tx.clear_management_pin(&id)?;
        }
        Ok(())
    })?;
    let row = api.store.read(|tx| tx.mi_target(&id))?;
    ok(&RuntimeSettings {
        runtime_id: id,
        tunnel: row.as_ref().map(|r| r.tunnel),
        pinned_certificate: row.and_then(|r| r.pin),
    })
}

/// An MI runtime's management settings.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct RuntimeSettings {
    runtime_id: String,
    /// Whether management calls travel in heartbeat responses (null: the
    /// runtime has not reported a management address yet).
    tunnel: Option<bool>,
    /// The pinned certificate digest (hex), after a first contact.
    pinned_certificate: Option<String>,
}

/// An environment's MI management settings.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct EnvironmentSettings {
    tunnel: bool,
    /// The CA that MI runtimes' Management API certificates must chain to.
    ca_certificate: Option<String>,
}

fn environment(api: &Api, ctx: &Ctx) -> Result<(crate::catalog::Environment, Target)> {
    let handle = crate::catalog::normalize_handle(ctx.param("env"));
    let env = api
        .store
        .read(|tx| tx.environment_by_handle(&handle))?
        .ok_or_else(|| Error::NotFound(format!("no environment '{handle}'")))?;
    let target = Target {
        project: None,
        integration: None,
        environment: Some(env.id),
        critical: env.critical,
    };
    Ok((env, target))
}

fn settings_json(s: &crate::store::MiEnvironmentSettings) -> EnvironmentSettings {
    EnvironmentSettings {
        tunnel: s.tunnel,
        ca_certificate: s.ca_pem.clone(),
    }
}

fn get_environment_settings(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (env, target) = environment(api, ctx)?;
    ctx.require(Permission::IntegrationView, &target)?;
    ok(&settings_json(
        &api.store.read(|tx| tx.mi_environment_settings(env.id))?,
    ))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EnvironmentSettingsBody {
    tunnel: bool,
    #[serde(default)]
    ca_certificate: Option<String>,
}

fn set_environment_settings(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (env, target) = environment(api, ctx)?;
    ctx.require(Permission::EnvironmentManage, &target)?;
    let b: EnvironmentSettingsBody = ctx.body()?;
    let ca_pem = b.ca_certificate.filter(|p| !p.trim().is_empty());
    if let Some(pem) = &ca_pem {
        crate::http::outbound::PeerTrust::from_ca_pem(pem).map_err(Error::Unprocessable)?;
    }
    ctx.audit_target = Some(format!("environment {} mi-settings", env.handle));
    let settings = crate::store::MiEnvironmentSettings {
        tunnel: b.tunnel,
        ca_pem,
    };
    api.store
        .write(|tx| tx.set_mi_environment_settings(env.id, &settings))?;
    ok(&settings_json(&settings))
}
