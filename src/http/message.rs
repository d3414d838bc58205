//! The request and response values handlers work with, and the `Handler`
//! trait. Nothing here knows about sockets, rustls or httparse, so handlers
//! (and their tests) can be written against plain data.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::mpsc::Receiver;

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
}

thread_local! {
    /// The frames of the event stream the handler running on this worker
    /// returned (see [`Response::event_stream`]). A side channel rather than
    /// a `Response` field, so `Response` stays plain data that handlers
    /// build with struct literals and tests compare.
    static STREAM: RefCell<Option<Receiver<String>>> = const { RefCell::new(None) };
}

/// Whether `resp` is the head of an event stream.
fn is_event_stream(resp: &Response) -> bool {
    resp.status == 200 && find_header(&resp.headers, "content-type") == Some(EVENT_STREAM)
}

const EVENT_STREAM: &str = "text/event-stream";

/// Forgets any receiver a previous handler on this thread left behind;
/// the server calls it before running a handler.
pub(crate) fn clear_stream() {
    STREAM.with(|s| s.borrow_mut().take());
}

/// The receiver of the event stream `resp` starts, if the handler that
/// just ran on this thread returned one.
pub(crate) fn take_stream(resp: &Response) -> Option<Receiver<String>> {
    let rx = STREAM.with(|s| s.borrow_mut().take());
    rx.filter(|_| is_event_stream(resp))
}

impl Response {
    /// A JSON response. Serialising our own types cannot fail in practice; if
    /// it does, the caller gets a 500 in the standard error shape rather than
    /// a panic in the worker.
    pub fn json<T: serde::Serialize>(status: u16, value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response {
                status,
                headers: vec![("Content-Type".to_string(), "application/json".to_string())],
                body,
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

    /// `200 text/event-stream` whose body is every `String` received on
    /// `rx`, each one complete Server-Sent Events frame (`event: ...\ndata:
    /// ...\n\n`), written as it arrives. The connection layer hands the
    /// connection to its streams thread (no worker is held), sends a
    /// keep-alive comment when nothing was written for a while, drops a
    /// peer that stops reading, and closes the connection when the sender
    /// side is dropped, the peer goes away, or the server shuts down. A
    /// streamed connection is never reused for another request.
    ///
    /// Must be called on the thread that runs the handler (the receiver
    /// waits there for the worker), and the response must keep its status
    /// and `Content-Type`; other headers may be added.
    pub fn event_stream(rx: Receiver<String>) -> Response {
        STREAM.with(|s| *s.borrow_mut() = Some(rx));
        Response {
            status: 200,
            headers: vec![
                ("Content-Type".to_string(), EVENT_STREAM.to_string()),
                ("X-Accel-Buffering".to_string(), "no".to_string()),
            ],
            body: Vec::new(),
        }
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
