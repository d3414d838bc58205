//! Runtimes, their status and what they run, as stored and listed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::time::{serialize_rfc3339, Millis};

/// Whether heartbeats are arriving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Running,
    Offline,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "RUNNING",
            Status::Offline => "OFFLINE",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        match text.to_ascii_uppercase().as_str() {
            "RUNNING" => Some(Status::Running),
            "OFFLINE" => Some(Status::Offline),
            _ => None,
        }
    }
}

/// One runtime (a node of an integration in an environment).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeRecord {
    pub runtime_id: String,
    pub name: Option<String>,
    pub status: Status,
    pub environment: String,
    pub project: String,
    pub integration: String,
    pub runtime_type: String,
    pub version: Option<String>,
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub last_heartbeat: Millis,
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub registered_at: Millis,
    #[serde(skip)]
    pub key_id: String,
    #[serde(skip)]
    pub environment_id: i64,
    #[serde(skip)]
    pub project_id: i64,
    #[serde(skip)]
    pub integration_id: i64,
    /// How it compares with what should run (filled by the runtime views).
    #[serde(flatten)]
    pub rollout: Option<Rollout>,
}

/// A runtime against its environment's deployment record and configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// The version of the current deployment record of its integration in
    /// its environment; null when there is none.
    pub deployed_version: Option<String>,
    /// Whether the version it reports differs from `deployedVersion`; null
    /// when there is no record.
    pub version_mismatch: Option<bool>,
    /// The configuration revision it last fetched (`GET /icp/config`):
    /// by its runtime id, else its node name, else its secret; null if never.
    pub config_revision: Option<i64>,
    #[serde(serialize_with = "crate::time::serialize_opt_rfc3339")]
    #[schemars(with = "Option<String>")]
    pub config_fetched_at: Option<Millis>,
    /// The current configuration revision of its integration in its
    /// environment; null when none was ever written.
    pub current_config_revision: Option<i64>,
    /// Whether it fetched an older revision than the current one (a restart
    /// would apply the new one); null when there is no revision or it never fetched.
    pub config_outdated: Option<bool>,
}

impl Rollout {
    /// Compares what a runtime reports and fetched with what is current.
    pub fn new(
        version: Option<&str>,
        deployed_version: Option<String>,
        fetched: Option<(i64, Millis)>,
        current_config_revision: Option<i64>,
    ) -> Rollout {
        Rollout {
            version_mismatch: deployed_version.as_deref().map(|d| version != Some(d)),
            deployed_version,
            config_revision: fetched.map(|f| f.0),
            config_fetched_at: fetched.map(|f| f.1),
            config_outdated: current_config_revision
                .zip(fetched)
                .map(|(current, (got, _))| got < current),
            current_config_revision,
        }
    }
}

/// Everything `runtime show` prints.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeDetail {
    #[serde(flatten)]
    pub runtime: RuntimeRecord,
    pub secret_key_id: String,
    pub node_info: Value,
    pub try_it_host: Option<String>,
    pub artifacts: Artifacts,
    pub log_levels: BTreeMap<String, String>,
    pub status_history: Vec<StatusChange>,
    /// An MI runtime's Management API address, as its heartbeat claims.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub management: Option<super::mi::ManagementAddress>,
    /// An MI runtime's artifacts by kind (absent for other runtimes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mi_artifacts: Option<BTreeMap<super::mi::MiKind, Vec<super::mi::MiArtifact>>>,
}

/// One RUNNING/OFFLINE transition.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub status: Status,
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub at: Millis,
    pub reason: String,
}

/// What a runtime reports it runs. Unknown artifact kinds (Micro Integrator
/// reports APIs, proxies, ...) are kept as they came in `other`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifacts {
    #[serde(default)]
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<Value>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A listener (an HTTP port, a queue consumer, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    pub name: String,
    #[serde(default)]
    pub package: Option<String>,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<i64>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(flatten)]
    pub attributes: Map<String, Value>,
}

/// A service's reference to a listener: `{"name": "listener_1"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListenerRef {
    pub name: String,
}

/// One resource (path and methods) of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    #[serde(default)]
    pub methods: Vec<String>,
    pub url: String,
    #[serde(flatten)]
    pub attributes: Map<String, Value>,
}

/// A service with its resources and the listeners it is attached to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub name: String,
    #[serde(default)]
    pub base_path: Option<String>,
    #[serde(default)]
    pub package: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub listeners: Vec<ListenerRef>,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(flatten)]
    pub attributes: Map<String, Value>,
}

/// Filters of `runtime list`; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct RuntimeFilter {
    pub environment: Option<String>,
    pub project: Option<String>,
    pub integration: Option<String>,
    pub status: Option<Status>,
}

/// Filters of `GET /api/v1/runtimes`; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct RuntimeQuery {
    pub environment: Option<String>,
    pub project: Option<String>,
    pub integration: Option<String>,
    pub status: Option<Status>,
    /// `BI` or `MI`.
    pub runtime_type: Option<String>,
    /// Text to find in the runtime id or node name (case-insensitive).
    pub text: Option<String>,
}

/// A runtime as ICP's lists show it: its record, node info and (MI) the
/// Management API address it reports.
#[derive(Debug, Clone)]
pub struct RuntimeListed {
    pub record: RuntimeRecord,
    pub node_info: Value,
    pub management_host: Option<String>,
    pub management_port: Option<i64>,
}

/// Which runtimes an offset page lists, by row ids; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct RuntimeScope {
    pub environment_id: Option<i64>,
    pub project_id: Option<i64>,
    pub integration_id: Option<i64>,
    pub status: Option<Status>,
    /// `BI` or `MI`.
    pub runtime_type: Option<String>,
}
