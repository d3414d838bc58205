//! `GET /api/v1/openapi.json`: an OpenAPI 3.1 document generated from the
//! route table, so it can never miss a route.

use serde_json::{json, Map, Value};

use super::{ok, routes, Access, Api, Ctx, Route};
use crate::error::Result;
use crate::http::Response;

pub const ROUTES: &[Route] = &[Route {
    method: "GET",
    path: "/api/v1/openapi.json",
    access: Access::Public,
    summary: "This OpenAPI 3.1 document",
    query: &[],
    handler: document,
}];

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The document for the current route table.
pub fn build() -> Value {
    let mut paths = Map::new();
    for r in routes() {
        let mut params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        params.extend(r.query.iter().map(
            |q| json!({"name": q, "in": "query", "required": false, "schema": {"type": "string"}}),
        ));
        let mut responses = Map::new();
        let success = match r.method {
            "POST" if r.path.ends_with("/logout") || r.path.ends_with("/change-password") => "204",
            "POST" => "201",
            "DELETE" => "204",
            _ => "200",
        };
        responses.insert(
            success.into(),
            json!({"description": "success", "content": {"application/json": {}}}),
        );
        responses.insert("400".into(), error_response("invalid request"));
        if r.access != Access::Public {
            responses.insert("401".into(), error_response("not signed in"));
            responses.insert("403".into(), error_response("not allowed"));
        }
        responses.insert("404".into(), error_response("not found"));
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{}{}", r.method.to_lowercase(), r.path.replace(['/', '{', '}', '-', '.'], "_")),
            "parameters": params,
            "responses": responses,
        });
        if r.access == Access::Public {
            op["security"] = json!([]);
        }
        if matches!(r.method, "POST" | "PUT" | "PATCH") {
            op["requestBody"] =
                json!({"content": {"application/json": {"schema": {"type": "object"}}}});
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.to_lowercase()] = op;
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
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}
            }
        },
        "security": [{"bearer": []}, {"session": []}],
    })
}

fn document(_api: &Api, _ctx: &mut Ctx) -> Result<Response> {
    ok(&build())
}
