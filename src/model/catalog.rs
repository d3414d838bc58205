//! Projects, integrations and environments, and what a caller may see of them.

use serde::Serialize;

use super::access::Target;
use crate::time::{serialize_rfc3339, Millis};

/// Where runtimes run: `dev`, `prod`, ... A critical environment needs stronger permissions to act on.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    #[serde(skip)]
    pub id: i64,
    pub handle: String,
    pub name: String,
    pub critical: bool,
    #[serde(serialize_with = "crate::time::serialize_rfc3339")]
    #[schemars(with = "String")]
    pub created_at: Millis,
}

/// A group of integrations.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    #[serde(skip)]
    pub id: i64,
    pub handle: String,
    pub name: String,
}

/// One deployable integration (a "component" in the bridge protocol).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Integration {
    #[serde(skip)]
    pub id: i64,
    #[serde(skip)]
    pub project_id: i64,
    pub handle: String,
    pub name: String,
    pub runtime_type: String,
}

/// The ids one permission is held on, per scope kind, so the store can
/// filter a list in SQL exactly as [`Principal::has`] would row by row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Visibility {
    /// Held at organization scope: everything is visible.
    pub everything: bool,
    pub projects: Vec<i64>,
    pub integrations: Vec<i64>,
    pub environments: Vec<i64>,
}

/// An environment as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentInfo {
    #[serde(skip)]
    pub id: i64,
    pub handle: String,
    pub name: String,
    pub critical: bool,
    pub description: String,
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub created_at: Millis,
    /// The handle of the data plane it sits on.
    pub data_plane: String,
    /// How many users other than the requester must approve a promotion
    /// into it (default: 1 when critical, else 0).
    pub required_approvals: i64,
}

/// A project as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectInfo {
    #[serde(skip)]
    pub id: i64,
    pub handle: String,
    pub name: String,
    pub description: String,
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub created_at: Millis,
}

impl ProjectInfo {
    /// The access target of this project.
    pub fn target(&self) -> Target {
        Target {
            project: Some(self.id),
            ..Target::default()
        }
    }
}

/// An integration as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationInfo {
    #[serde(skip)]
    pub id: i64,
    #[serde(skip)]
    pub project_id: i64,
    pub project: String,
    pub handle: String,
    pub name: String,
    pub runtime_type: String,
    pub description: String,
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub created_at: Millis,
}

impl IntegrationInfo {
    /// The access target of this integration (in no particular environment).
    pub fn target(&self) -> Target {
        Target {
            project: Some(self.project_id),
            integration: Some(self.id),
            ..Target::default()
        }
    }
}
