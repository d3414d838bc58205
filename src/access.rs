//! Who may do what: permissions, roles, scoped role assignments, and the
//! check every management request makes.
//!
//! A role is a set of permissions. A role is assigned to a user or a group
//! at a scope: the whole organization, one project, one environment or one
//! integration. A grant applies to a target (a project, an integration in an
//! environment, ...) when its scope is the organization or names one of the
//! target's parts. Acting in a critical environment needs
//! `environment:manage`; other environments accept
//! `environment:manage-non-production` as well.

use std::collections::BTreeSet;

use serde::Serialize;

/// One permission. The string form is what the API and the database use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
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

/// The built-in roles and their permissions.
pub fn builtin_roles() -> Vec<(&'static str, &'static str, Vec<Permission>)> {
    use Permission::*;
    vec![
        (
            "Super Admin",
            "Everything, including users and roles",
            Permission::ALL.to_vec(),
        ),
        (
            "Admin",
            "Everything except user management",
            vec![
                IntegrationView,
                IntegrationEdit,
                IntegrationManage,
                EnvironmentManage,
                EnvironmentManageNonProduction,
                ProjectView,
                ProjectEdit,
                ProjectManage,
                ObservabilityView,
            ],
        ),
        (
            "Developer",
            "Build and operate integrations in non-production environments",
            vec![
                IntegrationView,
                IntegrationEdit,
                IntegrationManage,
                EnvironmentManageNonProduction,
                ProjectView,
                ObservabilityView,
            ],
        ),
        (
            "Project Admin",
            "Manage one project (assign at project scope)",
            vec![
                ProjectView,
                ProjectEdit,
                ProjectManage,
                IntegrationView,
                IntegrationEdit,
                IntegrationManage,
                EnvironmentManageNonProduction,
                ObservabilityView,
            ],
        ),
        (
            "Viewer",
            "Read-only",
            vec![ProjectView, IntegrationView, ObservabilityView],
        ),
    ]
}

/// A signed-in user and everything they were granted.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: i64,
    pub username: String,
    pub grants: Vec<Grant>,
    /// The user must change the password before doing anything else.
    pub must_change_password: bool,
}

fn scope_covers(scope: Scope, t: &Target) -> bool {
    match scope {
        Scope::Organization => true,
        Scope::Project(id) => t.project == Some(id),
        Scope::Integration(id) => t.integration == Some(id),
        Scope::Environment(id) => t.environment == Some(id),
    }
}

impl Principal {
    /// Whether some grant covering `target` holds `perm`.
    pub fn has(&self, perm: Permission, target: &Target) -> bool {
        self.grants
            .iter()
            .any(|g| g.permissions.contains(&perm) && scope_covers(g.scope, target))
    }

    /// Whether the user holds `perm` anywhere (used to show menus, and for
    /// lists that are filtered item by item afterwards).
    pub fn has_anywhere(&self, perm: Permission) -> bool {
        self.grants.iter().any(|g| g.permissions.contains(&perm))
    }

    /// Acting on a target in an environment: `perm` on the target, plus the
    /// environment permission its criticality demands.
    pub fn may_act(&self, perm: Permission, target: &Target) -> bool {
        if !self.has(perm, target) {
            return false;
        }
        if target.environment.is_none() {
            return true;
        }
        self.has(Permission::EnvironmentManage, target)
            || (!target.critical && self.has(Permission::EnvironmentManageNonProduction, target))
    }

    /// Organization-wide permissions, for the login response.
    pub fn permission_summary(&self) -> Vec<serde_json::Value> {
        self.grants
            .iter()
            .map(|g| {
                let (kind, id) = g.scope.parts();
                serde_json::json!({
                    "scope": kind, "scopeId": id.map(|id| id.to_string()),
                    "permissions": g.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: &str, scope: Scope) -> Principal {
        let perms = builtin_roles().into_iter().find(|r| r.0 == role).unwrap().2;
        Principal {
            user_id: 1,
            username: "u".into(),
            grants: vec![Grant {
                scope,
                permissions: perms.into_iter().collect(),
            }],
            must_change_password: false,
        }
    }

    fn target(project: i64, env: i64, critical: bool) -> Target {
        Target {
            project: Some(project),
            integration: Some(project * 10),
            environment: Some(env),
            critical,
        }
    }

    #[test]
    fn rbac_matrix_for_stopping_a_listener() {
        let dev = target(1, 1, false);
        let prod = target(1, 2, true);
        let other_project_dev = target(2, 1, false);
        let viewer = principal("Viewer", Scope::Organization);
        let developer = principal("Developer", Scope::Organization);
        let project_admin = principal("Project Admin", Scope::Project(1));
        let admin = principal("Admin", Scope::Organization);
        for t in [dev, prod, other_project_dev] {
            assert!(!viewer.may_act(Permission::IntegrationManage, &t));
            assert!(admin.may_act(Permission::IntegrationManage, &t));
        }
        assert!(developer.may_act(Permission::IntegrationManage, &dev));
        assert!(!developer.may_act(Permission::IntegrationManage, &prod));
        assert!(project_admin.may_act(Permission::IntegrationManage, &dev));
        assert!(!project_admin.may_act(Permission::IntegrationManage, &prod));
        assert!(!project_admin.may_act(Permission::IntegrationManage, &other_project_dev));
        assert!(!admin.has(Permission::UserManage, &Target::organization()));
        assert!(principal("Super Admin", Scope::Organization)
            .has(Permission::UserManage, &Target::organization()));
    }

    #[test]
    fn permission_names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
    }
}
