//! Configuration: one [`Config`] built from flags, `ICP_*` environment
//! variables, an optional TOML file and embedded defaults.
//!
//! Precedence is flag > environment > file > default. Clap already merges a
//! flag with its environment variable, so this module only sees
//! [`Overrides`] (flag or environment) and the file, and fills in defaults.
//! Unknown keys in the file are an error, so a typo is never silently ignored.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// Connections per listener when `http.max_connections` is not set and
/// the open file limit holds them.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Name of the configuration file looked up in the current directory when
/// neither `--config` nor `ICP_CONFIG` names one.
pub const DEFAULT_CONFIG_FILE: &str = "icp.toml";

/// Everything `icpd serve` and the admin commands need to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory holding `icp.db`, `master.key` and the generated TLS certificate.
    pub data_dir: PathBuf,
    /// PostgreSQL instead of `icp.db` (`database_url`); `None` is the
    /// embedded SQLite database.
    pub database_url: Option<crate::store::postgres::DatabaseUrl>,
    /// Address of the runtime (bridge protocol) listener.
    pub runtime_listen: String,
    /// Address of the management (REST, dashboard) listener.
    pub management_listen: String,
    pub tls: TlsConfig,
    /// A runtime with no heartbeat for this long becomes OFFLINE.
    pub heartbeat_timeout: Duration,
    pub heartbeat_limits: HeartbeatLimits,
    pub http: HttpConfig,
    pub metrics: MetricsConfig,
    pub token: TokenConfig,
    pub telemetry: TelemetryConfig,
    /// Single sign-on (`[sso]`, `[ldap]`): off unless configured.
    pub sso: crate::sso::SsoConfig,
    /// Try-It (`[try_it]`): operators' requests to runtimes through icpd.
    pub try_it: TryItConfig,
}

/// `[try_it]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TryItConfig {
    /// False refuses every Try-It call (409) and tells the console so.
    pub enabled: bool,
    /// Time budget of one call, connecting included.
    pub timeout: Duration,
    /// CA bundle (PEM) that HTTPS targets must chain to; `None`: the
    /// system's bundle.
    pub ca_file: Option<PathBuf>,
}

/// Logs and metrics kept in `telemetry.db` (`[telemetry]`).
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// Age and size limits, enforced in the background.
    pub retention: crate::telemetry::Retention,
    /// How often retention runs (`retention_interval`; short in tests).
    pub retention_interval: Duration,
}

/// TLS on both listeners.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// False serves plain HTTP (`--no-tls`).
    pub enabled: bool,
    /// Operator-provided certificate chain (PEM); both or neither of `cert` and `key`.
    pub cert: Option<PathBuf>,
    /// Operator-provided private key (PEM).
    pub key: Option<PathBuf>,
}

/// Limits of the connection layer, shared by both listeners.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub workers: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// Connections per listener; `None`: [`DEFAULT_MAX_CONNECTIONS`], or
    /// what the open file limit holds if that is less (see `daemon`).
    pub max_connections: Option<usize>,
    /// Connections from one address (0: no such limit).
    pub max_connections_per_ip: usize,
}

/// `GET /metrics` on the management listener.
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    /// Ask for a bearer token or session of a user with
    /// `observability:view` at organization scope. Off by default, as in
    /// Grafana and Nomad: the management listener binds 127.0.0.1 unless
    /// told otherwise, and the metrics hold no secrets.
    pub require_auth: bool,
}

/// How often one runtime may send heartbeats: a token bucket per runtime and
/// kind, `burst` deep, refilled at `per_second`. Beyond it: 429 with
/// `Retry-After`. A `per_second` of 0 turns that limit off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeartbeatLimits {
    pub full_per_second: f64,
    pub full_burst: f64,
    pub delta_per_second: f64,
    pub delta_burst: f64,
}

/// What a runtime's bearer token must claim.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub issuer: String,
    pub audience: String,
    /// Tolerance for `exp` and `nbf` against the server clock.
    pub clock_skew: Duration,
}

/// Values given as flags or environment variables; `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub runtime_listen: Option<String>,
    pub management_listen: Option<String>,
    pub no_tls: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub heartbeat_timeout: Option<Duration>,
}

/// The file, as written by the operator. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    runtime_listen: Option<String>,
    management_listen: Option<String>,
    heartbeat_timeout: Option<DurationValue>,
    #[serde(default)]
    heartbeat_limits: FileHeartbeatLimits,
    #[serde(default)]
    tls: FileTls,
    #[serde(default)]
    http: FileHttp,
    #[serde(default)]
    metrics: FileMetrics,
    #[serde(default)]
    token: FileToken,
    #[serde(default)]
    telemetry: FileTelemetry,
    #[serde(default)]
    sso: crate::sso::SsoSettings,
    ldap: Option<crate::ldap::LdapSettings>,
    #[serde(default)]
    try_it: FileTryIt,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTryIt {
    enabled: Option<bool>,
    timeout: Option<DurationValue>,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTelemetry {
    /// Days (a fraction is fine: 0.5 is twelve hours).
    retention_days: Option<f64>,
    max_bytes: Option<ByteSize>,
    retention_interval: Option<DurationValue>,
}

/// A size in the file: bytes (`1073741824`) or a string (`"1GiB"`, `"500MB"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ByteSize {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    enabled: Option<bool>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHttp {
    workers: Option<usize>,
    handshake_timeout: Option<DurationValue>,
    idle_timeout: Option<DurationValue>,
    request_timeout: Option<DurationValue>,
    max_body_bytes: Option<usize>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMetrics {
    require_auth: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHeartbeatLimits {
    full_per_second: Option<f64>,
    full_burst: Option<f64>,
    delta_per_second: Option<f64>,
    delta_burst: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToken {
    issuer: Option<String>,
    audience: Option<String>,
    clock_skew: Option<DurationValue>,
}

/// A duration in the file: whole seconds (`30`) or a string (`"30s"`, `"2m"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Seconds(u64),
    Text(String),
}

impl DurationValue {
    fn resolve(&self, key: &str) -> Result<Duration> {
        match self {
            DurationValue::Seconds(s) => Ok(Duration::from_secs(*s)),
            DurationValue::Text(t) => {
                parse_duration(t).map_err(|e| Error::Config(format!("{key}: {e}")))
            }
        }
    }
}

/// Parses `90`, `90s`, `15m`, `12h`, `30d` or `500ms`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a duration; write e.g. 30s, 15m, 12h or 30d"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => return Ok(Duration::from_millis(n)),
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => {
            return Err(format!(
                "'{text}' has an unknown unit; use ms, s, m, h or d"
            ))
        }
    };
    Ok(Duration::from_secs(secs))
}

/// Parses `1073741824`, `1GiB`, `512 MiB`, `500MB`, `64k`: binary units
/// (`KiB`, `MiB`, `GiB`, `TiB`, and `K`, `M`, `G`, `T`), decimal ones (`KB`,
/// `MB`, `GB`, `TB`), case-insensitive.
pub fn parse_bytes(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size; write e.g. 1GiB, 500MiB or 1073741824"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "'{text}' has an unknown unit; use B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB)"
            ))
        }
    };
    let bytes = n * factor as f64;
    if !(bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64) {
        return Err(format!("'{text}' is not a size icpd can use"));
    }
    Ok(bytes.round() as u64)
}

impl Config {
    /// Builds the configuration. `file` is the path given by `--config` /
    /// `ICP_CONFIG` (it must exist); without it `./icp.toml` is read if present.
    pub fn load(file: Option<&Path>, o: Overrides) -> Result<Config> {
        let parsed = match file {
            Some(path) => read_file(path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                read_file(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => FileConfig::default(),
        };
        Config::merge(parsed, o)
    }

    fn merge(f: FileConfig, o: Overrides) -> Result<Config> {
        let d = Config::defaults();
        let dur = |v: &Option<DurationValue>, key: &str, default: Duration| -> Result<Duration> {
            v.as_ref()
                .map(|v| v.resolve(key))
                .transpose()
                .map(|v| v.unwrap_or(default))
        };
        let cfg = Config {
            data_dir: o.data_dir.or(f.data_dir).unwrap_or(d.data_dir),
            database_url: o
                .database_url
                .or(f.database_url)
                .filter(|u| !u.is_empty())
                .map(|u| crate::store::postgres::DatabaseUrl::parse(&u))
                .transpose()?,
            runtime_listen: o
                .runtime_listen
                .or(f.runtime_listen)
                .unwrap_or(d.runtime_listen),
            management_listen: o
                .management_listen
                .or(f.management_listen)
                .unwrap_or(d.management_listen),
            tls: TlsConfig {
                enabled: !o.no_tls && f.tls.enabled.unwrap_or(true),
                cert: o.tls_cert.or(f.tls.cert),
                key: o.tls_key.or(f.tls.key),
            },
            heartbeat_timeout: match o.heartbeat_timeout {
                Some(t) => t,
                None => dur(
                    &f.heartbeat_timeout,
                    "heartbeat_timeout",
                    d.heartbeat_timeout,
                )?,
            },
            heartbeat_limits: {
                let (l, dl) = (&f.heartbeat_limits, d.heartbeat_limits);
                HeartbeatLimits {
                    full_per_second: l.full_per_second.unwrap_or(dl.full_per_second),
                    full_burst: l.full_burst.unwrap_or(dl.full_burst),
                    delta_per_second: l.delta_per_second.unwrap_or(dl.delta_per_second),
                    delta_burst: l.delta_burst.unwrap_or(dl.delta_burst),
                }
            },
            http: HttpConfig {
                workers: f.http.workers.unwrap_or(d.http.workers),
                handshake_timeout: dur(
                    &f.http.handshake_timeout,
                    "http.handshake_timeout",
                    d.http.handshake_timeout,
                )?,
                idle_timeout: dur(
                    &f.http.idle_timeout,
                    "http.idle_timeout",
                    d.http.idle_timeout,
                )?,
                request_timeout: dur(
                    &f.http.request_timeout,
                    "http.request_timeout",
                    d.http.request_timeout,
                )?,
                max_body_bytes: f.http.max_body_bytes.unwrap_or(d.http.max_body_bytes),
                max_connections: f.http.max_connections.or(d.http.max_connections),
                max_connections_per_ip: f
                    .http
                    .max_connections_per_ip
                    .unwrap_or(d.http.max_connections_per_ip),
            },
            metrics: MetricsConfig {
                require_auth: f.metrics.require_auth.unwrap_or(d.metrics.require_auth),
            },
            token: TokenConfig {
                issuer: f.token.issuer.unwrap_or(d.token.issuer),
                audience: f.token.audience.unwrap_or(d.token.audience),
                clock_skew: dur(&f.token.clock_skew, "token.clock_skew", d.token.clock_skew)?,
            },
            telemetry: TelemetryConfig {
                retention: crate::telemetry::Retention {
                    max_age_ms: match f.telemetry.retention_days {
                        None => d.telemetry.retention.max_age_ms,
                        Some(days) if days.is_finite() && days > 0.0 && days < 1e6 => {
                            (days * 86_400_000.0).round().max(1.0) as i64
                        }
                        Some(_) => {
                            return Err(Error::Config(
                                "telemetry.retention_days must be a number of days above 0 (e.g. 7, or 0.5 for twelve hours)".into(),
                            ))
                        }
                    },
                    max_bytes: match &f.telemetry.max_bytes {
                        None => d.telemetry.retention.max_bytes,
                        Some(ByteSize::Bytes(b)) => *b,
                        Some(ByteSize::Text(t)) => parse_bytes(t)
                            .map_err(|e| Error::Config(format!("telemetry.max_bytes: {e}")))?,
                    },
                },
                retention_interval: dur(
                    &f.telemetry.retention_interval,
                    "telemetry.retention_interval",
                    d.telemetry.retention_interval,
                )?,
            },
            sso: f.sso.resolve(f.ldap).map_err(Error::Config)?,
            try_it: TryItConfig {
                enabled: f.try_it.enabled.unwrap_or(d.try_it.enabled),
                timeout: dur(&f.try_it.timeout, "try_it.timeout", d.try_it.timeout)?,
                ca_file: f.try_it.ca_file,
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The embedded defaults (`icpd serve` with no configuration at all).
    pub fn defaults() -> Config {
        Config {
            data_dir: PathBuf::from("./icp-data"),
            database_url: None,
            runtime_listen: "0.0.0.0:9445".into(),
            management_listen: "127.0.0.1:9446".into(),
            tls: TlsConfig {
                enabled: true,
                cert: None,
                key: None,
            },
            heartbeat_timeout: Duration::from_secs(30),
            // A bridge sends a full heartbeat at start and when its state
            // changes, and a delta every 10 s or so: these leave room for
            // retries and restarts and stop a client stuck in a loop.
            heartbeat_limits: HeartbeatLimits {
                full_per_second: 1.0,
                full_burst: 10.0,
                delta_per_second: 10.0,
                delta_burst: 50.0,
            },
            http: HttpConfig {
                workers: 8,
                handshake_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(15),
                request_timeout: Duration::from_secs(30),
                max_body_bytes: 4 * 1024 * 1024,
                max_connections: None,
                max_connections_per_ip: 4_096,
            },
            metrics: MetricsConfig::default(),
            token: TokenConfig {
                issuer: "icp-runtime-jwt-issuer".into(),
                audience: "icp-server".into(),
                clock_skew: Duration::from_secs(10),
            },
            telemetry: TelemetryConfig {
                retention: crate::telemetry::Retention::default(),
                retention_interval: Duration::from_secs(60),
            },
            sso: crate::sso::SsoConfig::default(),
            try_it: TryItConfig {
                enabled: true,
                timeout: Duration::from_secs(15),
                ca_file: None,
            },
        }
    }

    fn validate(&self) -> Result<()> {
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(Error::Config(
                "tls.cert and tls.key must be given together (or neither, for a generated certificate)".into(),
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(300)).contains(&self.try_it.timeout) {
            return Err(Error::Config(
                "try_it.timeout must be between 1s and 300s".into(),
            ));
        }
        if self.heartbeat_timeout < Duration::from_secs(1) {
            return Err(Error::Config(
                "heartbeat_timeout must be at least 1s".into(),
            ));
        }
        let l = &self.heartbeat_limits;
        for (name, v) in [
            ("heartbeat_limits.full_per_second", l.full_per_second),
            ("heartbeat_limits.delta_per_second", l.delta_per_second),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::Config(format!(
                    "{name} must be a number of heartbeats per second, 0 or more (0 turns the limit off)"
                )));
            }
        }
        for (name, v) in [
            ("heartbeat_limits.full_burst", l.full_burst),
            ("heartbeat_limits.delta_burst", l.delta_burst),
        ] {
            if !(v.is_finite() && v >= 1.0) {
                return Err(Error::Config(format!("{name} must be at least 1")));
            }
        }
        if self.telemetry.retention.max_bytes == 0 {
            return Err(Error::Config(
                "telemetry.max_bytes must be above 0 (e.g. \"1GiB\")".into(),
            ));
        }
        if self.telemetry.retention_interval < Duration::from_millis(10) {
            return Err(Error::Config(
                "telemetry.retention_interval must be at least 10ms".into(),
            ));
        }
        if self.http.workers == 0 || self.http.max_connections == Some(0) {
            return Err(Error::Config(
                "http.workers and http.max_connections must be at least 1".into(),
            ));
        }
        for (name, addr) in [
            ("runtime_listen", &self.runtime_listen),
            ("management_listen", &self.management_listen),
        ] {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(Error::Config(format!(
                    "{name} '{addr}' is not an address; write HOST:PORT such as 127.0.0.1:9446 (port 0 picks a free port)"
                )));
            }
        }
        Ok(())
    }

    /// Opens the control plane's store: PostgreSQL when `database_url` is
    /// set, else `icp.db` in the data directory.
    pub fn open_store(&self) -> Result<crate::store::Store> {
        match &self.database_url {
            Some(url) => crate::store::Store::connect(url),
            None => crate::store::Store::open(&self.db_path()),
        }
    }

    /// Path of the SQLite database inside the data directory.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("icp.db")
    }

    /// Path of the telemetry database (logs, request records, metrics).
    pub fn telemetry_db_path(&self) -> PathBuf {
        self.data_dir.join("telemetry.db")
    }
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| Error::Config(format!("config file {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> FileConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn flag_beats_file_beats_default() {
        let f = file("runtime_listen = \"127.0.0.1:1\"\nmanagement_listen = \"127.0.0.1:2\"\nheartbeat_timeout = \"45s\"");
        let o = Overrides {
            runtime_listen: Some("127.0.0.1:3".into()),
            ..Default::default()
        };
        let c = Config::merge(f, o).unwrap();
        assert_eq!(c.runtime_listen, "127.0.0.1:3");
        assert_eq!(c.management_listen, "127.0.0.1:2");
        assert_eq!(c.heartbeat_timeout, Duration::from_secs(45));
        assert_eq!(c.data_dir, PathBuf::from("./icp-data"));
    }

    #[test]
    fn unknown_keys_and_half_tls_are_errors() {
        assert!(toml::from_str::<FileConfig>("runtime_lisen = \"x\"").is_err());
        let f = file("[tls]\ncert = \"/c.pem\"");
        let e = Config::merge(f, Overrides::default()).unwrap_err();
        assert!(e.to_string().contains("tls.key"), "{e}");
    }

    #[test]
    fn limits_are_read_and_checked() {
        let c = Config::merge(
            file("[http]\nmax_connections_per_ip = 0\n[heartbeat_limits]\ndelta_per_second = 0\nfull_burst = 3"),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.http.max_connections_per_ip, 0);
        assert_eq!(c.heartbeat_limits.delta_per_second, 0.0);
        assert_eq!(c.heartbeat_limits.full_burst, 3.0);
        assert_eq!(c.heartbeat_limits.full_per_second, 1.0, "default kept");
        for bad in [
            "[heartbeat_limits]\ndelta_per_second = -1",
            "[heartbeat_limits]\nfull_per_second = nan",
            "[heartbeat_limits]\nfull_burst = 0.5",
        ] {
            let e = Config::merge(file(bad), Overrides::default()).unwrap_err();
            assert!(e.to_string().contains("heartbeat_limits."), "{bad}: {e}");
        }
    }

    #[test]
    fn metrics_are_public_unless_the_file_says_otherwise() {
        let c = Config::merge(file(""), Overrides::default()).unwrap();
        assert!(!c.metrics.require_auth);
        let c =
            Config::merge(file("[metrics]\nrequire_auth = true"), Overrides::default()).unwrap();
        assert!(c.metrics.require_auth);
        assert!(toml::from_str::<FileConfig>("[metrics]\nrequire_auht = true").is_err());
    }

    #[test]
    fn telemetry_limits() {
        let c = Config::merge(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(c.telemetry.retention.max_age_ms, 7 * 86_400_000);
        assert_eq!(c.telemetry.retention.max_bytes, 1 << 30);
        assert_eq!(c.telemetry.retention_interval, Duration::from_secs(60));
        let c = Config::merge(
            file("[telemetry]\nretention_days = 0.5\nmax_bytes = \"200MiB\"\nretention_interval = \"250ms\""),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.telemetry.retention.max_age_ms, 43_200_000);
        assert_eq!(c.telemetry.retention.max_bytes, 200 << 20);
        assert_eq!(c.telemetry.retention_interval, Duration::from_millis(250));
        let c = Config::merge(
            file("[telemetry]\nretention_days = 30\nmax_bytes = 5000000"),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.telemetry.retention.max_age_ms, 30 * 86_400_000);
        assert_eq!(c.telemetry.retention.max_bytes, 5_000_000);
        for bad in [
            "[telemetry]\nretention_days = 0",
            "[telemetry]\nretention_days = -1",
            "[telemetry]\nmax_bytes = \"lots\"",
            "[telemetry]\nmax_bytes = 0",
            "[telemetry]\nretention_interval = \"1ms\"",
        ] {
            let e = Config::merge(file(bad), Overrides::default()).unwrap_err();
            assert!(e.to_string().contains("telemetry."), "{bad}: {e}");
        }
        assert!(toml::from_str::<FileConfig>("[telemetry]\nretention = 3").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1 gib").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_bytes("64k").unwrap(), 65_536);
        assert_eq!(parse_bytes("1048576").unwrap(), 1_048_576);
        assert!(parse_bytes("1XB").is_err());
        assert!(parse_bytes("GiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("12").unwrap(), Duration::from_secs(12));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3w").is_err());
    }
}
