//! `GET /api/v1/refusals`: runtimes and log shippers the runtime listener
//! (or the management port) turned away recently, from memory (see
//! `refusals`). A refusal is shown to whoever may view runtimes where it
//! happened: `integration:view` on its environment, project or
//! integration, as far as the refused credential told them; one that names
//! no environment (an unknown key id, a missing token) only at
//! organization scope.

use super::{ok, schema, Access, Api, Body, Ctx, Input, Items, Route};
use crate::access::Permission;
use crate::catalog;
use crate::error::Result;
use crate::http::Response;

pub const ROUTES: &[Route] = &[Route {
    method: "GET",
    path: "/api/v1/refusals",
    access: Access::User,
    summary: "Recent refusals of runtimes and log shippers (unknown, wrong, revoked or expired credentials, environment or binding mismatches, rate limits, requests sent to the management port), newest first: the last 100 per environment, kept in memory, those you may view (integration:view)",
    query: &["environment", "limit"],
    body: Input::None,
    ok: &[(200, Body::Json(schema::<Items<crate::refusals::Refusal>>))],
    // An environment filter that names no environment.
    errors: &[404],
    handler: list,
}];

fn list(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let environment = match ctx.query_filled("environment") {
        Some(h) => Some(catalog::environment(&api.store, &catalog::normalize_handle(&h))?.id),
        None => None,
    };
    let limit = ctx.limit(crate::refusals::KEEP_PER_ENVIRONMENT as i64, 500)? as usize;
    let principal = ctx.principal()?;
    let items = api.refusals.recent(environment, limit, |t| {
        principal.has(Permission::IntegrationView, t)
    });
    ok(&Items { items })
}
