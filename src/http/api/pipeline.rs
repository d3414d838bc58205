//! `/api/v1/data-planes` and, under
//! `/api/v1/projects/{project}/integrations/{integration}/environments/{env}`,
//! an integration's deployment records (`/deployments`) and configuration
//! (`/config`).
//!
//! Data planes are changed with `environment:manage` at organization scope,
//! as environments are. Reading records and configuration needs
//! `integration:view`; recording a deployment needs `integration:manage`,
//! changing configuration `integration:edit`, each plus the environment
//! permission its criticality demands. Secret configuration values never
//! leave in a response, and audit entries name keys, never values.

use super::commands::scope;
use super::{
    created, no_content, ok, page, schema, Access, Api, Body, Ctx, Input, Items, Page, Route,
};
use crate::access::{Permission, Target};
use crate::catalog;
use crate::configuration::{self, ConfigChange};
use crate::data_planes;
use crate::deployments;
use crate::error::{Error, Result};
use crate::http::Response;

macro_rules! scoped {
    ($rest:literal) => {
        concat!(
            "/api/v1/projects/{project}/integrations/{integration}/environments/{env}",
            $rest
        )
    };
}

const LIST: &[&str] = &["limit", "cursor"];

pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/api/v1/data-planes",
        access: Access::User,
        summary: "List data planes with their environments and health (healthy, degraded, down or empty, from their runtimes)",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Items<data_planes::DataPlane>>))],
        errors: &[],
        handler: list_data_planes,
    },
    Route {
        method: "POST",
        path: "/api/v1/data-planes",
        access: Access::User,
        summary: "Register a data plane: {name, handle?, kind: cloud|private, region?, description?} (environment:manage)",
        query: &[],
        body: Input::Json(schema::<data_planes::NewDataPlane>),
        ok: &[(201, Body::Json(schema::<data_planes::DataPlane>))],
        errors: &[409, 422],
        handler: create_data_plane,
    },
    Route {
        method: "GET",
        path: "/api/v1/data-planes/{dataPlane}",
        access: Access::User,
        summary: "One data plane with its environments and health",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<data_planes::DataPlane>))],
        errors: &[],
        handler: get_data_plane,
    },
    Route {
        method: "PATCH",
        path: "/api/v1/data-planes/{dataPlane}",
        access: Access::User,
        summary: "Change a data plane's name, kind, region or description (environment:manage)",
        query: &[],
        body: Input::Json(schema::<data_planes::DataPlaneChange>),
        ok: &[(200, Body::Json(schema::<data_planes::DataPlane>))],
        errors: &[409, 422],
        handler: update_data_plane,
    },
    Route {
        method: "DELETE",
        path: "/api/v1/data-planes/{dataPlane}",
        access: Access::User,
        summary: "Delete a data plane that holds no environment (environment:manage)",
        query: &[],
        body: Input::None,
        ok: &[(204, Body::Empty)],
        errors: &[409],
        handler: delete_data_plane,
    },
    Route {
        method: "GET",
        path: scoped!("/deployments"),
        access: Access::User,
        summary: "Deployment records of an integration in an environment, newest (the current one) first",
        query: LIST,
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Page<deployments::Deployment>>))],
        errors: &[],
        handler: list_deployments,
    },
    Route {
        method: "POST",
        path: scoped!("/deployments"),
        access: Access::User,
        summary: "Record a deployment {version, artifact, sha256?}; it supersedes the current one (integration:manage)",
        query: &[],
        body: Input::Json(schema::<deployments::NewDeployment>),
        ok: &[(201, Body::Json(schema::<deployments::Deployment>))],
        errors: &[409, 422],
        handler: create_deployment,
    },
    Route {
        method: "GET",
        path: scoped!("/deployments/current"),
        access: Access::User,
        summary: "The current deployment record (404 when there is none)",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<deployments::Deployment>))],
        errors: &[],
        handler: current_deployment,
    },
    Route {
        method: "GET",
        path: scoped!("/config"),
        access: Access::User,
        summary: "Configuration values at the current (or ?revision=N) revision; secret values only as set, when and by whom",
        query: &["revision"],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<configuration::ConfigView>))],
        errors: &[],
        handler: get_config,
    },
    Route {
        method: "PATCH",
        path: scoped!("/config"),
        access: Access::User,
        summary: "Set and unset values in one new revision: {set: [{section, key, value, type?, secret?}], unset: [{section, key}], comment?, expectedRevision?} (integration:edit)",
        query: &[],
        body: Input::Json(schema::<ConfigChange>),
        ok: &[(200, Body::Json(schema::<configuration::ConfigView>))],
        errors: &[409, 422],
        handler: change_config,
    },
    Route {
        method: "GET",
        path: scoped!("/config/revisions"),
        access: Access::User,
        summary: "Configuration revisions, newest first",
        query: LIST,
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Page<configuration::RevisionInfo>>))],
        errors: &[],
        handler: config_revisions,
    },
];

fn data_plane_param(ctx: &Ctx) -> String {
    catalog::normalize_handle(ctx.param("dataPlane"))
}

// ---- data planes ------------------------------------------------------

fn list_data_planes(api: &Api, _ctx: &mut Ctx) -> Result<Response> {
    let items = data_planes::list(&api.store)?;
    ok(&Items { items })
}

fn create_data_plane(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    ctx.require(Permission::EnvironmentManage, &Target::organization())?;
    let d = data_planes::create(&api.store, &ctx.body()?, ctx.now)?;
    ctx.audit_target = Some(format!("data plane {}", d.handle));
    created(&d)
}

fn get_data_plane(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    ok(&data_planes::get(&api.store, &data_plane_param(ctx))?)
}

fn update_data_plane(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    ctx.require(Permission::EnvironmentManage, &Target::organization())?;
    ok(&data_planes::change(
        &api.store,
        &data_plane_param(ctx),
        &ctx.body()?,
    )?)
}

fn delete_data_plane(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    ctx.require(Permission::EnvironmentManage, &Target::organization())?;
    data_planes::delete(&api.store, &data_plane_param(ctx))?;
    no_content()
}

// ---- deployment records -----------------------------------------------

fn list_deployments(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, target) = scope(api, ctx)?;
    ctx.require(Permission::IntegrationView, &target)?;
    page(deployments::history(&api.store, &scope, &ctx.keyset()?)?)
}

fn create_deployment(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, target) = scope(api, ctx)?;
    ctx.require_act(Permission::IntegrationManage, &target)?;
    let who = ctx.principal()?.username.clone();
    let d = deployments::record(&api.store, &scope, &ctx.body()?, &who, ctx.now)?;
    ctx.audit_target = Some(format!(
        "deployment {}/{}@{} {} ({})",
        scope.project, scope.integration, scope.environment, d.version, d.id
    ));
    created(&d)
}

fn current_deployment(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, target) = scope(api, ctx)?;
    ctx.require(Permission::IntegrationView, &target)?;
    let d = deployments::current(&api.store, &scope)?.ok_or_else(|| {
        Error::NotFound(format!(
            "{}/{} has no deployment record in '{}' yet",
            scope.project, scope.integration, scope.environment
        ))
    })?;
    ok(&d)
}

// ---- configuration ----------------------------------------------------

fn get_config(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, target) = scope(api, ctx)?;
    ctx.require(Permission::IntegrationView, &target)?;
    let revision = ctx
        .query("revision")
        .filter(|r| !r.is_empty())
        .map(|r| {
            r.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| Error::BadRequest("revision must be a number from 1".into()))
        })
        .transpose()?;
    ok(&configuration::get(&api.store, &scope, revision)?)
}

fn change_config(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, target) = scope(api, ctx)?;
    ctx.require_act(Permission::IntegrationEdit, &target)?;
    let change: ConfigChange = ctx.body()?;
    let who = ctx.principal()?.username.clone();
    let view = configuration::change(&api.store, &api.master_key, &scope, &change, &who, ctx.now)?;
    ctx.audit_target = Some(configuration::audit_target(&scope, view.revision, &change));
    ok(&view)
}

fn config_revisions(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, target) = scope(api, ctx)?;
    ctx.require(Permission::IntegrationView, &target)?;
    page(configuration::revisions(
        &api.store,
        &scope,
        &ctx.keyset()?,
    )?)
}
