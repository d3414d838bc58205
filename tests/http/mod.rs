//! Tests of the HTTP connection layer through real sockets: TLS and plain
//! round trips, keep-alive, framing limits, deadlines against hostile or
//! silent peers, the connection cap and graceful shutdown.
//! `outbound` tests the other direction: `http::outbound::send`.

mod outbound;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use icpd::http::client::{Client, ClientTls};
use icpd::http::{Handler, Limits, Request, Response, Server};

use crate::harness::{closes_within, still_open};

/// A self-signed certificate for 127.0.0.1/localhost in a temp dir that is
/// removed on drop.
struct TestCert {
    dir: PathBuf,
    pem: PathBuf,
    der: Vec<u8>,
    config: Arc<rustls::ServerConfig>,
}

impl TestCert {
    fn new() -> TestCert {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "icpd-http-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let pem = dir.join("cert.pem");
        std::fs::write(&pem, ck.cert.pem()).unwrap();
        let der = ck.cert.der().to_vec();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()),
        );
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone().into()], key)
            .unwrap();
        TestCert {
            dir,
            pem,
            der,
            config: Arc::new(config),
        }
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Echoes what it received; `/panic` panics; `/slow?ms=N` sleeps first.
fn echo(req: &Request) -> Response {
    match req.path.as_str() {
        "/panic" => panic!("test handler panic"),
        "/slow" => {
            let ms = req
                .query
                .strip_prefix("ms=")
                .and_then(|v| v.parse().ok())
                .unwrap_or(300);
            std::thread::sleep(Duration::from_millis(ms));
        }
        _ => {}
    }
    Response::json(
        200,
        &serde_json::json!({
            "method": req.method,
            "path": req.path,
            "query": req.query,
            "body": String::from_utf8_lossy(&req.body),
            "secure": req.secure,
            "x_test": req.header("x-test"),
        }),
    )
}

struct TestServer {
    server: Option<Server>,
    cert: Option<TestCert>,
}

impl TestServer {
    fn start(tls: bool, limits: Limits) -> TestServer {
        TestServer::with_handler(tls, limits, Arc::new(echo))
    }

    fn with_handler(tls: bool, limits: Limits, handler: Arc<dyn Handler>) -> TestServer {
        let cert = tls.then(TestCert::new);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let config = cert.as_ref().map(|c| Arc::clone(&c.config));
        let server = Server::start("test", listener, config, limits, handler).unwrap();
        TestServer {
            server: Some(server),
            cert,
        }
    }

    fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    fn port(&self) -> u16 {
        self.server().local_addr().port()
    }

    fn client(&self) -> Client {
        let mut c = match &self.cert {
            Some(cert) => Client::new(
                &format!("https://127.0.0.1:{}", self.port()),
                ClientTls::Verify(cert.pem.clone()),
            ),
            None => Client::new(
                &format!("http://127.0.0.1:{}", self.port()),
                ClientTls::Plain,
            ),
        }
        .unwrap();
        c.set_timeout(Duration::from_secs(5));
        c
    }

    fn raw(&self) -> TcpStream {
        let s = TcpStream::connect(self.server().local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }
}

/// Reads exactly one response with a Content-Length body from a raw
/// socket (byte by byte through the head, so pipelined responses that
/// arrive together stay in the socket for the next call).
fn read_response(s: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).unwrap();
        assert!(
            n > 0,
            "connection closed before a full response head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (status, head, body)
}

/// How long a close that needs no deadline may take on a loaded machine:
/// well under the default idle deadline (15 s), the only other thing that
/// would close these connections.
const PROMPTLY: Duration = Duration::from_secs(5);

fn error_code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["error"]["code"].as_str().unwrap().to_string()
}

#[test]
fn tls_round_trip_reuses_one_connection() {
    let ts = TestServer::start(true, Limits::default());
    let mut c = ts.client();
    for i in 0..3 {
        let body = format!("hello {i}");
        let r = c
            .request("POST", "/echo?n=1", &[("X-Test", "yes")], body.as_bytes())
            .unwrap();
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/echo");
        assert_eq!(v["query"], "n=1");
        assert_eq!(v["body"], body.as_str());
        assert_eq!(v["secure"], true);
        assert_eq!(v["x_test"], "yes");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    assert_eq!(c.connection_count(), 1);
    let r = c
        .post_json("/j", Some("secret-token"), &serde_json::json!({"a": 1}))
        .unwrap();
    assert_eq!(r.json()["body"], r#"{"a":1}"#);
    assert_eq!(c.connection_count(), 1);

    // Insecure mode and a DNS server name work too.
    let mut insecure = Client::new(
        &format!("https://localhost:{}", ts.port()),
        ClientTls::Insecure,
    )
    .unwrap();
    assert_eq!(insecure.request("GET", "/", &[], b"").unwrap().status, 200);
}

#[test]
fn tls_client_rejects_unknown_certificate() {
    let ts = TestServer::start(true, Limits::default());
    let other = TestCert::new();
    let mut c = Client::new(
        &format!("https://127.0.0.1:{}", ts.port()),
        ClientTls::Verify(other.pem.clone()),
    )
    .unwrap();
    assert!(c.request("GET", "/", &[], b"").is_err());
    // The failed handshake must not disturb the server.
    assert_eq!(
        ts.client().request("GET", "/", &[], b"").unwrap().status,
        200
    );
}

#[test]
fn plain_http_round_trip_and_pipelining() {
    let ts = TestServer::start(false, Limits::default());
    let mut c = ts.client();
    let r = c.request("GET", "/x?y=1", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["secure"], false);
    assert_eq!(r.json()["query"], "y=1");
    let r = c.request("HEAD", "/x", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(c.request("GET", "/", &[], b"").unwrap().status, 200);
    assert_eq!(c.connection_count(), 1);

    let mut s = ts.raw();
    s.write_all(
        b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nPOST /two HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
    )
    .unwrap();
    let (st1, _, b1) = read_response(&mut s);
    let (st2, _, b2) = read_response(&mut s);
    assert_eq!((st1, st2), (200, 200));
    let v1: serde_json::Value = serde_json::from_slice(&b1).unwrap();
    let v2: serde_json::Value = serde_json::from_slice(&b2).unwrap();
    assert_eq!(
        (
            v1["path"].as_str(),
            v2["path"].as_str(),
            v2["body"].as_str()
        ),
        (Some("/one"), Some("/two"), Some("hi"))
    );
}

#[test]
fn chunked_request_body_is_decoded() {
    let ts = TestServer::start(false, Limits::default());
    let mut s = ts.raw();
    s.write_all(b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .unwrap();
    // Not synchronisation: a pause so that the body usually arrives in two
    // reads (the test holds either way).
    std::thread::sleep(Duration::from_millis(20));
    s.write_all(b"6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
        .unwrap();
    let (status, _, body) = read_response(&mut s);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["body"], "hello world");
}

#[test]
fn expect_100_continue() {
    let ts = TestServer::start(
        false,
        Limits {
            max_body_bytes: 100,
            ..Limits::default()
        },
    );
    let mut s = ts.raw();
    s.write_all(b"POST /e HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"abcde").unwrap();
    let (status, _, body) = read_response(&mut s);
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["body"],
        "abcde"
    );

    // Too big: answered 413 straight away, no 100 Continue.
    let mut s = ts.raw();
    s.write_all(b"POST /e HTTP/1.1\r\nContent-Length: 500\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    let (status, head, _) = read_response(&mut s);
    assert_eq!(status, 413);
    assert!(head.contains("Connection: close"));
}

#[test]
fn http10_and_connection_close_end_the_connection() {
    let ts = TestServer::start(false, Limits::default());
    let mut s = ts.raw();
    s.write_all(b"GET /old HTTP/1.0\r\n\r\n").unwrap();
    let (status, head, _) = read_response(&mut s);
    assert_eq!(status, 200);
    assert!(head.contains("Connection: close"));
    assert!(closes_within(&mut s, PROMPTLY));

    let mut s = ts.raw();
    s.write_all(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let (_, head, _) = read_response(&mut s);
    assert!(head.contains("Connection: keep-alive"));
    s.write_all(b"GET /again HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s).0, 200);

    let mut s = ts.raw();
    s.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (status, head, _) = read_response(&mut s);
    assert_eq!(status, 200);
    assert!(head.contains("Connection: close"));
    assert!(closes_within(&mut s, PROMPTLY));

    // The client honours Connection: close by reconnecting next time.
    let mut c = ts.client();
    c.request("GET", "/", &[("Connection", "close")], b"")
        .unwrap();
    c.request("GET", "/", &[], b"").unwrap();
    assert_eq!(c.connection_count(), 2);
}

#[test]
fn oversized_heads_get_431() {
    let ts = TestServer::start(false, Limits::default());
    let mut s = ts.raw();
    let big = "a".repeat(17 * 1024);
    s.write_all(format!("GET / HTTP/1.1\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .unwrap();
    let (status, head, body) = read_response(&mut s);
    assert_eq!(status, 431);
    assert!(head.contains("Connection: close"));
    assert_eq!(error_code(&body), "headers_too_large");

    let mut s = ts.raw();
    let many: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    s.write_all(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes())
        .unwrap();
    assert_eq!(read_response(&mut s).0, 431);

    // 100 headers are fine.
    let mut s = ts.raw();
    let ok: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    s.write_all(format!("GET / HTTP/1.1\r\n{ok}\r\n").as_bytes())
        .unwrap();
    assert_eq!(read_response(&mut s).0, 200);
}

#[test]
fn oversized_bodies_get_413() {
    let ts = TestServer::start(
        false,
        Limits {
            max_body_bytes: 1024,
            ..Limits::default()
        },
    );
    let mut s = ts.raw();
    // Head only: the answer must not wait for the body.
    s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 2048\r\n\r\n")
        .unwrap();
    let (status, _, body) = read_response(&mut s);
    assert_eq!(status, 413);
    assert_eq!(error_code(&body), "body_too_large");

    let mut s = ts.raw();
    s.write_all(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n")
        .unwrap();
    s.write_all(&[b'x'; 1024]).unwrap();
    s.write_all(b"\r\n1\r\n").unwrap();
    assert_eq!(read_response(&mut s).0, 413);

    // Through the client, with the body actually sent.
    let mut c = ts.client();
    let r = c.request("POST", "/", &[], &[b'y'; 4096]).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(
        c.request("POST", "/", &[], &[b'y'; 1024]).unwrap().status,
        200
    );
}

#[test]
fn malformed_requests_get_400_json() {
    let ts = TestServer::start(false, Limits::default());
    for bad in [
        &b"NOT HTTP AT ALL\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let mut s = ts.raw();
        s.write_all(bad).unwrap();
        let (status, head, body) = read_response(&mut s);
        assert_eq!(status, 400, "for {:?}", String::from_utf8_lossy(bad));
        assert!(head.contains("application/json"));
        // No handler ran, so the layer makes the error inert by itself.
        let head = head.to_ascii_lowercase();
        assert!(head.contains("x-content-type-options: nosniff"), "{head}");
        assert!(
            head.contains("content-security-policy: default-src 'none'"),
            "{head}"
        );
        assert!(head.contains("cache-control: no-store"), "{head}");
        assert_eq!(error_code(&body), "bad_request");
        assert!(closes_within(&mut s, PROMPTLY));
    }
}

#[test]
fn handler_panic_is_a_500_and_the_server_survives() {
    let ts = TestServer::start(
        true,
        Limits {
            workers: 1,
            ..Limits::default()
        },
    );
    let mut c = ts.client();
    for _ in 0..2 {
        let r = c.request("GET", "/panic", &[], b"").unwrap();
        assert_eq!(r.status, 500);
        let v = r.json();
        assert_eq!(v["error"]["code"], "internal");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("internal error (id "));
        assert_eq!(c.request("GET", "/fine", &[], b"").unwrap().status, 200);
    }
    assert_eq!(c.connection_count(), 1);
}

#[test]
fn connection_cap_refuses_fast() {
    let ts = TestServer::start(
        false,
        Limits {
            max_connections: 2,
            ..Limits::default()
        },
    );
    let mut a = ts.raw();
    let mut b = ts.raw();
    for s in [&mut a, &mut b] {
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(read_response(s).0, 200);
    }
    assert_eq!(ts.server().active_connections(), 2);
    // Refused at once: the 503 arrives before the raw socket's 5 s read
    // timeout, while a held connection would wait for a slot (none frees:
    // a and b stay open) or the 15 s idle deadline.
    let mut third = ts.raw();
    let mut all = Vec::new();
    let _ = third.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("too_many_connections"));

    // Closing one frees its slot.
    drop(a);
    wait_until_admitted(&ts);
}

/// Polls until a new connection is served again (a closed one's slot is
/// freed once the server notices the close).
fn wait_until_admitted(ts: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = ts.raw();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut head = [0u8; 12];
        if s.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 200" {
            return;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn per_address_cap_refuses_that_address_only_until_a_slot_frees() {
    let ts = TestServer::start(
        false,
        Limits {
            max_connections_per_ip: 2,
            ..Limits::default()
        },
    );
    let mut a = ts.raw();
    let mut b = ts.raw();
    for s in [&mut a, &mut b] {
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(read_response(s).0, 200);
    }
    let mut third = ts.raw();
    let mut all = Vec::new();
    let _ = third.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("too_many_connections"), "{text}");
    assert!(
        text.contains("too many connections from this address"),
        "{text}"
    );
    // The refused one held no slot; the two admitted ones still work.
    assert_eq!(ts.server().active_connections(), 2);
    a.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut a).0, 200);

    // Closing one frees the address's slot.
    drop(b);
    wait_until_admitted(&ts);
}

/// A connect burst must not overflow the listen queue while the accept
/// thread is briefly off the CPU (std's backlog is 128): the server sets
/// `LISTEN_BACKLOG`, capped by the kernel at `net.core.somaxconn`. Linux
/// reports a listener's backlog in `tcpi_sacked` of `TCP_INFO`.
#[test]
fn listen_backlog_is_raised() {
    use std::os::fd::AsRawFd;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let same_socket = listener.try_clone().unwrap();
    let server = Server::start("test", listener, None, Limits::default(), Arc::new(echo)).unwrap();
    // SAFETY: tcp_info is plain data; getsockopt writes at most `len` bytes.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let r = unsafe {
        libc::getsockopt(
            same_socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096);
    let want = somaxconn.min(icpd::http::server::LISTEN_BACKLOG as u32);
    assert!(
        want > 128,
        "net.core.somaxconn is {somaxconn}; nothing to test"
    );
    assert_eq!(info.tcpi_sacked, want, "listen backlog");
    drop(server);
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let ts = TestServer::start(
        true,
        Limits {
            idle_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
    );
    let mut c = ts.client();
    assert_eq!(c.request("GET", "/", &[], b"").unwrap().status, 200);
    // The server count drops back to zero once the idle deadline hits.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ts.server().active_connections() > 0 {
        assert!(
            Instant::now() < deadline,
            "idle connection was never closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The client notices the closed connection and reconnects once.
    assert_eq!(c.request("GET", "/", &[], b"").unwrap().status, 200);
    assert_eq!(c.connection_count(), 2);

    let plain = TestServer::start(
        false,
        Limits {
            idle_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
    );
    let mut s = plain.raw();
    // Taken before the request: the idle deadline starts after the response
    // is written, so the close cannot come sooner than 300 ms after this.
    let t = Instant::now();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    read_response(&mut s);
    assert!(closes_within(&mut s, Duration::from_secs(10)));
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "closed after {:?}, before the idle deadline",
        t.elapsed()
    );
}

#[test]
fn incomplete_request_gets_408() {
    let ts = TestServer::start(
        false,
        Limits {
            request_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
    );
    let mut s = ts.raw();
    s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let (status, _, body) = read_response(&mut s);
    assert_eq!(status, 408);
    assert_eq!(error_code(&body), "request_timeout");
}

/// "Not blocked" is shown by order, not by a stopwatch: the requests are
/// answered while every hostile connection is still open. Had the hostile
/// ones held the two workers, the requests would be served only after the
/// handshake deadline dropped them. The deadline is far above what three
/// requests take on a loaded machine.
#[test]
fn silent_and_stalled_handshakes_do_not_block_others() {
    const HANDSHAKE: Duration = Duration::from_secs(2);
    let ts = TestServer::start(
        true,
        Limits {
            workers: 2,
            handshake_timeout: HANDSHAKE,
            ..Limits::default()
        },
    );
    // Before the first hostile connection: no deadline falls before
    // HANDSHAKE after this.
    let opened = Instant::now();
    let mut hostile = Vec::new();
    // Connected, never a byte.
    for _ in 0..4 {
        hostile.push(ts.raw());
    }
    // A few bytes of a ClientHello record, then nothing.
    for _ in 0..4 {
        let mut s = ts.raw();
        s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
            .unwrap();
        hostile.push(s);
    }
    // A complete ClientHello, then nothing (server's reply is never read).
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ts.cert.as_ref().unwrap().der.clone().into())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    for _ in 0..2 {
        let mut tls = rustls::ClientConnection::new(
            Arc::new(config.clone()),
            "localhost".try_into().unwrap(),
        )
        .unwrap();
        let mut hello = Vec::new();
        tls.write_tls(&mut hello).unwrap();
        let mut s = ts.raw();
        s.write_all(&hello).unwrap();
        hostile.push(s);
    }

    let mut c = ts.client();
    for _ in 0..3 {
        assert_eq!(c.request("GET", "/", &[], b"").unwrap().status, 200);
    }
    let served = opened.elapsed();
    for (i, s) in hostile.iter_mut().enumerate() {
        assert!(
            still_open(s),
            "hostile connection {i} was dropped before the requests were served ({served:?})"
        );
    }

    // Each is dropped at its deadline: not before, and not much after (the
    // poller scans every 100 ms; the rest is slack for a loaded machine).
    let latest = opened + HANDSHAKE + Duration::from_secs(5);
    for mut s in hostile {
        assert!(
            closes_within(&mut s, latest.saturating_duration_since(Instant::now())),
            "hostile connection was not dropped within 5 s of its deadline"
        );
    }
    let took = opened.elapsed();
    assert!(took >= HANDSHAKE, "dropped before the deadline: {took:?}");
    // The well-behaved client (idle, within idle_timeout) is still served.
    assert_eq!(c.request("GET", "/", &[], b"").unwrap().status, 200);
    assert_eq!(c.connection_count(), 1);
}

#[test]
fn graceful_shutdown_finishes_in_flight_request() {
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let started_tx = Mutex::new(started_tx);
    let handler = move |req: &Request| {
        if req.path == "/slow" {
            let _ = started_tx.lock().unwrap().send(());
            std::thread::sleep(Duration::from_millis(400));
        }
        Response::json(200, &serde_json::json!({"done": req.path}))
    };
    let mut ts = TestServer::with_handler(false, Limits::default(), Arc::new(handler));
    // Shutdown waits up to this for requests in flight; the idle connection
    // must not make it wait that long.
    const GRACE: Duration = Duration::from_secs(10);
    let mut idle = ts.raw();
    idle.write_all(b"GET /idle HTTP/1.1\r\n\r\n").unwrap();
    read_response(&mut idle);

    let mut c = ts.client();
    let slow = std::thread::spawn(move || c.request("GET", "/slow", &[], b"").unwrap());
    started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let addr = ts.server().local_addr();
    let t = Instant::now();
    ts.server.take().unwrap().shutdown(GRACE);
    assert!(
        t.elapsed() < GRACE,
        "shutdown waited out the grace: {:?}",
        t.elapsed()
    );
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["done"], "/slow");
    assert_eq!(r.header("connection"), Some("close"));
    // Idle connections are closed and nothing listens any more.
    assert!(closes_within(&mut idle, PROMPTLY));
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn many_idle_tls_connections_on_two_workers() {
    let ts = TestServer::start(
        true,
        Limits {
            workers: 2,
            ..Limits::default()
        },
    );
    let mut clients: Vec<Client> = (0..100).map(|_| ts.client()).collect();
    for c in &mut clients {
        assert_eq!(c.request("GET", "/", &[], b"").unwrap().status, 200);
    }
    assert_eq!(ts.server().active_connections(), 100);
    // Every one of them is still usable on its original connection.
    for c in &mut clients {
        assert_eq!(c.request("GET", "/again", &[], b"").unwrap().status, 200);
        assert_eq!(c.connection_count(), 1);
    }
}

/// `/later?ms=N`: answered after N ms from another thread (a deferred
/// response); `/dropped`: its `Reply` is dropped unanswered; anything
/// else: echoed at once.
fn deferred(req: &Request) -> Response {
    match req.path.as_str() {
        "/later" => {
            let ms: u64 = req
                .query
                .strip_prefix("ms=")
                .and_then(|v| v.parse().ok())
                .unwrap_or(100);
            let (resp, reply) = Response::deferred();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(ms));
                reply.send(Response::json(200, &serde_json::json!({ "waited": ms })));
            });
            resp
        }
        "/dropped" => Response::deferred().0,
        _ => echo(req),
    }
}

#[test]
fn deferred_responses_are_answered_later_without_holding_a_worker() {
    let limits = Limits {
        workers: 1,
        ..Limits::default()
    };
    for tls in [true, false] {
        let ts = TestServer::with_handler(tls, limits.clone(), Arc::new(deferred));
        // Twenty answers that each take 1.5 s, on one worker: together in
        // about 1.5 s, not 30.
        let started = Instant::now();
        let waiting: Vec<_> = (0..20)
            .map(|_| {
                let mut c = ts.client();
                std::thread::spawn(move || c.request("GET", "/later?ms=1500", &[], b"").unwrap())
            })
            .collect();
        // Meanwhile the one worker answers at once.
        let mut c = ts.client();
        let t = Instant::now();
        assert_eq!(c.request("GET", "/echo", &[], b"").unwrap().status, 200);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        for w in waiting {
            let r = w.join().unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.json()["waited"], 1500);
            assert_eq!(r.header("connection"), Some("close"));
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        // A reply dropped unanswered still answers: 500.
        let r = ts.client().request("GET", "/dropped", &[], b"").unwrap();
        assert_eq!(r.status, 500);
        assert_eq!(error_code(&r.body), "internal");
    }
}
