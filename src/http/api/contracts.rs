//! Service contracts: a runtime's OpenAPI definitions, and Try-It (a
//! request sent to a running runtime through icpd, on the Try-It pool; see
//! `crate::contracts`).

use serde::Serialize;
use serde_json::value::RawValue;

use super::{
    ok, refusal_reason, schema, write_deferred_audit, Access, Api, Body, Ctx, Input, Route,
};
use crate::access::{Permission, Target};
use crate::contracts::{self, Reach, StoredDefinition, TryItAnswer, TryItRequest, AUTH_HEADER};
use crate::error::{Error, Result};
use crate::http::message::find_header;
use crate::http::routes::error_response;
use crate::http::Response;
use crate::runtimes;
use crate::time::{now_millis, rfc3339};

pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/api/v1/runtimes/{runtimeId}/openapi",
        access: Access::User,
        summary: "The OpenAPI definitions a runtime reported, and whether and where it can be tried",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Definitions>))],
        errors: &[],
        handler: definitions,
    },
    Route {
        method: "POST",
        path: "/api/v1/runtimes/{runtimeId}/try-it",
        access: Access::User,
        summary: "Sends one request to a running runtime (Try-It); credentials for the runtime go in X-Try-It-Authorization",
        query: &[],
        body: Input::Json(schema::<TryItRequest>),
        // 409: a critical environment without "confirm", or the runtime
        // cannot be tried; 503: the runtime cannot be reached, or the
        // Try-It pool is full.
        ok: &[(200, Body::Json(schema::<TryItAnswer>))],
        errors: &[409],
        handler: try_it,
    },
];

/// One definition file.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct DefinitionItem {
    file_name: String,
    service: Option<String>,
    base_path: Option<String>,
    size_bytes: i64,
    received_at: String,
    /// The OpenAPI document as the runtime sent it (members in its
    /// order); absent when icpd did not keep it.
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    definition: Option<Box<RawValue>>,
    /// Why it was not kept.
    problem: Option<String>,
}

impl DefinitionItem {
    fn of(d: StoredDefinition) -> DefinitionItem {
        let n = d.new;
        DefinitionItem {
            definition: n.definition.and_then(|t| RawValue::from_string(t).ok()),
            file_name: n.file_name,
            service: n.service,
            base_path: n.base_path,
            size_bytes: n.size_bytes,
            received_at: rfc3339(d.received_at),
            problem: n.problem,
        }
    }
}

/// Whether the caller can try the runtime, and where.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct TryItInfo {
    targets: Vec<String>,
    available: bool,
    reason: Option<String>,
    /// The runtime's environment is critical: a call needs `"confirm": true`.
    critical: bool,
    /// The caller holds what a call needs here.
    allowed: bool,
}

/// A runtime's OpenAPI definitions, and whether it can be tried.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Definitions {
    items: Vec<DefinitionItem>,
    try_it: TryItInfo,
}

/// The runtime (visible to the caller) and where it can be tried.
fn runtime_reach(api: &Api, ctx: &Ctx) -> Result<(Target, Reach)> {
    let id = ctx.param("runtimeId");
    let target = runtimes::visible_target(&api.store, ctx.principal()?, id)?;
    let detail = runtimes::show(&api.store, id)?;
    let status = api.liveness.status(id).unwrap_or(detail.runtime.status);
    Ok((target, contracts::reach(&detail, status)))
}

fn definitions(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (target, reach) = runtime_reach(api, ctx)?;
    let id = ctx.param("runtimeId");
    let items = contracts::definitions(&api.store, id)?;
    ok(&Definitions {
        items: items.into_iter().map(DefinitionItem::of).collect(),
        try_it: TryItInfo {
            targets: reach.targets.iter().map(|t| t.url()).collect(),
            available: reach.unavailable.is_none() && api.try_it.disabled().is_none(),
            reason: api
                .try_it
                .disabled()
                .map(str::to_string)
                .or(reach.unavailable),
            critical: target.critical,
            allowed: ctx
                .principal()?
                .may_act(Permission::IntegrationEdit, &target),
        },
    })
}

fn try_it(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let (target, reach) = runtime_reach(api, ctx)?;
    ctx.require_act(Permission::IntegrationEdit, &target)?;
    let body: TryItRequest = ctx.body()?;
    if target.critical && !body.confirm {
        return Err(Error::Conflict(
            "this runtime is in a critical environment: confirm the call by sending \"confirm\": true"
                .into(),
        ));
    }
    let authorization = find_header(&ctx.req.headers, AUTH_HEADER);
    let planned = api.try_it.plan(&body, &reach, authorization)?;
    let audit_target = format!(
        "runtime {} {} {}",
        ctx.param("runtimeId"),
        body.method.to_ascii_uppercase(),
        planned.url
    );
    let actor = ctx.who()?.principal.username.clone();
    let client = ctx.req.peer.ip().to_string();
    let (store, try_it) = (api.store.clone(), api.try_it.clone());
    let (resp, reply) = Response::deferred();
    api.try_it.submit(Box::new(move || {
        let (resp, audit_target) = match try_it.call(&planned) {
            Ok(answer) => {
                let t = format!("{audit_target}: answered {}", answer.status);
                (Response::json(200, &answer), t)
            }
            Err(e) => (error_response(&e), audit_target),
        };
        crate::metrics::try_it_call(resp.status);
        write_deferred_audit(
            &store,
            now_millis(),
            &actor,
            "POST /api/v1/runtimes/{runtimeId}/try-it",
            &audit_target,
            &client,
            resp.status,
            &refusal_reason(&resp),
        );
        reply.send(resp.with_header("Cache-Control", "no-store"));
    }))?;
    Ok(resp)
}
