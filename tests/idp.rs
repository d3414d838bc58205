//! A real OpenID provider for the SSO tests: the certified `oidc-provider`
//! npm package (pinned in `tests/idp/package-lock.json`), run by Node as
//! `tests/idp/idp.mjs` over HTTPS on 127.0.0.1 with a test CA made here by
//! rcgen. Each [`Idp`] is a provider of its own on its own port, stopped
//! when dropped; see `idp.mjs` for what it serves.
//!
//! Needs `node` and `npm` (Debian: `apt-get install nodejs npm`). The
//! package is installed by `npm ci` in `tests/idp` on first use when
//! `node_modules` is missing or stale (under a file lock, so parallel
//! tests and the PostgreSQL half's process do not race). Without Node an
//! [`Idp::start`] says so and returns `None`, so `cargo test` still works
//! on a machine without it; with `ICP_TEST_REQUIRE_IDP=1` it panics.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use icpd::http::client::{Client, ClientResponse, ClientTls};
use serde_json::{json, Value};

use crate::harness::TestDir;

/// How long a provider may take to say it is ready (Node starts, loads
/// the package, makes an RSA key).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Redirects [`Idp::sign_in`] follows before giving up.
const MAX_HOPS: usize = 20;

fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/idp")
}

fn required() -> bool {
    std::env::var("ICP_TEST_REQUIRE_IDP").as_deref() == Ok("1")
}

/// Says why no provider can run, and returns `None`; panics instead when
/// `ICP_TEST_REQUIRE_IDP=1`.
fn unavailable<T>(why: &str) -> Option<T> {
    let text = format!(
        "the OpenID provider of the SSO tests cannot run: {why}. Install Node.js 20+ and npm \
         (Debian: apt-get install nodejs npm), then `(cd tests/idp && npm ci)`"
    );
    assert!(!required(), "ICP_TEST_REQUIRE_IDP=1: {text}");
    eprintln!("*** {text}; the test is skipped");
    None
}

fn tool_runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The pinned `oidc-provider` version (package.json) and the installed
/// one, if any.
fn versions(dir: &Path) -> (Option<String>, Option<String>) {
    let read =
        |p: PathBuf| -> Option<Value> { serde_json::from_slice(&std::fs::read(p).ok()?).ok() };
    let pinned = read(dir.join("package.json")).and_then(|v| {
        v["dependencies"]["oidc-provider"]
            .as_str()
            .map(str::to_owned)
    });
    let installed = read(dir.join("node_modules/oidc-provider/package.json"))
        .and_then(|v| v["version"].as_str().map(str::to_owned));
    (pinned, installed)
}

/// `npm ci` in `tests/idp` unless the pinned version is installed: once
/// per process, under an exclusive lock on a file beside it across
/// processes.
fn installed() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = idp_dir();
        let current = || {
            let (pinned, installed) = versions(&dir);
            pinned.is_some() && pinned == installed
        };
        if current() {
            return Ok(());
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("node_modules.lock"))
            .map_err(|e| format!("cannot open tests/idp/node_modules.lock: {e}"))?;
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open descriptor; the lock goes with it when `lock` is dropped.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(format!(
                "cannot lock tests/idp/node_modules.lock: {}",
                std::io::Error::last_os_error()
            ));
        }
        if current() {
            return Ok(());
        }
        if !tool_runs("npm") {
            return Err("`npm` is not on PATH".into());
        }
        eprintln!("tests/idp: npm ci (oidc-provider is not installed)");
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run npm: {e}"))?;
        if !out.status.success() || !current() {
            return Err(format!(
                "`npm ci` in tests/idp failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    })
    .clone()
}

/// A test CA and a leaf certificate for 127.0.0.1 and localhost signed by
/// it: (CA PEM, leaf PEM, leaf key PEM).
fn tls_material() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "icpd test IdP CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let mut leaf =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "icpd test IdP");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// Writes `value` to `path` through a rename, so the provider never reads
/// half a file.
fn write_json(path: &Path, value: &Value) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// One running provider.
pub struct Idp {
    dir: TestDir,
    issuer: String,
    child: Option<Child>,
    /// Held open: the provider exits when it closes (this process gone).
    stdin: Option<ChildStdin>,
    /// What the provider wrote to stdout and stderr, for a failed test.
    log: Arc<Mutex<Vec<String>>>,
}

impl Idp {
    /// The state of a typical SSO test: client `icpd` (secret
    /// `icpd-client-secret`, redirect `redirect_uri`), and users `alice`
    /// (groups icp-admins, icp-devs) and `bob` (icp-devs), passwords
    /// `alice-password` and `bob-password`.
    pub fn default_state(redirect_uri: &str, post_logout_redirect_uri: &str) -> Value {
        json!({
            "clients": [{
                "client_id": "icpd",
                "client_secret": "icpd-client-secret",
                "redirect_uris": [redirect_uri],
                "post_logout_redirect_uris": [post_logout_redirect_uri],
            }],
            "users": {
                "alice": {
                    "password": "alice-password",
                    "email": "alice@example.org",
                    "name": "Alice Liddell",
                    "groups": ["icp-admins", "icp-devs"],
                },
                "bob": {
                    "password": "bob-password",
                    "email": "bob@example.org",
                    "name": "Bob Builder",
                    "groups": ["icp-devs"],
                },
            },
        })
    }

    /// Starts a provider with `state` (clients and users, see `idp.mjs`)
    /// on a free port; `None` (after a notice) where Node is missing.
    pub fn start(state: &Value) -> Option<Idp> {
        if !tool_runs("node") {
            return unavailable("`node` is not on PATH");
        }
        if let Err(why) = installed() {
            return unavailable(&why);
        }
        let dir = TestDir::new("idp");
        let (ca, cert, key) = tls_material();
        std::fs::write(dir.path.join("ca.pem"), ca).unwrap();
        std::fs::write(dir.path.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.path.join("key.pem"), key).unwrap();
        write_json(&dir.path.join("state.json"), state);

        let mut child = Command::new("node")
            .arg(idp_dir().join("idp.mjs"))
            .arg("--cert")
            .arg(dir.path.join("cert.pem"))
            .arg("--key")
            .arg(dir.path.join("key.pem"))
            .arg("--state")
            .arg(dir.path.join("state.json"))
            .current_dir(idp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node tests/idp/idp.mjs: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let out_log = log.clone();
        std::thread::spawn(move || {
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let issuer = serde_json::from_str::<Value>(&line)
                    .ok()
                    .and_then(|v| v["issuer"].as_str().map(str::to_owned));
                if let (Some(issuer), Some(tx)) = (issuer, ready.take()) {
                    let _ = tx.send(issuer);
                }
                out_log.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let stderr = child.stderr.take().unwrap();
        let err_log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                err_log.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let stdin = child.stdin.take();
        let started = Instant::now();
        let issuer = match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(issuer) => issuer,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                let log = log.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
                panic!(
                    "the test IdP did not get ready within {:?} ({status:?}):\n{log}",
                    started.elapsed()
                );
            }
        };
        Some(Idp {
            dir,
            issuer,
            child: Some(child),
            stdin,
            log,
        })
    }

    /// `https://127.0.0.1:PORT`, as the provider names itself.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The PEM file of the CA that signed the provider's certificate.
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.path.join("ca.pem")
    }

    /// A client of the provider's origin, trusting the test CA.
    pub fn client(&self) -> Client {
        Client::new(&self.issuer, ClientTls::Verify(self.ca_pem_path())).unwrap()
    }

    /// Replaces the state file: users take effect at the next sign-in
    /// (and the next token's claims); clients are read only at start.
    pub fn set_state(&self, state: &Value) {
        write_json(&self.dir.path.join("state.json"), state);
    }

    /// Replaces the signing key with a new one; returns its `kid`. The old
    /// key leaves the JWKS; sessions, clients and the issuer stay.
    pub fn rotate_keys(&self) -> String {
        let r = self
            .client()
            .request("POST", "/test/rotate", &[], b"")
            .unwrap();
        assert_eq!(r.status, 200, "POST /test/rotate: {}", text(&r));
        r.json()["kid"].as_str().unwrap().to_owned()
    }

    /// Signs `user` in as a browser would, from `authorization_url` (on
    /// the provider) to the redirect to the client's `redirect_uri`, which
    /// is not followed: the `code` and `state` it carries. A fresh cookie
    /// jar each time, so every call goes through the login form. `Err`
    /// says why no code came (wrong password, an error redirect, ...).
    pub fn sign_in(
        &self,
        authorization_url: &str,
        user: &str,
        password: &str,
    ) -> Result<(String, String), String> {
        let (_, query) = authorization_url
            .split_once('?')
            .ok_or("the authorization URL has no query")?;
        let redirect_uri = query_param(query, "redirect_uri")
            .ok_or("the authorization URL names no redirect_uri")?;
        let mut path = self
            .same_origin(authorization_url)
            .ok_or_else(|| format!("{authorization_url} is not on {}", self.issuer))?;
        let mut client = self.client();
        let mut jar = CookieJar::default();
        let mut posted = false;
        for _ in 0..MAX_HOPS {
            let r = client
                .request("GET", &path, &pairs(&jar.header_for(&path)), b"")
                .map_err(|e| format!("GET {path}: {e}"))?;
            jar.take(&r);
            let r = if r.status == 200 && login_form_action(&r).is_some() {
                if posted {
                    return Err(format!(
                        "the login form came back: {}",
                        form_error(&r).unwrap_or_default()
                    ));
                }
                posted = true;
                let action = login_form_action(&r).unwrap();
                let body = format!(
                    "login={}&password={}",
                    form_encode(user),
                    form_encode(password)
                );
                let mut headers = jar.header_for(&action);
                headers.push((
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ));
                let r = client
                    .request("POST", &action, &pairs(&headers), body.as_bytes())
                    .map_err(|e| format!("POST {action}: {e}"))?;
                jar.take(&r);
                r
            } else {
                r
            };
            if !(300..400).contains(&r.status) {
                let why = form_error(&r).unwrap_or_else(|| text(&r));
                return Err(format!("HTTP {} from the provider: {why}", r.status));
            }
            let location = r
                .header("location")
                .ok_or_else(|| format!("HTTP {} without a Location", r.status))?
                .to_owned();
            if let Some(rest) = location.strip_prefix(redirect_uri.as_str()) {
                let query = rest.split_once('?').map(|(_, q)| q).unwrap_or("");
                let query = query.split('#').next().unwrap_or("");
                if let Some(error) = query_param(query, "error") {
                    let description = query_param(query, "error_description").unwrap_or_default();
                    return Err(format!("error redirect: {error}: {description}"));
                }
                let code = query_param(query, "code").ok_or("the redirect carries no code")?;
                let state = query_param(query, "state").ok_or("the redirect carries no state")?;
                return Ok((code, state));
            }
            path = if location.starts_with('/') {
                location
            } else {
                self.same_origin(&location)
                    .ok_or_else(|| format!("redirected away from the provider, to {location}"))?
            };
        }
        Err(format!("more than {MAX_HOPS} redirects"))
    }

    /// The path and query of `url` when it is on the provider's origin.
    fn same_origin(&self, url: &str) -> Option<String> {
        let rest = url.strip_prefix(&self.issuer)?;
        match rest.chars().next() {
            None => Some("/".into()),
            Some('/') => Some(rest.to_owned()),
            Some('?') => Some(format!("/{rest}")),
            _ => None,
        }
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            let tail = &log[log.len().saturating_sub(30)..];
            eprintln!(
                "--- the test IdP's last {} output lines ---\n{}",
                tail.len(),
                tail.join("\n")
            );
        }
        drop(self.stdin.take());
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Cookies by (name, path), sent where the path fits; enough for
/// oidc-provider's `_interaction`, `_interaction_resume` and `_session`.
#[derive(Default)]
struct CookieJar {
    cookies: HashMap<(String, String), String>,
}

impl CookieJar {
    fn take(&mut self, r: &ClientResponse) {
        for (name, value) in &r.headers {
            if !name.eq_ignore_ascii_case("set-cookie") {
                continue;
            }
            let mut parts = value.split(';').map(str::trim);
            let Some((cname, cvalue)) = parts.next().and_then(|kv| kv.split_once('=')) else {
                continue;
            };
            let mut path = "/".to_owned();
            let mut expired = cvalue.is_empty();
            for attr in parts {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                match k.to_ascii_lowercase().as_str() {
                    "path" => path = v.to_owned(),
                    "max-age" => expired |= v.parse::<i64>().is_ok_and(|s| s <= 0),
                    "expires" => expired |= v.contains("1970"),
                    _ => {}
                }
            }
            let key = (cname.to_owned(), path);
            if expired {
                self.cookies.remove(&key);
            } else {
                self.cookies.insert(key, cvalue.to_owned());
            }
        }
    }

    fn header_for(&self, path: &str) -> Vec<(String, String)> {
        let path = path.split('?').next().unwrap_or(path);
        let fits = |p: &str| {
            path == p
                || (path.starts_with(p) && (p.ends_with('/') || path[p.len()..].starts_with('/')))
        };
        let cookie = self
            .cookies
            .iter()
            .filter(|((_, p), _)| fits(p))
            .map(|((n, _), v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        if cookie.is_empty() {
            Vec::new()
        } else {
            vec![("Cookie".into(), cookie)]
        }
    }
}

fn pairs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn text(r: &ClientResponse) -> String {
    let body = String::from_utf8_lossy(&r.body);
    body.chars().take(500).collect()
}

/// The action of the provider's login form, when `r` is that page.
fn login_form_action(r: &ClientResponse) -> Option<String> {
    let body = std::str::from_utf8(&r.body).ok()?;
    if !body.contains("name=\"login\"") || !body.contains("name=\"password\"") {
        return None;
    }
    let form = &body[body.find("<form")?..];
    let action = &form[form.find("action=\"")? + "action=\"".len()..];
    Some(action[..action.find('"')?].to_owned())
}

/// The error shown on the provider's page (`<… id="error" …>TEXT<`).
fn form_error(r: &ClientResponse) -> Option<String> {
    let body = std::str::from_utf8(&r.body).ok()?;
    let at = &body[body.find("id=\"error\"")?..];
    let at = &at[at.find('>')? + 1..];
    Some(at[..at.find('<')?].trim().to_owned())
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The decoded value of `name` in a URL query (`+` as a space).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k)? == name)
            .then(|| percent_decode(v))
            .flatten()
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

// ---------------------------------------------------------------------------
// The harness itself, end to end, without icpd's server.

fn random_b64url(bytes: usize) -> String {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new().fill(&mut buf).unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// One login's secrets and the authorization URL that carries their
/// public halves.
struct Login {
    url: String,
    state: String,
    nonce: String,
    verifier: String,
}

fn authorization(discovery: &Value, redirect_uri: &str) -> Login {
    let verifier = random_b64url(32);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    let state = random_b64url(16);
    let nonce = random_b64url(16);
    let url = format!(
        "{}?client_id=icpd&redirect_uri={}&response_type=code&scope={}&state={state}&nonce={nonce}&code_challenge={challenge}&code_challenge_method=S256",
        discovery["authorization_endpoint"].as_str().unwrap(),
        form_encode(redirect_uri),
        form_encode("openid email profile groups"),
    );
    Login {
        url,
        state,
        nonce,
        verifier,
    }
}

/// How the client authenticates at the token endpoint.
#[derive(Clone, Copy)]
enum ClientAuth {
    Basic,
    Post,
}

/// The token endpoint's answer to `code`: status and body.
fn exchange(
    idp: &Idp,
    discovery: &Value,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
    auth: ClientAuth,
) -> (u16, Value) {
    let token_path = idp
        .same_origin(discovery["token_endpoint"].as_str().unwrap())
        .unwrap();
    let mut body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}",
        form_encode(code),
        form_encode(redirect_uri),
        form_encode(verifier)
    );
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("icpd:icpd-client-secret")
    );
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    match auth {
        ClientAuth::Basic => headers.push(("Authorization", &basic)),
        ClientAuth::Post => body.push_str("&client_id=icpd&client_secret=icpd-client-secret"),
    }
    let r = idp
        .client()
        .request("POST", &token_path, &headers, body.as_bytes())
        .unwrap();
    (r.status, r.json())
}

/// [`exchange`] that must succeed: the token response.
fn token_response(
    idp: &Idp,
    discovery: &Value,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
    auth: ClientAuth,
) -> Value {
    let (status, body) = exchange(idp, discovery, code, verifier, redirect_uri, auth);
    assert_eq!(status, 200, "token endpoint: {body}");
    body
}

fn get_json(idp: &Idp, url: &str) -> (Vec<u8>, Value) {
    let path = idp.same_origin(url).unwrap();
    let r = idp.client().request("GET", &path, &[], b"").unwrap();
    assert_eq!(r.status, 200, "GET {url}: {}", text(&r));
    let json = r.json();
    (r.body, json)
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn provider_issues_a_verifiable_id_token() {
    if crate::pg_cluster::enabled() {
        return; // no store involved: once, in the SQLite half, is enough
    }
    let redirect_uri = "https://127.0.0.1:9/auth/oidc/callback";
    let Some(idp) = Idp::start(&Idp::default_state(redirect_uri, "https://127.0.0.1:9/")) else {
        return;
    };
    let issuer = idp.issuer().to_owned();
    assert!(issuer.starts_with("https://127.0.0.1:"), "{issuer}");

    // Discovery.
    let (_, discovery) = get_json(&idp, &format!("{issuer}/.well-known/openid-configuration"));
    assert_eq!(discovery["issuer"], issuer.as_str());
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "end_session_endpoint",
    ] {
        let url = discovery[endpoint].as_str().unwrap_or_default();
        assert!(
            url.starts_with(&format!("{issuer}/")),
            "{endpoint}: {url:?}"
        );
    }
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        json!(["S256"])
    );
    assert_eq!(discovery["response_types_supported"], json!(["code"]));
    for scope in ["openid", "email", "profile", "groups"] {
        let scopes = discovery["scopes_supported"].as_array().unwrap();
        assert!(scopes.contains(&json!(scope)), "{scope} in {scopes:?}");
    }

    // Alice signs in; the code's ID token verifies with icpd's own checks.
    let login = authorization(&discovery, redirect_uri);
    let (code, state) = idp.sign_in(&login.url, "alice", "alice-password").unwrap();
    assert_eq!(state, login.state);
    let tokens = token_response(
        &idp,
        &discovery,
        &code,
        &login.verifier,
        redirect_uri,
        ClientAuth::Basic,
    );
    let id_token = tokens["id_token"].as_str().unwrap();
    let (jwks_bytes, jwks_before) = get_json(&idp, discovery["jwks_uri"].as_str().unwrap());
    let jwks = icpd::oidc::Jwks::parse(&jwks_bytes).unwrap();
    let expected = icpd::oidc::Expected {
        issuer: &issuer,
        client_id: "icpd",
        nonce: &login.nonce,
    };
    let now = icpd::time::now_millis();
    let verified = icpd::oidc::verify(id_token, &jwks, &expected, now).unwrap();
    assert_eq!(verified.subject, "alice");
    assert_eq!(verified.claims["email"], "alice@example.org");
    assert_eq!(verified.claims["email_verified"], true);
    assert_eq!(verified.claims["preferred_username"], "alice");
    assert_eq!(verified.claims["name"], "Alice Liddell");
    assert_eq!(verified.claims["groups"], json!(["icp-admins", "icp-devs"]));
    // A code is good once.
    let (status, body) = exchange(
        &idp,
        &discovery,
        &code,
        &login.verifier,
        redirect_uri,
        ClientAuth::Basic,
    );
    assert_eq!((status, &body["error"]), (400, &json!("invalid_grant")));
    // PKCE is required: without a code_challenge there is no code.
    let plain = login
        .url
        .split("&code_challenge=")
        .next()
        .unwrap()
        .to_owned();
    let err = idp.sign_in(&plain, "alice", "alice-password").unwrap_err();
    assert!(err.contains("invalid_request"), "{err}");
    // The wrong verifier gets no tokens.
    let login = authorization(&discovery, redirect_uri);
    let (code, _) = idp.sign_in(&login.url, "alice", "alice-password").unwrap();
    let (status, body) = exchange(
        &idp,
        &discovery,
        &code,
        &random_b64url(32),
        redirect_uri,
        ClientAuth::Basic,
    );
    assert_eq!((status, &body["error"]), (400, &json!("invalid_grant")));

    // A wrong password, or a user the provider does not know: no code.
    let again = authorization(&discovery, redirect_uri);
    let err = idp.sign_in(&again.url, "alice", "wrong").unwrap_err();
    assert!(err.contains("Wrong user or password"), "{err}");
    let err = idp
        .sign_in(&again.url, "mallory", "alice-password")
        .unwrap_err();
    assert!(err.contains("Wrong user or password"), "{err}");

    // Group removal between two sign-ins shows in the next ID token.
    let mut state = Idp::default_state(redirect_uri, "https://127.0.0.1:9/");
    state["users"]["alice"]["groups"] = json!(["icp-devs"]);
    idp.set_state(&state);
    let login = authorization(&discovery, redirect_uri);
    let (code, _) = idp.sign_in(&login.url, "alice", "alice-password").unwrap();
    // client_secret_post works as well as client_secret_basic.
    let tokens = token_response(
        &idp,
        &discovery,
        &code,
        &login.verifier,
        redirect_uri,
        ClientAuth::Post,
    );
    let expected = icpd::oidc::Expected {
        nonce: &login.nonce,
        ..expected
    };
    let verified =
        icpd::oidc::verify(tokens["id_token"].as_str().unwrap(), &jwks, &expected, now).unwrap();
    assert_eq!(verified.claims["groups"], json!(["icp-devs"]));

    // Rotation: the next token's key is not in the old JWKS, only in the new.
    let old_kids = kids(&jwks_before);
    let new_kid = idp.rotate_keys();
    let (_, discovery_after) =
        get_json(&idp, &format!("{issuer}/.well-known/openid-configuration"));
    assert_eq!(discovery_after["issuer"], issuer.as_str());
    let login = authorization(&discovery, redirect_uri);
    let (code, _) = idp.sign_in(&login.url, "bob", "bob-password").unwrap();
    let tokens = token_response(
        &idp,
        &discovery,
        &code,
        &login.verifier,
        redirect_uri,
        ClientAuth::Basic,
    );
    let token = tokens["id_token"].as_str().unwrap();
    assert_eq!(kid_of(token), new_kid);
    assert!(!old_kids.contains(&new_kid), "{new_kid} in {old_kids:?}");
    let expected = icpd::oidc::Expected {
        nonce: &login.nonce,
        ..expected
    };
    assert_eq!(
        icpd::oidc::verify(token, &jwks, &expected, icpd::time::now_millis()),
        Err(icpd::oidc::TokenError::UnknownKey(Some(new_kid.clone())))
    );
    let (jwks_bytes, jwks_after) = get_json(&idp, discovery["jwks_uri"].as_str().unwrap());
    assert_eq!(kids(&jwks_after), vec![new_kid]);
    let fresh = icpd::oidc::Jwks::parse(&jwks_bytes).unwrap();
    let verified = icpd::oidc::verify(token, &fresh, &expected, icpd::time::now_millis()).unwrap();
    assert_eq!(verified.subject, "bob");
    assert_eq!(verified.claims["groups"], json!(["icp-devs"]));
}
