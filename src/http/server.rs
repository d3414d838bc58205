//! The HTTP/1.1 server: an accept thread, an epoll poller and a bounded
//! worker pool (see `mod.rs` for why), plus what a worker does with a
//! readable connection: read, frame, run the handler under `catch_unwind`,
//! write, and park the connection again or close it. A streamed response
//! (Server-Sent Events) is handed to the streams thread after its head.

use std::fmt::Write as _;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::conn::{ActiveGuard, Conn, PerIp};
use super::message::{reason, take_stream, Handler, Request, Response};
use super::parse::{parse, ParseLimits, Parsed, Rejection};
use super::poller::Poller;
use super::pool::Pool;
use super::stream::Streams;

/// Resource limits and timeouts of one server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Worker threads that read, parse, run handlers and write.
    pub workers: usize,
    /// From accept until the TLS handshake must be complete.
    pub handshake_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// From the first byte of a request to its last.
    pub request_timeout: Duration,
    /// How long writing one response may wait for the peer to read.
    pub write_timeout: Duration,
    /// Request line plus headers.
    pub max_head_bytes: usize,
    /// Number of header fields.
    pub max_headers: usize,
    /// Decoded body size.
    pub max_body_bytes: usize,
    /// Open connections; more are refused at accept.
    pub max_connections: usize,
    /// Open connections from one peer address (0: no such limit); more
    /// from that address are refused at accept.
    pub max_connections_per_ip: usize,
    /// Open event streams; more are answered 503.
    pub max_streams: usize,
    /// An event stream with nothing to send gets a keep-alive comment this often.
    pub stream_keep_alive: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            workers: 8,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 4 * 1024 * 1024,
            max_connections: 10_000,
            max_connections_per_ip: 4_096,
            max_streams: 1_000,
            stream_keep_alive: Duration::from_secs(15),
        }
    }
}

/// Slack over head + body for chunk-size lines, so a legal chunked body at
/// the limit still fits in the read buffer.
const CHUNK_SLACK: usize = 64 * 1024;
/// How often the accept thread wakes to notice shutdown.
const ACCEPT_POLL_MS: i32 = 100;
/// The listen queue: connections the kernel has completed that the accept
/// thread has not taken yet. std binds with 128, which a burst of connects
/// fills in a few milliseconds whenever the accept thread is off the CPU;
/// past it the kernel drops SYNs, and each dropped client waits for its
/// retransmission (1 s, then 3 s, 7 s), legitimate newcomers included
/// (examples/hostile). The kernel caps it at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: i32 = 4096;
/// Minimum gap between warnings about refused connections.
const REFUSAL_WARN_EVERY: Duration = Duration::from_secs(60);

/// State shared by the accept thread, the poller and the workers.
struct Shared {
    name: String,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Arc<dyn Handler>,
    active: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    /// Graceful phase: no accepting, no dispatching, close after responses.
    stopping: AtomicBool,
    /// Hard stop: poller and workers exit.
    stopped: AtomicBool,
    next_id: AtomicU64,
    last_refusal_warn: Mutex<Option<Instant>>,
    /// Accepted and refused connections, for `/metrics`.
    counts: Arc<crate::metrics::Connections>,
    per_ip: PerIp,
    poller: Poller,
    pool: Pool,
    streams: Streams,
}

/// A running server. Dropping it stops it without a grace period.
pub struct Server {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    threads: Vec<JoinHandle<()>>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts serving `listener` (TLS when `tls` is given) with `handler`.
    /// `name` ("runtime", "management") prefixes log lines and thread names.
    pub fn start(
        name: &str,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: Limits,
        handler: Arc<dyn Handler>,
    ) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        // Listening again on a listening socket only sets its backlog.
        // SAFETY: listen on a socket we own.
        if unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) } != 0 {
            log::warn!(
                "{name}: cannot set the listen backlog to {LISTEN_BACKLOG}: {}",
                io::Error::last_os_error()
            );
        }
        let local_addr = listener.local_addr()?;
        let workers = limits.workers.max(1);
        let limits_max_streams = limits.max_streams;
        let active = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            name: name.to_string(),
            limits,
            tls,
            handler,
            counts: crate::metrics::connections(name, &active),
            active,
            in_flight: Arc::new(AtomicUsize::new(0)),
            stopping: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            last_refusal_warn: Mutex::new(None),
            per_ip: PerIp::default(),
            poller: Poller::new()?,
            pool: Pool::new(),
            streams: Streams::new(limits_max_streams),
        });
        let mut server = Server {
            shared: Arc::clone(&shared),
            local_addr,
            threads: Vec::new(),
            accept: None,
        };
        // On a spawn failure, dropping `server` stops what already started.
        for i in 0..workers {
            let s = Arc::clone(&shared);
            server.threads.push(
                std::thread::Builder::new()
                    .name(format!("{name}-w{i}"))
                    .spawn(move || worker_loop(&s))?,
            );
        }
        let s = Arc::clone(&shared);
        server.threads.push(
            std::thread::Builder::new()
                .name(format!("{name}-poll"))
                .spawn(move || {
                    s.poller.run(
                        &s.name,
                        &s.limits,
                        &s.pool,
                        &s.in_flight,
                        &s.stopping,
                        &s.stopped,
                    )
                })?,
        );
        let s = Arc::clone(&shared);
        server.threads.push(
            std::thread::Builder::new()
                .name(format!("{name}-streams"))
                .spawn(move || {
                    s.streams
                        .run(&s.name, s.limits.stream_keep_alive, &s.stopping)
                })?,
        );
        let s = Arc::clone(&shared);
        server.accept = Some(
            std::thread::Builder::new()
                .name(format!("{name}-accept"))
                .spawn(move || accept_loop(&s, listener))?,
        );
        log::info!(
            "{name}: listening on {local_addr} ({})",
            if shared.tls.is_some() {
                "https"
            } else {
                "http"
            }
        );
        Ok(server)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections currently open (handshaking, idle, or being served).
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// Event streams currently open.
    pub fn active_streams(&self) -> usize {
        self.shared.streams.len()
    }

    /// Stop accepting; close event streams; let requests already being
    /// handled finish (up to `grace`); close idle connections; join threads.
    pub fn shutdown(mut self, grace: Duration) {
        self.stop(grace);
    }

    fn stop(&mut self, grace: Duration) {
        let s = &self.shared;
        if s.stopped.load(Ordering::SeqCst) {
            return;
        }
        let deadline = Instant::now() + grace;
        s.stopping.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        while s.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        s.stopped.store(true, Ordering::SeqCst);
        s.pool.stop();
        // A handler still running past the grace period cannot be
        // interrupted; give it until the same deadline (plus a moment for
        // threads that are merely waking up), then leave it detached rather
        // than hang shutdown forever.
        let join_deadline = deadline.max(Instant::now()) + Duration::from_millis(500);
        for t in self.threads.drain(..) {
            while !t.is_finished() && Instant::now() < join_deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                log::warn!(
                    "{}: a worker is still busy after the grace period; not waiting for it",
                    s.name
                );
            }
        }
        log::info!("{}: stopped", s.name);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

fn accept_loop(s: &Shared, listener: TcpListener) {
    let fd = listener.as_raw_fd();
    while !s.stopping.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ACCEPT_POLL_MS) };
        if r <= 0 {
            continue;
        }
        loop {
            match listener.accept() {
                Ok((stream, peer)) => admit(s, stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    log::warn!("{}: accept failed: {e}", s.name);
                    std::thread::sleep(Duration::from_millis(50));
                    break;
                }
            }
        }
    }
}

fn admit(s: &Shared, stream: TcpStream, peer: SocketAddr) {
    if stream.set_nonblocking(true).is_err() || stream.set_nodelay(true).is_err() {
        return;
    }
    if s.active.load(Ordering::SeqCst) >= s.limits.max_connections {
        refuse(s, stream, peer, Refusal::Total);
        return;
    }
    let Some(guard) =
        ActiveGuard::new(&s.active).with_ip(&s.per_ip, peer.ip(), s.limits.max_connections_per_ip)
    else {
        refuse(s, stream, peer, Refusal::PerIp);
        return;
    };
    s.counts.accepted();
    let tls = match &s.tls {
        None => None,
        Some(config) => match rustls::ServerConnection::new(Arc::clone(config)) {
            Ok(c) => Some(c),
            Err(e) => {
                log::error!("{}: cannot create TLS session: {e}", s.name);
                return;
            }
        },
    };
    let id = s.next_id.fetch_add(1, Ordering::Relaxed);
    let conn = Conn::new(id, stream, peer, tls, guard);
    s.poller.park(conn);
}

/// Which limit a refused connection hit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Total,
    PerIp,
}

/// Over `max_connections` or `max_connections_per_ip`: answer cheaply and
/// close. Plain HTTP gets a 503 it can read; on TLS we cannot say anything
/// without a handshake.
fn refuse(s: &Shared, stream: TcpStream, peer: SocketAddr, why: Refusal) {
    match why {
        Refusal::Total => s.counts.refused_at_total_cap(),
        Refusal::PerIp => s.counts.refused_at_per_ip_cap(),
    }
    let (limit, what) = match why {
        Refusal::Total => (s.limits.max_connections, "connection limit"),
        Refusal::PerIp => (
            s.limits.max_connections_per_ip,
            "per-address connection limit (http.max_connections_per_ip)",
        ),
    };
    log::debug!(
        "{}: refusing connection from {peer}: {what} reached",
        s.name
    );
    {
        let mut last = s
            .last_refusal_warn
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= REFUSAL_WARN_EVERY) {
            *last = Some(Instant::now());
            log::warn!(
                "{}: {what} ({limit}) reached, for {}; refusing new connections",
                s.name,
                if why == Refusal::PerIp {
                    peer.ip().to_string()
                } else {
                    "all addresses".into()
                }
            );
        }
    }
    if s.tls.is_none() {
        let resp = Response::layer_error(
            503,
            "too_many_connections",
            match why {
                Refusal::Total => "server connection limit reached",
                Refusal::PerIp => "too many connections from this address",
            },
        );
        let _ = io::Write::write(&mut &stream, &encode_response(&resp, false, true, false));
        let _ = stream.shutdown(Shutdown::Write);
    }
}

fn worker_loop(s: &Shared) {
    while let Some((conn, in_flight)) = s.pool.pop() {
        let back = serve(s, conn);
        if let Some(conn) = back {
            if !s.stopping.load(Ordering::SeqCst) {
                s.poller.park(conn);
            }
        }
        drop(in_flight);
    }
}

/// Serves a readable connection: reads what has arrived, answers every
/// complete request in the buffer, and returns the connection if it should
/// be parked again.
fn serve(s: &Shared, mut conn: Conn) -> Option<Conn> {
    let limits = &s.limits;
    if conn.is_lingering() {
        return conn.linger_drain().then_some(conn);
    }
    let cap = limits.max_head_bytes + limits.max_body_bytes + CHUNK_SLACK;
    let was_handshaking = conn.is_handshaking();
    let eof = match conn.read_available(cap, limits.write_timeout) {
        Ok(eof) => eof,
        Err(e) => {
            log::debug!("{}: connection from {} failed: {e}", s.name, conn.peer);
            return None;
        }
    };
    let now = Instant::now();
    if was_handshaking && !conn.is_handshaking() {
        // Idle time counts from the end of the handshake.
        conn.idle_since = now;
    }
    if !conn.buf.is_empty() && conn.request_started.is_none() {
        conn.request_started = Some(now);
    }
    let parse_limits = ParseLimits {
        max_head_bytes: limits.max_head_bytes,
        max_headers: limits.max_headers,
        max_body_bytes: limits.max_body_bytes,
    };
    while !conn.buf.is_empty() {
        match parse(&conn.buf, &parse_limits) {
            Parsed::Incomplete { expect_continue } => {
                if conn.buf.len() >= cap {
                    // Only chunk framing overhead can get here.
                    return reject(s, conn, BUFFER_FULL);
                }
                if expect_continue && !conn.sent_continue && !eof {
                    conn.sent_continue = true;
                    if conn
                        .send(b"HTTP/1.1 100 Continue\r\n\r\n", limits.write_timeout)
                        .is_err()
                    {
                        return None;
                    }
                }
                break;
            }
            Parsed::Reject(r) => return reject(s, conn, r),
            Parsed::Complete(raw) => {
                conn.buf.drain(..raw.consumed);
                conn.sent_continue = false;
                let head_only = raw.method == "HEAD";
                let (keep_alive, http10) = (raw.keep_alive, raw.http10);
                let resp = run_handler(s, &conn, raw);
                if let Some((rx, kind)) = take_stream(&resp) {
                    start_stream(s, conn, &resp, rx, kind, head_only);
                    return None;
                }
                // Checked after the handler: a shutdown that began while it
                // ran should still close this connection cleanly.
                let close = !keep_alive || eof || s.stopping.load(Ordering::SeqCst);
                let http10_keep_alive = http10 && !close;
                let bytes = encode_response(&resp, head_only, close, http10_keep_alive);
                if let Err(e) = conn.send(&bytes, limits.write_timeout) {
                    log::debug!("{}: writing response to {} failed: {e}", s.name, conn.peer);
                    return None;
                }
                if close {
                    return None;
                }
                let now = Instant::now();
                conn.idle_since = now;
                conn.request_started = (!conn.buf.is_empty()).then_some(now);
            }
        }
    }
    if eof || s.stopping.load(Ordering::SeqCst) {
        return None;
    }
    Some(conn)
}

/// Writes the head of an event stream and hands the connection to the
/// streams thread; over `max_streams`, answers 503 instead. The connection
/// is not reused: its end is the end of the stream.
fn start_stream(
    s: &Shared,
    mut conn: Conn,
    resp: &Response,
    rx: std::sync::mpsc::Receiver<String>,
    kind: super::message::StreamKind,
    head_only: bool,
) {
    if s.stopping.load(Ordering::SeqCst) {
        return;
    }
    let Some(slot) = s.streams.reserve() else {
        log::debug!(
            "{}: refusing event stream to {}: {} streams open",
            s.name,
            conn.peer,
            s.limits.max_streams
        );
        let busy = Response::layer_error(
            503,
            "too_many_streams",
            "too many event streams are open; retry later",
        )
        .with_header("Retry-After", "5");
        let _ = conn.send(
            &encode_response(&busy, head_only, true, false),
            s.limits.write_timeout,
        );
        return;
    };
    // A deferred response writes nothing until its answer arrives.
    let head = match kind {
        super::message::StreamKind::Deferred => Ok(()),
        _ => conn.send(&encode_stream_head(resp), s.limits.write_timeout),
    };
    if let Err(e) = head {
        log::debug!(
            "{}: writing stream head to {} failed: {e}",
            s.name,
            conn.peer
        );
        return;
    }
    if !head_only {
        // Anything pipelined after the request is never answered.
        conn.buf = Vec::new();
        s.streams.adopt(conn, rx, kind, slot);
    }
}

const BUFFER_FULL: Rejection = Rejection {
    status: 413,
    code: "body_too_large",
    message: "request body exceeds the limit",
};

/// Answers a framing error and closes (lingering so the peer can read it).
fn reject(s: &Shared, mut conn: Conn, r: Rejection) -> Option<Conn> {
    log::debug!(
        "{}: rejecting request from {}: {} {}",
        s.name,
        conn.peer,
        r.status,
        r.message
    );
    let resp = Response::layer_error(r.status, r.code, r.message);
    if conn
        .send(
            &encode_response(&resp, false, true, false),
            s.limits.write_timeout,
        )
        .is_err()
    {
        return None;
    }
    conn.start_linger();
    Some(conn)
}

fn run_handler(s: &Shared, conn: &Conn, raw: super::parse::RawRequest) -> Response {
    let (path, query) = split_target(&raw.target);
    let req = Request {
        method: raw.method,
        path,
        query,
        headers: raw.headers,
        body: raw.body,
        peer: conn.peer,
        secure: conn.tls.is_some(),
    };
    log::trace!("{}: {} {} from {}", s.name, req.method, req.path, req.peer);
    match catch_unwind(AssertUnwindSafe(|| s.handler.handle(&req))) {
        Ok(resp) => resp,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|m| m.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".to_string());
            let id = error_id();
            log::error!(
                "{}: handler panicked on {} {} (id {id}): {what}",
                s.name,
                req.method,
                req.path
            );
            Response::layer_error(500, "internal", &format!("internal error (id {id})"))
        }
    }
}

/// Short random id tying a 500 response to its log line.
fn error_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 4];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // Not secret, only needs to be distinguishable in logs.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        bytes = nanos.to_be_bytes();
    }
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Splits a request target into path and raw query. Absolute-form targets
/// (`http://host/path`) are reduced to their path.
fn split_target(target: &str) -> (String, String) {
    let target = match target.find("://") {
        Some(i) if !target.starts_with('/') => {
            let after = &target[i + 3..];
            match after.find('/') {
                Some(j) => &after[j..],
                None => "/",
            }
        }
        _ => target,
    };
    match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    }
}

/// The head of an event stream: no `Content-Length`, so the body runs
/// until the connection closes (`Connection: close` says so).
fn encode_stream_head(resp: &Response) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    push_status_and_headers(&mut out, resp);
    if resp.status == 101 {
        // The WebSocket handshake's answer (RFC 6455 §4.2.2).
        out.extend_from_slice(b"Connection: Upgrade\r\n\r\n");
        return out;
    }
    if !resp
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("cache-control"))
    {
        out.extend_from_slice(b"Cache-Control: no-store\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

/// Serialises a response. The layer owns framing headers, so any the
/// handler set are dropped, as are headers that would break the framing
/// (CR/LF in a name or value).
pub(crate) fn encode_response(
    resp: &Response,
    head_only: bool,
    close: bool,
    http10_keep_alive: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(resp.body.len() + 256);
    push_status_and_headers(&mut out, resp);
    let no_body = resp.status < 200 || resp.status == 204 || resp.status == 304;
    if !no_body {
        out.extend_from_slice(format!("Content-Length: {}\r\n", resp.body.len()).as_bytes());
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if http10_keep_alive {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only && !no_body {
        out.extend_from_slice(&resp.body);
    }
    out
}

/// The status line and the handler's headers, minus framing headers and
/// any that would break the framing.
fn push_status_and_headers(out: &mut Vec<u8>, resp: &Response) {
    out.extend_from_slice(
        format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status)).as_bytes(),
    );
    for (name, value) in &resp.headers {
        let framing = [
            "content-length",
            "connection",
            "transfer-encoding",
            "keep-alive",
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h));
        let unsafe_bytes = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
        if framing || unsafe_bytes(name) || unsafe_bytes(value) || name.is_empty() {
            log::warn!("dropping response header {name:?} set by handler");
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_path_and_query() {
        assert_eq!(split_target("/a/b?x=1&y"), ("/a/b".into(), "x=1&y".into()));
        assert_eq!(split_target("/"), ("/".into(), String::new()));
        assert_eq!(split_target("http://h:1/p?q"), ("/p".into(), "q".into()));
        assert_eq!(
            split_target("/r?u=http://x"),
            ("/r".into(), "u=http://x".into())
        );
    }

    #[test]
    fn handler_framing_headers_are_replaced() {
        let resp = Response::json(200, &serde_json::json!({"a": 1}))
            .with_header("Content-Length", "99")
            .with_header("X-Evil", "a\r\nSet-Cookie: x");
        let text = String::from_utf8(encode_response(&resp, false, true, false)).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{\"a\":1}"
        );
    }
}
