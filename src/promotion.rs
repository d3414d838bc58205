//! Promotion: moving an integration's deployment record and configuration
//! from one environment to the next of its project's pipeline, with
//! overrides for the values that differ and approvals before protected
//! environments.
//!
//! A request captures the source's current deployment record and
//! configuration revision and the target's. An environment requires a
//! number of approvals (`requiredApprovals`: 1 for a critical one, 0
//! otherwise, unless set); with none required the promotion is applied in
//! the request's transaction, otherwise it waits until that many users with
//! the environment permission of the target, other than the requester,
//! approve. Any of them can reject it with a comment; the requester can
//! cancel it. At most one promotion per (integration, target) is pending.
//!
//! Applying writes, in one transaction, a new deployment record in the
//! target (a copy of the source's, `promoted_from` naming it) and a new
//! configuration revision there (the source revision's values, secrets
//! opened and re-sealed for the target, with the overrides on top,
//! `promoted_from` naming the source revision). If the source's record or
//! revision, or the target's, is not the one captured, nothing is written
//! and the promotion becomes `failed` with the reason: of two promotions
//! racing for one target, one wins and the other is told why. Runtimes in
//! the target take the new version and configuration when they restart;
//! the runtime views show which still run the previous ones.
//!
//! Secret override values are sealed with the master key for their place
//! in the target as soon as they arrive, and are never returned.

pub use crate::model::pipeline::{Approval, PromotionRow, Status};

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::access::{Permission, Principal, Target};
use crate::catalog::{self, Keyset, Listing, Visibility};
use crate::commands::Scope;
use crate::configuration::{self, PlainValue, RevisionMeta, StoredValue, ValueKey, ValueType};
use crate::deployments::{self, ValidDeployment};
use crate::error::{Error, Result};
use crate::master_key::MasterKey;
use crate::store::{Store, Tx};
use crate::time::{serialize_opt_rfc3339, serialize_rfc3339, Millis};

/// Overrides in one promotion, at most.
pub const MAX_OVERRIDES: usize = 200;

/// `POST .../promotions`.
#[derive(Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewPromotion {
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub overrides: Vec<Override>,
    pub comment: Option<String>,
}

impl std::fmt::Debug for NewPromotion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPromotion")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

/// A value the target gets instead of the source's (or in addition): the
/// same shape and checks as a value set by a configuration change.
pub type Override = configuration::SetValue;

/// The body of approve, reject and cancel.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub comment: Option<String>,
}

/// The copied deployment record, as a promotion shows it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DeploymentRef {
    pub version: String,
    pub artifact: String,
    pub sha256: Option<String>,
}

/// An override as the API shows it: a secret one only as set.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverrideView {
    pub section: String,
    pub key: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub value_type: Option<ValueType>,
    pub secret: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<bool>,
}

/// Who ended a promotion, when, and their comment.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Ending {
    pub user: String,
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub at: Millis,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A promotion as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    pub id: String,
    pub project: String,
    pub integration: String,
    pub from: String,
    pub to: String,
    pub status: String,
    pub deployment: DeploymentRef,
    pub source_config_revision: i64,
    pub overrides: Vec<OverrideView>,
    pub required_approvals: i64,
    pub approvals: Vec<Approval>,
    pub rejection: Option<Ending>,
    pub cancellation: Option<Ending>,
    /// Why applying failed.
    pub failure: Option<String>,
    pub requested_by: String,
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub requested_at: Millis,
    pub comment: String,
    #[serde(serialize_with = "serialize_opt_rfc3339")]
    #[schemars(with = "Option<String>")]
    pub applied_at: Option<Millis>,
    /// The configuration revision written in the target (null when the
    /// source had none and nothing was overridden).
    pub applied_revision: Option<i64>,
    /// Whether the caller may approve or reject it now.
    pub may_approve: bool,
    /// What applying it changes in the target (what it changed, once
    /// applied). In the answers about one promotion, not in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
}

/// What a promotion changes in its target, from what it captured: the
/// target's deployment record and configuration revision when it was
/// requested, against the source's record and revision with the overrides
/// on top (what applying writes). Secret values are compared, never shown.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Changes {
    pub deployment: DeploymentChange,
    pub configuration: ConfigurationChanges,
}

/// The target's deployment record before and after.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentChange {
    /// The target's record when the promotion was requested; null when it had none.
    pub from: Option<DeploymentRef>,
    pub to: DeploymentRef,
    /// Whether version, artifact or digest differ.
    pub changed: bool,
}

/// The target's configuration before and after, key by key.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationChanges {
    /// The target's revision when the promotion was requested (0: none).
    pub from_revision: i64,
    /// Whether applying writes a new revision; false when the source has
    /// no configuration and nothing is overridden (the target's stays).
    pub new_revision: bool,
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub unchanged: usize,
    /// Every key the target has before or after, by section and key.
    pub keys: Vec<KeyChange>,
}

/// How one key fares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// New in the target (for a secret: it becomes set).
    Added,
    /// Gone from the target.
    Removed,
    /// Another value, type or secrecy.
    Changed,
    Unchanged,
}

/// One configuration key before and after. A secret value is never shown:
/// `change` alone says whether it is set, changed or unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyChange {
    pub section: String,
    pub key: String,
    pub change: Change,
    /// Whether the value is secret after (before, for a removed key).
    pub secret: bool,
    /// Present when secrecy changes: whether it was secret before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub was_secret: Option<bool>,
    /// The value before, when there was one and it was not secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    /// The value after, when there is one and it is not secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
}

/// The key-by-key difference between two value sets (in clear), by
/// section and key; values only where not secret.
pub fn key_changes(before: &[PlainValue], after: &[PlainValue]) -> Vec<KeyChange> {
    let index = |values: &[PlainValue]| -> BTreeMap<(String, String), PlainValue> {
        values
            .iter()
            .map(|v| ((v.section.clone(), v.key.clone()), v.clone()))
            .collect()
    };
    let (before, after) = (index(before), index(after));
    let mut keys: Vec<&(String, String)> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let shown = |v: &PlainValue| (!v.secret).then(|| v.value.clone());
    keys.into_iter()
        .map(|k| {
            let (old, new) = (before.get(k), after.get(k));
            let change = match (old, new) {
                (None, _) => Change::Added,
                (_, None) => Change::Removed,
                (Some(o), Some(n))
                    if o.value_type == n.value_type
                        && o.secret == n.secret
                        && o.value == n.value =>
                {
                    Change::Unchanged
                }
                _ => Change::Changed,
            };
            let secret = new.or(old).is_some_and(|v| v.secret);
            KeyChange {
                section: k.0.clone(),
                key: k.1.clone(),
                change,
                secret,
                was_secret: match (old, new) {
                    (Some(o), Some(n)) if o.secret != n.secret => Some(o.secret),
                    _ => None,
                },
                from: old.and_then(shown),
                to: new.and_then(shown),
            }
        })
        .collect()
}

// ---- rules -----------------------------------------------------------------

fn bad(msg: impl Into<String>) -> Error {
    Error::BadRequest(msg.into())
}

fn valid_comment(text: Option<&str>) -> Result<String> {
    let c = text.unwrap_or("").trim().to_string();
    if c.chars().count() > 500 || c.chars().any(char::is_control) {
        return Err(bad(
            "comment must be at most 500 characters, without control characters",
        ));
    }
    Ok(c)
}

/// Whether `principal` holds the environment permission that approving a
/// promotion into the target needs: `environment:manage` for a critical
/// environment, or `environment:manage-non-production` for another.
pub fn may_approve_into(principal: &Principal, target: &Target) -> bool {
    principal.has(Permission::EnvironmentManage, target)
        || (!target.critical && principal.has(Permission::EnvironmentManageNonProduction, target))
}

/// Whether `principal` may approve or reject `m` now (its `mayApprove`):
/// it is pending, they did not request it, have not approved it
/// (`approved`), and hold the environment permission of its target.
fn may_decide(principal: &Principal, m: &PromotionRow, approved: bool) -> bool {
    m.status == Status::Pending.as_str()
        && m.requested_by != principal.username
        && !approved
        && may_approve_into(principal, &m.target())
}

/// The checked overrides: place, type, value in clear, secret flag if given.
type CheckedOverride = (ValueKey, ValueType, Value, Option<bool>);

fn check_overrides(overrides: &[Override]) -> Result<Vec<CheckedOverride>> {
    if overrides.len() > MAX_OVERRIDES {
        return Err(bad(format!(
            "at most {MAX_OVERRIDES} overrides in one promotion"
        )));
    }
    let mut seen = HashSet::new();
    overrides
        .iter()
        .map(|o| {
            let (k, t, v) = o.check()?;
            if !seen.insert(k.clone()) {
                return Err(bad(format!("{} is overridden twice", k.dotted())));
            }
            Ok((k, t, v, o.secret))
        })
        .collect()
}

fn key_of(v: &StoredValue) -> ValueKey {
    ValueKey {
        section: v.section.clone(),
        key: v.key.clone(),
    }
}

/// The target's new value set: the source revision's values (opened and
/// re-sealed for the target) with `overrides` (sealed for the target
/// already) on top.
fn merged_values(
    key: &MasterKey,
    from: &Scope,
    to: &Scope,
    source: &[StoredValue],
    overrides: &[StoredValue],
) -> Result<Vec<StoredValue>> {
    let mut map = BTreeMap::new();
    for v in configuration::open_values(key, from, source)? {
        let stored = configuration::seal_value(key, to, &v)?;
        map.insert(key_of(&stored), stored);
    }
    for o in overrides {
        map.insert(key_of(o), o.clone());
    }
    let values: Vec<StoredValue> = map.into_values().collect();
    configuration::check_document(&values)?;
    Ok(values)
}

/// What the target needs looks like, read in the caller's transaction.
struct State {
    deployment: Option<deployments::Deployment>,
    revision: Option<configuration::RevisionInfo>,
}

fn state(tx: &Tx, scope: &Scope) -> Result<State> {
    Ok(State {
        deployment: tx.current_deployment(scope.integration_id, scope.environment_id)?,
        revision: tx.current_config_revision(scope.integration_id, scope.environment_id)?,
    })
}

fn revision_number(s: &State) -> i64 {
    s.revision.as_ref().map_or(0, |r| r.revision)
}

/// Why a promotion captured as `m` can no longer be applied, if it cannot.
fn stale(m: &PromotionRow, source: &State, target: &State) -> Option<String> {
    let record = |d: &Option<deployments::Deployment>| match d {
        Some(d) => format!("record {} ({})", d.id, d.version),
        None => "no record".to_string(),
    };
    if source.deployment.as_ref().map(|d| d.id) != Some(m.source_deployment_id) {
        return Some(format!(
            "'{}' has a new deployment record since the promotion was requested (now {}, requested for record {} ({})); request a new promotion",
            m.from,
            record(&source.deployment),
            m.source_deployment_id,
            m.version
        ));
    }
    if revision_number(source) != m.source_config_revision {
        return Some(format!(
            "the configuration of '{}' changed since the promotion was requested (now revision {}, requested at revision {}); request a new promotion",
            m.from,
            revision_number(source),
            m.source_config_revision
        ));
    }
    if target.deployment.as_ref().map(|d| d.id) != m.target_deployment_id
        || revision_number(target) != m.target_config_revision
    {
        return Some(format!(
            "'{}' changed since the promotion was requested (now deployment {} and configuration revision {}, then {} and revision {}): another promotion or change was applied meanwhile; request a new promotion",
            m.to,
            record(&target.deployment),
            revision_number(target),
            m.target_deployment_id
                .map_or("no record".to_string(), |id| format!("record {id}")),
            m.target_config_revision
        ));
    }
    None
}

/// Applies `m` in the caller's transaction if what it captured still holds:
/// `Ok(Err(reason))` when it does not (nothing written then).
fn apply(
    tx: &Tx,
    key: &MasterKey,
    m: &PromotionRow,
    by: &str,
    now: Millis,
) -> Result<std::result::Result<(), String>> {
    let (from, to) = (m.scope(false), m.scope(true));
    let (source, target) = (state(tx, &from)?, state(tx, &to)?);
    if let Some(reason) = stale(m, &source, &target) {
        return Ok(Err(reason));
    }
    let record = ValidDeployment {
        version: m.version.clone(),
        artifact: m.artifact.clone(),
        sha256: m.sha256.clone(),
    };
    let d = deployments::insert(
        tx,
        &to,
        &record,
        &m.requested_by,
        now,
        Some(m.source_deployment_id),
    )?;
    let overrides = tx.promotion_overrides(m.id)?;
    let revision = match (&source.revision, overrides.is_empty()) {
        (None, true) => None,
        (rev, _) => {
            let values = match rev {
                Some(r) => tx.config_values(r.id)?,
                None => Vec::new(),
            };
            let values = merged_values(key, &from, &to, &values, &overrides)?;
            let mut comment = format!("promotion {} from {}", m.id, m.from);
            if let Some(r) = rev {
                comment.push_str(&format!(" revision {}", r.revision));
            }
            if !m.comment.is_empty() {
                comment.push_str(": ");
                comment.push_str(&m.comment);
            }
            let meta = RevisionMeta {
                created_by: m.requested_by.clone(),
                created_at: now,
                comment: comment.chars().take(500).collect(),
                promoted_from: rev.as_ref().map(|r| r.id),
            };
            Some(configuration::write_revision(tx, &to, &values, &meta)?.revision)
        }
    };
    tx.promotion_applied(m.id, by, now, d.id, revision)?;
    Ok(Ok(()))
}

/// What `m` changes in its target (see [`Changes`]), from what it captured.
fn changes(tx: &Tx, key: &MasterKey, m: &PromotionRow) -> Result<Changes> {
    let (from, to) = (m.scope(false), m.scope(true));
    let record = |d: &deployments::Deployment| DeploymentRef {
        version: d.version.clone(),
        artifact: d.artifact.clone(),
        sha256: d.sha256.clone(),
    };
    let before = match m.target_deployment_id {
        Some(id) => tx.deployment(id)?.map(|d| record(&d)),
        None => None,
    };
    let after = m.deployment();
    // Revisions are immutable, so the captured numbers still name what they named.
    let revision = |scope: &Scope, number: i64| -> Result<Vec<StoredValue>> {
        if number == 0 {
            return Ok(Vec::new());
        }
        let r = tx
            .config_revision(scope.integration_id, scope.environment_id, number)?
            .ok_or_else(|| {
                Error::Internal(format!(
                    "configuration revision {number} of '{}' is gone",
                    scope.environment
                ))
            })?;
        tx.config_values(r.id)
    };
    let old = configuration::open_values(key, &to, &revision(&to, m.target_config_revision)?)?;
    let overrides = tx.promotion_overrides(m.id)?;
    // As `apply`: a new revision unless the source has none and nothing is overridden.
    let new_revision = m.source_config_revision != 0 || !overrides.is_empty();
    let new = if new_revision {
        // What `apply` writes, opened.
        let source = revision(&from, m.source_config_revision)?;
        let merged = merged_values(key, &from, &to, &source, &overrides)?;
        configuration::open_values(key, &to, &merged)?
    } else {
        old.clone()
    };
    let keys = key_changes(&old, &new);
    let count = |c: Change| keys.iter().filter(|k| k.change == c).count();
    Ok(Changes {
        deployment: DeploymentChange {
            changed: before.as_ref() != Some(&after),
            from: before,
            to: after,
        },
        configuration: ConfigurationChanges {
            from_revision: m.target_config_revision,
            new_revision,
            added: count(Change::Added),
            removed: count(Change::Removed),
            changed: count(Change::Changed),
            unchanged: count(Change::Unchanged),
            keys,
        },
    })
}

/// The promotion `id` if `principal` may view it (`integration:view` on
/// the integration in the target environment); 404 otherwise.
fn visible(tx: &Tx, principal: &Principal, id: i64) -> Result<PromotionRow> {
    tx.promotion(id)?
        .filter(|m| principal.has(Permission::IntegrationView, &m.target()))
        .ok_or_else(|| Error::NotFound(format!("no promotion {id}")))
}

/// `m` as the API shows it to `principal`; with what it changes in the
/// target when `key` is given (the answers about one promotion).
fn view(
    tx: &Tx,
    principal: &Principal,
    m: PromotionRow,
    key: Option<&MasterKey>,
) -> Result<Promotion> {
    let changes = key.map(|key| changes(tx, key, &m)).transpose()?;
    let overrides = tx
        .promotion_overrides(m.id)?
        .into_iter()
        .map(|o| OverrideView {
            value_type: (!o.secret).then_some(o.value_type),
            value: if o.secret {
                None
            } else {
                o.value
                    .as_deref()
                    .and_then(|t| serde_json::from_str(t).ok())
            },
            set: o.secret.then_some(true),
            section: o.section,
            key: o.key,
            secret: o.secret,
        })
        .collect();
    let approvals = tx.promotion_approvals(m.id)?;
    let status = m.status.as_str();
    let ending = |with_comment: bool| {
        Some(Ending {
            user: m.decided_by.clone().unwrap_or_default(),
            at: m.decided_at.unwrap_or_default(),
            comment: if with_comment { m.reason.clone() } else { None },
        })
    };
    let approved = approvals.iter().any(|a| a.user == principal.username);
    let may_approve = may_decide(principal, &m, approved);
    Ok(Promotion {
        id: m.id.to_string(),
        project: m.project.clone(),
        integration: m.integration.clone(),
        from: m.from.clone(),
        to: m.to.clone(),
        status: m.status.clone(),
        deployment: m.deployment(),
        source_config_revision: m.source_config_revision,
        overrides,
        required_approvals: m.required_approvals,
        approvals,
        rejection: if status == "rejected" {
            ending(true)
        } else {
            None
        },
        cancellation: if status == "cancelled" {
            ending(false)
        } else {
            None
        },
        failure: if status == "failed" {
            m.reason.clone()
        } else {
            None
        },
        requested_by: m.requested_by.clone(),
        requested_at: m.requested_at,
        comment: m.comment.clone(),
        applied_at: if status == "applied" {
            m.decided_at
        } else {
            None
        },
        applied_revision: m.applied_revision,
        may_approve,
        changes,
    })
}

// ---- operations ------------------------------------------------------------

/// Requests a promotion of `project/integration` as `principal`: `to` must
/// follow `from` in the pipeline (422), `from` must have a deployment
/// record (422), the requester needs `integration:manage` plus the
/// environment permission of `to` (403), no other promotion into `to` may
/// be pending (409), and `to` must not already hold what `from` holds (409:
/// of racing requests for one source state, one wins). Applied at once when
/// `to` requires no approval.
pub fn request(
    store: &Store,
    key: &MasterKey,
    principal: &Principal,
    project: &str,
    integration: &str,
    new: &NewPromotion,
    now: Millis,
) -> Result<Promotion> {
    let checked = check_overrides(&new.overrides)?;
    let comment = valid_comment(new.comment.as_deref())?;
    let (from_handle, to_handle) = (
        catalog::normalize_handle(&new.from),
        catalog::normalize_handle(&new.to),
    );
    let project = catalog::normalize_handle(project);
    let integration = catalog::normalize_handle(integration);
    store.write(|tx| {
        let i = tx
            .integration_info(&project, &integration)?
            .filter(|i| principal.has(Permission::IntegrationView, &i.target()))
            .ok_or_else(|| {
                Error::NotFound(format!("no integration '{integration}' in project '{project}'"))
            })?;
        let env = |handle: &str| {
            tx.environment_info(handle)?.ok_or_else(|| {
                Error::Unprocessable(format!("environment '{handle}' does not exist"))
            })
        };
        let (from_env, to_env) = (env(&from_handle)?, env(&to_handle)?);
        let scope = |e: &catalog::EnvironmentInfo| Scope {
            project_id: i.project_id,
            integration_id: i.id,
            environment_id: e.id,
            critical: e.critical,
            project: i.project.clone(),
            integration: i.handle.clone(),
            environment: e.handle.clone(),
        };
        let (from, to) = (scope(&from_env), scope(&to_env));
        let target = Target {
            project: Some(i.project_id),
            integration: Some(i.id),
            environment: Some(to_env.id),
            critical: to_env.critical,
        };
        if !principal.may_act(Permission::IntegrationManage, &target) {
            return Err(Error::Forbidden(format!(
                "promoting into '{}' needs integration:manage and {} there",
                to.environment,
                if to.critical {
                    "environment:manage"
                } else {
                    "environment:manage or environment:manage-non-production"
                }
            )));
        }
        let pipeline = catalog::pipeline(tx, i.project_id)?;
        let order = pipeline
            .iter()
            .map(|e| e.handle.as_str())
            .collect::<Vec<_>>()
            .join(" -> ");
        match catalog::next_in(&pipeline, &from.environment)? {
            Some(next) if next.handle == to.environment => {}
            Some(next) => {
                return Err(Error::Unprocessable(format!(
                    "a promotion from '{}' goes to '{}', the next environment of the pipeline ({order}), not to '{}'",
                    from.environment, next.handle, to.environment
                )))
            }
            None => {
                return Err(Error::Unprocessable(format!(
                    "'{}' is the last environment of the pipeline ({order}); nothing follows it",
                    from.environment
                )))
            }
        }
        let source = state(tx, &from)?;
        let Some(record) = source.deployment.clone() else {
            return Err(Error::Unprocessable(format!(
                "{}/{} has no deployment record in '{}' to promote: record one first (POST .../environments/{}/deployments)",
                i.project, i.handle, from.environment, from.environment
            )));
        };
        if let Some(pending) = tx.pending_promotion(i.id, to_env.id)? {
            return Err(Error::Conflict(format!(
                "promotion {pending} of {}/{} into '{}' is pending already: approve, reject or cancel it first",
                i.project, i.handle, to.environment
            )));
        }
        let target_state = state(tx, &to)?;
        let same_record = target_state
            .deployment
            .as_ref()
            .is_some_and(|d| d.promoted_from == Some(record.id));
        let same_config = match (&source.revision, &target_state.revision) {
            (None, _) => true,
            (Some(s), Some(t)) => t.promoted_from.as_ref().is_some_and(|p| p.id == s.id),
            (Some(_), None) => false,
        };
        if same_record && same_config && checked.is_empty() {
            return Err(Error::Conflict(format!(
                "'{}' already holds what '{}' holds (deployment record {} ({}) and configuration revision {}, promoted): nothing to promote",
                to.environment,
                from.environment,
                record.id,
                record.version,
                revision_number(&source)
            )));
        }
        // The overrides, sealed for their place in the target.
        let secret_in_source = |k: &ValueKey| {
            let values = match &source.revision {
                Some(r) => tx.config_values(r.id)?,
                None => Vec::new(),
            };
            Ok::<_, Error>(values.iter().any(|v| key_of(v) == *k && v.secret))
        };
        let mut overrides = Vec::with_capacity(checked.len());
        for (k, t, v, secret) in &checked {
            let secret = match secret {
                Some(s) => *s,
                None => secret_in_source(k)?,
            };
            let plain = PlainValue {
                section: k.section.clone(),
                key: k.key.clone(),
                value_type: *t,
                secret,
                value: v.clone(),
                updated_by: principal.username.clone(),
                updated_at: now,
            };
            overrides.push(configuration::seal_value(key, &to, &plain)?);
        }
        // The merged document must be valid now, not only when applied.
        let source_values = match &source.revision {
            Some(r) => tx.config_values(r.id)?,
            None => Vec::new(),
        };
        merged_values(key, &from, &to, &source_values, &overrides)?;

        let mut m = PromotionRow {
            id: 0,
            project_id: i.project_id,
            project: i.project.clone(),
            integration_id: i.id,
            integration: i.handle.clone(),
            from_environment_id: from_env.id,
            from: from.environment.clone(),
            from_critical: from.critical,
            to_environment_id: to_env.id,
            to: to.environment.clone(),
            to_critical: to.critical,
            status: Status::Pending.as_str().into(),
            source_deployment_id: record.id,
            version: record.version.clone(),
            artifact: record.artifact.clone(),
            sha256: record.sha256.clone(),
            source_config_revision: revision_number(&source),
            target_deployment_id: target_state.deployment.as_ref().map(|d| d.id),
            target_config_revision: revision_number(&target_state),
            required_approvals: to_env.required_approvals,
            requested_by: principal.username.clone(),
            requested_at: now,
            comment: comment.clone(),
            decided_by: None,
            decided_at: None,
            reason: None,
            applied_deployment_id: None,
            applied_revision: None,
        };
        m.id = tx.insert_promotion(&m)?;
        for o in &overrides {
            tx.insert_promotion_override(m.id, o)?;
        }
        if m.required_approvals == 0 {
            // Captured in this very transaction, so it still holds.
            if let Err(reason) = apply(tx, key, &m, &principal.username, now)? {
                return Err(Error::Internal(format!(
                    "promotion {} could not apply at once: {reason}",
                    m.id
                )));
            }
        }
        let m = visible(tx, principal, m.id)?;
        view(tx, principal, m, Some(key))
    })
}

/// Approves promotion `id` as `principal` (not its requester; with the
/// environment permission of the target), and applies it when the
/// approvals reach the required number. If what it captured no longer
/// holds, it becomes `failed` (committed) and the answer is 409 with why.
pub fn approve(
    store: &Store,
    key: &MasterKey,
    principal: &Principal,
    id: i64,
    decision: &Decision,
    now: Millis,
) -> Result<Promotion> {
    let comment = valid_comment(decision.comment.as_deref())?;
    let (promotion, failure) = store.write(|tx| {
        let m = decidable(tx, principal, id, "approve")?;
        if m.requested_by == principal.username {
            return Err(Error::Forbidden(
                "you requested this promotion; another user must approve it".into(),
            ));
        }
        let approvals = tx.promotion_approvals(id)?;
        if approvals.iter().any(|a| a.user == principal.username) {
            return Err(Error::Conflict(format!(
                "you approved promotion {id} already; it needs {} approval(s) from different users",
                m.required_approvals
            )));
        }
        tx.insert_promotion_approval(id, &principal.username, now, &comment)?;
        let mut failure = None;
        if approvals.len() as i64 + 1 >= m.required_approvals {
            if let Err(reason) = apply(tx, key, &m, &principal.username, now)? {
                tx.end_promotion(
                    id,
                    Status::Failed.as_str(),
                    &principal.username,
                    now,
                    Some(&reason),
                )?;
                failure = Some(reason);
            }
        }
        let m = visible(tx, principal, id)?;
        Ok((view(tx, principal, m, Some(key))?, failure))
    })?;
    match failure {
        Some(reason) => Err(Error::Conflict(format!(
            "promotion {id} failed and is marked failed: {reason}"
        ))),
        None => Ok(promotion),
    }
}

/// The pending promotion `id`, visible to `principal`, who holds the
/// environment permission of its target.
fn decidable(tx: &Tx, principal: &Principal, id: i64, what: &str) -> Result<PromotionRow> {
    let m = visible(tx, principal, id)?;
    if !may_approve_into(principal, &m.target()) {
        return Err(Error::Forbidden(format!(
            "to {what} a promotion into '{}' you need {} there",
            m.to,
            if m.to_critical {
                "environment:manage"
            } else {
                "environment:manage or environment:manage-non-production"
            }
        )));
    }
    pending(&m)?;
    Ok(m)
}

fn pending(m: &PromotionRow) -> Result<()> {
    if m.status != Status::Pending.as_str() {
        return Err(Error::Conflict(format!(
            "promotion {} is {}, not pending",
            m.id, m.status
        )));
    }
    Ok(())
}

/// Rejects promotion `id` with a comment (required) as an approver other than its requester.
pub fn reject(
    store: &Store,
    key: &MasterKey,
    principal: &Principal,
    id: i64,
    decision: &Decision,
    now: Millis,
) -> Result<Promotion> {
    let comment = valid_comment(decision.comment.as_deref())?;
    if comment.is_empty() {
        return Err(bad("a rejection needs a comment saying why"));
    }
    store.write(|tx| {
        let m = decidable(tx, principal, id, "reject")?;
        if m.requested_by == principal.username {
            return Err(Error::Forbidden(format!(
                "you requested this promotion: cancel it instead (POST /api/v1/promotions/{id}/cancel)"
            )));
        }
        tx.end_promotion(id, Status::Rejected.as_str(), &principal.username, now, Some(&comment))?;
        let m = visible(tx, principal, id)?;
        view(tx, principal, m, Some(key))
    })
}

/// Cancels promotion `id`; only its requester can.
pub fn cancel(
    store: &Store,
    key: &MasterKey,
    principal: &Principal,
    id: i64,
    now: Millis,
) -> Result<Promotion> {
    store.write(|tx| {
        let m = visible(tx, principal, id)?;
        if m.requested_by != principal.username {
            return Err(Error::Forbidden(format!(
                "only {} (who requested promotion {id}) can cancel it; approvers reject instead",
                m.requested_by
            )));
        }
        pending(&m)?;
        tx.end_promotion(
            id,
            Status::Cancelled.as_str(),
            &principal.username,
            now,
            None,
        )?;
        let m = visible(tx, principal, id)?;
        view(tx, principal, m, Some(key))
    })
}

/// One promotion, if `principal` may view it, with what it changes in the target.
pub fn get(store: &Store, key: &MasterKey, principal: &Principal, id: i64) -> Result<Promotion> {
    store.read(|tx| {
        let m = visible(tx, principal, id)?;
        view(tx, principal, m, Some(key))
    })
}

/// A page of the promotions `principal` may view, newest first, of one
/// integration (`None`: all) and in one status when given; the cursor is a promotion id.
pub fn list(
    store: &Store,
    principal: &Principal,
    integration_id: Option<i64>,
    status: Option<Status>,
    page: &Keyset,
) -> Result<Listing<Promotion>> {
    let before = page.after_number()?;
    let vis = Visibility::of(principal, Permission::IntegrationView);
    store.read(|tx| {
        let (rows, total) = tx.promotion_page(
            &vis,
            integration_id,
            status.map(Status::as_str),
            before,
            page.limit + 1,
        )?;
        let listing = Listing::new(rows, total, page.limit, |m| m.id.to_string());
        let items = listing
            .items
            .into_iter()
            .map(|m| view(tx, principal, m, None))
            .collect::<Result<_>>()?;
        Ok(Listing {
            items,
            total: listing.total,
            next: listing.next,
        })
    })
}

/// How many pending promotions wait for `principal`'s decision: those a
/// list shows with `mayApprove` ([`may_decide`]); 0 for a user who may
/// decide nothing. For the console's navigation, so it reads only the
/// pending promotions (through the status index) and the caller's
/// approvals of them: two queries.
pub fn awaiting(store: &Store, principal: &Principal) -> Result<i64> {
    let view = Visibility::of(principal, Permission::IntegrationView);
    store.read(|tx| {
        let approved = tx.pending_approved_by(&principal.username)?;
        Ok(tx
            .pending_promotions(&view)?
            .iter()
            .filter(|m| may_decide(principal, m, approved.contains(&m.id)))
            .count() as i64)
    })
}

/// What the audit log says about a promotion (never a value).
pub fn audit_target(p: &Promotion) -> String {
    format!(
        "promotion {} {}/{} {} -> {} ({})",
        p.id, p.project, p.integration, p.from, p.to, p.status
    )
}

impl PromotionRow {
    fn scope(&self, to: bool) -> Scope {
        let (environment_id, critical, environment) = if to {
            (self.to_environment_id, self.to_critical, &self.to)
        } else {
            (self.from_environment_id, self.from_critical, &self.from)
        };
        Scope {
            project_id: self.project_id,
            integration_id: self.integration_id,
            environment_id,
            critical,
            project: self.project.clone(),
            integration: self.integration.clone(),
            environment: environment.clone(),
        }
    }

    /// The access target: the integration in the target environment.
    pub fn target(&self) -> Target {
        Target {
            project: Some(self.project_id),
            integration: Some(self.integration_id),
            environment: Some(self.to_environment_id),
            critical: self.to_critical,
        }
    }

    /// The deployment record it copies into the target.
    fn deployment(&self) -> DeploymentRef {
        DeploymentRef {
            version: self.version.clone(),
            artifact: self.artifact.clone(),
            sha256: self.sha256.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use serde_json::json;

    use super::*;
    use crate::access::{Grant, Scope as GrantScope};
    use crate::configuration::ConfigChange;

    fn person(name: &str, perms: &[Permission]) -> Principal {
        Principal {
            user_id: 1,
            username: name.into(),
            grants: vec![Grant {
                scope: GrantScope::Organization,
                permissions: perms.iter().copied().collect(),
            }],
            must_change_password: false,
        }
    }

    fn admin(name: &str) -> Principal {
        person(name, &Permission::ALL)
    }

    #[test]
    fn overrides_are_checked_like_configuration_values() {
        let o = |key: &str, value: Value, t: Option<&str>| Override {
            section: "myorg.orders".into(),
            key: key.into(),
            value,
            value_type: t.map(str::to_string),
            secret: None,
        };
        let ok = check_overrides(&[o("port", json!(2), Some("float"))]).unwrap();
        assert_eq!((ok[0].1, &ok[0].2), (ValueType::Float, &json!(2.0)));
        for bad in [
            vec![o("1x", json!(1), None)],
            vec![o("x", json!("a"), Some("int"))],
            vec![o("x", Value::Null, None)],
            vec![o("x", json!(1), None), o("x", json!(2), None)],
        ] {
            assert!(check_overrides(&bad).is_err(), "{bad:?}");
        }
        let err = check_overrides(&[o("x", json!("hunter2-secret"), Some("int"))]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn key_changes_compare_type_secrecy_and_value_and_hide_secrets() {
        let v = |key: &str, t: ValueType, secret: bool, value: Value| PlainValue {
            section: "s".into(),
            key: key.into(),
            value_type: t,
            secret,
            value,
            updated_by: "u".into(),
            updated_at: 0,
        };
        let (int, string) = (ValueType::Int, ValueType::String);
        let before = [
            v("made-secret", string, false, json!("was-plain")),
            v("retyped", int, false, json!(2)),
            v("same", string, true, json!("hunter2")),
        ];
        let after = [
            v("made-secret", string, true, json!("now-hidden")),
            v("retyped", ValueType::Float, false, json!(2.0)),
            v("same", string, true, json!("hunter2")),
        ];
        let changes = key_changes(&before, &after);
        let text = serde_json::to_string(&changes).unwrap();
        assert!(
            !text.contains("now-hidden") && !text.contains("hunter2"),
            "{text}"
        );
        assert_eq!(
            serde_json::to_value(&changes).unwrap(),
            json!([
                {"section": "s", "key": "made-secret", "change": "changed", "secret": true,
                 "wasSecret": false, "from": "was-plain"},
                {"section": "s", "key": "retyped", "change": "changed", "secret": false,
                 "from": 2, "to": 2.0},
                {"section": "s", "key": "same", "change": "unchanged", "secret": true},
            ])
        );
    }

    #[test]
    fn approving_needs_the_environment_permission_of_its_criticality() {
        let t = |critical| Target {
            project: Some(1),
            integration: Some(2),
            environment: Some(3),
            critical,
        };
        let manager = person("m", &[Permission::EnvironmentManage]);
        let non_prod = person("n", &[Permission::EnvironmentManageNonProduction]);
        let viewer = person("v", &[Permission::IntegrationView]);
        assert!(may_approve_into(&manager, &t(true)));
        assert!(may_approve_into(&manager, &t(false)));
        assert!(!may_approve_into(&non_prod, &t(true)));
        assert!(may_approve_into(&non_prod, &t(false)));
        assert!(!may_approve_into(&viewer, &t(false)));
        assert_eq!(Status::parse("pending").unwrap(), Status::Pending);
        assert!(Status::parse("PENDING").is_err());
    }

    /// dev -> prod (the default pipeline: every environment; prod is
    /// critical, so one approval): the rules of request and approve, and
    /// what applying writes.
    #[test]
    fn request_approve_and_apply_in_the_store() {
        let dir = std::env::temp_dir().join(format!("icpd-unit-promotion-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("icp.db")).unwrap();
        let key =
            MasterKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([3u8; 32]))
                .unwrap();
        let dev = store
            .write(|tx| {
                let (p, i) = catalog::find_or_create_integration(tx, "p", "i", "BI", 1)?;
                let e = tx.environment_by_handle("dev")?.unwrap();
                Ok(Scope::of(p, i, e))
            })
            .unwrap();
        let (alice, bob) = (admin("alice"), admin("bob"));
        let new = |overrides: Vec<Override>| NewPromotion {
            from: "dev".into(),
            to: "prod".into(),
            overrides,
            comment: None,
        };
        let err = request(&store, &key, &alice, "p", "i", &new(vec![]), 10).unwrap_err();
        assert!(matches!(err, Error::Unprocessable(_)), "no record: {err}");

        let change: ConfigChange = serde_json::from_value(json!({"set": [
            {"section": "a.b", "key": "url", "value": "dev-url"},
            {"section": "a.b", "key": "password", "value": "pw-1", "secret": true}]}))
        .unwrap();
        configuration::change(&store, &key, &dev, &change, "alice", 5).unwrap();
        deployments::record(&store, &dev, &rec("1.0"), "alice", 6).unwrap();

        let over = Override {
            section: "a.b".into(),
            key: "url".into(),
            value: json!("prod-url"),
            value_type: None,
            secret: None,
        };
        let p = request(&store, &key, &alice, "p", "i", &new(vec![over]), 10).unwrap();
        assert_eq!((p.status.as_str(), p.required_approvals), ("pending", 1));
        assert!(!p.may_approve);
        let id: i64 = p.id.parse().unwrap();
        let again = request(&store, &key, &alice, "p", "i", &new(vec![]), 11).unwrap_err();
        assert!(matches!(again, Error::Conflict(_)), "{again}");

        let none = Decision::default();
        let own = approve(&store, &key, &alice, id, &none, 12).unwrap_err();
        assert!(matches!(own, Error::Forbidden(_)), "{own}");
        let weak = person(
            "carl",
            &[
                Permission::IntegrationView,
                Permission::EnvironmentManageNonProduction,
            ],
        );
        let weak_err = approve(&store, &key, &weak, id, &none, 12).unwrap_err();
        assert!(matches!(weak_err, Error::Forbidden(_)), "{weak_err}");
        assert!(get(&store, &key, &bob, id).unwrap().may_approve);

        let applied = approve(&store, &key, &bob, id, &none, 13).unwrap();
        assert_eq!(applied.status, "applied");
        assert_eq!(
            (applied.applied_at, applied.applied_revision),
            (Some(13), Some(1))
        );
        let prod = Scope {
            environment_id: store
                .read(|tx| Ok(tx.environment_by_handle("prod")?.unwrap().id))
                .unwrap(),
            critical: true,
            environment: "prod".into(),
            ..dev.clone()
        };
        let rendered = configuration::render(&store, &key, &prod).unwrap();
        let doc: toml::Table = rendered.toml.parse().unwrap();
        assert_eq!(doc["a"]["b"]["url"].as_str(), Some("prod-url"));
        assert_eq!(doc["a"]["b"]["password"].as_str(), Some("pw-1"));
        let record = deployments::current(&store, &prod).unwrap().unwrap();
        assert_eq!(
            (record.version.as_str(), record.created_by.as_str()),
            ("1.0", "alice")
        );

        // Nothing changed in dev since: nothing to promote.
        let same = request(&store, &key, &alice, "p", "i", &new(vec![]), 14).unwrap_err();
        assert!(matches!(same, Error::Conflict(_)), "{same}");

        // A later request whose source moves before approval fails, committed.
        deployments::record(&store, &dev, &rec("1.1"), "alice", 15).unwrap();
        let p = request(&store, &key, &alice, "p", "i", &new(vec![]), 16).unwrap();
        let id: i64 = p.id.parse().unwrap();
        deployments::record(&store, &dev, &rec("1.2"), "alice", 17).unwrap();
        let err = approve(&store, &key, &bob, id, &none, 18).unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        let failed = get(&store, &key, &bob, id).unwrap();
        assert_eq!(failed.status, "failed");
        assert!(failed.failure.unwrap().contains("new deployment record"));
        assert_eq!(
            deployments::current(&store, &prod)
                .unwrap()
                .unwrap()
                .version,
            "1.0"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn rec(version: &str) -> deployments::NewDeployment {
        deployments::NewDeployment {
            version: version.into(),
            artifact: format!("a-{version}.bala"),
            sha256: None,
        }
    }
}
