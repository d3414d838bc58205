//! HTTP/1.1 request framing: turns the bytes buffered for a connection into
//! a complete request, a "need more bytes", or a rejection with the status
//! the client should see. Pure functions over a byte slice, so every limit
//! and framing rule is testable without sockets.

use super::message::has_token;

/// Limits the parser enforces; a copy of the relevant `Limits` fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ParseLimits {
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub max_body_bytes: usize,
}

/// Why a request cannot be served; always answered and followed by a close,
/// because after a framing error we no longer know where the next request
/// starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub status: u16,
    pub code: &'static str,
    pub message: &'static str,
}

const fn reject(status: u16, code: &'static str, message: &'static str) -> Rejection {
    Rejection {
        status,
        code,
        message,
    }
}

const HEAD_TOO_LARGE: Rejection = reject(
    431,
    "headers_too_large",
    "request head exceeds the size or header count limit",
);
const BODY_TOO_LARGE: Rejection = reject(413, "body_too_large", "request body exceeds the limit");
const BAD_REQUEST: Rejection = reject(400, "bad_request", "malformed request line or headers");
const BAD_LENGTH: Rejection = reject(400, "bad_request", "invalid Content-Length");
const BAD_FRAMING: Rejection = reject(
    400,
    "bad_request",
    "conflicting or unsupported body framing",
);
const BAD_CHUNK: Rejection = reject(400, "bad_request", "malformed chunked body");
const BAD_EXPECT: Rejection = reject(417, "expectation_failed", "only 100-continue is supported");

/// A request whose head and body have fully arrived.
#[derive(Debug)]
pub(crate) struct RawRequest {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the connection may stay open after the response.
    pub keep_alive: bool,
    /// HTTP/1.0 keep-alive must be confirmed in the response header.
    pub http10: bool,
    /// Bytes of the buffer this request used up (head + framed body).
    pub consumed: usize,
}

/// Outcome of looking at the buffered bytes.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// More bytes are needed. `expect_continue` is set once the head is
    /// complete, asked for `100-continue`, and the body has not all arrived.
    Incomplete {
        expect_continue: bool,
    },
    Complete(RawRequest),
    Reject(Rejection),
}

enum Framing {
    None,
    Length(usize),
    Chunked,
}

/// Parses the first request in `buf`.
pub(crate) fn parse(buf: &[u8], limits: &ParseLimits) -> Parsed {
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut slots);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_head_bytes {
                return Parsed::Reject(HEAD_TOO_LARGE);
            }
            return Parsed::Incomplete {
                expect_continue: false,
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Parsed::Reject(HEAD_TOO_LARGE),
        Err(_) => return Parsed::Reject(BAD_REQUEST),
    };
    if head_len > limits.max_head_bytes {
        return Parsed::Reject(HEAD_TOO_LARGE);
    }
    // httparse only returns Complete once method, path and version are set.
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::Reject(BAD_REQUEST);
    };
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();

    let mut framing = Framing::None;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut expect_continue = false;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    for (name, value) in &headers {
        if name.eq_ignore_ascii_case("content-length") {
            // Digits only: `+5`, `5 5` or a second, different value are the
            // classic request-smuggling vectors.
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Parsed::Reject(BAD_LENGTH);
            }
            let Ok(n) = value.parse::<usize>() else {
                return Parsed::Reject(BAD_LENGTH);
            };
            if content_length.is_some_and(|old| old != n) {
                return Parsed::Reject(BAD_LENGTH);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only a lone `chunked` is supported; anything else would need
            // decoding we do not do, and guessing invites smuggling.
            if chunked || !value.eq_ignore_ascii_case("chunked") {
                return Parsed::Reject(BAD_FRAMING);
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("expect") {
            if !value.eq_ignore_ascii_case("100-continue") {
                return Parsed::Reject(BAD_EXPECT);
            }
            expect_continue = true;
        } else if name.eq_ignore_ascii_case("connection") {
            connection_close |= has_token(value, "close");
            connection_keep_alive |= has_token(value, "keep-alive");
        }
    }
    if chunked && content_length.is_some() {
        return Parsed::Reject(BAD_FRAMING);
    }
    if chunked {
        framing = Framing::Chunked;
    } else if let Some(n) = content_length {
        // Answer as soon as the head shows the body is too big, without
        // reading (or waiting for) the body.
        if n > limits.max_body_bytes {
            return Parsed::Reject(BODY_TOO_LARGE);
        }
        framing = Framing::Length(n);
    }

    let rest = &buf[head_len..];
    let (body, body_len) = match framing {
        Framing::None => (Vec::new(), 0),
        Framing::Length(n) => {
            if rest.len() < n {
                return Parsed::Incomplete { expect_continue };
            }
            (rest[..n].to_vec(), n)
        }
        Framing::Chunked => match decode_chunked(rest, limits.max_body_bytes) {
            Err(r) => return Parsed::Reject(r),
            Ok(None) => return Parsed::Incomplete { expect_continue },
            Ok(Some(done)) => done,
        },
    };

    let http10 = minor == 0;
    let keep_alive = if http10 {
        connection_keep_alive && !connection_close
    } else {
        !connection_close
    };
    Parsed::Complete(RawRequest {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body,
        keep_alive,
        http10,
        consumed: head_len + body_len,
    })
}

/// Longest chunk-size line (size, extensions) or trailer line we accept;
/// longer ones are either broken or an attempt to make us buffer forever.
const MAX_CHUNK_LINE: usize = 4096;

/// Decodes a chunked body at the start of `data`. `Ok(None)` means more
/// bytes are needed; `Ok(Some((body, used)))` gives the decoded body and how
/// many bytes of `data` the framing used. Validation runs over the whole
/// buffer each time more bytes arrive, which is linear per read and simpler
/// than keeping decoder state on the connection.
fn decode_chunked(data: &[u8], max_body: usize) -> Result<Option<(Vec<u8>, usize)>, Rejection> {
    let mut pos = 0;
    let mut pieces: Vec<(usize, usize)> = Vec::new();
    let mut total: usize = 0;
    loop {
        let Some(line_end) = find_crlf(&data[pos..]) else {
            if data.len() - pos > MAX_CHUNK_LINE {
                return Err(BAD_CHUNK);
            }
            return Ok(None);
        };
        if line_end > MAX_CHUNK_LINE {
            return Err(BAD_CHUNK);
        }
        let line = &data[pos..pos + line_end];
        let size_part = match line.iter().position(|&b| b == b';') {
            Some(i) => &line[..i],
            None => line,
        };
        let size_str = std::str::from_utf8(size_part)
            .map_err(|_| BAD_CHUNK)?
            .trim();
        if size_str.is_empty() || !size_str.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BAD_CHUNK);
        }
        let size = usize::from_str_radix(size_str, 16).map_err(|_| BAD_CHUNK)?;
        pos += line_end + 2;
        if size == 0 {
            // Trailers: header lines up to an empty line. We drop them.
            loop {
                let Some(end) = find_crlf(&data[pos..]) else {
                    if data.len() - pos > MAX_CHUNK_LINE {
                        return Err(BAD_CHUNK);
                    }
                    return Ok(None);
                };
                pos += end + 2;
                if end == 0 {
                    let mut body = Vec::with_capacity(total);
                    for (start, end) in pieces {
                        body.extend_from_slice(&data[start..end]);
                    }
                    return Ok(Some((body, pos)));
                }
            }
        }
        total = total.checked_add(size).ok_or(BODY_TOO_LARGE)?;
        if total > max_body {
            return Err(BODY_TOO_LARGE);
        }
        let need = pos.checked_add(size + 2).ok_or(BAD_CHUNK)?;
        if data.len() < need {
            return Ok(None);
        }
        if &data[pos + size..need] != b"\r\n" {
            return Err(BAD_CHUNK);
        }
        pieces.push((pos, pos + size));
        pos = need;
    }
}

fn find_crlf(data: &[u8]) -> Option<usize> {
    data.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ParseLimits = ParseLimits {
        max_head_bytes: 1024,
        max_headers: 8,
        max_body_bytes: 16,
    };

    fn check(input: &str) -> Result<(String, Vec<u8>, bool, usize), Option<u16>> {
        match parse(input.as_bytes(), &LIMITS) {
            Parsed::Complete(r) => Ok((r.target, r.body, r.keep_alive, r.consumed)),
            Parsed::Incomplete { .. } => Err(None),
            Parsed::Reject(r) => Err(Some(r.status)),
        }
    }

    #[test]
    fn framing_rules() {
        let simple = "GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(
            check(simple),
            Ok(("/a?b".into(), vec![], true, simple.len()))
        );
        assert_eq!(check("GET / HTTP/1.1\r\nHost: x\r\n"), Err(None));
        let cl = "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET";
        assert_eq!(
            check(cl),
            Ok(("/".into(), b"abc".to_vec(), true, cl.len() - 3))
        );
        assert_eq!(
            check("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab"),
            Err(None)
        );
        assert_eq!(
            check("POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc"),
            Err(Some(400))
        );
        assert_eq!(
            check("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            Err(Some(400))
        );
        assert_eq!(
            check("POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n"),
            Err(Some(413))
        );
        assert_eq!(
            check("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(Some(400))
        );
        assert_eq!(check("GET / HTTP/1.0\r\n\r\n").map(|r| r.2), Ok(false));
        assert_eq!(
            check("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").map(|r| r.2),
            Ok(true)
        );
        assert_eq!(
            check("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").map(|r| r.2),
            Ok(false)
        );
        assert_eq!(check("GARBAGE\r\n\r\n"), Err(Some(400)));
        assert_eq!(
            check("GET / HTTP/1.1\r\nExpect: nope\r\n\r\n"),
            Err(Some(417))
        );
        let many: String = (0..9).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            check(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            Err(Some(431))
        );
        let long = "a".repeat(1100);
        assert_eq!(check(&format!("GET /{long} HTTP/1.1\r\n")), Err(Some(431)));
    }

    #[test]
    fn chunked_bodies() {
        let ok = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n";
        assert_eq!(
            check(ok).map(|r| (r.1, r.3)),
            Ok((b"abcde".to_vec(), ok.len()))
        );
        for cut in 48..ok.len() {
            assert_eq!(check(&ok[..cut]), Err(None), "cut at {cut}");
        }
        let bad = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(check(bad), Err(Some(400)));
        let no_crlf = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n";
        assert_eq!(check(no_crlf), Err(Some(400)));
        let big = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n";
        assert_eq!(check(big), Err(Some(413)));
        let gzip = "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(check(gzip), Err(Some(400)));
    }
}
