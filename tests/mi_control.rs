//! MI control through the REST API, end to end: the real icpd, stand-in MI
//! runtimes (`mi.py run`, direct and `--tunnel`), every control of issue 14
//! point 3, judged on what the stand-ins recorded (`--calls-file`) and on
//! the converged state icpd shows. Also a Management API that hangs or is
//! not there: the failure is recorded on the command and icpd keeps
//! answering.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{wait_for, ApiClient, Bridge, TestServer};
use crate::mi_standin::MiStandIn;

const SCOPE: &str = "/api/v1/projects/order-service/integrations/order-mi/environments/dev/mi";
/// Generous: two stand-ins heartbeating every second on a loaded machine.
const CONVERGE: Duration = Duration::from_secs(60);

fn view(admin: &mut ApiClient) -> Value {
    let r = admin.get(&format!("{SCOPE}/artifacts"));
    assert_eq!(r.status, 200, "{}", r.json());
    r.json()
}

fn artifact(v: &Value, kind: &str, name: &str) -> Value {
    v["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == kind && a["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

fn logger(v: &Value, name: &str) -> Value {
    v["loggers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["logger"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until `n` MI runtimes are RUNNING in the scope view and have
/// reported their artifacts.
fn wait_registered(admin: &mut ApiClient, n: usize) {
    wait_for("the MI runtimes to register", CONVERGE, || {
        let r = admin.get(&format!("{SCOPE}/artifacts"));
        r.status == 200
            && r.json()["runtimes"]
                .as_array()
                .is_some_and(|a| a.len() == n && a.iter().all(|r| r["status"] == "RUNNING"))
            && !r.json()["artifacts"].as_array().unwrap().is_empty()
    });
}

/// Polls an operation until no runtime is pending; returns it.
fn finished(admin: &mut ApiClient, accepted: &Value) -> Value {
    let id = accepted["operationId"].as_str().expect("an operation id");
    let mut op = Value::Null;
    wait_for("the operation to finish", CONVERGE, || {
        op = admin.get(&format!("/api/v1/mi/operations/{id}")).json();
        op["runtimes"]
            .as_array()
            .is_some_and(|rs| rs.iter().all(|r| r["state"] != "pending"))
    });
    op
}

fn all_succeeded(op: &Value) -> bool {
    op["runtimes"]
        .as_array()
        .is_some_and(|rs| !rs.is_empty() && rs.iter().all(|r| r["state"] == "succeeded"))
}

/// The recorded calls matching method and path (ignoring the query).
fn calls_to(mi: &MiStandIn, method: &str, path: &str) -> Vec<Value> {
    mi.calls()
        .into_iter()
        .filter(|c| c["method"] == method && c["path"] == path)
        .collect()
}

/// Every recorded call of a stand-in was authenticated as ICP's JWT.
fn all_as_icp(mi: &MiStandIn, via: &str) {
    let calls = mi.calls();
    assert!(!calls.is_empty());
    for c in calls {
        assert_eq!(c["auth"]["outcome"], "accepted", "{c}");
        assert_eq!(c["auth"]["scheme"], "icp-jwt", "{c}");
        assert_eq!(c["via"], via, "{c}");
    }
}

/// A read from a runtime's Management API, polled until it is no longer
/// preparing; returns the final answer.
fn read(admin: &mut ApiClient, runtime_id: &str, what: &str) -> Value {
    let path = format!("/api/v1/runtimes/{runtime_id}/mi/{what}");
    let mut out = Value::Null;
    wait_for(&format!("read {what}"), CONVERGE, || {
        let r = admin.get(&path);
        assert!(
            r.status == 200 || r.status == 202,
            "{} {}",
            r.status,
            r.json()
        );
        out = r.json();
        out["state"] != "preparing"
    });
    out
}

#[test]
fn every_mi_control_converges_through_the_management_api() {
    let server = TestServer::start(&[]);
    let secret = server.secret("dev", None);
    let a = MiStandIn::start(
        &server,
        &secret,
        "mi-node-1",
        &["--interval", "1", "--faulty"],
    );
    let b = MiStandIn::start(&server, &secret, "mi-node-2", &["--interval", "1"]);
    let mut admin = server.admin();
    wait_registered(&mut admin, 2);

    // The view: kinds, replicas, a faulty carbon app flagged.
    let v = view(&mut admin);
    let faulty = artifact(&v, "carbon-app", "LegacyCompositeApp");
    assert!(faulty["error"].as_str().is_some(), "{faulty}");
    let proxy = artifact(&v, "proxy-service", "StockQuoteProxy");
    assert_eq!(
        proxy["controls"],
        json!({"state": true, "tracing": true, "statistics": true})
    );
    assert_eq!(proxy["runtimes"].as_array().unwrap().len(), 2);
    // Narrowed to the one artifact (as the converge benchmark polls it): the
    // same entry, nothing else, no loggers; a kind alone keeps that kind.
    let r = admin.get(&format!(
        "{SCOPE}/artifacts?kind=proxy-service&name=StockQuoteProxy"
    ));
    assert_eq!(r.status, 200, "{}", r.json());
    let narrowed = r.json();
    assert_eq!(narrowed["artifacts"], json!([proxy]), "{narrowed}");
    assert_eq!(narrowed["loggers"], json!([]));
    assert_eq!(narrowed["runtimes"], v["runtimes"]);
    let r = admin.get(&format!("{SCOPE}/artifacts?kind=proxy-service"));
    let kinds: Vec<Value> = r.json()["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].clone())
        .collect();
    assert!(
        kinds.len() > 1 && kinds.iter().all(|k| k == "proxy-service"),
        "{kinds:?}"
    );
    // Both stand-ins report 127.0.0.1: each is flagged, for the loopback
    // address (their ports differ, so not as shared).
    for rt in v["runtimes"].as_array().unwrap() {
        let w = rt["managementWarning"].as_str().unwrap_or_default();
        assert!(w.contains("loopback"), "{rt}");
    }

    // Artifact state, tracing and statistics on every replica.
    let r = admin.put(
        &format!("{SCOPE}/artifacts/proxy-service/StockQuoteProxy"),
        &json!({"state": "disabled", "tracing": "enabled", "statistics": "enabled"}),
    );
    assert_eq!(r.status, 202, "{}", r.json());
    assert_eq!(
        r.json()["commands"].as_array().unwrap().len(),
        6,
        "3 fields x 2 replicas"
    );
    wait_for("the proxy to converge", CONVERGE, || {
        let p = artifact(&view(&mut admin), "proxy-service", "StockQuoteProxy");
        p["inSync"] == true
            && p["runtimes"].as_array().unwrap().iter().all(|r| {
                r["state"] == "disabled"
                    && r["tracing"] == "enabled"
                    && r["statistics"] == "enabled"
            })
    });
    for mi in [&a, &b] {
        let bodies: Vec<Value> = calls_to(mi, "POST", "/management/proxy-services")
            .into_iter()
            .map(|c| c["body"].clone())
            .collect();
        for want in [
            json!({"name": "StockQuoteProxy", "status": "inactive"}),
            json!({"name": "StockQuoteProxy", "trace": "enable"}),
            json!({"name": "StockQuoteProxy", "statistics": "enable"}),
        ] {
            assert!(bodies.contains(&want), "{want} not in {bodies:?}");
        }
    }

    // One replica only: an endpoint off on node 1; the replicas then differ.
    let r = admin.put(
        &format!("{SCOPE}/artifacts/endpoint/StockQuoteEP"),
        &json!({"state": "disabled", "runtimeIds": [a.runtime_id]}),
    );
    assert_eq!(r.status, 202, "{}", r.json());
    wait_for("the endpoint to converge on node 1", CONVERGE, || {
        let e = artifact(&view(&mut admin), "endpoint", "StockQuoteEP");
        e["inSync"] == true && e["replicasDiffer"] == true
    });
    assert!(
        calls_to(&b, "POST", "/management/endpoints").is_empty(),
        "node 2 untouched"
    );

    // A task paused, then triggered once.
    let r = admin.put(
        &format!("{SCOPE}/artifacts/task/InventorySyncTask"),
        &json!({"state": "disabled"}),
    );
    assert_eq!(r.status, 202, "{}", r.json());
    wait_for("the task to converge", CONVERGE, || {
        artifact(&view(&mut admin), "task", "InventorySyncTask")["inSync"] == true
    });
    let r = admin.post(
        &format!("{SCOPE}/tasks/InventorySyncTask/trigger"),
        &json!({}),
    );
    assert_eq!(r.status, 202, "{}", r.json());
    let op = finished(&mut admin, &r.json());
    assert!(all_succeeded(&op), "{op}");
    assert!(calls_to(&a, "POST", "/management/tasks")
        .iter()
        .any(|c| c["body"] == json!({"name": "InventorySyncTask", "status": "trigger"})));

    // Logger level: set, read back, in sync on both.
    let r = admin.put(
        &format!("{SCOPE}/loggers/org-apache-synapse"),
        &json!({"level": "TRACE"}),
    );
    assert_eq!(r.status, 202, "{}", r.json());
    wait_for("the logger to converge", CONVERGE, || {
        let l = logger(&view(&mut admin), "org-apache-synapse");
        l["inSync"] == true
            && l["runtimes"]
                .as_array()
                .is_some_and(|rs| rs.len() == 2 && rs.iter().all(|r| r["level"] == "TRACE"))
    });
    for mi in [&a, &b] {
        assert!(calls_to(mi, "PATCH", "/management/logging")
            .iter()
            .any(|c| {
                c["body"] == json!({"loggerName": "org-apache-synapse", "loggingLevel": "TRACE"})
            }));
    }

    // Logger added, then removed.
    let r = admin.post(
        &format!("{SCOPE}/loggers"),
        &json!({"logger": "com-acme", "loggerClass": "com.acme", "level": "WARN"}),
    );
    assert_eq!(r.status, 202, "{}", r.json());
    assert!(all_succeeded(&finished(&mut admin, &r.json())));
    wait_for("the new logger to show", CONVERGE, || {
        logger(&view(&mut admin), "com-acme")["runtimes"]
            .as_array()
            .is_some_and(|rs| rs.len() == 2)
    });
    let r = admin.delete(&format!("{SCOPE}/loggers/com-acme"));
    assert_eq!(r.status, 202, "{}", r.json());
    assert!(all_succeeded(&finished(&mut admin, &r.json())));
    wait_for("the logger to go", CONVERGE, || {
        logger(&view(&mut admin), "com-acme").is_null()
    });

    // MI users: add, list, remove.
    let r = admin.post(
        &format!("{SCOPE}/users"),
        &json!({"userId": "ops", "password": "an-ops-password", "isAdmin": false}),
    );
    assert_eq!(r.status, 202, "{}", r.json());
    assert!(all_succeeded(&finished(&mut admin, &r.json())));
    let mut users = Value::Null;
    wait_for("the new MI user in the (refreshed) list", CONVERGE, || {
        users = read(&mut admin, &a.runtime_id, "users");
        users["data"]["users"]
            .as_array()
            .is_some_and(|us| us.iter().any(|u| u["userId"] == "ops"))
    });
    let r = admin.delete(&format!("{SCOPE}/users/ops"));
    assert_eq!(r.status, 202, "{}", r.json());
    assert!(all_succeeded(&finished(&mut admin, &r.json())));
    assert!(!calls_to(&b, "DELETE", "/management/users/ops").is_empty());

    // Reads: log files, one file, the registry, a carbon app's fault.
    let logs = read(&mut admin, &a.runtime_id, "logs");
    assert_eq!(logs["state"], "ready", "{logs}");
    let file = logs["data"]["list"][0]["FileName"]
        .as_str()
        .unwrap()
        .to_string();
    let text = read(&mut admin, &a.runtime_id, &format!("logs?file={file}"));
    assert!(
        text["data"].as_str().is_some_and(|t| !t.is_empty()),
        "{text}"
    );
    let dir = read(&mut admin, &a.runtime_id, "registry?path=registry/config");
    assert_eq!(dir["state"], "ready", "{dir}");
    let entry = dir["data"]["list"][0]["name"].as_str().unwrap().to_string();
    for part in ["content", "metadata", "properties"] {
        let r = read(
            &mut admin,
            &a.runtime_id,
            &format!("registry?path=registry/config/{entry}&part={part}"),
        );
        assert_eq!(r["state"], "ready", "{part}: {r}");
    }
    let fault = read(
        &mut admin,
        &a.runtime_id,
        "carbon-app-fault?name=LegacyCompositeApp",
    );
    assert_eq!(fault["state"], "ready", "{fault}");

    // Refusals: a control MI does not offer, an unknown kind, a viewer.
    let r = admin.put(
        &format!("{SCOPE}/artifacts/api/HealthcareAPI"),
        &json!({"state": "disabled"}),
    );
    assert_eq!(r.status, 422, "{}", r.json());
    let r = admin.put(
        &format!("{SCOPE}/artifacts/widget/x"),
        &json!({"state": "disabled"}),
    );
    assert_eq!(r.status, 404, "{}", r.json());
    let mut viewer = server.api_as("viewer", Some("Viewer"));
    let r = viewer.put(
        &format!("{SCOPE}/artifacts/proxy-service/StockQuoteProxy"),
        &json!({"state": "enabled"}),
    );
    assert_eq!(r.status, 403, "{}", r.json());

    // The command log has the MI commands, converged; the audit log the requests.
    let log = admin
        .get(&SCOPE.replace("/mi", "/commands?limit=200"))
        .json();
    let items = log["items"].as_array().unwrap();
    assert!(items
        .iter()
        .any(|c| c["kind"] == "mi-state" && c["status"] == "CONVERGED"));
    assert!(items
        .iter()
        .any(|c| c["kind"] == "mi-logger" && c["status"] == "CONVERGED"));
    all_as_icp(&a, "https");
    all_as_icp(&b, "https");
}

#[test]
fn mi_controls_travel_in_heartbeats_in_tunnel_mode() {
    let server = TestServer::start(&[]);
    let secret = server.secret("dev", None);
    let mut admin = server.admin();
    let r = admin.put(
        "/api/v1/environments/dev/mi-settings",
        &json!({"tunnel": true}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    let t = MiStandIn::start(
        &server,
        &secret,
        "mi-tunnel-1",
        &["--interval", "1", "--tunnel", "--require-signed-commands"],
    );
    wait_registered(&mut admin, 1);

    let r = admin.put(
        &format!("{SCOPE}/artifacts/proxy-service/StockQuoteProxy"),
        &json!({"state": "disabled"}),
    );
    assert_eq!(r.status, 202, "{}", r.json());
    let r = admin.put(
        &format!("{SCOPE}/loggers/rootLogger"),
        &json!({"level": "WARN"}),
    );
    assert_eq!(r.status, 202, "{}", r.json());
    wait_for("the tunnelled controls to converge", CONVERGE, || {
        let v = view(&mut admin);
        artifact(&v, "proxy-service", "StockQuoteProxy")["inSync"] == true
            && logger(&v, "rootLogger")["inSync"] == true
            && logger(&v, "rootLogger")["runtimes"][0]["level"] == "WARN"
    });
    let r = admin.post(
        &format!("{SCOPE}/tasks/InventorySyncTask/trigger"),
        &json!({}),
    );
    assert!(all_succeeded(&finished(&mut admin, &r.json())));
    let logs = read(&mut admin, &t.runtime_id, "logs");
    assert_eq!(logs["state"], "ready", "{logs}");

    // Every call came through the tunnel, signed (the stand-in refuses
    // unsigned ones), each under an mio-/mir- command id.
    all_as_icp(&t, "tunnel");
    for c in t.calls() {
        let id = c["commandId"].as_str().unwrap();
        assert!(id.starts_with("mio-") || id.starts_with("mir-"), "{c}");
        assert!(id.ends_with(&t.runtime_id), "{c}");
    }
    assert!(calls_to(&t, "POST", "/management/proxy-services")
        .iter()
        .any(|c| c["body"] == json!({"name": "StockQuoteProxy", "status": "inactive"})));
}

/// An MI full heartbeat from a [`Bridge`]'s identity, claiming `host:port`
/// as its Management API and one proxy service.
fn mi_heartbeat(b: &Bridge, host: &str, port: u16, proxy_state: &str) -> Value {
    json!({
        "heartbeatVersion": "v1.0", "runtimeId": b.runtime_id, "runtime": b.name,
        "runtimeType": "MI", "status": "RUNNING", "environment": "dev",
        "project": "order-service", "component": "order-mi", "version": "4.5.0",
        "runtimeHostname": host, "runtimePort": port.to_string(),
        "nodeInfo": {"javaVersion": "21"},
        "artifacts": {"proxyServices": [{"name": "P", "state": proxy_state}]},
        "runtimeHash": format!("h-{proxy_state}")
    })
}

#[test]
fn a_management_api_that_hangs_or_is_gone_is_recorded_and_holds_nothing() {
    let server = TestServer::start(&[]);
    let secret = server.secret("dev", None);
    // One runtime whose Management API accepts and never answers, one
    // whose port refuses connections.
    let hang = TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_port = hang.local_addr().unwrap().port();
    let gone_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut rt = server.runtime_client();
    let (h, g) = (
        Bridge::new(&secret, Some("hangs")),
        Bridge::new(&secret, Some("gone")),
    );
    for (b, port) in [(&h, hang_port), (&g, gone_port)] {
        let r = rt
            .post_json(
                "/icp/heartbeat",
                Some(&b.token()),
                &mi_heartbeat(b, "127.0.0.1", port, "enabled"),
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.json());
    }
    let mut admin = server.admin();
    let r = admin.put(
        &format!("{SCOPE}/artifacts/proxy-service/P"),
        &json!({"state": "disabled"}),
    );
    assert_eq!(r.status, 202, "{}", r.json());

    // Both failures end up on their commands, with what to check.
    let mut errors = Vec::new();
    wait_for("both attempts to fail", CONVERGE, || {
        let log = admin.get(&SCOPE.replace("/mi", "/commands")).json();
        errors = log["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["lastError"].as_str().map(str::to_string))
            .collect();
        errors.len() == 2
    });
    assert!(
        errors.iter().any(|e| e.starts_with("timeout")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("unreachable")),
        "{errors:?}"
    );
    // A first read from the hanging one is "preparing" at once, fails
    // after the call's timeout, and never held a request: while it was
    // outstanding other requests were answered.
    let path = format!("/api/v1/runtimes/{}/mi/logs", h.runtime_id);
    let first = admin.get(&path);
    assert_eq!(first.status, 202, "{}", first.json());
    assert_eq!(first.json()["state"], "preparing");
    let mut answered = 0;
    wait_for("the read to fail", CONVERGE, || {
        assert_eq!(admin.get("/api/v1/runtimes").status, 200);
        answered += 1;
        admin.get(&path).json()["state"] == "failed"
    });
    let failed = admin.get(&path).json();
    assert!(
        failed["error"].as_str().unwrap().starts_with("timeout"),
        "{failed}"
    );
    assert!(
        answered > 1,
        "requests were answered while the read was out"
    );
    drop(hang);
}

#[test]
fn mi_desired_state_set_from_the_cli_is_carried_out_by_the_running_server() {
    let server = TestServer::start(&[]);
    let secret = server.secret("dev", None);
    let mi = MiStandIn::start(&server, &secret, "mi-cli-1", &["--interval", "1"]);
    let mut admin = server.admin();
    wait_registered(&mut admin, 1);
    let scope = [
        "--env",
        "dev",
        "--project",
        "order-service",
        "--integration",
        "order-mi",
    ];
    let out = server.cli(
        &[
            &["mi", "set"][..],
            &scope,
            &["message-processor/OrderForwarder", "--state", "disabled"],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server.cli(
        &[
            &["mi", "logger"][..],
            &scope,
            &["rootLogger", "--level", "ERROR"],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the CLI's desired state to converge", CONVERGE, || {
        let v = server.cli_json(&[&["mi", "artifacts"][..], &scope, &["--json"]].concat());
        artifact(&v, "message-processor", "OrderForwarder")["runtimes"][0]["state"] == "disabled"
            && logger(&v, "rootLogger")["runtimes"][0]["level"] == "ERROR"
            && v["inSync"] == true
    });
    assert!(calls_to(&mi, "POST", "/management/message-processors")
        .iter()
        .any(|c| c["body"] == json!({"name": "OrderForwarder", "status": "inactive"})));
    // What MI cannot do is refused with a reason, before anything is stored.
    let out = server.cli(
        &[
            &["mi", "set"][..],
            &scope,
            &["api/HealthcareAPI", "--state", "disabled"],
        ]
        .concat(),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("APIs cannot be enabled or disabled"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A TLS server configuration with a fresh self-signed certificate.
pub(crate) fn fresh_tls() -> std::sync::Arc<rustls::ServerConfig> {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        ck.signing_key.serialize_der(),
    ));
    std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().to_vec().into()], key)
        .unwrap(),
    )
}

/// A TLS listener that answers every request with `answer` (raw bytes
/// after the handshake), on its own thread, until the test process ends.
/// With `rotate`, every connection presents a new certificate (an
/// impostor after the first contact).
pub(crate) fn fake_management_api(answer: &'static [u8], rotate: bool) -> u16 {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut config = fresh_tls();
        for tcp in listener.incoming().map_while(Result::ok) {
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
            let conn = rustls::ServerConnection::new(std::sync::Arc::clone(&config)).unwrap();
            if rotate {
                config = fresh_tls();
            }
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match tls.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let _ = tls.write_all(answer);
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    port
}

#[test]
fn hostile_management_api_answers_are_recorded_per_runtime() {
    let server = TestServer::start(&[]);
    let secret = server.secret("dev", None);
    let cases: [(&str, &'static [u8], &str); 3] = [
        (
            "answers-500",
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: 16\r\nConnection: close\r\n\r\n{\"Error\":\"boom\"}",
            "refused",
        ),
        (
            "answers-200-error",
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 37\r\nConnection: close\r\n\r\n{\"Error\":\"JSON payload is missing\"}\r\n",
            "refused",
        ),
        ("answers-garbage", b"\x00\x01 this is not HTTP\r\n\r\n", "malformed"),
    ];
    let mut rt = server.runtime_client();
    let mut ids = Vec::new();
    for (name, answer, _) in &cases {
        let b = Bridge::new(&secret, Some(name));
        let port = fake_management_api(answer, false);
        let r = rt
            .post_json(
                "/icp/heartbeat",
                Some(&b.token()),
                &mi_heartbeat(&b, "127.0.0.1", port, "enabled"),
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.json());
        ids.push(b.runtime_id.clone());
    }
    let mut admin = server.admin();
    let r = admin.put(
        &format!("{SCOPE}/artifacts/proxy-service/P"),
        &json!({"state": "disabled"}),
    );
    assert_eq!(r.status, 202, "{}", r.json());
    let mut by_runtime = std::collections::BTreeMap::new();
    wait_for("every attempt to fail", CONVERGE, || {
        let log = admin.get(&SCOPE.replace("/mi", "/commands")).json();
        by_runtime = log["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| {
                Some((
                    c["runtimeId"].as_str()?.to_string(),
                    c["lastError"].as_str()?.to_string(),
                ))
            })
            .collect();
        by_runtime.len() == cases.len()
    });
    for ((name, _, code), id) in cases.iter().zip(&ids) {
        let e = &by_runtime[id];
        assert!(e.starts_with(code), "{name}: {e}");
    }
    assert!(
        by_runtime[&ids[1]].contains("JSON payload is missing"),
        "{by_runtime:?}"
    );
    // Still pending, still answering, and counted.
    let metrics = server
        .management_client()
        .request("GET", "/metrics", &[], b"")
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(
        text.lines().any(|l| l
            .starts_with("icpd_mi_management_calls_total{mode=\"direct\",outcome=\"refused\"}")
            && !l.ends_with(" 0")),
        "{text}"
    );
}

#[test]
fn a_runtime_whose_certificate_changes_after_first_contact_is_refused() {
    let server = TestServer::start(&[]);
    let secret = server.secret("dev", None);
    let port = fake_management_api(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 21\r\nConnection: close\r\n\r\n{\"count\":0,\"list\":[]}",
        true,
    );
    let b = Bridge::new(&secret, Some("impostor"));
    let mut rt = server.runtime_client();
    let r = rt
        .post_json(
            "/icp/heartbeat",
            Some(&b.token()),
            &mi_heartbeat(&b, "127.0.0.1", port, "enabled"),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.json());
    let mut admin = server.admin();
    // First contact (the loggers read that follows a registration, or
    // this one): trusted and pinned.
    let first = read(&mut admin, &b.runtime_id, "loggers");
    assert_eq!(first["state"], "ready", "{first}");
    // The next connection presents another certificate: refused; an
    // operator who replaced it on purpose clears the pin.
    let second = read(&mut admin, &b.runtime_id, "logs");
    assert_eq!(second["state"], "failed", "{second}");
    assert!(
        second["error"]
            .as_str()
            .unwrap()
            .starts_with("certificate_changed"),
        "{second}"
    );
    let r = admin.put(
        &format!("/api/v1/runtimes/{}/mi-settings", b.runtime_id),
        &json!({"forgetCertificate": true}),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["pinnedCertificate"], Value::Null);
}
