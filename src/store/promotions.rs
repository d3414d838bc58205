//! The SQL of promotions: the request with what it captured, its overrides
//! (secret ones sealed), its approvals, and pages of promotions filtered by
//! what the caller may view.
//!
//! At most one promotion per (integration, target environment) is pending:
//! a partial unique index holds that even if two requests race.

use std::collections::HashSet;

use super::db;
use super::db::{params, OptionalExtension, Queries, Row};

use super::Tx;
use crate::error::Result;
use crate::model::catalog::Visibility;
use crate::model::configuration::StoredValue;
use crate::model::pipeline::{Approval, PromotionRow};
use crate::time::Millis;

const PROMOTION_SELECT: &str = "SELECT m.id, p.id, p.handle, i.id, i.handle, \
     fe.id, fe.handle, fe.critical, te.id, te.handle, te.critical, m.status, \
     m.source_deployment_id, m.version, m.artifact, m.sha256, m.source_config_revision, \
     m.target_deployment_id, m.target_config_revision, m.required_approvals, \
     m.requested_by, m.requested_at, m.comment, m.decided_by, m.decided_at, m.reason, \
     m.applied_deployment_id, m.applied_revision \
     FROM promotions m JOIN integrations i ON i.id = m.integration_id \
     JOIN projects p ON p.id = i.project_id \
     JOIN environments fe ON fe.id = m.from_environment_id \
     JOIN environments te ON te.id = m.to_environment_id";

/// Visible (?1 everything, ?2 projects, ?3 integrations, ?4 environments,
/// the target's), integration ?5, status ?6, before id ?7.
const PROMOTION_WHERE: &str = "(?1 OR i.project_id IN (SELECT value FROM json_each(?2)) \
       OR m.integration_id IN (SELECT value FROM json_each(?3)) \
       OR m.to_environment_id IN (SELECT value FROM json_each(?4))) \
     AND (CAST(?5 AS BIGINT) IS NULL OR m.integration_id = ?5) AND (CAST(?6 AS TEXT) IS NULL OR m.status = ?6) \
     AND (CAST(?7 AS BIGINT) IS NULL OR m.id < ?7)";

fn promotion(r: &Row) -> db::Result<PromotionRow> {
    Ok(PromotionRow {
        id: r.get(0)?,
        project_id: r.get(1)?,
        project: r.get(2)?,
        integration_id: r.get(3)?,
        integration: r.get(4)?,
        from_environment_id: r.get(5)?,
        from: r.get(6)?,
        from_critical: r.get(7)?,
        to_environment_id: r.get(8)?,
        to: r.get(9)?,
        to_critical: r.get(10)?,
        status: r.get(11)?,
        source_deployment_id: r.get(12)?,
        version: r.get(13)?,
        artifact: r.get(14)?,
        sha256: r.get(15)?,
        source_config_revision: r.get(16)?,
        target_deployment_id: r.get(17)?,
        target_config_revision: r.get(18)?,
        required_approvals: r.get(19)?,
        requested_by: r.get(20)?,
        requested_at: r.get(21)?,
        comment: r.get(22)?,
        decided_by: r.get(23)?,
        decided_at: r.get(24)?,
        reason: r.get(25)?,
        applied_deployment_id: r.get(26)?,
        applied_revision: r.get(27)?,
    })
}

impl Tx<'_> {
    /// Inserts a promotion (its status and captured state as given) and returns its id.
    pub fn insert_promotion(&self, m: &PromotionRow) -> Result<i64> {
        self.exec(
            "INSERT INTO promotions (integration_id, from_environment_id, to_environment_id, status, \
                source_deployment_id, version, artifact, sha256, source_config_revision, \
                target_deployment_id, target_config_revision, required_approvals, \
                requested_by, requested_at, comment) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
                m.integration_id,
                m.from_environment_id,
                m.to_environment_id,
                m.status,
                m.source_deployment_id,
                m.version,
                m.artifact,
                m.sha256,
                m.source_config_revision,
                m.target_deployment_id,
                m.target_config_revision,
                m.required_approvals,
                m.requested_by,
                m.requested_at,
                m.comment
            ],
        )?;
        Ok(self.tx.last_insert_rowid()?)
    }

    pub fn promotion(&self, id: i64) -> Result<Option<PromotionRow>> {
        let mut st = self
            .tx
            .prepare_cached(&format!("{PROMOTION_SELECT} WHERE m.id = ?1"))?;
        Ok(st.query_row([id], promotion).optional()?)
    }

    /// The id of the pending promotion of an integration into an environment, if any.
    pub fn pending_promotion(
        &self,
        integration_id: i64,
        to_environment_id: i64,
    ) -> Result<Option<i64>> {
        Ok(self
            .row(
                "SELECT id FROM promotions WHERE integration_id = ?1 AND to_environment_id = ?2 \
                 AND status = 'pending'",
                params![integration_id, to_environment_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Up to `limit` visible promotions older than `before`, newest first,
    /// of one integration and in one status when given, and how many match.
    pub fn promotion_page(
        &self,
        vis: &Visibility,
        integration_id: Option<i64>,
        status: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<(Vec<PromotionRow>, i64)> {
        let json = |ids: &[i64]| serde_json::Value::from(ids.to_vec()).to_string();
        let (p, i, e) = (
            json(&vis.projects),
            json(&vis.integrations),
            json(&vis.environments),
        );
        let mut st = self.tx.prepare_cached(&format!(
            "{PROMOTION_SELECT} WHERE {PROMOTION_WHERE} ORDER BY m.id DESC LIMIT ?8"
        ))?;
        let rows = st
            .query_map(
                params![
                    vis.everything,
                    p,
                    i,
                    e,
                    integration_id,
                    status,
                    before,
                    limit
                ],
                promotion,
            )?
            .collect::<db::Result<_>>()?;
        let total = self.row(
            &format!(
                "SELECT COUNT(*) FROM promotions m JOIN integrations i ON i.id = m.integration_id \
                 WHERE {PROMOTION_WHERE}"
            ),
            params![vis.everything, p, i, e, integration_id, status, None::<i64>],
            |r| r.get(0),
        )?;
        Ok((rows, total))
    }

    /// Every pending promotion visible as `vis` says (through the status
    /// index: the pending ones, not the whole history).
    pub fn pending_promotions(&self, vis: &Visibility) -> Result<Vec<PromotionRow>> {
        let json = |ids: &[i64]| serde_json::Value::from(ids.to_vec()).to_string();
        let mut st = self.tx.prepare_cached(&format!(
            "{PROMOTION_SELECT} WHERE m.status = 'pending' AND {PROMOTION_WHERE}"
        ))?;
        let rows = st.query_map(
            params![
                vis.everything,
                json(&vis.projects),
                json(&vis.integrations),
                json(&vis.environments),
                None::<i64>,
                None::<&str>,
                None::<i64>
            ],
            promotion,
        )?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    /// The ids of the pending promotions `username` has approved (through
    /// the status index).
    pub fn pending_approved_by(&self, username: &str) -> Result<HashSet<i64>> {
        let mut st = self.tx.prepare_cached(
            "SELECT m.id FROM promotions m JOIN promotion_approvals a \
             ON a.promotion_id = m.id AND a.username = ?1 WHERE m.status = 'pending'",
        )?;
        let ids = st.query_map([username], |r| r.get(0))?;
        Ok(ids.collect::<db::Result<_>>()?)
    }

    /// Ends a pending promotion: `rejected`, `cancelled` or `failed`, by whom, when, why.
    pub fn end_promotion(
        &self,
        id: i64,
        status: &str,
        by: &str,
        at: Millis,
        reason: Option<&str>,
    ) -> Result<()> {
        self.exec(
            "UPDATE promotions SET status = ?2, decided_by = ?3, decided_at = ?4, reason = ?5 \
             WHERE id = ?1 AND status = 'pending'",
            params![id, status, by, at, reason],
        )?;
        Ok(())
    }

    /// Marks a promotion applied, with the record and revision it wrote.
    pub fn promotion_applied(
        &self,
        id: i64,
        by: &str,
        at: Millis,
        deployment_id: i64,
        revision: Option<i64>,
    ) -> Result<()> {
        self.exec(
            "UPDATE promotions SET status = 'applied', decided_by = ?2, decided_at = ?3, \
                applied_deployment_id = ?4, applied_revision = ?5 WHERE id = ?1",
            params![id, by, at, deployment_id, revision],
        )?;
        Ok(())
    }

    pub fn insert_promotion_override(&self, promotion_id: i64, v: &StoredValue) -> Result<()> {
        self.exec(
            "INSERT INTO promotion_overrides (promotion_id, section, key, type, secret, value, sealed) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                promotion_id,
                v.section,
                v.key,
                v.value_type.as_str(),
                v.secret,
                v.value,
                v.sealed
            ],
        )?;
        Ok(())
    }

    /// A promotion's overrides by section and key, set by its requester when it was requested.
    pub fn promotion_overrides(&self, promotion_id: i64) -> Result<Vec<StoredValue>> {
        let mut st = self.tx.prepare_cached(
            "SELECT o.section, o.key, o.type, o.secret, o.value, o.sealed, m.requested_by, m.requested_at \
             FROM promotion_overrides o JOIN promotions m ON m.id = o.promotion_id \
             WHERE o.promotion_id = ?1 ORDER BY o.section, o.key",
        )?;
        let rows = st.query_map([promotion_id], super::pipeline::stored_value)?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    pub fn insert_promotion_approval(
        &self,
        promotion_id: i64,
        username: &str,
        at: Millis,
        comment: &str,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO promotion_approvals (promotion_id, username, at, comment) VALUES (?1, ?2, ?3, ?4)",
            params![promotion_id, username, at, comment],
        )?;
        Ok(())
    }

    /// A promotion's approvals, in the order they were given.
    pub fn promotion_approvals(&self, promotion_id: i64) -> Result<Vec<Approval>> {
        let mut st = self.tx.prepare_cached(
            "SELECT username, at, comment FROM promotion_approvals WHERE promotion_id = ?1 \
             ORDER BY at, rowid",
        )?;
        let rows = st.query_map([promotion_id], |r| {
            Ok(Approval {
                user: r.get(0)?,
                at: r.get(1)?,
                comment: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<db::Result<_>>()?)
    }
}
