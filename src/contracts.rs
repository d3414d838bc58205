//! Service contracts: the OpenAPI definitions runtimes report, and Try-It,
//! which sends an operator's request to a running runtime through icpd.
//!
//! **Definitions.** A Ballerina runtime sends `openApiDefinitions` (file
//! name → the OpenAPI document, as JSON or as JSON text) in its full
//! heartbeat once icpd lists the field in `supportedHeartbeatFields`.
//! [`read_definitions`] checks each file and never refuses the heartbeat
//! for one: a file over [`MAX_DEFINITION_BYTES`], not JSON, or not an
//! OpenAPI document is kept as a row with a `problem` and no document, so
//! the console can say why. At most [`MAX_DEFINITIONS`] files are kept (the
//! first by name). Each is matched to the service it describes, by the path
//! of its `servers` URL or by its file name, against the heartbeat's
//! services. The store writes only the files whose digest changed.
//!
//! **Try-It.** [`TryIt::plan`] builds one HTTP request to a target the
//! runtime itself reported, never anything else: a Ballerina runtime's
//! `tryItHost`, or the scheme, host and port of a Micro Integrator API's
//! reported URLs. The operator gives only the method, path, query, headers
//! and body; the path is appended to the target, so it cannot name another
//! host. The operator's own credentials for the runtime arrive in a
//! dedicated request header and are sent on as `Authorization`; they are
//! never logged, audited or stored. [`TryIt::call`] runs on the Try-It
//! pool (bounded workers and queue, a time budget per call, a cap on the
//! answer), never on a request worker.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

pub use crate::config::TryItConfig;
use crate::error::{Error, Result};
use crate::http::outbound::{self, OutboundError, OutboundRequest, PeerTrust, Scheme, Timeouts};
pub use crate::model::contracts::{DefinitionWrites, NewDefinition, StoredDefinition};
use crate::model::mi::MiKind;
use crate::model::runtimes::{RuntimeDetail, Service, Status};
use crate::outbound::{Job, OutboundPool, PoolFull, PoolStats};

/// Most definition files kept per runtime.
pub const MAX_DEFINITIONS: usize = 32;
/// Largest definition kept, in bytes as the runtime sent it.
pub const MAX_DEFINITION_BYTES: usize = 1024 * 1024;
/// Longest file name kept, in characters.
pub const MAX_FILE_NAME_CHARS: usize = 200;

/// Workers and queue of the Try-It pool.
pub const POOL_WORKERS: usize = 4;
pub const POOL_QUEUE: usize = 32;
/// Largest answer body passed back, in bytes; more is refused.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Largest request body an operator may send.
pub const MAX_REQUEST_BODY_BYTES: usize = 1024 * 1024;
/// Most headers an operator may add.
pub const MAX_HEADERS: usize = 32;
/// The request header that carries the operator's credentials for the
/// runtime (sent on as `Authorization`).
pub const AUTH_HEADER: &str = "X-Try-It-Authorization";

/// Checks the `openApiDefinitions` of a full heartbeat; see the module
/// documentation. `services` are the heartbeat's services.
pub fn read_definitions(
    raw: &BTreeMap<String, Box<RawValue>>,
    services: &[Service],
) -> Vec<NewDefinition> {
    if raw.len() > MAX_DEFINITIONS {
        log::warn!(
            "a runtime reported {} OpenAPI definitions; icpd keeps the first {MAX_DEFINITIONS} by name",
            raw.len()
        );
    }
    raw.iter()
        .filter(|(n, _)| {
            let ok = !n.trim().is_empty()
                && n.chars().count() <= MAX_FILE_NAME_CHARS
                && !n.chars().any(char::is_control);
            if !ok {
                log::warn!("an OpenAPI definition with an unusable file name was not kept");
            }
            ok
        })
        .take(MAX_DEFINITIONS)
        .map(|(name, value)| read_one(name, value, services))
        .collect()
}

fn read_one(name: &str, value: &RawValue, services: &[Service]) -> NewDefinition {
    // The document as the runtime sent it: JSON text in a string, or JSON
    // itself. Either way its text is what is kept, members in their order.
    let text = match serde_json::from_str::<String>(value.get()) {
        Ok(inner) => inner,
        Err(_) => value.get().to_string(),
    };
    let size = text.len();
    let digest = hex_sha256(text.as_bytes());
    let checked = if size > MAX_DEFINITION_BYTES {
        Err(format!(
            "{size} bytes, over icpd's limit of {MAX_DEFINITION_BYTES}; not kept"
        ))
    } else {
        serde_json::from_str::<Value>(&text)
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(|d| {
                let versioned = ["openapi", "swagger"]
                    .iter()
                    .any(|k| d.get(k).is_some_and(Value::is_string));
                if d.is_object() && versioned {
                    Ok(d)
                } else {
                    Err("not an OpenAPI document (no openapi or swagger version)".to_string())
                }
            })
    };
    let (definition, problem, service) = match checked {
        Ok(doc) => (Some(text), None, service_of(name, Some(&doc), services)),
        Err(p) => (None, Some(p), service_of(name, None, services)),
    };
    NewDefinition {
        file_name: name.to_string(),
        service: service.map(|s| s.name.clone()),
        base_path: service.and_then(|s| s.base_path.clone()),
        definition,
        problem,
        digest,
        size_bytes: size as i64,
    }
}

/// The service a definition describes: the one whose base path is the
/// path of the document's first server URL, or else the one whose base
/// path or name the file is named after (Ballerina's tool writes
/// `orders_openapi.json` for base path `/orders`).
fn service_of<'s>(file: &str, doc: Option<&Value>, services: &'s [Service]) -> Option<&'s Service> {
    let trim = |p: &str| p.trim_matches('/').to_string();
    let server_path = doc
        .and_then(|d| d.pointer("/servers/0/url"))
        .and_then(Value::as_str)
        .map(|url| {
            let rest = url.split_once("://").map_or(url, |(_, r)| r);
            // `{server}:{port}/orders`, `host:9090/orders` or `/orders`.
            let path = if url.starts_with('/') {
                url
            } else {
                rest.find('/').map_or("", |i| &rest[i..])
            };
            trim(path)
        });
    let stem = file
        .rsplit_once('.')
        .map_or(file, |(s, _)| s)
        .trim_end_matches("_openapi")
        .trim_end_matches("-openapi")
        .to_ascii_lowercase();
    let by_server = server_path.filter(|p| !p.is_empty()).and_then(|p| {
        services
            .iter()
            .find(|s| s.base_path.as_deref().map(trim).as_deref() == Some(p.as_str()))
    });
    by_server.or_else(|| {
        services.iter().find(|s| {
            let base = s
                .base_path
                .as_deref()
                .map(|b| trim(b).replace('/', "_").to_ascii_lowercase());
            base.as_deref() == Some(stem.as_str()) || s.name.to_ascii_lowercase() == stem
        })
    })
}

/// A runtime's stored definitions, by file name.
pub fn definitions(store: &crate::store::Store, runtime_id: &str) -> Result<Vec<StoredDefinition>> {
    store.read(|tx| tx.openapi_definitions(runtime_id))
}

fn hex_sha256(bytes: &[u8]) -> String {
    outbound::hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

// ---- Try-It -----------------------------------------------------------

/// A place Try-It may send requests to: what the runtime reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
}

impl Target {
    /// `scheme://host:port`, as the console shows and the request names it.
    pub fn url(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{host}:{}", self.port)
    }

    /// Reads `http(s)://host[:port][/...]`, or `host[:port]` (HTTP). The
    /// path, if any, is not part of the target.
    pub fn parse(text: &str) -> Option<Target> {
        let text = text.trim();
        let (scheme, rest) = match text.split_once("://") {
            Some((s, r)) if s.eq_ignore_ascii_case("http") => (Scheme::Http, r),
            Some((s, r)) if s.eq_ignore_ascii_case("https") => (Scheme::Https, r),
            Some(_) => return None,
            None => (Scheme::Http, text),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let default_port = if scheme == Scheme::Https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => default_port,
                None => return None,
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().ok()?),
                None => (authority.to_string(), default_port),
            }
        };
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
        (valid && port != 0).then_some(Target {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// Where and whether a runtime can be tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub targets: Vec<Target>,
    /// Why it cannot be tried now, if it cannot.
    pub unavailable: Option<String>,
}

/// The targets a runtime reported: a Ballerina runtime's `tryItHost`, the
/// distinct `scheme://host:port` of an MI runtime's API URLs.
pub fn reach(detail: &RuntimeDetail, status: Status) -> Reach {
    let mut targets: Vec<Target> = Vec::new();
    let mut add = |t: Option<Target>| {
        if let Some(t) = t {
            if !targets.contains(&t) {
                targets.push(t);
            }
        }
    };
    add(detail.try_it_host.as_deref().and_then(Target::parse));
    if let Some(apis) = detail
        .mi_artifacts
        .as_ref()
        .and_then(|m| m.get(&MiKind::Api))
    {
        for api in apis {
            let urls = api.detail.get("urls").and_then(Value::as_array);
            let url = api.detail.get("url").and_then(Value::as_str);
            for u in urls
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .chain(url)
            {
                if u.contains("://") {
                    add(Target::parse(u));
                }
            }
        }
    }
    let unavailable = if status != Status::Running {
        Some("the runtime is OFFLINE".to_string())
    } else if targets.is_empty() {
        Some(if detail.runtime.runtime_type == "MI" {
            "the runtime reported no API URLs".to_string()
        } else {
            "the runtime reported no tryItHost".to_string()
        })
    } else {
        None
    };
    Reach {
        targets,
        unavailable,
    }
}

/// What an operator asks Try-It to send (`POST /api/v1/runtimes/{id}/try-it`).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TryItRequest {
    /// `GET`, `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE` or `OPTIONS`.
    pub method: String,
    /// The path on the runtime, starting with `/`, percent-encoded.
    pub path: String,
    /// The query string without `?`, percent-encoded.
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    /// One of the runtime's targets (`scheme://host:port`); the first by default.
    #[serde(default)]
    pub target: Option<String>,
    /// Required for a runtime in a critical environment.
    #[serde(default)]
    pub confirm: bool,
}

/// What the runtime answered.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TryItAnswer {
    /// The URL called (without credentials).
    pub url: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body as text (bytes that are not UTF-8 are replaced).
    pub body: String,
    pub duration_ms: u64,
}

/// One call, ready to send.
#[derive(Debug)]
pub struct Planned {
    request: OutboundRequest,
    /// `scheme://host:port/path` (no query: it may carry credentials).
    pub url: String,
}

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Headers an operator may not set: the connection is icpd's, and
/// credentials go through [`AUTH_HEADER`].
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "expect",
    "authorization",
    "proxy-authorization",
    "proxy-connection",
];

fn bad(m: impl Into<String>) -> Error {
    Error::BadRequest(m.into())
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Visible ASCII but the characters that end a path or query.
fn is_uri_part(s: &str, allow_question: bool) -> bool {
    s.bytes()
        .all(|b| (0x21..0x7f).contains(&b) && b != b'#' && (allow_question || b != b'?'))
}

/// The Try-It service: its settings, its pool and the trust for HTTPS
/// targets (read at the first HTTPS call).
pub struct TryIt {
    config: TryItConfig,
    pool: OutboundPool,
    trust: OnceLock<std::result::Result<PeerTrust, String>>,
}

impl TryIt {
    pub fn new(config: TryItConfig) -> Result<TryIt> {
        Ok(TryIt {
            config,
            pool: OutboundPool::new(POOL_WORKERS, POOL_QUEUE)
                .map_err(|e| Error::io("starting the Try-It pool", e))?,
            trust: OnceLock::new(),
        })
    }

    /// Why Try-It is off on this server, if it is.
    pub fn disabled(&self) -> Option<&'static str> {
        (!self.config.enabled)
            .then_some("Try-It is switched off on this server ([try_it] enabled = false)")
    }

    /// Checks `req` against the runtime's `reach` and builds the call.
    /// `authorization` is the operator's credential for the runtime.
    pub fn plan(
        &self,
        req: &TryItRequest,
        reach: &Reach,
        authorization: Option<&str>,
    ) -> Result<Planned> {
        let method = req.method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(bad(format!("method must be one of {}", METHODS.join(", "))));
        }
        if !req.path.starts_with('/') || req.path.len() > 4096 || !is_uri_part(&req.path, false) {
            return Err(bad(
                "path must start with /, be percent-encoded (no spaces, ? or #) and be at most 4096 characters",
            ));
        }
        let query = req.query.as_deref().unwrap_or("");
        if query.len() > 4096 || !is_uri_part(query, true) {
            return Err(bad(
                "query must be percent-encoded (no spaces or #) and at most 4096 characters",
            ));
        }
        if req.headers.len() > MAX_HEADERS {
            return Err(bad(format!("at most {MAX_HEADERS} headers")));
        }
        for (name, value) in &req.headers {
            if !is_token(name) {
                return Err(bad("a header name must be an HTTP token"));
            }
            if RESERVED_HEADERS
                .iter()
                .any(|r| name.eq_ignore_ascii_case(r))
            {
                return Err(bad(format!(
                    "header {name} is set by icpd; credentials for the runtime go in the {AUTH_HEADER} request header"
                )));
            }
            if value.len() > 8192 || value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(bad(format!(
                    "header {name}: the value must be at most 8192 characters, without line breaks"
                )));
            }
        }
        if req
            .body
            .as_ref()
            .is_some_and(|b| b.len() > MAX_REQUEST_BODY_BYTES)
        {
            return Err(bad(format!(
                "body must be at most {MAX_REQUEST_BODY_BYTES} bytes"
            )));
        }
        if let Some(a) = authorization {
            if a.len() > 8192 || a.chars().any(|c| c.is_control() && c != '\t') {
                return Err(bad(format!(
                    "{AUTH_HEADER} must be at most 8192 characters, without line breaks"
                )));
            }
        }
        if let Some(why) = self.disabled().or(reach.unavailable.as_deref()) {
            return Err(Error::Conflict(format!("cannot try this runtime: {why}")));
        }
        let target = match &req.target {
            None => reach.targets[0].clone(),
            Some(t) => {
                let wanted = Target::parse(t);
                match wanted.filter(|w| reach.targets.contains(w)) {
                    Some(w) => w,
                    None => {
                        return Err(bad(format!(
                            "target must be one the runtime reported: {}",
                            reach
                                .targets
                                .iter()
                                .map(Target::url)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )))
                    }
                }
            }
        };
        let path_and_query = if query.is_empty() {
            req.path.clone()
        } else {
            format!("{}?{query}", req.path)
        };
        let mut out = OutboundRequest::new(
            target.scheme,
            target.host.clone(),
            target.port,
            method,
            path_and_query,
        );
        out.timeouts = Timeouts {
            connect: self.config.timeout.min(Duration::from_secs(3)),
            total: self.config.timeout,
        };
        out.max_body = MAX_ANSWER_BYTES;
        for (n, v) in &req.headers {
            out = out.header(n.clone(), v.clone());
        }
        if let Some(a) = authorization {
            out = out.header("Authorization", a);
        }
        if let Some(b) = &req.body {
            out = out.with_body(b.clone().into_bytes());
        }
        Ok(Planned {
            url: format!("{}{}", target.url(), req.path),
            request: out,
        })
    }

    /// Makes the call (blocking: run it on the pool with [`TryIt::submit`]).
    pub fn call(&self, planned: &Planned) -> Result<TryItAnswer> {
        let trust = match planned.request.scheme {
            Scheme::Http => PeerTrust::Insecure,
            Scheme::Https => self
                .trust
                .get_or_init(|| {
                    crate::sso::trust_from(self.config.ca_file.as_deref(), "try_it.ca_file")
                })
                .clone()
                .map_err(Error::Upstream)?,
        };
        let started = Instant::now();
        let resp = outbound::send(&planned.request, &trust).map_err(|e| unreachable(&e))?;
        Ok(TryItAnswer {
            url: planned.url.clone(),
            status: resp.status,
            headers: resp.headers,
            body: String::from_utf8_lossy(&resp.body).into_owned(),
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Runs `job` on the Try-It pool; a full queue is refused at once.
    pub fn submit(&self, job: Job) -> Result<()> {
        self.pool
            .submit(job)
            .map_err(|e: PoolFull| Error::Upstream(format!("{e}")))
    }

    /// The pool's counters (for `/metrics`).
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Stops the pool (at shutdown).
    pub fn shutdown(&self, grace: Duration) {
        self.pool.shutdown(grace);
    }
}

fn unreachable(e: &OutboundError) -> Error {
    Error::Upstream(format!("the runtime did not answer: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(name: &str, base: &str) -> Service {
        serde_json::from_value(json!({"name": name, "basePath": base})).unwrap()
    }

    #[test]
    fn definitions_are_checked_file_by_file_and_matched_to_services() {
        let services = [
            service("service_1", "/orders"),
            service("svc2", "/billing/v1"),
        ];
        let raw = json!({
            "orders_openapi.json": {"openapi": "3.0.1", "servers": [{"url": "{server}:{port}/orders"}], "paths": {}},
            "billing.json": json!({"openapi": "3.0.1", "servers": [{"url": "http://h:9/billing/v1"}], "paths": {}}).to_string(),
            "notes.json": {"hello": "world"},
            "broken.json": "{not json",
            "huge.json": "x".repeat(MAX_DEFINITION_BYTES + 1),
            "": {"openapi": "3.0.0"},
        });
        let raw = raw_map(&raw);
        let defs = read_definitions(&raw, &services);
        let by = |n: &str| defs.iter().find(|d| d.file_name == n).unwrap();
        assert_eq!(defs.len(), 5, "the blank file name is dropped");
        assert_eq!(
            by("orders_openapi.json").service.as_deref(),
            Some("service_1")
        );
        assert_eq!(
            by("orders_openapi.json").base_path.as_deref(),
            Some("/orders")
        );
        assert!(by("orders_openapi.json").definition.is_some());
        assert_eq!(by("billing.json").service.as_deref(), Some("svc2"));
        assert!(by("notes.json")
            .problem
            .as_deref()
            .unwrap()
            .contains("not an OpenAPI"));
        assert!(by("broken.json")
            .problem
            .as_deref()
            .unwrap()
            .starts_with("not JSON"));
        let huge = by("huge.json");
        assert!(huge.definition.is_none() && huge.problem.as_deref().unwrap().contains("limit"));
        assert_eq!(huge.size_bytes as usize, MAX_DEFINITION_BYTES + 1);
        // The digest is of what the runtime sent: the same text, the same digest.
        let again = read_definitions(&raw, &services);
        assert_eq!(defs, again);
    }

    /// A heartbeat's `openApiDefinitions` as icpd decodes it.
    fn raw_map(v: &Value) -> BTreeMap<String, Box<RawValue>> {
        serde_json::from_str(&v.to_string()).unwrap()
    }

    #[test]
    fn documents_are_kept_as_sent_with_their_members_in_order() {
        let text = r#"{"openapi": "3.0.1", "paths": {"/z": {}, "/a": {}}, "info": {"title": "T"}}"#;
        let body = format!(
            r#"{{"as-json.json": {text}, "as-text.json": {}}}"#,
            Value::from(text)
        );
        let raw: BTreeMap<String, Box<RawValue>> = serde_json::from_str(&body).unwrap();
        for d in read_definitions(&raw, &[]) {
            assert_eq!(d.definition.as_deref(), Some(text), "{}", d.file_name);
            assert_eq!(d.size_bytes as usize, text.len());
        }
    }

    #[test]
    fn at_most_the_limit_of_files_is_kept() {
        let mut raw = serde_json::Map::new();
        for i in 0..MAX_DEFINITIONS + 5 {
            raw.insert(format!("f{i:03}.json"), json!({"openapi": "3.1.0"}));
        }
        let defs = read_definitions(&raw_map(&Value::Object(raw)), &[]);
        assert_eq!(defs.len(), MAX_DEFINITIONS);
        assert_eq!(defs[0].file_name, "f000.json");
    }

    #[test]
    fn targets_parse_and_name_only_a_host() {
        let t = Target::parse("http://127.0.0.1:9090").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.scheme),
            ("127.0.0.1", 9090, Scheme::Http)
        );
        assert_eq!(
            Target::parse("localhost:8290/healthcare").unwrap().url(),
            "http://localhost:8290"
        );
        assert_eq!(
            Target::parse("https://[::1]:8253/x").unwrap().url(),
            "https://[::1]:8253"
        );
        assert_eq!(
            Target::parse("https://Mi.Example.com").unwrap().url(),
            "https://mi.example.com:443"
        );
        for bad in [
            "ftp://h:1",
            "http://user@h:1",
            "http://:1",
            "http://h:0",
            "http://h:x",
            "",
        ] {
            assert_eq!(Target::parse(bad), None, "{bad}");
        }
    }

    fn reach_of(targets: &[&str]) -> Reach {
        Reach {
            targets: targets.iter().map(|t| Target::parse(t).unwrap()).collect(),
            unavailable: None,
        }
    }

    fn request(v: Value) -> TryItRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn plans_go_only_to_reported_targets_and_refuse_bad_input() {
        let tryit = TryIt::new(crate::config::Config::defaults().try_it).unwrap();
        let reach = reach_of(&["http://127.0.0.1:9090", "https://10.0.0.5:8253"]);
        let p = tryit
            .plan(
                &request(json!({"method": "get", "path": "/orders/42", "query": "a=1&b=%20"})),
                &reach,
                Some("Bearer t"),
            )
            .unwrap();
        assert_eq!(p.url, "http://127.0.0.1:9090/orders/42");
        assert_eq!(p.request.path_and_query, "/orders/42?a=1&b=%20");
        assert_eq!(p.request.method, "GET");
        assert!(p
            .request
            .headers
            .contains(&("Authorization".into(), "Bearer t".into())));
        assert!(
            !format!("{p:?}").contains("Bearer t"),
            "credentials are redacted in Debug"
        );
        let second = tryit
            .plan(
                &request(
                    json!({"method": "POST", "path": "/", "target": "https://10.0.0.5:8253/"}),
                ),
                &reach,
                None,
            )
            .unwrap();
        assert_eq!(second.request.scheme, Scheme::Https);
        let refused = [
            json!({"method": "CONNECT", "path": "/"}),
            json!({"method": "GET", "path": "orders"}),
            json!({"method": "GET", "path": "/a b"}),
            json!({"method": "GET", "path": "/a?b"}),
            json!({"method": "GET", "path": "/", "query": "a#b"}),
            json!({"method": "GET", "path": "/", "target": "http://evil.example:9090"}),
            json!({"method": "GET", "path": "/", "target": "http://127.0.0.1:9091"}),
            json!({"method": "GET", "path": "/", "headers": {"Host": "evil"}}),
            json!({"method": "GET", "path": "/", "headers": {"Authorization": "x"}}),
            json!({"method": "GET", "path": "/", "headers": {"X-A": "1\r\nX-B: 2"}}),
            json!({"method": "GET", "path": "/", "headers": {"bad name": "1"}}),
        ];
        for r in refused {
            let e = tryit.plan(&request(r.clone()), &reach, None).unwrap_err();
            assert!(matches!(e, Error::BadRequest(_)), "{r}: {e:?}");
        }
        assert!(matches!(
            tryit.plan(
                &request(json!({"method": "GET", "path": "/"})),
                &reach,
                Some("a\nb")
            ),
            Err(Error::BadRequest(_))
        ));
        let offline = Reach {
            unavailable: Some("the runtime is OFFLINE".into()),
            ..reach
        };
        assert!(matches!(
            tryit.plan(
                &request(json!({"method": "GET", "path": "/"})),
                &offline,
                None
            ),
            Err(Error::Conflict(_))
        ));
        tryit.shutdown(Duration::from_millis(100));
    }
}
