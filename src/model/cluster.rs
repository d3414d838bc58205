//! Several icpd nodes on one database: what one node tells the others
//! through the database (the change feed), and who leads.
//!
//! On PostgreSQL the store appends a [`Change`] to the feed in the same
//! transaction as the write it describes, so a node that reads the feed in
//! order sees changes in commit order and never one whose write rolled
//! back. Each node applies the changes other nodes made to its memory (the
//! liveness table, the pending commands) and republishes them as live
//! events to its own subscribers. See `crate::cluster`.

use serde::{Deserialize, Serialize};

use crate::model::runtimes::Status;
use crate::time::Millis;

/// One change a node made, as the others need to hear of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A runtime registered (`created`) or its row changed in a full
    /// heartbeat: its secret, hash and name slot as now stored.
    Runtime {
        runtime_id: String,
        key_id: String,
        hash: Option<String>,
        /// The status it registered with (`created` only).
        status: Option<Status>,
        /// (integration, environment, name) of a named runtime.
        slot: Option<(i64, i64, String)>,
        created: bool,
        at: Millis,
    },
    /// A runtime became RUNNING or OFFLINE.
    Status {
        runtime_id: String,
        status: Status,
        at: Millis,
    },
    /// A runtime's row was deleted (by an operator, or replaced), from
    /// (integration, environment).
    Removed {
        runtime_id: String,
        at: Millis,
        scope: Option<(i64, i64)>,
    },
    /// A command was issued (`settled` false) or settled.
    Command {
        runtime_id: String,
        command_id: String,
        settled: bool,
        at: Millis,
    },
}

/// A change as read back from the feed.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    /// Its place in commit order.
    pub seq: i64,
    /// The node that made it.
    pub node: String,
    pub change: Change,
}

/// The outcome of trying to take or renew a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// This node holds it: `epoch` fences its writes; it runs out
    /// `ttl_ms` after the attempt began, by the database's clock.
    Held { epoch: i64 },
    /// Another node holds it for `remaining_ms` more.
    Other { holder: String, remaining_ms: i64 },
}
