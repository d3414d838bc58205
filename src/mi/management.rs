//! MI's Management API (`https://<runtimeHostname>:<runtimePort>/management/...`)
//! as plain data: the token icpd signs, every call of MI.md's action tables
//! and detail reads as a [`Call`], the exact request each one is
//! ([`prepare`]), and what MI's answer means ([`interpret`]).
//!
//! Those three are pure, so every path, body and answer style is tested
//! without a socket. [`call`] and [`list_users`] compose them with
//! `http::outbound::send`; they block for up to the target's timeouts and
//! must run on the `OutboundPool`. [`PreparedCall`] serializes to the
//! `{"method","path","body"}` form of MI.md's tunnel mode, so a tunneled
//! command is built by the same code as a direct call.
//!
//! The key material a token is signed with is a secret: it never appears
//! in a `Debug` output, a log line or an error message, and neither does
//! the token (a bearer credential MI treats as admin) or a user's password.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};

use crate::http::outbound::{self, OutboundError, OutboundRequest, PeerTrust, Scheme, Timeouts};

/// Lifetime of the tokens icpd signs. MI accepts a token until 60 s after
/// its `exp` (clock skew), so a token lives at most two minutes: long
/// enough for one call, short enough that a leaked one is soon useless
/// (the reference's one-hour token is called out in MI.md).
pub const TOKEN_LIFETIME_SECS: i64 = 60;

/// Most users [`list_users`] reads one by one.
pub const MAX_USERS: usize = 500;

/// Longest MI text kept in an error, in characters.
const MAX_MESSAGE: usize = 200;

/// The HS256 bearer token MI's `JWTTokenSecurityHandler` accepts from ICP:
/// header `{"alg":"HS256","typ":"JWT","kid":key_id}`, claims iss, sub
/// (`icpd`, the user MI logs for the call), aud, scope, iat, nbf and
/// `exp = now + 60`, HMAC-SHA256 keyed by the UTF-8 bytes of the key
/// material, base64url without padding.
pub fn token(key_id: &str, key_material: &str, now_secs: i64) -> String {
    #[derive(Serialize, schemars::JsonSchema)]
    struct Header<'a> {
        alg: &'a str,
        typ: &'a str,
        kid: &'a str,
    }
    #[derive(Serialize, schemars::JsonSchema)]
    struct Claims<'a> {
        iss: &'a str,
        sub: &'a str,
        aud: &'a str,
        scope: &'a str,
        iat: i64,
        nbf: i64,
        exp: i64,
    }
    let header = Header {
        alg: "HS256",
        typ: "JWT",
        kid: key_id,
    };
    let claims = Claims {
        iss: "icp-runtime-jwt-issuer",
        sub: "icpd",
        aud: "icp-server",
        scope: "runtime_agent",
        iat: now_secs,
        nbf: now_secs,
        exp: now_secs + TOKEN_LIFETIME_SECS,
    };
    // Serializing these structs cannot fail (strings and integers only).
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let claims = serde_json::to_vec(&claims).unwrap_or_default();
    let input = format!("{}.{}", B64URL.encode(header), B64URL.encode(claims));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key_material.as_bytes());
    let signature = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", B64URL.encode(signature.as_ref()))
}

/// The artifact kinds MI's Management API has a resource for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    ProxyServices,
    Endpoints,
    InboundEndpoints,
    MessageProcessors,
    Tasks,
    Apis,
    Sequences,
    Templates,
    MessageStores,
    LocalEntries,
    DataServices,
    DataSources,
    Applications,
}

impl Resource {
    /// Every resource, in MI.md's order.
    pub const ALL: [Resource; 13] = [
        Resource::ProxyServices,
        Resource::Endpoints,
        Resource::InboundEndpoints,
        Resource::MessageProcessors,
        Resource::Tasks,
        Resource::Apis,
        Resource::Sequences,
        Resource::Templates,
        Resource::MessageStores,
        Resource::LocalEntries,
        Resource::DataServices,
        Resource::DataSources,
        Resource::Applications,
    ];

    /// The path segment after `/management/`.
    pub fn segment(self) -> &'static str {
        match self {
            Resource::ProxyServices => "proxy-services",
            Resource::Endpoints => "endpoints",
            Resource::InboundEndpoints => "inbound-endpoints",
            Resource::MessageProcessors => "message-processors",
            Resource::Tasks => "tasks",
            Resource::Apis => "apis",
            Resource::Sequences => "sequences",
            Resource::Templates => "templates",
            Resource::MessageStores => "message-stores",
            Resource::LocalEntries => "local-entries",
            Resource::DataServices => "data-services",
            Resource::DataSources => "data-sources",
            Resource::Applications => "applications",
        }
    }

    /// The query parameter naming one artifact in a detail read.
    pub fn detail_param(self) -> &'static str {
        match self {
            Resource::ProxyServices => "proxyServiceName",
            Resource::Endpoints => "endpointName",
            Resource::InboundEndpoints => "inboundEndpointName",
            Resource::Tasks => "taskName",
            Resource::Apis => "apiName",
            Resource::Sequences => "sequenceName",
            Resource::DataServices => "dataServiceName",
            Resource::Applications => "carbonAppName",
            Resource::MessageProcessors
            | Resource::Templates
            | Resource::MessageStores
            | Resource::LocalEntries
            | Resource::DataSources => "name",
        }
    }

    /// Whether MI can activate and deactivate it ([`Call::SetStatus`]).
    pub fn has_status(self) -> bool {
        matches!(
            self,
            Resource::ProxyServices
                | Resource::Endpoints
                | Resource::InboundEndpoints
                | Resource::MessageProcessors
                | Resource::Tasks
        )
    }

    /// Whether MI can switch its tracing and statistics
    /// ([`Call::SetTracing`], [`Call::SetStatistics`]; templates: sequence
    /// templates only).
    pub fn has_aspects(self) -> bool {
        matches!(
            self,
            Resource::ProxyServices
                | Resource::Endpoints
                | Resource::InboundEndpoints
                | Resource::Apis
                | Resource::Sequences
                | Resource::Templates
        )
    }
}

/// The two kinds of MI template; a detail read must name one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateKind {
    Sequence,
    Endpoint,
}

impl TemplateKind {
    fn as_str(self) -> &'static str {
        match self {
            TemplateKind::Sequence => "sequence",
            TemplateKind::Endpoint => "endpoint",
        }
    }
}

/// A password for [`Call::AddUser`]; `Debug` shows `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(text: impl Into<String>) -> Password {
        Password(text.into())
    }

    /// The clear text, for the request body only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One Management API call: every row of MI.md's two action tables, the
/// detail reads, and the unauthenticated root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Activate (`active`) or deactivate an artifact with a status.
    SetStatus {
        resource: Resource,
        name: String,
        active: bool,
    },
    /// Run a task once now.
    TriggerTask { name: String },
    /// Switch message tracing (templates: sequence templates).
    SetTracing {
        resource: Resource,
        name: String,
        on: bool,
    },
    /// Switch statistics collection (templates: sequence templates).
    SetStatistics {
        resource: Resource,
        name: String,
        on: bool,
    },
    /// All loggers with their levels.
    Loggers,
    /// One logger.
    Logger { name: String },
    /// Change an existing logger's level.
    SetLoggerLevel { name: String, level: String },
    /// Add a logger for a class or package.
    AddLogger {
        name: String,
        level: String,
        class: String,
    },
    /// Remove a logger (MI refuses the root logger).
    DeleteLogger { name: String },
    /// The user ids (not their roles: see [`list_users`]).
    Users,
    /// One user with roles.
    User { id: String },
    /// Add a user to MI's user store.
    AddUser {
        id: String,
        password: Password,
        admin: bool,
    },
    /// Delete a user; `domain` outside the primary user store domain.
    DeleteUser { id: String, domain: Option<String> },
    /// The log files, optionally those whose name contains `search`.
    LogFiles { search: Option<String> },
    /// One log file's text.
    LogFile { file: String },
    /// A registry collection's children (`path` like `registry/config`).
    Registry { path: String },
    /// A registry resource's content.
    RegistryContent { path: String },
    /// A registry resource's name and media type.
    RegistryMetadata { path: String },
    /// A registry resource's properties.
    RegistryProperties { path: String },
    /// Why a carbon application failed to deploy.
    CarbonAppFault { name: String },
    /// Why a data service failed to deploy (unconfirmed on MI's side).
    DataServiceFault { name: String },
    /// One artifact's detail, with its source XML in `configuration`.
    /// For templates this reads a sequence template; see `TemplateDetail`.
    Detail { resource: Resource, name: String },
    /// One template's detail, of either kind.
    TemplateDetail { name: String, kind: TemplateKind },
    /// `GET /management`: MI's version; needs no token.
    Root,
    /// A proxy service's WSDL, from the runtime's own service port (not
    /// its Management API): `GET path_and_query` on the management host,
    /// without a token, over HTTPS or plain HTTP as the URL MI gave says.
    Wsdl {
        https: bool,
        port: u16,
        path_and_query: String,
    },
}

/// The form of a successful answer a call expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Json,
    Text,
    Bytes,
}

impl Call {
    /// Whether the call changes the runtime (for audit entries and metrics).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Call::SetStatus { .. }
                | Call::TriggerTask { .. }
                | Call::SetTracing { .. }
                | Call::SetStatistics { .. }
                | Call::SetLoggerLevel { .. }
                | Call::AddLogger { .. }
                | Call::DeleteLogger { .. }
                | Call::AddUser { .. }
                | Call::DeleteUser { .. }
        )
    }

    /// A short stable name of the kind of call, for metric labels and logs
    /// (never a runtime's artifact names).
    pub fn label(&self) -> &'static str {
        match self {
            Call::SetStatus { .. } => "set_status",
            Call::TriggerTask { .. } => "trigger_task",
            Call::SetTracing { .. } => "set_tracing",
            Call::SetStatistics { .. } => "set_statistics",
            Call::Loggers => "loggers",
            Call::Logger { .. } => "logger",
            Call::SetLoggerLevel { .. } => "set_logger_level",
            Call::AddLogger { .. } => "add_logger",
            Call::DeleteLogger { .. } => "delete_logger",
            Call::Users => "users",
            Call::User { .. } => "user",
            Call::AddUser { .. } => "add_user",
            Call::DeleteUser { .. } => "delete_user",
            Call::LogFiles { .. } => "log_files",
            Call::LogFile { .. } => "log_file",
            Call::Registry { .. } => "registry",
            Call::RegistryContent { .. } => "registry_content",
            Call::RegistryMetadata { .. } => "registry_metadata",
            Call::RegistryProperties { .. } => "registry_properties",
            Call::CarbonAppFault { .. } => "carbon_app_fault",
            Call::DataServiceFault { .. } => "data_service_fault",
            Call::Detail { .. } => "detail",
            Call::TemplateDetail { .. } => "template_detail",
            Call::Root => "root",
            Call::Wsdl { .. } => "wsdl",
        }
    }

    /// What a successful answer is: JSON, except a log file (text) and
    /// registry content (bytes).
    pub fn expects(&self) -> Expect {
        match self {
            Call::LogFile { .. } | Call::Wsdl { .. } => Expect::Text,
            Call::RegistryContent { .. } => Expect::Bytes,
            _ => Expect::Json,
        }
    }

    fn is_user_call(&self) -> bool {
        matches!(
            self,
            Call::Users | Call::User { .. } | Call::AddUser { .. } | Call::DeleteUser { .. }
        )
    }

    /// Refuses, before anything is sent, a call MI could only refuse: an
    /// empty name, or an action the resource does not have (MI.md: status
    /// for proxies, endpoints, inbound endpoints, message processors and
    /// tasks; tracing and statistics for proxies, endpoints, inbound
    /// endpoints, APIs, sequences and templates).
    pub fn validate(&self) -> Result<(), CallError> {
        let named = |what: &str, v: &str| {
            if v.is_empty() {
                Err(CallError::Invalid(format!("the {what} is empty")))
            } else {
                Ok(())
            }
        };
        match self {
            Call::SetStatus { resource, name, .. } => {
                if !resource.has_status() {
                    return Err(CallError::Invalid(format!(
                        "MI cannot activate or deactivate {}",
                        resource.segment()
                    )));
                }
                named("artifact name", name)
            }
            Call::SetTracing { resource, name, .. }
            | Call::SetStatistics { resource, name, .. } => {
                if !resource.has_aspects() {
                    return Err(CallError::Invalid(format!(
                        "MI cannot switch tracing or statistics of {}",
                        resource.segment()
                    )));
                }
                named("artifact name", name)
            }
            Call::TriggerTask { name }
            | Call::Detail { name, .. }
            | Call::TemplateDetail { name, .. }
            | Call::CarbonAppFault { name }
            | Call::DataServiceFault { name } => named("artifact name", name),
            Call::Logger { name } | Call::DeleteLogger { name } => named("logger name", name),
            Call::SetLoggerLevel { name, level } => {
                named("logger name", name)?;
                named("log level", level)
            }
            Call::AddLogger { name, level, class } => {
                named("logger name", name)?;
                named("log level", level)?;
                named("logger class", class)
            }
            Call::User { id } | Call::DeleteUser { id, .. } => named("user id", id),
            Call::AddUser { id, password, .. } => {
                named("user id", id)?;
                named("password", password.expose())
            }
            Call::LogFile { file } => named("log file name", file),
            Call::Registry { path }
            | Call::RegistryContent { path }
            | Call::RegistryMetadata { path }
            | Call::RegistryProperties { path } => named("registry path", path),
            Call::Loggers | Call::Users | Call::LogFiles { .. } | Call::Root => Ok(()),
            Call::Wsdl { path_and_query, .. } => {
                if path_and_query.starts_with('/') {
                    Ok(())
                } else {
                    Err(CallError::Invalid("the WSDL path is not absolute".into()))
                }
            }
        }
    }
}

/// The request a call is: method, encoded path and query, JSON body.
/// Serializes as MI.md's tunnel form `{"method","path","body"}`.
#[derive(Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PreparedCall {
    pub method: &'static str,
    #[serde(rename = "path")]
    pub path_and_query: String,
    pub body: Option<Value>,
}

impl fmt::Debug for PreparedCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = self.body.as_ref().map(|b| {
            let mut b = b.clone();
            if let Some(p) = b.get_mut("password") {
                *p = Value::from("<redacted>");
            }
            b
        });
        f.debug_struct("PreparedCall")
            .field("method", &self.method)
            .field("path_and_query", &self.path_and_query)
            .field("body", &body)
            .finish()
    }
}

/// Appends `s` percent-encoded: every byte but the unreserved characters
/// (RFC 3986) and those in `keep` becomes `%XX`.
fn encode_into(out: &mut String, s: &str, keep: &[u8]) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// One path segment: `/`, `?`, `#`, `%` and the rest are encoded, and a
/// segment of only dots is encoded whole, so no name can leave its
/// segment or walk up the path.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    if !s.is_empty() && s.bytes().all(|b| b == b'.') {
        for _ in 0..s.len() {
            out.push_str("%2E");
        }
    } else {
        encode_into(&mut out, s, b"");
    }
    out
}

/// A query string from `(name, value)` pairs; `/` is kept in values
/// (registry paths and file names read better, and it cannot end a
/// query), everything that could (`&`, `=`, `#`, `+`, `%`, ...) is encoded.
fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        encode_into(&mut out, k, b"");
        out.push('=');
        encode_into(&mut out, v, b"/");
    }
    out
}

fn enable(on: bool) -> &'static str {
    if on {
        "enable"
    } else {
        "disable"
    }
}

/// The request for `call` (pure). Bodies carry exactly MI.md's members;
/// templates always get `"type":"sequence"` for tracing and statistics.
pub fn prepare(call: &Call) -> PreparedCall {
    const M: &str = "/management";
    let get = |path: String| PreparedCall {
        method: "GET",
        path_and_query: path,
        body: None,
    };
    let with = |method: &'static str, path: String, body: Value| PreparedCall {
        method,
        path_and_query: path,
        body: Some(body),
    };
    let aspect = |resource: &Resource, name: &str, field: &str, on: bool| {
        let mut body = json!({"name": name, field: enable(on)});
        if *resource == Resource::Templates {
            body["type"] = json!("sequence");
        }
        with("POST", format!("{M}/{}", resource.segment()), body)
    };
    match call {
        Call::SetStatus {
            resource,
            name,
            active,
        } => with(
            "POST",
            format!("{M}/{}", resource.segment()),
            json!({"name": name, "status": if *active { "active" } else { "inactive" }}),
        ),
        Call::TriggerTask { name } => with(
            "POST",
            format!("{M}/tasks"),
            json!({"name": name, "status": "trigger"}),
        ),
        Call::SetTracing { resource, name, on } => aspect(resource, name, "trace", *on),
        Call::SetStatistics { resource, name, on } => aspect(resource, name, "statistics", *on),
        Call::Loggers => get(format!("{M}/logging")),
        Call::Logger { name } => get(format!("{M}/logging{}", query(&[("loggerName", name)]))),
        Call::SetLoggerLevel { name, level } => with(
            "PATCH",
            format!("{M}/logging"),
            json!({"loggerName": name, "loggingLevel": level}),
        ),
        Call::AddLogger { name, level, class } => with(
            "PATCH",
            format!("{M}/logging"),
            json!({"loggerName": name, "loggingLevel": level, "loggerClass": class}),
        ),
        Call::DeleteLogger { name } => PreparedCall {
            method: "DELETE",
            path_and_query: format!("{M}/logging{}", query(&[("loggerName", name)])),
            body: None,
        },
        Call::Users => get(format!("{M}/users")),
        Call::User { id } => get(format!("{M}/users/{}", encode_segment(id))),
        Call::AddUser {
            id,
            password,
            admin,
        } => with(
            "POST",
            format!("{M}/users"),
            json!({"userId": id, "password": password.expose(), "isAdmin": admin}),
        ),
        Call::DeleteUser { id, domain } => {
            let q = match domain {
                Some(d) => query(&[("domain", d)]),
                None => String::new(),
            };
            PreparedCall {
                method: "DELETE",
                path_and_query: format!("{M}/users/{}{q}", encode_segment(id)),
                body: None,
            }
        }
        Call::LogFiles { search } => match search {
            Some(k) => get(format!("{M}/logs{}", query(&[("searchKey", k)]))),
            None => get(format!("{M}/logs")),
        },
        Call::LogFile { file } => get(format!("{M}/logs{}", query(&[("file", file)]))),
        Call::Registry { path } => get(format!(
            "{M}/registry-resources{}",
            query(&[("path", path)])
        )),
        Call::RegistryContent { path } => get(format!(
            "{M}/registry-resources/content{}",
            query(&[("path", path)])
        )),
        Call::RegistryMetadata { path } => get(format!(
            "{M}/registry-resources/metadata{}",
            query(&[("path", path)])
        )),
        Call::RegistryProperties { path } => get(format!(
            "{M}/registry-resources/properties{}",
            query(&[("path", path)])
        )),
        Call::CarbonAppFault { name } => {
            get(format!("{M}/applications/{}/fault", encode_segment(name)))
        }
        Call::DataServiceFault { name } => {
            get(format!("{M}/data-services/{}/fault", encode_segment(name)))
        }
        Call::Detail {
            resource: Resource::Templates,
            name,
        } => get(format!(
            "{M}/templates{}",
            query(&[("name", name), ("type", "sequence")])
        )),
        Call::Detail { resource, name } => get(format!(
            "{M}/{}{}",
            resource.segment(),
            query(&[(resource.detail_param(), name)])
        )),
        Call::TemplateDetail { name, kind } => get(format!(
            "{M}/templates{}",
            query(&[("name", name), ("type", kind.as_str())])
        )),
        Call::Root => get(M.to_string()),
        Call::Wsdl { path_and_query, .. } => get(path_and_query.clone()),
    }
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// MI's JSON (`Null` for an empty body).
    Json(Value),
    /// A log file (decoded as UTF-8, invalid bytes replaced).
    Text(String),
    /// Registry content, as MI sent it.
    Bytes(Vec<u8>),
}

impl Answer {
    /// The JSON, for a JSON answer.
    pub fn json(&self) -> Option<&Value> {
        match self {
            Answer::Json(v) => Some(v),
            _ => None,
        }
    }
}

/// Why a call did not succeed. Messages never contain key material,
/// tokens or passwords.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The call was not sent: it names nothing, or asks for an action the
    /// resource does not have.
    Invalid(String),
    /// No answer from the runtime (unreachable, timeout, TLS, a changed
    /// certificate, an oversized or garbled answer).
    Outbound(OutboundError),
    /// 401: MI did not accept icpd's token.
    Unauthorized,
    /// 403 on `/management/users`: MI uses its file-based user store.
    UserStoreUnsupported,
    /// 404 (or a log file MI could not read), with MI's text when it gave one.
    NotFound(Option<String>),
    /// MI refused the call: a 4xx/5xx other than the above, or a 2xx whose
    /// body is `{"Error": ...}`. `message` is MI's text, bounded.
    Refused { status: u16, message: String },
    /// A 2xx whose body is not what MI sends for this call.
    Malformed(String),
    /// More users than [`MAX_USERS`]; their details were not read.
    TooManyUsers { count: usize },
}

impl CallError {
    /// A stable short code. Failures without an answer use
    /// `OutboundError::kind` ("unreachable", "timeout", "tls",
    /// "certificate_changed", "too_large", "malformed", "invalid_request").
    pub fn code(&self) -> &'static str {
        match self {
            CallError::Invalid(_) => "invalid_call",
            CallError::Outbound(e) => e.kind(),
            CallError::Unauthorized => "unauthorized",
            CallError::UserStoreUnsupported => "user_store_unsupported",
            CallError::NotFound(_) => "not_found",
            CallError::Refused { .. } => "refused",
            CallError::Malformed(_) => "malformed",
            CallError::TooManyUsers { .. } => "too_many_users",
        }
    }
}

impl From<OutboundError> for CallError {
    fn from(e: OutboundError) -> CallError {
        CallError::Outbound(e)
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Invalid(m) => write!(f, "not sent to MI: {m}"),
            CallError::Outbound(e) => e.fmt(f),
            CallError::Unauthorized => f.write_str(
                "MI refused icpd's token (HTTP 401); check that the runtime's [icp_config] \
                 secret is the secret icpd holds for it (same key id and key material), that \
                 icp_config.enabled is true, and that the two clocks agree within a minute",
            ),
            CallError::UserStoreUnsupported => f.write_str(
                "MI refused user management (HTTP 403): the runtime uses its file-based user \
                 store (MI's default), whose users cannot be listed or changed through the \
                 Management API; configure an LDAP or JDBC user store in MI's deployment.toml \
                 to manage users from icpd",
            ),
            CallError::NotFound(Some(m)) => write!(f, "not found on the runtime: {m}"),
            CallError::NotFound(None) => f.write_str(
                "not found on the runtime (HTTP 404); it may have been undeployed or renamed \
                 since its last heartbeat",
            ),
            CallError::Refused { status, message } if message.is_empty() => write!(
                f,
                "MI refused the call (HTTP {status}) without saying why; see the runtime's \
                 wso2carbon.log"
            ),
            CallError::Refused { status, message } => {
                write!(f, "MI refused the call (HTTP {status}): {message}")
            }
            CallError::Malformed(m) => write!(
                f,
                "MI's answer could not be read: {m}; check that the address is the runtime's \
                 management port"
            ),
            CallError::TooManyUsers { count } => write!(
                f,
                "MI lists {count} users; icpd reads the roles of at most {MAX_USERS}, so use \
                 MI's own tooling for a user store this size"
            ),
        }
    }
}

impl std::error::Error for CallError {}

/// `s` with control characters turned into spaces, trimmed, and cut to
/// [`MAX_MESSAGE`] characters.
fn bounded(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    if clean.chars().count() > MAX_MESSAGE {
        let cut: String = clean.chars().take(MAX_MESSAGE).collect();
        format!("{cut}…")
    } else {
        clean.to_string()
    }
}

/// MI's text in an answer: the `Error`, `message` or `Message` member of a
/// JSON object, else the start of the body; `None` when empty.
fn mi_message(body: &[u8]) -> Option<String> {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => ["Error", "message", "Message"]
            .iter()
            .find_map(|k| o.get(*k))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    let text = bounded(&text);
    (!text.is_empty()).then_some(text)
}

/// What MI's answer to `call` means (pure): the answer on success, else
/// why not. A 2xx whose JSON object has `Error` is a refusal (MI answers
/// some refusals with 200).
pub fn interpret(
    call: &Call,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Answer, CallError> {
    // MI answers a log file it cannot read with an empty 500.
    if let (Call::LogFile { file }, 500) = (call, status) {
        if body.trim_ascii().is_empty() {
            return Err(CallError::NotFound(Some(format!(
                "MI has no readable log file named '{}'",
                bounded(file)
            ))));
        }
    }
    match status {
        200..=299 => {}
        401 => return Err(CallError::Unauthorized),
        403 if call.is_user_call() => return Err(CallError::UserStoreUnsupported),
        404 => return Err(CallError::NotFound(mi_message(body))),
        _ => {
            return Err(CallError::Refused {
                status,
                message: mi_message(body).unwrap_or_default(),
            })
        }
    }
    let refusal = |v: &Value| {
        v.get("Error").map(|e| CallError::Refused {
            status,
            message: bounded(&match e {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        })
    };
    let is_json = content_type.is_some_and(|t| t.to_ascii_lowercase().contains("json"));
    match call.expects() {
        Expect::Json => {
            if body.trim_ascii().is_empty() {
                return Ok(Answer::Json(Value::Null));
            }
            let v: Value = serde_json::from_slice(body).map_err(|_| {
                CallError::Malformed(format!(
                    "expected JSON, got {:?}",
                    bounded(&String::from_utf8_lossy(&body[..body.len().min(400)]))
                ))
            })?;
            if let Some(e) = refusal(&v) {
                return Err(e);
            }
            // Registry properties: on an error MI puts its text in `list`.
            if let (Call::RegistryProperties { .. }, Some(Value::String(m))) = (call, v.get("list"))
            {
                return Err(CallError::Refused {
                    status,
                    message: bounded(m),
                });
            }
            Ok(Answer::Json(v))
        }
        expect => {
            if is_json {
                if let Some(e) = serde_json::from_slice::<Value>(body)
                    .ok()
                    .as_ref()
                    .and_then(refusal)
                {
                    return Err(e);
                }
            }
            Ok(match expect {
                Expect::Text => Answer::Text(String::from_utf8_lossy(body).into_owned()),
                _ => Answer::Bytes(body.to_vec()),
            })
        }
    }
}

/// Where and how to call one runtime's Management API.
#[derive(Clone)]
pub struct Target {
    /// `runtimeHostname` from the runtime's last full heartbeat.
    pub host: String,
    /// `runtimePort` from the same heartbeat.
    pub port: u16,
    /// Key id of the secret the runtime heartbeats with.
    pub key_id: String,
    /// That secret's key material: signs the token; never shown.
    pub key_material: String,
    pub trust: PeerTrust,
    pub timeouts: Timeouts,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("key_id", &self.key_id)
            .field("key_material", &"<redacted>")
            .field("trust", &self.trust)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// Makes one call with a fresh token (`now_secs` is the Unix time) and
/// returns the answer and the SHA-256 of the runtime's certificate, the
/// pin to record after a first contact. Blocks up to
/// `target.timeouts.total`: run it on the `OutboundPool`.
pub fn call(
    target: &Target,
    call: &Call,
    now_secs: i64,
) -> Result<(Answer, Option<[u8; 32]>), CallError> {
    call.validate()?;
    if let Call::Wsdl {
        https,
        port,
        path_and_query,
    } = call
    {
        let scheme = if *https { Scheme::Https } else { Scheme::Http };
        let mut req = OutboundRequest::new(
            scheme,
            target.host.clone(),
            *port,
            "GET",
            path_and_query.clone(),
        )
        .header("Accept", "text/xml, application/xml, */*");
        req.timeouts = target.timeouts;
        let resp = outbound::send(&req, &target.trust)?;
        let answer = interpret(call, resp.status, resp.header("content-type"), &resp.body)?;
        // The service port's certificate is not the Management API's pin.
        return Ok((answer, None));
    }
    let prepared = prepare(call);
    let bearer = format!(
        "Bearer {}",
        token(&target.key_id, &target.key_material, now_secs)
    );
    let mut req = OutboundRequest::new(
        Scheme::Https,
        target.host.clone(),
        target.port,
        prepared.method,
        prepared.path_and_query,
    )
    .header("Authorization", bearer)
    .header("Accept", "application/json");
    if let Some(body) = &prepared.body {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| CallError::Invalid(format!("cannot encode the body: {e}")))?;
        req = req
            .header("Content-Type", "application/json")
            .with_body(bytes);
    }
    req.timeouts = target.timeouts;
    let resp = outbound::send(&req, &target.trust)?;
    let answer = interpret(call, resp.status, resp.header("content-type"), &resp.body)?;
    Ok((answer, resp.peer_sha256))
}

/// One user of MI's user store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MiUser {
    pub user_id: String,
    pub is_admin: bool,
    pub roles: Vec<String>,
}

/// Lists MI's users with their roles: `GET /management/users`, then
/// `GET /management/users/{u}` for each (at most [`MAX_USERS`]; more is
/// [`CallError::TooManyUsers`]). A user deleted between the two reads is
/// left out. With `PeerTrust::Pin(None)` the certificate seen by the first
/// call is pinned for the rest. A 403 is
/// [`CallError::UserStoreUnsupported`]. Blocks for one call per user.
pub fn list_users(target: &Target, now_secs: i64) -> Result<Vec<MiUser>, CallError> {
    let (answer, pin) = call(target, &Call::Users, now_secs)?;
    let malformed = |what: &str| CallError::Malformed(format!("the user list {what}"));
    let list = answer
        .json()
        .and_then(|v| v.get("list"))
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("has no `list` array"))?;
    if list.len() > MAX_USERS {
        return Err(CallError::TooManyUsers { count: list.len() });
    }
    let ids = list
        .iter()
        .map(|u| u.get("userId").and_then(Value::as_str).map(str::to_string))
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| malformed("has an entry without a string `userId`"))?;
    let pinned;
    let target = match (&target.trust, pin) {
        (PeerTrust::Pin(None), Some(pin)) => {
            pinned = Target {
                trust: PeerTrust::Pin(Some(pin)),
                ..target.clone()
            };
            &pinned
        }
        _ => target,
    };
    let mut users = Vec::with_capacity(ids.len());
    for id in ids {
        let v = match call(target, &Call::User { id: id.clone() }, now_secs) {
            Ok((Answer::Json(v), _)) => v,
            Ok(_) => return Err(malformed("answer is not JSON")),
            Err(CallError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        let roles = match v.get("roles") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|r| r.as_str().map(str::to_string))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| malformed("has a role that is not a string"))?,
            Some(_) => return Err(malformed("has `roles` that are not a list")),
        };
        users.push(MiUser {
            user_id: v
                .get("userId")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or(id),
            is_admin: v.get("isAdmin").and_then(Value::as_bool).unwrap_or(false),
            roles,
        });
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KID: &str = "k3y1d";
    const MATERIAL: &str = "c2VjcmV0LWtleS1tYXRlcmlhbC0zMi1ieXRlcy1sb25nIQ==";
    const NOW: i64 = 1_795_348_810;

    fn decode(part: &str) -> Value {
        serde_json::from_slice(&B64URL.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn token_verifies_and_expires_after_sixty_seconds() {
        let t = token(KID, MATERIAL, NOW);
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(!t.contains('='), "no padding: {t}");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, MATERIAL.as_bytes());
        let input = format!("{}.{}", parts[0], parts[1]);
        ring::hmac::verify(&key, input.as_bytes(), &B64URL.decode(parts[2]).unwrap())
            .expect("signature verifies with the key material");
        let other =
            ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"another key material, 32 bytes..");
        assert!(
            ring::hmac::verify(&other, input.as_bytes(), &B64URL.decode(parts[2]).unwrap())
                .is_err()
        );
        assert_eq!(
            decode(parts[0]),
            json!({"alg": "HS256", "typ": "JWT", "kid": KID})
        );
        let claims = decode(parts[1]);
        assert_eq!(
            claims,
            json!({"iss": "icp-runtime-jwt-issuer", "sub": "icpd", "aud": "icp-server",
                   "scope": "runtime_agent", "iat": NOW, "nbf": NOW, "exp": NOW + 60})
        );
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            60
        );
        // Deterministic for the same inputs; a second later is another token.
        assert_eq!(token(KID, MATERIAL, NOW), t);
        assert_ne!(token(KID, MATERIAL, NOW + 1), t);
    }

    fn check(call: Call, method: &str, path: &str, body: Option<Value>) {
        let p = prepare(&call);
        assert_eq!(
            (p.method, p.path_and_query.as_str(), &p.body),
            (method, path, &body),
            "{call:?}"
        );
        call.validate().unwrap_or_else(|e| panic!("{call:?}: {e}"));
    }

    fn s(v: &str) -> String {
        v.to_string()
    }

    #[test]
    fn every_action_of_the_first_table() {
        use Resource::*;
        for (r, seg) in [
            (ProxyServices, "proxy-services"),
            (Endpoints, "endpoints"),
            (InboundEndpoints, "inbound-endpoints"),
            (MessageProcessors, "message-processors"),
            (Tasks, "tasks"),
        ] {
            for (active, status) in [(true, "active"), (false, "inactive")] {
                check(
                    Call::SetStatus {
                        resource: r,
                        name: s("P"),
                        active,
                    },
                    "POST",
                    &format!("/management/{seg}"),
                    Some(json!({"name": "P", "status": status})),
                );
            }
        }
        check(
            Call::TriggerTask { name: s("T") },
            "POST",
            "/management/tasks",
            Some(json!({"name": "T", "status": "trigger"})),
        );
        for (r, seg) in [
            (ProxyServices, "proxy-services"),
            (Endpoints, "endpoints"),
            (InboundEndpoints, "inbound-endpoints"),
            (Apis, "apis"),
            (Sequences, "sequences"),
        ] {
            for (on, word) in [(true, "enable"), (false, "disable")] {
                let path = format!("/management/{seg}");
                check(
                    Call::SetTracing {
                        resource: r,
                        name: s("X"),
                        on,
                    },
                    "POST",
                    &path,
                    Some(json!({"name": "X", "trace": word})),
                );
                check(
                    Call::SetStatistics {
                        resource: r,
                        name: s("X"),
                        on,
                    },
                    "POST",
                    &path,
                    Some(json!({"name": "X", "statistics": word})),
                );
            }
        }
        check(
            Call::SetTracing {
                resource: Templates,
                name: s("LogAndRespond"),
                on: true,
            },
            "POST",
            "/management/templates",
            Some(json!({"name": "LogAndRespond", "trace": "enable", "type": "sequence"})),
        );
        check(
            Call::SetStatistics {
                resource: Templates,
                name: s("LogAndRespond"),
                on: false,
            },
            "POST",
            "/management/templates",
            Some(json!({"name": "LogAndRespond", "statistics": "disable", "type": "sequence"})),
        );
    }

    #[test]
    fn every_call_of_the_second_table() {
        check(Call::Loggers, "GET", "/management/logging", None);
        check(
            Call::Logger {
                name: s("org-apache-synapse"),
            },
            "GET",
            "/management/logging?loggerName=org-apache-synapse",
            None,
        );
        check(
            Call::SetLoggerLevel {
                name: s("L"),
                level: s("DEBUG"),
            },
            "PATCH",
            "/management/logging",
            Some(json!({"loggerName": "L", "loggingLevel": "DEBUG"})),
        );
        check(
            Call::AddLogger {
                name: s("L"),
                level: s("INFO"),
                class: s("com.acme"),
            },
            "PATCH",
            "/management/logging",
            Some(json!({"loggerName": "L", "loggingLevel": "INFO", "loggerClass": "com.acme"})),
        );
        check(
            Call::DeleteLogger { name: s("L") },
            "DELETE",
            "/management/logging?loggerName=L",
            None,
        );
        check(Call::Users, "GET", "/management/users", None);
        check(
            Call::User { id: s("u") },
            "GET",
            "/management/users/u",
            None,
        );
        check(
            Call::AddUser {
                id: s("u"),
                password: Password::new("p"),
                admin: false,
            },
            "POST",
            "/management/users",
            Some(json!({"userId": "u", "password": "p", "isAdmin": false})),
        );
        check(
            Call::DeleteUser {
                id: s("u"),
                domain: None,
            },
            "DELETE",
            "/management/users/u",
            None,
        );
        check(
            Call::DeleteUser {
                id: s("u"),
                domain: Some(s("SECONDARY")),
            },
            "DELETE",
            "/management/users/u?domain=SECONDARY",
            None,
        );
        check(
            Call::LogFiles { search: None },
            "GET",
            "/management/logs",
            None,
        );
        check(
            Call::LogFiles {
                search: Some(s("carbon")),
            },
            "GET",
            "/management/logs?searchKey=carbon",
            None,
        );
        check(
            Call::LogFile {
                file: s("wso2carbon.log"),
            },
            "GET",
            "/management/logs?file=wso2carbon.log",
            None,
        );
        check(
            Call::Registry {
                path: s("registry/config"),
            },
            "GET",
            "/management/registry-resources?path=registry/config",
            None,
        );
        check(
            Call::RegistryContent {
                path: s("registry/config/a.txt"),
            },
            "GET",
            "/management/registry-resources/content?path=registry/config/a.txt",
            None,
        );
        check(
            Call::RegistryMetadata {
                path: s("registry/x"),
            },
            "GET",
            "/management/registry-resources/metadata?path=registry/x",
            None,
        );
        check(
            Call::RegistryProperties {
                path: s("registry/x"),
            },
            "GET",
            "/management/registry-resources/properties?path=registry/x",
            None,
        );
        check(
            Call::CarbonAppFault {
                name: s("LegacyCompositeApp"),
            },
            "GET",
            "/management/applications/LegacyCompositeApp/fault",
            None,
        );
        check(
            Call::DataServiceFault {
                name: s("LegacyDS"),
            },
            "GET",
            "/management/data-services/LegacyDS/fault",
            None,
        );
        check(Call::Root, "GET", "/management", None);
    }

    #[test]
    fn every_detail_read() {
        use Resource::*;
        for (r, path) in [
            (Apis, "/management/apis?apiName=N"),
            (
                ProxyServices,
                "/management/proxy-services?proxyServiceName=N",
            ),
            (Endpoints, "/management/endpoints?endpointName=N"),
            (
                InboundEndpoints,
                "/management/inbound-endpoints?inboundEndpointName=N",
            ),
            (Sequences, "/management/sequences?sequenceName=N"),
            (Tasks, "/management/tasks?taskName=N"),
            (Templates, "/management/templates?name=N&type=sequence"),
            (MessageStores, "/management/message-stores?name=N"),
            (MessageProcessors, "/management/message-processors?name=N"),
            (LocalEntries, "/management/local-entries?name=N"),
            (DataServices, "/management/data-services?dataServiceName=N"),
            (DataSources, "/management/data-sources?name=N"),
            (Applications, "/management/applications?carbonAppName=N"),
        ] {
            check(
                Call::Detail {
                    resource: r,
                    name: s("N"),
                },
                "GET",
                path,
                None,
            );
        }
        assert_eq!(Resource::ALL.len(), 13);
        check(
            Call::TemplateDetail {
                name: s("N"),
                kind: TemplateKind::Endpoint,
            },
            "GET",
            "/management/templates?name=N&type=endpoint",
            None,
        );
    }

    #[test]
    fn hostile_names_stay_in_their_segment_or_value() {
        let p = prepare(&Call::User { id: s("a b/c?d") });
        assert_eq!(p.path_and_query, "/management/users/a%20b%2Fc%3Fd");
        let p = prepare(&Call::User { id: s("..") });
        assert_eq!(p.path_and_query, "/management/users/%2E%2E");
        let p = prepare(&Call::User { id: s("a.b") });
        assert_eq!(p.path_and_query, "/management/users/a.b");
        let p = prepare(&Call::CarbonAppFault {
            name: s("x/../../users#"),
        });
        assert_eq!(
            p.path_and_query,
            "/management/applications/x%2F..%2F..%2Fusers%23/fault"
        );
        let p = prepare(&Call::Logger {
            name: s("a b&c=d#e+f%g"),
        });
        assert_eq!(
            p.path_and_query,
            "/management/logging?loggerName=a%20b%26c%3Dd%23e%2Bf%25g"
        );
        let p = prepare(&Call::DeleteUser {
            id: s("ü"),
            domain: Some(s("X&y=1")),
        });
        assert_eq!(
            p.path_and_query,
            "/management/users/%C3%BC?domain=X%26y%3D1"
        );
        // Names in bodies are JSON strings, not paths.
        let p = prepare(&Call::SetStatus {
            resource: Resource::ProxyServices,
            name: s("a b/c?d"),
            active: true,
        });
        assert_eq!(p.path_and_query, "/management/proxy-services");
        assert_eq!(p.body.unwrap()["name"], "a b/c?d");
        // Whatever the name, the result is a valid request target.
        for name in ["\r\n", " ", "\u{0}", "%", "ä/ö", "?#"] {
            let p = prepare(&Call::User { id: s(name) });
            assert!(
                p.path_and_query
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#'),
                "{name:?} -> {}",
                p.path_and_query
            );
        }
    }

    #[test]
    fn unsupported_or_empty_calls_are_not_sent() {
        let bad = [
            Call::SetStatus {
                resource: Resource::Apis,
                name: s("A"),
                active: false,
            },
            Call::SetTracing {
                resource: Resource::Tasks,
                name: s("T"),
                on: true,
            },
            Call::SetStatistics {
                resource: Resource::MessageProcessors,
                name: s("M"),
                on: true,
            },
            Call::User { id: s("") },
            Call::Detail {
                resource: Resource::Apis,
                name: s(""),
            },
            Call::AddUser {
                id: s("u"),
                password: Password::new(""),
                admin: false,
            },
        ];
        for c in bad {
            assert_eq!(c.validate().unwrap_err().code(), "invalid_call", "{c:?}");
        }
    }

    #[test]
    fn writes_are_marked() {
        assert!(Call::TriggerTask { name: s("t") }.is_write());
        assert!(Call::DeleteLogger { name: s("l") }.is_write());
        assert!(!Call::Loggers.is_write());
        assert!(!Call::Detail {
            resource: Resource::Apis,
            name: s("a")
        }
        .is_write());
        assert!(!Call::LogFile { file: s("f") }.is_write());
    }

    #[test]
    fn prepared_call_is_the_tunnel_form() {
        let p = prepare(&Call::SetLoggerLevel {
            name: s("L"),
            level: s("DEBUG"),
        });
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"method": "PATCH", "path": "/management/logging",
                   "body": {"loggerName": "L", "loggingLevel": "DEBUG"}})
        );
        let p = prepare(&Call::Loggers);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"method": "GET", "path": "/management/logging", "body": null})
        );
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = Call::AddUser {
            id: s("u"),
            password: Password::new("hunter2-pass"),
            admin: true,
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", prepare(&c)).contains("hunter2"));
        let t = Target {
            host: s("mi"),
            port: 9164,
            key_id: s(KID),
            key_material: s(MATERIAL),
            trust: PeerTrust::Pin(None),
            timeouts: Timeouts::default(),
        };
        let shown = format!("{t:?}");
        assert!(!shown.contains(MATERIAL), "{shown}");
        assert!(shown.contains(KID));
    }

    const JSON: Option<&str> = Some("application/json");

    #[test]
    fn successes_are_json_or_text_or_bytes() {
        let r = interpret(
            &Call::SetStatus {
                resource: Resource::ProxyServices,
                name: s("P"),
                active: false,
            },
            200,
            JSON,
            br#"{"Message":"Proxy service P stopped successfully"}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Answer::Json(json!({"Message": "Proxy service P stopped successfully"}))
        );
        let log = b"[2026-05-01 10:00:12,000] ERROR {HospitalEP} - Connection refused\n";
        let r = interpret(
            &Call::LogFile {
                file: s("wso2error.log"),
            },
            200,
            Some("application/txt"),
            log,
        )
        .unwrap();
        assert_eq!(r, Answer::Text(String::from_utf8(log.to_vec()).unwrap()));
        let r = interpret(
            &Call::RegistryContent {
                path: s("registry/x"),
            },
            200,
            Some("application/octet-stream"),
            b"\x00\x01{",
        )
        .unwrap();
        assert_eq!(r, Answer::Bytes(b"\x00\x01{".to_vec()));
        // Text that happens to look like JSON is still the file.
        let r = interpret(
            &Call::LogFile { file: s("f") },
            200,
            Some("application/txt"),
            br#"{"Error":"just a log line"}"#,
        )
        .unwrap();
        assert!(matches!(r, Answer::Text(_)));
        assert_eq!(
            interpret(&Call::Loggers, 200, None, b"").unwrap(),
            Answer::Json(Value::Null)
        );
    }

    #[test]
    fn an_error_member_in_a_2xx_is_a_refusal() {
        let e = interpret(
            &Call::SetStatus {
                resource: Resource::MessageProcessors,
                name: s("M"),
                active: true,
            },
            200,
            JSON,
            br#"{"Error":"Missing parameters in payload"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            CallError::Refused {
                status: 200,
                message: s("Missing parameters in payload")
            }
        );
        assert!(e.to_string().contains("Missing parameters in payload"));
        let e = interpret(
            &Call::RegistryContent { path: s("p") },
            200,
            JSON,
            br#"{"Error":"Can not find the registry: p"}"#,
        )
        .unwrap_err();
        assert_eq!(e.code(), "refused");
        let e = interpret(
            &Call::RegistryProperties { path: s("p") },
            200,
            JSON,
            br#"{"count":0,"list":"Error while fetching properties"}"#,
        )
        .unwrap_err();
        assert_eq!(e.code(), "refused");
    }

    #[test]
    fn refusals_by_status() {
        let e = interpret(&Call::Loggers, 401, None, b"").unwrap_err();
        assert_eq!(e, CallError::Unauthorized);
        assert!(e.to_string().contains("secret"), "{e}");

        for c in [
            Call::Users,
            Call::User { id: s("u") },
            Call::AddUser {
                id: s("u"),
                password: Password::new("p"),
                admin: false,
            },
        ] {
            let e = interpret(&c, 403, JSON, br#"{"Error":"file-based"}"#).unwrap_err();
            assert_eq!(e, CallError::UserStoreUnsupported);
            assert!(e.to_string().contains("file-based user store"));
        }
        let e = interpret(
            &Call::DeleteLogger {
                name: s("rootLogger"),
            },
            403,
            JSON,
            br#"{"Error":"Root logger cannot be deleted"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            CallError::Refused {
                status: 403,
                message: s("Root logger cannot be deleted")
            }
        );

        let e = interpret(
            &Call::CarbonAppFault { name: s("A") },
            404,
            JSON,
            br#"{"Error":"Faulty carbon application not found for the given name."}"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            CallError::NotFound(Some(s(
                "Faulty carbon application not found for the given name."
            )))
        );
        let e = interpret(
            &Call::Detail {
                resource: Resource::Apis,
                name: s("A"),
            },
            404,
            None,
            b"",
        )
        .unwrap_err();
        assert_eq!(e, CallError::NotFound(None));

        let e = interpret(
            &Call::LogFile {
                file: s("nope.log"),
            },
            500,
            None,
            b"",
        )
        .unwrap_err();
        assert_eq!(e.code(), "not_found");
        assert!(e.to_string().contains("nope.log"));

        let e = interpret(
            &Call::SetLoggerLevel {
                name: s("L"),
                level: s("LOUD"),
            },
            400,
            JSON,
            br#"{"Error":"Invalid log level LOUD"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            CallError::Refused {
                status: 400,
                message: s("Invalid log level LOUD")
            }
        );
        // Success-style members carry MI's text too.
        let e = interpret(&Call::Loggers, 400, JSON, br#"{"message":"nope"}"#).unwrap_err();
        assert_eq!(
            e,
            CallError::Refused {
                status: 400,
                message: s("nope")
            }
        );
        let e = interpret(&Call::Loggers, 503, None, b"").unwrap_err();
        assert_eq!(
            e,
            CallError::Refused {
                status: 503,
                message: s("")
            }
        );
        assert!(e.to_string().contains("503"));
    }

    #[test]
    fn messages_that_are_not_json_are_bounded_and_cleaned() {
        let html = format!("<html>\r\n\x1b[31m{}</html>", "x".repeat(500));
        let e = interpret(&Call::Loggers, 502, Some("text/html"), html.as_bytes()).unwrap_err();
        let CallError::Refused { status, message } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*status, 502);
        assert!(message.starts_with("<html>"), "{message}");
        assert!(!message.chars().any(char::is_control), "{message:?}");
        assert_eq!(message.chars().count(), MAX_MESSAGE + 1, "{message}");
    }

    #[test]
    fn json_expected_but_not_json_is_malformed() {
        let e = interpret(&Call::Loggers, 200, Some("text/html"), b"<html>hi</html>").unwrap_err();
        assert!(matches!(e, CallError::Malformed(_)), "{e:?}");
        assert_eq!(e.code(), "malformed");
    }

    #[test]
    fn outbound_failures_keep_their_kind() {
        let e: CallError = OutboundError::Timeout {
            address: s("mi:9164"),
            phase: outbound::Phase::Receive,
            after: std::time::Duration::from_secs(10),
        }
        .into();
        assert_eq!(e.code(), "timeout");
        assert!(e.to_string().contains("mi:9164"));
    }
}
