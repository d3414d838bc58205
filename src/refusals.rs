//! Refusals: runtimes and log shippers turned away for their credential,
//! their binding or their rate, so that a runtime that "does not show up"
//! can be explained without reading packet traces.
//!
//! Code that refuses returns a [`Refused`]: the [`Error`] the client gets
//! and, when it is one of the refusals worth a trace, the [`Reason`] and
//! what is known of the [`Subject`] (key id, environment, runtime id;
//! never a secret or a token). A body that does not decode is a plain
//! error, not a refusal: it says nothing about the credential.
//!
//! The runtime listener's router hands each refusal to [`Refusals::record`],
//! which
//! - counts it in `/metrics` by listener and reason (a fixed label set),
//! - logs it at warn, at most once per source address and reason per
//!   minute ([`LOG_EVERY_MS`]); the next line says how many were not
//!   logged meanwhile. The limiter tracks at most [`MAX_SOURCES`] pairs;
//!   beyond that one shared line a minute stands for all other sources,
//! - keeps it in a ring of the last [`KEEP_PER_ENVIRONMENT`] per
//!   environment (and one ring for refusals that name no environment, such
//!   as an unknown key id), which the management API and the console's
//!   runtimes page show.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

use serde::Serialize;

use crate::access::Target;
use crate::error::Error;
use crate::time::{serialize_rfc3339, Millis};

/// Refusals kept per environment.
pub const KEEP_PER_ENVIRONMENT: usize = 100;
/// A source address is logged at most once per reason in this window.
pub const LOG_EVERY_MS: Millis = 60_000;
/// (source, reason) pairs the log limiter tracks at once.
pub const MAX_SOURCES: usize = 1024;

/// Why a runtime or shipper was refused. The labels are the `reason`
/// label of `icpd_runtime_refusals_total` and the API's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No `Authorization: Bearer ...` header.
    MissingCredentials,
    /// A token that is not a JWT with a key id, or not HS256.
    MalformedToken,
    /// The key id (or ingest token id) names no credential.
    UnknownKey,
    /// The key exists but the token was not signed with its material (or
    /// the ingest token does not match): a wrong or mistyped secret.
    WrongSecret,
    /// Issuer, audience, lifetime or scope of the token do not hold.
    InvalidClaims,
    /// The secret or ingest token was revoked.
    Revoked,
    /// The secret expired.
    Expired,
    /// The heartbeat names another environment than the secret's.
    EnvironmentMismatch,
    /// The runtime, integration or runtime type does not match what the
    /// secret is bound to, or what the runtime registered under.
    BindingMismatch,
    /// Over the runtime's heartbeat rate limit.
    RateLimited,
    /// A runtime protocol request sent to the management port.
    WrongListener,
}

impl Reason {
    pub const ALL: [Reason; 11] = [
        Reason::MissingCredentials,
        Reason::MalformedToken,
        Reason::UnknownKey,
        Reason::WrongSecret,
        Reason::InvalidClaims,
        Reason::Revoked,
        Reason::Expired,
        Reason::EnvironmentMismatch,
        Reason::BindingMismatch,
        Reason::RateLimited,
        Reason::WrongListener,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reason::MissingCredentials => "missing_credentials",
            Reason::MalformedToken => "malformed_token",
            Reason::UnknownKey => "unknown_key",
            Reason::WrongSecret => "wrong_secret",
            Reason::InvalidClaims => "invalid_claims",
            Reason::Revoked => "revoked",
            Reason::Expired => "expired",
            Reason::EnvironmentMismatch => "environment_mismatch",
            Reason::BindingMismatch => "binding_mismatch",
            Reason::RateLimited => "rate_limited",
            Reason::WrongListener => "wrong_listener",
        }
    }
}

impl schemars::JsonSchema for Reason {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RefusalReason".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let labels: Vec<&str> = Reason::ALL.iter().map(|r| r.label()).collect();
        schemars::json_schema!({"type": "string", "enum": labels})
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.label())
    }
}

/// Who was refused, as far as the request told: public identifiers only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subject {
    /// `runtime secret` or `ingest token`.
    pub credential: Option<&'static str>,
    /// The secret's key id or the ingest token's public id (for an unknown
    /// key, the id the token claimed).
    pub key_id: Option<String>,
    pub environment_id: Option<i64>,
    pub environment: Option<String>,
    pub project_id: Option<i64>,
    pub integration_id: Option<i64>,
    pub runtime_id: Option<String>,
}

impl Subject {
    /// The access target a viewer of this refusal needs `integration:view`
    /// on: its environment, project and integration as far as known.
    pub fn target(&self) -> Target {
        Target {
            environment: self.environment_id,
            project: self.project_id,
            integration: self.integration_id,
            critical: false,
        }
    }

    /// A runtime secret that the token named (and that exists).
    pub fn secret(s: &crate::secrets::ActiveSecret) -> Subject {
        Subject {
            credential: Some("runtime secret"),
            key_id: Some(s.key_id.clone()),
            environment_id: Some(s.environment_id),
            environment: Some(s.environment.clone()),
            project_id: s.project_id,
            integration_id: s.integration_id,
            runtime_id: None,
        }
    }

    /// Keeps `id` as the runtime id if it looks like one (it came from an
    /// unauthenticated body or query).
    pub fn with_runtime(mut self, id: Option<&str>) -> Subject {
        if self.runtime_id.is_none() {
            self.runtime_id = id.filter(|id| looks_like_id(id, 64)).map(str::to_string);
        }
        self
    }
}

/// Whether `s` can be shown and logged as an identifier: 1 to `max`
/// characters of `[A-Za-z0-9_-]`.
pub fn looks_like_id(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An error, and why, when it turned a client away for a [`Reason`].
#[derive(Debug)]
pub struct Refused {
    pub error: Error,
    /// `None` for errors that are not refusals (a body that does not
    /// decode, a database error).
    pub reason: Option<Reason>,
    /// Boxed: refusals are the rare path, and a small `Err` keeps every
    /// `Result` of the protocol small.
    pub subject: Box<Subject>,
}

impl Refused {
    pub fn new(reason: Reason, subject: Subject, error: Error) -> Refused {
        Refused {
            error,
            reason: Some(reason),
            subject: Box::new(subject),
        }
    }

    /// The same refusal, naming `runtime_id` if it named no runtime yet.
    pub fn naming_runtime(mut self, runtime_id: Option<&str>) -> Refused {
        *self.subject = std::mem::take(&mut *self.subject).with_runtime(runtime_id);
        self
    }
}

impl From<Error> for Refused {
    fn from(error: Error) -> Refused {
        Refused {
            error,
            reason: None,
            subject: Box::default(),
        }
    }
}

/// One refusal as kept and shown.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    #[serde(serialize_with = "serialize_rfc3339")]
    #[schemars(with = "String")]
    pub at: Millis,
    /// The client's address.
    pub source: IpAddr,
    /// `runtime` or `management`.
    pub listener: &'static str,
    /// Method and path, e.g. `POST /icp/deltaHeartbeat`.
    pub request: String,
    pub reason: Reason,
    /// The HTTP status the client got.
    pub status: u16,
    /// The message the client got.
    pub message: String,
    pub environment: Option<String>,
    pub credential: Option<&'static str>,
    pub key_id: Option<String>,
    pub runtime_id: Option<String>,
    #[serde(skip)]
    pub target: Target,
    /// Order of recording (times may tie).
    #[serde(skip)]
    seq: u64,
}

impl Refusal {
    /// The refusal of `request` from `source` that `refused` describes.
    pub fn new(
        at: Millis,
        source: IpAddr,
        listener: &'static str,
        request: String,
        reason: Reason,
        status: u16,
        refused: &Refused,
    ) -> Refusal {
        let s = &refused.subject;
        Refusal {
            at,
            source,
            listener,
            request,
            reason,
            status,
            message: refused.error.to_string(),
            environment: s.environment.clone(),
            credential: s.credential,
            key_id: s.key_id.clone(),
            runtime_id: s.runtime_id.clone(),
            target: s.target(),
            seq: 0,
        }
    }

    /// The warn line, without the secret or token (neither is in a refusal).
    fn log_line(&self, not_logged: u64) -> String {
        let mut who = Vec::new();
        if let Some(k) = &self.key_id {
            who.push(format!("{} {k}", self.credential.unwrap_or("key")));
        }
        if let Some(e) = &self.environment {
            who.push(format!("environment {e}"));
        }
        if let Some(r) = &self.runtime_id {
            who.push(format!("runtime {r}"));
        }
        let who = if who.is_empty() {
            String::new()
        } else {
            format!(" [{}]", who.join(", "))
        };
        let mut line = format!(
            "refused {} from {} on the {} listener: {} ({}){who}",
            self.request,
            self.source,
            self.listener,
            self.reason.label(),
            self.status,
        );
        // The reason says it all for a missing header, and the answer's
        // wording (an `Authorization: Bearer` hint) would look like a
        // credential in the log.
        if self.reason != Reason::MissingCredentials {
            line.push_str(": ");
            line.push_str(&self.message);
        }
        if not_logged > 0 {
            line.push_str(&format!(
                " ({not_logged} more like it were not logged in the last minute)"
            ));
        }
        line
    }
}

/// Whether a refusal gets a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Log it, saying how many were not logged since the last line.
    Log {
        not_logged: u64,
    },
    Suppress,
}

/// The log limiter's state of one (source, reason), or of the shared
/// overflow line.
#[derive(Debug, Clone, Copy)]
struct Window {
    logged_at: Millis,
    not_logged: u64,
}

impl Window {
    fn admit(&mut self, now: Millis) -> Decision {
        if now.saturating_sub(self.logged_at) < LOG_EVERY_MS {
            self.not_logged += 1;
            return Decision::Suppress;
        }
        let not_logged = std::mem::take(&mut self.not_logged);
        self.logged_at = now;
        Decision::Log { not_logged }
    }
}

/// One log line per (source, reason) per window, in bounded memory.
#[derive(Debug, Default)]
struct LogLimiter {
    windows: HashMap<(IpAddr, Reason), Window>,
    /// The one window of every pair that found the table full.
    overflow: Option<Window>,
    /// Suppressed refusals of windows forgotten to make room, told with
    /// the next line.
    forgotten: u64,
}

impl LogLimiter {
    fn admit(&mut self, source: IpAddr, reason: Reason, now: Millis) -> Decision {
        let key = (source, reason);
        // Whether the pair has, or can get, a window of its own.
        let tracked =
            |windows: &HashMap<_, _>| windows.len() < MAX_SOURCES || windows.contains_key(&key);
        if !tracked(&self.windows) {
            let mut forgotten = 0;
            self.windows.retain(|_, w| {
                let keep = now.saturating_sub(w.logged_at) < LOG_EVERY_MS;
                if !keep {
                    forgotten += w.not_logged;
                }
                keep
            });
            self.forgotten += forgotten;
        }
        // A new window has never logged.
        let fresh = Window {
            logged_at: Millis::MIN,
            not_logged: 0,
        };
        let window = if tracked(&self.windows) {
            self.windows.entry(key).or_insert(fresh)
        } else {
            self.overflow.get_or_insert(fresh)
        };
        match window.admit(now) {
            Decision::Log { not_logged } => Decision::Log {
                not_logged: not_logged + std::mem::take(&mut self.forgotten),
            },
            Decision::Suppress => Decision::Suppress,
        }
    }
}

/// Recent refusals and the log limiter; one per server.
#[derive(Debug, Default)]
pub struct Refusals {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Newest first, per environment id (`None`: no environment known).
    rings: HashMap<Option<i64>, VecDeque<Refusal>>,
    limiter: LogLimiter,
    recorded: u64,
}

impl Refusals {
    pub fn new() -> Refusals {
        Refusals::default()
    }

    /// Counts, logs (rate-limited) and keeps one refusal.
    pub fn record(&self, mut r: Refusal) {
        crate::metrics::refused(r.listener, r.reason);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.recorded += 1;
        r.seq = st.recorded;
        if let Decision::Log { not_logged } = st.limiter.admit(r.source, r.reason, r.at) {
            log::warn!("{}", r.log_line(not_logged));
        }
        let ring = st.rings.entry(r.target.environment).or_default();
        ring.push_front(r);
        ring.truncate(KEEP_PER_ENVIRONMENT);
    }

    /// Up to `limit` refusals, newest first, of one environment (`Some`)
    /// or of all of them and those with none (`None`), that `visible`
    /// lets through.
    pub fn recent(
        &self,
        environment: Option<i64>,
        limit: usize,
        visible: impl Fn(&Target) -> bool,
    ) -> Vec<Refusal> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Refusal> = st
            .rings
            .iter()
            .filter(|(env, _)| environment.is_none_or(|id| **env == Some(id)))
            .flat_map(|(_, ring)| ring)
            .filter(|r| visible(&r.target))
            .cloned()
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.seq));
        out.truncate(limit);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn one_line_per_source_and_reason_per_minute_with_the_count() {
        let mut l = LogLimiter::default();
        let t = 1_000_000;
        assert_eq!(
            l.admit(ip(1), Reason::Revoked, t),
            Decision::Log { not_logged: 0 }
        );
        for i in 1..=4 {
            assert_eq!(l.admit(ip(1), Reason::Revoked, t + i), Decision::Suppress);
        }
        // Another reason, another source: their own windows.
        assert_eq!(
            l.admit(ip(1), Reason::Expired, t + 5),
            Decision::Log { not_logged: 0 }
        );
        assert_eq!(
            l.admit(ip(2), Reason::Revoked, t + 5),
            Decision::Log { not_logged: 0 }
        );
        assert_eq!(
            l.admit(ip(1), Reason::Revoked, t + LOG_EVERY_MS - 1),
            Decision::Suppress
        );
        assert_eq!(
            l.admit(ip(1), Reason::Revoked, t + LOG_EVERY_MS),
            Decision::Log { not_logged: 5 }
        );
        assert_eq!(
            l.admit(ip(1), Reason::Revoked, t + LOG_EVERY_MS + 1),
            Decision::Suppress
        );
    }

    #[test]
    fn the_limiter_stays_bounded_under_many_sources() {
        let mut l = LogLimiter::default();
        let t = 5_000_000;
        for n in 0..MAX_SOURCES as u32 {
            assert_eq!(
                l.admit(ip(n), Reason::UnknownKey, t),
                Decision::Log { not_logged: 0 }
            );
        }
        l.admit(ip(0), Reason::UnknownKey, t + 1); // one suppressed, in a tracked window
                                                   // A full table: one shared line for everyone else.
        assert_eq!(
            l.admit(ip(100_000), Reason::UnknownKey, t + 2),
            Decision::Log { not_logged: 0 }
        );
        for n in 100_001..110_000 {
            assert_eq!(
                l.admit(ip(n), Reason::UnknownKey, t + 3),
                Decision::Suppress
            );
        }
        assert_eq!(l.windows.len(), MAX_SOURCES);
        // A minute later the expired windows make room again, and the
        // suppressed refusal of a forgotten window is told.
        assert_eq!(
            l.admit(ip(200_000), Reason::UnknownKey, t + LOG_EVERY_MS + 5),
            Decision::Log { not_logged: 1 }
        );
        assert_eq!(l.windows.len(), 1);
    }

    fn refusal(env: Option<i64>, at: Millis, project: Option<i64>) -> Refusal {
        let subject = Subject {
            credential: Some("runtime secret"),
            key_id: Some("abcd1234".into()),
            environment_id: env,
            environment: env.map(|e| format!("env{e}")),
            project_id: project,
            ..Subject::default()
        };
        let refused = Refused::new(
            Reason::Revoked,
            subject,
            Error::Unauthorized("revoked".into()),
        );
        Refusal::new(
            at,
            ip(1),
            "runtime",
            "POST /icp/heartbeat".into(),
            Reason::Revoked,
            401,
            &refused,
        )
    }

    #[test]
    fn rings_keep_the_last_hundred_per_environment_newest_first() {
        let r = Refusals::new();
        for i in 0..150 {
            r.record(refusal(Some(1), i, None));
        }
        r.record(refusal(Some(2), 1_000, Some(7)));
        r.record(refusal(None, 2_000, None));
        let dev = r.recent(Some(1), 500, |_| true);
        assert_eq!(dev.len(), KEEP_PER_ENVIRONMENT);
        assert_eq!(dev[0].at, 149);
        assert_eq!(dev[99].at, 50);
        assert_eq!(r.recent(Some(1), 3, |_| true).len(), 3);
        let all = r.recent(None, 500, |_| true);
        assert_eq!(all.len(), 102);
        assert_eq!((all[0].at, all[1].at), (2_000, 1_000));
        // Visibility is decided per refusal.
        let project_seven = r.recent(None, 500, |t| t.project == Some(7));
        assert_eq!(project_seven.len(), 1);
        assert_eq!(project_seven[0].environment.as_deref(), Some("env2"));
    }

    #[test]
    fn a_log_line_names_the_subject_and_not_much_else() {
        let line = refusal(Some(1), 0, None).log_line(3);
        assert_eq!(
            line,
            "refused POST /icp/heartbeat from 10.0.0.1 on the runtime listener: revoked (401) \
             [runtime secret abcd1234, environment env1]: revoked (3 more like it were not logged in the last minute)"
        );
        assert!(looks_like_id("3f6d0f0e-7c4e", 64));
        assert!(!looks_like_id("a b", 64) && !looks_like_id("", 64) && !looks_like_id("x\n", 64));
    }
}
