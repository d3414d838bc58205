//! The bad-input corpus (issue 6, "Hardening"): hundreds of named hostile
//! requests against both listeners of a real server over real TLS. Each one
//! must be answered with a JSON error of its documented status (or, for a
//! console path, the console itself), the server must still answer
//! `/healthz` after each, and the database must be logically unchanged at
//! the end. Requests are written as raw bytes on a fresh TLS connection, so
//! nothing between the corpus and the server normalises them.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use rusqlite::types::ValueRef;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};

use icpd::http::client::Client;

use crate::harness::{Bridge, MiRuntime, TestServer, TEST_PASSWORD};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    Runtime,
    Management,
}

/// What a case must get back.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A JSON error with one of these statuses.
    Error(&'static [u16]),
    /// A JSON error with this status.
    Status(u16),
    /// A JSON error with any 4xx status.
    AnyClientError,
    /// A console path: `index.html` itself (the console's client-side
    /// routes, documented in `assets.rs`) or a 4xx JSON error; never any
    /// other file.
    Console,
    /// 200 with a JSON body (a query that matches little or nothing).
    JsonOk,
    /// 200 with an attachment (a log download).
    Download,
    /// 200 `text/event-stream` (the live tail); only the head is read.
    Stream,
    /// An ingest answered 200 with its counts: `records` sent, of which
    /// `accepted` (when given) were kept. The only cases that may write,
    /// and only to `telemetry.db`, exactly what they report as accepted.
    Ingested {
        records: usize,
        accepted: Option<usize>,
    },
    /// `GET /icp/config` answered: 200 `application/toml` that parses, with
    /// its revision in `X-ICP-Config-Revision`. It records the fetch, so it
    /// may write, and only to `config_fetches` in `icp.db`.
    Config,
    /// `/graphql` refused the document: one of these statuses with
    /// GraphQL's `{"errors": [{"message"}, ...]}`, or for a body it could
    /// not read, the reference's bare JSON string (GRAPHQL.md §1.2).
    GraphQl(&'static [u16]),
    /// `/auth/*` refused: one of these statuses with ICP's `{"message"}`.
    Auth(&'static [u16]),
}

struct Case {
    name: String,
    listener: Listener,
    bytes: Vec<u8>,
    expect: Expect,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends raw bytes on a fresh TLS connection and reads one response.
struct RawClient {
    config: Arc<rustls::ClientConfig>,
}

impl RawClient {
    fn new(server: &TestServer) -> RawClient {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(server.cert()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        RawClient {
            config: Arc::new(config),
        }
    }

    fn send(&self, url: &str, bytes: &[u8]) -> Result<Reply, String> {
        let addr = url.strip_prefix("https://").expect("a TLS listener");
        let tcp = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp.set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(Arc::clone(&self.config), name)
            .map_err(|e| format!("tls: {e}"))?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        // A server that answers from the head may close before the body is
        // all written; the answer is what counts.
        let _ = s.write_all(bytes).and_then(|_| s.flush());
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(reply) = complete_reply(&buf)? {
                return Ok(reply);
            }
            match s.read(&mut chunk) {
                Ok(0) => {
                    return Err(format!(
                        "closed without a complete response ({} bytes)",
                        buf.len()
                    ))
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err("no response within 10 s".into())
                }
                Err(e) => return Err(format!("read failed after {} bytes: {e}", buf.len())),
            }
        }
    }
}

/// One complete response at the start of `buf`, if it has all arrived.
fn complete_reply(buf: &[u8]) -> Result<Option<Reply>, String> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut slots);
    let head = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad response head: {e}")),
    };
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).to_string(),
            )
        })
        .collect();
    let status = r.code.unwrap_or(0);
    let event_stream = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("content-type") && v.starts_with("text/event-stream"));
    if event_stream {
        // The body runs until the stream ends: the head is the answer.
        return Ok(Some(Reply {
            status,
            headers,
            body: Vec::new(),
        }));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse().map_err(|_| "bad Content-Length"))
        .transpose()?
        .ok_or("response without Content-Length")?;
    if buf.len() < head + len {
        return Ok(None);
    }
    Ok(Some(Reply {
        status,
        headers,
        body: buf[head..head + len].to_vec(),
    }))
}

/// A request with `Host`, `Content-Length` (unless `headers` frames the
/// body) and `Connection: close` added.
fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n").into_bytes();
    let framed = headers.iter().any(|(n, _)| {
        n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
    });
    if !framed {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(body);
    out
}

/// `n` levels of nested arrays.
fn nested(n: usize) -> String {
    format!("{}{}", "[".repeat(n), "]".repeat(n))
}

/// `n` levels of nested objects under "a".
fn nested_objects(n: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n))
}

/// JSON bodies that are wrong whatever the route expects: not JSON, not an
/// object, invalid UTF-8, number literals JSON does not have, nesting far
/// past the parser's recursion limit.
fn hostile_bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("not-json", b"hello".to_vec()),
        ("truncated", b"{\"name\": ".to_vec()),
        ("array", b"[]".to_vec()),
        ("string", b"\"x\"".to_vec()),
        ("number", b"42".to_vec()),
        ("null", b"null".to_vec()),
        ("nan", b"NaN".to_vec()),
        ("nan-field", b"{\"name\": NaN}".to_vec()),
        ("infinity-field", b"{\"name\": Infinity}".to_vec()),
        ("minus-infinity-field", b"{\"name\": -Infinity}".to_vec()),
        ("huge-exponent", b"{\"name\": 1e999}".to_vec()),
        ("invalid-utf8", b"{\"name\": \"\xff\xfe\xfd\"}".to_vec()),
        ("lone-surrogate", br#"{"name": "\ud800"}"#.to_vec()),
        ("nul-bytes", b"{\"name\": \"a\0b\"}\0".to_vec()),
        ("trailing-garbage", b"{\"name\": \"x\"} trailing".to_vec()),
        ("deep-arrays-10000", nested(10_000).into_bytes()),
        ("deep-objects-10000", nested_objects(10_000).into_bytes()),
        ("bom-prefixed", b"\xef\xbb\xbf{\"name\": \"x\"}".to_vec()),
    ]
}

/// A value of every JSON type but the one a field has.
fn wrong_types(kind: &str) -> Vec<(&'static str, Value)> {
    let all = [
        ("string", json!("x")),
        ("number", json!(42)),
        ("float", json!(1.5)),
        ("bool", json!(true)),
        ("array", json!(["x"])),
        ("object", json!({"x": 1})),
        ("huge-int", json!(u64::MAX)),
        ("negative", json!(-1)),
    ];
    all.into_iter()
        .filter(|(t, _)| match kind {
            "string" => *t != "string",
            "bool" => *t != "bool",
            "string-list" => *t != "array",
            "int" => !matches!(*t, "number" | "negative"),
            "object" => *t != "object",
            // An id is a string, or an integer from an older client; an
            // integer that names nothing is a 404, checked on its own.
            "id" => !matches!(*t, "string" | "number" | "huge-int" | "negative"),
            _ => true,
        })
        .collect()
}

/// Fields of a JSON body with their kinds, for [`wrong_types`].
type Fields = &'static [(&'static str, &'static str)];

struct Corpus {
    cases: Vec<Case>,
}

impl Corpus {
    fn add(&mut self, name: impl Into<String>, listener: Listener, bytes: Vec<u8>, expect: Expect) {
        let name = name.into();
        assert!(
            !self.cases.iter().any(|c| c.name == name),
            "duplicate case name {name}"
        );
        self.cases.push(Case {
            name,
            listener,
            bytes,
            expect,
        });
    }
}

/// Builds the corpus. The credentials are valid, so the body and path
/// cases get past authentication.
fn corpus(bridge: &Bridge, cred: &Credentials) -> Vec<Case> {
    use Expect::*;
    use Listener::*;
    let (runtime_token, admin_token) = (&cred.runtime, &cred.admin);
    let mut c = Corpus { cases: Vec::new() };
    let rt_auth = format!("Bearer {runtime_token}");
    let admin_auth = format!("Bearer {admin_token}");
    let hb = |path: &str, body: &[u8]| {
        request(
            "POST",
            path,
            &[
                ("Authorization", &rt_auth),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    };
    let api = |method: &str, path: &str, body: &[u8]| {
        request(
            method,
            path,
            &[
                ("Authorization", &admin_auth),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    };

    // ---- Runtime listener: heartbeat bodies ---------------------------
    let full = bridge.full_body();
    let delta = bridge.delta_body();
    let command_result =
        json!({"runtimeId": bridge.runtime_id, "commandId": "c1", "status": "COMPLETED"});
    let bodies = [
        ("heartbeat", "/icp/heartbeat", &full),
        ("delta", "/icp/deltaHeartbeat", &delta),
        ("command-result", "/icp/commandResult", &command_result),
    ];
    for (tag, path, _) in &bodies {
        for (what, body) in hostile_bodies() {
            c.add(
                format!("runtime/{tag}/body-{what}"),
                Runtime,
                hb(path, &body),
                Error(&[400]),
            );
        }
        c.add(
            format!("runtime/{tag}/empty-body"),
            Runtime,
            hb(path, b""),
            Error(&[400]),
        );
        c.add(
            format!("runtime/{tag}/empty-object"),
            Runtime,
            hb(path, b"{}"),
            Error(&[400]),
        );
    }
    // Every required field missing in turn.
    let required: [(&str, &Value, &[&str]); 3] = [
        (
            "heartbeat",
            &full,
            &[
                "runtimeId",
                "runtimeType",
                "heartbeatVersion",
                "environment",
                "project",
                "component",
            ],
        ),
        (
            "delta",
            &delta,
            &["runtimeId", "heartbeatVersion", "runtimeHash"],
        ),
        (
            "command-result",
            &command_result,
            &["runtimeId", "commandId", "status"],
        ),
    ];
    for (tag, body, fields) in required {
        let path = bodies.iter().find(|b| b.0 == tag).unwrap().1;
        for f in fields {
            let mut b = body.clone();
            b.as_object_mut().unwrap().remove(*f);
            c.add(
                format!("runtime/{tag}/missing-{f}"),
                Runtime,
                hb(path, b.to_string().as_bytes()),
                Error(&[400]),
            );
        }
    }
    // Every field with a value of the wrong JSON type.
    let typed: [(&str, &Value, Fields); 3] = [
        (
            "heartbeat",
            &full,
            &[
                ("runtimeId", "string"),
                ("runtime", "string"),
                ("runtimeType", "string"),
                ("heartbeatVersion", "string"),
                ("status", "string"),
                ("environment", "string"),
                ("project", "string"),
                ("component", "string"),
                ("version", "string"),
                ("nodeInfo", "object"),
                ("runtimeHash", "string"),
                ("tryItHost", "string"),
            ],
        ),
        (
            "delta",
            &delta,
            &[
                ("runtimeId", "string"),
                ("heartbeatVersion", "string"),
                ("runtimeHash", "string"),
            ],
        ),
        (
            "command-result",
            &command_result,
            &[
                ("runtimeId", "string"),
                ("commandId", "string"),
                ("status", "string"),
            ],
        ),
    ];
    for (tag, body, fields) in typed {
        let path = bodies.iter().find(|b| b.0 == tag).unwrap().1;
        for (f, kind) in fields {
            for (t, v) in wrong_types(kind) {
                let mut b = body.clone();
                b[*f] = v;
                c.add(
                    format!("runtime/{tag}/{f}-as-{t}"),
                    Runtime,
                    hb(path, b.to_string().as_bytes()),
                    Error(&[400]),
                );
            }
        }
    }
    // Values of the right type that validation refuses.
    let long = "x".repeat(100_000);
    let invalid_full: Vec<(&str, &str, Value)> = vec![
        ("runtimeId-short", "runtimeId", json!("abc")),
        (
            "runtimeId-sql",
            "runtimeId",
            json!("' OR '1'='1'; DROP TABLE runtimes;--xxxx"),
        ),
        (
            "runtimeId-37-chars",
            "runtimeId",
            json!(format!("{}x", bridge.runtime_id)),
        ),
        ("runtimeId-huge", "runtimeId", json!(long)),
        ("runtimeType-xx", "runtimeType", json!("XX")),
        ("runtimeType-sql", "runtimeType", json!("BI' OR '1'='1")),
        ("heartbeatVersion-v2", "heartbeatVersion", json!("v2.0")),
        ("status-dead", "status", json!("DEAD")),
        ("runtime-name-101", "runtime", json!("n".repeat(101))),
        ("runtime-name-blank", "runtime", json!("   ")),
        ("environment-symbols", "environment", json!("!!!")),
        ("environment-unknown", "environment", json!("nowhere")),
        (
            "environment-sql",
            "environment",
            json!("dev'; DELETE FROM environments;--"),
        ),
        ("project-201", "project", json!("p".repeat(201))),
        ("project-empty", "project", json!("")),
        ("component-huge", "component", json!(long)),
        ("timestamp-string", "timestamp", json!("yesterday")),
        ("timestamp-three", "timestamp", json!([1, 2, 3])),
        ("timestamp-strings", "timestamp", json!(["a", "b"])),
        ("timestamp-object", "timestamp", json!({"s": 1})),
        ("timestamp-bool", "timestamp", json!(true)),
        ("artifacts-string", "artifacts", json!("x")),
        (
            "artifacts-listeners-object",
            "artifacts",
            json!({"listeners": {"name": "x"}}),
        ),
        (
            "artifacts-listener-no-name",
            "artifacts",
            json!({"listeners": [{"port": 1}]}),
        ),
        (
            "artifacts-port-string",
            "artifacts",
            json!({"listeners": [{"name": "l", "port": "80"}]}),
        ),
        (
            "artifacts-port-float",
            "artifacts",
            json!({"listeners": [{"name": "l", "port": 80.5}]}),
        ),
        ("logLevels-number", "logLevels", json!({"acme/orders": 3})),
        ("logLevels-array", "logLevels", json!(["INFO"])),
    ];
    for (name, field, v) in invalid_full {
        let mut b = full.clone();
        b[field] = v;
        c.add(
            format!("runtime/heartbeat/{name}"),
            Runtime,
            hb("/icp/heartbeat", b.to_string().as_bytes()),
            AnyClientError,
        );
    }
    let invalid_delta: Vec<(&str, &str, Value)> = vec![
        ("runtimeId-short", "runtimeId", json!("abc")),
        (
            "runtimeId-sql",
            "runtimeId",
            json!("'; UPDATE runtimes SET status='OFFLINE';--x"),
        ),
        ("heartbeatVersion-empty", "heartbeatVersion", json!("")),
        (
            "timestamp-rfc-nonsense",
            "timestamp",
            json!("2025-13-45T99:99:99Z"),
        ),
    ];
    for (name, field, v) in invalid_delta {
        let mut b = delta.clone();
        b[field] = v;
        c.add(
            format!("runtime/delta/{name}"),
            Runtime,
            hb("/icp/deltaHeartbeat", b.to_string().as_bytes()),
            Error(&[400]),
        );
    }
    // Raw JSON the serialiser would never write.
    let raw_bodies: Vec<(&str, &str, String)> = vec![
        (
            "heartbeat",
            "/icp/heartbeat",
            format!(
                r#"{{"runtimeId":"{0}","runtimeId":"{0}"}}"#,
                bridge.runtime_id
            ),
        ),
        ("heartbeat", "/icp/heartbeat", {
            let s = full.to_string();
            format!(r#"{{"heartbeatVersion":"v1.0",{}"#, &s[1..])
        }),
        ("delta", "/icp/deltaHeartbeat", {
            let s = delta.to_string();
            format!(r#"{{"runtimeHash":"a",{}"#, &s[1..])
        }),
        (
            "heartbeat",
            "/icp/heartbeat",
            full.to_string().replace("[1795348800,0.5]", "[NaN,0]"),
        ),
        (
            "heartbeat",
            "/icp/heartbeat",
            full.to_string().replace("[1795348800,0.5]", "[Infinity,0]"),
        ),
        (
            "heartbeat",
            "/icp/heartbeat",
            full.to_string().replace("[1795348800,0.5]", "[1e400,0]"),
        ),
        (
            "heartbeat",
            "/icp/heartbeat",
            full.to_string().replace("9090", "1e400"),
        ),
        (
            "heartbeat",
            "/icp/heartbeat",
            full.to_string().replace("9090", "99999999999999999999999"),
        ),
        (
            "heartbeat",
            "/icp/heartbeat",
            full.to_string().replace(
                r#""nodeInfo":{"#,
                &format!(r#""nodeInfo":{{"deep":{},"#, nested(10_000)),
            ),
        ),
        (
            "delta",
            "/icp/deltaHeartbeat",
            delta
                .to_string()
                .replace("[1795348810,0.5]", "[-Infinity,NaN]"),
        ),
    ];
    let names = [
        "duplicate-runtimeId",
        "duplicate-heartbeatVersion",
        "duplicate-runtimeHash",
        "timestamp-nan",
        "timestamp-infinity",
        "timestamp-1e400",
        "port-1e400",
        "port-beyond-u64",
        "nodeInfo-nested-10000",
        "timestamp-minus-infinity",
    ];
    for ((tag, path, body), name) in raw_bodies.into_iter().zip(names) {
        c.add(
            format!("runtime/{tag}/raw-{name}"),
            Runtime,
            hb(path, body.as_bytes()),
            Error(&[400]),
        );
    }
    // A body over the limit is refused from its head.
    c.add(
        "runtime/heartbeat/content-length-5mib",
        Runtime,
        request(
            "POST",
            "/icp/heartbeat",
            &[("Authorization", &rt_auth), ("Content-Length", "5242880")],
            b"",
        ),
        Error(&[413]),
    );

    // ---- Runtime listener: tokens --------------------------------------
    let good_body = full.to_string();
    let (kid, material) = bridge.secret.split_once('.').unwrap();
    let craft = |header: &Value, claims: &Value, key: &str| {
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let sig = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes()),
            input.as_bytes(),
        );
        format!("Bearer {input}.{}", B64URL.encode(sig.as_ref()))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let hdr = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let claims = json!({"iss": "icp-runtime-jwt-issuer", "aud": "icp-server", "exp": now + 3600,
                        "iat": now, "nbf": now, "scope": "runtime_agent"});
    let with = |k: &str, v: Value| {
        let mut c = claims.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = claims.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let tokens: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("empty", Some(String::new())),
        ("basic-scheme", Some("Basic cm9vdDpyb290".into())),
        ("bearer-only", Some("Bearer".into())),
        ("bearer-blank", Some("Bearer    ".into())),
        ("two-parts", Some("Bearer a.b".into())),
        ("four-parts", Some("Bearer a.b.c.d".into())),
        ("not-base64", Some("Bearer !!!.???.***".into())),
        (
            "header-not-object",
            Some(format!("Bearer {}.e30.x", B64URL.encode("[1,2]"))),
        ),
        (
            "header-not-json",
            Some(format!("Bearer {}.e30.x", B64URL.encode("{nope"))),
        ),
        (
            "kid-missing",
            Some(craft(&json!({"alg": "HS256"}), &claims, material)),
        ),
        (
            "kid-number",
            Some(craft(&json!({"alg": "HS256", "kid": 7}), &claims, material)),
        ),
        (
            "kid-65-chars",
            Some(craft(
                &json!({"alg": "HS256", "kid": "k".repeat(65)}),
                &claims,
                material,
            )),
        ),
        (
            "kid-unknown",
            Some(craft(
                &json!({"alg": "HS256", "kid": "ffffffff"}),
                &claims,
                material,
            )),
        ),
        (
            "kid-sql",
            Some(craft(
                &json!({"alg": "HS256", "kid": "' OR '1'='1"}),
                &claims,
                material,
            )),
        ),
        (
            "kid-traversal",
            Some(craft(
                &json!({"alg": "HS256", "kid": "../../icp.db"}),
                &claims,
                material,
            )),
        ),
        (
            "alg-none",
            Some(format!(
                "Bearer {}.{}.",
                B64URL.encode(json!({"alg": "none", "kid": kid}).to_string()),
                B64URL.encode(claims.to_string())
            )),
        ),
        (
            "alg-hs512",
            Some(craft(
                &json!({"alg": "HS512", "kid": kid}),
                &claims,
                material,
            )),
        ),
        (
            "alg-rs256",
            Some(craft(
                &json!({"alg": "RS256", "kid": kid}),
                &claims,
                material,
            )),
        ),
        ("wrong-key", Some(craft(&hdr, &claims, "not-the-key"))),
        (
            "signature-not-base64",
            Some(format!("{}!!!", craft(&hdr, &claims, material))),
        ),
        (
            "expired",
            Some(craft(&hdr, &with("exp", json!(now - 3600)), material)),
        ),
        (
            "exp-string",
            Some(craft(&hdr, &with("exp", json!("never")), material)),
        ),
        (
            "exp-huge-float",
            Some(craft(&hdr, &with("exp", json!(1e300)), material)),
        ),
        ("exp-missing", Some(craft(&hdr, &without("exp"), material))),
        (
            "nbf-future",
            Some(craft(&hdr, &with("nbf", json!(now + 3600)), material)),
        ),
        (
            "nbf-string",
            Some(craft(&hdr, &with("nbf", json!("now")), material)),
        ),
        (
            "aud-wrong",
            Some(craft(&hdr, &with("aud", json!("other")), material)),
        ),
        (
            "aud-number",
            Some(craft(&hdr, &with("aud", json!(1)), material)),
        ),
        (
            "iss-wrong",
            Some(craft(&hdr, &with("iss", json!("me")), material)),
        ),
        (
            "scope-missing",
            Some(craft(&hdr, &without("scope"), material)),
        ),
        (
            "scope-admin",
            Some(craft(&hdr, &with("scope", json!("admin")), material)),
        ),
        (
            "scope-array",
            Some(craft(
                &hdr,
                &with("scope", json!(["runtime_agent"])),
                material,
            )),
        ),
        (
            "claims-not-object",
            Some({
                let input = format!("{}.{}", B64URL.encode(hdr.to_string()), B64URL.encode("[]"));
                let sig = ring::hmac::sign(
                    &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, material.as_bytes()),
                    input.as_bytes(),
                );
                format!("Bearer {input}.{}", B64URL.encode(sig.as_ref()))
            }),
        ),
        (
            "huge-token-8k",
            Some(format!("Bearer {}", "a".repeat(8192))),
        ),
        ("management-token", Some(admin_auth.clone())),
    ];
    for (name, auth) in &tokens {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = auth {
            headers.push(("Authorization", a.as_str()));
        }
        c.add(
            format!("runtime/token/{name}"),
            Runtime,
            request("POST", "/icp/heartbeat", &headers, good_body.as_bytes()),
            Error(&[401]),
        );
    }
    c.add(
        "runtime/token/invalid-utf8",
        Runtime,
        [
            b"POST /icp/deltaHeartbeat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe.\xfd.\xfc\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".as_slice(),
        ]
        .concat(),
        Error(&[400, 401]),
    );

    // ---- Runtime listener: paths and methods --------------------------
    for (name, method, target, status) in [
        ("get-heartbeat", "GET", "/icp/heartbeat", 405),
        ("put-delta", "PUT", "/icp/deltaHeartbeat", 405),
        ("lowercase-post", "post", "/icp/heartbeat", 405),
        ("trace-healthz", "TRACE", "/healthz", 404),
        ("connect-authority", "CONNECT", "127.0.0.1:443", 404),
        ("options-asterisk", "OPTIONS", "*", 404),
        ("propfind", "PROPFIND", "/icp/heartbeat", 405),
        ("dotdot", "POST", "/icp/../icp/heartbeat", 404),
        ("encoded-dotdot", "POST", "/icp/%2e%2e/icp/heartbeat", 404),
        ("encoded-slash", "POST", "/icp%2Fheartbeat", 404),
        ("trailing-slash", "POST", "/icp/heartbeat/", 404),
        // Absolute-form targets are routed by their path (RFC 9112 3.2.2).
        ("absolute-form", "POST", "http://127.0.0.1/icp/nothing", 404),
        ("api-on-runtime-listener", "GET", "/api/v1/users", 404),
        (
            "console-on-runtime-listener",
            "GET",
            "/assets/index.html",
            404,
        ),
    ] {
        c.add(
            format!("runtime/route/{name}"),
            Runtime,
            request(
                method,
                target,
                &[("Authorization", &rt_auth)],
                good_body.as_bytes(),
            ),
            Status(status),
        );
    }

    // ---- Both listeners: malformed HTTP -------------------------------
    let big = "v".repeat(20 * 1024);
    let many: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let framing: Vec<(&str, Vec<u8>, &'static [u16])> = vec![
        ("garbage-line", b"GARBAGE\r\n\r\n".to_vec(), &[400]),
        ("garbage-method", b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[400]),
        ("control-in-method", b"\x01GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[400]),
        ("binary-noise", (0u8..=255).rev().cycle().take(600).collect(), &[400]),
        ("tls-in-tls", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), &[400]),
        ("http-2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), &[400]),
        ("http-1-2", b"GET /healthz HTTP/1.2\r\nHost: x\r\n\r\n".to_vec(), &[400]),
        ("http-0-9", b"GET /healthz\r\n\r\n".to_vec(), &[400]),
        ("space-in-target", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[400]),
        ("invalid-utf8-target", b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), &[400, 404]),
        ("nul-in-target", b"GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[400]),
        ("header-no-colon", b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n".to_vec(), &[400]),
        ("header-space-in-name", b"GET /healthz HTTP/1.1\r\nBad Header: x\r\n\r\n".to_vec(), &[400]),
        ("header-space-before-colon", b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n".to_vec(), &[400]),
        ("header-obs-fold", b"GET /healthz HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n".to_vec(), &[400]),
        ("header-nul-value", b"GET /healthz HTTP/1.1\r\nX-A: a\0b\r\n\r\n".to_vec(), &[400]),
        ("header-cr-in-value", b"GET /healthz HTTP/1.1\r\nX-A: a\rb\r\n\r\n".to_vec(), &[400]),
        ("content-length-twice-differing", b"POST /healthz HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(), &[400]),
        ("content-length-list", b"POST /healthz HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\nab".to_vec(), &[400]),
        ("content-length-negative", b"POST /healthz HTTP/1.1\r\nContent-Length: -1\r\n\r\n".to_vec(), &[400]),
        ("content-length-plus", b"POST /healthz HTTP/1.1\r\nContent-Length: +1\r\n\r\na".to_vec(), &[400]),
        ("content-length-hex", b"POST /healthz HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n".to_vec(), &[400]),
        ("content-length-float", b"POST /healthz HTTP/1.1\r\nContent-Length: 1.0\r\n\r\n".to_vec(), &[400]),
        ("content-length-empty", b"POST /healthz HTTP/1.1\r\nContent-Length:\r\n\r\n".to_vec(), &[400]),
        ("content-length-overflow", b"POST /healthz HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n".to_vec(), &[400]),
        ("content-length-huge", b"POST /healthz HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n".to_vec(), &[413]),
        ("content-length-and-chunked", b"POST /healthz HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), &[400]),
        ("chunked-twice", b"POST /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), &[400]),
        ("transfer-encoding-gzip", b"POST /healthz HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(), &[400]),
        ("transfer-encoding-list", b"POST /healthz HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec(), &[400]),
        ("transfer-encoding-identity", b"POST /healthz HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n".to_vec(), &[400]),
        ("transfer-encoding-obfuscated", b"POST /healthz HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n".to_vec(), &[400]),
        ("chunk-size-garbage", b"POST /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(), &[400]),
        ("chunk-size-overflow", b"POST /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n".to_vec(), &[400, 413]),
        ("chunk-size-huge", b"POST /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffff\r\n".to_vec(), &[413]),
        ("chunk-size-negative", b"POST /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n".to_vec(), &[400]),
        ("chunk-missing-crlf", b"POST /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n".to_vec(), &[400]),
        ("chunk-extension-huge", [b"POST /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;".as_slice(), "e".repeat(5000).as_bytes(), b"\r\n"].concat(), &[400]),
        ("expect-unknown", b"POST /healthz HTTP/1.1\r\nExpect: 200-ok\r\nContent-Length: 0\r\n\r\n".to_vec(), &[417]),
        ("huge-header-value", format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").into_bytes(), &[431]),
        ("huge-host", format!("GET /healthz HTTP/1.1\r\nHost: {big}\r\n\r\n").into_bytes(), &[431]),
        ("huge-cookie", format!("GET /healthz HTTP/1.1\r\nCookie: {big}\r\n\r\n").into_bytes(), &[431]),
        ("huge-target", format!("GET /{big} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(), &[431]),
        ("huge-method", format!("{big} / HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(), &[431]),
        ("too-many-headers", format!("GET /healthz HTTP/1.1\r\n{many}\r\n").into_bytes(), &[431]),
    ];
    for (name, bytes, statuses) in framing {
        for (tag, listener) in [("runtime", Runtime), ("management", Management)] {
            c.add(
                format!("{tag}/http/{name}"),
                listener,
                bytes.clone(),
                Error(statuses),
            );
        }
    }
    // Odd headers on a well-framed request: these reach the router.
    let odd_headers: Vec<(&str, Vec<u8>)> = vec![
        ("no-host", b"POST /icp/heartbeat HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec()),
        ("two-hosts", b"POST /icp/heartbeat HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec()),
        ("host-with-path", b"POST /icp/heartbeat HTTP/1.1\r\nHost: a/../../b\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec()),
        ("host-bad-port", b"POST /icp/heartbeat HTTP/1.1\r\nHost: a:99999999\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec()),
        ("content-length-twice-same", b"POST /icp/heartbeat HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec()),
        ("content-type-wrong", b"POST /icp/heartbeat HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec()),
        ("two-authorizations", format!("POST /icp/heartbeat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\nAuthorization: {rt_auth}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}").into_bytes()),
        ("chunked-body-bad-json", b"POST /icp/heartbeat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{]\r\n0\r\n\r\n".to_vec()),
    ];
    for (name, bytes) in odd_headers {
        c.add(
            format!("runtime/headers/{name}"),
            Runtime,
            bytes,
            Error(&[400, 401]),
        );
    }

    // ---- Management listener: bodies ----------------------------------
    let routes: Vec<(&str, &str, &str, Value, Fields)> = vec![
        ("users-create", "POST", "/api/v1/users", json!({"username": "u1", "password": TEST_PASSWORD}), &[("username", "string"), ("password", "string"), ("displayName", "string"), ("mustChangePassword", "bool")]),
        ("users-patch", "PATCH", "/api/v1/users/root", json!({"displayName": "R"}), &[("displayName", "string")]),
        ("roles-create", "POST", "/api/v1/roles", json!({"name": "r1", "permissions": []}), &[("name", "string"), ("description", "string"), ("permissions", "string-list")]),
        ("groups-create", "POST", "/api/v1/groups", json!({"name": "g1"}), &[("name", "string"), ("description", "string")]),
        ("assignments-create", "POST", "/api/v1/role-assignments", json!({"role": "Viewer", "user": "root"}), &[("role", "id"), ("user", "string"), ("scope", "object")]),
        ("tokens-create", "POST", "/api/v1/auth/tokens", json!({"name": "t1"}), &[("name", "string"), ("expiresIn", "string")]),
        ("environments-create", "POST", "/api/v1/environments", json!({"name": "e1"}), &[("name", "string"), ("handle", "string"), ("critical", "bool"), ("description", "string")]),
        ("projects-create", "POST", "/api/v1/projects", json!({"name": "p1"}), &[("name", "string"), ("handle", "string"), ("description", "string")]),
        ("integrations-create", "POST", "/api/v1/projects/order-service/integrations", json!({"name": "i1", "runtimeType": "BI"}), &[("name", "string"), ("handle", "string"), ("runtimeType", "string"), ("description", "string")]),
        ("project-environments", "PUT", "/api/v1/projects/order-service/environments", json!({"environments": ["dev"]}), &[("environments", "string-list")]),
        ("listener-state", "PUT", "/api/v1/projects/order-service/integrations/order-create/environments/dev/listeners/listener_1", json!({"state": "disabled"}), &[("state", "string"), ("runtimeIds", "string-list")]),
        ("logger-level", "PUT", "/api/v1/projects/order-service/integrations/order-create/environments/dev/loggers/acme%2Forders", json!({"level": "DEBUG"}), &[("level", "string"), ("runtimeIds", "string-list")]),
        ("change-password", "POST", "/api/v1/auth/change-password", json!({"currentPassword": "x", "newPassword": "y"}), &[("currentPassword", "string"), ("newPassword", "string")]),
        ("ingest-tokens-create", "POST", "/api/v1/observability/ingest-tokens", json!({"name": "t1", "environment": "dev"}), &[("name", "string"), ("environment", "string"), ("project", "string"), ("integration", "string")]),
    ];
    for (tag, method, path, valid, fields) in &routes {
        for (what, body) in hostile_bodies() {
            c.add(
                format!("management/{tag}/body-{what}"),
                Management,
                api(method, path, &body),
                Error(&[400]),
            );
        }
        c.add(
            format!("management/{tag}/empty-body"),
            Management,
            api(method, path, b""),
            Error(&[400]),
        );
        let mut unknown = valid.clone();
        unknown["unexpectedField"] = json!(1);
        c.add(
            format!("management/{tag}/unknown-field"),
            Management,
            api(method, path, unknown.to_string().as_bytes()),
            Error(&[400]),
        );
        for (f, kind) in fields.iter() {
            for (t, v) in wrong_types(kind) {
                let mut b = valid.clone();
                b[*f] = v;
                c.add(
                    format!("management/{tag}/{f}-as-{t}"),
                    Management,
                    api(method, path, b.to_string().as_bytes()),
                    Error(&[400]),
                );
            }
        }
        // The first field given twice: serde refuses a duplicate field.
        let s = valid.to_string();
        let (first, _) = valid.as_object().unwrap().iter().next().unwrap();
        let dup = format!("{{\"{first}\":null,{}", &s[1..]);
        c.add(
            format!("management/{tag}/duplicate-{first}"),
            Management,
            api(method, path, dup.as_bytes()),
            Error(&[400]),
        );
    }
    for (f, _) in [("username", ""), ("password", "")] {
        let mut b = json!({"username": "nobody", "password": "x"});
        b.as_object_mut().unwrap().remove(f);
        c.add(
            format!("management/login/missing-{f}"),
            Management,
            request("POST", "/api/v1/auth/login", &[], b.to_string().as_bytes()),
            Error(&[400]),
        );
    }
    for (what, body) in hostile_bodies() {
        c.add(
            format!("management/login/body-{what}"),
            Management,
            request("POST", "/api/v1/auth/login", &[], &body),
            Error(&[400]),
        );
    }
    c.add(
        "management/login/duplicate-username",
        Management,
        request(
            "POST",
            "/api/v1/auth/login",
            &[],
            br#"{"username":"root","username":"root","password":"x"}"#,
        ),
        Error(&[400]),
    );
    for (name, user) in [
        ("sql-or", "' OR '1'='1"),
        ("sql-comment", "root'--"),
        ("sql-union", "x' UNION SELECT password_hash FROM users--"),
        ("sql-drop", "x'; DROP TABLE users;--"),
        ("huge-username", &"u".repeat(100_000)),
    ] {
        c.add(
            format!("management/login/{name}"),
            Management,
            request(
                "POST",
                "/api/v1/auth/login",
                &[],
                json!({"username": user, "password": "x"})
                    .to_string()
                    .as_bytes(),
            ),
            Error(&[401]),
        );
    }
    // Right types, values that are refused.
    let refused: Vec<(&str, &str, &str, Value)> = vec![
        ("projects-create/handle-sql", "POST", "/api/v1/projects", json!({"name": "x'); DROP TABLE projects;--", "handle": "';--"})),
        ("projects-create/name-huge", "POST", "/api/v1/projects", json!({"name": "n".repeat(100_000)})),
        ("projects-create/name-blank", "POST", "/api/v1/projects", json!({"name": "   "})),
        ("projects-create/description-huge", "POST", "/api/v1/projects", json!({"name": "ok", "description": "d".repeat(1_000_000)})),
        ("projects-create/duplicate-handle", "POST", "/api/v1/projects", json!({"name": "Order Service"})),
        ("environments-create/handle-sql", "POST", "/api/v1/environments", json!({"name": "e", "handle": "';--"})),
        ("environments-create/existing", "POST", "/api/v1/environments", json!({"name": "dev"})),
        ("integrations-create/type-sql", "POST", "/api/v1/projects/order-service/integrations", json!({"name": "i", "runtimeType": "BI' OR '1'='1"})),
        ("integrations-create/unknown-project", "POST", "/api/v1/projects/'%20OR%201=1--/integrations", json!({"name": "i", "runtimeType": "BI"})),
        ("roles-create/unknown-permission", "POST", "/api/v1/roles", json!({"name": "r", "permissions": ["'; DROP TABLE roles;--"]})),
        ("assignments-create/role-sql", "POST", "/api/v1/role-assignments", json!({"role": "' OR 1=1--", "user": "root"})),
        ("assignments-create/user-sql", "POST", "/api/v1/role-assignments", json!({"role": "Viewer", "user": "' OR 1=1--"})),
        ("assignments-create/scope-type", "POST", "/api/v1/role-assignments", json!({"role": "Viewer", "user": "root", "scope": {"type": "galaxy"}})),
        ("assignments-create/role-unknown-number", "POST", "/api/v1/role-assignments", json!({"role": 4242, "user": "root"})),
        ("assignments-create/role-huge-int", "POST", "/api/v1/role-assignments", json!({"role": u64::MAX, "user": "root"})),
        ("assignments-create/role-negative", "POST", "/api/v1/role-assignments", json!({"role": -1, "user": "root"})),
        ("users-create/username-huge", "POST", "/api/v1/users", json!({"username": "u".repeat(100_000), "password": TEST_PASSWORD})),
        ("users-create/existing", "POST", "/api/v1/users", json!({"username": "root", "password": TEST_PASSWORD})),
        ("users-create/short-password", "POST", "/api/v1/users", json!({"username": "u2", "password": "x"})),
        ("tokens-create/expires-garbage", "POST", "/api/v1/auth/tokens", json!({"name": "t", "expiresIn": "forever"})),
        ("tokens-create/expires-huge", "POST", "/api/v1/auth/tokens", json!({"name": "t", "expiresIn": "99999999999999999999d"})),
        ("listener-state/unknown-state", "PUT", "/api/v1/projects/order-service/integrations/order-create/environments/dev/listeners/listener_1", json!({"state": "exploded"})),
        ("logger-level/unknown-level", "PUT", "/api/v1/projects/order-service/integrations/order-create/environments/dev/loggers/acme", json!({"level": "LOUD"})),
        ("project-environments/unknown", "PUT", "/api/v1/projects/order-service/environments", json!({"environments": ["' OR 1=1--"]})),
        ("secrets-create/unknown-env", "POST", "/api/v1/secrets", json!({"environment": "'; DROP TABLE secrets;--"})),
    ];
    for (name, method, path, body) in refused {
        c.add(
            format!("management/{name}"),
            Management,
            api(method, path, body.to_string().as_bytes()),
            AnyClientError,
        );
    }

    // ---- Management listener: paths, queries, methods -----------------
    for (name, method, target, status) in [
        (
            "project-sql",
            "GET",
            "/api/v1/projects/'%20OR%20'1'='1",
            404,
        ),
        ("project-sql-raw-quote", "GET", "/api/v1/projects/'--", 404),
        ("user-sql", "GET", "/api/v1/users/root'--", 404),
        (
            "environment-delete-sql",
            "DELETE",
            "/api/v1/environments/dev'%20OR%201=1--",
            404,
        ),
        (
            "runtime-delete-sql",
            "DELETE",
            "/api/v1/runtimes/'%20OR%201=1--",
            404,
        ),
        (
            "secret-revoke-sql",
            "DELETE",
            "/api/v1/secrets/x'%3B%20DELETE%20FROM%20secrets--",
            404,
        ),
        (
            "token-revoke-sql",
            "DELETE",
            "/api/v1/auth/tokens/'%20OR%201=1",
            404,
        ),
        (
            "group-delete-sql",
            "DELETE",
            "/api/v1/groups/'%20OR%201=1",
            404,
        ),
        (
            "role-delete-sql",
            "DELETE",
            "/api/v1/roles/'%20OR%201=1",
            404,
        ),
        (
            "assignment-delete-sql",
            "DELETE",
            "/api/v1/role-assignments/1%20OR%201=1",
            404,
        ),
        (
            "user-delete-bad-percent",
            "DELETE",
            "/api/v1/users/%zz",
            404,
        ),
        (
            "user-invalid-utf8-percent",
            "GET",
            "/api/v1/users/%ff%fe",
            404,
        ),
        (
            "integration-sql",
            "GET",
            "/api/v1/projects/order-service/integrations/'%20OR%201=1",
            404,
        ),
        (
            "runtimes-limit-sql",
            "GET",
            "/api/v1/runtimes?limit=1%20OR%201=1",
            400,
        ),
        (
            "runtimes-limit-negative",
            "GET",
            "/api/v1/runtimes?limit=-1",
            400,
        ),
        (
            "runtimes-limit-huge",
            "GET",
            "/api/v1/runtimes?limit=99999999999999999999999",
            400,
        ),
        (
            "runtimes-limit-nan",
            "GET",
            "/api/v1/runtimes?limit=NaN",
            400,
        ),
        (
            "runtimes-limit-infinity",
            "GET",
            "/api/v1/runtimes?limit=Infinity",
            400,
        ),
        (
            "runtimes-limit-float",
            "GET",
            "/api/v1/runtimes?limit=1e3",
            400,
        ),
        (
            "runtimes-status-sql",
            "GET",
            "/api/v1/runtimes?status='%20OR%201=1",
            400,
        ),
        (
            "runtimes-cursor-sql",
            "GET",
            "/api/v1/runtimes?cursor='%20OR%201=1--",
            400,
        ),
        (
            "environments-cursor-sql",
            "GET",
            "/api/v1/environments?cursor=1%20OR%201=1",
            400,
        ),
        (
            "handle-availability-missing",
            "GET",
            "/api/v1/projects/handle-availability",
            400,
        ),
        ("unknown-api-route", "GET", "/api/v1/nothing", 404),
        ("api-dotdot", "GET", "/api/v1/../../etc/passwd", 404),
        (
            "api-encoded-dotdot",
            "GET",
            "/api/v1/%2e%2e/%2e%2e/etc/passwd",
            404,
        ),
        ("api-encoded-slash", "GET", "/api/v1/users%2Froot", 404),
        ("trace-api", "TRACE", "/api/v1/users", 405),
        ("connect-api", "CONNECT", "/api/v1/users", 405),
        ("lowercase-get-api", "get", "/api/v1/users", 405),
        ("mixed-case-method", "GeT", "/api/v1/users", 405),
        ("propfind-api", "PROPFIND", "/api/v1/projects", 405),
        ("delete-collection", "DELETE", "/api/v1/users", 405),
        ("trace-healthz", "TRACE", "/healthz", 405),
        ("post-healthz", "POST", "/healthz", 405),
        ("lowercase-healthz", "get", "/healthz", 405),
        ("trace-console", "TRACE", "/", 405),
        ("connect-authority", "CONNECT", "127.0.0.1:9446", 405),
        ("options-asterisk", "OPTIONS", "*", 405),
        ("post-console", "POST", "/assets/index.html", 405),
    ] {
        c.add(
            format!("management/route/{name}"),
            Management,
            api(method, target, b""),
            Status(status),
        );
    }
    // Authentication itself, on a route that needs it.
    for (name, auth) in [
        ("none", None),
        ("basic", Some("Basic cm9vdDpjb3JyZWN0LWhvcnNlLWJhdHRlcnk=")),
        ("bearer-empty", Some("Bearer ")),
        ("bearer-sql", Some("Bearer ' OR '1'='1")),
        (
            "bearer-huge",
            Some(&*format!("Bearer {}", "t".repeat(10_000))),
        ),
        ("api-token-prefix-garbage", Some("Bearer icp_'--_x")),
        ("runtime-token", Some(rt_auth.as_str())),
    ] {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        c.add(
            format!("management/auth/{name}"),
            Management,
            request(
                "POST",
                "/api/v1/projects",
                &headers,
                br#"{"name": "sneaky"}"#,
            ),
            Error(&[401]),
        );
    }
    c.add(
        "management/auth/cookie-sql",
        Management,
        request(
            "POST",
            "/api/v1/projects",
            &[("Cookie", "icp_session=' OR '1'='1")],
            br#"{"name": "sneaky"}"#,
        ),
        Error(&[401]),
    );

    // ---- Management listener: path traversal against the console ------
    for (name, target) in [
        ("dotdot-root", "/../../../../etc/passwd"),
        ("dotdot-assets", "/assets/../../Cargo.toml"),
        ("dotdot-assets-src", "/assets/../src/main.rs"),
        ("encoded-dotdot", "/assets/%2e%2e/%2e%2e/etc/passwd"),
        ("encoded-dotdot-upper", "/assets/%2E%2E/Cargo.toml"),
        ("double-encoded", "/assets/%252e%252e/Cargo.toml"),
        ("encoded-slash", "/assets/..%2f..%2fCargo.toml"),
        ("encoded-backslash", "/assets/..%5c..%5cCargo.toml"),
        ("backslash", "/assets/..\\..\\Cargo.toml"),
        ("absolute-path", "/assets//etc/passwd"),
        ("absolute-encoded", "/assets/%2Fetc%2Fpasswd"),
        ("double-slash-root", "//etc/passwd"),
        ("absolute-form-uri", "http://127.0.0.1/etc/passwd"),
        ("absolute-form-file", "file:///etc/passwd"),
        ("nul-extension", "/assets/index.html%00.js"),
        ("readme", "/assets/README.md"),
        ("dotfile", "/assets/.git/config"),
        ("data-dir", "/data/icp.db"),
        ("master-key", "/../data/master.key"),
        ("overlong-utf8-dot", "/assets/%c0%ae%c0%ae/Cargo.toml"),
        ("dotdot-no-extension", "/assets/../../../../etc/shadow"),
        ("semicolon-path-param", "/assets/..;/Cargo.toml"),
    ] {
        c.add(
            format!("management/console/{name}"),
            Management,
            request("GET", target, &[], b""),
            Console,
        );
    }
    mi_corpus(&mut c, bridge, cred);
    telemetry_corpus(&mut c, bridge, cred, &tokens);
    pipeline_corpus(&mut c, bridge, cred, &cred.pipeline, &tokens);
    graphql_corpus(&mut c, cred);
    c.cases
}

// ---- ICP's GraphQL API and login service (issue 15) ---------------------

/// Hostile requests to `/graphql` and `/auth/*`: transport, credentials,
/// documents (deep, wide, exponential, malformed), variables of the wrong
/// type or size, and mutations whose input is wrong. None may answer 5xx
/// or change anything.
fn graphql_corpus(c: &mut Corpus, cred: &Credentials) {
    use Expect::*;
    use Listener::Management;
    let auth = format!("Bearer {}", cred.admin);
    let post = |ctype: &str, auth: &str, body: &[u8]| {
        request(
            "POST",
            "/graphql",
            &[("Authorization", auth), ("Content-Type", ctype)],
            body,
        )
    };
    let doc = |q: &str| json!({ "query": q }).to_string().into_bytes();
    let with_vars = |q: &str, v: Value| {
        json!({ "query": q, "variables": v })
            .to_string()
            .into_bytes()
    };

    // Transport.
    for (name, ctype, body) in [
        (
            "graphql-content-type",
            "application/graphql",
            b"{ systemInfo { version } }".to_vec(),
        ),
        (
            "text-plain",
            "text/plain",
            doc("{ systemInfo { version } }"),
        ),
        ("no-content-type", "", doc("{ systemInfo { version } }")),
        ("not-json", "application/json", b"{ systemInfo".to_vec()),
        (
            "json-array",
            "application/json",
            b"[{\"query\": \"{ systemInfo { version } }\"}]".to_vec(),
        ),
        (
            "json-string",
            "application/json",
            b"\"{ systemInfo { version } }\"".to_vec(),
        ),
        ("empty-body", "application/json", Vec::new()),
        (
            "query-missing",
            "application/json",
            b"{\"variables\": {}}".to_vec(),
        ),
        ("query-empty", "application/json", doc("")),
        ("query-blank", "application/json", doc(" \n\t ")),
        (
            "query-number",
            "application/json",
            b"{\"query\": 5}".to_vec(),
        ),
        (
            "query-object",
            "application/json",
            b"{\"query\": {\"a\": 1}}".to_vec(),
        ),
        (
            "variables-array",
            "application/json",
            b"{\"query\": \"{ systemInfo { version } }\", \"variables\": [1]}".to_vec(),
        ),
        (
            "variables-string",
            "application/json",
            b"{\"query\": \"{ systemInfo { version } }\", \"variables\": \"x\"}".to_vec(),
        ),
        (
            "invalid-utf8",
            "application/json",
            b"{\"query\": \"{ \xff\xfe }\"}".to_vec(),
        ),
        (
            "nul-in-query",
            "application/json",
            doc("{ system\u{0}Info { version } }"),
        ),
        (
            "nested-variables",
            "application/json",
            format!(
                "{{\"query\": \"{{ systemInfo {{ version }} }}\", \"variables\": {{\"v\": {}}}}}",
                nested_value(5_000, "[", "]")
            )
            .into_bytes(),
        ),
    ] {
        c.add(
            format!("management/graphql/transport/{name}"),
            Management,
            post(ctype, &auth, &body),
            GraphQl(&[400]),
        );
    }
    c.add(
        "management/graphql/transport/put",
        Management,
        request(
            "PUT",
            "/graphql",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            &doc("{ systemInfo { version } }"),
        ),
        Status(405),
    );
    for (name, target) in [
        ("get-no-query", "/graphql".to_string()),
        ("get-empty-query", "/graphql?query=".to_string()),
        (
            "get-bad-variables",
            "/graphql?query=%7B%20systemInfo%20%7B%20version%20%7D%20%7D&variables=%5B1%5D"
                .to_string(),
        ),
        ("get-broken-encoding", "/graphql?query=%7B%zz".to_string()),
        (
            "get-mutation",
            "/graphql?query=mutation%20%7B%20revokeOrgSecret(keyId%3A%20%22abcdef12%22)%20%7D"
                .to_string(),
        ),
    ] {
        c.add(
            format!("management/graphql/transport/{name}"),
            Management,
            request("GET", &target, &[("Authorization", &auth)], b""),
            GraphQl(&[400]),
        );
    }

    // Credentials: ICP's 400 for every bad token.
    let forged = {
        use base64::Engine;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let head = b.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        let body = b.encode(r#"{"iss":"icp-frontend-jwt-issuer","sub":"1","aud":"icp-server","exp":9999999999,"nbf":0,"iat":0,"username":"root","displayName":"r","scope":"","sid":"00"}"#);
        format!("{head}.{body}.{}", b.encode([7u8; 32]))
    };
    let none_alg = {
        use base64::Engine;
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b.encode(r#"{"alg":"none"}"#),
            b.encode(r#"{"sub":"1"}"#)
        )
    };
    for (name, header) in [
        ("no-header", None),
        ("basic", Some("Basic cm9vdDpyb290".to_string())),
        ("bearer-empty", Some("Bearer ".to_string())),
        ("garbage", Some("Bearer x.y.z".to_string())),
        ("forged-jwt", Some(format!("Bearer {forged}"))),
        ("alg-none", Some(format!("Bearer {none_alg}"))),
        (
            "unknown-session",
            Some("Bearer icps_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string()),
        ),
        (
            "long-token",
            Some(format!("Bearer eyJ{}.a.b", "A".repeat(6_000))),
        ),
    ] {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(h) = &header {
            headers.push(("Authorization", h.as_str()));
        }
        c.add(
            format!("management/graphql/auth/{name}"),
            Management,
            request(
                "POST",
                "/graphql",
                &headers,
                &doc("{ systemInfo { version } }"),
            ),
            GraphQl(&[400]),
        );
    }

    // Documents that do not parse or validate: 400.
    let aliases: String = (0..10_000)
        .map(|n| format!("a{n}: systemInfo {{ version }} "))
        .collect();
    let mut exponential =
        String::from("{ ...F29 }\nfragment F0 on Query { systemInfo { version } }\n");
    for n in 1..30 {
        exponential.push_str(&format!(
            "fragment F{n} on Query {{ ...F{} ...F{} }}\n",
            n - 1,
            n - 1
        ));
    }
    let deep_introspection = format!(
        "{{ __schema {{ types {} }} }}",
        "{ fields { type { ofType ".repeat(40) + "{ name }" + &" } } }".repeat(40)
    );
    let documents: Vec<(&str, String)> = vec![
        ("syntax-unclosed", "{ systemInfo { version }".into()),
        ("syntax-extra-braces", "{ systemInfo { version } }}}".into()),
        ("syntax-unterminated-string", "{ projectByHandler(orgId: 1, projectHandler: \"x) { id } }".into()),
        ("syntax-garbage", "\u{1F4A9} \u{202E} ;;; @@@".into()),
        ("unknown-field", "{ nope }".into()),
        ("unknown-argument", "{ systemInfo(x: 1) { version } }".into()),
        ("missing-selection", "{ runtimes(projectId: \"1\") }".into()),
        ("selection-on-scalar", "{ systemInfo { version { a } } }".into()),
        ("missing-required-argument", "{ runtime { runtimeId } }".into()),
        ("wrong-argument-type", "{ projects(orgId: \"one\") { pageInfo { total } } }".into()),
        ("int-overflow", "{ projects(orgId: 99999999999) { pageInfo { total } } }".into()),
        ("bad-enum-value", "mutation { updateListenerState(input: {runtimeIds: [\"x\"], listenerName: \"l\", action: JUMP}) { success } }".into()),
        ("enum-as-string", "mutation { updateArtifactStatus(input: {componentId: \"1\", artifactType: \"api\", artifactName: \"a\", status: \"enabled\"}) { status } }".into()),
        ("input-missing-field", "mutation { createEnvironment(environment: {name: \"n\"}) { id } }".into()),
        ("input-unknown-field", "mutation { createEnvironment(environment: {name: \"n\", environmentHandler: \"n\", critical: false, evil: 1}) { id } }".into()),
        ("list-of-wrong-type", "mutation { deleteLogger(input: {runtimeIds: [1, 2], loggerName: \"l\"}) { success } }".into()),
        ("deep-nesting", format!("{}{}", "{ a ".repeat(500), "}".repeat(500))),
        ("deep-list-literal", format!("{{ projects(orgId: {}) {{ pageInfo {{ total }} }} }}", nested_value(500, "[", "]"))),
        ("aliases-10000", format!("{{ {aliases} }}")),
        ("fragments-exponential", exponential),
        ("fragment-cycle", "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }".into()),
        ("fragment-unknown", "{ ...Nope }".into()),
        ("fragment-wrong-type", "{ ...F } fragment F on Runtime { runtimeId }".into()),
        ("deep-introspection", deep_introspection),
        ("unknown-directive", "{ systemInfo @evil { version } }".into()),
        ("skip-wrong-type", "{ systemInfo @skip(if: \"yes\") { version } }".into()),
        ("two-anonymous-operations", "{ systemInfo { version } } { systemInfo { version } }".into()),
        ("subscription", "subscription { systemInfo { version } }".into()),
        ("undefined-variable", "{ projectByHandler(orgId: 1, projectHandler: $h) { id } }".into()),
    ];
    for (name, q) in documents {
        c.add(
            format!("management/graphql/document/{name}"),
            Management,
            post("application/json", &auth, &doc(&q)),
            GraphQl(&[400, 413]),
        );
    }
    // One 400,000-character literal is one token: it runs, and finds nothing.
    c.add(
        "management/graphql/document/huge-string-literal",
        Management,
        post(
            "application/json",
            &auth,
            &doc(&format!(
                "{{ projectByHandler(orgId: 1, projectHandler: \"{}\") {{ id }} }}",
                "x".repeat(400_000)
            )),
        ),
        JsonOk,
    );
    c.add(
        "management/graphql/document/unknown-operation-name",
        Management,
        post(
            "application/json",
            &auth,
            json!({"query": "query A { systemInfo { version } }", "operationName": "B"})
                .to_string()
                .as_bytes(),
        ),
        GraphQl(&[400]),
    );

    // Variables of the wrong type or shape: 400 before anything runs.
    let list_q =
        "query($p: PaginationInput) { projects(orgId: 1, pagination: $p) { pageInfo { total } } }";
    for (name, v) in [
        ("pagination-string", json!({"p": "all"})),
        ("limit-string", json!({"p": {"limit": "ten"}})),
        ("limit-float", json!({"p": {"limit": 1.5}})),
        ("limit-huge", json!({"p": {"limit": 1e30}})),
        (
            "pagination-unknown-field",
            json!({"p": {"limit": 1, "evil": true}}),
        ),
        ("pagination-list", json!({"p": [1, 2]})),
    ] {
        c.add(
            format!("management/graphql/variables/{name}"),
            Management,
            post("application/json", &auth, &with_vars(list_q, v)),
            GraphQl(&[400]),
        );
    }
    let listener_q =
        "mutation($i: ListenerControlInput!) { updateListenerState(input: $i) { success } }";
    for (name, v) in [
        ("input-null", json!({"i": null})),
        ("input-missing", json!({})),
        (
            "runtime-ids-number",
            json!({"i": {"runtimeIds": 5, "listenerName": "l", "action": "STOP"}}),
        ),
        (
            "action-lowercase",
            json!({"i": {"runtimeIds": ["x"], "listenerName": "l", "action": "stop"}}),
        ),
        (
            "action-object",
            json!({"i": {"runtimeIds": ["x"], "listenerName": "l", "action": {"a": 1}}}),
        ),
        (
            "many-keys",
            json!({"i": (0..10_000).map(|n| (format!("k{n}"), json!(n))).collect::<serde_json::Map<_, _>>()}),
        ),
    ] {
        c.add(
            format!("management/graphql/variables/{name}"),
            Management,
            post("application/json", &auth, &with_vars(listener_q, v)),
            GraphQl(&[400]),
        );
    }

    // Documents that run but whose input is wrong: 200 with errors, nothing changed.
    let long = "n".repeat(5_000);
    let refused_mutations: Vec<(&str, String)> = vec![
        ("create-project-empty-handler", "mutation { createProject(project: {orgId: 1, orgHandler: \"d\", name: \"P\", projectHandler: \" \"}) { id } }".into()),
        ("create-environment-long-name", format!("mutation {{ createEnvironment(environment: {{name: \"{long}\", environmentHandler: \"qa-long\", critical: false}}) {{ id }} }}")),
        ("create-environment-taken", "mutation { createEnvironment(environment: {name: \"Dev\", environmentHandler: \"dev\", critical: false}) { id } }".into()),
        ("create-environment-bad-handler", "mutation { createEnvironment(environment: {name: \"x\", environmentHandler: \"../..\", critical: false}) { id } }".into()),
        ("update-environment-unknown", "mutation { updateEnvironment(environmentId: \"999999\", name: \"x\") { id } }".into()),
        ("update-environment-handler", "mutation { updateEnvironment(environmentId: \"1\", handler: \"other\") { id } }".into()),
        ("delete-environment-in-use", "mutation { deleteEnvironment(environmentId: \"1\") }".into()),
        ("delete-environment-not-a-number", "mutation { deleteEnvironment(environmentId: \"1 OR 1=1\") }".into()),
        ("listener-no-runtimes", "mutation { updateListenerState(input: {runtimeIds: [], listenerName: \"l\", action: STOP}) { success } }".into()),
        ("listener-blank-name", "mutation { updateListenerState(input: {runtimeIds: [\"x\"], listenerName: \"  \", action: STOP}) { success } }".into()),
        ("listener-internal-action", "mutation { updateListenerState(input: {runtimeIds: [\"x\"], listenerName: \"l\", action: MI_MGMT}) { success } }".into()),
        ("log-level-no-component", "mutation { updateLogLevel(input: {runtimeIds: [\"x\"], componentType: BI, logLevel: DEBUG}) { success } }".into()),
        ("log-level-unknown-runtime", "mutation { updateLogLevel(input: {runtimeIds: [\"nope\"], logLevel: DEBUG}) { success } }".into()),
        ("log-level-long-request-id", format!("mutation {{ updateLogLevel(input: {{runtimeIds: [\"x\"], logLevel: DEBUG, requestId: \"{}\"}}) {{ success }} }}", "r".repeat(60))),
        ("delete-logger-blank", "mutation { deleteLogger(input: {runtimeIds: [\"x\"], loggerName: \"\"}) { success } }".into()),
        ("delete-runtime-unknown", "mutation { deleteRuntime(runtimeId: \"nope\") { deleted } }".into()),
        ("revoke-secret-unknown", "mutation { revokeOrgSecret(keyId: \"abcdef12\") }".into()),
        ("create-secret-unknown-env", "mutation { createOrgSecret(environmentId: \"999999\") }".into()),
        ("create-secret-unknown-component", "mutation { createOrgSecret(environmentId: \"1\", componentId: \"999999\") }".into()),
        ("create-component-short-name", "mutation { createComponent(component: {projectId: \"999999\", name: \"ab\"}) { id } }".into()),
        ("update-component-unknown", "mutation { updateComponent(component: {id: \"-1\", displayName: \"x\"}) { id } }".into()),
        ("delete-component-unknown", "mutation { deleteComponentV2(orgHandler: \"d\", componentId: \"999999\", projectId: \"1\") { status } }".into()),
        ("delete-project-unknown", "mutation { deleteProject(orgId: 1, projectId: \"999999\") { status } }".into()),
        ("update-project-unknown", "mutation { updateProject(project: {id: \"999999\", name: \"x\"}) { id } }".into()),
        ("artifact-status-unknown-component", "mutation { updateArtifactStatus(input: {componentId: \"999999\", artifactType: \"api\", artifactName: \"a\", status: DISABLED}) { status } }".into()),
        ("artifact-statistics-unknown-env", "mutation { updateArtifactStatisticsStatus(input: {componentId: \"1\", environmentId: \"999999\", artifactType: \"task\", artifactName: \"a\", statistics: ENABLED}) { status } }".into()),
        ("trigger-unknown-component", "mutation { triggerArtifact(input: {componentId: \"x\", taskName: \"t\"}) { status } }".into()),
        ("add-mi-user-unknown-runtime", "mutation { addMIUser(componentId: \"1\", runtimeId: \"nope\", username: \"u\", password: \"p\") { status } }".into()),
        ("delete-mi-user-long-request-id", format!("mutation {{ deleteMIUser(componentId: \"1\", runtimeId: \"nope\", username: \"u\", requestId: \"{}\") {{ status }} }}", "r".repeat(100))),
        ("moesif", "mutation { createMoesifDashboards(componentId: \"1\", environmentId: \"1\", managementApiKey: \"k\") { dashboardsCreated } }".into()),
        ("runtimes-without-scope", "{ runtimes { items { runtimeId } } }".into()),
        ("component-without-ids", "{ component { id } }".into()),
        ("log-file-traversal", "{ logFileContent(runtimeId: \"x\", fileName: \"../../etc/passwd\") { content } }".into()),
        ("log-file-drive", "{ logFileContent(runtimeId: \"x\", fileName: \"C:evil\") { content } }".into()),
        ("registry-blank-path", "{ registryDirectory(runtimeId: \"x\", path: \" \") { count } }".into()),
        ("fault-blank-name", "{ compositeAppFaultStackTrace(runtimeId: \"x\", appName: \"\") { faultStackTrace } }".into()),
        ("artifacts-unknown-component", "{ restApisByEnvironmentAndComponent(environmentId: \"1\", componentId: \"999999\") { pageInfo { total } } }".into()),
        ("artifacts-unknown-environment", "{ servicesByEnvironmentAndComponent(environmentId: \"x\", componentId: \"1\") { pageInfo { total } } }".into()),
        ("source-unsupported-kind", "{ artifactSourceByComponent(componentId: \"1\", artifactType: \"connector\", artifactName: \"c\") { content } }".into()),
    ];
    for (name, q) in refused_mutations {
        c.add(
            format!("management/graphql/refused/{name}"),
            Management,
            post("application/json", &auth, &doc(&q)),
            GraphQl(&[200]),
        );
    }

    // The login service.
    let auth_post = |path: &str, ctype: &str, body: &[u8]| {
        request("POST", path, &[("Content-Type", ctype)], body)
    };
    for (name, body) in [
        ("not-json", b"username=root".to_vec()),
        ("array", b"[\"root\", \"x\"]".to_vec()),
        ("no-password", b"{\"username\": \"nobody-here\"}".to_vec()),
        (
            "password-number",
            b"{\"username\": \"nobody-here\", \"password\": 5}".to_vec(),
        ),
        ("empty", Vec::new()),
    ] {
        c.add(
            format!("management/auth/login/{name}"),
            Management,
            auth_post("/auth/login", "application/json", &body),
            Auth(&[400]),
        );
    }
    for (name, body) in [
        (
            "unknown-user",
            json!({"username": "nobody-here", "password": "whatever-it-is"}),
        ),
        (
            "huge-user",
            json!({"username": "u".repeat(100_000), "password": "x"}),
        ),
        (
            "sql-user",
            json!({"username": "' OR 1=1 --", "password": "x"}),
        ),
    ] {
        c.add(
            format!("management/auth/login/{name}"),
            Management,
            auth_post(
                "/auth/login",
                "application/json",
                body.to_string().as_bytes(),
            ),
            Auth(&[401]),
        );
    }
    for (name, body, statuses) in [
        ("empty", json!({}), &[400u16][..]),
        ("blank", json!({"refreshToken": ""}), &[400]),
        ("number", json!({"refreshToken": 5}), &[400]),
        ("unknown", json!({"refreshToken": "icps_nope"}), &[401]),
        (
            "not-a-session",
            json!({"refreshToken": "eyJ.eyJ.x"}),
            &[401],
        ),
    ] {
        c.add(
            format!("management/auth/refresh/{name}"),
            Management,
            auth_post(
                "/auth/refresh-token",
                "application/json",
                body.to_string().as_bytes(),
            ),
            Auth(statuses),
        );
    }
    c.add(
        "management/auth/revoke/anonymous",
        Management,
        auth_post("/auth/revoke-token", "application/json", b"{}"),
        Auth(&[401]),
    );
    c.add(
        "management/auth/revoke/foreign-token",
        Management,
        request(
            "POST",
            "/auth/revoke-token",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            b"{\"refreshToken\": \"icps_someone-elses\"}",
        ),
        Auth(&[401]),
    );
    c.add(
        "management/auth/unknown-path",
        Management,
        auth_post("/auth/login/oidc", "application/json", b"{}"),
        Auth(&[404]),
    );
    c.add(
        "management/auth/login-get",
        Management,
        request("GET", "/auth/login", &[], b""),
        Status(405),
    );

    // ICP's push channel: every refusal before any upgrade.
    let ws = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    let token = cred.admin.as_str();
    for (name, target, headers, statuses) in [
        (
            "no-token",
            "/runtime-status?environmentId=1".to_string(),
            &ws[..],
            &[401u16][..],
        ),
        (
            "bad-token",
            "/runtime-status?environmentId=1&token=icps_nope".to_string(),
            &ws[..],
            &[401],
        ),
        (
            "forged-jwt",
            format!("/runtime-status?environmentId=1&token={forged}"),
            &ws[..],
            &[401],
        ),
        (
            "no-environment",
            format!("/runtime-status?token={token}"),
            &ws[..],
            &[404],
        ),
        (
            "unknown-environment",
            format!("/runtime-status?environmentId=999999&token={token}"),
            &ws[..],
            &[404],
        ),
        (
            "environment-not-a-number",
            format!("/runtime-status?environmentId=1%20OR%201&token={token}"),
            &ws[..],
            &[404],
        ),
        (
            "no-handshake",
            format!("/runtime-status?environmentId=1&token={token}"),
            &[][..],
            &[400],
        ),
        (
            "handshake-without-key",
            format!("/runtime-status?environmentId=1&token={token}"),
            &ws[..2],
            &[400],
        ),
        (
            "old-version",
            format!("/runtime-status?environmentId=1&token={token}"),
            &[ws[0], ws[1], ws[2], ("Sec-WebSocket-Version", "8")][..],
            &[426],
        ),
    ] {
        c.add(
            format!("management/runtime-status/{name}"),
            Management,
            request("GET", &target, headers, b""),
            Auth(statuses),
        );
    }
    c.add(
        "management/runtime-status/post",
        Management,
        request("POST", "/runtime-status", &[], b""),
        Status(405),
    );
}

// ---- Micro Integrator (issue 14): heartbeats as MI sends them, broken ----

/// `text` with its first `from` replaced by raw bytes (which need not be
/// UTF-8).
fn with_bytes(text: &str, from: &str, to: &[u8]) -> Vec<u8> {
    let i = text
        .find(from)
        .unwrap_or_else(|| panic!("{from} not in the body"));
    [
        &text.as_bytes()[..i],
        to,
        &text.as_bytes()[i + from.len()..],
    ]
    .concat()
}

/// Adds the MI cases: full heartbeats whose MI part is malformed (400: MI
/// stops heartbeating after it, which is right for what a retry cannot
/// fix), MI deltas with a mistyped hash, tunnel-mode command results
/// without a usable `httpStatus`, and well-formed heartbeats that name
/// another environment or an integration of the other runtime type (409).
/// Every one is sent with MI's own token (no `typ`, no `nbf`) of an
/// unbound secret, which none of them may bind.
fn mi_corpus(c: &mut Corpus, bridge: &Bridge, cred: &Credentials) {
    use Expect::*;
    use Listener::Runtime;
    let mi = &cred.mi;
    let auth = format!("Bearer {}", mi.token());
    let post = |path: &str, auth: &str, body: &[u8]| {
        request(
            "POST",
            path,
            &[
                ("Authorization", auth),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    };
    let full = mi.full_body();
    let add_full = |c: &mut Corpus, name: String, body: &Value| {
        c.add(
            format!("runtime/mi/{name}"),
            Runtime,
            post("/icp/heartbeat", &auth, body.to_string().as_bytes()),
            Error(&[400]),
        );
    };
    let mutated = |f: &dyn Fn(&mut Value)| {
        let mut b = full.clone();
        f(&mut b);
        b
    };
    let wrong = [
        ("string", json!("x")),
        ("number", json!(7)),
        ("bool", json!(true)),
        ("array", json!([{"name": "x"}])),
        ("object", json!({"name": "x"})),
        ("null", Value::Null),
    ];

    // nodeInfo and artifacts: missing, or not an object.
    for member in ["nodeInfo", "artifacts"] {
        add_full(
            c,
            format!("{member}-missing"),
            &mutated(&|b| drop(b.as_object_mut().unwrap().remove(member))),
        );
        for (t, v) in wrong.iter().filter(|(t, _)| *t != "object") {
            add_full(
                c,
                format!("{member}-as-{t}"),
                &mutated(&|b| b[member] = v.clone()),
            );
        }
    }
    let lists: Vec<String> = full["artifacts"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(lists.len(), 15, "MI reports 15 artifact lists");
    for list in &lists {
        // A list that is not an array (null is an absent list).
        for (t, v) in wrong
            .iter()
            .filter(|(t, _)| !matches!(*t, "array" | "null"))
        {
            add_full(
                c,
                format!("{list}-as-{t}"),
                &mutated(&|b| b["artifacts"][list.as_str()] = v.clone()),
            );
        }
        // An entry that is not an object.
        for (t, v) in wrong.iter().filter(|(t, _)| *t != "object") {
            add_full(
                c,
                format!("{list}-entry-as-{t}"),
                &mutated(&|b| b["artifacts"][list.as_str()] = json!([{"name": "ok"}, v])),
            );
        }
        add_full(
            c,
            format!("{list}-name-missing"),
            &mutated(&|b| {
                drop(
                    b["artifacts"][list.as_str()][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("name"),
                )
            }),
        );
        add_full(
            c,
            format!("{list}-name-empty"),
            &mutated(&|b| b["artifacts"][list.as_str()][0]["name"] = json!("")),
        );
    }
    // A name of the wrong type or size, in one list of each shape.
    for list in ["proxyServices", "carbonApps", "registryResources"] {
        for (t, v) in wrong.iter().filter(|(t, _)| *t != "string") {
            add_full(
                c,
                format!("{list}-name-as-{t}"),
                &mutated(&|b| b["artifacts"][list][0]["name"] = v.clone()),
            );
        }
        for (what, name) in [
            ("1001-chars", "n".repeat(1001)),
            ("1001-two-byte-chars", "é".repeat(1001)),
            ("100000-chars", "n".repeat(100_000)),
            ("escaped-nul", "Order\u{0}Proxy".to_string()),
            ("only-nul", "\u{0}".to_string()),
        ] {
            add_full(
                c,
                format!("{list}-name-{what}"),
                &mutated(&|b| b["artifacts"][list][0]["name"] = json!(name)),
            );
        }
    }
    // runtimePort: a string or a number naming a port 1-65535.
    for (what, v) in [
        ("string-0", json!("0")),
        ("string-70000", json!("70000")),
        ("string-65536", json!("65536")),
        ("string-http", json!("http")),
        ("string-empty", json!("")),
        ("string-negative", json!("-1")),
        ("string-float", json!("9164.5")),
        ("string-huge", json!("99999999999999999999999")),
        ("number-0", json!(0)),
        ("number-70000", json!(70000)),
        ("number-negative", json!(-1)),
        ("number-float", json!(9164.5)),
        ("bool", json!(true)),
        ("array", json!([9164])),
        ("object", json!({"port": 9164})),
    ] {
        let mut m = mi.clone();
        m.set_runtime_port(v);
        add_full(c, format!("runtimePort-{what}"), &m.full_body());
    }
    // runtimeHostname: a non-empty host name of at most 255 characters.
    for (what, v) in [
        ("empty", json!("")),
        ("blank", json!("   ")),
        ("256-chars", json!("h".repeat(256))),
        ("100000-chars", json!("h".repeat(100_000))),
        ("number", json!(1)),
        ("bool", json!(false)),
        ("array", json!(["mi-node-1"])),
        ("object", json!({"host": "mi-node-1"})),
    ] {
        let mut m = mi.clone();
        m.set_runtime_hostname(v);
        add_full(c, format!("runtimeHostname-{what}"), &m.full_body());
    }
    // One artifact over the limit, in one list and across two.
    add_full(
        c,
        "artifacts-20001-proxies".into(),
        &mutated(&|b| {
            b["artifacts"]["proxyServices"] = (0..20_001)
                .map(|i| json!({"name": format!("p{i}")}))
                .collect()
        }),
    );
    add_full(
        c,
        "artifacts-20001-across-lists".into(),
        &mutated(&|b| {
            b["artifacts"]["apis"] = (0..10_000)
                .map(|i| json!({"name": format!("a{i}")}))
                .collect();
            b["artifacts"]["registryResources"] = (0..10_000)
                .map(|i| json!({"name": format!("r{i}")}))
                .collect();
        }),
    );

    // Raw text: nesting past the parser's limit in an entry's extra
    // members, members given twice, bytes that are not UTF-8, NUL.
    let text = full.to_string();
    let proxy = r#"{"carbonApp":"HealthcareCompositeExporter","#;
    assert!(
        text.contains(proxy),
        "the proxy entry serialises as expected"
    );
    let in_entry = |extra: &str| text.replacen(proxy, &format!("{{{extra},{}", &proxy[1..]), 1);
    let name = r#""name":"StockQuoteProxy""#;
    let raw: Vec<(&str, Vec<u8>)> = vec![
        (
            "entry-nested-arrays-10000",
            in_entry(&format!(r#""junk":{}"#, nested(10_000))).into_bytes(),
        ),
        (
            "entry-nested-objects-200",
            in_entry(&format!(r#""junk":{}"#, nested_objects(200))).into_bytes(),
        ),
        (
            "entry-nested-mixed-129",
            in_entry(&format!(
                r#""junk":{}"#,
                nested_value(129, r#"[{"a":"#, "}]")
            ))
            .into_bytes(),
        ),
        (
            "nodeInfo-nested-10000",
            text.replacen(
                r#""nodeInfo":{"#,
                &format!(r#""nodeInfo":{{"deep":{},"#, nested(10_000)),
                1,
            )
            .into_bytes(),
        ),
        (
            "duplicate-runtimeType",
            text.replacen(
                r#""runtimeType":"MI""#,
                r#""runtimeType":"BI","runtimeType":"MI""#,
                1,
            )
            .into_bytes(),
        ),
        (
            "duplicate-nodeInfo",
            text.replacen(r#""nodeInfo":{"#, r#""nodeInfo":{},"nodeInfo":{"#, 1)
                .into_bytes(),
        ),
        (
            "duplicate-artifacts",
            text.replacen(r#""artifacts":{"#, r#""artifacts":{},"artifacts":{"#, 1)
                .into_bytes(),
        ),
        (
            "duplicate-list",
            text.replacen(
                r#""proxyServices":["#,
                r#""proxyServices":[],"proxyServices":["#,
                1,
            )
            .into_bytes(),
        ),
        (
            "duplicate-entry-name",
            text.replacen(name, &format!(r#"{name},"name":"OtherProxy""#), 1)
                .into_bytes(),
        ),
        (
            "duplicate-entry-state",
            text.replacen(name, &format!(r#"{name},"state":"disabled""#), 1)
                .into_bytes(),
        ),
        (
            "duplicate-nested-member",
            in_entry(r#""x":{"y":1,"y":2}"#).into_bytes(),
        ),
        (
            "duplicate-nodeInfo-member",
            text.replacen(
                r#""osName":"Linux""#,
                r#""osName":"Linux","osName":"Linux""#,
                1,
            )
            .into_bytes(),
        ),
        (
            "duplicate-runtimePort",
            text.replacen(
                r#""runtimePort":"9164""#,
                r#""runtimePort":"9164","runtimePort":"0""#,
                1,
            )
            .into_bytes(),
        ),
        (
            "invalid-utf8-name",
            with_bytes(&text, name, b"\"name\":\"Stock\xff\""),
        ),
        (
            "invalid-utf8-list-key",
            with_bytes(&text, r#""proxyServices""#, b"\"proxy\xfe\""),
        ),
        (
            "invalid-utf8-nodeInfo",
            with_bytes(&text, r#""osName":"Linux""#, b"\"osName\":\"Lin\xc3\""),
        ),
        (
            "raw-nul-in-name",
            text.replacen(name, "\"name\":\"Stock\u{0}Quote\"", 1)
                .into_bytes(),
        ),
        (
            "lone-surrogate-name",
            text.replacen(name, r#""name":"Stock\ud800""#, 1)
                .into_bytes(),
        ),
        ("trailing-garbage", format!("{text} {{}}").into_bytes()),
    ];
    for (what, body) in raw {
        assert_ne!(body, text.as_bytes(), "{what} changed nothing");
        c.add(
            format!("runtime/mi/raw-{what}"),
            Runtime,
            post("/icp/heartbeat", &auth, &body),
            Error(&[400]),
        );
    }

    // Deltas: the hash is a string.
    let delta = mi.delta_body();
    for (t, v) in wrong.iter().filter(|(t, _)| *t != "string") {
        let mut b = delta.clone();
        b["runtimeHash"] = v.clone();
        c.add(
            format!("runtime/mi-delta/runtimeHash-as-{t}"),
            Runtime,
            post("/icp/deltaHeartbeat", &auth, b.to_string().as_bytes()),
            Error(&[400]),
        );
    }
    let mut b = delta.clone();
    b.as_object_mut().unwrap().remove("runtimeHash");
    c.add(
        "runtime/mi-delta/runtimeHash-missing",
        Runtime,
        post("/icp/deltaHeartbeat", &auth, b.to_string().as_bytes()),
        Error(&[400]),
    );

    // Tunnel-mode results: a MI_MGMT command's result carries httpStatus.
    for prefix in ["mio-", "mir-"] {
        let result = json!({"runtimeId": mi.runtime_id, "commandId": format!("{prefix}1.{}", mi.runtime_id),
                            "status": "COMPLETED", "httpStatus": 200, "body": {"message": "done"}});
        let mut cases: Vec<(String, Value)> = vec![("missing".into(), {
            let mut r = result.clone();
            r.as_object_mut().unwrap().remove("httpStatus");
            r
        })];
        for (what, v) in [
            ("null", Value::Null),
            ("string", json!("200")),
            ("99", json!(99)),
            ("600", json!(600)),
            ("0", json!(0)),
            ("negative", json!(-200)),
            ("float", json!(200.5)),
            ("huge", json!(u64::MAX)),
            ("bool", json!(true)),
            ("array", json!([200])),
            ("object", json!({"code": 200})),
        ] {
            let mut r = result.clone();
            r["httpStatus"] = v;
            cases.push((what.into(), r));
        }
        for (what, body) in cases {
            c.add(
                format!("runtime/mi-result/{prefix}httpStatus-{what}"),
                Runtime,
                post("/icp/commandResult", &auth, body.to_string().as_bytes()),
                Error(&[400]),
            );
        }
    }

    // Well-formed, and refused for whom they name: another environment
    // than the secret's, or an integration of the other runtime type.
    let mut other_env = mi.clone();
    other_env.env = "prod".into();
    c.add(
        "runtime/mi/environment-of-another-secret",
        Runtime,
        post(
            "/icp/heartbeat",
            &auth,
            other_env.full_body().to_string().as_bytes(),
        ),
        Status(409),
    );
    let mut bi_integration = mi.clone();
    bi_integration.integration = bridge.integration.clone();
    bi_integration.secret = bridge.secret.clone();
    c.add(
        "runtime/mi/integration-runs-bi",
        Runtime,
        post(
            "/icp/heartbeat",
            &format!("Bearer {}", bi_integration.token()),
            bi_integration.full_body().to_string().as_bytes(),
        ),
        Status(409),
    );
}

// ---- Telemetry: ingest on the runtime listener, queries on management ----

/// The credentials the telemetry cases use, all made before the first dump.
struct Credentials {
    /// A runtime token (the bridge's secret, environment dev).
    runtime: String,
    /// An active ingest token for dev.
    ingest: String,
    /// An active ingest token for prod: its `?runtimeId=` of a dev runtime
    /// is out of scope.
    ingest_prod: String,
    /// An ingest token revoked through the API.
    revoked: String,
    /// A personal API token (Super Admin).
    admin: String,
    /// What the issue 8 cases need.
    pipeline: Pipeline,
    /// An MI node on an unbound dev secret, for the issue 14 cases.
    mi: MiRuntime,
}

/// The four ingest endpoints, with a body of one valid record each.
fn ingest_endpoints() -> [(&'static str, &'static str, Value); 4] {
    [
        (
            "icp-logs",
            "/icp/logs",
            json!([{"log": "bad-input probe", "level": "info"}]),
        ),
        (
            "icp-metrics",
            "/icp/metrics",
            json!([{"service": "orders", "statusCode": 200, "responseTimeMs": 1.5}]),
        ),
        (
            "v1-logs",
            "/v1/logs",
            otlp_logs(json!({"body": {"stringValue": "bad-input probe"}})),
        ),
        (
            "v1-metrics",
            "/v1/metrics",
            otlp_metrics(json!({"name": "probe", "gauge": {"dataPoints": [{"asDouble": 1}]}})),
        ),
    ]
}

/// An OTLP logs request holding one log record.
fn otlp_logs(record: Value) -> Value {
    json!({"resourceLogs": [{"resource": {"attributes": []},
        "scopeLogs": [{"scope": {"name": "probe"}, "logRecords": [record]}]}]})
}

/// An OTLP metrics request holding one metric.
fn otlp_metrics(metric: Value) -> Value {
    json!({"resourceMetrics": [{"resource": {"attributes": []},
        "scopeMetrics": [{"metrics": [metric]}]}]})
}

/// Adds the telemetry cases: ingest refused (credentials, media types,
/// framing, bounds, scope), ingest accepted as lenient data (checked
/// against `telemetry.db` as they run), and hostile query strings on the
/// observability API.
fn telemetry_corpus(
    c: &mut Corpus,
    bridge: &Bridge,
    cred: &Credentials,
    tokens: &[(&str, Option<String>)],
) {
    use Expect::*;
    use Listener::*;
    let post = |path: &str, auth: Option<&str>, content_type: &str, body: &[u8]| {
        let mut headers = vec![("Content-Type", content_type)];
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        request("POST", path, &headers, body)
    };
    let ingest_auth = format!("Bearer {}", cred.ingest);
    let rt_auth = format!("Bearer {}", cred.runtime);
    let json_ct = "application/json";

    // Credentials: every bad runtime token of the heartbeat cases, and
    // ingest tokens that are revoked, unknown or malformed. Always 401,
    // whatever the body.
    let (id, secret) = cred.ingest[5..].split_once('_').unwrap();
    let ingest_tokens: Vec<(&str, String)> = vec![
        ("ingest-revoked", format!("Bearer {}", cred.revoked)),
        (
            "ingest-wrong-secret",
            format!("Bearer icpi_{id}_{}", B64URL.encode([7u8; 32])),
        ),
        (
            "ingest-secret-truncated",
            format!("Bearer icpi_{id}_{}", &secret[..secret.len() - 1]),
        ),
        ("ingest-secret-extended", format!("Bearer {}x", cred.ingest)),
        (
            "ingest-unknown-id",
            format!("Bearer icpi_00000000_{secret}"),
        ),
        (
            "ingest-id-not-hex",
            format!("Bearer icpi_zzzzzzzz_{secret}"),
        ),
        ("ingest-id-sql", "Bearer icpi_' OR 1=1--_x".into()),
        (
            "ingest-id-short",
            format!("Bearer icpi_{}_{secret}", &id[..7]),
        ),
        ("ingest-prefix-only", "Bearer icpi_".into()),
        ("ingest-no-secret", format!("Bearer icpi_{id}")),
        ("ingest-empty-secret", format!("Bearer icpi_{id}_")),
        (
            "ingest-uppercase-prefix",
            format!("Bearer ICPI_{id}_{secret}"),
        ),
        ("ingest-without-scheme", cred.ingest.clone()),
        ("ingest-basic-scheme", format!("Basic {}", cred.ingest)),
        (
            "ingest-huge",
            format!("Bearer icpi_{id}_{}", "a".repeat(8000)),
        ),
        ("api-token", format!("Bearer {}", cred.admin)),
    ];
    for (tag, path, body) in ingest_endpoints() {
        let body = body.to_string();
        for (name, auth) in tokens {
            c.add(
                format!("ingest/{tag}/token-{name}"),
                Runtime,
                post(path, auth.as_deref(), json_ct, body.as_bytes()),
                Error(&[401]),
            );
        }
        for (name, auth) in &ingest_tokens {
            c.add(
                format!("ingest/{tag}/token-{name}"),
                Runtime,
                post(path, Some(auth), json_ct, body.as_bytes()),
                Error(&[401]),
            );
        }
        // Authentication comes before the media type: an unauthenticated
        // protobuf body is a 401, not a 415.
        c.add(
            format!("ingest/{tag}/protobuf-without-token"),
            Runtime,
            post(path, None, "application/x-protobuf", b"\x0a\x02\x08\x01"),
            Error(&[401]),
        );
        // What icpd does not decode: 415 naming what to send.
        type Media<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>);
        let media: Vec<Media> = vec![
            ("protobuf", vec![("Content-Type", "application/x-protobuf")], b"\x0a\x0b\x0a\x09\x12\x07\x0a\x05probe".to_vec()),
            ("protobuf-upper", vec![("Content-Type", "APPLICATION/X-PROTOBUF")], b"\x0a\x00".to_vec()),
            ("protobuf-with-params", vec![("Content-Type", "application/protobuf; charset=binary")], b"\x0a\x00".to_vec()),
            ("msgpack", vec![("Content-Type", "application/msgpack")], b"\x91\x81\xa3log\xa1x".to_vec()),
            ("msgpack-x", vec![("Content-Type", "application/x-msgpack")], b"\x90".to_vec()),
            ("gzip", vec![("Content-Type", json_ct), ("Content-Encoding", "gzip")], b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x8b\x8e\x05\x00\x29\xbb\x4c\x0d\x02\x00\x00\x00".to_vec()),
            ("gzip-upper", vec![("Content-Type", json_ct), ("Content-Encoding", "GZIP")], body.as_bytes().to_vec()),
            ("deflate", vec![("Content-Type", json_ct), ("Content-Encoding", "deflate")], b"\x78\x9c\x8b\x8e\x05\x00\x01\x15\x00\xb9".to_vec()),
            ("brotli", vec![("Content-Type", json_ct), ("Content-Encoding", "br")], b"\x0b\x00\x80[]\x03".to_vec()),
            ("zstd", vec![("Content-Type", json_ct), ("Content-Encoding", "zstd")], b"\x28\xb5\x2f\xfd".to_vec()),
            ("encoding-list", vec![("Content-Type", json_ct), ("Content-Encoding", "identity, gzip")], body.as_bytes().to_vec()),
        ];
        for (name, headers, payload) in media {
            let mut h = headers.clone();
            h.push(("Authorization", &ingest_auth));
            c.add(
                format!("ingest/{tag}/media-{name}"),
                Runtime,
                request("POST", path, &h, &payload),
                Error(&[415]),
            );
        }
        // A control character in the header: the connection layer's 400.
        c.add(
            format!("ingest/{tag}/media-encoding-control-character"),
            Runtime,
            request(
                "POST",
                path,
                &[
                    ("Authorization", &ingest_auth),
                    ("Content-Encoding", "\u{1}gzip"),
                ],
                body.as_bytes(),
            ),
            Error(&[400]),
        );
        // Protobuf bytes declared as JSON, and XML: not JSON, 400.
        for (name, ct, payload) in [
            (
                "protobuf-as-json",
                json_ct,
                b"\x0a\x0b\x0a\x09\x12\x07\x0a\x05probe".as_slice(),
            ),
            ("xml", "text/xml", b"<logs><log>x</log></logs>".as_slice()),
            (
                "form",
                "application/x-www-form-urlencoded",
                b"log=x&level=info".as_slice(),
            ),
        ] {
            c.add(
                format!("ingest/{tag}/body-{name}"),
                Runtime,
                post(path, Some(&ingest_auth), ct, payload),
                Error(&[400]),
            );
        }
        // Methods and paths.
        for (name, method, target, status) in [
            ("get", "GET", path.to_string(), 405),
            ("put", "PUT", path.to_string(), 405),
            ("delete", "DELETE", path.to_string(), 405),
            ("lowercase-post", "post", path.to_string(), 405),
            ("trailing-slash", "POST", format!("{path}/"), 404),
            ("dotdot", "POST", format!("{path}/../{}", &path[1..]), 404),
            (
                "encoded-slash",
                "POST",
                format!("/{}", path[1..].replacen('/', "%2F", 1)),
                404,
            ),
            ("upper-case-path", "POST", path.to_ascii_uppercase(), 404),
        ] {
            c.add(
                format!("ingest/{tag}/route-{name}"),
                Runtime,
                request(
                    method,
                    &target,
                    &[("Authorization", &ingest_auth), ("Content-Type", json_ct)],
                    body.as_bytes(),
                ),
                Status(status),
            );
        }
        // Bodies over the limit, refused from the head.
        c.add(
            format!("ingest/{tag}/content-length-5mib"),
            Runtime,
            request(
                "POST",
                path,
                &[
                    ("Authorization", &ingest_auth),
                    ("Content-Length", "5242880"),
                ],
                b"",
            ),
            Error(&[413]),
        );
        // A `?runtimeId=` that cannot be a runtime id refuses the batch.
        c.add(
            format!("ingest/{tag}/runtimeId-param-129-bytes"),
            Runtime,
            post(
                &format!("{path}?runtimeId={}", "r".repeat(129)),
                Some(&ingest_auth),
                json_ct,
                body.as_bytes(),
            ),
            Error(&[400]),
        );
        // A known runtime outside the credential's scope: 403 for the batch.
        c.add(
            format!("ingest/{tag}/runtimeId-param-other-environment"),
            Runtime,
            post(
                &format!("{path}?runtimeId={}", bridge.runtime_id),
                Some(&format!("Bearer {}", cred.ingest_prod)),
                json_ct,
                body.as_bytes(),
            ),
            Error(&[403]),
        );
    }

    // Framing: the same hostile bodies as everywhere, on every endpoint.
    // The Fluent Bit framing takes any JSON value as a record (and rejects
    // what is not an object on its own); OTLP needs one object.
    for (tag, path, _) in ingest_endpoints() {
        let otlp = path.starts_with("/v1/");
        for (what, body) in hostile_bodies() {
            let expect = match what {
                "array" if otlp => Error(&[400]),
                "array" => Ingested {
                    records: 0,
                    accepted: Some(0),
                },
                "string" | "number" | "null" if otlp => Error(&[400]),
                "string" | "number" | "null" => Ingested {
                    records: 1,
                    accepted: Some(0),
                },
                _ => Error(&[400]),
            };
            c.add(
                format!("ingest/{tag}/body-{what}"),
                Runtime,
                post(path, Some(&ingest_auth), json_ct, &body),
                expect,
            );
        }
        for (what, body) in [
            ("truncated-array", b"[{\"log\": \"a\"}, {\"log\": ".to_vec()),
            ("unterminated-string", b"{\"log\": \"abc".to_vec()),
            ("only-brackets", b"]][[".to_vec()),
            (
                "nested-100",
                format!("[{}]", nested_objects(100)).into_bytes(),
            ),
            ("nested-200", nested_objects(200).into_bytes()),
            (
                "deep-array-in-record",
                format!("[{{\"log\": {}}}]", nested(100_000)).into_bytes(),
            ),
            (
                "utf16",
                "[{\"log\":\"x\"}]"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes)
                    .collect(),
            ),
            ("invalid-utf8-key", b"[{\"\xff\": 1}]".to_vec()),
            (
                "invalid-utf8-in-lines",
                b"{\"log\": \"\xc3\x28\"}\n{\"log\": \"\xed\xa0\x80\"}".to_vec(),
            ),
            ("lines-all-bad", b"{\nnope\n}\n".to_vec()),
            (
                "10001-records",
                format!("[{}]", vec!["{}"; 10_001].join(",")).into_bytes(),
            ),
            ("10001-lines", vec!["{}"; 10_001].join("\n").into_bytes()),
            ("10001-stream", vec!["{}"; 10_001].join("").into_bytes()),
            (
                "10001-nulls",
                format!("[{}]", vec!["null"; 10_001].join(",")).into_bytes(),
            ),
            ("10001-bad-lines", vec!["x"; 10_001].join("\n").into_bytes()),
        ] {
            let expect = match what {
                // Objects nested under the recursion limit are one record
                // each: a log with a JSON attribute, no request record.
                "nested-100" if !otlp => Ingested {
                    records: 1,
                    accepted: None,
                },
                "nested-100" => Error(&[400]),
                _ => Error(&[400]),
            };
            c.add(
                format!("ingest/{tag}/body-{what}"),
                Runtime,
                post(path, Some(&ingest_auth), json_ct, &body),
                expect,
            );
        }
    }
    // OTLP with more than 10,000 items in all, spread so no one list is long.
    let many_logs = json!({"resourceLogs": (0..11).map(|_| json!({"scopeLogs": [{"logRecords": vec![json!({}); 1000]}]})).collect::<Vec<_>>()});
    c.add(
        "ingest/v1-logs/11000-records-in-11-resources",
        Runtime,
        post(
            "/v1/logs",
            Some(&ingest_auth),
            json_ct,
            many_logs.to_string().as_bytes(),
        ),
        Error(&[400]),
    );
    let many_points = otlp_metrics(
        json!({"name": "m", "gauge": {"dataPoints": vec![json!({"asInt": 1}); 10_001]}}),
    );
    c.add(
        "ingest/v1-metrics/10001-points",
        Runtime,
        post(
            "/v1/metrics",
            Some(&ingest_auth),
            json_ct,
            many_points.to_string().as_bytes(),
        ),
        Error(&[400]),
    );

    // Accepted as data, bounded, or rejected one record at a time: 200
    // with the counts, and `telemetry.db` gains exactly what was accepted.
    type Lenient = (String, &'static str, Vec<u8>, Expect);
    let one = |tag: &str, path: &'static str, body: Value, accepted: Option<usize>| -> Lenient {
        (
            tag.to_string(),
            path,
            body.to_string().into_bytes(),
            Ingested {
                records: 1,
                accepted,
            },
        )
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let huge = "x".repeat(100_000);
    let mut lenient: Vec<Lenient> = Vec::new();
    // Every field of a log record with a value of every JSON type.
    for f in [
        "time",
        "date",
        "@timestamp",
        "timestamp",
        "message",
        "msg",
        "log",
        "level",
        "severity",
        "lvl",
        "module",
        "logger",
        "runtimeId",
    ] {
        for (t, v) in wrong_types("any") {
            let mut r = json!({"log": "typed"});
            r[f] = v;
            lenient.push(one(&format!("icp-logs/{f}-as-{t}"), "/icp/logs", r, None));
        }
        let mut r = json!({"log": "typed"});
        r[f] = Value::Null;
        lenient.push(one(&format!("icp-logs/{f}-as-null"), "/icp/logs", r, None));
    }
    for f in [
        "time",
        "service",
        "resource",
        "method",
        "statusCode",
        "responseTimeMs",
        "response_time_seconds",
        "runtimeId",
        "entrypoint.service.name",
        "http.status_code",
    ] {
        for (t, v) in wrong_types("any") {
            let mut r = json!({"service": "orders", "statusCode": 200, "responseTimeMs": 1.5});
            r[f] = v;
            lenient.push(one(
                &format!("icp-metrics/{f}-as-{t}"),
                "/icp/metrics",
                r,
                None,
            ));
        }
    }
    for f in [
        "timeUnixNano",
        "observedTimeUnixNano",
        "severityText",
        "severityNumber",
        "body",
        "attributes",
        "traceId",
        "spanId",
    ] {
        for (t, v) in wrong_types("any") {
            let mut r = json!({"body": {"stringValue": "typed"}});
            r[f] = v;
            lenient.push(one(
                &format!("v1-logs/{f}-as-{t}"),
                "/v1/logs",
                otlp_logs(r),
                None,
            ));
        }
    }
    for f in ["asDouble", "asInt", "timeUnixNano", "attributes"] {
        for (t, v) in wrong_types("any") {
            let mut p = json!({"asDouble": 1.0});
            p[f] = v;
            lenient.push(one(
                &format!("v1-metrics/gauge-{f}-as-{t}"),
                "/v1/metrics",
                otlp_metrics(json!({"name": "g", "gauge": {"dataPoints": [p]}})),
                None,
            ));
        }
    }
    for f in ["count", "sum", "explicitBounds", "bucketCounts"] {
        for (t, v) in wrong_types("any") {
            let mut p =
                json!({"count": 2, "sum": 3.0, "explicitBounds": [1.0], "bucketCounts": [1, 1]});
            p[f] = v;
            lenient.push(one(
                &format!("v1-metrics/histogram-{f}-as-{t}"),
                "/v1/metrics",
                otlp_metrics(json!({"name": "h", "histogram": {"dataPoints": [p]}})),
                None,
            ));
        }
    }
    // Times: absurd, negative, future, far future.
    let day = 86_400_000i64;
    for (name, v, accepted) in [
        ("zero", json!(0), Some(1)),
        ("negative", json!(-1), Some(1)),
        ("negative-huge", json!(-1e300), Some(1)),
        ("one-second-epoch", json!(1), Some(1)),
        ("year-9999", json!("9999-12-31T23:59:59Z"), Some(0)),
        ("year-0", json!("0000-01-01T00:00:00Z"), Some(1)),
        ("u64-max", json!(u64::MAX), Some(0)),
        ("i64-min", json!(i64::MIN), Some(1)),
        ("1e308", json!(1e308), Some(1)),
        ("future-2-days-ms", json!(now_ms + 2 * day), Some(0)),
        ("future-12-hours-ms", json!(now_ms + day / 2), Some(1)),
        ("nan-string", json!("NaN"), Some(1)),
        ("infinity-string", json!("Infinity"), Some(1)),
        ("minus-infinity-string", json!("-inf"), Some(1)),
        ("1e999-string", json!("1e999"), Some(1)),
        (
            "rfc3339-offset-overflow",
            json!("2026-11-22T12:00:00+99:99"),
            Some(1),
        ),
        ("rfc3339-month-13", json!("2026-13-01T00:00:00Z"), Some(1)),
        ("hex", json!("0x1F"), Some(1)),
        ("sql", json!("' OR 1=1--"), Some(1)),
    ] {
        lenient.push(one(
            &format!("icp-logs/time-{name}"),
            "/icp/logs",
            json!({"time": v, "log": "t"}),
            accepted,
        ));
        lenient.push(one(
            &format!("icp-metrics/time-{name}"),
            "/icp/metrics",
            json!({"time": v, "service": "s", "statusCode": 200, "responseTimeMs": 1}),
            accepted,
        ));
    }
    for (name, v, accepted) in [
        ("zero", json!("0"), Some(1)),
        ("negative", json!("-1"), Some(1)),
        ("u64-max", json!(u64::MAX.to_string()), Some(0)),
        ("beyond-u64", json!("99999999999999999999999"), Some(1)),
        (
            "future-2-days",
            json!(((now_ms + 2 * day) as u128 * 1_000_000).to_string()),
            Some(0),
        ),
        ("float", json!(1.5e18), Some(1)),
        ("nan-string", json!("NaN"), Some(1)),
        ("infinity-string", json!("inf"), Some(1)),
    ] {
        lenient.push(one(
            &format!("v1-logs/time-{name}"),
            "/v1/logs",
            otlp_logs(json!({"timeUnixNano": v, "body": {"stringValue": "t"}})),
            accepted,
        ));
        lenient.push(one(
            &format!("v1-metrics/time-{name}"),
            "/v1/metrics",
            otlp_metrics(
                json!({"name": "t", "gauge": {"dataPoints": [{"timeUnixNano": v, "asInt": 1}]}}),
            ),
            accepted,
        ));
    }
    // Numbers and levels nobody should send.
    for (name, r, accepted) in [
        (
            "status-99",
            json!({"service": "s", "statusCode": 99, "responseTimeMs": 1}),
            Some(0),
        ),
        (
            "status-600",
            json!({"service": "s", "statusCode": 600, "responseTimeMs": 1}),
            Some(0),
        ),
        (
            "status-float",
            json!({"service": "s", "statusCode": 200.5, "responseTimeMs": 1}),
            Some(0),
        ),
        (
            "status-nan-string",
            json!({"service": "s", "statusCode": "NaN", "responseTimeMs": 1}),
            Some(0),
        ),
        (
            "status-huge",
            json!({"service": "s", "statusCode": u64::MAX, "responseTimeMs": 1}),
            Some(0),
        ),
        (
            "duration-negative",
            json!({"service": "s", "statusCode": 200, "responseTimeMs": -1}),
            Some(0),
        ),
        (
            "duration-nan-string",
            json!({"service": "s", "statusCode": 200, "responseTimeMs": "NaN"}),
            Some(0),
        ),
        (
            "duration-inf-string",
            json!({"service": "s", "statusCode": 200, "responseTimeMs": "inf"}),
            Some(0),
        ),
        (
            "duration-1e308",
            json!({"service": "s", "statusCode": 200, "responseTimeMs": 1e308}),
            Some(1),
        ),
        (
            "seconds-1e308",
            json!({"service": "s", "statusCode": 200, "response_time_seconds": "1e308"}),
            Some(0),
        ),
        (
            "service-blank",
            json!({"service": "   ", "statusCode": 200, "responseTimeMs": 1}),
            Some(0),
        ),
        (
            "service-huge",
            json!({"service": huge, "statusCode": 200, "responseTimeMs": 1}),
            Some(1),
        ),
    ] {
        lenient.push(one(
            &format!("icp-metrics/{name}"),
            "/icp/metrics",
            r,
            accepted,
        ));
    }
    for (name, level) in [
        ("level-1e308", json!(1e308)),
        ("level-negative", json!(-1e308)),
        ("level-unknown", json!("LOUD")),
        ("level-nul", json!("\u{0}")),
        ("level-huge", json!(huge)),
    ] {
        lenient.push(one(
            &format!("icp-logs/{name}"),
            "/icp/logs",
            json!({"log": "l", "level": level}),
            Some(1),
        ));
    }
    for (name, n) in [
        ("severity-0", json!(0)),
        ("severity-25", json!(25)),
        ("severity-negative", json!(-5)),
        ("severity-huge", json!(1e300)),
        ("severity-nan-string", json!("NaN")),
    ] {
        lenient.push(one(
            &format!("v1-logs/{name}"),
            "/v1/logs",
            otlp_logs(json!({"severityNumber": n, "body": {"stringValue": "s"}})),
            Some(1),
        ));
    }
    for (name, p, accepted) in [
        ("value-huge-string", json!({"asDouble": "1e999"}), Some(0)),
        ("value-nan-string", json!({"asDouble": "NaN"}), Some(0)),
        (
            "int-beyond-i64",
            json!({"asInt": "99999999999999999999999"}),
            Some(1),
        ),
        ("no-value", json!({}), Some(0)),
    ] {
        lenient.push(one(
            &format!("v1-metrics/{name}"),
            "/v1/metrics",
            otlp_metrics(json!({"name": "g", "sum": {"dataPoints": [p]}})),
            accepted,
        ));
    }
    for (name, p, accepted) in [
        (
            "buckets-one-short",
            json!({"count": 1, "explicitBounds": [1, 2], "bucketCounts": [1, 0]}),
            Some(0),
        ),
        (
            "bounds-decreasing",
            json!({"count": 1, "explicitBounds": [2, 1], "bucketCounts": [1, 0, 0]}),
            Some(0),
        ),
        (
            "bounds-nan",
            json!({"count": 1, "explicitBounds": ["NaN"], "bucketCounts": [1, 0]}),
            Some(0),
        ),
        (
            "count-u64-max",
            json!({"count": u64::MAX, "explicitBounds": [], "bucketCounts": [u64::MAX]}),
            Some(1),
        ),
        (
            "count-beyond-u64",
            json!({"count": "99999999999999999999999"}),
            Some(0),
        ),
        ("count-negative", json!({"count": -1}), Some(0)),
        (
            "10000-bounds",
            json!({"count": 0, "explicitBounds": (0..10_000).collect::<Vec<_>>(), "bucketCounts": vec![0; 10_001]}),
            Some(1),
        ),
    ] {
        lenient.push(one(
            &format!("v1-metrics/histogram-{name}"),
            "/v1/metrics",
            otlp_metrics(json!({"name": "h", "histogram": {"dataPoints": [p]}})),
            accepted,
        ));
    }
    for (name, kind) in [
        ("exponential-histogram", "exponentialHistogram"),
        ("summary", "summary"),
    ] {
        lenient.push(one(
            &format!("v1-metrics/{name}"),
            "/v1/metrics",
            otlp_metrics(json!({"name": "x", kind: {"dataPoints": [{"count": 1}]}})),
            Some(0),
        ));
    }
    // Over-long and odd text: cut and marked, stored as data.
    let many_attrs: serde_json::Map<String, Value> =
        (0..1000).map(|i| (format!("k{i}"), json!(i))).collect();
    let mut wide = Value::Object(many_attrs.clone());
    wide["log"] = json!("wide");
    for (name, r) in [
        ("message-100k", json!({"log": huge})),
        ("message-multibyte-40k", json!({"log": "é".repeat(20_000)})),
        (
            "message-object",
            json!({"log": {"nested": [1, 2, {"a": huge}]}}),
        ),
        ("attribute-100k", json!({"log": "a", "big": huge})),
        ("attribute-key-100k", json!({"log": "a", huge.clone(): 1})),
        ("attributes-1000", wide),
        ("module-100k", json!({"log": "m", "module": huge})),
        (
            "message-nul-and-controls",
            json!({"log": "a\u{0}b\u{1b}[31mred\r\nforged line"}),
        ),
        (
            "message-bearer-token",
            json!({"log": "Authorization: Bearer icpi_00000000_notarealtoken"}),
        ),
        (
            "message-fts-syntax",
            json!({"log": "\"payment\" AND NEAR(order failed, 2) OR message:x* -y ^z"}),
        ),
        ("message-sql", json!({"log": "'); DROP TABLE logs;--"})),
        (
            "runtimeId-sql",
            json!({"log": "r", "runtimeId": "' OR '1'='1"}),
        ),
        (
            "runtimeId-traversal",
            json!({"log": "r", "runtimeId": "../../icp.db"}),
        ),
        (
            "runtimeId-newline",
            json!({"log": "r", "runtimeId": "a\nb"}),
        ),
        (
            "runtimeId-object",
            json!({"log": "r", "runtimeId": {"$ne": null}}),
        ),
    ] {
        lenient.push(one(&format!("icp-logs/{name}"), "/icp/logs", r, Some(1)));
    }
    for (name, r, accepted) in [
        (
            "runtimeId-129-bytes",
            json!({"log": "r", "runtimeId": "r".repeat(129)}),
            Some(0),
        ),
        (
            "runtimeId-known-runtime",
            json!({"log": "r", "runtimeId": bridge.runtime_id}),
            Some(1),
        ),
    ] {
        lenient.push(one(&format!("icp-logs/{name}"), "/icp/logs", r, accepted));
    }
    lenient.push(one("v1-logs/service-instance-id-129-bytes", "/v1/logs", json!({"resourceLogs": [{"resource": {"attributes": [{"key": "service.instance.id", "value": {"stringValue": "r".repeat(129)}}]}, "scopeLogs": [{"logRecords": [{}]}]}]}), Some(0)));
    lenient.push(one("v1-logs/body-kvlist-deep", "/v1/logs", otlp_logs(json!({"body": {"kvlistValue": {"values": [{"key": "a", "value": {"arrayValue": {"values": [{"stringValue": huge}]}}}]}}})), Some(1)));
    lenient.push(one("v1-logs/attributes-1000", "/v1/logs", otlp_logs(json!({"body": {"stringValue": "w"}, "attributes": (0..1000).map(|i| json!({"key": format!("k{i}"), "value": {"intValue": i.to_string()}})).collect::<Vec<_>>()})), Some(1)));
    lenient.push(one(
        "v1-metrics/name-100k",
        "/v1/metrics",
        otlp_metrics(json!({"name": huge, "unit": huge, "gauge": {"dataPoints": [{"asInt": 1}]}})),
        Some(1),
    ));
    for (name, path, body, expect) in lenient {
        c.add(
            format!("ingest/{name}"),
            Runtime,
            post(path, Some(&ingest_auth), json_ct, &body),
            expect,
        );
    }
    // The runtime token on the same endpoints: a record naming its own
    // runtime is attributed, one naming nonsense keeps it as a label.
    for (name, path, body) in [
        (
            "runtime-token/icp-logs",
            "/icp/logs",
            json!([{"log": "mine", "runtimeId": bridge.runtime_id}, {"log": "other", "runtimeId": "'; DROP TABLE runtimes;--"}]),
        ),
        (
            "runtime-token/icp-metrics",
            "/icp/metrics",
            json!([{"service": "s", "statusCode": 500, "responseTimeMs": 3, "runtimeId": bridge.runtime_id}, {"service": "s", "statusCode": 200, "responseTimeMs": 1e-300}]),
        ),
    ] {
        c.add(
            format!("ingest/{name}"),
            Runtime,
            post(path, Some(&rt_auth), json_ct, body.to_string().as_bytes()),
            Ingested {
                records: 2,
                accepted: Some(2),
            },
        );
    }
    // A record naming a known runtime outside the token's scope (a prod
    // token, a dev runtime) is rejected on its own; the rest is kept.
    c.add(
        "ingest/icp-logs/record-runtimeId-other-environment",
        Runtime,
        post(
            "/icp/logs",
            Some(&format!("Bearer {}", cred.ingest_prod)),
            json_ct,
            json!([{"log": "theirs", "runtimeId": bridge.runtime_id}, {"log": "mine"}])
                .to_string()
                .as_bytes(),
        ),
        Ingested {
            records: 2,
            accepted: Some(1),
        },
    );
    // `?runtimeId=` injection: unknown, so a label within the scope.
    for (name, id) in [
        ("sql", "%27%20OR%201%3D1--"),
        ("nul", "a%00b"),
        ("crlf", "a%0D%0AX-Injected:%201"),
        ("bad-percent", "%zz"),
        ("invalid-utf8", "%ff%fe"),
        ("plus", "a+b"),
    ] {
        c.add(
            format!("ingest/icp-logs/runtimeId-param-{name}"),
            Runtime,
            post(
                &format!("/icp/logs?runtimeId={id}&timeKey=%ff"),
                Some(&ingest_auth),
                json_ct,
                br#"{"log": "p"}"#,
            ),
            Ingested {
                records: 1,
                accepted: Some(1),
            },
        );
    }

    // ---- Management: observability queries ------------------------------
    let admin_auth = format!("Bearer {}", cred.admin);
    let get = |target: &str| request("GET", target, &[("Authorization", &admin_auth)], b"");
    const OBS: &str = "/api/v1/observability";
    let huge_q = "q".repeat(12_000);
    let huge_cursor = format!("cursor={}", "A".repeat(10_000));
    let huge_runtime = format!("runtime={}", "r".repeat(10_000));
    // FTS5 syntax in q is a phrase, never a query: 200 on the log query and
    // the download, an open stream on the tail.
    let phrases = [
        ("quote", "%22"),
        ("quotes", "%22%22%22"),
        ("unbalanced-quote", "%22payment"),
        ("star", "*"),
        ("prefix-star", "pay*"),
        ("near", "NEAR(a%20b,%202)"),
        ("near-open", "NEAR("),
        ("and", "AND"),
        ("or-not", "a%20OR%20b%20NOT%20c"),
        ("minus", "-"),
        ("minus-word", "-payment"),
        ("caret", "%5E"),
        ("caret-word", "%5Epayment"),
        ("column-filter", "message:x"),
        ("column-filter-unknown", "nope:x"),
        ("column-set", "%7Bmessage%7D:%20x"),
        ("parens", "((("),
        ("plus-join", "a%20+%20b"),
        ("colon", ":"),
        ("sql", "%27%20OR%201%3D1--"),
        ("like-wildcards", "%25_%25"),
        ("nul", "%00"),
        ("newline", "a%0Ab"),
        ("emoji", "%F0%9F%92%A5"),
        ("huge", huge_q.as_str()),
        ("bad-percent", "%zz"),
        ("invalid-utf8", "%ff%fe"),
        ("truncated-percent", "%2"),
    ];
    for (name, q) in phrases {
        c.add(
            format!("observability/logs/q-{name}"),
            Management,
            get(&format!("{OBS}/logs?q={q}")),
            JsonOk,
        );
        c.add(
            format!("observability/download/q-{name}"),
            Management,
            get(&format!("{OBS}/logs/download?q={q}&limit=10")),
            Download,
        );
        c.add(
            format!("observability/tail/q-{name}"),
            Management,
            get(&format!("{OBS}/logs/tail?q={q}")),
            Stream,
        );
    }
    // Parameters that are refused: 400 on every log route that takes them.
    let bad_log_params: Vec<(&str, String)> = vec![
        ("level-unknown", "level=LOUD".into()),
        ("level-sql", "level=%27%20OR%201%3D1".into()),
        ("level-list-bad", "level=ERROR,,NOPE".into()),
        ("from-garbage", "from=yesterday".into()),
        ("from-float", "from=1.5".into()),
        ("from-beyond-i64", "from=99999999999999999999999".into()),
        ("from-rfc-nonsense", "from=2026-13-45T99:99:99Z".into()),
        ("to-garbage", "to=%27%20OR%201%3D1".into()),
        ("to-nan", "to=NaN".into()),
        (
            "integration-without-project",
            "integration=order-create".into(),
        ),
    ];
    for (name, query) in &bad_log_params {
        c.add(
            format!("observability/logs/{name}"),
            Management,
            get(&format!("{OBS}/logs?{query}")),
            Status(400),
        );
        c.add(
            format!("observability/download/{name}"),
            Management,
            get(&format!("{OBS}/logs/download?{query}")),
            Status(400),
        );
        c.add(
            format!("observability/tail/{name}"),
            Management,
            get(&format!("{OBS}/logs/tail?{query}")),
            Status(400),
        );
    }
    for (name, query) in [
        ("limit-0", "limit=0"),
        ("limit-negative", "limit=-1"),
        ("limit-501", "limit=501"),
        ("limit-huge", "limit=99999999999999999999"),
        ("limit-float", "limit=1e3"),
        ("limit-sql", "limit=1%20OR%201=1"),
        ("order-sideways", "order=sideways"),
        ("order-sql", "order=id;DROP%20TABLE%20logs"),
        ("cursor-garbage", "cursor=%27%20OR%201=1--"),
        ("cursor-not-base64", "cursor=!!!"),
        ("cursor-zero", "cursor=MA"),
        ("cursor-negative", "cursor=LTE"),
        ("cursor-beyond-i64", "cursor=OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ"),
        ("cursor-huge", huge_cursor.as_str()),
        ("cursor-padding", "cursor=MQ%3D%3D"),
    ] {
        c.add(
            format!("observability/logs/{name}"),
            Management,
            get(&format!("{OBS}/logs?{query}")),
            Status(400),
        );
    }
    for (name, query) in [
        ("limit-100001", "limit=100001"),
        ("limit-0", "limit=0"),
        ("format-xml", "format=xml"),
        ("format-sql", "format=%27--"),
    ] {
        c.add(
            format!("observability/download/{name}"),
            Management,
            get(&format!("{OBS}/logs/download?{query}")),
            Status(400),
        );
    }
    // Odd but valid: 200 with what matches (often nothing).
    for (name, query) in [
        ("unknown-environment", "environment=nowhere"),
        ("environment-sql", "environment=%27%20OR%201%3D1--"),
        ("unknown-project", "project=nope&integration=nope"),
        ("runtime-sql", "runtime=%27%20OR%201%3D1--"),
        ("runtime-huge", huge_runtime.as_str()),
        (
            "from-after-to",
            "from=2026-11-23T00:00:00Z&to=2026-11-22T00:00:00Z",
        ),
        ("from-i64-min", "from=-9223372036854775808"),
        ("to-i64-max", "to=9223372036854775807"),
        (
            "both-extremes",
            "from=-9223372036854775808&to=9223372036854775807",
        ),
        ("year-9999", "from=9999-12-31T23:59:59Z"),
        ("unknown-parameter", "drop=table"),
        ("repeated-parameters", "level=ERROR&level=LOUD&q=a&q=b"),
        ("empty-values", "level=&q=&from=&to=&cursor=&limit="),
        ("bad-percent-key", "%zz=1&q%=x"),
        ("only-ampersands", "&&&&"),
        ("order-asc", "order=ASC&limit=500"),
    ] {
        c.add(
            format!("observability/logs/{name}"),
            Management,
            get(&format!("{OBS}/logs?{query}")),
            JsonOk,
        );
    }
    // Metrics windows: too many buckets, empty or reversed ranges, absurd
    // steps; refused with 400, never computed.
    let year = 365 * day;
    let metrics_bad: Vec<(&str, String)> = vec![
        ("step-0", "step=0".into()),
        ("step-0s", "step=0s".into()),
        ("step-negative", "step=-1".into()),
        ("step-1ms-unit", "step=1ms".into()),
        ("step-float", "step=0.001".into()),
        (
            "step-1s-over-a-year",
            format!("step=1s&from={}&to={now_ms}", now_ms - year),
        ),
        ("step-1s-default-hour", "step=1s".into()),
        ("step-overflow", "step=9223372036854775807d".into()),
        ("step-100001d", "step=100001d".into()),
        ("step-max-days", "step=106751991167d".into()),
        ("step-max-seconds", "step=9223372036854775".into()),
        ("step-beyond-i64", "step=99999999999999999999".into()),
        ("step-unit-only", "step=h".into()),
        ("step-sql", "step=1%20OR%201=1".into()),
        ("group-by-unknown", "groupBy=everything".into()),
        (
            "from-after-to",
            "from=2026-11-23T00:00:00Z&to=2026-11-22T00:00:00Z".into(),
        ),
        ("from-equals-to", "from=1000&to=1000".into()),
        ("from-garbage", "from=tomorrow".into()),
        ("integration-without-project", "integration=x".into()),
        (
            "both-clamped-to-the-same-time",
            "from=-9223372036854775808&to=-9223372036854775807".into(),
        ),
        (
            "both-extremes-step-1s",
            "from=-9223372036854775808&to=9223372036854775807&step=1s".into(),
        ),
    ];
    for (name, query) in &metrics_bad {
        c.add(
            format!("observability/metrics/{name}"),
            Management,
            get(&format!("{OBS}/metrics?{query}")),
            Status(400),
        );
    }
    for (name, query) in [
        (
            "step-1d-over-a-year",
            format!("step=1d&from={}&to={now_ms}", now_ms - year),
        ),
        (
            "both-extremes",
            "from=-9223372036854775808&to=9223372036854775807".to_string(),
        ),
        ("from-i64-min", "from=-9223372036854775808".to_string()),
        ("to-i64-max", "to=9223372036854775807".to_string()),
        ("step-100000d", "step=100000d".to_string()),
        (
            "unknown-service",
            "service=%27%20OR%201%3D1--&resource=%00".to_string(),
        ),
        ("group-by-resource", "groupBy=resource".to_string()),
        (
            "unknown-environment",
            "environment=nowhere&project=nope".to_string(),
        ),
    ] {
        c.add(
            format!("observability/metrics/{name}"),
            Management,
            get(&format!("{OBS}/metrics?{query}")),
            JsonOk,
        );
    }
    for (name, query, expect) in [
        ("name-missing", "", Status(400)),
        ("name-blank", "name=%20%20", Status(400)),
        ("name-sql", "name=%27%20OR%201%3D1--", JsonOk),
        ("name-like", "name=%25", JsonOk),
        ("from-garbage", "name=probe&from=x", Status(400)),
        ("to-i64-min", "name=probe&to=-9223372036854775808", JsonOk),
        (
            "both-extremes",
            "name=probe&from=-9223372036854775808&to=9223372036854775807",
            JsonOk,
        ),
        (
            "integration-without-project",
            "name=probe&integration=x",
            Status(400),
        ),
    ] {
        c.add(
            format!("observability/metric-points/{name}"),
            Management,
            get(&format!("{OBS}/metric-points?{query}")),
            expect,
        );
    }
    for (name, query, expect) in [
        ("from-garbage", "from=x", Status(400)),
        ("unknown-runtime", "runtime=%27--", JsonOk),
        (
            "both-extremes",
            "from=-9223372036854775808&to=9223372036854775807",
            JsonOk,
        ),
        ("integration-without-project", "integration=x", Status(400)),
    ] {
        c.add(
            format!("observability/metric-names/{name}"),
            Management,
            get(&format!("{OBS}/metric-names?{query}")),
            expect,
        );
    }
    // Ingest tokens: unknown ids, odd paths and methods.
    for (name, method, target, status) in [
        (
            "revoke-unknown",
            "DELETE",
            format!("{OBS}/ingest-tokens/ffffffff"),
            404,
        ),
        (
            "revoke-sql",
            "DELETE",
            format!("{OBS}/ingest-tokens/%27%20OR%201=1--"),
            404,
        ),
        (
            "revoke-bad-percent",
            "DELETE",
            format!("{OBS}/ingest-tokens/%zz"),
            404,
        ),
        (
            "revoke-empty",
            "DELETE",
            format!("{OBS}/ingest-tokens/"),
            404,
        ),
        ("put-collection", "PUT", format!("{OBS}/ingest-tokens"), 405),
        (
            "delete-collection",
            "DELETE",
            format!("{OBS}/ingest-tokens"),
            405,
        ),
        ("get-one", "GET", format!("{OBS}/ingest-tokens/{id}"), 405),
        (
            "unknown-observability-route",
            "GET",
            format!("{OBS}/everything"),
            404,
        ),
        ("post-logs", "POST", format!("{OBS}/logs"), 405),
        ("delete-logs", "DELETE", format!("{OBS}/logs"), 405),
    ] {
        c.add(
            format!("observability/route/{name}"),
            Management,
            request(method, &target, &[("Authorization", &admin_auth)], b""),
            Status(status),
        );
    }
    c.add(
        "observability/ingest-tokens/list-with-query",
        Management,
        get(&format!("{OBS}/ingest-tokens?limit=-1&cursor=%27")),
        JsonOk,
    );
    // The ingest API does not take ingest tokens, nor runtime tokens.
    for (name, auth) in [("ingest-token", &ingest_auth), ("runtime-token", &rt_auth)] {
        for route in [
            "logs",
            "logs/tail",
            "logs/download",
            "metrics",
            "metric-points?name=x",
            "metric-names",
            "ingest-tokens",
        ] {
            c.add(
                format!("observability/auth/{name}/{route}"),
                Management,
                request(
                    "GET",
                    &format!("{OBS}/{route}"),
                    &[("Authorization", auth)],
                    b"",
                ),
                Status(401),
            );
        }
        c.add(
            format!("observability/auth/{name}/create-ingest-token"),
            Management,
            request(
                "POST",
                &format!("{OBS}/ingest-tokens"),
                &[("Authorization", auth), ("Content-Type", json_ct)],
                br#"{"environment":"dev"}"#,
            ),
            Status(401),
        );
    }
    // Refused creations.
    for (name, body, status) in [
        (
            "unknown-environment",
            json!({"environment": "nowhere"}),
            404,
        ),
        (
            "environment-sql",
            json!({"environment": "dev'; DROP TABLE ingest_tokens;--"}),
            404,
        ),
        (
            "integration-without-project",
            json!({"environment": "dev", "integration": "order-create"}),
            400,
        ),
        (
            "unknown-project",
            json!({"environment": "dev", "project": "nope"}),
            404,
        ),
        (
            "unknown-integration",
            json!({"environment": "dev", "project": "order-service", "integration": "nope"}),
            404,
        ),
        (
            "name-blank",
            json!({"environment": "dev", "name": "   "}),
            400,
        ),
        (
            "name-101",
            json!({"environment": "dev", "name": "n".repeat(101)}),
            400,
        ),
        (
            "name-huge",
            json!({"environment": "dev", "name": huge}),
            400,
        ),
    ] {
        c.add(
            format!("observability/ingest-tokens/create-{name}"),
            Management,
            request(
                "POST",
                &format!("{OBS}/ingest-tokens"),
                &[("Authorization", &admin_auth), ("Content-Type", json_ct)],
                body.to_string().as_bytes(),
            ),
            Status(status),
        );
    }
}

// ---- Environments pipeline (issue 8): /icp/config, data planes, ------------
// ---- deployment records, configuration, promotions -------------------------

/// What the pipeline cases need, all made before the first dump.
struct Pipeline {
    /// A runtime token of a secret never bound to an integration.
    unbound: String,
    /// A runtime token of a bound secret revoked with the CLI.
    revoked: String,
    /// A registered runtime of the same integration in prod.
    other_environment_runtime: String,
    /// A registered runtime of another integration in dev.
    other_integration_runtime: String,
    /// Promotions by the Super Admin: dev → staging (applied), staging →
    /// prod rejected by bob, cancelled, and one pending.
    applied: String,
    rejected: String,
    cancelled: String,
    pending: String,
    /// An API token of bob, an Admin who may approve into prod.
    bob: String,
}

const DEV: &str = "/api/v1/projects/order-service/integrations/order-create/environments/dev";
const PROMOTIONS: &str = "/api/v1/projects/order-service/integrations/order-create/promotions";

/// Adds `hostile_bodies`, an empty body, an unknown field and every field
/// with a value of the wrong type, on one route that takes a JSON body.
#[allow(clippy::too_many_arguments)]
fn body_cases(
    c: &mut Corpus,
    tag: &str,
    method: &str,
    path: &str,
    auth: &str,
    valid: &Value,
    fields: Fields,
    empty: Expect,
) {
    let send = |body: &[u8]| {
        request(
            method,
            path,
            &[
                ("Authorization", auth),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    };
    for (what, body) in hostile_bodies() {
        c.add(
            format!("pipeline/{tag}/body-{what}"),
            Listener::Management,
            send(&body),
            Expect::Error(&[400]),
        );
    }
    c.add(
        format!("pipeline/{tag}/empty-body"),
        Listener::Management,
        send(b""),
        empty,
    );
    let mut unknown = valid.clone();
    unknown["unexpectedField"] = json!(1);
    c.add(
        format!("pipeline/{tag}/unknown-field"),
        Listener::Management,
        send(unknown.to_string().as_bytes()),
        Expect::Error(&[400]),
    );
    for (f, kind) in fields.iter() {
        for (t, v) in wrong_types(kind) {
            let mut b = valid.clone();
            b[*f] = v;
            c.add(
                format!("pipeline/{tag}/{f}-as-{t}"),
                Listener::Management,
                send(b.to_string().as_bytes()),
                Expect::Error(&[400]),
            );
        }
    }
}

/// Adds the issue 8 cases. Only the `GET /icp/config` fetches answered 200
/// may write (`Expect::Config`: one fetch record each, in
/// `config_fetches`); everything else must be refused and write nothing.
fn pipeline_corpus(
    c: &mut Corpus,
    bridge: &Bridge,
    cred: &Credentials,
    p: &Pipeline,
    tokens: &[(&str, Option<String>)],
) {
    use Expect::*;
    use Listener::*;
    let rt_auth = format!("Bearer {}", cred.runtime);
    let admin_auth = format!("Bearer {}", cred.admin);
    let bob_auth = format!("Bearer {}", p.bob);
    let fetch = |target: &str, auth: Option<&str>| {
        let mut headers = Vec::new();
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        request("GET", target, &headers, b"")
    };
    let api = |auth: &str, method: &str, path: &str, body: &Value| {
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        request(
            method,
            path,
            &[
                ("Authorization", auth),
                ("Content-Type", "application/json"),
            ],
            &body,
        )
    };

    // ---- GET /icp/config: credentials ----------------------------------
    for (name, auth) in tokens {
        c.add(
            format!("pipeline/icp-config/token-{name}"),
            Runtime,
            fetch("/icp/config", auth.as_deref()),
            Error(&[401]),
        );
    }
    for (name, token) in [
        ("revoked-secret", &p.revoked),
        ("ingest-token", &cred.ingest),
        ("revoked-ingest-token", &cred.revoked),
    ] {
        c.add(
            format!("pipeline/icp-config/{name}"),
            Runtime,
            fetch("/icp/config", Some(&format!("Bearer {token}"))),
            Error(&[401]),
        );
    }
    c.add(
        "pipeline/icp-config/unbound-secret",
        Runtime,
        fetch("/icp/config", Some(&format!("Bearer {}", p.unbound))),
        Status(403),
    );
    c.add(
        "pipeline/icp-config/unbound-secret-with-runtime-id",
        Runtime,
        fetch(
            &format!("/icp/config?runtimeId={}", bridge.runtime_id),
            Some(&format!("Bearer {}", p.unbound)),
        ),
        Status(403),
    );
    // ---- GET /icp/config: who is asking ---------------------------------
    for (name, query, status) in [
        (
            "runtime-id-of-another-environment",
            format!("runtimeId={}", p.other_environment_runtime),
            403,
        ),
        (
            "runtime-id-of-another-integration",
            format!("runtimeId={}", p.other_integration_runtime),
            403,
        ),
        (
            "runtime-id-other-first-of-two",
            format!(
                "runtimeId={}&runtimeId={}",
                p.other_environment_runtime, bridge.runtime_id
            ),
            403,
        ),
        ("runtime-id-sql", "runtimeId=x'%20OR%20'1'%3D'1".into(), 400),
        (
            "runtime-id-sql-comment",
            "runtimeId=1;DROP%20TABLE%20runtimes--".into(),
            400,
        ),
        (
            "runtime-id-traversal",
            "runtimeId=..%2F..%2Fetc%2Fpasswd".into(),
            400,
        ),
        ("runtime-id-nul", "runtimeId=a%00b".into(), 400),
        (
            "runtime-id-crlf",
            "runtimeId=a%0d%0aX-Injected:%201".into(),
            400,
        ),
        (
            "runtime-id-65-chars",
            format!("runtimeId={}", "a".repeat(65)),
            400,
        ),
        (
            "runtime-id-4k",
            format!("runtimeId={}", "a".repeat(4096)),
            400,
        ),
        ("runtime-id-unicode", "runtimeId=%C3%BCn%C3%AF".into(), 400),
        ("runtime-id-space", "runtimeId=+".into(), 400),
        ("runtime-id-json", "runtimeId=%7B%22a%22%3A1%7D".into(), 400),
        (
            "runtime-name-101-chars",
            format!("runtime={}", "n".repeat(101)),
            400,
        ),
        ("runtime-name-blank", "runtime=%20%20%09".into(), 400),
        ("runtime-name-crlf-only", "runtime=%0d%0a".into(), 400),
        (
            "runtime-name-ok-id-bad",
            "runtime=node-1&runtimeId=%27".into(),
            400,
        ),
    ] {
        c.add(
            format!("pipeline/icp-config/{name}"),
            Runtime,
            fetch(&format!("/icp/config?{query}"), Some(&rt_auth)),
            Status(status),
        );
    }
    // Answered: values that are only data, recorded as the fetcher's name.
    for (name, query) in [
        ("plain", String::new()),
        (
            "own-runtime-id",
            format!("?runtimeId={}", bridge.runtime_id),
        ),
        (
            "unregistered-runtime-id",
            "?runtimeId=00000000-0000-4000-8000-000000000000".into(),
        ),
        ("runtime-name-sql", "?runtime=node'%20OR%20'1'%3D'1".into()),
        (
            "runtime-name-html",
            "?runtime=%3Cscript%3Ealert(1)%3C%2Fscript%3E".into(),
        ),
        (
            "runtime-name-unicode",
            "?runtime=n%C3%B6de-%F0%9F%98%80".into(),
        ),
        (
            "runtime-name-100-chars",
            format!("?runtime={}", "n".repeat(100)),
        ),
        (
            "bad-percent-encoding-ignored",
            "?runtimeId=%zz&runtime=%ff".into(),
        ),
        (
            "unknown-parameters",
            "?revision=1&environment=prod&project=x".into(),
        ),
        ("empty-values", "?runtimeId=&runtime=".into()),
        ("fragment-like", "?runtime=node-2%23frag".into()),
    ] {
        c.add(
            format!("pipeline/icp-config/ok-{name}"),
            Runtime,
            fetch(&format!("/icp/config{query}"), Some(&rt_auth)),
            Config,
        );
    }
    // ---- GET /icp/config: methods and paths ------------------------------
    for (name, method, target, status) in [
        ("post", "POST", "/icp/config", 405),
        ("put", "PUT", "/icp/config", 405),
        ("delete", "DELETE", "/icp/config", 405),
        ("patch", "PATCH", "/icp/config", 405),
        ("lowercase-get", "get", "/icp/config", 405),
        ("trailing-slash", "GET", "/icp/config/", 404),
        ("sub-path", "GET", "/icp/config/prod", 404),
        ("encoded-slash", "GET", "/icp%2Fconfig", 404),
        ("dotdot", "GET", "/icp/../icp/config", 404),
        ("upper-case", "GET", "/ICP/CONFIG", 404),
    ] {
        c.add(
            format!("pipeline/icp-config/route-{name}"),
            Runtime,
            request(method, target, &[("Authorization", &rt_auth)], b"{}"),
            Status(status),
        );
    }
    c.add(
        "pipeline/icp-config/on-management-listener",
        Management,
        request("GET", "/icp/config", &[("Authorization", &rt_auth)], b""),
        Console,
    );

    // ---- Data planes -----------------------------------------------------
    body_cases(
        c,
        "data-planes-create",
        "POST",
        "/api/v1/data-planes",
        &admin_auth,
        &json!({"name": "dp1", "kind": "cloud"}),
        &[
            ("name", "string"),
            ("handle", "string"),
            ("kind", "string"),
            ("region", "string"),
            ("description", "string"),
        ],
        Error(&[400]),
    );
    body_cases(
        c,
        "data-planes-patch",
        "PATCH",
        "/api/v1/data-planes/default",
        &admin_auth,
        &json!({"region": "r"}),
        &[
            ("name", "string"),
            ("kind", "string"),
            ("region", "string"),
            ("description", "string"),
        ],
        Error(&[400]),
    );
    let long = "x".repeat(10_000);
    for (name, method, path, body, status) in [
        (
            "kind-hybrid",
            "POST",
            "/api/v1/data-planes",
            json!({"name": "dp", "kind": "hybrid"}),
            400,
        ),
        (
            "kind-upper",
            "POST",
            "/api/v1/data-planes",
            json!({"name": "dp", "kind": "CLOUD"}),
            400,
        ),
        (
            "kind-empty",
            "POST",
            "/api/v1/data-planes",
            json!({"name": "dp", "kind": ""}),
            400,
        ),
        (
            "name-empty",
            "POST",
            "/api/v1/data-planes",
            json!({"name": "", "kind": "cloud"}),
            400,
        ),
        (
            "name-blank",
            "POST",
            "/api/v1/data-planes",
            json!({"name": " \t ", "kind": "cloud"}),
            400,
        ),
        (
            "name-10k",
            "POST",
            "/api/v1/data-planes",
            json!({"name": long, "kind": "cloud"}),
            400,
        ),
        (
            "name-control",
            "POST",
            "/api/v1/data-planes",
            json!({"name": "a\u{0}b", "kind": "cloud"}),
            400,
        ),
        (
            "name-existing",
            "POST",
            "/api/v1/data-planes",
            json!({"name": "Default", "kind": "cloud"}),
            409,
        ),
        (
            "handle-only-punctuation",
            "POST",
            "/api/v1/data-planes",
            json!({"name": "dp", "handle": "../", "kind": "cloud"}),
            400,
        ),
        (
            "positional-array",
            "POST",
            "/api/v1/data-planes",
            json!(["dp", "dp", "cloud"]),
            400,
        ),
        (
            "region-10k",
            "POST",
            "/api/v1/data-planes",
            json!({"name": "dp", "kind": "cloud", "region": long}),
            400,
        ),
        (
            "description-10k",
            "POST",
            "/api/v1/data-planes",
            json!({"name": "dp", "kind": "cloud", "description": "d".repeat(10_000)}),
            400,
        ),
        (
            "patch-kind-bad",
            "PATCH",
            "/api/v1/data-planes/default",
            json!({"kind": "on-prem"}),
            400,
        ),
        (
            "patch-name-empty",
            "PATCH",
            "/api/v1/data-planes/default",
            json!({"name": ""}),
            400,
        ),
        (
            "patch-handle",
            "PATCH",
            "/api/v1/data-planes/default",
            json!({"handle": "other"}),
            400,
        ),
        (
            "patch-unknown",
            "PATCH",
            "/api/v1/data-planes/nowhere",
            json!({"region": "r"}),
            404,
        ),
        (
            "patch-sql",
            "PATCH",
            "/api/v1/data-planes/x'%20OR%20'1'%3D'1",
            json!({"region": "r"}),
            404,
        ),
        (
            "delete-holding-environments",
            "DELETE",
            "/api/v1/data-planes/default",
            Value::Null,
            409,
        ),
        (
            "delete-unknown",
            "DELETE",
            "/api/v1/data-planes/nowhere",
            Value::Null,
            404,
        ),
        (
            "delete-nul",
            "DELETE",
            "/api/v1/data-planes/a%00b",
            Value::Null,
            404,
        ),
        (
            "get-unknown",
            "GET",
            "/api/v1/data-planes/nowhere",
            Value::Null,
            404,
        ),
        (
            "get-traversal",
            "GET",
            "/api/v1/data-planes/..%2F..%2Fusers",
            Value::Null,
            404,
        ),
        (
            "put",
            "PUT",
            "/api/v1/data-planes/default",
            json!({"region": "r"}),
            405,
        ),
        (
            "post-one",
            "POST",
            "/api/v1/data-planes/default",
            json!({"region": "r"}),
            405,
        ),
        (
            "delete-all",
            "DELETE",
            "/api/v1/data-planes",
            Value::Null,
            405,
        ),
        (
            "environment-unknown-data-plane",
            "POST",
            "/api/v1/environments",
            json!({"name": "e9", "dataPlane": "nowhere"}),
            422,
        ),
        (
            "environment-data-plane-number",
            "POST",
            "/api/v1/environments",
            json!({"name": "e9", "dataPlane": 7}),
            400,
        ),
        (
            "environment-move-unknown",
            "PATCH",
            "/api/v1/environments/dev",
            json!({"dataPlane": "nowhere"}),
            422,
        ),
        (
            "environment-approvals-11",
            "PATCH",
            "/api/v1/environments/prod",
            json!({"requiredApprovals": 11}),
            400,
        ),
        (
            "environment-approvals-negative",
            "PATCH",
            "/api/v1/environments/prod",
            json!({"requiredApprovals": -1}),
            400,
        ),
        (
            "environment-approvals-huge",
            "PATCH",
            "/api/v1/environments/prod",
            json!({"requiredApprovals": u64::MAX}),
            400,
        ),
        (
            "environment-approvals-float",
            "PATCH",
            "/api/v1/environments/prod",
            json!({"requiredApprovals": 1.5}),
            400,
        ),
        (
            "environment-approvals-string",
            "PATCH",
            "/api/v1/environments/prod",
            json!({"requiredApprovals": "1"}),
            400,
        ),
    ] {
        c.add(
            format!("pipeline/data-planes/{name}"),
            Management,
            api(&admin_auth, method, path, &body),
            Status(status),
        );
    }
    c.add(
        "pipeline/data-planes/runtime-token",
        Management,
        api(&rt_auth, "GET", "/api/v1/data-planes", &Value::Null),
        Status(401),
    );

    // ---- Pipelines -------------------------------------------------------
    for (name, body, status) in [
        (
            "unknown-environment",
            json!({"environments": ["dev", "nowhere"]}),
            422,
        ),
        ("duplicate", json!({"environments": ["dev", "dev"]}), 400),
        ("empty", json!({"environments": []}), 400),
        ("numbers", json!({"environments": [1, 2]}), 400),
        ("nested", json!({"environments": [["dev"]]}), 400),
        ("null-item", json!({"environments": ["dev", null]}), 400),
        ("sql", json!({"environments": ["dev' OR '1'='1"]}), 422),
    ] {
        c.add(
            format!("pipeline/pipeline/{name}"),
            Management,
            api(
                &admin_auth,
                "PUT",
                "/api/v1/projects/order-service/environments",
                &body,
            ),
            Status(status),
        );
    }

    // ---- Deployment records ------------------------------------------------
    let deployments = format!("{DEV}/deployments");
    body_cases(
        c,
        "deployments-create",
        "POST",
        &deployments,
        &admin_auth,
        &json!({"version": "9.9.9", "artifact": "a.jar"}),
        &[
            ("version", "string"),
            ("artifact", "string"),
            ("sha256", "string"),
        ],
        Error(&[400]),
    );
    let hex = "ab".repeat(32);
    for (name, body, status) in [
        (
            "version-empty",
            json!({"version": "", "artifact": "a"}),
            400,
        ),
        (
            "version-blank",
            json!({"version": "  \t", "artifact": "a"}),
            400,
        ),
        (
            "version-129",
            json!({"version": "v".repeat(129), "artifact": "a"}),
            400,
        ),
        (
            "version-newline",
            json!({"version": "1.0\n2.0", "artifact": "a"}),
            400,
        ),
        (
            "version-nul",
            json!({"version": "1\u{0}", "artifact": "a"}),
            400,
        ),
        (
            "version-escape",
            json!({"version": "1\u{1b}[31m", "artifact": "a"}),
            400,
        ),
        (
            "artifact-empty",
            json!({"version": "1", "artifact": ""}),
            400,
        ),
        (
            "artifact-1025",
            json!({"version": "1", "artifact": "a".repeat(1025)}),
            400,
        ),
        (
            "artifact-crlf",
            json!({"version": "1", "artifact": "a\r\nb"}),
            400,
        ),
        ("missing-version", json!({"artifact": "a"}), 400),
        ("missing-artifact", json!({"version": "1"}), 400),
        (
            "sha256-not-hex",
            json!({"version": "1", "artifact": "a", "sha256": "g".repeat(64)}),
            400,
        ),
        (
            "sha256-63",
            json!({"version": "1", "artifact": "a", "sha256": &hex[..63]}),
            400,
        ),
        (
            "sha256-65",
            json!({"version": "1", "artifact": "a", "sha256": format!("{hex}a")}),
            400,
        ),
        (
            "sha256-128",
            json!({"version": "1", "artifact": "a", "sha256": hex.repeat(2)}),
            400,
        ),
        (
            "sha256-prefixed",
            json!({"version": "1", "artifact": "a", "sha256": format!("sha256:{hex}")}),
            400,
        ),
        (
            "sha256-inner-space",
            json!({"version": "1", "artifact": "a", "sha256": format!("{} {}", &hex[..32], &hex[32..])}),
            400,
        ),
        (
            "sha256-unicode",
            json!({"version": "1", "artifact": "a", "sha256": "é".repeat(32)}),
            400,
        ),
        ("positional-array", json!(["1", "a.jar", null]), 400),
        (
            "sha256-base64",
            json!({"version": "1", "artifact": "a", "sha256": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="}),
            400,
        ),
    ] {
        c.add(
            format!("pipeline/deployments/{name}"),
            Management,
            api(&admin_auth, "POST", &deployments, &body),
            Status(status),
        );
    }
    for (name, method, path, status) in [
        ("unknown-environment", "POST", "/api/v1/projects/order-service/integrations/order-create/environments/nowhere/deployments", 404),
        ("unknown-integration", "POST", "/api/v1/projects/order-service/integrations/nothing/environments/dev/deployments", 404),
        ("unknown-project", "POST", "/api/v1/projects/nothing/integrations/order-create/environments/dev/deployments", 404),
        ("current-none-in-prod", "GET", "/api/v1/projects/order-service/integrations/order-create/environments/prod/deployments/current", 404),
        ("put-current", "PUT", &format!("{DEV}/deployments/current"), 405),
        ("delete-all", "DELETE", &deployments, 405),
        ("one-by-id", "GET", &format!("{DEV}/deployments/1"), 404),
        ("limit-zero", "GET", &format!("{deployments}?limit=0"), 400),
        ("limit-huge", "GET", &format!("{deployments}?limit=99999999999999999999"), 400),
        ("cursor-garbage", "GET", &format!("{deployments}?cursor=!!"), 400),
        ("cursor-not-a-number", "GET", &format!("{deployments}?cursor={}", B64URL.encode("x")), 400),
    ] {
        c.add(
            format!("pipeline/deployments/{name}"),
            Management,
            api(&admin_auth, method, path, &json!({"version": "1", "artifact": "a"})),
            Status(status),
        );
    }

    // ---- Configuration -----------------------------------------------------
    let config = format!("{DEV}/config");
    body_cases(
        c,
        "config-patch",
        "PATCH",
        &config,
        &admin_auth,
        &json!({"set": [{"section": "hardening", "key": "k", "value": 1}]}),
        &[
            ("set", "string-list"),
            ("unset", "string-list"),
            ("comment", "string"),
            ("expectedRevision", "int"),
        ],
        Error(&[400]),
    );
    let set = |item: Value| json!({"set": [item]});
    let one = |section: &str, key: &str, value: Value| {
        set(json!({"section": section, "key": key, "value": value}))
    };
    let deep_array =
        |n: usize| -> Value { serde_json::from_str(&nested_value(n, "[", "]")).unwrap() };
    let deep_table =
        |n: usize| -> Value { serde_json::from_str(&nested_value(n, "{\"a\":", "}")).unwrap() };
    let mut config_cases: Vec<(String, Value, u16)> = Vec::new();
    // Sections and keys: Ballerina names only.
    for (name, section) in [
        ("dot-leading", ".a"),
        ("dot-trailing", "a."),
        ("dots-double", "a..b"),
        ("dot-only", "."),
        ("space", "a b"),
        ("quote", "a\"b"),
        ("single-quote", "a'b"),
        ("newline", "a\nb"),
        ("nul", "a\u{0}b"),
        ("unicode", "ünï.cödé"),
        ("brackets", "[a]"),
        ("double-brackets", "[[a]]"),
        ("hash", "a#b"),
        ("equals", "a=b"),
        ("slash", "a/b"),
        ("dash", "my-org.orders"),
        ("257-chars", &"s".repeat(257)),
        ("emoji", "😀"),
    ] {
        config_cases.push((format!("section-{name}"), one(section, "k", json!(1)), 400));
    }
    for (name, key) in [
        ("empty", ""),
        ("blank", "  "),
        ("dotted", "a.b"),
        ("digit-first", "1a"),
        ("dash", "a-b"),
        ("space", "a b"),
        ("quote", "\"k\""),
        ("newline", "k\nv"),
        ("only-newline", "\n"),
        ("nul", "k\u{0}"),
        ("unicode", "ключ"),
        ("brackets", "[k]"),
        ("hash", "#k"),
        ("equals", "k=v"),
        ("129-chars", &"k".repeat(129)),
        ("zero-width", "k\u{200b}"),
    ] {
        config_cases.push((format!("key-{name}"), one("hardening", key, json!(1)), 400));
    }
    // Values and types.
    for (name, item) in [
        ("value-null", json!({"key": "k", "value": null})),
        ("value-missing", json!({"key": "k"})),
        ("key-missing", json!({"value": 1})),
        ("key-number", json!({"key": 1, "value": 1})),
        (
            "section-number",
            json!({"section": 1, "key": "k", "value": 1}),
        ),
        (
            "section-null",
            json!({"section": null, "key": "k", "value": 1}),
        ),
        ("null-in-array", json!({"key": "k", "value": [1, null]})),
        ("null-in-table", json!({"key": "k", "value": {"a": null}})),
        (
            "int-beyond-i64",
            json!({"key": "k", "value": 9_223_372_036_854_775_808u64}),
        ),
        ("u64-max", json!({"key": "k", "value": u64::MAX})),
        (
            "u64-max-in-array",
            json!({"key": "k", "value": [1, u64::MAX]}),
        ),
        (
            "u64-max-in-table",
            json!({"key": "k", "value": {"a": {"b": u64::MAX}}}),
        ),
        (
            "u64-max-as-float",
            json!({"key": "k", "value": u64::MAX, "type": "float"}),
        ),
        (
            "beyond-u64-as-int",
            json!({"key": "k", "value": 1.8446744073709552e19, "type": "int"}),
        ),
        (
            "float-as-int",
            json!({"key": "k", "value": 1.5, "type": "int"}),
        ),
        (
            "whole-float-as-int",
            json!({"key": "k", "value": 2.0, "type": "int"}),
        ),
        (
            "nan-string-as-float",
            json!({"key": "k", "value": "NaN", "type": "float"}),
        ),
        (
            "inf-string-as-float",
            json!({"key": "k", "value": "inf", "type": "float"}),
        ),
        (
            "minus-inf-string-as-float",
            json!({"key": "k", "value": "-inf", "type": "float"}),
        ),
        (
            "string-as-int",
            json!({"key": "k", "value": "1", "type": "int"}),
        ),
        (
            "string-as-boolean",
            json!({"key": "k", "value": "true", "type": "boolean"}),
        ),
        (
            "number-as-boolean",
            json!({"key": "k", "value": 1, "type": "boolean"}),
        ),
        (
            "number-as-string",
            json!({"key": "k", "value": 1, "type": "string"}),
        ),
        (
            "array-as-table",
            json!({"key": "k", "value": [], "type": "table"}),
        ),
        (
            "table-as-array",
            json!({"key": "k", "value": {}, "type": "array"}),
        ),
        (
            "bool-as-float",
            json!({"key": "k", "value": true, "type": "float"}),
        ),
        (
            "type-unknown",
            json!({"key": "k", "value": 1, "type": "decimal"}),
        ),
        ("type-upper", json!({"key": "k", "value": 1, "type": "INT"})),
        ("type-empty", json!({"key": "k", "value": 1, "type": ""})),
        ("type-number", json!({"key": "k", "value": 1, "type": 1})),
        (
            "type-array",
            json!({"key": "k", "value": 1, "type": ["int"]}),
        ),
        (
            "type-long",
            json!({"key": "k", "value": 1, "type": "t".repeat(10_000)}),
        ),
        (
            "secret-string",
            json!({"key": "k", "value": "s", "secret": "true"}),
        ),
        (
            "secret-number",
            json!({"key": "k", "value": "s", "secret": 1}),
        ),
        (
            "secret-array",
            json!({"key": "k", "value": "s", "secret": [true]}),
        ),
        (
            "secret-object",
            json!({"key": "k", "value": "s", "secret": {"on": true}}),
        ),
        (
            "unknown-field-in-item",
            json!({"key": "k", "value": 1, "sealed": true}),
        ),
        (
            "arrays-17-deep",
            json!({"key": "k", "value": deep_array(17)}),
        ),
        (
            "arrays-100-deep",
            json!({"key": "k", "value": deep_array(100)}),
        ),
        (
            "tables-17-deep",
            json!({"key": "k", "value": deep_table(17)}),
        ),
        (
            "tables-100-deep",
            json!({"key": "k", "value": deep_table(100)}),
        ),
        (
            "array-20000-strings",
            json!({"key": "k", "value": vec!["xxxx"; 20_000]}),
        ),
        (
            "array-100000-ints",
            json!({"key": "k", "value": vec![1; 100_000]}),
        ),
        (
            "string-70k",
            json!({"key": "k", "value": "v".repeat(70_000)}),
        ),
        (
            "table-10000-keys",
            json!({"key": "k", "value": (0..10_000).map(|i| (format!("k{i}"), json!(i))).collect::<serde_json::Map<_, _>>()}),
        ),
    ] {
        config_cases.push((name.to_string(), set(item), 400));
    }
    // Deeper than the JSON parser goes: refused while decoding.
    c.add(
        "pipeline/config/arrays-10000-deep",
        Management,
        request(
            "PATCH",
            &config,
            &[
                ("Authorization", &admin_auth),
                ("Content-Type", "application/json"),
            ],
            format!(
                r#"{{"set": [{{"key": "k", "value": {}}}]}}"#,
                nested(10_000)
            )
            .as_bytes(),
        ),
        Status(400),
    );
    for (name, literal) in [
        ("nan", "NaN"),
        ("infinity", "Infinity"),
        ("minus-infinity", "-Infinity"),
        ("exponent-overflow", "1e999"),
        ("minus-exponent-overflow", "-1e999"),
        ("hex", "0x10"),
        ("leading-zero", "007"),
        ("plus-sign", "+1"),
        ("toml-inf", "inf"),
        ("toml-date", "1979-05-27T07:32:00Z"),
    ] {
        c.add(
            format!("pipeline/config/literal-{name}"),
            Management,
            request(
                "PATCH",
                &config,
                &[
                    ("Authorization", &admin_auth),
                    ("Content-Type", "application/json"),
                ],
                format!(r#"{{"set": [{{"key": "k", "value": {literal}, "type": "float"}}]}}"#)
                    .as_bytes(),
            ),
            Status(400),
        );
    }
    // The batch.
    let many = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"section": "hardening", "key": format!("k{i}"), "value": i}))
            .collect()
    };
    for (name, body, status) in [
        ("nothing", json!({}), 400),
        (
            "positional-array",
            json!([[{"key": "k", "value": 1}], [], null, null]),
            400,
        ),
        ("set-empty", json!({"set": [], "unset": []}), 400),
        ("set-1001", json!({"set": many(1001)}), 400),
        ("set-null", json!({"set": null}), 400),
        ("set-object", json!({"set": {"key": "k", "value": 1}}), 400),
        (
            "twice",
            json!({"set": [{"key": "k", "value": 1}, {"key": "k", "value": 2}]}),
            400,
        ),
        (
            "twice-after-trim",
            json!({"set": [{"key": "k", "value": 1}, {"key": " k ", "value": 2}]}),
            400,
        ),
        (
            "set-and-unset",
            json!({"set": [{"key": "k", "value": 1}], "unset": [{"key": "k"}]}),
            400,
        ),
        (
            "unset-not-set",
            json!({"unset": [{"section": "hardening", "key": "never"}]}),
            422,
        ),
        (
            "unset-bad-key",
            json!({"unset": [{"section": "a..b", "key": "k"}]}),
            400,
        ),
        (
            "unset-with-value",
            json!({"unset": [{"key": "k", "value": 1}]}),
            400,
        ),
        ("unset-strings", json!({"unset": ["k"]}), 400),
        (
            "key-also-a-section",
            json!({"set": [{"section": "myorg", "key": "orders", "value": 1}]}),
            400,
        ),
        (
            "section-under-a-key",
            json!({"set": [{"section": "myorg.orders.dbUrl", "key": "x", "value": 1}]}),
            400,
        ),
        (
            "section-under-a-table-value",
            json!({"set": [{"section": "myorg.orders.limits", "key": "x", "value": 1}]}),
            400,
        ),
        (
            "comment-501",
            json!({"set": [{"key": "k", "value": 1}], "comment": "c".repeat(501)}),
            400,
        ),
        (
            "comment-100k",
            json!({"set": [{"key": "k", "value": 1}], "comment": "c".repeat(100_000)}),
            400,
        ),
        (
            "comment-nul",
            json!({"set": [{"key": "k", "value": 1}], "comment": "a\u{0}b"}),
            400,
        ),
        (
            "comment-newline",
            json!({"set": [{"key": "k", "value": 1}], "comment": "a\nb"}),
            400,
        ),
        (
            "comment-escape",
            json!({"set": [{"key": "k", "value": 1}], "comment": "\u{1b}[2J"}),
            400,
        ),
        (
            "comment-del",
            json!({"set": [{"key": "k", "value": 1}], "comment": "a\u{7f}"}),
            400,
        ),
        (
            "expected-revision-old",
            json!({"set": [{"key": "k", "value": 1}], "expectedRevision": 0}),
            409,
        ),
        (
            "expected-revision-negative",
            json!({"set": [{"key": "k", "value": 1}], "expectedRevision": -1}),
            409,
        ),
        (
            "expected-revision-i64-max",
            json!({"set": [{"key": "k", "value": 1}], "expectedRevision": i64::MAX}),
            409,
        ),
        (
            "expected-revision-i64-min",
            json!({"set": [{"key": "k", "value": 1}], "expectedRevision": i64::MIN}),
            409,
        ),
        (
            "expected-revision-beyond-i64",
            json!({"set": [{"key": "k", "value": 1}], "expectedRevision": u64::MAX}),
            400,
        ),
        (
            "expected-revision-float",
            json!({"set": [{"key": "k", "value": 1}], "expectedRevision": 1.0}),
            400,
        ),
        (
            "expected-revision-string",
            json!({"set": [{"key": "k", "value": 1}], "expectedRevision": "1"}),
            400,
        ),
    ] {
        config_cases.push((name.to_string(), body, status));
    }
    for (name, body, status) in config_cases {
        c.add(
            format!("pipeline/config/{name}"),
            Management,
            api(&admin_auth, "PATCH", &config, &body),
            Status(status),
        );
    }
    for (name, method, path, status) in [
        ("revision-zero", "GET", format!("{config}?revision=0"), 400),
        (
            "revision-negative",
            "GET",
            format!("{config}?revision=-1"),
            400,
        ),
        (
            "revision-text",
            "GET",
            format!("{config}?revision=latest"),
            400,
        ),
        (
            "revision-beyond-i64",
            "GET",
            format!("{config}?revision=99999999999999999999"),
            400,
        ),
        (
            "revision-float",
            "GET",
            format!("{config}?revision=1.0"),
            400,
        ),
        (
            "revision-sql",
            "GET",
            format!("{config}?revision=1%20OR%201=1"),
            400,
        ),
        (
            "revision-unknown",
            "GET",
            format!("{config}?revision=9999"),
            404,
        ),
        (
            "revision-i64-max",
            "GET",
            format!("{config}?revision=9223372036854775807"),
            404,
        ),
        (
            "revisions-limit-zero",
            "GET",
            format!("{config}/revisions?limit=0"),
            400,
        ),
        (
            "revisions-cursor-garbage",
            "GET",
            format!("{config}/revisions?cursor=!!"),
            400,
        ),
        (
            "revisions-cursor-not-a-number",
            "GET",
            format!("{config}/revisions?cursor={}", B64URL.encode("abc")),
            400,
        ),
        (
            "unknown-environment",
            "GET",
            "/api/v1/projects/order-service/integrations/order-create/environments/nowhere/config"
                .into(),
            404,
        ),
        (
            "unknown-integration",
            "PATCH",
            "/api/v1/projects/order-service/integrations/nothing/environments/dev/config".into(),
            404,
        ),
        ("post", "POST", config.clone(), 405),
        ("put", "PUT", config.clone(), 405),
        ("delete", "DELETE", config.clone(), 405),
        ("post-revisions", "POST", format!("{config}/revisions"), 405),
        (
            "one-revision-path",
            "GET",
            format!("{config}/revisions/1"),
            404,
        ),
    ] {
        c.add(
            format!("pipeline/config/{name}"),
            Management,
            api(
                &admin_auth,
                method,
                &path,
                &json!({"set": [{"key": "k", "value": 1}]}),
            ),
            Status(status),
        );
    }
    c.add(
        "pipeline/config/runtime-token",
        Management,
        api(&rt_auth, "GET", &config, &Value::Null),
        Status(401),
    );

    // ---- Promotions: requests ----------------------------------------------
    body_cases(
        c,
        "promotions-create",
        "POST",
        PROMOTIONS,
        &admin_auth,
        &json!({"from": "dev", "to": "staging", "overrides": [{"key": "k", "value": 1}]}),
        &[
            ("from", "string"),
            ("to", "string"),
            ("overrides", "string-list"),
            ("comment", "string"),
        ],
        Error(&[400]),
    );
    let ov = |item: Value| json!({"from": "dev", "to": "staging", "overrides": [item]});
    for (name, body, status) in [
        (
            "from-unknown",
            json!({"from": "nowhere", "to": "staging"}),
            422,
        ),
        ("to-unknown", json!({"from": "dev", "to": "nowhere"}), 422),
        ("from-empty", json!({"from": "", "to": "staging"}), 422),
        ("both-empty", json!({"from": "", "to": ""}), 422),
        (
            "from-sql",
            json!({"from": "dev' OR '1'='1", "to": "staging"}),
            422,
        ),
        (
            "to-10k",
            json!({"from": "dev", "to": "e".repeat(10_000)}),
            422,
        ),
        ("to-nul", json!({"from": "dev", "to": "\u{0}"}), 422),
        (
            "positional-array",
            json!(["dev", "staging", [{"key": "k", "value": 1}]]),
            400,
        ),
        ("equal", json!({"from": "dev", "to": "dev"}), 422),
        ("equal-prod", json!({"from": "prod", "to": "prod"}), 422),
        ("reversed", json!({"from": "staging", "to": "dev"}), 422),
        (
            "reversed-prod",
            json!({"from": "prod", "to": "staging"}),
            422,
        ),
        ("skipping", json!({"from": "dev", "to": "prod"}), 422),
        ("from-last", json!({"from": "prod", "to": "dev"}), 422),
        ("nothing-new", json!({"from": "dev", "to": "staging"}), 409),
        (
            "pending-already",
            json!({"from": "staging", "to": "prod", "overrides": [{"key": "k2", "value": 2}]}),
            409,
        ),
        ("missing-from", json!({"to": "staging"}), 400),
        ("missing-to", json!({"from": "dev"}), 400),
        (
            "overrides-object",
            json!({"from": "dev", "to": "staging", "overrides": {"key": "k", "value": 1}}),
            400,
        ),
        (
            "overrides-1001",
            json!({"from": "dev", "to": "staging", "overrides": many(1001)}),
            400,
        ),
        (
            "override-twice",
            json!({"from": "dev", "to": "staging", "overrides": [{"key": "k", "value": 1}, {"key": "k", "value": 2}]}),
            400,
        ),
        (
            "override-value-null",
            ov(json!({"key": "k", "value": null})),
            400,
        ),
        ("override-value-missing", ov(json!({"key": "k"})), 400),
        (
            "override-key-dotted",
            ov(json!({"key": "a.b", "value": 1})),
            400,
        ),
        (
            "override-key-empty",
            ov(json!({"key": "", "value": 1})),
            400,
        ),
        (
            "override-key-newline",
            ov(json!({"key": "a\nb", "value": 1})),
            400,
        ),
        (
            "override-section-quote",
            ov(json!({"section": "a\"b", "key": "k", "value": 1})),
            400,
        ),
        (
            "override-section-unicode",
            ov(json!({"section": "ü", "key": "k", "value": 1})),
            400,
        ),
        (
            "override-type-unknown",
            ov(json!({"key": "k", "value": 1, "type": "decimal"})),
            400,
        ),
        (
            "override-type-mismatch",
            ov(json!({"key": "k", "value": "x", "type": "int"})),
            400,
        ),
        (
            "override-type-number",
            ov(json!({"key": "k", "value": 1, "type": 3})),
            400,
        ),
        (
            "override-secret-string",
            ov(json!({"key": "k", "value": "s", "secret": "yes"})),
            400,
        ),
        (
            "override-secret-number",
            ov(json!({"key": "k", "value": "s", "secret": 0})),
            400,
        ),
        (
            "override-int-beyond-i64",
            ov(json!({"key": "k", "value": u64::MAX})),
            400,
        ),
        (
            "override-arrays-17-deep",
            ov(json!({"key": "k", "value": deep_array(17)})),
            400,
        ),
        (
            "override-tables-100-deep",
            ov(json!({"key": "k", "value": deep_table(100)})),
            400,
        ),
        (
            "override-string-70k",
            ov(json!({"key": "k", "value": "v".repeat(70_000)})),
            400,
        ),
        (
            "override-unknown-field",
            ov(json!({"key": "k", "value": 1, "environment": "prod"})),
            400,
        ),
        (
            "override-key-also-a-section",
            ov(json!({"section": "myorg", "key": "orders", "value": 1})),
            400,
        ),
        (
            "override-section-under-a-key",
            ov(json!({"section": "myorg.orders.dbUrl", "key": "x", "value": 1})),
            400,
        ),
        (
            "comment-501",
            json!({"from": "dev", "to": "staging", "overrides": [{"key": "k", "value": 1}], "comment": "c".repeat(501)}),
            400,
        ),
        (
            "comment-100k",
            json!({"from": "dev", "to": "staging", "overrides": [{"key": "k", "value": 1}], "comment": "c".repeat(100_000)}),
            400,
        ),
        (
            "comment-nul",
            json!({"from": "dev", "to": "staging", "overrides": [{"key": "k", "value": 1}], "comment": "\u{0}"}),
            400,
        ),
        (
            "comment-crlf",
            json!({"from": "dev", "to": "staging", "overrides": [{"key": "k", "value": 1}], "comment": "ok\r\nforged: line"}),
            400,
        ),
        (
            "comment-escape",
            json!({"from": "dev", "to": "staging", "overrides": [{"key": "k", "value": 1}], "comment": "\u{1b}]0;title\u{7}"}),
            400,
        ),
    ] {
        c.add(
            format!("pipeline/promotions/request-{name}"),
            Management,
            api(&admin_auth, "POST", PROMOTIONS, &body),
            Status(status),
        );
    }
    for (name, path, status) in [
        (
            "unknown-integration",
            "/api/v1/projects/order-service/integrations/nothing/promotions",
            404,
        ),
        (
            "unknown-project",
            "/api/v1/projects/nothing/integrations/order-create/promotions",
            404,
        ),
        (
            "sql-integration",
            "/api/v1/projects/order-service/integrations/x'%20OR%20'1'%3D'1/promotions",
            404,
        ),
    ] {
        c.add(
            format!("pipeline/promotions/request-{name}"),
            Management,
            api(
                &admin_auth,
                "POST",
                path,
                &json!({"from": "dev", "to": "staging", "overrides": [{"key": "k", "value": 1}]}),
            ),
            Status(status),
        );
    }

    // ---- Promotions: decisions ---------------------------------------------
    let decide = |id: &str, what: &str| format!("/api/v1/promotions/{id}/{what}");
    for id in [
        "abc",
        "0",
        "-1",
        "1.0",
        "1e3",
        "0x1",
        "99999999999999999999",
        "9223372036854775807",
        "%00",
        "1%20OR%201=1",
        "%2e%2e",
        "%F0%9F%98%80",
    ] {
        for (what, method, path) in [
            ("get", "GET", format!("/api/v1/promotions/{id}")),
            ("approve", "POST", decide(id, "approve")),
            ("reject", "POST", decide(id, "reject")),
            ("cancel", "POST", decide(id, "cancel")),
        ] {
            c.add(
                format!("pipeline/promotions/{what}-id-{id}"),
                Management,
                api(
                    &bob_auth,
                    method,
                    &path,
                    &json!({"comment": "no such promotion"}),
                ),
                Status(404),
            );
        }
    }
    let comment = json!({"comment": "late"});
    for (state, id) in [
        ("applied", &p.applied),
        ("rejected", &p.rejected),
        ("cancelled", &p.cancelled),
    ] {
        for (who, auth) in [("admin", &admin_auth), ("bob", &bob_auth)] {
            for what in ["approve", "reject"] {
                c.add(
                    format!("pipeline/promotions/{what}-{state}-by-{who}"),
                    Management,
                    api(auth, "POST", &decide(id, what), &comment),
                    Status(409),
                );
            }
        }
        c.add(
            format!("pipeline/promotions/cancel-{state}"),
            Management,
            api(&admin_auth, "POST", &decide(id, "cancel"), &Value::Null),
            Status(409),
        );
    }
    let pending = &p.pending;
    let long_comment = json!({"comment": "c".repeat(501)});
    for (name, auth, what, body, status) in [
        (
            "approve-own",
            &admin_auth,
            "approve",
            json!({"comment": "mine"}),
            403,
        ),
        (
            "approve-own-empty",
            &admin_auth,
            "approve",
            Value::Null,
            403,
        ),
        (
            "reject-own",
            &admin_auth,
            "reject",
            json!({"comment": "mine"}),
            403,
        ),
        ("cancel-by-other", &bob_auth, "cancel", Value::Null, 403),
        (
            "approve-by-runtime-token",
            &rt_auth,
            "approve",
            Value::Null,
            401,
        ),
        (
            "approve-comment-501",
            &bob_auth,
            "approve",
            long_comment.clone(),
            400,
        ),
        (
            "approve-comment-nul",
            &bob_auth,
            "approve",
            json!({"comment": "ok\u{0}"}),
            400,
        ),
        (
            "approve-comment-crlf",
            &bob_auth,
            "approve",
            json!({"comment": "ok\r\nApproved-By: root"}),
            400,
        ),
        (
            "approve-comment-escape",
            &bob_auth,
            "approve",
            json!({"comment": "\u{1b}[2K"}),
            400,
        ),
        (
            "approve-comment-number",
            &bob_auth,
            "approve",
            json!({"comment": 1}),
            400,
        ),
        (
            "approve-comment-array",
            &bob_auth,
            "approve",
            json!({"comment": ["ok"]}),
            400,
        ),
        (
            "approve-unknown-field",
            &bob_auth,
            "approve",
            json!({"approvals": 5}),
            400,
        ),
        ("approve-array", &bob_auth, "approve", json!(["ok"]), 400),
        ("reject-no-body", &bob_auth, "reject", Value::Null, 400),
        ("reject-no-comment", &bob_auth, "reject", json!({}), 400),
        (
            "reject-comment-null",
            &bob_auth,
            "reject",
            json!({"comment": null}),
            400,
        ),
        (
            "reject-comment-blank",
            &bob_auth,
            "reject",
            json!({"comment": " \t "}),
            400,
        ),
        (
            "reject-comment-501",
            &bob_auth,
            "reject",
            long_comment.clone(),
            400,
        ),
        (
            "reject-comment-100k",
            &bob_auth,
            "reject",
            json!({"comment": "c".repeat(100_000)}),
            400,
        ),
        (
            "reject-comment-control",
            &bob_auth,
            "reject",
            json!({"comment": "why\u{8}\u{8}\u{8}not"}),
            400,
        ),
        (
            "reject-comment-number",
            &bob_auth,
            "reject",
            json!({"comment": 1}),
            400,
        ),
        (
            "cancel-comment-number",
            &admin_auth,
            "cancel",
            json!({"comment": 1}),
            400,
        ),
        (
            "cancel-unknown-field",
            &admin_auth,
            "cancel",
            json!({"force": true}),
            400,
        ),
    ] {
        c.add(
            format!("pipeline/promotions/pending-{name}"),
            Management,
            api(auth, "POST", &decide(pending, what), &body),
            Status(status),
        );
    }
    for (what, body) in hostile_bodies() {
        for action in ["approve", "reject", "cancel"] {
            c.add(
                format!("pipeline/promotions/pending-{action}-body-{what}"),
                Management,
                request(
                    "POST",
                    &decide(pending, action),
                    &[
                        ("Authorization", &bob_auth),
                        ("Content-Type", "application/json"),
                    ],
                    &body,
                ),
                Status(400),
            );
        }
    }
    for (name, method, path, status) in [
        ("get-approve", "GET", decide(pending, "approve"), 405),
        ("put-reject", "PUT", decide(pending, "reject"), 405),
        (
            "delete-one",
            "DELETE",
            format!("/api/v1/promotions/{pending}"),
            405,
        ),
        (
            "patch-one",
            "PATCH",
            format!("/api/v1/promotions/{pending}"),
            405,
        ),
        ("post-list", "POST", "/api/v1/promotions".into(), 405),
        ("unknown-action", "POST", decide(pending, "apply"), 404),
        (
            "approve-trailing-slash",
            "POST",
            format!("{}/", decide(pending, "approve")),
            404,
        ),
        (
            "status-bogus",
            "GET",
            "/api/v1/promotions?status=bogus".into(),
            400,
        ),
        (
            "status-upper",
            "GET",
            "/api/v1/promotions?status=PENDING".into(),
            400,
        ),
        (
            "status-sql",
            "GET",
            "/api/v1/promotions?status=pending'%20OR%20'1'%3D'1".into(),
            400,
        ),
        (
            "limit-negative",
            "GET",
            "/api/v1/promotions?limit=-1".into(),
            400,
        ),
        (
            "limit-zero",
            "GET",
            "/api/v1/promotions?limit=0".into(),
            400,
        ),
        (
            "cursor-garbage",
            "GET",
            "/api/v1/promotions?cursor=!!".into(),
            400,
        ),
        (
            "cursor-not-a-number",
            "GET",
            format!("/api/v1/promotions?cursor={}", B64URL.encode("x")),
            400,
        ),
        (
            "integration-status-bogus",
            "GET",
            format!("{PROMOTIONS}?status=done"),
            400,
        ),
        (
            "integration-unknown",
            "GET",
            "/api/v1/projects/order-service/integrations/nothing/promotions".into(),
            404,
        ),
        ("put-integration-list", "PUT", PROMOTIONS.into(), 405),
    ] {
        c.add(
            format!("pipeline/promotions/{name}"),
            Management,
            api(&admin_auth, method, &path, &Value::Null),
            Status(status),
        );
    }
}

/// `n` levels of `open`, 1, then `n` levels of `close`.
fn nested_value(n: usize, open: &str, close: &str) -> String {
    format!("{}1{}", open.repeat(n), close.repeat(n))
}

/// The issue 8 state the pipeline cases run against, made through the API
/// and the CLI before the first dump: a pipeline dev → staging → prod, a
/// deployment record and a configuration (with a secret) in dev, promotions
/// in every state, runtimes of another environment and integration, an
/// unbound and a revoked secret, and bob, an Admin who may approve.
fn pipeline_setup(
    server: &TestServer,
    admin: &mut crate::harness::ApiClient,
    runtime: &mut icpd::http::client::Client,
) -> Pipeline {
    let ok = |r: icpd::http::client::ClientResponse, status: u16| -> Value {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        }
    };
    ok(
        admin.post("/api/v1/environments", &json!({"name": "Staging"})),
        201,
    );
    ok(
        admin.put(
            "/api/v1/projects/order-service/environments",
            &json!({"environments": ["dev", "staging", "prod"]}),
        ),
        200,
    );
    ok(
        admin.post(
            &format!("{DEV}/deployments"),
            &json!({"version": "1.0.0", "artifact": "orders-1.0.0.jar", "sha256": "ab".repeat(32)}),
        ),
        201,
    );
    ok(
        admin.patch(
            &format!("{DEV}/config"),
            &json!({"comment": "hardening", "set": [
                {"section": "myorg.orders", "key": "dbUrl", "value": "jdbc:postgresql://db.dev/orders"},
                {"section": "myorg.orders", "key": "dbPassword", "value": "bad-input-config-secret", "secret": true},
                {"section": "myorg.orders", "key": "limits", "value": {"max": 10, "odd keys": {"a.b": "\"q\"\n"}}},
                {"section": "", "key": "debug", "value": false}
            ]}),
        ),
        200,
    );
    let promote = |admin: &mut crate::harness::ApiClient, body: Value, status: &str| {
        let p = ok(admin.post(PROMOTIONS, &body), 201);
        assert_eq!(p["status"], status, "{p}");
        p["id"].as_str().unwrap().to_string()
    };
    let applied = promote(admin, json!({"from": "dev", "to": "staging"}), "applied");
    let mut bob = server.api_as("bob", Some("Admin"));
    let rejected = promote(admin, json!({"from": "staging", "to": "prod"}), "pending");
    ok(
        bob.post(
            &format!("/api/v1/promotions/{rejected}/reject"),
            &json!({"comment": "not yet"}),
        ),
        200,
    );
    let cancelled = promote(admin, json!({"from": "staging", "to": "prod"}), "pending");
    ok(
        admin.post(
            &format!("/api/v1/promotions/{cancelled}/cancel"),
            &json!({}),
        ),
        200,
    );
    let pending = promote(
        admin,
        json!({"from": "staging", "to": "prod", "overrides": [
            {"section": "myorg.orders", "key": "dbUrl", "value": "jdbc:postgresql://db.prod/orders"}]}),
        "pending",
    );
    let bob_token = ok(
        bob.post("/api/v1/auth/tokens", &json!({"name": "bob"})),
        201,
    )["token"]
        .as_str()
        .unwrap()
        .to_string();
    // Runtimes elsewhere, whose ids the dev runtime must not fetch as.
    let prod = Bridge {
        env: "prod".into(),
        ..Bridge::new(&server.secret("prod", None), Some("prod-node"))
    };
    crate::harness::assert_ack(&prod.full(runtime));
    let other = Bridge {
        integration: "order-update".into(),
        ..Bridge::new(&server.secret("dev", None), Some("other-node"))
    };
    crate::harness::assert_ack(&other.full(runtime));
    let unbound = Bridge::new(&server.secret("dev", None), None).token();
    let revoked_secret = server.secret("dev", Some(("order-service", "order-create")));
    let (kid, _) = revoked_secret.split_once('.').unwrap();
    let out = server.cli(&["secret", "revoke", kid]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Pipeline {
        unbound,
        revoked: Bridge::new(&revoked_secret, None).token(),
        other_environment_runtime: prod.runtime_id,
        other_integration_runtime: other.runtime_id,
        applied,
        rejected,
        cancelled,
        pending,
        bob: bob_token,
    }
}

/// Waits until every liveness write queued so far (last-seen times, status
/// changes) is in `icp.db`, so that none lands after a dump and looks like
/// a change a case made: a flush writes everything queued before it in one
/// transaction, so once a delta heartbeat sent now shows as the runtime's
/// last heartbeat, everything queued before it is written too.
fn liveness_settled(server: &TestServer, bridge: &Bridge, runtime: &mut Client) {
    let sent = icpd::time::now_millis();
    crate::harness::assert_ack(&bridge.delta(runtime));
    crate::harness::wait_for(
        "a liveness flush after the delta heartbeat",
        Duration::from_secs(20),
        || crate::harness::millis(&server.runtime(&bridge.runtime_id)["lastHeartbeat"]) >= sent,
    );
}

/// Every table's rows of `icp.db`, ordered, as text: a logical dump.
/// `audit_log` is left out because every unsafe management request writes
/// an entry, refused ones included (the router audits "whatever the
/// handler did", see `src/http/api/mod.rs`): the corpus legitimately adds
/// rows there. Last-seen columns are left out because the liveness loop
/// flushes heartbeat times on its own schedule and authentication may
/// record when an API or ingest token was last used (an ingest token at
/// most once a minute, whatever the body then holds); neither is state a
/// bad request could corrupt. Nor is the sweep lease's expiry, which a
/// node on PostgreSQL renews every second.
fn dump(data_dir: &std::path::Path) -> Vec<String> {
    let excluded_columns = [
        ("cluster_leases", "expires_at"),
        ("runtimes", "last_heartbeat"),
        ("runtimes", "last_full_heartbeat"),
        ("api_tokens", "last_used_at"),
        ("ingest_tokens", "last_used_at"),
    ];
    if crate::pg_cluster::enabled() {
        // Telemetry's tables are in the same database: dumped apart.
        let excluded: Vec<&str> = ["audit_log"].into_iter().chain(TELEMETRY_TABLES).collect();
        return crate::pg_cluster::dump(data_dir, &excluded, &excluded_columns);
    }
    dump_file(&data_dir.join("icp.db"), &["audit_log"], &excluded_columns)
}

/// Telemetry's tables in a PostgreSQL database.
const TELEMETRY_TABLES: [&str; 4] = ["logs", "requests", "metric_points", "icpd_telemetry_schema"];

/// Every table of `telemetry.db`, FTS5 shadow tables included (or, on
/// PostgreSQL, every telemetry table, the text index column included), as
/// text: nothing is left out, since no request of the non-writing phase
/// may touch it.
fn dump_telemetry(data_dir: &std::path::Path) -> Vec<String> {
    if crate::pg_cluster::enabled() {
        return crate::pg_cluster::dump_only(data_dir, &TELEMETRY_TABLES);
    }
    dump_file(&data_dir.join("telemetry.db"), &[], &[])
}

/// A logical dump of one SQLite file: schema, then every row of every
/// table but `excluded_tables`, without `excluded_columns`.
fn dump_file(
    path: &std::path::Path,
    excluded_tables: &[&str],
    excluded_columns: &[(&str, &str)],
) -> Vec<String> {
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut out = Vec::new();
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    out.push(format!("user_version {version}"));
    let mut stmt = db
        .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap();
    let schema: Vec<(String, String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (kind, name, sql) in &schema {
        out.push(format!(
            "schema {kind} {name}: {}",
            sql.as_deref().unwrap_or("")
        ));
    }
    for (kind, table, _) in &schema {
        if kind != "table" || excluded_tables.contains(&table.as_str()) {
            continue;
        }
        let columns: Vec<String> = db
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .filter(|c: &String| !excluded_columns.contains(&(table.as_str(), c.as_str())))
            .collect();
        let list = columns
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {list} FROM \"{table}\" ORDER BY {list}");
        let mut stmt = db.prepare(&sql).unwrap();
        let rows = stmt
            .query_map([], |r| {
                let values: Vec<String> = (0..columns.len())
                    .map(|i| match r.get_ref(i).unwrap() {
                        ValueRef::Null => "NULL".to_string(),
                        ValueRef::Integer(n) => n.to_string(),
                        ValueRef::Real(x) => format!("{x:?}"),
                        ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
                        ValueRef::Blob(b) => format!(
                            "x'{}'",
                            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
                        ),
                    })
                    .collect();
                Ok(values.join(" | "))
            })
            .unwrap()
            .map(Result::unwrap);
        for row in rows {
            out.push(format!("{table}: {row}"));
        }
    }
    out
}

/// What is wrong with `reply` for `expect`, if anything.
fn check(reply: &Reply, expect: Expect, index_html: &[u8]) -> Result<(), String> {
    let is_json_error = || -> Result<(), String> {
        let ct = reply.header("content-type").unwrap_or("");
        if !ct.starts_with("application/json") {
            return Err(format!("Content-Type {ct:?}, not JSON"));
        }
        let v: Value =
            serde_json::from_slice(&reply.body).map_err(|e| format!("body is not JSON ({e})"))?;
        let code_ok = v["error"]["code"].as_str().is_some_and(|c| !c.is_empty());
        let message_ok = v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty());
        if !(code_ok && message_ok) {
            return Err(format!("not the error shape: {v}"));
        }
        Ok(())
    };
    match expect {
        Expect::Error(statuses) => {
            if !statuses.contains(&reply.status) {
                return Err(format!(
                    "status {}, expected one of {statuses:?}",
                    reply.status
                ));
            }
            is_json_error()
        }
        Expect::Status(status) => {
            if reply.status != status {
                return Err(format!("status {}, expected {status}", reply.status));
            }
            is_json_error()
        }
        Expect::AnyClientError => {
            if !(400..500).contains(&reply.status) {
                return Err(format!("status {}, expected a 4xx", reply.status));
            }
            is_json_error()
        }
        Expect::JsonOk | Expect::Ingested { .. } => {
            let ct = reply.header("content-type").unwrap_or("");
            if reply.status != 200 || !ct.starts_with("application/json") {
                return Err(format!(
                    "status {} ({ct}), expected 200 JSON: {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)])
                ));
            }
            serde_json::from_slice::<Value>(&reply.body)
                .map(|_| ())
                .map_err(|e| format!("body is not JSON ({e})"))
        }
        Expect::Config => {
            let ct = reply.header("content-type").unwrap_or("");
            if reply.status != 200 || !ct.starts_with("application/toml") {
                return Err(format!(
                    "status {} ({ct}), expected 200 TOML: {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)])
                ));
            }
            let revision = reply.header("x-icp-config-revision").unwrap_or("");
            if revision.parse::<u32>().is_err() {
                return Err(format!("X-ICP-Config-Revision {revision:?}"));
            }
            if reply.header("cache-control") != Some("no-store") {
                return Err("configuration answered without Cache-Control: no-store".into());
            }
            let text = std::str::from_utf8(&reply.body).map_err(|e| e.to_string())?;
            text.parse::<toml::Table>()
                .map(|_| ())
                .map_err(|e| format!("the configuration is not TOML: {e}"))
        }
        Expect::Download => {
            let disposition = reply.header("content-disposition").unwrap_or("");
            if reply.status != 200 || !disposition.starts_with("attachment") {
                return Err(format!(
                    "status {} ({disposition}), expected a 200 attachment",
                    reply.status
                ));
            }
            Ok(())
        }
        Expect::Stream => {
            let ct = reply.header("content-type").unwrap_or("");
            if reply.status != 200 || !ct.starts_with("text/event-stream") {
                return Err(format!(
                    "status {} ({ct}), expected an event stream",
                    reply.status
                ));
            }
            Ok(())
        }
        Expect::GraphQl(statuses) => {
            if !statuses.contains(&reply.status) {
                return Err(format!(
                    "status {}, expected one of {statuses:?}: {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)])
                ));
            }
            let v: Value = serde_json::from_slice(&reply.body)
                .map_err(|e| format!("body is not JSON ({e})"))?;
            match &v {
                Value::String(m) if reply.status == 400 && !m.is_empty() => Ok(()),
                _ => {
                    let errors = v["errors"].as_array().filter(|e| !e.is_empty());
                    let ok = errors.is_some_and(|e| {
                        e.iter()
                            .all(|x| x["message"].as_str().is_some_and(|m| !m.is_empty()))
                    });
                    if ok {
                        Ok(())
                    } else {
                        Err(format!("not GraphQL errors: {v}"))
                    }
                }
            }
        }
        Expect::Auth(statuses) => {
            if !statuses.contains(&reply.status) {
                return Err(format!(
                    "status {}, expected one of {statuses:?}",
                    reply.status
                ));
            }
            let v: Value = serde_json::from_slice(&reply.body)
                .map_err(|e| format!("body is not JSON ({e})"))?;
            if v["message"].as_str().is_some_and(|m| !m.is_empty()) {
                Ok(())
            } else {
                Err(format!("not ICP's {{\"message\"}}: {v}"))
            }
        }
        Expect::Console => match reply.status {
            200 if reply.body == index_html => Ok(()),
            200 => Err("200 with something other than the console's index.html".into()),
            400..=499 => is_json_error(),
            s => Err(format!("status {s}, expected the console or a 4xx")),
        },
    }
}

/// An error from the runtime listener also carries its message as a
/// top-level string `message`: that member is what Micro Integrator logs
/// (MI.md), whichever layer answered (router, protocol, connection layer).
fn top_level_message(reply: &Reply, listener: Listener) -> Result<(), String> {
    if listener != Listener::Runtime || reply.status < 400 {
        return Ok(());
    }
    let v: Value =
        serde_json::from_slice(&reply.body).map_err(|e| format!("body is not JSON ({e})"))?;
    match &v["message"] {
        Value::String(m) if !m.is_empty() && Some(m.as_str()) == v["error"]["message"].as_str() => {
            Ok(())
        }
        _ => Err(format!(
            "{}: no top-level message (the error's own) for MI to log: {v}",
            reply.status
        )),
    }
}

/// Log records, request records and metric points stored.
fn telemetry_rows(db: &mut crate::harness::TelemetryDb) -> usize {
    db.value(
        "SELECT (SELECT count(*) FROM logs) + (SELECT count(*) FROM requests)
              + (SELECT count(*) FROM metric_points)",
        &[],
    )
    .as_u64()
    .unwrap() as usize
}

/// The counts an ingest answer reports: (accepted, rejected). OTLP answers
/// report only what was rejected.
fn ingest_counts(reply: &Reply) -> Result<(Option<usize>, usize), String> {
    let v: Value = serde_json::from_slice(&reply.body).map_err(|e| e.to_string())?;
    let n = |v: &Value| v.as_u64().map(|n| n as usize);
    if let Some(partial) = v.get("partialSuccess") {
        let rejected = ["rejectedLogRecords", "rejectedDataPoints"]
            .iter()
            .find_map(|k| partial.get(*k).and_then(n))
            .unwrap_or(0);
        return Ok((None, rejected));
    }
    let (Some(accepted), Some(rejected), Some(errors)) =
        (n(&v["accepted"]), n(&v["rejected"]), v["errors"].as_array())
    else {
        return Err(format!("not an ingest answer: {v}"));
    };
    if errors.len() != rejected.min(5) {
        return Err(format!("{rejected} rejected but {} reasons", errors.len()));
    }
    Ok((Some(accepted), rejected))
}

/// What stored telemetry must satisfy whatever was sent: valid levels,
/// bounded text, valid attribute JSON, no record over a day ahead.
fn check_stored_telemetry(data_dir: &std::path::Path) -> Vec<String> {
    let mut db = crate::harness::telemetry_db(data_dir);
    let shared = matches!(db, crate::harness::TelemetryDb::Shared(_));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let cut = "…[truncated]".len() as i64;
    // Bytes of text and infinity: each backend's own words (a subquery
    // needs its alias in PostgreSQL). PostgreSQL's JSON functions cannot
    // read a "\u0000" the attributes may hold: there the JSON is checked
    // here, below.
    let (bytes, is_object, keys, infinity) = if shared {
        (
            "octet_length({})",
            "TRUE",
            "0",
            "CAST('Infinity' AS double precision)",
        )
    } else {
        (
            "length(CAST({} AS BLOB))",
            "json_valid(attributes) AND json_type(attributes) = 'object'",
            "(SELECT count(*) FROM json_each(logs.attributes))",
            "9e999",
        )
    };
    let mut problems = Vec::new();
    if shared {
        let rows = db.rows(
            "SELECT attributes, 1 FROM logs UNION ALL SELECT attributes, 0 FROM metric_points",
            &[],
        );
        let (mut not_objects, mut too_many) = (0, 0);
        for r in rows {
            match serde_json::from_str::<Value>(r[0].as_str().unwrap()) {
                Ok(Value::Object(m)) => too_many += (r[1] == 1 && m.len() > 65) as usize,
                _ => not_objects += 1,
            }
        }
        for (n, what) in [
            (not_objects, "attributes not a JSON object"),
            (too_many, "more than 65 attributes"),
        ] {
            if n > 0 {
                problems.push(format!("{n} stored rows with {what}"));
            }
        }
    }
    let len = |column: &str| bytes.replace("{}", column);
    let checks = [
        ("log level out of range", "SELECT count(*) FROM logs WHERE level NOT BETWEEN 0 AND 5".to_string()),
        ("message over 32 KiB", format!("SELECT count(*) FROM logs WHERE {} > {}", len("message"), 32 * 1024 + cut)),
        ("module over 256 bytes", format!("SELECT count(*) FROM logs WHERE {} > {}", len("module"), 256 + cut)),
        ("runtime id over 128 bytes", format!("SELECT count(*) FROM (SELECT runtime_id FROM logs UNION ALL SELECT runtime_id FROM requests UNION ALL SELECT runtime_id FROM metric_points) AS r WHERE {} > 128", len("runtime_id"))),
        ("attributes not a JSON object", format!("SELECT count(*) FROM (SELECT attributes FROM logs UNION ALL SELECT attributes FROM metric_points) AS a WHERE NOT ({is_object})")),
        ("more than 65 attributes", format!("SELECT count(*) FROM logs WHERE {keys} > 65")),
        ("record over a day ahead", format!("SELECT count(*) FROM (SELECT ts FROM logs UNION ALL SELECT ts FROM requests UNION ALL SELECT ts FROM metric_points) AS t WHERE ts > {}", now + 86_400_000)),
        ("status out of range", "SELECT count(*) FROM requests WHERE status NOT BETWEEN 100 AND 599".to_string()),
        ("negative or non-finite duration", format!("SELECT count(*) FROM requests WHERE NOT (duration_ms >= 0 AND duration_ms < {infinity})")),
        ("service, name or method over 256 bytes", format!("SELECT count(*) FROM (SELECT service AS t FROM requests UNION ALL SELECT resource FROM requests UNION ALL SELECT method FROM requests UNION ALL SELECT name FROM metric_points UNION ALL SELECT unit FROM metric_points) AS x WHERE {} > {}", len("t"), 256 + cut)),
    ];
    problems.extend(checks.iter().filter_map(|(what, sql)| {
        let n = db.value(sql, &[]).as_i64().unwrap();
        (n > 0).then(|| format!("{n} stored rows with {what}"))
    }));
    problems
}

#[test]
fn bad_input_corpus_gets_errors_and_changes_nothing() {
    // Retention must not delete the old records some cases store while the
    // test counts rows.
    let conf = crate::harness::TestDir::new("bad-input-conf");
    let conf_file = conf.path.join("icp.toml");
    std::fs::write(&conf_file, "[telemetry]\nretention_interval = \"1h\"\n").unwrap();
    let server = TestServer::start(&[
        "--heartbeat-timeout",
        "10m",
        "--config",
        conf_file.to_str().unwrap(),
    ]);
    let mut admin = server.admin();
    let secret = server.secret("dev", None);
    let bridge = Bridge::new(&secret, Some("node-1"));
    let mut runtime = server.runtime_client();
    crate::harness::assert_ack(&bridge.full(&mut runtime));
    let index_html = admin.client.request("GET", "/", &[], b"").unwrap().body;
    assert!(!index_html.is_empty());

    // Ingest tokens: one for dev and one for prod by the CLI, one made and
    // revoked through the API.
    let cli_token = |env: &str| {
        server.cli_json(&["ingest-token", "create", "--env", env, "--json"])["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let made = admin.post(
        "/api/v1/observability/ingest-tokens",
        &json!({"name": "to revoke", "environment": "dev"}),
    );
    assert_eq!(made.status, 201);
    let made = made.json();
    let revoked = made["token"].as_str().unwrap().to_string();
    let path = format!(
        "/api/v1/observability/ingest-tokens/{}",
        made["id"].as_str().unwrap()
    );
    assert_eq!(admin.delete(&path).status, 204);
    let pipeline = pipeline_setup(&server, &mut admin, &mut runtime);
    let cred = Credentials {
        pipeline,
        runtime: bridge.token(),
        ingest: cli_token("dev"),
        ingest_prod: cli_token("prod"),
        revoked,
        admin: admin.token.clone(),
        mi: MiRuntime::new(
            &server.secret("dev", None),
            "dev",
            "order-service",
            "order-mi",
            "mi-node-1",
        ),
    };
    // Some telemetry to query: logs to search, request records and points.
    let ingest_auth = format!("Bearer {}", cred.ingest);
    for (path, body) in [
        (
            "/icp/logs",
            json!([{"log": "payment failed for order 1001", "level": "error"},
                             {"log": "order 1002 accepted", "level": "info", "runtimeId": bridge.runtime_id}]),
        ),
        (
            "/icp/metrics",
            json!([{"service": "orders", "statusCode": 200, "responseTimeMs": 3},
                                {"service": "orders", "statusCode": 503, "responseTimeMs": 30}]),
        ),
        (
            "/v1/metrics",
            otlp_metrics(json!({"name": "probe", "gauge": {"dataPoints": [{"asDouble": 1}]}})),
        ),
    ] {
        let r = runtime
            .request(
                "POST",
                path,
                &[
                    ("Authorization", &ingest_auth),
                    ("Content-Type", "application/json"),
                ],
                body.to_string().as_bytes(),
            )
            .unwrap();
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }

    let cases = corpus(&bridge, &cred);
    assert!(cases.len() >= 200, "only {} cases", cases.len());
    liveness_settled(&server, &bridge, &mut runtime);
    let before = dump(&server.data_dir);
    assert!(
        before
            .iter()
            .any(|r| r.starts_with("runtimes: ") && r.contains(&bridge.runtime_id)),
        "the dump covers the registered runtime"
    );

    let raw = RawClient::new(&server);
    let mut management = server.management_client();
    let mut failures = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut pipeline_statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut telemetry = crate::harness::telemetry_db(&server.data_dir);
    // The ingests that may write come first, each checked against the rows
    // it added; then everything else, which must write nothing to either
    // file (and whose queries then run over what the first phase stored).
    let (writing, refused): (Vec<&Case>, Vec<&Case>) = cases
        .iter()
        .partition(|c| matches!(c.expect, Expect::Ingested { .. } | Expect::Config));
    let mut telemetry_before = Vec::new();
    let mut between = Vec::new();
    for (phase, case) in writing
        .iter()
        .map(|c| (0, *c))
        .chain(refused.iter().map(|c| (1, *c)))
    {
        if phase == 1 && telemetry_before.is_empty() {
            let problems = check_stored_telemetry(&server.data_dir);
            assert!(problems.is_empty(), "stored telemetry: {problems:#?}");
            telemetry_before = dump_telemetry(&server.data_dir);
            between = dump(&server.data_dir);
        }
        let url = match case.listener {
            Listener::Runtime => &server.runtime_url,
            Listener::Management => &server.management_url,
        };
        let rows_before = telemetry_rows(&mut telemetry);
        let outcome = raw
            .send(url, &case.bytes)
            .and_then(|reply| check(&reply, case.expect, &index_html).map(|_| reply))
            .and_then(|reply| top_level_message(&reply, case.listener).map(|_| reply));
        let outcome = outcome.and_then(|reply| {
            let Expect::Ingested { records, accepted } = case.expect else {
                return Ok(reply);
            };
            let added = telemetry_rows(&mut telemetry) - rows_before;
            let (reported, rejected) = ingest_counts(&reply)?;
            if reported.is_some_and(|a| a != added) {
                return Err(format!("reported {reported:?} accepted, stored {added}"));
            }
            if added + rejected != records {
                return Err(format!(
                    "{added} stored + {rejected} rejected of {records} records"
                ));
            }
            if accepted.is_some_and(|a| a != added) {
                return Err(format!(
                    "{added} accepted, expected {accepted:?}: {}",
                    String::from_utf8_lossy(&reply.body)
                ));
            }
            Ok(reply)
        });
        if let Ok(reply) = &outcome {
            *statuses.entry(reply.status).or_default() += 1;
            if case.name.starts_with("pipeline/") {
                *pipeline_statuses.entry(reply.status).or_default() += 1;
            }
        }
        if let Err(e) = outcome {
            failures.push(format!("{}: {e}", case.name));
        }
        for (what, client) in [("runtime", &mut runtime), ("management", &mut management)] {
            let alive = client
                .request("GET", "/healthz", &[], b"")
                .is_ok_and(|r| r.status == 200);
            assert!(
                alive,
                "{what} /healthz failed after case {}; failures so far: {failures:#?}",
                case.name
            );
        }
    }
    eprintln!(
        "bad-input corpus: {} cases ({} ingests and configuration fetches that may write; {} GraphQL, ICP login and push-channel cases), statuses {statuses:?}",
        cases.len(),
        writing.len(),
        cases
            .iter()
            .filter(|c| {
                ["management/graphql/", "management/auth/", "management/runtime-status/"]
                    .iter()
                    .any(|p| c.name.starts_with(p))
            })
            .count()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // This delta heartbeat also shows that the runtime listener still
    // serves a runtime.
    liveness_settled(&server, &bridge, &mut runtime);
    let after = dump(&server.data_dir);
    // The writing phase: only the configuration fetches it made.
    let gone: Vec<&String> = before.iter().filter(|r| !between.contains(r)).collect();
    let new: Vec<&String> = between.iter().filter(|r| !before.contains(r)).collect();
    assert!(
        gone.iter()
            .chain(&new)
            .all(|r| r.starts_with("config_fetches: ")),
        "the writing phase changed more than config_fetches:\nremoved: {gone:#?}\nadded: {new:#?}"
    );
    let fetchers = new.len();
    // Everything after: nothing at all.
    let gone: Vec<&String> = between.iter().filter(|r| !after.contains(r)).collect();
    let new: Vec<&String> = after.iter().filter(|r| !between.contains(r)).collect();
    assert!(
        gone.is_empty() && new.is_empty(),
        "the database changed:\nremoved: {gone:#?}\nadded: {new:#?}"
    );
    eprintln!(
        "bad-input corpus: issue 8 (pipeline/) statuses {pipeline_statuses:?}; {fetchers} configuration fetch records written or updated"
    );
    let telemetry_after = dump_telemetry(&server.data_dir);
    assert!(
        telemetry_before == telemetry_after,
        "telemetry.db changed during the cases that must not write ({} rows before, {} after)",
        telemetry_before.len(),
        telemetry_after.len()
    );

    let log = server.log_text();
    assert!(!log.contains("panicked"), "a worker panicked:\n{log}");
    let (_, material) = secret.split_once('.').unwrap();
    for (what, value) in [
        ("secret material", material),
        ("admin token", admin.token.as_str()),
        ("password", TEST_PASSWORD),
        ("ingest token", cred.ingest.as_str()),
        ("revoked ingest token", cred.revoked.as_str()),
    ] {
        assert!(!log.contains(value), "the {what} is in the server log");
    }
    // The server is still fully usable.
    assert_eq!(admin.get("/api/v1/auth/me").status, 200);
}
