//! `/api/v1/projects/{project}/integrations/{integration}/environments/{env}/...`:
//! the artifacts an integration runs in an environment with their sync
//! state, control commands (start/stop a listener, set a logger level) and
//! the command log.
//!
//! Reading needs `integration:view`; acting needs `integration:manage` plus
//! the environment permission the environment's criticality demands.

use serde::Deserialize;

use super::{ok, schema, Access, Api, Body, Ctx, Input, Page, Route};
use crate::access::{Permission, Target};
use crate::commands::{self, Request, Scope};
use crate::error::Result;
use crate::http::Response;

macro_rules! path {
    ($rest:literal) => {
        concat!(
            "/api/v1/projects/{project}/integrations/{integration}/environments/{env}",
            $rest
        )
    };
}

pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: path!("/artifacts"),
        access: Access::User,
        summary: "Services, listeners, main and loggers of an integration in an environment, with desired values and inSync per artifact and runtime",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<commands::ArtifactsView>))],
        errors: &[],
        handler: artifacts,
    },
    Route {
        method: "PUT",
        path: path!("/listeners/{listener}"),
        access: Access::User,
        summary: "Start or stop a listener on all (or the given) runtimes: {\"state\": \"enabled\"|\"disabled\", \"runtimeIds\": [...]}; 202 with the commands issued",
        query: &[],
        body: Input::Json(schema::<ListenerBody>),
        ok: &[(202, Body::Json(schema::<commands::IssuedView>))],
        errors: &[422],
        handler: set_listener,
    },
    Route {
        method: "PUT",
        path: path!("/loggers/{component}"),
        access: Access::User,
        summary: "Set a logger level (component percent-encoded) on all (or the given) runtimes: {\"level\": \"DEBUG\"|\"INFO\"|\"WARN\"|\"ERROR\", \"runtimeIds\": [...]}; 202",
        query: &[],
        body: Input::Json(schema::<LoggerBody>),
        ok: &[(202, Body::Json(schema::<commands::IssuedView>))],
        errors: &[422],
        handler: set_logger,
    },
    Route {
        method: "GET",
        path: path!("/commands"),
        access: Access::User,
        summary: "The command log of an integration in an environment, newest first",
        query: &["limit", "cursor"],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Page<commands::CommandEntry>>))],
        errors: &[],
        handler: command_log,
    },
];

/// Resolves the path's project, integration and environment (404 if unknown).
pub(super) fn scope(api: &Api, ctx: &Ctx) -> Result<(Scope, Target)> {
    let s = commands::resolve(
        &api.store,
        ctx.param("project"),
        ctx.param("integration"),
        ctx.param("env"),
    )?;
    let target = Target {
        project: Some(s.project_id),
        integration: Some(s.integration_id),
        environment: Some(s.environment_id),
        critical: s.critical,
    };
    Ok((s, target))
}

fn artifacts(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, target) = scope(api, ctx)?;
    ctx.require(Permission::IntegrationView, &target)?;
    ok(&api.commands.view(&api.store, &api.liveness, &scope)?)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListenerBody {
    state: String,
    #[serde(default)]
    runtime_ids: Option<Vec<String>>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LoggerBody {
    level: String,
    #[serde(default)]
    runtime_ids: Option<Vec<String>>,
}

fn set_listener(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, target) = scope(api, ctx)?;
    ctx.require_act(Permission::IntegrationManage, &target)?;
    let body: ListenerBody = ctx.body()?;
    let req = Request::listener(ctx.param("listener"), &body.state, body.runtime_ids)?;
    act(api, ctx, &scope, &req)
}

fn set_logger(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, target) = scope(api, ctx)?;
    ctx.require_act(Permission::IntegrationManage, &target)?;
    let body: LoggerBody = ctx.body()?;
    let req = Request::logger(ctx.param("component"), &body.level, body.runtime_ids)?;
    act(api, ctx, &scope, &req)
}

fn act(api: &Api, ctx: &mut Ctx, scope: &Scope, req: &Request) -> Result<Response> {
    ctx.audit_target = Some(format!(
        "{}/{}@{} {} {:?} -> {}",
        scope.project,
        scope.integration,
        scope.environment,
        req.kind.as_str(),
        req.artifact.chars().take(100).collect::<String>(),
        req.value
    ));
    let who = ctx.principal()?.username.clone();
    let issued = api
        .commands
        .request(&api.store, scope, req, &who, ctx.now)?;
    Ok(Response::json(202, &issued.to_json()))
}

fn command_log(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, target) = scope(api, ctx)?;
    ctx.require(Permission::IntegrationView, &target)?;
    let page = ctx.page()?;
    let log = api
        .commands
        .log(&api.store, &scope, page.limit, page.cursor.as_deref())?;
    ok(&Page {
        items: log.items,
        total: log.total,
        next_cursor: log.next_cursor,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn routes_live_under_the_environment_of_an_integration() {
        for r in super::ROUTES {
            assert!(
                r.path.starts_with(
                    "/api/v1/projects/{project}/integrations/{integration}/environments/{env}/"
                ),
                "{}",
                r.path
            );
        }
    }
}
