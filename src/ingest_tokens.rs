//! Ingest tokens: credentials for log and metric shippers (Fluent Bit, an
//! OpenTelemetry collector) that can only send a fixed header, where a
//! runtime token (a JWT signed per request) is not an option.
//!
//! A token is `icpi_<id>_<secret>`: 8 hex characters of public id and 32
//! random bytes in base64url. It is shown once, at creation; only its
//! SHA-256 is stored (as for personal API tokens), so a copy of the
//! database lets no one ingest. It is scoped to an environment and
//! optionally a project or an integration: records it brings are attributed
//! there, and a record naming a runtime outside that scope is rejected.
//! Revocation takes effect on the very next request (every request reads
//! the token's row).

pub use crate::model::pipeline::IngestTokenRow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::access::{Permission, Principal, Target};
use crate::auth::{constant_time_eq, sha256_hex};
use crate::catalog;
use crate::error::{Error, Result};
use crate::master_key::random_bytes;
use crate::refusals::{Reason, Refused, Subject};
use crate::store::Store;
use crate::telemetry::ingest::Credential;
use crate::telemetry::Attribution;
use crate::time::{serialize_opt_rfc3339, serialize_rfc3339, Millis};

/// What every ingest token starts with.
pub const PREFIX: &str = "icpi_";

/// Last use is recorded at most this often, so ingest does not turn into
/// a write to `icp.db` per batch.
const TOUCH_EVERY_MS: i64 = 60_000;

/// A token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestToken {
    pub id: String,
    pub name: String,
    pub environment: String,
    pub project: Option<String>,
    pub integration: Option<String>,
    /// `active` or `revoked`.
    pub status: &'static str,
    pub created_by: String,
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub created_at: Millis,
    #[serde(serialize_with = "serialize_opt_rfc3339")]
    #[schemars(with = "Option<String>")]
    pub last_used_at: Option<Millis>,
    #[serde(serialize_with = "serialize_opt_rfc3339")]
    #[schemars(with = "Option<String>")]
    pub revoked_at: Option<Millis>,
}

impl From<&IngestTokenRow> for IngestToken {
    fn from(t: &IngestTokenRow) -> IngestToken {
        IngestToken {
            id: t.id.clone(),
            name: t.name.clone(),
            environment: t.environment.clone(),
            project: t.project.clone(),
            integration: t.integration.clone(),
            status: if t.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            },
            created_by: t.created_by.clone(),
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// `POST /api/v1/observability/ingest-tokens`, and what the CLI asks for.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewIngestToken {
    /// Default: the scope, e.g. `dev/shop/orders`.
    pub name: Option<String>,
    pub environment: String,
    pub project: Option<String>,
    /// Needs `project`.
    pub integration: Option<String>,
}

/// The scope a new token would have: ids, handles and the access target.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenScope {
    pub target: Target,
    pub environment: String,
    pub project: Option<String>,
    pub integration: Option<String>,
}

impl NewIngestToken {
    /// Resolves the environment, project and integration (which must
    /// exist: 404 otherwise).
    pub fn scope(&self, store: &Store) -> Result<TokenScope> {
        if self.integration.is_some() && self.project.is_none() {
            return Err(Error::BadRequest(
                "an integration is named within its project: give the project too".into(),
            ));
        }
        store.read(|tx| {
            let env = catalog::normalize_handle(&self.environment);
            let e = tx.environment_by_handle(&env)?.ok_or_else(|| {
                Error::NotFound(format!(
                    "environment '{}' does not exist; see `icpd env list`",
                    self.environment
                ))
            })?;
            let mut scope = TokenScope {
                target: Target {
                    environment: Some(e.id),
                    critical: e.critical,
                    ..Target::default()
                },
                environment: e.handle,
                project: None,
                integration: None,
            };
            if let Some(p) = &self.project {
                let ph = catalog::normalize_handle(p);
                let project = tx.project_by_handle(&ph)?.ok_or_else(|| {
                    Error::NotFound(format!("project '{ph}' does not exist; create it first"))
                })?;
                scope.target.project = Some(project.id);
                scope.project = Some(project.handle);
                if let Some(i) = &self.integration {
                    let ih = catalog::normalize_handle(i);
                    let integration =
                        tx.integration_by_handle(project.id, &ih)?.ok_or_else(|| {
                            Error::NotFound(format!(
                                "no integration '{ih}' in project '{ph}'; create it first"
                            ))
                        })?;
                    scope.target.integration = Some(integration.id);
                    scope.integration = Some(integration.handle);
                }
            }
            Ok(scope)
        })
    }
}

/// `env`, `env/project` or `env/project/integration`: where a token's
/// records are attributed, as people read it.
pub fn scope_path(environment: &str, project: Option<&str>, integration: Option<&str>) -> String {
    [Some(environment), project, integration]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("/")
}

/// Creates a token in `scope` (see [`NewIngestToken::scope`]); the token
/// itself is returned only here.
pub fn create(
    store: &Store,
    req: &NewIngestToken,
    scope: &TokenScope,
    created_by: &str,
    now: Millis,
) -> Result<(IngestToken, String)> {
    let default_name = scope_path(
        &scope.environment,
        scope.project.as_deref(),
        scope.integration.as_deref(),
    );
    let name = req.name.as_deref().map(str::trim).unwrap_or(&default_name);
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::BadRequest(
            "an ingest token needs a name of 1 to 100 characters".into(),
        ));
    }
    let id: String = random_bytes::<4>()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let token = format!("{PREFIX}{id}_{}", B64URL.encode(random_bytes::<32>()?));
    let row = IngestTokenRow {
        id,
        name: name.to_string(),
        token_hash: sha256_hex(&token),
        environment_id: scope.target.environment.unwrap_or_default(),
        environment: scope.environment.clone(),
        critical: scope.target.critical,
        project_id: scope.target.project,
        project: scope.project.clone(),
        integration_id: scope.target.integration,
        integration: scope.integration.clone(),
        created_by: created_by.to_string(),
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    };
    store.write(|tx| {
        if tx.ingest_token(&row.id)?.is_some() {
            // 32 bits of id: a collision is rare; the caller may simply retry.
            return Err(Error::Conflict(
                "that token id is taken (a rare collision); try again".into(),
            ));
        }
        tx.insert_ingest_token(&row)
    })?;
    Ok((IngestToken::from(&row), token))
}

/// Every token, newest first.
pub fn list(store: &Store) -> Result<Vec<IngestToken>> {
    Ok(store
        .read(|tx| tx.ingest_tokens())?
        .iter()
        .map(IngestToken::from)
        .collect())
}

/// The tokens `principal` may view (`integration:view` on their scope).
pub fn visible(store: &Store, principal: &Principal) -> Result<Vec<IngestToken>> {
    Ok(store
        .read(|tx| tx.ingest_tokens())?
        .iter()
        .filter(|t| principal.has(Permission::IntegrationView, &t.target()))
        .map(IngestToken::from)
        .collect())
}

fn unknown(id: &str) -> Error {
    Error::NotFound(format!(
        "no ingest token '{id}'; `icpd ingest-token list` or GET /api/v1/observability/ingest-tokens lists them"
    ))
}

/// The access target of a token `principal` may view; 404 otherwise.
pub fn visible_target(store: &Store, principal: &Principal, id: &str) -> Result<Target> {
    store
        .read(|tx| tx.ingest_token(id))?
        .map(|t| t.target())
        .filter(|t| principal.has(Permission::IntegrationView, t))
        .ok_or_else(|| unknown(id))
}

/// Revokes a token: shippers using it are refused from their next request.
pub fn revoke(store: &Store, id: &str, now: Millis) -> Result<IngestToken> {
    store.write(|tx| {
        if tx.ingest_token(id)?.is_none() {
            return Err(unknown(id));
        }
        tx.revoke_ingest_token(id, now)?;
        let row = tx.ingest_token(id)?.ok_or_else(|| unknown(id))?;
        Ok(IngestToken::from(&row))
    })
}

/// Checks an ingest token (`icpi_...`) and returns its scope. The row is
/// found by the public id, then the hash compared in constant time.
pub fn authenticate(store: &Store, token: &str, now: Millis) -> Result<Credential, Refused> {
    let unknown = |key_id: Option<&str>| {
        let subject = Subject {
            credential: Some("ingest token"),
            key_id: key_id.map(str::to_string),
            ..Subject::default()
        };
        Refused::new(
            Reason::UnknownKey,
            subject,
            Error::Unauthorized("unknown ingest token".into()),
        )
    };
    let id = token
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .map(|(id, _)| id)
        .filter(|id| id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| unknown(None))?;
    let row = store
        .read(|tx| tx.ingest_token(id))?
        .ok_or_else(|| unknown(Some(id)))?;
    // Built before the checks (it takes the row's strings, not copies), so
    // that a refusal names the token by the credential's own subject.
    let credential = Credential {
        scope: Attribution {
            environment_id: row.environment_id,
            environment: row.environment,
            project_id: row.project_id,
            project: row.project,
            integration_id: row.integration_id,
            integration: row.integration,
            runtime_id: None,
        },
        label: format!("ingest token {}", row.id),
    };
    if !constant_time_eq(sha256_hex(token).as_bytes(), row.token_hash.as_bytes()) {
        return Err(Refused::new(
            Reason::WrongSecret,
            credential.subject(),
            Error::Unauthorized("unknown ingest token".into()),
        ));
    }
    if row.revoked_at.is_some() {
        return Err(Refused::new(
            Reason::Revoked,
            credential.subject(),
            Error::Unauthorized(format!(
                "ingest token {} was revoked; create a new one",
                row.id
            )),
        ));
    }
    if row.last_used_at.is_none_or(|t| now - t > TOUCH_EVERY_MS) {
        store.write(|tx| tx.touch_ingest_token(&row.id, now))?;
    }
    Ok(credential)
}

/// A Fluent Bit `[OUTPUT]` section that ships to icpd with `token`.
/// `server_url` is the runtime listener's URL; `ca_file` the certificate
/// to verify it against, when TLS is on.
pub fn fluent_bit_snippet(token: &str, server_url: &str, ca_file: Option<&str>) -> String {
    let (scheme, rest) = server_url
        .split_once("://")
        .unwrap_or(("https", server_url));
    let host_port = rest.split('/').next().unwrap_or(rest);
    let default_port = if scheme == "https" { "443" } else { "80" };
    let (host, port) = match host_port.strip_prefix('[') {
        // [v6]:port
        Some(v6) => match v6.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':').unwrap_or(default_port)),
            None => (v6, default_port),
        },
        None => host_port
            .rsplit_once(':')
            .unwrap_or((host_port, default_port)),
    };
    let mut s = String::from("[OUTPUT]\n");
    let mut line = |k: &str, v: &str| s.push_str(&format!("    {k:<13} {v}\n"));
    line("Name", "http");
    line("Match", "*");
    line("Host", host);
    line("Port", port);
    line("URI", "/icp/logs");
    line("Format", "json");
    line("Header", &format!("Authorization Bearer {token}"));
    if scheme == "https" {
        line("tls", "On");
        line("tls.verify", "On");
        if let Some(ca) = ca_file {
            line("tls.ca_file", ca);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_for_tls_and_plain() {
        let s = fluent_bit_snippet("icpi_x", "https://localhost:9445", Some("/d/tls/cert.pem"));
        assert!(s.starts_with("[OUTPUT]\n    Name          http\n"), "{s}");
        assert!(
            s.contains("    Host          localhost\n    Port          9445\n"),
            "{s}"
        );
        assert!(
            s.contains("    Header        Authorization Bearer icpi_x\n"),
            "{s}"
        );
        assert!(s.contains("tls.ca_file   /d/tls/cert.pem"), "{s}");
        let p = fluent_bit_snippet("icpi_x", "http://[::1]:9445", None);
        assert!(p.contains("Host          ::1\n"), "{p}");
        assert!(!p.contains("tls"), "{p}");
        assert!(
            fluent_bit_snippet("t", "https://icp.example", None).contains("Port          443\n")
        );
    }
}
