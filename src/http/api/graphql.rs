//! ICP 2's console endpoints on the management listener (GRAPHQL.md §1, §2):
//! `/graphql` (POST, and GET for queries) and the login service
//! `/auth/login`, `/auth/refresh-token`, `/auth/revoke-token`.
//!
//! They sit beside the REST route table, not in it: their bodies, errors
//! and statuses are ICP's (`{"message"}` and GraphQL `errors`, 400 for a
//! bad token as the reference answers), not `{"error":{...}}`. They are
//! audited like the REST API: every login attempt, refresh and revocation,
//! and every GraphQL mutation (queries are reads and leave no entry).
//!
//! `/runtime-status` is ICP's push channel (§1.5): a server-push WebSocket
//! of `RUNTIME_STATUS` and `LOG_LEVEL_CHANGE` frames for one environment,
//! carried by the connection layer's streams thread like the REST API's
//! Server-Sent Events, so an open channel holds no worker.
//!
//! `/graphql` accepts, as `Authorization: Bearer`, the console token
//! `/auth/login` issues, an icpd session token or a personal API token; and
//! the console's session cookie (with `X-CSRF-Token` on POST, as the REST
//! API requires).

use std::time::Instant;

use serde_json::{json, Value};

use super::{authenticate, cookie, is_unsafe, write_audit, Api, MANAGEMENT};
use crate::auth::{self, Authenticated, SESSION_COOKIE};
use crate::error::Error;
use crate::graphql::{self, token, Reply, AUTH_FAILED};
use crate::http::message::percent_decode;
use crate::http::routes::method_not_allowed;
use crate::http::{Request, Response};
use crate::metrics;
use crate::time::{now_millis, Millis};

/// Whether `path` is one of these endpoints.
pub fn handles(path: &str) -> bool {
    path == "/graphql" || path == "/runtime-status" || path.starts_with("/auth/")
}

/// Serves `/graphql` and `/auth/*`, timed under their path.
pub fn serve(api: &Api, req: &Request) -> Response {
    let started = Instant::now();
    let now = now_millis();
    let (route, resp) = match (req.path.as_str(), req.method.as_str()) {
        ("/graphql", "GET" | "POST") => ("/graphql", run_graphql(api, req, now)),
        ("/graphql", _) => ("/graphql", method_not_allowed("GET, POST")),
        ("/runtime-status", "GET") => ("/runtime-status", runtime_status(api, req, now)),
        ("/runtime-status", _) => ("/runtime-status", method_not_allowed("GET")),
        ("/auth/login", "POST") => ("/auth/login", login(api, req, now)),
        ("/auth/refresh-token", "POST") => ("/auth/refresh-token", refresh(api, req, now)),
        ("/auth/revoke-token", "POST") => ("/auth/revoke-token", revoke(api, req, now)),
        ("/auth/oidc/authorize-url", "GET") => {
            ("/auth/oidc/authorize-url", authorize_url(api, req))
        }
        ("/auth/login/oidc", "POST") => ("/auth/login/oidc", login_oidc(api, req, now)),
        ("/auth/oidc/authorize-url", _) => ("auth", method_not_allowed("GET")),
        (
            "/auth/login" | "/auth/refresh-token" | "/auth/revoke-token" | "/auth/login/oidc",
            _,
        ) => ("auth", method_not_allowed("POST")),
        _ => (
            "auth",
            message(
                404,
                "not found: icpd serves /auth/login, /auth/refresh-token, /auth/revoke-token, /auth/oidc/authorize-url and /auth/login/oidc",
            ),
        ),
    };
    metrics::observe_request(MANAGEMENT, &req.method, route, started.elapsed());
    resp.with_header("Cache-Control", "no-store")
}

/// ICP's status and `{"message"}` for an error of the sign-in service.
fn sso_error(e: &Error) -> Response {
    let status = crate::http::routes::status_of(e);
    let text = match e {
        Error::Internal(_) | Error::Database(_) | Error::Io { .. } => {
            log::error!("single sign-on failed: {e}");
            "Authentication service unavailable".to_string()
        }
        e => e.to_string(),
    };
    message(status, &text)
}

/// `GET /auth/oidc/authorize-url?state=` (§2.1): the provider's
/// authorization URL for the client's state, answered from the sign-in pool.
fn authorize_url(api: &Api, req: &Request) -> Response {
    if let Err(e) = api.sso.oidc() {
        return sso_error(&e);
    }
    let state = query_param(req, "state");
    let (resp, reply) = Response::deferred();
    let (sso, store) = (api.sso.clone(), api.store.clone());
    let job = move || {
        let resp = match sso.authorization_url(&store, state.as_deref(), now_millis()) {
            Ok((url, _)) => Response::json(200, &json!({ "authorizationUrl": url })),
            Err(e) => sso_error(&e),
        };
        reply.send(resp.with_header("Cache-Control", "no-store"));
    };
    match api.sso.submit(Box::new(job)) {
        Ok(()) => resp,
        Err(e) => sso_error(&e),
    }
}

/// `POST /auth/login/oidc` `{"code", "state"}` (§2.1): the login answer
/// with `isOidcUser: true` and `idToken`, or 403 `{"message", "username"}`
/// for a user without permissions; answered from the sign-in pool.
fn login_oidc(api: &Api, req: &Request, now: Millis) -> Response {
    let body = json_body(req);
    let field = |k: &str| {
        body.as_ref()
            .and_then(|b| b.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let client = req.peer.ip().to_string();
    let early = match (api.sso.oidc(), field("code"), field("state")) {
        (Err(e), _, _) => Some(sso_error(&e)),
        (_, None, _) => Some(message(400, "code is required")),
        (_, _, None) => Some(message(
            400,
            "state is required: send the state given to /auth/oidc/authorize-url",
        )),
        _ => None,
    };
    if let Some(resp) = early {
        crate::metrics::sign_in("oidc", resp.status);
        audit_auth(
            api,
            req,
            now,
            "anonymous",
            "POST /auth/login/oidc",
            "login (oidc)",
            &resp,
        );
        return resp;
    }
    let (code, state) = (
        field("code").unwrap_or_default(),
        field("state").unwrap_or_default(),
    );
    let (resp, reply) = Response::deferred();
    let (sso, store, key) = (api.sso.clone(), api.store.clone(), api.master_key.clone());
    let job = move || {
        let now = now_millis();
        let (resp, actor) = match sso.complete_oidc(&store, &code, &state, &client, now) {
            Ok((auth::SignedIn::Yes(l), id_token)) => {
                let name = l.user.username.clone();
                (console_login(&key, &store, &l, now, Some(&id_token)), name)
            }
            Ok((auth::SignedIn::NoRoles { username, .. }, _)) => (
                Response::json(
                    403,
                    &json!({
                        "message": "You do not have permission to access ICP; ask an administrator to map one of your groups to a role",
                        "username": username,
                    }),
                ),
                username,
            ),
            Err(e) => (sso_error(&e), "anonymous".to_string()),
        };
        let signed = Signed {
            method: "oidc",
            action: "POST /auth/login/oidc",
            actor: &actor,
            client: &client,
            now,
        };
        signed.answer(&store, reply, resp);
    };
    match api.sso.submit(Box::new(job)) {
        Ok(()) => resp,
        Err(e) => sso_error(&e),
    }
}

/// A sign-in answered from the sign-in pool: what its audit entry and
/// metric need.
struct Signed<'a> {
    /// `oidc` or `ldap`, for `icpd_sign_ins_total`.
    method: &'a str,
    action: &'a str,
    actor: &'a str,
    client: &'a str,
    now: Millis,
}

impl Signed<'_> {
    /// Counts and audits the sign-in, then sends `resp`.
    fn answer(&self, store: &crate::store::Store, reply: crate::http::Reply, resp: Response) {
        crate::metrics::sign_in(self.method, resp.status);
        let reason = icp_reason(&resp);
        let target = format!("login ({})", self.method);
        super::write_deferred_audit(
            store,
            self.now,
            self.actor,
            self.action,
            &target,
            self.client,
            resp.status,
            &reason,
        );
        reply.send(resp.with_header("Cache-Control", "no-store"));
    }
}

/// `/auth/login` for a directory (LDAP) user: checked on the sign-in pool.
fn ldap_console_login(api: &Api, username: String, password: String, client: String) -> Response {
    let (resp, reply) = Response::deferred();
    let (sso, store, key) = (api.sso.clone(), api.store.clone(), api.master_key.clone());
    let job = move || {
        let now = now_millis();
        let resp = match sso.complete_ldap(&store, &username, &password, &client, now) {
            Ok(auth::SignedIn::Yes(l)) => console_login(&key, &store, &l, now, None),
            Ok(auth::SignedIn::NoRoles { username, .. }) => Response::json(
                403,
                &json!({
                    "message": "You do not have permission to access ICP; ask an administrator to map one of your groups to a role",
                    "username": username,
                }),
            ),
            Err(Error::Unauthorized(_)) => message(401, "Invalid credentials"),
            Err(e) => sso_error(&e),
        };
        let actor: String = username.chars().take(64).collect();
        let signed = Signed {
            method: "ldap",
            action: "POST /auth/login",
            actor: &actor,
            client: &client,
            now,
        };
        signed.answer(&store, reply, resp);
    };
    match api.sso.submit(Box::new(job)) {
        Ok(()) => resp,
        Err(e) => sso_error(&e),
    }
}

/// The §2.1 login answer for an opened session: a console token naming it
/// and a refresh credential; `id_token` marks an OIDC sign-in.
fn console_login(
    key: &crate::master_key::MasterKey,
    store: &crate::store::Store,
    l: &auth::Login,
    now: Millis,
    id_token: Option<&str>,
) -> Response {
    // The session's own token never leaves the server.
    let session_hash = auth::sha256_hex(&l.token);
    match auth::issue_refresh(store, &session_hash) {
        Ok(refresh) => {
            let mut body = login_body(
                key,
                &Issued {
                    user: &l.user,
                    principal: &l.principal,
                    session_hash: &session_hash,
                    expires_at: l.expires_at,
                    refresh: &refresh,
                },
                now,
                true,
            );
            if let Some(t) = id_token {
                body["isOidcUser"] = true.into();
                body["idToken"] = t.into();
            }
            Response::json(200, &body)
        }
        Err(e) => {
            log::error!("console login failed: {e}");
            message(500, "Authentication service unavailable")
        }
    }
}

/// ICP's auth-service error shape: `{"message": ...}`.
fn message(status: u16, text: &str) -> Response {
    Response::json(status, &json!({ "message": text }))
}

fn reply(r: Reply) -> Response {
    Response {
        status: r.status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: r.body,
        stream: None,
    }
}

/// The caller of `/graphql`: a console token, an icpd bearer token or the
/// session cookie. `Err` is the answer to send.
fn caller(api: &Api, req: &Request, now: Millis) -> Result<Authenticated, Response> {
    // ICP's answer to any bad credential (§1.4): 400, one message.
    let refused = || reply(Reply::errors(400, AUTH_FAILED));
    if let Some(h) = req.header("authorization") {
        let token = h
            .trim()
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(refused)?;
        return bearer(api, token, now).ok_or_else(refused);
    }
    if cookie(req, SESSION_COOKIE).is_some() {
        // The console's own page: REST's rules (CSRF on POST), and a 401 it
        // knows to answer by signing in again.
        return authenticate(api, req, now).map_err(|e| {
            let status = if matches!(e, Error::Forbidden(_)) {
                403
            } else {
                401
            };
            reply(Reply::errors(status, &e.to_string()))
        });
    }
    Err(refused())
}

/// `GET /runtime-status?environmentId=&token=`: the WebSocket upgrade of
/// §1.5. The token may also come as `Authorization: Bearer`. Refused unless
/// the caller holds an environment permission or may view integrations in
/// that environment; each frame is then filtered by what the caller may
/// view, as the REST API's event stream is.
fn runtime_status(api: &Api, req: &Request, now: Millis) -> Response {
    let token = query_param(req, "token").filter(|t| !t.is_empty());
    let who = match token {
        Some(t) => bearer(api, &t, now),
        None => caller(api, req, now).ok(),
    };
    let Some(who) = who else {
        return message(
            401,
            "Required authentication information is either missing or not valid for the resource.",
        );
    };
    let env = query_param(req, "environmentId")
        .and_then(|e| e.trim().parse::<i64>().ok())
        .and_then(|id| api.store.read(|tx| tx.environment_by_id(id)).ok().flatten());
    let Some(env) = env else {
        return message(404, "environmentId names no environment");
    };
    let p = &who.principal;
    let at = crate::access::Target {
        environment: Some(env.id),
        critical: env.critical,
        ..crate::access::Target::default()
    };
    use crate::access::Permission as P;
    let allowed = [
        P::EnvironmentManage,
        P::EnvironmentManageNonProduction,
        P::IntegrationView,
        P::IntegrationEdit,
        P::IntegrationManage,
    ]
    .iter()
    .any(|perm| p.has(*perm, &at))
        // Integration viewers anywhere: each frame is filtered below.
        || p.has_anywhere(P::IntegrationView);
    if !allowed {
        return message(
            403,
            "Access denied: insufficient permissions to watch runtime status in this environment",
        );
    }
    let upgrade = req
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let key = req.header("sec-websocket-key").map(str::trim).unwrap_or("");
    if !upgrade || key.is_empty() {
        return message(400, "this is a WebSocket: send the upgrade handshake (Upgrade: websocket, Sec-WebSocket-Key)");
    }
    if req.header("sec-websocket-version").map(str::trim) != Some("13") {
        return message(426, "WebSocket version 13 only")
            .with_header("Sec-WebSocket-Version", "13");
    }
    let principal = who.principal.clone();
    let env_id = env.id;
    let rx = api
        .events
        .subscribe_icp(Some(principal.user_id), move |scope| {
            scope.environment_id == env_id
                && principal.has(crate::access::Permission::IntegrationView, &scope.target())
        });
    Response::websocket(key, rx)
}

/// A bearer token (console token, icpd session or API token) given as a
/// query parameter, as ICP's console sends it to `/runtime-status`.
fn bearer(api: &Api, token: &str, now: Millis) -> Option<Authenticated> {
    if token::looks_like_jwt(token) {
        let claims = token::verify(api.master_key.console_token_key(), token, now).ok()?;
        let who = auth::authenticate_session_hash(&api.store, &claims.sid, now).ok()?;
        return (who.principal.user_id.to_string() == claims.sub).then_some(who);
    }
    auth::authenticate(&api.store, token, now).ok()
}

fn run_graphql(api: &Api, req: &Request, now: Millis) -> Response {
    let who = match caller(api, req, now) {
        Ok(w) => w,
        Err(resp) => return resp,
    };
    if who.principal.must_change_password {
        return reply(Reply::errors(
            403,
            "change your password first: POST /api/v1/auth/change-password (or sign in to the console)",
        ));
    }
    let decoded = if req.method == "GET" {
        graphql::decode_get(|name| query_param(req, name))
    } else {
        graphql::decode_post(req.header("content-type"), &req.body)
    };
    let request = match decoded {
        Ok(r) => r,
        Err(r) => return reply(r),
    };
    let username = who.principal.username.clone();
    let out = api
        .gql
        .execute(who.principal, &request, req.method == "POST", now);
    if let Some(fields) = &out.mutation {
        let reason = first_error(&out.body);
        let target = format!(
            "mutation {}",
            fields.join("; ").chars().take(300).collect::<String>()
        );
        let status = if reason.is_empty() { 200 } else { 400 };
        write_audit(
            api,
            req,
            now,
            &username,
            "POST /graphql",
            &target,
            status,
            &reason,
        );
    }
    reply(out)
}

/// The first GraphQL error's message (for the audit entry of a mutation).
fn first_error(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_string))
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find_map(|(k, v)| {
            (percent_decode(k).as_deref() == Some(name))
                .then(|| percent_decode(&v.replace('+', " ")))
                .flatten()
        })
}

fn json_body(req: &Request) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(o)) => Some(o),
        _ => None,
    }
}

/// What a login or refresh hands to ICP's client.
struct Issued<'a> {
    user: &'a auth::User,
    principal: &'a crate::access::Principal,
    session_hash: &'a str,
    expires_at: Millis,
    refresh: &'a str,
}

/// The login answer of §2.1 (`full`), or the refresh answer of §2.3.
fn login_body(key: &crate::master_key::MasterKey, i: &Issued, now: Millis, full: bool) -> Value {
    let permissions = graphql::icp_permissions(i.principal);
    let display_name = if i.user.display_name.is_empty() {
        i.user.username.clone()
    } else {
        i.user.display_name.clone()
    };
    let claims = token::Claims::new(
        i.user.id,
        &i.user.username,
        &display_name,
        &permissions,
        i.session_hash,
        now,
    );
    let jwt = token::issue(key.console_token_key(), &claims);
    let mut body = json!({
        "token": jwt,
        "expiresIn": token::TOKEN_TTL_SECS,
        "refreshToken": i.refresh,
        "refreshTokenExpiresIn": (i.expires_at - now).max(0) / 1000,
        "username": i.user.username,
        "displayName": display_name,
        "permissions": permissions,
    });
    if full {
        body["userId"] = i.user.id.to_string().into();
        body["isOidcUser"] = false.into();
        body["requirePasswordChange"] = i.user.must_change_password.into();
    }
    body
}

fn login(api: &Api, req: &Request, now: Millis) -> Response {
    let body = json_body(req);
    let field = |k: &str| {
        body.as_ref()
            .and_then(|b| b.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (username, password) = (field("username").unwrap_or_default(), field("password"));
    let actor: String = username.chars().take(64).collect();
    let client = req.peer.ip().to_string();
    let resp = match password {
        None => message(400, "username and password are required"),
        Some(password) => match super::auth::password_route(api, &username) {
            Ok(super::auth::PasswordRoute::Directory) => {
                return ldap_console_login(api, username, password, client)
            }
            Err(Error::Forbidden(m)) => message(403, &m),
            Err(e) => {
                log::error!("console login failed: {e}");
                message(500, "Authentication service unavailable")
            }
            Ok(super::auth::PasswordRoute::Local) => {
                match auth::login(&api.store, &username, &password, &client, now) {
                    Ok(l) => console_login(&api.master_key, &api.store, &l, now, None),
                    Err(Error::Unauthorized(_)) => message(401, "Invalid credentials"),
                    Err(Error::TooManyRequests {
                        message: m,
                        retry_after_secs,
                    }) => Response::json(
                        429,
                        &json!({"message": m, "retryAfterSeconds": retry_after_secs}),
                    )
                    .with_header("Retry-After", &retry_after_secs.to_string()),
                    Err(e) => {
                        log::error!("console login failed: {e}");
                        message(500, "Authentication service unavailable")
                    }
                }
            }
        },
    };
    crate::metrics::sign_in("password", resp.status);
    audit_auth(api, req, now, &actor, "POST /auth/login", "login", &resp);
    resp
}

fn refresh(api: &Api, req: &Request, now: Millis) -> Response {
    let token = json_body(req)
        .and_then(|b| {
            b.get("refreshToken")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default();
    let resp = if token.is_empty() {
        message(400, "Refresh token is required")
    } else {
        match auth::refresh_session(&api.store, &token, now) {
            Ok(r) => Response::json(
                200,
                &login_body(
                    &api.master_key,
                    &Issued {
                        user: &r.user,
                        principal: &r.principal,
                        session_hash: &r.session_hash,
                        expires_at: r.expires_at,
                        refresh: &r.refresh,
                    },
                    now,
                    false,
                ),
            ),
            Err(Error::Unauthorized(_)) => message(401, "Invalid or expired refresh token"),
            Err(e) => {
                log::error!("console token refresh failed: {e}");
                message(500, "Authentication service unavailable")
            }
        }
    };
    let actor = if resp.status == 200 {
        serde_json::from_slice::<Value>(&resp.body)
            .ok()
            .and_then(|v| v["username"].as_str().map(str::to_string))
            .unwrap_or_default()
    } else {
        "anonymous".into()
    };
    audit_auth(
        api,
        req,
        now,
        &actor,
        "POST /auth/refresh-token",
        "refresh token",
        &resp,
    );
    resp
}

fn revoke(api: &Api, req: &Request, now: Millis) -> Response {
    let who = match caller(api, req, now) {
        Ok(w) => w,
        Err(_) => return message(401, "Authorization header missing in request"),
    };
    let token = json_body(req)
        .and_then(|b| {
            b.get("refreshToken")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|t| !t.is_empty());
    let resp = match auth::end_sessions(&api.store, who.principal.user_id, token.as_deref()) {
        Ok(true) => {
            api.events.end_streams(Some(who.principal.user_id));
            message(200, "Refresh token revoked successfully")
        }
        Ok(false) if token.is_some() => message(401, "Invalid or expired refresh token"),
        Ok(false) => message(200, "Refresh token revoked successfully"),
        Err(e) => {
            log::error!("revoking refresh tokens failed: {e}");
            message(500, "Authentication service unavailable")
        }
    };
    let target = if token.is_some() {
        "refresh token"
    } else {
        "all refresh tokens"
    };
    audit_auth(
        api,
        req,
        now,
        &who.principal.username,
        "POST /auth/revoke-token",
        target,
        &resp,
    );
    resp
}

fn audit_auth(
    api: &Api,
    req: &Request,
    now: Millis,
    actor: &str,
    action: &str,
    target: &str,
    resp: &Response,
) {
    debug_assert!(is_unsafe(&req.method));
    let reason = icp_reason(resp);
    write_audit(api, req, now, actor, action, target, resp.status, &reason);
}

/// Why ICP's auth service refused: its `{"message"}` (empty when none;
/// the audit keeps it only for a refusal).
fn icp_reason(resp: &Response) -> String {
    serde_json::from_slice::<Value>(&resp.body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_default()
}
