//! Service contracts (issue 18): a runtime's full heartbeat carries OpenAPI
//! definitions and a `tryItHost`; icpd stores them (checked, bounded,
//! written only when they change), serves them in the REST API and
//! GraphQL, and sends operators' Try-It requests to the runtime's own
//! host through its bounded pool, with the operator's credentials passed
//! on and never logged, and every call audited.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{
    assert_error, assert_healthz_answers_at_once, open_store, wait_for, ApiClient, Bridge,
    MiRuntime, ServeOptions, TestServer, TEST_PASSWORD,
};

/// What the echo service received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    target: String,
    authorization: Option<String>,
    trace: Option<String>,
    body: String,
}

/// A small HTTP service standing in for a runtime's listener: it answers
/// every request with a JSON echo of it, `GET /big` with 2 MiB, and records
/// what it got.
struct Echo {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Echo {
    fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let log = log.clone();
                thread::spawn(move || serve_one(conn, &log));
            }
        });
        Echo { port, received }
    }

    fn host(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn serve_one(conn: TcpStream, log: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let (mut length, mut authorization, mut trace) = (0usize, None, None);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        let (name, value) = h.split_once(':').unwrap_or((&h, ""));
        let value = value.trim().to_string();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().unwrap_or(0),
            "authorization" => authorization = Some(value),
            "x-trace" => trace = Some(value),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let got = Received {
        method,
        target,
        authorization,
        trace,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    log.lock().unwrap().push(got.clone());
    let answer = if got.target == "/big" {
        "x".repeat(2 * 1024 * 1024)
    } else {
        json!({"method": got.method, "target": got.target, "body": got.body}).to_string()
    };
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Echo: yes\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

fn orders_definition() -> Value {
    json!({
        "openapi": "3.0.1",
        "info": {"title": "Orders", "version": "1.0.0"},
        "servers": [{"url": "{server}:{port}/orders", "variables": {"server": {"default": "http://localhost"}, "port": {"default": "9090"}}}],
        "paths": {"/{id}": {"get": {"operationId": "getOrder",
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "Ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}}}}}}},
        "components": {"schemas": {"Order": {"type": "object", "properties": {"id": {"type": "string"}, "total": {"type": "number"}}}}}
    })
}

fn health_definition() -> String {
    json!({"openapi": "3.0.1", "info": {"title": "Health", "version": "1"}, "paths": {"/": {"get": {"responses": {"200": {"description": "Ok"}}}}}})
        .to_string()
}

/// A full heartbeat of `bridge` with `tryItHost` and definitions.
fn full_with(bridge: &Bridge, s: &TestServer, try_it_host: &str, defs: Value) -> Value {
    let mut body = bridge.full_body();
    body["tryItHost"] = try_it_host.into();
    body["openApiDefinitions"] = defs;
    let r = s
        .runtime_client()
        .post_json("/icp/heartbeat", Some(&bridge.token()), &body)
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.json());
    r.json()
}

fn try_it(api: &mut ApiClient, runtime: &str, auth: Option<&str>, body: &Value) -> (u16, Value) {
    let bearer = format!("Bearer {}", api.token);
    let mut headers = vec![
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    if let Some(a) = auth {
        headers.push(("X-Try-It-Authorization", a));
    }
    let r = api
        .client
        .request(
            "POST",
            &format!("/api/v1/runtimes/{runtime}/try-it"),
            &headers,
            body.to_string().as_bytes(),
        )
        .unwrap();
    (r.status, r.json())
}

fn log_lines_with(s: &TestServer, needle: &str) -> usize {
    s.log_text().lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn definitions_are_stored_served_and_a_resource_is_tried_through_icpd() {
    let s = TestServer::start_with(ServeOptions {
        env: &[("ICP_LOG", "trace")],
        ..Default::default()
    });
    let echo = Echo::start();
    let mut admin = s.admin();
    let bridge = Bridge::new(&s.secret("dev", None), Some("node-1"));
    let defs = json!({
        "orders_openapi.json": orders_definition(),
        "health_openapi.json": health_definition(),
        "notes.json": {"not": "openapi"},
    });
    let ack = full_with(&bridge, &s, &echo.host(), defs.clone());
    let fields = ack["supportedHeartbeatFields"].as_array().unwrap();
    assert!(fields.contains(&json!("openApiDefinitions")), "{ack}");
    assert!(fields.contains(&json!("tryItHost")), "{ack}");
    let id = bridge.runtime_id.clone();

    // Served: both definitions, the service each describes, and the file
    // icpd did not keep with its reason.
    let r = admin.get(&format!("/api/v1/runtimes/{id}/openapi"));
    assert_eq!(r.status, 200, "{}", r.json());
    let body = r.json();
    let items = body["items"].as_array().unwrap();
    let names: Vec<&str> = items
        .iter()
        .map(|i| i["fileName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["health_openapi.json", "notes.json", "orders_openapi.json"]
    );
    let orders = &items[2];
    assert_eq!(orders["service"], "service_1");
    assert_eq!(orders["basePath"], "/orders");
    assert_eq!(orders["definition"], orders_definition());
    assert!(orders["receivedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        items[0]["definition"]["info"]["title"], "Health",
        "JSON text is stored as JSON"
    );
    assert!(items[1]["definition"].is_null());
    assert!(items[1]["problem"]
        .as_str()
        .unwrap()
        .contains("not an OpenAPI document"));
    let t = &body["tryIt"];
    assert_eq!(t["targets"], json!([echo.host()]));
    assert_eq!(
        (
            t["available"].clone(),
            t["critical"].clone(),
            t["allowed"].clone()
        ),
        (json!(true), json!(false), json!(true))
    );

    // Written by difference: the same heartbeat writes nothing, one
    // changed file is one write, a dropped file one delete.
    let changed = "OpenAPI definitions changed";
    wait_for("the first write logged", Duration::from_secs(5), || {
        log_lines_with(&s, changed) == 1
    });
    assert!(s.log_text().contains("3 written, 0 deleted"));
    full_with(&bridge, &s, &echo.host(), defs.clone());
    let mut edited = defs.clone();
    edited["health_openapi.json"] = json!({"openapi": "3.0.1", "paths": {}}).to_string().into();
    edited.as_object_mut().unwrap().remove("notes.json");
    full_with(&bridge, &s, &echo.host(), edited);
    wait_for("the second write logged", Duration::from_secs(5), || {
        log_lines_with(&s, changed) == 2
    });
    assert!(
        s.log_text().contains("1 written, 1 deleted"),
        "the unchanged heartbeat wrote nothing"
    );
    let r = admin.get(&format!("/api/v1/runtimes/{id}/openapi"));
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        r.json()["items"][1]["receivedAt"],
        orders["receivedAt"],
        "an unchanged file keeps its time"
    );

    // The CLI shows them with the runtime.
    let out = s.cli(&["runtime", "show", &id[..8]]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "OpenAPI definitions (Try-It host: {})",
            echo.host()
        )),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("orders_openapi.json") && l.contains("service_1")),
        "{text}"
    );

    // GraphQL, as ICP's console asks for it.
    let login = s.icp_login("root", TEST_PASSWORD);
    let jwt = login.json()["token"].as_str().unwrap().to_string();
    let q =
        format!("{{ openApiDefinitionsByRuntime(runtimeId: \"{id}\") {{ fileName definition }} }}");
    let g = s
        .management_client()
        .post_json("/graphql", Some(&jwt), &json!({"query": q}))
        .unwrap()
        .json();
    let recs = g["data"]["openApiDefinitionsByRuntime"].as_array().unwrap();
    assert_eq!(recs.len(), 2, "{g}");
    assert_eq!(recs[1]["fileName"], "orders_openapi.json");
    let text: Value = serde_json::from_str(recs[1]["definition"].as_str().unwrap()).unwrap();
    assert_eq!(text, orders_definition());

    // Try-It: the resource is called on the runtime's host, with the
    // operator's credentials and header, and its answer comes back.
    let secret_auth = "Bearer runtime-credential-7f3a9c";
    let (status, answer) = try_it(
        &mut admin,
        &id,
        Some(secret_auth),
        &json!({"method": "POST", "path": "/orders/42", "query": "verbose=true",
                "headers": {"X-Trace": "t-1", "Content-Type": "application/json"}, "body": "{\"qty\":2}"}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], 201);
    assert_eq!(answer["url"], format!("{}/orders/42", echo.host()));
    let echoed: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["target"], "/orders/42?verbose=true");
    assert!(
        answer["headers"]
            .as_array()
            .unwrap()
            .contains(&json!(["X-Echo", "yes"])),
        "{answer}"
    );
    assert!(answer["durationMs"].as_u64().is_some());
    let got = echo.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].authorization.as_deref(), Some(secret_auth));
    assert_eq!(got[0].trace.as_deref(), Some("t-1"));
    assert_eq!(got[0].body, "{\"qty\":2}");

    // No open proxy: only what the runtime reported.
    for target in [
        "http://127.0.0.1:1",
        "http://evil.example:80",
        "file:///etc/passwd",
    ] {
        let (status, e) = try_it(
            &mut admin,
            &id,
            None,
            &json!({"method": "GET", "path": "/", "target": target}),
        );
        assert_eq!(status, 400, "{target}: {e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&echo.host()),
            "{e}"
        );
    }
    let (status, e) = try_it(
        &mut admin,
        &id,
        None,
        &json!({"method": "GET", "path": "/", "headers": {"Host": "evil"}}),
    );
    assert_eq!(status, 400, "{e}");
    assert_eq!(
        echo.received().len(),
        1,
        "nothing refused reached the runtime"
    );

    // Bounded: an answer over 1 MiB is refused with a message.
    let (status, e) = try_it(
        &mut admin,
        &id,
        None,
        &json!({"method": "GET", "path": "/big"}),
    );
    assert_eq!(status, 503, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("limit"),
        "{e}"
    );

    // Who may: a Viewer may read the definitions but not try; a
    // Developer may try in dev.
    let mut viewer = s.api_as("vera", Some("Viewer"));
    let r = viewer.get(&format!("/api/v1/runtimes/{id}/openapi"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["tryIt"]["allowed"], false);
    let (status, e) = try_it(
        &mut viewer,
        &id,
        None,
        &json!({"method": "GET", "path": "/orders/1"}),
    );
    assert_eq!(status, 403, "{e}");
    let mut dev = s.api_as("devon", Some("Developer"));
    let (status, answer) = try_it(
        &mut dev,
        &id,
        None,
        &json!({"method": "GET", "path": "/orders/7"}),
    );
    assert_eq!(
        (status, answer["status"].clone()),
        (200, json!(201)),
        "{answer}"
    );
    assert_eq!(echo.received().last().unwrap().authorization, None);

    // Audited, without the credentials.
    let audit = open_store(&s.data_dir)
        .read(|tx| {
            tx.audit(&icpd::store::AuditFilter {
                limit: 100,
                ..Default::default()
            })
        })
        .unwrap()
        .0;
    let tried: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "POST /api/v1/runtimes/{runtimeId}/try-it")
        .collect();
    assert!(
        tried.iter().any(|a| a.actor == "root"
            && a.target == format!("runtime {id} POST {}/orders/42: answered 201", echo.host())
            && a.outcome == "ok"),
        "{tried:?}"
    );
    assert!(
        tried
            .iter()
            .any(|a| a.actor == "vera" && a.outcome == "refused 403"),
        "{tried:?}"
    );
    assert!(
        tried.iter().any(|a| a.outcome == "refused 503"),
        "{tried:?}"
    );
    assert!(!format!("{audit:?}").contains("runtime-credential"));

    // Never logged, not even at trace level.
    let log = s.log_text();
    assert!(log.contains("/try-it"), "the calls are in the trace log");
    assert!(
        !log.contains("runtime-credential-7f3a9c"),
        "the credential leaked into the log"
    );

    // Counted.
    let m = admin.get("/metrics");
    let text = String::from_utf8_lossy(&m.body).into_owned();
    assert!(
        text.contains("icpd_try_it_calls_total{outcome=\"ok\"} 2"),
        "{text}"
    );
    assert!(text.contains("icpd_try_it_pool_running_calls 0"), "{text}");
}

#[test]
fn critical_environments_need_environment_manage_and_a_confirmation() {
    let s = TestServer::start(&[]);
    let echo = Echo::start();
    let mut admin = s.admin();
    let mut dev = s.api_as("devon", Some("Developer"));
    let mut bridge = Bridge::new(&s.secret("prod", None), Some("prod-1"));
    bridge.env = "prod".into();
    full_with(
        &bridge,
        &s,
        &echo.host(),
        json!({"orders_openapi.json": orders_definition()}),
    );
    let id = bridge.runtime_id.clone();
    let call = json!({"method": "GET", "path": "/orders/1"});

    let r = admin.get(&format!("/api/v1/runtimes/{id}/openapi"));
    assert_eq!(r.json()["tryIt"]["critical"], true);
    assert_eq!(r.json()["tryIt"]["allowed"], true);
    let r = dev.get(&format!("/api/v1/runtimes/{id}/openapi"));
    assert_eq!(
        r.json()["tryIt"]["allowed"],
        false,
        "a Developer lacks environment:manage"
    );
    let (status, e) = try_it(
        &mut dev,
        &id,
        None,
        &json!({"method": "GET", "path": "/orders/1", "confirm": true}),
    );
    assert_eq!(status, 403, "{e}");
    let (status, e) = try_it(&mut admin, &id, None, &call);
    assert_eq!(status, 409, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("confirm"),
        "{e}"
    );
    assert!(echo.received().is_empty());
    let (status, answer) = try_it(
        &mut admin,
        &id,
        None,
        &json!({"method": "GET", "path": "/orders/1", "confirm": true}),
    );
    assert_eq!(
        (status, answer["status"].clone()),
        (200, json!(201)),
        "{answer}"
    );
    assert_eq!(echo.received().len(), 1);
}

#[test]
fn a_runtime_that_cannot_be_reached_or_is_offline_gets_a_clear_answer() {
    let s = TestServer::start(&[]);
    let mut admin = s.admin();
    // A port nothing listens on.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let bridge = Bridge::new(&s.secret("dev", None), Some("gone-1"));
    full_with(
        &bridge,
        &s,
        &format!("http://127.0.0.1:{closed}"),
        json!({}),
    );
    let id = bridge.runtime_id.clone();
    let started = Instant::now();
    let (status, e) = try_it(
        &mut admin,
        &id,
        None,
        &json!({"method": "GET", "path": "/"}),
    );
    assert_eq!(status, 503, "{e}");
    assert_error_message(&e, "did not answer");
    assert!(started.elapsed() < Duration::from_secs(5));

    // No tryItHost: nothing to try, and the console is told why.
    let quiet = Bridge::new(&s.secret("dev", None), Some("quiet-1"));
    let r = s
        .runtime_client()
        .post_json("/icp/heartbeat", Some(&quiet.token()), &quiet.full_body())
        .unwrap();
    assert_eq!(r.status, 200);
    let r = admin.get(&format!("/api/v1/runtimes/{}/openapi", quiet.runtime_id));
    assert_eq!(r.json()["items"], json!([]));
    assert_eq!(r.json()["tryIt"]["available"], false);
    assert_eq!(
        r.json()["tryIt"]["reason"],
        "the runtime reported no tryItHost"
    );
    let (status, e) = try_it(
        &mut admin,
        &quiet.runtime_id,
        None,
        &json!({"method": "GET", "path": "/"}),
    );
    assert_eq!(status, 409, "{e}");

    // OFFLINE: refused before anything is sent.
    let mut body = bridge.full_body();
    body["status"] = "OFFLINE".into();
    body["tryItHost"] = format!("http://127.0.0.1:{closed}").into();
    s.runtime_client()
        .post_json("/icp/heartbeat", Some(&bridge.token()), &body)
        .unwrap();
    let (status, e) = try_it(
        &mut admin,
        &id,
        None,
        &json!({"method": "GET", "path": "/"}),
    );
    assert_eq!(status, 409, "{e}");
    assert_error_message(&e, "OFFLINE");

    // Bad input is a 400 naming the field, and unknown runtimes a 404.
    let r = admin.post(
        &format!("/api/v1/runtimes/{id}/try-it"),
        &json!({"method": "GET"}),
    );
    assert_error(&r, 400, "bad_request");
    let r = admin.post(
        "/api/v1/runtimes/00000000-0000-0000-0000-000000000000/try-it",
        &json!({"method": "GET", "path": "/"}),
    );
    assert_error(&r, 404, "not_found");
    let r = admin.get("/api/v1/runtimes/00000000-0000-0000-0000-000000000000/openapi");
    assert_error(&r, 404, "not_found");
}

fn assert_error_message(e: &Value, part: &str) {
    let m = e["error"]["message"].as_str().unwrap_or_default();
    assert!(m.contains(part), "expected '{part}' in {e}");
}

#[test]
fn micro_integrator_apis_are_tried_by_their_context() {
    let s = TestServer::start(&[]);
    let echo = Echo::start();
    let mut admin = s.admin();
    let secret = s.secret("dev", None);
    let mut mi = MiRuntime::new(&secret, "dev", "health", "health-mi", "mi-node-1");
    let url = format!("{}/healthcare", echo.host());
    mi.artifacts["apis"][0]["url"] = url.clone().into();
    mi.artifacts["apis"][0]["urls"] = json!([url, "https://mi-node-1.example.com:8253/healthcare"]);
    let r = mi.full(&mut s.runtime_client());
    assert_eq!(r.status, 200, "{}", r.json());

    let r = admin.get(&format!("/api/v1/runtimes/{}/openapi", mi.runtime_id));
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["items"], json!([]));
    assert_eq!(
        r.json()["tryIt"]["targets"],
        json!([echo.host(), "https://mi-node-1.example.com:8253"])
    );
    let (status, answer) = try_it(
        &mut admin,
        &mi.runtime_id,
        Some("Basic YWRtaW46YWRtaW4="),
        &json!({"method": "GET", "path": "/healthcare/doctors/surgery", "target": echo.host()}),
    );
    assert_eq!(
        (status, answer["status"].clone()),
        (200, json!(201)),
        "{answer}"
    );
    let got = echo.received();
    assert_eq!(got[0].target, "/healthcare/doctors/surgery");
    assert_eq!(
        got[0].authorization.as_deref(),
        Some("Basic YWRtaW46YWRtaW4=")
    );
}

#[test]
fn a_runtime_that_hangs_costs_a_pool_thread_not_a_request_worker() {
    // Accepts connections and never answers.
    let hang = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hang.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut held = Vec::new();
        for c in hang.incoming() {
            held.push(c);
        }
    });
    let s = TestServer::start_with(ServeOptions {
        icp_toml: Some("[http]\nworkers = 2\n\n[try_it]\ntimeout = \"2s\"\n"),
        ..ServeOptions::default()
    });
    let admin = s.admin();
    let bridge = Bridge::new(&s.secret("dev", None), Some("hang-1"));
    full_with(&bridge, &s, &format!("http://127.0.0.1:{port}"), json!({}));
    // Six calls, three times the request workers, more than the pool's 4 threads.
    let waiting: Vec<_> = (0..6)
        .map(|_| {
            let mut api = ApiClient {
                client: s.management_client(),
                token: admin.token.clone(),
            };
            api.client.set_timeout(Duration::from_secs(30));
            let id = bridge.runtime_id.clone();
            thread::spawn(move || {
                let started = Instant::now();
                let (status, body) =
                    try_it(&mut api, &id, None, &json!({"method": "GET", "path": "/"}));
                (status, body, started.elapsed())
            })
        })
        .collect();
    let mut c = s.management_client();
    wait_for(
        "four calls running on the pool",
        Duration::from_secs(5),
        || {
            let m = c.request("GET", "/metrics", &[], b"").unwrap();
            String::from_utf8_lossy(&m.body).contains("icpd_try_it_pool_running_calls 4")
        },
    );
    // Meanwhile the server answers at once: no request worker waits.
    assert_healthz_answers_at_once(&mut c);
    for w in waiting {
        let (status, body, took) = w.join().unwrap();
        assert_eq!(status, 503, "{body}");
        assert_error_message(&body, "within 2.0 s");
        assert!(took < Duration::from_secs(8), "{took:?}");
    }
}

#[test]
fn try_it_can_be_switched_off() {
    let echo = Echo::start();
    let s = TestServer::start_with(ServeOptions {
        icp_toml: Some("[try_it]\nenabled = false\n"),
        ..ServeOptions::default()
    });
    let mut admin = s.admin();
    let bridge = Bridge::new(&s.secret("dev", None), Some("off-1"));
    full_with(
        &bridge,
        &s,
        &echo.host(),
        json!({"orders_openapi.json": orders_definition()}),
    );
    let r = admin.get(&format!("/api/v1/runtimes/{}/openapi", bridge.runtime_id));
    assert_eq!(
        r.json()["items"].as_array().unwrap().len(),
        1,
        "definitions are still served"
    );
    assert_eq!(r.json()["tryIt"]["available"], false);
    assert!(r.json()["tryIt"]["reason"]
        .as_str()
        .unwrap()
        .contains("switched off"));
    let (status, e) = try_it(
        &mut admin,
        &bridge.runtime_id,
        None,
        &json!({"method": "GET", "path": "/orders/1"}),
    );
    assert_eq!(status, 409, "{e}");
    assert!(echo.received().is_empty());
}
