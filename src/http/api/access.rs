//! Access control on the management API: users, roles, groups, role
//! assignments (all need `user:manage`) and the audit log.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{created, no_content, ok, schema, Access, Api, Body, Ctx, Input, Page, Route};
use crate::access::{Permission, Scope, Target};
use crate::auth::{self, HeldRole, User};
use crate::error::{Error, Result};
use crate::http::Response;
use crate::store::{AuditFilter, Tx};
use crate::telemetry::query::parse_time;
use crate::time::{rfc3339, Millis};

pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/api/v1/users",
        access: Access::User,
        summary: "List users",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Page<UserWithRoles>>))],
        errors: &[],
        handler: list_users,
    },
    Route {
        method: "POST",
        path: "/api/v1/users",
        access: Access::User,
        summary: "Create a user",
        query: &[],
        body: Input::Json(schema::<NewUser>),
        ok: &[(201, Body::Json(schema::<User>))],
        errors: &[409, 422],
        handler: create_user,
    },
    Route {
        method: "GET",
        path: "/api/v1/users/{user}",
        access: Access::User,
        summary: "One user with their role assignments",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<UserDetail>))],
        errors: &[],
        handler: get_user,
    },
    Route {
        method: "PATCH",
        path: "/api/v1/users/{user}",
        access: Access::User,
        summary: "Change a user's display name",
        query: &[],
        body: Input::Json(schema::<UserPatch>),
        ok: &[(200, Body::Json(schema::<User>))],
        errors: &[],
        handler: update_user,
    },
    Route {
        method: "DELETE",
        path: "/api/v1/users/{user}",
        access: Access::User,
        summary: "Delete a user",
        query: &[],
        body: Input::None,
        ok: &[(204, Body::Empty)],
        errors: &[409],
        handler: delete_user,
    },
    Route {
        method: "POST",
        path: "/api/v1/users/{user}/reset-password",
        access: Access::User,
        summary: "Give a user a new random password (shown once, must be changed)",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<PasswordReset>))],
        errors: &[409],
        handler: reset_password,
    },
    Route {
        method: "GET",
        path: "/api/v1/roles",
        access: Access::User,
        summary: "List roles and their permissions",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<RoleList>))],
        errors: &[],
        handler: list_roles,
    },
    Route {
        method: "POST",
        path: "/api/v1/roles",
        access: Access::User,
        summary: "Create a custom role",
        query: &[],
        body: Input::Json(schema::<RoleBody>),
        ok: &[(201, Body::Json(schema::<Role>))],
        errors: &[409, 422],
        handler: create_role,
    },
    Route {
        method: "PATCH",
        path: "/api/v1/roles/{role}",
        access: Access::User,
        summary: "Change a custom role",
        query: &[],
        body: Input::Json(schema::<RoleBody>),
        ok: &[(200, Body::Json(schema::<Role>))],
        errors: &[409, 422],
        handler: update_role,
    },
    Route {
        method: "DELETE",
        path: "/api/v1/roles/{role}",
        access: Access::User,
        summary: "Delete a custom role",
        query: &[],
        body: Input::None,
        ok: &[(204, Body::Empty)],
        errors: &[409],
        handler: delete_role,
    },
    Route {
        method: "GET",
        path: "/api/v1/groups",
        access: Access::User,
        summary: "List groups and their members",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Page<Group>>))],
        errors: &[],
        handler: list_groups,
    },
    Route {
        method: "POST",
        path: "/api/v1/groups",
        access: Access::User,
        summary: "Create a group",
        query: &[],
        body: Input::Json(schema::<GroupBody>),
        ok: &[(201, Body::Json(schema::<Group>))],
        errors: &[404, 409],
        handler: create_group,
    },
    Route {
        method: "PATCH",
        path: "/api/v1/groups/{group}",
        access: Access::User,
        summary: "Rename a group or set its members",
        query: &[],
        body: Input::Json(schema::<GroupBody>),
        ok: &[(200, Body::Json(schema::<Group>))],
        errors: &[409],
        handler: update_group,
    },
    Route {
        method: "DELETE",
        path: "/api/v1/groups/{group}",
        access: Access::User,
        summary: "Delete a group",
        query: &[],
        body: Input::None,
        ok: &[(204, Body::Empty)],
        errors: &[],
        handler: delete_group,
    },
    Route {
        method: "GET",
        path: "/api/v1/role-assignments",
        access: Access::User,
        summary: "List role assignments",
        query: &["user", "group"],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Page<Assignment>>))],
        errors: &[],
        handler: list_assignments,
    },
    Route {
        method: "POST",
        path: "/api/v1/role-assignments",
        access: Access::User,
        summary: "Assign a role to a user or group at a scope",
        query: &[],
        body: Input::Json(schema::<AssignmentBody>),
        ok: &[(201, Body::Json(schema::<Assignment>))],
        errors: &[404],
        handler: create_assignment,
    },
    Route {
        method: "DELETE",
        path: "/api/v1/role-assignments/{assignment}",
        access: Access::User,
        summary: "Remove a role assignment",
        query: &[],
        body: Input::None,
        ok: &[(204, Body::Empty)],
        errors: &[],
        handler: delete_assignment,
    },
    Route {
        method: "GET",
        path: "/api/v1/sso/group-mappings",
        access: Access::User,
        summary: "List the directory groups (OIDC, LDAP) that give roles, from the config file and the API",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Page<Mapping>>))],
        errors: &[],
        handler: list_group_mappings,
    },
    Route {
        method: "POST",
        path: "/api/v1/sso/group-mappings",
        access: Access::User,
        summary: "Give members of a directory group a role at a scope (from their next sign-in)",
        query: &[],
        body: Input::Json(schema::<MappingBody>),
        ok: &[(201, Body::Json(schema::<Mapping>))],
        errors: &[404],
        handler: create_group_mapping,
    },
    Route {
        method: "DELETE",
        path: "/api/v1/sso/group-mappings/{mapping}",
        access: Access::User,
        summary: "Remove a group mapping made through the API",
        query: &[],
        body: Input::None,
        ok: &[(204, Body::Empty)],
        errors: &[409],
        handler: delete_group_mapping,
    },
    Route {
        method: "GET",
        path: "/api/v1/audit",
        access: Access::User,
        summary: "The audit log, newest first; from/to (RFC 3339 or Unix ms, to exclusive; since/until are older names) bound the time, actor and action match exactly; a refused request's entry has the reason its client was given",
        query: &["actor", "action", "from", "to", "limit", "cursor"],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Page<AuditEntry>>))],
        errors: &[],
        handler: audit,
    },
];

fn require_user_manage(ctx: &Ctx) -> Result<()> {
    ctx.require(Permission::UserManage, &Target::organization())
}

fn user_by_name(tx: &Tx, name: &str) -> Result<crate::store::UserRow> {
    tx.user_by_name(name)?
        .ok_or_else(|| Error::NotFound(format!("no user named '{name}'")))
}

fn id_param(ctx: &Ctx, name: &str) -> Result<i64> {
    ctx.param(name)
        .parse()
        .map_err(|_| Error::NotFound(format!("no {name} '{}'", ctx.param(name))))
}

// ---- users --------------------------------------------------------------

/// A user with the roles they hold.
#[derive(Serialize, JsonSchema)]
struct UserWithRoles {
    #[serde(flatten)]
    user: User,
    /// Direct, through a group, or through a directory group
    /// (`directory:NAME`) of a single-sign-on user.
    roles: Vec<HeldRole>,
}

fn list_users(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let mut held = crate::auth::held_roles(&api.store)?;
    let users: Vec<UserWithRoles> = api
        .store
        .read(|tx| tx.users())?
        .iter()
        .map(|u| UserWithRoles {
            user: User::from_row(u, ctx.now),
            roles: held.remove(&u.id).unwrap_or_default(),
        })
        .collect();
    ok(&Page::all(users))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    must_change_password: bool,
}

fn create_user(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let body: NewUser = ctx.body()?;
    ctx.audit_target = Some(format!("user {}", body.username));
    let user = auth::create_user(
        &api.store,
        &body.username,
        &body.password,
        None,
        body.must_change_password,
        ctx.now,
    )?;
    if !body.display_name.is_empty() {
        api.store
            .write(|tx| tx.update_user(user.id, body.display_name.trim(), ctx.now))?;
    }
    let row = api
        .store
        .read(|tx| tx.user(user.id))?
        .ok_or_else(|| Error::Internal("user vanished".into()))?;
    created(&User::from_row(&row, ctx.now))
}

fn get_user(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let (user, assignments) = api.store.read(|tx| {
        let user = user_by_name(tx, ctx.param("user"))?;
        let all = assignments_json(tx)?;
        Ok((user, all))
    })?;
    let mine: Vec<Assignment> = assignments
        .into_iter()
        .filter(|a| a.user.as_deref() == Some(user.username.as_str()))
        .collect();
    ok(&UserDetail {
        user: User::from_row(&user, ctx.now),
        role_assignments: mine,
    })
}

/// One user and their direct role assignments.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct UserDetail {
    user: User,
    role_assignments: Vec<Assignment>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UserPatch {
    display_name: String,
}

fn update_user(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let body: UserPatch = ctx.body()?;
    let row = api.store.write(|tx| {
        let user = user_by_name(tx, ctx.param("user"))?;
        tx.update_user(user.id, body.display_name.trim(), ctx.now)?;
        tx.user(user.id)?
            .ok_or_else(|| Error::Internal("user vanished".into()))
    })?;
    ok(&User::from_row(&row, ctx.now))
}

fn delete_user(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let me = ctx.principal()?.user_id;
    api.store.write(|tx| {
        let user = user_by_name(tx, ctx.param("user"))?;
        if user.id == me {
            return Err(Error::Conflict("you cannot delete yourself".into()));
        }
        tx.delete_user(user.id)
    })?;
    no_content()
}

fn reset_password(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let name = ctx.param("user").to_string();
    let password = auth::reset_password(&api.store, &name, ctx.now)?;
    ok(&PasswordReset {
        username: name,
        password,
        must_change_password: true,
    })
}

/// A new random password, shown once.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct PasswordReset {
    username: String,
    password: String,
    must_change_password: bool,
}

// ---- roles ---------------------------------------------------------------

/// A role and its permissions.
#[derive(Serialize, JsonSchema)]
struct Role {
    id: String,
    name: String,
    description: String,
    builtin: bool,
    permissions: Vec<&'static str>,
}

fn role_json(r: &crate::store::RoleRow) -> Role {
    Role {
        id: r.id.to_string(),
        name: r.name.clone(),
        description: r.description.clone(),
        builtin: r.builtin,
        permissions: r.permissions.iter().map(|p| p.as_str()).collect(),
    }
}

/// Every role, and every permission a role can hold.
#[derive(Serialize, JsonSchema)]
struct RoleList {
    #[serde(flatten)]
    page: Page<Role>,
    permissions: Vec<&'static str>,
}

fn list_roles(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let roles: Vec<Role> = api
        .store
        .read(|tx| tx.roles())?
        .iter()
        .map(role_json)
        .collect();
    ok(&RoleList {
        page: Page::all(roles),
        permissions: Permission::ALL.iter().map(|p| p.as_str()).collect(),
    })
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    name: String,
    #[serde(default)]
    description: String,
    permissions: Option<Vec<String>>,
}

fn parse_permissions(list: &[String]) -> Result<Vec<Permission>> {
    list.iter()
        .map(|p| {
            Permission::parse(p).ok_or_else(|| {
                let all: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
                Error::Unprocessable(format!(
                    "unknown permission '{p}'; known: {}",
                    all.join(", ")
                ))
            })
        })
        .collect()
}

fn check_name(what: &str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(Error::BadRequest(format!(
            "a {what} needs a name of 1 to 100 characters"
        )));
    }
    Ok(name.to_string())
}

fn create_role(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let body: RoleBody = ctx.body()?;
    let name = check_name("role", &body.name)?;
    let perms = parse_permissions(body.permissions.as_deref().unwrap_or_default())?;
    ctx.audit_target = Some(format!("role {name}"));
    let role = api.store.write(|tx| {
        if tx
            .roles()?
            .iter()
            .any(|r| r.name.eq_ignore_ascii_case(&name))
        {
            return Err(Error::Conflict(format!("a role named '{name}' exists")));
        }
        let id = tx.insert_role(&name, body.description.trim(), &perms, ctx.now)?;
        tx.roles()?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| Error::Internal("role vanished".into()))
    })?;
    created(&role_json(&role))
}

fn custom_role(tx: &Tx, id: i64) -> Result<crate::store::RoleRow> {
    let role = tx
        .roles()?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| Error::NotFound(format!("no role {id}")))?;
    if role.builtin {
        return Err(Error::Conflict(format!(
            "'{}' is a built-in role and cannot be changed",
            role.name
        )));
    }
    Ok(role)
}

fn update_role(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let id = id_param(ctx, "role")?;
    let body: RoleBody = ctx.body()?;
    let name = check_name("role", &body.name)?;
    let perms = body
        .permissions
        .as_deref()
        .map(parse_permissions)
        .transpose()?;
    let role = api.store.write(|tx| {
        custom_role(tx, id)?;
        if tx
            .roles()?
            .iter()
            .any(|r| r.id != id && r.name.eq_ignore_ascii_case(&name))
        {
            return Err(Error::Conflict(format!("a role named '{name}' exists")));
        }
        tx.update_role(id, &name, body.description.trim())?;
        if let Some(perms) = &perms {
            tx.set_role_permissions(id, perms)?;
        }
        custom_role(tx, id)
    })?;
    ok(&role_json(&role))
}

fn delete_role(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let id = id_param(ctx, "role")?;
    api.store.write(|tx| {
        custom_role(tx, id)?;
        tx.delete_role(id)
    })?;
    no_content()
}

// ---- groups --------------------------------------------------------------

/// A group and its members' user names.
#[derive(Serialize, JsonSchema)]
struct Group {
    id: String,
    name: String,
    description: String,
    members: Vec<String>,
}

fn groups_json(tx: &Tx) -> Result<Vec<Group>> {
    let names: HashMap<i64, String> = tx
        .users()?
        .into_iter()
        .map(|u| (u.id, u.username))
        .collect();
    Ok(tx
        .groups()?
        .iter()
        .map(|g| Group {
            id: g.id.to_string(),
            name: g.name.clone(),
            description: g.description.clone(),
            members: g
                .members
                .iter()
                .filter_map(|m| names.get(m).cloned())
                .collect(),
        })
        .collect())
}

fn list_groups(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let groups = api.store.read(groups_json)?;
    ok(&Page::all(groups))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    name: Option<String>,
    description: Option<String>,
    members: Option<Vec<String>>,
}

fn member_ids(tx: &Tx, names: &[String]) -> Result<Vec<i64>> {
    names.iter().map(|n| Ok(user_by_name(tx, n)?.id)).collect()
}

fn create_group(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let body: GroupBody = ctx.body()?;
    let name = check_name("group", body.name.as_deref().unwrap_or(""))?;
    ctx.audit_target = Some(format!("group {name}"));
    let group = api.store.write(|tx| {
        if tx
            .groups()?
            .iter()
            .any(|g| g.name.eq_ignore_ascii_case(&name))
        {
            return Err(Error::Conflict(format!("a group named '{name}' exists")));
        }
        let id = tx.insert_group(
            &name,
            body.description.as_deref().unwrap_or("").trim(),
            ctx.now,
        )?;
        let members = member_ids(tx, body.members.as_deref().unwrap_or_default())?;
        tx.set_group_members(id, &members)?;
        groups_json(tx)?
            .into_iter()
            .find(|g| g.id == id.to_string())
            .ok_or_else(|| Error::Internal("group vanished".into()))
    })?;
    created(&group)
}

fn update_group(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let id = id_param(ctx, "group")?;
    let body: GroupBody = ctx.body()?;
    let group = api.store.write(|tx| {
        let g = tx
            .groups()?
            .into_iter()
            .find(|g| g.id == id)
            .ok_or_else(|| Error::NotFound(format!("no group {id}")))?;
        let name = match &body.name {
            Some(n) => check_name("group", n)?,
            None => g.name.clone(),
        };
        if tx
            .groups()?
            .iter()
            .any(|other| other.id != id && other.name.eq_ignore_ascii_case(&name))
        {
            return Err(Error::Conflict(format!("a group named '{name}' exists")));
        }
        tx.update_group(
            id,
            &name,
            body.description.as_deref().unwrap_or(&g.description).trim(),
        )?;
        if let Some(m) = &body.members {
            let ids = member_ids(tx, m)?;
            tx.set_group_members(id, &ids)?;
        }
        groups_json(tx)?
            .into_iter()
            .find(|g| g.id == id.to_string())
            .ok_or_else(|| Error::Internal("group vanished".into()))
    })?;
    ok(&group)
}

fn delete_group(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let id = id_param(ctx, "group")?;
    if !api.store.write(|tx| tx.delete_group(id))? {
        return Err(Error::NotFound(format!("no group {id}")));
    }
    no_content()
}

// ---- role assignments ------------------------------------------------------

/// Where a role applies: `type` and the handles it needs.
#[derive(Serialize, JsonSchema, Default)]
struct ScopeView {
    /// `organization`, `project`, `environment` or `integration`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// The project's handle (null if it is gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    environment: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    integration: Option<Option<String>>,
}

/// A role given to a user or a group at a scope.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Assignment {
    id: String,
    role: Option<String>,
    role_id: String,
    user: Option<String>,
    group: Option<String>,
    scope: ScopeView,
    created_at: String,
}

fn assignments_json(tx: &Tx) -> Result<Vec<Assignment>> {
    let users: HashMap<i64, String> = tx
        .users()?
        .into_iter()
        .map(|u| (u.id, u.username))
        .collect();
    let groups: HashMap<i64, String> = tx.groups()?.into_iter().map(|g| (g.id, g.name)).collect();
    let roles: HashMap<i64, String> = tx.roles()?.into_iter().map(|r| (r.id, r.name)).collect();
    let mut out = Vec::new();
    for a in tx.assignments()? {
        let scope = match a.scope {
            Scope::Organization => ScopeView {
                kind: "organization",
                ..ScopeView::default()
            },
            Scope::Project(id) => ScopeView {
                kind: "project",
                project: Some(tx.project(id)?.map(|p| p.handle)),
                ..ScopeView::default()
            },
            Scope::Environment(id) => ScopeView {
                kind: "environment",
                environment: Some(tx.environment_handle(id)?),
                ..ScopeView::default()
            },
            Scope::Integration(id) => {
                let i = tx.integration(id)?;
                let p = match &i {
                    Some(i) => tx.project(i.project_id)?.map(|p| p.handle),
                    None => None,
                };
                ScopeView {
                    kind: "integration",
                    project: Some(p),
                    integration: Some(i.map(|i| i.handle)),
                    ..ScopeView::default()
                }
            }
        };
        out.push(Assignment {
            id: a.id.to_string(),
            role: roles.get(&a.role_id).cloned(),
            role_id: a.role_id.to_string(),
            user: a.user_id.and_then(|u| users.get(&u).cloned()),
            group: a.group_id.and_then(|g| groups.get(&g).cloned()),
            scope,
            created_at: rfc3339(a.created_at),
        });
    }
    Ok(out)
}

fn list_assignments(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let (user, group) = (ctx.query("user"), ctx.query("group"));
    let all: Vec<Assignment> = api
        .store
        .read(assignments_json)?
        .into_iter()
        .filter(|a| {
            user.as_deref().is_none_or(|u| a.user.as_deref() == Some(u))
                && group
                    .as_deref()
                    .is_none_or(|g| a.group.as_deref() == Some(g))
        })
        .collect();
    ok(&Page::all(all))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct AssignmentBody {
    /// A role's name or id.
    #[serde(deserialize_with = "crate::id::name_or_id")]
    role: String,
    user: Option<String>,
    group: Option<String>,
    #[serde(default)]
    scope: ScopeBody,
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ScopeBody {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    project: Option<String>,
    environment: Option<String>,
    integration: Option<String>,
}

/// The role with this name (any case) or id.
fn role_named(tx: &Tx, name_or_id: &str) -> Result<crate::store::RoleRow> {
    tx.roles()?
        .into_iter()
        .find(|r| r.name.eq_ignore_ascii_case(name_or_id) || r.id.to_string() == name_or_id)
        .ok_or_else(|| Error::NotFound(format!("no role '{name_or_id}'")))
}

fn resolve_scope(tx: &Tx, s: &ScopeBody) -> Result<Scope> {
    let missing = |what: &str| Error::BadRequest(format!("a {what} scope needs '{what}'"));
    let project = |tx: &Tx| -> Result<crate::catalog::Project> {
        let h = s.project.as_deref().ok_or_else(|| missing("project"))?;
        tx.project_by_handle(&crate::catalog::normalize_handle(h))?
            .ok_or_else(|| Error::NotFound(format!("no project '{h}'")))
    };
    match s.kind.as_deref().unwrap_or("organization") {
        "organization" => Ok(Scope::Organization),
        "project" => Ok(Scope::Project(project(tx)?.id)),
        "environment" => {
            let h = s
                .environment
                .as_deref()
                .ok_or_else(|| missing("environment"))?;
            let e = tx
                .environment_by_handle(&crate::catalog::normalize_handle(h))?
                .ok_or_else(|| Error::NotFound(format!("no environment '{h}'")))?;
            Ok(Scope::Environment(e.id))
        }
        "integration" => {
            let p = project(tx)?;
            let h = s
                .integration
                .as_deref()
                .ok_or_else(|| missing("integration"))?;
            let i = tx
                .integration_by_handle(p.id, &crate::catalog::normalize_handle(h))?
                .ok_or_else(|| {
                    Error::NotFound(format!("no integration '{h}' in project '{}'", p.handle))
                })?;
            Ok(Scope::Integration(i.id))
        }
        other => Err(Error::BadRequest(format!(
            "scope type '{other}' must be organization, project, environment or integration"
        ))),
    }
}

fn create_assignment(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let body: AssignmentBody = ctx.body()?;
    if body.user.is_some() == body.group.is_some() {
        return Err(Error::BadRequest(
            "name exactly one of 'user' and 'group'".into(),
        ));
    }
    let value = api.store.write(|tx| {
        let role = role_named(tx, &body.role)?;
        let user = body
            .user
            .as_deref()
            .map(|u| user_by_name(tx, u).map(|u| u.id))
            .transpose()?;
        let group = match body.group.as_deref() {
            Some(g) => Some(
                tx.groups()?
                    .into_iter()
                    .find(|x| x.name == g)
                    .ok_or_else(|| Error::NotFound(format!("no group '{g}'")))?
                    .id,
            ),
            None => None,
        };
        let scope = resolve_scope(tx, &body.scope)?;
        let id = tx.insert_assignment(role.id, user, group, scope, ctx.now)?;
        assignments_json(tx)?
            .into_iter()
            .find(|a| a.id == id.to_string())
            .ok_or_else(|| Error::Internal("assignment vanished".into()))
    })?;
    ctx.audit_target = Some(format!("role assignment {}", value.id));
    created(&value)
}

fn delete_assignment(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let id = id_param(ctx, "assignment")?;
    if !api.store.write(|tx| tx.delete_assignment(id))? {
        return Err(Error::NotFound(format!("no role assignment {id}")));
    }
    no_content()
}

// ---- single sign-on group mappings -----------------------------------------

/// A directory group whose members get a role at a scope.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Mapping {
    id: String,
    group: String,
    /// `oidc`, `ldap`, or null for both.
    source: Option<String>,
    role: String,
    role_id: String,
    scope: ScopeView,
    /// `config` (the config file) or `api`.
    origin: String,
    created_at: String,
}

fn mapping_json(m: &crate::store::SsoMappingRow) -> Mapping {
    let scope = match m.scope {
        Scope::Organization => ScopeView {
            kind: "organization",
            ..ScopeView::default()
        },
        Scope::Project(_) => ScopeView {
            kind: "project",
            project: Some(m.project.clone()),
            ..ScopeView::default()
        },
        Scope::Environment(_) => ScopeView {
            kind: "environment",
            environment: Some(m.environment.clone()),
            ..ScopeView::default()
        },
        Scope::Integration(_) => ScopeView {
            kind: "integration",
            project: Some(m.project.clone()),
            integration: Some(m.integration.clone()),
            ..ScopeView::default()
        },
    };
    Mapping {
        id: m.id.to_string(),
        group: m.group.clone(),
        source: (!m.source.is_empty()).then(|| m.source.clone()),
        role: m.role.clone(),
        role_id: m.role_id.to_string(),
        scope,
        origin: m.origin.clone(),
        created_at: rfc3339(m.created_at),
    }
}

fn list_group_mappings(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let all: Vec<Mapping> = api
        .store
        .read(|tx| tx.sso_mappings())?
        .iter()
        .map(mapping_json)
        .collect();
    ok(&Page::all(all))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct MappingBody {
    /// The group's name as the directory gives it (the groups claim's
    /// value, or the LDAP group's name).
    group: String,
    /// A role's name or id.
    #[serde(deserialize_with = "crate::id::name_or_id")]
    role: String,
    /// `oidc`, `ldap`, or absent for both.
    source: Option<String>,
    #[serde(default)]
    scope: ScopeBody,
}

fn create_group_mapping(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let body: MappingBody = ctx.body()?;
    let group = body.group.trim();
    if group.is_empty() || group.len() > 256 {
        return Err(Error::BadRequest(
            "a group mapping needs a group name of 1 to 256 characters".into(),
        ));
    }
    let source = match body.source.as_deref() {
        None | Some("") => "",
        Some("oidc") => "oidc",
        Some("ldap") => "ldap",
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "source '{other}' must be \"oidc\" or \"ldap\" (or absent for both)"
            )))
        }
    };
    let value = api.store.write(|tx| {
        let role = role_named(tx, &body.role)?;
        let scope = resolve_scope(tx, &body.scope)?;
        let id = tx.insert_sso_mapping(source, group, role.id, scope, "api", ctx.now)?;
        tx.sso_mappings()?
            .iter()
            .find(|m| m.id == id)
            .map(mapping_json)
            .ok_or_else(|| Error::Internal("mapping vanished".into()))
    })?;
    ctx.audit_target = Some(format!("group mapping {} ({group})", value.id));
    created(&value)
}

fn delete_group_mapping(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let id = id_param(ctx, "mapping")?;
    match api.store.write(|tx| tx.delete_sso_mapping(id))?.as_deref() {
        Some("api") => no_content(),
        Some(_) => Err(Error::Conflict(format!(
            "group mapping {id} comes from the config file ([[sso.group_mappings]]); change it there and restart"
        ))),
        None => Err(Error::NotFound(format!("no group mapping {id}"))),
    }
}

// ---- audit -----------------------------------------------------------------

/// A time bound of the audit query: `name`, or its older name.
fn audit_time(ctx: &Ctx, name: &str, older: &str) -> Result<Option<Millis>> {
    ctx.query_filled(name)
        .map(|t| (name, t))
        .or_else(|| ctx.query_filled(older).map(|t| (older, t)))
        .map(|(n, t)| parse_time(n, &t))
        .transpose()
}

fn audit(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    require_user_manage(ctx)?;
    let page = ctx.page()?;
    let before = page
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| Error::BadRequest("cursor is not one this API returned".into()))
        })
        .transpose()?;
    let filter = AuditFilter {
        actor: ctx.query("actor"),
        action: ctx.query("action"),
        since: audit_time(ctx, "from", "since")?,
        until: audit_time(ctx, "to", "until")?,
        before,
        limit: page.limit,
    };
    if let (Some(from), Some(to)) = (filter.since, filter.until) {
        if from >= to {
            return Err(Error::BadRequest(format!(
                "from ({}) must be before to ({})",
                rfc3339(from),
                rfc3339(to)
            )));
        }
    }
    let (rows, total) = api.store.read(|tx| tx.audit(&filter))?;
    let next = (rows.len() as i64 == page.limit)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    let items: Vec<AuditEntry> = rows
        .iter()
        .map(|r| AuditEntry {
            id: r.id.to_string(),
            at: rfc3339(r.at),
            actor: r.actor.clone(),
            action: r.action.clone(),
            target: r.target.clone(),
            outcome: r.outcome.clone(),
            reason: (!r.reason.is_empty()).then(|| r.reason.clone()),
            client: r.client.clone(),
        })
        .collect();
    ok(&Page {
        items,
        total,
        next_cursor: next,
    })
}

/// One audit log entry.
#[derive(Serialize, JsonSchema)]
struct AuditEntry {
    id: String,
    at: String,
    actor: String,
    action: String,
    target: String,
    /// `ok` or `refused STATUS`.
    outcome: String,
    /// Why a refused request was refused.
    reason: Option<String>,
    client: String,
}
