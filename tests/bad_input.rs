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

use crate::harness::{Bridge, TestServer, TEST_PASSWORD};

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
            "object" => *t != "object",
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

/// Builds the corpus. `runtime_token` and `admin_token` are valid, so the
/// body and path cases get past authentication.
fn corpus(bridge: &Bridge, runtime_token: &str, admin_token: &str) -> Vec<Case> {
    use Expect::*;
    use Listener::*;
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
    for (name, auth) in tokens {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
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
        ("assignments-create", "POST", "/api/v1/role-assignments", json!({"role": "Viewer", "user": "root"}), &[("role", "string"), ("user", "string"), ("scope", "object")]),
        ("tokens-create", "POST", "/api/v1/auth/tokens", json!({"name": "t1"}), &[("name", "string"), ("expiresIn", "string")]),
        ("environments-create", "POST", "/api/v1/environments", json!({"name": "e1"}), &[("name", "string"), ("handle", "string"), ("critical", "bool"), ("description", "string")]),
        ("projects-create", "POST", "/api/v1/projects", json!({"name": "p1"}), &[("name", "string"), ("handle", "string"), ("description", "string")]),
        ("integrations-create", "POST", "/api/v1/projects/order-service/integrations", json!({"name": "i1", "runtimeType": "BI"}), &[("name", "string"), ("handle", "string"), ("runtimeType", "string"), ("description", "string")]),
        ("project-environments", "PUT", "/api/v1/projects/order-service/environments", json!({"environments": ["dev"]}), &[("environments", "string-list")]),
        ("listener-state", "PUT", "/api/v1/projects/order-service/integrations/order-create/environments/dev/listeners/listener_1", json!({"state": "disabled"}), &[("state", "string"), ("runtimeIds", "string-list")]),
        ("logger-level", "PUT", "/api/v1/projects/order-service/integrations/order-create/environments/dev/loggers/acme%2Forders", json!({"level": "DEBUG"}), &[("level", "string"), ("runtimeIds", "string-list")]),
        ("change-password", "POST", "/api/v1/auth/change-password", json!({"currentPassword": "x", "newPassword": "y"}), &[("currentPassword", "string"), ("newPassword", "string")]),
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
    c.cases
}

/// Every table's rows, ordered, as text: a logical dump. `audit_log` is
/// left out because every unsafe management request writes an entry,
/// refused ones included (the router audits "whatever the handler did",
/// see `src/http/api/mod.rs`): the corpus legitimately adds rows there.
/// Last-seen columns are left out because the liveness loop flushes
/// heartbeat times on its own schedule and authentication may record when
/// an API token was last used; neither is state a bad request could
/// corrupt.
fn dump(data_dir: &std::path::Path) -> Vec<String> {
    const EXCLUDED_TABLES: &[&str] = &["audit_log"];
    const EXCLUDED_COLUMNS: &[(&str, &str)] = &[
        ("runtimes", "last_heartbeat"),
        ("runtimes", "last_full_heartbeat"),
        ("api_tokens", "last_used_at"),
    ];
    let db = rusqlite::Connection::open_with_flags(
        data_dir.join("icp.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
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
        if kind != "table" || EXCLUDED_TABLES.contains(&table.as_str()) {
            continue;
        }
        let columns: Vec<String> = db
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .filter(|c: &String| !EXCLUDED_COLUMNS.contains(&(table.as_str(), c.as_str())))
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
        Expect::Console => match reply.status {
            200 if reply.body == index_html => Ok(()),
            200 => Err("200 with something other than the console's index.html".into()),
            400..=499 => is_json_error(),
            s => Err(format!("status {s}, expected the console or a 4xx")),
        },
    }
}

#[test]
fn bad_input_corpus_gets_errors_and_changes_nothing() {
    let server = TestServer::start(&["--heartbeat-timeout", "10m"]);
    let mut admin = server.admin();
    let secret = server.secret("dev", None);
    let bridge = Bridge::new(&secret, Some("node-1"));
    let mut runtime = server.runtime_client();
    crate::harness::assert_ack(&bridge.full(&mut runtime));
    let index_html = admin.client.request("GET", "/", &[], b"").unwrap().body;
    assert!(!index_html.is_empty());

    let cases = corpus(&bridge, &bridge.token(), &admin.token);
    assert!(cases.len() >= 200, "only {} cases", cases.len());
    // Let a liveness flush after the registration land before the dump.
    std::thread::sleep(Duration::from_millis(1500));
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
    for case in &cases {
        let url = match case.listener {
            Listener::Runtime => &server.runtime_url,
            Listener::Management => &server.management_url,
        };
        let outcome = raw
            .send(url, &case.bytes)
            .and_then(|reply| check(&reply, case.expect, &index_html).map(|_| reply));
        if let Ok(reply) = &outcome {
            *statuses.entry(reply.status).or_default() += 1;
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
        "bad-input corpus: {} cases, statuses {statuses:?}",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    std::thread::sleep(Duration::from_millis(1500));
    let after = dump(&server.data_dir);
    let gone: Vec<&String> = before.iter().filter(|r| !after.contains(r)).collect();
    let new: Vec<&String> = after.iter().filter(|r| !before.contains(r)).collect();
    assert!(
        gone.is_empty() && new.is_empty(),
        "the database changed:\nremoved: {gone:#?}\nadded: {new:#?}"
    );

    let log = server.log_text();
    assert!(!log.contains("panicked"), "a worker panicked:\n{log}");
    let (_, material) = secret.split_once('.').unwrap();
    for (what, value) in [
        ("secret material", material),
        ("admin token", admin.token.as_str()),
        ("password", TEST_PASSWORD),
    ] {
        assert!(!log.contains(value), "the {what} is in the server log");
    }
    // The server is still fully usable.
    assert_eq!(admin.get("/api/v1/auth/me").status, 200);
    crate::harness::assert_ack(&bridge.delta(&mut runtime));
}
