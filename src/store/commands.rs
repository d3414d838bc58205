//! Desired state and the command log: what operators asked listeners and
//! loggers to be, and every START/STOP/SET_LOGGER_LEVEL issued to a runtime.
//!
//! Also the read of everything one integration runs in one environment
//! (runtimes with their reported artifacts), which both the heartbeat-side
//! reconciliation and the artifacts view compare against.

use super::db;
use super::db::{params, OptionalExtension, Queries, Row};

use super::{
    artifacts, runtime_from_row, Tx, RUNTIME_COLUMNS, RUNTIME_COLUMN_COUNT, RUNTIME_JOINS,
};
use crate::error::Result;
use crate::model::commands::{CommandRow, CommandStatus, DesiredRow, Kind, ScopeRuntime};
use crate::time::Millis;

const COMMAND_COLUMNS: &str =
    "id, command_id, runtime_id, integration_id, environment_id, kind, action, target, value, \
     payload, issued_by, issued_at, attempts, last_sent_at, status, settled_at, last_error";

fn command_from_row(r: &Row) -> db::Result<CommandRow> {
    let kind: String = r.get(5)?;
    let status: String = r.get(14)?;
    Ok(CommandRow {
        id: r.get(0)?,
        command_id: r.get(1)?,
        runtime_id: r.get(2)?,
        integration_id: r.get(3)?,
        environment_id: r.get(4)?,
        kind: Kind::parse(&kind).unwrap_or(Kind::Listener),
        action: r.get(6)?,
        target: r.get(7)?,
        value: r.get(8)?,
        payload: r.get(9)?,
        issued_by: r.get(10)?,
        issued_at: r.get(11)?,
        attempts: r.get(12)?,
        last_sent_at: r.get(13)?,
        status: CommandStatus::parse(&status).unwrap_or(CommandStatus::Superseded),
        settled_at: r.get(15)?,
        last_error: r.get(16)?,
    })
}

impl Tx<'_> {
    // ---- desired state -------------------------------------------------

    /// Every desired value of an integration in an environment, overrides included.
    pub fn desired_states(
        &self,
        integration_id: i64,
        environment_id: i64,
    ) -> Result<Vec<DesiredRow>> {
        let mut st = self.tx.prepare_cached(
            "SELECT kind, artifact, runtime_id, value, issued_by, issued_at FROM desired_states \
             WHERE integration_id = ?1 AND environment_id = ?2 ORDER BY kind, artifact, runtime_id",
        )?;
        let rows = st.query_map(params![integration_id, environment_id], |r| {
            let kind: String = r.get(0)?;
            let runtime: String = r.get(2)?;
            Ok(DesiredRow {
                kind: Kind::parse(&kind).unwrap_or(Kind::Listener),
                artifact: r.get(1)?,
                runtime_id: (!runtime.is_empty()).then_some(runtime),
                value: r.get(3)?,
                issued_by: r.get(4)?,
                issued_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    /// Records a desired value (for all runtimes when `d.runtime_id` is `None`).
    pub fn set_desired(
        &self,
        integration_id: i64,
        environment_id: i64,
        d: &DesiredRow,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO desired_states (integration_id, environment_id, kind, artifact, runtime_id, value, issued_by, issued_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (integration_id, environment_id, kind, artifact, runtime_id) \
             DO UPDATE SET value = excluded.value, issued_by = excluded.issued_by, issued_at = excluded.issued_at",
            params![
                integration_id,
                environment_id,
                d.kind.as_str(),
                d.artifact,
                d.runtime_id.as_deref().unwrap_or(""),
                d.value,
                d.issued_by,
                d.issued_at
            ],
        )?;
        Ok(())
    }

    /// Drops the per-runtime overrides of one artifact (an integration-wide request replaces them).
    pub fn clear_desired_overrides(
        &self,
        integration_id: i64,
        environment_id: i64,
        kind: Kind,
        artifact: &str,
    ) -> Result<usize> {
        Ok(self.exec(
            "DELETE FROM desired_states WHERE integration_id = ?1 AND environment_id = ?2 \
             AND kind = ?3 AND artifact = ?4 AND runtime_id <> ''",
            params![integration_id, environment_id, kind.as_str(), artifact],
        )?)
    }

    // ---- commands ------------------------------------------------------

    pub fn insert_command(&self, c: &CommandRow) -> Result<i64> {
        self.exec(
            "INSERT INTO commands (command_id, runtime_id, integration_id, environment_id, kind, action, target, value, \
                payload, issued_by, issued_at, attempts, last_sent_at, status, settled_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
                c.command_id,
                c.runtime_id,
                c.integration_id,
                c.environment_id,
                c.kind.as_str(),
                c.action,
                c.target,
                c.value,
                c.payload,
                c.issued_by,
                c.issued_at,
                c.attempts,
                c.last_sent_at,
                c.status.as_str(),
                c.settled_at
            ],
        )?;
        let id = self.tx.last_insert_rowid()?;
        self.record_change(
            &crate::model::cluster::Change::Command {
                runtime_id: c.runtime_id.clone(),
                command_id: c.command_id.clone(),
                settled: false,
                at: c.issued_at,
            },
            c.issued_at,
        )?;
        Ok(id)
    }

    /// One command by its id, whatever its status.
    pub fn command(&self, command_id: &str) -> Result<Option<CommandRow>> {
        Ok(self
            .tx
            .prepare_cached(&format!(
                "SELECT {COMMAND_COLUMNS} FROM commands WHERE command_id = ?1"
            ))?
            .query_row([command_id], command_from_row)
            .optional()?)
    }

    /// The PENDING commands of one runtime, oldest first.
    pub fn pending_commands(&self, runtime_id: &str) -> Result<Vec<CommandRow>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {COMMAND_COLUMNS} FROM commands WHERE runtime_id = ?1 AND status = 'PENDING' ORDER BY id"
        ))?;
        let rows = st.query_map([runtime_id], command_from_row)?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    /// The newest command's id (0 when there is none): one step down the
    /// primary key.
    pub fn newest_command_id(&self) -> Result<i64> {
        Ok(self
            .tx
            .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM commands")?
            .query_row([], |r| r.get(0))?)
    }

    /// PENDING commands with an id above `after`, oldest first.
    pub fn pending_commands_after(&self, after: i64) -> Result<Vec<CommandRow>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {COMMAND_COLUMNS} FROM commands c WHERE id > ?1 AND status = 'PENDING' \
             AND EXISTS (SELECT 1 FROM runtimes r WHERE r.runtime_id = c.runtime_id) ORDER BY id"
        ))?;
        let rows = st.query_map([after], command_from_row)?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    /// Every PENDING command of a runtime that still exists, for the in-memory table at start-up.
    pub fn all_pending_commands(&self) -> Result<Vec<CommandRow>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {COMMAND_COLUMNS} FROM commands c WHERE status = 'PENDING' \
             AND EXISTS (SELECT 1 FROM runtimes r WHERE r.runtime_id = c.runtime_id) ORDER BY id"
        ))?;
        let rows = st.query_map([], command_from_row)?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    /// Updates delivery counters; with `status`, also settles the command.
    pub fn update_command(
        &self,
        command_id: &str,
        attempts: i64,
        last_sent_at: Option<Millis>,
        settle: Option<(CommandStatus, Millis)>,
    ) -> Result<()> {
        let (status, at) = match settle {
            Some((s, at)) => (Some(s.as_str()), Some(at)),
            None => (None, None),
        };
        let runtime_id: Option<String> = self
            .tx
            .prepare_cached(
                "UPDATE commands SET attempts = ?2, last_sent_at = ?3, status = COALESCE(?4, status), \
                 settled_at = COALESCE(?5, settled_at) WHERE command_id = ?1 RETURNING runtime_id",
            )?
            .query_row(params![command_id, attempts, last_sent_at, status, at], |r| r.get(0))
            .optional()?;
        if let (Some(runtime_id), Some(at)) = (runtime_id, at) {
            self.record_change(
                &crate::model::cluster::Change::Command {
                    runtime_id,
                    command_id: command_id.to_owned(),
                    settled: true,
                    at,
                },
                at,
            )?;
        }
        Ok(())
    }

    /// Claims the next delivery of a PENDING command this node knows at
    /// `attempts` (the row lock orders concurrent claims; one wins).
    pub fn claim_delivery(
        &self,
        command_id: &str,
        attempts: i64,
        now: Millis,
    ) -> Result<crate::model::commands::Delivery> {
        use crate::model::commands::Delivery;
        let claimed: Option<i64> = self
            .tx
            .prepare_cached(
                "UPDATE commands SET attempts = attempts + 1, last_sent_at = ?3 \
                 WHERE command_id = ?1 AND status = 'PENDING' AND attempts = ?2 RETURNING attempts",
            )?
            .query_row(params![command_id, attempts, now], |r| r.get(0))
            .optional()?;
        if let Some(attempts) = claimed {
            return Ok(Delivery::Claimed { attempts });
        }
        let stored: Option<(String, i64, Option<Millis>)> = self
            .tx
            .prepare_cached(
                "SELECT status, attempts, last_sent_at FROM commands WHERE command_id = ?1",
            )?
            .query_row([command_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        Ok(match stored {
            Some((status, attempts, last_sent_at)) if status == "PENDING" => Delivery::Pending {
                attempts,
                last_sent_at,
            },
            _ => Delivery::Settled,
        })
    }

    /// Settles every PENDING command of a runtime (one that was replaced) as SUPERSEDED.
    pub fn supersede_runtime_commands(&self, runtime_id: &str, now: Millis) -> Result<usize> {
        Ok(self.exec(
            "UPDATE commands SET status = 'SUPERSEDED', settled_at = ?2 WHERE runtime_id = ?1 AND status = 'PENDING'",
            params![runtime_id, now],
        )?)
    }

    /// One page of the command log of an integration in an environment, newest
    /// first, with the total; `before` is the `id` the previous page ended at.
    pub fn command_log(
        &self,
        integration_id: i64,
        environment_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<(Vec<CommandRow>, i64)> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {COMMAND_COLUMNS} FROM commands WHERE integration_id = ?1 AND environment_id = ?2 \
             AND (CAST(?3 AS BIGINT) IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4"
        ))?;
        let rows = st
            .query_map(
                params![integration_id, environment_id, before, limit],
                command_from_row,
            )?
            .collect::<db::Result<Vec<_>>>()?;
        let total: i64 = self
            .tx
            .prepare_cached(
                "SELECT COUNT(*) FROM commands WHERE integration_id = ?1 AND environment_id = ?2",
            )?
            .query_row(params![integration_id, environment_id], |r| r.get(0))?;
        Ok((rows, total))
    }

    // ---- what an integration runs in an environment --------------------

    /// The runtimes of an integration in an environment with what their last
    /// full heartbeat reported, ordered by name and id.
    pub fn scope_runtimes(
        &self,
        integration_id: i64,
        environment_id: i64,
    ) -> Result<Vec<ScopeRuntime>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {RUNTIME_COLUMNS}, r.main_artifact {RUNTIME_JOINS} \
             WHERE r.integration_id = ?1 AND r.environment_id = ?2 ORDER BY r.name, r.runtime_id"
        ))?;
        let rows = st
            .query_map(params![integration_id, environment_id], |r| {
                let main: Option<String> = r.get(RUNTIME_COLUMN_COUNT)?;
                Ok((runtime_from_row(r)?, main))
            })?
            .collect::<db::Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (record, main) in rows {
            let mut arts = artifacts::load(self.tx, &record.runtime_id)?;
            arts.main = main.and_then(|m| serde_json::from_str(&m).ok());
            let log_levels = artifacts::load_log_levels(self.tx, &record.runtime_id)?;
            let mi_artifacts = if record.runtime_type == "MI" {
                self.mi_artifacts(&record.runtime_id)?
            } else {
                Vec::new()
            };
            out.push(ScopeRuntime {
                record,
                artifacts: arts,
                log_levels,
                mi_artifacts,
            });
        }
        Ok(out)
    }
}
