//! `/api/v1/observability/ingest-tokens`: credentials for log and metric
//! shippers (see `ingest_tokens`). Creating and revoking one needs what
//! creating a runtime secret needs: `integration:manage` on its scope and
//! the environment permission its criticality demands.

use serde_json::json;

use super::{created, no_content, ok, Access, Api, Ctx, Route};
use crate::access::Permission;
use crate::error::{Error, Result};
use crate::http::Response;
use crate::ingest_tokens::{self, NewIngestToken};

pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/api/v1/observability/ingest-tokens",
        access: Access::User,
        summary: "List the ingest tokens you may view (never the tokens themselves)",
        query: &[],
        handler: list,
    },
    Route {
        method: "POST",
        path: "/api/v1/observability/ingest-tokens",
        access: Access::User,
        summary: "Create an ingest token for log and metric shippers; the token and a Fluent Bit [OUTPUT] section are returned once (integration:manage)",
        query: &[],
        handler: create,
    },
    Route {
        method: "DELETE",
        path: "/api/v1/observability/ingest-tokens/{id}",
        access: Access::User,
        summary: "Revoke an ingest token; shippers using it are refused from their next request (integration:manage)",
        query: &[],
        handler: revoke,
    },
];

fn list(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let items = ingest_tokens::visible(&api.store, ctx.principal()?)?;
    ok(&json!({ "items": items, "total": items.len(), "nextCursor": null }))
}

fn create(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let req: NewIngestToken = ctx.body()?;
    let scope = req.scope(&api.store)?;
    ctx.require_act(Permission::IntegrationManage, &scope.target)?;
    let by = ctx.principal()?.username.clone();
    let (made, token) = ingest_tokens::create(&api.store, &req, &scope, &by, ctx.now)?;
    ctx.audit_target = Some(format!("ingest token {}", made.id));
    let snippet =
        ingest_tokens::fluent_bit_snippet(&token, &api.runtime_url, api.cert_path.as_deref());
    let mut v = serde_json::to_value(&made).map_err(|e| Error::Internal(e.to_string()))?;
    v["token"] = token.into();
    v["fluentBitConfig"] = snippet.into();
    created(&v)
}

fn revoke(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let id = ctx.param("id").to_string();
    let target = ingest_tokens::visible_target(&api.store, ctx.principal()?, &id)?;
    ctx.require_act(Permission::IntegrationManage, &target)?;
    ctx.audit_target = Some(format!("ingest token {id}"));
    ingest_tokens::revoke(&api.store, &id, ctx.now)?;
    no_content()
}
