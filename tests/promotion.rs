//! Promotion with approvals against the real server over TLS (issue 8):
//! dev → staging (no approval, applied at once, with an override) →
//! prod (critical, waits for another user's approval), served to a
//! runtime in prod with the secret carried over; rejection, self-approval,
//! adjacency, one pending promotion per target, a promotion whose source
//! moved, and racing requests.

use std::sync::{Arc, Barrier};

use icpd::http::client::{Client, ClientResponse};
use serde_json::{json, Value};

use crate::harness::{assert_ack, assert_error, ApiClient, Bridge, TestServer};

const INTEGRATION: &str = "/api/v1/projects/order-service/integrations/order-create";
const PROMOTIONS: &str = "/api/v1/projects/order-service/integrations/order-create/promotions";

/// Secret values: they must never show up but in the runtime's rendered configuration.
const DB_PASSWORD: &str = "pa55-W0rd-promoted-never-leaks";
const PROD_TOKEN: &str = "prod-api-T0ken-never-leaks";

fn env_path(env: &str, rest: &str) -> String {
    format!("{INTEGRATION}/environments/{env}{rest}")
}

/// Project `order-service` with integration `order-create`, a non-critical
/// `staging`, and the pipeline dev → staging → prod.
fn setup(admin: &mut ApiClient) {
    let r = admin.post("/api/v1/projects", &json!({"name": "Order Service"}));
    assert_eq!(r.status, 201, "{}", r.json());
    let r = admin.post(
        "/api/v1/projects/order-service/integrations",
        &json!({"name": "Order Create", "runtimeType": "BI"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let r = admin.post("/api/v1/environments", &json!({"name": "Staging"}));
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(r.json()["requiredApprovals"], 0);
    let r = admin.put(
        "/api/v1/projects/order-service/environments",
        &json!({"environments": ["dev", "staging", "prod"]}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(
        admin.get("/api/v1/environments/prod").json()["requiredApprovals"],
        1
    );
}

fn deploy(admin: &mut ApiClient, env: &str, version: &str) -> Value {
    let r = admin.post(
        &env_path(env, "/deployments"),
        &json!({"version": version, "artifact": format!("registry.example.com/orders:{version}")}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    r.json()
}

fn promote(api: &mut ApiClient, body: Value) -> ClientResponse {
    api.post(PROMOTIONS, &body)
}

fn fetch(c: &mut Client, b: &Bridge) -> ClientResponse {
    let auth = format!("Bearer {}", b.token());
    c.request(
        "GET",
        &format!("/icp/config?runtimeId={}", b.runtime_id),
        &[("Authorization", auth.as_str())],
        &[],
    )
    .unwrap()
}

fn heartbeat(s: &TestServer, b: &Bridge, version: &str) {
    assert_ack(&b.full_at(&mut s.runtime_client(), version));
}

fn value<'a>(config: &'a Value, key: &str) -> &'a Value {
    config["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {config}"))
}

#[test]
fn dev_to_staging_to_prod_with_an_approval_reaches_the_runtime() {
    let s = TestServer::start_with_env(&[], &[("ICP_LOG", "trace")]);
    let mut root = s.admin();
    setup(&mut root);
    let mut bob = s.api_as("bob", Some("Admin"));

    // dev: configuration with a secret, and a deployment record.
    let r = root.patch(
        &env_path("dev", "/config"),
        &json!({"set": [
            {"section": "myorg.orders", "key": "dbUrl", "value": "jdbc:postgresql://db.dev/orders"},
            {"section": "myorg.orders", "key": "dbPassword", "value": DB_PASSWORD, "secret": true},
            {"section": "myorg.orders", "key": "poolSize", "value": 5},
        ]}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let dev_record = deploy(&mut root, "dev", "1.4.0");

    // A runtime in prod, on the previous version, fetched revision 0.
    let mut node = Bridge::new(
        &s.secret("prod", Some(("order-service", "order-create"))),
        Some("prod-1"),
    );
    node.env = "prod".into();
    heartbeat(&s, &node, "1.3.0");
    let mut rc = s.runtime_client();
    let r = fetch(&mut rc, &node);
    assert_eq!(r.header("x-icp-config-revision"), Some("0"));

    // dev → staging: no approval needed, applied at once with the override.
    let r = promote(
        &mut root,
        json!({"from": "dev", "to": "staging", "comment": "first cut",
               "overrides": [{"section": "myorg.orders", "key": "dbUrl", "type": "string",
                              "value": "jdbc:postgresql://db.staging/orders", "secret": false}]}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let staged = r.json();
    assert_eq!(staged["status"], "applied", "{staged}");
    assert_eq!(staged["requiredApprovals"], 0);
    assert_eq!(staged["appliedRevision"], 1);
    assert_eq!(staged["sourceConfigRevision"], 1);
    assert_eq!(
        staged["deployment"],
        json!({"version": "1.4.0", "artifact": "registry.example.com/orders:1.4.0", "sha256": null})
    );
    assert!(staged["appliedAt"].is_string());
    let config = root.get(&env_path("staging", "/config")).json();
    assert_eq!(
        value(&config, "dbUrl")["value"],
        "jdbc:postgresql://db.staging/orders"
    );
    assert_eq!(value(&config, "poolSize")["value"], 5);
    assert_eq!(value(&config, "dbPassword")["set"], true);
    assert_eq!(
        config["promotedFrom"],
        json!({"environment": "dev", "revision": 1})
    );
    let record = root
        .get(&env_path("staging", "/deployments/current"))
        .json();
    assert_eq!(record["version"], "1.4.0");
    assert_eq!(record["promotedFrom"], dev_record["id"]);

    // staging → prod: critical, waits for one approval.
    let r = promote(
        &mut root,
        json!({"from": "staging", "to": "prod",
               "overrides": [
                   {"section": "myorg.orders", "key": "dbUrl", "value": "jdbc:postgresql://db.prod/orders"},
                   {"section": "myorg.orders", "key": "apiToken", "value": PROD_TOKEN, "secret": true}]}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let pending = r.json();
    assert_eq!(pending["status"], "pending", "{pending}");
    assert_eq!(pending["requiredApprovals"], 1);
    assert_eq!(pending["mayApprove"], false, "the requester may not");
    let id = pending["id"].as_str().unwrap().to_string();
    let token = pending["overrides"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["key"] == "apiToken")
        .unwrap()
        .clone();
    assert_eq!(
        token,
        json!({"section": "myorg.orders", "key": "apiToken", "secret": true, "set": true})
    );
    assert_error(
        &root.get(&env_path("prod", "/deployments/current")),
        404,
        "not_found",
    );

    // The approvals inbox shows it to bob, who may approve.
    let inbox = bob.get("/api/v1/promotions?status=pending").json();
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1, "{inbox}");
    assert_eq!(inbox["items"][0]["id"], id.as_str());
    assert_eq!(inbox["items"][0]["mayApprove"], true);

    // The requester's own approval is refused; bob's applies it.
    let r = root.post(&format!("/api/v1/promotions/{id}/approve"), &json!({}));
    assert_error(&r, 403, "forbidden");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("another user must approve"));
    let r = bob.post(
        &format!("/api/v1/promotions/{id}/approve"),
        &json!({"comment": "looks good"}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let applied = r.json();
    assert_eq!(applied["status"], "applied", "{applied}");
    assert_eq!(applied["approvals"][0]["user"], "bob");
    assert_eq!(applied["approvals"][0]["comment"], "looks good");
    assert_eq!(applied["appliedRevision"], 1);
    assert_error(
        &bob.post(&format!("/api/v1/promotions/{id}/approve"), &json!({})),
        409,
        "conflict",
    );

    // The runtime still runs the previous version and configuration: it
    // takes the promotion when it restarts.
    let view = root
        .get(&format!("/api/v1/runtimes/{}", node.runtime_id))
        .json();
    assert_eq!(view["deployedVersion"], "1.4.0", "{view}");
    assert_eq!(view["versionMismatch"], true);
    assert_eq!(view["configRevision"], 0);
    assert_eq!(view["currentConfigRevision"], 1);
    assert_eq!(view["configOutdated"], true);

    // On restart it fetches the promoted values: the override, the carried
    // secret decrypted, the secret override, and the revision.
    let r = fetch(&mut rc, &node);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-icp-config-revision"), Some("1"));
    let doc: toml::Table = String::from_utf8(r.body.clone()).unwrap().parse().unwrap();
    let orders = doc["myorg"]["orders"].as_table().unwrap();
    assert_eq!(
        orders["dbUrl"].as_str(),
        Some("jdbc:postgresql://db.prod/orders")
    );
    assert_eq!(orders["dbPassword"].as_str(), Some(DB_PASSWORD));
    assert_eq!(orders["apiToken"].as_str(), Some(PROD_TOKEN));
    assert_eq!(orders["poolSize"].as_integer(), Some(5));
    heartbeat(&s, &node, "1.4.0");
    let view = root
        .get(&format!("/api/v1/runtimes/{}", node.runtime_id))
        .json();
    assert_eq!(view["versionMismatch"], false, "{view}");
    assert_eq!(view["configRevision"], 1);
    assert_eq!(view["configOutdated"], false);
    let prod = root.get(&env_path("prod", "/config")).json();
    assert_eq!(
        prod["promotedFrom"],
        json!({"environment": "staging", "revision": 1})
    );

    // The secrets are nowhere else: promotions, configuration, audit, log.
    let mut seen = String::new();
    for path in [
        PROMOTIONS.to_string(),
        "/api/v1/promotions".to_string(),
        format!("/api/v1/promotions/{id}"),
        env_path("dev", "/config"),
        env_path("staging", "/config"),
        env_path("prod", "/config"),
        env_path("prod", "/config/revisions"),
        "/api/v1/audit?limit=200".to_string(),
    ] {
        let r = root.get(&path);
        assert_eq!(r.status, 200, "{path}: {}", r.json());
        seen.push_str(&String::from_utf8_lossy(&r.body));
    }
    seen.push_str(&s.log_text());
    for secret in [DB_PASSWORD, PROD_TOKEN] {
        assert!(!seen.contains(secret), "{secret} leaked");
    }
    let list = root.get(PROMOTIONS).json();
    assert_eq!(list["total"], 2);
    assert_eq!(list["items"][0]["id"], id.as_str(), "newest first");

    // Every step is audited, naming the promotion.
    let audit = root.get("/api/v1/audit?limit=200").json().to_string();
    assert!(
        audit.contains("order-service/order-create dev -> staging (applied)"),
        "{audit}"
    );
    assert!(
        audit.contains(&format!("promotion {id} approve")),
        "{audit}"
    );
    assert!(
        audit.contains(&format!(
            "promotion {id} order-service/order-create staging -> prod (applied)"
        )),
        "{audit}"
    );
}

#[test]
fn rejection_cancellation_permissions_adjacency_and_one_pending_per_target() {
    let s = TestServer::start(&[]);
    let mut root = s.admin();
    setup(&mut root);
    let mut bob = s.api_as("bob", Some("Admin"));
    let mut dana = s.api_as("dana", Some("Developer"));

    // Only the next environment, from one with a record.
    let r = promote(&mut root, json!({"from": "dev", "to": "prod"}));
    assert_error(&r, 422, "unprocessable");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("goes to 'staging'"),
        "{}",
        r.json()
    );
    assert_error(
        &promote(&mut root, json!({"from": "prod", "to": "dev"})),
        422,
        "unprocessable",
    );
    assert_error(
        &promote(&mut root, json!({"from": "dev", "to": "staging"})),
        422,
        "unprocessable",
    );
    assert_error(
        &promote(&mut root, json!({"from": "dev", "to": "nowhere"})),
        422,
        "unprocessable",
    );
    deploy(&mut root, "dev", "2.0.0");
    for bad in [
        json!({"from": "dev", "to": "staging", "overrides": [{"key": "1x", "value": 1}]}),
        json!({"from": "dev", "to": "staging", "overrides": [{"key": "x", "value": "a", "type": "int"}]}),
        json!({"from": "dev", "to": "staging", "overrides": [{"key": "x", "value": 1}, {"key": "x", "value": 2}]}),
        json!({"from": "dev", "to": "staging", "extra": true}),
    ] {
        assert_error(&promote(&mut root, bad), 400, "bad_request");
    }
    assert_eq!(
        root.get(PROMOTIONS).json()["total"],
        0,
        "nothing was written"
    );

    // A developer promotes into staging, but not into critical prod.
    let r = promote(&mut dana, json!({"from": "dev", "to": "staging"}));
    assert_eq!(r.status, 201, "{}", r.json());
    assert_eq!(r.json()["status"], "applied");
    assert_error(
        &promote(&mut dana, json!({"from": "staging", "to": "prod"})),
        403,
        "forbidden",
    );

    // One pending promotion per target.
    let first = promote(&mut root, json!({"from": "staging", "to": "prod"}));
    assert_eq!(first.status, 201, "{}", first.json());
    let id = first.json()["id"].as_str().unwrap().to_string();
    let r = promote(&mut root, json!({"from": "staging", "to": "prod"}));
    assert_error(&r, 409, "conflict");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&format!("promotion {id}")));

    // Rejection: not by the requester, not by a developer, not without a comment.
    let reject = |api: &mut ApiClient, body: Value| {
        api.post(&format!("/api/v1/promotions/{id}/reject"), &body)
    };
    assert_error(
        &reject(&mut root, json!({"comment": "no"})),
        403,
        "forbidden",
    );
    assert_error(
        &reject(&mut dana, json!({"comment": "no"})),
        403,
        "forbidden",
    );
    assert_error(
        &dana.post(&format!("/api/v1/promotions/{id}/approve"), &json!({})),
        403,
        "forbidden",
    );
    assert_error(&reject(&mut bob, json!({})), 400, "bad_request");
    let r = reject(&mut bob, json!({"comment": "not during the freeze"}));
    assert_eq!(r.status, 200, "{}", r.json());
    let rejected = r.json();
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["rejection"]["user"], "bob");
    assert_eq!(rejected["rejection"]["comment"], "not during the freeze");
    assert_error(
        &bob.post(&format!("/api/v1/promotions/{id}/approve"), &json!({})),
        409,
        "conflict",
    );

    // Cancellation: only by the requester.
    let r = promote(&mut root, json!({"from": "staging", "to": "prod"}));
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_error(
        &bob.post(&format!("/api/v1/promotions/{id}/cancel"), &json!({})),
        403,
        "forbidden",
    );
    let r = root.post(&format!("/api/v1/promotions/{id}/cancel"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["status"], "cancelled");
    assert_eq!(r.json()["cancellation"]["user"], "root");

    // Two approvals required: the same user cannot give both.
    let r = root.patch(
        "/api/v1/environments/prod",
        &json!({"requiredApprovals": 2}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["requiredApprovals"], 2);
    assert_error(
        &root.patch(
            "/api/v1/environments/prod",
            &json!({"requiredApprovals": 11}),
        ),
        400,
        "bad_request",
    );
    let r = promote(&mut root, json!({"from": "staging", "to": "prod"}));
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["requiredApprovals"], 2);
    let approve =
        |api: &mut ApiClient| api.post(&format!("/api/v1/promotions/{id}/approve"), &json!({}));
    let r = approve(&mut bob);
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["status"], "pending");
    assert_error(&approve(&mut bob), 409, "conflict");
    let mut carol = s.api_as("carol", Some("Admin"));
    let r = approve(&mut carol);
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["status"], "applied");
    assert_eq!(r.json()["approvals"].as_array().unwrap().len(), 2);
    assert_eq!(
        root.get(&env_path("prod", "/deployments/current")).json()["version"],
        "2.0.0"
    );

    // Filters, unknown ids, and the viewer's view.
    let listed = root.get("/api/v1/promotions?status=rejected").json();
    assert_eq!(listed["total"], 1, "{listed}");
    assert_error(
        &root.get("/api/v1/promotions?status=maybe"),
        400,
        "bad_request",
    );
    assert_error(&root.get("/api/v1/promotions/999"), 404, "not_found");
    assert_error(&root.get("/api/v1/promotions/abc"), 404, "not_found");
    let mut nobody = s.api_as("nobody", None);
    assert_error(
        &nobody.get(&format!("/api/v1/promotions/{id}")),
        404,
        "not_found",
    );
}

#[test]
fn a_promotion_whose_source_or_target_moved_fails_on_approval() {
    let s = TestServer::start(&[]);
    let mut root = s.admin();
    setup(&mut root);
    let mut bob = s.api_as("bob", Some("Admin"));
    deploy(&mut root, "dev", "3.0.0");
    let r = promote(&mut root, json!({"from": "dev", "to": "staging"}));
    assert_eq!(r.json()["status"], "applied", "{}", r.json());

    // The source gets a new record after the request: approving fails.
    let r = promote(&mut root, json!({"from": "staging", "to": "prod"}));
    let id = r.json()["id"].as_str().unwrap().to_string();
    deploy(&mut root, "staging", "3.0.1-hotfix");
    let r = bob.post(&format!("/api/v1/promotions/{id}/approve"), &json!({}));
    assert_error(&r, 409, "conflict");
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("new deployment record"), "{message}");
    let failed = root.get(&format!("/api/v1/promotions/{id}")).json();
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed["failure"].as_str().unwrap().contains("'staging'"));
    assert_eq!(failed["approvals"][0]["user"], "bob");
    assert_error(
        &root.get(&env_path("prod", "/deployments/current")),
        404,
        "not_found",
    );

    // The target changes after the request: approving fails too.
    let r = promote(&mut root, json!({"from": "staging", "to": "prod"}));
    assert_eq!(r.status, 201, "{}", r.json());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let r = root.patch(
        &env_path("prod", "/config"),
        &json!({"set": [{"key": "hotfix", "value": true}]}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let r = bob.post(&format!("/api/v1/promotions/{id}/approve"), &json!({}));
    assert_error(&r, 409, "conflict");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("'prod' changed"));
    assert_eq!(
        root.get(&format!("/api/v1/promotions/{id}")).json()["status"],
        "failed"
    );
    assert_eq!(
        root.get(&env_path("prod", "/config")).json()["revision"],
        1,
        "nothing was written"
    );
}

/// Secret values of the diff test: compared, never shown.
const OLD_PASSWORD: &str = "old-pw-S3cret-of-the-diff";
const NEW_PASSWORD: &str = "new-pw-S3cret-of-the-diff";
const ADDED_KEY: &str = "added-api-K3y-of-the-diff";
const SAME_SECRET: &str = "mq-pw-unchanged-of-the-diff";

fn config(api: &mut ApiClient, env: &str, body: Value) {
    let r = api.patch(&env_path(env, "/config"), &body);
    assert_eq!(r.status, 200, "{}", r.json());
}

fn awaiting(api: &mut ApiClient) -> i64 {
    let r = api.get("/api/v1/promotions/awaiting-me");
    assert_eq!(r.status, 200, "{}", r.json());
    r.json()["count"].as_i64().unwrap()
}

/// The pending promotions the inbox shows `api` with `mayApprove`.
fn may_approve(api: &mut ApiClient) -> i64 {
    let inbox = api.get("/api/v1/promotions?status=pending").json();
    inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["mayApprove"] == true)
        .count() as i64
}

/// Issue 13: approvals are not blind. A promotion says what it changes in
/// the target: the deployed version from → to, every configuration key old
/// → new (a secret only as added/changed/unchanged, its value nowhere in
/// the answer), keys added and removed. And each user can ask, cheaply,
/// how many promotions wait for their decision.
#[test]
fn a_promotion_shows_what_changes_in_the_target_and_who_it_waits_for() {
    let s = TestServer::start(&[]);
    let mut root = s.admin();
    setup(&mut root);
    let mut bob = s.api_as("bob", Some("Admin"));
    let mut dana = s.api_as("dana", Some("Developer"));
    let mut vic = s.api_as("vic", Some("Viewer"));

    // staging holds 1.0.0 and dev's first configuration, promoted.
    config(
        &mut root,
        "dev",
        json!({"set": [
            {"section": "myorg.orders", "key": "dbUrl", "value": "jdbc:postgresql://db.dev/orders"},
            {"section": "myorg.orders", "key": "dbPassword", "value": OLD_PASSWORD, "secret": true},
            {"section": "myorg.orders", "key": "mqPassword", "value": SAME_SECRET, "secret": true},
            {"section": "myorg.orders", "key": "poolSize", "value": 5},
            {"section": "myorg.orders", "key": "legacyMode", "value": true},
        ]}),
    );
    deploy(&mut root, "dev", "1.0.0");
    let r = promote(&mut root, json!({"from": "dev", "to": "staging"}));
    assert_eq!(r.json()["status"], "applied", "{}", r.json());
    for (env, n) in [("staging", 1), ("prod", 2)] {
        let r = root.patch(
            &format!("/api/v1/environments/{env}"),
            &json!({"requiredApprovals": n}),
        );
        assert_eq!(r.status, 200, "{}", r.json());
    }

    // dev moves on: a version, a changed plain key, a changed secret, an
    // added plain and an added secret key, a removed key.
    config(
        &mut root,
        "dev",
        json!({"set": [
            {"section": "myorg.orders", "key": "dbPassword", "value": NEW_PASSWORD, "secret": true},
            {"section": "myorg.orders", "key": "timeoutSeconds", "value": 30},
            {"section": "myorg.orders", "key": "apiKey", "value": ADDED_KEY, "secret": true},
        ], "unset": [{"section": "myorg.orders", "key": "legacyMode"}]}),
    );
    deploy(&mut root, "dev", "1.1.0");
    let r = promote(
        &mut root,
        json!({"from": "dev", "to": "staging", "overrides": [
            {"section": "myorg.orders", "key": "dbUrl", "value": "jdbc:postgresql://db.staging/orders"}]}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let requested = r.json();
    assert_eq!(requested["status"], "pending", "{requested}");
    let id = requested["id"].as_str().unwrap().to_string();

    let r = bob.get(&format!("/api/v1/promotions/{id}"));
    assert_eq!(r.status, 200, "{}", r.json());
    let body = String::from_utf8_lossy(&r.body).to_string();
    for secret in [OLD_PASSWORD, NEW_PASSWORD, ADDED_KEY, SAME_SECRET] {
        assert!(!body.contains(secret), "{secret} is in {body}");
    }
    let changes = r.json()["changes"].clone();
    assert_eq!(
        changes["deployment"],
        json!({
            "from": {"version": "1.0.0", "artifact": "registry.example.com/orders:1.0.0", "sha256": null},
            "to": {"version": "1.1.0", "artifact": "registry.example.com/orders:1.1.0", "sha256": null},
            "changed": true
        })
    );
    let section = "myorg.orders";
    assert_eq!(
        changes["configuration"],
        json!({
            "fromRevision": 1,
            "newRevision": true,
            "added": 2, "removed": 1, "changed": 2, "unchanged": 2,
            "keys": [
                {"section": section, "key": "apiKey", "change": "added", "secret": true},
                {"section": section, "key": "dbPassword", "change": "changed", "secret": true},
                {"section": section, "key": "dbUrl", "change": "changed", "secret": false,
                 "from": "jdbc:postgresql://db.dev/orders", "to": "jdbc:postgresql://db.staging/orders"},
                {"section": section, "key": "legacyMode", "change": "removed", "secret": false, "from": true},
                {"section": section, "key": "mqPassword", "change": "unchanged", "secret": true},
                {"section": section, "key": "poolSize", "change": "unchanged", "secret": false, "from": 5, "to": 5},
                {"section": section, "key": "timeoutSeconds", "change": "added", "secret": false, "to": 30},
            ]
        })
    );
    // The request's answer says the same; lists leave it out.
    assert_eq!(requested["changes"], changes);
    let list = root.get(PROMOTIONS).json();
    assert!(list["items"][0].get("changes").is_none(), "{list}");

    // Into prod, which has nothing yet: every key is added.
    let r = promote(&mut root, json!({"from": "staging", "to": "prod"}));
    assert_eq!(r.status, 201, "{}", r.json());
    let into_prod = r.json();
    let prod_id = into_prod["id"].as_str().unwrap().to_string();
    assert_eq!(into_prod["changes"]["deployment"]["from"], Value::Null);
    assert_eq!(into_prod["changes"]["deployment"]["to"]["version"], "1.0.0");
    let c = &into_prod["changes"]["configuration"];
    assert_eq!(
        (
            &c["fromRevision"],
            &c["added"],
            &c["removed"],
            &c["changed"],
            &c["unchanged"]
        ),
        (&json!(0), &json!(5), &json!(0), &json!(0), &json!(0)),
        "{c}"
    );
    assert!(!into_prod.to_string().contains(OLD_PASSWORD));

    // Who it waits for: bob may decide both, dana (non-production) only
    // staging, vic (viewer) nothing, root requested both.
    for (who, api, want) in [
        ("bob", &mut bob, 2),
        ("dana", &mut dana, 1),
        ("vic", &mut vic, 0),
        ("root", &mut root, 0),
    ] {
        assert_eq!(awaiting(api), want, "{who}");
        assert_eq!(
            may_approve(api),
            want,
            "{who}: the count is the inbox's mayApprove"
        );
    }
    // bob's first of two approvals into prod: it stays pending, but no
    // longer waits for bob.
    let r = bob.post(&format!("/api/v1/promotions/{prod_id}/approve"), &json!({}));
    assert_eq!(r.json()["status"], "pending", "{}", r.json());
    assert_eq!(awaiting(&mut bob), 1);
    assert_eq!(may_approve(&mut bob), 1);
    // bob applies the one into staging; the answer still says what changed.
    let r = bob.post(&format!("/api/v1/promotions/{id}/approve"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.json());
    let applied = r.json();
    assert_eq!(applied["status"], "applied", "{applied}");
    assert_eq!(applied["changes"], changes);
    assert_eq!((awaiting(&mut bob), awaiting(&mut dana)), (0, 0));
    let staging = root.get(&env_path("staging", "/config")).json();
    assert_eq!(value(&staging, "timeoutSeconds")["value"], 30);
    assert!(staging["values"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["key"] != "legacyMode"));
    // A user who may not decide gets 0, never a refusal; without a session, 401.
    let mut anonymous = s.management_client();
    let r = anonymous
        .request("GET", "/api/v1/promotions/awaiting-me", &[], &[])
        .unwrap();
    assert_eq!(r.status, 401);
}

/// Sends the same request from `n` threads released together.
fn race(s: &TestServer, n: usize, body: Value) -> Vec<ClientResponse> {
    let barrier = Arc::new(Barrier::new(n));
    let clients: Vec<ApiClient> = (0..n).map(|_| s.admin_again()).collect();
    let threads: Vec<_> = clients
        .into_iter()
        .map(|mut api| {
            let barrier = barrier.clone();
            let body = body.clone();
            std::thread::spawn(move || {
                barrier.wait();
                promote(&mut api, body)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn racing_promotions_of_one_source_state_apply_once() {
    let s = TestServer::start(&[]);
    let mut root = s.admin();
    setup(&mut root);
    let dev_to_staging = json!({"from": "dev", "to": "staging"});

    for (round, version) in ["4.0.0", "4.1.0"].into_iter().enumerate() {
        deploy(&mut root, "dev", version);
        let results = race(&s, 4, dev_to_staging.clone());
        let applied: Vec<&ClientResponse> = results.iter().filter(|r| r.status == 201).collect();
        assert_eq!(
            applied.len(),
            1,
            "round {round}: {:?}",
            results.iter().map(|r| r.json()).collect::<Vec<_>>()
        );
        assert_eq!(applied[0].json()["status"], "applied");
        for r in results.iter().filter(|r| r.status != 201) {
            assert_error(r, 409, "conflict");
            assert!(r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("already holds"));
        }
        let history = root.get(&env_path("staging", "/deployments")).json();
        assert_eq!(history["total"], round + 1, "{history}");
        assert_eq!(history["items"][0]["version"], version);
    }

    // Into prod, which needs an approval: one pending, the others told which.
    let results = race(&s, 4, json!({"from": "staging", "to": "prod"}));
    let pending: Vec<&ClientResponse> = results.iter().filter(|r| r.status == 201).collect();
    assert_eq!(pending.len(), 1);
    let id = pending[0].json()["id"].as_str().unwrap().to_string();
    for r in results.iter().filter(|r| r.status != 201) {
        assert_error(r, 409, "conflict");
        assert!(r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("promotion {id} ")));
    }
}

/// `icpd promote --as USER` with a secret override read from standard input.
fn promote_cli(s: &TestServer, args: &[&str], stdin: &str) -> std::process::Output {
    let args: Vec<&str> = std::iter::once("promote")
        .chain(args.iter().copied())
        .collect();
    crate::harness::cli_stdin(&s.data_dir, &args, stdin)
}

#[test]
fn the_cli_promotes_as_a_user_and_lists() {
    let s = TestServer::start(&[]);
    let mut root = s.admin();
    setup(&mut root);
    deploy(&mut root, "dev", "5.0.0");
    let base = [
        "--project",
        "order-service",
        "--integration",
        "order-create",
    ];
    let staging = [&base[..], &["--from", "dev", "--to", "staging"]].concat();

    let out = promote_cli(&s, &[&staging[..], &["--as", "nobody"]].concat(), "");
    assert!(!out.status.success());
    let args = [
        &staging[..],
        &[
            "--as",
            "root",
            "--set",
            "myorg.orders.dbUrl=jdbc:postgresql://db.staging/orders",
            "--set",
            "myorg.orders.poolSize=8",
            "--set-secret",
            "myorg.orders.dbPassword",
            "--json",
        ],
    ]
    .concat();
    let out = promote_cli(&s, &args, &format!("{DB_PASSWORD}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(DB_PASSWORD), "{text}");
    let p: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(p["status"], "applied", "{p}");
    assert_eq!(p["requestedBy"], "root");
    let config = root.get(&env_path("staging", "/config")).json();
    assert_eq!(value(&config, "poolSize")["value"], 8);
    assert_eq!(value(&config, "dbPassword")["set"], true);
    let rendered = s.cli(&[
        "config",
        "render",
        "--env",
        "staging",
        "--project",
        "order-service",
        "--integration",
        "order-create",
    ]);
    assert!(String::from_utf8_lossy(&rendered.stdout).contains(DB_PASSWORD));

    let prod = [
        &base[..],
        &["--from", "staging", "--to", "prod", "--as", "root"],
    ]
    .concat();
    let out = promote_cli(&s, &prod, "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("waiting for 1 approval"));
    let pending = s.cli_json(&["promotion", "list", "--status", "pending", "--json"]);
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
    assert_eq!(pending[0]["to"], "prod");
}
