//! The management REST API (`/api/v1`, JSON, camelCase) on the management
//! listener.
//!
//! Every route is a [`Route`] in one table (the modules below each
//! contribute a slice), so routing, authentication, the OpenAPI document and
//! the "every route refuses an anonymous request" test all read the same
//! list. A request goes through [`dispatch`] linearly: match the route,
//! authenticate (bearer token or session cookie), check CSRF for
//! cookie-authenticated unsafe methods, refuse everything but the password
//! change while one is pending, run the handler, and write an audit entry
//! for every unsafe method. Handlers decode, authorize, call one domain
//! function and encode.

pub mod access;
pub mod auth;
pub mod commands;
pub mod contracts;
pub mod events;
pub mod graphql;
pub mod ingest_tokens;
pub mod mi;
pub mod observability;
pub mod openapi;
pub mod pipeline;
pub mod promotions;
pub mod refusals;
pub mod resources;

use std::sync::Arc;
use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::access::{Permission, Principal, Target};
use crate::auth::{Authenticated, Via, SESSION_COOKIE};
use crate::catalog::{self, Keyset, Listing};
use crate::error::{Error, Result};
use crate::http::message::percent_decode;
use crate::http::routes::{error_response, is_runtime_protocol, method_not_allowed, not_found};
use crate::http::{Request, Response};
use crate::liveness::Liveness;
use crate::master_key::MasterKey;
use crate::metrics;
use crate::store::{NewAuditEntry, Store};
use crate::time::{now_millis, Millis};

/// The listener name in request metrics.
pub(crate) const MANAGEMENT: &str = "management";

/// Everything the management handlers need.
pub struct Api {
    /// MI management: dispatcher kicks, reads, operations.
    pub mi: Arc<crate::mi::control::MiControl>,
    pub store: Arc<Store>,
    pub master_key: Arc<MasterKey>,
    pub liveness: Arc<Liveness>,
    pub commands: Arc<crate::commands::Commands>,
    pub events: Arc<crate::events::Events>,
    /// Logs, request records and metrics (`telemetry.db`, or PostgreSQL).
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// Whether the listener serves TLS (session cookies get `Secure`).
    pub secure: bool,
    /// URL runtimes reach the runtime listener at, for Config.toml snippets.
    pub runtime_url: String,
    /// The TLS certificate path runtimes may verify against, if TLS is on.
    pub cert_path: Option<String>,
    /// Who may read `GET /metrics`.
    pub metrics: crate::config::MetricsConfig,
    /// Runtimes and shippers refused lately (shared with the runtime listener).
    pub refusals: Arc<crate::refusals::Refusals>,
    /// ICP 2's GraphQL API (`/graphql`).
    pub gql: Arc<crate::graphql::Gql>,
    /// Several nodes on PostgreSQL: this node's part (`None` on SQLite).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Single sign-on (OIDC, LDAP) and its outbound pool.
    pub sso: Arc<crate::sso::Sso>,
    /// Try-It and its outbound pool.
    pub try_it: Arc<crate::contracts::TryIt>,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (login, health, the OpenAPI document).
    Public,
    /// A signed-in user whose password change, if pending, is done.
    User,
    /// A signed-in user, even one who still has to change the password.
    AnyUser,
}

/// A handler: gets the API and the request context, returns a response.
pub type HandlerFn = fn(&Api, &mut Ctx) -> Result<Response>;

/// Makes the JSON Schema of a type with a generator: [`schema::<T>`] for
/// the type a handler decodes or encodes, so the OpenAPI document is
/// derived from the same types and cannot drift from them.
pub type SchemaFn = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

/// The schema of `T` (a `$ref` into `components/schemas` for a named type).
pub fn schema<T: schemars::JsonSchema + ?Sized>(
    g: &mut schemars::SchemaGenerator,
) -> schemars::Schema {
    g.subschema_for::<T>()
}

/// The JSON body a route reads.
#[derive(Clone, Copy)]
pub enum Input {
    /// None: the route reads no body.
    None,
    /// A body of this schema, required.
    Json(SchemaFn),
    /// A body of this schema, which may be left out.
    Optional(SchemaFn),
}

/// What a successful answer of a route carries.
#[derive(Clone, Copy)]
pub enum Body {
    /// Nothing (204).
    Empty,
    /// JSON of this schema.
    Json(SchemaFn),
    /// Another media type (text, an attachment), with what it holds.
    Media(&'static [&'static str], &'static str),
    /// Server-Sent Events (`text/event-stream`), with what they are.
    Events(&'static str),
}

/// One Server-Sent Event as a client reads it; `data` is JSON text.
#[derive(Serialize, schemars::JsonSchema)]
#[allow(dead_code)]
pub struct ServerSentEvent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    pub data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<u64>,
}

/// One route of the management API.
pub struct Route {
    pub method: &'static str,
    /// Path with `{name}` segments, e.g. `/api/v1/projects/{project}`.
    pub path: &'static str,
    pub access: Access,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// Query parameters the route understands; their types and meanings
    /// are in [`openapi::query_parameter`].
    pub query: &'static [&'static str],
    /// The JSON body the handler decodes (`ctx.body::<T>()`).
    pub body: Input,
    /// Each successful status and what it carries.
    pub ok: &'static [(u16, Body)],
    /// The error statuses the handler and the domain can answer besides
    /// those every route of its kind can (see [`openapi::error_statuses`]).
    pub errors: &'static [u16],
    pub handler: HandlerFn,
}

/// Every route, in matching order.
pub fn routes() -> impl Iterator<Item = &'static Route> {
    auth::ROUTES
        .iter()
        .chain(access::ROUTES)
        .chain(resources::ROUTES)
        .chain(commands::ROUTES)
        .chain(contracts::ROUTES)
        .chain(mi::ROUTES)
        .chain(pipeline::ROUTES)
        .chain(promotions::ROUTES)
        .chain(events::ROUTES)
        .chain(ingest_tokens::ROUTES)
        .chain(observability::ROUTES)
        .chain(refusals::ROUTES)
        .chain(openapi::ROUTES)
}

/// The request as a handler sees it.
pub struct Ctx<'r> {
    pub req: &'r Request,
    pub now: Millis,
    params: Vec<(String, String)>,
    who: Option<Authenticated>,
    /// Set by handlers to make the audit entry precise (e.g. the user name of a login attempt).
    pub audit_actor: Option<String>,
    pub audit_target: Option<String>,
    /// Cookies to set on the response (the router adds them).
    pub set_cookies: Vec<String>,
}

impl<'r> Ctx<'r> {
    /// A path parameter, `{name}` in the route's path.
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// The authenticated caller (routes with `Access::Public` have none).
    pub fn who(&self) -> Result<&Authenticated> {
        self.who
            .as_ref()
            .ok_or_else(|| Error::Unauthorized("sign in first".into()))
    }

    /// The caller's permissions.
    pub fn principal(&self) -> Result<&Principal> {
        Ok(&self.who()?.principal)
    }

    /// 403 unless the caller holds `perm` on `target`.
    pub fn require(&self, perm: Permission, target: &Target) -> Result<()> {
        if self.principal()?.has(perm, target) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "this needs the {} permission here",
                perm.as_str()
            )))
        }
    }

    /// 403 unless the caller may act (`perm` plus the environment permission its criticality needs).
    pub fn require_act(&self, perm: Permission, target: &Target) -> Result<()> {
        if self.principal()?.may_act(perm, target) {
            return Ok(());
        }
        let env_perm = if target.critical {
            "environment:manage"
        } else {
            "environment:manage or environment:manage-non-production"
        };
        Err(Error::Forbidden(format!(
            "this needs {} and {env_perm} here",
            perm.as_str()
        )))
    }

    /// The JSON body as `T`; 400 with serde's explanation otherwise.
    pub fn body<T: DeserializeOwned>(&self) -> Result<T> {
        decode_body(&self.req.body)
    }

    /// A query parameter, percent-decoded; the first if repeated.
    pub fn query(&self, name: &str) -> Option<String> {
        self.req
            .query
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find_map(|(k, v)| {
                (percent_decode(k).as_deref() == Some(name))
                    .then(|| percent_decode(v))
                    .flatten()
            })
    }

    /// A query parameter that is not blank (a filter left empty is no filter).
    pub fn query_filled(&self, name: &str) -> Option<String> {
        self.query(name).filter(|v| !v.trim().is_empty())
    }

    /// `limit` from the query: 1 to `max`, `default` when not given.
    pub fn limit(&self, default: i64, max: i64) -> Result<i64> {
        match self.query_filled("limit") {
            None => Ok(default),
            Some(l) => l
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|l| (1..=max).contains(l))
                .ok_or_else(|| {
                    Error::BadRequest(format!("limit must be a number from 1 to {max}"))
                }),
        }
    }

    /// `limit` (1..=500, default 50) and `cursor` from the query.
    pub fn page(&self) -> Result<PageRequest> {
        let limit = match self.query("limit") {
            None => 50,
            Some(l) => l
                .parse::<i64>()
                .ok()
                .filter(|l| (1..=500).contains(l))
                .ok_or_else(|| Error::BadRequest("limit must be a number from 1 to 500".into()))?,
        };
        Ok(PageRequest {
            limit,
            cursor: self.query("cursor").filter(|c| !c.is_empty()),
        })
    }
}

impl Ctx<'_> {
    /// `limit` and the decoded `cursor`, for a listing paged by key.
    pub fn keyset(&self) -> Result<Keyset> {
        let p = self.page()?;
        let after = p
            .cursor
            .map(|c| {
                URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(catalog::bad_cursor)
            })
            .transpose()?;
        Ok(Keyset {
            after,
            limit: p.limit,
        })
    }
}

/// Keyset pagination as requested.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: i64,
    /// Opaque: the value the previous page returned as `nextCursor`.
    pub cursor: Option<String>,
}

/// One page of a list: `{"items": [...], "total": N, "nextCursor": "..."|null}`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "{T}Page")]
pub struct Page<T: Serialize> {
    pub items: Vec<T>,
    pub total: i64,
    pub next_cursor: Option<String>,
}

/// A list that is never paged: `{"items": [...]}`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(rename = "{T}Items")]
pub struct Items<T: Serialize> {
    pub items: Vec<T>,
}

impl<T: Serialize> Page<T> {
    /// Every item on one page (a list that is not paged).
    pub fn all(items: Vec<T>) -> Page<T> {
        Page {
            total: items.len() as i64,
            items,
            next_cursor: None,
        }
    }
}

/// 200 with a JSON body.
pub fn ok<T: Serialize>(value: &T) -> Result<Response> {
    Ok(Response::json(200, value))
}

/// 200 with a [`Page`] whose cursor encodes the listing's next key.
pub fn page<T: Serialize>(l: Listing<T>) -> Result<Response> {
    ok(&Page {
        items: l.items,
        total: l.total,
        next_cursor: l.next.map(|k| URL_SAFE_NO_PAD.encode(k)),
    })
}

/// 201 with a JSON body.
pub fn created<T: Serialize>(value: &T) -> Result<Response> {
    Ok(Response::json(201, value))
}

/// 204.
pub fn no_content() -> Result<Response> {
    Ok(Response {
        status: 204,
        headers: Vec::new(),
        body: Vec::new(),
        stream: None,
    })
}

/// Matches a route path against a request path; returns the parameters.
fn match_path(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') => {
                let value = percent_decode(g)?;
                if value.is_empty() {
                    return None;
                }
                params.push((w[1..w.len() - 1].to_string(), value));
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

pub(crate) fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

pub(crate) fn is_unsafe(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// The CSRF rule for cookie sessions: an `Origin`, if sent, must be this
/// server, and `X-CSRF-Token` must carry the session's token.
fn check_csrf(req: &Request, csrf: &str) -> Result<()> {
    if let Some(origin) = req.header("origin") {
        let host = req.header("host").unwrap_or("");
        let scheme = if req.secure { "https" } else { "http" };
        if origin != format!("{scheme}://{host}") {
            return Err(Error::Forbidden(
                "cross-origin request refused (Origin does not match this server)".into(),
            ));
        }
    }
    let sent = req.header("x-csrf-token").unwrap_or("");
    if !crate::auth::constant_time_eq(sent.as_bytes(), csrf.as_bytes()) {
        return Err(Error::Forbidden(
            "missing or wrong X-CSRF-Token header: send the csrfToken from the login response with cookie-authenticated changes".into(),
        ));
    }
    Ok(())
}

pub(crate) fn authenticate(api: &Api, req: &Request, now: Millis) -> Result<Authenticated> {
    if let Some(h) = req.header("authorization") {
        let token = h
            .trim()
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::Unauthorized(
                    "malformed Authorization header: expected 'Bearer <token>'".into(),
                )
            })?;
        return crate::auth::authenticate(&api.store, token, now);
    }
    let token = cookie(req, SESSION_COOKIE).ok_or_else(|| {
        Error::Unauthorized("sign in first: POST /api/v1/auth/login, then send the token as 'Authorization: Bearer <token>'".into())
    })?;
    let who = crate::auth::authenticate(&api.store, token, now)?;
    if is_unsafe(&req.method) {
        if let Via::Session { csrf, .. } = &who.via {
            check_csrf(req, csrf)?;
        }
    }
    Ok(who)
}

/// Routes a management request, and times it under its route's path pattern.
pub fn dispatch(api: &Api, req: &Request) -> Response {
    let started = Instant::now();
    let now = now_millis();
    let mut allowed = Vec::new();
    let mut found = None;
    for route in routes() {
        if let Some(params) = match_path(route.path, &req.path) {
            if route.method == req.method || (route.method == "GET" && req.method == "HEAD") {
                found = Some((route, params));
                break;
            }
            allowed.push(route.method);
        }
    }
    let Some((route, params)) = found else {
        let resp = if allowed.is_empty() {
            not_found(req)
        } else {
            method_not_allowed(&allowed.join(", "))
        };
        metrics::observe_request(MANAGEMENT, &req.method, "other", started.elapsed());
        return resp.with_header("Cache-Control", "no-store");
    };
    let mut ctx = Ctx {
        req,
        now,
        params,
        who: None,
        audit_actor: None,
        audit_target: None,
        set_cookies: Vec::new(),
    };
    let result = run(api, route, &mut ctx);
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    for c in std::mem::take(&mut ctx.set_cookies) {
        resp = resp.with_header("Set-Cookie", &c);
    }
    if is_unsafe(&req.method) && resp.status < 400 {
        end_stale_streams(api, route, &ctx);
    }
    // A deferred answer is audited by the job that gives it.
    if is_unsafe(&req.method) && !resp.is_deferred() {
        let actor = ctx
            .audit_actor
            .clone()
            .or_else(|| ctx.who.as_ref().map(|w| w.principal.username.clone()))
            .unwrap_or_else(|| "anonymous".into());
        let action = format!("{} {}", route.method, route.path);
        let target = ctx.audit_target.clone().unwrap_or_else(|| req.path.clone());
        let (outcome, reason) = if resp.status < 400 {
            ("ok".to_string(), String::new())
        } else {
            (format!("refused {}", resp.status), refusal_reason(&resp))
        };
        write_entry(api, req, now, &actor, &action, &target, &outcome, &reason);
    }
    metrics::observe_request(MANAGEMENT, &req.method, route.path, started.elapsed());
    resp.with_header("Cache-Control", "no-store")
}

#[allow(clippy::too_many_arguments)]
fn write_entry(
    api: &Api,
    req: &Request,
    now: Millis,
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    reason: &str,
) {
    let client = req.peer.ip().to_string();
    insert_entry(
        &api.store, now, actor, action, target, outcome, &client, reason,
    );
}

#[allow(clippy::too_many_arguments)]
fn insert_entry(
    store: &Store,
    now: Millis,
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    client: &str,
    reason: &str,
) {
    let entry = NewAuditEntry {
        at: now,
        actor,
        action,
        target,
        outcome,
        client,
        reason,
    };
    if let Err(e) = store.write(|tx| tx.insert_audit(&entry)) {
        log::error!("cannot write the audit entry for {action}: {e}");
    }
}

/// The audit entry of a request answered later (a sign-in through a
/// directory, on the sign-in pool): like [`write_audit`], from what the
/// job kept of the request.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_deferred_audit(
    store: &Store,
    now: Millis,
    actor: &str,
    action: &str,
    target: &str,
    client: &str,
    status: u16,
    reason: &str,
) {
    let (outcome, reason) = if status < 400 {
        ("ok".to_string(), String::new())
    } else {
        (
            format!("refused {status}"),
            without_decoded_literal(reason)
                .chars()
                .take(MAX_REASON_CHARS)
                .collect(),
        )
    };
    insert_entry(store, now, actor, action, target, &outcome, client, &reason);
}

/// An audit entry for a request outside the route table (`/graphql`,
/// `/auth/*`): `status` below 400 is "ok", else "refused STATUS" with `reason`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_audit(
    api: &Api,
    req: &Request,
    now: Millis,
    actor: &str,
    action: &str,
    target: &str,
    status: u16,
    reason: &str,
) {
    let client = req.peer.ip().to_string();
    write_deferred_audit(
        &api.store, now, actor, action, target, &client, status, reason,
    );
}

/// The longest reason an audit entry keeps, in characters.
const MAX_REASON_CHARS: usize = 300;

/// Why a request was refused, for its audit entry: the message of the
/// `{"error":{...}}` its client got (a 500's names only an id). A JSON
/// decoder's complaint quotes the offending value ("invalid type: string
/// \"...\", expected a boolean"), which may be a mistyped password or
/// secret: that literal is left out.
pub(crate) fn refusal_reason(resp: &Response) -> String {
    let message = serde_json::from_slice::<Value>(&resp.body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_default();
    without_decoded_literal(&message)
        .chars()
        .take(MAX_REASON_CHARS)
        .collect()
}

/// `message` without the value a serde error quotes after "invalid type: "
/// or "invalid value: " (its kind, e.g. "string", stays).
fn without_decoded_literal(message: &str) -> String {
    for marker in ["invalid type: ", "invalid value: "] {
        let Some(at) = message.find(marker) else {
            continue;
        };
        let start = at + marker.len();
        // The last one: the literal itself may contain the words.
        let Some(end) = message[start..].rfind(", expected").map(|e| start + e) else {
            continue;
        };
        let kind = message[start..end].split_whitespace().next().unwrap_or("");
        return format!("{}{kind}{}", &message[..start], &message[end..]);
    }
    message.to_string()
}

/// Live event streams filter with the permissions they were opened with:
/// end the ones a successful change may have invalidated.
fn end_stale_streams(api: &Api, route: &Route, ctx: &Ctx) {
    let caller = ctx.who.as_ref().map(|w| w.principal.user_id);
    let ended = match route.path {
        "/api/v1/auth/logout" | "/api/v1/auth/change-password" => {
            api.events.end_streams(caller) + api.telemetry.tail.end_streams(caller)
        }
        p if [
            "/api/v1/users",
            "/api/v1/roles",
            "/api/v1/groups",
            "/api/v1/role-assignments",
        ]
        .iter()
        .any(|prefix| p.starts_with(prefix)) =>
        {
            api.events.end_streams(None) + api.telemetry.tail.end_streams(None)
        }
        _ => 0,
    };
    if ended > 0 {
        log::debug!(
            "ended {ended} event stream(s) after {} {}",
            route.method,
            route.path
        );
    }
}

fn run(api: &Api, route: &Route, ctx: &mut Ctx) -> Result<Response> {
    if route.access != Access::Public {
        let who = authenticate(api, ctx.req, ctx.now)?;
        if route.access == Access::User && who.principal.must_change_password {
            return Err(Error::Forbidden(
                "change your password first: POST /api/v1/auth/change-password".into(),
            ));
        }
        ctx.who = Some(who);
    }
    (route.handler)(api, ctx)
}

/// `/healthz`: always 200 while icpd answers (a probe must not restart it
/// for what is outside it), `"status": "degraded"` during self-preservation
/// or while the database cannot be reached. With several nodes it names
/// this node and the one that runs the OFFLINE sweep. Reads only memory:
/// it answers at once even while the database is down.
fn health(api: &Api) -> serde_json::Value {
    let cluster = api.cluster.as_ref().map(|c| c.status());
    let reachable = cluster.as_ref().is_none_or(|c| c.database_reachable);
    let mut body = match api.liveness.preservation() {
        None => serde_json::json!({"status": "ok", "selfPreservation": {"active": false}}),
        Some(p) => serde_json::json!({
            "status": "degraded",
            "reason": format!(
                "self-preservation: {} of {} RUNNING runtimes missed the heartbeat timeout at once; they are kept RUNNING until heartbeats return",
                p.held, p.running
            ),
            "selfPreservation": {
                "active": true,
                "since": crate::time::rfc3339(p.since),
                "held": p.held,
                "running": p.running,
            },
        }),
    };
    body["database"] = serde_json::json!({
        "backend": if api.store.is_shared() { "postgres" } else { "sqlite" },
        "reachable": reachable,
    });
    if !reachable {
        body["status"] = "degraded".into();
        if body.get("reason").is_none() {
            body["reason"] = "the database cannot be reached: delta heartbeats are answered from memory, writes are refused with 503".into();
        }
    }
    if let Some(c) = cluster {
        body["cluster"] = serde_json::json!({
            "node": c.node,
            "leader": c.leader,
            "leading": c.leading,
            "changesApplied": c.changes_applied,
        });
    }
    body
}

/// `GET /metrics`: the Prometheus text exposition. With
/// `[metrics] require_auth`, only for a user with `observability:view` at
/// organization scope (the metrics cover the whole fleet).
fn serve_metrics(api: &Api, req: &Request) -> Result<Response> {
    if api.metrics.require_auth {
        let who = authenticate(api, req, now_millis())?;
        if who.principal.must_change_password {
            return Err(Error::Forbidden(
                "change your password first: POST /api/v1/auth/change-password".into(),
            ));
        }
        if !who
            .principal
            .has(Permission::ObservabilityView, &Target::organization())
        {
            return Err(Error::Forbidden(
                "metrics need the observability:view permission at organization scope".into(),
            ));
        }
    }
    // File sizes, for the databases that are files (SQLite).
    let databases: Vec<(&str, &std::path::Path)> = [
        ("icp", api.store.path()),
        ("telemetry", api.telemetry.store.path()),
    ]
    .into_iter()
    .filter_map(|(name, path)| Some((name, path?)))
    .collect();
    let body = metrics::render(&metrics::Sources {
        liveness: &api.liveness,
        databases: &databases,
        outbound: Some(api.mi.pool_stats()),
        sign_in: Some(api.sso.pool_stats()),
        try_it: Some(api.try_it.pool_stats()),
        cluster: api.cluster.as_ref().map(|c| c.status()),
    });
    Ok(Response {
        status: 200,
        headers: vec![
            ("Content-Type".into(), metrics::CONTENT_TYPE.into()),
            ("Cache-Control".into(), "no-store".into()),
        ],
        body: body.into_bytes(),
        stream: None,
    })
}

/// A runtime protocol request (a heartbeat, a log batch) sent to the
/// management port: a 404 that says where it should go, recorded as a
/// refusal so a runtime configured with the wrong port shows up.
fn wrong_port(api: &Api, req: &Request) -> Response {
    use crate::refusals::{Reason, Refused, Subject};
    let port = api.runtime_url.rsplit(':').next().unwrap_or("9445");
    let what = match req.path.as_str() {
        "/icp/heartbeat" | "/icp/deltaHeartbeat" => "Runtimes send heartbeats",
        "/icp/logs" | "/icp/metrics" | "/v1/logs" | "/v1/metrics" => {
            "Log shippers and runtimes send logs and metrics"
        }
        _ => "Runtimes send protocol requests",
    };
    let refused = Refused::new(
        Reason::WrongListener,
        Subject::default(),
        Error::NotFound(format!(
            "this is icpd's management port (REST API and console). {what} to the runtime listener, port {port} ({}): \
             set serverUrl in the [wso2.icp.runtime.bridge] section of the integration's Config.toml \
             (Micro Integrator: icp_url in [icp_config] of deployment.toml) to it",
            api.runtime_url
        )),
    );
    let e = crate::http::routes::trace(&api.refusals, MANAGEMENT, req, refused, now_millis());
    // Answered to a runtime: in its shape, with the top-level message MI logs.
    Response::runtime_error(404, "wrong_port", &e.to_string())
        .with_header("Cache-Control", "no-store")
}

/// The management listener's handler: health, metrics, the API, and the web
/// console, every response with the security headers. Each request is
/// timed under its route (`dispatch` times the API's).
pub fn handler(api: Arc<Api>) -> impl Fn(&Request) -> Response + Send + Sync + 'static {
    move |req: &Request| {
        let started = Instant::now();
        let get = matches!(req.method.as_str(), "GET" | "HEAD");
        let (resp, route) = match req.path.as_str() {
            "/healthz" if get => (Response::json(200, &health(&api)), Some("/healthz")),
            "/healthz" => (method_not_allowed("GET"), Some("/healthz")),
            "/metrics" if get => (
                serve_metrics(&api, req).unwrap_or_else(|e| error_response(&e)),
                Some("/metrics"),
            ),
            "/metrics" => (method_not_allowed("GET"), Some("/metrics")),
            p if p.starts_with("/api/") => (dispatch(&api, req), None),
            p if graphql::handles(p) => (graphql::serve(&api, req), None),
            p if is_runtime_protocol(p) => (wrong_port(&api, req), Some("runtime_protocol")),
            // Everything else is the web console: its files, index.html for its
            // client-side routes, or a 404.
            _ => (crate::http::assets::serve(req), Some("console")),
        };
        if let Some(route) = route {
            metrics::observe_request(MANAGEMENT, &req.method, route, started.elapsed());
        }
        crate::http::assets::security_headers(resp, api.secure)
    }
}

/// A request body as `T`, which must be a JSON object: serde would also
/// fill a struct from an array, field by field in declaration order
/// (`["ok"]` as `{"comment": "ok"}`), past `deny_unknown_fields`, so an
/// array meant for something else could act (approve a promotion, create
/// an environment). Every body of the API is an object.
fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Err(Error::BadRequest("this request needs a JSON body".into())),
        Some(b'{') => serde_json::from_slice(body)
            .map_err(|e| Error::BadRequest(format!("invalid JSON body: {e}"))),
        Some(_) => Err(Error::BadRequest(
            "invalid JSON body: it must be a JSON object".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_reason_leaves_out_the_value_a_decoder_quotes() {
        let check = |message: &str, want: &str| {
            let resp = Response::error(400, "bad_request", message);
            assert_eq!(refusal_reason(&resp), want, "{message}");
        };
        check(
            "invalid JSON body: invalid type: string \"hunter2, expected x\", expected a boolean at line 1 column 40",
            "invalid JSON body: invalid type: string, expected a boolean at line 1 column 40",
        );
        check(
            "invalid JSON body: invalid type: integer `12345`, expected a string at line 1 column 30",
            "invalid JSON body: invalid type: integer, expected a string at line 1 column 30",
        );
        check(
            "invalid JSON body: invalid value: string \"maybe\", expected one of `a`, `b`",
            "invalid JSON body: invalid value: string, expected one of `a`, `b`",
        );
        check(
            "this needs the user:manage permission here",
            "this needs the user:manage permission here",
        );
        assert_eq!(
            refusal_reason(&Response::error(400, "bad_request", &"x".repeat(1000))).len(),
            MAX_REASON_CHARS
        );
        assert_eq!(refusal_reason(&Response::json(418, &"not an error")), "");
    }

    #[test]
    fn a_body_must_be_an_object_not_fields_by_position() {
        #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Decision {
            comment: Option<String>,
        }
        for body in [
            &b"[\"ok\"]"[..],
            b"  [null]",
            b"\"x\"",
            b"1",
            b"null",
            b"",
            b" \n",
        ] {
            let e = decode_body::<Decision>(body).unwrap_err();
            assert!(matches!(e, Error::BadRequest(_)), "{body:?}: {e}");
        }
        let d: Decision = decode_body(b" \r\n{\"comment\": \"ok\"}").unwrap();
        assert_eq!(d.comment.as_deref(), Some("ok"));
    }

    #[test]
    fn paths_match_with_parameters() {
        assert_eq!(
            match_path("/api/v1/projects", "/api/v1/projects"),
            Some(vec![])
        );
        assert_eq!(
            match_path("/api/v1/projects/{project}", "/api/v1/projects/a%20b"),
            Some(vec![("project".into(), "a b".into())])
        );
        assert_eq!(
            match_path("/api/v1/projects/{project}", "/api/v1/projects/"),
            None
        );
        assert_eq!(
            match_path("/api/v1/projects/{project}", "/api/v1/projects/a/b"),
            None
        );
        assert_eq!(percent_decode("%zz"), None);
    }

    #[test]
    fn every_route_path_is_unique_per_method() {
        let mut seen = std::collections::HashSet::new();
        for r in routes() {
            assert!(
                seen.insert((r.method, r.path)),
                "duplicate route {} {}",
                r.method,
                r.path
            );
            assert!(r.path.starts_with("/api/v1/"), "{}", r.path);
        }
    }
}
