//! SQL of ingest tokens (`ingest_tokens.rs` holds the rules).

use super::db;
use super::db::{params, OptionalExtension, Queries, Row};

use super::Tx;
use crate::error::Result;
use crate::model::access::Target;
use crate::model::pipeline::IngestTokenRow;
use crate::time::Millis;

const SELECT: &str = "SELECT t.id, t.name, t.token_hash, t.environment_id, e.handle, e.critical, \
     t.project_id, p.handle, t.integration_id, i.handle, t.created_by, t.created_at, \
     t.last_used_at, t.revoked_at \
     FROM ingest_tokens t JOIN environments e ON e.id = t.environment_id \
     LEFT JOIN projects p ON p.id = t.project_id \
     LEFT JOIN integrations i ON i.id = t.integration_id";

fn from_row(r: &Row) -> db::Result<IngestTokenRow> {
    Ok(IngestTokenRow {
        id: r.get(0)?,
        name: r.get(1)?,
        token_hash: r.get(2)?,
        environment_id: r.get(3)?,
        environment: r.get(4)?,
        critical: r.get(5)?,
        project_id: r.get(6)?,
        project: r.get(7)?,
        integration_id: r.get(8)?,
        integration: r.get(9)?,
        created_by: r.get(10)?,
        created_at: r.get(11)?,
        last_used_at: r.get(12)?,
        revoked_at: r.get(13)?,
    })
}

impl IngestTokenRow {
    /// Where the token belongs, as an access target.
    pub fn target(&self) -> Target {
        Target {
            project: self.project_id,
            integration: self.integration_id,
            environment: Some(self.environment_id),
            critical: self.critical,
        }
    }
}

impl Tx<'_> {
    pub fn insert_ingest_token(&self, t: &IngestTokenRow) -> Result<()> {
        self.exec(
            "INSERT INTO ingest_tokens (id, name, token_hash, environment_id, project_id, integration_id, \
             created_by, created_at, last_used_at, revoked_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                t.id,
                t.name,
                t.token_hash,
                t.environment_id,
                t.project_id,
                t.integration_id,
                t.created_by,
                t.created_at,
                t.last_used_at,
                t.revoked_at
            ],
        )?;
        Ok(())
    }

    pub fn ingest_token(&self, id: &str) -> Result<Option<IngestTokenRow>> {
        let mut st = self
            .tx
            .prepare_cached(&format!("{SELECT} WHERE t.id = ?1"))?;
        Ok(st.query_row([id], from_row).optional()?)
    }

    /// Every ingest token, newest first.
    pub fn ingest_tokens(&self) -> Result<Vec<IngestTokenRow>> {
        let mut st = self
            .tx
            .prepare_cached(&format!("{SELECT} ORDER BY t.created_at DESC, t.id"))?;
        let rows = st.query_map([], from_row)?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    /// Revokes a token; false if it was already revoked or does not exist.
    pub fn revoke_ingest_token(&self, id: &str, now: Millis) -> Result<bool> {
        let n = self.exec(
            "UPDATE ingest_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now],
        )?;
        Ok(n == 1)
    }

    pub fn touch_ingest_token(&self, id: &str, now: Millis) -> Result<()> {
        self.exec(
            "UPDATE ingest_tokens SET last_used_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
        Ok(())
    }
}
