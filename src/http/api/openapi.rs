//! `GET /api/v1/openapi.json`: an OpenAPI 3.1 document generated from the
//! route table, so it can never miss a route.
//!
//! Each [`Route`] names the type its handler decodes and the types it
//! answers with, per status; their JSON Schemas come from `schemars`
//! deriving `JsonSchema` on those same types (honouring their serde
//! attributes), so the document cannot drift from what is sent. Request
//! bodies are described as serde reads them, responses as serde writes
//! them; a type that reads differently from how it writes gets a second
//! schema named `...Input`. Named types land in `components/schemas`.

use std::collections::{BTreeMap, BTreeSet};

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{ok, routes, schema, Access, Api, Body, Ctx, Input, Route};
use crate::error::Result;
use crate::http::Response;

pub const ROUTES: &[Route] = &[Route {
    method: "GET",
    path: "/api/v1/openapi.json",
    access: Access::Public,
    summary: "This OpenAPI 3.1 document",
    query: &[],
    body: Input::None,
    ok: &[(200, Body::Json(schema::<Document>))],
    errors: &[],
    handler: document,
}];

/// The document itself: an OpenAPI 3.1 object.
#[derive(Serialize, JsonSchema)]
#[serde(transparent)]
struct Document(#[schemars(with = "OpenApiObject")] Value);

/// What a client may rely on in an OpenAPI 3.1 document.
#[derive(Serialize, JsonSchema)]
#[allow(dead_code)]
struct OpenApiObject {
    openapi: String,
    info: Map<String, Value>,
    paths: Map<String, Value>,
    components: Map<String, Value>,
}

/// The body of every error: `{"error": {"code", "message"}}`.
#[derive(Serialize, JsonSchema)]
#[allow(dead_code)]
pub struct Error {
    pub error: ErrorDetail,
}

/// What went wrong: a stable code and a message for people.
#[derive(Serialize, JsonSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// e.g. `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `conflict`, `unprocessable`, `too_many_requests`, `unavailable`.
    pub code: String,
    pub message: String,
}

/// The type and meaning of a query parameter, by name (the same name means
/// the same thing on every route that takes it).
pub fn query_parameter(name: &str) -> Option<(Value, &'static str)> {
    let string = json!({"type": "string"});
    let time = "a time: RFC 3339 or Unix milliseconds";
    Some(match name {
        "limit" => (
            json!({"type": "integer", "minimum": 1}),
            "at most this many items (each route has its own maximum and default)",
        ),
        "cursor" => (string, "the nextCursor of the previous page"),
        "q" => (string, "text to search for"),
        "environment" => (string, "an environment's handle"),
        "project" => (string, "a project's handle"),
        "integration" => (string, "an integration's handle"),
        "runtime" => (string, "a runtime id"),
        "user" => (string, "a user name"),
        "group" => (string, "a group name"),
        "actor" => (string, "who acted (exact)"),
        "action" => (
            string,
            "what was done, e.g. 'POST /api/v1/projects' (exact)",
        ),
        "from" => (string, time),
        "to" => (string, "a time (exclusive): RFC 3339 or Unix milliseconds"),
        "since" => (string, "older name of from"),
        "until" => (string, "older name of to"),
        "status" => (
            string,
            "a status to filter by (the route's summary names them)",
        ),
        "type" => (
            json!({"type": "string", "enum": ["BI", "MI", "bi", "mi"]}),
            "the runtime type",
        ),
        "revokeSecret" => (
            json!({"type": "string", "enum": ["true", "false"]}),
            "also revoke the runtime's secret",
        ),
        "kind" => (string, "an artifact kind"),
        "name" => (
            string,
            "a name to look up (the route's summary says of what)",
        ),
        "domain" => (string, "the user store domain of an MI user"),
        "runtimeIds" => (string, "comma-separated runtime ids (default: all)"),
        "file" => (string, "a log file name"),
        "path" => (string, "a registry path"),
        "part" => (
            json!({"type": "string", "enum": ["content", "metadata", "properties"]}),
            "which part of a registry resource",
        ),
        "revision" => (json!({"type": "integer"}), "a configuration revision"),
        "level" => (string, "a log level (e.g. ERROR, WARN, INFO, DEBUG)"),
        "order" => (
            json!({"type": "string", "enum": ["desc", "asc"]}),
            "by time, newest first (desc, the default) or oldest first",
        ),
        "format" => (
            json!({"type": "string", "enum": ["ndjson", "text"]}),
            "NDJSON (the default) or text lines",
        ),
        "service" => (string, "a service name"),
        "resource" => (string, "a resource name"),
        "step" => (string, "the bucket width, e.g. 60s, 5m"),
        "groupBy" => (
            json!({"type": "string", "enum": ["resource"]}),
            "one series per service, resource and method",
        ),
        _ => return None,
    })
}

/// Every error status a route can answer: those its kind can (a malformed
/// body or query: 400; not signed in: 401; a password change pending or a
/// cookie without its CSRF token: 403; an unknown path id: 404; the
/// database out of reach: 503) and those it declares.
pub fn error_statuses(r: &Route) -> BTreeSet<u16> {
    let mut s: BTreeSet<u16> = r.errors.iter().copied().collect();
    if !matches!(r.body, Input::None) || !r.query.is_empty() {
        s.insert(400);
    }
    if r.access != Access::Public {
        s.insert(401);
        if r.access == Access::User || super::is_unsafe(r.method) {
            s.insert(403);
        }
    }
    if r.path.contains('{') {
        s.insert(404);
    }
    if r.path != "/api/v1/openapi.json" {
        s.insert(503);
    }
    s
}

fn error_description(status: u16) -> &'static str {
    match status {
        400 => "invalid request (body, query or parameter)",
        401 => "not signed in, or the token is unknown, revoked or expired",
        403 => "not allowed: a permission is missing, a password change is pending, or a cookie session sent no CSRF token",
        404 => "not found (or not visible to you)",
        409 => "conflicts with the current state",
        422 => "well-formed, but not acceptable",
        429 => "too many requests: retry after the Retry-After header's seconds",
        502 => "the runtime answered with an error",
        503 => "unavailable for now (the database or an upstream cannot be reached); retry later",
        504 => "the runtime did not answer in time",
        _ => "error",
    }
}

fn generator(contract_serialize: bool) -> SchemaGenerator {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    });
    let settings = if contract_serialize {
        settings.for_serialize()
    } else {
        settings.for_deserialize()
    };
    SchemaGenerator::new(settings)
}

/// Points every `$ref` to a renamed schema at its new name.
fn rename_refs(v: &mut Value, renamed: &BTreeMap<String, String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref") {
                if let Some(name) = r.strip_prefix("#/components/schemas/") {
                    if let Some(new) = renamed.get(name) {
                        *r = format!("#/components/schemas/{new}");
                    }
                }
            }
            o.values_mut().for_each(|v| rename_refs(v, renamed));
        }
        Value::Array(a) => a.iter_mut().for_each(|v| rename_refs(v, renamed)),
        _ => {}
    }
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

/// The document for the current route table.
pub fn build() -> Value {
    let mut responses_gen = generator(true);
    let mut requests_gen = generator(false);
    let error_schema = schema::<Error>(&mut responses_gen).to_value();
    let mut paths = Map::new();
    // Request bodies, kept aside until the request schemas are named.
    let mut bodies: Vec<(String, String, bool, Value)> = Vec::new();
    for r in routes() {
        let mut params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        params.extend(r.query.iter().map(|q| {
            let (schema, description) = query_parameter(q)
                .unwrap_or_else(|| panic!("query parameter '{q}' of {} {} has no type", r.method, r.path));
            json!({"name": q, "in": "query", "required": false, "schema": schema, "description": description})
        }));
        let mut responses = Map::new();
        for (status, body) in r.ok {
            let answer = match body {
                Body::Empty => json!({"description": "done"}),
                Body::Json(f) => {
                    json!({"description": "success", "content": json_content(f(&mut responses_gen).to_value())})
                }
                Body::Events(what) => {
                    let event = schema::<super::ServerSentEvent>(&mut responses_gen).to_value();
                    json!({"description": what, "content": {"text/event-stream": {"schema": event}}})
                }
                Body::Media(media, what) => {
                    let content: Map<String, Value> = media
                        .iter()
                        .map(|m| (m.to_string(), json!({"schema": {"type": "string"}})))
                        .collect();
                    json!({"description": what, "content": content})
                }
            };
            responses.insert(status.to_string(), answer);
        }
        for status in error_statuses(r) {
            responses.insert(
                status.to_string(),
                json!({"description": error_description(status),
                       "content": json_content(error_schema.clone())}),
            );
        }
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{}{}", r.method.to_lowercase(), r.path.replace(['/', '{', '}', '-', '.'], "_")),
            "parameters": params,
            "responses": responses,
        });
        if r.access == Access::Public {
            op["security"] = json!([]);
        }
        if let Input::Json(f) | Input::Optional(f) = r.body {
            let required = matches!(r.body, Input::Json(_));
            bodies.push((
                r.path.to_string(),
                r.method.to_lowercase(),
                required,
                f(&mut requests_gen).to_value(),
            ));
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.to_lowercase()] = op;
    }
    // One set of named schemas: a type read differently from how it is
    // written keeps both, the read one as `NameInput`.
    let mut schemas = responses_gen.take_definitions(true);
    let mut inputs = requests_gen.take_definitions(true);
    let renamed: BTreeMap<String, String> = inputs
        .iter()
        .filter(|(name, s)| schemas.get(*name).is_some_and(|out| out != *s))
        .map(|(name, _)| (name.clone(), format!("{name}Input")))
        .collect();
    for (name, mut s) in std::mem::take(&mut inputs) {
        rename_refs(&mut s, &renamed);
        let name = renamed.get(&name).cloned().unwrap_or(name);
        schemas.insert(name, s);
    }
    for (path, method, required, mut s) in bodies {
        rename_refs(&mut s, &renamed);
        paths[&path][&method]["requestBody"] =
            json!({"required": required, "content": json_content(s)});
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "icpd management API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Projects, integrations, environments, runtimes, secrets, control commands, users and access control."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A session token from POST /api/v1/auth/login or a personal API token"},
                "session": {"type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE, "description": "Unsafe methods also need the X-CSRF-Token header"}
            },
            "schemas": schemas,
        },
        "security": [{"bearer": []}, {"session": []}],
    })
}

fn document(_api: &Api, _ctx: &mut Ctx) -> Result<Response> {
    ok(&Document(build()))
}
