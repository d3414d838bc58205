//! Authentication of people and scripts on the management API: passwords,
//! sessions, personal API tokens, login lock-out and the first admin.
//!
//! Passwords are hashed with PBKDF2-HMAC-SHA256 (600,000 iterations, a
//! random 16-byte salt per user). Sessions and API tokens are 32 random
//! bytes; only their SHA-256 is stored, so a copy of the database grants no
//! access. Five failed logins in a row lock the account for a minute, then
//! for twice as long after each further failure (at most an hour).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use ring::{digest, hmac, pbkdf2};
use serde::Serialize;

use crate::access::{builtin_roles, Principal, Scope};
use crate::error::{Error, Result};
use crate::master_key::{random_bytes, write_private_file};
use crate::store::{ApiTokenRow, DirectoryIdentity, HeldRoleRow, Store, UserRow};
use crate::time::{serialize_opt_rfc3339, serialize_rfc3339, Millis};

/// PBKDF2 work factor (OWASP 2023 guidance for PBKDF2-HMAC-SHA256).
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// How long a login session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Failed logins in a row that lock an account.
pub const LOCKOUT_THRESHOLD: i64 = 5;
const LOCKOUT_BASE: Duration = Duration::from_secs(60);
const LOCKOUT_MAX: Duration = Duration::from_secs(3600);
/// Shortest acceptable password.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "icp_session";
/// File the first admin's password is written to, once.
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

const SESSION_PREFIX: &str = "icps_";
const API_TOKEN_PREFIX: &str = "icpt_";

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(serialize_with = "crate::id::serialize")]
    #[schemars(with = "String")]
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub must_change_password: bool,
    pub locked: bool,
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub created_at: Millis,
    /// Where the user signs in: `local` (password in icpd), `oidc` or `ldap`.
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// A federated user's last sign-in (when their groups were read).
    #[serde(
        serialize_with = "serialize_opt_rfc3339",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub last_directory_sign_in: Option<Millis>,
}

impl User {
    pub fn from_row(u: &UserRow, now: Millis) -> User {
        User {
            id: u.id,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            must_change_password: u.must_change_password,
            locked: u.locked_until.is_some_and(|t| t > now),
            created_at: u.created_at,
            source: u.source.clone(),
            email: u.email.clone(),
            last_directory_sign_in: u.directory_checked_at,
        }
    }
}

/// A role a user holds, as `icpd user list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldRole {
    pub role: String,
    /// Where it applies: `organization`, `project shop`, `environment
    /// prod` or `integration shop/cart` (`(deleted)` for a resource that
    /// is gone).
    pub scope: String,
    /// The group it comes through; absent for a direct assignment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl HeldRole {
    fn from_row(r: &HeldRoleRow) -> HeldRole {
        let name = |n: &Option<String>| n.clone().unwrap_or_else(|| "(deleted)".into());
        let scope = match r.scope {
            Scope::Organization => "organization".to_string(),
            Scope::Project(_) => format!("project {}", name(&r.project)),
            Scope::Environment(_) => format!("environment {}", name(&r.environment)),
            Scope::Integration(_) => match (&r.project, &r.integration) {
                (Some(p), Some(i)) => format!("integration {p}/{i}"),
                _ => "integration (deleted)".into(),
            },
        };
        HeldRole {
            role: r.role.clone(),
            scope,
            group: r.group.clone(),
        }
    }
}

/// Every user's roles (direct and through groups), by user id.
pub fn held_roles(store: &Store) -> Result<BTreeMap<i64, Vec<HeldRole>>> {
    let mut by_user: BTreeMap<i64, Vec<HeldRole>> = BTreeMap::new();
    for row in store.read(|tx| tx.held_roles())? {
        by_user
            .entry(row.user_id)
            .or_default()
            .push(HeldRole::from_row(&row));
    }
    Ok(by_user)
}

/// An API token as listed (never the token itself).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub created_at: Millis,
    #[serde(serialize_with = "serialize_opt_rfc3339")]
    #[schemars(with = "Option<String>")]
    pub expires_at: Option<Millis>,
    #[serde(serialize_with = "serialize_opt_rfc3339")]
    #[schemars(with = "Option<String>")]
    pub last_used_at: Option<Millis>,
    #[serde(serialize_with = "serialize_opt_rfc3339")]
    #[schemars(with = "Option<String>")]
    pub revoked_at: Option<Millis>,
}

impl From<&ApiTokenRow> for ApiToken {
    fn from(t: &ApiTokenRow) -> ApiToken {
        ApiToken {
            id: t.id.clone(),
            name: t.name.clone(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// How a request was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A login session; `csrf` must accompany unsafe requests that came with the cookie.
    Session { token_hash: String, csrf: String },
    /// A personal API token.
    ApiToken { id: String },
}

/// A caller and how they proved who they are.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub principal: Principal,
    pub via: Via,
}

/// What a successful login hands back.
#[derive(Debug, Clone)]
pub struct Login {
    pub token: String,
    pub csrf_token: String,
    pub expires_at: Millis,
    pub user: User,
    pub principal: Principal,
}

/// Hashes a password for storage: `pbkdf2-sha256$ITER$SALT$HASH` (base64).
pub fn hash_password(password: &str) -> Result<String> {
    hash_with(password, PBKDF2_ITERATIONS)
}

fn hash_with(password: &str, iterations: u32) -> Result<String> {
    let salt = random_bytes::<16>()?;
    let mut out = [0u8; 32];
    let n = NonZeroU32::new(iterations).ok_or_else(|| Error::Internal("zero iterations".into()))?;
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        n,
        &salt,
        password.as_bytes(),
        &mut out,
    );
    Ok(format!(
        "pbkdf2-sha256${iterations}${}${}",
        B64.encode(salt),
        B64.encode(out)
    ))
}

/// Checks a password against a stored hash, in constant time.
pub fn verify_password(stored: &str, password: &str) -> bool {
    let parts: Vec<&str> = stored.split('$').collect();
    let [scheme, iterations, salt, hash] = parts[..] else {
        return false;
    };
    let (Some(n), Ok(salt), Ok(hash)) = (
        iterations.parse::<u32>().ok().and_then(NonZeroU32::new),
        B64.decode(salt),
        B64.decode(hash),
    ) else {
        return false;
    };
    scheme == "pbkdf2-sha256"
        && pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            n,
            &salt,
            password.as_bytes(),
            &hash,
        )
        .is_ok()
}

/// Rejects passwords too weak to accept.
pub fn check_new_password(password: &str, username: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::Unprocessable(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.eq_ignore_ascii_case(username) {
        return Err(Error::Unprocessable(
            "the password must differ from the user name".into(),
        ));
    }
    Ok(())
}

/// Checks a user name given by an operator.
pub fn check_username(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !ok {
        return Err(Error::BadRequest(
            "a user name has 1 to 64 characters: letters, digits, '.', '_', '-' or '@'".into(),
        ));
    }
    Ok(())
}

/// SHA-256 of `text` in lower-case hex: how API, session and ingest tokens
/// are stored.
pub fn sha256_hex(text: &str) -> String {
    digest::digest(&digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_token(prefix: &str) -> Result<String> {
    Ok(format!("{prefix}{}", B64URL.encode(random_bytes::<32>()?)))
}

fn lockout_for(failed: i64) -> Duration {
    let doublings = u32::try_from((failed - LOCKOUT_THRESHOLD).clamp(0, 16)).unwrap_or(16);
    LOCKOUT_BASE.saturating_mul(1 << doublings).min(LOCKOUT_MAX)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Loads what a user is allowed to do.
pub fn principal(store: &Store, user: &UserRow) -> Result<Principal> {
    let grants = store.read(|tx| tx.grants_for_user(user.id))?;
    Ok(Principal {
        user_id: user.id,
        username: user.username.clone(),
        grants,
        must_change_password: user.must_change_password,
    })
}

/// Checks a user name and password and opens a session. Wrong credentials
/// and unknown users fail alike; a locked account gets 429 with the wait.
pub fn login(
    store: &Store,
    username: &str,
    password: &str,
    client: &str,
    now: Millis,
) -> Result<Login> {
    let invalid = || Error::Unauthorized("invalid user name or password".into());
    let Some(user) = store.read(|tx| tx.user_by_name(username))? else {
        // Spend the same time as a real check, so timing does not reveal which users exist.
        let _ = verify_password(
            DUMMY_HASH.get_or_init(|| hash_password("dummy").unwrap_or_default()),
            password,
        );
        return Err(invalid());
    };
    if let Some(until) = user.locked_until.filter(|&t| t > now) {
        let secs = u64::try_from((until - now + 999) / 1000).unwrap_or(1);
        return Err(Error::TooManyRequests {
            message: format!("too many failed logins; this account is locked for {secs} s"),
            retry_after_secs: secs,
        });
    }
    // A single-sign-on user has no password here, whatever was stored.
    if user.source != "local" || !verify_password(&user.password_hash, password) {
        let failed = user.failed_logins + 1;
        let locked_until = (failed >= LOCKOUT_THRESHOLD).then(|| now + ms(lockout_for(failed)));
        store.write(|tx| tx.set_login_failures(user.id, failed, locked_until))?;
        return Err(invalid());
    }
    let token = random_token(SESSION_PREFIX)?;
    let csrf_token = B64URL.encode(random_bytes::<24>()?);
    let expires_at = now + ms(SESSION_TTL);
    store.write(|tx| {
        tx.set_login_failures(user.id, 0, None)?;
        tx.delete_expired_sessions(now)?;
        tx.insert_session(
            &sha256_hex(&token),
            user.id,
            &csrf_token,
            now,
            expires_at,
            client,
        )
    })?;
    let principal = principal(store, &user)?;
    Ok(Login {
        token,
        csrf_token,
        expires_at,
        user: User::from_row(&user, now),
        principal,
    })
}

static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// How a directory sign-in ended.
#[derive(Debug)]
pub enum SignedIn {
    /// A session was opened.
    Yes(Box<Login>),
    /// The directory vouched for the user, but no mapping gives any of
    /// their groups a role: no session (their groups were still recorded,
    /// so any older session of theirs has lost its roles too).
    NoRoles {
        username: String,
        groups: Vec<String>,
    },
}

/// Signs in a user the directory (OIDC provider or LDAP) vouched for:
/// creates them on their first sign-in, records their name, e-mail and
/// groups (which is what their roles come from), and opens a session if
/// they hold any role. A local account of the same name is never taken
/// over, nor an OIDC account of another subject.
pub fn federated_login(
    store: &Store,
    username: &str,
    id: &DirectoryIdentity,
    client: &str,
    now: Millis,
) -> Result<SignedIn> {
    let token = random_token(SESSION_PREFIX)?;
    let csrf_token = B64URL.encode(random_bytes::<24>()?);
    let expires_at = now + ms(SESSION_TTL);
    let opened = store.write(|tx| {
        let user_id = match tx.user_by_name(username)? {
            Some(u) if u.source != id.source => {
                return Err(Error::Forbidden(format!(
                    "'{username}' is a {} account in icpd and cannot sign in through {}; ask an administrator to remove or rename it",
                    u.source, id.source
                )))
            }
            Some(u)
                if id.source == "oidc"
                    && u.external_id.as_deref().is_some_and(|x| x != id.external_id) =>
            {
                return Err(Error::Forbidden(format!(
                    "'{username}' belongs to another identity at the provider; ask an administrator"
                )))
            }
            Some(u) => u.id,
            None => tx.insert_federated_user(username, id, now)?,
        };
        tx.set_directory_identity(user_id, id, now)?;
        if tx.grants_for_user(user_id)?.is_empty() {
            return Ok(None);
        }
        tx.delete_expired_sessions(now)?;
        tx.insert_session(
            &sha256_hex(&token),
            user_id,
            &csrf_token,
            now,
            expires_at,
            client,
        )?;
        tx.user(user_id)
    })?;
    let Some(user) = opened else {
        return Ok(SignedIn::NoRoles {
            username: username.to_string(),
            groups: id.groups.to_vec(),
        });
    };
    let principal = principal(store, &user)?;
    Ok(SignedIn::Yes(Box::new(Login {
        token,
        csrf_token,
        expires_at,
        user: User::from_row(&user, now),
        principal,
    })))
}

/// Whether a federated user's directory information is too old to act on:
/// their last sign-in is more than one session lifetime ago. Their API
/// tokens stop then, so a user removed from a group loses access within
/// one session lifetime even if they never sign in again.
pub fn directory_stale(user: &UserRow, now: Millis) -> bool {
    user.source != "local"
        && user
            .directory_checked_at
            .is_none_or(|t| now - t > ms(SESSION_TTL))
}

/// Ends a session.
pub fn logout(store: &Store, via: &Via) -> Result<()> {
    if let Via::Session { token_hash, .. } = via {
        store.write(|tx| tx.delete_session(token_hash))?;
    }
    Ok(())
}

/// Resolves a bearer token (session or API token) to its user.
pub fn authenticate(store: &Store, token: &str, now: Millis) -> Result<Authenticated> {
    let unauthorized = |m: &str| Error::Unauthorized(m.to_string());
    if let Some(rest) = token.strip_prefix(API_TOKEN_PREFIX) {
        // The row is found by the public id; the hash is then compared in constant time.
        let id = rest.split('_').next().unwrap_or_default();
        let row = store
            .read(|tx| tx.api_token(id))?
            .ok_or_else(|| unauthorized("unknown API token"))?;
        let hash = sha256_hex(token);
        if !constant_time_eq(hash.as_bytes(), row.token_hash.as_bytes()) {
            return Err(unauthorized("unknown API token"));
        }
        if row.revoked_at.is_some() {
            return Err(unauthorized("this API token was revoked"));
        }
        if row.expires_at.is_some_and(|e| e <= now) {
            return Err(unauthorized("this API token has expired; create a new one"));
        }
        let user = store
            .read(|tx| tx.user(row.user_id))?
            .ok_or_else(|| unauthorized("unknown API token"))?;
        if directory_stale(&user, now) {
            return Err(unauthorized(
                "this API token belongs to a single-sign-on user who has not signed in for 12 hours; sign in again to keep using it",
            ));
        }
        // Recording use at most once a minute keeps reads from turning into writes.
        if row.last_used_at.is_none_or(|t| now - t > 60_000) {
            store.write(|tx| tx.touch_api_token(&row.id, now))?;
        }
        return Ok(Authenticated {
            principal: principal(store, &user)?,
            via: Via::ApiToken { id: row.id },
        });
    }
    // Sessions are found by the SHA-256 of the token in SQL: an index lookup
    // can leak at most how much of a hash matched, which says nothing about
    // any token, so no constant-time comparison is needed here.
    let token_hash = sha256_hex(token);
    let session = store
        .read(|tx| tx.session(&token_hash))?
        .filter(|s| s.expires_at > now)
        .ok_or_else(|| unauthorized("the session has expired or was ended; log in again"))?;
    let user = store
        .read(|tx| tx.user(session.user_id))?
        .ok_or_else(|| unauthorized("unknown user"))?;
    Ok(Authenticated {
        principal: principal(store, &user)?,
        via: Via::Session {
            token_hash,
            csrf: session.csrf_token,
        },
    })
}

/// Resolves a session by the SHA-256 of its token (what a console token
/// carries as `sid`); the session must still exist and be unexpired.
pub fn authenticate_session_hash(
    store: &Store,
    token_hash: &str,
    now: Millis,
) -> Result<Authenticated> {
    let unauthorized =
        || Error::Unauthorized("the session has expired or was ended; log in again".into());
    let session = store
        .read(|tx| tx.session(token_hash))?
        .filter(|s| s.expires_at > now)
        .ok_or_else(unauthorized)?;
    let user = store
        .read(|tx| tx.user(session.user_id))?
        .ok_or_else(unauthorized)?;
    Ok(Authenticated {
        principal: principal(store, &user)?,
        via: Via::Session {
            token_hash: token_hash.to_string(),
            csrf: session.csrf_token,
        },
    })
}

/// Prefix of ICP-style refresh tokens.
const REFRESH_PREFIX: &str = "icpr_";

/// A refresh credential for the session whose token hashes to
/// `token_hash` (ICP's refresh token, GRAPHQL.md §2.3): its own random
/// secret, stored as SHA-256, that only buys new console tokens for that
/// session. It replaces the session's previous one.
pub fn issue_refresh(store: &Store, token_hash: &str) -> Result<String> {
    let refresh = random_token(REFRESH_PREFIX)?;
    let set = store.write(|tx| tx.set_session_refresh(token_hash, &sha256_hex(&refresh)))?;
    if !set {
        return Err(Error::Unauthorized(
            "the session has ended; log in again".into(),
        ));
    }
    Ok(refresh)
}

/// What a refresh answers: the session (by the hash of its token), its
/// user, when it ends, and the refresh credential that replaced the one used.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub session_hash: String,
    pub expires_at: Millis,
    pub refresh: String,
    pub user: User,
    pub principal: Principal,
}

/// Rotates a refresh credential: the session it belongs to stays (and keeps
/// its absolute lifetime, so refreshing never extends a session), the
/// credential used is replaced by a new one.
pub fn refresh_session(store: &Store, refresh: &str, now: Millis) -> Result<Refreshed> {
    let invalid = || Error::Unauthorized("Invalid or expired refresh token".into());
    if !refresh.starts_with(REFRESH_PREFIX) {
        return Err(invalid());
    }
    let fresh = random_token(REFRESH_PREFIX)?;
    let (session_hash, row, user) = store.write(|tx| {
        let (hash, row) = tx
            .session_by_refresh(&sha256_hex(refresh))?
            .filter(|(_, s)| s.expires_at > now)
            .ok_or_else(invalid)?;
        let user = tx.user(row.user_id)?.ok_or_else(invalid)?;
        tx.set_session_refresh(&hash, &sha256_hex(&fresh))?;
        Ok((hash, row, user))
    })?;
    let principal = principal(store, &user)?;
    Ok(Refreshed {
        session_hash,
        expires_at: row.expires_at,
        refresh: fresh,
        user: User::from_row(&user, now),
        principal,
    })
}

/// Ends the session `refresh` belongs to if it is `user_id`'s, or (`None`)
/// every session of `user_id`. Whether anything was ended.
pub fn end_sessions(store: &Store, user_id: i64, refresh: Option<&str>) -> Result<bool> {
    store.write(|tx| match refresh {
        None => Ok(tx.delete_user_sessions(user_id, None)? > 0),
        Some(r) => match tx.session_by_refresh(&sha256_hex(r))? {
            Some((hash, s)) if s.user_id == user_id => tx.delete_session(&hash),
            _ => Ok(false),
        },
    })
}

/// Compares two secret-derived values (token hashes, CSRF tokens) in
/// constant time. `ring::constant_time` is deprecated, so this goes through
/// `hmac::verify`, whose tag check is ring's constant-time comparison: both
/// values are MACed under a per-process key and the tags compared, so the
/// time does not depend on where, or whether, the values (or lengths) differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    static KEY: std::sync::OnceLock<hmac::Key> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| {
        // Any key keeps the comparison constant-time; a random one only
        // keeps the tags unpredictable, so a failed generator is no reason to fail.
        let bytes = random_bytes::<32>().unwrap_or([0x5a; 32]);
        hmac::Key::new(hmac::HMAC_SHA256, &bytes)
    });
    hmac::verify(key, a, hmac::sign(key, b).as_ref()).is_ok()
}

/// Changes the caller's password after checking the current one; ends their other sessions.
pub fn change_password(
    store: &Store,
    who: &Authenticated,
    current: &str,
    new: &str,
    now: Millis,
) -> Result<()> {
    let user = store
        .read(|tx| tx.user(who.principal.user_id))?
        .ok_or_else(|| Error::NotFound("user not found".into()))?;
    if !verify_password(&user.password_hash, current) {
        return Err(Error::Forbidden(
            "the current password is not correct".into(),
        ));
    }
    if current == new {
        return Err(Error::Unprocessable(
            "the new password must differ from the current one".into(),
        ));
    }
    check_new_password(new, &user.username)?;
    let hash = hash_password(new)?;
    let keep = match &who.via {
        Via::Session { token_hash, .. } => Some(token_hash.clone()),
        Via::ApiToken { .. } => None,
    };
    store.write(|tx| {
        tx.set_password(user.id, &hash, false, now)?;
        tx.delete_user_sessions(user.id, keep.as_deref())?;
        Ok(())
    })
}

/// Creates a user with a role at organization scope (if given).
pub fn create_user(
    store: &Store,
    username: &str,
    password: &str,
    role: Option<&str>,
    must_change: bool,
    now: Millis,
) -> Result<User> {
    check_username(username)?;
    check_new_password(password, username)?;
    let hash = hash_password(password)?;
    store.write(|tx| {
        tx.ensure_builtin_roles(&builtin_roles(), now)?;
        if tx.user_by_name(username)?.is_some() {
            return Err(Error::Conflict(format!("user '{username}' already exists")));
        }
        let role_id = match role {
            Some(name) => Some(
                tx.roles()?
                    .into_iter()
                    .find(|r| r.name.eq_ignore_ascii_case(name))
                    .ok_or_else(|| Error::NotFound(format!("no role named '{name}'; roles: Super Admin, Admin, Developer, Project Admin, Viewer or a custom one")))?
                    .id,
            ),
            None => None,
        };
        let id = tx.insert_user(username, "", &hash, must_change, now)?;
        if let Some(role_id) = role_id {
            tx.insert_assignment(role_id, Some(id), None, Scope::Organization, now)?;
        }
        let row = tx.user(id)?.ok_or_else(|| Error::Internal("user vanished".into()))?;
        Ok(User::from_row(&row, now))
    })
}

/// Sets a new random password that must be changed at the next login; ends the user's sessions.
pub fn reset_password(store: &Store, username: &str, now: Millis) -> Result<String> {
    let password = B64URL.encode(random_bytes::<15>()?);
    let hash = hash_password(&password)?;
    store.write(|tx| {
        let user = tx.user_by_name(username)?.ok_or_else(|| {
            Error::NotFound(format!("no user named '{username}'; see `icpd user list`"))
        })?;
        if user.source != "local" {
            return Err(Error::Conflict(format!(
                "'{username}' signs in through {}; icpd keeps no password for it",
                user.source
            )));
        }
        tx.set_password(user.id, &hash, true, now)?;
        tx.delete_user_sessions(user.id, None)?;
        Ok(())
    })?;
    Ok(password)
}

/// Creates a personal API token; the token itself is returned only here.
pub fn create_api_token(
    store: &Store,
    user_id: i64,
    name: &str,
    ttl: Option<Duration>,
    now: Millis,
) -> Result<(ApiToken, String)> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(Error::BadRequest(
            "a token needs a name of 1 to 100 characters".into(),
        ));
    }
    let id: String = random_bytes::<4>()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let token = format!(
        "{API_TOKEN_PREFIX}{id}_{}",
        B64URL.encode(random_bytes::<32>()?)
    );
    let row = ApiTokenRow {
        id: id.clone(),
        user_id,
        name: name.to_string(),
        token_hash: sha256_hex(&token),
        created_at: now,
        expires_at: ttl.map(|t| now.saturating_add(ms(t))),
        last_used_at: None,
        revoked_at: None,
    };
    store.write(|tx| tx.insert_api_token(&row))?;
    Ok((ApiToken::from(&row), token))
}

/// On a database with no users: creates `admin` (Super Admin) with a random
/// password that must be changed at first login, writes the password to
/// `DATA_DIR/initial-admin-password` (mode 0600) and returns it.
pub fn ensure_initial_admin(store: &Store, data_dir: &Path, now: Millis) -> Result<Option<String>> {
    store.write(|tx| tx.ensure_builtin_roles(&builtin_roles(), now))?;
    if store.read(|tx| tx.count_users())? > 0 {
        return Ok(None);
    }
    let password = B64URL.encode(random_bytes::<15>()?);
    create_user(store, "admin", &password, Some("Super Admin"), true, now)?;
    write_private_file(
        &data_dir.join(INITIAL_PASSWORD_FILE),
        format!("{password}\n").as_bytes(),
    )?;
    Ok(Some(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hashes_verify_and_differ_by_salt() {
        let a = hash_with("correct horse", 1000).unwrap();
        let b = hash_with("correct horse", 1000).unwrap();
        assert_ne!(a, b);
        assert!(verify_password(&a, "correct horse"));
        assert!(!verify_password(&a, "correct horsE"));
        assert!(!verify_password("garbage", "x"));
        assert!(hash_password("x")
            .unwrap()
            .starts_with("pbkdf2-sha256$600000$"));
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn a_federated_users_directory_information_goes_stale_after_a_session_lifetime() {
        let user = |source: &str, checked: Option<Millis>| UserRow {
            id: 1,
            username: "u".into(),
            display_name: String::new(),
            password_hash: String::new(),
            must_change_password: false,
            failed_logins: 0,
            locked_until: None,
            created_at: 0,
            source: source.into(),
            external_id: None,
            email: None,
            directory_checked_at: checked,
        };
        let ttl = ms(SESSION_TTL);
        let now = 10 * ttl;
        assert!(!directory_stale(&user("local", None), now));
        assert!(directory_stale(&user("oidc", None), now));
        assert!(!directory_stale(&user("oidc", Some(now - ttl)), now));
        assert!(directory_stale(&user("ldap", Some(now - ttl - 1)), now));
    }

    #[test]
    fn lockout_grows_and_is_capped() {
        assert_eq!(lockout_for(5), Duration::from_secs(60));
        assert_eq!(lockout_for(6), Duration::from_secs(120));
        assert_eq!(lockout_for(30), Duration::from_secs(3600));
    }
}
