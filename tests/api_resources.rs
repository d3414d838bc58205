//! The management API's resources against the real server: environments,
//! projects, integrations, secrets and runtimes; status codes, keyset
//! pages, filters and who sees what.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::harness::{assert_ack, assert_error, ApiClient, Bridge, TestServer};

/// Creates project `order-service` with integration `order-create` (BI).
fn order_create(admin: &mut ApiClient) {
    let r = admin.post("/api/v1/projects", &json!({"name": "Order Service"}));
    assert_eq!(r.status, 201, "{}", r.json());
    let r = admin.post(
        "/api/v1/projects/order-service/integrations",
        &json!({"name": "Order Create", "runtimeType": "BI"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
}

/// A secret created through the API; returns the whole response body.
fn secret(api: &mut ApiClient, body: Value) -> Value {
    let r = api.post("/api/v1/secrets", &body);
    assert_eq!(r.status, 201, "{}", r.json());
    r.json()
}

fn bound_secret(api: &mut ApiClient, env: &str) -> String {
    secret(
        api,
        json!({"environment": env, "project": "order-service", "integration": "order-create"}),
    )["secret"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Walks every page of `path` (which has no query yet or ends in `?...`)
/// with `limit`, checking `total` on each page; returns the items in order.
fn walk(api: &mut ApiClient, path: &str, limit: usize, key: &str) -> Vec<String> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    let mut total = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let r = api.get(&url);
        assert_eq!(r.status, 200, "{url}: {}", r.json());
        let page = r.json();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit);
        let t = page["total"].as_i64().unwrap();
        assert_eq!(*total.get_or_insert(t), t, "total changed between pages");
        seen.extend(items.iter().map(|i| i[key].as_str().unwrap().to_string()));
        match page["nextCursor"].as_str() {
            Some(c) => {
                assert_eq!(items.len(), limit, "only the last page is short");
                cursor = Some(c.to_string());
            }
            None => break,
        }
    }
    assert_eq!(seen.len() as i64, total.unwrap(), "{seen:?}");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "duplicates across pages: {seen:?}"
    );
    seen
}

fn handles(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["handle"].as_str().unwrap())
        .collect()
}

#[test]
fn environments_crud_with_critical_flag_and_permissions() {
    let s = TestServer::start(&[]);
    let mut admin = s.admin();
    let mut viewer = s.api_as("v", Some("Viewer"));
    let mut nobody = s.api_as("nobody", None);

    let r = admin.get("/api/v1/environments");
    assert_eq!(r.status, 200);
    assert_eq!(handles(&r.json()), ["dev", "prod"]);
    assert_eq!(r.json()["total"], 2);
    assert_eq!(r.json()["items"][1]["critical"], true);
    let r = nobody.get("/api/v1/environments");
    assert_eq!(
        r.status, 200,
        "environments are visible to every signed-in user"
    );
    assert_eq!(r.json()["total"], 2);

    let r = admin.post(
        "/api/v1/environments",
        &json!({"name": "Staging EU", "description": "pre-production"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let e = r.json();
    assert_eq!(e["handle"], "staging-eu");
    assert_eq!(e["critical"], false);
    assert_eq!(e["description"], "pre-production");
    assert_error(
        &admin.post("/api/v1/environments", &json!({"name": "staging eu"})),
        409,
        "conflict",
    );
    assert_error(
        &admin.post("/api/v1/environments", &json!({"name": "  "})),
        400,
        "bad_request",
    );
    assert_error(
        &admin.post("/api/v1/environments", &json!({"critical": true})),
        400,
        "bad_request",
    );
    assert_error(
        &viewer.post("/api/v1/environments", &json!({"name": "qa"})),
        403,
        "forbidden",
    );

    let r = admin.patch(
        "/api/v1/environments/staging-eu",
        &json!({"critical": true, "name": "Staging (EU)"}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let r = viewer.get("/api/v1/environments/staging-eu");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["critical"], true);
    assert_eq!(r.json()["name"], "Staging (EU)");
    assert_eq!(r.json()["handle"], "staging-eu", "the handle never changes");
    assert_error(
        &viewer.patch(
            "/api/v1/environments/staging-eu",
            &json!({"critical": false}),
        ),
        403,
        "forbidden",
    );
    assert_error(
        &admin.patch("/api/v1/environments/nope", &json!({"critical": false})),
        404,
        "not_found",
    );
    assert_error(
        &viewer.delete("/api/v1/environments/staging-eu"),
        403,
        "forbidden",
    );
    assert_eq!(admin.delete("/api/v1/environments/staging-eu").status, 204);
    assert_error(
        &admin.get("/api/v1/environments/staging-eu"),
        404,
        "not_found",
    );
}

#[test]
fn environment_delete_conflicts_with_runtimes_and_active_secrets() {
    let s = TestServer::start(&[]);
    let mut admin = s.admin();
    order_create(&mut admin);
    admin.post("/api/v1/environments", &json!({"name": "qa"}));
    let created = secret(&mut admin, json!({"environment": "qa"}));
    let r = admin.delete("/api/v1/environments/qa");
    assert_error(&r, 409, "conflict");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 active secret"),
        "{}",
        r.json()
    );
    let key = created["keyId"].as_str().unwrap();
    assert_eq!(admin.delete(&format!("/api/v1/secrets/{key}")).status, 204);
    assert_eq!(
        admin.delete("/api/v1/environments/qa").status,
        204,
        "revoked secrets do not hold an environment"
    );

    let sec = bound_secret(&mut admin, "dev");
    let b = Bridge::new(&sec, Some("node-1"));
    assert_ack(&b.full(&mut s.runtime_client()));
    let r = admin.delete("/api/v1/environments/dev");
    assert_error(&r, 409, "conflict");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 runtime(s)"),
        "{}",
        r.json()
    );
}

#[test]
fn projects_crud_handle_availability_and_environment_subset() {
    let s = TestServer::start(&[]);
    let mut admin = s.admin();
    let mut dev = s.api_as("dev1", Some("Developer"));
    let mut viewer = s.api_as("v", Some("Viewer"));
    let mut nobody = s.api_as("nobody", None);

    let r = dev.get("/api/v1/projects/handle-availability?name=Order%20Service");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"handle": "order-service", "available": true})
    );
    assert_error(
        &dev.get("/api/v1/projects/handle-availability?name=---"),
        400,
        "bad_request",
    );
    assert_error(
        &dev.post("/api/v1/projects", &json!({"name": "Order Service"})),
        403,
        "forbidden",
    );
    let r = admin.post(
        "/api/v1/projects",
        &json!({"name": "Order Service", "description": "orders"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(r.json()["handle"], "order-service");
    assert_eq!(r.json()["description"], "orders");
    let r = dev.get("/api/v1/projects/handle-availability?name=order%20service");
    assert_eq!(r.json()["available"], false);
    assert_error(
        &admin.post("/api/v1/projects", &json!({"name": "order-service"})),
        409,
        "conflict",
    );
    assert_error(
        &admin.post("/api/v1/projects", &json!({"name": "x", "bogus": 1})),
        400,
        "bad_request",
    );

    let r = viewer.get("/api/v1/projects/order-service");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["name"], "Order Service");
    assert_error(
        &viewer.patch("/api/v1/projects/order-service", &json!({"name": "X"})),
        403,
        "forbidden",
    );
    let r = admin.patch(
        "/api/v1/projects/order-service",
        &json!({"name": "Orders", "description": "all orders"}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["name"], "Orders");
    assert_eq!(r.json()["handle"], "order-service");

    // No role: sees nothing, and items do not exist for them.
    let r = nobody.get("/api/v1/projects");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["total"], 0);
    assert_eq!(r.json()["items"], json!([]));
    assert_error(
        &nobody.get("/api/v1/projects/order-service"),
        404,
        "not_found",
    );
    assert_error(
        &nobody.delete("/api/v1/projects/order-service"),
        404,
        "not_found",
    );
    assert_error(&admin.get("/api/v1/projects/nope"), 404, "not_found");

    // Environments: all by default, then an ordered subset.
    let r = viewer.get("/api/v1/projects/order-service/environments");
    assert_eq!(r.status, 200);
    let names = |v: &Value| -> Vec<String> {
        v["environments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["handle"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&r.json()), ["dev", "prod"]);
    let r = admin.put(
        "/api/v1/projects/order-service/environments",
        &json!({"environments": ["prod", "dev"]}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(names(&r.json()), ["prod", "dev"]);
    let r = admin.put(
        "/api/v1/projects/order-service/environments",
        &json!({"environments": ["prod"]}),
    );
    assert_eq!(names(&r.json()), ["prod"]);
    assert_eq!(
        names(
            &viewer
                .get("/api/v1/projects/order-service/environments")
                .json()
        ),
        ["prod"]
    );
    assert_error(
        &admin.put(
            "/api/v1/projects/order-service/environments",
            &json!({"environments": ["nope"]}),
        ),
        422,
        "unprocessable",
    );
    assert_error(
        &admin.put(
            "/api/v1/projects/order-service/environments",
            &json!({"environments": []}),
        ),
        400,
        "bad_request",
    );
    assert_error(
        &viewer.put(
            "/api/v1/projects/order-service/environments",
            &json!({"environments": ["dev"]}),
        ),
        403,
        "forbidden",
    );

    // Delete: not while it has integrations.
    admin.post(
        "/api/v1/projects/order-service/integrations",
        &json!({"name": "order-create", "runtimeType": "BI"}),
    );
    assert_error(
        &admin.delete("/api/v1/projects/order-service"),
        409,
        "conflict",
    );
    assert_error(
        &dev.delete("/api/v1/projects/order-service"),
        403,
        "forbidden",
    );
    assert_eq!(
        admin
            .delete("/api/v1/projects/order-service/integrations/order-create")
            .status,
        204
    );
    assert_eq!(admin.delete("/api/v1/projects/order-service").status, 204);
    assert_error(
        &admin.get("/api/v1/projects/order-service"),
        404,
        "not_found",
    );
}

#[test]
fn lists_walk_by_cursor_with_a_stable_total() {
    let s = TestServer::start(&[]);
    let mut admin = s.admin();
    let mut want = Vec::new();
    for i in 0..7 {
        let r = admin.post("/api/v1/projects", &json!({"name": format!("Team {i}")}));
        assert_eq!(r.status, 201);
        want.push(format!("team-{i}"));
    }
    admin.post("/api/v1/projects", &json!({"name": "Billing"}));
    let all = walk(&mut admin, "/api/v1/projects", 3, "handle");
    assert_eq!(all.len(), 8);
    assert_eq!(
        walk(&mut admin, "/api/v1/projects?q=TEAM", 3, "handle"),
        want
    );
    assert_eq!(
        walk(&mut admin, "/api/v1/projects?q=team", 7, "handle"),
        want
    );
    assert_error(&admin.get("/api/v1/projects?cursor=!!"), 400, "bad_request");
    assert_error(&admin.get("/api/v1/projects?limit=0"), 400, "bad_request");
    assert_error(
        &admin.get("/api/v1/environments?cursor=bm9wZQ"),
        400,
        "bad_request",
    );

    for i in 0..5 {
        admin.post(
            "/api/v1/projects/team-0/integrations",
            &json!({"name": format!("flow {i}"), "runtimeType": "MI"}),
        );
    }
    let flows = walk(
        &mut admin,
        "/api/v1/projects/team-0/integrations",
        2,
        "handle",
    );
    assert_eq!(flows, ["flow-0", "flow-1", "flow-2", "flow-3", "flow-4"]);

    let mut keys = Vec::new();
    for _ in 0..5 {
        keys.push(secret(&mut admin, json!({"environment": "dev"}))["keyId"].clone());
    }
    let listed = walk(&mut admin, "/api/v1/secrets", 2, "keyId");
    assert_eq!(listed.len(), 5);
    for k in &keys {
        assert!(listed.iter().any(|l| l == k), "{k} missing");
    }
}

#[test]
fn integrations_crud_and_delete_rules() {
    let s = TestServer::start(&[]);
    let mut admin = s.admin();
    let mut dev = s.api_as("dev1", Some("Developer"));
    let mut viewer = s.api_as("v", Some("Viewer"));
    let mut nobody = s.api_as("nobody", None);
    admin.post("/api/v1/projects", &json!({"name": "Order Service"}));

    let r = dev.post(
        "/api/v1/projects/order-service/integrations",
        &json!({"name": "Order Create", "runtimeType": "BI", "description": "creates orders"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(r.json()["handle"], "order-create");
    assert_eq!(r.json()["project"], "order-service");
    assert_error(
        &dev.post(
            "/api/v1/projects/order-service/integrations",
            &json!({"name": "order create", "runtimeType": "BI"}),
        ),
        409,
        "conflict",
    );
    assert_error(
        &dev.post(
            "/api/v1/projects/order-service/integrations",
            &json!({"name": "other", "runtimeType": "XX"}),
        ),
        400,
        "bad_request",
    );
    assert_error(
        &viewer.post(
            "/api/v1/projects/order-service/integrations",
            &json!({"name": "other", "runtimeType": "BI"}),
        ),
        403,
        "forbidden",
    );
    assert_error(
        &admin.post(
            "/api/v1/projects/nope/integrations",
            &json!({"name": "other", "runtimeType": "BI"}),
        ),
        404,
        "not_found",
    );

    let path = "/api/v1/projects/order-service/integrations/order-create";
    let r = viewer.get(path);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["description"], "creates orders");
    assert_eq!(
        viewer
            .get("/api/v1/projects/order-service/integrations")
            .json()["total"],
        1
    );
    assert_error(&viewer.patch(path, &json!({"name": "x"})), 403, "forbidden");
    assert_error(&nobody.get(path), 404, "not_found");
    assert_error(
        &nobody.get("/api/v1/projects/order-service/integrations"),
        404,
        "not_found",
    );
    let r = dev.patch(path, &json!({"name": "Create Orders", "runtimeType": "MI"}));
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["runtimeType"], "MI");
    dev.patch(path, &json!({"runtimeType": "BI"}));

    // A RUNNING runtime holds the integration.
    let sec = bound_secret(&mut dev, "dev");
    let running = Bridge::new(&sec, Some("node-1"));
    let mut c = s.runtime_client();
    assert_ack(&running.full(&mut c));
    assert_error(
        &dev.patch(path, &json!({"runtimeType": "MI"})),
        409,
        "conflict",
    );
    assert_error(&viewer.delete(path), 403, "forbidden");
    let r = dev.delete(path);
    assert_error(&r, 409, "conflict");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&running.runtime_id),
        "{}",
        r.json()
    );

    // Reported OFFLINE, it goes with the integration, and its secret is revoked.
    let mut body = running.full_body();
    body["status"] = "OFFLINE".into();
    let r = c
        .post_json("/icp/heartbeat", Some(&running.token()), &body)
        .unwrap();
    assert_ack(&r);
    assert_eq!(dev.delete(path).status, 204);
    assert_error(&dev.get(path), 404, "not_found");
    assert_error(
        &admin.get(&format!("/api/v1/runtimes/{}", running.runtime_id)),
        404,
        "not_found",
    );
    let revoked = admin.get("/api/v1/secrets?status=revoked").json();
    assert_eq!(revoked["total"], 1, "{revoked}");
    assert_error(&running.delta(&mut c), 401, "unauthorized");
}

#[test]
fn secrets_create_list_revoke_and_expiry() {
    let s = TestServer::start(&[]);
    let mut admin = s.admin();
    let mut dev = s.api_as("dev1", Some("Developer"));
    let mut viewer = s.api_as("v", Some("Viewer"));
    let mut nobody = s.api_as("nobody", None);
    order_create(&mut admin);

    let created = secret(
        &mut dev,
        json!({"environment": "dev", "project": "order-service", "integration": "order-create", "expiresIn": "30d"}),
    );
    assert_eq!(created["environment"], "dev");
    assert_eq!(created["project"], "order-service");
    assert_eq!(created["integration"], "order-create");
    assert_eq!(created["status"], "active");
    assert!(created["expiresAt"].as_str().unwrap().ends_with('Z'));
    let sec = created["secret"].as_str().unwrap();
    assert!(sec.starts_with(created["keyId"].as_str().unwrap()));
    let toml: toml::Table = created["configToml"].as_str().unwrap().parse().unwrap();
    let bridge = &toml["wso2"]["icp"]["runtime"]["bridge"];
    assert_eq!(bridge["secret"].as_str(), Some(sec));
    assert_eq!(bridge["environment"].as_str(), Some("dev"));
    assert_eq!(bridge["integration"].as_str(), Some("order-create"));
    assert_eq!(bridge["serverUrl"].as_str(), Some(s.runtime_url.as_str()));

    // The secret registers a runtime.
    let b = Bridge::new(sec, Some("node-1"));
    let mut c = s.runtime_client();
    assert!(!assert_ack(&b.full(&mut c)));
    assert!(!assert_ack(&b.delta(&mut c)));

    // Who may create where.
    assert_error(
        &dev.post("/api/v1/secrets", &json!({"environment": "prod"})),
        403,
        "forbidden",
    );
    assert_error(
        &viewer.post("/api/v1/secrets", &json!({"environment": "dev"})),
        403,
        "forbidden",
    );
    secret(&mut admin, json!({"environment": "prod"}));
    assert_error(
        &dev.post("/api/v1/secrets", &json!({"environment": "nope"})),
        404,
        "not_found",
    );
    assert_error(
        &dev.post(
            "/api/v1/secrets",
            &json!({"environment": "dev", "project": "order-service", "integration": "nope"}),
        ),
        404,
        "not_found",
    );
    assert_error(
        &dev.post(
            "/api/v1/secrets",
            &json!({"environment": "dev", "project": "order-service"}),
        ),
        400,
        "bad_request",
    );
    assert_error(
        &dev.post(
            "/api/v1/secrets",
            &json!({"environment": "dev", "expiresIn": "soon"}),
        ),
        400,
        "bad_request",
    );
    let unbound = secret(&mut dev, json!({"environment": "dev"}));
    assert_eq!(unbound["project"], Value::Null);
    assert!(unbound["configToml"]
        .as_str()
        .unwrap()
        .parse::<toml::Table>()
        .is_ok());

    // Lists never carry key material; filters; visibility.
    let r = viewer.get("/api/v1/secrets");
    assert_eq!(r.status, 200);
    let list = r.json();
    assert_eq!(list["total"], 3);
    let text = list.to_string();
    for item in list["items"].as_array().unwrap() {
        assert!(item.get("secret").is_none() && item.get("configToml").is_none());
    }
    assert!(!text.contains(sec.split_once('.').unwrap().1));
    assert_eq!(
        admin.get("/api/v1/secrets?environment=prod").json()["total"],
        1
    );
    assert_eq!(
        admin
            .get("/api/v1/secrets?project=order-service&integration=order-create")
            .json()["total"],
        1
    );
    assert_eq!(
        admin.get("/api/v1/secrets?status=active").json()["total"],
        3
    );
    assert_error(
        &admin.get("/api/v1/secrets?status=bogus"),
        400,
        "bad_request",
    );
    let r = nobody.get("/api/v1/secrets");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["total"], 0);

    // Revoke: the next heartbeat is refused.
    let key = created["keyId"].as_str().unwrap();
    assert_error(
        &viewer.delete(&format!("/api/v1/secrets/{key}")),
        403,
        "forbidden",
    );
    assert_error(
        &nobody.delete(&format!("/api/v1/secrets/{key}")),
        404,
        "not_found",
    );
    assert_error(&dev.delete("/api/v1/secrets/ffffffff"), 404, "not_found");
    assert_eq!(dev.delete(&format!("/api/v1/secrets/{key}")).status, 204);
    assert_error(&b.delta(&mut c), 401, "unauthorized");
    let r = admin.get("/api/v1/secrets?status=revoked").json();
    assert_eq!(r["total"], 1);
    assert_eq!(r["items"][0]["keyId"], key);
    assert_eq!(
        admin.get("/api/v1/secrets?status=active").json()["total"],
        2
    );
}

#[test]
fn runtimes_list_filters_detail_and_delete() {
    let s = TestServer::start(&[]);
    let mut admin = s.admin();
    let mut viewer = s.api_as("v", Some("Viewer"));
    let mut nobody = s.api_as("nobody", None);
    order_create(&mut admin);
    admin.post(
        "/api/v1/projects/order-service/integrations",
        &json!({"name": "order-sync", "runtimeType": "MI"}),
    );
    let mut c = s.runtime_client();
    let dev_secret = bound_secret(&mut admin, "dev");
    let prod_secret = bound_secret(&mut admin, "prod");
    let mi_secret = secret(
        &mut admin,
        json!({"environment": "dev", "project": "order-service", "integration": "order-sync"}),
    )["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let mut dev_nodes = Vec::new();
    for n in 0..3 {
        let b = Bridge::new(&dev_secret, Some(&format!("dev-node-{n}")));
        assert_ack(&b.full(&mut c));
        dev_nodes.push(b);
    }
    let mut prod = Bridge::new(&prod_secret, Some("prod-node"));
    prod.env = "prod".into();
    assert_ack(&prod.full(&mut c));
    let mut mi = Bridge::new(&mi_secret, Some("mi-node"));
    mi.integration = "order-sync".into();
    mi.runtime_type = "MI".into();
    assert_ack(&mi.full(&mut c));

    let ids = walk(&mut admin, "/api/v1/runtimes", 2, "runtimeId");
    assert_eq!(ids.len(), 5);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "ordered by runtime id");
    let total = |api: &mut ApiClient, q: &str| {
        api.get(&format!("/api/v1/runtimes?{q}")).json()["total"].clone()
    };
    assert_eq!(total(&mut admin, "environment=dev"), 4);
    assert_eq!(total(&mut admin, "environment=prod"), 1);
    assert_eq!(total(&mut admin, "project=order-service"), 5);
    assert_eq!(total(&mut admin, "integration=order-sync"), 1);
    assert_eq!(total(&mut admin, "type=MI"), 1);
    assert_eq!(total(&mut admin, "status=RUNNING"), 5);
    assert_eq!(total(&mut admin, "status=offline"), 0);
    assert_eq!(total(&mut admin, "q=DEV-NODE"), 3);
    assert_eq!(
        total(&mut admin, &format!("q={}", &prod.runtime_id[..8])),
        1
    );
    assert_eq!(
        walk(
            &mut admin,
            "/api/v1/runtimes?environment=dev&integration=order-create",
            2,
            "runtimeId"
        )
        .len(),
        3
    );
    assert_error(&admin.get("/api/v1/runtimes?status=x"), 400, "bad_request");
    assert_error(&admin.get("/api/v1/runtimes?type=x"), 400, "bad_request");
    assert_eq!(total(&mut viewer, ""), 5);
    assert_eq!(total(&mut nobody, ""), 0);

    // Detail.
    let path = format!("/api/v1/runtimes/{}", mi.runtime_id);
    let r = viewer.get(&path);
    assert_eq!(r.status, 200, "{}", r.json());
    let d = r.json();
    assert_eq!(d["runtimeType"], "MI");
    assert_eq!(d["name"], "mi-node");
    assert_eq!(d["nodeInfo"]["platformName"], "ballerina");
    // An MI runtime's artifacts are MI's fifteen lists; the bridge's
    // listeners and log levels this stand-in also sent are not read.
    assert_eq!(d["miArtifacts"], json!({}));
    assert_eq!(d["artifacts"]["listeners"], json!([]));
    assert_eq!(d["statusHistory"][0]["status"], "RUNNING");
    assert_error(&nobody.get(&path), 404, "not_found");
    assert_error(&admin.get("/api/v1/runtimes/nope"), 404, "not_found");

    // Delete: the runtime must re-register.
    assert_error(&viewer.delete(&path), 403, "forbidden");
    assert_error(&nobody.delete(&path), 404, "not_found");
    assert_eq!(admin.delete(&path).status, 204);
    assert_error(&admin.get(&path), 404, "not_found");
    assert!(
        assert_ack(&mi.delta(&mut c)),
        "a deleted runtime must send a full heartbeat"
    );
    assert!(!assert_ack(&mi.full(&mut c)));
    assert_eq!(admin.get(&path).status, 200, "registered again");

    // Delete with revokeSecret: refused while another runtime uses the secret.
    let first = format!("/api/v1/runtimes/{}", dev_nodes[0].runtime_id);
    let r = admin.delete(&format!("{first}?revokeSecret=true"));
    assert_error(&r, 409, "conflict");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&dev_nodes[1].runtime_id));
    assert_eq!(admin.get(&first).status, 200, "nothing deleted on conflict");
    assert_error(
        &admin.delete(&format!("{first}?revokeSecret=maybe")),
        400,
        "bad_request",
    );
    let prod_path = format!("/api/v1/runtimes/{}", prod.runtime_id);
    assert_eq!(
        admin
            .delete(&format!("{prod_path}?revokeSecret=true"))
            .status,
        204
    );
    assert_error(&prod.delta(&mut c), 401, "unauthorized");
    assert_error(&prod.full(&mut c), 401, "unauthorized");
}

#[test]
fn a_developer_cannot_delete_production_runtimes() {
    let s = TestServer::start(&[]);
    let mut admin = s.admin();
    let mut dev = s.api_as("dev1", Some("Developer"));
    order_create(&mut admin);
    let mut c = s.runtime_client();
    let mut prod = Bridge::new(&bound_secret(&mut admin, "prod"), None);
    prod.env = "prod".into();
    assert_ack(&prod.full(&mut c));
    let d = Bridge::new(&bound_secret(&mut admin, "dev"), None);
    assert_ack(&d.full(&mut c));
    let r = dev.delete(&format!("/api/v1/runtimes/{}", prod.runtime_id));
    assert_error(&r, 403, "forbidden");
    assert_eq!(
        dev.delete(&format!("/api/v1/runtimes/{}", d.runtime_id))
            .status,
        204
    );
}

/// Every id-like field (`id`, `...Id`, `...Ids`, a deployment's
/// `promotedFrom`) under `v`, with its path; checked ones counted.
fn non_string_ids(v: &Value, path: &str, checked: &mut usize, bad: &mut Vec<String>) {
    let id_like =
        |k: &str| k == "id" || k.ends_with("Id") || k.ends_with("Ids") || k == "promotedFrom";
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                let here = format!("{path}.{k}");
                if id_like(k) {
                    let items: Vec<&Value> = match x {
                        Value::Array(a) => a.iter().collect(),
                        // A configuration's promotedFrom is {environment, revision}.
                        Value::Object(_) => vec![],
                        other => vec![other],
                    };
                    for item in items {
                        *checked += 1;
                        if !(item.is_string() || item.is_null()) {
                            bad.push(format!("{here} = {item}"));
                        }
                    }
                }
                non_string_ids(x, &here, checked, bad);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                non_string_ids(x, &format!("{path}[{i}]"), checked, bad);
            }
        }
        _ => {}
    }
}

#[test]
fn every_id_the_api_shows_is_a_string() {
    let s = TestServer::start(&[]);
    let mut admin = s.admin();
    order_create(&mut admin);
    let integration = "/api/v1/projects/order-service/integrations/order-create";
    assert_eq!(
        admin
            .post("/api/v1/environments", &json!({"name": "Staging"}))
            .status,
        201
    );
    let r = admin.put(
        "/api/v1/projects/order-service/environments",
        &json!({"environments": ["dev", "staging", "prod"]}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    // A deployment record and configuration in dev, promoted to staging
    // (whose record then names dev's in promotedFrom), and one to prod pending.
    let mut created = vec![];
    let r = admin.post(
        &format!("{integration}/environments/dev/deployments"),
        &json!({"version": "1.0.0", "artifact": "orders.bala"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    created.push(r.json());
    let r = admin.patch(
        &format!("{integration}/environments/dev/config"),
        &json!({"set": [{"section": "orders", "key": "url", "value": "http://db"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    for to in ["staging", "prod"] {
        let from = if to == "prod" { "staging" } else { "dev" };
        let r = admin.post(
            &format!("{integration}/promotions"),
            &json!({"from": from, "to": to}),
        );
        assert_eq!(r.status, 201, "{}", r.json());
        created.push(r.json());
    }
    let staged = admin
        .get(&format!(
            "{integration}/environments/staging/deployments/current"
        ))
        .json();
    assert!(staged["promotedFrom"].is_string(), "{staged}");
    assert_eq!(staged["promotedFrom"], created[0]["id"]);
    // A runtime, a command, users, roles, groups, an assignment, tokens.
    let node = Bridge::new(&bound_secret(&mut admin, "dev"), Some("n1"));
    assert_ack(&node.full(&mut s.runtime_client()));
    let r = admin.put(
        &format!("{integration}/environments/dev/listeners/listener_1"),
        &json!({"state": "disabled"}),
    );
    assert_eq!(r.status, 202, "{}", r.json());
    created.push(r.json());
    for (path, body) in [
        (
            "/api/v1/users",
            json!({"username": "carol", "password": "a long password 1"}),
        ),
        (
            "/api/v1/roles",
            json!({"name": "Auditor", "permissions": ["project:view"]}),
        ),
        (
            "/api/v1/groups",
            json!({"name": "ops", "members": ["carol"]}),
        ),
        ("/api/v1/auth/tokens", json!({"name": "ci"})),
        (
            "/api/v1/observability/ingest-tokens",
            json!({"name": "fb", "environment": "dev"}),
        ),
    ] {
        let r = admin.post(path, &body);
        assert_eq!(r.status, 201, "{path}: {}", r.json());
        created.push(r.json());
    }
    // A role named by its id, as a string or (as before ids were strings) a number.
    let role_id = created.iter().find(|c| c["name"] == "Auditor").unwrap()["id"].clone();
    let role_id = role_id.as_str().expect("a role's id is a string");
    let number: i64 = role_id.parse().unwrap();
    for role in [json!(role_id), json!(number)] {
        let r = admin.post(
            "/api/v1/role-assignments",
            &json!({"role": role, "group": "ops", "scope": {"type": "project", "project": "order-service"}}),
        );
        assert_eq!(r.status, 201, "{}", r.json());
        assert_eq!(r.json()["roleId"], role_id);
        created.push(r.json());
        let id = r.json()["id"].as_str().unwrap().to_string();
        // Paths take the same text.
        assert_eq!(
            admin
                .delete(&format!("/api/v1/role-assignments/{id}"))
                .status,
            204
        );
    }
    let r = admin.post(
        "/api/v1/role-assignments",
        &json!({"role": role_id, "user": "carol", "scope": {"type": "project", "project": "order-service"}}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let carol = s.login("carol", "a long password 1").json();

    let promotion = created[1]["id"].as_str().unwrap().to_string();
    let mut pages = vec![
        ("login".to_string(), carol),
        ("created".to_string(), Value::Array(created)),
    ];
    for path in [
        "/api/v1/auth/me".to_string(),
        "/api/v1/auth/tokens".into(),
        "/api/v1/users".into(),
        "/api/v1/users/carol".into(),
        "/api/v1/roles".into(),
        "/api/v1/groups".into(),
        "/api/v1/role-assignments".into(),
        "/api/v1/audit?limit=500".into(),
        "/api/v1/secrets".into(),
        "/api/v1/environments".into(),
        "/api/v1/data-planes".into(),
        "/api/v1/projects".into(),
        "/api/v1/projects/order-service/environments".into(),
        format!("{integration}/promotions"),
        "/api/v1/promotions".into(),
        format!("/api/v1/promotions/{promotion}"),
        "/api/v1/runtimes".into(),
        format!("/api/v1/runtimes/{}", node.runtime_id),
        format!("{integration}/environments/staging/deployments"),
        format!("{integration}/environments/staging/config"),
        format!("{integration}/environments/staging/config/revisions"),
        format!("{integration}/environments/dev/artifacts"),
        format!("{integration}/environments/dev/commands"),
        "/api/v1/observability/ingest-tokens".into(),
    ] {
        let r = admin.get(&path);
        assert_eq!(r.status, 200, "{path}: {}", r.json());
        pages.push((path, r.json()));
    }
    let (mut checked, mut bad) = (0, vec![]);
    for (path, body) in &pages {
        non_string_ids(body, path, &mut checked, &mut bad);
    }
    assert!(
        bad.is_empty(),
        "ids that are not strings:\n{}",
        bad.join("\n")
    );
    assert!(checked > 60, "only {checked} ids checked");
}
