//! Deployment records: which version of an integration should run in an
//! environment.
//!
//! A record names a version string, an artifact reference (an image tag, a
//! file name) and optionally the artifact's SHA-256, with who made it and
//! when. Records are never changed: a new one supersedes the previous, and
//! the newest record of an (integration, environment) is its current one;
//! the others are its history. Runtimes report the version they run in
//! their full heartbeat, and the runtime views compare the two
//! (`versionMismatch`). A promotion copies a record into the next
//! environment with [`insert`], naming the source in `promoted_from`.

pub use crate::model::pipeline::{Deployment, ValidDeployment};

use serde::Deserialize;

use crate::catalog::{Keyset, Listing};
use crate::commands::Scope;
use crate::error::{Error, Result};
use crate::store::{Store, Tx};
use crate::time::Millis;

/// `POST .../deployments`, `icpd deployment create`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewDeployment {
    pub version: String,
    pub artifact: String,
    pub sha256: Option<String>,
}

fn text(what: &str, value: &str, max: usize) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::BadRequest(format!("{what} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(Error::BadRequest(format!(
            "{what} is longer than {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::BadRequest(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(value.to_string())
}

impl NewDeployment {
    /// Checks the fields: a version (up to 128 characters), an artifact
    /// reference (up to 1,024) and, if given, 64 hexadecimal digits.
    pub fn validate(&self) -> Result<ValidDeployment> {
        let sha256 = match self.sha256.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(s.to_ascii_lowercase())
            }
            Some(_) => {
                return Err(Error::BadRequest(
                    "sha256 must be 64 hexadecimal digits (the artifact's SHA-256)".into(),
                ))
            }
        };
        Ok(ValidDeployment {
            version: text("version", &self.version, 128)?,
            artifact: text("artifact", &self.artifact, 1024)?,
            sha256,
        })
    }
}

/// Writes a new record for `scope` inside the caller's transaction; it
/// becomes the current one. `promoted_from` names the record a promotion copies.
pub fn insert(
    tx: &Tx,
    scope: &Scope,
    d: &ValidDeployment,
    created_by: &str,
    now: Millis,
    promoted_from: Option<i64>,
) -> Result<Deployment> {
    let id = tx.insert_deployment(
        scope.integration_id,
        scope.environment_id,
        d,
        created_by,
        now,
        promoted_from,
    )?;
    tx.deployment(id)?
        .ok_or_else(|| Error::Internal("deployment vanished".into()))
}

/// Records a new deployment of `scope`.
pub fn record(
    store: &Store,
    scope: &Scope,
    new: &NewDeployment,
    created_by: &str,
    now: Millis,
) -> Result<Deployment> {
    let d = new.validate()?;
    store.write(|tx| insert(tx, scope, &d, created_by, now, None))
}

/// The current record of `scope`, if any.
pub fn current(store: &Store, scope: &Scope) -> Result<Option<Deployment>> {
    store.read(|tx| tx.current_deployment(scope.integration_id, scope.environment_id))
}

/// The records of `scope`, newest (the current one) first; the cursor is a record id.
pub fn history(store: &Store, scope: &Scope, page: &Keyset) -> Result<Listing<Deployment>> {
    let before = page.after_number()?;
    let (rows, total) = store.read(|tx| {
        tx.deployment_page(
            scope.integration_id,
            scope.environment_id,
            before,
            page.limit + 1,
        )
    })?;
    Ok(Listing::new(rows, total, page.limit, |d| d.id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::NewDeployment;

    fn new(version: &str, artifact: &str, sha: Option<&str>) -> NewDeployment {
        NewDeployment {
            version: version.into(),
            artifact: artifact.into(),
            sha256: sha.map(str::to_string),
        }
    }

    #[test]
    fn a_record_needs_a_version_an_artifact_and_a_real_sha256() {
        let sha = "AB".repeat(32);
        let ok = new(" 1.2.0 ", "registry/orders:1.2.0", Some(&sha))
            .validate()
            .unwrap();
        assert_eq!(ok.version, "1.2.0");
        assert_eq!(ok.sha256.as_deref(), Some("ab".repeat(32).as_str()));
        assert_eq!(new("1", "a.jar", Some("")).validate().unwrap().sha256, None);
        for bad in [
            new("", "a.jar", None),
            new("1", " ", None),
            new("1", "a.jar", Some("abc")),
            new("1", "a.jar", Some(&"g".repeat(64))),
            new("1\n2", "a.jar", None),
            new(&"v".repeat(129), "a.jar", None),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
