//! Live events (`GET /api/v1/events`, Server-Sent Events): registrations,
//! time-outs, recoveries and command convergence reach a subscriber within
//! 2 s, filtered by what it may view; and the connection layer's streams:
//! a peer that stops reading is dropped without hurting the others, the
//! stream cap, closed peers, keep-alives and shutdown.

use std::net::TcpListener;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use icpd::http::{Limits, Request, Response, Server};
use serde_json::json;

use crate::harness::{wait_for, Bridge, Opened, Sse, TestServer};

const PROJECT: &str = "order-service";
const INTEGRATION: &str = "order-create";

fn open_stream(s: &TestServer, headers: &[(&str, &str)]) -> Sse {
    match s.open_sse("/api/v1/events", headers) {
        Opened::Stream(sse) => sse,
        Opened::Refused(status, body) => panic!("events refused: {status} {body}"),
    }
}

fn subscribe(s: &TestServer, token: &str) -> Sse {
    let auth = format!("Bearer {token}");
    let mut sse = open_stream(s, &[("Authorization", &auth)]);
    assert_eq!(
        sse.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    assert_eq!(sse.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(sse.header("x-accel-buffering").as_deref(), Some("no"));
    assert_eq!(sse.header("content-length"), None);
    let hello = sse.next_event(Duration::from_secs(2)).expect("hello");
    assert_eq!(hello.event, "hello");
    assert!(hello.data["at"].as_str().is_some_and(|a| a.ends_with('Z')));
    sse
}

const SOON: Duration = Duration::from_secs(2);

#[test]
fn registrations_status_changes_and_commands_reach_subscribers_who_may_see_them() {
    let s = TestServer::start(&["--heartbeat-timeout", "1s"]);
    let mut admin = s.admin();
    let secret = s.secret("dev", Some((PROJECT, INTEGRATION)));
    let other_secret = s.secret("dev", Some(("other-project", "other-int")));
    let outsider = s.api_as("outsider", None);
    let r = admin.post(
        "/api/v1/role-assignments",
        &json!({"role": "Viewer", "user": "outsider",
                "scope": {"type": "project", "project": "other-project"}}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let mut events = subscribe(&s, &admin.token);
    let mut others = subscribe(&s, &outsider.token);

    // Registration.
    let mut node = Bridge::new(&secret, Some("n1"));
    let mut rc = s.runtime_client();
    assert_eq!(node.full(&mut rc).status, 200);
    let id = node.runtime_id.clone();
    let reg = events.expect("runtime.registered", SOON, |d| d["runtimeId"] == id);
    assert_eq!(reg["name"], "n1");
    assert_eq!(reg["runtimeType"], "BI");
    assert_eq!(
        (&reg["environment"], &reg["project"], &reg["integration"]),
        (&json!("dev"), &json!(PROJECT), &json!(INTEGRATION))
    );
    assert!(reg["at"].as_str().is_some());

    // Silence for the heartbeat timeout: OFFLINE, and the REST API agrees.
    let offline = events.expect("runtime.status", Duration::from_secs(1) + SOON, |d| {
        d["runtimeId"] == id
    });
    assert_eq!(offline["status"], "OFFLINE");
    assert_eq!(offline["integration"], INTEGRATION);
    let shown = admin.get(&format!("/api/v1/runtimes/{id}")).json();
    assert_eq!(shown["status"], "OFFLINE", "{shown}");

    // A delta heartbeat brings it back.
    assert_eq!(node.delta(&mut rc).status, 200);
    let running = events.expect("runtime.status", SOON, |d| d["runtimeId"] == id);
    assert_eq!(running["status"], "RUNNING");

    // Stopping the listener: PENDING now, CONVERGED once the runtime reports it.
    let r = admin.put(
        &format!("/api/v1/projects/{PROJECT}/integrations/{INTEGRATION}/environments/dev/listeners/listener_1"),
        &json!({"state": "disabled"}),
    );
    assert_eq!(r.status, 202, "{}", r.json());
    let command_id = r.json()["commands"][0]["commandId"]
        .as_str()
        .unwrap()
        .to_string();
    let pending = events.expect("command", SOON, |d| d["commandId"] == command_id);
    assert_eq!(pending["status"], "PENDING");
    assert_eq!(
        (
            &pending["action"],
            &pending["target"],
            &pending["runtimeId"]
        ),
        (&json!("STOP"), &json!("listener_1"), &json!(id))
    );
    let delivered = node.delta(&mut rc).json();
    assert_eq!(
        delivered["commands"][0]["commandId"], command_id,
        "{delivered}"
    );
    node.listener_state = "disabled".into();
    assert_eq!(node.full(&mut rc).status, 200);
    let converged = events.expect("command", SOON, |d| d["commandId"] == command_id);
    assert_eq!(converged["status"], "CONVERGED");
    assert_eq!(converged["project"], PROJECT);

    // The outsider may only view other-project: the first thing it sees
    // after hello is a registration there, none of the above.
    let mut elsewhere = Bridge::new(&other_secret, Some("x1"));
    elsewhere.project = "other-project".into();
    elsewhere.integration = "other-int".into();
    assert_eq!(elsewhere.full(&mut rc).status, 200);
    let first = others.next_event(SOON).expect("an event for other-project");
    assert_eq!(first.event, "runtime.registered", "{first:?}");
    assert_eq!(first.data["runtimeId"], elsewhere.runtime_id.as_str());
    events.expect("runtime.registered", SOON, |d| {
        d["runtimeId"] == elsewhere.runtime_id.as_str()
    });

    // Deleting a runtime through the API: runtime.removed.
    assert_eq!(admin.delete(&format!("/api/v1/runtimes/{id}")).status, 204);
    let removed = events.expect("runtime.removed", SOON, |d| d["runtimeId"] == id);
    assert_eq!(removed["environment"], "dev");
}

#[test]
fn a_replaced_runtime_is_removed_by_name() {
    let s = TestServer::start(&[]);
    let admin = s.admin();
    let secret = s.secret("dev", Some((PROJECT, INTEGRATION)));
    let mut events = subscribe(&s, &admin.token);
    let mut rc = s.runtime_client();
    let old = Bridge::new(&secret, Some("n1"));
    assert_eq!(old.full(&mut rc).status, 200);
    events.expect("runtime.registered", SOON, |d| {
        d["runtimeId"] == old.runtime_id.as_str()
    });
    // The node restarts with a new runtimeId while the old one is OFFLINE.
    let mut body = old.full_body();
    body["status"] = "OFFLINE".into();
    let r = rc
        .post_json("/icp/heartbeat", Some(&old.token()), &body)
        .unwrap();
    assert_eq!(r.status, 200);
    events.expect("runtime.status", SOON, |d| {
        d["runtimeId"] == old.runtime_id.as_str() && d["status"] == "OFFLINE"
    });
    let new = Bridge::new(&secret, Some("n1"));
    assert_eq!(new.full(&mut rc).status, 200);
    let gone = events.expect("runtime.removed", SOON, |d| {
        d["runtimeId"] == old.runtime_id.as_str()
    });
    assert_eq!(gone["integration"], INTEGRATION);
    events.expect("runtime.registered", SOON, |d| {
        d["runtimeId"] == new.runtime_id.as_str()
    });
}

#[test]
fn streams_need_a_signed_in_user_and_accept_the_session_cookie() {
    let mut s = TestServer::start(&[]);
    match s.open_sse("/api/v1/events", &[]) {
        Opened::Refused(status, body) => {
            assert_eq!(status, 401, "{body}");
            assert_eq!(body["error"]["code"], "unauthorized", "{body}");
        }
        Opened::Stream(_) => panic!("anonymous stream"),
    }
    let _admin = s.admin();
    let r = s.login("root", crate::harness::TEST_PASSWORD);
    let cookie = crate::harness::session_cookie(&r);
    let mut sse = open_stream(&s, &[("Cookie", &cookie)]);
    assert_eq!(sse.next_event(SOON).expect("hello").event, "hello");

    // Logging out ends the user's streams; a change of roles ends everyone's.
    let token = r.json()["token"].as_str().unwrap().to_string();
    let mut by_token = subscribe(&s, &token);
    let mut other = crate::harness::ApiClient {
        client: s.management_client(),
        token,
    };
    assert_eq!(
        other
            .post("/api/v1/auth/logout", &serde_json::json!({}))
            .status,
        204
    );
    assert!(
        sse.closed_within(SOON),
        "the cookie stream outlived the logout"
    );
    assert!(
        by_token.closed_within(SOON),
        "the token stream outlived the logout"
    );
    let mut viewer = s.api_as("vera", Some("Viewer"));
    let mut root = s.admin_again();
    let mut vera_stream = subscribe(&s, &viewer.token.clone());
    let r = root.post(
        "/api/v1/role-assignments",
        &serde_json::json!({"role": "Developer", "user": "vera"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    assert!(
        vera_stream.closed_within(SOON),
        "a stream outlived a change of roles"
    );
    assert_eq!(
        viewer.get("/api/v1/auth/me").status,
        200,
        "the session itself goes on"
    );
    let cookie = crate::harness::session_cookie(&s.login("root", crate::harness::TEST_PASSWORD));
    let mut sse = open_stream(&s, &[("Cookie", &cookie)]);
    assert_eq!(sse.next_event(SOON).expect("hello").event, "hello");

    // Shutdown with a stream open: prompt (the stream does not hold it for
    // the grace that requests in flight get), clean exit, stream closed.
    let started = Instant::now();
    assert_eq!(s.stop(), Some(0));
    assert!(
        started.elapsed() < icpd::daemon::SHUTDOWN_GRACE,
        "shutdown waited out the grace: {:?}",
        started.elapsed()
    );
    assert!(sse.closed_within(SOON), "stream still open after shutdown");
}

// ---- the connection layer ------------------------------------------------

/// A server whose every request opens a stream fed by a sender it hands
/// to the test.
struct StreamServer {
    server: Option<Server>,
    senders: Arc<Mutex<Vec<SyncSender<String>>>>,
}

impl StreamServer {
    fn start(limits: Limits) -> StreamServer {
        let senders: Arc<Mutex<Vec<SyncSender<String>>>> = Arc::default();
        let out = senders.clone();
        let handler = move |_req: &Request| {
            let (tx, rx) = sync_channel(8);
            out.lock().unwrap().push(tx);
            Response::event_stream(rx)
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = Server::start("sse-test", listener, None, limits, Arc::new(handler)).unwrap();
        StreamServer {
            server: Some(server),
            senders,
        }
    }

    fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    fn url(&self) -> String {
        format!("http://{}", self.server().local_addr())
    }

    fn open(&self) -> Opened {
        Sse::open(&self.url(), std::path::Path::new(""), "/events", &[])
    }

    fn stream(&self) -> (Sse, SyncSender<String>) {
        let Opened::Stream(sse) = self.open() else {
            panic!("refused")
        };
        // The only sender: dropping it ends the stream.
        let tx = self.senders.lock().unwrap().pop().unwrap();
        (sse, tx)
    }
}

fn event(n: usize) -> String {
    format!("event: tick\ndata: {{\"n\":{n}}}\n\n")
}

#[test]
fn a_peer_that_stops_reading_is_dropped_and_the_others_keep_their_stream() {
    let ts = StreamServer::start(Limits::default());
    let (mut reader, reader_tx) = ts.stream();
    let (_stalled, stalled_tx) = ts.stream();
    assert_eq!(ts.server().active_streams(), 2);

    // Feed the stalled peer until the server gives up on it. Kernel buffers
    // take a few MB first; the bound is what ends it.
    let big = format!("event: big\ndata: \"{}\"\n\n", "x".repeat(64 * 1024));
    let started = Instant::now();
    let mut sent = 0usize;
    while stalled_tx.send(big.clone()).is_ok() {
        sent += big.len();
        assert!(
            started.elapsed() < Duration::from_secs(30) && sent < 256 << 20,
            "a peer that does not read was not dropped after {sent} bytes"
        );
    }
    wait_for("the stalled stream to close", SOON, || {
        ts.server().active_streams() == 1
    });

    // The reading peer was not held up and still gets its events.
    for n in 0..3 {
        reader_tx.send(event(n)).unwrap();
        let f = reader.next_event(SOON).expect("event after the drop");
        assert_eq!((f.event.as_str(), &f.data), ("tick", &json!({"n": n})));
    }
}

#[test]
fn streams_are_capped_closed_with_their_peer_kept_alive_and_shut_down() {
    let mut ts = StreamServer::start(Limits {
        max_streams: 2,
        stream_keep_alive: Duration::from_millis(200),
        ..Limits::default()
    });
    let (mut a, a_tx) = ts.stream();
    let (b, _b_tx) = ts.stream();
    match ts.open() {
        Opened::Refused(status, body) => {
            assert_eq!(status, 503);
            assert_eq!(body["error"]["code"], "too_many_streams", "{body}");
        }
        Opened::Stream(_) => panic!("a third stream over the cap of 2"),
    }

    // Nothing to send: keep-alive comments.
    let f = a.next_frame(SOON).expect("a keep-alive");
    assert_eq!(f.event, ":keep-alive");
    // Empty frames (the live tail's probes for gone subscribers, four a
    // second) write nothing and do not hold the keep-alive back.
    let probing = Instant::now();
    let f = loop {
        a_tx.send(String::new()).unwrap();
        if let Some(f) = a.next_frame(Duration::from_millis(50)) {
            break f;
        }
        assert!(probing.elapsed() < SOON, "no keep-alive while probed");
    };
    assert_eq!(f.event, ":keep-alive");

    // A peer that goes away frees its place.
    drop(b);
    wait_for("the closed stream to be noticed", SOON, || {
        ts.server().active_streams() == 1
    });
    let (mut c, c_tx) = ts.stream();
    c_tx.send(event(7)).unwrap();
    assert_eq!(c.next_event(SOON).unwrap().data, json!({"n": 7}));

    // The sender going away ends the stream.
    drop(c_tx);
    assert!(c.closed_within(SOON));

    // Shutdown closes the rest at once, without waiting out its grace.
    a_tx.send(event(1)).unwrap();
    assert_eq!(a.next_event(SOON).unwrap().data, json!({"n": 1}));
    const GRACE: Duration = Duration::from_secs(10);
    let started = Instant::now();
    ts.server.take().unwrap().shutdown(GRACE);
    assert!(
        started.elapsed() < GRACE,
        "shutdown waited out the grace: {:?}",
        started.elapsed()
    );
    assert!(a.closed_within(SOON));
}
