//! The only code in icpd that dials a runtime: one blocking HTTP/1.1
//! request over a fresh connection (HTTPS, or plain HTTP for tests) with a
//! connect timeout, a total time budget and bounded answers.
//!
//! [`send`] resolves the host, connects with a connect timeout, runs the
//! TLS handshake under the chosen [`PeerTrust`], writes one request with
//! `Connection: close` and reads one response (`Content-Length`, chunked or
//! read-to-close), capping its head at [`MAX_HEAD`] bytes and its body at
//! [`OutboundRequest::max_body`]. Every socket read and write first sets the
//! socket's timeout to what is left of [`Timeouts::total`], so a peer that
//! trickles bytes cannot stretch a call past its budget. Callers run it on
//! the `OutboundPool`, never on a request worker.
//!
//! Errors ([`OutboundError`]) name the address and what to check; they
//! never carry request headers, so an `Authorization` value cannot leak
//! through them or through a log line.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    SignatureScheme, StreamOwned,
};

use super::message::find_header;

/// Cap on a response's status line and headers (and on a chunk's size line
/// and trailers).
pub const MAX_HEAD: usize = 64 * 1024;
/// Default cap on a response body ([`OutboundRequest::max_body`]).
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;
/// Most response headers parsed; more is a malformed answer.
const MAX_HEADERS: usize = 128;

/// `https` (what runtimes serve) or `http` (tests, local tools).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// How long one call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Bound on opening the TCP connection (per resolved address, and never
    /// past `total`).
    pub connect: Duration,
    /// Bound on the whole call from its start: connect, TLS handshake,
    /// writing the request and reading the whole response. Name resolution
    /// (`getaddrinfo`) is not interruptible and not counted; an IP address
    /// needs none.
    pub total: Duration,
}

impl Default for Timeouts {
    /// 3 s to connect, 10 s in all.
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(3),
            total: Duration::from_secs(10),
        }
    }
}

/// One request to send. The path and query are sent as given, so they
/// must already be percent-encoded.
#[derive(Clone)]
pub struct OutboundRequest {
    pub scheme: Scheme,
    /// A DNS name or an IP address (IPv6 with or without brackets).
    pub host: String,
    pub port: u16,
    /// An HTTP method token (`GET`, `POST`, ...).
    pub method: String,
    /// `/path?query`, already encoded.
    pub path_and_query: String,
    /// Extra headers. `Host`, `User-Agent` are added unless given here;
    /// `Connection`, `Content-Length` and `Transfer-Encoding` are icpd's
    /// to set and refused here.
    pub headers: Vec<(String, String)>,
    /// Sent with `Content-Length`.
    pub body: Option<Vec<u8>>,
    pub timeouts: Timeouts,
    /// Largest response body accepted; more is [`OutboundError::TooLarge`].
    pub max_body: usize,
}

impl OutboundRequest {
    /// A request without headers or body, with default timeouts and body cap.
    pub fn new(
        scheme: Scheme,
        host: impl Into<String>,
        port: u16,
        method: impl Into<String>,
        path_and_query: impl Into<String>,
    ) -> OutboundRequest {
        OutboundRequest {
            scheme,
            host: host.into(),
            port,
            method: method.into(),
            path_and_query: path_and_query.into(),
            headers: Vec::new(),
            body: None,
            timeouts: Timeouts::default(),
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> OutboundRequest {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: Vec<u8>) -> OutboundRequest {
        self.body = Some(body);
        self
    }

    /// `host:port` as errors and logs show it (`[v6]:port` for IPv6).
    pub fn address(&self) -> String {
        let host = bare_host(&self.host);
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Headers whose values are credentials: shown as `<redacted>` by `Debug`.
fn is_credential(name: &str) -> bool {
    ["authorization", "proxy-authorization", "cookie"]
        .iter()
        .any(|c| name.eq_ignore_ascii_case(c))
}

impl fmt::Debug for OutboundRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                let v = if is_credential(n) { "<redacted>" } else { v };
                (n.as_str(), v)
            })
            .collect();
        f.debug_struct("OutboundRequest")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("method", &self.method)
            .field("path_and_query", &self.path_and_query)
            .field("headers", &headers)
            .field("body_len", &self.body.as_ref().map(Vec::len))
            .field("timeouts", &self.timeouts)
            .field("max_body", &self.max_body)
            .finish()
    }
}

/// Whom an HTTPS peer must be.
#[derive(Clone)]
pub enum PeerTrust {
    /// The certificate chain must lead to one of these roots and name the
    /// host (a DNS name, or an IP address in its subjectAltName).
    Ca(Arc<RootCertStore>),
    /// Trust on first use. `None`: accept any certificate (the response's
    /// `peer_sha256` is the pin to keep). `Some(pin)`: refuse unless the
    /// leaf certificate's SHA-256 is `pin`, whatever its issuer, names or
    /// dates. Either way the handshake must be signed by the certificate's
    /// key.
    Pin(Option<[u8; 32]>),
    /// Any certificate; the handshake signature is still checked. Only for
    /// what an operator configured so.
    Insecure,
}

impl PeerTrust {
    /// Trust in the CA certificates of a PEM bundle (an environment's
    /// `miCaCertificate`); an error says why the bundle is unusable.
    pub fn from_ca_pem(pem: &str) -> Result<PeerTrust, String> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("the CA bundle is not valid PEM: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("the CA bundle holds an unusable certificate: {e}"))?;
        }
        if roots.is_empty() {
            return Err(
                "the CA bundle holds no certificate (expected PEM 'BEGIN CERTIFICATE' blocks)"
                    .into(),
            );
        }
        Ok(PeerTrust::Ca(Arc::new(roots)))
    }
}

impl fmt::Debug for PeerTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerTrust::Ca(roots) => write!(f, "Ca({} roots)", roots.len()),
            PeerTrust::Pin(None) => f.write_str("Pin(first use)"),
            PeerTrust::Pin(Some(pin)) => write!(f, "Pin({})", hex(pin)),
            PeerTrust::Insecure => f.write_str("Insecure"),
        }
    }
}

/// What the runtime answered.
#[derive(Debug, Clone)]
pub struct OutboundResponse {
    pub status: u16,
    /// In arrival order; values decoded lossily as UTF-8 and trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// SHA-256 of the peer's leaf certificate (DER), for HTTPS: the pin a
    /// caller records after a first contact.
    pub peer_sha256: Option<[u8; 32]>,
}

impl OutboundResponse {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// Which part of a call ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connect,
    Handshake,
    Send,
    Receive,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connecting",
            Phase::Handshake => "the TLS handshake",
            Phase::Send => "sending the request",
            Phase::Receive => "waiting for the answer",
        })
    }
}

/// Why a call produced no response. Never carries request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundError {
    /// The request could not be built (bad method, path, header or host
    /// name): a fault of the caller, nothing was sent.
    Invalid(String),
    /// No connection: the name did not resolve, the port refused, the host
    /// is unreachable, or the connection broke before an answer.
    Connect { address: String, reason: String },
    /// The budget ran out during `phase`, `after` the call started.
    Timeout {
        address: String,
        phase: Phase,
        after: Duration,
    },
    /// The TLS handshake failed (untrusted or invalid certificate, wrong
    /// name, not TLS at all, ...).
    Tls { address: String, message: String },
    /// The leaf certificate's SHA-256 is not the pinned one.
    CertificateChanged {
        address: String,
        expected: [u8; 32],
        got: [u8; 32],
    },
    /// The response head or body is over its cap (`part` says which).
    TooLarge {
        address: String,
        part: &'static str,
        limit: usize,
    },
    /// The peer answered with something that is not a well-formed HTTP/1.1
    /// response (or closed the connection without one).
    Malformed { address: String, detail: String },
}

impl OutboundError {
    /// A stable short code for this kind of failure.
    pub fn kind(&self) -> &'static str {
        match self {
            OutboundError::Invalid(_) => "invalid_request",
            OutboundError::Connect { .. } => "unreachable",
            OutboundError::Timeout { .. } => "timeout",
            OutboundError::Tls { .. } => "tls",
            OutboundError::CertificateChanged { .. } => "certificate_changed",
            OutboundError::TooLarge { .. } => "too_large",
            OutboundError::Malformed { .. } => "malformed",
        }
    }
}

impl fmt::Display for OutboundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutboundError::Invalid(m) => write!(f, "cannot build the request: {m}"),
            OutboundError::Connect { address, reason } => write!(
                f,
                "cannot reach {address}: {reason}; check that the runtime is running, that \
                 the address it reports is right, and that icpd can reach that port"
            ),
            OutboundError::Timeout {
                address,
                phase,
                after,
            } => write!(
                f,
                "no complete answer from {address} within {:.1} s (timed out {phase}); the \
                 runtime may be overloaded or stopped, or a firewall may drop the traffic",
                after.as_secs_f64()
            ),
            OutboundError::Tls { address, message } => write!(
                f,
                "TLS with {address} failed: {message}; check that the port serves HTTPS and \
                 that its certificate is one icpd is configured to trust"
            ),
            OutboundError::CertificateChanged {
                address,
                expected,
                got,
            } => write!(
                f,
                "the certificate at {address} changed: icpd pinned SHA-256 {} but was shown {}; \
                 if the runtime's certificate was replaced on purpose, clear the pin, otherwise \
                 something else is answering at that address",
                hex(expected),
                hex(got)
            ),
            OutboundError::TooLarge {
                address,
                part,
                limit,
            } => write!(
                f,
                "the {part} from {address} is over icpd's limit of {limit} bytes; nothing of it \
                 was kept"
            ),
            OutboundError::Malformed { address, detail } => write!(
                f,
                "{address} did not answer with valid HTTP: {detail}; check that the port is \
                 the runtime's management port"
            ),
        }
    }
}

impl std::error::Error for OutboundError {}

/// Lower-case hex of a digest, as pins are shown.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a certificate's DER bytes: the pin of that certificate.
pub fn certificate_sha256(der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Sends `req` and reads its response. Blocks for at most about
/// `req.timeouts.total` (plus name resolution); run it on the
/// `OutboundPool`. Any status is a response; only a failure to get one
/// is an error.
pub fn send(req: &OutboundRequest, trust: &PeerTrust) -> Result<OutboundResponse, OutboundError> {
    let start = Instant::now();
    let attempt = Attempt {
        address: req.address(),
        start,
        deadline: start + req.timeouts.total,
    };
    let head = request_head(req)?;
    let tls = match req.scheme {
        Scheme::Http => None,
        Scheme::Https => Some(tls_setup(&req.host, trust)?),
    };
    let tcp = attempt.connect(req)?;
    let io = DeadlineStream {
        tcp,
        deadline: attempt.deadline,
    };
    let result = match tls {
        None => {
            let mut io = io;
            attempt.exchange(&mut io, &head, req, None)
        }
        Some((config, name, verifier)) => {
            let conn = ClientConnection::new(config, name).map_err(|e| OutboundError::Tls {
                address: attempt.address.clone(),
                message: e.to_string(),
            })?;
            let mut tls = StreamOwned::new(conn, io);
            while tls.conn.is_handshaking() {
                if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
                    return Err(attempt.handshake_error(e, &verifier));
                }
            }
            let peer = tls
                .conn
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| certificate_sha256(leaf.as_ref()));
            attempt.exchange(&mut tls, &head, req, peer)
        }
    };
    match &result {
        Ok(r) => log::debug!(
            "outbound {} {}{} -> {} in {} ms",
            req.method,
            attempt.address,
            req.path_and_query,
            r.status,
            start.elapsed().as_millis()
        ),
        Err(e) => log::debug!(
            "outbound {} {}{} failed: {}",
            req.method,
            attempt.address,
            req.path_and_query,
            e.kind()
        ),
    }
    result
}

/// `host` without the brackets of an IPv6 literal.
fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// The request line and headers, checked so nothing the caller passes can
/// split the request.
fn request_head(req: &OutboundRequest) -> Result<Vec<u8>, OutboundError> {
    let invalid = |m: String| Err(OutboundError::Invalid(m));
    if !is_token(&req.method) {
        return invalid(format!("method {:?} is not an HTTP token", req.method));
    }
    if req.timeouts.connect.is_zero() || req.timeouts.total.is_zero() {
        return invalid(format!("timeouts must be positive: {:?}", req.timeouts));
    }
    let p = &req.path_and_query;
    if !p.starts_with('/') || p.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return invalid(format!(
            "path {p:?} must start with '/' and be percent-encoded (no spaces or control characters)"
        ));
    }
    let host = bare_host(&req.host);
    if host.is_empty()
        || host
            .bytes()
            .any(|b| b <= b' ' || b == 0x7f || b"/?#@[]".contains(&b))
    {
        return invalid(format!("host {:?} is not a host name or address", req.host));
    }
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, p);
    let has = |n: &str| req.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    for (name, value) in &req.headers {
        if !is_token(name) {
            return invalid(format!("header name {name:?} is not an HTTP token"));
        }
        if ["connection", "content-length", "transfer-encoding"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            return invalid(format!("header {name} is set by the outbound client"));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            // The value is not echoed: it may be a credential.
            return invalid(format!("header {name} has a line break in its value"));
        }
    }
    if !has("host") {
        let default_port = match req.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        if req.port == default_port {
            let h = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            head.push_str(&format!("Host: {h}\r\n"));
        } else {
            head.push_str(&format!("Host: {}\r\n", req.address()));
        }
    }
    if !has("user-agent") {
        head.push_str(concat!(
            "User-Agent: icpd/",
            env!("CARGO_PKG_VERSION"),
            "\r\n"
        ));
    }
    for (name, value) in &req.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n");
    match &req.body {
        Some(b) => head.push_str(&format!("Content-Length: {}\r\n", b.len())),
        None if matches!(req.method.as_str(), "POST" | "PUT" | "PATCH") => {
            head.push_str("Content-Length: 0\r\n")
        }
        None => {}
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if let Some(b) = &req.body {
        out.extend_from_slice(b);
    }
    Ok(out)
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

type TlsSetup = (
    Arc<ClientConfig>,
    ServerName<'static>,
    Option<Arc<PinVerifier>>,
);

fn tls_setup(host: &str, trust: &PeerTrust) -> Result<TlsSetup, OutboundError> {
    let host = bare_host(host);
    let name = match host.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(host.to_string())
            .map_err(|e| OutboundError::Invalid(format!("{host:?} is not a server name: {e}")))?,
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| OutboundError::Invalid(format!("TLS configuration: {e}")))?;
    let (config, verifier) = match trust {
        PeerTrust::Ca(roots) => (
            builder
                .with_root_certificates(Arc::clone(roots))
                .with_no_client_auth(),
            None,
        ),
        PeerTrust::Pin(pin) => {
            let v = Arc::new(PinVerifier::new(*pin));
            let config = builder
                .dangerous()
                .with_custom_certificate_verifier(v.clone())
                .with_no_client_auth();
            (config, Some(v))
        }
        PeerTrust::Insecure => {
            let v = Arc::new(PinVerifier::new(None));
            let config = builder
                .dangerous()
                .with_custom_certificate_verifier(v.clone())
                .with_no_client_auth();
            (config, Some(v))
        }
    };
    Ok((Arc::new(config), name, verifier))
}

/// Accepts a certificate by its SHA-256 (any when there is no pin),
/// records the digest it was shown, and checks handshake signatures with
/// the ring provider.
#[derive(Debug)]
struct PinVerifier {
    pin: Option<[u8; 32]>,
    seen: Mutex<Option<[u8; 32]>>,
}

impl PinVerifier {
    fn new(pin: Option<[u8; 32]>) -> PinVerifier {
        PinVerifier {
            pin,
            seen: Mutex::new(None),
        }
    }

    /// `(expected, got)` when the handshake was refused for the pin.
    fn mismatch(&self) -> Option<([u8; 32], [u8; 32])> {
        let seen = (*self.seen.lock().unwrap_or_else(|e| e.into_inner()))?;
        let pin = self.pin?;
        (pin != seen).then_some((pin, seen))
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = certificate_sha256(end_entity.as_ref());
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(got);
        match self.pin {
            Some(pin) if pin != got => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TCP stream whose every read and write is bounded by what is left
/// until `deadline`. A socket timeout can fire a clock tick early (the
/// kernel counts in jiffies); that is retried with what is left, so a
/// timeout is reported only once the deadline has really passed. Also
/// what `ldap` talks to its directory through.
pub struct DeadlineStream {
    tcp: TcpStream,
    deadline: Instant,
}

impl DeadlineStream {
    /// `tcp`, every read and write bounded by what is left until `deadline`.
    pub fn new(tcp: TcpStream, deadline: Instant) -> DeadlineStream {
        DeadlineStream { tcp, deadline }
    }

    /// The socket underneath (to shut it down).
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        Ok(left)
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let left = self.left()?;
            self.tcp.set_read_timeout(Some(left))?;
            match self.tcp.read(buf) {
                Err(e) if is_timeout(&e) => continue,
                other => return other,
            }
        }
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            let left = self.left()?;
            self.tcp.set_write_timeout(Some(left))?;
            match self.tcp.write(buf) {
                Err(e) if is_timeout(&e) => continue,
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// Whether a socket error is a timeout (as `set_read_timeout` reports it).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// One attempt in progress: what errors need to say.
struct Attempt {
    address: String,
    start: Instant,
    deadline: Instant,
}

impl Attempt {
    fn timeout(&self, phase: Phase) -> OutboundError {
        OutboundError::Timeout {
            address: self.address.clone(),
            phase,
            after: self.start.elapsed(),
        }
    }

    fn connect_error(&self, reason: String) -> OutboundError {
        OutboundError::Connect {
            address: self.address.clone(),
            reason,
        }
    }

    fn malformed(&self, detail: impl Into<String>) -> OutboundError {
        OutboundError::Malformed {
            address: self.address.clone(),
            detail: detail.into(),
        }
    }

    fn too_large(&self, part: &'static str, limit: usize) -> OutboundError {
        OutboundError::TooLarge {
            address: self.address.clone(),
            part,
            limit,
        }
    }

    /// Resolves the host and connects to the first address that accepts.
    fn connect(&self, req: &OutboundRequest) -> Result<TcpStream, OutboundError> {
        let addrs: Vec<SocketAddr> = (bare_host(&req.host), req.port)
            .to_socket_addrs()
            .map_err(|e| self.connect_error(format!("cannot resolve {}: {e}", req.host)))?
            .collect();
        if addrs.is_empty() {
            return Err(self.connect_error(format!("{} resolves to no address", req.host)));
        }
        let mut last = None;
        for addr in addrs {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timeout(Phase::Connect));
            }
            match TcpStream::connect_timeout(&addr, req.timeouts.connect.min(left)) {
                Ok(tcp) => {
                    let _ = tcp.set_nodelay(true);
                    return Ok(tcp);
                }
                Err(e) => last = Some((addr, e)),
            }
        }
        let Some((addr, e)) = last else {
            return Err(self.connect_error("no address to try".into()));
        };
        if is_timeout(&e) {
            return Err(self.timeout(Phase::Connect));
        }
        let reason = match e.kind() {
            io::ErrorKind::ConnectionRefused => format!("connection refused by {addr}"),
            _ => format!("connecting to {addr}: {e}"),
        };
        Err(self.connect_error(reason))
    }

    fn handshake_error(&self, e: io::Error, verifier: &Option<Arc<PinVerifier>>) -> OutboundError {
        if let Some((expected, got)) = verifier.as_ref().and_then(|v| v.mismatch()) {
            return OutboundError::CertificateChanged {
                address: self.address.clone(),
                expected,
                got,
            };
        }
        if is_timeout(&e) {
            return self.timeout(Phase::Handshake);
        }
        let message = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::InvalidMessage(m)) => {
                format!("the peer does not speak TLS ({m:?}); it may be serving plain HTTP")
            }
            Some(rustls::Error::InvalidCertificate(c)) => match c {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                    "its certificate is not signed by a CA icpd trusts ({c:?}); a self-signed \
                     certificate needs pinning or its own CA bundle"
                ),
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => format!(
                    "its certificate does not name the host icpd dialled ({})",
                    self.address
                ),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "its certificate has expired".to_string()
                }
                other => format!("invalid certificate: {other:?}"),
            },
            Some(tls) => tls.to_string(),
            None if e.kind() == io::ErrorKind::UnexpectedEof => {
                "the peer closed the connection during the handshake".to_string()
            }
            None => format!("connection failed during the handshake: {e}"),
        };
        OutboundError::Tls {
            address: self.address.clone(),
            message,
        }
    }

    /// Writes the request and reads the response.
    fn exchange(
        &self,
        io: &mut (impl Read + Write),
        head: &[u8],
        req: &OutboundRequest,
        peer_sha256: Option<[u8; 32]>,
    ) -> Result<OutboundResponse, OutboundError> {
        if let Err(e) = io.write_all(head).and_then(|_| io.flush()) {
            return Err(if is_timeout(&e) {
                self.timeout(Phase::Send)
            } else {
                self.connect_error(format!("the connection broke while sending: {e}"))
            });
        }
        let mut reader = Reader {
            io,
            buf: Vec::new(),
            eof: false,
            attempt: self,
        };
        let (status, headers) = reader.head()?;
        let te = find_header(&headers, "transfer-encoding");
        let body = if req.method == "HEAD" || status == 204 || status == 304 {
            Vec::new()
        } else if te.is_some_and(last_coding_is_chunked) {
            reader.chunked(req.max_body)?
        } else if te.is_some() {
            // Another coding last: the body runs to the close (RFC 9112 6.3).
            reader.until_close(req.max_body)?
        } else if let Some(n) = content_length(&headers).map_err(|m| self.malformed(m))? {
            if n > req.max_body {
                return Err(self.too_large("response body", req.max_body));
            }
            reader.exact(n)?
        } else {
            reader.until_close(req.max_body)?
        };
        Ok(OutboundResponse {
            status,
            headers,
            body,
            peer_sha256,
        })
    }
}

fn last_coding_is_chunked(te: &str) -> bool {
    te.rsplit(',')
        .next()
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"))
}

/// The Content-Length, if any; every copy must agree.
fn content_length(headers: &[(String, String)]) -> Result<Option<usize>, String> {
    let mut found: Option<usize> = None;
    for (_, v) in headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        for part in v.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("bad Content-Length {v:?}"));
            }
            let n: usize = part
                .parse()
                .map_err(|_| format!("Content-Length {v:?} out of range"))?;
            if found.is_some_and(|f| f != n) {
                return Err("conflicting Content-Length headers".to_string());
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// A printable start of what the peer sent, for error messages.
fn snippet(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Buffered reading of one response.
struct Reader<'a, S> {
    io: &'a mut S,
    buf: Vec<u8>,
    eof: bool,
    attempt: &'a Attempt,
}

impl<S: Read> Reader<'_, S> {
    /// Reads more into `buf`; false at the end of the stream. A TLS peer
    /// that closes without close_notify is taken as an end, not an error:
    /// framing decides whether the answer was complete.
    fn fill(&mut self) -> Result<bool, OutboundError> {
        if self.eof {
            return Ok(false);
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.io.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.eof = true;
                    return Ok(false);
                }
                Err(e) if is_timeout(&e) => return Err(self.attempt.timeout(Phase::Receive)),
                Err(e) => {
                    return Err(self.attempt.connect_error(format!(
                        "the connection broke while reading the answer: {e}"
                    )))
                }
            }
        }
    }

    /// The status and headers of the final (non-1xx) response.
    fn head(&mut self) -> Result<(u16, Vec<(String, String)>), OutboundError> {
        loop {
            let parsed = {
                let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut slots);
                match resp.parse(&self.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let headers = resp
                            .headers
                            .iter()
                            .map(|h| {
                                let v = String::from_utf8_lossy(h.value).trim().to_string();
                                (h.name.to_string(), v)
                            })
                            .collect::<Vec<_>>();
                        Some((resp.code.unwrap_or(0), headers, n))
                    }
                    Ok(httparse::Status::Partial) => None,
                    Err(httparse::Error::TooManyHeaders) => {
                        return Err(self
                            .attempt
                            .malformed(format!("more than {MAX_HEADERS} response headers")))
                    }
                    Err(e) => {
                        return Err(self.attempt.malformed(format!(
                            "{e} in a response starting {:?}",
                            snippet(&self.buf)
                        )))
                    }
                }
            };
            match parsed {
                Some((101, _, _)) => {
                    return Err(self.attempt.malformed("unexpected 101 Switching Protocols"))
                }
                Some((status, _, n)) if (100..200).contains(&status) => {
                    self.buf.drain(..n);
                }
                Some((status, headers, n)) => {
                    self.buf.drain(..n);
                    return Ok((status, headers));
                }
                None => {
                    if self.buf.len() > MAX_HEAD {
                        return Err(self.attempt.too_large("response head", MAX_HEAD));
                    }
                    if !self.fill()? {
                        return Err(self.attempt.malformed(if self.buf.is_empty() {
                            "the connection closed without an answer".to_string()
                        } else {
                            format!(
                                "the connection closed inside the response head {:?}",
                                snippet(&self.buf)
                            )
                        }));
                    }
                }
            }
        }
    }

    /// Exactly `n` body bytes.
    fn exact(&mut self, n: usize) -> Result<Vec<u8>, OutboundError> {
        while self.buf.len() < n {
            if !self.fill()? {
                return Err(self.attempt.malformed(format!(
                    "the body ended after {} of {n} bytes",
                    self.buf.len()
                )));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Everything up to the close.
    fn until_close(&mut self, max: usize) -> Result<Vec<u8>, OutboundError> {
        loop {
            if self.buf.len() > max {
                return Err(self.attempt.too_large("response body", max));
            }
            if !self.fill()? {
                return Ok(std::mem::take(&mut self.buf));
            }
        }
    }

    /// One CRLF-terminated line (chunk sizes, trailers).
    fn line(&mut self) -> Result<Vec<u8>, OutboundError> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(self.attempt.too_large("chunk header", MAX_HEAD));
            }
            if !self.fill()? {
                return Err(self.attempt.malformed("the chunked body ended early"));
            }
        }
    }

    fn chunked(&mut self, max: usize) -> Result<Vec<u8>, OutboundError> {
        let mut body = Vec::new();
        loop {
            let line = self.line()?;
            let text = String::from_utf8_lossy(&line);
            let size_text = text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .ok()
                .filter(|_| !size_text.is_empty() && !size_text.starts_with('+'))
                .ok_or_else(|| {
                    self.attempt
                        .malformed(format!("bad chunk size {size_text:?}"))
                })?;
            if size == 0 {
                let mut trailers = 0;
                loop {
                    let t = self.line()?;
                    if t.is_empty() {
                        return Ok(body);
                    }
                    trailers += t.len();
                    if trailers > MAX_HEAD {
                        return Err(self.attempt.too_large("response trailers", MAX_HEAD));
                    }
                }
            }
            if size > max.saturating_sub(body.len()) {
                return Err(self.attempt.too_large("response body", max));
            }
            body.extend(self.exact(size)?);
            if self.exact(2)? != b"\r\n" {
                return Err(self.attempt.malformed("a chunk does not end with CRLF"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str) -> OutboundRequest {
        OutboundRequest::new(Scheme::Https, "mi-1.example.com", 9164, method, path)
    }

    #[test]
    fn request_head_is_framed_and_closes() {
        let r = req("POST", "/management/tasks?x=1")
            .header("Authorization", "Bearer abc")
            .with_body(b"{}".to_vec());
        let head = String::from_utf8(request_head(&r).unwrap()).unwrap();
        assert!(head.starts_with("POST /management/tasks?x=1 HTTP/1.1\r\n"));
        assert!(head.contains("Host: mi-1.example.com:9164\r\n"));
        assert!(head.contains("Connection: close\r\n"));
        assert!(head.contains("Content-Length: 2\r\n"));
        assert!(head.ends_with("\r\n\r\n{}"));

        let get = String::from_utf8(request_head(&req("GET", "/management")).unwrap()).unwrap();
        assert!(!get.contains("Content-Length"));
        let patch = String::from_utf8(request_head(&req("PATCH", "/x")).unwrap()).unwrap();
        assert!(patch.contains("Content-Length: 0\r\n"));

        let v6 = OutboundRequest::new(Scheme::Https, "[::1]", 443, "GET", "/");
        let head = String::from_utf8(request_head(&v6).unwrap()).unwrap();
        assert!(head.contains("Host: [::1]\r\n"), "{head}");
        assert_eq!(v6.address(), "[::1]:443");
    }

    #[test]
    fn request_head_refuses_what_could_split_the_request() {
        for bad in [
            req("GE T", "/"),
            req("GET", "/a b"),
            req("GET", "/a\r\nX: y"),
            req("GET", "relative"),
            req("GET", "/").header("X\r\nY", "v"),
            req("GET", "/").header("Connection", "keep-alive"),
            req("GET", "/").header("Transfer-Encoding", "chunked"),
            OutboundRequest {
                timeouts: Timeouts {
                    connect: Duration::ZERO,
                    total: Duration::from_secs(1),
                },
                ..req("GET", "/")
            },
            OutboundRequest::new(Scheme::Http, "a/b", 80, "GET", "/"),
        ] {
            let e = request_head(&bad).unwrap_err();
            assert_eq!(e.kind(), "invalid_request", "{bad:?}");
        }
        let e = request_head(&req("GET", "/").header("Authorization", "Bearer s3cret\r\nX: y"))
            .unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn debug_redacts_credentials() {
        let r = req("GET", "/").header("authorization", "Bearer s3cret");
        let shown = format!("{r:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn content_length_copies_must_agree() {
        let h = |v: &[&str]| -> Vec<(String, String)> {
            v.iter()
                .map(|v| ("Content-Length".to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(content_length(&h(&[])), Ok(None));
        assert_eq!(content_length(&h(&["12"])), Ok(Some(12)));
        assert_eq!(content_length(&h(&["12", "12"])), Ok(Some(12)));
        assert!(content_length(&h(&["12", "13"])).is_err());
        assert!(content_length(&h(&["-1"])).is_err());
        assert!(content_length(&h(&["1e3"])).is_err());
    }

    #[test]
    fn chunked_is_recognised_only_as_the_last_coding() {
        assert!(last_coding_is_chunked("chunked"));
        assert!(last_coding_is_chunked("gzip, chunked"));
        assert!(last_coding_is_chunked("Chunked"));
        assert!(!last_coding_is_chunked("chunked, gzip"));
        assert!(!last_coding_is_chunked("gzip"));
    }

    #[test]
    fn kinds_are_stable() {
        let a = || "h:1".to_string();
        let cases = [
            (OutboundError::Invalid("x".into()), "invalid_request"),
            (
                OutboundError::Connect {
                    address: a(),
                    reason: "r".into(),
                },
                "unreachable",
            ),
            (
                OutboundError::Timeout {
                    address: a(),
                    phase: Phase::Receive,
                    after: Duration::from_secs(1),
                },
                "timeout",
            ),
            (
                OutboundError::Tls {
                    address: a(),
                    message: "m".into(),
                },
                "tls",
            ),
            (
                OutboundError::CertificateChanged {
                    address: a(),
                    expected: [0xab; 32],
                    got: [0xcd; 32],
                },
                "certificate_changed",
            ),
            (
                OutboundError::TooLarge {
                    address: a(),
                    part: "response body",
                    limit: 1,
                },
                "too_large",
            ),
            (
                OutboundError::Malformed {
                    address: a(),
                    detail: "d".into(),
                },
                "malformed",
            ),
        ];
        for (e, kind) in cases {
            assert_eq!(e.kind(), kind);
            assert!(!e.to_string().is_empty());
        }
        let changed = OutboundError::CertificateChanged {
            address: a(),
            expected: [0xab; 32],
            got: [0xcd; 32],
        }
        .to_string();
        assert!(changed.contains(&"ab".repeat(32)), "{changed}");
        assert!(changed.contains(&"cd".repeat(32)), "{changed}");
    }
}
