//! Routing for both listeners, and the mapping of [`Error`] to HTTP.
//!
//! Handlers are linear: match the route, call one domain function with the
//! raw body and the time, encode the result. Errors become
//! `{"error":{"code":"...","message":"..."}}`, on the runtime listener with
//! the message repeated as a top-level `message` (what MI logs, see
//! [`runtime_error_response`]); internal errors are logged with
//! an id and only the id is returned. A refusal (a [`Refused`] with a
//! reason) is recorded with the client's address and the status it got
//! (see `refusals`) before it is answered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::Error;
use crate::http::message::percent_decode;
use crate::http::{Request, Response};
use crate::protocol::Protocol;
use crate::refusals::{Refusal, Refusals, Refused};
use crate::telemetry::ingest::{Format, Ingest, Options, Outcome};
use crate::time::{now_millis, Millis};

/// The status an error is answered with.
pub fn status_of(e: &Error) -> u16 {
    match e {
        Error::BadRequest(_) => 400,
        Error::Unauthorized(_) => 401,
        Error::Forbidden(_) => 403,
        Error::NotFound(_) => 404,
        Error::Conflict(_) => 409,
        Error::Unprocessable(_) => 422,
        Error::TooManyRequests { .. } => 429,
        Error::Unavailable(_) | Error::Upstream(_) => 503,
        _ => 500,
    }
}

/// What an error is answered with: status, code, message and the
/// `Retry-After` seconds if any. Internal details are logged with an id
/// and only the id is answered.
struct Answer {
    status: u16,
    code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
}

static NEXT_ERROR_ID: AtomicU64 = AtomicU64::new(1);

fn error_id() -> String {
    format!(
        "{:x}-{}",
        now_millis(),
        NEXT_ERROR_ID.fetch_add(1, Ordering::Relaxed)
    )
}

fn answer(e: &Error) -> Answer {
    let status = status_of(e);
    if let Error::Unavailable(_) = e {
        let id = error_id();
        log::warn!("request refused for now [{id}]: {e}");
        return Answer {
            status,
            code: "unavailable",
            message: format!(
                "the database cannot be reached now (id {id}); retry after {TRANSIENT_RETRY_AFTER_SECS} s"
            ),
            retry_after_secs: Some(TRANSIENT_RETRY_AFTER_SECS),
        };
    }
    if status == 500 {
        let id = error_id();
        log::error!("request failed [{id}]: {e}");
        return Answer {
            status,
            code: "internal",
            message: format!("internal error (id {id}); the server log has the details"),
            retry_after_secs: None,
        };
    }
    Answer {
        status,
        code: e.code(),
        message: e.to_string(),
        retry_after_secs: match e {
            Error::TooManyRequests {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        },
    }
}

fn with_retry_after(resp: Response, secs: Option<u64>) -> Response {
    match secs {
        Some(s) => resp.with_header("Retry-After", &s.to_string()),
        None => resp,
    }
}

/// Maps an error to its status and JSON body.
pub fn error_response(e: &Error) -> Response {
    let a = answer(e);
    with_retry_after(
        Response::error(a.status, a.code, &a.message),
        a.retry_after_secs,
    )
}

/// How long a runtime is asked to wait after a transient fault of icpd's own.
const TRANSIENT_RETRY_AFTER_SECS: u64 = 5;

/// An error answered to a runtime protocol call. Two differences from the
/// management API's shape, both for Micro Integrator (MI.md): the message
/// is repeated as a top-level `message` member, which is what MI logs; and
/// a fault of icpd's own storage (the database busy or failing, a file
/// error) is 503 with `Retry-After`, never a 4xx: MI stops heartbeating for
/// good after a 400, 401 or 409, so those are kept for what the runtime
/// must fix.
pub fn runtime_error_response(e: &Error) -> Response {
    let a = if matches!(
        e,
        Error::Database(_) | Error::Unavailable(_) | Error::Io { .. }
    ) {
        let id = error_id();
        log::error!("runtime request failed for now [{id}]: {e}");
        Answer {
            status: 503,
            code: "unavailable",
            message: format!(
                "icpd cannot store this now (id {id}); retry after {TRANSIENT_RETRY_AFTER_SECS} s"
            ),
            retry_after_secs: Some(TRANSIENT_RETRY_AFTER_SECS),
        }
    } else {
        answer(e)
    };
    with_retry_after(
        Response::runtime_error(a.status, a.code, &a.message),
        a.retry_after_secs,
    )
}

fn respond<T: serde::Serialize>(status: u16, r: Result<T, Error>) -> Response {
    match r {
        Ok(v) => Response::json(status, &v),
        Err(e) => runtime_error_response(&e),
    }
}

fn no_route(req: &Request) -> String {
    format!("no route for {} {}", req.method, truncate(&req.path))
}

/// 404 for a path no route serves.
pub(crate) fn not_found(req: &Request) -> Response {
    Response::error(404, "not_found", &no_route(req))
}

/// 405 naming the methods that are allowed.
pub(crate) fn method_not_allowed(allow: &str) -> Response {
    Response::error(405, "method_not_allowed", &format!("use {allow}")).with_header("Allow", allow)
}

/// [`not_found`] in the runtime listener's shape.
fn runtime_not_found(req: &Request) -> Response {
    Response::runtime_error(404, "not_found", &no_route(req))
}

/// [`method_not_allowed`] in the runtime listener's shape.
fn runtime_method_not_allowed(allow: &str) -> Response {
    Response::runtime_error(405, "method_not_allowed", &format!("use {allow}"))
        .with_header("Allow", allow)
}

fn truncate(s: &str) -> String {
    s.chars().take(100).collect()
}

/// The runtime listener's routes, as (method, path), each timed under its
/// own path in `/metrics`; any other request counts as route `other`.
pub const RUNTIME_ROUTES: &[(&str, &str)] = &[
    ("POST", "/icp/heartbeat"),
    ("POST", "/icp/deltaHeartbeat"),
    ("POST", "/icp/commandResult"),
    ("POST", "/icp/logs"),
    ("POST", "/icp/metrics"),
    ("POST", "/v1/logs"),
    ("POST", "/v1/metrics"),
    ("GET", "/icp/config"),
    ("GET", "/healthz"),
];

/// Whether `path` is a runtime protocol path (one of [`RUNTIME_ROUTES`]
/// but `/healthz`, which both listeners serve): the management listener
/// answers these with a pointer to the runtime listener.
pub fn is_runtime_protocol(path: &str) -> bool {
    path != "/healthz" && RUNTIME_ROUTES.iter().any(|(_, p)| *p == path)
}

/// Records `r` if it is a refusal of `req` on `listener`; returns its error.
pub(crate) fn trace(
    refusals: &Refusals,
    listener: &'static str,
    req: &Request,
    r: Refused,
    now: Millis,
) -> Error {
    if let Some(reason) = r.reason {
        refusals.record(Refusal::new(
            now,
            req.peer.ip(),
            listener,
            format!("{} {}", req.method, truncate(&req.path)),
            reason,
            status_of(&r.error),
            &r,
        ));
    }
    r.error
}

/// The runtime listener: the bridge protocol and telemetry ingest.
pub fn runtime_handler(
    protocol: Arc<Protocol>,
    telemetry: Arc<crate::telemetry::Telemetry>,
    refusals: Arc<Refusals>,
) -> impl Fn(&Request) -> Response + Send + Sync + 'static {
    let ingest = Ingest {
        protocol: protocol.clone(),
        telemetry,
    };
    move |req: &Request| {
        let auth = req.header("authorization");
        let now = now_millis();
        let traced = |r| trace(&refusals, "runtime", req, r, now);
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/icp/heartbeat") => respond(
                200,
                protocol
                    .full_heartbeat(auth, &req.body, now)
                    .map_err(traced),
            ),
            ("POST", "/icp/deltaHeartbeat") => respond(
                200,
                protocol
                    .delta_heartbeat(auth, &req.body, now)
                    .map_err(traced),
            ),
            ("POST", "/icp/commandResult") => respond(
                202,
                protocol
                    .command_result(auth, &req.body, now)
                    .map_err(traced),
            ),
            ("POST", "/icp/logs") => ingest_route(&ingest, &refusals, req, Format::Logs, now),
            ("POST", "/icp/metrics") => {
                ingest_route(&ingest, &refusals, req, Format::Requests, now)
            }
            ("POST", "/v1/logs") => ingest_route(&ingest, &refusals, req, Format::OtlpLogs, now),
            ("POST", "/v1/metrics") => {
                ingest_route(&ingest, &refusals, req, Format::OtlpMetrics, now)
            }
            (
                _,
                "/icp/heartbeat"
                | "/icp/deltaHeartbeat"
                | "/icp/commandResult"
                | "/icp/logs"
                | "/icp/metrics"
                | "/v1/logs"
                | "/v1/metrics",
            ) => runtime_method_not_allowed("POST"),
            ("GET", "/icp/config") => config_route(&protocol, &refusals, req, now),
            (_, "/icp/config") => runtime_method_not_allowed("GET"),
            ("GET", "/healthz") => Response::json(200, &serde_json::json!({"status": "ok"})),
            _ => runtime_not_found(req),
        }
    }
}

/// `GET /icp/config[?runtimeId=ID][&runtime=NAME]`: the runtime's
/// Config.toml values as `application/toml`, with the revision in
/// `X-ICP-Config-Revision`. Never cached: it carries secrets.
fn config_route(protocol: &Protocol, refusals: &Refusals, req: &Request, now: Millis) -> Response {
    let runtime_id = query_param(&req.query, "runtimeId");
    let runtime_name = query_param(&req.query, "runtime");
    let who = crate::configuration::Fetcher {
        runtime_id: runtime_id.as_deref(),
        runtime_name: runtime_name.as_deref(),
    };
    match protocol.config(req.header("authorization"), &who, now) {
        Ok(rendered) => Response {
            status: 200,
            headers: vec![
                (
                    "Content-Type".into(),
                    "application/toml; charset=utf-8".into(),
                ),
                (
                    "X-ICP-Config-Revision".into(),
                    rendered.revision.to_string(),
                ),
                ("Cache-Control".into(), "no-store".into()),
            ],
            body: rendered.toml.into_bytes(),
            stream: None,
        },
        Err(r) => runtime_error_response(&trace(refusals, "runtime", req, r, now)),
    }
}

/// An ingest endpoint: authenticate (401 whatever the body), refuse what
/// we cannot read (415), decode and store, answer in the endpoint's shape.
fn ingest_route(
    ingest: &Ingest,
    refusals: &Refusals,
    req: &Request,
    format: Format,
    now: Millis,
) -> Response {
    let runtime_id = query_param(&req.query, "runtimeId");
    let credential = match ingest.authenticate(req.header("authorization"), now) {
        Ok(c) => c,
        Err(r) => {
            let r = r.naming_runtime(runtime_id.as_deref());
            return runtime_error_response(&trace(refusals, "runtime", req, r, now));
        }
    };
    if let Some(refusal) = unsupported_media(req) {
        return refusal;
    }
    let options = Options {
        runtime_id,
        time_key: query_param(&req.query, "timeKey"),
    };
    match ingest.ingest(&credential, format, &req.body, &options, now) {
        Ok(outcome) => match format {
            Format::Logs | Format::Requests => Response::json(200, &outcome),
            Format::OtlpLogs => {
                Response::json(200, &partial_success(outcome, "rejectedLogRecords"))
            }
            Format::OtlpMetrics => {
                Response::json(200, &partial_success(outcome, "rejectedDataPoints"))
            }
        },
        Err(r) => runtime_error_response(&trace(refusals, "runtime", req, r, now)),
    }
}

/// 415 for bodies icpd does not decode: protobuf (OTLP's default), msgpack,
/// and compressed bodies.
fn unsupported_media(req: &Request) -> Option<Response> {
    let refuse = |m: &str| Some(Response::runtime_error(415, "unsupported_media_type", m));
    if let Some(enc) = req
        .header("content-encoding")
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"))
    {
        return refuse(&format!(
            "Content-Encoding '{}' is not supported: send the body uncompressed (Fluent Bit: no 'compress'; OpenTelemetry exporters: compression none)",
            truncate(enc)
        ));
    }
    let content_type = req
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.contains("protobuf") {
        return refuse("OTLP/HTTP protobuf is not supported: send OTLP/HTTP JSON (Content-Type: application/json; OpenTelemetry SDKs: OTEL_EXPORTER_OTLP_PROTOCOL=http/json)");
    }
    if content_type.contains("msgpack") {
        return refuse(
            "msgpack is not supported: send JSON (Fluent Bit http output: format json or json_lines)",
        );
    }
    None
}

/// The OTLP/HTTP answer: `{"partialSuccess":{}}` when everything was
/// accepted, else the count of rejected items and the first reasons.
fn partial_success(outcome: Outcome, rejected_key: &str) -> serde_json::Value {
    let mut partial = serde_json::Map::new();
    if outcome.rejected > 0 {
        partial.insert(rejected_key.into(), outcome.rejected.into());
        partial.insert("errorMessage".into(), outcome.errors.join("; ").into());
    }
    serde_json::json!({ "partialSuccess": partial })
}

/// A query parameter, percent-decoded (`+` is a space); the first if
/// repeated; `None` when absent, empty or not UTF-8.
fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| percent_decode(k).as_deref() == Some(name))
        .and_then(|(_, v)| percent_decode(v))
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_decode() {
        assert_eq!(
            query_param("a=1&runtimeId=rt%2D1+x&runtimeId=2", "runtimeId").as_deref(),
            Some("rt-1 x")
        );
        assert_eq!(query_param("timeKey=", "timeKey"), None);
        assert_eq!(query_param("timeKey=%zz", "timeKey"), None);
        assert_eq!(query_param("", "timeKey"), None);
    }
}
