//! `/api/v1/observability/ingest-tokens`: credentials for log and metric
//! shippers (see `ingest_tokens`). Creating and revoking one needs what
//! creating a runtime secret needs: `integration:manage` on its scope and
//! the environment permission its criticality demands.

use schemars::JsonSchema;
use serde::Serialize;

use super::{created, no_content, ok, schema, Access, Api, Body, Ctx, Input, Page, Route};
use crate::access::Permission;
use crate::error::Result;
use crate::http::Response;
use crate::ingest_tokens::{self, NewIngestToken};

pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/api/v1/observability/ingest-tokens",
        access: Access::User,
        summary: "List the ingest tokens you may view (never the tokens themselves)",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Page<ingest_tokens::IngestToken>>))],
        errors: &[],
        handler: list,
    },
    Route {
        method: "POST",
        path: "/api/v1/observability/ingest-tokens",
        access: Access::User,
        summary: "Create an ingest token for log and metric shippers; the token and a Fluent Bit [OUTPUT] section are returned once (integration:manage)",
        query: &[],
        body: Input::Json(schema::<NewIngestToken>),
        ok: &[(201, Body::Json(schema::<CreatedIngestToken>))],
        errors: &[404, 409, 422],
        handler: create,
    },
    Route {
        method: "DELETE",
        path: "/api/v1/observability/ingest-tokens/{id}",
        access: Access::User,
        summary: "Revoke an ingest token; shippers using it are refused from their next request (integration:manage)",
        query: &[],
        body: Input::None,
        ok: &[(204, Body::Empty)],
        errors: &[409],
        handler: revoke,
    },
];

fn list(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let items = ingest_tokens::visible(&api.store, ctx.principal()?)?;
    ok(&Page::all(items))
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
    created(&CreatedIngestToken {
        made,
        token,
        fluent_bit_config: snippet,
    })
}

/// A new ingest token, with the token and a Fluent Bit `[OUTPUT]` section
/// (shown this once).
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct CreatedIngestToken {
    #[serde(flatten)]
    made: ingest_tokens::IngestToken,
    token: String,
    fluent_bit_config: String,
}

fn revoke(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let id = ctx.param("id").to_string();
    let target = ingest_tokens::visible_target(&api.store, ctx.principal()?, &id)?;
    ctx.require_act(Permission::IntegrationManage, &target)?;
    ctx.audit_target = Some(format!("ingest token {id}"));
    ingest_tokens::revoke(&api.store, &id, ctx.now)?;
    no_content()
}
