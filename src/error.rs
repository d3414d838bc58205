//! The one error type of icpd.
//!
//! Domain code, the store and the CLI all return [`Error`]. It knows nothing
//! about HTTP: the HTTP layer maps [`Error::code`] to a status, and the CLI
//! maps any error to a message and exit code 1. Messages are written for the
//! person who has to act on them and never contain key material.

use std::fmt;

/// Everything that can go wrong in icpd, grouped by what the caller should do.
#[derive(Debug)]
pub enum Error {
    /// The input is malformed or fails validation; the message says which field and why.
    BadRequest(String),
    /// The caller could not be authenticated (missing, malformed, unknown, expired or revoked credentials).
    Unauthorized(String),
    /// The caller is authenticated but not allowed to act on this object.
    Forbidden(String),
    /// The named object does not exist.
    NotFound(String),
    /// The request is valid but contradicts the current state (wrong environment, name taken, ...).
    Conflict(String),
    /// Well-formed, but the values cannot be accepted (a password that is too short, ...).
    Unprocessable(String),
    /// Too many attempts; the caller may try again after `retry_after_secs`.
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// The configuration (file, environment or flags) is invalid; nothing was started.
    Config(String),
    /// The data directory is unusable: database too new, master key missing, and the like.
    DataDir(String),
    /// A file or socket operation failed; `context` says what icpd was doing.
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The database reported an error. Logged in full; clients see only an id.
    Database(String),
    /// The database cannot be reached now (PostgreSQL down, the network
    /// to it cut, no free connection): answered 503 with `Retry-After`,
    /// detail logged.
    Unavailable(String),
    /// A server icpd depends on for this request (an identity provider, a
    /// directory) cannot be reached or answered wrongly: 503, and the
    /// message (which names the server and what to check, never a secret)
    /// is shown.
    Upstream(String),
    /// A bug or an impossible state. Logged in full; clients see only an id.
    Internal(String),
}

impl Error {
    /// A stable, machine-readable code for this kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Unprocessable(_) => "unprocessable",
            Error::TooManyRequests { .. } => "too_many_requests",
            Error::Config(_) => "config",
            Error::DataDir(_) => "data_dir",
            Error::Io { .. } => "io",
            Error::Database(_) => "database",
            Error::Unavailable(_) => "unavailable",
            Error::Upstream(_) => "upstream_unavailable",
            Error::Internal(_) => "internal",
        }
    }

    /// True when the detail must not be shown to a remote client (it is logged instead).
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            Error::Io { .. }
                | Error::Database(_)
                | Error::Unavailable(_)
                | Error::Internal(_)
                | Error::DataDir(_)
                | Error::Config(_)
        )
    }

    /// Wraps an I/O error with what icpd was trying to do.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadRequest(m)
            | Error::Unauthorized(m)
            | Error::Forbidden(m)
            | Error::NotFound(m)
            | Error::Conflict(m)
            | Error::Unprocessable(m)
            | Error::TooManyRequests { message: m, .. }
            | Error::Config(m)
            | Error::DataDir(m)
            | Error::Upstream(m)
            | Error::Internal(m) => f.write_str(m),
            Error::Database(m) => write!(f, "database error: {m}"),
            Error::Unavailable(m) => write!(f, "database unavailable: {m}"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
