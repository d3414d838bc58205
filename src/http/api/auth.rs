//! `/api/v1/auth/...`: login, logout, the current user, password change and
//! personal API tokens.

use serde::Deserialize;
use serde_json::json;

use super::{created, no_content, ok, Access, Api, Ctx, Route};
use crate::auth::{self, SESSION_COOKIE};
use crate::error::{Error, Result};
use crate::http::Response;
use crate::time::rfc3339;

pub const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: "/api/v1/auth/login",
        access: Access::Public,
        summary:
            "Sign in with user name and password; returns a bearer token and sets a session cookie",
        query: &[],
        handler: login,
    },
    Route {
        method: "POST",
        path: "/api/v1/auth/logout",
        access: Access::AnyUser,
        summary: "End the current session",
        query: &[],
        handler: logout,
    },
    Route {
        method: "GET",
        path: "/api/v1/auth/me",
        access: Access::AnyUser,
        summary: "The signed-in user and their permissions",
        query: &[],
        handler: me,
    },
    Route {
        method: "POST",
        path: "/api/v1/auth/change-password",
        access: Access::AnyUser,
        summary: "Change the signed-in user's password",
        query: &[],
        handler: change_password,
    },
    Route {
        method: "GET",
        path: "/api/v1/auth/tokens",
        access: Access::User,
        summary: "List your personal API tokens",
        query: &[],
        handler: list_tokens,
    },
    Route {
        method: "POST",
        path: "/api/v1/auth/tokens",
        access: Access::User,
        summary: "Create a personal API token (shown once)",
        query: &[],
        handler: create_token,
    },
    Route {
        method: "DELETE",
        path: "/api/v1/auth/tokens/{token}",
        access: Access::User,
        summary: "Revoke one of your API tokens",
        query: &[],
        handler: revoke_token,
    },
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

fn login(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let body: LoginBody = ctx.body()?;
    ctx.audit_actor = Some(body.username.chars().take(64).collect());
    ctx.audit_target = Some("login".into());
    let client = ctx.req.peer.ip().to_string();
    let l = auth::login(&api.store, &body.username, &body.password, &client, ctx.now)?;
    let max_age = auth::SESSION_TTL.as_secs();
    let secure = if api.secure { "; Secure" } else { "" };
    ctx.set_cookies.push(format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        l.token
    ));
    ok(&json!({
        "token": l.token,
        "csrfToken": l.csrf_token,
        "expiresAt": rfc3339(l.expires_at),
        "user": l.user,
        "mustChangePassword": l.user.must_change_password,
        "permissions": l.principal.permission_summary(),
    }))
}

fn logout(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    auth::logout(&api.store, &ctx.who()?.via)?;
    let secure = if api.secure { "; Secure" } else { "" };
    ctx.set_cookies.push(format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
    ));
    no_content()
}

fn me(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let who = ctx.who()?;
    let user = api
        .store
        .read(|tx| tx.user(who.principal.user_id))?
        .ok_or_else(|| Error::NotFound("user not found".into()))?;
    let csrf = match &who.via {
        auth::Via::Session { csrf, .. } => Some(csrf.clone()),
        auth::Via::ApiToken { .. } => None,
    };
    ok(&json!({
        "user": auth::User::from_row(&user, ctx.now),
        "permissions": who.principal.permission_summary(),
        "csrfToken": csrf,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChangePassword {
    current_password: String,
    new_password: String,
}

fn change_password(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let body: ChangePassword = ctx.body()?;
    ctx.audit_target = Some("password".into());
    auth::change_password(
        &api.store,
        ctx.who()?,
        &body.current_password,
        &body.new_password,
        ctx.now,
    )?;
    no_content()
}

fn list_tokens(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let user = ctx.principal()?.user_id;
    let tokens: Vec<auth::ApiToken> = api
        .store
        .read(|tx| tx.api_tokens(user))?
        .iter()
        .map(auth::ApiToken::from)
        .collect();
    ok(&json!({ "items": tokens, "total": tokens.len(), "nextCursor": null }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewToken {
    name: String,
    /// e.g. "30d"; absent = never expires.
    expires_in: Option<String>,
}

fn create_token(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let body: NewToken = ctx.body()?;
    let ttl = body
        .expires_in
        .as_deref()
        .map(crate::config::parse_duration)
        .transpose()
        .map_err(Error::BadRequest)?;
    let (token, secret) = auth::create_api_token(
        &api.store,
        ctx.principal()?.user_id,
        &body.name,
        ttl,
        ctx.now,
    )?;
    ctx.audit_target = Some(format!("api token {}", token.id));
    let mut v = serde_json::to_value(&token).map_err(|e| Error::Internal(e.to_string()))?;
    v["token"] = secret.into();
    created(&v)
}

fn revoke_token(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let id = ctx.param("token").to_string();
    let user = ctx.principal()?.user_id;
    if !api
        .store
        .write(|tx| tx.revoke_api_token(&id, user, ctx.now))?
    {
        return Err(Error::NotFound(format!(
            "you have no active API token '{id}'"
        )));
    }
    no_content()
}
