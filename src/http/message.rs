//! The request and response values handlers work with, and the `Handler`
//! trait. Nothing here knows about sockets, rustls or httparse, so handlers
//! (and their tests) can be written against plain data.

use std::net::SocketAddr;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

/// One complete HTTP request, body included.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method as sent, e.g. `GET`.
    pub method: String,
    /// Request target up to (not including) the first `?`.
    pub path: String,
    /// Raw query string without the leading `?`; empty when absent.
    pub query: String,
    /// Headers in the order received; names keep the client's spelling.
    pub headers: Vec<(String, String)>,
    /// Decoded body (chunked framing already removed).
    pub body: Vec<u8>,
    /// Address of the peer.
    pub peer: SocketAddr,
    /// Whether the request came over TLS.
    pub secure: bool,
}

impl Request {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// A response from a handler. The server adds `Content-Length` and
/// `Connection` itself; handlers should not set them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, e.g. 200.
    pub status: u16,
    /// Extra headers, written in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// For `text/event-stream` responses: the frames to forward after the
    /// head (see [`Response::event_stream`]); `None` for ordinary responses.
    pub stream: Option<EventStream>,
}

/// The frames of a Server-Sent Events response. The connection layer takes
/// the receiver once, when it hands the connection to its streams thread;
/// clones share it, and two streams are equal only if they are the same one.
#[derive(Clone)]
pub struct EventStream(Arc<Mutex<Option<Receiver<String>>>>, StreamKind);

/// How a stream's frames travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamKind {
    /// Server-Sent Events: each frame is SSE text, keep-alive is a comment.
    Sse,
    /// A server-push WebSocket (RFC 6455): each frame is one text message,
    /// keep-alive is a ping; what the client sends is read and discarded.
    WebSocket,
    /// A response answered later ([`Response::deferred`]): the one frame is
    /// the whole encoded response; nothing is written before it, no
    /// keep-alive, and the connection closes after it.
    Deferred,
}

impl EventStream {
    /// The receiver, the first time only.
    pub(crate) fn take(&self) -> Option<Receiver<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl PartialEq for EventStream {
    fn eq(&self, other: &EventStream) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for EventStream {}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventStream(..)")
    }
}

/// Whether `resp` is the head of a stream of its kind.
fn is_stream_head(resp: &Response, kind: StreamKind) -> bool {
    match kind {
        StreamKind::Sse => {
            resp.status == 200 && find_header(&resp.headers, "content-type") == Some(EVENT_STREAM)
        }
        StreamKind::WebSocket => {
            resp.status == 101 && find_header(&resp.headers, "upgrade") == Some("websocket")
        }
        StreamKind::Deferred => resp.status == DEFERRED_STATUS,
    }
}

/// The placeholder status of a [`Response::deferred`]; never sent.
const DEFERRED_STATUS: u16 = 0;

/// The other half of a [`Response::deferred`]: whoever holds it answers
/// the request, once, from any thread. Dropped without [`Reply::send`] (a
/// job that panicked, a queue that refused it), it answers 500 itself, so
/// the client always gets a response.
pub struct Reply {
    tx: Option<std::sync::mpsc::Sender<String>>,
}

impl Reply {
    /// Answers the request with `resp` (a text body: JSON or HTML). The
    /// connection closes after it.
    pub fn send(mut self, resp: Response) {
        self.deliver(&resp);
    }

    fn deliver(&mut self, resp: &Response) {
        if let Some(tx) = self.tx.take() {
            let bytes = super::server::encode_response(resp, false, true, false);
            // Bodies here are JSON or HTML; a stray invalid byte is replaced
            // rather than the answer lost.
            let text = String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            // The connection may be gone (client left, server stopping).
            let _ = tx.send(text);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if self.tx.is_some() {
            log::error!("a deferred response was dropped without an answer");
            self.deliver(&Response::error(
                500,
                "internal",
                "the request could not be completed; try again",
            ));
        }
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reply(..)")
    }
}

const EVENT_STREAM: &str = "text/event-stream";

/// The receiver of the stream `resp` starts and its kind, if it is one that
/// kept its status and `Content-Type` (SSE) or `Upgrade` (WebSocket).
pub(crate) fn take_stream(resp: &Response) -> Option<(Receiver<String>, StreamKind)> {
    let s = resp.stream.as_ref()?;
    if !is_stream_head(resp, s.1) {
        return None;
    }
    s.take().map(|rx| (rx, s.1))
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn websocket_accept(key: &str) -> String {
    use base64::Engine;
    let mut text = key.trim().to_string();
    text.push_str("258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

impl Response {
    /// An error the connection layer answers itself, before or instead of
    /// any handler (malformed request, timeout, limit, handler panic): the
    /// JSON error with the headers that make it inert in a browser, since
    /// no handler adds its own.
    ///
    /// It has the runtime listener's shape ([`Response::runtime_error`]):
    /// the layer answers both listeners alike, and on the runtime one the
    /// peer may be an MI that logs only a top-level `message`.
    pub fn layer_error(status: u16, code: &str, message: &str) -> Response {
        Response::runtime_error(status, code, message)
            .with_header("X-Content-Type-Options", "nosniff")
            .with_header(
                "Content-Security-Policy",
                "default-src 'none'; frame-ancestors 'none'",
            )
            .with_header("Cache-Control", "no-store")
    }
    /// A JSON response. Serialising our own types cannot fail in practice; if
    /// it does, the caller gets a 500 in the standard error shape rather than
    /// a panic in the worker.
    pub fn json<T: serde::Serialize>(status: u16, value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response {
                status,
                headers: vec![("Content-Type".to_string(), "application/json".to_string())],
                body,
                stream: None,
            },
            Err(e) => {
                log::error!("cannot serialise response body: {e}");
                Response::error(500, "internal", "response could not be encoded")
            }
        }
    }

    /// The one error shape used across icpd:
    /// `{"error":{"code":"...","message":"..."}}`.
    pub fn error(status: u16, code: &str, message: &str) -> Response {
        Response::json(
            status,
            &serde_json::json!({"error": {"code": code, "message": message}}),
        )
    }

    /// An error answered to a runtime: [`Response::error`]'s shape with
    /// the message repeated as a top-level `message`, which is the member
    /// Micro Integrator logs when it gives up (MI.md),
    /// `{"error":{"code":"...","message":"..."},"message":"..."}`.
    pub fn runtime_error(status: u16, code: &str, message: &str) -> Response {
        Response::json(
            status,
            &serde_json::json!({"error": {"code": code, "message": message}, "message": message}),
        )
    }

    /// `200 text/event-stream` whose body is every `String` received on
    /// `rx`, each one complete Server-Sent Events frame (`event: ...\ndata:
    /// ...\n\n`), written as it arrives. The connection layer hands the
    /// connection to its streams thread (no worker is held), sends a
    /// keep-alive comment when nothing was written for a while, drops a
    /// peer that stops reading, and closes the connection when the sender
    /// side is dropped, the peer goes away, or the server shuts down. A
    /// streamed connection is never reused for another request.
    ///
    /// The response must keep its status and `Content-Type` (other headers
    /// may be added); otherwise it is sent as an ordinary empty response.
    pub fn event_stream(rx: Receiver<String>) -> Response {
        Response {
            status: 200,
            headers: vec![
                ("Content-Type".to_string(), EVENT_STREAM.to_string()),
                ("X-Accel-Buffering".to_string(), "no".to_string()),
            ],
            body: Vec::new(),
            stream: Some(EventStream(Arc::new(Mutex::new(Some(rx))), StreamKind::Sse)),
        }
    }

    /// A server-push WebSocket (RFC 6455) answering a handshake whose
    /// `Sec-WebSocket-Key` was `key`: 101, then each string from `rx` as
    /// one text message, pings while idle; the client's frames are read
    /// and discarded. Otherwise as [`Response::event_stream`]: the streams
    /// thread carries it, a peer that stops reading is dropped.
    pub fn websocket(key: &str, rx: Receiver<String>) -> Response {
        Response {
            status: 101,
            headers: vec![
                ("Upgrade".to_string(), "websocket".to_string()),
                ("Sec-WebSocket-Accept".to_string(), websocket_accept(key)),
            ],
            body: Vec::new(),
            stream: Some(EventStream(
                Arc::new(Mutex::new(Some(rx))),
                StreamKind::WebSocket,
            )),
        }
    }

    /// A response that will be answered later, from another thread, through
    /// the returned [`Reply`]: for work that waits on someone else's server
    /// (an identity provider, a directory), which must not hold a worker.
    /// The connection waits on the streams thread, costing no worker, and
    /// closes after the answer; headers added to this placeholder are not
    /// sent (the [`Reply`]'s response carries its own). Over the server's
    /// stream cap the client gets 503 at once.
    pub fn deferred() -> (Response, Reply) {
        let (tx, rx) = std::sync::mpsc::channel();
        (
            Response {
                status: DEFERRED_STATUS,
                headers: Vec::new(),
                body: Vec::new(),
                stream: Some(EventStream(
                    Arc::new(Mutex::new(Some(rx))),
                    StreamKind::Deferred,
                )),
            },
            Reply { tx: Some(tx) },
        )
    }

    /// Whether this is a [`Response::deferred`] placeholder.
    pub fn is_deferred(&self) -> bool {
        self.status == DEFERRED_STATUS && self.stream.is_some()
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// Something that turns a request into a response. Runs on a worker thread
/// under `catch_unwind`, so it must be shareable across threads.
pub trait Handler: Send + Sync + 'static {
    /// Produces the response for `req`.
    fn handle(&self, req: &Request) -> Response;
}

impl<F> Handler for F
where
    F: Fn(&Request) -> Response + Send + Sync + 'static,
{
    fn handle(&self, req: &Request) -> Response {
        self(req)
    }
}

/// Case-insensitive lookup shared by requests and client responses.
pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A query-string component percent-decoded (`+` is a space); `None` for
/// a bad escape or bytes that are not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Whether a comma-separated header value (e.g. `Connection`) contains
/// `token`, compared case-insensitively.
pub(crate) fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Reason phrase for the status line; clients ignore it, people reading
/// traces do not.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_websocket_accept_is_rfc_6455s() {
        assert_eq!(
            super::websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
