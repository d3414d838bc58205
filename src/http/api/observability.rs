//! `/api/v1/observability/...`, the read side: logs (query, live tail,
//! download), request metrics and OTLP points.
//!
//! Every route needs `observability:view` somewhere (403 otherwise) and
//! returns only records of what the caller holds it on; the rules live in
//! `telemetry::query`. The tail works with the session cookie, since a
//! browser's `EventSource` cannot send an `Authorization` header.

use serde::Serialize;

use super::{ok, schema, Access, Api, Body, Ctx, Input, Items, Route};
use crate::error::Result;
use crate::http::Response;
use crate::telemetry::query::{
    self, DownloadFormat, GroupBy, LogItem, LogRequest, MetricsRequest, Order, PointItem,
    ScopeHandles,
};
use crate::telemetry::LogFilter;

const LOG_QUERY: &[&str] = &[
    "environment",
    "project",
    "integration",
    "runtime",
    "level",
    "q",
    "from",
    "to",
    "order",
    "limit",
    "cursor",
];
const TAIL_QUERY: &[&str] = &[
    "environment",
    "project",
    "integration",
    "runtime",
    "level",
    "q",
    "from",
    "to",
];
const DOWNLOAD_QUERY: &[&str] = &[
    "environment",
    "project",
    "integration",
    "runtime",
    "level",
    "q",
    "from",
    "to",
    "order",
    "limit",
    "format",
];
const METRICS_QUERY: &[&str] = &[
    "environment",
    "project",
    "integration",
    "runtime",
    "service",
    "resource",
    "from",
    "to",
    "step",
    "groupBy",
];
const POINTS_QUERY: &[&str] = &[
    "name",
    "environment",
    "project",
    "integration",
    "runtime",
    "from",
    "to",
];
const NAMES_QUERY: &[&str] = &[
    "environment",
    "project",
    "integration",
    "runtime",
    "from",
    "to",
];

pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/api/v1/observability/logs",
        access: Access::User,
        summary: "Log records you may view (observability:view), by their own time however late they arrived: order=desc (newest first, the default) or asc, records of one millisecond by id; nextCursor continues after the last record (a record stored meanwhile is in a later page if its time lies beyond it); level is a comma list, q a phrase, from/to RFC 3339 or Unix ms; integration needs project",
        query: LOG_QUERY,
        body: Input::None,
        ok: &[(200, Body::Json(schema::<LogPageBody<'static>>))],
        errors: &[],
        handler: logs,
    },
    Route {
        method: "GET",
        path: "/api/v1/observability/logs/tail",
        access: Access::User,
        summary: "Live log records as Server-Sent Events (text/event-stream, one 'log' event per record), with the filters of the log query",
        query: TAIL_QUERY,
        body: Input::None,
        ok: &[(200, Body::Events("Server-Sent Events: one 'log' event per record"))],
        errors: &[],
        handler: tail,
    },
    Route {
        method: "GET",
        path: "/api/v1/observability/logs/download",
        access: Access::User,
        summary: "Log records as an attachment, in the order of the log query (by their own time, order=desc or asc), NDJSON (format=ndjson, the default) or text lines (format=text); at most 100,000 (limit) and about 64 MiB (X-Truncated: true when cut short)",
        query: DOWNLOAD_QUERY,
        body: Input::None,
        ok: &[(200, Body::Media(&["application/x-ndjson", "text/plain"], "log records as an attachment: NDJSON (format=ndjson) or text lines (format=text)"))],
        errors: &[],
        handler: download,
    },
    Route {
        method: "GET",
        path: "/api/v1/observability/metrics",
        access: Access::User,
        summary: "Request metrics per time bucket: count, 4xx and 5xx errors and rates, latency mean and nearest-rank p50/p95/p99; default the last hour in at most 120 buckets (step: at most 1,000); groupBy=resource gives one series per service, resource and method (the busiest 100)",
        query: METRICS_QUERY,
        body: Input::None,
        ok: &[(200, Body::Json(schema::<query::MetricsReport>))],
        errors: &[],
        handler: metrics,
    },
    Route {
        method: "GET",
        path: "/api/v1/observability/metric-points",
        access: Access::User,
        summary: "OTLP data points of one metric (name), oldest first: the newest 10,000 in the range (default the last hour)",
        query: POINTS_QUERY,
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Items<PointItem<'static>>>))],
        errors: &[],
        handler: metric_points,
    },
    Route {
        method: "GET",
        path: "/api/v1/observability/metric-names",
        access: Access::User,
        summary: "Names of the OTLP metrics you may view (in the range, if given)",
        query: NAMES_QUERY,
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Items<String>>))],
        errors: &[],
        handler: metric_names,
    },
];

fn time(ctx: &Ctx, name: &str) -> Result<Option<i64>> {
    ctx.query_filled(name)
        .map(|t| query::parse_time(name, &t))
        .transpose()
}

fn scope(ctx: &Ctx) -> ScopeHandles {
    ScopeHandles {
        environment: ctx.query_filled("environment"),
        project: ctx.query_filled("project"),
        integration: ctx.query_filled("integration"),
        runtime: ctx.query_filled("runtime"),
    }
}

fn log_request(ctx: &Ctx) -> Result<LogRequest> {
    Ok(LogRequest {
        scope: scope(ctx),
        levels: query::parse_levels(&ctx.query("level").unwrap_or_default())?,
        phrase: ctx.query_filled("q"),
        from: time(ctx, "from")?,
        to: time(ctx, "to")?,
    })
}

fn order(ctx: &Ctx) -> Result<Order> {
    ctx.query_filled("order")
        .map(|o| Order::parse(&o))
        .transpose()
        .map(Option::unwrap_or_default)
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct LogPageBody<'a> {
    items: Vec<LogItem<'a>>,
    next_cursor: Option<String>,
}

fn logs(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let req = log_request(ctx)?;
    let limit = ctx.limit(query::DEFAULT_LIMIT, query::MAX_LIMIT)?;
    let cursor = ctx.query_filled("cursor");
    let page = query::logs(
        &api.store,
        &api.telemetry.store,
        ctx.principal()?,
        &req,
        order(ctx)?,
        cursor.as_deref(),
        limit,
    )?;
    ok(&LogPageBody {
        items: page.items.iter().map(LogItem::of).collect(),
        next_cursor: page.next_cursor,
    })
}

fn tail(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let req = log_request(ctx)?;
    let principal = ctx.principal()?;
    let vis = query::visibility(principal)?;
    // A handle that names nothing: a stream that stays open and never
    // sends a record (no environment has row id 0), as a query of it is
    // an empty page.
    let filter = req.resolve(&api.store)?.unwrap_or(LogFilter {
        environment_id: Some(0),
        ..LogFilter::default()
    });
    let rx = api
        .telemetry
        .subscribe(Some(principal.user_id), filter, vis)?;
    Ok(Response::event_stream(rx))
}

fn download(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let req = log_request(ctx)?;
    let format = ctx
        .query_filled("format")
        .map(|f| DownloadFormat::parse(&f))
        .transpose()?
        .unwrap_or_default();
    let limit = ctx.limit(query::DOWNLOAD_LIMIT, query::DOWNLOAD_LIMIT)?;
    let d = query::download(
        &api.store,
        &api.telemetry.store,
        ctx.principal()?,
        &req,
        order(ctx)?,
        limit,
        format,
    )?;
    Ok(Response {
        status: 200,
        headers: vec![
            ("Content-Type".into(), format.content_type().into()),
            (
                "Content-Disposition".into(),
                format!("attachment; filename=\"{}\"", format.file_name(ctx.now)),
            ),
            ("X-Record-Count".into(), d.records.to_string()),
            ("X-Truncated".into(), d.truncated.to_string()),
        ],
        body: d.body,
        stream: None,
    })
}

fn metrics(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let req = MetricsRequest {
        scope: scope(ctx),
        service: ctx.query_filled("service"),
        resource: ctx.query_filled("resource"),
        from: time(ctx, "from")?,
        to: time(ctx, "to")?,
        step_ms: ctx
            .query_filled("step")
            .map(|s| query::parse_step(&s))
            .transpose()?,
        group_by: ctx
            .query_filled("groupBy")
            .map(|g| GroupBy::parse(&g))
            .transpose()?
            .unwrap_or_default(),
    };
    ok(&query::request_metrics(
        &api.store,
        &api.telemetry.store,
        ctx.principal()?,
        &req,
        ctx.now,
    )?)
}

fn metric_points(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let points = query::metric_points(
        &api.store,
        &api.telemetry.store,
        ctx.principal()?,
        &scope(ctx),
        &ctx.query_filled("name").unwrap_or_default(),
        time(ctx, "from")?,
        time(ctx, "to")?,
        ctx.now,
    )?;
    ok(&Items {
        items: points.iter().map(PointItem::of).collect(),
    })
}

fn metric_names(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let names = query::metric_names(
        &api.store,
        &api.telemetry.store,
        ctx.principal()?,
        &scope(ctx),
        time(ctx, "from")?,
        time(ctx, "to")?,
    )?;
    ok(&Items { items: names })
}
