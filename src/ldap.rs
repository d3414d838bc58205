//! Sign-in against an LDAP v3 directory: a minimal, synchronous client of
//! our own (bind, search, StartTLS, unbind), on one blocking connection
//! bounded by one deadline.
//!
//! [`LdapSettings`] is the `[ldap]` section of the configuration file;
//! [`LdapSettings::resolve`] checks it once (URL, transport, CA roots,
//! filters, the bind password's one source) into a [`ResolvedLdap`].
//! [`authenticate`] then binds as the service account, finds the user with
//! the configured filter (the user name escaped as RFC 4515 requires, so it
//! can never change the filter's structure), binds as the user with the
//! given password, reads the user's groups (from `memberOf`, or from a
//! search under `group_base`) and unbinds.
//!
//! Why hand-rolled: the `ldap3` crate runs on tokio, and icpd has no async
//! runtime of its own; sign-in needs four operations, whose BER encoding is
//! a few hundred lines. Only what those operations send and receive is
//! encoded and decoded here; anything else is a protocol error.
//!
//! Passwords (the user's and the service account's) never appear in an
//! error, a log line or a `Debug` output; errors name the server's address
//! and the setting to check.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::http::outbound::{is_timeout, DeadlineStream};

/// Cap on one incoming LDAP message.
pub const MAX_MESSAGE: usize = 1024 * 1024;
/// Most group entries a group search may return.
const MAX_GROUP_ENTRIES: i64 = 1000;
/// Longest user name sent to the directory; longer is refused as invalid.
const MAX_USERNAME: usize = 256;
/// Deepest filter nesting accepted.
const MAX_FILTER_DEPTH: usize = 32;
/// The StartTLS extended operation (RFC 4511, 4.14).
const STARTTLS_OID: &str = "1.3.6.1.4.1.1466.20037";
/// Where the system's CA bundle is looked for, first that exists.
const SYSTEM_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// `[ldap]` in the config file.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapSettings {
    /// `ldaps://host:636` or `ldap://host:389` (the port may be left out).
    pub url: String,
    /// With `ldap://`: StartTLS before any bind.
    #[serde(default)]
    pub start_tls: bool,
    /// `ldap://` without `start_tls` (passwords in clear) is refused unless
    /// this is true.
    #[serde(default)]
    pub allow_plain: bool,
    /// PEM roots for the server's certificate; default: the system bundle.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The service account that searches; empty with no password for an
    /// anonymous search.
    pub bind_dn: String,
    #[serde(default)]
    pub bind_password: Option<String>,
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    #[serde(default)]
    pub bind_password_env: Option<String>,
    /// Where users are searched (scope subtree).
    pub user_base: String,
    /// `{username}` is replaced with the RFC 4515-escaped user name.
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    #[serde(default = "default_username_attribute")]
    pub username_attribute: String,
    #[serde(default = "default_display_name_attribute")]
    pub display_name_attribute: String,
    #[serde(default = "default_email_attribute")]
    pub email_attribute: String,
    /// Groups are read from it when `group_base` is unset.
    #[serde(default = "default_member_of_attribute")]
    pub member_of_attribute: String,
    /// When set, groups come from a search under it instead.
    #[serde(default)]
    pub group_base: Option<String>,
    /// `{dn}` is replaced with the user's escaped DN.
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    #[serde(default = "default_group_name_attribute")]
    pub group_name_attribute: String,
    /// Bound on connecting, on every read and write, and on the whole sign-in.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_user_filter() -> String {
    "(uid={username})".into()
}
fn default_username_attribute() -> String {
    "uid".into()
}
fn default_display_name_attribute() -> String {
    "cn".into()
}
fn default_email_attribute() -> String {
    "mail".into()
}
fn default_member_of_attribute() -> String {
    "memberOf".into()
}
fn default_group_filter() -> String {
    "(|(member={dn})(uniqueMember={dn}))".into()
}
fn default_group_name_attribute() -> String {
    "cn".into()
}
fn default_timeout_secs() -> u64 {
    5
}

/// By hand, so that `bind_password` is never printed.
impl fmt::Debug for LdapSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapSettings")
            .field("url", &self.url)
            .field("start_tls", &self.start_tls)
            .field("allow_plain", &self.allow_plain)
            .field("ca_file", &self.ca_file)
            .field("bind_dn", &self.bind_dn)
            .field(
                "bind_password",
                &self.bind_password.as_ref().map(|_| "<redacted>"),
            )
            .field("bind_password_file", &self.bind_password_file)
            .field("bind_password_env", &self.bind_password_env)
            .field("user_base", &self.user_base)
            .field("user_filter", &self.user_filter)
            .field("username_attribute", &self.username_attribute)
            .field("display_name_attribute", &self.display_name_attribute)
            .field("email_attribute", &self.email_attribute)
            .field("member_of_attribute", &self.member_of_attribute)
            .field("group_base", &self.group_base)
            .field("group_filter", &self.group_filter)
            .field("group_name_attribute", &self.group_name_attribute)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `ldaps://`: TLS from the first byte.
    Ldaps,
    /// `ldap://` upgraded with StartTLS before any bind.
    StartTls,
    /// `ldap://` in clear (`allow_plain`).
    Plain,
}

/// Checked settings, ready for [`authenticate`].
#[derive(Clone)]
pub struct ResolvedLdap {
    settings: LdapSettings,
    host: String,
    port: u16,
    transport: Transport,
    roots: Arc<RootCertStore>,
    bind_password: Option<String>,
}

/// By hand, so that the bind password is never printed.
impl fmt::Debug for ResolvedLdap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedLdap")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("transport", &self.transport)
            .field("roots", &self.roots.len())
            .field("anonymous_search", &self.bind_password.is_none())
            .field("settings", &self.settings)
            .finish()
    }
}

impl ResolvedLdap {
    pub fn settings(&self) -> &LdapSettings {
        &self.settings
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// `ldaps://host:port` or `ldap://host:port`: what errors name.
    pub fn address(&self) -> String {
        let scheme = match self.transport {
            Transport::Ldaps => "ldaps",
            Transport::StartTls | Transport::Plain => "ldap",
        };
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!("{scheme}://[{}]:{}", self.host, self.port),
            _ => format!("{scheme}://{}:{}", self.host, self.port),
        }
    }
}

/// A user the directory signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub dn: String,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    /// Sorted, without duplicates.
    pub groups: Vec<String>,
}

#[derive(Debug)]
pub enum LdapError {
    /// User not found, several users found, an empty password, or the
    /// user's bind refused: the caller cannot and must not tell them apart.
    InvalidCredentials,
    /// Connecting, TLS, a timeout or the protocol failed; the message names
    /// the server's address and what to check.
    Unavailable(String),
    /// The directory refused what the settings ask of it: the service
    /// account's bind, a base DN that does not exist, a filter it rejects.
    Misconfigured(String),
}

impl fmt::Display for LdapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LdapError::InvalidCredentials => f.write_str("invalid user name or password"),
            LdapError::Unavailable(m) => write!(f, "the LDAP directory is unavailable: {m}"),
            LdapError::Misconfigured(m) => write!(f, "the LDAP settings need fixing: {m}"),
        }
    }
}

impl std::error::Error for LdapError {}

impl LdapSettings {
    /// Checks the settings and resolves the bind password (exactly one of
    /// the three sources, or none for an anonymous search); errors say
    /// which setting to fix.
    pub fn resolve(&self) -> Result<ResolvedLdap, String> {
        let (scheme, host, port) = parse_url(&self.url)?;
        let transport = match (scheme, self.start_tls, self.allow_plain) {
            ("ldaps", false, _) => Transport::Ldaps,
            ("ldaps", true, _) => {
                return Err(format!(
                    "ldap.start_tls applies to ldap:// URLs only; ldap.url {:?} is already TLS: remove start_tls",
                    self.url
                ))
            }
            (_, true, _) => Transport::StartTls,
            (_, false, true) => Transport::Plain,
            (_, false, false) => {
                return Err(format!(
                    "ldap.url {:?} would send passwords in clear: use ldaps://, set ldap.start_tls = true, \
                     or set ldap.allow_plain = true if the network is trusted",
                    self.url
                ))
            }
        };
        if self.timeout_secs == 0 || self.timeout_secs > 300 {
            return Err(format!(
                "ldap.timeout_secs must be 1 to 300, not {}",
                self.timeout_secs
            ));
        }
        if self.user_base.trim().is_empty() {
            return Err("ldap.user_base is empty: set the DN users are found under".into());
        }
        for (name, value) in [
            ("ldap.username_attribute", &self.username_attribute),
            ("ldap.display_name_attribute", &self.display_name_attribute),
            ("ldap.email_attribute", &self.email_attribute),
            ("ldap.member_of_attribute", &self.member_of_attribute),
            ("ldap.group_name_attribute", &self.group_name_attribute),
        ] {
            if !is_attribute_description(value) {
                return Err(format!("{name} {value:?} is not an attribute name"));
            }
        }
        check_template("ldap.user_filter", &self.user_filter, "{username}")?;
        if let Some(base) = &self.group_base {
            if base.trim().is_empty() {
                return Err("ldap.group_base is empty: remove it to read groups from ldap.member_of_attribute, or set the DN groups are found under".into());
            }
            check_template("ldap.group_filter", &self.group_filter, "{dn}")?;
        }
        let bind_password = self.bind_password()?;
        if bind_password.is_none() && !self.bind_dn.is_empty() {
            return Err(format!(
                "ldap.bind_dn is {:?} but no bind password is set: set one of ldap.bind_password, \
                 ldap.bind_password_file or ldap.bind_password_env, or set bind_dn = \"\" for an anonymous search",
                self.bind_dn
            ));
        }
        let roots = match transport {
            Transport::Plain => RootCertStore::empty(),
            Transport::Ldaps | Transport::StartTls => self.roots()?,
        };
        Ok(ResolvedLdap {
            settings: self.clone(),
            host,
            port,
            transport,
            roots: Arc::new(roots),
            bind_password,
        })
    }

    fn bind_password(&self) -> Result<Option<String>, String> {
        let sources = [
            self.bind_password.is_some(),
            self.bind_password_file.is_some(),
            self.bind_password_env.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err("set only one of ldap.bind_password, ldap.bind_password_file and ldap.bind_password_env".into());
        }
        let password = if let Some(p) = &self.bind_password {
            Some((p.clone(), "ldap.bind_password".to_string()))
        } else if let Some(path) = &self.bind_password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("ldap.bind_password_file {}: {e}", path.display()))?;
            let text = text.trim_end_matches(['\r', '\n']).to_string();
            Some((text, format!("ldap.bind_password_file {}", path.display())))
        } else if let Some(var) = &self.bind_password_env {
            let text = std::env::var(var).map_err(|_| {
                format!("ldap.bind_password_env names {var:?}, which is not set (or not UTF-8)")
            })?;
            Some((text, format!("ldap.bind_password_env {var:?}")))
        } else {
            None
        };
        match password {
            Some((p, from)) if p.is_empty() => Err(format!(
                "{from} gives an empty password (an unauthenticated bind): give the service account's password"
            )),
            Some((p, _)) => Ok(Some(p)),
            None => Ok(None),
        }
    }

    fn roots(&self) -> Result<RootCertStore, String> {
        let (path, configured) = match &self.ca_file {
            Some(p) => (p.clone(), true),
            None => match SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.exists()) {
                Some(p) => (p.to_path_buf(), false),
                None => {
                    return Err(format!(
                        "no system CA bundle ({}): set ldap.ca_file to the PEM file of the CA that signed the directory's certificate",
                        SYSTEM_BUNDLES.join(", ")
                    ))
                }
            },
        };
        let setting = if configured {
            "ldap.ca_file"
        } else {
            "the system CA bundle"
        };
        let pem = std::fs::read(&path).map_err(|e| format!("{setting} {}: {e}", path.display()))?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert =
                cert.map_err(|e| format!("{setting} {} is not valid PEM: {e}", path.display()))?;
            // A system bundle may hold a certificate webpki cannot use; skip it.
            if let Err(e) = roots.add(cert) {
                if configured {
                    return Err(format!(
                        "{setting} {} holds an unusable certificate: {e}",
                        path.display()
                    ));
                }
            }
        }
        if roots.is_empty() {
            return Err(format!(
                "{setting} {} holds no certificate (expected PEM 'BEGIN CERTIFICATE' blocks)",
                path.display()
            ));
        }
        Ok(roots)
    }
}

/// `(scheme, host, port)` of an `ldap://` or `ldaps://` URL with no DN,
/// attributes or extensions.
fn parse_url(url: &str) -> Result<(&'static str, String, u16), String> {
    let bad = |why: &str| format!("ldap.url {url:?} {why}");
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("ldaps://") {
        ("ldaps", rest)
    } else if let Some(rest) = url.strip_prefix("ldap://") {
        ("ldap", rest)
    } else {
        return Err(bad(
            "must start with ldaps:// or ldap:// (e.g. ldaps://ldap.example.org:636)",
        ));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '@', '#']) {
        return Err(bad(
            "must be scheme://host[:port] only, with no path, query or user",
        ));
    }
    let default_port = if scheme == "ldaps" { 636 } else { 389 };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("has an unclosed '['"))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("has no valid IPv6 address in brackets"));
        }
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None => return Err(bad("has text after ']' that is not :port")),
            },
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(bad("has a port that is not 1-65535")),
        },
    };
    if host.parse::<IpAddr>().is_err() && ServerName::try_from(host.to_string()).is_err() {
        return Err(bad(
            "has a host that is neither a DNS name nor an IP address",
        ));
    }
    Ok((scheme, host.to_string(), port))
}

fn check_template(setting: &str, template: &str, placeholder: &str) -> Result<(), String> {
    if !template.contains(placeholder) {
        return Err(format!(
            "{setting} {template:?} does not contain {placeholder}"
        ));
    }
    parse_filter(&template.replace(placeholder, "x"))
        .map(drop)
        .map_err(|e| format!("{setting} {template:?}: {e}"))
}

fn is_attribute_description(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b';'))
}

// ---- sign-in ---------------------------------------------------------------

/// Sign-in: bind as the service account, search `user_base` (scope
/// subtree, size limit 2) with the filter, require exactly one entry, bind
/// as that DN with `password` (an empty password is refused before any
/// network traffic: it would be an unauthenticated bind), then read the
/// groups: the first RDN's value of each `memberOf` value, or the
/// `group_name_attribute` values of a search under `group_base` (run
/// after binding as the service account again). Groups sorted,
/// deduplicated. One connection, closed with an UnbindRequest.
pub fn authenticate(
    s: &ResolvedLdap,
    username: &str,
    password: &str,
) -> Result<DirectoryUser, LdapError> {
    if password.is_empty() || username.is_empty() || username.len() > MAX_USERNAME {
        return Err(LdapError::InvalidCredentials);
    }
    let cfg = &s.settings;
    let filter = parse_filter(
        &cfg.user_filter
            .replace("{username}", &escape_filter_value(username)),
    )
    .map_err(|e| LdapError::Misconfigured(format!("ldap.user_filter: {e}")))?;
    let mut session = Session::open(s)?;
    let result = sign_in(&mut session, s, &filter, username, password);
    session.unbind();
    result
}

fn sign_in(
    session: &mut Session,
    s: &ResolvedLdap,
    filter: &Filter,
    username: &str,
    password: &str,
) -> Result<DirectoryUser, LdapError> {
    let cfg = &s.settings;
    session.bind_service()?;
    let mut attributes = vec![
        cfg.username_attribute.as_str(),
        cfg.display_name_attribute.as_str(),
        cfg.email_attribute.as_str(),
    ];
    if cfg.group_base.is_none() {
        attributes.push(cfg.member_of_attribute.as_str());
    }
    let (mut entries, done) = session.search(&cfg.user_base, filter, 2, &attributes)?;
    match done.code {
        0 => {}
        SIZE_LIMIT_EXCEEDED => return Err(LdapError::InvalidCredentials),
        _ => return Err(session.search_failure("ldap.user_base", &cfg.user_base, &done)),
    }
    if entries.len() != 1 {
        return Err(LdapError::InvalidCredentials);
    }
    let entry = entries.remove(0);
    if entry.dn.is_empty() {
        return Err(LdapError::InvalidCredentials);
    }

    let r = session.bind("binding as the user", &entry.dn, password)?;
    match r.code {
        0 => {}
        INVALID_CREDENTIALS => return Err(LdapError::InvalidCredentials),
        _ => {
            return Err(LdapError::Misconfigured(format!(
                "{} refused the user's bind with {}",
                s.address(),
                r.describe()
            )))
        }
    }

    let mut groups: Vec<String> = match &cfg.group_base {
        None => entry
            .values(&cfg.member_of_attribute)
            .filter_map(|dn| first_rdn_value(&dn))
            .collect(),
        Some(base) => {
            session.bind_service()?;
            let filter = parse_filter(
                &cfg.group_filter
                    .replace("{dn}", &escape_filter_value(&entry.dn)),
            )
            .map_err(|e| LdapError::Misconfigured(format!("ldap.group_filter: {e}")))?;
            let (entries, done) = session.search(
                base,
                &filter,
                MAX_GROUP_ENTRIES,
                &[cfg.group_name_attribute.as_str()],
            )?;
            if done.code == SIZE_LIMIT_EXCEEDED {
                return Err(LdapError::Misconfigured(format!(
                    "more than {MAX_GROUP_ENTRIES} groups under ldap.group_base {base:?} match ldap.group_filter: narrow it"
                )));
            }
            if done.code != 0 {
                return Err(session.search_failure("ldap.group_base", base, &done));
            }
            entries
                .iter()
                .flat_map(|e| e.values(&cfg.group_name_attribute))
                .collect()
        }
    };
    groups.retain(|g| !g.is_empty());
    groups.sort();
    groups.dedup();

    let username_value = entry
        .values(&cfg.username_attribute)
        .next()
        .unwrap_or_else(|| username.to_string());
    let display_name = entry
        .values(&cfg.display_name_attribute)
        .next()
        .unwrap_or_else(|| username_value.clone());
    let email = entry.values(&cfg.email_attribute).next();
    Ok(DirectoryUser {
        dn: entry.dn,
        username: username_value,
        display_name,
        email,
        groups,
    })
}

/// The value of a DN's first RDN (of its first attribute when the RDN is
/// multi-valued), unescaped as RFC 4514 says: `cn=admins,ou=groups,...`
/// gives `admins`. `None` for a DN that has no `=` or a value in `#hex`
/// form.
pub fn first_rdn_value(dn: &str) -> Option<String> {
    let (_, rest) = dn.split_once('=')?;
    let rest = rest.trim_start_matches(' ');
    if rest.starts_with('#') {
        return None;
    }
    let bytes = rest.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b',' | b'+' | b';' => break,
            b'\\' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                    std::str::from_utf8(h)
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                });
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(*bytes.get(i + 1)?);
                        i += 2;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    let value = String::from_utf8(out).ok()?;
    let value = value.trim_end_matches(' ').to_string();
    (!value.is_empty()).then_some(value)
}

// ---- filters (RFC 4515) ----------------------------------------------------

/// The parts of RFC 4515 that sign-in needs; substrings and extensible
/// matches are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Equal(String, Vec<u8>),
    GreaterOrEqual(String, Vec<u8>),
    LessOrEqual(String, Vec<u8>),
    Approx(String, Vec<u8>),
    Present(String),
}

/// Escapes a value for a filter (RFC 4515, 3): `*`, `(`, `)`, `\` and NUL
/// become `\2a`, `\28`, `\29`, `\5c`, `\00`.
pub fn escape_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// Parses a filter in RFC 4515's string form.
pub fn parse_filter(text: &str) -> Result<Filter, String> {
    let b = text.trim().as_bytes();
    let mut p = 0;
    let f = parse_one(b, &mut p, 0)?;
    if p != b.len() {
        return Err(format!("unexpected text after the filter at byte {p}"));
    }
    Ok(f)
}

fn parse_one(b: &[u8], p: &mut usize, depth: usize) -> Result<Filter, String> {
    if depth > MAX_FILTER_DEPTH {
        return Err(format!("filter nested deeper than {MAX_FILTER_DEPTH}"));
    }
    if b.get(*p) != Some(&b'(') {
        return Err(format!("expected '(' at byte {}", *p));
    }
    *p += 1;
    let f = match b.get(*p) {
        Some(b'&') | Some(b'|') => {
            let and = b[*p] == b'&';
            *p += 1;
            let mut list = Vec::new();
            while b.get(*p) == Some(&b'(') {
                list.push(parse_one(b, p, depth + 1)?);
            }
            if list.is_empty() {
                return Err(format!("an empty '{}' list", if and { '&' } else { '|' }));
            }
            if and {
                Filter::And(list)
            } else {
                Filter::Or(list)
            }
        }
        Some(b'!') => {
            *p += 1;
            Filter::Not(Box::new(parse_one(b, p, depth + 1)?))
        }
        _ => parse_item(b, p)?,
    };
    if b.get(*p) != Some(&b')') {
        return Err(format!("expected ')' at byte {}", *p));
    }
    *p += 1;
    Ok(f)
}

fn parse_item(b: &[u8], p: &mut usize) -> Result<Filter, String> {
    let start = *p;
    while *p < b.len() && !matches!(b[*p], b'=' | b'~' | b'<' | b'>' | b':' | b'(' | b')') {
        *p += 1;
    }
    let attr = std::str::from_utf8(&b[start..*p]).map_err(|_| "an attribute that is not UTF-8")?;
    if !is_attribute_description(attr) {
        return Err(format!("{attr:?} is not an attribute description"));
    }
    let op = match (b.get(*p), b.get(*p + 1)) {
        (Some(b'='), _) => 0,
        (Some(b'~'), Some(b'=')) => 1,
        (Some(b'>'), Some(b'=')) => 2,
        (Some(b'<'), Some(b'=')) => 3,
        (Some(b':'), _) => return Err("unsupported filter: extensible match (':=')".into()),
        _ => return Err(format!("expected '=', '~=', '>=' or '<=' after {attr:?}")),
    };
    *p += if op == 0 { 1 } else { 2 };
    let vstart = *p;
    let mut value = Vec::new();
    let mut stars = 0;
    while *p < b.len() && b[*p] != b')' {
        match b[*p] {
            b'(' => return Err(format!("an unescaped '(' in the value of {attr:?}")),
            b'*' => {
                stars += 1;
                *p += 1;
            }
            b'\\' => {
                let hex = b
                    .get(*p + 1..*p + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        format!("a '\\' not followed by two hex digits in the value of {attr:?}")
                    })?;
                value.push(hex);
                *p += 3;
            }
            c => {
                value.push(c);
                *p += 1;
            }
        }
    }
    let attr = attr.to_string();
    if stars > 0 {
        return if op == 0 && &b[vstart..*p] == b"*" {
            Ok(Filter::Present(attr))
        } else {
            Err(format!(
                "unsupported filter: substrings ('*' in the value of {attr:?}); only =, ~=, >=, <= and =* are supported"
            ))
        };
    }
    Ok(match op {
        0 => Filter::Equal(attr, value),
        1 => Filter::Approx(attr, value),
        2 => Filter::GreaterOrEqual(attr, value),
        _ => Filter::LessOrEqual(attr, value),
    })
}

// ---- BER ---------------------------------------------------------------------

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const ENUMERATED: u8 = 0x0a;
const BOOLEAN: u8 = 0x01;
const SET: u8 = 0x31;

const BIND_REQUEST: u8 = 0x60;
const BIND_RESPONSE: u8 = 0x61;
const UNBIND_REQUEST: u8 = 0x42;
const SEARCH_REQUEST: u8 = 0x63;
const SEARCH_RESULT_ENTRY: u8 = 0x64;
const SEARCH_RESULT_DONE: u8 = 0x65;
const SEARCH_RESULT_REFERENCE: u8 = 0x73;
const EXTENDED_REQUEST: u8 = 0x77;
const EXTENDED_RESPONSE: u8 = 0x78;

const INVALID_CREDENTIALS: i64 = 49;
const SIZE_LIMIT_EXCEEDED: i64 = 4;

fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    push_length(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

fn constructed(tag: u8, parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

/// The minimal two's-complement content of an INTEGER or ENUMERATED.
fn integer_content(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut skip = 0;
    while skip < 7 {
        let (b, next) = (bytes[skip], bytes[skip + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            skip += 1;
        } else {
            break;
        }
    }
    bytes[skip..].to_vec()
}

fn integer(tag: u8, v: i64) -> Vec<u8> {
    tlv(tag, &integer_content(v))
}

fn decode_integer(content: &[u8]) -> Result<i64, String> {
    if content.is_empty() || content.len() > 8 {
        return Err(format!("an INTEGER of {} bytes", content.len()));
    }
    let mut v: i64 = if content[0] & 0x80 != 0 { -1 } else { 0 };
    for b in content {
        v = (v << 8) | i64::from(*b);
    }
    Ok(v)
}

fn encode_filter(f: &Filter) -> Vec<u8> {
    let ava = |tag: u8, a: &str, v: &[u8]| {
        constructed(
            tag,
            &[tlv(OCTET_STRING, a.as_bytes()), tlv(OCTET_STRING, v)],
        )
    };
    match f {
        Filter::And(list) => constructed(0xa0, &list.iter().map(encode_filter).collect::<Vec<_>>()),
        Filter::Or(list) => constructed(0xa1, &list.iter().map(encode_filter).collect::<Vec<_>>()),
        Filter::Not(inner) => tlv(0xa2, &encode_filter(inner)),
        Filter::Equal(a, v) => ava(0xa3, a, v),
        Filter::GreaterOrEqual(a, v) => ava(0xa5, a, v),
        Filter::LessOrEqual(a, v) => ava(0xa6, a, v),
        Filter::Present(a) => tlv(0x87, a.as_bytes()),
        Filter::Approx(a, v) => ava(0xa8, a, v),
    }
}

/// `LDAPMessage ::= SEQUENCE { messageID, protocolOp }`.
fn message(id: i64, op: Vec<u8>) -> Vec<u8> {
    constructed(SEQUENCE, &[integer(INTEGER, id), op])
}

fn bind_request(dn: &str, password: &str) -> Vec<u8> {
    constructed(
        BIND_REQUEST,
        &[
            integer(INTEGER, 3),
            tlv(OCTET_STRING, dn.as_bytes()),
            tlv(0x80, password.as_bytes()),
        ],
    )
}

fn search_request(
    base: &str,
    filter: &Filter,
    size_limit: i64,
    time_limit: i64,
    attributes: &[&str],
) -> Vec<u8> {
    let attrs: Vec<Vec<u8>> = attributes
        .iter()
        .map(|a| tlv(OCTET_STRING, a.as_bytes()))
        .collect();
    constructed(
        SEARCH_REQUEST,
        &[
            tlv(OCTET_STRING, base.as_bytes()),
            integer(ENUMERATED, 2), // wholeSubtree
            integer(ENUMERATED, 0), // neverDerefAliases
            integer(INTEGER, size_limit),
            integer(INTEGER, time_limit),
            tlv(BOOLEAN, &[0x00]), // typesOnly FALSE
            encode_filter(filter),
            constructed(SEQUENCE, &attrs),
        ],
    )
}

fn starttls_request() -> Vec<u8> {
    constructed(EXTENDED_REQUEST, &[tlv(0x80, STARTTLS_OID.as_bytes())])
}

/// Reads the elements of a BER encoding one after another.
struct Ber<'a> {
    rest: &'a [u8],
}

impl<'a> Ber<'a> {
    fn new(rest: &'a [u8]) -> Ber<'a> {
        Ber { rest }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element's tag and content.
    fn next(&mut self) -> Result<(u8, &'a [u8]), String> {
        let (&tag, after) = self.rest.split_first().ok_or("a truncated element")?;
        if tag & 0x1f == 0x1f {
            return Err(format!("a multi-byte tag 0x{tag:02x}"));
        }
        let (&first, mut after) = after.split_first().ok_or("a truncated length")?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 {
                return Err("an indefinite length".into());
            }
            if n > 4 || after.len() < n {
                return Err("a bad length".into());
            }
            let len = after[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            after = &after[n..];
            len
        };
        if after.len() < len {
            return Err("an element longer than its container".into());
        }
        let (content, rest) = after.split_at(len);
        self.rest = rest;
        Ok((tag, content))
    }

    fn expect(&mut self, want: u8, what: &str) -> Result<&'a [u8], String> {
        let (tag, content) = self.next()?;
        if tag != want {
            return Err(format!("{what} with tag 0x{tag:02x}, not 0x{want:02x}"));
        }
        Ok(content)
    }
}

/// One decoded LDAPMessage: its id, its protocolOp's tag and content.
#[derive(Debug, PartialEq, Eq)]
struct Message {
    id: i64,
    op: u8,
    body: Vec<u8>,
}

fn decode_message(bytes: &[u8]) -> Result<Message, String> {
    let mut outer = Ber::new(bytes);
    let content = outer.expect(SEQUENCE, "an LDAPMessage")?;
    if !outer.is_empty() {
        return Err("bytes after the LDAPMessage".into());
    }
    let mut m = Ber::new(content);
    let id = decode_integer(m.expect(INTEGER, "a messageID")?)?;
    let (op, body) = m.next()?;
    // Controls may follow; sign-in needs none of them.
    Ok(Message {
        id,
        op,
        body: body.to_vec(),
    })
}

/// `LDAPResult`: what every response carries.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LdapResult {
    code: i64,
    diagnostic: String,
}

impl LdapResult {
    fn describe(&self) -> String {
        let name = result_name(self.code);
        if self.diagnostic.is_empty() {
            format!("{name} ({})", self.code)
        } else {
            format!("{name} ({}): {}", self.code, self.diagnostic)
        }
    }
}

fn decode_result(body: &[u8]) -> Result<LdapResult, String> {
    let mut r = Ber::new(body);
    let code = decode_integer(r.expect(ENUMERATED, "a resultCode")?)?;
    let _matched = r.expect(OCTET_STRING, "a matchedDN")?;
    let diagnostic = r.expect(OCTET_STRING, "a diagnosticMessage")?;
    // A server's diagnostic goes into error messages: keep it short.
    let diagnostic: String = String::from_utf8_lossy(diagnostic)
        .chars()
        .take(300)
        .collect();
    Ok(LdapResult { code, diagnostic })
}

fn result_name(code: i64) -> &'static str {
    match code {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        13 => "confidentialityRequired",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "an error",
    }
}

/// A SearchResultEntry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    dn: String,
    attributes: Vec<(String, Vec<Vec<u8>>)>,
}

impl Entry {
    /// The values of attribute `name` (case-insensitive, options ignored),
    /// as text.
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = String> + 'a {
        self.attributes
            .iter()
            .filter(move |(t, _)| {
                t.split(';')
                    .next()
                    .is_some_and(|t| t.eq_ignore_ascii_case(name))
            })
            .flat_map(|(_, vals)| vals.iter())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

fn decode_entry(body: &[u8]) -> Result<Entry, String> {
    let mut r = Ber::new(body);
    let dn = String::from_utf8(r.expect(OCTET_STRING, "an objectName")?.to_vec())
        .map_err(|_| "an objectName that is not UTF-8")?;
    let mut list = Ber::new(r.expect(SEQUENCE, "an attribute list")?);
    let mut attributes = Vec::new();
    while !list.is_empty() {
        let mut attr = Ber::new(list.expect(SEQUENCE, "a PartialAttribute")?);
        let name =
            String::from_utf8_lossy(attr.expect(OCTET_STRING, "an attribute type")?).into_owned();
        let mut vals = Ber::new(attr.expect(SET, "a value set")?);
        let mut values = Vec::new();
        while !vals.is_empty() {
            values.push(vals.expect(OCTET_STRING, "a value")?.to_vec());
        }
        attributes.push((name, values));
    }
    Ok(Entry { dn, attributes })
}

// ---- the connection ----------------------------------------------------------

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

enum Link {
    Plain(DeadlineStream),
    Tls(Box<StreamOwned<ClientConnection, DeadlineStream>>),
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Link::Plain(s) => s.read(buf),
            Link::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Link::Plain(s) => s.write(buf),
            Link::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Link::Plain(s) => s.flush(),
            Link::Tls(s) => s.flush(),
        }
    }
}

/// What went wrong below the LDAP operations.
enum Fault {
    Io(io::Error),
    Malformed(String),
    TooLarge(usize),
}

impl From<io::Error> for Fault {
    fn from(e: io::Error) -> Fault {
        Fault::Io(e)
    }
}

fn write_message(w: &mut impl Write, id: i64, op: Vec<u8>) -> Result<(), Fault> {
    w.write_all(&message(id, op))?;
    w.flush()?;
    Ok(())
}

/// Reads one LDAPMessage, refusing one over [`MAX_MESSAGE`] before reading
/// its content.
fn read_message(r: &mut impl Read) -> Result<Message, Fault> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head)?;
    if head[0] != SEQUENCE {
        return Err(Fault::Malformed(format!(
            "a message starting with 0x{:02x}, not an LDAPMessage",
            head[0]
        )));
    }
    let len = if head[1] < 0x80 {
        usize::from(head[1])
    } else {
        let n = usize::from(head[1] & 0x7f);
        if n == 0 || n > 4 {
            return Err(Fault::Malformed("a message with a bad length".into()));
        }
        let mut b = [0u8; 4];
        r.read_exact(&mut b[4 - n..])?;
        u32::from_be_bytes(b) as usize
    };
    if len > MAX_MESSAGE {
        return Err(Fault::TooLarge(len));
    }
    let mut content = vec![0u8; len];
    r.read_exact(&mut content)?;
    let mut whole = Vec::with_capacity(len + 6);
    whole.push(SEQUENCE);
    push_length(&mut whole, len);
    whole.extend_from_slice(&content);
    decode_message(&whole).map_err(Fault::Malformed)
}

/// One connection to the directory, for one sign-in.
struct Session<'a> {
    s: &'a ResolvedLdap,
    link: Link,
    next_id: i64,
    started: Instant,
}

impl<'a> Session<'a> {
    fn open(s: &'a ResolvedLdap) -> Result<Session<'a>, LdapError> {
        let started = Instant::now();
        let timeout = Duration::from_secs(s.settings.timeout_secs);
        let deadline = started + timeout;
        let address = s.address();
        let addrs: Vec<_> = (s.host.as_str(), s.port)
            .to_socket_addrs()
            .map_err(|e| {
                LdapError::Unavailable(format!(
                    "{address}: cannot resolve the host name ({e}); check ldap.url"
                ))
            })?
            .collect();
        let mut last = None;
        let mut tcp = None;
        for addr in &addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match TcpStream::connect_timeout(addr, left) {
                Ok(t) => {
                    tcp = Some(t);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(tcp) = tcp else {
            let why = match last {
                Some(e) if is_timeout(&e) => {
                    format!("no connection within {} s", timeout.as_secs())
                }
                Some(e) => format!("cannot connect: {e}"),
                None => "the host name resolved to no address".into(),
            };
            return Err(LdapError::Unavailable(format!(
                "{address}: {why}; check that the directory is running and reachable, and ldap.url"
            )));
        };
        let _ = tcp.set_nodelay(true);
        let mut stream = DeadlineStream::new(tcp, deadline);
        let mut next_id = 1;
        let session_error = |doing: &str, f: Fault| fault_error(s, started, doing, f);
        if s.transport == Transport::StartTls {
            write_message(&mut stream, next_id, starttls_request())
                .map_err(|f| session_error("asking for StartTLS", f))?;
            let m = read_message(&mut stream)
                .map_err(|f| session_error("reading the StartTLS answer", f))?;
            if m.id != next_id || m.op != EXTENDED_RESPONSE {
                return Err(session_error(
                    "reading the StartTLS answer",
                    Fault::Malformed(format!("an answer with tag 0x{:02x}", m.op)),
                ));
            }
            let r = decode_result(&m.body)
                .map_err(|e| session_error("reading the StartTLS answer", Fault::Malformed(e)))?;
            if r.code != 0 {
                return Err(LdapError::Unavailable(format!(
                    "{address} refused StartTLS with {}; use ldaps:// or check the server's TLS setup",
                    r.describe()
                )));
            }
            next_id += 1;
        }
        let link = match s.transport {
            Transport::Plain => Link::Plain(stream),
            Transport::Ldaps | Transport::StartTls => {
                let name = match s.host.parse::<IpAddr>() {
                    Ok(ip) => ServerName::IpAddress(ip.into()),
                    Err(_) => ServerName::try_from(s.host.clone())
                        .map_err(|e| LdapError::Misconfigured(format!("ldap.url's host: {e}")))?,
                };
                let config = ClientConfig::builder_with_provider(provider())
                    .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
                    .map_err(|e| LdapError::Misconfigured(format!("TLS configuration: {e}")))?
                    .with_root_certificates(Arc::clone(&s.roots))
                    .with_no_client_auth();
                let mut conn = ClientConnection::new(Arc::new(config), name)
                    .map_err(|e| LdapError::Misconfigured(format!("TLS configuration: {e}")))?;
                while conn.is_handshaking() {
                    conn.complete_io(&mut stream)
                        .map_err(|e| session_error("in the TLS handshake", Fault::Io(e)))?;
                }
                Link::Tls(Box::new(StreamOwned::new(conn, stream)))
            }
        };
        Ok(Session {
            s,
            link,
            next_id,
            started,
        })
    }

    fn fail(&self, doing: &str, f: Fault) -> LdapError {
        fault_error(self.s, self.started, doing, f)
    }

    /// Sends one request; its id, for [`Session::receive`].
    fn call(&mut self, doing: &str, op: Vec<u8>) -> Result<i64, LdapError> {
        let id = self.next_id;
        self.next_id += 1;
        write_message(&mut self.link, id, op).map_err(|f| self.fail(doing, f))?;
        Ok(id)
    }

    fn receive(&mut self, doing: &str, id: i64) -> Result<Message, LdapError> {
        let m = read_message(&mut self.link).map_err(|f| self.fail(doing, f))?;
        if m.id == 0 && m.op == EXTENDED_RESPONSE {
            // A notice of disconnection (RFC 4511, 4.4.1).
            let why = decode_result(&m.body)
                .map(|r| r.describe())
                .unwrap_or_else(|_| "a notice".into());
            return Err(LdapError::Unavailable(format!(
                "{} ended the session while {doing}: {why}",
                self.s.address()
            )));
        }
        if m.id != id {
            return Err(self.fail(
                doing,
                Fault::Malformed(format!(
                    "an answer to message {} while waiting for {id}",
                    m.id
                )),
            ));
        }
        Ok(m)
    }

    fn bind(&mut self, doing: &str, dn: &str, password: &str) -> Result<LdapResult, LdapError> {
        let id = self.call(doing, bind_request(dn, password))?;
        let m = self.receive(doing, id)?;
        if m.op != BIND_RESPONSE {
            return Err(self.fail(
                doing,
                Fault::Malformed(format!("an answer with tag 0x{:02x}", m.op)),
            ));
        }
        decode_result(&m.body).map_err(|e| self.fail(doing, Fault::Malformed(e)))
    }

    /// Binds as the service account, or anonymously without a password.
    fn bind_service(&mut self) -> Result<(), LdapError> {
        let s = self.s;
        let (dn, password) = match &s.bind_password {
            Some(p) => (s.settings.bind_dn.as_str(), p.as_str()),
            None => ("", ""),
        };
        let r = self.bind("binding as the service account", dn, password)?;
        match r.code {
            0 => Ok(()),
            INVALID_CREDENTIALS => Err(LdapError::Misconfigured(format!(
                "{} refused the service account ldap.bind_dn {:?} with {}: check ldap.bind_dn and its password",
                s.address(),
                s.settings.bind_dn,
                r.describe()
            ))),
            51 | 52 => Err(LdapError::Unavailable(format!(
                "{} answered the service account's bind with {}",
                s.address(),
                r.describe()
            ))),
            _ => Err(LdapError::Misconfigured(format!(
                "{} refused the service account ldap.bind_dn {:?} with {}",
                s.address(),
                s.settings.bind_dn,
                r.describe()
            ))),
        }
    }

    /// A subtree search; at most `size_limit` entries are kept, more is
    /// reported as sizeLimitExceeded whatever the server says.
    fn search(
        &mut self,
        base: &str,
        filter: &Filter,
        size_limit: i64,
        attributes: &[&str],
    ) -> Result<(Vec<Entry>, LdapResult), LdapError> {
        let doing = "searching";
        let time_limit = self.s.settings.timeout_secs as i64;
        let id = self.call(
            doing,
            search_request(base, filter, size_limit, time_limit, attributes),
        )?;
        let mut entries = Vec::new();
        loop {
            let m = self.receive(doing, id)?;
            match m.op {
                SEARCH_RESULT_ENTRY => {
                    if entries.len() as i64 >= size_limit {
                        let over = LdapResult {
                            code: SIZE_LIMIT_EXCEEDED,
                            diagnostic: String::new(),
                        };
                        return Ok((entries, over));
                    }
                    entries.push(
                        decode_entry(&m.body).map_err(|e| self.fail(doing, Fault::Malformed(e)))?,
                    );
                }
                SEARCH_RESULT_REFERENCE => {}
                SEARCH_RESULT_DONE => {
                    let r = decode_result(&m.body)
                        .map_err(|e| self.fail(doing, Fault::Malformed(e)))?;
                    return Ok((entries, r));
                }
                op => {
                    return Err(self.fail(
                        doing,
                        Fault::Malformed(format!("an answer with tag 0x{op:02x}")),
                    ))
                }
            }
        }
    }

    fn search_failure(&self, setting: &str, base: &str, r: &LdapResult) -> LdapError {
        let address = self.s.address();
        match r.code {
            32 => LdapError::Misconfigured(format!(
                "{setting} {base:?} does not exist on {address} ({})",
                r.describe()
            )),
            3 | 51 | 52 => {
                LdapError::Unavailable(format!("{address} answered a search with {}", r.describe()))
            }
            _ => LdapError::Misconfigured(format!(
                "{address} refused the search under {setting} {base:?} with {}; check it, the filter and the service account's rights",
                r.describe()
            )),
        }
    }

    /// Ends the session politely; failures do not matter any more.
    fn unbind(mut self) {
        let id = self.next_id;
        let _ = write_message(&mut self.link, id, tlv(UNBIND_REQUEST, &[]));
        if let Link::Tls(s) = &mut self.link {
            s.conn.send_close_notify();
            let _ = s.conn.complete_io(&mut s.sock);
        }
        let stream = match &self.link {
            Link::Plain(s) => s.tcp(),
            Link::Tls(s) => s.sock.tcp(),
        };
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
}

fn fault_error(s: &ResolvedLdap, started: Instant, doing: &str, f: Fault) -> LdapError {
    let address = s.address();
    let message = match f {
        Fault::TooLarge(len) => format!(
            "{address} sent a message of {len} bytes while {doing}, over the {MAX_MESSAGE}-byte limit"
        ),
        Fault::Malformed(why) => format!(
            "{address} sent {why} while {doing}: is it an LDAP v3 server, and is ldap.url's scheme (ldaps:// or ldap://) right for that port?"
        ),
        Fault::Io(e) if is_timeout(&e) => format!(
            "{address}: no answer within {} s while {doing} (ldap.timeout_secs); check that the directory is reachable and ldap.url's scheme is right for that port",
            started.elapsed().as_secs().max(s.settings.timeout_secs)
        ),
        Fault::Io(e) => {
            let tls = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            match tls {
                Some(rustls::Error::InvalidCertificate(why)) => format!(
                    "{address}: the server's TLS certificate was refused while {doing} ({why:?}): check that ldap.ca_file holds the CA that signed it and that ldap.url's host is a name in it"
                ),
                Some(t) => format!(
                    "{address}: TLS failed while {doing}: {t}; check that the server speaks TLS on that port (ldaps://) or supports StartTLS"
                ),
                None if e.kind() == io::ErrorKind::UnexpectedEof => format!(
                    "{address} closed the connection while {doing}; check ldap.url's scheme and port and the server's log"
                ),
                None => format!("{address}: {e} while {doing}"),
            }
        }
    };
    LdapError::Unavailable(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> LdapSettings {
        LdapSettings {
            url: url.into(),
            start_tls: false,
            allow_plain: true,
            ca_file: None,
            bind_dn: "cn=reader,dc=example,dc=org".into(),
            bind_password: Some("reader secret".into()),
            bind_password_file: None,
            bind_password_env: None,
            user_base: "ou=people,dc=example,dc=org".into(),
            user_filter: default_user_filter(),
            username_attribute: default_username_attribute(),
            display_name_attribute: default_display_name_attribute(),
            email_attribute: default_email_attribute(),
            member_of_attribute: default_member_of_attribute(),
            group_base: None,
            group_filter: default_group_filter(),
            group_name_attribute: default_group_name_attribute(),
            timeout_secs: 5,
        }
    }

    #[test]
    fn integers_round_trip_in_minimal_form() {
        for (v, bytes) in [
            (0i64, vec![0x00]),
            (1, vec![0x01]),
            (127, vec![0x7f]),
            (128, vec![0x00, 0x80]),
            (256, vec![0x01, 0x00]),
            (-1, vec![0xff]),
            (-128, vec![0x80]),
            (-129, vec![0xff, 0x7f]),
            (i32::MAX as i64, vec![0x7f, 0xff, 0xff, 0xff]),
        ] {
            assert_eq!(integer_content(v), bytes, "{v}");
            assert_eq!(decode_integer(&bytes).unwrap(), v);
        }
        for v in [i64::MIN, i64::MAX, -70000, 70000] {
            assert_eq!(decode_integer(&integer_content(v)).unwrap(), v);
        }
        assert!(decode_integer(&[]).is_err());
        assert!(decode_integer(&[0; 9]).is_err());
    }

    #[test]
    fn lengths_short_and_long_form_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 65535, 70000] {
            let content = vec![0x41u8; len];
            let enc = tlv(OCTET_STRING, &content);
            let mut r = Ber::new(&enc);
            let (tag, got) = r.next().unwrap();
            assert_eq!((tag, got.len()), (OCTET_STRING, len));
            assert!(r.is_empty());
        }
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
        // Indefinite lengths, truncation and overlong elements are refused.
        assert!(Ber::new(&[0x30, 0x80, 0, 0]).next().is_err());
        assert!(Ber::new(&[0x04, 0x05, 1, 2]).next().is_err());
        assert!(Ber::new(&[0x04]).next().is_err());
    }

    #[test]
    fn a_bind_request_is_encoded_as_rfc_4511_says() {
        let m = message(1, bind_request("cn=a", "pw"));
        assert_eq!(
            m,
            [
                0x30, 0x12, 0x02, 0x01, 0x01, // messageID 1
                0x60, 0x0d, 0x02, 0x01, 0x03, // version 3
                0x04, 0x04, b'c', b'n', b'=', b'a', // name
                0x80, 0x02, b'p', b'w', // simple
            ]
        );
        let d = decode_message(&m).unwrap();
        assert_eq!((d.id, d.op), (1, BIND_REQUEST));
    }

    #[test]
    fn responses_decode_from_what_a_server_sends() {
        let result = |code: i64, diag: &str| {
            vec![
                integer(ENUMERATED, code),
                tlv(OCTET_STRING, b""),
                tlv(OCTET_STRING, diag.as_bytes()),
            ]
        };
        let bytes = message(7, constructed(BIND_RESPONSE, &result(49, "bad")));
        let m = read_message(&mut &bytes[..]).ok().unwrap();
        assert_eq!((m.id, m.op), (7, BIND_RESPONSE));
        assert_eq!(
            decode_result(&m.body).unwrap(),
            LdapResult {
                code: 49,
                diagnostic: "bad".into()
            }
        );

        let long = "x".repeat(70_000);
        let entry = constructed(
            SEARCH_RESULT_ENTRY,
            &[
                tlv(OCTET_STRING, b"uid=alice,ou=people"),
                constructed(
                    SEQUENCE,
                    &[
                        constructed(
                            SEQUENCE,
                            &[
                                tlv(OCTET_STRING, b"CN"),
                                constructed(SET, &[tlv(OCTET_STRING, b"Alice")]),
                            ],
                        ),
                        constructed(
                            SEQUENCE,
                            &[
                                tlv(OCTET_STRING, b"memberOf"),
                                constructed(
                                    SET,
                                    &[
                                        tlv(OCTET_STRING, b"cn=a,o=x"),
                                        tlv(OCTET_STRING, long.as_bytes()),
                                    ],
                                ),
                            ],
                        ),
                    ],
                ),
            ],
        );
        let bytes = message(2, entry);
        let m = read_message(&mut &bytes[..]).ok().unwrap();
        let e = decode_entry(&m.body).unwrap();
        assert_eq!(e.dn, "uid=alice,ou=people");
        assert_eq!(e.values("cn").collect::<Vec<_>>(), ["Alice"]);
        assert_eq!(e.values("memberof").count(), 2);
        assert_eq!(e.values("mail").count(), 0);
    }

    #[test]
    fn an_oversized_message_is_refused_before_it_is_read() {
        let mut bytes = vec![0x30, 0x84];
        bytes.extend_from_slice(&((MAX_MESSAGE as u32) + 1).to_be_bytes());
        assert!(matches!(
            read_message(&mut &bytes[..]),
            Err(Fault::TooLarge(n)) if n == MAX_MESSAGE + 1
        ));
        assert!(matches!(
            read_message(&mut &[0x04, 0x00][..]),
            Err(Fault::Malformed(_))
        ));
    }

    #[test]
    fn filters_parse() {
        let eq = |a: &str, v: &str| Filter::Equal(a.into(), v.as_bytes().to_vec());
        assert_eq!(parse_filter("(uid=alice)").unwrap(), eq("uid", "alice"));
        assert_eq!(
            parse_filter(" (&(objectClass=person)(|(uid=a)(mail=a@x))(!(cn=b))) ").unwrap(),
            Filter::And(vec![
                eq("objectClass", "person"),
                Filter::Or(vec![eq("uid", "a"), eq("mail", "a@x")]),
                Filter::Not(Box::new(eq("cn", "b"))),
            ])
        );
        assert_eq!(
            parse_filter("(mail=*)").unwrap(),
            Filter::Present("mail".into())
        );
        assert_eq!(
            parse_filter("(cn=a\\2a\\28\\29\\5c\\00)").unwrap(),
            Filter::Equal("cn".into(), b"a*()\\\0".to_vec())
        );
        assert_eq!(
            parse_filter("(n>=5)").unwrap(),
            Filter::GreaterOrEqual("n".into(), b"5".to_vec())
        );
        for bad in [
            "uid=alice",
            "(uid=alice",
            "(uid=al*ce)",
            "(uid=*alice)",
            "(cn:dn:=x)",
            "(&)",
            "(uid=a)(uid=b)",
            "(uid=a(b)",
            "(uid=\\zz)",
            "(=x)",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad} parsed");
        }
        assert!(parse_filter("(uid=*a)")
            .unwrap_err()
            .contains("unsupported filter"));
        let deep = format!("{}(a=b){}", "(!".repeat(40), ")".repeat(40));
        assert!(parse_filter(&deep).is_err());
    }

    #[test]
    fn filters_encode_as_rfc_4511_says() {
        let f = parse_filter("(&(uid=a)(mail=*))").unwrap();
        assert_eq!(
            encode_filter(&f),
            [
                0xa0, 0x10, 0xa3, 0x08, 0x04, 0x03, b'u', b'i', b'd', 0x04, 0x01, b'a', 0x87, 0x04,
                b'm', b'a', b'i', b'l'
            ]
        );
        let not = encode_filter(&parse_filter("(!(a=b))").unwrap());
        assert_eq!(
            not,
            [0xa2, 0x08, 0xa3, 0x06, 0x04, 0x01, b'a', 0x04, 0x01, b'b']
        );
    }

    #[test]
    fn escaping_keeps_user_names_from_changing_a_filter() {
        assert_eq!(
            escape_filter_value("a*b(c)d\\e\0"),
            "a\\2ab\\28c\\29d\\5ce\\00"
        );
        for name in ["*", "alice)(uid=*", "*)(|(uid=*", "\\", "é(ü)"] {
            let text = default_user_filter().replace("{username}", &escape_filter_value(name));
            assert_eq!(
                parse_filter(&text).unwrap(),
                Filter::Equal("uid".into(), name.as_bytes().to_vec()),
                "{name}"
            );
        }
    }

    #[test]
    fn a_group_name_is_its_first_rdn_value() {
        for (dn, name) in [
            ("cn=admins,ou=groups,dc=example,dc=org", Some("admins")),
            ("CN=Domain Admins,CN=Users,DC=corp", Some("Domain Admins")),
            ("cn=a\\,b,ou=groups", Some("a,b")),
            ("cn=a\\2Cb+ou=x,ou=groups", Some("a,b")),
            ("cn= spaced ,o=x", Some("spaced")),
            ("cn=caf\\C3\\A9,o=x", Some("café")),
            ("ou=solo", Some("solo")),
            ("cn=#04024869,o=x", None),
            ("no equals", None),
            ("cn=,o=x", None),
        ] {
            assert_eq!(first_rdn_value(dn).as_deref(), name, "{dn}");
        }
    }

    #[test]
    fn urls_and_transports_resolve() {
        let r = settings("ldap://127.0.0.1:3890").resolve().unwrap();
        assert_eq!(
            (r.host(), r.port(), r.transport()),
            ("127.0.0.1", 3890, Transport::Plain)
        );
        let r = settings("ldap://[::1]/").resolve().unwrap();
        assert_eq!((r.host(), r.port()), ("::1", 389));
        assert_eq!(r.address(), "ldap://[::1]:389");

        let mut s = settings("ldap://ldap.example.org");
        s.allow_plain = false;
        let e = s.resolve().unwrap_err();
        assert!(e.contains("in clear") && e.contains("allow_plain"), "{e}");

        for bad in [
            "http://x",
            "ldap://",
            "ldap://h:0",
            "ldap://h:99999",
            "ldap://h/dc=x",
            "ldap://u@h",
        ] {
            assert!(settings(bad).resolve().is_err(), "{bad}");
        }
        let mut s = settings("ldaps://h");
        s.start_tls = true;
        assert!(s.resolve().unwrap_err().contains("start_tls"));
    }

    #[test]
    fn the_bind_password_has_one_source_and_is_never_printed() {
        let mut s = settings("ldap://h");
        s.bind_password_env = Some("ICPD_TEST_LDAP_UNSET_VARIABLE".into());
        assert!(s.resolve().unwrap_err().contains("only one"));
        s.bind_password = None;
        assert!(s.resolve().unwrap_err().contains("not set"));
        s.bind_password_env = None;
        assert!(s.resolve().unwrap_err().contains("bind_dn"));
        s.bind_dn = String::new();
        assert!(s.resolve().is_ok(), "an anonymous search");
        s.bind_password = Some(String::new());
        assert!(s.resolve().unwrap_err().contains("empty"));

        let dir = std::env::temp_dir().join(format!("icpd-ldap-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "from the file\n").unwrap();
        let mut s = settings("ldap://h");
        s.bind_password = None;
        s.bind_password_file = Some(file);
        let r = s.resolve().unwrap();
        assert_eq!(r.bind_password.as_deref(), Some("from the file"));
        std::fs::remove_dir_all(&dir).unwrap();

        let r = settings("ldap://h").resolve().unwrap();
        let shown = format!("{r:?} {:?}", r.settings());
        assert!(!shown.contains("reader secret"), "{shown}");
    }

    #[test]
    fn filter_templates_are_checked_at_resolve() {
        let mut s = settings("ldap://h");
        s.user_filter = "(uid=alice)".into();
        assert!(s.resolve().unwrap_err().contains("{username}"));
        s.user_filter = "(uid={username}*)".into();
        assert!(s.resolve().unwrap_err().contains("unsupported filter"));
        let mut s = settings("ldap://h");
        s.group_base = Some("ou=groups,dc=x".into());
        s.group_filter = "(member=x)".into();
        assert!(s.resolve().unwrap_err().contains("{dn}"));
    }

    #[test]
    fn an_empty_password_is_refused_without_connecting() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let r = settings(&format!("ldap://127.0.0.1:{port}"))
            .resolve()
            .unwrap();
        assert!(matches!(
            authenticate(&r, "alice", ""),
            Err(LdapError::InvalidCredentials)
        ));
        assert!(matches!(
            authenticate(&r, "", "pw"),
            Err(LdapError::InvalidCredentials)
        ));
        let e = listener.accept().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "a connection was made");
    }
}
