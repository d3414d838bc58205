//! `GET /api/v1/events`: live updates for the console as Server-Sent
//! Events (`runtime.status`, `runtime.registered`, `runtime.removed`,
//! `command`, and a first `hello`).
//!
//! A subscriber sees events about the runtimes of integrations it may view
//! (`integration:view`), decided per event with the principal as it was
//! when the stream opened. The router ends a user's streams when they log
//! out or change their password, and everyone's when users, roles, groups
//! or role assignments change; the console reconnects, and so is
//! authenticated and authorized afresh. Works with the session cookie, since a browser's
//! `EventSource` cannot send an `Authorization` header (and a GET needs no
//! CSRF token).

use super::{Access, Api, Body, Ctx, Input, Route};
use crate::access::Permission;
use crate::error::Result;
use crate::http::Response;

pub const ROUTES: &[Route] = &[Route {
    method: "GET",
    path: "/api/v1/events",
    access: Access::User,
    summary: "Server-Sent Events (text/event-stream): runtime.status, runtime.registered, runtime.removed and command events for the integrations you may view",
    query: &[],
    body: Input::None,
    ok: &[(200, Body::Events("Server-Sent Events"))],
    errors: &[],
    handler: events,
}];

fn events(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let principal = ctx.principal()?.clone();
    let user = principal.user_id;
    let rx = api.events.subscribe_as(
        Some(user),
        move |scope| principal.has(Permission::IntegrationView, &scope.target()),
        ctx.now,
    );
    Ok(Response::event_stream(rx))
}
