//! Users, sessions, API tokens, roles, groups, role assignments and the
//! audit log.

use std::collections::{BTreeMap, BTreeSet};

use super::db;
use super::db::{params, OptionalExtension, Queries, Row};

use super::Tx;
use crate::error::Result;
use crate::model::access::{Grant, Permission, Scope};
use crate::time::Millis;

/// A user as stored (the password hash never leaves the auth module).
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub must_change_password: bool,
    pub failed_logins: i64,
    pub locked_until: Option<Millis>,
    pub created_at: Millis,
    /// `local`, `oidc` or `ldap` (see [`UserSource`]).
    pub source: String,
    /// The OIDC subject or the LDAP DN of a federated user.
    pub external_id: Option<String>,
    pub email: Option<String>,
    /// The last sign-in that read the user's directory groups.
    pub directory_checked_at: Option<Millis>,
}

/// A federated user's identity as a sign-in read it from the directory.
#[derive(Debug, Clone)]
pub struct DirectoryIdentity<'a> {
    pub source: &'a str,
    pub external_id: &'a str,
    pub display_name: &'a str,
    pub email: Option<&'a str>,
    pub groups: &'a [String],
}

/// A directory group's role at a scope (`sso_group_mappings`), with the
/// names it is shown by.
#[derive(Debug, Clone)]
pub struct SsoMappingRow {
    pub id: i64,
    /// `oidc`, `ldap`, or empty for both.
    pub source: String,
    pub group: String,
    pub role_id: i64,
    pub role: String,
    pub scope: Scope,
    pub project: Option<String>,
    pub environment: Option<String>,
    pub integration: Option<String>,
    /// `config` (the config file's) or `api`.
    pub origin: String,
    pub created_at: Millis,
}

/// An authorization request in flight (`sso_logins`).
#[derive(Debug, Clone)]
pub struct SsoLoginRow {
    pub nonce: String,
    pub verifier: String,
    pub created_at: Millis,
}

/// A session, looked up by the hash of its token.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub user_id: i64,
    pub csrf_token: String,
    pub expires_at: Millis,
}

/// A personal API token (its hash only).
#[derive(Debug, Clone)]
pub struct ApiTokenRow {
    pub id: String,
    pub user_id: i64,
    pub name: String,
    pub token_hash: String,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub last_used_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

/// A role and its permissions.
#[derive(Debug, Clone)]
pub struct RoleRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub builtin: bool,
    pub permissions: BTreeSet<Permission>,
}

/// A group and its members' ids.
#[derive(Debug, Clone)]
pub struct GroupRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub members: Vec<i64>,
}

/// A role assignment.
#[derive(Debug, Clone)]
pub struct AssignmentRow {
    pub id: i64,
    pub role_id: i64,
    pub user_id: Option<i64>,
    pub group_id: Option<i64>,
    pub scope: Scope,
    pub created_at: Millis,
}

/// A role a user holds, by a direct assignment or through a group, with
/// the handles of its scope (`None` where the scope's resource is gone).
#[derive(Debug, Clone)]
pub struct HeldRoleRow {
    pub user_id: i64,
    pub role: String,
    pub scope: Scope,
    pub project: Option<String>,
    pub environment: Option<String>,
    pub integration: Option<String>,
    /// The group it comes through; `None` for a direct assignment.
    pub group: Option<String>,
}

/// One audit entry.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub at: Millis,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub client: String,
    pub detail: String,
    /// Why a refused or failed request was refused (the error message its
    /// client got); empty when it succeeded or was recorded before reasons
    /// were kept.
    pub reason: String,
}

/// An audit entry: an unsafe API request (refused ones included) or an
/// admin command of the command line.
#[derive(Debug, Clone, Copy)]
pub struct NewAuditEntry<'a> {
    pub at: Millis,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub outcome: &'a str,
    pub client: &'a str,
    /// Why it was refused; empty when it succeeded.
    pub reason: &'a str,
}

/// Filters of the audit query; `None` matches all. Newest first, `before` is the keyset cursor.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub before: Option<i64>,
    pub limit: i64,
}

const USER_COLUMNS: &str = "id, username, display_name, password_hash, must_change_password, failed_logins, locked_until, created_at, source, external_id, email, directory_checked_at";

fn user_from_row(r: &Row) -> db::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        username: r.get(1)?,
        display_name: r.get(2)?,
        password_hash: r.get(3)?,
        must_change_password: r.get(4)?,
        failed_logins: r.get(5)?,
        locked_until: r.get(6)?,
        created_at: r.get(7)?,
        source: r.get(8)?,
        external_id: r.get(9)?,
        email: r.get(10)?,
        directory_checked_at: r.get(11)?,
    })
}

fn token_from_row(r: &Row) -> db::Result<ApiTokenRow> {
    Ok(ApiTokenRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        name: r.get(2)?,
        token_hash: r.get(3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        last_used_at: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

const TOKEN_COLUMNS: &str =
    "id, user_id, name, token_hash, created_at, expires_at, last_used_at, revoked_at";

impl Tx<'_> {
    // ---- users ---------------------------------------------------------

    pub fn count_users(&self) -> Result<i64> {
        Ok(self
            .tx
            .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?)
    }

    pub fn insert_user(
        &self,
        username: &str,
        display_name: &str,
        password_hash: &str,
        must_change: bool,
        now: Millis,
    ) -> Result<i64> {
        self.exec(
            "INSERT INTO users (username, display_name, password_hash, must_change_password, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![username, display_name, password_hash, must_change, now],
        )?;
        Ok(self.tx.last_insert_rowid()?)
    }

    pub fn user_by_name(&self, username: &str) -> Result<Option<UserRow>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = ?1"
        ))?;
        Ok(st.query_row([username], user_from_row).optional()?)
    }

    pub fn user(&self, id: i64) -> Result<Option<UserRow>> {
        let mut st = self
            .tx
            .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?;
        Ok(st.query_row([id], user_from_row).optional()?)
    }

    pub fn users(&self) -> Result<Vec<UserRow>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY username"
        ))?;
        let rows = st.query_map([], user_from_row)?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    pub fn set_password(
        &self,
        user_id: i64,
        password_hash: &str,
        must_change: bool,
        now: Millis,
    ) -> Result<bool> {
        let n = self.exec(
            "UPDATE users SET password_hash = ?2, must_change_password = ?3, failed_logins = 0, locked_until = NULL, updated_at = ?4 WHERE id = ?1",
            params![user_id, password_hash, must_change, now],
        )?;
        Ok(n == 1)
    }

    pub fn set_login_failures(
        &self,
        user_id: i64,
        failed: i64,
        locked_until: Option<Millis>,
    ) -> Result<()> {
        self.exec(
            "UPDATE users SET failed_logins = ?2, locked_until = ?3 WHERE id = ?1",
            params![user_id, failed, locked_until],
        )?;
        Ok(())
    }

    pub fn update_user(&self, user_id: i64, display_name: &str, now: Millis) -> Result<bool> {
        let n = self.exec(
            "UPDATE users SET display_name = ?2, updated_at = ?3 WHERE id = ?1",
            params![user_id, display_name, now],
        )?;
        Ok(n == 1)
    }

    pub fn delete_user(&self, user_id: i64) -> Result<bool> {
        Ok(self
            .tx
            .execute("DELETE FROM users WHERE id = ?1", [user_id])?
            == 1)
    }

    // ---- sessions ------------------------------------------------------

    pub fn insert_session(
        &self,
        token_hash: &str,
        user_id: i64,
        csrf: &str,
        now: Millis,
        expires_at: Millis,
        client: &str,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at, client) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![token_hash, user_id, csrf, now, expires_at, client],
        )?;
        Ok(())
    }

    pub fn session(&self, token_hash: &str) -> Result<Option<SessionRow>> {
        let mut st = self.tx.prepare_cached(
            "SELECT user_id, csrf_token, expires_at FROM sessions WHERE token_hash = ?1",
        )?;
        Ok(st
            .query_row([token_hash], |r| {
                Ok(SessionRow {
                    user_id: r.get(0)?,
                    csrf_token: r.get(1)?,
                    expires_at: r.get(2)?,
                })
            })
            .optional()?)
    }

    /// Gives session `token_hash` a (new) refresh credential.
    pub fn set_session_refresh(&self, token_hash: &str, refresh_hash: &str) -> Result<bool> {
        Ok(self.exec(
            "UPDATE sessions SET refresh_hash = ?2 WHERE token_hash = ?1",
            params![token_hash, refresh_hash],
        )? == 1)
    }

    /// The session a refresh credential belongs to: (token hash, row).
    pub fn session_by_refresh(&self, refresh_hash: &str) -> Result<Option<(String, SessionRow)>> {
        let mut st = self.tx.prepare_cached(
            "SELECT token_hash, user_id, csrf_token, expires_at FROM sessions WHERE refresh_hash = ?1",
        )?;
        Ok(st
            .query_row([refresh_hash], |r| {
                Ok((
                    r.get(0)?,
                    SessionRow {
                        user_id: r.get(1)?,
                        csrf_token: r.get(2)?,
                        expires_at: r.get(3)?,
                    },
                ))
            })
            .optional()?)
    }

    pub fn delete_session(&self, token_hash: &str) -> Result<bool> {
        Ok(self
            .tx
            .execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?
            == 1)
    }

    /// Ends every session of a user (password change, reset, deletion), optionally but one.
    pub fn delete_user_sessions(&self, user_id: i64, except: Option<&str>) -> Result<usize> {
        Ok(self.exec(
            "DELETE FROM sessions WHERE user_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR token_hash <> ?2)",
            params![user_id, except],
        )?)
    }

    pub fn delete_expired_sessions(&self, now: Millis) -> Result<usize> {
        Ok(self
            .tx
            .execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?)
    }

    // ---- API tokens ----------------------------------------------------

    pub fn insert_api_token(&self, t: &ApiTokenRow) -> Result<()> {
        self.exec(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at, expires_at, last_used_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![t.id, t.user_id, t.name, t.token_hash, t.created_at, t.expires_at, t.last_used_at, t.revoked_at],
        )?;
        Ok(())
    }

    pub fn api_token(&self, id: &str) -> Result<Option<ApiTokenRow>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"
        ))?;
        Ok(st.query_row([id], token_from_row).optional()?)
    }

    pub fn api_tokens(&self, user_id: i64) -> Result<Vec<ApiTokenRow>> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = ?1 ORDER BY created_at DESC"
        ))?;
        let rows = st.query_map([user_id], token_from_row)?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    pub fn revoke_api_token(&self, id: &str, user_id: i64, now: Millis) -> Result<bool> {
        let n = self.exec(
            "UPDATE api_tokens SET revoked_at = ?3 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
            params![id, user_id, now],
        )?;
        Ok(n == 1)
    }

    pub fn touch_api_token(&self, id: &str, now: Millis) -> Result<()> {
        self.exec(
            "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
        Ok(())
    }

    // ---- roles, groups, assignments ------------------------------------

    /// Creates the built-in roles that are missing and resets their permissions.
    pub fn ensure_builtin_roles(
        &self,
        roles: &[(&str, &str, Vec<Permission>)],
        now: Millis,
    ) -> Result<()> {
        for (name, description, perms) in roles {
            self.exec(
                "INSERT INTO roles (name, description, builtin, created_at) VALUES (?1, ?2, 1, ?3) \
                 ON CONFLICT (name) DO UPDATE SET description = excluded.description, builtin = 1",
                params![name, description, now],
            )?;
            let id: i64 =
                self.tx
                    .query_row("SELECT id FROM roles WHERE name = ?1", [name], |r| r.get(0))?;
            self.set_role_permissions(id, perms)?;
        }
        Ok(())
    }

    pub fn set_role_permissions(&self, role_id: i64, perms: &[Permission]) -> Result<()> {
        self.tx
            .execute("DELETE FROM role_permissions WHERE role_id = ?1", [role_id])?;
        let mut st = self
            .tx
            .prepare_cached("INSERT INTO role_permissions (role_id, permission) VALUES (?1, ?2)")?;
        for p in perms {
            st.execute(params![role_id, p.as_str()])?;
        }
        Ok(())
    }

    pub fn roles(&self) -> Result<Vec<RoleRow>> {
        let mut perms: BTreeMap<i64, BTreeSet<Permission>> = BTreeMap::new();
        let mut st = self
            .tx
            .prepare_cached("SELECT role_id, permission FROM role_permissions")?;
        for row in st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
            let (id, p) = row?;
            if let Some(p) = Permission::parse(&p) {
                perms.entry(id).or_default().insert(p);
            }
        }
        let mut st = self.tx.prepare_cached(
            "SELECT id, name, description, builtin FROM roles ORDER BY builtin DESC, id",
        )?;
        let rows = st.query_map([], |r| {
            let id: i64 = r.get(0)?;
            Ok(RoleRow {
                id,
                name: r.get(1)?,
                description: r.get(2)?,
                builtin: r.get(3)?,
                permissions: BTreeSet::new(),
            })
        })?;
        let mut out: Vec<RoleRow> = rows.collect::<db::Result<_>>()?;
        for role in &mut out {
            role.permissions = perms.remove(&role.id).unwrap_or_default();
        }
        Ok(out)
    }

    pub fn insert_role(
        &self,
        name: &str,
        description: &str,
        perms: &[Permission],
        now: Millis,
    ) -> Result<i64> {
        self.exec(
            "INSERT INTO roles (name, description, builtin, created_at) VALUES (?1, ?2, 0, ?3)",
            params![name, description, now],
        )?;
        let id = self.tx.last_insert_rowid()?;
        self.set_role_permissions(id, perms)?;
        Ok(id)
    }

    pub fn update_role(&self, id: i64, name: &str, description: &str) -> Result<bool> {
        Ok(self.exec(
            "UPDATE roles SET name = ?2, description = ?3 WHERE id = ?1",
            params![id, name, description],
        )? == 1)
    }

    pub fn delete_role(&self, id: i64) -> Result<bool> {
        Ok(self
            .tx
            .execute("DELETE FROM roles WHERE id = ?1 AND builtin = 0", [id])?
            == 1)
    }

    pub fn groups(&self) -> Result<Vec<GroupRow>> {
        let mut members: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        let mut st = self
            .tx
            .prepare_cached("SELECT group_id, user_id FROM group_members ORDER BY user_id")?;
        for row in st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
            let (g, u) = row?;
            members.entry(g).or_default().push(u);
        }
        let mut st = self
            .tx
            .prepare_cached("SELECT id, name, description FROM groups ORDER BY name")?;
        let rows = st.query_map([], |r| {
            Ok(GroupRow {
                id: r.get(0)?,
                name: r.get(1)?,
                description: r.get(2)?,
                members: Vec::new(),
            })
        })?;
        let mut out: Vec<GroupRow> = rows.collect::<db::Result<_>>()?;
        for g in &mut out {
            g.members = members.remove(&g.id).unwrap_or_default();
        }
        Ok(out)
    }

    pub fn insert_group(&self, name: &str, description: &str, now: Millis) -> Result<i64> {
        self.exec(
            "INSERT INTO groups (name, description, created_at) VALUES (?1, ?2, ?3)",
            params![name, description, now],
        )?;
        Ok(self.tx.last_insert_rowid()?)
    }

    pub fn update_group(&self, id: i64, name: &str, description: &str) -> Result<bool> {
        Ok(self.exec(
            "UPDATE groups SET name = ?2, description = ?3 WHERE id = ?1",
            params![id, name, description],
        )? == 1)
    }

    pub fn delete_group(&self, id: i64) -> Result<bool> {
        Ok(self.exec("DELETE FROM groups WHERE id = ?1", [id])? == 1)
    }

    pub fn set_group_members(&self, id: i64, users: &[i64]) -> Result<()> {
        self.tx
            .execute("DELETE FROM group_members WHERE group_id = ?1", [id])?;
        let mut st = self.tx.prepare_cached(
            "INSERT INTO group_members (group_id, user_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?;
        for u in users {
            st.execute(params![id, u])?;
        }
        Ok(())
    }

    pub fn insert_assignment(
        &self,
        role_id: i64,
        user_id: Option<i64>,
        group_id: Option<i64>,
        scope: Scope,
        now: Millis,
    ) -> Result<i64> {
        let (kind, scope_id) = scope.parts();
        self.exec(
            "INSERT INTO role_assignments (role_id, user_id, group_id, scope_type, scope_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![role_id, user_id, group_id, kind, scope_id, now],
        )?;
        Ok(self.tx.last_insert_rowid()?)
    }

    pub fn assignments(&self) -> Result<Vec<AssignmentRow>> {
        let mut st = self.tx.prepare_cached(
            "SELECT id, role_id, user_id, group_id, scope_type, scope_id, created_at FROM role_assignments ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            let kind: String = r.get(4)?;
            Ok(AssignmentRow {
                id: r.get(0)?,
                role_id: r.get(1)?,
                user_id: r.get(2)?,
                group_id: r.get(3)?,
                scope: Scope::from_parts(&kind, r.get(5)?).unwrap_or(Scope::Organization),
                created_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    /// Every role every user holds, directly or through a group, by user
    /// and then assignment.
    pub fn held_roles(&self) -> Result<Vec<HeldRoleRow>> {
        // The third kind of holding: a federated user's directory group
        // that a mapping gives a role; its "group" is shown as
        // `directory:NAME`.
        let mut st = self.tx.prepare_cached(
            "WITH held (user_id, role_id, scope_type, scope_id, via, ord) AS ( \
                 SELECT user_id, role_id, scope_type, scope_id, CAST(NULL AS TEXT), id FROM role_assignments \
                 WHERE user_id IS NOT NULL \
                 UNION ALL \
                 SELECT m.user_id, a.role_id, a.scope_type, a.scope_id, g.name, a.id FROM role_assignments a \
                 JOIN group_members m ON m.group_id = a.group_id JOIN groups g ON g.id = a.group_id \
                 UNION ALL \
                 SELECT u.id, sm.role_id, sm.scope_type, sm.scope_id, 'directory:' || sm.group_name, sm.id + 1000000000 \
                 FROM sso_group_mappings sm JOIN user_directory_groups dg ON dg.group_name = sm.group_name \
                 JOIN users u ON u.id = dg.user_id AND (sm.source = '' OR sm.source = u.source)) \
             SELECT h.user_id, r.name, h.scope_type, h.scope_id, \
                    COALESCE(p.handle, ip.handle), e.handle, i.handle, h.via \
             FROM held h JOIN roles r ON r.id = h.role_id \
             LEFT JOIN projects p ON h.scope_type = 'project' AND p.id = h.scope_id \
             LEFT JOIN environments e ON h.scope_type = 'environment' AND e.id = h.scope_id \
             LEFT JOIN integrations i ON h.scope_type = 'integration' AND i.id = h.scope_id \
             LEFT JOIN projects ip ON ip.id = i.project_id \
             ORDER BY h.user_id, h.ord",
        )?;
        let rows = st.query_map([], |r| {
            let kind: String = r.get(2)?;
            Ok(HeldRoleRow {
                user_id: r.get(0)?,
                role: r.get(1)?,
                scope: Scope::from_parts(&kind, r.get(3)?).unwrap_or(Scope::Organization),
                project: r.get(4)?,
                environment: r.get(5)?,
                integration: r.get(6)?,
                group: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    pub fn delete_assignment(&self, id: i64) -> Result<bool> {
        Ok(self
            .tx
            .execute("DELETE FROM role_assignments WHERE id = ?1", [id])?
            == 1)
    }

    /// Everything a user holds, directly or through groups.
    pub fn grants_for_user(&self, user_id: i64) -> Result<Vec<Grant>> {
        let mut st = self.tx.prepare_cached(
            "SELECT a.scope_type, a.scope_id, p.permission FROM role_assignments a \
             JOIN role_permissions p ON p.role_id = a.role_id \
             WHERE a.user_id = ?1 OR a.group_id IN (SELECT group_id FROM group_members WHERE user_id = ?1) \
             UNION ALL \
             SELECT m.scope_type, m.scope_id, p.permission FROM sso_group_mappings m \
             JOIN role_permissions p ON p.role_id = m.role_id \
             JOIN user_directory_groups g ON g.group_name = m.group_name AND g.user_id = ?1 \
             JOIN users u ON u.id = ?1 AND (m.source = '' OR m.source = u.source)",
        )?;
        let mut by_scope: BTreeMap<Scope, BTreeSet<Permission>> = BTreeMap::new();
        for row in st.query_map([user_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })? {
            let (kind, id, perm) = row?;
            if let (Some(scope), Some(perm)) =
                (Scope::from_parts(&kind, id), Permission::parse(&perm))
            {
                by_scope.entry(scope).or_default().insert(perm);
            }
        }
        Ok(by_scope
            .into_iter()
            .map(|(scope, permissions)| Grant { scope, permissions })
            .collect())
    }

    // ---- single sign-on ------------------------------------------------

    /// Creates a federated user (no password: `password_hash` is empty,
    /// which no password verifies against).
    pub fn insert_federated_user(
        &self,
        username: &str,
        id: &DirectoryIdentity,
        now: Millis,
    ) -> Result<i64> {
        self.exec(
            "INSERT INTO users (username, display_name, password_hash, must_change_password, created_at, updated_at, source, external_id) \
             VALUES (?1, ?2, '', 0, ?3, ?3, ?4, ?5)",
            params![username, id.display_name, now, id.source, id.external_id],
        )?;
        Ok(self.tx.last_insert_rowid()?)
    }

    /// Records what a sign-in read from the directory: name, e-mail and
    /// groups (replacing the previous ones), and when.
    pub fn set_directory_identity(
        &self,
        user_id: i64,
        id: &DirectoryIdentity,
        now: Millis,
    ) -> Result<()> {
        self.exec(
            "UPDATE users SET display_name = ?2, email = ?3, external_id = ?4, directory_checked_at = ?5, \
             failed_logins = 0, locked_until = NULL, updated_at = ?5 WHERE id = ?1",
            params![user_id, id.display_name, id.email, id.external_id, now],
        )?;
        self.exec(
            "DELETE FROM user_directory_groups WHERE user_id = ?1",
            params![user_id],
        )?;
        for g in id.groups {
            self.exec(
                "INSERT INTO user_directory_groups (user_id, group_name) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![user_id, g],
            )?;
        }
        Ok(())
    }

    /// A federated user's groups as their last sign-in read them.
    pub fn directory_groups(&self, user_id: i64) -> Result<Vec<String>> {
        let mut st = self.tx.prepare_cached(
            "SELECT group_name FROM user_directory_groups WHERE user_id = ?1 ORDER BY group_name",
        )?;
        let rows = st.query_map([user_id], |r| r.get(0))?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    pub fn sso_mappings(&self) -> Result<Vec<SsoMappingRow>> {
        let mut st = self.tx.prepare_cached(
            "SELECT m.id, m.source, m.group_name, m.role_id, r.name, m.scope_type, m.scope_id, \
                    COALESCE(p.handle, ip.handle), e.handle, i.handle, m.origin, m.created_at \
             FROM sso_group_mappings m JOIN roles r ON r.id = m.role_id \
             LEFT JOIN projects p ON m.scope_type = 'project' AND p.id = m.scope_id \
             LEFT JOIN environments e ON m.scope_type = 'environment' AND e.id = m.scope_id \
             LEFT JOIN integrations i ON m.scope_type = 'integration' AND i.id = m.scope_id \
             LEFT JOIN projects ip ON ip.id = i.project_id \
             ORDER BY m.group_name, m.id",
        )?;
        let rows = st.query_map([], |r| {
            let kind: String = r.get(5)?;
            Ok(SsoMappingRow {
                id: r.get(0)?,
                source: r.get(1)?,
                group: r.get(2)?,
                role_id: r.get(3)?,
                role: r.get(4)?,
                scope: Scope::from_parts(&kind, r.get(6)?).unwrap_or(Scope::Organization),
                project: r.get(7)?,
                environment: r.get(8)?,
                integration: r.get(9)?,
                origin: r.get(10)?,
                created_at: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<db::Result<_>>()?)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn insert_sso_mapping(
        &self,
        source: &str,
        group: &str,
        role_id: i64,
        scope: Scope,
        origin: &str,
        now: Millis,
    ) -> Result<i64> {
        let (kind, scope_id) = scope.parts();
        self.exec(
            "INSERT INTO sso_group_mappings (source, group_name, role_id, scope_type, scope_id, origin, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![source, group, role_id, kind, scope_id, origin, now],
        )?;
        Ok(self.tx.last_insert_rowid()?)
    }

    /// Deletes a mapping made through the API; `Some(origin)` of the row
    /// found (a `config` row is left alone), `None` if there is none.
    pub fn delete_sso_mapping(&self, id: i64) -> Result<Option<String>> {
        let origin: Option<String> = self
            .tx
            .prepare_cached("SELECT origin FROM sso_group_mappings WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        if origin.as_deref() == Some("api") {
            self.exec("DELETE FROM sso_group_mappings WHERE id = ?1", params![id])?;
        }
        Ok(origin)
    }

    /// Removes the config file's mappings (before writing the current ones).
    pub fn delete_config_sso_mappings(&self) -> Result<usize> {
        Ok(self.exec(
            "DELETE FROM sso_group_mappings WHERE origin = 'config'",
            params![],
        )?)
    }

    pub fn insert_sso_login(&self, state_hash: &str, l: &SsoLoginRow) -> Result<()> {
        self.exec(
            "INSERT INTO sso_logins (state_hash, nonce, verifier, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![state_hash, l.nonce, l.verifier, l.created_at],
        )?;
        Ok(())
    }

    /// Takes (reads and deletes) an authorization request: each is used once.
    pub fn take_sso_login(&self, state_hash: &str) -> Result<Option<SsoLoginRow>> {
        let row = self
            .tx
            .prepare_cached(
                "SELECT nonce, verifier, created_at FROM sso_logins WHERE state_hash = ?1",
            )?
            .query_row([state_hash], |r| {
                Ok(SsoLoginRow {
                    nonce: r.get(0)?,
                    verifier: r.get(1)?,
                    created_at: r.get(2)?,
                })
            })
            .optional()?;
        if row.is_some() {
            self.exec(
                "DELETE FROM sso_logins WHERE state_hash = ?1",
                params![state_hash],
            )?;
        }
        Ok(row)
    }

    /// Forgets authorization requests begun before `before`.
    pub fn delete_stale_sso_logins(&self, before: Millis) -> Result<usize> {
        Ok(self.exec(
            "DELETE FROM sso_logins WHERE created_at < ?1",
            params![before],
        )?)
    }

    // ---- audit ---------------------------------------------------------

    /// Records an API request (with why it was refused, if it was) or an
    /// admin command.
    pub fn insert_audit(&self, e: &NewAuditEntry) -> Result<()> {
        self.exec(
            "INSERT INTO audit_log (at, actor, action, target, outcome, client, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![e.at, e.actor, e.action, e.target, e.outcome, e.client, e.reason],
        )?;
        Ok(())
    }

    /// Audit entries, newest first, and how many match in all.
    pub fn audit(&self, f: &AuditFilter) -> Result<(Vec<AuditRow>, i64)> {
        const WHERE: &str = "WHERE (CAST(?1 AS TEXT) IS NULL OR actor = ?1) AND (CAST(?2 AS TEXT) IS NULL OR action = ?2) \
             AND (CAST(?3 AS BIGINT) IS NULL OR at >= ?3) AND (CAST(?4 AS BIGINT) IS NULL OR at < ?4)";
        let total: i64 = self
            .tx
            .prepare_cached(&format!("SELECT COUNT(*) FROM audit_log {WHERE}"))?
            .query_row(params![f.actor, f.action, f.since, f.until], |r| r.get(0))?;
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT id, at, actor, action, target, outcome, client, detail, reason FROM audit_log {WHERE} \
             AND (CAST(?5 AS BIGINT) IS NULL OR id < ?5) ORDER BY id DESC LIMIT ?6"
        ))?;
        let rows = st.query_map(
            params![f.actor, f.action, f.since, f.until, f.before, f.limit],
            |r| {
                Ok(AuditRow {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    target: r.get(4)?,
                    outcome: r.get(5)?,
                    client: r.get(6)?,
                    detail: r.get(7)?,
                    reason: r.get(8)?,
                })
            },
        )?;
        Ok((rows.collect::<db::Result<_>>()?, total))
    }
}

impl Tx<'_> {
    /// The handle of an environment by id.
    pub fn environment_handle(&self, id: i64) -> Result<Option<String>> {
        Ok(self
            .tx
            .prepare_cached("SELECT handle FROM environments WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }
}
