//! A small blocking HTTP/1.1 client over one keep-alive connection, for
//! tests, examples and CLI tools, so that they (like handlers) never touch
//! sockets or rustls directly. Not a general-purpose client: no redirects,
//! no proxies, no compression.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use super::message::{find_header, has_token};

/// How the client secures its connection.
#[derive(Debug, Clone)]
pub enum ClientTls {
    /// Plain HTTP (`http://` URLs).
    Plain,
    /// HTTPS verifying the server against this PEM certificate.
    Verify(PathBuf),
    /// HTTPS without verification (like the bridge's enableSSL=false).
    Insecure,
}

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct ClientResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ClientResponse {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as JSON, or `Null` if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const MAX_RESPONSE_BODY: usize = 64 * 1024 * 1024;

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// One keep-alive connection to `base_url`, opened lazily and reopened when
/// the server has closed it.
pub struct Client {
    /// `host[:port]` as written in the URL, for the Host header.
    authority: String,
    connect_to: String,
    base_path: String,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    stream: Option<Stream>,
    rbuf: Vec<u8>,
    opened: u64,
    timeout: Duration,
}

/// A failed attempt, and whether it failed in a way that means the server
/// closed a kept-alive connection before seeing this request (so one retry
/// on a fresh connection is safe).
struct Failure {
    err: io::Error,
    stale: bool,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl Client {
    /// `base_url` is `http://host[:port][/prefix]` or `https://...`; `tls`
    /// must be `Plain` for http and `Verify`/`Insecure` for https.
    pub fn new(base_url: &str, tls: ClientTls) -> io::Result<Client> {
        let (https, rest) = if let Some(r) = base_url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = base_url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(invalid(format!(
                "URL must start with http:// or https://: {base_url}"
            )));
        };
        let (authority, base_path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = split_host_port(authority, if https { 443 } else { 80 })
            .ok_or_else(|| invalid(format!("bad host or port in URL: {base_url}")))?;
        let tls = match (https, tls) {
            (false, ClientTls::Plain) => None,
            (true, ClientTls::Plain) | (false, _) => {
                return Err(invalid(format!(
                    "TLS setting does not match URL scheme: {base_url}"
                )))
            }
            (true, mode) => {
                let config = client_config(&mode)?;
                let name = match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => ServerName::IpAddress(ip.into()),
                    Err(_) => ServerName::try_from(host.to_string())
                        .map_err(|e| invalid(format!("bad server name {host:?}: {e}")))?,
                };
                Some((config, name))
            }
        };
        let connect_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        Ok(Client {
            authority: authority.to_string(),
            connect_to: format!("{connect_host}:{port}"),
            base_path: base_path.to_string(),
            tls,
            stream: None,
            rbuf: Vec::new(),
            opened: 0,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Connect, read and write timeout (default 10 s).
    pub fn set_timeout(&mut self, d: Duration) {
        self.timeout = d;
        if let Some(s) = &self.stream {
            let _ = s.tcp().set_read_timeout(Some(d));
            let _ = s.tcp().set_write_timeout(Some(d));
        }
    }

    /// How many TCP connections this client has opened.
    pub fn connection_count(&self) -> u64 {
        self.opened
    }

    /// Sends one request and reads the response. `Content-Length` is added
    /// unless `headers` already frames the body.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<ClientResponse> {
        let reused = self.stream.is_some();
        match self.attempt(method, path, headers, body) {
            Ok(r) => Ok(r),
            Err(f) => {
                self.stream = None;
                if !(f.stale && reused) {
                    return Err(f.err);
                }
                self.attempt(method, path, headers, body).map_err(|f| {
                    self.stream = None;
                    f.err
                })
            }
        }
    }

    /// POSTs `body` as JSON, with `Authorization: Bearer` when given.
    pub fn post_json(
        &mut self,
        path: &str,
        bearer: Option<&str>,
        body: &serde_json::Value,
    ) -> io::Result<ClientResponse> {
        let bytes = serde_json::to_vec(body).map_err(io::Error::other)?;
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        self.request("POST", path, &headers, &bytes)
    }

    fn connect(&mut self) -> io::Result<Stream> {
        let mut last = None;
        let mut tcp = None;
        for addr in self.connect_to.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = match tcp {
            Some(t) => t,
            None => {
                return Err(last.unwrap_or_else(|| {
                    invalid(format!("{} resolves to no address", self.connect_to))
                }))
            }
        };
        tcp.set_read_timeout(Some(self.timeout))?;
        tcp.set_write_timeout(Some(self.timeout))?;
        tcp.set_nodelay(true)?;
        self.opened += 1;
        self.rbuf.clear();
        Ok(match &self.tls {
            None => Stream::Plain(tcp),
            Some((config, name)) => {
                let conn = ClientConnection::new(Arc::clone(config), name.clone())
                    .map_err(io::Error::other)?;
                Stream::Tls(Box::new(StreamOwned::new(conn, tcp)))
            }
        })
    }

    fn attempt(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<ClientResponse, Failure> {
        let fresh = self.stream.is_none();
        if fresh {
            let s = self
                .connect()
                .map_err(|err| Failure { err, stale: false })?;
            self.stream = Some(s);
        }
        let mut head = format!("{method} {}{path} HTTP/1.1\r\n", self.base_path);
        let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
        if !has("host") {
            head.push_str(&format!("Host: {}\r\n", self.authority));
        }
        if !has("content-length") && !has("transfer-encoding") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body);
        let Some(stream) = self.stream.as_mut() else {
            return Err(Failure {
                err: io::Error::other("no connection"),
                stale: false,
            });
        };
        // A write failure on a reused connection means the server closed it
        // while it sat idle.
        if let Err(err) = stream.write_all(&out).and_then(|_| stream.flush()) {
            return Err(Failure { err, stale: !fresh });
        }
        let resp = self.read_response(method == "HEAD");
        resp.map_err(|(err, nothing_read)| Failure {
            stale: !fresh && nothing_read && is_closed(&err),
            err,
        })
    }

    /// Reads one final response (skipping 1xx). The error carries whether
    /// no byte of a response had arrived.
    fn read_response(&mut self, head_only: bool) -> Result<ClientResponse, (io::Error, bool)> {
        let mut got_any = false;
        loop {
            let (status, headers, head_len, keep_alive) = loop {
                let mut slots = [httparse::EMPTY_HEADER; 128];
                let mut parsed = httparse::Response::new(&mut slots);
                match parsed.parse(&self.rbuf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let status = parsed.code.unwrap_or(0);
                        let headers: Vec<(String, String)> = parsed
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_string(),
                                    String::from_utf8_lossy(h.value).trim().to_string(),
                                )
                            })
                            .collect();
                        let conn = find_header(&headers, "connection").unwrap_or("");
                        let keep_alive = if parsed.version == Some(0) {
                            has_token(conn, "keep-alive")
                        } else {
                            !has_token(conn, "close")
                        };
                        break (status, headers, n, keep_alive);
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.rbuf.len() > MAX_RESPONSE_HEAD {
                            return Err((bad("response head too large"), false));
                        }
                    }
                    Err(e) => return Err((bad(&format!("bad response head: {e}")), false)),
                }
                match self.fill() {
                    Ok(0) => {
                        let err = io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "connection closed before a response",
                        );
                        return Err((err, !got_any));
                    }
                    Ok(_) => got_any = true,
                    Err(e) => return Err((e, !got_any)),
                }
            };
            self.rbuf.drain(..head_len);
            if (100..200).contains(&status) {
                continue;
            }
            let no_body = head_only || status == 204 || status == 304;
            let mut keep = keep_alive;
            let body = if no_body {
                Vec::new()
            } else if find_header(&headers, "transfer-encoding")
                .is_some_and(|te| has_token(te, "chunked"))
            {
                self.read_chunked().map_err(|e| (e, false))?
            } else if let Some(cl) = find_header(&headers, "content-length") {
                let n: usize = cl
                    .parse()
                    .map_err(|_| (bad("bad Content-Length in response"), false))?;
                if n > MAX_RESPONSE_BODY {
                    return Err((bad("response body too large"), false));
                }
                self.take(n).map_err(|e| (e, false))?
            } else {
                // No framing: the body runs to the end of the connection.
                keep = false;
                while self.fill().map_err(|e| (e, false))? > 0 {
                    if self.rbuf.len() > MAX_RESPONSE_BODY {
                        return Err((bad("response body too large"), false));
                    }
                }
                std::mem::take(&mut self.rbuf)
            };
            if !keep {
                self.stream = None;
            }
            return Ok(ClientResponse {
                status,
                headers,
                body,
            });
        }
    }

    /// Reads more bytes into `rbuf`; 0 means the server closed.
    fn fill(&mut self) -> io::Result<usize> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(0);
        };
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk) {
                Ok(n) => {
                    self.rbuf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.rbuf.len() < n {
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "response body truncated",
                ));
            }
        }
        Ok(self.rbuf.drain(..n).collect())
    }

    fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = self.rbuf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.rbuf[..i]).into_owned();
                self.rbuf.drain(..i + 2);
                return Ok(line);
            }
            if self.rbuf.len() > MAX_RESPONSE_HEAD {
                return Err(bad("chunk line too long"));
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "chunked body truncated",
                ));
            }
        }
    }

    fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.line()?;
            let size_str = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_str, 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                while !self.line()?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > MAX_RESPONSE_BODY {
                return Err(bad("response body too large"));
            }
            body.extend(self.take(size)?);
            if !self.take(2)?.eq(b"\r\n") {
                return Err(bad("bad chunk terminator"));
            }
        }
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Errors meaning the peer closed or reset the connection.
fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

fn split_host_port(authority: &str, default_port: u16) -> Option<(&str, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => Some((h, p.parse().ok()?)),
        Some(_) => None,
        None if !authority.is_empty() => Some((authority, default_port)),
        None => None,
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(mode: &ClientTls) -> io::Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(io::Error::other)?;
    let config = match mode {
        ClientTls::Plain => return Err(invalid("plain HTTP has no TLS config".to_string())),
        ClientTls::Verify(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| invalid(format!("cannot read certificate {}: {e}", path.display())))?;
            for cert in certs {
                let cert = cert
                    .map_err(|e| invalid(format!("bad certificate in {}: {e}", path.display())))?;
                roots.add(cert).map_err(|e| {
                    invalid(format!("unusable certificate in {}: {e}", path.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(invalid(format!(
                    "no certificate found in {}",
                    path.display()
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        ClientTls::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert {
                provider: provider(),
            }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Accepts any server certificate (identity is not checked), but still
/// checks that the handshake is signed by the key in that certificate, so
/// the session is at least bound to whoever holds it.
#[derive(Debug)]
struct AcceptAnyCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn authorities() {
        assert_eq!(
            split_host_port("127.0.0.1:8443", 443),
            Some(("127.0.0.1", 8443))
        );
        assert_eq!(split_host_port("localhost", 443), Some(("localhost", 443)));
        assert_eq!(split_host_port("[::1]:80", 443), Some(("::1", 80)));
        assert_eq!(split_host_port("[::1]", 443), Some(("::1", 443)));
        assert_eq!(split_host_port(":80", 443), None);
        assert_eq!(split_host_port("h:x", 443), None);
    }
}
