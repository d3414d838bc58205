//! `/api/v1/auth/...`: login, logout, the current user, password change and
//! personal API tokens.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    cookie, created, no_content, ok, refusal_reason, schema, write_deferred_audit, Access, Api,
    Body, Ctx, Input, Page, Route,
};
use crate::access::GrantView;
use crate::auth::{self, SignedIn, SESSION_COOKIE};
use crate::error::{Error, Result};
use crate::http::routes::error_response;
use crate::http::Response;
use crate::time::{now_millis, rfc3339};

/// The cookie that binds an OIDC sign-in to the browser that started it.
const SSO_STATE_COOKIE: &str = "icp_sso_state";

pub const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: "/api/v1/auth/login",
        access: Access::Public,
        summary:
            "Sign in with user name and password; returns a bearer token and sets a session cookie",
        query: &[],
        body: Input::Json(schema::<LoginBody>),
        ok: &[(200, Body::Json(schema::<LoginAnswer>))],
        errors: &[401, 403, 429],
        handler: login,
    },
    Route {
        method: "GET",
        path: "/api/v1/auth/providers",
        access: Access::Public,
        summary: "How people sign in here: password, LDAP, single sign-on (for the login page)",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Providers>))],
        errors: &[],
        handler: providers,
    },
    Route {
        method: "POST",
        path: "/api/v1/auth/oidc/start",
        access: Access::Public,
        summary:
            "Start a single sign-on: the identity provider's authorization URL (PKCE, state, nonce)",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<OidcStart>))],
        errors: &[404, 429],
        handler: oidc_start,
    },
    Route {
        method: "POST",
        path: "/api/v1/auth/oidc/callback",
        access: Access::Public,
        summary: "Complete a single sign-on with the provider's code and state; opens a session",
        query: &[],
        body: Input::Json(schema::<Callback>),
        ok: &[(200, Body::Json(schema::<LoginAnswer>))],
        errors: &[401, 403, 404, 429],
        handler: oidc_callback,
    },
    Route {
        method: "POST",
        path: "/api/v1/auth/logout",
        access: Access::AnyUser,
        summary: "End the current session",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<EndSession>)), (204, Body::Empty)],
        errors: &[],
        handler: logout,
    },
    Route {
        method: "GET",
        path: "/api/v1/auth/me",
        access: Access::AnyUser,
        summary: "The signed-in user and their permissions",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Me>))],
        errors: &[],
        handler: me,
    },
    Route {
        method: "POST",
        path: "/api/v1/auth/change-password",
        access: Access::AnyUser,
        summary: "Change the signed-in user's password",
        query: &[],
        body: Input::Json(schema::<ChangePassword>),
        ok: &[(204, Body::Empty)],
        errors: &[422],
        handler: change_password,
    },
    Route {
        method: "GET",
        path: "/api/v1/auth/tokens",
        access: Access::User,
        summary: "List your personal API tokens",
        query: &[],
        body: Input::None,
        ok: &[(200, Body::Json(schema::<Page<auth::ApiToken>>))],
        errors: &[],
        handler: list_tokens,
    },
    Route {
        method: "POST",
        path: "/api/v1/auth/tokens",
        access: Access::User,
        summary: "Create a personal API token (shown once)",
        query: &[],
        body: Input::Json(schema::<NewToken>),
        ok: &[(201, Body::Json(schema::<NewApiToken>))],
        errors: &[409, 422],
        handler: create_token,
    },
    Route {
        method: "DELETE",
        path: "/api/v1/auth/tokens/{token}",
        access: Access::User,
        summary: "Revoke one of your API tokens",
        query: &[],
        body: Input::None,
        ok: &[(204, Body::Empty)],
        errors: &[],
        handler: revoke_token,
    },
];

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

fn session_cookie(secure: bool, token: &str) -> String {
    let max_age = auth::SESSION_TTL.as_secs();
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    )
}

/// A new session.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct LoginAnswer {
    /// The session token: `Authorization: Bearer <token>` (also set as a cookie).
    token: String,
    /// For `X-CSRF-Token` on cookie-authenticated changes.
    csrf_token: String,
    expires_at: String,
    user: auth::User,
    must_change_password: bool,
    permissions: Vec<GrantView>,
    /// After a single sign-on: where to end the session at the provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    end_session_url: Option<String>,
}

fn login_json(l: &auth::Login, end_session_url: Option<String>) -> LoginAnswer {
    LoginAnswer {
        token: l.token.clone(),
        csrf_token: l.csrf_token.clone(),
        expires_at: rfc3339(l.expires_at),
        user: l.user.clone(),
        must_change_password: l.user.must_change_password,
        permissions: l.principal.permission_summary(),
        end_session_url,
    }
}

fn login(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let body: LoginBody = ctx.body()?;
    ctx.audit_actor = Some(body.username.chars().take(64).collect());
    ctx.audit_target = Some("login".into());
    let client = ctx.req.peer.ip().to_string();
    let route = password_route(api, &body.username)
        .inspect_err(|e| crate::metrics::sign_in("password", crate::http::routes::status_of(e)))?;
    if route == PasswordRoute::Directory {
        return ldap_login(api, ctx, body, client);
    }
    let l = auth::login(&api.store, &body.username, &body.password, &client, ctx.now);
    crate::metrics::sign_in(
        "password",
        l.as_ref()
            .map_or_else(crate::http::routes::status_of, |_| 200),
    );
    let l = l?;
    ctx.set_cookies.push(session_cookie(api.secure, &l.token));
    ok(&login_json(&l, None))
}

/// Who checks a user name and password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PasswordRoute {
    /// icpd's own password hashes (`auth::login`).
    Local,
    /// The LDAP directory, on the sign-in pool.
    Directory,
}

/// Sends a password sign-in to the directory (an LDAP user, or a name icpd
/// does not know while LDAP is on) or to icpd; refuses a local account
/// when password sign-in is off, except the break-glass account.
pub(crate) fn password_route(api: &Api, username: &str) -> Result<PasswordRoute> {
    let sso = &api.sso.config;
    let existing = api.store.read(|tx| tx.user_by_name(username))?;
    match existing {
        Some(u) if u.source == "ldap" && sso.ldap.is_some() => Ok(PasswordRoute::Directory),
        None if sso.ldap.is_some() => Ok(PasswordRoute::Directory),
        Some(u)
            if u.source == "local"
                && !sso.password_login
                && sso.break_glass_user.as_deref() != Some(u.username.as_str()) =>
        {
            Err(Error::Forbidden(
                "password sign-in is switched off on this server; use single sign-on".into(),
            ))
        }
        _ => Ok(PasswordRoute::Local),
    }
}

/// The answer to a directory sign-in, for the job to send.
fn signed_in_response(
    result: Result<SignedIn>,
    secure: bool,
    end_session_url: Option<String>,
) -> Response {
    match result {
        Ok(SignedIn::Yes(l)) => {
            let body = login_json(&l, end_session_url);
            Response::json(200, &body).with_header("Set-Cookie", &session_cookie(secure, &l.token))
        }
        Ok(SignedIn::NoRoles { username, groups }) => Response::json(
            403,
            &json!({
                "error": {
                    "code": "no_roles",
                    "message": format!(
                        "'{username}' signed in, but none of their groups ({}) has a role in icpd; ask an administrator to map one (Access → Group mappings)",
                        if groups.is_empty() { "none".to_string() } else { groups.join(", ") }
                    ),
                },
                "username": username,
            }),
        ),
        Err(e) => error_response(&e),
    }
    .with_header("Cache-Control", "no-store")
}

/// A password sign-in checked by the directory, on the sign-in pool.
fn ldap_login(api: &Api, ctx: &mut Ctx, body: LoginBody, client: String) -> Result<Response> {
    let (resp, reply) = Response::deferred();
    let (sso, store, secure) = (api.sso.clone(), api.store.clone(), api.secure);
    let job = move || {
        let now = now_millis();
        let result = sso.complete_ldap(&store, &body.username, &body.password, &client, now);
        let resp = signed_in_response(result, secure, None);
        crate::metrics::sign_in("ldap", resp.status);
        let actor: String = body.username.chars().take(64).collect();
        write_deferred_audit(
            &store,
            now,
            &actor,
            "POST /api/v1/auth/login",
            "login (ldap)",
            &client,
            resp.status,
            &refusal_reason(&resp),
        );
        reply.send(resp);
    };
    api.sso.submit(Box::new(job))?;
    let _ = ctx;
    Ok(resp)
}

/// How one signs in on this server.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Providers {
    password_login: bool,
    /// The local account that may still sign in with a password while
    /// password sign-in is off.
    break_glass_user: Option<String>,
    ldap: bool,
    oidc: Option<OidcProvider>,
}

/// The OpenID provider single sign-on goes to.
#[derive(Serialize, JsonSchema)]
struct OidcProvider {
    label: String,
    issuer: String,
}

fn providers(api: &Api, _ctx: &mut Ctx) -> Result<Response> {
    let c = &api.sso.config;
    ok(&Providers {
        password_login: c.password_login,
        break_glass_user: if c.password_login {
            None
        } else {
            c.break_glass_user.clone()
        },
        ldap: c.ldap.is_some(),
        oidc: c.oidc.as_ref().map(|o| OidcProvider {
            label: o.label.clone(),
            issuer: o.issuer.clone(),
        }),
    })
}

/// Where to send the browser to sign in at the provider.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct OidcStart {
    authorization_url: String,
    state: String,
}

fn oidc_start(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    api.sso.oidc()?;
    let (resp, reply) = Response::deferred();
    let (sso, store, secure) = (api.sso.clone(), api.store.clone(), api.secure);
    api.sso.submit(Box::new(move || {
        let resp = match sso.authorization_url(&store, None, now_millis()) {
            Ok((url, state)) => {
                let secure = if secure { "; Secure" } else { "" };
                Response::json(200, &OidcStart { authorization_url: url, state: state.clone() }).with_header(
                    "Set-Cookie",
                    &format!("{SSO_STATE_COOKIE}={state}; Path=/api/v1/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=600{secure}"),
                )
            }
            Err(e) => error_response(&e),
        };
        reply.send(resp.with_header("Cache-Control", "no-store"));
    }))?;
    let _ = ctx;
    Ok(resp)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Callback {
    code: String,
    state: String,
}

fn oidc_callback(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    api.sso.oidc()?;
    let body: Callback = ctx.body()?;
    ctx.audit_target = Some("login (oidc)".into());
    // The state must be the one this browser was given (login CSRF).
    let bound = cookie(ctx.req, SSO_STATE_COOKIE)
        .is_some_and(|c| auth::constant_time_eq(c.as_bytes(), body.state.as_bytes()));
    if !bound {
        crate::metrics::sign_in("oidc", 401);
        return Err(Error::Unauthorized(
            "this sign-in was not started in this browser, or took longer than 10 minutes; start again".into(),
        ));
    }
    let client = ctx.req.peer.ip().to_string();
    let (resp, reply) = Response::deferred();
    let (sso, store, secure) = (api.sso.clone(), api.store.clone(), api.secure);
    api.sso.submit(Box::new(move || {
        let now = now_millis();
        let result = sso.complete_oidc(&store, &body.code, &body.state, &client, now);
        let (result, end_session) = match result {
            Ok((signed, id_token)) => (Ok(signed), sso.end_session_url(Some(&id_token))),
            Err(e) => (Err(e), None),
        };
        let actor = match &result {
            Ok(SignedIn::Yes(l)) => l.user.username.clone(),
            Ok(SignedIn::NoRoles { username, .. }) => username.clone(),
            Err(_) => "anonymous".into(),
        };

        let secure_attr = if secure { "; Secure" } else { "" };
        let resp = signed_in_response(result, secure, end_session).with_header(
            "Set-Cookie",
            &format!("{SSO_STATE_COOKIE}=; Path=/api/v1/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=0{secure_attr}"),
        );
        crate::metrics::sign_in("oidc", resp.status);
        write_deferred_audit(&store, now, &actor, "POST /api/v1/auth/oidc/callback", "login (oidc)", &client, resp.status, &refusal_reason(&resp));
        reply.send(resp);
    }))?;
    Ok(resp)
}

fn logout(api: &Api, ctx: &mut Ctx) -> Result<Response> {
    let who = ctx.who()?.clone();
    auth::logout(&api.store, &who.via)?;
    let secure = if api.secure { "; Secure" } else { "" };
    ctx.set_cookies.push(format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
    ));
    // A single-sign-on user also ends their session at the provider, when
    // it has an end-session endpoint: the console goes there next.
    let oidc_user = api
        .store
        .read(|tx| tx.user(who.principal.user_id))?
        .is_some_and(|u| u.source == "oidc");
    match oidc_user.then(|| api.sso.end_session_url(None)).flatten() {
        Some(url) => ok(&EndSession {
            end_session_url: url,
        }),
        None => no_content(),
    }
}

/// Where a single-sign-on user's browser ends the session at the provider.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct EndSession {
    end_session_url: String,
}

/// The signed-in user.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Me {
    user: auth::User,
    permissions: Vec<GrantView>,
    /// For a session (null with an API token).
    csrf_token: Option<String>,
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
    ok(&Me {
        user: auth::User::from_row(&user, ctx.now),
        permissions: who.principal.permission_summary(),
        csrf_token: csrf,
    })
}

#[derive(Deserialize, schemars::JsonSchema)]
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
    ok(&Page::all(tokens))
}

#[derive(Deserialize, schemars::JsonSchema)]
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
    created(&NewApiToken { token, secret })
}

/// A new API token, with the token itself (shown this once).
#[derive(Serialize, JsonSchema)]
struct NewApiToken {
    #[serde(flatten)]
    token: auth::ApiToken,
    #[serde(rename = "token")]
    secret: String,
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
