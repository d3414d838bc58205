//! Permissions, scopes and grants: who may do what, where.

use std::collections::BTreeSet;

use serde::Serialize;

/// One permission. The string form is what the API and the database use.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
pub enum Permission {
    #[serde(rename = "integration:view")]
    IntegrationView,
    #[serde(rename = "integration:edit")]
    IntegrationEdit,
    #[serde(rename = "integration:manage")]
    IntegrationManage,
    #[serde(rename = "environment:manage")]
    EnvironmentManage,
    #[serde(rename = "environment:manage-non-production")]
    EnvironmentManageNonProduction,
    #[serde(rename = "project:view")]
    ProjectView,
    #[serde(rename = "project:edit")]
    ProjectEdit,
    #[serde(rename = "project:manage")]
    ProjectManage,
    #[serde(rename = "observability:view")]
    ObservabilityView,
    #[serde(rename = "user:manage")]
    UserManage,
}

impl Permission {
    pub const ALL: [Permission; 10] = [
        Permission::IntegrationView,
        Permission::IntegrationEdit,
        Permission::IntegrationManage,
        Permission::EnvironmentManage,
        Permission::EnvironmentManageNonProduction,
        Permission::ProjectView,
        Permission::ProjectEdit,
        Permission::ProjectManage,
        Permission::ObservabilityView,
        Permission::UserManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::IntegrationView => "integration:view",
            Permission::IntegrationEdit => "integration:edit",
            Permission::IntegrationManage => "integration:manage",
            Permission::EnvironmentManage => "environment:manage",
            Permission::EnvironmentManageNonProduction => "environment:manage-non-production",
            Permission::ProjectView => "project:view",
            Permission::ProjectEdit => "project:edit",
            Permission::ProjectManage => "project:manage",
            Permission::ObservabilityView => "observability:view",
            Permission::UserManage => "user:manage",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Where a role assignment applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Organization,
    Project(i64),
    Environment(i64),
    Integration(i64),
}

impl Scope {
    /// (`organization` | `project` | `environment` | `integration`, id).
    pub fn parts(self) -> (&'static str, Option<i64>) {
        match self {
            Scope::Organization => ("organization", None),
            Scope::Project(id) => ("project", Some(id)),
            Scope::Environment(id) => ("environment", Some(id)),
            Scope::Integration(id) => ("integration", Some(id)),
        }
    }

    pub fn from_parts(kind: &str, id: Option<i64>) -> Option<Scope> {
        match (kind, id) {
            ("organization", _) => Some(Scope::Organization),
            ("project", Some(id)) => Some(Scope::Project(id)),
            ("environment", Some(id)) => Some(Scope::Environment(id)),
            ("integration", Some(id)) => Some(Scope::Integration(id)),
            _ => None,
        }
    }
}

/// What a request acts on. Unknown parts are `None` (listing projects has no environment).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Target {
    pub project: Option<i64>,
    pub integration: Option<i64>,
    pub environment: Option<i64>,
    /// Whether `environment` is critical.
    pub critical: bool,
}

impl Target {
    pub fn organization() -> Target {
        Target::default()
    }
}

/// One role's permissions at one scope, as held by a user directly or through a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub scope: Scope,
    pub permissions: BTreeSet<Permission>,
}
