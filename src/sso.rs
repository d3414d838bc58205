//! Single sign-on: OpenID Connect (authorization code with PKCE, state and
//! nonce) and LDAP / Active Directory, and the mapping of directory groups
//! to icpd roles.
//!
//! - **Settings** (`[sso]`, `[[sso.group_mappings]]`, `[ldap]`) are read
//!   and checked at start ([`SsoSettings::resolve`]); secrets come from
//!   the file, a file of their own or the environment, and never appear in
//!   `Debug` output.
//! - **Outbound calls** (discovery, JWKS, the token endpoint, LDAP binds)
//!   run only on this module's own bounded [`OutboundPool`]
//!   ([`Sso::submit`]), each with a connect timeout and a total budget;
//!   the HTTP layer answers the waiting client when the job ends (a
//!   deferred response), so a provider that hangs costs a pool worker for
//!   at most its timeout and never a request worker.
//! - **Discovery and keys** are cached for [`PROVIDER_TTL`]; a token
//!   signed by a key the cache does not know makes one fresh read of the
//!   JWKS (key rotation) before it is refused.
//! - **Authorization requests** are kept in the database by the SHA-256 of
//!   their `state` (so any node of a cluster can complete them), used once
//!   and forgotten after [`LOGIN_TTL`].
//! - **A federated user's roles** come from the mappings of the groups
//!   their last sign-in read ([`crate::auth::federated_login`]), so a
//!   user removed from a group loses its roles at their next sign-in, and
//!   their sessions and API tokens stop within one session lifetime.
//!
//! Nothing here logs a token, the client secret, a bind password or an
//! authorization code: errors name the provider's address and the claim or
//! step that failed.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{self, sha256_hex};
use crate::error::{Error, Result};
use crate::http::outbound::{self, OutboundError, OutboundRequest, PeerTrust, Scheme, Timeouts};
use crate::master_key::random_bytes;
use crate::oidc::{self, Jwks, TokenError};
use crate::outbound::{Job, OutboundPool, PoolFull};
use crate::store::{DirectoryIdentity, SsoLoginRow, Store};
use crate::time::Millis;

/// How long discovery and the JWKS are reused before being read again.
pub const PROVIDER_TTL: Duration = Duration::from_secs(3600);
/// How long an authorization request may take, from the start to the
/// callback.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);
/// Largest discovery, JWKS or token response read.
const MAX_PROVIDER_BODY: usize = 512 * 1024;
/// Workers and queue of the sign-in pool.
const POOL_WORKERS: usize = 4;
const POOL_QUEUE: usize = 64;

/// A secret from the configuration: its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Reads a secret given inline, as a file or as an environment variable
/// (exactly one of them, or none). `what` names the setting in errors.
pub fn resolve_secret(
    what: &str,
    inline: Option<&str>,
    file: Option<&std::path::Path>,
    env: Option<&str>,
) -> std::result::Result<Option<Secret>, String> {
    match (inline, file, env) {
        (None, None, None) => Ok(None),
        (Some(v), None, None) => Ok(Some(Secret(v.to_string()))),
        (None, Some(path), None) => std::fs::read_to_string(path)
            .map(|s| Some(Secret(s.trim_end_matches(['\r', '\n']).to_string())))
            .map_err(|e| format!("{what}_file: cannot read {}: {e}", path.display())),
        (None, None, Some(var)) => std::env::var(var)
            .map(|s| Some(Secret(s)))
            .map_err(|_| format!("{what}_env: the environment variable {var} is not set")),
        _ => Err(format!(
            "give only one of {what}, {what}_file and {what}_env"
        )),
    }
}

// ---- settings ---------------------------------------------------------

/// `[sso]` as written in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoSettings {
    /// The OpenID provider (`https://…`); OIDC is on when it is set.
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_file: Option<PathBuf>,
    client_secret_env: Option<String>,
    /// Where the provider sends the browser back: the console's
    /// `/login/callback` on this server's public address.
    pub redirect_uri: Option<String>,
    /// Where the provider's end-session endpoint sends the browser after
    /// logout (the console's `/login`); without it, logout stays there.
    pub post_logout_redirect_uri: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// The claim that becomes the icpd user name: `email` (default) or
    /// `preferred_username` (or another string claim).
    pub username_claim: Option<String>,
    /// The claim listing the user's groups (e.g. `groups`).
    pub groups_claim: Option<String>,
    /// A claim whose values make a user Super Admin when one of
    /// `admin_values` is among them (e.g. `roles` / `["icp-admin"]`).
    pub admin_claim: Option<String>,
    pub admin_values: Option<Vec<String>>,
    /// The button's text: "Sign in with {label}".
    pub label: Option<String>,
    /// PEM roots the provider's certificate must chain to (default: the
    /// system's bundle).
    pub ca_file: Option<PathBuf>,
    /// Bound on each call to the provider (default 10 s).
    pub timeout: Option<u64>,
    /// `false`: local accounts cannot sign in with a password (but the
    /// break-glass account).
    pub password_login: Option<bool>,
    /// The local account that may still sign in with a password when
    /// `password_login` is false (default `admin`; `""` for none).
    pub break_glass_user: Option<String>,
    #[serde(default)]
    pub group_mappings: Vec<MappingSetting>,
}

/// `[[sso.group_mappings]]`: a directory group's role at a scope.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MappingSetting {
    pub group: String,
    pub role: String,
    /// `organization` (default), `project HANDLE`, `environment HANDLE`
    /// or `integration PROJECT/INTEGRATION`.
    #[serde(default = "organization")]
    pub scope: String,
    /// `oidc`, `ldap`, or absent for both.
    #[serde(default)]
    pub source: Option<String>,
}

fn organization() -> String {
    "organization".into()
}

/// The OpenID provider icpd signs people in with, checked.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub redirect_uri: String,
    pub post_logout_redirect_uri: Option<String>,
    pub scopes: Vec<String>,
    pub username_claim: String,
    pub groups_claim: Option<String>,
    pub admin_claim: Option<String>,
    pub admin_values: Vec<String>,
    pub label: String,
    pub trust: PeerTrust,
    pub timeout: Duration,
}

/// `[sso]` and `[ldap]`, checked.
#[derive(Debug, Clone)]
pub struct SsoConfig {
    pub oidc: Option<OidcSettings>,
    pub ldap: Option<Arc<crate::ldap::ResolvedLdap>>,
    pub password_login: bool,
    pub break_glass_user: Option<String>,
    pub mappings: Vec<MappingSetting>,
}

impl Default for SsoConfig {
    fn default() -> SsoConfig {
        SsoConfig {
            oidc: None,
            ldap: None,
            password_login: true,
            break_glass_user: Some("admin".into()),
            mappings: Vec::new(),
        }
    }
}

/// The system's CA bundle, where Debian, Red Hat and Alpine keep it.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// Trust in the roots of `ca_file`, or of the system's bundle.
pub fn trust_from(
    ca_file: Option<&std::path::Path>,
    what: &str,
) -> std::result::Result<PeerTrust, String> {
    let path = match ca_file {
        Some(p) => p.to_path_buf(),
        None => SYSTEM_BUNDLES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "{what}: no system CA bundle found ({}); set ca_file",
                    SYSTEM_BUNDLES.join(", ")
                )
            })?,
    };
    let pem = std::fs::read_to_string(&path)
        .map_err(|e| format!("{what}: cannot read {}: {e}", path.display()))?;
    PeerTrust::from_ca_pem(&pem).map_err(|e| format!("{what}: {}: {e}", path.display()))
}

impl SsoSettings {
    /// Checks the settings; `ldap` is `[ldap]`. Errors name the setting.
    pub fn resolve(
        self,
        ldap: Option<crate::ldap::LdapSettings>,
    ) -> std::result::Result<SsoConfig, String> {
        let oidc = match self
            .issuer
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => {
                if self.client_id.is_some() || self.redirect_uri.is_some() {
                    return Err("sso: client_id and redirect_uri need sso.issuer".into());
                }
                None
            }
            Some(issuer) => {
                let issuer = issuer.trim_end_matches('/').to_string();
                ProviderUrl::parse(&issuer).map_err(|e| format!("sso.issuer: {e}"))?;
                let client_id = self
                    .client_id
                    .filter(|s| !s.trim().is_empty())
                    .ok_or("sso.client_id is required with sso.issuer")?;
                let redirect_uri = self
                    .redirect_uri
                    .filter(|s| !s.trim().is_empty())
                    .ok_or("sso.redirect_uri is required with sso.issuer (the console's https://HOST:9446/login/callback)")?;
                ProviderUrl::parse(&redirect_uri).map_err(|e| format!("sso.redirect_uri: {e}"))?;
                if let Some(u) = &self.post_logout_redirect_uri {
                    ProviderUrl::parse(u)
                        .map_err(|e| format!("sso.post_logout_redirect_uri: {e}"))?;
                }
                let client_secret = resolve_secret(
                    "sso.client_secret",
                    self.client_secret.as_deref(),
                    self.client_secret_file.as_deref(),
                    self.client_secret_env.as_deref(),
                )?;
                let mut scopes = self
                    .scopes
                    .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
                if !scopes.iter().any(|s| s == "openid") {
                    scopes.insert(0, "openid".into());
                }
                if scopes
                    .iter()
                    .any(|s| s.is_empty() || s.contains(char::is_whitespace))
                {
                    return Err("sso.scopes: each scope is one word".into());
                }
                let timeout = Duration::from_secs(self.timeout.unwrap_or(10).clamp(1, 120));
                Some(OidcSettings {
                    issuer,
                    client_id,
                    client_secret,
                    redirect_uri,
                    post_logout_redirect_uri: self.post_logout_redirect_uri,
                    scopes,
                    username_claim: self.username_claim.unwrap_or_else(|| "email".into()),
                    groups_claim: self.groups_claim.filter(|s| !s.is_empty()),
                    admin_claim: self.admin_claim.filter(|s| !s.is_empty()),
                    admin_values: self.admin_values.unwrap_or_default(),
                    label: self.label.unwrap_or_else(|| "single sign-on".into()),
                    trust: trust_from(self.ca_file.as_deref(), "sso.ca_file")?,
                    timeout,
                })
            }
        };
        let ldap = match ldap {
            None => None,
            Some(l) => Some(Arc::new(l.resolve().map_err(|e| format!("ldap: {e}"))?)),
        };
        for m in &self.group_mappings {
            if m.group.trim().is_empty() || m.role.trim().is_empty() {
                return Err("sso.group_mappings: each mapping needs a group and a role".into());
            }
            if !matches!(m.source.as_deref(), None | Some("oidc") | Some("ldap")) {
                return Err(format!(
                    "sso.group_mappings: source {:?} must be \"oidc\" or \"ldap\" (or absent for both)",
                    m.source.as_deref().unwrap_or_default()
                ));
            }
            parse_scope(&m.scope).map_err(|e| format!("sso.group_mappings ({}): {e}", m.group))?;
        }
        Ok(SsoConfig {
            oidc,
            ldap,
            password_login: self.password_login.unwrap_or(true),
            break_glass_user: match self.break_glass_user {
                None => Some("admin".into()),
                Some(u) if u.is_empty() => None,
                Some(u) => Some(u),
            },
            mappings: self.group_mappings,
        })
    }
}

/// A scope as written in a mapping: the kind, and the handle(s) of its resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeSpec {
    Organization,
    Project(String),
    Environment(String),
    Integration(String, String),
}

/// Reads `organization`, `project HANDLE`, `environment HANDLE` or
/// `integration PROJECT/INTEGRATION`.
pub fn parse_scope(text: &str) -> std::result::Result<ScopeSpec, String> {
    let mut words = text.split_whitespace();
    let spec = match (words.next(), words.next(), words.next()) {
        (Some("organization"), None, None) => ScopeSpec::Organization,
        (Some("project"), Some(p), None) => ScopeSpec::Project(p.into()),
        (Some("environment"), Some(e), None) => ScopeSpec::Environment(e.into()),
        (Some("integration"), Some(pi), None) => match pi.split_once('/') {
            Some((p, i)) if !p.is_empty() && !i.is_empty() => {
                ScopeSpec::Integration(p.into(), i.into())
            }
            _ => return Err(format!("scope {text:?}: write integration PROJECT/INTEGRATION")),
        },
        _ => {
            return Err(format!(
                "scope {text:?} must be organization, project HANDLE, environment HANDLE or integration PROJECT/INTEGRATION"
            ))
        }
    };
    Ok(spec)
}

// ---- provider URLs ------------------------------------------------------

/// An `https://` URL of the provider (or `http://` on a loopback host, for
/// a provider on the same machine).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProviderUrl {
    scheme: Scheme,
    host: String,
    port: u16,
    path_and_query: String,
}

impl ProviderUrl {
    fn parse(url: &str) -> std::result::Result<ProviderUrl, String> {
        let (scheme, rest) = if let Some(r) = url.strip_prefix("https://") {
            (Scheme::Https, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (Scheme::Http, r)
        } else {
            return Err(format!("{url:?} is not an https:// URL"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') || url.contains('#') {
            return Err(format!(
                "{url:?} is not a usable URL (no host, user info or fragment)"
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                match p.parse::<u16>() {
                    Ok(port) if !h.contains(':') || h.starts_with('[') => (h.to_string(), port),
                    _ => (authority.to_string(), default_port(scheme)),
                }
            }
            _ => (authority.to_string(), default_port(scheme)),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if scheme == Scheme::Http && !is_loopback(&host) {
            return Err(format!(
                "{url:?} uses plain http; only https:// is accepted (http only for localhost)"
            ));
        }
        let path_and_query = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Ok(ProviderUrl {
            scheme,
            host,
            port,
            path_and_query,
        })
    }
}

fn default_port(s: Scheme) -> u16 {
    match s {
        Scheme::Https => 443,
        Scheme::Http => 80,
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Percent-encodes a query component (RFC 3986 unreserved kept).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---- the provider: discovery and keys ---------------------------------

/// What discovery says (the parts icpd uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub end_session_endpoint: Option<String>,
}

#[derive(Debug, Clone)]
struct Provider {
    discovery: Discovery,
    jwks: Jwks,
    fetched: Instant,
}

/// The sign-in service: settings, the provider cache and the pool.
pub struct Sso {
    pub config: SsoConfig,
    provider: Mutex<Option<Provider>>,
    pool: OutboundPool,
}

impl fmt::Debug for Sso {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sso").field("config", &self.config).finish()
    }
}

/// Why the provider could not be used: the message names its address.
fn unavailable(what: &str, e: &OutboundError) -> Error {
    Error::Upstream(format!(
        "the identity provider could not be reached ({what}): {e}; try again later, or sign in with a password if your administrator allows it"
    ))
}

impl Sso {
    pub fn new(config: SsoConfig) -> Result<Sso> {
        Ok(Sso {
            config,
            provider: Mutex::new(None),
            pool: OutboundPool::new(POOL_WORKERS, POOL_QUEUE)
                .map_err(|e| Error::io("starting the sign-in pool", e))?,
        })
    }

    /// Runs `job` on the sign-in pool; a full queue is refused at once.
    pub fn submit(&self, job: Job) -> std::result::Result<(), Error> {
        self.pool
            .submit(job)
            .map_err(|e: PoolFull| Error::Upstream(format!("{e}")))
    }

    /// The sign-in pool's counters (for `/metrics`).
    pub fn pool_stats(&self) -> crate::outbound::PoolStats {
        self.pool.stats()
    }

    /// Stops the pool (at shutdown).
    pub fn shutdown(&self, grace: Duration) {
        self.pool.shutdown(grace);
    }

    pub fn oidc(&self) -> Result<&OidcSettings> {
        self.config.oidc.as_ref().ok_or_else(|| {
            Error::NotFound(
                "single sign-on is not configured on this server (see [sso] in the README)".into(),
            )
        })
    }

    fn get(&self, s: &OidcSettings, url: &str, what: &str) -> Result<Vec<u8>> {
        let u = ProviderUrl::parse(url)
            .map_err(|e| Error::Upstream(format!("the identity provider's {what}: {e}")))?;
        let mut req = OutboundRequest::new(u.scheme, u.host, u.port, "GET", u.path_and_query)
            .header("Accept", "application/json");
        req.timeouts = Timeouts {
            connect: s.timeout.min(Duration::from_secs(5)),
            total: s.timeout,
        };
        req.max_body = MAX_PROVIDER_BODY;
        let resp = outbound::send(&req, &s.trust).map_err(|e| unavailable(what, &e))?;
        if resp.status != 200 {
            return Err(Error::Upstream(format!(
                "the identity provider answered {} to the {what} request ({url}); check sso.issuer",
                resp.status
            )));
        }
        Ok(resp.body)
    }

    /// Discovery and keys, from the cache or the provider. `refresh_keys`:
    /// read the JWKS again even if cached (a token named an unknown key).
    fn provider(&self, s: &OidcSettings, refresh_keys: bool) -> Result<Provider> {
        let cached = self
            .provider
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|p| p.fetched.elapsed() < PROVIDER_TTL);
        let discovery = match &cached {
            Some(p) if !refresh_keys => return Ok(p.clone()),
            Some(p) => p.discovery.clone(),
            None => {
                let url = format!("{}/.well-known/openid-configuration", s.issuer);
                let body = self.get(s, &url, "discovery")?;
                parse_discovery(&body, &s.issuer).map_err(Error::Unavailable)?
            }
        };
        let body = self.get(s, &discovery.jwks_uri, "JWKS")?;
        let jwks = Jwks::parse(&body).map_err(|e| {
            Error::Upstream(format!("the identity provider's JWKS is unusable: {e}"))
        })?;
        let p = Provider {
            discovery,
            jwks,
            fetched: Instant::now(),
        };
        *self.provider.lock().unwrap_or_else(|e| e.into_inner()) = Some(p.clone());
        Ok(p)
    }

    /// Starts a sign-in: records state, nonce and PKCE verifier, and gives
    /// the provider's authorization URL. `state` is the client's (ICP's
    /// `authorize-url?state=`) or, when `None`, a new random one. Blocks
    /// on the provider: run it on the pool.
    pub fn authorization_url(
        &self,
        store: &Store,
        state: Option<&str>,
        now: Millis,
    ) -> Result<(String, String)> {
        let s = self.oidc()?;
        let state = match state {
            Some(st)
                if (8..=512).contains(&st.len()) && st.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                st.to_string()
            }
            Some(_) => {
                return Err(Error::BadRequest(
                    "state must be 8 to 512 printable characters".into(),
                ))
            }
            None => B64URL.encode(random_bytes::<24>()?),
        };
        let p = self.provider(s, false)?;
        let nonce = B64URL.encode(random_bytes::<24>()?);
        let verifier = B64URL.encode(random_bytes::<32>()?);
        let challenge = B64URL.encode(ring::digest::digest(
            &ring::digest::SHA256,
            verifier.as_bytes(),
        ));
        let login = SsoLoginRow {
            nonce: nonce.clone(),
            verifier,
            created_at: now,
        };
        store.write(|tx| {
            tx.delete_stale_sso_logins(now - LOGIN_TTL.as_millis() as i64)?;
            // A client that reuses its state (ICP's console chooses it)
            // replaces the earlier request, which can then not complete.
            let hash = sha256_hex(&state);
            tx.take_sso_login(&hash)?;
            tx.insert_sso_login(&hash, &login)
        })?;
        let sep = if p.discovery.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!(
            "{}{sep}response_type=code&client_id={}&redirect_uri={}&scope={}&state={}&nonce={}&code_challenge={}&code_challenge_method=S256",
            p.discovery.authorization_endpoint,
            form_encode(&s.client_id),
            form_encode(&s.redirect_uri),
            form_encode(&s.scopes.join(" ")),
            form_encode(&state),
            form_encode(&nonce),
            challenge,
        );
        Ok((url, state))
    }

    /// Completes a sign-in from the provider's callback: exchanges the code
    /// (with the PKCE verifier), checks the ID token, and signs the user in.
    /// Returns the outcome and the verified ID token (the logout hint).
    /// Blocks on the provider.
    pub fn complete_oidc(
        &self,
        store: &Store,
        code: &str,
        state: &str,
        client: &str,
        now: Millis,
    ) -> Result<(auth::SignedIn, String)> {
        let s = self.oidc()?;
        if code.is_empty() || code.len() > 4096 {
            return Err(Error::BadRequest(
                "the authorization code is missing".into(),
            ));
        }
        let login = store
            .write(|tx| tx.take_sso_login(&sha256_hex(state)))?
            .filter(|l| now - l.created_at <= LOGIN_TTL.as_millis() as i64)
            .ok_or_else(|| {
                Error::Unauthorized(
                    "this sign-in has expired or was already used; start again".into(),
                )
            })?;
        let p = self.provider(s, false)?;
        let id_token = self.exchange(s, &p.discovery, code, &login.verifier)?;
        let expected = oidc::Expected {
            issuer: &s.issuer,
            client_id: &s.client_id,
            nonce: &login.nonce,
        };
        let verified = match oidc::verify(&id_token, &p.jwks, &expected, now) {
            Err(TokenError::UnknownKey(_)) => {
                // The provider may have rotated its keys: read them once more.
                let fresh = self.provider(s, true)?;
                oidc::verify(&id_token, &fresh.jwks, &expected, now)
            }
            other => other,
        }
        .map_err(|e| Error::Unauthorized(format!("single sign-on failed: {e}")))?;
        let identity = identity_from_claims(s, &verified)?;
        let groups = identity.groups.clone();
        let id = DirectoryIdentity {
            source: "oidc",
            external_id: &verified.subject,
            display_name: &identity.display_name,
            email: identity.email.as_deref(),
            groups: &groups,
        };
        let l = auth::federated_login(store, &identity.username, &id, client, now)?;
        Ok((l, id_token))
    }

    /// POSTs the code to the token endpoint; the ID token it answers.
    fn exchange(
        &self,
        s: &OidcSettings,
        d: &Discovery,
        code: &str,
        verifier: &str,
    ) -> Result<String> {
        let u = ProviderUrl::parse(&d.token_endpoint)
            .map_err(|e| Error::Upstream(format!("the identity provider's token endpoint: {e}")))?;
        let mut form = format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}",
            form_encode(code),
            form_encode(&s.redirect_uri),
            form_encode(verifier)
        );
        let mut req = OutboundRequest::new(u.scheme, u.host, u.port, "POST", u.path_and_query)
            .header("Accept", "application/json")
            .header("Content-Type", "application/x-www-form-urlencoded");
        match &s.client_secret {
            // client_secret_basic (RFC 6749 §2.3.1: both parts form-encoded).
            Some(secret) => {
                let pair = format!(
                    "{}:{}",
                    form_encode(&s.client_id),
                    form_encode(secret.expose())
                );
                req = req.header("Authorization", format!("Basic {}", B64.encode(pair)));
            }
            None => form.push_str(&format!("&client_id={}", form_encode(&s.client_id))),
        }
        req = req.with_body(form.into_bytes());
        req.timeouts = Timeouts {
            connect: s.timeout.min(Duration::from_secs(5)),
            total: s.timeout,
        };
        req.max_body = MAX_PROVIDER_BODY;
        let resp = outbound::send(&req, &s.trust).map_err(|e| unavailable("token", &e))?;
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        if resp.status != 200 {
            // The provider's error code (RFC 6749 §5.2) says why; its
            // description is shown too, but never the code sent.
            let err = body["error"].as_str().unwrap_or("unknown error");
            let desc = body["error_description"].as_str().unwrap_or("");
            return Err(Error::Unauthorized(format!(
                "the identity provider refused the sign-in ({} {err}{}{desc}); start again",
                resp.status,
                if desc.is_empty() { "" } else { ": " }
            )));
        }
        body["id_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                Error::Upstream(
                    "the identity provider's token response holds no id_token (is `openid` among sso.scopes?)".into(),
                )
            })
    }

    /// Where the browser goes to end its session at the provider, if it
    /// says (discovery's `end_session_endpoint`). Cached discovery only:
    /// logout never waits on the provider.
    pub fn end_session_url(&self, id_token_hint: Option<&str>) -> Option<String> {
        let s = self.config.oidc.as_ref()?;
        let p = self
            .provider
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let end = p.discovery.end_session_endpoint?;
        let sep = if end.contains('?') { '&' } else { '?' };
        let mut url = format!("{end}{sep}client_id={}", form_encode(&s.client_id));
        if let Some(hint) = id_token_hint {
            url.push_str(&format!("&id_token_hint={}", form_encode(hint)));
        }
        if let Some(back) = &s.post_logout_redirect_uri {
            url.push_str(&format!("&post_logout_redirect_uri={}", form_encode(back)));
        }
        Some(url)
    }

    /// Signs a directory (LDAP) user in with their password. Blocks on the
    /// directory: run it on the pool.
    pub fn complete_ldap(
        &self,
        store: &Store,
        username: &str,
        password: &str,
        client: &str,
        now: Millis,
    ) -> Result<auth::SignedIn> {
        let l = self
            .config
            .ldap
            .as_ref()
            .ok_or_else(|| Error::Unauthorized("invalid user name or password".into()))?;
        let user = crate::ldap::authenticate(l, username, password).map_err(|e| match e {
            crate::ldap::LdapError::InvalidCredentials => {
                Error::Unauthorized("invalid user name or password".into())
            }
            crate::ldap::LdapError::Unavailable(m) => Error::Upstream(format!(
                "the directory could not be reached: {m}; try again later"
            )),
            crate::ldap::LdapError::Misconfigured(m) => {
                log::error!("LDAP sign-in is misconfigured: {m}");
                Error::Upstream(format!("the directory refused icpd's service account or search: {m}; ask your administrator to check [ldap]"))
            }
        })?;
        let id = DirectoryIdentity {
            source: "ldap",
            external_id: &user.dn,
            display_name: &user.display_name,
            email: user.email.as_deref(),
            groups: &user.groups,
        };
        auth::federated_login(store, &user.username, &id, client, now)
    }

    /// Writes the config file's group mappings into the database (replacing
    /// the previous ones). A mapping whose role or scope does not exist is
    /// skipped with a warning: it may be created later, and a restart then
    /// picks it up.
    pub fn sync_config_mappings(&self, store: &Store, now: Millis) -> Result<usize> {
        let mappings = self.config.mappings.clone();
        store.write(|tx| {
            tx.delete_config_sso_mappings()?;
            let roles = tx.roles()?;
            let mut written = 0;
            for m in &mappings {
                let Some(role) = roles.iter().find(|r| r.name.eq_ignore_ascii_case(&m.role)) else {
                    log::warn!("sso.group_mappings: no role named {:?}; the mapping of group {:?} is skipped", m.role, m.group);
                    continue;
                };
                let Some(scope) = resolve_scope_spec(tx, &m.scope)? else {
                    log::warn!("sso.group_mappings: scope {:?} does not exist; the mapping of group {:?} is skipped", m.scope, m.group);
                    continue;
                };
                tx.insert_sso_mapping(m.source.as_deref().unwrap_or(""), &m.group, role.id, scope, "config", now)?;
                written += 1;
            }
            Ok(written)
        })
    }
}

/// The scope a mapping's text names, if its resource exists.
pub fn resolve_scope_spec(
    tx: &crate::store::Tx,
    text: &str,
) -> Result<Option<crate::access::Scope>> {
    use crate::access::Scope;
    let spec = parse_scope(text).map_err(Error::BadRequest)?;
    Ok(match spec {
        ScopeSpec::Organization => Some(Scope::Organization),
        ScopeSpec::Project(p) => tx.project_by_handle(&p)?.map(|p| Scope::Project(p.id)),
        ScopeSpec::Environment(e) => tx
            .environment_by_handle(&e)?
            .map(|e| Scope::Environment(e.id)),
        ScopeSpec::Integration(p, i) => match tx.project_by_handle(&p)? {
            Some(p) => tx
                .integration_by_handle(p.id, &i)?
                .map(|i| Scope::Integration(i.id)),
            None => None,
        },
    })
}

fn parse_discovery(body: &[u8], issuer: &str) -> std::result::Result<Discovery, String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the identity provider's discovery document is not JSON: {e}"))?;
    // OIDC Discovery §4.3: the issuer must be exactly the configured one.
    let said = v["issuer"].as_str().unwrap_or("").trim_end_matches('/');
    if said != issuer {
        return Err(format!(
            "the discovery document names issuer {said:?}, not {issuer:?}; set sso.issuer to the provider's exact issuer"
        ));
    }
    let field = |name: &str| -> std::result::Result<String, String> {
        let url = v[name]
            .as_str()
            .ok_or_else(|| format!("the discovery document has no {name}"))?;
        ProviderUrl::parse(url).map_err(|e| format!("discovery's {name}: {e}"))?;
        Ok(url.to_string())
    };
    if let Some(methods) = v["code_challenge_methods_supported"].as_array() {
        if !methods.iter().any(|m| m == "S256") {
            return Err("the identity provider does not support PKCE with S256".into());
        }
    }
    Ok(Discovery {
        authorization_endpoint: field("authorization_endpoint")?,
        token_endpoint: field("token_endpoint")?,
        jwks_uri: field("jwks_uri")?,
        end_session_endpoint: field("end_session_endpoint").ok(),
    })
}

/// Who a verified ID token names, in icpd's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedIdentity {
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    /// The groups claim's values, plus the admin claim's matching values.
    pub groups: Vec<String>,
}

/// The name of the group an admin claim's match puts a user in; the
/// config's admin values map it to Super Admin at organization scope.
pub const ADMIN_CLAIM_GROUP: &str = "oidc-admin-claim";

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Reads the user name, display name, e-mail and groups from the claims.
pub fn identity_from_claims(s: &OidcSettings, v: &oidc::Verified) -> Result<ClaimedIdentity> {
    let c = &v.claims;
    let username = c
        .get(&s.username_claim)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            Error::Forbidden(format!(
                "the identity provider's token has no {:?} claim to name the user; ask your administrator to check sso.username_claim and sso.scopes",
                s.username_claim
            ))
        })?
        .to_string();
    if s.username_claim == "email" && c.get("email_verified") == Some(&Value::Bool(false)) {
        return Err(Error::Forbidden(
            "the identity provider says this e-mail address is not verified".into(),
        ));
    }
    auth::check_username(&username).map_err(|_| {
        Error::Forbidden(format!(
            "the user name {username:?} from the identity provider is not usable in icpd (letters, digits, '.', '_', '-' or '@', at most 64)"
        ))
    })?;
    let mut groups: Vec<String> = s
        .groups_claim
        .as_ref()
        .map(|g| strings(c.get(g)))
        .unwrap_or_default();
    if let Some(claim) = &s.admin_claim {
        if strings(c.get(claim))
            .iter()
            .any(|v| s.admin_values.contains(v))
        {
            groups.push(ADMIN_CLAIM_GROUP.into());
        }
    }
    groups.retain(|g| !g.is_empty() && g.len() <= 256);
    groups.sort();
    groups.dedup();
    groups.truncate(1000);
    let display_name = c
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(&username)
        .chars()
        .take(200)
        .collect();
    Ok(ClaimedIdentity {
        email: c.get("email").and_then(Value::as_str).map(str::to_string),
        username,
        display_name,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_urls_need_https_except_on_loopback() {
        let u = ProviderUrl::parse("https://idp.example.com/realms/x/token?a=b").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path_and_query.as_str()),
            ("idp.example.com", 443, "/realms/x/token?a=b")
        );
        let u = ProviderUrl::parse("https://127.0.0.1:8443").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path_and_query.as_str()),
            ("127.0.0.1", 8443, "/")
        );
        let u = ProviderUrl::parse("https://[::1]:9000/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9000));
        assert!(ProviderUrl::parse("http://localhost:8080/realms/a").is_ok());
        assert!(ProviderUrl::parse("http://idp.example.com").is_err());
        assert!(ProviderUrl::parse("https://user@idp.example.com").is_err());
        assert!(ProviderUrl::parse("https://idp.example.com/#frag").is_err());
        assert!(ProviderUrl::parse("ftp://x").is_err());
    }

    #[test]
    fn scopes_of_mappings_parse() {
        assert_eq!(parse_scope("organization"), Ok(ScopeSpec::Organization));
        assert_eq!(
            parse_scope("project shop"),
            Ok(ScopeSpec::Project("shop".into()))
        );
        assert_eq!(
            parse_scope(" environment  prod "),
            Ok(ScopeSpec::Environment("prod".into()))
        );
        assert_eq!(
            parse_scope("integration shop/cart"),
            Ok(ScopeSpec::Integration("shop".into(), "cart".into()))
        );
        assert!(parse_scope("integration shop").is_err());
        assert!(parse_scope("team x").is_err());
        assert!(parse_scope("").is_err());
    }

    #[test]
    fn secrets_come_from_exactly_one_place_and_never_show_in_debug() {
        assert_eq!(resolve_secret("s", None, None, None), Ok(None));
        let s = resolve_secret("s", Some("hunter2"), None, None)
            .unwrap()
            .unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(resolve_secret("s", Some("a"), None, Some("B")).is_err());
        assert!(resolve_secret("s", None, None, Some("ICPD_SURELY_UNSET_VAR_42")).is_err());
    }

    fn settings() -> OidcSettings {
        OidcSettings {
            issuer: "https://idp".into(),
            client_id: "icpd".into(),
            client_secret: None,
            redirect_uri: "https://icp/login/callback".into(),
            post_logout_redirect_uri: None,
            scopes: vec!["openid".into()],
            username_claim: "email".into(),
            groups_claim: Some("groups".into()),
            admin_claim: Some("roles".into()),
            admin_values: vec!["icp-admin".into()],
            label: "IdP".into(),
            trust: PeerTrust::Insecure,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn claims_give_user_name_groups_and_the_admin_group() {
        let claims = serde_json::json!({
            "email": "alice@example.org", "name": "Alice", "groups": ["devs", "ops", "devs"],
            "roles": "viewer icp-admin"
        });
        let v = oidc::Verified {
            subject: "s1".into(),
            claims: claims.as_object().unwrap().clone(),
        };
        let id = identity_from_claims(&settings(), &v).unwrap();
        assert_eq!(id.username, "alice@example.org");
        assert_eq!(id.display_name, "Alice");
        assert_eq!(id.groups, vec!["devs", ADMIN_CLAIM_GROUP, "ops"]);
        let unverified = serde_json::json!({"email": "a@b.c", "email_verified": false});
        let v = oidc::Verified {
            subject: "s1".into(),
            claims: unverified.as_object().unwrap().clone(),
        };
        assert!(matches!(
            identity_from_claims(&settings(), &v),
            Err(Error::Forbidden(_))
        ));
        let none = oidc::Verified {
            subject: "s1".into(),
            claims: serde_json::Map::new(),
        };
        assert!(matches!(
            identity_from_claims(&settings(), &none),
            Err(Error::Forbidden(_))
        ));
    }

    #[test]
    fn discovery_must_name_the_configured_issuer() {
        let doc = serde_json::json!({
            "issuer": "https://idp/", "authorization_endpoint": "https://idp/auth",
            "token_endpoint": "https://idp/token", "jwks_uri": "https://idp/jwks",
            "code_challenge_methods_supported": ["S256"]
        });
        let d = parse_discovery(doc.to_string().as_bytes(), "https://idp").unwrap();
        assert_eq!(d.end_session_endpoint, None);
        assert!(parse_discovery(doc.to_string().as_bytes(), "https://other").is_err());
        let mut plain = doc.clone();
        plain["code_challenge_methods_supported"] = serde_json::json!(["plain"]);
        assert!(parse_discovery(plain.to_string().as_bytes(), "https://idp").is_err());
    }
}
