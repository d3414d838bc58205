//! Micro Integrator routes: the MI artifacts of an integration in an
//! environment with their sync state, and the search for MI artifacts by
//! name. Reading needs `integration:view` (the search shows only what the
//! caller may view).

use super::commands::scope;
use super::{ok, Access, Api, Ctx, Route};
use crate::access::Permission;
use crate::error::{Error, Result};
use crate::http::Response;
use crate::mi::view;

pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/api/v1/projects/{project}/integrations/{integration}/environments/{env}/mi/artifacts",
        access: Access::User,
        summary: "MI artifacts of an integration in an environment by kind and name: what each replica reports, what is desired, inSync and replicasDiffer per artifact; MI loggers per replica",
        query: &[],
        handler: scope_artifacts,
    },
    Route {
        method: "GET",
        path: "/api/v1/mi/artifacts",
        access: Access::User,
        summary: "Search MI artifacts by name (q, case ignored) across what the caller may view; kind narrows to one artifact kind; at most limit (default 100, at most 500)",
        query: &["q", "kind", "limit"],
        handler: search,
    },
];

fn scope_artifacts(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (scope, target) = scope(api, ctx)?;
    ctx.require(Permission::IntegrationView, &target)?;
    ok(&view::scope_view(
        &api.store,
        &api.liveness,
        &api.commands,
        &scope,
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
    ok(&serde_json::json!({ "items": found }))
}
