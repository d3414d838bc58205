//! Runtime secrets: the one-time credentials runtimes authenticate with.
//!
//! A secret is `keyId.keyMaterial`: 8 lowercase hex characters, a dot, and
//! the standard base64 of 32 random bytes. It belongs to one environment and
//! is either bound to one integration or unbound (then bound by the first
//! full heartbeat that uses it). Key material is shown once, at creation,
//! and stored sealed with the master key. Whether a secret may be used is
//! decided on every request from the database, so a revocation or an expiry
//! takes effect on the very next request, even when done by another process.

pub use crate::model::secrets::*;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::access::{Permission, Principal, Target};
use crate::catalog::{self, Keyset, Listing, Visibility};
use crate::error::{Error, Result};
use crate::master_key::{random_bytes, MasterKey};
use crate::store::Store;
use crate::time::{serialize_opt_rfc3339, serialize_rfc3339, Millis};

/// A stored secret, without its key material.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRecord {
    pub key_id: String,
    pub environment: String,
    pub project: Option<String>,
    pub integration: Option<String>,
    /// `active`, `revoked` or `expired` at the time it was read.
    pub status: &'static str,
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub created_at: Millis,
    #[serde(serialize_with = "serialize_opt_rfc3339")]
    #[schemars(with = "Option<String>")]
    pub expires_at: Option<Millis>,
    #[serde(serialize_with = "serialize_opt_rfc3339")]
    #[schemars(with = "Option<String>")]
    pub revoked_at: Option<Millis>,
    #[serde(serialize_with = "serialize_opt_rfc3339")]
    #[schemars(with = "Option<String>")]
    pub bound_at: Option<Millis>,
}

/// A secret that may authenticate right now, with its key material opened.
#[derive(Debug, Clone)]
pub struct ActiveSecret {
    pub key_id: String,
    pub material: String,
    pub environment_id: i64,
    pub environment: String,
    pub project_id: Option<i64>,
    pub integration_id: Option<i64>,
}

/// Whether a secret that exists may be used right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usable {
    Yes,
    Revoked,
    Expired,
}

impl Usable {
    fn of(revoked: bool, expires_at: Option<Millis>, now: Millis) -> Usable {
        if revoked {
            Usable::Revoked
        } else if expires_at.is_some_and(|e| e <= now) {
            Usable::Expired
        } else {
            Usable::Yes
        }
    }
}

/// What `secret create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewSecret {
    pub environment: String,
    /// Project and integration handles, to create a bound secret.
    pub binding: Option<(String, String)>,
    /// Runtime type of the integration if the binding creates it (`BI` or `MI`).
    pub runtime_type: Option<String>,
    pub ttl: Option<Duration>,
}

/// A freshly created secret: the only time `secret` (with key material) exists in clear.
#[derive(Debug, Clone)]
pub struct CreatedSecret {
    pub record: SecretRecord,
    pub secret: String,
}

/// Creates a secret in an existing environment, optionally bound to an
/// integration (project and integration are created when missing).
pub fn create(
    store: &Store,
    key: &MasterKey,
    req: &NewSecret,
    now: Millis,
) -> Result<CreatedSecret> {
    let env_handle = catalog::normalize_handle(&req.environment);
    let runtime_type = req.runtime_type.as_deref().unwrap_or("BI");
    if runtime_type != "BI" && runtime_type != "MI" {
        return Err(Error::BadRequest(format!(
            "runtime type '{runtime_type}' must be BI or MI"
        )));
    }
    let expires_at = match req.ttl {
        Some(ttl) if ttl.is_zero() => {
            return Err(Error::BadRequest("ttl must be longer than 0".into()))
        }
        Some(ttl) => Some(now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))),
        None => None,
    };
    let material = B64.encode(random_bytes::<32>()?);
    store.write(|tx| {
        let env = tx.environment_by_handle(&env_handle)?.ok_or_else(|| {
            Error::NotFound(format!(
                "environment '{}' does not exist; see `icpd env list` or create it with `icpd env create`",
                req.environment
            ))
        })?;
        let binding = match &req.binding {
            Some((p, i)) => {
                let (p, i) = catalog::find_or_create_integration(tx, p, i, runtime_type, now)?;
                Some((p, i))
            }
            None => None,
        };
        // 32 bits of key id: retry the rare collision rather than fail.
        let mut key_id = String::new();
        for _ in 0..8 {
            let candidate = hex(&random_bytes::<4>()?);
            if tx.secret(&candidate)?.is_none() {
                key_id = candidate;
                break;
            }
        }
        if key_id.is_empty() {
            return Err(Error::Internal("could not find a free key id".into()));
        }
        let sealed = key.seal(&key_id, material.as_bytes())?;
        let stored = StoredSecret {
            key_id: key_id.clone(),
            environment_id: env.id,
            environment: env.handle.clone(),
            project_id: binding.as_ref().map(|(p, _)| p.id),
            integration_id: binding.as_ref().map(|(_, i)| i.id),
            project: binding.as_ref().map(|(p, _)| p.handle.clone()),
            integration: binding.as_ref().map(|(_, i)| i.handle.clone()),
            sealed_material: sealed,
            created_at: now,
            expires_at,
            revoked_at: None,
            bound_at: binding.as_ref().map(|_| now),
        };
        tx.insert_secret(&stored)?;
        Ok(CreatedSecret { record: stored.record(now), secret: format!("{key_id}.{material}") })
    })
}

/// All secrets, newest first, without key material.
pub fn list(store: &Store, now: Millis) -> Result<Vec<SecretRecord>> {
    let all = store.read(|tx| tx.secrets())?;
    Ok(all.iter().map(|s| s.record(now)).collect())
}

/// Revokes a secret; runtimes using it get 401 from their next request.
pub fn revoke(store: &Store, key_id: &str, now: Millis) -> Result<SecretRecord> {
    store.write(|tx| {
        let s = tx.secret(key_id)?.ok_or_else(|| {
            Error::NotFound(format!(
                "no secret with key id '{key_id}'; see `icpd secret list`"
            ))
        })?;
        if s.revoked_at.is_none() {
            tx.revoke_secret(key_id, now)?;
        }
        let s = tx
            .secret(key_id)?
            .ok_or_else(|| Error::Internal("secret vanished".into()))?;
        Ok(s.record(now))
    })
}

/// Usable secrets, opened, kept in memory for the token check.
///
/// Every lookup first asks the store for the secrets generation (a counter
/// bumped by any change to a secret, by this process or by the CLI in
/// another). When it moved, the cache is emptied, so a revocation, an
/// expiry or a new binding is seen by the very next request (within 1 ms
/// for a change the CLI made; see `Store::secrets_generation`), while an
/// unchanged secret costs no SQL and no decryption per heartbeat.
pub struct SecretCache {
    state: std::sync::Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    generation: Option<i64>,
    secrets: std::collections::HashMap<String, (ActiveSecret, Option<Millis>, bool)>,
}

impl Default for SecretCache {
    fn default() -> Self {
        SecretCache::new()
    }
}

impl SecretCache {
    pub fn new() -> SecretCache {
        SecretCache {
            state: std::sync::Mutex::new(CacheState::default()),
        }
    }

    /// The secret named by `key_id` if it exists, with its key material
    /// opened, and whether it may be used at `now` (a revoked or expired
    /// one is returned too, so the token check can tell its holder why).
    pub fn lookup(
        &self,
        store: &Store,
        key: &MasterKey,
        key_id: &str,
        now: Millis,
    ) -> Result<Option<(ActiveSecret, Usable)>> {
        // While the database cannot be reached, the secrets this node
        // already opened keep working as they were (nothing can revoke one
        // meanwhile: that is a write); any other is refused for now.
        let generation = match store.secrets_generation() {
            Ok(g) => g,
            Err(Error::Unavailable(why)) => {
                let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                return match st.secrets.get(key_id) {
                    Some((secret, expires_at, revoked)) => Ok(Some((
                        secret.clone(),
                        Usable::of(*revoked, *expires_at, now),
                    ))),
                    None => Err(Error::Unavailable(why)),
                };
            }
            Err(e) => return Err(e),
        };
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if st.generation != Some(generation) {
                st.secrets.clear();
                st.generation = Some(generation);
            }
            if let Some((secret, expires_at, revoked)) = st.secrets.get(key_id) {
                return Ok(Some((
                    secret.clone(),
                    Usable::of(*revoked, *expires_at, now),
                )));
            }
        }
        let Some(s) = store.read(|tx| tx.secret(key_id))? else {
            return Ok(None);
        };
        let material = key.open(&s.key_id, &s.sealed_material)?;
        let material = String::from_utf8(material)
            .map_err(|_| Error::DataDir(format!("secret {key_id} holds invalid text")))?;
        let usable = Usable::of(s.revoked_at.is_some(), s.expires_at, now);
        let secret = ActiveSecret {
            key_id: s.key_id.clone(),
            material,
            environment_id: s.environment_id,
            environment: s.environment,
            project_id: s.project_id,
            integration_id: s.integration_id,
        };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Cache only under the generation read before the load; a change
        // committed meanwhile moves the generation and empties the cache again.
        if st.generation == Some(generation) {
            st.secrets.insert(
                s.key_id,
                (secret.clone(), s.expires_at, s.revoked_at.is_some()),
            );
        }
        Ok(Some((secret, usable)))
    }
}

/// The `project` and `integration` lines of a snippet: the secret's
/// binding, or placeholders for an unbound secret.
fn binding_lines(r: &SecretRecord) -> String {
    match (&r.project, &r.integration) {
        (Some(p), Some(i)) => format!("project = \"{p}\"\nintegration = \"{i}\"\n"),
        _ => "project = \"my-project\"          # set to your project; created on first heartbeat\n\
              integration = \"my-integration\"  # set to your integration; created on first heartbeat\n"
            .to_string(),
    }
}

/// The `[wso2.icp.runtime.bridge]` section of an integration's Config.toml.
pub fn config_snippet(
    created: &CreatedSecret,
    server_url: &str,
    cert_path: Option<&str>,
) -> String {
    let r = &created.record;
    let mut s = String::from("[wso2.icp.runtime.bridge]\n");
    s.push_str(&format!("environment = \"{}\"\n", r.environment));
    s.push_str(&binding_lines(r));
    s.push_str("# runtime = \"node-1\"             # optional: a name unique to this node\n");
    s.push_str(&format!("secret = \"{}\"\n", created.secret));
    s.push_str(&format!("serverUrl = \"{server_url}\"\n"));
    if let Some(cert) = cert_path {
        s.push_str(&format!("# enableSSL = true               # to verify icpd's certificate:\n# cert = \"{cert}\"\n"));
    }
    s
}

/// The `[icp_config]` section of a Micro Integrator's `deployment.toml`
/// (MI.md), for a secret of an MI integration.
pub fn mi_config_snippet(
    created: &CreatedSecret,
    server_url: &str,
    cert_path: Option<&str>,
) -> String {
    let r = &created.record;
    let mut s = String::from("[icp_config]\nenabled = true\n");
    s.push_str(&format!("environment = \"{}\"\n", r.environment));
    s.push_str(&binding_lines(r));
    s.push_str("# runtime = \"mi-node-1\"          # optional: a name unique to this node\n");
    s.push_str(&format!("secret = \"{}\"\n", created.secret));
    s.push_str(&format!("icp_url = \"{server_url}\"\n"));
    if let Some(cert) = cert_path {
        s.push_str(&format!(
            "# MI verifies icpd's certificate against its client-truststore.jks: import {cert}\n# (or ssl_verify = false to skip the check)\n"
        ));
    }
    s.push_str("# and in [server]: hostname = \"<this node's name>\", where icpd reaches its Management API\n");
    s
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- management API ------------------------------------------------------

/// `POST /api/v1/secrets`. Unlike the CLI, the API binds only to an
/// integration that exists (creating projects is a permission of its own).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretRequest {
    pub environment: String,
    pub project: Option<String>,
    pub integration: Option<String>,
    pub runtime_type: Option<String>,
    /// e.g. `30d`; absent = never expires.
    pub expires_in: Option<String>,
}

impl SecretRequest {
    /// The access target the secret would have: its environment (with the
    /// critical flag) and, when bound, project and integration. 404 when
    /// one of them does not exist.
    pub fn target(&self, store: &Store) -> Result<Target> {
        let env = catalog::normalize_handle(&self.environment);
        store.read(|tx| {
            let e = tx.environment_by_handle(&env)?.ok_or_else(|| {
                Error::NotFound(format!("environment '{}' does not exist", self.environment))
            })?;
            let mut t = Target {
                environment: Some(e.id),
                critical: e.critical,
                ..Target::default()
            };
            match (&self.project, &self.integration) {
                (None, None) => {}
                (Some(p), Some(i)) => {
                    let (ph, ih) = (catalog::normalize_handle(p), catalog::normalize_handle(i));
                    let i = tx.integration_info(&ph, &ih)?.ok_or_else(|| {
                        Error::NotFound(format!(
                            "no integration '{ih}' in project '{ph}'; create it first"
                        ))
                    })?;
                    t.project = Some(i.project_id);
                    t.integration = Some(i.id);
                }
                _ => {
                    return Err(Error::BadRequest(
                        "give both project and integration for a bound secret, or neither for an unbound one".into(),
                    ))
                }
            }
            Ok(t)
        })
    }

    /// The request in the terms of [`create`].
    pub fn new_secret(&self) -> Result<NewSecret> {
        let ttl = self
            .expires_in
            .as_deref()
            .map(crate::config::parse_duration)
            .transpose()
            .map_err(|e| Error::BadRequest(format!("expiresIn: {e}")))?;
        Ok(NewSecret {
            environment: self.environment.clone(),
            binding: self.project.clone().zip(self.integration.clone()),
            runtime_type: self.runtime_type.clone(),
            ttl,
        })
    }
}

/// A page of the secrets `principal` may view (`integration:view` on their
/// environment, project or integration), newest first, without key material.
pub fn page(
    store: &Store,
    principal: &Principal,
    query: &SecretQuery,
    page: &Keyset,
    now: Millis,
) -> Result<Listing<SecretRecord>> {
    if let Some(s) = &query.status {
        if !matches!(s.as_str(), "active" | "revoked" | "expired") {
            return Err(Error::BadRequest(format!(
                "status '{s}' must be active, revoked or expired"
            )));
        }
    }
    let after = match &page.after {
        None => None,
        Some(a) => {
            let (at, key) = a.split_once(':').ok_or_else(catalog::bad_cursor)?;
            Some((
                at.parse::<i64>().map_err(|_| catalog::bad_cursor())?,
                key.to_string(),
            ))
        }
    };
    let handle = |h: &Option<String>| h.as_deref().map(catalog::normalize_handle);
    let q = SecretQuery {
        environment: handle(&query.environment),
        project: handle(&query.project),
        integration: handle(&query.integration),
        status: query.status.clone(),
    };
    let vis = Visibility::of(principal, Permission::IntegrationView);
    let (rows, total) =
        store.read(|tx| tx.secret_page(&vis, &q, after.as_ref(), page.limit + 1, now))?;
    let records = rows.iter().map(|s| s.record(now)).collect();
    Ok(Listing::new(
        records,
        total,
        page.limit,
        |s: &SecretRecord| format!("{}:{}", s.created_at, s.key_id),
    ))
}

/// The access target of a secret `principal` may view; 404 otherwise.
pub fn visible_target(store: &Store, principal: &Principal, key_id: &str) -> Result<Target> {
    store
        .read(|tx| tx.secret_target(key_id))?
        .filter(|t| principal.has(Permission::IntegrationView, t))
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no secret '{key_id}' that you may see; GET /api/v1/secrets lists them"
            ))
        })
}

impl StoredSecret {
    fn status(&self, now: Millis) -> &'static str {
        match Usable::of(self.revoked_at.is_some(), self.expires_at, now) {
            Usable::Yes => "active",
            Usable::Revoked => "revoked",
            Usable::Expired => "expired",
        }
    }

    fn record(&self, now: Millis) -> SecretRecord {
        SecretRecord {
            key_id: self.key_id.clone(),
            environment: self.environment.clone(),
            project: self.project.clone(),
            integration: self.integration.clone(),
            status: self.status(now),
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            bound_at: self.bound_at,
        }
    }
}
