//! Authentication and access control on the management API: the first
//! admin, login, lock-out, logout, API tokens, CSRF on cookie sessions,
//! users/roles/groups/assignments, audit, and the route table's guarantees.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{assert_error, millis, wait_for, ApiClient, TestServer, TEST_PASSWORD};

#[test]
fn the_first_admin_must_change_the_initial_password() {
    use std::os::unix::fs::PermissionsExt;
    let s = TestServer::start(&[]);
    let file = s.data_dir.join("initial-admin-password");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let initial = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(initial.len() >= 16);
    assert_eq!(
        s.log_text().matches(&initial).count(),
        1,
        "logged exactly once"
    );
    let r = s.login("admin", &initial);
    assert_eq!(r.status, 200, "{}", r.json());
    let body = r.json();
    assert_eq!(body["user"]["mustChangePassword"], true);
    assert!(body["expiresAt"].as_str().unwrap().ends_with('Z'));
    let mut admin = ApiClient {
        client: s.management_client(),
        token: body["token"].as_str().unwrap().into(),
    };
    // Everything but the password change is refused until it is done.
    assert_error(&admin.get("/api/v1/users"), 403, "forbidden");
    assert_eq!(admin.get("/api/v1/auth/me").status, 200);
    let weak = admin.post(
        "/api/v1/auth/change-password",
        &json!({"currentPassword": initial, "newPassword": "short"}),
    );
    assert_error(&weak, 422, "unprocessable");
    let wrong = admin.post(
        "/api/v1/auth/change-password",
        &json!({"currentPassword": "nope", "newPassword": "a-long-new-password"}),
    );
    assert_error(&wrong, 403, "forbidden");
    let r = admin.post(
        "/api/v1/auth/change-password",
        &json!({"currentPassword": initial, "newPassword": "a-long-new-password"}),
    );
    assert_eq!(r.status, 204, "{}", r.json());
    assert_eq!(
        admin.get("/api/v1/users").status,
        200,
        "the same session continues"
    );
    assert_error(&s.login("admin", &initial), 401, "unauthorized");
    assert_eq!(s.login("admin", "a-long-new-password").status, 200);
    // A restart does not create another admin or rewrite the file.
    drop(admin);
}

#[test]
fn five_failed_logins_lock_the_account_with_retry_after() {
    let s = TestServer::start(&[]);
    s.create_user("alice", Some("Viewer"));
    for _ in 0..5 {
        assert_error(&s.login("alice", "wrong-password"), 401, "unauthorized");
    }
    let r = s.login("alice", TEST_PASSWORD);
    assert_error(&r, 429, "too_many_requests");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Unknown users get the same answer as wrong passwords.
    assert_error(&s.login("nobody", "wrong-password"), 401, "unauthorized");
    // Every attempt is in the audit log, with the user name and client address.
    let mut admin = s.admin();
    let log = admin.get("/api/v1/audit?actor=alice&limit=100").json();
    let attempts: Vec<&Value> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "POST /api/v1/auth/login")
        .collect();
    assert_eq!(attempts.len(), 6, "{log}");
    assert!(attempts.iter().all(|e| e["client"] == "127.0.0.1"));
    assert_eq!(attempts[0]["outcome"], "refused 429");
    assert_eq!(attempts[1]["outcome"], "refused 401");
}

#[test]
fn logout_ends_the_session() {
    let s = TestServer::start(&[]);
    let mut v = s.api_as("viewer", Some("Viewer"));
    assert_eq!(v.get("/api/v1/auth/me").status, 200);
    let r = v.post("/api/v1/auth/logout", &json!({}));
    assert_eq!(r.status, 204);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_error(&v.get("/api/v1/auth/me"), 401, "unauthorized");
}

#[test]
fn api_tokens_are_shown_once_work_expire_and_can_be_revoked() {
    let s = TestServer::start(&[]);
    let mut dev = s.api_as("dev", Some("Developer"));
    let r = dev.post("/api/v1/auth/tokens", &json!({"name": "ci pipeline"}));
    assert_eq!(r.status, 201, "{}", r.json());
    let created = r.json();
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("icpt_"));
    let list = dev.get("/api/v1/auth/tokens").json();
    assert_eq!(list["items"][0]["name"], "ci pipeline");
    assert!(!list.to_string().contains(&token) && list["items"][0].get("token").is_none());
    let mut script = ApiClient {
        client: s.management_client(),
        token: token.clone(),
    };
    let me = script.get("/api/v1/auth/me");
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["user"]["username"], "dev");
    let id = created["id"].as_str().unwrap();
    assert_eq!(dev.delete(&format!("/api/v1/auth/tokens/{id}")).status, 204);
    assert_error(&script.get("/api/v1/auth/me"), 401, "unauthorized");
    assert_error(
        &dev.delete(&format!("/api/v1/auth/tokens/{id}")),
        404,
        "not_found",
    );
    // Expiry.
    let short = dev
        .post(
            "/api/v1/auth/tokens",
            &json!({"name": "short", "expiresIn": "1s"}),
        )
        .json();
    let mut brief = ApiClient {
        client: s.management_client(),
        token: short["token"].as_str().unwrap().into(),
    };
    // Accepted while it has certainly not expired: answered before
    // expiresAt (a machine too slow for even that proves nothing here).
    let expires = millis(&short["expiresAt"]);
    let r = brief.get("/api/v1/auth/me");
    if icpd::time::now_millis() < expires {
        assert_eq!(r.status, 200, "{}", r.json());
    }
    wait_for("token expiry", Duration::from_secs(20), || {
        brief.get("/api/v1/auth/me").status == 401
    });
    assert!(
        icpd::time::now_millis() >= expires,
        "refused before expiresAt"
    );
    // Garbage tokens.
    let mut bad = ApiClient {
        client: s.management_client(),
        token: "icpt_00000000_nope".into(),
    };
    assert_error(&bad.get("/api/v1/auth/me"), 401, "unauthorized");
}

#[test]
fn cookie_sessions_need_the_csrf_token_for_changes() {
    let s = TestServer::start(&[]);
    s.create_user("ops", Some("Super Admin"));
    let r = s.login("ops", TEST_PASSWORD);
    let cookie = r.header("set-cookie").unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_string();
    let csrf = r.json()["csrfToken"].as_str().unwrap().to_string();
    let mut c = s.management_client();
    let host = s.management_url.trim_start_matches("https://").to_string();
    let origin = format!("https://{host}");
    let body = json!({"name": "readers"}).to_string();
    let get = c
        .request("GET", "/api/v1/groups", &[("Cookie", &session)], b"")
        .unwrap();
    assert_eq!(get.status, 200, "reads need no CSRF token");
    let no_token = c
        .request(
            "POST",
            "/api/v1/groups",
            &[("Cookie", &session)],
            body.as_bytes(),
        )
        .unwrap();
    assert_error(&no_token, 403, "forbidden");
    let wrong_origin = c
        .request(
            "POST",
            "/api/v1/groups",
            &[
                ("Cookie", &session),
                ("X-CSRF-Token", &csrf),
                ("Origin", "https://evil.example"),
            ],
            body.as_bytes(),
        )
        .unwrap();
    assert_error(&wrong_origin, 403, "forbidden");
    let wrong_token = c
        .request(
            "POST",
            "/api/v1/groups",
            &[("Cookie", &session), ("X-CSRF-Token", "x")],
            body.as_bytes(),
        )
        .unwrap();
    assert_error(&wrong_token, 403, "forbidden");
    let ok = c
        .request(
            "POST",
            "/api/v1/groups",
            &[
                ("Cookie", &session),
                ("X-CSRF-Token", &csrf),
                ("Origin", &origin),
            ],
            body.as_bytes(),
        )
        .unwrap();
    assert_eq!(ok.status, 201, "{}", ok.json());
}

#[test]
fn every_route_but_sign_in_health_and_openapi_refuses_anonymous_requests() {
    let s = TestServer::start(&[]);
    let mut c = s.management_client();
    let mut public = Vec::new();
    for route in icpd::http::api::routes() {
        let path: String = route
            .path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let r = c
            .request(
                route.method,
                &path,
                &[("Content-Type", "application/json")],
                b"{}",
            )
            .unwrap();
        if r.status == 401 {
            assert_eq!(r.json()["error"]["code"], "unauthorized");
        } else {
            public.push(route.path);
        }
    }
    assert_eq!(
        public,
        [
            "/api/v1/auth/login",
            "/api/v1/auth/providers",
            "/api/v1/auth/oidc/start",
            "/api/v1/auth/oidc/callback",
            "/api/v1/openapi.json"
        ]
    );
    assert_eq!(c.request("GET", "/healthz", &[], b"").unwrap().status, 200);
    assert!(icpd::http::api::routes().count() > 20);
}

/// Every route is in the document, under its summary.
fn lists_every_route(doc: &Value) {
    assert_eq!(doc["openapi"], "3.1.0");
    for route in icpd::http::api::routes() {
        let op = &doc["paths"][route.path][route.method.to_lowercase()];
        assert!(
            op.is_object(),
            "{} {} missing from openapi.json",
            route.method,
            route.path
        );
        assert_eq!(op["summary"], route.summary);
    }
}

/// Every `$ref` in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                out.push(r);
            }
            o.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// A schema that says nothing about its object: absent, `{}` or a bare
/// `{"type": "object"}`.
fn untyped(schema: &Value) -> bool {
    match schema.as_object() {
        None => true,
        Some(o) => o.is_empty() || (o.len() == 1 && o.get("type") == Some(&json!("object"))),
    }
}

#[test]
fn the_openapi_document_lists_and_types_every_route_and_every_ref_resolves() {
    let s = TestServer::start(&[]);
    let doc = s.openapi_document();
    lists_every_route(&doc);
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["Error"]["properties"]["error"].is_object());
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["in"], "cookie");
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let what = format!("{method} {path}");
            let route = icpd::http::api::routes()
                .find(|r| r.path == path && r.method.eq_ignore_ascii_case(method))
                .unwrap_or_else(|| panic!("{what} is no route"));
            if let Some(body) = op.get("requestBody") {
                let schema = &body["content"]["application/json"]["schema"];
                assert!(!untyped(schema), "{what}: untyped request body {schema}");
            } else {
                assert!(
                    matches!(route.body, icpd::http::api::Input::None),
                    "{what}: its body is not documented"
                );
            }
            let responses = op["responses"].as_object().unwrap();
            let success: Vec<_> = responses.keys().filter(|k| k.starts_with('2')).collect();
            assert!(!success.is_empty(), "{what}: no success response");
            for (status, answer) in responses {
                match answer.get("content").and_then(Value::as_object) {
                    // Only a 204 has no body.
                    None => assert_eq!(status, "204", "{what} {status}: no content"),
                    Some(content) => {
                        assert_ne!(status, "204", "{what}");
                        assert!(!content.is_empty(), "{what} {status}");
                        for (media, m) in content {
                            if media == "application/json" {
                                assert!(
                                    !untyped(&m["schema"]),
                                    "{what} {status}: untyped response {}",
                                    m["schema"]
                                );
                            }
                        }
                    }
                }
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        answer["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/Error",
                        "{what} {status}"
                    );
                }
            }
            let public = op.get("security") == Some(&json!([]));
            assert_eq!(
                public,
                route.access == icpd::http::api::Access::Public,
                "{what}"
            );
            assert!(public || responses.contains_key("401"), "{what}: 401");
            for p in op["parameters"].as_array().unwrap() {
                assert!(p["schema"]["type"].is_string(), "{what}: parameter {p}");
            }
        }
    }
    assert_eq!(operations, icpd::http::api::routes().count());
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > operations, "{} refs", all.len());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("$ref {r} outside components/schemas"));
        assert!(schemas[name].is_object(), "$ref {r} does not resolve");
    }
    // Every named schema is used by some operation or schema.
    let text = doc.to_string();
    for name in schemas.as_object().unwrap().keys() {
        assert!(
            text.contains(&format!("\"#/components/schemas/{name}\"")),
            "{name} is never used"
        );
    }
}

#[test]
fn only_user_managers_manage_users_roles_groups_and_assignments() {
    let s = TestServer::start(&[]);
    let mut root = s.admin();
    let mut admin = s.api_as("adm", Some("Admin"));
    for path in [
        "/api/v1/users",
        "/api/v1/roles",
        "/api/v1/groups",
        "/api/v1/role-assignments",
        "/api/v1/audit",
    ] {
        assert_error(&admin.get(path), 403, "forbidden");
        assert_eq!(root.get(path).status, 200, "{path}");
    }
    assert_error(
        &admin.post(
            "/api/v1/users",
            &json!({"username": "x", "password": "long-enough-pw"}),
        ),
        403,
        "forbidden",
    );

    // Users.
    let r = root.post(
        "/api/v1/users",
        &json!({"username": "carol", "password": "long-enough-pw", "displayName": "Carol"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    assert_error(
        &root.post(
            "/api/v1/users",
            &json!({"username": "carol", "password": "long-enough-pw"}),
        ),
        409,
        "conflict",
    );
    assert_error(
        &root.post(
            "/api/v1/users",
            &json!({"username": "bad name", "password": "long-enough-pw"}),
        ),
        400,
        "bad_request",
    );
    assert_error(
        &root.post(
            "/api/v1/users",
            &json!({"username": "dave", "password": "short"}),
        ),
        422,
        "unprocessable",
    );
    assert_eq!(
        root.patch("/api/v1/users/carol", &json!({"displayName": "Carol C."}))
            .json()["displayName"],
        "Carol C."
    );
    let reset = root
        .post("/api/v1/users/carol/reset-password", &json!({}))
        .json();
    let carol = s.login("carol", reset["password"].as_str().unwrap()).json();
    assert_eq!(carol["user"]["mustChangePassword"], true);
    assert_error(&root.delete("/api/v1/users/root"), 409, "conflict");

    // A custom role, a group with carol, and a project-scoped assignment through the group.
    let role = root
        .post(
            "/api/v1/roles",
            &json!({"name": "Auditor", "permissions": ["observability:view", "project:view"]}),
        )
        .json();
    assert_eq!(role["builtin"], false);
    assert_error(
        &root.post(
            "/api/v1/roles",
            &json!({"name": "X", "permissions": ["fly"]}),
        ),
        422,
        "unprocessable",
    );
    let roles = root.get("/api/v1/roles").json();
    let builtin = roles["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Viewer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_error(
        &root.delete(&format!("/api/v1/roles/{builtin}")),
        409,
        "conflict",
    );
    let group = root
        .post(
            "/api/v1/groups",
            &json!({"name": "auditors", "members": ["carol"]}),
        )
        .json();
    assert_eq!(group["members"], json!(["carol"]));
    s.secret("dev", Some(("shop", "cart")));
    let a = root.post("/api/v1/role-assignments", &json!({"role": "Auditor", "group": "auditors", "scope": {"type": "project", "project": "shop"}}));
    assert_eq!(a.status, 201, "{}", a.json());
    assert_eq!(
        a.json()["scope"],
        json!({"type": "project", "project": "shop"})
    );
    assert_error(
        &root.post("/api/v1/role-assignments", &json!({"role": "Auditor", "user": "carol", "scope": {"type": "project", "project": "nope"}})),
        404,
        "not_found",
    );
    assert_error(
        &root.post(
            "/api/v1/role-assignments",
            &json!({"role": "Auditor", "user": "carol", "group": "auditors"}),
        ),
        400,
        "bad_request",
    );
    let mut carol_api = ApiClient {
        client: s.management_client(),
        token: carol["token"].as_str().unwrap().into(),
    };
    let me = carol_api.get("/api/v1/auth/me").json();
    let perms = &me["permissions"][0];
    assert_eq!(perms["scope"], "project");
    assert_eq!(
        perms["permissions"],
        json!(["project:view", "observability:view"])
    );
    let id = a.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        root.delete(&format!("/api/v1/role-assignments/{id}"))
            .status,
        204
    );
    assert!(carol_api.get("/api/v1/auth/me").json()["permissions"]
        .as_array()
        .unwrap()
        .is_empty());

    // Every change above is in the audit log, attributed to root.
    let log = root.get("/api/v1/audit?actor=root&limit=500").json();
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "POST /api/v1/users",
        "PATCH /api/v1/users/{user}",
        "POST /api/v1/roles",
        "POST /api/v1/groups",
        "POST /api/v1/role-assignments",
        "DELETE /api/v1/role-assignments/{assignment}",
    ] {
        assert!(actions.contains(&want), "{want} not audited: {actions:?}");
    }
    // Keyset pagination over the audit log.
    let first = root.get("/api/v1/audit?limit=2").json();
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let next = first["nextCursor"].as_str().unwrap();
    let second = root
        .get(&format!("/api/v1/audit?limit=2&cursor={next}"))
        .json();
    let id = |v: &Value| v.as_str().unwrap().parse::<i64>().unwrap();
    assert!(id(&second["items"][0]["id"]) < id(&first["items"][1]["id"]));
    assert_eq!(first["total"], second["total"]);
}

#[test]
fn the_audit_log_filters_by_time_and_says_why_a_request_was_refused() {
    let s = TestServer::start(&[]);
    let mut root = s.admin();
    let mut viewer = s.api_as("vera", Some("Viewer"));
    // Refused: no permission, an unknown name, a body of the wrong type
    // (whose value must not be kept), and one that succeeds.
    assert_error(
        &viewer.post("/api/v1/projects", &json!({"name": "Shop"})),
        403,
        "forbidden",
    );
    assert_error(&root.delete("/api/v1/users/nobody"), 404, "not_found");
    let typo = root.post(
        "/api/v1/auth/change-password",
        &json!({"currentPassword": 31337271828_i64, "newPassword": "x"}),
    );
    assert_error(&typo, 400, "bad_request");
    assert_eq!(
        root.post("/api/v1/projects", &json!({"name": "Shop"}))
            .status,
        201
    );

    let log = root.get("/api/v1/audit?limit=10").json();
    let entry = |action: &str, actor: &str| -> Value {
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == action && e["actor"] == actor)
            .unwrap_or_else(|| panic!("no {action} by {actor} in {log}"))
            .clone()
    };
    let denied = entry("POST /api/v1/projects", "vera");
    assert_eq!(denied["outcome"], "refused 403");
    let reason = denied["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("this needs ") && reason.contains("project:manage"),
        "{denied}"
    );
    let missing = entry("DELETE /api/v1/users/{user}", "root");
    assert_eq!(missing["reason"], "no user named 'nobody'");
    let typo = entry("POST /api/v1/auth/change-password", "root");
    let reason = typo["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("invalid JSON body: invalid type: integer, expected"),
        "{reason}"
    );
    assert!(
        !log.to_string().contains("31337271828"),
        "the mistyped value is kept: {log}"
    );
    let made = entry("POST /api/v1/projects", "root");
    assert_eq!(made["outcome"], "ok");
    assert_eq!(made["reason"], Value::Null);
    assert!(made["id"].is_string(), "{made}");

    // from/to: RFC 3339 or Unix ms, to exclusive, from before to.
    let (first, last) = (millis(&denied["at"]), millis(&made["at"]));
    let count = |root: &mut ApiClient, q: &str| -> Vec<String> {
        let r = root.get(&format!("/api/v1/audit?limit=500&{q}"));
        assert_eq!(r.status, 200, "{q}: {}", r.json());
        r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["actor"].as_str().unwrap(),
                    e["action"].as_str().unwrap()
                )
            })
            .collect()
    };
    let window = count(&mut root, &format!("from={first}&to={}", last + 1));
    assert_eq!(
        window.first().unwrap(),
        "root POST /api/v1/projects",
        "{window:?}"
    );
    assert_eq!(
        window.last().unwrap(),
        "vera POST /api/v1/projects",
        "{window:?}"
    );
    assert_eq!(window.len(), 4, "{window:?}");
    assert!(!count(&mut root, &format!("to={last}"))
        .contains(&"root POST /api/v1/projects".to_string()));
    let iso = |ms: i64| icpd::time::rfc3339(ms);
    assert_eq!(
        count(
            &mut root,
            &format!("from={}&to={}", iso(first), iso(last + 1))
        ),
        window
    );
    assert_eq!(
        count(&mut root, &format!("since={first}&until={}", last + 1)),
        window,
        "the older names"
    );
    for q in [
        "from=yesterday",
        "to=2026-13-01T00:00:00Z",
        &format!("from={last}&to={first}"),
        &format!("from={first}&to={first}"),
    ] {
        assert_error(&root.get(&format!("/api/v1/audit?{q}")), 400, "bad_request");
    }
}

/// Found by schemathesis: renaming a custom role or a group to a name
/// another one has hit the database's UNIQUE constraint and answered 500.
#[test]
fn renaming_a_role_or_group_to_a_taken_name_is_a_conflict() {
    let s = TestServer::start(&[]);
    let mut root = s.admin();
    let role = root.post(
        "/api/v1/roles",
        &json!({"name": "Auditor", "permissions": ["integration:view"]}),
    );
    assert_eq!(role.status, 201, "{}", role.json());
    let id = role.json()["id"].as_str().unwrap().to_string();
    for taken in ["Admin", "admin"] {
        assert_error(
            &root.patch(&format!("/api/v1/roles/{id}"), &json!({"name": taken})),
            409,
            "conflict",
        );
    }
    let renamed = root.patch(&format!("/api/v1/roles/{id}"), &json!({"name": "auditor"}));
    assert_eq!(renamed.status, 200, "{}", renamed.json());

    for name in ["ops", "dev"] {
        let g = root.post("/api/v1/groups", &json!({"name": name}));
        assert_eq!(g.status, 201, "{}", g.json());
    }
    let groups = root.get("/api/v1/groups").json();
    let dev = groups["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "dev")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_error(
        &root.patch(&format!("/api/v1/groups/{dev}"), &json!({"name": "OPS"})),
        409,
        "conflict",
    );
    assert_eq!(
        root.patch(&format!("/api/v1/groups/{dev}"), &json!({"name": "Dev"}))
            .status,
        200
    );
}
