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

pub use crate::model::access::*;

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
    pub fn permission_summary(&self) -> Vec<GrantView> {
        self.grants
            .iter()
            .map(|g| {
                let (kind, id) = g.scope.parts();
                GrantView {
                    scope: kind.to_string(),
                    scope_id: id.map(|id| id.to_string()),
                    permissions: g.permissions.iter().map(|p| p.as_str()).collect(),
                }
            })
            .collect()
    }
}

/// Permissions held at one scope, as the API shows them.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantView {
    /// `organization`, `project`, `environment` or `integration`.
    pub scope: String,
    pub scope_id: Option<String>,
    pub permissions: Vec<&'static str>,
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
