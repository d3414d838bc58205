//! The embedded web console as served by the management listener: content
//! types, ETags and 304s, the security headers, client-side-route fallback
//! and path traversal attempts.

use crate::harness::TestServer;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn get(s: &TestServer, path: &str, headers: &[(&str, &str)]) -> icpd::http::client::ClientResponse {
    s.management_client()
        .request("GET", path, headers, b"")
        .unwrap()
}

fn assert_secured(r: &icpd::http::client::ClientResponse, path: &str) {
    assert_eq!(r.header("content-security-policy"), Some(CSP), "{path}");
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{path}"
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
}

#[test]
fn files_are_served_with_their_types_and_the_security_headers() {
    let s = TestServer::start(&[]);
    for (path, ty) in [
        ("/", "text/html; charset=utf-8"),
        ("/assets/index.html", "text/html; charset=utf-8"),
        ("/assets/css/app.css", "text/css; charset=utf-8"),
        ("/assets/js/app.js", "text/javascript; charset=utf-8"),
        ("/assets/js/api.js", "text/javascript; charset=utf-8"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let r = get(&s, path, &[]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(ty), "{path}");
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
        assert_secured(&r, path);
    }
}

#[test]
fn the_page_has_no_inline_script_or_style() {
    let s = TestServer::start(&[]);
    let html = String::from_utf8(get(&s, "/", &[]).body).unwrap();
    assert!(html.contains(r#"<script type="module" src="/assets/js/app.js">"#));
    assert!(!html.contains("<style"), "inline <style>");
    assert!(!html.contains("style="), "style attribute");
    assert_eq!(html.matches("<script").count(), 1, "{html}");
}

#[test]
fn etags_are_strong_and_if_none_match_answers_304() {
    let s = TestServer::start(&[]);
    let r = get(&s, "/assets/js/app.js", &[]);
    let etag = r.header("etag").unwrap().to_string();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "{etag}");
    assert_eq!(
        get(&s, "/assets/js/app.js", &[]).header("etag"),
        Some(&*etag)
    );
    assert_ne!(
        get(&s, "/assets/css/app.css", &[]).header("etag"),
        Some(&*etag)
    );

    let r = get(&s, "/assets/js/app.js", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(&*etag));
    assert_secured(&r, "304");

    let r = get(&s, "/assets/js/app.js", &[("If-None-Match", "\"other\"")]);
    assert_eq!(r.status, 200);
}

#[test]
fn console_routes_fall_back_to_index_html() {
    let s = TestServer::start(&[]);
    let index = get(&s, "/", &[]).body;
    for path in [
        "/login",
        "/projects",
        "/projects/p/integrations/i",
        "/runtimes/abc",
        "/logs",
    ] {
        let r = get(&s, path, &[]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, index, "{path}");
        assert_secured(&r, path);
    }
    // API and health answers are untouched.
    let r = get(&s, "/api/v1/nope", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "not_found");
    assert_eq!(get(&s, "/healthz", &[]).status, 200);
    let r = get(&s, "/metrics", &[]);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert_ne!(
        r.body, index,
        "/metrics is icpd's own metrics, not the console"
    );
}

#[test]
fn unknown_files_and_traversal_attempts_are_404() {
    let s = TestServer::start(&[]);
    for path in [
        "/assets/nope.js",
        "/assets/../Cargo.toml",
        "/assets/../../etc/passwd",
        "/assets/%2e%2e/Cargo.toml",
        "/assets/js/../../build.rs",
        "/assets//etc/passwd",
        "/assets/README.md",
        "/favicon.ico",
        "/src/main.rs",
        "/../../etc/passwd.txt",
    ] {
        let r = get(&s, path, &[]);
        assert_eq!(r.status, 404, "{path}");
        assert_secured(&r, path);
    }
    let r = s
        .management_client()
        .request("POST", "/assets/js/app.js", &[], b"")
        .unwrap();
    assert_eq!(r.status, 405);
}
