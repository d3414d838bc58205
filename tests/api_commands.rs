//! Control commands through the management API: desired state, delivery in
//! heartbeat responses, convergence, re-issue with back-off, the command
//! log, RBAC, and end to end with the stand-in bridge (`bridge.py run`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use icpd::http::client::{Client, ClientResponse};
use serde_json::{json, Value};

use crate::harness::{assert_error, wait_for, ApiClient, Bridge, TestServer};

const PROJECT: &str = "order-service";
const INTEGRATION: &str = "order-create";

fn base(env: &str) -> String {
    format!("/api/v1/projects/{PROJECT}/integrations/{INTEGRATION}/environments/{env}")
}

/// A runtime built on the harness [`Bridge`] that also reports a log level
/// and applies commands as the bridge does.
struct Node {
    bridge: Bridge,
    level: String,
    client: Client,
    /// Whether to apply the commands it receives.
    obey: bool,
}

impl Node {
    fn new(s: &TestServer, secret: &str, name: &str, env: &str) -> Node {
        let mut bridge = Bridge::new(secret, Some(name));
        bridge.env = env.into();
        let mut n = Node {
            bridge,
            level: "INFO".into(),
            client: s.runtime_client(),
            obey: true,
        };
        let r = n.full();
        assert_eq!(r["acknowledged"], true, "{r}");
        n
    }

    fn id(&self) -> &str {
        &self.bridge.runtime_id
    }

    fn hash(&self) -> String {
        format!("hash-{}-{}", self.bridge.listener_state, self.level)
    }

    /// A full heartbeat with the current state; returns the response body.
    fn full(&mut self) -> Value {
        let mut body = self.bridge.full_body();
        body["logLevels"] = json!({"acme/orders": self.level});
        body["runtimeHash"] = self.hash().into();
        let r = self
            .client
            .post_json("/icp/heartbeat", Some(&self.bridge.token()), &body)
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.json());
        r.json()
    }

    fn delta(&mut self) -> Value {
        let mut body = self.bridge.delta_body();
        body["runtimeHash"] = self.hash().into();
        let r = self
            .client
            .post_json("/icp/deltaHeartbeat", Some(&self.bridge.token()), &body)
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.json());
        r.json()
    }

    /// Applies the commands of a response as bridge.py does; true if the state changed.
    fn apply(&mut self, resp: &Value) -> bool {
        let mut changed = false;
        for c in resp["commands"].as_array().unwrap() {
            assert_eq!(c["runtimeId"], self.id(), "{c}");
            if !self.obey {
                continue;
            }
            match c["action"].as_str().unwrap() {
                "START" | "STOP" if c["targetArtifact"]["name"] == "listener_1" => {
                    self.bridge.listener_state = if c["action"] == "START" {
                        "enabled".into()
                    } else {
                        "disabled".into()
                    };
                    changed = true;
                }
                "SET_LOGGER_LEVEL" => {
                    let p: Value = serde_json::from_str(c["payload"].as_str().unwrap()).unwrap();
                    if p["componentName"] == "acme/orders" {
                        self.level = p["logLevel"].as_str().unwrap().to_string();
                        changed = true;
                    }
                }
                _ => {}
            }
        }
        changed
    }

    /// One delta heartbeat; applies its commands and, if they changed
    /// anything, reports the new state in a full heartbeat. Returns the
    /// commands received.
    fn beat(&mut self) -> Vec<Value> {
        let r = self.delta();
        if self.apply(&r) {
            let f = self.full();
            self.apply(&f);
        }
        r["commands"].as_array().unwrap().clone()
    }
}

fn artifacts(api: &mut ApiClient, env: &str) -> Value {
    let r = api.get(&format!("{}/artifacts", base(env)));
    assert_eq!(r.status, 200, "{}", r.json());
    r.json()
}

fn find<'a>(list: &'a Value, key: &str, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|v| v[key] == name)
        .unwrap_or_else(|| panic!("no {key} = {name} in {list}"))
}

fn runtime_in_sync(view: &Value, id: &str) -> bool {
    find(&view["runtimes"], "runtimeId", id)["inSync"] == true
}

fn stop_listener(api: &mut ApiClient, env: &str, body: Value) -> ClientResponse {
    api.put(&format!("{}/listeners/listener_1", base(env)), &body)
}

#[test]
fn stopping_a_listener_and_setting_a_level_converge_on_every_runtime() {
    let s = TestServer::start(&[]);
    let secret = s.secret("dev", Some((PROJECT, INTEGRATION)));
    let mut n1 = Node::new(&s, &secret, "n1", "dev");
    let mut n2 = Node::new(&s, &secret, "n2", "dev");
    let mut admin = s.admin();

    let view = artifacts(&mut admin, "dev");
    assert_eq!(view["inSync"], true, "{view}");
    assert_eq!(view["runtimes"].as_array().unwrap().len(), 2);
    let l = find(&view["listeners"], "name", "listener_1");
    assert_eq!(
        (l["protocol"].as_str(), l["port"].as_i64()),
        (Some("HTTP"), Some(9090))
    );
    assert_eq!(l["desiredState"], Value::Null);
    let svc = find(&view["services"], "name", "service_1");
    assert_eq!(svc["resources"][1]["url"], "/{id}");
    assert_eq!(svc["listeners"], json!(["listener_1"]));
    assert_eq!(view["main"]["packageName"], "orders");
    let logger = find(&view["loggers"], "component", "acme/orders");
    assert_eq!(logger["runtimeIds"].as_array().unwrap().len(), 2);

    let r = stop_listener(&mut admin, "dev", json!({"state": "disabled"}));
    assert_eq!(r.status, 202, "{}", r.json());
    let issued = r.json();
    assert_eq!(issued["desired"]["state"], "disabled");
    assert_eq!(issued["desired"]["listener"], "listener_1");
    assert_eq!(issued["desired"]["issuedBy"], "root");
    assert_eq!(issued["commands"].as_array().unwrap().len(), 2, "{issued}");

    let view = artifacts(&mut admin, "dev");
    let l = find(&view["listeners"], "name", "listener_1");
    assert_eq!(
        (l["desiredState"].as_str(), l["inSync"].as_bool()),
        (Some("disabled"), Some(false))
    );
    assert_eq!(view["inSync"], false);

    // The command arrives in the next heartbeat response, in the protocol's shape.
    let got = n1.beat();
    assert_eq!(got.len(), 1, "{got:?}");
    let c = &got[0];
    assert_eq!(c["action"], "STOP");
    assert_eq!(c["targetArtifact"], json!({"name": "listener_1"}));
    assert_eq!(c["status"], "PENDING");
    assert_eq!(c["commandId"].as_str().unwrap().len(), 36);
    assert!(
        c["issuedAt"][0].is_i64() && c["issuedAt"][1].is_f64(),
        "{c}"
    );
    assert!(c.get("payload").is_none());
    let view = artifacts(&mut admin, "dev");
    assert!(runtime_in_sync(&view, n1.id()), "{view}");
    assert!(!runtime_in_sync(&view, n2.id()), "{view}");
    assert_eq!(
        find(&view["listeners"], "name", "listener_1")["inSync"],
        false
    );

    assert_eq!(n2.beat().len(), 1);
    let view = artifacts(&mut admin, "dev");
    let l = find(&view["listeners"], "name", "listener_1");
    assert_eq!(l["inSync"], true, "{view}");
    for rt in l["runtimes"].as_array().unwrap() {
        assert_eq!(
            (rt["state"].as_str(), rt["inSync"].as_bool()),
            (Some("disabled"), Some(true))
        );
    }
    assert_eq!(view["inSync"], true);
    assert!(
        n1.beat().is_empty(),
        "a converged runtime gets nothing more"
    );

    // A logger level; the component name carries a '/', percent-encoded.
    let r = admin.put(
        &format!("{}/loggers/acme%2Forders", base("dev")),
        &json!({"level": "DEBUG"}),
    );
    assert_eq!(r.status, 202, "{}", r.json());
    assert_eq!(r.json()["desired"]["component"], "acme/orders");
    let got = n1.beat();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["action"], "SET_LOGGER_LEVEL");
    let payload: Value = serde_json::from_str(got[0]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(
        payload,
        json!({"componentName": "acme/orders", "logLevel": "DEBUG"})
    );
    n2.beat();
    let view = artifacts(&mut admin, "dev");
    let logger = find(&view["loggers"], "component", "acme/orders");
    assert_eq!(
        (logger["desiredLevel"].as_str(), logger["inSync"].as_bool()),
        (Some("DEBUG"), Some(true)),
        "{view}"
    );
    assert_eq!(view["inSync"], true);

    // The log: who issued what, newest first, all converged; pages with a cursor.
    let log = admin.get(&format!("{}/commands", base("dev"))).json();
    assert_eq!(log["total"], 4, "{log}");
    let items = log["items"].as_array().unwrap();
    assert_eq!(items[0]["action"], "SET_LOGGER_LEVEL");
    assert_eq!(items[3]["action"], "STOP");
    for i in items {
        assert_eq!(i["issuedBy"], "root");
        assert_eq!(i["status"], "CONVERGED", "{i}");
        assert_eq!(i["attempts"], 1);
        assert!(i["issuedAt"].as_str().unwrap().ends_with('Z'));
    }
    let p1 = admin
        .get(&format!("{}/commands?limit=3", base("dev")))
        .json();
    assert_eq!(p1["items"].as_array().unwrap().len(), 3);
    let cursor = p1["nextCursor"].as_str().unwrap().to_string();
    let p2 = admin
        .get(&format!("{}/commands?limit=3&cursor={cursor}", base("dev")))
        .json();
    assert_eq!(p2["items"].as_array().unwrap().len(), 1);
    assert_eq!(p2["items"][0]["commandId"], items[3]["commandId"]);
    assert_eq!(p2["nextCursor"], Value::Null);

    // Starting it again issues START; a runtime that registers later gets the desired state at once.
    let r = stop_listener(&mut admin, "dev", json!({"state": "enabled"}));
    assert_eq!(r.status, 202);
    assert_eq!(n1.beat()[0]["action"], "START");
    let secret3 = s.secret("dev", Some((PROJECT, INTEGRATION)));
    let mut b3 = Bridge::new(&secret3, Some("n3"));
    b3.listener_state = "disabled".into();
    let r = b3.full(&mut s.runtime_client()).json();
    let cmds = r["commands"].as_array().unwrap();
    assert!(
        cmds.iter().any(|c| c["action"] == "START")
            && cmds.iter().any(|c| c["action"] == "SET_LOGGER_LEVEL"),
        "{r}"
    );
}

#[test]
fn an_ignored_command_is_reissued_with_back_off() {
    let s = TestServer::start(&[]);
    let secret = s.secret("dev", Some((PROJECT, INTEGRATION)));
    let mut n = Node::new(&s, &secret, "stubborn", "dev");
    n.obey = false;
    let mut admin = s.admin();
    assert_eq!(
        stop_listener(&mut admin, "dev", json!({"state": "disabled"})).status,
        202
    );

    // Before the heartbeat that delivers it: the back-off runs from the
    // delivery, so the command cannot come again sooner than 10 s after this.
    let sent = Instant::now();
    let first = n.beat();
    assert_eq!(first.len(), 1);
    let id = first[0]["commandId"].clone();
    // Not on every heartbeat: the next ones (and a full heartbeat still
    // reporting the old state) carry nothing.
    for _ in 0..3 {
        assert!(n.beat().is_empty());
    }
    assert!(n.full()["commands"].as_array().unwrap().is_empty());
    // ...but it comes again once the back-off has passed.
    let mut again = Vec::new();
    wait_for(
        "the command to be re-issued",
        Duration::from_secs(40),
        || {
            again = n.beat();
            if again.is_empty() {
                std::thread::sleep(Duration::from_millis(250));
            }
            !again.is_empty()
        },
    );
    // (Less 1 ms: the server counts in whole milliseconds.)
    assert!(
        sent.elapsed() + Duration::from_millis(1)
            >= Duration::from_millis(icpd::commands::FIRST_RETRY as u64),
        "re-issued after {:?}",
        sent.elapsed()
    );
    assert_eq!(again[0]["commandId"], id, "the same command again");
    let log = admin.get(&format!("{}/commands", base("dev"))).json();
    assert_eq!(log["items"][0]["status"], "PENDING");
    assert_eq!(log["items"][0]["attempts"], 2, "{log}");
    let view = artifacts(&mut admin, "dev");
    assert_eq!(view["inSync"], false);
    assert_eq!(
        find(&view["runtimes"], "runtimeId", n.id())["pendingCommands"],
        1
    );

    // Once it obeys, it converges and the command is settled.
    n.obey = true;
    let r = n.full();
    assert!(r["commands"].as_array().unwrap().is_empty());
    n.bridge.listener_state = "disabled".into();
    n.full();
    let log = admin.get(&format!("{}/commands", base("dev"))).json();
    assert_eq!(log["items"][0]["status"], "CONVERGED", "{log}");
    assert_eq!(artifacts(&mut admin, "dev")["inSync"], true);
}

#[test]
fn pending_commands_survive_a_restart() {
    let mut s = TestServer::start(&[]);
    let secret = s.secret("dev", Some((PROJECT, INTEGRATION)));
    let mut n = Node::new(&s, &secret, "n1", "dev");
    let mut admin = s.admin();
    assert_eq!(
        stop_listener(&mut admin, "dev", json!({"state": "disabled"})).status,
        202
    );
    s.restart();
    n.client = s.runtime_client();
    let got = n.beat();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["action"], "STOP");
    admin.client = s.management_client();
    let view = artifacts(&mut admin, "dev");
    assert_eq!(view["inSync"], true, "{view}");
}

#[test]
fn runtime_ids_address_chosen_runtimes_and_a_newer_request_supersedes() {
    let s = TestServer::start(&[]);
    let secret = s.secret("dev", Some((PROJECT, INTEGRATION)));
    let mut n1 = Node::new(&s, &secret, "n1", "dev");
    let mut n2 = Node::new(&s, &secret, "n2", "dev");
    let mut admin = s.admin();
    let r = stop_listener(
        &mut admin,
        "dev",
        json!({"state": "disabled", "runtimeIds": [n1.id()]}),
    );
    assert_eq!(r.status, 202, "{}", r.json());
    assert_eq!(r.json()["commands"].as_array().unwrap().len(), 1);
    assert!(n2.beat().is_empty());
    assert_eq!(n1.beat().len(), 1);
    let view = artifacts(&mut admin, "dev");
    assert_eq!(view["inSync"], true, "{view}");
    let l = find(&view["listeners"], "name", "listener_1");
    assert_eq!(l["desiredState"], Value::Null, "no integration-wide desire");
    assert_eq!(
        find(&l["runtimes"], "runtimeId", n1.id())["desiredState"],
        "disabled"
    );

    // A level change nobody has applied yet, then a newer one: the first is superseded.
    n2.obey = false;
    let path = format!("{}/loggers/acme%2Forders", base("dev"));
    assert_eq!(
        admin
            .put(&path, &json!({"level": "WARN", "runtimeIds": [n2.id()]}))
            .status,
        202
    );
    assert_eq!(
        admin
            .put(&path, &json!({"level": "ERROR", "runtimeIds": [n2.id()]}))
            .status,
        202
    );
    let log = admin.get(&format!("{}/commands", base("dev"))).json();
    assert_eq!(log["items"][0]["value"], "ERROR");
    assert_eq!(log["items"][0]["status"], "PENDING");
    assert_eq!(log["items"][1]["value"], "WARN");
    assert_eq!(log["items"][1]["status"], "SUPERSEDED", "{log}");
    let got = n2.beat();
    assert_eq!(got.len(), 1, "only the newest: {got:?}");

    let r = stop_listener(
        &mut admin,
        "dev",
        json!({"state": "disabled", "runtimeIds": ["3f6d0f0e-7c4e-4d8e-9a43-000000000000"]}),
    );
    assert_error(&r, 404, "not_found");
    let r = stop_listener(
        &mut admin,
        "dev",
        json!({"state": "disabled", "runtimeIds": []}),
    );
    assert_error(&r, 422, "unprocessable");
}

#[test]
fn unknown_names_are_404_and_bad_values_are_refused() {
    let s = TestServer::start(&[]);
    let secret = s.secret("dev", Some((PROJECT, INTEGRATION)));
    let _n = Node::new(&s, &secret, "n1", "dev");
    let mut admin = s.admin();
    let dev = base("dev");
    for path in [
        format!("/api/v1/projects/nope/integrations/{INTEGRATION}/environments/dev/artifacts"),
        format!("/api/v1/projects/{PROJECT}/integrations/nope/environments/dev/artifacts"),
        format!(
            "/api/v1/projects/{PROJECT}/integrations/{INTEGRATION}/environments/nope/artifacts"
        ),
        format!("/api/v1/projects/{PROJECT}/integrations/{INTEGRATION}/environments/nope/commands"),
    ] {
        assert_error(&admin.get(&path), 404, "not_found");
    }
    let r = admin.put(
        &format!("{dev}/listeners/nope"),
        &json!({"state": "disabled"}),
    );
    assert_error(&r, 404, "not_found");
    let r = admin.put(
        &format!("{dev}/loggers/acme%2Fnope"),
        &json!({"level": "DEBUG"}),
    );
    assert_error(&r, 404, "not_found");
    // No runtime in prod: nothing there has the listener.
    let r = stop_listener(&mut admin, "prod", json!({"state": "disabled"}));
    assert_error(&r, 404, "not_found");
    let r = stop_listener(&mut admin, "dev", json!({"state": "paused"}));
    assert_error(&r, 422, "unprocessable");
    let r = admin.put(
        &format!("{dev}/loggers/acme%2Forders"),
        &json!({"level": "TRACE"}),
    );
    assert_error(&r, 422, "unprocessable");
    let r = stop_listener(&mut admin, "dev", json!({"status": "disabled"}));
    assert_error(&r, 400, "bad_request");
    let r = admin.client.request(
        "PUT",
        &format!("{dev}/listeners/listener_1"),
        &[("Authorization", &format!("Bearer {}", admin.token))],
        b"",
    );
    assert_error(&r.unwrap(), 400, "bad_request");
    let r = admin.get(&format!("{dev}/commands?cursor=xyz"));
    assert_error(&r, 400, "bad_request");
    assert!(admin.get(&format!("{dev}/commands")).json()["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn acting_needs_manage_on_the_integration_and_the_environment() {
    let s = TestServer::start(&[]);
    let dev = s.secret("dev", None);
    let prod = s.secret("prod", None);
    let _d = Node::new(&s, &dev, "n1", "dev");
    let _p = Node::new(&s, &prod, "n1", "prod");
    // Another project, to check the project scope of a Project Admin.
    let other = s.secret("dev", None);
    let mut b = Bridge::new(&other, Some("o1"));
    b.project = "billing".into();
    b.integration = "invoices".into();
    assert_eq!(b.full(&mut s.runtime_client()).status, 200);
    let other_path =
        "/api/v1/projects/billing/integrations/invoices/environments/dev/listeners/listener_1";
    let body = json!({"state": "disabled"});

    let mut viewer = s.api_as("vera", Some("Viewer"));
    assert_eq!(
        artifacts(&mut viewer, "dev")["runtimes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        viewer.get(&format!("{}/commands", base("prod"))).status,
        200
    );
    for env in ["dev", "prod"] {
        assert_error(
            &stop_listener(&mut viewer, env, body.clone()),
            403,
            "forbidden",
        );
        let r = viewer.put(
            &format!("{}/loggers/acme%2Forders", base(env)),
            &json!({"level": "DEBUG"}),
        );
        assert_error(&r, 403, "forbidden");
    }
    assert_error(&viewer.put(other_path, &body), 403, "forbidden");

    let mut dev_user = s.api_as("dave", Some("Developer"));
    assert_eq!(
        stop_listener(&mut dev_user, "dev", body.clone()).status,
        202
    );
    assert_error(
        &stop_listener(&mut dev_user, "prod", body.clone()),
        403,
        "forbidden",
    );

    // A Project Admin of order-service, assigned at project scope through the assignments API.
    s.create_user("pat", None);
    let mut granter = s.api_as("granter", Some("Super Admin"));
    let r = granter.post(
        "/api/v1/role-assignments",
        &json!({"role": "Project Admin", "user": "pat", "scope": {"type": "project", "project": PROJECT}}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let login = s.login("pat", crate::harness::TEST_PASSWORD);
    assert_eq!(login.status, 200, "{}", login.json());
    let mut pat = ApiClient {
        client: s.management_client(),
        token: login.json()["token"].as_str().unwrap().to_string(),
    };
    assert_eq!(stop_listener(&mut pat, "dev", body.clone()).status, 202);
    assert_error(
        &stop_listener(&mut pat, "prod", body.clone()),
        403,
        "forbidden",
    );
    assert_error(&pat.put(other_path, &body), 403, "forbidden");
    assert_error(
        &pat.get("/api/v1/projects/billing/integrations/invoices/environments/dev/artifacts"),
        403,
        "forbidden",
    );

    let mut admin = s.admin();
    assert_eq!(admin.put(other_path, &body).status, 202);
    let log = admin.get(&format!("{}/commands", base("dev"))).json();
    let by: Vec<(&str, &str)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["issuedBy"].as_str().unwrap(),
                i["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(by, [("pat", "PENDING"), ("dave", "SUPERSEDED")], "{log}");
}

/// Stand-in bridges (`bridge.py run`), killed when dropped (also on panic).
struct Bridges {
    children: Vec<Child>,
    logs: Vec<std::path::PathBuf>,
}

impl Bridges {
    fn log_tails(&self) -> String {
        self.logs
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(8)..].join("\n")
            })
            .collect::<Vec<_>>()
            .join("\n---\n")
    }
}

impl Drop for Bridges {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn end_to_end_with_the_stand_in_bridge() {
    let s = TestServer::start(&[]);
    let secret = s.secret("dev", Some((PROJECT, INTEGRATION)));
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/bridge.py");
    let mut bridges = Bridges {
        children: Vec::new(),
        logs: Vec::new(),
    };
    for name in ["n1", "n2"] {
        let log = s.dir.path.join(format!("bridge-{name}.log"));
        let child = Command::new("python3")
            .arg(&script)
            .args([
                "run",
                "--server",
                &s.runtime_url,
                "--secret",
                &secret,
                "--env",
                "dev",
            ])
            .args([
                "--project",
                PROJECT,
                "--integration",
                INTEGRATION,
                "--runtime",
                name,
            ])
            .args(["--interval", "2", "--cert"])
            .arg(s.cert())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("python3 runs bridge.py");
        bridges.children.push(child);
        bridges.logs.push(log);
    }
    let mut admin = s.admin();
    let deadline = Duration::from_secs(30);
    let mut view = Value::Null;
    let mut poll = |admin: &mut ApiClient, what: &str, cond: &dyn Fn(&Value) -> bool| {
        let start = Instant::now();
        loop {
            let r = admin.get(&format!("{}/artifacts", base("dev")));
            if r.status == 200 {
                view = r.json();
                if cond(&view) {
                    return;
                }
            }
            assert!(
                start.elapsed() < deadline,
                "timed out waiting for {what}: {view}\nbridges:\n{}",
                bridges.log_tails()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    poll(&mut admin, "both runtimes", &|v| {
        v["runtimes"].as_array().unwrap().len() == 2
    });

    let r = stop_listener(&mut admin, "dev", json!({"state": "disabled"}));
    assert_eq!(r.status, 202, "{}", r.json());
    assert_eq!(r.json()["commands"].as_array().unwrap().len(), 2);
    poll(&mut admin, "listener_1 disabled on both runtimes", &|v| {
        let l = find(&v["listeners"], "name", "listener_1");
        l["inSync"] == true
            && l["runtimes"].as_array().unwrap().len() == 2
            && l["runtimes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["state"] == "disabled" && r["inSync"] == true)
            && v["runtimes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["inSync"] == true)
    });

    let r = admin.put(
        &format!("{}/loggers/acme%2Forders", base("dev")),
        &json!({"level": "DEBUG"}),
    );
    assert_eq!(r.status, 202, "{}", r.json());
    poll(&mut admin, "acme/orders at DEBUG on both runtimes", &|v| {
        let l = find(&v["loggers"], "component", "acme/orders");
        l["inSync"] == true
            && l["runtimes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["level"] == "DEBUG" && r["inSync"] == true)
            && v["inSync"] == true
    });

    let log = admin.get(&format!("{}/commands", base("dev"))).json();
    assert_eq!(log["total"], 4, "{log}");
    for i in log["items"].as_array().unwrap() {
        assert_eq!(i["status"], "CONVERGED", "{i}");
        assert_eq!(i["issuedBy"], "root");
    }
    // Each bridge got both commands inside heartbeat responses.
    for p in &bridges.logs {
        let text = std::fs::read_to_string(p).unwrap();
        assert!(
            text.contains("command STOP") && text.contains("command SET_LOGGER_LEVEL"),
            "{text}"
        );
    }
    drop(bridges);
}
