//! The operator's web console: the files under `assets/`, embedded in the
//! binary by `build.rs` and served on the management listener.
//!
//! `/assets/<name>` serves an embedded file; any other path whose last
//! segment has no extension serves `index.html`, so the console's
//! History-API routes (`/projects/p/integrations/i`) survive a reload. Names
//! are looked up in the embedded table and never touch the file system, so
//! no request path can escape `assets/`. Every response revalidates with a
//! strong SHA-256 `ETag`: file names are not content-hashed, so a new
//! binary must take effect at the next page load.
//!
//! [`security_headers`] is the one place the management listener's security
//! headers are set: the management handler applies it to every response it
//! makes (console, API, health), among them a strict Content-Security-Policy
//! (no inline script or style, no framing).

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::{Request, Response};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// The policy on every management response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// URL prefix of embedded files.
const PREFIX: &str = "/assets/";

struct Asset {
    name: &'static str,
    body: &'static [u8],
    etag: String,
    content_type: &'static str,
}

fn assets() -> &'static [Asset] {
    static ALL: OnceLock<Vec<Asset>> = OnceLock::new();
    ALL.get_or_init(|| {
        embedded::ASSETS
            .iter()
            // The README documents the directory; it is not part of the console.
            .filter(|(name, _)| *name != "README.md")
            .map(|&(name, body)| {
                let digest = ring::digest::digest(&ring::digest::SHA256, body);
                Asset {
                    name,
                    body,
                    etag: format!("\"{}\"", URL_SAFE_NO_PAD.encode(digest.as_ref())),
                    content_type: content_type(name),
                }
            })
            .collect()
    })
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn find(name: &str) -> Option<&'static Asset> {
    assets().iter().find(|a| a.name == name)
}

/// Whether the console answers `path` (the management handler's fallback
/// asks before answering 404).
pub fn serves(path: &str) -> bool {
    if let Some(name) = path.strip_prefix(PREFIX) {
        return find(name).is_some();
    }
    let last = path.rsplit('/').next().unwrap_or("");
    path.starts_with('/') && !last.contains('.')
}

/// `Strict-Transport-Security` under TLS: a year, without
/// `includeSubDomains`, which would bind sibling hosts icpd knows nothing of.
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

/// Adds the security headers of the management listener to `resp`: no
/// framing, no MIME sniffing, no referrer, the console's CSP (harmless on
/// JSON, and it covers a JSON body opened as a page), and HSTS when the
/// listener serves `tls`.
pub fn security_headers(resp: Response, tls: bool) -> Response {
    let resp = resp
        .with_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Referrer-Policy", "no-referrer")
        .with_header("X-Frame-Options", "DENY");
    if tls {
        resp.with_header("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
    } else {
        resp
    }
}

/// Serves a console request: an embedded file, `index.html` for a console
/// route, or 404 (the caller adds [`security_headers`]).
pub fn serve(req: &Request) -> Response {
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        return crate::http::routes::method_not_allowed("GET");
    }
    let asset = match req.path.strip_prefix(PREFIX) {
        Some(name) => find(name),
        None if serves(&req.path) => find("index.html"),
        None => None,
    };
    let Some(asset) = asset else {
        return Response::error(
            404,
            "not_found",
            &format!(
                "no console file {}",
                req.path.chars().take(100).collect::<String>()
            ),
        );
    };
    let fresh = req.header("if-none-match").is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim() == asset.etag || t.trim() == "*")
    });
    let resp = Response {
        status: if fresh { 304 } else { 200 },
        headers: Vec::new(),
        body: if fresh {
            Vec::new()
        } else {
            asset.body.to_vec()
        },
        stream: None,
    };
    let resp = if fresh {
        resp
    } else {
        resp.with_header("Content-Type", asset.content_type)
    };
    resp.with_header("ETag", &asset.etag)
        .with_header("Cache-Control", "no-cache")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_routes_and_files_are_told_apart() {
        assert!(serves("/"));
        assert!(serves("/projects/p/integrations/i"));
        assert!(serves("/assets/index.html"));
        assert!(!serves("/assets/../Cargo.toml"));
        assert!(!serves("/favicon.ico"));
        assert!(!serves("/assets/README.md"));
    }

    #[test]
    fn every_embedded_file_has_a_known_type() {
        for a in assets() {
            assert_ne!(a.content_type, "application/octet-stream", "{}", a.name);
        }
    }
}
