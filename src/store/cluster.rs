//! The store's part in running several nodes on one database: the change
//! feed, leases timed by the database's clock, and facts every node must
//! agree on. See `crate::cluster` for how the nodes use them, and
//! `model::cluster` for what a change says.
//!
//! The feed is written only on PostgreSQL (SQLite has one serving node by
//! construction): [`Tx::record_change`] appends a row in the caller's
//! transaction and queues one `NOTIFY` for its commit. Every write
//! transaction holds the write lock from its first statement to its
//! commit, so sequence numbers are handed out in commit order: a reader
//! that asks for rows after the last one it saw never skips one that
//! commits later.

use super::db::{params, OptionalExtension, Queries};
use super::{Engine, Store, Tx};
use crate::error::{Error, Result};
use crate::model::cluster::{Change, ChangeRow, LeaseState};
use crate::time::Millis;

/// The channel the feed's `NOTIFY` goes to.
pub const CHANGES_CHANNEL: &str = "icpd_changes";

/// The database's clock in Unix milliseconds, in each dialect.
fn db_now(tx: &Tx) -> &'static str {
    match tx.tx.dialect() {
        super::db::Dialect::Sqlite => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
        super::db::Dialect::Postgres => {
            "CAST(extract(epoch from clock_timestamp()) * 1000 AS BIGINT)"
        }
    }
}

impl Tx<'_> {
    /// Appends `change` to the feed, for the other nodes (PostgreSQL
    /// only), and wakes their listeners when this transaction commits.
    pub fn record_change(&self, change: &Change, at: Millis) -> Result<()> {
        let Some(node) = self.node else {
            return Ok(());
        };
        let body = serde_json::to_string(change)
            .map_err(|e| Error::Internal(format!("encoding a cluster change: {e}")))?;
        self.exec(
            "INSERT INTO cluster_changes (at, node, body) VALUES (?1, ?2, ?3)",
            params![at, node, body],
        )?;
        if let Some(recorded) = self.recorded {
            recorded.set(true);
        }
        Ok(())
    }

    /// Up to `limit` changes after `seq`, in order. A body this icpd
    /// cannot read (written by a newer one) is skipped with a warning.
    pub fn changes_after(&self, seq: i64, limit: i64) -> Result<Vec<ChangeRow>> {
        let mut st = self.tx.prepare_cached(
            "SELECT seq, node, body FROM cluster_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = st.query_map(params![seq, limit], |r| {
            let row: (i64, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
            Ok(row)
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, node, body) = row?;
            match serde_json::from_str::<Change>(&body) {
                Ok(change) => out.push(ChangeRow { seq, node, change }),
                Err(e) => log::warn!("skipping cluster change {seq} from {node}: {e}"),
            }
        }
        Ok(out)
    }

    /// The newest change's sequence number (0 when there is none).
    pub fn last_change_seq(&self) -> Result<i64> {
        Ok(self.row(
            "SELECT COALESCE(MAX(seq), 0) FROM cluster_changes",
            [],
            |r| r.get(0),
        )?)
    }

    /// Deletes changes made before `before`; returns how many.
    pub fn prune_changes(&self, before: Millis) -> Result<usize> {
        Ok(self.exec("DELETE FROM cluster_changes WHERE at < ?1", [before])?)
    }

    /// Takes lease `name` for `holder` for `ttl_ms` by the database's
    /// clock, or renews it when `holder` has it; a lease that ran out may
    /// be taken by anyone. A new holder gets the next epoch.
    pub fn take_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<LeaseState> {
        let now = db_now(self);
        let sql = format!(
            "INSERT INTO cluster_leases (name, holder, epoch, expires_at) VALUES (?1, ?2, 1, {now} + ?3) \
             ON CONFLICT (name) DO UPDATE SET \
                epoch = CASE WHEN cluster_leases.holder = excluded.holder THEN cluster_leases.epoch \
                        ELSE cluster_leases.epoch + 1 END, \
                holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE cluster_leases.holder = excluded.holder OR cluster_leases.expires_at <= {now} \
             RETURNING epoch"
        );
        let epoch: Option<i64> = self
            .tx
            .prepare_cached(&sql)?
            .query_row(params![name, holder, ttl_ms], |r| r.get(0))
            .optional()?;
        if let Some(epoch) = epoch {
            return Ok(LeaseState::Held { epoch });
        }
        let sql = format!("SELECT holder, expires_at - {now} FROM cluster_leases WHERE name = ?1");
        let (holder, remaining_ms) = self.row(&sql, [name], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(LeaseState::Other {
            holder,
            remaining_ms,
        })
    }

    /// The fence: whether `holder` still holds lease `name` at `epoch`,
    /// by the database's clock now. A write that must come from the
    /// leader checks this first, inside its transaction.
    pub fn holds_lease(&self, name: &str, holder: &str, epoch: i64) -> Result<bool> {
        let sql = format!(
            "SELECT 1 FROM cluster_leases WHERE name = ?1 AND holder = ?2 AND epoch = ?3 AND expires_at > {}",
            db_now(self)
        );
        Ok(self
            .tx
            .prepare_cached(&sql)?
            .exists(params![name, holder, epoch])?)
    }

    /// Gives lease `name` up if `holder` has it (a node stopping), so the
    /// next node need not wait for it to run out.
    pub fn release_lease(&self, name: &str, holder: &str) -> Result<bool> {
        Ok(self.exec(
            "DELETE FROM cluster_leases WHERE name = ?1 AND holder = ?2",
            params![name, holder],
        )? == 1)
    }

    /// A fact every node must agree on, if recorded.
    pub fn cluster_fact(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .tx
            .prepare_cached("SELECT value FROM cluster_facts WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    /// Records a fact unless one is recorded; returns the recorded value.
    pub fn settle_cluster_fact(&self, key: &str, value: &str) -> Result<String> {
        self.exec(
            "INSERT INTO cluster_facts (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
            params![key, value],
        )?;
        self.cluster_fact(key)?
            .ok_or_else(|| Error::Internal(format!("cluster fact {key} vanished")))
    }
}

impl Store {
    /// PostgreSQL: how this process's writes share transactions (group
    /// commit).
    pub fn write_sharing(&self) -> Option<super::postgres::WriteSharing> {
        match &self.engine {
            Engine::Postgres(p) => Some(p.write_sharing()),
            Engine::Sqlite(_) => None,
        }
    }

    /// Whether several nodes can share this database (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self.engine, Engine::Postgres(_))
    }

    /// Names this handle's node in the changes it records (the serving
    /// node's id; admin commands keep the default, `admin`).
    pub fn set_node(&self, node: &str) {
        let _ = self.node.set(node.to_owned());
    }

    /// The node's id in changes it records.
    pub fn node(&self) -> &str {
        self.node.get().map_or("admin", String::as_str)
    }

    /// Waits up to `timeout` for a change notification (PostgreSQL);
    /// see [`super::postgres::Postgres::listener`].
    pub fn change_listener(&self) -> Option<super::postgres::Listener> {
        match &self.engine {
            Engine::Postgres(p) => Some(p.listener(CHANGES_CHANNEL)),
            Engine::Sqlite(_) => None,
        }
    }
}

impl Tx<'_> {
    /// The stored last-seen times of `ids` (those that still exist).
    pub fn last_heartbeats(&self, ids: &[String]) -> Result<Vec<(String, Millis)>> {
        let mut out = Vec::with_capacity(ids.len());
        match self.tx.dialect() {
            super::db::Dialect::Sqlite => {
                let mut st = self.tx.prepare_cached(
                    "SELECT runtime_id, last_heartbeat FROM runtimes WHERE runtime_id = ?1",
                )?;
                for id in ids {
                    if let Some(row) = st
                        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?
                    {
                        out.push(row);
                    }
                }
            }
            // One statement per chunk: a round trip per runtime would cost
            // more than the sweep it prepares.
            super::db::Dialect::Postgres => {
                let mut st = self.tx.prepare_cached(
                    "SELECT r.runtime_id, r.last_heartbeat FROM runtimes r \
                     JOIN jsonb_array_elements_text(CAST(CAST(?1 AS TEXT) AS jsonb)) s(id) ON r.runtime_id = s.id",
                )?;
                for chunk in ids.chunks(5_000) {
                    let list = serde_json::Value::from(chunk.to_vec()).to_string();
                    let rows = st.query_map([list], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    for row in rows {
                        out.push(row?);
                    }
                }
            }
        }
        Ok(out)
    }
}
