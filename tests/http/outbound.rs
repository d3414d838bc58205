//! Tests of `http::outbound::send`, the only code that dials runtimes,
//! against listeners started here on port 0: silent, garbled, trickling,
//! oversized and refusing peers, and TLS peers for the three trust modes
//! (pin on first use, a changed pin, a CA store that lacks the
//! certificate). Time bounds are generous multiples of the configured
//! timeouts, so a loaded two-core machine cannot break them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use icpd::http::outbound::{
    certificate_sha256, send, OutboundError, OutboundRequest, PeerTrust, Phase, Scheme, Timeouts,
};

/// How long a test server waits on its client before giving up, so no
/// server thread outlives its test for long.
const SERVER_PATIENCE: Duration = Duration::from_secs(20);

/// Starts a listener that hands each of its next `n` connections to
/// `serve`, one after the other, on one thread.
fn serve(n: usize, serve: impl Fn(TcpStream) + Send + 'static) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        for _ in 0..n {
            let (s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(SERVER_PATIENCE)).unwrap();
            s.set_write_timeout(Some(SERVER_PATIENCE)).unwrap();
            serve(s);
        }
    });
    (port, handle)
}

/// Reads one request (head and Content-Length body); `None` if the client
/// went away first.
fn read_request(s: &mut impl Read) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8(buf).unwrap();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((head, body))
}

fn request(port: u16, timeouts: Timeouts) -> OutboundRequest {
    let mut r = OutboundRequest::new(
        Scheme::Http,
        "127.0.0.1",
        port,
        "GET",
        "/management/logging",
    );
    r.timeouts = timeouts;
    r
}

fn short() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(1),
        total: Duration::from_secs(1),
    }
}

/// A call that failed within five times its total budget and not before it.
fn assert_timed_out(e: OutboundError, phase: Phase, took: Duration, total: Duration) {
    match &e {
        OutboundError::Timeout {
            phase: p, after, ..
        } => {
            assert_eq!(*p, phase, "{e}");
            assert!(*after >= total, "gave up early: {after:?}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(e.kind(), "timeout");
    assert!(took < total * 5, "returned after {took:?}");
}

#[test]
fn one_framed_request_per_connection() {
    let (tx, rx) = mpsc::channel();
    let (port, server) = serve(1, move |mut s| {
        let got = read_request(&mut s).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}")
            .unwrap();
        tx.send(got).unwrap();
    });
    let mut r = request(port, Timeouts::default())
        .header("Authorization", "Bearer tok")
        .header("Content-Type", "application/json")
        .with_body(br#"{"name":"P"}"#.to_vec());
    r.method = "POST".into();
    r.path_and_query = "/management/proxy-services?x=a%20b".into();
    let resp = send(&r, &PeerTrust::Insecure).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, br#"{"ok":true}"#);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.peer_sha256, None, "plain HTTP has no certificate");
    let (head, body) = rx.recv_timeout(SERVER_PATIENCE).unwrap();
    assert!(
        head.starts_with("POST /management/proxy-services?x=a%20b HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
        "{head}"
    );
    assert!(head.contains("Connection: close\r\n"), "{head}");
    assert!(head.contains("Authorization: Bearer tok\r\n"), "{head}");
    assert_eq!(body, br#"{"name":"P"}"#);
    server.join().unwrap();
}

#[test]
fn chunked_and_read_to_close_bodies() {
    let (port, server) = serve(2, |mut s| {
        let (head, _) = read_request(&mut s).unwrap();
        if head.starts_with("GET /chunked") {
            s.write_all(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
            )
            .unwrap();
        } else {
            s.write_all(b"HTTP/1.1 200 OK\r\n\r\nuntil the close")
                .unwrap();
        }
    });
    let mut r = request(port, Timeouts::default());
    r.path_and_query = "/chunked".into();
    let resp = send(&r, &PeerTrust::Insecure).unwrap();
    assert_eq!(
        (resp.status, resp.body.as_slice()),
        (200, &b"hello world"[..])
    );
    r.path_and_query = "/close".into();
    let resp = send(&r, &PeerTrust::Insecure).unwrap();
    assert_eq!(resp.body, b"until the close");
    server.join().unwrap();
}

#[test]
fn a_silent_server_times_out_within_the_total() {
    let (held_tx, held) = mpsc::channel();
    let (port, server) = serve(1, move |s| held_tx.send(s).unwrap());
    let start = Instant::now();
    let e = send(&request(port, short()), &PeerTrust::Insecure).unwrap_err();
    assert_timed_out(e, Phase::Receive, start.elapsed(), short().total);
    // The server really had accepted and was holding the connection.
    let _held = held.recv_timeout(SERVER_PATIENCE).unwrap();
    server.join().unwrap();
}

#[test]
fn a_silent_tls_peer_times_out_in_the_handshake() {
    let (held_tx, held) = mpsc::channel();
    let (port, server) = serve(1, move |s| held_tx.send(s).unwrap());
    let mut r = request(port, short());
    r.scheme = Scheme::Https;
    let start = Instant::now();
    let e = send(&r, &PeerTrust::Pin(None)).unwrap_err();
    assert_timed_out(e, Phase::Handshake, start.elapsed(), short().total);
    let _held = held.recv_timeout(SERVER_PATIENCE).unwrap();
    server.join().unwrap();
}

#[test]
fn a_trickling_server_cannot_stretch_the_total() {
    let (port, server) = serve(1, |mut s| {
        read_request(&mut s).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            .unwrap();
        // One byte per 100 ms: each read gets something well within any
        // per-read timeout, so only the total budget can end the call.
        for _ in 0..200 {
            if s.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let start = Instant::now();
    let e = send(&request(port, short()), &PeerTrust::Insecure).unwrap_err();
    assert_timed_out(e, Phase::Receive, start.elapsed(), short().total);
    server.join().unwrap();
}

#[test]
fn garbage_is_malformed() {
    let (port, server) = serve(2, |mut s| {
        read_request(&mut s).unwrap();
        s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02").unwrap();
    });
    let e = send(&request(port, Timeouts::default()), &PeerTrust::Insecure).unwrap_err();
    assert_eq!(e.kind(), "malformed", "{e}");
    assert!(e.to_string().contains("SSH-2.0"), "{e}");
    // Closed without a byte of an answer.
    let e = send(&request(port, Timeouts::default()), &PeerTrust::Insecure).unwrap_err();
    assert_eq!(e.kind(), "malformed", "{e}");
    server.join().unwrap();
}

#[test]
fn a_500_is_an_answer_not_an_error() {
    let (port, server) = serve(1, |mut s| {
        read_request(&mut s).unwrap();
        s.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 14\r\n\r\n{\"Error\":\"no\"}",
        )
        .unwrap();
    });
    let resp = send(&request(port, Timeouts::default()), &PeerTrust::Insecure).unwrap();
    assert_eq!(resp.status, 500);
    assert_eq!(resp.body, br#"{"Error":"no"}"#);
    server.join().unwrap();
}

#[test]
fn bodies_over_the_cap_are_too_large() {
    let answers: [&[u8]; 4] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2048\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: ",
    ];
    let (port, server) = serve(answers.len(), move |mut s| {
        let (head, _) = read_request(&mut s).unwrap();
        let i: usize = head[5..6].parse().unwrap();
        let _ = s.write_all(answers[i]);
        // More than either cap, unless the client has already hung up.
        let _ = s.write_all(&[b'y'; 80 * 1024]);
    });
    for (i, part) in [
        "response body",
        "response body",
        "response body",
        "response head",
    ]
    .iter()
    .enumerate()
    {
        let mut r = request(port, Timeouts::default());
        r.path_and_query = format!("/{i}");
        r.max_body = 1024;
        let e = send(&r, &PeerTrust::Insecure).unwrap_err();
        match &e {
            OutboundError::TooLarge { part: p, .. } => assert_eq!(p, part, "answer {i}"),
            other => panic!("answer {i}: expected TooLarge, got {other:?}"),
        }
        assert_eq!(e.kind(), "too_large");
    }
    server.join().unwrap();
}

#[test]
fn a_refused_port_is_unreachable() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let start = Instant::now();
    let e = send(&request(port, short()), &PeerTrust::Insecure).unwrap_err();
    assert!(matches!(e, OutboundError::Connect { .. }), "{e:?}");
    assert_eq!(e.kind(), "unreachable");
    let text = e.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("refused"), "{text}");
    assert!(start.elapsed() < short().total * 5);
}

/// A self-signed certificate for localhost and 127.0.0.1, and a rustls
/// server configuration serving it.
struct Cert {
    der: Vec<u8>,
    config: Arc<rustls::ServerConfig>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn cert() -> Cert {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let der = ck.cert.der().to_vec();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        ck.signing_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone().into()], key)
        .unwrap();
    Cert {
        der,
        config: Arc::new(config),
    }
}

fn roots(der: &[u8]) -> Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.to_vec().into()).unwrap();
    Arc::new(roots)
}

/// Serves `n` TLS connections with `cert`, answering each request "ok";
/// a client that gives up in the handshake just ends its connection.
fn tls_server(cert: &Cert, n: usize) -> (u16, JoinHandle<()>) {
    let config = Arc::clone(&cert.config);
    serve(n, move |tcp| {
        let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        if read_request(&mut tls).is_none() {
            return;
        }
        let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        tls.conn.send_close_notify();
        let _ = tls.flush();
    })
}

fn https(host: &str, port: u16) -> OutboundRequest {
    let mut r = OutboundRequest::new(Scheme::Https, host, port, "GET", "/management");
    r.timeouts = Timeouts {
        connect: Duration::from_secs(5),
        total: Duration::from_secs(20),
    };
    r
}

#[test]
fn trust_on_first_use_pins_and_then_refuses_another_certificate() {
    let c = cert();
    let expected = certificate_sha256(&c.der);
    let (port, server) = tls_server(&c, 4);

    let first = send(&https("127.0.0.1", port), &PeerTrust::Pin(None)).unwrap();
    assert_eq!(first.body, b"ok");
    let pin = first.peer_sha256.expect("an HTTPS answer carries the pin");
    assert_eq!(pin, expected);

    let again = send(&https("localhost", port), &PeerTrust::Pin(Some(pin))).unwrap();
    assert_eq!((again.status, again.peer_sha256), (200, Some(pin)));

    let wrong = [0x5a; 32];
    let e = send(&https("127.0.0.1", port), &PeerTrust::Pin(Some(wrong))).unwrap_err();
    assert_eq!(
        e,
        OutboundError::CertificateChanged {
            address: format!("127.0.0.1:{port}"),
            expected: wrong,
            got: pin,
        }
    );
    assert_eq!(e.kind(), "certificate_changed");

    // Insecure still tells what it was shown.
    let any = send(&https("127.0.0.1", port), &PeerTrust::Insecure).unwrap();
    assert_eq!(any.peer_sha256, Some(pin));
    server.join().unwrap();
}

#[test]
fn ca_trust_verifies_the_chain_and_the_name() {
    let c = cert();
    let (port, server) = tls_server(&c, 4);
    // A store without this certificate (another self-signed one) refuses it.
    let other = cert();
    let e = send(&https("127.0.0.1", port), &PeerTrust::Ca(roots(&other.der))).unwrap_err();
    assert_eq!(e.kind(), "tls", "{e:?}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    let empty = Arc::new(rustls::RootCertStore::empty());
    let e = send(&https("localhost", port), &PeerTrust::Ca(empty)).unwrap_err();
    assert_eq!(e.kind(), "tls", "{e:?}");
    // With it, by DNS name and by IP address.
    for host in ["localhost", "127.0.0.1"] {
        let resp = send(&https(host, port), &PeerTrust::Ca(roots(&c.der))).unwrap();
        assert_eq!(resp.body, b"ok");
        assert_eq!(resp.peer_sha256, Some(certificate_sha256(&c.der)));
    }
    server.join().unwrap();
}

#[test]
fn https_to_a_plain_http_port_is_a_tls_error() {
    let (port, server) = serve(1, |mut s| {
        let mut hello = [0u8; 5];
        let _ = s.read_exact(&mut hello);
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    });
    let e = send(&https("127.0.0.1", port), &PeerTrust::Pin(None)).unwrap_err();
    assert_eq!(e.kind(), "tls", "{e:?}");
    server.join().unwrap();
}
