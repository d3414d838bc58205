//! A fake MI Management API for the whole simulated MI fleet
//! (`--mi-mgmt`), so that a control plane can manage the nodes the way it
//! manages MI: by calling `https://<runtimeHostname>:<runtimePort>/management/...`.
//!
//! One HTTPS listener on port P serves every node. Each node reports a
//! distinct loopback address (`mi::loopback`) as its `runtimeHostname` and
//! P as its `runtimePort`; the listener is bound to 0.0.0.0:P, so a call to
//! 127.A.B.C:P arrives here and the connection's local (destination)
//! address says which node was called. A connection to any address that is
//! not a node's (another interface included) is closed unanswered, as if
//! no MI listened there.
//!
//! HTTP/1.1, one request per connection (`Connection: close`), TLS with a
//! self-signed certificate made by rcgen at start (as MI serves its own
//! self-signed `wso2carbon` one). A fixed pool of workers takes accepted
//! connections from a bounded queue; when the queue is full a connection
//! is closed at once and counted.
//!
//! Authentication is MI's `JWTTokenSecurityHandler` for ICP tokens: HS256
//! (HS384/HS512 only with key material of at least 48/64 bytes) over the
//! node's key material, header `kid` equal to its key id, `exp` present and
//! `now - 60 s < exp`; nothing else is checked. Failures are 401 with an
//! empty body (a missing header adds `WWW_Authenticate`). Only
//! `GET /management` needs no token. Login tokens are not simulated.
//!
//! Served, as mi.py does (statuses and texts from MI.md's tables):
//! `POST /management/{proxy-services|endpoints|inbound-endpoints|message-processors|tasks}`
//! with `status` active/inactive (tasks also `trigger`), `POST` with
//! `trace`/`statistics` enable/disable on proxy services, endpoints,
//! inbound endpoints, APIs, sequences and (sequence) templates, and
//! `GET`/`PATCH`/`DELETE /management/logging`. Other reads MI has
//! (artifact details, users, log files, registry) answer 501 with an
//! `Error` saying the fleet does not simulate them. Every call is counted
//! by method, path and status for the report.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::{json, Value};

use crate::mi::{self, Field, Fleet, Kind, Node};

/// Connections accepted but not yet taken by a worker.
const QUEUE: usize = 256;

/// Socket read and write timeout: a stalled client frees its worker.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Bounds of a request: head and body.
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 1024 * 1024;

/// `icp_config.jwt_clock_skew_tolerance_ms` by default, in seconds.
const CLOCK_SKEW_S: f64 = 60.0;

/// MI's log levels.
const LOG_LEVELS: &[&str] = &["OFF", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// What the server counted.
#[derive(Default)]
pub struct Stats {
    /// Calls by (method, path) and status.
    calls: Mutex<BTreeMap<(String, String), BTreeMap<u16, u64>>>,
    /// Connections closed because every worker was busy and the queue full.
    busy: AtomicU64,
    /// Connections to an address that is no node's.
    strays: AtomicU64,
    /// Connections that failed before an answer (TLS, parsing, timeouts).
    broken: AtomicU64,
}

impl Stats {
    fn count(&self, method: &str, path: &str, status: u16) {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        *calls
            .entry((method.to_string(), path.to_string()))
            .or_default()
            .entry(status)
            .or_default() += 1;
    }
}

/// Binds 0.0.0.0:`port` (0: a free port). All of 127/8 reaches it; a
/// connection to any other address is closed unanswered (see `work`).
pub fn bind(port: u16) -> Result<TcpListener, String> {
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
        .map_err(|e| format!("--mi-mgmt: cannot bind 0.0.0.0:{port}: {e}"))
}

/// The running server.
pub struct MgmtServer {
    port: u16,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl MgmtServer {
    /// Starts the accept thread and `workers` workers on a listener from [`bind`].
    pub fn start(
        listener: TcpListener,
        fleet: Arc<Fleet>,
        workers: usize,
    ) -> Result<MgmtServer, String> {
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let config = tls_config()?;
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = sync_channel::<TcpStream>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for _ in 0..workers.max(1) {
            let (rx, config, fleet, stats) =
                (rx.clone(), config.clone(), fleet.clone(), stats.clone());
            threads.push(std::thread::spawn(move || {
                work(&rx, &config, &fleet, &stats)
            }));
        }
        let (accept_stats, accept_stop) = (stats.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            for conn in listener.incoming() {
                if accept_stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                match tx.try_send(conn) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        accept_stats.busy.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Disconnected(_)) => break,
                }
            }
            // Dropping the sender ends the workers once the queue is empty.
        }));
        Ok(MgmtServer {
            port,
            stats,
            stop,
            threads,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops accepting, lets the workers finish, and prints what was called.
    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept thread with a connection it drops uncounted.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        for t in self.threads {
            let _ = t.join();
        }
        let calls = self.stats.calls.lock().unwrap_or_else(|p| p.into_inner());
        let total: u64 = calls.values().flat_map(|s| s.values()).sum();
        println!(
            "mi mgmt       port {}: {total} calls answered; {} connections refused (workers busy), {} to no node's address, {} broken before an answer",
            self.port,
            self.stats.busy.load(Ordering::Relaxed),
            self.stats.strays.load(Ordering::Relaxed),
            self.stats.broken.load(Ordering::Relaxed)
        );
        for ((method, path), statuses) in calls.iter() {
            let by_status: Vec<String> =
                statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
            println!("mi mgmt         {method} {path}  {}", by_status.join(", "));
        }
    }
}

/// A self-signed certificate for localhost and the loopback addresses.
fn tls_config() -> Result<Arc<ServerConfig>, String> {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .map_err(|e| format!("--mi-mgmt: certificate: {e}"))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let chain = vec![CertificateDer::from(cert.cert.der().to_vec())];
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("--mi-mgmt: TLS: {e}"))?;
    Ok(Arc::new(config))
}

/// A worker: takes connections until the accept thread is gone.
fn work(rx: &Mutex<Receiver<TcpStream>>, config: &Arc<ServerConfig>, fleet: &Fleet, stats: &Stats) {
    loop {
        let conn = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(conn) = conn else { return };
        let node = match conn.local_addr() {
            Ok(SocketAddr::V4(a)) => fleet.node_at(*a.ip()),
            _ => None,
        };
        let Some(node) = node else {
            stats.strays.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if serve(conn, config, node, fleet, stats).is_err() {
            stats.broken.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One request of a parsed connection.
pub struct Call {
    pub method: String,
    /// Percent-decoded path, without the query.
    pub path: String,
    /// Percent-decoded query parameters.
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

impl Call {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: status, JSON body (none: empty) and whether to challenge.
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    challenge: bool,
}

fn ok(body: Value) -> Reply {
    Reply {
        status: 200,
        body: Some(body),
        challenge: false,
    }
}

/// MI's error shape, `{"Error": text}`.
fn err(status: u16, text: impl Into<String>) -> Reply {
    Reply {
        status,
        body: Some(json!({ "Error": text.into() })),
        challenge: false,
    }
}

fn empty(status: u16) -> Reply {
    Reply {
        status,
        body: None,
        challenge: false,
    }
}

/// Reads one request off a TLS connection, answers it, closes.
fn serve(
    conn: TcpStream,
    config: &Arc<ServerConfig>,
    node: &Mutex<Node>,
    fleet: &Fleet,
    stats: &Stats,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let tls = ServerConnection::new(config.clone()).map_err(std::io::Error::other)?;
    let mut stream = StreamOwned::new(tls, conn);
    let call = read_call(&mut stream)?;
    let reply = {
        let mut node = node.lock().unwrap_or_else(|p| p.into_inner());
        answer(
            &call,
            &mut node,
            fleet,
            chrono::Utc::now().timestamp_micros() as f64 / 1e6,
        )
    };
    stats.count(&call.method, &call.path, reply.status);
    let body = reply
        .body
        .as_ref()
        .map(|b| b.to_string().into_bytes())
        .unwrap_or_default();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reason(reply.status),
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    if reply.challenge {
        head.push_str("WWW_Authenticate: Basic realm=\"WSO2 EI\"\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&body)?;
    stream.conn.send_close_notify();
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "",
    }
}

fn bad_request(m: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string())
}

/// The head (parsed with httparse) and a `Content-Length` body.
fn read_call(stream: &mut impl Read) -> std::io::Result<Call> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_len = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(bad_request("request head too large"));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(bad_request("connection closed before a request"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&buf[..head_len])
        .map_err(|e| bad_request(&e.to_string()))?;
    let method = req.method.unwrap_or("").to_string();
    let target = req.path.unwrap_or("");
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    let length: usize = header("content-length")
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| bad_request("bad Content-Length"))
        })
        .transpose()?
        .unwrap_or(0);
    if length > MAX_BODY {
        return Err(bad_request("body too large"));
    }
    let authorization = header("authorization");
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let call = Call {
        method,
        path: percent_decode(raw_path),
        query: raw_query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect(),
        authorization,
        body: Vec::new(),
    };
    let mut body = buf[head_len..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(bad_request("connection closed inside the body"));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Call { body, ..call })
}

/// `%XX` and `+` (in queries, a space; harmless in paths MI would reject).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Answers one call for `node` at `now_s` (Unix seconds): authentication,
/// then the route.
pub fn answer(call: &Call, node: &mut Node, fleet: &Fleet, now_s: f64) -> Reply {
    let path = call.path.trim_end_matches('/');
    if path == "/management" && call.method == "GET" {
        return ok(json!({"WSO2 Micro Integrator": mi::MI_VERSION, "ManagementApi": "Active"}));
    }
    match call.authorization.as_deref() {
        None => {
            return Reply {
                challenge: true,
                ..empty(401)
            }
        }
        Some(h) => {
            let token = h.strip_prefix("Bearer ").map(str::trim);
            if !token.is_some_and(|t| icp_token_ok(t, node, now_s)) {
                return empty(401);
            }
        }
    }
    let Some(rest) = path.strip_prefix("/management/") else {
        return empty(404);
    };
    let segments: Vec<&str> = rest.split('/').collect();
    if let [segment] = segments[..] {
        if let Some(kind) = Kind::from_segment(segment) {
            return match call.method.as_str() {
                "POST" => artifact_post(kind, &call.body, node, fleet),
                "GET" => not_simulated(),
                m => err(405, format!("Method {m} is not supported on {path}")),
            };
        }
        if segment == "logging" {
            return logging(call, node);
        }
    }
    match segments.first().copied() {
        Some(
            "message-stores" | "local-entries" | "data-services" | "data-sources" | "connectors"
            | "applications" | "registry-resources" | "users" | "logs" | "login" | "logout",
        ) => not_simulated(),
        _ => empty(404),
    }
}

fn not_simulated() -> Reply {
    err(501, "not simulated by examples/fleet")
}

/// MI's check of an ICP token (`JWTTokenSecurityHandler`, ICP branch):
/// the HMAC over the node's key material, the kid, and exp with 60 s of
/// skew; iss, aud, scope, nbf and iat are not looked at.
fn icp_token_ok(token: &str, node: &Node, now_s: f64) -> bool {
    let mut parts = token.split('.');
    let (Some(h64), Some(c64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let decode =
        |p: &str| -> Option<Value> { serde_json::from_slice(&B64URL.decode(p).ok()?).ok() };
    let (Some(header), Some(claims), Ok(signature)) =
        (decode(h64), decode(c64), B64URL.decode(s64))
    else {
        return false;
    };
    let key = node.material.as_bytes();
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("HS256") => ring::hmac::HMAC_SHA256,
        Some("HS384") if key.len() >= 48 => ring::hmac::HMAC_SHA384,
        Some("HS512") if key.len() >= 64 => ring::hmac::HMAC_SHA512,
        _ => return false,
    };
    let signing_input = &token[..h64.len() + 1 + c64.len()];
    let key = ring::hmac::Key::new(alg, key);
    if ring::hmac::verify(&key, signing_input.as_bytes(), &signature).is_err() {
        return false;
    }
    let kid = header.get("kid").and_then(Value::as_str).unwrap_or("");
    if kid != node.key_id {
        return false;
    }
    claims
        .get("exp")
        .and_then(Value::as_f64)
        .is_some_and(|exp| now_s - CLOCK_SKEW_S < exp)
}

/// `POST /management/<kind>`: status, trace or statistics, with MI's
/// answers (mi.py's `artifact_post`).
fn artifact_post(kind: Kind, body: &[u8], node: &mut Node, fleet: &Fleet) -> Reply {
    if String::from_utf8_lossy(body).trim().is_empty() {
        return ok(json!({"Error": "JSON payload is missing"}));
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return ok(json!({"Error": "Error when parsing JSON payload"}));
    };
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        return err(400, "Unsupported operation");
    };
    if kind == Kind::Processor && !body.contains_key("status") {
        return ok(json!({"Error": "Missing parameters in payload"}));
    }
    if kind == Kind::Template && body.get("type").and_then(Value::as_str) != Some("sequence") {
        return err(400, "Unsupported operation");
    }
    let text = |v: &Value| {
        v.as_str()
            .map_or_else(|| v.to_string(), str::to_string)
            .to_lowercase()
    };
    let index = fleet.layout.find(kind, name);
    if let (Some(status), true) = (body.get("status"), kind.has_status()) {
        let Some(index) = index else {
            return match kind {
                Kind::Task | Kind::Inbound => err(400, not_found(kind, name)),
                Kind::Proxy => err(404, "Proxy service could not be found"),
                Kind::Endpoint => err(404, "Endpoint does not exist"),
                _ => err(404, "Message processor does not exist"),
            };
        };
        let (on, off) = match kind {
            Kind::Proxy => (
                format!("Proxy service {name} started successfully"),
                format!("Proxy service {name} stopped successfully"),
            ),
            Kind::Endpoint => (
                format!("{name} is switched On"),
                format!("{name} is switched Off"),
            ),
            Kind::Task => (
                format!("Task {name} activated"),
                format!("Task {name} deactivated"),
            ),
            _ => (
                format!("{name} : is activated"),
                format!("{name} : is deactivated"),
            ),
        };
        return match text(status).as_str() {
            "active" => {
                node.set(kind, index, Field::State, true);
                ok(json!({ "Message": on }))
            }
            "inactive" => {
                node.set(kind, index, Field::State, false);
                ok(json!({ "Message": off }))
            }
            "trigger" if kind == Kind::Task => {
                ok(json!({ "Message": format!("Task {name} triggered") }))
            }
            _ => err(400, "Provided state is not valid"),
        };
    }
    if !kind.has_aspects() {
        return err(400, "Unsupported operation");
    }
    let Some(index) = index else {
        return err(400, not_found(kind, name));
    };
    for (member, field, word) in [
        ("trace", Field::Tracing, "tracing"),
        ("statistics", Field::Statistics, "statistics"),
    ] {
        if let Some(v) = body.get(member) {
            let value = match text(v).as_str() {
                "enable" => true,
                "disable" => false,
                _ => return err(400, format!("Invalid value for state {member}")),
            };
            node.set(kind, index, field, value);
            let verb = if value { "Enabled" } else { "Disabled" };
            return ok(json!({ "message": format!("{verb} {word} for ('{name}')") }));
        }
    }
    err(400, "Invalid payload. Required parameter is missing.")
}

fn not_found(kind: Kind, name: &str) -> String {
    let what = match kind {
        Kind::Api => "API",
        Kind::Proxy => "proxy",
        Kind::Endpoint => "endpoint",
        Kind::Inbound => "inbound endpoint",
        Kind::Sequence => "sequence",
        Kind::Task => "task",
        Kind::Template => "sequence template",
        Kind::Processor => "message processor",
    };
    format!("Specified {what} ('{name}') not found")
}

/// `/management/logging`: list, read one, update a level, add, delete.
/// Loggers are not in the heartbeat, so nothing here changes the hash.
fn logging(call: &Call, node: &mut Node) -> Reply {
    let data = |(n, c, l): &(String, String, String)| json!({"loggerName": n, "componentName": c, "level": l});
    let position =
        |loggers: &[(String, String, String)], name: &str| loggers.iter().position(|l| l.0 == name);
    match call.method.as_str() {
        "GET" => match call.param("loggerName") {
            Some(name) => match position(&node.loggers, name) {
                Some(i) => ok(data(&node.loggers[i])),
                None => err(400, format!("Logger name ('{name}') not found")),
            },
            None => {
                let key = call.param("searchKey").unwrap_or("").trim().to_lowercase();
                let list: Vec<Value> = node
                    .loggers
                    .iter()
                    .filter(|l| key.is_empty() || l.0.to_lowercase().contains(&key))
                    .map(data)
                    .collect();
                ok(json!({"count": list.len(), "list": list}))
            }
        },
        "PATCH" => {
            let body: Value = serde_json::from_slice(&call.body).unwrap_or(Value::Null);
            let Some(level) = body.get("loggingLevel") else {
                return err(400, "Log level is missing");
            };
            let level = level
                .as_str()
                .map_or_else(|| level.to_string(), str::to_string);
            if !LOG_LEVELS.contains(&level.to_uppercase().as_str()) {
                return err(400, format!("Invalid log level {level}"));
            }
            let Some(name) = body.get("loggerName") else {
                return err(400, "Logger name is missing");
            };
            let name = name
                .as_str()
                .map_or_else(|| name.to_string(), str::to_string);
            match body.get("loggerClass") {
                Some(class) if name != "rootLogger" => {
                    let class = class
                        .as_str()
                        .map_or_else(|| class.to_string(), str::to_string);
                    if position(&node.loggers, &name).is_some() {
                        return err(
                            400,
                            format!("Specified logger name ('{name}') already exists, try updating the level instead"),
                        );
                    }
                    node.loggers
                        .push((name.clone(), class.clone(), level.clone()));
                    ok(
                        json!({"message": format!("Successfully added logger for ('{name}') with level {level} for class {class}")}),
                    )
                }
                _ => match position(&node.loggers, &name) {
                    Some(i) => {
                        node.loggers[i].2 = level.clone();
                        ok(
                            json!({"message": format!("Successfully added logger for ('{name}') with level {level}")}),
                        )
                    }
                    None => err(400, format!("Specified logger ('{name}') not found")),
                },
            }
        }
        "DELETE" => {
            let name = call.param("loggerName").unwrap_or("").trim().to_string();
            if name.is_empty() {
                return err(400, "Logger name is missing for delete action");
            }
            if name == "rootLogger" {
                return err(403, "Root logger cannot be deleted");
            }
            match position(&node.loggers, &name) {
                Some(i) => {
                    node.loggers.remove(i);
                    ok(json!({"message": format!("Successfully deleted logger for ('{name}')")}))
                }
                None => err(400, format!("Specified logger name ('{name}') not found")),
            }
        }
        m => err(
            405,
            format!("Method {m} is not supported on /management/logging"),
        ),
    }
}

/// `Bearer <token>` as the control plane mints it for MI's Management API
/// (mi-design.md: header typ and kid; nbf and sub; 60 s), valid until `exp`.
pub fn icp_bearer(kid: &str, material: &str, now: i64, exp: i64) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid}).to_string();
    let claims = json!({"iss": "icp-runtime-jwt-issuer", "sub": "icpd", "aud": "icp-server",
        "scope": "runtime_agent", "iat": now, "nbf": now, "exp": exp})
    .to_string();
    let input = format!("{}.{}", B64URL.encode(header), B64URL.encode(claims));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, material.as_bytes());
    let sig = ring::hmac::sign(&key, input.as_bytes());
    format!("Bearer {input}.{}", B64URL.encode(sig.as_ref()))
}

/// The fleet's own probe of the fake Management API (`--mi-mgmt-probe`):
/// calls node 0 as a control plane would, with a token minted the way the
/// control plane mints it, and checks MI's answers, including that a state
/// change moves the node's hash. Returns (what, passed, detail) per check.
pub fn probe(fleet: &Fleet, port: u16) -> Vec<(String, bool, String)> {
    use icpd::http::client::{Client, ClientTls};
    let mut checks = Vec::new();
    let Some(node) = fleet.nodes.first() else {
        return checks;
    };
    let (host, key_id, material, before) = {
        let mut n = node.lock().unwrap_or_else(|p| p.into_inner());
        (
            n.host,
            n.key_id.clone(),
            n.material.clone(),
            n.hash(&fleet.layout),
        )
    };
    let url = format!("https://{host}:{port}");
    let now = chrono::Utc::now().timestamp();
    let icp_token = |kid: &str, material: &str, exp: i64| icp_bearer(kid, material, now, exp);
    let good = icp_token(&key_id, &material, now + 60);
    let call = |method: &str, path: &str, bearer: Option<&str>, body: Option<Value>| {
        let mut c = Client::new(&url, ClientTls::Insecure).map_err(|e| e.to_string())?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
        ];
        if let Some(b) = bearer {
            headers.push(("Authorization", b));
        }
        c.request(method, path, &headers, body.as_bytes())
            .map(|r| (r.status, r.json(), r.body.len()))
            .map_err(|e| e.to_string())
    };
    let mut check = |what: &str,
                     got: Result<(u16, Value, usize), String>,
                     want: &dyn Fn(u16, &Value, usize) -> bool| {
        let (passed, detail) = match &got {
            Ok((s, v, n)) => (
                want(*s, v, *n),
                format!("HTTP {s} {v}{}", if *n == 0 { " (empty body)" } else { "" }),
            ),
            Err(e) => (false, e.clone()),
        };
        checks.push((format!("{what} ({url})"), passed, detail));
    };
    check(
        "GET /management answers without a token",
        call("GET", "/management", None, None),
        &|s, v, _| s == 200 && v["ManagementApi"] == "Active",
    );
    check(
        "no token: 401, empty body",
        call("GET", "/management/logging", None, None),
        &|s, _, n| s == 401 && n == 0,
    );
    let other_kid = icp_token("ffffffff", &material, now + 60);
    check(
        "a token with another kid: 401",
        call("GET", "/management/logging", Some(&other_kid), None),
        &|s, _, n| s == 401 && n == 0,
    );
    let wrong_key = icp_token(&key_id, &"x".repeat(44), now + 60);
    check(
        "a token signed with another key: 401",
        call("GET", "/management/logging", Some(&wrong_key), None),
        &|s, _, n| s == 401 && n == 0,
    );
    let expired = icp_token(&key_id, &material, now - 61);
    check(
        "a token expired more than 60 s ago: 401",
        call("GET", "/management/logging", Some(&expired), None),
        &|s, _, n| s == 401 && n == 0,
    );
    check(
        "GET /management/logging lists the loggers",
        call("GET", "/management/logging", Some(&good), None),
        &|s, v, _| s == 200 && v["count"] == 3,
    );
    check(
        "PATCH /management/logging sets a level",
        call(
            "PATCH",
            "/management/logging",
            Some(&good),
            Some(json!({"loggerName": "org-apache-synapse", "loggingLevel": "DEBUG"})),
        ),
        &|s, v, _| {
            s == 200
                && v["message"]
                    == "Successfully added logger for ('org-apache-synapse') with level DEBUG"
        },
    );
    check(
        "an unknown proxy service: 404",
        call(
            "POST",
            "/management/proxy-services",
            Some(&good),
            Some(json!({"name": "NoSuchProxy", "status": "inactive"})),
        ),
        &|s, v, _| s == 404 && v["Error"] == "Proxy service could not be found",
    );
    check(
        "POST /management/endpoints trace enable",
        call(
            "POST",
            "/management/endpoints",
            Some(&good),
            Some(json!({"name": "StockQuoteEP", "trace": "enable"})),
        ),
        &|s, v, _| s == 200 && v["message"] == "Enabled tracing for ('StockQuoteEP')",
    );
    check(
        "POST /management/proxy-services status inactive",
        call(
            "POST",
            "/management/proxy-services",
            Some(&good),
            Some(json!({"name": "LegacyEchoProxy", "status": "inactive"})),
        ),
        &|s, v, _| s == 200 && v["Message"] == "Proxy service LegacyEchoProxy stopped successfully",
    );
    let (after, state) = {
        let mut n = node.lock().unwrap_or_else(|p| p.into_inner());
        let i = fleet
            .layout
            .find(Kind::Proxy, "LegacyEchoProxy")
            .unwrap_or(0);
        (n.hash(&fleet.layout), n.flags(Kind::Proxy, i).enabled)
    };
    checks.push((
        "the state change changed the node's state and runtimeHash".into(),
        !state && after != before,
        format!("hash {before} -> {after}"),
    ));
    checks
}
