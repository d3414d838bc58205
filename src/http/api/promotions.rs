//! Promotions: `/api/v1/projects/{project}/integrations/{integration}/promotions`
//! (request, list) and `/api/v1/promotions` (the approvals inbox, one
//! promotion with what it changes in the target, approve, reject, cancel)
//! and `/api/v1/promotions/awaiting-me` (how many wait for the caller).
//!
//! The rules (who may request, approve, reject or cancel) are in
//! `promotion.rs`, decided by the caller's `Principal`; the handlers decode,
//! call one domain function and encode. The audit entry names the promotion
//! (`promotion <id> ...`), never a value.

use schemars::JsonSchema;
use serde::Serialize;

use super::{created, ok, page, schema, Access, Api, Body, Ctx, Input, Page, Route};
use crate::access::Permission;
use crate::catalog;
use crate::error::{Error, Result};
use crate::http::Response;
use crate::promotion::{self, Decision, NewPromotion, Promotion, Status};

const INTEGRATION_PROMOTIONS: &str =
    "/api/v1/projects/{project}/integrations/{integration}/promotions";

pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: INTEGRATION_PROMOTIONS,
        access: Access::User,
        summary: "Promotions of an integration, newest first (integration:view)",
        query: &["status", "limit", "cursor"],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Page<Promotion>>))],
        errors: &[],
        handler: list_for_integration,
    },
    Route {
        method: "POST",
        path: INTEGRATION_PROMOTIONS,
        access: Access::User,
        summary: "Request a promotion to the next environment of the pipeline: {from, to, overrides: [{section, key, value, type?, secret?}], comment?}; applied at once when `to` requires no approval, else pending (integration:manage plus the environment permission of `to`). Runtimes take it when they restart",
        query: &[],
        body: Input::Json(schema::<NewPromotion>),
        ok: &[(201, Body::Json(schema::<Promotion>))],
        errors: &[409, 422],
        handler: request,
    },
    Route {
        method: "GET",
        path: "/api/v1/promotions",
        access: Access::User,
        summary: "Promotions the caller may view, newest first; ?status=pending is the approvals inbox",
        query: &["status", "limit", "cursor"],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Page<Promotion>>))],
        errors: &[],
        handler: list_all,
    },
    Route {
        method: "GET",
        path: "/api/v1/promotions/awaiting-me",
        access: Access::User,
        summary: "How many pending promotions wait for the caller's decision (they may approve or reject, did not request, have not approved): {count}",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<AwaitingMe>))],
        errors: &[],
        handler: awaiting_me,
    },
    Route {
        method: "GET",
        path: "/api/v1/promotions/{id}",
        access: Access::User,
        summary: "One promotion (secret override values only as set), with `changes`: what it changes in the target (deployment from/to; every configuration key added, removed, changed or unchanged, secret values never shown)",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Promotion>))],
        errors: &[],
        handler: get,
    },
    Route {
        method: "POST",
        path: "/api/v1/promotions/{id}/approve",
        access: Access::User,
        summary: "Approve a pending promotion {comment?} (not its requester; environment:manage on a critical target, or manage-non-production); applies it when approvals suffice, 409 and status failed if the source or target changed since the request",
        query: &[],
        body: Input::Optional(schema::<Decision>),
        ok: &[(200, Body::Json(schema::<Promotion>))],
        errors: &[409, 422],
        handler: approve,
    },
    Route {
        method: "POST",
        path: "/api/v1/promotions/{id}/reject",
        access: Access::User,
        summary: "Reject a pending promotion {comment} (comment required; an approver other than the requester)",
        query: &[],
        body: Input::Optional(schema::<Decision>),
        ok: &[(200, Body::Json(schema::<Promotion>))],
        errors: &[409, 422],
        handler: reject,
    },
    Route {
        method: "POST",
        path: "/api/v1/promotions/{id}/cancel",
        access: Access::User,
        summary: "Cancel a pending promotion (its requester only)",
        query: &[],
        body: Input::Optional(schema::<Decision>),
        ok: &[(200, Body::Json(schema::<Promotion>))],
        errors: &[409, 422],
        handler: cancel,
    },
];

fn status(ctx: &Ctx) -> Result<Option<Status>> {
    ctx.query("status")
        .filter(|s| !s.is_empty())
        .map(|s| Status::parse(&s))
        .transpose()
}

/// The `{id}` of the path; 404 for anything but a number.
fn id(ctx: &Ctx) -> Result<i64> {
    let text = ctx.param("id");
    text.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        Error::NotFound(format!(
            "no promotion '{}'",
            text.chars().take(40).collect::<String>()
        ))
    })
}

/// The body of approve, reject and cancel: optional.
fn decision(ctx: &Ctx) -> Result<Decision> {
    if ctx.req.body.is_empty() {
        Ok(Decision::default())
    } else {
        ctx.body()
    }
}

fn list_for_integration(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let i = catalog::visible_integration(
        &api.store,
        ctx.principal()?,
        &catalog::normalize_handle(ctx.param("project")),
        &catalog::normalize_handle(ctx.param("integration")),
    )?;
    let l = promotion::list(
        &api.store,
        ctx.principal()?,
        Some(i.id),
        status(ctx)?,
        &ctx.keyset()?,
    )?;
    page(l)
}

fn request(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let p = promotion::request(
        &api.store,
        &api.master_key,
        ctx.principal()?,
        ctx.param("project"),
        ctx.param("integration"),
        &ctx.body()?,
        ctx.now,
    )?;
    ctx.audit_target = Some(promotion::audit_target(&p));
    created(&p)
}

fn list_all(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    if !ctx.principal()?.has_anywhere(Permission::IntegrationView) {
        return Err(Error::Forbidden(
            "this needs the integration:view permission".into(),
        ));
    }
    let l = promotion::list(
        &api.store,
        ctx.principal()?,
        None,
        status(ctx)?,
        &ctx.keyset()?,
    )?;
    page(l)
}

fn awaiting_me(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let count = promotion::awaiting(&api.store, ctx.principal()?)?;
    ok(&AwaitingMe { count })
}

/// How many promotions wait for the caller's decision.
#[derive(Serialize, JsonSchema)]
struct AwaitingMe {
    count: i64,
}

fn get(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    ok(&promotion::get(
        &api.store,
        &api.master_key,
        ctx.principal()?,
        id(ctx)?,
    )?)
}

fn approve(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let id = id(ctx)?;
    ctx.audit_target = Some(format!("promotion {id} approve"));
    let p = promotion::approve(
        &api.store,
        &api.master_key,
        ctx.principal()?,
        id,
        &decision(ctx)?,
        ctx.now,
    )?;
    ctx.audit_target = Some(promotion::audit_target(&p));
    ok(&p)
}

fn reject(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let id = id(ctx)?;
    ctx.audit_target = Some(format!("promotion {id} reject"));
    let p = promotion::reject(
        &api.store,
        &api.master_key,
        ctx.principal()?,
        id,
        &decision(ctx)?,
        ctx.now,
    )?;
    ctx.audit_target = Some(promotion::audit_target(&p));
    ok(&p)
}

fn cancel(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let id = id(ctx)?;
    ctx.audit_target = Some(format!("promotion {id} cancel"));
    decision(ctx)?;
    let p = promotion::cancel(&api.store, &api.master_key, ctx.principal()?, id, ctx.now)?;
    ctx.audit_target = Some(promotion::audit_target(&p));
    ok(&p)
}
