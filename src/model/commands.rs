//! Control commands and desired states, as stored.

use std::collections::BTreeMap;

use serde::Serialize;

use super::mi::MiArtifact;
use super::runtimes::{Artifacts, RuntimeRecord};
use crate::time::Millis;

/// What a command acts on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A listener, by name; the value is `enabled` or `disabled`.
    Listener,
    /// A logger, by the component name the runtime reports in `logLevels`.
    Logger,
    /// An MI artifact's state (`enabled`/`disabled`), by `kind/name`.
    MiState,
    /// An MI artifact's tracing (`enabled`/`disabled`), by `kind/name`.
    MiTracing,
    /// An MI artifact's statistics (`enabled`/`disabled`), by `kind/name`.
    MiStatistics,
    /// An MI logger's level, by logger name (read back from MI, not from heartbeats).
    MiLogger,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Listener => "listener",
            Kind::Logger => "logger",
            Kind::MiState => "mi-state",
            Kind::MiTracing => "mi-tracing",
            Kind::MiStatistics => "mi-statistics",
            Kind::MiLogger => "mi-logger",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [
            Kind::Listener,
            Kind::Logger,
            Kind::MiState,
            Kind::MiTracing,
            Kind::MiStatistics,
            Kind::MiLogger,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Whether icpd carries this kind out through MI's Management API
    /// rather than in a heartbeat response.
    pub fn is_mi(self) -> bool {
        matches!(
            self,
            Kind::MiState | Kind::MiTracing | Kind::MiStatistics | Kind::MiLogger
        )
    }
}

/// Where a command stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum CommandStatus {
    /// Issued; the runtime has not reported the desired value yet.
    Pending,
    /// A full heartbeat reported the desired value.
    Converged,
    /// A newer request replaced it, or its runtime was replaced.
    Superseded,
}

impl CommandStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Pending => "PENDING",
            CommandStatus::Converged => "CONVERGED",
            CommandStatus::Superseded => "SUPERSEDED",
        }
    }

    pub fn parse(s: &str) -> Option<CommandStatus> {
        match s {
            "PENDING" => Some(CommandStatus::Pending),
            "CONVERGED" => Some(CommandStatus::Converged),
            "SUPERSEDED" => Some(CommandStatus::Superseded),
            _ => None,
        }
    }
}

/// One desired value, for all runtimes (`runtime_id` `None`) or one.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRow {
    pub kind: Kind,
    pub artifact: String,
    pub runtime_id: Option<String>,
    pub value: String,
    pub issued_by: String,
    pub issued_at: Millis,
}

/// One command as the log stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRow {
    /// Order of issue (the log's cursor).
    pub id: i64,
    pub command_id: String,
    pub runtime_id: String,
    pub integration_id: i64,
    pub environment_id: i64,
    pub kind: Kind,
    /// `START`, `STOP` or `SET_LOGGER_LEVEL`.
    pub action: String,
    /// The listener name or the logger's component name.
    pub target: String,
    /// The value the command establishes (`disabled`, `DEBUG`, ...).
    pub value: String,
    /// For SET_LOGGER_LEVEL: the JSON text the bridge expects as `payload`.
    pub payload: Option<String>,
    pub issued_by: String,
    pub issued_at: Millis,
    pub attempts: i64,
    pub last_sent_at: Option<Millis>,
    pub status: CommandStatus,
    pub settled_at: Option<Millis>,
    /// Why the last attempt failed (MI commands carried out by icpd).
    pub last_error: Option<String>,
}

/// A runtime of an integration in an environment, with what its last full heartbeat reported.
#[derive(Debug, Clone)]
pub struct ScopeRuntime {
    pub record: RuntimeRecord,
    pub artifacts: Artifacts,
    pub log_levels: BTreeMap<String, String>,
    /// An MI runtime's artifacts (empty for others).
    pub mi_artifacts: Vec<MiArtifact>,
}

/// The outcome of claiming a command's next delivery (several nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// This node delivers it: the attempt count is now `attempts`.
    Claimed { attempts: i64 },
    /// Another node delivered it first; still pending, as stored.
    Pending {
        attempts: i64,
        last_sent_at: Option<crate::time::Millis>,
    },
    /// No longer pending (settled, or gone with its runtime).
    Settled,
}
