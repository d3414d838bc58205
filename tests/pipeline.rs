//! The environments pipeline against the real server over TLS (issue 8):
//! data planes and their health, the project's pipeline order, deployment
//! records and the version each runtime reports, and configuration with a
//! secret served to the runtime on `GET /icp/config` (and by `icpd config
//! render`), never shown by the API and never logged.

use std::time::Duration;

use icpd::http::client::{Client, ClientResponse};
use serde_json::{json, Value};

use crate::harness::{assert_ack, assert_error, wait_for, ApiClient, Bridge, TestServer};

const DEV: &str = "/api/v1/projects/order-service/integrations/order-create/environments/dev";
const PROD: &str = "/api/v1/projects/order-service/integrations/order-create/environments/prod";

/// The secret value the configuration tests set; it must never show up
/// anywhere but the runtime's rendered configuration.
const DB_PASSWORD: &str = "pa55-W0rd-that-must-never-leak";

/// Creates project `order-service` with integrations `order-create` and `billing` (BI).
fn projects(admin: &mut ApiClient) {
    let r = admin.post("/api/v1/projects", &json!({"name": "Order Service"}));
    assert_eq!(r.status, 201, "{}", r.json());
    for name in ["Order Create", "Billing"] {
        let r = admin.post(
            "/api/v1/projects/order-service/integrations",
            &json!({"name": name, "runtimeType": "BI"}),
        );
        assert_eq!(r.status, 201, "{}", r.json());
    }
}

/// A registered runtime of `integration` in `env` (full heartbeat reporting `version`).
fn runtime(s: &TestServer, env: &str, integration: &str, name: &str, version: &str) -> Bridge {
    let mut b = Bridge::new(
        &s.secret(env, Some(("order-service", integration))),
        Some(name),
    );
    b.env = env.into();
    b.integration = integration.into();
    full(s, &b, version);
    b
}

fn full(s: &TestServer, b: &Bridge, version: &str) {
    assert_ack(&b.full_at(&mut s.runtime_client(), version));
}

/// `GET /icp/config` with a runtime's token and an optional query.
fn fetch(c: &mut Client, token: Option<&str>, query: &str) -> ClientResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    c.request("GET", &format!("/icp/config{query}"), &headers, &[])
        .unwrap()
}

fn runtime_view(api: &mut ApiClient, id: &str) -> Value {
    let r = api.get(&format!("/api/v1/runtimes/{id}"));
    assert_eq!(r.status, 200, "{}", r.json());
    r.json()
}

#[test]
fn data_planes_crud_with_the_default_and_health() {
    // Short, for the health changes below, yet well above one round of
    // their polling loop (a heartbeat, 200 ms, a GET) on a loaded machine.
    let s = TestServer::start(&["--heartbeat-timeout", "2s"]);
    let mut admin = s.admin();

    // The migration made the default data plane, holding dev and prod.
    let list = admin.get("/api/v1/data-planes").json();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["handle"], "default");
    assert_eq!(items[0]["kind"], "private");
    assert_eq!(items[0]["environments"], json!(["dev", "prod"]));
    assert_eq!(
        items[0]["health"],
        json!({"status": "empty", "running": 0, "offline": 0})
    );
    let env = admin.get("/api/v1/environments/prod").json();
    assert_eq!(env["dataPlane"], "default", "{env}");

    // Create, refuse bad input and duplicates.
    let r = admin.post(
        "/api/v1/data-planes",
        &json!({"name": "EU Cloud", "kind": "cloud", "region": "eu-west-1", "description": "AWS"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let eu = r.json();
    assert_eq!(eu["handle"], "eu-cloud");
    assert_eq!(eu["region"], "eu-west-1");
    assert_eq!(eu["environments"], json!([]));
    assert_error(
        &admin.post(
            "/api/v1/data-planes",
            &json!({"name": "X", "kind": "on-prem"}),
        ),
        400,
        "bad_request",
    );
    assert_error(
        &admin.post(
            "/api/v1/data-planes",
            &json!({"name": "EU Cloud", "kind": "private"}),
        ),
        409,
        "conflict",
    );
    assert_error(&admin.get("/api/v1/data-planes/nowhere"), 404, "not_found");

    // An environment names its data plane; an unknown one is refused.
    let r = admin.post(
        "/api/v1/environments",
        &json!({"name": "Staging", "dataPlane": "eu-cloud"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(r.json()["dataPlane"], "eu-cloud");
    assert_error(
        &admin.post(
            "/api/v1/environments",
            &json!({"name": "QA", "dataPlane": "mars"}),
        ),
        422,
        "unprocessable",
    );
    let eu = admin.get("/api/v1/data-planes/eu-cloud").json();
    assert_eq!(eu["environments"], json!(["staging"]));

    // A data plane holding environments cannot go; once empty it can.
    assert_error(
        &admin.delete("/api/v1/data-planes/eu-cloud"),
        409,
        "conflict",
    );
    let r = admin.patch(
        "/api/v1/data-planes/eu-cloud",
        &json!({"region": "eu-central-1"}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["region"], "eu-central-1");
    let r = admin.patch(
        "/api/v1/environments/staging",
        &json!({"dataPlane": "default"}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["dataPlane"], "default");
    assert_eq!(admin.delete("/api/v1/data-planes/eu-cloud").status, 204);

    // Only environment managers at organization scope change data planes.
    let mut dev = s.api_as("dana", Some("Developer"));
    assert_eq!(dev.get("/api/v1/data-planes").status, 200);
    assert_error(
        &dev.post(
            "/api/v1/data-planes",
            &json!({"name": "Mine", "kind": "private"}),
        ),
        403,
        "forbidden",
    );
    assert_error(&dev.delete("/api/v1/data-planes/default"), 403, "forbidden");

    // The CLI sees and creates the same.
    let out = s.cli_json(&[
        "data-plane",
        "create",
        "Factory Floor",
        "--kind",
        "private",
        "--region",
        "plant-7",
        "--json",
    ]);
    assert_eq!(out["handle"], "factory-floor");
    let listed = s.cli_json(&["data-plane", "list", "--json"]);
    let handles: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["handle"].as_str().unwrap())
        .collect();
    assert_eq!(handles, ["default", "factory-floor"]);
    let out = s.cli(&["env", "create", "Line 1", "--data-plane", "factory-floor"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audit = admin.get("/api/v1/audit?limit=100").json().to_string();
    assert!(audit.contains("icpd data-plane create"), "{audit}");

    // Health follows the runtimes of its environments.
    projects(&mut admin);
    let a = runtime(&s, "dev", "order-create", "a", "1.0.0");
    let _b = runtime(&s, "dev", "order-create", "b", "1.0.0");
    let health =
        |admin: &mut ApiClient| admin.get("/api/v1/data-planes/default").json()["health"].clone();
    // b's secret took a CLI process since a registered: a beats again.
    let mut c = s.runtime_client();
    assert_ack(&a.delta(&mut c));
    assert_eq!(
        health(&mut admin),
        json!({"status": "healthy", "running": 2, "offline": 0})
    );
    // b falls silent while a keeps beating: degraded; then a stops too: down.
    wait_for("b to go OFFLINE", Duration::from_secs(15), || {
        assert_ack(&a.delta(&mut c));
        std::thread::sleep(Duration::from_millis(200));
        health(&mut admin)["status"] == "degraded"
    });
    assert_eq!(
        health(&mut admin),
        json!({"status": "degraded", "running": 1, "offline": 1})
    );
    wait_for("a to go OFFLINE", Duration::from_secs(15), || {
        health(&mut admin)["status"] == "down"
    });
    let line = s.cli_json(&["data-plane", "list", "--json"]);
    assert_eq!(line[1]["environments"], json!(["line-1"]));
    assert_eq!(line[1]["health"]["status"], "empty");
}

#[test]
fn the_pipeline_shows_its_order_and_the_next_environment() {
    let s = TestServer::start(&[]);
    let mut admin = s.admin();
    projects(&mut admin);
    let r = admin.post("/api/v1/environments", &json!({"name": "Staging"}));
    assert_eq!(r.status, 201, "{}", r.json());
    let p = "/api/v1/projects/order-service/environments";
    // Until a subset is set, the default pipeline: the non-critical staging
    // went before the critical prod (issue 13).
    let all = admin.get(p).json();
    let order: Vec<(&str, Value)> = all["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["handle"].as_str().unwrap(), e["next"].clone()))
        .collect();
    assert_eq!(
        order,
        [
            ("dev", json!("staging")),
            ("staging", json!("prod")),
            ("prod", Value::Null)
        ]
    );
    let r = admin.put(p, &json!({"environments": ["prod", "dev"]}));
    assert_eq!(r.status, 200, "{}", r.json());
    let r = admin.put(p, &json!({"environments": ["dev", "staging", "prod"]}));
    assert_eq!(r.status, 200, "{}", r.json());
    let got = admin.get(p).json();
    let stages: Vec<(i64, &str, Value)> = got["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["position"].as_i64().unwrap(),
                e["handle"].as_str().unwrap(),
                e["next"].clone(),
            )
        })
        .collect();
    assert_eq!(
        stages,
        [
            (0, "dev", json!("staging")),
            (1, "staging", json!("prod")),
            (2, "prod", Value::Null)
        ]
    );
    assert_eq!(got["environments"][2]["critical"], true);
}

/// The handles of a project's pipeline, in order.
fn pipeline_of(admin: &mut ApiClient, project: &str) -> Vec<String> {
    let r = admin.get(&format!("/api/v1/projects/{project}/environments"));
    assert_eq!(r.status, 200, "{}", r.json());
    r.json()["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["handle"].as_str().unwrap().to_string())
        .collect()
}

/// Issue 13: creating an environment never appends it after a critical one
/// in the default pipeline (a project that chose no subset); a non-critical
/// one goes before the first critical one, a critical one last, and the
/// answer says where it went. Projects with their own pipeline keep it.
#[test]
fn new_environments_go_before_the_first_critical_one_in_the_default_pipeline() {
    let s = TestServer::start(&[]);
    let mut admin = s.admin();
    projects(&mut admin);
    let create = |admin: &mut ApiClient, body: Value| {
        let r = admin.post("/api/v1/environments", &body);
        assert_eq!(r.status, 201, "{}", r.json());
        r.json()
    };

    let staging = create(&mut admin, json!({"name": "Staging"}));
    assert_eq!(staging["handle"], "staging");
    assert_eq!(
        staging["placement"],
        json!({
            "after": "dev",
            "before": "prod",
            "projectsWithOwnPipeline": 0,
            "message": "placed after dev, before prod in the default pipeline"
        })
    );
    assert_eq!(
        pipeline_of(&mut admin, "order-service"),
        ["dev", "staging", "prod"]
    );

    // The next non-critical one follows the last non-critical one.
    let qa = create(&mut admin, json!({"name": "QA"}));
    assert_eq!(
        qa["placement"]["message"],
        "placed after staging, before prod in the default pipeline"
    );
    // A critical one goes last.
    let dr = create(&mut admin, json!({"name": "DR", "critical": true}));
    assert_eq!(
        (&dr["placement"]["after"], &dr["placement"]["before"]),
        (&json!("prod"), &Value::Null)
    );
    assert_eq!(
        dr["placement"]["message"],
        "placed last in the default pipeline, after prod"
    );
    // A non-critical one after that still lands before the first critical one.
    let perf = create(&mut admin, json!({"name": "Perf", "requiredApprovals": 2}));
    assert_eq!(perf["requiredApprovals"], 2);
    assert_eq!(
        perf["placement"]["message"],
        "placed after qa, before prod in the default pipeline"
    );
    let order = ["dev", "staging", "qa", "perf", "prod", "dr"];
    assert_eq!(pipeline_of(&mut admin, "order-service"), order);
    // Promotion follows it: the next environment after staging is qa.
    let stages = admin
        .get("/api/v1/projects/order-service/environments")
        .json();
    assert_eq!(stages["environments"][1]["next"], "qa");
    assert_eq!(stages["environments"][3]["next"], "prod");
    // The environment list keeps creation order (its cursor is the id).
    let listed: Vec<String> = admin.get("/api/v1/environments").json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["handle"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ["dev", "prod", "staging", "qa", "dr", "perf"]);

    // A project with its own pipeline keeps it; the answer says so.
    let r = admin.post("/api/v1/projects", &json!({"name": "Billing"}));
    assert_eq!(r.status, 201, "{}", r.json());
    let r = admin.put(
        "/api/v1/projects/billing/environments",
        &json!({"environments": ["dev", "prod"]}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let sandbox = create(&mut admin, json!({"name": "Sandbox"}));
    assert_eq!(sandbox["placement"]["projectsWithOwnPipeline"], 1);
    let message = sandbox["placement"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("placed after perf, before prod in the default pipeline; 1 project(s) with their own pipeline do not include it"),
        "{message}"
    );
    assert_eq!(pipeline_of(&mut admin, "billing"), ["dev", "prod"]);
    assert_eq!(
        pipeline_of(&mut admin, "order-service"),
        ["dev", "staging", "qa", "perf", "sandbox", "prod", "dr"]
    );
}

#[test]
fn deployment_records_and_the_version_each_runtime_reports() {
    let s = TestServer::start(&[]);
    let mut admin = s.admin();
    projects(&mut admin);
    let node = runtime(&s, "dev", "order-create", "node-1", "1.0.0");

    // Without a record there is nothing to compare with.
    let view = runtime_view(&mut admin, &node.runtime_id);
    assert_eq!(view["version"], "1.0.0");
    assert_eq!(view["versionMismatch"], Value::Null, "{view}");
    assert_eq!(view["deployedVersion"], Value::Null);
    assert_error(
        &admin.get(&format!("{DEV}/deployments/current")),
        404,
        "not_found",
    );

    // Validation: a version, an artifact, and a sha256 of 64 hex digits.
    for bad in [
        json!({"version": "", "artifact": "orders.jar"}),
        json!({"version": "1.1.0", "artifact": ""}),
        json!({"version": "1.1.0", "artifact": "orders.jar", "sha256": "abc"}),
        json!({"version": "1.1.0", "artifact": "orders.jar", "sha256": "z".repeat(64)}),
        json!({"version": "1.1.0", "artifact": "orders.jar", "extra": 1}),
    ] {
        assert_error(
            &admin.post(&format!("{DEV}/deployments"), &bad),
            400,
            "bad_request",
        );
    }
    let sha = "A1".repeat(32);
    let r = admin.post(
        &format!("{DEV}/deployments"),
        &json!({"version": "1.1.0", "artifact": "registry.example.com/orders:1.1.0", "sha256": sha}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let first = r.json();
    assert_eq!(first["sha256"], "a1".repeat(32));
    assert_eq!(first["createdBy"], "root");
    assert_eq!(first["environment"], "dev");
    assert!(first["createdAt"].as_str().unwrap().ends_with('Z'));

    // The runtime reports 1.0.0, the record says 1.1.0.
    let view = runtime_view(&mut admin, &node.runtime_id);
    assert_eq!(view["deployedVersion"], "1.1.0");
    assert_eq!(view["versionMismatch"], true, "{view}");
    let list = admin
        .get("/api/v1/runtimes?environment=dev&integration=order-create")
        .json();
    assert_eq!(list["items"][0]["versionMismatch"], true, "{list}");
    let cli = s.runtime(&node.runtime_id);
    assert_eq!(cli["versionMismatch"], true, "{cli}");

    // A runtime restarted on the new version matches.
    full(&s, &node, "1.1.0");
    let view = runtime_view(&mut admin, &node.runtime_id);
    assert_eq!(view["versionMismatch"], false, "{view}");

    // A new record supersedes the current one; history keeps both, newest first.
    let r = admin.post(
        &format!("{DEV}/deployments"),
        &json!({"version": "1.2.0", "artifact": "orders-1.2.0.bala"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let current = admin.get(&format!("{DEV}/deployments/current")).json();
    assert_eq!(current["version"], "1.2.0");
    assert_eq!(current["sha256"], Value::Null);
    let history = admin.get(&format!("{DEV}/deployments?limit=1")).json();
    assert_eq!(history["total"], 2);
    assert_eq!(history["items"][0]["version"], "1.2.0");
    let next = history["nextCursor"].as_str().unwrap();
    let older = admin
        .get(&format!("{DEV}/deployments?limit=1&cursor={next}"))
        .json();
    assert_eq!(older["items"][0]["id"], first["id"]);
    assert_eq!(older["nextCursor"], Value::Null);
    assert_eq!(
        runtime_view(&mut admin, &node.runtime_id)["versionMismatch"],
        true
    );

    // A developer records in dev but not in critical prod; a viewer only reads.
    let mut dev = s.api_as("dana", Some("Developer"));
    let r = dev.post(
        &format!("{DEV}/deployments"),
        &json!({"version": "1.3.0", "artifact": "orders-1.3.0.bala"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    assert_error(
        &dev.post(
            &format!("{PROD}/deployments"),
            &json!({"version": "1.3.0", "artifact": "orders-1.3.0.bala"}),
        ),
        403,
        "forbidden",
    );
    let mut viewer = s.api_as("vic", Some("Viewer"));
    assert_eq!(viewer.get(&format!("{DEV}/deployments")).status, 200);
    assert_error(
        &viewer.post(
            &format!("{DEV}/deployments"),
            &json!({"version": "9", "artifact": "x"}),
        ),
        403,
        "forbidden",
    );
    let audit = admin.get("/api/v1/audit?limit=100").json().to_string();
    assert!(
        audit.contains("deployment order-service/order-create@dev 1.3.0"),
        "{audit}"
    );
}

#[test]
fn configuration_with_a_secret_is_served_to_its_runtime_and_shown_nowhere_else() {
    let s = TestServer::start_with_env(&[], &[("ICP_LOG", "trace")]);
    let mut admin = s.admin();
    projects(&mut admin);
    let node = runtime(&s, "dev", "order-create", "node-1", "1.0.0");
    let mut rc = s.runtime_client();

    // Nothing set yet: revision 0, an empty document.
    let r = fetch(&mut rc, Some(&node.token()), "");
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.header("x-icp-config-revision"), Some("0"));
    assert!(r.body.is_empty());
    assert_eq!(admin.get(&format!("{DEV}/config")).json()["revision"], 0);

    let set = json!({
        "comment": "first values",
        "set": [
            {"section": "", "key": "appName", "value": "orders"},
            {"section": "myorg.orders", "key": "dbUrl", "value": "jdbc:postgresql://db.dev:5432/orders"},
            {"section": "myorg.orders", "key": "dbPassword", "value": DB_PASSWORD, "secret": true},
            {"section": "myorg.orders", "key": "port", "value": 8080},
            {"section": "myorg.orders", "key": "ratio", "value": 2, "type": "float"},
            {"section": "myorg.orders", "key": "enabled", "value": true},
            {"section": "myorg.orders", "key": "hosts", "value": ["a.dev", "b.dev"]},
            {"section": "myorg.orders", "key": "pool", "value": {"max": 10, "idle": "30s"}},
            {"section": "myorg.orders.api", "key": "timeout", "value": 1.5},
        ]
    });
    let r = admin.patch(&format!("{DEV}/config"), &set);
    assert_eq!(r.status, 200, "{}", r.json());
    let text = String::from_utf8_lossy(&r.body).to_string();
    assert!(!text.contains(DB_PASSWORD), "{text}");
    let view = r.json();
    assert_eq!(view["revision"], 1);
    assert_eq!(view["comment"], "first values");
    let password = view["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == "dbPassword")
        .unwrap()
        .clone();
    let mut keys: Vec<&str> = password
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["key", "secret", "section", "set", "updatedAt", "updatedBy"],
        "{password}"
    );
    assert_eq!(password["secret"], true);
    assert_eq!(password["set"], true);
    assert_eq!(password["updatedBy"], "root");
    let port = view["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == "port")
        .unwrap()
        .clone();
    assert_eq!(port["type"], "int");
    assert_eq!(port["value"], 8080);

    // Bad input changes nothing.
    for bad in [
        json!({}),
        json!({"set": [{"section": "a..b", "key": "k", "value": 1}]}),
        json!({"set": [{"section": "a", "key": "1k", "value": 1}]}),
        json!({"set": [{"section": "a", "key": "k", "value": null}]}),
        json!({"set": [{"section": "a", "key": "k", "value": "x", "type": "int"}]}),
        json!({"set": [{"section": "myorg", "key": "orders", "value": 1}]}),
        json!({"set": [{"section": "a", "key": "k", "value": 1}], "unset": [{"section": "a", "key": "k"}]}),
    ] {
        assert_error(
            &admin.patch(&format!("{DEV}/config"), &bad),
            400,
            "bad_request",
        );
    }
    assert_error(
        &admin.patch(
            &format!("{DEV}/config"),
            &json!({"unset": [{"section": "a", "key": "missing"}]}),
        ),
        422,
        "unprocessable",
    );
    assert_error(
        &admin.patch(
            &format!("{DEV}/config"),
            &json!({"expectedRevision": 0, "set": [{"key": "x", "value": 1}]}),
        ),
        409,
        "conflict",
    );

    // The runtime gets its TOML: decrypted secret, types kept, the revision.
    let r = fetch(
        &mut rc,
        Some(&node.token()),
        &format!("?runtimeId={}", node.runtime_id),
    );
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/toml"));
    assert_eq!(r.header("x-icp-config-revision"), Some("1"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let served = String::from_utf8(r.body.clone()).unwrap();
    let doc: toml::Table = served.parse().expect("valid TOML");
    assert_eq!(doc["appName"].as_str(), Some("orders"));
    let orders = doc["myorg"]["orders"].as_table().unwrap();
    assert_eq!(orders["dbPassword"].as_str(), Some(DB_PASSWORD));
    assert_eq!(
        orders["dbUrl"].as_str(),
        Some("jdbc:postgresql://db.dev:5432/orders")
    );
    assert_eq!(orders["port"].as_integer(), Some(8080));
    assert_eq!(orders["ratio"].as_float(), Some(2.0));
    assert_eq!(orders["enabled"].as_bool(), Some(true));
    assert_eq!(orders["hosts"].as_array().unwrap().len(), 2);
    assert_eq!(orders["pool"]["max"].as_integer(), Some(10));
    assert_eq!(orders["api"]["timeout"].as_float(), Some(1.5));
    assert!(served.contains("[myorg.orders]"), "{served}");

    // The API shows which revision the runtime fetched.
    let view = runtime_view(&mut admin, &node.runtime_id);
    assert_eq!(view["configRevision"], 1, "{view}");
    assert_eq!(view["currentConfigRevision"], 1);
    assert_eq!(view["configOutdated"], false);
    assert!(view["configFetchedAt"].is_string());

    // The offline rendering is the same document.
    let out = s.cli(&[
        "config",
        "render",
        "--env",
        "dev",
        "--project",
        "order-service",
        "--integration",
        "order-create",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), served);
    assert!(String::from_utf8_lossy(&out.stderr).contains("revision 1"));

    // A new revision: the secret stays secret without repeating the flag,
    // the runtime's fetched revision is now behind (takes effect after a restart).
    let r = admin.patch(
        &format!("{DEV}/config"),
        &json!({
            "expectedRevision": 1,
            "set": [{"section": "myorg.orders", "key": "dbPassword", "value": format!("{DB_PASSWORD}-2")},
                    {"section": "myorg.orders", "key": "port", "value": 8081}],
            "unset": [{"section": "", "key": "appName"}]
        }),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let v2 = r.json();
    assert_eq!(v2["revision"], 2);
    assert!(!v2.to_string().contains(DB_PASSWORD));
    assert!(v2["values"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["key"] != "appName"));
    let view = runtime_view(&mut admin, &node.runtime_id);
    assert_eq!(view["configRevision"], 1);
    assert_eq!(view["currentConfigRevision"], 2);
    assert_eq!(view["configOutdated"], true);
    let revisions = admin.get(&format!("{DEV}/config/revisions")).json();
    assert_eq!(revisions["total"], 2);
    assert_eq!(revisions["items"][0]["revision"], 2);
    assert_eq!(revisions["items"][1]["comment"], "first values");
    let old = admin.get(&format!("{DEV}/config?revision=1")).json();
    assert_eq!(old["revision"], 1);
    assert!(!old.to_string().contains(DB_PASSWORD));
    assert_error(
        &admin.get(&format!("{DEV}/config?revision=9")),
        404,
        "not_found",
    );
    let r = fetch(&mut rc, Some(&node.token()), "?runtime=node-1");
    assert_eq!(r.header("x-icp-config-revision"), Some("2"));
    let doc: toml::Table = String::from_utf8(r.body).unwrap().parse().unwrap();
    assert_eq!(
        doc["myorg"]["orders"]["dbPassword"].as_str(),
        Some(format!("{DB_PASSWORD}-2").as_str())
    );
    assert!(doc.get("appName").is_none());

    // Another integration's runtime cannot read this configuration.
    let other = runtime(&s, "dev", "billing", "bill-1", "1.0.0");
    let r = fetch(
        &mut rc,
        Some(&other.token()),
        &format!("?runtimeId={}", node.runtime_id),
    );
    assert_error(&r, 403, "forbidden");
    let r = fetch(&mut rc, Some(&other.token()), "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-icp-config-revision"), Some("0"));
    assert!(!String::from_utf8_lossy(&r.body).contains(DB_PASSWORD));
    // Nor can a secret bound to no integration, nor no token at all.
    let unbound = Bridge::new(&s.secret("dev", None), None);
    assert_error(
        &fetch(&mut rc, Some(&unbound.token()), ""),
        403,
        "forbidden",
    );
    assert_error(&fetch(&mut rc, None, ""), 401, "unauthorized");
    let r = rc
        .post_json("/icp/config", Some(&node.token()), &json!({}))
        .unwrap();
    assert_eq!(r.status, 405);

    // Permissions: a viewer reads, a developer changes dev but not prod.
    let mut viewer = s.api_as("vic", Some("Viewer"));
    assert!(!viewer
        .get(&format!("{DEV}/config"))
        .json()
        .to_string()
        .contains(DB_PASSWORD));
    assert_error(
        &viewer.patch(
            &format!("{DEV}/config"),
            &json!({"set": [{"key": "x", "value": 1}]}),
        ),
        403,
        "forbidden",
    );
    let mut dev = s.api_as("dana", Some("Developer"));
    assert_eq!(
        dev.patch(
            &format!("{DEV}/config"),
            &json!({"set": [{"key": "x", "value": 1}]})
        )
        .status,
        200
    );
    assert_error(
        &dev.patch(
            &format!("{PROD}/config"),
            &json!({"set": [{"key": "x", "value": 1}]}),
        ),
        403,
        "forbidden",
    );

    // Audit entries name the keys, never the values.
    let audit = admin.get("/api/v1/audit?limit=200").json().to_string();
    assert!(
        audit.contains("config order-service/order-create@dev revision 1; set appName, myorg.orders.dbUrl, myorg.orders.dbPassword"),
        "{audit}"
    );
    assert!(audit.contains("icpd config render"), "{audit}");
    assert!(!audit.contains(DB_PASSWORD));

    // icpd check opens every sealed value: 3 runtime secrets and the
    // password in each of the 3 revisions.
    let out = s.cli(&["check"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("opens all 6 stored secret(s)"), "{report}");

    // At ICP_LOG=trace, the server never logged the secret; the database
    // holds it only sealed.
    let log = s.log_text();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "trace logging is on"
    );
    assert!(
        !log.contains(DB_PASSWORD),
        "the secret is in the server log"
    );
    for file in ["icp.db", "icp.db-wal"] {
        let bytes = std::fs::read(s.data_dir.join(file)).unwrap_or_default();
        assert!(
            !bytes
                .windows(DB_PASSWORD.len())
                .any(|w| w == DB_PASSWORD.as_bytes()),
            "the secret is in clear in {file}"
        );
    }
}
