//! Data planes: where environments run.
//!
//! A data plane is a place runtimes run in: a cloud account and region, or
//! a private site. Every environment sits on exactly one (the schema holds
//! that: a foreign key and triggers); the first migration of this module
//! made the data plane `default` and put the existing environments on it.
//! A data plane's health is derived from the runtimes of its environments
//! ([`Health::of`]); icpd does not reach into data planes, runtimes report
//! to it, so a data plane keeps serving while icpd is away.

pub use crate::model::pipeline::DataPlaneRow;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::valid_handle;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::time::{serialize_rfc3339, Millis};

/// The data plane environments go to when they name none.
pub const DEFAULT: &str = "default";

/// A data plane as the API and the CLI show it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataPlane {
    #[serde(skip)]
    pub id: i64,
    pub handle: String,
    pub name: String,
    /// `cloud` or `private`.
    pub kind: String,
    pub region: String,
    pub description: String,
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub created_at: Millis,
    /// Handles of the environments on it, in creation order.
    pub environments: Vec<String>,
    pub health: Health,
}

/// A data plane's health, from the runtimes in its environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `healthy`, `degraded`, `down` or `empty`; see [`Health::of`].
    pub status: &'static str,
    pub running: i64,
    pub offline: i64,
}

impl Health {
    /// `empty`: no runtime in its environments; `healthy`: every runtime
    /// RUNNING; `down`: runtimes, none RUNNING; `degraded`: some RUNNING,
    /// some OFFLINE.
    pub fn of(running: i64, offline: i64) -> Health {
        let status = match (running, offline) {
            (0, 0) => "empty",
            (_, 0) => "healthy",
            (0, _) => "down",
            _ => "degraded",
        };
        Health {
            status,
            running,
            offline,
        }
    }
}

/// `POST /data-planes`, `icpd data-plane create`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewDataPlane {
    pub name: String,
    /// Derived from `name` when absent.
    pub handle: Option<String>,
    /// `cloud` or `private`.
    pub kind: String,
    pub region: Option<String>,
    pub description: Option<String>,
}

/// `PATCH /data-planes/{dataPlane}`: absent fields stay; the handle never changes.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DataPlaneChange {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub region: Option<String>,
    pub description: Option<String>,
}

fn valid_kind(kind: &str) -> Result<String> {
    match kind {
        "cloud" | "private" => Ok(kind.to_string()),
        _ => Err(Error::BadRequest(format!(
            "data plane kind '{}' must be cloud or private",
            kind.chars().take(40).collect::<String>()
        ))),
    }
}

fn valid_text(what: &str, text: &str, max: usize, required: bool) -> Result<String> {
    let text = text.trim();
    if required && text.is_empty() {
        return Err(Error::BadRequest(format!("{what} must not be empty")));
    }
    if text.chars().count() > max {
        return Err(Error::BadRequest(format!(
            "{what} is longer than {max} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(Error::BadRequest(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(text.to_string())
}

fn no_data_plane(handle: &str) -> Error {
    Error::NotFound(format!(
        "no data plane '{}'; GET /api/v1/data-planes (or icpd data-plane list) lists them",
        handle.chars().take(64).collect::<String>()
    ))
}

/// Every data plane in creation order, with its environments and health.
pub fn list(store: &Store) -> Result<Vec<DataPlane>> {
    store.read(|tx| {
        let rows = tx.data_planes()?;
        let envs = tx.data_plane_environments()?;
        let counts = tx.data_plane_runtime_counts()?;
        Ok(rows
            .into_iter()
            .map(|r| assemble(r, &envs, &counts))
            .collect())
    })
}

/// One data plane by handle.
pub fn get(store: &Store, handle: &str) -> Result<DataPlane> {
    list(store)?
        .into_iter()
        .find(|d| d.handle == handle)
        .ok_or_else(|| no_data_plane(handle))
}

fn assemble(
    r: DataPlaneRow,
    envs: &[(i64, String)],
    counts: &BTreeMap<i64, (i64, i64)>,
) -> DataPlane {
    let (running, offline) = counts.get(&r.id).copied().unwrap_or((0, 0));
    DataPlane {
        environments: envs
            .iter()
            .filter(|(dp, _)| *dp == r.id)
            .map(|(_, e)| e.clone())
            .collect(),
        health: Health::of(running, offline),
        id: r.id,
        handle: r.handle,
        name: r.name,
        kind: r.kind,
        region: r.region,
        description: r.description,
        created_at: r.created_at,
    }
}

/// Registers a data plane; its handle (from `handle` or the name) must be new.
pub fn create(store: &Store, new: &NewDataPlane, now: Millis) -> Result<DataPlane> {
    let name = valid_text("data plane name", &new.name, 128, true)?;
    let handle = valid_handle("data plane", new.handle.as_deref().unwrap_or(&name))?;
    let kind = valid_kind(&new.kind)?;
    let region = valid_text("region", new.region.as_deref().unwrap_or(""), 128, false)?;
    let description = valid_text(
        "description",
        new.description.as_deref().unwrap_or(""),
        2000,
        false,
    )?;
    store.write(|tx| {
        if tx.data_plane_by_handle(&handle)?.is_some() {
            return Err(Error::Conflict(format!(
                "data plane '{handle}' already exists"
            )));
        }
        tx.insert_data_plane(&DataPlaneRow {
            id: 0,
            handle: handle.clone(),
            name,
            kind,
            region,
            description,
            created_at: now,
        })?;
        Ok(())
    })?;
    get(store, &handle)
}

/// Changes a data plane's name, kind, region or description.
pub fn change(store: &Store, handle: &str, change: &DataPlaneChange) -> Result<DataPlane> {
    store.write(|tx| {
        let mut d = tx
            .data_plane_by_handle(handle)?
            .ok_or_else(|| no_data_plane(handle))?;
        if let Some(n) = &change.name {
            d.name = valid_text("data plane name", n, 128, true)?;
        }
        if let Some(k) = &change.kind {
            d.kind = valid_kind(k)?;
        }
        if let Some(r) = &change.region {
            d.region = valid_text("region", r, 128, false)?;
        }
        if let Some(t) = &change.description {
            d.description = valid_text("description", t, 2000, false)?;
        }
        tx.update_data_plane(&d)
    })?;
    get(store, handle)
}

/// Deletes a data plane that holds no environment (a conflict otherwise).
pub fn delete(store: &Store, handle: &str) -> Result<()> {
    store.write(|tx| {
        let d = tx
            .data_plane_by_handle(handle)?
            .ok_or_else(|| no_data_plane(handle))?;
        let envs: Vec<String> = tx
            .data_plane_environments()?
            .into_iter()
            .filter(|(dp, _)| *dp == d.id)
            .map(|(_, e)| e)
            .collect();
        if !envs.is_empty() {
            return Err(Error::Conflict(format!(
                "data plane '{handle}' still holds environment(s) {}; move them to another data plane (PATCH /api/v1/environments/{{env}} with dataPlane) or delete them first",
                envs.join(", ")
            )));
        }
        tx.delete_data_plane(d.id)
    })
}

/// The id of the data plane named `handle`, or of [`DEFAULT`] when none is
/// named; 422 when the named one (or, with none named, `default`) does not exist.
pub fn resolve(tx: &crate::store::Tx, handle: Option<&str>) -> Result<i64> {
    let wanted = handle.map(crate::catalog::normalize_handle);
    match tx.data_plane_by_handle(wanted.as_deref().unwrap_or(DEFAULT))? {
        Some(d) => Ok(d.id),
        None => Err(match wanted {
            Some(h) => Error::Unprocessable(format!(
                "data plane '{h}' does not exist; GET /api/v1/data-planes lists them"
            )),
            None => Error::Unprocessable(format!(
                "there is no data plane '{DEFAULT}' any more: name the environment's data plane (dataPlane, --data-plane)"
            )),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::Health;

    #[test]
    fn health_follows_the_runtime_counts() {
        for (running, offline, want) in [
            (0, 0, "empty"),
            (3, 0, "healthy"),
            (0, 2, "down"),
            (1, 1, "degraded"),
            (9, 1, "degraded"),
        ] {
            assert_eq!(
                Health::of(running, offline).status,
                want,
                "{running}/{offline}"
            );
        }
    }
}
