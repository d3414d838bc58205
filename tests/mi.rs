//! Micro Integrator runtimes under hostile or heavy input (issue 14): a
//! full heartbeat of 10,000 artifacts is stored once and then only by
//! difference, while other runtimes' delta heartbeats keep being answered;
//! a body over the limit is refused from its head and the server goes on.
//! The tests speak as MI does ([`MiRuntime`]: its token, its payload, a
//! delta first). The malformed-payload cases are in `bad_input.rs`.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;

use crate::harness::{assert_ack, wait_for, MiRuntime, ServeOptions, TestServer};

/// Sends `body` as one MI full heartbeat on a fresh TLS connection, sets
/// `written` once its last byte is written, and returns the status and
/// JSON body of the answer.
fn post_full(
    server: &TestServer,
    mi: &MiRuntime,
    body: &[u8],
    written: &AtomicBool,
) -> (u16, Value) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(server.cert()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let addr = server.runtime_url.strip_prefix("https://").unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let head = format!(
        "POST /icp/heartbeat HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        mi.token(),
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    s.flush().unwrap();
    written.store(true, Ordering::SeqCst);
    let mut reply = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // A close without close_notify after a complete answer.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("reading the answer: {e}"),
        }
    }
    let text = String::from_utf8(reply).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete answer");
    let status = head[9..12].parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

/// The lines of the server's log where `runtime_id`'s artifact rows were
/// written (`icpd::protocol` at debug: "artifacts changed, ArtifactWrites
/// {...}"), in the order they were written.
fn artifact_writes(server: &TestServer, runtime_id: &str) -> Vec<String> {
    let marker = format!("runtime {runtime_id}: artifacts changed, ");
    server
        .log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| l.split_once(&marker).map(|(_, w)| w.to_string()))
        .collect()
}

/// `GET /api/v1/runtimes/{id}`: the runtime's MI artifacts, all kinds.
fn stored_artifacts(api: &mut crate::harness::ApiClient, runtime_id: &str) -> Vec<Value> {
    let r = api.get(&format!("/api/v1/runtimes/{runtime_id}"));
    assert_eq!(r.status, 200);
    let detail = r.json();
    detail["miArtifacts"]
        .as_object()
        .unwrap_or_else(|| panic!("no miArtifacts in {}", detail["runtimeId"]))
        .values()
        .flat_map(|list| list.as_array().unwrap().clone())
        .collect()
}

#[test]
fn mi_hostile_ten_thousand_artifacts_are_stored_once_then_by_difference_while_deltas_flow() {
    // Deltas unlimited: the loop below sends them as fast as answered.
    let server = TestServer::start_with(ServeOptions {
        env: &[("ICP_LOG", "info,icpd::protocol=debug")],
        icp_toml: Some("[heartbeat_limits]\ndelta_per_second = 0\n"),
        ..ServeOptions::default()
    });
    let secret = server.secret("dev", None);
    let mut runtime = server.runtime_client();
    // A small MI beside: it starts with a delta, as MI does, and is asked
    // for its full heartbeat.
    let small = MiRuntime::new(&secret, "dev", "order-service", "order-mi", "mi-small");
    assert!(
        assert_ack(&small.delta(&mut runtime)),
        "an unseen runtime is asked for a full heartbeat"
    );
    assert!(!assert_ack(&small.full(&mut runtime)));
    assert!(!assert_ack(&small.delta(&mut runtime)));

    let mut big =
        MiRuntime::new(&secret, "dev", "order-service", "order-mi", "mi-big").with_proxies(10_000);
    let count = big.artifact_count();
    assert_eq!(
        count, 10_014,
        "10,000 proxy services and one of each other kind"
    );
    let body = big.full_body().to_string();
    assert!(
        body.len() < 4 * 1024 * 1024,
        "{} bytes: within the body limit",
        body.len()
    );

    // The big heartbeat on its own connection; deltas of the small runtime
    // on another, counted when sent after the big body's last byte and
    // answered before the big answer arrived.
    let (written, answered) = (AtomicBool::new(false), AtomicBool::new(false));
    let (in_flight, (status, reply)) = std::thread::scope(|scope| {
        let big_request = scope.spawn(|| {
            let r = post_full(&server, &big, body.as_bytes(), &written);
            answered.store(true, Ordering::SeqCst);
            r
        });
        let mut in_flight = 0;
        while !answered.load(Ordering::SeqCst) {
            let sent_after_body = written.load(Ordering::SeqCst);
            assert!(!assert_ack(&small.delta(&mut runtime)));
            if sent_after_body && !answered.load(Ordering::SeqCst) {
                in_flight += 1;
            }
        }
        (in_flight, big_request.join().unwrap())
    });
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["acknowledged"], true, "{reply}");
    assert_eq!(reply["fullHeartbeatRequired"], false, "{reply}");
    eprintln!(
        "MI full heartbeat of {count} artifacts ({} bytes): {in_flight} delta heartbeats of another runtime answered while it was in flight",
        body.len()
    );
    assert!(
        in_flight >= 1,
        "no delta heartbeat was answered while the big full heartbeat was processed"
    );

    let mut api = server.admin();
    let stored = stored_artifacts(&mut api, &big.runtime_id);
    assert_eq!(stored.len(), count, "every artifact is a row");
    let first = format!("ArtifactWrites {{ inserted: {count}, updated: 0, deleted: 0 }}");
    wait_for(
        "the first write in the log",
        Duration::from_secs(10),
        || artifact_writes(&server, &big.runtime_id) == [first.clone()],
    );

    // The same again: acknowledged, nothing written.
    assert!(!assert_ack(&big.full(&mut runtime)));
    // Changed: three proxies disabled, two undeployed, one deployed.
    let proxies = big.artifacts["proxyServices"].as_array_mut().unwrap();
    for p in &mut proxies[..3] {
        p["state"] = "disabled".into();
    }
    proxies.truncate(proxies.len() - 2);
    proxies.push(MiRuntime::proxy("proxy-new"));
    assert!(!assert_ack(&big.full(&mut runtime)));
    let third = "ArtifactWrites { inserted: 1, updated: 3, deleted: 2 }".to_string();
    // The log is in order: once the third heartbeat's write is there, a
    // write by the second would be too, between the two.
    wait_for(
        "the changed heartbeat's write in the log",
        Duration::from_secs(10),
        || artifact_writes(&server, &big.runtime_id).len() >= 2,
    );
    assert_eq!(
        artifact_writes(&server, &big.runtime_id),
        [first, third],
        "the identical heartbeat wrote nothing; the changed one only the difference"
    );
    let stored = stored_artifacts(&mut api, &big.runtime_id);
    assert_eq!(stored.len(), count - 1);
    let disabled: Vec<&str> = stored
        .iter()
        .filter(|a| a["state"] == "disabled")
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(disabled, ["proxy-00000", "proxy-00001", "proxy-00002"]);
    assert!(stored.iter().any(|a| a["name"] == "proxy-new"));
    assert!(!stored.iter().any(|a| a["name"] == "proxy-09999"));
}

#[test]
fn mi_hostile_body_over_the_limit_is_413_and_the_server_keeps_answering() {
    let server = TestServer::start(&[]);
    let secret = server.secret("dev", None);
    let mut runtime = server.runtime_client();
    let mi = MiRuntime::new(&secret, "dev", "order-service", "order-mi", "mi-node-1");
    assert!(!assert_ack(&mi.full(&mut runtime)));

    // 20,000 proxies: within MAX_ARTIFACTS, over the 4 MiB body limit.
    let huge = mi.clone().with_proxies(20_000);
    let body = huge.full_body().to_string();
    assert!(body.len() > 4 * 1024 * 1024, "{} bytes", body.len());
    // The answer comes from the head: MI's client would be writing the
    // body still, so only its first 64 KiB are sent here.
    let auth = format!("Bearer {}", huge.token());
    let length = body.len().to_string();
    let mut c = server.runtime_client();
    let r = c
        .request(
            "POST",
            "/icp/heartbeat",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
                ("Content-Length", &length),
            ],
            &body.as_bytes()[..64 * 1024],
        )
        .unwrap();
    let v = r.json();
    assert_eq!(r.status, 413, "{v}");
    assert_eq!(v["error"]["code"], "body_too_large", "{v}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "MI logs body.message: {v}"
    );

    // The server goes on: the runtime's deltas and full heartbeats, and
    // the heartbeat it sent, stored as before.
    assert!(!assert_ack(&mi.delta(&mut runtime)));
    assert!(!assert_ack(&mi.full(&mut runtime)));
    let mut api = server.admin();
    assert_eq!(
        stored_artifacts(&mut api, &mi.runtime_id).len(),
        mi.artifact_count()
    );
}
