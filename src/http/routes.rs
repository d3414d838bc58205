//! Routing for both listeners, and the mapping of [`Error`] to HTTP.
//!
//! Handlers are linear: match the route, call one domain function with the
//! raw body and the time, encode the result. Errors become
//! `{"error":{"code":"...","message":"..."}}`; internal errors are logged with
//! an id and only the id is returned.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::Error;
use crate::http::{Request, Response};
use crate::protocol::Protocol;
use crate::time::now_millis;

/// Maps an error to its status and JSON body.
pub fn error_response(e: &Error) -> Response {
    let status = match e {
        Error::BadRequest(_) => 400,
        Error::Unauthorized(_) => 401,
        Error::Forbidden(_) => 403,
        Error::NotFound(_) => 404,
        Error::Conflict(_) => 409,
        Error::Unprocessable(_) => 422,
        Error::TooManyRequests { .. } => 429,
        _ => 500,
    };
    if status == 500 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = format!(
            "{:x}-{}",
            now_millis(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        log::error!("request failed [{id}]: {e}");
        return Response::error(
            500,
            "internal",
            &format!("internal error (id {id}); the server log has the details"),
        );
    }
    let resp = Response::error(status, e.code(), &e.to_string());
    match e {
        Error::TooManyRequests {
            retry_after_secs, ..
        } => resp.with_header("Retry-After", &retry_after_secs.to_string()),
        _ => resp,
    }
}

fn respond<T: serde::Serialize>(status: u16, r: Result<T, Error>) -> Response {
    match r {
        Ok(v) => Response::json(status, &v),
        Err(e) => error_response(&e),
    }
}

/// 404 for a path no route serves.
pub(crate) fn not_found(req: &Request) -> Response {
    Response::error(
        404,
        "not_found",
        &format!("no route for {} {}", req.method, truncate(&req.path)),
    )
}

/// 405 naming the methods that are allowed.
pub(crate) fn method_not_allowed(allow: &str) -> Response {
    Response::error(405, "method_not_allowed", &format!("use {allow}")).with_header("Allow", allow)
}

fn truncate(s: &str) -> String {
    s.chars().take(100).collect()
}

/// The runtime listener: the bridge protocol.
pub fn runtime_handler(
    protocol: Arc<Protocol>,
    _telemetry: Arc<crate::telemetry::Telemetry>,
) -> impl Fn(&Request) -> Response + Send + Sync + 'static {
    move |req: &Request| {
        let auth = req.header("authorization");
        let now = now_millis();
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/icp/heartbeat") => {
                respond(200, protocol.full_heartbeat(auth, &req.body, now))
            }
            ("POST", "/icp/deltaHeartbeat") => {
                respond(200, protocol.delta_heartbeat(auth, &req.body, now))
            }
            ("POST", "/icp/commandResult") => {
                respond(202, protocol.command_result(auth, &req.body, now))
            }
            (_, "/icp/heartbeat" | "/icp/deltaHeartbeat" | "/icp/commandResult") => {
                method_not_allowed("POST")
            }
            ("GET", "/healthz") => Response::json(200, &serde_json::json!({"status": "ok"})),
            _ => not_found(req),
        }
    }
}
