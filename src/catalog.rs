//! The catalog runtimes belong to: environments, projects and integrations.
//!
//! Environments are created by operators (never by a heartbeat); projects
//! and integrations are created by operators or, for a runtime presenting an
//! unbound secret, from the handles in its first full heartbeat. Handles are
//! normalised with [`normalize_handle`] everywhere, so `Order Service` and
//! `order-service` name the same project.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::Store;
use crate::Millis;

/// Where runtimes run: `dev`, `prod`, ... A critical environment needs stronger permissions to act on.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    #[serde(skip)]
    pub id: i64,
    pub handle: String,
    pub name: String,
    pub critical: bool,
    #[serde(serialize_with = "crate::time::serialize_rfc3339")]
    pub created_at: Millis,
}

/// A group of integrations.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    #[serde(skip)]
    pub id: i64,
    pub handle: String,
    pub name: String,
}

/// One deployable integration (a "component" in the bridge protocol).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Integration {
    #[serde(skip)]
    pub id: i64,
    #[serde(skip)]
    pub project_id: i64,
    pub handle: String,
    pub name: String,
    pub runtime_type: String,
}

/// The protocol's handle rule: lower-case, every run of characters outside
/// `[a-z0-9]` becomes one `-`, and leading/trailing `-` are trimmed.
pub fn normalize_handle(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut dash = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
    }
    out
}

/// Checks a handle given by an operator and returns its normal form.
pub fn valid_handle(what: &str, text: &str) -> Result<String> {
    let handle = normalize_handle(text);
    if handle.is_empty() {
        return Err(Error::BadRequest(format!(
            "{what} '{text}' has no letters or digits; use e.g. 'staging'"
        )));
    }
    if handle.len() > 64 {
        return Err(Error::BadRequest(format!(
            "{what} '{text}' is longer than 64 characters"
        )));
    }
    Ok(handle)
}

/// Creates an environment; its handle is normalised, and must be new.
pub fn create_environment(
    store: &Store,
    name: &str,
    critical: bool,
    now: Millis,
) -> Result<Environment> {
    let handle = valid_handle("environment", name)?;
    store.write(|tx| {
        if tx.environment_by_handle(&handle)?.is_some() {
            return Err(Error::Conflict(format!(
                "environment '{handle}' already exists"
            )));
        }
        tx.insert_environment(&handle, name.trim(), critical, now)
    })
}

/// Finds the project and integration named by two handles, creating either
/// when missing (a new integration gets `runtime_type`). The caller's
/// transaction makes this atomic with whatever binds to them.
pub fn find_or_create_integration(
    tx: &crate::store::Tx,
    project: &str,
    integration: &str,
    runtime_type: &str,
    now: Millis,
) -> Result<(Project, Integration)> {
    let p_handle = valid_handle("project", project)?;
    let i_handle = valid_handle("integration", integration)?;
    let project = match tx.project_by_handle(&p_handle)? {
        Some(p) => p,
        None => tx.insert_project(&p_handle, project.trim(), now)?,
    };
    let integration = match tx.integration_by_handle(project.id, &i_handle)? {
        Some(i) => i,
        None => {
            tx.insert_integration(project.id, &i_handle, integration.trim(), runtime_type, now)?
        }
    };
    Ok((project, integration))
}

#[cfg(test)]
mod tests {
    use super::normalize_handle;

    #[test]
    fn handles_follow_the_protocol_rule() {
        for (input, want) in [
            ("order-service", "order-service"),
            ("Order Service", "order-service"),
            ("  __Order__Service!! ", "order-service"),
            ("ÄBC", "bc"),
            ("a.b.c", "a-b-c"),
            ("---", ""),
        ] {
            assert_eq!(normalize_handle(input), want, "{input:?}");
        }
    }
}
