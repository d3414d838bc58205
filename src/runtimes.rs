//! The runtime registry as operators see it: records, artifacts, log levels
//! and status history, and the queries behind `icpd runtime list|show`.
//!
//! Registration itself is the bridge protocol's business (`protocol/`), and
//! liveness lives in memory (`liveness.rs`); this module holds the shared
//! types, the read side, and the operator's delete (which also forgets the
//! runtime in liveness, so it must re-register with a full heartbeat).

pub use crate::model::runtimes::*;

use crate::access::{Permission, Principal, Target};
use crate::catalog::{normalize_handle, Keyset, Listing, Visibility};
use crate::error::{Error, Result};
use crate::liveness::Liveness;
use crate::store::Store;
use crate::time::Millis;

/// Runtimes matching the filter, ordered by environment, project, integration and name.
pub fn list(store: &Store, filter: &RuntimeFilter) -> Result<Vec<RuntimeRecord>> {
    let f = RuntimeFilter {
        environment: filter
            .environment
            .as_deref()
            .map(crate::catalog::normalize_handle),
        project: filter
            .project
            .as_deref()
            .map(crate::catalog::normalize_handle),
        integration: filter
            .integration
            .as_deref()
            .map(crate::catalog::normalize_handle),
        status: filter.status,
    };
    store.read(|tx| {
        let mut rows = tx.list_runtimes(&f)?;
        with_rollouts(tx, &mut rows)?;
        Ok(rows)
    })
}

/// Fills in how each runtime compares with its environment's deployment
/// record and configuration (one query for all of them).
fn with_rollouts(tx: &crate::store::Tx, rows: &mut [RuntimeRecord]) -> Result<()> {
    let ids: Vec<String> = rows.iter().map(|r| r.runtime_id.clone()).collect();
    let mut rollouts = tx.runtime_rollouts(&ids)?;
    for r in rows {
        r.rollout = rollouts.remove(&r.runtime_id);
    }
    Ok(())
}

/// How many ids an ambiguous runtime id prefix's error lists.
const PREFIX_MATCHES_SHOWN: usize = 5;

/// The runtime id that `prefix` names: the id itself or the start of
/// exactly one id. Runtime ids are UUIDs and the console shows their first
/// 8 characters, so the command line takes any unique start. (The API
/// takes exact ids only: an id in a URL names one resource.)
pub fn resolve_id(store: &Store, prefix: &str) -> Result<String> {
    if prefix.is_empty() {
        return Err(Error::BadRequest(
            "give a runtime id or its first characters; `icpd runtime list` lists them".into(),
        ));
    }
    let ids = store.read(|tx| tx.runtime_ids_with_prefix(prefix, PREFIX_MATCHES_SHOWN + 1))?;
    match ids.as_slice() {
        [] => Err(Error::NotFound(format!(
            "no runtime id starts with '{prefix}'; `icpd runtime list` lists them"
        ))),
        [only] => Ok(only.clone()),
        [exact, ..] if exact == prefix => Ok(exact.clone()),
        many => {
            let shown = &many[..many.len().min(PREFIX_MATCHES_SHOWN)];
            let count = if many.len() > PREFIX_MATCHES_SHOWN {
                format!("more than {PREFIX_MATCHES_SHOWN}")
            } else {
                many.len().to_string()
            };
            Err(Error::BadRequest(format!(
                "'{prefix}' is the start of {count} runtime ids: {}{}; type more characters of the id",
                shown.join(", "),
                if many.len() > PREFIX_MATCHES_SHOWN { ", ..." } else { "" }
            )))
        }
    }
}

/// One runtime with its artifacts, log levels and status history.
pub fn show(store: &Store, runtime_id: &str) -> Result<RuntimeDetail> {
    store.read(|tx| {
        let mut d = tx.runtime_detail(runtime_id)?.ok_or_else(|| {
            Error::NotFound(format!(
                "no runtime with id '{runtime_id}'; see `icpd runtime list`"
            ))
        })?;
        with_rollouts(tx, std::slice::from_mut(&mut d.runtime))?;
        Ok(d)
    })
}

// ---- management API ------------------------------------------------------

/// What deleting a runtime did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeDeleted {
    pub runtime_id: String,
    /// The secret revoked with it, when asked for.
    pub revoked_secret: Option<String>,
}

fn no_runtime(runtime_id: &str) -> Error {
    Error::NotFound(format!(
        "no runtime '{runtime_id}' that you may see; GET /api/v1/runtimes lists them"
    ))
}

/// A page of the runtimes `principal` may view (`integration:view`), by runtime id.
pub fn page(
    store: &Store,
    principal: &Principal,
    query: &RuntimeQuery,
    page: &Keyset,
) -> Result<Listing<RuntimeRecord>> {
    let handle = |h: &Option<String>| h.as_deref().map(normalize_handle);
    let q = RuntimeQuery {
        environment: handle(&query.environment),
        project: handle(&query.project),
        integration: handle(&query.integration),
        ..query.clone()
    };
    let vis = Visibility::of(principal, Permission::IntegrationView);
    // The whole list's total is remembered until a runtime is added,
    // removed or moved: counting 50,000 rows for every page costs tens of
    // milliseconds on PostgreSQL, where heartbeats leave row versions behind.
    let unfiltered = q.environment.is_none()
        && q.project.is_none()
        && q.integration.is_none()
        && q.status.is_none()
        && q.runtime_type.is_none()
        && q.text.is_none();
    let (rows, total) = store.read(|tx| {
        let total = if unfiltered {
            store
                .cached_runtime_count(tx, format!("rest|{vis:?}"), || tx.runtime_count(&vis, &q))?
        } else {
            tx.runtime_count(&vis, &q)?
        };
        let mut rows = tx.runtime_page(&vis, &q, page.after.as_deref(), page.limit + 1)?;
        with_rollouts(tx, &mut rows)?;
        Ok((rows, total))
    })?;
    Ok(Listing::new(rows, total, page.limit, |r| {
        r.runtime_id.clone()
    }))
}

/// The runtimes `principal` may view (`integration:view`) in `scope`,
/// newest registration first: `limit` of them after `offset`, and how many
/// match. The status is the live one (the liveness table is ahead of SQLite).
pub fn offset_page(
    store: &Store,
    liveness: &Liveness,
    principal: &Principal,
    scope: &RuntimeScope,
    offset: i64,
    limit: i64,
) -> Result<(Vec<RuntimeListed>, i64)> {
    let vis = Visibility::of(principal, Permission::IntegrationView);
    let (mut rows, total) = store.runtime_offset_page(&vis, scope, offset, limit)?;
    let live = liveness.statuses(rows.iter().map(|r| r.record.runtime_id.as_str()));
    for (r, live) in rows.iter_mut().zip(live) {
        if let Some(s) = live {
            r.record.status = s;
        }
    }
    Ok((rows, total))
}

/// The access target of a runtime `principal` may view; 404 otherwise.
pub fn visible_target(store: &Store, principal: &Principal, runtime_id: &str) -> Result<Target> {
    store
        .read(|tx| tx.runtime_target(runtime_id))?
        .filter(|t| principal.has(Permission::IntegrationView, t))
        .ok_or_else(|| no_runtime(runtime_id))
}

/// Deletes a runtime from SQLite and from the liveness table, so its next
/// delta heartbeat is told to send a full one. With `revoke_secret`, also
/// revokes its secret, unless another runtime still uses it (a conflict;
/// nothing is deleted then).
pub fn delete(
    store: &Store,
    liveness: &Liveness,
    runtime_id: &str,
    revoke_secret: bool,
    now: Millis,
) -> Result<RuntimeDeleted> {
    let deleted = store.write(|tx| {
        let r = tx.runtime(runtime_id)?.ok_or_else(|| no_runtime(runtime_id))?;
        let mut revoked_secret = None;
        if revoke_secret {
            let others: Vec<String> = tx
                .runtimes_using_key(&r.key_id)?
                .into_iter()
                .filter(|id| id != runtime_id)
                .collect();
            if !others.is_empty() {
                return Err(Error::Conflict(format!(
                    "secret {} is also used by runtime(s) {}; delete without revokeSecret, or delete those first",
                    r.key_id,
                    others.join(", ")
                )));
            }
            tx.revoke_secret(&r.key_id, now)?;
            revoked_secret = Some(r.key_id.clone());
        }
        tx.delete_runtime(runtime_id)?;
        Ok(RuntimeDeleted {
            runtime_id: runtime_id.to_string(),
            revoked_secret,
        })
    })?;
    liveness.remove(runtime_id);
    Ok(deleted)
}
