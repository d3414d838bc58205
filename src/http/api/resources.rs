//! `/api/v1/environments`, `/projects` (with their environments and
//! integrations), `/secrets` and `/runtimes`.
//!
//! Lists are keyset pages: the cursor is the base64url of the last row's
//! sort key, opaque to clients. An item the caller may not view answers 404,
//! as if it did not exist; a visible item the caller may not change answers
//! 403. The rules themselves live in `catalog`, `secrets` and `runtimes`.

use schemars::JsonSchema;
use serde::Serialize;

use super::{created, no_content, ok, page, schema, Access, Api, Body, Ctx, Input, Page, Route};
use crate::access::{Permission, Target};
use crate::catalog;
use crate::error::{Error, Result};
use crate::events::{self, Event};
use crate::http::Response;
use crate::runtimes::{self, RuntimeQuery, Status};
use crate::secrets::{self, SecretQuery, SecretRequest};

const LIST: &[&str] = &["limit", "cursor"];

pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/api/v1/environments",
        access: Access::User,
        summary: "List environments",
        query: LIST,
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Page<catalog::EnvironmentInfo>>))],
        errors: &[],
        handler: list_environments,
    },
    Route {
        method: "POST",
        path: "/api/v1/environments",
        access: Access::User,
        summary: "Create an environment {name, handle?, critical?, description?, dataPlane?, requiredApprovals?} (environment:manage); requiredApprovals defaults to 1 when critical, else 0",
        query: &[],
        body: Input::Json(schema::<catalog::NewEnvironment>),
        ok: &[(201, Body::Json(schema::<catalog::CreatedEnvironment>))],
        errors: &[409, 422],
        handler: create_environment,
    },
    Route {
        method: "GET",
        path: "/api/v1/environments/{env}",
        access: Access::User,
        summary: "One environment",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<catalog::EnvironmentInfo>))],
        errors: &[],
        handler: get_environment,
    },
    Route {
        method: "PATCH",
        path: "/api/v1/environments/{env}",
        access: Access::User,
        summary: "Change an environment's name, critical flag, description, data plane or requiredApprovals (approvals a promotion into it needs, 0 to 10) (environment:manage)",
        query: &[],
        body: Input::Json(schema::<catalog::EnvironmentChange>),
        ok: &[(200, Body::Json(schema::<catalog::EnvironmentInfo>))],
        errors: &[409, 422],
        handler: update_environment,
    },
    Route {
        method: "DELETE",
        path: "/api/v1/environments/{env}",
        access: Access::User,
        summary: "Delete an environment without runtimes or active secrets (environment:manage)",
        query: &[],
        body: Input::None,
        ok: &[(204, Body::Empty)],
        errors: &[409],
        handler: delete_environment,
    },
    Route {
        method: "GET",
        path: "/api/v1/projects",
        access: Access::User,
        summary: "List the projects you may view",
        query: &["q", "limit", "cursor"],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Page<catalog::ProjectInfo>>))],
        errors: &[],
        handler: list_projects,
    },
    Route {
        method: "POST",
        path: "/api/v1/projects",
        access: Access::User,
        summary: "Create a project; its handle is derived from the name (project:manage)",
        query: &[],
        body: Input::Json(schema::<catalog::NewProject>),
        ok: &[(201, Body::Json(schema::<catalog::ProjectInfo>))],
        errors: &[409, 422],
        handler: create_project,
    },
    Route {
        method: "GET",
        path: "/api/v1/projects/handle-availability",
        access: Access::User,
        summary: "The handle a project name would get, and whether it is free",
        query: &["name"],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<HandleAvailability>))],
        errors: &[],
        handler: handle_availability,
    },
    Route {
        method: "GET",
        path: "/api/v1/projects/{project}",
        access: Access::User,
        summary: "One project",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<catalog::ProjectInfo>))],
        errors: &[],
        handler: get_project,
    },
    Route {
        method: "PATCH",
        path: "/api/v1/projects/{project}",
        access: Access::User,
        summary: "Change a project's name or description (project:edit)",
        query: &[],
        body: Input::Json(schema::<catalog::ProjectChange>),
        ok: &[(200, Body::Json(schema::<catalog::ProjectInfo>))],
        errors: &[409, 422],
        handler: update_project,
    },
    Route {
        method: "DELETE",
        path: "/api/v1/projects/{project}",
        access: Access::User,
        summary: "Delete a project without integrations (project:manage)",
        query: &[],
        body: Input::None,
        ok: &[(204, Body::Empty)],
        errors: &[409],
        handler: delete_project,
    },
    Route {
        method: "GET",
        path: "/api/v1/projects/{project}/environments",
        access: Access::User,
        summary: "The project's pipeline: its environments in order (all until a subset is set), each with its position and the next environment a promotion goes to",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<ProjectStages>))],
        errors: &[],
        handler: get_project_environments,
    },
    Route {
        method: "PUT",
        path: "/api/v1/projects/{project}/environments",
        access: Access::User,
        summary: "Set the project's ordered subset of environments (project:edit)",
        query: &[],
        body: Input::Json(schema::<catalog::ProjectEnvironments>),
        ok: &[(200, Body::Json(schema::<ProjectStages>))],
        errors: &[409, 422],
        handler: set_project_environments,
    },
    Route {
        method: "GET",
        path: "/api/v1/projects/{project}/integrations",
        access: Access::User,
        summary: "List the project's integrations you may view",
        query: &["q", "limit", "cursor"],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Page<catalog::IntegrationInfo>>))],
        errors: &[],
        handler: list_integrations,
    },
    Route {
        method: "POST",
        path: "/api/v1/projects/{project}/integrations",
        access: Access::User,
        summary: "Create an integration (integration:edit)",
        query: &[],
        body: Input::Json(schema::<catalog::NewIntegration>),
        ok: &[(201, Body::Json(schema::<catalog::IntegrationInfo>))],
        errors: &[409, 422],
        handler: create_integration,
    },
    Route {
        method: "GET",
        path: "/api/v1/projects/{project}/integrations/{integration}",
        access: Access::User,
        summary: "One integration",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<catalog::IntegrationInfo>))],
        errors: &[],
        handler: get_integration,
    },
    Route {
        method: "PATCH",
        path: "/api/v1/projects/{project}/integrations/{integration}",
        access: Access::User,
        summary: "Change an integration's name, runtime type or description (integration:edit)",
        query: &[],
        body: Input::Json(schema::<catalog::IntegrationChange>),
        ok: &[(200, Body::Json(schema::<catalog::IntegrationInfo>))],
        errors: &[409, 422],
        handler: update_integration,
    },
    Route {
        method: "DELETE",
        path: "/api/v1/projects/{project}/integrations/{integration}",
        access: Access::User,
        summary: "Delete an integration without RUNNING runtimes; its OFFLINE runtimes go and its secrets are revoked (integration:manage)",
        query: &[],
        body: Input::None,
        ok: &[(204, Body::Empty)],
        errors: &[409],
        handler: delete_integration,
    },
    Route {
        method: "GET",
        path: "/api/v1/secrets",
        access: Access::User,
        summary: "List the secrets you may view (never their key material)",
        query: &["environment", "project", "integration", "status", "limit", "cursor"],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Page<secrets::SecretRecord>>))],
        errors: &[],
        handler: list_secrets,
    },
    Route {
        method: "POST",
        path: "/api/v1/secrets",
        access: Access::User,
        summary: "Create a runtime secret; the secret and a Config.toml snippet are returned once",
        query: &[],
        body: Input::Json(schema::<SecretRequest>),
        ok: &[(201, Body::Json(schema::<CreatedSecret>))],
        errors: &[404, 422],
        handler: create_secret,
    },
    Route {
        method: "DELETE",
        path: "/api/v1/secrets/{keyId}",
        access: Access::User,
        summary: "Revoke a secret; runtimes using it are refused from their next request",
        query: &[],
        body: Input::None,
        ok: &[(204, Body::Empty)],
        errors: &[409],
        handler: revoke_secret,
    },
    Route {
        method: "GET",
        path: "/api/v1/runtimes",
        access: Access::User,
        summary: "List the runtimes you may view",
        query: &[
            "environment",
            "project",
            "integration",
            "status",
            "type",
            "q",
            "limit",
            "cursor",
        ],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Page<runtimes::RuntimeRecord>>))],
        errors: &[],
        handler: list_runtimes,
    },
    Route {
        method: "GET",
        path: "/api/v1/runtimes/{runtimeId}",
        access: Access::User,
        summary: "One runtime with node info, artifacts, log levels and status history",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<runtimes::RuntimeDetail>))],
        errors: &[],
        handler: get_runtime,
    },
    Route {
        method: "DELETE",
        path: "/api/v1/runtimes/{runtimeId}",
        access: Access::User,
        summary: "Delete a runtime (it must re-register); revokeSecret=true also revokes its secret if no other runtime uses it",
        query: &["revokeSecret"],
        body: Input::None,
        ok: &[(204, Body::Empty)],
        errors: &[409],
        handler: delete_runtime,
    },
];

// ---- environments -----------------------------------------------------

fn list_environments(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    page(catalog::list_environments(&api.store, &ctx.keyset()?)?)
}

fn create_environment(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    ctx.require(Permission::EnvironmentManage, &Target::organization())?;
    let e = catalog::add_environment(&api.store, &ctx.body()?, ctx.now)?;
    ctx.audit_target = Some(format!("environment {}", e.environment.handle));
    created(&e)
}

fn get_environment(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    ok(&catalog::environment(&api.store, ctx.param("env"))?)
}

fn update_environment(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    ctx.require(Permission::EnvironmentManage, &Target::organization())?;
    ok(&catalog::change_environment(
        &api.store,
        ctx.param("env"),
        &ctx.body()?,
    )?)
}

fn delete_environment(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    ctx.require(Permission::EnvironmentManage, &Target::organization())?;
    catalog::delete_environment(&api.store, ctx.param("env"), ctx.now)?;
    no_content()
}

// ---- projects ---------------------------------------------------------

fn list_projects(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let text = ctx.query_filled("q");
    page(catalog::list_projects(
        &api.store,
        ctx.principal()?,
        text.as_deref(),
        &ctx.keyset()?,
    )?)
}

fn create_project(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    ctx.require(Permission::ProjectManage, &Target::organization())?;
    let p = catalog::add_project(&api.store, &ctx.body()?, ctx.now)?;
    ctx.audit_target = Some(format!("project {}", p.handle));
    created(&p)
}

fn handle_availability(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let name = ctx
        .query("name")
        .ok_or_else(|| Error::BadRequest("give the project name as ?name=...".into()))?;
    let (handle, available) = catalog::project_handle_availability(&api.store, &name)?;
    ok(&HandleAvailability { handle, available })
}

/// The handle a project name gives, and whether it is free.
#[derive(Serialize, JsonSchema)]
struct HandleAvailability {
    handle: String,
    available: bool,
}

/// A project's environments, in pipeline order.
#[derive(Serialize, JsonSchema)]
struct ProjectStages {
    environments: Vec<catalog::PipelineStage>,
}

fn get_project(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    ok(&catalog::visible_project(
        &api.store,
        ctx.principal()?,
        ctx.param("project"),
    )?)
}

fn update_project(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let p = catalog::visible_project(&api.store, ctx.principal()?, ctx.param("project"))?;
    ctx.require(Permission::ProjectEdit, &p.target())?;
    ok(&catalog::change_project(&api.store, &p, &ctx.body()?)?)
}

fn delete_project(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let p = catalog::visible_project(&api.store, ctx.principal()?, ctx.param("project"))?;
    ctx.require(Permission::ProjectManage, &p.target())?;
    catalog::delete_project(&api.store, &p)?;
    no_content()
}

fn get_project_environments(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let p = catalog::visible_project(&api.store, ctx.principal()?, ctx.param("project"))?;
    let envs = catalog::project_environments(&api.store, &p)?;
    ok(&ProjectStages {
        environments: catalog::stages(envs),
    })
}

fn set_project_environments(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let p = catalog::visible_project(&api.store, ctx.principal()?, ctx.param("project"))?;
    ctx.require(Permission::ProjectEdit, &p.target())?;
    let body: catalog::ProjectEnvironments = ctx.body()?;
    let envs = catalog::set_project_environments(&api.store, &p, &body.environments)?;
    ok(&ProjectStages {
        environments: catalog::stages(envs),
    })
}

// ---- integrations -----------------------------------------------------

fn list_integrations(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let principal = ctx.principal()?;
    let p = catalog::visible_project(&api.store, principal, ctx.param("project"))?;
    let text = ctx.query_filled("q");
    page(catalog::list_integrations(
        &api.store,
        principal,
        &p,
        text.as_deref(),
        &ctx.keyset()?,
    )?)
}

fn create_integration(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let p = catalog::visible_project(&api.store, ctx.principal()?, ctx.param("project"))?;
    ctx.require(Permission::IntegrationEdit, &p.target())?;
    let i = catalog::add_integration(&api.store, &p, &ctx.body()?, ctx.now)?;
    ctx.audit_target = Some(format!("integration {}/{}", p.handle, i.handle));
    created(&i)
}

fn visible_integration(api: &Api, ctx: &Ctx) -> Result<catalog::IntegrationInfo> {
    catalog::visible_integration(
        &api.store,
        ctx.principal()?,
        ctx.param("project"),
        ctx.param("integration"),
    )
}

fn get_integration(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    ok(&visible_integration(api, ctx)?)
}

fn update_integration(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let i = visible_integration(api, ctx)?;
    ctx.require(Permission::IntegrationEdit, &i.target())?;
    ok(&catalog::change_integration(&api.store, &i, &ctx.body()?)?)
}

fn delete_integration(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let i = visible_integration(api, ctx)?;
    ctx.require(Permission::IntegrationManage, &i.target())?;
    catalog::delete_integration(&api.store, &api.liveness, &i, ctx.now)?;
    no_content()
}

// ---- secrets ----------------------------------------------------------

fn list_secrets(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let q = SecretQuery {
        environment: ctx.query_filled("environment"),
        project: ctx.query_filled("project"),
        integration: ctx.query_filled("integration"),
        status: ctx.query_filled("status"),
    };
    page(secrets::page(
        &api.store,
        ctx.principal()?,
        &q,
        &ctx.keyset()?,
        ctx.now,
    )?)
}

fn create_secret(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let req: SecretRequest = ctx.body()?;
    ctx.require_act(Permission::IntegrationManage, &req.target(&api.store)?)?;
    let made = secrets::create(&api.store, &api.master_key, &req.new_secret()?, ctx.now)?;
    ctx.audit_target = Some(format!("secret {}", made.record.key_id));
    let snippet = secrets::config_snippet(&made, &api.runtime_url, api.cert_path.as_deref());
    created(&CreatedSecret {
        record: made.record,
        secret: made.secret,
        config_toml: snippet,
    })
}

/// A new secret, with the secret itself and a Config.toml snippet (shown
/// this once).
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct CreatedSecret {
    #[serde(flatten)]
    record: secrets::SecretRecord,
    secret: String,
    config_toml: String,
}

fn revoke_secret(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let key_id = ctx.param("keyId").to_string();
    let target = secrets::visible_target(&api.store, ctx.principal()?, &key_id)?;
    ctx.require_act(Permission::IntegrationManage, &target)?;
    secrets::revoke(&api.store, &key_id, ctx.now)?;
    no_content()
}

// ---- runtimes ---------------------------------------------------------

fn list_runtimes(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let status = ctx
        .query_filled("status")
        .map(|s| {
            Status::parse(&s).ok_or_else(|| {
                Error::BadRequest(format!("status '{s}' must be RUNNING or OFFLINE"))
            })
        })
        .transpose()?;
    let runtime_type = ctx.query_filled("type").map(|t| t.to_ascii_uppercase());
    if let Some(t) = runtime_type
        .as_deref()
        .filter(|t| !matches!(*t, "BI" | "MI"))
    {
        return Err(Error::BadRequest(format!("type '{t}' must be BI or MI")));
    }
    let q = RuntimeQuery {
        environment: ctx.query_filled("environment"),
        project: ctx.query_filled("project"),
        integration: ctx.query_filled("integration"),
        status,
        runtime_type,
        text: ctx.query_filled("q"),
    };
    page(runtimes::page(
        &api.store,
        ctx.principal()?,
        &q,
        &ctx.keyset()?,
    )?)
}

fn get_runtime(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let id = ctx.param("runtimeId");
    runtimes::visible_target(&api.store, ctx.principal()?, id)?;
    ok(&runtimes::show(&api.store, id)?)
}

fn delete_runtime(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let id = ctx.param("runtimeId").to_string();
    let revoke = match ctx.query("revokeSecret").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(Error::BadRequest(format!(
                "revokeSecret '{v}' must be true or false"
            )))
        }
    };
    let target = runtimes::visible_target(&api.store, ctx.principal()?, &id)?;
    ctx.require_act(Permission::IntegrationManage, &target)?;
    let info = api.store.read(|tx| events::runtime_info(tx, &id))?;
    runtimes::delete(&api.store, &api.liveness, &id, revoke, ctx.now)?;
    if let Some(info) = info {
        api.events.publish(&Event::RuntimeRemoved {
            runtime_id: id,
            at: ctx.now,
            scope: info.scope,
        });
    }
    no_content()
}
